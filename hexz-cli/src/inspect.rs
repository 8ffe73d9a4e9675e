//! `hexz inspect`, `hexz ls` and `hexz diff`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hexz_format::gguf::{self, GgufHeader, GgufValue};
use hexz_format::layout::BlockEntry;
use hexz_format::manifest::{MetadataValue, TensorInfo};
use hexz_format::{Archive, CodecId, FilterId, ReadAt, SourceFormat};
use hexz_io::{OpenOptions, RangeSink, Reader};
use serde::Serialize;
use serde_json::{json, Value};

use crate::outln;
use crate::util::{emit, emit_json, hex, human_bytes, CliError, Exit};

/// `hexz inspect --json`: the stable schema documented in README.
#[derive(Serialize)]
struct InspectJson {
    archive: String,
    /// Always false here; see [`LockedJson`].
    locked: bool,
    format_version: String,
    identity: String,
    source_format: &'static str,
    source_blake3: String,
    source_header_length: u64,
    #[serde(flatten)]
    structure: StructureJson,
    parent: Option<ParentJson>,
    chain: Vec<ChainJson>,
    metadata: BTreeMap<String, Value>,
    tensor_count: usize,
    tensors: Vec<TensorJson>,
    /// Folder archives (format 1.1): every file and directory.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    files: Vec<FileJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gguf: Option<Value>,
    /// Signatures (format 1.4): key id and trusted comment of each, in
    /// order. Listed, not checked: `hexz verify --key` checks them.
    signatures: Vec<SignatureJson>,
    /// Encryption (format 1.5): key id and the stanzas' kinds; absent when plain.
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption: Option<EncryptionJson>,
}

/// `hexz inspect --json` of an encrypted archive opened without a key: what
/// the format leaves visible (spec section 16), `"locked": true`.
#[derive(Serialize)]
struct LockedJson {
    archive: String,
    locked: bool,
    format_version: String,
    identity: String,
    #[serde(flatten)]
    structure: StructureJson,
    signatures: Vec<SignatureJson>,
    encryption: Option<EncryptionJson>,
}

/// Sizes and the block mix: what the footer and the index tell, the same
/// with or without a key.
#[derive(Serialize)]
struct StructureJson {
    original_size: u64,
    archive_size: u64,
    stored_block_bytes: u64,
    ratio: f64,
    block_count: u64,
    max_block_length: u32,
    deduplicated_blocks: u64,
    deduplicated_bytes: u64,
    codecs: BTreeMap<&'static str, u64>,
    filters: BTreeMap<&'static str, u64>,
    parent_blocks: u64,
    delta_blocks: u64,
}

#[derive(Serialize)]
struct EncryptionJson {
    cipher: &'static str,
    key_id: String,
    /// "passphrase" (Argon2id) or "x25519", one per stanza, in order.
    stanzas: Vec<&'static str>,
}

#[derive(Serialize)]
struct SignatureJson {
    key_id: String,
    trusted_comment: String,
}

#[derive(Serialize)]
struct FileJson {
    path: String,
    kind: &'static str,
    offset: u64,
    length: u64,
    mode: String,
    mtime_ns: i64,
    source_format: &'static str,
    source_header_length: u64,
}

#[derive(Serialize)]
struct ParentJson {
    identity: String,
    hint: String,
}

#[derive(Serialize)]
struct ChainJson {
    path: String,
    identity: String,
}

#[derive(Serialize)]
struct TensorJson {
    name: String,
    /// Folder archives: the file holding the tensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    dtype: String,
    ggml_type: Option<u32>,
    shape: Vec<u64>,
    offset: u64,
    length: u64,
    storage: &'static str,
    /// Bytes of this archive's blocks that hold the tensor (what reading it
    /// fetches; a block shared with a neighbour counts whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_bytes: Option<u64>,
}

impl TensorJson {
    fn new(t: &TensorInfo, files: &[hexz_format::manifest::FileInfo]) -> Self {
        TensorJson {
            name: t.name.clone(),
            file: t.file.and_then(|i| files.get(i as usize)).map(|f| f.path.clone()),
            dtype: t.dtype.clone(),
            ggml_type: t.ggml_type,
            shape: t.shape.clone(),
            offset: t.offset,
            length: t.length,
            storage: t.storage_kind.name(),
            stored_bytes: None,
        }
    }
}

