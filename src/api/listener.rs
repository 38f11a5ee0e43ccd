//! A listening socket that hands out upgraded connections.
//!
//! `accept` drives every pending handshake at once over non-blocking
//! sockets, so a client that sends half a request and stalls delays nobody:
//! it is dropped when its handshake timeout passes while other clients'
//! handshakes complete around it.
//!
//! Hostile load: when [`MAX_PENDING`] handshakes are in progress and more
//! clients are queued, the oldest handshake is dropped for each new client,
//! so clients that trickle their requests cannot keep fresh ones out until
//! their timeouts fire. Out of descriptors, accepting pauses for
//! [`ACCEPT_BACKOFF`] (or until a pending socket closes) instead of
//! spinning on a listener that stays readable.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::conn::Conn;
use super::server_handshake::{PendingHandshake as Pending, Step};
use super::upgrader::Upgrader;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::Role;
use crate::transport::accept::{classify, AcceptFailure};
use crate::transport::tcp::bind_listener;
use crate::transport::Stream;

/// Handshakes in progress at most. Past it, each newly accepted client
/// replaces the oldest pending handshake (see the module comment).
const MAX_PENDING: usize = 1024;
/// Clients accepted per round at most: the pending handshakes are advanced
/// between rounds, so a new client's request (usually already in its
/// socket) is read before the client can become the oldest and be evicted.
const ACCEPT_BATCH: usize = 128;
/// How long accepting pauses when the process is out of descriptors or
/// kernel memory (a pending handshake that ends frees one and ends the
/// pause at once).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The state `accept` callers take turns on.
#[derive(Default)]
struct AcceptState {
    pending: Vec<Pending>,
    /// Set after `EMFILE` and the like: leave the listener alone until then.
    paused_until: Option<Instant>,
}

pub struct Listener {
    tcp: mio::net::TcpListener,
    upgrader: Upgrader,
    state: Mutex<AcceptState>,
    local_addr: SocketAddr,
    shut: AtomicBool,
    /// A byte written here wakes a blocked `accept` (see `shutdown`).
    wake_tx: UnixStream,
    wake_rx: UnixStream,
}

