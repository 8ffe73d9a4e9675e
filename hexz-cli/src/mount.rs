//! `hexz mount`: the archive's file (or a folder archive's tree) as a
//! read-only FUSE filesystem, decoded on demand by the shared Reader.
//!
//! Reads are served on two FUSE threads with 1 MiB kernel requests through
//! hexz-io's [`CachedReader`]: a bounded cache of decoded blocks, each
//! decoded once however many threads want it, and for a sequential reader
//! the next 16 MiB decoded ahead on two more threads, so both cores decode.
//! Files are opened with FOPEN_KEEP_CACHE, so the kernel page cache holds
//! what was read across opens (a second load costs what a plain file
//! costs). A block that fails its hash gives EIO for the reads that
//! touch it, with the reason on the daemon's stderr; never wrong bytes.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig,
    LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};
use hexz_format::layout::FileKind;
use hexz_format::SourceFormat;
use hexz_io::{CacheOptions, CachedReader, Reader};

use crate::util::CliError;

/// Attributes never change: the archive is immutable while mounted.
const TTL: Duration = Duration::from_secs(3600);
/// Largest read the kernel sends (and read-ahead window).
const MAX_READ: u32 = 1 << 20;

/// One node of the mounted tree.
struct Node {
    name: String,
    parent: u64,
    dir: bool,
    /// Files: where their bytes are in the archive's virtual space.
    offset: u64,
    length: u64,
    mode: u32,
    mtime: SystemTime,
    /// Directories: children by name.
    children: BTreeMap<String, u64>,
}

/// The mounted archive: inodes 1 (the root) and up.
pub struct HexzFs {
    reader: CachedReader,
    nodes: Vec<Node>,
    uid: u32,
    gid: u32,
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

impl HexzFs {
    /// The tree of `reader`: a folder archive's files and directories, or
    /// the one archived file named `file_name`.
    pub fn new(reader: Reader, file_name: &str, archive_mtime: SystemTime, cache_bytes: usize) -> HexzFs {
        let root = Node {
            name: String::new(),
            parent: 1,
            dir: true,
            offset: 0,
            length: 0,
            mode: 0o555,
            mtime: archive_mtime,
            children: BTreeMap::new(),
        };
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let folder = (reader.source_format() == SourceFormat::Folder).then(|| reader.files().to_vec());
        let size = reader.size();
        let reader = CachedReader::new(reader, &CacheOptions { budget: cache_bytes, ..CacheOptions::default() });
        let mut fs = HexzFs { reader, nodes: vec![root], uid, gid };
        match folder {
            Some(files) => {
                for f in files {
                    let dir = f.kind == FileKind::Directory;
                    fs.insert(&f.path, dir, f.offset, f.length, f.mode & 0o7777, time_of(f.mtime_ns));
                }
            }
            None => {
                fs.insert(file_name, false, 0, size, 0o444, archive_mtime);
            }
        }
        fs
    }

    /// Add `path` (creating the directories above it), returning its inode.
    fn insert(&mut self, path: &str, dir: bool, offset: u64, length: u64, mode: u32, mtime: SystemTime) -> u64 {
        let mut at = 1u64;
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let existing = self.nodes[(at - 1) as usize].children.get(*part).copied();
            at = match existing {
                Some(ino) => {
                    if last {
                        let n = &mut self.nodes[(ino - 1) as usize];
                        n.mode = if dir { mode | 0o111 } else { mode };
                        n.mtime = mtime;
                    }
                    ino
                }
                None => {
                    let is_dir = !last || dir;
                    self.nodes.push(Node {
                        name: part.to_string(),
                        parent: at,
                        dir: is_dir,
                        offset: if is_dir { 0 } else { offset },
                        length: if is_dir { 0 } else { length },
                        mode: if last { mode } else { 0o755 },
                        mtime,
                        children: BTreeMap::new(),
                    });
                    let ino = self.nodes.len() as u64;
                    self.nodes[(at - 1) as usize].children.insert(part.to_string(), ino);
                    ino
                }
            };
        }
        at
    }

    fn node(&self, ino: INodeNo) -> Option<&Node> {
        let i = u64::from(ino).checked_sub(1)?;
        self.nodes.get(usize::try_from(i).ok()?)
    }

    fn attr(&self, ino: u64, n: &Node) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size: n.length,
            blocks: n.length.div_ceil(512),
            atime: n.mtime,
            mtime: n.mtime,
            ctime: n.mtime,
            crtime: n.mtime,
            kind: if n.dir { FileType::Directory } else { FileType::RegularFile },
            // Read-only whatever the archive recorded.
            perm: (if n.dir { n.mode | 0o111 } else { n.mode } & 0o7555) as u16,
            nlink: if n.dir { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: MAX_READ,
        }
    }
}

