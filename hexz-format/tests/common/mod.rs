//! Shared helpers: real-model paths, small generated fixtures, a seeded RNG.
#![allow(dead_code)]

use std::path::PathBuf;

use hexz_format::writer::{store_vec, StoreOptions};
use hexz_format::Compression;
use sha2::{Digest, Sha256};

/// Folder of the real models fetched by `scripts/fetch-models.sh`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("HEXZ_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hexz-models"))
}

/// A real model file; fails the test (never skips) when it was not fetched.
pub fn real_model(name: &str) -> Vec<u8> {
    let path = models_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run scripts/fetch-models.sh first (the README's test command does)", path.display())
    })
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Store bytes into an in-memory archive.
pub fn store_bytes(src: &[u8], compression: Compression, block_size: u32) -> Vec<u8> {
    let opts = StoreOptions { compression, block_size, ..StoreOptions::default() };
    store_vec::<_, &[u8]>(src, &opts, None).expect("store").0
}

/// xorshift64*: deterministic randomness without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Float-like bytes: small normal values, so grouping and compression have
/// realistic structure.
pub fn weights(rng: &mut Rng, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 4);
    for _ in 0..count {
        let v = ((rng.below(2000) as f32) - 1000.0) / 30000.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// A small safetensors file: F32, F16, I64 and a zero-length tensor, with metadata.
pub fn tiny_safetensors() -> Vec<u8> {
    let mut rng = Rng(7);
    let a = weights(&mut rng, 3000); // F32 [3000]
    let b: Vec<u8> = (0..2 * 64 * 8).map(|i| (i * 7 % 251) as u8).collect(); // F16 [64, 8]
    let c: Vec<u8> = (0..16u64).flat_map(|i| i.to_le_bytes()).collect(); // I64 [16]
    let a_end = a.len();
    let b_end = a_end + b.len();
    let c_end = b_end + c.len();
    let header = format!(
        concat!(
            "{{\"__metadata__\":{{\"format\":\"pt\"}},",
            "\"layer.weight\":{{\"dtype\":\"F32\",\"shape\":[3000],\"data_offsets\":[0,{}]}},",
            "\"layer.half\":{{\"dtype\":\"F16\",\"shape\":[64,8],\"data_offsets\":[{},{}]}},",
            "\"ids\":{{\"dtype\":\"I64\",\"shape\":[16],\"data_offsets\":[{},{}]}},",
            "\"empty\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[{},{}]}}}}"
        ),
        a_end, a_end, b_end, b_end, c_end, c_end, c_end
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out.extend_from_slice(&c);
    out
}

fn gguf_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A small GGUF v3 file: key/values of every type (arrays of scalars and of
/// strings included), an F32 tensor, a Q8_0 tensor and a duplicated tensor
/// (for dedup), with alignment padding.
pub fn tiny_gguf() -> Vec<u8> {
    let mut rng = Rng(11);
    let f32_data = weights(&mut rng, 256);
    let q8: Vec<u8> = (0..34 * 8).map(|i| (i * 13 % 256) as u8).collect(); // Q8_0 [256]
    let tensors: Vec<(&str, Vec<u64>, u32, &[u8])> = vec![
        ("blk.0.weight", vec![256], 0, &f32_data),
        ("blk.0.q8", vec![256], 8, &q8),
        ("blk.1.weight", vec![16, 16], 0, &f32_data),
    ];
    gguf_file(&tensors)
}

/// A GGUF v3 file with a fixed set of keys and `tensors` (name, dims, GGML
/// type, data), aligned to 64.
#[allow(clippy::type_complexity)]
pub fn gguf_file(tensors: &[(&str, Vec<u64>, u32, &[u8])]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(b"GGUF");
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    let kv_count_at = h.len();
    h.extend_from_slice(&0u64.to_le_bytes());
    let mut kvs = 0u64;
    let mut kv = |h: &mut Vec<u8>, key: &str, ty: u32, value: &[u8]| {
        gguf_string(h, key);
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(value);
        kvs += 1;
    };
    kv(&mut h, "general.architecture", 8, &[&5u64.to_le_bytes()[..], b"llama"].concat());
    kv(&mut h, "t.u8", 0, &[200]);
    kv(&mut h, "t.i8", 1, &[0x80]);
    kv(&mut h, "t.u16", 2, &60000u16.to_le_bytes());
    kv(&mut h, "t.i16", 3, &(-300i16).to_le_bytes());
    kv(&mut h, "t.u32", 4, &4_000_000_000u32.to_le_bytes());
    kv(&mut h, "t.i32", 5, &(-70000i32).to_le_bytes());
    kv(&mut h, "t.f32", 6, &1.5f32.to_le_bytes());
    kv(&mut h, "t.bool", 7, &[1]);
    kv(&mut h, "t.u64", 10, &u64::MAX.to_le_bytes());
    kv(&mut h, "t.i64", 11, &i64::MIN.to_le_bytes());
    kv(&mut h, "t.f64", 12, &(-2.25f64).to_le_bytes());
    let mut arr = Vec::new();
    arr.extend_from_slice(&5u32.to_le_bytes());
    arr.extend_from_slice(&3u64.to_le_bytes());
    for v in [1i32, -2, 3] {
        arr.extend_from_slice(&v.to_le_bytes());
    }
    kv(&mut h, "t.arr_i32", 9, &arr);
    let mut sarr = Vec::new();
    sarr.extend_from_slice(&8u32.to_le_bytes());
    sarr.extend_from_slice(&2u64.to_le_bytes());
    gguf_string(&mut sarr, "hello");
    gguf_string(&mut sarr, "wörld");
    kv(&mut h, "tokenizer.tokens", 9, &sarr);
    kv(&mut h, "general.alignment", 4, &64u32.to_le_bytes());
    h[kv_count_at..kv_count_at + 8].copy_from_slice(&kvs.to_le_bytes());
    let mut offset = 0u64;
    let mut offsets = Vec::new();
    for (name, dims, ty, data) in tensors {
        gguf_string(&mut h, name);
        h.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        offsets.push(offset);
        offset = (offset + data.len() as u64).next_multiple_of(64);
    }
    while h.len() % 64 != 0 {
        h.push(0);
    }
    let data_start = h.len();
    for ((_, _, _, data), off) in tensors.iter().zip(&offsets) {
        h.resize(data_start + *off as usize, 0);
        h.extend_from_slice(data);
    }
    h
}

/// A standard normal sample (Box-Muller).
pub fn normal(rng: &mut Rng) -> f64 {
    let u1 = ((rng.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// One tensor of a safetensors file being built.
#[derive(Clone)]
pub struct StTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

/// Read every tensor of a safetensors file.
pub fn read_safetensors(file: &[u8]) -> Vec<StTensor> {
    let header = hexz_format::safetensors::parse(file, file.len() as u64).expect("safetensors");
    header
        .tensors
        .into_iter()
        .map(|t| StTensor {
            data: file[t.offset as usize..(t.offset + t.length) as usize].to_vec(),
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
        })
        .collect()
}

/// Write a safetensors file (tensors laid out in the given order).
pub fn write_safetensors(tensors: &[StTensor]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    for t in tensors {
        entries.push(format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
            t.name,
            t.dtype,
            t.shape,
            offset,
            offset + t.data.len()
        ));
        offset += t.data.len();
    }
    let mut header = format!("{{{}}}", entries.join(",")).into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// A training step's worth of change: every element x becomes x + x·ε with
/// ε ~ N(0, sigma), rounded back to the dtype (F32 or BF16).
pub fn perturb(t: &mut StTensor, rng: &mut Rng, sigma: f64) {
    match t.dtype.as_str() {
        "F32" => {
            for c in t.data.chunks_exact_mut(4) {
                let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64;
                let y = (x + x * sigma * normal(rng)) as f32;
                c.copy_from_slice(&y.to_le_bytes());
            }
        }
        "BF16" => {
            for c in t.data.chunks_exact_mut(2) {
                let x = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16) as f64;
                let y = to_bf16((x + x * sigma * normal(rng)) as f32);
                c.copy_from_slice(&y.to_le_bytes());
            }
        }
        _ => {}
    }
}

/// f32 to bf16, round to nearest even.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Cast every F32 tensor to BF16.
pub fn cast_bf16(tensors: &[StTensor]) -> Vec<StTensor> {
    tensors
        .iter()
        .map(|t| {
            if t.dtype != "F32" {
                return t.clone();
            }
            let data = t
                .data
                .chunks_exact(4)
                .flat_map(|c| to_bf16(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect();
            StTensor { dtype: "BF16".into(), data, ..t.clone() }
        })
        .collect()
}

/// Every block entry of an archive, in order (one walk over the index).
pub fn all_entries<R: hexz_format::ReadAt>(archive: &hexz_format::Archive<R>) -> Vec<hexz_format::layout::BlockEntry> {
    let mut page = vec![0u8; archive.page_bytes()];
    archive.blocks(0, archive.virtual_size(), &mut page).unwrap().map(|b| b.unwrap().entry).collect()
}
