//! Encrypted archives (format 1.5, feature `ENCRYPTED`, spec section 16).
//!
//! One random 32-byte **file key** per chain. Its subkeys (BLAKE3
//! `derive_key`) encrypt blocks and the manifest with AES-256-GCM-SIV and
//! key the block hashes, so equal plaintext cannot be confirmed by anyone
//! without the key, while dedup still works under one key.
//!
//! A block's stored bytes are the ciphertext of what a plain archive would
//! store, of the same length; the 16-byte tag goes into the second half of
//! the entry's `hash` field, whose first half is the keyed hash of the
//! decoded block. The nonce is the keyed hash's first 12 bytes: it repeats
//! only for the same decoded block, and GCM-SIV (RFC 8452) is built for
//! that: a repeat with other stored bytes reveals only that they differ.
//! So the index, the run reads and every length rule stay as they are.
//!
//! The manifest region is a key section (the file key wrapped for each
//! passphrase and X25519 recipient, and the manifest's nonce and tag)
//! followed by the manifest's ciphertext, of the manifest's length.

use alloc::vec::Vec;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::layout::BlockEntry;

/// Magic at the start of the key section (the manifest region's start).
pub const KEY_SECTION_MAGIC: [u8; 8] = *b"HXZKEYS\x00";
/// Bytes of the key section before its stanzas.
pub const KEY_SECTION_HEADER: usize = 48;
/// Bytes of an AES-GCM-SIV or ChaCha20-Poly1305 tag.
pub const TAG_SIZE: usize = 16;
/// Bytes of the key id.
pub const KEY_ID_SIZE: usize = 16;
/// Most stanzas (passphrases and recipients) in one key section.
pub const MAX_STANZAS: u16 = 64;
/// Stanza kind: the file key wrapped by a key from a passphrase (Argon2id).
pub const STANZA_PASSPHRASE: u8 = 1;
/// Stanza kind: the file key wrapped for an X25519 recipient (as age does).
pub const STANZA_X25519: u8 = 2;
/// Bytes of a wrapped file key: 32 of ciphertext and a 16-byte tag.
pub const WRAPPED_SIZE: usize = 32 + TAG_SIZE;
/// Body of a passphrase stanza: salt, m_cost, t_cost, parallelism, wrapped key.
pub const PASSPHRASE_BODY: usize = 16 + 12 + WRAPPED_SIZE;
/// Body of an X25519 stanza: the ephemeral share and the wrapped key.
pub const X25519_BODY: usize = 32 + WRAPPED_SIZE;
/// Largest key section a reader accepts.
pub const MAX_KEY_SECTION: usize = KEY_SECTION_HEADER + MAX_STANZAS as usize * (4 + X25519_BODY) + TAG_SIZE;
/// HKDF info of the X25519 stanza: age's, so the construction is age's.
pub const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";

const CONTEXT_BLOCK: &str = "hexz 2026-12-02 block encryption";
const CONTEXT_HASH: &str = "hexz 2026-12-02 block hash";
const CONTEXT_MANIFEST: &str = "hexz 2026-12-02 manifest encryption";
const CONTEXT_ID: &str = "hexz 2026-12-02 key id";

/// Argon2id cost parameters of a passphrase stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub time: u32,
    /// Lanes.
    pub lanes: u32,
}

impl Argon2Cost {
    /// What writers use: 64 MiB, 3 passes, 1 lane (about 0.2 s here; the
    /// measured figure is in the closing note of format 1.5).
    pub const DEFAULT: Argon2Cost = Argon2Cost { memory_kib: 64 << 10, time: 3, lanes: 1 };
    /// Most memory a reader spends on a passphrase stanza: 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// Most passes a reader accepts.
    pub const MAX_TIME: u32 = 16;
    /// Most lanes a reader accepts.
    pub const MAX_LANES: u32 = 16;

    fn check(self) -> Result<()> {
        if self.lanes == 0 || self.lanes > Self::MAX_LANES {
            return Err(Error::invalid("passphrase stanza parallelism", 0, "must be 1 to 16"));
        }
        if self.time == 0 || self.time > Self::MAX_TIME {
            return Err(Error::invalid("passphrase stanza t_cost", 0, "must be 1 to 16"));
        }
        if self.memory_kib < 8 * self.lanes || self.memory_kib > Self::MAX_MEMORY_KIB {
            return Err(Error::invalid("passphrase stanza m_cost", 0, "must be 8 KiB per lane to 1 GiB"));
        }
        Ok(())
    }
}

/// The 32-byte file key of a chain. Wiped when dropped.
#[derive(Clone)]
pub struct FileKey([u8; 32]);

