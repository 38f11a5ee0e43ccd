//! The sans-IO server `Session` (the engine's third driver, the C API's
//! `ws_session`) fed any bytes, whole and split at fuzzer-chosen
//! boundaries: the opening handshake, then frames, with and without
//! permessage-deflate negotiated. The handler echoes every message and
//! takes the output after every event, as a program would.
//!
//! Checks: no panic; the same events and the same output bytes whatever
//! the split; at most one open, first; nothing delivered after an error or
//! the peer's close (the split run keeps feeding after them); text is
//! UTF-8, no message over the read limit; the bytes held stay within a
//! bound set by the bytes received (and the inflate ratio when
//! compressed). And the output is right: a 101 (exactly the Upgrader's
//! answer for the request) or an HTTP error, and after a 101 frames a
//! client decodes, with the negotiated compression, into the echo of each
//! message, a pong for each ping, the echo of the peer's close code, or a
//! close with a protocol error's code after an error, and nothing after.
//!
//! Input: byte 0 = read limit (bits 0-1: 64 MiB default, none, 1000,
//! 70 000), the Upgrader accepts compression (bit 2) with
//! server_no_context_takeover (bit 3), a request put in front of the
//! stream (bits 4-5: none (the fuzzer writes it), plain, offering
//! permessage-deflate, offering it with window bits and
//! client_no_context_takeover), the compression memory mode (bits 6-7);
//! byte 1 = seed of the split sizes (bits 0-6), end with EOF or a timeout
//! an hour later (bit 7); the rest = the stream.
#![no_main]

#[path = "../common/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{hash, hash_more, Splits, HASH_START};
use libfuzzer_sys::fuzz_target;
use ws::api::fuzzing::{server_decision, ServerDecision};
use ws::api::{Session, SessionEvent, SessionHandler, Upgrader};
use ws::proto::deflate::{Agreement, DeflateMemory, DeflateOptions};
use ws::proto::engine::close_state::echo_code;
use ws::proto::engine::{RecvEvent, RecvHalf, RecvSink};
use ws::proto::kind::MessageType;
use ws::proto::Role;
use ws::ErrorKind;

#[global_allocator]
static ALLOC: harness::Counting = harness::Counting;

const REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
const OFFERS: [&str; 3] = [
    "",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits=9; \
     client_no_context_takeover\r\n",
];

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Open,
    Message { kind: MessageType, len: usize, hash: u64 },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close { code: u16, reason: Vec<u8> },
    Error { kind: ErrorKind, message: String },
}

struct Echo {
    items: Vec<Item>,
    over: bool,
    limit: u64,
    /// The output so far: its length and hash (not a copy: it would count
    /// against the memory bound), and the bytes themselves only when
    /// `keep_output` (the whole run, to decode them).
    out_len: usize,
    out_hash: u64,
    keep_output: bool,
    output: Vec<u8>,
}

impl Echo {
    fn new(limit: u64, keep_output: bool) -> Echo {
        Echo {
            items: Vec::new(),
            over: false,
            limit,
            out_len: 0,
            out_hash: HASH_START,
            keep_output,
            output: Vec::new(),
        }
    }

    /// Takes everything pending, as a program that writes it all would.
    fn take_output(&mut self, s: &Session) {
        let n = s.with_pending(|b| {
            self.out_hash = hash_more(self.out_hash, b);
            if self.keep_output {
                self.output.extend_from_slice(b);
            }
            b.len()
        });
        self.out_len += n;
        s.sent(n).expect("the pending bytes can be marked sent");
        assert!(!s.wants_write(), "output pending after all of it was sent");
    }
}

