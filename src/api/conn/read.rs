//! The reading half of a connection: filling the read buffer, running the
//! receiver, handling control frames, whole-message and streaming reads.

use std::io::ErrorKind as IoKind;
use std::sync::MutexGuard;
use std::time::Instant;

use super::inflate::InflateState;
use super::msgbuf::MessageBuf;
use super::{Conn, MessageType};
use crate::api::config::ConnConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::Agreement;
use crate::proto::engine::close_state::after_close_sent;
use crate::proto::engine::TcpAfterClose;
use crate::proto::receiver::{Event, Receiver};
use crate::proto::{close, ProtoError, Role};
use crate::transport::wait::{wait_ready, Interest};

/// A message assembled by `read_message` that is not complete yet (its
/// read timed out); the next read continues it.
#[derive(Debug)]
struct Assembly {
    kind: MessageType,
    had_data: bool,
    compressed: bool,
}

/// The message a streaming reader is giving out.
#[derive(Debug)]
struct StreamState {
    done: bool,
    compressed: bool,
}

pub(super) struct ReadSide {
    pub(super) buf: Vec<u8>,
    start: usize,
    end: usize,
    pub(super) receiver: Receiver,
    pub(super) msg: MessageBuf,
    msg_pos: usize,
    /// permessage-deflate state, when negotiated.
    pub(super) inflate: Option<InflateState>,
    assembling: Option<Assembly>,
    stream: Option<StreamState>,
    /// Data the streaming reader received but has not given out yet:
    /// `buf[start..end]`, and whether it ends the message.
    pending: Option<(usize, usize, bool)>,
    /// A permanent error: every later read returns it (gorilla's rule).
    sticky: Option<Error>,
}

impl ReadSide {
    pub(super) fn new(role: Role, config: &ConnConfig, leftover: &[u8], deflate: Option<&Agreement>) -> ReadSide {
        let mut buf = vec![0u8; config.read_buffer_size.max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        let mut receiver = Receiver::new(role, config.read_limit);
        receiver.set_allow_rsv1(deflate.is_some());
        ReadSide {
            buf,
            start: 0,
            end: leftover.len(),
            receiver,
            msg: MessageBuf::default(),
            msg_pos: 0,
            inflate: deflate.map(InflateState::new),
            assembling: None,
            stream: None,
            pending: None,
            sticky: None,
        }
    }
}

/// Frames larger than this are read straight into the message buffer
/// instead of through the read buffer (one copy fewer, bigger reads).
const DIRECT_READ_MIN: u64 = 8 * 1024;

/// Single-frame messages up to this size are read whole into the read
/// buffer (which grows to fit) and returned without a copy.
const ZERO_COPY_MAX: usize = 256 * 1024;
const MIN_HEADROOM: usize = 16 * 1024;

enum Loc {
    Buf(usize, usize),
    Msg,
}

/// A received message. Its bytes stay valid (and the connection's read side
/// stays locked) while this value lives; through the C API, until the next
/// read call on the connection.
pub struct Message<'a> {
    guard: MutexGuard<'a, ReadSide>,
    kind: MessageType,
    loc: Loc,
}

impl Message<'_> {
    pub fn kind(&self) -> MessageType {
        self.kind
    }
    pub fn data(&self) -> &[u8] {
        match self.loc {
            Loc::Buf(s, e) => &self.guard.buf[s..e],
            Loc::Msg => self.guard.msg.as_slice(),
        }
    }
}

