//! The event loop allocates nothing per message in steady state (DESIGN:
//! buffers are reused). Counted with a global allocator that counts only on
//! the loop's thread, so the blocking client in the test does not matter.
//! Regression test: `EventLoop::poll` collected its readiness events into a
//! fresh `Vec` every iteration (one allocation per iteration), and the
//! buffer pool took back empty, capacity-less outboxes and handed them out
//! as send buffers (allocation and regrowth on the send path).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler};
use ws::api::{Dialer, MessageType, Upgrader};

struct LoopThreadCounting;

static LOOP_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        LOOP_ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to `System` unchanged; counting does not
// touch the memory.
unsafe impl GlobalAlloc for LoopThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded verbatim.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: forwarded verbatim.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LoopThreadCounting = LoopThreadCounting;

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        conn.send(kind, data).expect("echo send");
    }
}

#[test]
fn loop_echo_allocates_nothing_per_message_in_steady_state() {
    let (tx, rx) = mpsc::channel::<(SocketAddr, ws::api::event_loop::LoopRemote)>();
    let lt = thread::spawn(move || {
        let mut el = EventLoop::new().unwrap();
        let remote = el.remote();
        let addr = remote.listen("127.0.0.1:0", &Upgrader::default(), Arc::new(Echo)).unwrap();
        tx.send((addr, remote)).unwrap();
        COUNTED.with(|c| c.set(true));
        el.run().unwrap();
        COUNTED.with(|c| c.set(false));
    });
    let (addr, remote) = rx.recv().unwrap();
    let c = Dialer::default().dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap().0;
    c.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)));
    let cases = [(16usize, 1usize), (1024, 1), (16, 16), (1024, 16)];
    let round = |len: usize, depth: usize, n: usize| {
        let data = vec![7u8; len];
        for _ in 0..n {
            for _ in 0..depth {
                c.write_message(MessageType::Binary, &data).unwrap();
            }
            for _ in 0..depth {
                assert_eq!(c.read_message().unwrap().data(), &data[..]);
            }
        }
    };
    // Warm-up of every case first: the pool, the flush list, the event list.
    for (len, depth) in cases {
        round(len, depth, 200);
    }
    let mut results = Vec::new();
    for (len, depth) in cases {
        let before = LOOP_ALLOCS.load(Ordering::Relaxed);
        round(len, depth, 2000);
        results.push((len, depth, LOOP_ALLOCS.load(Ordering::Relaxed) - before));
    }
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    remote.stop();
    lt.join().unwrap();
    // Before the fix: about one allocation per round trip at one in flight
    // and one per three messages pipelined (some 25,000 here). A one-off
    // growth (the pool's second buffer the first time a message spans two
    // reads while the send queue holds one) may still land in a measured
    // window; nothing may scale with the message count.
    let total: u64 = results.iter().map(|r| r.2).sum();
    assert!(total <= 2, "allocations on the loop thread per 2000 rounds of (size, depth): {results:?}");
}
