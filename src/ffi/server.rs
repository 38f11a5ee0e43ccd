//! `ws_upgrader` (gorilla's Upgrader) and `ws_listener`: the server side.

use std::ffi::{c_char, c_void};
use std::os::fd::FromRawFd;
use std::sync::{Arc, RwLock};

use super::conn::{tri, ws_conn};
use super::convert::{bytes, copy_out, cstr, cstr_array, headers, need, put, ws_header};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::http::{ws_error_response, ws_request};
use super::http_response::ws_http_response;
use super::pool::ws_buffer_pool;
use super::status::*;
use super::timeout::deadline;
use crate::api::http::{ErrorResponse, HttpResponse, Request};
use crate::api::{Listener, Upgrader};
use crate::error::Error;
use crate::transport::Stream;

/// Decides whether to accept a handshake request (origin, auth headers...).
/// Return true to accept, false to answer 403. Runs on the thread that
/// accepts or upgrades; `req` is valid during the call.
pub type ws_check_origin_fn = Option<unsafe extern "C" fn(req: *const ws_request, user_data: *mut c_void) -> bool>;

/// Adjusts an HTTP error response before a server sends it (gorilla's
/// Upgrader.Error). `req` is NULL when the request could not be parsed.
pub type ws_error_fn =
    Option<unsafe extern "C" fn(req: *const ws_request, resp: *mut ws_error_response, user_data: *mut c_void)>;

/// Answers a plain HTTP request (one that is not a WebSocket upgrade
/// attempt) by filling in `resp` (`ws_http_response_set_status`,
/// `_add_header`, `_set_body`). `req` and the request body (`body_len`
/// bytes at `body`) are valid during the call. Runs on the thread that
/// accepts (`ws_listener_accept`) or drives the loop, so keep it short:
/// other handshakes wait meanwhile.
pub type ws_http_fn = Option<
    unsafe extern "C" fn(
        req: *const ws_request,
        body: *const u8,
        body_len: usize,
        resp: *mut ws_http_response,
        user_data: *mut c_void,
    ),
>;

/// Server-side handshake settings (gorilla's Upgrader). Opaque. Setters
/// and upgrades may run on different threads; a listener takes a snapshot
/// of the settings when it is created.
pub struct ws_upgrader {
    pub(crate) up: RwLock<Upgrader>,
}

/// A listening socket that hands out upgraded connections. Opaque.
pub struct ws_listener {
    l: Listener,
}

#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: libws never dereferences the pointer; it passes it back to the
// caller's callback, registered knowing callbacks run on accepting threads.
unsafe impl Send for UserData {}
// SAFETY: as above; only copied.
unsafe impl Sync for UserData {}

pub(crate) fn up_ref<'a>(u: *const ws_upgrader) -> Result<&'a ws_upgrader, ws_status> {
    if u.is_null() {
        return Err(invalid("upgrader is NULL"));
    }
    // SAFETY: a non-NULL ws_upgrader* is a live handle from ws_upgrader_new.
    Ok(unsafe { &*u })
}

fn listener_ref<'a>(l: *const ws_listener) -> Result<&'a ws_listener, ws_status> {
    if l.is_null() {
        return Err(invalid("listener is NULL"));
    }
    // SAFETY: a non-NULL ws_listener* is a live handle from ws_listen.
    Ok(unsafe { &*l })
}

pub(crate) fn with_up(u: *mut ws_upgrader, f: impl FnOnce(&mut Upgrader) -> Result<(), ws_status>) -> ws_status {
    let u = tri!(up_ref(u));
    let mut g = match u.up.write() {
        Ok(g) => g,
        Err(_) => return guard::fail(&Error::poisoned()),
    };
    match f(&mut g) {
        Ok(()) => WS_OK,
        Err(s) => s,
    }
}

/// The settings of `u` now (NULL = defaults).
pub(crate) fn upgrader_snapshot(u: *const ws_upgrader) -> Result<Upgrader, ws_status> {
    if u.is_null() {
        return Ok(Upgrader::default());
    }
    let u = up_ref(u)?;
    u.up.read().map(|g| g.clone()).map_err(|_| guard::fail(&Error::poisoned()))
}

/// A new Upgrader with the defaults: no subprotocols, same-origin check,
/// 10 s handshake timeout, 16 KiB buffers, 64 MiB read limit. Free with
/// `ws_upgrader_free`. Never NULL.
#[no_mangle]
pub extern "C" fn ws_upgrader_new() -> *mut ws_upgrader {
    ffi_value!(std::ptr::null_mut(), {
        guard::register(Box::new(ws_upgrader { up: RwLock::new(Upgrader::default()) }))
    })
}

