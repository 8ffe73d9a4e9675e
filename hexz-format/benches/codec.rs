//! Throughput of the per-block transforms on one 1 MiB block of float-like
//! data: byte grouping and its inverse, the delta filters, BLAKE3 and the
//! block encoder; and content-defined cutting (CDC) throughput.
//! `cargo bench -p hexz-format --bench codec`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hexz_format::codec::{
    bit_group, bit_ungroup, delta_apply, delta_encode, group, ungroup, BlockEncoder, Compression,
};
use hexz_format::FilterId;

const BLOCK: usize = 1 << 20;

/// FP32-like bytes: a deterministic walk over normal-ish values (no RNG crate needed).
fn floats(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let mut out = Vec::with_capacity(BLOCK);
    while out.len() < BLOCK {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let v = ((x >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.1;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn transforms(c: &mut Criterion) {
    let data = floats(1);
    let base = floats(2);
    let mut out = vec![0u8; BLOCK];
    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    for width in [2usize, 4, 144] {
        g.bench_with_input(BenchmarkId::new("group", width), &width, |b, &w| {
            b.iter(|| group(&data, w, &mut out).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("ungroup", width), &width, |b, &w| {
            b.iter(|| ungroup(&data, w, &mut out).unwrap())
        });
    }
    for width in [2usize, 4] {
        let mut scratch = vec![0u8; BLOCK];
        g.bench_with_input(BenchmarkId::new("bit_group", width), &width, |b, &w| {
            b.iter(|| bit_group(&data, w, &mut out, &mut scratch).unwrap())
        });
        g.bench_with_input(BenchmarkId::new("bit_ungroup", width), &width, |b, &w| {
            b.iter(|| bit_ungroup(&data, w, &mut out, &mut scratch).unwrap())
        });
    }
    for (name, filter) in [("xor", FilterId::DeltaXor), ("sub", FilterId::DeltaSub)] {
        g.bench_function(BenchmarkId::new("delta_encode", name), |b| {
            b.iter(|| delta_encode(filter, &data, &base, 4, &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("delta_apply", name), |b| {
            b.iter(|| {
                out.copy_from_slice(&data);
                delta_apply(filter, &mut out, &base, 4).unwrap()
            })
        });
    }
    g.bench_function("blake3", |b| b.iter(|| blake3::hash(&data)));
    g.finish();
}

fn encoder(c: &mut Criterion) {
    let data = floats(1);
    let base = floats(2);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(BLOCK as u64));
    g.sample_size(20);
    for (name, compression) in
        [("lz4", Compression::Lz4), ("zstd-default", Compression::DEFAULT), ("zstd-3", Compression::zstd(3))]
    {
        let mut enc = BlockEncoder::new(compression).unwrap();
        g.bench_function(BenchmarkId::new("plain", name), |b| b.iter(|| enc.encode(&data, 4).bytes.len()));
        g.bench_function(BenchmarkId::new("with_base", name), |b| {
            b.iter(|| enc.encode_with_base(&data, &base, 4).bytes.len())
        });
    }
    g.finish();
}

/// Content-defined cutting on its own: 16 MiB of text-like bytes cut into
/// blocks the way a raw file is (1 MiB blocks: 512 KiB on average).
fn chunking(c: &mut Criterion) {
    use hexz_format::plan::{CdcChunker, Chunker, Segment};
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = (0..16 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x.is_multiple_of(7) {
                b' '
            } else {
                b'a' + (x % 26) as u8
            }
        })
        .collect();
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("cdc-1MiB", |b| {
        b.iter(|| {
            let mut chunker = CdcChunker::new(1 << 20);
            let seg = Segment {
                start: 0,
                len: data.len() as u64,
                width: 1,
                fields: None,
                tensor: None,
                content_defined: true,
            };
            let (mut at, mut blocks) = (0usize, 0usize);
            while at < data.len() {
                let window = &data[at..(at + chunker.max_block()).min(data.len())];
                at += chunker.cut(&seg, window);
                blocks += 1;
            }
            blocks
        })
    });
    g.finish();
}

criterion_group!(benches, transforms, encoder, chunking);
criterion_main!(benches);
