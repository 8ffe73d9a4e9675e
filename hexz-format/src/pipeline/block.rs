//! One block hashed and encoded: the part of a store worth doing on many
//! threads. Blocks of a tensor share a filter choice: a leader tries every
//! candidate and its followers reuse what won.

use alloc::vec::Vec;

use super::{BlockJob, ParentIndex};
use crate::error::{Error, Result};
use crate::filter::delta_width;
use crate::layout::{CodecId, FilterId};
use crate::reader::{Archive, Workspace};
use crate::source::ReadAt;
use crate::writer::encode::{groups_without_trial, BlockEncoder};
use crate::writer::StoreOptions;

/// How a block chooses its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterChoice {
    /// Try every candidate (and tell the followers what won).
    Lead,
    /// Use the leader's choice; `None` when the leader had nothing to pass
    /// on (stored raw, taken from the parent, or failed): try every candidate.
    Follow(Option<FilterId>),
}

/// A block hashed and encoded, ready for
/// [`ArchiveWriter::add`](super::ArchiveWriter::add).
#[derive(Debug)]
pub struct EncodedJob {
    /// The block's number, from its [`BlockJob`].
    pub index: u64,
    /// Where the block starts in the virtual space.
    pub offset: u64,
    /// Bytes of the decoded block.
    pub length: u32,
    /// Element width the entry records: the segment's, or the delta's width
    /// for a delta block.
    pub width: u8,
    /// The plan's tensor the block belongs to, if any.
    pub tensor: Option<usize>,
    /// BLAKE3 of the decoded block: its dedup key and integrity check.
    pub hash: [u8; 32],
    /// The codec of `bytes`.
    pub codec: CodecId,
    /// The filter applied before the codec.
    pub filter: FilterId,
    /// The entry's `filter_param`.
    pub param: u32,
    /// For a delta block, where its base starts in the parent; else 0.
    pub delta_base: u64,
    /// Empty when the parent chain already holds these bytes.
    pub bytes: Vec<u8>,
}

impl EncodedJob {
    /// The block's index entry, stored at `stored_offset` in this archive.
    pub fn entry(&self, stored_offset: u64) -> crate::layout::BlockEntry {
        use zerocopy::little_endian::{U32, U64};
        crate::layout::BlockEntry {
            virtual_offset: U64::new(self.offset),
            stored_offset: U64::new(stored_offset),
            delta_base_offset: U64::new(self.delta_base),
            virtual_length: U32::new(self.length),
            stored_length: U32::new(self.bytes.len() as u32),
            codec: self.codec as u8,
            filter: self.filter as u8,
            element_width: if self.filter == FilterId::None { 1 } else { self.width },
            location: 0,
            filter_param: U32::new(self.param),
            hash: self.hash,
        }
    }

    /// What a leader passes to its followers.
    pub fn decision(&self) -> Option<FilterId> {
        (self.codec != CodecId::None).then_some(self.filter)
    }
}

/// Per-thread state for [`encode_block`].
pub struct EncodeState {
    encoder: BlockEncoder,
    split_fields: bool,
    workspace: Option<Workspace>,
    base: Vec<u8>,
    #[cfg(feature = "encryption")]
    keys: Option<alloc::sync::Arc<crate::crypt::Keys>>,
}

impl EncodeState {
    /// State for encoding as `opts` say, against `parent` if any.
    pub fn new<P: ReadAt>(opts: &StoreOptions, parent: Option<&Archive<P>>) -> Result<Self> {
        Ok(EncodeState {
            encoder: BlockEncoder::new(opts.compression)?.with_entropy(opts.entropy_coding()),
            split_fields: opts.split_fields,
            workspace: parent.map(|p| p.new_scratch()).transpose()?,
            base: Vec::new(),
            #[cfg(feature = "encryption")]
            keys: opts.keys().cloned(),
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
            || groups_without_trial(job.data.len(), job.width))
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
    // Keyed (and half the field) in an encrypted archive: the tag fills the rest.
    #[cfg(feature = "encryption")]
    let hash = match &state.keys {
        Some(keys) => keys.block_hash(&job.data),
        None => *blake3::hash(&job.data).as_bytes(),
    };
    #[cfg(not(feature = "encryption"))]
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
    #[cfg(feature = "encryption")]
    if let Some(keys) = &state.keys {
        let entry = done.entry(0);
        let tag = keys.seal_block(&mut done.bytes, &entry)?;
        done.hash[16..].copy_from_slice(&tag);
    }
    Ok(done)
}
