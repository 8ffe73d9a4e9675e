//! The persistent block cache: stored blocks of remote archives kept on
//! local disk, shared by every archive, version and process that reads
//! the same blocks, and the structure of each remote object (header,
//! directory, manifest, index pages) kept per URL and checked against the
//! object's ETag (or size and modification time) before it is used.
//!
//! Layout under the cache folder (default `$XDG_CACHE_HOME/hexz/blocks`,
//! else `~/.cache/hexz/blocks`):
//!
//! - `b/<2 hex>/<64 hex>`: one stored block, named by its key (BLAKE3 over
//!   the block's hash from the index and how it is encoded, see
//!   [`block_key`]);
//! - `m/<64 hex>`: one remote object's structure, named by BLAKE3 of its URL;
//! - `tmp/`: entries being written; `locks/`: lock files, one per stripe
//!   of keys, so that processes fetch a block once between them.
//!
//! Every entry is `HXZCACH1`, BLAKE3 of the payload, then the payload. It
//! is written to a temporary file and renamed into place (atomic: a reader
//! sees the old entry, the new one or none), and checked on every read:
//! an entry of the wrong length or without the magic (torn by a crash,
//! not ours) is deleted and counts as a miss. A structure entry is also
//! checked against its BLAKE3. A block entry's bytes are checked where a
//! local block's are, after decoding, against the block's BLAKE3 from the
//! index: a block that fails (corrupted on disk) is dropped by the
//! source's `discard_cached` and fetched again from the origin, which
//! replaces its entry.
//!
//! The folder is capped ([`DEFAULT_MAX_BYTES`] unless told): after its
//! writes pass the cap, a process deletes the least recently used entries
//! (a hit refreshes an entry's modification time, at most every 10
//! minutes) until the folder holds 90% of the cap.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// Default cap of the cache folder: 10 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 << 30;
const MAGIC: &[u8; 8] = b"HXZCACH1";
const HEADER: usize = 8 + 32;
/// Lock files: keys share them by stripe.
const LOCK_STRIPES: u64 = 256;
/// Temporary files older than this are left over from a crash.
const STALE_TMP: Duration = Duration::from_secs(3600);

/// Where the cache is and how large it may grow; `None` is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSetting {
    pub dir: Option<PathBuf>,
    pub max_bytes: u64,
    /// Check each block entry against its own BLAKE3 when read. Off by
    /// default: the reader checks decoded blocks against the index's
    /// hashes, which catches a bad entry too. A reader that skips those
    /// checks (`verify_hashes` off) turns this on, so a block corrupted on
    /// the cache's disk is still never served.
    pub check_blocks: bool,
}

impl CacheSetting {
    /// Off.
    pub fn off() -> Self {
        CacheSetting { dir: None, max_bytes: DEFAULT_MAX_BYTES, check_blocks: false }
    }

    /// From the environment: `HEXZ_CACHE_DIR` (a folder, or `off`),
    /// `HEXZ_CACHE_MAX_BYTES` (a number of bytes, with an optional K, M, G
    /// or T suffix in powers of 1024); else the platform cache folder and
    /// [`DEFAULT_MAX_BYTES`].
    pub fn from_env() -> Self {
        let max_bytes =
            std::env::var("HEXZ_CACHE_MAX_BYTES").ok().and_then(|v| parse_size(&v)).unwrap_or(DEFAULT_MAX_BYTES);
        let dir = match std::env::var_os("HEXZ_CACHE_DIR") {
            Some(v) if v.is_empty() => default_dir(),
            Some(v) => dir_setting(Path::new(&v)),
            None => default_dir(),
        };
        CacheSetting { dir, max_bytes, check_blocks: false }
    }
}

/// A folder given by the user: `off` (or `none`, `0`) turns the cache off.
pub fn dir_setting(value: &Path) -> Option<PathBuf> {
    match value.to_str().map(str::to_ascii_lowercase).as_deref() {
        Some("off" | "none" | "0" | "false") => None,
        _ => Some(value.to_path_buf()),
    }
}

/// `$XDG_CACHE_HOME/hexz/blocks`, else `$HOME/.cache/hexz/blocks`.
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(x) if Path::new(&x).is_absolute() => PathBuf::from(x),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("hexz").join("blocks"))
}

