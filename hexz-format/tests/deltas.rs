//! Fine-tunes as deltas against the real MiniLM: full and partial fine-tunes,
//! BF16, reshaped and new tensors, a chain of three, wrong and missing bases.

mod common;

use common::*;
use hexz_format::writer::{store_vec, ParentSpec, StoreOptions};
use hexz_format::{Archive, Compression, Error, FilterId, StorageKind};

fn opts() -> StoreOptions {
    StoreOptions { compression: Compression::zstd(3), ..StoreOptions::default() }
}

fn store_child(src: &[u8], parent: &Archive<&[u8]>) -> (Vec<u8>, hexz_format::writer::StoreReport) {
    let spec = ParentSpec { archive: parent, hint: "base.hxz".into() };
    store_vec(src, &opts(), Some(spec)).expect("store delta")
}

/// Open an archive with its ancestors (parent first) attached.
fn open_chain<'a>(archive: &'a [u8], ancestors: &[&'a [u8]]) -> Archive<&'a [u8]> {
    let ancestors = ancestors.iter().map(|a| Archive::open(*a).unwrap()).collect();
    Archive::open(archive).unwrap().with_ancestors(ancestors).unwrap()
}

fn plain(src: &[u8]) -> Vec<u8> {
    store_vec::<_, &[u8]>(src, &opts(), None).unwrap().0
}

/// The child extracts byte-identically, random ranges equal the source, and
/// deep verification passes with the chain attached.
fn check_child(child: &Archive<&[u8]>, src: &[u8]) {
    assert_eq!(sha256(&child.read_vec(0, src.len() as u64).unwrap()), sha256(src));
    let mut scratch = child.new_scratch().unwrap();
    let mut rng = Rng(77);
    for _ in 0..100 {
        let start = rng.below(src.len() as u64) as usize;
        let len = (rng.below(1 << 21) as usize).min(src.len() - start);
        let mut out = vec![0u8; len];
        child.read_at(start as u64, &mut out, &mut scratch).unwrap();
        assert!(out == src[start..start + len], "range {start}+{len}");
    }
    let mut report = hexz_format::verify::Report::default();
    hexz_format::verify::verify_open(child, true, &mut report, &|_| {});
    assert!(report.is_ok(), "{:?}", report.problems);
}

fn minilm() -> Vec<StTensor> {
    read_safetensors(&real_model("minilm.safetensors"))
}

#[test]
fn full_fine_tune_fp32_is_stored_as_deltas() {
    let base_tensors = minilm();
    let base = write_safetensors(&base_tensors);
    let mut rng = Rng(1);
    let mut fine_tensors = base_tensors.clone();
    fine_tensors.iter_mut().for_each(|t| perturb(t, &mut rng, 1e-3));
    let fine = write_safetensors(&fine_tensors);

    let base_hxz = plain(&base);
    let parent = Archive::open(base_hxz.as_slice()).unwrap();
    let (child_hxz, report) = store_child(&fine, &parent);
    assert!(report.delta_blocks > 0, "{report:?}");
    let child = open_chain(&child_hxz, &[&base_hxz]);
    check_child(&child, &fine);
    let standalone = plain(&fine);
    let m = child.manifest().unwrap();
    // Every float tensor changed is a delta; the few that a relative change
    // leaves alone (all-zero biases) are referenced from the base.
    let floats: Vec<_> = m.tensors.iter().filter(|t| t.dtype == "F32").collect();
    let deltas = floats.iter().filter(|t| t.storage_kind == StorageKind::Delta).count();
    for t in &floats {
        assert!(matches!(t.storage_kind, StorageKind::Delta | StorageKind::Parent), "{} {}", t.name, t.storage_kind);
    }
    assert!(deltas * 10 >= floats.len() * 9, "{deltas} of {} float tensors are deltas", floats.len());
    eprintln!(
        "full FP32 fine-tune: delta archive {:.4} of the file, standalone {:.4}",
        child_hxz.len() as f64 / fine.len() as f64,
        standalone.len() as f64 / fine.len() as f64
    );
    assert!(child_hxz.len() < standalone.len() * 3 / 4, "delta {} vs standalone {}", child_hxz.len(), standalone.len());
}

#[test]
fn partial_fine_tune_costs_only_its_changed_tensors() {
    let base_tensors = minilm();
    let base = write_safetensors(&base_tensors);
    let mut rng = Rng(2);
    let mut fine_tensors = base_tensors.clone();
    let changed = |name: &str| name.starts_with("encoder.layer.4.") || name.starts_with("encoder.layer.5.");
    fine_tensors.iter_mut().filter(|t| changed(&t.name)).for_each(|t| perturb(t, &mut rng, 1e-3));
    let fine = write_safetensors(&fine_tensors);
    let base_hxz = plain(&base);
    let parent = Archive::open(base_hxz.as_slice()).unwrap();
    let (child_hxz, _) = store_child(&fine, &parent);
    let child = open_chain(&child_hxz, &[&base_hxz]);
    check_child(&child, &fine);
    let m = child.manifest().unwrap();
    let mut changed_stored = 0u64;
    for t in &m.tensors {
        let kind = t.storage_kind;
        if changed(&t.name) && t.dtype == "F32" {
            assert_eq!(kind, StorageKind::Delta, "{}", t.name);
        } else if t.length > 0 {
            assert_eq!(kind, StorageKind::Parent, "{}", t.name);
        }
    }
    for e in all_entries(&child) {
        if e.location == 0 {
            changed_stored += u64::from(e.stored_length.get());
        }
    }
    let overhead = child_hxz.len() as u64 - changed_stored;
    eprintln!(
        "partial fine-tune: archive {} bytes, changed tensors' blocks {} bytes, overhead {} bytes ({:.3}% of the file)",
        child_hxz.len(),
        changed_stored,
        overhead,
        100.0 * overhead as f64 / fine.len() as f64
    );
    assert!((overhead as f64) < 0.01 * fine.len() as f64);
}

#[test]
fn bf16_fine_tune_reshaped_and_new_tensors() {
    let base_tensors = cast_bf16(&minilm());
    let base = write_safetensors(&base_tensors);
    let mut rng = Rng(3);
    let mut fine_tensors = base_tensors.clone();
    fine_tensors.iter_mut().for_each(|t| perturb(t, &mut rng, 1e-3));
    // One tensor reshaped (same bytes, other shape), one new tensor.
    let reshaped = fine_tensors.iter_mut().find(|t| t.shape == [384, 384]).unwrap();
    reshaped.shape = vec![192, 768];
    let reshaped_name = reshaped.name.clone();
    fine_tensors.push(StTensor {
        name: "extra.head.weight".into(),
        dtype: "BF16".into(),
        shape: vec![384],
        data: (0..768).map(|i| (i * 31 % 256) as u8).collect(),
    });
    let fine = write_safetensors(&fine_tensors);
    let base_hxz = plain(&base);
    let parent = Archive::open(base_hxz.as_slice()).unwrap();
    let (child_hxz, report) = store_child(&fine, &parent);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains(&reshaped_name)
            && report.warnings[0].contains("[192, 768]")
            && report.warnings[0].contains("[384, 384]")
    );
    let child = open_chain(&child_hxz, &[&base_hxz]);
    check_child(&child, &fine);
    let m = child.manifest().unwrap();
    let kind = |name: &str| m.tensors.iter().find(|t| t.name == name).unwrap().storage_kind;
    assert_eq!(kind("extra.head.weight"), StorageKind::Stored);
    assert_eq!(kind(&reshaped_name), StorageKind::Stored);
    // A BF16 step of 1e-3 moves few weights by more than rounding: most
    // differences are 0 or ±1, where bit planes or the entropy-coded
    // difference classes are the smallest.
    let filters: Vec<u8> = all_entries(&child).iter().map(|e| e.filter).collect();
    let small = filters.iter().filter(|&&f| f == FilterId::DeltaSubBits as u8 || f == FilterId::DeltaAns as u8).count();
    assert!(small * 2 > filters.len(), "{small} of {} blocks in bit planes or delta-ans", filters.len());
    let ratio = child_hxz.len() as f64 / fine.len() as f64;
    eprintln!(
        "full BF16 fine-tune: delta archive {ratio:.4} of the file, standalone {:.4}",
        plain(&fine).len() as f64 / fine.len() as f64
    );
    assert!(ratio < 0.07, "BF16 delta archive {ratio:.4} of the fine-tune");
}

