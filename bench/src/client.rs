//! Load generator, identical for every server of a protocol.
//!
//! [`BenchClient`] is the seam: a libws-based client can replace
//! [`RawWsClient`] for all WebSocket servers at once by implementing it. The
//! built-in clients share one single-threaded, non-blocking (mio) pump with a
//! sliding window: `depth` messages are sent at once, then one new message
//! is sent for every echo received, until the measuring window ends; the
//! outstanding echoes are then drained (verified, not counted).
//!
//! One connection's state is a [`Lane`]. [`RawWsClient`] and
//! [`PlainTcpClient`] drive one lane; [`MultiRawWsClient`] and
//! [`MultiPlainTcpClient`] (`--conns N`) drive N lanes from one thread on
//! one `Poll`, each lane with its own window of `depth` messages, so N
//! connections do not need N client threads on a 2-core machine.
//!
//! Payloads are a fixed pattern with the message's sequence number stamped
//! into its first 8 bytes. Every echo is checked for length and sequence
//! number (so order too); the first and last echo of a run (per lane) are
//! compared in full.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use crate::handshake;

/// One measurement run on an established connection.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Payload bytes per message.
    pub size: usize,
    /// Messages kept outstanding (1 = strict request/response).
    pub depth: usize,
    /// Measuring window. No new message is sent after it ends.
    pub duration: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadResult {
    /// Echoes received (and verified) within the window.
    pub round_trips: u64,
    /// Time from the first send to the end of the window.
    pub elapsed: Duration,
    /// All echoes received, including the drained tail.
    pub total_messages: u64,
    /// Bytes the client's socket sent and received over the whole run
    /// (drain included), from TCP_INFO; 0 when the client cannot tell.
    pub wire_sent: u64,
    pub wire_received: u64,
    /// CPU the server's threads used over the run (drain included), set by
    /// the caller that can see the server ([`crate::server_cpu`]).
    pub server_cpu: Option<Duration>,
}

/// A client implementation. The same instance drives every server of the
/// protocol it speaks.
pub trait BenchClient: Send + Sync {
    /// Name printed in the header.
    fn name(&self) -> &str;
    /// Connects to `addr` and completes the opening handshake (not timed).
    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>>;
}

/// An established connection.
///
/// Contract for `run`: send messages (binary, or text for a client built for
/// JSON payloads) of exactly `spec.size` bytes,
/// keeping at most `spec.depth` outstanding (refill as echoes arrive), until
/// `spec.duration` has passed since the first send; count echoes received by
/// then; then stop sending and drain the rest. Every echo must be checked for
/// length, and the first and last one for content ([`Payload`] helps), and a
/// mismatch returned as an error. `run` is called more than once per
/// connection (warm-up, then measurement).
pub trait BenchConnection {
    fn run(&mut self, spec: &LoadSpec) -> io::Result<LoadResult>;
    /// Closes the connection cleanly (not timed).
    fn close(self: Box<Self>) -> io::Result<()>;
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// xorshift64* seeded from the OS-seeded `RandomState`: cheap, unpredictable
/// enough for masking keys in a benchmark client.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        Rng(h.finish() | 1)
    }
    /// A deterministic generator (for generated payloads).
    pub fn seeded(seed: u64) -> Self {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for _ in 0..4 {
            r.next_u64();
        }
        r
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Default for Rng {
    fn default() -> Self {
        Self::new()
    }
}

/// How a payload carries its sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamp {
    /// The first (up to) 8 bytes, little-endian (binary pattern payloads).
    LeBytes,
    /// 16 hex digits at [`crate::json::STAMP_AT`] (JSON text payloads).
    Hex,
}

/// Message payloads with the sequence number stamped in: either a fixed
/// binary pattern, or JSON-like text ([`crate::json`]) cycling through
/// [`JSON_VARIANTS`] documents so consecutive messages differ.
#[derive(Clone)]
pub struct Payload {
    bufs: Vec<Vec<u8>>,
    stamp: Stamp,
}

/// Distinct JSON documents a JSON payload cycles through.
pub const JSON_VARIANTS: u64 = 8;