impl FileKey {
    /// A file key from 32 (random) bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        FileKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key id: visible in the key section, equal across a chain.
    pub fn id(&self) -> [u8; KEY_ID_SIZE] {
        let mut full = blake3::derive_key(CONTEXT_ID, &self.0);
        let mut id = [0u8; KEY_ID_SIZE];
        id.copy_from_slice(&full[..KEY_ID_SIZE]);
        full.zeroize();
        id
    }
}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileKey(..)")
    }
}

/// The subkeys of one file key: what reading and writing blocks and the
/// manifest need. The AES key schedules are wiped when dropped (the `aes`
/// crate's `zeroize`, or aws-lc's cleansing free), the hash key and file
/// key by `Drop`. (aws-lc derives GCM-SIV's per-message keys on the stack
/// and does not cleanse them; RustCrypto does.)
pub struct Keys {
    file_key: FileKey,
    id: [u8; KEY_ID_SIZE],
    block: GcmSiv,
    manifest: GcmSiv,
    hash_key: [u8; 32],
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.hash_key.zeroize();
    }
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Keys {{ id: ")?;
        for b in self.id {
            write!(f, "{b:02x}")?;
        }
        write!(f, " }}")
    }
}

fn cipher(context: &str, file_key: &FileKey) -> GcmSiv {
    let mut key = blake3::derive_key(context, file_key.as_bytes());
    let cipher = GcmSiv::new(&key);
    key.zeroize();
    cipher
}

impl Keys {
    /// Derive the subkeys of `file_key`.
    pub fn derive(file_key: &FileKey) -> Self {
        Keys {
            file_key: file_key.clone(),
            id: file_key.id(),
            block: cipher(CONTEXT_BLOCK, file_key),
            manifest: cipher(CONTEXT_MANIFEST, file_key),
            hash_key: blake3::derive_key(CONTEXT_HASH, file_key.as_bytes()),
        }
    }

    /// The key id (visible; equal across a chain).
    pub fn id(&self) -> [u8; KEY_ID_SIZE] {
        self.id
    }

    /// The file key these were derived from (a child of an encrypted base
    /// is stored under its base's file key).
    pub fn file_key(&self) -> &FileKey {
        &self.file_key
    }

    /// A block's hash field before its tag: the keyed BLAKE3 of the
    /// decoded block, first 16 bytes, and 16 zero bytes.
    pub fn block_hash(&self, decoded: &[u8]) -> [u8; 32] {
        let full = blake3::keyed_hash(&self.hash_key, decoded);
        let mut hash = [0u8; 32];
        hash[..16].copy_from_slice(&full.as_bytes()[..16]);
        hash
    }

    /// The hasher of the footer's `source_hash`: keyed.
    pub fn source_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.hash_key)
    }

    /// Encrypt a block's stored bytes in place; returns the tag (the
    /// second half of the entry's hash). `entry` holds everything but the tag.
    pub fn seal_block(&self, stored: &mut [u8], entry: &BlockEntry) -> Result<[u8; TAG_SIZE]> {
        let (nonce, aad) = block_nonce_aad(entry);
        self.block.seal(&nonce, &aad, stored).ok_or(Error::InvalidArgument("block too large to encrypt"))
    }

    /// Decrypt a block's stored bytes in place, checking the tag in its entry.
    pub fn open_block(&self, stored: &mut [u8], entry: &BlockEntry) -> Result<()> {
        let (nonce, aad) = block_nonce_aad(entry);
        let mut tag = [0u8; TAG_SIZE];
        tag.copy_from_slice(&entry.hash[16..]);
        if self.block.open(&nonce, &aad, stored, &tag) {
            Ok(())
        } else {
            Err(Error::Decrypt { what: "block", offset: entry.virtual_offset.get() })
        }
    }

    /// Whether a decoded block matches the keyed hash in its entry.
    pub fn block_matches(&self, decoded: &[u8], entry: &BlockEntry) -> bool {
        blake3::keyed_hash(&self.hash_key, decoded).as_bytes()[..16] == entry.hash[..16]
    }
}

/// AES-256-GCM-SIV (RFC 8452) with detached tags, in place. On Linux
/// x86-64 and aarch64 (feature `aws-lc`) it is aws-lc-rs's: on x86-64 its
/// assembly (AES-NI and AVX), about three times RustCrypto's speed on these
/// machines (bench/encryption_bench.py); on aarch64 its C code over the
/// CPU's AES and PMULL instructions (not measured on real hardware).
/// Elsewhere, and without `std`, RustCrypto's `aes-gcm-siv`.
/// Both implement the RFC, so they produce the same bytes (a test compares
/// them). A failed `open` leaves zeros in `in_out`, never plaintext.
#[cfg(aws_lc)]
struct GcmSiv(aws_lc_rs::aead::LessSafeKey);

