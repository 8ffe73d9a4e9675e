//! Opening an archive with its parent chain. Parents are named by identity
//! and found by hint: archives the caller attached come first (matched by
//! identity), then the hint beside the child, then the hint and its file
//! name in each search location. A candidate is accepted only when its
//! identity matches. When none does, the error names the expected identity
//! and every place tried, and a candidate that exists but cannot be opened
//! reports its own error rather than "not found".

use std::collections::HashSet;
use std::sync::Arc;

use hexz_format::error::Hex32;
use hexz_format::layout::limits::MAX_CHAIN_DEPTH;
use hexz_format::{Archive, ErrorCode, OpenLimits};

use crate::error::{Error, Result};
use crate::location::{FileSource, Location, Source};

/// Opens the archives a chain names. The local resolver opens paths; a
/// remote resolver (hexz-remote) opens URLs and hands paths to this one.
pub trait Resolver: Send + Sync {
    /// Open the bytes at `location`.
    fn open(&self, location: &Location) -> Result<Source>;
}

/// Opens local paths; URLs need a remote-capable resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalResolver;

impl Resolver for LocalResolver {
    fn open(&self, location: &Location) -> Result<Source> {
        match location {
            Location::Path(p) => Ok(Arc::new(FileSource::open(p)?)),
            Location::Url(u) => Err(Error::refused(
                u.clone(),
                "remote archives need a build with remote support (hexz-remote)",
                ErrorCode::Unsupported,
            )),
            Location::Label(l) => {
                Err(Error::refused(l.clone(), "not a place archives can be opened from", ErrorCode::NotFound))
            }
        }
    }
}

/// How to open an archive and its chain, and how to read it.
#[derive(Clone)]
pub struct OpenOptions {
    /// Extra places to look for parents that were moved.
    pub search: Vec<Location>,
    /// Archives already open (from any source) that the chain may use;
    /// matched by identity before any location is tried.
    pub attached: Vec<Arc<Archive<Source>>>,
    /// Who opens the archive and its parents (default: local paths only).
    pub resolver: Arc<dyn Resolver>,
    /// Caps on what opening an archive may allocate.
    pub limits: OpenLimits,
    /// Check every decoded block's BLAKE3 (default: yes).
    pub verify_hashes: bool,
    /// Reads that may run at once on a [`Reader`](crate::Reader); 0 means 4.
    pub read_slots: usize,
    /// Bytes of read scratch a Reader may hold in all; it runs fewer
    /// slots to stay inside it (at least one).
    pub memory_budget: usize,
    /// Keys the archive must be signed by (any one of them). Empty: no
    /// signature is required (a signed archive still opens). Not empty:
    /// the archive is refused at open, before any byte is returned, unless
    /// one of its signatures is by one of these keys and matches its
    /// identity, which commits to every block, page, the manifest and the
    /// parent's identity (spec section 15). Parents need no signature of
    /// their own: the signed identity pins them.
    pub trusted_keys: Vec<hexz_format::signature::PublicKey>,
    /// Keys for encrypted archives (format 1.5): identities and
    /// passphrases. `None`: an encrypted archive is refused (key required).
    pub keys: Option<Arc<crate::keys::Keychain>>,
}

/// Open one archive with the options' keys, if any.
pub(crate) fn open_archive(source: Source, opts: &OpenOptions) -> hexz_format::Result<Archive<Source>> {
    match &opts.keys {
        Some(keys) => Archive::open_unlocked(source, &opts.limits, keys.as_ref()),
        None => Archive::open_with(source, &opts.limits),
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            search: Vec::new(),
            attached: Vec::new(),
            resolver: Arc::new(LocalResolver),
            limits: OpenLimits::default(),
            verify_hashes: true,
            read_slots: 0,
            memory_budget: 256 << 20,
            trusted_keys: Vec::new(),
            keys: None,
        }
    }
}

impl std::fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("search", &self.search)
            .field("attached", &self.attached.len())
            .field("limits", &self.limits)
            .field("verify_hashes", &self.verify_hashes)
            .field("read_slots", &self.read_slots)
            .field("memory_budget", &self.memory_budget)
            .field("trusted_keys", &self.trusted_keys.len())
            .finish()
    }
}

/// An archive with its ancestors attached, and where each chain member is
/// (`locations[0]` is the archive itself).
pub struct Chain {
    /// The archive, its ancestors attached.
    pub archive: Archive<Source>,
    /// Where each member is.
    pub locations: Vec<Location>,
}

