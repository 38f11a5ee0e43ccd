//! The engine's receive half (`RecvHalf`: frames, message assembly,
//! inflating with its budget, close parsing, owed replies) fed any bytes,
//! whole and split at fuzzer-chosen boundaries, the split run through the
//! three ways a driver hands bytes over: `process` alone (the engine keeps
//! a partial header), `restore_leftover` into the driver's buffer first
//! (the loop), and `direct_room`/`commit_direct` for large frames (the
//! blocking Conn).
//!
//! Checks: no panic; the same events, error and owed replies whatever the
//! split and the way in; nothing is delivered after the peer's close
//! (the split run keeps feeding after it); text is UTF-8, no message is
//! over the read limit; the bytes held stay within a bound set by the
//! bytes received (and the inflate ratio when compressed), never by the
//! lengths frames announce.
//!
//! Input: byte 0 = role (bit 0: client), permessage-deflate (bit 1), peer
//! no context takeover (bit 2), peer window bits 8 + (bits 3-5), way in
//! for the split run (bits 6-7: process, restore_leftover, direct_room,
//! each read picks one); byte 1 = read limit (0 = none, else n * 256
//! bytes); byte 2 = seed of the split sizes; the rest = the stream.
#![no_main]

#[path = "../common/harness.rs"]
mod harness;

use harness::{hash, Splits};
use libfuzzer_sys::fuzz_target;
use ws::proto::deflate::{Agreement, DeflateMemory};
use ws::proto::engine::{Owed, RecvEvent, RecvHalf, RecvSink};
use ws::proto::kind::MessageType;
use ws::proto::{ProtoErrorKind, Role};

#[global_allocator]
static ALLOC: harness::Counting = harness::Counting;

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Message { kind: MessageType, len: usize, hash: u64 },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close { code: u16, reason: String },
}

/// Records events and lends one message buffer back and forth, as the
/// session does.
struct Sink {
    items: Vec<Item>,
    closed: bool,
    limit: u64,
    spare: Vec<u8>,
}

impl RecvSink for Sink {
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
        assert!(!self.closed, "an event after the peer's close: {ev:?}");
        let item = match ev {
            RecvEvent::Message { kind, data } => {
                assert!(matches!(kind, MessageType::Text | MessageType::Binary), "message of kind {kind:?}");
                if kind == MessageType::Text {
                    assert!(std::str::from_utf8(data).is_ok(), "a text message that is not UTF-8");
                }
                assert!(self.limit == 0 || data.len() as u64 <= self.limit, "a message over the read limit");
                Item::Message { kind, len: data.len(), hash: hash(data) }
            }
            RecvEvent::Ping(p) => Item::Ping(p.to_vec()),
            RecvEvent::Pong(p) => Item::Pong(p.to_vec()),
            RecvEvent::Close { code, reason } => {
                self.closed = true;
                Item::Close { code, reason: reason.to_string() }
            }
        };
        self.items.push(item);
        true
    }
    fn take_buffer(&mut self, _need: usize) -> Vec<u8> {
        std::mem::take(&mut self.spare)
    }
    fn give_buffer(&mut self, buf: Vec<u8>) {
        assert!(buf.is_empty(), "a buffer given back holds bytes");
        self.spare = buf;
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    error: Option<ProtoErrorKind>,
    owed: Owed,
    peer_closed: bool,
}

struct Run {
    recv: RecvHalf,
    sink: Sink,
    error: Option<ProtoErrorKind>,
}

impl Run {
    fn new(role: Role, limit: u64, agreement: Option<&Agreement>) -> Run {
        Run {
            recv: RecvHalf::new(role, limit, agreement),
            sink: Sink { items: Vec::new(), closed: false, limit, spare: Vec::new() },
            error: None,
        }
    }

    fn check(&mut self, r: Result<(), ws::proto::ProtoError>) -> bool {
        if let Err(e) = r {
            self.error = Some(e.kind);
            return false;
        }
        true
    }

