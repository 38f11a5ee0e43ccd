//! `ws_request` (a client's handshake request, seen by server callbacks),
//! `ws_response` (a server's handshake answer, returned by `ws_dial`) and
//! `ws_error_response` (an error answer an Upgrader's callback may edit).

use std::ffi::c_char;

use super::conn::tri;
use super::convert::{bytes, copy_out, cstr, need, not_found, put};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::api::http::{ErrorResponse, Request, Response};
use crate::proto::handshake::{headers::validate_header, HeaderList};

/// A client's opening handshake request, lent to a server callback for the
/// duration of the call. Opaque.
pub struct ws_request {
    pub(crate) req: *const Request,
}

/// A server's answer to `ws_dial`: status, headers and (for a refusal) the
/// start of the body. Owned by the caller; free with `ws_response_free`.
pub struct ws_response {
    pub(crate) resp: Response,
}

/// An HTTP error response about to be sent by a server; lent to the
/// Upgrader's error callback, which may change it. Opaque.
pub struct ws_error_response {
    pub(crate) resp: *mut ErrorResponse,
}

fn req_ref<'a>(r: *const ws_request) -> Result<&'a Request, ws_status> {
    if r.is_null() {
        return Err(invalid("request is NULL"));
    }
    // SAFETY: a non-NULL ws_request* is the one libws lent to the running
    // callback; it points at a Request that outlives the call.
    Ok(unsafe { &*(*r).req })
}

fn resp_ref<'a>(r: *const ws_response) -> Result<&'a Response, ws_status> {
    if r.is_null() {
        return Err(invalid("response is NULL"));
    }
    // SAFETY: a non-NULL ws_response* is a live handle from ws_dial.
    Ok(unsafe { &(*r).resp })
}

fn err_resp_mut<'a>(r: *mut ws_error_response) -> Result<&'a mut ErrorResponse, ws_status> {
    if r.is_null() {
        return Err(invalid("error response is NULL"));
    }
    // SAFETY: a non-NULL ws_error_response* is the one libws lent to the
    // running error callback, which has exclusive use of the response.
    Ok(unsafe { &mut *(*r).resp })
}

/// Points `*value_out`/`*len_out` at the first value of header `name`.
fn header_lookup(h: &HeaderList, name: *const c_char, value_out: *mut *const u8, len_out: *mut usize) -> ws_status {
    let name = tri!(cstr(name, "name"));
    tri!(need(value_out, "value_out"));
    tri!(need(len_out, "len_out"));
    match h.get(name) {
        Some(v) => {
            put(value_out, v.as_ptr());
            put(len_out, v.len());
            WS_OK
        }
        None => not_found(&format!("header {name}")),
    }
}

/// Points `*value_out`/`*len_out` at value number `index` of header
/// `name`: every header line with that name is one value, in order.
fn header_value_at(
    h: &HeaderList,
    name: *const c_char,
    index: usize,
    value_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    let name = tri!(cstr(name, "name"));
    tri!(need(value_out, "value_out"));
    tri!(need(len_out, "len_out"));
    match h.get_all(name).nth(index) {
        Some(v) => {
            put(value_out, v.as_ptr());
            put(len_out, v.len());
            WS_OK
        }
        None => not_found(&format!("value #{index} of header {name}")),
    }
}

/// How many lines of header `name` there are (0 for NULL arguments).
fn header_value_count(h: &HeaderList, name: *const c_char) -> usize {
    cstr(name, "name").map(|n| h.get_all(n).count()).unwrap_or(0)
}

/// Points at the name and value of header number `index`.
fn header_at(
    h: &HeaderList,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> ws_status {
    match h.0.get(index) {
        Some((n, v)) => {
            put(name_out, n.as_ptr() as *const c_char);
            put(name_len_out, n.len());
            put(value_out, v.as_ptr());
            put(value_len_out, v.len());
            WS_OK
        }
        None => not_found(&format!("header #{index}")),
    }
}

/// The request method (e.g. "GET"): pointer and length, not NUL-terminated,
/// valid during the callback.
#[no_mangle]
pub extern "C" fn ws_request_method(
    req: *const ws_request,
    method_out: *mut *const c_char,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let r = tri!(req_ref(req));
        tri!(need(method_out, "method_out"));
        put(method_out, r.method().as_ptr() as *const c_char);
        put(len_out, r.method().len());
        WS_OK
    })
}

