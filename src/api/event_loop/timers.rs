//! Timers of a loop: a heap of deadlines; cancelled timers are dropped
//! lazily when they reach the top.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// A timer callback; it runs on the loop's thread.
pub type TimerFn = Box<dyn FnMut() + Send>;

struct Timer {
    interval: Option<Duration>,
    callback: TimerFn,
}

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    timers: HashMap<u64, Timer>,
}

impl Timers {
    pub fn add(&mut self, id: u64, at: Instant, interval: Option<Duration>, callback: TimerFn) {
        self.heap.push(Reverse((at, id)));
        self.timers.insert(id, Timer { interval, callback });
    }

    /// True when the timer existed.
    pub fn cancel(&mut self, id: u64) -> bool {
        self.timers.remove(&id).is_some()
    }

    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if self.timers.contains_key(&id) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Runs every timer due at `now` (once each; a repeating timer is
    /// re-armed from its due time, not from now, so it does not drift).
    pub fn run_due(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, id))) = self.heap.peek().copied() {
            if at > now {
                break;
            }
            self.heap.pop();
            due.push((at, id));
        }
        for (at, id) in due {
            let Some(t) = self.timers.get_mut(&id) else { continue };
            (t.callback)();
            // The callback may have cancelled its own timer.
            let Some(t) = self.timers.get(&id) else { continue };
            match t.interval {
                Some(iv) => {
                    let mut next = at + iv;
                    if next <= now {
                        next = now + iv;
                    }
                    self.heap.push(Reverse((next, id)));
                }
                None => {
                    self.timers.remove(&id);
                }
            }
        }
    }
}