#[cfg(aws_lc)]
impl GcmSiv {
    fn new(key: &[u8; 32]) -> Self {
        use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM_SIV};
        // Fails only for a key of the wrong length, which a [u8; 32] is not.
        GcmSiv(LessSafeKey::new(UnboundKey::new(&AES_256_GCM_SIV, key).expect("a 32-byte key")))
    }

    fn seal(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> Option<[u8; TAG_SIZE]> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let tag =
            self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), in_out).ok()?;
        tag.as_ref().try_into().ok()
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool {
        use aws_lc_rs::aead::{Aad, Nonce};
        let ok = self
            .0
            .open_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), tag, in_out)
            .is_ok();
        // aws-lc leaves what it decrypted in place when the tag fails, and
        // `in_out` is often the caller's own read buffer: no unauthenticated
        // plaintext may stay there.
        if !ok {
            in_out.zeroize();
        }
        ok
    }
}

#[cfg(not(aws_lc))]
struct GcmSiv(aes_gcm_siv::Aes256GcmSiv);

#[cfg(not(aws_lc))]
impl GcmSiv {
    fn new(key: &[u8; 32]) -> Self {
        use aes_gcm_siv::aead::KeyInit;
        GcmSiv(aes_gcm_siv::Aes256GcmSiv::new(key.into()))
    }

    fn seal(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> Option<[u8; TAG_SIZE]> {
        use aes_gcm_siv::aead::AeadInPlace;
        self.0.encrypt_in_place_detached(nonce.into(), aad, in_out).ok().map(Into::into)
    }

    fn open(&self, nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8], tag: &[u8; TAG_SIZE]) -> bool {
        use aes_gcm_siv::aead::AeadInPlace;
        let ok = self.0.decrypt_in_place_detached(nonce.into(), aad, in_out, tag.into()).is_ok();
        // RustCrypto puts the ciphertext back on failure; zeros, as with
        // aws-lc, make the contract one on every platform.
        if !ok {
            in_out.zeroize();
        }
        ok
    }
}

/// A block's nonce (its keyed hash's first 12 bytes) and associated data
/// (keyed hash, virtual_length, codec, filter, element_width, filter_param).
fn block_nonce_aad(e: &BlockEntry) -> ([u8; 12], [u8; 27]) {
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&e.hash[..12]);
    let mut aad = [0u8; 27];
    aad[..16].copy_from_slice(&e.hash[..16]);
    aad[16..20].copy_from_slice(&e.virtual_length.get().to_le_bytes());
    aad[20] = e.codec;
    aad[21] = e.filter;
    aad[22] = e.element_width;
    aad[23..27].copy_from_slice(&e.filter_param.get().to_le_bytes());
    (nonce, aad)
}

/// One stanza of a key section: the file key wrapped for one passphrase or recipient.
#[derive(Debug, Clone, Copy)]
pub struct Stanza<'a> {
    /// [`STANZA_PASSPHRASE`] or [`STANZA_X25519`] (others are skipped by readers).
    pub kind: u8,
    /// The body, of the length its kind gives.
    pub body: &'a [u8],
}

/// A parsed key section: the start of an encrypted archive's manifest region.
#[derive(Debug, Clone, Copy)]
pub struct KeySection<'a> {
    /// The whole section, its tag included.
    pub bytes: &'a [u8],
    /// The key id the file key must derive.
    pub id: [u8; KEY_ID_SIZE],
    /// The manifest's nonce.
    pub manifest_nonce: [u8; 12],
    /// Stanzas in order.
    pub stanza_count: u16,
}

impl<'a> KeySection<'a> {
    /// Parse the key section at the start of `region` (the manifest region,
    /// which starts at archive offset `offset`). Every length is checked
    /// against the region before use.
    pub fn parse(region: &'a [u8], offset: u64) -> Result<Self> {
        let head = region.get(..KEY_SECTION_HEADER).ok_or(Error::Truncated {
            what: "key section",
            offset,
            needed: KEY_SECTION_HEADER as u64,
            available: region.len() as u64,
        })?;
        if head[..8] != KEY_SECTION_MAGIC {
            return Err(Error::invalid("key section magic", offset, "not a key section"));
        }
        let length = u32::from_le_bytes(head[8..12].try_into().unwrap_or_default()) as usize;
        let count = u16::from_le_bytes([head[12], head[13]]);
        if head[14..16] != [0, 0] || head[44..48] != [0; 4] {
            return Err(Error::invalid("key section reserved bytes", offset + 14, "must be zero"));
        }
        if count == 0 || count > MAX_STANZAS {
            return Err(Error::invalid("key section stanza_count", offset + 12, "must be 1 to 64"));
        }
        if !(KEY_SECTION_HEADER + TAG_SIZE..=MAX_KEY_SECTION).contains(&length) || length > region.len() {
            return Err(Error::invalid("key section section_length", offset + 8, "out of range"));
        }
        let mut id = [0u8; KEY_ID_SIZE];
        id.copy_from_slice(&head[16..32]);
        let mut manifest_nonce = [0u8; 12];
        manifest_nonce.copy_from_slice(&head[32..44]);
        let section = KeySection { bytes: &region[..length], id, manifest_nonce, stanza_count: count };
        // The stanzas must fill the section up to its tag exactly.
        let mut at = KEY_SECTION_HEADER;
        for _ in 0..count {
            let (_, next) = section.stanza_at(at, offset)?;
            at = next;
        }
        if at != length - TAG_SIZE {
            return Err(Error::invalid("key section section_length", offset + 8, "stanzas do not fill the section"));
        }
        Ok(section)
    }

