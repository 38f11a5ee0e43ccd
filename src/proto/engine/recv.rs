//! The receive half of a connection: bytes in, events out.
//!
//! Frames come from the [`Receiver`]; this assembles messages (a message
//! that arrived whole in the caller's buffer is handed out from there,
//! without a copy; one that spans calls is assembled in a buffer the
//! driver lends), inflates compressed ones with every bound
//! ([`super::inflate`]), parses close frames, and records the replies the
//! protocol owes (a pong for the latest ping, the echo of a close) for
//! the send half. Bytes a call cannot use yet (a partial header, or input
//! left when the inflate budget ran out) are kept here, so a driver never
//! holds unparsed input itself.

use super::super::close;
use super::super::deflate::Agreement;
use super::super::kind::MessageType;
use super::super::receiver::{Event, Receiver};
use super::super::{ProtoError, Role};
use super::close_state::echo_code;
use super::inflate::{reserve_within, MessageInflater};

/// A frame header (14) plus a whole control payload (125), rounded up.
const LEFTOVER_MAX: usize = 144;
/// Inflated output one `process` call produces at most (the rest waits
/// for the next call, see [`RecvHalf::backlogged`]).
const INFLATE_BUDGET: usize = 1024 * 1024;
/// Inflated output per piece under `process_held`.
const PIECE_MAX: usize = 64 * 1024;
/// Growing the message buffer ahead for the rest of a frame goes at most
/// this far: memory follows bytes received, not lengths announced.
const RESERVE_AHEAD_MAX: u64 = 256 * 1024;

/// What the received bytes were.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvEvent<'a> {
    /// A whole data message (inflated if it was compressed).
    Message {
        kind: MessageType,
        data: &'a [u8],
    },
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer's close frame; its echo is owed (see [`RecvHalf::take_owed`]).
    Close {
        code: u16,
        reason: &'a str,
    },
}

/// A data message in pieces, for a driver that assembles or streams
/// messages itself ([`RecvHalf::new_held`]): its start, then its payload
/// as it arrives (inflated when compressed), the last piece marked.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Start {
        kind: MessageType,
        compressed: bool,
    },
    Data {
        data: &'a [u8],
        /// Where `data` is in the input given to `process_held` (payload
        /// unmasked in place); `None` for inflated bytes.
        at: Option<usize>,
        end_of_message: bool,
    },
}

/// The driver's side of `process`: events go to it, and it lends the
/// buffers messages are assembled in (so a loop can pool them).
pub trait RecvSink {
    /// Return false to drop the rest of the input (the connection ends);
    /// under `process_held`, to stop right after this event.
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool;
    /// A message piece ([`RecvHalf::new_held`] only); false: stop right
    /// after it, as for `on_event`.
    fn on_piece(&mut self, _piece: Piece<'_>) -> bool {
        true
    }
    /// A buffer for a message about to need `need` bytes (a hint: the
    /// buffer grows as needed).
    fn take_buffer(&mut self, _need: usize) -> Vec<u8> {
        Vec::new()
    }
    /// A message buffer that is empty again.
    fn give_buffer(&mut self, _buf: Vec<u8>) {}
}

/// Replies the protocol owes the peer, for the send half to queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owed {
    /// The latest unanswered ping's payload (RFC 6455 5.5.3 allows
    /// answering only the most recent one, so a ping flood owes one pong).
    pub pong: Option<ControlPayload>,
    /// The peer closed: echo this code (1005 = an empty close frame).
    pub close_echo: Option<u16>,
}

/// A control frame payload (at most 125 bytes) held by value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ControlPayload {
    bytes: [u8; 125],
    len: u8,
}

impl ControlPayload {
    pub fn new(data: &[u8]) -> ControlPayload {
        let len = data.len().min(125);
        let mut bytes = [0u8; 125];
        bytes[..len].copy_from_slice(&data[..len]);
        ControlPayload { bytes, len: len as u8 }
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for ControlPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ControlPayload({:?})", self.as_slice())
    }
}

struct Assembly {
    kind: MessageType,
    compressed: bool,
    /// Part of the message is in `msg` (it did not arrive in one piece).
    had_data: bool,
}

/// Compressed bytes of the current message not inflated yet (the budget
/// ran out), and the raw input after them.
#[derive(Default)]
struct Backlog {
    compressed: Vec<u8>,
    eom: bool,
    raw: Vec<u8>,
}

