//! An open connection on the loop's thread: the driver of the engine's
//! receive half. It reads the socket (into the loop's shared buffer, or
//! for a large frame straight into the message buffer), passes the bytes
//! to `RecvHalf`, turns its events into callbacks and hands the replies
//! it owes to the send half. No protocol rule lives here. An idle
//! connection holds no buffer: only an unfinished frame header or control
//! frame (at most 144 bytes) is kept, inside the engine.
//!
//! Before each read (or each resume of a backlog) it asks the memory
//! budget how far the engine may grow (the engine's hold cap), and after
//! each engine call it reports what the engine holds. Refused, the
//! connection is starved: it is not read (TCP pushes back on its peer)
//! until the loop finds memory for it, or closed after its budget wait.

use std::io::ErrorKind as IoKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::handle::ConnHandle;
use super::handler::Handler;
use crate::api::budget::{starvation_error, Charge};
use crate::api::config::ConnConfig;
use crate::error::{Error, ErrorKind};
use crate::proto::engine::{ControlPayload, Deadlines, Phase, RecvEvent, RecvHalf, RecvSink};
use crate::proto::{close, ProtoError, Role};

/// Reads per connection per loop iteration before others get a turn.
const READ_BUDGET: usize = 8;
/// A data frame with at least this much payload still to come is read
/// straight into the message buffer (no copy through the read buffer).
const DIRECT_READ_MIN: u64 = 32 * 1024;
/// What one engine call may add at most when memory is plentiful: a
/// read's worth of input (the loop's buffer) and one inflate budget.
const CALL_GROWTH: usize = 256 * 1024 + 1024 * 1024;
/// The smallest step a connection is let grow by when memory is short
/// (one inflate step); a connection holding nothing always gets it.
const MIN_GROWTH: usize = 64 * 1024;

/// How a connection came out of a read or a flush.
pub(super) enum Outcome {
    /// Keep it; nothing more to read now.
    Idle,
    /// The read budget ran out with data left: read again next iteration.
    MoreToRead,
    /// It ended: close it with this code and reason (and report `error`).
    End { code: u16, reason: Vec<u8>, error: Option<Error> },
    /// The memory budget refused it more: not read until the loop finds
    /// memory for it (`LiveConn::admit`) or its budget wait ends.
    Starved,
}

pub(super) struct LiveConn {
    pub handle: ConnHandle,
    pub handler: Arc<dyn Handler>,
    recv: RecvHalf,
    pub deadlines: Deadlines,
    /// Readiness arrived while reading was paused: read on resume.
    pub read_missed: bool,
    /// What the engine holds, against the memory budget.
    charge: Charge,
    budget_wait: Duration,
    /// When the budget first refused this connection memory since it last
    /// held nothing: its budget wait runs from there, so a connection that
    /// is let through now and then still has to get its message done.
    pub starved_since: Option<Instant>,
    /// The last `admit` granted a full call's growth (memory is plentiful):
    /// the engine may take the loop's large kept buffer.
    roomy: bool,
    /// It is on the loop's list of starved connections.
    pub starve_listed: bool,
}

/// The engine's events as callbacks.
struct Sink<'a> {
    handle: &'a ConnHandle,
    handler: &'a dyn Handler,
    deadlines: &'a mut Deadlines,
    now: Instant,
    /// The engine may grow by a full call's worth (memory is not short).
    roomy: bool,
}

impl RecvSink for Sink<'_> {
    #[inline(always)]
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
        match ev {
            RecvEvent::Message { kind, data } => {
                self.deadlines.on_message(self.now);
                self.handler.on_message(self.handle, kind, data);
            }
            RecvEvent::Ping(p) => {
                // The pong is queued before the callback (its documented
                // order); the engine's owed-pong rule applies in `owe_pong`.
                self.handle.0.owe_pong(ControlPayload::new(p));
                self.handler.on_ping(self.handle, p);
            }
            RecvEvent::Pong(p) => {
                self.deadlines.on_pong();
                self.handler.on_pong(self.handle, p);
            }
            RecvEvent::Close { code, reason } => {
                let _ = self.handle.0.ended.set((code, reason.as_bytes().to_vec()));
            }
        }
        // A callback may have aborted the connection: stop at once.
        self.handle.0.close.phase() != Phase::Closed
    }

    fn take_buffer(&mut self, need: usize) -> Vec<u8> {
        // A pooled buffer, or the loop's kept large one when the message
        // needs more (no fresh pages per large message) and memory is not
        // short (its whole capacity would count against the budget).
        let need = if self.roomy { need } else { 0 };
        self.handle.0.loop_shared.buffer_for(need)
    }

    fn give_buffer(&mut self, buf: Vec<u8>) {
        self.handle.0.loop_shared.recycle(buf);
    }
}