#[test]
fn chain_of_three_and_wrong_or_missing_bases() {
    let base_tensors = minilm();
    let base = write_safetensors(&base_tensors);
    let mut rng = Rng(4);
    let mut v1_tensors = base_tensors.clone();
    v1_tensors.iter_mut().for_each(|t| perturb(t, &mut rng, 1e-3));
    let v1 = write_safetensors(&v1_tensors);
    let mut v2_tensors = v1_tensors.clone();
    v2_tensors.iter_mut().filter(|t| t.name.starts_with("encoder.layer.0.")).for_each(|t| perturb(t, &mut rng, 1e-3));
    let v2 = write_safetensors(&v2_tensors);

    let base_hxz = plain(&base);
    let base_a = Archive::open(base_hxz.as_slice()).unwrap();
    let (v1_hxz, _) = store_child(&v1, &base_a);
    let v1_a = open_chain(&v1_hxz, &[&base_hxz]);
    let (v2_hxz, v2_report) = store_child(&v2, &v1_a);
    // Most of v2 is v1's blocks, which are themselves deltas against base.
    assert!(v2_report.parent_blocks > v2_report.stored_blocks);
    let v2_a = open_chain(&v2_hxz, &[&v1_hxz, &base_hxz]);
    assert_eq!(v2_a.chain_len(), 3);
    check_child(&v2_a, &v2);
    eprintln!("chain of three: v2 archive is {:.4} of its file", v2_hxz.len() as f64 / v2.len() as f64);

    // Wrong base: v1 attached as v2's grandparent, base as its parent.
    let wrong = Archive::open(v2_hxz.as_slice())
        .unwrap()
        .with_ancestors(vec![Archive::open(base_hxz.as_slice()).unwrap(), Archive::open(v1_hxz.as_slice()).unwrap()]);
    assert!(matches!(wrong, Err(Error::ParentMismatch { .. })));
    // Missing base: reads of blocks the chain holds fail, never wrong bytes.
    let orphan = Archive::open(v2_hxz.as_slice()).unwrap();
    assert!(matches!(orphan.read_vec(0, v2.len() as u64), Err(Error::ParentRequired { .. })));
}
