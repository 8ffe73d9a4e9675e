//! `hexz`: store, extract, inspect, diff, list and verify `.hxz` archives.

mod inspect;
#[cfg(target_os = "linux")]
mod mount;
mod remote;
mod util;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hexz_format::ErrorCode;
use hexz_io::options::{self, CompressionKind, FormatVersion};
use hexz_io::{Clobber, OpenOptions, Reader, Store};

use crate::util::{human_bytes, progress_bar, CliError, Exit};

const EXAMPLES: &str = "\
Examples:
  hexz store model.safetensors model.hxz            # zstd, 1 MiB blocks
  hexz store model.gguf model.hxz --compression lz4
  hexz store checkpoint-500/ ckpt-500.hxz            # a whole folder (shards, config, tokenizer)
  hexz extract ckpt-500.hxz checkpoint-500/          # the folder back, byte for byte
  hexz extract ckpt-500.hxz --file config.json -o -
  hexz store ft.safetensors ft.hxz --base base.hxz  # a fine-tune as deltas against its base
  hexz store ft.safetensors ft.hxz --metadata run=42 --metadata 'cfg:={\"lr\":1e-4}'
  hexz extract model.hxz model.gguf                 # byte-identical source file
  hexz extract model.hxz - | sha256sum              # to standard output
  hexz extract model.hxz --tensor token_embd.weight > emb.bin
  hexz inspect model.hxz --json
  hexz diff base.hxz ft.hxz                         # per-tensor changes
  hexz verify model.hxz                             # every block's BLAKE3 (--quick: structure only)
  hexz ls ./checkpoints
  hexz keygen release.key release.pub               # an Ed25519 key pair (minisign's format)
  hexz sign model.hxz --key release.key             # sign in place (blocks untouched)
  hexz verify model.hxz --key release.pub           # the signature and every block
  hexz extract --trusted-key release.pub model.hxz model.gguf   # refused unless signed by that key
  hexz keygen --x25519 me.key                       # an age X25519 identity; prints its recipient (age1…)
  hexz store model.gguf model.hxz --encrypt --recipient age1…    # only me.key's holder reads it
  HEXZ_PASSPHRASE=… hexz store model.gguf model.hxz --encrypt    # or --passphrase-file FILE
  hexz extract --identity me.key model.hxz model.gguf

Exit codes: 0 ok, 1 error, 2 usage, 3 verification found problems,
130 interrupted (SIGINT), 143 terminated (SIGTERM).";

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
    /// Folder of the block cache of remote archives (default: HEXZ_CACHE_DIR, else ~/.cache/hexz/blocks).
    #[arg(long = "cache-dir", global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Read remote archives without the block cache (as HEXZ_CACHE_DIR=off).
    #[arg(long = "no-cache", global = true, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Cap on the block cache folder, e.g. 20G (default: HEXZ_CACHE_MAX_BYTES, else 10G).
    #[arg(long = "cache-max", global = true, value_name = "SIZE", value_parser = remote::parse_cache_max)]
    cache_max: Option<u64>,
    /// Require a signature by this public key (minisign format; repeatable:
    /// any one of them). Archives are refused before any byte is read
    /// from them unless signed by a trusted key.
    #[arg(long = "trusted-key", global = true, value_name = "FILE")]
    trusted_key: Vec<PathBuf>,
    /// Require a signature by one of the `*.pub` keys in this folder.
    #[arg(long = "trusted-keys", global = true, value_name = "DIR")]
    trusted_keys: Option<PathBuf>,
    /// Open encrypted archives with this X25519 identity file (age's
    /// format, `AGE-SECRET-KEY-1…`, from `hexz keygen --x25519` or
    /// `age-keygen`; repeatable).
    #[arg(long = "identity", short = 'i', global = true, value_name = "FILE")]
    identity: Vec<PathBuf>,
    /// The passphrase of encrypted archives, from the first line of this
    /// file (else the HEXZ_PASSPHRASE variable; never the command line).
    /// `store --encrypt` wraps the key with it too.
    #[arg(long = "passphrase-file", global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Store a safetensors, GGUF or any other file, or a whole folder, into an archive.
    Store(StoreArgs),
    /// Extract the original file, or named tensors' raw bytes.
    Extract(ExtractArgs),
    /// Show what an archive holds.
    Inspect(InspectArgs),
    /// Compare the tensors of two archives (e.g. a fine-tune and its base).
    Diff(DiffArgs),
    /// List the archives in a folder, with parent chains as a tree.
    Ls(LsArgs),
    /// Check an archive: every block's BLAKE3 and the whole file's (--quick: structure only).
    Verify(VerifyArgs),
    /// Make a signing key pair: a secret key file (mode 0600) and a public key file.
    Keygen(KeygenArgs),
    /// Sign an archive (or remove its signatures) without touching its blocks.
    Sign(SignArgs),
    /// Mount an archive read-only (FUSE): its file, or its folder tree, decoded on demand (Linux only).
    Mount(MountArgs),
    /// Unmount what `hexz mount` mounted (Linux only).
    Unmount(UnmountArgs),
}

