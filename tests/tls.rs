//! wss:// through the Rust API with openssl-made certificates: round trips
//! (ECDSA, RSA, large messages with a reader and a writer thread), every
//! client-side failure (untrusted, name mismatch, expired, version
//! mismatch, handshake timeout), mutual TLS, certificate replacement while
//! serving, and a server that keeps serving while clients send plaintext,
//! garbage, half a ClientHello, or reset mid-handshake.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/python.rs"]
    pub mod python;
}

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use ws::api::{Conn, Dialer, Listener, MessageType, Upgrader};
use ws::transport::tls::{ClientAuth, MinVersion, TlsClientConfig, TlsServerConfig};
use ws::ErrorKind;

fn server_cfg(leaf: &str) -> TlsServerConfig {
    let l = Pki::get().leaf(leaf);
    TlsServerConfig::from_files(&l.cert, &l.key).unwrap()
}

fn client_cfg() -> TlsClientConfig {
    let mut c = TlsClientConfig::default();
    c.add_ca_file(&Pki::get().ca()).unwrap();
    c
}

fn dialer(tls: TlsClientConfig) -> Dialer {
    Dialer {
        tls,
        proxy: ws::transport::proxy::ProxyChoice::Direct,
        handshake_timeout: Some(Duration::from_secs(10)),
        ..Dialer::default()
    }
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

/// A TLS echo server on its own thread, serving `n` connections one after
/// another (each echoed on a thread of its own).
/// Each served connection's peer certificate chain (DER, leaf first).
type PeerChains = Vec<Option<Vec<Vec<u8>>>>;

fn tls_echo_server(up: Upgrader, n: usize) -> (String, thread::JoinHandle<PeerChains>) {
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let port = l.local_addr().port();
    let h = thread::spawn(move || {
        let mut peers = Vec::new();
        let mut hs = Vec::new();
        for _ in 0..n {
            let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(20))) else { break };
            peers.push(c.tls_peer_certificates());
            hs.push(thread::spawn(move || echo(&c)));
        }
        for h in hs {
            let _ = h.join();
        }
        peers
    });
    (format!("wss://localhost:{port}/"), h)
}

fn tls_upgrader(leaf: &str) -> Upgrader {
    Upgrader { tls: Some(server_cfg(leaf)), ..Upgrader::default() }
}

#[test]
fn echo_over_tls_ecdsa_and_rsa() {
    for leaf in ["server-ec", "server-rsa"] {
        let (url, h) = tls_echo_server(tls_upgrader(leaf), 1);
        let (c, resp) = dialer(client_cfg()).dial(&url, &[]).unwrap();
        assert_eq!(resp.status(), 101);
        assert!(c.is_tls());
        assert!(c.tls_version().is_some());
        let peer = c.tls_peer_certificates().expect("server certificate visible");
        assert_eq!(peer[0], Pki::get().leaf(leaf).der(), "{leaf}: the peer certificate is the server's leaf");
        for len in [0usize, 1, 125, 16 * 1024, 70_000, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            c.write_message(MessageType::Binary, &data).unwrap();
            let m = c.read_message().unwrap();
            assert!(m.data() == &data[..], "{leaf}: echo of {len} bytes");
        }
        c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
        h.join().unwrap();
    }
}

#[test]
fn ip_address_target_checks_the_ip_san() {
    let l = Listener::bind("127.0.0.1:0", &tls_upgrader("server-ec")).unwrap();
    let url = format!("wss://127.0.0.1:{}/", l.local_addr().port());
    let h = thread::spawn(move || echo(&l.accept(Some(Instant::now() + Duration::from_secs(10))).unwrap()));
    let (c, _) = dialer(client_cfg()).dial(&url, &[]).unwrap();
    c.write_message(MessageType::Text, b"ip").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"ip");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
}

