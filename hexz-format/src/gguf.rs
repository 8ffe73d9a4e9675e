//! GGUF (v2 and v3) header parser: key/values of every type, arrays included,
//! and tensor infos, validated against the buffer and the file length.
//!
//! Values that can be large (strings, arrays) are kept as spans into the
//! header bytes, so memory stays proportional to the header, not to what it
//! claims.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::dtype::ggml_type;
use crate::error::{Error, Result};
use crate::layout::limits;

/// The first 4 bytes of a GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Deepest nesting of arrays inside arrays.
pub const MAX_ARRAY_NESTING: u32 = 8;

/// GGUF value type ids.
pub mod value_type {
    /// Type id of `uint8`.
    pub const U8: u32 = 0;
    /// Type id of `int8`.
    pub const I8: u32 = 1;
    /// Type id of `uint16`.
    pub const U16: u32 = 2;
    /// Type id of `int16`.
    pub const I16: u32 = 3;
    /// Type id of `uint32`.
    pub const U32: u32 = 4;
    /// Type id of `int32`.
    pub const I32: u32 = 5;
    /// Type id of `float32`.
    pub const F32: u32 = 6;
    /// Type id of `bool`: one byte, 0 or 1.
    pub const BOOL: u32 = 7;
    /// Type id of `string`: a u64 length, then UTF-8 bytes.
    pub const STRING: u32 = 8;
    /// Type id of `array`: an element type, a u64 count, then the elements.
    pub const ARRAY: u32 = 9;
    /// Type id of `uint64`.
    pub const U64: u32 = 10;
    /// Type id of `int64`.
    pub const I64: u32 = 11;
    /// Type id of `float64`.
    pub const F64: u32 = 12;
}

/// Size in bytes of a fixed-size value type, `None` for string and array.
pub fn scalar_size(ty: u32) -> Option<u64> {
    use value_type::*;
    match ty {
        U8 | I8 | BOOL => Some(1),
        U16 | I16 => Some(2),
        U32 | I32 | F32 => Some(4),
        U64 | I64 | F64 => Some(8),
        _ => None,
    }
}

/// Name of a value type, as gguf-py spells it.
pub fn value_type_name(ty: u32) -> &'static str {
    use value_type::*;
    match ty {
        U8 => "UINT8",
        I8 => "INT8",
        U16 => "UINT16",
        I16 => "INT16",
        U32 => "UINT32",
        I32 => "INT32",
        F32 => "FLOAT32",
        BOOL => "BOOL",
        STRING => "STRING",
        ARRAY => "ARRAY",
        U64 => "UINT64",
        I64 => "INT64",
        F64 => "FLOAT64",
        _ => "UNKNOWN",
    }
}

/// A byte range inside the header buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Where the range starts in the header bytes.
    pub offset: u64,
    /// Bytes in the range.
    pub len: u64,
}

/// A GGUF value. Strings and arrays refer to the header bytes by span.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// A `uint8`.
    U8(u8),
    /// An `int8`.
    I8(i8),
    /// A `uint16`.
    U16(u16),
    /// An `int16`.
    I16(i16),
    /// A `uint32`.
    U32(u32),
    /// An `int32`.
    I32(i32),
    /// A `float32`.
    F32(f32),
    /// A `bool`.
    Bool(bool),
    /// A `uint64`.
    U64(u64),
    /// An `int64`.
    I64(i64),
    /// A `float64`.
    F64(f64),
    /// A string: its UTF-8 bytes in the header (not checked to be UTF-8).
    String(Span),
    /// An array.
    Array(GgufArray),
}

/// An array value. Scalar elements are the raw little-endian bytes at
/// `data`; string elements are read from `data` by [`GgufArray::strings`]
/// (a tokenizer holds hundreds of thousands, so they get no value each);
/// only array elements are parsed into `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufArray {
    /// The elements' type id ([`value_type`]).
    pub elem_type: u32,
    /// Number of elements.
    pub len: u64,
    /// The elements' bytes in the header, as the file lays them out.
    pub data: Span,
    /// The parsed elements of an array of arrays; empty for other element types.
    pub items: Vec<GgufValue>,
}

