//! Writing an archive, in pieces any pipeline can drive:
//!
//! - [`plan`](crate::plan) detects the source and cuts it into [`BlockJob`]s;
//! - [`ParentIndex`] is what a parent chain offers a child (its blocks by
//!   hash, each tensor's base);
//! - [`encode_block`] hashes and encodes one block (the part worth doing
//!   on many threads);
//! - [`ArchiveWriter`] lays encoded blocks out in order, deduplicates, and
//!   produces the index pages, directory, manifest and footer. It does no
//!   I/O: the caller writes the bytes it is given, so a write error is
//!   always the destination's.
//!
//! [`store`] drives them on one thread. `hexz-io` drives the same pieces on
//! a pool of threads and writes files; both produce the same bytes.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

pub use self::encode::{BlockEncoder, EncodedBlock};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::filter::delta_width;
use crate::layout::{
    limits, short_checksum, BlockEntry, CodecId, DirectoryEntry, FileHeader, FilterId, Footer, SourceFormat,
    StorageKind, FOOTER_MAGIC, FOOTER_SIZE, HEADER_MAGIC, HEADER_SIZE, VERSION_MAJOR,
};
use crate::manifest::{Manifest, MetadataValue, ParentRef};
use crate::plan::{plan, Chunker, Cutter, FixedChunker, Plan, Segment};
pub use crate::plan::{BlockJob, Chunking};
use crate::reader::{Archive, Workspace};
use crate::source::ReadAt;

mod encode;

/// Default block size: 1 MiB, chosen by the sweep in `bench/bench.py --block-sizes` (README, Measured).
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u32 = 4096;
/// Block entries per index page written.
pub const DEFAULT_ENTRIES_PER_PAGE: u32 = 128;
/// Most worker threads a store accepts.
pub const MAX_THREADS: usize = 256;
/// Default memory budget of a parallel store: blocks in flight and per-worker buffers.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;

/// How to store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub compression: Compression,
    pub block_size: u32,
    pub metadata: Vec<(String, MetadataValue)>,
    /// Worker threads for hashing and compression (parallel stores); 0
    /// means one per core; at most [`MAX_THREADS`].
    pub threads: usize,
    pub entries_per_page: u32,
    /// Store as a plain file: do not parse safetensors or GGUF headers.
    pub raw: bool,
    /// Bytes a parallel store may hold in blocks and encoder buffers; it
    /// runs fewer workers and fewer blocks in flight to stay inside it.
    pub memory_budget: usize,
    /// How bytes without tensors (raw files) are cut.
    pub chunking: Chunking,
    /// Split quantized GGML blocks into their fields (the `fields`
    /// filter, format 1.2). Off: byte grouping, as format 1.1 readers
    /// expect.
    pub split_fields: bool,
    /// Entropy-code float and delta blocks where that is smaller (codec
    /// `ans`, format 1.3; only with zstd). Off: as format 1.2 readers expect.
    pub entropy: bool,
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
            memory_budget: DEFAULT_MEMORY_BUDGET,
            chunking: DEFAULT_CHUNKING,
            split_fields: true,
            entropy: cfg!(feature = "ans"),
        }
    }
}

/// Content-defined where this build can (README, Measured).
#[cfg(feature = "cdc")]
pub const DEFAULT_CHUNKING: Chunking = Chunking::ContentDefined;
#[cfg(not(feature = "cdc"))]
pub const DEFAULT_CHUNKING: Chunking = Chunking::Fixed;

/// The chunker a store with `opts` uses.
pub fn chunker(opts: &StoreOptions) -> Result<AnyChunker> {
    match opts.chunking {
        Chunking::Fixed => Ok(AnyChunker::Fixed(FixedChunker::new(opts.block_size))),
        #[cfg(feature = "cdc")]
        Chunking::ContentDefined => Ok(AnyChunker::ContentDefined(crate::plan::CdcChunker::new(opts.block_size))),
        #[cfg(not(feature = "cdc"))]
        Chunking::ContentDefined => Err(Error::InvalidArgument("content-defined chunking needs the cdc feature")),
    }
}

/// Either chunker, chosen by [`chunker`].
#[derive(Debug, Clone, Copy)]
pub enum AnyChunker {
    Fixed(FixedChunker),
    #[cfg(feature = "cdc")]
    ContentDefined(crate::plan::CdcChunker),
}

impl Chunker for AnyChunker {
    fn max_block(&self) -> usize {
        match self {
            AnyChunker::Fixed(c) => c.max_block(),
            #[cfg(feature = "cdc")]
            AnyChunker::ContentDefined(c) => c.max_block(),
        }
    }

