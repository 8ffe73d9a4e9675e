//! [`Store`]: the one way every front end stores an archive. The source is
//! a file or folder path, bytes in memory, or any [`ReadAt`]; options are
//! set by methods and checked once ([`crate::options`]); the destination is
//! a [`Location`] opened by a [`SinkResolver`] (local paths here, URLs by
//! hexz-remote's), as the read side opens archives through a
//! [`Resolver`](crate::Resolver).
//!
//! ```no_run
//! use hexz_io::{Clobber, Store};
//! let report = Store::from_path("model.safetensors")
//!     .to_path("model.hxz")
//!     .compression("zstd".parse()?)
//!     .level(Some(5))
//!     .clobber(Clobber::Replace)
//!     .run()?;
//! println!("{} -> {} bytes", report.source_size, report.archive_size);
//! # Ok::<(), hexz_io::Error>(())
//! ```

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hexz_format::manifest::MetadataValue;
use hexz_format::plan::{plan, Plan};
use hexz_format::writer::{Chunking, StoreOptions, StoreReport};
use hexz_format::{ErrorCode, ReadAt};

use crate::error::{Error, Result};
use crate::folder::{plan_folder, walk, FolderSource};
use crate::location::{FileId, FileSource, Location};
use crate::options::{CompressionKind, FormatVersion};
use crate::output::{relative_path, Output, OutputOptions};
use crate::reader::Reader;
use crate::resolve::OpenOptions;
use crate::store::{base_inputs, store_plan_parallel, Parent};

/// What to do when the destination exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clobber {
    /// Refuse (INVALID_ARGUMENT), atomically: of two writers racing to a
    /// new name, exactly one wins. The default.
    #[default]
    Refuse,
    /// Replace it atomically.
    Replace,
}

/// How a [`SinkResolver`] opens a destination.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// What to do when the destination exists.
    pub clobber: Clobber,
    /// Files the store reads (the source, the base's chain): the
    /// destination must not be one of them.
    pub inputs: Vec<(FileId, String)>,
}

/// A destination being written: the archive appears only on
/// [`commit`](Sink::commit); dropped uncommitted, nothing appears.
pub trait Sink: Send {
    /// Where the archive's bytes go, in order.
    fn writer(&mut self) -> Box<dyn Write + '_>;
    /// Write the archive's final header over its first bytes, once the
    /// writer is done (it declares exactly the features the blocks used,
    /// known only at the end). A destination that cannot seek back (a
    /// stream, an upload) keeps the provisional one, which declares a
    /// superset and reads the same.
    fn rewrite_start(&mut self, _header: &[u8]) -> Result<()> {
        Ok(())
    }
    /// Make the archive appear (rename into place, complete the upload).
    fn commit(self: Box<Self>) -> Result<()>;
}

/// Opens the destinations archives are stored to. The local resolver
/// writes paths; a remote one (hexz-remote) uploads to URLs and hands paths
/// to this one.
pub trait SinkResolver: Send + Sync {
    /// Open `dst` to receive an archive.
    fn create(&self, dst: &Location, opts: &SinkOptions) -> Result<Box<dyn Sink>>;

    /// The parent hint an archive at `dst` records for its base at
    /// `parent`: the path relative to `dst`'s folder (or the parent's URL).
    fn parent_hint(&self, dst: &Location, parent: &Location) -> String {
        local_parent_hint(dst, parent)
    }
}

/// The hint for a local child: `parent`'s path relative to `dst`'s
/// folder, or its URL.
pub fn local_parent_hint(dst: &Location, parent: &Location) -> String {
    match (dst, parent) {
        (Location::Path(dst), Location::Path(p)) => {
            let dst_dir = dst.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            relative_path(dst_dir, p)
        }
        (_, Location::Path(p)) => p.display().to_string(),
        (_, Location::Url(u) | Location::Label(u)) => u.clone(),
    }
}

