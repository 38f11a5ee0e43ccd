"""Shared fixtures. The package is imported from the checkout
(bindings/python) unless LIBWS_TEST_INSTALLED=1 (then from site-packages)."""

import base64
import hashlib
import os
import socket
import sys
import threading
from pathlib import Path

import pytest

if os.environ.get("LIBWS_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import libws  # noqa: E402

SIZES = [0, 125, 126, 65535, 65536, 16 << 20]


def payload(n: int, text: bool):
    if text:
        pat = "libws interop 0123456789 abcdefghijklmnopqrstuvwxyz\n"
        return (pat * (n // len(pat) + 1))[:n]
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def echo_handler(ws):
    for message in ws:
        ws.send(message)


@pytest.fixture
def echo_server():
    with libws.serve("127.0.0.1", 0, echo_handler, background=True, max_size=None) as server:
        yield server


@pytest.fixture
def echo_url(echo_server):
    return f"ws://127.0.0.1:{echo_server.port}/echo"


class RawServer:
    """A plain TCP server on a thread: `respond(sock, request_bytes)` answers."""

    def __init__(self, respond):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.respond = respond
        self.clients = []
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.clients.append(c)
        try:
            c.settimeout(10)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = c.recv(4096)
                if not chunk:
                    return
                req += chunk
            self.respond(c, req)
        except Exception as e:  # reported by the test
            self.errors.append(e)

    def close(self):
        self.sock.close()
        for c in self.clients:
            try:
                c.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv()
            except OSError:
                pass
            c.close()
        self.thread.join(5)


def accept_key(request: bytes) -> str:
    for line in request.split(b"\r\n"):
        if line.lower().startswith(b"sec-websocket-key:"):
            key = line.split(b":", 1)[1].strip()
            digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            return base64.b64encode(digest).decode()
    raise AssertionError("no Sec-WebSocket-Key")


@pytest.fixture
def raw_server():
    servers = []

    def make(respond):
        s = RawServer(respond)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def drain(sock):
    """Reads and discards until the peer closes (or 10 s pass)."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


PACKAGE_DIR = Path(__file__).resolve().parent.parent


def child_env(**extra):
    """Environment for a child Python that must import the same libws."""
    env = dict(os.environ)
    if os.environ.get("LIBWS_TEST_INSTALLED") != "1":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_DIR), env.get("PYTHONPATH")]))
    env.update(extra)
    return env
