"""libws.asyncio: the asyncio API (``websockets``-style) over libws.

Client::

    import libws.asyncio as ws

    async with ws.connect("ws://127.0.0.1:8765/") as conn:
        await conn.send("hello")
        print(await conn.recv())

Server::

    async def echo(conn):
        async for message in conn:
            await conn.send(message)

    async with ws.serve(echo, "127.0.0.1", 8765) as server:
        await server.serve_forever()

How it runs, two ways that behave the same:

- over the sans-IO ``ws_session`` (the default when the C extension
  ``libws._speedups`` is built; ``_aio_session.py``): each connection is
  an ``asyncio.BufferedProtocol`` on asyncio's own TCP transport; the
  extension feeds what asyncio read to the session, hands messages to the
  connection, and writes the session's output to the socket. TLS runs in
  the session.
- over a libws ``ws_loop`` (a :class:`libws.EventLoop`) inside the running
  asyncio loop, for proxies, without ``_speedups`` (ctypes;
  ``LIBWS_NO_SPEEDUPS=1``) or with ``LIBWS_ASYNCIO_LOOP=1``: its
  descriptor (an epoll instance) is watched with ``loop.add_reader`` and
  its next deadline with one asyncio timer; both call ``ws_loop_poll(0)``
  on the asyncio thread, which runs the libws callbacks there.

No thread per connection (a host name that is not an IP address is
resolved on asyncio's executor). Works with the default asyncio loop and
uvloop.

Cancellation: ``recv`` takes a message off the queue only after its wait
ended, so ``asyncio.timeout``/``wait_for`` around it never lose one.
``send`` queues the whole message at once (it can neither be cut nor
sent twice); a cancelled ``send`` may have been queued already, as with
``websockets``. ``close`` and ``wait_closed`` may be cancelled: the close
handshake goes on.

Threads: like every asyncio object, a connection belongs to its event
loop's thread; from another thread, go through
``loop.call_soon_threadsafe`` / ``asyncio.run_coroutine_threadsafe``.

Differences from ``websockets``: ``await conn.ping()`` waits for the pong
and returns the latency (``websockets``: ``await (await conn.ping())``);
``compression`` defaults to None (as in libws's sync API).
"""

from __future__ import annotations

import asyncio
import builtins
import collections
import ctypes
import functools
import ipaddress
import itertools
import logging
import os
import random
import struct
import threading
import time
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Generator,
    Iterable,
    Iterator,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    Type,
    Union,
)
from urllib.parse import urlsplit

from . import _aio_session, _ffi
from .client import CompressionArg, HeadersLike
from .event_loop import DEFAULT_MAX_BUFFERED, DEFAULT_MAX_SIZE, EventLoop, LoopConnection
from .exceptions import (
    CertificateError,
    ConnectionClosed,
    HandshakeError,
    InvalidArgument,
    InvalidURI,
    TLSConfigError,
    error_for,
    ConnectionClosedOK,
    LibwsError,
    QueueFull,
    closed_error,
)
from .server import Request
from .tls import ClientCertArg, ClientTLS, PathLike, ProxyArg, ServerTLS, _client_tls, _server_tls

__all__ = [
    "connect",
    "serve",
    "broadcast",
    "Connection",
    "ClientConnection",
    "ServerConnection",
    "Server",
    "ConnectionListener",
]

logger = logging.getLogger("libws")

Data = Union[str, bytes]
Message = Union[str, bytes, bytearray, memoryview]
#: ``process_request(request)``: None (or True) accepts, False refuses with
#: 403, an int (400-599) refuses with that HTTP status
ProcessRequest = Callable[[Request], Union[None, bool, int]]
Handler = Callable[["ServerConnection"], Awaitable[Any]]

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_OPEN_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE = 16
DEFAULT_WRITE_LIMIT = 32 * 1024


def _seconds(v: Optional[float], what: str) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
        raise ValueError(f"{what} must be a number of seconds >= 0 or None, not {v!r}")
    return float(v) if v > 0 else None


_poll = _ffi.ws_loop_poll
_next_timeout = _ffi.ws_loop_next_timeout_ms
_write = _ffi.ws_conn_write_message
_buffered = _ffi.ws_conn_buffered_amount
_TEXT, _BINARY, _OK, _QUEUE_FULL = _ffi.WS_TEXT, _ffi.WS_BINARY, _ffi.WS_OK, _ffi.WS_ERR_QUEUE_FULL


def _frame_data(message: Any, caller: str) -> Tuple[bytes, int]:
    """(payload, frame type) of a message to send: str as UTF-8 text,
    bytes-like as binary (exact bytes and str first: the common case)."""
    t = type(message)
    if t is bytes:
        return message, _BINARY
    if t is str:
        return message.encode("utf-8"), _TEXT
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message), _BINARY
    if isinstance(message, str):
        return message.encode("utf-8"), _TEXT
    raise TypeError(f"{caller}() takes str or bytes-like data, not {type(message).__name__}")

# ---------------------------------------------------------------------------
# The per-message path in C (libws/_speedups.c), when it was built
# ---------------------------------------------------------------------------

#: message targets of the C on_message callback: handle -> deliver(message)
_targets: Dict[int, Callable[[Data], None]] = {}
#: the loop of each handle in _targets (to report a deliver's exception)
_owners: Dict[int, "_AsyncEventLoop"] = {}


def _report_message_error(h: int, e: BaseException) -> None:
    """_speedups' on_message: a deliver raised (never into C)."""
    ev = _owners.get(h)
    if ev is None:
        logger.error("exception in on_message", exc_info=(type(e), e, e.__traceback__))
        return
    ev._report(e, "on_message", ev._conns.get(h))


def _load_speedups() -> Any:
    """libws._speedups, initialised with this library's functions; None
    when it is not built or LIBWS_NO_SPEEDUPS=1 (then ctypes does the same
    work, more slowly)."""
    if os.environ.get("LIBWS_NO_SPEEDUPS") == "1":
        return None
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None

    def addr(fn: Any) -> int:
        return ctypes.cast(fn, ctypes.c_void_p).value or 0

    _speedups.init(addr(_ffi.lib.ws_loop_poll), addr(_ffi.lib.ws_loop_next_timeout_ms),
                   addr(_ffi.lib.ws_conn_write_message), addr(_ffi.lib.ws_conn_buffered_amount),
                   _targets, _report_message_error)
    return _speedups


