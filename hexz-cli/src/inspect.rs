//! `hexz inspect` and `hexz ls`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hexz_format::codec::{codec_name, filter_name};
use hexz_format::gguf::{self, GgufHeader, GgufValue};
use hexz_format::layout::{filter_id, source_format, storage_kind, BlockEntry};
use hexz_format::manifest::{Manifest, MetadataValue};
use hexz_format::{Archive, FileSource};
use serde_json::{json, Value};

use crate::outln;
use crate::util::{emit, hex, human_bytes, open_archive, CliError, Exit};

pub fn source_format_name(f: u8) -> &'static str {
    match f {
        source_format::SAFETENSORS => "safetensors",
        source_format::GGUF => "gguf",
        _ => "raw",
    }
}

pub fn storage_kind_name(k: u8) -> &'static str {
    match k {
        storage_kind::STORED => "stored",
        storage_kind::DEDUPLICATED => "deduplicated",
        storage_kind::PARENT => "parent",
        storage_kind::DELTA => "delta",
        storage_kind::EMPTY => "empty",
        _ => "unknown",
    }
}

/// Everything `inspect --json` prints (the stable schema documented in README).
fn summary(path: &Path, archive: &Archive<FileSource>, manifest: &Manifest) -> Result<Value, CliError> {
    let mut codecs: BTreeMap<&str, u64> = BTreeMap::new();
    let mut filters: BTreeMap<&str, u64> = BTreeMap::new();
    let mut stored = std::collections::HashSet::new();
    let mut dedup_blocks = 0u64;
    let mut dedup_bytes = 0u64;
    let mut stored_bytes = 0u64;
    let mut parent_blocks = 0u64;
    let mut delta_blocks = 0u64;
    for i in 0..archive.footer().page_count.get() {
        let page = archive.page(i).map_err(|e| CliError::format(path, e))?;
        for slot in 0..page.entry_count {
            let e = archive.entry(&page, slot).map_err(|e| CliError::format(path, e))?;
            *codecs.entry(codec_name(e.codec)).or_default() += 1;
            *filters.entry(filter_name(e.filter)).or_default() += 1;
            if e.location > 0 {
                parent_blocks += 1;
                continue;
            }
            if hexz_format::layout::filter_id::is_delta(e.filter) {
                delta_blocks += 1;
            }
            if stored.insert(e.stored_offset.get()) {
                stored_bytes += u64::from(e.stored_length.get());
            } else {
                dedup_blocks += 1;
                dedup_bytes += u64::from(e.virtual_length.get());
            }
        }
    }
    let original = archive.virtual_size();
    let archive_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let header = archive.header();
    let tensors: Vec<Value> = manifest
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype,
                "ggml_type": t.ggml_type,
                "shape": t.shape,
                "offset": t.offset,
                "length": t.length,
                "storage": storage_kind_name(t.storage_kind),
            })
        })
        .collect();
    let metadata: serde_json::Map<String, Value> = manifest
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
    Ok(json!({
        "archive": path.display().to_string(),
        "format_version": format!("{}.{}", header.version_major.get(), header.version_minor.get()),
        "identity": hex(&archive.identity()),
        "source_format": source_format_name(manifest.source_format),
        "source_blake3": hex(&archive.source_hash()),
        "source_header_length": manifest.source_header_length,
        "original_size": original,
        "archive_size": archive_size,
        "stored_block_bytes": stored_bytes,
        "ratio": archive_size as f64 / original.max(1) as f64,
        "block_count": archive.block_count(),
        "max_block_length": archive.footer().max_block_length.get(),
        "deduplicated_blocks": dedup_blocks,
        "deduplicated_bytes": dedup_bytes,
        "codecs": codecs,
        "filters": filters,
        "parent": manifest.parent.as_ref().map(|p| json!({"identity": hex(&p.identity), "hint": p.hint})),
        "chain": Vec::<Value>::new(),
        "parent_blocks": parent_blocks,
        "delta_blocks": delta_blocks,
        "metadata": metadata,
        "tensor_count": manifest.tensors.len(),
        "tensors": tensors,
    }))
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

fn gguf_json(path: &Path, archive: &Archive<FileSource>) -> Result<Value, CliError> {
    let (bytes, header) = archive.gguf_header().map_err(|e| CliError::format(path, e))?;
    let kv: Vec<Value> = header
        .kvs
        .iter()
        .map(|kv| {
            let elem = match &kv.value {
                GgufValue::Array(a) => Some(gguf::value_type_name(a.elem_type)),
                _ => None,
            };
            json!({
                "key": kv.key,
                "type": gguf::value_type_name(kv.value.type_id()),
                "element_type": elem,
                "value": gguf_value_json(&bytes, &kv.value),
            })
        })
        .collect();
    Ok(json!({"version": header.version, "alignment": header.alignment, "data_offset": header.data_offset, "kv": kv}))
}

