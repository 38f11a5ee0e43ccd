//! The last bytes of one direction's uncompressed stream, kept between
//! messages instead of a whole zlib state.
//!
//! With context takeover a message may refer back to the previous
//! messages, but only as far as the window (2^window_bits bytes). Those
//! bytes are all a connection has to keep: before its next message a
//! pooled compressor or decompressor is primed with them (a preset
//! dictionary), which continues the stream exactly as if the state had
//! been kept. A 12-bit window costs 4 KiB here instead of the ~160 KiB of a
//! zlib-rs compressor.

use std::collections::VecDeque;

pub struct History {
    /// At most `cap` bytes, oldest first; no allocation until first used.
    bytes: VecDeque<u8>,
    cap: usize,
}

impl History {
    /// Keeps the last 2^window_bits bytes.
    pub fn new(window_bits: u8) -> History {
        History { bytes: VecDeque::new(), cap: 1usize << window_bits }
    }

    /// Appends the stream's next bytes, dropping what falls out of the window.
    pub fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.bytes.capacity() == 0 {
            // Exactly the window: this is the connection's idle cost.
            self.bytes.reserve_exact(self.cap);
        }
        if data.len() >= self.cap {
            self.bytes.clear();
            self.bytes.extend(&data[data.len() - self.cap..]);
            return;
        }
        let over = (self.bytes.len() + data.len()).saturating_sub(self.cap);
        self.bytes.drain(..over);
        self.bytes.extend(data);
    }

    /// The bytes in order, as one slice (rotates in place, no allocation).
    pub fn contiguous(&mut self) -> &[u8] {
        self.bytes.make_contiguous()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Forgets the stream (its allocation is kept for the next message).
    pub fn clear(&mut self) {
        self.bytes.clear();
    }

    /// Bytes allocated for this history.
    pub fn allocated(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_window_of_bytes() {
        let mut h = History::new(9); // 512 bytes
        assert!(h.is_empty() && h.allocated() == 0);
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        let mut fed = 0;
        for chunk in [1usize, 7, 300, 100, 600, 5, 987] {
            h.push(&data[fed..fed + chunk]);
            fed += chunk;
            let want = &data[fed.saturating_sub(512)..fed];
            assert_eq!(h.contiguous(), want, "after {fed} bytes");
        }
        assert!(h.allocated() >= 512 && h.allocated() < 1024);
        h.clear();
        assert!(h.is_empty());
    }
}
