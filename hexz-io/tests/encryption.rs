//! Encrypted archives (format 1.5, issue #34) on the real models: round
//! trips with a passphrase and with X25519 recipients, what stays hidden,
//! wrong and missing keys, a bit-flip sweep, chains under one key, the
//! reads an encrypted open and tensor cost, and the size it adds.

mod common;

use std::sync::Arc;

use common::*;
use hexz_format::crypt::{Argon2Cost, FileKey, KeySectionBuilder};
use hexz_format::layout::{DirectoryEntry, BLOCK_ENTRY_SIZE, DIRECTORY_ENTRY_SIZE, HEADER_SIZE};
use hexz_format::writer::{store_vec, Encryption, ParentSpec, StoreOptions};
use hexz_format::{Archive, ErrorCode, OpenLimits};
use hexz_io::keys::{self, EncryptTo, Keychain};
use hexz_io::{Location, OpenOptions, Reader, Store};
use sha2::{Digest, Sha256};
use zerocopy::FromBytes;
use zeroize::Zeroizing;

/// Cheap Argon2 for tests that open many times (the default is for users).
const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 256, time: 1, lanes: 1 };

fn encryption(passphrase: &[u8], recipients: &[[u8; 32]]) -> Encryption {
    EncryptTo {
        passphrases: vec![Zeroizing::new(passphrase.to_vec())],
        recipients: recipients.to_vec(),
        cost: Some(CHEAP),
    }
    .encryption()
    .unwrap()
}

fn encrypted_opts(enc: Encryption) -> StoreOptions {
    StoreOptions { encryption: Some(enc), ..StoreOptions::default() }
}

fn passphrase(p: &[u8]) -> Keychain {
    Keychain::new(vec![], vec![Zeroizing::new(p.to_vec())])
}

fn open<'a>(bytes: &'a [u8], keys: &Keychain) -> hexz_format::Result<Archive<&'a [u8]>> {
    Archive::open_unlocked(bytes, &OpenLimits::default(), keys)
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[test]
fn minilm_round_trips_with_a_passphrase_and_with_a_recipient_and_hides_its_names() {
    let src = real_model("minilm.safetensors");
    let identity = [0x42u8; 32];
    let recipient = hexz_format::crypt::x25519_public(&identity);
    let plain = store_bytes(&src, &StoreOptions::default());
    let bytes = store_bytes(&src, &encrypted_opts(encryption(b"correct horse", &[recipient])));

    // Size: the key section, nothing per block.
    let grown = bytes.len() as f64 / plain.len() as f64;
    eprintln!("archive {} bytes encrypted, {} plain: {grown:.6}x", bytes.len(), plain.len());
    assert!(grown < 1.005, "encrypted archive {grown}x the plain one");

    for keys in [passphrase(b"correct horse"), Keychain::new(vec![identity], vec![])] {
        let a = open(&bytes, &keys).unwrap();
        assert!(a.is_encrypted());
        assert_eq!(sha(&a.read_vec(0, a.virtual_size()).unwrap()), sha(&src));
        let m = a.manifest().unwrap();
        let t = m.tensors.iter().find(|t| t.name == "encoder.layer.3.attention.self.query.weight").unwrap();
        assert_eq!(a.tensor_bytes(&t.name).unwrap(), &src[t.offset as usize..(t.offset + t.length) as usize]);
    }

    // Hidden: tensor names (manifest and source header), dtype strings, the
    // source header's JSON; and the footer's source hash is keyed.
    for needle in [&b"encoder.layer.3.attention"[..], b"\"dtype\"", b"\"F32\"", b"HXZMANI"] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{:?} visible", String::from_utf8_lossy(needle));
    }
    let plain_archive = Archive::open(plain.as_slice()).unwrap();
    let a = open(&bytes, &passphrase(b"correct horse")).unwrap();
    assert_ne!(a.source_hash(), plain_archive.source_hash());
    // Block hashes are keyed: none equals the plain archive's.
    let mut page = vec![0u8; a.page_bytes()];
    let mut plain_page = vec![0u8; plain_archive.page_bytes()];
    let plain_hashes: std::collections::HashSet<[u8; 32]> = plain_archive
        .blocks(0, plain_archive.virtual_size(), &mut plain_page)
        .unwrap()
        .map(|b| b.unwrap().entry.hash)
        .collect();
    for b in a.blocks(0, a.virtual_size(), &mut page).unwrap() {
        let h = b.unwrap().entry.hash;
        assert!(!plain_hashes.iter().any(|p| p[..16] == h[..16]), "a block hash is the plain BLAKE3");
    }
}

