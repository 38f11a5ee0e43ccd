"""Ping/pong/close handlers, close codes, timeouts, concurrency, misuse,
handshake and protocol errors."""

import gc
import logging
import struct
import threading
import time

import pytest

import libws
from conftest import accept_key, drain


# -- ping / pong ---------------------------------------------------------------


def test_ping_pong_handlers():
    server_pings = []

    def handler(ws):
        ws.on_ping = server_pings.append
        for m in ws:
            ws.send(m)

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        pongs = []
        with libws.connect(f"ws://127.0.0.1:{server.port}/", on_pong=pongs.append) as ws:
            ws.ping(b"abc")
            ws.ping("text-ping")
            ws.ping()
            ws.send("after")
            assert ws.recv(timeout=5) == "after"
            # The pongs came before the echo, so recv() ran the handler.
            assert pongs == [b"abc", b"text-ping", b""]
            assert ws.on_pong == pongs.append
    assert server_pings == [b"abc", b"text-ping", b""]


def test_ping_handler_on_client_and_auto_pong():
    got = []

    def handler(ws):
        ws.on_pong = lambda d: got.append(("pong", d))
        ws.ping(b"from-server")
        for m in ws:
            ws.send(m)

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        pings = []
        with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            ws.on_ping = pings.append
            ws.send("x")
            assert ws.recv(timeout=5) == "x"
            assert pings == [b"from-server"]
            ws.send("y")  # the server reads our pong before "y"
            assert ws.recv(timeout=5) == "y"
            ws.on_ping = None  # back to the default
            assert ws.on_ping is None
    assert got == [("pong", b"from-server")]


def test_ping_payload_limits(echo_url):
    with libws.connect(echo_url) as ws:
        ws.ping(b"x" * 125)
        with pytest.raises(ValueError):
            ws.ping(b"x" * 126)
        with pytest.raises(TypeError):
            ws.ping(12)
        with pytest.raises(TypeError):
            ws.on_ping = 5


def test_handler_exception_is_logged_and_reraised(echo_url, caplog):
    def bad(data):
        raise KeyError("pong handler failed")

    with libws.connect(echo_url, on_pong=bad) as ws:
        with caplog.at_level(logging.ERROR, logger="libws"):
            ws.ping(b"1")
            ws.send("m")
            with pytest.raises(KeyError, match="pong handler failed"):
                ws.recv(timeout=5)
        assert "exception in the pong handler" in caplog.text
        # The connection stays usable after a ping/pong handler error.
        assert ws.recv(timeout=5) == "m"
        ws.on_pong = None
        ws.ping(b"2")
        ws.send("n")
        assert ws.recv(timeout=5) == "n"


def test_base_exception_in_handler_does_not_crash(echo_url):
    class Stop(BaseException):
        pass

    def bad(data):
        raise Stop()

    with libws.connect(echo_url, on_pong=bad) as ws:
        ws.ping()
        ws.send("m")
        with pytest.raises(Stop):
            ws.recv(timeout=5)
        assert ws.recv(timeout=5) == "m"


def test_recv_inside_handler_is_refused(echo_url):
    seen = []

    with libws.connect(echo_url) as ws:
        def reenter(data):
            try:
                ws.recv(timeout=0)
            except RuntimeError as e:
                seen.append(str(e))

        ws.on_pong = reenter
        ws.ping()
        ws.send("m")
        assert ws.recv(timeout=5) == "m"
    assert seen and "handler" in seen[0]


# -- close ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "code,reason,exc",
    [
        (1000, "bye", libws.ConnectionClosedOK),
        (1001, "", libws.ConnectionClosedOK),
        (1011, "server error", libws.ConnectionClosedError),
        (4000, "custom ✓", libws.ConnectionClosedError),
        (1005, "", libws.ConnectionClosedError),
    ],
)
def test_server_close_codes(code, reason, exc):
    def handler(ws):
        ws.recv()
        ws.close(code, reason)

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        closes = []
        with libws.connect(f"ws://127.0.0.1:{server.port}/", on_close=lambda c, r: closes.append((c, r))) as ws:
            ws.send("go")
            with pytest.raises(exc) as ei:
                ws.recv(timeout=5)
            assert ei.value.code == code
            assert ei.value.reason == reason
            assert ws.close_code == code
            assert ws.close_reason == reason
            assert closes == [(code, reason)]
            # later reads keep failing the same way
            with pytest.raises(exc):
                ws.recv(timeout=5)


