//! Plain TCP through mio.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use mio::net::TcpStream;

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

/// A connected, non-blocking byte stream. Reads and writes take `&self` so
/// one thread can read while another writes (the kernel keeps the two
/// directions apart).
#[derive(Debug)]
pub struct Stream {
    tcp: TcpStream,
}

impl Stream {
    /// Wraps a connected std socket, switching it to non-blocking mode.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<Stream> {
        s.set_nonblocking(true)?;
        Ok(Stream { tcp: TcpStream::from_std(s) })
    }

    pub fn from_mio(tcp: TcpStream) -> Stream {
        Stream { tcp }
    }

    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.tcp).read(buf)
    }

    pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.tcp).write(buf)
    }

    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.tcp).write_vectored(bufs)
    }

    pub fn shutdown(&self) {
        // Errors mean the socket is already shut or reset: nothing to do.
        let _ = self.tcp.shutdown(Shutdown::Both);
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
