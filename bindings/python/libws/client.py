"""libws.connect: the client side."""

from __future__ import annotations

import threading
from ctypes import byref, c_char_p, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _ffi
from .connection import (
    _PRIVATE,
    _SIGNAL_SLICE_MS,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    CloseHandler,
    Connection,
    PingHandler,
    _buffer_size,
    _limit,
    _ms,
)
from .exceptions import HandshakeError, error_for
from .tls import ClientCertArg, ClientTLS, PathLike, ProxyArg, _apply_client, _client_tls

HeadersLike = Union[Mapping[str, str], Iterable[Tuple[str, str]]]


def _header_pairs(headers: Optional[HeadersLike], origin: Optional[str] = None) -> List[Tuple[str, str]]:
    """``headers`` as (name, value) pairs, checked, with ``Origin:
    origin`` after them when given (a client's ``origin=`` argument)."""
    out = []
    if origin is not None:
        if not isinstance(origin, str):
            raise TypeError("origin must be a str")
    if headers is None:
        return [("Origin", origin)] if origin is not None else []
    items = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise TypeError("headers must be a mapping or an iterable of (name, value) pairs") from None
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        out.append((name, value))
    if origin is not None:
        out.append(("Origin", origin))
    return out


@dataclass(frozen=True)
class Compression:
    """permessage-deflate (RFC 7692) settings for :func:`connect` and
    :func:`serve` (``compression="deflate"`` means ``Compression()``).

    Attributes:
        level: zlib level of outgoing messages: -2 (Huffman only), -1
            (zlib's default), 0 (stored) to 9 (smallest). Default 1 (fast).
        threshold: messages shorter than this many bytes go out
            uncompressed (default 0: compress everything).
        server_no_context_takeover: the server resets its compressor after
            every message (client: ask for it).
        client_no_context_takeover: the client resets its compressor after
            every message (server: ask for it).
        server_max_window_bits, client_max_window_bits: LZ77 window sizes,
            8 to 15 bits (default 12).
        mem_level: the compressor's zlib memLevel, 1 to 9 (default 8).
        memory: where compression state lives: "pooled" (default; per-thread
            pool, a connection keeps only its windows' bytes, ~8 KiB),
            "dedicated" (each connection its own zlib states, fastest with
            15-bit windows, ~410 KiB) or "shared" (no context takeover
            either way, nothing per connection). See README, "Compression".
    """

    level: int = 1
    threshold: int = 0
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    mem_level: int = 8
    memory: str = "pooled"


_MEMORY = {
    "pooled": _ffi.WS_COMPRESSION_POOLED,
    "dedicated": _ffi.WS_COMPRESSION_DEDICATED,
    "shared": _ffi.WS_COMPRESSION_SHARED,
}


CompressionArg = Union[None, bool, str, Compression]


def _compression_options(compression: object) -> Optional[_ffi.ws_compression_options]:
    """The C options for a ``compression=`` argument (None: off)."""
    if compression is None or compression is False:
        return None
    if compression is True or compression in ("deflate", "permessage-deflate"):
        compression = Compression()
    if not isinstance(compression, Compression):
        raise ValueError(
            f"unsupported compression {compression!r}: use None, \"deflate\" or a libws.Compression"
        )
    c = compression
    for name in ("level", "threshold", "server_max_window_bits", "client_max_window_bits", "mem_level"):
        v = getattr(c, name)
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"Compression.{name} must be an int, not {type(v).__name__}")
    if not -2 <= c.level <= 9:
        raise ValueError(f"Compression.level must be -2 to 9, not {c.level}")
    if c.threshold < 0:
        raise ValueError("Compression.threshold must be >= 0")
    for name in ("server_max_window_bits", "client_max_window_bits"):
        if not 8 <= getattr(c, name) <= 15:
            raise ValueError(f"Compression.{name} must be 8 to 15, not {getattr(c, name)}")
    if not 1 <= c.mem_level <= 9:
        raise ValueError(f"Compression.mem_level must be 1 to 9, not {c.mem_level}")
    if c.memory not in _MEMORY:
        raise ValueError(f"Compression.memory must be 'pooled', 'dedicated' or 'shared', not {c.memory!r}")
    opts = _ffi.ws_compression_options_default()
    opts.server_no_context_takeover = bool(c.server_no_context_takeover)
    opts.client_no_context_takeover = bool(c.client_no_context_takeover)
    opts.server_max_window_bits = c.server_max_window_bits
    opts.client_max_window_bits = c.client_max_window_bits
    opts.level = c.level
    opts.threshold = c.threshold
    opts.mem_level = c.mem_level
    opts.memory = _MEMORY[c.memory]
    return opts


