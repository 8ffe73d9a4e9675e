package hexz

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Archives stored once for every test, from the real models.
var (
	models    string // folder of the real models (scripts/fetch-models.sh)
	work      string
	gemmaHxz  string
	minilmHxz string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// No test fills the user's block cache: TestBlockCache gives its own folder.
	os.Setenv("HEXZ_CACHE_DIR", "off")
	out, err := exec.Command("../../scripts/fetch-models.sh").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fetch-models.sh:", err)
		return 1
	}
	models = strings.TrimSpace(string(out))
	if work, err = os.MkdirTemp("", "hexz-go-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)
	gemmaHxz = filepath.Join(work, "gemma.hxz")
	minilmHxz = filepath.Join(work, "minilm.hxz")
	for src, dst := range map[string]string{"gemma.gguf": gemmaHxz, "minilm.safetensors": minilmHxz} {
		if _, err := Store(filepath.Join(models, src), dst, nil); err != nil {
			fmt.Fprintln(os.Stderr, "store:", err)
			return 1
		}
	}
	return m.Run()
}

// ggufTensors parses a GGUF file's header itself (not through libhexz) and
// returns each tensor's absolute offset, by name.
func ggufTensors(t testing.TB, data []byte) map[string]int64 {
	pos := 0
	u32 := func() uint32 { v := binary.LittleEndian.Uint32(data[pos:]); pos += 4; return v }
	u64 := func() uint64 { v := binary.LittleEndian.Uint64(data[pos:]); pos += 8; return v }
	str := func() string { n := int(u64()); s := string(data[pos : pos+n]); pos += n; return s }
	sizes := map[uint32]int{0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
	var skip func(ty uint32) uint64
	skip = func(ty uint32) uint64 {
		switch ty {
		case 8:
			str()
		case 9:
			et, n := u32(), u64()
			for i := uint64(0); i < n; i++ {
				skip(et)
			}
		default:
			var v uint64
			switch sizes[ty] {
			case 1:
				v = uint64(data[pos])
			case 2:
				v = uint64(binary.LittleEndian.Uint16(data[pos:]))
			case 4:
				v = uint64(binary.LittleEndian.Uint32(data[pos:]))
			case 8:
				v = binary.LittleEndian.Uint64(data[pos:])
			}
			pos += sizes[ty]
			return v
		}
		return 0
	}
	if string(data[:4]) != "GGUF" {
		t.Fatal("not a GGUF file")
	}
	pos = 4
	u32() // version
	nTensors, nKV := u64(), u64()
	alignment := uint64(32)
	for i := uint64(0); i < nKV; i++ {
		key, ty := str(), u32()
		v := skip(ty)
		if key == "general.alignment" {
			alignment = v
		}
	}
	rel := map[string]uint64{}
	for i := uint64(0); i < nTensors; i++ {
		name := str()
		nd := u32()
		for d := uint32(0); d < nd; d++ {
			u64()
		}
		u32() // type
		rel[name] = u64()
	}
	dataOffset := (uint64(pos) + alignment - 1) / alignment * alignment
	out := map[string]int64{}
	for name, off := range rel {
		out[name] = int64(dataOffset + off)
	}
	return out
}

func TestEveryGemmaTensorEqualsTheGGUF(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(models, "gemma.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	offsets := ggufTensors(t, orig)
	a, err := Open(gemmaHxz)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Size() != int64(len(orig)) || a.Info().SourceFormat != SourceGGUF {
		t.Fatalf("size %d format %v", a.Size(), a.Info().SourceFormat)
	}
	tensors := a.Tensors()
	if len(tensors) != len(offsets) {
		t.Fatalf("%d tensors, the GGUF has %d", len(tensors), len(offsets))
	}
	for _, ti := range tensors {
		off, ok := offsets[ti.Name]
		if !ok || off != ti.Offset {
			t.Fatalf("%s: offset %d, the GGUF says %d", ti.Name, ti.Offset, off)
		}
		buf := make([]byte, ti.Length)
		n, err := a.ReadTensor(ti.Name, buf)
		if err != nil || int64(n) != ti.Length {
			t.Fatalf("%s: %d, %v", ti.Name, n, err)
		}
		if !bytes.Equal(buf, orig[off:off+ti.Length]) {
			t.Fatalf("%s: bytes differ", ti.Name)
		}
	}
	emb, ok := a.Tensor("token_embd.weight")
	if !ok || emb.DType != "Q8_0" || emb.GGMLType != 8 || len(emb.Shape) != 2 || emb.Shape[0] != 640 {
		t.Fatalf("token_embd.weight: %+v", emb)
	}
	// Its blocks tile it, and any byte of a block gives that block.
	blocks := 0
	for at := emb.Offset; at < emb.Offset+emb.Length; blocks++ {
		start, length, err := a.BlockSpan(at)
		if err != nil || start != at || length <= 0 {
			t.Fatalf("block at %d: %d+%d, %v", at, start, length, err)
		}
		if s, l, err := a.BlockSpan(at + length - 1); err != nil || s != start || l != length {
			t.Fatalf("last byte of the block at %d: %d+%d, %v", at, s, l, err)
		}
		at += length
	}
	if blocks < 100 {
		t.Fatalf("token_embd.weight in %d blocks", blocks)
	}
	if _, _, err := a.BlockSpan(a.Size()); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "range") {
		t.Fatalf("block span at the end: %v", err)
	}
	if _, _, err := a.BlockSpan(-1); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("block span at -1: %v", err)
	}
}