#: libws._speedups or None; read when a hub is made (tests switch it)
_fast: Any = _load_speedups()
_C_ON_MESSAGE = _ffi.ON_MESSAGE(_fast.on_message_address()) if _fast is not None else None

#: Connections run over the sans-IO session (libws/_aio_session.py) when
#: _speedups is there: asyncio's own transport reads and writes, no
#: nested libws loop. False (or LIBWS_ASYNCIO_LOOP=1, or a proxy, or no
#: _speedups): over the libws event loop inside the asyncio loop.
_session: bool = _aio_session.init(_fast) and os.environ.get("LIBWS_ASYNCIO_LOOP") != "1"


def _session_path() -> bool:
    return _session and _fast is not None

# ---------------------------------------------------------------------------
# The libws loop inside the asyncio loop
# ---------------------------------------------------------------------------


class _AsyncEventLoop(EventLoop):
    """An EventLoop whose message callback hands the payload straight to
    the asyncio connection: with _speedups, its C on_message calls the
    connection's ``_on_message`` (no ctypes callback); without, one Python
    call per message instead of four."""

    def __init__(self, *, fast: Any = None, **kwargs: Any) -> None:
        #: asyncio connections by C handle
        self.aio: Dict[int, "Connection"] = {}
        self.fast = fast
        super().__init__(**kwargs)

    def _fill(self, c: "_ffi.ws_loop_callbacks", cbs: Any) -> None:
        super()._fill(c, cbs)
        if self.fast is not None:
            c.on_message = _C_ON_MESSAGE

    def _t_open(self, h: int, ud: Any) -> None:
        super()._t_open(h, ud)
        if self.fast is not None and h in self._conns:
            _owners[h] = self
            # A connection without its asyncio side (a connect cancelled
            # while it opened) still gets the handler's on_message.
            if h not in _targets:
                _targets[h] = functools.partial(self._deliver, h)

    def _deliver(self, h: int, message: Data) -> None:
        conn = self._conns.get(h)
        if conn is not None and conn._cbs.on_message is not None:
            conn._cbs.on_message(conn, message)

    def _t_close(self, h: int, code: int, reason: int, n: int, ud: Any) -> None:
        try:
            super()._t_close(h, code, reason, n, ud)
        finally:
            _targets.pop(h, None)
            _owners.pop(h, None)

    def _t_message(self, h: int, typ: int, data: int, n: int, ud: Any) -> None:
        ws = self.aio.get(h)
        if ws is None:
            return super()._t_message(h, typ, data, n, ud)
        try:
            raw = _string_at(data, n) if n else b""
            ws._on_message(raw.decode("utf-8") if typ == _TEXT else raw)
        except BaseException as e:  # never into C
            self._report(e, "on_message", self._conns.get(h))


_string_at = ctypes.string_at


class _Hub:
    """One libws :class:`EventLoop` driven by an asyncio loop: a reader on
    its descriptor and one timer for its next deadline. Lives while it has
    users (dials in progress, open connections, a server)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, close_timeout: Optional[float], max_buffered: int,
                 key: Optional[Tuple[Any, ...]] = None) -> None:
        self.loop = loop
        self.key = key
        self.fast = _fast
        self.ev = _AsyncEventLoop(max_buffered=max_buffered, close_timeout=close_timeout, fast=self.fast)
        self.fd = self.ev.fileno()
        self._lp = self.ev._h
        # Sends from this thread write to the socket at once (no wake-up
        # of the loop just to flush): this thread also drives the loop.
        _ffi.ws_loop_set_write_through(self._lp, True)
        self._tid = threading.get_ident()
        self.users = 0
        self.closed = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at = 0.0
        self._soon = False
        #: connections with a send waiting for their queue to drain
        self.drain_waiters: Set[Connection] = set()
        loop.add_reader(self.fd, self._run_fast if self.fast is not None else self._run)

    def _run(self) -> None:
        self._soon = False
        if self.closed:
            return
        ev = self.ev
        # EventLoop.poll(0) without its lock: only this thread ever drives
        # a hub's loop (and closes it), so the checks it makes cannot race.
        ev._driver = self._tid
        try:
            st = _poll(self._lp, 0)
        finally:
            ev._driver = None
            if not self.closed:
                self.after()
        ev._raise_pending()
        if st != _ffi.WS_OK:
            raise error_for(st)

    def _run_fast(self) -> None:
        """_run through _speedups: the poll and the next deadline in one
        call; the rest of after() only when there is something to do."""
        self._soon = False
        if self.closed:
            return
        ev = self.ev
        ev._driver = self._tid
        ms: Optional[int] = None
        try:
            ms = self.fast.poll(self._lp)
        finally:
            ev._driver = None
            if not self.closed:
                if ms is None or ms < -1:
                    self.after()
                elif ms >= 0 or self.drain_waiters or self._timer is not None:
                    self._after(ms)
        if ev._pending is not None:
            ev._raise_pending()
        if ms is not None and ms < -1:
            raise error_for(-2 - ms)

    def _fire(self) -> None:
        self._timer = None
        if self.fast is not None:
            self._run_fast()
        else:
            self._run()

    def after(self) -> None:
        """After libws ran (or was handed work): wake drain waiters, aim
        the timer at the loop's next deadline."""
        self._after(_next_timeout(self._lp))

    def _after(self, ms: int) -> None:
        """after() with the loop's next deadline already asked for."""
        if self.drain_waiters:
            for c in list(self.drain_waiters):
                c._check_drain()
        t = None if ms < 0 else ms / 1000
        if t is None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif t == 0:
            if not self._soon:
                self._soon = True
                self.loop.call_soon(self._run_fast if self.fast is not None else self._run)
        else:
            at = self.loop.time() + t
            # A timer that fires early only costs a poll that finds nothing;
            # re-arming on every poll would cost a heap push each time.
            if self._timer is None or at < self._timer_at - 0.0005:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer_at = at
                self._timer = self.loop.call_at(at, self._fire)

    # -- what a Connection and a Server call on their hub (the session
    # path's protocol and listener have the same calls) --

    def attach(self, conn: "Connection") -> None:
        h = conn._h
        self.ev.aio[h] = conn  # type: ignore[index]
        if self.fast is not None:
            _targets[h] = conn._on_message  # type: ignore[index]

    def detach(self, conn: "Connection") -> None:
        self.ev.aio.pop(conn._h, None)  # type: ignore[arg-type]
        _targets.pop(conn._h, None)  # type: ignore[arg-type]

    def sender(self, conn: "Connection") -> Callable[[int, bytes], int]:
        """send(type, data) -> bytes queued, or -1 - status."""
        h = conn._h
        if self.fast is not None:
            fast: Callable[[int, bytes], int] = functools.partial(self.fast.send, h)
            return fast

        def send(typ: int, data: bytes) -> int:
            st: int = _write(h, typ, data, len(data))
            if st != _OK:
                return -1 - st
            n: int = _buffered(h)
            return n

        return send

    def queued(self, conn: "Connection") -> int:
        n: int = _buffered(conn._h)
        return n

    def broadcast(self, message: Message) -> int:
        n = self.ev.broadcast(message)
        self.after()
        return n

    def shutdown(self, timeout: float, wait: bool = False) -> None:
        self.ev.shutdown(timeout, wait=wait)
        self.after()

    def acquire(self) -> None:
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0 and not self.closed:
            # Not from inside a libws callback: the loop is being driven.
            self.loop.call_soon(self._close_if_unused)

    def _close_if_unused(self) -> None:
        if self.users <= 0 and not self.closed:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if _hubs.get(self.key) is self:
            del _hubs[self.key]
        try:
            self.loop.remove_reader(self.fd)
        except (RuntimeError, ValueError):  # the asyncio loop is closed
            pass
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.ev.close()


