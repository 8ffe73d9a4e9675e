//! The one retry layer of remote reads. object_store's own retries are off
//! for reads (`max_retries: 0`): in 0.14 they back off without reading
//! `Retry-After`, bound a request by time since its first attempt rather
//! than by progress, and do not retry a response with the wrong range, so
//! hexz retries each ranged GET itself:
//!
//! - at most `1 + retries` requests per range, every failure counting (a
//!   5xx, 429 or 408 status, a dropped or refused connection, a stall, a
//!   short or wrong response);
//! - between them, the server's `Retry-After` (seconds or an HTTP date) on
//!   a 429 or 503, else 100 ms doubling up to 2 s; a server asking for more
//!   than `max_retry_after` fails the read at once, saying so;
//! - a stall timeout, not a whole-request one: the response must start, and
//!   each next piece of its body arrive, within `stall_timeout`. A transfer
//!   that keeps moving is never cut off, however slow; a retry after a
//!   broken or stalled body asks only for the bytes not yet received;
//! - `If-Match` carries the ETag seen at open when it is strong (a weak
//!   one would fail RFC 9110's strong comparison); every response's size
//!   and ETag are compared with those seen at open either way;
//! - a 404, a changed object (412 on `If-Match`, another size or ETag) and
//!   other 4xx statuses are not retried.
//!
//! So a server that never answers costs at most
//! `(1 + retries) * stall_timeout + retries * max(2 s, max_retry_after)`
//! before the error, which names the range, the attempts, the time taken
//! and the last failure (a timeout as a timeout).

use std::error::Error as StdError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore};

use crate::Stats;

/// First wait between attempts without `Retry-After`; it doubles each time.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait between attempts without `Retry-After`.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How reads are retried (see the module notes).
#[derive(Debug, Clone, Copy)]
pub struct RetryRules {
    /// Requests after the first for one range.
    pub retries: usize,
    /// Longest wait for the response to start or for its next bytes.
    pub stall_timeout: Duration,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl RetryRules {
    /// The wait before attempt `attempt` (1 = the first retry): the
    /// server's `retry_after` when it gave one, else the backoff. `Err`
    /// when the server asks for longer than the rules allow.
    pub fn wait(&self, attempt: usize, retry_after: Option<Duration>) -> Result<Duration, String> {
        match retry_after {
            Some(wait) if wait > self.max_retry_after => Err(format!(
                "the server asked to retry after {} s, longer than the {} s waited at most",
                wait.as_secs_f64(),
                self.max_retry_after.as_secs_f64()
            )),
            Some(wait) => Ok(wait),
            None => {
                let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX).min(16);
                Ok(BACKOFF_START.saturating_mul(1 << doublings).min(BACKOFF_MAX))
            }
        }
    }

    /// The longest a read of a server that never answers takes before its
    /// error (each attempt stalls; the longest waits between them).
    pub fn give_up_bound(&self) -> Duration {
        let attempts = u32::try_from(self.retries + 1).unwrap_or(u32::MAX);
        let waits = u32::try_from(self.retries).unwrap_or(u32::MAX);
        self.stall_timeout.saturating_mul(attempts) + BACKOFF_MAX.max(self.max_retry_after).saturating_mul(waits)
    }
}

/// A response with a failing status, as the connector reports it: object
/// store errors keep neither the status nor `Retry-After`.
#[derive(Debug)]
pub(crate) struct ServerError {
    /// The HTTP status.
    pub status: u16,
    /// What the server's `Retry-After` asked for (429 and 503 only).
    pub retry_after: Option<Duration>,
    /// The start of the body (S3's error code and message), on one line.
    pub body: String,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(reason) = http_reason(self.status) {
            write!(f, " {reason}")?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, " (Retry-After: {} s)", wait.as_secs_f64())?;
        }
        if !self.body.is_empty() {
            write!(f, ": {}", self.body)?;
        }
        Ok(())
    }
}

impl StdError for ServerError {}

fn http_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        408 => "Request Timeout",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

/// Whether a failing status is worth another attempt.
fn retryable_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

/// `Retry-After`: seconds, or an HTTP date (the wait until then).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Most bytes of an error body kept for the message.
const ERROR_BODY: usize = 512;

/// The HTTP client of reads: reqwest, with every failing status of a ranged
/// GET other than 404 and 412 (which object_store turns into "not found" and
/// "changed") reported as a [`ServerError`] carrying the status and
/// `Retry-After`.
#[derive(Debug, Default)]
pub(crate) struct StatusConnector;

impl HttpConnector for StatusConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(StatusService(ReqwestConnector::default().connect(options)?)))
    }
}

#[derive(Debug)]
struct StatusService(HttpClient);