#[derive(Args)]
struct MountArgs {
    /// The archive (a path or a URL).
    archive: PathBuf,
    /// An existing empty folder to mount it on.
    mountpoint: PathBuf,
    /// Serve in this process until SIGINT/SIGTERM or an unmount (default:
    /// return once the mount is ready, serving from a background process).
    #[arg(short, long)]
    foreground: bool,
    /// Where the background process writes its messages (read errors, with
    /// the reason); default: hexz-mount-PID.log in the temporary folder.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Decoded blocks kept for the reads that follow, in MiB.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    cache_mib: u32,
}

#[derive(Args)]
struct KeygenArgs {
    /// The secret key file to write (mode 0600; minisign's unencrypted
    /// format), or with --x25519 the identity file.
    secret: PathBuf,
    /// The public key file to write (minisign's format; with --x25519,
    /// optional: the recipient, which is printed too).
    #[arg(required_unless_present = "x25519")]
    public: Option<PathBuf>,
    /// Make an X25519 identity for encrypted archives (age's format)
    /// instead of a signing key pair.
    #[arg(long)]
    x25519: bool,
    /// Replace the files if they exist.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct SignArgs {
    archive: PathBuf,
    /// The secret key file (from `hexz keygen` or `minisign -G -W`).
    #[arg(long, value_name = "SECRET", required_unless_present = "remove")]
    key: Option<PathBuf>,
    /// Trusted comment, authenticated with the signature (default: the time and the identity).
    #[arg(long, value_name = "TEXT")]
    comment: Option<String>,
    /// Remove every signature instead (with --key-id: only that key's);
    /// the archive gets back its unsigned bytes.
    #[arg(long, conflicts_with_all = ["key", "comment"])]
    remove: bool,
}

