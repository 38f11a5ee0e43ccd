"""Loading libws.so and declaring the C prototypes of include/ws.h.

Search order for the shared library (the first that exists is loaded):

1. ``$LIBWS_LIBRARY`` -- a path to the library file. When the variable is
   set, it is the only place tried (an explicit choice is never silently
   replaced by another copy).
2. ``<package>/_lib/libws.so`` -- the copy an installed package carries
   (``pip install ./bindings/python`` puts it there).
3. From a source checkout: ``$CARGO_TARGET_DIR/release/libws.so`` (when
   that variable is set) and ``<repo>/target/release/libws.so`` where
   ``<repo>`` is three directories above this file
   (bindings/python/libws/ -> repo root).

When nothing is found, :class:`LibraryNotFoundError` names every place
that was tried.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char_p,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import List, Optional

if sys.platform == "darwin":
    _LIBNAME = "libws.dylib"
elif sys.platform == "win32":
    _LIBNAME = "ws.dll"
else:
    _LIBNAME = "libws.so"

ENV_VAR = "LIBWS_LIBRARY"


class LibraryNotFoundError(ImportError):
    """The libws shared library could not be found or loaded."""


def candidate_paths() -> List[Path]:
    """The places searched for the library, in order (see module doc)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return [Path(env)]
    here = Path(__file__).resolve().parent
    paths = [here / "_lib" / _LIBNAME]
    tgt = os.environ.get("CARGO_TARGET_DIR")
    repo = here.parent.parent.parent
    if tgt:
        t = Path(tgt)
        if not t.is_absolute():
            t = repo / t
        paths.append(t / "release" / _LIBNAME)
    paths.append(repo / "target" / "release" / _LIBNAME)
    return paths


def _load() -> "tuple[ctypes.CDLL, Path]":
    tried = []
    for p in candidate_paths():
        if not p.is_file():
            tried.append(f"  {p}: not found")
            continue
        try:
            # ctypes.CDLL (not PyDLL) releases the GIL around every call.
            return ctypes.CDLL(str(p)), p
        except OSError as e:  # wrong architecture, missing symbols...
            tried.append(f"  {p}: could not be loaded: {e}")
    where = "\n".join(tried)
    how = (
        f"Build it with `cargo build --release` in the libws repository and "
        f"reinstall the package (pip install ./bindings/python), or set "
        f"{ENV_VAR} to the path of {_LIBNAME}."
    )
    if os.environ.get(ENV_VAR):
        raise LibraryNotFoundError(
            f"libws: {ENV_VAR} is set but the library there cannot be used:\n{where}\n{how}"
        )
    raise LibraryNotFoundError(f"libws: the shared library {_LIBNAME} was not found. Looked in:\n{where}\n{how}")


lib, path = _load()

# --- types ---------------------------------------------------------------

ws_status = c_int32
ws_msg_type = c_int32
conn_p = c_void_p
u8_p = c_void_p  # payload pointers are passed as addresses / buffers

CONTROL_HANDLER = CFUNCTYPE(ws_status, c_void_p, c_void_p, c_size_t, c_void_p)
CLOSE_HANDLER = CFUNCTYPE(ws_status, c_void_p, c_uint16, c_void_p, c_size_t, c_void_p)
CHECK_ORIGIN = CFUNCTYPE(c_bool, c_void_p, c_void_p)


class ws_header(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("value", c_char_p)]


class ws_compression_options(ctypes.Structure):
    _fields_ = [
        ("server_no_context_takeover", c_bool),
        ("client_no_context_takeover", c_bool),
        ("server_max_window_bits", c_uint8),
        ("client_max_window_bits", c_uint8),
        ("level", c_int32),
        ("threshold", c_size_t),
        ("mem_level", c_uint8),
        ("memory", c_int32),
    ]


# ws_compression_memory (ws.h)
WS_COMPRESSION_POOLED = 0
WS_COMPRESSION_DEDICATED = 1
WS_COMPRESSION_SHARED = 2


# --- constants (ws.h) ----------------------------------------------------

WS_TEXT = 1
WS_BINARY = 2
WS_CLOSE = 8
WS_PING = 9
WS_PONG = 10

