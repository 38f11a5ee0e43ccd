//! `ws_loop`: the event loop in C. Callbacks with user data per listener
//! and per dial; connections appear as `ws_conn` handles shared with the
//! blocking API where that makes sense.
//!
//! Threading: `ws_loop_poll`/`ws_loop_run` drive the loop on one thread at
//! a time (a second driver gets `WS_ERR_BUSY`); every callback runs on
//! that thread. Every other `ws_loop_*` function, and sending on a loop
//! connection, is safe from any thread, including from callbacks.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use super::compression::ws_prepared_message;
use super::conn::ws_msg_type;
use super::conn::{release_loop_conn, tri, ws_conn, ConnKind};
use super::convert::{cstr, headers, need, put, status, ws_header};
use super::dialer::{dialer_snapshot, ws_dialer};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::http::{ws_request, ws_response};
use super::server::{upgrader_snapshot, ws_upgrader};
use super::status::*;
use super::timeout::{loop_timeout, timeout};
use crate::api::conn::MessageType;
use crate::api::event_loop::{ConnHandle, EventLoop, Handler, LoopConfig, LoopRemote};
use crate::api::http::{Request, Response};
use crate::error::Error;

/// An event loop. Opaque.
pub struct ws_loop {
    el: Mutex<EventLoop>,
    pub(super) remote: LoopRemote,
    fd: i32,
}

/// The callbacks of a listener's or a dial's connections. Every member may
/// be NULL. They run on the thread driving the loop; `user_data` is the
/// connection's (see `ws_conn_user_data`). Pointers passed in are valid
/// only during the call. A `ws_conn *` is valid from `on_open` until
/// `on_close` returns (keep it longer with `ws_conn_retain`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ws_loop_callbacks {
    /// Server only: a request passed the Upgrader's checks (version, key,
    /// origin). Return 0 to accept, or an HTTP status (400-599) to refuse;
    /// any other value refuses with 500. `*conn_user_data` starts as the
    /// listener's user data; what it holds on return becomes the
    /// connection's.
    pub on_handshake: Option<
        unsafe extern "C" fn(req: *const ws_request, user_data: *mut c_void, conn_user_data: *mut *mut c_void) -> i32,
    >,
    /// The handshake is done; the connection may send.
    pub on_open: Option<unsafe extern "C" fn(conn: *mut ws_conn, user_data: *mut c_void)>,
    /// A whole text or binary message; `data` is valid during the call (zero-copy).
    pub on_message: Option<
        unsafe extern "C" fn(
            conn: *mut ws_conn,
            r#type: ws_msg_type,
            data: *const u8,
            len: usize,
            user_data: *mut c_void,
        ),
    >,
    /// A ping arrived; the pong is already queued.
    pub on_ping: Option<unsafe extern "C" fn(conn: *mut ws_conn, data: *const u8, len: usize, user_data: *mut c_void)>,
    pub on_pong: Option<unsafe extern "C" fn(conn: *mut ws_conn, data: *const u8, len: usize, user_data: *mut c_void)>,
    /// The send queue emptied after the socket had pushed back or a send
    /// failed with `WS_ERR_QUEUE_FULL`: a good moment to send more.
    pub on_drain: Option<unsafe extern "C" fn(conn: *mut ws_conn, user_data: *mut c_void)>,
    /// The connection failed (protocol violation with its close code sent,
    /// I/O error, keepalive or close timeout); `on_close` follows.
    pub on_error: Option<
        unsafe extern "C" fn(conn: *mut ws_conn, status: ws_status, message: *const c_char, user_data: *mut c_void),
    >,
    /// The connection ended: the peer's close code and reason (1005 when
    /// its close carried no code), or 1006 when it ended without a close
    /// frame from the peer. Called exactly once per opened connection, and
    /// last; the handle is released when it returns (unless retained).
    pub on_close: Option<
        unsafe extern "C" fn(conn: *mut ws_conn, code: u16, reason: *const u8, len: usize, user_data: *mut c_void),
    >,
    /// A dial failed before opening (connect, timeout, refused handshake:
    /// `resp` is the server's answer then, else NULL). `user_data` is the
    /// dial's.
    pub on_dial_error: Option<
        unsafe extern "C" fn(
            status: ws_status,
            message: *const c_char,
            resp: *const ws_response,
            user_data: *mut c_void,
        ),
    >,
}

