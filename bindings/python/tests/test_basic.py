"""Round trips, properties, JSON, subprotocols, headers, iteration."""

import inspect
import socket
import time

import pytest

import libws
from conftest import SIZES, payload


def test_library_loaded():
    assert libws.library_path.endswith(("libws.so", "libws.dylib", "ws.dll"))
    assert libws.library_version


def test_has_tls_decides_what_a_wss_url_gets():
    """With TLS (the default build) a wss:// dial to a closed port fails to
    connect; a libws built with ``make install TLS=0`` refuses it before
    connecting, with WS_ERR_UNSUPPORTED and the reason."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(libws.LibwsError) as e:
        libws.connect(f"wss://127.0.0.1:{port}/", timeout=10, proxy=None)
    if libws.HAS_TLS:
        assert isinstance(e.value, libws.ConnectError), e.value
    else:
        assert e.value.ws_status == libws._ffi.WS_ERR_UNSUPPORTED, e.value
        assert "built without TLS" in e.value.message


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("text", [True, False], ids=["str", "bytes"])
def test_roundtrip(echo_url, size, text):
    msg = payload(size, text)
    with libws.connect(echo_url, max_size=None) as ws:
        ws.send(msg)
        got = ws.recv(timeout=30)
    assert type(got) is type(msg)
    assert len(got) == size
    assert got == msg


def test_bytearray_and_memoryview(echo_url):
    with libws.connect(echo_url) as ws:
        ws.send(bytearray(b"abc"))
        assert ws.recv(timeout=5) == b"abc"
        ws.send(memoryview(b"xyz123")[1:4])
        assert ws.recv(timeout=5) == b"yz1"


def test_non_ascii_text(echo_url):
    with libws.connect(echo_url) as ws:
        ws.send("héllo wörld ✓ 🎉")
        assert ws.recv(timeout=5) == "héllo wörld ✓ 🎉"


def test_many_messages_in_order(echo_url):
    with libws.connect(echo_url) as ws:
        for i in range(500):
            ws.send(f"m{i}")
        for i in range(500):
            assert ws.recv(timeout=5) == f"m{i}"


def test_json(echo_url):
    with libws.connect(echo_url) as ws:
        ws.send_json({"a": [1, 2, 3], "b": "ü"})
        assert ws.recv_json(timeout=5) == {"a": [1, 2, 3], "b": "ü"}
        ws.send('{"x": 1}')
        assert ws.recv_json(timeout=5) == {"x": 1}


def test_iteration_ends_on_normal_close():
    def handler(ws):
        for i in range(3):
            ws.send(str(i))
        ws.close(1000, "done")

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert list(ws) == ["0", "1", "2"]
            assert ws.close_code == 1000
            assert ws.close_reason == "done"


def test_properties(echo_server, echo_url):
    with libws.connect(echo_url) as ws:
        assert ws.subprotocol is None
        assert ws.local_address[0] == "127.0.0.1"
        assert ws.remote_address == ("127.0.0.1", echo_server.port)
        assert ws.close_code is None
        assert ws.close_reason is None
        assert not ws.closed
        assert any(k.lower() == "sec-websocket-accept" for k, _ in ws.response_headers)
        assert "open" in repr(ws)
    assert ws.closed
    assert ws.close_code == 1000
    assert ws.close_reason == ""


def test_subprotocol_negotiation():
    seen = {}

    def handler(ws):
        seen["sub"] = ws.subprotocol
        seen["offered"] = ws.request.subprotocols
        ws.send(ws.subprotocol or "")

    with libws.serve("127.0.0.1", 0, handler, subprotocols=["chat.v2", "chat.v1"], background=True) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with libws.connect(url, subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.subprotocol == "chat.v2"
            assert ws.recv(timeout=5) == "chat.v2"
        assert seen == {"sub": "chat.v2", "offered": ["chat.v1", "chat.v2"]}
        with libws.connect(url, subprotocols=["other"]) as ws:
            assert ws.subprotocol is None


def test_request_headers_and_path():
    seen = {}

    def handler(ws):
        seen["path"] = ws.request.path
        seen["auth"] = ws.request.header("authorization")
        seen["x"] = ws.request.header("X-Custom")
        seen["method"] = ws.request.method
        seen["remote"] = ws.request.remote_address == ws.remote_address

    with libws.serve(
        "127.0.0.1", 0, handler, background=True, response_headers=[("X-Server", "libws-py")]
    ) as server:
        url = f"ws://127.0.0.1:{server.port}/room/1?x=y"
        with libws.connect(url, headers={"Authorization": "Bearer t", "X-Custom": "v"}) as ws:
            assert ("X-Server", "libws-py") in ws.response_headers
            with pytest.raises(libws.ConnectionClosedOK):
                ws.recv(timeout=5)
    assert seen == {"path": "/room/1?x=y", "auth": "Bearer t", "x": "v", "method": "GET", "remote": True}


def test_headers_as_pairs_and_wrong_types(echo_url):
    with libws.connect(echo_url, headers=[("X-A", "1"), ("X-A", "2")]) as ws:
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"
    with pytest.raises(TypeError):
        libws.connect(echo_url, headers={"X-A": 1})
    with pytest.raises(TypeError):
        libws.connect(echo_url, headers=[1, 2])
    with pytest.raises(TypeError):
        libws.connect(b"ws://127.0.0.1/")


def test_forbidden_header_refused(echo_url):
    with pytest.raises(libws.InvalidArgument):
        libws.connect(echo_url, headers={"Sec-WebSocket-Key": "x"})


def test_origin_check():
    def handler(ws):
        ws.send(ws.request.origin or "none")

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        # default: same origin only
        with libws.connect(url, origin=f"http://127.0.0.1:{server.port}") as ws:
            assert ws.recv(timeout=5) == f"http://127.0.0.1:{server.port}"
        with pytest.raises(libws.HandshakeError) as ei:
            libws.connect(url, origin="http://evil.example")
        assert ei.value.status == 403
    allowed = []

    def check(req):
        allowed.append(req.origin)
        return req.origin == "http://good.example"

    with libws.serve("127.0.0.1", 0, handler, check_origin=check, background=True) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with libws.connect(url, origin="http://good.example") as ws:
            assert ws.recv(timeout=5) == "http://good.example"
        with pytest.raises(libws.HandshakeError) as ei:
            libws.connect(url, origin="http://evil.example")
        assert ei.value.status == 403
    assert allowed == ["http://good.example", "http://evil.example"]


def test_check_origin_exception_refuses(caplog):
    def check(req):
        raise RuntimeError("boom in check")

    with libws.serve("127.0.0.1", 0, lambda ws: None, check_origin=check, background=True) as server:
        with pytest.raises(libws.HandshakeError) as ei:
            libws.connect(f"ws://127.0.0.1:{server.port}/")
        assert ei.value.status == 403
    assert "boom in check" in caplog.text


def test_compression_off_by_default(echo_url):
    with libws.connect(echo_url) as ws:
        assert ws.compression is None
        ws.send("a")
        assert ws.recv(timeout=5) == "a"
    with libws.connect(echo_url, compression=False) as ws:
        assert ws.compression is None


@pytest.mark.parametrize("client", ["deflate", True, libws.Compression(level=9, client_no_context_takeover=True),
                                    libws.Compression(memory="shared"),
                                    libws.Compression(memory="dedicated", server_max_window_bits=15,
                                                      client_max_window_bits=15, mem_level=9)])
def test_compression_negotiated_and_round_trips(client):
    seen = []

    def handler(ws):
        seen.append(ws.compression)
        for m in ws:
            ws.send(m)

    with libws.serve("127.0.0.1", 0, handler, background=True, compression="deflate", max_size=None) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with libws.connect(url, compression=client, max_size=None) as ws:
            assert ws.compression == "deflate"
            for msg in ["", "x", "ab" * 100_000, bytes(range(256)) * 4096, payload(1 << 20, True)]:
                ws.send(msg)
                assert ws.recv(timeout=30) == msg
        # A client that does not offer it gets an uncompressed connection.
        with libws.connect(url) as ws:
            assert ws.compression is None
            ws.send("plain")
            assert ws.recv(timeout=5) == "plain"
    assert seen == ["deflate", None]


def test_compression_server_off_ignores_offer(echo_url):
    with libws.connect(echo_url, compression="deflate") as ws:
        assert ws.compression is None
        ws.send("x" * 1000)
        assert ws.recv(timeout=5) == "x" * 1000


def test_compression_argument_errors(echo_url):
    for bad, exc in [("gzip", ValueError), (1, ValueError), (libws.Compression(level=10), ValueError),
                     (libws.Compression(server_max_window_bits=7), ValueError),
                     (libws.Compression(threshold=-1), ValueError), (libws.Compression(level="1"), TypeError),
                     (libws.Compression(mem_level=0), ValueError), (libws.Compression(memory="big"), ValueError)]:
        with pytest.raises(exc):
            libws.connect(echo_url, compression=bad)
        with pytest.raises(exc):
            libws.serve("127.0.0.1", 0, lambda ws: None, compression=bad)


def test_docs_and_signatures():
    sig = inspect.signature(libws.connect)
    assert list(sig.parameters)[:5] == ["url", "subprotocols", "headers", "timeout", "compression"]
    sig = inspect.signature(libws.serve)
    assert list(sig.parameters)[:5] == ["host", "port", "handler", "subprotocols", "check_origin"]
    for obj in (libws.connect, libws.serve, libws.Connection, libws.Connection.recv, libws.Connection.send,
                libws.Connection.close, libws.Server, libws.HandshakeError):
        assert obj.__doc__ and len(obj.__doc__) > 40


def test_exception_hierarchy():
    import builtins

    assert issubclass(libws.TimeoutError, builtins.TimeoutError)
    assert issubclass(libws.TimeoutError, libws.LibwsError)
    assert issubclass(libws.ConnectionClosedOK, libws.ConnectionClosed)
    assert issubclass(libws.ConnectionClosedError, libws.ConnectionClosed)
    assert issubclass(libws.ProtocolError, libws.LibwsError)
    assert issubclass(libws.HandshakeError, libws.LibwsError)
    e = libws.ConnectError("nope", 16)
    assert e.errno is None and str(e) == "nope" and e.ws_status == 16
    assert e.status_name


def test_server_port_and_serve_forever():
    import threading

    server = libws.serve("127.0.0.1", 0, lambda ws: ws.send("hi"))
    assert server.port > 0
    t = threading.Thread(target=server.serve_forever)
    t.start()
    try:
        with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert ws.recv(timeout=5) == "hi"
    finally:
        server.shutdown()
        t.join(5)
    assert not t.is_alive()
    server.shutdown()  # idempotent
    with pytest.raises(libws.ConnectError):
        libws.connect(f"ws://127.0.0.1:{server.port}/", timeout=2)


def test_server_shutdown_closes_connections_with_1001():
    import threading

    entered = threading.Event()

    def handler(ws):
        entered.set()
        for m in ws:
            ws.send(m)

    server = libws.serve("127.0.0.1", 0, handler, background=True)
    ws = libws.connect(f"ws://127.0.0.1:{server.port}/")
    assert entered.wait(5)
    errors = []

    def reader():  # the client must read to answer the server's close frame
        try:
            ws.recv(timeout=10)
        except libws.ConnectionClosed as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    t0 = time.monotonic()
    server.shutdown(timeout=5)
    assert time.monotonic() - t0 < 3
    t.join(5)
    assert len(errors) == 1 and isinstance(errors[0], libws.ConnectionClosedOK)
    ei = pytest.ExceptionInfo.from_exc_info((type(errors[0]), errors[0], None))
    assert ei.value.code == 1001
    assert ei.value.reason == "server shutting down"
    ws.close()


def test_handler_exception_closes_1011(caplog):
    def handler(ws):
        raise ValueError("handler bug")

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            with pytest.raises(libws.ConnectionClosedError) as ei:
                ws.recv(timeout=5)
            assert ei.value.code == 1011
    assert "handler bug" in caplog.text


def test_many_clients_concurrently(echo_url):
    import threading

    errors = []

    def client(i):
        try:
            with libws.connect(echo_url) as ws:
                for j in range(50):
                    ws.send(f"{i}-{j}")
                    assert ws.recv(timeout=10) == f"{i}-{j}"
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