impl Filesystem for HexzFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // As large as the kernel allows: fewer, larger reads decode whole blocks.
        let _ = config.set_max_readahead(MAX_READ * 4).or_else(|max| config.set_max_readahead(max));
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self
            .node(parent)
            .and_then(|p| name.to_str().and_then(|n| p.children.get(n)))
            .and_then(|&ino| self.node(INodeNo(ino)).map(|n| (ino, n)));
        match found {
            Some((ino, n)) => reply.entry(&TTL, &self.attr(ino, n), Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(n) => reply.attr(&TTL, &self.attr(u64::from(ino), n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.node(ino) {
            Some(n) if n.dir => reply.error(Errno::EISDIR),
            Some(_) if flags.0 & libc::O_ACCMODE != libc::O_RDONLY => reply.error(Errno::EROFS),
            // Keep the page cache across opens: the bytes never change.
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(n) = self.node(ino).filter(|n| !n.dir) else {
            return reply.error(Errno::ENOENT);
        };
        if offset >= n.length {
            return reply.data(&[]);
        }
        let len = u64::from(size.min(MAX_READ)).min(n.length - offset) as usize;
        let mut buf = vec![0u8; len];
        match self.reader.read_at(n.offset + offset, &mut buf) {
            Ok(()) => reply.data(&buf),
            Err(e) => {
                eprintln!("hexz mount: {}: read of {} at {offset}: {e}", self.reader.reader().location(), n.name);
                reply.error(Errno::EIO)
            }
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let Some(n) = self.node(ino).filter(|n| n.dir) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut entries = vec![(u64::from(ino), FileType::Directory, "."), (n.parent, FileType::Directory, "..")];
        for (name, &child) in &n.children {
            let kind = if self.nodes[(child - 1) as usize].dir { FileType::Directory } else { FileType::RegularFile };
            entries.push((child, kind, name.as_str()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// The name the archived file shows under: the archive's stem with the
/// source format's extension.
pub fn file_name(archive: &str, format: SourceFormat) -> String {
    let last = archive.rsplit('/').next().unwrap_or(archive);
    let stem = last.strip_suffix(".hxz").unwrap_or(last);
    let ext = match format {
        SourceFormat::Gguf => ".gguf",
        SourceFormat::Safetensors => ".safetensors",
        _ => "",
    };
    if stem.ends_with(ext) {
        stem.to_string()
    } else {
        format!("{stem}{ext}")
    }
}

/// Mount `reader` at `mountpoint` in this process and serve until SIGINT,
/// SIGTERM or an unmount; then unmount and return.
pub fn serve(
    reader: Reader,
    archive: &str,
    archive_mtime: SystemTime,
    mountpoint: &Path,
    cache_bytes: usize,
) -> Result<(), CliError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let name = file_name(archive, reader.source_format());
    let fs = HexzFs::new(reader, &name, archive_mtime, cache_bytes);
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(format!("hexz:{archive}")),
        MountOption::Subtype("hexz".into()),
        MountOption::DefaultPermissions,
        MountOption::CUSTOM(format!("max_read={MAX_READ}")),
    ];
    // Several reads decode at once (the kernel sends read-ahead in parallel).
    config.n_threads = Some(2);
    // The handlers first: a signal that comes while the mount is being set
    // up still unmounts it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| CliError::new(mountpoint, e.to_string()))?;
    }
    let session = fuser::spawn_mount(fs, mountpoint, &config)
        .map_err(|e| CliError::new(mountpoint, format!("cannot mount: {e}")))?;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        // Unmounted from outside (hexz unmount, umount): the session ended.
        return session.join().map_err(|e| CliError::new(mountpoint, e.to_string()));
    }
    match session.umount_and_join() {
        Ok(()) => Ok(()),
        // Busy (a reader holds a file open): detach the mount from the
        // tree instead, so that no stale mount point is left behind this
        // process; the open files fail once it has exited.
        Err(e) => detach(mountpoint).map_err(|d| CliError::new(mountpoint, format!("unmount: {e}; {d}"))),
    }
}

/// Detach the mount at `mountpoint` lazily (MNT_DETACH: gone from the tree
/// now, released when its last open file closes).
fn detach(mountpoint: &Path) -> Result<(), String> {
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes())
        .map_err(|_| "mount point has a NUL byte".to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 || !is_mounted(mountpoint) {
        return Ok(());
    }
    let direct = std::io::Error::last_os_error();
    match std::process::Command::new("fusermount3").arg("-uz").arg(mountpoint).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(format!("cannot detach: {direct}")),
    }
}

/// Whether `path` is a mount point now (its device differs from its parent's).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().map_or_else(|| PathBuf::from("/"), |p| p.to_path_buf());
    let parent = if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent };
    match (std::fs::metadata(path), std::fs::metadata(&parent)) {
        (Ok(a), Ok(b)) => a.dev() != b.dev(),
        // ENOTCONN: a mount whose daemon is gone still counts as mounted.
        (Err(e), _) => e.raw_os_error() == Some(libc::ENOTCONN),
        _ => false,
    }
}

/// Unmount `mountpoint` (the daemon then exits).
pub fn unmount(mountpoint: &Path) -> Result<(), CliError> {
    let c = std::ffi::CString::new(mountpoint.as_os_str().as_encoded_bytes())
        .map_err(|_| CliError::usage("mount point has a NUL byte"))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let direct = std::io::Error::last_os_error();
    // Not root: the setuid helper unmounts FUSE filesystems its user mounted.
    match std::process::Command::new("fusermount3").arg("-u").arg(mountpoint).status() {
        Ok(s) if s.success() => Ok(()),
        _ => Err(CliError::new(mountpoint, format!("cannot unmount: {direct}"))),
    }
}
