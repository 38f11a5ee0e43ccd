//! The frame receiver: any split of the input into reads gives the same
//! messages, control frames and error as the whole input at once, and so
//! does reading large payloads straight into the caller's buffer
//! (`accept_payload`, as the blocking Conn does).
//!
//! Input: byte 0 = role (bit 0: client), RSV1 allowed (bit 1), payload
//! path (bit 2: accept_payload), single-frame messages as one event
//! (`set_whole_messages`: bit 3 for the whole-input run, bit 4 for the
//! split run, so the fast path is compared with the general one); byte 1 = read limit (0 = none, else
//! n * 64 bytes); byte 2 = seed of the split sizes; the rest = the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::proto::kind::MessageType;
use ws::proto::receiver::{Event, Receiver};
use ws::proto::{ProtoErrorKind, Role};

#[derive(Debug, PartialEq, Eq)]
enum Item {
    Message { kind: MessageType, compressed: bool, data: Vec<u8> },
    Control { kind: MessageType, payload: Vec<u8> },
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    items: Vec<Item>,
    /// The message still in progress at the end: kind, compressed, and its
    /// bytes so far (not compared when the stream failed: how much of a
    /// failing piece was handed out before the failure depends on the split).
    open: Option<(MessageType, bool, Vec<u8>)>,
    error: Option<ProtoErrorKind>,
}

struct Run {
    r: Receiver,
    out: Outcome,
    buf: Vec<u8>,
}

impl Run {
    fn new(role: Role, rsv1: bool, limit: u64, whole_messages: bool) -> Run {
        let mut r = Receiver::new(role, limit);
        r.set_allow_rsv1(rsv1);
        r.set_whole_messages(whole_messages);
        Run { r, out: Outcome { items: Vec::new(), open: None, error: None }, buf: Vec::new() }
    }

    fn data(&mut self, bytes: &[u8], end_of_message: bool) {
        let open = self.out.open.as_mut().expect("Data outside a message");
        open.2.extend_from_slice(bytes);
        if end_of_message {
            let (kind, compressed, data) = self.out.open.take().unwrap();
            self.out.items.push(Item::Message { kind, compressed, data });
        }
    }

    /// Processes what is buffered; false once the stream failed.
    fn drain(&mut self) -> bool {
        loop {
            if self.out.error.is_some() {
                return false;
            }
            let (used, ev) = match self.r.next(&mut self.buf) {
                Ok(x) => x,
                Err(e) => {
                    self.out.error = Some(e.kind);
                    return false;
                }
            };
            match ev {
                Event::NeedMore => {
                    assert_eq!(used, 0, "NeedMore consumed bytes");
                    return true;
                }
                Event::MessageStart { kind, compressed } => {
                    assert!(self.out.open.is_none(), "MessageStart inside a message");
                    self.out.open = Some((kind, compressed, Vec::new()));
                }
                Event::Data { start, end, end_of_message } => {
                    let bytes = self.buf[start..end].to_vec();
                    self.data(&bytes, end_of_message);
                }
                Event::Message { kind, start, end } => {
                    assert!(self.out.open.is_none(), "a whole Message inside a message");
                    self.out.items.push(Item::Message { kind, compressed: false, data: self.buf[start..end].to_vec() })
                }
                Event::Control { kind, start, end } => {
                    self.out.items.push(Item::Control { kind, payload: self.buf[start..end].to_vec() })
                }
            }
            assert!(used <= self.buf.len());
            self.buf.drain(..used);
        }
    }

    /// Feeds one read. With `direct`, payload bytes of a frame in progress
    /// go through `accept_payload` without passing through the buffer.
    fn feed(&mut self, mut chunk: &[u8], direct: bool) -> bool {
        while direct && self.buf.is_empty() && !chunk.is_empty() && self.out.error.is_none() {
            let Some(left) = self.r.frame_remaining() else { break };
            let n = (left.min(chunk.len() as u64)) as usize;
            if n == 0 {
                break;
            }
            let mut piece = chunk[..n].to_vec();
            chunk = &chunk[n..];
            if let Err(e) = self.r.accept_payload(&mut piece) {
                self.out.error = Some(e.kind);
                return false;
            }
            let eom = self.r.frame_remaining().is_none() && !self.r.in_message();
            self.data(&piece, eom);
        }
        self.buf.extend_from_slice(chunk);
        self.drain()
    }

    /// `piecewise`: neither run hands out single-frame messages as one
    /// event. When one does, whether a failing single-frame message had
    /// started (`MessageStart`) depends on the split (the one event comes
    /// only when the whole frame is in the input), so the message in
    /// progress at a failure is not compared.
    fn finish(mut self, piecewise: bool) -> Outcome {
        if self.out.error.is_some() {
            if !piecewise {
                self.out.open = None;
            } else if let Some(open) = self.out.open.as_mut() {
                open.2.clear();
            }
        }
        self.out
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let role = if input[0] & 1 != 0 { Role::Client } else { Role::Server };
    let rsv1 = input[0] & 2 != 0;
    let direct = input[0] & 4 != 0;
    let limit = input[1] as u64 * 64;
    let mut seed = input[2] as u32 | 0x100;
    let stream = &input[3..];

    let (whole_fast, split_fast) = (input[0] & 8 != 0, input[0] & 16 != 0);
    let piecewise = !whole_fast && !split_fast;
    let mut whole = Run::new(role, rsv1, limit, whole_fast);
    whole.feed(stream, false);
    let whole = whole.finish(piecewise);

    let mut split = Run::new(role, rsv1, limit, split_fast);
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: read sizes 1..=64, different for every seed.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (1 + seed % 64) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        if !split.feed(chunk, direct) {
            break;
        }
    }
    let split = split.finish(piecewise);
    assert_eq!(whole, split, "the split stream decoded differently");
});