#[derive(Clone, Copy)]
pub(super) struct UserData(pub(super) *mut c_void);
// SAFETY: libws never dereferences the pointer; it hands it back to the
// caller's callbacks, which all run on the thread driving the loop.
unsafe impl Send for UserData {}
// SAFETY: as above; only copied.
unsafe impl Sync for UserData {}

/// The Rust handler behind a set of C callbacks.
pub(super) struct CHandler {
    pub(super) cb: ws_loop_callbacks,
    /// The listener's or dial's user data.
    pub(super) user_data: UserData,
    /// Reconnecting dials: `ws_reconnect_options.on_reconnect`.
    pub(super) on_reconnect: Option<super::reconnect::ReconnectFn>,
}

fn message_cstring(msg: &str) -> CString {
    CString::new(msg.replace('\0', " ")).unwrap_or_default()
}

impl CHandler {
    /// The C handle of `conn` and its user data.
    fn c(&self, conn: &ConnHandle) -> Option<(*mut ws_conn, *mut c_void)> {
        let p = conn.tag() as *mut ws_conn;
        if p.is_null() {
            return None;
        }
        // SAFETY: the tag is set in on_open to a handle the loop holds a
        // reference to until on_close clears it.
        let ud = unsafe { &*p }.loop_conn().map_or(std::ptr::null_mut(), |l| l.user_data.load(Ordering::Acquire));
        Some((p, ud))
    }
}

impl Handler for CHandler {
    fn on_handshake(&self, req: &Request) -> Result<usize, u16> {
        let mut conn_ud = self.user_data.0;
        if let Some(f) = self.cb.on_handshake {
            let lent = ws_request { req };
            // SAFETY: `lent` and `conn_ud` live until the call returns.
            let verdict = unsafe { f(&lent, self.user_data.0, &mut conn_ud) };
            match verdict {
                0 => {}
                400..=599 => return Err(verdict as u16),
                _ => return Err(500),
            }
        }
        Ok(conn_ud as usize)
    }

    fn on_open(&self, conn: &ConnHandle) {
        let ud = conn.user() as *mut c_void;
        let p = ws_conn::new_loop(conn.clone(), ud);
        conn.set_tag(p as usize);
        if let Some(f) = self.cb.on_open {
            // SAFETY: the caller's callback with its own user data and a
            // live handle.
            unsafe { f(p, ud) }
        }
    }

    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        if let (Some(f), Some((p, ud))) = (self.cb.on_message, self.c(conn)) {
            // SAFETY: `data` is valid for the call; `p` is live.
            unsafe { f(p, kind as i32, data.as_ptr(), data.len(), ud) }
        }
    }

    fn on_ping(&self, conn: &ConnHandle, data: &[u8]) {
        if let (Some(f), Some((p, ud))) = (self.cb.on_ping, self.c(conn)) {
            // SAFETY: as in on_message.
            unsafe { f(p, data.as_ptr(), data.len(), ud) }
        }
    }

    fn on_pong(&self, conn: &ConnHandle, data: &[u8]) {
        if let (Some(f), Some((p, ud))) = (self.cb.on_pong, self.c(conn)) {
            // SAFETY: as in on_message.
            unsafe { f(p, data.as_ptr(), data.len(), ud) }
        }
    }

    fn on_drain(&self, conn: &ConnHandle) {
        if let (Some(f), Some((p, ud))) = (self.cb.on_drain, self.c(conn)) {
            // SAFETY: `p` is live.
            unsafe { f(p, ud) }
        }
    }

    fn on_error(&self, conn: &ConnHandle, err: &Error) {
        if let (Some(f), Some((p, ud))) = (self.cb.on_error, self.c(conn)) {
            let msg = message_cstring(err.message());
            // SAFETY: `msg` lives until the call returns; `p` is live.
            unsafe { f(p, status_of_error(err), msg.as_ptr(), ud) }
        }
    }

    fn on_close(&self, conn: &ConnHandle, code: u16, reason: &[u8]) {
        let Some((p, ud)) = self.c(conn) else { return };
        if let Some(f) = self.cb.on_close {
            // SAFETY: `reason` is valid for the call; `p` is live.
            unsafe { f(p, code, reason.as_ptr(), reason.len(), ud) }
        }
        conn.set_tag(0);
        release_loop_conn(p);
    }

    fn on_dial_error(&self, user: usize, err: &Error, response: Option<&Response>) {
        if let Some(f) = self.cb.on_dial_error {
            let msg = message_cstring(err.message());
            let resp = response.map(|r| ws_response { resp: r.clone() });
            let rp = resp.as_ref().map_or(std::ptr::null(), |r| r as *const ws_response);
            // SAFETY: `msg` and `resp` live until the call returns.
            unsafe { f(status_of_error(err), msg.as_ptr(), rp, user as *mut c_void) }
        }
    }
    fn on_reconnect(&self, user: usize, attempt: u32, delay: Duration, last: Option<&Error>) {
        if let Some(f) = self.on_reconnect {
            let st = last.map_or(WS_OK, status_of_error);
            let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
            // SAFETY: the caller's callback, with plain values.
            unsafe { f(attempt, ms, st, user as *mut c_void) }
        }
    }
}

