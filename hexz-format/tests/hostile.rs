//! Hostile inputs, each a hand-made malformed file: every one gives a clear
//! error, never a panic, never wrong bytes, and never an allocation sized by
//! what the file claims. Plus every single-bit flip of small archives, with
//! and without a parent.

mod common;

use common::*;
use hexz_format::gguf::GgufValue;
use hexz_format::layout::{limits, short_checksum, BLOCK_ENTRY_SIZE, FOOTER_SIZE, HEADER_SIZE};
use hexz_format::writer::{store_vec, ParentSpec, StoreOptions};
use hexz_format::{Archive, Compression, Error};

/// Rewrite block entry `index` of a valid archive with `edit`, then
/// recompute the page hash, directory hash and footer checksum, so the
/// entry's own checks (not the hashes) are what a reader meets.
fn forge_entry(hxz: &[u8], index: u64, edit: impl Fn(&mut [u8])) -> Vec<u8> {
    let archive = Archive::open(hxz).unwrap();
    let epp = u64::from(archive.footer().entries_per_page.get());
    let mut buf = vec![0u8; archive.page_bytes()];
    let page = archive.load_page((index / epp) as u32, &mut buf).unwrap();
    let mut out = hxz.to_vec();
    let at = page.offset as usize + (index % epp) as usize * BLOCK_ENTRY_SIZE;
    edit(&mut out[at..at + BLOCK_ENTRY_SIZE]);
    reseal(&mut out);
    out
}