impl Payload {
    /// Binary pattern; the sequence number in the first (up to) 8 bytes.
    pub fn new(size: usize) -> Self {
        let buf = (0..size).map(|i| (i * 31 + 7) as u8).collect();
        Payload { bufs: vec![buf], stamp: Stamp::LeBytes }
    }
    /// JSON-like text of exactly `size` bytes (`size >= json::MIN_SIZE`);
    /// message `seq` is document `seq % JSON_VARIANTS` with `seq` stamped.
    pub fn json(size: usize) -> Self {
        let bufs = (0..JSON_VARIANTS).map(|v| crate::json::document(size, 1 + v)).collect();
        Payload { bufs, stamp: Stamp::Hex }
    }
    pub fn is_text(&self) -> bool {
        self.stamp == Stamp::Hex
    }
    fn stamp_range(&self) -> std::ops::Range<usize> {
        match self.stamp {
            Stamp::LeBytes => 0..self.bufs[0].len().min(8),
            Stamp::Hex => crate::json::STAMP_AT..crate::json::STAMP_AT + crate::json::STAMP_LEN,
        }
    }
    fn stamp_of(&self, seq: u64) -> [u8; 16] {
        let mut s = [0u8; 16];
        match self.stamp {
            Stamp::LeBytes => s[..8].copy_from_slice(&seq.to_le_bytes()),
            Stamp::Hex => s = crate::json::stamp_bytes(seq),
        }
        s
    }
    fn index(&self, seq: u64) -> usize {
        (seq % self.bufs.len() as u64) as usize
    }
    /// The payload of message number `seq`.
    pub fn for_seq(&mut self, seq: u64) -> &[u8] {
        let r = self.stamp_range();
        let st = self.stamp_of(seq);
        let i = self.index(seq);
        let buf = &mut self.bufs[i];
        buf[r.clone()].copy_from_slice(&st[..r.len()]);
        buf
    }
    /// Checks length and sequence stamp of an echo; `full` also compares
    /// every byte.
    pub fn verify(&self, seq: u64, got: &[u8], full: bool) -> io::Result<()> {
        let buf = &self.bufs[self.index(seq)];
        if got.len() != buf.len() {
            return Err(invalid(format!("echo #{seq}: length {} != {}", got.len(), buf.len())));
        }
        let r = self.stamp_range();
        if got[r.clone()] != self.stamp_of(seq)[..r.len()] {
            return Err(invalid(format!("echo #{seq}: wrong sequence stamp")));
        }
        if full && (got[..r.start] != buf[..r.start] || got[r.end..] != buf[r.end..]) {
            return Err(invalid(format!("echo #{seq}: content differs")));
        }
        Ok(())
    }
}

/// Result of one decode step: bytes consumed and, if a whole message
/// completed, its payload.
pub type Decoded<'a> = Option<(usize, Option<&'a [u8]>)>;

/// Framing used by the shared pump.
trait Framing {
    /// Appends one message carrying `payload` to `out`.
    fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>);
    /// Decodes from the front of `buf`: `None` if incomplete, else the bytes
    /// consumed and, when a whole message completed, its payload. May append
    /// protocol replies (pong) to `out`.
    fn decode<'a>(&'a mut self, buf: &'a [u8], out: &mut Vec<u8>) -> io::Result<Decoded<'a>>;
}

// ---------------------------------------------------------------- WebSocket

/// XORs `data` with the 4-byte `key`, 8 bytes at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let k8 = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ k8;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Client framing per RFC 6455: masked frames out (fresh random key per
/// frame), unmasked frames in; handles fragmentation, ping, close.
struct WsFraming {
    rng: Rng,
    assembling: bool,
    assembled: Vec<u8>,
}

impl WsFraming {
    fn write_frame(&mut self, opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
        let len = payload.len();
        out.push(0x80 | opcode);
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xffff {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let key = (self.rng.next_u64() as u32).to_ne_bytes();
        out.extend_from_slice(&key);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key);
    }
}

