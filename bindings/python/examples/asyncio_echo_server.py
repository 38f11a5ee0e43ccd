"""Echo server on asyncio (libws.asyncio): one task per connection, no thread.

    python examples/asyncio_echo_server.py --port 8765 [--uvloop] [--callbacks]

--callbacks echoes from a ConnectionListener's on_message instead (no task
per connection, no await per message: picows' server shape).

Prints "listening on ws://HOST:PORT/" once the socket is bound (--port 0
picks a free port); Ctrl-C (or SIGTERM) closes every connection (1001) and
stops it.
"""

import argparse
import asyncio
import signal
from typing import Union

import libws.asyncio as ws


async def echo(conn: ws.ServerConnection) -> None:
    async for message in conn:  # ends when the client closes normally
        await conn.send(message)  # waits while the client reads slowly


class Echo(ws.ConnectionListener):
    def on_message(self, message: Union[str, bytes]) -> None:
        self.connection.send_nowait(message)  # queued at once; no wait


async def serve(host: str, port: int, compression: bool, callbacks: bool) -> None:
    handler = Echo if callbacks else echo
    async with ws.serve(handler, host, port, max_size=None, compression="deflate" if compression else None) as server:
        print(f"listening on ws://{server.host}:{server.port}/", flush=True)
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop  # or Ctrl-C: asyncio.run cancels this, and the server closes
    print("stopped", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--callbacks", action="store_true", help="echo from a ConnectionListener (no task)")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    try:
        asyncio.run(serve(args.host, args.port, args.compression, args.callbacks))
    except KeyboardInterrupt:
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
