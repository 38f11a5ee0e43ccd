//! The reading half of a connection: the driver of the engine's receive
//! half. It owns the read buffer and the message buffer, reads the socket
//! (a large frame straight into the message buffer), runs the handlers,
//! and hands out whole messages or a message in pieces; the engine
//! ([`RecvHalf`]) does the protocol: frames, fragmentation, inflate with
//! its bounds, UTF-8, the read limit, close payloads.
//!
//! Memory budget: the message buffer counts against it (see `msgbuf`).
//! While the connection holds something, every socket read first asks the
//! budget for the growth it may cause, and waits on it (bounded by the
//! read deadline) instead of reading; waiting past the budget wait closes
//! the connection (1009 or 1008).

use std::io::ErrorKind as IoKind;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use super::msgbuf::MessageBuf;
use super::{Conn, MessageType};
use crate::api::budget::{starvation_error, MemoryBudget};
use crate::api::config::ConnConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::Agreement;
use crate::proto::engine::close_state::after_close_sent;
use crate::proto::engine::{ControlPayload, Piece, RecvEvent, RecvHalf, RecvSink, TcpAfterClose};
use crate::proto::{close, ProtoError, Role};
use crate::transport::wait::{wait_ready, Interest};

/// The message a streaming reader is giving out.
#[derive(Debug)]
struct StreamState {
    done: bool,
    /// The engine gave the message's last piece (what is left of it is
    /// in the message buffer).
    ended: bool,
}

pub(super) struct ReadSide {
    pub(super) buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The engine's receive half (in held mode: the bytes stay here).
    pub(super) recv: RecvHalf,
    pub(super) msg: MessageBuf,
    msg_pos: usize,
    /// A whole-message read that did not finish (its read timed out): the
    /// message's kind; what it collected is in `msg`. The next read
    /// continues it.
    assembling: Option<MessageType>,
    stream: Option<StreamState>,
    /// Data the streaming reader received but has not given out yet:
    /// `buf[start..end]`, and whether it ends the message.
    pending: Option<(usize, usize, bool)>,
    /// A permanent error: every later read returns this (gorilla's rule).
    sticky: Option<Error>,
    budget_wait: Duration,
    /// Since when the memory budget has refused this reader.
    starved_since: Option<Instant>,
}

impl ReadSide {
    pub(super) fn new(
        role: Role,
        config: &ConnConfig,
        budget: &MemoryBudget,
        leftover: &[u8],
        deflate: Option<&Agreement>,
    ) -> ReadSide {
        let mut buf = vec![0u8; config.read_buffer_size.max(leftover.len())];
        buf[..leftover.len()].copy_from_slice(leftover);
        ReadSide {
            buf,
            start: 0,
            end: leftover.len(),
            recv: RecvHalf::new_held(role, config.read_limit, deflate),
            msg: MessageBuf::new(budget),
            msg_pos: 0,
            assembling: None,
            stream: None,
            pending: None,
            sticky: None,
            budget_wait: config.budget_wait,
            starved_since: None,
        }
    }
}

/// Where one `process_held` call stopped.
enum Got {
    /// The input is used up (or ends inside a header): read more.
    Nothing,
    Start(MessageType),
    /// Payload of an uncompressed message at `buf[start..end]`.
    Raw {
        start: usize,
        end: usize,
        eom: bool,
    },
    /// Inflated payload, appended to the message buffer.
    Inflated {
        eom: bool,
    },
    Ping(ControlPayload),
    Pong(ControlPayload),
    Close {
        code: u16,
        reason: String,
    },
}

/// The sink of one `process_held` call: stops at every event, except that
/// a whole-message read (`collect`) takes inflated pieces on the spot.
struct Stop<'a> {
    got: Got,
    /// Where the engine's input starts in the read buffer.
    base: usize,
    msg: &'a mut MessageBuf,
    collect: bool,
}

