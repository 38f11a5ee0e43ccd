//! Reconnecting loop clients (`LoopRemote::dial_reconnecting`): a client
//! comes back after its server closes it, after the server goes away and a
//! new one takes its port, and after failed dials with growing delays; it
//! gives up after its retries and on a 4xx refusal; `stop` ends it, also
//! while a dial is in flight (a cancelled dial).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{Backoff, ConnHandle, Handler};
use ws::api::{Dialer, MessageType, Request, Upgrader};

#[path = "support/loop_thread.rs"]
mod loop_thread;
use loop_thread::LoopThread;

/// A server that answers one message with "bye" and closes with 1001, or
/// refuses every handshake with `refuse`.
struct Server {
    refuse: Option<u16>,
    accepted: AtomicUsize,
}

impl Handler for Server {
    fn on_handshake(&self, _req: &Request) -> Result<usize, u16> {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        match self.refuse {
            Some(s) => Err(s),
            None => Ok(0),
        }
    }
    fn on_message(&self, conn: &ConnHandle, _kind: MessageType, _data: &[u8]) {
        let _ = conn.send(MessageType::Text, b"bye");
        let _ = conn.close(1001, b"going away");
    }
}

fn server(lt: &LoopThread, addr: &str, refuse: Option<u16>) -> (SocketAddr, Arc<Server>) {
    let s = Arc::new(Server { refuse, accepted: AtomicUsize::new(0) });
    (lt.remote.listen(addr, &Upgrader::default(), s.clone()).unwrap(), s)
}

/// The client: says "hi" on open; reports every callback on a channel.
struct Client(Mutex<Sender<String>>);

impl Handler for Client {
    fn on_open(&self, conn: &ConnHandle) {
        let _ = conn.send(MessageType::Text, b"hi");
        let _ = self.0.lock().unwrap().send("open".into());
    }
    fn on_message(&self, _conn: &ConnHandle, _kind: MessageType, data: &[u8]) {
        let _ = self.0.lock().unwrap().send(format!("message {}", String::from_utf8_lossy(data)));
    }
    fn on_close(&self, _conn: &ConnHandle, code: u16, _reason: &[u8]) {
        let _ = self.0.lock().unwrap().send(format!("close {code}"));
    }
    fn on_dial_error(&self, _user: usize, _err: &ws::Error, response: Option<&ws::api::Response>) {
        let _ = self.0.lock().unwrap().send(format!("dial error {}", response.map_or(0, |r| r.status())));
    }
    fn on_reconnect(&self, _user: usize, attempt: u32, delay: Duration, _last: Option<&ws::Error>) {
        let _ = self.0.lock().unwrap().send(format!("reconnect {attempt} {}", delay.as_millis()));
    }
}

fn client() -> (Arc<Client>, Receiver<String>) {
    let (tx, rx) = mpsc::channel();
    (Arc::new(Client(Mutex::new(tx))), rx)
}

fn fast(max_retries: Option<u32>) -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        multiplier: 2.0,
        jitter: 0.0,
        max_retries,
    }
}

/// The next `n` events (each within 10 s).
fn next(rx: &Receiver<String>, n: usize) -> Vec<String> {
    (0..n).map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("an event within 10 s")).collect()
}

/// Every event arriving within `for_`.
fn drain(rx: &Receiver<String>, for_: Duration) -> Vec<String> {
    let end = Instant::now() + for_;
    let mut v = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) => v.push(e),
            Err(_) => break,
        }
    }
    v
}

#[test]
fn a_closed_connection_comes_back_and_stop_ends_it() {
    let lt = LoopThread::start();
    let (addr, srv) = server(&lt, "127.0.0.1:0", None);
    let (c, rx) = client();
    let r = lt.remote.dial_reconnecting(&format!("ws://{addr}/"), &Dialer::default(), &[], c, 0, fast(None)).unwrap();
    for round in 0..3 {
        // The attempt counter restarts once a connection opened.
        let ev = next(&rx, 4);
        assert_eq!(ev, ["open", "message bye", "close 1001", "reconnect 1 20"], "round {round}");
    }
    assert!(next(&rx, 1) == ["open"]);
    r.stop();
    // The open connection is closed and no new one opens. (The server may
    // have closed it before the stop arrived, so its close and a reconnect
    // notice may still come; the dial they announced is not made.)
    let ev = drain(&rx, Duration::from_millis(500));
    assert!(ev.iter().all(|e| !e.starts_with("open")), "{ev:?}");
    assert!(r.is_stopped());
    let n = srv.accepted.load(Ordering::SeqCst);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(srv.accepted.load(Ordering::SeqCst), n, "no dial after stop");
}

