"""Client for tests/interop_python.rs, on the Python `websockets` package.

Usage: ws_client.py URL SUBPROTOCOL
Connects to a libws echo server offering SUBPROTOCOL, checks that it was
selected, sends text and binary messages of 0 B, 125 B, 126 B, 65535 B,
65536 B and 16 MiB and checks each echo, pings the server and waits for
its pong, then closes with code 1000 and reason "python client done".
Prints one line per check; exits 0 only if every check passed (1 if one
failed, 2 on an unexpected error).
"""

import asyncio
import sys

import websockets

SIZES = [0, 125, 126, 65535, 65536, 16 << 20]
TIMEOUT = 60


def payload(n, text):
    pattern = b"libws interop 0123456789 abcdefghijklmnopqrstuvwxyz\n" if text else bytes(range(251))
    data = (pattern * (n // len(pattern) + 1))[:n]
    return data.decode("ascii") if text else data


async def run(url, subprotocol):
    failures = []

    def check(ok, what):
        print("%s %s" % ("ok  " if ok else "FAIL", what), flush=True)
        if not ok:
            failures.append(what)

    async with websockets.connect(url, max_size=None, subprotocols=[subprotocol], open_timeout=10,
                                  close_timeout=10) as ws:
        check(ws.subprotocol == subprotocol, "subprotocol %r selected (got %r)" % (subprotocol, ws.subprotocol))
        for text in (True, False):
            for n in SIZES:
                sent = payload(n, text)
                await ws.send(sent)
                got = await asyncio.wait_for(ws.recv(), TIMEOUT)
                kind = "text" if text else "binary"
                check(type(got) is type(sent) and got == sent,
                      "%s echo of %d bytes (got %s of %d)" % (kind, n, type(got).__name__, len(got)))
        pong = await ws.ping(b"python-ping")
        try:
            await asyncio.wait_for(pong, 10)
            check(True, "pong received")
        except asyncio.TimeoutError:
            check(False, "pong received")
        await ws.close(1000, "python client done")
        rcvd = getattr(ws, "close_code", None)
        check(rcvd == 1000, "server answered the close with 1000 (got %r)" % (rcvd,))
    return failures


def main():
    if len(sys.argv) != 3:
        print("usage: ws_client.py URL SUBPROTOCOL", file=sys.stderr)
        return 2
    try:
        failures = asyncio.run(asyncio.wait_for(run(sys.argv[1], sys.argv[2]), 4 * TIMEOUT))
    except Exception as e:  # noqa: BLE001 -- any error is a failed interop run
        print("ERROR %s: %s" % (type(e).__name__, e), flush=True)
        return 2
    print("%d checks failed" % len(failures) if failures else "all checks passed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
