//! `hexz._hexz`: the native half of the Python package. It holds the
//! hexz-io `Reader` and the store/extract/verify entry points; the `hexz`
//! package (python/hexz) builds the numpy/torch API on top.
//!
//! Every call that reads, decodes or writes releases the GIL, so one
//! archive serves many Python threads at once (the Reader is `Sync`).
//! Decoding into an array goes straight into the array's memory: Python
//! passes the address and length of a writable buffer it keeps alive for
//! the call (the buffer protocol is not in the stable ABI before 3.11).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hexz_format::gguf::GgufValue;
use hexz_format::manifest::MetadataValue;
use hexz_format::writer::StoreReport;
use hexz_format::{Category, ErrorCode, ReadAt};
use hexz_io::{Clobber, CountingSource, Location, OpenOptions, Reader, Source, Store};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// A Python exception of the class `hexz.errors` gives the status's
/// category (one table for every binding): the message names the file
/// and the field; `.code` is the C ABI's status name.
fn py_error(err: hexz_io::Error) -> PyErr {
    let code = err.code();
    let category: Category = code.category();
    let message = err.to_string();
    // A file or object that is not there (the OS or the server said so).
    let not_found = err.is_not_found();
    Python::attach(|py| {
        let made = (|| -> PyResult<PyErr> {
            let cls = py.import("hexz.errors")?.getattr("_class_for")?.call1((category.name(), not_found))?;
            let exc = cls.call1((message.clone(),))?;
            exc.setattr("code", format!("{code:?}"))?;
            Ok(PyErr::from_value(exc))
        })();
        made.unwrap_or_else(|_| PyRuntimeError::new_err(message))
    })
}

fn invalid(what: &'static str) -> PyErr {
    py_error(hexz_io::Error::invalid(what))
}

/// A path, or a URL (`s3://`, `http(s)://`) given as a path-like.
fn location(path: &std::path::Path) -> Location {
    match path.to_str() {
        Some(text) => Location::parse(text),
        None => Location::Path(path.to_path_buf()),
    }
}

fn open_options(parent_dirs: Option<Vec<PathBuf>>, verify_hashes: bool, read_slots: usize) -> OpenOptions {
    remote_open_options(parent_dirs, verify_hashes, read_slots, hexz_remote::RemoteOptions::default())
}

fn remote_open_options(
    parent_dirs: Option<Vec<PathBuf>>,
    verify_hashes: bool,
    read_slots: usize,
    mut remote: hexz_remote::RemoteOptions,
) -> OpenOptions {
    remote.block_cache.check_blocks = !verify_hashes;
    OpenOptions {
        search: parent_dirs.unwrap_or_default().iter().map(|p| location(p)).collect(),
        verify_hashes,
        read_slots,
        ..hexz_remote::open_options(remote)
    }
}

/// A trusted key: a public key file's path, or the key itself (the file's
/// text or its base64 line).
fn trusted_key(key: &str) -> PyResult<hexz_format::signature::PublicKey> {
    let path = std::path::Path::new(key);
    let parsed = if !key.contains('\n') && path.is_file() {
        hexz_io::sign::load_public_key(path)
    } else {
        hexz_io::sign::parse_public_key(key, std::path::Path::new("trusted_keys"))
    };
    parsed.map_err(py_error)
}

/// The keychain of `identity` files and a `passphrase` (`None` when neither
/// is given). The passphrase copy is wiped when the keychain is dropped.
fn keychain(
    identity: Option<Vec<PathBuf>>,
    passphrase: Option<Vec<u8>>,
) -> PyResult<Option<Arc<hexz_io::keys::Keychain>>> {
    let mut identities = Vec::new();
    for path in identity.unwrap_or_default() {
        identities.extend(hexz_io::keys::load_identities(&path).map_err(py_error)?);
    }
    let passphrases = match passphrase {
        Some(p) if p.is_empty() => return Err(invalid("passphrase must not be empty")),
        Some(p) => vec![zeroize::Zeroizing::new(p)],
        None => Vec::new(),
    };
    let chain = hexz_io::keys::Keychain::new(identities, passphrases);
    Ok((!chain.is_empty()).then(|| Arc::new(chain)))
}