    fn cut(&mut self, segment: &Segment, data: &[u8]) -> usize {
        match self {
            AnyChunker::Fixed(c) => c.cut(segment, data),
            #[cfg(feature = "cdc")]
            AnyChunker::ContentDefined(c) => c.cut(segment, data),
        }
    }
}

impl StoreOptions {
    /// Check every option before anything is read or written.
    pub fn validate(&self) -> Result<()> {
        if self.block_size < MIN_BLOCK_SIZE || self.block_size > limits::MAX_BLOCK_LENGTH {
            return Err(Error::InvalidArgument("block size must be between 4 KiB and 64 MiB"));
        }
        if self.entries_per_page == 0 || self.entries_per_page > limits::MAX_ENTRIES_PER_PAGE {
            return Err(Error::InvalidArgument("entries per page must be 1 to 4096"));
        }
        if self.threads > MAX_THREADS {
            return Err(Error::InvalidArgument("threads must be at most 256"));
        }
        if let Compression::Zstd { level, numeric_level, quantized_level } = self.compression {
            if [level, numeric_level, quantized_level].iter().any(|l| !(1..=22).contains(l)) {
                return Err(Error::InvalidArgument("zstd level must be 1 to 22"));
            }
        }
        let mut keys: Vec<&str> = self.metadata.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument("metadata keys must be unique"));
        }
        if keys.first().is_some_and(|k| k.is_empty()) {
            return Err(Error::InvalidArgument("metadata keys must not be empty"));
        }
        for (_, value) in &self.metadata {
            if let MetadataValue::Json(text) = value {
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|_| Error::InvalidArgument("metadata value is not valid JSON"))?;
            }
        }
        BlockEncoder::new(self.compression)?;
        chunker(self)?;
        Ok(())
    }

    /// Whether blocks may be entropy-coded: asked for, compiled in, and
    /// with zstd (lz4 is chosen for speed).
    pub fn entropy_coding(&self) -> bool {
        self.entropy && cfg!(feature = "ans") && matches!(self.compression, Compression::Zstd { .. })
    }

    /// Bytes one encoding worker holds: its block, the encoder's buffers,
    /// a delta base, and with entropy coding its symbol streams, words and
    /// raw bits (about a block each).
    pub fn worker_bytes(&self) -> usize {
        self.block_size as usize * if self.entropy_coding() { 10 } else { 7 }
    }
}

/// What a store did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreReport {
    pub source_format: SourceFormat,
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

/// The parent to store against: the open archive (with its own ancestors
/// attached) and the path hint to record, relative to the child's folder.
pub struct ParentSpec<'a, P> {
    pub archive: &'a Archive<P>,
    pub hint: String,
}

/// What the parent chain offers a child: every block it can reference, by
/// hash, and per tensor of the child the offset of its base in the parent.
#[derive(Debug, Default)]
pub struct ParentIndex {
    blocks: BTreeMap<[u8; 32], BlockEntry>,
    /// `bases[t]`: where tensor t of the plan is in the parent (same name, dtype and shape).
    pub bases: Vec<Option<u64>>,
    pub warnings: Vec<String>,
}

impl ParentIndex {
    /// Whether any tensor has a base in the parent (delta blocks may follow).
    pub fn has_bases(&self) -> bool {
        self.bases.iter().any(Option::is_some)
    }

    /// Index `parent` (every block, one walk) against the child's `plan`.
    pub fn build<P: ReadAt>(parent: Option<&Archive<P>>, plan: &Plan) -> Result<Self> {
        let mut index = ParentIndex { bases: alloc::vec![None; plan.tensors.len()], ..ParentIndex::default() };
        let Some(p) = parent else { return Ok(index) };
        if p.chain_len() >= usize::from(limits::MAX_CHAIN_DEPTH) {
            return Err(Error::ChainTooDeep { limit: limits::MAX_CHAIN_DEPTH });
        }
        let mut page = crate::error::try_zeroed(p.page_bytes(), "index page")?;
        for block in p.blocks(0, p.virtual_size(), &mut page)? {
            let e = block?.entry;
            // A child refers one level further up (spec section 9): the copy's
            // location, and for a delta its base one level below that, must
            // stay within the chain.
            let is_delta = FilterId::from_u8(e.filter).is_some_and(FilterId::is_delta);
            let deepest = u16::from(e.location) + 1 + u16::from(is_delta);
            if deepest < u16::from(limits::MAX_CHAIN_DEPTH) {
                index.blocks.entry(e.hash).or_insert(e);
            }
        }
        let manifest = p.manifest()?;
        let by_name: BTreeMap<&str, &crate::manifest::TensorInfo> =
            manifest.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        for (i, t) in plan.tensors.iter().enumerate() {
            let Some(b) = by_name.get(t.name.as_str()) else { continue };
            if b.dtype == t.dtype && b.shape == t.shape && b.ggml_type == t.ggml_type && b.length == t.length {
                index.bases[i] = Some(b.offset);
            } else {
                index.warnings.push(alloc::format!(
                    "tensor {}: {} {:?} in this file, {} {:?} in the base; stored whole",
                    t.name,
                    t.dtype,
                    t.shape,
                    b.dtype,
                    b.shape
                ));
            }
        }
        Ok(index)
    }

