//! TLS inside the sans-IO session: a wss:// client session and a TLS server
//! session talking ciphertext through memory (large messages, pings, the
//! close handshake and close_notify, the peer's certificate); each of them
//! over a real socket against the blocking TLS Listener and Dialer; and
//! the failures: an untrusted or wrongly named certificate, plaintext on a
//! TLS session, a stalled TLS handshake, a certificate replaced while
//! sessions run. Certificates are made by openssl for the run.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use ws::api::{Dialer, Listener, MessageType, Session, SessionEvent, SessionHandler, Upgrader};
use ws::transport::proxy::ProxyChoice;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig, TlsSession};
use ws::ErrorKind;

/// Records events; echoes messages when `echo` is set.
#[derive(Default)]
struct Record {
    echo: bool,
    events: Vec<String>,
    errors: Vec<(ErrorKind, String)>,
    messages: Vec<Vec<u8>>,
}

impl SessionHandler for Record {
    fn on_event(&mut self, s: &Session, ev: SessionEvent<'_>) {
        let line = match ev {
            SessionEvent::Open { request, response } => {
                format!("open req={} resp={:?}", request.is_some(), response.map(|r| r.head.status))
            }
            SessionEvent::Message { kind, data } => {
                if self.echo {
                    s.send(kind, data).unwrap();
                }
                self.messages.push(data.to_vec());
                format!("{kind:?} {}", data.len())
            }
            SessionEvent::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
            SessionEvent::Pong(p) => format!("pong {}", String::from_utf8_lossy(p)),
            SessionEvent::Close { code, .. } => format!("close {code}"),
            SessionEvent::Error(e) => {
                self.errors.push((e.kind(), e.message().to_string()));
                format!("error {:?}", e.kind())
            }
        };
        self.events.push(line);
    }
}

fn take(s: &Session) -> Vec<u8> {
    let out = s.with_pending(|b| b.to_vec());
    s.sent(out.len()).unwrap();
    out
}

fn tls_upgrader(leaf: &str) -> (Upgrader, TlsServerConfig) {
    let l = Pki::get().leaf(leaf);
    let cfg = TlsServerConfig::from_files(&l.cert, &l.key).unwrap();
    (Upgrader { tls: Some(cfg.clone()), ..Upgrader::default() }, cfg)
}

fn tls_dialer() -> Dialer {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    Dialer { tls, proxy: ProxyChoice::Direct, handshake_timeout: Some(Duration::from_secs(10)), ..Dialer::default() }
}

/// Moves bytes both ways until neither side has output (at most 50 rounds).
fn pump(a: &Session, ah: &mut Record, b: &Session, bh: &mut Record) {
    for _ in 0..50 {
        let ab = take(a);
        let ba = take(b);
        if ab.is_empty() && ba.is_empty() {
            return;
        }
        if !ab.is_empty() {
            b.recv(&ab, Instant::now(), bh).unwrap();
        }
        if !ba.is_empty() {
            a.recv(&ba, Instant::now(), ah).unwrap();
        }
    }
    panic!("the sessions kept talking");
}

