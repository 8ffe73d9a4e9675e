//! Assembling the archive around its blocks: entries laid out in order
//! with duplicates and the parent chain's blocks referenced, then the index
//! pages, directory, manifest and footer. Sans I/O: the caller writes the
//! bytes it is handed.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use super::{EncodedJob, ParentIndex};
use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::layout::{
    short_checksum, BlockEntry, DirectoryEntry, FileHeader, FilterId, Footer, StorageKind, FOOTER_MAGIC, FOOTER_SIZE,
    HEADER_MAGIC, HEADER_SIZE, VERSION_MAJOR,
};
use crate::manifest::{Manifest, ParentRef};
use crate::plan::Plan;
use crate::writer::{StoreOptions, StoreReport};

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
    /// Incompatible features the archive may use: the provisional header's.
    incompat: u64,
    /// Incompatible features its entries use so far (and `FILES`): the final header's.
    used: u64,
    written: u64,
    entries: Vec<BlockEntry>,
    first_location: BTreeMap<[u8; 32], BlockEntry>,
    tensors: Vec<TensorBlocks>,
    max_block: u32,
    max_stored: u32,
    report: StoreReport,
    #[cfg(feature = "encryption")]
    encryption: Option<crate::writer::Encryption>,
}

impl ArchiveWriter {
    /// A writer for a source planned as `plan` of `source_size` bytes,
    /// with what the parent chain offers in `parent` (empty without one).
    pub fn new(opts: &StoreOptions, plan: &Plan, source_size: u64, parent: &ParentIndex) -> Self {
        use crate::layout::features::{ENTROPY, FIELDS, FILES};
        // The provisional header goes out first, so the features come from
        // the plan: a segment with a field layout may use the `fields`
        // filter, and the parent's entries may be copied. A folder archive
        // is one even when empty (no file table entries).
        let deltas = parent.has_bases();
        let files = if plan.format == crate::layout::SourceFormat::Folder { FILES } else { 0 };
        let fields = opts.split_fields
            && opts.compression != Compression::None
            && plan.segments.iter().any(|s| s.fields.is_some());
        // Entropy coding may be used for float segments and for deltas.
        let entropy = opts.entropy_coding() && (deltas || plan.segments.iter().any(|s| s.floats));
        let encrypted = if opts.encrypted() { crate::layout::features::ENCRYPTED } else { 0 };
        let incompat =
            files | if fields { FIELDS } else { 0 } | if entropy { ENTROPY } else { 0 } | parent.features | encrypted;
        ArchiveWriter {
            entries_per_page: opts.entries_per_page,
            incompat,
            used: files | encrypted,
            #[cfg(feature = "encryption")]
            encryption: opts.encryption.clone(),
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
                header: [0; HEADER_SIZE],
            },
        }
    }

    /// The archive's first bytes, provisional: declaring every feature the
    /// store may use. [`finish`](Self::finish) reports the final header
    /// (in [`StoreReport::header`]), declaring those it used.
    pub fn header_bytes(&self) -> [u8; HEADER_SIZE] {
        header_bytes(self.incompat)
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
            let e = block.entry(self.written);
            self.first_location.insert(block.hash, e);
            self.written += u64::from(stored_length);
            (e, false, false, true)
        };
        entry.virtual_offset = U64::new(block.offset);
        let needed = crate::layout::features::needed_by(&entry);
        if needed & !self.incompat != 0 {
            // The provisional header would not declare it: a bug upstream.
            return Err(Error::InvalidArgument("a block needs a format feature the archive does not declare"));
        }
        self.used |= needed;
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
        opts: &StoreOptions,
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
            metadata: opts.metadata.to_vec(),
            parent,
            files: plan.files,
        }
        .encode()?;
        #[cfg(feature = "encryption")]
        let manifest = match &self.encryption {
            Some(enc) => enc.section.seal_manifest(&enc.keys, manifest)?,
            None => manifest,
        };
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
        self.report.header = header_bytes(self.used);
        Ok((tail, self.report))
    }
}

fn header_bytes(incompat: u64) -> [u8; HEADER_SIZE] {
    let mut bytes = [0u8; HEADER_SIZE];
    bytes.copy_from_slice(file_header(incompat).as_bytes());
    bytes
}

/// The fixed header of a version-1 archive using `incompat` features: minor
/// version 0 when it uses none, so readers of 1.0 read it.
fn file_header(incompat: u64) -> FileHeader {
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
