//! The sans-IO session (`ws::api::Session`): a client and a server session
//! talking through memory, the opening handshake included, with
//! permessage-deflate; and the server fed the client's whole byte stream
//! split at every byte boundary, which must give the same events.

use std::time::Instant;

use ws::api::{Dialer, MessageType, Session, SessionEvent, SessionHandler, Upgrader};
use ws::proto::deflate::DeflateOptions;

/// Records events; echoes messages when `echo` is set.
#[derive(Default)]
struct Record {
    echo: bool,
    events: Vec<String>,
}

impl SessionHandler for Record {
    fn on_event(&mut self, s: &Session, ev: SessionEvent<'_>) {
        self.events.push(match ev {
            SessionEvent::Open { request, response } => {
                format!("open req={} resp={:?}", request.is_some(), response.map(|r| r.head.status))
            }
            SessionEvent::Message { kind, data } => {
                if self.echo {
                    s.send(kind, data).unwrap();
                }
                format!("{kind:?} {}", String::from_utf8_lossy(data))
            }
            SessionEvent::Ping(p) => format!("ping {}", String::from_utf8_lossy(p)),
            SessionEvent::Pong(p) => format!("pong {}", String::from_utf8_lossy(p)),
            SessionEvent::Close { code, .. } => format!("close {code}"),
            SessionEvent::Error(e) => format!("error {:?}", e.kind()),
        });
    }
}

fn take(s: &Session) -> Vec<u8> {
    let out = s.with_pending(|b| b.to_vec());
    s.sent(out.len()).unwrap();
    out
}

fn compressing() -> (Upgrader, Dialer) {
    let mut up = Upgrader::default();
    up.conn.compression = Some(DeflateOptions::default());
    let mut d = Dialer::default();
    d.conn.compression = Some(DeflateOptions::default());
    (up, d)
}

/// The client's bytes for a scripted exchange, and what a server saw.
fn script() -> (Vec<u8>, Vec<String>, Vec<String>) {
    let now = Instant::now();
    let (up, d) = compressing();
    let client = Session::client(&d, "ws://example.com/chat", now).unwrap();
    let server = Session::server(&up, now).unwrap();
    let mut ch = Record::default();
    let mut sh = Record { echo: true, ..Default::default() };
    let mut c2s = Vec::new();
    let req = take(&client);
    c2s.extend_from_slice(&req);
    server.recv(&req, now, &mut sh).unwrap();
    client.recv(&take(&server), now, &mut ch).unwrap();
    assert!(client.is_open() && server.is_open());
    let msgs: [(MessageType, &[u8]); 5] = [
        (MessageType::Text, b"hello hello hello"),
        (MessageType::Binary, &[0u8; 3000]),
        (MessageType::Text, b""),
        (MessageType::Ping, b"are you there"),
        (MessageType::Text, "héllo again".as_bytes()),
    ];
    for (kind, data) in msgs {
        client.send(kind, data).unwrap();
    }
    client.close(1000, b"bye").unwrap();
    let bytes = take(&client);
    c2s.extend_from_slice(&bytes);
    server.recv(&bytes, now, &mut sh).unwrap();
    client.recv(&take(&server), now, &mut ch).unwrap();
    assert!(server.is_finished(), "a server closes TCP once both close frames passed");
    assert!(!client.is_finished(), "a client waits for the server to close TCP");
    client.recv_eof(&mut ch);
    assert!(client.is_finished());
    (c2s, sh.events, ch.events)
}

#[test]
fn client_and_server_sessions_talk_through_memory() {
    let (_, server_events, client_events) = script();
    assert_eq!(server_events[0], "open req=true resp=None");
    assert_eq!(server_events[1], "Text hello hello hello");
    assert_eq!(server_events[3], "Text ");
    assert_eq!(server_events[4], "ping are you there");
    assert_eq!(server_events.last().unwrap(), "close 1000");
    assert_eq!(client_events[0], "open req=false resp=Some(101)");
    assert!(client_events.contains(&"pong are you there".to_string()), "{client_events:?}");
    assert!(client_events.contains(&"Text héllo again".to_string()));
    assert_eq!(client_events.last().unwrap(), "close 1000");
}

