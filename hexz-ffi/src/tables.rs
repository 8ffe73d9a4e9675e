//! What a handle holds, built once at open so the read path allocates
//! nothing: the [`Reader`], tensor entries with NUL-terminated strings, the
//! source header and the GGUF key/value table. Every allocation sized by the
//! archive is fallible and capped.

use std::ffi::{c_char, c_int, c_void};

use hexz_format::gguf::{self, GgufArray, GgufHeader, GgufValue};
use hexz_format::{ErrorCode, ReadAt, SourceFormat};
use hexz_io::{CNames, Reader};

use crate::status::FfiError;

/// The read callback's signature.
pub type ReadFn = unsafe extern "C" fn(user: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int;

/// Test builds only (feature panic-test): a read callback returning this
/// makes the library panic inside the read (bindings/c/tests/test_panic.c).
#[cfg(feature = "panic-test")]
const PANIC_TEST_STATUS: c_int = 0x7061_6e63;

/// An archive read through the caller's callback.
pub struct CallbackSource {
    pub read_at: ReadFn,
    pub user: *mut c_void,
    pub size: u64,
}

// SAFETY: the header requires the callback and its user data to be usable
// from every thread that reads the archive, until hexz_close.
unsafe impl Send for CallbackSource {}
// SAFETY: as above; the source itself holds no state.
unsafe impl Sync for CallbackSource {}

impl ReadAt for CallbackSource {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        hexz_format::source::checked_end("read", offset, buf.len(), self.size)?;
        // SAFETY: buf is valid for buf.len() bytes; the callback's contract is the header's.
        match unsafe { (self.read_at)(self.user, offset, buf.as_mut_ptr(), buf.len()) } {
            0 => Ok(()),
            #[cfg(feature = "panic-test")]
            PANIC_TEST_STATUS => panic!("panic-test: the read callback asked for a panic at offset {offset}"),
            _ => Err(hexz_format::Error::Io {
                offset,
                cause: hexz_format::error::IoCause::message("the read callback reported a failure"),
            }),
        }
    }
}

/// `bytes` followed by a NUL (fallible: sizes come from the archive).
pub fn nul_terminated(bytes: &[u8]) -> Result<Box<[u8]>, FfiError> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len() + 1)
        .map_err(|_| FfiError::new(ErrorCode::OutOfMemory, "out of memory building the tables"))?;
    v.extend_from_slice(bytes);
    v.push(0);
    Ok(v.into_boxed_slice())
}

/// An empty view is returned as NULL with length 0.
pub fn view_ptr(bytes: &[u8]) -> *const u8 {
    if bytes.is_empty() {
        std::ptr::null()
    } else {
        bytes.as_ptr()
    }
}

/// A GGUF value as an engine reads it.
pub enum Value {
    Scalar(GgufValue),
    String(Box<[u8]>),
    ScalarArray {
        elem_type: u32,
        len: u64,
        data: Box<[u8]>,
    },
    StringArray(Strings),
    /// Arrays of arrays: type and length only (gguf.h does not read them either).
    NestedArray {
        len: u64,
    },
}

/// An array of strings, each NUL-terminated, in one allocation: a
/// tokenizer's vocabulary is 10^5 strings and more (gemma: 262,144), which
/// one allocation each made most of the time to open an archive. The bytes
/// are the array as the header holds them, an 8-byte length before each
/// string, so they are copied in one go; each string's NUL is written over
/// the first byte of the next length (already parsed), the last one into a
/// byte added at the end.
pub struct Strings {
    bytes: Box<[u8]>,
    /// Where each string's NUL is.
    nuls: Box<[usize]>,
}

impl Strings {
    /// The string array `a` of the header `header_bytes`.
    fn build(a: &GgufArray, header_bytes: &[u8]) -> Result<Self, FfiError> {
        let raw = GgufHeader::span(header_bytes, a.data);
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(raw.len() + 1).map_err(|_| oom())?;
        bytes.extend_from_slice(raw);
        bytes.push(0);
        let mut nuls = Vec::new();
        nuls.try_reserve_exact(a.len as usize).map_err(|_| oom())?;
        let mut at = 0;
        for item in a.strings(header_bytes) {
            at += 8 + item.len();
            bytes[at] = 0;
            nuls.push(at);
        }
        Ok(Strings { bytes: bytes.into_boxed_slice(), nuls: nuls.into_boxed_slice() })
    }

