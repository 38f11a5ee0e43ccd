//! `ws_session`: the sans-IO connection in C, for programs that own their
//! sockets or their whole I/O (game engines, io_uring, libuv/ASIO loops,
//! embedded stacks). Shaped after wslay's event context and quiche's
//! connection, with the opening handshake for both roles,
//! permessage-deflate, keepalive and timeouts.
//!
//! The caller feeds received bytes (`ws_session_recv`, `_recv_eof`),
//! transmits what `ws_session_pending` shows and reports it with
//! `ws_session_sent`, and calls `ws_session_on_timeout` when
//! `ws_session_next_timeout_ms` says. Events arrive through callbacks
//! during those calls.
//!
//! TLS: a server session whose Upgrader has a TLS configuration
//! (`ws_upgrader_set_tls`), or a client session for a `wss://` URL (the
//! Dialer's `ws_dialer_set_tls` settings, else the system trust store),
//! runs TLS inside the session: the bytes fed and pending are ciphertext.
//!
//! Threading: a session is used by one thread at a time (the caller
//! serializes); callbacks run on the calling thread, inside the call that
//! caused them, and may queue sends and closes on their session (not
//! `ws_session_recv`, which returns `WS_ERR_BUSY` there, and never
//! `ws_session_free`).

use std::ffi::{c_char, c_void, CString};
use std::time::{Duration, Instant};

use super::compression::ws_prepared_message;
use super::conn::{tri, ws_msg_type};
use super::convert::{bytes, bytes_mut, cstr, need, put, status};
use super::dialer::{dialer_snapshot, ws_dialer};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::http::{ws_request, ws_response};
use super::server::{upgrader_snapshot, ws_upgrader};
use super::status::*;
use crate::api::session::{Session, SessionEvent, SessionHandler};
use crate::api::MessageType;
use crate::proto::engine::TimeoutConfig;

/// The events of a session. Every member may be NULL. Pointers passed in
/// are valid only during the call (message data is zero-copy).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ws_session_callbacks {
    /// The opening handshake completed. A server sees the client's request
    /// (`resp` NULL), a client the server's response (`req` NULL).
    pub on_open: Option<
        unsafe extern "C" fn(
            s: *mut ws_session,
            req: *const ws_request,
            resp: *const ws_response,
            user_data: *mut c_void,
        ),
    >,
    /// A whole text or binary message (inflated if it was compressed).
    pub on_message: Option<
        unsafe extern "C" fn(
            s: *mut ws_session,
            r#type: ws_msg_type,
            data: *const u8,
            len: usize,
            user_data: *mut c_void,
        ),
    >,
    /// A ping arrived; its pong is queued when the call returns.
    pub on_ping: Option<unsafe extern "C" fn(s: *mut ws_session, data: *const u8, len: usize, user_data: *mut c_void)>,
    pub on_pong: Option<unsafe extern "C" fn(s: *mut ws_session, data: *const u8, len: usize, user_data: *mut c_void)>,
    /// The peer's close frame (1005: it carried no code); the echo is
    /// queued. Close the socket once `ws_session_is_finished` and nothing
    /// is pending.
    pub on_close: Option<
        unsafe extern "C" fn(s: *mut ws_session, code: u16, reason: *const u8, len: usize, user_data: *mut c_void),
    >,
    /// The session failed: a protocol violation (its close frame is
    /// pending), a refused handshake (the HTTP answer is pending), a
    /// timeout, or the transport ended without a close frame. The session
    /// is finished: send what is pending, then close the socket.
    pub on_error: Option<
        unsafe extern "C" fn(s: *mut ws_session, status: ws_status, message: *const c_char, user_data: *mut c_void),
    >,
}

/// One WebSocket connection without I/O. Opaque.
pub struct ws_session {
    s: Session,
    cb: ws_session_callbacks,
    user_data: *mut c_void,
    /// `ws_session_refused_response`'s answer, made on the first call.
    refused: std::cell::OnceCell<ws_response>,
}