/// An archive open for reading: the reader and the counter of its reads.
struct Open {
    reader: Reader,
    counting: Arc<CountingSource<Source>>,
}

/// An open `.hxz` archive (native half of `hexz.Archive`).
#[pyclass(module = "hexz._hexz", frozen)]
struct Archive {
    /// `None` once closed. Reads in flight hold their own `Arc`, so closing
    /// while another thread reads is safe; the file closes after them.
    open: Mutex<Option<Arc<Open>>>,
    path: PathBuf,
}

impl Archive {
    fn get(&self) -> PyResult<Arc<Open>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
            // hexz.errors.InvalidInputError, a ValueError as Python's closed files raise.
            py_error(hexz_io::Error::Refused {
                path: self.path.clone(),
                reason: "the archive is closed".into(),
                code: ErrorCode::InvalidArgument,
            })
        })
    }
}

/// Turn a Python buffer's address and length into a slice.
///
/// # Safety
/// The Python caller passes the address of a writable, C-contiguous buffer
/// of at least `length` bytes that it keeps alive (and does not resize) for
/// the whole call; `hexz` takes it from a numpy array, a torch tensor or a
/// ctypes view of a memoryview, never from user input.
unsafe fn buffer<'a>(address: usize, length: usize) -> PyResult<&'a mut [u8]> {
    if length == 0 {
        return Ok(&mut []);
    }
    if address == 0 {
        return Err(invalid("buffer address is NULL"));
    }
    // SAFETY: the caller's promise above.
    Ok(unsafe { std::slice::from_raw_parts_mut(address as *mut u8, length) })
}

/// Reads this large or larger are split among threads.
const PARALLEL_READ: usize = 8 << 20;

fn read_into(reader: &Reader, offset: u64, dst: &mut [u8], threads: usize) -> hexz_io::Result<()> {
    if dst.len() >= PARALLEL_READ && threads != 1 {
        reader.read_into_parallel(offset, dst, threads, &|_| ControlFlow::Continue(()))
    } else {
        reader.read_at(offset, dst)
    }
}

