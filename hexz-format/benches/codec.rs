//! Throughput of the per-block transforms on one 1 MiB block of float-like
//! data: byte grouping and its inverse, the delta filters, BLAKE3 and the
//! block encoder; content-defined cutting (CDC); and, per quantized GGML
//! type, whole-block decode (codec, filter, hash) of a GGUF tensor stored
//! with the `fields` filter against byte grouping; entropy-coded blocks
//! (`float-ans`, `delta-ans`) on real MiniLM blocks.
//! `cargo bench -p hexz-format --bench codec`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hexz_format::filter::{
    bit_group, bit_ungroup, delta_apply, delta_encode, group, join_fields, split_fields, ungroup,
};
use hexz_format::pipeline::BlockEncoder;
use hexz_format::Compression;
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
    for (name, fields) in
        [("Q8_0", &[1u8, 1, 32][..]), ("Q4_K", &[1, 1, 1, 1, 12, 128]), ("Q6_K", &[128, 64, 16, 1, 1])]
    {
        g.bench_function(BenchmarkId::new("split_fields", name), |b| {
            b.iter(|| split_fields(&data, fields, &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("join_fields", name), |b| {
            b.iter(|| join_fields(&data, fields, &mut out).unwrap())
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
    use hexz_format::pipeline::{CdcChunker, Chunker};
    use hexz_format::plan::Segment;
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
            let seg = Segment::unstructured(0, data.len() as u64, true);
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

/// Quantized blocks as real ones look: half-float scales of one magnitude
/// at `scales`, quants bunched around zero elsewhere.
fn quantized(width: usize, scales: &[usize], bytes: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9u32;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let mut out = Vec::with_capacity(bytes);
    while out.len() + width <= bytes {
        let mut block: Vec<u8> =
            (0..width).map(|_| (0..4).map(|_| (next() % 32) as u8).sum::<u8>().wrapping_sub(62)).collect();
        for &at in scales {
            block[at..at + 2].copy_from_slice(&(0x2000u16 + (next() % 0x400) as u16).to_le_bytes());
        }
        out.extend_from_slice(&block);
    }
    out
}

/// A GGUF v3 file holding one tensor of GGML type `ty`.
fn one_tensor_gguf(ty: u32, elements: u64, data: &[u8]) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes()); // tensors
    h.extend_from_slice(&0u64.to_le_bytes()); // key/values
    h.extend_from_slice(&1u64.to_le_bytes());
    h.push(b't');
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&elements.to_le_bytes());
    h.extend_from_slice(&ty.to_le_bytes());
    h.extend_from_slice(&0u64.to_le_bytes());
    h.resize(h.len().next_multiple_of(32), 0);
    h.extend_from_slice(data);
    h
}

/// Decode throughput per GGML type: 8 MiB of the type stored (zstd
/// default levels) with `fields` and with byte grouping, read back whole.
fn ggml_decode(c: &mut Criterion) {
    use hexz_format::dtype::{ggml_type, GGML_TYPES};
    use hexz_format::writer::{store_vec, StoreOptions};
    use hexz_format::Archive;
    let scales_of = |id: u32| -> &'static [usize] {
        match id {
            8 | 2 | 6 | 20 => &[0],
            3 | 7 | 12 | 13 | 23 => &[0, 2],
            10 => &[80, 82],
            11 => &[108],
            14 => &[208],
            _ => &[],
        }
    };
    let mut g = c.benchmark_group("decode_ggml");
    g.sample_size(10);
    for t in GGML_TYPES.iter().filter(|t| hexz_format::dtype::ggml_fields(t.id).is_some()) {
        let width = t.block_bytes as usize;
        let data = quantized(width, scales_of(t.id), 8 << 20);
        let elements = (data.len() / width) as u64 * u64::from(ggml_type(t.id).unwrap().block_elements);
        let src = one_tensor_gguf(t.id, elements, &data);
        g.throughput(Throughput::Bytes(src.len() as u64));
        for (filter, split_fields) in [("fields", true), ("byte-group", false)] {
            let opts = StoreOptions { split_fields, threads: 1, ..StoreOptions::default() };
            let hxz = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap().0;
            let archive = Archive::open(hxz.as_slice()).unwrap();
            let mut out = vec![0u8; src.len()];
            let mut scratch = archive.new_scratch().unwrap();
            archive.read_at(0, &mut out, &mut scratch).unwrap();
            assert!(out == src, "{} {filter}: decoded bytes differ", t.name);
            g.bench_function(BenchmarkId::new(filter, t.name), |b| {
                b.iter(|| archive.read_at(0, &mut out, &mut scratch).unwrap())
            });
        }
    }
    g.finish();
}

/// One 1 MiB block of tensor `name` from a model in the model cache
/// (`scripts/fetch-models.sh`, `bench/make_finetunes.py`), if there.
fn real_block(file: &str, name: &str, skip_blocks: usize) -> Option<Vec<u8>> {
    let dir = std::env::var_os("HEXZ_MODELS")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/hexz-models")))?;
    let bytes = std::fs::read(dir.join(file)).ok()?;
    let header = hexz_format::safetensors::parse(&bytes, bytes.len() as u64).ok()?;
    let t = header.tensors.iter().find(|t| t.name == name)?;
    let start = (t.offset as usize).checked_add(skip_blocks * BLOCK)?;
    bytes.get(start..start + BLOCK.min(t.length as usize)).map(<[u8]>::to_vec)
}

/// Entropy-coded blocks (codec `ans`): decode and encode throughput of
/// `float-ans` on real MiniLM weights (FP32 and its BF16 cast) and of
/// `delta-ans` on a real AdamW fine-tune against its base (a dense layer
/// and the word embeddings). Generated floats stand in when the models
/// are not cached (the figures are then not the real ones).
fn entropy(c: &mut Criterion) {
    use hexz_format::entropy::{decode_delta, decode_float, EntropyEncoder};
    let f32_block = real_block("minilm.safetensors", "embeddings.word_embeddings.weight", 3).unwrap_or_else(|| {
        eprintln!("entropy bench: models not cached, using generated floats");
        floats(3)
    });
    let bf16_block: Vec<u8> = f32_block.chunks_exact(4).flat_map(|c| [c[2], c[3]]).collect();
    let pair = |name: &str| {
        Some((real_block("minilm.safetensors", name, 0)?, real_block("minilm-adamw-fp32.safetensors", name, 0)?))
    };
    let dense = pair("encoder.layer.2.intermediate.dense.weight").unwrap_or_else(|| (floats(4), floats(5)));
    let embed = pair("embeddings.word_embeddings.weight").unwrap_or_else(|| (floats(6), floats(7)));
    let mut enc = EntropyEncoder::default();
    let mut g = c.benchmark_group("entropy");
    g.sample_size(20);
    for (name, data, width) in [("f32", &f32_block, 4usize), ("bf16", &bf16_block, 2)] {
        let mut stored = Vec::new();
        enc.encode_float(data, width, &mut stored).unwrap();
        eprintln!("float-ans {name}: {:.4} of the block", stored.len() as f64 / data.len() as f64);
        let (mut out, mut scratch) = (vec![0u8; data.len()], vec![0u8; data.len()]);
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(BenchmarkId::new("decode_float", name), |b| {
            b.iter(|| decode_float(&stored, width, &mut out, &mut scratch).unwrap())
        });
        assert!(&out == data);
        g.bench_function(BenchmarkId::new("encode_float", name), |b| {
            b.iter(|| enc.encode_float(data, width, &mut stored).unwrap())
        });
    }
    for (name, (base, fine)) in [("dense", &dense), ("embeddings", &embed)] {
        let mut stored = Vec::new();
        enc.encode_delta(fine, base, 4, &mut stored).unwrap();
        eprintln!("delta-ans {name}: {:.4} of the block", stored.len() as f64 / fine.len() as f64);
        let (mut out, mut scratch) = (vec![0u8; fine.len()], vec![0u8; fine.len()]);
        g.throughput(Throughput::Bytes(fine.len() as u64));
        g.bench_function(BenchmarkId::new("decode_delta", name), |b| {
            b.iter(|| decode_delta(&stored, 4, &mut out, base, &mut scratch).unwrap())
        });
        assert!(&out == fine);
        g.bench_function(BenchmarkId::new("encode_delta", name), |b| {
            b.iter(|| enc.encode_delta(fine, base, 4, &mut stored).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, transforms, encoder, chunking, ggml_decode, entropy);
criterion_main!(benches);
