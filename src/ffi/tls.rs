//! TLS for C: `ws_tls_client_config` (given to a dialer), `ws_tls_server_config`
//! (given to an upgrader; its certificate can be replaced while serving),
//! and what a connection tells about its TLS session.
//!
//! The same functions in a build without TLS (the `tls` feature off):
//! each configuration call then returns `WS_ERR_UNSUPPORTED` before it
//! looks at its arguments (`gate`), so no TLS handle can exist, and a
//! connection is never TLS.

use std::ffi::c_char;
use std::path::Path;
use std::sync::RwLock;

use super::conn::{conn_ref, tri, ws_conn, ConnKind};
use super::convert::{bytes, cstr, need, put, status};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::error::Error;
use crate::transport::tls::{self, ClientAuth, MinVersion, TlsClientConfig, TlsServerConfig};

/// TLS 1.2 as the lowest version (the default).
pub const WS_TLS_1_2: i32 = 12;
/// TLS 1.3 only.
pub const WS_TLS_1_3: i32 = 13;

/// No client certificate is asked for (the default).
pub const WS_TLS_CLIENT_AUTH_NONE: i32 = 0;
/// A client certificate is asked for; clients without one are served, one
/// that does not verify is refused.
pub const WS_TLS_CLIENT_AUTH_OPTIONAL: i32 = 1;
/// Clients without a verifying certificate are refused.
pub const WS_TLS_CLIENT_AUTH_REQUIRED: i32 = 2;

/// Client TLS settings: trust (the system store by default), a client
/// certificate, the lowest version. Opaque; `ws_dialer_set_tls` copies it.
pub struct ws_tls_client_config {
    c: RwLock<TlsClientConfig>,
}

/// Server TLS settings: certificate chain and key, client certificates,
/// the lowest version. Opaque; `ws_upgrader_set_tls` shares it, so a
/// certificate replaced here reaches listeners made earlier.
pub struct ws_tls_server_config {
    s: RwLock<TlsServerConfig>,
}

/// `WS_ERR_UNSUPPORTED` (and the reason) when this build has no TLS.
fn gate() -> Result<(), ws_status> {
    tls::require("TLS settings").map_err(|e| guard::fail(&e))
}

fn min_version(v: i32) -> Result<MinVersion, ws_status> {
    match v {
        WS_TLS_1_2 => Ok(MinVersion::Tls12),
        WS_TLS_1_3 => Ok(MinVersion::Tls13),
        _ => Err(invalid("TLS version must be WS_TLS_1_2 or WS_TLS_1_3")),
    }
}

fn with_client(c: *mut ws_tls_client_config, f: impl FnOnce(&mut TlsClientConfig) -> Result<(), Error>) -> ws_status {
    if c.is_null() {
        return invalid("config is NULL");
    }
    // SAFETY: a non-NULL ws_tls_client_config* is a live handle from _new.
    let c = unsafe { &*c };
    match c.c.write() {
        Ok(mut g) => status(f(&mut g)),
        Err(_) => guard::fail(&Error::poisoned()),
    }
}

fn server_ref<'a>(s: *const ws_tls_server_config) -> Result<&'a ws_tls_server_config, ws_status> {
    if s.is_null() {
        return Err(invalid("config is NULL"));
    }
    // SAFETY: a non-NULL ws_tls_server_config* is a live handle from _new.
    Ok(unsafe { &*s })
}

fn with_server(s: *mut ws_tls_server_config, f: impl FnOnce(&mut TlsServerConfig) -> Result<(), Error>) -> ws_status {
    let s = tri!(server_ref(s));
    match s.s.write() {
        Ok(mut g) => status(f(&mut g)),
        Err(_) => guard::fail(&Error::poisoned()),
    }
}

/// New client TLS settings: the system trust store, host-name
/// verification, TLS 1.2 and 1.3, no client certificate. NULL only in a
/// build without TLS (`ws_has_tls()` false; `ws_last_error` says so).
#[no_mangle]
pub extern "C" fn ws_tls_client_config_new() -> *mut ws_tls_client_config {
    ffi_value!(std::ptr::null_mut(), {
        if gate().is_err() {
            return std::ptr::null_mut();
        }
        guard::register(Box::new(ws_tls_client_config { c: RwLock::new(TlsClientConfig::default()) }))
    })
}

