//! Few reads per operation (issue #21), counted on the real models through
//! a source that counts reads: open ≤ 4 (tensor table and, for GGUF, the
//! whole header built, as the C ABI does at open), name lookups and tensor
//! info 0, one whole tensor ≤ 4, a 4 KiB range ≤ 3.

mod common;

use std::sync::Arc;

use common::*;
use hexz_format::writer::StoreOptions;
use hexz_format::SourceFormat;
use hexz_io::{Location, OpenOptions, Reader};

/// The real model `name`, stored with the defaults and opened through a
/// counting source.
fn open_counted(name: &str) -> (Vec<u8>, Arc<Counting>, Reader) {
    let src = real_model(name);
    let counting = Counting::new(store_bytes(&src, &StoreOptions::default()));
    let reader =
        Reader::open_source(Location::Label(name.into()), as_source(&counting), &OpenOptions::default()).unwrap();
    (src, counting, reader)
}

fn check(name: &str) {
    let (src, counting, reader) = open_counted(name);
    let header = reader.source_header().unwrap();
    if reader.source_format() == SourceFormat::Gguf {
        hexz_format::gguf::parse(&header, reader.size()).unwrap();
    }
    let (open_reads, open_bytes) = counting.take();
    eprintln!("{name}: open {open_reads} reads ({open_bytes} bytes)");
    assert!(open_reads <= 4, "{name}: open took {open_reads} reads");

    // Lookups and tensor info: nothing read.
    let largest = reader.tensors().iter().max_by_key(|t| t.length).unwrap().clone();
    for t in reader.tensors() {
        let (i, info) = reader.tensor(&t.name).unwrap();
        assert_eq!(info.offset, t.offset);
        assert_eq!(reader.archive().find_tensor(&t.name).unwrap() as usize, i);
        let _ = reader.archive().tensor_info(i as u32).unwrap();
    }
    assert_eq!(counting.take().0, 0, "{name}: lookups read the archive");

    let (index, _) = reader.tensor(&largest.name).unwrap();
    let mut buf = vec![0u8; largest.length as usize];
    reader.read_tensor(index, &mut buf).unwrap();
    assert!(buf == src[largest.offset as usize..(largest.offset + largest.length) as usize]);
    let (tensor_reads, tensor_bytes) = counting.take();
    eprintln!(
        "{name}: largest tensor {} ({} bytes): {tensor_reads} reads ({tensor_bytes} bytes)",
        largest.name, largest.length
    );
    assert!(tensor_reads <= 4, "{name}: one tensor took {tensor_reads} reads");

    for at in [0, src.len() as u64 / 3, src.len() as u64 / 2, src.len() as u64 - 4096] {
        let mut small = [0u8; 4096];
        reader.read_at(at, &mut small).unwrap();
        assert!(small[..] == src[at as usize..at as usize + 4096]);
        let (range_reads, range_bytes) = counting.take();
        eprintln!("{name}: 4 KiB at {at}: {range_reads} reads ({range_bytes} bytes)");
        assert!(range_reads <= 3, "{name}: a 4 KiB range took {range_reads} reads");
    }
}

/// `block_span` tiles the file with the index's blocks, at most one read
/// (the index page) a call, and refuses the end of the file.
fn check_block_spans(name: &str) {
    let (_, counting, reader) = open_counted(name);
    counting.take();
    let (mut at, mut blocks) = (0u64, 0u64);
    while at < reader.size() {
        let (start, length) = reader.block_span(at).unwrap();
        assert!(start == at && length > 0, "{name}: block at {at} is {start}+{length}");
        // Any byte inside gives the same block.
        assert_eq!(reader.block_span(start + length / 2).unwrap(), (start, length));
        assert_eq!(reader.block_span(start + length - 1).unwrap(), (start, length));
        at = start + length;
        blocks += 1;
    }
    assert_eq!(blocks, reader.archive().block_count(), "{name}: spans and index disagree");
    let (reads, _) = counting.take();
    assert!(reads <= blocks * 3, "{name}: {reads} reads for {blocks} block spans");
    assert!(reader.block_span(reader.size()).is_err());
}

#[test]
fn block_spans_tile_the_file() {
    check_block_spans("gemma.gguf");
    check_block_spans("minilm.safetensors");
}

#[test]
fn gemma_reads_are_few() {
    check("gemma.gguf");
}

#[test]
fn minilm_reads_are_few() {
    check("minilm.safetensors");
}
