"""Exceptions raised by libws.

Every exception derives from :class:`LibwsError`, which carries the C
status (``ws_status``, an ``int``; ``status_name`` is its text) and the
libws error message (``ws_last_error``/``ws_conn_last_error``).

Hierarchy::

    LibwsError
     +-- ConnectionClosed            (.code, .reason)
     |    +-- ConnectionClosedOK     close code 1000 or 1001
     |    +-- ConnectionClosedError  any other code (1006: TCP dropped)
     |         +-- ProtocolError     the peer broke RFC 6455 (libws sent 1002/1007/1009)
     |              +-- MessageTooBig  a message exceeded the read limit (1009)
     +-- HandshakeError              (.status, .headers, .body of the HTTP answer)
     +-- TimeoutError                also a builtins.TimeoutError
     +-- InvalidURI                  also a ValueError
     +-- InvalidArgument             also a ValueError
     +-- ConnectError                also a ConnectionError (OSError)
     |    +-- ConnectionRefused      also a ConnectionRefusedError (ECONNREFUSED)
     |    +-- ProxyError             the proxy failed or refused the tunnel
     +-- TransportError              also an OSError (I/O error)
     +-- TLSError                    the TLS handshake failed (an OSError)
     |    +-- CertificateError       a certificate was refused
     +-- TLSConfigError              an unusable TLS setting (a ValueError)
     +-- HandlerError                a ping/pong/close handler failed
     +-- QueueFull                   an event-loop send past max_buffered (nothing queued)
"""

from __future__ import annotations

import builtins
from typing import Dict, List, Optional, Tuple

from . import _ffi

__all__ = [
    "LibwsError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ProtocolError",
    "MessageTooBig",
    "HandshakeError",
    "TimeoutError",
    "InvalidURI",
    "InvalidArgument",
    "ConnectError",
    "ConnectionRefused",
    "ProxyError",
    "TransportError",
    "TLSError",
    "CertificateError",
    "TLSConfigError",
    "HandlerError",
    "QueueFull",
]


class LibwsError(Exception):
    """Base class of libws errors.

    Attributes:
        ws_status: the libws C status code (``WS_ERR_*``), or ``None``.
        message: libws's description of the failure (may be empty).
    """

    def __init__(self, message: str = "", ws_status: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.ws_status = ws_status

    @property
    def status_name(self) -> str:
        """The text of :attr:`ws_status` (ws_status_str)."""
        return _ffi.status_str(self.ws_status) if self.ws_status is not None else ""

    def __str__(self) -> str:
        return self.message or self.status_name


class ConnectionClosed(LibwsError):
    """The connection is closed (by the peer, locally, or TCP dropped).

    Attributes:
        code: the close code (the peer's, 1005 when its close frame had
            none, 1006 when TCP ended without one; for a local close, the
            code that was sent), or ``None`` when unknown.
        reason: the close reason (``""`` when none).
    """

    def __init__(
        self, code: Optional[int], reason: str = "", message: str = "", ws_status: Optional[int] = None
    ) -> None:
        self.code = code
        self.reason = reason
        if not message:
            message = f"connection closed: code {code}" + (f", reason {reason!r}" if reason else "")
        super().__init__(message, ws_status)


class ConnectionClosedOK(ConnectionClosed):
    """Closed normally: code 1000 (normal) or 1001 (going away)."""


class ConnectionClosedError(ConnectionClosed):
    """Closed abnormally: any close code other than 1000/1001."""


class ProtocolError(ConnectionClosedError):
    """The peer violated the protocol (or sent invalid UTF-8, or invalid
    deflate data); libws sent the matching close code (1002, 1007) and
    closed the connection."""


class MessageTooBig(ProtocolError):
    """A message exceeded the read limit; libws sent close 1009."""


class HandshakeError(LibwsError):
    """The opening handshake failed.

    Attributes:
        status: the HTTP status of the server's answer (``None`` when no
            answer arrived).
        headers: the answer's headers as a list of ``(name, value)`` pairs
            (``[]`` when none); :meth:`header` looks one up.
        body: the start of the answer's body (``bytes``, at most 4 KiB).
    """

    def __init__(
        self,
        message: str,
        ws_status: Optional[int] = None,
        status: Optional[int] = None,
        headers: Optional[List[Tuple[str, str]]] = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message, ws_status)
        self.status = status
        self.headers: List[Tuple[str, str]] = list(headers or [])
        self.body = body

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive)."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    @property
    def headers_dict(self) -> Dict[str, str]:
        """The headers as a dict with lower-case names (last value wins)."""
        return {k.lower(): v for k, v in self.headers}


