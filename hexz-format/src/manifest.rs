//! The manifest: source format, tensor table, user metadata, parent
//! reference and, in format 1.1, the file table of a folder archive.
//!
//! It is a fixed [`ManifestHeader`] followed by fixed-size records, a dims
//! section and a string table, so a reader without an allocator can find a
//! tensor by name with positioned reads alone.

use zerocopy::FromBytes;

use crate::error::{Error, Result};
use crate::layout::{
    limits, FileKind, FileRecord, ManifestHeader, MetadataRecord, SourceFormat, StorageKind, TensorRecord,
    FILE_RECORD_SIZE, MANIFEST_HEADER_SIZE, MANIFEST_MAGIC, METADATA_RECORD_SIZE, TENSOR_RECORD_SIZE,
};
use crate::source::ReadAt;

/// Where the manifest's sections are, after validating its header.
#[derive(Debug, Clone, Copy)]
pub struct ManifestView {
    /// The manifest header, validated: counts that fit the manifest, known format.
    pub header: ManifestHeader,
    format: SourceFormat,
    /// Absolute offset of the manifest in the archive.
    pub offset: u64,
    tensors_at: u64,
    metadata_at: u64,
    dims_at: u64,
    files_at: u64,
    strings_at: u64,
    virtual_size: u64,
}

/// `ggml_type` value of tensors that do not come from GGUF.
pub const NO_GGML_TYPE: u32 = u32::MAX;

/// Longest path in a file table, in bytes.
pub const MAX_PATH_LENGTH: u32 = 4096;
/// Longest component (between `/`s) of a file-table path, in bytes.
pub const MAX_COMPONENT_LENGTH: usize = 255;

impl ManifestView {
    /// Validate the manifest header read from `bytes` (the manifest's first
    /// bytes) and that the sections fill exactly `length` bytes. `files` says
    /// whether the archive has the FILES feature (format 1.1).
    pub fn parse(bytes: &[u8], offset: u64, length: u64, virtual_size: u64, files: bool) -> Result<Self> {
        let header = ManifestHeader::read_from_prefix(bytes)
            .map_err(|_| Error::Truncated {
                what: "manifest header",
                offset,
                needed: MANIFEST_HEADER_SIZE as u64,
                available: bytes.len() as u64,
            })?
            .0;
        if header.magic != MANIFEST_MAGIC {
            return Err(Error::invalid("manifest magic", offset, "not a manifest"));
        }
        if header.reserved0 != [0; 6] || header.reserved1 != [0; 20] {
            return Err(Error::invalid("manifest reserved bytes", offset, "must be zero"));
        }
        let format = SourceFormat::from_u8(header.source_format).ok_or(Error::invalid(
            "manifest source_format",
            offset + 8,
            "unknown source format",
        ))?;
        if files != (format == SourceFormat::Folder) {
            return Err(Error::invalid(
                "manifest source_format",
                offset + 8,
                "a folder archive needs the FILES feature, and the FILES feature a folder",
            ));
        }
        if !files && header.file_count.get() != 0 {
            return Err(Error::invalid("manifest file_count", offset + 80, "a file table needs the FILES feature"));
        }
        if files && header.source_header_length.get() != 0 {
            return Err(Error::invalid("manifest source_header_length", offset + 16, "must be 0 in a folder archive"));
        }
        if header.has_parent > 1 {
            return Err(Error::invalid("manifest has_parent", offset + 9, "must be 0 or 1"));
        }
        if header.has_parent == 0 && (header.parent_identity != [0; 32] || header.parent_hint_length.get() != 0) {
            return Err(Error::invalid("manifest parent_identity", offset + 40, "set without has_parent"));
        }
        if header.source_header_length.get() > virtual_size {
            return Err(Error::invalid("manifest source_header_length", offset + 16, "larger than the source file"));
        }
        let tensors_at = offset + MANIFEST_HEADER_SIZE as u64;
        let section = |at: Option<u64>, count: u32, size: usize| {
            at.and_then(|at| u64::from(count).checked_mul(size as u64)?.checked_add(at))
        };
        let metadata_at = section(Some(tensors_at), header.tensor_count.get(), TENSOR_RECORD_SIZE);
        let dims_at = section(metadata_at, header.metadata_count.get(), METADATA_RECORD_SIZE);
        let files_at = section(dims_at, header.dims_count.get(), 8);
        let strings_at = section(files_at, header.file_count.get(), FILE_RECORD_SIZE);
        let end = strings_at.and_then(|at| at.checked_add(u64::from(header.string_table_length.get())));
        match (metadata_at, dims_at, files_at, strings_at, end) {
            (Some(metadata_at), Some(dims_at), Some(files_at), Some(strings_at), Some(end))
                if end == offset + length =>
            {
                let view = ManifestView {
                    header,
                    format,
                    offset,
                    tensors_at,
                    metadata_at,
                    dims_at,
                    files_at,
                    strings_at,
                    virtual_size,
                };
                if header.has_parent == 1 {
                    view.check_string(
                        header.parent_hint_offset.get(),
                        header.parent_hint_length.get(),
                        "parent hint",
                        offset + 72,
                    )?;
                }
                Ok(view)
            }
            _ => {
                Err(Error::invalid("manifest section counts", offset + 24, "sections do not fill the manifest exactly"))
            }
        }
    }