#[derive(Args)]
struct UnmountArgs {
    mountpoint: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    Lz4,
    Zstd,
    None,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ChunkingArg {
    /// Content-defined (FastCDC): edits move only nearby blocks.
    Cdc,
    /// Fixed-size blocks.
    Fixed,
}

#[derive(Args)]
struct StoreArgs {
    /// The file (format detected from its content) or folder to store.
    src: PathBuf,
    /// The archive to write (- for standard output).
    dst: PathBuf,
    #[arg(long, value_enum, default_value = "zstd")]
    compression: CompressionArg,
    /// zstd level (1-22) for every block. Default: 3 for headers and other
    /// plain blocks, 1 for byte-grouped and delta blocks (measured smaller and faster there),
    /// 2 for quantized GGUF blocks split into their fields.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: Option<i32>,
    /// Block size, e.g. 1M, 256K, 4MiB (4 KiB to 64 MiB).
    #[arg(long, value_parser = util::parse_block_size, default_value = "1MiB")]
    block_size: u32,
    /// User metadata: KEY=VALUE (string) or KEY:=JSON; each key once.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Store as a delta against this parent archive.
    #[arg(long, value_name = "PARENT.hxz")]
    base: Option<PathBuf>,
    /// Worker threads (default: one per core; at most 256; memory stays
    /// within the in-flight budget whatever the count).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    threads: u16,
    /// Replace DST if it exists.
    #[arg(long)]
    force: bool,
    /// Store as a plain file, without reading it as safetensors or GGUF.
    #[arg(long)]
    raw: bool,
    /// How bytes that are not tensors (raw files) are cut into blocks.
    #[arg(long, value_enum, default_value = "cdc")]
    chunking: ChunkingArg,
    /// Write only what readers of this format version read: 1.2 leaves out
    /// 1.3's entropy coding of float and delta blocks (zstd instead;
    /// larger); 1.1 also 1.2's field splitting of quantized GGUF blocks
    /// (byte grouping instead; a little larger and slower to decode).
    /// Folders need 1.1.
    #[arg(long, value_name = "VERSION", value_parser = ["1.1", "1.2", "1.3"], default_value = "1.3")]
    format: String,
    /// Encrypt blocks and manifest (format 1.5) for the passphrase
    /// (--passphrase-file or HEXZ_PASSPHRASE) and the recipients given. A
    /// fine-tune of an encrypted base is encrypted under the base's key
    /// without this flag.
    #[arg(long)]
    encrypt: bool,
    /// Encrypt for this X25519 recipient (age1…; repeatable): its
    /// identity's holder reads the archive, the writer needs no secret.
    #[arg(long = "recipient", short = 'r', value_name = "AGE1…", requires = "encrypt")]
    recipients: Vec<String>,
    /// Encrypt for every recipient in this file (one age1… per line).
    #[arg(long = "recipients-file", value_name = "FILE", requires = "encrypt")]
    recipients_file: Vec<PathBuf>,
    /// Argon2id memory of the passphrase stanza, in MiB (default 64).
    #[arg(long = "argon2-mib", value_name = "MIB", requires = "encrypt", value_parser = clap::value_parser!(u32).range(1..=1024))]
    argon2_mib: Option<u32>,
}

#[derive(Args)]
struct ExtractArgs {
    archive: PathBuf,
    /// Where to write the original file (- for standard output), or the
    /// folder to create for a folder archive.
    out: Option<PathBuf>,
    /// Extract this file of a folder archive instead (path as `inspect` lists it).
    #[arg(long = "file", value_name = "PATH", conflicts_with = "tensors")]
    file: Option<String>,
    /// Extract this tensor's raw bytes instead (repeatable; concatenated in
    /// order). In a folder archive, PATH:NAME names the tensor of one file
    /// (a name several files hold must be named so).
    #[arg(long = "tensor", value_name = "NAME")]
    tensors: Vec<String>,
    /// Output file (- for standard output; the default for --tensor).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
    /// Decoding threads (default: one per core).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    threads: u16,
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
    /// Structure only (header, index, manifest): no block is decoded.
    #[arg(long, conflicts_with = "deep")]
    quick: bool,
    /// Every block decoded and hashed (the default; kept for old scripts).
    #[arg(long)]
    deep: bool,
    #[arg(long)]
    json: bool,
    /// Decoding threads (default: one per core).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    threads: u16,
    /// Check the archive's signature by this public key too (repeatable:
    /// any one of them), as --trusted-key does.
    #[arg(long = "key", value_name = "PUBLIC")]
    keys: Vec<PathBuf>,
}

/// What a command needs from the global options.
struct Context {
    quiet: bool,
    verbose: u8,
    open: OpenOptions,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(target_os = "linux")]
    let serving = matches!(cli.command, Command::Mount(_));
    #[cfg(not(target_os = "linux"))]
    let serving = false;
    if !serving {
        // (The mount daemon unmounts on these signals instead.)
        util::install_signal_cleanup();
    }
    util::set_cache_flags(if cli.no_cache { Some(None) } else { cli.cache_dir.clone().map(Some) }, cli.cache_max);
    let trusted_keys = match trusted_keys(&cli.trusted_key, cli.trusted_keys.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hexz: error: {e}");
            return e.exit.code();
        }
    };
    let passphrase = match cli.passphrase_file.as_deref().map(hexz_io::keys::read_passphrase_file).transpose() {
        Ok(p) => p.or_else(hexz_io::keys::passphrase_from_env),
        Err(e) => {
            eprintln!("hexz: error: {e}");
            return ExitCode::from(1);
        }
    };
    let identities = match cli.identity.iter().map(|p| hexz_io::keys::load_identities(p)).collect::<Result<Vec<_>, _>>()
    {
        Ok(ids) => ids.concat(),
        Err(e) => {
            eprintln!("hexz: error: {e}");
            return ExitCode::from(1);
        }
    };
    let keychain = hexz_io::keys::Keychain::new(identities, passphrase.iter().cloned().collect());
    let open = OpenOptions {
        search: cli.parent_dirs.iter().map(|d| util::location(d)).collect(),
        trusted_keys,
        keys: (!keychain.is_empty()).then(|| std::sync::Arc::new(keychain)),
        ..remote::open_options()
    };
    let ctx = Context { quiet: cli.quiet, verbose: cli.verbose, open };
    let (result, json) = match cli.command {
        Command::Store(a) => (store(a, passphrase.clone(), &ctx), false),
        Command::Extract(a) => (extract(a, &ctx), false),
        Command::Inspect(a) => (inspect::inspect(&a.archive, a.json, a.kv, &ctx.open), a.json),
        Command::Diff(a) => (inspect::diff(&a.a, &a.b, a.json, &ctx.open), a.json),
        Command::Ls(a) => (inspect::ls(a.dir.as_deref().unwrap_or(Path::new(".")), a.json, &ctx.open), a.json),
        Command::Verify(a) => (verify(&a, &ctx), a.json),
        Command::Keygen(a) => (keygen(&a, &ctx), false),
        Command::Sign(a) => (sign(&a, &ctx), false),
        Command::Mount(a) => {
            let keys = KeyFlags { identity: &cli.identity, passphrase_file: cli.passphrase_file.as_deref() };
            (mount_command(&a, &cli.parent_dirs, &cli.trusted_key, cli.trusted_keys.as_deref(), keys, &ctx), false)
        }
        #[cfg(target_os = "linux")]
        Command::Unmount(a) => (mount::unmount(&a.mountpoint).map(|()| Exit::Ok), false),
        #[cfg(not(target_os = "linux"))]
        Command::Unmount(_) => (Err(mount_unsupported()), false),
    };
    match result {
        Ok(exit) => exit.code(),
        Err(e) => {
            if json {
                util::emit_json_error(&e);
            }
            eprintln!("hexz: error: {e}");
            e.exit.code()
        }
    }
}