def _response_headers(resp: int) -> List[Tuple[str, str]]:
    out = []
    for i in range(_ffi.ws_response_header_count(resp)):
        pair = _ffi.pair_at(_ffi.ws_response_header_at, resp, i)
        if pair is not None:
            out.append(pair)
    return out


def _response_body(resp: int) -> bytes:
    p, n = c_void_p(), c_size_t()
    if _ffi.ws_response_body(resp, byref(p), byref(n)) != _ffi.WS_OK or not n.value:
        return b""
    return _ffi.read_bytes(p.value, n.value)


def _strings(items: Sequence[str], what: str):
    if isinstance(items, str):
        items = [items]
    items = list(items)
    for s in items:
        if not isinstance(s, str):
            raise TypeError(f"{what} must be strings")
    arr = (c_char_p * max(len(items), 1))(*[s.encode("utf-8") for s in items])
    return arr, len(items)



def _configure_dialer(dialer: int, *, subprotocols: Optional[Sequence[str]], timeout: Optional[float],
                      max_size: Optional[int], limit: int, copts: Optional[_ffi.ws_compression_options]) -> None:
    """The dialer settings every client of the package applies (the sync
    ``connect`` and the asyncio session path): subprotocols, handshake
    timeout, read limit, compression. Raises the status's error."""
    st = _ffi.WS_OK
    if subprotocols:
        arr, n = _strings(subprotocols, "subprotocols")
        st = _ffi.ws_dialer_set_subprotocols(dialer, arr, n)
    if st == _ffi.WS_OK and timeout is not None:
        st = _ffi.ws_dialer_set_handshake_timeout(dialer, _ms(timeout))
    if st == _ffi.WS_OK and max_size != 64 * 1024 * 1024:
        st = _ffi.ws_dialer_set_read_limit(dialer, limit)
    if st == _ffi.WS_OK and copts is not None:
        st = _ffi.ws_dialer_set_compression(dialer, byref(copts))
    if st != _ffi.WS_OK:
        raise error_for(st)

