//! Writing an archive: detect the source format, cut blocks at tensor
//! boundaries, hash and compress them on worker threads, deduplicate, and
//! write index pages, directory, manifest and footer.
//!
//! The source is streamed: peak memory is a few blocks per worker plus the
//! index. Files are written under a temporary name and renamed into place
//! only when complete.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::string::String;
use std::sync::mpsc;
use std::vec::Vec;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::codec::{self, BlockEncoder, Compression};
use crate::dtype;
use crate::error::{Error, Result};
use crate::layout::{
    codec_id, filter_id, limits, short_checksum, source_format, storage_kind, BlockEntry, DirectoryEntry, FileHeader,
    Footer, FOOTER_MAGIC, FOOTER_SIZE, HEADER_MAGIC, HEADER_SIZE, VERSION_MAJOR, VERSION_MINOR,
};
use crate::manifest::{Manifest, MetadataValue, ParentRef, TensorInfo};
use crate::reader::Archive;
use crate::source::ReadAt;
use crate::{gguf, safetensors};

/// Default block size: 1 MiB, chosen by the sweep in `bench/bench.py --block-sizes` (README, Measured).
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Block entries per index page written.
pub const DEFAULT_ENTRIES_PER_PAGE: u32 = 128;

/// How to store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub compression: Compression,
    pub block_size: u32,
    pub metadata: Vec<(String, MetadataValue)>,
    /// Worker threads for hashing and compression; 0 means one per core.
    pub threads: usize,
    pub entries_per_page: u32,
    /// Store as a plain file: do not parse safetensors or GGUF headers.
    pub raw: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            compression: Compression::DEFAULT,
            block_size: DEFAULT_BLOCK_SIZE,
            metadata: Vec::new(),
            threads: 0,
            entries_per_page: DEFAULT_ENTRIES_PER_PAGE,
            raw: false,
        }
    }
}

/// What a store did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreReport {
    pub source_format: u8,
    pub source_size: u64,
    pub archive_size: u64,
    pub blocks: u64,
    /// Blocks whose bytes were written (not deduplicated).
    pub stored_blocks: u64,
    /// Blocks that reference identical bytes stored earlier.
    pub deduplicated_blocks: u64,
    /// Decoded bytes saved by deduplication.
    pub deduplicated_bytes: u64,
    pub tensors: usize,
    pub source_hash: [u8; 32],
    /// Blocks referenced from the parent chain (no bytes stored).
    pub parent_blocks: u64,
    /// Decoded bytes those blocks hold.
    pub parent_bytes: u64,
    /// Blocks stored as deltas against the parent.
    pub delta_blocks: u64,
    /// Tensors whose dtype or shape differs from the base's, stored whole.
    pub warnings: Vec<String>,
}

/// A contiguous run of the source stored with one element width.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: u64,
    len: u64,
    width: u8,
    /// Index into the manifest's tensors, when this segment is one.
    tensor: Option<usize>,
}

/// What the source file is, and how to cut it.
struct Plan {
    format: u8,
    header_length: u64,
    tensors: Vec<TensorInfo>,
    segments: Vec<Segment>,
}

fn read_prefix<R: ReadAt + ?Sized>(src: &R, len: u64) -> Result<Vec<u8>> {
    let n = usize::try_from(len.min(src.len())).map_err(|_| Error::InvalidArgument("header too large"))?;
    let mut buf = std::vec![0u8; n];
    src.read_exact_at(0, &mut buf)?;
    Ok(buf)
}

