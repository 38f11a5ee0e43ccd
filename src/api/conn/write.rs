//! The writing half of a connection: frames out with as few system calls
//! as possible, control frames, the streaming writer, and the deadline rules.
//!
//! A write that times out before any byte of its frame went out returns
//! `Timeout` and sent nothing. One that times out part way keeps the unsent
//! rest queued (it goes out before any later frame) and returns
//! `WriteIncomplete`: the frame is committed, not to be sent again.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::io::{ErrorKind as IoKind, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::{MutexGuard, TryLockError};
use std::thread::ThreadId;
use std::time::Instant;

use super::{lock, Conn, MessageType};
use crate::api::config::ConnConfig;
use crate::api::pool::BufferPool;
use crate::api::prepared::PreparedMessage;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::Agreement;
use crate::proto::engine::send::split_close;
use crate::proto::engine::{FrameHead, Invalid, SendHalf};
use crate::proto::frame::MAX_HEADER_LEN;
use crate::proto::Role;
use crate::transport::wait::{wait_ready, Interest};

/// Unmasked payloads up to this size are copied behind their header and
/// sent with one write(2); larger ones go out with writev(2) from the
/// caller's memory.
const COPY_SMALL: usize = 2048;
/// Masked payloads are copied and sent in pieces at least this large.
const MASKED_CHUNK_MIN: usize = 64 * 1024 + MAX_HEADER_LEN;

pub(super) struct WriteSide {
    /// Encoded bytes not yet on the wire are `out[sent..]`.
    out: Vec<u8>,
    sent: usize,
    pool: Option<BufferPool>,
    buffer_size: usize,
    /// The engine's send half: frame headers, masking keys, deflate and
    /// its settings, control and close checks.
    send: SendHalf,
    /// The open streaming writer.
    stream: Option<StreamWriter>,
    /// What the streaming writer gathered for its next frame (deflate
    /// output when it compresses).
    stream_buf: Vec<u8>,
    /// A failed socket: every later write returns this.
    broken: Option<Error>,
}

struct StreamWriter {
    kind: MessageType,
    owner: ThreadId,
    /// No frame of the message went out yet.
    first: bool,
    compressed: bool,
    /// The compressed stream's final flush is done (a retried close must
    /// not flush twice).
    flushed: bool,
}

impl WriteSide {
    pub(super) fn new(role: Role, config: &ConnConfig, deflate: Option<&Agreement>) -> WriteSide {
        let pool = config.write_buffer_pool.clone();
        let buffer_size = pool.as_ref().map_or(config.write_buffer_size, |p| p.buffer_size());
        let mut send = SendHalf::new(role);
        if let Some(a) = deflate {
            send.set_deflate(a, config.compression_level, config.compression_threshold);
        }
        WriteSide {
            out: if pool.is_some() { Vec::new() } else { Vec::with_capacity(buffer_size) },
            sent: 0,
            pool,
            buffer_size,
            send,
            stream: None,
            stream_buf: Vec::new(),
            broken: None,
        }
    }

    fn take_buffer(&mut self) {
        if self.out.capacity() == 0 {
            if let Some(p) = &self.pool {
                self.out = p.get();
            }
        }
    }

    /// With a pool, an empty write buffer goes back to it between writes.
    fn release_buffer(&mut self) {
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if let Some(p) = &self.pool {
                p.put(std::mem::take(&mut self.out));
            }
        }
    }
}

fn invalid(e: Invalid) -> Error {
    Error::invalid(e.0)
}

/// What a writer waits for besides the lock itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Control frames: just the lock.
    Lock,
    /// Data messages: no streaming writer of another thread may be open.
    DataGate,
}

/// Exclusive use of the write side. Dropping it wakes waiting writers.
pub(super) struct WriterGuard<'a> {
    conn: &'a Conn,
    ws: Option<MutexGuard<'a, WriteSide>>,
    /// The dropping thread holds `write_wait` (inside `lock_writer`'s loop):
    /// notify without locking it a second time, which would deadlock.
    wait_held: bool,
}

