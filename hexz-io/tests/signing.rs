//! Signed archives (format 1.4, issue #33): a bit-flip and truncation sweep
//! over a signed real archive with a trusted key required, signatures by
//! other keys, stripped and moved signatures, a swapped parent, key files,
//! and the cost of a signed open in reads.

mod common;

use common::*;
use hexz_format::layout::{DirectoryEntry, BLOCK_ENTRY_SIZE, DIRECTORY_ENTRY_SIZE, HEADER_SIZE};
use hexz_format::signature::{PublicKey, TRAILER_SIZE};
use hexz_format::writer::StoreOptions;
use hexz_format::{Archive, ErrorCode};
use hexz_io::sign::{self, SecretKey};
use hexz_io::{Location, OpenOptions, Reader, Store};
use zerocopy::FromBytes;

fn signed_minilm() -> (Vec<u8>, Vec<u8>, SecretKey) {
    let unsigned = store_bytes(&real_model("minilm.safetensors"), &StoreOptions::default());
    let key = SecretKey::generate().unwrap();
    let signed = sign::sign_bytes(&unsigned, &key, "publisher").unwrap();
    (unsigned, signed, key)
}

/// Whether `bytes`, opened with `trusted` required, gives any byte of the
/// virtual range `[offset, offset + len)` (which then must be what `good`
/// gives), or refuses. Open, then the read: refusal at either counts.
fn accepted(bytes: &[u8], trusted: &[PublicKey], offset: u64, len: u64) -> bool {
    let Ok(archive) = Archive::open(bytes) else { return false };
    if archive.check_signature(trusted).is_err() {
        return false;
    }
    let len = len.min(archive.virtual_size().saturating_sub(offset));
    archive.read_vec(offset, len).is_ok()
}

#[test]
fn every_flipped_bit_and_truncation_of_a_signed_archive_is_refused() {
    let (unsigned, signed, key) = signed_minilm();
    let trusted = [key.public()];
    let archive = Archive::open(signed.as_slice()).unwrap();
    archive.check_signature(&trusted).unwrap();
    let footer = *archive.footer();
    let end = archive.archive_end() as usize;
    let section = *archive.signature_section().unwrap();
    assert_eq!(&signed[HEADER_SIZE..end], &unsigned[HEADER_SIZE..end], "signing rewrote archive bytes");
    assert_eq!(
        archive.identity(),
        Archive::open(unsigned.as_slice()).unwrap().identity(),
        "signing changed the identity"
    );

    // Regions refused at open: header, directory, manifest, footer, signature section, trailer.
    let dir = footer.directory_offset.get() as usize;
    let mut at_open: Vec<usize> = (0..HEADER_SIZE).collect();
    at_open.extend(dir..signed.len());
    let (mut tried, mut taken) = (0u64, 0u64);
    let mut bytes = signed.clone();
    for &i in &at_open {
        bytes[i] ^= 1 << (i % 8);
        tried += 1;
        let ok = Archive::open(bytes.as_slice()).is_ok_and(|a| a.check_signature(&trusted).is_ok());
        if ok {
            taken += 1;
            eprintln!("accepted a flip at offset {i}");
        }
        bytes[i] ^= 1 << (i % 8);
    }
    // Index pages: refused when the page is used (its hash); walk every block.
    let mut pages = Vec::new();
    for p in 0..footer.page_count.get() as usize {
        let at = dir + p * DIRECTORY_ENTRY_SIZE;
        let e = DirectoryEntry::read_from_bytes(&signed[at..at + DIRECTORY_ENTRY_SIZE]).unwrap();
        pages.push((e.page_offset.get() as usize, e.entry_count.get() as usize * BLOCK_ENTRY_SIZE));
    }
    for &(start, len) in &pages {
        for i in start..start + len {
            bytes[i] ^= 1 << (i % 8);
            tried += 1;
            let walked = Archive::open(bytes.as_slice()).is_ok_and(|a| {
                a.check_signature(&trusted).is_ok() && {
                    let mut buf = vec![0u8; a.page_bytes()];
                    a.blocks(0, a.virtual_size(), &mut buf).is_ok_and(|mut b| b.all(|r| r.is_ok()))
                }
            });
            if walked {
                taken += 1;
                eprintln!("accepted a flip in the page at {start}, offset {i}");
            }
            bytes[i] ^= 1 << (i % 8);
        }
    }
    // One flip in each stored block, refused when the block is read.
    let mut buf = vec![0u8; archive.page_bytes()];
    let blocks: Vec<_> = archive.blocks(0, archive.virtual_size(), &mut buf).unwrap().map(Result::unwrap).collect();
    let mut stored = std::collections::HashSet::new();
    for b in &blocks {
        let e = &b.entry;
        if e.location != 0 || !stored.insert(e.stored_offset.get()) {
            continue;
        }
        let i = (e.stored_offset.get() + u64::from(e.stored_length.get()) / 2) as usize;
        bytes[i] ^= 1 << (i % 8);
        tried += 1;
        if accepted(&bytes, &trusted, e.virtual_offset.get(), u64::from(e.virtual_length.get())) {
            taken += 1;
            eprintln!("accepted a flip in block {} at offset {i}", b.index);
        }
        bytes[i] ^= 1 << (i % 8);
    }
    // Truncations: every length in the last 64 KiB, and some through the data.
    let mut cuts: Vec<usize> = (signed.len().saturating_sub(64 << 10)..signed.len()).collect();
    cuts.extend((0..signed.len()).step_by(signed.len() / 97));
    for cut in cuts {
        tried += 1;
        if Archive::open(&signed[..cut]).is_ok_and(|a| a.check_signature(&trusted).is_ok()) {
            taken += 1;
            eprintln!("accepted a truncation to {cut} bytes");
        }
    }
    eprintln!(
        "sweep: {tried} tampered variants (header, directory, manifest, footer, {} B signature section, trailer, \
         {} pages, {} blocks, truncations), {taken} accepted",
        section.length,
        pages.len(),
        stored.len()
    );
    assert_eq!(taken, 0, "{taken} of {tried} tampered variants were accepted");
    assert_eq!(signed.len() - end, section.length as usize + TRAILER_SIZE);
}

