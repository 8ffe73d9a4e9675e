//! Signing (format 1.4, spec section 15): minisign-compatible Ed25519 key
//! files, `keygen`, adding a signature to an archive without touching its
//! blocks, removing signatures, and the trusted keys readers are given.
//!
//! Key files are minisign's: a public key is two lines, an untrusted
//! comment and base64 of `"Ed" ‖ key id ‖ key`; a secret key is the
//! base64 of minisign's secret key structure. Unencrypted secret keys
//! (`minisign -G -W`, and what `hexz keygen` writes) are read;
//! password-protected ones are refused with a message saying so.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use hexz_format::layout::{features, short_checksum, FileHeader, HEADER_SIZE};
use hexz_format::signature::{
    root_message, trailer_checksum, KeyId, PublicKey, Record, RecordHeader, Trailer, ALGORITHM, MAX_COMMENT,
    MAX_SIGNATURES, TRAILER_MAGIC,
};
use hexz_format::{Archive, ErrorCode};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::error::{Error, Result};
use crate::location::FileSource;

const SECRET_KEY_BYTES: usize = 158;
const PUBLIC_KEY_BYTES: usize = 42;

/// A secret signing key with its minisign key id.
pub struct SecretKey {
    key_id: [u8; 8],
    signing: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", KeyId(self.key_id))
    }
}

fn bad_key(path: &Path, reason: impl Into<String>) -> Error {
    Error::Refused { path: path.to_path_buf(), reason: reason.into(), code: ErrorCode::InvalidArgument }
}

fn checksum(key_id: &[u8; 8], sk: &[u8; 64]) -> [u8; 32] {
    use blake2::digest::{Update, VariableOutput};
    let mut h = blake2::Blake2bVar::new(32).expect("32 is a valid BLAKE2b length");
    h.update(&ALGORITHM);
    h.update(key_id);
    h.update(sk);
    let mut out = [0u8; 32];
    h.finalize_variable(&mut out).expect("length 32");
    out
}

impl SecretKey {
    /// A new random key (the OS's random source).
    pub fn generate() -> Result<SecretKey> {
        let mut seed = [0u8; 32];
        let mut key_id = [0u8; 8];
        getrandom::fill(&mut seed).and_then(|()| getrandom::fill(&mut key_id)).map_err(|e| Error::File {
            path: PathBuf::from("(random source)"),
            op: "read random bytes",
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(SecretKey { key_id, signing: SigningKey::from_bytes(&seed) })
    }

    /// A key from its 32-byte Ed25519 seed and key id (test vectors; keys
    /// for use come from [`generate`](Self::generate)).
    pub fn from_seed(key_id: [u8; 8], seed: &[u8; 32]) -> SecretKey {
        SecretKey { key_id, signing: SigningKey::from_bytes(seed) }
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey { key_id: self.key_id, key: self.signing.verifying_key().to_bytes() }
    }

    /// The key file text: an unencrypted minisign secret key.
    pub fn to_file_text(&self) -> String {
        let mut raw = Vec::with_capacity(SECRET_KEY_BYTES);
        raw.extend_from_slice(&ALGORITHM);
        raw.extend_from_slice(&[0, 0]); // no KDF: not encrypted
        raw.extend_from_slice(b"B2");
        raw.extend_from_slice(&[0u8; 48]); // salt, opslimit, memlimit (unused without a KDF)
        raw.extend_from_slice(&self.key_id);
        let sk = self.signing.to_keypair_bytes();
        raw.extend_from_slice(&sk);
        raw.extend_from_slice(&checksum(&self.key_id, &sk));
        format!("untrusted comment: hexz secret key {} (unencrypted)\n{}\n", KeyId(self.key_id), B64.encode(raw))
    }

    /// Parse a minisign secret key file's text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<SecretKey> {
        let line = key_line(text, path)?;
        let raw = B64.decode(line).map_err(|_| bad_key(path, "not a minisign secret key (bad base64)"))?;
        if raw.len() != SECRET_KEY_BYTES {
            if raw.len() == PUBLIC_KEY_BYTES {
                return Err(bad_key(path, "this is a public key; signing needs the secret key"));
            }
            return Err(bad_key(path, "not a minisign secret key (wrong length)"));
        }
        if raw[0..2] != ALGORITHM {
            return Err(bad_key(path, "not an Ed25519 minisign secret key"));
        }
        if raw[2..4] == *b"Sc" {
            return Err(bad_key(
                path,
                "the secret key is password-protected; hexz reads unencrypted keys only \
                 (make one with `hexz keygen` or `minisign -G -W`)",
            ));
        }
        if raw[2..4] != [0, 0] || raw[4..6] != *b"B2" {
            return Err(bad_key(path, "unknown key derivation or checksum algorithm"));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&raw[54..62]);
        let mut sk = [0u8; 64];
        sk.copy_from_slice(&raw[62..126]);
        if checksum(&key_id, &sk)[..] != raw[126..158] {
            return Err(bad_key(path, "the secret key's checksum does not match (damaged key file)"));
        }
        let signing = SigningKey::from_keypair_bytes(&sk)
            .map_err(|_| bad_key(path, "the secret key's public half does not match its seed"))?;
        Ok(SecretKey { key_id, signing })
    }

    /// Read a secret key file. On Unix it must not be readable or writable
    /// by group or others (mode 0600 or stricter), as ssh requires.
    pub fn load(path: &Path) -> Result<SecretKey> {
        let text = read_key_file(path)?;
        // What the file is first (a public key given by mistake says so), then who may read it.
        let key = SecretKey::parse(&text, path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(|e| Error::file(path, "stat", e))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(bad_key(
                    path,
                    format!("secret key file is accessible by others (mode {:04o}); chmod 600 it", mode & 0o7777),
                ));
            }
        }
        Ok(key)
    }

