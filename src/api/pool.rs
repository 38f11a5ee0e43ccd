//! A shared pool of write buffers (gorilla's WriteBufferPool): a connection
//! holds a write buffer only while a write is in progress, so many mostly
//! idle connections share a few buffers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
pub struct BufferPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    buffer_size: usize,
    max_pooled: usize,
    free: Mutex<Vec<Vec<u8>>>,
    /// A buffer was handed out since the last `trim`.
    used: AtomicBool,
}

/// What [`BufferPool::trim`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trimmed {
    /// A buffer was taken since the previous call (the pool is busy).
    pub used: bool,
    /// More than `keep` buffers stay idle: call again later.
    pub more: bool,
}

/// Buffers above this count are dropped on return rather than kept.
const MAX_POOLED: usize = 1024;

impl BufferPool {
    pub fn new(buffer_size: usize) -> Self {
        Self::with_limit(buffer_size, MAX_POOLED)
    }

    /// A pool that keeps at most `max_pooled` idle buffers: what a burst
    /// leaves behind is bounded by `max_pooled * 2 * buffer_size`.
    pub fn with_limit(buffer_size: usize, max_pooled: usize) -> Self {
        BufferPool {
            inner: Arc::new(PoolInner {
                buffer_size: buffer_size.max(256),
                max_pooled,
                free: Mutex::new(Vec::new()),
                used: AtomicBool::new(false),
            }),
        }
    }

    pub fn buffer_size(&self) -> usize {
        self.inner.buffer_size
    }

    pub fn get(&self) -> Vec<u8> {
        self.inner.used.store(true, Ordering::Relaxed);
        let popped = self.inner.free.lock().ok().and_then(|mut f| f.pop());
        popped.unwrap_or_else(|| Vec::with_capacity(self.inner.buffer_size))
    }

    pub fn put(&self, mut buf: Vec<u8>) {
        buf.clear();
        // A buffer that grew for a large frame is not worth keeping; one
        // smaller than the pool's size (an empty `Vec` put back by a
        // connection that held none) would be handed out and regrown.
        if buf.capacity() > self.inner.buffer_size * 2 || buf.capacity() < self.inner.buffer_size {
            return;
        }
        if let Ok(mut f) = self.inner.free.lock() {
            if f.len() < self.inner.max_pooled {
                f.push(buf);
            }
        }
    }

    /// Bytes the idle buffers hold (their capacities: one may have grown
    /// up to twice the pool's size).
    pub fn idle_bytes(&self) -> usize {
        self.inner.free.lock().map(|f| f.iter().map(Vec::capacity).sum()).unwrap_or(0)
    }

    /// For a periodic caller (the loop's sweep): when no buffer was taken
    /// since the last call, frees half of the idle buffers above `keep`,
    /// so what a burst left behind goes back to the allocator over a few
    /// quiet periods while a busy pool keeps them.
    pub fn trim(&self, keep: usize) -> Trimmed {
        let used = self.inner.used.swap(false, Ordering::Relaxed);
        let Ok(mut f) = self.inner.free.lock() else { return Trimmed { used, more: false } };
        if !used && f.len() > keep {
            let drop = (f.len() - keep).div_ceil(2);
            let left = f.len() - drop;
            f.truncate(left);
            f.shrink_to_fit();
        }
        Trimmed { used, more: f.len() > keep }
    }

    /// Buffers currently idle in the pool.
    pub fn idle(&self) -> usize {
        self.inner.free.lock().map(|f| f.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::{BufferPool, Trimmed};

    #[test]
    fn trim_halves_the_excess_only_when_the_pool_was_not_used() {
        let pool = BufferPool::with_limit(256, 64);
        let held: Vec<_> = (0..20).map(|_| pool.get()).collect();
        for b in held {
            pool.put(b);
        }
        assert_eq!(pool.idle(), 20);
        assert_eq!(pool.trim(4), Trimmed { used: true, more: true }, "used since the last trim: nothing freed");
        assert_eq!(pool.idle(), 20);
        assert!(pool.trim(4).more);
        assert_eq!(pool.idle(), 12);
        let b = pool.get();
        pool.put(b);
        assert_eq!(pool.trim(4), Trimmed { used: true, more: true });
        assert_eq!(pool.idle(), 12);
        assert!(pool.trim(4).more);
        assert_eq!(pool.idle(), 8);
        assert!(pool.trim(4).more);
        assert_eq!(pool.idle(), 6);
        assert!(pool.trim(4).more);
        assert_eq!(pool.idle(), 5);
        assert!(!pool.trim(4).more);
        assert_eq!(pool.idle(), 4);
        assert!(!pool.trim(4).more);
        assert_eq!(pool.idle(), 4);
    }

    #[test]
    fn buffers_smaller_than_the_pool_size_are_not_kept() {
        let pool = BufferPool::new(4096);
        pool.put(Vec::new());
        pool.put(Vec::with_capacity(16));
        assert_eq!(pool.idle(), 0);
        assert!(pool.get().capacity() >= 4096);
        pool.put(Vec::with_capacity(4096));
        assert_eq!(pool.idle(), 1);
        pool.put(Vec::with_capacity(3 * 4096));
        assert_eq!(pool.idle(), 1);
    }
}