WS_OK = 0
WS_ERR_INVALID_ARGUMENT = 1
WS_ERR_INTERNAL = 2
WS_ERR_IO = 3
WS_ERR_TIMEOUT = 4
WS_ERR_CLOSED = 5
WS_ERR_LOCALLY_CLOSED = 6
WS_ERR_CLOSE_SENT = 7
WS_ERR_PROTOCOL = 8
WS_ERR_INVALID_UTF8 = 9
WS_ERR_READ_LIMIT = 10
WS_ERR_BAD_HANDSHAKE = 11
WS_ERR_HANDSHAKE_REJECTED = 12
WS_ERR_BUSY = 13
WS_ERR_WRITE_INCOMPLETE = 14
WS_ERR_BAD_URL = 15
WS_ERR_CONNECT = 16
WS_ERR_UNSUPPORTED = 17
WS_ERR_NOT_FOUND = 18
WS_ERR_BUFFER_TOO_SMALL = 19
WS_ERR_HANDLER = 20
WS_ERR_INVALID_DATA = 21
WS_ERR_QUEUE_FULL = 22
WS_ERR_TLS = 30
WS_ERR_TLS_CERTIFICATE = 31
WS_ERR_TLS_CONFIG = 32
WS_ERR_PROXY = 33
WS_ERR_PROXY_REFUSED = 34

WS_TLS_1_2 = 12
WS_TLS_1_3 = 13
WS_TLS_CLIENT_AUTH_NONE = 0
WS_TLS_CLIENT_AUTH_OPTIONAL = 1
WS_TLS_CLIENT_AUTH_REQUIRED = 2

MAX_REASON_LEN = 123
MAX_CONTROL_PAYLOAD = 125


