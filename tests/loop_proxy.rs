//! Loop dials through real proxies, as tests/proxy.rs does for the blocking
//! dial: tinyproxy (HTTP CONNECT, Basic auth, 403/407 refusals with their
//! response), stunnel4 in front of tinyproxy (an HTTPS proxy: TLS to the
//! proxy, then TLS to a wss:// target inside it), microsocks (SOCKS5 and
//! SOCKS5h, username/password, refusals), with ws:// and wss:// targets;
//! plus proxies that stall (the dial's deadline bounds the tunnel) and one
//! whose refusal body never ends. One loop thread serves every dial.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/proxies.rs"]
    pub mod proxies;
    #[path = "../support/python.rs"]
    pub mod python;
}

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::proxies::{self, Proxy};
use ws::api::event_loop::{ConnHandle, Handler};
use ws::api::http::Response;
use ws::api::{Conn, Dialer, Listener, MessageType, Upgrader};
use ws::transport::proxy::{ProxyChoice, ProxyUrl};
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};
use ws::ErrorKind;

#[path = "support/loop_thread.rs"]
mod loop_thread;
use loop_thread::LoopThread;

/// A failed loop dial: kind, message, and the response's status and body.
#[derive(Debug)]
struct Failure {
    kind: ErrorKind,
    message: String,
    response: Option<(u16, Vec<u8>)>,
}

/// Sends 100 KB on open, reports whether the echo matched, closes.
struct Probe {
    done: Mutex<Sender<Result<(), Failure>>>,
    data: Vec<u8>,
}

impl Handler for Probe {
    fn on_open(&self, conn: &ConnHandle) {
        conn.send(MessageType::Binary, &self.data).unwrap();
    }
    fn on_message(&self, conn: &ConnHandle, _kind: MessageType, data: &[u8]) {
        let r = if data == &self.data[..] {
            Ok(())
        } else {
            Err(Failure { kind: ErrorKind::Internal, message: "the echo differs".into(), response: None })
        };
        let _ = self.done.lock().unwrap().send(r);
        let _ = conn.close(1000, b"");
    }
    fn on_dial_error(&self, _user: usize, err: &ws::Error, response: Option<&Response>) {
        let f = Failure {
            kind: err.kind(),
            message: err.message().to_string(),
            response: response.map(|r| (r.status(), r.body.clone())),
        };
        let _ = self.done.lock().unwrap().send(Err(f));
    }
}

/// Starts a loop dial; its outcome arrives on the receiver.
fn start_dial(lt: &LoopThread, d: &Dialer, url: &str) -> mpsc::Receiver<Result<(), Failure>> {
    let (tx, rx) = mpsc::channel();
    let data: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    let probe = Arc::new(Probe { done: Mutex::new(tx.clone()), data });
    if let Err(e) = lt.remote.dial(url, d, &[], probe, 0) {
        let _ = tx.send(Err(Failure { kind: e.kind(), message: e.message().to_string(), response: None }));
    }
    rx
}

fn loop_dial(lt: &LoopThread, d: &Dialer, url: &str) -> Result<(), Failure> {
    start_dial(lt, d, url).recv_timeout(Duration::from_secs(20)).expect("the loop dial ends within 20 s")
}

fn echo(c: &Conn) {
    while let Ok(m) = c.read_message() {
        let (k, d) = (m.kind(), m.data().to_vec());
        drop(m);
        if c.write_message(k, &d).is_err() {
            break;
        }
    }
}

/// An echo server (TLS when `tls`) serving one connection; returns its port.
fn echo_server(tls: bool) -> (u16, thread::JoinHandle<()>) {
    let mut up = Upgrader::default();
    if tls {
        let l = Pki::get().leaf("server-ec");
        up.tls = Some(TlsServerConfig::from_files(&l.cert, &l.key).unwrap());
    }
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let port = l.local_addr().port();
    let h = thread::spawn(move || {
        if let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(15))) {
            echo(&c);
        }
    });
    (port, h)
}

fn dialer(proxy: &str, timeout: Duration) -> Dialer {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    Dialer {
        tls,
        proxy: ProxyChoice::Fixed(ProxyUrl::parse(proxy).unwrap()),
        handshake_timeout: Some(timeout),
        ..Dialer::default()
    }
}