/// Frees an Upgrader. NULL and a second free are no-ops. Listeners and
/// connections made with it are not affected.
#[no_mangle]
pub extern "C" fn ws_upgrader_free(up: *mut ws_upgrader) {
    ffi_value!((), {
        if guard::unregister(up) {
            // SAFETY: registered by ws_upgrader_new; just left the live set.
            drop(unsafe { Box::from_raw(up) });
        }
    })
}

/// Sets the server's subprotocols in order of preference (copied). The
/// first one the client also asked for is chosen; none when no match.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_subprotocols(
    up: *mut ws_upgrader,
    protocols: *const *const c_char,
    n: usize,
) -> ws_status {
    ffi_status!({
        let list = tri!(cstr_array(protocols, n, "protocols"));
        if let Some(bad) = list.iter().find(|p| !crate::proto::handshake::headers::is_token(p)) {
            return invalid(&format!("subprotocol {bad:?} is not an HTTP token"));
        }
        with_up(up, |u| {
            u.subprotocols = list;
            Ok(())
        })
    })
}

/// Replaces the origin check (gorilla's CheckOrigin). NULL restores the
/// safe default: refuse (403) a request whose Origin host differs from its
/// Host. The callback may look at any part of the request.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_check_origin(
    up: *mut ws_upgrader,
    check: ws_check_origin_fn,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let user = UserData(user_data);
        with_up(up, |u| {
            u.check_origin = check.map(|f| {
                Arc::new(move |req: &Request| {
                    let user = user;
                    let lent = ws_request { req };
                    // SAFETY: `lent` and the request it points at live
                    // until the call returns.
                    unsafe { f(&lent, user.0) }
                }) as crate::api::upgrader::CheckOrigin
            });
            Ok(())
        })
    })
}

/// Sets a callback that may change every HTTP error response before it is
/// sent (gorilla's Upgrader.Error): status, headers and body. NULL restores
/// the default (the status's reason phrase as a text body).
#[no_mangle]
pub extern "C" fn ws_upgrader_set_error_handler(
    up: *mut ws_upgrader,
    handler: ws_error_fn,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let user = UserData(user_data);
        with_up(up, |u| {
            u.error_responder = handler.map(|f| {
                Arc::new(move |req: Option<&Request>, resp: &mut ErrorResponse| {
                    let user = user;
                    let lent_req = req.map(|r| ws_request { req: r });
                    let rp = lent_req.as_ref().map_or(std::ptr::null(), |r| r as *const ws_request);
                    let mut lent_resp = ws_error_response { resp };
                    // SAFETY: the lent values and what they point at live
                    // until the call returns; `resp` is exclusively ours.
                    unsafe { f(rp, &mut lent_resp, user.0) }
                }) as crate::api::upgrader::ErrorResponder
            });
            Ok(())
        })
    })
}

/// Serves plain HTTP on the WebSocket port (as gorilla's servers do with
/// net/http): a request to a listener (`ws_listen`) or a loop listener
/// (`ws_loop_listen`) that is not an upgrade attempt is answered by
/// `handler`, so one port serves a page and its WebSocket. A request is an
/// upgrade attempt when its `Upgrade` names `websocket` or it carries a
/// `Sec-WebSocket-Key` or `Sec-WebSocket-Version`; those are checked as
/// before (400, 405, 426, 403...). A plain request's body is read first
/// (`Content-Length` up to `ws_upgrader_set_http_max_body`, else 413;
/// `Transfer-Encoding` gets 411); the handshake timeout covers the whole
/// exchange. One request per connection: every answer carries
/// `Connection: close`. NULL removes the handler: plain requests are then
/// refused like bad handshakes (405 for a method other than GET, 400
/// otherwise). `ws_upgrader_upgrade_fd` never calls it (its caller routes
/// HTTP itself). Settings are snapshotted by `ws_listen`/`ws_loop_listen`.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_http_handler(
    up: *mut ws_upgrader,
    handler: ws_http_fn,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let user = UserData(user_data);
        with_up(up, |u| {
            u.http_handler = handler.map(|f| {
                Arc::new(move |req: &Request, body: &[u8], resp: &mut HttpResponse| {
                    let user = user;
                    let lent_req = ws_request { req };
                    let mut lent_resp = ws_http_response { resp };
                    // SAFETY: the lent values, the request and the body
                    // live until the call returns; `resp` is exclusively ours.
                    unsafe { f(&lent_req, body.as_ptr(), body.len(), &mut lent_resp, user.0) }
                }) as crate::api::upgrader::HttpHandler
            });
            Ok(())
        })
    })
}