    fn stanza_at(&self, at: usize, offset: u64) -> Result<(Stanza<'a>, usize)> {
        let bytes = self.bytes;
        let end = bytes.len() - TAG_SIZE;
        let head = bytes.get(at..at + 4).filter(|_| at + 4 <= end).ok_or(Error::invalid(
            "key section stanza",
            offset + at as u64,
            "past the section's end",
        ))?;
        let (kind, reserved, len) = (head[0], head[1], u16::from_le_bytes([head[2], head[3]]) as usize);
        if reserved != 0 {
            return Err(Error::invalid("key section stanza reserved byte", offset + at as u64 + 1, "must be zero"));
        }
        let want = match kind {
            STANZA_PASSPHRASE => Some(PASSPHRASE_BODY),
            STANZA_X25519 => Some(X25519_BODY),
            _ => None,
        };
        if want.is_some_and(|w| w != len) {
            return Err(Error::invalid("key section stanza body_length", offset + at as u64 + 2, "wrong for its kind"));
        }
        let body = bytes.get(at + 4..at + 4 + len).filter(|_| at + 4 + len <= end).ok_or(Error::invalid(
            "key section stanza body_length",
            offset + at as u64 + 2,
            "past the section's end",
        ))?;
        Ok((Stanza { kind, body }, at + 4 + len))
    }

    /// The stanzas, in order (checked to fill the section at parse).
    pub fn stanzas(&self) -> impl Iterator<Item = Stanza<'a>> + '_ {
        let mut at = KEY_SECTION_HEADER;
        (0..self.stanza_count).filter_map(move |_| {
            let (stanza, next) = self.stanza_at(at, 0).ok()?;
            at = next;
            Some(stanza)
        })
    }

    /// The manifest's tag: the section's last 16 bytes.
    pub fn manifest_tag(&self) -> [u8; TAG_SIZE] {
        let mut tag = [0u8; TAG_SIZE];
        tag.copy_from_slice(&self.bytes[self.bytes.len() - TAG_SIZE..]);
        tag
    }

    /// Check that `file_key` is the one this section was written for.
    pub fn keys_for(&self, file_key: &FileKey) -> Result<Keys> {
        if file_key.id() != self.id {
            return Err(Error::WrongKey { reason: "the key opened a stanza but does not match the key id" });
        }
        Ok(Keys::derive(file_key))
    }
}

/// Decrypt the manifest (`ciphertext`, in place) with `keys` and the key
/// section that precedes it; `offset` is the manifest region's.
pub fn open_manifest(keys: &Keys, section: &KeySection<'_>, ciphertext: &mut [u8], offset: u64) -> Result<()> {
    let aad = &section.bytes[..section.bytes.len() - TAG_SIZE];
    if keys.manifest.open(&section.manifest_nonce, aad, ciphertext, &section.manifest_tag()) {
        Ok(())
    } else {
        Err(Error::Decrypt { what: "manifest", offset })
    }
}

/// Builds a key section (and then the manifest region) for a file key.
#[derive(Clone)]
pub struct KeySectionBuilder {
    file_key: FileKey,
    manifest_nonce: [u8; 12],
    stanzas: Vec<(u8, Vec<u8>)>,
}

impl core::fmt::Debug for KeySectionBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeySectionBuilder {{ stanzas: {} }}", self.stanzas.len())
    }
}

impl KeySectionBuilder {
    /// A section for `file_key`, whose manifest is sealed under
    /// `manifest_nonce` (12 random bytes: a chain's manifests share the key).
    pub fn new(file_key: FileKey, manifest_nonce: [u8; 12]) -> Self {
        KeySectionBuilder { file_key, manifest_nonce, stanzas: Vec::new() }
    }

    /// The file key.
    pub fn file_key(&self) -> &FileKey {
        &self.file_key
    }

