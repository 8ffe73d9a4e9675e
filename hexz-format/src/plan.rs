//! What a source file is: detect safetensors, GGUF or raw by content,
//! parse the header, and lay the file out as segments (header, tensors,
//! the gaps between them); a folder's plan lays its files end to end.
//! The [`pipeline`](crate::pipeline) cuts segments into blocks.

use alloc::string::String;
use alloc::vec::Vec;

use crate::dtype;
use crate::error::{try_zeroed, Error, Result};
use crate::layout::{FileKind, SourceFormat, StorageKind};
use crate::manifest::{valid_path, FileInfo, TensorInfo};
use crate::source::ReadAt;
use crate::{gguf, safetensors};

/// A contiguous run of the source stored with one element width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts in the source (the virtual space).
    pub start: u64,
    /// Bytes in the segment.
    pub len: u64,
    /// Grouping stride: the element width of floats, the block size of
    /// quantized GGUF types, 1 for headers, gaps and raw bytes.
    pub width: u8,
    /// Quantized GGML blocks with a known field layout
    /// ([`dtype::ggml_fields`]): their type, for the `fields` filter.
    pub fields: Option<u32>,
    /// IEEE floats with an 8-bit exponent (BF16, F32), for `float-ans`.
    pub floats: bool,
    /// Index into the plan's tensors, when this segment is one.
    pub tensor: Option<usize>,
    /// Bytes with no structure to follow (a raw file): a content-defined
    /// chunker may cut them where the content says, so that an insertion
    /// shifts no more than a block or two.
    pub content_defined: bool,
}

impl Segment {
    /// Bytes with no element structure (headers, gaps, raw files): width
    /// 1, no filter hints, no tensor.
    pub fn unstructured(start: u64, len: u64, content_defined: bool) -> Self {
        Segment { start, len, width: 1, fields: None, floats: false, tensor: None, content_defined }
    }
}

/// What the source file is, and how to cut it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What the source is, detected from its content (or raw when asked).
    pub format: SourceFormat,
    /// The source header is `[0, header_length)`.
    pub header_length: u64,
    /// In source order (GGUF tensor-info order; safetensors data order).
    pub tensors: Vec<TensorInfo>,
    /// In file order, covering `[0, source length)` exactly.
    pub segments: Vec<Segment>,
    /// Folder archives: every file and directory, sorted by path (empty for one file).
    pub files: Vec<FileInfo>,
}

/// One entry of a folder to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderEntry {
    /// Relative path, `/`-separated.
    pub path: String,
    /// A regular file or a directory.
    pub kind: FileKind,
    /// Bytes of a regular file; ignored for a directory.
    pub length: u64,
    /// Permission bits.
    pub mode: u32,
    /// Nanoseconds since the Unix epoch; 0 when unknown.
    pub mtime_ns: i64,
}

impl Plan {
    /// The plan of a folder: `entries` sorted by path, each regular file
    /// with the plan of its own bytes (offsets from the file's start). The
    /// files are laid end to end in that order.
    pub fn folder(entries: Vec<(FolderEntry, Option<Plan>)>) -> Result<Plan> {
        let mut out = Plan {
            format: SourceFormat::Folder,
            header_length: 0,
            tensors: Vec::new(),
            segments: Vec::new(),
            files: Vec::new(),
        };
        let mut offset = 0u64;
        let mut previous: Option<&str> = None;
        for (index, (entry, file_plan)) in entries.iter().enumerate() {
            if !valid_path(&entry.path) {
                return Err(Error::InvalidArgument("a folder entry has an unsafe path"));
            }
            if previous.is_some_and(|p| p.as_bytes() >= entry.path.as_bytes()) {
                return Err(Error::InvalidArgument("folder entries must be sorted by path, without duplicates"));
            }
            previous = Some(&entry.path);
            let file = u32::try_from(index).map_err(|_| Error::InvalidArgument("too many files"))?;
            let (format, header_length) = match (entry.kind, file_plan) {
                (FileKind::Directory, None) => (SourceFormat::Raw, 0),
                (FileKind::File, Some(p)) => {
                    let first = out.tensors.len();
                    for t in &p.tensors {
                        let mut t = t.clone();
                        t.offset += offset;
                        t.file = Some(file);
                        out.tensors.push(t);
                    }
                    for seg in &p.segments {
                        let mut seg = *seg;
                        seg.start += offset;
                        seg.tensor = seg.tensor.map(|t| t + first);
                        out.segments.push(seg);
                    }
                    (p.format, p.header_length)
                }
                _ => return Err(Error::InvalidArgument("a folder file needs a plan, a directory none")),
            };
            out.files.push(FileInfo {
                path: entry.path.clone(),
                kind: entry.kind,
                offset,
                length: if entry.kind == FileKind::File { entry.length } else { 0 },
                mode: entry.mode & 0o7777,
                mtime_ns: entry.mtime_ns,
                source_format: format,
                source_header_length: header_length,
            });
            if entry.kind == FileKind::File {
                offset += entry.length;
            }
        }
        Ok(out)
    }

