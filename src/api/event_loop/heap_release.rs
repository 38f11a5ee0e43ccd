//! When the loop gives the allocator's free pages back to the kernel
//! (`transport::heap`): at the first sweep that finds the loop quiet after
//! a burst, so a busy loop never pays for it, and with a gap after each
//! release of at least `MIN_GAP` and 100 times what that release took, so
//! a loop with traffic in short bursts spends at most 1 % of its time
//! there however large its heap.

use std::time::{Duration, Instant};

use crate::transport::heap::release_free_pages;

/// The least time between two releases.
const MIN_GAP: Duration = Duration::from_millis(100);
/// The gap after a release, in multiples of the time it took.
const GAP_PER_COST: u32 = 100;

#[derive(Debug, Default)]
pub(super) struct HeapRelease {
    /// Buffers were taken since the last release: there may be holes.
    dirty: bool,
    /// No release before this.
    not_before: Option<Instant>,
}

impl HeapRelease {
    /// For each sweep: `busy` = buffers were taken since the previous one,
    /// or are still being freed.
    /// Returns when the next sweep should come for this (None: nothing
    /// pending).
    pub(super) fn on_sweep(&mut self, now: Instant, busy: bool) -> Option<Instant> {
        self.on_sweep_with(now, busy, || {
            let t = Instant::now();
            release_free_pages();
            t.elapsed()
        })
    }

    /// `release` releases and says how long it took.
    fn on_sweep_with(&mut self, now: Instant, busy: bool, release: impl FnOnce() -> Duration) -> Option<Instant> {
        if busy {
            self.dirty = true;
            // The sweep after the burst ends looks again.
            return Some(now);
        }
        if !self.dirty {
            return None;
        }
        if let Some(next) = self.not_before.filter(|&n| now < n) {
            return Some(next);
        }
        let took = release();
        self.dirty = false;
        self.not_before = Some(now + MIN_GAP.max(took * GAP_PER_COST));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_once_quiet_and_waits_a_gap_after_each_release() {
        let mut h = HeapRelease::default();
        let t0 = Instant::now();
        let mut n = 0;
        let mut release = |took_ms: u64| {
            n += 1;
            Duration::from_millis(took_ms)
        };
        assert_eq!(h.on_sweep_with(t0, false, || release(0)), None, "nothing happened: nothing to release");
        assert!(h.on_sweep_with(t0, true, || release(0)).is_some(), "busy: look again");
        assert_eq!(h.on_sweep_with(t0, false, || release(0)), None, "the first quiet sweep releases");
        assert_eq!(h.on_sweep_with(t0, false, || release(0)), None, "nothing new: no second release");
        h.on_sweep_with(t0 + Duration::from_millis(50), true, || release(0));
        let t1 = t0 + Duration::from_millis(60);
        assert_eq!(h.on_sweep_with(t1, false, || release(0)), Some(t0 + MIN_GAP), "too soon: wait for the gap");
        // This release takes 5 ms: the next waits 100 x 5 ms.
        let t2 = t0 + MIN_GAP;
        assert_eq!(h.on_sweep_with(t2, false, || release(5)), None);
        h.on_sweep_with(t2 + Duration::from_millis(150), true, || release(0));
        assert_eq!(
            h.on_sweep_with(t2 + Duration::from_millis(200), false, || release(0)),
            Some(t2 + Duration::from_millis(500))
        );
        assert_eq!(h.on_sweep_with(t2 + Duration::from_millis(500), false, || release(0)), None);
        assert_eq!(n, 3);
    }
}