fn plan<R: ReadAt + ?Sized>(src: &R, raw: bool) -> Result<Plan> {
    let file_len = src.len();
    let probe = read_prefix(src, 64)?;
    let (format, header_length, mut tensors) = if raw {
        (source_format::RAW, 0, Vec::new())
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
        let tensors = header
            .tensors
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                dtype: String::from(dtype::ggml_type(t.ggml_type).map_or("?", |g| g.name)),
                ggml_type: Some(t.ggml_type),
                shape: t.dims.clone(),
                offset: t.offset,
                length: t.length,
                storage_kind: storage_kind::STORED,
            })
            .collect();
        (source_format::GGUF, header.data_offset.min(file_len), tensors)
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
                storage_kind: storage_kind::STORED,
            })
            .collect();
        (source_format::SAFETENSORS, header_length, tensors)
    } else {
        (source_format::RAW, 0, Vec::new())
    };

    // Segments in file order: header, tensors, and the gaps between them.
    let mut order: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].length > 0).collect();
    order.sort_by_key(|&i| tensors[i].offset);
    let mut segments = Vec::new();
    let mut pos = 0u64;
    let push_gap = |segments: &mut Vec<Segment>, from: u64, to: u64| {
        if to > from {
            segments.push(Segment { start: from, len: to - from, width: 1, tensor: None });
        }
    };
    if header_length > 0 {
        push_gap(&mut segments, 0, header_length);
        pos = header_length;
    }
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
        segments.push(Segment { start: t.offset, len: t.length, width, tensor: Some(i) });
        pos = t.offset + t.length;
    }
    push_gap(&mut segments, pos, file_len);
    for t in &mut tensors {
        if t.length == 0 {
            t.storage_kind = storage_kind::EMPTY;
        }
    }
    Ok(Plan { format, header_length, tensors, segments })
}

/// A tensor's index and the block range [first, end) it was cut into.
type TensorBlocks = (usize, u64, u64);

/// The parent to store against: the open archive (with its own ancestors
/// attached) and the path hint to record, relative to the child's folder.
pub struct ParentSpec<'a, P> {
    pub archive: &'a Archive<P>,
    pub hint: String,
}

struct Job {
    index: u64,
    offset: u64,
    width: u8,
    /// Virtual offset in the parent of this block's counterpart, for deltas.
    base: Option<u64>,
    data: Vec<u8>,
    filter: FilterChoice,
}

/// Blocks of one tensor are alike, so the first of every
/// `BLOCKS_PER_CHOICE` tries every filter and the rest use its choice
/// (gemma store: 22% less CPU, archive 0.02% larger). Deterministic: a follower waits for
/// its leader, which the FIFO job queue always hands out first.
const BLOCKS_PER_CHOICE: u64 = 8;

enum FilterChoice {
    /// Try every candidate and tell the followers.
    Lead(std::sync::Arc<Decision>),
    /// Use the leader's choice.
    Follow(std::sync::Arc<Decision>),
}

/// A leader's filter: unset while pending, then `Some(filter)`, or `None`
/// when the leader found nothing to pass on (stored raw, taken from the
/// parent, or failed) and followers try every candidate.
#[derive(Default)]
struct Decision {
    filter: std::sync::Mutex<Option<Option<u8>>>,
    ready: std::sync::Condvar,
}

impl Decision {
    fn set(&self, filter: Option<u8>) {
        let mut slot = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(filter);
        self.ready.notify_all();
    }

    fn wait(&self) -> Option<u8> {
        let mut slot = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(filter) = *slot {
                return filter;
            }
            slot = self.ready.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Releases a leader's followers even when the leader returns early.
struct LeadGuard(Option<std::sync::Arc<Decision>>);

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            d.set(None);
        }
    }
}

struct Done {
    index: u64,
    offset: u64,
    length: u32,
    width: u8,
    hash: [u8; 32],
    codec: u8,
    filter: u8,
    delta_base: u64,
    /// Empty when the parent chain already holds these bytes.
    bytes: Vec<u8>,
}

/// Store `src` into `out` (written sequentially from its current position,
/// which must be the start of the archive). `progress` gets source bytes done.
pub fn store<R, W>(src: &R, out: &mut W, opts: &StoreOptions, progress: &(dyn Fn(u64) + Sync)) -> Result<StoreReport>
where
    R: ReadAt + Sync + ?Sized,
    W: Write,
{
    store_impl::<R, W, &[u8]>(src, out, opts, None, progress)
}

