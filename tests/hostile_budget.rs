//! The memory budget against decompression amplification (issue 10,
//! defect 4): 100 connections each send the first fragment of a
//! compressed message (65 KB that inflate to 63 MiB) and never finish it.
//! Without a budget that is 6.3 GiB of inflated data; with a 256 MiB
//! budget both servers must hold at most the budget + 10 %, serve a fresh
//! client within 1 s meanwhile, and close the starved connections with
//! 1009 once their budget wait (2 s here); memory
//! freed by those closes lets others go on, which are closed in turn
//! once starved that long again is over.
//!
//! Each case runs in a child process (this test binary again, `--exact`)
//! so the process-wide budget and the RSS it measures are its own.

#[path = "support/wire.rs"]
mod wire;

#[path = "support/child_test.rs"]
mod child_test;
#[path = "support/echo.rs"]
mod echo;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::budget::MemoryBudget;
use ws::api::event_loop::{EventLoop, LoopRemote};
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::proto::deflate::DeflateOptions;

use echo::Echo;

const CHILD_ENV: &str = "LIBWS_HOSTILE_BUDGET_CHILD";
const CONNS: usize = 100;
const INFLATED: usize = 63 << 20;
const BUDGET: usize = 256 << 20;
const BUDGET_WAIT: Duration = Duration::from_secs(2);
const SERVED_WITHIN: Duration = Duration::from_secs(1);

/// Runs `body` in a child process: this binary again, only the test `name`.
/// One child at a time (each inflates hundreds of MiB).
fn in_child(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    child_test::run_in_child(name, CHILD_ENV, Duration::from_secs(120));
}

fn upgrader() -> Upgrader {
    let mut up = Upgrader::default();
    up.conn.compression = Some(DeflateOptions::default());
    up.conn.budget_wait = BUDGET_WAIT;
    up
}