pub(super) fn loop_ref<'a>(l: *const ws_loop) -> Result<&'a ws_loop, ws_status> {
    if l.is_null() {
        return Err(invalid("loop is NULL"));
    }
    // SAFETY: a non-NULL ws_loop* is a live handle from ws_loop_new.
    Ok(unsafe { &*l })
}

pub(super) fn callbacks(cb: *const ws_loop_callbacks) -> Result<ws_loop_callbacks, ws_status> {
    if cb.is_null() {
        return Err(invalid("callbacks is NULL"));
    }
    // SAFETY: a non-NULL pointer to the caller's callback struct, read
    // once (copied) during this call.
    Ok(unsafe { *cb })
}

pub(super) fn ms(v: i64, what: &str) -> Result<Duration, ws_status> {
    if v < 0 {
        return Err(invalid(&format!("{what} must be 0 or more milliseconds")));
    }
    Ok(Duration::from_millis(v as u64))
}

/// Creates an event loop (it owns an epoll instance and a wake-up
/// descriptor; no thread). Free it with `ws_loop_free`.
#[no_mangle]
pub extern "C" fn ws_loop_new(loop_out: *mut *mut ws_loop) -> ws_status {
    ffi_status!({
        tri!(need(loop_out, "loop_out"));
        let el = match EventLoop::new() {
            Ok(el) => el,
            Err(e) => return guard::fail(&e),
        };
        let remote = el.remote();
        let fd = el.raw_fd();
        put(loop_out, guard::register(Box::new(ws_loop { el: Mutex::new(el), remote, fd })));
        WS_OK
    })
}

/// Frees the loop: every connection still open is closed at once (its
/// close callback runs, with 1006, on this thread), listeners stop.
/// NULL and a second free are no-ops. No other call on the loop may be in
/// progress, and it must not be called from a callback.
#[no_mangle]
pub extern "C" fn ws_loop_free(lp: *mut ws_loop) {
    ffi_value!((), {
        if !guard::is_live(lp) {
            return;
        }
        // SAFETY: a live handle (checked above).
        if matches!(unsafe { &*lp }.el.try_lock(), Err(TryLockError::WouldBlock)) {
            // Freeing the loop under its own poll would pull the memory
            // from under the running call: refuse, keep it alive.
            guard::set_last_error("ws_loop_free called while the loop is being driven (from a callback?): not freed");
            return;
        }
        if guard::unregister(lp) {
            // SAFETY: registered by ws_loop_new and just removed from the
            // live set: this is its only release.
            drop(unsafe { Box::from_raw(lp) });
        }
    })
}