impl Listener {
    /// Listens on `addr` ("host:port"; port 0 picks a free one) with a
    /// snapshot of `upgrader`'s settings.
    pub fn bind(addr: &str, upgrader: &Upgrader) -> Result<Listener> {
        if let Some(tls) = &upgrader.tls {
            tls.rustls()?; // a TLS setting that cannot work fails here, not per client
        }
        let tcp = bind_listener(addr)?;
        let local_addr = tcp.local_addr().map_err(|e| Error::io("local_addr", e))?;
        let (wake_tx, wake_rx) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
        wake_rx.set_nonblocking(true).map_err(|e| Error::io("socketpair", e))?;
        Ok(Listener {
            tcp,
            upgrader: upgrader.clone(),
            state: Mutex::new(AcceptState::default()),
            local_addr,
            shut: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener: a blocked `accept` (any thread) returns
    /// `LocallyClosed`, and so does every later one.
    pub fn shutdown(&self) {
        self.shut.store(true, Ordering::SeqCst);
        let _ = (&self.wake_tx).write(&[1]);
    }

    /// Returns the next connection whose handshake succeeded, waiting until
    /// `deadline` (`None` = forever). Failed handshakes are answered with
    /// their HTTP error and never returned. Concurrent callers take turns.
    pub fn accept(&self, deadline: Option<Instant>) -> Result<Conn> {
        let mut state = self.state.lock().map_err(|_| Error::poisoned())?;
        let st = &mut *state;
        loop {
            if self.shut.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::LocallyClosed, "the listener was shut down"));
            }
            self.accept_new(st)?;
            let now = Instant::now();
            let pending = &mut st.pending;
            let mut i = 0;
            while i < pending.len() {
                let expired = pending[i].deadline.is_some_and(|d| now >= d);
                let step = if expired {
                    pending[i].expire(&self.upgrader);
                    Step::Drop
                } else {
                    pending[i].advance(&self.upgrader, None)
                };
                match step {
                    Step::Wait => i += 1,
                    Step::Drop => {
                        pending.swap_remove(i).stream.shutdown();
                        // Its descriptor is free again: accept at once.
                        st.paused_until = None;
                    }
                    Step::Open(a) => {
                        let (stream, leftover) = pending.swap_remove(i).into_parts();
                        return Ok(Conn::new(
                            stream,
                            Role::Server,
                            a.subprotocol,
                            a.deflate,
                            &self.upgrader.conn,
                            &leftover,
                        ));
                    }
                }
            }
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::timeout("no connection was accepted before the deadline"));
            }
            self.wait(st, deadline)?;
        }
    }

    /// Accepts up to [`ACCEPT_BATCH`] queued clients, evicting the oldest
    /// pending handshake for each one past [`MAX_PENDING`].
    fn accept_new(&self, st: &mut AcceptState) -> Result<()> {
        if let Some(until) = st.paused_until {
            if Instant::now() < until {
                return Ok(());
            }
            st.paused_until = None;
        }
        for _ in 0..ACCEPT_BATCH {
            match self.tcp.accept() {
                Ok((tcp, remote)) => {
                    if st.pending.len() >= MAX_PENDING {
                        evict_oldest(&mut st.pending);
                    }
                    // TLS settings were checked at bind; a failure now drops this client only.
                    if let Ok(stream) = self.upgrader.wrap_accepted(Stream::from_mio(tcp), &[]) {
                        st.pending.push(Pending::new(stream, Some(remote), &self.upgrader));
                    }
                }
                Err(e) => match classify(&e) {
                    AcceptFailure::Empty => break,
                    AcceptFailure::Skip => {}
                    AcceptFailure::OutOfResources => {
                        st.paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                        break;
                    }
                    AcceptFailure::Fatal => return Err(Error::io("accept", e)),
                },
            }
        }
        Ok(())
    }

    /// Sleeps until the listener (unless accepting is paused), a pending
    /// socket or the wake pipe is ready, or the nearest deadline.
    fn wait(&self, st: &AcceptState, deadline: Option<Instant>) -> Result<()> {
        let mut fds = Vec::with_capacity(st.pending.len() + 2);
        // While paused the listener stays readable (its queue is full of
        // clients we cannot take yet): asking for IN would return at once.
        let listen_flags = if st.paused_until.is_some() { PollFlags::empty() } else { PollFlags::IN };
        fds.push(PollFd::from_borrowed_fd(self.tcp.as_fd(), listen_flags));
        fds.push(PollFd::from_borrowed_fd(self.wake_rx.as_fd(), PollFlags::IN));
        let mut until = earliest(deadline, st.paused_until);
        for p in &st.pending {
            let mut flags = if p.wants_read() { PollFlags::IN } else { PollFlags::OUT };
            if p.stream.wants_write() {
                flags |= PollFlags::OUT; // a TLS layer's queued handshake bytes
            }
            fds.push(PollFd::from_borrowed_fd(p.stream.as_fd(), flags));
            until = earliest(until, p.deadline);
        }
        let timeout = until.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as _ }
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("poll", e.into())),
        }
        if !fds[1].revents().is_empty() {
            let mut sink = [0u8; 16];
            let _ = (&self.wake_rx).read(&mut sink);
        }
        Ok(())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Drops the handshake that has been pending longest: under a flood of
/// stalled clients it has had the most time, and a fresh client's request
/// usually completes within one round trip.
fn evict_oldest(pending: &mut Vec<Pending>) {
    if let Some((i, _)) = pending.iter().enumerate().min_by_key(|(_, p)| p.started) {
        pending.swap_remove(i).stream.shutdown();
    }
}