#: client hubs shared by every connect() with the same settings on one
#: asyncio loop (key: id of the loop, and the settings)
_hubs: Dict[Any, _Hub] = {}


def _client_hub(loop: asyncio.AbstractEventLoop, close_timeout: Optional[float], max_buffered: int) -> _Hub:
    key = (id(loop), close_timeout, max_buffered)
    hub = _hubs.get(key)
    if hub is not None and (hub.loop is not loop or hub.closed):
        hub = None  # an old loop's, whose id was reused
    if hub is None:
        hub = _Hub(loop, close_timeout, max_buffered, key)
        _hubs[key] = hub
    return hub


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------


class _ConnLike(Protocol):
    """What a Connection calls on its connection object: a LoopConnection
    (loop path) or an _aio_session._SessionProtocol (session path)."""

    error: Optional[LibwsError]

    def _error(self, st: int) -> LibwsError: ...
    def ping(self, data: Union[str, bytes] = b"") -> None: ...
    def pong(self, data: Union[str, bytes] = b"") -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    @property
    def buffered_amount(self) -> int: ...
    @property
    def close_code(self) -> Optional[int]: ...
    @property
    def close_reason(self) -> Optional[str]: ...
    @property
    def subprotocol(self) -> Optional[str]: ...
    @property
    def compression(self) -> Optional[str]: ...
    @property
    def local_address(self) -> Optional[Tuple[str, int]]: ...
    @property
    def remote_address(self) -> Optional[Tuple[str, int]]: ...

_ping_ids = itertools.count(1)


