//! A loop connection as every thread sees it: `ConnHandle`. Sending from
//! any thread encodes the frame into the connection's outbox (under its
//! lock) and schedules the connection; the loop writes every scheduled
//! outbox once per iteration, so many queued frames leave in one syscall.
//! A large payload with nothing queued ahead of it is written straight
//! from the caller's memory (one copy fewer); what the socket does not
//! take is queued.

use std::io::{ErrorKind as IoKind, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::shared::LoopShared;
use crate::api::conn::MessageType;
use crate::api::prepared::PreparedMessage;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::close;
use crate::proto::deflate::codec::backend_level;
use crate::proto::deflate::{scratch, Agreement, Deflater};
use crate::proto::frame::{encode_header, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::proto::mask::{apply_mask, MaskKeys};
use crate::proto::Role;
use crate::transport::Stream;

/// Payloads at least this large go straight to the socket when nothing is
/// queued (unmasked only: a client must copy to mask anyway).
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// Connection states, in order.
pub(super) const CONNECTING: u8 = 0;
pub(super) const OPEN: u8 = 1;
/// Our close frame is queued or sent; waiting for the peer's.
pub(super) const CLOSING: u8 = 2;
pub(super) const CLOSED: u8 = 3;

/// What the handshake agreed on; set once when the connection opens.
#[derive(Debug)]
pub(super) struct OpenInfo {
    pub subprotocol: String,
    pub compression: bool,
}

/// Outgoing compression (permessage-deflate) of one connection.
struct DeflateOut {
    deflater: Deflater,
    enabled: bool,
    level: i32,
    threshold: usize,
}

pub(super) struct Outbox {
    /// Encoded frames not yet written are `buf[sent..]`.
    pub buf: Vec<u8>,
    pub sent: usize,
    /// Set while the connection is on the loop's flush list (or waiting
    /// for writability): no need to schedule it again.
    pub scheduled: bool,
    /// A flush could not write everything, or a send was refused with
    /// `QueueFull`: call `on_drain` once the outbox empties.
    pub blocked: bool,
    /// An immediate close was asked for from some thread.
    pub abort: bool,
    /// A client's masking keys (boxed: 4 KiB that servers must not carry).
    keys: Option<Box<MaskKeys>>,
    deflate: Option<DeflateOut>,
}

impl Outbox {
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Appends one frame: header, then the payload (masked for a client).
    fn push_frame(&mut self, shared: &LoopShared, op: OpCode, rsv1: bool, payload: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf = shared.buffer_for(payload.len() + MAX_HEADER_LEN);
        }
        let mut h = [0u8; MAX_HEADER_LEN];
        let mask = self.keys.as_mut().map(|k| k.next_key());
        let n = encode_header(&mut h, true, rsv1, op, payload.len() as u64, mask);
        self.buf.extend_from_slice(&h[..n]);
        match mask {
            None => self.buf.extend_from_slice(payload),
            Some(m) => {
                // Copy, then mask in place: two passes (resize + copy_masked
                // would zero the bytes first, a third).
                let start = self.buf.len();
                self.buf.extend_from_slice(payload);
                apply_mask(&mut self.buf[start..], m, 0);
            }
        }
    }
}

pub(crate) struct ConnShared {
    pub(super) id: u64,
    /// The loop's slot for this connection.
    pub(super) token: usize,
    pub(super) role: Role,
    pub(super) stream: Stream,
    pub(super) local_addr: Option<SocketAddr>,
    pub(super) peer_addr: Option<SocketAddr>,
    pub(super) info: OnceLock<OpenInfo>,
    pub(super) state: AtomicU8,
    pub(super) out: Mutex<Outbox>,
    /// `out.pending()`, readable without the lock.
    buffered: AtomicUsize,
    /// Sends fail with `QueueFull` instead of queueing past this.
    max_buffered: usize,
    /// The code and reason that ended the connection.
    pub(super) ended: OnceLock<(u16, Vec<u8>)>,
    pub(super) last_error: Mutex<String>,
    /// A word for the embedding layer (the C API keeps its handle here).
    tag: AtomicUsize,
    /// The application's word (from the handshake callback or the dial).
    user: AtomicUsize,
    /// The application paused reading (flow control).
    pub(super) paused: AtomicBool,
    pub(super) loop_shared: Arc<LoopShared>,
}

/// A connection of an event loop; cheap to clone, usable from any thread.
/// Sends never block: they queue, and fail with `QueueFull` past the
/// loop's high-water mark.
#[derive(Clone)]
pub struct ConnHandle(pub(crate) Arc<ConnShared>);

impl std::fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnHandle").field("id", &self.0.id).field("peer", &self.0.peer_addr).finish()
    }
}

