//! Parent chains on disk (found by hint, confirmed by identity, real errors
//! kept), the parallel writer against the core's, and the Store builder's checks.

mod common;

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use common::*;
use hexz_format::writer::{store_vec, StoreOptions};
use hexz_format::{Archive, Compression, ErrorCode};
use hexz_io::{Location, OpenOptions, Reader, Source};

fn go(_: u64) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// The builder with the old store_file's arguments.
fn store_file(
    src: &Path,
    dst: &Path,
    opts: &StoreOptions,
    base: Option<&Location>,
    open: &OpenOptions,
    force: bool,
    progress: hexz_io::Progress<'_>,
) -> hexz_io::Result<hexz_format::writer::StoreReport> {
    hexz_io::Store::from_path(src)
        .to_path(dst)
        .options(opts.clone())
        .base(base.cloned())
        .open_options(open.clone())
        .clobber(if force { hexz_io::Clobber::Replace } else { hexz_io::Clobber::Refuse })
        .progress(progress)
        .run()
}

fn opts() -> StoreOptions {
    StoreOptions { compression: Compression::zstd(3), ..StoreOptions::default() }
}

/// MiniLM with every fourth float of the first 40 MB nudged: a partial fine-tune.
fn fine_tune(base: &[u8]) -> Vec<u8> {
    let mut fine = base.to_vec();
    let header = hexz_format::safetensors::header_length(base, base.len() as u64).unwrap() as usize;
    for c in fine[header..header + (40 << 20)].chunks_exact_mut(16) {
        c[0] ^= 1;
    }
    fine
}

#[test]
fn the_parallel_writer_writes_what_the_core_writes_at_every_thread_count() {
    let src = real_model("minilm.safetensors");
    let core = store_bytes(&src, &StoreOptions::default());
    for threads in [1, 2, 3, 8] {
        let mut out = Vec::new();
        let o = StoreOptions { threads, ..StoreOptions::default() };
        let report = hexz_io::store_parallel(
            &src.as_slice(),
            &Location::Label("m".into()),
            &mut out,
            Path::new("m.hxz"),
            &o,
            None,
            &go,
        )
        .unwrap();
        // The final header goes over the provisional one, as the file stores do.
        out[..64].copy_from_slice(&report.header);
        assert!(out == core, "{threads} threads wrote other bytes than the core's writer");
    }
    // A child too: the fine-tune against its base.
    let fine = fine_tune(&src);
    let base: Source = Arc::new(core.clone());
    let parent = Archive::open(base).unwrap();
    let spec = hexz_format::writer::ParentSpec { archive: &parent, hint: "base.hxz".into() };
    let (child_core, report) = store_vec(fine.as_slice(), &StoreOptions::default(), Some(spec)).unwrap();
    assert!(report.delta_blocks > 0 && report.parent_blocks > 0, "{report:?}");
    let chain = [Location::Label("base".into())];
    for threads in [1, 4] {
        let mut out = Vec::new();
        let o = StoreOptions { threads, ..StoreOptions::default() };
        let p = hexz_io::Parent { archive: &parent, chain: &chain, hint: "base.hxz".into() };
        let report = hexz_io::store_parallel(
            &fine.as_slice(),
            &Location::Label("f".into()),
            &mut out,
            Path::new("f.hxz"),
            &o,
            Some(p),
            &go,
        )
        .unwrap();
        out[..64].copy_from_slice(&report.header);
        assert!(out == child_core, "child: {threads} threads wrote other bytes");
    }
}

