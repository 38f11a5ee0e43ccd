//! A blocking WebSocket connection (gorilla's Conn).
//!
//! Threading: any number of threads may write (messages, control frames,
//! streaming writers, close); writes are serialized inside, so frames never
//! interleave. One thread reads at a time (a second concurrent reader gets
//! `Busy`). `close` from any thread wakes a blocked reader and writer.
//! Handlers run on the reading thread.

mod handlers;
mod msgbuf;
mod read;
mod write;

pub use handlers::{CloseHandler, ControlHandler, Handlers};
pub use read::Message;

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::api::budget::MemoryBudget;
use crate::api::config::ConnConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::Agreement;
use crate::proto::engine::close_state::{echo_code, CloseCell, Phase};
use crate::proto::Role;
use crate::transport::Stream;

use read::ReadSide;
use write::WriteSide;

pub use crate::proto::kind::MessageType;

/// How long the default handlers and protocol-error closes may block on a
/// full socket (gorilla's writeWait).
const CONTROL_REPLY_WAIT: Duration = Duration::from_secs(1);

/// How the connection ended, for `close_code` and for threads waiting in
/// `close_graceful` (the close phase itself is the engine's `CloseCell`).
#[derive(Debug, Default)]
struct CloseState {
    /// The code and reason that ended the connection, once it ended:
    /// the peer's close frame, or 1006 when TCP dropped without one.
    received: Option<(u16, Vec<u8>)>,
    /// The connection failed without a close from the peer.
    ended: bool,
}

pub struct Conn {
    stream: Stream,
    role: Role,
    reader: Mutex<ReadSide>,
    writer: Mutex<WriteSide>,
    /// Set while a streaming writer is open: data messages from other
    /// threads wait for it (control frames do not).
    /// Threads waiting for `writer` (busy, or a streaming writer of another
    /// thread is open) sleep here so they can give up at their deadline.
    /// Releasers notify only when `write_waiters` is non-zero, so an
    /// uncontended write makes no futex call.
    write_wait: Mutex<()>,
    write_wait_cv: Condvar,
    write_waiters: std::sync::atomic::AtomicUsize,
    handlers: Mutex<Handlers>,
    /// The engine's close phase: `Closing` once our close frame went out,
    /// `Closed` once the socket was shut (`close`).
    close: CloseCell,
    close_state: Mutex<CloseState>,
    close_cv: Condvar,
    read_deadline: Mutex<Option<Instant>>,
    write_deadline: Mutex<Option<Instant>>,
    /// Per-wait bounds on top of the deadlines (see `ConnConfig`).
    read_timeout: Mutex<Option<Duration>>,
    write_timeout: Mutex<Option<Duration>>,
    subprotocol: String,
    /// permessage-deflate as agreed in the handshake.
    compression: Option<Agreement>,
    local_addr: Option<SocketAddr>,
    peer_addr: Option<SocketAddr>,
    last_error: Mutex<String>,
    /// The memory budget the reader waits on (woken by `close`).
    budget: MemoryBudget,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("role", &self.role).field("peer", &self.peer_addr).finish()
    }
}

/// Locks a mutex, turning poisoning (a panic while it was held) into an error.
fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| Error::poisoned())
}

impl Conn {
    /// Builds a connection over a stream whose opening handshake is done.
    /// `leftover` holds bytes that arrived after the handshake head: they
    /// are the first bytes of the WebSocket stream.
    pub(crate) fn new(
        stream: Stream,
        role: Role,
        subprotocol: String,
        deflate: Option<Agreement>,
        config: &ConnConfig,
        leftover: &[u8],
    ) -> Conn {
        // Latency matters more than packet count for message protocols.
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr();
        let peer_addr = stream.peer_addr();
        let budget = config.memory_budget();
        Conn {
            role,
            reader: Mutex::new(ReadSide::new(role, config, &budget, leftover, deflate.as_ref())),
            budget,
            writer: Mutex::new(WriteSide::new(role, config, deflate.as_ref())),
            compression: deflate,
            write_wait: Mutex::new(()),
            write_wait_cv: Condvar::new(),
            write_waiters: std::sync::atomic::AtomicUsize::new(0),
            handlers: Mutex::new(Handlers::default()),
            close: CloseCell::opened(),
            close_state: Mutex::new(CloseState::default()),
            close_cv: Condvar::new(),
            read_deadline: Mutex::new(None),
            write_deadline: Mutex::new(None),
            read_timeout: Mutex::new(config.read_timeout),
            write_timeout: Mutex::new(config.write_timeout),
            subprotocol,
            local_addr,
            peer_addr,
            last_error: Mutex::new(String::new()),
            stream,
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether permessage-deflate was negotiated for this connection.
    pub fn compression_negotiated(&self) -> bool {
        self.compression.is_some()
    }

    /// The negotiated subprotocol ("" when none).
    pub fn subprotocol(&self) -> &str {
        &self.subprotocol
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The TLS peer's certificate chain, leaf first, DER-encoded (a
    /// server's, or a client's under mutual TLS); `None` without TLS or
    /// when the peer sent none.
    pub fn tls_peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.stream.tls_peer_certificates()
    }

    /// The negotiated TLS version ("TLSv1_3", "TLSv1_2").
    pub fn tls_version(&self) -> Option<String> {
        self.stream.tls_version()
    }

    /// The socket's descriptor (gorilla's NetConn). Reading or writing it
    /// directly corrupts the connection.
    pub fn raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Sets the deadline for future reads (`None` = no deadline). A read
    /// that times out returns `Timeout` and the connection stays usable.
    pub fn set_read_deadline(&self, deadline: Option<Instant>) {
        if let Ok(mut d) = self.read_deadline.lock() {
            *d = deadline;
        }
    }

    /// Sets the deadline for future writes (`None` = no deadline).
    pub fn set_write_deadline(&self, deadline: Option<Instant>) {
        if let Ok(mut d) = self.write_deadline.lock() {
            *d = deadline;
        }
    }

    /// Sets the read (idle) timeout: no single wait for the socket in a
    /// read lasts longer (`None` = only the read deadline). A server's
    /// connections start with 60 s, a client's with none.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        if let Ok(mut t) = self.read_timeout.lock() {
            *t = timeout;
        }
    }

