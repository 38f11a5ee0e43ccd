"""The Connection class: one WebSocket connection over a libws handle."""

from __future__ import annotations

import ctypes
import json
import logging
import math
import struct
import threading
import time
import weakref
from collections import OrderedDict, deque
from ctypes import byref, c_int32, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Deque, Iterator, List, Optional, Tuple, Union

from . import _ffi, _keepalive
from .exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidArgument,
    LibwsError,
    TimeoutError,
    closed_error,
    error_for,
)

if TYPE_CHECKING:
    from .server import Request

logger = logging.getLogger("libws")

Data = Union[str, bytes]
PingHandler = Callable[[bytes], Any]
CloseHandler = Callable[[int, str], Any]

#: the close code libws sends when it fails a connection with a status
_SENT_CODE = {
    _ffi.WS_ERR_PROTOCOL: 1002,
    _ffi.WS_ERR_INVALID_UTF8: 1007,
    _ffi.WS_ERR_INVALID_DATA: 1007,
    _ffi.WS_ERR_READ_LIMIT: 1009,
}

DEFAULT_CLOSE_TIMEOUT = 10.0
#: keepalive defaults of connect() and serve(), as in `websockets`
DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0

#: longest wait of one read in the main thread, so that Ctrl-C is seen
_SIGNAL_SLICE_MS = 200

#: passed by connect() and the server: a Connection made from an arbitrary
#: integer would hand libws a pointer it never issued
_PRIVATE = object()


def _ms(seconds: Optional[float]) -> int:
    """Seconds (float) to whole milliseconds, rounding up (0 stays 0)."""
    if seconds is None:
        return -1
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(seconds).__name__}")
    if seconds != seconds or seconds < 0:
        raise ValueError(f"timeout must be >= 0, not {seconds!r}")
    if math.isinf(seconds):
        return -1
    ms = math.ceil(seconds * 1000)
    # Beyond ~146 million years means no limit (and keeps int64 in range).
    return -1 if ms > 1 << 62 else int(ms)


#: upper bound of the I/O buffer sizes (the C ABI takes any size_t and
#: aborts the process when it cannot allocate one)
MAX_BUFFER_SIZE = 64 * 1024 * 1024


def _limit(value: Optional[int], what: str) -> int:
    """A read limit for C: None -> 0 (no limit); else an int >= 1."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int or None, not {type(value).__name__}")
    if not 1 <= value < 1 << 64:
        raise ValueError(f"{what} must be at least 1 (None: no limit), not {value}")
    return value


def _buffer_size(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_BUFFER_SIZE:
        raise ValueError(f"{what} must be 0 (default) to {MAX_BUFFER_SIZE} bytes, not {value}")
    return value


def _parse_addr(s: Optional[str]) -> Optional[Tuple[str, int]]:
    """'ip:port' or '[ip6]:port' -> (ip, port)."""
    if not s:
        return None
    host, _, port = s.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return host, int(port)
    except ValueError:
        return None


def _as_payload(data: Union[str, bytes, bytearray, memoryview], what: str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"{what} must be str or bytes-like, not {type(data).__name__}")


def _close_args(code: int, reason: str) -> Tuple[bytes, bytes]:
    """Checks a close call's code and reason as every connection kind
    does: TypeError for wrong types, ValueError for a reason over 123
    bytes or a code outside 0-65535, InvalidArgument for a code that may
    not be sent (``ws_format_close_message``'s rule: 1005 included, so
    every path refuses it). Returns the reason as UTF-8 and the close
    frame's payload (code and reason)."""
    if isinstance(code, bool) or not isinstance(code, int):
        raise TypeError(f"close code must be an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be a str, not {type(reason).__name__}")
    rb = reason.encode("utf-8")
    if len(rb) > _ffi.MAX_REASON_LEN:
        raise ValueError(f"close reason is {len(rb)} bytes; at most {_ffi.MAX_REASON_LEN} are allowed")
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"invalid close code {code}")
    buf = ctypes.create_string_buffer(125)
    n = c_size_t()
    if _ffi.ws_format_close_message(code, rb, len(rb), buf, 125, byref(n)) != _ffi.WS_OK:
        raise InvalidArgument(f"close code {code} may not be sent: {_ffi.last_error()}", _ffi.WS_ERR_INVALID_ARGUMENT)
    return rb, buf.raw[: n.value]


