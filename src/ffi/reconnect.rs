//! `ws_reconnect`: loop clients that dial again after a lost connection or
//! a failed dial, with exponential backoff and jitter; with
//! `max_retries = 0`, a loop dial that can be cancelled.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::conn::tri;
use super::convert::{cstr, headers, put, ws_header};
use super::dialer::{dialer_snapshot, ws_dialer};
use super::event_loop::{callbacks, loop_ref, ms, ws_loop, ws_loop_callbacks, CHandler, UserData};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::api::event_loop::{Backoff, Reconnector};

/// `ws_reconnect_options.on_reconnect`.
pub type ReconnectFn =
    unsafe extern "C" fn(attempt: u32, delay_ms: i64, last_status: ws_status, user_data: *mut c_void);

/// How a reconnecting dial waits between attempts. Start from
/// `ws_reconnect_options_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ws_reconnect_options {
    /// The delay before the first re-dial (default 1000; above 0).
    pub initial_delay_ms: i64,
    /// The delay never grows past this (default 30000; at least `initial_delay_ms`).
    pub max_delay_ms: i64,
    /// Each failed attempt multiplies the delay by this (default 2.0; at least 1).
    pub multiplier: f64,
    /// 0 to 1 (default 0.5): each delay is drawn from `[d * (1 - jitter), d]`,
    /// so clients cut off together do not all come back at the same moment.
    pub jitter: f64,
    /// Re-dials after the first dial: negative = forever (default), 0 =
    /// never (a plain dial that `ws_reconnect_stop` can cancel).
    pub max_retries: i32,
    /// Called on the loop's thread before each re-dial, with the dial's
    /// user data (may be NULL): re-dial number `attempt` (1 after a lost
    /// connection or a first failed dial; counting restarts once a
    /// connection opens) starts in `delay_ms`; `last_status` is the status
    /// of the failure that ended the previous attempt (`WS_OK` after a
    /// closed connection).
    pub on_reconnect:
        Option<unsafe extern "C" fn(attempt: u32, delay_ms: i64, last_status: ws_status, user_data: *mut c_void)>,
}

/// A reconnecting loop dial. Opaque; owned by the caller of
/// `ws_loop_dial_reconnecting`, freed (and stopped) with
/// `ws_reconnect_free`. It may outlive its loop: once the loop is freed it
/// dials no more.
pub struct ws_reconnect {
    r: Reconnector,
}

/// The default options: 1 s doubling up to 30 s, jitter 0.5, forever, no
/// `on_reconnect`. Returned by value; any thread.
#[no_mangle]
pub extern "C" fn ws_reconnect_options_default() -> ws_reconnect_options {
    let b = Backoff::default();
    ws_reconnect_options {
        initial_delay_ms: b.initial.as_millis() as i64,
        max_delay_ms: b.max.as_millis() as i64,
        multiplier: b.multiplier,
        jitter: b.jitter,
        max_retries: -1,
        on_reconnect: None,
    }
}

fn backoff(o: &ws_reconnect_options) -> Result<Backoff, ws_status> {
    let b = Backoff {
        initial: ms(o.initial_delay_ms, "initial_delay_ms")?,
        max: ms(o.max_delay_ms, "max_delay_ms")?,
        multiplier: o.multiplier,
        jitter: o.jitter,
        max_retries: u32::try_from(o.max_retries).ok(),
    };
    b.check().map_err(|e| invalid(e.message()))?;
    Ok(b)
}

