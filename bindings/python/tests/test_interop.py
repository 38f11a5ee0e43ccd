"""Interoperability with the Python `websockets` package (its threaded
sync API, websockets.sync, in this process): a libws client against a
`websockets` server and a `websockets` client against a libws server.
Everything on 127.0.0.1 with ephemeral ports; every wait has a timeout."""

import threading
from http import HTTPStatus

import pytest

websockets = pytest.importorskip("websockets", reason="interop tests need the websockets package")
from websockets.exceptions import ConnectionClosed as WSClosed  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402
from websockets.sync.server import serve as ws_serve  # noqa: E402

import libws  # noqa: E402
from conftest import SIZES, payload  # noqa: E402

TIMEOUT = 30


class WebsocketsServer:
    """A `websockets` sync server on a thread; `handler(conn)` per client."""

    def __init__(self, handler, **kwargs):
        kwargs.setdefault("max_size", None)
        self.server = ws_serve(handler, "127.0.0.1", 0, **kwargs)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


class Record(list):
    """What websockets handlers saw; `ended` is set after each append."""

    def __init__(self):
        super().__init__()
        self.ended = threading.Event()

    def add(self, item):
        self.append(item)
        self.ended.set()


def _ws_echo(record):
    """A websockets handler: echo, plus a few commands; records how it ended."""

    def handler(conn):
        try:
            for msg in conn:
                if msg == "?subprotocol":
                    conn.send(f"subprotocol={conn.subprotocol}")
                elif msg == "?ping":
                    conn.ping(b"py-ping").wait(TIMEOUT)
                    conn.send("pong-received")
                elif isinstance(msg, str) and msg.startswith("?close "):
                    _, code, reason = msg.split(" ", 2)
                    conn.close(int(code), reason)
                else:
                    conn.send(msg)
        except WSClosed:
            pass
        rcvd = conn.protocol.close_rcvd
        record.add((rcvd.code, rcvd.reason) if rcvd else None)

    return handler


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_libws_client_against_websockets_server(compression):
    ended = Record()
    with WebsocketsServer(_ws_echo(ended), subprotocols=["chat.v1"],
                          compression="deflate" if compression else None) as srv:
        pongs = []
        with libws.connect(srv.url, subprotocols=["unknown", "chat.v1"], compression=compression,
                           max_size=None, timeout=10, on_pong=pongs.append) as ws:
            assert ws.subprotocol == "chat.v1"
            assert ws.compression == compression
            ws.send("?subprotocol")
            assert ws.recv(timeout=TIMEOUT) == "subprotocol=chat.v1"
            for text in (True, False):
                for n in SIZES:
                    msg = payload(n, text)
                    ws.send(msg)
                    got = ws.recv(timeout=TIMEOUT)
                    assert type(got) is type(msg) and len(got) == n and got == msg, (text, n)
            ws.send_json({"k": [1, "ü"]})
            assert ws.recv_json(timeout=TIMEOUT) == {"k": [1, "ü"]}
            # our ping, their pong (seen before the echo of a later message)
            ws.ping(b"libws-ping")
            ws.send("after ping")
            assert ws.recv(timeout=TIMEOUT) == "after ping"
            assert pongs == [b"libws-ping"]
            # their ping, our default pong
            pings = []
            ws.on_ping = pings.append
            ws.send("?ping")
            assert ws.recv(timeout=TIMEOUT) == "pong-received"
            assert pings == [b"py-ping"]
            ws.close(1000, "libws client done", timeout=10)
            assert ws.close_code == 1000
        assert ended.ended.wait(TIMEOUT)
    assert ended == [(1000, "libws client done")]


def test_websockets_server_closes_with_code():
    ended = Record()
    with WebsocketsServer(_ws_echo(ended)) as srv:
        with libws.connect(srv.url) as ws:
            ws.send("?close 4001 bye from python")
            with pytest.raises(libws.ConnectionClosedError) as ei:
                ws.recv(timeout=TIMEOUT)
            assert (ei.value.code, ei.value.reason) == (4001, "bye from python")
            assert (ws.close_code, ws.close_reason) == (4001, "bye from python")


def test_websockets_server_refuses_handshake():
    def process_request(conn, request):
        resp = conn.respond(HTTPStatus.FORBIDDEN, "no entry\n")
        resp.headers["X-Why"] = "interop test"
        return resp

    with WebsocketsServer(lambda conn: None, process_request=process_request) as srv:
        with pytest.raises(libws.HandshakeError) as ei:
            libws.connect(srv.url, timeout=10)
    e = ei.value
    assert e.status == 403
    assert e.header("x-why") == "interop test"
    assert e.body == b"no entry\n"


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websockets_client_against_libws_server(compression):
    seen = []
    done = threading.Event()

    def handler(ws):
        seen.append((ws.subprotocol, ws.compression, ws.request.path))
        try:
            for msg in ws:
                if msg == "?close":
                    ws.close(4002, "bye from libws")
                    break
                ws.send(msg)
        except libws.ConnectionClosed as e:
            seen.append(("closed", e.code, e.reason))
        else:
            seen.append(("ended", ws.close_code, ws.close_reason))
        done.set()

    with libws.serve("127.0.0.1", 0, handler, subprotocols=["chat.v1"], compression=compression,
                     max_size=None, background=True) as server:
        url = f"ws://127.0.0.1:{server.port}/room?x=1"
        with ws_connect(url, subprotocols=["chat.v1"], compression="deflate" if compression else None,
                        max_size=None, open_timeout=10, close_timeout=10) as c:
            assert c.subprotocol == "chat.v1"
            for text in (True, False):
                for n in SIZES:
                    msg = payload(n, text)
                    c.send(msg)
                    got = c.recv(timeout=TIMEOUT)
                    assert type(got) is type(msg) and got == msg, (text, n)
            assert c.ping(b"py-ping").wait(TIMEOUT), "libws did not answer the ping"
            c.close(1000, "python client done")
        assert done.wait(TIMEOUT)
        # A second client: the libws side closes with its own code.
        done.clear()
        with ws_connect(url, open_timeout=10, close_timeout=10) as c:
            c.send("?close")
            with pytest.raises(WSClosed) as ei:
                c.recv(timeout=TIMEOUT)
            assert (ei.value.rcvd.code, ei.value.rcvd.reason) == (4002, "bye from libws")
        assert done.wait(TIMEOUT)
    # iteration ended on the normal close (1000), with code and reason kept
    assert seen[0] == ("chat.v1", compression, "/room?x=1")
    assert seen[1] == ("ended", 1000, "python client done")
    # our own close: close_code/close_reason are the peer's answer (websockets echoes both)
    assert seen[2][:1] == (None,) and seen[3] == ("ended", 4002, "bye from libws")


def test_libws_server_refuses_websockets_client_origin():
    with libws.serve("127.0.0.1", 0, lambda ws: None, background=True) as server:
        with pytest.raises(websockets.exceptions.InvalidStatus) as ei:
            ws_connect(f"ws://127.0.0.1:{server.port}/", origin="http://evil.example", open_timeout=10)
        assert ei.value.response.status_code == 403
