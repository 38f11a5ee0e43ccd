//! What every `extern "C"` function needs: no panic crosses the ABI, the
//! thread's last error message, and a registry of live handles so that a
//! double free is a no-op instead of memory corruption.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::{Mutex, Once};

use super::status::*;
use crate::error::Error;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
    static IN_LIBWS: Cell<u32> = const { Cell::new(0) };
}

pub(crate) fn set_last_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.push_str(msg);
    });
}

pub(crate) fn last_error() -> String {
    LAST_ERROR.with(|e| e.borrow().clone())
}

/// Records `err` as this thread's last error and returns its status.
pub(crate) fn fail(err: &Error) -> ws_status {
    set_last_error(err.message());
    status_of_error(err)
}

pub(crate) fn invalid(msg: &str) -> ws_status {
    set_last_error(msg);
    WS_ERR_INVALID_ARGUMENT
}

/// Installs (once) a panic hook that stays silent for panics inside libws
/// calls (they become `WS_ERR_INTERNAL`; a library must not print) and
/// defers to the previous hook for everything else.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_LIBWS.with(|c| c.get()) == 0 {
                previous(info);
            }
        }));
    });
}

fn panic_message(p: &Box<dyn Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning a panic into `on_panic` with the last error set.
pub(crate) fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    install_quiet_hook();
    // One thread-local lookup per call, not two: in a shared library each
    // is a `__tls_get_addr` call, and this runs on every C call.
    let depth: *const Cell<u32> = IN_LIBWS.with(|c| c as *const Cell<u32>);
    // SAFETY: a thread-local lives as long as its thread, and `depth` is
    // used on this thread only, within this call.
    let depth = unsafe { &*depth };
    depth.set(depth.get() + 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    depth.set(depth.get() - 1);
    match r {
        Ok(v) => v,
        Err(p) => {
            set_last_error(&format!("internal error in libws (please report): {}", panic_message(&p)));
            on_panic
        }
    }
}

/// Wraps a function body that returns `ws_status`.
macro_rules! ffi_status {
    ($body:block) => {
        $crate::ffi::guard::guard($crate::ffi::status::WS_ERR_INTERNAL, || -> $crate::ffi::status::ws_status { $body })
    };
}

/// Wraps a function body that returns a plain value (`$default` on panic).
macro_rules! ffi_value {
    ($default:expr, $body:block) => {
        $crate::ffi::guard::guard($default, || $body)
    };
}

pub(crate) use {ffi_status, ffi_value};

/// Addresses of handles that are alive. Only `_new`/`_free` touch it (not
/// the per-message path): freeing twice finds the handle gone and does
/// nothing.
static LIVE: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

pub(crate) fn register<T>(b: Box<T>) -> *mut T {
    let p = Box::into_raw(b);
    if let Ok(mut live) = LIVE.lock() {
        live.get_or_insert_with(HashSet::new).insert(p as usize);
    }
    p
}

/// Whether `p` is a live handle (registered and not freed).
pub(crate) fn is_live<T>(p: *mut T) -> bool {
    !p.is_null() && LIVE.lock().map(|l| l.as_ref().is_some_and(|l| l.contains(&(p as usize)))).unwrap_or(false)
}

/// Removes `p` from the live set; true if it was there (and may be freed).
pub(crate) fn unregister<T>(p: *mut T) -> bool {
    if p.is_null() {
        return false;
    }
    match LIVE.lock() {
        Ok(mut live) => live.as_mut().is_some_and(|l| l.remove(&(p as usize))),
        Err(_) => false,
    }
}