/// Sets the largest body of a plain HTTP request in bytes (default 65536;
/// 0 accepts none; above 64 MiB is `WS_ERR_INVALID_ARGUMENT`). A longer
/// body is refused with 413 before it is read.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_http_max_body(up: *mut ws_upgrader, max_body: usize) -> ws_status {
    ffi_status!({
        if max_body > crate::api::http::MAX_HTTP_BODY {
            return invalid("max_body is over 64 MiB");
        }
        with_up(up, |u| {
            u.http_max_body = max_body;
            Ok(())
        })
    })
}

/// Adds a header to every successful (101) response, e.g. Set-Cookie.
#[no_mangle]
pub extern "C" fn ws_upgrader_add_response_header(
    up: *mut ws_upgrader,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    ffi_status!({
        let name = tri!(cstr(name, "name"));
        let value = tri!(cstr(value, "value"));
        with_up(up, |u| u.add_response_header(name, value).map_err(|e| guard::fail(&e)))
    })
}

/// Sets the handshake timeout in milliseconds (negative = none; default
/// 10000). A client that has not completed its request by then is dropped
/// without delaying other clients.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_handshake_timeout(up: *mut ws_upgrader, timeout_ms: i64) -> ws_status {
    ffi_status!({
        with_up(up, |u| {
            u.handshake_timeout = super::timeout::timeout(timeout_ms);
            Ok(())
        })
    })
}

/// Sets the read (idle) and write timeouts of accepted blocking
/// connections in milliseconds (negative = no limit; default 60000 and
/// 10000): no single wait for the socket lasts longer (see
/// `ws_conn_set_read_timeout`). Loop connections use the loop's idle
/// timeout instead.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_timeouts(
    up: *mut ws_upgrader,
    read_timeout_ms: i64,
    write_timeout_ms: i64,
) -> ws_status {
    ffi_status!({
        with_up(up, |u| {
            u.conn.read_timeout = super::timeout::timeout(read_timeout_ms);
            u.conn.write_timeout = super::timeout::timeout(write_timeout_ms);
            Ok(())
        })
    })
}

/// Sets the read and write buffer sizes of accepted connections (0 keeps
/// the default of 16 KiB; sizes under 256 are raised to 256; above 64 MiB
/// the call fails with `WS_ERR_INVALID_ARGUMENT`). They do not limit
/// message sizes.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_buffer_sizes(up: *mut ws_upgrader, read_size: usize, write_size: usize) -> ws_status {
    ffi_status!({ with_up(up, |u| { u.conn.set_buffer_sizes(read_size, write_size).map_err(|e| guard::fail(&e)) }) })
}

/// Makes accepted connections take write buffers from `pool` only while
/// writing (gorilla's WriteBufferPool). NULL removes the pool. The pool's
/// buffer size replaces the write buffer size.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_write_buffer_pool(up: *mut ws_upgrader, pool: *const ws_buffer_pool) -> ws_status {
    ffi_status!({
        let pool = tri!(super::pool::pool_clone(pool));
        with_up(up, |u| {
            u.conn.write_buffer_pool = pool;
            Ok(())
        })
    })
}

/// Accepts permessage-deflate (RFC 7692) with `opts` (see
/// `ws_compression_options_default`); NULL turns it off (the default).
/// The server picks the first acceptable offer of the client.
#[no_mangle]
pub extern "C" fn ws_upgrader_set_compression(
    up: *mut ws_upgrader,
    opts: *const super::compression::ws_compression_options,
) -> ws_status {
    ffi_status!({ with_up(up, |u| super::compression::apply(&mut u.conn, opts)) })
}

/// Sets the initial read limit of accepted connections in bytes (0 = no
/// limit; default 64 MiB).
#[no_mangle]
pub extern "C" fn ws_upgrader_set_read_limit(up: *mut ws_upgrader, limit: u64) -> ws_status {
    ffi_status!({
        with_up(up, |u| {
            u.conn.read_limit = limit;
            Ok(())
        })
    })
}