    /// What the archived source is.
    pub fn source_format(&self) -> SourceFormat {
        self.format
    }

    /// Number of tensor records.
    pub fn tensor_count(&self) -> u32 {
        self.header.tensor_count.get()
    }

    /// Number of user metadata records.
    pub fn metadata_count(&self) -> u32 {
        self.header.metadata_count.get()
    }

    /// Entries of the file table (0 unless the archive is a folder archive).
    pub fn file_count(&self) -> u32 {
        self.header.file_count.get()
    }

    fn check_string(&self, at: u32, len: u32, field: &'static str, offset: u64) -> Result<()> {
        let end = u64::from(at) + u64::from(len);
        if end > u64::from(self.header.string_table_length.get()) {
            return Err(Error::invalid(field, offset, "string outside the string table"));
        }
        Ok(())
    }

    /// Absolute offset of a string-table reference.
    pub fn string_offset(&self, at: u32) -> u64 {
        self.strings_at + u64::from(at)
    }

    /// Read and validate tensor record `index`.
    pub fn tensor<R: ReadAt + ?Sized>(&self, src: &R, index: u32) -> Result<TensorRecord> {
        if index >= self.tensor_count() {
            return Err(Error::InvalidArgument("tensor index out of range"));
        }
        let at = self.tensors_at + u64::from(index) * TENSOR_RECORD_SIZE as u64;
        let mut raw = [0u8; TENSOR_RECORD_SIZE];
        src.read_exact_at(at, &mut raw)?;
        let record = TensorRecord::read_from_bytes(&raw).map_err(|_| Error::invalid("tensor record", at, "size"))?;
        self.check_string(record.name_offset.get(), record.name_length.get(), "tensor name", at)?;
        self.check_string(record.dtype_offset.get(), u32::from(record.dtype_length.get()), "tensor dtype", at + 8)?;
        if record.dims_length.get() > limits::MAX_DIMS {
            return Err(Error::invalid("tensor dims_length", at + 14, "too many dimensions"));
        }
        if u64::from(record.dims_index.get()) + u64::from(record.dims_length.get())
            > u64::from(self.header.dims_count.get())
        {
            return Err(Error::invalid("tensor dims_index", at + 16, "dimensions outside the dims section"));
        }
        let end = record.virtual_offset.get().checked_add(record.length.get());
        if end.is_none_or(|end| end > self.virtual_size) {
            return Err(Error::invalid("tensor virtual_offset", at + 24, "tensor outside the virtual space"));
        }
        if StorageKind::from_u8(record.storage_kind).is_none() {
            return Err(Error::invalid("tensor storage_kind", at + 40, "unknown storage kind"));
        }
        if record.reserved != [0; 3] {
            return Err(Error::invalid("tensor reserved bytes", at + 41, "must be zero"));
        }
        if self.file_count() == 0 {
            if record.file_index.get() != 0 {
                return Err(Error::invalid("tensor file_index", at + 44, "set without a file table"));
            }
        } else {
            let file = self
                .file(src, record.file_index.get())
                .map_err(|_| Error::invalid("tensor file_index", at + 44, "no such file"))?;
            let (start, len) = (file.virtual_offset.get(), file.length.get());
            if record.virtual_offset.get() < start || end.is_none_or(|end| end > start + len) {
                return Err(Error::invalid("tensor virtual_offset", at + 24, "tensor outside its file"));
            }
        }
        Ok(record)
    }