/// Dials `url` through the loop as `ws_loop_dial` does (same callbacks,
/// same `user_data` for every connection it makes), and dials again after
/// each failed dial (`on_dial_error`) or closed connection (`on_close`),
/// waiting as `opts` says (NULL: the defaults), until `ws_reconnect_stop`
/// or the retries run out. A handshake refused with a 4xx status is not
/// retried (the server would refuse again). Each re-dial resolves the host
/// name again, on a short-lived thread of its own (the system resolver
/// blocks; the loop must not). Closing the connection yourself
/// (`ws_conn_close`) only starts the next attempt: stop the reconnector to
/// end. Errors in the URL or name of the first dial are returned here
/// (`WS_ERR_BAD_URL`, `WS_ERR_CONNECT`); bad options are
/// `WS_ERR_INVALID_ARGUMENT` (also a NULL `out`, `lp` or `cb`).
///
/// Ownership: `url`, `hdrs`, `*cb`, `*opts` and the dialer's settings are
/// copied during the call. On success `*out` is a handle the caller owns
/// (`ws_reconnect_free`); on failure `*out` is untouched. `user_data` is
/// handed back to every callback and must stay valid until the
/// reconnector is stopped and the last connection's `on_close` has run.
/// Threading: any thread, also from a loop callback; every callback
/// (including `opts->on_reconnect`) runs on the thread driving the loop.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // ws_loop_dial's arguments plus the options and the handle
pub extern "C" fn ws_loop_dial_reconnecting(
    lp: *mut ws_loop,
    d: *const ws_dialer,
    url: *const c_char,
    hdrs: *const ws_header,
    n: usize,
    cb: *const ws_loop_callbacks,
    opts: *const ws_reconnect_options,
    user_data: *mut c_void,
    out: *mut *mut ws_reconnect,
) -> ws_status {
    ffi_status!({
        if out.is_null() {
            return invalid("out is NULL");
        }
        let l = tri!(loop_ref(lp));
        let url = tri!(cstr(url, "url"));
        let extra = tri!(headers(hdrs, n));
        let cb = tri!(callbacks(cb));
        let dialer = tri!(dialer_snapshot(d));
        // SAFETY: a non-NULL pointer to the caller's options, copied now.
        let o = if opts.is_null() { ws_reconnect_options_default() } else { unsafe { *opts } };
        let b = tri!(backoff(&o));
        let handler = Arc::new(CHandler { cb, user_data: UserData(user_data), on_reconnect: o.on_reconnect });
        match l.remote.dial_reconnecting(url, &dialer, &extra, handler, user_data as usize, b) {
            Ok(r) => {
                put(out, guard::register(Box::new(ws_reconnect { r })));
                WS_OK
            }
            Err(e) => super::convert::status(Err(e)),
        }
    })
}

fn reconnect_ref<'a>(r: *const ws_reconnect) -> Result<&'a ws_reconnect, ws_status> {
    if r.is_null() {
        return Err(invalid("reconnect is NULL"));
    }
    // SAFETY: a non-NULL ws_reconnect* is a live handle from
    // ws_loop_dial_reconnecting.
    Ok(unsafe { &*r })
}

/// Ends the reconnecting dial (any thread, also from its callbacks;
/// idempotent): no dial starts after this, a pending re-dial is cancelled,
/// a dial in flight that still opens is closed at once without callbacks,
/// and the open connection is closed with 1000 (its `on_close` follows on
/// the loop's thread, so `user_data` must stay valid until then).
#[no_mangle]
pub extern "C" fn ws_reconnect_stop(r: *mut ws_reconnect) -> ws_status {
    ffi_status!({
        tri!(reconnect_ref(r)).r.stop();
        WS_OK
    })
}

/// Whether it has ended: stopped, out of retries, or refused with a 4xx
/// status. NULL: true. Any thread.
#[no_mangle]
pub extern "C" fn ws_reconnect_is_stopped(r: *const ws_reconnect) -> bool {
    ffi_value!(true, { reconnect_ref(r).map_or(true, |x| x.r.is_stopped()) })
}

/// Stops it (as `ws_reconnect_stop`) and frees the handle. NULL and a
/// second free are no-ops. Any thread, also from a callback (the handle is
/// not used by the loop; callbacks for a connection that was open may
/// still follow, see `ws_reconnect_stop`).
#[no_mangle]
pub extern "C" fn ws_reconnect_free(r: *mut ws_reconnect) {
    ffi_value!((), {
        if guard::unregister(r) {
            // SAFETY: registered by ws_loop_dial_reconnecting; just left the live set.
            let b = unsafe { Box::from_raw(r) };
            b.r.stop();
        }
    })
}
