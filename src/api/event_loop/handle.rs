//! A loop connection as every thread sees it: `ConnHandle`. Sending from
//! any thread encodes the frame into the connection's outbox (under its
//! lock) and schedules the connection; the loop writes every scheduled
//! outbox once per iteration, so many queued frames leave in one syscall.
//! A large payload with nothing queued ahead of it is written straight
//! from the caller's memory (one copy fewer); what the socket does not
//! take is queued.

use std::borrow::Cow;
use std::io::{ErrorKind as IoKind, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::shared::LoopShared;
use crate::api::conn::MessageType;
use crate::api::prepared::PreparedMessage;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::Agreement;
use crate::proto::engine::send::split_close;
use crate::proto::engine::{CloseCell, ControlPayload, Invalid, Phase, Plan, Refusal, SendHalf};
use crate::proto::Role;
use crate::transport::Stream;

/// Payloads at least this large go straight to the socket when nothing is
/// queued (unmasked only: a client must copy to mask anyway).
const DIRECT_WRITE_MIN: usize = 16 * 1024;

/// What the handshake agreed on; set once when the connection opens.
#[derive(Debug)]
pub(super) struct OpenInfo {
    pub subprotocol: String,
    pub compression: bool,
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
    /// The engine's send half: encodes into `buf`.
    send: SendHalf,
}

impl Outbox {
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    /// Takes a pooled buffer before the first frame goes in, and asks the
    /// loop for a sweep to give it back: without one, a connection that
    /// took a buffer after the last sweep (the loop sweeps only while some
    /// deadline or held buffer is pending) would keep it while idle.
    fn ready(&mut self, shared: &LoopShared) -> &mut Vec<u8> {
        if self.buf.capacity() == 0 {
            self.buf = shared.pool.get();
            shared.buffers_held.store(true, Ordering::Relaxed);
        }
        &mut self.buf
    }

    /// `ready` for a control or close frame: a connection without a buffer
    /// gets one sized for the frame, not a pooled 64 KiB one (at shutdown
    /// every connection sends a close at once: 10,000 pooled buffers would
    /// be 640 MiB). The pool does not keep it (`BufferPool::put` drops
    /// buffers smaller than its size); a message after it grows it.
    fn ready_small(&mut self, shared: &LoopShared) {
        if self.buf.capacity() == 0 {
            self.buf = Vec::with_capacity(SMALL_FRAME_ROOM);
            shared.buffers_held.store(true, Ordering::Relaxed);
        }
    }
}

/// Room for one control or close frame (header and 125-byte payload).
const SMALL_FRAME_ROOM: usize = 2 + 8 + 4 + 125;

pub(crate) struct ConnShared {
    pub(super) id: u64,
    /// The loop's slot for this connection.
    pub(super) token: usize,
    pub(super) role: Role,
    pub(super) stream: Stream,
    pub(super) local_addr: Option<SocketAddr>,
    pub(super) peer_addr: Option<SocketAddr>,
    pub(super) info: OnceLock<OpenInfo>,
    /// The engine's close phase, shared by the loop's receive side and
    /// every sender.
    pub(super) close: CloseCell,
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
            close: CloseCell::default(),
            out: Mutex::new(Outbox {
                buf: Vec::new(),
                sent: 0,
                scheduled: false,
                blocked: false,
                abort: false,
                send: SendHalf::new(role),
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
        if let (Ok(mut ob), Some(a)) = (self.out.lock(), deflate) {
            ob.send.set_deflate(a, level, threshold);
        }
        let _ = self.info.set(OpenInfo { subprotocol, compression: deflate.is_some() });
        self.close.open();
    }

    pub(super) fn lock_out(&self) -> Result<MutexGuard<'_, Outbox>> {
        self.out.lock().map_err(|_| Error::poisoned())
    }

    /// Publishes the buffered amount: the outbox, and under TLS what the
    /// TLS layer took from it that the socket has not (up to its 64 KiB
    /// ciphertext queue, otherwise invisible to the application).
    pub(super) fn set_buffered(&self, ob: &Outbox) {
        self.buffered.store(ob.pending() + self.stream.tls_pending_bytes(), Ordering::Release);
    }

    /// Whether a writable event has anything to flush: bytes in the
    /// outbox (`buffered`, published after every encode and write), or
    /// ciphertext a TLS layer holds (also records it queued while reading:
    /// a handshake message, a key update, an alert; published whenever the
    /// layer is unlocked). Everything else queued is on the flush list
    /// already (`schedule`).
    #[inline(always)]
    pub(super) fn wants_write(&self) -> bool {
        self.buffered.load(Ordering::Acquire) != 0 || self.stream.tls_pending_bytes() != 0
    }

    pub(super) fn record_error(&self, err: &Error) {
        if let Ok(mut m) = self.last_error.lock() {
            m.clear();
            m.push_str(err.message());
        }
    }

    /// Writes as much of the outbox as the socket takes. Returns
    /// `Ok(true)` when the outbox is empty.
    #[inline(always)]
    pub(super) fn write_out(&self, ob: &mut Outbox) -> std::io::Result<bool> {
        loop {
            if ob.sent == ob.buf.len() {
                // Drained: the pong kept while the peer did not read goes now.
                ob.buf.clear();
                ob.sent = 0;
                let Outbox { buf, send, .. } = &mut *ob;
                if !(self.close.phase() == Phase::Open && send.flush_owed(buf)) {
                    break;
                }
            }
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
        // A TLS layer may still hold ciphertext: the next writable event
        // flushes it (and only then is the outbox drained). The amount
        // counts what it still holds.
        let flushed = self.stream.flush();
        self.set_buffered(ob);
        flushed
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
        self.close.phase().check_send().map_err(refusal)?;
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

    /// Writes a large unmasked, uncompressed payload at once with whatever
    /// is queued ahead of it (one writev from the caller's memory: no copy
    /// into the outbox unless the socket does not take it all).
    fn send_direct(&self, mut ob: MutexGuard<'_, Outbox>, header: &[u8], payload: &[u8]) -> Result<()> {
        let n = header.len();
        let queued = ob.pending();
        let iov = [IoSlice::new(&ob.buf[ob.sent..]), IoSlice::new(header), IoSlice::new(payload)];
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
        let buf = ob.ready(&self.loop_shared);
        if rest < n {
            buf.extend_from_slice(&header[rest..]);
            buf.extend_from_slice(payload);
        } else {
            buf.extend_from_slice(&payload[rest - n..]);
        }
        self.set_buffered(&ob);
        self.schedule(ob);
        Ok(())
    }

    /// Encodes into the outbox with the send half and schedules the
    /// connection.
    #[inline(always)]
    fn encode(
        &self,
        mut ob: MutexGuard<'_, Outbox>,
        f: impl FnOnce(&mut SendHalf, &mut Vec<u8>) -> std::result::Result<(), Invalid>,
    ) -> Result<()> {
        ob.ready(&self.loop_shared);
        let Outbox { buf, send, .. } = &mut *ob;
        f(send, buf).map_err(|e| Error::invalid(e.0))?;
        self.set_buffered(&ob);
        self.schedule(ob);
        Ok(())
    }

    /// Puts the connection on the loop's flush list (once).
    #[inline(always)]
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
        // Also direct when blocked with nothing in the outbox: only a TLS
        // layer's ciphertext waits then (the flush waits for writable),
        // and the layer takes more plaintext into its own bounded queue,
        // in order, straight from the caller's memory.
        if data.len() >= DIRECT_WRITE_MIN && (!ob.blocked || ob.pending() == 0) {
            if let Plan::Direct { header, len } = ob.send.plan(kind, data.len()) {
                return self.send_direct(ob, &header[..len], data);
            }
        }
        if !ob.blocked && self.loop_shared.write_through.load(Ordering::Relaxed) {
            // The sender drives the loop itself (an asyncio bridge): write
            // now instead of waking the loop to flush. Control and close
            // frames still go through the loop's flush, which keeps the
            // close state machine.
            ob.ready(&self.loop_shared);
            let Outbox { buf, send, .. } = &mut *ob;
            send.message(kind, data, buf).map_err(|e| Error::invalid(e.0))?;
            self.set_buffered(&ob);
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
            self.schedule(ob);
            return Ok(());
        }
        self.encode(ob, |send, buf| send.message(kind, data, buf))
    }

    fn send_control(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        let mut ob = self.lock_out()?;
        self.check_sendable(&mut ob, 0)?;
        ob.ready_small(&self.loop_shared);
        self.encode(ob, |send, buf| send.control(kind, data, buf))
    }

    fn send_prepared(&self, pm: &PreparedMessage) -> Result<()> {
        if pm.kind().is_control() {
            return self.send_control(pm.kind(), pm.data());
        }
        let mut ob = self.lock_out()?;
        self.check_sendable(&mut ob, pm.data().len())?;
        let compressed = |level, bits| Cow::Owned(pm.compressed(level, bits).to_vec());
        self.encode(ob, |send, buf| send.prepared(pm.kind(), pm.data(), compressed, buf))
    }

    /// Queues the pong the receive half owes (kept, one at most, while
    /// the outbox is backed up).
    pub(super) fn owe_pong(&self, payload: ControlPayload) {
        let Ok(mut ob) = self.lock_out() else { return };
        if self.close.phase() != Phase::Open || ob.abort {
            return;
        }
        let backed_up = ob.blocked;
        ob.ready_small(&self.loop_shared);
        let Outbox { buf, send, .. } = &mut *ob;
        send.owe_pong(payload, backed_up, buf);
        self.set_buffered(&ob);
        self.schedule(ob);
    }

    /// Queues a close frame; the connection is `Closing` afterwards.
    pub(super) fn send_close(&self, code: u16, reason: &[u8]) -> Result<()> {
        SendHalf::check_close(code, reason).map_err(|e| Error::invalid(e.0))?;
        let mut ob = self.lock_out()?;
        self.close.begin_close().map_err(refusal)?;
        ob.ready_small(&self.loop_shared);
        // A close always fits: the high-water mark does not apply to it.
        self.encode(ob, |send, buf| send.close(code, reason, buf))
    }
}

/// A send the close state refused, as the API's error.
fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::NotOpen => Error::invalid("the connection is not open yet (wait for the open callback)"),
        Refusal::CloseSent => Error::new(ErrorKind::CloseSent, r.message()),
        Refusal::Closed => Error::new(ErrorKind::LocallyClosed, r.message()),
    }
}

impl ConnHandle {
    /// Queues a whole message (text, binary, or a control type).
    pub fn send(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        let r = if kind.is_control() {
            if kind == MessageType::Close {
                match split_close(data) {
                    Ok((code, reason)) => self.0.send_close(code, reason),
                    Err(e) => Err(Error::invalid(e.0)),
                }
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
    /// bufferedAmount); under TLS with the encrypted records the TLS layer
    /// holds for the socket.
    pub fn buffered_amount(&self) -> usize {
        self.0.buffered.load(Ordering::Acquire)
    }

    pub fn is_open(&self) -> bool {
        self.0.close.phase() == Phase::Open
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
        self.0.lock_out()?.send.enable_compression(enable);
        Ok(())
    }

    /// Sets the compression level (-2..9, compress/flate semantics).
    pub fn set_compression_level(&self, level: i32) -> Result<()> {
        self.0.lock_out()?.send.set_compression_level(level).map_err(|e| Error::invalid(e.0))
    }

    /// Messages shorter than `bytes` go out uncompressed.
    pub fn set_compression_threshold(&self, bytes: usize) -> Result<()> {
        self.0.lock_out()?.send.set_compression_threshold(bytes);
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