/// Writes local paths (`-` is standard output) through [`Output`]:
/// atomically, never over an input. URLs need a remote resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalSinkResolver;

struct LocalSink(Output);

impl Sink for LocalSink {
    fn writer(&mut self) -> Box<dyn Write + '_> {
        self.0.writer()
    }
    fn rewrite_start(&mut self, header: &[u8]) -> Result<()> {
        self.0.rewrite_start(header)
    }
    fn commit(self: Box<Self>) -> Result<()> {
        self.0.commit()
    }
}

impl SinkResolver for LocalSinkResolver {
    fn create(&self, dst: &Location, opts: &SinkOptions) -> Result<Box<dyn Sink>> {
        match dst {
            Location::Path(p) => {
                let force = opts.clobber == Clobber::Replace;
                Ok(Box::new(LocalSink(Output::open(p, &OutputOptions { force, inputs: opts.inputs.clone() })?)))
            }
            Location::Url(u) => Err(Error::refused(
                u.clone(),
                "storing to a URL needs a build with remote support (hexz-remote)",
                ErrorCode::Unsupported,
            )),
            Location::Label(l) => {
                Err(Error::refused(l.clone(), "not a place archives can be stored to", ErrorCode::InvalidArgument))
            }
        }
    }
}

/// The bytes a [`Store`] reads.
enum Input<'a> {
    /// A file or a folder, told apart when the store runs.
    Path(PathBuf),
    /// Bytes in memory.
    Slice(&'a [u8]),
    /// Any [`ReadAt`], named in errors by `name`.
    Bytes { bytes: &'a (dyn ReadAt + Sync), name: Location },
}

/// Progress: source bytes done so far; `Break` cancels.
pub type Progress<'a> = &'a (dyn Fn(u64) -> ControlFlow<()> + Sync);

/// A store to be run: the source, the options, the destination. Every
/// option has the default of [`crate::options`]; [`run`](Store::run)
/// checks them all before anything is written.
pub struct Store<'a> {
    input: Input<'a>,
    dst: Option<Location>,
    opts: StoreOptions,
    kind: Option<CompressionKind>,
    level: Option<i32>,
    format: Option<FormatVersion>,
    base: Option<Location>,
    open: OpenOptions,
    clobber: Clobber,
    sinks: Arc<dyn SinkResolver>,
    unchanged: Option<&'a (dyn Fn() -> Result<()> + Sync)>,
    progress: Option<Progress<'a>>,
}

impl<'a> Store<'a> {
    fn new(input: Input<'a>) -> Self {
        Store {
            input,
            dst: None,
            opts: StoreOptions::default(),
            kind: None,
            level: None,
            format: None,
            base: None,
            open: OpenOptions::default(),
            clobber: Clobber::default(),
            sinks: Arc::new(LocalSinkResolver),
            unchanged: None,
            progress: None,
        }
    }

