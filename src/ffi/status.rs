//! `ws_status`: the stable numbered result of every fallible C function.
//! Numbers are never reused or renumbered.

use crate::error::{Error, ErrorKind};

/// Result of a libws call: `WS_OK` (0) or one of the `WS_ERR_*` codes.
/// A readable detail of the last failure on the calling thread is available
/// from `ws_last_error` (and per connection from `ws_conn_last_error`).
pub type ws_status = i32;

/// Success.
pub const WS_OK: ws_status = 0;
/// A NULL pointer, an out-of-range value, or a call that does not fit the
/// object's state (e.g. `ws_conn_reader_read` without `ws_conn_next_reader`).
pub const WS_ERR_INVALID_ARGUMENT: ws_status = 1;
/// A bug in libws (a caught panic); the object involved may be unusable.
pub const WS_ERR_INTERNAL: ws_status = 2;
/// The operating system reported an I/O error (see `ws_last_error`).
pub const WS_ERR_IO: ws_status = 3;
/// The deadline passed. Nothing was lost: the connection stays usable.
pub const WS_ERR_TIMEOUT: ws_status = 4;
/// The connection ended: the peer sent a close frame (`ws_conn_close_code`
/// tells which) or dropped TCP without one (code 1006). gorilla's CloseError.
pub const WS_ERR_CLOSED: ws_status = 5;
/// The application closed the connection (or listener) locally.
pub const WS_ERR_LOCALLY_CLOSED: ws_status = 6;
/// A write after a close frame was sent (gorilla's ErrCloseSent).
pub const WS_ERR_CLOSE_SENT: ws_status = 7;
/// The peer violated RFC 6455; libws sent close 1002 and closed the socket.
pub const WS_ERR_PROTOCOL: ws_status = 8;
/// The peer sent text (or a close reason) that is not UTF-8; close 1007 sent.
pub const WS_ERR_INVALID_UTF8: ws_status = 9;
/// A message exceeded the read limit; close 1009 sent (gorilla's ErrReadLimit).
pub const WS_ERR_READ_LIMIT: ws_status = 10;
/// The opening handshake failed on the client side (gorilla's
/// ErrBadHandshake); the server's response is available when one arrived.
pub const WS_ERR_BAD_HANDSHAKE: ws_status = 11;
/// The server refused a client's handshake and sent it an HTTP error.
pub const WS_ERR_HANDSHAKE_REJECTED: ws_status = 12;
/// Another thread is reading this connection (one reader at a time).
pub const WS_ERR_BUSY: ws_status = 13;
/// The write deadline passed after part of the frame went out. The rest is
/// queued and goes out before any later frame (`ws_conn_flush` sends it);
/// do not send the message again.
pub const WS_ERR_WRITE_INCOMPLETE: ws_status = 14;
/// The URL or address could not be used.
pub const WS_ERR_BAD_URL: ws_status = 15;
/// The host could not be resolved or did not accept the connection.
pub const WS_ERR_CONNECT: ws_status = 16;
/// The feature is not available in this build (TLS, `wss://` and
/// `https://` proxies in a libws built without TLS: `ws_has_tls`).
pub const WS_ERR_UNSUPPORTED: ws_status = 17;
/// The requested item (header, index) does not exist.
pub const WS_ERR_NOT_FOUND: ws_status = 18;
/// The caller's buffer is too small; the needed length was written.
pub const WS_ERR_BUFFER_TOO_SMALL: ws_status = 19;
/// A ping, pong or close handler returned a non-OK status.
pub const WS_ERR_HANDLER: ws_status = 20;
/// The peer sent a compressed message that is not valid deflate data;
/// libws sent close 1007 and closed the socket.
pub const WS_ERR_INVALID_DATA: ws_status = 21;
/// An event-loop connection's send queue is at its limit
/// (`ws_loop_set_max_buffered`); nothing was queued. Wait for the drain
/// callback, or check `ws_conn_buffered_amount`.
pub const WS_ERR_QUEUE_FULL: ws_status = 22;
/// The TLS handshake failed: no TLS version or parameters in common, an
/// alert from the peer, data that is not TLS, or the handshake timeout
/// (`ws_last_error` names which). Numbers 23 to 29 are left to other work.
pub const WS_ERR_TLS: ws_status = 30;
/// A TLS certificate was refused: the server's is untrusted, expired or
/// for another host name, or the server refused ours (mutual TLS).
pub const WS_ERR_TLS_CERTIFICATE: ws_status = 31;
/// A TLS setting could not be used: an unreadable file, bad PEM, a key that
/// does not match its certificate, no trusted CA.
pub const WS_ERR_TLS_CONFIG: ws_status = 32;
/// The proxy could not be reached, or did not speak its protocol.
pub const WS_ERR_PROXY: ws_status = 33;
/// The proxy refused the tunnel: an HTTP proxy's status (403, 407...) or a
/// SOCKS5 reply code, named in `ws_last_error`; an HTTP proxy's response
/// (status, headers, body start) is given as the dial's response.
pub const WS_ERR_PROXY_REFUSED: ws_status = 34;

