//! `--broadcast`: one message to many connections, prepared versus
//! written to each.
//!
//! One libws server through the C API (`ws_listen` with an upgrader that
//! accepts permessage-deflate with the default `ws_compression_options`:
//! context takeover, 12-bit windows, pooled state, level 1) accepts `--clients`
//! connections (default 1,000) on 127.0.0.1. The clients are raw sockets
//! (no libws code): each offers permessage-deflate in its handshake and is
//! drained by one thread over a mio `Poll`, with its own incremental frame
//! parser and its own inflater (flate2, raw deflate, 32 KiB window, context
//! kept across messages).
//!
//! A broadcast is one JSON-like text message ([`crate::json`], a different
//! document and sequence stamp each time) sent by the main thread to every
//! server connection, either
//!
//! * **prepared**: `ws_prepared_message_new`, `ws_conn_write_prepared` on
//!   each connection, `ws_prepared_message_free` (all timed), or
//! * **each**: `ws_conn_write_message` on each connection.
//!
//! Per broadcast two times are taken from the same start: **send** (until
//! the last write call returned: the sender's cost) and **delivered**
//! (until the client thread has inflated and checked the message on every
//! connection). The next broadcast starts only after delivery, so socket
//! buffers never fill and nothing stalls. Both methods run with compression
//! on (`ws_conn_enable_write_compression(conn, true)`) and off (same
//! connections, `false`), in the order deflate/prepared, deflate/each,
//! plain/prepared, plain/each, each preceded by `WARMUP` untimed broadcasts;
//! `--repeat N` repeats that sequence and reports medians, and the ratio
//! each/prepared is taken within each repetition (then the median).
//!
//! Checked: every client's handshake negotiated permessage-deflate (and the
//! server side says so too); every message arrives once on every connection,
//! in order, as a single text message whose inflated bytes equal the
//! message sent (compared in full) and whose length is right; at the end
//! every connection has received exactly the number of broadcasts sent. Any
//! mismatch aborts the run with an error.
//!
//! Placement (`--pin`, default `split` here): the client thread on the first
//! allowed CPU, the server (the sending main thread) on the others, so the
//! clients' inflating does not run inside the sender's timed loop.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use flate2::{Decompress, FlushDecompress};
use mio::{Events, Interest, Poll, Token, Waker};
use ws::ffi::compression::{
    ws_compression_options_default, ws_conn_compression_negotiated, ws_conn_enable_write_compression,
    ws_conn_write_prepared, ws_prepared_message_free, ws_prepared_message_new,
};
use ws::ffi::conn::{ws_conn_close, ws_conn_free, ws_conn_set_write_deadline, ws_conn_write_message, WS_TEXT};
use ws::ffi::server::{
    ws_listen, ws_listener, ws_listener_accept, ws_listener_free, ws_listener_port, ws_upgrader_free, ws_upgrader_new,
    ws_upgrader_set_compression,
};

use crate::affinity::Pin;
use crate::client::{Payload, Rng};
use crate::handshake;
use crate::libws_ffi::{check, ConnPtr};

/// Untimed broadcasts before each timed series.
const WARMUP: usize = 3;
/// Write deadline set on every server connection before each broadcast.
const WRITE_DEADLINE_MS: i64 = 30_000;
/// How long the sender waits for a broadcast to be delivered.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);
const WAKE: Token = Token(usize::MAX);

pub struct Config {
    pub clients: usize,
    pub broadcasts: usize,
    pub sizes: Vec<usize>,
    pub repeat: usize,
    pub pin: Pin,
    pub cpus: Vec<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Prepared,
    Each,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Prepared => "prepared",
            Method::Each => "each",
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Raises the soft RLIMIT_NOFILE to at least `need` (up to the hard limit).
fn raise_nofile(need: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= need {
        return Ok(lim.rlim_cur);
    }
    if lim.rlim_max < need {
        return Err(io::Error::other(format!(
            "RLIMIT_NOFILE hard limit {} is below the {need} descriptors needed",
            lim.rlim_max
        )));
    }
    lim.rlim_cur = need;
    // SAFETY: setrlimit reads one rlimit from the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(need)
}

// ------------------------------------------------------------------ clients

/// Connects and handshakes, offering permessage-deflate; fails unless the
/// server accepted it.
fn connect_client(addr: SocketAddr, rng: &mut Rng) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let key = handshake::new_client_key(rng);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let n = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(h) = handshake::check_server_response(&buf, &key)? {
            break h;
        }
        if buf.len() > 16 * 1024 {
            return Err(invalid("handshake response too large"));
        }
    };
    if n != buf.len() {
        return Err(invalid("data after the handshake response"));
    }
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    let ext = head
        .lines()
        .find_map(|l| l.strip_prefix("sec-websocket-extensions:"))
        .ok_or_else(|| invalid("the server did not accept permessage-deflate"))?;
    if !ext.trim().starts_with("permessage-deflate") {
        return Err(invalid(format!("unexpected extension response {:?}", ext.trim())));
    }
    s.set_read_timeout(None)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Read side of one raw client: an incremental frame parser feeding the