impl ConnShared {
    pub(super) fn new(
        id: u64,
        token: usize,
        role: Role,
        stream: Stream,
        max_buffered: usize,
        loop_shared: Arc<LoopShared>,
    ) -> ConnShared {
        let _ = stream.set_nodelay(true);
        ConnShared {
            id,
            token,
            role,
            local_addr: stream.local_addr(),
            peer_addr: stream.peer_addr(),
            stream,
            info: OnceLock::new(),
            state: AtomicU8::new(CONNECTING),
            out: Mutex::new(Outbox {
                buf: Vec::new(),
                sent: 0,
                scheduled: false,
                blocked: false,
                abort: false,
                keys: None,
                deflate: None,
            }),
            buffered: AtomicUsize::new(0),
            max_buffered,
            ended: OnceLock::new(),
            last_error: Mutex::new(String::new()),
            tag: AtomicUsize::new(0),
            user: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            loop_shared,
        }
    }

    /// Called by the loop when the handshake completed.
    pub(super) fn open(&self, subprotocol: String, deflate: Option<&Agreement>, level: i32, threshold: usize) {
        if let Ok(mut ob) = self.out.lock() {
            if self.role == Role::Client {
                ob.keys = Some(Box::default());
            }
            ob.deflate = deflate.and_then(|a| {
                let deflater = Deflater::for_agreement(a, backend_level(level).unwrap_or_default())?;
                Some(DeflateOut { deflater, enabled: true, level, threshold })
            });
        }
        let _ = self.info.set(OpenInfo { subprotocol, compression: deflate.is_some() });
        self.state.store(OPEN, Ordering::SeqCst);
    }