#[async_trait::async_trait]
impl HttpService for StatusService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // Only the ranged GETs of reads: the client's other requests (S3
        // credentials from instance metadata, whose fallbacks read the
        // status) are left as object_store expects them.
        let ranged = req.headers().contains_key("range");
        let mut response = self.0.execute(req).await?;
        let status = response.status().as_u16();
        if ranged && status == 206 {
            add_content_length(response.headers_mut());
        }
        if !ranged || status < 400 || status == 404 || status == 412 {
            return Ok(response);
        }
        let retry_after = match status {
            429 | 503 => {
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after)
            }
            _ => None,
        };
        let mut body = Vec::new();
        let mut stream = response.into_body().bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
            body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY - body.len())]);
            if body.len() >= ERROR_BODY {
                break;
            }
        }
        let body = String::from_utf8_lossy(&body).split_whitespace().collect::<Vec<_>>().join(" ");
        Err(HttpError::new(HttpErrorKind::Request, ServerError { status, retry_after, body }))
    }
}

/// A 206 sent chunked has no `Content-Length` (RFC 9110 allows it: the
/// range's extent is in `Content-Range`), which object_store 0.14 requires
/// of every response: the length of the range is added from
/// `Content-Range`. The body is still checked against it (a short or long
/// body is a failed attempt).
fn add_content_length(headers: &mut http::HeaderMap) {
    if headers.contains_key(http::header::CONTENT_LENGTH) {
        return;
    }
    let Some(range) = headers.get(http::header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) else { return };
    let Some(len) = range_length(range) else { return };
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
}

/// The length of `bytes a-b/size` (or `bytes a-b/*`).
fn range_length(content_range: &str) -> Option<u64> {
    let spec = content_range.trim().strip_prefix("bytes ")?;
    let (range, _) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    b.checked_sub(a)?.checked_add(1)
}

/// Why an attempt failed.
enum Failure {
    /// Not worth another attempt (not found, the object changed, 4xx).
    Fatal(FetchError),
    /// Worth another attempt, after the server's `Retry-After` if it gave one.
    Retry { reason: String, timed_out: bool, retry_after: Option<Duration> },
}

/// Why a ranged read failed in the end.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The server has no such object.
    NotFound(String),
    /// The object is not the one opened (size, ETag).
    Changed(String),
    /// Every attempt failed, or one could not be retried; `timed_out`
    /// when the last failure was a stall.
    Failed { message: String, timed_out: bool },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NotFound(m) | FetchError::Changed(m) | FetchError::Failed { message: m, .. } => f.write_str(m),
        }
    }
}

/// What one object_store error means for the retry loop.
fn classify(e: object_store::Error) -> Failure {
    use object_store::Error as E;
    match e {
        E::NotFound { source, .. } => {
            let what = match s3_error(&chain(&*source)) {
                Some(e) if e.code == "NoSuchBucket" => "no such bucket",
                _ => "no such object",
            };
            Failure::Fatal(FetchError::NotFound(what.into()))
        }
        E::Precondition { .. } => {
            Failure::Fatal(FetchError::Changed("the object changed since it was opened (ETag)".into()))
        }
        E::NotSupported { source } => Failure::Fatal(FetchError::Failed {
            message: format!("the server does not serve byte ranges: {source}"),
            timed_out: false,
        }),
        e => {
            // The status (with Retry-After) is the innermost cause, below
            // the client's HttpError wrapping it: look for it first.
            if let Some(s) = find_cause::<ServerError>(&e) {
                if !retryable_status(s.status) {
                    return Failure::Fatal(FetchError::Failed { message: s.to_string(), timed_out: false });
                }
                return Failure::Retry { reason: s.to_string(), timed_out: false, retry_after: s.retry_after };
            }
            if let Some(h) = find_cause::<HttpError>(&e) {
                let timed_out = h.kind() == HttpErrorKind::Timeout;
                let what = if timed_out { "timed out" } else { "connection failed" };
                return Failure::Retry { reason: format!("{what}: {}", chain(h)), timed_out, retry_after: None };
            }
            // A response object_store refused (another range than asked, ...).
            Failure::Retry { reason: e.to_string(), timed_out: false, retry_after: None }
        }
    }
}

/// What an S3 error body says: its code and message (and the bucket it
/// names), read from the XML S3 sends so that the XML itself never reaches
/// a user's message.
#[derive(Debug, PartialEq, Eq)]
pub struct S3Error {
    pub code: String,
    pub message: String,
    pub bucket: Option<String>,
}

/// The S3 error in `text` (an error's message holding S3's XML body), if any.
pub fn s3_error(text: &str) -> Option<S3Error> {
    let tag = |name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_string())
    };
    Some(S3Error { code: tag("Code")?, message: tag("Message").unwrap_or_default(), bucket: tag("BucketName") })
}