/// A reader thread and a writer thread on one TLS connection at once,
/// with messages large enough to fill the socket buffers both ways.
#[test]
fn concurrent_reader_and_writer_threads() {
    let (url, h) = tls_echo_server(tls_upgrader("server-ec"), 1);
    let (c, _) = dialer(client_cfg()).dial(&url, &[]).unwrap();
    let c = std::sync::Arc::new(c);
    let msg: Vec<u8> = (0..300_000).map(|i| (i % 241) as u8).collect();
    let w = {
        let (c, msg) = (c.clone(), msg.clone());
        thread::spawn(move || {
            for _ in 0..20 {
                c.write_message(MessageType::Binary, &msg).unwrap();
            }
        })
    };
    for i in 0..20 {
        let m = c.read_message().unwrap();
        assert!(m.data() == &msg[..], "message {i}");
    }
    w.join().unwrap();
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
}

fn dial_error(url: &str, cfg: TlsClientConfig) -> ws::Error {
    dialer(cfg).dial(url, &[]).map(|_| ()).expect_err("the dial must fail").error
}

/// A listener serving `leaf` that accepts (and so drives handshakes) for a
/// few seconds.
fn serving(leaf: &str) -> (u16, thread::JoinHandle<()>) {
    let l = Listener::bind("127.0.0.1:0", &tls_upgrader(leaf)).unwrap();
    let port = l.local_addr().port();
    let h = thread::spawn(move || {
        let _ = l.accept(Some(Instant::now() + Duration::from_secs(3)));
    });
    (port, h)
}

#[test]
fn untrusted_certificate_fails_with_its_reason() {
    let (port, h) = serving("untrusted");
    let e = dial_error(&format!("wss://localhost:{port}/"), client_cfg());
    assert_eq!(e.kind(), ErrorKind::TlsCertificate, "{e}");
    assert!(e.message().contains("not trusted"), "{e}");
    h.join().unwrap();
}

#[test]
fn system_store_does_not_trust_a_private_ca() {
    let (port, h) = serving("server-ec");
    let e = dial_error(&format!("wss://localhost:{port}/"), TlsClientConfig::default());
    // The system store loads (TlsCertificate: unknown issuer) or this
    // machine has none (TlsConfig, which names the missing store).
    assert!(matches!(e.kind(), ErrorKind::TlsCertificate | ErrorKind::TlsConfig), "{e}");
    h.join().unwrap();
}

#[test]
fn name_mismatch_fails_unless_explicitly_skipped() {
    let (port, h) = serving("wrong-name");
    let url = format!("wss://localhost:{port}/");
    let e = dial_error(&url, client_cfg());
    assert_eq!(e.kind(), ErrorKind::TlsCertificate, "{e}");
    assert!(e.message().contains("name mismatch"), "{e}");
    h.join().unwrap();

    let (url, h) = tls_echo_server(tls_upgrader("wrong-name"), 1);
    let mut cfg = client_cfg();
    cfg.insecure_skip_hostname_verification(true);
    let (c, _) = dialer(cfg).dial(&url, &[]).expect("the opt-out accepts a trusted chain for another name");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
    // The opt-out still verifies the chain.
    let (port, h) = serving("untrusted");
    let mut cfg = client_cfg();
    cfg.insecure_skip_hostname_verification(true);
    assert_eq!(dial_error(&format!("wss://localhost:{port}/"), cfg).kind(), ErrorKind::TlsCertificate);
    h.join().unwrap();
}

#[test]
fn expired_certificate_fails_with_its_reason() {
    let (port, h) = serving("expired");
    let e = dial_error(&format!("wss://localhost:{port}/"), client_cfg());
    assert_eq!(e.kind(), ErrorKind::TlsCertificate, "{e}");
    assert!(e.message().contains("expired"), "{e}");
    h.join().unwrap();
}

/// openssl s_server limited to TLS 1.2 against a client that requires 1.3.
#[test]
fn protocol_version_mismatch_fails_with_its_reason() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let leaf = Pki::get().leaf("server-ec");
    let mut child = support::python::ChildGuard::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-quiet", "-tls1_2", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&leaf.cert)
            .arg("-key")
            .arg(&leaf.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_port(port);
    let mut cfg = client_cfg();
    cfg.set_min_version(MinVersion::Tls13);
    let e = dial_error(&format!("wss://localhost:{port}/"), cfg);
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("version"), "{e}");
    let _ = child.child.kill();
}

