//! An open connection on the loop's thread: reading, turning bytes into
//! callbacks with the sans-IO receiver, control frames, and the close
//! handshake. An idle connection holds no buffer: received bytes are
//! parsed in the loop's shared read buffer, and only an unfinished frame
//! header or control frame (at most 139 bytes) is kept per connection.

use std::io::ErrorKind as IoKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::handle::{ConnHandle, CLOSING, OPEN};
use super::handler::Handler;
use crate::api::conn::MessageType;
use crate::error::{Error, ErrorKind};
use crate::proto::deflate::codec::TAIL;
use crate::proto::deflate::{Agreement, Inflater};
use crate::proto::receiver::{ControlKind, Event, MessageKind, Receiver};
use crate::proto::{close, ProtoError, Role};

/// A frame header (14) plus a whole control payload (125).
const LEFTOVER_MAX: usize = 144;
/// Reads per connection per loop iteration before others get a turn.
const READ_BUDGET: usize = 8;
/// Reserving ahead for the rest of a frame goes at most this far (the
/// frame's length comes from the peer).
const READ_BUFFER_HINT: u64 = 4 * 1024 * 1024;
/// Inflated output is produced in steps of at most this, so the read limit
/// stops a decompression bomb early.
const INFLATE_STEP: usize = 64 * 1024;

/// How a connection came out of a read or a flush.
pub(super) enum Outcome {
    /// Keep it; nothing more to read now.
    Idle,
    /// The read budget ran out with data left: read again next iteration.
    MoreToRead,
    /// It ended: close it with this code and reason (and report `error`).
    End { code: u16, reason: Vec<u8>, error: Option<Error> },
}

struct Assembly {
    kind: MessageKind,
    compressed: bool,
    had_data: bool,
}

pub(super) struct LiveConn {
    pub handle: ConnHandle,
    pub handler: Arc<dyn Handler>,
    receiver: Receiver,
    leftover: [u8; LEFTOVER_MAX],
    left_len: u8,
    /// A message that spans reads (or is compressed) is assembled here;
    /// empty and without capacity between such messages.
    msg: Vec<u8>,
    assembling: Option<Assembly>,
    inflater: Option<Box<Inflater>>,
    pub last_read: Instant,
    pub last_message: Instant,
    pub ping_sent: Option<Instant>,
    /// The peer's close frame arrived.
    pub peer_closed: bool,
    /// When the close handshake must be over.
    pub close_deadline: Option<Instant>,
    /// Readiness arrived while reading was paused: read on resume.
    pub read_missed: bool,
}

impl LiveConn {
    pub fn new(
        handle: ConnHandle,
        handler: Arc<dyn Handler>,
        read_limit: u64,
        inflate: Option<Agreement>,
        leftover: &[u8],
    ) -> (LiveConn, Vec<u8>) {
        let mut receiver = Receiver::new(handle.role(), read_limit);
        receiver.set_allow_rsv1(inflate.is_some());
        let now = Instant::now();
        let conn = LiveConn {
            handle,
            handler,
            receiver,
            leftover: [0; LEFTOVER_MAX],
            left_len: 0,
            msg: Vec::new(),
            assembling: None,
            inflater: inflate.map(|a| Box::new(Inflater::for_agreement(&a))),
            last_read: now,
            last_message: now,
            ping_sent: None,
            peer_closed: false,
            close_deadline: None,
            read_missed: false,
        };
        (conn, leftover.to_vec())
    }

    /// Reads what the socket has and dispatches it. A short read ends the
    /// turn (the socket is empty; new data raises a new edge) unless
    /// `to_end` asks to read until the socket says so.
    pub fn on_readable(&mut self, rbuf: &mut [u8], to_end: bool, now: Instant) -> Outcome {
        for _ in 0..READ_BUDGET {
            if self.handle.is_reading_paused() {
                self.read_missed = true;
                return Outcome::Idle;
            }
            let k = self.left_len as usize;
            rbuf[..k].copy_from_slice(&self.leftover[..k]);
            let n = match self.handle.0.stream.read(&mut rbuf[k..]) {
                Ok(0) => return self.eof(),
                Ok(n) => n,
                Err(e) if e.kind() == IoKind::WouldBlock => return Outcome::Idle,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => return self.io_failure(e),
            };
            self.left_len = 0;
            self.last_read = now;
            self.ping_sent = None;
            // Under TLS a short read says nothing about the socket (a record
            // was decrypted, more may wait): read on to WouldBlock.
            let short = k + n < rbuf.len() && !self.handle.0.stream.is_tls();
            match self.process(&mut rbuf[..k + n]) {
                Outcome::Idle => {}
                other => return other,
            }
            // A short read drained the socket; new data raises a new edge.
            if short && !to_end {
                return Outcome::Idle;
            }
        }
        Outcome::MoreToRead
    }

