//! The TLS layer's byte buffers: records received and not yet processed,
//! records to send, and the rest of a decrypted record the caller had no
//! room for.
//!
//! Each is a [`Buf`] that holds memory only while it holds bytes: once
//! emptied its storage goes back to a small process-wide [`pool`], so an
//! idle connection keeps no TLS buffer at all, and a busy one reuses warm,
//! already initialized memory instead of allocating and zeroing ~18 KiB per
//! record (rustls's unbuffered API writes into `&mut [u8]`, which must be
//! initialized).

use std::sync::Mutex;

/// What a buffer starts at: room for one full TLS record (16 KiB of
/// plaintext plus the largest record overhead rustls accepts) and the
/// start of the next.
pub const STANDARD: usize = 18 * 1024 + 512;

pub mod pool {
    //! A bounded free list of buffers, shared by all threads: at most
    //! [`KEEP`] buffers and [`KEEP_BYTES`] bytes stay cached, so the pool
    //! costs a process at most that however many connections it serves.
    //! Shared rather than per thread: a blocking connection's reader thread
    //! that sleeps in `poll` would otherwise keep a buffer of its own.
    //!
    //! A thread that drives an event loop keeps a few buffers of its own
    //! in front of the shared list ([`local_enable`]): it takes and gives
    //! a buffer for every record it receives and sends, and the shared
    //! list's lock (two atomic operations per take or give) was about 4 %
    //! of a busy loop thread's time under perf (16 B x 16 over wss). The
    //! loop hands them back to the shared list at every sweep and at every
    //! poll with no deadline of its own ([`local_flush`]), so at most
    //! [`LOCAL_KEEP`] buffers per loop thread stay out of the shared list
    //! between sweeps.

    use std::cell::RefCell;

    use super::{Mutex, STANDARD};

    /// Buffers a loop thread keeps for itself (receive, send, a record's
    /// rest).
    pub const LOCAL_KEEP: usize = 3;

    thread_local! {
        /// `None` on threads that do not drive a loop.
        static LOCAL: RefCell<Option<Vec<Vec<u8>>>> = const { RefCell::new(None) };
    }

    /// This thread drives an event loop: it keeps up to [`LOCAL_KEEP`]
    /// buffers of its own until [`local_flush`].
    pub fn local_enable() {
        LOCAL.with(|l| {
            let mut l = l.borrow_mut();
            if l.is_none() {
                *l = Some(Vec::with_capacity(LOCAL_KEEP));
            }
        });
    }

    /// Gives this thread's own buffers back to the shared list.
    pub fn local_flush() {
        // One at a time, in place: the sweep calls this, and a loop
        // allocates nothing in its steady state (tests/event_loop_alloc.rs).
        while let Some(b) = LOCAL.try_with(|l| l.borrow_mut().as_mut().and_then(Vec::pop)).ok().flatten() {
            give_shared(b);
        }
    }

    /// Bytes this thread keeps of its own (0 unless it drives a loop).
    #[cfg(test)]
    pub fn local_bytes() -> usize {
        LOCAL.try_with(|l| l.borrow().as_ref().map_or(0, |v| v.iter().map(Vec::capacity).sum())).unwrap_or(0)
    }

    /// Buffers kept. The event loop thread needs two or three at once
    /// (receive, send, a record's rest); a few more serve blocking
    /// connections' threads.
    pub const KEEP: usize = 8;
    /// Bytes kept at most (a few grown buffers: 64 KiB messages).
    pub const KEEP_BYTES: usize = 384 * 1024;
    /// Larger buffers are freed, not cached (a large handshake flight).
    const KEEP_LARGEST: usize = 96 * 1024;

    struct Free {
        bufs: Vec<Vec<u8>>,
        bytes: usize,
    }

    static FREE: Mutex<Free> = Mutex::new(Free { bufs: Vec::new(), bytes: 0 });

    fn free() -> std::sync::MutexGuard<'static, Free> {
        // The lock guards no invariant a panic could break halfway.
        FREE.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `min` (and at least [`STANDARD`]) initialized
    /// bytes; its contents are arbitrary.
    pub fn take(min: usize) -> Vec<u8> {
        let want = min.max(STANDARD);
        // `try_with`: a buffer may be taken or given while the thread's
        // locals are torn down (the shared list serves then).
        let mine = LOCAL.try_with(|l| l.borrow_mut().as_mut().and_then(Vec::pop)).ok().flatten();
        let cached = if mine.is_some() {
            mine
        } else {
            let mut f = free();
            let b = f.bufs.pop();
            if let Some(b) = &b {
                f.bytes -= b.capacity();
            }
            b
        };
        match cached {
            Some(mut b) => {
                if b.len() < want {
                    b.resize(want, 0);
                }
                b
            }
            None => vec![0; want],
        }
    }

