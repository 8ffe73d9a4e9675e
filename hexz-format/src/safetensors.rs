//! safetensors header parser, as strict as the reference library: header
//! size limit, known dtypes, dtype × shape = length, data offsets contiguous
//! from 0 to the end of the file with no gaps or overlaps.

use alloc::string::String;
use alloc::vec::Vec;

use crate::dtype::safetensors_bits;
use crate::error::{Error, Result};

/// Largest JSON header accepted (the reference library's limit).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// One tensor as the header declares it; `offset` is absolute in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsTensor {
    /// The tensor's key in the JSON header.
    pub name: String,
    /// Its `dtype` string (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Its `shape`, row-major.
    pub shape: Vec<u64>,
    /// Where its bytes start in the file (header length plus `data_offsets[0]`).
    pub offset: u64,
    /// Bytes it takes (`data_offsets[1] - data_offsets[0]`).
    pub length: u64,
}

/// A parsed header: tensors sorted by offset, and the `__metadata__` map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetensorsHeader {
    /// Bytes before the tensor data: 8 + JSON length.
    pub header_length: u64,
    /// The tensors, sorted by offset.
    pub tensors: Vec<SafetensorsTensor>,
    /// The `__metadata__` string map, sorted by key.
    pub metadata: Vec<(String, String)>,
}

fn bad(field: &'static str, offset: u64, reason: &'static str) -> Error {
    Error::Source { format: "safetensors", field, offset, reason }
}

/// Whether `prefix` looks like the start of a safetensors file: an 8-byte
/// length of at least 2 followed by the start of a JSON object (`{"`, `{}`
/// or `{` and whitespace). Used for detection by content; a file that looks
/// like one but is malformed (say, a length past the end or over the limit)
/// is then reported as a bad safetensors file rather than stored blindly.
pub fn looks_like_safetensors(prefix: &[u8], _file_len: u64) -> bool {
    match (prefix.get(..8), prefix.get(8), prefix.get(9)) {
        (Some(len), Some(b'{'), Some(b'"' | b'}' | b' ' | b'\n' | b'\r' | b'\t')) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(len);
            u64::from_le_bytes(n) >= 2
        }
        _ => false,
    }
}

/// Length of the whole header (8 + JSON) from the first 8 bytes, checked
/// against the limit and the file length.
pub fn header_length(prefix: &[u8], file_len: u64) -> Result<u64> {
    let first = prefix.get(..8).ok_or(Error::Truncated {
        what: "safetensors header length",
        offset: 0,
        needed: 8,
        available: prefix.len() as u64,
    })?;
    let mut n = [0u8; 8];
    n.copy_from_slice(first);
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER_SIZE {
        return Err(Error::LimitExceeded { what: "safetensors header length", value: n, limit: MAX_HEADER_SIZE });
    }
    let total = n + 8;
    if total > file_len {
        return Err(bad("header length", 0, "header extends past the end of the file"));
    }
    Ok(total)
}

/// Parse the header in `bytes` (at least [`header_length`] bytes of the file).
pub fn parse(bytes: &[u8], file_len: u64) -> Result<SafetensorsHeader> {
    let header_length = header_length(bytes, file_len)?;
    let json = bytes.get(8..header_length as usize).ok_or(Error::Truncated {
        what: "safetensors header",
        offset: 8,
        needed: header_length - 8,
        available: (bytes.len() as u64).saturating_sub(8),
    })?;
    if json.first() != Some(&b'{') {
        return Err(bad("header", 8, "JSON header does not start with '{'"));
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(json).map_err(|_| bad("header", 8, "header is not a valid JSON object"))?;

    let mut tensors = Vec::new();
    let mut metadata = Vec::new();
    for (name, value) in map {
        if name == "__metadata__" {
            let obj = value.as_object().ok_or(bad("__metadata__", 8, "must be an object of strings"))?;
            for (k, v) in obj {
                let v = v.as_str().ok_or(bad("__metadata__", 8, "values must be strings"))?;
                metadata.push((k.clone(), String::from(v)));
            }
            continue;
        }
        let info = value.as_object().ok_or(bad("tensor entry", 8, "must be an object"))?;
        let dtype = info.get("dtype").and_then(|d| d.as_str()).ok_or(bad("dtype", 8, "missing or not a string"))?;
        let bits = safetensors_bits(dtype).ok_or(bad("dtype", 8, "unknown dtype"))?;
        let shape_json =
            info.get("shape").and_then(|s| s.as_array()).ok_or(bad("shape", 8, "missing or not an array"))?;
        let mut shape = Vec::with_capacity(shape_json.len());
        for dim in shape_json {
            shape.push(dim.as_u64().ok_or(bad("shape", 8, "dimension is not a non-negative integer"))?);
        }
        let offsets = info.get("data_offsets").and_then(|o| o.as_array()).filter(|o| o.len() == 2).ok_or(bad(
            "data_offsets",
            8,
            "missing or not a pair",
        ))?;
        let begin = offsets[0].as_u64().ok_or(bad("data_offsets", 8, "begin is not an integer"))?;
        let end = offsets[1].as_u64().ok_or(bad("data_offsets", 8, "end is not an integer"))?;
        if end < begin {
            return Err(bad("data_offsets", 8, "end is before begin"));
        }
        let elements = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).ok_or(bad(
            "shape",
            8,
            "element count overflows",
        ))?;
        let total_bits = elements.checked_mul(u64::from(bits)).ok_or(bad("shape", 8, "byte size overflows"))?;
        if total_bits % 8 != 0 {
            return Err(bad("shape", 8, "sub-byte dtype does not fill whole bytes"));
        }
        if total_bits / 8 != end - begin {
            return Err(bad("data_offsets", 8, "length does not equal dtype size times shape"));
        }
        let offset = header_length.checked_add(begin).ok_or(bad("data_offsets", 8, "offset overflows"))?;
        tensors.push(SafetensorsTensor { name, dtype: String::from(dtype), shape, offset, length: end - begin });
    }
    tensors.sort_by_key(|t| (t.offset, t.length));
    let mut expected = header_length;
    for t in &tensors {
        if t.offset != expected {
            return Err(bad("data_offsets", 8, "tensor data is not contiguous (gap or overlap)"));
        }
        expected += t.length;
    }
    if expected != file_len {
        return Err(bad("data_offsets", 8, "tensor data does not end at the end of the file"));
    }
    Ok(SafetensorsHeader { header_length, tensors, metadata })
}