/// Listens on `host`:`port` (`host` NULL = 127.0.0.1; an IPv6 address
/// may be given bare; port 0 picks a free one, written to `*port_out` if
/// not NULL) with a snapshot of `up`'s settings (NULL =
/// defaults: origin check, 10 s handshake timeout, 64 MiB read limit).
/// Connections get `cb` (copied) and, unless the handshake callback
/// changes it, `user_data`. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_listen(
    lp: *mut ws_loop,
    up: *const ws_upgrader,
    host: *const c_char,
    port: u16,
    cb: *const ws_loop_callbacks,
    user_data: *mut c_void,
    port_out: *mut u16,
) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        let host = if host.is_null() { "127.0.0.1" } else { tri!(cstr(host, "host")) };
        let cb = tri!(callbacks(cb));
        let upgrader = tri!(upgrader_snapshot(up));
        let handler = Arc::new(CHandler { cb, user_data: UserData(user_data), on_reconnect: None });
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match l.remote.listen(&addr, &upgrader, handler) {
            Ok(a) => {
                if !port_out.is_null() {
                    put(port_out, a.port());
                }
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Dials a `ws://` or `wss://` URL through the loop with a snapshot of
/// `d`'s settings (NULL = defaults) and `n` extra headers. The proxy is
/// chosen as `ws_dial` does (`ws_dialer_set_proxy`; by default the
/// environment's, read now) and so are TLS settings. The URL is checked
/// and the host resolved now (the proxy's, and for `socks5://` the
/// target's too; blocking, system resolver); connecting, the proxy tunnel
/// (TLS to an `https://` proxy), TLS and the handshake happen on the loop
/// within the dialer's handshake timeout and end in `cb->on_open` (the
/// connection's user data is `user_data`) or `cb->on_dial_error` with the
/// same statuses as `ws_dial` (`WS_ERR_PROXY_REFUSED` with an HTTP proxy's
/// response, `WS_ERR_PROXY`, `WS_ERR_TIMEOUT`, `WS_ERR_TLS*`...). The
/// dialer, URL and headers are copied: free them whenever you like. Any
/// thread.
#[no_mangle]
pub extern "C" fn ws_loop_dial(
    lp: *mut ws_loop,
    d: *const ws_dialer,
    url: *const c_char,
    hdrs: *const ws_header,
    n: usize,
    cb: *const ws_loop_callbacks,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        let url = tri!(cstr(url, "url"));
        let extra = tri!(headers(hdrs, n));
        let cb = tri!(callbacks(cb));
        let dialer = tri!(dialer_snapshot(d));
        let handler = Arc::new(CHandler { cb, user_data: UserData(user_data), on_reconnect: None });
        status(l.remote.dial(url, &dialer, &extra, handler, user_data as usize))
    })
}

fn drive(l: &ws_loop, f: impl FnOnce(&mut EventLoop) -> Result<(), Error>) -> ws_status {
    match l.el.try_lock() {
        Ok(mut el) => status(f(&mut el)),
        Err(TryLockError::WouldBlock) => {
            guard::set_last_error("the loop is already being driven (from another thread or a callback)");
            WS_ERR_BUSY
        }
        Err(TryLockError::Poisoned(_)) => {
            guard::set_last_error("the loop is poisoned by an earlier panic");
            WS_ERR_INTERNAL
        }
    }
}

/// Processes what is ready — reads, callbacks, timers, timeouts, writes —
/// waiting at most `timeout_ms` for something to happen (negative = until
/// something does, 0 = never block: the call a game engine makes once per
/// frame). The calling thread runs every callback. `WS_ERR_BUSY` if
/// another thread (or a callback) is driving the loop.
#[no_mangle]
pub extern "C" fn ws_loop_poll(lp: *mut ws_loop, timeout_ms: i64) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        let t = timeout(timeout_ms);
        drive(l, |el| el.poll(t).map(|_| ()))
    })
}