    pub(super) fn lock_out(&self) -> Result<MutexGuard<'_, Outbox>> {
        self.out.lock().map_err(|_| Error::poisoned())
    }

    pub(super) fn set_buffered(&self, ob: &Outbox) {
        self.buffered.store(ob.pending(), Ordering::Release);
    }

    pub(super) fn record_error(&self, err: &Error) {
        if let Ok(mut m) = self.last_error.lock() {
            m.clear();
            m.push_str(err.message());
        }
    }

    /// Writes as much of the outbox as the socket takes. Returns
    /// `Ok(true)` when the outbox is empty.
    pub(super) fn write_out(&self, ob: &mut Outbox) -> std::io::Result<bool> {
        while ob.sent < ob.buf.len() {
            match self.stream.write(&ob.buf[ob.sent..]) {
                Ok(0) => return Err(IoKind::WriteZero.into()),
                Ok(n) => ob.sent += n,
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    self.set_buffered(ob);
                    return Ok(false);
                }
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // The buffer stays for the next frames; the loop's sweep gives an
        // empty one back to the pool, so idle connections hold none.
        ob.buf.clear();
        ob.sent = 0;
        self.set_buffered(ob);
        // A TLS layer may still hold ciphertext: the next writable event
        // flushes it (and only then is the outbox drained).
        self.stream.flush()
    }

    /// Gives an empty outbox's buffer back to the pool (the sweep calls
    /// this: a connection that stays busy keeps its buffer between sweeps
    /// without two pool round trips per message). True when the outbox
    /// still holds a buffer afterwards (it is busy), so the next sweep
    /// must come soon.
    pub(super) fn release_idle_buffer(&self) -> bool {
        let Ok(mut ob) = self.out.try_lock() else { return true };
        if ob.pending() == 0 && ob.buf.capacity() > 0 {
            self.loop_shared.recycle(std::mem::take(&mut ob.buf));
            ob.sent = 0;
        }
        ob.buf.capacity() > 0
    }

    /// Checks that a data or control frame may be queued now.
    fn check_sendable(&self, ob: &mut Outbox, len: usize) -> Result<()> {
        match self.state.load(Ordering::SeqCst) {
            CONNECTING => return Err(Error::invalid("the connection is not open yet (wait for the open callback)")),
            OPEN => {}
            CLOSING => return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent")),
            _ => return Err(Error::new(ErrorKind::LocallyClosed, "the connection is closed")),
        }
        if ob.abort {
            return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
        }
        // A message always fits an empty queue: the limit bounds what
        // piles up, and any single message can still be sent.
        if self.max_buffered != 0 && ob.pending() > 0 && ob.pending() + len > self.max_buffered {
            // The drain callback tells the sender when to try again.
            ob.blocked = true;
            return Err(Error::new(
                ErrorKind::QueueFull,
                format!(
                    "send queue full: {} bytes buffered, the limit is {} (wait for the drain callback)",
                    ob.pending(),
                    self.max_buffered
                ),
            ));
        }
        Ok(())
    }

    /// Queues (or writes) one frame and schedules the connection. A large
    /// unmasked payload is written at once with whatever is queued ahead
    /// of it (one writev from the caller's memory: no copy into the
    /// outbox unless the socket does not take it all).
    fn send_frame(&self, mut ob: MutexGuard<'_, Outbox>, op: OpCode, rsv1: bool, payload: &[u8]) -> Result<()> {
        if payload.len() >= DIRECT_WRITE_MIN && ob.keys.is_none() && !ob.blocked {
            let mut h = [0u8; MAX_HEADER_LEN];
            let n = encode_header(&mut h, true, rsv1, op, payload.len() as u64, None);
            let queued = ob.pending();
            let iov = [IoSlice::new(&ob.buf[ob.sent..]), IoSlice::new(&h[..n]), IoSlice::new(payload)];
            // WouldBlock, Interrupted or a broken socket: queue it all; the
            // loop's next flush or read reports a broken socket once.
            let written = self.stream.write_vectored(&iov).unwrap_or(0);
            let from_queue = written.min(queued);
            ob.sent += from_queue;
            let rest = written - from_queue;
            if rest == n + payload.len() {
                if ob.pending() == 0 {
                    ob.buf.clear();
                    ob.sent = 0;
                }
                self.set_buffered(&ob);
                return Ok(());
            }
            // The socket pushed back: like a flush that could not write
            // everything, the drain callback must follow once the rest is
            // out (also when the loop then writes it in one go), and later
            // sends queue behind it rather than retry the full socket.
            ob.blocked = true;
            if ob.buf.capacity() == 0 {
                ob.buf = self.loop_shared.buffer_for(n + payload.len() - rest);
            }
            if rest < n {
                ob.buf.extend_from_slice(&h[rest..n]);
                ob.buf.extend_from_slice(payload);
            } else {
                ob.buf.extend_from_slice(&payload[rest - n..]);
            }
        } else {
            ob.push_frame(&self.loop_shared, op, rsv1, payload);
            if matches!(op, OpCode::Text | OpCode::Binary)
                && !ob.blocked
                && self.loop_shared.write_through.load(Ordering::Relaxed)
            {
                // The sender drives the loop itself (an asyncio bridge):
                // write now instead of waking the loop to flush. Control
                // and close frames still go through the loop's flush,
                // which keeps the close state machine.
                match self.write_out(&mut ob) {
                    Ok(true) => {
                        self.loop_shared.buffers_held.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                    // The socket pushed back: on_drain follows the flush.
                    Ok(false) => ob.blocked = true,
                    // Reported once by the loop's flush.
                    Err(_) => {}
                }
            }
        }
        self.set_buffered(&ob);
        self.schedule(ob);
        Ok(())
    }

    /// Puts the connection on the loop's flush list (once).
    pub(super) fn schedule(&self, mut ob: MutexGuard<'_, Outbox>) {
        if !ob.scheduled {
            ob.scheduled = true;
            drop(ob);
            self.loop_shared.schedule(self.token, self.id);
        }
    }

    fn send_data(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        let mut ob = self.lock_out()?;
        self.check_sendable(&mut ob, data.len())?;
        let op = kind.opcode();
        let compress = ob.deflate.as_ref().is_some_and(|d| d.enabled && data.len() >= d.threshold);
        if !compress {
            return self.send_frame(ob, op, false, data);
        }
        // Compressed into the thread's scratch buffer, not one per
        // connection: an idle connection keeps no output buffer.
        let r = scratch::with(|z| {
            let d = ob.deflate.as_mut().expect("checked above");
            d.deflater.compress_message(data, z);
            self.send_frame_keep(&mut ob, op, true, z)
        });
        self.schedule(ob);
        r
    }

    /// `send_frame` for a caller that keeps the lock (compression).
    fn send_frame_keep(&self, ob: &mut Outbox, op: OpCode, rsv1: bool, payload: &[u8]) -> Result<()> {
        ob.push_frame(&self.loop_shared, op, rsv1, payload);
        self.set_buffered(ob);
        Ok(())
    }

    fn send_control(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        if data.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::invalid("control frame payload longer than 125 bytes"));
        }
        let mut ob = self.lock_out()?;
        self.check_sendable(&mut ob, 0)?;
        self.send_frame(ob, kind.opcode(), false, data)
    }

    fn send_prepared(&self, pm: &PreparedMessage) -> Result<()> {
        if pm.kind().is_control() {
            return self.send_control(pm.kind(), pm.data());
        }
        let mut ob = self.lock_out()?;
        self.check_sendable(&mut ob, pm.data().len())?;
        let op = pm.kind().opcode();
        let setting = match ob.deflate.as_ref() {
            Some(d) if d.enabled && pm.data().len() >= d.threshold => Some((d.level, d.deflater.window_bits())),
            _ => None,
        };
        let Some((level, bits)) = setting else {
            return self.send_frame(ob, op, false, pm.data());
        };
        let payload = pm.compressed(level, bits);
        ob.push_frame(&self.loop_shared, op, true, &payload);
        // The peer's window now holds this message after our last one;
        // our compressor must not refer back across it.
        if let Some(d) = ob.deflate.as_mut() {
            d.deflater.reset();
        }
        self.set_buffered(&ob);
        self.schedule(ob);
        Ok(())
    }

    /// Queues a close frame; the connection is CLOSING afterwards.
    pub(super) fn send_close(&self, code: u16, reason: &[u8]) -> Result<()> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        if code != close::NO_STATUS {
            close::format_payload(code, reason, &mut payload).map_err(Error::invalid)?;
        } else if !reason.is_empty() {
            return Err(Error::invalid("a close without a status code cannot carry a reason"));
        }
        let ob = self.lock_out()?;
        match self.state.load(Ordering::SeqCst) {
            OPEN => {}
            CONNECTING => return Err(Error::invalid("the connection is not open yet (wait for the open callback)")),
            CLOSING => return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent")),
            _ => return Err(Error::new(ErrorKind::LocallyClosed, "the connection is closed")),
        }
        self.state.store(CLOSING, Ordering::SeqCst);
        // A close always fits: the high-water mark does not apply to it.
        self.send_frame(ob, OpCode::Close, false, &payload)
    }
}