struct CHandler {
    me: *mut ws_session,
    cb: ws_session_callbacks,
    ud: *mut c_void,
}

impl SessionHandler for CHandler {
    fn on_event(&mut self, _s: &Session, ev: SessionEvent<'_>) {
        let (me, ud) = (self.me, self.ud);
        match ev {
            SessionEvent::Open { request, response } => {
                if let Some(f) = self.cb.on_open {
                    let req = request.map(|r| ws_request { req: r });
                    let resp = response.map(|r| ws_response { resp: r.clone() });
                    let rp = req.as_ref().map_or(std::ptr::null(), |r| r as *const ws_request);
                    let sp = resp.as_ref().map_or(std::ptr::null(), |r| r as *const ws_response);
                    // SAFETY: both pointers live until the call returns.
                    unsafe { f(me, rp, sp, ud) }
                }
            }
            SessionEvent::Message { kind, data } => {
                if let Some(f) = self.cb.on_message {
                    // SAFETY: `data` is valid for the call.
                    unsafe { f(me, kind as ws_msg_type, data.as_ptr(), data.len(), ud) }
                }
            }
            SessionEvent::Ping(p) => {
                if let Some(f) = self.cb.on_ping {
                    // SAFETY: `p` is valid for the call.
                    unsafe { f(me, p.as_ptr(), p.len(), ud) }
                }
            }
            SessionEvent::Pong(p) => {
                if let Some(f) = self.cb.on_pong {
                    // SAFETY: `p` is valid for the call.
                    unsafe { f(me, p.as_ptr(), p.len(), ud) }
                }
            }
            SessionEvent::Close { code, reason } => {
                if let Some(f) = self.cb.on_close {
                    // SAFETY: `reason` is valid for the call.
                    unsafe { f(me, code, reason.as_ptr(), reason.len(), ud) }
                }
            }
            SessionEvent::Error(e) => {
                if let Some(f) = self.cb.on_error {
                    let msg = CString::new(e.message().replace('\0', " ")).unwrap_or_default();
                    // SAFETY: `msg` lives until the call returns.
                    unsafe { f(me, status_of_error(e), msg.as_ptr(), ud) }
                }
            }
        }
    }
}

fn session_ref<'a>(s: *mut ws_session) -> Result<&'a ws_session, ws_status> {
    if s.is_null() {
        return Err(invalid("session is NULL"));
    }
    // SAFETY: a non-NULL ws_session* is a live handle from a _new call;
    // only shared references are made (the session uses interior
    // mutability), so a callback's calls on the same session are sound.
    Ok(unsafe { &*s })
}

fn with_handler(s: *mut ws_session, f: impl FnOnce(&Session, &mut CHandler) -> ws_status) -> ws_status {
    let w = tri!(session_ref(s));
    let mut h = CHandler { me: s, cb: w.cb, ud: w.user_data };
    f(&w.s, &mut h)
}

fn new_session(
    s: Session,
    cb: *const ws_session_callbacks,
    user_data: *mut c_void,
    out: *mut *mut ws_session,
) -> ws_status {
    let cb = if cb.is_null() {
        ws_session_callbacks {
            on_open: None,
            on_message: None,
            on_ping: None,
            on_pong: None,
            on_close: None,
            on_error: None,
        }
    } else {
        // SAFETY: a non-NULL pointer is the caller's callbacks struct (copied).
        unsafe { *cb }
    };
    put(out, guard::register(Box::new(ws_session { s, cb, user_data, refused: std::cell::OnceCell::new() })));
    WS_OK
}

