"""CPU per round trip with client and server in one process and one
asyncio loop: libws.asyncio, `websockets` (asyncio), `picows`.

A program, not a test. Each implementation serves an echo on 127.0.0.1
(ephemeral port) and its client, in the same loop, sends a message and
awaits the echo, --count times; the figure is ``time.process_time``
per round trip (both sides together, so the machine's load hardly moves
it). The servers and clients are the ones of ``asyncio_bench.py``.

    python bench/asyncio_inproc.py                    # 256 B, 10,000 round trips, 3 runs
    python bench/asyncio_inproc.py --uvloop --size 1048576 --count 500
    python bench/asyncio_inproc.py --profile libws    # cProfile of libws's run, by own time
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if os.environ.get("LIBWS_BENCH_INSTALLED") != "1":
    sys.path.insert(0, str(HERE.parent))

import asyncio_bench as ab  # noqa: E402


async def one(impl: str, size: int, count: int) -> float:
    """process_time per round trip (µs) of `count` echoes of `size` bytes."""
    port_box: "asyncio.Future[int]" = asyncio.get_running_loop().create_future()
    server = asyncio.ensure_future(ab.SERVERS[impl](port_box.set_result))
    try:
        port = await port_box
        c = await ab.CLIENTS[impl](f"ws://127.0.0.1:{port}/")
        msg = bytes(range(256)) * (size // 256) + bytes(size % 256)
        try:
            for _ in range(50):  # warm-up
                await c.send(msg)
                if await c.recv() != msg:
                    raise AssertionError(f"{impl}: echo differs")
            t0 = time.process_time()
            for _ in range(count):
                await c.send(msg)
                if len(await c.recv()) != size:
                    raise AssertionError(f"{impl}: echo differs")
            return (time.process_time() - t0) / count * 1e6
        finally:
            await c.close()
    finally:
        server.cancel()
        try:
            await server
        except BaseException:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--impl", default=",".join(ab.IMPLS))
    ap.add_argument("--uvloop", action="store_true")
    ap.add_argument("--profile", metavar="IMPL", help="run IMPL once under cProfile and print the top functions")
    args = ap.parse_args()
    import logging

    logging.disable(logging.WARNING)
    if args.uvloop:
        import uvloop

        uvloop.install()
    run: Callable[[str], float] = lambda impl: asyncio.run(one(impl, args.size, args.count))
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        run(args.profile)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    impls = [i for i in args.impl.split(",") if ab.available(i) is None]
    res: dict = {i: [] for i in impls}
    for _ in range(args.repeat):
        for impl in impls:
            res[impl].append(run(impl))
    print(f"# Python {sys.version.split()[0]}, {'uvloop' if args.uvloop else 'asyncio'}, "
          f"{args.size} B, {args.count} round trips, both sides in one process")
    base = statistics.median(res[impls[0]]) if impls else 0.0
    for impl in impls:
        runs: List[Any] = res[impl]
        m = statistics.median(runs)
        print(f"{impl:<11} {m:>7.1f} us/rt (runs: {', '.join(f'{r:.1f}' for r in runs)})  "
              f"x/{impls[0]}: {m / base:.2f}")


if __name__ == "__main__":
    main()
