//! Storing on many threads: the core's pieces (cutter, [`encode_block`],
//! [`ArchiveWriter`]) driven by a pipeline.
//!
//! One thread cuts the source into blocks, workers hash and encode them, and
//! the calling thread puts them back in order and writes them. A bounded
//! in-flight count keeps memory to a budget whatever the thread count.
//! Any failure in any stage, or a `Break` from the progress callback, ends
//! every stage: the failing stage drops its channel ends, so every other
//! stage's next send or receive fails and it returns. No stage can wait
//! forever on another.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{bounded, Receiver, Sender};
use hexz_format::manifest::ParentRef;
use hexz_format::pipeline::{
    chunker, encode_block, ArchiveWriter, Cutter, EncodeState, EncodedJob, FilterChoice, ParentIndex,
};
use hexz_format::plan::{plan, Plan};
use hexz_format::writer::{StoreOptions, StoreReport};
use hexz_format::{Archive, ErrorCode, FilterId, ReadAt};

use crate::error::{Error, Result};
use crate::location::{FileId, Location, Source};
use crate::reader::{threads_or_cores, Reader};

/// The archive to store against, and where its chain members are (to name
/// a parent at fault).
pub struct Parent<'a> {
    /// The parent archive, with its ancestors attached.
    pub archive: &'a Archive<Source>,
    /// Where each member of its chain is (`chain[0]` is the parent).
    pub chain: &'a [Location],
    /// The path hint to record, relative to the child's folder.
    pub hint: String,
}

/// A leader's filter choice, awaited by the blocks that follow it.
#[derive(Default)]
struct Decision {
    filter: Mutex<Option<Option<FilterId>>>,
    ready: Condvar,
}

impl Decision {
    fn set(&self, filter: Option<FilterId>) {
        let mut slot = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(filter);
        self.ready.notify_all();
    }

    fn wait(&self) -> Option<FilterId> {
        let mut slot = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(filter) = *slot {
                return filter;
            }
            slot = self.ready.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Releases a leader's followers however the leader ends (error, panic).
struct LeadGuard(Option<Arc<Decision>>);

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if let Some(d) = &self.0 {
            d.set(None);
        }
    }
}

enum Choice {
    Lead(Arc<Decision>),
    Follow(Arc<Decision>),
}

/// A failure of one stage, named by the side at fault.
enum Fault {
    Source(hexz_format::Error),
    Parent(hexz_format::Error),
    Sink(Error),
    Other(Error),
}

/// Store `src` (named `src_name` in errors) into `out` on up to
/// `opts.threads` workers, as a child of `parent` when given. `progress`
/// gets source bytes done; `Break` cancels. The bytes written equal those
/// of the core's one-thread [`hexz_format::writer::store`].
pub fn store_parallel(
    src: &(dyn ReadAt + Sync),
    src_name: &Location,
    out: &mut dyn Write,
    out_name: &Path,
    opts: &StoreOptions,
    parent: Option<Parent<'_>>,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<StoreReport> {
    // store_plan_parallel validates the options.
    let plan = plan(src, opts.raw).map_err(|e| Error::At { location: src_name.clone(), source: e })?;
    store_plan_parallel(src, plan, src_name, out, out_name, opts, parent, progress)
}