@pytest.mark.parametrize("code,reason", [(1000, ""), (1001, "going away"), (4999, "x" * 123), (3000, "é" * 61)])
def test_client_close_codes(code, reason):
    seen = []
    done = threading.Event()

    def handler(ws):
        try:
            ws.recv()
        except libws.ConnectionClosed as e:
            seen.append((e.code, e.reason, ws.close_code, ws.close_reason))
        done.set()

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        ws = libws.connect(f"ws://127.0.0.1:{server.port}/")
        ws.close(code, reason, timeout=5)
        assert done.wait(5)
        assert ws.close_code == code  # the server echoed it
    assert seen == [(code, reason, code, reason)]


def test_close_from_a_handler_inside_recv(echo_url):
    with libws.connect(echo_url) as ws:
        ws.on_pong = lambda data: ws.close(4000, "closed in on_pong", timeout=10)
        ws.ping(b"p")
        t0 = time.monotonic()
        with pytest.raises(libws.ConnectionClosedError) as ei:
            ws.recv(timeout=10)
        assert time.monotonic() - t0 < 5  # did not wait for itself
        assert ei.value.code == 4000  # the echo server's answer to our close
        with pytest.raises(libws.ConnectionClosed):
            ws.send("after")
    assert ws.closed and ws.fd == -1


def test_close_argument_errors(echo_url):
    with libws.connect(echo_url) as ws:
        with pytest.raises(ValueError):
            ws.close(1006)
        with pytest.raises(ValueError):
            ws.close(999)
        with pytest.raises(ValueError):
            ws.close(1000, "x" * 124)
        with pytest.raises(TypeError):
            ws.close("1000")
        with pytest.raises(TypeError):
            ws.close(1000, b"bytes")
        # still open and usable
        ws.send("ok")
        assert ws.recv(timeout=5) == "ok"


def test_close_handler_exception(caplog):
    def handler(ws):
        ws.close(1000)

    def bad(code, reason):
        raise RuntimeError("close handler failed")

    with libws.serve("127.0.0.1", 0, handler, background=True) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/", on_close=bad) as ws:
            with pytest.raises(RuntimeError, match="close handler failed"):
                ws.recv(timeout=5)
            with pytest.raises(libws.ConnectionClosedOK):
                ws.recv(timeout=5)
    assert "close handler" in caplog.text


def test_close_timeout_when_peer_does_not_answer(raw_server):
    def respond(sock, req):
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(req).encode() + b"\r\n\r\n"
        )
        drain(sock)  # never answers the close frame

    srv = raw_server(respond)
    ws = libws.connect(f"ws://127.0.0.1:{srv.port}/")
    t0 = time.monotonic()
    ws.close(timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2
    assert ws.closed
    assert ws.close_code == 1006
    with pytest.raises(libws.ConnectionClosed):
        ws.send("x")


# -- timeouts ------------------------------------------------------------------


def test_recv_timeout_keeps_connection_usable(echo_url):
    with libws.connect(echo_url) as ws:
        t0 = time.monotonic()
        with pytest.raises(libws.TimeoutError) as ei:
            ws.recv(timeout=0.05)
        elapsed = time.monotonic() - t0
        assert 0.04 <= elapsed < 1.0
        assert isinstance(ei.value, TimeoutError)  # the builtin
        assert ei.value.ws_status == 4
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("still alive")
        assert ws.recv(timeout=5) == "still alive"
        # a later recv() without timeout is not limited by the old deadline
        def later():
            time.sleep(0.3)
            ws.send("late")

        t = threading.Thread(target=later)
        t.start()
        assert ws.recv() == "late"
        t.join()


def test_timeout_argument_validation(echo_url):
    with libws.connect(echo_url) as ws:
        with pytest.raises(ValueError):
            ws.recv(timeout=-1)
        with pytest.raises(TypeError):
            ws.recv(timeout="1")
        with pytest.raises(TypeError):
            ws.recv(timeout=True)
        with pytest.raises(ValueError):
            ws.recv(timeout=float("nan"))
        # huge timeouts mean no limit (never wrapped into a short one)
        ws.send("x")
        assert ws.recv(timeout=1e300) == "x"
        ws.send("y")
        assert ws.recv(timeout=float("inf")) == "y"


def test_unbounded_handshake_timeouts(raw_server):
    def slow_101(sock, req):
        time.sleep(0.3)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(req).encode() + b"\r\n\r\n"
        )
        drain(sock)

    for t in (float("inf"), 1e300):  # no limit (not wrapped into a tiny one)
        srv = raw_server(slow_101)
        ws = libws.connect(f"ws://127.0.0.1:{srv.port}/", timeout=t)
        ws.abort()
    with libws.serve("127.0.0.1", 0, lambda ws: ws.send("hi"), background=True,
                     handshake_timeout=float("inf")) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            assert ws.recv(timeout=5) == "hi"
        with pytest.raises(ValueError):
            libws.connect(f"ws://127.0.0.1:{server.port}/", timeout=-1)