#[test]
fn missing_wrong_keys_and_damaged_ciphertext_are_named() {
    let src = real_model("minilm.safetensors");
    let bytes = store_bytes(&src, &encrypted_opts(encryption(b"right", &[])));
    assert_eq!(Archive::open(bytes.as_slice()).unwrap_err().code(), ErrorCode::KeyRequired);
    assert_eq!(open(&bytes, &passphrase(b"wrong")).unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(open(&bytes, &Keychain::new(vec![[7; 32]], vec![])).unwrap_err().code(), ErrorCode::WrongKey);
    assert_eq!(open(&bytes, &Keychain::default()).unwrap_err().code(), ErrorCode::KeyRequired);
    // A flipped byte in a stored block: DECRYPT, naming the block; never bytes.
    let a = open(&bytes, &passphrase(b"right")).unwrap();
    let mut page = vec![0u8; a.page_bytes()];
    let e = a.blocks(0, a.virtual_size(), &mut page).unwrap().nth(3).unwrap().unwrap().entry;
    let mut bad = bytes.clone();
    bad[e.stored_offset.get() as usize + 1] ^= 0x10;
    let a = open(&bad, &passphrase(b"right")).unwrap();
    let err = a.read_vec(e.virtual_offset.get(), u64::from(e.virtual_length.get())).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Decrypt, "{err}");
    assert!(err.to_string().contains("authentication tag"), "{err}");
    // The same through the parallel Reader and the options front ends use.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.hxz");
    std::fs::write(&path, &bad).unwrap();
    let opts = OpenOptions { keys: Some(Arc::new(passphrase(b"right"))), ..OpenOptions::default() };
    let r = Reader::open(Location::Path(path), &opts).unwrap();
    assert_eq!(r.read_vec(0, r.size()).unwrap_err().code(), ErrorCode::Decrypt);
}

/// Whether `bytes` (opened with `keys`) gives any byte of the range, which
/// then must equal `good`'s.
fn accepted(bytes: &[u8], keys: &Keychain, good: &[u8], offset: u64, len: u64) -> bool {
    let Ok(a) = open(bytes, keys) else { return false };
    let len = len.min(a.virtual_size().saturating_sub(offset));
    match a.read_vec(offset, len) {
        Ok(v) => {
            assert_eq!(v, &good[offset as usize..(offset + len) as usize], "wrong bytes served at {offset}");
            true
        }
        Err(_) => false,
    }
}

#[test]
fn every_flip_of_structure_and_one_per_block_is_refused() {
    let src = real_model("minilm.safetensors");
    let bytes = store_bytes(&src, &encrypted_opts(encryption(b"pw", &[])));
    let keys = passphrase(b"pw");
    let a = open(&bytes, &keys).unwrap();
    let footer = *a.footer();
    let dir = footer.directory_offset.get() as usize;
    let (mut tried, mut taken) = (0u64, 0u64);
    let mut b = bytes.clone();
    // Header, directory, key section, manifest ciphertext, footer: refused at open.
    for i in (0..HEADER_SIZE).chain(dir..bytes.len()) {
        b[i] ^= 1 << (i % 8);
        tried += 1;
        if open(&b, &keys).is_ok() {
            taken += 1;
            eprintln!("accepted a flip at offset {i}");
        }
        b[i] ^= 1 << (i % 8);
    }
    // Index pages: refused when walked (their hashes).
    let mut page_bytes = Vec::new();
    for p in 0..footer.page_count.get() as usize {
        let at = dir + p * DIRECTORY_ENTRY_SIZE;
        let e = DirectoryEntry::read_from_bytes(&bytes[at..at + DIRECTORY_ENTRY_SIZE]).unwrap();
        page_bytes.extend(
            e.page_offset.get() as usize
                ..e.page_offset.get() as usize + e.entry_count.get() as usize * BLOCK_ENTRY_SIZE,
        );
    }
    for i in page_bytes {
        b[i] ^= 1 << (i % 8);
        tried += 1;
        let walked = open(&b, &keys).is_ok_and(|a| {
            let mut page = vec![0u8; a.page_bytes()];
            a.blocks(0, a.virtual_size(), &mut page).is_ok_and(|mut blocks| blocks.all(|x| x.is_ok()))
        });
        if walked {
            taken += 1;
            eprintln!("accepted a page flip at offset {i}");
        }
        b[i] ^= 1 << (i % 8);
    }
    // One bit in every stored block (first, middle, last byte in turn): refused when read.
    let mut page = vec![0u8; a.page_bytes()];
    let entries: Vec<_> = a.blocks(0, a.virtual_size(), &mut page).unwrap().map(|x| x.unwrap().entry).collect();
    for (k, e) in entries.iter().enumerate() {
        let slen = e.stored_length.get() as usize;
        let i = e.stored_offset.get() as usize + [0, slen / 2, slen - 1][k % 3];
        b[i] ^= 1 << (k % 8);
        tried += 1;
        if accepted(&b, &keys, &src, e.virtual_offset.get(), u64::from(e.virtual_length.get())) {
            taken += 1;
            eprintln!("accepted a flip in block {k} at offset {i}");
        }
        b[i] ^= 1 << (k % 8);
    }
    eprintln!("{tried} flipped copies, {taken} accepted");
    assert_eq!(taken, 0);
}