pub struct RecvHalf {
    receiver: Receiver,
    leftover: [u8; LEFTOVER_MAX],
    left_len: u8,
    cur: Option<Assembly>,
    msg: Vec<u8>,
    inflater: Option<Box<MessageInflater>>,
    backlog: Option<Box<Backlog>>,
    /// The latest ping's payload (boxed: an idle connection that never saw
    /// a ping carries 8 bytes, not 126) and whether its pong is owed.
    ping: Option<Box<ControlPayload>>,
    pong_owed: bool,
    close_echo: Option<u16>,
    peer_closed: bool,
    /// Zeroed bytes at the end of `msg` lent by `direct_room`, not filled yet.
    room: usize,
    /// Messages go out as [`Piece`]s and the driver holds the input
    /// ([`RecvHalf::new_held`]).
    held: bool,
    /// The most bytes [`RecvHalf::held`] may reach through growth the
    /// engine chooses (inflated output, room read ahead); bytes already
    /// received are always kept. The host's memory budget sets it.
    hold_cap: usize,
}

impl RecvHalf {
    /// `read_limit` in bytes (0 = none; inflated bytes for compressed
    /// messages); `inflate` is the permessage-deflate agreement, if any.
    pub fn new(role: Role, read_limit: u64, inflate: Option<&Agreement>) -> RecvHalf {
        let mut receiver = Receiver::new(role, read_limit);
        receiver.set_allow_rsv1(inflate.is_some());
        // Assembled mode never stops between a message's start and its
        // payload: a single-frame message may come as one event.
        receiver.set_whole_messages(true);
        RecvHalf {
            receiver,
            leftover: [0; LEFTOVER_MAX],
            left_len: 0,
            cur: None,
            msg: Vec::new(),
            inflater: inflate.map(|a| Box::new(MessageInflater::for_agreement(a))),
            backlog: None,
            ping: None,
            pong_owed: false,
            close_echo: None,
            peer_closed: false,
            room: 0,
            held: false,
            hold_cap: usize::MAX,
        }
    }

    /// For a driver that keeps received bytes in its own buffer and stops
    /// at each event (the blocking reader): data messages come as
    /// [`Piece`]s, not assembled here, and bytes not used yet stay with
    /// the driver (see [`RecvHalf::process_held`]).
    pub fn new_held(role: Role, read_limit: u64, inflate: Option<&Agreement>) -> RecvHalf {
        let mut h = RecvHalf { held: true, ..RecvHalf::new(role, read_limit, inflate) };
        // Held mode hands a message's start and its data out as separate
        // pieces and may stop between them.
        h.receiver.set_whole_messages(false);
        h
    }

    pub fn set_read_limit(&mut self, limit: u64) {
        self.receiver.set_max_message(limit);
    }

    pub fn read_limit(&self) -> u64 {
        self.receiver.max_message()
    }

    /// The peer's close frame arrived (nothing after it counts).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Bytes this half holds for input not handed out yet: the message
    /// being assembled or inflated (its buffer's capacity), compressed
    /// input not inflated yet, raw input queued behind it. In held mode
    /// the 64 KiB piece buffer is a fixed cost and not counted (the
    /// driver assembles the message). Constant time.
    pub fn held(&self) -> usize {
        let msg = if self.held { 0 } else { self.msg.capacity() };
        msg + self.backlog.as_ref().map_or(0, |b| b.compressed.capacity() + b.raw.capacity())
    }

    /// The part of [`RecvHalf::held`] that is the current message's own
    /// (its buffer and its compressed bytes; not the input after it).
    pub fn held_for_message(&self) -> usize {
        let msg = if self.held { 0 } else { self.msg.capacity() };
        msg + self.backlog.as_ref().map_or(0, |b| b.compressed.capacity())
    }

    /// Bounds what [`RecvHalf::held`] may grow to through the engine's own
    /// choices (inflating, reading ahead): when inflating reaches it, the
    /// rest waits in the backlog ([`RecvHalf::backlogged`]) until the host
    /// raises it. `usize::MAX` = no bound (the default).
    pub fn set_hold_cap(&mut self, cap: usize) {
        self.hold_cap = cap;
    }

    /// The capacity the message buffer may grow to under the hold cap.
    fn msg_ceiling(&self) -> usize {
        let other = self.held() - if self.held { 0 } else { self.msg.capacity() };
        self.hold_cap.saturating_sub(other)
    }

    /// Input is waiting inside the engine (the inflate budget ran out):
    /// call [`RecvHalf::resume`] before reading more, so TCP pushes back.
    pub fn backlogged(&self) -> bool {
        self.backlog.is_some()
    }

    /// Takes the replies owed so far.
    pub fn take_owed(&mut self) -> Owed {
        let pong = if std::mem::take(&mut self.pong_owed) { self.ping.as_deref().copied() } else { None };
        Owed { pong, close_echo: self.close_echo.take() }
    }

