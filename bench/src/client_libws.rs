//! [`BenchClient`] on libws's C API client: `ws_dial`, then
//! `ws_conn_write_message` / `ws_conn_read_message` on one connection.
//!
//! Blocking calls cannot both wait for "readable" and "writable", so the
//! sliding window is driven in one of two ways:
//!
//! * depth 1, or a window of at most 64 KiB on the wire (e.g. 16 x 1 KiB):
//!   one thread, writing while fewer than `depth` are outstanding, reading
//!   otherwise. Cannot deadlock: depth 1 because the single message is fully
//!   accepted by the server before its echo matters; small windows because
//!   they fit in the loopback socket buffers. Measured faster than two
//!   threads (16 x 16 B: ~96k vs ~82k msgs/s, same-CPU pinning).
//! * larger windows: two threads on the same connection (ws.h: writes from any
//!   thread, one reader). A writer thread sends whenever it holds a credit;
//!   the reader (the calling thread) verifies echoes and returns one credit
//!   per echo, so exactly `depth` messages are outstanding. The reader never
//!   stops reading while echoes are due, so big windows (16 x 64 KiB = 1 MiB,
//!   more than loopback socket buffers hold for sure) cannot deadlock, which
//!   a single thread writing the whole window before reading could.

use std::io;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ws::ffi::conn::{
    ws_conn_close, ws_conn_close_graceful, ws_conn_free, ws_conn_read_message, ws_conn_write_message, ws_msg_type,
    WS_BINARY,
};
use ws::ffi::dialer::ws_dial;
use ws::ffi::status::{WS_ERR_LOCALLY_CLOSED, WS_OK};

use crate::client::{BenchClient, BenchConnection, LoadResult, LoadSpec, Payload};
use crate::libws_ffi::{check, ConnPtr};

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The libws C API client.
pub struct LibwsClient;

impl BenchClient for LibwsClient {
    fn name(&self) -> &str {
        "libws C API (ws_dial; one thread, or writer + reader threads when depth x size > 64 KiB)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        Ok(Box::new(LibwsConn::dial(addr)?))
    }
}

/// One dialed connection; freed on close (or drop).
pub struct LibwsConn {
    conn: ConnPtr,
}

impl LibwsConn {
    pub fn dial(addr: SocketAddr) -> io::Result<Self> {
        let url = std::ffi::CString::new(format!("ws://{addr}/")).map_err(|e| invalid(e.to_string()))?;
        let mut c = ptr::null_mut();
        check("ws_dial", ws_dial(ptr::null(), url.as_ptr(), ptr::null(), 0, &mut c, ptr::null_mut()))?;
        Ok(LibwsConn { conn: ConnPtr(c) })
    }

    /// `n` strict round trips of `payload` (no clock; length checked): the
    /// steady-state loop the allocation check counts. Allocates nothing
    /// itself.
    pub fn round_trips(&mut self, payload: &mut Payload, n: u64) -> io::Result<()> {
        for seq in 0..n {
            let out = payload.for_seq(seq);
            let size = out.len();
            write(self.conn, out)?;
            let got = read(self.conn)?;
            if got.len() != size {
                return Err(invalid(format!("echo #{seq}: length {} != {size}", got.len())));
            }
        }
        Ok(())
    }

    fn run_single(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        let mut out = Payload::new(spec.size);
        let check_payload = Payload::new(spec.size);
        let (mut sent, mut received) = (0u64, 0u64);
        let mut result = LoadResult::default();
        let start = Instant::now();
        let deadline = start + spec.duration;
        let mut sending = true;
        loop {
            while sending && sent - received < spec.depth as u64 {
                write(self.conn, out.for_seq(sent))?;
                sent += 1;
            }
            if received == sent {
                result.total_messages = received;
                return Ok(result);
            }
            let got = read(self.conn)?;
            let last = !sending && received + 1 == sent;
            check_payload.verify(received, got, received == 0 || last)?;
            received += 1;
            if sending && Instant::now() >= deadline {
                sending = false;
                result.round_trips = received;
                result.elapsed = start.elapsed();
            }
        }
    }

    fn run_threaded(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        let sh = Shared {
            ctl: Mutex::new(Ctl { credits: spec.depth as u64, ..Ctl::default() }),
            cv: Condvar::new(),
            sent: AtomicU64::new(0),
        };
        let conn = self.conn;
        std::thread::scope(|s| {
            let writer = std::thread::Builder::new()
                .name("libws-client-writer".into())
                .spawn_scoped(s, || writer(conn, spec.size, &sh))?;
            let res = reader(conn, spec, &sh);
            if res.is_err() {
                // Release a writer waiting for credits or blocked in a write.
                sh.lock().stop = true;
                sh.cv.notify_all();
                let _ = ws_conn_close(conn.0);
            }
            let _ = writer.join();
            let werr = sh.lock().error.take();
            match (res, werr) {
                (_, Some(e)) => Err(e),
                (r, None) => r,
            }
        })
    }
}

/// Sends one binary message.
fn write(conn: ConnPtr, data: &[u8]) -> io::Result<()> {
    check("ws_conn_write_message", ws_conn_write_message(conn.0, WS_BINARY, data.as_ptr(), data.len()))
}

