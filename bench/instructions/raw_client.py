"""Raw WebSocket client for bench/instructions/count: N binary messages
of SIZE bytes on each of CONNS connections (default 1) to 127.0.0.1:PORT,
sent DEPTH at a time per connection (one write), in rounds: the next
bursts go out once every connection has all its echoes. A sliding
window's batching (how many frames one server read finds, how many
connections one poll finds ready) follows the machine's load; a round's
much less. With TLS=1 in the environment it speaks wss (TLS 1.3 through
Python's ssl, the server's certificate not checked: a bench client).
Checks every echo's length, then sends a close (1000) on each connection
and disconnects. Its own cost does not matter: only the server runs under
callgrind.

With HOLD_PID=PID in the environment, the server process PID is stopped
(SIGSTOP) while a round's bursts are written and continued (SIGCONT)
after: every connection's burst is then waiting when the server's poll
returns, so each round is one poll with CONNS connections ready, however
loaded the machine is. Without it, how many connections one poll finds
ready depends on how fast the client writes against how fast the server
wakes (under callgrind: 1,603-1,876 instructions per message for the same
build at 64 connections x 16 B x 1 in flight).

usage: raw_client.py PORT N SIZE DEPTH [CONNS]"""
import base64, os, selectors, signal, socket, ssl, struct, sys


def handshake(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if os.environ.get("TLS") == "1":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("server closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, bytearray(rest)


def frame_for(size):
    if size < 126:
        hdr = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 65536:
        hdr = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        hdr = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    return hdr + b"\0\0\0\0" + b"x" * size  # zero mask key: payload as is


def take_echoes(buf, size):
    """Removes the whole echoes at the start of buf; returns how many."""
    n = 0
    while len(buf) >= 2:
        l, off = buf[1] & 0x7F, 2
        if l == 126:
            if len(buf) < 4:
                break
            l, off = struct.unpack("!H", bytes(buf[2:4]))[0], 4
        elif l == 127:
            if len(buf) < 10:
                break
            l, off = struct.unpack("!Q", bytes(buf[2:10]))[0], 10
        if len(buf) < off + l:
            break
        assert l == size, (l, size)
        del buf[:off + l]
        n += 1
    return n


def main():
    port, n, size, depth = (int(x) for x in sys.argv[1:5])
    conns = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    frame = frame_for(size)
    sel = selectors.DefaultSelector()
    # per connection: [socket, buffer, sent, got]
    state = []
    for _ in range(conns):
        s, buf = handshake(port)
        state.append([s, buf, 0, 0])
    def refill(c):
        s, _, sent, got = c
        if sent == got and sent < n:
            burst = min(depth, n - sent)
            s.sendall(frame * burst)
            c[2] += burst
    for c in state:
        c[0].setblocking(False)
        sel.register(c[0], selectors.EVENT_READ, c)
        c[3] += take_echoes(c[1], size)
    hold_pid = int(os.environ.get("HOLD_PID") or "0")

    def refill_all():
        if hold_pid:
            os.kill(hold_pid, signal.SIGSTOP)
        try:
            for d in state:
                d[0].setblocking(True)
                refill(d)
                d[0].setblocking(False)
        finally:
            if hold_pid:
                os.kill(hold_pid, signal.SIGCONT)

    refill_all()
    left = conns
    while left:
        events = sel.select(timeout=60)
        if not events:
            raise SystemExit("no echo for 60 s")
        for key, _ in events:
            c = key.data
            try:
                chunk = c[0].recv(1 << 20)
                # TLS: records already decrypted raise no readiness.
                while isinstance(c[0], ssl.SSLSocket) and c[0].pending():
                    chunk += c[0].recv(1 << 20)
            except ssl.SSLWantReadError:
                continue
            if not chunk:
                raise SystemExit("server closed")
            c[1] += chunk
            c[3] += take_echoes(c[1], size)
            if c[3] >= n:
                sel.unregister(c[0])
                left -= 1
                continue
            if c[2] != c[3]:
                continue
            # Rounds: the next bursts go out once every connection has all
            # its echoes, so each round the server finds the same batch.
            if all(d[2] == d[3] for d in state):
                refill_all()
    for c in state:
        c[0].setblocking(True)
        c[0].sendall(struct.pack("!BB", 0x88, 0x82) + b"\0\0\0\0" + struct.pack("!H", 1000))
        c[0].close()


main()
