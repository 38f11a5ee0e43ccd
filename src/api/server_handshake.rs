//! One server-side opening handshake over a non-blocking socket, advanced
//! whenever the socket is ready: read the request, decide, write the
//! answer. The blocking `Listener` and the event loop both drive it, so
//! the rules (limits, timeouts, error responses) live in one place.
//!
//! With an HTTP handler set, a request that is not an upgrade attempt
//! (`plain_http::is_websocket_attempt`) is a plain HTTP request: its body
//! (`Content-Length`, bounded by `http_max_body`) is read, the handler
//! fills in the answer, and the connection closes once it is written.
//! Upgrade attempts, good or bad, take the WebSocket path as before.

use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::time::Instant;

use super::http::{HttpResponse, Request};
use super::upgrader::{Upgrader, Verdict};
use crate::proto::deflate::Agreement;
use crate::proto::handshake::{self, plain_http, Rejection};
use crate::transport::Stream;

enum Phase {
    Reading,
    /// A plain HTTP request whose body (`body_len` bytes after the head)
    /// is still arriving.
    ReadingBody(Box<Request>),
    /// Sending `out[written..]`; then open a connection (`Some`) or close.
    Writing {
        out: Vec<u8>,
        written: usize,
        open: Option<Accepted>,
    },
}

/// What a successful handshake agreed on.
pub(crate) struct Accepted {
    pub subprotocol: String,
    pub deflate: Option<Agreement>,
}

/// The application's last word on a request that passed the Upgrader's
/// checks (the event loop's handshake callback): `Err(status)` refuses it.
pub(crate) type Hook<'a> = &'a mut dyn FnMut(&Request) -> Result<(), u16>;

pub(crate) struct PendingHandshake {
    pub stream: Stream,
    remote: Option<SocketAddr>,
    buf: Vec<u8>,
    head_len: usize,
    body_len: usize,
    pub deadline: Option<Instant>,
    /// When the socket was accepted: a full `Listener` evicts the oldest.
    pub started: Instant,
    phase: Phase,
}

pub(crate) enum Step {
    /// The socket has nothing more now: wait for readiness.
    Wait,
    /// The handshake failed (its HTTP error went out, if it could): close.
    Drop,
    /// The 101 is out: open the connection.
    Open(Accepted),
}

impl PendingHandshake {
    pub fn new(stream: Stream, remote: Option<SocketAddr>, upgrader: &Upgrader) -> PendingHandshake {
        let started = Instant::now();
        PendingHandshake {
            stream,
            remote,
            buf: Vec::new(),
            head_len: 0,
            body_len: 0,
            deadline: upgrader.handshake_timeout.map(|t| started + t),
            started,
            phase: Phase::Reading,
        }
    }

