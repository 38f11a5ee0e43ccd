//! The one timeout convention of the C ABI: every timeout, deadline and
//! wait is an `int64_t` count of milliseconds; a negative value means no
//! limit, 0 means do not wait. (Delays and repeat intervals of timers and
//! keepalive pings are periods, not timeouts: see their functions.)

use std::time::{Duration, Instant};

/// The longest duration the event loop stores (it refuses more: its
/// deadlines are `now + d`). "No limit" for the loop's plain-`Duration`
/// settings is this: ten years outlasts any process.
const LOOP_NO_LIMIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `None` = no limit.
pub(crate) fn timeout(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

/// The point in time `ms` from now; `None` = no limit.
pub(crate) fn deadline(ms: i64) -> Option<Instant> {
    timeout(ms).map(|t| Instant::now() + t)
}

/// For event-loop settings that are a plain `Duration`.
pub(crate) fn loop_timeout(ms: i64) -> Duration {
    timeout(ms).unwrap_or(LOOP_NO_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_is_no_limit_and_zero_is_no_wait() {
        assert_eq!(timeout(-1), None);
        assert_eq!(timeout(i64::MIN), None);
        assert_eq!(timeout(0), Some(Duration::ZERO));
        assert_eq!(timeout(1500), Some(Duration::from_millis(1500)));
        assert_eq!(loop_timeout(-5), LOOP_NO_LIMIT);
        assert!(deadline(i64::MAX).is_some(), "the largest timeout does not overflow the clock");
    }
}
