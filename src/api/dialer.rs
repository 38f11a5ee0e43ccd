//! The client side of the opening handshake (gorilla's Dialer).

use std::time::{Duration, Instant};

use super::config::ConnConfig;
use super::conn::Conn;
use super::http::Response;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::{params, Agreement};
use crate::proto::handshake::client::{ClientHandshake, ResponseHead};
use crate::proto::handshake::{self, headers::validate_header};
use crate::proto::Role;
use crate::transport::proxy::ProxyChoice;
use crate::transport::tls::TlsClientConfig;
use crate::transport::Stream;

pub(crate) use crate::transport::connect::resolve;

/// gorilla's DefaultDialer.HandshakeTimeout.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(45);
/// How much of a non-101 response body is kept for the caller.
pub(crate) const MAX_BODY_KEPT: usize = 4096;

#[derive(Clone, Debug)]
pub struct Dialer {
    pub subprotocols: Vec<String>,
    /// Headers sent with every request (Origin, Cookie, Authorization...).
    pub headers: Vec<(String, String)>,
    /// Covers connecting, the request and the response. `None` = no timeout.
    /// Name resolution is not covered (the system resolver blocks).
    pub handshake_timeout: Option<Duration>,
    pub conn: ConnConfig,
    /// For `wss://` targets and HTTPS proxies.
    pub tls: TlsClientConfig,
    /// The environment's proxy by default (gorilla's ProxyFromEnvironment).
    pub proxy: ProxyChoice,
    /// Extra headers of an HTTP proxy's CONNECT request.
    pub proxy_headers: Vec<(String, String)>,
}

impl Default for Dialer {
    fn default() -> Self {
        Dialer {
            subprotocols: Vec::new(),
            headers: Vec::new(),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            conn: ConnConfig::default(),
            tls: TlsClientConfig::default(),
            proxy: ProxyChoice::Environment,
            proxy_headers: Vec::new(),
        }
    }
}

/// A failed dial: the error, and the server's response when one arrived
/// (gorilla returns it with ErrBadHandshake).
#[derive(Debug)]
pub struct DialError {
    pub error: Error,
    pub response: Option<Response>,
}

impl From<Error> for DialError {
    fn from(error: Error) -> Self {
        DialError { error, response: None }
    }
}

