//! [`Reader`]: an archive opened with its chain, its tensor table and a
//! name index built once, a pool of read workspaces, and the one parallel
//! decoder every whole-range read uses (extract, memfd, deep verify, diff,
//! the mount).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use hexz_format::manifest::{FileInfo, MetadataValue, ParentRef, TensorInfo};
use hexz_format::reader::Workspace;
use hexz_format::{Archive, ErrorCode, ReadAt, SourceFormat};

use crate::error::{at_chain, Error, Result};
use crate::location::{Location, Source};
use crate::names::CNames;
use crate::resolve::{open_chain, open_chain_from, Chain, OpenOptions};

/// Reads that may run at once when the options say 0.
pub const DEFAULT_READ_SLOTS: usize = 4;
/// Most read slots a Reader accepts.
pub const MAX_READ_SLOTS: usize = 256;
/// Most threads a parallel read runs.
pub const MAX_READ_THREADS: usize = 64;

/// An open archive, ready to read from many threads at once.
pub struct Reader {
    archive: Archive<Source>,
    locations: Vec<Location>,
    tensors: Vec<TensorInfo>,
    /// Every tensor holding each name: one, or (folder archives) one per
    /// file that holds the name.
    by_name: HashMap<String, Vec<usize>>,
    /// Folder archives: every file and directory, sorted by path.
    files: Vec<FileInfo>,
    metadata: Vec<(String, MetadataValue)>,
    parent: Option<ParentRef>,
    pool: WorkspacePool,
    /// The tables' names as C strings, built on first use.
    c_names: std::sync::OnceLock<CNames>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("location", &self.locations[0]).field("size", &self.size()).finish()
    }
}

impl Reader {
    /// Open the archive at `location` and its parent chain.
    pub fn open(location: impl Into<Location>, opts: &OpenOptions) -> Result<Reader> {
        let location = location.into();
        Self::from_chain(open_chain(&location, opts)?, opts)
    }

    /// Open the archive in `source`; `location` names it in errors and
    /// anchors its parent hint.
    pub fn open_source(location: Location, source: Source, opts: &OpenOptions) -> Result<Reader> {
        Self::from_chain(open_chain_from(&location, source, opts)?, opts)
    }

    /// Build the tensor table, the name index and the workspace pool.
    pub fn from_chain(chain: Chain, opts: &OpenOptions) -> Result<Reader> {
        let Chain { archive, locations } = chain;
        let at = |e| at_chain(&locations, e);
        let manifest = archive.manifest().map_err(at)?;
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(manifest.tensors.len());
        for (i, t) in manifest.tensors.iter().enumerate() {
            by_name.entry(t.name.clone()).or_default().push(i);
        }
        let slots = match opts.read_slots {
            0 => DEFAULT_READ_SLOTS,
            n if n > MAX_READ_SLOTS => return Err(Error::invalid("read_slots must be at most 256")),
            n => n,
        };
        let size = archive.scratch_size();
        let by_budget = opts.memory_budget.checked_div(size.max(1)).unwrap_or(1).max(1);
        let pool = WorkspacePool::new(size, slots.min(by_budget));
        // One workspace now: reads from one thread at a time never allocate.
        drop(pool.acquire().map_err(at)?);
        Ok(Reader {
            archive,
            locations,
            tensors: manifest.tensors,
            by_name,
            files: manifest.files,
            metadata: manifest.metadata,
            parent: manifest.parent,
            pool,
            c_names: std::sync::OnceLock::new(),
        })
    }

    /// The archive, with its chain attached.
    pub fn archive(&self) -> &Archive<Source> {
        &self.archive
    }

    /// Where the archive is.
    pub fn location(&self) -> &Location {
        &self.locations[0]
    }

    /// Where each chain member is: the archive first, then its parent, ...
    pub fn chain(&self) -> &[Location] {
        &self.locations
    }

    /// Length of the source file (the virtual space).
    pub fn size(&self) -> u64 {
        self.archive.virtual_size()
    }

    /// What kind of file the archive holds.
    pub fn source_format(&self) -> SourceFormat {
        self.archive.manifest_view().source_format()
    }

    /// The parent this archive names.
    pub fn parent(&self) -> Option<&ParentRef> {
        self.parent.as_ref()
    }