func TestGGUFMetadata(t *testing.T) {
	a, err := Open(gemmaHxz)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	g, err := a.GGUF()
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 3 || g.Alignment != 32 || g.DataOffset == 0 {
		t.Fatalf("header %+v", g)
	}
	arch, ok := g.Get("general.architecture")
	if !ok || arch.Type != GGUFTypeString || arch.Value != "gemma3" || arch.Type.String() != "STRING" {
		t.Fatalf("general.architecture: %+v", arch)
	}
	tokens, ok := g.Get("tokenizer.ggml.tokens")
	if !ok || tokens.ArrayType != GGUFTypeString || len(tokens.Value.([]string)) != 262144 {
		t.Fatalf("tokens: %v %v", tokens.Type, tokens.ArrayType)
	}
	scores, _ := g.Get("tokenizer.ggml.scores")
	if _, ok := scores.Value.([]float32); !ok {
		t.Fatalf("scores: %T", scores.Value)
	}
	md, err := a.Metadata()
	if err != nil || md["general.architecture"] != "gemma3" {
		t.Fatalf("metadata: %v %v", md["general.architecture"], err)
	}
	if _, err := mustOpen(t, minilmHxz).GGUF(); err == nil {
		t.Fatal("GGUF() of a safetensors archive did not fail")
	}
}

