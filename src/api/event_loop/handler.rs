//! What an application gives the loop: callbacks, run on the loop's thread.

use super::handle::ConnHandle;
use crate::api::conn::MessageType;
use crate::api::http::{Request, Response};
use crate::error::Error;

/// Callbacks of one listener's or one dial's connections. They run on the
/// thread that drives the loop, one at a time; they may send, close and
/// start timers, but must not drive the loop themselves.
pub trait Handler: Send + Sync {
    /// A request passed the Upgrader's checks (version, key, origin):
    /// accept it with a user word for the connection (see
    /// [`ConnHandle::user`]) or refuse it with an HTTP status (400-599).
    fn on_handshake(&self, _req: &Request) -> Result<usize, u16> {
        Ok(0)
    }
    /// The handshake is done; the connection may send.
    fn on_open(&self, _conn: &ConnHandle) {}
    /// A whole message. `data` is valid only during the call.
    fn on_message(&self, _conn: &ConnHandle, _kind: MessageType, _data: &[u8]) {}
    /// A ping arrived (the pong is already queued).
    fn on_ping(&self, _conn: &ConnHandle, _data: &[u8]) {}
    fn on_pong(&self, _conn: &ConnHandle, _data: &[u8]) {}
    /// The send queue emptied after the socket had pushed back or a send
    /// was refused with `QueueFull`.
    fn on_drain(&self, _conn: &ConnHandle) {}
    /// The connection failed (protocol violation, I/O error, timeout); the
    /// close callback follows.
    fn on_error(&self, _conn: &ConnHandle, _err: &Error) {}
    /// The connection ended: the peer's close code and reason (1005 when
    /// its close had no code), or 1006 when it ended without a close frame
    /// from the peer. Called exactly once for every opened connection; the
    /// last callback for it.
    fn on_close(&self, _conn: &ConnHandle, _code: u16, _reason: &[u8]) {}
    /// A dial failed before the connection opened. `response` is the
    /// server's answer when it refused the handshake.
    fn on_dial_error(&self, _user: usize, _err: &Error, _response: Option<&Response>) {}
    /// Reconnecting dials only ([`super::Reconnector`]): re-dial number
    /// `attempt` (1 after a connection was lost or the first dial failed)
    /// starts after `delay`; `last` is the error that ended the previous
    /// attempt, when there was one (None after a closed connection).
    fn on_reconnect(&self, _user: usize, _attempt: u32, _delay: std::time::Duration, _last: Option<&Error>) {}
}