    /// Store the file or folder at `path` (a folder becomes a folder
    /// archive). Fails if a file changes while it is read.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Store::new(Input::Path(path.into()))
    }

    /// Store bytes in memory.
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Store::new(Input::Slice(bytes))
    }

    /// Store the bytes of any source, named `name` in errors.
    pub fn from_reader(bytes: &'a (dyn ReadAt + Sync), name: Location) -> Self {
        Store::new(Input::Bytes { bytes, name })
    }

    /// Where the archive goes: a path (`-` for standard output) or a URL
    /// (with a remote [`SinkResolver`]).
    pub fn to(mut self, dst: Location) -> Self {
        self.dst = Some(dst);
        self
    }

    /// [`to`](Self::to) a local path.
    pub fn to_path(self, dst: impl Into<PathBuf>) -> Self {
        self.to(Location::Path(dst.into()))
    }

    /// All the core's options at once (codec, block size, ...); the
    /// methods below override what they set.
    pub fn options(mut self, opts: StoreOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The codec of new blocks (default zstd).
    pub fn compression(mut self, kind: CompressionKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The zstd level of every block (`None`: the default levels); zstd only.
    pub fn level(mut self, level: Option<i32>) -> Self {
        self.level = level;
        self
    }

    /// How raw bytes are cut into blocks.
    pub fn chunking(mut self, chunking: Chunking) -> Self {
        self.opts.chunking = chunking;
        self
    }

    /// Largest block, 4 KiB to 64 MiB (default 1 MiB).
    pub fn block_size(mut self, bytes: u32) -> Self {
        self.opts.block_size = bytes;
        self
    }

    /// Store as a plain file: do not read safetensors or GGUF headers.
    pub fn raw(mut self, raw: bool) -> Self {
        self.opts.raw = raw;
        self
    }

    /// Write only what readers of `version` read (default the newest).
    pub fn format(mut self, version: FormatVersion) -> Self {
        self.format = Some(version);
        self
    }

    /// Worker threads (0: one per core; at most 256).
    pub fn threads(mut self, threads: usize) -> Self {
        self.opts.threads = threads;
        self
    }

    /// User metadata to record, keys unique.
    pub fn metadata(mut self, metadata: Vec<(String, MetadataValue)>) -> Self {
        self.opts.metadata = metadata;
        self
    }

    /// Store as a child of the archive at `base` (opened with its chain by
    /// the [`open_options`](Self::open_options)).
    pub fn base(mut self, base: Option<Location>) -> Self {
        self.base = base;
        self
    }

    /// How the base and its chain are opened (search folders, resolver).
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }

    /// What to do when the destination exists (default: refuse).
    pub fn clobber(mut self, clobber: Clobber) -> Self {
        self.clobber = clobber;
        self
    }

    /// Who opens the destination (default: local paths only).
    pub fn sinks(mut self, sinks: Arc<dyn SinkResolver>) -> Self {
        self.sinks = sinks;
        self
    }

    /// A check that the source did not change while it was read, run
    /// before the archive is committed (sources given as bytes).
    pub fn unchanged(mut self, check: &'a (dyn Fn() -> Result<()> + Sync)) -> Self {
        self.unchanged = Some(check);
        self
    }

    /// Told the source bytes done; `Break` cancels (CANCELLED) and nothing appears.
    pub fn progress(mut self, progress: Progress<'a>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Encrypt the archive (format 1.5; build it with
    /// [`EncryptTo::encryption`](crate::keys::EncryptTo::encryption)). A
    /// fine-tune of an encrypted base is encrypted under the base's key
    /// without asking; asking for another key is refused.
    pub fn encryption(mut self, encryption: Option<hexz_format::writer::Encryption>) -> Self {
        self.opts.encryption = encryption;
        self
    }

    /// The core's options with every method's setting applied, checked.
    pub fn store_options(&self) -> Result<StoreOptions> {
        let mut opts = self.opts.clone();
        if self.kind.is_some() || self.level.is_some() {
            opts.compression = self.kind.unwrap_or(crate::options::DEFAULT_COMPRESSION).with_level(self.level)?;
        }
        if let Some(version) = self.format {
            version.apply(&mut opts);
        }
        opts.validate()?;
        Ok(opts)
    }

    /// Store: the archive appears at the destination only when whole.
    pub fn run(self) -> Result<StoreReport> {
        let opts = self.store_options()?;
        let dst = self.dst.clone().ok_or_else(|| Error::invalid("no destination to store to"))?;
        let go = |_| ControlFlow::Continue(());
        let progress: Progress<'_> = self.progress.unwrap_or(&go);
        match &self.input {
            Input::Path(src) if std::fs::metadata(src).is_ok_and(|m| m.is_dir()) => {
                if let Location::Url(u) = &dst {
                    return Err(Error::refused(
                        u.clone(),
                        "storing a folder to a URL is not supported yet; store it locally, then upload",
                        ErrorCode::Unsupported,
                    ));
                }
                let mut warnings = Vec::new();
                let (plan, source) = plan_folder(walk(src, &mut warnings)?, opts.raw)?;
                if let Location::Path(d) = &dst {
                    let inside = d.starts_with(src)
                        || std::fs::canonicalize(d.parent().unwrap_or(Path::new(".")))
                            .is_ok_and(|d| std::fs::canonicalize(src).is_ok_and(|s| d.starts_with(s)));
                    if inside {
                        return Err(Error::refused(d, "is inside the folder being stored", ErrorCode::InvalidArgument));
                    }
                }
                let files = folder_inputs(&source);
                let name = Location::Path(src.clone());
                let mut report =
                    self.write(&source, plan, &name, files, &dst, &opts, progress, &|| source.check_unchanged())?;
                report.warnings.extend(warnings);
                Ok(report)
            }
            Input::Path(src) => {
                let source = FileSource::open(src)?;
                let name = Location::Path(src.clone());
                let plan = plan(&source, opts.raw).map_err(|e| Error::At { location: name.clone(), source: e })?;
                let file = source.stamp().id.map(|id| (id, "the source file".to_string()));
                self.write(&source, plan, &name, file.into_iter().collect(), &dst, &opts, progress, &|| {
                    source.check_unchanged()
                })
            }
            Input::Slice(slice) => {
                let name = Location::Label("bytes in memory".into());
                let plan = plan(slice, opts.raw).map_err(|e| Error::At { location: name.clone(), source: e })?;
                self.write(slice, plan, &name, Vec::new(), &dst, &opts, progress, &|| Ok(()))
            }
            Input::Bytes { bytes, name } => {
                let plan = plan(*bytes, opts.raw).map_err(|e| Error::At { location: name.clone(), source: e })?;
                let unchanged = self.unchanged.unwrap_or(&|| Ok(()));
                self.write(*bytes, plan, name, Vec::new(), &dst, &opts, progress, unchanged)
            }
        }
    }

    /// Open the base and the destination, run the pipeline, check the
    /// source, commit.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        src: &(dyn ReadAt + Sync),
        plan: Plan,
        name: &Location,
        files: Vec<(FileId, String)>,
        dst: &Location,
        opts: &StoreOptions,
        progress: Progress<'_>,
        unchanged: &(dyn Fn() -> Result<()> + Sync),
    ) -> Result<StoreReport> {
        let base = self.base.as_ref().map(|b| Reader::open(b.clone(), &self.open)).transpose()?;
        // A chain is under one key: a fine-tune of an encrypted base takes its key.
        let inherited;
        let opts = match base.as_ref().map(|b| b.archive()) {
            Some(b) if b.is_encrypted() && opts.encryption.is_none() => {
                inherited = StoreOptions { encryption: crate::keys::inherit(b)?, ..opts.clone() };
                &inherited
            }
            _ => opts,
        };
        let mut inputs = base_inputs(base.as_ref());
        inputs.extend(files);
        let mut sink = self.sinks.create(dst, &SinkOptions { clobber: self.clobber, inputs })?;
        let parent = base.as_ref().map(|b| Parent {
            archive: b.archive(),
            chain: b.chain(),
            hint: self.sinks.parent_hint(dst, b.location()),
        });
        let out_name = match dst {
            Location::Path(p) => p.clone(),
            Location::Url(u) | Location::Label(u) => PathBuf::from(u),
        };
        let report = {
            let mut w = sink.writer();
            store_plan_parallel(src, plan, name, &mut *w, &out_name, opts, parent, progress)?
        };
        sink.rewrite_start(&report.header)?;
        unchanged()?;
        sink.commit()?;
        Ok(report)
    }
}

/// The files of a folder being stored, as inputs no output may replace.
fn folder_inputs(source: &FolderSource) -> Vec<(FileId, String)> {
    source
        .files()
        .filter_map(|f| {
            f.stamp().id.map(|id| (id, format!("a file of the folder being stored ({})", f.path().display())))
        })
        .collect()
}
