//! On-disk fixed structures, exactly as `spec/FORMAT.md` describes them.
//!
//! Every struct is `#[repr(C)]` over alignment-1 little-endian field types,
//! so zerocopy can view or copy it from any byte offset without unsafe code.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Magic at offset 0 of every archive.
pub const HEADER_MAGIC: [u8; 8] = *b"HEXZ\x00\r\n\x1a";
/// Magic at the start of the footer, the last [`FOOTER_SIZE`] bytes.
pub const FOOTER_MAGIC: [u8; 8] = *b"HXZFOOT\x00";
/// Magic at the start of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"HXZMANI\x00";
/// Major format version written and accepted.
pub const VERSION_MAJOR: u16 = 1;

/// Bytes of the fixed header ([`FileHeader`]) at offset 0.
pub const HEADER_SIZE: usize = 64;
/// Bytes of the fixed footer ([`Footer`]) that ends the file.
pub const FOOTER_SIZE: usize = 192;
/// Bytes of one directory entry ([`DirectoryEntry`]), one per index page.
pub const DIRECTORY_ENTRY_SIZE: usize = 56;
/// Bytes of one block entry ([`BlockEntry`]) in an index page.
pub const BLOCK_ENTRY_SIZE: usize = 72;
/// Bytes of the manifest's fixed start ([`ManifestHeader`]).
pub const MANIFEST_HEADER_SIZE: usize = 104;
/// Bytes of one tensor record ([`TensorRecord`]) in the manifest.
pub const TENSOR_RECORD_SIZE: usize = 48;
/// Bytes of one user metadata record ([`MetadataRecord`]) in the manifest.
pub const METADATA_RECORD_SIZE: usize = 24;
/// Bytes of one file-table record ([`FileRecord`]) in a folder archive's manifest.
pub const FILE_RECORD_SIZE: usize = 64;

/// Limits a reader enforces before trusting a declared size or count.
pub mod limits {
    /// Largest decoded block.
    pub const MAX_BLOCK_LENGTH: u32 = 64 << 20;
    /// Block entries per index page.
    pub const MAX_ENTRIES_PER_PAGE: u32 = 4096;
    /// Largest manifest.
    pub const MAX_MANIFEST_LENGTH: u64 = 1 << 30;
    /// Most dimensions of one tensor.
    pub const MAX_DIMS: u16 = 64;
    /// Deepest parent chain.
    pub const MAX_CHAIN_DEPTH: u8 = 32;
}