    /// Total bytes of the virtual space the plan lays out.
    pub fn virtual_size(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.start + s.len)
    }
}

fn read_prefix<R: ReadAt + ?Sized>(src: &R, len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len.min(src.len())).map_err(|_| Error::InvalidArgument("header too large"))?;
    let mut buf = try_zeroed(n, "source header")?;
    src.read_exact_at(0, &mut buf)?;
    Ok(buf)
}

/// Detect the source's format by content (unless `raw`) and plan its segments.
pub fn plan<R: ReadAt + ?Sized>(src: &R, raw: bool) -> Result<Plan> {
    let file_len = src.len();
    let probe = read_prefix(src, 64)?;
    let (format, header_length, mut tensors) = if raw {
        (SourceFormat::Raw, 0, Vec::new())
    } else if gguf::looks_like_gguf(&probe) {
        // The header's length is only known once parsed: grow the prefix.
        let mut want = 1u64 << 20;
        let header = loop {
            let prefix = read_prefix(src, want)?;
            match gguf::parse(&prefix, file_len) {
                Err(Error::Truncated { .. }) if (prefix.len() as u64) < file_len => want = want.saturating_mul(4),
                // Truncated with the whole file in hand: the header claims more than there is.
                Err(Error::Truncated { what, offset, .. }) => {
                    return Err(Error::Source {
                        format: "gguf",
                        field: what,
                        offset,
                        reason: "extends past the end of the file",
                    })
                }
                other => break other?,
            }
        };
        // The parser refuses GGML types it does not know, so every dtype
        // written is a name of spec section 11.2 (never `?`).
        let tensors = header
            .tensors
            .iter()
            .map(|t| {
                let known = dtype::ggml_type(t.ggml_type).ok_or(Error::Source {
                    format: "gguf",
                    field: "tensor type",
                    offset: 0,
                    reason: "unknown ggml type",
                })?;
                Ok(TensorInfo {
                    name: t.name.clone(),
                    dtype: String::from(known.name),
                    ggml_type: Some(t.ggml_type),
                    shape: t.dims.clone(),
                    offset: t.offset,
                    length: t.length,
                    storage_kind: StorageKind::Stored,
                    file: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        (SourceFormat::Gguf, header.data_offset.min(file_len), tensors)
    } else if safetensors::looks_like_safetensors(&probe, file_len) {
        let header_length = safetensors::header_length(&probe, file_len)?;
        let header = safetensors::parse(&read_prefix(src, header_length)?, file_len)?;
        let tensors = header
            .tensors
            .into_iter()
            .map(|t| TensorInfo {
                name: t.name,
                dtype: t.dtype,
                ggml_type: None,
                shape: t.shape,
                offset: t.offset,
                length: t.length,
                storage_kind: StorageKind::Stored,
                file: None,
            })
            .collect();
        (SourceFormat::Safetensors, header_length, tensors)
    } else {
        (SourceFormat::Raw, 0, Vec::new())
    };

    // Segments in file order: header, tensors, and the gaps between them.
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].length > 0).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    let mut segments = Vec::new();
    let content_defined = format == SourceFormat::Raw;
    let push_gap = |segments: &mut Vec<Segment>, from: u64, to: u64| {
        if to > from {
            segments.push(Segment::unstructured(from, to - from, content_defined));
        }
    };
    push_gap(&mut segments, 0, header_length);
    let mut pos = header_length;
    for i in order {
        let t = &tensors[i];
        if t.offset < pos {
            return Err(Error::Source {
                format: "source",
                field: "tensor offset",
                offset: t.offset,
                reason: "tensor overlaps the header or another tensor",
            });
        }
        push_gap(&mut segments, pos, t.offset);
        let width = match t.ggml_type {
            Some(g) => dtype::ggml_group_width(g),
            None => dtype::float_width(&t.dtype),
        };
        let fields = t.ggml_type.filter(|&g| dtype::ggml_fields(g).is_some());
        segments.push(Segment {
            start: t.offset,
            len: t.length,
            width,
            fields,
            floats: t.ggml_type.is_none_or(|g| matches!(g, 0 | 30)) && dtype::has_8bit_exponent(&t.dtype),
            tensor: Some(i),
            content_defined: false,
        });
        pos = t.offset + t.length;
    }
    push_gap(&mut segments, pos, file_len);
    for t in &mut tensors {
        if t.length == 0 {
            t.storage_kind = StorageKind::Empty;
        }
    }
    Ok(Plan { format, header_length, tensors, segments, files: Vec::new() })
}
