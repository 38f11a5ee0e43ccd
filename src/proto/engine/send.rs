//! The send half of a connection: messages and control frames in, encoded
//! frames out (appended to the driver's output buffer).
//!
//! Frame encoding, masking (a client's keys from the OS CSPRNG), deflate
//! with the agreed context takeover, the level and threshold, the
//! prepared-message rule, control and close payload checks, and the pong
//! the receive half owes. Which phase allows what is the close state's
//! job ([`super::close_state`]); the driver checks it under the same lock
//! that orders this half's output.

use std::borrow::Cow;

use super::super::close;
use super::super::deflate::codec::backend_level;
use super::super::deflate::{scratch, Agreement, Deflater};
use super::super::frame::{encode_header, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::super::kind::MessageType;
use super::super::mask::{extend_masked, MaskKeys};
use super::super::Role;
use super::recv::ControlPayload;

/// A send the protocol forbids (the driver maps it to "invalid argument").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// Outgoing compression of one connection.
struct DeflateOut {
    deflater: Deflater,
    enabled: bool,
    level: i32,
    threshold: usize,
}

pub struct SendHalf {
    /// A client's masking keys (boxed: 4 KiB that servers must not carry).
    keys: Option<Box<MaskKeys>>,
    deflate: Option<Box<DeflateOut>>,
    /// A pong owed while the output was backed up (only the latest
    /// counts; boxed and kept once used, so idle connections carry 8 bytes).
    owed_pong: Option<Box<ControlPayload>>,
    pong_owed: bool,
}

/// How a whole message will go out, for a driver that writes large
/// payloads straight from the caller's memory.
pub enum Plan {
    /// As is: this header, then the caller's payload unchanged.
    Direct { header: [u8; MAX_HEADER_LEN], len: usize },
    /// Masked or compressed: [`SendHalf::message`] encodes it.
    Encode,
}

/// A frame's header and masking key (see [`SendHalf::head`]).
#[derive(Clone, Copy)]
pub struct FrameHead {
    header: [u8; MAX_HEADER_LEN],
    len: u8,
    mask: Option<[u8; 4]>,
}

impl FrameHead {
    /// The encoded header.
    pub fn bytes(&self) -> &[u8] {
        &self.header[..self.len as usize]
    }

    /// Whether the payload must be masked (a client's frame): it cannot
    /// go out from the caller's memory as is.
    pub fn masked(&self) -> bool {
        self.mask.is_some()
    }

    /// Appends `piece`, the payload's bytes from offset `pos`, to `out`
    /// (masked when the frame is).
    pub fn put_payload(&self, piece: &[u8], pos: usize, out: &mut Vec<u8>) {
        match self.mask {
            Some(m) => extend_masked(out, piece, m, pos),
            None => out.extend_from_slice(piece),
        }
    }
}

impl SendHalf {
    pub fn new(role: Role) -> SendHalf {
        SendHalf { keys: (role == Role::Client).then(Box::default), deflate: None, owed_pong: None, pong_owed: false }
    }

    /// Compression agreed in the handshake (our direction), with the
    /// level (-2..9) and the size below which messages go uncompressed.
    pub fn set_deflate(&mut self, agreement: &Agreement, level: i32, threshold: usize) {
        // The codec in the agreement's memory mode (pooled, dedicated or
        // shared state); none when our direction cannot be compressed.
        self.deflate = Deflater::for_agreement(agreement, backend_level(level).unwrap_or_default())
            .map(|deflater| Box::new(DeflateOut { deflater, enabled: true, level, threshold }));
    }

    pub fn enable_compression(&mut self, enable: bool) {
        if let Some(d) = self.deflate.as_mut() {
            d.enabled = enable;
        }
    }

    pub fn set_compression_level(&mut self, level: i32) -> Result<(), Invalid> {
        let l = backend_level(level).ok_or(Invalid("compression level must be -2 to 9"))?;
        if let Some(d) = self.deflate.as_mut() {
            d.deflater.set_level(l);
            d.level = level;
        }
        Ok(())
    }

    pub fn set_compression_threshold(&mut self, bytes: usize) {
        if let Some(d) = self.deflate.as_mut() {
            d.threshold = bytes;
        }
    }

    fn compresses(&self, len: usize) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.enabled && len >= d.threshold)
    }

    /// Whether a data message of `len` bytes can go out as the caller's
    /// bytes behind a header (unmasked and uncompressed).
    pub fn plan(&self, kind: MessageType, len: usize) -> Plan {
        if self.keys.is_some() || self.compresses(len) || kind.is_control() {
            return Plan::Encode;
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, true, false, kind.opcode(), len as u64, None);
        Plan::Direct { header, len: n }
    }

    /// Appends one frame: header, then the payload (masked for a client).
    pub fn frame(&mut self, fin: bool, rsv1: bool, op: OpCode, payload: &[u8], out: &mut Vec<u8>) {
        let head = self.head(fin, rsv1, op, payload.len());
        out.reserve(MAX_HEADER_LEN + payload.len());
        // The whole header array, then back to its length: a fixed-size
        // copy compiles to two moves, a variable one to a memcpy call.
        let start = out.len();
        out.extend_from_slice(&head.header);
        out.truncate(start + head.len as usize);
        head.put_payload(payload, 0, out);
    }

    /// One frame's header and masking key (a client's, fresh for each
    /// frame), for a driver that sends the payload itself: from the
    /// caller's memory behind the header, or masked piece by piece.
    #[inline]
    pub fn head(&mut self, fin: bool, rsv1: bool, op: OpCode, len: usize) -> FrameHead {
        let mut header = [0u8; MAX_HEADER_LEN];
        let mask = self.keys.as_mut().map(|k| k.next_key());
        let n = encode_header(&mut header, fin, rsv1, op, len as u64, mask);
        FrameHead { header, len: n as u8, mask }
    }

    /// The head of a whole data message sent uncompressed as one frame
    /// (the driver sends its payload); `None` when it goes out compressed
    /// ([`SendHalf::message`] or [`SendHalf::prepared`] encodes it).
    pub fn message_head(&mut self, kind: MessageType, len: usize) -> Option<FrameHead> {
        if kind.is_control() || self.compresses(len) {
            return None;
        }
        Some(self.head(true, false, kind.opcode(), len))
    }

    /// The head of one frame of a streamed message whose payload the
    /// driver gathered (`first`: it starts the message; `last`: it ends
    /// it; `compressed`: the payload came from [`SendHalf::stream_compress`],
    /// so the first frame carries RSV1, RFC 7692 6).
    pub fn stream_head(
        &mut self,
        kind: MessageType,
        first: bool,
        last: bool,
        compressed: bool,
        len: usize,
    ) -> FrameHead {
        let op = if first { kind.opcode() } else { OpCode::Continuation };
        self.head(last, compressed && first, op, len)
    }

    /// Compresses the next piece of a streamed message onto `z` (the
    /// driver frames what gathered with [`SendHalf::stream_head`]);
    /// `last` ends the message's deflate stream.
    pub fn stream_compress(&mut self, data: &[u8], last: bool, z: &mut Vec<u8>) {
        if let Some(d) = self.deflate.as_mut() {
            // `finish_message` starts the message itself when no part did.
            if !last || !data.is_empty() {
                d.deflater.compress_part(data, z);
            }
            if last {
                d.deflater.finish_message(z);
            }
        }
    }

    /// Encodes a whole data message (compressed when agreed, enabled and
    /// at least the threshold). Text is not re-validated: the application
    /// vouches for it (as gorilla).
    pub fn message(&mut self, kind: MessageType, data: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
        if kind.is_control() {
            return self.control(kind, data, out);
        }
        if !self.compresses(data.len()) {
            self.frame(true, false, kind.opcode(), data, out);
            return Ok(());
        }
        // Compressed into the thread's scratch buffer, not one per
        // connection: an idle connection keeps no output buffer.
        scratch::with(|z| {
            let d = self.deflate.as_mut().expect("compresses() checked it");
            d.deflater.compress_message(data, z);
            self.frame(true, true, kind.opcode(), z, out);
        });
        Ok(())
    }

    /// Encodes a ping, pong or close given as a raw payload (a close
    /// payload is checked like [`SendHalf::close`]'s arguments).
    pub fn control(&mut self, kind: MessageType, data: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
        Self::check_control(data)?;
        if kind == MessageType::Close {
            let (code, reason) = split_close(data)?;
            return self.close(code, reason, out);
        }
        self.frame(true, false, kind.opcode(), data, out);
        Ok(())
    }

    /// Encodes a close frame (1005 = an empty one, which cannot carry a
    /// reason). The caller moves the close state to `Closing` first.
    pub fn close(&mut self, code: u16, reason: &[u8], out: &mut Vec<u8>) -> Result<(), Invalid> {
        let mut payload = Vec::with_capacity(2 + reason.len());
        close::format_payload(code, reason, &mut payload).map_err(Invalid)?;
        self.frame(true, false, OpCode::Close, &payload, out);
        Ok(())
    }

    /// Checks a control frame's payload without encoding anything (a
    /// close payload is checked further by [`SendHalf::close`]).
    pub fn check_control(data: &[u8]) -> Result<(), Invalid> {
        if data.len() > MAX_CONTROL_PAYLOAD {
            return Err(Invalid("control frame payload longer than 125 bytes"));
        }
        Ok(())
    }

    /// Checks a close's arguments without encoding anything.
    pub fn check_close(code: u16, reason: &[u8]) -> Result<(), Invalid> {
        let mut payload = Vec::new();
        close::format_payload(code, reason, &mut payload).map_err(Invalid)
    }

    /// Encodes a prepared message: when this connection compresses it,
    /// `compressed(level, window_bits)` gives the payload compressed on
    /// its own (shared by every connection with the same setting).
    pub fn prepared<'p>(
        &mut self,
        kind: MessageType,
        data: &[u8],
        compressed: impl FnOnce(i32, u8) -> Cow<'p, [u8]>,
        out: &mut Vec<u8>,
    ) -> Result<(), Invalid> {
        if kind.is_control() || !self.compresses(data.len()) {
            return self.message(kind, data, out).map(|_| ());
        }
        let d = self.deflate.as_mut().expect("compresses() checked it");
        let payload = compressed(d.level, d.deflater.window_bits());
        // The peer's window now holds this message after our last one,
        // which our compressor never saw: it must not refer back across it.
        d.deflater.reset();
        self.frame(true, true, kind.opcode(), &payload, out);
        Ok(())
    }

    /// A compressed message whose bytes never reached the peer (its write
    /// timed out before any byte went out): forget it in the window.
    pub fn forget_unsent_message(&mut self) {
        if let Some(d) = self.deflate.as_mut() {
            d.deflater.reset();
        }
    }

    /// Whether a streamed message starting now will be compressed.
    pub fn stream_compressed(&self) -> bool {
        self.deflate.as_ref().is_some_and(|d| d.enabled)
    }

    /// The next piece of a streamed message (`first`: it starts the
    /// message; `last`: it ends it). Compressed streams (RSV1 on the
    /// first frame) may produce a frame only once bytes come out of the
    /// compressor, so a piece can yield no frame; `first` must then be
    /// passed again with the next piece.
    /// Returns whether a frame was written.
    pub fn stream_piece(
        &mut self,
        kind: MessageType,
        first: bool,
        last: bool,
        compressed: bool,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let op = if first { kind.opcode() } else { OpCode::Continuation };
        if !compressed {
            self.frame(last, false, op, data, out);
            return true;
        }
        if self.deflate.is_none() {
            self.frame(last, false, op, data, out);
            return true;
        }
        scratch::with(|z| {
            let d = self.deflate.as_mut().expect("checked above");
            d.deflater.compress_part(data, z);
            if last {
                d.deflater.finish_message(z);
            }
            let wrote = !z.is_empty() || last;
            if wrote {
                // RSV1 marks the message's first frame (RFC 7692 6).
                self.frame(last, first, op, z, out);
            }
            wrote
        })
    }

    /// Queues the pong the receive half owes: now when the output is not
    /// backed up, otherwise kept (replacing an older owed one) until
    /// [`SendHalf::flush_owed`], so a peer that floods pings and does not
    /// read costs one pong, not a queue of them.
    pub fn owe_pong(&mut self, payload: ControlPayload, backed_up: bool, out: &mut Vec<u8>) {
        if backed_up {
            match self.owed_pong.as_mut() {
                Some(b) => **b = payload,
                None => self.owed_pong = Some(Box::new(payload)),
            }
            self.pong_owed = true;
        } else {
            self.pong_owed = false;
            self.frame(true, false, OpCode::Pong, payload.as_slice(), out);
        }
    }

    /// The output drained: send a pong kept by `owe_pong`.
    pub fn flush_owed(&mut self, out: &mut Vec<u8>) -> bool {
        if !std::mem::take(&mut self.pong_owed) {
            return false;
        }
        match self.owed_pong.as_deref().copied() {
            Some(p) => {
                self.frame(true, false, OpCode::Pong, p.as_slice(), out);
                true
            }
            None => false,
        }
    }
}

