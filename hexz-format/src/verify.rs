//! Full verification: walks header, footer, directory, every page and entry,
//! the manifest and (deep) every block, and reports every problem found.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::dtype;
use crate::error::try_zeroed;
use crate::layout::{SourceFormat, BLOCK_ENTRY_SIZE, HEADER_SIZE};
use crate::reader::{Archive, Workspace};
use crate::source::ReadAt;

/// One problem: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: "archive", "index", "block 17 (page 0, slot 17)", "tensor 3 'name'", ...
    pub location: String,
    /// What is wrong there.
    pub message: String,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every problem found, in the order met.
    pub problems: Vec<Problem>,
    /// Block entries whose fields and stored ranges were checked.
    pub blocks_checked: u64,
    /// Blocks decoded and checked against their BLAKE3 (deep verification only).
    pub blocks_decoded: u64,
    /// Tensor records checked: unique names, lengths that match dtype and
    /// shape, ranges inside the virtual space.
    pub tensors_checked: u64,
}

impl Report {
    /// Whether no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Record a problem at `location`.
    pub fn push(&mut self, location: impl Into<String>, err: impl ToString) {
        self.problems.push(Problem { location: location.into(), message: err.to_string() });
    }
}

/// Verify the archive in `src` on this thread. With `deep`, every block is
/// decoded and its BLAKE3 checked, and the whole source hash and the source
/// header are checked against the manifest. `progress` gets blocks done.
pub fn verify<R: ReadAt>(src: R, deep: bool, progress: &dyn Fn(u64)) -> Report {
    let mut report = Report::default();
    match Archive::open(src) {
        Ok(archive) => verify_open(&archive, deep, &mut report, progress),
        Err(e) => report.push("archive", e),
    }
    report
}