    /// Dimension `i` of a tensor record (0 ≤ i < dims_length).
    pub fn dim<R: ReadAt + ?Sized>(&self, src: &R, record: &TensorRecord, i: u16) -> Result<u64> {
        if i >= record.dims_length.get() {
            return Err(Error::InvalidArgument("dimension index out of range"));
        }
        let mut raw = [0u8; 8];
        src.read_exact_at(self.dims_at + (u64::from(record.dims_index.get()) + u64::from(i)) * 8, &mut raw)?;
        Ok(u64::from_le_bytes(raw))
    }

    /// Read and validate metadata record `index`.
    pub fn metadata<R: ReadAt + ?Sized>(&self, src: &R, index: u32) -> Result<MetadataRecord> {
        if index >= self.metadata_count() {
            return Err(Error::InvalidArgument("metadata index out of range"));
        }
        let at = self.metadata_at + u64::from(index) * METADATA_RECORD_SIZE as u64;
        let mut raw = [0u8; METADATA_RECORD_SIZE];
        src.read_exact_at(at, &mut raw)?;
        let record =
            MetadataRecord::read_from_bytes(&raw).map_err(|_| Error::invalid("metadata record", at, "size"))?;
        self.check_string(record.key_offset.get(), record.key_length.get(), "metadata key", at)?;
        self.check_string(record.value_offset.get(), record.value_length.get(), "metadata value", at + 8)?;
        if record.value_kind > 1 || record.reserved != [0; 7] {
            return Err(Error::invalid("metadata value_kind", at + 16, "unknown kind or nonzero reserved bytes"));
        }
        Ok(record)
    }

    /// Read file record `index` and check its own fields (section 8.1); the
    /// table as a whole (order, cover, paths) is checked at open by
    /// [`check_files`](Self::check_files).
    pub fn file<R: ReadAt + ?Sized>(&self, src: &R, index: u32) -> Result<FileRecord> {
        if index >= self.file_count() {
            return Err(Error::InvalidArgument("file index out of range"));
        }
        let at = self.files_at + u64::from(index) * FILE_RECORD_SIZE as u64;
        let mut raw = [0u8; FILE_RECORD_SIZE];
        src.read_exact_at(at, &mut raw)?;
        let record = FileRecord::read_from_bytes(&raw).map_err(|_| Error::invalid("file record", at, "size"))?;
        self.check_string(record.path_offset.get(), record.path_length.get(), "file path", at)?;
        if record.path_length.get() == 0 || record.path_length.get() > MAX_PATH_LENGTH {
            return Err(Error::invalid("file path_length", at + 4, "empty or longer than 4096 bytes"));
        }
        let kind = FileKind::from_u8(record.kind).ok_or(Error::invalid("file kind", at + 44, "unknown kind"))?;
        let format = SourceFormat::from_u8(record.source_format)
            .filter(|f| *f != SourceFormat::Folder)
            .ok_or(Error::invalid("file source_format", at + 45, "unknown source format"))?;
        let end = record.virtual_offset.get().checked_add(record.length.get());
        if end.is_none_or(|end| end > self.virtual_size) {
            return Err(Error::invalid("file virtual_offset", at + 8, "file outside the virtual space"));
        }
        if record.source_header_length.get() > record.length.get() {
            return Err(Error::invalid("file source_header_length", at + 24, "longer than the file"));
        }
        if kind == FileKind::Directory
            && (record.length.get() != 0 || format != SourceFormat::Raw || record.source_header_length.get() != 0)
        {
            return Err(Error::invalid("file kind", at + 44, "a directory holds no bytes"));
        }
        if record.mode.get() > 0o7777 {
            return Err(Error::invalid("file mode", at + 40, "only permission bits (0o7777) are recorded"));
        }
        if record.reserved != [0; 18] {
            return Err(Error::invalid("file reserved bytes", at + 46, "must be zero"));
        }
        Ok(record)
    }