/// A server session with the Upgrader's settings (NULL = defaults): the
/// first bytes fed are the client's request; it answers with a 101 (or an
/// HTTP error: 400, 403, 405, 426, 431 as the other servers) in
/// `ws_session_pending`. With a TLS configuration on the Upgrader
/// (`ws_upgrader_set_tls`) the session is a TLS server: it takes the
/// client's ciphertext and its pending bytes are ciphertext. Its TLS
/// handshake uses the configuration's certificate of that moment
/// (`ws_tls_server_config_replace_certificate_*` reaches handshakes that
/// come after it); `WS_ERR_TLS_CONFIG` when the configuration cannot be
/// used. The
/// Upgrader is copied (free it whenever you like; its TLS configuration is
/// shared, not copied). `cb` is copied (NULL = no callbacks); `user_data`
/// goes to every callback. Free with `ws_session_free`. Any thread; the
/// session is then used by one thread at a time.
#[no_mangle]
pub extern "C" fn ws_session_server_new(
    upgrader: *const ws_upgrader,
    cb: *const ws_session_callbacks,
    user_data: *mut c_void,
    out: *mut *mut ws_session,
) -> ws_status {
    ffi_status!({
        tri!(need(out, "out"));
        let up = tri!(upgrader_snapshot(upgrader));
        match Session::server(&up, Instant::now()) {
            Ok(s) => new_session(s, cb, user_data, out),
            Err(e) => guard::fail(&e),
        }
    })
}

/// A client session for `url` (`ws://` or `wss://`) with the Dialer's
/// settings (NULL = defaults), copied: free the Dialer whenever you like.
/// The caller connects to the URL's host and port itself (the Dialer's
/// proxy is not used); the request is pending at once. For `wss://` the
/// session runs TLS with the Dialer's TLS settings (`ws_dialer_set_tls`;
/// SNI and host-name verification for the URL's host): the ClientHello is
/// pending first, and bytes in and out are ciphertext. A certificate or
/// TLS failure is reported by `on_error` (`WS_ERR_TLS_CERTIFICATE`,
/// `WS_ERR_TLS`) with the reason, and the alert for the server is left
/// pending. `WS_ERR_BAD_URL` for a bad URL, `WS_ERR_TLS_CONFIG` for TLS
/// settings that cannot be used. Any thread; the session is then used by
/// one thread at a time.
#[no_mangle]
pub extern "C" fn ws_session_client_new(
    dialer: *const ws_dialer,
    url: *const c_char,
    cb: *const ws_session_callbacks,
    user_data: *mut c_void,
    out: *mut *mut ws_session,
) -> ws_status {
    ffi_status!({
        tri!(need(out, "out"));
        let d = tri!(dialer_snapshot(dialer));
        let url = tri!(cstr(url, "url"));
        match Session::client(&d, url, Instant::now()) {
            Ok(s) => new_session(s, cb, user_data, out),
            Err(e) => guard::fail(&e),
        }
    })
}

