//! Archives in object storage and behind HTTP: [`RemoteSource`] (a
//! `ReadAt` over ranged GETs, with a bounded cache, one retry layer and a
//! check that the object did not change), [`RemoteResolver`] (URLs and
//! paths for the chain), [`RemoteSinkResolver`] (stores to URLs through
//! [`hexz_io::Store`], a multipart upload completed only when the archive
//! is whole) and [`list`] (archives under a URL
//! prefix).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hexz_format::layout::{DirectoryEntry, Footer, BLOCK_ENTRY_SIZE, DIRECTORY_ENTRY_SIZE, FOOTER_SIZE};
use hexz_format::{Archive, ErrorCode, OpenLimits, ReadAt};
use hexz_io::{
    Error, LocalResolver, LocalSinkResolver, Location, OpenOptions, Resolver, Result, SharedCache, Sink, SinkOptions,
    SinkResolver, Source,
};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, ObjectStoreScheme,
    PutPayload, RetryConfig,
};

pub mod diskcache;
pub mod retry;

use diskcache::{block_key, CacheSetting, DiskCache};
use retry::{FetchError, RangeRead, RetryRules, StatusConnector};

/// Bytes fetched from the end of an object at open: footer, directory and
/// manifest, with slack (the core's tail read is 256 KiB).
pub const OPEN_SUFFIX: u64 = 256 << 10;
/// Bytes fetched from the start at open: the header.
pub const OPEN_PREFIX: u64 = hexz_format::layout::HEADER_SIZE as u64;
/// Part size of multipart uploads (S3's minimum is 5 MiB but for the last).
pub const PART_SIZE: usize = 8 << 20;

/// How remote archives are reached.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// S3 endpoint (a local S3 server, say); default `AWS_ENDPOINT_URL` or AWS.
    pub endpoint: Option<String>,
    /// S3 region; default `AWS_REGION` or us-east-1.
    pub region: Option<String>,
    /// Bytes of fetched ranges kept for repeated reads.
    pub cache_bytes: usize,
    /// Longest wait without progress: for a response to start (connecting
    /// included) and for each next piece of its body. A transfer that keeps
    /// moving is never cut off, however slow.
    pub stall_timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Requests after the first for one range (see [`retry`]).
    pub retries: usize,
    /// Longest `Retry-After` a read waits for.
    pub max_retry_after: Duration,
    /// The persistent block cache (see [`diskcache`]); default from
    /// `HEXZ_CACHE_DIR` and `HEXZ_CACHE_MAX_BYTES`, else on, in the
    /// platform cache folder, capped at 10 GiB.
    pub block_cache: CacheSetting,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            endpoint: None,
            region: None,
            cache_bytes: 64 << 20,
            stall_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            retries: 4,
            max_retry_after: Duration::from_secs(30),
            block_cache: CacheSetting::from_env(),
        }
    }
}

impl RemoteOptions {
    /// The retry rules of reads.
    pub fn retry_rules(&self) -> RetryRules {
        RetryRules { retries: self.retries, stall_timeout: self.stall_timeout, max_retry_after: self.max_retry_after }
    }
}

/// The runtime every remote request runs on (the readers are synchronous).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        // rustls needs its crypto chosen once per process (ring: no cmake).
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hexz-remote")
            .enable_all()
            .build()
            .expect("the remote I/O runtime starts")
    })
}

fn io_error(url: &str, offset: u64, what: impl std::fmt::Display) -> hexz_format::Error {
    hexz_format::Error::from_io(offset, std::io::Error::other(format!("{url}: {what}")))
}

fn refused(url: &str, reason: impl Into<String>, code: ErrorCode) -> Error {
    Error::refused(url, reason, code)
}

/// An object store error of a request about `url` (an upload, a listing):
/// a missing bucket as such (not found), and S3's XML read into its code and
/// message, never shown.
fn store_error(url: &str, e: impl std::fmt::Display) -> Error {
    let text = e.to_string();
    match retry::s3_error(&text) {
        Some(s) if s.code == "NoSuchBucket" => {
            let bucket = s.bucket.map(|b| format!(" '{b}'")).unwrap_or_default();
            refused(url, format!("no such bucket{bucket}"), ErrorCode::NotFound)
        }
        _ => Error::At { location: Location::Url(url.into()), source: io_error(url, 0, retry::without_s3_xml(&text)) },
    }
}

/// Whether the store behind `url` refuses suffix ranges (Azure Blob).
fn no_suffix_ranges(url: &str) -> bool {
    ["az://", "abfs://", "abfss://", "azure://"].iter().any(|s| url.starts_with(s))
}

/// What the store is for: reads retry in [`retry`] (object_store's own
/// retries off, so there is one layer); uploads and listings keep
/// object_store's retries, their only layer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Read,
    WriteOrList,
}

/// The object store and object path of `url`, parsed by object_store:
/// `s3://bucket/key` (the key percent-decoded, as S3 keys are), or an
/// `http(s)://` URL, requested exactly as given (its path and query
/// untouched, so presigned URLs and `%20` in names reach the server as
/// they were written).
pub fn store_for(url: &str, opts: &RemoteOptions) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    build_store(url, opts, Purpose::Read)
}

