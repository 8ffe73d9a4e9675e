//! The archive handle: the open archive, tables built once at open (so
//! reads allocate nothing), and a pool of read workspaces.

use std::ffi::{c_char, c_int, c_void};
use std::sync::{Condvar, Mutex};

use hexz_format::reader::Workspace;
use hexz_format::{Archive, Error, FileSource, ReadAt};

use crate::gguf_api::GgufTable;
use crate::status::FfiError;
use crate::{hexz_archive_info, hexz_open_options, hexz_tensor_info, HEXZ_DEFAULT_READ_SLOTS, HEXZ_NO_GGML_TYPE};

/// Opaque handle to an open archive.
pub struct hexz_archive(pub(crate) ArchiveHandle);

/// Where the archive bytes come from.
pub enum FfiSource {
    File(FileSource),
    Memory(&'static [u8]),
    Callback { read_at: unsafe extern "C" fn(*mut c_void, u64, *mut u8, usize) -> c_int, user: *mut c_void, size: u64 },
}

// The caller promises (in the header) that memory stays valid and that the
// callback and its user data may be used from the threads that read.
unsafe impl Send for FfiSource {}
unsafe impl Sync for FfiSource {}

impl ReadAt for FfiSource {
    fn len(&self) -> u64 {
        match self {
            FfiSource::File(f) => f.len(),
            FfiSource::Memory(m) => <[u8]>::len(m) as u64,
            FfiSource::Callback { size, .. } => *size,
        }
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        match self {
            FfiSource::File(f) => f.read_exact_at(offset, buf),
            FfiSource::Memory(m) => m.read_exact_at(offset, buf),
            FfiSource::Callback { read_at, user, size } => {
                if offset.checked_add(buf.len() as u64).is_none_or(|end| end > *size) {
                    return Err(Error::Truncated {
                        what: "read",
                        offset,
                        needed: buf.len() as u64,
                        available: size.saturating_sub(offset),
                    });
                }
                match unsafe { read_at(*user, offset, buf.as_mut_ptr(), buf.len()) } {
                    0 => Ok(()),
                    _ => Err(Error::Io { offset, kind: hexz_format::error::IoKind("read callback failed") }),
                }
            }
        }
    }
    fn borrow_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        match self {
            FfiSource::Memory(m) => m.borrow_at(offset, len),
            _ => None,
        }
    }
}

/// A tensor with NUL-terminated strings, built at open.
pub struct TensorEntry {
    name: Box<[u8]>,
    dtype: Box<[u8]>,
    dims: Box<[u64]>,
    ggml_type: u32,
    pub offset: u64,
    pub length: u64,
    storage_kind: u32,
}

/// Bytes followed by a NUL, for returning as a C string with a length.
pub fn nul_terminated(bytes: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(bytes.len() + 1);
    v.extend_from_slice(bytes);
    v.push(0);
    v.into_boxed_slice()
}

impl TensorEntry {
    pub fn info(&self) -> hexz_tensor_info {
        hexz_tensor_info {
            name: self.name.as_ptr() as *const c_char,
            name_len: self.name.len() - 1,
            dtype: self.dtype.as_ptr() as *const c_char,
            dtype_len: self.dtype.len() - 1,
            ggml_type: self.ggml_type,
            n_dims: self.dims.len() as u32,
            dims: self.dims.as_ptr(),
            offset: self.offset,
            length: self.length,
            storage_kind: self.storage_kind,
        }
    }
}

pub struct ArchiveHandle {
    archive: Archive<FfiSource>,
    pub tensors: Vec<TensorEntry>,
    /// Tensor indices sorted by name, for binary search.
    by_name: Vec<usize>,
    pub source_header: Vec<u8>,
    pub gguf: Option<GgufTable>,
    pool: Mutex<Vec<Workspace>>,
    returned: Condvar,
    memory_bytes: u64,
    parent_identity: Option<[u8; 32]>,
}

impl ArchiveHandle {
    pub fn open(source: FfiSource, opts: Option<hexz_open_options>) -> Result<Self, FfiError> {
        Self::from_archive(Archive::open(source).map_err(FfiError::format)?, opts)
    }

