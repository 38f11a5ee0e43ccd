//! `ws_http_response`: the answer to a plain HTTP request (not an
//! upgrade) that an Upgrader's HTTP handler fills in, so one port serves
//! pages and WebSockets (`ws_upgrader_set_http_handler`).

use std::ffi::c_char;

use super::conn::tri;
use super::convert::{bytes, cstr};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::api::http::HttpResponse;

/// The answer to a plain HTTP request, lent to the HTTP handler for the
/// duration of the call. It starts as status 200, no header, empty body.
/// Opaque.
pub struct ws_http_response {
    pub(crate) resp: *mut HttpResponse,
}

fn resp_mut<'a>(r: *mut ws_http_response) -> Result<&'a mut HttpResponse, ws_status> {
    if r.is_null() {
        return Err(invalid("HTTP response is NULL"));
    }
    // SAFETY: a non-NULL ws_http_response* is the one libws lent to the
    // running HTTP handler, which has exclusive use of the response.
    Ok(unsafe { &mut *(*r).resp })
}

/// The status the response will carry (200 unless changed).
#[no_mangle]
pub extern "C" fn ws_http_response_status(resp: *mut ws_http_response) -> u16 {
    ffi_value!(0, { resp_mut(resp).map(|r| r.status).unwrap_or(0) })
}

/// Sets the status (200-599; anything else is `WS_ERR_INVALID_ARGUMENT`).
#[no_mangle]
pub extern "C" fn ws_http_response_set_status(resp: *mut ws_http_response, status: u16) -> ws_status {
    ffi_status!({
        match tri!(resp_mut(resp)).set_status(status) {
            Ok(()) => WS_OK,
            Err(e) => guard::fail(&e),
        }
    })
}

/// Adds a header, e.g. `Content-Type: text/html; charset=utf-8` (the name
/// must be an HTTP token; the value must not contain CR, LF or NUL).
/// `Content-Length`, `Transfer-Encoding` and `Connection` are written by
/// libws and refused with `WS_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn ws_http_response_add_header(
    resp: *mut ws_http_response,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    ffi_status!({
        let r = tri!(resp_mut(resp));
        let name = tri!(cstr(name, "name"));
        let value = tri!(cstr(value, "value"));
        match r.add_header(name, value) {
            Ok(()) => WS_OK,
            Err(e) => guard::fail(&e),
        }
    })
}

/// Replaces the body (copied; at most 64 MiB, else
/// `WS_ERR_INVALID_ARGUMENT`). A HEAD request gets the headers only, with
/// the body's `Content-Length`.
#[no_mangle]
pub extern "C" fn ws_http_response_set_body(resp: *mut ws_http_response, body: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let r = tri!(resp_mut(resp));
        let body = tri!(bytes(body, len, "body"));
        match r.set_body(body) {
            Ok(()) => WS_OK,
            Err(e) => guard::fail(&e),
        }
    })
}
