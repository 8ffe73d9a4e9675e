//! The spec's test vectors (`spec/vectors/`): each `.hxz` must decode to its
//! `.expected` bytes, and storing `.expected` with the vector's settings must
//! reproduce the `.hxz` byte for byte (the writer is deterministic).
//! `HEXZ_REGENERATE_VECTORS=1 cargo test --test vectors` rewrites them.

mod common;

use std::path::PathBuf;

use common::*;
use hexz_format::writer::{store, StoreOptions};
use hexz_format::{Archive, Compression};

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

/// Settings all vectors use: small blocks and pages so that several pages exist.
fn options(compression: Compression) -> StoreOptions {
    StoreOptions { compression, block_size: 4096, entries_per_page: 2, threads: 2, ..StoreOptions::default() }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../spec/vectors")
}

#[test]
fn spec_vectors_decode_and_reproduce() {
    let regenerate = std::env::var_os("HEXZ_REGENERATE_VECTORS").is_some();
    for v in VECTORS {
        let source = (v.source)();
        let mut built = Vec::new();
        store(source.as_slice(), &mut built, &options(v.compression), &|_| {}).unwrap();
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