impl Conn {
    fn lock_reader(&self) -> Result<MutexGuard<'_, ReadSide>> {
        match self.reader.try_lock() {
            Ok(g) => Ok(g),
            Err(std::sync::TryLockError::WouldBlock) => {
                Err(Error::new(ErrorKind::Busy, "another thread is reading this connection"))
            }
            Err(std::sync::TryLockError::Poisoned(_)) => Err(Error::poisoned()),
        }
    }

    /// Reads the next whole data message (gorilla's ReadMessage). Control
    /// frames that arrive meanwhile go to their handlers. A message that
    /// arrived in one frame is returned without a copy.
    pub fn read_message(&self) -> Result<Message<'_>> {
        let mut rs = match self.lock_reader() {
            Ok(g) => g,
            Err(e) => return self.fail(e),
        };
        match self.read_message_locked(&mut rs) {
            Ok((kind, loc)) => Ok(Message { guard: rs, kind, loc }),
            Err(e) => self.fail(e),
        }
    }

    fn read_message_locked(&self, rs: &mut ReadSide) -> Result<(MessageType, Loc)> {
        let deadline = self.read_deadline();
        self.check_sticky(rs)?;
        if rs.assembling.is_none() && rs.stream.is_none() {
            // The previous message is consumed: give a large buffer back
            // before waiting for the next one.
            rs.msg.clear();
        }
        self.discard_stream(rs, deadline)?;
        if rs.start == rs.end {
            rs.start = 0;
            rs.end = 0;
        }
        if rs.assembling.is_none() {
            let (kind, compressed) = self.next_message_start(rs, deadline)?;
            rs.assembling = Some(Assembly { kind, had_data: false, compressed });
            rs.msg.clear();
            if compressed {
                self.begin_inflate(rs, kind);
            } else {
                self.gather_single_frame(rs, deadline)?;
            }
        }
        if rs.assembling.as_ref().is_some_and(|a| a.compressed) {
            while !self.inflate_some(rs, deadline, usize::MAX, false)? {}
            let kind = rs.assembling.take().expect("assembling").kind;
            return Ok((kind, Loc::Msg));
        }
        loop {
            if self.try_direct_read(rs, deadline)? {
                let kind = rs.assembling.take().expect("assembling").kind;
                return Ok((kind, Loc::Msg));
            }
            match self.next_data_event(rs, deadline)? {
                Event::Data { start, end, end_of_message } => {
                    let a = rs.assembling.as_mut().expect("assembling");
                    if end_of_message && !a.had_data {
                        let kind = a.kind;
                        rs.assembling = None;
                        return Ok((kind, Loc::Buf(start, end)));
                    }
                    a.had_data = true;
                    rs.msg.extend(&rs.buf[start..end]);
                    if end_of_message {
                        let kind = a.kind;
                        rs.assembling = None;
                        return Ok((kind, Loc::Msg));
                    }
                }
                _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
            }
        }
    }

    /// When a message is one frame of moderate size that is not all in the
    /// read buffer yet, grows the buffer to fit it and reads until it is all
    /// there, so the message is returned without a copy and with as few
    /// reads as the socket allows. Larger messages are assembled instead.
    fn gather_single_frame(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        let payload = match rs.receiver.frame_remaining() {
            Some(p) if rs.receiver.frame_is_final() && p as usize > rs.end - rs.start => p as usize,
            _ => return Ok(()),
        };
        if payload > ZERO_COPY_MAX {
            return Ok(());
        }
        if rs.start > 0 {
            rs.buf.copy_within(rs.start..rs.end, 0);
            rs.end -= rs.start;
            rs.start = 0;
        }
        if rs.buf.len() < payload + MIN_HEADROOM {
            // Grows once per larger size and then keeps it. The headroom
            // lets one read take this frame's rest and the next frames' start.
            rs.buf.resize((payload + MIN_HEADROOM).next_power_of_two(), 0);
        }
        while rs.end < payload {
            let n = self.read_some(rs, Target::Buf, deadline)?;
            rs.end += n;
        }
        Ok(())
    }

    /// For a large frame with nothing buffered, reads its payload straight
    /// into the message buffer. Returns true when that completed the message.
    fn try_direct_read(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<bool> {
        let remaining = match rs.receiver.frame_remaining() {
            Some(r) if r >= DIRECT_READ_MIN && rs.start == rs.end => r,
            _ => return Ok(false),
        };
        // Memory follows bytes received, not the length the header
        // announced: read at most as much again as the message holds
        // (at least 256 KiB, at most 4 MiB per read).
        let want = remaining.min(rs.msg.len().clamp(256 * 1024, 4 * 1024 * 1024) as u64) as usize;
        let n = self.read_some(rs, Target::Msg(want), deadline)?;
        let fresh = rs.msg.commit(n);
        if let Err(pe) = rs.receiver.accept_payload(fresh) {
            return Err(self.fail_protocol(rs, pe));
        }
        if let Some(a) = rs.assembling.as_mut() {
            a.had_data = true;
        }
        Ok(rs.receiver.frame_remaining().is_none() && !rs.receiver.in_message())
    }

    /// Starts reading the next data message in pieces (gorilla's
    /// NextReader); the rest of a previous unfinished message is discarded.
    pub fn next_reader(&self) -> Result<MessageType> {
        let mut rs = match self.lock_reader() {
            Ok(g) => g,
            Err(e) => return self.fail(e),
        };
        let deadline = self.read_deadline();
        let r = (|| {
            self.check_sticky(&rs)?;
            self.discard_stream(&mut rs, deadline)?;
            rs.msg_pos = 0;
            if let Some(a) = rs.assembling.take() {
                // A whole-message read timed out part way: hand out what it
                // collected first.
                rs.stream = Some(StreamState { done: false, compressed: a.compressed });
                return Ok(a.kind);
            }
            rs.msg.clear();
            let (kind, compressed) = self.next_message_start(&mut rs, deadline)?;
            if compressed {
                self.begin_inflate(&mut rs, kind);
            }
            rs.stream = Some(StreamState { done: false, compressed });
            Ok(kind)
        })();
        r.or_else(|e| self.fail(e))
    }

    /// Reads the next bytes of the message opened by `next_reader` into
    /// `out`. Returns 0 at the end of the message.
    pub fn reader_read(&self, out: &mut [u8]) -> Result<usize> {
        let mut rs = match self.lock_reader() {
            Ok(g) => g,
            Err(e) => return self.fail(e),
        };
        let deadline = self.read_deadline();
        self.reader_read_locked(&mut rs, out, deadline).or_else(|e| self.fail(e))
    }

    fn reader_read_locked(&self, rs: &mut ReadSide, out: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        if out.is_empty() {
            return Err(Error::invalid("reader_read needs a buffer of at least one byte"));
        }
        match &rs.stream {
            None => return Err(Error::invalid("no message reader is open: call next_reader first")),
            Some(s) if s.done => return Ok(0),
            Some(_) => {}
        }
        if rs.msg_pos < rs.msg.len() {
            let n = out.len().min(rs.msg.len() - rs.msg_pos);
            out[..n].copy_from_slice(&rs.msg.as_slice()[rs.msg_pos..rs.msg_pos + n]);
            rs.msg_pos += n;
            return Ok(n);
        }
        if rs.stream.as_ref().is_some_and(|s| s.compressed) {
            return self.reader_read_compressed(rs, out, deadline);
        }
        loop {
            let (start, end, eom) = match rs.pending.take() {
                Some(p) => p,
                None => {
                    self.check_sticky(rs)?;
                    match self.next_data_event(rs, deadline)? {
                        Event::Data { start, end, end_of_message } => (start, end, end_of_message),
                        _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
                    }
                }
            };
            let n = out.len().min(end - start);
            out[..n].copy_from_slice(&rs.buf[start..start + n]);
            if start + n < end {
                rs.pending = Some((start + n, end, eom));
            } else if eom {
                if let Some(s) = rs.stream.as_mut() {
                    s.done = true;
                }
            }
            if n > 0 || eom {
                return Ok(n);
            }
        }
    }

    /// Drops the unread rest of the streaming reader's message.
    fn discard_stream(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        let open = matches!(&rs.stream, Some(s) if !s.done);
        if open && rs.stream.as_ref().is_some_and(|s| s.compressed) {
            // Inflate (and drop) the rest: with context takeover the
            // window must still see every byte of it.
            loop {
                rs.msg.clear();
                rs.msg_pos = 0;
                if self.inflate_some(rs, deadline, 64 * 1024, false)? {
                    break;
                }
            }
        } else if open {
            rs.msg.clear();
            rs.msg_pos = 0;
            let mut eom = rs.pending.take().is_some_and(|p| p.2);
            while !eom {
                match self.next_data_event(rs, deadline)? {
                    Event::Data { end_of_message, .. } => eom = end_of_message,
                    _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
                }
            }
        }
        rs.stream = None;
        rs.pending = None;
        Ok(())
    }

    /// Reads up to the next message's first frame: its kind, and whether
    /// it is compressed.
    fn next_message_start(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<(MessageType, bool)> {
        loop {
            if let Event::MessageStart { kind, compressed } = self.next_data_event(rs, deadline)? {
                return Ok((kind, compressed));
            }
        }
    }

    /// Serves a compressed message to the streaming reader: inflates the
    /// next piece into the message buffer and copies from there.
    fn reader_read_compressed(&self, rs: &mut ReadSide, out: &mut [u8], deadline: Option<Instant>) -> Result<usize> {
        if rs.inflate.as_ref().is_some_and(|i| !i.in_message()) {
            if let Some(s) = rs.stream.as_mut() {
                s.done = true;
            }
            return Ok(0);
        }
        rs.msg.clear();
        rs.msg_pos = 0;
        let finished = self.inflate_some(rs, deadline, out.len().max(16 * 1024), true)?;
        let n = out.len().min(rs.msg.len());
        out[..n].copy_from_slice(&rs.msg.as_slice()[..n]);
        rs.msg_pos = n;
        if finished && n == rs.msg.len() {
            if let Some(s) = rs.stream.as_mut() {
                s.done = true;
            }
        }
        Ok(n)
    }

    fn check_sticky(&self, rs: &ReadSide) -> Result<()> {
        match &rs.sticky {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Runs the receiver until a data event, reading from the socket and
    /// dispatching control frames as needed. Ranges in the returned event
    /// index `rs.buf`.
    pub(super) fn next_data_event(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<Event> {
        loop {
            if self.is_shut() {
                return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
            }
            let base = rs.start;
            let (used, ev) = match rs.receiver.next(&mut rs.buf[base..rs.end]) {
                Ok(r) => r,
                Err(pe) => return Err(self.fail_protocol(rs, pe)),
            };
            rs.start += used;
            match ev {
                Event::NeedMore => {
                    self.fill(rs, deadline)?;
                }
                Event::Control { kind, start, end } => {
                    let mut payload = [0u8; 125];
                    let len = end - start;
                    payload[..len].copy_from_slice(&rs.buf[base + start..base + end]);
                    self.on_control(rs, kind, &payload[..len])?;
                }
                Event::MessageStart { .. } => return Ok(ev),
                Event::Data { start, end, end_of_message } => {
                    return Ok(Event::Data { start: base + start, end: base + end, end_of_message })
                }
            }
        }
    }

    fn on_control(&self, rs: &mut ReadSide, kind: MessageType, payload: &[u8]) -> Result<()> {
        let handlers = self.handlers()?;
        match kind {
            MessageType::Ping => match handlers.ping {
                Some(h) => h(self, payload),
                None => self.default_ping_handler(payload),
            },
            MessageType::Pong => match handlers.pong {
                Some(h) => h(self, payload),
                None => Ok(()),
            },
            _ => {
                let (code, reason) = match close::parse_payload(payload) {
                    Ok(r) => r,
                    Err(pe) => return Err(self.fail_protocol(rs, pe)),
                };
                self.record_end(code, reason.as_bytes());
                let handled = match handlers.close {
                    Some(h) => h(self, code, reason.as_bytes()),
                    None => self.default_close_handler(code, reason.as_bytes()),
                };
                // The close handshake is over once both frames have passed;
                // the engine's rule says who closes TCP (the server first).
                if self.close_sent() {
                    if after_close_sent(self.role, true) == TcpAfterClose::AwaitPeer {
                        self.await_peer_eof(rs, Instant::now() + super::CONTROL_REPLY_WAIT);
                    }
                    self.stream.shutdown();
                }
                let err = Error::new(ErrorKind::Closed, format!("websocket: close {code} {reason}"));
                rs.sticky = Some(err.clone());
                handled?;
                Err(err)
            }
        }
    }

    /// Fails the connection for a protocol violation by the peer: sends the
    /// matching close code, closes TCP, and makes the error permanent.
    pub(super) fn fail_protocol(&self, rs: &mut ReadSide, pe: ProtoError) -> Error {
        let kind = ErrorKind::from(pe.kind);
        let reason = pe.close_reason();
        let _ = self.write_close(pe.close_code(), reason, Some(Instant::now() + super::CONTROL_REPLY_WAIT));
        self.stream.shutdown();
        self.mark_ended();
        let err = Error::new(kind, format!("websocket: {} (sent close {})", pe.message, pe.close_code()));
        rs.sticky = Some(err.clone());
        err
    }

    /// Reads what the socket has into the read buffer, waiting up to the
    /// deadline for at least one byte.
    fn fill(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        if rs.start == rs.end {
            rs.start = 0;
            rs.end = 0;
        } else if rs.end == rs.buf.len() {
            if rs.start > 0 {
                rs.buf.copy_within(rs.start..rs.end, 0);
                rs.end -= rs.start;
                rs.start = 0;
            } else {
                let n = rs.buf.len() * 2;
                rs.buf.resize(n, 0);
            }
        }
        let n = self.read_some(rs, Target::Buf, deadline)?;
        rs.end += n;
        Ok(())
    }

    /// One successful read(2) into the read buffer or the message buffer.
    /// End of stream ends the connection with 1006.
    fn read_some(&self, rs: &mut ReadSide, target: Target, deadline: Option<Instant>) -> Result<usize> {
        loop {
            let dst = match target {
                Target::Buf => &mut rs.buf[rs.end..],
                Target::Msg(want) => rs.msg.tail(want),
            };
            match self.stream.read(dst) {
                Ok(0) => return Err(self.end_abnormally(rs, "the peer closed the connection without a close frame")),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    if self.is_shut() {
                        return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
                    }
                    match wait_ready(self.fd(), Interest::Read, deadline) {
                        Ok(true) => {}
                        Ok(false) => return Err(Error::timeout("read deadline passed")),
                        Err(e) => return Err(Error::io("poll", e)),
                    }
                }
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => {
                    if self.is_shut() {
                        return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
                    }
                    return Err(self.end_abnormally(rs, &format!("read failed: {e}")));
                }
            }
        }
    }

    /// A client after the close handshake: lets the server close TCP
    /// first (RFC 6455 7.1.1), waiting at most until `deadline`; anything
    /// that still arrives is discarded.
    fn await_peer_eof(&self, rs: &mut ReadSide, deadline: Instant) {
        loop {
            match self.stream.read(&mut rs.buf[..]) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) if e.kind() == IoKind::WouldBlock && !self.is_shut() => {
                    if !matches!(wait_ready(self.fd(), Interest::Read, Some(deadline)), Ok(true)) {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn end_abnormally(&self, rs: &mut ReadSide, why: &str) -> Error {
        if self.is_shut() {
            return Error::new(ErrorKind::LocallyClosed, "the connection was closed locally");
        }
        if let Some(e) = &rs.sticky {
            return e.clone();
        }
        self.record_end(close::ABNORMAL, b"");
        self.stream.shutdown();
        let err = Error::new(ErrorKind::Closed, format!("websocket: close 1006 (abnormal closure): {why}"));
        rs.sticky = Some(err.clone());
        err
    }

    /// Reads and discards until the peer's close frame arrives (used by
    /// `close_graceful` when no other thread is reading).
    pub(super) fn drain_until_close(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        if let Some(e) = &rs.sticky {
            return if e.kind() == ErrorKind::Closed { Ok(()) } else { Err(e.clone()) };
        }
        loop {
            match self.next_data_event(rs, deadline) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Timeout => {
                    return Err(Error::timeout("the peer did not answer the close frame in time"))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    /// The read buffer's free space.
    Buf,
    /// Up to this many bytes after the message being assembled.
    Msg(usize),
}

impl Conn {
    /// Marks the connection as ended without a peer close (protocol error).
    fn mark_ended(&self) {
        if let Ok(mut st) = self.close_state.lock() {
            st.ended = true;
        }
        self.close_cv.notify_all();
    }
}
