//! The decoded-block cache under the mount and remote reads (issue #30):
//! byte-exact reads through it, one decode per block however many threads
//! want it, read-ahead behind sequential reads, the memory bound, and bytes
//! that fail their hash never kept. Real data (MiniLM) and small generated
//! archives.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hexz_format::writer::StoreOptions;
use hexz_format::{Compression, ErrorCode, ReadAt};
use hexz_io::{CacheOptions, CachedReader, Location, OpenOptions, Reader, Source};

fn no_read_ahead(budget: usize) -> CacheOptions {
    CacheOptions { budget, read_ahead: 0, read_ahead_threads: 0 }
}

/// Wait (at most 20 s) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every block of the reader: (start, length).
fn blocks_of(reader: &Reader) -> Vec<(u64, u64)> {
    let archive = reader.archive();
    let mut page = vec![0u8; archive.page_bytes()];
    archive
        .blocks(0, reader.size(), &mut page)
        .unwrap()
        .map(|b| b.map(|b| (b.entry.virtual_offset.get(), u64::from(b.entry.virtual_length.get()))).unwrap())
        .collect()
}

/// A generated file of `len` bytes: compressible, no two blocks alike.
fn generated(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                (x >> 56) as u8
            } else {
                (i / 4096) as u8
            }
        })
        .collect()
}

fn raw_opts(compression: Compression) -> StoreOptions {
    StoreOptions { raw: true, compression, block_size: 64 << 10, ..StoreOptions::default() }
}

fn open_bytes(archive: Vec<u8>) -> Reader {
    let source: Source = Arc::new(archive);
    Reader::open_source(Location::Label("generated".into()), source, &OpenOptions::default()).unwrap()
}

/// A generated 1 MiB file, its archive, and one block of it.
struct WithBlock {
    src: Vec<u8>,
    archive: Vec<u8>,
    /// Where the block is in the file: (offset, length).
    block: (u64, u64),
    /// Where its stored bytes are in the archive: (offset, length).
    stored: (u64, u64),
}

/// The generated file stored with `compression`, and its block `index`.
fn generated_with_block(compression: Compression, index: usize) -> WithBlock {
    let src = generated(1 << 20);
    let archive = store_bytes(&src, &raw_opts(compression));
    let probe = open_bytes(archive.clone());
    let block = blocks_of(&probe)[index];
    let mut page = vec![0u8; probe.archive().page_bytes()];
    let entry = probe.archive().blocks(block.0, 1, &mut page).unwrap().next().unwrap().unwrap().entry;
    WithBlock { src, archive, block, stored: (entry.stored_offset.get(), u64::from(entry.stored_length.get())) }
}

#[test]
fn small_reads_through_the_cache_match_the_file_and_decode_each_block_once() {
    let src = real_model("minilm.safetensors");
    let reader = open_bytes(store_bytes(&src, &StoreOptions::default()));
    let blocks = blocks_of(&reader).len() as u64;
    let cached = CachedReader::new(reader, &no_read_ahead(64 << 20));
    // The kernel's way: a file read in pieces smaller than a block, in order.
    let mut out = vec![0u8; src.len()];
    for (i, piece) in out.chunks_mut(128 << 10).enumerate() {
        cached.read_at(i as u64 * (128 << 10), piece).unwrap();
    }
    assert!(out == src, "bytes differ");
    assert_eq!(cached.cache().loads(), blocks, "each block decoded exactly once");
    assert!(cached.cache().hits() > 0);
    // Reads across block ends, and empty ones.
    for at in [0u64, 1, 65_535, src.len() as u64 / 2, src.len() as u64 - 1] {
        let mut buf = vec![0u8; (src.len() as u64 - at).min(300_000) as usize];
        cached.read_at(at, &mut buf).unwrap();
        assert!(buf == src[at as usize..at as usize + buf.len()]);
    }
    cached.read_at(src.len() as u64, &mut []).unwrap();
    let err = cached.read_at(src.len() as u64, &mut [0u8; 1]).unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutOfRange);
}