    /// Feeds bytes that arrived with the handshake.
    pub fn feed(&mut self, rbuf: &mut [u8], bytes: &[u8]) -> Outcome {
        if bytes.is_empty() {
            return Outcome::Idle;
        }
        rbuf[..bytes.len()].copy_from_slice(bytes);
        self.process(&mut rbuf[..bytes.len()])
    }

    fn eof(&mut self) -> Outcome {
        if self.peer_closed {
            let (code, reason) = self.handle.0.ended.get().cloned().unwrap_or((close::NO_STATUS, Vec::new()));
            return Outcome::End { code, reason, error: None };
        }
        Outcome::End {
            code: close::ABNORMAL,
            reason: Vec::new(),
            error: Some(Error::new(ErrorKind::Closed, "the peer closed the connection without a close frame")),
        }
    }

    fn io_failure(&mut self, e: std::io::Error) -> Outcome {
        if self.peer_closed {
            return self.eof();
        }
        Outcome::End { code: close::ABNORMAL, reason: Vec::new(), error: Some(Error::io("read", e)) }
    }

    /// Runs the receiver over `buf` (unmasking in place) and dispatches.
    fn process(&mut self, buf: &mut [u8]) -> Outcome {
        let mut pos = 0;
        loop {
            if self.peer_closed {
                // Nothing after a close frame counts (RFC 6455 5.5.1).
                return Outcome::Idle;
            }
            let (used, ev) = match self.receiver.next(&mut buf[pos..]) {
                Ok(r) => r,
                Err(pe) => return self.fail(pe),
            };
            let base = pos;
            pos += used;
            let r = match ev {
                Event::NeedMore => {
                    let rest = &buf[pos..];
                    debug_assert!(rest.len() <= LEFTOVER_MAX);
                    let n = rest.len().min(LEFTOVER_MAX);
                    self.leftover[..n].copy_from_slice(&rest[..n]);
                    self.left_len = n as u8;
                    return Outcome::Idle;
                }
                Event::MessageStart { kind, compressed } => {
                    self.assembling = Some(Assembly { kind, compressed, had_data: false });
                    Ok(())
                }
                Event::Data { start, end, end_of_message } => {
                    self.on_data(&buf[base + start..base + end], end_of_message)
                }
                Event::Control { kind, start, end } => {
                    let mut payload = [0u8; 125];
                    let len = end - start;
                    payload[..len].copy_from_slice(&buf[base + start..base + end]);
                    self.on_control(kind, &payload[..len])
                }
            };
            if let Err(pe) = r {
                return self.fail(pe);
            }
            if self.handle.0.state.load(Ordering::SeqCst) > CLOSING {
                return Outcome::Idle;
            }
        }
    }

    fn on_data(&mut self, data: &[u8], eom: bool) -> Result<(), ProtoError> {
        let Some(a) = self.assembling.as_mut() else {
            return Err(ProtoError::protocol("data without a message"));
        };
        let kind = MessageType::from(a.kind);
        if a.compressed {
            self.inflate(data, eom)?;
            if !eom {
                return Ok(());
            }
            if kind == MessageType::Text && simdutf8::basic::from_utf8(&self.msg).is_err() {
                return Err(ProtoError::utf8("text message is not valid UTF-8"));
            }
        } else if eom && !a.had_data {
            // The whole message is in the read buffer: no copy.
            self.assembling = None;
            self.deliver(kind, data);
            return Ok(());
        } else {
            a.had_data = true;
            // Grow once to the frame's size rather than by doubling.
            let frame_rest = self.receiver.frame_remaining().unwrap_or(0).min(READ_BUFFER_HINT);
            let need = data.len() + frame_rest as usize;
            if self.msg.capacity() == 0 {
                self.msg = self.handle.0.loop_shared.buffer_for(need);
            }
            self.msg.reserve(need);
            self.msg.extend_from_slice(data);
            if !eom {
                return Ok(());
            }
        }
        self.assembling = None;
        let msg = std::mem::take(&mut self.msg);
        self.deliver(kind, &msg);
        self.handle.0.loop_shared.recycle(msg);
        Ok(())
    }