/// Typed ids of the one-byte fields, each with the name every front end
/// shows (inspect, diff, JSON, Python, C).
macro_rules! byte_ids {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $value:literal => $text:literal,)+ }) => {
        $(#[$doc])*
        #[repr(u8)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)+
        }
        impl $name {
            /// Every value, in numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];
            /// The id stored in `value`, if it is one.
            pub const fn from_u8(value: u8) -> Option<Self> {
                match value {
                    $($value => Some($name::$variant),)+
                    _ => None,
                }
            }
            /// The name shown to users.
            pub const fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

byte_ids! {
    /// Codec of a block entry (spec section 7).
    CodecId {
        /// Stored as it is.
        None = 0 => "none",
        /// One lz4 block, no frame, no length prefix.
        Lz4 = 1 => "lz4",
        /// Exactly one zstd frame.
        Zstd = 2 => "zstd",
        /// Format 1.3: rANS-coded symbol streams (spec section 7.2); only
        /// with the `float-ans` and `delta-ans` filters.
        Ans = 3 => "ans",
    }
}

byte_ids! {
    /// Filter of a block entry (spec sections 7 and 9).
    FilterId {
        /// Stored bytes decode directly to the block.
        None = 0 => "none",
        /// Byte k of every element grouped together (element width in the entry).
        ByteGroup = 1 => "byte-group",
        /// XOR against the base bytes in the parent, then byte grouping.
        DeltaXor = 2 => "delta-xor",
        /// Wrapping integer difference against the base, zigzag, byte grouping.
        DeltaSub = 3 => "delta-sub",
        /// The delta-sub difference laid out in bit planes (sparse changes).
        DeltaSubBits = 4 => "delta-sub-bits",
        /// Format 1.2: quantized GGML blocks split into their fields (the
        /// GGML type in the entry's `filter_param`).
        Fields = 5 => "fields",
        /// Format 1.3: float exponents entropy-coded (codec `ans`).
        FloatAns = 6 => "float-ans",
        /// Format 1.3: the SUB delta's differences entropy-coded by size
        /// class, their low bits raw (codec `ans`).
        DeltaAns = 7 => "delta-ans",
    }
}

impl FilterId {
    /// Whether this filter's blocks are coded by codec `ans` (and only by it).
    pub const fn is_entropy_coded(self) -> bool {
        matches!(self, FilterId::FloatAns | FilterId::DeltaAns)
    }

    /// Whether this filter is a delta against a base in the parent.
    pub const fn is_delta(self) -> bool {
        matches!(self, FilterId::DeltaXor | FilterId::DeltaSub | FilterId::DeltaSubBits | FilterId::DeltaAns)
    }
}

byte_ids! {
    /// What kind of file the archive holds.
    SourceFormat {
        /// Any file, cut into fixed-size blocks.
        Raw = 0 => "raw",
        /// A safetensors file.
        Safetensors = 1 => "safetensors",
        /// A GGUF file.
        Gguf = 2 => "gguf",
        /// Format 1.1: a folder of files laid end to end (the file table says which is which).
        Folder = 3 => "folder",
    }
}

byte_ids! {
    /// What a file-table entry is (format 1.1).
    FileKind {
        /// A regular file: `length` bytes of the virtual space.
        File = 0 => "file",
        /// A directory (listed so that empty ones are kept); no bytes.
        Directory = 1 => "directory",
    }
}

byte_ids! {
    /// How a tensor's bytes are held, summarised from its blocks.
    StorageKind {
        /// At least one block stored in this archive.
        Stored = 0 => "stored",
        /// Every block is a duplicate of bytes stored elsewhere in this archive.
        Deduplicated = 1 => "deduplicated",
        /// Every block is referenced from the parent chain.
        Parent = 2 => "parent",
        /// At least one block is a delta against the parent.
        Delta = 3 => "delta",
        /// Zero-length tensor: no blocks.
        Empty = 4 => "empty",
    }
}

/// Format feature bits in the header (spec section 4). A reader refuses an
/// archive with an incompatible feature bit it does not know, and ignores
/// compatible feature bits it does not know.
pub mod features {
    /// Format 1.1: the manifest holds a file table; the virtual space is
    /// the files laid end to end (a folder archive).
    pub const FILES: u64 = 1 << 0;
    /// Format 1.2: block entries may use the `fields` filter.
    pub const FIELDS: u64 = 1 << 1;
    /// Format 1.3: block entries may use codec `ans` (filters `float-ans`, `delta-ans`).
    pub const ENTROPY: u64 = 1 << 2;
    /// Format 1.4: a signature section and trailer follow the footer
    /// (spec section 15). Incompatible: a 1.3 reader would look for the
    /// footer in the last 192 bytes.
    pub const SIGNED: u64 = 1 << 3;
    /// Format 1.5: blocks and manifest are encrypted (spec section 16); the
    /// manifest region starts with a key section and block hashes are keyed.
    pub const ENCRYPTED: u64 = 1 << 4;
    /// Incompatible feature bits this reader understands.
    pub const KNOWN_INCOMPAT: u64 = FILES | FIELDS | ENTROPY | SIGNED | ENCRYPTED;
    /// Minor version of the format this reader implements.
    pub const KNOWN_MINOR: u16 = 5;
    /// The features a block entry needs its archive to declare: `FIELDS`
    /// for the `fields` filter, `ENTROPY` for codec `ans` (wherever its
    /// bytes are stored: a writer declares the features of the entries it
    /// copies from a parent too, spec section 4).
    pub fn needed_by(entry: &super::BlockEntry) -> u64 {
        let mut needed = 0;
        if entry.filter == super::FilterId::Fields as u8 {
            needed |= FIELDS;
        }
        if entry.codec == super::CodecId::Ans as u8 {
            needed |= ENTROPY;
        }
        needed
    }
    /// The minor version an archive using `incompat` features declares.
    pub const fn minor_for(incompat: u64) -> u16 {
        if incompat & ENCRYPTED != 0 {
            5
        } else if incompat & SIGNED != 0 {
            4
        } else if incompat & ENTROPY != 0 {
            3
        } else if incompat & FIELDS != 0 {
            2
        } else if incompat != 0 {
            1
        } else {
            0
        }
    }
}

/// Fixed header at offset 0.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct FileHeader {
    /// [`HEADER_MAGIC`]: says the file is a hexz archive.
    pub magic: [u8; 8],
    /// Major format version ([`VERSION_MAJOR`]); another major is refused.
    pub version_major: U16,
    /// Minor format version; at least the one its incompatible features need
    /// ([`features::minor_for`]).
    pub version_minor: U16,
    /// Size of this header; 64 in version 1.
    pub header_size: U32,
    /// Features a reader must know to read the archive ([`features`]); zero in 1.0.
    pub incompat_features: U64,
    /// Features a reader may ignore; zero in 1.0.
    pub compat_features: U64,
    /// Zero in version 1.
    pub reserved: [u8; 24],
    /// First 8 bytes (little-endian) of BLAKE3 over bytes [0, 56).
    pub checksum: U64,
}

/// Fixed footer, the last 192 bytes of the file.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct Footer {
    /// [`FOOTER_MAGIC`]: the archive was written to its end.
    pub magic: [u8; 8],
    /// Length of the source file, i.e. of the virtual space.
    pub virtual_size: U64,
    /// Number of block entries across all pages.
    pub block_count: U64,
    /// Offset of the directory (array of [`DirectoryEntry`]).
    pub directory_offset: U64,
    /// Number of directory entries, i.e. pages.
    pub page_count: U32,
    /// Entries in every page but the last.
    pub entries_per_page: U32,
    /// Offset of the manifest, right after the directory.
    pub manifest_offset: U64,
    /// Bytes of the manifest, which ends where the footer starts.
    pub manifest_length: U64,
    /// Largest decoded block length of any entry.
    pub max_block_length: U32,
    /// Largest stored length of any entry.
    pub max_stored_length: U32,
    /// Must be zero in version 1.
    pub flags: U64,
    /// BLAKE3 of the whole source file.
    pub source_hash: [u8; 32],
    /// BLAKE3 of the directory bytes.
    pub directory_hash: [u8; 32],
    /// BLAKE3 of the manifest bytes.
    pub manifest_hash: [u8; 32],
    /// Zero in version 1.
    pub reserved: [u8; 16],
    /// First 8 bytes (little-endian) of BLAKE3 over footer bytes [0, 184).
    pub checksum: U64,
}