    /// Sets the write timeout: no single wait for the socket to take more
    /// bytes lasts longer (`None` = only the write deadline). A server's
    /// connections start with 10 s, a client's with none.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        if let Ok(mut t) = self.write_timeout.lock() {
            *t = timeout;
        }
    }

    pub fn read_timeout(&self) -> Option<Duration> {
        self.read_timeout.lock().map(|t| *t).unwrap_or(None)
    }

    pub fn write_timeout(&self) -> Option<Duration> {
        self.write_timeout.lock().map(|t| *t).unwrap_or(None)
    }

    /// The end of one wait for the socket: the deadline, or sooner by the
    /// timeout; true when the timeout is what ends it.
    fn wait_until(deadline: Option<Instant>, timeout: Option<Duration>) -> (Option<Instant>, bool) {
        let Some(t) = timeout else { return (deadline, false) };
        let Some(by_timeout) = Instant::now().checked_add(t) else { return (deadline, false) };
        match deadline {
            Some(d) if d <= by_timeout => (Some(d), false),
            _ => (Some(by_timeout), true),
        }
    }

    fn read_deadline(&self) -> Option<Instant> {
        self.read_deadline.lock().map(|d| *d).unwrap_or(None)
    }

    fn write_deadline(&self) -> Option<Instant> {
        self.write_deadline.lock().map(|d| *d).unwrap_or(None)
    }

    /// Sets the largest message the peer may send, in bytes (0 = no limit).
    /// Waits for a read in progress on another thread to finish.
    pub fn set_read_limit(&self, limit: u64) -> Result<()> {
        lock(&self.reader)?.recv.set_read_limit(limit);
        Ok(())
    }

    pub fn read_limit(&self) -> Result<u64> {
        Ok(lock(&self.reader)?.recv.read_limit())
    }

    /// Replaces the ping handler; `None` restores the default (reply pong).
    pub fn set_ping_handler(&self, h: Option<ControlHandler>) -> Result<()> {
        lock(&self.handlers)?.ping = h;
        Ok(())
    }

    /// Replaces the pong handler; `None` restores the default (ignore).
    pub fn set_pong_handler(&self, h: Option<ControlHandler>) -> Result<()> {
        lock(&self.handlers)?.pong = h;
        Ok(())
    }

    /// Replaces the close handler; `None` restores the default (echo the code).
    pub fn set_close_handler(&self, h: Option<CloseHandler>) -> Result<()> {
        lock(&self.handlers)?.close = h;
        Ok(())
    }

    pub fn handlers(&self) -> Result<Handlers> {
        Ok(lock(&self.handlers)?.clone())
    }

    /// The default ping handler: answers with a pong carrying `payload`.
    /// A close already sent or a peer that does not read within a second
    /// is not an error (gorilla's behaviour).
    pub fn default_ping_handler(&self, payload: &[u8]) -> Result<()> {
        let deadline = Some(Instant::now() + CONTROL_REPLY_WAIT);
        match self.write_control(MessageType::Pong, payload, deadline) {
            Err(e) if matches!(e.kind(), ErrorKind::CloseSent | ErrorKind::Timeout | ErrorKind::WriteIncomplete) => {
                Ok(())
            }
            r => r,
        }
    }

    /// The default close handler: sends a close frame with the same code
    /// (an empty one for 1005), unless a close was already sent.
    pub fn default_close_handler(&self, code: u16, _reason: &[u8]) -> Result<()> {
        let deadline = Some(Instant::now() + CONTROL_REPLY_WAIT);
        // Codes that may not go on the wire (1005) become an empty close.
        let code = echo_code(code);
        match self.write_close(code, b"", deadline) {
            Err(e) if e.kind() != ErrorKind::InvalidArgument => Ok(()),
            r => r,
        }
    }

    /// The close code of the frame that ended the connection (1005 when it
    /// had none, 1006 when TCP dropped without one), or `None` while open.
    pub fn close_code(&self) -> Option<u16> {
        self.close_state.lock().ok()?.received.as_ref().map(|r| r.0)
    }

    /// The close reason that came with [`Conn::close_code`].
    pub fn close_reason(&self) -> Vec<u8> {
        self.close_state.lock().ok().and_then(|s| s.received.as_ref().map(|r| r.1.clone())).unwrap_or_default()
    }

    /// gorilla's IsCloseError: `err` is a received close with one of `codes`.
    pub fn is_close_error(&self, err: &Error, codes: &[u16]) -> bool {
        err.kind() == ErrorKind::Closed && self.close_code().is_some_and(|c| codes.contains(&c))
    }

    /// gorilla's IsUnexpectedCloseError: `err` is a received close whose
    /// code is not in `expected`.
    pub fn is_unexpected_close_error(&self, err: &Error, expected: &[u16]) -> bool {
        err.kind() == ErrorKind::Closed && self.close_code().is_some_and(|c| !expected.contains(&c))
    }

    /// Closes the socket at once without a close handshake (gorilla's
    /// Close). Any thread; wakes blocked readers and writers, which return
    /// `LocallyClosed`. The connection's memory lives until it is dropped.
    pub fn close(&self) {
        self.close.end();
        self.stream.shutdown();
        self.wake_writers();
        self.close_cv.notify_all();
        // A reader waiting for memory sees the close.
        self.budget.wake();
    }

    pub fn is_shut(&self) -> bool {
        self.close.phase() == Phase::Closed
    }

    /// The close handshake: sends a close frame with `code` and `reason`,
    /// waits until the peer's close arrives or `timeout` passes (reading
    /// and discarding data messages if no other thread is reading), then
    /// closes the socket. `Timeout` when the peer did not answer in time.
    pub fn close_graceful(&self, code: u16, reason: &[u8], timeout: Duration) -> Result<()> {
        self.close_graceful_until(code, reason, Some(Instant::now() + timeout))
    }

    /// `close_graceful` with a deadline; `None` waits for the peer's close
    /// as long as it takes.
    pub fn close_graceful_until(&self, code: u16, reason: &[u8], deadline: Option<Instant>) -> Result<()> {
        match self.write_close(code, reason, deadline) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::CloseSent => {}
            // A refused code or reason changes nothing: the connection stays usable.
            Err(e) if e.kind() == ErrorKind::InvalidArgument => return self.fail(e),
            Err(e) => {
                self.close();
                return self.fail(e);
            }
        }
        let result = match self.reader.try_lock() {
            Ok(mut rs) => self.drain_until_close(&mut rs, deadline),
            Err(std::sync::TryLockError::WouldBlock) => self.wait_for_close(deadline),
            Err(std::sync::TryLockError::Poisoned(_)) => Err(Error::poisoned()),
        };
        self.close();
        result
    }

    /// Waits (without reading) until another thread's read sees the close.
    fn wait_for_close(&self, deadline: Option<Instant>) -> Result<()> {
        let mut st = lock(&self.close_state)?;
        while st.received.is_none() && !st.ended && !self.is_shut() {
            let Some(deadline) = deadline else {
                st = self.close_cv.wait(st).map_err(|_| Error::poisoned())?;
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::timeout("the peer did not answer the close frame in time"));
            }
            st = self.close_cv.wait_timeout(st, left).map_err(|_| Error::poisoned())?.0;
        }
        Ok(())
    }

    /// Records that the connection ended with `code`/`reason`, and wakes
    /// threads waiting in `close_graceful`.
    fn record_end(&self, code: u16, reason: &[u8]) {
        if let Ok(mut st) = self.close_state.lock() {
            if st.received.is_none() {
                st.received = Some((code, reason.to_vec()));
            }
        }
        self.close_cv.notify_all();
    }

    /// Our close frame went out (or the socket is shut: nothing more goes
    /// out either way). One atomic load: every write asks.
    fn close_sent(&self) -> bool {
        self.close.phase() >= Phase::Closing
    }

    /// Stores `err` as the connection's last error and returns it.
    fn fail<T>(&self, err: Error) -> Result<T> {
        if let Ok(mut m) = self.last_error.lock() {
            m.clear();
            m.push_str(err.message());
        }
        Err(err)
    }

    /// The message of the last error any call on this connection returned.
    pub fn last_error(&self) -> String {
        self.last_error.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.stream.shutdown();
    }
}
