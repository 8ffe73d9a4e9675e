//! Where results go, written so that nothing is lost or left looking valid:
//!
//! - a regular file is written under a hidden temporary name in the same
//!   folder, flushed to disk and renamed into place only when complete;
//!   without `force` the rename refuses to replace a file that appeared
//!   meanwhile (`renameat2(RENAME_NOREPLACE)`, or link and unlink), so of
//!   two writers racing to a new name exactly one wins;
//! - an existing destination that is not a regular file (a terminal, a
//!   FIFO, `/dev/null`) is opened and written in order, never replaced;
//! - `-` is standard output;
//! - a destination that is one of the command's inputs (same device and
//!   inode) is refused.
//!
//! Temporaries are registered so a signal handler can remove them
//! ([`remove_registered_temporaries`]); those of killed processes are
//! found by [`stale_temporaries`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hexz_format::ErrorCode;

use crate::error::{Error, Result};
use crate::location::FileId;
use crate::reader::RangeSink;

/// Temporaries alive in this process, for signal cleanup.
static LIVE_TEMPORARIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove every temporary this process is writing (from a signal handler
/// thread, before exiting): files, and folders being extracted. Commits
/// hold the same lock while they rename.
pub fn remove_registered_temporaries() {
    let live = LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner());
    for path in live.iter() {
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            let _ = std::fs::remove_dir_all(path);
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn register(path: &Path) {
    LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner()).push(path.to_path_buf());
}

/// Register a temporary (a folder being extracted) for signal cleanup.
pub(crate) fn register_temporary(path: &Path) {
    register(path);
}

/// Forget a temporary registered with [`register_temporary`].
pub(crate) fn unregister_temporary(path: &Path) {
    unregister_locked(&mut LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner()), path);
}

fn unregister_locked(live: &mut Vec<PathBuf>, path: &Path) {
    live.retain(|p| p != path);
}

/// The prefix of temporaries for `name`: `.NAME.hexz-tmp-PID-`.
fn temp_prefix(name: &str, pid: u32) -> String {
    format!(".{name}.hexz-tmp-{pid}-")
}

/// Temporaries in `dir` left by hexz processes that are gone (Linux:
/// `/proc/PID` absent), with the name they were for. A live process keeps
/// its files.
pub fn stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(at) = name.find(".hexz-tmp-") else { continue };
        if !name.starts_with('.') {
            continue;
        }
        let rest = &name[at + ".hexz-tmp-".len()..];
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            stale.push(entry.path());
        }
    }
    stale.sort();
    stale
}

/// Remove the stale temporaries in `dir`; returns what was removed.
pub fn remove_stale_temporaries(dir: &Path) -> Vec<PathBuf> {
    stale_temporaries(dir)
        .into_iter()
        .filter(|p| {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(p).is_ok()
            } else {
                std::fs::remove_file(p).is_ok()
            }
        })
        .collect()
}

/// A file being written under a temporary name next to its destination;
/// removed when dropped without [`commit`](Self::commit).
pub struct AtomicFile {
    temp: Option<tempfile::NamedTempFile>,
    path: PathBuf,
    dst: PathBuf,
    force: bool,
}

impl AtomicFile {
    /// Create the temporary for `dst`, first removing temporaries for the
    /// same folder left by killed writers.
    pub fn create(dst: &Path, force: bool) -> Result<Self> {
        let dir = match dst.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dst.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        remove_stale_temporaries(dir);
        let mut builder = tempfile::Builder::new();
        let prefix = temp_prefix(&name, std::process::id());
        builder.prefix(&prefix);
        crate::platform::new_file_permissions(&mut builder);
        let temp = builder.tempfile_in(dir).map_err(|e| Error::file(dst, "create", e))?;
        let path = temp.path().to_path_buf();
        register(&path);
        Ok(AtomicFile { temp: Some(temp), path, dst: dst.to_path_buf(), force })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.temp.as_ref().expect("open until commit").as_file()
    }

    /// The destination.
    pub fn destination(&self) -> &Path {
        &self.dst
    }

