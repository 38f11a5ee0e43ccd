"""Echo server for tests/interop_python.rs, on the Python `websockets` package.

Listens on 127.0.0.1 with an ephemeral port and prints "PORT <n>" on stdout.
Echoes every text and binary message unchanged, except these text commands:
  "?subprotocol"   answers "subprotocol=<negotiated subprotocol or empty>"
  "?ping <data>"   pings the client with <data>, waits (5 s at most) for its
                   pong and answers "pong-received" (or "pong-timeout")
When a connection ends it prints one line:
  CLOSED code=<received close code or none> reason=<received reason as JSON>
Exits when stdin closes (or when killed).
"""

import asyncio
import json
import sys

import websockets
from websockets.exceptions import ConnectionClosed

SUBPROTOCOLS = ["chat.v2", "chat.v1"]


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def handler(ws, *_legacy_path):
    rcvd = None
    try:
        while True:
            msg = await ws.recv()
            if msg == "?subprotocol":
                await ws.send("subprotocol=" + (ws.subprotocol or ""))
            elif isinstance(msg, str) and msg.startswith("?ping "):
                waiter = await ws.ping(msg[len("?ping "):].encode())
                try:
                    await asyncio.wait_for(waiter, 5)
                    await ws.send("pong-received")
                except asyncio.TimeoutError:
                    await ws.send("pong-timeout")
            else:
                await ws.send(msg)
    except ConnectionClosed as e:
        rcvd = e.rcvd
    if rcvd is None:
        out("CLOSED code=none reason=null")
    else:
        out("CLOSED code=%d reason=%s" % (rcvd.code, json.dumps(rcvd.reason)))


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None, subprotocols=SUBPROTOCOLS) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        out("PORT %d" % port)
        loop = asyncio.get_running_loop()
        # Run until stdin is closed (the test holds the pipe) or we are killed.
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