/// One directory entry: where a page is and what it covers.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct DirectoryEntry {
    /// Virtual offset of the first block in the page.
    pub first_virtual_offset: U64,
    /// Offset of the page in the file.
    pub page_offset: U64,
    /// Block entries in the page: `entries_per_page`, fewer in the last page.
    pub entry_count: U32,
    /// Zero in version 1.
    pub reserved: [u8; 4],
    /// BLAKE3 of the page bytes.
    pub page_hash: [u8; 32],
}

/// One block entry inside an index page.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct BlockEntry {
    /// Where the block's decoded bytes start in the virtual space.
    pub virtual_offset: U64,
    /// Offset of the stored bytes in the archive named by `location`.
    pub stored_offset: U64,
    /// Delta filters: virtual offset in the parent of the base bytes. Zero otherwise.
    pub delta_base_offset: U64,
    /// Bytes of the decoded block.
    pub virtual_length: U32,
    /// Bytes stored; at most `virtual_length`.
    pub stored_length: U32,
    /// How the stored bytes are compressed: a [`CodecId`].
    pub codec: u8,
    /// How the codec's output becomes the block: a [`FilterId`].
    pub filter: u8,
    /// Element width in bytes for byte grouping and deltas (1, 2, 4 or 8).
    pub element_width: u8,
    /// 0: stored in this archive; k: stored in the k-th ancestor.
    pub location: u8,
    /// The `fields` filter (1.2): the GGML type whose layout splits the
    /// block. Zero with every other filter.
    pub filter_param: U32,
    /// BLAKE3 of the decoded block.
    pub hash: [u8; 32],
}

