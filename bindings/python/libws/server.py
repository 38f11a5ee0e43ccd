"""libws.serve: a threaded WebSocket server."""

from __future__ import annotations

import logging
import threading
import time
from ctypes import byref, c_size_t, c_void_p
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union
from urllib.parse import urlsplit

from . import _ffi
from .client import CompressionArg, _header_pairs, _strings
from .connection import (
    _PRIVATE,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Connection,
    _limit,
    _ms,
    _parse_addr,
)
from .exceptions import ConnectionClosed, ConnectionClosedOK, error_for
from .tls import PathLike, ServerTLS, _apply_server, _server_tls

logger = logging.getLogger("libws")

Handler = Callable[[Connection], None]
#: what ``process_request`` may return: None (go on with the upgrade), an
#: HTTP status (400-599), or (status, headers, body)
ProcessResult = Union[None, int, Tuple[int, Sequence[Tuple[str, str]], Union[str, bytes]]]


@dataclass
class Request:
    """The client's opening handshake request (server side).

    Given to ``check_origin`` and available as ``connection.request`` in
    the handler.
    """

    method: str
    path: str  #: request target: path and query, e.g. "/chat?room=1"
    headers: List[Tuple[str, str]] = field(default_factory=list)
    remote_address: Optional[Tuple[str, int]] = None
    subprotocols: List[str] = field(default_factory=list)  #: offered, in the client's order

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of header ``name`` (case-insensitive)."""
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    @property
    def origin(self) -> Optional[str]:
        """The Origin header, or None."""
        return self.header("Origin")


def same_origin(request: Request) -> bool:
    """libws's default origin check (gorilla's): accept a request without
    Origin, or whose Origin's host[:port] equals its Host header."""
    origin = request.origin
    if origin is None:
        return True
    host = request.header("Host")
    if host is None:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if not parts.scheme or not parts.hostname:
        return False
    authority = parts.netloc.rpartition("@")[2]
    return authority.lower() == host.strip().lower()


def _read_request(req: int) -> Request:
    p, n = c_void_p(), c_size_t()
    method = path = ""
    if _ffi.ws_request_method(req, byref(p), byref(n)) == _ffi.WS_OK and n.value:
        method = _ffi.read_bytes(p.value, n.value).decode("latin-1")
    if _ffi.ws_request_target(req, byref(p), byref(n)) == _ffi.WS_OK and n.value:
        path = _ffi.read_bytes(p.value, n.value).decode("latin-1")
    headers = []
    for i in range(_ffi.ws_request_header_count(req)):
        pair = _ffi.pair_at(_ffi.ws_request_header_at, req, i)
        if pair is not None:
            headers.append(pair)
    protos = []
    i = 0
    while _ffi.ws_request_subprotocol(req, i, byref(p), byref(n)) == _ffi.WS_OK:
        protos.append(_ffi.read_bytes(p.value, n.value).decode("latin-1"))
        i += 1
    remote = _parse_addr(_ffi.copy_string(_ffi.ws_request_remote_addr, req, 64))
    return Request(method, path, headers, remote, protos)



def _configure_upgrader(up: int, *, subprotocols: Optional[Sequence[str]], extra: Sequence[Tuple[str, str]],
                        handshake_timeout: Optional[float], copts: Optional[_ffi.ws_compression_options],
                        max_size: Optional[int], limit: int) -> None:
    """The upgrader settings every server of the package applies (the
    threaded ``serve`` and the asyncio session path): subprotocols, extra
    response headers, handshake timeout, compression, read limit. Raises
    the status's error."""
    st = _ffi.WS_OK
    if subprotocols:
        arr, n = _strings(subprotocols, "subprotocols")
        st = _ffi.ws_upgrader_set_subprotocols(up, arr, n)
    for k, v in extra:
        if st != _ffi.WS_OK:
            break
        st = _ffi.ws_upgrader_add_response_header(up, k.encode("latin-1"), v.encode("latin-1"))
    if st == _ffi.WS_OK and handshake_timeout is not None:
        st = _ffi.ws_upgrader_set_handshake_timeout(up, _ms(handshake_timeout))
    if st == _ffi.WS_OK and copts is not None:
        st = _ffi.ws_upgrader_set_compression(up, byref(copts))
    if st == _ffi.WS_OK and max_size != 64 * 1024 * 1024:
        st = _ffi.ws_upgrader_set_read_limit(up, limit)
    if st != _ffi.WS_OK:
        raise error_for(st)