    /// True while the request is still being read (wait for readable),
    /// false while the answer is being written (wait for writable).
    pub fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Reading | Phase::ReadingBody(_))
    }

    /// The socket, and the bytes that arrived after the request head (the
    /// first bytes of the WebSocket stream).
    pub fn into_parts(mut self) -> (Stream, Vec<u8>) {
        self.buf.drain(..self.head_len);
        (self.stream, self.buf)
    }

    /// Moves the handshake as far as the socket allows.
    pub fn advance(&mut self, upgrader: &Upgrader, mut hook: Option<Hook<'_>>) -> Step {
        loop {
            match self.phase {
                Phase::Reading => {
                    if let Some(step) = self.fill() {
                        return step;
                    }
                    match handshake::Request::parse(&self.buf) {
                        Ok(None) => {}
                        Ok(Some((head, head_len))) => {
                            self.head_len = head_len;
                            let req = Request { head, remote_addr: self.remote };
                            self.phase =
                                if upgrader.http_handler.is_some() && !plain_http::is_websocket_attempt(&req.head) {
                                    match plain_http::body_length(&req.head, upgrader.http_max_body) {
                                        Ok(n) => {
                                            self.body_len = n;
                                            Phase::ReadingBody(Box::new(req))
                                        }
                                        Err(rej) => rejection(upgrader, Some(&req), rej),
                                    }
                                } else {
                                    // A request is decided once: the hook is not needed again.
                                    decide(upgrader, &req, hook.take())
                                };
                        }
                        Err(rej) => self.phase = rejection(upgrader, None, rej),
                    }
                }
                Phase::ReadingBody(_) => {
                    let end = self.head_len + self.body_len;
                    if self.buf.len() < end {
                        if let Some(step) = self.fill() {
                            return step;
                        }
                        continue;
                    }
                    let Phase::ReadingBody(req) = std::mem::replace(&mut self.phase, Phase::Reading) else {
                        unreachable!("matched above")
                    };
                    self.phase = answer_http(upgrader, &req, &self.buf[self.head_len..end]);
                }
                Phase::Writing { ref out, ref mut written, ref mut open } => {
                    while *written < out.len() {
                        match self.stream.write(&out[*written..]) {
                            Ok(n) => *written += n,
                            Err(e) if e.kind() == IoKind::WouldBlock => return Step::Wait,
                            Err(e) if e.kind() == IoKind::Interrupted => {}
                            Err(_) => return Step::Drop,
                        }
                    }
                    // A TLS layer may still hold the answer's ciphertext.
                    match self.stream.flush() {
                        Ok(true) => {}
                        Ok(false) => return Step::Wait,
                        Err(_) => return Step::Drop,
                    }
                    return match open.take() {
                        None => Step::Drop,
                        Some(a) => Step::Open(a),
                    };
                }
            }
        }
    }

    /// One read into the request buffer: `None` when bytes arrived, else
    /// what the caller must do (wait for readiness, or drop a closed or
    /// failed socket).
    fn fill(&mut self) -> Option<Step> {
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Some(Step::Drop),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return None;
                }
                Err(e) if e.kind() == IoKind::WouldBlock => return Some(Step::Wait),
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(_) => return Some(Step::Drop),
            }
        }
    }

    /// The handshake ran out of time: answer 408 if the request was still
    /// being read (best effort, never blocking). The caller drops it.
    pub fn expire(&mut self, upgrader: &Upgrader) {
        if self.wants_read() {
            if let Verdict::Reject { response, .. } =
                upgrader.reject(None, Rejection::new(408, "websocket: handshake timeout"))
            {
                let _ = self.stream.write(&response);
            }
        }
    }
}

fn decide(upgrader: &Upgrader, req: &Request, hook: Option<Hook<'_>>) -> Phase {
    match upgrader.decide(req, &[]) {
        Verdict::Accept { response, subprotocol, deflate } => {
            if let Some(hook) = hook {
                if let Err(status) = hook(req) {
                    let rej = Rejection::new(status, "websocket: the handshake callback refused the request");
                    return rejection(upgrader, Some(req), rej);
                }
            }
            Phase::Writing { out: response, written: 0, open: Some(Accepted { subprotocol, deflate }) }
        }
        Verdict::Reject { response, .. } => Phase::Writing { out: response, written: 0, open: None },
    }
}

/// Asks the HTTP handler for the answer to a plain request and its body.
fn answer_http(upgrader: &Upgrader, req: &Request, body: &[u8]) -> Phase {
    let mut resp = HttpResponse::default();
    if let Some(handler) = &upgrader.http_handler {
        handler(req, body, &mut resp);
    }
    // The fields are public: a 1xx set directly (a 101 would fool the
    // client into speaking WebSocket) becomes a server error.
    if !(200..=599).contains(&resp.status) {
        resp = HttpResponse { status: 500, ..HttpResponse::default() };
    }
    let mut out = Vec::with_capacity(256 + resp.body.len());
    let head_only = req.method() == "HEAD";
    plain_http::write_http_response(&mut out, resp.status, &resp.headers, &resp.body, head_only);
    Phase::Writing { out, written: 0, open: None }
}

fn rejection(upgrader: &Upgrader, req: Option<&Request>, rej: Rejection) -> Phase {
    match upgrader.reject(req, rej) {
        Verdict::Reject { response, .. } => Phase::Writing { out: response, written: 0, open: None },
        Verdict::Accept { .. } => unreachable!("reject() always rejects"),
    }
}
