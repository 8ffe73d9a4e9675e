//! GGUF metadata, as ggml's gguf.h gives it to an engine: enumerate keys,
//! value types, typed getters for every type, arrays of scalars as raw data
//! and arrays of strings element by element. Built once at open.

use std::ffi::{c_char, c_void};

use hexz_format::gguf::GgufValue;
use hexz_format::ErrorCode;

use crate::args::{cstr, handle, write_optional, write_out};
use crate::hexz_archive;
use crate::status::{guard, FfiError};
use crate::tables::{c_str_view, view_ptr, GgufTable, Kv, Value};

/// GGUF value type ids (as in gguf.h and the GGUF spec).
pub const HEXZ_GGUF_TYPE_UINT8: u32 = 0;
pub const HEXZ_GGUF_TYPE_INT8: u32 = 1;
pub const HEXZ_GGUF_TYPE_UINT16: u32 = 2;
pub const HEXZ_GGUF_TYPE_INT16: u32 = 3;
pub const HEXZ_GGUF_TYPE_UINT32: u32 = 4;
pub const HEXZ_GGUF_TYPE_INT32: u32 = 5;
pub const HEXZ_GGUF_TYPE_FLOAT32: u32 = 6;
pub const HEXZ_GGUF_TYPE_BOOL: u32 = 7;
pub const HEXZ_GGUF_TYPE_STRING: u32 = 8;
pub const HEXZ_GGUF_TYPE_ARRAY: u32 = 9;
pub const HEXZ_GGUF_TYPE_UINT64: u32 = 10;
pub const HEXZ_GGUF_TYPE_INT64: u32 = 11;
pub const HEXZ_GGUF_TYPE_FLOAT64: u32 = 12;

/// The GGUF table of `archive`.
///
/// # Safety
/// As [`handle`].
unsafe fn table<'a>(archive: *const hexz_archive) -> Result<&'a GgufTable, FfiError> {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    unsafe { handle(archive) }?.gguf.as_ref().ok_or_else(|| FfiError::unsupported("the archived file is not GGUF"))
}

/// Key/value `index` of `archive`.
///
/// # Safety
/// As [`handle`].
unsafe fn kv<'a>(archive: *const hexz_archive, index: usize) -> Result<&'a Kv, FfiError> {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    unsafe { table(archive) }?.kvs.get(index).ok_or_else(|| FfiError::invalid("key index out of range"))
}

/// Write a NUL-terminated box as a (pointer, length) pair.
///
/// # Safety
/// `out` and `out_len` are NULL or writable.
unsafe fn write_str(bytes: &[u8], out: *mut *const c_char, out_len: *mut usize) -> Result<(), FfiError> {
    if out.is_null() || out_len.is_null() {
        return Err(FfiError::null("out/out_len"));
    }
    let (ptr, len) = c_str_view(bytes);
    // SAFETY: both checked non-NULL; writable by the caller's promise.
    unsafe {
        out.write(ptr);
        out_len.write(len);
    }
    Ok(())
}

/// GGUF header facts: version (2 or 3), tensor data alignment, and the
/// offset where tensor data starts in the original file. Any out may be NULL.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_header_info(
    archive: *const hexz_archive,
    out_version: *mut u32,
    out_alignment: *mut u64,
    out_data_offset: *mut u64,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let t = unsafe { table(archive) }?;
        unsafe {
            write_optional(out_version, t.version);
            write_optional(out_alignment, t.alignment);
            write_optional(out_data_offset, t.data_offset);
        }
        Ok(())
    })
}

/// Number of GGUF key/values. HEXZ_STATUS_UNSUPPORTED when the archived file is not GGUF.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_kv_count(archive: *const hexz_archive, out_count: *mut usize) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| unsafe { write_out(out_count, table(archive)?.kvs.len()) })
}

/// Index of the key `key` (NUL-terminated), or HEXZ_STATUS_NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_find_key(
    archive: *const hexz_archive,
    key: *const c_char,
    out_index: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let t = unsafe { table(archive) }?;
        let key = unsafe { cstr(key, "key") }?.to_bytes();
        let index = t.find(key).ok_or_else(|| FfiError::not_found("no such key"))?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_index, index) }
    })
}

/// Key `index` as a NUL-terminated string (borrowed) and its length.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_key(
    archive: *const hexz_archive,
    index: usize,
    out_key: *mut *const c_char,
    out_len: *mut usize,
) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| unsafe { write_str(&kv(archive, index)?.key, out_key, out_len) })
}

/// Value type of key `index` (HEXZ_GGUF_TYPE_*).
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_type(
    archive: *const hexz_archive,
    index: usize,
    out_type: *mut u32,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let ty = match &unsafe { kv(archive, index) }?.value {
            Value::Scalar(v) => v.type_id(),
            Value::String(_) => HEXZ_GGUF_TYPE_STRING,
            _ => HEXZ_GGUF_TYPE_ARRAY,
        };
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_type, ty) }
    })
}

