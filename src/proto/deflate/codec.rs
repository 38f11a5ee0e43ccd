//! Compressing and decompressing message payloads (RFC 7692 section 7.2).
//!
//! A message is compressed with a sync flush and sent without the final
//! `00 00 ff ff`; the receiver appends those four bytes before inflating.
//! With context takeover the compressor keeps its window across messages.
//! Inflating writes into a buffer the caller sizes, so the caller can stop
//! as soon as the read limit is passed: a small compressed message cannot
//! expand into unbounded memory.

use flate2::Compression;
use zlib_rs::{DeflateFlush, Inflate, InflateFlush, Status};

use super::history::History;
use super::params::{Agreement, DeflateMemory, DEFAULT_MEM_LEVEL};
use super::pool::{self, Compressor, DeflateKey};
use crate::proto::ProtoError;

/// Appended to each message's payload before inflating (section 7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Maps gorilla's compression levels (compress/flate: -2 Huffman only, -1
/// default, 0 none, 1 best speed ... 9 best compression) to zlib-rs's.
///
/// zlib-rs's level 1 is zlib-ng's `deflate_quick`: fixed Huffman codes
/// only, which on JSON-like text gives 20-22 % larger output than zlib's
/// (and Go's) level 1. Its level 2 (`deflate_fast`, dynamic codes) matches
/// or beats zlib's level 1, so gorilla's 1 maps to 2 (measured: README,
/// "Compression"). -1 is compress/flate's DefaultCompression (level 6).
/// The backend has no Huffman-only mode through a level: -2 uses level 1,
/// the cheapest that still compresses.
pub fn backend_level(level: i32) -> Option<Compression> {
    match level {
        -2 => Some(Compression::new(1)),
        -1 => Some(Compression::new(6)),
        1 => Some(Compression::new(2)),
        0 | 2..=9 => Some(Compression::new(level as u32)),
        _ => None,
    }
}

/// Where a compressor's state lives between messages.
enum DeflateState {
    /// Kept by this connection once allocated (dedicated memory).
    Kept(Option<Box<Compressor>>),
    /// From the thread's pool, held only while a message is in progress.
    /// With context takeover, `history` keeps the window's bytes.
    Pooled { c: Option<Compressor>, history: Option<History> },
}

pub struct Deflater {
    state: DeflateState,
    key: DeflateKey,
    level: i32,
    no_context_takeover: bool,
}

impl Deflater {
    /// `window_bits` 9-15 (zlib cannot compress raw deflate with 8).
    /// Allocates nothing: the state comes with the first message. Without
    /// context takeover it comes from the thread's pool for each message;
    /// with it, the connection keeps a dedicated state (see
    /// [`Deflater::for_agreement`] for the other memory modes).
    pub fn new(level: Compression, window_bits: u8, no_context_takeover: bool) -> Deflater {
        let memory = if no_context_takeover { DeflateMemory::Pooled } else { DeflateMemory::Dedicated };
        Deflater::with_memory(level, window_bits, DEFAULT_MEM_LEVEL, no_context_takeover, memory)
    }

    /// Our side's compressor for an agreement, `None` when we never
    /// compress (an 8-bit window was agreed). `level` from [`backend_level`].
    pub fn for_agreement(a: &Agreement, level: Compression) -> Option<Deflater> {
        let bits = a.our_window_bits?;
        Some(Deflater::with_memory(level, bits, a.mem_level, a.our_no_context_takeover, a.memory))
    }

    /// Every setting: `mem_level` 1-9 (zlib's memLevel: sizes the
    /// compressor's symbol buffer), `memory` where the state lives.
    pub fn with_memory(
        level: Compression,
        window_bits: u8,
        mem_level: u8,
        no_context_takeover: bool,
        memory: DeflateMemory,
    ) -> Deflater {
        let window_bits = window_bits.clamp(9, 15);
        let state = match memory {
            DeflateMemory::Dedicated => DeflateState::Kept(None),
            DeflateMemory::Pooled | DeflateMemory::Shared => {
                DeflateState::Pooled { c: None, history: (!no_context_takeover).then(|| History::new(window_bits)) }
            }
        };
        Deflater {
            state,
            key: DeflateKey { window_bits, mem_level: mem_level.clamp(1, 9) },
            level: level.level() as i32,
            no_context_takeover,
        }
    }

    pub fn window_bits(&self) -> u8 {
        self.key.window_bits
    }

    /// Takes effect from the next message.
    pub fn set_level(&mut self, level: Compression) {
        self.level = level.level() as i32;
    }