/// Frees client TLS settings. NULL and a second free are no-ops; dialers
/// that copied them are not affected.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_free(config: *mut ws_tls_client_config) {
    ffi_value!((), {
        if guard::unregister(config) {
            // SAFETY: registered by ws_tls_client_config_new; just left the live set.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Trusts the CA certificates in the PEM file at `path`. Once a CA is set
/// the system store is no longer used, unless
/// `ws_tls_client_config_use_system_roots(config, true)` says so.
/// `WS_ERR_TLS_CONFIG` when the file cannot be read or holds no certificate.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_add_ca_file(
    config: *mut ws_tls_client_config,
    path: *const c_char,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let path = tri!(cstr(path, "path"));
        with_client(config, |c| c.add_ca_file(Path::new(path)))
    })
}

/// Trusts the CA certificates in PEM data `pem` (`len` bytes, copied).
#[no_mangle]
pub extern "C" fn ws_tls_client_config_add_ca_pem(
    config: *mut ws_tls_client_config,
    pem: *const u8,
    len: usize,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let pem = tri!(bytes(pem, len, "pem"));
        with_client(config, |c| c.add_ca_pem(pem))
    })
}

/// Uses the system trust store (`true`) besides any CA set, or not.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_use_system_roots(config: *mut ws_tls_client_config, on: bool) -> ws_status {
    ffi_status!({
        tri!(gate());
        with_client(config, |c| {
            c.use_system_roots(on);
            Ok(())
        })
    })
}

/// Presents this certificate chain (PEM file, leaf first) and private key
/// (PEM: PKCS#8, RSA or EC) to servers that ask (mutual TLS).
#[no_mangle]
pub extern "C" fn ws_tls_client_config_set_certificate_files(
    config: *mut ws_tls_client_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let cert = tri!(cstr(cert_path, "cert_path"));
        let key = tri!(cstr(key_path, "key_path"));
        with_client(config, |c| c.set_client_certificate_files(Path::new(cert), Path::new(key)))
    })
}

/// As `ws_tls_client_config_set_certificate_files`, from PEM data in memory.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_set_certificate_pem(
    config: *mut ws_tls_client_config,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let cert = tri!(bytes(cert_pem, cert_len, "cert_pem"));
        let key = tri!(bytes(key_pem, key_len, "key_pem"));
        with_client(config, |c| c.set_client_certificate_pem(cert, key))
    })
}

/// The lowest TLS version accepted: `WS_TLS_1_2` (default) or `WS_TLS_1_3`.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_set_min_version(config: *mut ws_tls_client_config, version: i32) -> ws_status {
    ffi_status!({
        tri!(gate());
        let v = tri!(min_version(version));
        with_client(config, |c| {
            c.set_min_version(v);
            Ok(())
        })
    })
}

/// FOR TEST SETUPS ONLY: accepts a server certificate issued for another
/// host name (the chain is still verified against the trusted CAs). Anyone
/// with any certificate from a trusted CA can then impersonate the server.
#[no_mangle]
pub extern "C" fn ws_tls_client_config_insecure_skip_hostname_verification(
    config: *mut ws_tls_client_config,
    skip: bool,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        with_client(config, |c| {
            c.insecure_skip_hostname_verification(skip);
            Ok(())
        })
    })
}

/// Gives `dialer` a copy of `config` for `wss://` targets and HTTPS
/// proxies (NULL restores the defaults). Without this call a dialer uses
/// the system trust store.
#[no_mangle]
pub extern "C" fn ws_dialer_set_tls(
    dialer: *mut super::dialer::ws_dialer,
    config: *const ws_tls_client_config,
) -> ws_status {
    ffi_status!({
        let cfg = if config.is_null() {
            TlsClientConfig::default()
        } else {
            tri!(gate());
            // SAFETY: a non-NULL ws_tls_client_config* is a live handle from _new.
            match unsafe { &*config }.c.read() {
                Ok(g) => g.clone(),
                Err(_) => return guard::fail(&Error::poisoned()),
            }
        };
        super::dialer::with_dialer(dialer, |d| {
            d.tls = cfg;
            Ok(())
        })
    })
}