    /// Add a passphrase stanza: Argon2id with `cost` and `salt` (16 random bytes).
    pub fn add_passphrase(&mut self, passphrase: &[u8], salt: [u8; 16], cost: Argon2Cost) -> Result<()> {
        let mut kek = argon2id(passphrase, &salt, cost)?;
        let mut body = Vec::with_capacity(PASSPHRASE_BODY);
        body.extend_from_slice(&salt);
        body.extend_from_slice(&cost.memory_kib.to_le_bytes());
        body.extend_from_slice(&cost.time.to_le_bytes());
        body.extend_from_slice(&cost.lanes.to_le_bytes());
        body.extend_from_slice(&wrap(&kek, &self.file_key));
        kek.zeroize();
        self.push(STANZA_PASSPHRASE, body)
    }

    /// Add an X25519 stanza for `recipient` (a public key), with
    /// `ephemeral` (32 random bytes) as the ephemeral secret.
    pub fn add_x25519(&mut self, recipient: &[u8; 32], ephemeral: [u8; 32]) -> Result<()> {
        let secret = x25519_dalek::StaticSecret::from(ephemeral);
        let share = x25519_dalek::PublicKey::from(&secret);
        let mut kek = x25519_wrap_key(&secret, recipient, share.as_bytes(), recipient)?;
        let mut body = Vec::with_capacity(X25519_BODY);
        body.extend_from_slice(share.as_bytes());
        body.extend_from_slice(&wrap(&kek, &self.file_key));
        kek.zeroize();
        self.push(STANZA_X25519, body)
    }

    /// Copy another section's stanzas (a child stored against an encrypted base).
    pub fn add_stanzas_of(&mut self, section: &KeySection<'_>) -> Result<()> {
        for s in section.stanzas() {
            self.push(s.kind, s.body.to_vec())?;
        }
        Ok(())
    }

    fn push(&mut self, kind: u8, body: Vec<u8>) -> Result<()> {
        if self.stanzas.len() >= usize::from(MAX_STANZAS) {
            return Err(Error::InvalidArgument("at most 64 passphrases and recipients"));
        }
        self.stanzas.push((kind, body));
        Ok(())
    }

    /// The keys blocks are sealed with.
    pub fn keys(&self) -> Keys {
        Keys::derive(&self.file_key)
    }

    /// The manifest region: key section, then `manifest` encrypted (in place).
    pub fn seal_manifest(&self, keys: &Keys, mut manifest: Vec<u8>) -> Result<Vec<u8>> {
        if self.stanzas.is_empty() {
            return Err(Error::InvalidArgument("an encrypted archive needs a passphrase or a recipient"));
        }
        let mut section = Vec::new();
        section.extend_from_slice(&KEY_SECTION_MAGIC);
        section.extend_from_slice(&[0; 4]); // section_length, below
        section.extend_from_slice(&(self.stanzas.len() as u16).to_le_bytes());
        section.extend_from_slice(&[0, 0]);
        section.extend_from_slice(&self.file_key.id());
        section.extend_from_slice(&self.manifest_nonce);
        section.extend_from_slice(&[0; 4]);
        for (kind, body) in &self.stanzas {
            section.push(*kind);
            section.push(0);
            section.extend_from_slice(&(body.len() as u16).to_le_bytes());
            section.extend_from_slice(body);
        }
        let length = (section.len() + TAG_SIZE) as u32;
        section[8..12].copy_from_slice(&length.to_le_bytes());
        let tag = keys
            .manifest
            .seal(&self.manifest_nonce, &section, &mut manifest)
            .ok_or(Error::InvalidArgument("manifest too large to encrypt"))?;
        section.extend_from_slice(&tag);
        section.append(&mut manifest);
        Ok(section)
    }
}

fn wrap(kek: &[u8; 32], file_key: &FileKey) -> [u8; WRAPPED_SIZE] {
    let mut out = [0u8; WRAPPED_SIZE];
    out[..32].copy_from_slice(file_key.as_bytes());
    let (body, tag) = out.split_at_mut(32);
    let tag_value = ChaCha20Poly1305::new(kek.into())
        .encrypt_in_place_detached(&[0u8; 12].into(), &file_key.id(), body)
        .expect("32 bytes are within ChaCha20-Poly1305's limits");
    tag.copy_from_slice(&tag_value);
    out
}

/// The file key from a wrapped one, or `None` when `kek` is not its key.
/// The key id is the associated data: a stanza moved to another section fails.
fn unwrap(kek: &[u8; 32], wrapped: &[u8], id: &[u8; KEY_ID_SIZE]) -> Option<FileKey> {
    let mut key = [0u8; 32];
    key.copy_from_slice(wrapped.get(..32)?);
    let tag: [u8; TAG_SIZE] = wrapped.get(32..WRAPPED_SIZE)?.try_into().ok()?;
    match ChaCha20Poly1305::new(kek.into()).decrypt_in_place_detached(&[0u8; 12].into(), id, &mut key, &tag.into()) {
        Ok(()) => Some(FileKey(key)),
        Err(_) => {
            key.zeroize();
            None
        }
    }
}