fn reseal(bytes: &mut [u8]) {
    let footer_at = bytes.len() - FOOTER_SIZE;
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let dir = u64_at(bytes, footer_at + 24) as usize;
    let pages = u32_at(bytes, footer_at + 32) as usize;
    for p in 0..pages {
        let at = dir + p * 56;
        let (off, n) = (u64_at(bytes, at + 8) as usize, u32_at(bytes, at + 16) as usize);
        let h = *blake3::hash(&bytes[off..off + n * BLOCK_ENTRY_SIZE]).as_bytes();
        bytes[at + 24..at + 56].copy_from_slice(&h);
    }
    let h = *blake3::hash(&bytes[dir..dir + pages * 56]).as_bytes();
    bytes[footer_at + 104..footer_at + 136].copy_from_slice(&h);
    let (m, mlen) = (u64_at(bytes, footer_at + 40) as usize, u64_at(bytes, footer_at + 48) as usize);
    let h = *blake3::hash(&bytes[m..m + mlen]).as_bytes();
    bytes[footer_at + 136..footer_at + 168].copy_from_slice(&h);
    let c = short_checksum(&bytes[footer_at..footer_at + FOOTER_SIZE - 8]);
    bytes[footer_at + FOOTER_SIZE - 8..].copy_from_slice(&c.to_le_bytes());
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn fixture() -> (Vec<u8>, Vec<u8>) {
    let src = tiny_gguf();
    let hxz = store_bytes(&src, Compression::Lz4, 4096);
    (src, hxz)
}

fn read_err(hxz: &[u8]) -> Error {
    let archive = match Archive::open(hxz) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let report = hexz_format::verify::verify(hxz, true, &|_| {});
    assert!(!report.is_ok(), "verify passed a forged archive");
    archive.read_vec(0, archive.virtual_size()).expect_err("forged archive read as valid")
}

#[test]
fn declared_counts_beyond_the_file_are_refused_before_allocating() {
    let (_, hxz) = fixture();
    let footer_at = hxz.len() - FOOTER_SIZE;
    // A block count the file cannot hold (with a matching page count).
    let mut bad = hxz.clone();
    set_u64(&mut bad, footer_at + 16, u64::MAX / 2);
    reseal(&mut bad);
    assert!(matches!(Archive::open(bad.as_slice()), Err(Error::InvalidField { .. })));
    // A manifest claiming 2^40 bytes.
    let mut bad = hxz.clone();
    set_u64(&mut bad, footer_at + 48, 1 << 40);
    reseal_checksums_only(&mut bad);
    assert!(Archive::open(bad.as_slice()).is_err());
    // A max block length over the 64 MiB limit: no scratch of that size is ever made.
    let mut bad = hxz.clone();
    set_u32(&mut bad, footer_at + 56, u32::MAX);
    reseal(&mut bad);
    assert!(matches!(Archive::open(bad.as_slice()), Err(Error::LimitExceeded { .. })));
}

fn reseal_checksums_only(bytes: &mut [u8]) {
    let footer_at = bytes.len() - FOOTER_SIZE;
    let c = short_checksum(&bytes[footer_at..footer_at + FOOTER_SIZE - 8]);
    bytes[footer_at + FOOTER_SIZE - 8..].copy_from_slice(&c.to_le_bytes());
}

#[test]
fn stored_offsets_past_the_end_and_overlaps_are_errors() {
    let (_, hxz) = fixture();
    let past = forge_entry(&hxz, 0, |e| set_u64(e, 8, u64::MAX - 10));
    assert!(matches!(read_err(&past), Error::InvalidField { field: "block stored_offset", .. }));
    // Block 2's stored bytes moved to overlap block 1's, partially.
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let b1 = all_entries(&archive)[1];
    let overlap = forge_entry(&hxz, 2, |e| set_u64(e, 8, b1.stored_offset.get() + 1));
    let report = hexz_format::verify::verify(overlap.as_slice(), false, &|_| {});
    assert!(report.problems.iter().any(|p| p.message.contains("overlaps")), "{:?}", report.problems);
    // Virtual ranges that overlap (block 1 starts inside block 0).
    let vo = forge_entry(&hxz, 1, |e| set_u64(e, 0, 10));
    let report = hexz_format::verify::verify(vo.as_slice(), false, &|_| {});
    assert!(report.problems.iter().any(|p| p.message.contains("gap or overlap")), "{:?}", report.problems);
    read_err(&vo);
}

#[test]
fn decoded_length_different_from_declared_is_an_error() {
    let (_, hxz) = fixture();
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let lz4_block = all_entries(&archive).iter().position(|e| e.codec == 1).unwrap() as u64;
    let shorter = forge_entry(&hxz, lz4_block, |e| {
        let v = u32::from_le_bytes(e[24..28].try_into().unwrap());
        set_u32(e, 24, v - 1);
    });
    assert!(matches!(read_err(&shorter), Error::Decode { .. } | Error::InvalidField { .. }));
}

#[test]
fn decompression_bombs_are_stopped_at_the_declared_length() {
    // A zstd block of 4 KiB of zeros, declared as 4 KiB; then the same stored
    // bytes re-declared as a 100-byte block: the decoder must stop at 100.
    let src = vec![0u8; 3 * 4096];
    let hxz = store_bytes(&src, Compression::zstd(3), 4096);
    let bomb = forge_entry(&hxz, 0, |e| set_u32(e, 24, 100));
    let err = read_err(&bomb);
    assert!(matches!(err, Error::Decode { .. } | Error::InvalidField { .. }), "{err}");
    // A tiny stored block claiming more than the 64 MiB limit is refused by field checks.
    let huge = forge_entry(&hxz, 0, |e| set_u32(e, 24, limits::MAX_BLOCK_LENGTH + 1));
    assert!(matches!(read_err(&huge), Error::InvalidField { .. }));
}

#[test]
fn hostile_gguf_lengths_and_counts() {
    let mut base = b"GGUF".to_vec();
    base.extend_from_slice(&3u32.to_le_bytes());
    // Tensor count far beyond the file.
    let mut f = base.clone();
    f.extend_from_slice(&u64::MAX.to_le_bytes());
    f.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(hexz_format::gguf::parse(&f, f.len() as u64), Err(Error::Source { .. })));
    // A key whose string length is near u64::MAX.
    let mut f = base.clone();
    f.extend_from_slice(&0u64.to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes());
    f.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    f.extend_from_slice(b"abc");
    assert!(matches!(hexz_format::gguf::parse(&f, 1 << 40), Err(Error::Truncated { .. })));
    // One key "k" holding an array of `elem_type` claiming `len` elements.
    let array_kv = |elem_type: u32, len: u64| {
        let mut f = base.clone();
        for v in [0u64, 1, 1] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(b"k");
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&elem_type.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f
    };
    // An array of strings whose length is near u64::MAX.
    assert!(matches!(hexz_format::gguf::parse(&array_kv(8, u64::MAX - 1), 1 << 40), Err(Error::Truncated { .. })));
    // An array of u64 whose byte size overflows.
    assert!(hexz_format::gguf::parse(&array_kv(10, u64::MAX / 4), 1 << 40).is_err());

    // String arrays are checked element by element, though kept as one span.
    let strings = |items: &[&[u8]]| {
        let mut f = array_kv(8, items.len() as u64);
        for item in items {
            f.extend_from_slice(&(item.len() as u64).to_le_bytes());
            f.extend_from_slice(item);
        }
        f
    };
    let items: [&[u8]; 4] = [b"", b"a", b"", "wörld".as_bytes()];
    let f = strings(&items);
    let header = hexz_format::gguf::parse(&f, 1 << 40).unwrap();
    let GgufValue::Array(a) = &header.kvs[0].value else { panic!("not an array") };
    assert_eq!((a.len, a.data.offset + a.data.len), (4, f.len() as u64));
    assert!(a.items.is_empty());
    assert_eq!(a.strings(&f).collect::<Vec<_>>(), items);
    // The last element's length runs past the buffer, by one byte or by far.
    for cut in [1, 6] {
        assert!(matches!(hexz_format::gguf::parse(&f[..f.len() - cut], 1 << 40), Err(Error::Truncated { .. })));
    }
    let mut long = f.clone();
    let last_len_at = f.len() - "wörld".len() - 8;
    long[last_len_at..last_len_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(hexz_format::gguf::parse(&long, 1 << 40), Err(Error::Truncated { .. })));
    // Given a buffer too short for the array, there are no strings.
    assert_eq!(a.strings(&f[..f.len() - 1]).count(), 0);
    assert_eq!(a.strings(&[]).count(), 0);

    // An array of arrays of strings: the inner arrays are parsed into items.
    let mut nested = array_kv(9, 2);
    let inners: [&[&[u8]]; 2] = [&[b"x"], &[b"", b"yz"]];
    for inner in inners {
        nested.extend_from_slice(&8u32.to_le_bytes());
        nested.extend_from_slice(&(inner.len() as u64).to_le_bytes());
        for item in inner {
            nested.extend_from_slice(&(item.len() as u64).to_le_bytes());
            nested.extend_from_slice(item);
        }
    }
    let header = hexz_format::gguf::parse(&nested, 1 << 40).unwrap();
    let GgufValue::Array(outer) = &header.kvs[0].value else { panic!("not an array") };
    let inner: Vec<Vec<&[u8]>> = outer
        .items
        .iter()
        .map(|v| match v {
            GgufValue::Array(a) => a.strings(&nested).collect(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(inner, [vec![&b"x"[..]], vec![&b""[..], &b"yz"[..]]]);
}

#[test]
fn safetensors_header_claiming_100_gb_is_refused() {
    let mut f = (100u64 << 30).to_le_bytes().to_vec();
    f.extend_from_slice(b"{}");
    assert!(matches!(hexz_format::safetensors::header_length(&f, 1 << 50), Err(Error::LimitExceeded { .. })));
    assert!(hexz_format::safetensors::parse(&f, f.len() as u64).is_err());
    // Offsets beyond the data, overlaps, and a wrong dtype × shape.
    for header in [
        r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,99999]}}"#,
        r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
        r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}}"#,
        r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
    ] {
        let mut f = (header.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(header.as_bytes());
        f.extend_from_slice(&[0u8; 8]);
        assert!(hexz_format::safetensors::parse(&f, f.len() as u64).is_err(), "{header}");
    }
}

