//! Extracting to a path: the whole archive (a file, or a folder's tree),
//! or byte ranges of it concatenated (tensors, one file of a folder). The
//! output appears only when whole, never over an input of the chain.

use std::ops::ControlFlow;
use std::path::Path;

use hexz_format::SourceFormat;

use crate::error::Result;
use crate::folder::extract_folder;
use crate::output::{Output, OutputOptions};
use crate::reader::{RangeSink, Reader};

/// Extract the whole archive to `dst`: the byte-identical source file (`-`:
/// standard output), or for a folder archive the folder `dst`.
pub fn extract_to(
    reader: &Reader,
    dst: &Path,
    force: bool,
    threads: usize,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<()> {
    if reader.source_format() == SourceFormat::Folder {
        return extract_folder(reader, dst, force, threads, progress);
    }
    extract_ranges(reader, &[(0, reader.size())], dst, force, threads, progress)
}

/// Write the virtual `ranges` of the archive, concatenated in order, to
/// `dst` (`-`: standard output). `progress` gets the bytes written so far.
pub fn extract_ranges(
    reader: &Reader,
    ranges: &[(u64, u64)],
    dst: &Path,
    force: bool,
    threads: usize,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<()> {
    let output = Output::open(dst, &OutputOptions { force, inputs: reader.chain_files() })?;
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    {
        let sink = output.sink();
        let mut base = 0u64;
        for &(offset, length) in ranges {
            let shifted = Shifted { inner: &sink, by: base };
            reader.read_range_parallel(offset, length, &shifted, threads, &|done| progress(base + done))?;
            base += length;
        }
        sink.finish(total)?;
    }
    output.commit()
}

/// A sink that places a range at an offset of a larger output.
struct Shifted<'a> {
    inner: &'a dyn RangeSink,
    by: u64,
}

impl RangeSink for Shifted<'_> {
    fn ordered(&self) -> bool {
        self.inner.ordered()
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(self.by + offset, data)
    }
}