/// Open `location` (through the options' resolver) and its whole chain.
pub fn open_chain(location: &Location, opts: &OpenOptions) -> Result<Chain> {
    let source = opts.resolver.open(location)?;
    open_chain_from(location, source, opts)
}

/// Open the archive in `source` (found at `location`, which names it in
/// errors and anchors its parent hint) and its whole chain.
pub fn open_chain_from(location: &Location, source: Source, opts: &OpenOptions) -> Result<Chain> {
    let at = |location: &Location| {
        let location = location.clone();
        move |source| Error::At { location, source }
    };
    if !opts.trusted_keys.is_empty() && !opts.verify_hashes {
        // The signature authenticates blocks through their hashes.
        return Err(Error::invalid("a trusted key needs block hash checks on (verify_hashes)"));
    }
    let root = open_archive(source, opts).map_err(at(location))?;
    if !opts.trusted_keys.is_empty() {
        root.check_signature(&opts.trusted_keys).map_err(at(location))?;
    }
    let mut seen = HashSet::from([root.identity()]);
    let mut locations = vec![location.clone()];
    let mut ancestors: Vec<Archive<Source>> = Vec::new();
    let mut parent = root.parent_ref().map_err(at(location))?;
    let mut child = location.clone();
    while let Some(p) = parent {
        if ancestors.len() + 1 >= usize::from(MAX_CHAIN_DEPTH) {
            return Err(Error::At {
                location: location.clone(),
                source: hexz_format::Error::ChainTooDeep { limit: MAX_CHAIN_DEPTH },
            });
        }
        let (archive, found_at) = find_parent(&child, &p.hint, p.identity, opts)?;
        // Identities commit to their parent's identity, so a loop cannot be
        // built on purpose; this guards against a BLAKE3 collision only.
        if !seen.insert(archive.identity()) {
            return Err(Error::At { location: found_at, source: hexz_format::Error::ChainCycle });
        }
        parent = archive.parent_ref().map_err(at(&found_at))?;
        child = found_at.clone();
        locations.push(found_at);
        ancestors.push(archive);
    }
    let mut archive = root.with_ancestors(ancestors).map_err(at(location))?;
    archive.set_verify_hashes(opts.verify_hashes);
    Ok(Chain { archive, locations })
}

fn find_parent(
    child: &Location,
    hint: &str,
    expected: [u8; 32],
    opts: &OpenOptions,
) -> Result<(Archive<Source>, Location)> {
    for attached in &opts.attached {
        let members = std::iter::once(&**attached).chain(attached.ancestors());
        if let Some(found) = members.into_iter().find(|a| a.identity() == expected) {
            return Ok((found.detached(), Location::Url(format!("(attached archive {})", Hex32(expected)))));
        }
    }
    let mut candidates: Vec<Location> = child.sibling(hint).into_iter().collect();
    let name = std::path::Path::new(hint).file_name().map(|n| n.to_string_lossy().into_owned());
    for dir in &opts.search {
        candidates.push(dir.join(hint));
        if let Some(name) = &name {
            candidates.push(dir.join(name));
        }
    }
    let mut tried = Vec::new();
    let mut other_archive = None;
    let mut broken = None;
    for candidate in candidates {
        if tried.contains(&candidate) {
            continue;
        }
        tried.push(candidate.clone());
        let source = match opts.resolver.open(&candidate) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                broken.get_or_insert(e);
                continue;
            }
        };
        match open_archive(source, opts) {
            Ok(a) if a.identity() == expected => return Ok((a, candidate)),
            Ok(a) => {
                other_archive.get_or_insert(Error::At {
                    location: candidate.clone(),
                    source: hexz_format::Error::ParentMismatch {
                        expected: Hex32(expected),
                        found: Hex32(a.identity()),
                        path: candidate.to_string(),
                    },
                });
            }
            Err(e) => {
                broken.get_or_insert(Error::At { location: candidate.clone(), source: e });
            }
        }
    }
    // A broken file where the parent should be says more than "not found".
    if let Some(e) = broken.or(other_archive) {
        return Err(e);
    }
    let tried: Vec<String> = tried.iter().map(ToString::to_string).collect();
    Err(Error::At {
        location: child.clone(),
        source: hexz_format::Error::ParentNotFound { expected: Hex32(expected), tried: tried.join(", ") },
    })
}
