//! Entry points for the fuzz targets in `fuzz/` (not a stable API): the
//! server's handshake decision and the client's response check exactly as
//! `Listener`, the event loop and `Dialer` run them, without sockets.

use super::dialer::{DialRequest, Dialer};
use super::http::Request;
use super::upgrader::{Upgrader, Verdict};
use crate::error::Result;
use crate::proto::deflate::Agreement;
use crate::proto::handshake;

/// What the server does with a request head.
pub enum ServerDecision {
    /// The head is not complete yet (the server keeps reading).
    Incomplete,
    /// A 101 with these bytes; the subprotocol and compression agreed.
    Accept { response: Vec<u8>, subprotocol: String, deflate: Option<Agreement> },
    /// An HTTP error response with these bytes, and its status.
    Reject { response: Vec<u8>, status: u16 },
}

/// Parses `head` as the server does and decides as `up` would.
pub fn server_decision(up: &Upgrader, head: &[u8]) -> ServerDecision {
    let verdict = match handshake::Request::parse(head) {
        Ok(None) => return ServerDecision::Incomplete,
        Ok(Some((head, _))) => up.decide(&Request { head, remote_addr: None }, &[]),
        Err(rej) => up.reject(None, rej),
    };
    match verdict {
        Verdict::Accept { response, subprotocol, deflate } => ServerDecision::Accept { response, subprotocol, deflate },
        Verdict::Reject { response, .. } => {
            // "HTTP/1.1 NNN ...": the status the writer put there.
            let status = std::str::from_utf8(&response[9..12]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
            ServerDecision::Reject { response, status }
        }
    }
}

/// A client request as `Dialer::dial` would send it to `url`.
pub struct ClientRequest(DialRequest);

impl ClientRequest {
    pub fn new(d: &Dialer, url: &str) -> Result<ClientRequest> {
        d.prepare_request(url, &[]).map(ClientRequest)
    }

    /// The request bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// The `Sec-WebSocket-Accept` value a correct answer carries.
    pub fn expected_accept(&self) -> String {
        handshake::accept_key(self.0.key().as_bytes())
    }

    /// Parses `head` as the client does and checks it against the request:
    /// `None` while incomplete, else the subprotocol and compression agreed.
    pub fn check(&self, d: &Dialer, head: &[u8]) -> Option<Result<(String, Option<Agreement>)>> {
        match handshake::Response::parse(head) {
            Ok(None) => None,
            Ok(Some((resp, _))) => Some(d.check_response(&self.0, &resp)),
            Err(m) => Some(Err(crate::error::Error::new(crate::error::ErrorKind::BadHandshake, m))),
        }
    }
}
