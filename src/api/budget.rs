//! A memory budget shared by many connections (issue 10, defect 4): what
//! they may hold, together, for input not yet handed to the application
//! (partial messages, inflated output, unparsed input). The design is in
//! ARCHITECTURE.md ("Design: the memory budget"); this is its accounting
//! and its rule. The connection engine asks through a [`Charge`] before it
//! grows a buffer and stops reading the socket when refused (TCP then
//! pushes back on the peer); hooking it into the engine is the engine
//! issue's part.
//!
//! The rule: below the limit every request is granted. At the limit, a
//! connection that holds less than its fair share (`limit / holders`) is
//! still granted, so small messages keep flowing while the largest holders
//! wait; the budget may then overshoot by at most one fair share per
//! holder below it, never by a large message. A release wakes every
//! blocked reader and each re-checks the rule (no ordering among them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

#[derive(Debug)]
struct Shared {
    /// 0 = no budget (every request granted; still counted).
    limit: usize,
    used: AtomicUsize,
    /// Charges holding more than 0 bytes.
    holders: AtomicUsize,
    /// Woken whenever bytes are released.
    freed: Condvar,
    lock: Mutex<()>,
}

/// A budget; clones share it.
#[derive(Clone, Debug)]
pub struct MemoryBudget(Arc<Shared>);

impl MemoryBudget {
    /// A budget of `limit` bytes (0 = unlimited).
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget(Arc::new(Shared {
            limit,
            used: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
            freed: Condvar::new(),
            lock: Mutex::new(()),
        }))
    }

    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes held by all charges now.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Acquire)
    }

    /// A new charge (holding nothing) against this budget.
    pub fn charge(&self) -> Charge {
        Charge { budget: self.clone(), held: 0 }
    }

    /// The share of the limit each holder may count on (`joining`: the
    /// asking charge holds nothing yet and is not counted).
    fn fair_share(&self, joining: bool) -> usize {
        self.0.limit / (self.0.holders.load(Ordering::Acquire) + joining as usize).max(1)
    }
}

/// One connection's bytes against a budget; dropping it releases them.
#[derive(Debug)]
pub struct Charge {
    budget: MemoryBudget,
    held: usize,
}

impl Charge {
    pub fn held(&self) -> usize {
        self.held
    }

    /// Asks for `n` more bytes; false = not now (stop reading until
    /// [`Charge::wait_for_room`] or a release elsewhere).
    pub fn try_grow(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let b = &self.budget.0;
        let granted = if b.limit == 0 {
            b.used.fetch_add(n, Ordering::AcqRel);
            true
        } else {
            let fair = self.budget.fair_share(self.held == 0);
            let under_share = self.held.saturating_add(n) <= fair;
            b.used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    let after = u.checked_add(n)?;
                    (after <= b.limit || under_share).then_some(after)
                })
                .is_ok()
        };
        if granted {
            if self.held == 0 {
                b.holders.fetch_add(1, Ordering::AcqRel);
            }
            self.held += n;
        }
        granted
    }

    /// Gives back `n` bytes (at most what is held) and wakes waiters.
    pub fn release(&mut self, n: usize) {
        let n = n.min(self.held);
        if n == 0 {
            return;
        }
        let b = &self.budget.0;
        self.held -= n;
        b.used.fetch_sub(n, Ordering::AcqRel);
        if self.held == 0 {
            b.holders.fetch_sub(1, Ordering::AcqRel);
        }
        // Taking the lock orders this release before a waiter's re-check.
        drop(b.lock.lock());
        b.freed.notify_all();
    }

    /// Waits (a blocking reader) until `n` more bytes are granted or
    /// `deadline` passes (`None` = forever); true when granted.
    pub fn wait_for_room(&mut self, n: usize, deadline: Option<Instant>) -> bool {
        let shared = self.budget.0.clone();
        let mut guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.try_grow(n) {
                return true;
            }
            guard = match deadline {
                None => shared.freed.wait(guard).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    shared.freed.wait_timeout(guard, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn below_the_limit_everything_is_granted_and_drop_releases() {
        let b = MemoryBudget::new(1000);
        let mut a = b.charge();
        assert!(a.try_grow(600));
        let mut c = b.charge();
        assert!(c.try_grow(400));
        assert_eq!(b.used(), 1000);
        drop(a);
        assert_eq!(b.used(), 400);
        c.release(1000); // more than held: releases what it holds
        assert_eq!((b.used(), c.held()), (0, 0));
    }

    #[test]
    fn at_the_limit_the_largest_holder_waits_and_small_ones_still_flow() {
        let b = MemoryBudget::new(1000);
        let mut big = b.charge();
        assert!(big.try_grow(900));
        let mut small = b.charge();
        assert!(small.try_grow(100));
        // Full. Two holders: a fair share is 500.
        assert!(!big.try_grow(10), "the largest holder must wait");
        assert!(small.try_grow(300), "a holder below its fair share keeps going");
        assert!(!small.try_grow(200), "but not past its share once the budget is full");
        assert_eq!(b.used(), 1300);
        // A third connection starts: it gets its share too.
        let mut fresh = b.charge();
        assert!(fresh.try_grow(300));
        big.release(900);
        assert!(small.try_grow(100), "released memory is usable again");
    }

    #[test]
    fn no_limit_counts_but_never_refuses() {
        let b = MemoryBudget::new(0);
        let mut c = b.charge();
        assert!(c.try_grow(usize::MAX / 2));
        assert_eq!(b.used(), usize::MAX / 2);
    }

    #[test]
    fn a_blocked_reader_wakes_when_another_releases_and_times_out_otherwise() {
        let b = MemoryBudget::new(100);
        let mut hog = b.charge();
        assert!(hog.try_grow(100));
        let mut second = b.charge();
        assert!(second.try_grow(50), "under its fair share");
        let t0 = Instant::now();
        assert!(!second.wait_for_room(60, Some(t0 + Duration::from_millis(50))));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        let b2 = b.clone();
        let waiter = std::thread::spawn(move || {
            let mut c = b2.charge();
            assert!(c.try_grow(1), "a newcomer's first bytes are within its share");
            let ok = c.wait_for_room(80, Some(Instant::now() + Duration::from_secs(10)));
            (ok, c.held())
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(hog);
        drop(second);
        let (ok, held) = waiter.join().unwrap();
        assert!(ok, "the waiter was not woken by the release");
        assert_eq!(held, 81);
    }
}