func mustOpen(t *testing.T, path string) *Archive {
	a, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestReaderCopyAndServeContent(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(models, "minilm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	a := mustOpen(t, minilmHxz)
	h := sha256.New()
	if n, err := io.Copy(h, a.NewReader()); err != nil || n != int64(len(orig)) {
		t.Fatalf("io.Copy: %d, %v", n, err)
	}
	if want := sha256.Sum256(orig); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("sha256 differs")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.safetensors", time.Time{}, a.NewReader())
	}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Range", "bytes=1000000-1099999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, orig[1000000:1100000]) {
		t.Fatalf("range request: %s, %d bytes", resp.Status, len(body))
	}
	// ReadAt at the end: the bytes there are, and io.EOF.
	p := make([]byte, 100)
	n, err := a.ReadAt(p, int64(len(orig))-40)
	if n != 40 || err != io.EOF || !bytes.Equal(p[:40], orig[len(orig)-40:]) {
		t.Fatalf("ReadAt at the end: %d, %v", n, err)
	}
	if n, err := a.ReadAt(p, int64(len(orig))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
}

func TestSixteenGoroutines(t *testing.T) {
	paths := map[string]string{gemmaHxz: "gemma.gguf", minilmHxz: "minilm.safetensors"}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for path, src := range paths {
		orig, err := os.ReadFile(filepath.Join(models, src))
		if err != nil {
			t.Fatal(err)
		}
		a := mustOpen(t, path)
		tensors := a.Tensors()
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(seed int64) {
				defer wg.Done()
				rng := rand.New(rand.NewSource(seed))
				for i := 0; i < 30; i++ {
					ti := tensors[rng.Intn(len(tensors))]
					buf := make([]byte, ti.Length)
					if _, err := a.ReadTensor(ti.Name, buf); err != nil || !bytes.Equal(buf, orig[ti.Offset:ti.Offset+ti.Length]) {
						errs <- fmt.Errorf("%s %s: %v", a.Path(), ti.Name, err)
						return
					}
					off := rng.Int63n(a.Size())
					p := make([]byte, rng.Intn(2<<20)+1)
					n, err := a.ReadAt(p, off)
					if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], orig[off:off+int64(n)]) {
						errs <- fmt.Errorf("%s ReadAt %d: %v", a.Path(), off, err)
						return
					}
				}
			}(int64(g))
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	// A missing file.
	_, err := Open(filepath.Join(dir, "nope.hxz"))
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	// A truncated archive.
	data, _ := os.ReadFile(minilmHxz)
	for _, cut := range []int{len(data) / 2, len(data) - 1, 50} {
		p := filepath.Join(dir, "truncated.hxz")
		os.WriteFile(p, data[:cut], 0o644)
		_, err = Open(p)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated.hxz") {
			t.Fatalf("truncated at %d: %v", cut, err)
		}
	}
	// A plain GGUF is not an archive.
	_, err = Open(filepath.Join(models, "gemma.gguf"))
	var he *Error
	if !errors.Is(err, ErrInvalidInput) || !errors.As(err, &he) || he.Status != 10 {
		t.Fatalf("plain .gguf: %v", err)
	}
	// A missing parent, then found through ParentDir.
	base, child, moved := filepath.Join(dir, "base.hxz"), filepath.Join(dir, "ft.hxz"), filepath.Join(dir, "moved")
	if _, err := Store(filepath.Join(models, "minilm.safetensors"), base, nil); err != nil {
		t.Fatal(err)
	}
	r, err := Store(filepath.Join(models, "minilm-ft.safetensors"), child, &StoreOptions{Base: base})
	if err != nil || r.ParentBlocks == 0 {
		t.Fatalf("store against a base: %+v %v", r, err)
	}
	os.Mkdir(moved, 0o755)
	os.Rename(base, filepath.Join(moved, "base.hxz"))
	_, err = Open(child)
	if !errors.Is(err, ErrParentMissing) {
		t.Fatalf("missing parent: %v", err)
	}
	a, err := OpenWithOptions(child, &OpenOptions{ParentDir: moved})
	if err != nil {
		t.Fatal(err)
	}
	if a.Info().ParentIdentity == "" {
		t.Fatal("no parent identity")
	}
	// Unknown tensor, short buffer, closed archive.
	if _, err := a.ReadTensor("no.such.tensor", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tensor: %v", err)
	}
	ti, _ := a.Tensor("pooler.dense.bias")
	_, err = a.ReadTensor(ti.Name, make([]byte, 10))
	if !errors.Is(err, ErrShortBuffer) || !errors.As(err, &he) || he.Need != int(ti.Length) {
		t.Fatalf("short buffer: %v", err)
	}
	a.Close()
	a.Close()
	if _, err := a.ReadAt(make([]byte, 4), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed: %v", err)
	}
}

