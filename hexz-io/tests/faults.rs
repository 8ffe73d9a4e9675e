//! Faults in every stage of a store or a parallel read end every stage and
//! come back as a clear error naming the side at fault, within seconds;
//! nothing waits forever (issue #17). Each test runs under a watchdog.

mod common;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hexz_format::writer::StoreOptions;
use hexz_format::{Compression, ErrorCode, ReadAt};
use hexz_io::{HashSink, Location, OpenOptions, Parent, Reader, Source};

/// Run `f` on a thread; fail the test if it has not returned in 60 s.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(seconds(60)).expect("hung: no result within 60 s (times HEXZ_TEST_TIME_SCALE)")
}

/// `n` seconds, times HEXZ_TEST_TIME_SCALE (default 1): scripts/cross-test.sh
/// sets it where the tests run under an emulator (qemu-user, wine).
fn seconds(n: u64) -> Duration {
    let scale = std::env::var("HEXZ_TEST_TIME_SCALE").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
    Duration::from_secs(n * scale.max(1))
}

/// The platform's codes for a full disk and a failed device read, so each
/// error reads as the system's own (ENOSPC and EIO on Unix; Windows has
/// other numbers: its 28 and 5 are "out of paper" and "access denied").
#[cfg(not(windows))]
const DISK_FULL: i32 = 28; // ENOSPC
#[cfg(windows)]
const DISK_FULL: i32 = 112; // ERROR_DISK_FULL
#[cfg(not(windows))]
const IO_ERROR: i32 = 5; // EIO
#[cfg(windows)]
const IO_ERROR: i32 = 1117; // ERROR_IO_DEVICE

/// The text the platform gives an OS error code (with "(os error N)").
fn os_error_text(code: i32) -> String {
    std::io::Error::from_raw_os_error(code).to_string()
}

/// A destination that fails after `limit` bytes, like a full disk.
struct FullDisk {
    written: u64,
    limit: u64,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(std::io::Error::from_raw_os_error(DISK_FULL));
        }
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A source that fails every read past `fail_at`.
struct FailingSource {
    bytes: Vec<u8>,
    fail_at: u64,
}

impl ReadAt for FailingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        if offset + buf.len() as u64 > self.fail_at {
            return Err(hexz_format::Error::from_io(offset, std::io::Error::from_raw_os_error(IO_ERROR)));
        }
        self.bytes.as_slice().read_exact_at(offset, buf)
    }
}

fn minilm() -> Arc<Vec<u8>> {
    Arc::new(real_model("minilm.safetensors"))
}

fn opts(threads: usize) -> StoreOptions {
    StoreOptions { threads, ..StoreOptions::default() }
}

#[test]
fn a_full_destination_ends_the_store_and_names_it() {
    let src = minilm();
    for threads in [1, 2, 8] {
        for limit in [0u64, 100, 5 << 20, 40 << 20] {
            let src = src.clone();
            let started = Instant::now();
            let err = within_a_minute(move || {
                let mut out = FullDisk { written: 0, limit };
                let name = Location::Label("minilm".into());
                hexz_io::store_parallel(
                    &src.as_slice(),
                    &name,
                    &mut out,
                    Path::new("/full/x.hxz"),
                    &opts(threads),
                    None,
                    &|_| ControlFlow::Continue(()),
                )
                .unwrap_err()
            });
            let text = err.to_string();
            assert_eq!(err.code(), ErrorCode::Io, "{text}");
            assert!(text.contains("/full/x.hxz") && text.contains(&os_error_text(DISK_FULL)), "{text}");
            assert!(started.elapsed() < seconds(20), "took {:?}", started.elapsed());
        }
    }
}

#[test]
fn a_failing_source_ends_the_store_and_names_it() {
    let bytes = real_model("minilm.safetensors");
    for threads in [1, 3] {
        for fail_at in [10u64 << 20, 80 << 20] {
            let src = FailingSource { bytes: bytes.clone(), fail_at };
            let err = within_a_minute(move || {
                let name = Location::Path("model.safetensors".into());
                hexz_io::store_parallel(
                    &src,
                    &name,
                    &mut Vec::new(),
                    Path::new("out.hxz"),
                    &opts(threads),
                    None,
                    &|_| ControlFlow::Continue(()),
                )
                .unwrap_err()
            });
            let text = err.to_string();
            assert!(text.starts_with("model.safetensors:") && text.contains(&os_error_text(IO_ERROR)), "{text}");
        }
    }
}

#[test]
fn a_corrupt_parent_ends_the_store_and_names_the_parent() {
    let base = real_model("minilm.safetensors");
    let mut parent_bytes =
        store_bytes(&base, &StoreOptions { compression: Compression::Lz4, ..StoreOptions::default() });
    // The fine-tune changes every float a little, so every block is a delta against the parent.
    let mut fine = base.clone();
    let header = hexz_format::safetensors::header_length(&fine, fine.len() as u64).unwrap() as usize;
    for chunk in fine[header..].chunks_exact_mut(4).step_by(3) {
        chunk[0] ^= 1;
    }
    // Corrupt one stored block of the parent (in the middle of the data region).
    let mid = parent_bytes.len() / 2;
    parent_bytes[mid] ^= 0xff;
    let source: Source = Arc::new(parent_bytes);
    let parent = hexz_format::Archive::open(source).unwrap();
    let chain = [Location::Path("models/base.hxz".into())];
    let err = within_a_minute(move || {
        let p = Parent { archive: &parent, chain: &chain, hint: "base.hxz".into() };
        let name = Location::Path("fine.safetensors".into());
        hexz_io::store_parallel(
            &fine.as_slice(),
            &name,
            &mut Vec::new(),
            Path::new("fine.hxz"),
            &opts(2),
            Some(p),
            &|_| ControlFlow::Continue(()),
        )
        .unwrap_err()
    });
    let text = err.to_string();
    assert!(text.starts_with("models/base.hxz:"), "{text}");
    assert!(matches!(err.code(), ErrorCode::HashMismatch | ErrorCode::Decode), "{text}");
}