#[test]
fn unsigned_other_key_stripped_and_moved_signatures_are_refused() {
    let (unsigned, signed, key) = signed_minilm();
    let other = SecretKey::generate().unwrap();
    let code = |bytes: &[u8], trusted: &[PublicKey]| {
        let archive = Archive::open(bytes).unwrap();
        archive.check_signature(trusted).err().map(|e| (e.code(), e.to_string()))
    };
    // Unsigned.
    let (c, text) = code(&unsigned, &[key.public()]).unwrap();
    assert_eq!(c, ErrorCode::Signature);
    assert!(text.contains("not signed"), "{text}");
    // Another key.
    let (c, text) = code(&signed, &[other.public()]).unwrap();
    assert_eq!(c, ErrorCode::Signature);
    assert!(text.contains("no signature by a trusted key"), "{text}");
    // A trusted key among others is enough; a key with the right id and another key is not.
    assert!(code(&signed, &[other.public(), key.public()]).is_none());
    let forged = PublicKey { key_id: key.public().key_id, key: other.public().key };
    assert_eq!(code(&signed, &[forged]).unwrap().0, ErrorCode::Signature);
    // Stripped: the signature removed gives back the unsigned bytes, refused.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hxz");
    std::fs::write(&path, &signed).unwrap();
    assert_eq!(sign::unsign_file(&path, None).unwrap(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), unsigned, "removing the signature did not restore the bytes");
    // Moved: the signature section of this archive appended to another archive.
    let other_archive = store_bytes(b"another archive's bytes, quite different", &StoreOptions::default());
    let resigned = sign::sign_bytes(&other_archive, &other, "x").unwrap();
    let tail_start = Archive::open(signed.as_slice()).unwrap().archive_end() as usize;
    let other_end = Archive::open(resigned.as_slice()).unwrap().archive_end() as usize;
    let mut moved = resigned[..other_end].to_vec();
    moved.extend_from_slice(&signed[tail_start..]);
    let (c, text) = code(&moved, &[key.public()]).unwrap();
    assert_eq!(c, ErrorCode::Signature, "{text}");
    assert!(text.contains("does not match"), "{text}");
    // Without a trusted key, every one of them opens (signatures are optional).
    for b in [&unsigned, &signed, &moved] {
        Archive::open(b.as_slice()).unwrap();
    }
}

