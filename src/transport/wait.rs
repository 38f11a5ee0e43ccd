//! Waiting for a non-blocking socket with a deadline.
//!
//! poll(2) on the one descriptor: no per-connection epoll instance, and a
//! `shutdown(2)` from another thread wakes the waiter (the socket becomes
//! readable and writable with HUP), which is how a local close interrupts
//! a blocked reader or writer.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

/// Waits until `fd` is ready for `interest` or the deadline passes.
/// Returns `Ok(true)` when ready (or in error/hang-up state: the next
/// read or write reports it), `Ok(false)` on timeout. `None` waits forever;
/// a deadline in the past polls once without blocking.
pub fn wait_ready(fd: BorrowedFd<'_>, interest: Interest, deadline: Option<Instant>) -> io::Result<bool> {
    let flags = match interest {
        Interest::Read => PollFlags::IN,
        Interest::Write => PollFlags::OUT,
    };
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ }
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(false);
                }
            }
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Converts a C-style relative timeout in milliseconds into a deadline:
/// negative = none (wait forever), 0 = now (non-blocking), n = n ms from now.
pub fn deadline_from_ms(timeout_ms: i64) -> Option<Instant> {
    if timeout_ms < 0 {
        None
    } else {
        Some(Instant::now() + std::time::Duration::from_millis(timeout_ms as u64))
    }
}
