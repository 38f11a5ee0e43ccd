//! Inflating one compressed message (RFC 7692 7.2.2) with every bound a
//! receiver needs, for every driver:
//!
//! - the read limit counts inflated bytes, checked after each step of at
//!   most 64 KiB of output, so a small "bomb" stops at the limit (1009)
//!   without a large allocation;
//! - compressed input is bounded too (incompressible data grows by a few
//!   bytes per 16 KiB block at most, so `limit + limit/8 + 4096` is more
//!   than any honest peer needs; computed without overflow);
//! - text is UTF-8-checked as it inflates (fails fast, 1007);
//! - each call produces at most a caller-given budget of output, so one
//!   connection's large message cannot stall a loop that serves others;
//! - the output buffer's capacity stays under a caller-given ceiling (the
//!   host's memory budget), growing geometrically below it.

use super::super::deflate::codec::TAIL;
use super::super::deflate::{Agreement, Inflater};
use super::super::utf8::Utf8Validator;
use super::super::ProtoError;

/// Inflated output is produced in steps of at most this size.
const STEP: usize = 64 * 1024;
/// Spare capacity below this is not worth a step of its own: the buffer
/// grows by a full step instead.
const MIN_ROOM: usize = 4 * 1024;

/// The most compressed bytes a message may carry under read limit `limit`
/// (0: no limit).
pub fn compressed_bound(limit: u64) -> u64 {
    if limit == 0 {
        return u64::MAX;
    }
    limit.saturating_add(limit / 8).saturating_add(4096)
}

/// Makes room for `need` bytes in `v`: geometric growth (amortized O(1)),
/// but the capacity stays at or under `ceiling` unless `need` itself is
/// over it.
pub fn reserve_within(v: &mut Vec<u8>, need: usize, ceiling: usize) {
    if v.capacity() >= need {
        return;
    }
    let target = need.max(v.capacity().saturating_mul(2).min(ceiling));
    v.reserve_exact(target - v.len());
}

pub struct MessageInflater {
    inflater: Inflater,
    utf8: Utf8Validator,
    text: bool,
    total_in: u64,
    total_out: u64,
    tail_fed: usize,
    /// The last step filled its output: more may be waiting inside zlib.
    drain: bool,
}

/// How far one call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inflated {
    /// Compressed input bytes consumed.
    pub used: usize,
    /// The message is complete (only once its last frame was given).
    pub done: bool,
}

impl MessageInflater {
    pub fn new(peer_no_context_takeover: bool) -> MessageInflater {
        MessageInflater::with(Inflater::new(peer_no_context_takeover))
    }

    /// The decompressor the handshake agreed on (its window and memory
    /// mode).
    pub fn for_agreement(agreement: &Agreement) -> MessageInflater {
        MessageInflater::with(Inflater::for_agreement(agreement))
    }

    fn with(inflater: Inflater) -> MessageInflater {
        MessageInflater {
            inflater,
            utf8: Utf8Validator::default(),
            text: false,
            total_in: 0,
            total_out: 0,
            tail_fed: 0,
            drain: false,
        }
    }

    /// A new compressed message starts.
    pub fn begin(&mut self, text: bool) {
        self.utf8.reset();
        self.text = text;
        self.total_in = 0;
        self.total_out = 0;
        self.tail_fed = 0;
        self.drain = false;
    }

    /// Counts `consumed` more input (not counted yet) and `produced` more
    /// output (`new_out`), and checks the message so far: UTF-8 for text,
    /// the read limit inflated and compressed.
    fn check(&mut self, new_out: &[u8], consumed: usize, produced: usize, limit: u64) -> Result<(), ProtoError> {
        self.total_in += consumed as u64;
        self.total_out += produced as u64;
        if self.text && self.utf8.feed(new_out).is_err() {
            return Err(ProtoError::utf8("text message is not valid UTF-8"));
        }
        if limit != 0 && self.total_out > limit {
            return Err(ProtoError::too_big("message exceeds the read limit once inflated"));
        }
        if self.total_in > compressed_bound(limit) {
            return Err(ProtoError::too_big("compressed message exceeds the read limit"));
        }
        Ok(())
    }