/// Argon2id (version 0x13) of `passphrase` into 32 bytes. Its memory is
/// allocated fallibly: the cost comes from an untrusted file.
fn argon2id(passphrase: &[u8], salt: &[u8; 16], cost: Argon2Cost) -> Result<[u8; 32]> {
    cost.check()?;
    let params = argon2::Params::new(cost.memory_kib, cost.time, cost.lanes, Some(32))
        .map_err(|_| Error::InvalidArgument("Argon2 parameters"))?;
    let blocks = params.block_count();
    let mut memory: Vec<argon2::Block> = Vec::new();
    memory
        .try_reserve_exact(blocks)
        .map_err(|_| Error::OutOfMemory { what: "Argon2 memory", bytes: blocks as u64 * 1024 })?;
    memory.resize(blocks, argon2::Block::default());
    let mut out = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into_with_memory(passphrase, salt, &mut out, &mut memory)
        .map_err(|_| Error::InvalidArgument("Argon2 rejected the passphrase or salt"))?;
    // The memory held passphrase-derived blocks.
    for b in memory.iter_mut() {
        *b = argon2::Block::default();
    }
    Ok(out)
}

/// The key that wraps the file key for `recipient`: HKDF-SHA256 of the
/// X25519 of `secret` and `peer` (the writer: ephemeral secret and
/// recipient; the reader: identity and ephemeral share), salted with the
/// share and the recipient, as age's X25519 stanza.
fn x25519_wrap_key(
    secret: &x25519_dalek::StaticSecret,
    peer: &[u8; 32],
    share: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<[u8; 32]> {
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(Error::WrongKey { reason: "an X25519 share of low order" });
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(share);
    salt[32..].copy_from_slice(recipient);
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared.as_bytes());
    let mut key = [0u8; 32];
    hk.expand(X25519_INFO, &mut key).map_err(|_| Error::InvalidArgument("HKDF output length"))?;
    Ok(key)
}

/// The X25519 public key (recipient) of an identity's secret.
pub fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    let secret = x25519_dalek::StaticSecret::from(*secret);
    *x25519_dalek::PublicKey::from(&secret).as_bytes()
}

/// Try a passphrase on a passphrase stanza: `Ok(None)` when it is not this
/// stanza's passphrase; an error for costs out of the reader's limits.
pub fn unwrap_passphrase(stanza: &Stanza<'_>, passphrase: &[u8], id: &[u8; KEY_ID_SIZE]) -> Result<Option<FileKey>> {
    if stanza.kind != STANZA_PASSPHRASE || stanza.body.len() != PASSPHRASE_BODY {
        return Ok(None);
    }
    let b = stanza.body;
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&b[..16]);
    let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let cost = Argon2Cost { memory_kib: word(16), time: word(20), lanes: word(24) };
    let mut kek = argon2id(passphrase, &salt, cost)?;
    let key = unwrap(&kek, &b[28..], id);
    kek.zeroize();
    Ok(key)
}

/// Try an X25519 identity (its 32-byte secret) on an X25519 stanza:
/// `Ok(None)` when the stanza is not for it.
pub fn unwrap_x25519(stanza: &Stanza<'_>, identity: &[u8; 32], id: &[u8; KEY_ID_SIZE]) -> Result<Option<FileKey>> {
    if stanza.kind != STANZA_X25519 || stanza.body.len() != X25519_BODY {
        return Ok(None);
    }
    let mut share = [0u8; 32];
    share.copy_from_slice(&stanza.body[..32]);
    let secret = x25519_dalek::StaticSecret::from(*identity);
    let recipient = *x25519_dalek::PublicKey::from(&secret).as_bytes();
    // A share of low order opens nothing.
    let Ok(mut kek) = x25519_wrap_key(&secret, &share, &share, &recipient) else { return Ok(None) };
    let key = unwrap(&kek, &stanza.body[32..], id);
    kek.zeroize();
    Ok(key)
}

/// What opens encrypted archives: given a key section, the keys, or
/// [`Error::WrongKey`] / [`Error::KeyRequired`]. `hexz-io` implements it
/// over identity files and passphrases, caching keys by id so a chain pays
/// for Argon2 once.
pub trait Unlock {
    /// The keys for the archive whose key section is `section`.
    fn unlock(&self, section: &KeySection<'_>) -> Result<alloc::sync::Arc<Keys>>;
}

/// An [`Unlock`] over passphrases and X25519 identities, in memory.
#[derive(Default)]
pub struct KeyRing {
    /// Passphrases to try on passphrase stanzas.
    pub passphrases: Vec<Vec<u8>>,
    /// X25519 identities (secrets) to try on X25519 stanzas.
    pub identities: Vec<[u8; 32]>,
}

impl Drop for KeyRing {
    fn drop(&mut self) {
        for p in &mut self.passphrases {
            p.zeroize();
        }
        for i in &mut self.identities {
            i.zeroize();
        }
    }
}

impl core::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "KeyRing {{ passphrases: {}, identities: {} }}", self.passphrases.len(), self.identities.len())
    }
}