fn wait_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "nothing listens on {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn handshake_timeout_when_the_server_never_answers() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://localhost:{}/", silent.local_addr().unwrap().port());
    let mut d = dialer(client_cfg());
    d.handshake_timeout = Some(Duration::from_millis(300));
    let t0 = Instant::now();
    let e = d.dial(&url, &[]).map(|_| ()).unwrap_err().error;
    assert_eq!(e.kind(), ErrorKind::Tls, "{e}");
    assert!(e.message().contains("handshake timeout"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[test]
fn mutual_tls_required_and_optional() {
    let pki = Pki::get();
    let ca_pem = std::fs::read(pki.ca()).unwrap();
    let client = pki.leaf("client");

    let mut required = server_cfg("server-ec");
    required.set_client_auth(ClientAuth::Required, Some(&ca_pem)).unwrap();
    // Without a certificate: refused (TLS 1.3 reports it at the first read).
    let (port, h) = {
        let l =
            Listener::bind("127.0.0.1:0", &Upgrader { tls: Some(required.clone()), ..Upgrader::default() }).unwrap();
        let port = l.local_addr().port();
        (port, thread::spawn(move || l.accept(Some(Instant::now() + Duration::from_secs(3))).map(|_| ()).unwrap_err()))
    };
    let e = dial_error(&format!("wss://localhost:{port}/"), client_cfg());
    assert!(matches!(e.kind(), ErrorKind::TlsCertificate | ErrorKind::Tls), "{e}");
    assert!(e.message().contains("certificate"), "{e}");
    h.join().unwrap();

    // With one: served, and the server sees it.
    let (url, h) = tls_echo_server(Upgrader { tls: Some(required), ..Upgrader::default() }, 1);
    let mut cfg = client_cfg();
    cfg.set_client_certificate_files(&client.cert, &client.key).unwrap();
    let (c, _) = dialer(cfg).dial(&url, &[]).unwrap();
    c.write_message(MessageType::Text, b"m").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"m");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    let peers = h.join().unwrap();
    assert_eq!(peers[0].as_ref().expect("client certificate visible")[0], client.der());

    // Optional: a client without one is served, and the server sees none.
    let mut optional = server_cfg("server-ec");
    optional.set_client_auth(ClientAuth::Optional, Some(&ca_pem)).unwrap();
    let (url, h) = tls_echo_server(Upgrader { tls: Some(optional), ..Upgrader::default() }, 1);
    let (c, _) = dialer(client_cfg()).dial(&url, &[]).unwrap();
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    assert_eq!(h.join().unwrap()[0], None);
}

#[test]
fn certificate_replaced_while_serving() {
    let pki = Pki::get();
    let cfg = server_cfg("server-ec");
    let (url, h) = tls_echo_server(Upgrader { tls: Some(cfg.clone()), ..Upgrader::default() }, 2);
    // One dialer for both: its TLS sessions could be resumed, which would
    // skip the certificate; the replacement forgets them on the server.
    let d = dialer(client_cfg());
    let (first, _) = d.dial(&url, &[]).unwrap();
    assert_eq!(first.tls_peer_certificates().unwrap()[0], pki.leaf("server-ec").der());

    let next = pki.leaf("server-rsa");
    // A bad replacement is refused and the old certificate stays.
    assert_eq!(cfg.replace_certificate_pem(&next.cert_pem(), b"not a key").unwrap_err().kind(), ErrorKind::TlsConfig);
    cfg.replace_certificate_files(&next.cert, &next.key).unwrap();
    let (second, _) = d.dial(&url, &[]).unwrap();
    assert_eq!(second.tls_peer_certificates().unwrap()[0], next.der(), "new handshakes get the new certificate");
    // The open connection is unaffected.
    first.write_message(MessageType::Text, b"still here").unwrap();
    assert_eq!(first.read_message().unwrap().data(), b"still here");
    second.write_message(MessageType::Text, b"new").unwrap();
    assert_eq!(second.read_message().unwrap().data(), b"new");
    first.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    second.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
}

#[test]
fn bad_key_or_certificate_is_a_config_error() {
    let pki = Pki::get();
    let ec = pki.leaf("server-ec");
    let rsa = pki.leaf("server-rsa");
    let e = TlsServerConfig::from_pem(&ec.cert_pem(), &rsa.key_pem()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TlsConfig, "{e}");
    let e = TlsServerConfig::from_files(&pki.dir.join("missing.pem"), &ec.key).unwrap_err();
    assert!(e.message().contains("missing.pem"), "{e}");
    let mut c = TlsClientConfig::default();
    assert_eq!(c.add_ca_pem(b"-----BEGIN NOTHING-----").unwrap_err().kind(), ErrorKind::TlsConfig);
}

/// A ClientHello's first record header and a little of its body: enough to
/// make the server wait for the rest.
const HALF_CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

#[test]
fn server_drops_bad_clients_and_serves_others_meanwhile() {
    let mut up = tls_upgrader("server-ec");
    up.handshake_timeout = Some(Duration::from_millis(1500));
    let l = std::sync::Arc::new(Listener::bind("127.0.0.1:0", &up).unwrap());
    let addr = l.local_addr();
    let server = {
        let l = l.clone();
        thread::spawn(move || {
            let mut served = 0;
            while let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(10))) {
                served += 1;
                thread::spawn(move || echo(&c));
            }
            served
        })
    };
    // Bad clients first, all left open or half-done.
    let mut plaintext = TcpStream::connect(addr).unwrap();
    plaintext.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n").unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0x04]).unwrap();
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled.write_all(HALF_CLIENT_HELLO).unwrap();
    let silent = TcpStream::connect(addr).unwrap();
    {
        // Reset mid-handshake: half a ClientHello, then RST (linger 0).
        let reset = socket_with_linger0(addr);
        (&reset).write_all(HALF_CLIENT_HELLO).unwrap();
        drop(reset);
    }
    thread::sleep(Duration::from_millis(100));

    // A good client is served at once.
    let t0 = Instant::now();
    let (c, _) = dialer(client_cfg()).dial(&format!("wss://localhost:{}/", addr.port()), &[]).unwrap();
    c.write_message(MessageType::Text, b"served").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"served");
    assert!(t0.elapsed() < Duration::from_millis(1000), "the good client waited {:?}", t0.elapsed());

    // The bad ones are dropped: plaintext and garbage at once (an alert
    // and EOF), the stalled and silent ones at the handshake timeout.
    for (name, s) in [("plaintext", &mut plaintext), ("garbage", &mut garbage)] {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let got = read_to_end_or_timeout(s);
        assert!(got.is_some(), "{name}: the server closed it without waiting for the timeout");
    }
    let t1 = Instant::now();
    for (name, mut s) in [("stalled", stalled), ("silent", silent)] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(read_to_end_or_timeout(&mut s).is_some(), "{name}: dropped at the handshake timeout");
    }
    assert!(t1.elapsed() < Duration::from_secs(3), "dropped within the handshake timeout");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    l.shutdown();
    assert_eq!(server.join().unwrap(), 1, "only the good client was handed out");
}

