//! Round trips on generated fixtures: whole file, every tensor, random ranges.

mod common;

use common::*;
use hexz_format::writer::{store_vec, Chunking, ParentSpec, StoreOptions};
use hexz_format::{Archive, Compression};
use hexz_format::{SourceFormat, StorageKind};
use proptest::prelude::*;

const CODECS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::zstd(3)];

fn check_round_trip(src: &[u8], block_size: u32) {
    for codec in CODECS {
        let hxz = store_bytes(src, codec, block_size);
        let archive = Archive::open(hxz.as_slice()).expect("open");
        assert_eq!(archive.virtual_size(), src.len() as u64);
        assert_eq!(archive.read_vec(0, src.len() as u64).unwrap(), src, "{codec:?}");
        assert_eq!(archive.source_hash(), *blake3::hash(src).as_bytes());
        let manifest = archive.manifest().unwrap();
        for t in &manifest.tensors {
            let want = &src[t.offset as usize..(t.offset + t.length) as usize];
            assert_eq!(archive.tensor_bytes(&t.name).unwrap(), want, "tensor {}", t.name);
        }
        let report = hexz_format::verify::verify(hxz.as_slice(), true, &|_| {});
        assert!(report.is_ok(), "{:?}", report.problems);
    }
}

#[test]
fn safetensors_fixture_round_trips() {
    let src = tiny_safetensors();
    check_round_trip(&src, 4096);
    let hxz = store_bytes(&src, Compression::zstd(3), 4096);
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let m = archive.manifest().unwrap();
    assert_eq!(m.source_format, SourceFormat::Safetensors);
    let names: Vec<_> = m.tensors.iter().map(|t| t.name.as_str()).collect();
    // In data-offset order, as the file lays them out.
    assert_eq!(names, ["layer.weight", "layer.half", "ids", "empty"]);
    let empty = m.tensors.iter().find(|t| t.name == "empty").unwrap();
    assert_eq!((empty.length, empty.storage_kind), (0, StorageKind::Empty));
    let half = m.tensors.iter().find(|t| t.name == "layer.half").unwrap();
    assert_eq!((half.dtype.as_str(), half.shape.as_slice()), ("F16", &[64u64, 8][..]));
}

