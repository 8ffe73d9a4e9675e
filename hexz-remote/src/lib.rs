//! Archives in object storage and behind HTTP: [`RemoteSource`] (a
//! `ReadAt` over ranged GETs, with a bounded cache, one retry layer and a
//! check that the object did not change), [`RemoteResolver`] (URLs and
//! paths for the chain), [`RemoteSinkResolver`] (stores to URLs through
//! [`hexz_io::Store`], a multipart upload completed only when the archive
//! is whole) and [`list`] (archives under a URL
//! prefix).

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hexz_format::{ErrorCode, ReadAt};
use hexz_io::{
    Error, LocalResolver, LocalSinkResolver, Location, OpenOptions, Resolver, Result, SharedCache, Sink, SinkOptions,
    SinkResolver, Source,
};
use object_store::aws::AmazonS3Builder;
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, ObjectStoreScheme,
    PutPayload, RetryConfig,
};

pub mod retry;

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
    let unsupported = || refused(url, "not a URL hexz can read (s3://, http://, https://)", ErrorCode::Unsupported);
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
    /// Ranges fetched, kept for repeated reads; a range wanted by several
    /// threads at once is fetched once.
    cache: SharedCache,
    rules: RetryRules,
    stats: Arc<Stats>,
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

impl RemoteSource {
    /// Open `url`: two requests at once, the first [`OPEN_PREFIX`] bytes and
    /// the last [`OPEN_SUFFIX`], which give the size and ETag too.
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<RemoteSource> {
        let (store, path) = store_for(url, opts)?;
        let stats = Arc::new(Stats::default());
        let rules = opts.retry_rules();
        let read = RangeRead { store: &*store, path: &path, rules, expect: None, stats: &stats };
        let fail = |e: FetchError, len: u64| match e {
            FetchError::NotFound(_) => Error::refused(url, "no such object", ErrorCode::NotFound),
            e => Error::At { location: Location::Url(url.into()), source: fetch_error(url, 0, len, e) },
        };
        let (tail, head) = runtime().block_on(async {
            futures::join!(read.run(GetRange::Suffix(OPEN_SUFFIX)), read.run(GetRange::Bounded(0..OPEN_PREFIX)))
        });
        let tail = tail.map_err(|e| fail(e, OPEN_SUFFIX))?;
        let head = head.map_err(|e| fail(e, OPEN_PREFIX))?;
        if head.meta.e_tag != tail.meta.e_tag || head.meta.size != tail.meta.size {
            return Err(refused(url, "the object changed while it was opened", ErrorCode::Io));
        }
        if tail.start + tail.bytes.len() as u64 != tail.meta.size {
            return Err(refused(url, "the server returned a short suffix range", ErrorCode::Io));
        }
        Ok(RemoteSource {
            url: url.to_string(),
            size: tail.meta.size,
            etag: tail.meta.e_tag,
            head: head.bytes,
            tail_start: tail.start,
            tail: tail.bytes,
            cache: SharedCache::new(opts.cache_bytes),
            store,
            path,
            rules,
            stats,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests, bytes and retries so far.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// GET `[offset, offset + len)` through the retry layer.
    fn fetch(&self, offset: u64, len: usize) -> hexz_format::Result<Bytes> {
        let read = RangeRead {
            store: &*self.store,
            path: &self.path,
            rules: self.rules,
            expect: Some((self.size, self.etag.clone())),
            stats: &self.stats,
        };
        let got = runtime().block_on(read.run(GetRange::Bounded(offset..offset + len as u64)));
        got.map(|f| f.bytes).map_err(|e| fetch_error(&self.url, offset, len as u64, e))
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
        let (bytes, at) = self.cache.get_or_load(offset, buf.len(), || self.fetch(offset, buf.len()))?;
        buf.copy_from_slice(&bytes[at..at + buf.len()]);
        Ok(())
    }

    fn discard_cached(&self) -> bool {
        self.cache.clear()
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

/// A `Write` that uploads in parts; nothing appears at the key until
/// [`MultipartWriter::finish`]. Dropped unfinished, it aborts the upload.
pub struct MultipartWriter {
    url: String,
    upload: Option<Box<dyn MultipartUpload>>,
    part: Vec<u8>,
    written: u64,
}

impl MultipartWriter {
    pub fn create(url: &str, opts: &RemoteOptions) -> Result<MultipartWriter> {
        let (store, path) = build_store(url, opts, Purpose::WriteOrList)?;
        if !url.starts_with("s3://") {
            return Err(refused(
                url,
                "storing needs an s3:// URL (HTTP servers take no uploads)",
                ErrorCode::Unsupported,
            ));
        }
        let upload = runtime()
            .block_on(store.put_multipart(&path))
            .map_err(|e| Error::At { location: Location::Url(url.into()), source: io_error(url, 0, e) })?;
        Ok(MultipartWriter {
            url: url.to_string(),
            upload: Some(upload),
            part: Vec::with_capacity(PART_SIZE),
            written: 0,
        })
    }

    fn send_part(&mut self) -> std::io::Result<()> {
        let Some(upload) = self.upload.as_mut() else {
            return Err(std::io::Error::other(format!("{}: upload already ended", self.url)));
        };
        let data = PutPayload::from(std::mem::replace(&mut self.part, Vec::with_capacity(PART_SIZE)));
        runtime().block_on(upload.put_part(data)).map_err(|e| std::io::Error::other(format!("{}: {e}", self.url)))
    }

    /// Upload the last part and complete the upload: the object appears.
    pub fn finish(mut self) -> Result<u64> {
        let err = |url: &str, e: String| Error::At { location: Location::Url(url.into()), source: io_error(url, 0, e) };
        if !self.part.is_empty() || self.written == 0 {
            self.send_part().map_err(|e| err(&self.url, e.to_string()))?;
        }
        let mut upload = self.upload.take().expect("finish runs once");
        runtime().block_on(upload.complete()).map_err(|e| err(&self.url, e.to_string()))?;
        Ok(self.written)
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(PART_SIZE - self.part.len());
        self.part.extend_from_slice(&data[..n]);
        self.written += n as u64;
        if self.part.len() == PART_SIZE {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
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
        let meta =
            meta.map_err(|e| Error::At { location: Location::Url(prefix.into()), source: io_error(prefix, 0, e) })?;
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
