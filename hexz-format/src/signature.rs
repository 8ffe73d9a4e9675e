//! Signed archives (format 1.4, feature `SIGNED`, spec section 15).
//!
//! A signed archive is an archive followed by a signature section and a
//! 32-byte trailer:
//!
//! ```text
//! [ header ][ data ][ directory ][ manifest ][ footer ][ signatures ][ trailer: 32 ]
//! ```
//!
//! Each signature is a minisign signature (Ed25519, "Ed": the message
//! itself, not prehashed) over the fixed 52-byte message
//! [`ROOT_DOMAIN`] ‖ identity, plus minisign's global signature over the
//! signature and its trusted comment. The identity already commits to every
//! block hash, index page, the manifest (source header length, metadata,
//! file table, parent identity) and the footer, and signing does not change
//! it: a child that pins a base keeps pinning it after the base is signed.
//!
//! Everything here works without `alloc`: records are read one at a time
//! into a fixed buffer.

use ed25519_dalek::{Signature, VerifyingKey};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, Result};
use crate::source::ReadAt;

/// Magic at the start of the trailer, the last [`TRAILER_SIZE`] bytes of a signed archive.
pub const TRAILER_MAGIC: [u8; 8] = *b"HXZSIGS\x00";
/// Bytes of the trailer.
pub const TRAILER_SIZE: usize = 32;
/// Bytes of a signature record before its trusted comment.
pub const RECORD_HEADER_SIZE: usize = 144;
/// Longest trusted comment, in bytes.
pub const MAX_COMMENT: usize = 1024;
/// Most signatures one archive carries.
pub const MAX_SIGNATURES: u32 = 64;
/// Largest signature section.
pub const MAX_SECTION: u64 = MAX_SIGNATURES as u64 * (RECORD_HEADER_SIZE + MAX_COMMENT) as u64;
/// Domain separation: the signed message is this string followed by the identity.
pub const ROOT_DOMAIN: &[u8; 20] = b"hexz-signed-root-v1\x00";
/// Bytes of the signed message.
pub const ROOT_MESSAGE_SIZE: usize = 52;
/// minisign's signature algorithm id for Ed25519 over the message itself.
pub const ALGORITHM: [u8; 2] = *b"Ed";

/// The message a signature signs: [`ROOT_DOMAIN`] ‖ identity.
pub fn root_message(identity: &[u8; 32]) -> [u8; ROOT_MESSAGE_SIZE] {
    let mut m = [0u8; ROOT_MESSAGE_SIZE];
    m[..20].copy_from_slice(ROOT_DOMAIN);
    m[20..].copy_from_slice(identity);
    m
}

/// The trailer that ends a signed archive.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Trailer {
    /// [`TRAILER_MAGIC`].
    pub magic: [u8; 8],
    /// Bytes of the signature section, which ends where the trailer starts.
    pub section_length: U64,
    /// Signature records in the section, 1..=[`MAX_SIGNATURES`].
    pub signature_count: U32,
    /// The header's `version_minor` before the archive was signed: removing
    /// every signature restores it, giving back the unsigned bytes.
    pub unsigned_minor: U16,
    /// Zero.
    pub reserved: [u8; 2],
    /// `check64(section ‖ trailer[0..24])`.
    pub checksum: U64,
}

const _: () = assert!(core::mem::size_of::<Trailer>() == TRAILER_SIZE);

/// The fixed start of a signature record.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RecordHeader {
    /// [`ALGORITHM`] (`"Ed"`).
    pub algorithm: [u8; 2],
    /// Zero.
    pub reserved: [u8; 2],
    /// Bytes of the trusted comment that follows, 0..=[`MAX_COMMENT`].
    pub comment_length: U32,
    /// minisign key id of the signing key.
    pub key_id: [u8; 8],
    /// Ed25519 signature of [`root_message`].
    pub signature: [u8; 64],
    /// Ed25519 signature of `signature ‖ trusted comment` (minisign's global signature).
    pub global_signature: [u8; 64],
}

const _: () = assert!(core::mem::size_of::<RecordHeader>() == RECORD_HEADER_SIZE);

/// A public key a reader trusts: minisign's key id and the Ed25519 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// minisign key id (8 bytes; shown as 16 upper-case hex digits of the little-endian u64).
    pub key_id: [u8; 8],
    /// The Ed25519 public key.
    pub key: [u8; 32],
}

impl PublicKey {
    /// The key id as minisign prints it.
    pub fn key_id_hex(&self) -> KeyId {
        KeyId(self.key_id)
    }
}

/// A key id that prints as minisign does (`%016llX` of the little-endian u64).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyId(pub [u8; 8]);

impl core::fmt::Display for KeyId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// Where the signature section of an archive is (`None`: unsigned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureSection {
    /// Archive offset of the section (the end of the footer).
    pub offset: u64,
    /// Its length.
    pub length: u64,
    /// Records in it.
    pub count: u32,
    /// The header's `version_minor` without the signatures.
    pub unsigned_minor: u16,
}