#[test]
fn signing_twice_and_by_two_keys() {
    let (unsigned, signed, key) = signed_minilm();
    let ci = SecretKey::generate().unwrap();
    // The same key again replaces its signature.
    let again = sign::sign_bytes(&signed, &key, "publisher, again").unwrap();
    let a = Archive::open(again.as_slice()).unwrap();
    assert_eq!(a.signature_records().unwrap().len(), 1);
    assert_eq!(a.signature_records().unwrap()[0].comment(), b"publisher, again");
    // Another key adds one: publisher and CI; each alone is enough.
    let both = sign::sign_bytes(&again, &ci, "ci").unwrap();
    let a = Archive::open(both.as_slice()).unwrap();
    let ids: Vec<_> = a.signature_records().unwrap().iter().map(|r| r.key_id().to_string()).collect();
    assert_eq!(ids, [key.public().key_id_hex().to_string(), ci.public().key_id_hex().to_string()]);
    assert_eq!(a.check_signature(&[ci.public()]).unwrap(), 0);
    assert_eq!(a.check_signature(&[key.public()]).unwrap(), 0);
    // The header says 1.4 while signed and its old minor once unsigned.
    assert_eq!(a.header().version_minor.get(), 4);
    let minor = Archive::open(unsigned.as_slice()).unwrap().header().version_minor.get();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.hxz");
    std::fs::write(&path, &both).unwrap();
    assert_eq!(sign::unsign_file(&path, Some(ci.public().key_id)).unwrap(), 1);
    assert_eq!(std::fs::read(&path).unwrap(), again);
    assert_eq!(sign::unsign_file(&path, None).unwrap(), 1);
    let back = std::fs::read(&path).unwrap();
    assert_eq!(back, unsigned);
    assert_eq!(Archive::open(back.as_slice()).unwrap().header().version_minor.get(), minor);
}

#[test]
fn a_signed_open_costs_no_extra_read() {
    let (unsigned, signed, key) = signed_minilm();
    let mut reads = Vec::new();
    for bytes in [unsigned, signed] {
        let src = Counting::new(bytes);
        let archive = Archive::open(src.clone()).unwrap();
        if archive.signature_section().is_some() {
            archive.check_signature(&[key.public()]).unwrap();
        }
        reads.push(src.take().0);
    }
    eprintln!("reads at open: unsigned {}, signed with the key checked {}", reads[0], reads[1]);
    assert_eq!(reads[0], reads[1]);
}

#[test]
fn a_signed_child_refuses_a_swapped_parent() {
    let dir = tempfile::tempdir().unwrap();
    let base_src: Vec<u8> = (0..600_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()).collect();
    let mut fine_src = base_src.clone();
    for b in fine_src.iter_mut().step_by(1000) {
        *b ^= 0x55;
    }
    let base = dir.path().join("base.hxz");
    let child = dir.path().join("child.hxz");
    Store::from_bytes(&base_src).to_path(&base).run().unwrap();
    Store::from_bytes(&fine_src).to_path(&child).base(Some(Location::Path(base.clone()))).run().unwrap();
    let key = SecretKey::generate().unwrap();
    sign::sign_file(&child, &key, "fine-tune").unwrap();
    let opts = OpenOptions { trusted_keys: vec![key.public()], ..OpenOptions::default() };
    let reader = Reader::open(child.as_path(), &opts).unwrap();
    assert_eq!(reader.read_vec(0, fine_src.len() as u64).unwrap(), fine_src);
    drop(reader);
    // Signing the base later keeps its identity, so the child still opens.
    sign::sign_file(&base, &SecretKey::generate().unwrap(), "base").unwrap();
    Reader::open(child.as_path(), &opts).unwrap();
    // Another valid archive where the parent was: refused, naming both identities.
    let mut other_src = base_src.clone();
    other_src[7] ^= 1;
    std::fs::remove_file(&base).unwrap();
    Store::from_bytes(&other_src).to_path(&base).run().unwrap();
    let err = Reader::open(child.as_path(), &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ParentMismatch, "{err}");
    // A child rewritten to name the other archive as its parent has another
    // identity: the signature no longer matches.
    let forged = dir.path().join("forged.hxz");
    Store::from_bytes(&fine_src).to_path(&forged).base(Some(Location::Path(base.clone()))).run().unwrap();
    let child_bytes = std::fs::read(&child).unwrap();
    let end = Archive::open(child_bytes.as_slice()).unwrap().archive_end() as usize;
    let mut forged_bytes = std::fs::read(&forged).unwrap();
    let header = sign::signed_header(
        Archive::open(forged_bytes.as_slice()).unwrap().header(),
        true,
        Archive::open(forged_bytes.as_slice()).unwrap().header().version_minor.get(),
    );
    forged_bytes[..HEADER_SIZE].copy_from_slice(zerocopy::IntoBytes::as_bytes(&header));
    forged_bytes.extend_from_slice(&child_bytes[end..]);
    std::fs::write(&forged, &forged_bytes).unwrap();
    let err = Reader::open(forged.as_path(), &opts).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Signature, "{err}");
}