/// A server of either kind, stopped when dropped.
struct Server {
    addr: SocketAddr,
    remote: Option<LoopRemote>,
    listener: Option<Arc<Listener>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    fn blocking() -> Server {
        let listener = Arc::new(Listener::bind("127.0.0.1:0", &upgrader()).unwrap());
        let l = listener.clone();
        let thread = thread::spawn(move || {
            while let Ok(c) = l.accept(None) {
                thread::spawn(move || {
                    while let Ok(m) = c.read_message() {
                        let (kind, data) = (m.kind(), m.data().to_vec());
                        drop(m);
                        if c.write_message(kind, &data).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Server { addr: listener.local_addr(), remote: None, listener: Some(listener), thread: Some(thread) }
    }

    fn event_loop() -> Server {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mut el = EventLoop::new().unwrap();
            let remote = el.remote();
            let addr = remote.listen("127.0.0.1:0", &upgrader(), Arc::new(Echo)).unwrap();
            tx.send((remote, addr)).unwrap();
            el.run().unwrap();
        });
        let (remote, addr) = rx.recv().unwrap();
        Server { addr, remote: Some(remote), listener: None, thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(r) = &self.remote {
            r.stop();
        }
        if let Some(l) = &self.listener {
            l.shutdown();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// This process's resident memory in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// A fresh client dials, and a message goes there and back, within
/// [`SERVED_WITHIN`].
fn assert_fresh_client_served(addr: SocketAddr, what: &str) {
    let t0 = Instant::now();
    let d = Dialer { handshake_timeout: Some(Duration::from_secs(5)), ..Default::default() };
    let (c, _) = d.dial(&format!("ws://{addr}/"), &[]).unwrap_or_else(|e| panic!("{what}: dial: {:?}", e.error));
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(5)));
    c.write_message(MessageType::Text, b"fresh").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"fresh", "{what}");
    let took = t0.elapsed();
    assert!(took < SERVED_WITHIN, "{what}: a fresh client took {took:?}");
    eprintln!("{what}: fresh client served in {:.1} ms", took.as_secs_f64() * 1e3);
}

fn amplification(server: Server, what: &str) {
    let budget = MemoryBudget::process();
    budget.set_limit(BUDGET);
    // The first fragment of a binary message (RSV1, no FIN): all of the
    // compressed data, and the message never ends.
    let z = wire::deflate(&vec![0u8; INFLATED]);
    let fragment = wire::frame(0x42, &z);
    eprintln!("{what}: {CONNS} connections x {} KB compressed -> {} MiB inflated", z.len() / 1000, INFLATED >> 20);
    let base_rss = rss();
    // What the server holds (the budget's count) and the RSS growth,
    // sampled from the first connection to the last close.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // RSS is sampled until the first close: after it, memory the closed
    // connections gave back stays in the allocator's free lists (counted
    // by RSS, not held by anyone), so only the budget's count is honest.
    let first_close = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let first_close = first_close.clone();
        thread::spawn(move || {
            let (mut used, mut grown) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                used = budget.used().max(used);
                if !first_close.load(std::sync::atomic::Ordering::Relaxed) {
                    grown = rss().saturating_sub(base_rss).max(grown);
                }
                thread::sleep(Duration::from_millis(2));
            }
            (used, grown)
        })
    };
    let t0 = Instant::now();
    let mut clients: Vec<TcpStream> = (0..CONNS)
        .map(|_| {
            let mut s = wire::handshake(server.addr, true);
            s.write_all(&fragment).unwrap();
            s
        })
        .collect();
    eprintln!("{what}: {CONNS} connections sent their fragment in {:.2} s", t0.elapsed().as_secs_f64());
    // The budget fills; a fresh client is served meanwhile.
    while budget.used() < BUDGET * 3 / 4 && t0.elapsed() < BUDGET_WAIT * 2 {
        thread::sleep(Duration::from_millis(5));
    }
    assert!(budget.used() >= BUDGET * 3 / 4, "{what}: the budget did not fill ({} bytes)", budget.used());
    eprintln!("{what}: the budget filled in {:.2} s ({} holders)", t0.elapsed().as_secs_f64(), budget.holders());
    assert_fresh_client_served(server.addr, what);
    // Every starved connection is closed with 1009 once its wait is over.
    // A few may have been given memory for their whole fragment (at most
    // budget / inflated size of them): they are not starved, they wait
    // for the rest of their message. Memory freed by closes lets others
    // go on until they are refused in turn, so the closes come in waves;
    // the end state is reached when every connection left holds its whole
    // fragment inflated. Each client's close is read on its own thread.
    let (tx, rx) = mpsc::channel();
    for (i, mut s) in clients.drain(..).enumerate() {
        let tx = tx.clone();
        thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
            let _ = tx.send((i, wire::close_code(&mut s), Instant::now()));
            s // kept open until the close is read
        });
    }
    drop(tx);
    let mut codes: Vec<Option<Option<u16>>> = vec![None; CONNS];
    let (mut first_at, mut last_close) = (None, Duration::ZERO);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, code, at)) => {
                first_close.store(true, std::sync::atomic::Ordering::Relaxed);
                first_at.get_or_insert(at);
                last_close = at - t0;
                codes[i] = Some(code);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let left = codes.iter().filter(|c| c.is_none()).count();
        if left == 0 || (left <= BUDGET / INFLATED && budget.used() >= left * INFLATED) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(90), "{what}: {left} connections neither closed nor whole");
    }
    let first = first_at.map(|f| f - t0).unwrap_or_default();
    assert!(first >= BUDGET_WAIT, "{what}: the first close came after {first:?}, before the budget wait");
    let codes: Vec<Option<u16>> = codes.into_iter().map(Option::flatten).collect();
    let closed = codes.iter().filter(|c| **c == Some(1009)).count();
    eprintln!(
        "{what}: {closed} of {CONNS} closed with 1009, the last {:.2} s after the first connection",
        last_close.as_secs_f64()
    );
    assert!(codes.iter().all(|c| matches!(c, None | Some(1009))), "{what}: close codes other than 1009: {codes:?}");
    assert!(closed >= CONNS - BUDGET / INFLATED, "{what}: only {closed} starved connections were closed");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak_used, peak_rss) = sampler.join().unwrap();
    eprintln!(
        "{what}: peak held {:.1} MiB (budget {} MiB), peak RSS growth {:.1} MiB before the first close",
        peak_used as f64 / (1 << 20) as f64,
        BUDGET >> 20,
        peak_rss as f64 / (1 << 20) as f64,
    );
    let bound = BUDGET + BUDGET / 10;
    assert!(peak_used <= bound, "{what}: held {peak_used} bytes, over the budget + 10 %");
    assert!(peak_rss <= bound, "{what}: RSS grew by {peak_rss} bytes, over the budget + 10 %");
    // The closed connections' memory is back: only those that were not
    // closed still hold anything.
    let kept = codes.iter().filter(|c| c.is_none()).count();
    let t1 = Instant::now();
    while budget.holders() > kept && t1.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(budget.holders() <= kept, "{what}: {} holders after the closes, {kept} not closed", budget.holders());
    assert_fresh_client_served(server.addr, what);
}

#[test]
fn event_loop_amplification_is_bounded_by_the_budget() {
    in_child("event_loop_amplification_is_bounded_by_the_budget", || amplification(Server::event_loop(), "event loop"));
}

#[test]
fn blocking_amplification_is_bounded_by_the_budget() {
    in_child("blocking_amplification_is_bounded_by_the_budget", || amplification(Server::blocking(), "blocking"));
}