/// Runs the loop on the calling thread until `ws_loop_stop` (any thread)
/// or until a `ws_loop_shutdown` has closed everything.
#[no_mangle]
pub extern "C" fn ws_loop_run(lp: *mut ws_loop) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        drive(l, |el| el.run())
    })
}

/// Makes `ws_loop_run` return after its current iteration (or, when none
/// is running, the next `ws_loop_run` return at once: a stop is never
/// lost), and wakes a blocked `ws_loop_poll`. Each stop ends one run. Any
/// thread.
#[no_mangle]
pub extern "C" fn ws_loop_stop(lp: *mut ws_loop) -> ws_status {
    ffi_status!({
        tri!(loop_ref(lp)).remote.stop();
        WS_OK
    })
}

/// Wakes a blocked `ws_loop_poll`/`ws_loop_run` (it processes what is
/// ready and goes on). Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_wake(lp: *mut ws_loop) -> ws_status {
    ffi_status!({
        tri!(loop_ref(lp)).remote.wake();
        WS_OK
    })
}

/// Graceful shutdown: stops listening, drops handshakes in progress (dials
/// get `on_dial_error`), sends close 1001 to every open connection and
/// waits up to `timeout_ms` (negative = no limit) for their close
/// handshakes, then closes the rest (1006). `ws_loop_run` returns when everything is closed; with
/// `ws_loop_poll`, watch `ws_loop_connection_count`. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_shutdown(lp: *mut ws_loop, timeout_ms: i64) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        status(l.remote.shutdown(loop_timeout(timeout_ms)))
    })
}

/// The loop's descriptor (an epoll instance), to sit inside another event
/// loop: when it is readable — or when `ws_loop_next_timeout_ms` passes —
/// call `ws_loop_poll(loop, 0)`. -1 for a NULL loop. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_fd(lp: *const ws_loop) -> i32 {
    ffi_value!(-1, { loop_ref(lp).map(|l| l.fd).unwrap_or(-1) })
}

/// Milliseconds until the loop has work of its own (a timer, a timeout
/// check, input left over): 0 = poll now, -1 = only when its descriptor is
/// readable. For a foreign event loop's wait. -1 also when the loop is
/// being driven by another thread (or NULL).
#[no_mangle]
pub extern "C" fn ws_loop_next_timeout_ms(lp: *mut ws_loop) -> i64 {
    ffi_value!(-1, {
        let Ok(l) = loop_ref(lp) else { return -1 };
        let Ok(mut el) = l.el.try_lock() else { return -1 };
        match el.next_timeout() {
            None => -1,
            // Round up: waking a little late beats spinning early.
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i64::MAX as u128) as i64,
        }
    })
}

/// Called on the loop's thread when a timer fires.
pub type ws_timer_fn = Option<unsafe extern "C" fn(lp: *mut ws_loop, timer_id: u64, user_data: *mut c_void)>;

