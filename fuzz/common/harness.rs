//! Shared by the engine and session targets: a global allocator that
//! counts the bytes the Rust side holds (so a target can assert that memory
//! follows the bytes received: a header announcing a huge length must not
//! make the engine allocate it; libFuzzer's own allocations are C mallocs
//! and are not counted), a hash to compare messages without keeping
//! copies, and the split sizes.

// Each target uses part of this.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call forwards to the system allocator with the caller's
// arguments unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

/// Starts a measurement: returns the bytes held now.
pub fn start() -> usize {
    let now = LIVE.load(Relaxed);
    PEAK.store(now, Relaxed);
    now
}

/// The most held above `base` since `start` returned it.
pub fn peak_above(base: usize) -> usize {
    PEAK.load(Relaxed).saturating_sub(base)
}

/// FNV-1a: messages are compared by length and hash, so the harness does
/// not hold copies of them (which would count against the bound).
pub fn hash(data: &[u8]) -> u64 {
    hash_more(HASH_START, data)
}

pub const HASH_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues `hash` over more bytes: a stream hashes the same however it
/// is cut.
pub fn hash_more(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Read sizes from a seed (xorshift): 1..=max, different for every seed.
pub struct Splits(pub u32);

impl Splits {
    pub fn next(&mut self, max: u32) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (1 + self.0 % max) as usize
    }
}