/// inflater, comparing output with the expected message as it comes.
struct Client {
    stream: mio::net::TcpStream,
    inflater: Decompress,
    hdr: [u8; 14],
    hdr_len: usize,
    /// Payload bytes left in the current frame (when `in_frame`).
    left: u64,
    in_frame: bool,
    fin: bool,
    /// A message is open: (compressed, bytes of it checked so far).
    msg: Option<(bool, usize)>,
    /// Messages received whole and verified.
    received: u64,
}

/// What the client thread is checking against.
struct Expect {
    /// Index of the current broadcast (0-based, over the whole program).
    index: u64,
    msg: Arc<Vec<u8>>,
}

/// Scratch and the current expectation, shared by all clients of a thread.
struct Ctx<'a> {
    expect: &'a Expect,
    out: Vec<u8>,
    /// Messages completed during this call.
    completed: usize,
}

impl Client {
    fn feed(&mut self, mut data: &[u8], cx: &mut Ctx<'_>) -> Result<(), String> {
        while !data.is_empty() {
            if !self.in_frame {
                let need = match self.hdr_len {
                    0 | 1 => 2,
                    _ => match self.hdr[1] & 0x7f {
                        126 => 4,
                        127 => 10,
                        _ => 2,
                    },
                };
                let take = (need - self.hdr_len).min(data.len());
                self.hdr[self.hdr_len..self.hdr_len + take].copy_from_slice(&data[..take]);
                self.hdr_len += take;
                data = &data[take..];
                if self.hdr_len < need || (need == 2 && matches!(self.hdr[1] & 0x7f, 126 | 127)) {
                    continue;
                }
                self.start_frame(cx)?;
                if self.left == 0 {
                    self.end_frame(cx)?;
                }
                continue;
            }
            let n = (self.left.min(data.len() as u64)) as usize;
            self.payload(&data[..n], cx)?;
            data = &data[n..];
            self.left -= n as u64;
            if self.left == 0 {
                self.end_frame(cx)?;
            }
        }
        Ok(())
    }

    fn start_frame(&mut self, cx: &mut Ctx<'_>) -> Result<(), String> {
        let (b0, b1) = (self.hdr[0], self.hdr[1]);
        let len = match b1 & 0x7f {
            126 => u16::from_be_bytes([self.hdr[2], self.hdr[3]]) as u64,
            127 => u64::from_be_bytes(self.hdr[2..10].try_into().expect("8 bytes")),
            l => l as u64,
        };
        self.hdr_len = 0;
        if b1 & 0x80 != 0 {
            return Err("server frame is masked".into());
        }
        if b0 & 0x30 != 0 {
            return Err("server frame has RSV2/RSV3 set".into());
        }
        self.fin = b0 & 0x80 != 0;
        let rsv1 = b0 & 0x40 != 0;
        match (b0 & 0x0f, self.msg) {
            (0x1, None) => {
                if self.received != cx.expect.index {
                    return Err(format!(
                        "message #{} arrived during broadcast #{} (lost or duplicated message)",
                        self.received, cx.expect.index
                    ));
                }
                self.msg = Some((rsv1, 0));
            }
            (0x0, Some(_)) if !rsv1 => {}
            (0x2, _) => return Err("binary message, expected text".into()),
            (op, _) => return Err(format!("unexpected frame: opcode {op:#x}, rsv1 {rsv1}, in message {:?}", self.msg)),
        }
        self.in_frame = true;
        self.left = len;
        Ok(())
    }