/// A raw close payload as (code, reason): empty = 1005.
pub fn split_close(data: &[u8]) -> Result<(u16, &[u8]), Invalid> {
    match data.len() {
        0 => Ok((close::NO_STATUS, &data[..0])),
        1 => Err(Invalid("a close payload is empty or at least 2 bytes")),
        _ => Ok((u16::from_be_bytes([data[0], data[1]]), &data[2..])),
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
    use crate::proto::engine::recv::{RecvEvent, RecvHalf, RecvSink};

    #[derive(Default)]
    struct Collect(Vec<(MessageType, Vec<u8>)>);
    impl RecvSink for Collect {
        fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
            match ev {
                RecvEvent::Message { kind, data } => self.0.push((kind, data.to_vec())),
                RecvEvent::Ping(p) => self.0.push((MessageType::Ping, p.to_vec())),
                RecvEvent::Pong(p) => self.0.push((MessageType::Pong, p.to_vec())),
                RecvEvent::Close { code, .. } => self.0.push((MessageType::Close, code.to_be_bytes().to_vec())),
            }
            true
        }
    }

    fn agreement() -> Agreement {
        takeover()
    }

    #[test]
    fn client_to_server_round_trip_with_compression_and_streams() {
        let mut tx = SendHalf::new(Role::Client);
        tx.set_deflate(&agreement(), 1, 0);
        let mut out = Vec::new();
        tx.message(MessageType::Text, b"hello hello hello", &mut out).unwrap();
        // An empty streamed message after a compressed one (issue 10, 1).
        assert!(tx.stream_piece(MessageType::Binary, true, true, true, b"", &mut out));
        tx.message(MessageType::Text, b"hello again", &mut out).unwrap();
        let mut first = true;
        for (i, piece) in [&b"str"[..], b"", b"eam"].iter().enumerate() {
            if tx.stream_piece(MessageType::Text, first, i == 2, true, piece, &mut out) {
                first = false;
            }
        }
        tx.control(MessageType::Ping, b"p", &mut out).unwrap();
        tx.close(1000, b"bye", &mut out).unwrap();
        let mut rx = RecvHalf::new(Role::Server, 0, Some(&takeover()));
        let mut sink = Collect::default();
        rx.process(&mut out, &mut sink).unwrap();
        let got: Vec<_> = sink.0.iter().map(|(k, d)| (*k, String::from_utf8_lossy(d).into_owned())).collect();
        assert_eq!(got[0], (MessageType::Text, "hello hello hello".into()));
        assert_eq!(got[1], (MessageType::Binary, "".into()));
        assert_eq!(got[2], (MessageType::Text, "hello again".into()));
        assert_eq!(got[3], (MessageType::Text, "stream".into()));
        assert_eq!(got[4].0, MessageType::Ping);
        assert_eq!(got[5].0, MessageType::Close);
    }

    #[test]
    fn checks() {
        let mut tx = SendHalf::new(Role::Server);
        let mut out = Vec::new();
        assert!(tx.control(MessageType::Ping, &[0; 126], &mut out).is_err());
        assert!(tx.control(MessageType::Close, &[3], &mut out).is_err());
        assert!(tx.close(1005, b"x", &mut out).is_err());
        assert!(tx.close(1006, b"", &mut out).is_err());
        assert!(out.is_empty());
        assert!(matches!(tx.plan(MessageType::Binary, 100_000), Plan::Direct { len: 10, .. }));
        assert!(matches!(SendHalf::new(Role::Client).plan(MessageType::Binary, 10), Plan::Encode));
    }

    #[test]
    fn owed_pong_is_kept_once_while_backed_up() {
        let mut tx = SendHalf::new(Role::Server);
        let mut out = Vec::new();
        for i in 0..100u8 {
            tx.owe_pong(ControlPayload::new(&[i]), true, &mut out);
        }
        assert!(out.is_empty());
        assert!(tx.flush_owed(&mut out));
        assert_eq!(out, [0x8A, 1, 99]);
        assert!(!tx.flush_owed(&mut out));
    }
}