#[test]
fn chain_depth_is_limited() {
    // Each archive is stored against the previous one; one deeper than the
    // limit cannot be written (and could not be attached for reading).
    let opts = StoreOptions { compression: Compression::Lz4, block_size: 4096, ..StoreOptions::default() };
    let mut archives: Vec<Vec<u8>> = vec![store_bytes(&[1u8; 5000], Compression::Lz4, 4096)];
    let result = loop {
        // The newest archive with all older ones attached, parent first.
        let mut older = archives.iter().rev().skip(1).map(|a| Archive::open(a.as_slice()).unwrap()).collect();
        let newest = Archive::open(archives.last().unwrap().as_slice()).unwrap();
        let parent = match newest.with_ancestors(std::mem::take(&mut older)) {
            Ok(p) => p,
            Err(e) => break e,
        };
        let src = vec![archives.len() as u8; 5000];
        match store_vec(src.as_slice(), &opts, Some(ParentSpec { archive: &parent, hint: "p.hxz".into() })) {
            Ok((out, _)) => archives.push(out),
            Err(e) => break e,
        }
    };
    assert!(matches!(result, Error::ChainTooDeep { .. }), "{result}");
    assert_eq!(archives.len(), usize::from(limits::MAX_CHAIN_DEPTH));
}

/// Every single-bit flip: each read returns an error or exactly the right
/// bytes, and deep verification reports every flip that lands in bytes the
/// format protects (everything but compressed-stream bits that decode the same).
fn bit_flip_sweep(name: &str, hxz: &[u8], src: &[u8], ancestors: &[&[u8]]) {
    let open = |bytes: &[u8]| -> Result<Archive<Vec<u8>>, Error> {
        Archive::open(bytes.to_vec())?
            .with_ancestors(ancestors.iter().map(|a| Archive::open(a.to_vec()).unwrap()).collect())
    };
    let good = open(hxz).unwrap();
    let compressed: Vec<(usize, usize)> = all_entries(&good)
        .into_iter()
        .filter(|e| e.codec != 0 && e.location == 0)
        .map(|e| (e.stored_offset.get() as usize, (e.stored_offset.get() + u64::from(e.stored_length.get())) as usize))
        .collect();
    let mut missed = 0;
    for bit in 0..hxz.len() * 8 {
        let mut bad = hxz.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        let read = open(&bad).and_then(|a| a.read_vec(0, a.virtual_size()));
        if let Ok(bytes) = &read {
            assert!(bytes == src, "{name}: flip of bit {bit} read wrong bytes as success");
        }
        let verified = match open(&bad) {
            Ok(a) => {
                let mut report = hexz_format::verify::Report::default();
                hexz_format::verify::verify_open(&a, true, &mut report, &|_| {});
                report.is_ok()
            }
            Err(_) => false,
        };
        if verified {
            let at = bit / 8;
            assert!(
                compressed.iter().any(|&(a, b)| (a..b).contains(&at)) && read.is_ok(),
                "{name}: verify missed bit {bit}"
            );
            missed += 1;
        }
    }
    eprintln!("{name}: {} bit flips, {missed} harmless (compressed bits that decode the same)", hxz.len() * 8);
}

