//! Errors, exit codes, sizes, progress bars and streaming copies.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use hexz_format::chain::{open_chain, Chain};

use hexz_format::{Archive, FileSource};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok,
    Error,
    Usage,
    VerifyFailed,
}

impl Exit {
    pub fn code(self) -> std::process::ExitCode {
        std::process::ExitCode::from(match self {
            Exit::Ok => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::VerifyFailed => 3,
        })
    }
}

/// A one-line error naming the file and what is wrong.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    message: String,
}

impl CliError {
    pub fn new(path: &Path, what: impl fmt::Display) -> Self {
        CliError { exit: Exit::Error, message: format!("{}: {what}", path.display()) }
    }
    pub fn io(path: &Path, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Self::new(path, "not found"),
            K::PermissionDenied => Self::new(path, "permission denied"),
            K::IsADirectory => Self::new(path, "is a directory"),
            _ => Self::new(path, e),
        }
    }
    pub fn format(path: &Path, e: hexz_format::Error) -> Self {
        Self::new(path, e)
    }
    pub fn usage(what: impl fmt::Display) -> Self {
        CliError { exit: Exit::Usage, message: what.to_string() }
    }
    pub fn with_path(self, path: &Path) -> Self {
        CliError { exit: self.exit, message: format!("{}: {}", path.display(), self.message) }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Open an archive file with its parent chain, with errors that name it.
/// `search` are extra folders where moved parents may be.
pub fn open_archive(path: &Path, search: &[PathBuf]) -> Result<Chain, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| CliError::io(path, &e))?;
    if !meta.is_file() {
        return Err(CliError::new(path, "is not a regular file"));
    }
    open_chain(path, search).map_err(|e| CliError::format(path, e))
}

/// Parse sizes like `4096`, `256K`, `1M`, `4MiB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("'{text}' is not a size"))?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{text}': unknown unit (use K, M or G)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{text}' is too large"))
}

/// Human-readable size (binary units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar on stderr when it is a terminal and not quiet; hidden otherwise.
pub fn progress_bar(quiet: bool, total: u64, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

/// Copy a virtual range to `w`, decoding windows of a few blocks on two
/// threads and writing them in order. Every block's BLAKE3 is checked as it
/// is decoded and blocks are checked to be contiguous, so the output is what
/// was stored; `check_source` (whole file) also checks that the range is the
/// whole recorded source.
pub fn copy_range(
    archive: &Archive<FileSource>,
    offset: u64,
    length: u64,
    w: &mut dyn Write,
    progress: &dyn Fn(u64),
    check_source: bool,
) -> Result<(), CliError> {
    let window = (u64::from(archive.footer().max_block_length.get()).max(1 << 20) * 4).min(length.max(1));
    let windows = length.div_ceil(window);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4) as u64;
    let err = |e: hexz_format::Error| CliError { exit: Exit::Error, message: e.to_string() };
    std::thread::scope(|scope| -> Result<(), CliError> {
        // Worker t decodes windows t, t + threads, ...; the writer takes them
        // round-robin, so order is kept and at most two windows per worker wait.
        let mut receivers = Vec::new();
        for t in 0..threads {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, hexz_format::Error>>(2);
            receivers.push(rx);
            scope.spawn(move || {
                let mut scratch = archive.new_scratch();
                let mut k = t;
                while k < windows {
                    let start = k * window;
                    let n = (length - start).min(window) as usize;
                    let mut buf = vec![0u8; n];
                    let r = archive.read_at(offset + start, &mut buf, &mut scratch).map(|_| buf);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                    k += threads;
                }
            });
        }
        let mut done = 0u64;
        for k in 0..windows {
            let buf = receivers[(k % threads) as usize]
                .recv()
                .map_err(|_| CliError { exit: Exit::Error, message: "decoder thread stopped".into() })?
                .map_err(err)?;
            w.write_all(&buf).map_err(|e| CliError { exit: Exit::Error, message: format!("write failed: {e}") })?;
            done += buf.len() as u64;
            progress(done);
        }
        if check_source && (offset != 0 || done != archive.virtual_size()) {
            return Err(CliError { exit: Exit::Error, message: "extracted range is not the whole source".into() });
        }
        Ok(())
    })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `writeln!` into a String (formatting into a String cannot fail).
#[macro_export]
macro_rules! outln {
    ($o:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($o, $($arg)*);
    }};
}

/// Write command output to stdout; a closed pipe (`| head`) is not an error.
pub fn emit(text: &str) -> Result<Exit, CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::io(Path::new("stdout"), &e)),
        _ => Ok(Exit::Ok),
    }
}