impl GgufArray {
    /// The elements of a string array, from the buffer the header was
    /// parsed from (validated then); nothing for other element types or a
    /// buffer that does not hold the array.
    pub fn strings<'b>(&self, bytes: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
        let mut rest = match self.elem_type {
            value_type::STRING => GgufHeader::span(bytes, self.data),
            _ => &[],
        };
        (0..self.len).map_while(move |_| {
            let (len, tail) = rest.split_first_chunk::<8>()?;
            let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
            let (item, tail) = tail.split_at_checked(len)?;
            rest = tail;
            Some(item)
        })
    }
}

impl GgufValue {
    /// The GGUF type id of this value.
    pub fn type_id(&self) -> u32 {
        use value_type::*;
        match self {
            GgufValue::U8(_) => U8,
            GgufValue::I8(_) => I8,
            GgufValue::U16(_) => U16,
            GgufValue::I16(_) => I16,
            GgufValue::U32(_) => U32,
            GgufValue::I32(_) => I32,
            GgufValue::F32(_) => F32,
            GgufValue::Bool(_) => BOOL,
            GgufValue::U64(_) => U64,
            GgufValue::I64(_) => I64,
            GgufValue::F64(_) => F64,
            GgufValue::String(_) => STRING,
            GgufValue::Array(_) => ARRAY,
        }
    }
}

/// A key/value pair of the header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufKv {
    /// The key, e.g. `general.architecture`.
    pub key: String,
    /// Its value.
    pub value: GgufValue,
}

/// One tensor info; `offset` is absolute in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    /// The tensor's name.
    pub name: String,
    /// Its dimensions as GGUF lists them, `ne[0]` first.
    pub dims: Vec<u64>,
    /// Its GGML type id ([`crate::dtype::ggml_type`] names it).
    pub ggml_type: u32,
    /// Where its bytes start in the file: the data section's start plus the info's offset.
    pub offset: u64,
    /// Bytes it takes, from its type and dimensions.
    pub length: u64,
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    /// The GGUF version (2 or 3).
    pub version: u32,
    /// Alignment of tensor data: `general.alignment`, or [`DEFAULT_ALIGNMENT`].
    pub alignment: u64,
    /// Start of the tensor data section (absolute).
    pub data_offset: u64,
    /// The key/values, in file order.
    pub kvs: Vec<GgufKv>,
    /// In the order of the file's tensor infos.
    pub tensors: Vec<GgufTensor>,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let start = self.pos as usize;
        let slice = usize::try_from(n)
            .ok()
            .and_then(|n| start.checked_add(n))
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| Error::Truncated {
                what,
                offset: self.pos,
                needed: n,
                available: (self.bytes.len() as u64).saturating_sub(self.pos),
            })?;
        self.pos += n;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64, what)?);
        Ok(out)
    }
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn remaining(&self) -> u64 {
        (self.bytes.len() as u64).saturating_sub(self.pos)
    }
    /// A GGUF string: u64 length then bytes.
    fn string_span(&mut self, what: &'static str) -> Result<Span> {
        let len = self.u64(what)?;
        let offset = self.pos;
        self.take(len, what)?;
        Ok(Span { offset, len })
    }
    fn utf8(&mut self, what: &'static str) -> Result<String> {
        let span = self.string_span(what)?;
        let bytes = &self.bytes[span.offset as usize..(span.offset + span.len) as usize];
        core::str::from_utf8(bytes).map(String::from).map_err(|_| bad(what, span.offset, "not valid UTF-8"))
    }
}

fn bad(field: &'static str, offset: u64, reason: &'static str) -> Error {
    Error::Source { format: "gguf", field, offset, reason }
}

/// Push with fallible growth: counts come from the file, so running out of
/// memory is a status, never an abort.
fn push<T>(v: &mut Vec<T>, item: T, what: &'static str) -> Result<()> {
    v.try_reserve(1)
        .map_err(|_| Error::OutOfMemory { what, bytes: (v.len() as u64 + 1) * core::mem::size_of::<T>() as u64 })?;
    v.push(item);
    Ok(())
}