    fn deliver(&mut self, kind: MessageType, data: &[u8]) {
        // The loop's clock of this iteration: no clock read per message.
        self.last_message = self.last_read;
        self.handler.on_message(&self.handle, kind, data);
    }

    /// Inflates one piece of a compressed message into `msg`, stopping at
    /// the read limit.
    fn inflate(&mut self, mut input: &[u8], eom: bool) -> Result<(), ProtoError> {
        let limit = self.receiver.max_message();
        let Some(inf) = self.inflater.as_mut() else {
            return Err(ProtoError::protocol("compressed message without negotiated compression"));
        };
        let mut tail: &[u8] = if eom { &TAIL } else { &[] };
        loop {
            if input.is_empty() && !tail.is_empty() {
                input = tail;
                tail = &[];
            }
            let len = self.msg.len();
            self.msg.resize(len + INFLATE_STEP, 0);
            let r = inf.inflate(input, &mut self.msg[len..]);
            let (used, produced) = match r {
                Ok(x) => x,
                Err(pe) => {
                    self.msg.truncate(len);
                    return Err(pe);
                }
            };
            self.msg.truncate(len + produced);
            input = &input[used..];
            if limit != 0 && self.msg.len() as u64 > limit {
                return Err(ProtoError::too_big("message exceeds the read limit once inflated"));
            }
            if produced == INFLATE_STEP {
                continue; // more output may be waiting
            }
            if input.is_empty() && tail.is_empty() {
                break;
            }
            if used == 0 && produced == 0 {
                return Err(ProtoError::invalid_data("compressed data makes no progress"));
            }
        }
        if eom {
            inf.end_message();
        }
        Ok(())
    }

    fn on_control(&mut self, kind: ControlKind, payload: &[u8]) -> Result<(), ProtoError> {
        match kind {
            ControlKind::Ping => {
                // Answered whatever the application does (RFC 6455 5.5.2);
                // after our close, nothing more may be sent.
                if self.handle.0.state.load(Ordering::SeqCst) == OPEN {
                    let _ = self.handle.send(MessageType::Pong, payload);
                }
                self.handler.on_ping(&self.handle, payload);
            }
            ControlKind::Pong => {
                self.ping_sent = None;
                self.handler.on_pong(&self.handle, payload);
            }
            ControlKind::Close => {
                let (code, reason) = close::parse_payload(payload)?;
                let _ = self.handle.0.ended.set((code, reason.as_bytes().to_vec()));
                self.peer_closed = true;
                if self.handle.0.state.load(Ordering::SeqCst) == OPEN {
                    // Echo the code (an empty close for 1005).
                    let code = if close::is_valid_wire_code(code) { code } else { close::NO_STATUS };
                    let _ = self.handle.0.send_close(code, b"");
                }
                // The loop finishes the close once our close frame is out.
                self.handle.0.loop_shared.schedule(self.handle.0.token, self.handle.0.id);
            }
        }
        Ok(())
    }

    /// The peer broke the protocol: send the close code it earned, then end.
    fn fail(&mut self, pe: ProtoError) -> Outcome {
        let kind = ErrorKind::from(pe.kind);
        let reason = pe.close_reason();
        let _ = self.handle.0.send_close(pe.close_code(), reason);
        // Best effort: what the socket takes now (never blocking).
        if let Ok(mut ob) = self.handle.0.lock_out() {
            let _ = self.handle.0.write_out(&mut ob);
        }
        let err = Error::new(kind, format!("websocket: {} (sent close {})", pe.message, pe.close_code()));
        Outcome::End { code: close::ABNORMAL, reason: Vec::new(), error: Some(err) }
    }

    /// A ping for keepalive (best effort: a full queue skips it).
    pub fn send_keepalive_ping(&mut self, now: Instant) {
        if self.handle.send(MessageType::Ping, b"").is_ok() {
            self.ping_sent = Some(now);
        }
    }

    pub fn role(&self) -> Role {
        self.handle.role()
    }
}