impl KeyRing {
    /// Whether the ring holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.passphrases.is_empty() && self.identities.is_empty()
    }

    /// The file key of `section`, trying identities first (cheap), then
    /// passphrases (Argon2 per try).
    pub fn file_key(&self, section: &KeySection<'_>) -> Result<FileKey> {
        if self.is_empty() {
            return Err(Error::KeyRequired);
        }
        for stanza in section.stanzas() {
            for identity in &self.identities {
                if let Some(key) = unwrap_x25519(&stanza, identity, &section.id)? {
                    return Ok(key);
                }
            }
        }
        // A stanza whose cost is over the reader's limits is refused, but
        // another stanza may still open the archive.
        let mut refused = None;
        for stanza in section.stanzas() {
            for passphrase in &self.passphrases {
                match unwrap_passphrase(&stanza, passphrase, &section.id) {
                    Ok(Some(key)) => return Ok(key),
                    Ok(None) => {}
                    Err(e) => refused = Some(e),
                }
            }
        }
        Err(refused.unwrap_or(Error::WrongKey { reason: "no identity or passphrase given opens this archive" }))
    }
}

impl Unlock for KeyRing {
    fn unlock(&self, section: &KeySection<'_>) -> Result<alloc::sync::Arc<Keys>> {
        let key = self.file_key(section)?;
        Ok(alloc::sync::Arc::new(section.keys_for(&key)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::{U32, U64};

    fn entry(hash: [u8; 32]) -> BlockEntry {
        BlockEntry {
            virtual_offset: U64::new(0),
            stored_offset: U64::new(64),
            delta_base_offset: U64::new(0),
            virtual_length: U32::new(5),
            stored_length: U32::new(5),
            codec: 0,
            filter: 0,
            element_width: 1,
            location: 0,
            filter_param: U32::new(0),
            hash,
        }
    }

    const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 64, time: 1, lanes: 1 };

    #[test]
    fn block_round_trip_and_tamper() {
        let keys = Keys::derive(&FileKey::from_bytes([7; 32]));
        let mut e = entry(keys.block_hash(b"hello"));
        let mut bytes = *b"hello";
        let tag = keys.seal_block(&mut bytes, &e).unwrap();
        assert_ne!(&bytes, b"hello");
        e.hash[16..].copy_from_slice(&tag);
        let mut copy = bytes;
        keys.open_block(&mut copy, &e).unwrap();
        assert_eq!(&copy, b"hello");
        assert!(keys.block_matches(&copy, &e));
        // Another codec byte in the entry (the associated data) fails.
        let mut other = e;
        other.codec = 1;
        let mut copy = bytes;
        assert!(matches!(keys.open_block(&mut copy, &other), Err(Error::Decrypt { .. })));
        // Another key fails.
        let wrong = Keys::derive(&FileKey::from_bytes([8; 32]));
        let mut copy = bytes;
        assert!(wrong.open_block(&mut copy, &e).is_err());
    }

    /// aws-lc's GCM-SIV and RustCrypto's are the same function (RFC 8452):
    /// an archive sealed by one opens with the other.
    #[cfg(aws_lc)]
    #[test]
    fn aws_lc_and_rustcrypto_agree() {
        use aes_gcm_siv::aead::{AeadInPlace, KeyInit};
        let key = blake3::derive_key("hexz test", b"agree");
        let ours = GcmSiv::new(&key);
        let theirs = aes_gcm_siv::Aes256GcmSiv::new(&key.into());
        for len in [0usize, 1, 15, 16, 17, 255, 4096, 65_537] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            let nonce = [len as u8; 12];
            let aad = [3u8; 27];
            let mut a = plain.clone();
            let tag_a = ours.seal(&nonce, &aad, &mut a).unwrap();
            let mut b = plain.clone();
            let tag_b = theirs.encrypt_in_place_detached(&nonce.into(), &aad, &mut b).unwrap();
            assert_eq!((&a, &tag_a[..]), (&b, &tag_b[..]), "length {len}");
            assert!(ours.open(&nonce, &aad, &mut b, &tag_a));
            assert_eq!(b, plain);
            let mut bad = tag_a;
            bad[0] ^= 1;
            assert!(!ours.open(&nonce, &aad, &mut a, &bad));
            assert!(a.iter().all(|&x| x == 0), "length {len}: a failed open left bytes behind");
            // A changed ciphertext under its old tag: refused, nothing left either.
            if len > 0 {
                let mut c = b.clone();
                ours.seal(&nonce, &aad, &mut c).unwrap();
                c[len / 2] ^= 0x40;
                assert!(!ours.open(&nonce, &aad, &mut c, &tag_a));
                assert!(c.iter().all(|&x| x == 0), "length {len}");
            }
        }
    }

    /// Whichever backend this build has (aws-lc on Linux x86-64 here,
    /// RustCrypto in the Windows cross run): a refused block leaves zeros.
    #[test]
    fn a_refused_block_leaves_no_plaintext() {
        let keys = KeySectionBuilder::new(FileKey::from_bytes([9; 32]), [1; 12]).keys();
        let plain: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut entry = <BlockEntry as zerocopy::FromZeros>::new_zeroed();
        entry.hash = keys.block_hash(&plain);
        entry.virtual_length.set(plain.len() as u32);
        let mut stored = plain.clone();
        let tag = keys.seal_block(&mut stored, &entry).unwrap();
        entry.hash[16..].copy_from_slice(&tag);
        let mut ok = stored.clone();
        keys.open_block(&mut ok, &entry).unwrap();
        assert_eq!(ok, plain);
        stored[100] ^= 1;
        let e = keys.open_block(&mut stored, &entry).unwrap_err();
        assert!(matches!(e, Error::Decrypt { what: "block", .. }), "{e:?}");
        assert!(stored.iter().all(|&x| x == 0));
    }

    #[test]
    fn section_round_trip_with_both_stanzas() {
        let fk = FileKey::from_bytes([1; 32]);
        let mut b = KeySectionBuilder::new(fk.clone(), [2; 12]);
        b.add_passphrase(b"correct horse", [3; 16], CHEAP).unwrap();
        let identity = [4u8; 32];
        b.add_x25519(&x25519_public(&identity), [5; 32]).unwrap();
        let keys = b.keys();
        let manifest = b"HXZMANI\0 the manifest".to_vec();
        let region = b.seal_manifest(&keys, manifest.clone()).unwrap();
        let section = KeySection::parse(&region, 0).unwrap();
        assert_eq!(section.stanza_count, 2);
        let mut ct = region[section.bytes.len()..].to_vec();
        assert_ne!(ct, manifest);
        for ring in [
            KeyRing { passphrases: alloc::vec![b"correct horse".to_vec()], identities: alloc::vec![] },
            KeyRing { passphrases: alloc::vec![], identities: alloc::vec![identity] },
        ] {
            let k = ring.unlock(&section).unwrap();
            assert_eq!(k.id(), fk.id());
            let mut copy = ct.clone();
            open_manifest(&k, &section, &mut copy, 0).unwrap();
            assert_eq!(copy, manifest);
        }
        let wrong = KeyRing { passphrases: alloc::vec![b"wrong".to_vec()], identities: alloc::vec![[9; 32]] };
        assert!(matches!(wrong.unlock(&section), Err(Error::WrongKey { .. })));
        assert!(matches!(KeyRing::default().unlock(&section), Err(Error::KeyRequired)));
        ct[0] ^= 1;
        assert!(matches!(open_manifest(&keys, &section, &mut ct, 0), Err(Error::Decrypt { .. })));
    }

    #[test]
    fn hostile_sections_are_refused() {
        let fk = FileKey::from_bytes([1; 32]);
        let mut b = KeySectionBuilder::new(fk, [2; 12]);
        b.add_x25519(&x25519_public(&[4; 32]), [5; 32]).unwrap();
        let region = b.seal_manifest(&b.keys(), alloc::vec![0; 104]).unwrap();
        let len = KeySection::parse(&region, 0).unwrap().bytes.len();
        // Every truncation and every single-bit flip of the section's
        // structure either fails to parse or parses to a section whose
        // stanzas no longer open (never a panic).
        for cut in 0..len {
            assert!(KeySection::parse(&region[..cut], 0).is_err());
        }
        for at in 0..len * 8 {
            let mut bad = region.clone();
            bad[at / 8] ^= 1 << (at % 8);
            if let Ok(s) = KeySection::parse(&bad, 0) {
                let ring = KeyRing { passphrases: alloc::vec![], identities: alloc::vec![[4; 32]] };
                let opened = ring.unlock(&s).and_then(|k| {
                    let mut ct = bad[s.bytes.len()..].to_vec();
                    open_manifest(&k, &s, &mut ct, 0)
                });
                assert!(opened.is_err(), "bit {at} accepted");
            }
        }
        // A passphrase stanza asking for more than the reader allows is refused before any work.
        let huge = Argon2Cost { memory_kib: Argon2Cost::MAX_MEMORY_KIB + 1, time: 1, lanes: 1 };
        assert!(argon2id(b"x", &[0; 16], huge).is_err());
    }
}