fn build_store(url: &str, opts: &RemoteOptions, purpose: Purpose) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    runtime();
    let bad = |e: &dyn std::fmt::Display| refused(url, e.to_string(), ErrorCode::InvalidArgument);
    let unsupported = || {
        refused(
            url,
            "not a URL hexz can read (s3://, gs://, az://, abfs://, http://, https://)",
            ErrorCode::Unsupported,
        )
    };
    let parsed = url::Url::parse(url).map_err(|_| unsupported())?;
    let retry = match purpose {
        Purpose::Read => RetryConfig { max_retries: 0, ..RetryConfig::default() },
        Purpose::WriteOrList => RetryConfig {
            backoff: BackoffConfig { init_backoff: retry::BACKOFF_START, max_backoff: retry::BACKOFF_MAX, base: 2.0 },
            max_retries: opts.retries,
            retry_timeout: Duration::from_secs(120),
        },
    };
    // No whole-request timeout (reads have the stall timeout; a large
    // part upload takes as long as it takes).
    let client = ClientOptions::new().with_timeout_disabled().with_connect_timeout(opts.connect_timeout);
    match parsed.scheme() {
        "s3" => {
            let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(&e))?;
            if scheme != ObjectStoreScheme::AmazonS3 || parsed.host_str().is_none_or(str::is_empty) {
                return Err(refused(url, "no bucket in the URL", ErrorCode::InvalidArgument));
            }
            let mut b = AmazonS3Builder::from_env().with_url(url).with_retry(retry);
            if let Some(region) = &opts.region {
                b = b.with_region(region);
            }
            let endpoint = opts.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(e) = &endpoint {
                b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
            }
            if purpose == Purpose::Read {
                b = b.with_http_connector(StatusConnector);
            }
            let client = client.with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
            let store = b.with_client_options(client).build().map_err(|e| bad(&e))?;
            Ok((Arc::new(store), path))
        }
        "az" | "abfs" | "abfss" | "azure" => {
            let (scheme, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(&e))?;
            if scheme != ObjectStoreScheme::MicrosoftAzure || parsed.host_str().is_none_or(str::is_empty) {
                return Err(refused(url, "no container in the URL", ErrorCode::InvalidArgument));
            }
            // Credentials, account and the emulator (Azurite:
            // AZURE_STORAGE_USE_EMULATOR, AZURITE_BLOB_STORAGE_URL) from the
            // standard AZURE_* variables.
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url).with_retry(retry);
            if purpose == Purpose::Read {
                b = b.with_http_connector(StatusConnector);
            }
            let store = b.with_client_options(client).build().map_err(|e| bad(&e))?;
            Ok((Arc::new(store), path))
        }
        "gs" => {
            let (_, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(&e))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(refused(url, "no bucket in the URL", ErrorCode::InvalidArgument));
            }
            // Credentials from GOOGLE_SERVICE_ACCOUNT(_KEY) or application
            // default credentials; an emulator through GOOGLE_BASE_URL
            // (plain http:// allowed) with GOOGLE_SKIP_SIGNATURE=true.
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url).with_retry(retry);
            if purpose == Purpose::Read {
                b = b.with_http_connector(StatusConnector);
            }
            let base = std::env::var("GOOGLE_BASE_URL").unwrap_or_default();
            let client = client.with_allow_http(base.starts_with("http://"));
            let store = b.with_client_options(client).build().map_err(|e| bad(&e))?;
            Ok((Arc::new(store), path))
        }
        "http" | "https" => {
            let client = client.with_allow_http(parsed.scheme() == "http");
            // Reads: the store's URL is the object's, the path empty, so the
            // request line is the URL as given. Listings: the store at the
            // server's root and the prefix as a path, as object_store parses it.
            let (base, path) = match purpose {
                Purpose::Read => (url, ObjectPath::default()),
                Purpose::WriteOrList => {
                    let (_, path) = ObjectStoreScheme::parse(&parsed).map_err(|e| bad(&e))?;
                    (&parsed[..url::Position::BeforePath], path)
                }
            };
            let mut b = HttpBuilder::new().with_url(base).with_retry(retry).with_client_options(client);
            if purpose == Purpose::Read {
                b = b.with_http_connector(StatusConnector);
            }
            Ok((Arc::new(b.build().map_err(|e| bad(&e))?), path))
        }
        _ => Err(unsupported()),
    }
}

/// Requests made, bytes received and retries.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
}

/// A remote object read by ranged GETs.
pub struct RemoteSource {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
    etag: Option<String>,
    head: Bytes,
    tail_start: u64,
    tail: Bytes,
    /// Index pages outside the tail, by offset (kept with the disk cache on).
    pages: BTreeMap<u64, Bytes>,
    /// Ranges fetched, kept for repeated reads; a range wanted by several
    /// threads at once is fetched once.
    cache: SharedCache,
    /// The persistent block cache and this object's blocks, when on.
    persist: Option<Persist>,
    rules: RetryRules,
    stats: Arc<Stats>,
}

/// The disk cache as one object sees it.
struct Persist {
    disk: Arc<DiskCache>,
    /// Check entries against their own hash (see `CacheSetting::check_blocks`).
    check: bool,
    /// Stored blocks of the object: (stored offset, stored length, key),
    /// sorted by offset, one per offset.
    blocks: Vec<(u64, u32, [u8; 32])>,
    /// Keys served or written lately: suspects when bytes of this object
    /// fail a check (see `discard_cached`).
    recent: Mutex<VecDeque<[u8; 32]>>,
    /// Keys whose disk entries are not trusted until fetched again from the
    /// origin (and their entries replaced).
    suspect: Mutex<HashSet<[u8; 32]>>,
}

/// Keys remembered for `discard_cached`.
const RECENT_KEYS: usize = 512;

