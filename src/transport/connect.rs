//! Client TCP connections: resolve, then connect to each address in turn
//! with a deadline.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Instant;

use super::wait::{wait_ready, Interest};
use super::Stream;
use crate::error::{Error, ErrorKind, Result};

/// Resolves `host` with the system resolver (blocking).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::new(ErrorKind::Connect, format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Error::new(ErrorKind::Connect, format!("{host} resolves to no address")));
    }
    Ok(addrs)
}

/// Resolves `host` and connects to the first address that answers.
pub fn connect_tcp(host: &str, port: u16, deadline: Option<Instant>) -> Result<Stream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = resolve(host, port)?;
    let mut last = format!("{host} resolves to no address");
    for addr in addrs {
        match connect_one(addr, deadline) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == ErrorKind::Timeout => return Err(e),
            Err(e) => last = e.message().to_string(),
        }
    }
    Err(Error::new(ErrorKind::Connect, last))
}

fn connect_one(addr: SocketAddr, deadline: Option<Instant>) -> Result<Stream> {
    let tcp = mio::net::TcpStream::connect(addr)
        .map_err(|e| Error::new(ErrorKind::Connect, format!("connect to {addr}: {e}")))?;
    let stream = Stream::from_mio(tcp);
    match wait_ready(stream.as_fd(), Interest::Write, deadline) {
        Ok(true) => {}
        Ok(false) => {
            return Err(Error::new(ErrorKind::Timeout, format!("handshake timeout while connecting to {addr}")))
        }
        Err(e) => return Err(Error::new(ErrorKind::Connect, format!("connect to {addr}: {e}"))),
    }
    if let Ok(Some(e)) | Err(e) = stream.take_error() {
        return Err(Error::new(ErrorKind::Connect, format!("connect to {addr}: {e}")));
    }
    if stream.peer_addr().is_none() {
        return Err(Error::new(ErrorKind::Connect, format!("connect to {addr}: not connected")));
    }
    Ok(stream)
}
