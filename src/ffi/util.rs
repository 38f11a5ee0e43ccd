//! Free functions: status names, the thread's last error, close payloads,
//! and request inspection for servers that parse HTTP themselves.

use std::ffi::c_char;

use super::conn::tri;
use super::convert::{bytes, copy_c_string, copy_out, put};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::proto::{close, handshake};

/// A static, NUL-terminated description of `status` (never NULL).
#[no_mangle]
pub extern "C" fn ws_status_str(status: ws_status) -> *const c_char {
    status_text(status).as_ptr() as *const c_char
}

/// libws's version, e.g. "0.1.0" (static, NUL-terminated).
#[no_mangle]
pub extern "C" fn ws_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// Whether this libws has TLS: `wss://`, TLS servers and sessions,
/// `https://` proxies (the default build). A library built without it
/// (`make install TLS=0`) has the same functions; its TLS calls return
/// `WS_ERR_UNSUPPORTED`. A constant of the build: any thread, any time.
#[no_mangle]
pub extern "C" fn ws_has_tls() -> bool {
    crate::transport::tls::ENABLED
}

/// Copies the message of the last failure of a libws call on the calling
/// thread into `buf` (NUL-terminated, truncated to fit) and returns its
/// full length, like snprintf. `buf` may be NULL when `cap` is 0.
#[no_mangle]
pub extern "C" fn ws_last_error(buf: *mut c_char, cap: usize) -> usize {
    ffi_value!(0, { copy_c_string(guard::last_error().as_bytes(), buf, cap) })
}

/// Formats a close frame payload (gorilla's FormatCloseMessage) into `out`
/// (`cap` bytes; 125 always suffice): the code and the UTF-8 reason (at
/// most 123 bytes). Code 1005 gives an empty payload. `*len_out` gets the
/// length. Codes that may not be sent (1004-1006, 1015, undefined ones) are
/// refused.
#[no_mangle]
pub extern "C" fn ws_format_close_message(
    code: u16,
    reason: *const u8,
    reason_len: usize,
    out: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let reason = tri!(bytes(reason, reason_len, "reason"));
        let mut payload = Vec::with_capacity(125);
        if let Err(m) = close::format_payload(code, reason, &mut payload) {
            return invalid(m);
        }
        put(len_out, payload.len());
        if payload.len() > cap || (out.is_null() && !payload.is_empty()) {
            guard::set_last_error("buffer too small");
            return WS_ERR_BUFFER_TOO_SMALL;
        }
        if !payload.is_empty() {
            // SAFETY: `out` has `cap` >= payload.len() writable bytes.
            unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), out, payload.len()) };
        }
        WS_OK
    })
}

/// gorilla's IsWebSocketUpgrade for raw request bytes: true when the
/// request head is complete and asks for a WebSocket upgrade (Connection
/// has "upgrade" and Upgrade has "websocket").
#[no_mangle]
pub extern "C" fn ws_is_websocket_upgrade(request: *const u8, len: usize) -> bool {
    ffi_value!(false, {
        match bytes(request, len, "request") {
            Ok(b) => matches!(handshake::Request::parse(b), Ok(Some((r, _))) if handshake::is_websocket_upgrade(&r)),
            Err(_) => false,
        }
    })
}

/// gorilla's Subprotocols for raw request bytes: copies subprotocol number
/// `index` (0-based, in the client's order) into `buf` with a NUL.
/// `WS_ERR_NOT_FOUND` past the end; `WS_ERR_INVALID_ARGUMENT` when the
/// bytes do not hold a complete request head.
#[no_mangle]
pub extern "C" fn ws_subprotocols(
    request: *const u8,
    len: usize,
    index: usize,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let b = tri!(bytes(request, len, "request"));
        let req = match handshake::Request::parse(b) {
            Ok(Some((r, _))) => r,
            _ => return invalid("request does not hold a complete HTTP request head"),
        };
        match handshake::requested_subprotocols(&req).get(index) {
            Some(p) => copy_out(p.as_bytes(), buf, cap, len_out),
            None => super::convert::not_found(&format!("subprotocol #{index}")),
        }
    })
}