func TestVerify(t *testing.T) {
	r, err := Verify(minilmHxz, true)
	if err != nil || !r.OK {
		t.Fatalf("verify: %+v %v", r, err)
	}
	data, _ := os.ReadFile(minilmHxz)
	data[len(data)/3] ^= 0x40
	bad := filepath.Join(t.TempDir(), "corrupt.hxz")
	os.WriteFile(bad, data, 0o644)
	r, err = Verify(bad, true)
	if err != nil || r.OK || r.Problems == 0 || !strings.Contains(r.Message, "corrupt.hxz") {
		t.Fatalf("verify corrupt: %+v %v", r, err)
	}
	a := mustOpen(t, bad)
	corrupt := 0
	for _, ti := range a.Tensors() {
		buf := make([]byte, ti.Length)
		if _, err := a.ReadTensor(ti.Name, buf); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: %v", ti.Name, err)
			}
			corrupt++
		}
	}
	if corrupt != 1 {
		t.Fatalf("%d tensors failed, want 1", corrupt)
	}
	if _, err := Verify(filepath.Join(t.TempDir(), "nope.hxz"), false); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("verify missing: %v", err)
	}
}

func TestFolderArchive(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "folder.hxz")
	if _, err := Store(filepath.Join(models, "minilm-sharded"), dst, nil); err != nil {
		t.Fatal(err)
	}
	a := mustOpen(t, dst)
	files, err := a.Files()
	if err != nil || len(files) == 0 || a.Info().SourceFormat != SourceFolder {
		t.Fatalf("files: %d %v", len(files), err)
	}
	for _, f := range files {
		if f.Dir {
			continue
		}
		want, err := os.ReadFile(filepath.Join(models, "minilm-sharded", filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, f.Length)
		if n, err := a.ReadAt(got, f.Offset); (err != nil && err != io.EOF) || n != len(got) || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", f.Path, err)
		}
	}
}