    pub fn len(&self) -> usize {
        self.nuls.len()
    }

    /// String `i`, with its NUL.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let nul = *self.nuls.get(i)?;
        let start = if i == 0 { 8 } else { self.nuls[i - 1] + 8 };
        Some(&self.bytes[start..=nul])
    }
}

pub struct Kv {
    pub key: Box<[u8]>,
    pub value: Value,
}

/// GGUF key/values, built from the archived header.
pub struct GgufTable {
    pub version: u32,
    pub alignment: u64,
    pub data_offset: u64,
    pub kvs: Vec<Kv>,
    /// Key indices sorted by key, for binary search.
    pub by_key: Vec<usize>,
}

fn oom() -> FfiError {
    FfiError::new(ErrorCode::OutOfMemory, "out of memory building the GGUF table")
}

impl GgufTable {
    pub fn build(header_bytes: &[u8], file_len: u64) -> Result<Self, FfiError> {
        let header = gguf::parse(header_bytes, file_len)?;
        let span = |s| GgufHeader::span(header_bytes, s);
        let mut kvs = Vec::new();
        kvs.try_reserve_exact(header.kvs.len()).map_err(|_| oom())?;
        for kv in &header.kvs {
            let value = match &kv.value {
                GgufValue::String(s) => Value::String(nul_terminated(span(*s))?),
                GgufValue::Array(a) if a.elem_type == gguf::value_type::STRING => {
                    Value::StringArray(Strings::build(a, header_bytes)?)
                }
                GgufValue::Array(a) if a.elem_type == gguf::value_type::ARRAY => Value::NestedArray { len: a.len },
                GgufValue::Array(a) => {
                    let raw = span(a.data);
                    let mut data = Vec::new();
                    data.try_reserve_exact(raw.len()).map_err(|_| oom())?;
                    data.extend_from_slice(raw);
                    Value::ScalarArray { elem_type: a.elem_type, len: a.len, data: data.into_boxed_slice() }
                }
                scalar => Value::Scalar(scalar.clone()),
            };
            kvs.push(Kv { key: nul_terminated(kv.key.as_bytes())?, value });
        }
        let mut by_key: Vec<usize> = Vec::new();
        by_key.try_reserve_exact(kvs.len()).map_err(|_| oom())?;
        by_key.extend(0..kvs.len());
        by_key.sort_by(|&a, &b| kvs[a].key.cmp(&kvs[b].key));
        Ok(GgufTable {
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            kvs,
            by_key,
        })
    }

    /// Index of the key `key` (without NUL).
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        self.by_key
            .binary_search_by(|&i| self.kvs[i].key[..self.kvs[i].key.len() - 1].cmp(key))
            .ok()
            .map(|pos| self.by_key[pos])
    }
}

/// A tensor as the C ABI gives it, borrowed from the handle's Reader:
/// the entry from its table, the names from its C-string table.
pub struct TensorView<'a> {
    pub name: &'a [u8],
    pub dtype: &'a [u8],
    pub dims: &'a [u64],
    pub ggml_type: u32,
    pub offset: u64,
    pub length: u64,
    pub storage_kind: u32,
}

/// A file of a folder archive, borrowed from the handle's Reader.
pub struct FileView<'a> {
    pub path: &'a [u8],
    pub kind: u32,
    pub source_format: u32,
    pub offset: u64,
    pub length: u64,
    pub mode: u32,
    pub mtime_ns: i64,
}

/// A user metadata entry, borrowed from the handle's Reader.
pub struct MetadataView<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub is_json: bool,
}

/// An open archive and everything built at open. The tensor, file and
/// metadata tables are the Reader's own; their names are served from the
/// Reader's C-string table (hexz_io::CNames), built here at open.
pub struct ArchiveHandle {
    pub reader: Reader,
    pub source_header: Vec<u8>,
    pub gguf: Option<GgufTable>,
}