#[test]
fn the_cache_stays_within_its_budget() {
    let src = generated(4 << 20);
    let cached = CachedReader::new(
        open_bytes(store_bytes(&src, &raw_opts(Compression::zstd(3)))),
        &CacheOptions { budget: 300 << 10, read_ahead: 1 << 20, read_ahead_threads: 2 },
    );
    let mut buf = vec![0u8; 10_000];
    for at in (0..src.len() - buf.len()).step_by(33_333) {
        cached.read_at(at as u64, &mut buf).unwrap();
        assert!(buf == src[at..at + buf.len()]);
        assert!(cached.cache().held() <= 300 << 10, "held {}", cached.cache().held());
    }
}

/// A source whose reads past `gate_from` wait until `open` is set: a slow
/// disk or network, held still while a second thread asks for the block.
struct Gated {
    bytes: Vec<u8>,
    gate_from: u64,
    open: AtomicBool,
    data_reads: AtomicU64,
}

impl ReadAt for Gated {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        if offset + buf.len() as u64 > self.gate_from && offset < self.gate_from + 4096 {
            self.data_reads.fetch_add(1, Ordering::SeqCst);
            wait_until("the gate to open", || self.open.load(Ordering::SeqCst));
        }
        self.bytes.as_slice().read_exact_at(offset, buf)
    }
}

#[test]
fn two_threads_reading_one_block_cause_one_decode() {
    let WithBlock { src, archive, block: (start, len), stored: (stored, _) } =
        generated_with_block(Compression::Lz4, 3);
    let gated = Arc::new(Gated {
        bytes: archive,
        gate_from: stored,
        open: AtomicBool::new(false),
        data_reads: AtomicU64::new(0),
    });
    let source: Source = gated.clone();
    let reader = Reader::open_source(Location::Label("gated".into()), source, &OpenOptions::default()).unwrap();
    let cached = CachedReader::new(reader, &no_read_ahead(8 << 20));
    let read = |at: u64| {
        let mut buf = vec![0u8; 1000];
        cached.read_at(at, &mut buf).unwrap();
        assert!(buf == src[at as usize..at as usize + 1000]);
    };
    std::thread::scope(|s| {
        let first = s.spawn(|| read(start + 10));
        wait_until("the first decode to reach the source", || gated.data_reads.load(Ordering::SeqCst) == 1);
        let second = s.spawn(|| read(start + len - 1000));
        // The second thread waits for the first one's decode...
        wait_until("the second reader to wait", || cached.cache().waits() == 1);
        gated.open.store(true, Ordering::SeqCst);
        first.join().unwrap();
        second.join().unwrap();
    });
    // ...and decodes nothing itself.
    assert_eq!(cached.cache().loads(), 1, "one decode for two readers");
    assert_eq!(gated.data_reads.load(Ordering::SeqCst), 1, "the block's bytes read once");
}

#[test]
fn sequential_reads_start_read_ahead_and_random_ones_do_not() {
    let src = generated(4 << 20);
    let reader = open_bytes(store_bytes(&src, &raw_opts(Compression::zstd(3))));
    let blocks = blocks_of(&reader);
    let window = 1u64 << 20;
    let cached =
        CachedReader::new(reader, &CacheOptions { budget: 8 << 20, read_ahead: window, read_ahead_threads: 2 });
    let cache = cached.cache();
    // A read in the middle that continues nothing: random.
    let mut buf = vec![0u8; 4096];
    let middle = 2 << 20;
    cached.read_at(middle, &mut buf).unwrap();
    // A read at the start of the file is sequential: the window after the
    // block it touched is decoded ahead, on the read-ahead threads.
    cached.read_at(0, &mut buf).unwrap();
    let first_end = blocks[0].1;
    let ahead: Vec<_> = blocks.iter().filter(|b| b.0 >= first_end && b.0 < first_end + window).collect();
    assert!(ahead.len() >= 8, "{} blocks in the window", ahead.len());
    wait_until("read-ahead to decode the window", || cache.loads() as usize >= 2 + ahead.len());
    assert!(ahead.iter().all(|b| cache.has_or_loading(b.0)));
    // Had the random read started read-ahead (asked first), its next block
    // would be on its way by now.
    let after_middle = blocks.iter().find(|b| b.0 > middle).unwrap().0;
    assert!(!cache.has_or_loading(after_middle), "a random read started read-ahead");
    // The reader, continuing, finds the window decoded.
    let hits = cache.hits();
    let mut next = vec![0u8; window as usize];
    cached.read_at(4096, &mut next[..(first_end - 4096) as usize]).unwrap();
    cached.read_at(first_end, &mut next).unwrap();
    assert!(next[..] == src[first_end as usize..(first_end + window) as usize]);
    assert!(cache.hits() >= hits + ahead.len() as u64, "the window was read from the cache");
}