/// A size: bytes, or with a K, M, G or T suffix (powers of 1024, an
/// optional `iB`/`B` after it).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, shift) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// The cache key of a stored block: its BLAKE3 from the index with what
/// makes its stored bytes (codec, filter, element width, filter parameter,
/// stored length), and, for a delta block, the parent identity and base
/// offset its bytes are a delta against. Equal keys mean equal stored bytes
/// wherever the block is, so archives, versions and fine-tunes share them.
pub fn block_key(e: &hexz_format::layout::BlockEntry, parent: Option<[u8; 32]>) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"hexz stored block v1");
    h.update(&e.hash);
    h.update(&[e.codec, e.filter, e.element_width]);
    h.update(&e.filter_param.get().to_le_bytes());
    h.update(&e.stored_length.get().to_le_bytes());
    let delta = hexz_format::layout::FilterId::from_u8(e.filter).is_some_and(|f| f.is_delta());
    if delta {
        h.update(&parent.unwrap_or_default());
        h.update(&e.delta_base_offset.get().to_le_bytes());
    }
    *h.finalize().as_bytes()
}

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// One cache folder, shared by every source of the process that uses it.
#[derive(Debug)]
pub struct DiskCache {
    root: PathBuf,
    max_bytes: u64,
    /// Bytes in the folder: found by the last scan plus this process's
    /// writes since (`None` before the first scan).
    held: Mutex<Option<u64>>,
    tmp_counter: AtomicU64,
    /// Blocks served from disk and written, for the tests and the bench.
    pub hits: AtomicU64,
    pub writes: AtomicU64,
}