pub(crate) fn status_of(kind: ErrorKind) -> ws_status {
    match kind {
        ErrorKind::InvalidArgument => WS_ERR_INVALID_ARGUMENT,
        ErrorKind::Internal => WS_ERR_INTERNAL,
        ErrorKind::Io => WS_ERR_IO,
        ErrorKind::Timeout => WS_ERR_TIMEOUT,
        ErrorKind::Closed => WS_ERR_CLOSED,
        ErrorKind::LocallyClosed => WS_ERR_LOCALLY_CLOSED,
        ErrorKind::CloseSent => WS_ERR_CLOSE_SENT,
        ErrorKind::Protocol => WS_ERR_PROTOCOL,
        ErrorKind::InvalidUtf8 => WS_ERR_INVALID_UTF8,
        ErrorKind::ReadLimit => WS_ERR_READ_LIMIT,
        ErrorKind::BadHandshake => WS_ERR_BAD_HANDSHAKE,
        ErrorKind::HandshakeRejected => WS_ERR_HANDSHAKE_REJECTED,
        ErrorKind::Busy => WS_ERR_BUSY,
        ErrorKind::WriteIncomplete => WS_ERR_WRITE_INCOMPLETE,
        ErrorKind::BadUrl => WS_ERR_BAD_URL,
        ErrorKind::Connect => WS_ERR_CONNECT,
        ErrorKind::Unsupported => WS_ERR_UNSUPPORTED,
        ErrorKind::NotFound => WS_ERR_NOT_FOUND,
        ErrorKind::BufferTooSmall => WS_ERR_BUFFER_TOO_SMALL,
        ErrorKind::Handler => WS_ERR_HANDLER,
        ErrorKind::InvalidData => WS_ERR_INVALID_DATA,
        ErrorKind::QueueFull => WS_ERR_QUEUE_FULL,
        ErrorKind::Tls => WS_ERR_TLS,
        ErrorKind::TlsCertificate => WS_ERR_TLS_CERTIFICATE,
        ErrorKind::TlsConfig => WS_ERR_TLS_CONFIG,
        ErrorKind::Proxy => WS_ERR_PROXY,
        ErrorKind::ProxyRefused => WS_ERR_PROXY_REFUSED,
    }
}

pub(crate) fn status_of_error(e: &Error) -> ws_status {
    status_of(e.kind())
}

/// A static, NUL-terminated name for a status (e.g. "WS_ERR_TIMEOUT: ...").
pub(crate) fn status_text(status: ws_status) -> &'static [u8] {
    match status {
        WS_OK => b"WS_OK: success\0",
        WS_ERR_INVALID_ARGUMENT => b"WS_ERR_INVALID_ARGUMENT: invalid argument or call\0",
        WS_ERR_INTERNAL => b"WS_ERR_INTERNAL: internal error in libws\0",
        WS_ERR_IO => b"WS_ERR_IO: I/O error\0",
        WS_ERR_TIMEOUT => b"WS_ERR_TIMEOUT: deadline passed\0",
        WS_ERR_CLOSED => b"WS_ERR_CLOSED: connection closed by the peer\0",
        WS_ERR_LOCALLY_CLOSED => b"WS_ERR_LOCALLY_CLOSED: closed locally\0",
        WS_ERR_CLOSE_SENT => b"WS_ERR_CLOSE_SENT: close frame already sent\0",
        WS_ERR_PROTOCOL => b"WS_ERR_PROTOCOL: protocol violation by the peer\0",
        WS_ERR_INVALID_UTF8 => b"WS_ERR_INVALID_UTF8: invalid UTF-8 from the peer\0",
        WS_ERR_READ_LIMIT => b"WS_ERR_READ_LIMIT: message exceeds the read limit\0",
        WS_ERR_BAD_HANDSHAKE => b"WS_ERR_BAD_HANDSHAKE: bad handshake\0",
        WS_ERR_HANDSHAKE_REJECTED => b"WS_ERR_HANDSHAKE_REJECTED: handshake request refused\0",
        WS_ERR_BUSY => b"WS_ERR_BUSY: another thread is reading\0",
        WS_ERR_WRITE_INCOMPLETE => b"WS_ERR_WRITE_INCOMPLETE: deadline passed mid-frame; rest queued\0",
        WS_ERR_BAD_URL => b"WS_ERR_BAD_URL: bad URL or address\0",
        WS_ERR_CONNECT => b"WS_ERR_CONNECT: could not connect\0",
        WS_ERR_UNSUPPORTED => b"WS_ERR_UNSUPPORTED: not supported\0",
        WS_ERR_NOT_FOUND => b"WS_ERR_NOT_FOUND: not found\0",
        WS_ERR_BUFFER_TOO_SMALL => b"WS_ERR_BUFFER_TOO_SMALL: buffer too small\0",
        WS_ERR_HANDLER => b"WS_ERR_HANDLER: a handler returned an error\0",
        WS_ERR_INVALID_DATA => b"WS_ERR_INVALID_DATA: invalid compressed data from the peer\0",
        WS_ERR_QUEUE_FULL => b"WS_ERR_QUEUE_FULL: the send queue is full\0",
        WS_ERR_TLS => b"WS_ERR_TLS: TLS handshake failed\0",
        WS_ERR_TLS_CERTIFICATE => b"WS_ERR_TLS_CERTIFICATE: TLS certificate refused\0",
        WS_ERR_TLS_CONFIG => b"WS_ERR_TLS_CONFIG: bad TLS setting\0",
        WS_ERR_PROXY => b"WS_ERR_PROXY: proxy failure\0",
        WS_ERR_PROXY_REFUSED => b"WS_ERR_PROXY_REFUSED: the proxy refused the tunnel\0",
        _ => b"unknown ws_status\0",
    }
}
