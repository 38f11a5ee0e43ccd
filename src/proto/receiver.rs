//! Turns received bytes into message events: frame parsing, unmasking,
//! fragmentation rules, UTF-8 validation of text and the read limit.
//!
//! The caller owns the bytes. `Receiver::next` looks at the unconsumed
//! input, unmasks payload in place and says how many bytes it consumed and
//! what they were. Data is handed out as soon as it arrives, so a message
//! never has to fit in the caller's buffer; a control frame is handed out
//! whole (it is at most 125 bytes).

use super::frame::{self, FrameHeader, OpCode};
use super::kind::MessageType;
use super::mask::apply_mask;
use super::utf8::Utf8Validator;
use super::{ProtoError, Role};

/// What the consumed bytes were. Ranges index the input slice passed to
/// [`Receiver::next`] and are already unmasked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing can be decided without more bytes.
    NeedMore,
    /// The first frame of a data message; its payload follows as `Data`.
    MessageStart { kind: MessageType, compressed: bool },
    /// Payload bytes of the current message. `end_of_message` is set with
    /// the last bytes of the final frame (possibly an empty range).
    Data { start: usize, end: usize, end_of_message: bool },
    /// A whole control frame.
    Control { kind: MessageType, start: usize, end: usize },
    /// A whole uncompressed data message that arrived as one frame, all
    /// of it in the input (only with [`Receiver::set_whole_messages`]):
    /// what `MessageStart` and one final `Data` would say, in one event.
    Message { kind: MessageType, start: usize, end: usize },
}

#[derive(Debug)]
struct CurrentMessage {
    kind: MessageType,
    compressed: bool,
    len: u64,
}

#[derive(Debug)]
pub struct Receiver {
    role: Role,
    allow_rsv1: bool,
    max_message: u64,
    /// Payload still to come of the data frame being read (`None` between frames).
    frame_remaining: Option<u64>,
    frame_mask: Option<[u8; 4]>,
    frame_pos: u64,
    frame_fin: bool,
    message: Option<CurrentMessage>,
    utf8: Utf8Validator,
    /// Hand out single-frame messages as one [`Event::Message`].
    whole: bool,
}

impl Receiver {
    /// `max_message` is the read limit in bytes (0 = none).
    pub fn new(role: Role, max_message: u64) -> Self {
        Receiver {
            role,
            allow_rsv1: false,
            max_message,
            frame_remaining: None,
            frame_mask: None,
            frame_pos: 0,
            frame_fin: false,
            message: None,
            utf8: Utf8Validator::default(),
            whole: false,
        }
    }

    /// Hands out an uncompressed message that arrived as one frame, all of
    /// it in the input, as one [`Event::Message`] instead of
    /// `MessageStart` and `Data`: one call and one event per small message
    /// fewer (the pipelined small-message echo runs this per message). For
    /// a caller that does not need to stop between a message's start and
    /// its payload.
    pub fn set_whole_messages(&mut self, whole: bool) {
        self.whole = whole;
    }

    pub fn set_max_message(&mut self, max: u64) {
        self.max_message = max;
    }

    pub fn max_message(&self) -> u64 {
        self.max_message
    }

    /// Allows RSV1 on the first frame of a message (permessage-deflate).
    pub fn set_allow_rsv1(&mut self, allow: bool) {
        self.allow_rsv1 = allow;
    }