    /// Flush to disk and rename onto the destination: replacing it with
    /// `force`, refusing when it exists otherwise.
    pub fn commit(mut self) -> Result<()> {
        let temp = self.temp.take().expect("committed once");
        temp.as_file().sync_all().map_err(|e| Error::file(&self.dst, "flush to disk", e))?;
        let mut live = LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner());
        let persisted = if self.force { temp.persist(&self.dst) } else { temp.persist_noclobber(&self.dst) };
        unregister_locked(&mut live, &self.path);
        drop(live);
        if let Err(e) = persisted {
            // The temporary is removed when `e.file` drops.
            return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::refused(
                    &self.dst,
                    "already exists (another process created it meanwhile); nothing replaced",
                    ErrorCode::InvalidArgument,
                )
            } else {
                Error::file(&self.dst, "rename into place", e.error)
            });
        }
        if let Some(dir) = self.dst.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.temp.is_some() {
            let mut live = LIVE_TEMPORARIES.lock().unwrap_or_else(|p| p.into_inner());
            // NamedTempFile removes the file as it drops.
            self.temp = None;
            unregister_locked(&mut live, &self.path);
        }
    }
}

/// A destination ready to be written.
pub enum Output {
    /// A regular file, written atomically.
    File(AtomicFile),
    /// An existing non-regular file (device, FIFO, terminal), written in order.
    Stream {
        /// The open file.
        file: File,
        /// Its path, for messages.
        path: PathBuf,
    },
    /// Standard output.
    Stdout,
}

/// How to open a destination.
#[derive(Debug, Clone, Default)]
pub struct OutputOptions {
    /// Replace an existing regular file (or symlink).
    pub force: bool,
    /// Files the command reads: the destination must not be one of them.
    pub inputs: Vec<(FileId, String)>,
}

impl Output {
    /// Open `path` (`-` for standard output) as a destination.
    pub fn open(path: &Path, opts: &OutputOptions) -> Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output::Stdout);
        }
        let link = std::fs::symlink_metadata(path);
        let target = std::fs::metadata(path);
        if let Some(id) = target.as_ref().ok().and_then(|_| FileId::of_path(path)) {
            if let Some((_, what)) = opts.inputs.iter().find(|(input, _)| *input == id) {
                return Err(Error::refused(
                    path,
                    format!("is {what}; refusing to overwrite an input"),
                    ErrorCode::InvalidArgument,
                ));
            }
        }
        match (&link, &target) {
            (Err(_), _) => Ok(Output::File(AtomicFile::create(path, opts.force)?)),
            (Ok(_), Ok(meta)) if meta.is_dir() => {
                Err(Error::refused(path, "is a directory", ErrorCode::InvalidArgument))
            }
            (Ok(_), Ok(meta)) if !meta.is_file() => {
                // A device, FIFO or terminal: write into it, never replace it.
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::file(path, "open for writing", e))?;
                Ok(Output::Stream { file, path: path.to_path_buf() })
            }
            // A regular file, or a symlink (dangling ones count as existing).
            (Ok(_), _) if !opts.force => {
                Err(Error::refused(path, "already exists (use --force to replace it)", ErrorCode::InvalidArgument))
            }
            (Ok(_), _) => Ok(Output::File(AtomicFile::create(path, true)?)),
        }
    }

    /// Where the bytes go, for messages.
    pub fn name(&self) -> String {
        match self {
            Output::File(f) => f.destination().display().to_string(),
            Output::Stream { path, .. } => path.display().to_string(),
            Output::Stdout => "standard output".into(),
        }
    }

    /// A sink for parallel reads: positioned and sparse for regular files,
    /// ordered otherwise.
    pub fn sink(&self) -> OutputSink<'_> {
        match self {
            Output::File(f) => OutputSink::Positioned { file: f.file(), path: f.destination(), end: Mutex::new(0) },
            Output::Stream { file, path } => OutputSink::Ordered {
                out: Mutex::new(Box::new(std::io::BufWriter::with_capacity(1 << 20, file))),
                path: path.clone(),
            },
            Output::Stdout => OutputSink::Ordered {
                out: Mutex::new(Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()))),
                path: PathBuf::from("standard output"),
            },
        }
    }

    /// A sequential writer (archives being stored).
    pub fn writer(&self) -> Box<dyn Write + '_> {
        match self {
            Output::File(f) => {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, WritebackFile { file: f.file(), at: 0, kicked: 0 }))
            }
            Output::Stream { file, .. } => Box::new(std::io::BufWriter::with_capacity(1 << 20, file)),
            Output::Stdout => Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout())),
        }
    }

    /// Write `bytes` over the first bytes written (an archive's final
    /// header, once the sequential writer is flushed and dropped). A file
    /// gets them; a stream keeps what it was given.
    pub fn rewrite_start(&self, bytes: &[u8]) -> Result<()> {
        match self {
            Output::File(f) => write_all_at(f.file(), bytes, 0).map_err(|e| Error::file(f.destination(), "write", e)),
            Output::Stream { .. } | Output::Stdout => Ok(()),
        }
    }

    /// Finish: rename a file into place; nothing else to do for streams.
    pub fn commit(self) -> Result<()> {
        match self {
            Output::File(f) => f.commit(),
            Output::Stream { .. } | Output::Stdout => Ok(()),
        }
    }
}

