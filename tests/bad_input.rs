//! Hostile input over raw TCP: every violation gets its close code, the
//! server-side read returns the matching error, and the server keeps
//! serving other connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::ErrorKind;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A server that reports, for each connection, the error its read loop ended with.
fn server(limit: u64) -> (String, mpsc::Receiver<(ErrorKind, Option<u16>)>) {
    let mut up = Upgrader::default();
    up.conn.read_limit = limit;
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let addr = l.local_addr().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        while let Ok(c) = l.accept(None) {
            let tx = tx.clone();
            thread::spawn(move || loop {
                let r = c.read_message().map(|m| (m.kind(), m.data().to_vec()));
                match r {
                    Ok((k, d)) => {
                        let _ = c.write_message(k, &d);
                    }
                    Err(e) => {
                        let _ = tx.send((e.kind(), c.close_code()));
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn raw_client(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
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

/// Reads frames until a close frame; returns its code (None if the socket
/// closed without one).
fn close_code_from(s: &mut TcpStream) -> Option<u16> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let mut i = 0;
    while i + 2 <= all.len() {
        let op = all[i] & 0x0F;
        let len = (all[i + 1] & 0x7F) as usize;
        assert!(len < 126, "test only expects small server frames");
        if op == 8 {
            return (len >= 2).then(|| u16::from_be_bytes([all[i + 2], all[i + 3]]));
        }
        i += 2 + len;
    }
    None
}

fn expect(addr: &str, rx: &mpsc::Receiver<(ErrorKind, Option<u16>)>, bytes: &[u8], code: u16, kind: ErrorKind) {
    let mut s = raw_client(addr);
    s.write_all(bytes).unwrap();
    assert_eq!(close_code_from(&mut s), Some(code), "close code for {bytes:02x?}");
    let (k, _) = rx.recv_timeout(Duration::from_secs(5)).expect("server read ended");
    assert_eq!(k, kind);
}

#[test]
fn each_violation_gets_its_close_code_and_the_server_keeps_serving() {
    let (addr, rx) = server(1000);
    // Unmasked client frame.
    expect(&addr, &rx, &[0x82, 0x01, 0xAA], 1002, ErrorKind::Protocol);
    // Reserved opcode, RSV bit, fragmented ping, long ping.
    expect(&addr, &rx, &masked(0x83, b"x"), 1002, ErrorKind::Protocol);
    expect(&addr, &rx, &masked(0xC2, b"x"), 1002, ErrorKind::Protocol);
    expect(&addr, &rx, &masked(0x09, b"x"), 1002, ErrorKind::Protocol);
    expect(&addr, &rx, &masked(0x89, &[0u8; 126]), 1002, ErrorKind::Protocol);
    // Continuation without a start; new message inside a fragmented one.
    expect(&addr, &rx, &masked(0x80, b"x"), 1002, ErrorKind::Protocol);
    let mut two = masked(0x01, b"a");
    two.extend(masked(0x81, b"b"));
    expect(&addr, &rx, &two, 1002, ErrorKind::Protocol);
    // Invalid UTF-8 in a text message (fails before the message ends), and in a close reason.
    expect(&addr, &rx, &masked(0x01, &[b'a', 0xFF]), 1007, ErrorKind::InvalidUtf8);
    expect(&addr, &rx, &masked(0x88, &[0x03, 0xE8, 0xFF]), 1007, ErrorKind::InvalidUtf8);
    // Invalid close codes and a one-byte close payload.
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2000, 5000] {
        expect(&addr, &rx, &masked(0x88, &code.to_be_bytes()), 1002, ErrorKind::Protocol);
    }
    expect(&addr, &rx, &masked(0x88, &[0x03]), 1002, ErrorKind::Protocol);
    // Over the read limit (1000 bytes): fails at the header.
    expect(&addr, &rx, &masked(0x82, &[0u8; 1001])[..8], 1009, ErrorKind::ReadLimit);
    // A valid close is echoed with the same code and ends the read with Closed.
    expect(&addr, &rx, &masked(0x88, &[0x0F, 0xA0, b'o', b'k']), 4000, ErrorKind::Closed);
    // TCP dropped mid-frame: 1006 on the server side.
    {
        let mut s = raw_client(&addr);
        s.write_all(&masked(0x82, &[7u8; 100])[..20]).unwrap();
    }
    let (k, code) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!((k, code), (ErrorKind::Closed, Some(1006)));
    // After all that, a normal client still works.
    let (c, _) = Dialer::default().dial(&format!("ws://{addr}/"), &[]).unwrap();
    c.write_message(MessageType::Text, b"still here").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"still here");
}

#[test]
fn close_from_another_thread_wakes_a_blocked_reader() {
    let (addr, _rx) = server(0);
    let (c, _) = Dialer::default().dial(&format!("ws://{addr}/"), &[]).unwrap();
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    let started = Instant::now();
    let reader = thread::spawn(move || c2.read_message().err().map(|e| e.kind()));
    thread::sleep(Duration::from_millis(100));
    c.close();
    assert_eq!(reader.join().unwrap(), Some(ErrorKind::LocallyClosed));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(c.write_message(MessageType::Text, b"x").unwrap_err().kind(), ErrorKind::LocallyClosed);
}

#[test]
fn a_second_concurrent_reader_is_refused() {
    let (addr, _rx) = server(0);
    let (c, _) = Dialer::default().dial(&format!("ws://{addr}/"), &[]).unwrap();
    let c = std::sync::Arc::new(c);
    let c2 = c.clone();
    let reader = thread::spawn(move || c2.read_message().map(|m| m.data().to_vec()));
    thread::sleep(Duration::from_millis(100));
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::Busy);
    c.write_message(MessageType::Binary, b"wake").unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"wake");
}