fn new_server(r: Result<TlsServerConfig, Error>, out: *mut *mut ws_tls_server_config) -> ws_status {
    match r {
        Ok(s) => {
            put(out, guard::register(Box::new(ws_tls_server_config { s: RwLock::new(s) })));
            WS_OK
        }
        Err(e) => guard::fail(&e),
    }
}

/// New server TLS settings from a PEM certificate chain file (leaf first)
/// and a PEM private key file (PKCS#8, RSA or EC). `WS_ERR_TLS_CONFIG`
/// when a file cannot be read, holds no certificate or key, or the key
/// does not match the certificate.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_new_files(
    cert_path: *const c_char,
    key_path: *const c_char,
    config_out: *mut *mut ws_tls_server_config,
) -> ws_status {
    ffi_status!({
        put(config_out, std::ptr::null_mut());
        tri!(gate());
        tri!(need(config_out, "config_out"));
        let cert = tri!(cstr(cert_path, "cert_path"));
        let key = tri!(cstr(key_path, "key_path"));
        new_server(TlsServerConfig::from_files(Path::new(cert), Path::new(key)), config_out)
    })
}

/// As `ws_tls_server_config_new_files`, from PEM data in memory (copied).
#[no_mangle]
pub extern "C" fn ws_tls_server_config_new_pem(
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
    config_out: *mut *mut ws_tls_server_config,
) -> ws_status {
    ffi_status!({
        put(config_out, std::ptr::null_mut());
        tri!(gate());
        tri!(need(config_out, "config_out"));
        let cert = tri!(bytes(cert_pem, cert_len, "cert_pem"));
        let key = tri!(bytes(key_pem, key_len, "key_pem"));
        new_server(TlsServerConfig::from_pem(cert, key), config_out)
    })
}

/// Frees server TLS settings. NULL and a second free are no-ops;
/// upgraders and listeners that use them keep their share.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_free(config: *mut ws_tls_server_config) {
    ffi_value!((), {
        if guard::unregister(config) {
            // SAFETY: registered by ws_tls_server_config_new_*; just left the live set.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Replaces the certificate and key (PEM files) for new handshakes, on
/// every upgrader and listener using these settings; open connections are
/// not affected. On failure the old certificate stays. Any thread.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_replace_certificate_files(
    config: *mut ws_tls_server_config,
    cert_path: *const c_char,
    key_path: *const c_char,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let cert = tri!(cstr(cert_path, "cert_path"));
        let key = tri!(cstr(key_path, "key_path"));
        let s = tri!(server_ref(config));
        match s.s.read() {
            Ok(g) => status(g.replace_certificate_files(Path::new(cert), Path::new(key))),
            Err(_) => guard::fail(&Error::poisoned()),
        }
    })
}

/// As `ws_tls_server_config_replace_certificate_files`, from PEM data.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_replace_certificate_pem(
    config: *mut ws_tls_server_config,
    cert_pem: *const u8,
    cert_len: usize,
    key_pem: *const u8,
    key_len: usize,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let cert = tri!(bytes(cert_pem, cert_len, "cert_pem"));
        let key = tri!(bytes(key_pem, key_len, "key_pem"));
        let s = tri!(server_ref(config));
        match s.s.read() {
            Ok(g) => status(g.replace_certificate_pem(cert, key)),
            Err(_) => guard::fail(&Error::poisoned()),
        }
    })
}

/// Asks clients for certificates (`WS_TLS_CLIENT_AUTH_*`) verified against
/// the CA certificates in the PEM file `ca_path` (NULL only with
/// `WS_TLS_CLIENT_AUTH_NONE`). Applies to upgraders set after this call.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_set_client_auth(
    config: *mut ws_tls_server_config,
    mode: i32,
    ca_path: *const c_char,
) -> ws_status {
    ffi_status!({
        tri!(gate());
        let mode = match mode {
            WS_TLS_CLIENT_AUTH_NONE => ClientAuth::None,
            WS_TLS_CLIENT_AUTH_OPTIONAL => ClientAuth::Optional,
            WS_TLS_CLIENT_AUTH_REQUIRED => ClientAuth::Required,
            _ => return invalid("mode must be one of WS_TLS_CLIENT_AUTH_*"),
        };
        let pem = if ca_path.is_null() {
            None
        } else {
            let p = tri!(cstr(ca_path, "ca_path"));
            match tls::read_file(Path::new(p), "client CA file") {
                Ok(b) => Some(b),
                Err(e) => return guard::fail(&e),
            }
        };
        with_server(config, |s| s.set_client_auth(mode, pem.as_deref()))
    })
}