    /// The user metadata stored with the archive (`store --metadata`).
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    /// The local files of the chain, each with what it is: inputs that no
    /// output of an operation on this reader may overwrite.
    pub fn chain_files(&self) -> Vec<(crate::FileId, String)> {
        self.locations
            .iter()
            .enumerate()
            .filter_map(|(d, l)| {
                let what = if d == 0 {
                    "the archive being read".to_string()
                } else {
                    format!("an archive of its chain ({l})")
                };
                l.as_path().and_then(crate::FileId::of_path).map(|id| (id, what))
            })
            .collect()
    }

    /// The names of the tensor, file and metadata tables as C strings,
    /// in one allocation; built on the first call (fallibly), then borrowed.
    pub fn c_names(&self) -> Result<&CNames> {
        if let Some(names) = self.c_names.get() {
            return Ok(names);
        }
        let built = CNames::build(&self.tensors, &self.files, &self.metadata)?;
        Ok(self.c_names.get_or_init(|| built))
    }

    /// Every tensor, in source order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, and its index, when one tensor has that
    /// name (in a folder archive several files may hold the same names:
    /// [`tensor_in`](Self::tensor_in) or [`find_tensor`](Self::find_tensor)
    /// tell them apart).
    pub fn tensor(&self, name: &str) -> Option<(usize, &TensorInfo)> {
        match self.by_name.get(name).map(Vec::as_slice) {
            Some(&[i]) => Some((i, &self.tensors[i])),
            _ => None,
        }
    }

    /// The tensor called `name` in file `file` (an index of
    /// [`files`](Self::files)) of a folder archive, and its index.
    pub fn tensor_in(&self, file: usize, name: &str) -> Option<(usize, &TensorInfo)> {
        let all = self.by_name.get(name)?;
        all.iter().find(|&&i| self.tensors[i].file == Some(file as u32)).map(|&i| (i, &self.tensors[i]))
    }

    /// The files holding a tensor called `name` (folder archives), in
    /// file-table order.
    pub fn files_holding(&self, name: &str) -> Vec<&str> {
        let Some(all) = self.by_name.get(name) else { return Vec::new() };
        all.iter()
            .filter_map(|&i| self.tensors[i].file)
            .filter_map(|f| self.files.get(f as usize))
            .map(|f| f.path.as_str())
            .collect()
    }

    /// The tensor called `name`, in the file at path `file` when given
    /// (folder archives). A bare name that several files hold is an error
    /// that lists them; so are a file the archive does not have and a name
    /// no tensor has.
    pub fn find_tensor(&self, file: Option<&str>, name: &str) -> Result<(usize, &TensorInfo)> {
        let refused = |reason: String, code| Error::refused(self.location().to_string(), reason, code);
        if let Some(path) = file {
            let Some((f, _)) = self.file(path) else {
                return Err(refused(format!("no file '{path}' in the archive"), ErrorCode::NotFound));
            };
            return self
                .tensor_in(f, name)
                .ok_or_else(|| refused(format!("no tensor named '{name}' in file '{path}'"), ErrorCode::NotFound));
        }
        match self.by_name.get(name).map(Vec::as_slice) {
            None | Some(&[]) => Err(refused(format!("no tensor named '{name}'"), ErrorCode::NotFound)),
            Some(&[i]) => Ok((i, &self.tensors[i])),
            Some(_) => {
                let files = self.files_holding(name);
                Err(refused(
                    format!(
                        "tensor '{name}' is in {} files ({}): name one as FILE:{name}",
                        files.len(),
                        files.join(", ")
                    ),
                    ErrorCode::InvalidArgument,
                ))
            }
        }
    }

    /// The tensor `spec` names: a tensor name, or in a folder archive
    /// `PATH:NAME`, the tensor `NAME` of the file at `PATH`
    /// (`checkpoint-500/model.safetensors:layer.0.weight`). A name that is
    /// itself a tensor's name is taken as one; otherwise the first `:`
    /// after which the prefix is a file of the archive splits it.
    pub fn lookup_tensor(&self, spec: &str) -> Result<(usize, &TensorInfo)> {
        if self.by_name.contains_key(spec) || self.files.is_empty() {
            return self.find_tensor(None, spec);
        }
        for (cut, _) in spec.match_indices(':') {
            if self.file(&spec[..cut]).is_some() {
                return self.find_tensor(Some(&spec[..cut]), &spec[cut + 1..]);
            }
        }
        self.find_tensor(None, spec)
    }

    /// Folder archives: every file and directory, sorted by path (empty
    /// for a single-file archive).
    pub fn files(&self) -> &[FileInfo] {
        &self.files
    }

