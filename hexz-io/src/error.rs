//! Errors that keep their cause and name the file at fault.

use std::path::PathBuf;

use hexz_format::{Category, ErrorCode};

use crate::location::Location;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, and with which file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The archive or source file at `location` is bad, or reading it failed.
    #[error("{location}: {source}")]
    At {
        /// The file (or URL) at fault.
        location: Location,
        /// What was wrong with it.
        #[source]
        source: hexz_format::Error,
    },
    /// A file operation failed; the OS error text is kept.
    #[error("{}: {op}: {source}", path.display())]
    File {
        /// The file operated on.
        path: PathBuf,
        /// The operation ("open", "write", ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An operation was refused before anything was written (the
    /// destination exists, is an input, is not a regular file, ...).
    #[error("{}: {reason}", path.display())]
    Refused {
        /// The path (or URL) refused.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The status to report.
        code: ErrorCode,
    },
    /// An option or argument is out of range or otherwise invalid
    /// (status INVALID_ARGUMENT); found before anything is read or written.
    #[error("invalid argument: {0}")]
    InvalidOption(String),
    /// The caller asked to stop (a progress callback returned `Break`).
    #[error("cancelled")]
    Cancelled,
    /// A format error with no file to name (bytes in memory, options).
    #[error(transparent)]
    Format(#[from] hexz_format::Error),
    /// A worker thread panicked (a bug), contained; the panic's message is kept.
    #[error("internal failure on a worker thread (a bug; please report it): {0}")]
    Panic(String),
}

impl Error {
    /// The status code every front end reports.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::At { source, .. } | Error::Format(source) => source.code(),
            Error::File { source, .. } => match source.kind() {
                std::io::ErrorKind::OutOfMemory => ErrorCode::OutOfMemory,
                _ => ErrorCode::Io,
            },
            Error::Refused { code, .. } => *code,
            Error::InvalidOption(_) => ErrorCode::InvalidArgument,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::Panic(_) => ErrorCode::Panic,
        }
    }

    /// The kind of failure, as every front end classifies it.
    pub fn category(&self) -> Category {
        self.code().category()
    }

    /// An invalid option or argument.
    pub fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidOption(what.into())
    }

    /// A contained panic, with the message its payload carries.
    pub fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        Error::Panic(panic_message(payload))
    }

    /// A file operation on `path` failed.
    pub fn file(path: impl Into<PathBuf>, op: &'static str, source: std::io::Error) -> Self {
        Error::File { path: path.into(), op, source }
    }

    /// Refuse an operation on `path`.
    pub fn refused(path: impl Into<PathBuf>, reason: impl Into<String>, code: ErrorCode) -> Self {
        Error::Refused { path: path.into(), reason: reason.into(), code }
    }

    /// The format error behind this one, if any.
    pub fn format_error(&self) -> Option<&hexz_format::Error> {
        match self {
            Error::At { source, .. } | Error::Format(source) => Some(source),
            _ => None,
        }
    }

    /// Whether the OS said the file is not there.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::File { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Refused { code, .. } => *code == ErrorCode::NotFound,
            // A name missing from an archive is not a missing file.
            _ => false,
        }
    }

    /// Whether the user cancelled (a progress callback asked to stop).
    pub fn is_cancelled(&self) -> bool {
        self.code() == ErrorCode::Cancelled
    }
}

/// The message a panic payload carries (`panic!` gives a `&str` or a
/// `String`; anything else has none to give).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(a panic without a message)".to_string(),
    }
}

/// Name the archive chain member a format error belongs to: an error marked
/// [`hexz_format::Error::Ancestor`] names that ancestor, any other the archive itself.
pub fn at_chain(chain: &[Location], err: hexz_format::Error) -> Error {
    let (depth, _) = err.innermost();
    match (depth, chain.get(usize::from(depth))) {
        (0, _) => match chain.first() {
            Some(location) => Error::At { location: location.clone(), source: err },
            None => Error::Format(err),
        },
        (_, Some(location)) => {
            let (_, inner) = err.innermost();
            Error::At { location: location.clone(), source: inner.clone() }
        }
        (_, None) => match chain.first() {
            Some(location) => Error::At { location: location.clone(), source: err },
            None => Error::Format(err),
        },
    }
}