impl ConnHandle {
    /// Queues a whole message (text, binary, or a control type).
    pub fn send(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        let r = if kind.is_control() {
            if kind == MessageType::Close {
                let (code, reason) = match data.len() {
                    0 => (close::NO_STATUS, &data[..0]),
                    1 => return self.fail(Error::invalid("a close payload is empty or at least 2 bytes")),
                    _ => (u16::from_be_bytes([data[0], data[1]]), &data[2..]),
                };
                self.0.send_close(code, reason)
            } else {
                self.0.send_control(kind, data)
            }
        } else {
            // Like the blocking Conn (and gorilla), text is not re-validated
            // here: the application vouches for it.
            self.0.send_data(kind, data)
        };
        r.or_else(|e| self.fail(e))
    }

    /// Queues a prepared message (compressed once per setting, shared).
    pub fn send_prepared(&self, pm: &PreparedMessage) -> Result<()> {
        self.0.send_prepared(pm).or_else(|e| self.fail(e))
    }

    /// Starts the close handshake: queues a close frame with `code` and
    /// `reason`. The loop closes TCP when the peer answers, or at the
    /// loop's close timeout. The close callback reports the end.
    pub fn close(&self, code: u16, reason: &[u8]) -> Result<()> {
        self.0.send_close(code, reason).or_else(|e| self.fail(e))
    }