impl Framing for WsFraming {
    fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.write_frame(0x2, payload, out);
    }

    fn decode<'a>(&'a mut self, buf: &'a [u8], out: &mut Vec<u8>) -> io::Result<Decoded<'a>> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x70 != 0 {
            return Err(invalid("server frame: RSV bits set"));
        }
        if b1 & 0x80 != 0 {
            return Err(invalid("server frame: masked"));
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let (hlen, len): (usize, usize) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (4, u16::from_be_bytes([buf[2], buf[3]]) as usize)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut l = [0u8; 8];
                l.copy_from_slice(&buf[2..10]);
                let l = usize::try_from(u64::from_be_bytes(l)).map_err(|_| invalid("server frame: too long"))?;
                (10, l)
            }
            l => (2, l as usize),
        };
        let Some(end) = hlen.checked_add(len).filter(|&e| e <= buf.len()) else {
            return Ok(None);
        };
        let payload = &buf[hlen..end];
        match opcode {
            0x1 | 0x2 if self.assembling => Err(invalid("server frame: data frame mid-message")),
            0x1 | 0x2 if fin => Ok(Some((end, Some(payload)))),
            0x1 | 0x2 => {
                self.assembling = true;
                self.assembled.clear();
                self.assembled.extend_from_slice(payload);
                Ok(Some((end, None)))
            }
            0x0 if !self.assembling => Err(invalid("server frame: stray continuation")),
            0x0 => {
                self.assembled.extend_from_slice(payload);
                if fin {
                    self.assembling = false;
                    Ok(Some((end, Some(&self.assembled))))
                } else {
                    Ok(Some((end, None)))
                }
            }
            0x8 => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "server sent close")),
            0x9 => {
                self.write_frame(0xA, payload, out);
                Ok(Some((end, None)))
            }
            0xA => Ok(Some((end, None))),
            op => Err(invalid(format!("server frame: opcode {op:#x}"))),
        }
    }
}

// ------------------------------------------------------------ length-prefix

/// 4-byte big-endian length + payload, both ways (plain TCP reference).
struct LenPrefixFraming;

impl Framing for LenPrefixFraming {
    fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
    }

    fn decode<'a>(&'a mut self, buf: &'a [u8], _out: &mut Vec<u8>) -> io::Result<Decoded<'a>> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some((4 + len, Some(&buf[4..4 + len]))))
    }
}

// --------------------------------------------------------------------- pump

/// One connection of the pump: its socket, framing, buffers, readiness and
/// sliding window. [`PumpConn`] drives one lane, [`MultiConn`] many on one
/// `Poll`; both run the same steps, so every echo is checked the same way.
struct Lane<F: Framing> {
    /// libws's transport stream: plain TCP, or TLS (the `--tls` clients).
    stream: ws::transport::Stream,
    framing: F,
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Sent on close, if any (WebSocket close frame).
    close_frame: Option<Vec<u8>>,
    // Per run:
    payload: Payload,
    sent: u64,
    received: u64,
    // Optimistic readiness; cleared on WouldBlock / short IO (edge-triggered).
    readable: bool,
    writable: bool,
}

impl<F: Framing> Lane<F> {
    fn new(stream: TcpStream, framing: F, leftover: &[u8]) -> io::Result<Self> {
        Self::over(ws::transport::Stream::from_std(stream)?, framing, leftover)
    }

    /// A lane over a stream that may run TLS (handshake done).
    fn over(stream: ws::transport::Stream, framing: F, leftover: &[u8]) -> io::Result<Self> {
        let mut inbuf = vec![0u8; 256 * 1024];
        inbuf[..leftover.len()].copy_from_slice(leftover);
        Ok(Lane {
            stream,
            framing,
            inbuf,
            in_start: 0,
            in_end: leftover.len(),
            out: Vec::with_capacity(64 * 1024),
            out_pos: 0,
            close_frame: None,
            payload: Payload::new(0),
            sent: 0,
            received: 0,
            readable: true,
            writable: true,
        })
    }

    /// Resets the window for a run of `size`-byte messages.
    fn begin(&mut self, size: usize) {
        // Room for at least two whole messages plus headers.
        let need = 2 * (size + 16);
        if self.inbuf.len() < need {
            self.inbuf.resize(need, 0);
        }
        self.payload = Payload::new(size);
        self.sent = 0;
        self.received = 0;
        self.readable = true;
        self.writable = true;
    }

