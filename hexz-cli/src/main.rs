//! `hexz`: store, extract, inspect, list and verify `.hxz` archives.

mod inspect;
mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hexz_format::manifest::MetadataValue;
use hexz_format::writer::{store_file, StoreOptions};
use hexz_format::{Archive, Compression, FileSource};

use crate::util::{human_bytes, open_archive, progress_bar, CliError, Exit};

const EXAMPLES: &str = "\
Examples:
  hexz store model.safetensors model.hxz            # zstd -3, 1 MiB blocks
  hexz store model.gguf model.hxz --compression lz4
  hexz store ft.safetensors ft.hxz --base base.hxz  # a fine-tune as deltas against its base
  hexz store ft.safetensors ft.hxz --metadata run=42 --metadata 'cfg:={\"lr\":1e-4}'
  hexz extract model.hxz model.gguf                 # byte-identical source file
  hexz extract model.hxz --tensor token_embd.weight > emb.bin
  hexz inspect model.hxz --json
  hexz diff base.hxz ft.hxz                         # per-tensor changes
  hexz verify model.hxz --deep
  hexz ls ./checkpoints

Exit codes: 0 ok, 1 error, 2 usage, 3 verification found problems.";

#[derive(Parser)]
#[command(name = "hexz", version, about = "Seekable, deduplicated archives for model checkpoints", after_help = EXAMPLES)]
struct Cli {
    /// Print nothing but errors (and requested output).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More detail (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Extra folder to look for parent archives in, when they were moved (repeatable).
    #[arg(long = "parent-dir", global = true, value_name = "DIR")]
    parent_dirs: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a safetensors, GGUF or any other file into an archive.
    Store(StoreArgs),
    /// Extract the original file, or named tensors' raw bytes.
    Extract(ExtractArgs),
    /// Show what an archive holds.
    Inspect(InspectArgs),
    /// Compare the tensors of two archives (e.g. a fine-tune and its base).
    Diff(DiffArgs),
    /// List the archives in a folder, with parent chains as a tree.
    Ls(LsArgs),
    /// Check an archive's structure (and with --deep, every block).
    Verify(VerifyArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    Lz4,
    Zstd,
    None,
}

#[derive(Args)]
struct StoreArgs {
    /// The file to store (format detected from its content).
    src: PathBuf,
    /// The archive to write.
    dst: PathBuf,
    #[arg(long, value_enum, default_value = "zstd")]
    compression: CompressionArg,
    /// zstd level (1-22) for every block. Default: 3 for headers and other
    /// plain blocks, 1 for byte-grouped and delta blocks (measured smaller and faster there).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: Option<i32>,
    /// Block size, e.g. 1M, 256K, 4MiB (4 KiB to 64 MiB).
    #[arg(long, value_parser = util::parse_size, default_value = "1MiB")]
    block_size: u64,
    /// User metadata: KEY=VALUE (string) or KEY:=JSON.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Store as a delta against this parent archive.
    #[arg(long, value_name = "PARENT.hxz")]
    base: Option<PathBuf>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Replace DST if it exists.
    #[arg(long)]
    force: bool,
    /// Store as a plain file, without reading it as safetensors or GGUF.
    #[arg(long)]
    raw: bool,
}

#[derive(Args)]
struct ExtractArgs {
    archive: PathBuf,
    /// Where to write the original file.
    out: Option<PathBuf>,
    /// Extract this tensor's raw bytes instead (repeatable; concatenated in order).
    #[arg(long = "tensor", value_name = "NAME")]
    tensors: Vec<String>,
    /// Output file for --tensor (default: stdout for one tensor).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct InspectArgs {
    archive: PathBuf,
    /// Machine-readable output (schema in README).
    #[arg(long)]
    json: bool,
    /// Include GGUF key/values.
    #[arg(long)]
    kv: bool,
}

#[derive(Args)]
struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LsArgs {
    /// Folder to list (default: current).
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    archive: PathBuf,
    /// Decode every block and check every hash.
    #[arg(long)]
    deep: bool,
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = cli.quiet;
    let search = &cli.parent_dirs;
    let result = match cli.command {
        Command::Store(a) => store(a, quiet, cli.verbose, search),
        Command::Extract(a) => extract(a, quiet, cli.verbose, search),
        Command::Inspect(a) => inspect::inspect(&a.archive, a.json, a.kv, search),
        Command::Diff(a) => inspect::diff(&a.a, &a.b, a.json, search),
        Command::Ls(a) => inspect::ls(a.dir.as_deref().unwrap_or(Path::new(".")), a.json),
        Command::Verify(a) => verify(a, quiet, cli.verbose, search),
    };
    match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "hexz: error: {e}");
            e.exit.code()
        }
    }
}