#[test]
fn key_files_bad_permissions_and_contents() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("k.key"), dir.path().join("k.pub"));
    let public = sign::keygen(&sk, &pk, false).unwrap();
    // Unix permission bits: the secret key is written 0600, and a secret
    // key readable by others is refused. Windows has no such bits, and
    // SecretKey::load checks them on Unix only.
    #[cfg(unix)]
    use std::os::unix::fs::PermissionsExt;
    #[cfg(unix)]
    assert_eq!(std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(sign::load_public_key(&pk).unwrap(), public);
    assert_eq!(SecretKey::load(&sk).unwrap().public(), public);
    // Refuses to overwrite.
    assert!(sign::keygen(&sk, &pk, false).unwrap_err().to_string().contains("exists"));
    // Group-readable secret key.
    #[cfg(unix)]
    {
        std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = SecretKey::load(&sk).unwrap_err().to_string();
        assert!(e.contains("accessible by others") && e.contains("0640"), "{e}");
        std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = std::fs::read_to_string(&sk).unwrap();
    let bad = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    };
    let cases = [
        ("empty", String::new(), "empty key file"),
        ("garbage", "untrusted comment: x\n!!!not base64\n".into(), "bad base64"),
        ("short", "untrusted comment: x\nRWQ=\n".into(), "wrong length"),
        ("public-as-secret", std::fs::read_to_string(&pk).unwrap(), "this is a public key"),
    ];
    for (name, content, want) in &cases {
        let e = SecretKey::load(&bad(name, content)).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
    // A damaged secret key: its checksum catches it.
    let line = text.lines().nth(1).unwrap();
    let mut raw = base64_decode(line);
    raw[70] ^= 1;
    let damaged = format!("untrusted comment: x\n{}\n", base64_encode(&raw));
    let e = SecretKey::load(&bad("damaged", &damaged)).unwrap_err().to_string();
    assert!(e.contains("checksum"), "{e}");
    // A password-protected minisign key: a clear refusal.
    let mut enc = base64_decode(line);
    enc[2..4].copy_from_slice(b"Sc");
    let e = SecretKey::load(&bad("encrypted", &format!("untrusted comment: x\n{}\n", base64_encode(&enc))))
        .unwrap_err()
        .to_string();
    assert!(e.contains("password-protected"), "{e}");
    // Public keys: a secret key given as the public one, garbage.
    let e = sign::load_public_key(&sk).unwrap_err().to_string();
    assert!(e.contains("this is a secret key"), "{e}");
    let e = sign::load_public_key(&bad("garbage.pub", "hello\n")).unwrap_err().to_string();
    assert!(e.contains("not a minisign public key"), "{e}");
    // A trusted-keys folder: every .pub in it.
    let keys = dir.path().join("trusted");
    std::fs::create_dir(&keys).unwrap();
    assert!(sign::load_trusted_dir(&keys).unwrap_err().to_string().contains("no .pub"));
    std::fs::copy(&pk, keys.join("a.pub")).unwrap();
    assert_eq!(sign::load_trusted_dir(&keys).unwrap(), [public]);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The spec's signed vector (section 15.5): `gguf-lz4` signed by the test
/// key. `HEXZ_REGENERATE_VECTORS=1` rewrites it and its key files.
#[test]
fn spec_signed_vector_reproduces() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors");
    let key = SecretKey::from_seed([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef], &[0x42; 32]);
    let unsigned = std::fs::read(dir.join("gguf-lz4.hxz")).unwrap();
    let built = sign::sign_bytes(&unsigned, &key, "hexz test vector").unwrap();
    let public = sign::public_key_text(&key.public());
    if std::env::var_os("HEXZ_REGENERATE_VECTORS").is_some() {
        std::fs::write(dir.join("signed-gguf-lz4.hxz"), &built).unwrap();
        std::fs::copy(dir.join("gguf-lz4.expected"), dir.join("signed-gguf-lz4.expected")).unwrap();
        std::fs::write(dir.join("signed-test.pub"), &public).unwrap();
        let secret = dir.join("signed-test.key");
        std::fs::write(&secret, key.to_file_text()).unwrap();
    }
    assert_eq!(std::fs::read(dir.join("signed-gguf-lz4.hxz")).unwrap(), built, "the signed vector changed");
    assert_eq!(std::fs::read_to_string(dir.join("signed-test.pub")).unwrap(), public);
    let text = std::fs::read_to_string(dir.join("signed-test.key")).unwrap();
    assert_eq!(SecretKey::parse(&text, std::path::Path::new("signed-test.key")).unwrap().public(), key.public());
}
