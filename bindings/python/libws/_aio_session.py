"""libws.asyncio's session path: a connection over the sans-IO ws_session,
read and written by asyncio's own transport.

``_SessionProtocol`` is an ``asyncio.BufferedProtocol`` whose base,
``libws._speedups.SessionCore`` (``_session.c``), does the per-message
work: asyncio reads into a buffer the extension owns, the bytes go to
``ws_session_recv_in_place`` (unmasked in place), messages go straight to
the connection's ``_on_message``, and the session's output goes to the
socket with send(2) (through ``transport.write`` while the transport holds
bytes, so the order is kept). No libws event loop, no nested epoll, no
periodic wake-up: the session's own deadlines (handshake, close) are one
``loop.call_at`` when there is one.

The protocol object is both what :class:`libws.asyncio.Connection` calls
its hub (``loop``, ``after``, ``drain_waiters``) and its connection
(``close``, ``ping``, ``pause_reading``, ``close_code``...): one object per
connection instead of a shared libws loop and a ``LoopConnection``.

Needs the C extension; without it (``LIBWS_NO_SPEEDUPS=1``, or not built)
libws.asyncio stays on the event-loop path, as it does for proxies (the
session connects no proxy).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import socket
from typing import Any, Callable, Optional, Sequence, Set, Tuple, Union
from urllib.parse import urlsplit

from . import _ffi
from .client import CompressionArg, HeadersLike, _compression_options, _configure_dialer, _header_pairs, _response_headers
from .connection import _SENT_CODE, _close_args, _limit, _Negotiated
from .exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectionRefused,
    HandshakeError,
    InvalidURI,
    LibwsError,
    TimeoutError,
    closed_error,
    error_for,
)
from .server import Request, _configure_upgrader, _read_request, same_origin
from .tls import ClientTLS, ServerTLS, _apply_client, _apply_server

logger = logging.getLogger("libws")

_NAMES = (
    "ws_session_server_new", "ws_session_client_new", "ws_session_free", "ws_session_recv_in_place",
    "ws_session_recv_eof", "ws_session_pending", "ws_session_sent", "ws_session_is_finished",
    "ws_session_send", "ws_session_close", "ws_session_set_timeouts", "ws_session_next_timeout_ms",
    "ws_session_on_timeout", "ws_session_subprotocol", "ws_session_compression_negotiated",
    "ws_session_is_tls", "ws_session_send_head",
)

_refused_response = _ffi._fn("ws_session_refused_response", ctypes.c_void_p, ctypes.c_void_p)
_send_prepared = _ffi._fn("ws_session_send_prepared", _ffi.ws_status, ctypes.c_void_p, ctypes.c_void_p)



def _feeding() -> Optional["_SessionProtocol"]:
    """The protocol whose bytes a session is reading now (for the
    Upgrader's check_origin and error callbacks, which run inside that read
    and do not say which session they are for)."""
    from . import _speedups  # type: ignore[attr-defined]

    return _speedups.feeding()  # type: ignore[no-any-return]


def init(fast: Any) -> bool:
    """Hands _speedups the session functions; False when this _speedups
    has no SessionCore (an older build): then the loop path is used."""
    if fast is None or not hasattr(fast, "SessionCore"):
        return False
    addr = {n: ctypes.cast(getattr(_ffi.lib, n), ctypes.c_void_p).value for n in _NAMES}
    fast.session_init(addr)
    return True


class _NoCore:
    """The base without _speedups (or with one that has no SessionCore):
    the session path is then off (``init`` says so), but the module must
    still import. (``object`` itself cannot come before
    ``asyncio.BufferedProtocol`` in the bases: no consistent MRO.)"""


def _core_base() -> Any:
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return _NoCore
    return getattr(_speedups, "SessionCore", _NoCore)


_Core: Any = _core_base()


class _SessionProtocol(_Core, _Negotiated, asyncio.BufferedProtocol):  # type: ignore[misc]
    """One connection: transport events in, session calls out. Every
    method runs on the asyncio loop's thread."""

    #: the Server (server side) or None
    owner: Any = None

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.closed = False  # as a hub: never shared, never closed under a user
        self.drain_waiters: Set[Any] = set()
        #: the asyncio Connection, once open
        self.aio: Any = None
        self.request: Optional[Request] = None
        self.error: Optional[LibwsError] = None
        self._close_info: Tuple[Optional[int], str] = (None, "")
        self._sent_code: Optional[int] = None
        self._subprotocol: Optional[str] = None
        self._compression: Optional[str] = None
        self._local: Optional[Tuple[str, int]] = None
        self._remote: Optional[Tuple[str, int]] = None
        self._transport: Optional[asyncio.Transport] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._reading_paused = False
        self._ended = False
        #: a refusal chosen by process_request: (status)
        self._answer: Optional[int] = None
        #: client: resolved with the open connection, or the failure
        self._opened: Optional[asyncio.Future[Any]] = None
        #: client: how to make the Connection once open
        self._make: Optional[Callable[["_SessionProtocol"], Any]] = None

    # -- asyncio.BufferedProtocol (get_buffer, buffer_updated: SessionCore) ----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t: Any = transport
        self._transport = t
        # pause_writing as soon as the transport holds one byte and
        # resume_writing once it holds none: while it holds nothing, the
        # core writes to the socket itself.
        t.set_write_buffer_limits(high=0, low=0)
        sock = t.get_extra_info("socket")
        fd = -1
        if sock is not None:
            try:
                fd = sock.fileno()
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except (OSError, ValueError):
                fd = -1
        self._local = _addr(t.get_extra_info("sockname"))
        self._remote = _addr(t.get_extra_info("peername"))
        if self.owner is not None:
            self.owner._handshaking.add(self)
        self._attach(t, fd)

    def pause_writing(self) -> None:
        self._set_backlog(True)

    def resume_writing(self) -> None:
        self._set_backlog(False)
        if self.drain_waiters:
            for c in list(self.drain_waiters):
                c._check_drain()

    def eof_received(self) -> Optional[bool]:
        self._feed_eof()
        # A server that still sends (our close echo waits) keeps the
        # transport until _c_finished closes it.
        return True

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._feed_eof()  # no-op when the session already ended
        self._detach()
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.owner is not None:
            self.owner._handshaking.discard(self)
        self._end(exc)

    # -- SessionCore's calls into Python ----------------------------------------

    def _c_open(self, req: Optional[int], resp: Optional[int]) -> None:
        self._subprotocol, deflate = self._negotiated()
        self._subprotocol = self._subprotocol or None
        self._compression = "deflate" if deflate else None
        if self.owner is not None:
            self.owner._handshaking.discard(self)
            if self.request is None and req:
                self.request = _read_request(req)
                self.request.remote_address = self._remote
            self.owner._open_session(self)
            return
        fut = self._opened
        if fut is None or fut.done():  # the connect was cancelled meanwhile
            self.abort()
            return
        assert self._make is not None
        fut.set_result(self._make(self))

    def _c_pong(self, data: bytes) -> None:
        if self.aio is not None:
            self.aio._on_pong(data)

    def _c_close(self, code: int, reason: bytes) -> None:
        if self._close_info[0] is None:
            self._close_info = (code, reason.decode("utf-8", "replace"))

    def _c_error(self, st: int, message: bytes) -> None:
        text = message.decode("utf-8", "replace")
        fut = self._opened
        if self.aio is None and fut is not None:
            # The dial failed: its answer or its reason goes to connect().
            if not fut.done():
                fut.set_exception(self._dial_error(st, text))
            return
        if st == _ffi.WS_ERR_TIMEOUT:
            err: LibwsError = TimeoutError(text or "timed out", st)
        elif st in _SENT_CODE:
            err = closed_error(_SENT_CODE[st], "", st, text)
        else:
            err = error_for(st, text or _ffi.status_str(st))
        if self.error is None:
            self.error = err

    def _dial_error(self, st: int, text: str) -> LibwsError:
        resp = _refused_response(self._address())
        if resp:
            status = _ffi.ws_response_status(resp)
            return HandshakeError(text or f"the server answered HTTP {status}", st, status=status,
                                  headers=_response_headers(resp), body=b"")
        if st == _ffi.WS_ERR_TIMEOUT:
            return TimeoutError(text or "the opening handshake timed out", st)
        return error_for(st, text or _ffi.status_str(st))

    def _c_timer(self, ms: int) -> None:
        """The session's next deadline in ``ms`` (-1: none any more)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if ms >= 0:
            self._timer = self.loop.call_at(self.loop.time() + ms / 1000, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._on_timeout()

    def _c_finished(self) -> None:
        # Everything went out (or to the transport, which flushes on close).
        t = self._transport
        if t is not None and not t.is_closing():
            t.close()

    def _report(self, e: BaseException, where: str) -> None:
        logger.error("exception in %s", where, exc_info=(type(e), e, e.__traceback__))
        if not self._ended and self.aio is not None:
            try:
                self.close(1011, "internal error")
            except LibwsError:
                pass

    # -- the end ---------------------------------------------------------------

    def _end(self, exc: Optional[BaseException]) -> None:
        if self._ended:
            return
        self._ended = True
        if self._close_info[0] is None:
            self._close_info = (1006, "")
        fut = self._opened
        if fut is not None and not fut.done():
            err = self.error or ConnectError(f"the connection closed during the handshake: {exc or 'EOF'}",
                                             _ffi.WS_ERR_CLOSED)
            fut.set_exception(err)
        aio = self.aio
        self._set_deliver(None)
        if aio is not None:
            aio._on_close()
        if self.owner is not None:
            self.owner._session_closed(self, aio)
        if not self._free():
            self.loop.call_soon(self._free)

    # -- the Connection's hub ----------------------------------------------------

    def attach(self, conn: Any) -> None:
        self.aio = conn
        self._set_deliver(conn._on_message)

    def detach(self, conn: Any) -> None:
        self._set_deliver(None)

    def sender(self, conn: Any) -> Callable[[int, bytes], int]:
        send: Callable[[int, bytes], int] = self.send
        return send

    def queued(self, conn: Any) -> int:
        return self.buffered_amount

    def after(self) -> None:
        """Nothing to do: every session call flushes and re-aims itself."""

    # -- the Connection's connection (LoopConnection's calls) ----------------------

    def _closed_exc(self, st: Optional[int] = None, msg: str = "") -> ConnectionClosed:
        code, reason = self._close_info
        if code is None:
            code = (_SENT_CODE.get(st) if st is not None else None) or self._sent_code or 1006
        return closed_error(code, reason, st, msg or "the connection is closed")

    def _error(self, st: int) -> LibwsError:
        if st in (_ffi.WS_ERR_CLOSED, _ffi.WS_ERR_LOCALLY_CLOSED, _ffi.WS_ERR_CLOSE_SENT, _ffi.WS_ERR_PROTOCOL,
                  _ffi.WS_ERR_INVALID_UTF8, _ffi.WS_ERR_INVALID_DATA, _ffi.WS_ERR_READ_LIMIT):
            return self._closed_exc(st, _ffi.status_str(st))
        if st == _ffi.WS_ERR_INVALID_ARGUMENT and self._ended:
            return self._closed_exc(st)
        return error_for(st, _ffi.status_str(st))

    def _control(self, typ: int, data: Union[str, bytes], what: str) -> None:
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(payload) > _ffi.MAX_CONTROL_PAYLOAD:
            raise ValueError(f"{what} payload is {len(payload)} bytes; at most 125 are allowed")
        if self._ended:
            raise self._closed_exc()
        st = super()._control(typ, payload)
        if st != _ffi.WS_OK:
            raise self._error(st)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        self._control(_ffi.WS_PING, data, "ping")

    def pong(self, data: Union[str, bytes] = b"") -> None:
        self._control(_ffi.WS_PONG, data, "pong")

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake (nothing once closing or closed)."""
        rb, _ = _close_args(code, reason)
        if self._ended:
            return
        st = super()._close(code, rb)
        if st == _ffi.WS_OK:
            if self._sent_code is None:
                self._sent_code = code
        elif st not in (_ffi.WS_ERR_CLOSE_SENT, _ffi.WS_ERR_LOCALLY_CLOSED, _ffi.WS_ERR_CLOSED,
                        _ffi.WS_ERR_INVALID_ARGUMENT):
            raise self._error(st)

    def abort(self) -> None:
        t = self._transport
        if t is not None:
            t.abort()

    def send_prepared(self, pm: int) -> bool:
        """Queues a prepared message (a broadcast); False when refused."""
        if self._ended:
            return False
        if _send_prepared(self._address(), pm) != _ffi.WS_OK:
            return False
        self._after()
        return True

    def send_message(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """libws.asyncio.broadcast's send: queue without waiting."""
        if isinstance(message, str):
            data, typ = message.encode("utf-8"), _ffi.WS_TEXT
        else:
            data, typ = bytes(message), _ffi.WS_BINARY
        if self._ended:
            raise self._closed_exc()
        r = self.send(typ, data)
        if r < 0:
            raise self._error(-1 - r)

    def pause_reading(self) -> None:
        t = self._transport
        if t is not None and not self._reading_paused:
            self._reading_paused = True
            t.pause_reading()

    def resume_reading(self) -> None:
        t = self._transport
        if t is not None and self._reading_paused:
            self._reading_paused = False
            t.resume_reading()

    @property
    def buffered_amount(self) -> int:
        t = self._transport
        return t.get_write_buffer_size() if t is not None else 0

    @property
    def close_code(self) -> Optional[int]:
        return self._close_info[0] if self._ended or self._close_info[0] is not None else None

    @property
    def close_reason(self) -> Optional[str]:
        return self._close_info[1] if self.close_code is not None else None


def _addr(a: Any) -> Optional[Tuple[str, int]]:
    if isinstance(a, tuple) and len(a) >= 2:
        return (str(a[0]), int(a[1]))
    return None


# ---------------------------------------------------------------------------
# client
# ---------------------------------------------------------------------------


def host_port(url: str) -> Tuple[str, int]:
    """Where to connect for a ws:// or wss:// URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidURI(f"bad URL {url!r}: {e}", _ffi.WS_ERR_BAD_URL) from None
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise InvalidURI(f"not a ws:// or wss:// URL: {url!r}", _ffi.WS_ERR_BAD_URL)
    return parts.hostname, port if port is not None else (443 if parts.scheme == "wss" else 80)


def _collect_max(max_size: Optional[int]) -> int:
    """The largest frame SessionCore gathers whole: the read limit (a larger
    frame fails anyway) plus the longest header; without a limit, 64 MiB."""
    return (max_size if max_size is not None else 64 * 1024 * 1024) + 14


async def open_client(url: str, dialer: int, timeout: Optional[float], close_ms: int, max_size: Optional[int],
                      make: Callable[[_SessionProtocol], Any]) -> Any:
    """A client connection over a session: the session is made from
    ``dialer`` (freed by the caller), asyncio connects TCP, the session
    does the handshake (and TLS for wss://). ``make(protocol)`` builds the
    Connection once open."""
    loop = asyncio.get_running_loop()
    host, port = host_port(url)
    proto = _SessionProtocol(loop)
    st = proto._new_client(dialer, url.encode("utf-8"))
    if st != _ffi.WS_OK:
        raise error_for(st)
    proto._set_timeouts(close_ms)
    proto._set_collect_max(_collect_max(max_size))
    proto._make = make
    fut: asyncio.Future[Any] = loop.create_future()
    proto._opened = fut
    deadline = None if timeout is None else loop.time() + timeout
    try:
        try:
            conn = loop.create_connection(lambda: proto, host, port)
            if timeout is None:
                await conn
            else:
                await asyncio.wait_for(conn, timeout)
        except ConnectionRefusedError as e:
            raise ConnectionRefused(f"connection refused by {host}:{port}: {e}", _ffi.WS_ERR_CONNECT) from e
        except asyncio.TimeoutError:
            raise TimeoutError(f"connecting to {host}:{port} timed out", _ffi.WS_ERR_TIMEOUT) from None
        except OSError as e:
            raise ConnectError(f"cannot connect to {host}:{port}: {e}", _ffi.WS_ERR_CONNECT) from e
        # The handshake deadline is the session's own (its timer aborts it);
        # the future says how it went.
        left = None if deadline is None else max(0.0, deadline - loop.time()) + 1.0
        return await asyncio.wait_for(asyncio.shield(fut), left) if left is not None else await fut
    except BaseException:
        if not fut.done():
            fut.cancel()
        proto.abort()
        if proto._transport is None:
            proto._free()
        raise


# ---------------------------------------------------------------------------
# server
# ---------------------------------------------------------------------------


class SessionListener:
    """What a Server runs on over sessions (its hub): an asyncio server,
    the Upgrader every connection's session is made from, and the
    connections still in their handshake."""

    def __init__(self, loop: asyncio.AbstractEventLoop, upgrader: int, close_ms: int, max_size: Optional[int],
                 check_origin: Optional[Callable[[Request], bool]]) -> None:
        self.loop = loop
        self.collect_max = _collect_max(max_size)
        self.closed = False
        self.upgrader = upgrader
        self.close_ms = close_ms
        self.check = check_origin
        self.server: Any = None  # the libws.asyncio Server
        self.aserver: Optional[asyncio.AbstractServer] = None
        self._handshaking: Set[_SessionProtocol] = set()
        self._sessions: Set[_SessionProtocol] = set()
        # ctypes callbacks, alive as long as this listener
        self._cb_check = _ffi.CHECK_ORIGIN(self._check_trampoline)
        self._cb_error = _ffi.ERROR_FN(self._error_trampoline)
        for st in (_ffi.ws_upgrader_set_check_origin(upgrader, self._cb_check, None),
                   _ffi.ws_upgrader_set_error_handler(upgrader, self._cb_error, None)):
            if st != _ffi.WS_OK:
                raise error_for(st)

    def protocol(self) -> _SessionProtocol:
        if self.closed:  # asyncio logs this and closes the socket
            raise RuntimeError("the server is closed")
        p = _SessionProtocol(self.loop)
        p.owner = self
        st = p._new_server(self.upgrader)
        if st != _ffi.WS_OK:
            raise error_for(st)
        p._set_timeouts(self.close_ms)
        p._set_collect_max(self.collect_max)
        self._sessions.add(p)
        return p

    async def start(self, host: str, port: int) -> Tuple[str, int]:
        self.aserver = await self.loop.create_server(self._accepted, host, port, backlog=1024)
        sockname = self.aserver.sockets[0].getsockname()
        return host, int(sockname[1])

    def _accepted(self) -> _SessionProtocol:
        return self.protocol()

    # the Upgrader's callbacks (inside a session's read of the request)

    def _check_trampoline(self, req: int, user: int) -> bool:
        p = _feeding()
        try:
            request = _read_request(req)
            if p is not None:
                request.remote_address = p._remote
            ok = bool(self.check(request)) if self.check is not None else same_origin(request)
            if not ok:
                return False
            verdict = self.server.on_handshake(request) if self.server is not None else None
            if verdict is False:
                return False
            if verdict is not None and verdict is not True:
                if isinstance(verdict, bool) or not isinstance(verdict, int) or not 400 <= verdict <= 599:
                    raise ValueError(f"process_request must return None, a bool or an HTTP status 400-599, "
                                     f"not {verdict!r}")
                if p is not None:
                    p._answer = verdict
                return False
            if p is not None:
                p.request = request
            return True
        except BaseException:
            logger.exception("exception in process_request/check_origin; refusing the request")
            if p is not None:
                p._answer = 500
            return False

    def _error_trampoline(self, req: int, resp: int, user: int) -> None:
        p = _feeding()
        if p is None or p._answer is None:
            return
        try:
            _ffi.ws_error_response_set_status(resp, p._answer)
        except BaseException:
            logger.exception("exception while writing the process_request answer")

    # the Server's hub

    def after(self) -> None:
        """Nothing to do (each session flushes itself)."""

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview]) -> int:
        from .event_loop import _prepared

        pm = _prepared(message)
        try:
            n = 0
            for p in list(self._sessions):
                if p.aio is not None and not p._ended and p.send_prepared(pm):
                    n += 1
            return n
        finally:
            _ffi.ws_prepared_message_free(pm)

    def shutdown(self, timeout: float, wait: bool = False) -> None:
        """Stops accepting; open connections get 1001, handshakes are cut."""
        if self.aserver is not None:
            self.aserver.close()
        for p in list(self._handshaking):
            p.abort()
        for p in list(self._sessions):
            if p.aio is not None:
                try:
                    p.close(1001, "going away")
                except LibwsError:
                    pass

    def release(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.aserver is not None:
            self.aserver.close()
        _ffi.ws_upgrader_free(self.upgrader)
        self.upgrader = 0

    def _open_session(self, p: _SessionProtocol) -> None:
        assert self.server is not None
        self.server._open_connection(p, p)

    def _session_closed(self, p: _SessionProtocol, aio: Any) -> None:
        self._sessions.discard(p)
        if self.server is not None:
            self.server._closed(p, aio)


# ---------------------------------------------------------------------------
# the Dialer and Upgrader a session is made from (the settings of
# EventLoop.dial and EventLoop.listen, which the loop path uses)
# ---------------------------------------------------------------------------


def make_dialer(*, subprotocols: Optional[Sequence[str]], headers: Optional[HeadersLike], origin: Optional[str],
                compression: CompressionArg, timeout: Optional[float], max_size: Optional[int],
                tls: Optional[ClientTLS]) -> int:
    """A ws_dialer (free it with ws_dialer_free once the session is made)."""
    copts = _compression_options(compression)
    limit = _limit(max_size, "max_size")
    pairs = _header_pairs(headers, origin)
    dialer = _ffi.ws_dialer_new()
    if not dialer:
        raise MemoryError("ws_dialer_new failed")
    try:
        _configure_dialer(dialer, subprotocols=subprotocols, timeout=timeout, max_size=max_size, limit=limit,
                          copts=copts)
        for k, v in pairs:
            kb, vb = k.encode("latin-1"), v.encode("latin-1")
            if b"\0" in kb or b"\0" in vb:
                raise ValueError("header names and values must not contain NUL")
            st = _ffi.ws_dialer_add_header(dialer, kb, vb)
            if st != _ffi.WS_OK:
                raise error_for(st)
        _apply_client(dialer, tls, None)
    except BaseException:
        _ffi.ws_dialer_free(dialer)
        raise
    return int(dialer)


def make_upgrader(*, subprotocols: Optional[Sequence[str]], compression: CompressionArg,
                  response_headers: Optional[Sequence[Tuple[str, str]]], handshake_timeout: Optional[float],
                  max_size: Optional[int], tls: Optional[ServerTLS]) -> int:
    """A ws_upgrader for a SessionListener (which frees it)."""
    copts = _compression_options(compression)
    limit = _limit(max_size, "max_size")
    extra = _header_pairs(response_headers)
    up = _ffi.ws_upgrader_new()
    if not up:
        raise MemoryError("ws_upgrader_new failed")
    try:
        _configure_upgrader(up, subprotocols=subprotocols, extra=extra, handshake_timeout=handshake_timeout,
                            copts=copts, max_size=max_size, limit=limit)
        _apply_server(up, tls)
    except BaseException:
        _ffi.ws_upgrader_free(up)
        raise
    return int(up)


def proxied(url: str, proxy: Any) -> bool:
    """Whether a connect to ``url`` goes through a proxy (then it takes the
    event-loop path: the session connects none). ``proxy=True`` reads the
    same variables libws does; any that applies to the scheme counts
    (libws itself applies no_proxy)."""
    if proxy is None or proxy is False:
        return False
    if proxy is not True:
        return True
    secure = url[:4].lower() == "wss:"
    names = ("https_proxy", "all_proxy") if secure else ("http_proxy", "all_proxy")
    return any(os.environ.get(n) or os.environ.get(n.upper()) for n in names)