/// The request target (path and query, e.g. "/chat?room=1"): pointer and
/// length, not NUL-terminated, valid during the callback.
#[no_mangle]
pub extern "C" fn ws_request_target(
    req: *const ws_request,
    target_out: *mut *const c_char,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let r = tri!(req_ref(req));
        tri!(need(target_out, "target_out"));
        put(target_out, r.target().as_ptr() as *const c_char);
        put(len_out, r.target().len());
        WS_OK
    })
}

/// The first value of header `name` (case-insensitive): pointer and length,
/// valid during the callback. `WS_ERR_NOT_FOUND` if absent.
#[no_mangle]
pub extern "C" fn ws_request_header(
    req: *const ws_request,
    name: *const c_char,
    value_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_lookup(tri!(req_ref(req)).headers(), name, value_out, len_out) })
}

/// How many times header `name` (case-insensitive) appears in the
/// request. 0 when absent (or for a NULL argument).
#[no_mangle]
pub extern "C" fn ws_request_header_value_count(req: *const ws_request, name: *const c_char) -> usize {
    ffi_value!(0, { req_ref(req).map(|r| header_value_count(r.headers(), name)).unwrap_or(0) })
}

/// Value number `index` (0-based, in order) of header `name`
/// (case-insensitive): each header line is one value, never split at
/// commas. Pointer and length, valid during the callback.
/// `WS_ERR_NOT_FOUND` past the last one.
#[no_mangle]
pub extern "C" fn ws_request_header_value_at(
    req: *const ws_request,
    name: *const c_char,
    index: usize,
    value_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_value_at(tri!(req_ref(req)).headers(), name, index, value_out, len_out) })
}

/// The number of header lines in the request.
#[no_mangle]
pub extern "C" fn ws_request_header_count(req: *const ws_request) -> usize {
    ffi_value!(0, { req_ref(req).map(|r| r.headers().len()).unwrap_or(0) })
}

/// Header number `index` (0-based): name and value pointers and lengths,
/// valid during the callback. `WS_ERR_NOT_FOUND` past the end.
#[no_mangle]
pub extern "C" fn ws_request_header_at(
    req: *const ws_request,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_at(tri!(req_ref(req)).headers(), index, name_out, name_len_out, value_out, value_len_out) })
}

/// The client's address ("ip:port") copied into `buf` with a NUL.
#[no_mangle]
pub extern "C" fn ws_request_remote_addr(
    req: *const ws_request,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let r = tri!(req_ref(req));
        let s = r.remote_addr.map(|a| a.to_string()).unwrap_or_default();
        copy_out(s.as_bytes(), buf, cap, len_out)
    })
}

/// The HTTP status of the server's answer (101 on success).
#[no_mangle]
pub extern "C" fn ws_response_status(resp: *const ws_response) -> u16 {
    ffi_value!(0, { resp_ref(resp).map(|r| r.status()).unwrap_or(0) })
}

/// The first value of header `name` (case-insensitive): pointer and length,
/// valid until `ws_response_free`. `WS_ERR_NOT_FOUND` if absent.
#[no_mangle]
pub extern "C" fn ws_response_header(
    resp: *const ws_response,
    name: *const c_char,
    value_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_lookup(tri!(resp_ref(resp)).headers(), name, value_out, len_out) })
}

/// How many times header `name` (case-insensitive) appears in the
/// response, e.g. one per cookie for `Set-Cookie`. 0 when absent (or for
/// a NULL argument).
#[no_mangle]
pub extern "C" fn ws_response_header_value_count(resp: *const ws_response, name: *const c_char) -> usize {
    ffi_value!(0, { resp_ref(resp).map(|r| header_value_count(r.headers(), name)).unwrap_or(0) })
}

