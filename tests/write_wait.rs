//! A writer waiting for another thread's write must come back when the
//! connection is closed meanwhile (regression: it deadlocked on the
//! write-wait mutex it already held, so the call never returned — seen from
//! Python as a server shutdown waiting out its timeout while a handler
//! thread hung in ws_conn_read_message answering a close frame).

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::ErrorKind;

#[test]
fn waiting_writer_returns_when_closed() {
    let l = Listener::bind("127.0.0.1:0", &Upgrader::default()).unwrap();
    let url = format!("ws://{}/", l.local_addr());
    // The client never reads, so a large write fills the socket and blocks.
    let dialer = thread::spawn(move || Dialer::default().dial(&url, &[]).unwrap().0);
    let server = Arc::new(l.accept(Some(Instant::now() + Duration::from_secs(10))).unwrap());
    let client = dialer.join().unwrap();

    let big = server.clone();
    let (tx_big, rx_big) = mpsc::channel();
    thread::spawn(move || {
        let r = big.write_message(MessageType::Binary, &vec![7u8; 64 << 20]);
        let _ = tx_big.send(r.map_err(|e| e.kind()));
    });
    // Wait until the big write holds the write side on the full socket: a
    // probe with a short deadline then times out (sleeping a fixed time
    // instead lost the race on a loaded machine, and the small write went
    // out first). A probe that goes out before the big write starts is
    // harmless: the client never reads.
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        server.set_write_deadline(Some(Instant::now() + Duration::from_millis(20)));
        match server.write_message(MessageType::Text, b"probe").map_err(|e| e.kind()) {
            Err(ErrorKind::Timeout) | Err(ErrorKind::WriteIncomplete) => break,
            Ok(()) => {}
            Err(other) => panic!("probe write failed: {other:?}"),
        }
        assert!(Instant::now() < give_up, "the big write never blocked the write side");
        thread::sleep(Duration::from_millis(10));
    }
    server.set_write_deadline(None);
    let small = server.clone();
    let (tx_small, rx_small) = mpsc::channel();
    thread::spawn(move || {
        let r = small.write_message(MessageType::Text, b"waits for the big one");
        let _ = tx_small.send(r.map_err(|e| e.kind()));
    });
    // Let the small write start waiting for the big one.
    thread::sleep(Duration::from_millis(200));
    assert!(rx_small.try_recv().is_err(), "the small write should be waiting");

    server.close();
    let big_result =
        rx_big.recv_timeout(Duration::from_secs(10)).expect("the blocked write did not return after close");
    assert!(big_result.is_err(), "the 64 MiB write cannot have completed to a client that does not read");
    let small_result = rx_small
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiting write did not return after close (deadlock)");
    assert_eq!(small_result, Err(ErrorKind::LocallyClosed));
    drop(client);
}