    /// Runs what the inflate budget left over, as every driver does before
    /// it reads more; false once the stream failed.
    fn drain_backlog(&mut self) -> bool {
        while self.recv.backlogged() {
            let r = self.recv.resume(&mut self.sink);
            if !self.check(r) {
                return false;
            }
        }
        true
    }

    /// Hands one read to the engine `way` (0: process, 1: restore_leftover
    /// first, 2: direct_room while a frame's payload is coming).
    fn feed(&mut self, mut chunk: &[u8], way: u8) -> bool {
        if way == 2 {
            while !chunk.is_empty() {
                let Some(room) = self.recv.direct_room(1, &mut self.sink) else { break };
                let n = room.len().min(chunk.len());
                room[..n].copy_from_slice(&chunk[..n]);
                chunk = &chunk[n..];
                let r = self.recv.commit_direct(n, &mut self.sink);
                if !self.check(r) {
                    return false;
                }
            }
            if chunk.is_empty() {
                return true;
            }
        }
        let r = if way == 1 {
            // The loop's way: the kept bytes go in front of the new ones
            // in the driver's buffer (a header is at most 144 bytes kept).
            let mut buf = vec![0u8; 144 + chunk.len()];
            let k = self.recv.restore_leftover(&mut buf);
            buf[k..k + chunk.len()].copy_from_slice(chunk);
            self.recv.process(&mut buf[..k + chunk.len()], &mut self.sink)
        } else {
            let mut buf = chunk.to_vec();
            self.recv.process(&mut buf, &mut self.sink)
        };
        self.check(r) && self.drain_backlog()
    }

    fn finish(mut self) -> Outcome {
        let owed = self.recv.take_owed();
        Outcome { items: self.sink.items, error: self.error, owed, peer_closed: self.recv.peer_closed() }
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let role = if input[0] & 1 != 0 { Role::Client } else { Role::Server };
    let agreement = (input[0] & 2 != 0).then(|| Agreement {
        our_window_bits: Some(15),
        our_no_context_takeover: false,
        peer_no_context_takeover: input[0] & 4 != 0,
        peer_window_bits: 8 + (input[0] >> 3 & 7),
        mem_level: 8,
        memory: DeflateMemory::Dedicated,
    });
    let ways = input[0] >> 6;
    let limit = input[1] as u64 * 256;
    let mut splits = Splits(input[2] as u32 | 0x100);
    let stream = &input[3..];

    // What the engine may hold: the bytes received a few times over (the
    // input copy, the message, a buffer growing by doubling, what the
    // budget left over) plus fixed state (zlib's, a read ahead of 256 KiB
    // for a frame in progress); compressed, the inflate ratio on top.
    let ratio = if agreement.is_some() { 2100 } else { 8 };
    let bound = (4 << 20) + ratio * stream.len();

    let base = harness::start();
    let mut whole = Run::new(role, limit, agreement.as_ref());
    let mut buf = stream.to_vec();
    let r = whole.recv.process(&mut buf, &mut whole.sink);
    drop(buf);
    if whole.check(r) {
        whole.drain_backlog();
    }
    let whole = whole.finish();
    let held = harness::peak_above(base);
    assert!(held <= bound, "the whole stream made the engine hold {held} bytes (bound {bound})");

    let base = harness::start();
    let mut split = Run::new(role, limit, agreement.as_ref());
    let mut rest = stream;
    while !rest.is_empty() {
        let n = splits.next(300);
        let way = if ways == 3 { (splits.next(3) - 1) as u8 } else { ways };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        // After the peer's close the reads go on: they must change nothing.
        if !split.feed(chunk, way) {
            break;
        }
    }
    let split = split.finish();
    let held = harness::peak_above(base);
    assert!(held <= bound, "the split stream made the engine hold {held} bytes (bound {bound})");

    assert_eq!(whole, split, "the split stream decoded differently");
    assert_eq!(whole.peer_closed, whole.owed.close_echo.is_some(), "a close frame without its echo owed");
});