/// Verify an archive that is already open (its open-time checks passed):
/// every page and entry (one tolerant walk: a bad page is reported and the
/// walk goes on), stored ranges, the exact maxima in the footer, the
/// manifest; with `deep`, every block decoded on this thread.
pub fn verify_open<R: ReadAt>(archive: &Archive<R>, deep: bool, report: &mut Report, progress: &dyn Fn(u64)) {
    let footer = archive.footer();
    let mut block_starts: BTreeSet<u64> = BTreeSet::new();
    let mut stored: Vec<(u64, u64, &'static str)> = Vec::new();
    let (mut scratch, mut block_buf, mut page_buf) = match (
        Workspace::new(if deep { archive.scratch_size() } else { 0 }),
        try_zeroed(if deep { footer.max_block_length.get() as usize } else { 0 }, "block buffer"),
        try_zeroed(archive.page_bytes(), "index page"),
    ) {
        (Ok(s), Ok(b), Ok(p)) => (s, b, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return report.push("archive", e),
    };
    let mut source_hasher = archive.source_hasher();
    let mut complete = true;
    let (mut max_virtual, mut max_stored) = (0u32, 0u32);

    for p in 0..footer.page_count.get() {
        if let Ok(d) = archive.directory_entry(p) {
            stored.push((d.page_offset.get(), u64::from(d.entry_count.get()) * BLOCK_ENTRY_SIZE as u64, "index page"));
        }
    }
    for block in archive.all_blocks(&mut page_buf) {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                report.push("index", e);
                complete = false;
                continue;
            }
        };
        report.blocks_checked += 1;
        let e = &block.entry;
        max_virtual = max_virtual.max(e.virtual_length.get());
        max_stored = max_stored.max(e.stored_length.get());
        block_starts.insert(e.virtual_offset.get());
        if e.location == 0 {
            stored.push((e.stored_offset.get(), u64::from(e.stored_length.get()), "block"));
        }
        if deep {
            let buf = &mut block_buf[..e.virtual_length.get() as usize];
            match archive.decode_block(block.index, e, buf, &mut scratch) {
                Ok(()) => {
                    report.blocks_decoded += 1;
                    source_hasher.update(buf);
                }
                Err(err) => {
                    report.push(format!("block {} (page {}, slot {})", block.index, block.page, block.slot), err);
                    complete = false;
                }
            }
            progress(block.index + 1);
        }
    }
    block_starts.insert(archive.virtual_size());
    if complete && (max_virtual, max_stored) != (footer.max_block_length.get(), footer.max_stored_length.get()) {
        report.push(
            "footer",
            format!(
                "max_block_length {} / max_stored_length {} are not the largest over the entries ({max_virtual} / {max_stored})",
                footer.max_block_length.get(),
                footer.max_stored_length.get()
            ),
        );
    }

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

    if deep && complete && *source_hasher.finalize().as_bytes() != archive.source_hash() {
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
    // Names are unique within a file; a folder's files may share them
    // (checkpoint-500/ and checkpoint-1000/ hold the same tensors).
    let mut names = BTreeSet::new();
    let mut spans: Vec<(u64, u64, usize)> = Vec::new();
    for (i, t) in manifest.tensors.iter().enumerate() {
        report.tensors_checked += 1;
        let where_ = match t.file.and_then(|f| manifest.files.get(f as usize)) {
            Some(f) => format!("tensor {i} '{}' (file '{}')", t.name, f.path),
            None => format!("tensor {i} '{}'", t.name),
        };
        if !names.insert((t.file, t.name.as_str())) {
            report.push(
                &where_,
                if t.file.is_some() { "duplicate tensor name in its file" } else { "duplicate tensor name" },
            );
        }
        if let Some(g) = t.ggml_type.and_then(dtype::ggml_type) {
            if t.dtype != g.name {
                report
                    .push(&where_, format!("dtype {} disagrees with its GGML type id {} ({})", t.dtype, g.id, g.name));
            }
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
    if manifest.source_format == SourceFormat::Raw && !manifest.tensors.is_empty() {
        report.push("manifest", "a raw archive has a tensor table");
    }
    if deep {
        check_source_header(archive, &manifest, report);
    }
}

/// A tensor as a source header declares it: name, offset, length, dtype,
/// GGML type, dims.
type Declared = (String, u64, u64, String, Option<u32>, Vec<u64>);

/// The archived source header, parsed again, must declare the manifest's
/// tensors (names, offsets, lengths, dtypes, GGML types and shapes) and
/// have the recorded length; for a folder, each safetensors or GGUF file's
/// own header those of its file, and a raw file none.
pub fn check_source_header<R: ReadAt>(archive: &Archive<R>, manifest: &crate::manifest::Manifest, report: &mut Report) {
    let recorded = |file: Option<u32>, base: u64| -> Vec<Declared> {
        manifest
            .tensors
            .iter()
            .filter(|t| t.file == file)
            .map(|t| {
                let offset = t.offset.wrapping_sub(base);
                (t.name.clone(), offset, t.length, t.dtype.clone(), t.ggml_type, t.shape.clone())
            })
            .collect()
    };
    if manifest.source_format == SourceFormat::Folder {
        for (i, f) in manifest.files.iter().enumerate() {
            if f.kind != crate::layout::FileKind::File {
                continue;
            }
            let span = Span { offset: f.offset, length: f.length, header_length: f.source_header_length };
            let where_ = format!("file '{}': source header", f.path);
            check_one_header(archive, f.source_format, span, recorded(Some(i as u32), f.offset), &where_, report);
        }
    } else {
        let span = Span { offset: 0, length: archive.virtual_size(), header_length: manifest.source_header_length };
        check_one_header(archive, manifest.source_format, span, recorded(None, 0), "source header", report);
    }
}

/// Where a source file is in the virtual space, and its header's recorded length.
struct Span {
    offset: u64,
    length: u64,
    header_length: u64,
}

fn check_one_header<R: ReadAt>(
    archive: &Archive<R>,
    format: SourceFormat,
    span: Span,
    mut recorded: Vec<Declared>,
    where_: &str,
    report: &mut Report,
) {
    let read = || archive.read_vec(span.offset, span.header_length);
    let parsed: crate::Result<(u64, Vec<Declared>)> = match format {
        SourceFormat::Raw | SourceFormat::Folder => Ok((0, Vec::new())),
        SourceFormat::Gguf => read().and_then(|b| crate::gguf::parse(&b, span.length)).map(|h| {
            let tensors = h
                .tensors
                .into_iter()
                .map(|t| {
                    let name = dtype::ggml_type(t.ggml_type).map_or("?", |g| g.name);
                    (t.name, t.offset, t.length, String::from(name), Some(t.ggml_type), t.dims)
                })
                .collect();
            (h.data_offset.min(span.length), tensors)
        }),
        SourceFormat::Safetensors => read().and_then(|b| crate::safetensors::parse(&b, span.length)).map(|h| {
            let tensors = h.tensors.into_iter().map(|t| (t.name, t.offset, t.length, t.dtype, None, t.shape)).collect();
            (h.header_length, tensors)
        }),
    };
    let (header_length, mut declared) = match parsed {
        Ok(p) => p,
        Err(e) => return report.push(where_, e),
    };
    if header_length != span.header_length {
        report.push(where_, format!("is {header_length} bytes as parsed; the manifest records {}", span.header_length));
    }
    declared.sort();
    recorded.sort();
    if declared != recorded {
        // Name the first tensor that differs.
        let differs = declared
            .iter()
            .zip(&recorded)
            .find(|(d, r)| d != r)
            .map(|(d, r)| (d.0.as_str(), r.0.as_str()))
            .or_else(|| declared.get(recorded.len()).map(|d| (d.0.as_str(), "")))
            .or_else(|| recorded.get(declared.len()).map(|r| ("", r.0.as_str())));
        let detail = match differs {
            Some((d, r)) if d == r => format!(" (tensor '{d}': name, offset, length, dtype, GGML type or shape)"),
            Some((d, "")) => format!(" (tensor '{d}' is not in the manifest)"),
            Some(("", r)) => format!(" (tensor '{r}' is not in the header)"),
            Some((d, r)) => format!(" (header has '{d}' where the manifest has '{r}')"),
            None => String::new(),
        };
        report.push(where_, format!("tensor table: manifest differs from the archived source header{detail}"));
    }
}
