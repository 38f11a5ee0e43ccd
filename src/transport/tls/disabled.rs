//! `transport::tls` in a build without the `tls` feature (no rustls, no
//! ring: README "Size of the installed library").
//!
//! The same names as the TLS build, so nothing above `transport` needs a
//! `cfg`: [`require`] refuses whatever asks for TLS with
//! `ErrorKind::Unsupported` (`WS_ERR_UNSUPPORTED`) and the reason, and the
//! types that only exist once TLS runs ([`TlsSession`], [`TlsLayers`],
//! [`TlsServerConfig`]) are uninhabited: their constructors fail and their
//! methods match on a `Never`, so no TLS code is left to link. (The
//! `Never` field is private, so callers' code after a constructor's `?`
//! is not flagged as unreachable: the drivers stay the same in both
//! builds.) [`TlsClientConfig`] is inhabited, since every `Dialer` holds
//! one: an empty value whose setters refuse. [`error`] (the failure type)
//! is the TLS build's own file, without its rustls-only part.
//!
//! This mirrors the part of the TLS build's surface the crate uses; a new
//! use fails `cargo clippy --no-default-features` (CI) until it is here.

use std::io::{self, IoSlice, Read, Write};
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

pub mod error;
pub mod options;

pub use error::{TlsFailure, TlsFailureKind};
pub use options::{ClientAuth, MinVersion};

/// Whether this build has TLS.
pub const ENABLED: bool = false;

/// No TLS buffers in this build.
#[inline]
pub fn loop_thread_enable() {}

/// No TLS buffers in this build.
#[inline]
pub fn loop_thread_flush() {}

/// The reason every TLS entry point gives in this build.
pub const WITHOUT_TLS: &str = "this libws was built without TLS (cargo feature `tls`; make install TLS=0)";

/// `what` (a `wss://` URL, an `https://` proxy, a TLS setting) needs TLS,
/// which this build does not have.
pub fn require(what: &str) -> Result<()> {
    Err(unsupported(what))
}

fn unsupported(what: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("{what}: {WITHOUT_TLS}"))
}

/// No value: what the TLS-only types hold in this build.
#[derive(Clone, Copy, Debug)]
enum Never {}

/// A `Dialer`'s client TLS settings: here always the defaults, which
/// nothing reads (a `wss://` dial or an `https://` proxy is refused before
/// TLS would start). The setters refuse; the C ABI refuses before them.
#[derive(Clone, Debug, Default)]
pub struct TlsClientConfig {
    _none: (),
}

impl TlsClientConfig {
    pub fn add_ca_pem(&mut self, _pem: &[u8]) -> Result<()> {
        require("a CA certificate")
    }

    pub fn add_ca_file(&mut self, _path: &Path) -> Result<()> {
        require("a CA file")
    }

    pub fn set_client_certificate_pem(&mut self, _chain_pem: &[u8], _key_pem: &[u8]) -> Result<()> {
        require("a client certificate")
    }

    pub fn set_client_certificate_files(&mut self, _chain: &Path, _key: &Path) -> Result<()> {
        require("a client certificate")
    }

    /// Has nothing to change: no dial reads these settings in this build.
    pub fn use_system_roots(&mut self, _on: bool) {}

    /// Has nothing to change: no dial reads these settings in this build.
    pub fn set_min_version(&mut self, _v: MinVersion) {}

    /// Has nothing to change: no dial reads these settings in this build.
    pub fn insecure_skip_hostname_verification(&mut self, _skip: bool) {}
}

/// Server TLS settings: none can be made in this build.
#[derive(Clone, Debug)]
pub struct TlsServerConfig {
    never: Never,
}

impl TlsServerConfig {
    pub fn from_pem(_chain_pem: &[u8], _key_pem: &[u8]) -> Result<TlsServerConfig> {
        Err(unsupported("a TLS server certificate"))
    }

    pub fn from_files(_chain: &Path, _key: &Path) -> Result<TlsServerConfig> {
        TlsServerConfig::from_pem(&[], &[])
    }

    pub fn replace_certificate_pem(&self, _chain_pem: &[u8], _key_pem: &[u8]) -> Result<()> {
        match self.never {}
    }