    /// Returns a buffer for reuse (or frees it when the pool is full).
    pub fn give(buf: Vec<u8>) {
        let cap = buf.capacity();
        if !(STANDARD..=KEEP_LARGEST).contains(&cap) {
            return;
        }
        let mut buf = Some(buf);
        let _ = LOCAL.try_with(|l| {
            if let Some(v) = l.borrow_mut().as_mut() {
                if v.len() < LOCAL_KEEP {
                    v.extend(buf.take());
                }
            }
        });
        if let Some(buf) = buf {
            give_shared(buf);
        }
    }

    fn give_shared(buf: Vec<u8>) {
        let cap = buf.capacity();
        let mut f = free();
        if f.bufs.len() < KEEP && f.bytes + cap <= KEEP_BYTES {
            if f.bufs.capacity() == 0 {
                f.bufs.reserve_exact(KEEP);
            }
            f.bytes += cap;
            f.bufs.push(buf);
        }
    }

    /// Bytes the pool holds now (the memory tests report it apart from
    /// what connections hold).
    pub fn held_bytes() -> usize {
        let f = free();
        f.bytes + f.bufs.capacity() * std::mem::size_of::<Vec<u8>>()
    }
}

/// A byte queue, `mem[start..end]`, whose storage comes from the pool and
/// goes back to it as soon as the queue is empty.
#[derive(Default)]
pub struct Buf {
    mem: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buf {
    pub const fn new() -> Buf {
        Buf { mem: Vec::new(), start: 0, end: 0 }
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes of storage held (0 when empty).
    pub fn capacity(&self) -> usize {
        self.mem.capacity()
    }

    pub fn data(&self) -> &[u8] {
        &self.mem[self.start..self.end]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.end]
    }

    /// Drops `n` bytes from the front; an emptied queue gives its storage back.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.release();
        }
    }

    /// Empties the queue and gives its storage back.
    pub fn release(&mut self) {
        self.start = 0;
        self.end = 0;
        if self.mem.capacity() > 0 {
            pool::give(std::mem::take(&mut self.mem));
        }
    }

    /// Writable room after the queued bytes, at least `min` bytes long
    /// (taken from the pool, moved to the front, or grown as needed).
    /// Bytes written there join the queue with [`Buf::commit`].
    pub fn room(&mut self, min: usize) -> &mut [u8] {
        if self.mem.is_empty() {
            self.mem = pool::take(min);
            self.start = 0;
            self.end = 0;
        }
        if self.mem.len() - self.end < min {
            if self.start > 0 {
                // At most one partial record moves: each read or write
                // does this once, not per record.
                self.mem.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.mem.len() - self.end < min {
                let grown = (self.end + min).max(self.mem.len() * 2);
                self.mem.resize(grown, 0);
            }
        }
        &mut self.mem[self.end..]
    }

    /// `n` bytes written into [`Buf::room`] join the queue.
    pub fn commit(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.mem.len());
        self.end += n;
    }

    pub fn extend(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.room(data.len())[..data.len()].copy_from_slice(data);
        self.commit(data.len());
    }

    /// Moves up to `out.len()` bytes from the front into `out`.
    pub fn read_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len());
        out[..n].copy_from_slice(&self.mem[self.start..self.start + n]);
        self.consume(n);
        n
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_buffer_holds_no_memory() {
        let mut b = Buf::new();
        b.extend(b"hello");
        assert!(b.capacity() >= STANDARD);
        let mut out = [0u8; 3];
        assert_eq!(b.read_into(&mut out), 3);
        assert_eq!(b.data(), b"lo");
        b.consume(2);
        assert_eq!(b.capacity(), 0);
        assert!(b.is_empty());
    }

    #[test]
    fn a_loop_thread_keeps_a_few_buffers_until_it_flushes() {
        // A thread of its own: the local cache is per thread.
        std::thread::spawn(|| {
            assert_eq!(pool::local_bytes(), 0);
            // Not a loop thread: everything goes to the shared list.
            pool::give(vec![0; STANDARD]);
            assert_eq!(pool::local_bytes(), 0);
            pool::local_enable();
            for _ in 0..pool::LOCAL_KEEP + 2 {
                pool::give(vec![0; STANDARD]);
            }
            assert_eq!(pool::local_bytes(), pool::LOCAL_KEEP * STANDARD, "at most LOCAL_KEEP kept");
            // Taken from the thread's own first, and given back there.
            let b = pool::take(100);
            assert_eq!(pool::local_bytes(), (pool::LOCAL_KEEP - 1) * STANDARD);
            pool::give(b);
            // A buffer too large for the pool is freed, not kept.
            pool::local_flush();
            assert_eq!(pool::local_bytes(), 0);
            pool::give(vec![0; 200 * 1024]);
            assert_eq!(pool::local_bytes(), 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn room_moves_the_rest_to_the_front_before_growing() {
        let mut b = Buf::new();
        let room = b.room(10).len();
        b.commit(room);
        b.consume(room - 4);
        let cap = b.capacity();
        assert!(b.room(room - 4).len() >= room - 4);
        assert_eq!(b.capacity(), cap, "compacted, not grown");
        assert_eq!(b.len(), 4);
        assert!(b.room(2 * room).len() >= 2 * room, "grown");
        assert_eq!(b.len(), 4);
    }
}
