//! The event loop (Rust API): echo through the loop, loop-to-loop dials,
//! sends from other threads, many connections, backpressure, keepalive,
//! peers that vanish mid-frame, shutdown, and a foreign poll(2) driving it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopConfig, LoopRemote};
use ws::api::{Dialer, MessageType, Upgrader};
use ws::ErrorKind;

/// Echoes every message; reports closes and errors on a channel.
struct Echo {
    events: Mutex<Sender<String>>,
}

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        conn.send(kind, data).expect("echo send");
    }
    fn on_error(&self, _conn: &ConnHandle, err: &ws::Error) {
        let _ = self.events.lock().unwrap().send(format!("error {:?}", err.kind()));
    }
    fn on_close(&self, _conn: &ConnHandle, code: u16, _reason: &[u8]) {
        let _ = self.events.lock().unwrap().send(format!("close {code}"));
    }
}

/// A loop running on its own thread, stopped and joined on drop.
struct LoopThread {
    remote: LoopRemote,
    thread: Option<thread::JoinHandle<()>>,
}

impl LoopThread {
    fn start(setup: impl FnOnce(&LoopRemote) + Send + 'static) -> LoopThread {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut el = EventLoop::new().unwrap();
            let remote = el.remote();
            setup(&remote);
            tx.send(remote).unwrap();
            el.run().unwrap();
        });
        LoopThread { remote: rx.recv().unwrap(), thread: Some(thread) }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        self.remote.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn echo_server(cfg: LoopConfig) -> (LoopThread, SocketAddr, Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    let lt = LoopThread::start(move |r| {
        r.set_config(cfg).unwrap();
        let h = Arc::new(Echo { events: Mutex::new(tx) });
        atx.send(r.listen("127.0.0.1:0", &Upgrader::default(), h).unwrap()).unwrap();
    });
    (lt, arx.recv().unwrap(), rx)
}

fn dial(addr: SocketAddr) -> ws::api::Conn {
    Dialer::default().dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap().0
}

fn expect_event(rx: &Receiver<String>, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(e) if e == want => return,
            Ok(other) => eprintln!("(skipping event {other:?} while waiting for {want:?})"),
            Err(_) => panic!("no {want:?} within {within:?}"),
        }
    }
}

#[test]
fn echo_every_length_form_through_the_loop() {
    let (_lt, addr, _rx) = echo_server(LoopConfig::default());
    let c = dial(addr);
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
    for len in [0usize, 1, 125, 126, 65535, 65536, 300_000, 4 << 20] {
        for kind in [MessageType::Binary, MessageType::Text] {
            let data: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            c.write_message(kind, &data).unwrap();
            let m = c.read_message().unwrap();
            assert_eq!(m.kind(), kind);
            assert_eq!(m.data(), &data[..], "len {len}");
        }
    }
    // Pipelined: 200 messages out before reading any echo.
    for i in 0..200u32 {
        c.write_message(MessageType::Binary, &i.to_be_bytes()).unwrap();
    }
    for i in 0..200u32 {
        assert_eq!(c.read_message().unwrap().data(), &i.to_be_bytes());
    }
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
}

#[test]
fn protocol_errors_get_their_close_code_and_others_keep_working() {
    let (_lt, addr, rx) = echo_server(LoopConfig::default());
    let good = dial(addr);
    // An unmasked frame from a client: 1002.
    let mut raw = raw_handshake(addr);
    raw.write_all(&[0x82, 0x02, 1, 2]).unwrap();
    let mut buf = [0u8; 64];
    let n = read_some(&mut raw, &mut buf);
    assert_eq!(&buf[..4], &[0x88, 0x02 + (n as u8 - 4), 0x03, 0xEA], "close 1002 expected, got {:?}", &buf[..n]);
    expect_event(&rx, "error Protocol", Duration::from_secs(5));
    expect_event(&rx, "close 1006", Duration::from_secs(5));
    // Invalid UTF-8 text: 1007.
    let mut raw = raw_handshake(addr);
    raw.write_all(&masked(0x81, &[0xC3, 0x28])).unwrap();
    let n = read_some(&mut raw, &mut buf);
    assert!(n >= 4 && buf[0] == 0x88 && buf[2..4] == [0x03, 0xEF], "close 1007 expected, got {:?}", &buf[..n]);
    // The first client still works.
    good.write_message(MessageType::Text, b"still here").unwrap();
    assert_eq!(good.read_message().unwrap().data(), b"still here");
}