class _Negotiated:
    """What every connection kind reports about its handshake and socket
    (the blocking Connection, LoopConnection, the asyncio session path),
    from the attributes each sets once it is open."""

    __slots__ = ()
    _subprotocol: Optional[str]
    _compression: Optional[str]
    _local: Optional[Tuple[str, int]]
    _remote: Optional[Tuple[str, int]]

    @property
    def subprotocol(self) -> Optional[str]:
        """The negotiated subprotocol, or None."""
        return self._subprotocol

    @property
    def compression(self) -> Optional[str]:
        """``"deflate"`` when permessage-deflate was negotiated, else None."""
        return self._compression

    @property
    def local_address(self) -> Optional[Tuple[str, int]]:
        """The local (host, port)."""
        return self._local

    @property
    def remote_address(self) -> Optional[Tuple[str, int]]:
        """The peer's (host, port)."""
        return self._remote


class Connection(_Negotiated):
    """A WebSocket connection (client or server side).

    Obtain one from :func:`libws.connect` or in a :func:`libws.serve`
    handler. Usable as a context manager (closes on exit) and as an
    iterator of messages (stops when the peer closes normally)::

        with libws.connect("ws://127.0.0.1:8765/") as ws:
            ws.send("hello")
            print(ws.recv())
            for message in ws:
                ...

    Thread safety: :meth:`send`, :meth:`ping`, :meth:`pong` and
    :meth:`close` may be called from any thread at any time; one thread
    reads at a time (a second concurrent :meth:`recv` waits for the first,
    within its own timeout).
    Blocking calls release the GIL. The underlying handle is freed exactly
    once, after the last call that uses it returns.

    Handlers (``on_ping``, ``on_pong``, ``on_close``; settable as
    attributes) run on the thread that is inside :meth:`recv` (or
    :meth:`close`, which reads while it waits for the peer's close frame).
    ``on_ping(payload)`` is a notification: libws still answers the ping
    with a pong. ``on_close(code, reason)`` is also a notification: the
    close frame is still echoed. An exception raised by a handler is logged
    (logger ``"libws"``) and re-raised by the :meth:`recv` call that ran
    the handler; for pings and pongs the connection stays usable.
    """

    def __init__(
        self,
        _handle: int,
        *,
        _private: object = None,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        on_ping: Optional[PingHandler] = None,
        on_pong: Optional[PingHandler] = None,
        on_close: Optional[CloseHandler] = None,
        response_headers: Optional[List[Tuple[str, str]]] = None,
        request: "Optional[Request]" = None,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = None,
    ) -> None:
        if _private is not _PRIVATE or not isinstance(_handle, int) or not _handle:
            raise TypeError("Connection objects come from libws.connect() or a libws.serve() handler")
        self._h: Optional[int] = _handle
        self._state = threading.Lock()  # guards the fields below
        self._users = 0  # calls in progress that use the handle
        self._free_pending = False  # free once _users drops to 0
        self._closing = False  # close() started (locally)
        self._close_done = threading.Event()
        self._sent_code: Optional[int] = None
        self._final: Optional[Tuple[Optional[int], str]] = None  # (code, reason) cached at free
        self._read_lock = threading.Lock()  # one reader; covers the zero-copy buffer
        self._reader: Optional[int] = None  # thread id inside recv()
        self._deadline_set = False  # a read deadline is in effect
        self._type = c_int32()
        self._data = c_void_p()
        self._len = c_size_t()
        self._handler_exc: Optional[BaseException] = None
        self.close_timeout = close_timeout
        #: headers of the server's 101 answer (client side), as (name, value) pairs
        self.response_headers: List[Tuple[str, str]] = list(response_headers or [])
        #: the handshake request (server side): a :class:`libws.Request` or None
        self.request: "Optional[Request]" = request
        #: messages read while waiting for something else (a pong, the
        #: peer's close): recv() returns them first
        self._pending: Deque[Data] = deque()
        #: pings waiting for their pong, oldest first: seq -> (payload, waiter or None, sent at)
        self._pings: "OrderedDict[int, Tuple[bytes, Optional[PongWaiter], float]]" = OrderedDict()
        self._ping_seq = 0
        #: seconds between the last answered ping (keepalive or :meth:`ping`)
        #: and its pong; 0.0 until one was answered
        self.latency = 0.0
        self._ka_interval = ping_interval if ping_interval else None
        self._ka_timeout = ping_timeout if ping_timeout else None
        self._ka_ping: Optional[int] = None  # seq of the keepalive ping in flight
        self._compression = "deflate" if _ffi.ws_conn_compression_negotiated(_handle) else None
        sp = _ffi.ws_conn_subprotocol(_handle)
        self._subprotocol = sp.decode("utf-8", "replace") if sp else None
        self._local = _parse_addr(_ffi.copy_string(_ffi.ws_conn_local_addr, _handle, 64))
        self._remote = _parse_addr(_ffi.copy_string(_ffi.ws_conn_remote_addr, _handle, 64))
        # ctypes callbacks: kept alive as long as the handle (they only hold
        # a weak reference back, so no reference cycle keeps us alive).
        wr = weakref.ref(self)
        self._on_ping: Optional[PingHandler] = None
        self._on_pong: Optional[PingHandler] = None
        self._on_close: Optional[CloseHandler] = None
        self._cb_ping = _ffi.CONTROL_HANDLER(lambda c, d, n, u: _ping_trampoline(wr, c, d, n))
        self._cb_pong = _ffi.CONTROL_HANDLER(lambda c, d, n, u: _pong_trampoline(wr, c, d, n))
        self._cb_close = _ffi.CLOSE_HANDLER(lambda c, code, d, n, u: _close_trampoline(wr, c, code, d, n))
        if on_ping is not None:
            self.on_ping = on_ping
        # The pong handler is always in: it answers ping waiters and
        # measures the latency; on_pong is called from it.
        _ffi.ws_conn_set_pong_handler(_handle, self._cb_pong, None)
        if on_pong is not None:
            self.on_pong = on_pong
        if on_close is not None:
            self.on_close = on_close
        if self._ka_interval is not None:
            _keepalive.schedule(self, time.monotonic() + self._ka_interval)

    # -- handle management -------------------------------------------------

    def _enter(self) -> int:
        """Marks a call in progress and returns the handle, or raises
        ConnectionClosed when the handle is gone."""
        with self._state:
            h = self._h
            if h is None or self._free_pending:
                raise self._closed_exc()
            self._users += 1
            return h

    def _leave(self) -> None:
        with self._state:
            self._users -= 1
            if self._users == 0 and self._free_pending:
                self._free_locked()

    def _free_locked(self) -> None:
        h = self._h
        if h is None:
            return
        self._final = self._read_close_state(h)
        self._h = None
        _ffi.ws_conn_free(h)

    def _read_close_state(self, h: int) -> Tuple[Optional[int], str]:
        code = _ffi.ws_conn_close_code(h)
        reason = _ffi.copy_string(_ffi.ws_conn_close_reason, h, 128) or ""
        return (code or None), reason

    def _close_state(self) -> Tuple[Optional[int], str]:
        """(code, reason) of the peer's close (code None if none yet)."""
        with self._state:
            if self._h is None:
                return self._final or (None, "")
            return self._read_close_state(self._h)

    def _closed_exc(self, st: Optional[int] = None, msg: str = "") -> ConnectionClosed:
        """The ConnectionClosed that describes the current state. Called
        with or without _state held (reads only fields)."""
        if self._h is None:
            code, reason = self._final or (None, "")
        else:
            code, reason = self._read_close_state(self._h)
        if code is None:
            code = (_SENT_CODE.get(st) if st is not None else None) or self._sent_code or 1006
        return closed_error(code, reason, st, msg)

    def _error(self, st: int) -> LibwsError:
        msg = _ffi.last_error()
        if st == _ffi.WS_ERR_TIMEOUT:
            return TimeoutError(msg or "timed out", st)
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
        if st == _ffi.WS_ERR_BUSY and self._closing:
            return self._closed_exc(st, msg)
        return error_for(st, msg)

    # -- reading -----------------------------------------------------------

    def recv(self, timeout: Optional[float] = None) -> Data:
        """Receives the next message: ``str`` for a text message, ``bytes``
        for a binary one.

        Args:
            timeout: seconds to wait (``None``: no limit; ``0``: only what
                has already arrived).

        Raises:
            TimeoutError: nothing complete arrived in time; the connection
                stays usable (a partial message is kept for the next call).
            ConnectionClosedOK: the peer closed with 1000/1001, or the
                connection was closed locally.
            ConnectionClosedError: any other end (ProtocolError when the
                peer broke the protocol).
            Exception: whatever an ``on_ping``/``on_pong``/``on_close``
                handler raised while this call ran it.
        """
        ms = _ms(timeout)
        me = threading.get_ident()
        if self._reader == me:
            raise RuntimeError("recv() called from a handler running inside recv() on the same connection")
        h = self._enter()
        try:
            # One reader at a time: a second thread waits for the first,
            # within its own timeout.
            start = time.monotonic()
            if not self._read_lock.acquire(timeout=-1 if ms < 0 else ms / 1000):
                raise TimeoutError("timed out waiting for another thread's recv()", _ffi.WS_ERR_TIMEOUT)
            try:
                if self._pending:
                    return self._pending.popleft()
                self._reader = me
                deadline = None if ms < 0 else start + ms / 1000
                # In the main thread, wait in slices so that signal handlers
                # (Ctrl-C) run; a read that times out loses nothing.
                main = threading.current_thread() is threading.main_thread()
                while True:
                    if deadline is None:
                        wait = _SIGNAL_SLICE_MS if main else -1
                    else:
                        wait = max(0, math.ceil((deadline - time.monotonic()) * 1000))
                        if main:
                            wait = min(wait, _SIGNAL_SLICE_MS)
                    if wait >= 0:
                        _ffi.ws_conn_set_read_deadline(h, wait)
                        self._deadline_set = True
                    elif self._deadline_set:
                        _ffi.ws_conn_set_read_deadline(h, -1)
                        self._deadline_set = False
                    st = _ffi.ws_conn_read_message(h, byref(self._type), byref(self._data), byref(self._len))
                    if st != _ffi.WS_ERR_TIMEOUT or not main:
                        break
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                if st == _ffi.WS_OK:
                    n = self._len.value
                    # The payload is only valid until the next read: copy now.
                    raw = _ffi.read_bytes(self._data.value, n)
                    if self._type.value == _ffi.WS_TEXT:
                        return raw.decode("utf-8")
                    return raw
                exc = self._handler_exc
                self._handler_exc = None
            finally:
                self._reader = None
                self._read_lock.release()
            if st == _ffi.WS_ERR_HANDLER and exc is not None:
                raise exc
            raise self._error(st)
        finally:
            self._leave()

    def recv_json(self, timeout: Optional[float] = None, **loads_kwargs: Any) -> Any:
        """Receives a message and decodes it as JSON (gorilla's ReadJSON)."""
        return json.loads(self.recv(timeout), **loads_kwargs)

    def __iter__(self) -> Iterator[Data]:
        """Iterates over incoming messages until the peer closes normally
        (ConnectionClosedOK ends the loop; other errors propagate)."""
        return self

    def __next__(self) -> Data:
        try:
            return self.recv()
        except ConnectionClosedOK:
            raise StopIteration from None

    # -- writing -----------------------------------------------------------

    def send(self, message: Union[str, bytes, bytearray, memoryview]) -> None:
        """Sends a message: ``str`` as a text message (UTF-8), ``bytes``,
        ``bytearray`` or ``memoryview`` as a binary one.

        Raises:
            TypeError: ``message`` is of another type.
            ConnectionClosed: the connection is closed (or closing).
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
        h = self._enter()
        try:
            st = self._write(h, typ, data)
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            raise self._send_error(st)

    def _write(self, h: int, typ: int, data: bytes) -> int:
        """ws_conn_write_message; in the main thread in slices of at most
        0.2 s (write deadlines), so that Ctrl-C is answered while the
        socket is full. The Python API sets no write deadline of its own,
        so a timeout here is always such a slice: write again (nothing went
        out) or flush the rest (part went out), on any thread."""
        main = threading.current_thread() is threading.main_thread()
        if main:
            _ffi.ws_conn_set_write_deadline(h, _SIGNAL_SLICE_MS)
        st = _ffi.ws_conn_write_message(h, typ, data, len(data))
        try:
            while st == _ffi.WS_ERR_TIMEOUT or st == _ffi.WS_ERR_WRITE_INCOMPLETE:
                if main:
                    _ffi.ws_conn_set_write_deadline(h, _SIGNAL_SLICE_MS)
                if st == _ffi.WS_ERR_TIMEOUT:
                    st = _ffi.ws_conn_write_message(h, typ, data, len(data))
                else:
                    st = _ffi.ws_conn_flush(h)
                    if st == _ffi.WS_ERR_TIMEOUT:
                        st = _ffi.WS_ERR_WRITE_INCOMPLETE
        finally:
            if main:
                _ffi.ws_conn_set_write_deadline(h, -1)
        return st

    def _send_error(self, st: int) -> LibwsError:
        """The exception for a failed send: after the peer closed (the
        socket then reports EPIPE/ECONNRESET), ConnectionClosed with the
        peer's code, read from what arrived before (messages read on the
        way are kept for recv())."""
        if st != _ffi.WS_ERR_IO:
            return self._error(st)
        cause = error_for(st)
        self._pump_available(64)
        exc = self._closed_exc(st, f"connection closed: {cause}")
        exc.__cause__ = cause
        return exc

    def _pump(self, wait_ms: int) -> int:
        """One read (caller holds the read lock) waiting at most
        ``wait_ms``: a data message is kept in _pending, control frames
        run their handlers (pongs answer ping waiters). Returns the status."""
        h = self._h
        if h is None:
            return _ffi.WS_ERR_LOCALLY_CLOSED
        _ffi.ws_conn_set_read_deadline(h, wait_ms)
        self._deadline_set = True
        st = _ffi.ws_conn_read_message(h, byref(self._type), byref(self._data), byref(self._len))
        if st == _ffi.WS_OK:
            raw = _ffi.read_bytes(self._data.value, self._len.value)
            self._pending.append(raw.decode("utf-8") if self._type.value == _ffi.WS_TEXT else raw)
        return st

    def _pump_available(self, limit: int) -> None:
        """Reads what has already arrived (at most ``limit`` messages) when
        no other thread is reading."""
        if self._reader is not None or not self._read_lock.acquire(blocking=False):
            return
        try:
            with self._state:
                if self._h is None:
                    return
                self._users += 1
            try:
                for _ in range(limit):
                    if len(self._pending) >= limit or self._pump(0) != _ffi.WS_OK:
                        break
            finally:
                self._leave()
        finally:
            self._read_lock.release()

    def send_json(self, obj: Any, **dumps_kwargs: Any) -> None:
        """Sends ``obj`` encoded as JSON in a text message (gorilla's WriteJSON)."""
        self.send(json.dumps(obj, **dumps_kwargs))

    def _control(self, typ: int, data: Union[str, bytes], timeout: Optional[float], what: str) -> None:
        payload = _as_payload(data, what)
        if len(payload) > _ffi.MAX_CONTROL_PAYLOAD:
            raise ValueError(f"{what} payload is {len(payload)} bytes; at most 125 are allowed")
        ms = _ms(timeout)
        h = self._enter()
        try:
            st = _ffi.ws_conn_write_control(h, typ, payload, len(payload), ms)
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            raise self._error(st)

    def ping(self, data: Union[str, bytes] = b"", timeout: Optional[float] = None) -> "PongWaiter":
        """Sends a ping with ``data`` (at most 125 bytes) and returns a
        :class:`PongWaiter`: ``ws.ping().wait(5)`` waits for the pong (True)
        and sets :attr:`latency`. A pong answers its ping and every earlier
        one. ``timeout`` bounds the send only."""
        payload = _as_payload(data, "ping")
        waiter = PongWaiter(self)
        with self._state:
            self._ping_seq += 1
            seq = self._ping_seq
            self._pings[seq] = (payload, waiter, time.monotonic())
        try:
            self._control(_ffi.WS_PING, payload, timeout, "ping")
        except BaseException:
            with self._state:
                self._pings.pop(seq, None)
            raise
        return waiter

    def _got_pong(self, payload: bytes) -> None:
        """From the pong handler (on the reading thread)."""
        now = time.monotonic()
        done = []
        with self._state:
            if not any(p == payload for p, _, _ in self._pings.values()):
                return
            while self._pings:
                seq, (p, waiter, sent) = self._pings.popitem(last=False)
                self.latency = now - sent
                done.append((waiter, now - sent))
                if seq == self._ka_ping:
                    self._ka_ping = None
                if p == payload:
                    break
        for waiter, latency in done:
            if waiter is not None:
                waiter._set(latency)

    def _keepalive(self, now: float) -> Optional[float]:
        """From the keepalive thread: sends the ping that is due, fails the
        connection whose pong is overdue; returns when to come back."""
        if self._h is None or self._closing or self.closed:
            return None
        assert self._ka_interval is not None
        seq = self._ka_ping
        if seq is not None:
            sent = self._pings[seq][2] if seq in self._pings else now
            if self._ka_timeout is not None and now - sent >= self._ka_timeout:
                # Read what arrived if nobody else is reading (a program
                # that only sends never reads its pongs otherwise).
                self._pump_available(64)
                if self._ka_ping is not None:
                    self._fail_keepalive()
                    return None
            elif self._ka_timeout is not None:
                return sent + self._ka_timeout
            if self._ka_ping is None:
                due = sent + self._ka_interval
                if due > now:
                    return due
        with self._state:
            self._ping_seq += 1
            seq = self._ping_seq
            payload = struct.pack("!I", seq & 0xFFFFFFFF)
            self._pings[seq] = (payload, None, now)
            self._ka_ping = seq
        try:
            self._control(_ffi.WS_PING, payload, 1.0, "ping")
        except ConnectionClosed:
            return None
        except LibwsError:  # the socket is full for a second: try later
            pass
        if self._ka_timeout is not None:
            return now + min(self._ka_timeout, self._ka_interval)
        return now + self._ka_interval

    def _fail_keepalive(self) -> None:
        """websockets' behaviour: close 1011, and since the peer does not
        answer, close the socket at once (blocked calls end with
        ConnectionClosedError 1011)."""
        logger.info("%r: no pong within %s s of a keepalive ping: closing", self, self._ka_timeout)
        try:
            h = self._enter()
        except ConnectionClosed:
            return
        try:
            payload = struct.pack("!H", 1011) + b"keepalive ping timeout"
            _ffi.ws_conn_write_control(h, _ffi.WS_CLOSE, payload, len(payload), 100)
        finally:
            self._leave()
        self._sent_code = 1011
        self.abort()

    def pong(self, data: Union[str, bytes] = b"", timeout: Optional[float] = None) -> None:
        """Sends an unsolicited pong with ``data`` (at most 125 bytes)."""
        self._control(_ffi.WS_PONG, data, timeout, "pong")

    # -- closing -----------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "", timeout: Optional[float] = None) -> None:
        """Closes the connection with the close handshake: sends a close
        frame with ``code`` and ``reason`` (at most 123 UTF-8 bytes), waits
        up to ``timeout`` seconds (default :attr:`close_timeout`) for the
        peer's close frame, then closes the socket and frees the handle.
        Data messages arriving meanwhile are discarded. Closing an already
        closed connection does nothing; the socket is closed even when the
        peer does not answer in time (no error is raised).

        Called from an ``on_ping``/``on_pong``/``on_close`` handler (on the
        thread inside :meth:`recv`), it only sends the close frame: that
        :meth:`recv` then ends with :class:`ConnectionClosed` once the peer
        answers.

        Raises:
            ValueError: a code that may not be sent or a too-long reason
                (the connection is left open).
        """
        rb, payload = _close_args(code, reason)
        if timeout is None:
            timeout = self.close_timeout
        ms = _ms(timeout)
        if self._reader == threading.get_ident():
            # Called by a handler inside recv() on this thread: waiting here
            # for the peer's close would wait for ourselves. Send the close
            # frame only; the recv() that runs the handler sees the answer
            # and raises ConnectionClosed (a later close() frees the socket).
            h = self._enter()
            try:
                st = _ffi.ws_conn_write_control(h, _ffi.WS_CLOSE, payload, len(payload), ms)
            finally:
                self._leave()
            if st not in (_ffi.WS_OK, _ffi.WS_ERR_CLOSE_SENT):
                raise self._error(st)
            return
        with self._state:
            if self._closing or self._h is None:
                first = False
            else:
                first = True
                self._closing = True
                self._sent_code = code
                self._users += 1
                h = self._h
        if not first:
            # Another thread is closing (or has closed): wait for it.
            self._close_done.wait(None if ms < 0 else ms / 1000 + 1)
            return
        try:
            if threading.current_thread() is threading.main_thread() and ms > _SIGNAL_SLICE_MS:
                st = self._close_sliced(h, code, rb, ms)
            else:
                st = _ffi.ws_conn_close_graceful(h, code, rb, len(rb), ms)
            if st not in (_ffi.WS_OK, _ffi.WS_ERR_TIMEOUT):
                logger.debug("close handshake ended with %s", _ffi.status_str(st))
            _ffi.ws_conn_close(h)  # wakes blocked readers and writers
            exc = self._handler_exc
            self._handler_exc = None
            if exc is not None:
                logger.debug("a handler raised during close(): %r", exc)
        finally:
            with self._state:
                self._free_pending = True
                self._users -= 1
                if self._users == 0:
                    self._free_locked()
            self._close_done.set()

    def _close_sliced(self, h: int, code: int, rb: bytes, ms: int) -> int:
        """close_graceful in the main thread: sends the close frame, then
        waits for the peer's in reads of at most 0.2 s (data messages are
        discarded), so that Ctrl-C is answered; the caller closes the
        socket either way. With another thread reading, the plain blocking
        close_graceful."""
        if not self._read_lock.acquire(blocking=False):
            return _ffi.ws_conn_close_graceful(h, code, rb, len(rb), ms)
        try:
            buf = ctypes.create_string_buffer(125)
            n = c_size_t()
            _ffi.ws_format_close_message(code, rb, len(rb), buf, 125, byref(n))
            st = _ffi.ws_conn_write_control(h, _ffi.WS_CLOSE, buf.raw[: n.value], n.value, min(ms, 0xFFFFFFFF))
            if st != _ffi.WS_OK:
                return st
            end = time.monotonic() + ms / 1000
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    return _ffi.WS_ERR_TIMEOUT
                _ffi.ws_conn_set_read_deadline(h, min(_SIGNAL_SLICE_MS, math.ceil(left * 1000)))
                self._deadline_set = True
                st = _ffi.ws_conn_read_message(h, byref(self._type), byref(self._data), byref(self._len))
                if st not in (_ffi.WS_OK, _ffi.WS_ERR_TIMEOUT):
                    # The peer's close frame arrived (or the socket ended).
                    return _ffi.WS_OK if st == _ffi.WS_ERR_CLOSED else st
        finally:
            self._read_lock.release()

    def abort(self) -> None:
        """Closes the socket at once, without a close handshake
        (gorilla's Close). Blocked calls on other threads fail with
        ConnectionClosed."""
        with self._state:
            if self._h is None:
                return
            self._closing = True
            self._free_pending = True
            _ffi.ws_conn_close(self._h)
            if self._users == 0:
                self._free_locked()
        self._close_done.set()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, ConnectionClosed):
            self.close(1000)
        else:
            self.close(1011)

    def __del__(self) -> None:
        try:
            if self._h is not None and self._users == 0:
                _ffi.ws_conn_free(self._h)
                self._h = None
        except Exception:
            pass

    # -- properties --------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the connection has ended (either side closed it)."""
        with self._state:
            if self._h is None or self._closing:
                return True
            return _ffi.ws_conn_close_code(self._h) != 0

    @property
    def close_code(self) -> Optional[int]:
        """The close code that ended the connection: the peer's (1005 when
        its close frame had none), 1006 when it ended without a close frame
        from the peer; None while the connection is open."""
        code, _ = self._close_state()
        if code is None and (self._h is None or self._free_pending):
            return 1006
        return code

    @property
    def close_reason(self) -> Optional[str]:
        """The peer's close reason ("" when none); None while open."""
        code, reason = self._close_state()
        if code is None and not (self._h is None or self._free_pending):
            return None
        return reason

    @property
    def fd(self) -> int:
        """The socket's file descriptor (-1 once freed). Do not read or
        write it directly."""
        with self._state:
            return _ffi.ws_conn_fd(self._h) if self._h is not None else -1

    def set_max_size(self, limit: Optional[int]) -> None:
        """Sets the largest message the peer may send (None: no limit)."""
        _limit(limit, "max_size")
        h = self._enter()
        try:
            st = _ffi.ws_conn_set_read_limit(h, _limit(limit, "max_size"))
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            raise self._error(st)

    # -- handlers ----------------------------------------------------------

    def _install(self, setter, cb, value) -> None:
        if value is not None and not callable(value):
            raise TypeError("a handler must be callable or None")
        h = self._enter()
        try:
            st = setter(h, cb if value is not None else type(cb)(), None)
        finally:
            self._leave()
        if st != _ffi.WS_OK:
            raise self._error(st)

    @property
    def on_ping(self) -> Optional[PingHandler]:
        """Called with each received ping's payload (bytes) on the reading
        thread; the pong is still sent automatically."""
        return self._on_ping

    @on_ping.setter
    def on_ping(self, fn: Optional[PingHandler]) -> None:
        self._install(_ffi.ws_conn_set_ping_handler, self._cb_ping, fn)
        self._on_ping = fn

    @property
    def on_pong(self) -> Optional[PingHandler]:
        """Called with each received pong's payload (bytes) on the reading thread."""
        return self._on_pong

    @on_pong.setter
    def on_pong(self, fn: Optional[PingHandler]) -> None:
        if fn is not None and not callable(fn):
            raise TypeError("a handler must be callable or None")
        self._on_pong = fn  # the pong trampoline is always installed

    @property
    def on_close(self) -> Optional[CloseHandler]:
        """Called with the peer's close code and reason on the reading
        thread; the close frame is still echoed automatically."""
        return self._on_close

    @on_close.setter
    def on_close(self, fn: Optional[CloseHandler]) -> None:
        self._install(_ffi.ws_conn_set_close_handler, self._cb_close, fn)
        self._on_close = fn

    def __repr__(self) -> str:
        state = "closed" if self._h is None else ("closing" if self._closing else "open")
        return f"<libws.Connection {state} local={self._local} remote={self._remote}>"


