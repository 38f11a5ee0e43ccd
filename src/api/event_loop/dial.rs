//! The client side of the opening handshake on the loop: a non-blocking
//! connect (trying each resolved address in turn) to the target or its
//! proxy, the proxy tunnel (`tunnel.rs`; TLS to an HTTPS proxy first),
//! TLS to a `wss://` target, the request, and the response, validated by
//! the same code as the blocking Dialer. One deadline covers all stages.

use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::handler::Handler;
use super::tunnel::{LoopTunnel, TunnelStep};
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
    /// The proxy stage, when the dial goes through a proxy.
    tunnel: Option<Box<LoopTunnel>>,
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
    /// Starts connecting to the first address that accepts a connect(2):
    /// the target's, or the proxy's when `tunnel` is given.
    pub fn start(
        mut addrs: Vec<SocketAddr>,
        mut request: DialRequest,
        tunnel: Option<Box<LoopTunnel>>,
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
                    let hs = ClientHandshake::new(std::mem::take(&mut request.bytes), tunnel.is_some(), false);
                    return Ok(Dialing { stream, addrs, addr, request, dialer, handler, user, hs, tunnel, deadline });
                }
                Err(e) => last = e,
            }
        }
        if let Some(t) = &tunnel {
            last = t.connect_failed(&last);
        }
        Err((last, handler, user))
    }

    /// When the sweep must end this dial: its deadline, or sooner when a
    /// proxy's refusal is in and only its body is awaited.
    pub fn due(&self) -> Option<Instant> {
        let refusal = self.tunnel.as_ref().and_then(|t| t.refusal_by);
        match (self.deadline, refusal) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    /// The error (and a proxy's refusal as the response) for a dial whose
    /// time ran out (`due`), worded for the stage it was in.
    pub fn expired(&self) -> (Error, Option<Response>) {
        let stage = self.hs.stage();
        if stage == Stage::Transport {
            let e = Error::new(ErrorKind::Timeout, format!("handshake timeout while connecting to {}", self.addr));
            return (self.tunnel.as_ref().map_or(e.clone(), |t| t.connect_failed(&e)), None);
        }
        if let (Stage::Tunnel, Some(t)) = (stage, &self.tunnel) {
            return t.expired(&self.stream);
        }
        if self.request.secure && self.stream.tls_handshaking() {
            let f = crate::transport::tls::error::handshake_timeout(&self.request.host);
            return (Error::new(ErrorKind::Tls, f.message), None);
        }
        (Error::new(ErrorKind::Timeout, format!("handshake timeout during the handshake with {}", self.addr)), None)
    }

    /// For `wss://`: TLS to the target, as the innermost layer (inside the
    /// HTTPS proxy's, when there is one). `Some` when that failed.
    fn add_target_tls(&mut self) -> Option<DialStep> {
        if !self.request.secure {
            return None;
        }
        self.stream.add_tls_client(&self.dialer.tls, &self.request.host).err().map(|e| DialStep::Failed(e, None))
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
                let error = self.tunnel.as_ref().map_or(error.clone(), |t| t.connect_failed(&error));
                return DialStep::Failed(error, None);
            }
            // Connected. TLS is a layer of the stream: its handshake runs
            // inside the writes and reads below (the tunnel's for an
            // HTTPS proxy, the request's and response's for the target).
            match &self.tunnel {
                Some(t) if t.proxy_tls() => {
                    if let Err(e) = self.stream.add_tls_client(&self.dialer.tls, &t.proxy.host) {
                        let e = crate::transport::proxy::open::proxy_error(&t.proxy, ErrorKind::Proxy, e.message());
                        return DialStep::Failed(e.error, None);
                    }
                }
                Some(_) => {}
                None => {
                    if let Some(step) = self.add_target_tls() {
                        return step;
                    }
                }
            }
            self.hs.layer_ready();
        }
        if let (Stage::Tunnel, Some(t)) = (self.hs.stage(), self.tunnel.as_mut()) {
            match t.advance(&self.stream, Instant::now()) {
                TunnelStep::Wait => return DialStep::Wait,
                TunnelStep::Failed(e, resp) => return DialStep::Failed(e, resp),
                TunnelStep::Open => {
                    t.refusal_by = None;
                    if let Some(step) = self.add_target_tls() {
                        return step;
                    }
                    self.hs.layer_ready();
                }
            }
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
