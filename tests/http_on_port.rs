//! Plain HTTP on the WebSocket port (an Upgrader's HTTP handler), on the
//! blocking Listener and on the event loop: pages, HEAD, request bodies and
//! their limits, upgrade attempts that keep their error statuses, a client
//! stalled mid-body that delays nobody, and WebSockets on the same port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopRemote};
use ws::api::http::{HttpResponse, Request};
use ws::api::{Dialer, Listener, MessageType, Upgrader};

const PAGE: &str = "<!doctype html><p>chat</p>";

/// Routes like gorilla's chat example: `/` is the page, `/echo` answers
/// with the request body, anything else 404.
fn route(req: &Request, body: &[u8], resp: &mut HttpResponse) {
    match req.target() {
        "/" => {
            resp.add_header("Content-Type", "text/html; charset=utf-8").unwrap();
            resp.set_body(PAGE.as_bytes()).unwrap();
        }
        "/echo" => {
            let mut answer = format!("{} {} bytes:", req.method(), body.len()).into_bytes();
            answer.extend_from_slice(body);
            resp.set_body(&answer).unwrap();
        }
        _ => {
            resp.set_status(404).unwrap();
            resp.set_body(b"not found\n").unwrap();
        }
    }
}

fn upgrader(timeout: Duration) -> Upgrader {
    Upgrader {
        http_handler: Some(Arc::new(route)),
        http_max_body: 1000,
        handshake_timeout: Some(timeout),
        ..Upgrader::default()
    }
}