/// `text` with an S3 XML error body replaced by its code and message.
pub fn without_s3_xml(text: &str) -> String {
    match (s3_error(text), text.find("<?xml").or_else(|| text.find("<Error>"))) {
        (Some(e), Some(at)) => format!("{}{}: {}", &text[..at], e.code, e.message).trim().to_string(),
        _ => text.to_string(),
    }
}

/// The first error of type `T` among `e` and its causes.
fn find_cause<'a, T: StdError + 'static>(e: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<T>() {
            return Some(found);
        }
        cause = c.source();
    }
    None
}

/// An error and its causes on one line.
fn chain(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Bytes of a ranged GET and what the server said of the object.
pub(crate) struct Fetched {
    /// The object's size and ETag.
    pub meta: ObjectMeta,
    /// Where the bytes start in the object.
    pub start: u64,
    /// The bytes, all of the range.
    pub bytes: Bytes,
}

/// One ranged read with its retries.
pub(crate) struct RangeRead<'a> {
    /// Where the object is.
    pub store: &'a dyn ObjectStore,
    pub path: &'a ObjectPath,
    /// How it is retried.
    pub rules: RetryRules,
    /// The object as opened: a response for another is an error.
    pub expect: Option<(u64, Option<String>)>,
    /// Requests, retries and bytes are counted here.
    pub stats: &'a Stats,
}

/// What arrived so far of a range whose extent the first response told.
struct Progress {
    meta: ObjectMeta,
    start: u64,
    end: u64,
    buf: Vec<u8>,
}

impl RangeRead<'_> {
    /// Read `range`, retried as the rules say.
    pub(crate) async fn run(&self, range: GetRange) -> Result<Fetched, FetchError> {
        let began = Instant::now();
        let attempts = self.rules.retries + 1;
        let mut progress: Option<Progress> = None;
        let mut wait = Duration::ZERO;
        let mut last = String::new();
        let mut timed_out = false;
        for attempt in 1..=attempts {
            if attempt > 1 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
            }
            match self.attempt(&range, &mut progress).await {
                Ok(()) => {
                    let p = progress.take().expect("a completed attempt had a response");
                    return Ok(Fetched { meta: p.meta, start: p.start, bytes: Bytes::from(p.buf) });
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry { reason, timed_out: t, retry_after }) => {
                    last = reason;
                    timed_out = t;
                    if attempt < attempts {
                        wait = self
                            .rules
                            .wait(attempt, retry_after)
                            .map_err(|why| FetchError::Failed { message: format!("{last}; {why}"), timed_out })?;
                    }
                }
            }
        }
        Err(FetchError::Failed {
            message: format!(
                "gave up after {attempts} attempts (1 + {} retries) in {:.1} s; last: {last}",
                self.rules.retries,
                began.elapsed().as_secs_f64()
            ),
            timed_out,
        })
    }

    /// One request: for `range`, or for what is still missing of it.
    async fn attempt(&self, range: &GetRange, progress: &mut Option<Progress>) -> Result<(), Failure> {
        let stall = self.rules.stall_timeout;
        let (asked, etag) = match progress {
            Some(p) => (GetRange::Bounded(p.start + p.buf.len() as u64..p.end), p.meta.e_tag.clone()),
            None => (range.clone(), self.expect.as_ref().and_then(|(_, etag)| etag.clone())),
        };
        let if_match = etag.filter(|e| is_strong(e));
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let options = GetOptions { range: Some(asked), if_match, ..Default::default() };
        let response = match tokio::time::timeout(stall, self.store.get_opts(self.path, options)).await {
            Err(_) => return Err(stalled(format!("no response within {} s (the stall timeout)", secs(stall)))),
            Ok(r) => r.map_err(classify)?,
        };
        let opened = match progress {
            Some(p) => Some((p.meta.size, p.meta.e_tag.clone())),
            None => self.expect.clone(),
        };
        if let Some((size, etag)) = opened {
            if response.meta.size != size || (etag.is_some() && response.meta.e_tag != etag) {
                return Err(Failure::Fatal(FetchError::Changed(
                    "the object changed since it was opened (size or ETag)".into(),
                )));
            }
        }
        if progress.is_none() {
            // As long as the range asked (object_store checks the
            // response's range against it), so bounded by the caller.
            let len = usize::try_from(response.range.end - response.range.start).unwrap_or(usize::MAX);
            let mut buf = Vec::new();
            buf.try_reserve_exact(len).map_err(|_| {
                Failure::Fatal(FetchError::Failed {
                    message: format!("out of memory for {len} bytes"),
                    timed_out: false,
                })
            })?;
            *progress = Some(Progress {
                meta: response.meta.clone(),
                start: response.range.start,
                end: response.range.end,
                buf,
            });
        }
        let p = progress.as_mut().expect("set above");
        let total = (p.end - p.start) as usize;
        let mut body = response.into_stream();
        loop {
            match tokio::time::timeout(stall, body.next()).await {
                Err(_) => {
                    return Err(stalled(format!(
                        "the response stalled: no bytes for {} s (the stall timeout) after {} of {total} bytes",
                        secs(stall),
                        p.buf.len()
                    )))
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(classify(e)),
                Ok(Some(Ok(chunk))) => {
                    self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if chunk.len() > total - p.buf.len() {
                        *progress = None;
                        return Err(retry("the response is longer than the range asked".into()));
                    }
                    p.buf.extend_from_slice(&chunk);
                }
            }
        }
        if p.buf.len() < total {
            return Err(retry(format!("short response: {} of {total} bytes", p.buf.len())));
        }
        Ok(())
    }
}

