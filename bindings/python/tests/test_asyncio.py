"""libws.asyncio: against the `websockets` asyncio API both ways,
cancellation at every await point, backpressure, keepalive/latency,
close codes, broadcast, 1,000 connections in one process, uvloop.

Every test runs its own asyncio loop with a deadline (asyncio.wait_for)
and binds 127.0.0.1 ephemeral ports."""

import asyncio
import gc
import resource
import socket

import pytest

websockets = pytest.importorskip("websockets", reason="asyncio interop tests need the websockets package")
from websockets.asyncio.client import connect as ws_connect  # noqa: E402
from websockets.asyncio.server import serve as ws_serve  # noqa: E402

import libws  # noqa: E402
import libws.asyncio as lwa  # noqa: E402
from conftest import payload  # noqa: E402

DEADLINE = 60


@pytest.fixture(autouse=True, params=["session", "speedups", "ctypes"])
def message_path(request, monkeypatch):
    """Every test three times: over the sans-IO session on asyncio's own
    transport (the default when libws._speedups is built), over the libws
    event loop with the per-message path in C (libws._speedups: the path
    for proxies), and over the loop through ctypes (without _speedups)."""
    if request.param in ("session", "speedups") and lwa._fast is None:
        pytest.skip("libws._speedups is not built (it needs a C compiler and Python's headers)")
    if request.param == "session":
        if not lwa._session_path():
            pytest.skip("the session path is off (LIBWS_ASYNCIO_LOOP=1)")
    elif request.param == "speedups":
        monkeypatch.setattr(lwa, "_session", False)
    else:
        monkeypatch.setattr(lwa, "_fast", None)
    return request.param


def run(coro, deadline=DEADLINE, loop_factory=None):
    async def bounded():
        return await asyncio.wait_for(coro, deadline)

    if loop_factory is None:
        return asyncio.run(bounded())
    loop = loop_factory()
    try:
        return loop.run_until_complete(bounded())
    finally:
        loop.close()


async def echo(ws):
    async for m in ws:
        await ws.send(m)


# ---------------------------------------------------------------------------
# interop with websockets (asyncio), both ways
# ---------------------------------------------------------------------------

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 8 << 20]


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_libws_client_against_websockets_server(compression):
    async def main():
        async with ws_serve(echo, "127.0.0.1", 0, max_size=None,
                            compression="deflate" if compression else None) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with lwa.connect(f"ws://127.0.0.1:{port}/", compression=compression, max_size=None) as ws:
                assert ws.compression == compression
                for n in SIZES:
                    for text in (True, False):
                        m = payload(n, text)
                        await ws.send(m)
                        got = await ws.recv()
                        assert type(got) is type(m) and got == m, (n, text)
                latency = await ws.ping()
                assert 0 <= latency < 5 and ws.latency == latency
            assert ws.closed and ws.close_code == 1000

    run(main())


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_websockets_client_against_libws_server(compression):
    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0, max_size=None, compression=compression) as srv:
            async with ws_connect(f"ws://127.0.0.1:{srv.port}/", max_size=None,
                                  compression="deflate" if compression else None) as ws:
                for n in SIZES:
                    for text in (True, False):
                        m = payload(n, text)
                        await ws.send(m)
                        got = await ws.recv()
                        assert type(got) is type(m) and got == m, (n, text)
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)
                assert len(srv.connections) == 1
            await asyncio.sleep(0)

    run(main())


