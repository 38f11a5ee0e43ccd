"""Event-driven echo server: every connection on one thread (libws's event loop).

    python examples/event_echo_server.py --port 8765

Same command line and output as echo_server.py: prints "listening on
ws://HOST:PORT/" once the socket is bound (--port 0 picks a free port);
Ctrl-C (or SIGTERM) closes every connection with 1001 and stops.

Flow control as in examples-c/echo_server_loop.c: a client that sends
faster than it reads is paused once 4 MiB of echoes wait for it, and
resumed when they have drained.
"""

import argparse
import logging
import signal
from types import FrameType
from typing import Optional, Union

import libws

PAUSE_AT = 4 << 20


class Echo(libws.EventHandler):
    def on_open(self, conn: libws.LoopConnection) -> None:
        logging.debug("open %s%s", conn.remote_address, conn.request.path if conn.request else "")

    def on_message(self, conn: libws.LoopConnection, message: Union[str, bytes]) -> None:
        conn.send(message)  # queued, never blocks
        if conn.buffered_amount > PAUSE_AT:
            conn.pause_reading()

    def on_drain(self, conn: libws.LoopConnection) -> None:
        if conn.reading_paused:
            conn.resume_reading()

    def on_error(self, conn: libws.LoopConnection, error: libws.LibwsError) -> None:
        logging.info("connection %s failed: %s", conn.remote_address, error)


def stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--compression", action="store_true", help="accept permessage-deflate")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    # max_buffered=None: flow control (on_message/on_drain) replaces the
    # queue limit, so a send never raises QueueFull.
    server = libws.serve_events(args.host, args.port, Echo(), max_size=None, max_buffered=None,
                                compression="deflate" if args.compression else None)
    signal.signal(signal.SIGTERM, stop)  # like Ctrl-C
    print(f"listening on ws://{server.address[0]}:{server.port}/", flush=True)
    try:
        server.serve_forever()  # KeyboardInterrupt: clients get 1001, then it propagates
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
