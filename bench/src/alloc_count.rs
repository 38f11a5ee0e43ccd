//! A counting global allocator (the bench binary's `#[global_allocator]`)
//! and the `--alloc-check` mode built on it.
//!
//! Every `alloc`, `alloc_zeroed` and `realloc` bumps one relaxed atomic
//! counter, then defers to the system allocator: a few nanoseconds per
//! allocation, nothing on paths that do not allocate. With
//! `LIBWS_BENCH_ALLOC_TRACE=N` set, `--alloc-check` also prints the
//! backtraces of the first N allocations of each measured window (the
//! capture itself is not counted: a per-thread guard skips re-entry).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::client::Payload;
use crate::client_libws::LibwsConn;
use crate::servers;

pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static TRACING: AtomicBool = AtomicBool::new(false);
static TRACE_LEFT: AtomicU64 = AtomicU64::new(0);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

thread_local! {
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}

#[inline]
fn note(size: usize) {
    if TRACING.load(Ordering::Relaxed) {
        trace(size);
    } else {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts and maybe records one allocation; allocations made while
/// recording are neither counted nor recorded.
#[cold]
fn trace(size: usize) {
    // try_with: the thread-local may be gone while a thread exits.
    let reentered = IN_TRACE.try_with(|t| t.replace(true)).unwrap_or(true);
    if reentered {
        return;
    }
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    if TRACE_LEFT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
        let bt = std::backtrace::Backtrace::force_capture();
        let name = std::thread::current().name().unwrap_or("?").to_string();
        let s = format!("allocation of {size} bytes on thread {name}:\n{bt}");
        if let Ok(mut v) = TRACES.lock() {
            v.push(s);
        }
    }
    let _ = IN_TRACE.try_with(|t| t.set(false));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded verbatim; the caller upholds alloc's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above (`ptr` came from System via this allocator).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations (alloc + alloc_zeroed + realloc) in the whole process so far.
pub fn allocations() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

const WARMUP: u64 = 1_000;
const MEASURED: u64 = 20_000;

/// `--alloc-check`: each libws server (blocking, then event loop) + the
/// libws client in this process, 1 message in flight; allocations per round
/// trip (server + client together) after a warm-up. Returns false if a size
/// that fits the default 16 KiB buffers allocated.
pub fn run(sizes: &[usize]) -> io::Result<bool> {
    let trace_n: u64 = std::env::var("LIBWS_BENCH_ALLOC_TRACE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    println!("# allocation check: libws servers (C API) + libws client (C API), in-process, 1 in flight");
    println!(
        "# {WARMUP} warm-up round trips, then {MEASURED} counted; counts alloc + alloc_zeroed + realloc, whole process"
    );
    println!("{:<11} {:<8} {:>12} {:>14}", "server", "size", "allocations", "per round trip");
    let mut ok = true;
    let starts: [(&str, servers::StartFn); 2] =
        [("libws", servers::libws_blocking::start), ("libws-loop", servers::libws_loop::start)];
    for (name, start) in starts {
        let server = start()?;
        for &size in sizes {
            let mut conn = LibwsConn::dial(server.addr())?;
            let mut payload = Payload::new(size);
            conn.round_trips(&mut payload, WARMUP)?;
            if trace_n > 0 {
                TRACE_LEFT.store(trace_n, Ordering::Relaxed);
                TRACING.store(true, Ordering::Relaxed);
            }
            let before = allocations();
            conn.round_trips(&mut payload, MEASURED)?;
            let n = allocations() - before;
            TRACING.store(false, Ordering::Relaxed);
            let per = n as f64 / MEASURED as f64;
            let fits = size + 14 <= 16 * 1024;
            println!(
                "{:<11} {:<8} {:>12} {:>14.2}{}",
                name,
                crate::size_name(size),
                n,
                per,
                if fits { "" } else { "   (larger than the default 16 KiB buffers: informational)" }
            );
            if fits && n != 0 {
                ok = false;
            }
            let traces = std::mem::take(&mut *TRACES.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            for t in traces {
                println!("{t}");
            }
            use crate::client::BenchConnection as _;
            Box::new(conn).close()?;
        }
        server.stop();
    }
    Ok(ok)
}