    /// The file at `path` of a folder archive, and its index.
    pub fn file(&self, path: &str) -> Option<(usize, &FileInfo)> {
        let i = self.files.binary_search_by(|f| f.path.as_bytes().cmp(path.as_bytes())).ok()?;
        Some((i, &self.files[i]))
    }

    /// The file holding virtual `offset` (folder archives).
    pub fn file_at(&self, offset: u64) -> Option<(usize, &FileInfo)> {
        let i = self.files.partition_point(|f| f.offset <= offset).checked_sub(1)?;
        let regular = self.files[..=i]
            .iter()
            .rposition(|f| f.kind == hexz_format::layout::FileKind::File && f.length > 0 && f.offset <= offset)?;
        let f = &self.files[regular];
        (offset < f.offset + f.length).then_some((regular, f))
    }

    /// Read slots: reads that may run at once, and the scratch each holds.
    pub fn read_slots(&self) -> (usize, usize) {
        (self.pool.max, self.pool.size)
    }

    /// Bytes this reader holds now: metadata of every chain member and the
    /// scratch of the workspaces created so far.
    pub fn memory_bytes(&self) -> u64 {
        let meta: usize =
            (0..self.archive.chain_len()).filter_map(|d| self.archive.member(d)).map(|m| m.held_bytes()).sum();
        let tables: usize =
            self.tensors.iter().map(|t| t.name.len() * 2 + t.dtype.len() + t.shape.len() * 8 + 96).sum();
        let names = self.c_names.get().map_or(0, CNames::memory_bytes);
        (meta + tables + names + self.pool.created() * self.pool.size) as u64
    }

    /// A format error as this reader's error, naming the chain member at fault.
    pub fn error(&self, err: hexz_format::Error) -> Error {
        at_chain(&self.locations, err)
    }