class Connection:
    """An open WebSocket connection in asyncio (base of
    :class:`ClientConnection` and :class:`ServerConnection`).

    Attributes:
        latency: seconds between the last ping (keepalive or :meth:`ping`)
            and its pong; 0 until one was answered.
    """

    def __init__(self, hub: Any, conn: _ConnLike, *, max_queue: Optional[int], write_limit: int,
                 ping_interval: Optional[float], ping_timeout: Optional[float],
                 listener: Optional["ConnectionListener"] = None) -> None:
        # hub and conn: a _Hub and its LoopConnection (the loop path), or
        # one _aio_session._SessionProtocol as both (the session path).
        self._hub = hub
        #: a ConnectionListener connection: its messages go to listener.on_message
        #: (this instance attribute shadows the queueing _on_message before
        #: the hub takes it), nothing is queued for recv()
        self._listener = listener
        if listener is not None:
            listener.connection = self  # type: ignore[assignment]
            self._on_message = listener.on_message  # type: ignore[method-assign]
        self._conn = conn
        # The loop path's C handle: valid until on_close, which runs on
        # this thread and sets _closed first (checked before every use).
        self._h = getattr(conn, "_h", None)
        self._messages: Deque[Data] = collections.deque()
        hub.attach(self)
        #: send(type, data) -> bytes queued, or -1 - status
        self._send = hub.sender(self)
        self._loop = hub.loop
        self._recv_waiter: Optional[asyncio.Future[None]] = None
        self._recv_busy = False
        self._closed_fut: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self._max_queue = max_queue
        self._paused = False
        self._write_limit = write_limit
        self._drain_fut: Optional[asyncio.Future[None]] = None
        self._drain_low = 0
        #: pings waiting for their pong, oldest first: payload -> (future or None, sent at)
        self._pings: Dict[bytes, Tuple[Optional[asyncio.Future[float]], float]] = {}
        self.latency = 0.0
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._ka_timer: Optional[asyncio.TimerHandle] = None
        self._ka_payload: Optional[bytes] = None
        if ping_interval is not None:
            self._ka_timer = self._loop.call_later(ping_interval, self._keepalive)

    # -- libws callbacks (on the asyncio thread, inside ws_loop_poll) ---------

    def _on_message(self, message: Data) -> None:
        messages = self._messages
        messages.append(message)
        w = self._recv_waiter
        if w is not None and not w.done():
            w.set_result(None)
        mq = self._max_queue
        if mq is not None and len(messages) >= mq and not self._paused:
            # Stop reading: TCP pushes back on the peer until recv catches up.
            self._paused = True
            try:
                self._conn.pause_reading()
            except ConnectionClosed:
                pass

    def _on_pong(self, data: bytes) -> None:
        if data not in self._pings:
            return
        now = time.monotonic()
        # A pong answers its ping and every earlier one (RFC 6455 5.5.3).
        while self._pings:
            payload, (fut, sent) = next(iter(self._pings.items()))
            del self._pings[payload]
            self.latency = now - sent
            if fut is not None and not fut.done():
                fut.set_result(now - sent)
            if payload == self._ka_payload:
                self._keepalive_answered(sent)
            if payload == data:
                break

    def _on_close(self) -> None:
        self._closed = True
        self._hub.detach(self)
        for t in (self._ka_timer,):
            if t is not None:
                t.cancel()
        self._ka_timer = None
        w = self._recv_waiter
        if w is not None and not w.done():
            w.set_result(None)
        pings, self._pings = self._pings, {}
        for fut, _ in pings.values():
            if fut is not None and not fut.done():
                fut.set_exception(self._closed_exc())
        self._check_drain()
        if not self._closed_fut.done():
            self._closed_fut.set_result(None)
        listener = self._listener
        if listener is not None:
            try:
                listener.on_close(self.close_code or 1006, self.close_reason or "")
            except Exception:
                logger.exception("exception in ConnectionListener.on_close")

    # -- receiving -------------------------------------------------------------

    def _closed_exc(self) -> ConnectionClosed:
        err = self._conn.error
        if isinstance(err, ConnectionClosed):
            return err
        code = self._conn.close_code
        exc = closed_error(code if code is not None else 1006, self._conn.close_reason or "", None,
                           "" if err is None else f"connection closed: {err}")
        exc.__cause__ = err
        return exc

    async def recv(self) -> Data:
        """The next message: ``str`` for text, ``bytes`` for binary.

        Cancelling it (``asyncio.timeout``, ``wait_for``) never loses a
        message: one is taken off the queue only once the wait is over.

        Raises:
            ConnectionClosedOK, ConnectionClosedError: the connection is
                closed (after every message received before the close was
                returned), with ``.code`` and ``.reason``.
            RuntimeError: another task is already waiting in ``recv``.
        """
        messages = self._messages
        if messages and not self._paused:  # the common case, fast
            return messages.popleft()
        if self._listener is not None:
            raise RuntimeError("this connection's messages go to its ConnectionListener's on_message, not to recv()")
        if self._recv_busy:
            raise RuntimeError("recv() is already running in another task")
        if not messages:
            if self._closed:
                raise self._closed_exc()
            self._recv_busy = True
            try:
                while not self._messages:
                    if self._closed:
                        raise self._closed_exc()
                    w = self._recv_waiter = self._loop.create_future()
                    try:
                        await w
                    finally:
                        self._recv_waiter = None
            finally:
                self._recv_busy = False
        message = self._messages.popleft()
        if self._paused and len(self._messages) <= (self._max_queue or 0) // 4:
            self._paused = False
            try:
                self._conn.resume_reading()
                self._hub.after()  # the loop reads again at its next poll
            except ConnectionClosed:
                pass
        return message

    def __aiter__(self) -> AsyncIterator[Data]:
        """``async for message in conn``: ends when the connection closes
        normally (1000/1001), raises ConnectionClosedError otherwise."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Data]:
        try:
            while True:
                yield await self.recv()
        except ConnectionClosedOK:
            return

    # -- sending ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Sends a message: ``str`` as text, bytes-like as binary. Queues
        it whole, then waits while more than ``write_limit`` bytes are
        queued (backpressure). A message larger than the loop's
        ``max_buffered`` waits for the queue to empty first.

        Raises:
            ConnectionClosed: the connection is closed or closing.
            TypeError: ``message`` is of another type.
        """
        data, typ = _frame_data(message, "send")
        send = self._send
        while True:
            if self._closed:
                raise self._closed_exc()
            queued = send(typ, data)
            if queued >= 0:
                break
            st = -1 - queued
            if st != _QUEUE_FULL:
                raise self._conn._error(st)
            await self._wait_drain(0)
        if queued > self._write_limit:
            await self._wait_drain(self._write_limit // 4)

    def send_nowait(self, message: Message) -> None:
        """Queues a message without waiting: what a :class:`ConnectionListener`'s
        callbacks send with (they cannot await), and any code that keeps
        its own account of :attr:`buffered_amount`. The message is queued
        whole and goes out in order with every other send; nothing holds
        it back (no ``write_limit``: that is :meth:`send`'s wait).

        Raises:
            ConnectionClosed: the connection is closed or closing.
            QueueFull: the libws event-loop path's ``max_buffered`` is
                reached (the session path has no such bound).
            TypeError: ``message`` is neither str nor bytes-like.
        """
        data, typ = _frame_data(message, "send_nowait")
        if self._closed:
            raise self._closed_exc()
        queued = self._send(typ, data)
        if queued < 0:
            raise self._conn._error(-1 - queued)

    def pause_reading(self) -> None:
        """A :class:`ConnectionListener` connection: stop reading (TCP then pushes
        back on the peer) until :meth:`resume_reading`. Messages that
        arrived in the same read as the one being handled are still
        delivered; nothing read after. Other connections apply
        ``max_queue`` in :meth:`recv` themselves.

        Raises:
            RuntimeError: not a ConnectionListener connection.
        """
        if self._listener is None:
            raise RuntimeError("pause_reading() is for ConnectionListener connections; recv() applies max_queue")
        if not self._closed:
            self._conn.pause_reading()

    def resume_reading(self) -> None:
        """Reads again after :meth:`pause_reading`."""
        if self._listener is None:
            raise RuntimeError("resume_reading() is for ConnectionListener connections; recv() applies max_queue")
        if not self._closed:
            self._conn.resume_reading()
            self._hub.after()

    async def _wait_drain(self, low: int) -> None:
        if self._drain_fut is not None:
            # Another sender waits already: wait with it.
            await asyncio.shield(self._drain_fut)
            return
        fut = self._drain_fut = self._loop.create_future()
        self._drain_low = low
        self._hub.drain_waiters.add(self)
        self._hub.after()
        try:
            await fut
        finally:
            self._hub.drain_waiters.discard(self)
            if self._drain_fut is fut:
                self._drain_fut = None
        if self._closed:
            raise self._closed_exc()

    def _check_drain(self) -> None:
        fut = self._drain_fut
        if fut is None or fut.done():
            return
        if self._closed or self._hub.queued(self) <= self._drain_low:
            fut.set_result(None)

    async def ping(self, data: Optional[Union[str, bytes]] = None) -> float:
        """Sends a ping and waits for its pong; returns the latency in
        seconds. ``data`` (at most 125 bytes) defaults to 4 unique bytes.

        Raises:
            ConnectionClosed: the connection closed before the pong came.
            ValueError: a ping with the same data is already waiting.
        """
        if data is None:
            payload = struct.pack("!I", next(_ping_ids) & 0xFFFFFFFF)
            while payload in self._pings:
                payload = struct.pack("!I", next(_ping_ids) & 0xFFFFFFFF)
        else:
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            if payload in self._pings:
                raise ValueError("a ping with this data is already waiting for its pong")
        if self._closed:
            raise self._closed_exc()
        fut: asyncio.Future[float] = self._loop.create_future()
        self._conn.ping(payload)
        self._pings[payload] = (fut, time.monotonic())
        try:
            return await fut
        finally:
            if fut.cancelled() or not fut.done():  # cancelled: forget it
                self._pings.pop(payload, None)

    async def pong(self, data: Union[str, bytes] = b"") -> None:
        """Sends an unsolicited pong (at most 125 bytes)."""
        self._conn.pong(data)

    # -- keepalive ---------------------------------------------------------------

    def _keepalive(self) -> None:
        self._ka_timer = None
        if self._closed:
            return
        payload = struct.pack("!I", next(_ping_ids) & 0xFFFFFFFF)
        try:
            self._conn.ping(payload)
        except LibwsError:
            return
        self._ka_payload = payload
        self._pings[payload] = (None, time.monotonic())
        if self._ping_timeout is not None:
            self._ka_timer = self._loop.call_later(self._ping_timeout, self._keepalive_expired, payload)

    def _keepalive_answered(self, sent: float) -> None:
        self._ka_payload = None
        if self._ka_timer is not None:
            self._ka_timer.cancel()
        if self._ping_interval is not None and not self._closed:
            self._ka_timer = self._loop.call_at(
                self._loop.time() + max(0.0, self._ping_interval - (time.monotonic() - sent)), self._keepalive)

    def _keepalive_expired(self, payload: bytes) -> None:
        self._ka_timer = None
        if self._closed or payload != self._ka_payload:
            return
        # websockets' behaviour: 1011, then the close timeout bounds the rest.
        try:
            self._conn.close(1011, "keepalive ping timeout")
            self._hub.after()
        except LibwsError:
            pass

    # -- closing -------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake and waits for the connection to end
        (at most the close timeout). Closing a closed connection does
        nothing. Cancelling the wait does not stop the handshake."""
        self._conn.close(code, reason)
        self._hub.after()
        await asyncio.shield(self._closed_fut)

    async def wait_closed(self) -> None:
        """Waits until the connection has ended."""
        await asyncio.shield(self._closed_fut)

    def abort(self) -> None:
        """Closes the socket without a close handshake (1006)."""
        self._conn.abort()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        await self.close()

    # -- information -----------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection has ended."""
        return self._closed

    @property
    def close_code(self) -> Optional[int]:
        """The peer's close code (1005: none, 1006: no close frame); None while open."""
        return self._conn.close_code

    @property
    def close_reason(self) -> Optional[str]:
        return self._conn.close_reason

    @property
    def subprotocol(self) -> Optional[str]:
        return self._conn.subprotocol

    @property
    def compression(self) -> Optional[str]:
        """``"deflate"`` when permessage-deflate was negotiated, else None."""
        return self._conn.compression

    @property
    def local_address(self) -> Optional[Tuple[str, int]]:
        return self._conn.local_address

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        return self._conn.remote_address

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet taken by the socket."""
        return self._conn.buffered_amount

    def __repr__(self) -> str:
        return f"<libws.asyncio.{type(self).__name__} {'closed' if self._closed else 'open'} " \
               f"remote={self.remote_address}>"


class ClientConnection(Connection):
    """A connection opened by :func:`connect`."""


class ServerConnection(Connection):
    """A connection accepted by :func:`serve`.

    Attributes:
        request: the handshake request (path, headers...).
    """

    request: Request

    @property
    def server(self) -> "Server":
        return self._server

    _server: "Server"


class ConnectionListener:
    """Callback-style handling of a server's connections:
    ``serve(MyListener, host, port)`` makes one instance per connection
    and calls its methods on the loop's thread, from inside the read that
    brought the event: no task and no await per message (the shape of
    picows' ``WSListener``), for servers that answer a message at once::

        class Echo(libws.asyncio.ConnectionListener):
            def on_message(self, message):
                self.connection.send_nowait(message)

        async with libws.asyncio.serve(Echo, "127.0.0.1", 8765) as server:
            await server.serve_forever()

    Calls, in order: :meth:`on_open` once, :meth:`on_message` for each
    message, :meth:`on_close` once, last. ``self.connection`` (a
    :class:`ServerConnection`) is set before ``on_open``; answer with its
    :meth:`~Connection.send_nowait`, or start a task that awaits
    :meth:`~Connection.send` (which waits on ``write_limit``), ``ping()``
    or ``close()`` as usual.

    - The callbacks must not block: every connection of the loop waits
      while one runs.
    - Messages are not queued: ``max_queue`` does not apply and ``recv()``
      raises RuntimeError. To push back on a fast peer, call
      ``connection.pause_reading()`` and later ``resume_reading()`` (the
      rest of the read being handled is still delivered).
    - An exception in ``on_open`` or ``on_message`` is logged and closes
      the connection with 1011; one in ``on_close`` is logged.
    - The server's ``connections``, ``broadcast``, ``close`` and
      keepalive work as with a handler.
    """

    #: the connection this listener handles (set before on_open)
    connection: "ServerConnection"

    def on_open(self) -> None:
        """The connection is open (``self.connection.request`` is the
        handshake request)."""

    def on_message(self, message: Data) -> None:
        """A whole message: ``str`` for text, ``bytes`` for binary."""

    def on_close(self, code: int, reason: str) -> None:
        """The connection ended: the peer's close code and reason (1005:
        none given, 1006: no close frame)."""


class _Dispatch:
    """The libws callbacks of one dial or listener: forward to the
    connection's asyncio side (``conn._aio``)."""

    def on_message(self, conn: LoopConnection, message: Data) -> None:
        conn._aio._on_message(message)  # type: ignore[attr-defined]

    def on_pong(self, conn: LoopConnection, data: bytes) -> None:
        aio = getattr(conn, "_aio", None)
        if aio is not None:
            aio._on_pong(data)

    def on_close(self, conn: LoopConnection, code: int, reason: str) -> None:
        aio = getattr(conn, "_aio", None)
        if aio is not None:
            aio._on_close()
        self._closed(conn, aio)

    def _closed(self, conn: LoopConnection, aio: Optional[Connection]) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------
# connect
# ---------------------------------------------------------------------------


class _Dial(_Dispatch):
    def __init__(self, hub: _Hub, fut: "asyncio.Future[ClientConnection]", opts: Dict[str, Any]) -> None:
        self.hub = hub
        self.fut = fut
        self.opts = opts

    def on_open(self, conn: LoopConnection) -> None:
        if self.fut.done():  # the connect was cancelled meanwhile
            conn.abort()
            return
        ws = ClientConnection(self.hub, conn, **self.opts)
        conn._aio = ws  # type: ignore[attr-defined]
        self.fut.set_result(ws)

    def on_connect_error(self, error: LibwsError) -> None:
        if not self.fut.done():
            self.fut.set_exception(error)
        self.hub.release()

    def _closed(self, conn: LoopConnection, aio: Optional[Connection]) -> None:
        self.hub.release()


def _retryable(exc: BaseException) -> bool:
    """What ``async for ws in connect(...)`` retries: failures that may go
    away (the network, the server restarting), not mistakes."""
    if isinstance(exc, (CertificateError, TLSConfigError, InvalidURI, InvalidArgument)):
        return False
    if isinstance(exc, HandshakeError):
        return exc.status is not None and exc.status >= 500
    return isinstance(exc, (OSError, builtins.TimeoutError, asyncio.TimeoutError))


def _backoff() -> Iterator[float]:
    """Reconnect delays, as websockets computes them (same environment
    variables, with a LIBWS_ prefix)."""
    initial = float(os.environ.get("LIBWS_BACKOFF_INITIAL_DELAY", "5"))
    least = float(os.environ.get("LIBWS_BACKOFF_MIN_DELAY", "3.1"))
    most = float(os.environ.get("LIBWS_BACKOFF_MAX_DELAY", "90"))
    factor = float(os.environ.get("LIBWS_BACKOFF_FACTOR", "1.618"))
    yield random.random() * initial
    delay = least
    while delay < most:
        yield delay
        delay *= factor
    while True:
        yield most


def _needs_resolving(url: str) -> Optional[str]:
    """The host of a ws:// URL when it is a name (not an IP literal or
    localhost), else None."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host or host == "localhost":
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        return host


class connect:
    """Opens a client connection: ``ws = await connect(url)`` or
    ``async with connect(url) as ws:`` (closed on exit).

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        subprotocols: offered subprotocols, in order of preference.
        additional_headers: extra request headers (mapping or pairs).
        origin: the Origin header.
        compression: None (default), ``"deflate"`` or a :class:`libws.Compression`.
        open_timeout: seconds for connecting and the handshake (default 10).
        ping_interval, ping_timeout: keepalive: a ping every
            ``ping_interval`` seconds, the connection closed (1011) when its
            pong is not there within ``ping_timeout`` (default 20 and 20;
            None turns it off).
        close_timeout: how long the close handshake may take (default 10).
        max_size: largest incoming message (default 64 MiB; None: no limit);
            a larger one fails the connection with 1009.
        max_queue: received messages kept before reading pauses (default
            16; None: no limit).
        write_limit: ``send`` waits while more bytes than this are queued
            (default 32 KiB).
        max_buffered: a connection's hard queue limit (default 16 MiB).
        tls: a :class:`libws.ClientTLS` for ``wss://`` (default: the
            system's trust store).
        proxy: ``True`` (default): the environment's proxy variables;
            ``None``: direct; or a proxy URL (see :func:`libws.connect`).
        ca, client_cert: shorthand for ``tls=``, as :func:`libws.connect`.

    Raises:
        ConnectionRefused (a ConnectionRefusedError), ConnectError,
        HandshakeError (with the server's answer), TimeoutError, InvalidURI,
        CertificateError, TLSError, ProxyError.
    """

    def __init__(
        self,
        url: str,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        additional_headers: Optional[HeadersLike] = None,
        origin: Optional[str] = None,
        compression: CompressionArg = None,
        open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        tls: Optional[ClientTLS] = None,
        proxy: ProxyArg = True,
        ca: Optional[PathLike] = None,
        client_cert: ClientCertArg = None,
    ) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        self._url = url
        self._dial_kw: Dict[str, Any] = dict(
            subprotocols=subprotocols, headers=additional_headers, origin=origin, compression=compression,
            timeout=_seconds(open_timeout, "open_timeout"), max_size=max_size, tls=_client_tls(tls, ca, client_cert), proxy=proxy,
        )
        if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1):
            raise ValueError("max_queue must be an int >= 1 or None")
        self._opts: Dict[str, Any] = dict(
            max_queue=max_queue, write_limit=write_limit,
            ping_interval=_seconds(ping_interval, "ping_interval"), ping_timeout=_seconds(ping_timeout, "ping_timeout"),
        )
        self._close_timeout = _seconds(close_timeout, "close_timeout")
        self._max_buffered = max_buffered
        self._ws: Optional[ClientConnection] = None

    async def _open(self) -> ClientConnection:
        if _session_path() and not _aio_session.proxied(self._url, self._dial_kw["proxy"]):
            return await self._open_session()
        loop = asyncio.get_running_loop()
        url = self._url
        hub = _client_hub(loop, self._close_timeout, self._max_buffered)
        fut: asyncio.Future[ClientConnection] = loop.create_future()
        dial = _Dial(hub, fut, self._opts)
        hub.acquire()
        try:
            if _needs_resolving(url):
                # ws_loop_dial resolves the name in the calling thread (the
                # system resolver blocks): call it on asyncio's executor, as
                # loop.getaddrinfo does. Connecting and the handshake still
                # happen on the libws loop.
                job = loop.run_in_executor(None, lambda: hub.ev.dial(url, dial, **self._dial_kw))
                try:
                    await asyncio.shield(job)
                except asyncio.CancelledError:
                    # The dial may go on: on_open then aborts it, and its
                    # end releases the hub; a failed one releases it here.
                    job.add_done_callback(lambda j: j.cancelled() or j.exception() is None or hub.release())
                    fut.cancel()
                    raise
            else:
                hub.ev.dial(url, dial, **self._dial_kw)
        except asyncio.CancelledError:
            if not fut.cancelled():
                hub.release()
            raise
        except BaseException:
            hub.release()
            raise
        hub.after()
        return await fut

    async def _open_session(self) -> ClientConnection:
        kw = dict(self._dial_kw)
        kw.pop("proxy")
        _aio_session.host_port(self._url)  # a bad URL fails before anything is made
        dialer = _aio_session.make_dialer(**kw)
        opts = self._opts
        try:
            return await _aio_session.open_client(  # type: ignore[no-any-return]
                self._url, dialer, kw["timeout"], _close_ms(self._close_timeout), kw["max_size"],
                lambda p: ClientConnection(p, p, **opts))
        finally:
            _ffi.ws_dialer_free(dialer)  # the session made its copy at once

    def __await__(self) -> Generator[Any, None, ClientConnection]:
        return self._open().__await__()

    def __aiter__(self) -> AsyncIterator[ClientConnection]:
        """``async for ws in connect(url):`` reconnects, as in
        ``websockets``: each iteration gets a new connection (closed when
        the iteration ends); a failed connect is retried after a delay
        that grows from ``LIBWS_BACKOFF_INITIAL_DELAY`` seconds (default 5,
        the first one random below it) by ``LIBWS_BACKOFF_FACTOR`` (1.618)
        up to ``LIBWS_BACKOFF_MAX_DELAY`` (90), never under
        ``LIBWS_BACKOFF_MIN_DELAY`` (3.1) after the first. Retried: refused
        or failed connections, timeouts, proxy and I/O errors, and 5xx
        answers; anything else (a bad URL, a refused certificate, a 4xx
        answer) is raised. Leave the loop with ``break``."""
        return self._reconnecting()

    async def _reconnecting(self) -> AsyncIterator[ClientConnection]:
        delays: Optional[Iterator[float]] = None
        while True:
            try:
                ws = await self._open()
            except Exception as exc:
                if not _retryable(exc):
                    raise
                if delays is None:
                    delays = _backoff()
                delay = next(delays)
                logger.info("connect to %s failed (%s); retrying in %.1f s", self._url, exc, delay)
                await asyncio.sleep(delay)
                continue
            delays = None
            try:
                yield ws
            finally:
                await ws.close()

    async def __aenter__(self) -> ClientConnection:
        self._ws = await self._open()
        return self._ws

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if self._ws is not None:
            await self._ws.close()


# ---------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------


class Server(_Dispatch):
    """A WebSocket server in asyncio (from :func:`serve`): every
    connection runs ``handler(connection)`` in its own task and is closed
    (1000) when the handler returns, 1011 when it raises; or, with a
    :class:`ConnectionListener` class for the handler, gets an instance of it whose
    callbacks handle the connection (no task).

    Attributes:
        host, port: where it listens (``port`` is the bound one with port 0).
    """

    host: str
    port: int

    def __init__(self, handler: Union[Handler, Type["ConnectionListener"]], hub: Any,
                 process_request: Optional[ProcessRequest], opts: Dict[str, Any]) -> None:
        self._handler: Any = handler
        #: a ConnectionListener class (one instance per connection, no task)
        self._listens = isinstance(handler, type) and issubclass(handler, ConnectionListener)
        self._hub = hub
        self._process_request = process_request
        self._opts = opts
        self._conns: Set[ServerConnection] = set()
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._closing = False
        self._closed_fut: asyncio.Future[None] = hub.loop.create_future()

    # libws callbacks
    def on_handshake(self, request: Request) -> Union[None, bool, int]:
        if self._closing:
            return 503
        if self._process_request is not None:
            return self._process_request(request)
        return None

    def on_open(self, conn: LoopConnection) -> None:
        self._open_connection(self._hub, conn)

    def _open_connection(self, hub: Any, conn: Any) -> None:  # a LoopConnection or a _SessionProtocol
        listener = self._handler() if self._listens else None
        ws = ServerConnection(hub, conn, listener=listener, **self._opts)
        ws.request = conn.request
        ws._server = self
        conn._aio = ws
        self._conns.add(ws)
        if listener is not None:
            try:
                listener.on_open()
            except Exception:
                logger.exception("exception in ConnectionListener.on_open")
                try:
                    ws._conn.close(1011, "internal error")
                except LibwsError:
                    pass
            self._hub.after()
            return
        task = self._hub.loop.create_task(self._run(ws))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        self._maybe_done()

    def _closed(self, conn: Any, aio: Optional[Connection]) -> None:
        if isinstance(aio, ServerConnection):
            self._conns.discard(aio)
        self._maybe_done()

    async def _run(self, ws: ServerConnection) -> None:
        try:
            await self._handler(ws)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("the connection handler failed")
            try:
                ws._conn.close(1011, "internal error")
            except LibwsError:
                pass
        else:
            try:
                ws._conn.close(1000)
            except LibwsError:
                pass
        finally:
            self._hub.after()

    def _maybe_done(self) -> None:
        if self._closing and not self._conns and not self._tasks and not self._closed_fut.done():
            self._closed_fut.set_result(None)
            self._hub.release()

    # public
    @property
    def connections(self) -> Set[ServerConnection]:
        """The open connections (a copy)."""
        return set(self._conns)

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)

    def broadcast(self, message: Message) -> int:
        """Queues ``message`` on every open connection, encoded once (and
        compressed once per setting); returns how many took it (full or
        closing ones are skipped). Does not wait."""
        return self._hub.broadcast(message)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stops accepting and sends 1001 to every connection (they get the
        close timeout to answer, then TCP is closed). Returns at once:
        await :meth:`wait_closed`."""
        if self._closing:
            return
        self._closing = True
        self._hub.shutdown(self._hub_close_timeout, wait=False)
        self._hub.loop.call_soon(self._maybe_done)

    _hub_close_timeout: float = DEFAULT_CLOSE_TIMEOUT

    async def wait_closed(self) -> None:
        """Waits until the server is closed and every connection (and its
        handler) has ended."""
        await asyncio.shield(self._closed_fut)

    async def serve_forever(self) -> None:
        """Serves until cancelled (then closes the server)."""
        try:
            await asyncio.shield(self._closed_fut)
        finally:
            if not self._closing:
                self.close()
                await self.wait_closed()

    async def __aenter__(self) -> "Server":
        return self

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        self.close()
        await self.wait_closed()

    def __repr__(self) -> str:
        return f"<libws.asyncio.Server {self.host}:{self.port} connections={len(self._conns)}>"


class serve:
    """Starts a server: ``server = await serve(handler, host, port)`` or
    ``async with serve(handler, host, port) as server:`` (closed on exit).

    Args:
        handler: ``async def handler(connection)``; the connection is
            closed when it returns. Or a :class:`ConnectionListener` subclass: one
            instance per connection, its callbacks called from the reads
            (no task per connection, no await per message).
        host, port: where to listen (port 0: a free one, see ``server.port``).
        process_request: ``fn(request)`` before the upgrade: None accepts,
            False refuses with 403, an int answers with that HTTP status
            (400-599).
        check_origin: ``fn(request) -> bool`` (default: libws.same_origin).
        subprotocols, compression, max_size, response_headers: as
            :func:`libws.serve`.
        open_timeout: seconds a client has to complete its handshake.
        ping_interval, ping_timeout, close_timeout, max_queue, write_limit,
        max_buffered: as :func:`connect`.
        tls: a :class:`libws.ServerTLS`: serve ``wss://``.
        certfile, keyfile: shorthand for ``tls=ServerTLS(certfile,
            keyfile)`` (``keyfile`` defaults to ``certfile``).
    """

    def __init__(
        self,
        handler: Union[Handler, Type["ConnectionListener"]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        process_request: Optional[ProcessRequest] = None,
        check_origin: Optional[Callable[[Request], bool]] = None,
        subprotocols: Optional[Sequence[str]] = None,
        compression: CompressionArg = None,
        response_headers: Optional[Sequence[Tuple[str, str]]] = None,
        open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
        write_limit: int = DEFAULT_WRITE_LIMIT,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        tls: Optional[ServerTLS] = None,
        certfile: Optional[PathLike] = None,
        keyfile: Optional[PathLike] = None,
    ) -> None:
        if not callable(handler):
            raise TypeError("handler must be an async function taking the connection, or a ConnectionListener class")
        if process_request is not None and not callable(process_request):
            raise TypeError("process_request must be callable or None")
        self._handler = handler
        self._host = host
        self._port = port
        self._process_request = process_request
        self._listen_kw: Dict[str, Any] = dict(
            subprotocols=subprotocols, check_origin=check_origin, compression=compression,
            response_headers=response_headers, handshake_timeout=_seconds(open_timeout, "open_timeout"),
            max_size=max_size, tls=_server_tls(tls, certfile, keyfile),
        )
        if max_queue is not None and (isinstance(max_queue, bool) or not isinstance(max_queue, int) or max_queue < 1):
            raise ValueError("max_queue must be an int >= 1 or None")
        self._opts: Dict[str, Any] = dict(
            max_queue=max_queue, write_limit=write_limit,
            ping_interval=_seconds(ping_interval, "ping_interval"), ping_timeout=_seconds(ping_timeout, "ping_timeout"),
        )
        self._close_timeout = _seconds(close_timeout, "close_timeout")
        self._max_buffered = max_buffered
        self._server: Optional[Server] = None

    async def _start(self) -> Server:
        if _session_path():
            return await self._start_session()
        loop = asyncio.get_running_loop()
        hub = _Hub(loop, self._close_timeout, self._max_buffered)
        hub.acquire()
        server = Server(self._handler, hub, self._process_request, self._opts)
        server._hub_close_timeout = self._close_timeout if self._close_timeout is not None else 0.0
        try:
            lst = hub.ev.listen(self._host, self._port, server, **self._listen_kw)
        except BaseException:
            hub.close()
            raise
        server.host, server.port = lst.host, lst.port
        hub.after()
        return server

    async def _start_session(self) -> Server:
        loop = asyncio.get_running_loop()
        kw = dict(self._listen_kw)
        check = kw.pop("check_origin")
        if check is not None and not callable(check):
            raise TypeError("check_origin must be callable or None")
        up = _aio_session.make_upgrader(**kw)
        try:
            hub = _aio_session.SessionListener(loop, up, _close_ms(self._close_timeout), kw["max_size"], check)
        except BaseException:
            _ffi.ws_upgrader_free(up)
            raise
        server = Server(self._handler, hub, self._process_request, self._opts)
        hub.server = server
        server._hub_close_timeout = self._close_timeout if self._close_timeout is not None else 0.0
        try:
            server.host, server.port = await hub.start(self._host, self._port)
        except BaseException:
            hub.release()
            raise
        return server

    def __await__(self) -> Generator[Any, None, Server]:
        return self._start().__await__()

    async def __aenter__(self) -> Server:
        self._server = await self._start()
        return self._server

    async def __aexit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                        tb: Optional[TracebackType]) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _close_ms(close_timeout: Optional[float]) -> int:
    """A session's close timeout in ms (None: as good as never)."""
    return 0xFFFFFFFF if close_timeout is None else max(1, int(close_timeout * 1000))


def broadcast(connections: Iterable[Connection], message: Message) -> int:
    """Queues ``message`` on each open connection without waiting (a
    connection whose queue is over its ``write_limit`` or full, or that is
    closed, is skipped, as in ``websockets``); returns how many took it."""
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"broadcast() takes str or bytes-like data, not {type(message).__name__}")
    conns = list(connections)
    n = 0
    for c in conns:
        if c._closed or c._conn.buffered_amount > c._write_limit:
            continue
        try:
            c.send_nowait(message)
            n += 1
        except (ConnectionClosed, QueueFull):
            continue
    seen: Set[int] = set()
    for c in conns:
        if id(c._hub) not in seen:
            seen.add(id(c._hub))
            if not c._hub.closed:
                c._hub.after()
    return n
