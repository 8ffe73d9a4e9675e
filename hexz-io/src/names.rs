//! The names of an archive's tables as C strings, for front ends that hand
//! out borrowed `const char *` (the C ABI): every tensor name and dtype,
//! file path, metadata key and value NUL-terminated in one allocation,
//! with the offset of each NUL. Built once per [`Reader`](crate::Reader)
//! (fallibly: sizes come from the archive); the entries themselves stay
//! in the Reader's tables and are never copied.

use hexz_format::manifest::{FileInfo, MetadataValue, TensorInfo};

use crate::error::{Error, Result};

/// Strings laid end to end, each followed by a NUL.
#[derive(Debug, Default)]
struct NulStrings {
    bytes: Box<[u8]>,
    /// Where string `i` ends (its NUL).
    nuls: Box<[usize]>,
}

impl NulStrings {
    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.nuls.get(i)?;
        let start = if i == 0 { 0 } else { self.nuls[i - 1] + 1 };
        Some(&self.bytes[start..=end])
    }
}

/// The names of a Reader's tables, NUL-terminated (see the module). Each
/// is given as its bytes followed by the NUL; a name holding a NUL of its
/// own keeps it (its length says where it really ends).
#[derive(Debug, Default)]
pub struct CNames {
    strings: NulStrings,
    tensors: usize,
    files: usize,
    metadata: usize,
}

fn value_bytes(v: &MetadataValue) -> &[u8] {
    match v {
        MetadataValue::String(s) | MetadataValue::Json(s) => s.as_bytes(),
    }
}

fn oom(bytes: usize) -> Error {
    Error::Format(hexz_format::Error::OutOfMemory { what: "the table names", bytes: bytes as u64 })
}

impl CNames {
    pub(crate) fn build(
        tensors: &[TensorInfo],
        files: &[FileInfo],
        metadata: &[(String, MetadataValue)],
    ) -> Result<CNames> {
        let texts = || {
            tensors
                .iter()
                .flat_map(|t| [t.name.as_bytes(), t.dtype.as_bytes()])
                .chain(files.iter().map(|f| f.path.as_bytes()))
                .chain(metadata.iter().flat_map(|(k, v)| [k.as_bytes(), value_bytes(v)]))
        };
        let count = 2 * tensors.len() + files.len() + 2 * metadata.len();
        let total = texts().map(|t| t.len() + 1).sum::<usize>();
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(total).map_err(|_| oom(total))?;
        let mut nuls = Vec::new();
        nuls.try_reserve_exact(count).map_err(|_| oom(count * 8))?;
        for text in texts() {
            bytes.extend_from_slice(text);
            nuls.push(bytes.len());
            bytes.push(0);
        }
        Ok(CNames {
            strings: NulStrings { bytes: bytes.into_boxed_slice(), nuls: nuls.into_boxed_slice() },
            tensors: tensors.len(),
            files: files.len(),
            metadata: metadata.len(),
        })
    }

    /// Tensor `i`'s name.
    pub fn tensor_name(&self, i: usize) -> Option<&[u8]> {
        (i < self.tensors).then(|| self.strings.get(2 * i)).flatten()
    }

    /// Tensor `i`'s dtype, as the source names it.
    pub fn tensor_dtype(&self, i: usize) -> Option<&[u8]> {
        (i < self.tensors).then(|| self.strings.get(2 * i + 1)).flatten()
    }

    /// File `i`'s path.
    pub fn file_path(&self, i: usize) -> Option<&[u8]> {
        (i < self.files).then(|| self.strings.get(2 * self.tensors + i)).flatten()
    }

    /// Metadata entry `i`'s key.
    pub fn metadata_key(&self, i: usize) -> Option<&[u8]> {
        (i < self.metadata).then(|| self.strings.get(2 * self.tensors + self.files + 2 * i)).flatten()
    }

    /// Metadata entry `i`'s value (a string, or JSON text).
    pub fn metadata_value(&self, i: usize) -> Option<&[u8]> {
        (i < self.metadata).then(|| self.strings.get(2 * self.tensors + self.files + 2 * i + 1)).flatten()
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.strings.bytes.len() + self.strings.nuls.len() * std::mem::size_of::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hexz_format::layout::FileKind;
    use hexz_format::{SourceFormat, StorageKind};

    #[test]
    fn every_name_once_nul_terminated() {
        let t = |name: &str, dtype: &str| TensorInfo {
            name: name.into(),
            dtype: dtype.into(),
            ggml_type: None,
            shape: vec![2],
            offset: 0,
            length: 8,
            storage_kind: StorageKind::Stored,
            file: None,
        };
        let f = FileInfo {
            path: "a/b.json".into(),
            kind: FileKind::File,
            offset: 0,
            length: 1,
            mode: 0o644,
            mtime_ns: 0,
            source_format: SourceFormat::Raw,
            source_header_length: 0,
        };
        let m = vec![
            ("k".to_string(), MetadataValue::Json("{}".into())),
            (String::new(), MetadataValue::String(String::new())),
        ];
        let names = CNames::build(&[t("w", "F32"), t("", "bad\0dtype")], &[f], &m).unwrap();
        assert_eq!(names.tensor_name(0).unwrap(), b"w\0");
        assert_eq!(names.tensor_dtype(0).unwrap(), b"F32\0");
        assert_eq!(names.tensor_name(1).unwrap(), b"\0");
        assert_eq!(names.tensor_dtype(1).unwrap(), b"bad\0dtype\0");
        assert!(names.tensor_name(2).is_none());
        assert_eq!(names.file_path(0).unwrap(), b"a/b.json\0");
        assert!(names.file_path(1).is_none());
        assert_eq!(names.metadata_key(0).unwrap(), b"k\0");
        assert_eq!(names.metadata_value(0).unwrap(), b"{}\0");
        assert_eq!(names.metadata_key(1).unwrap(), b"\0");
        assert_eq!(names.metadata_value(1).unwrap(), b"\0");
        assert!(names.metadata_key(2).is_none());
        let empty = CNames::build(&[], &[], &[]).unwrap();
        assert!(empty.tensor_name(0).is_none() && empty.memory_bytes() == 0);
    }
}