    /// Forgets the window: the next message refers to nothing before it.
    pub fn reset(&mut self) {
        match &mut self.state {
            DeflateState::Kept(c) => {
                if let Some(c) = c {
                    c.reset();
                }
            }
            DeflateState::Pooled { c, history } => {
                if let Some(c) = c.take() {
                    pool::give_deflate(c);
                }
                if let Some(h) = history {
                    h.clear();
                }
            }
        }
    }

    /// Bytes this compressor holds between messages (its state when
    /// dedicated, its window's bytes when pooled with context takeover).
    pub fn idle_bytes(&self) -> usize {
        match &self.state {
            DeflateState::Kept(Some(_)) => dedicated_deflate_bytes(self.key),
            DeflateState::Kept(None) => 0,
            DeflateState::Pooled { history, .. } => history.as_ref().map_or(0, History::allocated),
        }
    }

    /// Compresses a whole message, appending its payload to `out`.
    pub fn compress_message(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.compress_part(data, out);
        self.finish_message(out);
    }

    /// Compresses the next piece of a message being streamed. Output may
    /// lag behind input until `finish_message`.
    pub fn compress_part(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let (key, level) = (self.key, self.level);
        let c = match &mut self.state {
            DeflateState::Kept(c) => {
                let c = c.get_or_insert_with(|| Box::new(Compressor::new(key, level)));
                c.set_level(level);
                &mut **c
            }
            DeflateState::Pooled { c, history } => {
                let c = c.get_or_insert_with(|| {
                    let mut c = pool::take_deflate(key, level);
                    if let Some(h) = history.as_mut().filter(|h| !h.is_empty()) {
                        c.set_dictionary(h.contiguous());
                    }
                    c
                });
                if let Some(h) = history {
                    h.push(data);
                }
                c
            }
        };
        c.run(data, out, DeflateFlush::NoFlush);
    }

    /// Flushes the message's last bytes into `out` and strips the tail.
    pub fn finish_message(&mut self, out: &mut Vec<u8>) {
        // Starts the message if no part did (an empty message), and makes
        // the sync flush below count as new (zlib ignores a sync flush
        // straight after another one: it would emit nothing).
        let before = out.len();
        self.compress_part(&[], out);
        match &mut self.state {
            DeflateState::Kept(Some(c)) => {
                c.run(&[], out, DeflateFlush::SyncFlush);
                if self.no_context_takeover {
                    c.reset();
                }
            }
            DeflateState::Pooled { c, .. } => {
                let mut c = c.take().expect("started above");
                c.run(&[], out, DeflateFlush::SyncFlush);
                pool::give_deflate(c);
            }
            DeflateState::Kept(None) => unreachable!("started above"),
        }
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
    }
}

/// zlib-rs's allocation for one compressor (`DeflateAllocOffsets`): window
/// 2·2^bits, prev 2·2^bits, hash head 128 KiB (fixed), pending 4·lit_bufsize
/// and symbols 3·lit_bufsize with lit_bufsize = 2^(mem_level+6), plus the
/// state (~1.5 KiB rounded up).
pub fn dedicated_deflate_bytes(key: DeflateKey) -> usize {
    let w = 1usize << key.window_bits;
    let lit = 1usize << (key.mem_level + 6);
    2 * w + 2 * w + 128 * 1024 + 7 * lit + 2048
}

/// zlib-rs's allocation for one decompressor: the state and a fixed 32 KiB
/// window (approximately; `tests/deflate_memory.rs` measures it).
pub const DEDICATED_INFLATE_BYTES: usize = 32 * 1024 + 10 * 1024;

enum InflateState {
    Kept(Option<Box<Inflate>>),
    Pooled { d: Option<Inflate>, history: Option<History> },
}

pub struct Inflater {
    state: InflateState,
    no_context_takeover: bool,
    /// The peer ended the deflate stream (BFINAL) inside this message.
    stream_ended: bool,
    /// Input consumed and output written by the failing call before zlib
    /// found the error (see [`Inflater::before_error`]).
    before_error: (usize, usize),
}

impl Inflater {
    /// Inflates with a 32 KiB window, which decodes every window size a
    /// peer may use. Allocates on the first message; without context
    /// takeover the state comes from the thread's pool for each message.
    pub fn new(no_context_takeover: bool) -> Inflater {
        let memory = if no_context_takeover { DeflateMemory::Pooled } else { DeflateMemory::Dedicated };
        Inflater::with_memory(15, no_context_takeover, memory)
    }

    /// Our side's decompressor for an agreement.
    pub fn for_agreement(a: &Agreement) -> Inflater {
        Inflater::with_memory(a.peer_window_bits, a.peer_no_context_takeover, a.memory)
    }

