//! TLS on the current event loop: a loop server with a TLS upgrader serves
//! blocking wss:// clients (large messages both ways, many connections),
//! drops a stalled ClientHello at its handshake timeout while serving
//! others, and a loop dial of wss:// reaches a blocking TLS server and
//! reports certificate failures with their reason.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
}

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use ws::api::event_loop::{ConnHandle, Handler};
use ws::api::http::Response;
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::transport::proxy::ProxyChoice;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};
use ws::ErrorKind;

#[path = "support/loop_thread.rs"]
mod loop_thread;
use loop_thread::LoopThread;

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        let _ = conn.send(kind, data);
    }
}

fn tls_upgrader(leaf: &str) -> Upgrader {
    let l = Pki::get().leaf(leaf);
    Upgrader { tls: Some(TlsServerConfig::from_files(&l.cert, &l.key).unwrap()), ..Upgrader::default() }
}

fn dialer() -> Dialer {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    Dialer { tls, proxy: ProxyChoice::Direct, handshake_timeout: Some(Duration::from_secs(10)), ..Dialer::default() }
}

#[test]
fn loop_server_over_tls() {
    let lt = LoopThread::start();
    let addr: SocketAddr = lt.remote.listen("127.0.0.1:0", &tls_upgrader("server-ec"), Arc::new(Echo)).unwrap();
    let url = format!("wss://localhost:{}/", addr.port());
    let mut clients = Vec::new();
    for i in 0..4 {
        let url = url.clone();
        clients.push(thread::spawn(move || {
            let (c, _) = dialer().dial(&url, &[]).map_err(|e| e.error).unwrap();
            assert!(c.is_tls());
            for len in [1usize, 125, 16 * 1024 + 7, 200_000, 3 << 20] {
                let data: Vec<u8> = (0..len).map(|j| ((j + i) % 251) as u8).collect();
                c.write_message(MessageType::Binary, &data).unwrap();
                assert!(c.read_message().unwrap().data() == &data[..], "client {i}: echo of {len} bytes");
            }
            // Pipelined: 32 messages out before reading the echoes, each
            // its own bytes (the loop writes large ones straight into the
            // TLS layer while its queue still waits for the socket: the
            // order must hold).
            for k in 0..32u8 {
                c.write_message(MessageType::Text, &[b'a' + k % 26; 40_000]).unwrap();
            }
            for k in 0..32u8 {
                assert!(c.read_message().unwrap().data() == &[b'a' + k % 26; 40_000][..], "client {i}: echo {k}");
            }
            c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
        }));
    }
    for c in clients {
        c.join().unwrap();
    }
}

#[test]
fn loop_server_drops_a_stalled_client_hello_and_serves_others() {
    let lt = LoopThread::start();
    let mut up = tls_upgrader("server-ec");
    up.handshake_timeout = Some(Duration::from_millis(1000));
    let addr: SocketAddr = lt.remote.listen("127.0.0.1:0", &up, Arc::new(Echo)).unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let (c, _) = dialer().dial(&format!("wss://localhost:{}/", addr.port()), &[]).map_err(|e| e.error).unwrap();
    c.write_message(MessageType::Text, b"hi").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"hi");
    assert!(t0.elapsed() < Duration::from_millis(900), "served while the stalled client waits");
    for (name, s) in [("garbage", &mut garbage), ("stalled", &mut stalled)] {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 512];
        loop {
            match s.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(4), "{name} dropped by the handshake timeout at the latest");
    }
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
}

struct DialResult(Mutex<Sender<Result<(), (ErrorKind, String)>>>);

impl Handler for DialResult {
    fn on_open(&self, conn: &ConnHandle) {
        conn.send(MessageType::Text, b"from the loop").unwrap();
    }
    fn on_message(&self, conn: &ConnHandle, _kind: MessageType, data: &[u8]) {
        assert_eq!(data, b"from the loop");
        let _ = self.0.lock().unwrap().send(Ok(()));
        let _ = conn.close(1000, b"");
    }
    fn on_dial_error(&self, _user: usize, err: &ws::Error, _response: Option<&Response>) {
        let _ = self.0.lock().unwrap().send(Err((err.kind(), err.message().to_string())));
    }
}

fn loop_dial(lt: &LoopThread, leaf: &str) -> Result<(), (ErrorKind, String)> {
    let l = Listener::bind("127.0.0.1:0", &tls_upgrader(leaf)).unwrap();
    let url = format!("wss://localhost:{}/", l.local_addr().port());
    let server = thread::spawn(move || {
        if let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(5))) {
            while let Ok(m) = c.read_message() {
                let d = m.data().to_vec();
                drop(m);
                let _ = c.write_message(MessageType::Text, &d);
            }
        }
    });
    let (tx, rx) = mpsc::channel();
    lt.remote.dial(&url, &dialer(), &[], Arc::new(DialResult(Mutex::new(tx))), 0).unwrap();
    let r = rx.recv_timeout(Duration::from_secs(10)).expect("the loop dial ends");
    let _ = server.join();
    r
}