    /// Encodes new messages until `depth` are outstanding.
    fn fill(&mut self, depth: usize) {
        while self.sent - self.received < depth as u64 {
            self.framing.encode(self.payload.for_seq(self.sent), &mut self.out);
            self.sent += 1;
        }
    }

    /// Writes what is pending.
    fn write(&mut self) -> io::Result<()> {
        while self.writable && self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_pos += n;
                    // A partial plain write means a full socket; a TLS layer
                    // takes at most its queue limit and says WouldBlock itself.
                    if self.out_pos < self.out.len() && !self.stream.is_tls() {
                        self.writable = false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        // A TLS layer may hold ciphertext the socket did not take.
        if self.writable && !self.stream.flush()? {
            self.writable = false;
        }
        Ok(())
    }

    /// Reads what is available.
    fn read(&mut self) -> io::Result<()> {
        while self.readable {
            if self.in_start == self.in_end {
                self.in_start = 0;
                self.in_end = 0;
            } else if self.inbuf.len() - self.in_end < self.inbuf.len() / 4 {
                self.inbuf.copy_within(self.in_start..self.in_end, 0);
                self.in_end -= self.in_start;
                self.in_start = 0;
            }
            let space = self.inbuf.len() - self.in_end;
            if space == 0 {
                // A frame larger than the buffer (only with foreign framing).
                let len = self.inbuf.len();
                self.inbuf.resize(len * 2, 0);
                continue;
            }
            match self.stream.read(&mut self.inbuf[self.in_end..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection")),
                Ok(n) => {
                    self.in_end += n;
                    // A short plain read drained the socket; under TLS it
                    // says nothing (one record was decrypted): read on.
                    if n < space && !self.stream.is_tls() {
                        self.readable = false; // short read: socket drained
                    } else {
                        break; // buffer full: parse, then read on
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Parses and verifies complete echoes. `sending` false means the
    /// window is draining (the last echo is then compared in full).
    fn parse(&mut self, sending: bool) -> io::Result<()> {
        if self.in_start < self.in_end {
            while let Some((used, msg)) = self.framing.decode(&self.inbuf[self.in_start..self.in_end], &mut self.out)? {
                self.in_start += used;
                if let Some(msg) = msg {
                    if self.received == self.sent {
                        return Err(invalid("echo for a message never sent"));
                    }
                    let last = !sending && self.received + 1 == self.sent;
                    self.payload.verify(self.received, msg, self.received == 0 || last)?;
                    self.received += 1;
                }
            }
        }
        Ok(())
    }

    /// Whether the lane can make progress without waiting for readiness.
    fn busy(&self, sending: bool, depth: usize) -> bool {
        let pending_out = self.out_pos < self.out.len() || self.stream.wants_write();
        let can_send = sending && self.sent - self.received < depth as u64;
        self.readable || can_send || pending_out && self.writable
    }

    fn note(&mut self, ev: &mio::event::Event) {
        self.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
        self.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
    }

    /// Sends the close frame (if any) and FIN, still non-blocking (bounded
    /// waits); the peer's answer is awaited by [`finish_close`].
    fn start_close(self, registry: &mio::Registry) -> io::Result<ws::transport::Stream> {
        let Lane { mut stream, close_frame, .. } = self;
        registry.deregister(stream.mio())?;
        let deadline = Some(Instant::now() + Duration::from_secs(1));
        if let Some(frame) = close_frame {
            stream.write_all_until(&frame, deadline)?;
        }
        // TLS: close_notify, then FIN on both directions.
        stream.shutdown_write();
        Ok(stream)
    }
}

/// Waits for the peer to close (or 1 s), discarding anything left.
fn finish_close(s: ws::transport::Stream) {
    let mut sink = [0u8; 4096];
    let deadline = Some(Instant::now() + Duration::from_secs(1));
    while matches!(s.read_until(&mut sink, deadline), Ok(n) if n > 0) {}
}

/// A connection driven by the shared non-blocking pump.
struct PumpConn<F: Framing> {
    lane: Lane<F>,
    poll: Poll,
    events: Events,
}

impl<F: Framing> PumpConn<F> {
    fn new(lane: Lane<F>) -> io::Result<Self> {
        let mut lane = lane;
        let poll = Poll::new()?;
        poll.registry().register(lane.stream.mio(), Token(0), Interest::READABLE | Interest::WRITABLE)?;
        Ok(PumpConn { lane, poll, events: Events::with_capacity(4) })
    }

    fn run_inner(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        if spec.depth == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "depth 0"));
        }
        let lane = &mut self.lane;
        lane.begin(spec.size);
        let mut sending = true;
        let mut result = LoadResult::default();
        let start = Instant::now();
        let deadline = start + spec.duration;

        loop {
            if sending {
                lane.fill(spec.depth);
            }
            lane.write()?;
            lane.read()?;
            lane.parse(sending)?;
            if sending && Instant::now() >= deadline {
                sending = false;
                result.round_trips = lane.received;
                result.elapsed = start.elapsed();
            }

            if !sending && lane.received == lane.sent {
                result.total_messages = lane.received;
                return Ok(result);
            }

            if !lane.busy(sending, spec.depth) {
                // Also bounds how long a lost echo can stall us.
                self.poll.poll(&mut self.events, Some(Duration::from_secs(10)))?;
                if self.events.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no progress for 10 s"));
                }
                for ev in self.events.iter() {
                    lane.note(ev);
                }
            }
        }
    }
}

impl<F: Framing> BenchConnection for PumpConn<F> {
    fn run(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        self.run_inner(spec)
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        let PumpConn { lane, poll, .. } = *self;
        finish_close(lane.start_close(poll.registry())?);
        Ok(())
    }
}

/// `n` connections driven at once by one thread on one `Poll` (token =
/// lane index). Each lane keeps its own window of `depth` messages with its
/// own sequence numbers; `round_trips` is the sum over all lanes.
struct MultiConn<F: Framing> {
    lanes: Vec<Lane<F>>,
    poll: Poll,
    events: Events,
}

impl<F: Framing> MultiConn<F> {
    fn new(mut lanes: Vec<Lane<F>>) -> io::Result<Self> {
        let poll = Poll::new()?;
        for (i, lane) in lanes.iter_mut().enumerate() {
            poll.registry().register(lane.stream.mio(), Token(i), Interest::READABLE | Interest::WRITABLE)?;
        }
        Ok(MultiConn { lanes, poll, events: Events::with_capacity(1024) })
    }
}

impl<F: Framing> BenchConnection for MultiConn<F> {
    fn run(&mut self, spec: &LoadSpec) -> io::Result<LoadResult> {
        if spec.depth == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "depth 0"));
        }
        for lane in &mut self.lanes {
            lane.begin(spec.size);
        }
        let mut sending = true;
        let mut result = LoadResult::default();
        let start = Instant::now();
        let deadline = start + spec.duration;

        loop {
            let mut busy = false;
            for lane in &mut self.lanes {
                if sending {
                    lane.fill(spec.depth);
                }
                lane.write()?;
                lane.read()?;
                lane.parse(sending)?;
            }
            if sending && Instant::now() >= deadline {
                sending = false;
                result.round_trips = self.lanes.iter().map(|l| l.received).sum();
                result.elapsed = start.elapsed();
            }
            let mut done = !sending;
            for lane in &self.lanes {
                done &= lane.received == lane.sent;
                busy |= lane.busy(sending, spec.depth);
            }
            if done {
                result.total_messages = self.lanes.iter().map(|l| l.received).sum();
                return Ok(result);
            }
            if !busy {
                // Also bounds how long a lost echo can stall us.
                self.poll.poll(&mut self.events, Some(Duration::from_secs(10)))?;
                if self.events.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no progress for 10 s"));
                }
                for ev in self.events.iter() {
                    if let Some(lane) = self.lanes.get_mut(ev.token().0) {
                        lane.note(ev);
                    }
                }
            }
        }
    }

    fn close(self: Box<Self>) -> io::Result<()> {
        let MultiConn { lanes, poll, .. } = *self;
        // Close frames and FINs to all first, then wait for each peer.
        let mut closing = Vec::with_capacity(lanes.len());
        for lane in lanes {
            closing.push(lane.start_close(poll.registry())?);
        }
        closing.into_iter().for_each(finish_close);
        Ok(())
    }
}

fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A WebSocket connection after a blocking opening handshake: the socket
/// (blocking, no timeouts), the client framing, and bytes that arrived
/// after the 101 response.
pub struct WsHandshaken {
    pub stream: TcpStream,
    framing: WsFraming,
    pub leftover: Vec<u8>,
}

impl WsHandshaken {
    /// Connects to `addr` and completes the opening handshake.
    pub fn connect(addr: SocketAddr) -> io::Result<Self> {
        let mut s = connect_tcp(addr)?;
        let mut rng = Rng::new();
        let key = handshake::new_client_key(&mut rng);
        s.write_all(handshake::client_request(&addr.to_string(), "/", &key).as_bytes())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        let header_len = loop {
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
        s.set_read_timeout(None)?;
        buf.drain(..header_len);
        Ok(WsHandshaken {
            stream: s,
            framing: WsFraming { rng, assembling: false, assembled: Vec::new() },
            leftover: buf,
        })
    }

    /// A masked binary frame carrying `payload`, appended to `out`.
    pub fn encode(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.framing.encode(payload, out);
    }

    /// Decodes one server frame from the front of `buf` (see [`Framing`]):
    /// `None` if incomplete, else bytes used and a complete message if any.
    /// Pongs for pings go to `out`.
    pub fn decode<'a>(&'a mut self, buf: &'a [u8], out: &mut Vec<u8>) -> io::Result<Decoded<'a>> {
        self.framing.decode(buf, out)
    }

    fn into_lane(self) -> io::Result<Lane<WsFraming>> {
        let WsHandshaken { stream, mut framing, leftover } = self;
        let mut close_frame = Vec::new();
        framing.write_frame(0x8, &1000u16.to_be_bytes(), &mut close_frame);
        let mut lane = Lane::new(stream, framing, &leftover)?;
        lane.close_frame = Some(close_frame);
        Ok(lane)
    }
}

/// A TCP connection to `addr` with a finished TLS handshake for
/// "localhost" (the bench certificates name it), as libws's transport
/// stream: the `--tls` clients pump over it like over plain TCP.
pub fn connect_tls(addr: SocketAddr, tls: &ws::transport::tls::TlsClientConfig) -> io::Result<ws::transport::Stream> {
    let deadline = Some(Instant::now() + Duration::from_secs(10));
    let s = ws::transport::Stream::from_std(connect_tcp(addr)?)?;
    s.start_tls_client(tls, "localhost", deadline).map_err(|e| io::Error::other(e.to_string()))
}

impl WsHandshaken {
    /// The opening handshake over a TLS stream; returns a pump lane.
    fn connect_tls_lane(addr: SocketAddr, tls: &ws::transport::tls::TlsClientConfig) -> io::Result<Lane<WsFraming>> {
        let s = connect_tls(addr, tls)?;
        let deadline = Some(Instant::now() + Duration::from_secs(10));
        let mut rng = Rng::new();
        let key = handshake::new_client_key(&mut rng);
        s.write_all_until(
            handshake::client_request(&format!("localhost:{}", addr.port()), "/", &key).as_bytes(),
            deadline,
        )?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 1024];
        let header_len = loop {
            let n = s.read_until(&mut chunk, deadline)?;
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
        let mut framing = WsFraming { rng, assembling: false, assembled: Vec::new() };
        let mut close_frame = Vec::new();
        framing.write_frame(0x8, &1000u16.to_be_bytes(), &mut close_frame);
        let mut lane = Lane::over(s, framing, &buf[header_len..])?;
        lane.close_frame = Some(close_frame);
        Ok(lane)
    }
}

/// The raw WebSocket client over TLS (`--tls`): `conns` connections on one
/// thread and one `Poll`, the same pump and checks as [`RawWsClient`].
pub struct TlsWsClient {
    pub conns: usize,
    pub tls: ws::transport::tls::TlsClientConfig,
}

impl BenchClient for TlsWsClient {
    fn name(&self) -> &str {
        "raw-ws over TLS (built-in, mio, masked frames, libws's rustls layer; N connections on one thread)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        let lanes =
            (0..self.conns).map(|_| WsHandshaken::connect_tls_lane(addr, &self.tls)).collect::<io::Result<_>>()?;
        Ok(Box::new(MultiConn::new(lanes)?))
    }
}

/// The length-prefixed client over TLS, for the bare TLS echo (`--tls`).
pub struct TlsPlainClient {
    pub conns: usize,
    pub tls: ws::transport::tls::TlsClientConfig,
}

impl BenchClient for TlsPlainClient {
    fn name(&self) -> &str {
        "length-prefixed over TLS (built-in, mio, libws's rustls layer; N connections on one thread)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        let lanes = (0..self.conns)
            .map(|_| Lane::over(connect_tls(addr, &self.tls)?, LenPrefixFraming, &[]))
            .collect::<io::Result<_>>()?;
        Ok(Box::new(MultiConn::new(lanes)?))
    }
}

/// Minimal raw RFC 6455 client (blocking handshake, non-blocking pump).
pub struct RawWsClient;

impl BenchClient for RawWsClient {
    fn name(&self) -> &str {
        "raw-ws (built-in, mio, masked frames)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        Ok(Box::new(PumpConn::new(WsHandshaken::connect(addr)?.into_lane()?)?))
    }
}

/// [`RawWsClient`] for `conns` connections at once, all driven by one
/// thread on one mio `Poll` (`--conns N`, N > 1).
pub struct MultiRawWsClient {
    pub conns: usize,
}

impl BenchClient for MultiRawWsClient {
    fn name(&self) -> &str {
        "raw-ws multi (built-in, mio, masked frames; N connections on one thread, one Poll)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        let lanes = (0..self.conns).map(|_| WsHandshaken::connect(addr)?.into_lane()).collect::<io::Result<_>>()?;
        Ok(Box::new(MultiConn::new(lanes)?))
    }
}

/// Client for [`crate::servers::Protocol::LengthPrefixed`] servers.
pub struct PlainTcpClient;

impl BenchClient for PlainTcpClient {
    fn name(&self) -> &str {
        "plain-tcp (built-in, mio, 4-byte length prefix)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        Ok(Box::new(PumpConn::new(Lane::new(connect_tcp(addr)?, LenPrefixFraming, &[])?)?))
    }
}

/// [`PlainTcpClient`] for `conns` connections at once on one thread.
pub struct MultiPlainTcpClient {
    pub conns: usize,
}

impl BenchClient for MultiPlainTcpClient {
    fn name(&self) -> &str {
        "plain-tcp multi (built-in, mio, 4-byte length prefix; N connections on one thread, one Poll)"
    }