/// Frees a session. NULL and a second free are no-ops. Never from one of
/// its callbacks.
#[no_mangle]
pub extern "C" fn ws_session_free(s: *mut ws_session) {
    ffi_value!((), {
        if guard::unregister(s) {
            // SAFETY: registered by a _new call; just left the live set.
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

/// Feeds `len` received bytes (copied; `data` may be NULL when `len` is
/// 0). Callbacks run during the call. `WS_ERR_BUSY` from a callback.
#[no_mangle]
pub extern "C" fn ws_session_recv(s: *mut ws_session, data: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let data = tri!(bytes(data, len, "data"));
        with_handler(s, |sess, h| status(sess.recv(data, Instant::now(), h)))
    })
}

/// `ws_session_recv` without the copy, for a caller whose receive buffer
/// the session may change: it unmasks frames in place (what `data` holds
/// afterwards is unspecified), and a message that arrived whole in `data` reaches
/// `on_message` as a pointer into it. During the opening handshake and
/// under TLS it copies like `ws_session_recv`. `data` stays the caller's:
/// the session uses it only during this call, so a message pointer into
/// it is valid only inside that `on_message` (as with `ws_session_recv`).
/// `data` may be NULL when `len` is 0; NULL with a length is
/// `WS_ERR_INVALID_ARGUMENT`. `WS_ERR_BUSY` from a callback. The
/// session's thread only (one thread at a time).
#[no_mangle]
pub extern "C" fn ws_session_recv_in_place(s: *mut ws_session, data: *mut u8, len: usize) -> ws_status {
    ffi_status!({
        let data: &mut [u8] = if len == 0 { &mut [] } else { tri!(bytes_mut(data, len, "data")) };
        with_handler(s, |sess, h| status(sess.recv_in_place(data, Instant::now(), h)))
    })
}

/// The transport ended (the peer's FIN, or a read error). After the close
/// handshake that is the normal end; before it, `on_error` reports it.
#[no_mangle]
pub extern "C" fn ws_session_recv_eof(s: *mut ws_session) -> ws_status {
    ffi_status!({
        with_handler(s, |sess, h| {
            sess.recv_eof(h);
            WS_OK
        })
    })
}

/// Points `*data`/`*len` at the bytes to transmit (`*len` 0: none). They
/// stay valid until the next call on the session; report what went out
/// with `ws_session_sent`.
#[no_mangle]
pub extern "C" fn ws_session_pending(s: *mut ws_session, data: *mut *const u8, len: *mut usize) -> ws_status {
    ffi_status!({
        tri!(need(data, "data"));
        tri!(need(len, "len"));
        let w = tri!(session_ref(s));
        let (p, n) = w.s.pending();
        put(data, p);
        put(len, n);
        WS_OK
    })
}

/// `n` of the pending bytes were transmitted (`WS_ERR_INVALID_ARGUMENT`
/// when more than were pending).
#[no_mangle]
pub extern "C" fn ws_session_sent(s: *mut ws_session, n: usize) -> ws_status {
    ffi_status!({ status(tri!(session_ref(s)).s.sent(n)) })
}

/// Whether the session wants more input (false once finished).
#[no_mangle]
pub extern "C" fn ws_session_wants_read(s: *mut ws_session) -> bool {
    ffi_value!(false, { session_ref(s).map(|w| w.s.wants_read()).unwrap_or(false) })
}

/// Whether bytes are pending.
#[no_mangle]
pub extern "C" fn ws_session_wants_write(s: *mut ws_session) -> bool {
    ffi_value!(false, { session_ref(s).map(|w| w.s.wants_write()).unwrap_or(false) })
}

/// True when the caller should close the socket once nothing is pending:
/// a server after both close frames, a client once the server closed TCP
/// (`ws_session_recv_eof`) or the close timeout passed, either after
/// `on_error`.
#[no_mangle]
pub extern "C" fn ws_session_is_finished(s: *mut ws_session) -> bool {
    ffi_value!(true, { session_ref(s).map(|w| w.s.is_finished()).unwrap_or(true) })
}

fn msg_type(t: ws_msg_type) -> Result<MessageType, ws_status> {
    MessageType::from_i32(t).ok_or_else(|| invalid("unknown message type"))
}

/// Queues a message of `type` (text, binary, or ping/pong/close with at
/// most 125 bytes; a close payload is a 2-byte code and a reason). Text is
/// not re-validated. `WS_ERR_INVALID_ARGUMENT` before the open event,
/// `WS_ERR_CLOSE_SENT` after a close.
#[no_mangle]
pub extern "C" fn ws_session_send(s: *mut ws_session, r#type: ws_msg_type, data: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let t = tri!(msg_type(r#type));
        let data = tri!(bytes(data, len, "data"));
        status(tri!(session_ref(s)).s.send(t, data))
    })
}