fn refuse_overwrite(path: &Path, force: bool) -> Result<(), CliError> {
    if path.is_dir() {
        return Err(CliError::new(path, "is a directory"));
    }
    if path.exists() && !force {
        return Err(CliError::new(path, "already exists (use --force to replace it)"));
    }
    Ok(())
}

fn store(a: StoreArgs, quiet: bool, verbose: u8, search: &[PathBuf]) -> Result<Exit, CliError> {
    if let Some(base) = &a.base {
        let meta = std::fs::metadata(base).map_err(|e| CliError::io(base, &e))?;
        if !meta.is_file() {
            return Err(CliError::new(base, "is not a regular file"));
        }
        if same_file(base, &a.dst) {
            return Err(CliError::new(&a.dst, "is the base archive itself"));
        }
    }
    let meta = std::fs::metadata(&a.src).map_err(|e| CliError::io(&a.src, &e))?;
    if !meta.is_file() {
        return Err(CliError::new(&a.src, "is not a regular file"));
    }
    refuse_overwrite(&a.dst, a.force)?;
    if same_file(&a.src, &a.dst) {
        return Err(CliError::new(&a.dst, "is the source file itself"));
    }
    let mut metadata = Vec::new();
    for item in &a.metadata {
        let parsed = if let Some((k, v)) = item.split_once(":=") {
            serde_json::from_str::<serde_json::Value>(v)
                .map_err(|e| CliError::usage(format!("--metadata {k}: not valid JSON: {e}")))?;
            (k.to_string(), MetadataValue::Json(v.to_string()))
        } else if let Some((k, v)) = item.split_once('=') {
            (k.to_string(), MetadataValue::String(v.to_string()))
        } else {
            return Err(CliError::usage(format!("--metadata {item}: expected KEY=VALUE or KEY:=JSON")));
        };
        if parsed.0.is_empty() {
            return Err(CliError::usage(format!("--metadata {item}: empty key")));
        }
        metadata.push(parsed);
    }
    let compression = match a.compression {
        CompressionArg::Lz4 => Compression::Lz4,
        CompressionArg::Zstd => a.level.map_or(Compression::DEFAULT, Compression::zstd),
        CompressionArg::None => Compression::None,
    };
    let block_size = u32::try_from(a.block_size).unwrap_or(u32::MAX);
    let opts =
        StoreOptions { compression, block_size, metadata, threads: a.threads, raw: a.raw, ..StoreOptions::default() };
    let bar = progress_bar(quiet, meta.len(), "storing");
    let started = Instant::now();
    let base = a.base.as_deref().map(|b| (b, search));
    let report = store_file(&a.src, &a.dst, &opts, base, &|done| bar.set_position(done)).map_err(|e| {
        let from_source = matches!(e, hexz_format::Error::Source { .. })
            || matches!(e, hexz_format::Error::LimitExceeded { what, .. } if what.starts_with("safetensors"));
        match (&a.base, from_source) {
            (_, true) => CliError::new(&a.src, format!("{e} (use --raw to store it as a plain file)")),
            (Some(base), false) => CliError::format(base, e),
            (None, false) => CliError::format(&a.src, e),
        }
    })?;
    bar.finish_and_clear();
    for w in &report.warnings {
        eprintln!("hexz: warning: {}: {w}", a.src.display());
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if !quiet {
        eprintln!(
            "stored {} -> {}: {} -> {} ({:.3} of the source), {} blocks, {} deduplicated or in the base, {:.1}s, {:.0} MB/s",
            a.src.display(),
            a.dst.display(),
            human_bytes(report.source_size),
            human_bytes(report.archive_size),
            report.archive_size as f64 / report.source_size.max(1) as f64,
            report.blocks,
            report.deduplicated_blocks + report.parent_blocks,
            secs,
            report.source_size as f64 / 1e6 / secs,
        );
    }
    if verbose > 0 && !quiet {
        eprintln!(
            "  {} tensors; blocks: {} stored ({} as deltas), {} deduplicated ({}), {} from the base ({})",
            report.tensors,
            report.stored_blocks,
            report.delta_blocks,
            report.deduplicated_blocks,
            human_bytes(report.deduplicated_bytes),
            report.parent_blocks,
            human_bytes(report.parent_bytes),
        );
        eprintln!("  source blake3 {}", util::hex(&report.source_hash));
    }
    Ok(Exit::Ok)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn extract(a: ExtractArgs, quiet: bool, verbose: u8, search: &[PathBuf]) -> Result<Exit, CliError> {
    let started = std::time::Instant::now();
    let chain = open_archive(&a.archive, search)?;
    if verbose > 0 && !quiet {
        for (depth, path) in chain.paths.iter().enumerate().skip(1) {
            eprintln!("  parent {depth}: {}", path.display());
        }
    }
    let archive = chain.archive;
    if !a.tensors.is_empty() {
        return extract_tensors(&archive, &a);
    }
    let out =
        a.out.as_ref().or(a.output.as_ref()).ok_or_else(|| CliError::usage("extract needs OUT (or --tensor NAME)"))?;
    refuse_overwrite(out, a.force)?;
    let mut tmp = hexz_format::writer::TempFile::new(out).map_err(|e| CliError::io(out, &e))?;
    let bar = progress_bar(quiet, archive.virtual_size(), "extracting");
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
        util::copy_range(&archive, 0, archive.virtual_size(), &mut w, &|done| bar.set_position(done), true)
            .map_err(|e| e.with_path(&a.archive))?;
        w.flush().map_err(|e| CliError::io(out, &e))?;
    }
    tmp.commit(out).map_err(|e| CliError::io(out, &e))?;
    bar.finish_and_clear();
    if !quiet {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        eprintln!(
            "extracted {} -> {} ({}, {:.2} s, {:.0} MB/s)",
            a.archive.display(),
            out.display(),
            human_bytes(archive.virtual_size()),
            secs,
            archive.virtual_size() as f64 / 1e6 / secs
        );
    }
    Ok(Exit::Ok)
}

fn extract_tensors(archive: &Archive<FileSource>, a: &ExtractArgs) -> Result<Exit, CliError> {
    let target = a.output.as_ref().or(a.out.as_ref());
    if target.is_none() && a.tensors.len() > 1 {
        return Err(CliError::usage("several --tensor need -o FILE (their bytes are concatenated in order)"));
    }
    let mut ranges = Vec::new();
    for name in &a.tensors {
        let index =
            archive.find_tensor(name).map_err(|_| CliError::new(&a.archive, format!("no tensor named '{name}'")))?;
        let r = archive.manifest_view().tensor(archive.source(), index).map_err(|e| CliError::format(&a.archive, e))?;
        ranges.push((r.virtual_offset.get(), r.length.get()));
    }
    match target {
        Some(out) => {
            refuse_overwrite(out, a.force)?;
            let mut tmp = hexz_format::writer::TempFile::new(out).map_err(|e| CliError::io(out, &e))?;
            {
                let mut w = std::io::BufWriter::new(tmp.file());
                for (offset, length) in ranges {
                    util::copy_range(archive, offset, length, &mut w, &|_| {}, false)
                        .map_err(|e| e.with_path(&a.archive))?;
                }
                w.flush().map_err(|e| CliError::io(out, &e))?;
            }
            tmp.commit(out).map_err(|e| CliError::io(out, &e))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::new(stdout.lock());
            for (offset, length) in ranges {
                util::copy_range(archive, offset, length, &mut w, &|_| {}, false)
                    .map_err(|e| e.with_path(&a.archive))?;
            }
            w.flush().map_err(|e| CliError::io(Path::new("stdout"), &e))?;
        }
    }
    Ok(Exit::Ok)
}

fn verify(a: VerifyArgs, quiet: bool, verbose: u8, search: &[PathBuf]) -> Result<Exit, CliError> {
    let meta = std::fs::metadata(&a.archive).map_err(|e| CliError::io(&a.archive, &e))?;
    if !meta.is_file() {
        return Err(CliError::new(&a.archive, "is not a regular file"));
    }
    let bar = progress_bar(quiet || !a.deep, 0, "verifying");
    let report = hexz_format::verify::verify_file(&a.archive, a.deep, search, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    if a.json {
        let problems: Vec<_> =
            report.problems.iter().map(|p| serde_json::json!({"location": p.location, "message": p.message})).collect();
        let out = serde_json::json!({
            "archive": a.archive.display().to_string(),
            "ok": report.is_ok(),
            "deep": a.deep,
            "blocks_checked": report.blocks_checked,
            "blocks_decoded": report.blocks_decoded,
            "tensors_checked": report.tensors_checked,
            "problems": problems,
        });
        util::emit(&(serde_json::to_string_pretty(&out).unwrap_or_default() + "\n"))?;
    } else {
        let mut lines = String::new();
        for p in &report.problems {
            outln!(lines, "{}: {}: {}", a.archive.display(), p.location, p.message);
        }
        util::emit(&lines)?;
        if verbose > 0 && !quiet {
            if let Ok(chain) = hexz_format::chain::open_chain(&a.archive, search) {
                for (depth, path) in chain.paths.iter().enumerate().skip(1) {
                    eprintln!("  parent {depth}: {} (verified too)", path.display());
                }
            }
        }
        if report.is_ok() && !quiet {
            eprintln!(
                "{}: ok ({} blocks checked{}, {} tensors)",
                a.archive.display(),
                report.blocks_checked,
                if a.deep { format!(", {} decoded and hashed", report.blocks_decoded) } else { String::new() },
                report.tensors_checked
            );
        }
    }
    Ok(if report.is_ok() { Exit::Ok } else { Exit::VerifyFailed })
}