    /// The close echo owed, for a driver whose sink answered the pings
    /// itself (the owed pong is dropped). Per read, so it copies no
    /// 125-byte payload as `take_owed` does.
    #[inline]
    pub fn take_close_echo(&mut self) -> Option<u16> {
        self.pong_owed = false;
        self.close_echo.take()
    }

    /// Writes the kept bytes of an unfinished header or control frame at
    /// the start of `buf`; the driver reads after them and passes
    /// `buf[..returned + n]` to `process`.
    #[inline]
    pub fn restore_leftover(&mut self, buf: &mut [u8]) -> usize {
        let k = self.left_len as usize;
        if k > 0 {
            buf[..k].copy_from_slice(&self.leftover[..k]);
            self.left_len = 0;
        }
        k
    }

    /// Processes received bytes (unmasking them in place). Everything is
    /// consumed: events go to `sink`, unparsed bytes stay here (a driver
    /// that calls `restore_leftover` first saves their copy).
    #[inline(always)]
    pub fn process<S: RecvSink + ?Sized>(&mut self, input: &mut [u8], sink: &mut S) -> Result<(), ProtoError> {
        self.drop_room();
        if let Some(b) = self.backlog.as_mut() {
            // Keep the order: new bytes queue behind the backlog.
            b.raw.extend_from_slice(input);
            return self.resume(sink);
        }
        if self.left_len > 0 {
            // The driver did not put the kept bytes in front
            // (`restore_leftover`): join them here.
            let k = self.left_len as usize;
            self.left_len = 0;
            let mut raw = Vec::with_capacity(k + input.len());
            raw.extend_from_slice(&self.leftover[..k]);
            raw.extend_from_slice(input);
            self.backlog = Some(Box::new(Backlog { raw, ..Backlog::default() }));
            return self.resume(sink);
        }
        let mut budget = INFLATE_BUDGET;
        self.run(input, sink, &mut budget).map(|_| ())
    }

    /// `process` for a [`RecvHalf::new_held`] driver: runs until the sink
    /// asks to stop (or the input ends) and returns how many bytes of
    /// `input` were used. The rest (an unfinished header or control
    /// frame, or what follows where the sink stopped) stays with the
    /// driver, which passes it again, with more bytes after it if it
    /// needs more. A compressed piece's unused rest is kept here and goes
    /// out first on the next call.
    pub fn process_held<S: RecvSink + ?Sized>(&mut self, input: &mut [u8], sink: &mut S) -> Result<usize, ProtoError> {
        debug_assert!(self.held, "process_held needs RecvHalf::new_held");
        if self.backlog.is_some() && !self.resume_pieces(sink)? {
            return Ok(0);
        }
        let mut budget = usize::MAX;
        self.run(input, sink, &mut budget)
    }

