"""A TLS peer on the Python `websockets` package, for tests/tls_examples.rs.

  wss_peer.py server CERT KEY   serve wss:// on 127.0.0.1 (ephemeral port,
                                printed as "PORT <n>"), echo every message;
                                exits when stdin closes
  wss_peer.py client URL CA     connect with CA as the only trust anchor,
                                send text and binary messages of several
                                sizes, check each echo, close with 1000;
                                prints one line per check, exits 0 only if
                                every check passed
"""

import asyncio
import ssl
import sys

import websockets

SIZES = [0, 125, 126, 65535, 65536, 1 << 20]


def payload(n, text):
    pattern = b"libws wss interop 0123456789\n" if text else bytes(range(251))
    data = (pattern * (n // len(pattern) + 1))[:n]
    return data.decode("ascii") if text else data


async def echo(ws, *_legacy_path):
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.exceptions.ConnectionClosed:
        pass


async def serve(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with websockets.serve(echo, "127.0.0.1", 0, ssl=ctx, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print("PORT %d" % port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url, ca):
    ctx = ssl.create_default_context(cafile=ca)
    failures = 0
    async with websockets.connect(url, ssl=ctx, max_size=None, open_timeout=10, close_timeout=10) as ws:
        for text in (True, False):
            for n in SIZES:
                sent = payload(n, text)
                await ws.send(sent)
                got = await asyncio.wait_for(ws.recv(), 30)
                ok = type(got) is type(sent) and got == sent
                failures += not ok
                print("%s %s echo of %d bytes" % ("ok  " if ok else "FAIL", "text" if text else "binary", n),
                      flush=True)
        await ws.close(1000, "python wss client done")
    return 1 if failures else 0


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "server":
        asyncio.run(serve(sys.argv[2], sys.argv[3]))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "client":
        return asyncio.run(client(sys.argv[2], sys.argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