impl Persist {
    fn note(&self, key: [u8; 32]) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_KEYS {
            recent.pop_front();
        }
        recent.push_back(key);
    }
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource").field("url", &self.url).field("size", &self.size).finish()
    }
}

/// A failed ranged read as the format core's I/O error: the URL, the
/// range, and the reason (a timeout with the kind `TimedOut`).
fn fetch_error(url: &str, offset: u64, len: u64, e: FetchError) -> hexz_format::Error {
    let kind = match &e {
        FetchError::NotFound(_) => std::io::ErrorKind::NotFound,
        FetchError::Failed { timed_out: true, .. } => std::io::ErrorKind::TimedOut,
        _ => std::io::ErrorKind::Other,
    };
    let end = offset.saturating_add(len).saturating_sub(1);
    hexz_format::Error::from_io(offset, std::io::Error::new(kind, format!("{url}: bytes {offset}-{end}: {e}")))
}

/// What is known of a remote object's structure: kept in the disk cache
/// under its URL, and used only while the object's ETag (or, without one,
/// its size and modification time) is unchanged.
#[derive(Debug, Clone, PartialEq)]
struct Structure {
    url: String,
    size: u64,
    etag: Option<String>,
    last_modified_ms: i64,
    head: Bytes,
    tail_start: u64,
    tail: Bytes,
    pages: BTreeMap<u64, Bytes>,
}

impl Structure {
    fn key(url: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(b"hexz remote structure v1\0");
        h.update(url.as_bytes());
        *h.finalize().as_bytes()
    }

    /// Whether `meta` (from a HEAD) describes the object this was read from.
    fn matches(&self, meta: &object_store::ObjectMeta) -> bool {
        if meta.size != self.size {
            return false;
        }
        match (&self.etag, &meta.e_tag) {
            (Some(a), Some(b)) => a == b,
            // No ETag: the date, when the server gave one (the epoch is
            // what a missing Last-Modified reads as).
            _ => self.last_modified_ms > 0 && meta.last_modified.timestamp_millis() == self.last_modified_ms,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        };
        bytes(&mut out, self.url.as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.push(u8::from(self.etag.is_some()));
        bytes(&mut out, self.etag.as_deref().unwrap_or_default().as_bytes());
        out.extend_from_slice(&self.last_modified_ms.to_le_bytes());
        bytes(&mut out, &self.head);
        out.extend_from_slice(&self.tail_start.to_le_bytes());
        bytes(&mut out, &self.tail);
        out.extend_from_slice(&(self.pages.len() as u64).to_le_bytes());
        for (at, page) in &self.pages {
            out.extend_from_slice(&at.to_le_bytes());
            bytes(&mut out, page);
        }
        out
    }

    fn decode(data: &[u8]) -> Option<Structure> {
        struct Cursor<'a>(&'a [u8]);
        impl<'a> Cursor<'a> {
            fn take(&mut self, n: usize) -> Option<&'a [u8]> {
                if n > self.0.len() {
                    return None;
                }
                let (a, b) = self.0.split_at(n);
                self.0 = b;
                Some(a)
            }
            fn u64(&mut self) -> Option<u64> {
                Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
            }
            fn bytes(&mut self) -> Option<Bytes> {
                let n = usize::try_from(self.u64()?).ok()?;
                Some(Bytes::copy_from_slice(self.take(n)?))
            }
        }
        let mut c = Cursor(data);
        let url = String::from_utf8(c.bytes()?.to_vec()).ok()?;
        let size = c.u64()?;
        let has_etag = c.take(1)?[0] == 1;
        let etag = String::from_utf8(c.bytes()?.to_vec()).ok()?;
        let last_modified_ms = c.u64()? as i64;
        let head = c.bytes()?;
        let tail_start = c.u64()?;
        let tail = c.bytes()?;
        let n = c.u64()?;
        let mut pages = BTreeMap::new();
        for _ in 0..n {
            let offset = c.u64()?;
            pages.insert(offset, c.bytes()?);
        }
        let sane = tail_start.checked_add(tail.len() as u64) == Some(size) && head.len() as u64 <= size;
        sane.then_some(Structure {
            url,
            size,
            etag: has_etag.then_some(etag),
            last_modified_ms,
            head,
            tail_start,
            tail,
            pages,
        })
    }

    /// The structure's bytes covering `[offset, offset + len)`, if any.
    fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        if end <= self.head.len() as u64 {
            return Some(&self.head[offset as usize..end as usize]);
        }
        if offset >= self.tail_start {
            let at = (offset - self.tail_start) as usize;
            return self.tail.get(at..at + len);
        }
        let (&start, page) = self.pages.range(..=offset).next_back()?;
        let at = (offset - start) as usize;
        page.get(at..at.checked_add(len)?)
    }

    /// The footer and directory read from the tail, when whole.
    fn directory(&self) -> Option<(Footer, Vec<DirectoryEntry>)> {
        use zerocopy::FromBytes;
        let footer_at = hexz_format::signature::footer_in_tail(&self.tail)?;
        let footer = Footer::read_from_bytes(self.tail.get(footer_at..footer_at + FOOTER_SIZE)?).ok()?;
        let dir_at = usize::try_from(footer.directory_offset.get().checked_sub(self.tail_start)?).ok()?;
        let count = footer.page_count.get() as usize;
        let raw = self.tail.get(dir_at..dir_at.checked_add(count.checked_mul(DIRECTORY_ENTRY_SIZE)?)?)?;
        let entries = raw.chunks_exact(DIRECTORY_ENTRY_SIZE).map(DirectoryEntry::read_from_bytes);
        Some((footer, entries.collect::<std::result::Result<_, _>>().ok()?))
    }
}

