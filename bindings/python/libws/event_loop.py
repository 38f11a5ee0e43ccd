"""The event-driven API over libws's ``ws_loop``: one thread serves many
connections, messages arrive in callbacks.

::

    class Echo(libws.EventHandler):
        def on_message(self, conn, message):
            conn.send(message)          # queued, never blocks

    server = libws.serve_events("127.0.0.1", 8765, Echo())
    server.serve_forever()              # or background=True / server.start()

Pieces:

- :class:`EventLoop` owns a ``ws_loop``: :meth:`~EventLoop.listen`,
  :meth:`~EventLoop.dial` (a non-blocking client), :meth:`~EventLoop.run`
  (releases the GIL while it waits in libws), :meth:`~EventLoop.poll`,
  :meth:`~EventLoop.stop` and :meth:`~EventLoop.shutdown` (any thread),
  timers (:meth:`~EventLoop.call_later`, :meth:`~EventLoop.call_every`,
  :meth:`~EventLoop.call_soon`), :meth:`~EventLoop.fileno` and
  :meth:`~EventLoop.next_timeout` to sit inside another event loop.
- :class:`EventHandler`: the callbacks (``on_open``, ``on_message``,
  ``on_close`` ...). Any object with some of these methods will do.
- :class:`LoopConnection`: what the callbacks get; ``send`` queues and
  never blocks, ``close`` starts the close handshake and returns.
- :func:`serve_events` / :class:`EventServer`: a loop with one listener,
  run like :class:`libws.Server`.

Lifetimes: a connection's libws handle is retained from ``on_open`` and
given back once ``on_close`` has run and no call on another thread still
uses it; after ``on_close`` every method raises
:class:`~libws.ConnectionClosed` without touching libws. Every ctypes
callback object lives as long as the :class:`EventLoop`. An exception
raised by a callback never reaches libws: it is logged on the ``libws``
logger (with its traceback), given to the loop's ``exception_handler`` if
one is set, and the connection whose ``on_open``/``on_message``/
``on_ping``/``on_pong``/``on_drain`` raised is closed with 1011; the loop
keeps serving everything else. ``KeyboardInterrupt`` and ``SystemExit``
raised in a callback stop the loop and propagate from :meth:`run`/
:meth:`poll`.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import json
import logging
import math
import threading
import time
import weakref
from ctypes import byref, c_size_t, c_uint16, c_uint64, c_void_p
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from . import _ffi
from .client import CompressionArg, HeadersLike, _compression_options, _configure_dialer, _header_pairs, _response_body
from .client import _response_headers
from .connection import _SENT_CODE, _limit, _ms, _Negotiated, _close_args, _parse_addr
from .exceptions import (
    ConnectionClosed,
    HandshakeError,
    LibwsError,
    TimeoutError,
    closed_error,
    error_for,
)
from .server import Request, _configure_upgrader, _read_request
from .tls import (
    ClientCertArg,
    ClientTLS,
    PathLike,
    ProxyArg,
    ServerTLS,
    _apply_client,
    _apply_server,
    _client_tls,
    _server_tls,
)

logger = logging.getLogger("libws")

__all__ = ["EventLoop", "EventHandler", "LoopConnection", "EventServer", "Listener", "TimerHandle", "serve_events"]

Data = Union[str, bytes]
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
DEFAULT_MAX_BUFFERED = 16 * 1024 * 1024

#: longest wait of the main thread while run() drives the loop on a helper
#: thread, so that Ctrl-C is seen promptly
_SIGNAL_SLICE_MS = 200
#: longest wait of one poll while a shutdown is in progress
_SHUTDOWN_SLICE_MS = 50

_PRIVATE = object()

#: callbacks whose exception closes the connection with 1011
_FATAL = ("on_open", "on_message", "on_ping", "on_pong", "on_drain")

_HANDLER_METHODS = (
    "on_handshake",
    "on_open",
    "on_message",
    "on_ping",
    "on_pong",
    "on_drain",
    "on_error",
    "on_close",
    "on_connect_error",
)


def _ms_nonneg(seconds: Optional[float], what: str) -> int:
    """Seconds -> milliseconds (int64) for the loop setters; None -> 0."""
    if seconds is None:
        return 0
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(seconds).__name__}")
    if seconds != seconds or seconds < 0:
        raise ValueError(f"{what} must be >= 0, not {seconds!r}")
    if math.isinf(seconds):
        return 0
    return min(math.ceil(seconds * 1000), 1 << 62)


class EventHandler:
    """Base class of event-driven handlers: override what you need (every
    method is optional; any object with some of these methods works too).

    All callbacks run on the thread driving the :class:`EventLoop`; they
    should not block (use threads for slow work and send from there:
    :meth:`LoopConnection.send` works from any thread).
    """

    def on_handshake(self, request: Request) -> Union[None, bool, int]:
        """Server only: a client asks to upgrade (``request.path``,
        ``request.headers``...). Return ``None`` or ``True`` to accept,
        ``False`` to refuse with 403, or an HTTP status (400-599)."""
        return None

    def on_open(self, conn: "LoopConnection") -> None:
        """The handshake is done; ``conn`` may send."""

    def on_message(self, conn: "LoopConnection", message: Data) -> None:
        """A whole message: ``str`` for text, ``bytes`` for binary."""

    def on_ping(self, conn: "LoopConnection", data: bytes) -> None:
        """A ping arrived (the pong is already queued)."""

    def on_pong(self, conn: "LoopConnection", data: bytes) -> None:
        """A pong arrived."""

    def on_drain(self, conn: "LoopConnection") -> None:
        """The send queue emptied after the socket pushed back or a send
        raised :class:`~libws.QueueFull`: a good moment to send more (or to
        :meth:`~LoopConnection.resume_reading`)."""

    def on_error(self, conn: "LoopConnection", error: LibwsError) -> None:
        """The connection failed (protocol violation, I/O error, keepalive
        or close timeout); ``on_close`` follows."""

    def on_close(self, conn: "LoopConnection", code: int, reason: str) -> None:
        """The connection ended: the peer's close code and reason (1005
        when its close frame had no code), 1006 without a close frame.
        Called exactly once per opened connection, and last."""

    def on_connect_error(self, error: LibwsError) -> None:
        """Client only (:meth:`EventLoop.dial`): the connection could not be
        opened (:class:`~libws.ConnectError`, :class:`~libws.TimeoutError`,
        :class:`~libws.HandshakeError` with the server's answer...)."""


class _Callbacks:
    """The handler's methods, looked up once (None where it has none)."""

    __slots__ = _HANDLER_METHODS + ("handler",)

    def __init__(self, handler: Any, overrides: Dict[str, Optional[Callable]]) -> None:
        if isinstance(handler, type):
            raise TypeError("handler must be an instance (or any object with on_* methods), not a class")
        self.handler = handler
        has_methods = False
        for name in _HANDLER_METHODS:
            fn = getattr(handler, name, None) if handler is not None else None
            if fn is not None:
                if not callable(fn):
                    raise TypeError(f"handler.{name} must be callable")
                has_methods = True
                # EventHandler's own no-op methods would cost a Python call
                # each: leave them out.
                if getattr(type(handler), name, None) is getattr(EventHandler, name):
                    fn = None
            setattr(self, name, fn)
        if handler is not None and not has_methods:
            if not callable(handler):
                raise TypeError("handler must have on_* methods or be callable as on_message(conn, message)")
            self.on_message = handler
        for name, fn in overrides.items():
            if name not in _HANDLER_METHODS:
                raise TypeError(f"unknown callback {name!r} (expected one of {', '.join(_HANDLER_METHODS)})")
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable")
            if fn is not None:
                setattr(self, name, fn)


@dataclass(frozen=True)
class Listener:
    """A listening socket of an :class:`EventLoop` (from
    :meth:`EventLoop.listen`)."""

    host: str
    port: int  #: the bound port (useful with port=0)

    @property
    def address(self) -> Tuple[str, int]:
        return (self.host, self.port)


class TimerHandle:
    """A timer from :meth:`EventLoop.call_later`, :meth:`~EventLoop.call_every`
    or :meth:`~EventLoop.call_soon`."""

    __slots__ = ("_loop", "_key", "_cid", "cancelled", "__weakref__")

    def __init__(self, loop: "EventLoop", key: int) -> None:
        self._loop = loop
        self._key = key
        self._cid: Optional[int] = None
        self.cancelled = False

    def cancel(self) -> None:
        """Cancels the timer: its function is not called any more (also
        when cancelled from another thread just as it falls due). Any
        thread; cancelling twice, or a finished timer, does nothing."""
        self.cancelled = True
        self._loop._cancel_timer(self)

    def __repr__(self) -> str:
        return f"<libws.TimerHandle {'cancelled' if self.cancelled else 'active'}>"


class LoopConnection(_Negotiated):
    """A connection of an :class:`EventLoop`, handed to the handler's
    callbacks (from ``on_open`` to ``on_close``).

    :meth:`send`, :meth:`ping`, :meth:`pong`, :meth:`close`, :meth:`abort`,
    :meth:`pause_reading` and :meth:`resume_reading` work from any thread
    and never block. After ``on_close`` they raise
    :class:`~libws.ConnectionClosed` (``close``/``abort`` do nothing).

    Free attributes may be set on it to keep per-connection state
    (``conn.name = "alice"``).
    """

    def __init__(self, _handle: int, loop: "EventLoop", cbs: _Callbacks, request: Optional[Request], client: bool, *,
                 _private: object = None) -> None:
        if _private is not _PRIVATE or not isinstance(_handle, int) or not _handle:
            raise TypeError("LoopConnection objects are made by the EventLoop and handed to handler callbacks")
        self._h: Optional[int] = _handle
        self._loop = loop
        self._cbs = cbs
        self._state = threading.Lock()
        self._users = 0  # calls in progress on other threads
        self._closed = False  # on_close has run (or is running)
        self._sent_code: Optional[int] = None
        self._close: Tuple[Optional[int], str] = (None, "")
        self._paused = False
        #: the handshake request (server side; None on a client connection)
        self.request = request
        #: True on a connection opened with :meth:`EventLoop.dial`
        self.is_client = client
        #: the exception of ``on_error`` when the connection failed, else None
        self.error: Optional[LibwsError] = None
        sp = _ffi.ws_conn_subprotocol(_handle)
        self._subprotocol = sp.decode("utf-8", "replace") if sp else None
        self._compression = "deflate" if _ffi.ws_conn_compression_negotiated(_handle) else None
        self._local = _parse_addr(_ffi.copy_string(_ffi.ws_conn_local_addr, _handle, 64))
        self._remote = _parse_addr(_ffi.copy_string(_ffi.ws_conn_remote_addr, _handle, 64))

    # -- handle management -------------------------------------------------
    #
    # On the loop's own thread the handle cannot go away under a call
    # (on_close runs there too), so no count is needed. Other threads
    # count their calls; the handle is given back (ws_conn_free of our
    # retain) by on_close, or by the last such call after it.

    def _enter(self) -> Tuple[int, bool]:
        if self._loop._driver == threading.get_ident():
            h = self._h
            if self._closed or h is None:
                raise self._closed_exc()
            return h, False
        with self._state:
            h = self._h
            if self._closed or h is None:
                raise self._closed_exc()
            self._users += 1
            return h, True

    def _leave(self, counted: bool) -> None:
        if counted:
            with self._state:
                self._users -= 1
                if self._users == 0 and self._closed:
                    self._release_locked()

    def _release_locked(self) -> None:
        h = self._h
        if h is not None:
            self._h = None
            _ffi.ws_conn_free(h)  # gives back the retain of on_open

    def _on_closed(self, code: int, reason: str) -> None:
        """Loop thread, in on_close: no call may start after this."""
        with self._state:
            self._closed = True
            self._close = (code, reason)

    def _release(self) -> None:
        """Loop thread, after the handler's on_close."""
        with self._state:
            if self._users == 0:
                self._release_locked()

    def _closed_exc(self, st: Optional[int] = None, msg: str = "") -> ConnectionClosed:
        code, reason = self._close
        if code is None:
            code = (_SENT_CODE.get(st) if st is not None else None) or self._sent_code or 1006
        return closed_error(code, reason, st, msg or "the connection is closed")

    def _error(self, st: int) -> LibwsError:
        msg = _ffi.last_error()
        if st in (
            _ffi.WS_ERR_CLOSED,
            _ffi.WS_ERR_LOCALLY_CLOSED,
            _ffi.WS_ERR_CLOSE_SENT,
            _ffi.WS_ERR_PROTOCOL,
            _ffi.WS_ERR_INVALID_UTF8,
            _ffi.WS_ERR_INVALID_DATA,
            _ffi.WS_ERR_READ_LIMIT,
        ):
            return self._closed_exc(st, msg)
        return error_for(st, msg)

    # -- sending -------------------------------------------------------------

    def send(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """Queues a message: ``str`` as text, bytes-like as binary. Never
        blocks; the loop writes it. Any thread.

        Raises:
            QueueFull: the queue is at the loop's ``max_buffered``; nothing
                was queued (wait for ``on_drain``).
            ConnectionClosed: the connection is closed or closing.
            TypeError: ``message`` is of another type.
        """
        if isinstance(message, str):
            data = message.encode("utf-8")
            typ = _ffi.WS_TEXT
        elif isinstance(message, bytes):
            data = message
            typ = _ffi.WS_BINARY
        elif isinstance(message, (bytearray, memoryview)):
            data = bytes(message)
            typ = _ffi.WS_BINARY
        else:
            raise TypeError(f"send() takes str or bytes-like data, not {type(message).__name__}")
        h, counted = self._enter()
        try:
            st = _ffi.ws_conn_write_message(h, typ, data, len(data))
            if st != _ffi.WS_OK:
                raise self._error(st)
        finally:
            self._leave(counted)

    def send_json(self, obj: Any, **dumps_kwargs: Any) -> None:
        """Sends ``obj`` as JSON in a text message."""
        self.send(json.dumps(obj, **dumps_kwargs))

    def _control(self, typ: int, data: Union[str, bytes], what: str) -> None:
        if isinstance(data, str):
            payload = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = bytes(data)
        else:
            raise TypeError(f"{what} data must be str or bytes-like, not {type(data).__name__}")
        if len(payload) > _ffi.MAX_CONTROL_PAYLOAD:
            raise ValueError(f"{what} payload is {len(payload)} bytes; at most 125 are allowed")
        h, counted = self._enter()
        try:
            st = _ffi.ws_conn_write_control(h, typ, payload, len(payload), 0)
            if st != _ffi.WS_OK:
                raise self._error(st)
        finally:
            self._leave(counted)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Queues a ping (at most 125 bytes); the pong arrives in ``on_pong``."""
        self._control(_ffi.WS_PING, data, "ping")

    def pong(self, data: Union[str, bytes] = b"") -> None:
        """Queues an unsolicited pong (at most 125 bytes)."""
        self._control(_ffi.WS_PONG, data, "pong")

    # -- closing ---------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Starts the close handshake (queues a close frame with ``code``
        and ``reason``, at most 123 UTF-8 bytes) and returns at once;
        ``on_close`` reports the end (the loop's ``close_timeout`` bounds the
        wait for the peer). Closing a closed or closing connection does
        nothing.

        Raises:
            ValueError: a code that may not be sent, or a too long reason.
        """
        rb, _ = _close_args(code, reason)
        try:
            h, counted = self._enter()
        except ConnectionClosed:
            return
        try:
            st = _ffi.ws_conn_close_graceful(h, code, rb, len(rb), 0)
            if st == _ffi.WS_OK and self._sent_code is None:
                self._sent_code = code
            elif st not in (_ffi.WS_OK, _ffi.WS_ERR_CLOSE_SENT, _ffi.WS_ERR_LOCALLY_CLOSED, _ffi.WS_ERR_CLOSED):
                raise self._error(st)
        finally:
            self._leave(counted)

    def abort(self) -> None:
        """Closes the socket without a close handshake; ``on_close``
        follows with 1006. Does nothing once closed."""
        try:
            h, counted = self._enter()
        except ConnectionClosed:
            return
        try:
            _ffi.ws_conn_close(h)
        finally:
            self._leave(counted)

    # -- flow control ----------------------------------------------------------

    @property
    def buffered_amount(self) -> int:
        """Bytes queued and not yet taken by the socket (0 once closed)."""
        try:
            h, counted = self._enter()
        except ConnectionClosed:
            return 0
        try:
            return _ffi.ws_conn_buffered_amount(h)
        finally:
            self._leave(counted)

    def _pause(self, paused: bool) -> None:
        h, counted = self._enter()
        try:
            st = _ffi.ws_conn_pause_reading(h, paused)
            if st != _ffi.WS_OK:
                raise self._error(st)
            self._paused = paused
        finally:
            self._leave(counted)

    def pause_reading(self) -> None:
        """Stops reading from this connection (its data waits in the
        kernel and TCP pushes back on the peer); messages already read are
        still delivered. Pings are answered only while reading."""
        self._pause(True)

    def resume_reading(self) -> None:
        """Reads again after :meth:`pause_reading`."""
        self._pause(False)

    @property
    def reading_paused(self) -> bool:
        return self._paused

    # -- information -----------------------------------------------------------

    @property
    def loop(self) -> "EventLoop":
        return self._loop

    @property
    def closed(self) -> bool:
        """True once ``on_close`` has run (or is running)."""
        return self._closed

    @property
    def close_code(self) -> Optional[int]:
        """The code ``on_close`` reported; None while open."""
        return self._close[0]

    @property
    def close_reason(self) -> Optional[str]:
        """The reason ``on_close`` reported; None while open."""
        return self._close[1] if self._closed else None

    @property
    def handler(self) -> Any:
        """The handler object of the listener or dial."""
        return self._cbs.handler

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<libws.LoopConnection {state} local={self._local} remote={self._remote}>"


_live_loops: "weakref.WeakSet[EventLoop]" = weakref.WeakSet()


@atexit.register
def _stop_background_loops() -> None:
    # A daemon thread inside ws_loop_run that calls back into a finalizing
    # interpreter would be killed in the middle of libws: stop them first.
    # Loops that nobody drives are closed while the interpreter is whole
    # (their open connections' on_close runs now, not during finalization).
    for lp in list(_live_loops):
        try:
            lp._stop_background(2.0)
            if not lp.running:
                lp.close()
        except BaseException:  # never fail at exit
            pass


class EventLoop:
    """A libws event loop (``ws_loop``): many connections on one thread.

    Drive it with :meth:`run` (until :meth:`stop`), :meth:`start` (run on a
    background thread), or :meth:`poll` (one iteration: a game engine's
    frame, or when :meth:`fileno` is readable inside another event loop).
    Every callback runs on the driving thread. :meth:`stop`,
    :meth:`shutdown`, :meth:`wake`, timers, :meth:`listen`, :meth:`dial`,
    :meth:`broadcast` and every :class:`LoopConnection` send are safe from
    any thread. Usable as a context manager (:meth:`close` on exit).

    Args:
        max_buffered: bytes a connection may have queued; a send past it
            raises :class:`~libws.QueueFull` (default 16 MiB; None: no
            limit). Applies to connections opened afterwards.
        ping_interval: send a ping after this many seconds without input
            (None: off, the default) ...
        ping_timeout: ... and fail the connection (1006, ``on_error`` with
            TimeoutError) when nothing arrives within this many seconds
            after it (default: ``ping_interval``).
        idle_timeout: close (1001) a connection that received no message for
            this many seconds (None: off).
        close_timeout: how long a close handshake may take before the
            socket is closed anyway (default 5 s).
        exception_handler: ``fn(exception, callback_name, connection)``,
            called after an exception in a callback or timer has been logged
            (``connection`` is None for timers and dial errors).
    """

    def __init__(
        self,
        *,
        max_buffered: Optional[int] = DEFAULT_MAX_BUFFERED,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = None,
        idle_timeout: Optional[float] = None,
        close_timeout: Optional[float] = 5.0,
        exception_handler: Optional[Callable[[BaseException, str, Optional[LoopConnection]], Any]] = None,
    ) -> None:
        if max_buffered is None:
            mb = 0
        elif isinstance(max_buffered, bool) or not isinstance(max_buffered, int):
            raise TypeError("max_buffered must be an int or None")
        elif max_buffered < 1 or max_buffered >= 1 << 63:
            raise ValueError(f"max_buffered must be at least 1 (None: no limit), not {max_buffered}")
        else:
            mb = max_buffered
        iv = _ms_nonneg(ping_interval, "ping_interval")
        to = _ms_nonneg(ping_timeout if ping_timeout is not None else ping_interval, "ping_timeout")
        idle = _ms(idle_timeout)  # None or inf -> -1: off
        ct = _ms_nonneg(close_timeout, "close_timeout")
        if exception_handler is not None and not callable(exception_handler):
            raise TypeError("exception_handler must be callable or None")
        self.exception_handler = exception_handler
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)  # _users dropped to 0
        self._users = 0  # calls in progress on the handle (other than run/poll)
        self._closing = False
        self._driver: Optional[int] = None  # thread id inside run()/poll()
        self._stop = False
        self._shutdown_requested = False
        self._pending: Optional[BaseException] = None  # KeyboardInterrupt/SystemExit from a callback
        self._thread: Optional[threading.Thread] = None
        # Set when that thread has finished driving the loop. Waited on
        # instead of Thread.join: a join interrupted by Ctrl-C can mark a
        # running thread as stopped (CPython 3.11), this cannot.
        self._done = threading.Event()
        self._done.set()
        self._conns: Dict[int, LoopConnection] = {}  # by handle address
        # by key (the C user data): listeners (kind "listen", with their
        # check_origin), accepted handshakes ("accept", with the request)
        # and dials ("dial") until their connection opens
        self._records: Dict[int, Tuple[float, str, _Callbacks, Any]] = {}
        self._timers: Dict[int, Tuple[Callable, tuple, bool, TimerHandle]] = {}
        self._keys = itertools.count(1)
        self.listeners: List[Listener] = []
        # The C callbacks: one set per loop, alive as long as the loop
        # (user data tells listeners and dials apart).
        self._c_handshake = _ffi.ON_HANDSHAKE(self._t_handshake)
        self._c_open = _ffi.ON_OPEN(self._t_open)
        self._c_message = _ffi.ON_MESSAGE(self._t_message)
        self._c_ping = _ffi.ON_CONTROL(self._t_ping)
        self._c_pong = _ffi.ON_CONTROL(self._t_pong)
        self._c_drain = _ffi.ON_DRAIN(self._t_drain)
        self._c_error = _ffi.ON_ERROR(self._t_error)
        self._c_close = _ffi.ON_CLOSE(self._t_close)
        self._c_dial_error = _ffi.ON_DIAL_ERROR(self._t_dial_error)
        self._c_timer = _ffi.TIMER_FN(self._t_timer)
        h = c_void_p()
        st = _ffi.ws_loop_new(byref(h))
        if st != _ffi.WS_OK:
            raise error_for(st)
        self._h: Optional[int] = h.value
        for st in (
            _ffi.ws_loop_set_max_buffered(self._h, mb),
            _ffi.ws_loop_set_keepalive(self._h, iv, to),
            _ffi.ws_loop_set_idle_timeout(self._h, idle),
            _ffi.ws_loop_set_close_timeout(self._h, ct),
        ):
            if st != _ffi.WS_OK:
                err = error_for(st)
                self.close()
                raise err
        _live_loops.add(self)

    # -- the handle ------------------------------------------------------------

    def _enter(self) -> int:
        with self._lock:
            if self._h is None or self._closing:
                raise RuntimeError("the event loop is closed")
            self._users += 1
            return self._h

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    @property
    def is_closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Frees the loop: connections still open are closed at once
        (``on_close`` with 1006 runs on this thread), listeners stop.
        Idempotent. Not while the loop runs: :meth:`stop` (or
        :meth:`shutdown`) it and let :meth:`run` return first.

        Raises:
            RuntimeError: the loop is being driven (also from a callback).
        """
        with self._lock:
            if self._h is None or self._closing:
                return
            if self._driver is not None:
                raise RuntimeError("close() while the event loop is running: stop it first")
            self._closing = True  # from now on every other call refuses
            while self._users:
                self._idle.wait()
            h = self._h
            self._driver = threading.get_ident()  # close callbacks run here
        # Not under the lock: a callback may wait for a thread that calls
        # into the loop (it gets RuntimeError, at once).
        try:
            _ffi.ws_loop_free(h)
        finally:
            with self._lock:
                self._driver = None
                self._h = None
        self._timers.clear()
        self._records.clear()
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending

    def __enter__(self) -> "EventLoop":
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._stop_background(5.0)
        self.close()

    def __del__(self) -> None:
        try:
            if self._h is not None and self._driver is None and not self._users:
                self.close()
        except BaseException:
            pass

    # -- driving -----------------------------------------------------------------

    def _begin_drive(self) -> int:
        with self._lock:
            if self._h is None or self._closing:
                raise RuntimeError("the event loop is closed")
            if self._driver is not None:
                if self._driver == threading.get_ident():
                    raise RuntimeError("run()/poll() called from a callback of the same loop")
                raise RuntimeError("the event loop is already being driven by another thread")
            self._driver = threading.get_ident()
            return self._h

    def _end_drive(self) -> None:
        with self._lock:
            self._driver = None

    def _raise_pending(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending

    def poll(self, timeout: Optional[float] = 0) -> None:
        """One iteration: processes what is ready (reads, callbacks, timers,
        timeouts, writes), waiting at most ``timeout`` seconds for something
        to happen (0, the default: never block; None: until something
        does). The GIL is released while libws waits.

        Raises:
            RuntimeError: another thread is driving the loop, or called
                from one of its callbacks.
            KeyboardInterrupt, SystemExit: raised by a callback.
        """
        ms = -1 if timeout is None else _ms_nonneg(timeout, "timeout")
        h = self._begin_drive()
        try:
            st = _ffi.ws_loop_poll(h, ms)
        finally:
            self._end_drive()
        self._raise_pending()
        if st != _ffi.WS_OK:
            raise error_for(st)

    def run(self) -> None:
        """Runs the loop until :meth:`stop` (from any thread or a callback),
        or until a :meth:`shutdown` has closed every connection. If
        :meth:`stop` was called while the loop was not running, the next
        ``run`` does one iteration and returns.

        The GIL is released while libws waits; callbacks take it back.
        Called in the main thread, the loop runs on a helper thread while
        this one waits, so that Ctrl-C (KeyboardInterrupt, or whatever a
        signal handler raises) lands here and never inside a callback: the
        loop is stopped (connections stay open) and the exception
        propagates.

        Raises:
            RuntimeError: the loop is already running, or is closed.
            KeyboardInterrupt, SystemExit: from a signal or a callback (the
                loop is left as it is: call :meth:`run` again, or
                :meth:`shutdown`, or :meth:`close`).
        """
        if threading.current_thread() is not threading.main_thread():
            self._run_here()
            return
        with self._lock:
            if self._h is None or self._closing:
                raise RuntimeError("the event loop is closed")
            if self._driver is not None or not self._done.is_set():
                raise RuntimeError("the event loop is already being driven by another thread")
            box: List[BaseException] = []
            done = self._done = threading.Event()
            t = threading.Thread(target=self._run_capture, args=(box, done), name="libws-event-loop", daemon=True)
            self._thread = t
        t.start()
        try:
            while not done.wait(_SIGNAL_SLICE_MS / 1000):
                pass
        except BaseException:
            self.stop()
            done.wait()
            raise
        if box:
            raise box[0]

    def _run_capture(self, box: List[BaseException], done: threading.Event) -> None:
        try:
            self._run_here()
        except BaseException as e:
            box.append(e)
        finally:
            done.set()

    def _run_here(self) -> None:
        h = self._begin_drive()
        try:
            while True:
                # A shutdown requested before this poll started is applied
                # by it (its command is queued before the flag is set);
                # then poll in short slices until every connection is gone.
                shutting = self._shutdown_requested
                st = _ffi.ws_loop_poll(h, _SHUTDOWN_SLICE_MS if shutting else -1)
                self._raise_pending()
                if st != _ffi.WS_OK:
                    raise error_for(st)
                if self._stop:
                    self._stop = False
                    return
                if shutting and _ffi.ws_loop_connection_count(h) == 0:
                    self._shutdown_requested = False
                    return
        finally:
            self._end_drive()

    def stop(self) -> None:
        """Makes :meth:`run` return after its current iteration (or the next
        :meth:`run` at once, when none is running). Connections stay open.
        Any thread, also a callback."""
        self._stop = True
        try:
            h = self._enter()
        except RuntimeError:
            return
        try:
            _ffi.ws_loop_wake(h)
        finally:
            self._leave()

    def wake(self) -> None:
        """Wakes a blocked :meth:`run`/:meth:`poll` (it processes what is
        ready and goes on). Any thread."""
        h = self._enter()
        try:
            _ffi.ws_loop_wake(h)
        finally:
            self._leave()

    def shutdown(self, timeout: float = 5.0, wait: bool = True) -> None:
        """Graceful shutdown: stops listening, drops handshakes in progress
        (dials get ``on_connect_error``), sends close 1001 to every open
        connection and waits up to ``timeout`` seconds for their close
        handshakes, then closes the rest (1006); :meth:`run` returns when
        everything is closed.

        With ``wait`` (the default) this call also waits for that: it joins
        the :meth:`start` thread, or, when nobody drives the loop, runs it
        here until done. From a callback (or with ``wait=False``) it only
        starts the shutdown. Idempotent; any thread.
        """
        ms = _ms_nonneg(timeout, "timeout")
        h = self._enter()
        try:
            st = _ffi.ws_loop_shutdown(h, ms)
            if st == _ffi.WS_OK:
                # After the command is queued (see run()); the wake ends a
                # poll that is waiting without a limit.
                self._shutdown_requested = True
                _ffi.ws_loop_wake(h)
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            raise error_for(st)
        if not wait or self._driver == threading.get_ident():
            return
        t = self._thread
        if t is not None and not self._done.is_set() and t is not threading.current_thread():
            if not self._done.wait(ms / 1000 + 5):
                logger.warning("the event loop thread did not finish the shutdown in time")
            return
        with self._lock:
            free = self._driver is None and self._h is not None
        if free:
            try:
                self.run()
            except RuntimeError:  # another thread started driving meanwhile
                pass

    def start(self) -> "EventLoop":
        """Runs the loop on a background (daemon) thread; returns the loop.
        :meth:`stop` or :meth:`shutdown` ends that thread; :meth:`join`
        waits for it."""
        with self._lock:
            if self._h is None:
                raise RuntimeError("the event loop is closed")
            if self._driver is not None or not self._done.is_set():
                raise RuntimeError("the event loop was already started")
            done = self._done = threading.Event()
            self._thread = threading.Thread(target=self._thread_main, args=(done,), name="libws-event-loop",
                                            daemon=True)
        self._thread.start()
        return self

    def _thread_main(self, done: threading.Event) -> None:
        try:
            self._run_here()
        except BaseException:
            logger.exception("the event loop thread ended with an exception")
        finally:
            done.set()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits for the :meth:`start` thread to end; True when it has."""
        return self._done.wait(timeout)

    def _stop_background(self, timeout: float) -> None:
        t = self._thread
        if t is not None and not self._done.is_set() and t is not threading.current_thread():
            self.stop()
            self._done.wait(timeout)

    @property
    def running(self) -> bool:
        """True while a thread is inside :meth:`run` or :meth:`poll`."""
        return self._driver is not None

    def in_loop_thread(self) -> bool:
        """True when called on the thread driving the loop (in a callback)."""
        return self._driver == threading.get_ident()

    # -- foreign event loops -------------------------------------------------------

    def fileno(self) -> int:
        """The loop's descriptor (epoll): when it is readable, call
        ``poll(0)``; also when :meth:`next_timeout` has passed. For
        ``selectors``, ``asyncio``'s ``add_reader`` and the like."""
        h = self._enter()
        try:
            return _ffi.ws_loop_fd(h)
        finally:
            self._leave()

    def next_timeout(self) -> Optional[float]:
        """Seconds until the loop has work of its own (timers, timeouts):
        0 = poll now, None = only when :meth:`fileno` is readable."""
        h = self._enter()
        try:
            ms = _ffi.ws_loop_next_timeout_ms(h)
        finally:
            self._leave()
        return None if ms < 0 else ms / 1000

    # -- listening and dialing -------------------------------------------------------

    def listen(
        self,
        host: str,
        port: int,
        handler: Any = None,
        subprotocols: Optional[Sequence[str]] = None,
        check_origin: Optional[Callable[[Request], bool]] = None,
        *,
        response_headers: Optional[Sequence[Tuple[str, str]]] = None,
        handshake_timeout: Optional[float] = None,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        compression: CompressionArg = None,
        tls: Optional[ServerTLS] = None,
        certfile: Optional[PathLike] = None,
        keyfile: Optional[PathLike] = None,
        **callbacks: Optional[Callable],
    ) -> Listener:
        """Listens on ``host``:``port`` (0: a free port, see
        ``Listener.port``); connections get ``handler``'s callbacks (an
        :class:`EventHandler` or any object with some ``on_*`` methods, or a
        plain function ``on_message(conn, message)``), and
        ``on_open=...``-style keyword callbacks override or add to them.
        Any thread.

        Args:
            subprotocols: supported subprotocols in order of preference.
            check_origin: ``check_origin(request) -> bool`` (False: 403).
                Default: :func:`libws.same_origin`.
            response_headers: extra headers for every 101 answer.
            handshake_timeout: seconds a client has to complete its
                handshake (default 10).
            max_size: largest incoming message (None: no limit); a larger
                one fails the connection with 1009.
            compression: ``None``, ``"deflate"`` or a :class:`libws.Compression`.
            tls: a :class:`libws.ServerTLS`: serve ``wss://``.
            certfile, keyfile: shorthand for ``tls=ServerTLS(certfile,
                keyfile)`` (``keyfile`` defaults to ``certfile``).
        """
        tls = _server_tls(tls, certfile, keyfile)
        cbs = _Callbacks(handler, callbacks)
        if not isinstance(host, str):
            raise TypeError("host must be a str")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, not {port!r}")
        if check_origin is not None and not callable(check_origin):
            raise TypeError("check_origin must be callable or None")
        copts = _compression_options(compression)
        limit = _limit(max_size, "max_size")
        extra = _header_pairs(response_headers)
        key = next(self._keys)
        c = _ffi.ws_loop_callbacks()
        c.on_handshake = self._c_handshake
        self._fill(c, cbs)
        up = _ffi.ws_upgrader_new()
        bound = c_uint16()
        h = self._enter()
        try:
            st = _ffi.WS_OK
            if check_origin is not None:
                # The Python rule runs in on_handshake instead.
                st = _ffi.ws_upgrader_set_check_origin(up, _ACCEPT_ANY_ORIGIN, None)
            if st != _ffi.WS_OK:
                raise error_for(st)
            _configure_upgrader(up, subprotocols=subprotocols, extra=extra, handshake_timeout=handshake_timeout,
                                copts=copts, max_size=max_size, limit=limit)
            _apply_server(up, tls)
            # The listener's record (its check_origin in the last place);
            # on_handshake makes one per accepted request.
            self._records[key] = (math.inf, "listen", cbs, check_origin)
            st = _ffi.ws_loop_listen(h, up, host.encode("utf-8"), port, byref(c), key, byref(bound))
            if st != _ffi.WS_OK:
                self._records.pop(key, None)
                raise error_for(st)
        finally:
            _ffi.ws_upgrader_free(up)
            self._leave()
        lst = Listener(host, bound.value)
        self.listeners.append(lst)
        return lst

    def _fill(self, c: "_ffi.ws_loop_callbacks", cbs: _Callbacks) -> None:
        # on_open and on_close always: they manage the connection objects.
        c.on_open = self._c_open
        c.on_close = self._c_close
        c.on_error = self._c_error
        if cbs.on_message is not None:
            c.on_message = self._c_message
        if cbs.on_ping is not None:
            c.on_ping = self._c_ping
        if cbs.on_pong is not None:
            c.on_pong = self._c_pong
        if cbs.on_drain is not None:
            c.on_drain = self._c_drain

    def dial(
        self,
        url: str,
        handler: Any = None,
        subprotocols: Optional[Sequence[str]] = None,
        headers: Optional[HeadersLike] = None,
        timeout: Optional[float] = None,
        compression: CompressionArg = None,
        *,
        origin: Optional[str] = None,
        max_size: Optional[int] = DEFAULT_MAX_SIZE,
        tls: Optional[ClientTLS] = None,
        proxy: ProxyArg = True,
        ca: Optional[PathLike] = None,
        client_cert: ClientCertArg = None,
        **callbacks: Optional[Callable],
    ) -> None:
        """Opens a client connection through the loop, without blocking
        (the host name is resolved in this call). The outcome arrives on
        the loop's thread: ``on_open(conn)``, or
        ``on_connect_error(error)`` (ConnectError, TimeoutError, or
        HandshakeError with the server's answer). ``handler`` and keyword
        callbacks as for :meth:`listen`. Any thread.

        ``tls``, ``proxy``, ``ca`` and ``client_cert`` as for
        :func:`libws.connect`.

        Raises:
            InvalidURI: ``url`` is not a usable ws:// or wss:// URL.
            ConnectError: the host name could not be resolved.
            TLSConfigError: a file of ``tls`` could not be used.
        """
        tls = _client_tls(tls, ca, client_cert)
        cbs = _Callbacks(handler, callbacks)
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        ub = url.encode("utf-8")
        if b"\0" in ub:
            raise ValueError("url must not contain NUL")
        copts = _compression_options(compression)
        limit = _limit(max_size, "max_size")
        pairs = _header_pairs(headers, origin)
        hdrs = (_ffi.ws_header * max(len(pairs), 1))()
        keep = []
        for i, (k, v) in enumerate(pairs):
            kb, vb = k.encode("latin-1"), v.encode("latin-1")
            if b"\0" in kb or b"\0" in vb:
                raise ValueError("header names and values must not contain NUL")
            keep.append((kb, vb))
            hdrs[i].name = kb
            hdrs[i].value = vb
        c = _ffi.ws_loop_callbacks()
        self._fill(c, cbs)
        c.on_dial_error = self._c_dial_error
        key = next(self._keys)
        self._records[key] = (math.inf, "dial", cbs, None)
        dialer = _ffi.ws_dialer_new()
        if not dialer:
            raise MemoryError("ws_dialer_new failed")
        h = self._enter()
        try:
            try:
                _configure_dialer(dialer, subprotocols=subprotocols, timeout=timeout, max_size=max_size,
                                  limit=limit, copts=copts)
                _apply_client(dialer, tls, proxy)
                st = _ffi.ws_loop_dial(h, dialer, ub, hdrs, len(pairs), byref(c), key)
                if st != _ffi.WS_OK:
                    raise error_for(st)
            except BaseException:
                # No dial: its record goes (also when a setting was refused).
                self._records.pop(key, None)
                raise
        finally:
            _ffi.ws_dialer_free(dialer)
            self._leave()

    # -- everyone ----------------------------------------------------------------------

    @property
    def connections(self) -> List[LoopConnection]:
        """The open connections (a snapshot)."""
        return list(self._conns.values())

    @property
    def connection_count(self) -> int:
        """Open connections (handshake done, ``on_close`` not yet run). Any thread."""
        try:
            h = self._enter()
        except RuntimeError:
            return 0
        try:
            return _ffi.ws_loop_connection_count(h)
        finally:
            self._leave()

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview]) -> int:
        """Queues ``message`` (str: text, bytes-like: binary) on every open
        connection, encoded once (compressed once per setting); returns how
        many took it (a full or closing connection is skipped). Any thread."""
        pm = _prepared(message)
        n = c_size_t()
        try:
            h = self._enter()
            try:
                st = _ffi.ws_loop_broadcast(h, pm, byref(n))
            finally:
                self._leave()
        finally:
            _ffi.ws_prepared_message_free(pm)
        if st != _ffi.WS_OK:
            raise error_for(st)
        return n.value

    # -- timers --------------------------------------------------------------------------

    def _add_timer(self, delay: float, interval: float, fn: Callable, args: tuple) -> TimerHandle:
        if not callable(fn):
            raise TypeError("the timer's function must be callable")
        d = _ms_nonneg(delay, "delay")
        iv = _ms_nonneg(interval, "interval")
        key = next(self._keys)
        handle = TimerHandle(self, key)
        self._timers[key] = (fn, args, iv > 0, handle)
        cid = c_uint64()
        try:
            h = self._enter()
        except RuntimeError:
            self._timers.pop(key, None)
            raise
        try:
            st = _ffi.ws_loop_timer_add(h, d, iv, self._c_timer, key, byref(cid))
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            self._timers.pop(key, None)
            raise error_for(st)
        handle._cid = cid.value
        if handle.cancelled:  # cancelled by another thread meanwhile
            self._cancel_timer(handle)
        return handle

    def call_later(self, delay: float, fn: Callable, *args: Any) -> TimerHandle:
        """Calls ``fn(*args)`` on the loop's thread after ``delay`` seconds.
        Any thread."""
        return self._add_timer(delay, 0, fn, args)

    def call_every(self, interval: float, fn: Callable, *args: Any, delay: Optional[float] = None) -> TimerHandle:
        """Calls ``fn(*args)`` on the loop's thread every ``interval``
        seconds (the first time after ``delay``, default ``interval``) until
        the handle is cancelled. Any thread."""
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
            raise ValueError(f"interval must be a number of seconds above 0, not {interval!r}")
        return self._add_timer(interval if delay is None else delay, interval, fn, args)

    def call_soon(self, fn: Callable, *args: Any) -> TimerHandle:
        """Calls ``fn(*args)`` on the loop's thread as soon as possible (in
        its next iteration; wakes it). Any thread: the way to hand work to
        the loop."""
        return self._add_timer(0, 0, fn, args)

    call_soon_threadsafe = call_soon

    def _cancel_timer(self, handle: TimerHandle) -> None:
        self._timers.pop(handle._key, None)
        cid = handle._cid
        if cid is None:
            return
        try:
            h = self._enter()
        except RuntimeError:
            return
        try:
            _ffi.ws_loop_timer_cancel(h, cid)
        finally:
            self._leave()

    # -- reporting -----------------------------------------------------------------------

    def _report(self, e: BaseException, where: str, conn: Optional[LoopConnection]) -> None:
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            # Not an error of the handler: stop the loop and raise it from
            # run()/poll() on this thread.
            if self._pending is None:
                self._pending = e
            self._stop = True
            if self._h is not None:
                _ffi.ws_loop_stop(self._h)
            return
        try:
            logger.error(
                "exception in %s%s", where, f" ({conn!r})" if conn is not None else "",
                exc_info=(type(e), e, e.__traceback__),
            )
            if self.exception_handler is not None:
                try:
                    self.exception_handler(e, where, conn)
                except BaseException as e2:
                    logger.error("exception in the exception_handler", exc_info=(type(e2), e2, e2.__traceback__))
            if conn is not None and where in _FATAL and not conn._closed:
                conn.close(1011, "internal error")
        except BaseException:  # never into C
            pass

    # -- trampolines (called by libws on the driving thread) ----------------------------

    def _t_handshake(self, req, ud, conn_ud) -> int:
        try:
            rec = self._records.get(ud or 0)
            if rec is None:
                return 500
            _, _, cbs, check = rec
            request = _read_request(req)
            if check is not None and not check(request):
                return 403
            if cbs.on_handshake is not None:
                verdict = cbs.on_handshake(request)
                if verdict is False:
                    return 403
                if verdict is not None and verdict is not True:
                    if isinstance(verdict, bool) or not isinstance(verdict, int) or not 400 <= verdict <= 599:
                        raise ValueError(f"on_handshake must return None, a bool or an HTTP status 400-599, not {verdict!r}")
                    return verdict
            key = next(self._keys)
            now = time.monotonic()
            if len(self._records) > 4096:  # forget handshakes that never opened
                for k in [k for k, r in self._records.items() if r[1] == "accept" and now - r[0] > 60]:
                    del self._records[k]
            self._records[key] = (now, "accept", cbs, request)
            conn_ud[0] = key
            return 0
        except BaseException as e:
            self._report(e, "on_handshake", None)
            return 500

    def _t_open(self, h, ud) -> None:
        conn = None
        try:
            rec = self._records.pop(ud or 0, None)
            if rec is None or _ffi.ws_conn_retain(h) != _ffi.WS_OK:
                _ffi.ws_conn_close(h)
                return
            _, kind, cbs, request = rec
            conn = LoopConnection(h, self, cbs, request if kind == "accept" else None, kind == "dial", _private=_PRIVATE)
            self._conns[h] = conn
            if cbs.on_open is not None:
                cbs.on_open(conn)
        except BaseException as e:
            self._report(e, "on_open", conn)

    def _t_message(self, h, typ, data, n, ud) -> None:
        conn = self._conns.get(h)
        if conn is None:
            return
        try:
            raw = ctypes.string_at(data, n) if n else b""
            conn._cbs.on_message(conn, raw.decode("utf-8") if typ == _ffi.WS_TEXT else raw)
        except BaseException as e:
            self._report(e, "on_message", conn)

    def _t_ping(self, h, data, n, ud) -> None:
        conn = self._conns.get(h)
        if conn is None:
            return
        try:
            conn._cbs.on_ping(conn, ctypes.string_at(data, n) if n else b"")
        except BaseException as e:
            self._report(e, "on_ping", conn)

    def _t_pong(self, h, data, n, ud) -> None:
        conn = self._conns.get(h)
        if conn is None:
            return
        try:
            conn._cbs.on_pong(conn, ctypes.string_at(data, n) if n else b"")
        except BaseException as e:
            self._report(e, "on_pong", conn)

    def _t_drain(self, h, ud) -> None:
        conn = self._conns.get(h)
        if conn is None:
            return
        try:
            conn._cbs.on_drain(conn)
        except BaseException as e:
            self._report(e, "on_drain", conn)

    def _t_error(self, h, st, msg, ud) -> None:
        conn = self._conns.get(h)
        if conn is None:
            return
        try:
            text = msg.decode("utf-8", "replace") if msg else ""
            if st == _ffi.WS_ERR_TIMEOUT:
                err: LibwsError = TimeoutError(text or "timed out", st)
            elif st in _SENT_CODE:
                err = closed_error(_SENT_CODE[st], "", st, text)
            else:
                err = error_for(st, text or _ffi.status_str(st))
            conn.error = err
            if conn._cbs.on_error is not None:
                conn._cbs.on_error(conn, err)
        except BaseException as e:
            self._report(e, "on_error", conn)

    def _t_close(self, h, code, reason, n, ud) -> None:
        conn = self._conns.pop(h, None)
        if conn is None:
            return
        try:
            text = (ctypes.string_at(reason, n) if n else b"").decode("utf-8", "replace")
            conn._on_closed(code, text)
            if conn._cbs.on_close is not None:
                conn._cbs.on_close(conn, code, text)
        except BaseException as e:
            self._report(e, "on_close", conn)
        finally:
            conn._release()

    def _t_dial_error(self, st, msg, resp, ud) -> None:
        rec = self._records.pop(ud or 0, None)
        if rec is None:
            return
        cbs = rec[2]
        try:
            text = msg.decode("utf-8", "replace") if msg else ""
            if resp:
                status = _ffi.ws_response_status(resp)
                err: LibwsError = HandshakeError(
                    text or f"the server answered HTTP {status}", st, status=status,
                    headers=_response_headers(resp), body=_response_body(resp),
                )
            else:
                err = error_for(st, text or _ffi.status_str(st))
            if cbs.on_connect_error is not None:
                cbs.on_connect_error(err)
            else:
                logger.warning("event loop dial failed: %s", err)
        except BaseException as e:
            self._report(e, "on_connect_error", None)

    def _t_timer(self, lp, cid, ud) -> None:
        entry = self._timers.get(ud or 0)
        if entry is None:
            # Cancelled in Python: make sure libws forgets it too.
            if lp:
                _ffi.ws_loop_timer_cancel(lp, cid)
            return
        fn, args, repeat, handle = entry
        if not repeat:
            self._timers.pop(ud, None)
        try:
            fn(*args)
        except BaseException as e:
            self._report(e, f"timer {getattr(fn, '__qualname__', fn)!s}", None)

    def __repr__(self) -> str:
        state = "closed" if self._h is None else ("running" if self._driver is not None else "idle")
        return f"<libws.EventLoop {state} connections={len(self._conns)}>"


