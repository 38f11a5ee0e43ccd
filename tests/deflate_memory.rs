//! Memory per idle compressing connection on the event loop, per memory
//! mode, with allocation counters: the bytes the loop thread holds (allocated
//! minus freed on that thread) after a batch of connections each echoed one
//! compressed message and went idle. Two batches are measured and only the
//! difference is divided by the batch size, so the loop's fixed costs (its
//! read buffer, the thread's pool of zlib states) cancel; the buffers idle
//! in the loop's pool are subtracted (see `settled`).
//!
//! Bounds (README, "Compression"): ≤ 16 KiB in the default (pooled, 12-bit
//! windows, context takeover) and ≤ 2 KiB in shared mode, the whole
//! connection included. Before the pooled modes a compressing connection
//! held ~340 KB from the handshake on.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopRemote};
use ws::api::{Conn, Dialer, MessageType, Upgrader};
use ws::proto::deflate::{DeflateMemory, DeflateOptions};

struct LoopThreadBytes;

/// Bytes allocated minus bytes freed on the loop thread.
static LOOP_BYTES: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn note(delta: i64) {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        LOOP_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to `System` unchanged; counting does not
// touch the memory.
unsafe impl GlobalAlloc for LoopThreadBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64);
        // SAFETY: forwarded verbatim.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64));
        // SAFETY: forwarded verbatim.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64);
        // SAFETY: forwarded verbatim.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LoopThreadBytes = LoopThreadBytes;

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        conn.send(kind, data).expect("echo send");
    }
}

const BATCH: usize = 100;

fn json_like(seed: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut n = seed;
    while v.len() < len {
        v.extend_from_slice(
            format!(
                "{{\"id\":{n},\"user\":\"player{}\",\"pos\":[{},{}],\"state\":\"online\"}},",
                n % 13,
                n % 97,
                n % 89
            )
            .as_bytes(),
        );
        n = n.wrapping_mul(31).wrapping_add(7) % 100_000;
    }
    v.truncate(len);
    v
}

/// Opens `BATCH` compressing connections, echoes one message of `size`
/// bytes on each when `size > 0`, and returns them (kept open, idle).
fn open_batch(addr: SocketAddr, opts: DeflateOptions, size: usize) -> Vec<Conn> {
    let mut d = Dialer::default();
    d.conn.compression = Some(opts);
    (0..BATCH)
        .map(|i| {
            let (c, _) = d.dial(&format!("ws://{addr}/"), &[]).map_err(|e| e.error).unwrap();
            assert!(c.compression_negotiated());
            if size > 0 {
                let msg = json_like(i, size);
                c.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
                c.write_message(MessageType::Text, &msg).unwrap();
                assert!(c.read_message().unwrap().data() == &msg[..]);
            }
            c
        })
        .collect()
}

/// The loop thread's held bytes once the sweep (every 50 ms) returned idle
/// buffers, less the buffers idle in its pool: how many of those a batch
/// leaves depends on how many connections were mid-message at once (timing),
/// and they are the loop's bounded fixed cost, not the connections'.
fn settled(remote: &LoopRemote) -> i64 {
    thread::sleep(Duration::from_millis(300));
    LOOP_BYTES.load(Ordering::Relaxed) - remote.pooled_buffer_bytes() as i64
}

/// Bytes per idle connection for server options `opts`, after one message
/// of `size` bytes each (0: none).
fn per_connection(opts: DeflateOptions, size: usize) -> i64 {
    let (tx, rx) = mpsc::channel::<(SocketAddr, LoopRemote)>();
    let lt = thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        let mut el = EventLoop::new().unwrap();
        let remote = el.remote();
        let mut up = Upgrader::default();
        up.conn.compression = Some(opts);
        let addr = remote.listen("127.0.0.1:0", &up, Arc::new(Echo)).unwrap();
        tx.send((addr, remote)).unwrap();
        el.run().unwrap();
        COUNTED.with(|c| c.set(false));
    });
    let (addr, remote) = rx.recv().unwrap();
    // The client side compresses with context takeover too, so the server's
    // decompressor keeps the client's window.
    let client = DeflateOptions { memory: DeflateMemory::Pooled, ..opts };
    let first = open_batch(addr, client, size);
    let m1 = settled(&remote);
    let second = open_batch(addr, client, size);
    let m2 = settled(&remote);
    drop((first, second));
    remote.stop();
    lt.join().unwrap();
    (m2 - m1) / BATCH as i64
}

#[test]
fn idle_compressing_connections_stay_within_their_bounds() {
    let mut report = Vec::new();
    for (name, opts, bound) in
        [("pooled (default)", DeflateOptions::default(), 16 * 1024), ("shared", DeflateOptions::shared(), 2 * 1024)]
    {
        for size in [0usize, 1024, 16 * 1024] {
            let got = per_connection(opts, size);
            report.push(format!("{name} after a {size}-byte message: {got} bytes"));
            assert!(
                got <= bound,
                "{name}: {got} bytes per idle connection after a {size}-byte message > {bound}\n{report:?}"
            );
        }
    }
    // Dedicated keeps its zlib states: the cost the pooled modes avoid
    // (measured here so the README's table stays honest).
    let dedicated = per_connection(DeflateOptions::full_window(), 1024);
    report.push(format!("dedicated after a 1024-byte message: {dedicated} bytes"));
    assert!(dedicated > 128 * 1024, "{report:?}");
    eprintln!("{}", report.join("\n"));
}
