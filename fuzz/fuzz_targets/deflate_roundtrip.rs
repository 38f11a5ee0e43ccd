//! permessage-deflate round trip over every window size our compressor
//! can use (9-15; 8 means "send uncompressed", see deflate/params.rs):
//! messages compressed whole or streamed in pieces, with and without
//! context takeover, inflate back to themselves through output buffers of
//! any size.
//!
//! Input: byte 0 = level (n % 10) and flags (bit 4: no context takeover,
//! bit 5: streamed in pieces); byte 1 = seed of piece and output-buffer
//! sizes; the rest = messages, separated by 0xFF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::proto::deflate::codec::{backend_level, TAIL};
use ws::proto::deflate::{Deflater, Inflater};

struct Sizes(u32);

impl Sizes {
    fn next(&mut self, max: u32) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (1 + self.0 % max) as usize
    }
}

fn inflate(inf: &mut Inflater, payload: &[u8], sizes: &mut Sizes, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for input in [payload, &TAIL[..]] {
        let mut input = input;
        loop {
            let mut buf = vec![0u8; sizes.next(70_000)];
            let (used, produced) = inf.inflate(input, &mut buf).expect("our own output inflates");
            assert!(used > 0 || produced > 0 || input.is_empty(), "no progress");
            out.extend_from_slice(&buf[..produced]);
            assert!(out.len() <= limit, "inflated past the original's length");
            input = &input[used..];
            if input.is_empty() && produced < buf.len() {
                break;
            }
        }
    }
    inf.end_message();
    out
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let level = backend_level((input[0] % 10) as i32).unwrap();
    let no_context_takeover = input[0] & 0x10 != 0;
    let streamed = input[0] & 0x20 != 0;
    let messages: Vec<&[u8]> = input[2..].split(|&b| b == 0xFF).collect();
    for bits in 9..=15u8 {
        let mut sizes = Sizes(input[1] as u32 | (bits as u32) << 8);
        let mut def = Deflater::new(level, bits, no_context_takeover);
        let mut inf = Inflater::new(no_context_takeover);
        for m in &messages {
            let mut payload = Vec::new();
            if streamed {
                let mut rest = *m;
                while !rest.is_empty() {
                    let (piece, tail) = rest.split_at(sizes.next(300).min(rest.len()));
                    def.compress_part(piece, &mut payload);
                    rest = tail;
                }
                def.finish_message(&mut payload);
            } else {
                def.compress_message(m, &mut payload);
            }
            let back = inflate(&mut inf, &payload, &mut sizes, m.len());
            assert!(back == *m, "window {bits}: a {}-byte message came back as {} bytes", m.len(), back.len());
        }
    }
});