/// The structure as a source (anything else is an error): to walk the
/// index of an object without fetching its blocks.
struct StructureView<'a>(&'a Structure);

impl ReadAt for StructureView<'_> {
    fn len(&self) -> u64 {
        self.0.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        let bytes = self.0.bytes_at(offset, buf.len()).ok_or(hexz_format::Error::InvalidArgument("not structure"))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

impl RemoteSource {
    /// Open `url`: two requests at once, the first [`OPEN_PREFIX`] bytes and
    /// the last [`OPEN_SUFFIX`], which give the size and ETag too. With the
    /// disk cache on, the index pages are fetched too and all of it kept;
    /// the next open of the URL then costs one HEAD request, which shows
    /// whether the object is still the one they were read from.
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<RemoteSource> {
        let (store, path) = store_for(url, opts)?;
        let stats = Arc::new(Stats::default());
        let rules = opts.retry_rules();
        let disk = match &opts.block_cache.dir {
            Some(dir) => match DiskCache::shared(dir, opts.block_cache.max_bytes) {
                Ok(d) => Some(d),
                Err(e) => {
                    static WARNED: std::sync::Once = std::sync::Once::new();
                    WARNED.call_once(|| eprintln!("hexz: no block cache at {}: {e}", dir.display()));
                    None
                }
            },
            None => None,
        };
        let key = Structure::key(url);
        let known = disk.as_ref().and_then(|d| d.get_meta(&key)).and_then(|b| Structure::decode(&b));
        if let (Some(disk), Some(known)) = (&disk, known.filter(|k| k.url == url)) {
            let head = runtime().block_on(async {
                stats.requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::timeout(rules.stall_timeout, store.head(&path)).await
            });
            match head {
                Ok(Ok(meta)) if known.matches(&meta) => {
                    return Ok(Self::build(url, store, path, known, opts, Some(disk.clone()), rules, stats));
                }
                Ok(Err(object_store::Error::NotFound { .. })) => {
                    disk.remove_meta(&key);
                    return Err(Error::refused(url, "no such object", ErrorCode::NotFound));
                }
                // Another object now, or no HEAD (a presigned GET URL):
                // opened as if unknown.
                _ => disk.remove_meta(&key),
            }
        }
        let read = RangeRead { store: &*store, path: &path, rules, expect: None, stats: &stats };
        let fail = |e: FetchError, len: u64| match e {
            FetchError::NotFound(what) => Error::refused(url, what, ErrorCode::NotFound),
            e => Error::At { location: Location::Url(url.into()), source: fetch_error(url, 0, len, e) },
        };
        // Azure serves no suffix ranges: its size first (a HEAD), then the
        // same two ranges, bounded.
        let tail_range = if no_suffix_ranges(url) {
            let meta = runtime()
                .block_on(async { tokio::time::timeout(rules.stall_timeout, store.head(&path)).await })
                .map_err(|_| refused(url, "no response to HEAD within the stall timeout", ErrorCode::Io))?
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => refused(url, "no such object", ErrorCode::NotFound),
                    e => store_error(url, e),
                })?;
            GetRange::Bounded(meta.size.saturating_sub(OPEN_SUFFIX)..meta.size)
        } else {
            GetRange::Suffix(OPEN_SUFFIX)
        };
        let (tail, head) = runtime()
            .block_on(async { futures::join!(read.run(tail_range), read.run(GetRange::Bounded(0..OPEN_PREFIX))) });
        let tail = tail.map_err(|e| fail(e, OPEN_SUFFIX))?;
        let head = head.map_err(|e| fail(e, OPEN_PREFIX))?;
        if head.meta.e_tag != tail.meta.e_tag || head.meta.size != tail.meta.size {
            return Err(refused(url, "the object changed while it was opened", ErrorCode::Io));
        }
        if tail.start + tail.bytes.len() as u64 != tail.meta.size {
            return Err(refused(url, "the server returned a short suffix range", ErrorCode::Io));
        }
        let mut known = Structure {
            url: url.to_string(),
            size: tail.meta.size,
            etag: tail.meta.e_tag.clone(),
            last_modified_ms: tail.meta.last_modified.timestamp_millis(),
            head: head.bytes,
            tail_start: tail.start,
            tail: tail.bytes,
            pages: BTreeMap::new(),
        };
        if let Some(d) = &disk {
            // Failures here surface, if they matter, when the bytes are read.
            if Self::fetch_structure(&mut known, &store, &path, rules, &stats).is_ok() {
                d.put_meta(&key, &known.encode());
            }
        }
        Ok(Self::build(url, store, path, known, opts, disk, rules, stats))
    }

    /// Fetch what the structure lacks: the directory and manifest when
    /// longer than the tail, and every index page, concurrently.
    fn fetch_structure(
        known: &mut Structure,
        store: &Arc<dyn ObjectStore>,
        path: &ObjectPath,
        rules: RetryRules,
        stats: &Stats,
    ) -> std::result::Result<(), FetchError> {
        let expect = Some((known.size, known.etag.clone()));
        let read = RangeRead { store: &**store, path, rules, expect, stats };
        let footer_at = hexz_format::signature::footer_in_tail(&known.tail);
        let footer = footer_at.and_then(|at| {
            use zerocopy::FromBytes;
            Footer::read_from_bytes(known.tail.get(at..at + FOOTER_SIZE)?).ok()
        });
        let Some(footer) = footer else { return Ok(()) };
        let dir = footer.directory_offset.get();
        if dir < known.tail_start && dir >= known.head.len() as u64 {
            let more = runtime().block_on(read.run(GetRange::Bounded(dir..known.tail_start)))?;
            let mut tail = more.bytes.to_vec();
            tail.extend_from_slice(&known.tail);
            known.tail = Bytes::from(tail);
            known.tail_start = dir;
        }
        let Some((_, entries)) = known.directory() else { return Ok(()) };
        let wanted: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| (e.page_offset.get(), u64::from(e.entry_count.get()) * BLOCK_ENTRY_SIZE as u64))
            .filter(|&(at, len)| len > 0 && known.bytes_at(at, len as usize).is_none())
            .collect();
        let fetched = runtime().block_on(async {
            futures::stream::iter(wanted.iter().map(|&(at, len)| read.run(GetRange::Bounded(at..at + len))))
                .buffered(8)
                .collect::<Vec<_>>()
                .await
        });
        for ((at, _), got) in wanted.iter().zip(fetched) {
            known.pages.insert(*at, got?.bytes);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        url: &str,
        store: Arc<dyn ObjectStore>,
        path: ObjectPath,
        known: Structure,
        opts: &RemoteOptions,
        disk: Option<Arc<DiskCache>>,
        rules: RetryRules,
        stats: Arc<Stats>,
    ) -> RemoteSource {
        let persist = disk.and_then(|disk| {
            let blocks = Self::block_map(&known)?;
            Some(Persist {
                disk,
                check: opts.block_cache.check_blocks,
                blocks,
                recent: Mutex::new(VecDeque::new()),
                suspect: Mutex::new(HashSet::new()),
            })
        });
        RemoteSource {
            url: url.to_string(),
            size: known.size,
            etag: known.etag,
            head: known.head,
            tail_start: known.tail_start,
            tail: known.tail,
            pages: known.pages,
            cache: SharedCache::new(opts.cache_bytes),
            persist,
            store,
            path,
            rules,
            stats,
        }
    }

    /// Every block stored in the object, with its cache key: the index
    /// walked over the structure (pages checked against their hashes).
    /// `None` when the structure is incomplete or not an archive's.
    fn block_map(known: &Structure) -> Option<Vec<(u64, u32, [u8; 32])>> {
        let archive = Archive::open_with(StructureView(known), &OpenLimits::default()).ok()?;
        let parent = archive.parent_identity();
        let mut page = vec![0u8; archive.page_bytes()];
        let mut blocks = Vec::with_capacity(usize::try_from(archive.block_count()).unwrap_or(0));
        for b in archive.all_blocks(&mut page) {
            let e = b.ok()?.entry;
            if e.location == 0 && e.stored_length.get() > 0 {
                blocks.push((e.stored_offset.get(), e.stored_length.get(), block_key(&e, parent)));
            }
        }
        blocks.sort_by_key(|b| b.0);
        blocks.dedup_by_key(|b| b.0);
        Some(blocks)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests, bytes and retries so far.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// The disk cache this source uses, if any.
    pub fn disk_cache(&self) -> Option<&Arc<DiskCache>> {
        self.persist.as_ref().map(|p| &p.disk)
    }

    /// GET `[offset, offset + len)` through the retry layer.
    fn fetch(&self, offset: u64, len: usize) -> hexz_format::Result<Bytes> {
        let got = runtime().block_on(self.range_read().run(GetRange::Bounded(offset..offset + len as u64)));
        got.map(|f| f.bytes).map_err(|e| fetch_error(&self.url, offset, len as u64, e))
    }

    fn range_read(&self) -> RangeRead<'_> {
        RangeRead {
            store: &*self.store,
            path: &self.path,
            rules: self.rules,
            expect: Some((self.size, self.etag.clone())),
            stats: &self.stats,
        }
    }

    /// The blocks `[first, last]` of the map when `[offset, offset + len)`
    /// is exactly their stored bytes, one after the other.
    fn whole_blocks(p: &Persist, offset: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let first = p.blocks.binary_search_by_key(&offset, |b| b.0).ok()?;
        let end = offset + len as u64;
        let mut at = offset;
        for (i, &(start, slen, _)) in p.blocks.iter().enumerate().skip(first) {
            if start != at {
                return None;
            }
            at += u64::from(slen);
            if at == end {
                return Some(first..i + 1);
            }
            if at > end {
                return None;
            }
        }
        None
    }

    /// Whether the disk cache holds every block of `range` (which start at
    /// `offset`), none of them a suspect: then they are in `out`.
    fn read_from_disk(p: &Persist, range: std::ops::Range<usize>, offset: u64, out: &mut [u8]) -> bool {
        let blocks = &p.blocks[range];
        {
            let suspect = p.suspect.lock().unwrap_or_else(|e| e.into_inner());
            if !suspect.is_empty() && blocks.iter().any(|b| suspect.contains(&b.2)) {
                return false;
            }
        }
        for &(start, slen, key) in blocks {
            let at = (start - offset) as usize;
            if !p.disk.read_block(&key, &mut out[at..at + slen as usize], p.check) {
                return false;
            }
            p.note(key);
        }
        true
    }

    /// The stored bytes of blocks `range` (which start at `offset`): each
    /// from the disk cache when held there, the others fetched (runs of
    /// them in one request each) and kept. A block another process or
    /// thread is fetching now is waited for, not fetched again.
    fn load_blocks(
        &self,
        p: &Persist,
        range: std::ops::Range<usize>,
        offset: u64,
        len: usize,
    ) -> hexz_format::Result<Bytes> {
        let mut out = vec![0u8; len];
        let blocks = &p.blocks[range];
        let mut missing: Vec<usize> = (0..blocks.len()).collect();
        let suspect: HashSet<[u8; 32]> = {
            let s = p.suspect.lock().unwrap_or_else(|e| e.into_inner());
            if s.is_empty() {
                HashSet::new()
            } else {
                blocks.iter().map(|b| b.2).filter(|k| s.contains(k)).collect()
            }
        };
        for round in 0.. {
            // A block the disk holds (and no check doubts) is copied out:
            // true when it was, so it needs no request.
            let mut from_disk = |k: usize| {
                let (start, slen, key) = blocks[k];
                if suspect.contains(&key) {
                    return false;
                }
                let at = (start - offset) as usize;
                let hit = p.disk.read_block(&key, &mut out[at..at + slen as usize], p.check);
                if hit {
                    p.note(key);
                }
                hit
            };
            missing.retain(|&k| !from_disk(k));
            if missing.is_empty() {
                break;
            }
            // Lock what no one is fetching; after a few rounds, fetch all.
            let mut held: HashMap<u64, Option<diskcache::KeyLock>> = HashMap::new();
            let mut mine = Vec::new();
            let mut busy = Vec::new();
            for &k in &missing {
                let key = blocks[k].2;
                let stripe = DiskCache::stripe(&key);
                if round >= 4 || held.contains_key(&stripe) {
                    mine.push(k);
                    continue;
                }
                match p.disk.try_lock(&key) {
                    Some(lock) => {
                        held.insert(stripe, lock);
                        mine.push(k);
                    }
                    None => busy.push(k),
                }
            }
            // Fetched by another while this one locked: no request.
            mine.retain(|&k| !from_disk(k));
            // Runs of blocks next to each other: one request each, at once.
            let mut runs: Vec<(usize, usize)> = Vec::new();
            for &k in &mine {
                match runs.last_mut() {
                    Some((_, end)) if *end == k => *end = k + 1,
                    _ => runs.push((k, k + 1)),
                }
            }
            let fetched = runtime().block_on(async {
                let read = self.range_read();
                let reads = runs.iter().map(|&(a, b)| {
                    let start = blocks[a].0;
                    let end = blocks[b - 1].0 + u64::from(blocks[b - 1].1);
                    let read = &read;
                    async move { (start, end, read.run(GetRange::Bounded(start..end)).await) }
                });
                futures::stream::iter(reads).buffer_unordered(8).collect::<Vec<_>>().await
            });
            for (start, end, got) in fetched {
                let bytes = got.map_err(|e| fetch_error(&self.url, start, end - start, e))?.bytes;
                let at = (start - offset) as usize;
                out[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            for &k in &mine {
                let (start, slen, key) = blocks[k];
                let at = (start - offset) as usize;
                p.disk.put_block(&key, &out[at..at + slen as usize]);
                p.note(key);
            }
            if !suspect.is_empty() {
                let mut s = p.suspect.lock().unwrap_or_else(|e| e.into_inner());
                for &k in &mine {
                    s.remove(&blocks[k].2);
                }
            }
            drop(held);
            missing = busy;
            for &k in &missing {
                p.disk.wait_unlocked(&blocks[k].2);
            }
        }
        Ok(Bytes::from(out))
    }
}

impl ReadAt for RemoteSource {
    fn len(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        let end = hexz_format::source::checked_end("read", offset, buf.len(), self.size)?;
        if end <= self.head.len() as u64 {
            buf.copy_from_slice(&self.head[offset as usize..end as usize]);
            return Ok(());
        }
        if offset >= self.tail_start {
            let at = (offset - self.tail_start) as usize;
            buf.copy_from_slice(&self.tail[at..at + buf.len()]);
            return Ok(());
        }
        if let Some((&start, page)) = self.pages.range(..=offset).next_back() {
            let at = (offset - start) as usize;
            if let Some(bytes) = page.get(at..at + buf.len()) {
                buf.copy_from_slice(bytes);
                return Ok(());
            }
        }
        let blocks = self.persist.as_ref().and_then(|p| Some((p, Self::whole_blocks(p, offset, buf.len())?)));
        let (bytes, at) = match blocks {
            Some((p, range)) => {
                // Blocks the disk holds go straight into `buf`: no range in
                // memory, no second copy (a hit then costs what a local read
                // does, plus an open per block).
                if let Some((bytes, at)) = self.cache.get(offset, buf.len()) {
                    buf.copy_from_slice(&bytes[at..at + buf.len()]);
                    return Ok(());
                }
                if Self::read_from_disk(p, range.clone(), offset, buf) {
                    return Ok(());
                }
                self.cache.get_or_load(offset, buf.len(), || self.load_blocks(p, range, offset, buf.len()))?
            }
            None => self.cache.get_or_load(offset, buf.len(), || self.fetch(offset, buf.len()))?,
        };
        buf.copy_from_slice(&bytes[at..at + buf.len()]);
        Ok(())
    }

    /// Bytes of this object failed a check: the ranges kept in memory are
    /// dropped, and the blocks served from (or written to) the disk cache
    /// lately become suspects: their next read fetches them from the
    /// origin and replaces their entries, so a bad entry is replaced by
    /// the retry that follows, and good ones cost one fetch in this
    /// process only.
    fn discard_cached(&self) -> bool {
        let mut any = self.cache.clear();
        if let Some(p) = &self.persist {
            let recent: Vec<_> = p.recent.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
            any |= !recent.is_empty();
            p.suspect.lock().unwrap_or_else(|e| e.into_inner()).extend(recent);
        }
        any
    }
}

/// Opens URLs remotely and paths locally.
#[derive(Debug, Clone, Default)]
pub struct RemoteResolver {
    pub options: RemoteOptions,
}

impl Resolver for RemoteResolver {
    fn open(&self, location: &Location) -> Result<Source> {
        match location {
            Location::Url(u) => Ok(Arc::new(RemoteSource::open(u, &self.options)?)),
            other => LocalResolver.open(other),
        }
    }
}

/// Open options that read URLs with `remote`.
pub fn open_options(remote: RemoteOptions) -> OpenOptions {
    OpenOptions { resolver: Arc::new(RemoteResolver { options: remote }), ..OpenOptions::default() }
}

type SharedUpload = Arc<Mutex<Option<Box<dyn MultipartUpload>>>>;
type WeakUpload = std::sync::Weak<Mutex<Option<Box<dyn MultipartUpload>>>>;

/// Uploads under way, for [`abort_unfinished_uploads`].
fn uploads() -> &'static Mutex<Vec<WeakUpload>> {
    static UPLOADS: OnceLock<Mutex<Vec<WeakUpload>>> = OnceLock::new();
    UPLOADS.get_or_init(Default::default)
}

