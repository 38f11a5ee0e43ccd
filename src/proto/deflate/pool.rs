//! Per-thread pools of zlib-rs compressor and decompressor states.
//!
//! A zlib-rs compressor costs 160-370 KiB whatever the window (its hash
//! table alone is 128 KiB), a decompressor ~42 KiB (it always has a 32 KiB
//! window). A connection that does not keep its state between messages
//! takes one from its thread's pool for the message and gives it back
//! after, so an event loop thread needs one per message in progress, not
//! one per connection. A thread-local pool serves every driver (loop
//! thread, thread per blocking connection, any sending thread) without
//! plumbing; states are `Send`, so one may come back on another thread.

use std::cell::RefCell;

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate};

/// Idle states a thread keeps per kind; more are freed when given back.
const KEEP: usize = 2;

/// What makes two compressor states interchangeable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateKey {
    pub window_bits: u8,
    pub mem_level: u8,
}

/// A compressor and the level it is set to (zlib-rs does not report it).
pub struct Compressor {
    d: Deflate,
    key: DeflateKey,
    level: i32,
}

impl Compressor {
    pub fn new(key: DeflateKey, level: i32) -> Compressor {
        let config = DeflateConfig {
            level,
            window_bits: -i32::from(key.window_bits),
            mem_level: i32::from(key.mem_level),
            ..DeflateConfig::default()
        };
        Compressor { d: Deflate::new_with_config(config), key, level }
    }

    /// Between messages only. zlib-rs can switch to a level with another
    /// match finder only on a fresh stream (it would flush a block into an
    /// output buffer its API does not pass), so a used stream is reset
    /// first: the next message then refers to nothing before it, which the
    /// peer's window allows (we merely do not use it once).
    pub fn set_level(&mut self, level: i32) {
        if level != self.level {
            if self.d.set_level(level).is_err() {
                self.d.reset();
                let _ = self.d.set_level(level);
            }
            self.level = level;
        }
    }

    pub fn reset(&mut self) {
        self.d.reset();
    }

    /// Primes a fresh stream with the bytes the peer's window holds.
    pub fn set_dictionary(&mut self, dict: &[u8]) {
        // Fails only on a zlib/gzip stream or mid-stream: never here.
        let _ = self.d.set_dictionary(dict);
    }

    /// Compresses `input` into `out`'s spare capacity, growing it as
    /// needed; with a flush, until everything is out.
    pub fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>, flush: DeflateFlush) {
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 2 + 1024);
            }
            let (in0, out0) = (self.d.total_in(), self.d.total_out());
            let spare = out.spare_capacity_mut();
            let room = spare.len();
            // Errors happen only on misuse of the stream (a bug here).
            self.d.compress_uninit(input, spare, flush).expect("deflate stream in a consistent state");
            let produced = (self.d.total_out() - out0) as usize;
            debug_assert!(produced <= room);
            // SAFETY: zlib-rs wrote `produced` bytes at the start of the
            // spare capacity (its total_out counts exactly those).
            unsafe { out.set_len(out.len() + produced) };
            input = &input[(self.d.total_in() - in0) as usize..];
            let more = !input.is_empty() || (flush != DeflateFlush::NoFlush && produced == room);
            if !more {
                return;
            }
        }
    }
}

#[derive(Default)]
struct Pool {
    deflaters: Vec<Compressor>,
    inflaters: Vec<Inflate>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// A compressor from this thread's pool (or a new one), reset, at `level`.
pub fn take_deflate(key: DeflateKey, level: i32) -> Compressor {
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let i = p.deflaters.iter().position(|c| c.key == key)?;
            Some(p.deflaters.swap_remove(i))
        })
        .ok()
        .flatten();
    match pooled {
        Some(mut c) => {
            c.set_level(level);
            c
        }
        None => Compressor::new(key, level),
    }
}

/// Gives a compressor back (reset here, so a taker gets a fresh stream).
pub fn give_deflate(mut c: Compressor) {
    c.reset();
    // During thread exit the pool is gone: the state is just freed.
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.deflaters.iter().filter(|d| d.key == c.key).count() < KEEP {
            p.deflaters.push(c);
        }
    });
}

/// A raw-deflate decompressor with a 32 KiB window (decodes every window a
/// peer may use), reset.
pub fn take_inflate() -> Inflate {
    POOL.try_with(|p| p.borrow_mut().inflaters.pop()).ok().flatten().unwrap_or_else(|| Inflate::new(false, 15))
}

pub fn give_inflate(mut d: Inflate) {
    d.reset(false);
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.inflaters.len() < KEEP {
            p.inflaters.push(d);
        }
    });
}

/// (compressors, decompressors) idle in this thread's pool.
pub fn idle_counts() -> (usize, usize) {
    POOL.try_with(|p| {
        let p = p.borrow();
        (p.deflaters.len(), p.inflaters.len())
    })
    .unwrap_or((0, 0))
}
