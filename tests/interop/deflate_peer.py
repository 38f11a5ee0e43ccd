"""permessage-deflate peer for tests/interop_deflate.rs, on Python `websockets`.

Usage: deflate_peer.py server CONFIG
       deflate_peer.py client URL CONFIG

CONFIG is the peer's compression setting:
  default  websockets's own defaults (compression="deflate": 12-bit
           windows, memLevel 5, context takeover)
  full     15-bit windows both ways, context takeover, zlib's defaults
  nct      no context takeover either way

server: an echo server on 127.0.0.1 (ephemeral port); prints "PORT n",
        then "EXT value" for every connection (the extension it agreed to);
        runs until its standard input ends.
client: sends 120 JSON-like text messages (10 B to 40 KiB) and 20 binary
        ones, checks every echo, prints "EXT value" (the server's
        response) and "ok N", closes with 1000. Exit 0 only if every echo
        matched (1 on a mismatch, 2 on an unexpected error).
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (ClientPerMessageDeflateFactory,
                                                      ServerPerMessageDeflateFactory)

TIMEOUT = 60


def server_extensions(config):
    if config == "default":
        return None  # compression="deflate" below
    if config == "full":
        return [ServerPerMessageDeflateFactory()]
    if config == "nct":
        return [ServerPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True)]
    raise SystemExit("unknown config %r" % config)


def client_extensions(config):
    if config == "default":
        return None
    if config == "full":
        return [ClientPerMessageDeflateFactory(client_max_window_bits=True)]
    if config == "nct":
        return [ClientPerMessageDeflateFactory(server_no_context_takeover=True, client_no_context_takeover=True,
                                               client_max_window_bits=True)]
    raise SystemExit("unknown config %r" % config)


def message(rng, i):
    size = rng.choice([10, 100, 700, 1024, 3000, 16384, 40000])
    # json.dumps of the growing list, built one record at a time (dumping
    # the whole list per record took ~5 s per client run).
    parts = []
    length = 2  # the brackets
    while length < size:
        part = json.dumps({"id": rng.randrange(100000), "user": "player%d" % rng.randrange(50),
                           "pos": [rng.randrange(2000), rng.randrange(2000)], "state": rng.choice(["online", "away"]),
                           "seq": i})
        length += len(part) + (2 if parts else 0)
        parts.append(part)
    return ("[" + ", ".join(parts) + "]")[:size]


async def run_server(config):
    async def echo(ws):
        print("EXT %s" % ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        async for m in ws:
            await ws.send(m)

    ext = server_extensions(config)
    kwargs = {"compression": "deflate"} if ext is None else {"extensions": ext, "compression": None}
    async with serve(echo, "127.0.0.1", 0, max_size=None, **kwargs) as server:
        port = server.sockets[0].getsockname()[1]
        print("PORT %d" % port, flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


async def run_client(url, config):
    ext = client_extensions(config)
    kwargs = {"compression": "deflate"} if ext is None else {"extensions": ext, "compression": None}
    rng = random.Random(7)
    bad = 0
    n = 0
    async with connect(url, max_size=None, open_timeout=10, close_timeout=10, **kwargs) as ws:
        print("EXT %s" % ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        for i in range(140):
            sent = message(rng, i) if i < 120 else rng.randbytes(rng.choice([0, 50, 5000]))
            await ws.send(sent)
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            n += 1
            if got != sent:
                bad += 1
                print("FAIL echo %d differs (%d bytes sent, %d back)" % (i, len(sent), len(got)), flush=True)
        await ws.close(1000, "done")
    print("ok %d" % (n - bad), flush=True)
    return 1 if bad else 0


def main():
    try:
        if sys.argv[1:2] == ["server"] and len(sys.argv) == 3:
            asyncio.run(run_server(sys.argv[2]))
            return 0
        if sys.argv[1:2] == ["client"] and len(sys.argv) == 4:
            return asyncio.run(run_client(sys.argv[2], sys.argv[3]))
        print(__doc__, file=sys.stderr)
        return 2
    except Exception as e:  # reported, not a traceback the test cannot read
        print("ERROR %r" % (e,), flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