def _fn(name: str, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


# connection
ws_conn_free = _fn("ws_conn_free", None, conn_p)
ws_conn_close = _fn("ws_conn_close", ws_status, conn_p)
ws_conn_close_graceful = _fn("ws_conn_close_graceful", ws_status, conn_p, c_uint16, c_char_p, c_size_t, c_int64)
ws_conn_read_message = _fn(
    "ws_conn_read_message", ws_status, conn_p, POINTER(ws_msg_type), POINTER(c_void_p), POINTER(c_size_t)
)
ws_conn_write_message = _fn("ws_conn_write_message", ws_status, conn_p, ws_msg_type, c_void_p, c_size_t)
ws_conn_write_control = _fn("ws_conn_write_control", ws_status, conn_p, ws_msg_type, c_char_p, c_size_t, c_int64)
ws_conn_flush = _fn("ws_conn_flush", ws_status, conn_p)
ws_conn_set_read_deadline = _fn("ws_conn_set_read_deadline", ws_status, conn_p, c_int64)
ws_conn_set_write_deadline = _fn("ws_conn_set_write_deadline", ws_status, conn_p, c_int64)
ws_conn_set_read_limit = _fn("ws_conn_set_read_limit", ws_status, conn_p, c_uint64)
ws_conn_set_ping_handler = _fn("ws_conn_set_ping_handler", ws_status, conn_p, CONTROL_HANDLER, c_void_p)
ws_conn_set_pong_handler = _fn("ws_conn_set_pong_handler", ws_status, conn_p, CONTROL_HANDLER, c_void_p)
ws_conn_set_close_handler = _fn("ws_conn_set_close_handler", ws_status, conn_p, CLOSE_HANDLER, c_void_p)
ws_conn_default_ping_handler = _fn(
    "ws_conn_default_ping_handler", ws_status, conn_p, c_void_p, c_size_t, c_void_p
)
ws_conn_default_close_handler = _fn(
    "ws_conn_default_close_handler", ws_status, conn_p, c_uint16, c_void_p, c_size_t, c_void_p
)
ws_conn_close_code = _fn("ws_conn_close_code", c_uint16, conn_p)
ws_conn_close_reason = _fn("ws_conn_close_reason", ws_status, conn_p, c_char_p, c_size_t, POINTER(c_size_t))
ws_conn_subprotocol = _fn("ws_conn_subprotocol", c_char_p, conn_p)
ws_conn_local_addr = _fn("ws_conn_local_addr", ws_status, conn_p, c_char_p, c_size_t, POINTER(c_size_t))
ws_conn_remote_addr = _fn("ws_conn_remote_addr", ws_status, conn_p, c_char_p, c_size_t, POINTER(c_size_t))
ws_conn_fd = _fn("ws_conn_fd", c_int32, conn_p)
ws_conn_last_error = _fn("ws_conn_last_error", c_size_t, conn_p, c_char_p, c_size_t)

# compression (permessage-deflate)
ws_compression_options_default = _fn("ws_compression_options_default", ws_compression_options)
ws_conn_compression_negotiated = _fn("ws_conn_compression_negotiated", c_bool, conn_p)
ws_dialer_set_compression = _fn(
    "ws_dialer_set_compression", ws_status, c_void_p, POINTER(ws_compression_options)
)
ws_upgrader_set_compression = _fn(
    "ws_upgrader_set_compression", ws_status, c_void_p, POINTER(ws_compression_options)
)

# client
ws_dialer_new = _fn("ws_dialer_new", c_void_p)
ws_dialer_free = _fn("ws_dialer_free", None, c_void_p)
ws_dialer_set_subprotocols = _fn("ws_dialer_set_subprotocols", ws_status, c_void_p, POINTER(c_char_p), c_size_t)
ws_dialer_add_header = _fn("ws_dialer_add_header", ws_status, c_void_p, c_char_p, c_char_p)
ws_dialer_set_handshake_timeout = _fn("ws_dialer_set_handshake_timeout", ws_status, c_void_p, c_int64)
ws_dialer_set_read_limit = _fn("ws_dialer_set_read_limit", ws_status, c_void_p, c_uint64)
ws_dialer_set_buffer_sizes = _fn("ws_dialer_set_buffer_sizes", ws_status, c_void_p, c_size_t, c_size_t)
ws_dial = _fn(
    "ws_dial", ws_status, c_void_p, c_char_p, POINTER(ws_header), c_size_t, POINTER(c_void_p), POINTER(c_void_p)
)

# responses and requests
ws_response_status = _fn("ws_response_status", c_uint16, c_void_p)
ws_response_header_count = _fn("ws_response_header_count", c_size_t, c_void_p)
ws_response_header_at = _fn(
    "ws_response_header_at",
    ws_status,
    c_void_p,
    c_size_t,
    POINTER(c_void_p),
    POINTER(c_size_t),
    POINTER(c_void_p),
    POINTER(c_size_t),
)
ws_response_body = _fn("ws_response_body", ws_status, c_void_p, POINTER(c_void_p), POINTER(c_size_t))
ws_response_free = _fn("ws_response_free", None, c_void_p)

ws_request_method = _fn("ws_request_method", ws_status, c_void_p, POINTER(c_void_p), POINTER(c_size_t))
ws_request_target = _fn("ws_request_target", ws_status, c_void_p, POINTER(c_void_p), POINTER(c_size_t))
ws_request_header_count = _fn("ws_request_header_count", c_size_t, c_void_p)
ws_request_header_at = _fn(
    "ws_request_header_at",
    ws_status,
    c_void_p,
    c_size_t,
    POINTER(c_void_p),
    POINTER(c_size_t),
    POINTER(c_void_p),
    POINTER(c_size_t),
)
ws_request_remote_addr = _fn("ws_request_remote_addr", ws_status, c_void_p, c_char_p, c_size_t, POINTER(c_size_t))
ws_request_subprotocol = _fn(
    "ws_request_subprotocol", ws_status, c_void_p, c_size_t, POINTER(c_void_p), POINTER(c_size_t)
)

# server
ws_upgrader_new = _fn("ws_upgrader_new", c_void_p)

# TLS and proxies
ws_tls_client_config_new = _fn("ws_tls_client_config_new", c_void_p)
ws_tls_client_config_free = _fn("ws_tls_client_config_free", None, c_void_p)
ws_tls_client_config_add_ca_file = _fn("ws_tls_client_config_add_ca_file", ws_status, c_void_p, c_char_p)
ws_tls_client_config_add_ca_pem = _fn("ws_tls_client_config_add_ca_pem", ws_status, c_void_p, c_char_p, c_size_t)
ws_tls_client_config_use_system_roots = _fn("ws_tls_client_config_use_system_roots", ws_status, c_void_p, c_bool)
ws_tls_client_config_set_certificate_files = _fn(
    "ws_tls_client_config_set_certificate_files", ws_status, c_void_p, c_char_p, c_char_p
)
ws_tls_client_config_set_min_version = _fn("ws_tls_client_config_set_min_version", ws_status, c_void_p, c_int32)
ws_tls_client_config_insecure_skip_hostname_verification = _fn(
    "ws_tls_client_config_insecure_skip_hostname_verification", ws_status, c_void_p, c_bool
)
ws_dialer_set_tls = _fn("ws_dialer_set_tls", ws_status, c_void_p, c_void_p)
ws_dialer_set_proxy = _fn("ws_dialer_set_proxy", ws_status, c_void_p, c_char_p)
ws_tls_server_config_new_files = _fn(
    "ws_tls_server_config_new_files", ws_status, c_char_p, c_char_p, POINTER(c_void_p)
)
ws_tls_server_config_free = _fn("ws_tls_server_config_free", None, c_void_p)
ws_tls_server_config_replace_certificate_files = _fn(
    "ws_tls_server_config_replace_certificate_files", ws_status, c_void_p, c_char_p, c_char_p
)
ws_tls_server_config_set_client_auth = _fn(
    "ws_tls_server_config_set_client_auth", ws_status, c_void_p, c_int32, c_char_p
)
ws_tls_server_config_set_min_version = _fn("ws_tls_server_config_set_min_version", ws_status, c_void_p, c_int32)
ws_upgrader_set_tls = _fn("ws_upgrader_set_tls", ws_status, c_void_p, c_void_p)
ws_conn_is_tls = _fn("ws_conn_is_tls", c_bool, c_void_p)
ws_conn_tls_peer_certificate = _fn(
    "ws_conn_tls_peer_certificate", ws_status, c_void_p, c_size_t, c_void_p, c_size_t, POINTER(c_size_t)
)
ws_upgrader_free = _fn("ws_upgrader_free", None, c_void_p)
ws_upgrader_set_subprotocols = _fn(
    "ws_upgrader_set_subprotocols", ws_status, c_void_p, POINTER(c_char_p), c_size_t
)
ws_upgrader_set_check_origin = _fn("ws_upgrader_set_check_origin", ws_status, c_void_p, CHECK_ORIGIN, c_void_p)
ws_upgrader_add_response_header = _fn("ws_upgrader_add_response_header", ws_status, c_void_p, c_char_p, c_char_p)
ws_upgrader_set_handshake_timeout = _fn("ws_upgrader_set_handshake_timeout", ws_status, c_void_p, c_int64)
ws_upgrader_set_read_limit = _fn("ws_upgrader_set_read_limit", ws_status, c_void_p, c_uint64)
ws_upgrader_set_timeouts = _fn("ws_upgrader_set_timeouts", ws_status, c_void_p, c_int64, c_int64)
ws_set_memory_budget = _fn("ws_set_memory_budget", ws_status, c_uint64)
ws_memory_budget_used = _fn("ws_memory_budget_used", c_uint64)
ws_memory_budget = _fn("ws_memory_budget", c_uint64)
ws_upgrader_set_buffer_sizes = _fn("ws_upgrader_set_buffer_sizes", ws_status, c_void_p, c_size_t, c_size_t)
ws_listen = _fn("ws_listen", ws_status, c_void_p, c_char_p, c_uint16, POINTER(c_void_p))
ws_listener_accept = _fn("ws_listener_accept", ws_status, c_void_p, c_int64, POINTER(c_void_p))
ws_listener_port = _fn("ws_listener_port", c_uint16, c_void_p)
ws_listener_addr = _fn("ws_listener_addr", ws_status, c_void_p, c_char_p, c_size_t, POINTER(c_size_t))
ws_listener_shutdown = _fn("ws_listener_shutdown", ws_status, c_void_p)
ws_listener_free = _fn("ws_listener_free", None, c_void_p)

# event loop (ws_loop) and loop connections
ws_loop_p = c_void_p
ON_HANDSHAKE = CFUNCTYPE(c_int32, c_void_p, c_void_p, POINTER(c_void_p))
ON_OPEN = CFUNCTYPE(None, c_void_p, c_void_p)
ON_MESSAGE = CFUNCTYPE(None, c_void_p, ws_msg_type, c_void_p, c_size_t, c_void_p)
ON_CONTROL = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t, c_void_p)
ON_DRAIN = CFUNCTYPE(None, c_void_p, c_void_p)
ON_ERROR = CFUNCTYPE(None, c_void_p, ws_status, c_char_p, c_void_p)
ON_CLOSE = CFUNCTYPE(None, c_void_p, c_uint16, c_void_p, c_size_t, c_void_p)
ON_DIAL_ERROR = CFUNCTYPE(None, ws_status, c_char_p, c_void_p, c_void_p)
TIMER_FN = CFUNCTYPE(None, c_void_p, c_uint64, c_void_p)