    /// Read virtual bytes `[offset, offset + buf.len())`. Waits while all
    /// read slots are busy. Bytes that fail a check are read once more
    /// from the origin when a source had kept them (see [`Self::discard_bad_bytes`]).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.is_empty() {
            return self.check_range(offset, 0);
        }
        populate(buf);
        let mut ws = self.pool.acquire().map_err(|e| self.error(e))?;
        match self.archive.read_at(offset, buf, &mut *ws) {
            Err(e) if self.discard_bad_bytes(&e) => self.archive.read_at(offset, buf, &mut *ws),
            read => read,
        }
        .map_err(|e| self.error(e))
    }

    /// After `err`: when bytes of a chain member failed a check (a block's
    /// hash or decode, a page's checksum) and its source kept fetched bytes
    /// (a remote source's cache), they are dropped, so that one corrupt
    /// response never stays in a cache. Whether the read is worth one more
    /// try, which then fetches from the origin.
    fn discard_bad_bytes(&self, err: &hexz_format::Error) -> bool {
        let (depth, inner) = err.innermost();
        let bad_bytes = matches!(inner.code(), ErrorCode::HashMismatch | ErrorCode::Decode | ErrorCode::Checksum);
        bad_bytes && self.archive.member(usize::from(depth)).is_some_and(|m| m.source().discard_cached())
    }

    /// The byte length of tensor `index`, checked: the index is in range
    /// and the length fits in memory. The one place these checks live;
    /// every front end sizes its buffer with it.
    pub fn tensor_len(&self, index: usize) -> Result<usize> {
        let t = self.tensors.get(index).ok_or_else(|| Error::invalid("tensor index out of range"))?;
        usize::try_from(t.length).map_err(|_| Error::invalid("tensor larger than the address space"))
    }

    /// Read tensor `index` into the start of `buf`; returns its length.
    /// A `buf` shorter than the tensor gives BUFFER_TOO_SMALL (with the
    /// length needed) before anything is read.
    pub fn read_tensor(&self, index: usize, buf: &mut [u8]) -> Result<usize> {
        let len = self.tensor_len(index)?;
        let t = &self.tensors[index];
        let got = buf.len() as u64;
        let dst = buf.get_mut(..len).ok_or(Error::Format(hexz_format::Error::BufferTooSmall {
            what: "tensor buffer",
            needed: len as u64,
            got,
        }))?;
        self.read_at(t.offset, dst)?;
        Ok(len)
    }

    /// The block holding virtual byte `offset`: its start and length.
    /// Blocks are the unit of decoding, so the pieces of a range read from
    /// several threads decode no block twice when cut at block ends.
    pub fn block_span(&self, offset: u64) -> Result<(u64, u64)> {
        self.check_range(offset, 1)?;
        let mut ws = self.pool.acquire().map_err(|e| self.error(e))?;
        let (scratch, _) = hexz_format::reader::Scratch::parts(&mut *ws);
        let need = self.archive.page_bytes();
        let got = scratch.len() as u64;
        let page = scratch.get_mut(..need).ok_or(hexz_format::Error::BufferTooSmall {
            what: "scratch",
            needed: need as u64,
            got,
        })?;
        let mut blocks = self.archive.blocks(offset, 1, page).map_err(|e| self.error(e))?;
        let block = blocks
            .next()
            .ok_or(hexz_format::Error::InvalidArgument("no block holds this offset"))?
            .map_err(|e| self.error(e))?;
        Ok((block.entry.virtual_offset.get(), u64::from(block.entry.virtual_length.get())))
    }

    /// Read a virtual range into a new vector (fallible allocation). A long
    /// one is decoded on every core, within the read slots: a tokenizer
    /// makes a GGUF header megabytes long (gemma: 6.5 MB).
    pub fn read_vec(&self, offset: u64, length: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(length).map_err(|_| Error::invalid("range too large"))?;
        let mut out = hexz_format::error::try_zeroed(len, "read buffer")?;
        if length < CHUNK {
            self.read_at(offset, &mut out)?;
        } else {
            self.read_into_parallel(offset, &mut out, 0, &|_| ControlFlow::Continue(()))?;
        }
        Ok(out)
    }

    /// The source file's own header (safetensors JSON or GGUF header).
    pub fn source_header(&self) -> Result<Vec<u8>> {
        self.read_vec(0, self.archive.source_header_length())
    }

    /// Block-aligned pieces of `[offset, offset + length)` of about
    /// `target` bytes (at least a block), so parallel workers never decode
    /// a block twice. Each is cut at the block end nearest its target, and
    /// less than half a block is never left over for a piece of its own.
    fn chunks(&self, offset: u64, length: u64, target: u64) -> Result<Vec<(u64, u64)>> {
        let max_block = u64::from(self.archive.footer().max_block_length.get());
        let cut = max_block.max(target) - max_block / 2;
        let mut page = hexz_format::error::try_zeroed(self.archive.page_bytes(), "index page")?;
        let mut chunks = Vec::new();
        let mut start = offset;
        let end = offset + length;
        for block in self.archive.blocks(offset, length, &mut page).map_err(|e| self.error(e))? {
            let block_end = block.map_err(|e| self.error(e))?.end().min(end);
            if (block_end - start >= cut && end - block_end >= max_block / 2) || block_end == end {
                chunks.push((start, block_end - start));
                start = block_end;
            }
        }
        Ok(chunks)
    }

    /// Decode `[offset, offset + length)` on up to `threads` threads (0: one
    /// per core) and hand the bytes to `sink`, in order when it asks for
    /// order. Memory: one chunk per thread. Any error or a `Break` from
    /// `progress` (bytes done so far) stops every thread; no thread waits
    /// forever on another.
    pub fn read_range_parallel(
        &self,
        offset: u64,
        length: u64,
        sink: &dyn RangeSink,
        threads: usize,
        progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
    ) -> Result<()> {
        self.check_range(offset, length)?;
        let chunks = self.chunks(offset, length, CHUNK)?;
        let turn = Turnstile::new(sink.ordered());
        let done = AtomicU64::new(0);
        let largest = chunks.iter().map(|c| c.1).max().unwrap_or(0) as usize;
        let work: Vec<(usize, (u64, u64))> = chunks.into_iter().enumerate().collect();
        run_parallel(
            work,
            self.threads(threads),
            &turn,
            || hexz_format::error::try_zeroed(largest, "decode buffer").map_err(Error::Format),
            |buf: &mut Vec<u8>, (k, (start, len))| {
                let dst = &mut buf[..len as usize];
                self.read_at(start, dst)?;
                turn.wait_for(k)?;
                let written = sink.write_at(start - offset, dst);
                turn.done(k);
                written?;
                report_progress(progress, &done, len)
            },
        )
    }

    /// Decode `[offset, offset + out.len())` straight into `out` on up to
    /// `threads` threads (0: one per core): no intermediate copy.
    pub fn read_into_parallel(
        &self,
        offset: u64,
        out: &mut [u8],
        threads: usize,
        progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
    ) -> Result<()> {
        self.read_many_into_parallel(vec![(offset, out)], threads, progress)
    }

    /// Decode each `(offset, out)` range straight into its `out` (several
    /// tensors into their arrays, say), all ranges' blocks shared among up
    /// to `threads` threads (0: one per core), so that many small ranges
    /// keep every thread busy as one large range does.
    pub fn read_many_into_parallel(
        &self,
        ranges: Vec<(u64, &mut [u8])>,
        threads: usize,
        progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
    ) -> Result<()> {
        let threads = self.threads(threads);
        // Pieces of CHUNK, smaller when that would leave a thread idle (a
        // read of a few megabytes): then one piece a thread, for few reads.
        let total: u64 = ranges.iter().map(|r| r.1.len() as u64).sum();
        let target = (total / threads as u64).clamp(1, CHUNK);
        let mut work = Vec::with_capacity(ranges.len());
        for (offset, out) in ranges {
            self.check_range(offset, out.len() as u64)?;
            if out.len() as u64 <= target {
                work.push((offset, out));
                continue;
            }
            let mut rest = out;
            for (start, len) in self.chunks(offset, rest.len() as u64, target)? {
                let (head, tail) = std::mem::take(&mut rest).split_at_mut(len as usize);
                work.push((start, head));
                rest = tail;
            }
        }
        // Largest first: the last pieces to finish are small ones.
        work.sort_by_key(|w| std::cmp::Reverse(w.1.len()));
        let done = AtomicU64::new(0);
        let turn = Turnstile::new(false);
        run_parallel(
            work,
            threads,
            &turn,
            || Ok(()),
            |_: &mut (), (start, dst): (u64, &mut [u8])| {
                self.read_at(start, dst)?;
                report_progress(progress, &done, dst.len() as u64)
            },
        )
    }

    fn check_range(&self, offset: u64, length: u64) -> Result<()> {
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > self.size()) {
            return Err(self.error(hexz_format::Error::OutOfRange { offset, length, size: self.size() }));
        }
        Ok(())
    }

    /// Threads for a parallel read: as asked (0: one per core), within the
    /// read slots and [`MAX_READ_THREADS`].
    fn threads(&self, threads: usize) -> usize {
        threads_or_cores(threads).clamp(1, MAX_READ_THREADS).min(self.pool.max)
    }
}