/// A Listener served by an accepting thread that echoes WebSocket messages.
struct ListenerServer {
    listener: Arc<Listener>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ListenerServer {
    fn start(up: &Upgrader) -> ListenerServer {
        let listener = Arc::new(Listener::bind("127.0.0.1:0", up).unwrap());
        let l = listener.clone();
        let thread = thread::spawn(move || {
            while let Ok(conn) = l.accept(None) {
                thread::spawn(move || {
                    while let Ok(m) = conn.read_message() {
                        let (kind, data) = (m.kind(), m.data().to_vec());
                        drop(m);
                        if conn.write_message(kind, &data).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        ListenerServer { listener, thread: Some(thread) }
    }
    fn addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }
}

impl Drop for ListenerServer {
    fn drop(&mut self) {
        self.listener.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Echo;
impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        conn.send(kind, data).unwrap();
    }
}

/// An event loop on its own thread, stopped and joined on drop.
struct LoopServer {
    remote: LoopRemote,
    addr: SocketAddr,
    thread: Option<thread::JoinHandle<()>>,
}

impl LoopServer {
    fn start(up: &Upgrader) -> LoopServer {
        let up = up.clone();
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut el = EventLoop::new().unwrap();
            let remote = el.remote();
            let addr = remote.listen("127.0.0.1:0", &up, Arc::new(Echo)).unwrap();
            tx.send((remote, addr)).unwrap();
            el.run().unwrap();
        });
        let (remote, addr) = rx.recv().unwrap();
        LoopServer { remote, addr, thread: Some(thread) }
    }
}

impl Drop for LoopServer {
    fn drop(&mut self) {
        self.remote.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `request` and reads the whole answer (the server closes).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("the server answers and closes");
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// The checks both servers must pass.
fn serves_http_and_websocket(addr: SocketAddr) {
    let page = exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains(&format!("\r\nContent-Length: {}\r\n", PAGE.len())), "{page}");
    assert!(page.contains("\r\nConnection: close\r\n"), "{page}");
    assert!(page.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"), "{page}");
    assert_eq!(body_of(&page), PAGE);

    // HTTP/1.0 is fine for plain requests.
    assert_eq!(body_of(&exchange(addr, b"GET / HTTP/1.0\r\n\r\n")), PAGE);

    let head = exchange(addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_of(&head), 200);
    assert!(head.contains(&format!("Content-Length: {}", PAGE.len())), "{head}");
    assert_eq!(body_of(&head), "", "HEAD has no body");

    let missing = exchange(addr, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((status_of(&missing), body_of(&missing)), (404, "not found\n"));

    let post = exchange(addr, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(body_of(&post), "POST 5 bytes:hello");
    // A body at the limit is read whole; one over it is refused unread.
    let big = format!("POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{}", "b".repeat(1000));
    assert!(body_of(&exchange(addr, big.as_bytes())).starts_with("POST 1000 bytes:bbb"));
    assert_eq!(status_of(&exchange(addr, b"POST /echo HTTP/1.1\r\nContent-Length: 1001\r\n\r\n")), 413);
    assert_eq!(status_of(&exchange(addr, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")), 411);
    assert_eq!(status_of(&exchange(addr, b"POST /echo HTTP/1.1\r\nContent-Length: x\r\n\r\n")), 400);
    // Malformed HTTP is still 400, an oversized head 431.
    assert_eq!(status_of(&exchange(addr, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")), 400);
    let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(17000));
    assert_eq!(status_of(&exchange(addr, huge.as_bytes())), 431);

    // Upgrade attempts keep the handshake's statuses.
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let no_connection =
        format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(status_of(&exchange(addr, no_connection.as_bytes())), 400);
    let old_version =
        format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 8\r\n\r\n");
    let answer = exchange(addr, old_version.as_bytes());
    assert_eq!(status_of(&answer), 426);
    assert!(answer.contains("Sec-WebSocket-Version: 13"), "{answer}");
    let post_ws = format!("POST / HTTP/1.1\r\nHost: x\r\n{key}\r\n");
    assert_eq!(status_of(&exchange(addr, post_ws.as_bytes())), 405);
    let bad_origin = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nOrigin: http://evil\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"
    );
    assert_eq!(status_of(&exchange(addr, bad_origin.as_bytes())), 403);

    // And a WebSocket on the same port.
    let (conn, resp) = Dialer::default().dial(&format!("ws://{addr}/ws"), &[]).map_err(|e| e.error).unwrap();
    assert_eq!(resp.status(), 101);
    conn.write_message(MessageType::Text, b"ping over ws").unwrap();
    let m = conn.read_message().unwrap();
    assert_eq!(m.data(), b"ping over ws");
}

/// A client that sends half its body and stalls delays nobody and gets
/// 408 at the handshake timeout; a body sent in pieces arrives whole.
fn stalled_body_delays_nobody(addr: SocketAddr, timeout: Duration) {
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf").unwrap();
    let mut pieces = TcpStream::connect(addr).unwrap();
    pieces.write_all(b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234").unwrap();
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    assert_eq!(body_of(&exchange(addr, b"GET / HTTP/1.1\r\n\r\n")), PAGE);
    assert!(t0.elapsed() < timeout / 2, "a stalled client delayed another: {:?}", t0.elapsed());
    pieces.write_all(b"56789").unwrap();
    pieces.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = String::new();
    pieces.read_to_string(&mut out).unwrap();
    assert_eq!(body_of(&out), "POST 10 bytes:0123456789");

    stalled.set_read_timeout(Some(timeout * 4)).unwrap();
    let mut out = String::new();
    stalled.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), 408);
}

#[test]
fn listener_serves_http_and_websocket() {
    let server = ListenerServer::start(&upgrader(Duration::from_secs(10)));
    serves_http_and_websocket(server.addr());
}

#[test]
fn loop_serves_http_and_websocket() {
    let server = LoopServer::start(&upgrader(Duration::from_secs(10)));
    serves_http_and_websocket(server.addr);
}

#[test]
fn listener_stalled_body() {
    let timeout = Duration::from_millis(600);
    let server = ListenerServer::start(&upgrader(timeout));
    stalled_body_delays_nobody(server.addr(), timeout);
}

#[test]
fn loop_stalled_body() {
    let timeout = Duration::from_millis(600);
    let server = LoopServer::start(&upgrader(timeout));
    stalled_body_delays_nobody(server.addr, timeout);
}

/// Without a handler, plain requests are refused as before, and the
/// loop's handshake callback sees only upgrade requests.
#[test]
fn without_handler_plain_requests_are_refused() {
    let server = ListenerServer::start(&Upgrader::default());
    assert_eq!(status_of(&exchange(server.addr(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")), 400);
    assert_eq!(status_of(&exchange(server.addr(), b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")), 405);
}

struct CountHandshakes(Arc<AtomicUsize>);
impl Handler for CountHandshakes {
    fn on_handshake(&self, _req: &Request) -> Result<usize, u16> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(0)
    }
}

#[test]
fn loop_handshake_callback_sees_only_upgrades() {
    let seen = Arc::new(AtomicUsize::new(0));
    let mut el = EventLoop::new().unwrap();
    let remote = el.remote();
    let addr = remote
        .listen("127.0.0.1:0", &upgrader(Duration::from_secs(10)), Arc::new(CountHandshakes(seen.clone())))
        .unwrap();
    let t = thread::spawn(move || el.run().unwrap());
    assert_eq!(body_of(&exchange(addr, b"GET / HTTP/1.1\r\n\r\n")), PAGE);
    assert_eq!(seen.load(Ordering::SeqCst), 0);
    let (conn, _) = Dialer::default().dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    drop(conn);
    remote.stop();
    t.join().unwrap();
}

#[test]
fn response_rules() {
    let mut r = HttpResponse::default();
    assert_eq!(r.status, 200);
    assert!(r.set_status(101).is_err() && r.set_status(600).is_err());
    r.set_status(503).unwrap();
    for reserved in ["Content-Length", "connection", "Transfer-Encoding"] {
        assert!(r.add_header(reserved, "1").is_err(), "{reserved}");
    }
    assert!(r.add_header("Bad Name", "x").is_err());
    assert!(r.add_header("X-Ok", "a\r\nInjected: 1").is_err());
    assert!(r.set_body(&vec![0; (64 << 20) + 1]).is_err());
    assert!(r.headers.is_empty());
}