def test_close_codes_both_ways():
    async def closer(ws):
        await ws.recv()
        await ws.close(4001, "bye now")

    async def main():
        # websockets server closes with 4001: libws sees the code, recv raises.
        async with ws_serve(closer, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            ws = await lwa.connect(f"ws://127.0.0.1:{port}/")
            await ws.send("x")
            with pytest.raises(libws.ConnectionClosedError) as ei:
                await ws.recv()
            assert ei.value.code == 4001 and ei.value.reason == "bye now"
            assert ws.close_code == 4001
            # send after the peer closed: ConnectionClosed with the code
            with pytest.raises(libws.ConnectionClosed) as ei2:
                await ws.send("late")
            assert ei2.value.code == 4001
        # libws server closes with 4002: websockets sees it.
        async with lwa.serve(closer, "127.0.0.1", 0) as srv:
            async with ws_connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await ws.send("x")
                with pytest.raises(websockets.exceptions.ConnectionClosedError) as ei3:
                    await ws.recv()
                assert ei3.value.rcvd.code == 4001

    run(main())


def test_async_for_ends_on_normal_close_and_handler_return_closes_1000():
    async def two(ws):
        await ws.send("a")
        await ws.send("b")

    async def main():
        async with lwa.serve(two, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                got = [m async for m in ws]
                assert got == ["a", "b"]
                assert ws.close_code == 1000

    run(main())


def test_handler_exception_closes_1011():
    async def bad(ws):
        raise RuntimeError("boom")

    async def main():
        async with lwa.serve(bad, "127.0.0.1", 0) as srv:
            async with ws_connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                with pytest.raises(websockets.exceptions.ConnectionClosedError) as ei:
                    await ws.recv()
                assert ei.value.rcvd.code == 1011

    run(main())


def test_connection_refused_and_handshake_refused():
    async def main():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with pytest.raises(ConnectionRefusedError):
            await lwa.connect(f"ws://127.0.0.1:{port}/")
        with pytest.raises(libws.ConnectError):
            await lwa.connect(f"ws://127.0.0.1:{port}/")

        def deny(request):
            return 401 if request.path == "/private" else None

        async with lwa.serve(echo, "127.0.0.1", 0, process_request=deny) as srv:
            with pytest.raises(libws.HandshakeError) as ei:
                await lwa.connect(f"ws://127.0.0.1:{srv.port}/private")
            assert ei.value.status == 401
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/public") as ws:
                await ws.send("ok")
                assert await ws.recv() == "ok"
                assert next(iter(srv.connections)).request.path == "/public"

    run(main())


def test_connect_by_host_name():
    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            # a name goes through asyncio's resolver, not a blocking one
            async with lwa.connect(f"ws://localhost:{srv.port}/") as ws:
                await ws.send("a")
                assert await ws.recv() == "a"
            name = socket.gethostname()
            try:
                if "127.0.0.1" not in {i[4][0] for i in socket.getaddrinfo(name, None, socket.AF_INET)}:
                    return
            except OSError:
                return
            async with lwa.connect(f"ws://{name}:{srv.port}/") as ws:
                await ws.send("b")
                assert await ws.recv() == "b"

    run(main())


def _frame(opcode, payload, fin=True, key=b"\x11\x22\x33\x44"):
    """A masked client frame."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _raw_upgrade(port, extra=b""):
    """A hand-made client: the request (and `extra` in the same write)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def _read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b0 & 0x0F, await reader.readexactly(n)


def test_frames_cut_anywhere_arrive_whole():
    """The server's reads end anywhere in a frame (a header cut after any
    byte, a payload cut in the middle, several frames in one read, frames
    right behind the request): every message arrives whole and in order,
    fragmented ones and a ping between fragments included."""
    import random

    rnd = random.Random(7)
    messages = [payload(n, False) for n in (0, 1, 125, 126, 127, 65535, 65536, 300000, 5, 1 << 20)]
    stream = b"".join(_frame(2, m) for m in messages)
    # a fragmented text message with a ping between its fragments
    stream += _frame(1, b"frag", fin=False) + _frame(9, b"p") + _frame(0, b"-ment", fin=False) + _frame(0, b"ed")

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0, max_size=None) as srv:
            for how in ("bytes", "random", "with-request"):
                first = stream[:300] if how == "with-request" else b""
                reader, writer = await _raw_upgrade(srv.port, first)
                at = len(first)
                while at < len(stream):
                    step = 1 if how == "bytes" and at < 20000 else rnd.randint(1, 70000)
                    writer.write(stream[at:at + step])
                    at += step
                    if how == "bytes" or rnd.random() < 0.3:
                        await writer.drain()
                        await asyncio.sleep(0)
                got = []
                while len(got) < len(messages) + 1:
                    op, data = await _read_frame(reader)
                    if op == 10:  # the pong
                        assert data == b"p"
                        continue
                    got.append(data)
                assert [len(g) for g in got[:-1]] == [len(m) for m in messages], how
                assert got[:-1] == messages and got[-1] == b"frag-mented", how
                writer.write(_frame(8, (1000).to_bytes(2, "big")))
                op, _ = await _read_frame(reader)
                assert op == 8
                writer.close()

    run(main())


def test_frame_over_max_size_fails_1009():
    """A frame announced larger than max_size is refused from its header
    (the server gathers nothing for it): close 1009."""

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0, max_size=1000) as srv:
            reader, writer = await _raw_upgrade(srv.port)
            writer.write(_frame(2, b"z" * 5000)[:3000])
            op, data = await _read_frame(reader)
            assert op == 8 and int.from_bytes(data[:2], "big") == 1009
            writer.close()

    run(main())