/// Stored bytes of the blocks (of this archive) overlapping each range;
/// `blocks` are (virtual offset, virtual end, stored length or 0 when in a
/// parent), in order.
fn stored_bytes_of(blocks: &[(u64, u64, u64)], offset: u64, length: u64) -> u64 {
    let first = blocks.partition_point(|b| b.1 <= offset);
    blocks[first..].iter().take_while(|b| b.0 < offset + length).map(|b| b.2).sum()
}

/// Block entries covering `[offset, offset + length)`, in order.
fn entries_in(reader: &Reader, offset: u64, length: u64) -> Result<Vec<BlockEntry>, CliError> {
    archive_entries(reader.archive(), offset, length, |e| reader.error(e).into())
}

/// The same for an archive opened on its own (`at` names it in errors).
fn archive_entries(
    archive: &Archive<hexz_io::Source>,
    offset: u64,
    length: u64,
    at: impl Fn(hexz_format::Error) -> CliError,
) -> Result<Vec<BlockEntry>, CliError> {
    if length == 0 {
        return Ok(Vec::new());
    }
    let mut page = vec![0u8; archive.page_bytes()];
    let blocks = archive.blocks(offset, length, &mut page).map_err(&at)?;
    blocks.map(|b| b.map(|b| b.entry).map_err(&at)).collect()
}

/// The structure of `archive` from its block entries (in order), and the
/// (start, end, bytes stored here) span of each block.
fn structure(archive: &Archive<hexz_io::Source>, entries: Vec<BlockEntry>) -> (StructureJson, Vec<(u64, u64, u64)>) {
    let (original, archive_size) = (archive.virtual_size(), ReadAt::len(archive.source()));
    let mut s = StructureJson {
        original_size: original,
        archive_size,
        stored_block_bytes: 0,
        ratio: archive_size as f64 / original.max(1) as f64,
        block_count: archive.block_count(),
        max_block_length: archive.footer().max_block_length.get(),
        deduplicated_blocks: 0,
        deduplicated_bytes: 0,
        codecs: BTreeMap::new(),
        filters: BTreeMap::new(),
        parent_blocks: 0,
        delta_blocks: 0,
    };
    let mut spans = Vec::with_capacity(entries.len());
    let mut stored = HashSet::new();
    for e in entries {
        let start = e.virtual_offset.get();
        let here = if e.location > 0 { 0 } else { u64::from(e.stored_length.get()) };
        spans.push((start, start + u64::from(e.virtual_length.get()), here));
        *s.codecs.entry(CodecId::from_u8(e.codec).map_or("unknown", CodecId::name)).or_default() += 1;
        let filter = FilterId::from_u8(e.filter);
        *s.filters.entry(filter.map_or("unknown", FilterId::name)).or_default() += 1;
        if e.location > 0 {
            s.parent_blocks += 1;
            continue;
        }
        if filter.is_some_and(FilterId::is_delta) {
            s.delta_blocks += 1;
        }
        if stored.insert(e.stored_offset.get()) {
            s.stored_block_bytes += u64::from(e.stored_length.get());
        } else {
            s.deduplicated_blocks += 1;
            s.deduplicated_bytes += u64::from(e.virtual_length.get());
        }
    }
    (s, spans)
}

fn print_structure(o: &mut String, s: &StructureJson) {
    outln!(o, "original size   {} ({} bytes)", human_bytes(s.original_size), s.original_size);
    outln!(o, "archive size    {} ({} bytes)", human_bytes(s.archive_size), s.archive_size);
    outln!(o, "ratio           {:.4}", s.ratio);
    outln!(o, "blocks          {}", s.block_count);
    outln!(o, "dedup savings   {} blocks, {}", s.deduplicated_blocks, human_bytes(s.deduplicated_bytes));
    outln!(o, "codecs          {}", mix(&s.codecs));
    outln!(o, "filters         {}", mix(&s.filters));
}