def _prepared(message: Union[str, bytes, bytearray, memoryview]) -> int:
    """A ws_prepared_message for a broadcast (str: text, bytes-like:
    binary); free it with ws_prepared_message_free."""
    if isinstance(message, str):
        data, typ = message.encode("utf-8"), _ffi.WS_TEXT
    elif isinstance(message, (bytes, bytearray, memoryview)):
        data, typ = bytes(message), _ffi.WS_BINARY
    else:
        raise TypeError(f"broadcast() takes str or bytes-like data, not {type(message).__name__}")
    pm = c_void_p()
    st = _ffi.ws_prepared_message_new(typ, data, len(data), byref(pm))
    if st != _ffi.WS_OK:
        raise error_for(st)
    return pm.value or 0


# Installed as the Upgrader's origin check when check_origin= is given:
# the Python rule then runs in on_handshake (module lifetime: never freed).
_ACCEPT_ANY_ORIGIN = _ffi.CHECK_ORIGIN(lambda req, ud: True)


class EventServer:
    """An event-driven server: an :class:`EventLoop` with one listener,
    run like :class:`libws.Server`. Create with :func:`serve_events`.

    Attributes:
        loop: the :class:`EventLoop` (timers, broadcast, more listeners).
        port, address: where it listens.
    """

    def __init__(self, loop: EventLoop, listener: Listener, owns_loop: bool) -> None:
        self.loop = loop
        self.listener = listener
        self.port = listener.port
        self.host = listener.host
        self.address = listener.address
        self._owns = owns_loop

    def serve_forever(self) -> None:
        """Runs the loop on this thread until :meth:`shutdown` (from another
        thread or a callback) or :meth:`EventLoop.stop`. Ctrl-C
        (KeyboardInterrupt) shuts the server down (clients get 1001) and
        propagates."""
        try:
            self.loop.run()
        except (KeyboardInterrupt, SystemExit):
            self.shutdown()
            raise

    def start(self) -> "EventServer":
        """Runs the loop on a background (daemon) thread."""
        self.loop.start()
        return self

    def shutdown(self, timeout: float = 5.0) -> None:
        """Graceful shutdown: open connections get close 1001 and up to
        ``timeout`` seconds to answer; waits for it (unless called from a
        callback), then frees the loop if this server created it.
        Idempotent; any thread."""
        lp = self.loop
        if lp.is_closed:
            return
        try:
            lp.shutdown(timeout)
        except RuntimeError:  # closed meanwhile
            return
        if self._owns and not lp.in_loop_thread() and not lp.running:
            lp.close()

    close = shutdown

    @property
    def connections(self) -> List[LoopConnection]:
        return self.loop.connections

    def broadcast(self, message: Union[str, bytes]) -> int:
        """:meth:`EventLoop.broadcast`."""
        return self.loop.broadcast(message)

    def __enter__(self) -> "EventServer":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return f"<libws.EventServer {self.host}:{self.port}>"