    /// `peer_window_bits`: the window the peer compresses with (what a
    /// pooled decompressor keeps of the stream between messages when the
    /// peer uses context takeover).
    pub fn with_memory(peer_window_bits: u8, no_context_takeover: bool, memory: DeflateMemory) -> Inflater {
        let state = match memory {
            DeflateMemory::Dedicated => InflateState::Kept(None),
            DeflateMemory::Pooled | DeflateMemory::Shared => InflateState::Pooled {
                d: None,
                // zlib turns an 8-bit raw window into 9 bits: keep 9.
                history: (!no_context_takeover).then(|| History::new(peer_window_bits.clamp(9, 15))),
            },
        };
        Inflater { state, no_context_takeover, stream_ended: false, before_error: (0, 0) }
    }

    /// After `inflate` failed: the input it consumed and the output it
    /// wrote into `out` before the error. Those bytes come first in the
    /// stream, so a caller checks them (UTF-8, limits) before reporting
    /// the error: the outcome is then the same however the input was cut.
    pub fn before_error(&self) -> (usize, usize) {
        self.before_error
    }

    /// Bytes this decompressor holds between messages.
    pub fn idle_bytes(&self) -> usize {
        match &self.state {
            InflateState::Kept(Some(_)) => DEDICATED_INFLATE_BYTES,
            InflateState::Kept(None) => 0,
            InflateState::Pooled { history, .. } => history.as_ref().map_or(0, History::allocated),
        }
    }

    /// Inflates from `input` into `out`; returns (bytes consumed, bytes
    /// produced). `produced == out.len()` means more output may be pending:
    /// call again (with the rest of the input, or none).
    pub fn inflate(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), ProtoError> {
        if self.stream_ended {
            // After a final block nothing more belongs to the message.
            return Ok((input.len(), 0));
        }
        let (d, history) = match &mut self.state {
            InflateState::Kept(d) => (&mut **d.get_or_insert_with(|| Box::new(Inflate::new(false, 15))), None),
            InflateState::Pooled { d, history } => {
                let d = d.get_or_insert_with(|| {
                    let mut d = pool::take_inflate();
                    if let Some(h) = history.as_mut().filter(|h| !h.is_empty()) {
                        // Raw inflate accepts a dictionary at the start.
                        let _ = d.set_dictionary(h.contiguous());
                    }
                    d
                });
                (d, history.as_mut())
            }
        };
        let (in0, out0) = (d.total_in(), d.total_out());
        let result = d.decompress(input, out, InflateFlush::SyncFlush);
        let (consumed, produced) = ((d.total_in() - in0) as usize, (d.total_out() - out0) as usize);
        match result {
            Ok(status) => {
                if let Some(h) = history {
                    h.push(&out[..produced]);
                }
                if status == Status::StreamEnd {
                    self.stream_ended = true;
                }
                Ok((consumed, produced))
            }
            Err(_) => {
                self.before_error = (consumed, produced);
                // A broken stream's state must not go back to the pool.
                match &mut self.state {
                    InflateState::Kept(d) => *d = None,
                    InflateState::Pooled { d, .. } => *d = None,
                }
                Err(ProtoError::invalid_data("compressed message is not valid deflate data"))
            }
        }
    }

    /// Called after the message's tail was inflated.
    pub fn end_message(&mut self) {
        let forget = self.no_context_takeover || self.stream_ended;
        match &mut self.state {
            InflateState::Kept(Some(d)) if forget => d.reset(false),
            InflateState::Kept(_) => {}
            InflateState::Pooled { d, history } => {
                if let Some(d) = d.take() {
                    pool::give_inflate(d);
                }
                if let (true, Some(h)) = (self.stream_ended, history) {
                    h.clear();
                }
            }
        }
        self.stream_ended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: [DeflateMemory; 3] = [DeflateMemory::Pooled, DeflateMemory::Dedicated, DeflateMemory::Shared];

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

    fn json_like(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| format!("{{\"id\":{i},\"name\":\"item{}\"}}", i % 7).into_bytes()).collect()
    }

