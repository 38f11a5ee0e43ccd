//! Running one test of this binary again in a child process (for limits
//! that must not touch the other tests: RLIMIT_NOFILE, hundreds of MiB of
//! memory), with a bound on how long it may run.

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

/// Runs the test `name` of the current test binary in a child process with
/// `child_env` set (the test's body runs there when it sees the variable),
/// and fails when the child fails or runs longer than `limit`.
pub fn run_in_child(name: &str, child_env: &str, limit: Duration) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(child_env, "1")
        .spawn()
        .expect("spawn the child test");
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: the child ran over {} s", limit.as_secs());
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{name}: the child failed ({status}); its output is above");
}
