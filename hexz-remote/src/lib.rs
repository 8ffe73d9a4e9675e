//! Archives in object storage and behind HTTP: [`RemoteSource`] (a
//! `ReadAt` over ranged GETs, with a bounded cache, retries and a check
//! that the object did not change), [`RemoteResolver`] (URLs and paths for
//! the chain), [`store_to_url`] (a multipart upload completed only when the
//! archive is whole) and [`list`] (archives under a URL prefix).

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hexz_format::writer::{StoreOptions, StoreReport};
use hexz_format::{ErrorCode, ReadAt};
use hexz_io::{Error, FileSource, LocalResolver, Location, OpenOptions, RangeCache, Reader, Resolver, Result, Source};
use object_store::aws::AmazonS3Builder;
use object_store::http::HttpBuilder;
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

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
    /// Whole-request timeout.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries of a failed or short request (on top of the client's own).
    pub retries: usize,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            endpoint: None,
            region: None,
            cache_bytes: 64 << 20,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            retries: 4,
        }
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

/// The object store and object path of `url`.
pub fn store_for(url: &str, opts: &RemoteOptions) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    runtime();
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: opts.timeout,
    };
    let client = ClientOptions::new().with_timeout(opts.timeout).with_connect_timeout(opts.connect_timeout);
    let bad = |e: object_store::Error| refused(url, e.to_string(), ErrorCode::InvalidArgument);
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(refused(url, "no bucket in the URL", ErrorCode::InvalidArgument));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry);
        if let Some(region) = &opts.region {
            b = b.with_region(region);
        }
        let endpoint = opts.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(e) = &endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        let client = client.with_allow_http(endpoint.as_deref().is_some_and(|e| e.starts_with("http://")));
        let store = b.with_client_options(client).build().map_err(bad)?;
        return Ok((Arc::new(store), ObjectPath::from(key)));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let host_end = url[scheme_end..].find('/').map_or(url.len(), |i| scheme_end + i);
        let (base, path) = url.split_at(host_end);
        let client = client.with_allow_http(url.starts_with("http://"));
        let store =
            HttpBuilder::new().with_url(base).with_retry(retry).with_client_options(client).build().map_err(bad)?;
        return Ok((Arc::new(store), ObjectPath::from(path.trim_start_matches('/'))));
    }
    Err(refused(url, "not a URL hexz can read (s3://, http://, https://)", ErrorCode::Unsupported))
}

/// Requests made and bytes received.
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
    /// Ranges fetched, kept for repeated reads.
    cache: Mutex<RangeCache<Bytes>>,
    retries: usize,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSource").field("url", &self.url).field("size", &self.size).finish()
    }
}