/// Reads one message; the slice is libws's buffer, valid until the next
/// read on `conn` (callers are its only reader and drop it before then).
fn read<'a>(conn: ConnPtr) -> io::Result<&'a [u8]> {
    let mut kind: ws_msg_type = 0;
    let mut data: *const u8 = ptr::null();
    let mut len = 0usize;
    check("ws_conn_read_message", ws_conn_read_message(conn.0, &mut kind, &mut data, &mut len))?;
    if kind != WS_BINARY {
        return Err(invalid(format!("echo of type {kind}, expected binary")));
    }
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: on WS_OK libws points `data` at `len` readable bytes owned by
    // the connection, valid until the next read call on it (ws.h).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

#[derive(Default)]
struct Ctl {
    /// Messages the writer may still send.
    credits: u64,
    /// No more sends (window over, or an error).
    stop: bool,
    /// The writer has exited; `Shared::sent` is final.
    done: bool,
    writer_waiting: bool,
    reader_waiting: bool,
    error: Option<io::Error>,
}

struct Shared {
    ctl: Mutex<Ctl>,
    cv: Condvar,
    /// Messages the writer started (bumped before each write begins, so an
    /// echo is due for each of them).
    sent: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn wait<'a>(&self, g: MutexGuard<'a, Ctl>) -> MutexGuard<'a, Ctl> {
        self.cv.wait_timeout(g, Duration::from_secs(10)).unwrap_or_else(PoisonError::into_inner).0
    }
}

fn writer(conn: ConnPtr, size: usize, sh: &Shared) {
    let mut payload = Payload::new(size);
    let mut seq = 0u64;
    loop {
        {
            let mut g = sh.lock();
            while g.credits == 0 && !g.stop {
                g.writer_waiting = true;
                g = sh.wait(g);
                g.writer_waiting = false;
            }
            if g.stop {
                break;
            }
            g.credits -= 1;
        }
        sh.sent.store(seq + 1, Ordering::Release);
        if let Err(e) = write(conn, payload.for_seq(seq)) {
            let mut g = sh.lock();
            g.error = Some(e);
            g.stop = true;
            drop(g);
            // The echo of this message will not come: wake the reader.
            let _ = ws_conn_close(conn.0);
            break;
        }
        seq += 1;
    }
    let mut g = sh.lock();
    g.done = true;
    if g.reader_waiting {
        sh.cv.notify_all();
    }
}

fn reader(conn: ConnPtr, spec: &LoadSpec, sh: &Shared) -> io::Result<LoadResult> {
    let check_payload = Payload::new(spec.size);
    let mut received = 0u64;
    let mut result = LoadResult::default();
    let start = Instant::now();
    let deadline = start + spec.duration;
    // Window: an echo is always due (the writer holds credits or a message is
    // outstanding), so blocking reads are safe.
    loop {
        let got = read(conn)?;
        check_payload.verify(received, got, received == 0)?;
        received += 1;
        let over = Instant::now() >= deadline;
        let mut g = sh.lock();
        if over {
            g.stop = true;
        } else {
            g.credits += 1;
        }
        if g.writer_waiting {
            sh.cv.notify_all();
        }
        drop(g);
        if over {
            result.round_trips = received;
            result.elapsed = start.elapsed();
            break;
        }
    }
    // Drain: read every echo due; when none is due, wait for the writer to
    // send one more or finish. Drained echoes are compared in full.
    loop {
        if received < sh.sent.load(Ordering::Acquire) {
            match read(conn) {
                Ok(got) => check_payload.verify(received, got, true)?,
                Err(e) => {
                    // A writer error closed the connection: report that one.
                    if sh.lock().error.is_some() {
                        return Ok(result);
                    }
                    return Err(e);
                }
            }
            received += 1;
            continue;
        }
        let mut g = sh.lock();
        if g.done {
            if received == sh.sent.load(Ordering::Acquire) {
                result.total_messages = received;
                return Ok(result);
            }
            continue;
        }
        if received == sh.sent.load(Ordering::Acquire) {
            g.reader_waiting = true;
            g = sh.wait(g);
            g.reader_waiting = false;
        }
    }
}

/// Whole window small enough to sit in loopback socket buffers (Linux
/// default receive buffer: 128 KiB), so writing it all before reading cannot
/// deadlock; one thread is then cheaper than a writer-thread hand-off.
const SINGLE_THREAD_WINDOW: usize = 64 * 1024;

fn single_thread_safe(spec: &LoadSpec) -> bool {
    spec.depth == 1 || spec.depth.saturating_mul(spec.size.saturating_add(14)) <= SINGLE_THREAD_WINDOW
}

impl BenchConnection for LibwsConn {
    fn run(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        if spec.depth == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "depth 0"));
        }
        if single_thread_safe(spec) {
            self.run_single(spec)
        } else {
            self.run_threaded(spec)
        }
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        // Close handshake (waits up to 1 s for the server's close), then free.
        let st = ws_conn_close_graceful(self.conn.0, 1000, ptr::null(), 0, 1000);
        let r = if st == WS_OK || st == WS_ERR_LOCALLY_CLOSED { Ok(()) } else { check("ws_conn_close_graceful", st) };
        drop(self); // ws_conn_free
        r
    }
}

impl Drop for LibwsConn {
    fn drop(&mut self) {
        ws_conn_free(self.conn.0);
    }
}