class ws_loop_callbacks(ctypes.Structure):
    _fields_ = [
        ("on_handshake", ON_HANDSHAKE),
        ("on_open", ON_OPEN),
        ("on_message", ON_MESSAGE),
        ("on_ping", ON_CONTROL),
        ("on_pong", ON_CONTROL),
        ("on_drain", ON_DRAIN),
        ("on_error", ON_ERROR),
        ("on_close", ON_CLOSE),
        ("on_dial_error", ON_DIAL_ERROR),
    ]


ws_loop_new = _fn("ws_loop_new", ws_status, POINTER(c_void_p))
ws_loop_free = _fn("ws_loop_free", None, ws_loop_p)
ws_loop_listen = _fn(
    "ws_loop_listen",
    ws_status,
    ws_loop_p,
    c_void_p,
    c_char_p,
    c_uint16,
    POINTER(ws_loop_callbacks),
    c_void_p,
    POINTER(c_uint16),
)
ws_loop_dial = _fn(
    "ws_loop_dial",
    ws_status,
    ws_loop_p,
    c_void_p,
    c_char_p,
    POINTER(ws_header),
    c_size_t,
    POINTER(ws_loop_callbacks),
    c_void_p,
)
ws_loop_poll = _fn("ws_loop_poll", ws_status, ws_loop_p, c_int64)
ws_loop_run = _fn("ws_loop_run", ws_status, ws_loop_p)
ws_loop_stop = _fn("ws_loop_stop", ws_status, ws_loop_p)
ws_loop_wake = _fn("ws_loop_wake", ws_status, ws_loop_p)
ws_loop_shutdown = _fn("ws_loop_shutdown", ws_status, ws_loop_p, c_int64)
ws_loop_fd = _fn("ws_loop_fd", c_int32, ws_loop_p)
ws_loop_next_timeout_ms = _fn("ws_loop_next_timeout_ms", c_int64, ws_loop_p)
ws_loop_timer_add = _fn(
    "ws_loop_timer_add", ws_status, ws_loop_p, c_int64, c_int64, TIMER_FN, c_void_p, POINTER(c_uint64)
)
ws_loop_timer_cancel = _fn("ws_loop_timer_cancel", ws_status, ws_loop_p, c_uint64)
ws_loop_set_keepalive = _fn("ws_loop_set_keepalive", ws_status, ws_loop_p, c_int64, c_int64)
ws_loop_set_idle_timeout = _fn("ws_loop_set_idle_timeout", ws_status, ws_loop_p, c_int64)
ws_loop_set_close_timeout = _fn("ws_loop_set_close_timeout", ws_status, ws_loop_p, c_int64)
ws_loop_set_max_buffered = _fn("ws_loop_set_max_buffered", ws_status, ws_loop_p, c_size_t)
ws_loop_broadcast = _fn("ws_loop_broadcast", ws_status, ws_loop_p, c_void_p, POINTER(c_size_t))
ws_loop_connection_count = _fn("ws_loop_connection_count", c_size_t, ws_loop_p)
# the threaded server's process_request and broadcast
ERROR_FN = CFUNCTYPE(None, c_void_p, c_void_p, c_void_p)
ws_upgrader_set_error_handler = _fn("ws_upgrader_set_error_handler", ws_status, c_void_p, ERROR_FN, c_void_p)
ws_error_response_set_status = _fn("ws_error_response_set_status", ws_status, c_void_p, c_uint16)
ws_error_response_add_header = _fn("ws_error_response_add_header", ws_status, c_void_p, c_char_p, c_char_p)
ws_error_response_set_body = _fn("ws_error_response_set_body", ws_status, c_void_p, c_void_p, c_size_t)
ws_conn_write_prepared = _fn("ws_conn_write_prepared", ws_status, conn_p, c_void_p)
# libws.asyncio (sends write through from the thread that drives the loop)
ws_loop_set_write_through = _fn("ws_loop_set_write_through", ws_status, ws_loop_p, c_bool)
ws_conn_retain = _fn("ws_conn_retain", ws_status, conn_p)
ws_conn_user_data = _fn("ws_conn_user_data", c_void_p, conn_p)
ws_conn_set_user_data = _fn("ws_conn_set_user_data", ws_status, conn_p, c_void_p)
ws_conn_buffered_amount = _fn("ws_conn_buffered_amount", c_size_t, conn_p)
ws_conn_is_loop = _fn("ws_conn_is_loop", c_bool, conn_p)
ws_conn_pause_reading = _fn("ws_conn_pause_reading", ws_status, conn_p, c_bool)
ws_prepared_message_new = _fn(
    "ws_prepared_message_new", ws_status, ws_msg_type, c_void_p, c_size_t, POINTER(c_void_p)
)
ws_prepared_message_free = _fn("ws_prepared_message_free", None, c_void_p)