fn gguf_value<'py>(py: Python<'py>, header: &[u8], value: &GgufValue) -> PyResult<Bound<'py, PyAny>> {
    let text = |bytes: &[u8]| -> Bound<'py, PyAny> {
        match std::str::from_utf8(bytes) {
            Ok(s) => s.into_pyobject(py).map(|s| s.into_any()).expect("str conversion is infallible"),
            Err(_) => PyBytes::new(py, bytes).into_any(),
        }
    };
    Ok(match value {
        GgufValue::U8(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::I8(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::U16(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::I16(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::U32(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::I32(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::F32(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::Bool(v) => v.into_pyobject(py)?.to_owned().into_any(),
        GgufValue::U64(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::I64(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::F64(v) => v.into_pyobject(py)?.into_any(),
        GgufValue::String(span) => text(hexz_format::gguf::GgufHeader::span(header, *span)),
        GgufValue::Array(a) if hexz_format::gguf::scalar_size(a.elem_type).is_some() => {
            // Scalar arrays: the raw little-endian bytes; Python views them
            // as a numpy array of the element type.
            PyBytes::new(py, hexz_format::gguf::GgufHeader::span(header, a.data)).into_any()
        }
        GgufValue::Array(a) if a.elem_type == hexz_format::gguf::value_type::STRING => {
            let list = PyList::empty(py);
            for item in a.strings(header) {
                list.append(text(item))?;
            }
            list.into_any()
        }
        GgufValue::Array(a) => {
            let list = PyList::empty(py);
            for item in &a.items {
                list.append(gguf_value(py, header, item)?)?;
            }
            list.into_any()
        }
    })
}

#[pymethods]
impl Archive {
    /// Open the archive at `path` and its parent chain (parents are looked
    /// for beside it, then in `parent_dirs`).
    /// `path` may be a URL: `s3://bucket/key` (credentials and endpoint
    /// from the AWS variables, or `endpoint_url` / `region`), `http(s)://`.
    #[new]
    #[pyo3(signature = (path, parent_dirs=None, verify_hashes=true, read_slots=0, endpoint_url=None, region=None,
                        cache_bytes=None, timeout=None, cache_dir=None, cache_max=None, trusted_keys=None,
                        identity=None, passphrase=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        parent_dirs: Option<Vec<PathBuf>>,
        verify_hashes: bool,
        read_slots: usize,
        endpoint_url: Option<String>,
        region: Option<String>,
        cache_bytes: Option<usize>,
        timeout: Option<f64>,
        cache_dir: Option<PathBuf>,
        cache_max: Option<u64>,
        trusted_keys: Option<Vec<String>>,
        identity: Option<Vec<PathBuf>>,
        passphrase: Option<Vec<u8>>,
    ) -> PyResult<Self> {
        let unlock = keychain(identity, passphrase)?;
        let keys = trusted_keys.unwrap_or_default().iter().map(|k| trusted_key(k)).collect::<PyResult<Vec<_>>>()?;
        let mut remote = hexz_remote::RemoteOptions { endpoint: endpoint_url, region, ..Default::default() };
        if let Some(dir) = cache_dir {
            remote.block_cache.dir = hexz_remote::diskcache::dir_setting(&dir);
        }
        if let Some(max) = cache_max {
            if max == 0 {
                return Err(invalid("cache_max must be a positive number of bytes"));
            }
            remote.block_cache.max_bytes = max;
        }
        if let Some(n) = cache_bytes {
            remote.cache_bytes = n;
        }
        if let Some(t) = timeout {
            if !(t > 0.0 && t.is_finite()) {
                return Err(invalid("timeout must be a positive number of seconds"));
            }
            remote.stall_timeout = std::time::Duration::from_secs_f64(t);
        }
        let mut opts = remote_open_options(parent_dirs, verify_hashes, read_slots, remote);
        opts.trusted_keys = keys;
        opts.keys = unlock;
        let at = location(&path);
        let open = py
            .detach(move || -> hexz_io::Result<Open> {
                let counting = Arc::new(CountingSource::new(opts.resolver.open(&at)?));
                let source: Source = counting.clone();
                let reader = Reader::open_source(at, source, &opts)?;
                Ok(Open { reader, counting })
            })
            .map_err(py_error)?;
        Ok(Archive { open: Mutex::new(Some(Arc::new(open))), path })
    }

    /// Close the archive; reads in flight on other threads finish first.
    fn close(&self) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Length of the archived source file (its virtual byte range).
    #[getter]
    fn size(&self) -> PyResult<u64> {
        Ok(self.get()?.reader.size())
    }

    /// "safetensors", "gguf", "raw" or "folder".
    #[getter]
    fn source_format(&self) -> PyResult<&'static str> {
        Ok(self.get()?.reader.source_format().name())
    }

    /// The archive's identity (hex BLAKE3), which children name as parent.
    #[getter]
    fn identity(&self) -> PyResult<String> {
        Ok(hex(&self.get()?.reader.archive().identity()))
    }

    /// BLAKE3 of the whole source file (hex).
    #[getter]
    fn source_hash(&self) -> PyResult<String> {
        Ok(hex(&self.get()?.reader.archive().source_hash()))
    }

    /// The parent this archive was stored against: (identity, hint, where
    /// it was found), or None.
    #[getter]
    fn parent(&self) -> PyResult<Option<(String, String, String)>> {
        let open = self.get()?;
        Ok(open.reader.parent().map(|p| {
            let found = open.reader.chain().get(1).map(ToString::to_string).unwrap_or_default();
            (hex(&p.identity), p.hint.clone(), found)
        }))
    }

    /// Where each member of the chain is: this archive, its parent, ...
    #[getter]
    fn chain(&self) -> PyResult<Vec<String>> {
        Ok(self.get()?.reader.chain().iter().map(ToString::to_string).collect())
    }

    /// Every tensor in file order: (name, dtype, ggml_type or None, shape,
    /// offset, length, storage, file index or None).
    #[allow(clippy::type_complexity)]
    fn tensors(&self) -> PyResult<Vec<(String, String, Option<u32>, Vec<u64>, u64, u64, &'static str, Option<u32>)>> {
        let open = self.get()?;
        Ok(open
            .reader
            .tensors()
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    t.dtype.clone(),
                    t.ggml_type,
                    t.shape.clone(),
                    t.offset,
                    t.length,
                    t.storage_kind.name(),
                    t.file,
                )
            })
            .collect())
    }

    /// Folder archives: every entry as (path, kind, offset, length, mode,
    /// mtime_ns, source format).
    #[allow(clippy::type_complexity)]
    fn files(&self) -> PyResult<Vec<(String, &'static str, u64, u64, u32, i64, &'static str)>> {
        let open = self.get()?;
        Ok(open
            .reader
            .files()
            .iter()
            .map(|f| (f.path.clone(), f.kind.name(), f.offset, f.length, f.mode, f.mtime_ns, f.source_format.name()))
            .collect())
    }

    /// User metadata as (key, is_json, text).
    fn user_metadata(&self) -> PyResult<Vec<(String, bool, String)>> {
        let open = self.get()?;
        Ok(open
            .reader
            .metadata()
            .iter()
            .map(|(k, v)| match v {
                MetadataValue::String(s) => (k.clone(), false, s.clone()),
                MetadataValue::Json(s) => (k.clone(), true, s.clone()),
            })
            .collect())
    }

    /// The source file's own header bytes (safetensors JSON, GGUF header).
    fn source_header<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let open = self.get()?;
        let header = py.detach(|| open.reader.source_header()).map_err(py_error)?;
        Ok(PyBytes::new(py, &header))
    }

    /// GGUF key/values as (key, type id, element type id or None, value).
    /// Scalar arrays come as raw little-endian bytes.
    #[allow(clippy::type_complexity)]
    fn gguf_kv<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, u32, Option<u32>, Bound<'py, PyAny>)>> {
        let open = self.get()?;
        if open.reader.source_format() != hexz_format::SourceFormat::Gguf {
            return Ok(Vec::new());
        }
        let header = py.detach(|| open.reader.source_header()).map_err(py_error)?;
        let parsed =
            hexz_format::gguf::parse(&header, open.reader.size()).map_err(|e| py_error(open.reader.error(e)))?;
        parsed
            .kvs
            .iter()
            .map(|kv| {
                let elem = match &kv.value {
                    GgufValue::Array(a) => Some(a.elem_type),
                    _ => None,
                };
                Ok((kv.key.clone(), kv.value.type_id(), elem, gguf_value(py, &header, &kv.value)?))
            })
            .collect()
    }

    /// The bytes of the source file's range `[offset, offset + size)`.
    fn read<'py>(&self, py: Python<'py>, offset: u64, size: usize) -> PyResult<Bound<'py, PyBytes>> {
        let open = self.get()?;
        let end = offset.checked_add(size as u64);
        if end.is_none_or(|e| e > open.reader.size()) {
            let size_all = open.reader.size();
            return Err(py_error(open.reader.error(hexz_format::Error::OutOfRange {
                offset,
                length: size as u64,
                size: size_all,
            })));
        }
        PyBytes::new_with(py, size, |buf: &mut [u8]| {
            py.detach(|| read_into(&open.reader, offset, buf, 0)).map_err(py_error)
        })
    }

    /// Decode `[offset, offset + length)` into the buffer at `address`.
    /// Private: `hexz.Archive.readinto` passes a buffer it holds.
    #[pyo3(signature = (address, length, offset, threads=0))]
    fn _read_into_address(
        &self,
        py: Python<'_>,
        address: usize,
        length: usize,
        offset: u64,
        threads: usize,
    ) -> PyResult<()> {
        let open = self.get()?;
        // SAFETY: see `buffer`; the package passes only buffers it holds.
        let dst = unsafe { buffer(address, length) }?;
        py.detach(|| read_into(&open.reader, offset, dst, threads)).map_err(py_error)
    }

    /// Decode several ranges, each `(address, length, offset)`, sharing
    /// the threads among all their blocks (loading a whole checkpoint).
    #[pyo3(signature = (jobs, threads=0))]
    fn _read_many_into_addresses(
        &self,
        py: Python<'_>,
        jobs: Vec<(usize, usize, u64)>,
        threads: usize,
    ) -> PyResult<()> {
        let open = self.get()?;
        let mut ranges = Vec::with_capacity(jobs.len());
        for (address, length, offset) in jobs {
            // SAFETY: see `buffer`; the package passes only buffers it holds,
            // one per job, never overlapping.
            ranges.push((offset, unsafe { buffer(address, length) }?));
        }
        py.detach(|| open.reader.read_many_into_parallel(ranges, threads, &|_| ControlFlow::Continue(())))
            .map_err(py_error)
    }

    /// (reads, bytes) made of the archive file since it was opened.
    fn io_stats(&self) -> PyResult<(u64, u64)> {
        Ok(self.get()?.counting.totals())
    }

    /// Bytes the reader holds (metadata, tables, read scratch).
    fn memory_bytes(&self) -> PyResult<u64> {
        Ok(self.get()?.reader.memory_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A store from the Python keywords, the destination a path or a URL;
/// every option is checked by hexz_io::options when it runs. `base` comes
/// with the keys that open it when it is encrypted.
#[allow(clippy::too_many_arguments)]
fn store_builder<'a>(
    store: Store<'a>,
    dst: &std::path::Path,
    compression: &str,
    level: Option<i32>,
    metadata: Vec<(String, bool, String)>,
    (base, base_keys): (Option<PathBuf>, Option<Arc<hexz_io::keys::Keychain>>),
    parent_dirs: Option<Vec<PathBuf>>,
    force: bool,
    threads: usize,
) -> PyResult<Store<'a>> {
    let kind = compression.parse::<hexz_io::options::CompressionKind>().map_err(py_error)?;
    Ok(store
        .to(location(dst))
        .compression(kind)
        .level(level)
        .metadata(
            metadata
                .into_iter()
                .map(|(k, json, v)| (k, if json { MetadataValue::Json(v) } else { MetadataValue::String(v) }))
                .collect(),
        )
        .threads(threads)
        .base(base.map(Location::Path))
        .open_options(OpenOptions { keys: base_keys, ..open_options(parent_dirs, true, 0) })
        .clobber(if force { Clobber::Replace } else { Clobber::Refuse })
        .sinks(hexz_remote::store_sinks(hexz_remote::RemoteOptions::default())))
}