    fn payload(&mut self, data: &[u8], cx: &mut Ctx<'_>) -> Result<(), String> {
        let Some((compressed, pos)) = self.msg.as_mut() else {
            return Err("payload outside a message".into());
        };
        let expected = &cx.expect.msg[..];
        if !*compressed {
            if *pos + data.len() > expected.len() || expected[*pos..*pos + data.len()] != *data {
                return Err(format!("uncompressed message #{} differs from what was sent", self.received));
            }
            *pos += data.len();
            return Ok(());
        }
        inflate_check(&mut self.inflater, data, &mut cx.out, expected, pos, self.received)
    }

    fn end_frame(&mut self, cx: &mut Ctx<'_>) -> Result<(), String> {
        self.in_frame = false;
        if !self.fin {
            return Ok(());
        }
        let Some((compressed, mut pos)) = self.msg.take() else {
            return Err("end of a message never started".into());
        };
        let expected = &cx.expect.msg[..];
        if compressed {
            // RFC 7692 7.2.2: append the empty stored block's tail.
            inflate_check(&mut self.inflater, &[0, 0, 0xff, 0xff], &mut cx.out, expected, &mut pos, self.received)?;
        }
        if pos != expected.len() {
            return Err(format!("message #{}: {pos} bytes, expected {}", self.received, expected.len()));
        }
        self.received += 1;
        cx.completed += 1;
        Ok(())
    }
}

/// Inflates `input`, checking the output against `expected[*pos..]`.
fn inflate_check(
    d: &mut Decompress,
    mut input: &[u8],
    out: &mut [u8],
    expected: &[u8],
    pos: &mut usize,
    msg: u64,
) -> Result<(), String> {
    loop {
        let (in0, out0) = (d.total_in(), d.total_out());
        d.decompress(input, out, FlushDecompress::Sync).map_err(|e| format!("message #{msg}: inflate: {e}"))?;
        let used = (d.total_in() - in0) as usize;
        let produced = (d.total_out() - out0) as usize;
        if *pos + produced > expected.len() || expected[*pos..*pos + produced] != out[..produced] {
            return Err(format!("message #{msg}: inflated bytes differ from what was sent"));
        }
        *pos += produced;
        input = &input[used..];
        if input.is_empty() && produced < out.len() {
            return Ok(());
        }
        if used == 0 && produced == 0 {
            return Err(format!("message #{msg}: inflate makes no progress"));
        }
    }
}

// ------------------------------------------------------- sender <-> clients

#[derive(Default)]
struct State {
    /// The broadcast clients check against (set by the sender before it
    /// sends; the client thread reads it at each message start).
    expect: Option<Arc<Expect>>,
    /// Index of the last broadcast every client has received.
    delivered: Option<u64>,
    /// Bytes read by all clients so far (frame headers included).
    wire_bytes: u64,
    error: Option<String>,
}

struct Shared {
    st: Mutex<State>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The client thread: reads every socket, verifies, reports delivery.
/// Returns each client's count of verified messages.
fn drain(mut clients: Vec<Client>, mut poll: Poll, sh: &Shared) -> Vec<u64> {
    let fail = |e: String| {
        let mut st = sh.lock();
        st.error.get_or_insert(e);
        sh.cv.notify_all();
    };
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = vec![0u8; 64 * 1024];
    let mut expect: Option<Arc<Expect>> = None;
    let mut done_in_current = 0usize;
    let mut wire = 0u64;
    let n = clients.len();
    'run: while !sh.stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_secs(1))) {
            if e.kind() != io::ErrorKind::Interrupted {
                fail(format!("poll: {e}"));
                break;
            }
        }
        for ev in events.iter() {
            if ev.token() == WAKE {
                continue;
            }
            let c = &mut clients[ev.token().0];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        fail(format!("client {}: server closed the connection", ev.token().0));
                        break 'run;
                    }
                    Ok(k) => {
                        wire += k as u64;
                        // The expectation can only change between broadcasts;
                        // refresh when this read may start a new message.
                        let cur = sh.lock().expect.clone();
                        if cur.as_ref().map(|e| e.index) != expect.as_ref().map(|e| e.index) {
                            expect = cur;
                            done_in_current = 0;
                        }
                        let Some(ex) = expect.as_deref() else {
                            fail("data before any broadcast".into());
                            break 'run;
                        };
                        let mut cx = Ctx { expect: ex, out: std::mem::take(&mut out), completed: 0 };
                        let r = c.feed(&buf[..k], &mut cx);
                        out = cx.out;
                        if let Err(e) = r {
                            fail(format!("client {}: {e}", ev.token().0));
                            break 'run;
                        }
                        done_in_current += cx.completed;
                        if done_in_current == n {
                            let mut st = sh.lock();
                            st.delivered = Some(ex.index);
                            st.wire_bytes = wire;
                            sh.cv.notify_all();
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        fail(format!("client {}: read: {e}", ev.token().0));
                        break 'run;
                    }
                }
            }
        }
    }
    clients.iter().map(|c| c.received).collect()
}