    /// Closes TCP without a close handshake (gorilla's Close), from any
    /// thread; the loop reports it through the close callback (1006).
    pub fn abort(&self) {
        if let Ok(mut ob) = self.0.out.lock() {
            ob.abort = true;
            ob.scheduled = false; // force a visit even if a flush is pending
            self.0.schedule(ob);
        }
    }

    /// Stops (true) or resumes (false) reading from this connection: flow
    /// control for a receiver that cannot keep up (e.g. an echo whose
    /// peer does not read). Messages already read (at most one read's
    /// worth) are still delivered; pings are not answered while paused.
    /// Any thread.
    pub fn pause_reading(&self, paused: bool) {
        let was = self.0.paused.swap(paused, Ordering::SeqCst);
        if was && !paused {
            // The loop reads again on its next iteration.
            self.0.loop_shared.schedule(self.0.token, self.0.id);
        }
    }

    pub fn is_reading_paused(&self) -> bool {
        self.0.paused.load(Ordering::SeqCst)
    }

    /// Bytes queued and not yet taken by the socket (the browser's
    /// bufferedAmount).
    pub fn buffered_amount(&self) -> usize {
        self.0.buffered.load(Ordering::Acquire)
    }

    pub fn is_open(&self) -> bool {
        self.0.state.load(Ordering::SeqCst) == OPEN
    }

    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn role(&self) -> Role {
        self.0.role
    }

    /// The negotiated subprotocol ("" before open or when none).
    pub fn subprotocol(&self) -> &str {
        self.0.info.get().map_or("", |i| i.subprotocol.as_str())
    }

    pub fn compression_negotiated(&self) -> bool {
        self.0.info.get().is_some_and(|i| i.compression)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.0.local_addr
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.0.peer_addr
    }

    pub fn is_tls(&self) -> bool {
        self.0.stream.is_tls()
    }

    /// The TLS peer's certificate chain (leaf first, DER), if any.
    pub fn tls_peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.0.stream.tls_peer_certificates()
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.stream.as_raw_fd()
    }

    /// The code and reason that ended the connection (1006 when TCP
    /// dropped or the connection failed without a close from the peer).
    pub fn close_status(&self) -> Option<(u16, &[u8])> {
        self.0.ended.get().map(|(c, r)| (*c, r.as_slice()))
    }

    pub fn last_error(&self) -> String {
        self.0.last_error.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Turns compression of the next messages on or off.
    pub fn enable_write_compression(&self, enable: bool) -> Result<()> {
        if let Some(d) = self.0.lock_out()?.deflate.as_mut() {
            d.enabled = enable;
        }
        Ok(())
    }

    /// Sets the compression level (-2..9, compress/flate semantics).
    pub fn set_compression_level(&self, level: i32) -> Result<()> {
        let l = backend_level(level).ok_or_else(|| Error::invalid("compression level must be -2..9"))?;
        if let Some(d) = self.0.lock_out()?.deflate.as_mut() {
            d.deflater.set_level(l);
            d.level = level;
        }
        Ok(())
    }

    /// Messages shorter than `bytes` go out uncompressed.
    pub fn set_compression_threshold(&self, bytes: usize) -> Result<()> {
        if let Some(d) = self.0.lock_out()?.deflate.as_mut() {
            d.threshold = bytes;
        }
        Ok(())
    }

    /// The application's word for this connection: what the handshake
    /// callback returned, or the dial's `user`.
    pub fn user(&self) -> usize {
        self.0.user.load(Ordering::Acquire)
    }

    pub fn set_user(&self, user: usize) {
        self.0.user.store(user, Ordering::Release);
    }

    pub fn set_tag(&self, tag: usize) {
        self.0.tag.store(tag, Ordering::Release);
    }

    pub fn tag(&self) -> usize {
        self.0.tag.load(Ordering::Acquire)
    }

    fn fail<T>(&self, e: Error) -> Result<T> {
        self.0.record_error(&e);
        Err(e)
    }
}