def test_a_cut_large_binary_frame_that_breaks_the_rules_closes_1002(message_path):
    """On the session path a large binary frame that a read cuts is read
    into the bytes object it would be delivered as, and the session checks
    it once it is whole: unmasked from a client, or a new message inside a
    fragmented one, it closes 1002. (The loop paths fail it from its header
    and close while the client still writes, so the close frame can be lost
    to the reset there.) On every path a connection that ends in the middle
    of such a frame leaves the server serving everyone else."""

    def unmasked(payload):
        return bytes([0x82, 127]) + len(payload).to_bytes(8, "big") + payload

    async def expect_close(port, data, code):
        reader, writer = await _raw_upgrade(port)
        for at in range(0, len(data), 40000):
            writer.write(data[at:at + 40000])
            await writer.drain()
            await asyncio.sleep(0.002)
        op, body = await asyncio.wait_for(_read_frame(reader), 5)
        assert op == 8 and int.from_bytes(body[:2], "big") == code, (op, body)
        writer.close()

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0, max_size=None) as srv:
            if message_path == "session":
                await expect_close(srv.port, unmasked(b"u" * 200000), 1002)
                await expect_close(srv.port, _frame(1, b"part", fin=False) + _frame(2, b"b" * 200000), 1002)
            # ends with 150000 of 300000 payload bytes read
            reader, writer = await _raw_upgrade(srv.port)
            writer.write(_frame(2, b"c" * 300000)[:150000])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/", max_size=None) as ws:
                for n in (20000, 1 << 20):
                    data = bytes(range(256)) * (n // 256)
                    await ws.send(data)
                    assert await ws.recv() == data

    run(main())


def test_large_sends_to_a_slow_reader_keep_their_order():
    """A server's large messages go out from their own bytes behind the
    header (session path); when the socket takes only part of one, the
    rest and everything after it goes through the transport. With a reader
    that waits before reading, large and small messages and a ping all
    arrive whole and in order."""
    big = [bytes([i]) * (1 << 20) + bytes(range(256)) for i in range(12)]

    async def sender(ws):
        for i, b in enumerate(big):
            await ws.send(b)
            await ws.send(str(i))
            if i == 5:
                await ws.ping()
        await ws.send(big[0][:70000].decode())
        await ws.wait_closed()

    async def main():
        async with lwa.serve(sender, "127.0.0.1", 0, max_size=None, compression=None) as srv:
            async with ws_connect(f"ws://127.0.0.1:{srv.port}/", max_size=None, compression=None) as peer:
                await asyncio.sleep(0.3)  # the server's socket fills meanwhile
                for i, b in enumerate(big):
                    assert await peer.recv() == b, i
                    assert await peer.recv() == str(i)
                assert await peer.recv() == big[0][:70000].decode()

    run(main())


# ---------------------------------------------------------------------------
# cancellation at every await point
# ---------------------------------------------------------------------------


def test_recv_cancelled_by_timeout_never_loses_a_message():
    """A websockets server sends at random moments while the client's recv
    times out over and over: every message arrives, in order."""

    async def sender(ws):
        for i in range(300):
            await ws.send(str(i))
            if i % 7 == 0:
                await asyncio.sleep(0.003)
        await ws.send("end")
        await ws.wait_closed()

    async def main():
        async with ws_serve(sender, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with lwa.connect(f"ws://127.0.0.1:{port}/") as ws:
                got = []
                timeouts = 0
                while True:
                    try:
                        m = await asyncio.wait_for(ws.recv(), 0.001)
                    except asyncio.TimeoutError:
                        timeouts += 1
                        continue
                    if m == "end":
                        break
                    got.append(m)
                assert got == [str(i) for i in range(300)]
                assert timeouts > 0

    run(main())


def test_recv_cancel_with_asyncio_timeout_and_task_cancel():
    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                t = asyncio.ensure_future(ws.recv())
                await asyncio.sleep(0.01)
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
                # the message sent after the cancel goes to the next recv
                await ws.send("after")
                assert await ws.recv() == "after"
                if hasattr(asyncio, "timeout"):
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.01):
                            await ws.recv()
                await ws.send("again")
                assert await ws.recv() == "again"

    run(main())


def test_cancel_connect_close_ping_send():
    async def slow_reader(ws):
        await asyncio.sleep(1)
        async for m in ws:
            pass

    async def main():
        async with lwa.serve(slow_reader, "127.0.0.1", 0, max_size=None, max_queue=1) as srv:
            url = f"ws://127.0.0.1:{srv.port}/"
            # connect cancelled before it finished: no connection leaks
            for delay in (0, 0.001, 0.005):
                t = asyncio.ensure_future(lwa.connect(url))
                await asyncio.sleep(delay)
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError:
                    pass
                else:
                    await t.result().close()
            for _ in range(100):
                if not srv.connections:
                    break
                await asyncio.sleep(0.02)
            assert not srv.connections

            ws = await lwa.connect(url, max_size=None, write_limit=1 << 16)
            # send cancelled while waiting on backpressure (the server
            # reads nothing for a second): what was queued goes out whole
            chunk = b"x" * (1 << 20)
            sent = 0
            while True:
                t = asyncio.ensure_future(ws.send(chunk))
                await asyncio.sleep(0.05)
                if not t.done():
                    break
                sent += 1
                assert sent < 200, "send never waited"
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            # ping cancelled: the pong that comes later is ignored
            t = asyncio.ensure_future(ws.ping())
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            assert not ws._pings
            await ws.send("last")  # waits, then goes out after the big ones
            # close cancelled: the handshake goes on
            t = asyncio.ensure_future(ws.close())
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            await ws.wait_closed()
            assert ws.close_code == 1000

    run(main())


def test_send_backpressure_waits_and_resumes():
    """The server does not read for a while: send waits (the kernel buffers
    fill), then completes once the server reads. The server keeps one
    message (max_queue=1): with the default 16 it could hold 16 MiB, and
    with the kernel's loopback buffers all 32 MiB sometimes fit without a
    wait (3 runs in 12 failed under load)."""

    async def late_echo(ws):
        await asyncio.sleep(0.5)
        async for m in ws:
            await ws.send(len(m).to_bytes(8, "big"))

    async def main():
        async with lwa.serve(late_echo, "127.0.0.1", 0, max_size=None, max_queue=1) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/", max_size=None) as ws:
                chunk = b"y" * (1 << 20)
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                for _ in range(32):
                    await ws.send(chunk)
                    assert ws.buffered_amount <= 32 * 1024 + len(chunk)
                waited = loop.time() - t0
                assert waited > 0.2, "32 MiB were taken without any backpressure"
                for _ in range(32):
                    assert int.from_bytes(await ws.recv(), "big") == len(chunk)

    run(main())


def test_receive_queue_pauses_reading():
    """max_queue: a client that does not recv stops reading; the sender
    is pushed back by TCP instead of libws buffering without limit."""

    async def flood(ws):
        try:
            for _ in range(2000):
                await ws.send(b"z" * 65536)
        except libws.ConnectionClosed:
            pass

    async def main():
        async with lwa.serve(flood, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/", max_queue=4) as ws:
                await asyncio.sleep(0.5)
                assert len(ws._messages) <= 4 + 8  # at most one read's worth past the mark
                (sconn,) = srv.connections
                assert sconn.buffered_amount > 0  # the server is being pushed back
                for _ in range(2000):
                    assert len(await ws.recv()) == 65536

    run(main())


# ---------------------------------------------------------------------------
# keepalive, ping, latency
# ---------------------------------------------------------------------------


def test_keepalive_measures_latency_and_fails_dead_peer():
    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/", ping_interval=0.05, ping_timeout=1) as ws:
                await asyncio.sleep(0.3)
                assert ws.latency > 0
        # a peer that never answers pings: a raw TCP server that completes
        # the handshake and then goes silent
        import base64
        import hashlib

        async def silent(reader, writer):
            req = await reader.readuntil(b"\r\n\r\n")
            key = [ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n") if ln.lower().startswith(b"sec-websocket-key")][0]
            acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            await asyncio.sleep(5)
            writer.close()

        srv2 = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = srv2.sockets[0].getsockname()[1]
        ws = await lwa.connect(f"ws://127.0.0.1:{port}/", ping_interval=0.1, ping_timeout=0.2, close_timeout=0.3)
        with pytest.raises(libws.ConnectionClosedError):
            await ws.recv()
        srv2.close()

    run(main())


# ---------------------------------------------------------------------------
# broadcast, many connections, uvloop
# ---------------------------------------------------------------------------


def test_broadcast_and_server_broadcast():
    async def hold(ws):
        await ws.wait_closed()

    async def main():
        async with lwa.serve(hold, "127.0.0.1", 0, compression="deflate") as srv:
            clients = [await lwa.connect(f"ws://127.0.0.1:{srv.port}/", compression=c)
                       for c in (None, "deflate", None, "deflate")]
            while len(srv.connections) < 4:
                await asyncio.sleep(0.01)
            assert srv.broadcast("to all") == 4
            assert lwa.broadcast(srv.connections, b"\x01\x02") == 4
            for c in clients:
                assert await c.recv() == "to all"
                assert await c.recv() == b"\x01\x02"
            for c in clients:
                await c.close()

    run(main())


def test_thousand_connections_in_one_process():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
        except (ValueError, OSError):
            pytest.skip(f"needs 2,200 descriptors, RLIMIT_NOFILE is {soft}")

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.port}/"
            clients = []
            for i in range(0, 1000, 100):
                clients += await asyncio.gather(*(lwa.connect(url) for _ in range(100)))
            assert len(srv.connections) == 1000

            async def one(i, ws):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"

            await asyncio.gather(*(one(i, ws) for i, ws in enumerate(clients)))
            await asyncio.gather(*(ws.close() for ws in clients))
            assert all(ws.close_code == 1000 for ws in clients)

    run(main(), deadline=120)
    gc.collect()


def test_uvloop():
    uvloop = pytest.importorskip("uvloop")

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                for n in (0, 100, 1 << 20):
                    await ws.send(b"u" * n)
                    assert await ws.recv() == b"u" * n
                assert await ws.ping() >= 0

    run(main(), loop_factory=uvloop.new_event_loop)


def test_idle_connection_does_not_wake_the_loop():
    """An idle open connection (keepalive at 20 s) must not make the loop
    wake up 20 times a second: count libws polls over one second."""

    async def hold(ws):
        await ws.wait_closed()

    async def main():
        async with lwa.serve(hold, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await asyncio.sleep(0.3)  # let the handshake's aftermath settle
                if lwa._session_path():
                    # No libws loop: count the sessions' deadline timers and
                    # every asyncio timer due within the second.
                    from libws._aio_session import _SessionProtocol

                    fired = [0]
                    orig = _SessionProtocol._fire

                    def fire(self):
                        fired[0] += 1
                        orig(self)

                    _SessionProtocol._fire = fire
                    try:
                        loop = asyncio.get_running_loop()
                        soon = [h for h in loop._scheduled if not h.cancelled() and h.when() < loop.time() + 1.0]
                        await asyncio.sleep(1.0)
                    finally:
                        _SessionProtocol._fire = orig
                    assert fired[0] == 0 and not soon, f"{fired[0]} session timers, due soon: {soon}"
                    return
                hubs = [ws._hub, srv._hub]
                counts = [0, 0]
                originals = [h.ev.poll for h in hubs]
                for i, h in enumerate(hubs):
                    def counted(timeout=0, _i=i, _orig=originals[i]):
                        counts[_i] += 1
                        return _orig(timeout)
                    h.ev.poll = counted
                await asyncio.sleep(1.0)
                for h, o in zip(hubs, originals):
                    h.ev.poll = o
                assert sum(counts) <= 4, f"{counts} polls in 1 s on an idle connection"

    run(main())


def test_cancel_wait_closed_and_serve_forever():
    async def hold(ws):
        await ws.wait_closed()

    async def main():
        srv = await lwa.serve(hold, "127.0.0.1", 0)
        forever = asyncio.ensure_future(srv.serve_forever())
        ws = await lwa.connect(f"ws://127.0.0.1:{srv.port}/")
        # wait_closed cancelled: nothing happens to the connection
        t = asyncio.ensure_future(ws.wait_closed())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await ws.send("still open")
        assert not ws.closed
        # serve_forever cancelled: the server closes, clients get 1001
        forever.cancel()
        with pytest.raises(asyncio.CancelledError):
            await forever
        with pytest.raises(libws.ConnectionClosedOK) as ei:
            await ws.recv()
        assert ei.value.code == 1001
        await srv.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await lwa.connect(f"ws://127.0.0.1:{srv.port}/")

    run(main())


def test_async_for_connect_reconnects_with_backoff(monkeypatch):
    """`async for ws in connect(url)` (websockets' reconnecting client): a
    new connection after each one the server closes, retries while the
    server is away, and a 4xx answer is raised, not retried."""
    for k, v in (("INITIAL_DELAY", "0.05"), ("MIN_DELAY", "0.05"), ("MAX_DELAY", "0.2"), ("FACTOR", "2")):
        monkeypatch.setenv(f"LIBWS_BACKOFF_{k}", v)

    async def one_message(ws):
        await ws.send("bye")  # then the handler returns: closed with 1000

    async def main():
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        free = port.getsockname()[1]
        port.close()
        url = f"ws://127.0.0.1:{free}/"
        got = []
        started = []

        async def start_later():
            await asyncio.sleep(0.3)  # the first dials find nothing
            started.append(await lwa.serve(one_message, "127.0.0.1", free))

        starter = asyncio.ensure_future(start_later())
        async for ws in lwa.connect(url, open_timeout=5):
            try:
                got.append(await ws.recv())
            except libws.ConnectionClosed:
                continue
            if len(got) == 3:
                break
        await starter
        assert got == ["bye"] * 3
        srv = started[0]
        srv.close()
        await srv.wait_closed()

        def refuse(request):
            return 403

        async with lwa.serve(one_message, "127.0.0.1", 0, process_request=refuse) as s2:
            with pytest.raises(libws.HandshakeError) as e:
                async for ws in lwa.connect(f"ws://127.0.0.1:{s2.port}/"):
                    pass
            assert e.value.status == 403

    run(main())


# ---------------------------------------------------------------------------
# the per-message path (libws._speedups or ctypes)
# ---------------------------------------------------------------------------


def test_speedups_built_when_the_headers_exist(message_path):
    """The installed package carries libws._speedups whenever this Python
    has its headers (the build skips it only without them)."""
    import os
    import sysconfig

    if os.environ.get("LIBWS_TEST_INSTALLED") != "1":
        pytest.skip("checks the installed package (LIBWS_TEST_INSTALLED=1)")
    headers = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
    fast = lwa._load_speedups()
    if os.environ.get("LIBWS_NO_SPEEDUPS") == "1":
        assert fast is None
    else:
        assert (fast is not None) == headers, f"Python.h present: {headers}, libws._speedups: {fast}"


def test_exception_while_delivering_a_message_closes_1011(message_path, caplog):
    """A message the connection cannot take (here: its _on_message raises)
    is reported on the libws logger and closes the connection with 1011,
    on both paths; the loop goes on serving the others."""

    async def main():
        async with lwa.serve(echo, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.port}/"
            async with lwa.connect(url) as ws, lwa.connect(url) as other:
                def boom(message):
                    raise ValueError("boom")

                if message_path == "session":
                    ws._conn._set_deliver(boom)
                elif message_path == "speedups":
                    lwa._targets[ws._h] = boom
                else:
                    ws._on_message = boom
                await ws.send("x")
                with pytest.raises(libws.ConnectionClosed):
                    await ws.recv()
                await other.send("still here")
                assert await other.recv() == "still here"

    with caplog.at_level("ERROR", logger="libws"):
        run(main())
    errors = [r for r in caplog.records if "exception in on_message" in r.getMessage()]
    assert errors and errors[0].exc_info is not None and errors[0].exc_info[0] is ValueError, caplog.text


# ---------------------------------------------------------------------------
# ConnectionListener: callback-style server connections
# ---------------------------------------------------------------------------


class EchoListener(lwa.ConnectionListener):
    def on_message(self, message):
        self.connection.send_nowait(message)


def test_listener_echoes_in_order_to_libws_and_websockets_clients():
    """A ConnectionListener server answers from on_message: every size,
    text and binary, and 200 messages sent before any answer is read come
    back in order, to libws's client and to websockets'."""

    async def main():
        async with lwa.serve(EchoListener, "127.0.0.1", 0, max_size=None) as srv:
            url = f"ws://127.0.0.1:{srv.port}/"
            async with lwa.connect(url, max_size=None) as ws:
                for n in SIZES:
                    for text in (True, False):
                        m = payload(n, text)
                        await ws.send(m)
                        assert await ws.recv() == m
                msgs = [payload(i % 300, i % 2 == 0) for i in range(200)]
                for m in msgs:
                    await ws.send(m)
                for m in msgs:
                    assert await ws.recv() == m
            async with ws_connect(url, max_size=None, compression=None) as peer:
                for m in (b"", "text", payload(70000, False)):
                    await peer.send(m)
                    assert await peer.recv() == m

    run(main())


def test_listener_callbacks_in_order_with_close_code_and_request():
    """on_open (with the request), each on_message, then on_close once with
    the peer's code and reason; recv() on a listener connection is refused;
    the server's connections set holds the open ones."""
    events = []
    seen = {}

    class Recorder(lwa.ConnectionListener):
        def on_open(self):
            events.append(("open", self.connection.request.path))
            seen["conn"] = self.connection

        def on_message(self, message):
            events.append(("message", message))

        def on_close(self, code, reason):
            events.append(("close", code, reason))

    async def main():
        async with lwa.serve(Recorder, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/room?x=1") as ws:
                await ws.send("a")
                await ws.send(b"b")
                await ws.ping()  # the messages before it were read
                assert srv.connections == {seen["conn"]}
                with pytest.raises(RuntimeError):
                    await seen["conn"].recv()
                await ws.close(4001, "bye")
            await seen["conn"].wait_closed()
            with pytest.raises(libws.ConnectionClosed):
                seen["conn"].send_nowait("late")
            assert srv.connections == set()

    run(main())
    assert events == [("open", "/room?x=1"), ("message", "a"), ("message", b"b"), ("close", 4001, "bye")], events


def test_listener_exception_closes_1011_and_others_go_on(caplog):
    """An exception in on_message (or on_open) is logged and closes that
    connection with 1011; the server's other connections are served."""

    class Picky(lwa.ConnectionListener):
        def on_open(self):
            if self.connection.request.path == "/bad-open":
                raise ValueError("no")

        def on_message(self, message):
            if message == "boom":
                raise ValueError("boom")
            self.connection.send_nowait(message)

    async def main():
        async with lwa.serve(Picky, "127.0.0.1", 0) as srv:
            url = f"ws://127.0.0.1:{srv.port}/"
            async with lwa.connect(url) as ws, lwa.connect(url) as other:
                await ws.send("boom")
                with pytest.raises(libws.ConnectionClosed) as e:
                    await ws.recv()
                assert e.value.code == 1011
                await other.send("still here")
                assert await other.recv() == "still here"
            async with lwa.connect(url + "bad-open") as bad:
                with pytest.raises(libws.ConnectionClosed) as e:
                    await bad.recv()
                assert e.value.code == 1011

    with caplog.at_level("ERROR", logger="libws"):
        run(main())
    text = caplog.text
    assert "boom" in text and "ConnectionListener.on_open" in text, text


def test_listener_pause_and_resume_reading():
    """pause_reading() in on_message stops reading (TCP pushes back) until
    resume_reading(); nothing is lost. On a handler's connection the two
    are refused (recv applies max_queue there)."""
    got = []
    box = {}

    class Slow(lwa.ConnectionListener):
        def on_message(self, message):
            got.append(message)
            if len(got) == 1:
                self.connection.pause_reading()
                box["conn"] = self.connection
                box["paused"].set()

    async def main():
        box["paused"] = asyncio.Event()
        async with lwa.serve(Slow, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                await ws.send("0")
                await box["paused"].wait()
                for i in range(1, 50):
                    await ws.send(str(i))
                await asyncio.sleep(0.3)
                assert got == ["0"], got
                box["conn"].resume_reading()
                for _ in range(100):
                    if len(got) == 50:
                        break
                    await asyncio.sleep(0.02)
                assert got == [str(i) for i in range(50)]

        async def handler(conn):
            with pytest.raises(RuntimeError):
                conn.pause_reading()
            await conn.send("checked")

        async with lwa.serve(handler, "127.0.0.1", 0) as srv:
            async with lwa.connect(f"ws://127.0.0.1:{srv.port}/") as ws:
                assert await ws.recv() == "checked"

    run(main())


def test_listener_server_close_sends_1001_and_waits():
    """Server.close() with listener connections: each gets 1001, on_close
    runs, and wait_closed returns."""
    closed = []

    class Quiet(lwa.ConnectionListener):
        def on_close(self, code, reason):
            closed.append(code)

    async def main():
        srv = await lwa.serve(Quiet, "127.0.0.1", 0)
        clients = [await lwa.connect(f"ws://127.0.0.1:{srv.port}/") for _ in range(3)]
        for c in clients:
            await c.ping()
        srv.close()
        await asyncio.wait_for(srv.wait_closed(), 10)
        for c in clients:
            with pytest.raises(libws.ConnectionClosed) as e:
                await c.recv()
            assert e.value.code == 1001

    run(main())
    assert len(closed) == 3, closed