    pub fn replace_certificate_files(&self, _chain: &Path, _key: &Path) -> Result<()> {
        match self.never {}
    }

    pub fn set_client_auth(&mut self, _mode: ClientAuth, _ca_pem: Option<&[u8]>) -> Result<()> {
        match self.never {}
    }

    pub fn set_min_version(&mut self, _v: MinVersion) {
        match self.never {}
    }

    /// The TLS build's check that the settings make a usable config.
    pub fn rustls(&self) -> Result<()> {
        match self.never {}
    }
}

/// Reads a file for a TLS setter: refused, since no TLS setting exists.
pub fn read_file(_path: &Path, what: &str) -> Result<Vec<u8>> {
    Err(unsupported(what))
}

/// A TLS session: none can start in this build.
#[derive(Debug)]
pub struct TlsSession {
    never: Never,
}

impl TlsSession {
    pub fn client(_config: &TlsClientConfig, host: &str) -> Result<TlsSession> {
        Err(unsupported(&format!("TLS to {host}")))
    }

    pub fn server(config: &TlsServerConfig) -> Result<TlsSession> {
        match config.never {}
    }

    pub fn set_unlimited_output(&mut self) {
        match self.never {}
    }

    pub fn feed(&mut self, _data: &[u8]) -> std::result::Result<usize, TlsFailure> {
        match self.never {}
    }

    pub fn feed_eof(&mut self) {
        match self.never {}
    }

    pub fn read_plaintext_append(&mut self, _out: &mut Vec<u8>) -> io::Result<usize> {
        match self.never {}
    }

    pub fn write_plaintext(&mut self, _data: &[u8]) -> usize {
        match self.never {}
    }

    pub fn wants_write(&self) -> bool {
        match self.never {}
    }

    pub fn pending_ciphertext(&self) -> usize {
        match self.never {}
    }

    pub fn is_handshaking(&self) -> bool {
        match self.never {}
    }

    pub fn ciphertext(&self) -> &[u8] {
        match self.never {}
    }

    pub fn consume_ciphertext(&mut self, _n: usize) {
        match self.never {}
    }

    pub fn send_close_notify(&mut self) {
        match self.never {}
    }

    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        match self.never {}
    }
}

/// TLS layers over a socket: none in this build (a `Stream` is plain TCP).
#[derive(Debug)]
pub struct TlsLayers {
    never: Never,
}

impl TlsLayers {
    pub fn new(session: TlsSession, _already: &[u8]) -> TlsLayers {
        match session.never {}
    }

    pub fn push(&self, _inner: TlsSession, _already: &[u8]) -> io::Result<()> {
        match self.never {}
    }

    pub fn read<S>(&self, _sock: &S, _buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn write<S>(&self, _sock: &S, _buf: &[u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn write_vectored<S>(&self, _sock: &S, _bufs: &[IoSlice<'_>]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn flush<S>(&self, _sock: &S) -> io::Result<bool>
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn handshake_step<S>(&self, _sock: &S) -> io::Result<Option<bool>>
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn close_notify<S>(&self, _sock: &S)
    where
        for<'a> &'a S: Read + Write,
    {
        match self.never {}
    }

    pub fn wants_write(&self) -> bool {
        match self.never {}
    }

    pub fn short_read_means_drained(&self) -> bool {
        match self.never {}
    }

    pub fn pending_bytes(&self) -> usize {
        match self.never {}
    }

    pub fn is_handshaking(&self) -> bool {
        match self.never {}
    }

    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        match self.never {}
    }

    pub fn protocol_version(&self) -> Option<String> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_constructor_refuses_with_the_reason() {
        let errors = [
            require("wss://example.com/").unwrap_err(),
            TlsServerConfig::from_pem(b"", b"").unwrap_err(),
            TlsSession::client(&TlsClientConfig::default(), "example.com").unwrap_err(),
            TlsClientConfig::default().add_ca_pem(b"").unwrap_err(),
            read_file(Path::new("/ca.pem"), "client CA file").unwrap_err(),
        ];
        for e in errors {
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.message().ends_with(WITHOUT_TLS), "{}", e.message());
        }
    }
}