def connect(
    url: str,
    subprotocols: Optional[Sequence[str]] = None,
    headers: Optional[HeadersLike] = None,
    timeout: Optional[float] = None,
    compression: CompressionArg = None,
    *,
    origin: Optional[str] = None,
    max_size: Optional[int] = 64 * 1024 * 1024,
    close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
    on_ping: Optional[PingHandler] = None,
    on_pong: Optional[PingHandler] = None,
    on_close: Optional[CloseHandler] = None,
    read_buffer_size: int = 0,
    write_buffer_size: int = 0,
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
    tls: "Optional[ClientTLS]" = None,
    proxy: "ProxyArg" = True,
    ca: "Optional[PathLike]" = None,
    client_cert: "ClientCertArg" = None,
) -> Connection:
    """Opens a WebSocket connection to ``url`` and returns a :class:`Connection`.

    Example::

        with libws.connect("ws://127.0.0.1:8765/chat", subprotocols=["chat"]) as ws:
            ws.send("hello")          # text message
            ws.send(b"\\x00\\x01")      # binary message
            reply = ws.recv(timeout=5)  # str for text, bytes for binary

    Args:
        url: ``ws://host[:port][/path][?query]`` or ``wss://...`` (TLS,
            checked against the system's trust store unless ``tls`` says
            otherwise).
        subprotocols: subprotocols to offer, in order of preference; the
            chosen one is :attr:`Connection.subprotocol`.
        headers: extra request headers, a mapping or ``(name, value)``
            pairs (e.g. ``Authorization``, ``Cookie``). Headers that libws
            writes itself (Host, Upgrade, Sec-WebSocket-*...) are refused.
        timeout: seconds allowed for connecting and the opening handshake
            (``None``: libws's default of 45 s). Name resolution is not
            covered.
        compression: ``None`` (default: off), ``"deflate"`` to offer
            permessage-deflate with the defaults, or a :class:`Compression`
            with its parameters. Whether the server accepted is
            :attr:`Connection.compression`.
        origin: value of the ``Origin`` header.
        max_size: largest incoming message in bytes (``None``: no limit);
            a larger one fails the connection with close 1009.
        close_timeout: default seconds :meth:`Connection.close` waits for
            the peer's close frame.
        on_ping, on_pong, on_close: handlers, see :class:`Connection`.
        read_buffer_size, write_buffer_size: I/O buffer sizes in bytes
            (0: 16 KiB; at most 64 MiB). They do not limit message sizes.
        ping_interval, ping_timeout: keepalive (as in ``websockets``): a
            ping every ``ping_interval`` seconds from a shared background
            thread; when its pong is not there within ``ping_timeout`` the
            connection is closed (1011) and blocked calls raise
            ConnectionClosedError. None turns either off. Pongs are read by
            recv(); a program that does not read has them read for it.
        tls: a :class:`libws.ClientTLS` for ``wss://`` (the CAs to trust,
            a client certificate, the lowest version) and HTTPS proxies.
        ca: shorthand for ``tls=ClientTLS(ca_file=ca)``: a PEM file of the
            CAs to trust (instead of the system's).
        client_cert: a client certificate for mutual TLS: a PEM file with
            the chain and its key, or a ``(cert_file, key_file)`` pair.
        proxy: ``True`` (default): the environment's ``http_proxy`` /
            ``https_proxy`` / ``all_proxy`` / ``no_proxy``, as
            ``websockets`` does; ``None``: connect directly; or a proxy URL
            (``http://``, ``https://``, ``socks5://``, ``socks5h://``,
            optionally with ``user:password@``).

    Raises:
        HandshakeError: the server did not accept the upgrade; ``.status``,
            ``.headers`` and ``.body`` hold its HTTP answer when one came.
        TimeoutError: the handshake did not finish within ``timeout``.
        ConnectionRefused: nothing listens there (also a builtin
            ConnectionRefusedError).
        ConnectError: the host could not be reached.
        InvalidURI: ``url`` is not a usable ws:// or wss:// URL.
        CertificateError: the server's certificate was refused (untrusted,
            expired, another host name), or the server refused ours.
        TLSError: the TLS handshake failed.
        TLSConfigError: a file of ``tls`` could not be used.
        ProxyError: the proxy failed or refused the tunnel.
        ValueError: an invalid ``compression`` or ``timeout``.
        TypeError: an argument has the wrong type.
    """
    copts = _compression_options(compression)
    limit = _limit(max_size, "max_size")
    rbuf = _buffer_size(read_buffer_size, "read_buffer_size")
    wbuf = _buffer_size(write_buffer_size, "write_buffer_size")
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    for name, v in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0):
            raise ValueError(f"{name} must be a number of seconds >= 0 or None, not {v!r}")
    pairs = _header_pairs(headers, origin)
    dialer = _ffi.ws_dialer_new()
    if not dialer:
        raise MemoryError("ws_dialer_new failed")
    try:
        _configure_dialer(dialer, subprotocols=subprotocols, timeout=timeout, max_size=max_size, limit=limit,
                          copts=copts)
        if rbuf or wbuf:
            st = _ffi.ws_dialer_set_buffer_sizes(dialer, rbuf, wbuf)
            if st != _ffi.WS_OK:
                raise error_for(st)
        _apply_client(dialer, _client_tls(tls, ca, client_cert), proxy)
        hdrs = (_ffi.ws_header * max(len(pairs), 1))()
        keep = []
        for i, (k, v) in enumerate(pairs):
            kb, vb = k.encode("latin-1"), v.encode("latin-1")
            if b"\0" in kb or b"\0" in vb:
                raise ValueError("header names and values must not contain NUL")
            keep.append((kb, vb))
            hdrs[i].name = kb
            hdrs[i].value = vb
        ub = url.encode("utf-8")
        if b"\0" in ub:
            raise ValueError("url must not contain NUL")
    except BaseException:
        _ffi.ws_dialer_free(dialer)
        raise
    st, conn, resp, msg = _dial_interruptible(dialer, ub, hdrs, len(pairs), keep)
    try:
        if st != _ffi.WS_OK:
            if resp.value:
                raise HandshakeError(
                    msg or f"the server answered HTTP {_ffi.ws_response_status(resp.value)}",
                    st,
                    status=_ffi.ws_response_status(resp.value),
                    headers=_response_headers(resp.value),
                    body=_response_body(resp.value),
                )
            raise error_for(st, msg)
        response_headers = _response_headers(resp.value) if resp.value else []
    finally:
        if resp.value:
            _ffi.ws_response_free(resp.value)
    return Connection(
        conn.value or 0,
        _private=_PRIVATE,
        close_timeout=close_timeout,
        on_ping=on_ping,
        on_pong=on_pong,
        on_close=on_close,
        response_headers=response_headers,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
    )