    /// Sign the root of an archive of `identity`, with a trusted comment.
    pub fn sign_record(&self, identity: &[u8; 32], comment: &str) -> Result<(RecordHeader, Vec<u8>)> {
        check_comment(comment)?;
        let signature = self.signing.sign(&root_message(identity)).to_bytes();
        let mut global = Vec::with_capacity(64 + comment.len());
        global.extend_from_slice(&signature);
        global.extend_from_slice(comment.as_bytes());
        let global_signature = self.signing.sign(&global).to_bytes();
        let header = RecordHeader {
            algorithm: ALGORITHM,
            reserved: [0; 2],
            comment_length: U32::new(comment.len() as u32),
            key_id: self.key_id,
            signature,
            global_signature,
        };
        Ok((header, comment.as_bytes().to_vec()))
    }
}

fn check_comment(comment: &str) -> Result<()> {
    if comment.len() > MAX_COMMENT || comment.contains(['\n', '\r']) {
        return Err(Error::invalid("comment must be one line of at most 1024 bytes"));
    }
    Ok(())
}

fn read_key_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::file(path, "open", e))?;
    let mut text = String::new();
    Read::by_ref(&mut f).take(64 << 10).read_to_string(&mut text).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => bad_key(path, "not a key file (not text)"),
        _ => Error::file(path, "read", e),
    })?;
    Ok(text)
}

/// The base64 line of a key file: the first line that is not a comment.
fn key_line<'a>(text: &'a str, path: &Path) -> Result<&'a str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| bad_key(path, "empty key file"))?;
    if first.starts_with("untrusted comment:") {
        lines.next().ok_or_else(|| bad_key(path, "key file has a comment but no key"))
    } else {
        Ok(first)
    }
}

/// Parse a minisign public key: the file's text, or its base64 line alone.
pub fn parse_public_key(text: &str, path: &Path) -> Result<PublicKey> {
    let line = key_line(text, path)?;
    let raw = B64.decode(line).map_err(|_| bad_key(path, "not a minisign public key (bad base64)"))?;
    if raw.len() != PUBLIC_KEY_BYTES {
        if raw.len() == SECRET_KEY_BYTES {
            return Err(bad_key(path, "this is a secret key; give the public key (.pub)"));
        }
        return Err(bad_key(path, "not a minisign public key (wrong length)"));
    }
    if raw[0..2] != ALGORITHM {
        return Err(bad_key(path, "not an Ed25519 minisign public key"));
    }
    let mut key_id = [0u8; 8];
    key_id.copy_from_slice(&raw[2..10]);
    let mut key = [0u8; 32];
    key.copy_from_slice(&raw[10..42]);
    if ed25519_dalek::VerifyingKey::from_bytes(&key).is_err() {
        return Err(bad_key(path, "not a valid Ed25519 public key"));
    }
    Ok(PublicKey { key_id, key })
}

/// The public key file text (minisign's format).
pub fn public_key_text(key: &PublicKey) -> String {
    let mut raw = Vec::with_capacity(PUBLIC_KEY_BYTES);
    raw.extend_from_slice(&ALGORITHM);
    raw.extend_from_slice(&key.key_id);
    raw.extend_from_slice(&key.key);
    format!("untrusted comment: minisign public key {}\n{}\n", KeyId(key.key_id), B64.encode(raw))
}

/// Read a public key file.
pub fn load_public_key(path: &Path) -> Result<PublicKey> {
    parse_public_key(&read_key_file(path)?, path)
}

/// Every `*.pub` file of a folder, as trusted keys (at least one).
pub fn load_trusted_dir(dir: &Path) -> Result<Vec<PublicKey>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file(dir, "read the folder", e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(bad_key(dir, "no .pub key file in the trusted keys folder"));
    }
    paths.iter().map(|p| load_public_key(p)).collect()
}