# -- trampolines (run on the reading thread, inside a libws call) ----------


def _fail(conn: Optional[Connection], what: str, e: BaseException) -> int:
    logger.error("exception in the %s handler", what, exc_info=(type(e), e, e.__traceback__))
    if conn is not None:
        conn._handler_exc = e
    return _ffi.WS_ERR_HANDLER


def _ping_trampoline(wr, c, d, n) -> int:
    conn = wr()
    try:
        try:
            payload = _ffi.read_bytes(d, n)
            fn = conn._on_ping if conn is not None else None
            if fn is not None:
                fn(payload)
        finally:
            # The pong goes out even when the handler raised.
            st = _ffi.ws_conn_default_ping_handler(c, d, n, None)
        return st
    except BaseException as e:  # never let an exception cross into C
        return _fail(conn, "ping", e)


def _pong_trampoline(wr, c, d, n) -> int:
    conn = wr()
    try:
        payload = _ffi.read_bytes(d, n)
        if conn is not None:
            conn._got_pong(payload)
        fn = conn._on_pong if conn is not None else None
        if fn is not None:
            fn(payload)
        return _ffi.WS_OK
    except BaseException as e:
        return _fail(conn, "pong", e)


def _close_trampoline(wr, c, code, d, n) -> int:
    conn = wr()
    try:
        try:
            reason = (_ffi.read_bytes(d, n)).decode("utf-8", "replace")
            fn = conn._on_close if conn is not None else None
            if fn is not None:
                fn(code, reason)
        finally:
            st = _ffi.ws_conn_default_close_handler(c, code, d, n, None)
        return st
    except BaseException as e:
        return _fail(conn, "close", e)


