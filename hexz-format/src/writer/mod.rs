//! Storing a file or a planned folder as an archive: the options a user
//! sets ([`StoreOptions`]), what a store reports ([`StoreReport`]), and
//! [`store`], [`store_plan`] and [`store_vec`], which run the
//! [`pipeline`](crate::pipeline) on the calling thread. `hexz-io` runs the
//! same pipeline on a pool of threads and writes files; both produce the
//! same bytes.
//!
//! The encoder policy, which filter and codec level each block gets, is in
//! `encode.rs`.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::layout::{limits, SourceFormat};
use crate::manifest::{MetadataValue, ParentRef};
use crate::pipeline::{
    chunker, encode_block, ArchiveWriter, BlockEncoder, Cutter, EncodeState, FilterChoice, ParentIndex,
};
use crate::plan::{plan, Plan};
use crate::reader::Archive;
use crate::source::ReadAt;

pub(crate) mod encode;

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
    /// Codec (and zstd levels) for new blocks.
    pub compression: Compression,
    /// Largest block, 4 KiB to 64 MiB; tensors are cut into blocks of this size.
    pub block_size: u32,
    /// User metadata to record in the manifest; keys unique, JSON values valid.
    pub metadata: Vec<(String, MetadataValue)>,
    /// Worker threads for hashing and compression (parallel stores); 0
    /// means one per core; at most [`MAX_THREADS`].
    pub threads: usize,
    /// Block entries per index page, 1 to 4096: what one index read brings.
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
    /// Encrypt blocks and manifest (format 1.5): the key section to write
    /// and the keys it wraps.
    #[cfg(feature = "encryption")]
    pub encryption: Option<Encryption>,
}

/// How an archive is encrypted: the key section (file key and stanzas)
/// and the keys derived from it.
#[cfg(feature = "encryption")]
#[derive(Debug, Clone)]
pub struct Encryption {
    /// The key section: the file key wrapped for each passphrase and recipient.
    pub section: crate::crypt::KeySectionBuilder,
    /// The keys blocks and the manifest are sealed with.
    pub keys: alloc::sync::Arc<crate::crypt::Keys>,
}

#[cfg(feature = "encryption")]
impl Encryption {
    /// Encryption under `section`'s file key.
    pub fn new(section: crate::crypt::KeySectionBuilder) -> Self {
        let keys = alloc::sync::Arc::new(section.keys());
        Encryption { section, keys }
    }
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
            #[cfg(feature = "encryption")]
            encryption: None,
        }
    }
}

/// Content-defined where this build can (README, Measured).
#[cfg(feature = "cdc")]
pub const DEFAULT_CHUNKING: Chunking = Chunking::ContentDefined;
/// Fixed-size blocks: content-defined cutting needs the `cdc` feature.
#[cfg(not(feature = "cdc"))]
pub const DEFAULT_CHUNKING: Chunking = Chunking::Fixed;

