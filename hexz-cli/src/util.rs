//! Errors and exit codes, signals, sizes, progress bars, JSON output.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::path::Path;

use hexz_format::ErrorCode;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

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
    pub code: ErrorCode,
    message: String,
}

impl CliError {
    pub fn new(path: &Path, what: impl fmt::Display) -> Self {
        CliError { exit: Exit::Error, code: ErrorCode::InvalidArgument, message: format!("{}: {what}", path.display()) }
    }

    pub fn usage(what: impl fmt::Display) -> Self {
        CliError { exit: Exit::Usage, code: ErrorCode::InvalidArgument, message: what.to_string() }
    }

    /// The same error with `text` appended.
    pub fn suffix(mut self, text: &str) -> Self {
        self.message.push_str(text);
        self
    }
}

impl From<hexz_io::Error> for CliError {
    fn from(e: hexz_io::Error) -> Self {
        CliError { exit: Exit::Error, code: e.code(), message: e.to_string() }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// On SIGINT or SIGTERM: remove the temporaries being written, then exit
/// 130 or 143 as shells report those signals.
pub fn install_signal_cleanup() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    fn clean_up_and_exit(signal: i32) -> ! {
        hexz_io::output::remove_registered_temporaries();
        crate::remote::abort_unfinished_uploads();
        std::process::exit(128 + signal);
    }
    #[cfg(unix)]
    {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else { return };
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                clean_up_and_exit(signal);
            }
        });
    }
    // Windows has no signal pipe (signal-hook's iterator is Unix-only):
    // the handler only records the signal (Ctrl-C arrives as SIGINT), and
    // a thread that looks every 50 ms does the cleanup outside it.
    #[cfg(not(unix))]
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let caught = Arc::new(AtomicUsize::new(0));
        for signal in [SIGINT, SIGTERM] {
            if signal_hook::flag::register_usize(signal, caught.clone(), signal as usize).is_err() {
                return;
            }
        }
        std::thread::spawn(move || loop {
            match caught.load(Ordering::SeqCst) {
                0 => std::thread::sleep(std::time::Duration::from_millis(50)),
                signal => clean_up_and_exit(signal as i32),
            }
        });
    }
}

/// Parse block sizes like `4096`, `256K`, `1M`, `4MiB`; 4 KiB to 64 MiB.
pub fn parse_block_size(text: &str) -> Result<u32, String> {
    let n = parse_size(text)?;
    let (min, max) = (hexz_format::writer::MIN_BLOCK_SIZE, hexz_format::layout::limits::MAX_BLOCK_LENGTH);
    u32::try_from(n)
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("'{text}': block size must be between 4 KiB and 64 MiB"))
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
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::new(Path::new("standard output"), format!("write: {e}")))
        }
        _ => Ok(Exit::Ok),
    }
}

/// A serializable value as pretty JSON on stdout.
pub fn emit_json<T: Serialize>(value: &T) -> Result<Exit, CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::usage(format!("JSON output: {e}")))?;
    emit(&(text + "\n"))
}

/// The error object `--json` commands print when they fail.
#[derive(Serialize)]
struct JsonError<'a> {
    error: JsonErrorBody<'a>,
}

#[derive(Serialize)]
struct JsonErrorBody<'a> {
    /// The status name, as the C ABI's HEXZ_STATUS_* without the prefix.
    code: &'a str,
    status: u32,
    message: String,
    exit_code: u8,
}

pub fn emit_json_error(e: &CliError) {
    let exit_code = match e.exit {
        Exit::Ok => 0,
        Exit::Error => 1,
        Exit::Usage => 2,
        Exit::VerifyFailed => 3,
    };
    let body = JsonErrorBody { code: e.code.name(), status: e.code as u32, message: e.to_string(), exit_code };
    let _ = emit_json(&JsonError { error: body });
}

/// `hexz verify --json`.
#[derive(Serialize)]
pub struct VerifyJson {
    archive: String,
    ok: bool,
    /// true: every block decoded and hashed; false: structure only (--quick).
    deep: bool,
    blocks_checked: u64,
    blocks_decoded: u64,
    tensors_checked: u64,
    problems: Vec<ProblemJson>,
}

#[derive(Serialize)]
struct ProblemJson {
    location: String,
    message: String,
}

impl VerifyJson {
    pub fn new(archive: &Path, deep: bool, report: &hexz_format::verify::Report) -> Self {
        VerifyJson {
            archive: archive.display().to_string(),
            ok: report.is_ok(),
            deep,
            blocks_checked: report.blocks_checked,
            blocks_decoded: report.blocks_decoded,
            tensors_checked: report.tensors_checked,
            problems: report
                .problems
                .iter()
                .map(|p| ProblemJson { location: p.location.clone(), message: p.message.clone() })
                .collect(),
        }
    }
}

/// Where a command-line argument points: a URL (`s3://`, `http(s)://`) or
/// a local path.
pub fn location(arg: &std::path::Path) -> hexz_io::Location {
    match arg.to_str() {
        Some(text) => hexz_io::Location::parse(text),
        None => hexz_io::Location::Path(arg.to_path_buf()),
    }
}

/// The block cache flags (`--cache-dir`, `--no-cache`, `--cache-max`),
/// which win over the environment.
static CACHE_FLAGS: std::sync::OnceLock<(Option<Option<std::path::PathBuf>>, Option<u64>)> = std::sync::OnceLock::new();

/// Set the block cache flags once, at startup: the folder (`Some(None)`:
/// off) and the cap.
pub fn set_cache_flags(dir: Option<Option<std::path::PathBuf>>, max: Option<u64>) {
    let _ = CACHE_FLAGS.set((dir, max));
}

/// The block cache flags as given, to pass on to a child `hexz` (the
/// mount's background process).
#[cfg(target_os = "linux")]
pub fn cache_flag_args() -> Vec<std::ffi::OsString> {
    let mut args = Vec::new();
    if let Some((dir, max)) = CACHE_FLAGS.get() {
        match dir {
            Some(Some(d)) => args.extend(["--cache-dir".into(), d.clone().into_os_string()]),
            Some(None) => args.push("--no-cache".into()),
            None => {}
        }
        if let Some(m) = max {
            args.extend(["--cache-max".into(), m.to_string().into()]);
        }
    }
    args
}

/// The block cache flags as set at startup: the folder (`Some(None)`:
/// off) and the cap.
#[cfg(feature = "remote")]
pub fn cache_flags() -> Option<&'static (Option<Option<std::path::PathBuf>>, Option<u64>)> {
    CACHE_FLAGS.get()
}
