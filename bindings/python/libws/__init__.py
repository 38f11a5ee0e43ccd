"""libws: Python bindings (ctypes) for the libws WebSocket library.

Client::

    import libws
    with libws.connect("ws://127.0.0.1:8765/") as ws:
        ws.send("hello")
        print(ws.recv())

Server::

    def echo(ws):
        for message in ws:
            ws.send(message)

    libws.serve("127.0.0.1", 8765, echo).serve_forever()

Event-driven server (one thread, many connections)::

    class Echo(libws.EventHandler):
        def on_message(self, conn, message):
            conn.send(message)

    libws.serve_events("127.0.0.1", 8765, Echo()).serve_forever()

The shared library is found through $LIBWS_LIBRARY, then the package's
own _lib/ directory, then a checkout's target/release/ (see
``libws._ffi``); ``libws.library_path`` tells which file was loaded.
"""

from __future__ import annotations

from . import _ffi
from .client import Compression, connect
from .connection import Connection
from .event_loop import EventHandler, EventLoop, EventServer, Listener, LoopConnection, TimerHandle, serve_events
from .exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandlerError,
    HandshakeError,
    InvalidArgument,
    InvalidURI,
    LibwsError,
    MessageTooBig,
    ProtocolError,
    ProxyError,
    QueueFull,
    CertificateError,
    TLSConfigError,
    TLSError,
    TransportError,
)
# libws.TimeoutError, re-exported by name but not in __all__ (see below).
from .exceptions import TimeoutError as TimeoutError
from .server import Request, Server, same_origin, serve
from .tls import ClientTLS, ServerTLS

__all__ = [
    "connect",
    "serve",
    "serve_events",
    "EventLoop",
    "EventHandler",
    "EventServer",
    "LoopConnection",
    "Listener",
    "TimerHandle",
    "Connection",
    "Compression",
    "ClientTLS",
    "ServerTLS",
    "Server",
    "Request",
    "same_origin",
    "LibwsError",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ProtocolError",
    "MessageTooBig",
    "HandshakeError",
    # Not "TimeoutError": `from libws import *` must not shadow the builtin
    # (libws.TimeoutError is a subclass of it; catch either).
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
    "library_path",
    "library_version",
    "HAS_TLS",
    "set_memory_budget",
    "memory_budget_used",
    "__version__",
]

__version__ = "0.1.0"

#: the shared library file that was loaded
library_path: str = str(_ffi.path)
#: the version libws.so reports (ws_version)
library_version: str = _ffi.ws_version().decode()
#: whether the loaded libws.so has TLS (ws_has_tls): False for a library
#: built with ``make install TLS=0``, where ``wss://``, :class:`ClientTLS`,
#: :class:`ServerTLS` and ``https://`` proxies raise LibwsError
#: (WS_ERR_UNSUPPORTED)
HAS_TLS: bool = bool(_ffi.ws_has_tls())


def set_memory_budget(nbytes: int) -> None:
    """Sets the process-wide memory budget (``ws_set_memory_budget``): what
    all connections may hold together for input not yet handed to the
    application; 0 = none. Default: 1 GiB, or a quarter of the machine's
    memory if less. Connections refused memory are not read (TCP pushes
    back) and are closed with 1009 if their message cannot get done."""
    if not isinstance(nbytes, int) or nbytes < 0 or nbytes >= 1 << 64:
        raise ValueError("nbytes must be an int in 0 .. 2**64 - 1")
    _ffi.ws_set_memory_budget(nbytes)


def memory_budget_used() -> int:
    """Bytes the connections on the process-wide budget hold now."""
    return int(_ffi.ws_memory_budget_used())
