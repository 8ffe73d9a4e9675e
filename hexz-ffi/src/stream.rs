//! hexz_fopen: the archive's original file as a read-only, seekable stdio
//! `FILE *`, for engines whose loader takes one (llama.cpp's
//! `llama_model_load_from_file_ptr`, ggml's `gguf_init_from_file_ptr`).
//! glibc and musl build it with `fopencookie`, macOS and the BSDs with
//! `funopen`; elsewhere it is UNSUPPORTED.
//!
//! stdio reads a cookie stream only through its buffer (glibc: a large
//! `fread` becomes one buffer-sized read after another), so a stream
//! brings its own 8 MiB buffer. A read callback then asks for up to 8 MiB:
//! the whole blocks in it are decoded in parallel straight into stdio's
//! buffer, from which stdio copies into the caller's memory. A read stops
//! at the end of the tensor it is in (blocks follow tensors), so loading a
//! tensor never decodes its neighbour's blocks. A block a read covers only
//! in part (it starts inside one, as after an `fseek`, for which stdio
//! first fills its buffer from the aligned offset before the target; or
//! ends inside one) is decoded whole into a cache of the last four such
//! blocks, where the next read finds the rest: small reads and seeks
//! decode a block once, not once per read.

use hexz_format::ErrorCode;

use crate::args::{handle, write_out};
use crate::hexz_archive;
use crate::status::{guard, FfiError};
use crate::tables::ArchiveHandle;

/// C's `FILE`, as stdio.h declares it (opaque here).
#[cfg(unix)]
pub use libc::FILE;
/// C's `FILE`, as stdio.h declares it (opaque here).
/// cbindgen:ignore
#[cfg(not(unix))]
pub enum FILE {}

/// Streams where stdio can be given custom I/O (build.rs sets the cfg).
/// The header has nothing of it (its stdio functions are the platform's).
/// cbindgen:ignore
#[cfg(hexz_stdio_cookies)]
mod cookie {
    use std::ffi::{c_char, c_int, c_void};

    use hexz_format::ErrorCode;
    use libc::{EINVAL, EIO, ENOMEM, EOVERFLOW, SEEK_CUR, SEEK_END, SEEK_SET};

    use super::FILE;
    use crate::status::{contain, set_last_error, FfiError};
    use crate::tables::ArchiveHandle;

    /// Size of the stdio buffer a stream brings (power of two, at most):
    /// stdio reads a cookie stream through its buffer, one buffer at a
    /// time, so this is the most one read callback decodes in parallel.
    const STDIO_BUFFER: usize = 8 << 20;
    /// Decoded blocks kept for reads that start or end inside a block.
    const CACHED_BLOCKS: usize = 4;

    /// The state behind one stream: which bytes it shows, where it is, its
    /// stdio buffer, and the blocks decoded for partial reads.
    struct Stream {
        /// Borrowed: the header requires fclose before hexz_close.
        archive: *const ArchiveHandle,
        /// Where the stream's bytes start in the archive's virtual space.
        start: u64,
        /// Length of the stream.
        len: u64,
        /// Position, relative to `start`; may be past `len` (reads give EOF).
        pos: u64,
        /// Where tensors start and end in the virtual space, sorted: a read
        /// stops at the next one (blocks follow tensors, so these are block
        /// ends), so that reading a tensor never decodes the next one's blocks.
        boundaries: Vec<u64>,
        /// Blocks decoded whole for reads covering part of them, most recent last.
        blocks: Vec<CachedBlock>,
        /// The buffer given to stdio (setvbuf); freed with the stream.
        _stdio_buffer: Vec<u8>,
    }

    struct CachedBlock {
        at: u64,
        bytes: Vec<u8>,
    }

    impl Stream {
        fn archive(&self) -> &ArchiveHandle {
            // SAFETY: the archive outlives its streams (the header's contract).
            unsafe { &*self.archive }
        }