/// Fixed start of the manifest; variable sections follow in this order:
/// tensor records, metadata records, dims (u64 each), string table.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ManifestHeader {
    /// [`MANIFEST_MAGIC`].
    pub magic: [u8; 8],
    /// What the archived source is: a [`SourceFormat`].
    pub source_format: u8,
    /// 1 when the archive names a parent (its blocks may live there), else 0.
    pub has_parent: u8,
    /// Zero.
    pub reserved0: [u8; 6],
    /// Virtual range [0, source_header_length) holds the source's own header.
    pub source_header_length: U64,
    /// Tensor records following this header.
    pub tensor_count: U32,
    /// User metadata records following the tensor records.
    pub metadata_count: U32,
    /// u64 dimensions after the metadata records: every tensor's, found by
    /// its `dims_index`.
    pub dims_count: U32,
    /// Bytes of the string table that ends the manifest (names, dtypes, keys, paths).
    pub string_table_length: U32,
    /// Identity of the parent archive (see spec), zero when `has_parent` is 0.
    pub parent_identity: [u8; 32],
    /// Relative path hint to the parent, in the string table.
    pub parent_hint_offset: U32,
    /// Bytes of the parent path hint; 0 without a parent.
    pub parent_hint_length: U32,
    /// Format 1.1 (FILES): entries in the file table; 0 otherwise.
    pub file_count: U32,
    /// Zero.
    pub reserved1: [u8; 20],
}

/// A tensor of the source file.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct TensorRecord {
    /// Where the tensor's name starts in the string table.
    pub name_offset: U32,
    /// Bytes of the name (UTF-8).
    pub name_length: U32,
    /// Where the dtype name (`F32`, `BF16`, `Q4_K`, ...) starts in the string table.
    pub dtype_offset: U32,
    /// Bytes of the dtype name.
    pub dtype_length: U16,
    /// Number of dimensions (at most [`limits::MAX_DIMS`]).
    pub dims_length: U16,
    /// Index of the first dimension in the dims section.
    pub dims_index: U32,
    /// GGML type id for GGUF tensors, 0xFFFF_FFFF otherwise.
    pub ggml_type: U32,
    /// Where the tensor's bytes start in the virtual space.
    pub virtual_offset: U64,
    /// Bytes of the tensor.
    pub length: U64,
    /// How its blocks are held: a [`StorageKind`].
    pub storage_kind: u8,
    /// Zero.
    pub reserved: [u8; 3],
    /// Format 1.1 (FILES): index of the file holding the tensor; 0 otherwise.
    pub file_index: U32,
}

/// A user metadata key/value.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct MetadataRecord {
    /// Where the key starts in the string table.
    pub key_offset: U32,
    /// Bytes of the key (UTF-8, unique in the manifest).
    pub key_length: U32,
    /// Where the value starts in the string table.
    pub value_offset: U32,
    /// Bytes of the value.
    pub value_length: U32,
    /// 0: UTF-8 string, 1: JSON text.
    pub value_kind: u8,
    /// Zero.
    pub reserved: [u8; 7],
}

/// One entry of the file table (format 1.1, feature FILES).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct FileRecord {
    /// Relative path with `/` separators, in the string table.
    pub path_offset: U32,
    /// Bytes of the path.
    pub path_length: U32,
    /// Where the file's bytes start in the virtual space.
    pub virtual_offset: U64,
    /// Bytes of the file (0 for a directory).
    pub length: U64,
    /// The file's own header (safetensors JSON, GGUF header) is its first bytes up to this.
    pub source_header_length: U64,
    /// Modification time, nanoseconds since the Unix epoch (0: unknown).
    pub mtime_ns: zerocopy::little_endian::I64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: U32,
    /// [`FileKind`].
    pub kind: u8,
    /// [`SourceFormat`] of the file (raw, safetensors, GGUF).
    pub source_format: u8,
    /// Zero.
    pub reserved: [u8; 18],
}

const _: () = assert!(core::mem::size_of::<FileHeader>() == HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<FileRecord>() == FILE_RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<Footer>() == FOOTER_SIZE);
const _: () = assert!(core::mem::size_of::<DirectoryEntry>() == DIRECTORY_ENTRY_SIZE);
const _: () = assert!(core::mem::size_of::<BlockEntry>() == BLOCK_ENTRY_SIZE);
const _: () = assert!(core::mem::size_of::<ManifestHeader>() == MANIFEST_HEADER_SIZE);
const _: () = assert!(core::mem::size_of::<TensorRecord>() == TENSOR_RECORD_SIZE);
const _: () = assert!(core::mem::size_of::<MetadataRecord>() == METADATA_RECORD_SIZE);

/// First 8 bytes of BLAKE3, little-endian: the checksum of header and footer.
pub fn short_checksum(bytes: &[u8]) -> u64 {
    let digest = blake3::hash(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}
