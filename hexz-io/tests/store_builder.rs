//! The Store builder: every source kind writes the core's bytes, options
//! are checked before anything is written, the clobber policy, sinks of
//! the caller's own, cancellation, and the destinations it refuses.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hexz_format::writer::{store_vec, StoreOptions};
use hexz_format::{Category, ErrorCode};
use hexz_io::options::{CompressionKind, FormatVersion};
use hexz_io::{Clobber, Location, Reader, Sink, SinkOptions, SinkResolver, Store};

/// A raw source of mixed content: repeats (deduplicated) and noise.
fn source() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = Vec::with_capacity(3 << 20);
    for i in 0..(3 << 20) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(if (i >> 16) % 3 == 0 { (i % 251) as u8 } else { x as u8 });
    }
    v
}

fn core(src: &[u8], opts: &StoreOptions) -> Vec<u8> {
    store_vec::<_, &[u8]>(&src, opts, None).unwrap().0
}

#[test]
fn paths_bytes_and_readers_all_write_the_core_s_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source();
    let path = tmp.path().join("src.bin");
    std::fs::write(&path, &src).unwrap();
    let opts = StoreOptions { threads: 3, ..StoreOptions::default() };
    let want = core(&src, &opts);

    let a = tmp.path().join("a.hxz");
    let report = Store::from_path(&path).to_path(&a).threads(3).run().unwrap();
    assert_eq!(report.source_size, src.len() as u64);
    assert!(std::fs::read(&a).unwrap() == want);

    let b = tmp.path().join("b.hxz");
    Store::from_bytes(&src).to_path(&b).threads(3).run().unwrap();
    assert!(std::fs::read(&b).unwrap() == want);

    let c = tmp.path().join("c.hxz");
    let slice: &[u8] = &src;
    let checked = std::sync::atomic::AtomicBool::new(false);
    let unchanged = || {
        checked.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    };
    Store::from_reader(&slice, Location::Label("test bytes".into()))
        .to_path(&c)
        .options(opts.clone())
        .unchanged(&unchanged)
        .run()
        .unwrap();
    assert!(std::fs::read(&c).unwrap() == want);
    assert!(checked.load(std::sync::atomic::Ordering::Relaxed), "the unchanged check runs before the commit");
}

#[test]
fn options_set_by_methods_are_the_core_s_options() {
    let src = source();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("o.hxz");
    Store::from_bytes(&src)
        .to_path(&dst)
        .compression(CompressionKind::Lz4)
        .chunking(hexz_format::writer::Chunking::Fixed)
        .block_size(256 << 10)
        .format(FormatVersion::V1_1)
        .metadata(hexz_io::options::metadata(&["run=7"]).unwrap())
        .run()
        .unwrap();
    let mut opts = StoreOptions {
        compression: hexz_format::Compression::Lz4,
        chunking: hexz_format::writer::Chunking::Fixed,
        block_size: 256 << 10,
        metadata: hexz_io::options::metadata(&["run=7"]).unwrap(),
        ..StoreOptions::default()
    };
    FormatVersion::V1_1.apply(&mut opts);
    assert!(std::fs::read(&dst).unwrap() == core(&src, &opts));
    let zstd9 = Store::from_bytes(&src).level(Some(9)).store_options().unwrap();
    assert_eq!(zstd9.compression, hexz_format::Compression::zstd(9));
}

#[test]
fn bad_options_are_refused_before_anything_is_written() {
    let src = source();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("x.hxz");
    let cases: Vec<(Store<'_>, &str)> = vec![
        (Store::from_bytes(&src).compression(CompressionKind::Lz4).level(Some(3)), "level applies to zstd only"),
        (Store::from_bytes(&src).level(Some(40)), "zstd level must be 1 to 22"),
        (Store::from_bytes(&src).block_size(100), "block size"),
        (Store::from_bytes(&src).threads(1000), "threads"),
    ];
    for (store, text) in cases {
        let err = store.to_path(&dst).run().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
        assert_eq!(err.category(), Category::InvalidInput);
        assert!(err.to_string().contains(text), "{err}");
        assert!(!dst.exists());
    }
    let err = Store::from_bytes(&src).run().unwrap_err();
    assert!(matches!(err, hexz_io::Error::InvalidOption(_)), "{err}");
}

#[test]
fn clobber_refuses_or_replaces() {
    let src = source();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("x.hxz");
    std::fs::write(&dst, b"old").unwrap();
    let err = Store::from_bytes(&src).to_path(&dst).run().unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&dst).unwrap(), b"old");
    Store::from_bytes(&src).to_path(&dst).clobber(Clobber::Replace).run().unwrap();
    let reader = Reader::open(&dst, &Default::default()).unwrap();
    assert!(reader.read_vec(0, reader.size()).unwrap() == src);
}

