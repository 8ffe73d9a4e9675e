//! Filters: reversible rearrangements of a block's bytes that leave its
//! codec less to do (spec sections 7 and 9). Byte grouping and field
//! splitting put like bytes of every element together; a delta replaces a
//! block by its difference from a base block; bit planes pack a sparse
//! delta eight elements to a byte.
//!
//! All work on caller buffers and never allocate. The public functions
//! check that their buffers have equal lengths; the crate's own decoder and
//! encoder call the `_into` forms, whose lengths they guarantee.

use crate::error::{Error, Result};

pub(crate) mod delta;
pub(crate) mod fields;
pub(crate) mod grouping;
pub(crate) mod planes;

pub use delta::{delta_apply, delta_encode, delta_width};
pub use fields::{join_fields, split_fields};
pub use grouping::{group, ungroup};
pub use planes::{bit_group, bit_ungroup};

/// The error for transform buffers of different lengths, if `lengths` differ.
fn same_lengths(lengths: &[usize]) -> Result<()> {
    match lengths.split_first() {
        Some((first, rest)) if rest.iter().any(|n| n != first) => {
            Err(Error::InvalidArgument("transform buffers must have equal lengths"))
        }
        _ => Ok(()),
    }
}
