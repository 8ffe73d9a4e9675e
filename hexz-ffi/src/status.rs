//! The panic boundary, the per-thread last error, and errors on their way
//! to C. Status codes are hexz-format's [`ErrorCode`], exported to C as
//! `hexz_status`: one list, one mapping.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

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
    /// Set while an ABI body runs on this thread: its panics are ours.
    static IN_ABI: Cell<bool> = const { Cell::new(false) };
    static PANIC_MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// A library never prints to its host's stderr: panics inside an ABI body
/// are recorded for hexz_last_error() instead of printed. Panics elsewhere
/// (a Rust host linking libhexz.a) still reach the previous hook.
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_ABI.try_with(Cell::get).unwrap_or(false) {
                let where_ = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
                let _ = PANIC_MESSAGE.try_with(|m| *m.borrow_mut() = format!("{info}{where_}"));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run an ABI body: catch panics, record the message of a failure.
pub fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> ErrorCode {
    install_quiet_panic_hook();
    let outer = IN_ABI.try_with(|f| f.replace(true)).unwrap_or(false);
    let outcome = catch_unwind(AssertUnwindSafe(body));
    let _ = IN_ABI.try_with(|f| f.set(outer));
    match outcome {
        Ok(Ok(())) => ErrorCode::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(_) => {
            let detail = PANIC_MESSAGE.try_with(|m| std::mem::take(&mut *m.borrow_mut())).unwrap_or_default();
            set_last_error(&format!("internal failure (a bug; please report it), contained at the C ABI: {detail}"));
            ErrorCode::Panic
        }
    }
}