/// Value number `index` (0-based, in order) of header `name`
/// (case-insensitive): each header line is one value, never split at
/// commas (a `Set-Cookie` value may hold commas). Pointer and length,
/// valid until `ws_response_free`. `WS_ERR_NOT_FOUND` past the last one.
#[no_mangle]
pub extern "C" fn ws_response_header_value_at(
    resp: *const ws_response,
    name: *const c_char,
    index: usize,
    value_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_value_at(tri!(resp_ref(resp)).headers(), name, index, value_out, len_out) })
}

/// The number of header lines in the response.
#[no_mangle]
pub extern "C" fn ws_response_header_count(resp: *const ws_response) -> usize {
    ffi_value!(0, { resp_ref(resp).map(|r| r.headers().len()).unwrap_or(0) })
}

/// Header number `index` (0-based), valid until `ws_response_free`.
#[no_mangle]
pub extern "C" fn ws_response_header_at(
    resp: *const ws_response,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    value_out: *mut *const u8,
    value_len_out: *mut usize,
) -> ws_status {
    ffi_status!({ header_at(tri!(resp_ref(resp)).headers(), index, name_out, name_len_out, value_out, value_len_out) })
}

/// The start of the response body (empty for a 101; at most 4 KiB of a
/// refusal's body, as much as had arrived), valid until `ws_response_free`.
#[no_mangle]
pub extern "C" fn ws_response_body(
    resp: *const ws_response,
    body_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let r = tri!(resp_ref(resp));
        tri!(need(body_out, "body_out"));
        put(body_out, r.body.as_ptr());
        put(len_out, r.body.len());
        WS_OK
    })
}

/// Frees a response. NULL and a second free are no-ops. Any thread, once
/// no other call uses it.
#[no_mangle]
pub extern "C" fn ws_response_free(resp: *mut ws_response) {
    ffi_value!((), {
        if guard::unregister(resp) {
            // SAFETY: registered by ws_dial via Box::into_raw; just left the live set.
            drop(unsafe { Box::from_raw(resp) });
        }
    })
}

/// The status the error response will carry.
#[no_mangle]
pub extern "C" fn ws_error_response_status(resp: *mut ws_error_response) -> u16 {
    ffi_value!(0, { err_resp_mut(resp).map(|r| r.status).unwrap_or(0) })
}

/// Changes the status (100-599) of the error response.
#[no_mangle]
pub extern "C" fn ws_error_response_set_status(resp: *mut ws_error_response, status: u16) -> ws_status {
    ffi_status!({
        let r = tri!(err_resp_mut(resp));
        if !(100..=599).contains(&status) {
            return invalid("HTTP status must be 100-599");
        }
        r.status = status;
        WS_OK
    })
}

/// Adds a header to the error response (name must be an HTTP token; the
/// value must not contain CR, LF or NUL).
#[no_mangle]
pub extern "C" fn ws_error_response_add_header(
    resp: *mut ws_error_response,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    ffi_status!({
        let r = tri!(err_resp_mut(resp));
        let name = tri!(cstr(name, "name"));
        let value = tri!(cstr(value, "value"));
        if let Err(m) = validate_header(name, value) {
            return guard::invalid(&m);
        }
        r.headers.push((name.to_string(), value.to_string()));
        WS_OK
    })
}

/// Replaces the error response's body (copied).
#[no_mangle]
pub extern "C" fn ws_error_response_set_body(resp: *mut ws_error_response, body: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let r = tri!(err_resp_mut(resp));
        let body = tri!(bytes(body, len, "body"));
        r.body = body.to_vec();
        WS_OK
    })
}

/// The subprotocol number `index` (0-based) the client asked for, in its
/// order: pointer and length, valid during the callback.
/// `WS_ERR_NOT_FOUND` past the end.
#[no_mangle]
pub extern "C" fn ws_request_subprotocol(
    req: *const ws_request,
    index: usize,
    name_out: *mut *const c_char,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let r = tri!(req_ref(req));
        tri!(need(name_out, "name_out"));
        match r.subprotocols().get(index) {
            Some(p) => {
                put(name_out, p.as_ptr() as *const c_char);
                put(len_out, p.len());
                WS_OK
            }
            None => not_found(&format!("subprotocol #{index}")),
        }
    })
}
