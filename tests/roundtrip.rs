//! Echo round trips through the Rust API over loopback: every payload
//! length form, fragmentation through the streaming API, and close codes.

use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::ErrorKind;

fn echo_server() -> (String, thread::JoinHandle<()>) {
    let l = Listener::bind("127.0.0.1:0", &Upgrader::default()).unwrap();
    let url = format!("ws://{}/", l.local_addr());
    let h = thread::spawn(move || {
        let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).unwrap();
        loop {
            let (kind, data) = match c.read_message() {
                Ok(m) => (m.kind(), m.data().to_vec()),
                Err(_) => break,
            };
            if c.write_message(kind, &data).is_err() {
                break;
            }
        }
    });
    (url, h)
}

#[test]
fn echo_every_length_form() {
    let (url, h) = echo_server();
    let (c, resp) = Dialer::default().dial(&url, &[]).unwrap();
    assert_eq!(resp.status(), 101);
    for len in [0usize, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        c.write_message(MessageType::Binary, &data).unwrap();
        let m = c.read_message().unwrap();
        assert_eq!(m.kind(), MessageType::Binary);
        assert_eq!(m.data().len(), len);
        assert!(m.data() == &data[..], "payload of {len} bytes differs");
    }
    c.write_message(MessageType::Text, "héllo".as_bytes()).unwrap();
    let m = c.read_message().unwrap();
    assert_eq!((m.kind(), m.data()), (MessageType::Text, "héllo".as_bytes()));
    drop(m);
    c.close_graceful(1000, b"bye", Duration::from_secs(5)).unwrap();
    h.join().unwrap();
}

#[test]
fn streaming_writer_and_reader() {
    let (url, h) = echo_server();
    let (c, _) = Dialer::default().dial(&url, &[]).unwrap();
    c.next_writer(MessageType::Text).unwrap();
    let mut expect = Vec::new();
    for i in 0..1000 {
        let piece = format!("piece {i} ✓ ");
        c.writer_write(piece.as_bytes()).unwrap();
        expect.extend_from_slice(piece.as_bytes());
    }
    c.writer_close().unwrap();
    assert_eq!(c.next_reader().unwrap(), MessageType::Text);
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        let n = c.reader_read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, expect);
    c.close();
    h.join().unwrap();
}

#[test]
fn read_deadline_times_out_and_connection_stays_usable() {
    let (url, h) = echo_server();
    let (c, _) = Dialer::default().dial(&url, &[]).unwrap();
    c.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)));
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::Timeout);
    c.set_read_deadline(None);
    c.write_message(MessageType::Binary, b"after").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"after");
    c.close();
    h.join().unwrap();
}

#[test]
fn write_buffer_pool_is_shared_and_buffers_return_between_writes() {
    let (url, h) = echo_server();
    let pool = ws::api::BufferPool::new(4096);
    let mut d = Dialer::default();
    d.conn.write_buffer_pool = Some(pool.clone());
    let (a, _) = d.dial(&url, &[]).unwrap();
    for len in [0usize, 10, 4096, 100_000] {
        let data = vec![b'p'; len];
        a.write_message(MessageType::Binary, &data).unwrap();
        assert_eq!(a.read_message().unwrap().data(), &data[..]);
        // Between writes the connection holds no write buffer.
        assert!(pool.idle() >= 1, "buffer returned to the pool after a {len}-byte write");
    }
    a.close();
    h.join().unwrap();
}

#[test]
fn client_read_limit_fails_with_1009() {
    let (url, h) = echo_server();
    let mut d = Dialer::default();
    d.conn.read_limit = 1000;
    let (c, _) = d.dial(&url, &[]).unwrap();
    c.write_message(MessageType::Binary, &[0u8; 1000]).unwrap();
    assert_eq!(c.read_message().unwrap().data().len(), 1000);
    c.write_message(MessageType::Binary, &[0u8; 1001]).unwrap();
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::ReadLimit);
    // The error is permanent, as in gorilla.
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::ReadLimit);
    h.join().unwrap();
}
