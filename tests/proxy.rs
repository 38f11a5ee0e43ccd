//! Dials through real proxies: tinyproxy (HTTP CONNECT, Basic auth, 403 and
//! 407 refusals), stunnel4 in front of tinyproxy (an HTTPS proxy: TLS to the
//! proxy, then TLS to a wss:// target inside it), microsocks (SOCKS5 and
//! SOCKS5h, username/password, refusals), with ws:// and wss:// targets.

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
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::proxies::{self, Proxy};
use ws::api::{Conn, Dialer, Listener, MessageType, Upgrader};
use ws::transport::proxy::{ProxyChoice, ProxyUrl};
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};
use ws::ErrorKind;

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

fn dialer(proxy: &str) -> Dialer {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    Dialer {
        tls,
        proxy: ProxyChoice::Fixed(ProxyUrl::parse(proxy).unwrap()),
        handshake_timeout: Some(Duration::from_secs(10)),
        ..Dialer::default()
    }
}

fn round_trip(d: &Dialer, url: &str) {
    let (c, resp) = d.dial(url, &[]).unwrap_or_else(|e| panic!("dial {url}: {}", e.error));
    assert_eq!(resp.status(), 101);
    let data: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    c.write_message(MessageType::Binary, &data).unwrap();
    assert!(c.read_message().unwrap().data() == &data[..], "echo through the proxy: {url}");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
}

/// Both target kinds through `proxy_url`.
fn both_targets(proxy_url: &str, host: &str) {
    for tls in [false, true] {
        let (port, h) = echo_server(tls);
        let scheme = if tls { "wss" } else { "ws" };
        round_trip(&dialer(proxy_url), &format!("{scheme}://{host}:{port}/"));
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
fn http_connect_through_tinyproxy_with_basic_auth() {
    let p: Proxy = need!(proxies::tinyproxy(Some(("user", "s3cret")), &[]));
    both_targets(&format!("http://user:s3cret@127.0.0.1:{}", p.port), "localhost");
}

#[test]
fn http_proxy_refusals_name_the_proxy_status_and_body() {
    let p = need!(proxies::tinyproxy(Some(("user", "s3cret")), &[]));
    let (port, _h) = echo_server(false);
    let url = format!("ws://127.0.0.1:{port}/");
    for proxy in [format!("http://127.0.0.1:{}", p.port), format!("http://user:wrong@127.0.0.1:{}", p.port)] {
        let e = dialer(&proxy).dial(&url, &[]).map(|_| ()).unwrap_err();
        assert_eq!(e.error.kind(), ErrorKind::ProxyRefused, "{}", e.error);
        assert!(
            !e.error.message().contains("s3cret") && !e.error.message().contains(":wrong"),
            "no password in messages"
        );
        let resp = e.response.expect("the proxy's response is given");
        // No credentials: 407; wrong ones: tinyproxy answers 401.
        assert!(matches!(resp.status(), 401 | 407), "{}", resp.status());
        assert!(e.error.message().contains(&format!("HTTP {}", resp.status())), "{}", e.error);
        assert!(!resp.body.is_empty(), "the proxy's body is kept");
    }
    // A port the proxy does not allow: 403.
    let p = need!(proxies::tinyproxy(None, &[1]));
    let e = dialer(&format!("http://127.0.0.1:{}", p.port)).dial(&url, &[]).map(|_| ()).unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::ProxyRefused, "{}", e.error);
    assert!(e.error.message().contains("403"), "{}", e.error);
    assert_eq!(e.response.unwrap().status(), 403);
}

#[test]
fn https_proxy_stunnel_in_front_of_tinyproxy() {
    let inner = need!(proxies::tinyproxy(None, &[]));
    let leaf = Pki::get().leaf("server-rsa");
    let p = need!(proxies::stunnel_in_front(inner, &leaf.cert, &leaf.key));
    // ws:// target: TLS to the proxy only; wss://: TLS inside TLS.
    both_targets(&format!("https://localhost:{}", p.port), "localhost");
}

#[test]
fn https_proxy_with_an_untrusted_certificate_is_a_proxy_error() {
    let inner = need!(proxies::tinyproxy(None, &[]));
    let leaf = Pki::get().leaf("untrusted");
    let p = need!(proxies::stunnel_in_front(inner, &leaf.cert, &leaf.key));
    let (port, _h) = echo_server(false);
    let e = dialer(&format!("https://localhost:{}", p.port))
        .dial(&format!("ws://127.0.0.1:{port}/"), &[])
        .map(|_| ())
        .unwrap_err()
        .error;
    assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
    assert!(e.message().contains("not trusted"), "{e}");
}

#[test]
fn socks5_and_socks5h_through_microsocks_with_auth() {
    let p = need!(proxies::microsocks(Some(("sockuser", "sockpw"))));
    both_targets(&format!("socks5://sockuser:sockpw@127.0.0.1:{}", p.port), "localhost");
    both_targets(&format!("socks5h://sockuser:sockpw@127.0.0.1:{}", p.port), "localhost");
}

#[test]
fn socks5_refusals() {
    let p = need!(proxies::microsocks(Some(("sockuser", "sockpw"))));
    let (port, _h) = echo_server(false);
    let url = format!("ws://127.0.0.1:{port}/");
    let e = dialer(&format!("socks5://sockuser:bad@127.0.0.1:{}", p.port)).dial(&url, &[]).map(|_| ()).unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::ProxyRefused, "{}", e.error);
    assert!(e.error.message().contains("authentication failed"), "{}", e.error);
    let e = dialer(&format!("socks5://127.0.0.1:{}", p.port)).dial(&url, &[]).map(|_| ()).unwrap_err();
    assert_eq!(e.error.kind(), ErrorKind::ProxyRefused, "{}", e.error);
    assert!(e.error.message().contains("requires authentication"), "{}", e.error);

    // A target nothing listens on: the proxy's reply code.
    let open = need!(proxies::microsocks(None));
    let closed = proxies::free_port();
    let e = dialer(&format!("socks5h://127.0.0.1:{}", open.port))
        .dial(&format!("ws://127.0.0.1:{closed}/"), &[])
        .map(|_| ())
        .unwrap_err()
        .error;
    assert_eq!(e.kind(), ErrorKind::ProxyRefused, "{e}");
    assert!(e.message().contains("SOCKS5") && e.message().contains("reply"), "{e}");
}