    /// The parent chain's entry for a block with this hash, if it has one.
    pub fn block(&self, hash: &[u8; 32]) -> Option<&BlockEntry> {
        self.blocks.get(hash)
    }
}

/// How a block chooses its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterChoice {
    /// Try every candidate (and tell the followers what won).
    Lead,
    /// Use the leader's choice; `None` when the leader had nothing to pass
    /// on (stored raw, taken from the parent, or failed): try every candidate.
    Follow(Option<FilterId>),
}

/// A block hashed and encoded, ready for [`ArchiveWriter::add`].
#[derive(Debug)]
pub struct EncodedJob {
    pub index: u64,
    pub offset: u64,
    pub length: u32,
    pub width: u8,
    pub tensor: Option<usize>,
    pub hash: [u8; 32],
    pub codec: CodecId,
    pub filter: FilterId,
    /// The entry's `filter_param`.
    pub param: u32,
    pub delta_base: u64,
    /// Empty when the parent chain already holds these bytes.
    pub bytes: Vec<u8>,
}

impl EncodedJob {
    /// What a leader passes to its followers.
    pub fn decision(&self) -> Option<FilterId> {
        (self.codec != CodecId::None).then_some(self.filter)
    }
}

/// Per-thread state for [`encode_block`].
pub struct EncodeState {
    pub encoder: BlockEncoder,
    split_fields: bool,
    workspace: Option<Workspace>,
    base: Vec<u8>,
}

impl EncodeState {
    /// State for encoding as `opts` say, against `parent` if any.
    pub fn new<P: ReadAt>(opts: &StoreOptions, parent: Option<&Archive<P>>) -> Result<Self> {
        Ok(EncodeState {
            encoder: BlockEncoder::new(opts.compression)?.with_entropy(opts.entropy_coding()),
            split_fields: opts.split_fields,
            workspace: parent.map(|p| p.new_scratch()).transpose()?,
            base: Vec::new(),
        })
    }
}

/// Whether encoding `job` as `opts` say chooses among filters. When it
/// does not (no base, and split into fields, float blocks with entropy
/// coding, which choose on their own, or byte-grouped without a trial),
/// its choice is fixed: it need not wait for a leader's.
pub fn chooses_filter(job: &BlockJob, opts: &StoreOptions) -> bool {
    job.base.is_some()
        || !((opts.split_fields && job.fields.is_some())
            || (job.floats && opts.entropy_coding())
            || encode::groups_without_trial(job.data.len(), job.width))
}