/// The scalar of key `index` when it has the `variant` type.
unsafe fn scalar<'a>(archive: *const hexz_archive, index: usize) -> Result<&'a GgufValue, FfiError> {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    match &unsafe { kv(archive, index) }?.value {
        Value::Scalar(v) => Ok(v),
        _ => Err(FfiError::type_mismatch("value is not a scalar")),
    }
}

/// Value of a UINT8 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u8(archive: *const hexz_archive, index: usize, out: *mut u8) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U8(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT8")),
    })
}

/// Value of a INT8 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i8(archive: *const hexz_archive, index: usize, out: *mut i8) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I8(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT8")),
    })
}

/// Value of a UINT16 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u16(archive: *const hexz_archive, index: usize, out: *mut u16) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U16(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT16")),
    })
}

/// Value of a INT16 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i16(archive: *const hexz_archive, index: usize, out: *mut i16) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I16(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT16")),
    })
}

/// Value of a UINT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u32(archive: *const hexz_archive, index: usize, out: *mut u32) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT32")),
    })
}

/// Value of a INT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i32(archive: *const hexz_archive, index: usize, out: *mut i32) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT32")),
    })
}

/// Value of a FLOAT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_f32(archive: *const hexz_archive, index: usize, out: *mut f32) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::F32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not FLOAT32")),
    })
}

/// Value of a BOOL key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_bool(archive: *const hexz_archive, index: usize, out: *mut bool) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::Bool(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not BOOL")),
    })
}

/// Value of a UINT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u64(archive: *const hexz_archive, index: usize, out: *mut u64) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U64(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT64")),
    })
}

/// Value of a INT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i64(archive: *const hexz_archive, index: usize, out: *mut i64) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I64(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT64")),
    })
}

/// Value of a FLOAT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_f64(archive: *const hexz_archive, index: usize, out: *mut f64) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::F64(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not FLOAT64")),
    })
}

/// Value of a STRING key: NUL-terminated (borrowed) and its length in bytes
/// (GGUF strings may hold NUL bytes; trust the length).
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_string(
    archive: *const hexz_archive,
    index: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match &unsafe { kv(archive, index) }?.value {
        Value::String(s) => unsafe { write_str(s, out, out_len) },
        _ => Err(FfiError::type_mismatch("value is not a STRING")),
    })
}

/// Element type and length of an ARRAY key. Either out may be NULL.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_array_info(
    archive: *const hexz_archive,
    index: usize,
    out_elem_type: *mut u32,
    out_len: *mut u64,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let (ty, len) = match &unsafe { kv(archive, index) }?.value {
            Value::ScalarArray { elem_type, len, .. } => (*elem_type, *len),
            Value::StringArray(items) => (HEXZ_GGUF_TYPE_STRING, items.len() as u64),
            Value::NestedArray { len } => (HEXZ_GGUF_TYPE_ARRAY, *len),
            _ => return Err(FfiError::type_mismatch("value is not an ARRAY")),
        };
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe {
            write_optional(out_elem_type, ty);
            write_optional(out_len, len);
        }
        Ok(())
    })
}

/// Raw little-endian element data of an array of scalars (borrowed until
/// hexz_close; NULL for an empty array), and its length in bytes.
/// HEXZ_STATUS_TYPE_MISMATCH for arrays of strings or arrays.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_array_data(
    archive: *const hexz_archive,
    index: usize,
    out_data: *mut *const c_void,
    out_bytes: *mut usize,
) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match &unsafe { kv(archive, index) }?.value {
        Value::ScalarArray { data, .. } => {
            if out_data.is_null() || out_bytes.is_null() {
                return Err(FfiError::null("out_data/out_bytes"));
            }
            // SAFETY: both checked non-NULL; writable by the caller's promise.
            unsafe {
                out_data.write(view_ptr(data) as *const c_void);
                out_bytes.write(data.len());
            }
            Ok(())
        }
        _ => Err(FfiError::type_mismatch("value is not an array of scalars")),
    })
}

/// Element `element` of an array of strings: NUL-terminated (borrowed) and its length.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_array_string(
    archive: *const hexz_archive,
    index: usize,
    element: u64,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> ErrorCode {
    // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
    guard(|| match &unsafe { kv(archive, index) }?.value {
        Value::StringArray(items) => {
            let item = usize::try_from(element)
                .ok()
                .and_then(|e| items.get(e))
                .ok_or_else(|| FfiError::invalid("array element out of range"))?;
            // SAFETY: output pointers are NULL or writable (the header's contract).
            unsafe { write_str(item, out, out_len) }
        }
        _ => Err(FfiError::type_mismatch("value is not an array of strings")),
    })
}