    /// Build the tables and read slots for an opened archive (chain attached).
    pub fn from_archive(mut archive: Archive<FfiSource>, opts: Option<hexz_open_options>) -> Result<Self, FfiError> {
        let slots = match opts.map_or(0, |o| o.read_slots) {
            0 => HEXZ_DEFAULT_READ_SLOTS,
            n if n > 256 => return Err(FfiError::invalid("read_slots must be at most 256")),
            n => n,
        };
        if opts.is_some_and(|o| o.skip_hash_check) {
            archive.set_verify_hashes(false);
        }
        let manifest = archive.manifest().map_err(FfiError::format)?;
        let tensors: Vec<TensorEntry> = manifest
            .tensors
            .iter()
            .map(|t| TensorEntry {
                name: nul_terminated(t.name.as_bytes()),
                dtype: nul_terminated(t.dtype.as_bytes()),
                dims: t.shape.clone().into_boxed_slice(),
                ggml_type: t.ggml_type.unwrap_or(HEXZ_NO_GGML_TYPE),
                offset: t.offset,
                length: t.length,
                storage_kind: u32::from(t.storage_kind),
            })
            .collect();
        let mut by_name: Vec<usize> = (0..tensors.len()).collect();
        by_name.sort_by(|&a, &b| tensors[a].name.cmp(&tensors[b].name));
        let source_header = archive.source_header().map_err(FfiError::format)?;
        let gguf = if manifest.source_format == hexz_format::layout::source_format::GGUF {
            Some(GgufTable::build(&source_header, archive.virtual_size())?)
        } else {
            None
        };
        let mut pool = Vec::with_capacity(slots as usize);
        for _ in 0..slots {
            pool.push(archive.new_scratch());
        }
        let memory_bytes = (pool.iter().map(|w| w.len()).sum::<usize>()
            + source_header.len() * 2
            + tensors.iter().map(|t| t.name.len() + t.dtype.len() + t.dims.len() * 8 + 64).sum::<usize>())
            as u64;
        Ok(ArchiveHandle {
            archive,
            tensors,
            by_name,
            source_header,
            gguf,
            pool: Mutex::new(pool),
            returned: Condvar::new(),
            memory_bytes,
            parent_identity: manifest.parent.map(|p| p.identity),
        })
    }

    pub fn info(&self) -> hexz_archive_info {
        hexz_archive_info {
            source_format: u32::from(self.archive.manifest_view().source_format()),
            has_parent: u32::from(self.parent_identity.is_some()),
            original_size: self.archive.virtual_size(),
            archive_size: self.archive.source().len(),
            tensor_count: self.tensors.len() as u64,
            block_count: self.archive.block_count(),
            memory_bytes: self.memory_bytes,
            identity: self.archive.identity(),
            parent_identity: self.parent_identity.unwrap_or([0; 32]),
            source_blake3: self.archive.source_hash(),
        }
    }

    pub fn find_tensor(&self, name: &[u8]) -> Option<usize> {
        self.by_name
            .binary_search_by(|&i| self.tensors[i].name[..self.tensors[i].name.len() - 1].cmp(name))
            .ok()
            .map(|pos| self.by_name[pos])
    }

    /// Read virtual bytes with a pooled workspace; waits while all are busy.
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), FfiError> {
        let mut workspace = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(w) = pool.pop() {
                    break w;
                }
                pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = self.archive.read_at(offset, dst, &mut workspace);
        self.pool.lock().unwrap_or_else(|p| p.into_inner()).push(workspace);
        self.returned.notify_one();
        result.map_err(FfiError::format)
    }

    #[cfg(target_os = "linux")]
    pub fn memfd(&self) -> Result<c_int, FfiError> {
        use std::io::Write;
        use std::os::fd::{FromRawFd, IntoRawFd};
        let fd = unsafe { libc::memfd_create(c"hexz".as_ptr(), 0) };
        if fd < 0 {
            return Err(FfiError::new(
                crate::hexz_status::Io,
                format!("memfd_create failed: {}", std::io::Error::last_os_error()),
            ));
        }
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let size = self.archive.virtual_size();
        let mut buf = vec![0u8; (8u64 << 20).min(size.max(1)) as usize];
        let mut done = 0u64;
        while done < size {
            let n = (size - done).min(buf.len() as u64) as usize;
            self.read(done, &mut buf[..n])?;
            file.write_all(&buf[..n])
                .map_err(|e| FfiError::new(crate::hexz_status::Io, format!("memfd write: {e}")))?;
            done += n as u64;
        }
        Ok(file.into_raw_fd())
    }

    #[cfg(not(target_os = "linux"))]
    pub fn memfd(&self) -> Result<c_int, FfiError> {
        Err(FfiError::unsupported("memfd is only available on Linux"))
    }
}