fn report_dict<'py>(py: Python<'py>, r: &StoreReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("source_format", r.source_format.name())?;
    d.set_item("source_size", r.source_size)?;
    d.set_item("archive_size", r.archive_size)?;
    d.set_item("blocks", r.blocks)?;
    d.set_item("stored_blocks", r.stored_blocks)?;
    d.set_item("deduplicated_blocks", r.deduplicated_blocks)?;
    d.set_item("deduplicated_bytes", r.deduplicated_bytes)?;
    d.set_item("parent_blocks", r.parent_blocks)?;
    d.set_item("parent_bytes", r.parent_bytes)?;
    d.set_item("delta_blocks", r.delta_blocks)?;
    d.set_item("tensors", r.tensors)?;
    d.set_item("source_hash", hex(&r.source_hash))?;
    d.set_item("warnings", r.warnings.clone())?;
    Ok(d)
}

/// Store the file or folder `src` as the archive `dst`.
#[pyfunction]
#[pyo3(signature = (src, dst, base=None, compression="zstd", level=None, metadata=Vec::new(), parent_dirs=None,
                    force=false, threads=0, block_size=None, raw=false, chunking="cdc", passphrase=None,
                    recipients=None, base_identity=None, base_passphrase=None))]
#[allow(clippy::too_many_arguments)]
fn store<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    base: Option<PathBuf>,
    compression: &str,
    level: Option<i32>,
    metadata: Vec<(String, bool, String)>,
    parent_dirs: Option<Vec<PathBuf>>,
    force: bool,
    threads: usize,
    block_size: Option<u32>,
    raw: bool,
    chunking: &str,
    passphrase: Option<Vec<u8>>,
    recipients: Option<Vec<String>>,
    base_identity: Option<Vec<PathBuf>>,
    base_passphrase: Option<Vec<u8>>,
) -> PyResult<Bound<'py, PyDict>> {
    // The keys that open an encrypted base (and its parents): the child is
    // then stored under the base's key (hexz_io's StoreBuilder::encryption).
    let base_keys = keychain(base_identity, base_passphrase)?;
    let mut to = hexz_io::keys::EncryptTo::default();
    if let Some(p) = passphrase {
        if p.is_empty() {
            return Err(invalid("passphrase must not be empty"));
        }
        to.passphrases.push(zeroize::Zeroizing::new(p));
    }
    for r in recipients.unwrap_or_default() {
        to.recipients.push(hexz_io::keys::parse_recipient(&r).map_err(py_error)?);
    }
    let encryption = if to.is_empty() { None } else { Some(to.encryption().map_err(py_error)?) };
    let store = store_builder(
        Store::from_path(&src),
        &dst,
        compression,
        level,
        metadata,
        (base, base_keys),
        parent_dirs,
        force,
        threads,
    )?
    .encryption(encryption)
    .block_size(block_size.unwrap_or(hexz_io::options::DEFAULT_BLOCK_SIZE))
    .raw(raw)
    .chunking(hexz_io::options::chunking(chunking).map_err(py_error)?);
    let report = py.detach(|| store.run()).map_err(py_error)?;
    report_dict(py, &report)
}

