//! Full verification: walks header, footer, directory, every page and entry,
//! the manifest and (deep) every block, and reports every problem found.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::dtype;
use crate::error::Error;
use crate::layout::{source_format, BLOCK_ENTRY_SIZE, HEADER_SIZE};
use crate::reader::Archive;
use crate::source::ReadAt;

/// One problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: String,
    pub message: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
    pub blocks_checked: u64,
    pub blocks_decoded: u64,
    pub tensors_checked: u64,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
    fn push(&mut self, location: impl Into<String>, err: impl ToString) {
        self.problems.push(Problem { location: location.into(), message: err.to_string() });
    }
}

/// Verify the archive in `src`. With `deep`, every block is decoded and its
/// BLAKE3 checked, and the whole source hash and the source header are
/// checked against the manifest. `progress` gets blocks done.
pub fn verify<R: ReadAt>(src: R, deep: bool, progress: &dyn Fn(u64)) -> Report {
    let mut report = Report::default();
    let archive = match Archive::open(src) {
        Ok(a) => a,
        Err(e) => {
            report.push("archive", e);
            return report;
        }
    };
    verify_open(&archive, deep, &mut report, progress);
    report
}

/// Verify an archive that is already open (its open-time checks passed).
pub fn verify_open<R: ReadAt>(archive: &Archive<R>, deep: bool, report: &mut Report, progress: &dyn Fn(u64)) {
    let footer = archive.footer();
    let virtual_size = archive.virtual_size();
    let mut block_starts: BTreeSet<u64> = BTreeSet::new();
    let mut stored: Vec<(u64, u64, &'static str)> = Vec::new();
    let mut expected = 0u64;
    let mut scratch = crate::reader::Workspace::new(if deep { archive.scratch_size() } else { 0 });
    let mut block_buf = vec![0u8; if deep { footer.max_block_length.get() as usize } else { 0 }];
    let mut source_hasher = blake3::Hasher::new();
    let mut hash_complete = true;

    for p in 0..footer.page_count.get() {
        let page = match archive.page(p) {
            Ok(page) => page,
            Err(e) => {
                report.push(format!("index page {p}"), e);
                hash_complete = false;
                continue;
            }
        };
        stored.push((page.offset, u64::from(page.entry_count) * BLOCK_ENTRY_SIZE as u64, "index page"));
        if page.first_virtual_offset != expected {
            expected = page.first_virtual_offset;
            hash_complete = false;
        }
        for slot in 0..page.entry_count {
            let index = page.first_block + u64::from(slot);
            let where_ = || format!("block {index} (page {p}, slot {slot})");
            report.blocks_checked += 1;
            let entry = match archive.entry(&page, slot) {
                Ok(e) => e,
                Err(e) => {
                    report.push(where_(), e);
                    hash_complete = false;
                    continue;
                }
            };
            let start = entry.virtual_offset.get();
            let len = u64::from(entry.virtual_length.get());
            if start != expected {
                report
                    .push(where_(), format!("starts at virtual offset {start}, expected {expected} (gap or overlap)"));
                hash_complete = false;
            }
            expected = start + len;
            block_starts.insert(start);
            if entry.location == 0 {
                stored.push((entry.stored_offset.get(), u64::from(entry.stored_length.get()), "block"));
            }
            if deep {
                let buf = &mut block_buf[..len as usize];
                match archive.decode_block(index, &entry, buf, &mut scratch) {
                    Ok(()) => {
                        report.blocks_decoded += 1;
                        source_hasher.update(buf);
                    }
                    Err(e) => {
                        report.push(where_(), e);
                        hash_complete = false;
                    }
                }
                progress(index + 1);
            }
        }
    }
    if expected != virtual_size {
        report.push("index", format!("blocks end at virtual offset {expected}, the source is {virtual_size} bytes"));
        hash_complete = false;
    }
    block_starts.insert(virtual_size);

    // Stored ranges: identical (deduplicated) or disjoint, never partly overlapping.
    stored.sort_unstable();
    stored.dedup();
    for pair in stored.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.0 < a.0 + a.1 {
            report.push(
                format!("{} at archive offset {}", b.2, b.0),
                format!("overlaps the {} at archive offset {} (+{} bytes)", a.2, a.0, a.1),
            );
        }
    }
    if stored.first().is_some_and(|s| s.0 < HEADER_SIZE as u64) {
        report.push("data region", "stored bytes overlap the header");
    }

    if deep && hash_complete && *source_hasher.finalize().as_bytes() != archive.source_hash() {
        report.push("footer source_hash", "the decoded source does not match the recorded BLAKE3");
    }

    check_manifest(archive, &block_starts, deep, report);
}