func TestUserMetadata(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "md.hxz")
	cmd := exec.Command("../../target/release/hexz", "-q", "store", filepath.Join(models, "minilm.safetensors"), dst,
		"--metadata", "run=go", "--metadata", `cfg:={"lr":0.001}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("needs the hexz binary (cargo build --release -p hexz-cli): %v %s", err, out)
	}
	a := mustOpen(t, dst)
	md, err := a.Metadata()
	if err != nil || md["run"] != "go" || md["cfg"] != `{"lr":0.001}` || md["format"] != "pt" {
		t.Fatalf("metadata: %v %v", md, err)
	}
}

// Reading every gemma tensor, against os.File.ReadAt of the same bytes.
func BenchmarkReadAllTensors(b *testing.B) {
	a, err := Open(gemmaHxz)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tensors := a.Tensors()
	var total int64
	for _, t := range tensors {
		total += t.Length
	}
	buf := make([]byte, 200<<20)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range tensors {
			if _, err := a.ReadTensor(t.Name, buf); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkFileReadAtGGUF(b *testing.B) {
	a, err := Open(gemmaHxz)
	if err != nil {
		b.Fatal(err)
	}
	tensors := a.Tensors()
	a.Close()
	f, err := os.Open(filepath.Join(models, "gemma.gguf"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var total int64
	for _, t := range tensors {
		total += t.Length
	}
	buf := make([]byte, 200<<20)
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, t := range tensors {
			if _, err := f.ReadAt(buf[:t.Length], t.Offset); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestOpenURL(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(models, "gemma.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	// A real HTTP server with range requests (net/http's file server).
	srv := httptest.NewServer(http.FileServer(http.Dir(work)))
	defer srv.Close()
	if !linksRemote {
		// libhexz (build tag hexz_local) has no HTTP stack: URLs are unsupported.
		if _, err := OpenURL(srv.URL+"/gemma.hxz", nil); !errors.Is(err, ErrUnsupported) {
			t.Fatalf("a URL without the remote library: %v", err)
		}
		_, err := StoreURL(filepath.Join(models, "minilm.safetensors"), "s3://models/x.hxz", nil)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "remote") {
			t.Fatalf("a store to a URL without the remote library: %v", err)
		}
		return
	}
	a, err := OpenURL(srv.URL+"/gemma.hxz", &URLOptions{Timeout: 30 * time.Second, Open: &OpenOptions{ReadSlots: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ti, _ := a.Tensor("blk.0.attn_q.weight")
	buf := make([]byte, ti.Length)
	if _, err := a.ReadTensor(ti.Name, buf); err != nil || !bytes.Equal(buf, orig[ti.Offset:ti.Offset+ti.Length]) {
		t.Fatalf("remote tensor: %v", err)
	}
	if _, err := OpenURL(srv.URL+"/nope.hxz", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if _, err := OpenURL("ftp://example.invalid/m.hxz", nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown scheme: %v", err)
	}
	// HTTP servers take no uploads: storing needs s3:// (tests/remote stores to S3).
	_, err = StoreURL(filepath.Join(models, "minilm.safetensors"), srv.URL+"/up.hxz", nil)
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("store to an HTTP URL: %v", err)
	}
}

// The sentinel of every status is the one the shared table names for its
// category (the table Python's exception classes are checked against).
func TestStatusCategoriesAreTheSharedTable(t *testing.T) {
	text, err := os.ReadFile("../testdata/error-categories.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Categories []struct {
			Name string
			Code uint32
			Go   *string
		}
		Statuses []struct {
			Name     string
			Code     uint32
			Category string
		}
	}
	if err := json.Unmarshal(text, &table); err != nil {
		t.Fatal(err)
	}
	sentinels := map[string]error{
		"ErrInvalidInput": ErrInvalidInput, "ErrNotFound": ErrNotFound, "ErrCorrupt": ErrCorrupt,
		"ErrParentMissing": ErrParentMissing, "ErrUnsupported": ErrUnsupported, "ErrIO": ErrIO,
		"ErrOutOfMemory": ErrOutOfMemory, "ErrCancelled": ErrCancelled, "ErrInternal": ErrInternal,
		"ErrSignature": ErrSignature, "ErrKey": ErrKey,
	}
	byName := map[string]uint32{}
	for _, c := range table.Categories {
		byName[c.Name] = c.Code
		var want error
		if c.Go != nil {
			want = sentinels[*c.Go]
			if want == nil {
				t.Fatalf("category %s: no sentinel %s", c.Name, *c.Go)
			}
		}
		if got := categorySentinel(Category(c.Code)); got != want {
			t.Errorf("category %s: sentinel %v, the table says %v", c.Name, got, want)
		}
	}
	if len(table.Statuses) != 33 {
		t.Fatalf("%d statuses in the table", len(table.Statuses))
	}
	for _, s := range table.Statuses {
		code, ok := byName[s.Category]
		if !ok {
			t.Fatalf("status %s: unknown category %s", s.Name, s.Category)
		}
		if got := Status(s.Code).Category(); got != Category(code) {
			t.Errorf("status %s: category %d, the table says %s", s.Name, got, s.Category)
		}
		e := &Error{Status: Status(s.Code)}
		if want := categorySentinel(Category(code)); want != nil && !errors.Is(e, want) {
			t.Errorf("status %s does not match %v", s.Name, want)
		}
	}
	if Status(9999).Category() != Category(byName["INTERNAL"]) {
		t.Error("an unknown status is not INTERNAL")
	}
}

// countingWriter counts the body bytes a handler writes.
type countingWriter struct {
	http.ResponseWriter
	n  *int64
	mu *sync.Mutex
}

func (w countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	*w.n += int64(len(p))
	w.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func TestBlockCache(t *testing.T) {
	if !linksRemote {
		t.Skip("URLs need libhexz-remote")
	}
	orig, err := os.ReadFile(filepath.Join(models, "gemma.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	var sent int64
	var mu sync.Mutex
	files := http.FileServer(http.Dir(work))
	// net/http's file server sends no ETag: the cache checks size and date.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		files.ServeHTTP(countingWriter{w, &sent, &mu}, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	read := func(cacheDir string) int64 {
		mu.Lock()
		sent = 0
		mu.Unlock()
		a, err := OpenURL(srv.URL+"/gemma.hxz", &URLOptions{CacheDir: cacheDir, CacheMaxBytes: 1 << 30})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		ti, _ := a.Tensor("blk.2.ffn_gate.weight")
		buf := make([]byte, ti.Length)
		if _, err := a.ReadTensor(ti.Name, buf); err != nil || !bytes.Equal(buf, orig[ti.Offset:ti.Offset+ti.Length]) {
			t.Fatalf("remote tensor: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
	if n := read(dir); n == 0 {
		t.Fatal("a cold cache fetched nothing")
	}
	if n := read(dir); n != 0 {
		t.Fatalf("a warm cache fetched %d bytes", n)
	}
	if n := read("off"); n == 0 {
		t.Fatal("CacheDir off fetched nothing")
	}
}

// Issue #32: a training run's checkpoint-500/ and checkpoint-1000/ hold the
// same tensor names. A bare shared name is refused, naming both files;
// TensorInFile and ReadTensorInFile read each file's own tensor.
func TestCheckpointsSharingTensorNames(t *testing.T) {
	runs := filepath.Join(models, "minilm-runs")
	if _, err := os.Stat(runs); err != nil {
		t.Fatalf("%v: run tests/make_folders.py", err)
	}
	dst := filepath.Join(t.TempDir(), "runs.hxz")
	if _, err := Store(runs, dst, nil); err != nil {
		t.Fatal(err)
	}
	a := mustOpen(t, dst)
	const name = "encoder.layer.4.attention.self.query.weight"
	if _, ok := a.Tensor(name); ok {
		t.Fatal("Tensor gave one of two tensors sharing a name")
	}
	_, err := a.ReadTensor(name, nil)
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "checkpoint-500/model.safetensors") {
		t.Fatalf("bare shared name: %v", err)
	}
	var got [][]byte
	for _, file := range []string{"checkpoint-500/model.safetensors", "checkpoint-1000/model.safetensors"} {
		ti, err := a.TensorInFile(file, name)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, ti.Length)
		if _, err := a.ReadTensorInFile(file, name, buf); err != nil {
			t.Fatal(err)
		}
		orig, err := os.ReadFile(filepath.Join(runs, filepath.FromSlash(file)))
		if err != nil {
			t.Fatal(err)
		}
		files, _ := a.Files()
		for _, f := range files {
			if f.Path == file && !bytes.Equal(buf, orig[ti.Offset-f.Offset:ti.Offset-f.Offset+ti.Length]) {
				t.Fatalf("%s: other bytes", file)
			}
		}
		got = append(got, buf)
	}
	if bytes.Equal(got[0], got[1]) {
		t.Fatal("the fine-tuned tensor should differ between the checkpoints")
	}
	if _, err := a.TensorInFile("checkpoint-9/model.safetensors", name); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestTrustedKeys: the spec's signed vector opens with its key; an unsigned
// archive and another key are refused with ErrSignature before any read.
func TestTrustedKeys(t *testing.T) {
	pub, err := os.ReadFile("../../spec/vectors/signed-test.pub")
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenWithOptions("../../spec/vectors/signed-gguf-lz4.hxz", &OpenOptions{TrustedKeys: []string{string(pub)}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../spec/vectors/signed-gguf-lz4.expected")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := a.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("the signed vector decoded to other bytes")
	}
	a.Close()
	_, err = OpenWithOptions("../../spec/vectors/gguf-lz4.hxz", &OpenOptions{TrustedKeys: []string{string(pub)}})
	if !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned archive: %v", err)
	}
	// Another key (a valid Ed25519 point, another key id): refused.
	other := "untrusted comment: other\nRWQBAgMEBQYHCCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS\n"
	_, err = OpenWithOptions("../../spec/vectors/signed-gguf-lz4.hxz", &OpenOptions{TrustedKeys: []string{other}})
	if !errors.Is(err, ErrSignature) {
		t.Errorf("another key: %v", err)
	}
	_, err = OpenWithOptions("../../spec/vectors/signed-gguf-lz4.hxz", &OpenOptions{TrustedKeys: []string{"not a key"}})
	if !errors.Is(err, ErrInvalidInput) {
		t.Errorf("a bad key: %v", err)
	}
}