#[test]
fn unreachable_proxy_is_a_proxy_error() {
    let closed = proxies::free_port();
    let e = dialer(&format!("http://127.0.0.1:{closed}")).dial("ws://localhost:1/", &[]).map(|_| ()).unwrap_err().error;
    assert_eq!(e.kind(), ErrorKind::Proxy, "{e}");
    assert!(e.message().contains("cannot connect"), "{e}");
}

/// The CONNECT request on the wire: authority, Host, Basic credentials
/// and the dialer's extra proxy headers (read by a listener that records
/// the request and refuses it with a body).
#[test]
fn connect_request_carries_credentials_and_extra_headers() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0);
            req.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nno thanks").unwrap();
        String::from_utf8(req).unwrap()
    });
    let mut d = dialer(&format!("http://al%40ice:p%3Ass@127.0.0.1:{port}"));
    d.add_proxy_header("X-Trace", "abc").unwrap();
    let e = d.dial("wss://target.example:8443/x", &[]).map(|_| ()).unwrap_err();
    let req = h.join().unwrap();
    assert!(req.starts_with("CONNECT target.example:8443 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Host: target.example:8443\r\n"), "{req}");
    // base64("al@ice:p:ss")
    assert!(req.contains("Proxy-Authorization: Basic YWxAaWNlOnA6c3M=\r\n"), "{req}");
    assert!(req.contains("X-Trace: abc\r\n"), "{req}");
    assert_eq!(e.error.kind(), ErrorKind::ProxyRefused);
    assert!(e.error.message().contains("no thanks"), "{}", e.error);
    assert_eq!(e.response.unwrap().body, b"no thanks");
}