#[test]
fn wss_client_and_tls_server_sessions_talk_ciphertext_through_memory() {
    let now = Instant::now();
    let (up, _) = tls_upgrader("server-ec");
    let client = Session::client(&tls_dialer(), "wss://localhost/chat", now).unwrap();
    let server = Session::server(&up, now).unwrap();
    assert!(client.is_tls() && server.is_tls());
    let hello = take(&client);
    assert_eq!(hello[0], 0x16, "the first bytes are a TLS handshake record, not the HTTP request");
    assert!(!hello.windows(4).any(|w| w == b"GET "), "no plaintext request on the wire");
    let (mut ch, mut sh) = (Record::default(), Record { echo: true, ..Default::default() });
    server.recv(&hello, now, &mut sh).unwrap();
    pump(&client, &mut ch, &server, &mut sh);
    assert!(client.is_open() && server.is_open(), "{:?} {:?}", ch.events, sh.events);
    assert_eq!(sh.events[0], "open req=true resp=None");
    assert_eq!(ch.events[0], "open req=false resp=Some(101)");
    let leaf = Pki::get().leaf("server-ec").der();
    assert_eq!(client.tls_peer_certificates().unwrap()[0], leaf, "the client sees the server's leaf");
    assert_eq!(server.tls_peer_certificates(), None, "no client certificate was asked for");

    // Large messages cross many TLS records (and rustls' 16 KiB plaintext
    // buffer, so feeding stops and resumes); small ones and a ping too.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    client.send(MessageType::Binary, &big).unwrap();
    client.send(MessageType::Text, b"after the big one").unwrap();
    client.send(MessageType::Ping, b"there?").unwrap();
    let wire = take(&client);
    assert!(!wire.windows(17).any(|w| w == b"after the big one"), "the text is encrypted");
    server.recv(&wire, now, &mut sh).unwrap();
    pump(&client, &mut ch, &server, &mut sh);
    assert_eq!(ch.messages.len(), 2, "{:?}", ch.events);
    assert!(ch.messages[0] == big, "the 1 MB message came back intact");
    assert_eq!(ch.messages[1], b"after the big one");
    assert!(ch.events.contains(&"pong there?".to_string()), "{:?}", ch.events);

    // The close handshake; the server then finishes and its last bytes
    // carry close_notify, which ends the client cleanly.
    client.close(1000, b"bye").unwrap();
    server.recv(&take(&client), now, &mut sh).unwrap();
    assert!(server.is_finished());
    client.recv(&take(&server), now, &mut ch).unwrap();
    assert!(client.is_finished(), "the server's close_notify ends the client: {:?}", ch.events);
    assert_eq!(ch.events.last().unwrap(), "close 1000");
    assert!(ch.errors.is_empty() && sh.errors.is_empty(), "{:?} {:?}", ch.errors, sh.errors);
}

/// The server side fed the client's ciphertext one byte at a time gives
/// the same events as fed whole.
#[test]
fn a_tls_server_session_fed_byte_by_byte() {
    let now = Instant::now();
    let (up, _) = tls_upgrader("server-rsa");
    let client = Session::client(&tls_dialer(), "wss://localhost/", now).unwrap();
    let server = Session::server(&up, now).unwrap();
    let (mut ch, mut sh) = (Record::default(), Record { echo: true, ..Default::default() });
    for _ in 0..50 {
        let c2s = take(&client);
        for b in &c2s {
            server.recv(std::slice::from_ref(b), now, &mut sh).unwrap();
        }
        let s2c = take(&server);
        if c2s.is_empty() && s2c.is_empty() {
            break;
        }
        for b in &s2c {
            client.recv(std::slice::from_ref(b), now, &mut ch).unwrap();
        }
        if client.is_open() && ch.messages.is_empty() && !client.wants_write() {
            client.send(MessageType::Text, &[b'x'; 40_000]).unwrap();
        }
    }
    assert_eq!(sh.events, vec!["open req=true resp=None".to_string(), "Text 40000".to_string()]);
    assert_eq!(ch.messages, vec![vec![b'x'; 40_000]]);
}

/// Drives `s` over a real socket until `done(s, handler)` or 10 s.
fn drive(s: &Session, h: &mut Record, sock: &mut TcpStream, done: impl Fn(&Session, &Record) -> bool) {
    sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 64 * 1024];
    while !done(s, h) && Instant::now() < until {
        let out = take(s);
        if !out.is_empty() {
            sock.write_all(&out).unwrap();
        }
        match sock.read(&mut buf) {
            Ok(0) => {
                s.recv_eof(h);
                return;
            }
            Ok(n) => s.recv(&buf[..n], Instant::now(), h).unwrap(),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("socket: {e}"),
        }
    }
    let out = take(s);
    let _ = sock.write_all(&out);
}