#[test]
fn cancelling_leaves_nothing() {
    let src = source();
    let tmp = tempfile::tempdir().unwrap();
    let dst = tmp.path().join("x.hxz");
    let stop = |done: u64| if done > 1 << 20 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
    let err = Store::from_bytes(&src).to_path(&dst).block_size(64 << 10).progress(&stop).run().unwrap_err();
    assert!(matches!(err, hexz_io::Error::Cancelled), "{err}");
    assert_eq!(err.category(), Category::Cancelled);
    assert!(!dst.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "no temporary left");
}

#[test]
fn urls_need_a_remote_sink_resolver_and_folders_cannot_go_to_one() {
    let src = source();
    let url = Location::Url("s3://bucket/x.hxz".into());
    let err = Store::from_bytes(&src).to(url.clone()).run().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    assert!(err.to_string().contains("remote support"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.bin"), b"abc").unwrap();
    let err = Store::from_path(tmp.path()).to(url).sinks(Arc::new(Memory::default())).run().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    assert!(err.to_string().contains("folder to a URL"), "{err}");
}

/// Archives committed to memory: (destination, bytes).
type Stored = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A sink resolver of the test's own: archives kept in memory by name.
#[derive(Default)]
struct Memory {
    stored: Stored,
    hints: Mutex<Vec<(Location, Location)>>,
}

struct MemorySink {
    name: String,
    bytes: Vec<u8>,
    stored: Stored,
}

impl Sink for MemorySink {
    fn writer(&mut self) -> Box<dyn Write + '_> {
        Box::new(&mut self.bytes)
    }
    fn commit(self: Box<Self>) -> hexz_io::Result<()> {
        self.stored.lock().unwrap().push((self.name, self.bytes));
        Ok(())
    }
}

impl SinkResolver for Memory {
    fn create(&self, dst: &Location, opts: &SinkOptions) -> hexz_io::Result<Box<dyn Sink>> {
        assert_eq!(opts.clobber, Clobber::Replace);
        Ok(Box::new(MemorySink { name: dst.to_string(), bytes: Vec::new(), stored: self.stored.clone() }))
    }
    fn parent_hint(&self, dst: &Location, parent: &Location) -> String {
        self.hints.lock().unwrap().push((dst.clone(), parent.clone()));
        "the-base".into()
    }
}

#[test]
fn a_sink_resolver_of_one_s_own_gets_the_archive_and_names_the_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source();
    let base_path = tmp.path().join("base.hxz");
    Store::from_bytes(&src).to_path(&base_path).run().unwrap();
    let mut child = src.clone();
    child[100] ^= 1;
    let memory = Arc::new(Memory::default());
    let dst = Location::Url("mem://archives/child.hxz".into());
    let report = Store::from_bytes(&child)
        .to(dst.clone())
        .base(Some(Location::Path(base_path.clone())))
        .clobber(Clobber::Replace)
        .sinks(memory.clone())
        .run()
        .unwrap();
    assert!(report.parent_blocks > 0, "{report:?}");
    let stored = memory.stored.lock().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "mem://archives/child.hxz");
    assert_eq!(memory.hints.lock().unwrap()[..], [(dst, Location::Path(base_path.clone()))]);
    // Read back with the base attached: the child's bytes.
    let child_archive: hexz_io::Source = Arc::new(stored[0].1.clone());
    let base_reader = Reader::open(&base_path, &Default::default()).unwrap();
    let open = hexz_io::OpenOptions { attached: vec![Arc::new(base_reader.archive().clone())], ..Default::default() };
    let reader = Reader::open_source(Location::Label("memory".into()), child_archive, &open).unwrap();
    assert_eq!(reader.parent().unwrap().hint, "the-base");
    assert!(reader.read_vec(0, reader.size()).unwrap() == child);
}

#[test]
fn folders_store_through_the_builder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.bin"), source()).unwrap();
    std::fs::write(dir.join("sub/b.txt"), b"hello").unwrap();
    let dst = tmp.path().join("ckpt.hxz");
    let report = Store::from_path(&dir).to_path(&dst).run().unwrap();
    assert_eq!(report.source_size, source().len() as u64 + 5);
    let reader = Reader::open(&dst, &Default::default()).unwrap();
    assert_eq!(reader.source_format(), hexz_format::SourceFormat::Folder);
    // Inside the folder being stored: refused.
    let err = Store::from_path(&dir).to_path(dir.join("x.hxz")).run().unwrap_err();
    assert!(err.to_string().contains("inside the folder"), "{err}");
    let _: PathBuf = dst;
}