/// Runs `cb` on the loop's thread after `delay_ms`, then every
/// `interval_ms` if that is above 0 (0 = once). The timer's id goes to
/// `*id_out` (may be NULL). Delay and interval are periods, not
/// timeouts: negative values, and values above 10 years, are
/// `WS_ERR_INVALID_ARGUMENT`. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_timer_add(
    lp: *mut ws_loop,
    delay_ms: i64,
    interval_ms: i64,
    cb: ws_timer_fn,
    user_data: *mut c_void,
    id_out: *mut u64,
) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        let delay = tri!(ms(delay_ms, "delay_ms"));
        let interval = tri!(ms(interval_ms, "interval_ms"));
        let Some(f) = cb else { return invalid("timer callback is NULL") };
        let ud = UserData(user_data);
        let lptr = LoopPtr(lp);
        let id_cell = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let id_in = id_cell.clone();
        let callback = Box::new(move || {
            let (ud, lptr) = (ud, lptr);
            // SAFETY: the caller's callback with its own user data; the
            // loop is alive while it runs timers.
            unsafe { f(lptr.0, id_in.load(Ordering::Acquire), ud.0) }
        });
        let interval = (!interval.is_zero()).then_some(interval);
        match l.remote.add_timer(delay, interval, callback) {
            Ok(id) => {
                id_cell.store(id, Ordering::Release);
                if !id_out.is_null() {
                    put(id_out, id);
                }
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

#[derive(Clone, Copy)]
struct LoopPtr(*mut ws_loop);
// SAFETY: only handed back to the caller's timer callback.
unsafe impl Send for LoopPtr {}

/// Cancels a timer (an unknown or finished id is not an error). Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_timer_cancel(lp: *mut ws_loop, timer_id: u64) -> ws_status {
    ffi_status!({ status(tri!(loop_ref(lp)).remote.cancel_timer(timer_id)) })
}

fn with_config(lp: *mut ws_loop, f: impl FnOnce(&mut LoopConfig)) -> ws_status {
    let l = tri!(loop_ref(lp));
    let mut cfg = l.remote.config();
    f(&mut cfg);
    status(l.remote.set_config(cfg))
}

/// Keepalive: after `interval_ms` without receiving anything, send a ping;
/// if nothing arrives within `timeout_ms` after it (negative = no limit:
/// pings only), close the connection (1006 locally; `on_error` with
/// `WS_ERR_TIMEOUT`). `interval_ms` is a period, not a timeout: 0 turns
/// keepalive off (the default), negative is refused. Applies from the next
/// check. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_set_keepalive(lp: *mut ws_loop, interval_ms: i64, timeout_ms: i64) -> ws_status {
    ffi_status!({
        let iv = tri!(ms(interval_ms, "interval_ms"));
        let to = loop_timeout(timeout_ms);
        with_config(lp, |c| {
            c.ping_interval = (!iv.is_zero()).then_some(iv);
            c.pong_timeout = to;
        })
    })
}

/// Closes (1001 "idle timeout") a connection that received no data
/// message for `timeout_ms`; negative turns it off (the default), 0
/// closes every connection at the next check. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_set_idle_timeout(lp: *mut ws_loop, timeout_ms: i64) -> ws_status {
    ffi_status!({
        let t = timeout(timeout_ms);
        with_config(lp, |c| c.idle_timeout = t)
    })
}

/// How long a close handshake may take before TCP is closed anyway
/// (default 5000 ms; negative = no limit, 0 = close TCP right after
/// sending the close frame). Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_set_close_timeout(lp: *mut ws_loop, timeout_ms: i64) -> ws_status {
    ffi_status!({
        let t = loop_timeout(timeout_ms);
        with_config(lp, |c| c.close_timeout = t)
    })
}

/// `on` true: a text or binary message sent while nothing is queued is
/// written to the socket by the sending thread at once instead of waking
/// the loop to flush it (what a caller that drives the loop from the
/// thread it sends on wants, e.g. inside a foreign event loop: one wake-up
/// and one loop iteration less per send; each message is then one
/// write(2), a burst is not batched). Compressed messages, control and
/// close frames still go through the loop. Off by default. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_set_write_through(lp: *mut ws_loop, on: bool) -> ws_status {
    ffi_status!({
        tri!(loop_ref(lp)).remote.set_write_through(on);
        WS_OK
    })
}

/// The high-water mark of every connection opened afterwards: a send that
/// would queue more than `bytes` fails with `WS_ERR_QUEUE_FULL` (default
/// 16 MiB; 0 = no limit, unbounded memory). Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_set_max_buffered(lp: *mut ws_loop, bytes: usize) -> ws_status {
    ffi_status!({ with_config(lp, |c| c.max_buffered = bytes) })
}

