"""The event-driven API: libws.EventLoop, serve_events, LoopConnection."""

import gc
import logging
import queue
import selectors
import threading
import time

import pytest

import libws
from conftest import SIZES, payload

T = 20  # seconds: upper bound of every wait


def wait_for(cond, timeout=T, what="condition"):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class Recorder(libws.EventHandler):
    """Echoes, and records every callback (on the loop thread)."""

    def __init__(self, echo=True):
        self.echo = echo
        self.events = queue.Queue()
        self.opened = []
        self.closed = []
        self.threads = set()
        self.lock = threading.Lock()

    def on_open(self, conn):
        self.threads.add(threading.get_ident())
        with self.lock:
            self.opened.append(conn)
        self.events.put(("open", conn))

    def on_message(self, conn, message):
        self.threads.add(threading.get_ident())
        if self.echo:
            conn.send(message)
        self.events.put(("message", conn, message))

    def on_ping(self, conn, data):
        self.events.put(("ping", conn, data))

    def on_pong(self, conn, data):
        self.events.put(("pong", conn, data))

    def on_error(self, conn, error):
        self.events.put(("error", conn, error))

    def on_close(self, conn, code, reason):
        with self.lock:
            self.closed.append((conn, code, reason))
        self.events.put(("close", conn, code, reason))

    def next(self, kind, timeout=T):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event")
            ev = self.events.get(timeout=left)
            if ev[0] == kind:
                return ev