    /// Whether the string at (`at`, `len`) equals `want`, compared in chunks
    /// so no allocation is needed.
    pub fn string_eq<R: ReadAt + ?Sized>(&self, src: &R, at: u32, len: u32, want: &[u8]) -> Result<bool> {
        if want.len() as u64 != u64::from(len) {
            return Ok(false);
        }
        let mut chunk = [0u8; 64];
        let mut done = 0usize;
        while done < want.len() {
            let n = (want.len() - done).min(chunk.len());
            src.read_exact_at(self.string_offset(at) + done as u64, &mut chunk[..n])?;
            if chunk[..n] != want[done..done + n] {
                return Ok(false);
            }
            done += n;
        }
        Ok(true)
    }

    /// Copy the string at (`at`, `len`) into `out`, returning its length.
    pub fn read_string<R: ReadAt + ?Sized>(&self, src: &R, at: u32, len: u32, out: &mut [u8]) -> Result<usize> {
        let got = out.len() as u64;
        let dst = out.get_mut(..len as usize).ok_or(Error::BufferTooSmall {
            what: "string buffer",
            needed: u64::from(len),
            got,
        })?;
        src.read_exact_at(self.string_offset(at), dst)?;
        Ok(len as usize)
    }
}

/// Whether `path` is a safe relative path (spec section 8.1): UTF-8 was
/// checked by the caller; components separated by `/`, none empty, `.` or
/// `..`, none longer than 255 bytes, no NUL or backslash.
pub fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_LENGTH as usize
        && !path.contains(['\0', '\\'])
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && c.len() <= MAX_COMPONENT_LENGTH)
}

#[cfg(feature = "alloc")]
pub use owned::*;

#[cfg(feature = "alloc")]
mod owned {
    use alloc::collections::BTreeSet;
    use alloc::string::String;
    use alloc::vec::Vec;

    use zerocopy::little_endian::{I64, U16, U32, U64};
    use zerocopy::IntoBytes;

    use super::*;

