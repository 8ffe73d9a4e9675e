//! What a parent chain offers a child being stored: its blocks by hash
//! (referenced, not stored again) and each tensor's base (for deltas).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::layout::{limits, BlockEntry, FilterId};
use crate::plan::Plan;
use crate::reader::Archive;
use crate::source::ReadAt;

/// What the parent chain offers a child: every block it can reference, by
/// hash, and per tensor of the child the offset of its base in the parent.
#[derive(Debug, Default)]
pub struct ParentIndex {
    blocks: BTreeMap<[u8; 32], BlockEntry>,
    /// `bases[t]`: where tensor t of the plan is in the parent (same name, dtype and shape).
    pub bases: Vec<Option<u64>>,
    /// Tensors that share a name with the base but not its dtype or shape:
    /// stored whole, and said so in the report.
    pub warnings: Vec<String>,
    /// Incompatible features the blocks offered need (a child that copies
    /// their entries declares them).
    pub features: u64,
    /// The parent is encrypted: blocks are found by their keyed hash, the
    /// entry's first 16 bytes (the rest is the block's tag).
    encrypted: bool,
}

/// The key blocks are found by: the whole hash, or in an encrypted chain
/// its keyed half.
fn dedup_key(hash: &[u8; 32], encrypted: bool) -> [u8; 32] {
    let mut key = *hash;
    if encrypted {
        key[16..].fill(0);
    }
    key
}

impl ParentIndex {
    /// Whether any tensor has a base in the parent (delta blocks may follow).
    pub fn has_bases(&self) -> bool {
        self.bases.iter().any(Option::is_some)
    }

    /// Index `parent` (every block, one walk) against the child's `plan`.
    /// Only blocks whose entries need no incompatible feature outside
    /// `allowed` are offered: a child written for an older format version
    /// stores the others again, in a form that version reads.
    pub fn build<P: ReadAt>(parent: Option<&Archive<P>>, plan: &Plan, allowed: u64) -> Result<Self> {
        let mut index = ParentIndex { bases: alloc::vec![None; plan.tensors.len()], ..ParentIndex::default() };
        let Some(p) = parent else { return Ok(index) };
        index.encrypted = p.is_encrypted();
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
            let needed = crate::layout::features::needed_by(&e);
            if deepest < u16::from(limits::MAX_CHAIN_DEPTH) && needed & !allowed == 0 {
                index.features |= needed;
                index.blocks.entry(dedup_key(&e.hash, index.encrypted)).or_insert(e);
            }
        }
        let manifest = p.manifest()?;
        // A tensor's base: the parent's tensor of that name in the file of
        // the same path (folders whose files share names, as checkpoint-500/
        // and checkpoint-1000/ do), else the first of that name anywhere.
        let path = |files: &'_ [crate::manifest::FileInfo], f: Option<u32>| {
            f.and_then(|i| files.get(i as usize)).map(|f| f.path.clone())
        };
        let mut by_name: BTreeMap<&str, &crate::manifest::TensorInfo> = BTreeMap::new();
        let mut by_file: BTreeMap<(Option<String>, &str), &crate::manifest::TensorInfo> = BTreeMap::new();
        for t in &manifest.tensors {
            by_name.entry(t.name.as_str()).or_insert(t);
            by_file.entry((path(&manifest.files, t.file), t.name.as_str())).or_insert(t);
        }
        for (i, t) in plan.tensors.iter().enumerate() {
            let key = (path(&plan.files, t.file), t.name.as_str());
            let Some(b) = by_file.get(&key).or_else(|| by_name.get(t.name.as_str())) else { continue };
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
    pub(crate) fn block(&self, hash: &[u8; 32]) -> Option<&BlockEntry> {
        self.blocks.get(&dedup_key(hash, self.encrypted))
    }
}
