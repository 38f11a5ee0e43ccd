//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Each piece is checked with simdutf8 as it arrives, so an invalid
//! sequence fails the connection at once (Autobahn's "fail fast" cases)
//! rather than when the message is complete. A code point split across
//! pieces is carried over in a 4-byte buffer.

#[derive(Default, Clone, Debug)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl Utf8Validator {
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Validates the next piece of the text; `Err` as soon as the text so far
    /// cannot be the prefix of valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let need = sequence_len(self.partial[0]);
            let take = (need - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            match std::str::from_utf8(&self.partial[..self.partial_len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() && self.partial_len < need => return Ok(()),
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                // A valid prefix of a code point at the end: keep it.
                let tail = &data[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len();
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Called at the end of the message: a dangling partial code point is
    /// invalid.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_all_splits(bytes: &[u8]) {
        let whole = std::str::from_utf8(bytes).is_ok();
        for split in 0..=bytes.len() {
            let mut v = Utf8Validator::default();
            let ok = v.feed(&bytes[..split]).is_ok() && v.feed(&bytes[split..]).is_ok() && v.finish().is_ok();
            assert_eq!(ok, whole, "{bytes:?} split at {split}");
        }
        // Byte by byte.
        let mut v = Utf8Validator::default();
        let ok = bytes.iter().all(|b| v.feed(std::slice::from_ref(b)).is_ok()) && v.finish().is_ok();
        assert_eq!(ok, whole, "{bytes:?} byte by byte");
    }

    #[test]
    fn agrees_with_std_for_every_split() {
        let cases: &[&[u8]] = &[
            b"hello",
            "κόσμε".as_bytes(),
            "€𝄞 mixed ✓".as_bytes(),
            &[0xF0, 0x9F, 0x98, 0x80],
            &[0xED, 0xA0, 0x80],       // surrogate
            &[0xF4, 0x90, 0x80, 0x80], // above U+10FFFF
            &[0xC0, 0xAF],             // overlong
            &[0xE0, 0x80, 0xAF],       // overlong
            &[0xCE, 0xBA, 0xE1],       // truncated at the end
            &[0xFF],
            &[0x80],
            &[0xF0, 0x9F, 0x98],
        ];
        for c in cases {
            check_all_splits(c);
        }
    }

    #[test]
    fn fails_fast_on_an_impossible_prefix() {
        // 0xF4 0x90 can never start a valid code point: rejected before the
        // rest of the sequence arrives.
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[b'a', 0xF4]).is_ok());
        assert!(v.feed(&[0x90]).is_err());
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0]).is_err());
    }
}
