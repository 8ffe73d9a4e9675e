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
}

fn raw_repeating() -> Vec<u8> {
    let mut rng = Rng(99);
    let chunk: Vec<u8> = (0..4096).map(|_| rng.below(16) as u8).collect();
    [chunk.clone(), chunk.clone(), b"end of file\n".to_vec()].concat()
}

const VECTORS: &[Vector] = &[
    Vector { name: "safetensors-zstd", source: tiny_safetensors, compression: Compression::zstd(3) },
    Vector { name: "gguf-lz4", source: tiny_gguf, compression: Compression::Lz4 },
    Vector { name: "gguf-none", source: tiny_gguf, compression: Compression::None },
    Vector { name: "raw-dedup-zstd", source: raw_repeating, compression: Compression::zstd(3) },
    Vector { name: "empty-none", source: Vec::new, compression: Compression::None },
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
        let built = store_vec::<_, &[u8]>(source.as_slice(), &options(v.compression), None).unwrap().0;
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
    let child = Archive::open(child_hxz.as_slice())
        .unwrap()
        .with_ancestors(vec![Archive::open(parent_hxz.as_slice()).unwrap()])
        .unwrap();
    assert_eq!(child.read_vec(0, child.virtual_size()).unwrap(), child_src);
    let mut report = hexz_format::verify::Report::default();
    hexz_format::verify::verify_open(&child, true, &mut report, &|_| {});
    assert!(report.is_ok(), "{:?}", report.problems);
    let mut page = vec![0u8; child.page_bytes()];
    let entries: Vec<_> = child.blocks(0, child.virtual_size(), &mut page).unwrap().map(|b| b.unwrap().entry).collect();
    for filter in [FilterId::DeltaXor, FilterId::DeltaSub, FilterId::DeltaSubBits] {
        assert!(entries.iter().any(|e| e.filter == filter as u8), "no block with filter {filter}");
    }
    assert!(entries.iter().any(|e| e.location == 1), "no block kept in the parent");
}
