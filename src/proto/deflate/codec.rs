//! Compressing and decompressing message payloads (RFC 7692 section 7.2).
//!
//! A message is compressed with a sync flush and sent without the final
//! `00 00 ff ff`; the receiver appends those four bytes before inflating.
//! With context takeover the compressor keeps its window across messages.
//! Inflating writes into a buffer the caller sizes, so the caller can stop
//! as soon as the read limit is passed: a small compressed message cannot
//! expand into unbounded memory.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::proto::ProtoError;

/// Appended to each message's payload before inflating (section 7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Maps gorilla's compression levels (compress/flate: -2 Huffman only, -1
/// default, 0 none, 1 best speed ... 9 best compression) to the backend's.
/// The backend has no Huffman-only mode through this API: -2 uses level 1,
/// the cheapest that still compresses.
pub fn backend_level(level: i32) -> Option<Compression> {
    match level {
        -2 => Some(Compression::new(1)),
        -1 => Some(Compression::default()),
        0..=9 => Some(Compression::new(level as u32)),
        _ => None,
    }
}

pub struct Deflater {
    c: Compress,
    no_context_takeover: bool,
    window_bits: u8,
}

impl Deflater {
    /// `window_bits` 9-15 (zlib cannot compress raw deflate with 8).
    pub fn new(level: Compression, window_bits: u8, no_context_takeover: bool) -> Deflater {
        Deflater { c: Compress::new_with_window_bits(level, false, window_bits), no_context_takeover, window_bits }
    }

    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    pub fn set_level(&mut self, level: Compression) {
        // Only fails when called mid-stream with pending output, which
        // never happens between messages.
        let _ = self.c.set_level(level);
    }

    /// Forgets the window: the next message refers to nothing before it.
    pub fn reset(&mut self) {
        self.c.reset();
    }

    /// Compresses a whole message, appending its payload to `out`.
    pub fn compress_message(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.compress_part(data, out);
        self.finish_message(out);
    }

    /// Compresses the next piece of a message being streamed. Output may
    /// lag behind input until `finish_message`.
    pub fn compress_part(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.run(data, out, FlushCompress::None);
    }

    /// Flushes the message's last bytes into `out` and strips the tail.
    pub fn finish_message(&mut self, out: &mut Vec<u8>) {
        let before = out.len();
        self.run(&[], out, FlushCompress::Sync);
        if out.len() > before && out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        } else {
            // No input since the last flush (an empty message after any
            // other): zlib emits nothing, but the peer appends `00 00 ff
            // ff` to every message, which must then close an empty stored
            // block. Its header (BFINAL 0, type 00, padding) is one zero
            // byte; the stream is byte-aligned after the previous flush.
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.c.reset();
        }
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 2 + 1024);
            }
            let before = self.c.total_in();
            // Errors happen only on misuse of the stream (a bug here).
            self.c.compress_vec(input, out, flush).expect("deflate stream in a consistent state");
            input = &input[(self.c.total_in() - before) as usize..];
            let out_full = out.len() == out.capacity();
            let more = match flush {
                FlushCompress::None => !input.is_empty(),
                _ => !input.is_empty() || out_full,
            };
            if !more {
                return;
            }
        }
    }
}

pub struct Inflater {
    d: Decompress,
    no_context_takeover: bool,
    /// The peer ended the deflate stream (BFINAL) inside this message.
    stream_ended: bool,
}

impl Inflater {
    /// Inflates with a 32 KiB window, which decodes every window size a
    /// peer may use.
    pub fn new(no_context_takeover: bool) -> Inflater {
        Inflater { d: Decompress::new_with_window_bits(false, 15), no_context_takeover, stream_ended: false }
    }

