//! One server-side opening handshake over a non-blocking socket, advanced
//! whenever the socket is ready: read the request, decide, write the
//! answer. The blocking `Listener` and the event loop both drive it, so
//! the rules (limits, timeouts, error responses) live in one place.

use std::io::ErrorKind as IoKind;
use std::net::SocketAddr;
use std::time::Instant;

use super::http::Request;
use super::upgrader::{Upgrader, Verdict};
use crate::proto::deflate::Agreement;
use crate::proto::handshake::{self, Rejection};
use crate::transport::Stream;

enum Phase {
    Reading,
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
    pub deadline: Option<Instant>,
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
        PendingHandshake {
            stream,
            remote,
            buf: Vec::new(),
            head_len: 0,
            deadline: upgrader.handshake_timeout.map(|t| Instant::now() + t),
            phase: Phase::Reading,
        }
    }

    /// True while the request is still being read (wait for readable),
    /// false while the answer is being written (wait for writable).
    pub fn wants_read(&self) -> bool {
        matches!(self.phase, Phase::Reading)
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
            match &mut self.phase {
                Phase::Reading => {
                    let mut chunk = [0u8; 4096];
                    match self.stream.read(&mut chunk) {
                        Ok(0) => return Step::Drop,
                        Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == IoKind::WouldBlock => return Step::Wait,
                        Err(e) if e.kind() == IoKind::Interrupted => continue,
                        Err(_) => return Step::Drop,
                    }
                    match handshake::Request::parse(&self.buf) {
                        Ok(None) => {}
                        Ok(Some((head, head_len))) => {
                            self.head_len = head_len;
                            let req = Request { head, remote_addr: self.remote };
                            // A request is decided once: the hook is not needed again.
                            self.phase = decide(upgrader, &req, hook.take());
                        }
                        Err(rej) => self.phase = rejection(upgrader, None, rej),
                    }
                }
                Phase::Writing { out, written, open } => {
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

fn rejection(upgrader: &Upgrader, req: Option<&Request>, rej: Rejection) -> Phase {
    match upgrader.reject(req, rej) {
        Verdict::Reject { response, .. } => Phase::Writing { out: response, written: 0, open: None },
        Verdict::Accept { .. } => unreachable!("reject() always rejects"),
    }
}