/// `threads`, or one per core when it is 0.
pub(crate) fn threads_or_cores(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
}

/// Add `n` bytes to `done` and tell `progress`; its `Break` cancels.
fn report_progress(progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync), done: &AtomicU64, n: u64) -> Result<()> {
    let total = done.fetch_add(n, Ordering::Relaxed) + n;
    match progress(total) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(Error::Cancelled),
    }
}

/// Target size of one piece of a parallel read: large enough that a piece
/// is a few coalesced reads, small enough to keep every thread busy.
const CHUNK: u64 = 4 << 20;

/// Where a parallel read delivers its bytes.
pub trait RangeSink: Sync {
    /// Whether pieces must arrive in order (a pipe, a hash); otherwise they
    /// come in any order (positioned writes).
    fn ordered(&self) -> bool;

    /// Take the bytes at `offset` from the start of the range.
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
}

/// An ordered sink that hashes what it is given.
#[derive(Default)]
pub struct HashSink(Mutex<blake3::Hasher>);

impl HashSink {
    /// A sink hashing nothing yet.
    pub fn new() -> Self {
        HashSink::default()
    }

    /// A sink hashing with `hasher` (an archive's [`source_hasher`](hexz_format::Archive::source_hasher)).
    pub fn with(hasher: blake3::Hasher) -> Self {
        HashSink(Mutex::new(hasher))
    }

    /// BLAKE3 of everything written.
    pub fn finalize(&self) -> [u8; 32] {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()).finalize().as_bytes()
    }
}

impl RangeSink for HashSink {
    fn ordered(&self) -> bool {
        true
    }

    fn write_at(&self, _offset: u64, data: &[u8]) -> Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).update(data);
        Ok(())
    }
}

/// Lets ordered pieces through one at a time, in order.
struct Turnstile {
    ordered: bool,
    next: Mutex<usize>,
    moved: Condvar,
    stop: AtomicBool,
}

impl Turnstile {
    fn new(ordered: bool) -> Self {
        Turnstile { ordered, next: Mutex::new(0), moved: Condvar::new(), stop: AtomicBool::new(false) }
    }