    /// Inflates `input` (the next compressed bytes of the message; `eom`
    /// when they end it) onto `out`, adding at most `budget` bytes and
    /// never growing `out`'s capacity past `ceiling` (usize::MAX: none).
    /// Input not consumed (`used < input.len()`) must be given again.
    pub fn inflate(
        &mut self,
        input: &[u8],
        eom: bool,
        out: &mut Vec<u8>,
        limit: u64,
        budget: usize,
        ceiling: usize,
    ) -> Result<Inflated, ProtoError> {
        let start = out.len();
        let mut used = 0;
        loop {
            let tail = used == input.len() && !self.drain;
            let data: &[u8] = if used < input.len() {
                &input[used..]
            } else if self.drain {
                &[]
            } else if eom && self.tail_fed < TAIL.len() {
                &TAIL[self.tail_fed..]
            } else if eom {
                self.inflater.end_message();
                if self.text && self.utf8.finish().is_err() {
                    return Err(ProtoError::utf8("text message is not valid UTF-8"));
                }
                return Ok(Inflated { used, done: true });
            } else {
                return Ok(Inflated { used, done: false });
            };
            let added = out.len() - start;
            if added >= budget {
                return Ok(Inflated { used, done: false });
            }
            // Inflate into the room the buffer has (a pooled buffer comes
            // with 64 KiB): asking for a full step past it would double a
            // pooled buffer for a 1 KiB message, and the pool would then
            // keep the doubled one.
            let room = out.capacity() - out.len();
            let step = if room >= MIN_ROOM { room.min(STEP) } else { STEP };
            let len = out.len();
            let want = (budget - added).min(step).min(ceiling.max(out.capacity()).saturating_sub(len));
            if want == 0 {
                // No room under the ceiling: the host asks for memory first.
                return Ok(Inflated { used, done: false });
            }
            reserve_within(out, len + want, ceiling);
            out.resize(len + want, 0);
            let (consumed, produced) = match self.inflater.inflate(data, &mut out[len..]) {
                Ok(r) => r,
                Err(e) => {
                    // What zlib decoded before the error precedes it in
                    // the stream: a violation in it is the one to report
                    // (as it is when the input arrives cut before the error).
                    let (consumed, produced) = self.inflater.before_error();
                    let consumed = if tail { 0 } else { consumed }; // the tail is ours
                    let produced = produced.min(want);
                    let first = self.check(&out[len..len + produced], consumed, produced, limit);
                    out.truncate(len);
                    first?;
                    return Err(e);
                }
            };
            out.truncate(len + produced);
            if tail && !data.is_empty() {
                self.tail_fed += consumed;
            } else {
                used += consumed;
                self.total_in += consumed as u64;
            }
            self.drain = produced == want;
            self.check(&out[len..], 0, produced, limit)?;
            if consumed == 0 && produced == 0 && !data.is_empty() {
                return Err(ProtoError::invalid_data("compressed data makes no progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::Deflater;
    use crate::proto::ProtoErrorKind;
    use flate2::Compression;

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::new(Compression::default(), 15, true).compress_message(data, &mut out);
        out
    }

    #[test]
    fn bound_does_not_overflow() {
        assert_eq!(compressed_bound(0), u64::MAX);
        assert_eq!(compressed_bound(u64::MAX - 1), u64::MAX);
        assert_eq!(compressed_bound(8000), 8000 + 1000 + 4096);
    }

    #[test]
    fn budget_bounds_each_call_and_the_message_completes() {
        let data = vec![b'a'; 1 << 20];
        let z = compress(&data);
        let mut inf = MessageInflater::new(true);
        inf.begin(true);
        let mut out = Vec::new();
        let mut used = 0;
        let mut calls = 0;
        loop {
            let before = out.len();
            let r = inf.inflate(&z[used..], true, &mut out, 0, 100_000, usize::MAX).unwrap();
            assert!(out.len() - before <= 100_000);
            used += r.used;
            calls += 1;
            if r.done {
                break;
            }
        }
        assert!(calls >= 10);
        assert_eq!(out, data);
    }

    #[test]
    fn the_ceiling_bounds_the_output_buffer() {
        let data = vec![b'a'; 1 << 20];
        let z = compress(&data);
        let mut inf = MessageInflater::new(true);
        inf.begin(false);
        let mut out = Vec::new();
        let r = inf.inflate(&z, true, &mut out, 0, usize::MAX, 300_000).unwrap();
        assert!(!r.done && out.capacity() <= 300_000 && out.len() > 250_000, "{} {}", out.len(), out.capacity());
        let mut used = r.used;
        loop {
            let r = inf.inflate(&z[used..], true, &mut out, 0, usize::MAX, usize::MAX).unwrap();
            used += r.used;
            if r.done {
                break;
            }
        }
        assert_eq!(out, data, "the message completes once the ceiling is lifted");
    }

    #[test]
    fn limits() {
        let z = compress(&vec![0u8; 1 << 20]);
        let mut inf = MessageInflater::new(true);
        inf.begin(false);
        let e = inf.inflate(&z, true, &mut Vec::new(), 1000, usize::MAX, usize::MAX).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::TooBig);
        // Bad UTF-8 fails before the end of the message arrives.
        let z = compress(&[b'a', 0xff, b'b']);
        let mut inf = MessageInflater::new(true);
        inf.begin(true);
        let e = inf.inflate(&z, false, &mut Vec::new(), 0, usize::MAX, usize::MAX).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::InvalidUtf8);
    }

    #[test]
    fn compressed_input_past_the_bound_fails() {
        // A final block, then junk that inflates to nothing: only the
        // bound on compressed input stops it.
        let mut z = Vec::new();
        Deflater::new(Compression::default(), 15, true).compress_message(b"x", &mut z);
        let mut finished = flate2::Compress::new(Compression::default(), false);
        let mut fin = Vec::with_capacity(64);
        finished.compress_vec(b"x", &mut fin, flate2::FlushCompress::Finish).unwrap();
        let mut inf = MessageInflater::new(true);
        inf.begin(false);
        let mut out = Vec::new();
        inf.inflate(&fin, false, &mut out, 100, usize::MAX, usize::MAX).unwrap();
        let e = inf.inflate(&[0u8; 10_000], false, &mut out, 100, usize::MAX, usize::MAX).unwrap_err();
        assert_eq!(e.kind, ProtoErrorKind::TooBig);
    }

    /// Inflates `z` as one piece or cut into one-byte pieces; the error.
    fn error_whole_and_cut(z: &[u8], text: bool, limit: u64) -> (ProtoErrorKind, ProtoErrorKind) {
        let mut inf = MessageInflater::new(true);
        inf.begin(text);
        let whole = inf.inflate(z, true, &mut Vec::new(), limit, usize::MAX, usize::MAX).unwrap_err().kind;
        let mut inf = MessageInflater::new(true);
        inf.begin(text);
        let mut out = Vec::new();
        let cut = z
            .iter()
            .enumerate()
            .find_map(|(i, b)| {
                inf.inflate(std::slice::from_ref(b), i + 1 == z.len(), &mut out, limit, usize::MAX, usize::MAX).err()
            })
            .expect("the cut message fails too")
            .kind;
        (whole, cut)
    }

    /// A violation in what inflates before broken deflate data is the one
    /// reported, however the input is cut (found by fuzz/session_server:
    /// whole, zlib's error hid the bad UTF-8 or the size it had decoded).
    #[test]
    fn a_violation_before_broken_data_comes_first() {
        // Our messages end inside the empty stored block of a sync flush
        // (its LEN and NLEN are the tail the peer strips): LEN 0 with
        // NLEN 0 is invalid deflate data.
        const BROKEN: [u8; 4] = [0, 0, 0, 0];
        let mut z = compress(&[b'a', 0xff, b'b']);
        z.extend_from_slice(&BROKEN);
        assert_eq!(error_whole_and_cut(&z, true, 0), (ProtoErrorKind::InvalidUtf8, ProtoErrorKind::InvalidUtf8));
        let mut z = compress(&[b'a'; 5000]);
        z.extend_from_slice(&BROKEN);
        assert_eq!(error_whole_and_cut(&z, false, 1000), (ProtoErrorKind::TooBig, ProtoErrorKind::TooBig));
        // Nothing wrong before it: the broken data is the error.
        let mut z = compress(b"fine");
        z.extend_from_slice(&BROKEN);
        assert_eq!(error_whole_and_cut(&z, true, 0), (ProtoErrorKind::InvalidData, ProtoErrorKind::InvalidData));
    }
}