/// Write a new key pair: the secret key with mode 0600, the public key
/// readable. Refuses to replace existing files unless `force`.
pub fn keygen(secret: &Path, public: &Path, force: bool) -> Result<PublicKey> {
    if !force {
        for p in [secret, public] {
            if p.exists() {
                return Err(Error::Refused {
                    path: p.to_path_buf(),
                    reason: "exists (--force replaces it)".into(),
                    code: ErrorCode::InvalidArgument,
                });
            }
        }
    }
    let key = SecretKey::generate()?;
    write_private(secret, key.to_file_text().as_bytes(), true)?;
    let pk = key.public();
    std::fs::write(public, public_key_text(&pk)).map_err(|e| Error::file(public, "write", e))?;
    Ok(pk)
}

/// Write a file readable by its owner only, atomically; an existing file
/// is refused unless `force`.
pub(crate) fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(Error::Refused {
            path: path.to_path_buf(),
            reason: "exists (--force replaces it)".into(),
            code: ErrorCode::InvalidArgument,
        });
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::Builder::new().prefix(".hexz-key").tempfile_in(dir).map_err(|e| Error::file(dir, "create", e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::file(path, "chmod", e))?;
    }
    tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all()).map_err(|e| Error::file(path, "write", e))?;
    tmp.persist(path).map_err(|e| Error::file(path, "rename into place", e.error))?;
    Ok(())
}

/// What [`sign_file`] did.
#[derive(Debug, Clone)]
pub struct SignOutcome {
    /// The archive's identity (unchanged by signing).
    pub identity: [u8; 32],
    /// The key id that signed.
    pub key_id: KeyId,
    /// Signatures the archive now carries.
    pub signatures: usize,
    /// Whether a signature by the same key was replaced.
    pub replaced: bool,
}

fn open_alone(path: &Path) -> Result<Archive<FileSource>> {
    let src = FileSource::open(path)?;
    // Signing needs no decryption key: the identity covers the encrypted bytes.
    Archive::open_locked(src, &Default::default())
        .map_err(|e| Error::At { location: crate::Location::Path(path.to_path_buf()), source: e })
}

/// Existing records, each as its header and comment.
fn existing(archive: &Archive<FileSource>, path: &Path) -> Result<Vec<(RecordHeader, Vec<u8>)>> {
    let records: Vec<Record> = archive
        .signature_records()
        .map_err(|e| Error::At { location: crate::Location::Path(path.to_path_buf()), source: e })?;
    Ok(records.into_iter().map(|r| (r.header, r.comment().to_vec())).collect())
}

/// Add a signature by `key` to the archive at `path` (replacing an earlier
/// one by the same key). The blocks, index and manifest are not touched:
/// the header gets the `SIGNED` bit, the signature section follows the
/// footer. The new file is written beside the old one and renamed over it,
/// so a crash leaves the old archive or the new one, never a mix.
pub fn sign_file(path: &Path, key: &SecretKey, comment: &str) -> Result<SignOutcome> {
    let archive = open_alone(path)?;
    let identity = archive.identity();
    let mut records = existing(&archive, path)?;
    let before = records.len();
    records.retain(|(h, _)| h.key_id != key.key_id);
    let replaced = records.len() != before;
    if records.len() >= MAX_SIGNATURES as usize {
        return Err(Error::invalid("an archive carries at most 64 signatures"));
    }
    records.push(key.sign_record(&identity, comment)?);
    let unsigned_minor = match archive.signature_section() {
        Some(s) => s.unsigned_minor,
        None => archive.header().version_minor.get(),
    };
    let end = archive.archive_end();
    let header = *archive.header();
    drop(archive);
    rewrite(path, &header, end, unsigned_minor, &records)?;
    Ok(SignOutcome { identity, key_id: KeyId(key.key_id), signatures: records.len(), replaced })
}

/// [`sign_file`] on an archive in memory: the signed archive's bytes.
pub fn sign_bytes(bytes: &[u8], key: &SecretKey, comment: &str) -> Result<Vec<u8>> {
    let archive = Archive::open_locked(bytes, &Default::default())?;
    let identity = archive.identity();
    let mut records: Vec<(RecordHeader, Vec<u8>)> =
        archive.signature_records()?.into_iter().map(|r| (r.header, r.comment().to_vec())).collect();
    records.retain(|(h, _)| h.key_id != key.key_id);
    if records.len() >= MAX_SIGNATURES as usize {
        return Err(Error::invalid("an archive carries at most 64 signatures"));
    }
    records.push(key.sign_record(&identity, comment)?);
    let unsigned_minor = match archive.signature_section() {
        Some(s) => s.unsigned_minor,
        None => archive.header().version_minor.get(),
    };
    let end = archive.archive_end() as usize;
    let mut out = Vec::with_capacity(end + 4096);
    out.extend_from_slice(signed_header(archive.header(), true, unsigned_minor).as_bytes());
    out.extend_from_slice(&bytes[HEADER_SIZE..end]);
    out.extend_from_slice(&signature_tail(&records, unsigned_minor));
    Ok(out)
}