#[test]
fn every_bit_flip_of_small_archives() {
    let gg = tiny_gguf();
    bit_flip_sweep("gguf/lz4", &store_bytes(&gg, Compression::Lz4, 4096), &gg, &[]);
    let st = tiny_safetensors();
    bit_flip_sweep("safetensors/zstd", &store_bytes(&st, Compression::zstd(3), 4096), &st, &[]);
    // Fields blocks, each run's last one decoded over its own stored bytes.
    let vectors = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/gguf-fields-zstd");
    let (fields, src) =
        (std::fs::read(format!("{vectors}.hxz")).unwrap(), std::fs::read(format!("{vectors}.expected")).unwrap());
    bit_flip_sweep("gguf fields/zstd", &fields, &src, &[]);
    // A child with a parent: flips in the child.
    let parent = store_bytes(&st, Compression::zstd(3), 4096);
    let mut fine = st.clone();
    let data_start = hexz_format::safetensors::header_length(&st, st.len() as u64).unwrap() as usize;
    for b in fine[data_start + 100..data_start + 2000].iter_mut() {
        *b = b.wrapping_add(1);
    }
    let parent_archive = Archive::open(parent.as_slice()).unwrap();
    let opts = StoreOptions { compression: Compression::zstd(3), block_size: 4096, ..StoreOptions::default() };
    let spec = ParentSpec { archive: &parent_archive, hint: "p.hxz".into() };
    let (child, _) = store_vec(fine.as_slice(), &opts, Some(spec)).unwrap();
    bit_flip_sweep("safetensors child", &child, &fine, &[&parent]);
}

