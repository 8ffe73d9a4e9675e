//! Argument helpers: every pointer the caller passes is checked here.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;

use crate::hexz_archive;
use crate::status::FfiError;
use crate::tables::ArchiveHandle;

/// The handle behind `archive`.
///
/// # Safety
/// `archive` is NULL or a pointer hexz_open_* returned and hexz_close has
/// not freed.
pub unsafe fn handle<'a>(archive: *const hexz_archive) -> Result<&'a ArchiveHandle, FfiError> {
    if archive.is_null() {
        return Err(FfiError::null("archive"));
    }
    // SAFETY: non-NULL, and by the caller's promise a live handle.
    Ok(&unsafe { &*archive }.0)
}

/// Write `value` to the output pointer `out`.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    // SAFETY: non-NULL and, by the caller's promise, writable.
    unsafe { out.write(value) };
    Ok(())
}

/// Write `value` to `out` when `out` is not NULL (optional outputs).
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
pub unsafe fn write_optional<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and, by the caller's promise, writable.
        unsafe { out.write(value) };
    }
}

/// A NUL-terminated string argument.
///
/// # Safety
/// `text` is NULL or points to a NUL-terminated string.
pub unsafe fn cstr<'a>(text: *const c_char, what: &str) -> Result<&'a CStr, FfiError> {
    if text.is_null() {
        return Err(FfiError::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's promise.
    Ok(unsafe { CStr::from_ptr(text) })
}

/// A path argument (NUL-terminated, bytes as the OS takes them).
///
/// # Safety
/// As [`cstr`].
pub unsafe fn path_arg(path: *const c_char, what: &str) -> Result<PathBuf, FfiError> {
    // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
    let bytes = unsafe { cstr(path, what) }?.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).map(PathBuf::from).map_err(|_| FfiError::invalid("path is not UTF-8"))
    }
}

/// A caller buffer of `len` bytes; NULL is allowed only when `len` is 0.
///
/// # Safety
/// `ptr` is NULL or valid for writing `len` bytes, not aliased during the call.
pub unsafe fn buffer<'a>(ptr: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8], FfiError> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid("buffer length exceeds isize::MAX"));
    }
    // SAFETY: non-NULL, len <= isize::MAX, and writable for len bytes by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Borrowed bytes the caller keeps valid (memory archives).
///
/// # Safety
/// `ptr` is NULL or valid for reading `len` bytes for as long as the result is used.
pub unsafe fn borrowed_bytes(ptr: *const u8, len: usize, what: &str) -> Result<&'static [u8], FfiError> {
    if ptr.is_null() {
        return Err(FfiError::null(what));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid("length exceeds isize::MAX"));
    }
    // SAFETY: non-NULL, len <= isize::MAX, readable and unchanged until hexz_close (the
    // header states it); 'static stands for "until the handle is closed".
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Option structs begin with `struct_size`, so they can grow: the library
/// reads the bytes the caller's version of the struct has and treats the
/// rest as zero (every field's default); a newer caller's extra fields are
/// accepted only when zero. Implemented for structs made of integers and
/// pointers only (every bit pattern is valid).
///
/// # Safety
/// Implementors are `#[repr(C)]`, start with a `usize` struct_size, and are
/// valid for any bit pattern.
pub unsafe trait Versioned: Sized {
    /// The defaults: zero everywhere, struct_size set.
    fn defaults() -> Self;
}

/// Read an option struct the caller passed (NULL: the defaults).
///
/// # Safety
/// `ptr` is NULL or points to at least `struct_size` readable bytes, where
/// `struct_size` is its first field.
pub unsafe fn read_options<T: Versioned>(ptr: *const T, what: &str) -> Result<T, FfiError> {
    let mut out = T::defaults();
    if ptr.is_null() {
        return Ok(out);
    }
    // SAFETY: every options struct starts with a usize, readable by the caller's promise.
    let size = unsafe { (ptr as *const usize).read_unaligned() };
    let ours = std::mem::size_of::<T>();
    if size < std::mem::size_of::<usize>() {
        return Err(FfiError::invalid(&format!(
            "{what}.struct_size is {size}: initialize the struct with its _INIT macro"
        )));
    }
    let base = ptr as *const u8;
    if size > ours {
        // SAFETY: the caller's struct is `size` bytes long.
        let extra = unsafe { std::slice::from_raw_parts(base.add(ours), size - ours) };
        if extra.iter().any(|&b| b != 0) {
            return Err(FfiError::invalid(&format!(
                "{what} sets fields this library version does not know (struct_size {size}, known {ours})"
            )));
        }
    }
    let n = size.min(ours);
    // SAFETY: n bytes are readable from the caller's struct and writable in `out`;
    // T is valid for any bit pattern (Versioned's contract).
    unsafe { std::ptr::copy_nonoverlapping(base, &mut out as *mut T as *mut u8, n) };
    Ok(out)
}

/// Structs the library fills begin with `struct_size` as well, so they can
/// grow: the caller sets it to the size of its version of the struct (the
/// _INIT macro does), the library writes only the bytes that size covers
/// and sets `struct_size` to the bytes it wrote (the smaller of the
/// caller's size and its own). A program built against an older header
/// gets the fields it knows; a newer program on an older library sees
/// from `struct_size` which fields were filled.
///
/// # Safety
/// Implementors are `#[repr(C)]` and start with a `usize` struct_size.
pub unsafe trait OutputStruct: Sized {}

/// The caller's size of the output struct at `out` (non-NULL), checked.
///
/// # Safety
/// `out` is valid for reading a `usize`.
unsafe fn caller_size<T: OutputStruct>(out: *const T, what: &str) -> Result<usize, FfiError> {
    // SAFETY: every output struct starts with a usize, readable by the caller's promise.
    let size = unsafe { (out as *const usize).read_unaligned() };
    if size < std::mem::size_of::<usize>() {
        return Err(FfiError::invalid(&format!(
            "{what}.struct_size is {size}: initialize the struct with its _INIT macro"
        )));
    }
    Ok(size)
}

/// Check an optional output struct's struct_size before work whose result
/// it will hold (so that a bad size fails before anything happens).
///
/// # Safety
/// `out` is NULL or valid for reading a `usize`.
pub unsafe fn check_sized_optional<T: OutputStruct>(out: *const T, what: &str) -> Result<(), FfiError> {
    if !out.is_null() {
        // SAFETY: non-NULL and readable by the caller's promise.
        unsafe { caller_size(out, what) }?;
    }
    Ok(())
}

/// Write `value` into the caller's output struct `out`: as many bytes as
/// its struct_size covers, and struct_size set to that number.
///
/// # Safety
/// `out` is NULL or valid for writing its own struct_size bytes.
pub unsafe fn write_sized<T: OutputStruct>(out: *mut T, value: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    // SAFETY: non-NULL and readable by the caller's promise.
    let n = unsafe { caller_size(out, what) }?.min(std::mem::size_of::<T>());
    let mut value = value;
    // SAFETY: T starts with its usize struct_size (OutputStruct's contract).
    unsafe { (&mut value as *mut T as *mut usize).write(n) };
    // SAFETY: n bytes are readable from `value` and writable at `out` (the
    // caller's struct is at least n bytes long); they do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(&value as *const T as *const u8, out as *mut u8, n) };
    Ok(())
}

/// [`write_sized`] when `out` is not NULL (optional outputs).
///
/// # Safety
/// As [`write_sized`].
pub unsafe fn write_sized_optional<T: OutputStruct>(out: *mut T, value: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { write_sized(out, value, what) }
}