    #[test]
    fn roundtrip_every_window_memory_mode_and_pairing() {
        let text = json_like(5000);
        for bits in 9..=15u8 {
            for nct in [false, true] {
                // Every compressor mode against every decompressor mode: a
                // pooled compressor primed with its history must produce the
                // same stream a kept state would (any inflater decodes it).
                for dmode in MODES {
                    for imode in MODES {
                        let mut d = Deflater::with_memory(Compression::new(2), bits, 8, nct, dmode);
                        let mut inf = Inflater::with_memory(bits, nct, imode);
                        let mut sizes = Vec::new();
                        for round in 0..12 {
                            let msg = &text[round * 100..round * 100 + 3000];
                            let mut payload = Vec::new();
                            d.compress_message(msg, &mut payload);
                            sizes.push(payload.len());
                            let got = inflate_all(&mut inf, &payload, 700);
                            assert!(got == msg, "bits {bits} nct {nct} {dmode:?}->{imode:?} round {round}");
                        }
                        if !nct && bits >= 13 {
                            // The window (8 KiB or more) holds the previous
                            // message: repeated content gets much smaller.
                            assert!(sizes[5] < sizes[0] / 2, "context takeover must help: {sizes:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pooled_context_takeover_compresses_like_a_kept_state() {
        // Priming a pooled state with the window's bytes keeps the ratio.
        let text = json_like(3000);
        let run = |memory| {
            let mut d = Deflater::with_memory(Compression::new(2), 12, 8, false, memory);
            let mut total = 0;
            for round in 0..20 {
                let mut payload = Vec::new();
                d.compress_message(&text[round * 50..round * 50 + 1024], &mut payload);
                total += payload.len();
            }
            total
        };
        let (kept, pooled) = (run(DeflateMemory::Dedicated), run(DeflateMemory::Pooled));
        assert!(pooled as f64 <= kept as f64 * 1.05, "pooled {pooled} vs kept {kept}");
    }

    #[test]
    fn state_is_allocated_on_first_use_and_pooled_between_messages() {
        let mut d = Deflater::with_memory(Compression::new(2), 12, 5, false, DeflateMemory::Pooled);
        let mut inf = Inflater::with_memory(12, false, DeflateMemory::Pooled);
        assert_eq!((d.idle_bytes(), inf.idle_bytes()), (0, 0));
        let msg = json_like(400);
        let mut payload = Vec::new();
        d.compress_message(&msg, &mut payload);
        assert_eq!(inflate_all(&mut inf, &payload, 1 << 16), msg);
        // Only the windows' bytes stay with the connection; the states went
        // back to this thread's pool.
        assert_eq!((d.idle_bytes(), inf.idle_bytes()), (4096, 4096));
        let (pd, pi) = pool::idle_counts();
        assert!(pd >= 1 && pi >= 1);
        // Shared: nothing at all.
        let mut d = Deflater::with_memory(Compression::new(2), 15, 8, true, DeflateMemory::Shared);
        let mut inf = Inflater::with_memory(15, true, DeflateMemory::Shared);
        payload.clear();
        d.compress_message(&msg, &mut payload);
        assert_eq!(inflate_all(&mut inf, &payload, 1 << 16), msg);
        assert_eq!((d.idle_bytes(), inf.idle_bytes()), (0, 0));
        // Dedicated keeps its states once used.
        let mut d = Deflater::new(Compression::new(2), 15, false);
        assert_eq!(d.idle_bytes(), 0);
        payload.clear();
        d.compress_message(&msg, &mut payload);
        assert!(d.idle_bytes() > 128 * 1024);
    }

    #[test]
    fn reset_forgets_the_window_in_every_mode() {
        let msg = json_like(200);
        for memory in MODES {
            let mut d = Deflater::with_memory(Compression::new(2), 15, 8, false, memory);
            let mut first = Vec::new();
            d.compress_message(&msg, &mut first);
            d.reset();
            let mut again = Vec::new();
            d.compress_message(&msg, &mut again);
            assert_eq!(first, again, "{memory:?}: after reset the message refers to nothing before it");
            // A fresh inflater (no history) decodes it.
            assert_eq!(inflate_all(&mut Inflater::new(true), &again, 4096), msg);
        }
    }

    #[test]
    fn level_changes_apply_from_the_next_message() {
        let msg = json_like(2000);
        for memory in MODES {
            let mut d = Deflater::with_memory(Compression::new(0), 15, 8, true, memory);
            let mut stored = Vec::new();
            d.compress_message(&msg, &mut stored);
            assert!(stored.len() > msg.len(), "level 0 stores");
            d.set_level(Compression::new(9));
            let mut small = Vec::new();
            d.compress_message(&msg, &mut small);
            assert!(small.len() * 4 < msg.len(), "{memory:?}: level 9 compresses");
            assert_eq!(inflate_all(&mut Inflater::new(true), &small, 4096), msg);
        }
    }

    #[test]
    fn level_changes_with_context_takeover_keep_the_stream_valid() {
        let msg = json_like(2000);
        for memory in MODES {
            let mut d = Deflater::with_memory(Compression::new(2), 15, 8, false, memory);
            let mut inf = Inflater::with_memory(15, false, memory);
            let mut sizes = Vec::new();
            for (round, level) in [2u32, 2, 9, 9, 1, 6, 0, 2].into_iter().enumerate() {
                d.set_level(Compression::new(level));
                let mut p = Vec::new();
                d.compress_message(&msg[round * 100..round * 100 + 8000], &mut p);
                sizes.push(p.len());
                let got = inflate_all(&mut inf, &p, 4096);
                assert!(got == msg[round * 100..round * 100 + 8000], "{memory:?} round {round} level {level}");
            }
            assert!(sizes[6] > 8000, "level 0 stores: {sizes:?}");
        }
    }

    #[test]
    fn empty_message_is_one_zero_byte() {
        for memory in MODES {
            let mut d = Deflater::with_memory(Compression::new(2), 15, 8, false, memory);
            let mut payload = Vec::new();
            d.compress_message(b"", &mut payload);
            assert_eq!(payload, [0x00]);
            let mut payload = Vec::new();
            d.finish_message(&mut payload);
            assert_eq!(payload, [0x00], "finish without a part");
            let mut inf = Inflater::with_memory(15, false, memory);
            assert!(inflate_all(&mut inf, &[0x00], 16).is_empty());
        }
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
        for memory in MODES {
            let mut d = Deflater::with_memory(Compression::new(1), 12, 8, false, memory);
            let mut inf = Inflater::with_memory(12, false, memory);
            for round in 0..3 {
                let mut payload = Vec::new();
                for i in 0..100 {
                    d.compress_part(format!("piece {i} of {round};").as_bytes(), &mut payload);
                }
                d.finish_message(&mut payload);
                let expect: Vec<u8> = (0..100).flat_map(|i| format!("piece {i} of {round};").into_bytes()).collect();
                assert_eq!(inflate_all(&mut inf, &payload, 64), expect, "{memory:?}");
            }
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for memory in MODES {
            let mut inf = Inflater::with_memory(15, false, memory);
            let mut out = [0u8; 64];
            assert!(inf.inflate(&[0xff, 0xff, 0xff, 0xff, 0xff], &mut out).is_err());
        }
    }

    #[test]
    fn a_distance_beyond_the_kept_window_is_an_error_not_garbage() {
        // The peer agreed to 9 bits but refers 2 KiB back into the previous
        // message: a pooled inflater kept only 512 bytes and must fail.
        let mut prev = vec![0u8; 4096];
        for (i, b) in prev.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let mut d = Deflater::with_memory(Compression::new(6), 15, 8, false, DeflateMemory::Dedicated);
        let mut inf = Inflater::with_memory(9, false, DeflateMemory::Pooled);
        let mut p1 = Vec::new();
        d.compress_message(&prev, &mut p1);
        assert_eq!(inflate_all(&mut inf, &p1, 8192), prev);
        let mut p2 = Vec::new();
        d.compress_message(&prev[1000..1400], &mut p2);
        let mut out = vec![0u8; 8192];
        let r = inf.inflate(&p2, &mut out).and_then(|_| inf.inflate(&TAIL, &mut out));
        assert!(r.is_err(), "a reference outside the agreed window");
    }

    #[test]
    fn levels() {
        assert!(backend_level(-3).is_none() && backend_level(10).is_none());
        for l in -2..=9 {
            assert!(backend_level(l).is_some());
        }
        // gorilla's 1 is zlib-rs's 2 (its 1 has fixed codes only).
        assert_eq!(backend_level(1).unwrap().level(), 2);
        assert_eq!(backend_level(-1).unwrap().level(), 6);
    }

    #[test]
    fn default_level_beats_zlib_level_1_on_json() {
        // zlib 1.2.13's level 1 (Python's zlib, wbits -15, sync flush, one
        // message at a time) gives 2.16x on the bench's 1 KiB JSON-like
        // documents; zlib-rs level 1 gives 1.68x. Here: the mapped default
        // must stay well above zlib-rs level 1 on similar text.
        let text = json_like(2000);
        let size = |level| {
            let mut d = Deflater::new(level, 15, true);
            let mut total = 0;
            for i in 0..20 {
                let mut p = Vec::new();
                d.compress_message(&text[i * 1024..(i + 1) * 1024], &mut p);
                total += p.len();
            }
            total
        };
        let quick = size(Compression::new(1));
        let default = size(backend_level(crate::api::config::DEFAULT_COMPRESSION_LEVEL).unwrap());
        assert!((default as f64) < quick as f64 * 0.9, "default {default} vs zlib-rs level 1 {quick}");
    }
}
