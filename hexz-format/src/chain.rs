//! Opening an archive together with its parent chain: each parent is found
//! by the relative path hint its child records (or in search folders) and
//! confirmed by identity. A missing or different parent is an error naming
//! the expected identity and the paths tried, never wrong bytes.

use std::path::{Component, Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use crate::error::{Error, Hex32, Result};
use crate::layout::limits::MAX_CHAIN_DEPTH;
use crate::reader::Archive;
use crate::source::{FileSource, ReadAt};

/// An archive with its ancestors attached, and where each was found
/// (`paths[0]` is the archive itself).
pub struct Chain<R = FileSource> {
    pub archive: Archive<R>,
    pub paths: Vec<PathBuf>,
}

/// Open `path` and every ancestor. Parents are looked up at their hint
/// relative to the child's folder, then by the hint's file name in each of
/// `search` (for archives that were moved).
pub fn open_chain(path: &Path, search: &[PathBuf]) -> Result<Chain> {
    open_chain_with(path, search, &|p| FileSource::open(p))
}

/// [`open_chain`] with a caller-chosen source type for every archive.
pub fn open_chain_with<R: ReadAt>(
    path: &Path,
    search: &[PathBuf],
    open: &dyn Fn(&Path) -> Result<R>,
) -> Result<Chain<R>> {
    let root = Archive::open(open(path)?)?;
    let mut seen = Vec::from([root.identity()]);
    let mut paths = Vec::from([path.to_path_buf()]);
    let mut ancestors: Vec<Archive<R>> = Vec::new();
    let mut parent = root.manifest()?.parent;
    let mut child_path = path.to_path_buf();
    while let Some(p) = parent {
        if ancestors.len() + 1 >= usize::from(MAX_CHAIN_DEPTH) {
            return Err(Error::ChainTooDeep { limit: MAX_CHAIN_DEPTH });
        }
        let (archive, found_at) = find_parent(&child_path, &p.hint, p.identity, search, open)?;
        if seen.contains(&archive.identity()) {
            return Err(Error::ChainCycle);
        }
        seen.push(archive.identity());
        parent = archive.manifest()?.parent;
        child_path = found_at.clone();
        paths.push(found_at);
        ancestors.push(archive);
    }
    Ok(Chain { archive: root.with_ancestors(ancestors)?, paths })
}

fn find_parent<R: ReadAt>(
    child: &Path,
    hint: &str,
    expected: [u8; 32],
    search: &[PathBuf],
    open: &dyn Fn(&Path) -> Result<R>,
) -> Result<(Archive<R>, PathBuf)> {
    let dir = child.parent().unwrap_or(Path::new(""));
    let mut candidates = Vec::from([dir.join(hint)]);
    let name = Path::new(hint).file_name();
    for d in search {
        candidates.push(d.join(hint));
        if let Some(name) = name {
            candidates.push(d.join(name));
        }
    }
    let mut tried = Vec::new();
    let mut mismatch = None;
    for candidate in candidates {
        tried.push(candidate.display().to_string());
        if !candidate.is_file() {
            continue;
        }
        let archive = match open(&candidate).and_then(Archive::open) {
            Ok(a) => a,
            Err(_) => continue,
        };
        if archive.identity() == expected {
            return Ok((archive, candidate));
        }
        mismatch.get_or_insert(Error::ParentMismatch {
            expected: Hex32(expected),
            found: Hex32(archive.identity()),
            path: candidate.display().to_string(),
        });
    }
    Err(mismatch.unwrap_or(Error::ParentNotFound { expected: Hex32(expected), tried: tried.join(", ") }))
}

/// `target` relative to the folder `from_dir`, for the parent hint.
pub fn relative_path(from_dir: &Path, target: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let from = abs(from_dir);
    let to = abs(target);
    let from_parts: Vec<Component> = from.components().collect();
    let to_parts: Vec<Component> = to.components().collect();
    let common = from_parts.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..from_parts.len() {
        rel.push("..");
    }
    for part in &to_parts[common..] {
        rel.push(part.as_os_str());
    }
    rel.to_string_lossy().into_owned()
}
