//! `ws_dialer` (gorilla's Dialer), `ws_dial` and `ws_dial_fd` (over a
//! socket the caller connected): the client side.

use std::ffi::c_char;
use std::os::fd::FromRawFd;
use std::sync::RwLock;

use super::conn::{tri, ws_conn};
use super::convert::{cstr, cstr_array, headers, need, put, ws_header};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::http::ws_response;
use super::pool::ws_buffer_pool;
use super::status::*;
use crate::api::Dialer;
use crate::error::Error;
use crate::transport::Stream;

/// Client settings (gorilla's Dialer). Opaque. `ws_dial` may run on many
/// threads at once with the same dialer; setters should not race dials.
pub struct ws_dialer {
    d: RwLock<Dialer>,
}

/// The settings of `d` now (NULL = defaults).
pub(crate) fn dialer_snapshot(d: *const ws_dialer) -> Result<Dialer, ws_status> {
    if d.is_null() {
        return Ok(Dialer::default());
    }
    // SAFETY: a non-NULL ws_dialer* is a live handle from ws_dialer_new.
    match unsafe { &*d }.d.read() {
        Ok(g) => Ok(g.clone()),
        Err(_) => Err(guard::fail(&Error::poisoned())),
    }
}

pub(crate) fn with_dialer(d: *mut ws_dialer, f: impl FnOnce(&mut Dialer) -> Result<(), ws_status>) -> ws_status {
    if d.is_null() {
        return invalid("dialer is NULL");
    }
    // SAFETY: a non-NULL ws_dialer* is a live handle from ws_dialer_new.
    let d = unsafe { &*d };
    let mut g = match d.d.write() {
        Ok(g) => g,
        Err(_) => return guard::fail(&Error::poisoned()),
    };
    match f(&mut g) {
        Ok(()) => WS_OK,
        Err(s) => s,
    }
}

/// A new Dialer with gorilla's defaults: 45 s handshake timeout, 16 KiB
/// buffers, 64 MiB read limit, no subprotocols. Never NULL.
#[no_mangle]
pub extern "C" fn ws_dialer_new() -> *mut ws_dialer {
    ffi_value!(std::ptr::null_mut(), { guard::register(Box::new(ws_dialer { d: RwLock::new(Dialer::default()) })) })
}

/// Frees a Dialer. NULL and a second free are no-ops. Connections made
/// with it are not affected.
#[no_mangle]
pub extern "C" fn ws_dialer_free(dialer: *mut ws_dialer) {
    ffi_value!((), {
        if guard::unregister(dialer) {
            // SAFETY: registered by ws_dialer_new; just left the live set.
            drop(unsafe { Box::from_raw(dialer) });
        }
    })
}

/// Sets the subprotocols to request, in order (copied).
#[no_mangle]
pub extern "C" fn ws_dialer_set_subprotocols(
    dialer: *mut ws_dialer,
    protocols: *const *const c_char,
    n: usize,
) -> ws_status {
    ffi_status!({
        let list = tri!(cstr_array(protocols, n, "protocols"));
        if let Some(bad) = list.iter().find(|p| !crate::proto::handshake::headers::is_token(p)) {
            return invalid(&format!("subprotocol {bad:?} is not an HTTP token"));
        }
        with_dialer(dialer, |d| {
            d.subprotocols = list;
            Ok(())
        })
    })
}

/// Adds a header to every request (Origin, Cookie, Authorization...).
/// Headers libws writes itself (Host, Upgrade, Connection,
/// Sec-WebSocket-Key/-Version/-Extensions) are refused at dial time.
#[no_mangle]
pub extern "C" fn ws_dialer_add_header(dialer: *mut ws_dialer, name: *const c_char, value: *const c_char) -> ws_status {
    ffi_status!({
        let name = tri!(cstr(name, "name"));
        let value = tri!(cstr(value, "value"));
        with_dialer(dialer, |d| d.add_header(name, value).map_err(|e| guard::fail(&e)))
    })
}

/// Sets the handshake timeout in milliseconds (negative = none; default
/// 45000). It covers connecting, sending the request and reading the
/// response; name resolution uses the system resolver and is not covered.
#[no_mangle]
pub extern "C" fn ws_dialer_set_handshake_timeout(dialer: *mut ws_dialer, timeout_ms: i64) -> ws_status {
    ffi_status!({
        with_dialer(dialer, |d| {
            d.handshake_timeout = super::timeout::timeout(timeout_ms);
            Ok(())
        })
    })
}