/// Whether `etag` is a strong ETag. `If-Match` is sent with strong ones
/// only: RFC 9110 compares `If-Match` strongly, so a server that follows
/// it answers 412 to a weak ETag (`W/"..."`) even for the same object.
/// Every response's ETag is still compared with the one seen at open, so
/// a changed object is caught either way.
pub(crate) fn is_strong(etag: &str) -> bool {
    !etag.starts_with("W/")
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

fn retry(reason: String) -> Failure {
    Failure::Retry { reason, timed_out: false, retry_after: None }
}

fn stalled(reason: String) -> Failure {
    Failure::Retry { reason: format!("timed out: {reason}"), timed_out: true, retry_after: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RetryRules {
        RetryRules { retries: 4, stall_timeout: Duration::from_secs(15), max_retry_after: Duration::from_secs(30) }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_retry_after_wins() {
        let r = rules();
        let waits: Vec<_> = (1..=6).map(|a| r.wait(a, None).unwrap().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000]);
        assert_eq!(r.wait(1, Some(Duration::from_secs(7))).unwrap(), Duration::from_secs(7));
        assert_eq!(r.wait(3, Some(Duration::ZERO)).unwrap(), Duration::ZERO);
        let refused = r.wait(1, Some(Duration::from_secs(31))).unwrap_err();
        assert!(refused.contains("31 s") && refused.contains("30 s"), "{refused}");
        assert_eq!(r.wait(usize::MAX, None).unwrap(), BACKOFF_MAX);
    }

    #[test]
    fn the_give_up_bound_is_attempts_times_the_stall_timeout_plus_the_waits() {
        assert_eq!(rules().give_up_bound(), Duration::from_secs(5 * 15 + 4 * 30));
        let none = RetryRules { retries: 0, ..rules() };
        assert_eq!(none.give_up_bound(), Duration::from_secs(15));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822().replace("+0000", "GMT");
        let wait = parse_retry_after(&soon).unwrap();
        assert!(wait > Duration::from_secs(80) && wait <= Duration::from_secs(90), "{wait:?} from {soon}");
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO), "a date gone by");
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn s3_xml_is_read_not_shown() {
        let text = "Error performing POST http://h/b/k?uploads= - Server returned non-2xx status code: 404 \
                    Not Found: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message><BucketName>b</BucketName>\
                    <RequestId>X</RequestId></Error>";
        let e = s3_error(text).unwrap();
        assert_eq!((e.code.as_str(), e.bucket.as_deref()), ("NoSuchBucket", Some("b")));
        let clean = without_s3_xml(text);
        assert!(clean.ends_with("404 Not Found: NoSuchBucket: The specified bucket does not exist"), "{clean}");
        assert!(!clean.contains('<'), "{clean}");
        assert_eq!(without_s3_xml("plain"), "plain");
    }

    #[test]
    fn a_chunked_206_gets_its_length_from_content_range() {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_RANGE, http::HeaderValue::from_static("bytes 10-19/100"));
        add_content_length(&mut h);
        assert_eq!(h.get(http::header::CONTENT_LENGTH).unwrap(), "10");
        assert_eq!(range_length("bytes 0-0/*"), Some(1));
        for bad in ["bytes 9-3/10", "items 0-1/2", "bytes x-1/2", "bytes 0-1"] {
            assert_eq!(range_length(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_strong_etags_are_sent_in_if_match() {
        assert!(is_strong("\"abc\""));
        assert!(!is_strong("W/\"abc\""));
    }

    #[test]
    fn failing_statuses_read_as_such() {
        let e = ServerError {
            status: 503,
            retry_after: Some(Duration::from_secs(2)),
            body: "<Code>SlowDown</Code>".into(),
        };
        assert_eq!(e.to_string(), "HTTP 503 Service Unavailable (Retry-After: 2 s): <Code>SlowDown</Code>");
        assert!(retryable_status(500) && retryable_status(503) && retryable_status(429) && retryable_status(408));
        assert!(!retryable_status(403) && !retryable_status(400) && !retryable_status(416));
    }
}