fn check_manifest<R: ReadAt>(archive: &Archive<R>, block_starts: &BTreeSet<u64>, deep: bool, report: &mut Report) {
    let manifest = match archive.manifest() {
        Ok(m) => m,
        Err(e) => {
            report.push("manifest", e);
            return;
        }
    };
    let mut names = BTreeSet::new();
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (i, t) in manifest.tensors.iter().enumerate() {
        report.tensors_checked += 1;
        let where_ = format!("tensor {i} '{}'", t.name);
        if !names.insert(t.name.as_str()) {
            report.push(&where_, "duplicate tensor name");
        }
        let bits = match t.ggml_type {
            Some(g) => dtype::ggml_type(g).map(|g| (u64::from(g.block_elements), u64::from(g.block_bytes) * 8)),
            None => dtype::safetensors_bits(&t.dtype).map(|b| (1, u64::from(b))),
        };
        let elements = t.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        match (bits, elements) {
            (Some((per_block, block_bits)), Some(n)) => {
                let want = (n / per_block).checked_mul(block_bits).map(|b| b / 8);
                if n % per_block != 0 || want != Some(t.length) {
                    report.push(
                        &where_,
                        format!("length {} does not match dtype {} and shape {:?}", t.length, t.dtype, t.shape),
                    );
                }
            }
            _ => report.push(&where_, format!("unknown dtype {} or overflowing shape", t.dtype)),
        }
        if t.length > 0 {
            if t.offset < manifest.source_header_length {
                report.push(&where_, "tensor overlaps the source header");
            }
            if !block_starts.contains(&t.offset) || !block_starts.contains(&(t.offset + t.length)) {
                report.push(&where_, "tensor does not start and end on block boundaries");
            }
            spans.push((t.offset, t.length, i));
        }
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].0 + w[0].1 {
            report.push(format!("tensor {}", w[1].2), format!("overlaps tensor {}", w[0].2));
        }
    }
    if manifest.source_format == source_format::RAW && !manifest.tensors.is_empty() {
        report.push("manifest", "a raw archive has a tensor table");
    }
    if deep {
        check_source_header(archive, &manifest, report);
    }
}

/// The archived source header, parsed again, must declare the manifest's tensors.
fn check_source_header<R: ReadAt>(archive: &Archive<R>, manifest: &crate::manifest::Manifest, report: &mut Report) {
    let mismatch = |report: &mut Report, e: &dyn core::fmt::Display| report.push("source header", e.to_string());
    let declared: Vec<(String, u64, u64)> = match manifest.source_format {
        source_format::RAW => return,
        source_format::GGUF => match archive.gguf_header() {
            Ok((_, h)) => h.tensors.into_iter().map(|t| (t.name, t.offset, t.length)).collect(),
            Err(e) => return mismatch(report, &e),
        },
        _ => match archive.source_header().and_then(|b| crate::safetensors::parse(&b, archive.virtual_size())) {
            Ok(h) => h.tensors.into_iter().map(|t| (t.name, t.offset, t.length)).collect(),
            Err(e) => return mismatch(report, &e),
        },
    };
    let mut recorded: Vec<(String, u64, u64)> =
        manifest.tensors.iter().map(|t| (t.name.clone(), t.offset, t.length)).collect();
    let mut declared = declared;
    declared.sort();
    recorded.sort();
    if declared != recorded {
        mismatch(report, &Error::invalid("tensor table", 0, "manifest differs from the archived source header"));
    }
}

/// Verify the archive file at `path` and, when it names a parent, its whole
/// chain: the chain must open (parents found and confirmed by identity),
/// the archive is verified with its ancestors attached, and every ancestor
/// is verified in turn; their problems name their file. `search` are extra
/// folders for moved parents; `progress` gets (blocks done, blocks in this
/// archive).
#[cfg(feature = "std")]
pub fn verify_file(
    path: &std::path::Path,
    deep: bool,
    search: &[std::path::PathBuf],
    progress: &dyn Fn(u64, u64),
) -> Report {
    let mut report = Report::default();
    let ancestors = verify_one(path, deep, search, &mut report, progress);
    // Each ancestor once (its own chain is the tail of this one).
    for ancestor in ancestors.iter().skip(1) {
        let mut sub = Report::default();
        verify_one(ancestor, deep, search, &mut sub, &|_, _| {});
        report.blocks_checked += sub.blocks_checked;
        report.blocks_decoded += sub.blocks_decoded;
        report.tensors_checked += sub.tensors_checked;
        for p in sub.problems {
            report
                .problems
                .push(Problem { location: format!("{}: {}", ancestor.display(), p.location), message: p.message });
        }
    }
    report
}

/// Verify one archive file with its ancestors attached (not the ancestors
/// themselves); returns the chain's paths, this archive first.
#[cfg(feature = "std")]
fn verify_one(
    path: &std::path::Path,
    deep: bool,
    search: &[std::path::PathBuf],
    report: &mut Report,
    progress: &dyn Fn(u64, u64),
) -> Vec<std::path::PathBuf> {
    let source = match crate::source::FileSource::open(path) {
        Ok(s) => s,
        Err(e) => {
            report.push("archive", e);
            return Vec::new();
        }
    };
    let archive = match Archive::open(&source) {
        Ok(a) => a,
        Err(e) => {
            report.push("archive", e);
            return Vec::new();
        }
    };
    if archive.parent_identity().is_none() {
        let blocks = archive.block_count();
        verify_open(&archive, deep, report, &|done| progress(done, blocks));
        return std::vec![path.to_path_buf()];
    }
    let chain = match crate::chain::open_chain(path, search) {
        Ok(chain) => chain,
        Err(e) => {
            report.push("parent chain", e);
            return Vec::new();
        }
    };
    let blocks = chain.archive.block_count();
    verify_open(&chain.archive, deep, report, &|done| progress(done, blocks));
    chain.paths
}