impl RemoteSource {
    /// Open `url`: two requests at once, the first [`OPEN_PREFIX`] bytes and
    /// the last [`OPEN_SUFFIX`], which give the size and ETag too.
    pub fn open(url: &str, opts: &RemoteOptions) -> Result<RemoteSource> {
        let (store, path) = store_for(url, opts)?;
        let stats = Arc::new(Stats::default());
        let fail = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => Error::refused(url, "no such object", ErrorCode::NotFound),
            e => Error::At { location: Location::Url(url.into()), source: io_error(url, 0, e) },
        };
        let get = |range: GetRange| {
            let (store, path) = (store.clone(), path.clone());
            async move {
                let r = store.get_opts(&path, GetOptions { range: Some(range), ..Default::default() }).await?;
                let meta = r.meta.clone();
                let start = r.range.start;
                Ok::<_, object_store::Error>((meta, start, r.bytes().await?))
            }
        };
        let (tail, head) = runtime().block_on(async {
            futures::join!(get(GetRange::Suffix(OPEN_SUFFIX)), get(GetRange::Bounded(0..OPEN_PREFIX)))
        });
        let (meta, tail_start, tail) = tail.map_err(fail)?;
        let (head_meta, _, head) = head.map_err(fail)?;
        stats.requests.fetch_add(2, Ordering::Relaxed);
        stats.bytes.fetch_add((tail.len() + head.len()) as u64, Ordering::Relaxed);
        if head_meta.e_tag != meta.e_tag || head_meta.size != meta.size {
            return Err(refused(url, "the object changed while it was opened", ErrorCode::Io));
        }
        if tail_start + tail.len() as u64 != meta.size {
            return Err(refused(url, "the server returned a short suffix range", ErrorCode::Io));
        }
        Ok(RemoteSource {
            url: url.to_string(),
            store,
            path,
            size: meta.size,
            etag: meta.e_tag,
            head,
            tail_start,
            tail,
            cache: Mutex::new(RangeCache::new(opts.cache_bytes)),
            retries: opts.retries,
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

    /// GET `[offset, offset + len)`, retried until it arrives whole.
    fn fetch(&self, offset: u64, len: usize) -> hexz_format::Result<Bytes> {
        let range = offset..offset + len as u64;
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50 << attempt.min(6)));
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let options = GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                if_match: self.etag.clone(),
                ..Default::default()
            };
            let got = runtime().block_on(async {
                let r = self.store.get_opts(&self.path, options).await?;
                let meta = r.meta.clone();
                Ok::<_, object_store::Error>((meta, r.bytes().await?))
            });
            match got {
                Ok((meta, bytes)) => {
                    self.stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    if meta.size != self.size || (self.etag.is_some() && meta.e_tag != self.etag) {
                        return Err(io_error(
                            &self.url,
                            offset,
                            "the object changed since it was opened (size or ETag)",
                        ));
                    }
                    if bytes.len() == len {
                        return Ok(bytes);
                    }
                    last = format!("short response: {} of {len} bytes", bytes.len());
                }
                Err(object_store::Error::Precondition { .. }) => {
                    return Err(io_error(&self.url, offset, "the object changed since it was opened (ETag)"));
                }
                Err(e @ object_store::Error::NotFound { .. }) => return Err(io_error(&self.url, offset, e)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(io_error(&self.url, offset, format!("{} attempts failed; last: {last}", self.retries + 1)))
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
        if let Some((hit, at)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(offset, buf.len()) {
            buf.copy_from_slice(&hit[at..at + buf.len()]);
            return Ok(());
        }
        let bytes = self.fetch(offset, buf.len())?;
        buf.copy_from_slice(&bytes);
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).put(offset, bytes);
        Ok(())
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
        let (store, path) = store_for(url, opts)?;
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
    fn split(u: &str) -> Option<(&str, Vec<&str>)> {
        let scheme_end = u.find("://")? + 3;
        let root_end = u[scheme_end..].find('/').map_or(u.len(), |i| scheme_end + i);
        Some((&u[..root_end], u[root_end..].split('/').filter(|s| !s.is_empty()).collect()))
    }
    if let (Location::Url(c), Location::Url(p)) = (child, parent) {
        if let (Some((cr, cp)), Some((pr, pp))) = (split(c), split(p)) {
            if cr == pr && !cp.is_empty() && !pp.is_empty() {
                let dir = &cp[..cp.len() - 1];
                let common = dir.iter().zip(&pp).take_while(|(a, b)| a == b).count();
                let mut parts: Vec<&str> = vec![".."; dir.len() - common];
                parts.extend(&pp[common..]);
                return parts.join("/");
            }
        }
    }
    parent.file_name().unwrap_or_default()
}

/// Store the file `src` as the archive at `url` (S3), against `base` (a
/// path or URL) when given. The upload completes only when the archive is
/// whole; any failure aborts it, leaving no object at the key.
pub fn store_to_url(
    src: &Path,
    url: &str,
    opts: &StoreOptions,
    base: Option<&Location>,
    open: &OpenOptions,
    remote: &RemoteOptions,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<StoreReport> {
    opts.validate()?;
    let source = FileSource::open(src)?;
    let base = base.map(|b| Reader::open(b.clone(), open)).transpose()?;
    let dst = Location::Url(url.to_string());
    let parent = base.as_ref().map(|b| hexz_io::Parent {
        archive: b.archive(),
        chain: b.chain(),
        hint: parent_hint(&dst, b.location()),
    });
    let mut writer = MultipartWriter::create(url, remote)?;
    let name = Location::Path(src.to_path_buf());
    let report = hexz_io::store_parallel(&source, &name, &mut writer, Path::new(url), opts, parent, progress)?;
    source.check_unchanged()?;
    writer.finish()?;
    Ok(report)
}

/// Archives (`.hxz` objects) under the URL prefix, with their sizes.
pub fn list(prefix: &str, opts: &RemoteOptions) -> Result<Vec<(String, u64)>> {
    let (store, path) = store_for(prefix, opts)?;
    let base = prefix.trim_end_matches('/');
    let root = match prefix.strip_prefix("s3://") {
        Some(rest) => format!("s3://{}", rest.split('/').next().unwrap_or("")),
        None => base[..base.len() - path.as_ref().len()].trim_end_matches('/').to_string(),
    };
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
    }
}