    /// Inflates what a stopped `process_held` kept; false when the sink
    /// stopped again.
    fn resume_pieces<S: RecvSink + ?Sized>(&mut self, sink: &mut S) -> Result<bool, ProtoError> {
        let Some(mut b) = self.backlog.take() else { return Ok(true) };
        let z = std::mem::take(&mut b.compressed);
        match self.inflate_pieces(&z, b.eom, sink)? {
            Some(used) => {
                if self.cur.is_some() {
                    b.compressed = z[used..].to_vec();
                    self.backlog = Some(b);
                }
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Continues with input left in the backlog (no new bytes).
    pub fn resume<S: RecvSink + ?Sized>(&mut self, sink: &mut S) -> Result<(), ProtoError> {
        self.drop_room();
        if self.held {
            return self.resume_pieces(sink).map(|_| ());
        }
        let Some(mut b) = self.backlog.take() else { return Ok(()) };
        let mut budget = INFLATE_BUDGET;
        if !b.compressed.is_empty() || b.eom {
            let eom = b.eom;
            let z = std::mem::take(&mut b.compressed);
            match self.inflate(&z, eom, sink, &mut budget)? {
                Some(used) => {
                    b.compressed = z[used..].to_vec();
                    self.backlog = Some(b);
                    return Ok(());
                }
                None => b.eom = false,
            }
        }
        let mut raw = std::mem::take(&mut b.raw);
        let r = self.run(&mut raw, sink, &mut budget);
        if let Some(nb) = self.backlog.as_mut() {
            nb.raw.shrink_to_fit();
        }
        r.map(|_| ())
    }

    /// Runs the receiver over `input`; returns the bytes used (all of
    /// them unless `held`).
    fn run<S: RecvSink + ?Sized>(
        &mut self,
        input: &mut [u8],
        sink: &mut S,
        budget: &mut usize,
    ) -> Result<usize, ProtoError> {
        let mut pos = 0;
        loop {
            if self.peer_closed {
                // Nothing after a close frame counts (RFC 6455 5.5.1).
                return Ok(pos);
            }
            let (used, ev) = self.receiver.next(&mut input[pos..])?;
            let base = pos;
            pos += used;
            match ev {
                Event::NeedMore if self.held => return Ok(pos),
                Event::NeedMore => {
                    let rest = &input[pos..];
                    debug_assert!(rest.len() <= LEFTOVER_MAX);
                    let n = rest.len().min(LEFTOVER_MAX);
                    self.leftover[..n].copy_from_slice(&rest[..n]);
                    self.left_len = n as u8;
                    return Ok(input.len());
                }
                Event::MessageStart { kind, compressed } => {
                    if compressed {
                        let Some(inf) = self.inflater.as_mut() else {
                            return Err(ProtoError::protocol("compressed message without negotiated compression"));
                        };
                        inf.begin(kind == MessageType::Text);
                    }
                    self.cur = Some(Assembly { kind, compressed, had_data: false });
                    if self.held && !sink.on_piece(Piece::Start { kind, compressed }) {
                        return Ok(pos);
                    }
                }
                Event::Data { start, end, end_of_message } => {
                    let (s, e) = (base + start, base + end);
                    let Some(a) = self.cur.as_mut() else {
                        return Err(ProtoError::protocol("data without a message"));
                    };
                    if self.held {
                        if a.compressed {
                            if let Some(used) = self.inflate_pieces(&input[s..e], end_of_message, sink)? {
                                if self.cur.is_some() {
                                    // Stopped inside the piece: keep its rest.
                                    self.backlog = Some(Box::new(Backlog {
                                        compressed: input[s + used..e].to_vec(),
                                        eom: end_of_message,
                                        raw: Vec::new(),
                                    }));
                                }
                                return Ok(pos);
                            }
                            continue;
                        }
                        if end_of_message {
                            self.cur = None;
                        }
                        let piece = Piece::Data { data: &input[s..e], at: Some(s), end_of_message };
                        if !sink.on_piece(piece) {
                            return Ok(pos);
                        }
                        continue;
                    }
                    if a.compressed {
                        if let Some(used) = self.inflate(&input[s..e], end_of_message, sink, budget)? {
                            // The budget ran out: keep the rest for `resume`.
                            self.backlog = Some(Box::new(Backlog {
                                compressed: input[s + used..e].to_vec(),
                                eom: end_of_message,
                                raw: input[pos..].to_vec(),
                            }));
                            return Ok(input.len());
                        }
                    } else if end_of_message && !a.had_data {
                        // The whole message is in the caller's buffer: no copy.
                        let kind = a.kind;
                        self.cur = None;
                        if !sink.on_event(RecvEvent::Message { kind, data: &input[s..e] }) {
                            return Ok(pos);
                        }
                    } else {
                        a.had_data = true;
                        self.append(&input[s..e], sink);
                        if end_of_message && !self.deliver(sink) {
                            return Ok(pos);
                        }
                    }
                }
                Event::Message { kind, start, end } => {
                    // Not held (the receiver sends this only then), and no
                    // message is being assembled.
                    debug_assert!(!self.held && self.cur.is_none());
                    if !sink.on_event(RecvEvent::Message { kind, data: &input[base + start..base + end] }) {
                        return Ok(pos);
                    }
                }
                Event::Control { kind, start, end } => {
                    let payload = ControlPayload::new(&input[base + start..base + end]);
                    if !self.control(kind, payload.as_slice(), sink)? {
                        return Ok(pos);
                    }
                }
            }
        }
    }

    /// Appends payload to the message buffer, which grows once to the
    /// frame's size (up to a bound) rather than by doubling; the room
    /// reserved ahead stays under the hold cap (the payload itself is
    /// received already and always kept).
    fn append<S: RecvSink + ?Sized>(&mut self, data: &[u8], sink: &mut S) {
        let ceiling = self.msg_ceiling();
        let ahead = self.receiver.frame_remaining().unwrap_or(0).min(RESERVE_AHEAD_MAX) as usize;
        let need = self.msg.len() + data.len();
        let want = (need + ahead).min(ceiling.max(need));
        if self.msg.capacity() == 0 {
            self.msg = sink.take_buffer(want);
        }
        reserve_within(&mut self.msg, want, ceiling);
        self.msg.extend_from_slice(data);
    }

    /// Hands out the assembled message and gives its buffer back.
    fn deliver<S: RecvSink + ?Sized>(&mut self, sink: &mut S) -> bool {
        let kind = self.cur.take().map_or(MessageType::Binary, |a| a.kind);
        let go_on = sink.on_event(RecvEvent::Message { kind, data: &self.msg });
        let mut buf = std::mem::take(&mut self.msg);
        buf.clear();
        sink.give_buffer(buf);
        go_on
    }

    /// Inflates a piece of the current message; `Some(used)` when the
    /// budget ran out before the piece was consumed (or the message ended).
    fn inflate<S: RecvSink + ?Sized>(
        &mut self,
        z: &[u8],
        eom: bool,
        sink: &mut S,
        budget: &mut usize,
    ) -> Result<Option<usize>, ProtoError> {
        if self.msg.capacity() == 0 {
            self.msg = sink.take_buffer(0);
        }
        let limit = self.receiver.max_message();
        let ceiling = self.msg_ceiling();
        let inf = self.inflater.as_mut().expect("a compressed message has an inflater");
        let before = self.msg.len();
        let r = inf.inflate(z, eom, &mut self.msg, limit, *budget, ceiling)?;
        *budget = budget.saturating_sub(self.msg.len() - before);
        if r.done {
            self.deliver(sink);
            return Ok(None);
        }
        if r.used < z.len() || eom {
            return Ok(Some(r.used));
        }
        Ok(None)
    }

    /// Inflates a piece of the current message into pieces of at most
    /// `PIECE_MAX` bytes for the sink; `Some(used)` when the sink stopped
    /// (at `used` bytes of `z`).
    fn inflate_pieces<S: RecvSink + ?Sized>(
        &mut self,
        z: &[u8],
        eom: bool,
        sink: &mut S,
    ) -> Result<Option<usize>, ProtoError> {
        let limit = self.receiver.max_message();
        let mut used = 0;
        loop {
            let inf = self.inflater.as_mut().expect("a compressed message has an inflater");
            self.msg.clear();
            let r = inf.inflate(&z[used..], eom, &mut self.msg, limit, PIECE_MAX, usize::MAX)?;
            used += r.used;
            let full = self.msg.len() >= PIECE_MAX;
            if r.done {
                self.cur = None;
            }
            let go = if r.done || !self.msg.is_empty() {
                sink.on_piece(Piece::Data { data: &self.msg, at: None, end_of_message: r.done })
            } else {
                true
            };
            self.msg.clear();
            if !go {
                return Ok(Some(used));
            }
            if r.done || (used == z.len() && !eom && !full) {
                return Ok(None);
            }
        }
    }

    /// [`RecvHalf::new_held`]: when an uncompressed data frame is being
    /// received and nothing is kept here, the bytes of its payload still
    /// to come (the driver may read them straight into its message buffer
    /// and pass them to [`RecvHalf::accept_direct`]).
    pub fn direct_remaining(&self) -> Option<u64> {
        let a = self.cur.as_ref()?;
        if a.compressed || self.left_len > 0 || self.backlog.is_some() || self.peer_closed {
            return None;
        }
        self.receiver.frame_remaining()
    }

    /// The data frame being received is the last of its message.
    pub fn frame_is_final(&self) -> bool {
        self.receiver.frame_is_final()
    }

    /// [`RecvHalf::new_held`]: the next payload bytes of the frame
    /// `direct_remaining` announced (at most that many), read by the
    /// driver; unmasked and checked in place. True when they end the
    /// message.
    pub fn accept_direct(&mut self, payload: &mut [u8]) -> Result<bool, ProtoError> {
        self.receiver.accept_payload(payload)?;
        if self.receiver.in_message() {
            return Ok(false);
        }
        self.cur = None;
        Ok(true)
    }

    fn control<S: RecvSink + ?Sized>(
        &mut self,
        kind: MessageType,
        payload: &[u8],
        sink: &mut S,
    ) -> Result<bool, ProtoError> {
        Ok(match kind {
            MessageType::Ping => {
                match self.ping.as_mut() {
                    Some(b) => **b = ControlPayload::new(payload),
                    None => self.ping = Some(Box::new(ControlPayload::new(payload))),
                }
                self.pong_owed = true;
                sink.on_event(RecvEvent::Ping(payload))
            }
            MessageType::Pong => sink.on_event(RecvEvent::Pong(payload)),
            _ => {
                let (code, reason) = close::parse_payload(payload)?;
                self.peer_closed = true;
                self.close_echo = Some(echo_code(code));
                sink.on_event(RecvEvent::Close { code, reason })
            }
        })
    }

    /// For a driver that reads large frames straight into the message
    /// buffer (no copy through its read buffer): when an uncompressed data
    /// frame with at least `min` payload bytes left is being received and
    /// nothing is kept here, the room to read its next bytes into. The
    /// room stays (zeroed once) until `commit_direct`, so a read that
    /// finds the socket empty costs nothing the next time.
    pub fn direct_room<S: RecvSink + ?Sized>(&mut self, min: u64, sink: &mut S) -> Option<&mut [u8]> {
        match self.receiver.frame_remaining() {
            Some(left) if left >= min => self.direct_room_for(left, min, sink),
            _ => None,
        }
    }

    /// Whether [`RecvHalf::direct_room`] may give room: a data frame with
    /// at least `min` bytes still to come is under way. Inlined: asked
    /// before every read, and almost always no large frame is.
    #[inline]
    pub fn may_read_direct(&self, min: u64) -> bool {
        self.receiver.frame_remaining().is_some_and(|left| left >= min)
    }

    fn direct_room_for<S: RecvSink + ?Sized>(&mut self, left: u64, min: u64, sink: &mut S) -> Option<&mut [u8]> {
        let compressed = self.cur.as_ref()?.compressed;
        if left < min || compressed || self.left_len > 0 || self.backlog.is_some() || self.peer_closed {
            return None;
        }
        // The room counts against the hold cap; too little room under it
        // and the driver reads through its own buffer instead.
        let filled = self.msg.len() - self.room;
        let ceiling = self.msg_ceiling();
        let n = (left.min(RESERVE_AHEAD_MAX) as usize).min(ceiling.max(self.msg.capacity()).saturating_sub(filled));
        if n == 0 || (n as u64) < min.min(left) {
            return None;
        }
        if let Some(a) = self.cur.as_mut() {
            a.had_data = true;
        }
        if self.room != n {
            self.drop_room();
            if self.msg.capacity() == 0 {
                self.msg = sink.take_buffer(n);
            }
            reserve_within(&mut self.msg, filled + n, ceiling);
            self.msg.resize(filled + n, 0);
            self.room = n;
        }
        let len = self.msg.len();
        Some(&mut self.msg[len - n..])
    }

    /// `n` bytes were read into the room [`RecvHalf::direct_room`] gave.
    pub fn commit_direct<S: RecvSink + ?Sized>(&mut self, n: usize, sink: &mut S) -> Result<(), ProtoError> {
        let start = self.msg.len() - self.room;
        self.room = 0;
        self.msg.truncate(start + n.min(self.msg.len() - start));
        self.receiver.accept_payload(&mut self.msg[start..])?;
        if !self.receiver.in_message() {
            self.deliver(sink);
        }
        Ok(())
    }

    /// Forgets room handed out by `direct_room` and not filled.
    fn drop_room(&mut self) {
        let len = self.msg.len() - self.room;
        self.msg.truncate(len);
        self.room = 0;
    }
}

#[cfg(test)]
mod tests {

    /// permessage-deflate with context takeover, full windows, dedicated state.
    fn takeover() -> crate::proto::deflate::Agreement {
        crate::proto::deflate::Agreement {
            our_window_bits: Some(15),
            our_no_context_takeover: false,
            peer_no_context_takeover: false,
            peer_window_bits: 15,
            mem_level: 8,
            memory: crate::proto::deflate::DeflateMemory::Dedicated,
        }
    }
    use super::*;
    use crate::proto::deflate::Deflater;
    use crate::proto::frame::{encode_header, OpCode, MAX_HEADER_LEN};
    use crate::proto::mask::apply_mask;
    use crate::proto::ProtoErrorKind;
    use flate2::Compression;

    #[derive(Default)]
    struct Collect(Vec<String>);

    impl RecvSink for Collect {
        fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
            self.0.push(match ev {
                RecvEvent::Message { kind, data } => format!("{kind:?}:{}", String::from_utf8_lossy(data)),
                RecvEvent::Ping(p) => format!("ping:{}", String::from_utf8_lossy(p)),
                RecvEvent::Pong(p) => format!("pong:{}", String::from_utf8_lossy(p)),
                RecvEvent::Close { code, reason } => format!("close:{code}:{reason}"),
            });
            true
        }
    }

    fn frame(fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let m = [1, 2, 3, 4];
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut h, fin, rsv1, op, payload.len() as u64, Some(m));
        let mut v = h[..n].to_vec();
        let s = v.len();
        v.extend_from_slice(payload);
        apply_mask(&mut v[s..], m, 0);
        v
    }

    /// Feeds `input` in pieces of `step` bytes the way a driver does.
    fn feed(r: &mut RecvHalf, input: &[u8], step: usize) -> Result<Vec<String>, ProtoError> {
        let mut sink = Collect::default();
        let mut buf = vec![0u8; step + LEFTOVER_MAX];
        for piece in input.chunks(step) {
            while r.backlogged() {
                r.resume(&mut sink)?;
            }
            let k = r.restore_leftover(&mut buf);
            buf[k..k + piece.len()].copy_from_slice(piece);
            r.process(&mut buf[..k + piece.len()], &mut sink)?;
        }
        while r.backlogged() {
            r.resume(&mut sink)?;
        }
        Ok(sink.0)
    }

    fn sample() -> Vec<u8> {
        let mut v = frame(false, false, OpCode::Text, "héllo ".as_bytes());
        v.extend(frame(true, false, OpCode::Ping, b"p1"));
        v.extend(frame(true, false, OpCode::Continuation, "wörld".as_bytes()));
        v.extend(frame(true, false, OpCode::Binary, b"whole"));
        let mut z = Vec::new();
        let mut d = Deflater::new(Compression::default(), 15, false);
        d.compress_message(&b"squeeze ".repeat(100), &mut z);
        v.extend(frame(true, true, OpCode::Text, &z));
        let mut z2 = Vec::new();
        d.compress_message(b"", &mut z2); // after a message: must still be valid
        v.extend(frame(true, true, OpCode::Binary, &z2));
        v.extend(frame(true, false, OpCode::Close, &[3, 232, b'b', b'y', b'e']));
        v.extend(frame(true, false, OpCode::Text, b"ignored after close"));
        v
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let input = sample();
        let want = feed(&mut RecvHalf::new(Role::Server, 0, Some(&takeover())), &input, input.len()).unwrap();
        assert_eq!(want.len(), 6, "{want:?}");
        assert_eq!(want[0], "ping:p1");
        assert_eq!(want[1], "Text:héllo wörld");
        assert_eq!(want[5], "close:1000:bye");
        for step in 1..input.len() {
            let mut r = RecvHalf::new(Role::Server, 0, Some(&takeover()));
            assert_eq!(feed(&mut r, &input, step).unwrap(), want, "step {step}");
            let owed = r.take_owed();
            assert_eq!(owed.pong.unwrap().as_slice(), b"p1");
            assert_eq!(owed.close_echo, Some(1000));
        }
    }

    #[test]
    fn splits_without_restoring_the_leftover_give_the_same_events() {
        let input = sample();
        let want = feed(&mut RecvHalf::new(Role::Server, 0, Some(&takeover())), &input, input.len()).unwrap();
        for split in 0..input.len() {
            let mut r = RecvHalf::new(Role::Server, 0, Some(&takeover()));
            let mut sink = Collect::default();
            let (mut a, mut b) = (input[..split].to_vec(), input[split..].to_vec());
            r.process(&mut a, &mut sink).unwrap();
            r.process(&mut b, &mut sink).unwrap();
            while r.backlogged() {
                r.resume(&mut sink).unwrap();
            }
            assert_eq!(sink.0, want, "split {split}");
        }
    }

    /// A held-mode driver: keeps the input itself, stops at every event
    /// and assembles messages from pieces.
    #[derive(Default)]
    struct Held {
        events: Vec<String>,
        msg: Vec<u8>,
        kind: Option<MessageType>,
        raw: Option<(usize, usize)>,
        stops: usize,
    }

    impl RecvSink for Held {
        fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
            let mut c = Collect::default();
            c.on_event(ev);
            self.events.extend(c.0);
            self.stops += 1;
            false
        }
        fn on_piece(&mut self, piece: Piece<'_>) -> bool {
            self.stops += 1;
            match piece {
                Piece::Start { kind, .. } => self.kind = Some(kind),
                Piece::Data { data, at, end_of_message } => {
                    match at {
                        Some(a) => self.raw = Some((a, a + data.len())),
                        None => self.msg.extend_from_slice(data),
                    }
                    if end_of_message && at.is_none() {
                        self.finish();
                    }
                    if end_of_message && at.is_some() {
                        self.events.push("eom".into());
                    }
                }
            }
            false
        }
    }