/// Queues a prepared message on every open connection of the loop (it is
/// compressed once per compression setting, not once per connection).
/// `*queued_out` (may be NULL) gets how many connections took it; a full
/// or closing connection is skipped. Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_broadcast(
    lp: *mut ws_loop,
    pm: *const ws_prepared_message,
    queued_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let l = tri!(loop_ref(lp));
        if pm.is_null() {
            return invalid("prepared message is NULL");
        }
        // SAFETY: a non-NULL ws_prepared_message* is a live handle.
        let pm = unsafe { &*pm };
        match l.remote.broadcast(&pm.pm) {
            Ok(n) => {
                if !queued_out.is_null() {
                    put(queued_out, n);
                }
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Open connections of the loop (handshake done, close callback not yet
/// run). Any thread.
#[no_mangle]
pub extern "C" fn ws_loop_connection_count(lp: *const ws_loop) -> usize {
    ffi_value!(0, { loop_ref(lp).map(|l| l.remote.open_connections()).unwrap_or(0) })
}

// ---------------------------------------------------------------------------
// ws_conn functions that only loop connections have
// ---------------------------------------------------------------------------

fn loop_conn_of<'a>(conn: *mut ws_conn) -> Result<&'a super::conn::LoopConn, ws_status> {
    let c = tri_ref(conn)?;
    match &c.kind {
        ConnKind::Loop(l) => Ok(l),
        ConnKind::Blocking(_) => Err(invalid("not an event-loop connection")),
    }
}

fn tri_ref<'a>(conn: *mut ws_conn) -> Result<&'a ws_conn, ws_status> {
    super::conn::conn_ref(conn)
}

/// Keeps a loop connection's handle valid after its close callback, e.g.
/// to send from another thread without racing the close: each retain is
/// paired with a `ws_conn_free`. Sends on a closed connection return
/// `WS_ERR_LOCALLY_CLOSED` (or `WS_ERR_CLOSE_SENT`). Any thread, while the
/// handle is valid.
#[no_mangle]
pub extern "C" fn ws_conn_retain(conn: *mut ws_conn) -> ws_status {
    ffi_status!({
        let l = tri!(loop_conn_of(conn));
        l.retain();
        WS_OK
    })
}

/// A connection's user data: for a loop connection, what the handshake
/// callback chose (else the listener's), or the dial's. NULL for a
/// blocking connection. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_user_data(conn: *mut ws_conn) -> *mut c_void {
    ffi_value!(std::ptr::null_mut(), {
        loop_conn_of(conn).map(|l| l.user_data.load(Ordering::Acquire)).unwrap_or(std::ptr::null_mut())
    })
}

/// Replaces a loop connection's user data (passed to its callbacks from
/// then on). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_user_data(conn: *mut ws_conn, user_data: *mut c_void) -> ws_status {
    ffi_status!({
        tri!(loop_conn_of(conn)).user_data.store(user_data, Ordering::Release);
        WS_OK
    })
}

/// Bytes queued on a loop connection and not yet taken by the socket (the
/// browser's bufferedAmount); under TLS this includes the encrypted records
/// the TLS layer holds for the socket (up to 64 KiB, each record a few
/// bytes more than the data it carries). 0 for a blocking connection or
/// NULL. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_buffered_amount(conn: *mut ws_conn) -> usize {
    ffi_value!(0, { loop_conn_of(conn).map(|l| l.handle.buffered_amount()).unwrap_or(0) })
}

/// Whether `conn` belongs to an event loop (1) or is a blocking
/// connection (0). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_is_loop(conn: *mut ws_conn) -> bool {
    ffi_value!(false, { tri_ref(conn).map(|c| c.loop_conn().is_some()).unwrap_or(false) })
}

/// Flow control for a loop connection: `paused` true stops reading from
/// it (its messages wait in the kernel, and TCP pushes back on the peer),
/// false resumes. Messages already read — at most one read's worth — are
/// still delivered after pausing; pings are answered only while reading.
/// A typical use: pause when `ws_conn_buffered_amount` grows past a mark,
/// resume in `on_drain`. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_pause_reading(conn: *mut ws_conn, paused: bool) -> ws_status {
    ffi_status!({
        tri!(loop_conn_of(conn)).handle.pause_reading(paused);
        WS_OK
    })
}