impl LiveConn {
    pub fn new(
        handle: ConnHandle,
        handler: Arc<dyn Handler>,
        cfg: &ConnConfig,
        inflate: Option<crate::proto::deflate::Agreement>,
    ) -> LiveConn {
        let recv = RecvHalf::new(handle.role(), cfg.read_limit, inflate.as_ref());
        LiveConn {
            handle,
            handler,
            recv,
            deadlines: Deadlines::new(Instant::now()),
            read_missed: false,
            charge: cfg.memory_budget().charge(),
            budget_wait: cfg.budget_wait,
            starved_since: None,
            starve_listed: false,
            roomy: true,
        }
    }

    /// Asks the memory budget how far the engine may grow in its next call
    /// and sets that as its hold cap; false = refused (starved). Two
    /// atomic loads when memory is plentiful.
    #[inline(always)]
    pub fn admit(&mut self, now: Instant) -> bool {
        let held = self.recv.held();
        self.roomy = self.charge.may_grow(CALL_GROWTH);
        let step = if self.roomy {
            CALL_GROWTH
        } else if held == 0 || self.charge.may_grow(MIN_GROWTH) {
            // Holding nothing, a connection may always read (a message
            // that arrives whole costs nothing); so small ones keep flowing.
            MIN_GROWTH
        } else {
            self.starved_since.get_or_insert(now);
            return false;
        };
        self.recv.set_hold_cap(held.saturating_add(step));
        true
    }

    /// Whether it has waited for memory longer than its budget wait.
    pub fn starved_too_long(&self, now: Instant) -> bool {
        self.starved_since.is_some_and(|s| now.saturating_duration_since(s) >= self.budget_wait)
    }

    /// Closes a connection starved longer than its budget wait: 1009 when
    /// what it holds is mostly its current message, else 1008.
    pub fn close_starved(&mut self) -> Outcome {
        let pe = starvation_error(self.recv.held_for_message(), self.recv.held());
        self.fail(pe)
    }

    pub fn peer_closed(&self) -> bool {
        self.recv.peer_closed()
    }

