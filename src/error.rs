//! The library's error type. Every failure has a kind (which the C ABI maps
//! to a stable `ws_status` number) and a message for humans.

use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A NULL pointer, a bad value or a call that does not fit the state.
    InvalidArgument,
    /// A bug in libws (a caught panic) or a poisoned object.
    Internal,
    /// The operating system reported an I/O error.
    Io,
    /// The deadline passed. The connection stays usable.
    Timeout,
    /// The connection ended: a close frame arrived (code available), or the
    /// peer dropped TCP without one (code 1006).
    Closed,
    /// The application closed the connection locally.
    LocallyClosed,
    /// A write after a close frame was sent.
    CloseSent,
    /// The peer broke RFC 6455; close 1002 was sent.
    Protocol,
    /// The peer sent text that is not UTF-8; close 1007 was sent.
    InvalidUtf8,
    /// A message exceeded the read limit (close 1009 was sent), or the
    /// connection waited for the memory budget longer than its budget
    /// wait (close 1009 when its message alone was over its fair share,
    /// else 1008).
    ReadLimit,
    /// The opening handshake failed (the response, if any, is available).
    BadHandshake,
    /// A server refused a client's handshake and answered with an HTTP error.
    HandshakeRejected,
    /// Another thread is reading this connection.
    Busy,
    /// The deadline passed after part of a message went out; the rest is
    /// queued and goes out before anything else.
    WriteIncomplete,
    /// The URL could not be used.
    BadUrl,
    /// The host name could not be resolved or connected to.
    Connect,
    /// A feature that is not available (e.g. wss:// before TLS lands).
    Unsupported,
    /// A looked-up item (header, index) does not exist.
    NotFound,
    /// The caller's buffer is too small; the needed size is reported.
    BufferTooSmall,
    /// An application handler (ping, pong, close) reported a failure.
    Handler,
    /// A compressed message did not inflate; close 1007 was sent.
    InvalidData,
    /// An event-loop connection's send queue is at its limit; nothing was
    /// queued (wait for the drain callback).
    QueueFull,
    /// The TLS handshake failed (no common version, an alert, not TLS,
    /// timed out) or a TLS record was bad.
    Tls,
    /// The peer's TLS certificate was refused (untrusted, expired, wrong
    /// host name), or the peer refused ours.
    TlsCertificate,
    /// A TLS setting could not be used (unreadable or bad PEM, a key that
    /// does not match its certificate, no trust store).
    TlsConfig,
    /// The proxy could not be reached or spoke no valid proxy protocol.
    Proxy,
    /// The proxy refused the tunnel (HTTP 403/407..., a SOCKS error); the
    /// message has its code, an HTTP proxy's response is available.
    ProxyRefused,
}

impl From<crate::transport::tls::TlsFailureKind> for ErrorKind {
    fn from(k: crate::transport::tls::TlsFailureKind) -> ErrorKind {
        match k {
            crate::transport::tls::TlsFailureKind::Certificate => ErrorKind::TlsCertificate,
            crate::transport::tls::TlsFailureKind::Handshake => ErrorKind::Tls,
        }
    }
}

impl From<crate::proto::ProtoErrorKind> for ErrorKind {
    fn from(k: crate::proto::ProtoErrorKind) -> ErrorKind {
        use crate::proto::ProtoErrorKind as P;
        match k {
            P::Protocol => ErrorKind::Protocol,
            P::InvalidUtf8 => ErrorKind::InvalidUtf8,
            P::TooBig => ErrorKind::ReadLimit,
            P::InvalidData => ErrorKind::InvalidData,
            // The one policy the engine's hosts enforce is the memory budget.
            P::Policy => ErrorKind::ReadLimit,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub fn io(context: &str, e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{context}: {e}"))
    }
    pub fn timeout(what: &'static str) -> Self {
        Error::new(ErrorKind::Timeout, what)
    }
    pub fn poisoned() -> Self {
        Error::new(ErrorKind::Internal, "a previous call on this object panicked; it is unusable")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
