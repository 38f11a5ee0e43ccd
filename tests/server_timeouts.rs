//! Default read (idle) and write timeouts on blocking server connections
//! (issue 10): a server's connections stop waiting for a silent peer, or
//! for a peer that takes no bytes, without the application setting a
//! deadline before every call; clients have none by default.

#[path = "support/wire.rs"]
mod wire;

use std::io::Write;
use std::time::{Duration, Instant};

use ws::api::config::{SERVER_READ_TIMEOUT, SERVER_WRITE_TIMEOUT};
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::ErrorKind;

const SHORT: Duration = Duration::from_millis(300);

/// A raw client and the server's side of its connection.
fn connect(l: &Listener) -> (std::net::TcpStream, ws::api::Conn) {
    std::thread::scope(|s| {
        let accepted = s.spawn(|| l.accept(Some(Instant::now() + Duration::from_secs(5))).unwrap());
        let client = wire::handshake(l.local_addr(), false);
        (client, accepted.join().unwrap())
    })
}

fn listener(read: Option<Duration>, write: Option<Duration>) -> Listener {
    let mut up = Upgrader::default();
    up.conn.read_timeout = read;
    up.conn.write_timeout = write;
    Listener::bind("127.0.0.1:0", &up).unwrap()
}

#[test]
fn servers_have_read_and_write_timeouts_by_default_and_clients_none() {
    let up = Upgrader::default();
    assert_eq!(up.conn.read_timeout, Some(SERVER_READ_TIMEOUT));
    assert_eq!(up.conn.write_timeout, Some(SERVER_WRITE_TIMEOUT));
    assert_eq!((SERVER_READ_TIMEOUT.as_secs(), SERVER_WRITE_TIMEOUT.as_secs()), (60, 10));
    let d = Dialer::default();
    assert_eq!((d.conn.read_timeout, d.conn.write_timeout), (None, None));
    // And the accepted connection carries them.
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let (_client, c) = connect(&l);
    assert_eq!((c.read_timeout(), c.write_timeout()), (Some(SERVER_READ_TIMEOUT), Some(SERVER_WRITE_TIMEOUT)));
}

/// A silent peer: the read gives up after the read timeout (no deadline
/// set), keeps the connection usable, and a message that comes later is
/// read; a deadline sooner than the timeout still wins.
#[test]
fn a_read_gives_up_on_a_silent_peer_after_the_read_timeout() {
    let l = listener(Some(SHORT), None);
    let (mut client, c) = connect(&l);
    let t0 = Instant::now();
    let e = c.read_message().err().expect("a silent peer times out");
    let took = t0.elapsed();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
    assert!(took >= SHORT && took < SHORT * 5, "gave up after {took:?}");
    // Half a frame, then silence: the timeout keeps what arrived.
    let f = wire::frame(0x81, b"hello");
    client.write_all(&f[..4]).unwrap();
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::Timeout);
    client.write_all(&f[4..]).unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"hello");
    // The deadline, when sooner, ends the wait first.
    c.set_read_deadline(Some(Instant::now() + Duration::from_millis(50)));
    let t1 = Instant::now();
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::Timeout);
    assert!(t1.elapsed() < SHORT, "the deadline did not win: {:?}", t1.elapsed());
    // None: only the deadline.
    c.set_read_timeout(None);
    c.set_read_deadline(Some(Instant::now() + SHORT * 2));
    let t2 = Instant::now();
    assert_eq!(c.read_message().err().unwrap().kind(), ErrorKind::Timeout);
    assert!(t2.elapsed() >= SHORT * 2);
}

/// A peer that never reads: once the socket buffers are full, a write
/// gives up after the write timeout (no deadline set) instead of
/// blocking forever.
#[test]
fn a_write_gives_up_on_a_peer_that_takes_nothing_after_the_write_timeout() {
    let l = listener(None, Some(SHORT));
    let (_client, c) = connect(&l); // the client never reads
    let chunk = vec![0u8; 1 << 20];
    let t0 = Instant::now();
    let err = loop {
        let t = Instant::now();
        match c.write_message(MessageType::Binary, &chunk) {
            Ok(()) => assert!(t0.elapsed() < Duration::from_secs(20), "writes never stalled"),
            Err(e) => break (e, t.elapsed()),
        }
    };
    let (e, took) = err;
    assert!(matches!(e.kind(), ErrorKind::Timeout | ErrorKind::WriteIncomplete), "{e:?}");
    assert!(took >= SHORT && took < SHORT * 10, "the stalled write gave up after {took:?}");
}
