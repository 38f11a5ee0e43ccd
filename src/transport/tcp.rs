//! TCP through mio, optionally under TLS layers.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use mio::net::TcpStream;

use super::tls::{TlsClientConfig, TlsLayers, TlsServerConfig, TlsSession};

/// The accept queue's length asked of the kernel (capped by
/// `net.core.somaxconn`). mio and std ask for 128, which a burst of clients
/// or a few stalled handshakes fill; while the queue is full the kernel
/// drops new clients' SYNs and they retry only after a second or more.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds a listening socket on the first address `addr` ("host:port")
/// resolves to that accepts it (port 0 picks a free one), with an accept
/// queue of [`LISTEN_BACKLOG`]. Shared by the blocking Listener and the
/// event loop.
pub fn bind_listener(addr: &str) -> crate::Result<mio::net::TcpListener> {
    use crate::error::{Error, ErrorKind};
    use std::net::ToSocketAddrs;
    let addrs = addr
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::BadUrl, format!("bad listen address {addr:?}: {e}")))?;
    let mut last = None;
    for a in addrs {
        match mio::net::TcpListener::bind(a) {
            Ok(tcp) => {
                // listen(2) again on a listening socket only changes its
                // backlog; if it fails, the first backlog stays.
                let _ = rustix::net::listen(&tcp, LISTEN_BACKLOG);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => Error::io(&format!("cannot listen on {addr}"), e),
        None => Error::new(ErrorKind::BadUrl, format!("{addr} resolves to no address")),
    })
}

/// A connected, non-blocking byte stream: TCP, or TLS over TCP. Reads and
/// writes take `&self` so one thread can read while another writes (the
/// kernel keeps the two directions apart; TLS state has its own lock,
/// held only for non-blocking work).
///
/// Under TLS a `write` may leave ciphertext queued when the socket is
/// full: whoever finishes a message calls [`Stream::flush`] until it
/// returns true (waiting for writable in between).
#[derive(Debug)]
pub struct Stream {
    tcp: TcpStream,
    tls: Option<Box<TlsLayers>>,
}