fn register_upload(upload: Box<dyn MultipartUpload>) -> SharedUpload {
    let shared = Arc::new(Mutex::new(Some(upload)));
    let mut all = uploads().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&shared));
    shared
}

/// Abort every multipart upload of this process not yet completed (each
/// within 10 s): what a SIGINT or SIGTERM handler calls before the process
/// exits, since no destructor runs then. Nothing is left at the keys, and no
/// unfinished upload keeps its parts (and their storage cost) on S3.
pub fn abort_unfinished_uploads() {
    let all: Vec<_> = uploads().lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    for upload in all.iter().filter_map(std::sync::Weak::upgrade) {
        let taken = upload.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut u) = taken {
            let _ = runtime().block_on(async { tokio::time::timeout(Duration::from_secs(10), u.abort()).await });
        }
    }
}

/// A `Write` that uploads in parts; nothing appears at the key until
/// [`MultipartWriter::finish`]. An object of at most one part goes up in one
/// PUT at the finish (no multipart upload is begun for it); a larger one
/// begins its multipart upload with its first full part. Dropped unfinished,
/// it aborts the upload.
pub struct MultipartWriter {
    url: String,
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// Shared with [`abort_unfinished_uploads`] (a signal's cleanup);
    /// `None` until the first part is sent.
    upload: Option<SharedUpload>,
    part: Vec<u8>,
    written: u64,
}