// ------------------------------------------------------------------- server

/// The server's connections and the listener they came from.
struct Server {
    listener: *mut ws_listener,
    conns: Vec<ConnPtr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in &self.conns {
            let _ = ws_conn_close(c.0);
            ws_conn_free(c.0);
        }
        ws_listener_free(self.listener);
    }
}

/// A `ws_listener*` for the accepting thread.
struct ListenerPtr(*mut ws_listener);
// SAFETY: ws.h: ws_listener_accept may run on any thread; the main thread
// frees the listener only after joining the accepting thread.
unsafe impl Send for ListenerPtr {}

/// Listens with compression, connects `n` raw clients, accepts them.
fn setup(n: usize) -> io::Result<(Server, Vec<TcpStream>)> {
    let up = ws_upgrader_new();
    if up.is_null() {
        return Err(io::Error::other("ws_upgrader_new failed"));
    }
    let opts = ws_compression_options_default();
    let mut l = ptr::null_mut();
    let r = check("ws_upgrader_set_compression", ws_upgrader_set_compression(up, &opts))
        .and_then(|()| check("ws_listen", ws_listen(up, c"127.0.0.1".as_ptr(), 0, &mut l)));
    ws_upgrader_free(up);
    r?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ws_listener_port(l)));
    let lp = ListenerPtr(l);
    let acceptor = thread::Builder::new().name("bcast-accept".into()).spawn(move || {
        let lp = lp;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let mut c = ptr::null_mut();
            if let Err(e) = check("ws_listener_accept", ws_listener_accept(lp.0, 20_000, &mut c)) {
                return (conns, Some(e));
            }
            conns.push(ConnPtr(c));
        }
        (conns, None)
    })?;
    let mut rng = Rng::new();
    let mut clients = Vec::with_capacity(n);
    let mut err = None;
    for _ in 0..n {
        match connect_client(addr, &mut rng) {
            Ok(s) => clients.push(s),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    if err.is_some() {
        // Let the acceptor give up: close the sockets it is waiting for.
        clients.clear();
    }
    let (conns, aerr) = acceptor.join().map_err(|_| io::Error::other("accepting thread panicked"))?;
    let server = Server { listener: l, conns };
    if let Some(e) = err.or(aerr) {
        return Err(e);
    }
    for c in &server.conns {
        if !ws_conn_compression_negotiated(c.0) {
            return Err(invalid("a server connection did not negotiate permessage-deflate"));
        }
    }
    Ok((server, clients))
}

/// Timings of one timed series.
#[derive(Clone, Copy, Debug)]
struct Series {
    send: Duration,
    delivered: Duration,
    wire_bytes: u64,
    messages: u64,
}

struct Sender<'a> {
    server: &'a Server,
    sh: &'a Shared,
    waker: &'a Waker,
    next_index: u64,
}