class TimeoutError(LibwsError, builtins.TimeoutError):
    """A deadline passed. For reads and writes, nothing was lost and the
    connection stays usable."""


class InvalidURI(LibwsError, ValueError):
    """The URL could not be used (libws takes ws:// and wss:// URLs)."""


class InvalidArgument(LibwsError, ValueError):
    """libws refused an argument (WS_ERR_INVALID_ARGUMENT)."""


class ConnectError(LibwsError, ConnectionError):
    """The host could not be resolved or refused the connection."""


class ConnectionRefused(ConnectError, builtins.ConnectionRefusedError):
    """Nothing listens at the address (ECONNREFUSED): catch it as the
    builtin ``ConnectionRefusedError`` too."""


class TransportError(LibwsError, OSError):
    """The operating system reported an I/O error."""


class TLSError(LibwsError, OSError):
    """The TLS handshake failed (no common version or parameters, an alert
    from the peer, a peer that does not speak TLS, the handshake timeout)."""


class CertificateError(TLSError):
    """A TLS certificate was refused: the server's is untrusted, expired or
    for another host name, or the server refused ours."""


class TLSConfigError(LibwsError, ValueError):
    """A TLS setting could not be used: an unreadable file, bad PEM, a key
    that does not match its certificate."""


class ProxyError(ConnectError):
    """The proxy could not be reached or did not speak its protocol, or it
    refused the tunnel (an HTTP proxy's 403/407, a SOCKS5 refusal)."""


class HandlerError(LibwsError):
    """A ping, pong or close handler failed (its exception is the
    ``__cause__``)."""


class QueueFull(LibwsError):
    """An event-loop connection's send queue is at its limit (the loop's
    ``max_buffered``): nothing was queued. Send again after the handler's
    ``on_drain(connection)``, or when :attr:`LoopConnection.buffered_amount`
    has dropped. A message always fits an empty queue."""


def _plain(cls, st: int, msg: str) -> LibwsError:
    return cls(msg or _ffi.status_str(st), st)


def error_for(st: int, msg: str = "") -> LibwsError:
    """The exception for a libws status outside a connection."""
    if not msg:
        msg = _ffi.last_error()
    table = {
        _ffi.WS_ERR_TIMEOUT: TimeoutError,
        _ffi.WS_ERR_BAD_URL: InvalidURI,
        _ffi.WS_ERR_INVALID_ARGUMENT: InvalidArgument,
        _ffi.WS_ERR_CONNECT: ConnectError,
        _ffi.WS_ERR_IO: TransportError,
        _ffi.WS_ERR_BAD_HANDSHAKE: HandshakeError,
        _ffi.WS_ERR_HANDLER: HandlerError,
        _ffi.WS_ERR_QUEUE_FULL: QueueFull,
        _ffi.WS_ERR_TLS: TLSError,
        _ffi.WS_ERR_TLS_CERTIFICATE: CertificateError,
        _ffi.WS_ERR_TLS_CONFIG: TLSConfigError,
        _ffi.WS_ERR_PROXY: ProxyError,
        _ffi.WS_ERR_PROXY_REFUSED: ProxyError,
    }
    if st == _ffi.WS_ERR_CONNECT and ("refused" in msg.lower() or "os error 111" in msg):
        return ConnectionRefused(msg, st)
    if st == _ffi.WS_ERR_UNSUPPORTED:
        e = LibwsError(msg or _ffi.status_str(st), st)
        return e
    return _plain(table.get(st, LibwsError), st, msg)


def closed_error(code: Optional[int], reason: str, st: Optional[int], msg: str = "") -> ConnectionClosed:
    """ConnectionClosedOK for 1000/1001, ConnectionClosedError otherwise."""
    cls: "type[ConnectionClosed]"
    if st == _ffi.WS_ERR_READ_LIMIT:
        cls = MessageTooBig
    elif st in (_ffi.WS_ERR_PROTOCOL, _ffi.WS_ERR_INVALID_UTF8, _ffi.WS_ERR_INVALID_DATA):
        cls = ProtocolError
    elif code in (1000, 1001):
        cls = ConnectionClosedOK
    else:
        cls = ConnectionClosedError
    return cls(code, reason, msg, st)