/// Reads until EOF or reset: `Some(bytes)`; `None` if the read timed out.
fn read_to_end_or_timeout(s: &mut TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(all),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(_) => return Some(all),
        }
    }
}

fn socket_with_linger0(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    let fd = std::os::fd::AsFd::as_fd(&s);
    rustix::net::sockopt::set_socket_linger(fd, Some(Duration::ZERO)).unwrap();
    s
}

/// `Upgrader::upgrade_stream` on a socket accepted elsewhere, whose first
/// bytes (the start of the ClientHello) the caller already read.
#[test]
fn upgrade_accepted_socket_with_tls() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    let up = tls_upgrader("server-ec");
    let h = thread::spawn(move || {
        use std::io::Read;
        let (mut s, _) = tcp.accept().unwrap();
        let mut first = [0u8; 3];
        s.read_exact(&mut first).unwrap();
        assert_eq!(first[0], 0x16, "a TLS handshake record");
        let stream = ws::transport::Stream::from_std(s).unwrap();
        let c = up.upgrade_stream(stream, &first, &[]).unwrap();
        echo(&c);
    });
    let (c, _) = dialer(client_cfg()).dial(&format!("wss://localhost:{port}/"), &[]).unwrap();
    c.write_message(MessageType::Binary, &[1, 2, 3]).unwrap();
    assert_eq!(c.read_message().unwrap().data(), &[1, 2, 3]);
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
}
