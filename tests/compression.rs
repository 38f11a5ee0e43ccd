//! permessage-deflate end to end through the Rust API: negotiation,
//! context takeover with every window size, streaming, the decompression
//! limit (a real bomb), and mixing compressed and uncompressed messages.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::proto::deflate::DeflateOptions;
use ws::ErrorKind;

fn echo_server(opts: Option<DeflateOptions>, limit: u64) -> (String, thread::JoinHandle<Option<ErrorKind>>) {
    let mut up = Upgrader::default();
    up.conn.compression = opts;
    up.conn.read_limit = limit;
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let url = format!("ws://{}/", l.local_addr());
    let h = thread::spawn(move || {
        let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).unwrap();
        loop {
            let (kind, data) = match c.read_message() {
                Ok(m) => (m.kind(), m.data().to_vec()),
                Err(e) => return Some(e.kind()),
            };
            if c.write_message(kind, &data).is_err() {
                return None;
            }
        }
    });
    (url, h)
}

fn json_like(i: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut n = i;
    while v.len() < len {
        v.extend_from_slice(
            format!("{{\"id\":{n},\"user\":\"player{}\",\"pos\":[{},{}]}},", n % 13, n % 97, n % 89).as_bytes(),
        );
        n += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn negotiated_echo_with_context_takeover_for_each_window_size() {
    for server_bits in [9u8, 10, 12, 15] {
        for client_bits in [9u8, 11, 15] {
            for nct in [false, true] {
                let sopts = DeflateOptions { server_max_window_bits: server_bits, ..Default::default() };
                let (url, h) = echo_server(Some(sopts), 0);
                let copts = DeflateOptions {
                    client_max_window_bits: client_bits,
                    client_no_context_takeover: nct,
                    server_no_context_takeover: nct,
                    ..Default::default()
                };
                let mut d = Dialer::default();
                d.conn.compression = Some(copts);
                let (c, resp) = d.dial(&url, &[]).unwrap();
                assert!(c.compression_negotiated());
                let ext = String::from_utf8_lossy(resp.header("Sec-WebSocket-Extensions").unwrap()).to_string();
                assert!(ext.starts_with("permessage-deflate"), "{ext}");
                for i in 0..60 {
                    let msg = json_like(i * 7, 200 + (i * 331) % 5000);
                    c.write_message(MessageType::Text, &msg).unwrap();
                    let m = c.read_message().unwrap();
                    assert_eq!(m.kind(), MessageType::Text);
                    assert!(m.data() == &msg[..], "bits {server_bits}/{client_bits} nct {nct} message {i}");
                }
                c.close();
                h.join().unwrap();
            }
        }
    }
}

#[test]
fn compression_off_on_one_side_means_plain_messages() {
    let (url, h) = echo_server(None, 0);
    let mut d = Dialer::default();
    d.conn.compression = Some(DeflateOptions::default());
    let (c, _) = d.dial(&url, &[]).unwrap();
    assert!(!c.compression_negotiated());
    c.write_message(MessageType::Binary, &[1, 2, 3]).unwrap();
    assert_eq!(c.read_message().unwrap().data(), &[1, 2, 3]);
    c.close();
    h.join().unwrap();

    let (url, h) = echo_server(Some(DeflateOptions::default()), 0);
    let (c, _) = Dialer::default().dial(&url, &[]).unwrap();
    assert!(!c.compression_negotiated());
    c.write_message(MessageType::Binary, &[4, 5]).unwrap();
    assert_eq!(c.read_message().unwrap().data(), &[4, 5]);
    c.close();
    h.join().unwrap();
}

#[test]
fn streaming_compressed_messages_and_toggling() {
    let (url, h) = echo_server(Some(DeflateOptions::default()), 0);
    let mut d = Dialer::default();
    d.conn.compression = Some(DeflateOptions::default());
    let (c, _) = d.dial(&url, &[]).unwrap();
    let big = json_like(1, 3 << 20);
    c.next_writer(MessageType::Text).unwrap();
    for piece in big.chunks(7777) {
        c.writer_write(piece).unwrap();
    }
    c.writer_close().unwrap();
    assert_eq!(c.next_reader().unwrap(), MessageType::Text);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1000];
    loop {
        let n = c.reader_read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == big);
    // Uncompressed messages in between keep both windows in step.
    for (i, on) in [true, false, true, true, false].into_iter().enumerate() {
        c.enable_write_compression(on).unwrap();
        c.set_compression_level(i as i32 * 2 - 1).unwrap();
        let msg = json_like(i, 10_000);
        c.write_message(MessageType::Binary, &msg).unwrap();
        assert!(c.read_message().unwrap().data() == &msg[..]);
    }
    assert_eq!(c.set_compression_level(10).unwrap_err().kind(), ErrorKind::InvalidArgument);
    // A reader that stops half way: the rest is inflated and dropped, and
    // the next message still decodes (the window stayed in step).
    c.write_message(MessageType::Text, &big[..200_000]).unwrap();
    assert_eq!(c.next_reader().unwrap(), MessageType::Text);
    assert!(c.reader_read(&mut buf).unwrap() > 0);
    c.write_message(MessageType::Text, &big[1000..2000]).unwrap();
    assert!(c.read_message().unwrap().data() == &big[1000..2000]);
    c.close();
    h.join().unwrap();
}

/// A raw client that negotiates permessage-deflate and sends one
/// compressed frame of our choosing.
fn send_raw_compressed(addr: &str, payload: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).contains("permessage-deflate"));
    let key = [9u8, 8, 7, 6];
    let mut f = vec![0xC2u8]; // FIN + RSV1 + binary
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&f).unwrap();
    s
}