/// An option error of hexz_io::options as a usage error naming the flag.
fn usage(e: hexz_io::Error) -> CliError {
    match e {
        hexz_io::Error::InvalidOption(what) => CliError::usage(format!("--{what}")),
        other => CliError::from(other),
    }
}

/// The key flags a background mount passes on (mount is Linux-only, so
/// elsewhere nothing reads them).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
struct KeyFlags<'a> {
    identity: &'a [PathBuf],
    passphrase_file: Option<&'a Path>,
}

/// What `store --encrypt` encrypts for: the passphrase and the recipients.
fn encryption(
    a: &StoreArgs,
    passphrase: Option<zeroize::Zeroizing<Vec<u8>>>,
) -> Result<Option<hexz_format::writer::Encryption>, CliError> {
    if !a.encrypt {
        return Ok(None);
    }
    let mut to = hexz_io::keys::EncryptTo {
        passphrases: passphrase.into_iter().collect(),
        cost: a.argon2_mib.map(|mib| hexz_format::crypt::Argon2Cost {
            memory_kib: mib << 10,
            ..hexz_format::crypt::Argon2Cost::DEFAULT
        }),
        ..Default::default()
    };
    for r in &a.recipients {
        to.recipients
            .push(hexz_io::keys::parse_recipient(r).map_err(|e| CliError::usage(format!("--recipient: {e}")))?);
    }
    for f in &a.recipients_file {
        to.recipients.extend(hexz_io::keys::load_recipients(f)?);
    }
    if to.is_empty() {
        return Err(CliError::usage(
            "--encrypt needs a passphrase (--passphrase-file FILE or HEXZ_PASSPHRASE) or --recipient age1…",
        ));
    }
    if a.base.is_some() {
        return Err(CliError::usage(
            "a fine-tune is encrypted under its base's key: drop --encrypt (an encrypted base is enough)",
        ));
    }
    Ok(Some(to.encryption()?))
}