def serve_events(
    host: str,
    port: int,
    handler: Any = None,
    subprotocols: Optional[Sequence[str]] = None,
    check_origin: Optional[Callable[[Request], bool]] = None,
    *,
    background: bool = False,
    loop: Optional[EventLoop] = None,
    response_headers: Optional[Sequence[Tuple[str, str]]] = None,
    handshake_timeout: Optional[float] = None,
    max_size: Optional[int] = DEFAULT_MAX_SIZE,
    compression: CompressionArg = None,
    max_buffered: Optional[int] = DEFAULT_MAX_BUFFERED,
    ping_interval: Optional[float] = None,
    ping_timeout: Optional[float] = None,
    idle_timeout: Optional[float] = None,
    close_timeout: Optional[float] = 5.0,
    exception_handler: Optional[Callable[[BaseException, str, Optional[LoopConnection]], Any]] = None,
    tls: Optional[ServerTLS] = None,
    certfile: Optional[PathLike] = None,
    keyfile: Optional[PathLike] = None,
    **callbacks: Optional[Callable],
) -> EventServer:
    """Listens on ``host``:``port`` with an event loop and returns an
    :class:`EventServer`: every connection is served on the loop's one
    thread through ``handler``'s callbacks.

    ::

        class Echo(libws.EventHandler):
            def on_message(self, conn, message):
                conn.send(message)

        libws.serve_events("127.0.0.1", 8765, Echo()).serve_forever()

        # or with functions, in the background:
        with libws.serve_events("127.0.0.1", 0, on_message=lambda c, m: c.send(m),
                                background=True) as server:
            ...   # server.port

    ``handler``: an :class:`EventHandler` (or any object with some of its
    ``on_*`` methods), or a function ``on_message(conn, message)``; keyword
    callbacks (``on_open=``, ``on_close=``...) override or add to it.
    ``loop``: serve on an existing :class:`EventLoop` (then the loop
    settings below are ignored and :meth:`EventServer.shutdown` shuts that
    whole loop down without freeing it). Listener settings as
    :meth:`EventLoop.listen`, loop settings as :class:`EventLoop`.
    """
    own = loop is None
    if own:
        loop = EventLoop(
            max_buffered=max_buffered,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            idle_timeout=idle_timeout,
            close_timeout=close_timeout,
            exception_handler=exception_handler,
        )
    assert loop is not None
    try:
        listener = loop.listen(
            host,
            port,
            handler,
            subprotocols,
            check_origin,
            response_headers=response_headers,
            handshake_timeout=handshake_timeout,
            max_size=max_size,
            compression=compression,
            tls=_server_tls(tls, certfile, keyfile),
            **callbacks,
        )
    except BaseException:
        if own:
            loop.close()
        raise
    server = EventServer(loop, listener, own)
    if background:
        server.start()
    return server