/// Both target kinds through `proxy_url`, on the loop.
fn both_targets(lt: &LoopThread, proxy_url: &str) {
    for tls in [false, true] {
        let (port, h) = echo_server(tls);
        let url = format!("{}://localhost:{port}/", if tls { "wss" } else { "ws" });
        loop_dial(lt, &dialer(proxy_url, Duration::from_secs(10)), &url)
            .unwrap_or_else(|e| panic!("loop dial {url} through {proxy_url}: {e:?}"));
        h.join().unwrap();
    }
}

macro_rules! need {
    ($e:expr) => {
        match $e {
            Some(p) => p,
            None => return, // find_or_install printed why
        }
    };
}

#[test]
fn loop_http_connect_through_tinyproxy_with_basic_auth() {
    let p: Proxy = need!(proxies::tinyproxy(Some(("user", "s3cret")), &[]));
    let lt = LoopThread::start();
    both_targets(&lt, &format!("http://user:s3cret@127.0.0.1:{}", p.port));
}

#[test]
fn loop_https_proxy_stunnel_in_front_of_tinyproxy() {
    let inner = need!(proxies::tinyproxy(None, &[]));
    let leaf = Pki::get().leaf("server-rsa");
    let p = need!(proxies::stunnel_in_front(inner, &leaf.cert, &leaf.key));
    let lt = LoopThread::start();
    // ws:// target: TLS to the proxy only; wss://: TLS inside TLS.
    both_targets(&lt, &format!("https://localhost:{}", p.port));
}

#[test]
fn loop_socks5_and_socks5h_through_microsocks_with_auth() {
    let p = need!(proxies::microsocks(Some(("sockuser", "sockpw"))));
    let lt = LoopThread::start();
    both_targets(&lt, &format!("socks5://sockuser:sockpw@127.0.0.1:{}", p.port));
    both_targets(&lt, &format!("socks5h://sockuser:sockpw@127.0.0.1:{}", p.port));
}

#[test]
fn loop_http_proxy_refusals_give_status_and_body() {
    let p = need!(proxies::tinyproxy(Some(("user", "s3cret")), &[]));
    let lt = LoopThread::start();
    let (port, _h) = echo_server(false);
    let url = format!("ws://127.0.0.1:{port}/");
    for proxy in [format!("http://127.0.0.1:{}", p.port), format!("http://user:wrong@127.0.0.1:{}", p.port)] {
        let e = loop_dial(&lt, &dialer(&proxy, Duration::from_secs(10)), &url).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
        assert!(!e.message.contains("s3cret") && !e.message.contains(":wrong"), "no password in messages");
        let (status, body) = e.response.expect("the proxy's response is given");
        // No credentials: 407; wrong ones: tinyproxy answers 401.
        assert!(matches!(status, 401 | 407), "{status}");
        assert!(e.message.contains(&format!("HTTP {status}")), "{}", e.message);
        assert!(!body.is_empty(), "the proxy's body is kept");
    }
    // A port the proxy does not allow: 403.
    let p = need!(proxies::tinyproxy(None, &[1]));
    let e =
        loop_dial(&lt, &dialer(&format!("http://127.0.0.1:{}", p.port), Duration::from_secs(10)), &url).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
    assert_eq!(e.response.map(|r| r.0), Some(403), "{}", e.message);
}

#[test]
fn loop_https_proxy_with_an_untrusted_certificate_is_a_proxy_error() {
    let inner = need!(proxies::tinyproxy(None, &[]));
    let leaf = Pki::get().leaf("untrusted");
    let p = need!(proxies::stunnel_in_front(inner, &leaf.cert, &leaf.key));
    let lt = LoopThread::start();
    let e = loop_dial(&lt, &dialer(&format!("https://localhost:{}", p.port), Duration::from_secs(10)), "ws://x:1/")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Proxy, "{}", e.message);
    assert!(e.message.contains("not trusted"), "{}", e.message);
}

#[test]
fn loop_socks5_refusals() {
    let p = need!(proxies::microsocks(Some(("sockuser", "sockpw"))));
    let lt = LoopThread::start();
    let (port, _h) = echo_server(false);
    let url = format!("ws://127.0.0.1:{port}/");
    let t = Duration::from_secs(10);
    let e = loop_dial(&lt, &dialer(&format!("socks5://sockuser:bad@127.0.0.1:{}", p.port), t), &url).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
    assert!(e.message.contains("authentication failed"), "{}", e.message);
    let e = loop_dial(&lt, &dialer(&format!("socks5://127.0.0.1:{}", p.port), t), &url).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
    assert!(e.message.contains("requires authentication"), "{}", e.message);
    // A target nothing listens on: the proxy's reply code.
    let open = need!(proxies::microsocks(None));
    let closed = proxies::free_port();
    let e =
        loop_dial(&lt, &dialer(&format!("socks5h://127.0.0.1:{}", open.port), t), &format!("ws://127.0.0.1:{closed}/"))
            .unwrap_err();
    assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
    assert!(e.message.contains("SOCKS5") && e.message.contains("reply"), "{}", e.message);
}