fn print_protection(o: &mut String, encryption: &Option<EncryptionJson>, signatures: &[SignatureJson]) {
    if let Some(e) = encryption {
        outln!(o, "encryption      {}, key id {}, for {}", e.cipher, e.key_id, e.stanzas.join(", "));
    }
    if signatures.is_empty() {
        outln!(o, "signatures      none");
    }
    for sig in signatures {
        outln!(o, "signature       key {} ({})", sig.key_id, sig.trusted_comment);
    }
}

/// `None` for a plain archive; an encrypted one's key section must parse.
fn encryption_json(archive: &Archive<hexz_io::Source>) -> hexz_format::Result<Option<EncryptionJson>> {
    if !archive.is_encrypted() {
        return Ok(None);
    }
    let k = archive.key_section()?;
    Ok(Some(EncryptionJson {
        cipher: "AES-256-GCM-SIV",
        key_id: hex(&k.id),
        stanzas: k
            .stanzas()
            .map(|st| match st.kind {
                hexz_format::crypt::STANZA_PASSPHRASE => "passphrase",
                hexz_format::crypt::STANZA_X25519 => "x25519",
                _ => "unknown",
            })
            .collect(),
    }))
}

fn signatures_json(archive: &Archive<hexz_io::Source>) -> hexz_format::Result<Vec<SignatureJson>> {
    Ok(archive
        .signature_records()?
        .iter()
        .map(|r| SignatureJson {
            key_id: r.key_id().to_string(),
            trusted_comment: String::from_utf8_lossy(r.comment()).into_owned(),
        })
        .collect())
}

