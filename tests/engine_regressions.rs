//! Regression tests for the defects the connection engine fixed (issue 10:
//! 1, 5, 8, 9 and the bound on compressed input; issue 8: one rule for who
//! closes TCP), written against the wire and the public API so they hold
//! whatever the internals become. Each runs against both servers (the
//! blocking `Listener` + `Conn`, and the event loop) where both apply.

#[path = "support/wire.rs"]
mod wire;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopRemote};
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::proto::deflate::DeflateOptions;
use ws::ErrorKind;

#[derive(Clone, Copy, Debug)]
enum Server {
    Blocking,
    Loop,
}

const BOTH: [Server; 2] = [Server::Blocking, Server::Loop];

fn upgrader(compress: bool, read_limit: u64) -> Upgrader {
    let mut up = Upgrader::default();
    up.conn.compression = compress.then(DeflateOptions::default);
    up.conn.read_limit = read_limit;
    up
}

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        let _ = conn.send(kind, data);
    }
}

/// An echo server of either kind, stopped when dropped.
struct EchoServer {
    addr: SocketAddr,
    remote: Option<LoopRemote>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EchoServer {
    fn start(kind: Server, up: Upgrader) -> EchoServer {
        match kind {
            Server::Blocking => {
                let l = Listener::bind("127.0.0.1:0", &up).unwrap();
                let addr = l.local_addr();
                let thread = thread::spawn(move || loop {
                    let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(120))) else { return };
                    thread::spawn(move || loop {
                        let (kind, data) = match c.read_message() {
                            Ok(m) => (m.kind(), m.data().to_vec()),
                            Err(_) => return,
                        };
                        if c.write_message(kind, &data).is_err() {
                            return;
                        }
                    });
                });
                EchoServer { addr, remote: None, thread: Some(thread) }
            }
            Server::Loop => {
                let (tx, rx) = mpsc::channel();
                let thread = thread::spawn(move || {
                    let mut el = EventLoop::new().unwrap();
                    let remote = el.remote();
                    let addr = remote.listen("127.0.0.1:0", &up, Arc::new(Echo)).unwrap();
                    tx.send((remote, addr)).unwrap();
                    el.run().unwrap();
                });
                let (remote, addr) = rx.recv().unwrap();
                EchoServer { addr, remote: Some(remote), thread: Some(thread) }
            }
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        if let Some(r) = &self.remote {
            r.stop();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        // The blocking accept thread ends at its accept deadline (detached).
    }
}

fn compressing_client(addr: SocketAddr) -> ws::api::Conn {
    let mut d = Dialer::default();
    d.conn.compression = Some(DeflateOptions::default());
    let (c, _) = d.dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap();
    assert!(c.compression_negotiated());
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
    c
}

/// Issue 10, defect 1: with context takeover, an empty message after a
/// compressed one (streamed with no write, or whole) produced a
/// zero-length compressed payload that left the peer's inflater inside a
/// block, so the next message failed with 1007.
#[test]
fn an_empty_message_after_a_compressed_one_keeps_the_stream_valid() {
    for kind in BOTH {
        let srv = EchoServer::start(kind, upgrader(true, 0));
        let c = compressing_client(srv.addr);
        c.write_message(MessageType::Text, b"Hello").unwrap();
        c.next_writer(MessageType::Binary).unwrap();
        c.writer_close().unwrap();
        c.write_message(MessageType::Text, b"").unwrap();
        c.write_message(MessageType::Text, b"world").unwrap();
        for want in [&b"Hello"[..], b"", b"", b"world"] {
            let m = c.read_message().unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(m.data(), want, "{kind:?}");
        }
    }
}

/// The bound on compressed input (issue 10, defect 5; it existed only in
/// the blocking reader): a final deflate block followed by endless bytes
/// that inflate to nothing must end with 1009, on both servers.
#[test]
fn compressed_input_past_the_bound_is_close_1009() {
    for kind in BOTH {
        let srv = EchoServer::start(kind, upgrader(true, 10_000));
        let mut s = wire::handshake(srv.addr, true);
        let mut fin = Vec::with_capacity(64);
        flate2::Compress::new(flate2::Compression::default(), false)
            .compress_vec(b"x", &mut fin, flate2::FlushCompress::Finish)
            .unwrap();
        s.write_all(&wire::frame(0x42, &fin)).unwrap(); // RSV1 + binary, not final
        let junk = vec![0u8; 4096];
        let writer = s.try_clone().unwrap();
        let t = thread::spawn(move || {
            let mut w = writer;
            for _ in 0..100 {
                if w.write_all(&wire::frame(0x00, &junk)).is_err() {
                    return;
                }
            }
        });
        assert_eq!(wire::close_code(&mut s), Some(1009), "{kind:?}");
        let _ = t.join();
    }
}

/// Issue 10, defect 5: the loop inflated a message to its end inside one
/// iteration, so one connection's large compressed message stalled every
/// other connection. Now a budget per turn lets a second client's echo
/// through while the first message is still inflating.
#[test]
fn inflating_a_large_message_does_not_stall_other_connections() {
    let srv = EchoServer::start(Server::Loop, upgrader(true, 0));
    let mut a = wire::handshake(srv.addr, true);
    let big = vec![0u8; 16 << 20];
    let z = wire::deflate(&big);
    let b = compressing_client(srv.addr);
    a.write_all(&wire::frame(0xC2, &z)).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let a_thread = thread::spawn(move || {
        let mut byte = [0u8; 1];
        a.read_exact(&mut byte).unwrap();
        Instant::now()
    });
    b.write_message(MessageType::Text, b"quick").unwrap();
    assert_eq!(b.read_message().unwrap().data(), b"quick");
    let b_done = Instant::now();
    let a_first = a_thread.join().unwrap();
    assert!(b_done < a_first, "the small echo waited for the whole large message to inflate");
}

/// Issue 10, defect 8: a peer that floods pings and never reads got every
/// pong queued (up to the loop's 64 MiB send limit). Only the latest ping
/// is owed a pong while the output is backed up (RFC 6455 5.5.3), and the
/// connection keeps working.
#[test]
fn a_ping_flood_from_a_peer_that_does_not_read_owes_one_pong() {
    let srv = EchoServer::start(Server::Loop, upgrader(false, 0));
    let mut s = wire::handshake(srv.addr, false);
    let pings = 200_000usize;
    let mut burst = Vec::new();
    for i in 0..pings {
        let mut p = [b'.'; 125];
        p[..8].copy_from_slice(&(i as u64).to_be_bytes());
        burst.extend(wire::frame(0x89, &p));
    }
    s.write_all(&burst).unwrap();
    s.write_all(&wire::frame(0x81, b"after the flood")).unwrap();
    let mut pongs = 0;
    let mut echoed = false;
    // The echo and the latest ping's pong may come in either order.
    while !echoed || pongs == 0 {
        let (b0, p) = wire::read_frame(&mut s).expect("the connection stays open");
        match b0 & 0x0F {
            0xA => {
                pongs += 1;
                if u64::from_be_bytes(p[..8].try_into().unwrap()) == pings as u64 - 1 {
                    break;
                }
            }
            0x1 => {
                assert_eq!(p, b"after the flood");
                echoed = true;
            }
            op => panic!("unexpected opcode {op}"),
        }
    }
    if !echoed {
        let (b0, p) = wire::read_frame(&mut s).expect("the echo follows");
        assert_eq!((b0 & 0x0F, &p[..]), (0x1, &b"after the flood"[..]));
    }
    assert!(pongs < pings / 2, "{pongs} pongs for {pings} pings");
}

/// Issue 10, defect 9: a read limit near `u64::MAX` overflowed the bound
/// on compressed input (a panic in debug builds).
#[test]
fn a_read_limit_near_u64_max_does_not_overflow() {
    for kind in BOTH {
        let srv = EchoServer::start(kind, upgrader(true, u64::MAX - 1));
        let c = compressing_client(srv.addr);
        let msg = b"near the top of u64 ".repeat(100);
        c.write_message(MessageType::Text, &msg).unwrap();
        assert_eq!(c.read_message().unwrap().data(), &msg[..], "{kind:?}");
    }
}

/// Issue 8: after the close handshake the server closes TCP first and a
/// client waits for it (RFC 6455 7.1.1, decided the stricter way for both
/// drivers; the blocking client used to close at once).
#[test]
fn a_client_lets_the_server_close_tcp_first() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let req = String::from_utf8_lossy(&head).into_owned();
        let key = req.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap().trim().to_string();
        let accept = ws::proto::handshake::accept_key(key.as_bytes());
        write!(s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").unwrap();
        s.write_all(&[0x88, 0x02, 0x03, 0xE8]).unwrap(); // close 1000, unmasked
                                                         // The client's echo: a masked close frame (2 + 4 + 2 bytes).
        let mut echo = [0u8; 8];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(echo[0], 0x88);
        // The client must still hold TCP open: no EOF within 300 ms.
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut more = [0u8; 16];
        let still_open = match s.read(&mut more) {
            Ok(0) => false,
            Ok(_) => true,
            Err(e) => matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        drop(s); // the server closes first
        still_open
    });
    let (c, _) = Dialer::default().dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap();
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
    let started = Instant::now();
    let err = c.read_message().err().expect("the close ends the read");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(server.join().unwrap(), "the client closed TCP before the server did");
    assert!(started.elapsed() < Duration::from_secs(5));
}
