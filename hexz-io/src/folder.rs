//! Folder archives (format 1.1): a checkpoint folder stored as one archive
//! whose virtual space is its files laid end to end, in path order.
//!
//! Storing walks the tree (sorted, so the archive is reproducible), plans
//! each file from its own bytes (tensors of every safetensors and GGUF
//! file, content-defined blocks for the rest) and runs the usual pipeline
//! over the concatenation. Extracting decodes the whole space once, in
//! parallel, into a new folder made next to the destination, which is then
//! moved into place in one rename; paths are checked first.

use std::collections::HashSet;
use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use hexz_format::layout::FileKind;
use hexz_format::manifest::{valid_path, FileInfo};
use hexz_format::plan::{plan, FolderEntry, Plan};
use hexz_format::{ErrorCode, ReadAt};

use crate::error::{Error, Result};
use crate::location::{FileSource, Location};
use crate::output::{remove_stale_temporaries, write_all_at};
use crate::reader::{RangeSink, Reader};

/// The files of a folder, read as one byte space laid end to end.
pub struct FolderSource {
    /// (virtual offset, file), regular files only, in path order.
    files: Vec<(u64, FileSource)>,
    len: u64,
}

impl FolderSource {
    /// Check that no file changed while it was read.
    pub fn check_unchanged(&self) -> Result<()> {
        self.files.iter().try_for_each(|(_, f)| f.check_unchanged())
    }

    /// The folder's non-empty regular files, in path order.
    pub fn files(&self) -> impl Iterator<Item = &FileSource> {
        self.files.iter().map(|(_, f)| f)
    }
}

impl ReadAt for FolderSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        hexz_format::source::checked_end("read", offset, buf.len(), self.len)?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let i = self.files.partition_point(|(start, _)| *start <= at).saturating_sub(1);
            let (start, file) = &self.files[i];
            let n = ((ReadAt::len(file) - (at - start)) as usize).min(buf.len() - done);
            if n == 0 {
                // An empty file at this offset: the next one holds the bytes.
                return Err(hexz_format::Error::invalid("folder", at, "no file holds this offset"));
            }
            file.read_exact_at(at - start, &mut buf[done..done + n]).map_err(|e| match e {
                hexz_format::Error::Io { cause, .. } => hexz_format::Error::Io { offset: at, cause },
                other => other,
            })?;
            done += n;
        }
        Ok(())
    }
}

/// Walk `root`: regular files (symlinks to files are followed) and empty
/// directories, sorted by their `/`-separated relative path. Other kinds
/// (sockets, devices, symlinks to directories) are skipped with a warning.
pub fn walk(root: &Path, warnings: &mut Vec<String>) -> Result<Vec<(FolderEntry, Option<PathBuf>)>> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut children = 0usize;
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::file(&dir, "list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::file(&dir, "list", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().map(str::to_string) else {
                return Err(Error::refused(entry.path(), "file name is not UTF-8", ErrorCode::InvalidArgument));
            };
            let path = entry.path();
            let rel_path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            if !valid_path(&rel_path) {
                return Err(Error::refused(
                    &path,
                    "this name cannot be stored (backslash, or too long)",
                    ErrorCode::InvalidArgument,
                ));
            }
            let link = entry.file_type().map_err(|e| Error::file(&path, "stat", e))?;
            let meta = std::fs::metadata(&path).map_err(|e| Error::file(&path, "stat", e))?;
            if meta.is_dir() && link.is_symlink() {
                warnings.push(format!("{}: symlink to a directory, skipped", path.display()));
                continue;
            }
            children += 1;
            if meta.is_dir() {
                stack.push((path, rel_path));
            } else if meta.is_file() {
                if link.is_symlink() {
                    warnings.push(format!("{}: symlink, stored as the file it points to", path.display()));
                }
                out.push((entry_for(rel_path, FileKind::File, &meta), Some(path)));
            } else {
                children -= 1;
                warnings.push(format!("{}: not a regular file or directory, skipped", path.display()));
            }
        }
        if children == 0 && !rel.is_empty() {
            let meta = std::fs::metadata(&dir).map_err(|e| Error::file(&dir, "stat", e))?;
            out.push((entry_for(rel, FileKind::Directory, &meta), None));
        }
    }
    out.sort_by(|a, b| a.0.path.as_bytes().cmp(b.0.path.as_bytes()));
    Ok(out)
}