/// Store `src` as a child of `parent`: tensors identical to the parent's
/// are referenced, changed ones (same dtype and shape) are stored as XOR or
/// SUB deltas where smaller, and any block whose bytes the chain already
/// holds is referenced, not stored.
pub fn store_delta<R, W, P>(
    src: &R,
    out: &mut W,
    opts: &StoreOptions,
    parent: ParentSpec<'_, P>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StoreReport>
where
    R: ReadAt + Sync + ?Sized,
    W: Write,
    P: ReadAt + Sync,
{
    store_impl(src, out, opts, Some(parent), progress)
}

fn store_impl<R, W, P>(
    src: &R,
    out: &mut W,
    opts: &StoreOptions,
    parent: Option<ParentSpec<'_, P>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StoreReport>
where
    R: ReadAt + Sync + ?Sized,
    W: Write,
    P: ReadAt + Sync,
{
    if opts.block_size < MIN_BLOCK_SIZE || opts.block_size > limits::MAX_BLOCK_LENGTH {
        return Err(Error::InvalidArgument("block size must be between 4 KiB and 64 MiB"));
    }
    if opts.entries_per_page == 0 || opts.entries_per_page > limits::MAX_ENTRIES_PER_PAGE {
        return Err(Error::InvalidArgument("entries per page must be 1 to 4096"));
    }
    for (_, value) in &opts.metadata {
        if let MetadataValue::Json(text) = value {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|_| Error::InvalidArgument("metadata value is not valid JSON"))?;
        }
    }
    let plan = plan(src, opts.raw)?;
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    BlockEncoder::new(opts.compression)?;
    let mut report = StoreReport { source_format: plan.format, source_size: src.len(), ..StoreReport::default() };

    // What the parent chain offers: its blocks by hash, and per tensor the
    // parent offset to delta against.
    let parent_archive = parent.as_ref().map(|p| p.archive);
    let mut chain_blocks: HashMap<[u8; 32], BlockEntry> = HashMap::new();
    let mut bases: Vec<Option<u64>> = std::vec![None; plan.tensors.len()];
    if let Some(p) = parent_archive {
        if p.chain_len() >= usize::from(limits::MAX_CHAIN_DEPTH) {
            return Err(Error::ChainTooDeep { limit: limits::MAX_CHAIN_DEPTH });
        }
        for i in 0..p.block_count() {
            let e = p.block(i)?;
            if e.location < limits::MAX_CHAIN_DEPTH - 1 {
                chain_blocks.entry(e.hash).or_insert(e);
            }
        }
        let parent_tensors: HashMap<String, TensorInfo> =
            p.manifest()?.tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        for (i, t) in plan.tensors.iter().enumerate() {
            let Some(b) = parent_tensors.get(&t.name) else { continue };
            if b.dtype == t.dtype && b.shape == t.shape && b.ggml_type == t.ggml_type && b.length == t.length {
                bases[i] = Some(b.offset);
            } else {
                report.warnings.push(std::format!(
                    "tensor {}: {} {:?} in this file, {} {:?} in the base; stored whole",
                    t.name,
                    t.dtype,
                    t.shape,
                    b.dtype,
                    b.shape
                ));
            }
        }
    }

    let mut sink = CountingWriter { inner: out, written: 0 };
    sink.write_all(file_header().as_bytes())?;

    let mut entries: Vec<BlockEntry> = Vec::new();
    let mut deduplicated: Vec<bool> = Vec::new();
    let mut tensor_blocks: Vec<TensorBlocks> = Vec::new();
    let mut first_location: HashMap<[u8; 32], BlockEntry> = HashMap::new();
    let mut max_block = 0u32;
    let mut max_stored = 0u32;

    let block_size = u64::from(opts.block_size);
    let chain_blocks = &chain_blocks;
    let bases = &bases;
    let source_hash = std::thread::scope(|scope| -> Result<[u8; 32]> {
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 2);
        let job_rx = std::sync::Arc::new(std::sync::Mutex::new(job_rx));
        let (done_tx, done_rx) = mpsc::sync_channel::<Result<Done>>(threads * 2);
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            let compression = opts.compression;
            scope.spawn(move || {
                let encoded = (|| -> Result<()> {
                    let mut encoder = BlockEncoder::new(compression)?;
                    let mut workspace = parent_archive.map(|p| p.new_scratch());
                    let mut base_buf = Vec::new();
                    loop {
                        let job = match job_rx.lock().map(|rx| rx.recv()) {
                            Ok(Ok(job)) => job,
                            _ => return Ok(()),
                        };
                        let (lead, follow) = match job.filter {
                            FilterChoice::Lead(d) => (LeadGuard(Some(d)), None),
                            FilterChoice::Follow(d) => (LeadGuard(None), d.wait()),
                        };
                        let hash = *blake3::hash(&job.data).as_bytes();
                        let mut done = Done {
                            index: job.index,
                            offset: job.offset,
                            length: job.data.len() as u32,
                            width: job.width,
                            hash,
                            codec: codec_id::NONE,
                            filter: filter_id::NONE,
                            delta_base: 0,
                            bytes: Vec::new(),
                        };
                        if !chain_blocks.contains_key(&hash) {
                            match (job.base, parent_archive, workspace.as_mut()) {
                                (Some(base), Some(p), Some(ws)) => {
                                    base_buf.resize(job.data.len(), 0);
                                    p.read_at(base, &mut base_buf, ws)?;
                                    let e = match follow {
                                        Some(f) => encoder.encode_as(&job.data, &base_buf, job.width, f),
                                        None => encoder.encode_with_base(&job.data, &base_buf, job.width),
                                    };
                                    done.codec = e.codec;
                                    done.filter = e.filter;
                                    done.bytes = e.bytes.to_vec();
                                    if filter_id::is_delta(e.filter) {
                                        done.width = codec::delta_width(usize::from(job.width));
                                        done.delta_base = base;
                                    }
                                }
                                _ => {
                                    let e = match follow {
                                        Some(f) => encoder.encode_as(&job.data, &[], job.width, f),
                                        None => encoder.encode(&job.data, job.width),
                                    };
                                    done.codec = e.codec;
                                    done.filter = e.filter;
                                    done.bytes = e.bytes.to_vec();
                                }
                            }
                        }
                        if let Some(d) = &lead.0 {
                            d.set((done.codec != codec_id::NONE).then_some(done.filter));
                        }
                        drop(lead);
                        if done_tx.send(Ok(done)).is_err() {
                            return Ok(());
                        }
                    }
                })();
                if let Err(e) = encoded {
                    let _ = done_tx.send(Err(e));
                }
            });
        }
        drop(done_tx);

        // Reader: walks the segments in order, hashing the whole source as it goes.
        let segments = &plan.segments;
        let reader = scope.spawn(move || -> Result<([u8; 32], Vec<TensorBlocks>)> {
            let mut source_hasher = blake3::Hasher::new();
            let mut index = 0u64;
            let mut ranges = Vec::new();
            for seg in segments {
                let first = index;
                let mut pos = seg.start;
                let end = seg.start + seg.len;
                let base_start = seg.tensor.and_then(|t| bases[t]);
                // Blocks hold whole elements so grouping keeps its phase across blocks.
                let step = (block_size / u64::from(seg.width)).max(1) * u64::from(seg.width);
                let mut decision = std::sync::Arc::new(Decision::default());
                while pos < end {
                    let n = (end - pos).min(step) as usize;
                    let mut data = std::vec![0u8; n];
                    src.read_exact_at(pos, &mut data)?;
                    source_hasher.update(&data);
                    let base = base_start.map(|b| b + (pos - seg.start));
                    let filter = if (index - first).is_multiple_of(BLOCKS_PER_CHOICE) {
                        decision = std::sync::Arc::new(Decision::default());
                        FilterChoice::Lead(decision.clone())
                    } else {
                        FilterChoice::Follow(decision.clone())
                    };
                    if job_tx.send(Job { index, offset: pos, width: seg.width, base, data, filter }).is_err() {
                        return Err(Error::InvalidArgument("store workers stopped"));
                    }
                    index += 1;
                    pos += n as u64;
                }
                if let Some(t) = seg.tensor {
                    ranges.push((t, first, index));
                }
            }
            Ok((*source_hasher.finalize().as_bytes(), ranges))
        });

        // Writer: reorder results by block index, reference or deduplicate, write.
        let mut pending: std::collections::BTreeMap<u64, Done> = std::collections::BTreeMap::new();
        let mut next = 0u64;
        let mut failure: Option<Error> = None;
        for done in done_rx.iter() {
            let done = match done {
                Ok(d) => d,
                Err(e) => {
                    failure.get_or_insert(e);
                    break;
                }
            };
            pending.insert(done.index, done);
            while let Some(done) = pending.remove(&next) {
                next += 1;
                max_block = max_block.max(done.length);
                let mut is_dup = false;
                let mut entry = if let Some(e) = chain_blocks.get(&done.hash) {
                    report.parent_blocks += 1;
                    report.parent_bytes += u64::from(done.length);
                    BlockEntry { location: e.location + 1, ..*e }
                } else if let Some(e) = first_location.get(&done.hash) {
                    is_dup = true;
                    report.deduplicated_blocks += 1;
                    report.deduplicated_bytes += u64::from(done.length);
                    *e
                } else {
                    let stored_offset = sink.written;
                    if let Err(e) = sink.write_all(&done.bytes) {
                        failure.get_or_insert(e);
                        break;
                    }
                    report.stored_blocks += 1;
                    if filter_id::is_delta(done.filter) {
                        report.delta_blocks += 1;
                    }
                    let width = if done.filter == filter_id::NONE { 1 } else { done.width };
                    let e = block_entry(
                        done.offset,
                        done.length,
                        stored_offset,
                        done.bytes.len() as u32,
                        done.codec,
                        done.filter,
                        width,
                        done.hash,
                    );
                    let e = BlockEntry { delta_base_offset: U64::new(done.delta_base), ..e };
                    first_location.insert(done.hash, e);
                    e
                };
                entry.virtual_offset = U64::new(done.offset);
                max_stored = max_stored.max(entry.stored_length.get());
                deduplicated.push(is_dup);
                entries.push(entry);
                progress(done.offset + u64::from(done.length));
            }
            if failure.is_some() {
                break;
            }
        }
        drop(done_rx);
        let read = reader.join().map_err(|_| Error::InvalidArgument("store reader panicked"))?;
        if let Some(e) = failure {
            return Err(e);
        }
        let (hash, ranges) = read?;
        if next != entries.len() as u64 || !pending.is_empty() {
            return Err(Error::InvalidArgument("store pipeline lost blocks"));
        }
        tensor_blocks = ranges;
        Ok(hash)
    })?;

    // Per-tensor storage kind, from its blocks.
    let mut tensors = plan.tensors;
    for (t, first, end) in tensor_blocks {
        let blocks = &entries[first as usize..end as usize];
        let dups = &deduplicated[first as usize..end as usize];
        tensors[t].storage_kind = if blocks.is_empty() {
            storage_kind::EMPTY
        } else if blocks.iter().any(|e| filter_id::is_delta(e.filter)) {
            storage_kind::DELTA
        } else if blocks.iter().all(|e| e.location > 0) {
            storage_kind::PARENT
        } else if dups.iter().all(|&d| d) {
            storage_kind::DEDUPLICATED
        } else {
            storage_kind::STORED
        };
    }

    // Index pages, then directory, manifest, footer.
    let epp = opts.entries_per_page as usize;
    let mut directory = Vec::new();
    for page in entries.chunks(epp) {
        let page_offset = sink.written;
        let mut bytes = Vec::with_capacity(page.len() * crate::layout::BLOCK_ENTRY_SIZE);
        for e in page {
            bytes.extend_from_slice(e.as_bytes());
        }
        sink.write_all(&bytes)?;
        let entry = DirectoryEntry {
            first_virtual_offset: page[0].virtual_offset,
            page_offset: U64::new(page_offset),
            entry_count: U32::new(page.len() as u32),
            reserved: [0; 4],
            page_hash: *blake3::hash(&bytes).as_bytes(),
        };
        directory.extend_from_slice(entry.as_bytes());
    }
    let directory_offset = sink.written;
    sink.write_all(&directory)?;
    report.tensors = tensors.len();
    let manifest = Manifest {
        source_format: plan.format,
        source_header_length: plan.header_length,
        tensors,
        metadata: opts.metadata.clone(),
        parent: parent.map(|p| ParentRef { identity: p.archive.identity(), hint: p.hint }),
    }
    .encode()?;
    let manifest_offset = sink.written;
    sink.write_all(&manifest)?;
    let mut footer = Footer {
        magic: FOOTER_MAGIC,
        virtual_size: U64::new(src.len()),
        block_count: U64::new(entries.len() as u64),
        directory_offset: U64::new(directory_offset),
        page_count: U32::new(entries.len().div_ceil(epp) as u32),
        entries_per_page: U32::new(opts.entries_per_page),
        manifest_offset: U64::new(manifest_offset),
        manifest_length: U64::new(manifest.len() as u64),
        max_block_length: U32::new(max_block),
        max_stored_length: U32::new(max_stored),
        flags: U64::new(0),
        source_hash,
        directory_hash: *blake3::hash(&directory).as_bytes(),
        manifest_hash: *blake3::hash(&manifest).as_bytes(),
        reserved: [0; 16],
        checksum: U64::new(0),
    };
    footer.checksum = U64::new(short_checksum(&footer.as_bytes()[..FOOTER_SIZE - 8]));
    sink.write_all(footer.as_bytes())?;
    sink.inner.flush().map_err(|e| Error::from_io(sink.written, &e))?;
    report.archive_size = sink.written;
    report.blocks = entries.len() as u64;
    report.source_hash = source_hash;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn block_entry(
    offset: u64,
    length: u32,
    stored_offset: u64,
    stored_length: u32,
    codec: u8,
    filter: u8,
    width: u8,
    hash: [u8; 32],
) -> BlockEntry {
    BlockEntry {
        virtual_offset: U64::new(offset),
        stored_offset: U64::new(stored_offset),
        delta_base_offset: U64::new(0),
        virtual_length: U32::new(length),
        stored_length: U32::new(stored_length),
        codec,
        filter,
        element_width: if codec == codec_id::NONE { 1 } else { width },
        location: 0,
        reserved: [0; 4],
        hash,
    }
}