/// How blocks are cut from bytes that have no tensors to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// Fixed-size blocks.
    Fixed,
    /// Content-defined blocks (FastCDC): an edit or insertion moves only
    /// the blocks around it, so the rest still deduplicates.
    ContentDefined,
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
    pub(crate) fn entropy_coding(&self) -> bool {
        self.entropy && cfg!(feature = "ans") && matches!(self.compression, Compression::Zstd { .. })
    }

    /// Incompatible features the archive may use (spec section 4): folder
    /// archives `FILES`; `FIELDS` unless `split_fields` is off (format
    /// 1.1), `ENTROPY` when `entropy` is on (format 1.3). Entries copied
    /// from a parent that need a feature outside this set are not copied
    /// but stored again.
    pub fn allowed_features(&self) -> u64 {
        use crate::layout::features::{ENTROPY, FIELDS, FILES};
        FILES | if self.split_fields { FIELDS } else { 0 } | if self.entropy { ENTROPY } else { 0 }
    }

    /// The keys blocks are sealed with, when encrypting.
    #[cfg(feature = "encryption")]
    pub fn keys(&self) -> Option<&alloc::sync::Arc<crate::crypt::Keys>> {
        self.encryption.as_ref().map(|e| &e.keys)
    }

    /// Whether the archive is encrypted (format 1.5).
    pub fn encrypted(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.encryption.is_some();
        #[cfg(not(feature = "encryption"))]
        return false;
    }

    /// The hasher of the footer's `source_hash`: keyed when encrypting.
    pub fn source_hasher(&self) -> blake3::Hasher {
        #[cfg(feature = "encryption")]
        if let Some(keys) = self.keys() {
            return keys.source_hasher();
        }
        blake3::Hasher::new()
    }

    /// A chain is under one key or none (spec section 16): a child of an
    /// encrypted base is encrypted under the base's key, a child of a
    /// plain base is plain.
    pub fn check_parent<P: ReadAt>(&self, parent: Option<&Archive<P>>) -> Result<()> {
        let Some(parent) = parent else { return Ok(()) };
        match (parent.is_encrypted(), self.encrypted()) {
            (true, false) => Err(Error::WrongKey {
                reason: "the base is encrypted: a fine-tune of it is stored encrypted, under the base's key",
            }),
            (false, true) => Err(Error::WrongKey {
                reason: "the base is not encrypted: a chain is under one key or none, so its fine-tunes are plain",
            }),
            #[cfg(feature = "encryption")]
            (true, true) if parent.keys().map(|k| k.id()) != self.keys().map(|k| k.id()) => Err(Error::WrongKey {
                reason: "a fine-tune of an encrypted base is stored under the base's key, not another",
            }),
            _ => Ok(()),
        }
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
    /// What the source was detected as.
    pub source_format: SourceFormat,
    /// Bytes of the source.
    pub source_size: u64,
    /// Bytes of the archive written.
    pub archive_size: u64,
    /// Block entries in the index.
    pub blocks: u64,
    /// Blocks whose bytes were written (not deduplicated).
    pub stored_blocks: u64,
    /// Blocks that reference identical bytes stored earlier.
    pub deduplicated_blocks: u64,
    /// Decoded bytes saved by deduplication.
    pub deduplicated_bytes: u64,
    /// Tensors in the manifest.
    pub tensors: usize,
    /// BLAKE3 of the source, as the footer records it.
    pub source_hash: [u8; 32],
    /// Blocks referenced from the parent chain (no bytes stored).
    pub parent_blocks: u64,
    /// Decoded bytes those blocks hold.
    pub parent_bytes: u64,
    /// Blocks stored as deltas against the parent.
    pub delta_blocks: u64,
    /// Tensors whose dtype or shape differs from the base's, stored whole.
    pub warnings: Vec<String>,
    /// The archive's header as it must end up: declaring exactly the
    /// features its entries use (copied entries included). A writer emits
    /// a provisional header first, declaring every feature the store might
    /// use; where the output can be rewritten, these bytes go over the
    /// first 64 ([`store_vec`] and hexz-io's file stores do so).
    pub header: [u8; crate::layout::HEADER_SIZE],
}

/// The parent to store against: the open archive (with its own ancestors
/// attached) and the path hint to record, relative to the child's folder.
pub struct ParentSpec<'a, P> {
    /// The parent, opened with its own ancestors attached.
    pub archive: &'a Archive<P>,
    /// The parent's path relative to the child's folder, recorded in the manifest.
    pub hint: String,
}

/// Store `src` on this thread, handing archive bytes to `out` in order;
/// with `parent`, as a child of that archive (tensors the chain holds are
/// referenced, changed ones stored as deltas where smaller). `progress`
/// gets source bytes done and may stop the store. The first 64 bytes
/// handed out are a provisional header: write [`StoreReport::header`] over
/// them where the output allows it (else the archive may declare a feature
/// it did not use, which readers accept but an older reader then refuses).
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
    opts.check_parent(parent_archive)?;
    let index = ParentIndex::build(parent_archive, &plan, opts.allowed_features())?;
    let mut state = EncodeState::new(opts, parent_archive)?;
    let mut writer = ArchiveWriter::new(opts, &plan, src.len(), &index);
    out(&writer.header_bytes())?;
    let mut cutter = Cutter::new(src, &plan, &index.bases, chunker(opts)?).with_source_hasher(opts.source_hasher());
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
    let (tail, mut report) = writer.finish(plan, opts, parent_ref, source_hash)?;
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
    out[..report.header.len()].copy_from_slice(&report.header);
    Ok((out, report))
}