/// A lock on a stripe of keys, released when dropped.
pub struct KeyLock(#[allow(dead_code)] File);

impl DiskCache {
    /// The cache at `root` (created if missing), one per folder per process.
    pub fn shared(root: &Path, max_bytes: u64) -> std::io::Result<Arc<DiskCache>> {
        static ALL: OnceLock<Mutex<HashMap<PathBuf, Arc<DiskCache>>>> = OnceLock::new();
        let mut all = ALL.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = all.get(root).filter(|c| c.max_bytes == max_bytes) {
            return Ok(c.clone());
        }
        for sub in ["b", "m", "tmp", "locks"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        let cache = Arc::new(DiskCache {
            root: root.to_path_buf(),
            max_bytes,
            held: Mutex::new(None),
            tmp_counter: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        all.insert(root.to_path_buf(), cache.clone());
        Ok(cache)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn block_path(&self, key: &[u8; 32]) -> PathBuf {
        let h = hex(key);
        self.root.join("b").join(&h[..2]).join(h)
    }

    fn meta_path(&self, key: &[u8; 32]) -> PathBuf {
        self.root.join("m").join(hex(key))
    }

    /// Copy the stored block `key` into `out` (its stored length) when an
    /// entry of that length holds it; an entry of another length or
    /// without the magic (torn, or not ours) is deleted and is a miss.
    ///
    /// The entry's own BLAKE3 is not checked here: the bytes go straight
    /// to the decoder, whose result is checked against the block's hash
    /// in the index (the key is made of it), and a block failing that
    /// check makes the source drop it and fetch it from the origin (see
    /// `discard_cached`). Hashing twice would cost a cache hit ~10% over
    /// a local read.
    /// `check` also checks the entry's own BLAKE3 (for readers that skip
    /// the index's).
    pub fn read_block(&self, key: &[u8; 32], out: &mut [u8], check: bool) -> bool {
        let hit = read_block_entry(&self.block_path(key), out, check);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Keep the stored block `key`.
    pub fn put_block(&self, key: &[u8; 32], bytes: &[u8]) {
        let path = self.block_path(key);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if self.write_entry(&path, bytes).is_ok() {
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Delete the entry of block `key` (its bytes failed a check).
    pub fn remove_block(&self, key: &[u8; 32]) {
        let _ = std::fs::remove_file(self.block_path(key));
    }

    /// The structure entry `key`, when sound.
    pub fn get_meta(&self, key: &[u8; 32]) -> Option<Vec<u8>> {
        read_entry(&self.meta_path(key))
    }

    pub fn put_meta(&self, key: &[u8; 32], bytes: &[u8]) {
        let _ = self.write_entry(&self.meta_path(key), bytes);
    }

    pub fn remove_meta(&self, key: &[u8; 32]) {
        let _ = std::fs::remove_file(self.meta_path(key));
    }

    /// Write an entry: a temporary file renamed into place.
    fn write_entry(&self, path: &Path, payload: &[u8]) -> std::io::Result<()> {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.root.join("tmp").join(format!("{}-{n}-{:x}", std::process::id(), nanos()));
        let written = (|| {
            let mut f = File::create(&tmp)?;
            let mut head = [0u8; HEADER];
            head[..8].copy_from_slice(MAGIC);
            head[8..].copy_from_slice(blake3::hash(payload).as_bytes());
            f.write_all(&head)?;
            f.write_all(payload)?;
            std::fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written?;
        self.account((HEADER + payload.len()) as u64);
        Ok(())
    }

    /// Count `bytes` written; past the cap, evict.
    fn account(&self, bytes: u64) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let now = match *held {
            Some(h) => h + bytes,
            None => self.scan_and_evict(),
        };
        *held = Some(if now > self.max_bytes { self.scan_and_evict() } else { now });
    }

    /// Walk the folder; when it holds more than the cap, delete the least
    /// recently used entries until it holds 90% of it. Returns the bytes
    /// left. Temporary files of crashed writers are deleted too.
    pub fn scan_and_evict(&self) -> u64 {
        let mut entries = Vec::new();
        let mut total = 0u64;
        let mut visit = |dir: &Path| {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let Ok(m) = e.metadata() else { continue };
                if m.is_file() {
                    let used = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    total += m.len();
                    entries.push((used, m.len(), e.path()));
                }
            }
        };
        if let Ok(rd) = std::fs::read_dir(self.root.join("b")) {
            for sub in rd.flatten() {
                visit(&sub.path());
            }
        }
        visit(&self.root.join("m"));
        if let Ok(rd) = std::fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                let old = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
                if old.is_some_and(|age| age > STALE_TMP) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        if total > self.max_bytes {
            let target = self.max_bytes / 10 * 9;
            entries.sort();
            for (_, len, path) in entries {
                if total <= target {
                    break;
                }
                if std::fs::remove_file(&path).is_ok() {
                    total -= len;
                }
            }
        }
        total
    }

    /// Lock the stripe of `key` if no one holds it: `None` when another
    /// process (or thread) does. An error (no locking on this file system)
    /// is `Some` of no lock: the caller fetches without coordination.
    pub fn try_lock(&self, key: &[u8; 32]) -> Option<Option<KeyLock>> {
        let Ok(f) = self.lock_file(key) else { return Some(None) };
        match f.try_lock() {
            Ok(()) => Some(Some(KeyLock(f))),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(_) => Some(None),
        }
    }

    /// Wait until no one holds the stripe of `key`.
    pub fn wait_unlocked(&self, key: &[u8; 32]) {
        if let Ok(f) = self.lock_file(key) {
            let _ = f.lock();
        }
    }

    /// The stripe of `key`.
    pub fn stripe(key: &[u8; 32]) -> u64 {
        u64::from_le_bytes(key[..8].try_into().expect("8 bytes")) % LOCK_STRIPES
    }

    fn lock_file(&self, key: &[u8; 32]) -> std::io::Result<File> {
        let path = self.root.join("locks").join(format!("{:03}", Self::stripe(key)));
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)
    }
}

fn nanos() -> u128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Delete the bad entry at `path`, saying why when `HEXZ_CACHE_DEBUG` is set.
fn drop_bad(path: &Path, why: &str) {
    let _ = std::fs::remove_file(path);
    if std::env::var_os("HEXZ_CACHE_DEBUG").is_some() {
        eprintln!("hexz: cache entry {} {why}: deleted", path.display());
    }
}

/// A hit moves an entry up the eviction order by its modification time,
/// at most this often: one `utimensat` per entry per interval instead of
/// one per read (eviction needs the order of minutes, not of reads).
const TOUCH_EVERY: Duration = Duration::from_secs(600);

fn touch(f: &File, meta: &std::fs::Metadata) {
    let stale = meta.modified().ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age > TOUCH_EVERY);
    if stale {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The payload of the structure entry at `path` when it is whole and
/// sound (its BLAKE3 checked: structure is parsed, not hashed by the
/// index); a bad entry is deleted.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let mut f = File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    if meta.len() < HEADER as u64 {
        drop_bad(path, "has the wrong length");
        return None;
    }
    let mut buf = Vec::new();
    buf.try_reserve_exact(usize::try_from(meta.len()).ok()?).ok()?;
    f.read_to_end(&mut buf).ok()?;
    if buf.len() < HEADER || &buf[..8] != MAGIC || buf[8..HEADER] != *blake3::hash(&buf[HEADER..]).as_bytes() {
        drop_bad(path, "fails its hash");
        return None;
    }
    touch(&f, &meta);
    buf.drain(..HEADER);
    Some(buf)
}

/// Read the block entry at `path` into `out`: its header, then the payload
/// straight into the caller's buffer (no allocation, no second copy).
fn read_block_entry(path: &Path, out: &mut [u8], check: bool) -> bool {
    let Ok(mut f) = File::open(path) else { return false };
    let Ok(meta) = f.metadata() else { return false };
    if meta.len() != (HEADER + out.len()) as u64 {
        drop_bad(path, "has the wrong length");
        return false;
    }
    let mut head = [0u8; HEADER];
    if f.read_exact(&mut head).is_err() || f.read_exact(out).is_err() {
        return false;
    }
    if &head[..8] != MAGIC {
        drop_bad(path, "has no magic");
        return false;
    }
    if check && head[8..] != *blake3::hash(out).as_bytes() {
        drop_bad(path, "fails its hash");
        return false;
    }
    touch(&f, &meta);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, max: u64) -> DiskCache {
        for sub in ["b", "m", "tmp", "locks"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        DiskCache {
            root: dir.to_path_buf(),
            max_bytes: max,
            held: Mutex::new(None),
            tmp_counter: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hexz-diskcache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn entries_round_trip_and_bad_ones_are_deleted() {
        let d = tmpdir("roundtrip");
        let c = cache(&d, 1 << 20);
        let key = [7u8; 32];
        let mut five = [0u8; 5];
        assert!(!c.read_block(&key, &mut five, false));
        c.put_block(&key, b"hello");
        assert!(c.read_block(&key, &mut five, false));
        assert_eq!(&five, b"hello");
        assert!(!c.read_block(&key, &mut [0u8; 6], false), "wrong length: a miss");
        assert!(!c.block_path(&key).exists(), "and deleted");
        c.put_block(&key, b"hello");
        let path = c.block_path(&key);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..20]).unwrap();
        assert!(!c.read_block(&key, &mut five, false), "a torn entry");
        assert!(!path.exists());
        let mut foreign = bytes.clone();
        foreign[0] ^= 1;
        std::fs::write(&path, &foreign).unwrap();
        assert!(!c.read_block(&key, &mut five, false), "no magic");
        assert!(!path.exists());
        // A flipped payload bit is the index hash's to catch (after decode).
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(c.read_block(&key, &mut five, false));
        assert_eq!(&five, b"helln");
        assert!(!c.read_block(&key, &mut five, true), "checked when asked");
        assert!(!path.exists());
        // Structure entries are checked against their own hash.
        c.put_meta(&key, b"structure");
        assert_eq!(c.get_meta(&key).as_deref(), Some(&b"structure"[..]));
        let mut meta = std::fs::read(c.meta_path(&key)).unwrap();
        *meta.last_mut().unwrap() ^= 1;
        std::fs::write(c.meta_path(&key), &meta).unwrap();
        assert!(c.get_meta(&key).is_none(), "a flipped bit fails the hash");
        assert!(!c.meta_path(&key).exists());
        assert!(std::fs::read_dir(d.join("tmp")).unwrap().next().is_none(), "no temporary file left");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn eviction_keeps_the_cap_and_drops_the_least_recently_used() {
        let d = tmpdir("evict");
        let c = cache(&d, 10_000);
        let keys: Vec<[u8; 32]> = (0..30u8).map(|i| [i; 32]).collect();
        for (i, k) in keys.iter().enumerate() {
            c.put_block(k, &[0u8; 1000]);
            // Entries used in the order written, a millisecond apart.
            let f = File::options().write(true).open(c.block_path(k)).unwrap();
            f.set_modified(SystemTime::now() - Duration::from_secs(50) + Duration::from_millis(i as u64)).unwrap();
            assert!(c.scan_and_evict() <= 10_000);
        }
        let kept: Vec<usize> = (0..30).filter(|&i| c.block_path(&keys[i]).exists()).collect();
        assert!(kept.len() <= 9 && !kept.is_empty(), "{kept:?}");
        assert!(kept.iter().all(|&i| i > 20), "the newest kept: {kept:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("x"), None);
        assert_eq!(dir_setting(Path::new("off")), None);
        assert_eq!(dir_setting(Path::new("/tmp/c")), Some(PathBuf::from("/tmp/c")));
    }

    #[test]
    fn a_held_stripe_is_busy_until_released() {
        let d = tmpdir("locks");
        let c = cache(&d, 1 << 20);
        let key = [3u8; 32];
        let held = c.try_lock(&key).unwrap();
        assert!(held.is_some());
        assert!(c.try_lock(&key).is_none(), "held through another descriptor");
        drop(held);
        assert!(c.try_lock(&key).unwrap().is_some());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