fn summary(path: &Path, reader: &Reader) -> Result<InspectJson, CliError> {
    let archive = reader.archive();
    let (structure, spans) = structure(archive, entries_in(reader, 0, reader.size())?);
    let manifest = archive.manifest().map_err(|e| reader.error(e))?;
    let header = archive.header();
    let metadata = manifest
        .metadata
        .iter()
        .map(|(k, v)| {
            let value = match v {
                MetadataValue::String(s) => Value::String(s.clone()),
                MetadataValue::Json(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            };
            (k.clone(), value)
        })
        .collect();
    let chain = reader
        .chain()
        .iter()
        .enumerate()
        .filter_map(|(d, l)| archive.member(d).map(|m| ChainJson { path: l.to_string(), identity: hex(&m.identity()) }))
        .collect();
    Ok(InspectJson {
        archive: path.display().to_string(),
        locked: false,
        format_version: format!("{}.{}", header.version_major.get(), header.version_minor.get()),
        identity: hex(&archive.identity()),
        source_format: manifest.source_format.name(),
        source_blake3: hex(&archive.source_hash()),
        source_header_length: manifest.source_header_length,
        structure,
        parent: manifest.parent.as_ref().map(|p| ParentJson { identity: hex(&p.identity), hint: p.hint.clone() }),
        chain,
        metadata,
        signatures: signatures_json(archive).map_err(|e| reader.error(e))?,
        encryption: encryption_json(archive).map_err(|e| reader.error(e))?,
        tensor_count: manifest.tensors.len(),
        tensors: manifest
            .tensors
            .iter()
            .map(|t| TensorJson {
                stored_bytes: Some(stored_bytes_of(&spans, t.offset, t.length)),
                ..TensorJson::new(t, &manifest.files)
            })
            .collect(),
        files: manifest
            .files
            .iter()
            .map(|f| FileJson {
                path: f.path.clone(),
                kind: f.kind.name(),
                offset: f.offset,
                length: f.length,
                mode: format!("{:o}", f.mode),
                mtime_ns: f.mtime_ns,
                source_format: f.source_format.name(),
                source_header_length: f.source_header_length,
            })
            .collect(),
        gguf: None,
    })
}

/// A GGUF value as JSON: numbers, booleans, strings (lossy UTF-8), arrays.
pub fn gguf_value_json(bytes: &[u8], v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(x) => json!(x),
        GgufValue::I8(x) => json!(x),
        GgufValue::U16(x) => json!(x),
        GgufValue::I16(x) => json!(x),
        GgufValue::U32(x) => json!(x),
        GgufValue::I32(x) => json!(x),
        GgufValue::F32(x) => json!(f64::from(*x)),
        GgufValue::Bool(x) => json!(x),
        GgufValue::U64(x) => json!(x),
        GgufValue::I64(x) => json!(x),
        GgufValue::F64(x) => json!(x),
        GgufValue::String(s) => json!(String::from_utf8_lossy(GgufHeader::span(bytes, *s))),
        GgufValue::Array(a) if a.elem_type == gguf::value_type::STRING => {
            Value::Array(a.strings(bytes).map(|s| json!(String::from_utf8_lossy(s))).collect())
        }
        GgufValue::Array(a) => {
            if !a.items.is_empty() || a.len == 0 {
                Value::Array(a.items.iter().map(|i| gguf_value_json(bytes, i)).collect())
            } else {
                let data = GgufHeader::span(bytes, a.data);
                let size = gguf::scalar_size(a.elem_type).unwrap_or(1) as usize;
                Value::Array(
                    data.chunks_exact(size)
                        .map(|c| {
                            let mut raw = [0u8; 8];
                            raw[..size].copy_from_slice(c);
                            let scalar = match a.elem_type {
                                gguf::value_type::U8 => GgufValue::U8(raw[0]),
                                gguf::value_type::I8 => GgufValue::I8(raw[0] as i8),
                                gguf::value_type::BOOL => GgufValue::Bool(raw[0] != 0),
                                gguf::value_type::U16 => GgufValue::U16(u16::from_le_bytes([raw[0], raw[1]])),
                                gguf::value_type::I16 => GgufValue::I16(i16::from_le_bytes([raw[0], raw[1]])),
                                gguf::value_type::U32 => {
                                    GgufValue::U32(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                                }
                                gguf::value_type::I32 => {
                                    GgufValue::I32(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                                }
                                gguf::value_type::F32 => {
                                    GgufValue::F32(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                                }
                                gguf::value_type::U64 => GgufValue::U64(u64::from_le_bytes(raw)),
                                gguf::value_type::I64 => GgufValue::I64(i64::from_le_bytes(raw)),
                                _ => GgufValue::F64(f64::from_le_bytes(raw)),
                            };
                            gguf_value_json(bytes, &scalar)
                        })
                        .collect(),
                )
            }
        }
    }
}

#[derive(Serialize)]
struct GgufJson {
    version: u32,
    alignment: u64,
    data_offset: u64,
    kv: Vec<KvJson>,
}

#[derive(Serialize)]
struct KvJson {
    key: String,
    #[serde(rename = "type")]
    type_name: &'static str,
    element_type: Option<&'static str>,
    value: Value,
}

fn gguf_json(reader: &Reader) -> Result<Value, CliError> {
    let (bytes, header) = reader.archive().gguf_header().map_err(|e| reader.error(e))?;
    let kv = header
        .kvs
        .iter()
        .map(|kv| KvJson {
            key: kv.key.clone(),
            type_name: gguf::value_type_name(kv.value.type_id()),
            element_type: match &kv.value {
                GgufValue::Array(a) => Some(gguf::value_type_name(a.elem_type)),
                _ => None,
            },
            value: gguf_value_json(&bytes, &kv.value),
        })
        .collect();
    let g = GgufJson { version: header.version, alignment: header.alignment, data_offset: header.data_offset, kv };
    serde_json::to_value(g).map_err(|e| CliError::usage(format!("JSON output: {e}")))
}

pub fn inspect(path: &Path, as_json: bool, kv: bool, open: &OpenOptions) -> Result<Exit, CliError> {
    let location = crate::util::location(path);
    let reader = match Reader::open(location.clone(), open) {
        Ok(reader) => reader,
        // Given no key at all, an encrypted archive still shows what it
        // does not hide. A wrong key stays an error.
        Err(e) if open.keys.is_none() && e.code() == hexz_format::ErrorCode::KeyRequired => {
            return inspect_locked(path, location, as_json, open, e);
        }
        Err(e) => return Err(e.into()),
    };
    let mut s = summary(path, &reader)?;
    if kv && reader.source_format() == SourceFormat::Gguf {
        s.gguf = Some(gguf_json(&reader)?);
    }
    if as_json {
        return emit_json(&s);
    }
    let mut o = String::new();
    outln!(o, "archive         {}", path.display());
    outln!(o, "format version  {}", s.format_version);
    outln!(o, "identity        {}", s.identity);
    outln!(o, "source format   {}", s.source_format);
    print_structure(&mut o, &s.structure);
    match &s.parent {
        Some(p) => outln!(o, "parent          {} ({})", p.hint, p.identity),
        None => outln!(o, "parent          none"),
    }
    for (d, c) in s.chain.iter().enumerate().skip(1) {
        outln!(o, "chain           {}{}", "  ".repeat(d - 1), c.path);
    }
    for (k, v) in &s.metadata {
        outln!(o, "metadata        {k} = {v}");
    }
    print_protection(&mut o, &s.encryption, &s.signatures);
    if !s.files.is_empty() {
        outln!(o, "\n{:<56} {:<12} {:>14}  mode", "file", "format", "bytes");
        for f in &s.files {
            let format = if f.kind == "directory" { "directory" } else { f.source_format };
            outln!(o, "{:<56} {:<12} {:>14}  {}", f.path, format, f.length, f.mode);
        }
    }
    if !s.tensors.is_empty() {
        // In a folder, each tensor as FILE:NAME, which `extract --tensor` takes.
        let heading = if s.files.is_empty() { "tensor" } else { "file:tensor" };
        outln!(o, "\n{:<48} {:<8} {:<22} {:>12}  storage", heading, "dtype", "shape", "bytes");
        for t in &s.tensors {
            let name = match &t.file {
                Some(file) => format!("{file}:{}", t.name),
                None => t.name.clone(),
            };
            outln!(o, "{:<48} {:<8} {:<22} {:>12}  {}", name, t.dtype, format!("{:?}", t.shape), t.length, t.storage);
        }
    }
    if let Some(g) = &s.gguf {
        outln!(o, "\nGGUF v{} key/values:", g["version"]);
        for kv in g["kv"].as_array().into_iter().flatten() {
            let value = kv["value"].to_string();
            let shown = match value.char_indices().nth(96) {
                Some((cut, _)) => format!("{}… ({} chars)", &value[..cut], value.chars().count()),
                None => value,
            };
            outln!(o, "  {:<44} {:<8} {}", kv["key"].as_str().unwrap_or(""), kv["type"].as_str().unwrap_or(""), shown);
        }
    }
    emit(&o)
}

/// An encrypted archive without its key: the structure, the encryption's
/// key id and stanza kinds, and the signatures; what the key hides (the
/// source format, tensors, metadata, file table, parent) is said to be hidden.
///
/// `refused` is the error opening it with keys gave: returned as is when the
/// key is wanted by something other than this archive (a parent).
fn inspect_locked(
    path: &Path,
    location: hexz_io::Location,
    as_json: bool,
    open: &OpenOptions,
    refused: hexz_io::Error,
) -> Result<Exit, CliError> {
    let source = open.resolver.open(&location)?;
    let at = |source| CliError::from(hexz_io::Error::At { location: location.clone(), source });
    let archive = Archive::open_locked(source, &open.limits).map_err(at)?;
    if !archive.is_encrypted() {
        return Err(refused.into());
    }
    let encryption = encryption_json(&archive).map_err(at)?;
    let entries = archive_entries(&archive, 0, archive.virtual_size(), at)?;
    let header = archive.header();
    let s = LockedJson {
        archive: path.display().to_string(),
        locked: true,
        format_version: format!("{}.{}", header.version_major.get(), header.version_minor.get()),
        identity: hex(&archive.identity()),
        structure: structure(&archive, entries).0,
        signatures: signatures_json(&archive).map_err(at)?,
        encryption,
    };
    if as_json {
        return emit_json(&s);
    }
    let mut o = String::new();
    outln!(o, "archive         {}", path.display());
    outln!(o, "format version  {}", s.format_version);
    outln!(o, "identity        {}", s.identity);
    print_structure(&mut o, &s.structure);
    outln!(o, "parent blocks   {}", s.structure.parent_blocks);
    print_protection(&mut o, &s.encryption, &s.signatures);
    outln!(o, "locked          source format, tensors, metadata, files and parent are encrypted:");
    outln!(o, "                give --identity FILE or --passphrase-file FILE (or HEXZ_PASSPHRASE) to see them");
    emit(&o)
}

fn mix(counts: &BTreeMap<&'static str, u64>) -> String {
    counts.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

struct Listed {
    path: PathBuf,
    size: u64,
    original: u64,
    identity: [u8; 32],
    parent: Option<[u8; 32]>,
    /// Folder archives: how many files (and empty folders) they hold.
    files: Option<u32>,
}

#[derive(Serialize)]
struct LsJson {
    path: String,
    archive_size: u64,
    original_size: u64,
    identity: String,
    parent: Option<String>,
    /// Folder archives: entries of the file table.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<u32>,
    children: Vec<LsJson>,
}

pub fn ls(dir: &Path, as_json: bool, open: &OpenOptions) -> Result<Exit, CliError> {
    let remote = matches!(crate::util::location(dir), hexz_io::Location::Url(_));
    let paths: Vec<PathBuf> = if let hexz_io::Location::Url(prefix) = crate::util::location(dir) {
        // Objects named *.hxz under the prefix; each opened with two requests.
        crate::remote::list(&prefix)?
    } else {
        let entries = std::fs::read_dir(dir).map_err(|e| hexz_io::Error::file(dir, "list", e))?;
        let mut paths: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        paths
    };
    let mut found = Vec::new();
    for path in paths {
        // Archives are recognised by content; other files are skipped quietly.
        let Ok(archive) = open
            .resolver
            .open(&crate::util::location(&path))
            .map_err(|_| ())
            // With the keys given when there are some; else an encrypted
            // archive is listed by its structure (no parent link, no files).
            .and_then(|s| match &open.keys {
                Some(k) => Archive::open_unlocked(s.clone(), &open.limits, k.as_ref())
                    .or_else(|_| Archive::open_locked(s, &open.limits))
                    .map_err(|_| ()),
                None => Archive::open_locked(s, &open.limits).map_err(|_| ()),
            })
        else {
            continue;
        };
        found.push(Listed {
            size: ReadAt::len(archive.source()),
            original: archive.virtual_size(),
            identity: archive.identity(),
            parent: archive.parent_identity(),
            // A folder archive may hold no files (an empty folder).
            files: (archive.manifest_view().source_format() == SourceFormat::Folder).then(|| archive.file_count()),
            path,
        });
    }
    let stale = if remote { Vec::new() } else { hexz_io::output::stale_temporaries(dir) };
    for stale in stale {
        eprintln!(
            "hexz: note: {} is a temporary left by a hexz process that is gone; the next store or extract into this folder removes it",
            stale.display()
        );
    }
    let by_id: HashMap<[u8; 32], usize> = found.iter().enumerate().map(|(i, l)| (l.identity, i)).collect();
    let mut children: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    for (i, l) in found.iter().enumerate() {
        if let Some(p) = l.parent.filter(|p| by_id.contains_key(p)) {
            children.entry(p).or_default().push(i);
        }
    }
    let kids = |i: usize| children.get(&found[i].identity).cloned().unwrap_or_default();
    let roots: Vec<usize> =
        (0..found.len()).filter(|&i| found[i].parent.is_none_or(|p| !by_id.contains_key(&p))).collect();
    if as_json {
        fn node(found: &[Listed], i: usize, kids: &dyn Fn(usize) -> Vec<usize>, depth: u32) -> LsJson {
            let l = &found[i];
            let children = if depth > 64 {
                Vec::new()
            } else {
                kids(i).into_iter().map(|c| node(found, c, kids, depth + 1)).collect()
            };
            LsJson {
                path: l.path.display().to_string(),
                archive_size: l.size,
                original_size: l.original,
                identity: hex(&l.identity),
                parent: l.parent.map(|p| hex(&p)),
                files: l.files,
                children,
            }
        }
        let tree: Vec<LsJson> = roots.iter().map(|&r| node(&found, r, &kids, 0)).collect();
        return emit_json(&tree);
    }
    fn print(
        o: &mut String,
        found: &[Listed],
        i: usize,
        kids: &dyn Fn(usize) -> Vec<usize>,
        prefix: &str,
        last: bool,
        depth: u32,
    ) {
        let l = &found[i];
        let name = l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let branch = match (depth, last) {
            (0, _) => "",
            (_, true) => "└── ",
            (_, false) => "├── ",
        };
        let missing = if l.parent.is_some() && depth == 0 { "  (parent not in this folder)" } else { "" };
        let folder = l.files.map(|n| format!(", a folder of {n} files")).unwrap_or_default();
        outln!(o, "{prefix}{branch}{name}  {} of {}{folder}{missing}", human_bytes(l.size), human_bytes(l.original));
        let children = kids(i);
        let next = if depth == 0 { String::new() } else { format!("{prefix}{}", if last { "    " } else { "│   " }) };
        if depth < 64 {
            for (k, &c) in children.iter().enumerate() {
                print(o, found, c, kids, &next, k + 1 == children.len(), depth + 1);
            }
        }
    }
    if found.is_empty() {
        eprintln!("no archives in {}", dir.display());
    }
    let mut o = String::new();
    for &r in &roots {
        print(&mut o, &found, r, &kids, "", true, 0);
    }
    emit(&o)
}

/// Compares what the shared decoder gives for a range of A with the same
/// bytes read from B; stops at the first difference.
struct CompareSink<'a> {
    b: &'a Reader,
    b_offset: u64,
    differ: AtomicBool,
}

impl RangeSink for CompareSink<'_> {
    fn ordered(&self) -> bool {
        false
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> hexz_io::Result<()> {
        let theirs = self.b.read_vec(self.b_offset + offset, data.len() as u64)?;
        if theirs != data {
            self.differ.store(true, Ordering::Relaxed);
            return Err(hexz_io::Error::Cancelled);
        }
        Ok(())
    }
}

/// Whether two tensors hold the same bytes: equal block hash sequences when
/// both were cut alike, else a decoded comparison.
fn same_bytes(a: &Reader, ta: &TensorInfo, b: &Reader, tb: &TensorInfo) -> Result<bool, CliError> {
    if ta.length != tb.length {
        return Ok(false);
    }
    let ha: Vec<_> = entries_in(a, ta.offset, ta.length)?.iter().map(|e| (e.virtual_length.get(), e.hash)).collect();
    let hb: Vec<_> = entries_in(b, tb.offset, tb.length)?.iter().map(|e| (e.virtual_length.get(), e.hash)).collect();
    if ha == hb {
        return Ok(true);
    }
    if ha.iter().map(|x| x.0).eq(hb.iter().map(|x| x.0)) {
        return Ok(false);
    }
    let sink = CompareSink { b, b_offset: tb.offset, differ: AtomicBool::new(false) };
    match a.read_range_parallel(ta.offset, ta.length, &sink, 0, &|_| ControlFlow::Continue(())) {
        Ok(()) => Ok(true),
        Err(_) if sink.differ.load(Ordering::Relaxed) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `hexz diff --json`.
#[derive(Serialize)]
struct DiffJson {
    a: String,
    b: String,
    b_is_child_of_a: bool,
    totals: BTreeMap<&'static str, u64>,
    stored_bytes: u64,
    b_archive_size: u64,
    b_original_size: u64,
    tensors: Vec<DiffRow>,
}

#[derive(Serialize)]
struct DiffRow {
    name: String,
    status: &'static str,
    dtype: String,
    shape: Vec<u64>,
    base_dtype: Option<String>,
    base_shape: Option<Vec<u64>>,
    bytes: u64,
    stored_bytes: u64,
    /// The filters of the blocks B stores for the tensor (`delta-xor`,
    /// `delta-sub`, `delta-sub-bits`), or `whole` for plain blocks.
    delta: Vec<&'static str>,
}

/// A tensor as `extract --tensor` takes it: `FILE:NAME` in a folder
/// archive, its name otherwise.
fn file_and_name(reader: &Reader, t: &TensorInfo) -> String {
    match t.file.and_then(|f| reader.files().get(f as usize)) {
        Some(file) => format!("{}:{}", file.path, t.name),
        None => t.name.clone(),
    }
}

/// `hexz diff A B`: per tensor of B against A: identical, changed (with the
/// delta kinds B used and the bytes B stores for it), added, removed,
/// reshaped; and totals.
pub fn diff(path_a: &Path, path_b: &Path, as_json: bool, open: &OpenOptions) -> Result<Exit, CliError> {
    let a = Reader::open(crate::util::location(path_a), open)?;
    let b = Reader::open(crate::util::location(path_b), open)?;
    // A tensor of B pairs with the tensor of A in the file of the same path
    // with the same name (the checkpoint-500/ and checkpoint-1000/ of a
    // training run hold the same names), else with A's only tensor of that
    // name (a model resharded into other files).
    let by_file_and_name: HashMap<String, usize> =
        a.tensors().iter().enumerate().map(|(i, t)| (file_and_name(&a, t), i)).collect();
    let mut paired = vec![false; a.tensors().len()];
    let mut rows = Vec::new();
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut total_stored = 0u64;
    for tb in b.tensors() {
        let blocks = entries_in(&b, tb.offset, tb.length)?;
        let own = || blocks.iter().filter(|e| e.location == 0);
        let stored: u64 = own().map(|e| u64::from(e.stored_length.get())).sum();
        let mut kinds: Vec<&'static str> = own()
            .map(|e| match FilterId::from_u8(e.filter) {
                Some(f) if f.is_delta() => f.name(),
                _ => "whole",
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let name = file_and_name(&b, tb);
        let pair = by_file_and_name.get(&name).copied().or_else(|| a.tensor(&tb.name).map(|(i, _)| i));
        if let Some(i) = pair {
            paired[i] = true;
        }
        let before = pair.map(|i| &a.tensors()[i]);
        let status = match before {
            None => "added",
            Some(ta) if ta.dtype != tb.dtype || ta.shape != tb.shape => "reshaped",
            Some(ta) if same_bytes(&a, ta, &b, tb)? => "identical",
            Some(_) => "changed",
        };
        *totals.entry(status).or_default() += 1;
        total_stored += stored;
        rows.push(DiffRow {
            name,
            status,
            dtype: tb.dtype.clone(),
            shape: tb.shape.clone(),
            base_dtype: before.map(|t| t.dtype.clone()),
            base_shape: before.map(|t| t.shape.clone()),
            bytes: tb.length,
            stored_bytes: stored,
            delta: kinds,
        });
    }
    for (ta, _) in a.tensors().iter().zip(&paired).filter(|(_, &p)| !p) {
        let name = file_and_name(&a, ta);
        *totals.entry("removed").or_default() += 1;
        rows.push(DiffRow {
            name,
            status: "removed",
            dtype: ta.dtype.clone(),
            shape: ta.shape.clone(),
            base_dtype: None,
            base_shape: None,
            bytes: ta.length,
            stored_bytes: 0,
            delta: Vec::new(),
        });
    }
    let b_archive_size = ReadAt::len(b.archive().source());
    let summary = DiffJson {
        a: path_a.display().to_string(),
        b: path_b.display().to_string(),
        b_is_child_of_a: b.archive().parent_identity() == Some(a.archive().identity()),
        totals,
        stored_bytes: total_stored,
        b_archive_size,
        b_original_size: b.size(),
        tensors: rows,
    };
    if as_json {
        return emit_json(&summary);
    }
    let mut o = String::new();
    for r in &summary.tensors {
        let detail = match r.status {
            "changed" => format!("{} stored ({})", human_bytes(r.stored_bytes), r.delta.join("+")),
            "reshaped" => format!(
                "{} {:?} -> {} {:?}",
                r.base_dtype.as_deref().unwrap_or(""),
                r.base_shape.clone().unwrap_or_default(),
                r.dtype,
                r.shape
            ),
            "added" => format!("{} stored", human_bytes(r.stored_bytes)),
            _ => String::new(),
        };
        outln!(o, "{:<10} {:<48} {}", r.status, r.name, detail);
    }
    outln!(
        o,
        "totals: {} — {} stored for B ({} archive, {} original)",
        summary.totals.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
        human_bytes(total_stored),
        human_bytes(b_archive_size),
        human_bytes(b.size())
    );
    emit(&o)
}
