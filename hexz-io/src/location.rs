//! Where archives are: a local path or a URL, and the file source that
//! reads local ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hexz_format::{ErrorCode, ReadAt};

use crate::error::{Error, Result};

/// A byte source shared between threads: a file, memory, a callback, a
/// remote object.
pub type Source = Arc<dyn ReadAt + Send + Sync>;

/// Where an archive is: a local path, or a URL (`s3://`, `http://`,
/// `https://`) that a remote-capable [`Resolver`](crate::Resolver) opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// A local path.
    Path(PathBuf),
    /// A URL (`s3://`, `http://`, `https://`).
    Url(String),
    /// A source with no place of its own (memory, a callback): only
    /// attached archives and search locations can supply its parents.
    Label(String),
}

impl Location {
    /// A path, or a URL when `text` starts with a URL scheme (`s3://`,
    /// `https://`, ...; one a resolver cannot read is refused by it, not
    /// taken for a local path).
    pub fn parse(text: &str) -> Location {
        let is_url = text.split_once("://").is_some_and(|(scheme, _)| {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        });
        if is_url {
            Location::Url(text.to_string())
        } else {
            Location::Path(PathBuf::from(text))
        }
    }

    /// The local path, if this is one.
    pub fn as_path(&self) -> Option<&Path> {
        match self {
            Location::Path(p) => Some(p),
            Location::Url(_) | Location::Label(_) => None,
        }
    }

    /// `hint` (a relative path with `/` separators, spec section 9) taken
    /// from the folder this location is in.
    pub fn sibling(&self, hint: &str) -> Option<Location> {
        Some(match self {
            Location::Label(_) => return None,
            Location::Path(p) => {
                let dir = p.parent().unwrap_or(Path::new(""));
                Location::Path(dir.join(hint))
            }
            Location::Url(u) => {
                let dir = match u.rfind('/') {
                    Some(i) if i >= u.find("://").map_or(0, |s| s + 3) => &u[..i],
                    _ => u.as_str(),
                };
                Location::Url(join_url(dir, hint))
            }
        })
    }

    /// `rel` inside this location taken as a folder.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Path(p) => Location::Path(p.join(rel)),
            Location::Url(u) => Location::Url(join_url(u.trim_end_matches('/'), rel)),
            Location::Label(l) => Location::Label(format!("{l}/{rel}")),
        }
    }

    /// The last component's name.
    pub fn file_name(&self) -> Option<String> {
        match self {
            Location::Path(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Location::Url(u) => u.rsplit('/').next().filter(|n| !n.is_empty()).map(str::to_string),
            Location::Label(_) => None,
        }
    }
}

/// `rel` (with `..` and `.` segments) under the URL folder `dir`.
fn join_url(dir: &str, rel: &str) -> String {
    let root_end = dir.find("://").map_or(0, |s| s + 3);
    let root_end = dir[root_end..].find('/').map_or(dir.len(), |i| root_end + i);
    let (root, path) = dir.split_at(root_end);
    let mut parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = root.to_string();
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) | Location::Label(u) => f.write_str(u),
        }
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Self {
        Location::Path(p.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Self {
        Location::Path(p)
    }
}

impl From<&PathBuf> for Location {
    fn from(p: &PathBuf) -> Self {
        Location::Path(p.clone())
    }
}

/// Device and inode of a file (Windows: volume serial number and file
/// index): what "the same file" means when a command must not write over
/// its own inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// The device.
    pub dev: u64,
    /// The inode.
    pub ino: u64,
}

impl FileId {
    /// The identity of an open file.
    pub fn of(file: &std::fs::File) -> Option<FileId> {
        crate::platform::file_id(file)
    }

    /// The identity of the file at `path` (following symlinks), if it
    /// exists. Never opens it on Unix (a FIFO would block).
    pub fn of_path(path: &Path) -> Option<FileId> {
        crate::platform::file_id_of_path(path)
    }
}