#[test]
fn failed_dials_back_off_and_give_up_after_the_retries() {
    let lt = LoopThread::start();
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (c, rx) = client();
    let url = format!("ws://127.0.0.1:{port}/");
    let r = lt.remote.dial_reconnecting(&url, &Dialer::default(), &[], c, 0, fast(Some(4))).unwrap();
    let ev = next(&rx, 9);
    assert_eq!(
        ev,
        [
            "dial error 0",
            "reconnect 1 20",
            "dial error 0",
            "reconnect 2 40",
            "dial error 0",
            "reconnect 3 80",
            "dial error 0",
            "reconnect 4 160",
            "dial error 0"
        ]
    );
    assert!(drain(&rx, Duration::from_millis(400)).is_empty());
    assert!(r.is_stopped(), "gave up after 4 retries");
}

#[test]
fn a_new_server_on_the_same_port_is_found_again() {
    let lt = LoopThread::start();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (c, rx) = client();
    let backoff = Backoff { max: Duration::from_millis(100), ..fast(None) };
    let url = format!("ws://127.0.0.1:{port}/");
    let r = lt.remote.dial_reconnecting(&url, &Dialer::default(), &[], c, 0, backoff).unwrap();
    // Nothing there yet: a few failed attempts...
    let ev = next(&rx, 4);
    assert_eq!(ev[0], "dial error 0", "{ev:?}");
    // ...then a server appears (a "network change"), on another loop.
    let other = LoopThread::start();
    let (_addr, _srv) = server(&other, &format!("127.0.0.1:{port}"), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = rx.recv_timeout(Duration::from_secs(10)).expect("an event");
        if e == "open" {
            break;
        }
        assert!(Instant::now() < deadline, "never reconnected");
    }
    r.stop();
}

#[test]
fn a_4xx_refusal_is_not_retried() {
    let lt = LoopThread::start();
    let (addr, srv) = server(&lt, "127.0.0.1:0", Some(403));
    let (c, rx) = client();
    let r = lt.remote.dial_reconnecting(&format!("ws://{addr}/"), &Dialer::default(), &[], c, 0, fast(None)).unwrap();
    assert_eq!(next(&rx, 1), ["dial error 403"]);
    assert!(drain(&rx, Duration::from_millis(300)).is_empty());
    assert!(r.is_stopped());
    assert_eq!(srv.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn a_dial_stopped_in_flight_delivers_nothing() {
    let lt = LoopThread::start();
    // A server that accepts TCP and never answers the handshake: the dial
    // is surely in flight when it is stopped.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", silent.local_addr().unwrap());
    let (c, rx) = client();
    let d = Dialer { handshake_timeout: Some(Duration::from_millis(300)), ..Dialer::default() };
    let r = lt.remote.dial_reconnecting(&url, &d, &[], c, 0, fast(None)).unwrap();
    let (_peer, _) = silent.accept().unwrap();
    r.stop();
    // Its handshake timeout passes: no on_dial_error, no reconnect.
    assert_eq!(drain(&rx, Duration::from_millis(900)), Vec::<String>::new(), "a cancelled dial calls nothing back");
    assert!(r.is_stopped());
}

#[test]
fn bad_settings_and_urls_are_refused_at_once() {
    let lt = LoopThread::start();
    let (c, _rx) = client();
    let bad = Backoff { initial: Duration::ZERO, ..Backoff::default() };
    assert!(lt.remote.dial_reconnecting("ws://127.0.0.1:1/", &Dialer::default(), &[], c.clone(), 0, bad).is_err());
    assert!(lt.remote.dial_reconnecting("http://x/", &Dialer::default(), &[], c, 0, Backoff::default()).is_err());
}