def test_handshake_timeout(raw_server):
    srv = raw_server(lambda sock, req: drain(sock))  # never answers
    t0 = time.monotonic()
    with pytest.raises(libws.TimeoutError):
        libws.connect(f"ws://127.0.0.1:{srv.port}/", timeout=0.2)
    assert time.monotonic() - t0 < 2


# -- concurrency / GIL ---------------------------------------------------------


def test_gil_released_while_blocked_in_recv(echo_url):
    with libws.connect(echo_url) as ws:
        result = {}

        def reader():
            result["msg"] = ws.recv(timeout=10)

        t = threading.Thread(target=reader)
        t.start()
        # This thread keeps running Python code while the reader is blocked.
        count = 0
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            count += 1
        assert t.is_alive()  # still blocked in recv()
        assert count > 10000
        ws.send("wake up")  # sent from this thread while the other receives
        t.join(5)
        assert result["msg"] == "wake up"


def test_send_and_recv_on_different_threads(echo_url):
    n = 2000
    with libws.connect(echo_url) as ws:
        received = []
        errors = []

        def reader():
            try:
                for _ in range(n):
                    received.append(ws.recv(timeout=10))
            except Exception as e:
                errors.append(e)

        def writer(prefix):
            try:
                for i in range(n // 2):
                    ws.send(f"{prefix}{i}")
            except Exception as e:
                errors.append(e)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer, args=("a",)),
                   threading.Thread(target=writer, args=("b",))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        assert [m for m in received if m[0] == "a"] == [f"a{i}" for i in range(n // 2)]
        assert [m for m in received if m[0] == "b"] == [f"b{i}" for i in range(n // 2)]


def test_second_reader_times_out_while_first_waits(echo_url):
    with libws.connect(echo_url) as ws:
        first = threading.Thread(target=lambda: ws.recv(timeout=10))
        first.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        with pytest.raises(libws.TimeoutError):
            ws.recv(timeout=0.2)
        assert time.monotonic() - t0 < 2
        ws.send("for the first reader")
        first.join(10)
        assert not first.is_alive()


def test_two_readers_take_turns(echo_url):
    with libws.connect(echo_url) as ws:
        got = []

        def reader():
            got.append(ws.recv(timeout=5))

        ts = [threading.Thread(target=reader) for _ in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.05)
        ws.send("1")
        ws.send("2")
        for t in ts:
            t.join(10)
        assert sorted(got) == ["1", "2"]


def test_close_from_another_thread_wakes_recv(echo_url):
    ws = libws.connect(echo_url)
    errors = []

    def reader():
        try:
            ws.recv()
        except libws.ConnectionClosed as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    ws.close(timeout=5)
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], libws.ConnectionClosedOK)


def test_abort_from_another_thread_wakes_recv(echo_url):
    ws = libws.connect(echo_url)
    errors = []

    def reader():
        try:
            ws.recv()
        except libws.ConnectionClosed as e:
            errors.append(e)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    ws.abort()
    t.join(5)
    assert not t.is_alive() and len(errors) == 1
    ws.abort()
    ws.close()


def test_concurrent_close_and_send(echo_url):
    for _ in range(20):
        ws = libws.connect(echo_url)
        stop = threading.Event()
        errors = []

        def spam():
            while not stop.is_set():
                try:
                    ws.send("x" * 100)
                except libws.ConnectionClosed:
                    return
                except Exception as e:
                    errors.append(e)
                    return

        ts = [threading.Thread(target=spam) for _ in range(3)]
        for t in ts:
            t.start()
        closers = [threading.Thread(target=ws.close, kwargs={"timeout": 2}) for _ in range(3)]
        for t in closers:
            t.start()
        for t in closers:
            t.join(10)
        stop.set()
        for t in ts:
            t.join(10)
        if ws._h is not None:
            import faulthandler, sys
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        assert not errors
        assert ws._h is None  # freed exactly once, after every call returned


# -- misuse --------------------------------------------------------------------


def test_misuse(echo_url):
    ws = libws.connect(echo_url)
    with pytest.raises(TypeError):
        ws.send(123)
    with pytest.raises(TypeError):
        ws.send(None)
    with pytest.raises(TypeError):
        ws.send(["list"])
    ws.send("fine")
    assert ws.recv(timeout=5) == "fine"
    ws.close()
    ws.close()  # twice is fine
    ws.abort()
    with pytest.raises(libws.ConnectionClosedOK) as ei:
        ws.send("after close")
    assert ei.value.code == 1000
    with pytest.raises(libws.ConnectionClosed):
        ws.send(b"after close")
    with pytest.raises(libws.ConnectionClosed):
        ws.recv()
    with pytest.raises(libws.ConnectionClosed):
        ws.ping()
    with pytest.raises(libws.ConnectionClosed):
        ws.on_ping = print
    with pytest.raises(TypeError):
        ws.send(1)  # type errors first, even when closed
    assert ws.fd == -1
    assert ws.closed and ws.close_code == 1000
    assert list(ws) == []


def test_bad_constructor_and_gc(echo_url):
    for bad in (0, 12345, "x"):
        with pytest.raises(TypeError):  # never a pointer libws did not issue
            libws.Connection(bad)
    for _ in range(50):
        ws = libws.connect(echo_url, on_ping=lambda d: None)
        del ws  # freed by __del__ without close()
    gc.collect()


def test_size_arguments_are_checked(echo_url):
    # Out-of-range sizes never reach C (a huge buffer size would make the
    # library abort the process when it cannot allocate it).
    for kwargs, exc in [({"read_buffer_size": 1 << 40}, ValueError), ({"write_buffer_size": -1}, ValueError),
                        ({"read_buffer_size": "16k"}, TypeError), ({"max_size": -1}, ValueError),
                        ({"max_size": 0}, ValueError), ({"max_size": 1.5}, TypeError)]:
        with pytest.raises(exc):
            libws.connect(echo_url, **kwargs)
    with pytest.raises(ValueError):
        libws.serve("127.0.0.1", 0, lambda ws: None, max_size=-5)
    with pytest.raises(TypeError):
        libws.serve("127.0.0.1", 0, lambda ws: None, response_headers=[(1, 2)])
    with libws.connect(echo_url, read_buffer_size=256, write_buffer_size=1 << 20) as ws:
        ws.send(b"x" * 100_000)
        assert ws.recv(timeout=5) == b"x" * 100_000
        with pytest.raises(ValueError):
            ws.set_max_size(-1)
        ws.set_max_size(None)
        ws.set_max_size(10)


def test_connect_errors():
    with pytest.raises(libws.InvalidURI):
        libws.connect("http://127.0.0.1:1/")
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(libws.ConnectError) as ei:
        libws.connect(f"ws://127.0.0.1:{port}/", timeout=5)
    assert isinstance(ei.value, ConnectionError)
    assert ei.value.message
    # wss:// (TLS in the C library) to a closed port fails the same way.
    with pytest.raises(libws.ConnectError):
        libws.connect(f"wss://127.0.0.1:{port}/", timeout=5)


def test_serve_errors():
    with pytest.raises(TypeError):
        libws.serve("127.0.0.1", 0, "not callable")
    with pytest.raises(ValueError):
        libws.serve("127.0.0.1", 70000, lambda ws: None)
    with libws.serve("127.0.0.1", 0, lambda ws: None) as s:
        with pytest.raises(libws.LibwsError):
            libws.serve("127.0.0.1", s.port, lambda ws: None)


# -- handshake errors ----------------------------------------------------------


def test_handshake_error_403(raw_server):
    body = b"go away: origin not allowed\n"

    def respond(sock, req):
        sock.sendall(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Reason: test\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    srv = raw_server(respond)
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(f"ws://127.0.0.1:{srv.port}/")
    e = ei.value
    assert e.status == 403
    assert e.header("x-reason") == "test"
    assert e.header("Content-Type") == "text/plain"
    assert ("X-Reason", "test") in e.headers
    assert e.body == body
    assert e.ws_status == 11
    assert "403" in str(e) or e.message


def test_handshake_error_bad_accept(raw_server):
    def respond(sock, req):
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: wrong\r\n\r\n"
        )

    srv = raw_server(respond)
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(f"ws://127.0.0.1:{srv.port}/")
    assert ei.value.status == 101


# -- protocol errors -----------------------------------------------------------


def _upgrade_then(frames):
    def respond(sock, req):
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(req).encode() + b"\r\n\r\n" + frames
        )
        drain(sock)

    return respond


def test_protocol_error_reserved_opcode(raw_server):
    srv = raw_server(_upgrade_then(b"\x83\x00"))
    with libws.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        with pytest.raises(libws.ProtocolError) as ei:
            ws.recv(timeout=5)
        assert ei.value.code == 1002
        assert isinstance(ei.value, libws.ConnectionClosedError)


def test_invalid_utf8(raw_server):
    srv = raw_server(_upgrade_then(b"\x81\x02\xc3\x28"))
    with libws.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        with pytest.raises(libws.ProtocolError) as ei:
            ws.recv(timeout=5)
        assert ei.value.code == 1007


def test_message_too_big(raw_server):
    srv = raw_server(_upgrade_then(b"\x82\x7e" + struct.pack("!H", 2000) + b"x" * 2000))
    with libws.connect(f"ws://127.0.0.1:{srv.port}/", max_size=1000) as ws:
        with pytest.raises(libws.MessageTooBig) as ei:
            ws.recv(timeout=5)
        assert ei.value.code == 1009


def test_peer_drops_tcp(raw_server):
    srv = raw_server(_upgrade_then(b""))
    with libws.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
        srv.close()
        with pytest.raises(libws.ConnectionClosedError) as ei:
            ws.recv(timeout=5)
        assert ei.value.code == 1006
        assert ws.close_code == 1006


def test_ctrl_c_interrupts_recv_in_the_main_thread():
    # A child blocked in recv() (no timeout) in its main thread gets SIGINT:
    # KeyboardInterrupt comes at once, and the connection stays usable.
    import signal
    import subprocess
    import sys

    from conftest import child_env

    code = """if True:
        import sys, time, libws
        ws = libws.connect(sys.argv[1], timeout=10)
        print("waiting", flush=True)
        t0 = time.monotonic()
        try:
            ws.recv()
        except KeyboardInterrupt:
            print("interrupted after %.1f s" % (time.monotonic() - t0), flush=True)
        ws.send("still usable")
        print(ws.recv(timeout=10), flush=True)
        ws.close()
    """
    with libws.serve("127.0.0.1", 0, lambda ws: [ws.send(m) for m in ws], background=True) as server:
        proc = subprocess.Popen([sys.executable, "-c", code, f"ws://127.0.0.1:{server.port}/"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        try:
            assert proc.stdout.readline().strip() == "waiting"
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("interrupted after") and float(lines[0].split()[2]) < 3, lines
    assert lines[1] == "still usable"