impl Sender<'_> {
    fn set_compression(&self, on: bool) -> io::Result<()> {
        for c in &self.server.conns {
            check("ws_conn_enable_write_compression", ws_conn_enable_write_compression(c.0, on))?;
        }
        Ok(())
    }

    /// One broadcast of `msg`; returns (send time, delivery time).
    fn broadcast(&mut self, method: Method, msg: &[u8]) -> io::Result<(Duration, Duration)> {
        let conns = &self.server.conns;
        for c in conns {
            check("ws_conn_set_write_deadline", ws_conn_set_write_deadline(c.0, WRITE_DEADLINE_MS))?;
        }
        let index = self.next_index;
        self.next_index += 1;
        self.sh.lock().expect = Some(Arc::new(Expect { index, msg: Arc::new(msg.to_vec()) }));
        let t0 = Instant::now();
        match method {
            Method::Prepared => {
                let mut pm = ptr::null_mut();
                check("ws_prepared_message_new", ws_prepared_message_new(WS_TEXT, msg.as_ptr(), msg.len(), &mut pm))?;
                let r = conns.iter().try_for_each(|c| check("ws_conn_write_prepared", ws_conn_write_prepared(c.0, pm)));
                ws_prepared_message_free(pm);
                r?;
            }
            Method::Each => {
                for c in conns {
                    check("ws_conn_write_message", ws_conn_write_message(c.0, WS_TEXT, msg.as_ptr(), msg.len()))?;
                }
            }
        }
        let send = t0.elapsed();
        let mut st = self.sh.lock();
        loop {
            if let Some(e) = &st.error {
                return Err(io::Error::other(e.clone()));
            }
            if st.delivered == Some(index) {
                return Ok((send, t0.elapsed()));
            }
            let (g, timeout) = self.sh.cv.wait_timeout(st, DELIVERY_TIMEOUT).unwrap_or_else(PoisonError::into_inner);
            st = g;
            if timeout.timed_out() && st.delivered != Some(index) && st.error.is_none() {
                let _ = self.waker.wake();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("broadcast #{index} not delivered in time"),
                ));
            }
        }
    }

    fn series(&mut self, method: Method, payload: &mut Payload, n: usize) -> io::Result<Series> {
        for _ in 0..WARMUP {
            let seq = self.next_index;
            self.broadcast(method, payload.for_seq(seq))?;
        }
        let wire0 = self.sh.lock().wire_bytes;
        let mut s = Series { send: Duration::ZERO, delivered: Duration::ZERO, wire_bytes: 0, messages: 0 };
        for _ in 0..n {
            let seq = self.next_index;
            let (send, delivered) = self.broadcast(method, payload.for_seq(seq))?;
            s.send += send;
            s.delivered += delivered;
        }
        s.wire_bytes = self.sh.lock().wire_bytes - wire0;
        s.messages = (n * self.server.conns.len()) as u64;
        Ok(s)
    }
}

/// One result row: medians over the repetitions.
struct Row {
    size: usize,
    compressed: bool,
    method: Method,
    runs: Vec<Series>,
}