    /// Wait until piece `k` may be delivered (at once when unordered).
    fn wait_for(&self, k: usize) -> Result<()> {
        if !self.ordered {
            return Ok(());
        }
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        while *next != k {
            if self.stop.load(Ordering::Acquire) {
                return Err(Error::Cancelled);
            }
            next = self.moved.wait(next).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    fn done(&self, k: usize) {
        if self.ordered {
            *self.next.lock().unwrap_or_else(|e| e.into_inner()) = k + 1;
            self.moved.notify_all();
        }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _guard = self.next.lock().unwrap_or_else(|e| e.into_inner());
        self.moved.notify_all();
    }
}

/// Run `work` on `threads` threads, each with state from `init`. The first
/// error stops everything and is returned (errors caused by the stop are
/// not); a panic in a worker (the calling thread is one) becomes
/// [`Error::Panic`] with its message, from whichever thread it came.
fn run_parallel<T: Send, S>(
    work: Vec<T>,
    threads: usize,
    turn: &Turnstile,
    init: impl Fn() -> Result<S> + Sync,
    each: impl Fn(&mut S, T) -> Result<()> + Sync,
) -> Result<()> {
    let threads = threads.min(work.len()).max(1);
    let queue = Mutex::new(work.into_iter());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let fail = |e: Error| {
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() && !turn.stop.load(Ordering::Acquire) {
            *slot = Some(e);
        }
        drop(slot);
        turn.stop();
    };
    let started = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let worker = || {
            started.fetch_add(1, Ordering::Relaxed);
            let mut state = match init() {
                Ok(s) => s,
                Err(e) => return fail(e),
            };
            loop {
                if turn.stop.load(Ordering::Acquire) {
                    return;
                }
                let item = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(item) = item else { return };
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| each(&mut state, item)));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return fail(e),
                    // The panic's own message, as the caller's PANIC status says.
                    Err(payload) => return fail(Error::panic(&*payload)),
                }
            }
        };
        for _ in 1..threads {
            scope.spawn(worker);
        }
        worker();
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Fault in the whole pages of a large destination with one call before
/// the decoder writes them: a caller's fresh buffer (an engine's tensor
/// memory, a new vector) otherwise takes a page fault per 4 KiB inside the
/// decode. On gemma through the C API, two threads: 69,000 faults become
/// 24,000 and CPU time drops 5–13%. Only advice (Linux's
/// `MADV_POPULATE_WRITE`; nothing elsewhere): an error changes nothing,
/// and no byte changes.
fn populate(buf: &mut [u8]) {
    crate::platform::populate(buf)
}

/// Read workspaces, created on demand up to `max`, each `size` bytes.
struct WorkspacePool {
    size: usize,
    max: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    free: Vec<Workspace>,
    created: usize,
}

impl WorkspacePool {
    fn new(size: usize, max: usize) -> Self {
        WorkspacePool {
            size,
            max: max.max(1),
            state: Mutex::new(PoolState { free: Vec::new(), created: 0 }),
            returned: Condvar::new(),
        }
    }

    fn created(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).created
    }

    /// A workspace for one read; returned to the pool when the guard drops
    /// (also when a read callback panics). Creating one may fail for lack
    /// of memory: then the caller waits for another, or gets the error
    /// when there is none.
    fn acquire(&self) -> hexz_format::Result<PoolGuard<'_>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(ws) = state.free.pop() {
                return Ok(PoolGuard { pool: self, ws: Some(ws) });
            }
            if state.created < self.max {
                state.created += 1;
                drop(state);
                match Workspace::new(self.size) {
                    Ok(ws) => return Ok(PoolGuard { pool: self, ws: Some(ws) }),
                    Err(e) => {
                        state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                        state.created -= 1;
                        if state.created == 0 {
                            return Err(e);
                        }
                    }
                }
            }
            state = self.returned.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

struct PoolGuard<'a> {
    pool: &'a WorkspacePool,
    ws: Option<Workspace>,
}

impl std::ops::Deref for PoolGuard<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        self.ws.as_ref().expect("workspace held until drop")
    }
}

impl std::ops::DerefMut for PoolGuard<'_> {
    fn deref_mut(&mut self) -> &mut Workspace {
        self.ws.as_mut().expect("workspace held until drop")
    }
}

impl Drop for PoolGuard<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            self.pool.state.lock().unwrap_or_else(|p| p.into_inner()).free.push(ws);
            self.pool.returned.notify_one();
        }
    }
}

impl ReadAt for Reader {
    fn len(&self) -> u64 {
        self.size()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> hexz_format::Result<()> {
        let mut ws = self.pool.acquire()?;
        self.archive.read_at(offset, buf, &mut *ws)
    }
}