/// Sets the read and write buffer sizes (0 keeps the default of 16 KiB;
/// sizes under 256 are raised to 256; above 64 MiB the call fails with
/// `WS_ERR_INVALID_ARGUMENT`). They do not limit message sizes.
#[no_mangle]
pub extern "C" fn ws_dialer_set_buffer_sizes(dialer: *mut ws_dialer, read_size: usize, write_size: usize) -> ws_status {
    ffi_status!({
        with_dialer(dialer, |d| d.conn.set_buffer_sizes(read_size, write_size).map_err(|e| guard::fail(&e)))
    })
}

/// Makes connections take write buffers from `pool` only while writing.
/// NULL removes the pool.
#[no_mangle]
pub extern "C" fn ws_dialer_set_write_buffer_pool(dialer: *mut ws_dialer, pool: *const ws_buffer_pool) -> ws_status {
    ffi_status!({
        let pool = tri!(super::pool::pool_clone(pool));
        with_dialer(dialer, |d| {
            d.conn.write_buffer_pool = pool;
            Ok(())
        })
    })
}

/// Offers permessage-deflate (RFC 7692) with `opts` (see
/// `ws_compression_options_default`); NULL turns it off (the default). A
/// server that answers with parameters outside the offer fails the dial
/// with `WS_ERR_BAD_HANDSHAKE`.
#[no_mangle]
pub extern "C" fn ws_dialer_set_compression(
    dialer: *mut ws_dialer,
    opts: *const super::compression::ws_compression_options,
) -> ws_status {
    ffi_status!({ with_dialer(dialer, |d| super::compression::apply(&mut d.conn, opts)) })
}

/// Sets the read (idle) and write timeouts of new connections in
/// milliseconds (negative = no limit, the default for clients): no single
/// wait for the socket lasts longer (see `ws_conn_set_read_timeout`).
#[no_mangle]
pub extern "C" fn ws_dialer_set_timeouts(
    dialer: *mut ws_dialer,
    read_timeout_ms: i64,
    write_timeout_ms: i64,
) -> ws_status {
    ffi_status!({
        with_dialer(dialer, |d| {
            d.conn.read_timeout = super::timeout::timeout(read_timeout_ms);
            d.conn.write_timeout = super::timeout::timeout(write_timeout_ms);
            Ok(())
        })
    })
}

/// Sets the initial read limit of new connections (0 = none; default 64 MiB).
#[no_mangle]
pub extern "C" fn ws_dialer_set_read_limit(dialer: *mut ws_dialer, limit: u64) -> ws_status {
    ffi_status!({
        with_dialer(dialer, |d| {
            d.conn.read_limit = limit;
            Ok(())
        })
    })
}

/// Sets the dialer's proxy: a URL `http://`, `https://` (TLS to the proxy,
/// verified with the dialer's TLS settings), `socks5://` (names resolved
/// here) or `socks5h://` (names resolved by the proxy), with optional
/// `user:password@` (Basic for HTTP, username/password for SOCKS5;
/// percent-encode `@` and `:`). `""` connects directly; NULL goes back to
/// the default: the environment's `http_proxy`/`HTTP_PROXY` (ws://),
/// `https_proxy`/`HTTPS_PROXY` (wss://), `all_proxy`/`ALL_PROXY` and
/// `no_proxy`/`NO_PROXY` (names, domain suffixes, IPs, CIDR ranges,
/// `:port`, `*`), read at each dial. `WS_ERR_BAD_URL` for a bad URL;
/// `WS_ERR_UNSUPPORTED` for `https://` in a build without TLS.
#[no_mangle]
pub extern "C" fn ws_dialer_set_proxy(dialer: *mut ws_dialer, url: *const c_char) -> ws_status {
    ffi_status!({
        use crate::transport::proxy::{ProxyChoice, ProxyUrl};
        let choice = if url.is_null() {
            ProxyChoice::Environment
        } else {
            match tri!(cstr(url, "url")) {
                "" => ProxyChoice::Direct,
                u => match ProxyUrl::parse(u) {
                    Ok(p) => ProxyChoice::Fixed(p),
                    Err(e) => return guard::fail(&e),
                },
            }
        };
        with_dialer(dialer, |d| {
            d.proxy = choice;
            Ok(())
        })
    })
}

/// Adds a header to an HTTP(S) proxy's CONNECT request (e.g. a
/// `Proxy-Authorization` of another scheme, or a tracing header).
#[no_mangle]
pub extern "C" fn ws_dialer_add_proxy_header(
    dialer: *mut ws_dialer,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    ffi_status!({
        let name = tri!(cstr(name, "name"));
        let value = tri!(cstr(value, "value"));
        with_dialer(dialer, |d| d.add_proxy_header(name, value).map_err(|e| guard::fail(&e)))
    })
}

