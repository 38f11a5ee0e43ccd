//! The close state machine (RFC 6455 sections 5.5.1, 7.1), written once
//! for every driver.
//!
//! A connection is `Connecting` until its handshake completes, `Open`
//! until one side sends a close frame, `Closing` once ours is queued, and
//! `Closed` once TCP is gone. The peer's close frame is recorded apart
//! (the receive half sees it; it may come before or after ours). The
//! phase lives in a [`CloseCell`] so the receive half and the send half
//! can sit on different threads.

use std::sync::atomic::{AtomicU8, Ordering};

use super::super::{close, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Phase {
    Connecting = 0,
    Open = 1,
    /// Our close frame is queued or sent; waiting for the peer's.
    Closing = 2,
    Closed = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Connecting,
            1 => Phase::Open,
            2 => Phase::Closing,
            _ => Phase::Closed,
        }
    }

    /// Whether a data or control frame may be queued now.
    pub fn check_send(self) -> Result<(), Refusal> {
        match self {
            Phase::Connecting => Err(Refusal::NotOpen),
            Phase::Open => Ok(()),
            Phase::Closing => Err(Refusal::CloseSent),
            Phase::Closed => Err(Refusal::Closed),
        }
    }
}

/// Why a send was refused by the close state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The handshake has not completed.
    NotOpen,
    /// Our close frame went out: nothing may follow it (section 5.5.1).
    CloseSent,
    /// The connection is gone.
    Closed,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotOpen => "the connection is not open yet",
            Refusal::CloseSent => "websocket: close sent",
            Refusal::Closed => "the connection is closed",
        }
    }
}

/// The phase, shared by the two halves of a connection.
#[derive(Debug)]
pub struct CloseCell(AtomicU8);

impl Default for CloseCell {
    fn default() -> Self {
        CloseCell(AtomicU8::new(Phase::Connecting as u8))
    }
}

impl CloseCell {
    /// For a connection whose handshake is already done (the blocking
    /// `Conn` is built after it).
    pub fn opened() -> CloseCell {
        CloseCell(AtomicU8::new(Phase::Open as u8))
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::SeqCst))
    }

    /// The handshake completed.
    pub fn open(&self) {
        let _ = self.0.compare_exchange(Phase::Connecting as u8, Phase::Open as u8, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Our close frame is about to be queued: `Open -> Closing`, once.
    /// Call under the lock that orders the send half's output, so no
    /// frame can be queued after the close.
    pub fn begin_close(&self) -> Result<(), Refusal> {
        match self.0.compare_exchange(Phase::Open as u8, Phase::Closing as u8, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => Ok(()),
            Err(v) => Err(match Phase::from_u8(v) {
                Phase::Connecting => Refusal::NotOpen,
                Phase::Open | Phase::Closing => Refusal::CloseSent,
                Phase::Closed => Refusal::Closed,
            }),
        }
    }

    /// TCP is gone (or about to be): every later send is refused.
    pub fn end(&self) {
        self.0.store(Phase::Closed as u8, Ordering::SeqCst);
    }
}

/// The close code to echo for a received close: the same code, or an
/// empty close frame when the peer sent none (1005).
pub fn echo_code(received: u16) -> u16 {
    if close::is_valid_wire_code(received) {
        received
    } else {
        close::NO_STATUS
    }
}

/// What to do with TCP once our close frame is out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpAfterClose {
    /// Close TCP now.
    ShutdownNow,
    /// Keep reading until the peer's close frame (or, for a client after
    /// the whole handshake, the server's TCP close) arrives, bounded by
    /// the close timeout.
    AwaitPeer,
}

/// Who closes TCP after the close handshake, decided the stricter way
/// (RFC 6455 7.1.1: "the underlying TCP connection, in most normal
/// cases, SHOULD be closed first by the server"): a server closes TCP as
/// soon as both close frames passed; a client waits for the server to
/// close it (for at most the close timeout) so the server never lingers
/// in TIME_WAIT.
pub fn after_close_sent(role: Role, peer_closed: bool) -> TcpAfterClose {
    match (role, peer_closed) {
        (Role::Server, true) => TcpAfterClose::ShutdownNow,
        _ => TcpAfterClose::AwaitPeer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_refusals() {
        let c = CloseCell::default();
        assert_eq!(c.phase().check_send(), Err(Refusal::NotOpen));
        assert_eq!(c.begin_close(), Err(Refusal::NotOpen));
        c.open();
        assert_eq!(c.phase().check_send(), Ok(()));
        assert_eq!(c.begin_close(), Ok(()));
        assert_eq!(c.begin_close(), Err(Refusal::CloseSent));
        assert_eq!(c.phase().check_send(), Err(Refusal::CloseSent));
        c.end();
        c.open(); // no way back
        assert_eq!(c.phase(), Phase::Closed);
        assert_eq!(c.begin_close(), Err(Refusal::Closed));
    }

    #[test]
    fn echo_and_tcp_rules() {
        assert_eq!(echo_code(1000), 1000);
        assert_eq!(echo_code(close::NO_STATUS), close::NO_STATUS);
        assert_eq!(after_close_sent(Role::Server, true), TcpAfterClose::ShutdownNow);
        assert_eq!(after_close_sent(Role::Server, false), TcpAfterClose::AwaitPeer);
        assert_eq!(after_close_sent(Role::Client, true), TcpAfterClose::AwaitPeer);
    }
}