#[test]
fn gguf_fixture_round_trips_and_deduplicates() {
    let src = tiny_gguf();
    check_round_trip(&src, 4096);
    let hxz = store_bytes(&src, Compression::Lz4, 4096);
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let m = archive.manifest().unwrap();
    assert_eq!(m.source_format, SourceFormat::Gguf);
    let q8 = m.tensors.iter().find(|t| t.name == "blk.0.q8").unwrap();
    assert_eq!((q8.dtype.as_str(), q8.ggml_type, q8.length), ("Q8_0", Some(8), 272));
    // blk.1.weight holds the same bytes as blk.0.weight: stored once.
    let dup = m.tensors.iter().find(|t| t.name == "blk.1.weight").unwrap();
    assert_eq!(dup.storage_kind, StorageKind::Deduplicated);
    let (bytes, header) = archive.gguf_header().unwrap();
    assert_eq!(header.kvs.len(), 15);
    let tokens = header.kvs.iter().find(|kv| kv.key == "tokenizer.tokens").unwrap();
    match &tokens.value {
        hexz_format::gguf::GgufValue::Array(a) => {
            assert_eq!(a.len, 2);
            let tokens: Vec<&[u8]> = a.strings(&bytes).collect();
            assert_eq!(tokens, ["hello".as_bytes(), "wörld".as_bytes()]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn raw_files_use_fixed_blocks_and_dedup() {
    let mut src = Vec::new();
    let mut rng = Rng(3);
    let chunk: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    for _ in 0..5 {
        src.extend_from_slice(&chunk);
    }
    src.extend_from_slice(b"tail");
    check_round_trip(&src, 4096);
    let opts = StoreOptions {
        compression: Compression::zstd(3),
        block_size: 4096,
        chunking: Chunking::Fixed,
        ..StoreOptions::default()
    };
    let hxz = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap().0;
    let archive = Archive::open(hxz.as_slice()).unwrap();
    assert_eq!(archive.manifest().unwrap().source_format, SourceFormat::Raw);
    assert_eq!(archive.block_count(), 6);
    // Five identical 4 KiB blocks are stored once: the archive is far smaller than the input.
    assert!(hxz.len() < 2 * 4096 + 2048, "archive is {} bytes", hxz.len());
}

/// Content-defined blocks: an insertion near the start of a raw file moves
/// only the blocks around it, so a store against the original references
/// almost everything.
#[test]
fn content_defined_blocks_survive_an_insertion() {
    let mut rng = Rng(8);
    let words: Vec<Vec<u8>> =
        (0..500).map(|_| (0..1 + rng.below(8)).map(|_| b'a' + rng.below(26) as u8).collect()).collect();
    let mut original = Vec::new();
    while original.len() < 3 << 20 {
        original.extend_from_slice(&words[rng.below(500) as usize]);
        original.push(if rng.below(10) == 0 { b'\n' } else { b' ' });
    }
    let mut edited = original[..5000].to_vec();
    edited
        .extend_from_slice(b"a hundred bytes inserted here, then the rest of the file follows as it was before......!");
    edited.extend_from_slice(&original[5000..]);
    for (chunking, most) in [(Chunking::ContentDefined, 0.05), (Chunking::Fixed, 2.0)] {
        let opts = StoreOptions { chunking, block_size: 256 << 10, ..StoreOptions::default() };
        let (base, _) = store_vec::<_, &[u8]>(original.as_slice(), &opts, None).unwrap();
        let parent = Archive::open(base.as_slice()).unwrap();
        let spec = ParentSpec { archive: &parent, hint: "o.hxz".into() };
        let (child, report) = store_vec(edited.as_slice(), &opts, Some(spec)).unwrap();
        let share = child.len() as f64 / edited.len() as f64;
        assert!(share < most, "{chunking:?}: the child is {share:.3} of the file ({report:?})");
        if chunking == Chunking::ContentDefined {
            assert!(report.parent_blocks >= report.blocks - 3, "{report:?}");
        }
        let opened = Archive::open(child.as_slice()).unwrap().with_ancestors(vec![parent]).unwrap();
        assert!(opened.read_vec(0, edited.len() as u64).unwrap() == edited);
    }
}

#[test]
fn empty_file_round_trips() {
    check_round_trip(&[], 4096);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_ranges_equal_source_slices(start in 0usize..30_000, len in 0usize..20_000, codec in 0usize..3) {
        let src = tiny_safetensors();
        let hxz = store_bytes(&src, CODECS[codec], 4096);
        let archive = Archive::open(hxz.as_slice()).unwrap();
        let start = start.min(src.len());
        let len = len.min(src.len() - start);
        let mut out = vec![0u8; len];
        archive.read_at(start as u64, &mut out, &mut archive.new_scratch().unwrap()).unwrap();
        prop_assert_eq!(&out[..], &src[start..start + len]);
    }

    #[test]
    fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), block in 4096u32..9000) {
        for codec in CODECS {
            let hxz = store_bytes(&data, codec, block);
            let archive = Archive::open(hxz.as_slice()).unwrap();
            prop_assert_eq!(archive.read_vec(0, data.len() as u64).unwrap(), data.clone());
        }
    }
}

#[test]
fn reads_outside_the_virtual_space_are_errors() {
    let src = tiny_gguf();
    let hxz = store_bytes(&src, Compression::Lz4, 4096);
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let mut scratch = archive.new_scratch().unwrap();
    let mut out = [0u8; 8];
    assert!(archive.read_at(src.len() as u64 - 4, &mut out, &mut scratch).is_err());
    assert!(archive.read_at(u64::MAX - 2, &mut out, &mut scratch).is_err());
    let mut small = vec![0u8; archive.scratch_size() - 1];
    assert!(archive.read_at(0, &mut out, &mut small).is_err());
    assert!(matches!(archive.tensor_bytes("nope"), Err(hexz_format::Error::NotFound { .. })));
}

/// Regression (fuzz roundtrip crash-f9944b8f): raw bytes whose ninth byte is
/// `{` are not a safetensors file and store as a raw file.
#[test]
fn raw_bytes_with_a_brace_at_offset_8_store_raw() {
    let mut src = vec![0xB8u8, 0x9D, 0x7A, 0x1F, 0x33, 0x40, 0x07, 0x6D, b'{', 0x01, 0xFE];
    src.extend((0..5000u32).map(|i| (i * 7) as u8));
    check_round_trip(&src, 4096);
    let hxz = store_bytes(&src, Compression::Lz4, 4096);
    assert_eq!(Archive::open(hxz.as_slice()).unwrap().manifest().unwrap().source_format, SourceFormat::Raw);
}