        /// Read up to `buf.len()` bytes at the position; 0 at the end. May
        /// return fewer bytes than asked (stdio asks again for the rest).
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, FfiError> {
            if self.pos >= self.len || buf.is_empty() {
                return Ok(0);
            }
            let at = self.start + self.pos;
            // Up to the end of the stream, and of the tensor (or the gap
            // between tensors) holding `at`.
            let next = self.boundaries.partition_point(|&b| b <= at);
            let end = self.boundaries.get(next).copied().unwrap_or(u64::MAX).min(self.start + self.len);
            let n = (buf.len() as u64).min(end - at) as usize;
            let got = match self.copy_cached(at, &mut buf[..n]) {
                0 => self.decode(at, &mut buf[..n])?,
                k => k,
            };
            self.pos += got as u64;
            Ok(got)
        }

        /// Copy what a cached block holds at `at`; 0 when none holds it.
        fn copy_cached(&self, at: u64, buf: &mut [u8]) -> usize {
            let Some(block) = self.blocks.iter().rev().find(|b| b.at <= at && at < b.at + b.bytes.len() as u64) else {
                return 0;
            };
            let from = (at - block.at) as usize;
            let k = buf.len().min(block.bytes.len() - from);
            buf[..k].copy_from_slice(&block.bytes[from..from + k]);
            k
        }

        /// Decode for a read at `at` that no cached block holds. Whole
        /// blocks are decoded in parallel straight into `buf` (stdio's
        /// buffer); a block the read covers only in part (where it starts
        /// inside one, or ends inside one) is decoded whole into the cache,
        /// where the next read finds the rest of it.
        fn decode(&mut self, at: u64, buf: &mut [u8]) -> Result<usize, FfiError> {
            let reader = &self.archive().reader;
            let (block_start, block_len) = reader.block_span(at)?;
            let end = at + buf.len() as u64;
            if block_start < at || end < block_start + block_len {
                self.cache_block(block_start, block_len)?;
                return Ok(self.copy_cached(at, buf));
            }
            let whole_end = match reader.block_span(end - 1)? {
                (last_start, last_len) if last_start + last_len == end => end,
                (last_start, _) => last_start,
            };
            let dst = &mut buf[..(whole_end - at) as usize];
            // A failed read leaves no unverified bytes behind.
            reader.read_into_parallel(at, dst, 0, &|_| std::ops::ControlFlow::Continue(())).map_err(|e| {
                dst.fill(0);
                FfiError::from(e)
            })?;
            Ok(dst.len())
        }

        /// Decode the block `[start, start + len)` into the cache, dropping
        /// the least recently decoded one when it is full.
        fn cache_block(&mut self, start: u64, len: u64) -> Result<(), FfiError> {
            let len = usize::try_from(len).map_err(|_| FfiError::invalid("block larger than the address space"))?;
            let mut bytes = if self.blocks.len() >= CACHED_BLOCKS { self.blocks.remove(0).bytes } else { Vec::new() };
            bytes.clear();
            bytes
                .try_reserve_exact(len)
                .map_err(|_| FfiError::new(ErrorCode::OutOfMemory, "out of memory for the stream's block cache"))?;
            bytes.resize(len, 0);
            self.archive().reader.read_at(start, &mut bytes)?;
            self.blocks.push(CachedBlock { at: start, bytes });
            Ok(())
        }

        /// Move to `offset` from `whence` (SEEK_SET, SEEK_CUR, SEEK_END); the
        /// new position. Past the end is allowed (reads there give EOF).
        fn seek(&mut self, offset: i64, whence: c_int) -> Result<u64, c_int> {
            let base = match whence {
                SEEK_SET => 0,
                SEEK_CUR => self.pos,
                SEEK_END => self.len,
                _ => return Err(EINVAL),
            };
            let to = i64::try_from(base).ok().and_then(|b| b.checked_add(offset)).ok_or(EOVERFLOW)?;
            self.pos = u64::try_from(to).map_err(|_| EINVAL)?;
            Ok(self.pos)
        }
    }