/// Hash and encode one block: nothing when the parent chain holds it;
/// against its base in the parent when it has one; plainly otherwise.
/// A parent's fault comes back marked with [`Error::Ancestor`].
pub fn encode_block<P: ReadAt>(
    job: &BlockJob,
    choice: FilterChoice,
    state: &mut EncodeState,
    parent: Option<&Archive<P>>,
    index: &ParentIndex,
) -> Result<EncodedJob> {
    let hash = *blake3::hash(&job.data).as_bytes();
    let mut done = EncodedJob {
        index: job.index,
        offset: job.offset,
        length: u32::try_from(job.data.len()).map_err(|_| Error::InvalidArgument("block too large"))?,
        width: job.width,
        tensor: job.tensor,
        hash,
        codec: CodecId::None,
        filter: FilterId::None,
        param: 0,
        delta_base: 0,
        bytes: Vec::new(),
    };
    if index.block(&hash).is_some() {
        return Ok(done);
    }
    let follow = match choice {
        FilterChoice::Lead => None,
        FilterChoice::Follow(f) => f,
    };
    let encoded = match (job.base, parent, state.workspace.as_mut()) {
        (Some(base), Some(p), Some(ws)) => {
            state.base.resize(job.data.len(), 0);
            // The base is read from the parent; its faults are the parent's.
            p.read_at(base, &mut state.base, ws).map_err(Error::in_parent)?;
            let e = match follow {
                Some(f) => state.encoder.encode_as(&job.data, &state.base, job.width, f),
                None => state.encoder.encode_with_base(&job.data, &state.base, job.width),
            };
            if e.filter.is_delta() {
                done.width = delta_width(usize::from(job.width));
                done.delta_base = base;
            }
            e
        }
        _ => match (job.fields.filter(|_| state.split_fields), follow) {
            (Some(ggml), _) => state.encoder.encode_ggml(&job.data, ggml, job.width),
            (None, _) if job.floats && state.encoder.entropy() => state.encoder.encode_floats(&job.data, job.width),
            (None, Some(f)) => state.encoder.encode_as(&job.data, &[], job.width, f),
            (None, None) => state.encoder.encode(&job.data, job.width),
        },
    };
    done.codec = encoded.codec;
    done.filter = encoded.filter;
    done.param = encoded.param;
    done.bytes = encoded.bytes.to_vec();
    Ok(done)
}

/// Per-tensor summary of its blocks, for the manifest's storage kind.
#[derive(Debug, Clone, Copy)]
struct TensorBlocks {
    count: u64,
    any_delta: bool,
    all_parent: bool,
    all_duplicate: bool,
}

/// Lays encoded blocks out in order and assembles the archive around them.
/// Sans I/O: [`add`](Self::add) says whether the block's bytes must be
/// written next; [`finish`](Self::finish) returns the closing bytes.
pub struct ArchiveWriter {
    entries_per_page: u32,
    /// Incompatible features the archive uses (header, spec section 4).
    incompat: u64,
    written: u64,
    entries: Vec<BlockEntry>,
    first_location: BTreeMap<[u8; 32], BlockEntry>,
    tensors: Vec<TensorBlocks>,
    max_block: u32,
    max_stored: u32,
    report: StoreReport,
}

impl ArchiveWriter {
    /// A writer for a source planned as `plan` of `source_size` bytes;
    /// `deltas`: some tensors have a base in the parent.
    pub fn new(opts: &StoreOptions, plan: &Plan, source_size: u64, deltas: bool) -> Self {
        use crate::layout::features::{ENTROPY, FIELDS, FILES};
        // The header goes out first, so the features come from the plan: a
        // segment with a field layout may use the `fields` filter.
        let files = if plan.files.is_empty() { 0 } else { FILES };
        let fields = opts.split_fields
            && opts.compression != Compression::None
            && plan.segments.iter().any(|s| s.fields.is_some());
        // Entropy coding may be used for float segments and for deltas.
        let entropy = opts.entropy_coding() && (deltas || plan.segments.iter().any(|s| s.floats));
        let incompat = files | if fields { FIELDS } else { 0 } | if entropy { ENTROPY } else { 0 };
        ArchiveWriter {
            entries_per_page: opts.entries_per_page,
            incompat,
            written: HEADER_SIZE as u64,
            entries: Vec::new(),
            first_location: BTreeMap::new(),
            tensors: alloc::vec![
                TensorBlocks { count: 0, any_delta: false, all_parent: true, all_duplicate: true };
                plan.tensors.len()
            ],
            max_block: 0,
            max_stored: 0,
            report: StoreReport {
                source_format: plan.format,
                source_size,
                archive_size: 0,
                blocks: 0,
                stored_blocks: 0,
                deduplicated_blocks: 0,
                deduplicated_bytes: 0,
                tensors: plan.tensors.len(),
                source_hash: [0; 32],
                parent_blocks: 0,
                parent_bytes: 0,
                delta_blocks: 0,
                warnings: Vec::new(),
            },
        }
    }

