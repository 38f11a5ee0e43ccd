//! The buffer a fragmented or large message is assembled in.
//!
//! Its bytes stay initialized up to a high-water mark, and the message's
//! length is tracked apart from it, so reading a large frame straight into
//! it costs no zero-fill after the first message of that size.

/// Above this, the buffer is given back once the message is consumed
/// (when the next read starts, before it waits), so a large message does
/// not pin its memory on an idle connection.
const KEEP_MAX: usize = 1024 * 1024;

#[derive(Default)]
pub(super) struct MessageBuf {
    data: Vec<u8>,
    len: usize,
}

impl MessageBuf {
    pub(super) fn clear(&mut self) {
        if self.data.len() > KEEP_MAX {
            self.data = Vec::new();
        }
        self.len = 0;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.data[..self.len]
    }

    pub(super) fn extend(&mut self, bytes: &[u8]) {
        self.tail(bytes.len()).copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// The `n` bytes after the message, to read into; `commit` adds what was
    /// actually filled.
    pub(super) fn tail(&mut self, n: usize) -> &mut [u8] {
        let need = self.len + n;
        if self.data.len() < need {
            // Exactly what is asked for: callers ask for what is about to
            // arrive, so memory follows bytes received (the allocation
            // still grows geometrically inside `Vec`).
            self.data.resize(need, 0);
        }
        &mut self.data[self.len..need]
    }

    /// Adds `n` bytes written through `tail` to the message.
    pub(super) fn commit(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        self.len += n;
        &mut self.data[start..self.len]
    }
}