fn close_code(s: &mut TcpStream) -> Option<u16> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    (all.len() >= 4 && all[0] & 0x0F == 8).then(|| u16::from_be_bytes([all[2], all[3]]))
}

#[test]
fn a_decompression_bomb_stops_at_the_read_limit() {
    // 100 MiB of zeros deflated is about 100 KB on the wire.
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        z.write_all(&zeros).unwrap();
    }
    let mut bomb = z.finish().unwrap();
    assert!(bomb.len() < 200_000, "bomb is {} bytes", bomb.len());
    // Sent as one message: the sync-flush tail is optional for a final block.
    bomb.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    bomb.truncate(bomb.len() - 4);
    let (url, h) = echo_server(Some(DeflateOptions::default()), 4 << 20);
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let started = Instant::now();
    let mut s = send_raw_compressed(&addr, &bomb);
    assert_eq!(close_code(&mut s), Some(1009));
    assert_eq!(h.join().unwrap(), Some(ErrorKind::ReadLimit));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn garbage_compressed_data_is_close_1007() {
    let (url, h) = echo_server(Some(DeflateOptions::default()), 0);
    let addr = url.trim_start_matches("ws://").trim_end_matches('/').to_string();
    let mut s = send_raw_compressed(&addr, &[0xff; 64]);
    assert_eq!(close_code(&mut s), Some(1007));
    assert_eq!(h.join().unwrap(), Some(ErrorKind::InvalidData));
}

#[test]
fn prepared_message_is_compressed_once_per_setting_and_interleaves_with_context_takeover() {
    let msg = json_like(3, 50_000);
    let pm = ws::api::PreparedMessage::new(MessageType::Text, &msg).unwrap();
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for level in [1, 1, 1, 6] {
        let (url, h) = echo_server(Some(DeflateOptions::default()), 0);
        let mut d = Dialer::default();
        d.conn.compression = Some(DeflateOptions::default());
        d.conn.compression_level = level;
        let (c, _) = d.dial(&url, &[]).unwrap();
        clients.push(c);
        servers.push(h);
    }
    // Mixed with ordinary compressed messages (context takeover) on each
    // connection: every echo must decode.
    for c in &clients {
        c.write_message(MessageType::Text, &msg[..10_000]).unwrap();
        c.write_prepared(&pm).unwrap();
        c.write_message(MessageType::Text, &msg[..10_000]).unwrap();
        c.write_prepared(&pm).unwrap();
        assert!(c.read_message().unwrap().data() == &msg[..10_000]);
        assert!(c.read_message().unwrap().data() == &msg[..]);
        assert!(c.read_message().unwrap().data() == &msg[..10_000]);
        assert!(c.read_message().unwrap().data() == &msg[..]);
    }
    // Two distinct settings (level 1 and level 6), computed once each.
    assert_eq!(pm.compressed_variants(), 2);
    for c in &clients {
        c.close();
    }
    for h in servers {
        h.join().unwrap();
    }
}