    /// The archive's first bytes.
    pub fn header_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut bytes = [0u8; HEADER_SIZE];
        bytes.copy_from_slice(file_header(self.incompat).as_bytes());
        bytes
    }

    /// Archive bytes accounted for so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Add the next block (blocks must come in index order). Returns true
    /// when `block.bytes` must be written now, at [`written`](Self::written)
    /// as it was before the call; false when the block refers to bytes
    /// stored earlier or in the parent chain.
    pub fn add(&mut self, block: &EncodedJob, index: &ParentIndex) -> Result<bool> {
        if block.index != self.entries.len() as u64 {
            return Err(Error::InvalidArgument("blocks must be added in order"));
        }
        self.max_block = self.max_block.max(block.length);
        let (mut entry, from_parent, duplicate, write) = if let Some(e) = index.block(&block.hash) {
            self.report.parent_blocks += 1;
            self.report.parent_bytes += u64::from(block.length);
            (BlockEntry { location: e.location + 1, ..*e }, true, false, false)
        } else if let Some(e) = self.first_location.get(&block.hash) {
            self.report.deduplicated_blocks += 1;
            self.report.deduplicated_bytes += u64::from(block.length);
            (*e, false, true, false)
        } else {
            let stored_length =
                u32::try_from(block.bytes.len()).map_err(|_| Error::InvalidArgument("encoded block too large"))?;
            self.report.stored_blocks += 1;
            if block.filter.is_delta() {
                self.report.delta_blocks += 1;
            }
            let e = BlockEntry {
                virtual_offset: U64::new(block.offset),
                stored_offset: U64::new(self.written),
                delta_base_offset: U64::new(block.delta_base),
                virtual_length: U32::new(block.length),
                stored_length: U32::new(stored_length),
                codec: block.codec as u8,
                filter: block.filter as u8,
                element_width: if block.filter == FilterId::None { 1 } else { block.width },
                location: 0,
                filter_param: U32::new(block.param),
                hash: block.hash,
            };
            self.first_location.insert(block.hash, e);
            self.written += u64::from(stored_length);
            (e, false, false, true)
        };
        entry.virtual_offset = U64::new(block.offset);
        self.max_stored = self.max_stored.max(entry.stored_length.get());
        if let Some(t) = block.tensor.and_then(|t| self.tensors.get_mut(t)) {
            t.count += 1;
            t.any_delta |= FilterId::from_u8(entry.filter).is_some_and(FilterId::is_delta);
            t.all_parent &= from_parent;
            t.all_duplicate &= duplicate;
        }
        self.entries.push(entry);
        Ok(write)
    }

    /// The closing bytes (index pages, directory, manifest, footer) to write
    /// after the last block, and the report.
    pub fn finish(
        mut self,
        mut plan: Plan,
        metadata: &[(String, MetadataValue)],
        parent: Option<ParentRef>,
        source_hash: [u8; 32],
    ) -> Result<(Vec<u8>, StoreReport)> {
        for (t, blocks) in plan.tensors.iter_mut().zip(&self.tensors) {
            t.storage_kind = if blocks.count == 0 {
                StorageKind::Empty
            } else if blocks.any_delta {
                StorageKind::Delta
            } else if blocks.all_parent {
                StorageKind::Parent
            } else if blocks.all_duplicate {
                StorageKind::Deduplicated
            } else {
                StorageKind::Stored
            };
        }
        let mut tail = Vec::new();
        let epp = self.entries_per_page as usize;
        let mut directory = Vec::new();
        for page in self.entries.chunks(epp) {
            let page_offset = self.written + tail.len() as u64;
            let start = tail.len();
            for e in page {
                tail.extend_from_slice(e.as_bytes());
            }
            let entry = DirectoryEntry {
                first_virtual_offset: page[0].virtual_offset,
                page_offset: U64::new(page_offset),
                entry_count: U32::new(page.len() as u32),
                reserved: [0; 4],
                page_hash: *blake3::hash(&tail[start..]).as_bytes(),
            };
            directory.extend_from_slice(entry.as_bytes());
        }
        let directory_offset = self.written + tail.len() as u64;
        tail.extend_from_slice(&directory);
        let manifest = Manifest {
            source_format: plan.format,
            source_header_length: plan.header_length,
            tensors: plan.tensors,
            metadata: metadata.to_vec(),
            parent,
            files: plan.files,
        }
        .encode()?;
        let manifest_offset = self.written + tail.len() as u64;
        tail.extend_from_slice(&manifest);
        let mut footer = Footer {
            magic: FOOTER_MAGIC,
            virtual_size: U64::new(self.report.source_size),
            block_count: U64::new(self.entries.len() as u64),
            directory_offset: U64::new(directory_offset),
            page_count: U32::new(self.entries.len().div_ceil(epp) as u32),
            entries_per_page: U32::new(self.entries_per_page),
            manifest_offset: U64::new(manifest_offset),
            manifest_length: U64::new(manifest.len() as u64),
            max_block_length: U32::new(self.max_block),
            max_stored_length: U32::new(self.max_stored),
            flags: U64::new(0),
            source_hash,
            directory_hash: *blake3::hash(&directory).as_bytes(),
            manifest_hash: *blake3::hash(&manifest).as_bytes(),
            reserved: [0; 16],
            checksum: U64::new(0),
        };
        footer.checksum = U64::new(short_checksum(&footer.as_bytes()[..FOOTER_SIZE - 8]));
        tail.extend_from_slice(footer.as_bytes());
        self.written += tail.len() as u64;
        self.report.archive_size = self.written;
        self.report.blocks = self.entries.len() as u64;
        self.report.source_hash = source_hash;
        Ok((tail, self.report))
    }
}