impl SignatureSection {
    /// Archive offset where the unsigned archive ends (the footer's end).
    pub fn archive_end(&self) -> u64 {
        self.offset
    }
}

/// One signature record, as read from the section.
#[derive(Clone, Debug)]
pub struct Record {
    /// The record's fixed part.
    pub header: RecordHeader,
    /// Archive offset of the record.
    pub offset: u64,
    comment: [u8; MAX_COMMENT],
    comment_len: usize,
}

impl Record {
    /// The trusted comment's bytes (authenticated by the global signature).
    pub fn comment(&self) -> &[u8] {
        self.comment.get(..self.comment_len).unwrap_or(&[])
    }

    /// The key id that made the record.
    pub fn key_id(&self) -> KeyId {
        KeyId(self.header.key_id)
    }

    /// Check both signatures with `key` for an archive of `identity`.
    pub fn verify(&self, key: &PublicKey, identity: &[u8; 32]) -> Result<()> {
        let bad = |reason| Error::Signature { reason };
        if self.header.key_id != key.key_id {
            return Err(bad("signed by another key"));
        }
        let vk = VerifyingKey::from_bytes(&key.key).map_err(|_| bad("trusted key is not a valid Ed25519 key"))?;
        let sig = Signature::from_bytes(&self.header.signature);
        vk.verify_strict(&root_message(identity), &sig)
            .map_err(|_| bad("signature does not match this archive's root"))?;
        // minisign's global signature: the signature followed by the trusted comment.
        let mut global = [0u8; 64 + MAX_COMMENT];
        global[..64].copy_from_slice(&self.header.signature);
        global[64..64 + self.comment_len].copy_from_slice(self.comment());
        let gsig = Signature::from_bytes(&self.header.global_signature);
        vk.verify_strict(&global[..64 + self.comment_len], &gsig)
            .map_err(|_| bad("trusted comment does not match its signature"))?;
        Ok(())
    }
}

/// Where the footer starts in `tail`, the last bytes of a file: before
/// the signature section when `tail` ends with a plausible trailer, else
/// its last 192 bytes. For caches that keep a file's tail; readers get the
/// checked answer from [`read_trailer`] at open.
pub fn footer_in_tail(tail: &[u8]) -> Option<usize> {
    let footer = crate::layout::FOOTER_SIZE;
    let Some(raw) = tail.len().checked_sub(TRAILER_SIZE).and_then(|at| tail.get(at..)) else {
        return tail.len().checked_sub(footer);
    };
    match Trailer::read_from_bytes(raw) {
        Ok(t) if t.magic == TRAILER_MAGIC && t.section_length.get() <= MAX_SECTION => {
            tail.len().checked_sub(TRAILER_SIZE + t.section_length.get() as usize + footer)
        }
        _ => tail.len().checked_sub(footer),
    }
}

/// Read and check the trailer of a signed archive of `file_len` bytes.
/// Returns where the section is; the footer ends where it starts.
pub fn read_trailer<R: ReadAt + ?Sized>(src: &R, file_len: u64) -> Result<SignatureSection> {
    let min = (crate::layout::HEADER_SIZE + crate::layout::FOOTER_SIZE + TRAILER_SIZE + RECORD_HEADER_SIZE) as u64;
    if file_len < min {
        return Err(Error::Truncated { what: "signed archive", offset: 0, needed: min, available: file_len });
    }
    let at = file_len - TRAILER_SIZE as u64;
    let mut raw = [0u8; TRAILER_SIZE];
    src.read_exact_at(at, &mut raw)?;
    let trailer =
        Trailer::read_from_bytes(&raw).map_err(|_| Error::invalid("signature trailer", at, "size mismatch"))?;
    if trailer.magic != TRAILER_MAGIC {
        return Err(Error::invalid(
            "signature trailer magic",
            at,
            "the header says the archive is signed but it does not end with a signature trailer",
        ));
    }
    if trailer.reserved != [0; 2] {
        return Err(Error::invalid("signature trailer reserved bytes", at + 22, "must be zero"));
    }
    // An unsigned archive never declares 1.4 (SIGNED's own minor); from 1.5
    // on (ENCRYPTED) its minor may be above it.
    if trailer.unsigned_minor.get() == crate::layout::features::minor_for(crate::layout::features::SIGNED) {
        return Err(Error::invalid("signature trailer unsigned_minor", at + 20, "must not be 4"));
    }
    let count = trailer.signature_count.get();
    if count == 0 || count > MAX_SIGNATURES {
        return Err(Error::invalid("signature trailer signature_count", at + 16, "must be 1 to 64"));
    }
    let length = trailer.section_length.get();
    if length < u64::from(count) * RECORD_HEADER_SIZE as u64 || length > MAX_SECTION {
        return Err(Error::invalid("signature trailer section_length", at + 8, "out of range for its count"));
    }
    let offset = at
        .checked_sub(length)
        .filter(|o| *o >= (crate::layout::HEADER_SIZE + crate::layout::FOOTER_SIZE) as u64)
        .ok_or(Error::invalid("signature trailer section_length", at + 8, "longer than the file"))?;
    // The checksum covers the section and the trailer's first 24 bytes.
    let mut hasher = blake3::Hasher::new();
    let mut chunk = [0u8; 4096];
    let mut done = 0u64;
    while done < length {
        let n = (length - done).min(chunk.len() as u64) as usize;
        src.read_exact_at(offset + done, &mut chunk[..n])?;
        hasher.update(&chunk[..n]);
        done += n as u64;
    }
    hasher.update(&raw[..24]);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    if u64::from_le_bytes(sum) != trailer.checksum.get() {
        return Err(Error::Checksum { what: "signature section", offset });
    }
    let section = SignatureSection { offset, length, count, unsigned_minor: trailer.unsigned_minor.get() };
    // Every record well-formed, and the records fill the section exactly.
    let mut next = offset;
    for _ in 0..count {
        let record = read_record(src, next, offset + length)?;
        next = record.offset + (RECORD_HEADER_SIZE + record.comment_len) as u64;
    }
    if next != offset + length {
        return Err(Error::invalid("signature section", next, "records do not fill the section exactly"));
    }
    Ok(section)
}