impl Stream {
    /// Wraps a connected std socket, switching it to non-blocking mode.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<Stream> {
        s.set_nonblocking(true)?;
        Ok(Stream { tcp: TcpStream::from_std(s), tls: None })
    }

    pub fn from_mio(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None }
    }

    // Inlined: the plain-TCP case is one branch on every message.
    #[inline]
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.tls {
            None => (&self.tcp).read(buf),
            Some(t) => t.read(&self.tcp, buf),
        }
    }

    #[inline]
    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => (&self.tcp).write(buf),
            Some(t) => t.write(&self.tcp, buf),
        }
    }

    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.tls {
            None => (&self.tcp).write_vectored(bufs),
            Some(t) => t.write_vectored(&self.tcp, bufs),
        }
    }

    /// Sends bytes a TLS layer still holds: true when none are left, false
    /// when the socket is full (wait for writable, call again). Plain TCP
    /// holds none.
    #[inline]
    pub fn flush(&self) -> io::Result<bool> {
        match &self.tls {
            None => Ok(true),
            Some(t) => t.flush(&self.tcp),
        }
    }

    /// Whether a TLS layer holds bytes for the socket (poll for writable too).
    pub fn wants_write(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Whether a read shorter than asked means the socket is drained (an
    /// edge-triggered reader may then stop): true for TCP; under TLS the
    /// layer says (see [`TlsLayers::short_read_means_drained`]).
    #[inline]
    pub fn short_read_means_drained(&self) -> bool {
        self.tls.as_ref().map_or(true, |t| t.short_read_means_drained())
    }

    /// Bytes a TLS layer took from writes that the socket has not yet
    /// (ciphertext, and plaintext held during the handshake); 0 on TCP.
    #[inline]
    pub fn tls_pending_bytes(&self) -> usize {
        self.tls.as_ref().map_or(0, |t| t.pending_bytes())
    }

    #[inline]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The TLS peer's certificate chain (leaf first, DER); `None` on plain
    /// TCP or when the peer sent none.
    pub fn tls_peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.tls.as_ref().and_then(|t| t.peer_certificates())
    }

    /// Whether a TLS layer's handshake is still running (false on plain TCP).
    pub fn tls_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// The negotiated TLS version of the innermost layer.
    pub fn tls_version(&self) -> Option<String> {
        self.tls.as_ref().and_then(|t| t.protocol_version())
    }

    /// Runs a TLS client for `host` over this stream (inside an existing
    /// TLS layer when there is one: the target behind an HTTPS proxy) and
    /// completes its handshake by `deadline`. Failures come back as
    /// `io::Error`s carrying a [`super::tls::TlsFailure`]; a timeout as
    /// `TimedOut`.
    pub fn start_tls_client(
        mut self,
        config: &TlsClientConfig,
        host: &str,
        deadline: Option<std::time::Instant>,
    ) -> crate::Result<Stream> {
        self.add_tls_client(config, host)?;
        let io_err = |e: io::Error| match super::tls::TlsFailure::from_io(&e) {
            Some(f) => crate::Error::new(crate::ErrorKind::from(f.kind), f.message.clone()),
            None if e.kind() == io::ErrorKind::TimedOut => {
                crate::Error::new(crate::ErrorKind::Tls, super::tls::error::handshake_timeout(host).message)
            }
            None => crate::Error::new(crate::ErrorKind::Tls, format!("TLS handshake with {host}: {e}")),
        };
        let tls = self.tls.as_ref().expect("set above");
        loop {
            let want = match tls.handshake_step(&self.tcp) {
                Ok(None) => return Ok(self),
                Ok(Some(true)) => super::wait::Interest::Read,
                Ok(Some(false)) => super::wait::Interest::Write,
                Err(e) => return Err(io_err(e)),
            };
            match super::wait::wait_ready(self.as_fd(), want, deadline) {
                Ok(true) => {}
                Ok(false) => return Err(io_err(io::ErrorKind::TimedOut.into())),
                Err(e) => return Err(io_err(e)),
            }
        }
    }

    /// Adds a TLS client for `host` without waiting: the handshake runs
    /// inside the next reads and writes (for drivers that never block).
    pub fn add_tls_client(&mut self, config: &TlsClientConfig, host: &str) -> crate::Result<()> {
        let session = TlsSession::client(config, host)?;
        match &self.tls {
            Some(t) => t.push(session, &[]).map_err(|e| crate::Error::io("TLS", e))?,
            None => self.tls = Some(Box::new(TlsLayers::new(session, &[]))),
        }
        Ok(())
    }

    /// Makes this accepted socket a TLS server; the handshake runs inside
    /// the first reads. `already` is ciphertext the caller read before.
    pub fn start_tls_server(mut self, config: &TlsServerConfig, already: &[u8]) -> crate::Result<Stream> {
        let session = TlsSession::server(config)?;
        self.tls = Some(Box::new(TlsLayers::new(session, already)));
        Ok(self)
    }

    /// Shuts the socket down (TLS: after queueing close_notify and sending
    /// what the socket takes without waiting).
    pub fn shutdown(&self) {
        if let Some(t) = &self.tls {
            t.close_notify(&self.tcp);
        }
        // Errors mean the socket is already shut or reset: nothing to do.
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    /// Ends our direction only (TLS: after close_notify), so the peer's
    /// answer can still be read.
    pub fn shutdown_write(&self) {
        if let Some(t) = &self.tls {
            t.close_notify(&self.tcp);
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.tcp.set_nodelay(on)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.local_addr().ok()
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp.peer_addr().ok()
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.tcp.take_error()
    }

    /// The mio source, for registration with an event loop.
    pub fn mio(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}

impl Stream {
    /// Writes all of `buf`, waiting for the socket up to `deadline`
    /// (used for handshakes; frames have their own path).
    pub fn write_all_until(&self, mut buf: &[u8], deadline: Option<std::time::Instant>) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !super::wait::wait_ready(self.as_fd(), super::wait::Interest::Write, deadline)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while !self.flush()? {
            if !super::wait::wait_ready(self.as_fd(), super::wait::Interest::Write, deadline)? {
                return Err(io::ErrorKind::TimedOut.into());
            }
        }
        Ok(())
    }

    /// Reads at least one byte into `buf`, waiting up to `deadline`
    /// (`TimedOut` then). 0 means end of stream.
    pub fn read_until(&self, buf: &mut [u8], deadline: Option<std::time::Instant>) -> io::Result<usize> {
        loop {
            match self.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !super::wait::wait_ready(self.as_fd(), super::wait::Interest::Read, deadline)? {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