fn entry_for(path: String, kind: FileKind, meta: &std::fs::Metadata) -> FolderEntry {
    let mode = crate::platform::mode_of(meta);
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    FolderEntry { path, kind, length: if kind == FileKind::File { meta.len() } else { 0 }, mode, mtime_ns }
}

/// Open every file of a walk and plan the folder: each file's tensors and
/// segments come from its own bytes, and its errors name it.
pub fn plan_folder(walked: Vec<(FolderEntry, Option<PathBuf>)>, raw: bool) -> Result<(Plan, FolderSource)> {
    let mut files = Vec::new();
    let mut planned = Vec::new();
    let mut offset = 0u64;
    for (mut entry, path) in walked {
        match path {
            Some(path) => {
                let source = FileSource::open(&path)?;
                entry.length = ReadAt::len(&source);
                let p =
                    plan(&source, raw).map_err(|e| Error::At { location: Location::Path(path.clone()), source: e })?;
                planned.push((entry, Some(p)));
                if ReadAt::len(&source) > 0 {
                    files.push((offset, source));
                }
                offset += planned.last().map_or(0, |(e, _)| e.length);
            }
            None => planned.push((entry, None)),
        }
    }
    let plan = Plan::folder(planned)?;
    Ok((plan, FolderSource { files, len: offset }))
}

/// Refuse paths the destination file system would merge: names that differ
/// only by case where it ignores case, only by Unicode normalization where
/// it normalizes. Probed in `dir` (a new, empty folder on that file system).
fn check_collisions(files: &[FileInfo], dir: &Path) -> Result<()> {
    let probe = |a: &str, b: &str| -> bool {
        let p = dir.join(a);
        let merged = File::create(&p).is_ok() && dir.join(b).exists();
        let _ = std::fs::remove_file(&p);
        merged
    };
    let folds_case = probe(".hexz-probe-Case", ".hexz-probe-cASE");
    let normalizes = probe(".hexz-probe-\u{e9}", ".hexz-probe-e\u{301}");
    if !folds_case && !normalizes {
        return Ok(());
    }
    use unicode_normalization::UnicodeNormalization;
    let mut seen = HashSet::new();
    for f in files {
        let mut key: String = if normalizes { f.path.nfc().collect() } else { f.path.clone() };
        if folds_case {
            key = key.to_lowercase();
        }
        if !seen.insert(key) {
            return Err(Error::refused(
                &f.path,
                "another path in the archive names the same file on this file system (case or Unicode normalization)",
                ErrorCode::InvalidArgument,
            ));
        }
    }
    Ok(())
}

/// Writes decoded bytes of the virtual space into the files of a folder
/// being extracted (positioned writes; zero runs left as holes).
struct FolderSink {
    /// (virtual offset, length, file, path), regular files in order.
    files: Vec<(u64, u64, File, PathBuf)>,
}

impl RangeSink for FolderSink {
    fn ordered(&self) -> bool {
        false
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let i = self.files.partition_point(|f| f.0 <= at).saturating_sub(1);
            let (start, len, file, path) = &self.files[i];
            let n = ((start + len - at) as usize).min(data.len() - done);
            if n == 0 {
                return Err(Error::Format(hexz_format::Error::invalid("folder", at, "no file holds this offset")));
            }
            let piece = &data[done..done + n];
            if !piece.iter().all(|&b| b == 0) {
                write_all_at(file, piece, at - start).map_err(|e| Error::file(path, "write", e))?;
            }
            done += n;
        }
        Ok(())
    }
}

