"""asyncio WebSocket benchmark: libws.asyncio vs `websockets` (asyncio) vs
`picows`, in the same run.

A program, not a test. For each implementation its own echo server runs
in a child process (so client and server each have a core) and its own
client runs here, on 127.0.0.1 with an ephemeral port; compression is off
everywhere. Two figures per message size:

  rtt         one message in flight: send, await the echo, repeat
              (round trips per second)
  throughput  --window messages in flight: each echo that comes back is
              answered with the next message (MB/s of echoed payload)

and, because wall-clock figures on a shared machine move with its load,
the CPU time each side spent per round trip in the rtt test (client: this
process; server: the child's utime+stime from /proc), which does not.

Clients use each library's coroutine style where it has one
(``await ws.send`` / ``await ws.recv``); picows has only callbacks, so its
client wraps them in the same ``await recv()`` shape (a deque and a
future), and its server echoes from the frame callback (its fastest);
libws-cb is libws in that server shape (a ConnectionListener).

Each figure is the median of --repeat runs, implementations interleaved
within every repeat so that machine noise hits them alike.

    python bench/asyncio_bench.py                    # 256 B and 1 MiB
    python bench/asyncio_bench.py --sizes 256 --seconds 2 --repeat 5 --uvloop

Needs websockets and picows (pip install websockets picows); an
implementation that is not installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
if os.environ.get("LIBWS_BENCH_INSTALLED") != "1":
    sys.path.insert(0, str(HERE.parent))

#: libws-loop: libws.asyncio over the libws event loop nested in asyncio's
#: (its path for proxies and without the C extension), next to its
#: default session path
#: libws-cb: the same client, and a server that echoes from a
#: ConnectionListener's on_message (picows' server shape: no task wakes per
#: message)
IMPLS = ["libws", "libws-cb", "libws-loop", "websockets", "picows"]


class _path:
    """``with _path(session=False):`` connections and servers made inside
    take the loop path (libws.asyncio reads the switch when it makes one)."""

    def __init__(self, session: bool) -> None:
        self.session = session

    def __enter__(self) -> None:
        import libws.asyncio as lwa

        self.prev = lwa._session
        lwa._session = self.session and lwa._session

    def __exit__(self, *exc: Any) -> None:
        import libws.asyncio as lwa

        lwa._session = self.prev


# ---------------------------------------------------------------------------
# servers (child process)
# ---------------------------------------------------------------------------


async def serve_libws(ready: Callable[[int], None], session: bool = True) -> None:
    import libws.asyncio as lwa

    async def echo(ws: Any) -> None:
        async for m in ws:
            await ws.send(m)

    with _path(session):
        srv = await lwa.serve(echo, "127.0.0.1", 0, max_size=None, max_queue=None)
    async with srv:
        ready(srv.port)
        await asyncio.Event().wait()


async def serve_libws_cb(ready: Callable[[int], None]) -> None:
    import libws.asyncio as lwa

    class Echo(lwa.ConnectionListener):
        def on_message(self, message: Any) -> None:
            self.connection.send_nowait(message)

    srv = await lwa.serve(Echo, "127.0.0.1", 0, max_size=None)
    async with srv:
        ready(srv.port)
        await asyncio.Event().wait()


async def serve_websockets(ready: Callable[[int], None]) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for m in ws:
            await ws.send(m)

    async with serve(echo, "127.0.0.1", 0, max_size=None, compression=None, max_queue=None) as srv:
        ready(srv.sockets[0].getsockname()[1])
        await asyncio.Event().wait()


async def serve_picows(ready: Callable[[int], None]) -> None:
    import picows

    class Echo(picows.WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                transport.send(frame.msg_type, frame.get_payload_as_bytes())

    srv = await picows.ws_create_server(lambda req: Echo(), "127.0.0.1", 0, max_frame_size=64 << 20)
    ready(srv.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


async def serve_libws_loop(ready: Callable[[int], None]) -> None:
    await serve_libws(ready, session=False)


SERVERS = {"libws": serve_libws, "libws-cb": serve_libws_cb, "libws-loop": serve_libws_loop,
           "websockets": serve_websockets, "picows": serve_picows}


def server_main(impl: str, use_uvloop: bool) -> None:
    def ready(port: int) -> None:
        print(port, flush=True)

    if use_uvloop:
        import uvloop

        uvloop.install()
    import logging

    logging.disable(logging.WARNING)  # picows logs every write pause/resume
    asyncio.run(SERVERS[impl](ready))


# ---------------------------------------------------------------------------
# clients (this process)
# ---------------------------------------------------------------------------


class Client:
    """``await send(m)``, ``await recv()``, ``await close()``."""

    send: Callable[[bytes], Awaitable[None]]
    recv: Callable[[], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]


async def client_libws(url: str, session: bool = True) -> Client:
    import libws.asyncio as lwa

    with _path(session):
        ws = await lwa.connect(url, max_size=None, max_queue=None)
    c = Client()
    c.send, c.recv, c.close = ws.send, ws.recv, ws.close
    return c


async def client_websockets(url: str) -> Client:
    from websockets.asyncio.client import connect

    ws = await connect(url, max_size=None, compression=None, max_queue=None)
    c = Client()
    c.send, c.recv, c.close = ws.send, ws.recv, ws.close
    return c


async def client_picows(url: str) -> Client:
    import picows

    loop = asyncio.get_running_loop()

    class Listener(picows.WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.queue: Deque[bytes] = collections.deque()
            self.waiter: Optional[asyncio.Future[None]] = None

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.BINARY:
                self.queue.append(frame.get_payload_as_bytes())
                w = self.waiter
                if w is not None and not w.done():
                    w.set_result(None)

    transport, listener = await picows.ws_connect(Listener, url, max_frame_size=64 << 20)

    async def send(m: bytes) -> None:
        transport.send(picows.WSMsgType.BINARY, m)

    async def recv() -> bytes:
        while not listener.queue:
            listener.waiter = loop.create_future()
            await listener.waiter
        return listener.queue.popleft()

    async def close() -> None:
        transport.send_close(picows.WSCloseCode.OK)
        await asyncio.wait_for(transport.wait_disconnected(), 5)

    c = Client()
    c.send, c.recv, c.close = send, recv, close
    return c


async def client_libws_loop(url: str) -> Client:
    return await client_libws(url, session=False)


CLIENTS = {"libws": client_libws, "libws-cb": client_libws, "libws-loop": client_libws_loop,
           "websockets": client_websockets, "picows": client_picows}


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process `pid` so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def measure(impl: str, url: str, size: int, seconds: float, window: int,
                  pid: int) -> Tuple[float, float, float, float]:
    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    c = await CLIENTS[impl](url)
    try:
        for _ in range(20):  # warm-up
            await c.send(msg)
            if await c.recv() != msg:
                raise AssertionError(f"{impl}: echo differs")
        # rtt
        n = 0
        t0 = time.perf_counter()
        c0, s0 = time.process_time(), server_cpu(pid)
        end = t0 + seconds
        while True:
            for _ in range(10):
                await c.send(msg)
                if len(await c.recv()) != size:
                    raise AssertionError(f"{impl}: echo differs")
            n += 10
            if time.perf_counter() >= end:
                break
        rtt = n / (time.perf_counter() - t0)
        ccpu = (time.process_time() - c0) / n * 1e6
        scpu = (server_cpu(pid) - s0) / n * 1e6
        # throughput: `window` in flight
        for _ in range(window):
            await c.send(msg)
        n = 0
        t0 = time.perf_counter()
        end = t0 + seconds
        while True:
            for _ in range(10):
                if len(await c.recv()) != size:
                    raise AssertionError(f"{impl}: echo differs")
                await c.send(msg)
            n += 10
            if time.perf_counter() >= end:
                break
        elapsed = time.perf_counter() - t0
        for _ in range(window):
            await c.recv()
        return rtt, n * size / elapsed / 1e6, ccpu, scpu
    finally:
        await c.close()


def start_server(impl: str, use_uvloop: bool) -> Tuple[subprocess.Popen, int]:
    cmd = [sys.executable, __file__, "--serve", impl] + (["--uvloop"] if use_uvloop else [])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line.strip().isdigit():
        p.kill()
        raise RuntimeError(f"{impl} server did not start")
    return p, int(line)


def available(impl: str) -> Optional[str]:
    try:
        if impl == "websockets":
            import websockets  # noqa: F401
            from websockets.asyncio.client import connect  # noqa: F401
        elif impl == "picows":
            import picows  # noqa: F401
        else:
            import libws.asyncio  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


def version(impl: str) -> str:
    if impl in ("libws", "libws-cb", "libws-loop"):
        import libws
        import libws.asyncio

        # Which per-message path libws.asyncio takes: the session over
        # asyncio's transport, or the libws loop with the C extension
        # (from the checkout: `python setup.py build_ext --inplace` in
        # bindings/python) or ctypes.
        if impl in ("libws", "libws-cb") and libws.asyncio._session_path():
            path = "session path"
        else:
            path = "loop, C path" if libws.asyncio._fast is not None else "loop, ctypes path"
        return f"{libws.__version__} ({path})"
    mod = __import__(impl)
    return getattr(mod, "__version__", "?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="256,1048576", help="message sizes in bytes, comma-separated")
    ap.add_argument("--seconds", type=float, default=2.0, help="per figure and run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--window", type=int, default=0, help="messages in flight (default: 64, or 4 at >= 64 KiB)")
    ap.add_argument("--impl", default=",".join(IMPLS), help="implementations, comma-separated")
    ap.add_argument("--uvloop", action="store_true", help="run clients and servers on uvloop")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        server_main(args.serve, args.uvloop)
        return
    import logging

    logging.disable(logging.WARNING)  # picows logs every write pause/resume
    if args.uvloop:
        import uvloop

        uvloop.install()
    impls = []
    for impl in args.impl.split(","):
        why = available(impl)
        if why:
            print(f"# skipping {impl}: {why}")
        else:
            impls.append(impl)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"# Python {platform.python_version()}, {'uvloop' if args.uvloop else 'asyncio'}, "
          + ", ".join(f"{i} {version(i)}" for i in impls))
    servers = {i: start_server(i, args.uvloop) for i in impls}
    results: Dict[Tuple[str, int], List[Tuple[float, float, float, float]]] = collections.defaultdict(list)
    try:
        for size in sizes:
            window = args.window or (4 if size >= 65536 else 64)
            for _ in range(args.repeat):
                for impl in impls:
                    url = f"ws://127.0.0.1:{servers[impl][1]}/"
                    results[(impl, size)].append(
                        asyncio.run(measure(impl, url, size, args.seconds, window, servers[impl][0].pid)))
    finally:
        for p, _ in servers.values():
            p.kill()
            p.wait(10)
    print("libws/x: how many times libws's figure is x's (above 1: libws is ahead; for CPU, x's CPU / libws's)")
    print(f"{'size':>8} {'impl':<11} {'rtt/s':>8} {'MB/s':>8} {'cli us/rt':>9} {'srv us/rt':>9}  "
          f"{'rtt':>6} {'MB/s':>6} {'cli cpu':>7} {'srv cpu':>7}")
    for size in sizes:
        base = None
        for impl in impls:
            runs = results[(impl, size)]
            m = tuple(statistics.median(r[k] for r in runs) for k in range(4))
            if base is None:
                base = m
            print(f"{size:>8} {impl:<11} {m[0]:>8.0f} {m[1]:>8.1f} {m[2]:>9.1f} {m[3]:>9.1f}  "
                  f"{base[0] / m[0]:>5.2f}x {base[1] / m[1]:>5.2f}x {m[2] / base[2]:>6.2f}x {m[3] / base[3]:>6.2f}x")


if __name__ == "__main__":
    main()