/// Whether `prefix` starts with the GGUF magic.
pub fn looks_like_gguf(prefix: &[u8]) -> bool {
    prefix.get(..4) == Some(&GGUF_MAGIC[..])
}

fn read_value(c: &mut Cursor<'_>, ty: u32, depth: u32) -> Result<GgufValue> {
    use value_type::*;
    let at = c.pos;
    Ok(match ty {
        U8 => GgufValue::U8(c.array::<1>("value")?[0]),
        I8 => GgufValue::I8(c.array::<1>("value")?[0] as i8),
        U16 => GgufValue::U16(u16::from_le_bytes(c.array("value")?)),
        I16 => GgufValue::I16(i16::from_le_bytes(c.array("value")?)),
        U32 => GgufValue::U32(u32::from_le_bytes(c.array("value")?)),
        I32 => GgufValue::I32(i32::from_le_bytes(c.array("value")?)),
        F32 => GgufValue::F32(f32::from_le_bytes(c.array("value")?)),
        BOOL => GgufValue::Bool(c.array::<1>("value")?[0] != 0),
        U64 => GgufValue::U64(u64::from_le_bytes(c.array("value")?)),
        I64 => GgufValue::I64(i64::from_le_bytes(c.array("value")?)),
        F64 => GgufValue::F64(f64::from_le_bytes(c.array("value")?)),
        STRING => GgufValue::String(c.string_span("string value")?),
        ARRAY => {
            if depth >= MAX_ARRAY_NESTING {
                return Err(bad("array", at, "arrays nested too deeply"));
            }
            let elem_type = c.u32("array element type")?;
            let len = c.u64("array length")?;
            let start = c.pos;
            match scalar_size(elem_type) {
                Some(size) => {
                    let bytes =
                        len.checked_mul(size).ok_or_else(|| bad("array length", at + 4, "byte size overflows"))?;
                    c.take(bytes, "array data")?;
                    GgufValue::Array(GgufArray {
                        elem_type,
                        len,
                        data: Span { offset: start, len: bytes },
                        items: Vec::new(),
                    })
                }
                None if elem_type == STRING || elem_type == ARRAY => {
                    // Every element takes at least 8 bytes, so a length the
                    // buffer cannot hold is rejected before allocating.
                    if len > c.remaining() / 8 {
                        return Err(Error::Truncated {
                            what: "array data",
                            offset: start,
                            needed: len.saturating_mul(8),
                            available: c.remaining(),
                        });
                    }
                    let mut items = Vec::new();
                    if elem_type == STRING {
                        // Checked in place and kept as one span (see `GgufArray`).
                        for _ in 0..len {
                            c.string_span("string value")?;
                        }
                    } else {
                        // Bounded by the bytes left (checked above).
                        items.try_reserve_exact(len as usize).map_err(|_| Error::OutOfMemory {
                            what: "GGUF array",
                            bytes: len.saturating_mul(core::mem::size_of::<GgufValue>() as u64),
                        })?;
                        for _ in 0..len {
                            push(&mut items, read_value(c, elem_type, depth + 1)?, "GGUF array")?;
                        }
                    }
                    GgufValue::Array(GgufArray {
                        elem_type,
                        len,
                        data: Span { offset: start, len: c.pos - start },
                        items,
                    })
                }
                None => return Err(bad("array element type", at, "unknown value type")),
            }
        }
        _ => return Err(bad("value type", at, "unknown value type")),
    })
}