pub fn inspect(path: &Path, as_json: bool, kv: bool, search: &[PathBuf]) -> Result<Exit, CliError> {
    let mut o = String::new();
    let chain = open_archive(path, search)?;
    let archive = &chain.archive;
    let manifest = archive.manifest().map_err(|e| CliError::format(path, e))?;
    let mut s = summary(path, archive, &manifest)?;
    s["chain"] = Value::Array(
        chain
            .paths
            .iter()
            .enumerate()
            .filter_map(|(d, p)| {
                archive.member(d).map(|m| json!({"path": p.display().to_string(), "identity": hex(&m.identity())}))
            })
            .collect(),
    );
    if kv && manifest.source_format == source_format::GGUF {
        s["gguf"] = gguf_json(path, archive)?;
    }
    if as_json {
        outln!(o, "{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        return emit(&o);
    }
    let num = |k: &str| s[k].as_u64().unwrap_or(0);
    outln!(o, "archive         {}", path.display());
    outln!(o, "format version  {}", s["format_version"].as_str().unwrap_or(""));
    outln!(o, "identity        {}", s["identity"].as_str().unwrap_or(""));
    outln!(o, "source format   {}", s["source_format"].as_str().unwrap_or(""));
    outln!(o, "original size   {} ({} bytes)", human_bytes(num("original_size")), num("original_size"));
    outln!(o, "archive size    {} ({} bytes)", human_bytes(num("archive_size")), num("archive_size"));
    outln!(o, "ratio           {:.4}", s["ratio"].as_f64().unwrap_or(0.0));
    outln!(o, "blocks          {}", num("block_count"));
    outln!(o, "dedup savings   {} blocks, {}", num("deduplicated_blocks"), human_bytes(num("deduplicated_bytes")));
    outln!(o, "codecs          {}", mix(&s["codecs"]));
    outln!(o, "filters         {}", mix(&s["filters"]));
    match &manifest.parent {
        Some(p) => outln!(o, "parent          {} ({})", p.hint, hex(&p.identity)),
        None => outln!(o, "parent          none"),
    }
    for (d, p) in chain.paths.iter().enumerate().skip(1) {
        outln!(o, "chain           {}{}", "  ".repeat(d - 1), p.display());
    }
    for (k, v) in s["metadata"].as_object().into_iter().flatten() {
        outln!(o, "metadata        {k} = {v}");
    }
    if !manifest.tensors.is_empty() {
        outln!(o, "\n{:<48} {:<8} {:<22} {:>12}  storage", "tensor", "dtype", "shape", "bytes");
        for t in &manifest.tensors {
            outln!(
                o,
                "{:<48} {:<8} {:<22} {:>12}  {}",
                t.name,
                t.dtype,
                format!("{:?}", t.shape),
                t.length,
                storage_kind_name(t.storage_kind)
            );
        }
    }
    if let Some(g) = s.get("gguf") {
        outln!(o, "\nGGUF v{} key/values:", g["version"]);
        for kv in g["kv"].as_array().into_iter().flatten() {
            let value = kv["value"].to_string();
            let shown = if value.len() > 96 {
                format!("{}… ({} chars)", &value[..value.floor_char_boundary(96)], value.len())
            } else {
                value
            };
            outln!(o, "  {:<44} {:<8} {}", kv["key"].as_str().unwrap_or(""), kv["type"].as_str().unwrap_or(""), shown);
        }
    }
    emit(&o)
}

fn mix(v: &Value) -> String {
    v.as_object().map(|o| o.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

struct Listed {
    path: PathBuf,
    size: u64,
    original: u64,
    identity: [u8; 32],
    parent: Option<[u8; 32]>,
}

pub fn ls(dir: &Path, as_json: bool) -> Result<Exit, CliError> {
    let mut o = String::new();
    let entries = std::fs::read_dir(dir).map_err(|e| CliError::io(dir, &e))?;
    let mut found = Vec::new();
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    for path in paths {
        // Archives are recognised by content; other files are skipped quietly.
        let Ok(archive) = FileSource::open(&path).and_then(Archive::open) else {
            continue;
        };
        let Ok(manifest) = archive.manifest() else {
            continue;
        };
        found.push(Listed {
            size: hexz_format::ReadAt::len(archive.source()),
            original: archive.virtual_size(),
            identity: archive.identity(),
            parent: manifest.parent.map(|p| p.identity),
            path,
        });
    }
    let by_id: BTreeMap<[u8; 32], usize> = found.iter().enumerate().map(|(i, l)| (l.identity, i)).collect();
    let roots: Vec<usize> =
        (0..found.len()).filter(|&i| found[i].parent.is_none_or(|p| !by_id.contains_key(&p))).collect();
    let children =
        |i: usize| -> Vec<usize> { (0..found.len()).filter(|&j| found[j].parent == Some(found[i].identity)).collect() };
    if as_json {
        fn node(found: &[Listed], i: usize, children: &dyn Fn(usize) -> Vec<usize>, depth: u32) -> Value {
            let kids: Vec<Value> = if depth > 64 {
                Vec::new()
            } else {
                children(i).into_iter().map(|c| node(found, c, children, depth + 1)).collect()
            };
            let l = &found[i];
            json!({"path": l.path.display().to_string(), "archive_size": l.size, "original_size": l.original,
                   "identity": hex(&l.identity), "parent": l.parent.map(|p| hex(&p)), "children": kids})
        }
        let tree: Vec<Value> = roots.iter().map(|&r| node(&found, r, &children, 0)).collect();
        outln!(o, "{}", serde_json::to_string_pretty(&tree).unwrap_or_default());
        return emit(&o);
    }
    fn print(
        o: &mut String,
        found: &[Listed],
        i: usize,
        children: &dyn Fn(usize) -> Vec<usize>,
        prefix: &str,
        last: bool,
        depth: u32,
    ) {
        let l = &found[i];
        let name = l.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let branch = if depth == 0 {
            ""
        } else if last {
            "└── "
        } else {
            "├── "
        };
        let missing = if l.parent.is_some() && depth == 0 { "  (parent not in this folder)" } else { "" };
        outln!(o, "{prefix}{branch}{name}  {} of {}{missing}", human_bytes(l.size), human_bytes(l.original));
        let kids = children(i);
        let next = if depth == 0 { String::new() } else { format!("{prefix}{}", if last { "    " } else { "│   " }) };
        if depth < 64 {
            for (k, &c) in kids.iter().enumerate() {
                print(o, found, c, children, &next, k + 1 == kids.len(), depth + 1);
            }
        }
    }
    if found.is_empty() {
        eprintln!("no archives in {}", dir.display());
    }
    for &r in &roots {
        print(&mut o, &found, r, &children, "", true, 0);
    }
    emit(&o)
}

/// Block entries covering [offset, offset + length) of an archive's virtual space.
fn entries_in(archive: &Archive<FileSource>, offset: u64, length: u64) -> hexz_format::Result<Vec<BlockEntry>> {
    let mut out = Vec::new();
    if length == 0 {
        return Ok(out);
    }
    let (mut page, mut slot, mut entry) = archive.locate(offset)?;
    loop {
        let end = entry.virtual_offset.get() + u64::from(entry.virtual_length.get());
        out.push(entry);
        if end >= offset + length {
            return Ok(out);
        }
        (page, slot, entry) = archive.next_block(&page, slot)?;
    }
}

/// Whether two tensors hold the same bytes: equal block hash sequences when
/// both were cut alike, else a streamed byte comparison.
fn same_bytes(
    a: &Archive<FileSource>,
    ta: &hexz_format::manifest::TensorInfo,
    b: &Archive<FileSource>,
    tb: &hexz_format::manifest::TensorInfo,
) -> hexz_format::Result<bool> {
    if ta.length != tb.length {
        return Ok(false);
    }
    let ha: Vec<_> = entries_in(a, ta.offset, ta.length)?.iter().map(|e| (e.virtual_length.get(), e.hash)).collect();
    let hb: Vec<_> = entries_in(b, tb.offset, tb.length)?.iter().map(|e| (e.virtual_length.get(), e.hash)).collect();
    if ha == hb {
        return Ok(true);
    }
    let aligned = ha.iter().map(|x| x.0).eq(hb.iter().map(|x| x.0));
    if aligned {
        return Ok(false);
    }
    let (mut sa, mut sb) = (a.new_scratch(), b.new_scratch());
    let step = 4u64 << 20;
    let (mut xa, mut xb) = (vec![0u8; step as usize], vec![0u8; step as usize]);
    let mut done = 0u64;
    while done < ta.length {
        let n = (ta.length - done).min(step) as usize;
        a.read_at(ta.offset + done, &mut xa[..n], &mut sa)?;
        b.read_at(tb.offset + done, &mut xb[..n], &mut sb)?;
        if xa[..n] != xb[..n] {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}

/// `hexz diff A B`: per tensor of B against A: identical, changed (with the
/// delta kinds B used and the bytes B stores for it), added, removed,
/// reshaped; and totals.
pub fn diff(path_a: &Path, path_b: &Path, as_json: bool, search: &[PathBuf]) -> Result<Exit, CliError> {
    let chain_a = open_archive(path_a, search)?;
    let chain_b = open_archive(path_b, search)?;
    let (a, b) = (&chain_a.archive, &chain_b.archive);
    let ma = a.manifest().map_err(|e| CliError::format(path_a, e))?;
    let mb = b.manifest().map_err(|e| CliError::format(path_b, e))?;
    let by_name: BTreeMap<&str, &hexz_format::manifest::TensorInfo> =
        ma.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut rows = Vec::new();
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total_stored = 0u64;
    for tb in &mb.tensors {
        let blocks = entries_in(b, tb.offset, tb.length).map_err(|e| CliError::format(path_b, e))?;
        let stored: u64 = blocks.iter().filter(|e| e.location == 0).map(|e| u64::from(e.stored_length.get())).sum();
        let mut kinds: Vec<&str> = blocks
            .iter()
            .filter(|e| e.location == 0)
            .map(|e| match e.filter {
                filter_id::DELTA_XOR => "xor",
                filter_id::DELTA_SUB => "sub",
                filter_id::DELTA_SUB_BITS => "sub-bits",
                _ => "whole",
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        let status = match by_name.get(tb.name.as_str()) {
            None => "added",
            Some(ta) if ta.dtype != tb.dtype || ta.shape != tb.shape => "reshaped",
            Some(ta) => {
                if same_bytes(a, ta, b, tb).map_err(|e| CliError::format(path_b, e))? {
                    "identical"
                } else {
                    "changed"
                }
            }
        };
        *totals.entry(status).or_default() += 1;
        total_stored += stored;
        let before = by_name.get(tb.name.as_str());
        rows.push(json!({
            "name": tb.name,
            "status": status,
            "dtype": tb.dtype,
            "shape": tb.shape,
            "base_dtype": before.map(|t| t.dtype.clone()),
            "base_shape": before.map(|t| t.shape.clone()),
            "bytes": tb.length,
            "stored_bytes": stored,
            "delta": kinds,
        }));
    }
    let names_b: std::collections::BTreeSet<&str> = mb.tensors.iter().map(|t| t.name.as_str()).collect();
    for ta in &ma.tensors {
        if !names_b.contains(ta.name.as_str()) {
            *totals.entry("removed").or_default() += 1;
            rows.push(json!({"name": ta.name, "status": "removed", "dtype": ta.dtype, "shape": ta.shape,
                             "bytes": ta.length, "stored_bytes": 0, "delta": []}));
        }
    }
    let archive_b = std::fs::metadata(path_b).map(|m| m.len()).unwrap_or(0);
    let summary = json!({
        "a": path_a.display().to_string(),
        "b": path_b.display().to_string(),
        "b_is_child_of_a": b.parent_identity() == Some(a.identity()),
        "totals": totals,
        "stored_bytes": total_stored,
        "b_archive_size": archive_b,
        "b_original_size": b.virtual_size(),
        "tensors": rows,
    });
    let mut o = String::new();
    if as_json {
        outln!(o, "{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
        return emit(&o);
    }
    for r in summary["tensors"].as_array().into_iter().flatten() {
        let status = r["status"].as_str().unwrap_or("");
        let detail = match status {
            "changed" => format!(
                "{} stored ({})",
                human_bytes(r["stored_bytes"].as_u64().unwrap_or(0)),
                r["delta"]
                    .as_array()
                    .map(|k| k.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join("+"))
                    .unwrap_or_default()
            ),
            "reshaped" => format!(
                "{} {} -> {} {}",
                r["base_dtype"].as_str().unwrap_or(""),
                r["base_shape"],
                r["dtype"].as_str().unwrap_or(""),
                r["shape"]
            ),
            "added" => format!("{} stored", human_bytes(r["stored_bytes"].as_u64().unwrap_or(0))),
            _ => String::new(),
        };
        outln!(o, "{:<10} {:<48} {}", status, r["name"].as_str().unwrap_or(""), detail);
    }
    outln!(
        o,
        "totals: {} — {} stored for B ({} archive, {} original)",
        totals.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
        human_bytes(total_stored),
        human_bytes(archive_b),
        human_bytes(b.virtual_size())
    );
    emit(&o)
}