/// A source made of a header and arrays laid end to end, read in place.
struct Segments {
    header: Vec<u8>,
    /// (start in the source, address, length) of each array.
    parts: Vec<(u64, usize, usize)>,
    len: u64,
}

// SAFETY: the addresses point into arrays the Python caller keeps alive and
// unchanged for the whole store; they are only read.
unsafe impl Send for Segments {}
// SAFETY: as above; reads through shared references only.
unsafe impl Sync for Segments {}

impl ReadAt for Segments {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        let end = hexz_format::source::checked_end("arrays", offset, buf.len(), self.len)?;
        let mut pos = offset;
        let mut out = &mut buf[..];
        let header_len = self.header.len() as u64;
        if pos < header_len {
            let n = (header_len.min(end) - pos) as usize;
            out[..n].copy_from_slice(&self.header[pos as usize..pos as usize + n]);
            out = &mut out[n..];
            pos += n as u64;
        }
        let mut k = self.parts.partition_point(|p| p.0 + p.2 as u64 <= pos);
        while !out.is_empty() {
            let (start, address, length) = self.parts[k];
            let within = (pos - start) as usize;
            let n = (length - within).min(out.len());
            // SAFETY: `address..address + length` is a live array (see the
            // Send/Sync impls); `within + n <= length`.
            let src = unsafe { std::slice::from_raw_parts((address as *const u8).add(within), n) };
            out[..n].copy_from_slice(src);
            out = &mut out[n..];
            pos += n as u64;
            k += 1;
        }
        Ok(())
    }
}

