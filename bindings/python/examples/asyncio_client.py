"""An asyncio client: sends each argument, prints each reply and the latency.

    python examples/asyncio_client.py ws://127.0.0.1:8765/ hello world

Exits 0 after a clean close, 1 when the server is unreachable, refuses the
handshake, or does not answer within --timeout.
"""

import argparse
import asyncio
import sys
from typing import List

import libws
import libws.asyncio as ws


async def run(url: str, messages: List[str], timeout: float) -> int:
    try:
        async with ws.connect(url, open_timeout=timeout) as conn:
            for text in messages:
                await conn.send(text)
                reply = await asyncio.wait_for(conn.recv(), timeout)  # a timeout loses no message
                print(f"< {reply!r}", flush=True)
            latency = await asyncio.wait_for(conn.ping(), timeout)
            print(f"latency {latency * 1000:.2f} ms", flush=True)
        print(f"closed: {conn.close_code}", flush=True)
        return 0
    except libws.HandshakeError as e:
        print(f"handshake refused: HTTP {e.status}", file=sys.stderr)
    except ConnectionRefusedError:
        print("cannot connect: connection refused", file=sys.stderr)
    except (libws.ConnectError, asyncio.TimeoutError, libws.ConnectionClosedError) as e:
        print(f"failed: {e!r}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("messages", nargs="*", default=["hello"])
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    return asyncio.run(run(args.url, args.messages, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