#[test]
fn loop_dial_over_tls() {
    let lt = LoopThread::start();
    loop_dial(&lt, "server-ec").unwrap();
    let (kind, msg) = loop_dial(&lt, "untrusted").unwrap_err();
    assert_eq!(kind, ErrorKind::TlsCertificate, "{msg}");
    assert!(msg.contains("not trusted"), "{msg}");
    // An explicit proxy is used on the loop (tests/loop_proxy.rs has real
    // ones): one nothing listens on fails the dial as a proxy error.
    let mut d = dialer();
    d.proxy = ProxyChoice::Fixed(ws::transport::proxy::ProxyUrl::parse("http://127.0.0.1:1").unwrap());
    let (tx, rx) = mpsc::channel();
    lt.remote.dial("wss://localhost:1/", &d, &[], Arc::new(DialResult(Mutex::new(tx))), 0).unwrap();
    let (kind, msg) = rx.recv_timeout(Duration::from_secs(10)).expect("the dial ends").unwrap_err();
    assert_eq!(kind, ErrorKind::Proxy, "{msg}");
    assert!(msg.contains("proxy http://127.0.0.1:1: cannot connect"), "{msg}");
}

/// Keeps the connection the loop opened.
#[derive(Default)]
struct Capture(Mutex<Option<ConnHandle>>);

impl Handler for Capture {
    fn on_open(&self, conn: &ConnHandle) {
        *self.0.lock().unwrap() = Some(conn.clone());
    }
}

/// Bytes a socket's kernel queue holds: unsent data of the sending side
/// (`TIOCOUTQ`) or unread data of the receiving side (`FIONREAD`).
fn kernel_queue(fd: std::os::fd::RawFd, request: libc::Ioctl) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: both requests write one int through the pointer, which
    // points at a live c_int; `fd` is an open socket of this test.
    let rc = unsafe { libc::ioctl(fd, request, &mut n) };
    assert_eq!(rc, 0, "ioctl: {}", std::io::Error::last_os_error());
    n as usize
}

/// `buffered_amount` counts what the TLS layer took from the outbox and
/// the socket has not (its ciphertext queue, 64 KiB and at most a record
/// more): every byte of
/// every frame sent to a peer that stopped reading is in the outbox, the
/// TLS layer or the kernel's queues, so the amount plus the kernel's
/// queues covers them all (records add a few bytes each).
#[test]
fn buffered_amount_counts_the_tls_layers_queue() {
    let lt = LoopThread::start();
    let h = Arc::new(Capture::default());
    let addr: SocketAddr = lt.remote.listen("127.0.0.1:0", &tls_upgrader("server-ec"), h.clone()).unwrap();
    let (client, _) = dialer().dial(&format!("wss://localhost:{}/", addr.port()), &[]).map_err(|e| e.error).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let conn = loop {
        if let Some(c) = h.0.lock().unwrap().clone() {
            break c;
        }
        assert!(Instant::now() < deadline, "no connection");
        thread::sleep(Duration::from_millis(5));
    };
    // 16000-byte messages (a 4-byte header each: one frame per record)
    // until the socket is full and the outbox holds more than the TLS
    // layer can.
    const LEN: usize = 16_000;
    let msg = vec![7u8; LEN];
    let mut sent = 0usize;
    loop {
        for _ in 0..64 {
            conn.send(MessageType::Binary, &msg).unwrap();
        }
        sent += 64;
        assert!(sent < 8192, "the socket never filled ({} bytes buffered)", conn.buffered_amount());
        // The kernel's queues grow while data flows (autotuning): full is
        // when the outbox stays non-empty.
        thread::sleep(Duration::from_millis(100));
        if conn.buffered_amount() > 256 * 1024 {
            break;
        }
    }
    // Settled: the loop wrote all it could.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut amount = conn.buffered_amount();
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = conn.buffered_amount();
        if now == amount {
            break;
        }
        amount = now;
        assert!(Instant::now() < deadline, "the amount never settled");
    }
    let kernel = kernel_queue(conn.raw_fd(), libc::TIOCOUTQ) + kernel_queue(client.raw_fd(), libc::FIONREAD);
    let frames = sent * (LEN + 4);
    let records = frames / (16 * 1024) + sent + 8;
    assert!(
        amount + kernel >= frames,
        "{frames} frame bytes sent, {amount} buffered + {kernel} in the kernel: the TLS layer's queue is not counted"
    );
    // The tickets after the handshake may wait in the client's queue too.
    assert!(
        amount + kernel <= frames + records * 64 + 4096,
        "{frames} sent, {amount} buffered + {kernel} in the kernel"
    );
    // The client reads it all: the amount goes to 0.
    client.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
    for _ in 0..sent {
        assert_eq!(client.read_message().unwrap().data().len(), LEN);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn.buffered_amount() != 0 {
        assert!(Instant::now() < deadline, "buffered {} after the client read everything", conn.buffered_amount());
        thread::sleep(Duration::from_millis(5));
    }
}
