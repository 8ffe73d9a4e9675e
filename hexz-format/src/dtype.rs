//! Element types of the two source formats, with sizes in bits so that
//! sub-byte and block-quantized types fit the same arithmetic.

/// A safetensors dtype name and its element size in bits: every dtype of
/// safetensors 0.8, in its order.
pub const SAFETENSORS_DTYPES: &[(&str, u32)] = &[
    ("BOOL", 8),
    ("F4", 4),
    ("F6_E2M3", 6),
    ("F6_E3M2", 6),
    ("U8", 8),
    ("I8", 8),
    ("F8_E5M2", 8),
    ("F8_E4M3", 8),
    ("F8_E8M0", 8),
    ("F8_E4M3FNUZ", 8),
    ("F8_E5M2FNUZ", 8),
    ("I16", 16),
    ("U16", 16),
    ("F16", 16),
    ("BF16", 16),
    ("I32", 32),
    ("U32", 32),
    ("F32", 32),
    ("C64", 64),
    ("F64", 64),
    ("I64", 64),
    ("U64", 64),
];

/// Bits per element of a safetensors dtype, or `None` when unknown.
pub fn safetensors_bits(dtype: &str) -> Option<u32> {
    SAFETENSORS_DTYPES.iter().find(|(name, _)| *name == dtype).map(|(_, bits)| *bits)
}

/// A GGML tensor type: id, name, elements per block, bytes per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType {
    /// The type id GGUF tensor infos record.
    pub id: u32,
    /// The name gguf-py gives it (`Q4_K`, `BF16`, ...).
    pub name: &'static str,
    /// Elements in one block of the type (1 for plain floats and integers).
    pub block_elements: u32,
    /// Bytes of one block.
    pub block_bytes: u32,
}

const fn t(id: u32, name: &'static str, block_elements: u32, block_bytes: u32) -> GgmlType {
    GgmlType { id, name, block_elements, block_bytes }
}

/// Every GGML type in use (ids 4, 5, 31–33 and 36–38 were removed upstream).
pub const GGML_TYPES: &[GgmlType] = &[
    t(0, "F32", 1, 4),
    t(1, "F16", 1, 2),
    t(2, "Q4_0", 32, 18),
    t(3, "Q4_1", 32, 20),
    t(6, "Q5_0", 32, 22),
    t(7, "Q5_1", 32, 24),
    t(8, "Q8_0", 32, 34),
    t(9, "Q8_1", 32, 40),
    t(10, "Q2_K", 256, 84),
    t(11, "Q3_K", 256, 110),
    t(12, "Q4_K", 256, 144),
    t(13, "Q5_K", 256, 176),
    t(14, "Q6_K", 256, 210),
    t(15, "Q8_K", 256, 292),
    t(16, "IQ2_XXS", 256, 66),
    t(17, "IQ2_XS", 256, 74),
    t(18, "IQ3_XXS", 256, 98),
    t(19, "IQ1_S", 256, 50),
    t(20, "IQ4_NL", 32, 18),
    t(21, "IQ3_S", 256, 110),
    t(22, "IQ2_S", 256, 82),
    t(23, "IQ4_XS", 256, 136),
    t(24, "I8", 1, 1),
    t(25, "I16", 1, 2),
    t(26, "I32", 1, 4),
    t(27, "I64", 1, 8),
    t(28, "F64", 1, 8),
    t(29, "IQ1_M", 256, 56),
    t(30, "BF16", 1, 2),
    t(34, "TQ1_0", 256, 54),
    t(35, "TQ2_0", 256, 66),
    t(39, "MXFP4", 32, 17),
    t(40, "NVFP4", 64, 36),
    t(41, "Q1_0", 128, 18),
];

/// Look up a GGML type by id.
pub fn ggml_type(id: u32) -> Option<GgmlType> {
    GGML_TYPES.iter().copied().find(|t| t.id == id)
}

/// Width in bytes of one floating-point element, for byte grouping; 1 when
/// grouping does not apply (integers, quantized blocks, unknown types).
pub fn float_width(dtype: &str) -> u8 {
    match dtype {
        "F16" | "BF16" => 2,
        "F32" => 4,
        "F64" => 8,
        _ => 1,
    }
}

