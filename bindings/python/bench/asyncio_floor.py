"""The floor under the asyncio benchmarks: TCP echo round trips with no
WebSocket at all, both sides in one process and one loop, in the two
server shapes the benchmarks compare.

A program, not a test. The client sends --size bytes and awaits the echo
(a future its protocol resolves, as asyncio_bench.py's picows client
does). The server echoes

  callback   from data_received (picows' server echoes from its frame callback)
  task       from a task per connection woken by data_received for every
             message (``async for m in ws: await ws.send(m)`` in
             libws.asyncio and websockets)

The difference is what one task wake-up per message costs the server;
the figure is ``time.process_time`` per round trip (µs).

    python bench/asyncio_floor.py [--uvloop] [--size 256] [--count 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from typing import Any, Deque, List, Optional


class EchoNow(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)


class EchoInTask(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.q: Deque[bytes] = collections.deque()
        self.w: Optional[asyncio.Future[None]] = None
        self.task = asyncio.get_running_loop().create_task(self.run())

    def data_received(self, data: bytes) -> None:
        self.q.append(data)
        if self.w is not None and not self.w.done():
            self.w.set_result(None)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.task.cancel()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.q:
                self.w = loop.create_future()
                await self.w
            self.t.write(self.q.popleft())


class Client(asyncio.Protocol):
    def __init__(self, size: int) -> None:
        self.size = size
        self.got = 0
        self.w: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.size and self.w is not None and not self.w.done():
            self.w.set_result(None)


async def one(shape: str, size: int, count: int) -> float:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(EchoNow if shape == "callback" else EchoInTask, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    t, c = await loop.create_connection(lambda: Client(size), "127.0.0.1", port)
    msg = b"x" * size

    async def rt() -> None:
        c.got = 0
        c.w = loop.create_future()
        t.write(msg)
        await c.w

    for _ in range(100):
        await rt()
    t0 = time.process_time()
    for _ in range(count):
        await rt()
    us = (time.process_time() - t0) / count * 1e6
    t.close()
    srv.close()
    await srv.wait_closed()
    return us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    res: dict = {"callback": [], "task": []}
    for _ in range(args.repeat):
        for shape in res:
            res[shape].append(asyncio.run(one(shape, args.size, args.count)))
    print(f"# Python {sys.version.split()[0]}, {'uvloop' if args.uvloop else 'asyncio'}, {args.size} B, "
          f"{args.count} round trips, both sides in one process, no WebSocket")
    for shape, runs in res.items():
        r: List[float] = runs
        print(f"{shape:<9} {statistics.median(r):>6.1f} us/rt (runs: {', '.join(f'{x:.1f}' for x in r)})")


if __name__ == "__main__":
    main()