#[test]
fn parents_are_found_by_hint_and_confirmed_by_identity_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("models")).unwrap();
    let base = real_model("minilm.safetensors");
    let fine = fine_tune(&base);
    let (base_src, fine_src) = (dir.join("base.safetensors"), dir.join("fine.safetensors"));
    std::fs::write(&base_src, &base).unwrap();
    std::fs::write(&fine_src, &fine).unwrap();
    let (base_hxz, fine_hxz) = (dir.join("models/base.hxz"), dir.join("fine.hxz"));
    let open = OpenOptions::default();
    store_file(&base_src, &base_hxz, &opts(), None, &open, false, &go).unwrap();
    let report =
        store_file(&fine_src, &fine_hxz, &opts(), Some(&Location::from(&base_hxz)), &open, false, &go).unwrap();
    assert!(report.archive_size * 2 < base.len() as u64, "{report:?}");
    let reader = Reader::open(&fine_hxz, &open).unwrap();
    assert_eq!(reader.parent().unwrap().hint, "models/base.hxz");
    assert_eq!(reader.chain()[1], Location::from(&base_hxz));
    assert!(reader.read_vec(0, reader.size()).unwrap() == fine);
    let expected = reader.archive().parent_identity().unwrap();
    drop(reader);

    // Moved: not at the hint any more; a search folder finds it.
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    std::fs::rename(&base_hxz, dir.join("elsewhere/base.hxz")).unwrap();
    let err = Reader::open(&fine_hxz, &open).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.code(), ErrorCode::ParentNotFound, "{text}");
    assert!(
        text.contains(&hexz_format::error::Hex32(expected).to_string()) && text.contains("models/base.hxz"),
        "{text}"
    );
    let search = OpenOptions { search: vec![Location::from(&dir.join("elsewhere"))], ..OpenOptions::default() };
    assert!(Reader::open(&fine_hxz, &search).is_ok());

    // A corrupt file at the hint reports its own error, naming it, not "not found".
    let mut broken = std::fs::read(dir.join("elsewhere/base.hxz")).unwrap();
    let end = broken.len();
    broken[end - 20] ^= 0x40;
    std::fs::write(&base_hxz, &broken).unwrap();
    let err = Reader::open(&fine_hxz, &open).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Checksum, "{err}");
    assert!(err.to_string().starts_with(&base_hxz.display().to_string()), "{err}");

    // Another archive at the hint: refused, naming both identities.
    std::fs::remove_file(&base_hxz).unwrap();
    store_file(&fine_src, &base_hxz, &opts(), None, &open, false, &go).unwrap();
    let err = Reader::open(&fine_hxz, &open).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ParentMismatch, "{err}");

    // An archive opened from memory finds its parent among attached archives.
    let base_mem: Source = Arc::new(std::fs::read(dir.join("elsewhere/base.hxz")).unwrap());
    let attached = Arc::new(Archive::open(base_mem).unwrap());
    let child: Source = Arc::new(std::fs::read(&fine_hxz).unwrap());
    let mem_opts = OpenOptions { attached: vec![attached], ..OpenOptions::default() };
    let reader = Reader::open_source(Location::Label("memory".into()), child.clone(), &mem_opts).unwrap();
    assert!(reader.read_vec(0, reader.size()).unwrap() == fine);
    let err = Reader::open_source(Location::Label("memory".into()), child, &OpenOptions::default()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ParentNotFound, "{err}");
}

#[test]
fn store_file_refuses_its_inputs_and_a_changed_source() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("m.safetensors");
    std::fs::write(&src, real_model("minilm.safetensors")).unwrap();
    let open = OpenOptions::default();
    let hxz = dir.join("m.hxz");
    store_file(&src, &hxz, &opts(), None, &open, false, &go).unwrap();
    // The source itself as destination, even with force and through another name.
    std::fs::hard_link(&src, dir.join("alias")).unwrap();
    for dst in [src.clone(), dir.join("alias")] {
        let err = store_file(&src, &dst, &opts(), None, &open, true, &go).unwrap_err();
        assert!(err.to_string().contains("the source file"), "{err}");
    }
    // The base as destination.
    let err = store_file(&src, &hxz, &opts(), Some(&Location::from(&hxz)), &open, true, &go).unwrap_err();
    assert!(err.to_string().contains("base chain"), "{err}");
    // A source modified while it is read: refused, nothing written.
    let out = dir.join("changed.hxz");
    let err = store_file(&src, &out, &opts(), None, &open, false, &|done| {
        if done > 10 << 20 {
            let mut f = std::fs::OpenOptions::new().append(true).open(dir.join("m.safetensors")).unwrap();
            let _ = f.write_all(b"x");
        }
        ControlFlow::Continue(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("changed as we read it"), "{err}");
    assert!(!out.exists());
}

#[test]
fn two_stores_racing_to_one_new_name_leave_exactly_one_winner() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (a, b) = (dir.join("a.bin"), dir.join("b.bin"));
    std::fs::write(&a, vec![1u8; 3 << 20]).unwrap();
    std::fs::write(&b, vec![2u8; 3 << 20]).unwrap();
    let dst = dir.join("x.hxz");
    for _ in 0..5 {
        let _ = std::fs::remove_file(&dst);
        let results: Vec<_> = std::thread::scope(|s| {
            let one = s.spawn(|| store_file(&a, &dst, &opts(), None, &OpenOptions::default(), false, &go));
            let two = s.spawn(|| store_file(&b, &dst, &opts(), None, &OpenOptions::default(), false, &go));
            vec![one.join().unwrap(), two.join().unwrap()]
        });
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "{results:?}");
        let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert!(lost.to_string().contains("x.hxz") && lost.to_string().contains("already exists"), "{lost}");
        let reader = Reader::open(&dst, &OpenOptions::default()).unwrap();
        let first = reader.read_vec(0, 1).unwrap()[0];
        assert!(first == 1 || first == 2);
    }
    let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 3, "temporaries left: {names:?}");
}
