//! Memory of a blocking server connection follows the bytes it received,
//! not the lengths a peer announces, and a large message's buffer is not
//! kept on an idle connection (issue 10, defects 2 and 3). Counted with a
//! global allocator that tracks the live heap bytes of the server's
//! connection thread only.

#[path = "support/wire.rs"]
mod wire;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Listener, Upgrader};

struct ThreadCounting;

static LIVE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call to `System` unchanged; counting does not
// touch the memory.
unsafe impl GlobalAlloc for ThreadCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarded verbatim.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        // SAFETY: forwarded verbatim.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: ThreadCounting = ThreadCounting;

const MIB: i64 = 1 << 20;

/// Waits until the server thread's live heap settles (it is blocked in a
/// read) and returns it.
fn settled() -> i64 {
    let mut last = LIVE.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = LIVE.load(Ordering::Relaxed);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn a_server_connection_holds_what_it_received_not_what_was_announced() {
    let l = Listener::bind("127.0.0.1:0", &Upgrader::default()).unwrap();
    let addr = l.local_addr();
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let c = l.accept(Some(Instant::now() + Duration::from_secs(20))).unwrap();
        COUNTED.with(|f| f.set(true));
        tx.send(()).unwrap();
        // Echo until the client goes away.
        while let Ok(m) = c.read_message() {
            let (k, d) = (m.kind(), m.data().to_vec());
            drop(m);
            if c.write_message(k, &d).is_err() {
                break;
            }
        }
        COUNTED.with(|f| f.set(false));
    });
    let mut s = wire::handshake(addr, false);
    rx.recv().unwrap();
    let base = settled();

    // Defect 3: a 24 MiB message echoed, then idle: its buffer is released.
    let big = vec![7u8; 24 << 20];
    s.write_all(&wire::frame(0x82, &big)).unwrap();
    let (_, echo) = wire::read_frame(&mut s).unwrap();
    assert_eq!(echo.len(), big.len());
    let idle = settled() - base;
    assert!(idle < 2 * MIB, "an idle connection holds {} KiB after a large message", idle / 1024);

    // Defect 2: the header of a 60 MiB frame and one byte of payload.
    s.write_all(&[0x82, 0xFF, 0, 0, 0, 0, 0x03, 0xC0, 0, 0, 0, 0, 0, 0, 0x78]).unwrap();
    let pinned = settled() - base;
    assert!(pinned < 2 * MIB, "1 byte of a 60 MiB frame pins {} KiB", pinned / 1024);
    drop(s);
    server.join().unwrap();
}