/// The lowest TLS version accepted: `WS_TLS_1_2` (default) or `WS_TLS_1_3`.
#[no_mangle]
pub extern "C" fn ws_tls_server_config_set_min_version(config: *mut ws_tls_server_config, version: i32) -> ws_status {
    ffi_status!({
        tri!(gate());
        let v = tri!(min_version(version));
        with_server(config, |s| {
            s.set_min_version(v);
            Ok(())
        })
    })
}

/// Serves TLS with `config` on connections this upgrader upgrades and on
/// listeners made from it afterwards (NULL: plain TCP again). The upgrader
/// shares the certificate: `ws_tls_server_config_replace_certificate_*`
/// reaches it. Works for `ws_listen`, `ws_upgrader_upgrade_fd` (the bytes
/// already read are then the start of the TLS handshake),
/// `ws_loop_listen` and `ws_session_server_new` (the session runs TLS).
#[no_mangle]
pub extern "C" fn ws_upgrader_set_tls(
    up: *mut super::server::ws_upgrader,
    config: *const ws_tls_server_config,
) -> ws_status {
    ffi_status!({
        let cfg = if config.is_null() {
            None
        } else {
            tri!(gate());
            let s = tri!(server_ref(config));
            match s.s.read() {
                Ok(g) => {
                    if let Err(e) = g.rustls() {
                        return guard::fail(&e);
                    }
                    Some(g.clone())
                }
                Err(_) => return guard::fail(&Error::poisoned()),
            }
        };
        super::server::with_up(up, |u| {
            u.tls = cfg;
            Ok(())
        })
    })
}

fn peer_chain(c: &ws_conn) -> Option<Vec<Vec<u8>>> {
    match &c.kind {
        ConnKind::Blocking(b) => b.tls_peer_certificates(),
        ConnKind::Loop(l) => l.handle.tls_peer_certificates(),
    }
}

/// Whether the connection (blocking or event-loop) runs over TLS.
#[no_mangle]
pub extern "C" fn ws_conn_is_tls(conn: *const ws_conn) -> bool {
    ffi_value!(false, {
        match conn_ref(conn) {
            Ok(c) => match &c.kind {
                ConnKind::Blocking(b) => b.is_tls(),
                ConnKind::Loop(l) => l.handle.is_tls(),
            },
            Err(_) => false,
        }
    })
}

/// Copies certificate `index` (0 = the peer's own, then its chain) of the
/// TLS peer of a blocking or event-loop connection (any thread), DER-encoded, into `buf` (`cap` bytes); `*len_out` gets its
/// length. `WS_ERR_BUFFER_TOO_SMALL` when it does not fit (call with
/// `cap` 0 to learn the size), `WS_ERR_NOT_FOUND` without TLS, without a
/// peer certificate (a client that sent none) or past the chain's end.
#[no_mangle]
pub extern "C" fn ws_conn_tls_peer_certificate(
    conn: *const ws_conn,
    index: usize,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        copy_certificate(peer_chain(c), index, buf, cap, len_out)
    })
}

/// Copies certificate `index` of `chain` into the caller's `buf` (`cap`
/// bytes), its length into `*len_out`: the contract of
/// `ws_conn_tls_peer_certificate`, shared with `ws_session`'s.
pub(super) fn copy_certificate(
    chain: Option<Vec<Vec<u8>>>,
    index: usize,
    buf: *mut u8,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    let chain = chain.unwrap_or_default();
    let Some(der) = chain.get(index) else {
        return super::convert::not_found("TLS peer certificate");
    };
    if buf.is_null() && cap > 0 {
        return invalid("buf is NULL but cap is not 0");
    }
    put(len_out, der.len());
    if buf.is_null() || cap < der.len() {
        guard::set_last_error("buffer too small");
        return WS_ERR_BUFFER_TOO_SMALL;
    }
    // SAFETY: the caller passes `cap` writable bytes at `buf`; cap >= len.
    unsafe { std::ptr::copy_nonoverlapping(der.as_ptr(), buf, der.len()) };
    WS_OK
}