/// For a caller that transmits a large message from its own memory (one
/// writev, no copy into the session's output): when the message of `len`
/// bytes can go out as the caller's bytes behind a header (a server's, so
/// unmasked; not compressed; without TLS; with nothing pending), writes
/// that header to `head` and its length to `*head_len`. The session then
/// holds nothing of the message: the caller must transmit the header and
/// its `len` payload bytes, in that order, before anything
/// `ws_session_pending` returns later. `*head_len` 0: it cannot go out
/// so, and nothing was queued (send it with `ws_session_send`).
/// `head` is the caller's buffer with room for `WS_MAX_FRAME_HEADER`
/// bytes; the session keeps no pointer to it. `type` is `WS_TEXT` or
/// `WS_BINARY` (else `WS_ERR_INVALID_ARGUMENT`); refusals otherwise as
/// `ws_session_send` (before the open event, after a close), with
/// `*head_len` 0. The session's thread, as for every session call; also
/// from inside its callbacks.
#[no_mangle]
pub extern "C" fn ws_session_send_head(
    s: *mut ws_session,
    r#type: ws_msg_type,
    len: usize,
    head: *mut u8,
    head_len: *mut usize,
) -> ws_status {
    ffi_status!({
        tri!(need(head, "head"));
        tri!(need(head_len, "head_len"));
        put(head_len, 0);
        let t = tri!(msg_type(r#type));
        match tri!(tri!(session_ref(s)).s.send_head(t, len).map_err(|e| super::guard::fail(&e))) {
            Some((h, n)) => {
                // SAFETY: the caller gives room for WS_MAX_FRAME_HEADER
                // bytes at `head` (checked non-null above); n <= that.
                unsafe { std::ptr::copy_nonoverlapping(h.as_ptr(), head, n) };
                put(head_len, n);
                WS_OK
            }
            None => WS_OK,
        }
    })
}

/// Queues a prepared message (compressed once per setting, shared).
#[no_mangle]
pub extern "C" fn ws_session_send_prepared(s: *mut ws_session, pm: *const ws_prepared_message) -> ws_status {
    ffi_status!({
        if pm.is_null() {
            return invalid("prepared message is NULL");
        }
        // SAFETY: a non-NULL pointer is a live handle from ws_prepared_message_new.
        let pm = unsafe { &(*pm).pm };
        status(tri!(session_ref(s)).s.send_prepared(pm))
    })
}

/// Starts the close handshake with `code` and a reason of `len` bytes
/// (1005: an empty close frame, no reason).
#[no_mangle]
pub extern "C" fn ws_session_close(s: *mut ws_session, code: u16, reason: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let reason = tri!(bytes(reason, len, "reason"));
        status(tri!(session_ref(s)).s.close(code, reason))
    })
}

/// Keepalive: a ping after `interval_ms` without input, failure
/// (`on_error`, `WS_ERR_TIMEOUT`) when nothing arrives `pong_timeout_ms`
/// after it (0 interval: off, the default); `close_timeout_ms` bounds the
/// close handshake (default 5000); `idle_timeout_ms` closes with 1001
/// after that long without a message (0: never, the default).
#[no_mangle]
pub extern "C" fn ws_session_set_timeouts(
    s: *mut ws_session,
    interval_ms: u32,
    pong_timeout_ms: u32,
    close_timeout_ms: u32,
    idle_timeout_ms: u32,
) -> ws_status {
    ffi_status!({
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        tri!(session_ref(s)).s.set_timeouts(TimeoutConfig {
            ping_interval: (interval_ms > 0).then(|| ms(interval_ms)),
            pong_timeout: ms(pong_timeout_ms),
            close_timeout: ms(close_timeout_ms),
            idle_timeout: (idle_timeout_ms > 0).then(|| ms(idle_timeout_ms)),
        });
        WS_OK
    })
}

/// Milliseconds until `ws_session_on_timeout` is due (0: now), or -1 when
/// nothing is scheduled. Rounded up, so waiting that long is enough.
#[no_mangle]
pub extern "C" fn ws_session_next_timeout_ms(s: *mut ws_session, ms_out: *mut i64) -> ws_status {
    ffi_status!({
        tri!(need(ms_out, "ms_out"));
        let w = tri!(session_ref(s));
        let ms = match w.s.next_timeout() {
            None => -1,
            Some(t) => {
                let left = t.saturating_duration_since(Instant::now());
                i64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
            }
        };
        put(ms_out, ms);
        WS_OK
    })
}