impl ArchiveHandle {
    /// Build the tables. The source header (and what is parsed from it)
    /// must fit `max_metadata_bytes`.
    pub fn new(reader: Reader, max_metadata_bytes: u64) -> Result<Self, FfiError> {
        let header_len = reader.archive().source_header_length();
        if header_len > max_metadata_bytes {
            return Err(hexz_io::Error::At {
                location: reader.location().clone(),
                source: hexz_format::Error::LimitExceeded {
                    what: "source header bytes (hexz_open_options.max_metadata_bytes)",
                    value: header_len,
                    limit: max_metadata_bytes,
                },
            }
            .into());
        }
        // Built now: after open the read path allocates nothing.
        reader.c_names()?;
        let source_header = reader.source_header()?;
        let gguf = match reader.source_format() {
            SourceFormat::Gguf => Some(
                GgufTable::build(&source_header, reader.size())
                    .map_err(|e| FfiError { message: format!("{}: {}", reader.location(), e.message), ..e })?,
            ),
            _ => None,
        };
        Ok(ArchiveHandle { reader, source_header, gguf })
    }

    /// The Reader's C-string names (built at open: borrowing them allocates nothing).
    fn names(&self) -> Option<&CNames> {
        self.reader.c_names().ok()
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.reader.tensors().len()
    }

    /// Tensor `i`, borrowed.
    pub fn tensor(&self, i: usize) -> Option<TensorView<'_>> {
        let t = self.reader.tensors().get(i)?;
        Some(TensorView {
            name: self.names()?.tensor_name(i)?,
            dtype: self.names()?.tensor_dtype(i)?,
            dims: &t.shape,
            ggml_type: t.ggml_type.unwrap_or(crate::HEXZ_NO_GGML_TYPE),
            offset: t.offset,
            length: t.length,
            storage_kind: t.storage_kind as u32,
        })
    }

    /// Number of files (folder archives).
    pub fn file_count(&self) -> usize {
        self.reader.files().len()
    }

    /// File `i`, borrowed.
    pub fn file(&self, i: usize) -> Option<FileView<'_>> {
        let f = self.reader.files().get(i)?;
        Some(FileView {
            path: self.names()?.file_path(i)?,
            kind: f.kind as u32,
            source_format: f.source_format as u32,
            offset: f.offset,
            length: f.length,
            mode: f.mode,
            mtime_ns: f.mtime_ns,
        })
    }

    /// Number of user metadata entries.
    pub fn metadata_count(&self) -> usize {
        self.reader.metadata().len()
    }

    /// Metadata entry `i`, borrowed.
    pub fn metadata(&self, i: usize) -> Option<MetadataView<'_>> {
        let (_, value) = self.reader.metadata().get(i)?;
        Some(MetadataView {
            key: self.names()?.metadata_key(i)?,
            value: self.names()?.metadata_value(i)?,
            is_json: matches!(value, hexz_format::manifest::MetadataValue::Json(_)),
        })
    }

    /// Bytes held: the Reader's tables and names, metadata and read
    /// scratch created so far.
    pub fn memory_bytes(&self) -> u64 {
        self.reader.memory_bytes() + (self.source_header.len() * 2) as u64
    }

    /// A sealed, close-on-exec memfd holding the whole original file
    /// ([`hexz_io::memfd`]); UNSUPPORTED off Linux.
    pub fn memfd(&self, threads: usize) -> Result<c_int, FfiError> {
        let file = hexz_io::memfd(&self.reader, threads)?;
        #[cfg(unix)]
        return Ok(std::os::fd::IntoRawFd::into_raw_fd(file));
        #[cfg(not(unix))]
        {
            drop(file);
            Err(FfiError::unsupported("memfd is only available on Linux"))
        }
    }
}

/// A C string pointer (never NULL: an empty string is "") and its length
/// without the NUL, for a NUL-terminated box.
pub fn c_str_view(bytes: &[u8]) -> (*const c_char, usize) {
    (bytes.as_ptr() as *const c_char, bytes.len().saturating_sub(1))
}
