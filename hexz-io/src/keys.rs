//! Encryption keys (format 1.5, spec section 16) as front ends name them:
//! age's X25519 identity files and recipients (`AGE-SECRET-KEY-1…`,
//! `age1…`, so `age-keygen` keys work), passphrases from a file or the
//! `HEXZ_PASSPHRASE` variable (never the command line), the
//! [`Encryption`] a store writes with, and the [`Keychain`] readers open
//! archives with (one Argon2 run per chain: keys are kept by key id).

use std::path::Path;
use std::sync::{Arc, Mutex};

use bech32::{Bech32, Hrp};
use hexz_format::crypt::{Argon2Cost, FileKey, KeyRing, KeySection, KeySectionBuilder, Keys, Unlock};
use hexz_format::writer::Encryption;
use hexz_format::{Archive, ReadAt};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// The environment variable a passphrase may come from.
pub const PASSPHRASE_ENV: &str = "HEXZ_PASSPHRASE";
/// Human-readable part of an age recipient.
const RECIPIENT_HRP: &str = "age";
/// Human-readable part of an age identity (written upper-case).
const IDENTITY_HRP: &str = "age-secret-key-";

fn bad_key(path: &Path, reason: impl Into<String>) -> Error {
    Error::Refused { path: path.to_path_buf(), reason: reason.into(), code: hexz_format::ErrorCode::InvalidArgument }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| Error::invalid(format!("no randomness from the OS: {e}")))?;
    Ok(bytes)
}

/// An X25519 recipient (public key) from its age encoding, `age1…`.
pub fn parse_recipient(text: &str) -> Result<[u8; 32]> {
    let text = text.trim();
    let (hrp, data) = bech32::decode(text)
        .map_err(|e| Error::invalid(format!("recipient {text:?} is not an age recipient (age1…): {e}")))?;
    if !hrp.as_str().eq_ignore_ascii_case(RECIPIENT_HRP) || data.len() != 32 {
        return Err(Error::invalid(format!("recipient {text:?} is not an age X25519 recipient (age1…)")));
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(&data);
    Ok(key)
}

/// The age encoding of an X25519 recipient.
pub fn recipient_text(key: &[u8; 32]) -> String {
    bech32::encode::<Bech32>(Hrp::parse_unchecked(RECIPIENT_HRP), key).unwrap_or_default()
}

/// A recipients file: one `age1…` per line; blank lines and `#` comments skipped.
pub fn load_recipients(path: &Path) -> Result<Vec<[u8; 32]>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, "read", e))?;
    let keys: Vec<[u8; 32]> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_recipient)
        .collect::<Result<_>>()?;
    if keys.is_empty() {
        return Err(bad_key(path, "no recipient (age1…) in the file"));
    }
    Ok(keys)
}

/// The X25519 secrets of an age identity file (`AGE-SECRET-KEY-1…` lines;
/// comments and blank lines skipped). A recipient given where an identity
/// is expected is refused with a message saying so.
pub fn load_identities(path: &Path) -> Result<Vec<[u8; 32]>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| Error::file(path, "read", e))?);
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        if line.starts_with("age1") {
            return Err(bad_key(
                path,
                "holds a recipient (age1…, a public key); an identity (AGE-SECRET-KEY-1…) reads",
            ));
        }
        let (hrp, mut data) =
            bech32::decode(line).map_err(|e| bad_key(path, format!("not an age identity (AGE-SECRET-KEY-1…): {e}")))?;
        if !hrp.as_str().eq_ignore_ascii_case(IDENTITY_HRP) || data.len() != 32 {
            data.zeroize();
            return Err(bad_key(path, "not an age X25519 identity (AGE-SECRET-KEY-1…)"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&data);
        data.zeroize();
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(bad_key(path, "no identity (AGE-SECRET-KEY-1…) in the file"));
    }
    Ok(keys)
}

/// Write a new X25519 identity file as `age-keygen` does (readable by the
/// owner only; an existing file is kept unless `force`). Returns the recipient.
pub fn keygen_x25519(path: &Path, force: bool) -> Result<String> {
    let mut secret = random::<32>()?;
    let recipient = recipient_text(&hexz_format::crypt::x25519_public(&secret));
    let encoded = bech32::encode_upper::<Bech32>(Hrp::parse_unchecked(IDENTITY_HRP), &secret)
        .map_err(|e| Error::invalid(format!("encoding the identity: {e}")))?;
    secret.zeroize();
    let text = Zeroizing::new(format!("# created by hexz keygen --x25519\n# public key: {recipient}\n{encoded}\n"));
    crate::sign::write_private(path, text.as_bytes(), force)?;
    Ok(recipient)
}