/// The trailer's checksum for `section` bytes and a trailer's first 24 bytes.
pub fn trailer_checksum(section: &[u8], trailer_head: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(section);
    hasher.update(trailer_head);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(sum)
}

fn read_record<R: ReadAt + ?Sized>(src: &R, at: u64, end: u64) -> Result<Record> {
    let mut raw = [0u8; RECORD_HEADER_SIZE];
    if at + RECORD_HEADER_SIZE as u64 > end {
        return Err(Error::invalid("signature record", at, "runs past the section"));
    }
    src.read_exact_at(at, &mut raw)?;
    let header =
        RecordHeader::read_from_bytes(&raw).map_err(|_| Error::invalid("signature record", at, "size mismatch"))?;
    if header.algorithm != ALGORITHM {
        return Err(Error::invalid("signature record algorithm", at, "not \"Ed\" (Ed25519)"));
    }
    if header.reserved != [0; 2] {
        return Err(Error::invalid("signature record reserved bytes", at + 2, "must be zero"));
    }
    let comment_len = header.comment_length.get() as usize;
    if comment_len > MAX_COMMENT {
        return Err(Error::invalid("signature record comment_length", at + 4, "over 1024 bytes"));
    }
    let body = at + RECORD_HEADER_SIZE as u64;
    if body + comment_len as u64 > end {
        return Err(Error::invalid("signature record comment_length", at + 4, "runs past the section"));
    }
    let mut comment = [0u8; MAX_COMMENT];
    src.read_exact_at(body, &mut comment[..comment_len])?;
    if core::str::from_utf8(&comment[..comment_len]).is_err() || comment[..comment_len].contains(&b'\n') {
        return Err(Error::invalid("signature record trusted comment", body, "not one line of UTF-8"));
    }
    Ok(Record { header, offset: at, comment, comment_len })
}

/// The records of a section, in order.
pub fn records<'a, R: ReadAt + ?Sized>(src: &'a R, section: &SignatureSection) -> Records<'a, R> {
    Records { src, next: section.offset, end: section.offset + section.length, left: section.count }
}

/// Iterator over the records of a signature section.
pub struct Records<'a, R: ?Sized> {
    src: &'a R,
    next: u64,
    end: u64,
    left: u32,
}

impl<R: ReadAt + ?Sized> Iterator for Records<'_, R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let record = read_record(self.src, self.next, self.end);
        if let Ok(r) = &record {
            self.next = r.offset + (RECORD_HEADER_SIZE + r.comment_len) as u64;
        } else {
            self.left = 0;
        }
        Some(record)
    }
}

/// Check that a record made by one of `trusted` signs `identity`. Returns
/// the index of the trusted key that matched.
pub fn check<R: ReadAt + ?Sized>(
    src: &R,
    section: Option<&SignatureSection>,
    identity: &[u8; 32],
    trusted: &[PublicKey],
) -> Result<usize> {
    let Some(section) = section else {
        return Err(Error::Signature { reason: "the archive is not signed and a trusted key is required" });
    };
    let mut failure = None;
    for record in records(src, section) {
        let record = record?;
        for (i, key) in trusted.iter().enumerate() {
            if key.key_id != record.header.key_id {
                continue;
            }
            match record.verify(key, identity) {
                Ok(()) => return Ok(i),
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    Err(failure.unwrap_or(Error::Signature { reason: "no signature by a trusted key" }))
}
