//! The buffer a fragmented or large message is assembled in.
//!
//! Its bytes stay initialized up to a high-water mark, and the message's
//! length is tracked apart from it, so reading a large frame straight into
//! it costs no zero-fill after the first message of that size.
//!
//! Its capacity (and what the engine holds for the connection, reported
//! with [`MessageBuf::set_extra`]) counts against the memory budget: it
//! grows geometrically while the budget allows, exactly otherwise, and the
//! reader asks [`MessageBuf::may_grow`] before it reads more.

use std::time::Instant;

use crate::api::budget::{Charge, MemoryBudget};

/// Above this, the buffer is given back once the message is consumed
/// (when the next read starts, before it waits), so a large message does
/// not pin its memory on an idle connection. Below it the buffer is kept
/// for the next message, unless memory is tight (the budget is past its
/// high-water mark): an idle connection then holds nothing and is read.
const KEEP_MAX: usize = 1024 * 1024;

pub(super) struct MessageBuf {
    data: Vec<u8>,
    len: usize,
    charge: Charge,
    /// Bytes the engine holds for this connection (counted with `data`).
    extra: usize,
}

impl MessageBuf {
    pub(super) fn new(budget: &MemoryBudget) -> MessageBuf {
        MessageBuf { data: Vec::new(), len: 0, charge: budget.charge(), extra: 0 }
    }

    pub(super) fn clear(&mut self) {
        if self.data.len() > KEEP_MAX || (self.data.capacity() > 0 && self.charge.budget().is_tight()) {
            self.data = Vec::new();
            self.sync();
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
            if self.data.capacity() < need {
                // Geometric growth (amortized O(1)) while the budget grants
                // it; exactly what is about to arrive when memory is short.
                let cap = self.data.capacity();
                let geometric = need.max(cap.saturating_mul(2));
                // The reservation is atomic (`try_grow`): many readers
                // doubling at once cannot all pass the rule together.
                let target = if geometric > need && !self.charge.try_grow(geometric - cap) { need } else { geometric };
                self.data.reserve_exact(target - self.data.len());
            }
            self.data.resize(need, 0);
            self.sync();
        }
        &mut self.data[self.len..need]
    }

    /// Adds `n` bytes written through `tail` to the message.
    pub(super) fn commit(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        self.len += n;
        &mut self.data[start..self.len]
    }

    /// What the engine holds besides this buffer (its backlog).
    pub(super) fn set_extra(&mut self, n: usize) {
        if n != self.extra {
            self.extra = n;
            self.sync();
        }
    }

    /// Bytes held for the message itself (the buffer's capacity).
    pub(super) fn allocated(&self) -> usize {
        self.data.capacity()
    }

    /// Whether anything counts against the budget now.
    pub(super) fn holds_any(&self) -> bool {
        self.charge.held() > 0
    }

    pub(super) fn may_grow(&self, n: usize) -> bool {
        self.charge.may_grow(n)
    }

    pub(super) fn wait_may_grow(&mut self, n: usize, until: Instant, stop: &dyn Fn() -> bool) -> bool {
        self.charge.wait_may_grow(n, Some(until), stop)
    }

    fn sync(&mut self) {
        self.charge.set(self.data.capacity() + self.extra);
    }
}