/// What a regular file looked like when it was opened: a store checks it
/// again at the end, as tar warns "file changed as we read it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Device and inode, where the platform has them.
    pub id: Option<FileId>,
    /// Length in bytes.
    pub len: u64,
    /// Last modification time, where the file system keeps it.
    pub modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata, id: Option<FileId>) -> FileStamp {
        FileStamp { id, len: meta.len(), modified: meta.modified().ok() }
    }
}

/// A local file read with positioned reads; its length is taken at open.
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    path: PathBuf,
    stamp: FileStamp,
}

impl FileSource {
    /// Open `path` for reading. Never blocks on a FIFO: the file is opened
    /// non-blocking and must be a regular file (O_NONBLOCK does nothing to
    /// reads of regular files, so it stays set).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut options = std::fs::OpenOptions::new();
        options.read(true);
        crate::platform::no_block_on_open(&mut options);
        let file = options.open(path).map_err(|e| Error::file(path, "open", e))?;
        let meta = file.metadata().map_err(|e| Error::file(path, "stat", e))?;
        if !meta.is_file() {
            let what = if meta.is_dir() { "is a directory" } else { "is not a regular file" };
            return Err(Error::refused(path, what, ErrorCode::InvalidArgument));
        }
        let stamp = FileStamp::of(&meta, FileId::of(&file));
        Ok(FileSource { file, path: path.to_path_buf(), stamp })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Identity, length and modification time at open.
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Fail when the file changed since it was opened (size, time or inode).
    pub fn check_unchanged(&self) -> Result<()> {
        let now = std::fs::metadata(&self.path).map_err(|e| Error::file(&self.path, "stat", e))?;
        if FileStamp::of(&now, FileId::of_path(&self.path)) != self.stamp {
            return Err(Error::refused(
                &self.path,
                "file changed as we read it (size, modification time or inode differ); nothing was written",
                ErrorCode::Io,
            ));
        }
        Ok(())
    }
}

impl ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.stamp.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        hexz_format::source::checked_end("read", offset, buf.len(), self.stamp.len)?;
        crate::platform::read_exact_at(&self.file, buf, offset).map_err(|e| hexz_format::Error::from_io(offset, e))
    }
}

/// A source that counts the reads made of it and their bytes: what a
/// front end reports as I/O statistics (each read is a syscall locally, a
/// round trip remotely).
pub struct CountingSource<S> {
    inner: S,
    reads: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl<S> CountingSource<S> {
    /// Count the reads of `inner`.
    pub fn new(inner: S) -> Self {
        CountingSource { inner, reads: Default::default(), bytes: Default::default() }
    }

    /// (reads, bytes) so far.
    pub fn totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.reads.load(Relaxed), self.bytes.load(Relaxed))
    }
}

impl<S: ReadAt> ReadAt for CountingSource<S> {
    fn len(&self) -> u64 {
        self.inner.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        self.reads.fetch_add(1, Relaxed);
        self.bytes.fetch_add(buf.len() as u64, Relaxed);
        self.inner.read_exact_at(offset, buf)
    }

    fn discard_cached(&self) -> bool {
        self.inner.discard_cached()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_resolve_hints_like_paths() {
        let child = Location::parse("s3://bucket/models/ft.hxz");
        assert_eq!(child.sibling("base.hxz"), Some(Location::Url("s3://bucket/models/base.hxz".into())));
        assert_eq!(child.sibling("../bases/b.hxz"), Some(Location::Url("s3://bucket/bases/b.hxz".into())));
        assert_eq!(Location::parse("http://h:8/x/").join("y/z.hxz"), Location::Url("http://h:8/x/y/z.hxz".into()));
        let local = Location::parse("a/b/ft.hxz");
        assert_eq!(local.sibling("base.hxz"), Some(Location::Path(PathBuf::from("a/b/base.hxz"))));
        assert_eq!(Location::Label("memory".into()).sibling("base.hxz"), None);
        assert_eq!(child.file_name().as_deref(), Some("ft.hxz"));
    }
}
