//! URLs (`s3://`, `http(s)://`) as archives, parents and destinations:
//! through hexz-remote when built with the `remote` feature (the default),
//! refused with a clear error when built without it (no tokio, reqwest or
//! rustls: the cross builds of `scripts/cross-test.sh`'s quick mode).

use std::path::PathBuf;
use std::sync::Arc;

use hexz_io::{OpenOptions, SinkResolver};

use crate::util::CliError;

#[cfg(feature = "remote")]
pub use with_remote::*;
#[cfg(not(feature = "remote"))]
pub use without_remote::*;

#[cfg(feature = "remote")]
mod with_remote {
    use super::*;

    /// Remote options from the environment: `HEXZ_CACHE_BYTES` (bytes of
    /// fetched ranges kept), `HEXZ_TIMEOUT_SECS` (the stall timeout: longest
    /// wait for a response to start or for its next bytes), `HEXZ_RETRIES`
    /// (requests after the first for one range), `HEXZ_CACHE_DIR` and
    /// `HEXZ_CACHE_MAX_BYTES` (the block cache, unless the flags say); S3 endpoint, region and
    /// credentials come from the standard AWS variables.
    fn remote_options() -> hexz_remote::RemoteOptions {
        let mut o = hexz_remote::RemoteOptions::default();
        let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        if let Some(n) = num("HEXZ_CACHE_BYTES") {
            o.cache_bytes = n as usize;
        }
        if let Some(n) = num("HEXZ_TIMEOUT_SECS") {
            o.stall_timeout = std::time::Duration::from_secs(n.max(1));
        }
        if let Some(n) = num("HEXZ_RETRIES") {
            o.retries = n as usize;
        }
        if let Some((dir, max)) = crate::util::cache_flags() {
            if let Some(dir) = dir {
                o.block_cache.dir = dir.as_deref().and_then(hexz_remote::diskcache::dir_setting);
            }
            if let Some(max) = max {
                o.block_cache.max_bytes = *max;
            }
        }
        o
    }

    /// Open options whose resolver reads URLs remotely and paths locally.
    pub fn open_options() -> OpenOptions {
        hexz_remote::open_options(remote_options())
    }

    /// Destinations: URLs uploaded, paths written locally.
    pub fn store_sinks() -> Arc<dyn SinkResolver> {
        hexz_remote::store_sinks(remote_options())
    }

    /// The objects named `*.hxz` under a URL prefix.
    pub fn list(prefix: &str) -> Result<Vec<PathBuf>, CliError> {
        Ok(hexz_remote::list(prefix, &remote_options())?.into_iter().map(|(u, _)| PathBuf::from(u)).collect())
    }

    /// On SIGINT or SIGTERM: abort the multipart uploads under way.
    pub fn abort_unfinished_uploads() {
        hexz_remote::abort_unfinished_uploads();
    }

    /// `--cache-max`: bytes, or with a K, M, G or T suffix.
    pub fn parse_cache_max(text: &str) -> Result<u64, String> {
        hexz_remote::diskcache::parse_size(text)
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("not a size: {text} (bytes, or with K, M, G or T)"))
    }
}

#[cfg(not(feature = "remote"))]
mod without_remote {
    use super::*;
    use hexz_format::ErrorCode;
    use hexz_io::{LocalResolver, LocalSinkResolver, Location, Resolver, Sink, SinkOptions, Source};

    const WITHOUT_REMOTE: &str =
        "this hexz was built without remote support (cargo feature `remote`): URLs cannot be opened or written";

    /// Opens paths; refuses URLs, naming the missing feature.
    struct NoRemote;

    impl Resolver for NoRemote {
        fn open(&self, location: &Location) -> hexz_io::Result<Source> {
            match location {
                Location::Url(u) => Err(hexz_io::Error::refused(u.clone(), WITHOUT_REMOTE, ErrorCode::Unsupported)),
                other => LocalResolver.open(other),
            }
        }
    }

    impl SinkResolver for NoRemote {
        fn create(&self, dst: &Location, opts: &SinkOptions) -> hexz_io::Result<Box<dyn Sink>> {
            match dst {
                Location::Url(u) => Err(hexz_io::Error::refused(u.clone(), WITHOUT_REMOTE, ErrorCode::Unsupported)),
                other => LocalSinkResolver.create(other, opts),
            }
        }
    }

    /// Open options that read local paths and refuse URLs.
    pub fn open_options() -> OpenOptions {
        OpenOptions { resolver: Arc::new(NoRemote), ..OpenOptions::default() }
    }

    /// Destinations: local paths; URLs refused.
    pub fn store_sinks() -> Arc<dyn SinkResolver> {
        Arc::new(NoRemote)
    }

    /// Listing a URL prefix: refused.
    pub fn list(prefix: &str) -> Result<Vec<PathBuf>, CliError> {
        Err(hexz_io::Error::refused(prefix, WITHOUT_REMOTE, ErrorCode::Unsupported).into())
    }

    /// No uploads without remote support.
    pub fn abort_unfinished_uploads() {}

    /// `--cache-max`: accepted (bytes, or with a K, M or G suffix) and
    /// without effect: a build without remote support caches no remote
    /// blocks.
    pub fn parse_cache_max(text: &str) -> Result<u64, String> {
        crate::util::parse_size(text)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("not a size: {text} (bytes, or with K, M or G)"))
    }
}