/// Runs what is due now (a keepalive ping, a timeout); callbacks may run.
#[no_mangle]
pub extern "C" fn ws_session_on_timeout(s: *mut ws_session) -> ws_status {
    ffi_status!({
        with_handler(s, |sess, h| {
            sess.on_timeout(Instant::now(), h);
            WS_OK
        })
    })
}

/// The `user_data` given at creation.
#[no_mangle]
pub extern "C" fn ws_session_user_data(s: *mut ws_session) -> *mut c_void {
    ffi_value!(std::ptr::null_mut(), { session_ref(s).map(|w| w.user_data).unwrap_or(std::ptr::null_mut()) })
}

/// The subprotocol the opening handshake agreed on, "" when none (or
/// before `on_open`). Owned by the session: valid until the session is
/// freed or its next call. NULL only for a NULL session. The session's
/// thread (also from its callbacks).
#[no_mangle]
pub extern "C" fn ws_session_subprotocol(s: *mut ws_session) -> *const c_char {
    ffi_value!(std::ptr::null(), { session_ref(s).map(|w| w.s.subprotocol().as_ptr()).unwrap_or(std::ptr::null()) })
}

/// Whether permessage-deflate was negotiated (false before `on_open`).
/// The session's thread (also from its callbacks).
#[no_mangle]
pub extern "C" fn ws_session_compression_negotiated(s: *mut ws_session) -> bool {
    ffi_value!(false, { session_ref(s).map(|w| w.s.compression_negotiated()).unwrap_or(false) })
}

/// A client session's refused handshake answer (a status other than 101,
/// or a 101 that failed the checks), once `on_error` reported it: read it
/// with the `ws_response_*` calls (status, headers; the body is empty: the
/// session reads none). NULL before that, for a server, or when no answer
/// came. Owned by the session (valid until `ws_session_free`). The
/// session's thread (also from `on_error`).
#[no_mangle]
pub extern "C" fn ws_session_refused_response(s: *mut ws_session) -> *const ws_response {
    ffi_value!(std::ptr::null(), {
        let Ok(w) = session_ref(s) else { return std::ptr::null() };
        if let Some(r) = w.refused.get() {
            return r as *const ws_response;
        }
        match w.s.refused_response() {
            Some(resp) => {
                let r = ws_response { resp: resp.clone() };
                drop(resp);
                w.refused.get_or_init(|| r) as *const ws_response
            }
            None => std::ptr::null(),
        }
    })
}

/// Whether the session runs TLS (its bytes in and out are ciphertext).
/// The session's thread.
#[no_mangle]
pub extern "C" fn ws_session_is_tls(s: *mut ws_session) -> bool {
    ffi_value!(false, { session_ref(s).map(|w| w.s.is_tls()).unwrap_or(false) })
}

/// Copies certificate `index` (0 = the peer's own, then its chain) of a
/// TLS session's peer, DER-encoded, into `buf` (`cap` bytes; the caller
/// owns it); `*len_out` gets its length. `WS_ERR_BUFFER_TOO_SMALL` when it
/// does not fit (call with `cap` 0 to learn the size), `WS_ERR_NOT_FOUND`
/// without TLS, before the TLS handshake got the certificate, without a
/// peer certificate (a client that sent none) or past the chain's end.
/// The session's thread (also from its callbacks, e.g. in `on_open`).
#[no_mangle]
pub extern "C" fn ws_session_tls_peer_certificate(
    s: *mut ws_session,
    index: usize,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let w = tri!(session_ref(s));
        super::tls::copy_certificate(w.s.tls_peer_certificates(), index, buf, cap, len_out)
    })
}