/// Whether a dtype name (safetensors, or a GGML type's name) is an IEEE
/// float with an 8-bit exponent, whose blocks the `float-ans` filter codes.
pub fn has_8bit_exponent(dtype: &str) -> bool {
    matches!(dtype, "BF16" | "F32")
}

/// Grouping width for a GGML type: the element width of float types, the
/// block size in bytes of quantized types (so scales group with scales), or
/// 1 when a block is wider than the 255 an entry can record.
pub fn ggml_group_width(id: u32) -> u8 {
    match ggml_type(id) {
        Some(t) if t.block_elements == 1 => float_width(t.name),
        Some(t) => u8::try_from(t.block_bytes).unwrap_or(1),
        None => 1,
    }
}

/// The fields of one quantized GGML block, in order, for the `fields`
/// filter (format 1.2, spec section 7): each field's bytes stay together,
/// and each field of all blocks becomes one stream. A two-byte half (a
/// scale, a min) is listed as two one-byte fields, so its low and its high
/// bytes get separate streams, as byte grouping gives them. Undoing this is
/// a few wide copies per block, where byte grouping a 34- or 144-byte
/// block is that many single-byte scatters; the archive is as small
/// (gemma: Q8_0 within 0.2%, Q4_K and Q6_K equal).
pub fn ggml_fields(id: u32) -> Option<&'static [u8]> {
    // Layouts from ggml-common.h; "h" = one byte of a half float.
    Some(match id {
        2 | 20 => &[1, 1, 16],            // Q4_0, IQ4_NL: d; qs[16]
        3 => &[1, 1, 1, 1, 16],           // Q4_1: d, m; qs[16]
        6 => &[1, 1, 4, 16],              // Q5_0: d; qh[4]; qs[16]
        7 => &[1, 1, 1, 1, 4, 16],        // Q5_1: d, m; qh[4]; qs[16]
        8 => &[1, 1, 32],                 // Q8_0: d; qs[32]
        10 => &[16, 64, 1, 1, 1, 1],      // Q2_K: scales[16]; qs[64]; d, dmin
        11 => &[32, 64, 12, 1, 1],        // Q3_K: hmask[32]; qs[64]; scales[12]; d
        12 => &[1, 1, 1, 1, 12, 128],     // Q4_K: d, dmin; scales[12]; qs[128]
        13 => &[1, 1, 1, 1, 12, 32, 128], // Q5_K: d, dmin; scales[12]; qh[32]; qs[128]
        14 => &[128, 64, 16, 1, 1],       // Q6_K: ql[128]; qh[64]; scales[16]; d
        23 => &[1, 1, 1, 1, 4, 128],      // IQ4_XS: d; scales_h (u16); scales_l[4]; qs[128]
        39 => &[1, 16],                   // MXFP4: e; qs[16]
        _ => return None,
    })
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    /// Every dtype of the table parses in a header, with its length; the
    /// Python tests store the files safetensors 0.8 itself writes.
    #[test]
    fn every_safetensors_dtype_parses_with_its_size() {
        for fnuz in ["F8_E4M3FNUZ", "F8_E5M2FNUZ"] {
            assert_eq!(safetensors_bits(fnuz), Some(8));
        }
        for &(name, bits) in SAFETENSORS_DTYPES {
            // Eight elements fill whole bytes for every width.
            let length = 8 * bits / 8;
            let json = format!(r#"{{"t":{{"dtype":"{name}","shape":[2,4],"data_offsets":[0,{length}]}}}}"#);
            let mut file: Vec<u8> = (json.len() as u64).to_le_bytes().to_vec();
            file.extend_from_slice(json.as_bytes());
            file.resize(file.len() + length as usize, 0);
            let header = crate::safetensors::parse(&file, file.len() as u64).unwrap();
            assert_eq!((header.tensors[0].dtype.as_str(), header.tensors[0].length), (name, u64::from(length)));
        }
    }
}