/// Store a safetensors file given as its header and its arrays (address,
/// length), laid end to end, without writing it anywhere first. Private:
/// `hexz.checkpoint.save` builds the header and holds the arrays.
#[pyfunction]
#[pyo3(signature = (header, arrays, dst, base=None, compression="zstd", level=None, metadata=Vec::new(),
                    parent_dirs=None, force=false, threads=0))]
#[allow(clippy::too_many_arguments)]
fn _store_arrays<'py>(
    py: Python<'py>,
    header: Vec<u8>,
    arrays: Vec<(usize, usize)>,
    dst: PathBuf,
    base: Option<PathBuf>,
    compression: &str,
    level: Option<i32>,
    metadata: Vec<(String, bool, String)>,
    parent_dirs: Option<Vec<PathBuf>>,
    force: bool,
    threads: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let mut parts = Vec::with_capacity(arrays.len());
    let mut len = header.len() as u64;
    for (address, length) in arrays {
        if length == 0 {
            continue;
        }
        if address == 0 {
            return Err(invalid("array address is NULL"));
        }
        parts.push((len, address, length));
        len += length as u64;
    }
    let segments = Segments { header, parts, len };
    let name = Location::Label("the arrays given to checkpoint.save".into());
    let store = store_builder(
        Store::from_reader(&segments, name),
        &dst,
        compression,
        level,
        metadata,
        (base, None),
        parent_dirs,
        force,
        threads,
    )?;
    let report = py.detach(|| store.run()).map_err(py_error)?;
    report_dict(py, &report)
}

