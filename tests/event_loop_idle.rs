//! An idle loop does not wake up: with open connections and nothing to do,
//! `next_timeout` points at the earliest real deadline (keepalive, idle),
//! not at a fixed 50 ms sweep; and a deadline that a change brings closer
//! (keepalive switched on later) is still honoured.

use std::time::{Duration, Instant};

use ws::api::event_loop::{EventLoop, Handler, LoopConfig};
use ws::api::{Dialer, MessageType, Upgrader};

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ws::api::event_loop::ConnHandle, kind: MessageType, data: &[u8]) {
        let _ = conn.send(kind, data);
    }
}

/// Polls `el` for `d` (the loop's own timeouts decide how long each wait is).
fn drive_for(el: &mut EventLoop, d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        el.poll(Some(end.saturating_duration_since(Instant::now()))).unwrap();
    }
}

#[test]
fn idle_connections_leave_the_loop_asleep_until_their_deadline() {
    let mut el = EventLoop::new().unwrap();
    let remote = el.remote();
    let addr = remote.listen("127.0.0.1:0", &Upgrader::default(), std::sync::Arc::new(Echo)).unwrap();
    let url = format!("ws://{addr}/");
    let client = std::thread::spawn(move || Dialer::default().dial(&url, &[]).map_err(|e| e.error).unwrap().0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_finished() {
        assert!(Instant::now() < deadline, "the handshake did not finish");
        el.poll(Some(Duration::from_millis(10))).unwrap();
    }
    let conn = client.join().unwrap();
    conn.write_message(MessageType::Text, b"hi").unwrap();
    drive_for(&mut el, Duration::from_millis(300)); // echo, then the buffers go back
    conn.set_read_deadline(Some(Instant::now() + Duration::from_secs(5)));
    assert_eq!(conn.read_message().unwrap().data(), b"hi");

    // No keepalive, no idle timeout: nothing to wake up for.
    assert_eq!(remote.open_connections(), 1);
    assert_eq!(el.next_timeout(), None, "an idle loop without deadlines must not wake up");

    // Keepalive every 2 s: the loop sleeps until then, not 50 ms.
    let cfg = LoopConfig { ping_interval: Some(Duration::from_secs(2)), ..LoopConfig::default() };
    remote.set_config(cfg).unwrap();
    drive_for(&mut el, Duration::from_millis(200)); // the change is seen, a sweep runs
    let t = el.next_timeout().expect("a keepalive deadline");
    assert!(t > Duration::from_millis(1000) && t <= Duration::from_secs(2), "next wake-up in {t:?}");

    // ... and when it comes, the ping goes out (the client answers it while reading).
    let until = Instant::now() + Duration::from_secs(3);
    let reader = std::thread::spawn(move || {
        conn.set_read_deadline(Some(until));
        let r = conn.read_message().map(|_| ()).map_err(|e| e.kind());
        (conn, r)
    });
    let mut polls = 0;
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        el.poll(Some(end.saturating_duration_since(Instant::now()))).unwrap();
        polls += 1;
    }
    // 2.5 s of 50 ms sweeps would be 50 polls; a handful remain (the
    // ping, its pong, the sweeps around them).
    assert!(polls < 20, "{polls} polls in 2.5 s");
    let (_conn, r) = reader.join().unwrap();
    assert_eq!(r, Err(ws::ErrorKind::Timeout), "the client got a data message instead of only the ping");
}