impl RecvSink for Stop<'_> {
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
        self.got = match ev {
            RecvEvent::Ping(p) => Got::Ping(ControlPayload::new(p)),
            RecvEvent::Pong(p) => Got::Pong(ControlPayload::new(p)),
            RecvEvent::Close { code, reason } => Got::Close { code, reason: reason.to_owned() },
            // Held mode gives messages as pieces.
            RecvEvent::Message { .. } => return true,
        };
        false
    }

    fn on_piece(&mut self, piece: Piece<'_>) -> bool {
        match piece {
            Piece::Start { kind, .. } => self.got = Got::Start(kind),
            Piece::Data { data, at: Some(at), end_of_message } => {
                let start = self.base + at;
                self.got = Got::Raw { start, end: start + data.len(), eom: end_of_message };
            }
            Piece::Data { data, at: None, end_of_message } => {
                self.msg.extend(data);
                self.got = Got::Inflated { eom: end_of_message };
                // Collect on while the budget allows another piece; else
                // the reader waits for memory before inflating more.
                return self.collect && !end_of_message && self.msg.may_grow(PIECE_STEP);
            }
        }
        false
    }
}

/// Frames larger than this are read straight into the message buffer
/// instead of through the read buffer (one copy fewer, bigger reads).
const DIRECT_READ_MIN: u64 = 8 * 1024;