def _dial(dialer: int, ub: bytes, hdrs: object, n: int) -> Tuple[int, c_void_p, c_void_p, str]:
    """ws_dial; frees the dialer. Returns (status, conn, response, error)."""
    conn, resp = c_void_p(), c_void_p()
    try:
        st = _ffi.ws_dial(dialer, ub, hdrs, n, byref(conn), byref(resp))
        return st, conn, resp, (_ffi.last_error() if st != _ffi.WS_OK else "")
    finally:
        _ffi.ws_dialer_free(dialer)


def _dial_interruptible(dialer: int, ub: bytes, hdrs: object, n: int,
                        keep: object) -> Tuple[int, c_void_p, c_void_p, str]:
    """In the main thread, ws_dial runs on a helper thread while this one
    waits in slices, so that Ctrl-C is answered at once (libws's dial
    blocks up to its handshake timeout). An abandoned dial cleans up after
    itself when it ends. Elsewhere, the dial runs here."""
    if threading.current_thread() is not threading.main_thread():
        return _dial(dialer, ub, hdrs, n)
    box: List[Tuple[int, c_void_p, c_void_p, str]] = []
    lock = threading.Lock()
    done = threading.Event()
    abandoned = [False]

    def work() -> None:
        r = _dial(dialer, ub, hdrs, n)
        _ = keep  # the header strings live until the dial is over
        with lock:
            box.append(r)
            done.set()
            if abandoned[0]:
                _discard(r)

    threading.Thread(target=work, name="libws-connect", daemon=True).start()
    try:
        while not done.wait(_SIGNAL_SLICE_MS / 1000):
            pass
    except BaseException:
        with lock:
            abandoned[0] = True
            if box:
                _discard(box[0])
        raise
    return box[0]


def _discard(r: Tuple[int, c_void_p, c_void_p, str]) -> None:
    _, conn, resp, _ = r
    if conn.value:
        _ffi.ws_conn_close(conn.value)
        _ffi.ws_conn_free(conn.value)
    if resp.value:
        _ffi.ws_response_free(resp.value)
