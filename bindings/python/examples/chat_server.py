"""Chat server: every text message goes to every connected client.

    python examples/chat_server.py --port 8765

A client's first message is its name; later messages are broadcast as
"name: message". Joins and departures are announced. Writes are safe from
any thread, so each handler thread sends to the others directly.
"""

import argparse
import logging
import signal
from types import FrameType
from typing import Dict, Optional
import threading

import libws

clients: Dict[libws.Connection, str] = {}  # Connection -> name
lock = threading.Lock()


def broadcast(text: str) -> None:
    with lock:
        targets = list(clients)
    for ws in targets:
        try:
            ws.send(text)
        except libws.ConnectionClosed:
            pass  # that client is leaving; its own thread cleans up


def chat(ws: libws.Connection) -> None:
    name = ws.recv(timeout=30)
    if not isinstance(name, str) or not name.strip():
        ws.close(1008, "send your name as text first")
        return
    name = name.strip()[:32]
    with lock:
        clients[ws] = name
    broadcast(f"* {name} joined")
    try:
        for message in ws:
            if isinstance(message, str):
                broadcast(f"{name}: {message}")
    finally:
        with lock:
            clients.pop(ws, None)
        broadcast(f"* {name} left")


def stop(signum: int, frame: Optional[FrameType]) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    server = libws.serve(args.host, args.port, chat)
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
