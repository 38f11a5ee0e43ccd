//! A per-thread output buffer for compressing whole messages.
//!
//! A compressed message is copied behind its frame header right after it
//! is made, so the buffer it was made in is free again at once; keeping one
//! per connection would make every idle connection hold its largest
//! compressed message. One per thread holds the largest of the thread.

use std::cell::RefCell;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, emptied. Reentrant calls
/// (and calls during thread exit) get a fresh buffer instead.
pub fn with<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let taken = SCRATCH.try_with(|s| s.try_borrow_mut().map(|mut b| std::mem::take(&mut *b)).ok()).ok().flatten();
    let mut buf = taken.unwrap_or_default();
    buf.clear();
    let r = f(&mut buf);
    let _ = SCRATCH.try_with(|s| {
        if let Ok(mut b) = s.try_borrow_mut() {
            if b.capacity() < buf.capacity() {
                *b = buf;
            }
        }
    });
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn reused_and_reentrant() {
        let cap = super::with(|b| {
            b.extend_from_slice(&[1; 5000]);
            b.capacity()
        });
        super::with(|b| {
            assert!(b.is_empty() && b.capacity() >= cap, "the same buffer, emptied");
            super::with(|inner| assert!(inner.is_empty()));
        });
    }
}
