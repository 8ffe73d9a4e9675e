//! The panic boundary, the per-thread last error, and errors on their way
//! to C. Status codes are hexz-format's [`ErrorCode`], exported to C as
//! `hexz_status`: one list, one mapping.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use hexz_format::ErrorCode;

/// An error on its way to the C caller.
#[derive(Debug)]
pub struct FfiError {
    pub status: ErrorCode,
    pub message: String,
}

impl FfiError {
    pub fn new(status: ErrorCode, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into() }
    }
    pub fn null(what: &str) -> Self {
        Self::new(ErrorCode::NullArgument, format!("{what} is NULL"))
    }
    pub fn invalid(what: &str) -> Self {
        Self::new(ErrorCode::InvalidArgument, what)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }
    pub fn unsupported(what: &str) -> Self {
        Self::new(ErrorCode::Unsupported, what)
    }
    pub fn type_mismatch(what: &str) -> Self {
        Self::new(ErrorCode::TypeMismatch, what)
    }
}

impl From<hexz_io::Error> for FfiError {
    fn from(e: hexz_io::Error) -> Self {
        FfiError { status: e.code(), message: e.to_string() }
    }
}

impl From<hexz_format::Error> for FfiError {
    fn from(e: hexz_format::Error) -> Self {
        FfiError { status: e.code(), message: e.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
    /// Where the last panic on this thread happened, as the quiet hook saw it.
    #[cfg(feature = "c-library")]
    static PANIC_LOCATION: RefCell<String> = const { RefCell::new(String::new()) };
}

pub fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// The C library (feature `c-library`, set only by the libhexz artifact
/// packages) never prints to its host's stderr, and Rust's default panic
/// hook prints before any `catch_unwind` can intervene: only a hook keeps
/// it quiet. libhexz.so and libhexz.a carry their own copy of std, so this
/// hook is the library's alone: the host's panic handling (a Rust host
/// has its own std) is untouched, and every panic it sees is the
/// library's, on any of its threads. It records where the panic happened;
/// the message travels in the payload to the `catch_unwind` that contains
/// it (here, or a worker's in hexz-io). Used as a Rust crate, hexz-ffi
/// installs nothing: panics are still contained (HEXZ_STATUS_PANIC) and
/// the host's hook reports them as the host chose.
#[cfg(feature = "c-library")]
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let _ = PANIC_LOCATION.try_with(|slot| *slot.borrow_mut() = at);
        }));
    });
}

#[cfg(not(feature = "c-library"))]
fn quiet_panics() {}

/// The text of a panic caught on this thread: its message, and where it
/// happened when the quiet hook saw it.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let message = hexz_io::panic_message(payload);
    #[cfg(feature = "c-library")]
    {
        let at = PANIC_LOCATION.try_with(|slot| std::mem::take(&mut *slot.borrow_mut())).unwrap_or_default();
        if !at.is_empty() {
            return format!("{message} at {at}");
        }
    }
    message
}

/// Run `body` with panics contained: a panic's text, or `None` when none.
/// For the edges that are not ABI bodies with a status (stdio's cookie
/// callbacks, hexz_close).
pub fn contain<T>(body: impl FnOnce() -> T) -> Result<T, String> {
    quiet_panics();
    catch_unwind(AssertUnwindSafe(body)).map_err(|payload| panic_text(&*payload))
}

/// Run an ABI body: catch panics, record the message of a failure. A
/// panic on a worker thread comes back from hexz-io as a PANIC error
/// carrying its message, like one on this thread.
pub fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> ErrorCode {
    match contain(body) {
        Ok(Ok(())) => ErrorCode::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(text) => {
            set_last_error(&format!("internal failure (a bug; please report it), contained at the C ABI: {text}"));
            ErrorCode::Panic
        }
    }
}
