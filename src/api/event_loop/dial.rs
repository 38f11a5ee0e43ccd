//! The client side of the opening handshake on the loop: a non-blocking
//! connect (trying each resolved address in turn), the request, and the
//! response, validated by the same code as the blocking Dialer.

use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::handler::Handler;
use crate::api::dialer::{bad_response_msg, closed_before_response, DialRequest, Dialer, MAX_BODY_KEPT};
use crate::api::http::Response;
use crate::error::{Error, ErrorKind};
use crate::proto::deflate::Agreement;
use crate::proto::handshake::client::{ClientHandshake, ResponseHead, Stage};
use crate::transport::Stream;

pub(super) struct Dialing {
    pub stream: Stream,
    /// Addresses not tried yet.
    addrs: Vec<SocketAddr>,
    addr: SocketAddr,
    request: DialRequest,
    pub dialer: Arc<Dialer>,
    pub handler: Arc<dyn Handler>,
    pub user: usize,
    hs: ClientHandshake,
    pub deadline: Option<Instant>,
}

pub(super) enum DialStep {
    Wait,
    /// This address failed; a stream to the next one replaced it.
    Reconnected,
    Failed(Error, Option<Response>),
    Open {
        subprotocol: String,
        deflate: Option<Agreement>,
        leftover: Vec<u8>,
    },
}

fn connect(addr: SocketAddr) -> Result<Stream, Error> {
    mio::net::TcpStream::connect(addr)
        .map(Stream::from_mio)
        .map_err(|e| Error::new(ErrorKind::Connect, format!("connect to {addr}: {e}")))
}

/// A TLS failure keeps its status and reason; anything else is I/O.
fn io_error(what: &str, e: std::io::Error) -> Error {
    match crate::transport::tls::TlsFailure::from_io(&e) {
        Some(f) => Error::new(ErrorKind::from(f.kind), f.message.clone()),
        None => Error::io(what, e),
    }
}

impl Dialing {
    /// Starts connecting to the first address that accepts a connect(2).
    pub fn start(
        mut addrs: Vec<SocketAddr>,
        mut request: DialRequest,
        dialer: Arc<Dialer>,
        handler: Arc<dyn Handler>,
        user: usize,
    ) -> Result<Dialing, (Error, Arc<dyn Handler>, usize)> {
        addrs.reverse(); // popped from the end, in resolver order
        let mut last = Error::new(ErrorKind::Connect, format!("{} resolves to no address", request.host));
        while let Some(addr) = addrs.pop() {
            match connect(addr) {
                Ok(stream) => {
                    let deadline = dialer.handshake_timeout.map(|t| Instant::now() + t);
                    let hs = ClientHandshake::new(std::mem::take(&mut request.bytes), false, false);
                    return Ok(Dialing { stream, addrs, addr, request, dialer, handler, user, hs, deadline });
                }
                Err(e) => last = e,
            }
        }
        Err((last, handler, user))
    }

    pub fn timeout_error(&self) -> Error {
        let connected = self.hs.stage() != Stage::Transport;
        let what = if connected { "the handshake" } else { "connecting" };
        if connected && self.request.secure && self.stream.tls_version().is_none() {
            let f = crate::transport::tls::error::handshake_timeout(&self.request.host);
            return Error::new(ErrorKind::Tls, f.message);
        }
        Error::new(ErrorKind::Timeout, format!("handshake timeout while {what} ({})", self.addr))
    }

    pub fn advance(&mut self) -> DialStep {
        if self.hs.stage() == Stage::Transport {
            let err = match self.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e.to_string()),
                Ok(None) if self.stream.peer_addr().is_some() => None,
                // Neither connected nor failed: still in progress.
                Ok(None) => return DialStep::Wait,
            };
            if let Some(e) = err {
                let error = Error::new(ErrorKind::Connect, format!("connect to {}: {e}", self.addr));
                while let Some(addr) = self.addrs.pop() {
                    if let Ok(s) = connect(addr) {
                        self.stream.shutdown();
                        self.stream = s;
                        self.addr = addr;
                        return DialStep::Reconnected;
                    }
                }
                return DialStep::Failed(error, None);
            }
            // Connected. TLS is a layer of the stream: its handshake runs
            // inside the writes and reads below (no proxy stage on the
            // loop yet: `Dialer::prepare_loop` refuses an explicit one).
            if self.request.secure {
                if let Err(e) = self.stream.add_tls_client(&self.dialer.tls, &self.request.host) {
                    return DialStep::Failed(e, None);
                }
            }
            self.hs.layer_ready();
        }
        while !self.hs.to_send().is_empty() {
            match self.stream.write(self.hs.to_send()) {
                Ok(n) => self.hs.sent(n),
                Err(e) if e.kind() == IoKind::WouldBlock => return DialStep::Wait,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return DialStep::Failed(io_error("sending the handshake request", e), None),
            }
        }
        loop {
            let mut chunk = [0u8; 4096];
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => return DialStep::Failed(closed_before_response(), None),
                Ok(n) => n,
                Err(e) if e.kind() == IoKind::WouldBlock => return DialStep::Wait,
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => return DialStep::Failed(io_error("reading the handshake response", e), None),
            };
            let ResponseHead { head, after } = match self.hs.received(&chunk[..n]) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(m) => return DialStep::Failed(bad_response_msg(&m), None),
            };
            return match self.dialer.check_response(&self.request, &head) {
                Ok((subprotocol, deflate)) => DialStep::Open { subprotocol, deflate, leftover: after },
                Err(e) => {
                    let mut body = after;
                    body.truncate(MAX_BODY_KEPT);
                    DialStep::Failed(e, Some(Response { head, body }))
                }
            };
        }
    }
}