/// The fixed header of a version-1 archive using `incompat` features: minor
/// version 0 when it uses none, so readers of 1.0 read it.
pub fn file_header(incompat: u64) -> FileHeader {
    let mut header = FileHeader {
        magic: HEADER_MAGIC,
        version_major: U16::new(VERSION_MAJOR),
        version_minor: U16::new(crate::layout::features::minor_for(incompat)),
        header_size: U32::new(HEADER_SIZE as u32),
        incompat_features: U64::new(incompat),
        compat_features: U64::new(0),
        reserved: [0; 24],
        checksum: U64::new(0),
    };
    header.checksum = U64::new(short_checksum(&header.as_bytes()[..HEADER_SIZE - 8]));
    header
}

/// Store `src` on this thread, handing archive bytes to `out` in order;
/// with `parent`, as a child of that archive (tensors the chain holds are
/// referenced, changed ones stored as deltas where smaller). `progress`
/// gets source bytes done and may stop the store.
pub fn store<R, P>(
    src: &R,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
    opts: &StoreOptions,
    parent: Option<ParentSpec<'_, P>>,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<StoreReport>
where
    R: ReadAt + ?Sized,
    P: ReadAt,
{
    // store_plan validates the options.
    store_plan(src, plan(src, opts.raw)?, out, opts, parent, progress)
}

/// [`store`] of a source already planned (a folder's files laid end to
/// end, planned by [`Plan::folder`]).
pub fn store_plan<R, P>(
    src: &R,
    plan: Plan,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
    opts: &StoreOptions,
    parent: Option<ParentSpec<'_, P>>,
    progress: &mut dyn FnMut(u64) -> ControlFlow<()>,
) -> Result<StoreReport>
where
    R: ReadAt + ?Sized,
    P: ReadAt,
{
    opts.validate()?;
    if plan.virtual_size() != src.len() {
        return Err(Error::InvalidArgument("the plan does not cover the source"));
    }
    let parent_archive = parent.as_ref().map(|p| p.archive);
    let index = ParentIndex::build(parent_archive, &plan)?;
    let mut state = EncodeState::new(opts, parent_archive)?;
    let mut writer = ArchiveWriter::new(opts, &plan, src.len(), index.has_bases());
    out(&writer.header_bytes())?;
    let mut cutter = Cutter::new(src, &plan, &index.bases, chunker(opts)?);
    let mut decision = None;
    while let Some(job) = cutter.next_block()? {
        let choice = if job.leads { FilterChoice::Lead } else { FilterChoice::Follow(decision) };
        let done = encode_block(&job, choice, &mut state, parent_archive, &index)?;
        if job.leads {
            decision = done.decision();
        }
        if writer.add(&done, &index)? {
            out(&done.bytes)?;
        }
        if progress(cutter.position()).is_break() {
            return Err(Error::Cancelled);
        }
    }
    let source_hash = cutter.source_hash();
    let parent_ref = parent.map(|p| ParentRef { identity: p.archive.identity(), hint: p.hint });
    let warnings = index.warnings.clone();
    let (tail, mut report) = writer.finish(plan, &opts.metadata, parent_ref, source_hash)?;
    out(&tail)?;
    report.warnings = warnings;
    Ok(report)
}

/// [`store`] into a new vector: the whole archive in memory.
pub fn store_vec<R, P>(
    src: &R,
    opts: &StoreOptions,
    parent: Option<ParentSpec<'_, P>>,
) -> Result<(Vec<u8>, StoreReport)>
where
    R: ReadAt + ?Sized,
    P: ReadAt,
{
    let mut out = Vec::new();
    let report = store(
        src,
        &mut |bytes| {
            out.try_reserve(bytes.len())
                .map_err(|_| Error::OutOfMemory { what: "archive", bytes: bytes.len() as u64 })?;
            out.extend_from_slice(bytes);
            Ok(())
        },
        opts,
        parent,
        &mut |_| ControlFlow::Continue(()),
    )?;
    Ok((out, report))
}
