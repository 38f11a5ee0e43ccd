//! The server side of the opening handshake (gorilla's Upgrader).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::ConnConfig;
use super::conn::Conn;
use super::http::{ErrorResponse, HttpResponse, Request};
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::{params, Agreement};
use crate::proto::handshake::{self, headers::validate_header, Rejection};
use crate::proto::Role;
use crate::transport::tls::TlsServerConfig;
use crate::transport::Stream;

/// Decides whether a request's origin (or anything else in it) is
/// acceptable; `false` answers 403.
pub type CheckOrigin = Arc<dyn Fn(&Request) -> bool + Send + Sync>;
/// Adjusts an error response before it is sent. The request is `None`
/// when it could not be parsed.
pub type ErrorResponder = Arc<dyn Fn(Option<&Request>, &mut ErrorResponse) + Send + Sync>;

/// Answers a plain HTTP request (one that is not an upgrade attempt) on a
/// `Listener` or loop port: the request, its body, and the response to
/// fill in. Runs on the thread that drives the handshakes, so other
/// clients' handshakes wait while it runs.
pub type HttpHandler = Arc<dyn Fn(&Request, &[u8], &mut HttpResponse) + Send + Sync>;

/// The default limit on the body of a plain HTTP request (64 KiB).
pub(crate) const DEFAULT_HTTP_MAX_BODY: usize = 64 << 10;

/// The default handshake timeout of a server: a client that sends half a
/// request and stalls is dropped after this.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Upgrader {
    /// The server's subprotocols in order of preference.
    pub subprotocols: Vec<String>,
    /// `None` = gorilla's safe default: refuse an Origin whose host differs from Host.
    pub check_origin: Option<CheckOrigin>,
    pub error_responder: Option<ErrorResponder>,
    /// Headers added to every 101 response.
    pub response_headers: Vec<(String, String)>,
    /// `None` = no timeout.
    pub handshake_timeout: Option<Duration>,
    /// `None` = a request that is not an upgrade is refused like a bad
    /// handshake (400/405); `Some` answers it (see `server_handshake`).
    pub http_handler: Option<HttpHandler>,
    /// Largest body of a plain HTTP request; a longer one gets 413.
    pub http_max_body: usize,
    pub conn: ConnConfig,
    /// Serve TLS (`wss://`) with this certificate; `None` = plain TCP.
    pub tls: Option<TlsServerConfig>,
}

impl Default for Upgrader {
    fn default() -> Self {
        Upgrader {
            subprotocols: Vec::new(),
            check_origin: None,
            error_responder: None,
            response_headers: Vec::new(),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            http_handler: None,
            http_max_body: DEFAULT_HTTP_MAX_BODY,
            conn: ConnConfig::server(),
            tls: None,
        }
    }
}

/// What the server answers to one request.
pub(crate) enum Verdict {
    /// Send `response` (a 101), then the connection is open.
    Accept { response: Vec<u8>, subprotocol: String, deflate: Option<Agreement> },
    /// Send `response` (an HTTP error), then close.
    Reject { response: Vec<u8>, error: Error },
}