/// Remove every signature (or only those by `key_id`): with none left the
/// archive is byte for byte what it was before it was signed.
pub fn unsign_file(path: &Path, key_id: Option<[u8; 8]>) -> Result<usize> {
    let archive = open_alone(path)?;
    let Some(section) = archive.signature_section().copied() else {
        return Ok(0);
    };
    let mut records = existing(&archive, path)?;
    let before = records.len();
    if let Some(id) = key_id {
        records.retain(|(h, _)| h.key_id != id);
    } else {
        records.clear();
    }
    let header = *archive.header();
    drop(archive);
    rewrite(path, &header, section.archive_end(), section.unsigned_minor, &records)?;
    Ok(before - records.len())
}

/// The signature section and trailer for `records`.
pub fn signature_tail(records: &[(RecordHeader, Vec<u8>)], unsigned_minor: u16) -> Vec<u8> {
    let mut section = Vec::new();
    for (h, comment) in records {
        section.extend_from_slice(h.as_bytes());
        section.extend_from_slice(comment);
    }
    let mut trailer = Trailer {
        magic: TRAILER_MAGIC,
        section_length: U64::new(section.len() as u64),
        signature_count: U32::new(records.len() as u32),
        unsigned_minor: U16::new(unsigned_minor),
        reserved: [0; 2],
        checksum: U64::new(0),
    };
    trailer.checksum = U64::new(trailer_checksum(&section, &trailer.as_bytes()[..24]));
    section.extend_from_slice(trailer.as_bytes());
    section
}

/// The header with the `SIGNED` bit set (or cleared, restoring `unsigned_minor`).
pub fn signed_header(header: &FileHeader, signed: bool, unsigned_minor: u16) -> FileHeader {
    let mut h = *header;
    let incompat = h.incompat_features.get();
    if signed {
        h.incompat_features = U64::new(incompat | features::SIGNED);
        h.version_minor = U16::new(unsigned_minor.max(features::minor_for(features::SIGNED)));
    } else {
        h.incompat_features = U64::new(incompat & !features::SIGNED);
        h.version_minor = U16::new(unsigned_minor);
    }
    h.checksum = U64::new(short_checksum(&h.as_bytes()[..HEADER_SIZE - 8]));
    h
}

fn rewrite(
    path: &Path,
    header: &FileHeader,
    end: u64,
    unsigned_minor: u16,
    records: &[(RecordHeader, Vec<u8>)],
) -> Result<()> {
    let signed = !records.is_empty();
    let new_header = signed_header(header, signed, unsigned_minor);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut src = std::fs::File::open(path).map_err(|e| Error::file(path, "open", e))?;
    let perms = src.metadata().map_err(|e| Error::file(path, "stat", e))?.permissions();
    let mut tmp =
        tempfile::Builder::new().prefix(".hexz-sign").tempfile_in(dir).map_err(|e| Error::file(dir, "create", e))?;
    let io = |e| Error::file(path, "write the signed copy", e);
    tmp.write_all(new_header.as_bytes()).map_err(io)?;
    src.seek(SeekFrom::Start(HEADER_SIZE as u64)).map_err(|e| Error::file(path, "seek", e))?;
    let body = end - HEADER_SIZE as u64;
    // File to file: the kernel copies (copy_file_range; a reflink where the file system has them).
    let copied = std::io::copy(&mut Read::by_ref(&mut src).take(body), tmp.as_file_mut()).map_err(io)?;
    if copied != body {
        return Err(Error::invalid("the archive changed while it was being signed"));
    }
    if signed {
        tmp.write_all(&signature_tail(records, unsigned_minor)).map_err(io)?;
    }
    tmp.as_file().set_permissions(perms).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // Closed before the rename: Windows refuses to replace a file that is
    // still open (access denied).
    drop(src);
    tmp.persist(path).map_err(|e| Error::file(path, "rename into place", e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A signature as minisign's `.minisig` text, for checking the archive's
/// root with the stock tool: `minisign -V -p KEY.pub -m ROOT -x SIG`,
/// where ROOT holds [`root_message`] of the archive's identity.
pub fn minisig_text(record: &RecordHeader, comment: &[u8]) -> String {
    let mut sig = Vec::with_capacity(74);
    sig.extend_from_slice(&record.algorithm);
    sig.extend_from_slice(&record.key_id);
    sig.extend_from_slice(&record.signature);
    format!(
        "untrusted comment: hexz archive signature\n{}\ntrusted comment: {}\n{}\n",
        B64.encode(sig),
        String::from_utf8_lossy(comment),
        B64.encode(record.global_signature)
    )
}
