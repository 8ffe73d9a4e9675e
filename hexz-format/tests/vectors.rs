//! The spec's test vectors (`spec/vectors/`): each `.hxz` must decode to its
//! `.expected` bytes, and storing `.expected` with the vector's settings must
//! reproduce the `.hxz` byte for byte (the writer is deterministic).
//! `HEXZ_REGENERATE_VECTORS=1 cargo test --test vectors` rewrites them.

mod common;

use std::path::PathBuf;

use common::*;
use hexz_format::writer::{store_vec, Chunking, ParentSpec, StoreOptions};
use hexz_format::{Archive, Compression, FilterId};

struct Vector {
    name: &'static str,
    source: fn() -> Vec<u8>,
    compression: Compression,
    /// Format 1.2's `fields` filter for quantized GGML blocks.
    split_fields: bool,
}

fn raw_repeating() -> Vec<u8> {
    let mut rng = Rng(99);
    let chunk: Vec<u8> = (0..4096).map(|_| rng.below(16) as u8).collect();
    [chunk.clone(), chunk.clone(), b"end of file\n".to_vec()].concat()
}

/// Quantized GGML blocks as real ones look: half-float scales of one
/// magnitude, then quants. Q8_0 over several 4 KiB blocks (the last one
/// cut short), Q4_K and Q6_K over one each.
fn quantized_gguf() -> Vec<u8> {
    let mut rng = Rng(31);
    let mut blocks = |count: usize, width: usize, scales: &[usize]| -> Vec<u8> {
        let mut out = Vec::with_capacity(count * width);
        for _ in 0..count {
            // Quants bunched around zero, as trained weights give.
            let mut block: Vec<u8> =
                (0..width).map(|_| (0..4).map(|_| rng.below(32) as u8).sum::<u8>().wrapping_sub(62)).collect();
            for &at in scales {
                let half = 0x2000u16 + rng.below(0x400) as u16;
                block[at..at + 2].copy_from_slice(&half.to_le_bytes());
            }
            out.extend_from_slice(&block);
        }
        out
    };
    let q8 = blocks(300, 34, &[0]);
    let q4k = blocks(20, 144, &[0, 2]);
    let q6k = blocks(12, 210, &[208]);
    gguf_file(&[
        ("token_embd.weight", vec![32 * 300], 8, &q8),
        ("blk.0.ffn_up.weight", vec![256 * 20], 12, &q4k),
        ("blk.0.ffn_down.weight", vec![256 * 12], 14, &q6k),
    ])
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "safetensors-zstd",
        source: tiny_safetensors,
        compression: Compression::zstd(3),
        split_fields: false,
    },
    Vector { name: "gguf-lz4", source: tiny_gguf, compression: Compression::Lz4, split_fields: false },
    Vector { name: "gguf-none", source: tiny_gguf, compression: Compression::None, split_fields: false },
    Vector { name: "raw-dedup-zstd", source: raw_repeating, compression: Compression::zstd(3), split_fields: false },
    Vector { name: "empty-none", source: Vec::new, compression: Compression::None, split_fields: false },
    Vector { name: "gguf-fields-zstd", source: quantized_gguf, compression: Compression::zstd(3), split_fields: true },
];

