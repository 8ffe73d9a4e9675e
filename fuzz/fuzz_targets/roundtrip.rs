//! Differential: random tensor sets, written as safetensors, GGUF or a raw
//! file, stored with every codec and block size, alone and as a child of a
//! parent, must read back exactly; the one-thread writer of the core and
//! the parallel writer of hexz-io must write the same bytes.
#![no_main]
use arbitrary::Arbitrary;
use std::sync::Arc;

use hexz_format::writer::{store_vec, ParentSpec, StoreOptions, StoreReport};
use hexz_format::{Archive, Compression};
use hexz_io::{Location, Parent, Source};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Tensor {
    dtype: u8,
    elements: u16,
    seed: u32,
    smooth: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    format: u8,
    codec: u8,
    block_kib: u8,
    tensors: Vec<Tensor>,
    /// Edits that turn the file into a "fine-tune" of itself.
    edits: Vec<(u16, u8)>,
    with_parent: bool,
}

const DTYPES: [(&str, u32, usize); 5] = [("F32", 0, 4), ("F16", 1, 2), ("BF16", 30, 2), ("I8", 24, 1), ("I64", 27, 8)];

fn data(t: &Tensor) -> Vec<u8> {
    let (_, _, width) = DTYPES[t.dtype as usize % DTYPES.len()];
    let n = usize::from(t.elements % 2048) * width;
    let mut x = u64::from(t.seed) | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if t.smooth {
                (i % width == width - 1) as u8 * 0x3c + (x % 3) as u8
            } else {
                x as u8
            }
        })
        .collect()
}

fn safetensors(tensors: &[Tensor]) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut body = Vec::new();
    for (i, t) in tensors.iter().enumerate() {
        let (name, _, width) = DTYPES[t.dtype as usize % DTYPES.len()];
        let d = data(t);
        entries.push(format!(
            "\"t{i}\":{{\"dtype\":\"{name}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            d.len() / width,
            body.len(),
            body.len() + d.len()
        ));
        body.extend_from_slice(&d);
    }
    let header = format!("{{{}}}", entries.join(",")).into_bytes();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    out.extend_from_slice(&body);
    out
}

fn gguf(tensors: &[Tensor]) -> Vec<u8> {
    let mut h = b"GGUF".to_vec();
    h.extend_from_slice(&3u32.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&1u64.to_le_bytes());
    h.extend_from_slice(&4u64.to_le_bytes());
    h.extend_from_slice(b"name");
    h.extend_from_slice(&8u32.to_le_bytes());
    h.extend_from_slice(&3u64.to_le_bytes());
    h.extend_from_slice(b"fz!");
    let datas: Vec<Vec<u8>> = tensors.iter().map(data).collect();
    let mut offset = 0u64;
    for (i, (t, d)) in tensors.iter().zip(&datas).enumerate() {
        let (_, id, width) = DTYPES[t.dtype as usize % DTYPES.len()];
        let name = format!("t{i}");
        h.extend_from_slice(&(name.len() as u64).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&((d.len() / width) as u64).to_le_bytes());
        h.extend_from_slice(&id.to_le_bytes());
        h.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + d.len() as u64).next_multiple_of(32);
    }
    while h.len() % 32 != 0 {
        h.push(0);
    }
    for d in &datas {
        h.extend_from_slice(d);
        while h.len() % 32 != 0 {
            h.push(0);
        }
    }
    h
}

/// The same store through hexz-io's parallel pipeline.
fn store_parallel(src: &[u8], opts: &StoreOptions, parent: Option<Parent<'_>>) -> hexz_io::Result<(Vec<u8>, StoreReport)> {
    let mut out = Vec::new();
    let name = Location::Label("fuzz source".into());
    let report = hexz_io::store_parallel(&src, &name, &mut out, std::path::Path::new("fuzz output"), opts, parent, &|_| {
        std::ops::ControlFlow::Continue(())
    })?;
    // The final header goes over the provisional one, as the file stores do.
    out[..report.header.len()].copy_from_slice(&report.header);
    Ok((out, report))
}

fuzz_target!(|input: Input| {
    let tensors = &input.tensors[..input.tensors.len().min(8)];
    let source = match input.format % 3 {
        0 => tensors.iter().flat_map(data).collect(),
        1 => safetensors(tensors),
        _ => gguf(tensors),
    };
    let compression =
        [Compression::None, Compression::Lz4, Compression::zstd(1), Compression::DEFAULT][input.codec as usize % 4];
    let opts = StoreOptions {
        compression,
        block_size: 4096 * (1 + u32::from(input.block_kib % 16)),
        // Two workers exercise blocks waiting for their leader's filter choice.
        threads: 1 + usize::from(input.block_kib % 2),
        entries_per_page: 1 + u32::from(input.block_kib % 5),
        // Raw tensor bytes may happen to start like a model file: store them as what they are.
        raw: input.format % 3 == 0,
        ..StoreOptions::default()
    };
    let (hxz, _) = store_vec::<_, &[u8]>(source.as_slice(), &opts, None).expect("store");
    let (parallel, _) = store_parallel(&source, &opts, None).expect("parallel store");
    assert!(parallel == hxz, "the parallel writer wrote other bytes");
    let archive = Archive::open(hxz.as_slice()).expect("open");
    assert_eq!(archive.read_vec(0, source.len() as u64).expect("read"), source);
    if !input.with_parent || source.is_empty() {
        return;
    }
    // The child: the same file with some bytes of the data changed.
    let mut child = source.clone();
    let data_start = archive.manifest().expect("manifest").source_header_length as usize;
    for &(at, value) in input.edits.iter().take(64) {
        if child.len() > data_start {
            let i = data_start + usize::from(at) % (child.len() - data_start);
            child[i] = value;
        }
    }
    let spec = ParentSpec { archive: &archive, hint: "parent.hxz".into() };
    let child_hxz = match store_vec(child.as_slice(), &opts, Some(spec)) {
        Ok((bytes, _)) => bytes,
        // Edits can break the source's own header (e.g. a GGUF offset): then it is not storable as such.
        Err(hexz_format::Error::Source { .. }) => return,
        Err(e) => panic!("store child: {e}"),
    };
    let shared: Source = Arc::new(hxz.clone());
    let parent_archive = Archive::open(shared).expect("parent");
    let chain = [Location::Label("parent".into())];
    let parent = Parent { archive: &parent_archive, chain: &chain, hint: "parent.hxz".into() };
    let (parallel_child, _) = store_parallel(&child, &opts, Some(parent)).expect("parallel child");
    assert!(parallel_child == child_hxz, "the parallel writer wrote another child");
    let opened = Archive::open(child_hxz.as_slice())
        .expect("open child")
        .with_ancestors(vec![Archive::open(hxz.as_slice()).expect("parent")])
        .expect("chain");
    assert_eq!(opened.read_vec(0, child.len() as u64).expect("read child"), child);
});
