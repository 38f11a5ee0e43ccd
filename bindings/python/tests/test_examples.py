"""The programs in examples/: each is started, talked to and stopped."""

import queue
import signal
import subprocess
import sys
import threading

import pytest

import libws
from conftest import PACKAGE_DIR, child_env

EXAMPLES = PACKAGE_DIR / "examples"
TIMEOUT = 30


class Program:
    """A child process whose stdout lines are read by a thread; killed on exit."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-u", *map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=child_env())
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip("\n"))

    def line(self, timeout=TIMEOUT):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; stderr:\n" + "\n".join(self.stderr)) from None

    def url(self):
        first = self.line()
        assert first.startswith("listening on ws://"), (first, self.stderr)
        return first[len("listening on "):]

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("the program did not stop on " + sig.name) from None
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


def recv_in_thread(ws):
    """Starts ws.recv() on a thread (so the close handshake is answered while
    the test waits for a program to stop); returns a function that gives its
    outcome: the message or the exception."""
    box = []

    def run():
        try:
            box.append(ws.recv(timeout=TIMEOUT))
        except BaseException as e:
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def result():
        t.join(TIMEOUT)
        assert box, "recv() did not return"
        return box[0]

    return result


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_echo_server(sig):
    with Program(EXAMPLES / "echo_server.py", "--port", "0") as prog:
        url = prog.url()
        with libws.connect(url, timeout=10) as ws:
            for msg in ["hello", b"\x00\x01\x02", "é" * 70000]:
                ws.send(msg)
                assert ws.recv(timeout=TIMEOUT) == msg
        # an open connection is closed with 1001 when the server stops
        ws = libws.connect(url, timeout=10)
        outcome = recv_in_thread(ws)
        assert prog.stop(sig) == 0
        e = outcome()
        assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001, e
        assert e.reason == "server shutting down"
        ws.close()
        assert prog.line() == "stopped"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_event_echo_server(sig):
    with Program(EXAMPLES / "event_echo_server.py", "--port", "0") as prog:
        url = prog.url()
        with libws.connect(url, timeout=10, max_size=None) as ws:
            for msg in ["hello", b"\x00\x01\x02", "é" * 70000, b"", bytes(range(256)) * 4096 * 8]:
                ws.send(msg)
                assert ws.recv(timeout=TIMEOUT) == msg
            # flow control: 24 MiB sent without reading, all echoed in order
            # (the server pauses reading at 4 MiB queued, resumes on drain)
            chunk = bytes(range(256)) * 4096  # 1 MiB
            done = []
            sender = threading.Thread(target=lambda: done.append([ws.send(chunk) for _ in range(24)]), daemon=True)
            sender.start()
            for _ in range(24):
                assert ws.recv(timeout=TIMEOUT) == chunk
            sender.join(TIMEOUT)
            assert done
        # open connections are closed with 1001 when the server stops
        clients = [libws.connect(url, timeout=10) for _ in range(3)]
        outcomes = [recv_in_thread(ws) for ws in clients]
        assert prog.stop(sig) == 0
        for ws, outcome in zip(clients, outcomes):
            e = outcome()
            assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001, e
            assert e.reason == "server shutting down"
            ws.close()
        assert prog.line() == "stopped"


def test_client_against_event_echo_server():
    with Program(EXAMPLES / "event_echo_server.py", "--port", "0") as server:
        url = server.url()
        out = subprocess.run([sys.executable, str(EXAMPLES / "client.py"), url, "hello", "wörld"],
                             capture_output=True, text=True, timeout=TIMEOUT, env=child_env())
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[1:] == ["< hello", "< wörld", "closed: 1000"]
        assert server.stop() == 0


def test_client_against_echo_server():
    with Program(EXAMPLES / "echo_server.py", "--port", "0") as server:
        url = server.url()
        out = subprocess.run([sys.executable, str(EXAMPLES / "client.py"), url, "hello", "wörld"],
                             capture_output=True, text=True, timeout=TIMEOUT, env=child_env())
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("connected to 127.0.0.1:")
        assert lines[1:] == ["< hello", "< wörld", "closed: 1000"]
        out = subprocess.run([sys.executable, str(EXAMPLES / "client.py"), url, "--json"], input="a\nb\n",
                             capture_output=True, text=True, timeout=TIMEOUT, env=child_env())
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[1:] == ["< {'text': 'a'}", "< {'text': 'b'}", "closed: 1000"]
        assert server.stop() == 0


def test_client_reports_refusal_and_unreachable():
    def refuse(ws):
        ws.close(4000, "go away")

    with libws.serve("127.0.0.1", 0, refuse, background=True) as srv:
        out = subprocess.run([sys.executable, str(EXAMPLES / "client.py"), f"ws://127.0.0.1:{srv.port}/", "x"],
                             capture_output=True, text=True, timeout=TIMEOUT, env=child_env())
    assert out.returncode == 1
    assert "connection closed: 4000 go away" in out.stderr
    out = subprocess.run([sys.executable, str(EXAMPLES / "client.py"), f"ws://127.0.0.1:{srv.port}/", "x"],
                         capture_output=True, text=True, timeout=TIMEOUT, env=child_env())
    assert out.returncode == 1 and "cannot connect" in out.stderr


def test_chat_server():
    with Program(EXAMPLES / "chat_server.py", "--port", "0") as prog:
        url = prog.url()
        alice = libws.connect(url, timeout=10)
        alice.send("alice")
        assert alice.recv(timeout=TIMEOUT) == "* alice joined"
        bob = libws.connect(url, timeout=10)
        bob.send("bob")
        assert bob.recv(timeout=TIMEOUT) == "* bob joined"
        assert alice.recv(timeout=TIMEOUT) == "* bob joined"
        alice.send("hi bob")
        assert alice.recv(timeout=TIMEOUT) == "alice: hi bob"
        assert bob.recv(timeout=TIMEOUT) == "alice: hi bob"
        bob.close()
        assert alice.recv(timeout=TIMEOUT) == "* bob left"
        # a nameless (binary) first message is refused with 1008
        anon = libws.connect(url, timeout=10)
        anon.send(b"\x00")
        with pytest.raises(libws.ConnectionClosedError) as ei:
            anon.recv(timeout=TIMEOUT)
        assert ei.value.code == 1008
        anon.close()
        outcome = recv_in_thread(alice)
        assert prog.stop() == 0
        e = outcome()
        assert isinstance(e, libws.ConnectionClosedOK) and e.code == 1001, e
        alice.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_asyncio_echo_server_and_client(loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    extra = ["--uvloop"] if loop == "uvloop" else []
    with Program(EXAMPLES / "asyncio_echo_server.py", "--port", "0", *extra) as server:
        url = server.url()
        with libws.connect(url) as ws:
            ws.send("ping me")
            assert ws.recv(timeout=TIMEOUT) == "ping me"
        with Program(EXAMPLES / "asyncio_client.py", url, "one", "two") as client:
            assert client.line() == "< 'one'"
            assert client.line() == "< 'two'"
            assert client.line().startswith("latency ")
            assert client.line() == "closed: 1000"
            assert client.proc.wait(TIMEOUT) == 0
        ws = libws.connect(url)
        got = recv_in_thread(ws)
        assert server.stop() == 0
        err = got()
        assert isinstance(err, libws.ConnectionClosedOK) and err.code == 1001, err


def test_examples_pass_mypy_strict():
    """The examples type-check under mypy --strict against the package's
    annotations (errors inside libws itself are not the examples': they
    are silenced, as for any installed typed package)."""
    pytest.importorskip("mypy")
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir", "/dev/null", str(EXAMPLES)],
        capture_output=True, text=True, timeout=300, env=child_env(), cwd=str(PACKAGE_DIR))
    assert r.returncode == 0, r.stdout + r.stderr
