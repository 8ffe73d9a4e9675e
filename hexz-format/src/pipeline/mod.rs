//! The writer's pipeline, stage by stage: the interface a driver uses to
//! run a store its own way. `hexz-io` drives it on a pool of threads for a
//! parallel store (cut on one thread, encode on many, assemble in order on
//! the caller's); [`writer::store`](crate::writer::store) drives it on one
//! thread. Both produce the same bytes.
//!
//! This is not the API for storing a model: that is
//! [`writer`](crate::writer) ([`StoreOptions`](crate::writer::StoreOptions),
//! [`store`](crate::writer::store)) or `hexz-io`'s store functions.
//!
//! A store with this pipeline, in order:
//! 1. [`plan`](crate::plan::plan) the source (or [`Plan::folder`](crate::plan::Plan::folder));
//! 2. [`ParentIndex::build`] from the parent chain, if any, with the
//!    features the options allow;
//! 3. [`ArchiveWriter::new`], and write its provisional
//!    [`header_bytes`](ArchiveWriter::header_bytes);
//! 4. a [`Cutter`] over the plan with the options' [`chunker`] yields
//!    [`BlockJob`]s in order; each goes through [`encode_block`] with an
//!    [`EncodeState`] per thread (a job that [`leads`](BlockJob::leads)
//!    chooses the filter its followers reuse: [`FilterChoice`]);
//! 5. each [`EncodedJob`], back in index order, goes to
//!    [`ArchiveWriter::add`], which says whether its bytes are written next;
//! 6. [`ArchiveWriter::finish`] with the [`Cutter::source_hash`] gives the
//!    closing bytes and the report, whose
//!    [`header`](crate::writer::StoreReport::header) (exactly the features
//!    used) goes over the first 64 bytes where the output allows.

mod assemble;
mod block;
mod cut;
mod parent;

pub use crate::writer::encode::{BlockEncoder, EncodedBlock};
pub use assemble::ArchiveWriter;
pub use block::{chooses_filter, encode_block, EncodeState, EncodedJob, FilterChoice};
#[cfg(feature = "cdc")]
pub use cut::CdcChunker;
pub use cut::{chunker, AnyChunker, BlockJob, Chunker, Cutter, FixedChunker};
pub use parent::ParentIndex;