#[test]
fn a_fine_tune_takes_its_encrypted_base_key_dedups_and_refuses_mixing() {
    let base_src = real_model("minilm.safetensors");
    let header = hexz_format::safetensors::header_length(&base_src, base_src.len() as u64).unwrap() as usize;
    let mut fine = base_src.clone();
    for c in fine[header..header + (20 << 20)].chunks_exact_mut(16) {
        c[0] ^= 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let (base_path, fine_path, child_path) =
        (dir.path().join("base.hxz"), dir.path().join("fine.safetensors"), dir.path().join("fine.hxz"));
    std::fs::write(&fine_path, &fine).unwrap();
    let enc = encryption(b"team secret", &[]);
    std::fs::write(&base_path, store_bytes(&base_src, &encrypted_opts(enc))).unwrap();
    let keys = Arc::new(passphrase(b"team secret"));
    let open_opts = OpenOptions { keys: Some(keys.clone()), ..OpenOptions::default() };

    // Stored against the base: encrypted under its key, without being told.
    let report = Store::from_path(&fine_path)
        .to_path(&child_path)
        .base(Some(Location::Path(base_path.clone())))
        .open_options(open_opts.clone())
        .run()
        .unwrap();
    assert!(report.parent_blocks > 0, "no block deduplicated against the encrypted base");
    assert!(report.delta_blocks > 0, "no delta against the encrypted base");
    let child = std::fs::read(&child_path).unwrap();
    assert!(child.len() < fine.len() / 3, "child {} bytes", child.len());
    let r = Reader::open(Location::Path(child_path.clone()), &open_opts).unwrap();
    assert!(r.archive().is_encrypted());
    assert_eq!(sha(&r.read_vec(0, r.size()).unwrap()), sha(&fine));
    // Without the key the child does not open.
    let e = Reader::open(Location::Path(child_path.clone()), &OpenOptions::default()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::KeyRequired);

    // Another key for the child: refused.
    let other = Store::from_path(&fine_path)
        .to_path(dir.path().join("other.hxz"))
        .base(Some(Location::Path(base_path.clone())))
        .open_options(open_opts.clone())
        .encryption(Some(encryption(b"another", &[])))
        .run()
        .unwrap_err();
    assert_eq!(other.code(), ErrorCode::WrongKey, "{other}");
    assert!(!dir.path().join("other.hxz").exists());

    // An encrypted child of a plain base, and (in the core) a plain child of an encrypted base: refused.
    let plain_base = dir.path().join("plain.hxz");
    std::fs::write(&plain_base, store_bytes(&base_src, &StoreOptions::default())).unwrap();
    let e = Store::from_path(&fine_path)
        .to_path(dir.path().join("mixed.hxz"))
        .base(Some(Location::Path(plain_base)))
        .encryption(Some(encryption(b"x", &[])))
        .run()
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::WrongKey, "{e}");
    let base_bytes = std::fs::read(&base_path).unwrap();
    let base = open(&base_bytes, &keys).unwrap();
    let e = store_vec(fine.as_slice(), &StoreOptions::default(), Some(ParentSpec { archive: &base, hint: "b".into() }))
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::WrongKey, "{e}");

    // A chain whose parent is under another key: refused when attached.
    let stranger = store_bytes(&base_src, &encrypted_opts(encryption(b"team secret", &[])));
    let child_archive = Archive::open_unlocked(child.as_slice(), &OpenLimits::default(), keys.as_ref()).unwrap();
    let stranger = Archive::open_unlocked(stranger.as_slice(), &OpenLimits::default(), keys.as_ref()).unwrap();
    let e = child_archive.with_ancestors(vec![stranger]).unwrap_err();
    assert!(matches!(e.code(), ErrorCode::WrongKey | ErrorCode::ParentMismatch), "{e}");
}

