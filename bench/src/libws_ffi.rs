//! Small helpers shared by the libws server and client, which both go
//! through libws's C API (`ws::ffi`, the functions declared in `ws.h`).

use std::ffi::{c_char, CStr};
use std::io;

use ws::ffi::conn::ws_conn;
use ws::ffi::status::{ws_status, WS_OK};
use ws::ffi::util::{ws_last_error, ws_status_str};

/// A `ws_conn*` that may cross threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnPtr(pub *mut ws_conn);

// SAFETY: ws.h's threading contract: a ws_conn may be used from any thread
// (writes from any thread, one reader at a time, ws_conn_close from any
// thread); every user of ConnPtr keeps ws_conn_free as the last call.
unsafe impl Send for ConnPtr {}
// SAFETY: as above; shared use is what ws.h allows concurrently.
unsafe impl Sync for ConnPtr {}

/// `WS_OK` -> `Ok(())`; anything else -> an `io::Error` carrying the status
/// name and the calling thread's `ws_last_error` (so call it on the thread
/// that made the failing call, right after it).
pub fn check(what: &str, st: ws_status) -> io::Result<()> {
    if st == WS_OK {
        return Ok(());
    }
    Err(io::Error::other(format!("{what}: {} ({})", status_name(st), last_error())))
}

/// The static description of a status.
pub fn status_name(st: ws_status) -> String {
    let p = ws_status_str(st);
    if p.is_null() {
        return format!("status {st}");
    }
    // SAFETY: ws_status_str returns a static NUL-terminated string (ws.h).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The calling thread's last libws error message.
pub fn last_error() -> String {
    let mut buf = [0u8; 256];
    let n = ws_last_error(buf.as_mut_ptr() as *mut c_char, buf.len());
    let n = n.min(buf.len() - 1);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A new `ws_upgrader` serving TLS with the bench certificate
/// (`tls_bench::server_pair`), through the C API. The caller frees it.
pub fn tls_upgrader() -> io::Result<*mut ws::ffi::server::ws_upgrader> {
    use std::ffi::CString;
    use ws::ffi::tls::{
        ws_tls_server_config, ws_tls_server_config_free, ws_tls_server_config_new_files, ws_upgrader_set_tls,
    };
    let (cert, key) = crate::tls_bench::server_pair()?;
    let path = |p: &std::path::Path| CString::new(p.to_string_lossy().into_owned()).map_err(io::Error::other);
    let (cert, key) = (path(&cert)?, path(&key)?);
    let mut cfg: *mut ws_tls_server_config = std::ptr::null_mut();
    check("ws_tls_server_config_new_files", ws_tls_server_config_new_files(cert.as_ptr(), key.as_ptr(), &mut cfg))?;
    let up = ws::ffi::server::ws_upgrader_new();
    let r = check("ws_upgrader_set_tls", ws_upgrader_set_tls(up, cfg));
    ws_tls_server_config_free(cfg); // the upgrader keeps its share
    if let Err(e) = r {
        ws::ffi::server::ws_upgrader_free(up);
        return Err(e);
    }
    Ok(up)
}