impl WriterGuard<'_> {
    fn ws(&mut self) -> &mut WriteSide {
        self.ws.as_mut().expect("guard holds the write side until dropped")
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if let Some(mut ws) = self.ws.take() {
            ws.release_buffer();
        }
        if self.wait_held {
            self.conn.write_wait_cv.notify_all();
        } else {
            self.conn.wake_writers();
        }
    }
}

impl Conn {
    /// Wakes threads waiting for the write side, if there are any.
    pub(super) fn wake_writers(&self) {
        if self.write_waiters.load(Ordering::SeqCst) > 0 {
            let _g = self.write_wait.lock();
            self.write_wait_cv.notify_all();
        }
    }

    /// Takes the write side, waiting at most until `deadline` for a write in
    /// progress (and, for data, for another thread's streaming writer).
    fn lock_writer(&self, deadline: Option<Instant>, need: Need) -> Result<WriterGuard<'_>> {
        if let Some(g) = self.try_writer(need, deadline, false)? {
            return Ok(g);
        }
        self.write_waiters.fetch_add(1, Ordering::SeqCst);
        let r = (|| loop {
            let w = lock(&self.write_wait)?;
            if let Some(g) = self.try_writer(need, deadline, true)? {
                return Ok(g);
            }
            if self.is_shut() {
                return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
            }
            match deadline {
                None => drop(self.write_wait_cv.wait(w).map_err(|_| Error::poisoned())?),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::timeout("write deadline passed while another write was in progress"));
                    }
                    drop(self.write_wait_cv.wait_timeout(w, left).map_err(|_| Error::poisoned())?);
                }
            }
        })();
        self.write_waiters.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// One attempt at the write side; `None` when it must be waited for.
    /// `wait_held`: the caller holds `write_wait` (then a guard dropped here
    /// must not lock it again).
    fn try_writer(&self, need: Need, deadline: Option<Instant>, wait_held: bool) -> Result<Option<WriterGuard<'_>>> {
        let ws = match self.writer.try_lock() {
            Ok(ws) => ws,
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Poisoned(_)) => return Err(Error::poisoned()),
        };
        let mut guard = WriterGuard { conn: self, ws: Some(ws), wait_held };
        if self.is_shut() {
            return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
        }
        if let Some(e) = &guard.ws().broken {
            return Err(e.clone());
        }
        if need == Need::DataGate {
            if let Some(owner) = guard.ws().stream.as_ref().map(|st| st.owner) {
                if owner != std::thread::current().id() {
                    drop(guard);
                    return Ok(None);
                }
                // This thread's own open writer: finish it first (gorilla's
                // NextWriter/WriteMessage close the previous writer).
                self.finish_stream(guard.ws(), deadline)?;
            }
        }
        // The caller drops it after releasing `write_wait`.
        guard.wait_held = false;
        Ok(Some(guard))
    }

    /// Writes a whole message (gorilla's WriteMessage). Text and binary
    /// messages wait for another thread's open streaming writer to finish;
    /// control types are sent as by `write_control` with the write deadline.
    pub fn write_message(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        let deadline = self.write_deadline();
        if kind.is_control() {
            return self.write_control(kind, data, deadline);
        }
        let r = (|| {
            let mut w = self.lock_writer(deadline, Need::DataGate)?;
            if self.close_sent() {
                return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent"));
            }
            let ws = w.ws();
            match ws.send.message_head(kind, data.len()) {
                Some(head) => self.send_frame(ws, head, data, deadline),
                None => {
                    let r = self.send_encoded(ws, deadline, |send, out| send.message(kind, data, out));
                    if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Timeout) {
                        // The peer never saw this message: our window must forget it.
                        ws.send.forget_unsent_message();
                    }
                    r
                }
            }
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Sends a prepared message (gorilla's WritePreparedMessage), compressed
    /// with this connection's settings when it compresses. The compressed
    /// form is shared by every connection with the same level and window.
    /// Any thread; same rules as `write_message`.
    pub fn write_prepared(&self, pm: &PreparedMessage) -> Result<()> {
        let deadline = self.write_deadline();
        if pm.kind().is_control() {
            return self.write_control(pm.kind(), pm.data(), deadline);
        }
        let r = (|| {
            let mut w = self.lock_writer(deadline, Need::DataGate)?;
            if self.close_sent() {
                return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent"));
            }
            let ws = w.ws();
            if let Some(head) = ws.send.message_head(pm.kind(), pm.data().len()) {
                return self.send_frame(ws, head, pm.data(), deadline);
            }
            // The shared compressed form, borrowed for the encode (no copy).
            let held = OnceCell::new();
            let compressed = |level, bits| Cow::Borrowed(held.get_or_init(|| pm.compressed(level, bits)).as_slice());
            self.send_encoded(ws, deadline, |send, out| send.prepared(pm.kind(), pm.data(), compressed, out))
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Turns compression of the next messages on or off (gorilla's
    /// EnableWriteCompression); nothing happens when it was not negotiated.
    pub fn enable_write_compression(&self, enable: bool) -> Result<()> {
        let mut w = self.lock_writer(None, Need::Lock)?;
        w.ws().send.enable_compression(enable);
        Ok(())
    }

    /// Sets the compression level of the next messages (gorilla's
    /// SetCompressionLevel: -2 Huffman only, -1 default, 0 none, 1 fastest
    /// to 9 smallest). `InvalidArgument` outside -2..=9.
    pub fn set_compression_level(&self, level: i32) -> Result<()> {
        let mut w = self.lock_writer(None, Need::Lock)?;
        w.ws().send.set_compression_level(level).map_err(invalid)
    }

    /// Messages shorter than `bytes` are sent uncompressed. (Streaming
    /// writers do not know their size in advance and always compress.)
    pub fn set_compression_threshold(&self, bytes: usize) -> Result<()> {
        let mut w = self.lock_writer(None, Need::Lock)?;
        w.ws().send.set_compression_threshold(bytes);
        Ok(())
    }

    /// Sends a control frame (ping, pong or close) with its own deadline
    /// (gorilla's WriteControl). May be called while a streaming writer is
    /// open: the frame goes out between two fragments.
    pub fn write_control(&self, kind: MessageType, data: &[u8], deadline: Option<Instant>) -> Result<()> {
        let r = (|| {
            if !kind.is_control() {
                return Err(Error::invalid("write_control takes a close, ping or pong type"));
            }
            SendHalf::check_control(data).map_err(invalid)?;
            if kind == MessageType::Close {
                let (code, reason) = split_close(data).map_err(invalid)?;
                return self.write_close(code, reason, deadline);
            }
            let mut w = self.lock_writer(deadline, Need::Lock)?;
            if self.close_sent() {
                return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent"));
            }
            self.send_encoded(w.ws(), deadline, |send, out| send.control(kind, data, out))
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Sends a close frame with `code` and `reason` (1005 sends an empty
    /// close frame). `CloseSent` if one was already sent.
    pub fn write_close(&self, code: u16, reason: &[u8], deadline: Option<Instant>) -> Result<()> {
        SendHalf::check_close(code, reason).map_err(invalid)?;
        let mut w = self.lock_writer(deadline, Need::Lock)?;
        if self.close_sent() {
            return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent"));
        }
        let r = self.send_encoded(w.ws(), deadline, |send, out| send.close(code, reason, out));
        if r.is_ok() || r.as_ref().is_err_and(|e| e.kind() == ErrorKind::WriteIncomplete) {
            // After the frame is out, under the writer lock: no frame can
            // follow it, and a close that timed out unsent may be retried.
            let _ = self.close.begin_close();
        }
        r
    }

    /// Sends what a `WriteIncomplete` left queued, within the write deadline.
    pub fn flush(&self) -> Result<()> {
        let deadline = self.write_deadline();
        let r = (|| {
            let mut w = self.lock_writer(deadline, Need::Lock)?;
            self.flush_out(w.ws(), deadline)
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Opens a streaming writer for a text or binary message (gorilla's
    /// NextWriter). If this thread already has one open, it is finished
    /// first; if another thread has, this waits for it (up to the deadline).
    pub fn next_writer(&self, kind: MessageType) -> Result<()> {
        let deadline = self.write_deadline();
        let r = (|| {
            if kind.is_control() {
                return Err(Error::invalid("a streaming writer takes a text or binary type"));
            }
            let mut w = self.lock_writer(deadline, Need::DataGate)?;
            if self.close_sent() {
                return Err(Error::new(ErrorKind::CloseSent, "websocket: close sent"));
            }
            let ws = w.ws();
            let compressed = ws.send.stream_compressed();
            ws.stream = Some(StreamWriter {
                kind,
                owner: std::thread::current().id(),
                first: true,
                compressed,
                flushed: false,
            });
            if ws.stream_buf.capacity() == 0 {
                ws.stream_buf = match &ws.pool {
                    Some(p) => p.get(),
                    None => Vec::with_capacity(ws.buffer_size),
                };
            }
            Ok(())
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Appends `data` to the open streaming writer's message. Full buffers
    /// go out as non-final frames. `Timeout`: none of `data` was taken.
    pub fn writer_write(&self, data: &[u8]) -> Result<()> {
        let deadline = self.write_deadline();
        let r = (|| {
            let mut w = self.lock_writer(deadline, Need::Lock)?;
            let ws = w.ws();
            let st = ws
                .stream
                .as_ref()
                .ok_or_else(|| Error::invalid("no message writer is open: call next_writer first"))?;
            let (kind, first) = (st.kind, st.first);
            if st.compressed {
                return self.stream_write_compressed(ws, kind, first, data, deadline);
            }
            if ws.stream_buf.len() + data.len() < ws.buffer_size {
                ws.stream_buf.extend_from_slice(data);
                return Ok(());
            }
            let mut buf = std::mem::take(&mut ws.stream_buf);
            let r = if buf.is_empty() {
                let head = ws.send.stream_head(kind, first, false, false, data.len());
                self.send_frame(ws, head, data, deadline)
            } else {
                let before = buf.len();
                buf.extend_from_slice(data);
                let head = ws.send.stream_head(kind, first, false, false, buf.len());
                let r = self.send_frame(ws, head, &buf, deadline);
                if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Timeout) {
                    buf.truncate(before);
                }
                r
            };
            let taken = r.is_ok() || r.as_ref().is_err_and(|e| e.kind() == ErrorKind::WriteIncomplete);
            if taken {
                buf.clear();
                if let Some(st) = ws.stream.as_mut() {
                    st.first = false;
                }
            }
            ws.stream_buf = buf;
            r
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Finishes the streaming writer's message with a final frame.
    /// `Timeout`: the writer stays open and the call may be repeated.
    pub fn writer_close(&self) -> Result<()> {
        let deadline = self.write_deadline();
        let r = (|| {
            let mut w = self.lock_writer(deadline, Need::Lock)?;
            self.finish_stream(w.ws(), deadline)
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Sends the open streaming writer's final frame and closes it (data
    /// writers waiting for it are woken when the guard drops).
    fn finish_stream(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        let st = ws.stream.as_mut().ok_or_else(|| Error::invalid("no message writer is open"))?;
        let (kind, first, compressed) = (st.kind, st.first, st.compressed);
        let mut buf = std::mem::take(&mut ws.stream_buf);
        if compressed && !st.flushed {
            st.flushed = true;
            ws.send.stream_compress(&[], true, &mut buf);
        }
        let head = ws.send.stream_head(kind, first, true, compressed, buf.len());
        let r = self.send_frame(ws, head, &buf, deadline);
        ws.stream_buf = buf;
        if r.as_ref().is_err_and(|e| e.kind() == ErrorKind::Timeout) {
            return r;
        }
        ws.stream = None;
        ws.stream_buf.clear();
        if let Some(p) = &ws.pool {
            p.put(std::mem::take(&mut ws.stream_buf));
        }
        r
    }

    /// Compresses the next piece of a streamed message; a full buffer of
    /// deflate output goes out as a frame. The data is taken in every case
    /// (it is in the compressor): a deadline that passes while sending
    /// gives `WriteIncomplete`, and the bytes go out with the next call.
    fn stream_write_compressed(
        &self,
        ws: &mut WriteSide,
        kind: MessageType,
        first: bool,
        data: &[u8],
        deadline: Option<Instant>,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut ws.stream_buf);
        ws.send.stream_compress(data, false, &mut buf);
        let mut r = Ok(());
        if buf.len() >= ws.buffer_size {
            let head = ws.send.stream_head(kind, first, false, true, buf.len());
            r = self.send_frame(ws, head, &buf, deadline);
            match &r {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::WriteIncomplete => {}
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    ws.stream_buf = buf;
                    return Err(incomplete());
                }
                Err(_) => {
                    ws.stream_buf = buf;
                    return r;
                }
            }
            buf.clear();
            if let Some(st) = ws.stream.as_mut() {
                st.first = false;
            }
        }
        ws.stream_buf = buf;
        r
    }

    /// Makes `ws.out` ready for a new frame: what earlier frames left
    /// queued goes out first. What a TLS layer still holds belongs to
    /// earlier frames too, so a timeout here sent nothing of the new one.
    fn begin_frame(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        self.flush_out_raw(ws, deadline)?;
        self.drain_transport(ws, deadline).map_err(|e| {
            if e.kind() == ErrorKind::WriteIncomplete {
                Error::timeout("write deadline passed")
            } else {
                e
            }
        })?;
        ws.take_buffer();
        ws.out.clear();
        ws.sent = 0;
        Ok(())
    }

    /// Sends frames the send half encodes whole into the write buffer
    /// (compressed messages, control and close frames).
    fn send_encoded(
        &self,
        ws: &mut WriteSide,
        deadline: Option<Instant>,
        encode: impl FnOnce(&mut SendHalf, &mut Vec<u8>) -> std::result::Result<(), Invalid>,
    ) -> Result<()> {
        self.begin_frame(ws, deadline)?;
        encode(&mut ws.send, &mut ws.out).map_err(invalid)?;
        self.flush_frame(ws, deadline)
    }

    /// Writes one frame given its head (from the send half) and payload:
    /// an unmasked payload from the caller's memory, a masked one copied
    /// and masked in chunks.
    fn send_frame(&self, ws: &mut WriteSide, head: FrameHead, payload: &[u8], deadline: Option<Instant>) -> Result<()> {
        self.begin_frame(ws, deadline)?;
        if !head.masked() {
            if payload.len() > COPY_SMALL {
                return self.send_vectored(ws, head.bytes(), payload, deadline);
            }
            ws.out.extend_from_slice(head.bytes());
            ws.out.extend_from_slice(payload);
            return self.flush_frame(ws, deadline);
        }
        ws.out.extend_from_slice(head.bytes());
        // Masking needs a copy; copying in chunks of at least 64 KiB keeps
        // it to one send(2) for messages up to that size. With a pool the
        // pool's buffer size is the limit the caller chose.
        let chunk = if ws.pool.is_some() { ws.buffer_size } else { ws.buffer_size.max(MASKED_CHUNK_MIN) };
        let mut pos = 0;
        loop {
            let take = (chunk - ws.out.len().min(chunk)).max(1).min(payload.len() - pos);
            head.put_payload(&payload[pos..pos + take], pos, &mut ws.out);
            pos += take;
            if pos == payload.len() {
                return self.flush_frame(ws, deadline);
            }
            if ws.out.len() >= chunk {
                let first_chunk = pos == take;
                // Mid-frame: the TLS queue drains with the frame's end.
                match self.flush_out_raw(ws, deadline) {
                    Ok(()) => {
                        ws.out.clear();
                        ws.sent = 0;
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout && first_chunk && ws.sent == 0 => {
                        ws.out.clear();
                        return Err(e);
                    }
                    Err(e) if e.kind() == ErrorKind::Timeout => {
                        // Part of the frame is out: queue the rest, masked.
                        head.put_payload(&payload[pos..], pos, &mut ws.out);
                        return Err(incomplete());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Flushes a frame that is entirely in `ws.out`, applying the timeout rule.
    fn flush_frame(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        match self.flush_out(ws, deadline) {
            Err(e) if e.kind() == ErrorKind::Timeout && ws.sent == 0 => {
                ws.out.clear();
                Err(e)
            }
            Err(e) if e.kind() == ErrorKind::Timeout => Err(incomplete()),
            r => r,
        }
    }

    /// Header + payload with writev(2), no copy; on a partial timeout the
    /// unsent rest is queued in `ws.out`.
    fn send_vectored(&self, ws: &mut WriteSide, hdr: &[u8], payload: &[u8], deadline: Option<Instant>) -> Result<()> {
        let total = hdr.len() + payload.len();
        let mut done = 0;
        while done < total {
            let r = if done < hdr.len() {
                self.stream.write_vectored(&[IoSlice::new(&hdr[done..]), IoSlice::new(payload)])
            } else {
                self.stream.write(&payload[done - hdr.len()..])
            };
            match r {
                Ok(n) => done += n,
                Err(e) if e.kind() == IoKind::WouldBlock => match self.wait_writable(deadline) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::Timeout && done == 0 => return Err(e),
                    Err(e) if e.kind() == ErrorKind::Timeout => {
                        if done < hdr.len() {
                            ws.out.extend_from_slice(&hdr[done..]);
                            ws.out.extend_from_slice(payload);
                        } else {
                            ws.out.extend_from_slice(&payload[done - hdr.len()..]);
                        }
                        ws.sent = 0;
                        return Err(incomplete());
                    }
                    Err(e) => return Err(e),
                },
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.write_failed(ws, e)),
            }
        }
        self.drain_transport(ws, deadline)
    }

    /// Writes `ws.out[ws.sent..]` until it is all on the wire (TLS queue
    /// included) or the deadline passes.
    fn flush_out(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        self.flush_out_raw(ws, deadline)?;
        self.drain_transport(ws, deadline)
    }

    /// Writes `ws.out[ws.sent..]` into the stream until it took all of it or
    /// the deadline passes.
    fn flush_out_raw(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        while ws.sent < ws.out.len() {
            match self.stream.write(&ws.out[ws.sent..]) {
                Ok(n) => ws.sent += n,
                Err(e) if e.kind() == IoKind::WouldBlock => self.wait_writable(deadline)?,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.write_failed(ws, e)),
            }
        }
        ws.out.clear();
        ws.sent = 0;
        Ok(())
    }

    /// A TLS layer may still hold ciphertext of what it took: wait until it
    /// is on the wire. The frame was taken whole, so a timeout here is
    /// `WriteIncomplete` (the rest goes out first on the next write/flush).
    fn drain_transport(&self, ws: &mut WriteSide, deadline: Option<Instant>) -> Result<()> {
        loop {
            match self.stream.flush() {
                Ok(true) => return Ok(()),
                Ok(false) => match self.wait_writable(deadline) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::Timeout => return Err(incomplete()),
                    Err(e) => return Err(e),
                },
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(self.write_failed(ws, e)),
            }
        }
    }

    fn wait_writable(&self, deadline: Option<Instant>) -> Result<()> {
        if self.is_shut() {
            return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
        }
        let (until, stalled) = Conn::wait_until(deadline, self.write_timeout());
        match wait_ready(self.fd(), Interest::Write, until) {
            Ok(true) => Ok(()),
            Ok(false) if stalled => {
                Err(Error::timeout("write timeout passed: the peer took nothing for the write timeout"))
            }
            Ok(false) => Err(Error::timeout("write deadline passed")),
            Err(e) => Err(Error::io("poll", e)),
        }
    }

    fn write_failed(&self, ws: &mut WriteSide, e: std::io::Error) -> Error {
        if self.is_shut() {
            return Error::new(ErrorKind::LocallyClosed, "the connection was closed locally");
        }
        let err = Error::io("write failed", e);
        ws.broken = Some(err.clone());
        err
    }
}

fn incomplete() -> Error {
    Error::new(
        ErrorKind::WriteIncomplete,
        "write deadline passed after part of the frame was sent; the rest is queued and goes out first on the next write or flush",
    )
}