#[test]
fn an_encrypted_open_and_tensor_cost_the_reads_a_plain_one_does() {
    let src = real_model("minilm.safetensors");
    let plain = Counting::new(store_bytes(&src, &StoreOptions::default()));
    let enc = Counting::new(store_bytes(&src, &encrypted_opts(encryption(b"pw", &[]))));
    let keys = passphrase(b"pw");
    let name = "encoder.layer.5.output.dense.weight";
    let count = |c: &Arc<Counting>, encrypted: bool| {
        c.take();
        let a = if encrypted {
            Archive::open_unlocked(as_source(c), &OpenLimits::default(), &keys).unwrap()
        } else {
            Archive::open(as_source(c)).unwrap()
        };
        let at_open = c.take().0;
        let t = a.tensor_bytes(name).unwrap();
        (at_open, c.take().0, t)
    };
    let (p_open, p_tensor, p) = count(&plain, false);
    let (e_open, e_tensor, e) = count(&enc, true);
    assert_eq!(p, e);
    eprintln!("reads at open: plain {p_open}, encrypted {e_open}; one tensor: {p_tensor} and {e_tensor}");
    assert_eq!((e_open, e_tensor), (p_open, p_tensor));
}

#[test]
fn signing_an_encrypted_archive_needs_no_key() {
    let src = real_model("minilm.safetensors");
    let bytes = store_bytes(&src, &encrypted_opts(encryption(b"pw", &[])));
    let key = hexz_io::sign::SecretKey::generate().unwrap();
    let signed = hexz_io::sign::sign_bytes(&bytes, &key, "ci").unwrap();
    let a = open(&signed, &passphrase(b"pw")).unwrap();
    a.check_signature(&[key.public()]).unwrap();
    assert_eq!(sha(&a.read_vec(0, a.virtual_size()).unwrap()), sha(&src));
    // Locked (no key): structure, identity and signature, nothing else.
    let locked = Archive::open_locked(signed.as_slice(), &OpenLimits::default()).unwrap();
    assert!(locked.is_locked());
    locked.check_signature(&[key.public()]).unwrap();
    assert_eq!(locked.manifest().unwrap_err().code(), ErrorCode::KeyRequired);
    assert_eq!(locked.read_vec(0, 16).unwrap_err().code(), ErrorCode::KeyRequired);
}

#[test]
fn identity_and_recipient_files_round_trip_and_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let id_path = dir.path().join("me.key");
    let recipient = keys::keygen_x25519(&id_path, false).unwrap();
    assert!(recipient.starts_with("age1"));
    let ids = keys::load_identities(&id_path).unwrap();
    assert_eq!(keys::recipient_text(&hexz_format::crypt::x25519_public(&ids[0])), recipient);
    assert_eq!(keys::parse_recipient(&recipient).unwrap(), hexz_format::crypt::x25519_public(&ids[0]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&id_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(keys::keygen_x25519(&id_path, false).is_err(), "an identity file was replaced");
    let pub_path = dir.path().join("me.pub");
    std::fs::write(&pub_path, format!("{recipient}\n")).unwrap();
    let e = keys::load_identities(&pub_path).unwrap_err().to_string();
    assert!(e.contains("recipient"), "{e}");
    assert!(keys::parse_recipient("age1notakey").is_err());
    let file_key = FileKey::from_bytes([1; 32]);
    let mut section = KeySectionBuilder::new(file_key, [0; 12]);
    for _ in 0..64 {
        section.add_x25519(&[9; 32], [3; 32]).unwrap();
    }
    assert!(section.add_x25519(&[9; 32], [3; 32]).is_err(), "more than 64 stanzas");
}
