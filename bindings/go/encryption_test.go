package hexz

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// encryptedMiniLM stores the real MiniLM encrypted for a passphrase and a
// new X25519 identity's recipient (made by bindings/testdata/age_keygen.py,
// an independent X25519), with the hexz CLI.
func encryptedMiniLM(t *testing.T, pass string) (archive, identity, other string) {
	t.Helper()
	dir := t.TempDir()
	identity, other = filepath.Join(dir, "id.txt"), filepath.Join(dir, "other.txt")
	out, err := exec.Command("python3", "../testdata/age_keygen.py", identity).Output()
	if err != nil {
		t.Fatalf("age_keygen.py: %v", err)
	}
	recipient := strings.TrimSpace(string(out))
	if err := exec.Command("python3", "../testdata/age_keygen.py", other).Run(); err != nil {
		t.Fatalf("age_keygen.py: %v", err)
	}
	archive = filepath.Join(dir, "minilm-enc.hxz")
	src := filepath.Join(models, "minilm.safetensors")
	// The CLI the suite builds before the Go step (target/release/hexz).
	passFile := filepath.Join(dir, "pass.txt")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../../target/release/hexz", "-q", "store", src, archive, "--encrypt",
		"--passphrase-file", passFile, "--recipient", recipient)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hexz store --encrypt (build it: cargo build --release -p hexz-cli): %v\n%s", err, out)
	}
	return
}

// TestEncryptedArchive: the encrypted MiniLM reads back byte for byte with
// the passphrase and with the identity file; no key, a wrong passphrase and
// another identity are ErrKey; a flipped ciphertext byte is ErrCorrupt.
func TestEncryptedArchive(t *testing.T) {
	const pass = "go test passphrase"
	archive, identity, other := encryptedMiniLM(t, pass)
	want, err := os.ReadFile(filepath.Join(models, "minilm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*OpenOptions{
		{Passphrase: []byte(pass)},
		{IdentityFiles: []string{identity}},
		{IdentityFiles: []string{other, identity}, Passphrase: []byte("wrong")},
	} {
		a, err := OpenWithOptions(archive, o)
		if err != nil {
			t.Fatalf("open with %d identities, passphrase %q: %v", len(o.IdentityFiles), o.Passphrase, err)
		}
		got := make([]byte, len(want))
		if _, err := a.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Error("the encrypted archive decoded to other bytes")
		}
		for _, ti := range a.Tensors() {
			buf := make([]byte, ti.Length)
			if _, err := a.ReadTensor(ti.Name, buf); err != nil {
				t.Fatalf("%s: %v", ti.Name, err)
			}
			if !bytes.Equal(buf, want[ti.Offset:ti.Offset+ti.Length]) {
				t.Errorf("%s differs from the source", ti.Name)
			}
		}
		a.Close()
	}
	var e *Error
	_, err = Open(archive)
	if !errors.Is(err, ErrKey) || !errors.As(err, &e) || e.Status != Status(31) {
		t.Errorf("no key: %v", err)
	}
	_, err = OpenWithOptions(archive, &OpenOptions{Passphrase: []byte("not the passphrase")})
	if !errors.Is(err, ErrKey) || !errors.As(err, &e) || e.Status != Status(32) {
		t.Errorf("wrong passphrase: %v", err)
	}
	_, err = OpenWithOptions(archive, &OpenOptions{IdentityFiles: []string{other}})
	if !errors.Is(err, ErrKey) {
		t.Errorf("another identity: %v", err)
	}
	_, err = OpenWithOptions(archive, &OpenOptions{IdentityFiles: []string{filepath.Join(t.TempDir(), "none")}})
	if !errors.Is(err, ErrIO) && !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing identity file: %v", err)
	}
	// A plain archive opens whatever keys are given.
	if a, err := OpenWithOptions(minilmHxz, &OpenOptions{Passphrase: []byte(pass)}); err != nil {
		t.Errorf("plain archive with a passphrase: %v", err)
	} else {
		a.Close()
	}

	// One flipped byte in the middle of the file, inside a tensor's block.
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	bad := filepath.Join(t.TempDir(), "bad.hxz")
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := OpenWithOptions(bad, &OpenOptions{Passphrase: []byte(pass)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got := make([]byte, len(want))
	_, err = a.ReadAt(got, 0)
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &e) || e.Status != Status(33) {
		t.Errorf("a flipped ciphertext byte: %v", err)
	}
}
