"""Echo server: sends every message back to its sender (thread per connection).

    python examples/echo_server.py --port 8765

Prints "listening on ws://HOST:PORT/" once the socket is bound (--port 0
picks a free port); Ctrl-C (or SIGTERM) stops it.
"""

import argparse
import logging
import signal
from types import FrameType
from typing import Optional

import libws


def echo(ws: libws.Connection) -> None:
    for message in ws:  # ends when the client closes normally
        ws.send(message)


def stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    server = libws.serve(args.host, args.port, echo, max_size=None,
                         compression="deflate" if args.compression else None)
    signal.signal(signal.SIGTERM, stop)  # like Ctrl-C
    print(f"listening on ws://{server.address[0]}:{server.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
