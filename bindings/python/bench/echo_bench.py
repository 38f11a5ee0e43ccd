"""Echo round trips per second: libws vs the `websockets` package.

A program, not a test. For each implementation an echo server and one
client run in this Python process on 127.0.0.1 (ephemeral port); the
client sends a binary message, waits for its echo, and repeats (one
message in flight) for --seconds; the figure is round trips per second,
the median of --repeat runs. Compression is off on both sides (websockets
enables permessage-deflate by default; libws does not).

Implementations:
  libws               libws.serve (thread per connection) + libws.connect
  libws-events        libws.serve_events (event loop on a thread) + libws.connect
  websockets-sync     websockets.sync.server.serve + websockets.sync.client.connect (threads)
  websockets-asyncio  websockets.asyncio.server.serve + websockets.asyncio.client.connect
                      (one event loop; websockets >= 13)

    python bench/echo_bench.py --size 1024 --seconds 3 --repeat 3
"""

import argparse
import asyncio
import platform
import statistics
import threading
import time

import libws


def bench_libws(size, seconds):
    def echo(ws):
        for m in ws:
            ws.send(m)

    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with libws.serve("127.0.0.1", 0, echo, background=True, max_size=None) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as ws:
            for _ in range(200):  # warm-up
                ws.send(msg)
                ws.recv()
            n = 0
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while True:
                for _ in range(100):
                    ws.send(msg)
                    if ws.recv() != msg:
                        raise AssertionError("libws echo differs")
                n += 100
                if time.perf_counter() >= end:
                    break
            return n / (time.perf_counter() - t0)


def bench_libws_events(size, seconds):
    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with libws.serve_events("127.0.0.1", 0, lambda conn, m: conn.send(m), background=True, max_size=None) as server:
        with libws.connect(f"ws://127.0.0.1:{server.port}/", max_size=None) as ws:
            for _ in range(200):  # warm-up
                ws.send(msg)
                ws.recv()
            n = 0
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while True:
                for _ in range(100):
                    ws.send(msg)
                    if ws.recv() != msg:
                        raise AssertionError("libws event server echo differs")
                n += 100
                if time.perf_counter() >= end:
                    break
            return n / (time.perf_counter() - t0)


def bench_websockets_sync(size, seconds):
    from websockets.sync.client import connect
    from websockets.sync.server import serve

    def echo(ws):
        for m in ws:
            ws.send(m)

    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
    server = serve(echo, "127.0.0.1", 0, compression=None, max_size=None)
    port = server.socket.getsockname()[1]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as ws:
            for _ in range(200):
                ws.send(msg)
                ws.recv()
            n = 0
            end = time.perf_counter() + seconds
            t0 = time.perf_counter()
            while True:
                for _ in range(100):
                    ws.send(msg)
                    if ws.recv() != msg:
                        raise AssertionError("websockets echo differs")
                n += 100
                if time.perf_counter() >= end:
                    break
            return n / (time.perf_counter() - t0)
    finally:
        server.shutdown()
        t.join(10)


def bench_websockets_asyncio(size, seconds):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    msg = bytes(range(256)) * (size // 256) + bytes(size % 256)

    async def echo(ws):
        async for m in ws:
            await ws.send(m)

    async def main():
        async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as ws:
                for _ in range(200):
                    await ws.send(msg)
                    await ws.recv()
                n = 0
                end = time.perf_counter() + seconds
                t0 = time.perf_counter()
                while True:
                    for _ in range(100):
                        await ws.send(msg)
                        if await ws.recv() != msg:
                            raise AssertionError("websockets echo differs")
                    n += 100
                    if time.perf_counter() >= end:
                        break
                return n / (time.perf_counter() - t0)

    return asyncio.run(main())


BENCHES = {
    "libws": bench_libws,
    "libws-events": bench_libws_events,
    "websockets-sync": bench_websockets_sync,
    "websockets-asyncio": bench_websockets_asyncio,
}


def main():
    parser = argparse.ArgumentParser(description="echo round trips/s: libws vs websockets")
    parser.add_argument("--size", type=int, default=1024, help="message size in bytes (default 1024)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per implementation (median reported)")
    parser.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only these")
    args = parser.parse_args()

    import websockets

    names = args.only or list(BENCHES)
    print(f"# Python {platform.python_version()}, libws {libws.library_version} ({libws.library_path}), "
          f"websockets {websockets.__version__}")
    print(f"# {args.size}-byte binary messages, one in flight, {args.seconds:g} s x {args.repeat} runs, median")
    results = {}
    # Interleave the runs so that machine noise hits every implementation alike.
    runs = {name: [] for name in names}
    for _ in range(args.repeat):
        for name in names:
            runs[name].append(BENCHES[name](args.size, args.seconds))
    for name in names:
        results[name] = statistics.median(runs[name])
    base = results.get("libws")
    print()
    print("| implementation | round trips/s | runs | libws / this |")
    print("|---|---|---|---|")
    for name in names:
        r = results[name]
        ratio = f"{base / r:.2f}x" if base else "-"
        print(f"| {name} | {r:,.0f} | {', '.join(f'{x:,.0f}' for x in runs[name])} | {ratio} |")


if __name__ == "__main__":
    main()