#[test]
fn header_size_limits_hold() {
    let (_, hxz) = fixture();
    let mut bad = hxz.clone();
    set_u32(&mut bad, 12, 65);
    let c = short_checksum(&bad[..HEADER_SIZE - 8]);
    bad[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    assert!(matches!(Archive::open(bad.as_slice()), Err(Error::InvalidField { field: "header header_size", .. })));
    let mut v2 = hxz.clone();
    v2[8] = 2;
    let c = short_checksum(&v2[..HEADER_SIZE - 8]);
    v2[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    assert!(matches!(Archive::open(v2.as_slice()), Err(Error::UnsupportedVersion { major: 2, .. })));
}

/// An archive of `data` (raw, one block) whose single block's stored bytes
/// are `stored`, encoded with `codec`: how an attacker shapes a block.
fn one_block_archive(data: &[u8], stored: Vec<u8>, codec: hexz_format::CodecId) -> Vec<u8> {
    use hexz_format::layout::SourceFormat;
    use hexz_format::pipeline::{ArchiveWriter, EncodedJob, ParentIndex};
    use hexz_format::plan::{Plan, Segment};
    let seg = Segment::unstructured(0, data.len() as u64, false);
    let plan = Plan {
        format: SourceFormat::Raw,
        header_length: 0,
        tensors: Vec::new(),
        segments: vec![seg],
        files: Vec::new(),
    };
    let mut writer = ArchiveWriter::new(&StoreOptions::default(), &plan, data.len() as u64, &Default::default());
    let mut out = writer.header_bytes().to_vec();
    let job = EncodedJob {
        index: 0,
        offset: 0,
        length: data.len() as u32,
        width: 1,
        tensor: None,
        hash: *blake3::hash(data).as_bytes(),
        codec,
        filter: hexz_format::FilterId::None,
        param: 0,
        delta_base: 0,
        bytes: stored,
    };
    assert!(writer.add(&job, &ParentIndex::default()).unwrap());
    out.extend_from_slice(&job.bytes);
    let sh = *blake3::hash(data).as_bytes();
    out.extend_from_slice(&writer.finish(plan, &StoreOptions::default(), None, sh).unwrap().0);
    out
}

/// Spec section 7: a zstd block is exactly one frame; two frames that
/// decode to the right bytes, or one followed by a skippable frame, are
/// refused (readers enforce what the spec says).
#[test]
fn zstd_blocks_are_exactly_one_frame() {
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let frame = |bytes: &[u8]| zstd_safe_compress(bytes);
    let good = one_block_archive(&data, frame(&data), hexz_format::CodecId::Zstd);
    assert_eq!(Archive::open(good.as_slice()).unwrap().read_vec(0, 8192).unwrap(), data);
    let two = [frame(&data[..4096]), frame(&data[4096..])].concat();
    let skippable = [frame(&data), vec![0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]].concat();
    let trailing = [frame(&data), vec![0]].concat();
    for (name, stored) in [("two frames", two), ("skippable frame", skippable), ("trailing byte", trailing)] {
        let hxz = one_block_archive(&data, stored, hexz_format::CodecId::Zstd);
        let archive = Archive::open(hxz.as_slice()).unwrap();
        let err = archive.read_vec(0, 8192).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{name}: {err}");
        assert!(!hexz_format::verify::verify(hxz.as_slice(), true, &|_| {}).is_ok(), "{name}: verify passed");
    }
}

fn zstd_safe_compress(bytes: &[u8]) -> Vec<u8> {
    let mut enc = hexz_format::pipeline::BlockEncoder::new(Compression::zstd(3)).unwrap();
    let e = enc.encode(bytes, 1);
    assert_eq!(e.codec, hexz_format::CodecId::Zstd);
    e.bytes.to_vec()
}

/// Spec section 10 step 5: stored_length ≤ virtual_length for every entry.
#[test]
fn stored_longer_than_virtual_is_refused() {
    let (_, hxz) = fixture();
    let archive = Archive::open(hxz.as_slice()).unwrap();
    let max_block = archive.footer().max_block_length.get();
    let (index, e) =
        all_entries(&archive).into_iter().enumerate().find(|(_, e)| e.virtual_length.get() < max_block).unwrap();
    let mut bad = forge_entry(&hxz, index as u64, |raw| set_u32(raw, 28, e.virtual_length.get() + 1));
    let footer_at = bad.len() - FOOTER_SIZE;
    set_u32(&mut bad, footer_at + 60, max_block);
    reseal(&mut bad);
    let err = read_err(&bad);
    assert!(matches!(err, Error::InvalidField { field: "block stored_length", .. }), "{err}");
}

/// Spec section 6: a page's first entry starts at the directory's
/// first_virtual_offset; reads check it, not only verify.
#[test]
fn a_page_disagreeing_with_the_directory_is_refused_by_reads() {
    let src = tiny_gguf();
    let opts = StoreOptions {
        compression: Compression::Lz4,
        block_size: 4096,
        entries_per_page: 1,
        ..StoreOptions::default()
    };
    let hxz = store_vec::<_, &[u8]>(src.as_slice(), &opts, None).unwrap().0;
    let archive = Archive::open(hxz.as_slice()).unwrap();
    assert!(archive.footer().page_count.get() >= 3, "fixture needs three pages");
    let dir = archive.footer().directory_offset.get() as usize;
    let mut bad = hxz.clone();
    let at = dir + 56; // page 1's directory entry
    let first = u64::from_le_bytes(bad[at..at + 8].try_into().unwrap());
    set_u64(&mut bad, at, first + 1);
    reseal(&mut bad);
    let opened = Archive::open(bad.as_slice()).unwrap();
    let err = opened.read_vec(first + 1, 16).unwrap_err();
    assert!(matches!(err, Error::InvalidField { field: "block virtual_offset", .. }), "{err}");
    assert!(opened.read_vec(0, 16).unwrap() == src[..16], "other pages stay readable");
}

/// Spec sections 2 and 4: an unknown incompatible feature bit refuses the
/// archive with a "needs a newer format" error; unknown compatible bits are ignored.
#[test]
fn unknown_feature_bits() {
    let (src, hxz) = fixture();
    let mut bad = hxz.clone();
    bad[10] = 3; // version_minor 3
    set_u64(&mut bad, 16, 1 << 7);
    let c = short_checksum(&bad[..HEADER_SIZE - 8]);
    bad[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    let err = Archive::open(bad.as_slice()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFeatures { minor: 3, bits: 0x80, .. }), "{err}");
    assert!(err.to_string().contains("needs format 1.3"), "{err}");
    assert_eq!(err.code(), hexz_format::ErrorCode::UnsupportedVersion);
    let mut compat = hxz.clone();
    set_u64(&mut compat, 24, 1 << 9);
    let c = short_checksum(&compat[..HEADER_SIZE - 8]);
    compat[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    let archive = Archive::open(compat.as_slice()).unwrap();
    assert_eq!(archive.read_vec(0, src.len() as u64).unwrap(), src);
}

/// Each forged archive fails to read with an error naming its field.
fn assert_each_refused<const N: usize>(cases: [(&str, Vec<u8>, &str); N]) {
    for (what, bad, field) in cases {
        let err = read_err(&bad);
        assert!(err.to_string().contains(field), "{what}: {err}");
    }
}

/// `hxz` with no incompatible feature declared, as version 1.`minor`.
fn without_features(hxz: &[u8], minor: u8) -> Vec<u8> {
    let mut bytes = hxz.to_vec();
    bytes[10] = minor;
    set_u64(&mut bytes, 16, 0);
    let c = short_checksum(&bytes[..HEADER_SIZE - 8]);
    bytes[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    bytes
}

/// `hxz` declares the incompatible feature `bit` (named `name`) and version
/// 1.`minor` (an older reader, not knowing the bit, refuses with "needs
/// format 1.`minor`": `unknown_feature_bits`); without the bit, as version
/// 1.`minor - 1`, its entries are invalid, not read.
fn assert_feature_needed(hxz: &[u8], name: &str, bit: u64, minor: u8) {
    let err = read_err(&without_features(hxz, minor - 1));
    assert!(err.to_string().contains(name), "{err}");
    let archive = Archive::open(hxz).unwrap();
    assert_eq!(archive.header().incompat_features.get(), bit);
    assert_eq!(archive.header().version_minor.get(), u16::from(minor));
}

/// Format 1.2's `fields` entries: the GGML type in `filter_param` must
/// have a layout the width matches, the archive must declare FIELDS, and
/// every other filter keeps `filter_param` zero.
#[test]
fn fields_entries_are_checked() {
    use hexz_format::layout::{features, FilterId};
    let hxz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/gguf-fields-zstd.hxz")).unwrap();
    let entries = all_entries(&Archive::open(hxz.as_slice()).unwrap());
    let fields = entries.iter().position(|e| e.filter == FilterId::Fields as u8).unwrap() as u64;
    let plain = entries.iter().position(|e| e.filter != FilterId::Fields as u8).unwrap() as u64;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("unknown type", forge_entry(&hxz, fields, |e| set_u32(e, 36, 9999)), "filter_param"),
        ("type without a layout", forge_entry(&hxz, fields, |e| set_u32(e, 36, 0)), "filter_param"),
        ("width not the type's", forge_entry(&hxz, fields, |e| e[34] = 33), "element_width"),
        ("param on another filter", forge_entry(&hxz, plain, |e| set_u32(e, 36, 8)), "filter_param"),
    ];
    assert_each_refused(cases);
    assert_feature_needed(&hxz, "FIELDS", features::FIELDS, 2);
}

/// Format 1.3's entropy-coded entries: codec `ans` goes with `float-ans`
/// and `delta-ans` only (and they with it), needs the ENTROPY feature, and
/// `float-ans` elements are 2 or 4 bytes.
#[test]
fn entropy_entries_are_checked() {
    use hexz_format::layout::{features, CodecId, FilterId};
    let hxz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/ans-floats.hxz")).unwrap();
    let entries = all_entries(&Archive::open(hxz.as_slice()).unwrap());
    let ans = entries.iter().position(|e| e.filter == FilterId::FloatAns as u8).unwrap() as u64;
    let zstd = entries.iter().position(|e| e.codec == CodecId::Zstd as u8).unwrap() as u64;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("ans with byte-group", forge_entry(&hxz, ans, |e| e[33] = FilterId::ByteGroup as u8), "codec"),
        ("float-ans with zstd", forge_entry(&hxz, ans, |e| e[32] = CodecId::Zstd as u8), "codec"),
        ("zstd block marked float-ans", forge_entry(&hxz, zstd, |e| e[33] = FilterId::FloatAns as u8), "codec"),
        ("float-ans of width 3", forge_entry(&hxz, ans, |e| e[34] = 3), "element_width"),
    ];
    assert_each_refused(cases);
    assert_feature_needed(&hxz, "ENTROPY", features::ENTROPY, 3);
}

/// Every bit of the entropy-coded vectors flipped: an error, or (a flip
/// that decodes the same) the right bytes; never a panic or wrong bytes.
#[test]
fn every_bit_flip_of_entropy_coded_archives() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/vectors/");
    let read = |name: &str| std::fs::read(format!("{dir}{name}")).unwrap();
    bit_flip_sweep("ans-floats", &read("ans-floats.hxz"), &read("ans-floats.expected"), &[]);
    let parent = read("delta-parent.hxz");
    bit_flip_sweep("ans-delta-child", &read("ans-delta-child.hxz"), &read("ans-delta-child.expected"), &[&parent]);
}

/// `hxz` with the first `from` in its manifest replaced by `to` (same
/// length), resealed.
fn forge_manifest_string(hxz: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let archive = Archive::open(hxz).unwrap();
    let m = archive.footer().manifest_offset.get() as usize;
    let at = m + hxz[m..].windows(from.len()).position(|w| w == from).expect("string in the manifest");
    let mut out = hxz.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    reseal(&mut out);
    out
}

fn problems(hxz: &[u8], deep: bool) -> Vec<String> {
    let report = hexz_format::verify::verify(hxz, deep, &|_| {});
    report.problems.iter().map(|p| format!("{}: {}", p.location, p.message)).collect()
}

/// A GGUF tensor's dtype string must name its GGML type id (and the
/// archived header's type): `Q8_0` recorded as `Q4_0` is reported by the
/// quick check, and the deep check finds the header disagreeing.
#[test]
fn gguf_dtype_strings_are_checked_against_the_type_id_and_the_header() {
    let (_, hxz) = fixture();
    assert!(problems(&hxz, true).is_empty());
    let bad = forge_manifest_string(&hxz, b"Q8_0", b"Q4_0");
    let quick = problems(&bad, false);
    assert!(quick.iter().any(|p| p.contains("dtype Q4_0 disagrees with its GGML type id 8 (Q8_0)")), "{quick:?}");
    let deep = problems(&bad, true);
    assert!(deep.iter().any(|p| p.contains("source header") && p.contains("blk.0.q8")), "{deep:?}");
}

/// Tensor names are unique within a file: two files of a folder may share
/// them (and verify), one file may not.
#[test]
fn duplicate_tensor_names_are_refused_within_a_file_only() {
    use hexz_format::layout::FileKind;
    use hexz_format::plan::{plan, FolderEntry, Plan};
    let gguf = tiny_gguf();
    let entries = ["a/model.gguf", "b/model.gguf"]
        .iter()
        .map(|p| {
            let e = FolderEntry {
                path: p.to_string(),
                kind: FileKind::File,
                length: gguf.len() as u64,
                mode: 0o644,
                mtime_ns: 0,
            };
            (e, Some(plan(gguf.as_slice(), false).unwrap()))
        })
        .collect();
    let src = [gguf.clone(), gguf.clone()].concat();
    let mut hxz = Vec::new();
    let opts = hexz_format::writer::StoreOptions { compression: Compression::Lz4, ..Default::default() };
    let report = hexz_format::writer::store_plan::<_, &[u8]>(
        src.as_slice(),
        Plan::folder(entries).unwrap(),
        &mut |b| {
            hxz.extend_from_slice(b);
            Ok(())
        },
        &opts,
        None,
        &mut |_| std::ops::ControlFlow::Continue(()),
    )
    .unwrap();
    hxz[..64].copy_from_slice(&report.header);
    assert_eq!(problems(&hxz, true), Vec::<String>::new());
    // File a's blk.1.weight renamed blk.0.weight: a duplicate within file a.
    let bad = forge_manifest_string(&hxz, b"blk.1.weight", b"blk.0.weight");
    let quick = problems(&bad, false);
    assert!(
        quick.iter().any(|p| p.contains("file 'a/model.gguf'") && p.contains("duplicate tensor name in its file")),
        "{quick:?}"
    );
    assert!(quick.iter().all(|p| !p.contains("b/model.gguf")), "{quick:?}");
    // The same in a single-file archive.
    let (_, one) = fixture();
    let bad = forge_manifest_string(&one, b"blk.1.weight", b"blk.0.weight");
    assert!(problems(&bad, false).iter().any(|p| p.ends_with("duplicate tensor name")));
}