impl SessionHandler for Echo {
    fn on_event(&mut self, s: &Session, ev: SessionEvent<'_>) {
        assert!(!self.over, "an event after an error or the peer's close");
        let item = match ev {
            SessionEvent::Open { request, response } => {
                assert!(request.is_some() && response.is_none(), "a server's open carries the request");
                assert!(self.items.is_empty(), "open is not the first event");
                Item::Open
            }
            SessionEvent::Message { kind, data } => {
                assert_eq!(self.items.first(), Some(&Item::Open), "a message before the open");
                if kind == MessageType::Text {
                    assert!(std::str::from_utf8(data).is_ok(), "a text message that is not UTF-8");
                }
                assert!(self.limit == 0 || data.len() as u64 <= self.limit, "a message over the read limit");
                s.send(kind, data).expect("an open session echoes from inside a callback");
                Item::Message { kind, len: data.len(), hash: hash(data) }
            }
            SessionEvent::Ping(p) => Item::Ping(p.to_vec()),
            SessionEvent::Pong(p) => Item::Pong(p.to_vec()),
            SessionEvent::Close { code, reason } => {
                self.over = true;
                Item::Close { code, reason: reason.to_vec() }
            }
            SessionEvent::Error(e) => {
                self.over = true;
                assert!(s.is_finished(), "an error that does not finish the session");
                Item::Error { kind: e.kind(), message: e.to_string() }
            }
        };
        self.items.push(item);
        self.take_output(s);
    }
}

struct Outcome {
    items: Vec<Item>,
    out_len: usize,
    out_hash: u64,
    output: Vec<u8>,
}

/// One run over `reads`; `end_with_timeout` ends it with `on_timeout` an
/// hour later instead of EOF.
fn run<'a>(
    up: &Upgrader,
    reads: impl Iterator<Item = &'a [u8]>,
    limit: u64,
    keep_output: bool,
    end_with_timeout: bool,
) -> Outcome {
    let now = Instant::now();
    let s = Session::server(up, now).expect("a plain upgrader makes a session");
    let mut h = Echo::new(limit, keep_output);
    for chunk in reads {
        s.recv(chunk, now, &mut h).expect("recv outside a callback is never refused");
        h.take_output(&s);
    }
    if end_with_timeout {
        s.on_timeout(now + Duration::from_secs(3600), &mut h);
    } else {
        s.recv_eof(&mut h);
    }
    h.take_output(&s);
    Outcome { items: h.items, out_len: h.out_len, out_hash: h.out_hash, output: h.output }
}

#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Message { kind: MessageType, len: usize, hash: u64 },
    Pong(Vec<u8>),
    Close(u16),
    Other(String),
}

/// Decodes the server's frames as its peer would.
struct Client(Vec<Frame>);

impl RecvSink for Client {
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
        self.0.push(match ev {
            RecvEvent::Message { kind, data } => Frame::Message { kind, len: data.len(), hash: hash(data) },
            RecvEvent::Pong(p) => Frame::Pong(p.to_vec()),
            RecvEvent::Close { code, .. } => Frame::Close(code),
            other => Frame::Other(format!("{other:?}")),
        });
        true
    }
}