/// Extract a folder archive into `dest` (which must not exist, or with
/// `force` is replaced as a whole). The tree is built in a new folder next
/// to `dest` and moved into place in one rename, so `dest` never holds a
/// partial tree; `threads` decode in parallel.
pub fn extract_folder(
    reader: &Reader,
    dest: &Path,
    force: bool,
    threads: usize,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<()> {
    let files = reader.files();
    if files.is_empty() && reader.source_format() != hexz_format::SourceFormat::Folder {
        return Err(Error::refused(
            reader.location().to_string(),
            "is not a folder archive",
            ErrorCode::InvalidArgument,
        ));
    }
    let exists = std::fs::symlink_metadata(dest).is_ok();
    if exists && !force {
        return Err(Error::refused(dest, "already exists (use --force to replace it)", ErrorCode::InvalidArgument));
    }
    for location in reader.chain() {
        if let Some(p) = location.as_path() {
            if std::fs::canonicalize(p).is_ok_and(|p| std::fs::canonicalize(dest).is_ok_and(|d| p.starts_with(d))) {
                return Err(Error::refused(
                    dest,
                    format!("holds {location}, an input; refusing to replace it"),
                    ErrorCode::InvalidArgument,
                ));
            }
        }
    }
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    remove_stale_temporaries(parent);
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}.hexz-tmp-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| Error::file(dest, "create", e))?;
    crate::output::register_temporary(temp.path());
    let built = build_tree(reader, files, temp.path(), threads, progress);
    let committed = built.and_then(|()| move_into_place(temp.path(), dest, exists));
    crate::output::unregister_temporary(temp.path());
    match committed {
        Ok(()) => {
            // The folder was renamed away; nothing left to remove.
            let _ = temp.keep();
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn build_tree(
    reader: &Reader,
    files: &[FileInfo],
    root: &Path,
    threads: usize,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<()> {
    check_collisions(files, root)?;
    let total: u64 = files.iter().filter(|f| f.kind == FileKind::File).map(|f| f.length).sum();
    if total != reader.size() {
        return Err(Error::Format(hexz_format::Error::invalid(
            "file length",
            0,
            "files do not add up to the archive's size",
        )));
    }
    let mut open_files = Vec::new();
    for f in files {
        // Paths were checked at open (relative, no '.' or '..'); the tree is
        // new and ours alone, so no component can be a planted symlink.
        let path = root.join(&f.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, "create directory", e))?;
        }
        match f.kind {
            FileKind::Directory => {
                std::fs::create_dir_all(&path).map_err(|e| Error::file(&path, "create directory", e))?
            }
            FileKind::File => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| Error::file(&path, "create", e))?;
                file.set_len(f.length).map_err(|e| Error::file(&path, "set length", e))?;
                if f.length > 0 {
                    open_files.push((f.offset, f.length, file, path));
                }
            }
        }
    }
    let sink = FolderSink { files: open_files };
    reader.read_range_parallel(0, reader.size(), &sink, threads, progress)?;
    for (_, _, file, path) in &sink.files {
        file.sync_all().map_err(|e| Error::file(path, "flush to disk", e))?;
    }
    drop(sink);
    // Modes and times last (a read-only mode would stop the writes).
    for f in files.iter().rev() {
        let path = root.join(&f.path);
        if f.mtime_ns > 0 {
            let when = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(f.mtime_ns as u64);
            if let Ok(file) = File::options().write(f.kind == FileKind::File).read(true).open(&path) {
                let _ = file.set_modified(when);
            }
        }
        crate::platform::set_mode(&path, f.mode, f.kind == FileKind::Directory)
            .map_err(|e| Error::file(&path, "set permissions", e))?;
    }
    Ok(())
}

/// Move the finished tree `from` to `dest`: a rename that refuses to
/// replace anything, or with `replace` an atomic exchange (Linux; elsewhere
/// the old tree is removed first, then the new one renamed in) whose old
/// tree is then removed.
fn move_into_place(from: &Path, dest: &Path, replace: bool) -> Result<()> {
    if !replace {
        return rename_noreplace(from, dest);
    }
    if crate::platform::rename_exchange(from, dest).map_err(|e| Error::file(dest, "rename into place", e))? {
        // `from` now holds the old tree: remove it (a file, or a folder).
        let old = std::fs::symlink_metadata(from);
        let _ = if old.is_ok_and(|m| m.is_dir()) { std::fs::remove_dir_all(from) } else { std::fs::remove_file(from) };
        return Ok(());
    }
    let old = std::fs::symlink_metadata(dest);
    let removed =
        if old.as_ref().is_ok_and(|m| m.is_dir()) { std::fs::remove_dir_all(dest) } else { std::fs::remove_file(dest) };
    removed.map_err(|e| Error::file(dest, "replace", e))?;
    rename_noreplace(from, dest)
}

/// Rename `from` to `dest` unless something is there (atomic on Linux; see
/// [`crate::platform::rename_noreplace`] for the fallback's race).
fn rename_noreplace(from: &Path, dest: &Path) -> Result<()> {
    match crate::platform::rename_noreplace(from, dest) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::refused(
            dest,
            "already exists (another process created it meanwhile); nothing replaced",
            ErrorCode::InvalidArgument,
        )),
        Err(e) => Err(Error::file(dest, "rename into place", e)),
    }
}