    /// Set errno for stdio's caller.
    fn set_errno(code: c_int) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        // SAFETY: the calling thread's errno.
        unsafe {
            *libc::__errno_location() = code
        };
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "dragonfly"))]
        // SAFETY: the calling thread's errno.
        unsafe {
            *libc::__error() = code
        };
        #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
        // SAFETY: the calling thread's errno.
        unsafe {
            *libc::__errno() = code
        };
    }

    /// A stream's read: the bytes read, 0 at the end, or -1 with errno set
    /// (EIO, ENOMEM) and hexz_last_error() on this thread naming the failure.
    ///
    /// # Safety
    /// `cookie` is a live `Stream`; `buf` is writable for `size` bytes.
    unsafe fn stream_read(cookie: *mut c_void, buf: *mut c_char, size: usize) -> isize {
        let outcome = contain(|| {
            // SAFETY: stdio passes the cookie it was given, one call at a time per stream.
            let stream = unsafe { &mut *(cookie as *mut Stream) };
            let size = size.min(isize::MAX as usize);
            if size == 0 {
                return Ok(0);
            }
            // SAFETY: stdio's buffer or the caller's, writable for `size` bytes.
            let buf = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, size) };
            stream.read(buf)
        });
        match outcome {
            Ok(Ok(n)) => n as isize,
            Ok(Err(e)) => {
                set_errno(if e.status == ErrorCode::OutOfMemory { ENOMEM } else { EIO });
                set_last_error(&e.message);
                -1
            }
            Err(text) => {
                set_errno(EIO);
                set_last_error(&format!(
                    "internal failure (a bug; please report it), contained in a stream read: {text}"
                ));
                -1
            }
        }
    }

    /// A stream's seek: 0 with `*offset` the new position, or -1 with errno.
    ///
    /// # Safety
    /// `cookie` is a live `Stream`.
    unsafe fn stream_seek(cookie: *mut c_void, offset: i64, whence: c_int) -> Result<i64, ()> {
        // SAFETY: stdio passes the cookie it was given, one call at a time per stream.
        let stream = unsafe { &mut *(cookie as *mut Stream) };
        match stream.seek(offset, whence) {
            Ok(pos) => Ok(pos as i64),
            Err(code) => {
                set_errno(code);
                Err(())
            }
        }
    }

    /// A stream's close: frees its state.
    ///
    /// # Safety
    /// `cookie` is a live `Stream`, not used after this.
    unsafe fn stream_close(cookie: *mut c_void) -> c_int {
        // SAFETY: made by Box::into_raw in open_stream, closed once by stdio.
        let _ = contain(|| drop(unsafe { Box::from_raw(cookie as *mut Stream) }));
        0
    }

    #[cfg(target_os = "linux")]
    mod platform {
        use super::*;

        /// glibc's and musl's cookie_io_functions_t.
        #[repr(C)]
        struct CookieIoFunctions {
            read: Option<unsafe extern "C" fn(*mut c_void, *mut c_char, usize) -> isize>,
            write: Option<unsafe extern "C" fn(*mut c_void, *const c_char, usize) -> isize>,
            seek: Option<unsafe extern "C" fn(*mut c_void, *mut i64, c_int) -> c_int>,
            close: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
        }

        extern "C" {
            fn fopencookie(cookie: *mut c_void, mode: *const c_char, funcs: CookieIoFunctions) -> *mut FILE;
        }

        unsafe extern "C" fn read(cookie: *mut c_void, buf: *mut c_char, size: usize) -> isize {
            // SAFETY: stdio's arguments, as fopencookie documents them.
            unsafe { stream_read(cookie, buf, size) }
        }

        unsafe extern "C" fn seek(cookie: *mut c_void, offset: *mut i64, whence: c_int) -> c_int {
            // SAFETY: stdio passes a valid offset pointer.
            let at = unsafe { *offset };
            // SAFETY: stdio's cookie.
            match unsafe { stream_seek(cookie, at, whence) } {
                Ok(pos) => {
                    // SAFETY: as above.
                    unsafe { *offset = pos };
                    0
                }
                Err(()) => -1,
            }
        }

        unsafe extern "C" fn close(cookie: *mut c_void) -> c_int {
            // SAFETY: stdio's cookie, closed once.
            unsafe { stream_close(cookie) }
        }

        /// A read-only stdio stream over `cookie` (a boxed Stream), or NULL.
        pub fn open(cookie: *mut c_void) -> *mut FILE {
            let funcs = CookieIoFunctions { read: Some(read), write: None, seek: Some(seek), close: Some(close) };
            // SAFETY: a NUL-terminated mode; the functions match the cookie.
            unsafe { fopencookie(cookie, c"r".as_ptr(), funcs) }
        }
    }

    #[cfg(not(target_os = "linux"))]
    mod platform {
        use super::*;

        type ReadFn = unsafe extern "C" fn(*mut c_void, *mut c_char, c_int) -> c_int;
        type WriteFn = unsafe extern "C" fn(*mut c_void, *const c_char, c_int) -> c_int;
        type SeekFn = unsafe extern "C" fn(*mut c_void, i64, c_int) -> i64;
        type CloseFn = unsafe extern "C" fn(*mut c_void) -> c_int;

        extern "C" {
            fn funopen(
                cookie: *const c_void,
                read: Option<ReadFn>,
                write: Option<WriteFn>,
                seek: Option<SeekFn>,
                close: Option<CloseFn>,
            ) -> *mut FILE;
        }

        unsafe extern "C" fn read(cookie: *mut c_void, buf: *mut c_char, size: c_int) -> c_int {
            // SAFETY: stdio's arguments, as funopen documents them; the result fits (size is an int).
            unsafe { stream_read(cookie, buf, size.max(0) as usize) as c_int }
        }

        unsafe extern "C" fn seek(cookie: *mut c_void, offset: i64, whence: c_int) -> i64 {
            // SAFETY: stdio's cookie.
            unsafe { stream_seek(cookie, offset, whence) }.unwrap_or(-1)
        }

        unsafe extern "C" fn close(cookie: *mut c_void) -> c_int {
            // SAFETY: stdio's cookie, closed once.
            unsafe { stream_close(cookie) }
        }

        /// A read-only stdio stream over `cookie` (a boxed Stream), or NULL.
        pub fn open(cookie: *mut c_void) -> *mut FILE {
            // SAFETY: the functions match the cookie; no write function: read-only.
            unsafe { funopen(cookie, Some(read), None, Some(seek), Some(close)) }
        }
    }

    /// A stream over `[start, start + len)` of the archive's virtual space.
    pub fn open(archive: &ArchiveHandle, start: u64, len: u64) -> Result<*mut FILE, FfiError> {
        let oom = || FfiError::new(ErrorCode::OutOfMemory, "out of memory for the stream");
        let tensors = archive.reader.tensors();
        let mut boundaries = Vec::new();
        boundaries.try_reserve_exact(tensors.len() * 2).map_err(|_| oom())?;
        for t in tensors {
            boundaries.push(t.offset);
            boundaries.push(t.offset.saturating_add(t.length));
        }
        boundaries.sort_unstable();
        boundaries.dedup();
        // A small stream gets a small buffer (a power of two, as stdio
        // aligns its seeks to the buffer's size).
        let buffer_len = (len.max(4096).next_power_of_two() as usize).min(STDIO_BUFFER);
        let mut stdio_buffer = Vec::new();
        stdio_buffer.try_reserve_exact(buffer_len).map_err(|_| oom())?;
        stdio_buffer.resize(buffer_len, 0);
        let buffer = stdio_buffer.as_mut_ptr();
        let stream = Box::new(Stream {
            archive: archive as *const ArchiveHandle,
            start,
            len,
            pos: 0,
            boundaries,
            blocks: Vec::new(),
            _stdio_buffer: stdio_buffer,
        });
        let cookie = Box::into_raw(stream) as *mut c_void;
        let file = platform::open(cookie);
        if file.is_null() {
            let error = std::io::Error::last_os_error();
            // SAFETY: stdio did not take the cookie.
            drop(unsafe { Box::from_raw(cookie as *mut Stream) });
            return Err(FfiError::new(
                if error.kind() == std::io::ErrorKind::OutOfMemory { ErrorCode::OutOfMemory } else { ErrorCode::Io },
                format!("opening the stdio stream: {error}"),
            ));
        }
        // The stream's own buffer, so that stdio reads in large pieces. It
        // lives in the cookie, which stdio frees last (in the close callback).
        // SAFETY: a fresh stream with no I/O yet; the buffer outlives it.
        if unsafe { libc::setvbuf(file, buffer as *mut c_char, libc::_IOFBF, buffer_len) } != 0 {
            // SAFETY: our stream, closed once; its close callback frees the cookie.
            unsafe { libc::fclose(file) };
            return Err(FfiError::new(ErrorCode::Io, "setting the stdio stream's buffer"));
        }
        Ok(file)
    }
}