fn store(a: StoreArgs, passphrase: Option<zeroize::Zeroizing<Vec<u8>>>, ctx: &Context) -> Result<Exit, CliError> {
    let encryption = encryption(&a, passphrase)?;
    let kind = match a.compression {
        CompressionArg::Zstd => CompressionKind::Zstd,
        CompressionArg::Lz4 => CompressionKind::Lz4,
        CompressionArg::None => CompressionKind::None,
    };
    kind.with_level(a.level).map_err(usage)?;
    let chunking = match a.chunking {
        ChunkingArg::Cdc => hexz_format::writer::Chunking::ContentDefined,
        ChunkingArg::Fixed => hexz_format::writer::Chunking::Fixed,
    };
    let is_folder = std::fs::metadata(&a.src).is_ok_and(|m| m.is_dir());
    let size = if is_folder { 0 } else { std::fs::metadata(&a.src).map(|m| m.len()).unwrap_or(0) };
    let bar = progress_bar(ctx.quiet, size, "storing");
    let started = Instant::now();
    let progress = |done| {
        bar.set_position(done);
        ControlFlow::Continue(())
    };
    let stored = Store::from_path(&a.src)
        .to(util::location(&a.dst))
        .compression(kind)
        .level(a.level)
        .block_size(a.block_size)
        .metadata(options::metadata(&a.metadata).map_err(usage)?)
        .threads(usize::from(a.threads))
        .raw(a.raw)
        .chunking(chunking)
        .format(a.format.parse::<FormatVersion>().map_err(usage)?)
        .base(a.base.as_deref().map(util::location))
        .encryption(encryption)
        .open_options(ctx.open.clone())
        .clobber(if a.force { Clobber::Replace } else { Clobber::Refuse })
        .sinks(remote::store_sinks())
        .progress(&progress)
        .run();
    let stored = match stored {
        // Refused before anything was read: a usage error.
        Err(hexz_io::Error::Refused { reason, code: ErrorCode::Unsupported, .. }) if is_folder => {
            return Err(CliError::usage(reason))
        }
        other => other,
    };
    let report = stored
    .map_err(|e| {
        let hint = matches!(e.format_error().map(|f| f.innermost().1), Some(hexz_format::Error::Source { .. }))
            || matches!(e.format_error(), Some(hexz_format::Error::LimitExceeded { what, .. }) if what.starts_with("safetensors"));
        let e = CliError::from(e);
        if hint {
            e.suffix(" (use --raw to store it as a plain file)")
        } else {
            e
        }
    })?;
    bar.finish_and_clear();
    for w in &report.warnings {
        eprintln!("hexz: warning: {}: {w}", a.src.display());
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    if !ctx.quiet {
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
    if ctx.verbose > 0 && !ctx.quiet {
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

/// Open an archive file with its chain; the files of the chain are inputs
/// no output may overwrite.
fn open_reader(path: &Path, ctx: &Context) -> Result<Reader, CliError> {
    let reader = Reader::open(util::location(path), &ctx.open)?;
    if ctx.verbose > 0 && !ctx.quiet {
        for (depth, location) in reader.chain().iter().enumerate().skip(1) {
            eprintln!("  parent {depth}: {location}");
        }
    }
    Ok(reader)
}

fn extract(a: ExtractArgs, ctx: &Context) -> Result<Exit, CliError> {
    let started = Instant::now();
    if a.out.is_some() && a.output.is_some() {
        return Err(CliError::usage("give the output once: OUT or -o FILE"));
    }
    let reader = open_reader(&a.archive, ctx)?;
    let is_folder = reader.source_format() == hexz_format::SourceFormat::Folder;
    let whole = a.tensors.is_empty() && a.file.is_none();
    let ranges: Vec<(u64, u64)> = if let Some(path) = &a.file {
        let (_, f) =
            reader.file(path).ok_or_else(|| CliError::new(&a.archive, format!("no file '{path}' in the archive")))?;
        vec![(f.offset, f.length)]
    } else if whole {
        vec![(0, reader.size())]
    } else {
        let mut ranges = Vec::new();
        for name in &a.tensors {
            let (_, t) = reader.lookup_tensor(name)?;
            ranges.push((t.offset, t.length));
        }
        ranges
    };
    let single_part = a.tensors.len() == 1 || a.file.is_some();
    let target = match (a.out.as_ref().or(a.output.as_ref()), a.tensors.len()) {
        (Some(path), _) => path.clone(),
        (None, _) if is_folder && whole => return Err(CliError::usage("extract needs the folder to create")),
        (None, _) if single_part => PathBuf::from("-"),
        (None, 0) => return Err(CliError::usage("extract needs OUT (or --tensor NAME); - writes to standard output")),
        (None, _) => {
            return Err(CliError::usage("several --tensor need -o FILE (their bytes are concatenated in order)"))
        }
    };
    let to_stdout = target.as_os_str() == "-";
    let total: u64 = ranges.iter().map(|r| r.1).sum();
    let bar = progress_bar(ctx.quiet || to_stdout, total, "extracting");
    let progress = |done| {
        bar.set_position(done);
        ControlFlow::Continue(())
    };
    let threads = usize::from(a.threads);
    let written = if whole {
        hexz_io::extract_to(&reader, &target, a.force, threads, &progress)
    } else {
        hexz_io::extract_ranges(&reader, &ranges, &target, a.force, threads, &progress)
    };
    bar.finish_and_clear();
    match written {
        // `| head`: the reader went away; not an error.
        Err(e) if to_stdout && e.code() == ErrorCode::Cancelled => return Ok(Exit::Ok),
        other => other?,
    }
    if !ctx.quiet && whole && !to_stdout {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        let files = if is_folder {
            let n = reader.files().iter().filter(|f| f.kind == hexz_format::layout::FileKind::File).count();
            format!("{n} files, ")
        } else {
            String::new()
        };
        eprintln!(
            "extracted {} -> {} ({files}{}, {:.2} s, {:.0} MB/s)",
            a.archive.display(),
            target.display(),
            human_bytes(total),
            secs,
            total as f64 / 1e6 / secs
        );
    }
    Ok(Exit::Ok)
}

/// `hexz mount` off Linux: FUSE (through the kernel's /dev/fuse) is Linux's.
#[cfg(not(target_os = "linux"))]
fn mount_unsupported() -> CliError {
    CliError::from(hexz_io::Error::refused(
        "hexz mount",
        "needs Linux (FUSE); on this system use hexz extract, or read tensors through the C library \
         or the Python package",
        hexz_format::ErrorCode::Unsupported,
    ))
}

#[cfg(not(target_os = "linux"))]
fn mount_command(
    _: &MountArgs,
    _: &[PathBuf],
    _: &[PathBuf],
    _: Option<&Path>,
    _: KeyFlags<'_>,
    _: &Context,
) -> Result<Exit, CliError> {
    Err(mount_unsupported())
}

#[cfg(target_os = "linux")]
fn mount_command(
    a: &MountArgs,
    parent_dirs: &[PathBuf],
    trusted_key: &[PathBuf],
    trusted_dir: Option<&Path>,
    keys: KeyFlags<'_>,
    ctx: &Context,
) -> Result<Exit, CliError> {
    if !a.mountpoint.is_dir() {
        return Err(CliError::new(&a.mountpoint, "mount point is not a folder"));
    }
    if mount::is_mounted(&a.mountpoint) {
        return Err(CliError::new(&a.mountpoint, "something is mounted there already"));
    }
    // As the help says: an empty folder (a mount would hide what it holds).
    match std::fs::read_dir(&a.mountpoint).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            return Err(CliError::new(&a.mountpoint, "mount point is not empty (its files would be hidden)"));
        }
        Ok(false) => {}
        Err(e) => return Err(CliError::new(&a.mountpoint, format!("cannot read the mount point: {e}"))),
    }
    if a.foreground {
        let reader = open_reader(&a.archive, ctx)?;
        let mtime = std::fs::metadata(&a.archive).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
        let archive = a.archive.to_string_lossy();
        mount::serve(reader, &archive, mtime, &a.mountpoint, a.cache_mib as usize * (1 << 20))?;
        return Ok(Exit::Ok);
    }
    // Serve from a detached copy of this program; return once the mount
    // is there (or the copy failed, with its error on stderr).
    let exe = std::env::current_exe().map_err(|e| CliError::usage(format!("cannot find this program: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    for d in parent_dirs {
        cmd.arg("--parent-dir").arg(d);
    }
    for k in trusted_key {
        cmd.arg("--trusted-key").arg(k);
    }
    if let Some(d) = trusted_dir {
        cmd.arg("--trusted-keys").arg(d);
    }
    // Key files by name; a passphrase from HEXZ_PASSPHRASE goes through the environment.
    for i in keys.identity {
        cmd.arg("--identity").arg(i);
    }
    if let Some(f) = keys.passphrase_file {
        cmd.arg("--passphrase-file").arg(f);
    }
    // The block cache flags, which the environment alone would not carry.
    cmd.args(util::cache_flag_args());
    cmd.arg("-q").arg("mount").arg("--foreground").arg("--cache-mib").arg(a.cache_mib.to_string());
    cmd.arg(&a.archive).arg(&a.mountpoint);
    // The background process keeps none of our descriptors (a caller
    // waiting for our output to end would wait for the unmount).
    let log_path =
        a.log.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("hexz-mount-{}.log", std::process::id())));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| hexz_io::Error::file(&log_path, "open the log", e))?;
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe; the child only calls it before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
    }
    let mut child = cmd.spawn().map_err(|e| CliError::usage(format!("cannot start the mount process: {e}")))?;
    loop {
        if mount::is_mounted(&a.mountpoint) {
            if !ctx.quiet {
                eprintln!(
                    "mounted {} at {} (process {}, log {})",
                    a.archive.display(),
                    a.mountpoint.display(),
                    child.id(),
                    log_path.display()
                );
            }
            return Ok(Exit::Ok);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(CliError::new(
                &a.mountpoint,
                format!("the mount process ended ({status}) before the mount was ready: {}", said.trim()),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The keys of `--trusted-key` and `--trusted-keys`.
fn trusted_keys(files: &[PathBuf], dir: Option<&Path>) -> Result<Vec<hexz_format::signature::PublicKey>, CliError> {
    let mut keys = files.iter().map(|f| hexz_io::sign::load_public_key(f)).collect::<Result<Vec<_>, _>>()?;
    if let Some(dir) = dir {
        keys.extend(hexz_io::sign::load_trusted_dir(dir)?);
    }
    Ok(keys)
}

fn keygen(a: &KeygenArgs, ctx: &Context) -> Result<Exit, CliError> {
    if a.x25519 {
        let recipient = hexz_io::keys::keygen_x25519(&a.secret, a.force)?;
        if let Some(p) = &a.public {
            std::fs::write(p, format!("{recipient}\n")).map_err(|e| hexz_io::Error::file(p, "write", e))?;
        }
        if !ctx.quiet {
            eprintln!("wrote {} (X25519 identity, mode 0600); its recipient:", a.secret.display());
        }
        println!("{recipient}");
        return Ok(Exit::Ok);
    }
    let Some(public) = &a.public else { return Err(CliError::usage("keygen needs SECRET and PUBLIC")) };
    let key = hexz_io::sign::keygen(&a.secret, public, a.force)?;
    if !ctx.quiet {
        eprintln!(
            "wrote {} (secret, mode 0600) and {} (public); key id {}",
            a.secret.display(),
            public.display(),
            key.key_id_hex()
        );
    }
    Ok(Exit::Ok)
}

fn sign(a: &SignArgs, ctx: &Context) -> Result<Exit, CliError> {
    if a.remove {
        let n = hexz_io::sign::unsign_file(&a.archive, None)?;
        if !ctx.quiet {
            eprintln!("{}: removed {n} signature(s)", a.archive.display());
        }
        return Ok(Exit::Ok);
    }
    let Some(key_path) = &a.key else { return Err(CliError::usage("sign needs --key SECRET")) };
    let key = hexz_io::sign::SecretKey::load(key_path)?;
    let comment = match &a.comment {
        Some(c) => c.clone(),
        None => {
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            format!("timestamp:{now}\tfile:{}", a.archive.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
        }
    };
    let out = hexz_io::sign::sign_file(&a.archive, &key, &comment)?;
    if !ctx.quiet {
        eprintln!(
            "{}: signed by key {} (identity {}; {} signature(s){})",
            a.archive.display(),
            out.key_id,
            util::hex(&out.identity),
            out.signatures,
            if out.replaced { ", replacing this key's earlier one" } else { "" }
        );
    }
    Ok(Exit::Ok)
}

fn verify(a: &VerifyArgs, ctx: &Context) -> Result<Exit, CliError> {
    let mut open = ctx.open.clone();
    open.trusted_keys.extend(trusted_keys(&a.keys, None)?);
    let ctx = &Context { quiet: ctx.quiet, verbose: ctx.verbose, open };
    let depth = if a.quick { hexz_io::Depth::Quick } else { hexz_io::Depth::Deep };
    let size = std::fs::metadata(&a.archive).map(|m| m.len()).unwrap_or(0);
    let bar = progress_bar(ctx.quiet || depth == hexz_io::Depth::Quick, size, "verifying");
    let location = util::location(&a.archive);
    let report = hexz_io::verify_location(&location, &ctx.open, depth, usize::from(a.threads), &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let deep = depth == hexz_io::Depth::Deep;
    if a.json {
        util::emit_json(&util::VerifyJson::new(&a.archive, deep, &report))?;
    } else {
        let mut lines = String::new();
        for p in &report.problems {
            outln!(lines, "{}: {}: {}", a.archive.display(), p.location, p.message);
        }
        util::emit(&lines)?;
        if report.is_ok() && !ctx.quiet {
            if !ctx.open.trusted_keys.is_empty() {
                eprintln!("{}: signature by a trusted key checked", a.archive.display());
            }
            let what = if deep {
                format!("{} blocks decoded and their BLAKE3 checked, whole-file BLAKE3 checked", report.blocks_decoded)
            } else {
                format!("structure only (--quick): {} block entries checked, no block decoded", report.blocks_checked)
            };
            eprintln!("{}: ok ({what}; {} tensors)", a.archive.display(), report.tensors_checked);
        }
    }
    Ok(if report.is_ok() { Exit::Ok } else { Exit::VerifyFailed })
}
