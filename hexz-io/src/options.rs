//! Store and open options as the front ends name them (the CLI's flags,
//! the C ABI's numbers, Python's keywords), parsed and checked here once,
//! and the defaults every front end states.

use std::str::FromStr;

use hexz_format::manifest::MetadataValue;
use hexz_format::writer::{Chunking, StoreOptions};
use hexz_format::Compression;

use crate::error::{Error, Result};

/// Block size when none is given: 1 MiB.
pub const DEFAULT_BLOCK_SIZE: u32 = hexz_format::writer::DEFAULT_BLOCK_SIZE;
/// Smallest block size: 4 KiB.
pub const MIN_BLOCK_SIZE: u32 = hexz_format::writer::MIN_BLOCK_SIZE;
/// Largest block size: 64 MiB.
pub const MAX_BLOCK_SIZE: u32 = hexz_format::layout::limits::MAX_BLOCK_LENGTH;
/// Compression when none is given: zstd at its default levels.
pub const DEFAULT_COMPRESSION: CompressionKind = CompressionKind::Zstd;
/// How raw bytes are cut when nothing is said: content-defined.
pub const DEFAULT_CHUNKING: Chunking = hexz_format::writer::DEFAULT_CHUNKING;
/// The format version written when none is asked for: the newest.
pub const DEFAULT_FORMAT: FormatVersion = FormatVersion::V1_3;
/// Store worker threads when none are given: 0, one per core.
pub const DEFAULT_THREADS: usize = 0;
/// Most store worker threads.
pub const MAX_THREADS: usize = hexz_format::writer::MAX_THREADS;
/// Reads that may run at once on a Reader when none are given.
pub const DEFAULT_READ_SLOTS: usize = crate::reader::DEFAULT_READ_SLOTS;
/// Cap on directory, manifest and source-header memory when none is given: 256 MiB.
pub const DEFAULT_MAX_METADATA_BYTES: u64 = hexz_format::reader::DEFAULT_MAX_METADATA_BYTES;
/// Cap on a Reader's read scratch memory when none is given: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

/// A codec for new blocks, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionKind {
    /// zstd, at its default levels or the one given.
    Zstd,
    /// lz4 (no level).
    Lz4,
    /// Stored as is (no level).
    None,
}

impl CompressionKind {
    /// The name front ends use ("zstd", "lz4", "none").
    pub const fn name(self) -> &'static str {
        match self {
            CompressionKind::Zstd => "zstd",
            CompressionKind::Lz4 => "lz4",
            CompressionKind::None => "none",
        }
    }

    /// The compression with `level` (zstd 1..=22 for every block; `None`:
    /// the default levels). A level with another codec is an error.
    pub fn with_level(self, level: Option<i32>) -> Result<Compression> {
        match (self, level) {
            (CompressionKind::Zstd, None) => Ok(Compression::DEFAULT),
            (CompressionKind::Zstd, Some(level)) => {
                if !(1..=22).contains(&level) {
                    return Err(Error::invalid("zstd level must be 1 to 22"));
                }
                Ok(Compression::zstd(level))
            }
            (_, Some(_)) => Err(Error::invalid("level applies to zstd only")),
            (CompressionKind::Lz4, None) => Ok(Compression::Lz4),
            (CompressionKind::None, None) => Ok(Compression::None),
        }
    }
}

impl FromStr for CompressionKind {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        match name {
            "zstd" => Ok(CompressionKind::Zstd),
            "lz4" => Ok(CompressionKind::Lz4),
            "none" => Ok(CompressionKind::None),
            _ => Err(Error::invalid("compression must be \"zstd\", \"lz4\" or \"none\"")),
        }
    }
}

/// The compression named `name` with `level` (see [`CompressionKind::with_level`]).
pub fn compression(name: &str, level: Option<i32>) -> Result<Compression> {
    name.parse::<CompressionKind>()?.with_level(level)
}

/// The chunking named `name`: "cdc" (content-defined) or "fixed".
pub fn chunking(name: &str) -> Result<Chunking> {
    match name {
        "cdc" => Ok(Chunking::ContentDefined),
        "fixed" => Ok(Chunking::Fixed),
        _ => Err(Error::invalid("chunking must be \"cdc\" or \"fixed\"")),
    }
}

/// The format version an archive is written for: each leaves out what
/// readers of older versions cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatVersion {
    /// 1.1: quantized GGUF blocks byte-grouped, no entropy coding. Folders need at least this.
    V1_1,
    /// 1.2: adds the field splitting of quantized GGUF blocks.
    V1_2,
    /// 1.3: adds the entropy coding of float and delta blocks.
    V1_3,
}

impl FormatVersion {
    /// Every version this writer can write, oldest first.
    pub const ALL: [FormatVersion; 3] = [FormatVersion::V1_1, FormatVersion::V1_2, FormatVersion::V1_3];

    /// "1.1", "1.2" or "1.3".
    pub const fn name(self) -> &'static str {
        match self {
            FormatVersion::V1_1 => "1.1",
            FormatVersion::V1_2 => "1.2",
            FormatVersion::V1_3 => "1.3",
        }
    }

    /// Set the writer switches of this version in `opts`.
    pub fn apply(self, opts: &mut StoreOptions) {
        opts.split_fields = self >= FormatVersion::V1_2;
        opts.entropy = self >= FormatVersion::V1_3;
    }
}

impl FromStr for FormatVersion {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        FormatVersion::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| Error::invalid("format version must be \"1.1\", \"1.2\" or \"1.3\""))
    }
}