/// Extract the whole archive to `dst` (the file, or the folder).
#[pyfunction]
#[pyo3(signature = (archive, dst, force=false, threads=0, parent_dirs=None))]
fn extract(
    py: Python<'_>,
    archive: PathBuf,
    dst: PathBuf,
    force: bool,
    threads: usize,
    parent_dirs: Option<Vec<PathBuf>>,
) -> PyResult<()> {
    let opts = open_options(parent_dirs, true, 0);
    py.detach(|| {
        let reader = Reader::open(location(&archive), &opts)?;
        hexz_io::extract_to(&reader, &dst, force, threads, &|_| ControlFlow::Continue(()))
    })
    .map_err(py_error)
}

/// Verify the archive and its chain: (problems as (where, message),
/// blocks checked, blocks decoded, tensors checked). Raises when the file
/// cannot be opened at all.
#[pyfunction]
#[pyo3(signature = (archive, deep=false, threads=0, parent_dirs=None))]
#[allow(clippy::type_complexity)]
fn verify(
    py: Python<'_>,
    archive: PathBuf,
    deep: bool,
    threads: usize,
    parent_dirs: Option<Vec<PathBuf>>,
) -> PyResult<(Vec<(String, String)>, u64, u64, u64)> {
    let opts = open_options(parent_dirs, true, 0);
    let report = py
        .detach(|| -> hexz_io::Result<_> {
            // Unreadable (missing, a directory, no permission): an exception, not a report.
            let at = location(&archive);
            drop(opts.resolver.open(&at)?);
            let depth = if deep { hexz_io::Depth::Deep } else { hexz_io::Depth::Quick };
            Ok(hexz_io::verify_location(&at, &opts, depth, threads, &|_, _| {}))
        })
        .map_err(py_error)?;
    let problems = report.problems.iter().map(|p| (p.location.clone(), p.message.clone())).collect();
    Ok((problems, report.blocks_checked, report.blocks_decoded, report.tensors_checked))
}

/// The category name ("CORRUPT", ...) of the status named `name`
/// ("HASH_MISMATCH", ...), as hexz_status_category gives it in C.
#[pyfunction]
fn status_category(name: &str) -> PyResult<&'static str> {
    ErrorCode::ALL
        .iter()
        .find(|c| c.name() == name)
        .map(|c| c.category().name())
        .ok_or_else(|| invalid("no status of that name"))
}

#[pymodule]
fn _hexz(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Archive>()?;
    m.add_function(wrap_pyfunction!(store, m)?)?;
    m.add_function(wrap_pyfunction!(_store_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(extract, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(status_category, m)?)?;
    let statuses: Vec<(&str, u32)> = ErrorCode::ALL.iter().map(|c| (c.name(), *c as u32)).collect();
    m.add("STATUSES", statuses)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FORMAT_VERSION", format!("1.{}", hexz_format::layout::features::KNOWN_MINOR))?;
    let ggml: Vec<(u32, &str, u32, u32)> =
        hexz_format::dtype::GGML_TYPES.iter().map(|t| (t.id, t.name, t.block_elements, t.block_bytes)).collect();
    m.add("GGML_TYPES", ggml)?;
    Ok(())
}