/// Single-frame messages up to this size are read whole into the read
/// buffer (which grows to fit) and returned without a copy.
const ZERO_COPY_MAX: usize = 256 * 1024;
/// The growth one read or inflated piece may cause when memory is short
/// (the engine's inflated pieces are at most this large).
const PIECE_STEP: usize = 64 * 1024;
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
            Ok((kind, loc)) => {
                // A message is done: a starvation is over.
                rs.starved_since = None;
                Ok(Message { guard: rs, kind, loc })
            }
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
        let kind = match rs.assembling {
            Some(kind) => kind,
            None => {
                let kind = self.next_message_start(rs, deadline)?;
                rs.assembling = Some(kind);
                rs.msg.clear();
                self.gather_single_frame(rs, deadline)?;
                kind
            }
        };
        loop {
            if self.try_direct_read(rs, deadline)? {
                rs.assembling = None;
                return Ok((kind, Loc::Msg));
            }
            match self.next_piece(rs, deadline, true)? {
                Got::Raw { start, end, eom } => {
                    if eom && rs.msg.len() == 0 {
                        // The whole message is in the read buffer: no copy.
                        rs.assembling = None;
                        return Ok((kind, Loc::Buf(start, end)));
                    }
                    rs.msg.extend(&rs.buf[start..end]);
                    if eom {
                        rs.assembling = None;
                        return Ok((kind, Loc::Msg));
                    }
                }
                Got::Inflated { eom: true } => {
                    rs.assembling = None;
                    return Ok((kind, Loc::Msg));
                }
                Got::Inflated { eom: false } => {}
                _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
            }
        }
    }

    /// When a message is one frame of moderate size that is not all in the
    /// read buffer yet, grows the buffer to fit it and reads until it is all
    /// there, so the message is returned without a copy and with as few
    /// reads as the socket allows. Larger messages are assembled instead.
    fn gather_single_frame(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        let payload = match rs.recv.direct_remaining() {
            Some(p) if rs.recv.frame_is_final() && p as usize > rs.end - rs.start => p as usize,
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
        let remaining = match rs.recv.direct_remaining() {
            Some(r) if r >= DIRECT_READ_MIN && rs.start == rs.end => r,
            _ => return Ok(false),
        };
        // Memory follows bytes received, not the length the header
        // announced: read at most as much again as the message holds
        // (at least 256 KiB, at most 4 MiB per read).
        let mut want = remaining.min(rs.msg.len().clamp(256 * 1024, 4 * 1024 * 1024) as u64) as usize;
        if !rs.msg.may_grow(want) {
            // Memory is short: read in small steps (the budget decides each).
            want = want.min(PIECE_STEP);
        }
        let n = self.read_some(rs, Target::Msg(want), deadline)?;
        let fresh = rs.msg.commit(n);
        rs.recv.accept_direct(fresh).map_err(|pe| self.fail_protocol(rs, pe))
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
            if let Some(kind) = rs.assembling.take() {
                // A whole-message read timed out part way: hand out what it
                // collected first.
                rs.stream = Some(StreamState { done: false, ended: false });
                return Ok(kind);
            }
            rs.msg.clear();
            let kind = self.next_message_start(&mut rs, deadline)?;
            rs.stream = Some(StreamState { done: false, ended: false });
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
        loop {
            let ended = rs.stream.as_ref().is_some_and(|s| s.ended);
            if rs.msg_pos < rs.msg.len() {
                let n = out.len().min(rs.msg.len() - rs.msg_pos);
                out[..n].copy_from_slice(&rs.msg.as_slice()[rs.msg_pos..rs.msg_pos + n]);
                rs.msg_pos += n;
                if ended && rs.msg_pos == rs.msg.len() {
                    self.stream_done(rs);
                }
                return Ok(n);
            }
            if let Some((start, end, eom)) = rs.pending.take() {
                let n = out.len().min(end - start);
                out[..n].copy_from_slice(&rs.buf[start..start + n]);
                if start + n < end {
                    rs.pending = Some((start + n, end, eom));
                } else if eom {
                    self.stream_done(rs);
                }
                if n > 0 || eom {
                    return Ok(n);
                }
                continue;
            }
            if ended {
                self.stream_done(rs);
                return Ok(0);
            }
            self.check_sticky(rs)?;
            rs.msg.clear();
            rs.msg_pos = 0;
            match self.next_piece(rs, deadline, false)? {
                Got::Raw { start, end, eom } => rs.pending = Some((start, end, eom)),
                Got::Inflated { eom } => {
                    if let Some(s) = rs.stream.as_mut() {
                        s.ended = eom;
                    }
                }
                _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
            }
        }
    }

    fn stream_done(&self, rs: &mut ReadSide) {
        if let Some(s) = rs.stream.as_mut() {
            s.done = true;
        }
        rs.starved_since = None;
    }

    /// Drops the unread rest of the streaming reader's message (a
    /// compressed one is still inflated: with context takeover the
    /// window must see every byte of it).
    fn discard_stream(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<()> {
        if let Some(s) = rs.stream.as_ref().filter(|s| !s.done) {
            let mut ended = s.ended || rs.pending.take().is_some_and(|p| p.2);
            while !ended {
                rs.msg.clear();
                ended = match self.next_piece(rs, deadline, false)? {
                    Got::Raw { eom, .. } | Got::Inflated { eom } => eom,
                    _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
                };
            }
            rs.msg.clear();
            rs.msg_pos = 0;
        }
        rs.stream = None;
        rs.pending = None;
        Ok(())
    }

    /// Reads up to the next message's start: its kind.
    fn next_message_start(&self, rs: &mut ReadSide, deadline: Option<Instant>) -> Result<MessageType> {
        loop {
            if let Got::Start(kind) = self.next_piece(rs, deadline, false)? {
                return Ok(kind);
            }
        }
    }

    fn check_sticky(&self, rs: &ReadSide) -> Result<()> {
        match &rs.sticky {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Runs the engine over the buffered bytes until it stops at a message
    /// start or piece, reading from the socket when it needs more and
    /// running the handlers for control frames on the way. `collect`:
    /// inflated pieces are gathered in the message buffer up to the
    /// message's end.
    fn next_piece(&self, rs: &mut ReadSide, deadline: Option<Instant>, collect: bool) -> Result<Got> {
        loop {
            if self.is_shut() {
                return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
            }
            let base = rs.start;
            let mut stop = Stop { got: Got::Nothing, base, msg: &mut rs.msg, collect };
            let r = rs.recv.process_held(&mut rs.buf[base..rs.end], &mut stop);
            let got = stop.got;
            rs.msg.set_extra(rs.recv.held());
            match r {
                Ok(used) => rs.start += used,
                Err(pe) => return Err(self.fail_protocol(rs, pe)),
            }
            match got {
                Got::Nothing => self.fill(rs, deadline)?,
                // Collecting: the inflated pieces are in the message
                // buffer, and the input ran out before the message's end.
                Got::Inflated { eom: false } if collect => {
                    if rs.recv.backlogged() {
                        // Stopped for memory with compressed input kept:
                        // inflate on once the budget allows.
                        self.await_budget(rs, PIECE_STEP, deadline)?;
                    } else {
                        self.fill(rs, deadline)?;
                    }
                }
                Got::Ping(p) => self.on_ping_pong(rs, MessageType::Ping, p.as_slice())?,
                Got::Pong(p) => self.on_ping_pong(rs, MessageType::Pong, p.as_slice())?,
                Got::Close { code, reason } => return Err(self.on_close(rs, code, &reason)),
                piece => return Ok(piece),
            }
        }
    }

    fn on_ping_pong(&self, rs: &mut ReadSide, kind: MessageType, payload: &[u8]) -> Result<()> {
        // The handlers answer (the default ping handler sends the pong).
        let _ = rs.recv.take_owed();
        let handlers = self.handlers()?;
        match (kind, handlers.ping, handlers.pong) {
            (MessageType::Ping, Some(h), _) => h(self, payload),
            (MessageType::Ping, None, _) => self.default_ping_handler(payload),
            (_, _, Some(h)) => h(self, payload),
            _ => Ok(()),
        }
    }

    /// The peer's close frame: the handler answers (by default the echo),
    /// then TCP closes as the engine's rule says. Every later read
    /// returns the `Closed` error this gives.
    fn on_close(&self, rs: &mut ReadSide, code: u16, reason: &str) -> Error {
        let _ = rs.recv.take_owed();
        self.record_end(code, reason.as_bytes());
        let handled = match self.handlers() {
            Ok(h) => match h.close {
                Some(h) => h(self, code, reason.as_bytes()),
                None => self.default_close_handler(code, reason.as_bytes()),
            },
            Err(e) => Err(e),
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
        match handled {
            Err(e) => e,
            Ok(()) => err,
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

    /// Before reading more while the connection holds memory: waits until
    /// the budget allows `need` more bytes, at most until the read
    /// deadline (`Timeout`, state kept) or the end of the budget wait
    /// (the connection is closed: 1009 or 1008).
    fn await_budget(&self, rs: &mut ReadSide, need: usize, deadline: Option<Instant>) -> Result<()> {
        if !rs.msg.holds_any() {
            rs.starved_since = None;
            return Ok(());
        }
        if rs.msg.may_grow(need) {
            return Ok(());
        }
        // The wait runs from the first refusal until a message is done
        // (or nothing is held): let through now and then, a connection
        // still has to get its message done within it.
        let give_up = *rs.starved_since.get_or_insert_with(Instant::now) + rs.budget_wait;
        let until = deadline.map_or(give_up, |d| d.min(give_up));
        if rs.msg.wait_may_grow(need, until, &|| self.is_shut()) {
            return Ok(());
        }
        if self.is_shut() {
            return Err(Error::new(ErrorKind::LocallyClosed, "the connection was closed locally"));
        }
        if Instant::now() >= give_up {
            let buffer = rs.msg.allocated();
            let pe = starvation_error(buffer + rs.recv.held_for_message(), buffer + rs.recv.held());
            return Err(self.fail_protocol(rs, pe));
        }
        Err(Error::timeout("read deadline passed (waiting for the memory budget)"))
    }

    /// One successful read(2) into the read buffer or the message buffer.
    /// End of stream ends the connection with 1006.
    fn read_some(&self, rs: &mut ReadSide, target: Target, deadline: Option<Instant>) -> Result<usize> {
        let need = match target {
            Target::Buf => PIECE_STEP,
            Target::Msg(want) => want,
        };
        self.await_budget(rs, need, deadline)?;
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
                    let (until, idle) = Conn::wait_until(deadline, self.read_timeout());
                    match wait_ready(self.fd(), Interest::Read, until) {
                        Ok(true) => {}
                        Ok(false) if idle => {
                            return Err(Error::timeout("read timeout passed: nothing arrived for the read timeout"))
                        }
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
            rs.msg.clear();
            match self.next_piece(rs, deadline, false) {
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