#[test]
fn a_peer_that_vanishes_mid_frame_ends_with_1006() {
    let (_lt, addr, rx) = echo_server(LoopConfig::default());
    let mut raw = raw_handshake(addr);
    let frame = masked(0x82, &[7u8; 1000]);
    raw.write_all(&frame[..500]).unwrap();
    drop(raw);
    expect_event(&rx, "error Closed", Duration::from_secs(5));
    expect_event(&rx, "close 1006", Duration::from_secs(5));
    let c = dial(addr);
    c.write_message(MessageType::Binary, b"x").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"x");
}

#[test]
fn keepalive_closes_a_peer_that_never_answers() {
    let cfg = LoopConfig {
        ping_interval: Some(Duration::from_millis(100)),
        pong_timeout: Duration::from_millis(200),
        ..LoopConfig::default()
    };
    let (_lt, addr, rx) = echo_server(cfg);
    // A client that answers pings (its reads run the default ping handler).
    let alive = Arc::new(dial(addr));
    let pings = Arc::new(AtomicUsize::new(0));
    let (a, p) = (alive.clone(), pings.clone());
    alive
        .set_ping_handler(Some(Arc::new(move |c: &ws::api::Conn, data: &[u8]| {
            p.fetch_add(1, Ordering::SeqCst);
            c.default_ping_handler(data)
        })))
        .unwrap();
    let reader = thread::spawn(move || {
        a.set_read_deadline(Some(Instant::now() + Duration::from_millis(1500)));
        let r = a.read_message().err().map(|e| e.kind());
        a.set_read_deadline(None);
        r
    });
    // A client that never reads: no pongs.
    let _silent = raw_handshake(addr);
    let t0 = Instant::now();
    expect_event(&rx, "error Timeout", Duration::from_secs(5));
    expect_event(&rx, "close 1006", Duration::from_secs(5));
    assert!(t0.elapsed() >= Duration::from_millis(250), "closed too early: {:?}", t0.elapsed());
    // The answering client got pings, answered them, and is still open.
    assert_eq!(reader.join().unwrap(), Some(ErrorKind::Timeout));
    assert!(pings.load(Ordering::SeqCst) >= 5, "pings: {}", pings.load(Ordering::SeqCst));
    alive.write_message(MessageType::Text, b"ok").unwrap();
    assert_eq!(alive.read_message().unwrap().data(), b"ok");
}