/// A stream over `[start, start + len)` of the archive's virtual space.
fn open_stream(archive: &ArchiveHandle, start: u64, len: u64) -> Result<*mut FILE, FfiError> {
    #[cfg(hexz_stdio_cookies)]
    return cookie::open(archive, start, len);
    #[cfg(not(hexz_stdio_cookies))]
    {
        let _ = (archive, start, len);
        Err(FfiError::unsupported("stdio streams over an archive need fopencookie or funopen"))
    }
}

/// The archive's original file (a folder archive: its files laid end to
/// end) as a read-only, seekable stdio stream at offset 0, for loaders that
/// take a `FILE *` (llama.cpp's llama_model_load_from_file_ptr with mmap
/// off). Close it with fclose, before hexz_close on the archive.
///
/// The stream has its own 8 MiB stdio buffer (do not replace it with
/// setvbuf): stdio reads a custom stream only through its buffer, so each
/// buffer fill is decoded on several threads (up to read_slots) straight
/// into that buffer, and stdio copies from there into the caller's memory.
/// A fill stops at the end of the tensor it is in, so loading a tensor
/// decodes only its own blocks. Blocks read in part (after a seek, or by
/// small reads) are kept decoded, a few at a time (up to four blocks of
/// memory), so they are not decoded again for the next read.
/// fseek/fseeko and ftell/ftello work with SEEK_SET, SEEK_CUR and SEEK_END
/// (a position past the end reads as end of file; before the start is
/// EINVAL). Writing fails. A failed read sets the stream's error indicator
/// and errno (EIO, or ENOMEM), and hexz_last_error() on the reading thread
/// says why; the bytes of a failed read are never handed to the caller.
/// One stream is for one thread at a time (stdio locks it per call); open
/// one per thread to read in parallel.
///
/// glibc and musl (fopencookie), macOS and the BSDs (funopen); elsewhere
/// UNSUPPORTED.
///
/// Statuses: OK; NULL_ARGUMENT; UNSUPPORTED; IO or OUT_OF_MEMORY (the
/// stream could not be made); PANIC.
#[no_mangle]
pub unsafe extern "C" fn hexz_fopen(archive: *const hexz_archive, out: *mut *mut FILE) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let file = open_stream(h, 0, h.reader.size())?;
        // SAFETY: checked non-NULL; writable (the header's contract).
        unsafe { write_out(out, file) }
    })
}

/// File `index` of a folder archive (0 ≤ index < hexz_file_count) as a
/// read-only, seekable stdio stream of its own bytes, as hexz_fopen.
///
/// Statuses: as hexz_fopen, plus INVALID_ARGUMENT (index out of range, or
/// a directory).
#[no_mangle]
pub unsafe extern "C" fn hexz_fopen_file(archive: *const hexz_archive, index: usize, out: *mut *mut FILE) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let f = h.reader.files().get(index).ok_or_else(|| FfiError::invalid("file index out of range"))?;
        if f.kind != hexz_format::layout::FileKind::File {
            return Err(FfiError::invalid("that entry is a directory"));
        }
        let file = open_stream(h, f.offset, f.length)?;
        // SAFETY: checked non-NULL; writable (the header's contract).
        unsafe { write_out(out, file) }
    })
}