    /// Whether the read that just returned short drained the socket: the
    /// transport's to say, after the read (under TLS it depends on that
    /// read's socket read: see TlsLayers).
    #[inline(always)]
    fn drains(&self) -> bool {
        self.handle.0.stream.short_read_means_drained()
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
            if !self.admit(now) {
                return Outcome::Starved;
            }
            if self.recv.backlogged() {
                // Inflating used this turn's budget: no new bytes (TCP
                // pushes back) until the engine caught up.
                match self.run(now, |recv, sink| recv.resume(sink)) {
                    Outcome::Idle if self.recv.backlogged() => return Outcome::MoreToRead,
                    Outcome::Idle => continue,
                    other => return other,
                }
            }
            let direct_room = if self.recv.may_read_direct(DIRECT_READ_MIN) {
                let roomy = self.roomy;
                let mut sink =
                    Sink { handle: &self.handle, handler: &*self.handler, deadlines: &mut self.deadlines, now, roomy };
                self.recv.direct_room(DIRECT_READ_MIN, &mut sink)
            } else {
                None
            };
            let (n, short, direct) = if let Some(room) = direct_room {
                let want = room.len();
                match self.handle.0.stream.read(room) {
                    Ok(n) => (n, n < want && self.drains(), true),
                    Err(e) => {
                        // The room stays for the next read (no new zeroing).
                        match e.kind() {
                            IoKind::WouldBlock => return Outcome::Idle,
                            IoKind::Interrupted => continue,
                            _ => return self.io_failure(e),
                        }
                    }
                }
            } else {
                let k = self.recv.restore_leftover(rbuf);
                match self.handle.0.stream.read(&mut rbuf[k..]) {
                    Ok(0) => (0, true, false),
                    Ok(n) => (k + n, k + n < rbuf.len() && self.drains(), false),
                    Err(e) => {
                        // Keep the unfinished header for the next read.
                        let _ = self.run(now, |recv, sink| recv.process(&mut rbuf[..k], sink));
                        match e.kind() {
                            IoKind::WouldBlock => return Outcome::Idle,
                            IoKind::Interrupted => continue,
                            _ => return self.io_failure(e),
                        }
                    }
                }
            };
            if n == 0 {
                if direct {
                    let _ = self.run(now, |recv, sink| recv.commit_direct(0, sink));
                }
                return self.eof();
            }
            self.deadlines.on_read(now);
            let outcome = if direct {
                self.run(now, |recv, sink| recv.commit_direct(n, sink))
            } else {
                self.run(now, |recv, sink| recv.process(&mut rbuf[..n], sink))
            };
            match outcome {
                Outcome::Idle if self.recv.backlogged() => return Outcome::MoreToRead,
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
        let input = &mut rbuf[..bytes.len()];
        input.copy_from_slice(bytes);
        let now = Instant::now();
        // These bytes arrived with the handshake: they are processed even
        // when the budget refuses (bytes received are always kept); the
        // answer only sets how far inflating them may grow.
        let _ = self.admit(now);
        self.run(now, |recv, sink| recv.process(input, sink))
    }

    /// Runs one engine call with this connection's sink, then queues the
    /// replies the engine owes.
    fn run(&mut self, now: Instant, f: impl FnOnce(&mut RecvHalf, &mut Sink<'_>) -> Result<(), ProtoError>) -> Outcome {
        let roomy = self.roomy;
        let mut sink =
            Sink { handle: &self.handle, handler: &*self.handler, deadlines: &mut self.deadlines, now, roomy };
        let r = f(&mut self.recv, &mut sink);
        // What the engine holds now, against the budget (no atomic
        // operation when it did not change, e.g. whole messages).
        let held = self.recv.held();
        self.charge.set(held);
        if held == 0 {
            // Its messages went out: a starvation is over.
            self.starved_since = None;
        }
        if let Err(pe) = r {
            return self.fail(pe);
        }
        // The pong owed went out from the sink already (see `Ping`).
        if let Some(code) = self.recv.take_close_echo() {
            let sh = &self.handle.0;
            if sh.close.phase() == Phase::Open {
                let _ = sh.send_close(code, b"");
            }
            // The loop finishes the close once our close frame is out.
            sh.loop_shared.schedule(sh.token, sh.id);
        }
        Outcome::Idle
    }

    fn eof(&mut self) -> Outcome {
        if self.recv.peer_closed() {
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
        if self.recv.peer_closed() {
            return self.eof();
        }
        Outcome::End { code: close::ABNORMAL, reason: Vec::new(), error: Some(Error::io("read", e)) }
    }

    /// The peer broke the protocol: send the close code it earned, then end.
    fn fail(&mut self, pe: ProtoError) -> Outcome {
        let kind = ErrorKind::from(pe.kind);
        let _ = self.handle.0.send_close(pe.close_code(), pe.close_reason());
        // Best effort: what the socket takes now (never blocking).
        if let Ok(mut ob) = self.handle.0.lock_out() {
            let _ = self.handle.0.write_out(&mut ob);
        }
        let err = Error::new(kind, format!("websocket: {} (sent close {})", pe.message, pe.close_code()));
        Outcome::End { code: close::ABNORMAL, reason: Vec::new(), error: Some(err) }
    }

    /// A ping for keepalive (best effort: a full queue skips it).
    pub fn send_keepalive_ping(&mut self, now: Instant) {
        if self.handle.send(crate::proto::kind::MessageType::Ping, b"").is_ok() {
            self.deadlines.ping_sent(now);
        }
    }

    pub fn role(&self) -> Role {
        self.handle.role()
    }
}