#[test]
fn loop_unreachable_proxy_is_a_proxy_error() {
    let lt = LoopThread::start();
    let closed = proxies::free_port();
    let e = loop_dial(&lt, &dialer(&format!("http://127.0.0.1:{closed}"), Duration::from_secs(5)), "ws://localhost:1/")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Proxy, "{}", e.message);
    assert!(e.message.contains("cannot connect"), "{}", e.message);
}

/// A "proxy" that accepts, reads the client's first request, waits
/// `delay`, sends `answer`, then keeps the connection open until the
/// client closes it (at most 10 s). Returns what the client sent.
fn fake_proxy(answer: &'static [u8], delay: Duration) -> (u16, thread::JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        let until = Instant::now() + Duration::from_secs(10);
        let complete = |r: &[u8]| r.windows(4).any(|w| w == b"\r\n\r\n") || (r.first() == Some(&5) && r.len() >= 3);
        while !complete(&req) && Instant::now() < until {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(n) => req.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
        thread::sleep(delay);
        s.write_all(answer).unwrap();
        // Hold the connection until the client gives up (bounded).
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.read(&mut b);
        req
    });
    (port, h)
}

/// The dial's deadline bounds the tunnel stage: an HTTP proxy and a SOCKS5
/// proxy that accept and never answer fail the dial as a timeout, on time,
/// while the loop completes another dial meanwhile.
#[test]
fn loop_stalled_proxies_time_out_at_the_dial_deadline() {
    let lt = LoopThread::start();
    for scheme in ["http", "socks5h"] {
        let (port, h) = fake_proxy(b"", Duration::ZERO);
        let start = Instant::now();
        let stalled =
            start_dial(&lt, &dialer(&format!("{scheme}://127.0.0.1:{port}"), Duration::from_millis(1500)), "ws://t:1/");
        let (echo_port, echo_h) = echo_server(false);
        let mut direct = dialer("http://127.0.0.1:1", Duration::from_secs(5));
        direct.proxy = ProxyChoice::Direct;
        loop_dial(&lt, &direct, &format!("ws://127.0.0.1:{echo_port}/")).unwrap();
        assert!(start.elapsed() < Duration::from_millis(1400), "a stalled proxy dial held up another dial");
        echo_h.join().unwrap();
        let e = stalled.recv_timeout(Duration::from_secs(10)).expect("the stalled dial ends").unwrap_err();
        let took = start.elapsed();
        assert_eq!(e.kind, ErrorKind::Timeout, "{scheme}: {}", e.message);
        assert!(e.message.contains("proxy") && e.message.contains("127.0.0.1"), "{}", e.message);
        assert!(took >= Duration::from_millis(1450) && took < Duration::from_secs(4), "{scheme}: {took:?}");
        h.join().unwrap();
    }
}

/// The CONNECT request on the wire carries the dialer's proxy headers, and
/// a refusal whose body is announced but never finishes is reported with
/// the part that came, soon after its head (not at the dial's deadline).
#[test]
fn loop_refusal_with_an_unfinished_body_is_reported_soon() {
    let lt = LoopThread::start();
    // The answer comes after the loop's first sweep, so the loop has to
    // bring its next sweep forward for the refusal's shorter wait.
    let answer = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 100\r\n\r\nlog in";
    let (port, h) = fake_proxy(answer, Duration::from_millis(300));
    let mut d = dialer(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10));
    d.add_proxy_header("X-Trace", "abc").unwrap();
    let start = Instant::now();
    let e = loop_dial(&lt, &d, "wss://target.example:8443/x").unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, ErrorKind::ProxyRefused, "{}", e.message);
    assert!(e.message.contains("407") && e.message.contains("log in"), "{}", e.message);
    assert_eq!(e.response, Some((407, b"log in".to_vec())));
    assert!(took < Duration::from_secs(3), "reported after {took:?}");
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("CONNECT target.example:8443 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("X-Trace: abc\r\n"), "{req}");
}