impl MultipartWriter {
    pub fn create(url: &str, opts: &RemoteOptions) -> Result<MultipartWriter> {
        let (store, path) = build_store(url, opts, Purpose::WriteOrList)?;
        if !["s3://", "gs://", "az://", "abfs://", "abfss://", "azure://"].iter().any(|s| url.starts_with(s)) {
            return Err(refused(
                url,
                "storing needs an s3://, gs:// or az:// URL (HTTP servers take no uploads)",
                ErrorCode::Unsupported,
            ));
        }
        Ok(MultipartWriter {
            url: url.to_string(),
            store,
            path,
            upload: None,
            part: Vec::with_capacity(PART_SIZE),
            written: 0,
        })
    }

    fn io_err(&self, e: &dyn std::fmt::Display) -> std::io::Error {
        std::io::Error::other(store_error(&self.url, e).to_string())
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        let upload = match &self.upload {
            Some(u) => u.clone(),
            None => {
                let begun = runtime().block_on(self.store.put_multipart(&self.path)).map_err(|e| self.io_err(&e))?;
                self.upload.insert(register_upload(begun)).clone()
            }
        };
        let data = PutPayload::from(std::mem::replace(&mut self.part, Vec::with_capacity(PART_SIZE)));
        // The part's request runs without the lock: a signal's cleanup may abort meanwhile.
        let sending = match upload.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(upload) => upload.put_part(data),
            None => return Err(std::io::Error::other(format!("{}: upload already ended", self.url))),
        };
        runtime().block_on(sending).map_err(|e| self.io_err(&e))
    }

    /// Upload the last part and complete the upload (or PUT the object of
    /// one part): the object appears.
    pub fn finish(mut self) -> Result<u64> {
        let err = |url: &str, e: String| Error::At {
            location: Location::Url(url.into()),
            source: io_error(url, 0, retry::without_s3_xml(&e)),
        };
        let Some(upload) = self.upload.take() else {
            let data = PutPayload::from(std::mem::take(&mut self.part));
            runtime().block_on(self.store.put(&self.path, data)).map_err(|e| store_error(&self.url, e))?;
            return Ok(self.written);
        };
        self.upload = Some(upload.clone());
        if !self.part.is_empty() {
            self.send_part().map_err(|e| err(&self.url, e.to_string()))?;
        }
        let taken = upload.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(mut upload) = taken else { return Err(err(&self.url, "upload already ended".into())) };
        runtime().block_on(upload.complete()).map_err(|e| err(&self.url, e.to_string()))?;
        Ok(self.written)
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full part goes once more bytes come: the last part is sent by
        // `finish`, so an object of exactly one part is one PUT.
        if self.part.len() == PART_SIZE {
            self.send_part()?;
        }
        let n = data.len().min(PART_SIZE - self.part.len());
        self.part.extend_from_slice(&data[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        let taken = self.upload.as_ref().and_then(|u| u.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(mut upload) = taken {
            // Not finished: no object may appear at the key.
            let _ = runtime().block_on(upload.abort());
        }
    }
}

/// The parent hint a child at `child` records for `parent`: the relative
/// path when both are in the same bucket (or on the same host), else the
/// parent's file name (found then through `--parent-dir`).
pub fn parent_hint(child: &Location, parent: &Location) -> String {
    /// The server (or bucket) of a URL, and its path's segments.
    fn split(u: &str) -> Option<(String, Vec<String>)> {
        let url = url::Url::parse(u).ok()?;
        let root = url[..url::Position::BeforePath].to_string();
        let parts = url.path_segments()?.filter(|s| !s.is_empty()).map(str::to_string).collect();
        Some((root, parts))
    }
    if let (Location::Url(c), Location::Url(p)) = (child, parent) {
        if let (Some((cr, cp)), Some((pr, pp))) = (split(c), split(p)) {
            if cr == pr && !cp.is_empty() && !pp.is_empty() {
                let dir = &cp[..cp.len() - 1];
                let common = dir.iter().zip(&pp).take_while(|(a, b)| a == b).count();
                let mut parts: Vec<&str> = vec![".."; dir.len() - common];
                parts.extend(pp[common..].iter().map(String::as_str));
                return parts.join("/");
            }
        }
    }
    parent.file_name().unwrap_or_default()
}

/// Stores to URLs (S3, by multipart upload) and to paths (locally): the
/// [`hexz_io::SinkResolver`] of [`hexz_io::Store`] for remote-capable
/// front ends. The upload completes only when the archive is whole; any
/// failure aborts it, leaving no object at the key.
#[derive(Debug, Clone, Default)]
pub struct RemoteSinkResolver {
    /// How the object store is reached.
    pub options: RemoteOptions,
}

impl Sink for MultipartWriter {
    fn writer(&mut self) -> Box<dyn Write + '_> {
        Box::new(self)
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.finish().map(drop)
    }
}

impl SinkResolver for RemoteSinkResolver {
    fn create(&self, dst: &Location, opts: &SinkOptions) -> Result<Box<dyn Sink>> {
        match dst {
            Location::Url(u) => Ok(Box::new(MultipartWriter::create(u, &self.options)?)),
            other => LocalSinkResolver.create(other, opts),
        }
    }

    fn parent_hint(&self, dst: &Location, parent: &Location) -> String {
        match dst {
            Location::Url(_) => parent_hint(dst, parent),
            _ => hexz_io::local_parent_hint(dst, parent),
        }
    }
}

/// A store builder that stores to URLs and opens URL bases with `remote`.
pub fn store_sinks(remote: RemoteOptions) -> Arc<dyn SinkResolver> {
    Arc::new(RemoteSinkResolver { options: remote })
}

/// Archives (`.hxz` objects) under the URL prefix, with their sizes.
pub fn list(prefix: &str, opts: &RemoteOptions) -> Result<Vec<(String, u64)>> {
    let (store, path) = build_store(prefix, opts, Purpose::WriteOrList)?;
    let parsed = url::Url::parse(prefix).map_err(|e| refused(prefix, e.to_string(), ErrorCode::InvalidArgument))?;
    // Listed paths are relative to the bucket (s3) or the server's root (http).
    let root = &parsed[..url::Position::BeforePath];
    let prefix_path = (!path.as_ref().is_empty()).then_some(&path);
    let found: Vec<_> = runtime().block_on(store.list(prefix_path).collect());
    let mut out = Vec::new();
    for meta in found {
        let meta = meta.map_err(|e| store_error(prefix, e))?;
        if meta.location.as_ref().ends_with(".hxz") {
            out.push((format!("{root}/{}", meta.location), meta.size));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_relative_within_a_bucket() {
        let l = |s: &str| Location::parse(s);
        assert_eq!(parent_hint(&l("s3://b/ft.hxz"), &l("s3://b/base.hxz")), "base.hxz");
        assert_eq!(parent_hint(&l("s3://b/ft/x.hxz"), &l("s3://b/bases/base.hxz")), "../bases/base.hxz");
        assert_eq!(parent_hint(&l("s3://b/x.hxz"), &l("s3://c/base.hxz")), "base.hxz");
        assert_eq!(parent_hint(&l("s3://b/x.hxz"), &l("/tmp/base.hxz")), "base.hxz");
        let (child, parent) = (l("http://h:8/m/a%20b/ft.hxz?sig=1"), l("http://h:8/m/base%20x.hxz"));
        assert_eq!(parent_hint(&child, &parent), "../base%20x.hxz");
        assert_eq!(parent_hint(&l("http://h:8/ft.hxz"), &l("http://h:9/base.hxz")), "base.hxz", "another server");
    }

    #[test]
    fn urls_are_parsed_by_object_store() {
        let o = RemoteOptions::default();
        let (_, key) = store_for("s3://bucket/dir/name%20x.hxz", &o).unwrap();
        assert_eq!(key.as_ref(), "dir/name x.hxz", "an S3 key is the URL path decoded");
        let (_, path) = store_for("https://host/dir/a%20b.hxz?X-Amz-Signature=ab%2Fc", &o).unwrap();
        assert_eq!(path.as_ref(), "", "http(s): the whole URL is the store's, requested as given");
        for bad in ["s3:///key.hxz", "ftp://host/x.hxz", "not a url"] {
            assert!(store_for(bad, &o).is_err(), "{bad}");
        }
    }
}
