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
//!
//! [`LibwsClient`] fields choose permessage-deflate (offered with
//! `ws_dialer_set_compression` and the options of `mode`, see
//! `deflate_modes.rs`; level 1) and JSON-like text
//! payloads instead of the binary pattern. Bytes at the socket are read
//! from TCP_INFO before and after each run (`LoadResult::wire_*`).

use std::io;
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ws::ffi::compression::ws_conn_compression_negotiated;
use ws::ffi::conn::{
    ws_conn_close, ws_conn_close_graceful, ws_conn_fd, ws_conn_free, ws_conn_read_message, ws_conn_write_message,
    ws_msg_type, WS_BINARY, WS_TEXT,
};
use ws::ffi::dialer::{ws_dial, ws_dialer_free, ws_dialer_new, ws_dialer_set_compression};
use ws::ffi::status::{WS_ERR_LOCALLY_CLOSED, WS_OK};

use crate::client::{BenchClient, BenchConnection, LoadResult, LoadSpec, Payload};
use crate::libws_ffi::{check, ConnPtr};

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The libws C API client.
#[derive(Clone, Copy, Debug, Default)]
pub struct LibwsClient {
    /// Offer permessage-deflate (default options) and require it.
    pub compress: bool,
    /// Send JSON-like text messages ([`Payload::json`]) instead of binary.
    pub json: bool,
    /// With `compress`: offer what a server in this mode accepts.
    pub mode: crate::deflate_modes::DeflateMode,
}

impl BenchClient for LibwsClient {
    fn name(&self) -> &str {
        match (self.compress, self.json) {
            (false, false) => {
                "libws C API (ws_dial; one thread, or writer + reader threads when depth x size > 64 KiB)"
            }
            (false, true) => "libws C API, JSON-like text, no compression",
            (true, _) => "libws C API with permessage-deflate (the server mode's windows, level 1)",
        }
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        Ok(Box::new(LibwsConn::dial_with(addr, *self)?))
    }
}

/// One dialed connection; freed on close (or drop).
pub struct LibwsConn {
    conn: ConnPtr,
    json: bool,
}

impl LibwsConn {
    pub fn dial(addr: SocketAddr) -> io::Result<Self> {
        Self::dial_with(addr, LibwsClient::default())
    }

    pub fn dial_with(addr: SocketAddr, cfg: LibwsClient) -> io::Result<Self> {
        let url = std::ffi::CString::new(format!("ws://{addr}/")).map_err(|e| invalid(e.to_string()))?;
        let mut c = ptr::null_mut();
        if cfg.compress {
            let d = ws_dialer_new();
            if d.is_null() {
                return Err(io::Error::other("ws_dialer_new failed"));
            }
            let opts = cfg.mode.client_options();
            let r = check("ws_dialer_set_compression", ws_dialer_set_compression(d, &opts))
                .and_then(|()| check("ws_dial", ws_dial(d, url.as_ptr(), ptr::null(), 0, &mut c, ptr::null_mut())));
            ws_dialer_free(d);
            r?;
            if !ws_conn_compression_negotiated(c) {
                ws_conn_free(c);
                return Err(invalid("the server did not accept permessage-deflate".into()));
            }
        } else {
            check("ws_dial", ws_dial(ptr::null(), url.as_ptr(), ptr::null(), 0, &mut c, ptr::null_mut()))?;
        }
        Ok(LibwsConn { conn: ConnPtr(c), json: cfg.json })
    }