/// Sends from another thread into a loop; the loop's own client echoes.
#[test]
fn loop_to_loop_dial_with_sends_from_other_threads() {
    let (_srv, addr, _rx) = echo_server(LoopConfig::default());
    struct Client {
        opened: Mutex<Sender<ConnHandle>>,
        got: Mutex<Sender<Vec<u8>>>,
    }
    impl Handler for Client {
        fn on_open(&self, conn: &ConnHandle) {
            self.opened.lock().unwrap().send(conn.clone()).unwrap();
        }
        fn on_message(&self, _c: &ConnHandle, _k: MessageType, data: &[u8]) {
            self.got.lock().unwrap().send(data.to_vec()).unwrap();
        }
    }
    let (otx, orx) = mpsc::channel();
    let (gtx, grx) = mpsc::channel();
    let h = Arc::new(Client { opened: Mutex::new(otx), got: Mutex::new(gtx) });
    let cl = LoopThread::start(move |r| {
        r.dial(&format!("ws://{addr}/"), &Dialer::default(), &[], h, 7).unwrap();
    });
    let conn = orx.recv_timeout(Duration::from_secs(5)).expect("on_open");
    assert_eq!(conn.user(), 7);
    let senders: Vec<_> = (0..4u8)
        .map(|t| {
            let c = conn.clone();
            thread::spawn(move || {
                for i in 0..250u32 {
                    let mut m = vec![t];
                    m.extend_from_slice(&i.to_be_bytes());
                    c.send(MessageType::Binary, &m).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut next = [0u32; 4];
    for _ in 0..1000 {
        let m = grx.recv_timeout(Duration::from_secs(5)).expect("echo");
        let t = m[0] as usize;
        assert_eq!(u32::from_be_bytes(m[1..5].try_into().unwrap()), next[t], "per-thread order kept");
        next[t] += 1;
    }
    conn.close(1000, b"bye").unwrap();
    drop(cl);
}

#[test]
fn a_thousand_connections_and_a_broadcast() {
    let (lt, addr, _rx) = echo_server(LoopConfig::default());
    let mut conns = Vec::new();
    for _ in 0..1000 {
        conns.push(dial(addr));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while lt.remote.open_connections() < 1000 {
        assert!(Instant::now() < deadline, "only {} open", lt.remote.open_connections());
        thread::sleep(Duration::from_millis(10));
    }
    let pm = ws::api::PreparedMessage::new(MessageType::Text, b"to everyone").unwrap();
    assert_eq!(lt.remote.broadcast(&pm).unwrap(), 1000);
    for (i, c) in conns.iter().enumerate() {
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
        assert_eq!(c.read_message().unwrap().data(), b"to everyone");
        let msg = format!("conn {i}");
        c.write_message(MessageType::Text, msg.as_bytes()).unwrap();
        assert_eq!(c.read_message().unwrap().data(), msg.as_bytes());
    }
}

#[test]
fn backpressure_queue_full_then_drain() {
    struct Pusher {
        conn: Mutex<Option<ConnHandle>>,
        drained: AtomicUsize,
    }
    impl Handler for Pusher {
        fn on_open(&self, conn: &ConnHandle) {
            *self.conn.lock().unwrap() = Some(conn.clone());
        }
        fn on_drain(&self, _c: &ConnHandle) {
            self.drained.fetch_add(1, Ordering::SeqCst);
        }
    }
    let h = Arc::new(Pusher { conn: Mutex::new(None), drained: AtomicUsize::new(0) });
    let h2 = h.clone();
    let (atx, arx) = mpsc::channel();
    let lt = LoopThread::start(move |r| {
        r.set_config(LoopConfig { max_buffered: 1 << 20, ..LoopConfig::default() }).unwrap();
        atx.send(r.listen("127.0.0.1:0", &Upgrader::default(), h2).unwrap()).unwrap();
    });
    let addr = arx.recv().unwrap();
    let client = dial(addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let conn = loop {
        if let Some(c) = h.conn.lock().unwrap().clone() {
            break c;
        }
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(5));
    };
    // The client does not read: the queue fills up to the limit.
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let err = loop {
        match conn.send(MessageType::Binary, &chunk) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 10_000, "the queue never filled");
    };
    assert_eq!(err.kind(), ErrorKind::QueueFull);
    assert!(conn.buffered_amount() > 512 * 1024, "buffered {}", conn.buffered_amount());
    assert_eq!(h.drained.load(Ordering::SeqCst), 0);
    // The client reads everything: the queue drains and on_drain fires.
    client.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
    for _ in 0..sent {
        assert_eq!(client.read_message().unwrap().data().len(), chunk.len());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.drained.load(Ordering::SeqCst) == 0 || conn.buffered_amount() != 0 {
        assert!(Instant::now() < deadline, "no drain (buffered {})", conn.buffered_amount());
        thread::sleep(Duration::from_millis(5));
    }
    conn.send(MessageType::Binary, b"after").unwrap();
    assert_eq!(client.read_message().unwrap().data(), b"after");
    drop(lt);
}

#[test]
fn graceful_shutdown_sends_1001_and_run_returns() {
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let t = thread::spawn(move || {
        let mut el = EventLoop::new().unwrap();
        let r = el.remote();
        let h = Arc::new(Echo { events: Mutex::new(tx) });
        atx.send(r.listen("127.0.0.1:0", &Upgrader::default(), h).unwrap()).unwrap();
        rtx.send(r).unwrap();
        el.run().unwrap();
    });
    let addr = arx.recv().unwrap();
    let remote = rrx.recv().unwrap();
    let clients: Vec<_> = (0..5).map(|_| dial(addr)).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while remote.open_connections() < 5 {
        assert!(Instant::now() < deadline);
        thread::sleep(Duration::from_millis(5));
    }
    remote.shutdown(Duration::from_secs(5)).unwrap();
    for c in &clients {
        let e = c.read_message().err().expect("close");
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(c.close_code(), Some(1001));
    }
    for _ in 0..5 {
        expect_event(&rx, "close 1001", Duration::from_secs(5));
    }
    t.join().unwrap();
    assert!(TcpStream::connect(addr).is_err() || raw_handshake_fails(addr));
}

#[test]
fn a_foreign_poll_drives_the_loop_through_its_descriptor() {
    use std::os::fd::BorrowedFd;
    let mut el = EventLoop::new().unwrap();
    let r = el.remote();
    let (tx, _rx) = mpsc::channel();
    let addr = r.listen("127.0.0.1:0", &Upgrader::default(), Arc::new(Echo { events: Mutex::new(tx) })).unwrap();
    let client = thread::spawn(move || {
        let c = dial(addr);
        c.write_message(MessageType::Text, b"via epoll").unwrap();
        let m = c.read_message().unwrap().data().to_vec();
        c.close_graceful(1000, b"", Duration::from_secs(2)).unwrap();
        m
    });
    let fd = el.raw_fd();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_finished() {
        assert!(Instant::now() < deadline, "client did not finish");
        // SAFETY: the loop's descriptor stays open while `el` lives.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let wait = el.next_timeout().unwrap_or(Duration::from_millis(100)).min(Duration::from_millis(100));
        let mut fds = [rustix::event::PollFd::new(&bfd, rustix::event::PollFlags::IN)];
        let ts = rustix::event::Timespec { tv_sec: 0, tv_nsec: wait.as_nanos() as _ };
        let _ = rustix::event::poll(&mut fds, Some(&ts));
        el.poll(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(client.join().unwrap(), b"via epoll");
}

// ---------------------------------------------------------------------------

fn raw_handshake(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

fn raw_handshake_fails(addr: SocketAddr) -> bool {
    std::panic::catch_unwind(|| raw_handshake(addr)).is_err()
}

fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> usize {
    let n = s.read(buf).unwrap();
    assert!(n > 0, "connection closed without a close frame");
    n
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let key = [1u8, 2, 3, 4];
    let mut f = vec![first];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[test]
fn timers_fire_repeat_and_cancel() {
    let mut el = EventLoop::new().unwrap();
    let r = el.remote();
    let fired = Arc::new(AtomicUsize::new(0));
    let once = Arc::new(AtomicUsize::new(0));
    let (f, o) = (fired.clone(), once.clone());
    let id = r
        .add_timer(
            Duration::from_millis(5),
            Some(Duration::from_millis(5)),
            Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    r.add_timer(
        Duration::from_millis(1),
        None,
        Box::new(move || {
            o.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .unwrap();
    let t0 = Instant::now();
    while fired.load(Ordering::SeqCst) < 5 {
        assert!(t0.elapsed() < Duration::from_secs(5), "fired {}", fired.load(Ordering::SeqCst));
        el.poll(Some(Duration::from_millis(100))).unwrap();
    }
    r.cancel_timer(id).unwrap();
    el.poll(Some(Duration::ZERO)).unwrap();
    let n = fired.load(Ordering::SeqCst);
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_millis(50) {
        el.poll(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(fired.load(Ordering::SeqCst), n, "a cancelled timer does not fire");
    assert_eq!(once.load(Ordering::SeqCst), 1, "a one-shot timer fires once");
}

#[test]
fn idle_and_handshake_timeouts() {
    let cfg = LoopConfig { idle_timeout: Some(Duration::from_millis(200)), ..LoopConfig::default() };
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    let _lt = LoopThread::start(move |r| {
        r.set_config(cfg).unwrap();
        let up = Upgrader { handshake_timeout: Some(Duration::from_millis(300)), ..Upgrader::default() };
        atx.send(r.listen("127.0.0.1:0", &up, Arc::new(Echo { events: Mutex::new(tx) })).unwrap()).unwrap();
    });
    let addr = arx.recv().unwrap();
    // Half a request, then silence: 408 at the handshake timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stalled.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Meanwhile a full client is served.
    let c = dial(addr);
    c.write_message(MessageType::Text, b"served").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"served");
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // A client that goes idle: close 1001 after 200 ms.
    let c = dial(addr);
    let t0 = Instant::now();
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(5)));
    let e = c.read_message().err().expect("idle close");
    assert_eq!(e.kind(), ErrorKind::Closed);
    assert_eq!(c.close_code(), Some(1001));
    assert!(t0.elapsed() >= Duration::from_millis(150), "{:?}", t0.elapsed());
    expect_event(&rx, "close 1001", Duration::from_secs(5));
}

#[test]
fn refused_dials_report_the_response() {
    struct Refuse;
    impl Handler for Refuse {
        fn on_handshake(&self, req: &ws::api::Request) -> Result<usize, u16> {
            match req.header("Authorization") {
                Some(b"ok") => Ok(5),
                _ => Err(401),
            }
        }
    }
    struct Dials {
        out: Mutex<Sender<String>>,
    }
    impl Handler for Dials {
        fn on_open(&self, conn: &ConnHandle) {
            self.out.lock().unwrap().send(format!("open {}", conn.user())).unwrap();
        }
        fn on_dial_error(&self, user: usize, err: &ws::Error, resp: Option<&ws::api::Response>) {
            let status = resp.map_or(0, |r| r.status());
            self.out.lock().unwrap().send(format!("error {user} {:?} {status}", err.kind())).unwrap();
        }
    }
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    let lt = LoopThread::start(move |r| {
        atx.send(r.listen("127.0.0.1:0", &Upgrader::default(), Arc::new(Refuse)).unwrap()).unwrap();
    });
    let addr = arx.recv().unwrap();
    let h = Arc::new(Dials { out: Mutex::new(tx) });
    let url = format!("ws://{addr}/");
    lt.remote.dial(&url, &Dialer::default(), &[], h.clone(), 1).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "error 1 BadHandshake 401");
    let auth = [("Authorization".to_string(), "ok".to_string())];
    lt.remote.dial(&url, &Dialer::default(), &auth, h.clone(), 2).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "open 2");
    // Nothing listens on port 1: a connect error, reported once.
    lt.remote.dial("ws://127.0.0.1:1/", &Dialer::default(), &[], h.clone(), 3).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "error 3 Connect 0");
    // A bad URL is refused at once, not through the loop.
    let e = lt.remote.dial("http://x/", &Dialer::default(), &[], h, 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadUrl);
}

#[test]
fn compression_on_loop_connections_with_a_bomb_stopped_at_the_limit() {
    use ws::proto::deflate::DeflateOptions;
    let (tx, rx) = mpsc::channel();
    let (atx, arx) = mpsc::channel();
    let _lt = LoopThread::start(move |r| {
        let mut up = Upgrader::default();
        up.conn.compression = Some(DeflateOptions::default());
        up.conn.read_limit = 1 << 20;
        atx.send(r.listen("127.0.0.1:0", &up, Arc::new(Echo { events: Mutex::new(tx) })).unwrap()).unwrap();
    });
    let addr = arx.recv().unwrap();
    let mut d = Dialer::default();
    d.conn.compression = Some(DeflateOptions::default());
    let (c, _) = d.dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap();
    assert!(c.compression_negotiated());
    // Context takeover across many messages, both directions.
    for i in 0..200 {
        let text = format!("{{\"seq\":{i},\"payload\":\"{}\"}}", "abc".repeat(i % 50));
        c.write_message(MessageType::Text, text.as_bytes()).unwrap();
        assert_eq!(c.read_message().unwrap().data(), text.as_bytes());
    }
    let big: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    c.write_message(MessageType::Binary, &big).unwrap();
    assert!(c.read_message().unwrap().data() == &big[..]);
    // 100 MiB of zeros compress to ~100 KiB: the server stops at 1 MiB.
    let zeros = vec![0u8; 100 << 20];
    let _ = c.write_message(MessageType::Binary, &zeros);
    let e = c.read_message().err().expect("the server closes");
    assert_eq!(e.kind(), ErrorKind::Closed);
    assert_eq!(c.close_code(), Some(1009));
    expect_event(&rx, "error ReadLimit", Duration::from_secs(5));
}

/// A send whose direct write the socket took only in part must be
/// followed by `on_drain` once the rest is out, also when the loop then
/// writes that rest without the socket pushing back again (a reader
/// paused at a high-water mark and resumed in `on_drain` would otherwise
/// stay paused forever).
#[test]
fn a_partial_direct_write_is_followed_by_on_drain() {
    struct Keep {
        conn: Mutex<Option<ConnHandle>>,
        drained: AtomicUsize,
    }
    impl Handler for Keep {
        fn on_open(&self, conn: &ConnHandle) {
            *self.conn.lock().unwrap() = Some(conn.clone());
        }
        fn on_drain(&self, _c: &ConnHandle) {
            self.drained.fetch_add(1, Ordering::SeqCst);
        }
    }
    let h = Arc::new(Keep { conn: Mutex::new(None), drained: AtomicUsize::new(0) });
    let mut el = EventLoop::new().unwrap();
    let addr = el.remote().listen("127.0.0.1:0", &Upgrader::default(), h.clone()).unwrap();
    let t = thread::spawn(move || raw_handshake(addr));
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.conn.lock().unwrap().is_none() {
        assert!(Instant::now() < deadline, "no open");
        el.poll(Some(Duration::from_millis(10))).unwrap();
    }
    let mut client = t.join().unwrap();
    let conn = h.conn.lock().unwrap().clone().unwrap();
    // The loop is not polled while this thread sends, so the send writes
    // straight to the socket and queues what it did not take. Find a size
    // whose remainder is small: then the loop's flush writes it into an
    // emptied socket without being pushed back.
    let mut size = 4 << 20;
    let mut buf = vec![0u8; 8 << 20];
    for attempt in 0..30 {
        h.drained.store(0, Ordering::SeqCst);
        conn.send(MessageType::Binary, &vec![7u8; size]).unwrap();
        let total = size + 10; // 64-bit length header, unmasked
        let rest = conn.buffered_amount();
        let written = total - rest;
        // Take everything the send wrote; nothing else is in flight.
        client.read_exact(&mut buf[..written]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while conn.buffered_amount() != 0 {
            assert!(Instant::now() < deadline, "the rest was not flushed");
            el.poll(Some(Duration::from_millis(10))).unwrap();
        }
        el.poll(Some(Duration::ZERO)).unwrap();
        client.read_exact(&mut buf[..rest]).unwrap();
        if rest > 0 && rest <= 16 * 1024 {
            assert_eq!(h.drained.load(Ordering::SeqCst), 1, "no on_drain after a partial direct write (rest {rest})");
            return;
        }
        // Aim for a remainder of about 4 KiB next time (the socket's
        // buffers grow as they are used: overshoot when all of it went).
        size = if rest == 0 { size + (256 << 10) } else { (written + 4096).saturating_sub(10) };
        eprintln!("attempt {attempt}: wrote {written} of {total}, next size {size}");
    }
    panic!("never got a small remainder");
}

#[test]
fn absurd_durations_are_refused_not_overflowed() {
    let el = EventLoop::new().unwrap();
    let r = el.remote();
    let huge = Duration::from_secs(u64::MAX / 4);
    assert_eq!(r.add_timer(huge, None, Box::new(|| {})).unwrap_err().kind(), ErrorKind::InvalidArgument);
    assert_eq!(r.shutdown(huge).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let cfg = LoopConfig { close_timeout: huge, ..LoopConfig::default() };
    assert_eq!(r.set_config(cfg).unwrap_err().kind(), ErrorKind::InvalidArgument);
    r.set_config(LoopConfig { close_timeout: Duration::from_secs(3600), ..LoopConfig::default() }).unwrap();
}