#[test]
fn every_split_of_the_client_stream_gives_the_same_server_events() {
    let (c2s, want, _) = script();
    let (up, _) = compressing();
    for split in 0..=c2s.len() {
        let now = Instant::now();
        let server = Session::server(&up, now).unwrap();
        let mut sh = Record { echo: true, ..Default::default() };
        server.recv(&c2s[..split], now, &mut sh).unwrap();
        server.recv(&c2s[split..], now, &mut sh).unwrap();
        assert_eq!(sh.events, want, "split at {split}");
    }
    // And one byte at a time.
    let now = Instant::now();
    let server = Session::server(&up, now).unwrap();
    let mut sh = Record { echo: true, ..Default::default() };
    for b in &c2s {
        server.recv(std::slice::from_ref(b), now, &mut sh).unwrap();
    }
    assert_eq!(sh.events, want);
}

#[test]
fn bad_input_gets_the_same_answers_as_the_other_drivers() {
    let now = Instant::now();
    // Not a WebSocket request: an HTTP error, then finished.
    let server = Session::server(&Upgrader::default(), now).unwrap();
    let mut sh = Record::default();
    server.recv(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now, &mut sh).unwrap();
    assert!(take(&server).starts_with(b"HTTP/1.1 400"));
    assert!(server.is_finished());
    // An unmasked client frame: close 1002.
    let client = Session::client(&Dialer::default(), "ws://x/", now).unwrap();
    let server = Session::server(&Upgrader::default(), now).unwrap();
    let mut ch = Record::default();
    server.recv(&take(&client), now, &mut sh).unwrap();
    client.recv(&take(&server), now, &mut ch).unwrap();
    server.recv(&[0x81, 0x01, b'x'], now, &mut sh).unwrap();
    let out = take(&server);
    assert_eq!(out[0], 0x88, "a close frame");
    assert_eq!(u16::from_be_bytes([out[2], out[3]]), 1002);
    assert!(server.is_finished());
    assert_eq!(sh.events.last().unwrap(), "error Protocol");
}

#[test]
fn a_stalled_request_is_answered_408_at_the_handshake_timeout() {
    let now = Instant::now();
    let up = Upgrader { handshake_timeout: Some(std::time::Duration::from_millis(50)), ..Default::default() };
    let server = Session::server(&up, now).unwrap();
    let mut sh = Record::default();
    server.recv(b"GET / HTTP/1.1\r\nHost: x\r\n", now, &mut sh).unwrap();
    let due = server.next_timeout().expect("a handshake deadline");
    assert!(due <= now + std::time::Duration::from_millis(50));
    server.on_timeout(due, &mut sh);
    assert!(take(&server).starts_with(b"HTTP/1.1 408"));
    assert!(server.is_finished());
    assert_eq!(sh.events, vec!["error Timeout".to_string()]);
}

/// Autobahn 2.10 / 5.6: every ping gets its pong (the session first
/// answered only the latest of several pings fed at once).
#[test]
fn every_ping_fed_at_once_gets_its_pong() {
    let now = Instant::now();
    let client = Session::client(&Dialer::default(), "ws://x/", now).unwrap();
    let server = Session::server(&Upgrader::default(), now).unwrap();
    let (mut ch, mut sh) = (Record::default(), Record::default());
    server.recv(&take(&client), now, &mut sh).unwrap();
    client.recv(&take(&server), now, &mut ch).unwrap();
    for i in 0..10 {
        client.send(MessageType::Ping, format!("p{i}").as_bytes()).unwrap();
    }
    server.recv(&take(&client), now, &mut sh).unwrap();
    client.recv(&take(&server), now, &mut ch).unwrap();
    let pongs: Vec<_> = ch.events.iter().filter(|e| e.starts_with("pong")).collect();
    assert_eq!(pongs.len(), 10, "{:?}", ch.events);
    assert_eq!(pongs[9], "pong p9");
}