impl Dialer {
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<()> {
        validate_header(name, value).map_err(Error::invalid)?;
        self.headers.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Adds a header to an HTTP proxy's CONNECT request.
    pub fn add_proxy_header(&mut self, name: &str, value: &str) -> Result<()> {
        validate_header(name, value).map_err(Error::invalid)?;
        self.proxy_headers.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Connects to a `ws://` or `wss://` URL (through the proxy the Dialer
    /// chooses) and performs the opening handshake. `extra` headers are
    /// sent after the Dialer's own.
    pub fn dial(&self, url: &str, extra: &[(String, String)]) -> std::result::Result<(Conn, Response), DialError> {
        let req = self.prepare_request(url, extra)?;
        let deadline = self.handshake_timeout.map(|t| Instant::now() + t);
        let stream = super::dial_stream::open_stream(self, &req, deadline)?;
        self.handshake(stream, &req, deadline)
    }

    /// Performs the opening handshake over a socket the caller connected
    /// (gorilla's NetDial): `url` gives the Host header and the path; its
    /// host and port are not used to connect. The handshake timeout starts
    /// now. For `wss://` URLs TLS runs over it (SNI and verification for
    /// the URL's host). The stream is closed on failure.
    pub fn dial_stream(
        &self,
        stream: Stream,
        url: &str,
        extra: &[(String, String)],
    ) -> std::result::Result<(Conn, Response), DialError> {
        // On every early return the stream drops, which closes it.
        let req = self.prepare_request(url, extra)?;
        if stream.peer_addr().is_none() {
            return Err(Error::invalid("the socket is not a connected TCP socket").into());
        }
        let deadline = self.handshake_timeout.map(|t| Instant::now() + t);
        let stream = if req.secure { stream.start_tls_client(&self.tls, &req.host, deadline)? } else { stream };
        self.handshake(stream, &req, deadline)
    }

    /// Drives the client handshake machine over a connected `stream` (the
    /// proxy tunnel and TLS, when any, are already in it: transport's
    /// `proxy::open` ran them, so the machine's Tunnel and Tls stages are
    /// skipped here).
    fn handshake(
        &self,
        stream: Stream,
        req: &DialRequest,
        deadline: Option<Instant>,
    ) -> std::result::Result<(Conn, Response), DialError> {
        let mut hs = ClientHandshake::new(req.bytes.clone(), false, false);
        hs.layer_ready();
        let n = hs.to_send().len();
        stream.write_all_until(hs.to_send(), deadline).map_err(|e| handshake_io("sending the handshake request", e))?;
        hs.sent(n);
        let ResponseHead { head, after } = loop {
            let mut chunk = [0u8; 4096];
            let n = match stream.read_until(&mut chunk, deadline) {
                Ok(0) => return Err(closed_before_response().into()),
                Ok(n) => n,
                Err(e) => return Err(handshake_io("reading the handshake response", e).into()),
            };
            if let Some(r) = hs.received(&chunk[..n]).map_err(|m| bad_response_msg(&m))? {
                break r;
            }
        };
        match self.check_response(req, &head) {
            Ok((sub, deflate)) => {
                let conn = Conn::new(stream, Role::Client, sub, deflate, &self.conn, &after);
                Ok((conn, Response { head, body: Vec::new() }))
            }
            Err(error) => {
                let mut body = after;
                if head.status != 101 {
                    read_body_start(&stream, &mut body);
                }
                body.truncate(MAX_BODY_KEPT);
                stream.shutdown();
                Err(DialError { error, response: Some(Response { head, body }) })
            }
        }
    }

    /// Everything a dial decides before connecting: where to, and the
    /// request bytes.
    pub(crate) fn prepare_request(&self, url: &str, extra: &[(String, String)]) -> Result<DialRequest> {
        let u = handshake::parse_ws_url(url).map_err(|m| Error::new(ErrorKind::BadUrl, m))?;
        if u.secure {
            // Before any connect: a build without TLS refuses every wss:// dial here.
            crate::transport::tls::require("wss:// URLs")?;
        }
        let mut headers = self.headers.clone();
        headers.extend_from_slice(extra);
        if let Some(auth) = &u.basic_auth {
            if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("authorization")) {
                headers.push(("Authorization".to_string(), auth.clone()));
            }
        }
        let key = handshake::try_generate_client_key().map_err(|m| Error::new(ErrorKind::Internal, m))?;
        let mut bytes = Vec::with_capacity(512);
        let offer = self.conn.compression.as_ref().map(params::client_offer);
        handshake::write_request_with_extensions(
            &mut bytes,
            &u.host_header,
            &u.target,
            &key,
            &self.subprotocols,
            offer.as_deref(),
            &headers,
        )
        .map_err(Error::invalid)?;
        let offered = handshake::offered_subprotocols(&self.subprotocols, &headers);
        Ok(DialRequest { host: u.host, port: u.port, secure: u.secure, bytes, key, offered })
    }

    /// Validates the server's response head against the request: the
    /// subprotocol ("" when none) and the compression agreed on, or a
    /// `BadHandshake` error.
    pub(crate) fn check_response(
        &self,
        req: &DialRequest,
        head: &handshake::Response,
    ) -> Result<(String, Option<Agreement>)> {
        let checked = handshake::validate_response_except_extensions(head, &req.key, &req.offered).and_then(|sub| {
            let exts = head.headers.get_all("Sec-WebSocket-Extensions");
            let deflate = match &self.conn.compression {
                Some(opts) => {
                    params::client_accept(exts, opts).map_err(|m| format!("websocket: bad handshake: {m}"))?
                }
                None if head.headers.get("Sec-WebSocket-Extensions").is_some() => {
                    return Err(
                        "websocket: bad handshake: the server answered with an extension that was not offered".into()
                    )
                }
                None => None,
            };
            Ok((sub.unwrap_or_default(), deflate))
        });
        checked.map_err(|m| Error::new(ErrorKind::BadHandshake, m))
    }
}

/// A client request ready to send, and what its answer must match.
pub(crate) struct DialRequest {
    pub host: String,
    pub port: u16,
    /// `wss://`: TLS to the target.
    pub secure: bool,
    pub bytes: Vec<u8>,
    key: String,
    offered: Vec<String>,
}

/// A response head the handshake machine refused (its message already
/// reads "websocket: bad handshake: ...").
pub(crate) fn bad_response_msg(message: &str) -> Error {
    Error::new(ErrorKind::BadHandshake, message.to_string())
}

impl DialRequest {
    /// The request's `Sec-WebSocket-Key` (for `api::fuzzing`).
    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

pub(crate) fn closed_before_response() -> Error {
    Error::new(ErrorKind::BadHandshake, "websocket: bad handshake: connection closed before the response")
}

fn handshake_io(what: &str, e: std::io::Error) -> Error {
    // A TLS failure surfacing after the handshake (a TLS 1.3 server refuses
    // a client certificate only once it has read the client's Finished).
    if let Some(f) = crate::transport::tls::TlsFailure::from_io(&e) {
        return Error::new(ErrorKind::from(f.kind), f.message.clone());
    }
    if e.kind() == std::io::ErrorKind::TimedOut {
        Error::new(ErrorKind::Timeout, format!("handshake timeout while {what}"))
    } else {
        Error::io(what, e)
    }
}

/// Takes whatever more of an error body arrives within a short grace period.
fn read_body_start(stream: &Stream, body: &mut Vec<u8>) {
    let until = Some(Instant::now() + Duration::from_millis(50));
    let mut chunk = [0u8; 4096];
    while body.len() < MAX_BODY_KEPT {
        match stream.read_until(&mut chunk, until) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `wss://` dial to a closed port: with TLS it fails to connect;
    /// without, it is refused before connecting, with the reason.
    #[test]
    fn wss_is_refused_before_connecting_exactly_without_tls() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = Dialer { proxy: ProxyChoice::Direct, ..Dialer::default() };
        let e = d.dial(&format!("wss://127.0.0.1:{port}/"), &[]).unwrap_err().error;
        if crate::transport::tls::ENABLED {
            assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
        } else {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
            assert!(e.message().starts_with("wss:// URLs: this libws was built without TLS"), "{e}");
        }
    }
}