/// A passphrase from a file (its first line, without the line break).
pub fn read_passphrase_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| Error::file(path, "read", e))?);
    let end = bytes.iter().position(|&b| b == b'\n').unwrap_or(bytes.len());
    let end = if end > 0 && bytes[end - 1] == b'\r' { end - 1 } else { end };
    bytes.truncate(end);
    if bytes.is_empty() {
        return Err(bad_key(path, "the passphrase file is empty"));
    }
    Ok(bytes)
}

/// The passphrase in `HEXZ_PASSPHRASE`, if set (and not empty).
pub fn passphrase_from_env() -> Option<Zeroizing<Vec<u8>>> {
    let value = std::env::var_os(PASSPHRASE_ENV)?;
    let bytes = Zeroizing::new(value.into_encoded_bytes());
    (!bytes.is_empty()).then_some(bytes)
}

/// What a new encrypted archive is written for: passphrases (Argon2id) and
/// X25519 recipients, at least one of either.
#[derive(Default)]
pub struct EncryptTo {
    /// Passphrases, each wrapping the file key.
    pub passphrases: Vec<Zeroizing<Vec<u8>>>,
    /// X25519 recipients (public keys).
    pub recipients: Vec<[u8; 32]>,
    /// Argon2id cost of the passphrase stanzas (default [`Argon2Cost::DEFAULT`]).
    pub cost: Option<Argon2Cost>,
}

impl EncryptTo {
    /// Whether nothing was asked for.
    pub fn is_empty(&self) -> bool {
        self.passphrases.is_empty() && self.recipients.is_empty()
    }

    /// A new random file key wrapped for every passphrase and recipient.
    pub fn encryption(&self) -> Result<Encryption> {
        if self.is_empty() {
            return Err(Error::invalid("encrypting needs a passphrase or a recipient"));
        }
        let mut section = KeySectionBuilder::new(FileKey::from_bytes(random::<32>()?), random::<12>()?);
        for p in &self.passphrases {
            section.add_passphrase(p, random::<16>()?, self.cost.unwrap_or(Argon2Cost::DEFAULT))?;
        }
        for r in &self.recipients {
            section.add_x25519(r, random::<32>()?)?;
        }
        Ok(Encryption::new(section))
    }
}

/// The encryption of a fine-tune stored against `base` (spec section 16):
/// the base's file key and stanzas (whoever reads the base reads the
/// child), a fresh manifest nonce. `None` for a plain base.
pub fn inherit<R: ReadAt>(base: &Archive<R>) -> Result<Option<Encryption>> {
    if !base.is_encrypted() {
        return Ok(None);
    }
    let keys = base.keys().ok_or(hexz_format::Error::KeyRequired)?;
    let mut section = KeySectionBuilder::new(keys.file_key().clone(), random::<12>()?);
    section.add_stanzas_of(&base.key_section()?)?;
    Ok(Some(Encryption::new(section)))
}

/// Opens encrypted archives with identities and passphrases, keeping the
/// keys of each key id it opened: a chain (one key) runs Argon2 once.
#[derive(Default)]
pub struct Keychain {
    ring: KeyRing,
    opened: Mutex<Vec<Arc<Keys>>>,
}

impl std::fmt::Debug for Keychain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keychain({:?})", self.ring)
    }
}

impl Keychain {
    /// A keychain of X25519 identities and passphrases.
    pub fn new(identities: Vec<[u8; 32]>, passphrases: Vec<Zeroizing<Vec<u8>>>) -> Self {
        // Moved, not copied: the bytes stay in one allocation, which
        // KeyRing wipes when dropped.
        let passphrases = passphrases.into_iter().map(|mut p| std::mem::take(&mut *p)).collect();
        Keychain { ring: KeyRing { passphrases, identities }, opened: Mutex::new(Vec::new()) }
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

impl Unlock for Keychain {
    fn unlock(&self, section: &KeySection<'_>) -> hexz_format::Result<Arc<Keys>> {
        if let Some(k) = self.opened.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|k| k.id() == section.id) {
            return Ok(k.clone());
        }
        let keys = self.ring.unlock(section)?;
        self.opened.lock().unwrap_or_else(|e| e.into_inner()).push(keys.clone());
        Ok(keys)
    }
}
