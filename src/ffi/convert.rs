//! Turning C arguments into Rust values and back. Every raw-pointer read
//! of the C ABI that is not a handle dereference lives here.

use std::ffi::{c_char, CStr};

use super::guard::set_last_error;
use super::status::*;
use crate::error::{Error, ErrorKind};

/// A `(pointer, length)` byte range from C. NULL with length 0 is empty;
/// NULL with a length is an error.
pub(crate) fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], ws_status> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(super::guard::invalid(&format!("{what} is NULL but its length is {len}")));
    }
    // SAFETY: the caller passes `len` readable bytes at `ptr` (the header
    // documents every such pair); we only read them during this call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A mutable `(pointer, length)` buffer from C.
pub(crate) fn bytes_mut<'a>(ptr: *mut u8, len: usize, what: &str) -> Result<&'a mut [u8], ws_status> {
    if ptr.is_null() {
        return Err(super::guard::invalid(&format!("{what} is NULL")));
    }
    // SAFETY: the caller passes `len` writable bytes at `ptr`, not aliased
    // by anything we read during this call.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// A NUL-terminated UTF-8 string from C.
pub(crate) fn cstr<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, ws_status> {
    if ptr.is_null() {
        return Err(super::guard::invalid(&format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string that stays valid
    // for the duration of this call.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| super::guard::invalid(&format!("{what} is not valid UTF-8")))
}

/// An array of `n` NUL-terminated strings.
pub(crate) fn cstr_array(ptr: *const *const c_char, n: usize, what: &str) -> Result<Vec<String>, ws_status> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(super::guard::invalid(&format!("{what} is NULL but its count is {n}")));
    }
    // SAFETY: the caller passes an array of `n` string pointers.
    let arr = unsafe { std::slice::from_raw_parts(ptr, n) };
    arr.iter().map(|&p| cstr(p, what).map(str::to_string)).collect()
}

/// A name/value pair of an HTTP header, both NUL-terminated strings.
#[repr(C)]
pub struct ws_header {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// An array of `n` headers from C.
pub(crate) fn headers(ptr: *const ws_header, n: usize) -> Result<Vec<(String, String)>, ws_status> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(super::guard::invalid("headers is NULL but its count is not 0"));
    }
    // SAFETY: the caller passes an array of `n` ws_header values.
    let arr = unsafe { std::slice::from_raw_parts(ptr, n) };
    arr.iter()
        .map(|h| {
            let name = cstr(h.name, "header name")?;
            let value = cstr(h.value, "header value")?;
            crate::proto::handshake::headers::validate_header(name, value).map_err(|m| super::guard::invalid(&m))?;
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Writes `*out = v` when `out` is not NULL.
pub(crate) fn put<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: a non-NULL out-parameter points to writable memory for a T.
        unsafe { out.write(v) }
    }
}

/// Requires a non-NULL out-parameter.
pub(crate) fn need<T>(out: *mut T, what: &str) -> Result<(), ws_status> {
    if out.is_null() {
        Err(super::guard::invalid(&format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// Copies `s` plus a NUL into `buf` (capacity `cap`), snprintf-style:
/// returns the length of `s`; writes a truncated, NUL-terminated prefix
/// when it does not fit. `buf` may be NULL when `cap` is 0.
pub(crate) fn copy_c_string(s: &[u8], buf: *mut c_char, cap: usize) -> usize {
    if !buf.is_null() && cap > 0 {
        let n = s.len().min(cap - 1);
        // SAFETY: the caller passes `cap` writable bytes at `buf`.
        unsafe {
            std::ptr::copy_nonoverlapping(s.as_ptr(), buf as *mut u8, n);
            *buf.add(n) = 0;
        }
    }
    s.len()
}

/// Copies `s` plus a NUL into `buf`; `WS_ERR_BUFFER_TOO_SMALL` (with the
/// needed length in `len_out`, excluding the NUL) when it does not fit.
pub(crate) fn copy_out(s: &[u8], buf: *mut c_char, cap: usize, len_out: *mut usize) -> ws_status {
    if buf.is_null() && cap > 0 {
        return super::guard::invalid("buf is NULL but cap is not 0");
    }
    put(len_out, s.len());
    if buf.is_null() || cap < s.len() + 1 {
        set_last_error("buffer too small");
        return WS_ERR_BUFFER_TOO_SMALL;
    }
    copy_c_string(s, buf, cap);
    WS_OK
}

/// Converts a Rust result into a status, recording the error message.
pub(crate) fn status(r: Result<(), Error>) -> ws_status {
    match r {
        Ok(()) => WS_OK,
        Err(e) => super::guard::fail(&e),
    }
}

pub(crate) fn not_found(what: &str) -> ws_status {
    super::guard::fail(&Error::new(ErrorKind::NotFound, format!("{what} not found")))
}