/// A block size in bytes from text: a number with an optional unit (K, M,
/// KiB, MiB; powers of two), e.g. `1M`, `256K`, `4MiB`, between 4 KiB and 64 MiB.
pub fn block_size(text: &str) -> Result<u32> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| Error::invalid(format!("block size '{text}': expected a number")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(Error::invalid(format!("block size '{text}': unknown unit (use K or M)"))),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| Error::invalid(format!("block size '{text}' is too large")))?;
    if bytes < u64::from(MIN_BLOCK_SIZE) || bytes > u64::from(MAX_BLOCK_SIZE) {
        return Err(Error::invalid(format!("block size '{text}' must be between 4 KiB and 64 MiB")));
    }
    Ok(bytes as u32)
}

/// One metadata item from text: `KEY=VALUE` (a string) or `KEY:=JSON`.
pub fn metadata_item(item: &str) -> Result<(String, MetadataValue)> {
    let (key, value) = if let Some((k, v)) = item.split_once(":=") {
        serde_json::from_str::<serde_json::Value>(v)
            .map_err(|e| Error::invalid(format!("metadata {k}: not valid JSON: {e}")))?;
        (k.to_string(), MetadataValue::Json(v.to_string()))
    } else if let Some((k, v)) = item.split_once('=') {
        (k.to_string(), MetadataValue::String(v.to_string()))
    } else {
        return Err(Error::invalid(format!("metadata {item}: expected KEY=VALUE or KEY:=JSON")));
    };
    if key.is_empty() {
        return Err(Error::invalid(format!("metadata {item}: empty key")));
    }
    Ok((key, value))
}

/// Metadata from items, each key once (see [`metadata_item`]).
pub fn metadata<S: AsRef<str>>(items: &[S]) -> Result<Vec<(String, MetadataValue)>> {
    let mut out: Vec<(String, MetadataValue)> = Vec::new();
    for item in items {
        let (key, value) = metadata_item(item.as_ref())?;
        if out.iter().any(|(k, _)| *k == key) {
            return Err(Error::invalid(format!("metadata {key}: given more than once")));
        }
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_applies_to_zstd_only() {
        assert_eq!(compression("zstd", None).unwrap(), Compression::DEFAULT);
        assert_eq!(compression("zstd", Some(19)).unwrap(), Compression::zstd(19));
        assert_eq!(compression("lz4", None).unwrap(), Compression::Lz4);
        assert_eq!(compression("none", None).unwrap(), Compression::None);
        for name in ["lz4", "none"] {
            let e = compression(name, Some(3)).unwrap_err();
            assert_eq!(e.code(), hexz_format::ErrorCode::InvalidArgument);
            assert!(e.to_string().contains("level applies to zstd only"), "{e}");
        }
        assert!(compression("zstd", Some(0)).is_err());
        assert!(compression("zstd", Some(23)).is_err());
        assert!(compression("brotli", None).unwrap_err().to_string().contains("compression must be"));
    }

    #[test]
    fn chunking_and_format_names() {
        assert_eq!(chunking("cdc").unwrap(), Chunking::ContentDefined);
        assert_eq!(chunking("fixed").unwrap(), Chunking::Fixed);
        assert!(chunking("rabin").is_err());
        for v in FormatVersion::ALL {
            assert_eq!(v.name().parse::<FormatVersion>().unwrap(), v);
        }
        assert!("1.4".parse::<FormatVersion>().is_err());
        let mut o = StoreOptions::default();
        FormatVersion::V1_1.apply(&mut o);
        assert!(!o.split_fields && !o.entropy);
        FormatVersion::V1_2.apply(&mut o);
        assert!(o.split_fields && !o.entropy);
        FormatVersion::V1_3.apply(&mut o);
        assert!(o.split_fields && o.entropy);
    }

    #[test]
    fn defaults_are_the_core_s() {
        let d = StoreOptions::default();
        assert_eq!(d.block_size, DEFAULT_BLOCK_SIZE);
        assert_eq!(d.chunking, DEFAULT_CHUNKING);
        assert_eq!(d.threads, DEFAULT_THREADS);
        assert_eq!(DEFAULT_COMPRESSION.with_level(None).unwrap(), d.compression);
        let mut v = StoreOptions::default();
        DEFAULT_FORMAT.apply(&mut v);
        assert_eq!((v.split_fields, v.entropy), (d.split_fields, d.entropy));
        assert_eq!(crate::OpenOptions::default().memory_budget, DEFAULT_MEMORY_BUDGET);
    }

    #[test]
    fn block_sizes_and_metadata() {
        assert_eq!(block_size("1M").unwrap(), 1 << 20);
        assert_eq!(block_size("256K").unwrap(), 256 << 10);
        assert_eq!(block_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(block_size("65536").unwrap(), 65536);
        assert!(block_size("1K").is_err());
        assert!(block_size("128M").is_err());
        assert!(block_size("xM").is_err());
        let m = metadata(&["run=42", "cfg:={\"lr\":1e-4}"]).unwrap();
        assert_eq!(m[0], ("run".into(), MetadataValue::String("42".into())));
        assert_eq!(m[1], ("cfg".into(), MetadataValue::Json("{\"lr\":1e-4}".into())));
        assert!(metadata(&["a=1", "a=2"]).is_err());
        assert!(metadata(&["=1"]).is_err());
        assert!(metadata(&["x:={"]).is_err());
        assert!(metadata(&["novalue"]).is_err());
    }
}
