//! Tensors and files by index, name and path, from the manifest (held in
//! memory with `alloc`, read from the source without).

use super::{Archive, Scratch};
use crate::error::{Error, Result};
use crate::source::ReadAt;

impl<R: ReadAt> Archive<R> {
    /// Number of tensors in the manifest.
    pub fn tensor_count(&self) -> u32 {
        self.manifest.tensor_count()
    }

    /// Index of the tensor called `name` (a scan of the manifest, which
    /// `alloc` builds hold in memory; front ends keep a name index).
    pub fn find_tensor(&self, name: &str) -> Result<u32> {
        let meta = self.meta();
        for i in 0..self.tensor_count() {
            let r = self.manifest.tensor(&meta, i)?;
            if self.manifest.string_eq(&meta, r.name_offset.get(), r.name_length.get(), name.as_bytes())? {
                return Ok(i);
            }
        }
        Err(Error::NotFound { what: "tensor" })
    }

    /// Entries of the file table (0 unless this is a folder archive).
    pub fn file_count(&self) -> u32 {
        self.manifest.file_count()
    }

    /// File record `index`, checked.
    pub fn file_record(&self, index: u32) -> Result<crate::layout::FileRecord> {
        self.manifest.file(&self.meta(), index)
    }

    /// Index of the file at `path` (a binary search: paths are sorted).
    pub fn find_file(&self, path: &str) -> Result<u32> {
        let meta = self.meta();
        let (mut lo, mut hi) = (0u32, self.file_count());
        let mut chunk = [0u8; 64];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = self.manifest.file(&meta, mid)?;
            // Compare the stored path with `path` byte by byte, in chunks.
            let (at, len) = (r.path_offset.get(), r.path_length.get() as usize);
            let mut order = core::cmp::Ordering::Equal;
            let mut done = 0usize;
            while done < len.min(path.len()) && order == core::cmp::Ordering::Equal {
                let n = (len.min(path.len()) - done).min(chunk.len());
                meta.read_exact_at(self.manifest.string_offset(at) + done as u64, &mut chunk[..n])?;
                order = chunk[..n].cmp(&path.as_bytes()[done..done + n]);
                done += n;
            }
            if order == core::cmp::Ordering::Equal {
                order = len.cmp(&path.len());
            }
            match order {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(Error::NotFound { what: "file" })
    }

    /// Tensor record `index`, checked.
    pub fn tensor_record(&self, index: u32) -> Result<crate::layout::TensorRecord> {
        self.manifest.tensor(&self.meta(), index)
    }

    /// Read tensor `index` into the start of `out`; returns its length.
    pub fn read_tensor<S: Scratch + ?Sized>(&self, index: u32, out: &mut [u8], scratch: &mut S) -> Result<usize> {
        let r = self.tensor_record(index)?;
        let len = usize::try_from(r.length.get()).map_err(|_| Error::InvalidArgument("tensor too large"))?;
        let got = out.len() as u64;
        let dst = out.get_mut(..len).ok_or(Error::BufferTooSmall { what: "tensor buffer", needed: len as u64, got })?;
        self.read_at(r.virtual_offset.get(), dst, scratch)?;
        Ok(len)
    }
}