    /// A tensor as the manifest records it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct TensorInfo {
        /// The tensor's name in the source.
        pub name: String,
        /// The dtype exactly as the source names it (safetensors string or GGML type name).
        pub dtype: String,
        /// GGML type id for GGUF tensors.
        pub ggml_type: Option<u32>,
        /// Dimensions as the source lists them (safetensors: row-major; GGUF: `ne[0]` first).
        pub shape: Vec<u64>,
        /// Offset in the virtual space (in the source file, or the folder's files laid end to end).
        pub offset: u64,
        /// Bytes of the tensor.
        pub length: u64,
        /// How its blocks are held in this archive and its chain.
        pub storage_kind: StorageKind,
        /// Folder archives: index of the file holding the tensor.
        pub file: Option<u32>,
    }

    /// A file of a folder archive.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FileInfo {
        /// Relative path, `/`-separated.
        pub path: String,
        /// A regular file or a directory.
        pub kind: FileKind,
        /// Where its bytes start in the virtual space.
        pub offset: u64,
        /// Bytes of the file; 0 for a directory.
        pub length: u64,
        /// Permission bits (`mode & 0o7777`).
        pub mode: u32,
        /// Nanoseconds since the Unix epoch; 0 when unknown.
        pub mtime_ns: i64,
        /// What the file is (raw, safetensors, GGUF): it was planned as such.
        pub source_format: SourceFormat,
        /// The file's own header is its first bytes up to this.
        pub source_header_length: u64,
    }

    /// A user metadata value.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum MetadataValue {
        /// Plain text.
        String(String),
        /// JSON text, validated when stored.
        Json(String),
    }

    /// Reference to the parent archive of a delta archive.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ParentRef {
        /// The parent's identity (BLAKE3 of its footer): the parent found must have it.
        pub identity: [u8; 32],
        /// Path of the parent relative to the child's directory.
        pub hint: String,
    }

    /// The decoded manifest.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Manifest {
        /// What the archived source is.
        pub source_format: SourceFormat,
        /// The source's own header is the virtual range `[0, this)` (0 for raw and folder archives).
        pub source_header_length: u64,
        /// Every tensor, in source order.
        pub tensors: Vec<TensorInfo>,
        /// User metadata, as given at store time; keys unique.
        pub metadata: Vec<(String, MetadataValue)>,
        /// The parent this archive's blocks may refer to, if any.
        pub parent: Option<ParentRef>,
        /// Folder archives (format 1.1): every file and directory, sorted by path.
        pub files: Vec<FileInfo>,
    }

    fn u32_len(n: usize, what: &'static str) -> Result<u32> {
        u32::try_from(n).map_err(|_| Error::LimitExceeded { what, value: n as u64, limit: u64::from(u32::MAX) })
    }

    struct Strings(Vec<u8>);
    impl Strings {
        fn add(&mut self, s: &str) -> Result<(u32, u32)> {
            let at = u32_len(self.0.len(), "manifest string table")?;
            self.0.extend_from_slice(s.as_bytes());
            u32_len(self.0.len(), "manifest string table")?;
            Ok((at, s.len() as u32))
        }
    }

    impl Manifest {
        /// Serialise to the on-disk layout.
        pub fn encode(&self) -> Result<Vec<u8>> {
            let mut strings = Strings(Vec::new());
            let mut dims: Vec<u64> = Vec::new();
            let mut tensor_bytes = Vec::with_capacity(self.tensors.len() * TENSOR_RECORD_SIZE);
            for t in &self.tensors {
                let (name_offset, name_length) = strings.add(&t.name)?;
                let (dtype_offset, dtype_length) = strings.add(&t.dtype)?;
                let dims_length = u16::try_from(t.shape.len())
                    .ok()
                    .filter(|&n| n <= limits::MAX_DIMS)
                    .ok_or(Error::InvalidArgument("tensor has too many dimensions"))?;
                let dims_index = u32_len(dims.len(), "manifest dims")?;
                dims.extend_from_slice(&t.shape);
                let record = TensorRecord {
                    name_offset: U32::new(name_offset),
                    name_length: U32::new(name_length),
                    dtype_offset: U32::new(dtype_offset),
                    dtype_length: U16::new(
                        u16::try_from(dtype_length).map_err(|_| Error::InvalidArgument("dtype name too long"))?,
                    ),
                    dims_length: U16::new(dims_length),
                    dims_index: U32::new(dims_index),
                    ggml_type: U32::new(t.ggml_type.unwrap_or(NO_GGML_TYPE)),
                    virtual_offset: U64::new(t.offset),
                    length: U64::new(t.length),
                    storage_kind: t.storage_kind as u8,
                    reserved: [0; 3],
                    file_index: U32::new(t.file.unwrap_or(0)),
                };
                tensor_bytes.extend_from_slice(record.as_bytes());
            }
            let mut metadata_bytes = Vec::new();
            for (key, value) in &self.metadata {
                let (key_offset, key_length) = strings.add(key)?;
                let (kind, text) = match value {
                    MetadataValue::String(s) => (0u8, s),
                    MetadataValue::Json(s) => (1u8, s),
                };
                let (value_offset, value_length) = strings.add(text)?;
                let record = MetadataRecord {
                    key_offset: U32::new(key_offset),
                    key_length: U32::new(key_length),
                    value_offset: U32::new(value_offset),
                    value_length: U32::new(value_length),
                    value_kind: kind,
                    reserved: [0; 7],
                };
                metadata_bytes.extend_from_slice(record.as_bytes());
            }
            let mut file_bytes = Vec::with_capacity(self.files.len() * FILE_RECORD_SIZE);
            for f in &self.files {
                let (path_offset, path_length) = strings.add(&f.path)?;
                let record = FileRecord {
                    path_offset: U32::new(path_offset),
                    path_length: U32::new(path_length),
                    virtual_offset: U64::new(f.offset),
                    length: U64::new(f.length),
                    source_header_length: U64::new(f.source_header_length),
                    mtime_ns: I64::new(f.mtime_ns),
                    mode: U32::new(f.mode & 0o7777),
                    kind: f.kind as u8,
                    source_format: f.source_format as u8,
                    reserved: [0; 18],
                };
                file_bytes.extend_from_slice(record.as_bytes());
            }
            let (parent_identity, hint) = match &self.parent {
                Some(p) => (p.identity, strings.add(&p.hint)?),
                None => ([0; 32], (0, 0)),
            };
            let header = ManifestHeader {
                magic: MANIFEST_MAGIC,
                source_format: self.source_format as u8,
                has_parent: u8::from(self.parent.is_some()),
                reserved0: [0; 6],
                source_header_length: U64::new(self.source_header_length),
                tensor_count: U32::new(u32_len(self.tensors.len(), "tensor count")?),
                metadata_count: U32::new(u32_len(self.metadata.len(), "metadata count")?),
                dims_count: U32::new(u32_len(dims.len(), "manifest dims")?),
                string_table_length: U32::new(u32_len(strings.0.len(), "manifest string table")?),
                parent_identity,
                parent_hint_offset: U32::new(hint.0),
                parent_hint_length: U32::new(hint.1),
                file_count: U32::new(u32_len(self.files.len(), "file count")?),
                reserved1: [0; 20],
            };
            let mut out = Vec::new();
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&tensor_bytes);
            out.extend_from_slice(&metadata_bytes);
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&file_bytes);
            out.extend_from_slice(&strings.0);
            Ok(out)
        }
    }

    impl ManifestView {
        fn owned_string<R: ReadAt + ?Sized>(&self, src: &R, at: u32, len: u32, field: &'static str) -> Result<String> {
            let mut buf = crate::error::try_zeroed(len as usize, "manifest string")?;
            self.read_string(src, at, len, &mut buf)?;
            String::from_utf8(buf).map_err(|_| Error::invalid(field, self.string_offset(at), "not valid UTF-8"))
        }

        /// Decode tensor `index` into an owned [`TensorInfo`].
        pub fn tensor_info<R: ReadAt + ?Sized>(&self, src: &R, index: u32) -> Result<TensorInfo> {
            let r = self.tensor(src, index)?;
            let mut shape = Vec::with_capacity(usize::from(r.dims_length.get()));
            for i in 0..r.dims_length.get() {
                shape.push(self.dim(src, &r, i)?);
            }
            Ok(TensorInfo {
                name: self.owned_string(src, r.name_offset.get(), r.name_length.get(), "tensor name")?,
                dtype: self.owned_string(src, r.dtype_offset.get(), u32::from(r.dtype_length.get()), "tensor dtype")?,
                ggml_type: Some(r.ggml_type.get()).filter(|&t| t != NO_GGML_TYPE),
                shape,
                offset: r.virtual_offset.get(),
                length: r.length.get(),
                storage_kind: StorageKind::from_u8(r.storage_kind).unwrap_or(StorageKind::Stored),
                file: (self.file_count() > 0).then(|| r.file_index.get()),
            })
        }

        /// Decode file `index` into an owned [`FileInfo`].
        pub fn file_info<R: ReadAt + ?Sized>(&self, src: &R, index: u32) -> Result<FileInfo> {
            let r = self.file(src, index)?;
            Ok(FileInfo {
                path: self.owned_string(src, r.path_offset.get(), r.path_length.get(), "file path")?,
                kind: FileKind::from_u8(r.kind).unwrap_or(FileKind::File),
                offset: r.virtual_offset.get(),
                length: r.length.get(),
                mode: r.mode.get(),
                mtime_ns: r.mtime_ns.get(),
                source_format: SourceFormat::from_u8(r.source_format).unwrap_or(SourceFormat::Raw),
                source_header_length: r.source_header_length.get(),
            })
        }

        /// Check the file table as a whole (spec section 8.1): paths valid
        /// and strictly ascending by bytes (hence unique), no file under
        /// another file's path, and the regular files laying out the
        /// virtual space exactly, in table order, without gaps.
        pub fn check_files<R: ReadAt + ?Sized>(&self, src: &R) -> Result<()> {
            let mut previous: Option<String> = None;
            let mut regular: BTreeSet<String> = BTreeSet::new();
            let mut next_offset = 0u64;
            for i in 0..self.file_count() {
                let at = self.files_at + u64::from(i) * FILE_RECORD_SIZE as u64;
                let f = self.file_info(src, i)?;
                if !valid_path(&f.path) {
                    return Err(Error::invalid(
                        "file path",
                        at,
                        "not a safe relative path (empty, absolute, '.', '..', NUL or backslash)",
                    ));
                }
                if previous.as_deref().is_some_and(|p| p.as_bytes() >= f.path.as_bytes()) {
                    return Err(Error::invalid("file path", at, "paths are not strictly ascending (duplicate?)"));
                }
                // No entry may live under a regular file's path ("a" and "a/b").
                let mut prefix = f.path.as_str();
                while let Some(cut) = prefix.rfind('/') {
                    prefix = &prefix[..cut];
                    if regular.contains(prefix) {
                        return Err(Error::invalid("file path", at, "inside a path that is a regular file"));
                    }
                }
                if f.offset != next_offset {
                    return Err(Error::invalid(
                        "file virtual_offset",
                        at + 8,
                        "files do not lay out the virtual space in order",
                    ));
                }
                if f.kind == FileKind::File {
                    regular.insert(f.path.clone());
                    next_offset += f.length;
                }
                previous = Some(f.path);
            }
            if self.file_count() > 0 && next_offset != self.virtual_size {
                return Err(Error::invalid("file length", self.files_at, "files do not add up to the virtual size"));
            }
            Ok(())
        }

        /// The parent reference, when the archive has a parent.
        pub fn parent_ref<R: ReadAt + ?Sized>(&self, src: &R) -> Result<Option<ParentRef>> {
            if self.header.has_parent != 1 {
                return Ok(None);
            }
            let hint = self.owned_string(
                src,
                self.header.parent_hint_offset.get(),
                self.header.parent_hint_length.get(),
                "parent hint",
            )?;
            Ok(Some(ParentRef { identity: self.header.parent_identity, hint }))
        }

        /// Decode the whole manifest.
        pub fn decode<R: ReadAt + ?Sized>(&self, src: &R) -> Result<Manifest> {
            let mut tensors = Vec::new();
            for i in 0..self.tensor_count() {
                tensors.push(self.tensor_info(src, i)?);
            }
            let mut metadata = Vec::new();
            for i in 0..self.metadata_count() {
                let r = self.metadata(src, i)?;
                let key = self.owned_string(src, r.key_offset.get(), r.key_length.get(), "metadata key")?;
                let text = self.owned_string(src, r.value_offset.get(), r.value_length.get(), "metadata value")?;
                let value = if r.value_kind == 1 { MetadataValue::Json(text) } else { MetadataValue::String(text) };
                metadata.push((key, value));
            }
            let mut files = Vec::new();
            for i in 0..self.file_count() {
                files.push(self.file_info(src, i)?);
            }
            Ok(Manifest {
                source_format: self.format,
                source_header_length: self.header.source_header_length.get(),
                tensors,
                metadata,
                parent: self.parent_ref(src)?,
                files,
            })
        }
    }
}
