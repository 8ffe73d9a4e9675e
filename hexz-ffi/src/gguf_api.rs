//! GGUF metadata, as ggml's gguf.h gives it to an engine: enumerate keys,
//! value types, typed getters for every type, arrays of scalars as raw data
//! and arrays of strings element by element. Built once at open.

use std::ffi::{c_char, c_void, CStr};

use hexz_format::gguf::{self, GgufHeader, GgufValue};

use crate::handle::nul_terminated;
use crate::status::{guard, FfiError};
use crate::{handle, hexz_archive, hexz_status, write_out};

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

enum Value {
    Scalar(GgufValue),
    String(Box<[u8]>),
    ScalarArray {
        elem_type: u32,
        len: u64,
        data: Box<[u8]>,
    },
    StringArray(Vec<Box<[u8]>>),
    /// Arrays of arrays: type and length only (gguf.h does not read them either).
    NestedArray {
        len: u64,
    },
}

struct Kv {
    key: Box<[u8]>,
    value: Value,
}

pub struct GgufTable {
    version: u32,
    alignment: u64,
    data_offset: u64,
    kvs: Vec<Kv>,
    by_key: Vec<usize>,
}

impl GgufTable {
    pub fn build(header_bytes: &[u8], file_len: u64) -> Result<Self, FfiError> {
        let header = gguf::parse(header_bytes, file_len).map_err(FfiError::format)?;
        let span = |s| GgufHeader::span(header_bytes, s);
        let kvs: Vec<Kv> = header
            .kvs
            .iter()
            .map(|kv| {
                let value = match &kv.value {
                    GgufValue::String(s) => Value::String(nul_terminated(span(*s))),
                    GgufValue::Array(a) if a.elem_type == gguf::value_type::STRING => Value::StringArray(
                        a.items
                            .iter()
                            .map(|i| match i {
                                GgufValue::String(s) => nul_terminated(span(*s)),
                                _ => nul_terminated(b""),
                            })
                            .collect(),
                    ),
                    GgufValue::Array(a) if a.elem_type == gguf::value_type::ARRAY => Value::NestedArray { len: a.len },
                    GgufValue::Array(a) => {
                        Value::ScalarArray { elem_type: a.elem_type, len: a.len, data: span(a.data).into() }
                    }
                    scalar => Value::Scalar(scalar.clone()),
                };
                Kv { key: nul_terminated(kv.key.as_bytes()), value }
            })
            .collect();
        let mut by_key: Vec<usize> = (0..kvs.len()).collect();
        by_key.sort_by(|&a, &b| kvs[a].key.cmp(&kvs[b].key));
        Ok(GgufTable {
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            kvs,
            by_key,
        })
    }
}

unsafe fn table<'a>(archive: *const hexz_archive) -> Result<&'a GgufTable, FfiError> {
    unsafe { handle(archive) }?.gguf.as_ref().ok_or_else(|| FfiError::unsupported("the archived file is not GGUF"))
}

unsafe fn kv<'a>(archive: *const hexz_archive, index: usize) -> Result<&'a Kv, FfiError> {
    unsafe { table(archive) }?.kvs.get(index).ok_or_else(|| FfiError::invalid("key index out of range"))
}

unsafe fn write_str(bytes: &[u8], out: *mut *const c_char, out_len: *mut usize) -> Result<(), FfiError> {
    if out.is_null() || out_len.is_null() {
        return Err(FfiError::null("out/out_len"));
    }
    unsafe {
        out.write(bytes.as_ptr() as *const c_char);
        out_len.write(bytes.len() - 1);
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
) -> hexz_status {
    guard(|| {
        let t = unsafe { table(archive) }?;
        unsafe {
            if !out_version.is_null() {
                out_version.write(t.version);
            }
            if !out_alignment.is_null() {
                out_alignment.write(t.alignment);
            }
            if !out_data_offset.is_null() {
                out_data_offset.write(t.data_offset);
            }
        }
        Ok(())
    })
}

/// Number of GGUF key/values. HEXZ_STATUS_UNSUPPORTED when the archived file is not GGUF.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_kv_count(archive: *const hexz_archive, out_count: *mut usize) -> hexz_status {
    guard(|| unsafe { write_out(out_count, table(archive)?.kvs.len()) })
}

/// Index of the key `key` (NUL-terminated), or HEXZ_STATUS_NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_find_key(
    archive: *const hexz_archive,
    key: *const c_char,
    out_index: *mut usize,
) -> hexz_status {
    guard(|| {
        let t = unsafe { table(archive) }?;
        if key.is_null() {
            return Err(FfiError::null("key"));
        }
        let key = unsafe { CStr::from_ptr(key) }.to_bytes_with_nul();
        let pos = t
            .by_key
            .binary_search_by(|&i| t.kvs[i].key[..].cmp(key))
            .map_err(|_| FfiError::not_found("no such key"))?;
        unsafe { write_out(out_index, t.by_key[pos]) }
    })
}