# misc
ws_status_str = _fn("ws_status_str", c_char_p, ws_status)
ws_version = _fn("ws_version", c_char_p)
ws_has_tls = _fn("ws_has_tls", c_bool)
ws_last_error = _fn("ws_last_error", c_size_t, c_char_p, c_size_t)
ws_format_close_message = _fn(
    "ws_format_close_message", ws_status, c_uint16, c_char_p, c_size_t, c_char_p, c_size_t, POINTER(c_size_t)
)


def read_bytes(ptr: Optional[int], n: int) -> bytes:
    """``n`` bytes at address ``ptr`` (b"" when ``n`` is 0 or ``ptr`` NULL)."""
    if not n or not ptr:
        return b""
    return ctypes.string_at(ptr, n)


def last_error() -> str:
    """The calling thread's last libws error message (ws_last_error)."""
    n = ws_last_error(None, 0)
    if n == 0:
        return ""
    buf = ctypes.create_string_buffer(n + 1)
    ws_last_error(buf, n + 1)
    return buf.value.decode("utf-8", "replace")


def status_str(st: int) -> str:
    s = ws_status_str(st)
    return s.decode("utf-8", "replace") if s else f"status {st}"


def copy_string(fn, handle, cap: int = 128) -> Optional[str]:
    """Calls a `(obj, buf, cap, len_out)` copier and returns the string."""
    n = c_size_t(0)
    while True:
        buf = ctypes.create_string_buffer(cap)
        st = fn(handle, buf, cap, ctypes.byref(n))
        if st == WS_OK:
            return buf.raw[: n.value].decode("utf-8", "replace")
        if st == WS_ERR_BUFFER_TOO_SMALL and n.value + 1 > cap:
            cap = n.value + 1
            continue
        return None


def pair_at(fn, handle, index: int):
    """Reads a (name, value) header pair through a *_header_at function."""
    np, nl, vp, vl = c_void_p(), c_size_t(), c_void_p(), c_size_t()
    st = fn(handle, index, ctypes.byref(np), ctypes.byref(nl), ctypes.byref(vp), ctypes.byref(vl))
    if st != WS_OK:
        return None
    name = read_bytes(np.value, nl.value)
    value = read_bytes(vp.value, vl.value)
    return name.decode("latin-1"), value.decode("latin-1")