/// The fixed header every version-1 archive starts with.
pub fn file_header() -> FileHeader {
    let mut header = FileHeader {
        magic: HEADER_MAGIC,
        version_major: U16::new(VERSION_MAJOR),
        version_minor: U16::new(VERSION_MINOR),
        header_size: U32::new(HEADER_SIZE as u32),
        flags: U64::new(0),
        reserved: [0; 32],
        checksum: U64::new(0),
    };
    header.checksum = U64::new(short_checksum(&header.as_bytes()[..HEADER_SIZE - 8]));
    header
}

struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<W: Write> CountingWriter<'_, W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes).map_err(|e| Error::from_io(self.written, &e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// A file being written under a temporary name next to its destination;
/// removed on drop unless [`commit`](Self::commit) renamed it into place.
pub struct TempFile {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl TempFile {
    /// Create a temporary file in the directory of `dst`, first removing
    /// temporaries for `dst` left by writers that were killed.
    pub fn new(dst: &Path) -> std::io::Result<Self> {
        let dir = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        remove_stale_temporaries(dir, &name);
        for attempt in 0..100u32 {
            let path = dir.join(std::format!(".{name}.hexz-tmp-{}-{attempt}", std::process::id()));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok(TempFile { path, file: Some(file) }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::AlreadyExists, "no free temporary name"))
    }