/// Key `index` as a NUL-terminated string (borrowed) and its length.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_key(
    archive: *const hexz_archive,
    index: usize,
    out_key: *mut *const c_char,
    out_len: *mut usize,
) -> hexz_status {
    guard(|| unsafe { write_str(&kv(archive, index)?.key, out_key, out_len) })
}

/// Value type of key `index` (HEXZ_GGUF_TYPE_*).
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_type(
    archive: *const hexz_archive,
    index: usize,
    out_type: *mut u32,
) -> hexz_status {
    guard(|| {
        let ty = match &unsafe { kv(archive, index) }?.value {
            Value::Scalar(v) => v.type_id(),
            Value::String(_) => HEXZ_GGUF_TYPE_STRING,
            _ => HEXZ_GGUF_TYPE_ARRAY,
        };
        unsafe { write_out(out_type, ty) }
    })
}

/// The scalar of key `index` when it has the `variant` type.
unsafe fn scalar<'a>(archive: *const hexz_archive, index: usize) -> Result<&'a GgufValue, FfiError> {
    match &unsafe { kv(archive, index) }?.value {
        Value::Scalar(v) => Ok(v),
        _ => Err(FfiError::type_mismatch("value is not a scalar")),
    }
}

/// Value of a UINT8 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u8(archive: *const hexz_archive, index: usize, out: *mut u8) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U8(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT8")),
    })
}

/// Value of a INT8 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i8(archive: *const hexz_archive, index: usize, out: *mut i8) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I8(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT8")),
    })
}

/// Value of a UINT16 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u16(archive: *const hexz_archive, index: usize, out: *mut u16) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U16(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT16")),
    })
}

/// Value of a INT16 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i16(archive: *const hexz_archive, index: usize, out: *mut i16) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I16(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT16")),
    })
}

/// Value of a UINT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u32(archive: *const hexz_archive, index: usize, out: *mut u32) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT32")),
    })
}

/// Value of a INT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i32(archive: *const hexz_archive, index: usize, out: *mut i32) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT32")),
    })
}

/// Value of a FLOAT32 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_f32(archive: *const hexz_archive, index: usize, out: *mut f32) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::F32(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not FLOAT32")),
    })
}

/// Value of a BOOL key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_bool(archive: *const hexz_archive, index: usize, out: *mut bool) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::Bool(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not BOOL")),
    })
}

/// Value of a UINT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_u64(archive: *const hexz_archive, index: usize, out: *mut u64) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::U64(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not UINT64")),
    })
}

/// Value of a INT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_i64(archive: *const hexz_archive, index: usize, out: *mut i64) -> hexz_status {
    guard(|| match unsafe { scalar(archive, index) }? {
        GgufValue::I64(v) => unsafe { write_out(out, *v) },
        _ => Err(FfiError::type_mismatch("value is not INT64")),
    })
}

/// Value of a FLOAT64 key; HEXZ_STATUS_TYPE_MISMATCH when the key has another type.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_f64(archive: *const hexz_archive, index: usize, out: *mut f64) -> hexz_status {
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
) -> hexz_status {
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
) -> hexz_status {
    guard(|| {
        let (ty, len) = match &unsafe { kv(archive, index) }?.value {
            Value::ScalarArray { elem_type, len, .. } => (*elem_type, *len),
            Value::StringArray(items) => (HEXZ_GGUF_TYPE_STRING, items.len() as u64),
            Value::NestedArray { len } => (HEXZ_GGUF_TYPE_ARRAY, *len),
            _ => return Err(FfiError::type_mismatch("value is not an ARRAY")),
        };
        unsafe {
            if !out_elem_type.is_null() {
                out_elem_type.write(ty);
            }
            if !out_len.is_null() {
                out_len.write(len);
            }
        }
        Ok(())
    })
}

/// Raw little-endian element data of an array of scalars (borrowed), and
/// its length in bytes. HEXZ_STATUS_TYPE_MISMATCH for arrays of strings or arrays.
#[no_mangle]
pub unsafe extern "C" fn hexz_gguf_get_array_data(
    archive: *const hexz_archive,
    index: usize,
    out_data: *mut *const c_void,
    out_bytes: *mut usize,
) -> hexz_status {
    guard(|| match &unsafe { kv(archive, index) }?.value {
        Value::ScalarArray { data, .. } => {
            if out_data.is_null() || out_bytes.is_null() {
                return Err(FfiError::null("out_data/out_bytes"));
            }
            unsafe {
                out_data.write(data.as_ptr() as *const c_void);
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
) -> hexz_status {
    guard(|| match &unsafe { kv(archive, index) }?.value {
        Value::StringArray(items) => {
            let item = usize::try_from(element)
                .ok()
                .and_then(|e| items.get(e))
                .ok_or_else(|| FfiError::invalid("array element out of range"))?;
            unsafe { write_str(item, out, out_len) }
        }
        _ => Err(FfiError::type_mismatch("value is not an array of strings")),
    })
}
