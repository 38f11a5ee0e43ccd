//! What a failed accept(2) means for a server that must keep running.
//!
//! Both the blocking `Listener` and the event loop accept in a loop until
//! the queue is empty; the errno decides whether to go on with the next
//! queued client, wait for descriptors or memory to free, or give up.

use std::io;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptFailure {
    /// The queue is empty (`EAGAIN`): wait for readiness.
    Empty,
    /// This one client is gone (it reset while queued, a network error was
    /// passed up, a signal interrupted the call): accept the next at once.
    Skip,
    /// Out of descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
    /// `ENOMEM`): the queued clients stay queued. Retrying at once would
    /// spin, and an edge-triggered listener raises no new edge for them,
    /// so the caller retries after a pause or when it closed a socket.
    OutOfResources,
    /// The listening socket itself is broken (`EBADF`, `EINVAL`, ...).
    Fatal,
}

pub fn classify(e: &io::Error) -> AcceptFailure {
    match e.kind() {
        io::ErrorKind::WouldBlock => return AcceptFailure::Empty,
        io::ErrorKind::Interrupted => return AcceptFailure::Skip,
        _ => {}
    }
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptFailure::OutOfResources,
        // accept(2) on Linux: "already-pending network errors on the new
        // socket" are returned as accept errors; the next client is fine.
        Some(
            libc::ECONNABORTED
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH,
        ) => AcceptFailure::Skip,
        _ => AcceptFailure::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_map_to_what_a_server_does_next() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(classify(&os(libc::EAGAIN)), AcceptFailure::Empty);
        assert_eq!(classify(&os(libc::EINTR)), AcceptFailure::Skip);
        assert_eq!(classify(&os(libc::ECONNABORTED)), AcceptFailure::Skip);
        for e in [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM] {
            assert_eq!(classify(&os(e)), AcceptFailure::OutOfResources, "errno {e}");
        }
        assert_eq!(classify(&os(libc::EBADF)), AcceptFailure::Fatal);
        assert_eq!(classify(&os(libc::EINVAL)), AcceptFailure::Fatal);
    }
}
