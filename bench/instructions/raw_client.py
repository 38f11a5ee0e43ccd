"""Raw WebSocket client for bench/instructions/count: N binary messages
of SIZE bytes, DEPTH in flight, over one connection to 127.0.0.1:PORT;
checks every echo's length, then sends a close (1000) and disconnects.
Its own cost does not matter: only the server runs under callgrind.
With TLS=1 in the environment it speaks wss (TLS 1.3 through Python's
ssl, the server's certificate not checked: a bench client).

usage: raw_client.py PORT N SIZE DEPTH"""
import base64, os, socket, ssl, struct, sys

def recv_exact(s, n, buf):
    while len(buf) < n:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed")
        buf += chunk
    return buf

def main():
    port, n, size, depth = (int(x) for x in sys.argv[1:5])
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
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = b"x" * size
    if size < 126:
        hdr = struct.pack("!BB", 0x82, 0x80 | size)
    elif size < 65536:
        hdr = struct.pack("!BBH", 0x82, 0x80 | 126, size)
    else:
        hdr = struct.pack("!BBQ", 0x82, 0x80 | 127, size)
    frame = hdr + b"\0\0\0\0" + payload  # zero mask key: payload as is
    sent = got = 0
    buf = bytearray(buf)
    while got < n:
        burst = min(depth - (sent - got), n - sent)
        if burst > 0:
            s.sendall(frame * burst)
            sent += burst
        # one echo
        buf = recv_exact(s, 2, buf)
        l = buf[1] & 0x7F
        off = 2
        if l == 126:
            buf = recv_exact(s, 4, buf); l = struct.unpack("!H", bytes(buf[2:4]))[0]; off = 4
        elif l == 127:
            buf = recv_exact(s, 10, buf); l = struct.unpack("!Q", bytes(buf[2:10]))[0]; off = 10
        assert l == size, (l, size)
        buf = recv_exact(s, off + l, buf)
        del buf[:off + l]
        got += 1
    s.sendall(struct.pack("!BB", 0x88, 0x82) + b"\0\0\0\0" + struct.pack("!H", 1000))
    s.close()

main()