fn per_broadcast_ms(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e3 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(cfg: &Config) -> io::Result<()> {
    let n = cfg.clients;
    let limit = raise_nofile(2 * n as u64 + 256)?;
    // Before pinning: available_parallelism follows the thread's affinity.
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    cfg.pin.enter_server_placement(&cfg.cpus)?;
    println!("# command: {}", std::env::args().collect::<Vec<_>>().join(" "));
    println!("# cores: {cores} (available_parallelism)");
    println!(
        "# placement: {} (client thread = \"client\", sending main thread = \"servers\")",
        cfg.pin.describe(&cfg.cpus)
    );
    println!("# RLIMIT_NOFILE soft limit: {limit}");
    println!(
        "# {n} raw clients (one mio thread, own frame parser + flate2 inflater) <- one libws server (C API), 127.0.0.1"
    );
    println!(
        "# per series: {WARMUP} warm-up + {} timed broadcasts of a fresh JSON-like text message; median of {} run(s)",
        cfg.broadcasts, cfg.repeat
    );
    println!("# send = until the last write call returned; delivered = until every client inflated and checked it");
    println!();

    let t = Instant::now();
    let (server, streams) = setup(n)?;
    eprintln!("{n} connections up, permessage-deflate negotiated on all, in {:.2} s", t.elapsed().as_secs_f64());

    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKE)?;
    let mut clients = Vec::with_capacity(n);
    for (i, s) in streams.into_iter().enumerate() {
        let mut stream = mio::net::TcpStream::from_std(s);
        poll.registry().register(&mut stream, Token(i), Interest::READABLE)?;
        clients.push(Client {
            stream,
            inflater: Decompress::new_with_window_bits(false, 15),
            hdr: [0; 14],
            hdr_len: 0,
            left: 0,
            in_frame: false,
            fin: false,
            msg: None,
            received: 0,
        });
    }
    let sh = Shared { st: Mutex::new(State::default()), cv: Condvar::new(), stop: AtomicBool::new(false) };
    let (pin, cpus) = (cfg.pin, cfg.cpus.clone());
    let mut rows: Vec<Row> = Vec::new();
    let mut sent_total = 0u64;
    let result = thread::scope(|s| -> io::Result<Vec<u64>> {
        let drainer = thread::Builder::new().name("bcast-clients".into()).spawn_scoped(s, || {
            if let Err(e) = pin.enter_client_placement(&cpus) {
                let mut st = sh.lock();
                st.error = Some(format!("client CPU affinity: {e}"));
                sh.cv.notify_all();
            }
            drain(clients, poll, &sh)
        })?;
        let mut sender = Sender { server: &server, sh: &sh, waker: &waker, next_index: 0 };
        let r = (|| -> io::Result<()> {
            for &size in &cfg.sizes {
                let mut payload = Payload::json(size);
                let first = rows.len();
                for (compressed, method) in
                    [(true, Method::Prepared), (true, Method::Each), (false, Method::Prepared), (false, Method::Each)]
                {
                    rows.push(Row { size, compressed, method, runs: Vec::new() });
                }
                for rep in 0..cfg.repeat {
                    for row in &mut rows[first..] {
                        sender.set_compression(row.compressed)?;
                        let series = sender.series(row.method, &mut payload, cfg.broadcasts)?;
                        eprintln!(
                            "{:>6} {:<8} {:<8} #{}: send {:8.3} ms, delivered {:8.3} ms per broadcast",
                            crate::size_name(size),
                            if row.compressed { "deflate" } else { "plain" },
                            row.method.name(),
                            rep + 1,
                            per_broadcast_ms(series.send, cfg.broadcasts),
                            per_broadcast_ms(series.delivered, cfg.broadcasts),
                        );
                        row.runs.push(series);
                    }
                }
            }
            Ok(())
        })();
        sent_total = sender.next_index;
        sh.stop.store(true, Ordering::Release);
        let _ = waker.wake();
        let counts = drainer.join().map_err(|_| io::Error::other("client thread panicked"))?;
        r?;
        if let Some(e) = sh.lock().error.take() {
            return Err(io::Error::other(e));
        }
        Ok(counts)
    });
    drop(server);
    let counts = result?;
    if let Some((i, &c)) = counts.iter().enumerate().find(|(_, &c)| c != sent_total) {
        return Err(invalid(format!("client {i} verified {c} messages, {sent_total} were broadcast")));
    }
    println!(
        "verified: each of the {n} clients received all {sent_total} broadcasts (warm-up included), in order, \
         as text, inflated and compared in full with what was sent"
    );
    println!();
    print_table(&rows, cfg);
    Ok(())
}

fn print_table(rows: &[Row], cfg: &Config) {
    println!(
        "{:<7} {:<11} {:<9} {:>14} {:>17} {:>13} {:>12}",
        "size", "compression", "method", "send ms/bcast", "delivered ms/bcast", "bcasts/s", "wire B/msg"
    );
    for (i, r) in rows.iter().enumerate() {
        let send = median(r.runs.iter().map(|s| per_broadcast_ms(s.send, cfg.broadcasts)).collect());
        let deliv = median(r.runs.iter().map(|s| per_broadcast_ms(s.delivered, cfg.broadcasts)).collect());
        let wire = median(r.runs.iter().map(|s| s.wire_bytes as f64 / s.messages as f64).collect());
        println!(
            "{:<7} {:<11} {:<9} {:>14.3} {:>17.3} {:>13.1} {:>12.0}",
            crate::size_name(r.size),
            if r.compressed { "deflate" } else { "off" },
            r.method.name(),
            send,
            deliv,
            1e3 / deliv,
            wire
        );
        // After each (size, compression) pair: the in-run ratios.
        if r.method == Method::Each && i > 0 && rows[i - 1].method == Method::Prepared {
            let p = &rows[i - 1];
            let ratio = |f: fn(&Series) -> Duration| {
                median(p.runs.iter().zip(&r.runs).map(|(a, b)| f(b).as_secs_f64() / f(a).as_secs_f64()).collect())
            };
            println!(
                "{:<7} {:<11} each / prepared (median of in-run ratios): send {:.2}x, delivered {:.2}x",
                "",
                "",
                ratio(|s| s.send),
                ratio(|s| s.delivered)
            );
        }
    }
}