#[test]
fn cancelling_from_progress_ends_the_store() {
    let src = minilm();
    let err = within_a_minute(move || {
        let name = Location::Label("minilm".into());
        hexz_io::store_parallel(&src.as_slice(), &name, &mut Vec::new(), Path::new("x.hxz"), &opts(2), None, &|done| {
            if done > 8 << 20 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err()
    });
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
}

/// A source whose reads panic once past an offset, then work again.
struct PanicsOnce {
    bytes: Vec<u8>,
    armed: AtomicU64,
}

impl ReadAt for PanicsOnce {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        if offset > 1 << 20 && self.armed.swap(0, Ordering::Relaxed) == 1 {
            panic!("a read callback panicked");
        }
        self.bytes.as_slice().read_exact_at(offset, buf)
    }
}

#[test]
fn a_panicking_read_returns_its_workspace() {
    let src = real_model("minilm.safetensors");
    let hxz = store_bytes(&src, &StoreOptions::default());
    let source = Arc::new(PanicsOnce { bytes: hxz, armed: AtomicU64::new(0) });
    let opts = OpenOptions { read_slots: 1, ..OpenOptions::default() };
    let reader = Reader::open_source(Location::Label("p".into()), source.clone(), &opts).unwrap();
    let mut buf = vec![0u8; 4 << 20];
    for round in 0..3 {
        source.armed.store(1, Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.read_at(40 << 20, &mut buf)));
        assert!(outcome.is_err(), "round {round}: the read did not panic");
        // With one slot, a leaked workspace would make this wait forever.
        let reader = &reader;
        let ok = std::thread::scope(|s| {
            s.spawn(|| {
                let mut b = vec![0u8; 4096];
                reader.read_at(1000, &mut b).map(|_| b)
            })
            .join()
            .unwrap()
        });
        assert!(ok.unwrap()[..] == src[1000..5096]);
    }
}

/// A source whose reads panic on threads other than the one that made it
/// (the parallel reader's workers), while armed.
struct PanicsOnWorkers {
    bytes: Vec<u8>,
    owner: std::thread::ThreadId,
    armed: std::sync::atomic::AtomicBool,
}

impl ReadAt for PanicsOnWorkers {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        if self.armed.load(Ordering::Relaxed) && std::thread::current().id() != self.owner {
            panic!("worker read at {offset} panicked");
        }
        self.bytes.as_slice().read_exact_at(offset, buf)
    }
}

#[test]
fn a_panic_on_a_worker_is_a_panic_error_with_its_message() {
    let src = real_model("gemma.gguf");
    let hxz = store_bytes(&src, &StoreOptions::default());
    let source = Arc::new(PanicsOnWorkers {
        bytes: hxz,
        owner: std::thread::current().id(),
        armed: std::sync::atomic::AtomicBool::new(false),
    });
    let reader = Reader::open_source(Location::Label("w".into()), source.clone(), &OpenOptions::default()).unwrap();
    let (index, t) = reader.tensor("token_embd.weight").unwrap();
    let mut buf = vec![0u8; t.length as usize];
    source.armed.store(true, Ordering::Relaxed);
    // Two threads: the calling one and a spawned worker, whose reads panic.
    let err = reader.read_into_parallel(t.offset, &mut buf, 2, &|_| ControlFlow::Continue(())).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Panic, "{err}");
    assert!(err.to_string().contains("panicked"), "{err}");
    // Every workspace came back: the same read works once disarmed.
    source.armed.store(false, Ordering::Relaxed);
    reader.read_into_parallel(t.offset, &mut buf, 2, &|_| ControlFlow::Continue(())).unwrap();
    assert!(buf == src[t.offset as usize..(t.offset + t.length) as usize], "tensor {index}");
}

#[test]
fn a_failing_sink_ends_a_parallel_read() {
    let src = real_model("gemma.gguf");
    let hxz = store_bytes(&src, &StoreOptions::default());
    let reader =
        Arc::new(Reader::open_source(Location::Label("g".into()), Arc::new(hxz), &OpenOptions::default()).unwrap());
    struct Broken(AtomicU64);
    impl hexz_io::RangeSink for Broken {
        fn ordered(&self) -> bool {
            true
        }
        fn write_at(&self, _offset: u64, data: &[u8]) -> hexz_io::Result<()> {
            if self.0.fetch_add(data.len() as u64, Ordering::Relaxed) > 50 << 20 {
                return Err(hexz_io::Error::file("/dev/full", "write", std::io::Error::from_raw_os_error(DISK_FULL)));
            }
            Ok(())
        }
    }
    for threads in [1, 2, 16] {
        let r = reader.clone();
        let err = within_a_minute(move || {
            r.read_range_parallel(0, r.size(), &Broken(AtomicU64::new(0)), threads, &|_| ControlFlow::Continue(()))
                .unwrap_err()
        });
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
    // And a good run hashes to the source's BLAKE3.
    let sink = HashSink::new();
    reader.read_range_parallel(0, reader.size(), &sink, 0, &|_| ControlFlow::Continue(())).unwrap();
    assert_eq!(sink.finalize(), *blake3::hash(&src).as_bytes());
}
