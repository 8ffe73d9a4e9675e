//! Verifying an archive and its whole chain. Structure is checked by the
//! core's walk; the deep check decodes the whole file with the shared
//! parallel decoder and compares its BLAKE3 with the recorded source hash.
//! When that fails, the core's one-thread walk runs instead, so that every
//! bad block is reported, not just the first.

use std::ops::ControlFlow;

use hexz_format::verify::{check_source_header, verify_open, Problem, Report};
use hexz_format::Archive;

use crate::location::{Location, Source};
use crate::reader::{HashSink, Reader};
use crate::resolve::{open_chain, Chain, OpenOptions};

/// What to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Structure only: header, footer, directory, every page and entry, the
    /// manifest. Reads no block data.
    Quick,
    /// Structure, then every block decoded and hashed, the whole source's
    /// BLAKE3, and the archived source header against the manifest.
    Deep,
}

/// Verify the archive at `location` and every ancestor of its chain (each
/// once); ancestors' problems name their location. `progress` gets (bytes
/// decoded, bytes to decode) of the archive itself.
pub fn verify_location(
    location: &Location,
    opts: &OpenOptions,
    depth: Depth,
    threads: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> Report {
    let mut report = Report::default();
    // The archive alone first, so its own faults are not blamed on the chain.
    let source = match opts.resolver.open(location) {
        Ok(s) => s,
        Err(e) => {
            report.push("archive", e);
            return report;
        }
    };
    match crate::resolve::open_archive(source, opts) {
        Err(e) => {
            report.push("archive", e);
            return report;
        }
        Ok(a) if !opts.trusted_keys.is_empty() => {
            if let Err(e) = a.check_signature(&opts.trusted_keys) {
                report.push("signature", e);
                return report;
            }
        }
        Ok(_) => {}
    }
    let chain = match open_chain(location, opts) {
        Ok(c) => c,
        Err(e) => {
            report.push("parent chain", e);
            return report;
        }
    };
    let Chain { archive, locations } = chain;
    for d in 1..archive.chain_len() {
        let Some(member) = archive.member(d) else { continue };
        let tail: Vec<_> =
            (d + 1..archive.chain_len()).filter_map(|k| archive.member(k)).map(Archive::detached).collect();
        let Ok(rooted) = member.detached().with_ancestors(tail) else { continue };
        let mut sub = Report::default();
        let chain = Chain { archive: rooted, locations: locations[d..].to_vec() };
        verify_chain(chain, opts, depth, threads, &mut sub, &|_, _| {});
        merge(&mut report, sub, Some(&locations[d]));
    }
    let mut own = Report::default();
    verify_chain(Chain { archive, locations }, opts, depth, threads, &mut own, progress);
    let ancestors = std::mem::take(&mut report);
    merge(&mut report, own, None);
    merge(&mut report, ancestors, None);
    report
}

fn merge(into: &mut Report, from: Report, at: Option<&Location>) {
    into.blocks_checked += from.blocks_checked;
    into.blocks_decoded += from.blocks_decoded;
    into.tensors_checked += from.tensors_checked;
    for p in from.problems {
        let location = match at {
            Some(l) => format!("{l}: {}", p.location),
            None => p.location,
        };
        into.problems.push(Problem { location, message: p.message });
    }
}

/// Verify the first archive of `chain` (its ancestors attached, not verified).
fn verify_chain(
    chain: Chain,
    opts: &OpenOptions,
    depth: Depth,
    threads: usize,
    report: &mut Report,
    progress: &(dyn Fn(u64, u64) + Sync),
) {
    verify_open(&chain.archive, false, report, &|_| {});
    if depth == Depth::Quick || !report.is_ok() {
        if depth == Depth::Deep && !report.is_ok() {
            // Structure is broken: the one-thread walk reports what it can decode.
            *report = Report::default();
            verify_open(&chain.archive, true, report, &|_| {});
        }
        return;
    }
    let reader = match Reader::from_chain(chain, opts) {
        Ok(r) => r,
        Err(e) => return report.push("archive", e),
    };
    let size = reader.size();
    let hash = HashSink::with(reader.archive().source_hasher());
    let decoded = reader.read_range_parallel(0, size, &hash, threads, &|done| {
        progress(done, size);
        ControlFlow::Continue(())
    });
    let archive: &Archive<Source> = reader.archive();
    match decoded {
        Ok(()) => {
            report.blocks_decoded = report.blocks_checked;
            if hash.finalize() != archive.source_hash() {
                report.push("footer source_hash", "the decoded source does not match the recorded BLAKE3");
            }
            match archive.manifest() {
                Ok(m) => check_source_header(archive, &m, report),
                Err(e) => report.push("manifest", e),
            }
        }
        Err(_) => {
            *report = Report::default();
            verify_open(archive, true, report, &|_| {});
        }
    }
}