/// Connects to `url` (ws:// or wss://host[:port][/path][?query]), through
/// the dialer's proxy, and performs the opening handshake (gorilla's Dial). `dialer` may be NULL for defaults;
/// `headers` (`n_headers`) are sent after the dialer's own. On success
/// `*conn_out` is the connection. If `response_out` is not NULL it receives
/// the server's response on success and on `WS_ERR_BAD_HANDSHAKE` when a
/// response arrived (status, headers, start of body; free it with
/// `ws_response_free`), and on `WS_ERR_PROXY_REFUSED` the HTTP proxy's
/// response; NULL otherwise. Other failures: `WS_ERR_BAD_URL`,
/// `WS_ERR_CONNECT`, `WS_ERR_TIMEOUT`, `WS_ERR_IO`, `WS_ERR_TLS` (handshake
/// failed or timed out), `WS_ERR_TLS_CERTIFICATE` (certificate refused),
/// `WS_ERR_TLS_CONFIG`, `WS_ERR_PROXY`; `WS_ERR_UNSUPPORTED` for `wss://`
/// (before connecting) in a build without TLS (`ws_has_tls`). Any thread.
#[no_mangle]
pub extern "C" fn ws_dial(
    dialer: *const ws_dialer,
    url: *const c_char,
    headers_: *const ws_header,
    n_headers: usize,
    conn_out: *mut *mut ws_conn,
    response_out: *mut *mut ws_response,
) -> ws_status {
    ffi_status!({
        put(response_out, std::ptr::null_mut());
        let url = tri!(cstr(url, "url"));
        tri!(need(conn_out, "conn_out"));
        let extra = tri!(headers(headers_, n_headers));
        let d = tri!(dialer_snapshot(dialer));
        finish_dial(d.dial(url, &extra), conn_out, response_out)
    })
}

/// Hands a dial's outcome to C: the connection, and the response when the
/// caller asked for it and one arrived.
fn finish_dial(
    outcome: std::result::Result<(crate::api::Conn, crate::api::Response), crate::api::dialer::DialError>,
    conn_out: *mut *mut ws_conn,
    response_out: *mut *mut ws_response,
) -> ws_status {
    let give_response = |resp| {
        if !response_out.is_null() {
            put(response_out, guard::register(Box::new(ws_response { resp })));
        }
    };
    match outcome {
        Ok((conn, resp)) => {
            give_response(resp);
            put(conn_out, ws_conn::into_raw(conn));
            WS_OK
        }
        Err(de) => {
            if let Some(resp) = de.response {
                give_response(resp);
            }
            guard::fail(&de.error)
        }
    }
}

/// Performs the opening handshake over `fd`, a TCP socket the caller has
/// already connected (gorilla's NetDial: your own connect, a socket through
/// a tunnel, a bound source address...). libws takes ownership of `fd` in
/// every case (on failure it is closed). `url` (ws://host[:port][/path])
/// gives the Host header and the path; nothing is resolved or connected
/// from it. The dialer's handshake timeout starts with the call. Results,
/// `response_out` and statuses as `ws_dial`; `WS_ERR_INVALID_ARGUMENT` when
/// `fd` is negative or not a connected TCP socket. Blocking; any thread.
#[no_mangle]
pub extern "C" fn ws_dial_fd(
    dialer: *const ws_dialer,
    fd: i32,
    url: *const c_char,
    headers_: *const ws_header,
    n_headers: usize,
    conn_out: *mut *mut ws_conn,
    response_out: *mut *mut ws_response,
) -> ws_status {
    ffi_status!({
        put(response_out, std::ptr::null_mut());
        if fd < 0 {
            return invalid("fd is negative");
        }
        // SAFETY: the caller hands over ownership of the socket `fd`
        // (documented above); it is closed when the value drops, on every
        // path below.
        let std_stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        let url = tri!(cstr(url, "url"));
        tri!(need(conn_out, "conn_out"));
        let extra = tri!(headers(headers_, n_headers));
        let d = tri!(dialer_snapshot(dialer));
        let stream = match Stream::from_std(std_stream) {
            Ok(s) => s,
            Err(e) => return guard::fail(&Error::io("fd is not a usable socket", e)),
        };
        finish_dial(d.dial_stream(stream, url, &extra), conn_out, response_out)
    })
}