    fn connect(&self, addr: SocketAddr) -> io::Result<Box<dyn BenchConnection>> {
        let lanes =
            (0..self.conns).map(|_| Lane::new(connect_tcp(addr)?, LenPrefixFraming, &[])).collect::<io::Result<_>>()?;
        Ok(Box::new(MultiConn::new(lanes)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_roundtrip_matches_bytewise() {
        let key = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..37u8).collect();
        let mut a = orig.clone();
        apply_mask(&mut a, key);
        let b: Vec<u8> = orig.iter().enumerate().map(|(i, x)| x ^ key[i % 4]).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn ws_decode_fragmented_and_ping() {
        let mut f = WsFraming { rng: Rng::new(), assembling: false, assembled: Vec::new() };
        let mut out = Vec::new();
        let wire = [0x02, 2, b'a', b'b', 0x89, 1, b'p', 0x80, 1, b'c'];
        let (n, m) = f.decode(&wire, &mut out).unwrap().unwrap();
        assert_eq!((n, m), (4, None));
        let (n, m) = f.decode(&wire[4..], &mut out).unwrap().unwrap();
        assert_eq!((n, m), (3, None));
        assert_eq!(out[0], 0x8A); // pong queued
        let (n, m) = f.decode(&wire[7..], &mut out).unwrap().unwrap();
        assert_eq!(n, 3);
        assert_eq!(m, Some(&b"abc"[..]));
    }
}