/// Parse a GGUF header from the first bytes of a file of `file_len` bytes.
///
/// Returns [`Error::Truncated`] when `bytes` ends inside the header, so a
/// streaming caller can retry with a longer prefix.
pub fn parse(bytes: &[u8], file_len: u64) -> Result<GgufHeader> {
    let mut c = Cursor { bytes, pos: 0 };
    if c.array::<4>("magic")? != GGUF_MAGIC {
        return Err(Error::BadMagic { what: "GGUF", offset: 0 });
    }
    let version = c.u32("version")?;
    if version != 2 && version != 3 {
        return Err(bad("version", 4, "only GGUF versions 2 and 3 are supported"));
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("key/value count")?;
    // Each key/value takes at least 8 + 4 + 1 bytes, each tensor info 8 + 4 + 4 + 8.
    if kv_count > file_len / 13 {
        return Err(bad("key/value count", 16, "more key/values than the file can hold"));
    }
    if tensor_count > file_len / 24 {
        return Err(bad("tensor count", 8, "more tensors than the file can hold"));
    }
    let mut kvs: Vec<GgufKv> = Vec::new();
    // Sets, not scans: a hostile header may hold millions of keys or tensors.
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..kv_count {
        let key_at = c.pos;
        let key = c.utf8("key")?;
        let ty = c.u32("value type")?;
        let value = read_value(&mut c, ty, 0)?;
        if !keys.insert(key.clone()) {
            return Err(bad("key", key_at, "duplicate key"));
        }
        if key == "general.alignment" {
            alignment = match value {
                GgufValue::U32(a) if a > 0 && a.is_power_of_two() => u64::from(a),
                _ => return Err(bad("general.alignment", key_at, "must be a UINT32 power of two")),
            };
        }
        push(&mut kvs, GgufKv { key, value }, "GGUF key/values")?;
    }
    let mut tensors: Vec<GgufTensor> = Vec::new();
    for _ in 0..tensor_count {
        let info_at = c.pos;
        let name = c.utf8("tensor name")?;
        let n_dims = c.u32("tensor dimension count")?;
        if n_dims > u32::from(limits::MAX_DIMS) {
            return Err(bad("tensor dimension count", info_at, "too many dimensions"));
        }
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            push(&mut dims, c.u64("tensor dimension")?, "GGUF tensor dimensions")?;
        }
        let ty_at = c.pos;
        let ggml = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        let info = ggml_type(ggml).ok_or(bad("tensor type", ty_at, "unknown ggml type"))?;
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or(bad(
            "tensor dimension",
            info_at,
            "element count overflows",
        ))?;
        let first = dims.first().copied().unwrap_or(1);
        if first % u64::from(info.block_elements) != 0 {
            return Err(bad("tensor dimension", info_at, "first dimension is not a multiple of the type's block size"));
        }
        let length = (elements / u64::from(info.block_elements))
            .checked_mul(u64::from(info.block_bytes))
            .ok_or(bad("tensor dimension", info_at, "byte size overflows"))?;
        if offset % alignment != 0 {
            return Err(bad("tensor offset", ty_at + 4, "not a multiple of the alignment"));
        }
        if !names.insert(name.clone()) {
            return Err(bad("tensor name", info_at, "duplicate tensor name"));
        }
        push(&mut tensors, GgufTensor { name, dims, ggml_type: ggml, offset, length }, "GGUF tensor infos")?;
    }
    let infos_end = c.pos;
    let data_offset =
        infos_end.checked_next_multiple_of(alignment).ok_or(bad("tensor data", infos_end, "offset overflows"))?;
    let mut spans: Vec<(u64, u64)> = Vec::new();
    spans
        .try_reserve_exact(tensors.len())
        .map_err(|_| Error::OutOfMemory { what: "GGUF tensor spans", bytes: tensors.len() as u64 * 16 })?;
    for t in &mut tensors {
        t.offset = data_offset.checked_add(t.offset).ok_or(bad("tensor offset", infos_end, "offset overflows"))?;
        let end = t.offset.checked_add(t.length).ok_or(bad("tensor offset", infos_end, "offset overflows"))?;
        if end > file_len {
            return Err(bad("tensor offset", infos_end, "tensor data extends past the end of the file"));
        }
        spans.push((t.offset, end));
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(bad("tensor offset", infos_end, "tensors overlap"));
    }
    if data_offset > file_len && !tensors.is_empty() {
        return Err(bad("tensor data", infos_end, "data section starts past the end of the file"));
    }
    Ok(GgufHeader { version, alignment, data_offset, kvs, tensors })
}

impl GgufHeader {
    /// Bytes of a string span from the same buffer the header was parsed from.
    pub fn span(bytes: &[u8], span: Span) -> &[u8] {
        bytes.get(span.offset as usize..(span.offset + span.len) as usize).unwrap_or(&[])
    }
}