/// Settings all vectors use: small blocks and pages so that several pages
/// exist; fixed-size blocks (format 1.0 vectors predate content-defined cuts).
fn options(compression: Compression) -> StoreOptions {
    StoreOptions {
        compression,
        block_size: 4096,
        entries_per_page: 2,
        threads: 2,
        chunking: Chunking::Fixed,
        split_fields: false,
        entropy: false,
        ..StoreOptions::default()
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

#[test]
fn spec_vectors_decode_and_reproduce() {
    let regenerate = std::env::var_os("HEXZ_REGENERATE_VECTORS").is_some();
    for v in VECTORS {
        let source = (v.source)();
        let opts = StoreOptions { split_fields: v.split_fields, ..options(v.compression) };
        let built = store_vec::<_, &[u8]>(source.as_slice(), &opts, None).unwrap().0;
        let hxz_path = dir().join(format!("{}.hxz", v.name));
        let expected_path = dir().join(format!("{}.expected", v.name));
        if regenerate {
            std::fs::write(&hxz_path, &built).unwrap();
            std::fs::write(&expected_path, &source).unwrap();
        }
        let hxz = std::fs::read(&hxz_path).unwrap_or_else(|e| panic!("{}: {e}", hxz_path.display()));
        let expected = std::fs::read(&expected_path).unwrap();
        let archive = Archive::open(hxz.as_slice()).unwrap();
        assert_eq!(archive.read_vec(0, archive.virtual_size()).unwrap(), expected, "{}", v.name);
        assert!(hexz_format::verify::verify(hxz.as_slice(), true, &|_| {}).is_ok(), "{}", v.name);
        assert_eq!(expected, source, "{}: generator changed", v.name);
        assert!(built == hxz, "{}: the writer no longer reproduces the vector", v.name);
    }
}

/// The parent of the delta vector: tensors a fine-tune changes in
/// different ways (see `delta_child_source`).
fn delta_parent_source() -> Vec<u8> {
    let mut rng = Rng(21);
    let bf16: Vec<u8> = (0..4096).flat_map(|_| (0x3c00u16 + rng.below(0x200) as u16).to_le_bytes()).collect();
    write_safetensors(&[
        StTensor { name: "dense.weight".into(), dtype: "F32".into(), shape: vec![2048], data: weights(&mut rng, 2048) },
        StTensor { name: "sparse.weight".into(), dtype: "BF16".into(), shape: vec![4096], data: bf16 },
        StTensor {
            name: "flipped.weight".into(),
            dtype: "F32".into(),
            shape: vec![1024],
            data: weights(&mut rng, 1024),
        },
        StTensor { name: "same.weight".into(), dtype: "F32".into(), shape: vec![1024], data: weights(&mut rng, 1024) },
    ])
}

/// The fine-tune: dense small steps (delta-sub), one BF16 element in 32
/// moved by ±1 (delta-sub-bits), mantissa bit 22 flipped in half the
/// elements (delta-xor: as a difference it would be ±2^22), an unchanged
/// tensor (kept in the parent) and a new one. Integer steps on the bit
/// patterns keep the generator exact on every platform.
fn delta_child_source() -> Vec<u8> {
    let mut tensors = read_safetensors(&delta_parent_source());
    let mut rng = Rng(22);
    for t in &mut tensors {
        match t.name.as_str() {
            "dense.weight" => t.data.chunks_exact_mut(4).for_each(|c| {
                let v = u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    .wrapping_add(rng.below(4001) as u32)
                    .wrapping_sub(2000);
                c.copy_from_slice(&v.to_le_bytes());
            }),
            "sparse.weight" => t.data.chunks_exact_mut(2).for_each(|c| {
                let step = match rng.below(64) {
                    0 => 1u16,
                    1 => u16::MAX,
                    _ => 0,
                };
                c.copy_from_slice(&u16::from_le_bytes([c[0], c[1]]).wrapping_add(step).to_le_bytes());
            }),
            "flipped.weight" => t.data.chunks_exact_mut(4).for_each(|c| c[2] ^= 0x40 * rng.below(2) as u8),
            _ => {}
        }
    }
    tensors.push(StTensor {
        name: "new.bias".into(),
        dtype: "F32".into(),
        shape: vec![16],
        data: weights(&mut rng, 16),
    });
    write_safetensors(&tensors)
}

/// `delta-parent` and `delta-child` (stored against it, hint
/// "delta-parent.hxz", zstd level 3): the child holds every delta filter
/// and blocks that live in the parent.
#[test]
fn spec_delta_vector_decodes_and_reproduces() {
    let regenerate = std::env::var_os("HEXZ_REGENERATE_VECTORS").is_some();
    let opts = options(Compression::zstd(3));
    let parent_src = delta_parent_source();
    let child_src = delta_child_source();
    let parent_built = store_vec::<_, &[u8]>(parent_src.as_slice(), &opts, None).unwrap().0;
    let parent = Archive::open(parent_built.as_slice()).unwrap();
    let spec = ParentSpec { archive: &parent, hint: "delta-parent.hxz".into() };
    let child_built = store_vec(child_src.as_slice(), &opts, Some(spec)).unwrap().0;
    for (name, built, src) in [("delta-parent", &parent_built, &parent_src), ("delta-child", &child_built, &child_src)]
    {
        if regenerate {
            std::fs::write(dir().join(format!("{name}.hxz")), built).unwrap();
            std::fs::write(dir().join(format!("{name}.expected")), src).unwrap();
        }
        let expected = std::fs::read(dir().join(format!("{name}.expected"))).unwrap();
        assert_eq!(&expected, src, "{name}: generator changed");
        let stored = std::fs::read(dir().join(format!("{name}.hxz"))).unwrap();
        assert!(&stored == built, "{name}: the writer no longer reproduces the vector");
    }
    let parent_hxz = std::fs::read(dir().join("delta-parent.hxz")).unwrap();
    let child_hxz = std::fs::read(dir().join("delta-child.hxz")).unwrap();
    let child = checked_child(&child_hxz, &parent_hxz, &child_src);
    let mut page = vec![0u8; child.page_bytes()];
    let entries: Vec<_> = child.blocks(0, child.virtual_size(), &mut page).unwrap().map(|b| b.unwrap().entry).collect();
    for filter in [FilterId::DeltaXor, FilterId::DeltaSub, FilterId::DeltaSubBits] {
        assert!(entries.iter().any(|e| e.filter == filter as u8), "no block with filter {filter}");
    }
    assert!(entries.iter().any(|e| e.location == 1), "no block kept in the parent");
}

/// Format 1.3's entropy-coded blocks: `ans-floats` (a safetensors file of
/// an F32 and a BF16 tensor, their blocks as `float-ans`) and `ans-delta-child`
/// (the delta vector's fine-tune, with weight decay on one more tensor,
/// stored with entropy coding against `delta-parent`, hint
/// "delta-parent.hxz": its dense small steps and the decay as `delta-ans`,
/// the decay's few differences through the dictionary).
#[test]
fn spec_entropy_vectors_decode_and_reproduce() {
    let opts = StoreOptions { entropy: true, ..options(Compression::zstd(3)) };
    let mut rng = Rng(41);
    let f32s = weights(&mut rng, 3000);
    let bf16: Vec<u8> = weights(&mut rng, 2500).chunks_exact(4).flat_map(|c| [c[2], c[3]]).collect();
    let src = write_safetensors(&[
        StTensor { name: "layer.weight".into(), dtype: "F32".into(), shape: vec![3000], data: f32s },
        StTensor { name: "layer.bf16".into(), dtype: "BF16".into(), shape: vec![2500], data: bf16 },
    ]);
    let built = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap().0;
    let stored = pin("ans-floats", &built, &src);
    let archive = Archive::open(stored.as_slice()).unwrap();
    assert_eq!(archive.header().incompat_features.get(), hexz_format::layout::features::ENTROPY);
    assert_eq!(archive.header().version_minor.get(), 3);
    assert_eq!(archive.read_vec(0, archive.virtual_size()).unwrap(), src);
    let entries = entries_of(&archive);
    for width in [2, 4] {
        assert!(
            entries.iter().any(|e| e.filter == FilterId::FloatAns as u8 && e.element_width == width),
            "no float-ans block of width {width}"
        );
    }

    let parent_hxz = std::fs::read(dir().join("delta-parent.hxz")).unwrap();
    let parent = Archive::open(parent_hxz.as_slice()).unwrap();
    // The delta vector's fine-tune, plus weight decay alone on `same.weight`
    // (every weight times 1 - 3e-5, IEEE-exact): few distinct differences,
    // which the dictionary names.
    let mut tensors = read_safetensors(&delta_child_source());
    for t in tensors.iter_mut().filter(|t| t.name == "same.weight") {
        t.data.chunks_exact_mut(4).for_each(|c| {
            let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) * (1.0 - 3e-5);
            c.copy_from_slice(&v.to_le_bytes());
        });
    }
    let child_src = write_safetensors(&tensors);
    let spec = ParentSpec { archive: &parent, hint: "delta-parent.hxz".into() };
    let built = store_vec(child_src.as_slice(), &opts, Some(spec)).unwrap().0;
    let stored = pin("ans-delta-child", &built, &child_src);
    let child = checked_child(&stored, &parent_hxz, &child_src);
    let ans: Vec<_> = entries_of(&child).into_iter().filter(|e| e.filter == FilterId::DeltaAns as u8).collect();
    assert!(!ans.is_empty(), "no delta-ans block");
    // The first stored byte of a delta-ans block counts its dictionary.
    assert!(ans.iter().any(|e| stored[e.stored_offset.get() as usize] > 0), "no delta-ans block with a dictionary");
}

/// `child` opened over `parent`: it must read back as `src` and verify.
fn checked_child<'a>(child: &'a [u8], parent: &'a [u8], src: &[u8]) -> Archive<&'a [u8]> {
    let child = Archive::open(child).unwrap().with_ancestors(vec![Archive::open(parent).unwrap()]).unwrap();
    assert_eq!(child.read_vec(0, child.virtual_size()).unwrap(), src);
    let mut report = hexz_format::verify::Report::default();
    hexz_format::verify::verify_open(&child, true, &mut report, &|_| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    child
}

/// Regenerate (with HEXZ_REGENERATE_VECTORS) or compare one vector: the
/// stored `.hxz` must be what the writer builds now, `.expected` the source.
fn pin(name: &str, built: &[u8], src: &[u8]) -> Vec<u8> {
    if std::env::var_os("HEXZ_REGENERATE_VECTORS").is_some() {
        std::fs::write(dir().join(format!("{name}.hxz")), built).unwrap();
        std::fs::write(dir().join(format!("{name}.expected")), src).unwrap();
    }
    let expected = std::fs::read(dir().join(format!("{name}.expected"))).unwrap();
    assert!(expected == src, "{name}: generator changed");
    let stored = std::fs::read(dir().join(format!("{name}.hxz"))).unwrap();
    assert!(stored == built, "{name}: the writer no longer reproduces the vector");
    stored
}

fn entries_of<R: hexz_format::ReadAt>(a: &Archive<R>) -> Vec<hexz_format::layout::BlockEntry> {
    let mut page = vec![0u8; a.page_bytes()];
    a.blocks(0, a.virtual_size(), &mut page).unwrap().map(|b| b.unwrap().entry).collect()
}

/// `tails-zstd`: byte-grouped blocks whose length is not a multiple of the
/// element width (3, 5 and 34), each encoded with byte grouping forced.
#[test]
fn spec_tail_vector_decodes_and_reproduces() {
    use hexz_format::layout::{FilterId, SourceFormat};
    use hexz_format::pipeline::{ArchiveWriter, BlockEncoder, EncodedJob, ParentIndex};
    use hexz_format::plan::{Plan, Segment};
    let mut rng = Rng(55);
    let mut src = Vec::new();
    let mut segments = Vec::new();
    for (width, len) in [(3u8, 1000usize), (5, 2003), (34, 34 * 30 + 17)] {
        let start = src.len() as u64;
        // Byte k of each element from a small alphabet of its own: grouping pays.
        for i in 0..len {
            src.push(((i % usize::from(width)) as u8).wrapping_mul(16).wrapping_add(rng.below(3) as u8));
        }
        segments.push(Segment {
            start,
            len: len as u64,
            width,
            fields: None,
            floats: false,
            tensor: None,
            content_defined: false,
        });
    }
    let plan = Plan { format: SourceFormat::Raw, header_length: 0, tensors: Vec::new(), segments, files: Vec::new() };
    let opts = options(Compression::zstd(3));
    let mut writer = ArchiveWriter::new(&opts, &plan, src.len() as u64, &Default::default());
    let mut built = writer.header_bytes().to_vec();
    let mut encoder = BlockEncoder::new(opts.compression).unwrap();
    let index = ParentIndex::default();
    for (i, seg) in plan.segments.iter().enumerate() {
        let data = &src[seg.start as usize..(seg.start + seg.len) as usize];
        let e = encoder.encode_as(data, &[], seg.width, FilterId::ByteGroup);
        assert_eq!(e.filter, FilterId::ByteGroup, "width {}: grouping did not pay", seg.width);
        let job = EncodedJob {
            index: i as u64,
            offset: seg.start,
            length: seg.len as u32,
            width: seg.width,
            tensor: None,
            hash: *blake3::hash(data).as_bytes(),
            codec: e.codec,
            filter: e.filter,
            param: 0,
            delta_base: 0,
            bytes: e.bytes.to_vec(),
        };
        if writer.add(&job, &index).unwrap() {
            built.extend_from_slice(&job.bytes);
        }
    }
    let sh = *blake3::hash(&src).as_bytes();
    built.extend_from_slice(&writer.finish(plan, &hexz_format::writer::StoreOptions::default(), None, sh).unwrap().0);
    let stored = pin("tails-zstd", &built, &src);
    let archive = Archive::open(stored.as_slice()).unwrap();
    assert_eq!(archive.read_vec(0, archive.virtual_size()).unwrap(), src);
    let tails = entries_of(&archive)
        .iter()
        .filter(|e| e.filter == FilterId::ByteGroup as u8 && e.virtual_length.get() % u32::from(e.element_width) != 0)
        .count();
    assert_eq!(tails, 3);
}

/// The chain of three: grandparent, parent (a full delta on `b`, sparse
/// BF16 changes with an odd element count on `c`), child (`d` changed).
fn chain_sources() -> [Vec<u8>; 3] {
    let mut rng = Rng(77);
    let a = weights(&mut rng, 1500);
    let b = weights(&mut rng, 1024);
    let c: Vec<u8> = (0..8003).flat_map(|_| (0x3c00u16 + rng.below(0x200) as u16).to_le_bytes()).collect();
    let d = weights(&mut rng, 1024);
    let grand = [("a", "F32", a.clone()), ("b", "F32", b.clone()), ("c", "BF16", c.clone()), ("d", "F32", d.clone())];
    let tensors = |list: &[(&str, &str, Vec<u8>)]| {
        let all: Vec<StTensor> = list
            .iter()
            .map(|(n, dt, data)| StTensor {
                name: n.to_string(),
                dtype: dt.to_string(),
                shape: vec![(data.len() / if *dt == "BF16" { 2 } else { 4 }) as u64],
                data: data.clone(),
            })
            .collect();
        write_safetensors(&all)
    };
    let mut b2 = b.clone();
    for e in b2.chunks_exact_mut(4) {
        let v = f32::from_le_bytes([e[0], e[1], e[2], e[3]]) * 1.0001;
        e.copy_from_slice(&v.to_le_bytes());
    }
    let mut c2 = c.clone();
    // A few weights move by one step, at random places (a periodic pattern
    // would compress away under any filter).
    for e in c2.chunks_exact_mut(2) {
        let step = match rng.below(64) {
            0 => 1u16,
            1 => u16::MAX,
            _ => 0,
        };
        e.copy_from_slice(&u16::from_le_bytes([e[0], e[1]]).wrapping_add(step).to_le_bytes());
    }
    let parent =
        [("a", "F32", a.clone()), ("b", "F32", b2.clone()), ("c", "BF16", c2.clone()), ("d", "F32", d.clone())];
    let mut d3 = d.clone();
    for e in d3.chunks_exact_mut(4) {
        let v = f32::from_le_bytes([e[0], e[1], e[2], e[3]]) * 0.9999;
        e.copy_from_slice(&v.to_le_bytes());
    }
    let child = [("a", "F32", a), ("b", "F32", b2), ("c", "BF16", c2), ("d", "F32", d3)];
    [tensors(&grand), tensors(&parent), tensors(&child)]
}

/// `chain-grandparent`, `chain-parent`, `chain-child` (lz4; hints `chain-grandparent.hxz`
/// and `chain-parent.hxz`): a block two ancestors up, a delta entry copied
/// from the parent, and bit planes with leftover elements.
#[test]
fn spec_chain_vectors_decode_and_reproduce() {
    // lz4: without an entropy stage, bit planes win on sparse changes.
    let opts = options(Compression::Lz4);
    let [g_src, p_src, c_src] = chain_sources();
    let g = store_vec::<_, &[u8]>(g_src.as_slice(), &opts, None).unwrap().0;
    let g_archive = Archive::open(g.as_slice()).unwrap();
    let spec = ParentSpec { archive: &g_archive, hint: "chain-grandparent.hxz".into() };
    let p = store_vec(p_src.as_slice(), &opts, Some(spec)).unwrap().0;
    let p_archive =
        Archive::open(p.as_slice()).unwrap().with_ancestors(vec![Archive::open(g.as_slice()).unwrap()]).unwrap();
    let spec = ParentSpec { archive: &p_archive, hint: "chain-parent.hxz".into() };
    let c = store_vec(c_src.as_slice(), &opts, Some(spec)).unwrap().0;
    let g = pin("chain-grandparent", &g, &g_src);
    let p = pin("chain-parent", &p, &p_src);
    let c = pin("chain-child", &c, &c_src);
    let child = Archive::open(c.as_slice())
        .unwrap()
        .with_ancestors(vec![Archive::open(p.as_slice()).unwrap(), Archive::open(g.as_slice()).unwrap()])
        .unwrap();
    assert_eq!(child.read_vec(0, child.virtual_size()).unwrap(), c_src);
    let mut report = hexz_format::verify::Report::default();
    hexz_format::verify::verify_open(&child, true, &mut report, &|_| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    let entries = entries_of(&child);
    assert!(entries.iter().any(|e| e.location == 2), "no block two ancestors up");
    assert!(
        entries.iter().any(|e| e.location == 1 && FilterId::from_u8(e.filter).is_some_and(|f| f.is_delta())),
        "no copied delta"
    );
    assert!(
        entries.iter().any(|e| e.location == 0 && FilterId::from_u8(e.filter).is_some_and(|f| f.is_delta())),
        "no delta of its own"
    );
    let parent = Archive::open(p.as_slice()).unwrap();
    let leftover = entries_of(&parent).iter().any(|e| {
        e.filter == FilterId::DeltaSubBits as u8 && (e.virtual_length.get() / u32::from(e.element_width)) % 8 != 0
    });
    assert!(leftover, "no bit-plane block with leftover elements in the parent");
}

/// `folder-zstd`: a folder archive (format 1.1) with a safetensors file, a
/// JSON file, a raw file cut by content, an empty directory and a script.
#[test]
fn spec_folder_vector_decodes_and_reproduces() {
    use hexz_format::layout::FileKind;
    use hexz_format::plan::{plan, FolderEntry, Plan};
    let mut rng = Rng(31);
    let raw: Vec<u8> =
        (0..9000).map(|i| if i % 7 == 0 { rng.below(256) as u8 } else { b'a' + (i % 26) as u8 }).collect();
    let files: Vec<(&str, FileKind, u32, Vec<u8>)> = vec![
        ("config.json", FileKind::File, 0o644, b"{\"hidden_size\": 16}\n".to_vec()),
        ("data/raw.bin", FileKind::File, 0o644, raw),
        ("empty", FileKind::Directory, 0o755, Vec::new()),
        ("model.safetensors", FileKind::File, 0o644, tiny_safetensors()),
        ("run.sh", FileKind::File, 0o755, b"#!/bin/sh\necho hexz\n".to_vec()),
    ];
    let mut src = Vec::new();
    let mut entries = Vec::new();
    for (path, kind, mode, bytes) in &files {
        let entry = FolderEntry {
            path: path.to_string(),
            kind: *kind,
            length: bytes.len() as u64,
            mode: *mode,
            mtime_ns: 1_700_000_000_000_000_000,
        };
        let file_plan = (*kind == FileKind::File).then(|| plan(bytes.as_slice(), false).unwrap());
        entries.push((entry, file_plan));
        src.extend_from_slice(bytes);
    }
    let plan = Plan::folder(entries).unwrap();
    let opts = StoreOptions { chunking: Chunking::ContentDefined, ..options(Compression::zstd(3)) };
    let mut built = Vec::new();
    hexz_format::writer::store_plan::<_, &[u8]>(
        src.as_slice(),
        plan,
        &mut |b| {
            built.extend_from_slice(b);
            Ok(())
        },
        &opts,
        None,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    let stored = pin("folder-zstd", &built, &src);
    let archive = Archive::open(stored.as_slice()).unwrap();
    assert_eq!(archive.header().version_minor.get(), 1);
    assert_eq!(archive.read_vec(0, archive.virtual_size()).unwrap(), src);
    let m = archive.manifest().unwrap();
    assert_eq!(m.files.len(), 5);
    assert_eq!(m.files[2].kind, FileKind::Directory);
    assert!(m.tensors.iter().all(|t| t.file == Some(3)));
    assert_eq!(archive.find_file("run.sh").unwrap(), 4);
    assert!(hexz_format::verify::verify(stored.as_slice(), true, &|_| {}).is_ok());
}

/// `gguf-fields-zstd` splits each quantized type into its fields
/// (format 1.2), and declares it.
#[test]
fn fields_vector_uses_the_fields_filter() {
    let hxz = std::fs::read(dir().join("gguf-fields-zstd.hxz")).unwrap();
    let archive = Archive::open(hxz.as_slice()).unwrap();
    assert_eq!(archive.header().version_minor.get(), 2);
    assert_eq!(archive.header().incompat_features.get(), hexz_format::layout::features::FIELDS);
    let mut types: Vec<(u32, u8)> = entries_of(&archive)
        .iter()
        .filter(|e| e.filter == FilterId::Fields as u8)
        .map(|e| (e.filter_param.get(), e.element_width))
        .collect();
    types.dedup();
    assert_eq!(types, [(8, 34), (12, 144), (14, 210)]);
}

/// `empty-folder`: a folder archive (1.1) of an empty folder: `FILES` set,
/// source format folder, no file records, no blocks, no pages. (Without
/// `FILES` no reader would open it: source format 3 needs the bit.)
#[test]
fn spec_empty_folder_vector_decodes_and_reproduces() {
    use hexz_format::layout::features::FILES;
    use hexz_format::plan::Plan;
    let plan = Plan::folder(Vec::new()).unwrap();
    let mut built = Vec::new();
    let report = hexz_format::writer::store_plan::<_, &[u8]>(
        &[][..],
        plan,
        &mut |b| {
            built.extend_from_slice(b);
            Ok(())
        },
        &options(Compression::zstd(3)),
        None,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    assert_eq!(built[..64], report.header, "the provisional header is the final one");
    let stored = pin("empty-folder", &built, &[]);
    let archive = Archive::open(stored.as_slice()).unwrap();
    assert_eq!(archive.header().incompat_features.get(), FILES);
    assert_eq!(archive.header().version_minor.get(), 1);
    assert_eq!((archive.virtual_size(), archive.block_count(), archive.file_count()), (0, 0, 0));
    assert_eq!(archive.manifest().unwrap().source_format, hexz_format::SourceFormat::Folder);
    let report = hexz_format::verify::verify(stored.as_slice(), true, &|_| {});
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// A child written for format 1.2 against a 1.3 parent copies none of the
/// parent's `ans` entries (a 1.2 reader could not decode them): it stores
/// those blocks again and declares no feature. A 1.3 child that copies
/// them declares `ENTROPY`, even with lz4 for its own blocks.
#[test]
fn children_declare_the_features_of_the_entries_they_copy() {
    use hexz_format::layout::features::ENTROPY;
    let parent_hxz = std::fs::read(dir().join("ans-floats.hxz")).unwrap();
    let src = std::fs::read(dir().join("ans-floats.expected")).unwrap();
    let parent = Archive::open(parent_hxz.as_slice()).unwrap();
    assert!(entries_of(&parent).iter().any(|e| e.codec == hexz_format::CodecId::Ans as u8));
    let spec = || ParentSpec { archive: &parent, hint: "ans-floats.hxz".into() };

    let v12 = StoreOptions { entropy: false, split_fields: true, ..options(Compression::zstd(3)) };
    let (child, report) = store_vec(src.as_slice(), &v12, Some(spec())).unwrap();
    let opened = checked_child(&child, &parent_hxz, &src);
    assert_eq!(opened.header().incompat_features.get(), 0);
    assert_eq!(opened.header().version_minor.get(), 0);
    assert!(entries_of(&opened).iter().all(|e| e.codec != hexz_format::CodecId::Ans as u8));
    assert!(report.parent_blocks > 0, "the header and plain blocks are still referenced: {report:?}");

    let lz4 = StoreOptions { entropy: true, ..options(Compression::Lz4) };
    let (child, report) = store_vec(src.as_slice(), &lz4, Some(spec())).unwrap();
    let opened = checked_child(&child, &parent_hxz, &src);
    assert!(report.parent_blocks > 0, "{report:?}");
    assert!(entries_of(&opened).iter().any(|e| e.codec == hexz_format::CodecId::Ans as u8 && e.location == 1));
    assert_eq!(opened.header().incompat_features.get(), ENTROPY);
    assert_eq!(opened.header().version_minor.get(), 3);
}

/// The header declares exactly the features the entries use: a GGUF with
/// quantized tensors stored with lz4 (which does not shrink their blocks:
/// stored raw) declares no `FIELDS`; the same with zstd does.
#[test]
fn archives_declare_exactly_the_features_their_entries_use() {
    use hexz_format::layout::features::FIELDS;
    let src = quantized_gguf();
    for (compression, want) in
        [(Compression::Lz4, None), (Compression::None, Some(0)), (Compression::zstd(3), Some(FIELDS))]
    {
        let opts = StoreOptions { split_fields: true, ..options(compression) };
        let (hxz, _) = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap();
        let archive = Archive::open(hxz.as_slice()).unwrap();
        let uses = entries_of(&archive).iter().any(|e| e.filter == FilterId::Fields as u8);
        let declared = archive.header().incompat_features.get();
        assert_eq!(declared == FIELDS, uses, "{compression:?}: declares {declared:#x}");
        if let Some(want) = want {
            assert_eq!(declared, want, "{compression:?}");
        }
        assert!(hexz_format::verify::verify(hxz.as_slice(), true, &|_| {}).is_ok());
    }
}

/// `signed-gguf-lz4` (section 15): the signature verifies with the test
/// key, the bytes up to the footer's end are `gguf-lz4`'s but for the
/// header, and it decodes to the same file. (hexz-io's signing test
/// reproduces it byte for byte.)
#[test]
fn spec_signed_vector_verifies() {
    use hexz_format::signature::PublicKey;
    let signed = std::fs::read(dir().join("signed-gguf-lz4.hxz")).unwrap();
    let unsigned = std::fs::read(dir().join("gguf-lz4.hxz")).unwrap();
    let expected = std::fs::read(dir().join("signed-gguf-lz4.expected")).unwrap();
    let a = Archive::open(signed.as_slice()).unwrap();
    assert_eq!(a.header().version_minor.get(), 4);
    assert_eq!(a.archive_end() as usize, unsigned.len());
    assert_eq!(&signed[64..unsigned.len()], &unsigned[64..]);
    assert_eq!(a.identity(), Archive::open(unsigned.as_slice()).unwrap().identity());
    let seed = [0x42u8; 32];
    let key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let trusted = PublicKey { key_id: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef], key };
    assert_eq!(a.check_signature(&[trusted]).unwrap(), 0);
    let records = a.signature_records().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].comment(), b"hexz test vector");
    assert_eq!(records[0].key_id().to_string(), "EFCDAB8967452301");
    assert_eq!(a.read_vec(0, a.virtual_size()).unwrap(), expected);
}

/// The test passphrase of `encrypted-passphrase` (section 16.12).
const TEST_PASSPHRASE: &[u8] = b"hexz test vector passphrase";
/// The test X25519 identity (secret) of `encrypted-x25519` (section 16.12).
const TEST_IDENTITY: [u8; 32] = [0x24; 32];

/// The encrypted vectors (section 16): `encrypted-passphrase` (the small
/// GGUF, codec none, one passphrase stanza with Argon2id at 256 KiB, t=1,
/// p=1) and `encrypted-x25519` (the repeating raw source, codec none, one
/// X25519 stanza for the test identity: its two equal blocks are one).
/// File key, manifest nonce, salt and ephemeral secret are fixed, so the
/// writer reproduces them byte for byte.
fn encrypted_vectors() -> [(&'static str, Vec<u8>, hexz_format::writer::Encryption); 2] {
    use hexz_format::crypt::{x25519_public, Argon2Cost, FileKey, KeySectionBuilder};
    let cheap = Argon2Cost { memory_kib: 256, time: 1, lanes: 1 };
    let mut pass = KeySectionBuilder::new(FileKey::from_bytes([0x11; 32]), [0x22; 12]);
    pass.add_passphrase(TEST_PASSPHRASE, [0x33; 16], cheap).unwrap();
    let mut x = KeySectionBuilder::new(FileKey::from_bytes([0x55; 32]), [0x66; 12]);
    x.add_x25519(&x25519_public(&TEST_IDENTITY), [0x77; 32]).unwrap();
    [
        ("encrypted-passphrase", tiny_gguf(), hexz_format::writer::Encryption::new(pass)),
        ("encrypted-x25519", raw_repeating(), hexz_format::writer::Encryption::new(x)),
    ]
}

#[test]
fn spec_encrypted_vectors_decode_and_reproduce() {
    use hexz_format::crypt::KeyRing;
    use hexz_format::{ErrorCode, OpenLimits};
    for (name, src, encryption) in encrypted_vectors() {
        let opts = StoreOptions { encryption: Some(encryption), ..options(Compression::None) };
        let built = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap().0;
        let stored = pin(name, &built, &src);
        let ring = if name == "encrypted-passphrase" {
            KeyRing { passphrases: vec![TEST_PASSPHRASE.to_vec()], identities: vec![] }
        } else {
            KeyRing { passphrases: vec![], identities: vec![TEST_IDENTITY] }
        };
        let limits = OpenLimits::default();
        let a = Archive::open_unlocked(stored.as_slice(), &limits, &ring).unwrap();
        assert_eq!(a.header().version_minor.get(), 5, "{name}");
        assert_eq!(
            a.header().incompat_features.get() & hexz_format::layout::features::ENCRYPTED,
            hexz_format::layout::features::ENCRYPTED
        );
        assert_eq!(a.read_vec(0, a.virtual_size()).unwrap(), src, "{name}");
        for e in entries_of(&a) {
            assert_eq!(e.codec, 0, "{name}: the oracle decodes codec none");
        }
        // Without a key: refused with KEY_REQUIRED; with another key: WRONG_KEY.
        let err = Archive::open(stored.as_slice()).map(|_| ()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyRequired, "{name}");
        let err = Archive::open_unlocked(stored.as_slice(), &limits, &KeyRing::default()).map(|_| ()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::KeyRequired, "{name}");
        let wrong = KeyRing { passphrases: vec![b"wrong".to_vec()], identities: vec![[0x25; 32]] };
        let err = Archive::open_unlocked(stored.as_slice(), &limits, &wrong).map(|_| ()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::WrongKey, "{name}");
        // Locked: the structure opens, the blocks do not.
        let locked = Archive::open_locked(stored.as_slice(), &limits).unwrap();
        assert_eq!(locked.virtual_size(), src.len() as u64, "{name}");
        assert!(locked.read_vec(0, locked.virtual_size()).is_err(), "{name}");
    }
}