@pytest.fixture
def serve():
    """serve(handler, **kw) -> a started EventServer, shut down (and checked
    to have stopped) at the end of the test."""
    servers = []

    def make(handler=None, **kw):
        kw.setdefault("max_size", None)
        s = libws.serve_events("127.0.0.1", 0, handler, background=True, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.shutdown(timeout=2)
        assert s.loop.is_closed
        assert s.loop.join(5)


def url(server, path="/"):
    return f"ws://127.0.0.1:{server.port}{path}"


# -- echo ------------------------------------------------------------------------


@pytest.mark.parametrize("text", [True, False], ids=["text", "binary"])
def test_echo_every_size_with_libws_client(serve, text):
    srv = serve(Recorder())
    with libws.connect(url(srv), max_size=None, timeout=10) as ws:
        for n in SIZES:
            msg = payload(n, text)
            ws.send(msg)
            got = ws.recv(timeout=T)
            assert type(got) is type(msg) and got == msg, n
        # many small ones queued back to back
        for i in range(500):
            ws.send(f"m{i}" if text else bytes([i % 256]) * (i % 7))
        for i in range(500):
            assert ws.recv(timeout=T) == (f"m{i}" if text else bytes([i % 256]) * (i % 7))


def test_echo_every_size_and_kind_with_websockets_client(serve):
    from websockets.sync.client import connect

    rec = Recorder()
    srv = serve(rec)
    with connect(url(srv), max_size=None, compression=None, open_timeout=10) as ws:
        for n in SIZES:
            for text in (True, False):
                msg = payload(n, text)
                ws.send(msg)
                got = ws.recv(timeout=T)
                assert type(got) is type(msg) and got == msg, (n, text)
        # ping -> on_ping (and the pong comes back), unicode text
        assert ws.ping(b"are you there").wait(T)
        assert rec.next("ping")[2] == b"are you there"
        ws.send("héllo wörld ✓ 🎉")
        assert ws.recv(timeout=T) == "héllo wörld ✓ 🎉"
        # a server ping reaches the client, its pong reaches on_pong
        conn = rec.opened[0]
        conn.ping(b"p1")
        assert rec.next("pong")[2] == b"p1"
        ws.close(4001, "bye")
    _, conn, code, reason = rec.next("close")
    assert (code, reason) == (4001, "bye")
    assert conn.closed and conn.close_code == 4001 and conn.close_reason == "bye"


def test_compression_with_websockets_client(serve):
    from websockets.sync.client import connect

    rec = Recorder()
    srv = serve(rec, compression="deflate")
    with connect(url(srv), max_size=None, open_timeout=10) as ws:  # offers permessage-deflate
        for n in (0, 1000, 1 << 20):
            msg = payload(n, True)
            ws.send(msg)
            assert ws.recv(timeout=T) == msg
    assert rec.opened[0].compression == "deflate"


def test_function_handler_and_keyword_callbacks_kept_alive(serve):
    """A bare function is on_message; the ctypes callbacks live as long as
    the loop although nothing else refers to the lambdas."""
    opened = []
    srv = serve(lambda c, m: c.send(m), on_open=lambda c: opened.append(c))
    gc.collect()
    with libws.connect(url(srv), timeout=10) as ws:
        ws.send("x")
        assert ws.recv(timeout=T) == "x"
    assert len(opened) == 1


# -- many connections, one thread --------------------------------------------------------


def test_250_connections_on_one_loop_thread(serve):
    rec = Recorder()
    srv = serve(rec)
    clients = [libws.connect(url(srv, f"/c{i}"), timeout=10) for i in range(250)]
    try:
        # The loop counts a connection when its handshake completes and
        # then runs on_open, which adds it to srv.connections: wait for both.
        wait_for(lambda: srv.loop.connection_count == 250 and len(srv.connections) == 250,
                 what="250 open connections, each seen by on_open")
        for i, ws in enumerate(clients):
            ws.send(f"hello {i}")
        for i, ws in enumerate(clients):
            assert ws.recv(timeout=T) == f"hello {i}"
        assert sorted(c.request.path for c in rec.opened) == sorted(f"/c{i}" for i in range(250))
        assert rec.threads == {srv.loop._thread.ident}
        assert srv.broadcast("to all") == 250
        for ws in clients:
            assert ws.recv(timeout=T) == "to all"
    finally:
        for ws in clients:
            ws.close(timeout=5)
    wait_for(lambda: len(rec.closed) == 250, what="250 on_close")
    assert {code for _, code, _ in rec.closed} == {1000}
    assert srv.loop.connection_count == 0


def test_250_dials_from_an_event_loop_client(serve):
    srv = serve(Recorder())
    done = threading.Event()
    results = {}
    errors = []

    class Client(libws.EventHandler):
        def on_open(self, conn):
            conn.n = len(results)  # a user attribute
            results[conn.n] = None
            conn.send(f"n={conn.n}")

        def on_message(self, conn, message):
            results[conn.n] = message
            conn.close()

        def on_close(self, conn, code, reason):
            results[conn.n] = (results[conn.n], code)
            if len(results) == 250 and all(isinstance(v, tuple) for v in results.values()):
                done.set()

        def on_connect_error(self, error):
            errors.append(error)

    with libws.EventLoop() as client:
        client.start()
        for _ in range(250):
            client.dial(url(srv), Client())
        assert done.wait(T), (len(results), errors)
        client.stop()
        assert client.join(5)
    assert not errors
    assert all(v == (f"n={k}", 1000) for k, v in results.items())
    assert all(c.is_client is False for c in srv.connections)


# -- failures in handlers -------------------------------------------------------------------


def test_handler_exception_is_reported_and_the_server_keeps_serving(serve, caplog):
    reported = []

    class Faulty(Recorder):
        def on_message(self, conn, message):
            if message == "boom":
                raise RuntimeError("handler bug")
            super().on_message(conn, message)

        def on_close(self, conn, code, reason):
            super().on_close(conn, code, reason)
            raise ValueError("bug in on_close")

    rec = Faulty()
    srv = serve(rec, exception_handler=lambda e, where, conn: reported.append((type(e), where, conn)))
    with caplog.at_level(logging.ERROR, logger="libws"):
        ws = libws.connect(url(srv), timeout=10)
        ws.send("boom")
        with pytest.raises(libws.ConnectionClosedError) as ei:
            ws.recv(timeout=T)
        assert ei.value.code == 1011  # that connection is closed with 1011
        ws.close()
        rec.next("close")
        # the loop keeps serving
        with libws.connect(url(srv), timeout=10) as ws2:
            ws2.send("still there?")
            assert ws2.recv(timeout=T) == "still there?"
        wait_for(lambda: len(reported) == 3, what="three reports")
    records = [r for r in caplog.records if r.name == "libws" and r.exc_info]
    assert any("on_message" in r.getMessage() and r.exc_info[0] is RuntimeError for r in records)
    assert any("on_close" in r.getMessage() and r.exc_info[0] is ValueError for r in records)
    assert "handler bug" in caplog.text and "Traceback" in caplog.text
    assert [(t, w) for t, w, _ in reported] == [(RuntimeError, "on_message"), (ValueError, "on_close"),
                                                (ValueError, "on_close")]


def test_handshake_callback_exception_refuses_with_500(serve, caplog):
    def bad(request):
        raise KeyError("nope")

    srv = serve(Recorder(), on_handshake=bad)
    with caplog.at_level(logging.ERROR, logger="libws"):
        with pytest.raises(libws.HandshakeError) as ei:
            libws.connect(url(srv), timeout=10)
    assert ei.value.status == 500
    assert "on_handshake" in caplog.text


def test_keyboard_interrupt_in_a_callback_propagates_from_run():
    def on_message(conn, message):
        if message == "ctrl-c":
            raise KeyboardInterrupt
        conn.send(message)

    with libws.EventLoop() as lp:
        lst = lp.listen("127.0.0.1", 0, on_message)
        box = queue.Queue()

        def client():
            ws = libws.connect(f"ws://127.0.0.1:{lst.port}/", timeout=10)
            box.put(ws)
            ws.send("ctrl-c")

        threading.Thread(target=client, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            lp.run()  # this test runs in the main thread: 200 ms slices
        ws = box.get(timeout=T)
        # the loop is intact: it serves again
        ws.send("after")
        lp.call_later(0.3, lp.stop)
        lp.run()
        assert ws.recv(timeout=T) == "after"
        closer = threading.Thread(target=ws.close, daemon=True)
        closer.start()
        lp.shutdown(timeout=2)  # nobody drives it: shutdown runs it until done
        closer.join(T)
        assert lp.connection_count == 0


# -- threads ------------------------------------------------------------------------------------


def test_sends_from_other_threads(serve):
    rec = Recorder(echo=False)
    srv = serve(rec)
    with libws.connect(url(srv), timeout=10) as ws:
        conn = rec.next("open")[1]

        def sender(k):
            for i in range(300):
                conn.send(f"{k}:{i}")

        threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(T)
        seen = {k: [] for k in range(4)}
        for _ in range(1200):
            k, i = ws.recv(timeout=T).split(":")
            seen[int(k)].append(int(i))
        assert all(v == list(range(300)) for v in seen.values())  # each thread's order kept


def test_send_from_another_thread_while_the_peer_closes(serve):
    """A thread keeps sending while the connection ends: only
    ConnectionClosed, never a crash; the handle is given back after."""
    rec = Recorder(echo=False)
    srv = serve(rec)
    for _ in range(5):
        ws = libws.connect(url(srv), timeout=10)
        conn = rec.next("open")[1]
        outcome = []

        def hammer():
            try:
                while True:
                    conn.send(b"x" * 100)
            except libws.ConnectionClosed as e:
                outcome.append(e)
            except libws.QueueFull as e:  # the client does not read
                outcome.append(e)

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(0.02)
        ws.abort()
        t.join(T)
        assert not t.is_alive() and outcome
        rec.next("close")
        with pytest.raises(libws.ConnectionClosed):
            conn.send("late")
        assert conn._h is None  # released: on_close ran and no call is in progress


# -- stop, shutdown -----------------------------------------------------------------------------


def _recv_outcome(ws):
    box = []

    def run():
        try:
            box.append(ws.recv(timeout=T))
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return lambda: (t.join(T), box[0])[1]


def test_graceful_shutdown_clients_see_1001(serve):
    from websockets.exceptions import ConnectionClosedOK
    from websockets.sync.client import connect

    rec = Recorder()
    srv = serve(rec)
    clients = [libws.connect(url(srv), timeout=10) for _ in range(3)]
    outcomes = [_recv_outcome(ws) for ws in clients]
    wsc = connect(url(srv), compression=None, open_timeout=10)
    wait_for(lambda: srv.loop.connection_count == 4)
    t0 = time.monotonic()
    srv.shutdown(timeout=5)
    assert time.monotonic() - t0 < 4  # the clients answered: no waiting for the timeout
    for ws, outcome in zip(clients, outcomes):
        e = outcome()
        assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001, e
        assert e.reason == "server shutting down"
        ws.close()
    with pytest.raises(ConnectionClosedOK) as ei:
        wsc.recv(timeout=T)
    assert ei.value.rcvd.code == 1001
    assert sorted(code for _, code, _ in rec.closed) == [1001] * 4
    assert srv.loop.is_closed
    # after shutdown nothing listens
    with pytest.raises(libws.ConnectError):
        libws.connect(url(srv), timeout=5)


def test_stop_and_run_again():
    rec = Recorder()
    lp = libws.EventLoop()
    try:
        lst = lp.listen("127.0.0.1", 0, rec)
        lp.start()
        ws = libws.connect(f"ws://127.0.0.1:{lst.port}/", timeout=10)
        ws.send("one")
        assert ws.recv(timeout=T) == "one"
        lp.stop()
        assert lp.join(5) and not lp.running
        # stopped: the connection stays open but nothing is served
        ws.send("two")
        with pytest.raises(libws.TimeoutError):
            ws.recv(timeout=0.3)
        lp.start()
        assert ws.recv(timeout=T) == "two"
        lp.stop()
        assert lp.join(5)
        # stop() before run(): run() does one iteration and returns
        lp.stop()
        t0 = time.monotonic()
        lp.run()
        assert time.monotonic() - t0 < 1
        # run() while another thread runs it
        lp.start()
        wait_for(lambda: lp.running)
        with pytest.raises(RuntimeError):
            lp.run()
        with pytest.raises(RuntimeError):
            lp.close()  # not while running
        outcome = _recv_outcome(ws)
        lp.shutdown(timeout=2)
        e = outcome()
        assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001
        ws.close()
        assert lp.join(5)
    finally:
        lp.close()
    assert lp.is_closed
    lp.close()  # idempotent


def test_close_with_open_connections_reports_1006():
    rec = Recorder()
    lp = libws.EventLoop()
    lst = lp.listen("127.0.0.1", 0, rec)
    lp.start()
    ws = libws.connect(f"ws://127.0.0.1:{lst.port}/", timeout=10)
    conn = rec.next("open")[1]
    lp.stop()
    assert lp.join(5)
    lp.close()  # on_close runs here, with 1006
    _, c, code, _ = rec.next("close", timeout=1)
    assert c is conn and code == 1006 and conn.closed
    with pytest.raises(libws.ConnectionClosed):
        ws.recv(timeout=T)
    ws.close()


# -- timers ------------------------------------------------------------------------------------------


def test_timers():
    calls = []
    lp = libws.EventLoop()
    try:
        lp.call_later(0.06, calls.append, "c")
        lp.call_later(0.02, calls.append, "a")
        lp.call_later(0.04, calls.append, "b")
        cancelled = lp.call_later(0.03, calls.append, "never")
        cancelled.cancel()
        ticks = []
        every = lp.call_every(0.02, lambda: ticks.append(threading.get_ident()))
        lp.start()
        wait_for(lambda: len(calls) == 3 and len(ticks) >= 5, what="timers")
        assert calls == ["a", "b", "c"]
        assert set(ticks) == {lp._thread.ident}  # on the loop's thread
        every.cancel()
        n = len(ticks)
        time.sleep(0.15)
        assert len(ticks) <= n + 1  # at most one that was already due
        # call_soon from another thread runs on the loop thread
        got = queue.Queue()
        threading.Thread(target=lambda: lp.call_soon(lambda: got.put(threading.get_ident()))).start()
        assert got.get(timeout=T) == lp._thread.ident
        # a timer that raises is reported; later timers still run
        lp.call_soon(lambda: 1 / 0)
        lp.call_later(0.01, got.put, "after")
        assert got.get(timeout=T) == "after"
        with pytest.raises(ValueError):
            lp.call_every(0, print)
        with pytest.raises(TypeError):
            lp.call_later(0, "not callable")
        with pytest.raises(ValueError):
            lp.call_later(-1, print)
        lp.stop()
        assert lp.join(5)
    finally:
        lp.close()
    with pytest.raises(RuntimeError):
        lp.call_later(0, print)
    cancelled.cancel()  # after close: nothing happens


def test_idle_timeout_and_keepalive(serve):
    rec = Recorder()
    srv = serve(rec, idle_timeout=0.3)
    ws = libws.connect(url(srv), timeout=10)
    t0 = time.monotonic()
    with pytest.raises(libws.ConnectionClosedOK) as ei:
        ws.recv(timeout=T)
    assert ei.value.code == 1001 and 0.25 < time.monotonic() - t0 < 5
    ws.close()
    # keepalive: a peer that never answers pings (a raw TCP client that
    # completes the handshake and then goes silent) is failed with a timeout
    import socket
    srv2 = serve(Recorder(), ping_interval=0.1, ping_timeout=0.2)
    rec2 = Recorder()
    srv2.loop.listen("127.0.0.1", 0, rec2)
    port = srv2.loop.listeners[-1].port
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    try:
        _, conn, err = rec2.next("error")
        assert isinstance(err, libws.TimeoutError) and conn.error is err
        assert rec2.next("close")[2] == 1006
    finally:
        s.close()


# -- backpressure ----------------------------------------------------------------------------------------


def test_queue_full_and_drain(serve):
    state = {"sent": 0, "full": None, "drained": threading.Event()}
    chunk = b"\xab" * 65536

    class Flood(libws.EventHandler):
        def on_open(self, conn):
            self.conn = conn
            # the client does not read yet: fill the socket and the queue
            for _ in range(100000):
                try:
                    conn.send(chunk)
                except libws.QueueFull as e:
                    # (the loop's thread: no flush runs meanwhile)
                    state["buffered"] = conn.buffered_amount
                    state["full"] = e
                    break
                state["sent"] += 1

        def on_drain(self, conn):
            if not state["drained"].is_set():
                state["drained"].set()
                conn.send("done")

    srv = serve(Flood(), max_buffered=256 * 1024)
    with libws.connect(url(srv), timeout=10, max_size=None) as ws:
        wait_for(lambda: state["full"] is not None, what="QueueFull")
        e = state["full"]
        assert e.ws_status == 22 and isinstance(e, libws.LibwsError)
        assert 256 * 1024 - 65536 < state["buffered"] <= 256 * 1024
        # (the kernel's socket buffers may still grow and take the queue:
        # then on_drain comes before the client reads, which is fine)
        n = 0
        while True:
            m = ws.recv(timeout=T)
            if m == "done":
                break
            assert m == chunk
            n += 1
        assert n == state["sent"] and state["drained"].is_set()
        assert srv.connections[0].buffered_amount == 0
        assert state["sent"] >= 3  # the refused send came after the queue filled


def test_pause_and_resume_reading(serve):
    rec = Recorder()

    class Paused(Recorder):
        def on_open(self, conn):
            conn.pause_reading()
            super().on_open(conn)

    rec = Paused()
    srv = serve(rec)
    with libws.connect(url(srv), timeout=10) as ws:
        conn = rec.next("open")[1]
        assert conn.reading_paused
        for i in range(3):
            ws.send(f"m{i}")
        time.sleep(0.3)
        assert not [e for e in list(rec.events.queue) if e[0] == "message"]
        conn.resume_reading()  # from this (non-loop) thread
        assert [ws.recv(timeout=T) for _ in range(3)] == ["m0", "m1", "m2"]
        assert not conn.reading_paused


# -- misuse ----------------------------------------------------------------------------------------------


def test_misuse_after_close_raises(serve):
    rec = Recorder()
    srv = serve(rec)
    ws = libws.connect(url(srv), timeout=10)
    conn = rec.next("open")[1]
    ws.close(1000, "done")
    rec.next("close")
    for call in (lambda: conn.send("x"), lambda: conn.send(b"x"), lambda: conn.ping(), lambda: conn.pong(b"1"),
                 conn.pause_reading, conn.resume_reading, lambda: conn.send_json({})):
        with pytest.raises(libws.ConnectionClosedOK) as ei:
            call()
        assert ei.value.code == 1000 and ei.value.reason == "done"
    conn.close()  # no-ops once closed
    conn.abort()
    assert conn.buffered_amount == 0 and conn.closed
    # the same from another thread
    box = []
    t = threading.Thread(target=lambda: box.append(pytest.raises(libws.ConnectionClosed, conn.send, "x")))
    t.start()
    t.join(T)
    assert box
    with pytest.raises(TypeError):
        libws.LoopConnection(12345, srv.loop, None, None, False)


def test_bad_arguments(serve):
    rec = Recorder(echo=False)
    srv = serve(rec)
    with libws.connect(url(srv), timeout=10) as ws:
        conn = rec.next("open")[1]
        with pytest.raises(TypeError):
            conn.send(123)
        with pytest.raises(ValueError):
            conn.ping(b"x" * 126)
        with pytest.raises(ValueError):
            conn.close(999)  # may not be sent
        with pytest.raises(ValueError):
            conn.close(1000, "x" * 124)
        with pytest.raises(TypeError):
            conn.close("1000")
        conn.close(4000, "custom")  # the connection was left open by the refusals
        with pytest.raises(libws.ConnectionClosedError) as ei:
            ws.recv(timeout=T)
        assert ei.value.code == 4000
    with pytest.raises(TypeError):
        libws.serve_events("127.0.0.1", 0, Recorder)  # a class, not an instance
    with pytest.raises(TypeError):
        libws.serve_events("127.0.0.1", 0, object())  # no callbacks, not callable
    with pytest.raises(TypeError):
        libws.serve_events("127.0.0.1", 0, on_mesage=print)  # typo
    with pytest.raises(ValueError):
        libws.serve_events("127.0.0.1", 70000, Recorder())
    with pytest.raises(ValueError):
        libws.EventLoop(max_buffered=0)


def test_loop_misuse_from_callbacks(serve):
    errors = []

    def on_open(conn):
        try:
            conn.loop.run()
        except RuntimeError as e:
            errors.append(e)
        try:
            conn.loop.close()
        except RuntimeError as e:
            errors.append(e)
        conn.send("opened")

    srv = serve(on_open=on_open, on_message=lambda c, m: None)
    with libws.connect(url(srv), timeout=10) as ws:
        assert ws.recv(timeout=T) == "opened"
    assert len(errors) == 2
    lp = libws.EventLoop()
    lp.close()
    for call in (lp.run, lp.poll, lp.fileno, lambda: lp.listen("127.0.0.1", 0, print), lp.wake,
                 lambda: lp.dial("ws://127.0.0.1:1/", print), lambda: lp.broadcast("x")):
        with pytest.raises(RuntimeError):
            call()
    lp.stop()  # harmless
    assert lp.connection_count == 0


# -- handshake, subprotocols, dial ---------------------------------------------------------------------


def test_handshake_request_subprotocol_and_refusals(serve):
    class H(Recorder):
        def on_handshake(self, request):
            if request.path.startswith("/forbidden"):
                return 401
            if request.header("X-Deny") == "1":
                return False
            return None

    rec = H()
    srv = serve(rec, subprotocols=["chat", "v2"], response_headers=[("X-Server", "libws-events")])
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(url(srv, "/forbidden"), timeout=10)
    assert ei.value.status == 401
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(url(srv), headers={"X-Deny": "1"}, timeout=10)
    assert ei.value.status == 403
    with libws.connect(url(srv, "/ok?x=1"), subprotocols=["v2"], headers={"X-Who": "me"}, timeout=10) as ws:
        assert ws.subprotocol == "v2"
        assert ("X-Server", "libws-events") in ws.response_headers
        conn = rec.next("open")[1]
        assert conn.request.path == "/ok?x=1" and conn.request.header("x-who") == "me"
        assert conn.request.subprotocols == ["v2"]
        assert conn.subprotocol == "v2"
        assert conn.remote_address == ws.local_address and conn.local_address == ws.remote_address
    # check_origin replaces the same-origin default
    srv2 = serve(Recorder(), check_origin=lambda r: r.origin == "http://good")
    with libws.connect(url(srv2), origin="http://good", timeout=10):
        pass
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(url(srv2), origin="http://evil", timeout=10)
    assert ei.value.status == 403
    # default: same origin
    with pytest.raises(libws.HandshakeError) as ei:
        libws.connect(url(srv), origin="http://elsewhere.example", timeout=10)
    assert ei.value.status == 403


def test_dial_against_the_blocking_server_and_dial_errors():
    def echo(ws):
        for m in ws:
            ws.send(m)

    out = queue.Queue()

    class Client(libws.EventHandler):
        def on_open(self, conn):
            out.put(("open", conn.subprotocol, conn.is_client))
            conn.send("via the loop")

        def on_message(self, conn, message):
            out.put(("message", message))
            conn.close(1000, "thanks")

        def on_close(self, conn, code, reason):
            out.put(("close", code))

        def on_connect_error(self, error):
            out.put(("error", error))

    with libws.serve("127.0.0.1", 0, echo, subprotocols=["p"], background=True,
                     check_origin=lambda r: r.origin != "http://bad") as srv, libws.EventLoop() as lp:
        lp.start()
        lp.dial(f"ws://127.0.0.1:{srv.port}/", Client(), subprotocols=["p"])
        assert out.get(timeout=T) == ("open", "p", True)
        assert out.get(timeout=T) == ("message", "via the loop")
        assert out.get(timeout=T) == ("close", 1000)
        # refused by the server: HandshakeError with its answer
        lp.dial(f"ws://127.0.0.1:{srv.port}/", Client(), origin="http://bad")
        kind, err = out.get(timeout=T)
        assert kind == "error" and isinstance(err, libws.HandshakeError) and err.status == 403
        # nobody listening
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        lp.dial(f"ws://127.0.0.1:{port}/", Client())
        kind, err = out.get(timeout=T)
        assert kind == "error" and isinstance(err, libws.ConnectError), err
        with pytest.raises(libws.InvalidURI):
            lp.dial("http://127.0.0.1/", Client())
        lp.stop()
        assert lp.join(5)


# -- inside another event loop -----------------------------------------------------------------------------


def test_fileno_with_selectors():
    rec = Recorder()
    fired = []
    with libws.EventLoop() as lp:
        lst = lp.listen("127.0.0.1", 0, rec)
        lp.call_later(0.05, fired.append, True)
        result = []

        def client():
            with libws.connect(f"ws://127.0.0.1:{lst.port}/", timeout=10) as ws:
                for i in range(20):
                    ws.send(f"sel {i}")
                    result.append(ws.recv(timeout=T))

        t = threading.Thread(target=client, daemon=True)
        t.start()
        sel = selectors.DefaultSelector()
        sel.register(lp.fileno(), selectors.EVENT_READ)
        end = time.monotonic() + T
        while (t.is_alive() or not rec.closed or not fired) and time.monotonic() < end:
            timeout = lp.next_timeout()
            sel.select(0.1 if timeout is None else min(timeout, 0.1))
            lp.poll(0)
        sel.close()
        assert result == [f"sel {i}" for i in range(20)]
        assert fired == [True]
        assert rec.closed and rec.closed[0][1] == 1000


# -- lifetime of the loop itself ------------------------------------------------------------------------------


def test_interpreter_exit_with_a_running_loop_and_open_connections():
    """No shutdown at all: the exit handler stops the loop thread and frees
    the loop (on_close with 1006) before the interpreter goes away."""
    import subprocess
    import sys

    from conftest import child_env

    script = (
        "import libws\n"
        "s = libws.serve_events('127.0.0.1', 0, lambda c, m: c.send(m), background=True,\n"
        "                       on_close=lambda c, code, r: print('closed', code, flush=True))\n"
        "ws = libws.connect(f'ws://127.0.0.1:{s.port}/', timeout=10)\n"
        "ws.send('x'); assert ws.recv(timeout=10) == 'x'\n"
        "lp = libws.EventLoop(); lp.call_later(100, print)  # an idle loop too\n"
        "print('exiting', flush=True)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["exiting", "closed 1006"], (out.stdout, out.stderr)


def test_a_collected_loop_is_freed():
    lp = libws.EventLoop()
    port = lp.listen("127.0.0.1", 0, print).port
    del lp
    gc.collect()
    with pytest.raises(libws.ConnectError):
        libws.connect(f"ws://127.0.0.1:{port}/", timeout=5)


def test_shutdown_from_a_callback_ends_serve_forever():
    box = {}

    def on_message(conn, message):
        if message == "quit":
            box["server"].shutdown(timeout=2)  # only starts it: we are on the loop's thread
        else:
            conn.send(message)

    server = libws.serve_events("127.0.0.1", 0, on_message)
    box["server"] = server
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    ws = libws.connect(url(server), timeout=10)
    other = libws.connect(url(server), timeout=10)
    outcome = _recv_outcome(other)
    ws.send("echo")
    assert ws.recv(timeout=T) == "echo"
    ws.send("quit")
    with pytest.raises(libws.ConnectionClosedOK) as ei:
        ws.recv(timeout=T)
    assert ei.value.code == 1001
    e = outcome()
    assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001
    t.join(T)
    assert not t.is_alive()  # serve_forever returned once everything closed
    assert not server.loop.is_closed
    server.shutdown()  # frees the loop now
    assert server.loop.is_closed
    ws.close()
    other.close()