#[test]
fn a_block_that_fails_its_hash_is_an_error_and_never_cached() {
    let WithBlock { src, mut archive, block: (start, _), stored: (stored, _) } =
        generated_with_block(Compression::None, 5);
    archive[stored as usize + 100] ^= 0x40;
    let cached = CachedReader::new(open_bytes(archive), &no_read_ahead(8 << 20));
    for _ in 0..2 {
        let err = cached.read_at(start, &mut [0u8; 10]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::HashMismatch, "{err}");
    }
    assert_eq!(cached.cache().loads(), 2, "each read decoded again: nothing bad was kept");
    assert_eq!(cached.cache().held(), 0);
    // Its neighbours read fine.
    let mut buf = vec![0u8; 1000];
    cached.read_at(start - 1000, &mut buf).unwrap();
    assert!(buf == src[start as usize - 1000..start as usize]);
}

/// A source with a cache of its own (as a remote source keeps fetched
/// ranges) whose first answer for one range is corrupt, as one bad
/// response from a server would be.
struct CorruptOnce {
    bytes: Vec<u8>,
    bad_at: u64,
    kept_bad: AtomicBool,
    discards: AtomicU64,
}

impl ReadAt for CorruptOnce {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        self.bytes.as_slice().read_exact_at(offset, buf)?;
        let hit = offset <= self.bad_at && self.bad_at < offset + buf.len() as u64;
        if hit && self.discards.load(Ordering::SeqCst) == 0 {
            // The bad response is in the cache until it is discarded.
            self.kept_bad.store(true, Ordering::SeqCst);
            buf[(self.bad_at - offset) as usize] ^= 1;
        }
        Ok(())
    }

    fn discard_cached(&self) -> bool {
        self.discards.fetch_add(1, Ordering::SeqCst);
        self.kept_bad.swap(false, Ordering::SeqCst)
    }
}

#[test]
fn bytes_that_fail_their_hash_are_dropped_from_the_source_cache_and_fetched_again() {
    let WithBlock { src, archive, block: (start, len), stored: (stored, stored_len) } =
        generated_with_block(Compression::Lz4, 2);
    let bad_at = stored + stored_len / 2;
    let source =
        Arc::new(CorruptOnce { bytes: archive, bad_at, kept_bad: AtomicBool::new(false), discards: AtomicU64::new(0) });
    let as_source: Source = source.clone();
    let reader = Reader::open_source(Location::Label("flaky".into()), as_source, &OpenOptions::default()).unwrap();
    let mut buf = vec![0u8; len as usize];
    reader.read_at(start, &mut buf).unwrap();
    assert!(buf == src[start as usize..(start + len) as usize]);
    assert_eq!(source.discards.load(Ordering::SeqCst), 1, "the bad bytes were discarded once, then read again");
}

#[test]
fn memfd_holds_the_whole_file_sealed() {
    let src = real_model("minilm.safetensors");
    let reader = open_bytes(store_bytes(&src, &StoreOptions::default()));
    let result = hexz_io::memfd(&reader, 2);
    #[cfg(not(target_os = "linux"))]
    assert_eq!(result.unwrap_err().code(), ErrorCode::Unsupported);
    #[cfg(target_os = "linux")]
    {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let mut file = result.unwrap();
        let mut back = Vec::new();
        file.read_to_end(&mut back).unwrap();
        assert!(back == src);
        // SAFETY: fcntl on a descriptor we own.
        let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
        let want = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
        assert_eq!(seals & want, want);
        // SAFETY: as above.
        assert!(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC != 0);
    }
}