#[test]
fn a_wss_client_session_talks_to_the_blocking_tls_listener() {
    let (up, _) = tls_upgrader("server-ec");
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let port = l.local_addr().port();
    let server = thread::spawn(move || {
        let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).unwrap();
        while let Ok(m) = c.read_message() {
            let (k, d) = (m.kind(), m.data().to_vec());
            drop(m);
            if c.write_message(k, &d).is_err() {
                break;
            }
        }
    });
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let s = Session::client(&tls_dialer(), &format!("wss://localhost:{port}/"), Instant::now()).unwrap();
    let mut h = Record::default();
    drive(&s, &mut h, &mut sock, |s, _| s.is_open());
    assert!(s.is_open(), "{:?} {:?}", h.events, h.errors);
    let data: Vec<u8> = (0..200_000).map(|i| (i % 253) as u8).collect();
    s.send(MessageType::Binary, &data).unwrap();
    drive(&s, &mut h, &mut sock, |_, h| !h.messages.is_empty());
    assert!(h.messages.first() == Some(&data), "the echo over real TLS: {:?}", h.events);
    s.close(1000, b"").unwrap();
    drive(&s, &mut h, &mut sock, |s, _| s.is_finished());
    assert!(s.is_finished() && h.errors.is_empty(), "{:?} {:?}", h.events, h.errors);
    server.join().unwrap();
}

#[test]
fn a_tls_server_session_serves_the_blocking_wss_dialer() {
    let (up, _) = tls_upgrader("server-rsa");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut sock, _) = l.accept().unwrap();
        let s = Session::server(&up, Instant::now()).unwrap();
        let mut h = Record { echo: true, ..Default::default() };
        drive(&s, &mut h, &mut sock, |s, _| s.is_finished());
        h
    });
    let (c, resp) = tls_dialer().dial(&format!("wss://localhost:{port}/x"), &[]).map_err(|e| e.error).unwrap();
    assert_eq!(resp.status(), 101);
    assert!(c.is_tls());
    for len in [0usize, 10, 70_000] {
        let data = vec![b'a'; len];
        c.write_message(MessageType::Text, &data).unwrap();
        assert_eq!(c.read_message().unwrap().data(), &data[..]);
    }
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    let h = server.join().unwrap();
    assert!(h.errors.is_empty(), "{:?}", h.errors);
    assert_eq!(h.events.last().unwrap(), "close 1000");
}

/// A client session's handshake against `leaf`: the error it reports.
fn client_failure(leaf: &str, url: &str) -> (ErrorKind, String, Vec<u8>) {
    let now = Instant::now();
    let (up, _) = tls_upgrader(leaf);
    let client = Session::client(&tls_dialer(), url, now).unwrap();
    let server = Session::server(&up, now).unwrap();
    let (mut ch, mut sh) = (Record::default(), Record::default());
    for _ in 0..10 {
        server.recv(&take(&client), now, &mut sh).unwrap();
        client.recv(&take(&server), now, &mut ch).unwrap();
        if client.is_finished() {
            break;
        }
    }
    assert!(client.is_finished() && !client.is_open());
    let (kind, msg) = ch.errors.first().cloned().expect("an error event");
    (kind, msg, take(&client))
}

#[test]
fn certificate_failures_name_their_reason_and_queue_an_alert() {
    let (kind, msg, alert) = client_failure("untrusted", "wss://localhost/");
    assert_eq!(kind, ErrorKind::TlsCertificate, "{msg}");
    assert!(msg.contains("not trusted"), "{msg}");
    // A TLS record is pending for the server: the alert (in TLS 1.3 after a
    // ChangeCipherSpec, and encrypted, so an application-data record).
    assert!(matches!(alert.first(), Some(0x14 | 0x15 | 0x17)), "a TLS record is pending: {:?}", alert.first());
    assert!(alert.len() >= 5 && alert[1] == 3, "a TLS record header");
    let (kind, msg, _) = client_failure("wrong-name", "wss://localhost/");
    assert_eq!(kind, ErrorKind::TlsCertificate, "{msg}");
    assert!(msg.contains("name"), "{msg}");
    let (kind, msg, _) = client_failure("expired", "wss://localhost/");
    assert_eq!(kind, ErrorKind::TlsCertificate, "{msg}");
    assert!(msg.contains("expired"), "{msg}");
}

