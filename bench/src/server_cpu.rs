//! CPU time of the in-process servers, for a figure that wall clock cannot
//! give on a shared 2-core machine: CPU per echoed message.
//!
//! Every server in `servers/` names its threads `srv-…` (tokio runtimes
//! through `server_runtime`'s thread name), and the bench's clients never
//! do, so the server's CPU over a run is the growth of the `srv-` threads'
//! run time between two readings. The reading is the scheduler's
//! nanosecond account (`/proc/self/task/TID/schedstat`, first field); where
//! the kernel has none, `stat`'s utime + stime in clock ticks (10 ms here:
//! coarse, so then a run of a second or more is needed for a usable figure).
//! A server thread that starts or ends during a run counts from or until
//! then only; the bench makes its connections (and so the blocking server's
//! threads) before a run and closes them after it.

use std::fs;
use std::time::Duration;

/// Summed run time of the live `srv-` threads; `None` if `/proc` cannot
/// tell or no such thread runs (a server in another process, as the Python
/// `websockets` one: its CPU is not ours to see, and 0 would read as free).
pub fn server_threads() -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut seen = false;
    for entry in fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let Ok(comm) = fs::read_to_string(dir.join("comm")) else { continue };
        if !comm.starts_with("srv-") {
            continue;
        }
        // A thread that ended between read_dir and here has no files left:
        // it is skipped, as it would be at the next reading.
        if let Some(t) = schedstat(&dir).or_else(|| stat_ticks(&dir)) {
            total += t;
            seen = true;
        }
    }
    seen.then_some(total)
}

fn schedstat(dir: &std::path::Path) -> Option<Duration> {
    let s = fs::read_to_string(dir.join("schedstat")).ok()?;
    Some(Duration::from_nanos(s.split_whitespace().next()?.parse().ok()?))
}

/// utime + stime from `stat`, whose second field (the command name, in
/// parentheses) may hold spaces: the fields are counted after its `)`.
fn stat_ticks(dir: &std::path::Path) -> Option<Duration> {
    let s = fs::read_to_string(dir.join("stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux ABI the bench runs on.
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_busy_server_thread() {
        // No `srv-` thread yet: nothing to report, not zero.
        assert_eq!(server_threads(), None);
        let before = Duration::ZERO;
        let spin = std::thread::Builder::new()
            .name("srv-cpu-test".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed() < Duration::from_millis(200) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
                // Read while the thread is still alive, as the bench does.
                server_threads().unwrap()
            })
            .unwrap();
        let during = spin.join().unwrap();
        assert!(during >= before + Duration::from_millis(100), "{before:?} -> {during:?}");
    }
}
