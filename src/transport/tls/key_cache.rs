//! Expanded AEAD keys, kept per thread for the connections that are busy.
//!
//! ring's expanded AES-GCM key (the AES round keys and the GHASH table) is
//! 560 bytes, and rustls keeps one per direction for a connection's whole
//! life: 1,120 of the bytes an idle `wss` connection holds. A connection's
//! record protection ([`super::lazy_aead`]) keeps only the raw key (at most
//! 32 bytes) and asks this cache for the expanded one when it seals or
//! opens a record. Busy connections find theirs here; an idle one costs
//! nothing but its raw key, and expanding it again (a few hundred
//! nanoseconds with AES-NI) is paid once when it wakes.
//!
//! The cache is per thread, so it needs no lock: the loop runs every
//! connection on its thread, and a blocking connection's reader and writer
//! each have their own. It holds at most [`CAPACITY`] keys, chosen by a
//! clock sweep (a key used since the hand last passed gets a second
//! chance). Ids are never reused, so a slot can never hand one connection
//! another's key; a key's owner clears its slot when it is dropped.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::aead::{Algorithm, LessSafeKey, UnboundKey};

/// Keys one thread keeps expanded: 256 × 560 B ≈ 140 KiB at most, allocated
/// only as connections use them.
pub const CAPACITY: usize = 256;

struct Slot {
    id: u64,
    used: bool,
    key: LessSafeKey,
}

#[derive(Default)]
struct Cache {
    slots: Vec<Slot>,
    hand: usize,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// A fresh id for a key: ids are never reused (a u64 counter).
pub fn new_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Where a key was last found: a hint, checked against the id on use.
#[derive(Debug, Default, Clone, Copy)]
pub struct Hint(usize);

fn expand(alg: &'static Algorithm, raw: &[u8]) -> LessSafeKey {
    // The raw key's length comes from the same algorithm (rustls sizes
    // it by key_len), so this cannot fail.
    LessSafeKey::new(UnboundKey::new(alg, raw).expect("AEAD key length matches its algorithm"))
}

impl Cache {
    fn find_or_insert(&mut self, id: u64, hint: &mut Hint, alg: &'static Algorithm, raw: &[u8]) -> usize {
        if let Some(s) = self.slots.get_mut(hint.0) {
            if s.id == id {
                s.used = true;
                return hint.0;
            }
        }
        let key = expand(alg, raw);
        let at = if self.slots.len() < CAPACITY {
            self.slots.push(Slot { id, used: true, key });
            self.slots.len() - 1
        } else {
            let at = self.victim();
            self.slots[at] = Slot { id, used: true, key };
            at
        };
        hint.0 = at;
        at
    }

    /// Clock sweep: the first slot not used since the hand last passed it
    /// (an empty slot, id 0, first of all).
    fn victim(&mut self) -> usize {
        loop {
            let at = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let s = &mut self.slots[at];
            if s.id == 0 || !s.used {
                return at;
            }
            s.used = false;
        }
    }
}

/// Runs `f` with the expanded key for (`id`, `alg`, `raw`), from this
/// thread's cache or expanded now. When the thread's cache is gone (a key
/// used from a thread-local destructor) the key is expanded for this call.
pub fn with_key<R>(
    id: u64,
    hint: &mut Hint,
    alg: &'static Algorithm,
    raw: &[u8],
    f: impl FnOnce(&LessSafeKey) -> R,
) -> R {
    let mut f = Some(f);
    let done = CACHE.try_with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            let at = c.find_or_insert(id, hint, alg, raw);
            Some((f.take().expect("called once"))(&c.slots[at].key))
        }
        // Not reachable (f never calls back into the cache), but a
        // borrowed cache must not panic a connection.
        Err(_) => None,
    });
    match done {
        Ok(Some(r)) => r,
        _ => (f.take().expect("called once"))(&expand(alg, raw)),
    }
}

/// Drops the expanded key of `id` from this thread's cache, if its slot
/// still holds it (the owner is going away: no key outlives it there).
pub fn forget(id: u64, hint: Hint) {
    let _ = CACHE.try_with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            if let Some(s) = c.slots.get_mut(hint.0) {
                if s.id == id {
                    s.id = 0;
                    s.used = false;
                }
            }
        }
    });
}

/// How many keys this thread's cache holds (for tests).
pub fn held() -> usize {
    CACHE.with(|c| c.borrow().slots.iter().filter(|s| s.id != 0).count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::aead::AES_128_GCM;

    #[test]
    fn evicts_at_capacity_and_reexpands_the_same_key() {
        let raw = [7u8; 16];
        let ids: Vec<u64> = (0..CAPACITY + 10).map(|_| new_id()).collect();
        let mut hints = vec![Hint::default(); ids.len()];
        for (i, id) in ids.iter().enumerate() {
            with_key(*id, &mut hints[i], &AES_128_GCM, &raw, |_| ());
        }
        assert!(held() <= CAPACITY);
        // The first id was evicted; asking again expands it again.
        let mut h = hints[0];
        let alg = with_key(ids[0], &mut h, &AES_128_GCM, &raw, |k| k.algorithm().key_len());
        assert_eq!(alg, 16);
        for (i, id) in ids.iter().enumerate() {
            forget(*id, hints[i]);
        }
        forget(ids[0], h);
    }

    #[test]
    fn forget_clears_only_its_own_slot() {
        let raw = [1u8; 16];
        let (a, b) = (new_id(), new_id());
        let (mut ha, mut hb) = (Hint::default(), Hint::default());
        with_key(a, &mut ha, &AES_128_GCM, &raw, |_| ());
        with_key(b, &mut hb, &AES_128_GCM, &raw, |_| ());
        let before = held();
        forget(a, hb); // wrong slot: nothing happens
        assert_eq!(held(), before);
        forget(a, ha);
        assert_eq!(held(), before - 1);
        forget(b, hb);
    }
}