#[test]
fn plaintext_on_a_tls_session_fails_it_with_a_tls_error() {
    let now = Instant::now();
    let (up, _) = tls_upgrader("server-ec");
    let server = Session::server(&up, now).unwrap();
    let mut sh = Record::default();
    server.recv(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", now, &mut sh).unwrap();
    assert!(server.is_finished());
    let (kind, msg) = sh.errors[0].clone();
    assert_eq!(kind, ErrorKind::Tls, "{msg}");
    assert!(msg.contains("not TLS"), "{msg}");
    let out = take(&server);
    assert!(!out.starts_with(b"HTTP/"), "no plaintext HTTP answer on a TLS session");
    // Later input is ignored, the session stays finished.
    server.recv(b"more", now, &mut sh).unwrap();
    assert_eq!(sh.errors.len(), 1);
}

#[test]
fn a_stalled_tls_handshake_fails_at_the_handshake_timeout() {
    let now = Instant::now();
    let (mut up, _) = tls_upgrader("server-ec");
    up.handshake_timeout = Some(Duration::from_millis(50));
    let server = Session::server(&up, now).unwrap();
    let client = Session::client(&tls_dialer(), "wss://localhost/", now).unwrap();
    let hello = take(&client);
    let mut sh = Record::default();
    server.recv(&hello[..hello.len() / 2], now, &mut sh).unwrap(); // half a ClientHello
    let due = server.next_timeout().expect("a handshake deadline");
    server.on_timeout(due, &mut sh);
    assert!(server.is_finished());
    let (kind, msg) = sh.errors[0].clone();
    assert_eq!(kind, ErrorKind::Tls, "{msg}");
    assert!(msg.contains("handshake timeout"), "{msg}");
    assert!(!take(&server).starts_with(b"HTTP/1.1 408"), "no plaintext 408 before TLS is up");
    // The client side's timeout names the server.
    let mut d = tls_dialer();
    d.handshake_timeout = Some(Duration::from_millis(50));
    let client = Session::client(&d, "wss://localhost/", now).unwrap();
    let mut ch = Record::default();
    client.on_timeout(client.next_timeout().unwrap(), &mut ch);
    assert_eq!(ch.errors[0].0, ErrorKind::Tls);
    assert!(ch.errors[0].1.contains("localhost did not complete the TLS handshake"), "{:?}", ch.errors);
}

/// A certificate replaced on the shared server configuration reaches the
/// TLS handshakes that come after it; a session already open keeps going.
#[test]
fn a_replaced_certificate_reaches_new_handshakes() {
    let now = Instant::now();
    let (up, cfg) = tls_upgrader("server-ec");
    let open_pair = || {
        let server = Session::server(&up, now).unwrap();
        let client = Session::client(&tls_dialer(), "wss://localhost/", now).unwrap();
        let (mut ch, mut sh) = (Record::default(), Record { echo: true, ..Default::default() });
        pump(&client, &mut ch, &server, &mut sh);
        assert!(client.is_open(), "{:?}", ch.errors);
        (client, ch, server, sh)
    };
    let (old_client, mut och, old_server, mut osh) = open_pair();
    let next = Pki::get().leaf("server-ec2");
    cfg.replace_certificate_files(&next.cert, &next.key).unwrap();
    let (new_client, ..) = open_pair();
    assert_eq!(old_client.tls_peer_certificates().unwrap()[0], Pki::get().leaf("server-ec").der());
    assert_eq!(new_client.tls_peer_certificates().unwrap()[0], next.der(), "the new handshake has the new leaf");
    old_client.send(MessageType::Text, b"still here").unwrap();
    pump(&old_client, &mut och, &old_server, &mut osh);
    assert_eq!(och.messages, vec![b"still here".to_vec()], "the session opened before goes on");
}

/// A request that is not a WebSocket upgrade, over TLS: the session's HTTP
/// answer goes out encrypted, followed by close_notify.
#[test]
fn an_http_error_answer_is_encrypted_and_ends_with_close_notify() {
    let now = Instant::now();
    let (up, _) = tls_upgrader("server-ec");
    let server = Session::server(&up, now).unwrap();
    let mut sh = Record::default();
    let mut raw = TlsSession::client(&tls_dialer().tls, "localhost").unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_eq!(raw.write_plaintext(request), request.len());
    let mut answer = Vec::new();
    let mut closed = false;
    for _ in 0..10 {
        let mut out = Vec::new();
        raw.take_ciphertext(&mut out);
        server.recv(&out, now, &mut sh).unwrap();
        let back = take(&server);
        assert!(!back.starts_with(b"HTTP/"), "the answer is not plaintext on the wire");
        raw.feed(&back).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match raw.read_plaintext(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        if closed {
            break;
        }
    }
    assert!(answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    assert!(closed, "close_notify after the answer");
    assert!(server.is_finished() && !server.wants_write());
}