    impl Held {
        fn finish(&mut self) {
            let kind = self.kind.take().expect("a started message");
            self.events.push(format!("{kind:?}:{}", String::from_utf8_lossy(&self.msg)));
            self.msg.clear();
        }
    }

    #[test]
    fn held_mode_gives_the_same_messages_at_every_split() {
        let input = sample();
        let want = feed(&mut RecvHalf::new(Role::Server, 0, Some(&takeover())), &input, input.len()).unwrap();
        for step in 1..=input.len() {
            let mut r = RecvHalf::new_held(Role::Server, 0, Some(&takeover()));
            let mut sink = Held::default();
            let mut buf: Vec<u8> = Vec::new();
            let mut fed = 0;
            let mut got = Vec::new();
            loop {
                let used = r.process_held(&mut buf, &mut sink).unwrap();
                if let Some((a, b)) = sink.raw.take() {
                    sink.msg.extend_from_slice(&buf[a..b]);
                }
                let stopped = std::mem::take(&mut sink.stops) > 0;
                for e in sink.events.drain(..) {
                    if e == "eom" {
                        let kind = sink.kind.take().unwrap();
                        got.push(format!("{kind:?}:{}", String::from_utf8_lossy(&sink.msg)));
                        sink.msg.clear();
                    } else {
                        got.push(e);
                    }
                }
                buf.drain(..used);
                if used == 0 && !r.backlogged() && !stopped {
                    if fed == input.len() || r.peer_closed() {
                        break;
                    }
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
            }
            assert_eq!(got, want, "step {step}");
        }
    }

    #[test]
    fn a_ping_flood_owes_one_pong() {
        let mut input = Vec::new();
        for i in 0..1000 {
            input.extend(frame(true, false, OpCode::Ping, format!("{i}").as_bytes()));
        }
        let mut r = RecvHalf::new(Role::Server, 0, None);
        assert_eq!(feed(&mut r, &input, 4096).unwrap().len(), 1000);
        assert_eq!(r.take_owed().pong.unwrap().as_slice(), b"999");
        assert_eq!(r.take_owed().pong, None);
    }

    #[test]
    fn inflate_budget_backlogs_and_keeps_order() {
        let big = vec![b'z'; 5 * INFLATE_BUDGET];
        let mut z = Vec::new();
        Deflater::new(Compression::default(), 15, false).compress_message(&big, &mut z);
        let mut input = frame(true, true, OpCode::Binary, &z);
        input.extend(frame(true, false, OpCode::Text, b"after"));
        let mut r = RecvHalf::new(Role::Server, 0, Some(&takeover()));
        let mut sink = Collect::default();
        r.process(&mut input, &mut sink).unwrap();
        assert!(r.backlogged() && sink.0.is_empty());
        let mut rounds = 0;
        while r.backlogged() {
            r.resume(&mut sink).unwrap();
            rounds += 1;
        }
        assert!(rounds >= 4);
        assert_eq!(sink.0.len(), 2);
        assert_eq!(sink.0[1], "Text:after");
    }

    #[test]
    fn the_hold_cap_bounds_inflating_and_held_reports_it() {
        let big = vec![b'z'; 4 << 20];
        let mut z = Vec::new();
        Deflater::new(Compression::default(), 15, false).compress_message(&big, &mut z);
        let mut input = frame(true, true, OpCode::Binary, &z);
        input.extend(frame(true, false, OpCode::Text, b"after"));
        let mut r = RecvHalf::new(Role::Server, 0, Some(&takeover()));
        let cap = 300_000;
        r.set_hold_cap(cap);
        let mut sink = Collect::default();
        r.process(&mut input, &mut sink).unwrap();
        for _ in 0..10 {
            r.resume(&mut sink).unwrap();
        }
        // Stuck at the cap: the backlog keeps the rest, nothing delivered.
        assert!(r.backlogged() && sink.0.is_empty());
        let held = r.held();
        assert!(held > cap / 2 && r.msg.capacity() <= cap, "held {held}, buffer {}", r.msg.capacity());
        assert!(r.held_for_message() < held, "the text frame after it is not the message's");
        r.set_hold_cap(usize::MAX);
        while r.backlogged() {
            r.resume(&mut sink).unwrap();
        }
        assert_eq!(sink.0.len(), 2);
        assert_eq!(sink.0[1], "Text:after");
        assert_eq!(r.held(), 0, "delivered: nothing held");
    }

    #[test]
    fn direct_reads_into_the_message_buffer() {
        let payload: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let whole = frame(true, false, OpCode::Binary, &payload);
        let mut r = RecvHalf::new(Role::Server, 0, None);
        let mut sink = Collect::default();
        let mut head = whole[..1000].to_vec();
        r.process(&mut head, &mut sink).unwrap();
        let mut pos = 1000;
        while pos < whole.len() {
            let room = r.direct_room(1, &mut sink).expect("inside a large frame");
            let n = room.len().min(7000).min(whole.len() - pos);
            room[..n].copy_from_slice(&whole[pos..pos + n]);
            pos += n;
            r.commit_direct(n, &mut sink).unwrap();
        }
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].len(), "Binary:".len() + String::from_utf8_lossy(&payload).len());
    }

    #[test]
    fn errors_carry_their_close_codes() {
        let mut r = RecvHalf::new(Role::Server, 0, None);
        let e = feed(&mut r, &frame(true, true, OpCode::Text, b"x"), 100).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::Protocol);
        let mut r = RecvHalf::new(Role::Server, 0, None);
        let e = feed(&mut r, &frame(true, false, OpCode::Close, &[3, 237]), 100).unwrap_err();
        assert_eq!(e.close_code(), close::PROTOCOL_ERROR);
    }
}