    /// The open file.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("temporary file is open until commit")
    }

    /// Flush to disk and rename onto `dst` (replacing it).
    pub fn commit(mut self, dst: &Path) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        std::fs::rename(&self.path, dst)?;
        if let Some(dir) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.path = PathBuf::new();
        Ok(())
    }
}

/// Remove `.NAME.hexz-tmp-PID-N` files whose writer process is gone (a
/// SIGKILL cannot clean up). Only where that can be told for sure (Linux:
/// `/proc/PID` absent); a live process with that PID keeps its file.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = std::format!(".{name}.hexz-tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let Some((pid, attempt)) = rest.split_once('-') else { continue };
        let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), attempt.parse::<u32>()) else { continue };
        if pid != std::process::id() && !Path::new(&std::format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Store the file at `src` into a new archive at `dst`, atomically: `dst` is
/// only replaced once the archive is complete and on disk. With `base`, the
/// archive is a child of the archive at that path (its chain is opened, with
/// `search` folders for moved parents) and records the base's path relative
/// to `dst`'s folder.
pub fn store_file(
    src: &Path,
    dst: &Path,
    opts: &StoreOptions,
    base: Option<(&Path, &[PathBuf])>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<StoreReport> {
    let source = crate::source::FileSource::open(src)?;
    let chain = match base {
        Some((path, search)) => Some(crate::chain::open_chain(path, search)?),
        None => None,
    };
    let mut tmp = TempFile::new(dst).map_err(|e| Error::from_io(0, &e))?;
    let report = {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
        let report = match (&chain, base) {
            (Some(chain), Some((path, _))) => {
                let dst_dir = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let hint = crate::chain::relative_path(dst_dir, path);
                store_delta(&source, &mut out, opts, ParentSpec { archive: &chain.archive, hint }, progress)?
            }
            _ => store(&source, &mut out, opts, progress)?,
        };
        out.flush().map_err(|e| Error::from_io(0, &e))?;
        report
    };
    tmp.commit(dst).map_err(|e| Error::from_io(0, &e))?;
    Ok(report)
}