class Server:
    """A listening WebSocket server; each accepted connection runs
    ``handler(connection)`` on its own thread. Create with :func:`serve`.

    Use :meth:`serve_forever` to accept in the calling thread (until
    :meth:`shutdown` from another thread, or Ctrl-C), or :meth:`start` to
    accept in a background thread. As a context manager, the server is
    shut down on exit.

    Attributes:
        port: the bound port (the real one with ``port=0``).
        host: the host it was asked to listen on.
        address: the bound ``(host, port)``.
    """

    port: int
    host: str
    address: Tuple[str, int]

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        subprotocols: Optional[Sequence[str]] = None,
        check_origin: Optional[Callable[[Request], bool]] = None,
        response_headers: Optional[Sequence[Tuple[str, str]]] = None,
        handshake_timeout: Optional[float] = None,
        max_size: Optional[int] = 64 * 1024 * 1024,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        compression: "CompressionArg" = None,
        process_request: Optional[Callable[[Request], ProcessResult]] = None,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        tls: Optional[ServerTLS] = None,
    ) -> None:
        from .client import _compression_options

        copts = _compression_options(compression)
        limit = _limit(max_size, "max_size")
        extra = _header_pairs(response_headers)
        if not callable(handler):
            raise TypeError("handler must be callable")
        if check_origin is not None and not callable(check_origin):
            raise TypeError("check_origin must be callable or None")
        if process_request is not None and not callable(process_request):
            raise TypeError("process_request must be callable or None")
        if not isinstance(host, str):
            raise TypeError("host must be a str")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, not {port!r}")
        self.handler = handler
        self.close_timeout = close_timeout
        self._check = check_origin
        self._process = process_request
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        #: answers chosen by process_request, by client address, until the
        #: error handler writes them
        self._answers: Dict[Tuple[str, int], Tuple[int, List[Tuple[str, str]], bytes]] = {}
        self._lock = threading.Lock()
        self._requests: Dict[Tuple[str, int], Tuple[float, Request]] = {}
        self._connections: Set[Connection] = set()
        self._threads: Set[threading.Thread] = set()
        self._stopping = False
        self._serving = False
        self._served = threading.Event()  # set when serve_forever has returned
        self._served.set()
        self._bg: Optional[threading.Thread] = None
        # Always installed: it records the request for connection.request,
        # then applies check_origin (or the default same-origin rule).
        self._cb_check = _ffi.CHECK_ORIGIN(self._check_trampoline)
        self._cb_error = _ffi.ERROR_FN(self._error_trampoline)
        up = _ffi.ws_upgrader_new()
        listener = c_void_p()
        try:
            st = _ffi.ws_upgrader_set_check_origin(up, self._cb_check, None)
            # recv() without a timeout waits as long as it takes (as in
            # websockets; keepalive pings find dead peers), and sends retry
            # their own slices: no C-side idle or stall timeouts.
            if st == _ffi.WS_OK:
                st = _ffi.ws_upgrader_set_timeouts(up, -1, -1)
            if st == _ffi.WS_OK and process_request is not None:
                st = _ffi.ws_upgrader_set_error_handler(up, self._cb_error, None)
            if st != _ffi.WS_OK:
                raise error_for(st)
            _configure_upgrader(up, subprotocols=subprotocols, extra=extra, handshake_timeout=handshake_timeout,
                                copts=copts, max_size=max_size, limit=limit)
            _apply_server(up, tls)
            st = _ffi.ws_listen(up, host.encode("utf-8"), port, byref(listener))
            if st != _ffi.WS_OK:
                raise error_for(st)
        finally:
            _ffi.ws_upgrader_free(up)
        self._listener: Optional[int] = listener.value
        #: the bound port (useful with port=0)
        self.port: int = _ffi.ws_listener_port(self._listener)
        self.host = host
        addr = _parse_addr(_ffi.copy_string(_ffi.ws_listener_addr, self._listener, 64))
        #: the bound (host, port)
        self.address: Tuple[str, int] = addr or (host, self.port)

    # -- handshake callback (runs on the accepting thread) -------------------

    def _check_trampoline(self, req: int, user: int) -> bool:
        try:
            request = _read_request(req)
            ok = bool(self._check(request)) if self._check is not None else same_origin(request)
            if ok and self._process is not None:
                answer = _answer(self._process(request))
                if answer is not None:
                    if request.remote_address is None:
                        return False
                    with self._lock:
                        self._answers[request.remote_address] = answer
                    return False  # the error handler writes the answer
            if ok and request.remote_address is not None:
                now = time.monotonic()
                with self._lock:
                    if len(self._requests) > 1024:  # forget handshakes that never completed
                        for k in [k for k, (t, _) in self._requests.items() if now - t > 60]:
                            del self._requests[k]
                    self._requests[request.remote_address] = (now, request)
            return ok
        except BaseException:
            logger.exception("exception in check_origin; refusing the request")
            return False

    def _error_trampoline(self, req: int, resp: int, user: int) -> None:
        try:
            if not req:
                return
            remote = _parse_addr(_ffi.copy_string(_ffi.ws_request_remote_addr, req, 64))
            with self._lock:
                answer = self._answers.pop(remote, None) if remote else None
            if answer is None:
                return
            status, headers, body = answer
            _ffi.ws_error_response_set_status(resp, status)
            for k, v in headers:
                _ffi.ws_error_response_add_header(resp, k.encode("latin-1"), v.encode("latin-1"))
            _ffi.ws_error_response_set_body(resp, body, len(body))
        except BaseException:
            logger.exception("exception while writing the process_request answer")

    # -- serving ---------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accepts connections until :meth:`shutdown` is called (from
        another thread or a handler). Each connection runs the handler on a
        new thread.

        In the main thread, accepting runs on a helper thread while this one
        waits, so that Ctrl-C (KeyboardInterrupt, or any exception a signal
        handler raises) never lands between accepting a connection and
        handing it to its thread: the server is shut down (open connections
        get close 1001) and the exception propagates. ``poll_interval``
        bounds how long a Ctrl-C waits."""
        if threading.current_thread() is not threading.main_thread():
            self._accept_loop(poll_interval)
            return
        self.start(poll_interval)
        bg = self._bg
        try:
            while bg is not None and bg.is_alive():
                bg.join(poll_interval)
        except BaseException:
            self.shutdown()
            raise

    def _accept_loop(self, poll_interval: float) -> None:
        with self._lock:
            if self._serving:
                raise RuntimeError("the server is already serving")
            if self._stopping or self._listener is None:
                raise RuntimeError("the server was shut down")
            self._serving = True
            self._served.clear()
            listener = self._listener
        ms = max(1, int(poll_interval * 1000))
        conn = c_void_p()
        try:
            while not self._stopping:
                st = _ffi.ws_listener_accept(listener, ms, byref(conn))
                if st == _ffi.WS_OK and conn.value:
                    self._spawn(conn.value)
                elif st == _ffi.WS_ERR_TIMEOUT:
                    continue
                elif st == _ffi.WS_ERR_LOCALLY_CLOSED:
                    break
                else:
                    logger.warning("accept failed: %s", error_for(st))
                    time.sleep(0.01)
        finally:
            with self._lock:
                self._serving = False
            self._served.set()

    def _spawn(self, handle: int) -> None:
        conn = Connection(handle, _private=_PRIVATE, close_timeout=self.close_timeout,
                          ping_interval=self.ping_interval, ping_timeout=self.ping_timeout)
        with self._lock:
            entry = self._requests.pop(conn.remote_address, None) if conn.remote_address else None
            conn.request = entry[1] if entry else None
            # Also while stopping: the client already has its 101, so the
            # connection gets its handler and, from shutdown(), a proper
            # close 1001 rather than a dropped socket (1006).
            self._connections.add(conn)
            t = threading.Thread(target=self._run, args=(conn,), name=f"libws-conn-{conn.remote_address}", daemon=True)
            self._threads.add(t)
        t.start()

    def _run(self, conn: Connection) -> None:
        code = 1000
        try:
            self.handler(conn)
        except ConnectionClosedOK:
            pass
        except ConnectionClosed as e:
            logger.debug("connection %s closed: %s", conn.remote_address, e)
        except BaseException:
            logger.exception("exception in the connection handler")
            code = 1011
        finally:
            try:
                conn.close(code)
            except Exception:
                conn.abort()
            with self._lock:
                self._connections.discard(conn)
                self._threads.discard(threading.current_thread())

    def start(self, poll_interval: float = 0.5) -> "Server":
        """Starts accepting in a background (daemon) thread and returns the
        server."""
        with self._lock:
            if self._bg is not None:
                raise RuntimeError("the server was already started")
            self._bg = threading.Thread(
                target=self._accept_loop, args=(poll_interval,), name=f"libws-server-{self.port}", daemon=True
            )
            self._served.clear()  # shutdown() waits for the thread from now on
        self._bg.start()
        return self

    def shutdown(self, close_connections: bool = True, timeout: float = 5.0) -> None:
        """Stops accepting, closes open connections with 1001 (going away)
        when ``close_connections``, waits up to ``timeout`` seconds for
        handler threads, and releases the listening socket. Idempotent;
        callable from any thread (including a handler)."""
        with self._lock:
            already = self._stopping
            self._stopping = True
            listener = self._listener
        if listener is not None and not already:
            _ffi.ws_listener_shutdown(listener)
        if threading.current_thread() is not self._bg:
            if not self._served.wait(timeout + 1):
                logger.warning("the accepting thread did not stop in time")
        # Only now: a connection accepted just before the listener stopped
        # is registered by then and gets its close 1001 too.
        with self._lock:
            conns = list(self._connections) if close_connections else []
            threads = list(self._threads)
        closers = [
            threading.Thread(target=c.close, args=(1001, "server shutting down", min(timeout, self.close_timeout or timeout)), daemon=True)
            for c in conns
        ]
        for t in closers:
            t.start()
        deadline = time.monotonic() + timeout
        me = threading.current_thread()
        for t in closers + threads:
            if t is not me:
                t.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if self._listener is not None and not self._serving:
                _ffi.ws_listener_free(self._listener)
                self._listener = None

    # Alias in the style of websockets' sync server.
    close = shutdown

    @property
    def connections(self) -> Set[Connection]:
        """The open connections (a copy)."""
        with self._lock:
            return set(self._connections)

    def broadcast(self, message: Union[str, bytes, bytearray, memoryview]) -> int:
        """Sends ``message`` to every open connection, encoded once (and
        compressed once per setting). A connection whose socket does not
        take the message within 10 ms is skipped (as ``websockets``'
        broadcast skips slow ones; one that took part of it gets the rest
        on a helper thread). Returns how many took it."""
        from .event_loop import _prepared

        pm = _prepared(message)
        n = 0
        try:
            for conn in self.connections:
                try:
                    h = conn._enter()
                except ConnectionClosed:
                    continue
                try:
                    _ffi.ws_conn_set_write_deadline(h, 10)
                    st = _ffi.ws_conn_write_prepared(h, pm)
                    _ffi.ws_conn_set_write_deadline(h, -1)
                finally:
                    conn._leave()
                if st == _ffi.WS_OK:
                    n += 1
                elif st == _ffi.WS_ERR_WRITE_INCOMPLETE:
                    n += 1
                    threading.Thread(target=_finish_write, args=(conn,), daemon=True).start()
        finally:
            _ffi.ws_prepared_message_free(pm)
        return n

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __del__(self) -> None:
        try:
            if self._listener is not None and not self._serving:
                _ffi.ws_listener_free(self._listener)
                self._listener = None
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<libws.Server {self.address[0]}:{self.port}>"


def _answer(verdict: ProcessResult) -> Optional[Tuple[int, List[Tuple[str, str]], bytes]]:
    """process_request's verdict as (status, headers, body), None: accept."""
    if verdict is None:
        return None
    if isinstance(verdict, tuple):
        status, headers, body = verdict
    else:
        status, headers, body = verdict, [], b""
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"process_request must return None, an HTTP status 400-599 or (status, headers, body), "
                         f"not {verdict!r}")
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return status, [(str(k), str(v)) for k, v in headers], raw


