//! Shared helpers: real models, a counting source, small stores.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hexz_format::writer::{store_vec, StoreOptions};
use hexz_format::ReadAt;
use hexz_io::Source;

/// Folder of the real models fetched by `scripts/fetch-models.sh`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("HEXZ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hexz-models"))
}

/// A real model file; fails the test (never skips) when it was not fetched.
pub fn real_model(name: &str) -> Vec<u8> {
    let path = models_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run scripts/fetch-models.sh first (the README's test command does)", path.display())
    })
}

/// Store bytes in memory with the core's one-thread writer.
pub fn store_bytes(src: &[u8], opts: &StoreOptions) -> Vec<u8> {
    store_vec::<_, &[u8]>(src, opts, None).expect("store").0
}

/// A source in memory that counts the reads made of it (every read would be
/// a round trip on S3 or HTTP). It never lends its bytes, as a file or a
/// remote object cannot.
pub struct Counting {
    pub bytes: Vec<u8>,
    pub reads: AtomicU64,
    pub read_bytes: AtomicU64,
}

impl Counting {
    pub fn new(bytes: Vec<u8>) -> Arc<Counting> {
        Arc::new(Counting { bytes, reads: AtomicU64::new(0), read_bytes: AtomicU64::new(0) })
    }

    /// (reads, bytes) since the last call.
    pub fn take(&self) -> (u64, u64) {
        (self.reads.swap(0, Ordering::Relaxed), self.read_bytes.swap(0, Ordering::Relaxed))
    }
}

impl ReadAt for Counting {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        assert!(!buf.is_empty(), "the reader asked for zero bytes");
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.bytes.as_slice().read_exact_at(offset, buf)
    }
}

/// The counting source as the reader takes it.
pub fn as_source(c: &Arc<Counting>) -> Source {
    c.clone()
}