/// Start writeback every this many bytes of a sequentially written file.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A file written in order that starts writeback behind itself.
struct WritebackFile<'a> {
    file: &'a File,
    at: u64,
    kicked: u64,
}

impl Write for WritebackFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&*self.file).write(buf)?;
        self.at += n as u64;
        if self.at - self.kicked >= WRITEBACK_EVERY {
            start_writeback(self.file, self.kicked, self.at - self.kicked);
            self.kicked = self.at;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.file).flush()
    }
}

/// Where a parallel read writes an [`Output`].
pub enum OutputSink<'a> {
    /// Positioned writes; runs of zeros are skipped (left as holes) and
    /// the length set at the end by [`finish`](Self::finish).
    Positioned {
        /// The file written.
        file: &'a File,
        /// Its path, for messages.
        path: &'a Path,
        /// The end of the furthest write so far.
        end: Mutex<u64>,
    },
    /// In order, through a buffer.
    Ordered {
        /// The buffered stream.
        out: Mutex<Box<dyn Write + Send + 'a>>,
        /// Its name, for messages.
        path: PathBuf,
    },
}

/// Zero runs this long or longer are left as holes in regular files.
const HOLE: usize = 64 << 10;

impl OutputSink<'_> {
    /// Flush; for files, set the length (a trailing hole has no bytes
    /// written). A closed pipe is not an error (`| head`).
    pub fn finish(&self, length: u64) -> Result<()> {
        match self {
            OutputSink::Positioned { file, path, .. } => {
                file.set_len(length).map_err(|e| Error::file(*path, "set length", e))
            }
            OutputSink::Ordered { out, path } => match out.lock().unwrap_or_else(|p| p.into_inner()).flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::file(path, "write", e)),
                _ => Ok(()),
            },
        }
    }
}

impl RangeSink for OutputSink<'_> {
    fn ordered(&self) -> bool {
        matches!(self, OutputSink::Ordered { .. })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        match self {
            OutputSink::Positioned { file, path, end } => {
                for (i, piece) in data.chunks(HOLE).enumerate() {
                    if piece.len() == HOLE && piece.iter().all(|&b| b == 0) {
                        continue;
                    }
                    let at = offset + (i * HOLE) as u64;
                    write_all_at(file, piece, at).map_err(|e| Error::file(*path, "write", e))?;
                }
                start_writeback(file, offset, data.len() as u64);
                let mut end = end.lock().unwrap_or_else(|p| p.into_inner());
                *end = (*end).max(offset + data.len() as u64);
                Ok(())
            }
            OutputSink::Ordered { out, path } => match out.lock().unwrap_or_else(|p| p.into_inner()).write_all(data) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                    Err(Error::refused(path, "closed by the reader", ErrorCode::Cancelled))
                }
                Err(e) => Err(Error::file(path, "write", e)),
                Ok(()) => Ok(()),
            },
        }
    }
}

use crate::platform::start_writeback;
pub(crate) use crate::platform::write_all_at;

/// `target` relative to the folder `from_dir`, with `/` separators: the
/// parent hint a child records (spec section 9).
pub fn relative_path(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let from = abs(from_dir);
    let to = abs(target);
    let from_parts: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from_parts.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); from_parts.len() - common];
    parts.extend(to_parts[common..].iter().map(|p| p.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}