    /// Inflates from `input` into `out`; returns (bytes consumed, bytes
    /// produced). `produced == out.len()` means more output may be pending:
    /// call again (with the rest of the input, or none).
    pub fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), ProtoError> {
        if self.stream_ended {
            // After a final block nothing more belongs to the message.
            return Ok((input.len(), 0));
        }
        let (in0, out0) = (self.d.total_in(), self.d.total_out());
        let status = self
            .d
            .decompress(input, out, FlushDecompress::Sync)
            .map_err(|_| ProtoError::invalid_data("compressed message is not valid deflate data"))?;
        if status == Status::StreamEnd {
            self.stream_ended = true;
        }
        Ok(((self.d.total_in() - in0) as usize, (self.d.total_out() - out0) as usize))
    }

    /// Called after the message's tail was inflated.
    pub fn end_message(&mut self) {
        if self.no_context_takeover || self.stream_ended {
            self.d.reset(false);
            self.stream_ended = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inf: &mut Inflater, payload: &[u8], chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            loop {
                let (c, p) = inf.inflate(input, &mut buf).unwrap();
                out.extend_from_slice(&buf[..p]);
                input = &input[c..];
                if input.is_empty() && p < buf.len() {
                    break;
                }
            }
        }
        inf.end_message();
        out
    }

    #[test]
    fn roundtrip_with_and_without_context_takeover_for_every_window() {
        let text: Vec<u8> =
            (0..5000).flat_map(|i| format!("{{\"id\":{i},\"name\":\"item{}\"}}", i % 7).into_bytes()).collect();
        for bits in 9..=15u8 {
            for nct in [false, true] {
                let mut d = Deflater::new(Compression::default(), bits, nct);
                let mut inf = Inflater::new(nct);
                let mut sizes = Vec::new();
                for round in 0..20 {
                    let msg = &text[round * 100..round * 100 + 3000];
                    let mut payload = Vec::new();
                    d.compress_message(msg, &mut payload);
                    sizes.push(payload.len());
                    assert_eq!(inflate_all(&mut inf, &payload, 700), msg, "bits {bits} nct {nct} round {round}");
                }
                if !nct && bits >= 13 {
                    // The window (8 KiB or more) holds the previous message:
                    // repeated content gets much smaller.
                    assert!(sizes[5] < sizes[0] / 2, "context takeover must help: {sizes:?}");
                }
            }
        }
    }

    #[test]
    fn empty_message_is_one_zero_byte() {
        let mut d = Deflater::new(Compression::default(), 15, false);
        let mut payload = Vec::new();
        d.compress_message(b"", &mut payload);
        assert_eq!(payload, [0x00]);
        let mut inf = Inflater::new(false);
        assert!(inflate_all(&mut inf, &payload, 16).is_empty());
    }

    #[test]
    fn empty_message_after_another_keeps_the_stream_valid() {
        // Issue 10, defect 1: the second sync flush produced no bytes and
        // the peer's inflater was left inside a block.
        let mut d = Deflater::new(Compression::default(), 15, false);
        let mut inf = Inflater::new(false);
        for msg in [&b"hello"[..], b"", b"", b"world"] {
            let mut payload = Vec::new();
            d.compress_part(msg, &mut payload);
            d.finish_message(&mut payload);
            assert!(!payload.is_empty());
            assert_eq!(inflate_all(&mut inf, &payload, 16), msg);
        }
    }

    #[test]
    fn streaming_compression_matches_content() {
        let mut d = Deflater::new(Compression::new(1), 15, false);
        let mut payload = Vec::new();
        for i in 0..100 {
            d.compress_part(format!("piece {i};").as_bytes(), &mut payload);
        }
        d.finish_message(&mut payload);
        let expect: Vec<u8> = (0..100).flat_map(|i| format!("piece {i};").into_bytes()).collect();
        assert_eq!(inflate_all(&mut Inflater::new(false), &payload, 64), expect);
    }

    #[test]
    fn garbage_is_an_error() {
        let mut inf = Inflater::new(false);
        let mut out = [0u8; 64];
        assert!(inf.inflate(&[0xff, 0xff, 0xff, 0xff, 0xff], &mut out).is_err());
    }

    #[test]
    fn levels() {
        assert!(backend_level(-3).is_none() && backend_level(10).is_none());
        for l in -2..=9 {
            assert!(backend_level(l).is_some());
        }
    }
}