def _finish_write(conn: Connection) -> None:
    try:
        h = conn._enter()
    except ConnectionClosed:
        return
    try:
        _ffi.ws_conn_flush(h)
    finally:
        conn._leave()


def serve(
    host: str,
    port: int,
    handler: Handler,
    subprotocols: Optional[Sequence[str]] = None,
    check_origin: Optional[Callable[[Request], bool]] = None,
    *,
    background: bool = False,
    response_headers: Optional[Sequence[Tuple[str, str]]] = None,
    handshake_timeout: Optional[float] = None,
    max_size: Optional[int] = 64 * 1024 * 1024,
    close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
    compression: "CompressionArg" = None,
    process_request: Optional[Callable[[Request], ProcessResult]] = None,
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
    tls: Optional[ServerTLS] = None,
    certfile: Optional[PathLike] = None,
    keyfile: Optional[PathLike] = None,
) -> Server:
    """Listens on ``host``:``port`` and returns a :class:`Server` that runs
    ``handler(connection)`` on a new thread for every client.

    The socket is bound when ``serve`` returns (``server.port`` is the
    actual port with ``port=0``). Then either::

        server = libws.serve("127.0.0.1", 8765, handler)
        server.serve_forever()          # blocks; Ctrl-C or server.shutdown() ends it

    or, in the background::

        with libws.serve("127.0.0.1", 0, handler, background=True) as server:
            ...                         # server.port; shut down on exit

    When the handler returns, the connection is closed with 1000 (1011 if
    the handler raised; the exception is logged on logger "libws").

    Args:
        host, port: where to listen (port 0 picks a free port).
        handler: called with each :class:`Connection`; its
            ``connection.request`` is the :class:`Request` (path, headers).
        subprotocols: supported subprotocols in order of preference.
        check_origin: ``check_origin(request) -> bool``; False answers 403.
            Default (None): :func:`same_origin` (refuse an Origin whose host
            differs from Host). Pass ``lambda r: True`` to accept any.
        background: start accepting in a daemon thread (:meth:`Server.start`).
        response_headers: extra headers for every 101 answer.
        handshake_timeout: seconds a client has to complete its handshake
            (default 10).
        max_size: largest incoming message (None: no limit).
        close_timeout: default close handshake wait of each connection.
        compression: ``None`` (default: off), ``"deflate"`` to accept
            permessage-deflate offers with the defaults, or a
            :class:`Compression`.
        process_request: ``process_request(request)`` after the origin
            check: None goes on with the upgrade; an HTTP status (400-599)
            or ``(status, headers, body)`` answers with that instead (e.g.
            401 with ``WWW-Authenticate``, or a health check's 200 is not
            possible: only error statuses).
        ping_interval, ping_timeout: keepalive of every connection, as
            :func:`libws.connect` (default 20 s and 20 s; None: off).
        tls: a :class:`libws.ServerTLS`: serve ``wss://`` (TLS on every
            accepted connection).
        certfile, keyfile: shorthand for ``tls=ServerTLS(certfile,
            keyfile)`` (``keyfile`` defaults to ``certfile``).
    """
    server = Server(
        host,
        port,
        handler,
        subprotocols=subprotocols,
        check_origin=check_origin,
        response_headers=response_headers,
        handshake_timeout=handshake_timeout,
        max_size=max_size,
        close_timeout=close_timeout,
        compression=compression,
        process_request=process_request,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        tls=_server_tls(tls, certfile, keyfile),
    )
    if background:
        server.start()
    return server