    /// True between the first frame of a data message and its last byte.
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Processes the start of `input`. Returns the bytes consumed (which the
    /// caller must drop before the next call) and the event.
    pub fn next(&mut self, input: &mut [u8]) -> Result<(usize, Event), ProtoError> {
        if self.frame_remaining.is_some() {
            return self.payload(input, 0);
        }
        let (hdr, hlen) = match frame::parse_header(input, self.role, self.allow_rsv1)? {
            None => return Ok((0, Event::NeedMore)),
            Some(h) => h,
        };
        if hdr.opcode.is_control() {
            return self.control(input, &hdr, hlen);
        }
        if self.whole
            && hdr.fin
            && !hdr.rsv1
            && self.message.is_none()
            && hdr.opcode != OpCode::Continuation
            && (input.len() - hlen) as u64 >= hdr.payload_len
        {
            return self.whole_message(input, &hdr, hlen);
        }
        self.begin_data_frame(&hdr)?;
        if hdr.opcode == OpCode::Continuation {
            self.payload(input, hlen)
        } else {
            let m = self.message.as_ref().expect("begin_data_frame sets the message");
            Ok((hlen, Event::MessageStart { kind: m.kind, compressed: m.compressed }))
        }
    }

    fn control(&mut self, input: &mut [u8], hdr: &FrameHeader, hlen: usize) -> Result<(usize, Event), ProtoError> {
        let end = hlen + hdr.payload_len as usize;
        if input.len() < end {
            return Ok((0, Event::NeedMore));
        }
        if let Some(m) = hdr.mask {
            apply_mask(&mut input[hlen..end], m, 0);
        }
        let kind = MessageType::from_opcode(hdr.opcode).expect("a control opcode");
        Ok((end, Event::Control { kind, start: hlen, end }))
    }

    /// A single-frame uncompressed message wholly in `input`: the same
    /// checks, in the same order, as `begin_data_frame` and
    /// `accept_payload` make on the general path, with the same errors.
    fn whole_message(
        &mut self,
        input: &mut [u8],
        hdr: &FrameHeader,
        hlen: usize,
    ) -> Result<(usize, Event), ProtoError> {
        if self.max_message != 0 && hdr.payload_len > self.max_message {
            return Err(ProtoError::too_big("message exceeds the read limit"));
        }
        let end = hlen + hdr.payload_len as usize;
        let data = &mut input[hlen..end];
        if let Some(m) = hdr.mask {
            apply_mask(data, m, 0);
        }
        let kind = if hdr.opcode == OpCode::Text { MessageType::Text } else { MessageType::Binary };
        if kind == MessageType::Text {
            self.utf8.reset();
            if self.utf8.feed(data).is_err() {
                return Err(ProtoError::utf8("text message is not valid UTF-8"));
            }
            if self.utf8.finish().is_err() {
                return Err(ProtoError::utf8("text message ends inside a UTF-8 sequence"));
            }
        }
        Ok((end, Event::Message { kind, start: hlen, end }))
    }

    fn begin_data_frame(&mut self, hdr: &FrameHeader) -> Result<(), ProtoError> {
        match (hdr.opcode, &self.message) {
            (OpCode::Continuation, None) => {
                return Err(ProtoError::protocol("continuation frame without a message to continue"))
            }
            (OpCode::Continuation, Some(_)) if hdr.rsv1 => {
                return Err(ProtoError::protocol("RSV1 set on a continuation frame"))
            }
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtoError::protocol("new data frame inside a fragmented message"))
            }
            _ => {}
        }
        let so_far = self.message.as_ref().map_or(0, |m| m.len);
        let total = so_far.saturating_add(hdr.payload_len);
        // A compressed message's limit applies to its inflated size, which
        // the decompressing reader checks as it inflates.
        let compressed = self.message.as_ref().map_or(hdr.rsv1, |m| m.compressed);
        if self.max_message != 0 && total > self.max_message && !compressed {
            return Err(ProtoError::too_big("message exceeds the read limit"));
        }
        if self.message.is_none() {
            let kind = if hdr.opcode == OpCode::Text { MessageType::Text } else { MessageType::Binary };
            self.message = Some(CurrentMessage { kind, compressed: hdr.rsv1, len: 0 });
            self.utf8.reset();
        }
        if let Some(m) = self.message.as_mut() {
            m.len = total;
        }
        self.frame_remaining = Some(hdr.payload_len);
        self.frame_mask = hdr.mask;
        self.frame_pos = 0;
        self.frame_fin = hdr.fin;
        Ok(())
    }

    /// Hands out the payload of the current data frame found at `input[from..]`.
    fn payload(&mut self, input: &mut [u8], from: usize) -> Result<(usize, Event), ProtoError> {
        let remaining = self.frame_remaining.expect("payload() is called inside a frame");
        let avail = remaining.min((input.len() - from) as u64) as usize;
        if avail == 0 && remaining > 0 {
            return Ok((
                from,
                if from > 0 { Event::Data { start: from, end: from, end_of_message: false } } else { Event::NeedMore },
            ));
        }
        let end = from + avail;
        self.accept_payload(&mut input[from..end])?;
        let end_of_message = self.frame_remaining.is_none() && self.message.is_none();
        Ok((end, Event::Data { start: from, end, end_of_message }))
    }

    /// Number of payload bytes left in the data frame being read, if any.
    /// A caller that reads them straight into its own buffer (to avoid a
    /// copy for large frames) passes them to [`Receiver::accept_payload`].
    #[inline]
    pub fn frame_remaining(&self) -> Option<u64> {
        self.frame_remaining
    }

    /// True when the data frame being read is the last of its message.
    pub fn frame_is_final(&self) -> bool {
        self.frame_remaining.is_some() && self.frame_fin
    }

    /// Unmasks and validates `data`, the next bytes of the current data
    /// frame's payload (at most `frame_remaining()`), and advances the state.
    pub fn accept_payload(&mut self, data: &mut [u8]) -> Result<(), ProtoError> {
        let remaining = self.frame_remaining.expect("accept_payload() is called inside a frame");
        debug_assert!(data.len() as u64 <= remaining);
        if let Some(m) = self.frame_mask {
            apply_mask(data, m, (self.frame_pos & 3) as usize);
        }
        let m = self.message.as_ref().expect("a data frame belongs to a message");
        let check_utf8 = m.kind == MessageType::Text && !m.compressed;
        if check_utf8 && self.utf8.feed(data).is_err() {
            return Err(ProtoError::utf8("text message is not valid UTF-8"));
        }
        self.frame_pos += data.len() as u64;
        let left = remaining - data.len() as u64;
        if left > 0 {
            self.frame_remaining = Some(left);
            return Ok(());
        }
        self.frame_remaining = None;
        if self.frame_fin {
            if check_utf8 && self.utf8.finish().is_err() {
                return Err(ProtoError::utf8("text message ends inside a UTF-8 sequence"));
            }
            self.message = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::{encode_header, MAX_HEADER_LEN};
    use crate::proto::ProtoErrorKind;

    fn frame(fin: bool, op: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut h, fin, false, op, payload.len() as u64, mask);
        let mut v = h[..n].to_vec();
        let start = v.len();
        v.extend_from_slice(payload);
        if let Some(m) = mask {
            apply_mask(&mut v[start..], m, 0);
        }
        v
    }

    /// Feeds `input` in pieces of `step` bytes and collects messages and controls.
    fn run(r: &mut Receiver, input: &[u8], step: usize) -> Result<Vec<(String, Vec<u8>)>, ProtoError> {
        let mut out = Vec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut fed = 0;
        let mut cur: Option<(String, Vec<u8>)> = None;
        loop {
            let (used, ev) = r.next(&mut buf)?;
            match ev {
                Event::NeedMore => {
                    if fed == input.len() {
                        break;
                    }
                    let n = step.min(input.len() - fed);
                    buf.extend_from_slice(&input[fed..fed + n]);
                    fed += n;
                }
                Event::MessageStart { kind, .. } => cur = Some((format!("{kind:?}"), Vec::new())),
                Event::Data { start, end, end_of_message } => {
                    cur.as_mut().unwrap().1.extend_from_slice(&buf[start..end]);
                    if end_of_message {
                        out.push(cur.take().unwrap());
                    }
                }
                Event::Control { kind, start, end } => out.push((format!("{kind:?}"), buf[start..end].to_vec())),
                Event::Message { kind, start, end } => {
                    assert!(cur.is_none(), "a whole message inside a message");
                    out.push((format!("{kind:?}"), buf[start..end].to_vec()))
                }
            }
            buf.drain(..used);
        }
        Ok(out)
    }

    const M: Option<[u8; 4]> = Some([0xA1, 0xB2, 0xC3, 0xD4]);

    #[test]
    fn fragmented_message_with_interleaved_ping_at_every_split() {
        let mut input = frame(false, OpCode::Text, "héllo ".as_bytes(), M);
        input.extend(frame(true, OpCode::Ping, b"p", M));
        input.extend(frame(false, OpCode::Continuation, b"", M));
        input.extend(frame(true, OpCode::Continuation, "wörld".as_bytes(), M));
        input.extend(frame(true, OpCode::Binary, &[0u8; 300], M));
        for step in [1, 2, 3, 7, 64, 1000] {
            let mut r = Receiver::new(Role::Server, 0);
            let got = run(&mut r, &input, step).unwrap();
            assert_eq!(got.len(), 3, "step {step}");
            assert_eq!(got[0], ("Ping".to_string(), b"p".to_vec()));
            assert_eq!(got[1], ("Text".to_string(), "héllo wörld".as_bytes().to_vec()));
            assert_eq!(got[2], ("Binary".to_string(), vec![0u8; 300]));
        }
    }

    #[test]
    fn fragmentation_errors() {
        let mut r = Receiver::new(Role::Server, 0);
        let e = run(&mut r, &frame(true, OpCode::Continuation, b"x", M), 100).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::Protocol);
        let mut input = frame(false, OpCode::Text, b"a", M);
        input.extend(frame(true, OpCode::Text, b"b", M));
        let mut r = Receiver::new(Role::Server, 0);
        assert_eq!(run(&mut r, &input, 100).unwrap_err().kind, ProtoErrorKind::Protocol);
    }

    #[test]
    fn invalid_utf8_fails_before_the_message_ends() {
        let mut input = frame(false, OpCode::Text, &[b'a', 0xFF], M);
        // The final fragment never arrives: the error must come anyway.
        input.extend(frame(false, OpCode::Continuation, b"zzz", M));
        let mut r = Receiver::new(Role::Server, 0);
        assert_eq!(run(&mut r, &input, 1).unwrap_err().kind, ProtoErrorKind::InvalidUtf8);
        // Split code point across frames is fine.
        let mut input = frame(false, OpCode::Text, &[0xE2, 0x82], M);
        input.extend(frame(true, OpCode::Continuation, &[0xAC], M));
        let mut r = Receiver::new(Role::Server, 0);
        assert_eq!(run(&mut r, &input, 1).unwrap()[0].1, "€".as_bytes());
        // Truncated at the end of the message.
        let mut r = Receiver::new(Role::Server, 0);
        let e = run(&mut r, &frame(true, OpCode::Text, &[0xE2, 0x82], M), 1).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::InvalidUtf8);
    }

    #[test]
    fn read_limit_counts_the_whole_message_and_fails_at_the_header() {
        let mut input = frame(false, OpCode::Binary, &[1; 60], M);
        input.extend(frame(true, OpCode::Continuation, &[1; 60], M));
        let mut r = Receiver::new(Role::Server, 100);
        assert_eq!(run(&mut r, &input, 1000).unwrap_err().kind, ProtoErrorKind::TooBig);
        let mut r = Receiver::new(Role::Server, 120);
        assert_eq!(run(&mut r, &input, 1000).unwrap()[0].1.len(), 120);
        // A header that announces too much fails before any payload arrives.
        let mut r = Receiver::new(Role::Client, 1000);
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut h, true, false, OpCode::Binary, 1 << 40, None);
        assert_eq!(run(&mut r, &h[..n], 1000).unwrap_err().kind, ProtoErrorKind::TooBig);
    }

    #[test]
    fn whole_messages_equal_the_piecewise_events_at_every_split() {
        let mut ok = frame(true, OpCode::Text, "héllo".as_bytes(), M);
        ok.extend(frame(true, OpCode::Binary, &[7u8; 300], M));
        ok.extend(frame(false, OpCode::Binary, b"ab", M));
        ok.extend(frame(true, OpCode::Ping, b"p", M));
        ok.extend(frame(true, OpCode::Continuation, b"cd", M));
        ok.extend(frame(true, OpCode::Text, b"", M));
        ok.extend(frame(true, OpCode::Binary, &[1u8; 70_000], M));
        let bad_utf8 = frame(true, OpCode::Text, &[b'a', 0xFF, b'b'], M);
        let cut_utf8 = frame(true, OpCode::Text, &[b'a', 0xE2, 0x82], M);
        let too_big = frame(true, OpCode::Binary, &[0u8; 101], M);
        let continuation = frame(true, OpCode::Continuation, b"x", M);
        let mut inside = frame(false, OpCode::Text, b"a", M);
        inside.extend(frame(true, OpCode::Text, b"b", M));
        for input in [&ok, &bad_utf8, &cut_utf8, &too_big, &continuation, &inside] {
            for step in [1, 2, 5, 64, 1 << 20] {
                let limit = if input == &ok { 0 } else { 100 };
                let mut pieces = Receiver::new(Role::Server, limit);
                let mut whole = Receiver::new(Role::Server, limit);
                whole.set_whole_messages(true);
                let a = run(&mut pieces, input, step).map_err(|e| (e.kind, e.to_string()));
                let b = run(&mut whole, input, step).map_err(|e| (e.kind, e.to_string()));
                assert_eq!(a, b, "step {step}");
            }
        }
        // The fast path was taken: one event for the whole frame.
        let mut r = Receiver::new(Role::Server, 0);
        r.set_whole_messages(true);
        let mut f = frame(true, OpCode::Binary, b"xyz", M);
        let n = f.len();
        assert_eq!(r.next(&mut f).unwrap(), (n, Event::Message { kind: MessageType::Binary, start: 6, end: n }));
        assert_eq!(&f[6..], b"xyz");
    }

    #[test]
    fn empty_messages_and_client_role() {
        let mut input = frame(true, OpCode::Text, b"", None);
        input.extend(frame(true, OpCode::Binary, b"", None));
        input.extend(frame(true, OpCode::Close, &[3, 232], None));
        let mut r = Receiver::new(Role::Client, 0);
        let got = run(&mut r, &input, 1).unwrap();
        assert_eq!(got, vec![("Text".into(), vec![]), ("Binary".into(), vec![]), ("Close".into(), vec![3, 232])]);
    }
}
