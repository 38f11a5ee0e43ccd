//! A listening socket that hands out upgraded connections.
//!
//! `accept` drives every pending handshake at once over non-blocking
//! sockets, so a client that sends half a request and stalls delays nobody:
//! it is dropped when its handshake timeout passes while other clients'
//! handshakes complete around it.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::conn::Conn;
use super::server_handshake::{PendingHandshake as Pending, Step};
use super::upgrader::Upgrader;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::Role;
use crate::transport::tcp::bind_listener;
use crate::transport::Stream;

/// Handshakes in progress at most; further clients wait in the kernel's
/// accept queue.
const MAX_PENDING: usize = 1024;

pub struct Listener {
    tcp: mio::net::TcpListener,
    upgrader: Upgrader,
    pending: Mutex<Vec<Pending>>,
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
            pending: Mutex::new(Vec::new()),
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
        let mut pending = self.pending.lock().map_err(|_| Error::poisoned())?;
        loop {
            if self.shut.load(Ordering::SeqCst) {
                return Err(Error::new(ErrorKind::LocallyClosed, "the listener was shut down"));
            }
            self.accept_new(&mut pending)?;
            let now = Instant::now();
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
            self.wait(&pending, deadline)?;
        }
    }

    fn accept_new(&self, pending: &mut Vec<Pending>) -> Result<()> {
        while pending.len() < MAX_PENDING {
            match self.tcp.accept() {
                Ok((tcp, remote)) => {
                    // TLS settings were checked at bind; a failure now drops this client only.
                    if let Ok(stream) = self.upgrader.wrap_accepted(Stream::from_mio(tcp), &[]) {
                        pending.push(Pending::new(stream, Some(remote), &self.upgrader));
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => break,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                // A connection that died in the queue, or out of descriptors:
                // try again on the next round rather than fail the server.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNABORTED | libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    break
                }
                Err(e) => return Err(Error::io("accept", e)),
            }
        }
        Ok(())
    }

    /// Sleeps until the listener, a pending socket or the wake pipe is
    /// ready, or the nearest deadline.
    fn wait(&self, pending: &[Pending], deadline: Option<Instant>) -> Result<()> {
        let mut fds = Vec::with_capacity(pending.len() + 2);
        fds.push(PollFd::from_borrowed_fd(self.tcp.as_fd(), PollFlags::IN));
        fds.push(PollFd::from_borrowed_fd(self.wake_rx.as_fd(), PollFlags::IN));
        let mut until = deadline;
        for p in pending {
            let mut flags = if p.wants_read() { PollFlags::IN } else { PollFlags::OUT };
            if p.stream.wants_write() {
                flags |= PollFlags::OUT; // a TLS layer's queued handshake bytes
            }
            fds.push(PollFd::from_borrowed_fd(p.stream.as_fd(), flags));
            if let Some(d) = p.deadline {
                until = Some(until.map_or(d, |u| u.min(d)));
            }
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