/// [`store_parallel`] of a source already planned (a folder's files laid
/// end to end). Source errors are named `src_name`, or the file they fall
/// in for a folder.
#[allow(clippy::too_many_arguments)]
pub fn store_plan_parallel(
    src: &(dyn ReadAt + Sync),
    plan: Plan,
    src_name: &Location,
    out: &mut dyn Write,
    out_name: &Path,
    opts: &StoreOptions,
    parent: Option<Parent<'_>>,
    progress: &(dyn Fn(u64) -> ControlFlow<()> + Sync),
) -> Result<StoreReport> {
    opts.validate()?;
    if plan.virtual_size() != src.len() {
        return Err(Error::invalid("the plan does not cover the source"));
    }
    let at_src = |e: hexz_format::Error| {
        // In a folder, name the file the failing offset falls in.
        let offset = match e.innermost().1 {
            hexz_format::Error::Io { offset, .. } | hexz_format::Error::Truncated { offset, .. } => Some(*offset),
            _ => None,
        };
        let file = offset.and_then(|o| {
            plan.files.iter().rev().find(|f| f.kind == hexz_format::layout::FileKind::File && f.offset <= o)
        });
        let location = match (src_name, file) {
            (Location::Path(root), Some(f)) => Location::Path(root.join(&f.path)),
            _ => src_name.clone(),
        };
        Error::At { location, source: e }
    };
    let parent_archive = parent.as_ref().map(|p| p.archive);
    let parent_chain = parent.as_ref().map_or(&[][..], |p| p.chain);
    // Depths as seen from the child: depth 1 is the parent, `chain[0]` of its reader.
    let parent_error = |e: hexz_format::Error| {
        let (depth, inner) = e.innermost();
        match parent_chain.get(usize::from(depth).saturating_sub(1)) {
            Some(location) if depth > 0 => Error::At { location: location.clone(), source: inner.clone() },
            _ => Error::Format(e),
        }
    };
    opts.check_parent(parent_archive).map_err(Error::Format)?;
    let index =
        ParentIndex::build(parent_archive, &plan, opts.allowed_features()).map_err(|e| parent_error(e.in_parent()))?;

    let threads = threads_or_cores(opts.threads);
    let by_budget = (opts.memory_budget / opts.worker_bytes().max(1)).max(1);
    let workers = threads.clamp(1, by_budget);
    // Blocks between the cutter and the writer: enough to keep workers fed.
    let in_flight = (opts.memory_budget / 2 / opts.block_size as usize).clamp(workers + 1, 4 * workers + 4);

    let mut writer = ArchiveWriter::new(opts, &plan, src.len(), &index);
    let write = |out: &mut dyn Write, bytes: &[u8]| out.write_all(bytes).map_err(|e| Error::file(out_name, "write", e));
    write(out, &writer.header_bytes())?;

    let stop = AtomicBool::new(false);
    let index = &index;
    let plan_ref = &plan;
    let outcome = std::thread::scope(|scope| -> std::result::Result<[u8; 32], Fault> {
        let (job_tx, job_rx) = bounded::<(hexz_format::pipeline::BlockJob, Choice)>(workers);
        let (done_tx, done_rx) = bounded::<std::result::Result<EncodedJob, Fault>>(workers);
        let (permit_tx, permit_rx): (Sender<()>, Receiver<()>) = bounded(in_flight);
        let stop = &stop;

        for _ in 0..workers {
            let job_rx = job_rx.clone();
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                let mut state = match EncodeState::new(opts, parent_archive) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = done_tx.send(Err(Fault::Other(Error::Format(e))));
                        return;
                    }
                };
                for (job, choice) in job_rx.iter() {
                    let (lead, choice) = match choice {
                        Choice::Lead(d) => (LeadGuard(Some(d)), FilterChoice::Lead),
                        Choice::Follow(d) => (LeadGuard(None), FilterChoice::Follow(d.wait())),
                    };
                    let result = encode_block(&job, choice, &mut state, parent_archive, index);
                    if let (Some(d), Ok(done)) = (&lead.0, &result) {
                        d.set(done.decision());
                    }
                    drop(lead);
                    let failed = result.is_err();
                    let sent = done_tx.send(result.map_err(|e| match e.innermost().0 {
                        0 => Fault::Other(Error::Format(e)),
                        _ => Fault::Parent(e),
                    }));
                    if sent.is_err() || failed || stop.load(Ordering::Relaxed) {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        drop(job_rx);

        // The cutter: reads the source in order, hashing it.
        let cutter = scope.spawn(move || -> std::result::Result<[u8; 32], hexz_format::Error> {
            let chunker = chunker(opts).map_err(|_| hexz_format::Error::InvalidArgument("chunking not available"))?;
            let mut cutter = Cutter::new(src, plan_ref, &index.bases, chunker).with_source_hasher(opts.source_hasher());
            let mut decision = Arc::new(Decision::default());
            while let Some(job) = cutter.next_block()? {
                if permit_tx.send(()).is_err() || stop.load(Ordering::Relaxed) {
                    return Err(hexz_format::Error::Cancelled);
                }
                // A block with nothing to choose never waits for a leader.
                let choice = if job.leads {
                    decision = Arc::new(Decision::default());
                    Choice::Lead(decision.clone())
                } else if !hexz_format::pipeline::chooses_filter(&job, opts) {
                    Choice::Lead(Arc::new(Decision::default()))
                } else {
                    Choice::Follow(decision.clone())
                };
                if job_tx.send((job, choice)).is_err() {
                    return Err(hexz_format::Error::Cancelled);
                }
            }
            Ok(cutter.source_hash())
        });

        // The writer: blocks back in order, referenced or written.
        let mut pending: BTreeMap<u64, EncodedJob> = BTreeMap::new();
        let mut next = 0u64;
        let mut fault = None;
        'receive: for done in done_rx.iter() {
            let done = match done {
                Ok(d) => d,
                Err(f) => {
                    fault = Some(f);
                    break;
                }
            };
            pending.insert(done.index, done);
            while let Some(done) = pending.remove(&next) {
                next += 1;
                let placed = writer.add(&done, index).map_err(|e| Fault::Other(Error::Format(e)));
                let written = match placed {
                    Ok(true) => write(out, &done.bytes).map_err(Fault::Sink),
                    Ok(false) => Ok(()),
                    Err(f) => Err(f),
                };
                if let Err(f) = written {
                    fault = Some(f);
                    break 'receive;
                }
                let _ = permit_rx.recv();
                if progress(done.offset + u64::from(done.length)).is_break() {
                    fault = Some(Fault::Other(Error::Cancelled));
                    break 'receive;
                }
            }
        }
        if fault.is_some() {
            // Unblock every stage: senders to dropped receivers fail at once.
            stop.store(true, Ordering::Relaxed);
            drop(done_rx);
            drop(permit_rx);
        }
        let cut = cutter.join().map_err(|payload| Fault::Other(Error::panic(&*payload)));
        if let Some(f) = fault {
            // A source error that stopped the cutter is the real cause.
            return Err(match cut {
                Ok(Err(e)) if e.code() != ErrorCode::Cancelled => Fault::Source(e),
                _ => f,
            });
        }
        let hash = cut?.map_err(Fault::Source)?;
        if !pending.is_empty() {
            return Err(Fault::Other(Error::Format(hexz_format::Error::InvalidArgument("store pipeline lost blocks"))));
        }
        Ok(hash)
    });
    let source_hash = outcome.map_err(|f| match f {
        Fault::Source(e) => at_src(e),
        Fault::Parent(e) => parent_error(e),
        Fault::Sink(e) | Fault::Other(e) => e,
    })?;
    let parent_ref = parent.map(|p| ParentRef { identity: p.archive.identity(), hint: p.hint });
    let warnings = index.warnings.clone();
    let (tail, mut report) = writer.finish(plan, opts, parent_ref, source_hash)?;
    write(out, &tail)?;
    out.flush().map_err(|e| Error::file(out_name, "write", e))?;
    report.warnings = warnings;
    Ok(report)
}

/// The archives of a base's chain, as inputs no output may overwrite.
pub(crate) fn base_inputs(base: Option<&Reader>) -> Vec<(FileId, String)> {
    base.iter()
        .flat_map(|b| b.chain())
        .filter_map(|l| {
            l.as_path().and_then(FileId::of_path).map(|id| (id, format!("an archive of the base chain ({l})")))
        })
        .collect()
}