/// The output of the whole run against what its events say it must be.
fn check_output(out: &Outcome, decision: &ServerDecision) {
    let opened = out.items.first() == Some(&Item::Open);
    let agreement = match decision {
        ServerDecision::Accept { response, deflate, .. } => {
            assert!(opened, "the Upgrader accepts the request but the session did not open");
            assert!(out.output.starts_with(response), "the session's 101 is not the Upgrader's");
            deflate.clone()
        }
        _ => {
            assert!(!opened, "the session opened on a request the Upgrader does not accept");
            assert!(
                out.output.is_empty()
                    || (out.output.starts_with(b"HTTP/1.1 ") && !out.output.starts_with(b"HTTP/1.1 101")),
                "a refused handshake answered {:?}",
                String::from_utf8_lossy(&out.output[..out.output.len().min(40)])
            );
            return;
        }
    };
    let ServerDecision::Accept { response, .. } = decision else { unreachable!() };
    // The client's view of the agreement: it inflates what we compress.
    let client_agreement = agreement.map(|a| Agreement {
        our_window_bits: None,
        our_no_context_takeover: a.peer_no_context_takeover,
        peer_no_context_takeover: a.our_no_context_takeover,
        peer_window_bits: a.our_window_bits.unwrap_or(15),
        mem_level: 8,
        memory: DeflateMemory::Dedicated,
    });
    let mut client = RecvHalf::new(Role::Client, 0, client_agreement.as_ref());
    let mut frames = Client(Vec::new());
    let mut wire = out.output[response.len()..].to_vec();
    client.process(&mut wire, &mut frames).expect("the server's frames are valid");
    while client.backlogged() {
        client.resume(&mut frames).expect("the server's frames are valid");
    }

    let mut want = Vec::new();
    let mut error_close = false;
    for item in &out.items {
        match item {
            Item::Message { kind, len, hash } => want.push(Frame::Message { kind: *kind, len: *len, hash: *hash }),
            Item::Ping(p) => want.push(Frame::Pong(p.clone())),
            Item::Close { code, .. } => want.push(Frame::Close(echo_code(*code))),
            Item::Error { kind, .. } => {
                error_close = matches!(
                    kind,
                    ErrorKind::Protocol | ErrorKind::InvalidUtf8 | ErrorKind::ReadLimit | ErrorKind::InvalidData
                )
            }
            Item::Open | Item::Pong(_) => {}
        }
    }
    if error_close {
        // A protocol error's close: 1002, 1007 or 1009, last.
        let last = frames.0.pop();
        assert!(
            matches!(last, Some(Frame::Close(1002 | 1007 | 1009))),
            "after a protocol error the server sent {last:?}"
        );
    }
    assert_eq!(frames.0, want, "the server's output does not match its events");
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let limit = [ws::api::config::DEFAULT_READ_LIMIT, 0, 1000, 70_000][(input[0] & 3) as usize];
    let mut up = Upgrader::default();
    up.conn.read_limit = limit;
    if input[0] & 4 != 0 {
        let memory = [DeflateMemory::Pooled, DeflateMemory::Dedicated, DeflateMemory::Shared, DeflateMemory::Pooled]
            [(input[0] >> 6) as usize];
        up.conn.compression =
            Some(DeflateOptions { server_no_context_takeover: input[0] & 8 != 0, memory, ..DeflateOptions::default() });
    }
    let mut stream = Vec::with_capacity(input.len() + 300);
    let canned = (input[0] >> 4 & 3) as usize;
    if canned > 0 {
        stream.extend_from_slice(REQUEST.as_bytes());
        stream.extend_from_slice(OFFERS[canned - 1].as_bytes());
        stream.extend_from_slice(b"\r\n");
    }
    stream.extend_from_slice(&input[2..]);
    let end_with_timeout = input[1] & 0x80 != 0;
    let decision = server_decision(&up, &stream);

    // Memory: the received bytes a few times over (input copies, the
    // message, its echo), zlib's states and a 256 KiB read ahead;
    // compressed, the inflate ratio on top (and a buffer grown by doubling).
    let ratio = if up.conn.compression.is_some() { 2100 } else { 16 };
    let bound = (8 << 20) + ratio * stream.len();

    let base = harness::start();
    let whole = run(&up, std::iter::once(&stream[..]), limit, true, end_with_timeout);
    let held = harness::peak_above(base);
    // The kept output (and its growth by doubling) is the harness's.
    let kept = 2 * whole.output.capacity();
    assert!(held <= bound + kept, "the whole stream held {held} bytes (bound {bound} + {kept} kept output)");
    check_output(&whole, &decision);

    let mut splits = Splits(input[1] as u32 & 0x7f | 0x100);
    let mut reads = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(splits.next(300).min(rest.len()));
        reads.push(chunk);
        rest = tail;
    }
    let base = harness::start();
    let split = run(&up, reads.into_iter(), limit, false, end_with_timeout);
    let held = harness::peak_above(base);
    assert!(held <= bound, "the split stream held {held} bytes (bound {bound})");

    assert_eq!(whole.items, split.items, "the split stream gave other events");
    assert_eq!((whole.out_len, whole.out_hash), (split.out_len, split.out_hash), "the split stream gave other output");
});