/// Upgrades a connection accepted by the caller's own HTTP server. `fd` is
/// a connected TCP socket; libws takes ownership of it in every case (on
/// failure it is closed). `request` holds the bytes already read from it
/// (the request head, possibly incomplete — the rest is read within the
/// handshake timeout — and possibly followed by WebSocket frames). `headers`
/// (`n` of them) are added to the 101 response. On success `*conn_out` is
/// the new connection; on a refused request the HTTP error has been sent
/// and `WS_ERR_HANDSHAKE_REJECTED` returned. `up` may be NULL for defaults.
/// Any thread.
#[no_mangle]
pub extern "C" fn ws_upgrader_upgrade_fd(
    up: *const ws_upgrader,
    fd: i32,
    request: *const u8,
    request_len: usize,
    headers_: *const ws_header,
    n_headers: usize,
    conn_out: *mut *mut ws_conn,
) -> ws_status {
    ffi_status!({
        if fd < 0 {
            return invalid("fd is negative");
        }
        // SAFETY: the caller hands over ownership of a connected socket `fd`
        // (documented above); it is closed when the returned value drops.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        tri!(need(conn_out, "conn_out"));
        let request = tri!(bytes(request, request_len, "request"));
        let extra = tri!(headers(headers_, n_headers));
        let upgrader = tri!(upgrader_snapshot(up));
        let stream = match Stream::from_std(std_stream) {
            Ok(s) => s,
            Err(e) => return guard::fail(&Error::io("fd is not a usable socket", e)),
        };
        match upgrader.upgrade_stream(stream, request, &extra) {
            Ok(conn) => {
                put(conn_out, ws_conn::into_raw(conn));
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Listens on `host`:`port` (port 0 picks a free one; see
/// `ws_listener_port`) with a snapshot of `up`'s settings (NULL for
/// defaults). Free with `ws_listener_free`.
#[no_mangle]
pub extern "C" fn ws_listen(
    up: *const ws_upgrader,
    host: *const c_char,
    port: u16,
    listener_out: *mut *mut ws_listener,
) -> ws_status {
    ffi_status!({
        let host = tri!(cstr(host, "host"));
        tri!(need(listener_out, "listener_out"));
        let upgrader = tri!(upgrader_snapshot(up));
        let addr = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match Listener::bind(&addr, &upgrader) {
            Ok(l) => {
                put(listener_out, guard::register(Box::new(ws_listener { l })));
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Waits up to `timeout_ms` (negative = forever) for a client whose
/// handshake succeeds and returns it in `*conn_out`. Handshakes of all
/// pending clients progress together; refused ones get their HTTP error and
/// are not returned. Several threads may call this; they take turns.
/// `WS_ERR_LOCALLY_CLOSED` after `ws_listener_shutdown`.
#[no_mangle]
pub extern "C" fn ws_listener_accept(
    listener: *mut ws_listener,
    timeout_ms: i64,
    conn_out: *mut *mut ws_conn,
) -> ws_status {
    ffi_status!({
        let l = tri!(listener_ref(listener));
        tri!(need(conn_out, "conn_out"));
        match l.l.accept(deadline(timeout_ms)) {
            Ok(conn) => {
                put(conn_out, ws_conn::into_raw(conn));
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// The port the listener is bound to (useful after listening on port 0).
#[no_mangle]
pub extern "C" fn ws_listener_port(listener: *const ws_listener) -> u16 {
    ffi_value!(0, { listener_ref(listener).map(|l| l.l.local_addr().port()).unwrap_or(0) })
}

/// Copies the listening address ("ip:port") into `buf` with a NUL.
#[no_mangle]
pub extern "C" fn ws_listener_addr(
    listener: *const ws_listener,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let l = tri!(listener_ref(listener));
        copy_out(l.l.local_addr().to_string().as_bytes(), buf, cap, len_out)
    })
}

/// Stops accepting: a `ws_listener_accept` blocked on any thread returns
/// `WS_ERR_LOCALLY_CLOSED`, as do later calls. Connections already
/// accepted are not affected. Any thread.
#[no_mangle]
pub extern "C" fn ws_listener_shutdown(listener: *mut ws_listener) -> ws_status {
    ffi_status!({
        tri!(listener_ref(listener)).l.shutdown();
        WS_OK
    })
}

/// Frees the listener and closes its socket (and pending handshakes).
/// NULL and a second free are no-ops. No other call may be in progress on
/// it: call `ws_listener_shutdown` and join accepting threads first.
#[no_mangle]
pub extern "C" fn ws_listener_free(listener: *mut ws_listener) {
    ffi_value!((), {
        if guard::unregister(listener) {
            // SAFETY: registered by ws_listen; just left the live set.
            drop(unsafe { Box::from_raw(listener) });
        }
    })
}
