//! # hexz-io
//!
//! Hexz on `std`, between the no_std format core (`hexz-format`) and every
//! front end (the `hexz` CLI, the C ABI, the Python and Go bindings, remote
//! sources, the mount). It holds what needs files, threads or the OS, once:
//!
//! - [`Location`] and [`FileSource`]: where archives are, and local files
//!   read with positioned reads (never blocking on a FIFO);
//! - [`Resolver`] and [`open_chain`]: parents found by hint, confirmed by
//!   identity, with their real errors kept;
//! - [`Reader`]: an archive with its chain, tensor table and name index,
//!   a bounded pool of read workspaces, and the one parallel range decoder
//!   used by extract, memfd, deep verify and diff;
//! - [`Store`]: the one way to store (a path, bytes or any source; options
//!   by methods, checked by [`options`]; to a path or, through a
//!   [`SinkResolver`], a URL), over [`store_parallel`], the core's writer
//!   driven by a pipeline of threads within a memory budget;
//! - [`options`]: option names and defaults every front end shares;
//! - [`Error`]: errors naming the file at fault, with their status code
//!   and its [`Category`](hexz_format::Category);
//! - [`CachedReader`]: a Reader serving small reads from a bounded cache
//!   of decoded blocks ([`SharedCache`] over [`RangeCache`]), each decoded
//!   once however many threads want it, with read-ahead for sequential
//!   readers (the mount; remote sources keep fetched ranges in the same
//!   cache);
//! - [`extract_to`] and [`memfd`]: the whole source file to a path, or
//!   into a sealed in-memory file (Linux);
//! - [`Output`]: atomic, no-clobber, never-over-an-input destinations;
//! - [`verify_location`]: the chain-aware verify;
//! - [`sign`]: key files, signing and trusted keys (format 1.4).
//!
//! ```no_run
//! use hexz_io::{OpenOptions, Reader};
//! let reader = Reader::open(std::path::Path::new("model.hxz"), &OpenOptions::default())?;
//! let (index, info) = reader.tensor("token_embd.weight").expect("present");
//! let mut buf = vec![0u8; info.length as usize];
//! reader.read_tensor(index, &mut buf)?;
//! # Ok::<(), hexz_io::Error>(())
//! ```

#![deny(missing_docs)]

mod builder;
pub mod cache;
mod cached;
mod error;
mod extract;
mod folder;
pub mod keys;
mod location;
mod names;
pub mod options;
pub mod output;
mod platform;
mod reader;
mod resolve;
pub mod sign;
mod store;
mod verify;

pub use builder::{local_parent_hint, Clobber, LocalSinkResolver, Progress, Sink, SinkOptions, SinkResolver, Store};
pub use cache::{RangeCache, SharedCache};
pub use cached::{CacheOptions, CachedReader};
pub use error::{at_chain, panic_message, Error, Result};
pub use extract::{extract_ranges, extract_to, memfd};
pub use folder::{extract_folder, plan_folder, walk, FolderSource};
pub use location::{CountingSource, FileId, FileSource, FileStamp, Location, Source};
pub use names::CNames;
pub use output::{AtomicFile, Output, OutputOptions, OutputSink};
pub use reader::{HashSink, RangeSink, Reader, DEFAULT_READ_SLOTS, MAX_READ_SLOTS, MAX_READ_THREADS};
pub use resolve::{open_chain, open_chain_from, Chain, LocalResolver, OpenOptions, Resolver};
pub use store::{store_parallel, store_plan_parallel, Parent};
pub use verify::{verify_location, Depth};

pub use hexz_format;