class PongWaiter:
    """What :meth:`Connection.ping` returns: ``wait(timeout)`` until the
    pong arrives. When no other thread is reading the connection, ``wait``
    reads itself (messages that arrive meanwhile are kept for recv())."""

    def __init__(self, conn: Connection) -> None:
        self._conn = weakref.ref(conn)
        self._event = threading.Event()
        #: seconds from the ping to its pong (None until it came)
        self.latency: Optional[float] = None

    def _set(self, latency: float) -> None:
        self.latency = latency
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once the pong arrived; False when ``timeout`` seconds passed
        (or the connection ended) first."""
        end = None if timeout is None else time.monotonic() + timeout
        while not self._event.is_set():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return False
            slice_ms = _SIGNAL_SLICE_MS if left is None else max(0, min(_SIGNAL_SLICE_MS, math.ceil(left * 1000)))
            conn = self._conn()
            if conn is None or conn._h is None or conn._closing:
                return self._event.is_set()
            if conn._reader is None and conn._read_lock.acquire(blocking=False):
                try:
                    try:
                        conn._enter()
                    except ConnectionClosed:
                        return False
                    try:
                        st = conn._pump(slice_ms)
                    finally:
                        conn._leave()
                finally:
                    conn._read_lock.release()
                if st not in (_ffi.WS_OK, _ffi.WS_ERR_TIMEOUT):
                    return self._event.is_set()
            else:
                del conn
                self._event.wait(slice_ms / 1000)
        return True

    def __repr__(self) -> str:
        return f"<libws.PongWaiter {'answered' if self._event.is_set() else 'waiting'}>"