    fn payload(&self, size: usize) -> io::Result<Payload> {
        if !self.json {
            return Ok(Payload::new(size));
        }
        if size < crate::json::MIN_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("JSON payloads need at least {} bytes", crate::json::MIN_SIZE),
            ));
        }
        Ok(Payload::json(size))
    }

    /// Bytes sent (and acknowledged) and received by this socket so far.
    fn wire_bytes(&self) -> io::Result<(u64, u64)> {
        tcp_bytes(ws_conn_fd(self.conn.0))
    }

    /// `n` strict round trips of `payload` (no clock; length checked): the
    /// steady-state loop the allocation check counts. Allocates nothing
    /// itself.
    pub fn round_trips(&mut self, payload: &mut Payload, n: u64) -> io::Result<()> {
        let kind = kind_of(payload);
        for seq in 0..n {
            let out = payload.for_seq(seq);
            let size = out.len();
            write(self.conn, out, kind)?;
            let got = read(self.conn, kind)?;
            if got.len() != size {
                return Err(invalid(format!("echo #{seq}: length {} != {size}", got.len())));
            }
        }
        Ok(())
    }

    fn run_single(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        let mut out = self.payload(spec.size)?;
        let check_payload = out.clone();
        let kind = kind_of(&out);
        let (mut sent, mut received) = (0u64, 0u64);
        let mut result = LoadResult::default();
        let start = Instant::now();
        let deadline = start + spec.duration;
        let mut sending = true;
        loop {
            while sending && sent - received < spec.depth as u64 {
                write(self.conn, out.for_seq(sent), kind)?;
                sent += 1;
            }
            if received == sent {
                result.total_messages = received;
                return Ok(result);
            }
            let got = read(self.conn, kind)?;
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
        let payload = self.payload(spec.size)?;
        let check_payload = payload.clone();
        std::thread::scope(|s| {
            let writer = std::thread::Builder::new()
                .name("libws-client-writer".into())
                .spawn_scoped(s, || writer(conn, payload, &sh))?;
            let res = reader(conn, spec, check_payload, &sh);
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

/// Text for JSON payloads, binary for the pattern.
fn kind_of(p: &Payload) -> ws_msg_type {
    if p.is_text() {
        WS_TEXT
    } else {
        WS_BINARY
    }
}

/// Sends one message of type `kind`.
fn write(conn: ConnPtr, data: &[u8], kind: ws_msg_type) -> io::Result<()> {
    check("ws_conn_write_message", ws_conn_write_message(conn.0, kind, data.as_ptr(), data.len()))
}

/// Reads one message, which must be of type `want`; the slice is libws's
/// buffer, valid until the next read on `conn` (callers are its only reader
/// and drop it before then).
fn read<'a>(conn: ConnPtr, want: ws_msg_type) -> io::Result<&'a [u8]> {
    let mut kind: ws_msg_type = 0;
    let mut data: *const u8 = ptr::null();
    let mut len = 0usize;
    check("ws_conn_read_message", ws_conn_read_message(conn.0, &mut kind, &mut data, &mut len))?;
    if kind != want {
        return Err(invalid(format!("echo of type {kind}, expected {want}")));
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

fn writer(conn: ConnPtr, mut payload: Payload, sh: &Shared) {
    let kind = kind_of(&payload);
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
        if let Err(e) = write(conn, payload.for_seq(seq), kind) {
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

fn reader(conn: ConnPtr, spec: &LoadSpec, check_payload: Payload, sh: &Shared) -> io::Result<LoadResult> {
    let kind = kind_of(&check_payload);
    let mut received = 0u64;
    let mut result = LoadResult::default();
    let start = Instant::now();
    let deadline = start + spec.duration;
    // Window: an echo is always due (the writer holds credits or a message is
    // outstanding), so blocking reads are safe.
    loop {
        let got = read(conn, kind)?;
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
            match read(conn, kind) {
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
        let before = self.wire_bytes()?;
        let mut r = if single_thread_safe(spec) { self.run_single(spec) } else { self.run_threaded(spec) }?;
        let after = self.wire_bytes()?;
        r.wire_sent = after.0 - before.0;
        r.wire_received = after.1 - before.1;
        Ok(r)
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

/// (bytes acknowledged by the peer, bytes received) on socket `fd`, from
/// Linux's TCP_INFO (`tcpi_bytes_acked`, `tcpi_bytes_received`: payload
/// bytes at the TCP level, so WebSocket frame headers are included).
fn tcp_bytes(fd: i32) -> io::Result<(u64, u64)> {
    if fd < 0 {
        return Err(io::Error::other("ws_conn_fd: no descriptor"));
    }
    // SAFETY: tcp_info is plain old data; all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is the connection's open socket (the connection is live
    // for the duration of the call); `info`/`len` describe a writable buffer
    // of the right size.
    let rc = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if (len as usize) < std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received) + 8 {
        return Err(io::Error::other("TCP_INFO without byte counters (kernel older than 4.2)"));
    }
    Ok((info.tcpi_bytes_acked, info.tcpi_bytes_received))
}

/// `conns` libws C API connections driven at once, one thread each (the
/// compressing multi-connection client of `--compress --conns N`); msgs/s
/// and wire bytes are totals over all of them.
pub struct MultiLibwsClient {
    pub client: LibwsClient,
    pub conns: usize,
}

impl BenchClient for MultiLibwsClient {
    fn name(&self) -> &str {
        "libws C API, one thread per connection"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        let conns = (0..self.conns).map(|_| LibwsConn::dial_with(addr, self.client)).collect::<io::Result<_>>()?;
        Ok(Box::new(MultiLibwsConn { conns }))
    }
}

struct MultiLibwsConn {
    conns: Vec<LibwsConn>,
}

impl BenchConnection for MultiLibwsConn {
    fn run(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        let results: Vec<io::Result<LoadResult>> = std::thread::scope(|s| {
            let running: Vec<_> = self.conns.iter_mut().map(|c| s.spawn(move || c.run(spec))).collect();
            running.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("client panicked")))).collect()
        });
        let mut total = LoadResult::default();
        for r in results {
            let r = r?;
            total.round_trips += r.round_trips;
            total.total_messages += r.total_messages;
            total.wire_sent += r.wire_sent;
            total.wire_received += r.wire_received;
            total.elapsed = total.elapsed.max(r.elapsed);
        }
        Ok(total)
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        for c in self.conns {
            Box::new(c).close()?;
        }
        Ok(())
    }
}