impl Upgrader {
    pub fn add_response_header(&mut self, name: &str, value: &str) -> Result<()> {
        validate_header(name, value).map_err(Error::invalid)?;
        self.response_headers.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Validates a parsed request and builds the answer. `extra` headers go
    /// into a 101 after the Upgrader's own.
    pub(crate) fn decide(&self, req: &Request, extra: &[(String, String)]) -> Verdict {
        let accept = match handshake::validate_request(&req.head) {
            Ok(a) => a,
            Err(rej) => return self.reject(Some(req), rej),
        };
        let origin_ok = match &self.check_origin {
            Some(f) => f(req),
            None => handshake::same_origin(&req.head),
        };
        if !origin_ok {
            return self.reject(
                Some(req),
                Rejection::new(403, "websocket: request origin not allowed by Upgrader.CheckOrigin"),
            );
        }
        let subprotocol = handshake::select_subprotocol(&req.head, &self.subprotocols);
        let mut headers = self.response_headers.clone();
        headers.extend_from_slice(extra);
        let deflate = self.conn.compression.as_ref().and_then(|opts| {
            let (agreement, value) = params::server_accept(req.head.headers.get_all("Sec-WebSocket-Extensions"), opts)?;
            headers.push(("Sec-WebSocket-Extensions".to_string(), value));
            Some(agreement)
        });
        let mut response = Vec::with_capacity(256);
        handshake::write_accept_response(&mut response, &accept, subprotocol.as_deref(), &headers);
        Verdict::Accept { response, subprotocol: subprotocol.unwrap_or_default(), deflate }
    }

    /// Builds the error response for `rej`, through the error responder if set.
    pub(crate) fn reject(&self, req: Option<&Request>, rej: Rejection) -> Verdict {
        let mut er = ErrorResponse {
            status: rej.status,
            headers: rej.headers.clone(),
            body: format!("{}\n", handshake::reason_phrase(rej.status)).into_bytes(),
        };
        if let Some(f) = &self.error_responder {
            f(req, &mut er);
        }
        let mut response = Vec::with_capacity(256);
        handshake::write_error_response(&mut response, er.status, &er.body, &er.headers);
        let error = Error::new(ErrorKind::HandshakeRejected, format!("{} (answered {})", rej.message, er.status));
        Verdict::Reject { response, error }
    }

    /// Wraps an accepted socket in this Upgrader's TLS server, if it has
    /// one (`already` = ciphertext read from it before). The one place the
    /// server side gets TLS; the handshake runs inside the first reads.
    pub(crate) fn wrap_accepted(&self, stream: Stream, already: &[u8]) -> Result<Stream> {
        match &self.tls {
            Some(cfg) => stream.start_tls_server(cfg, already),
            None => Ok(stream),
        }
    }

    /// Upgrades a connection the caller accepted, whose first bytes
    /// (`already_read`, possibly empty or a partial request; with TLS set,
    /// the start of the TLS handshake) it has read. The HTTP handler is not
    /// used here: the caller's own server routes plain HTTP, so a request
    /// that is not an upgrade is refused. Reads the rest of the request
    /// within the handshake timeout (the TLS handshake included), answers
    /// it, and returns the connection; on failure the error response has
    /// been sent and the socket closed.
    pub fn upgrade_stream(&self, stream: Stream, already_read: &[u8], extra: &[(String, String)]) -> Result<Conn> {
        for (n, v) in extra {
            validate_header(n, v).map_err(Error::invalid)?;
        }
        let deadline = self.handshake_timeout.map(|t| Instant::now() + t);
        let (stream, mut buf) = match self.tls {
            Some(_) => (self.wrap_accepted(stream, already_read)?, Vec::new()),
            None => (stream, already_read.to_vec()),
        };
        let remote_addr = stream.peer_addr();
        let (head, head_len) = loop {
            match handshake::Request::parse(&buf) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(rej) => return Err(self.send_rejection(&stream, None, rej, deadline)),
            }
            let mut chunk = [0u8; 4096];
            match stream.read_until(&mut chunk, deadline) {
                Ok(0) => return Err(Error::new(ErrorKind::HandshakeRejected, "client closed during the handshake")),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    let rej = Rejection::new(408, "websocket: handshake timeout");
                    return Err(self.send_rejection(
                        &stream,
                        None,
                        rej,
                        Some(Instant::now() + Duration::from_millis(100)),
                    ));
                }
                Err(e) => {
                    stream.shutdown();
                    if let Some(f) = crate::transport::tls::TlsFailure::from_io(&e) {
                        return Err(Error::new(ErrorKind::from(f.kind), f.message.clone()));
                    }
                    return Err(Error::io("reading the handshake request", e));
                }
            }
        };
        let req = Request { head, remote_addr };
        match self.decide(&req, extra) {
            Verdict::Accept { response, subprotocol, deflate } => {
                stream
                    .write_all_until(&response, deadline)
                    .map_err(|e| Error::io("writing the handshake response", e))?;
                Ok(Conn::new(stream, Role::Server, subprotocol, deflate, &self.conn, &buf[head_len..]))
            }
            Verdict::Reject { response, error } => {
                let _ = stream.write_all_until(&response, deadline);
                stream.shutdown();
                Err(error)
            }
        }
    }

    fn send_rejection(
        &self,
        stream: &Stream,
        req: Option<&Request>,
        rej: Rejection,
        deadline: Option<Instant>,
    ) -> Error {
        match self.reject(req, rej) {
            Verdict::Reject { response, error } => {
                let _ = stream.write_all_until(&response, deadline);
                stream.shutdown();
                error
            }
            Verdict::Accept { .. } => unreachable!("reject() always rejects"),
        }
    }
}
