//! The HTTP side of a handshake as the application sees it: the client's
//! request (given to origin checks, error responders and HTTP handlers),
//! the server's response (returned by the Dialer), and the answers a
//! server's callbacks fill in (error responses, plain HTTP responses).

use std::net::SocketAddr;

use crate::error::{Error, Result};
use crate::proto::handshake::plain_http::is_reserved_response_header;
use crate::proto::handshake::{self, validate_header, HeaderList};

/// A client's opening handshake request.
#[derive(Debug, Clone)]
pub struct Request {
    pub head: handshake::Request,
    pub remote_addr: Option<SocketAddr>,
}

impl Request {
    pub fn method(&self) -> &str {
        &self.head.method
    }
    /// The request target: path and query, as sent.
    pub fn target(&self) -> &str {
        &self.head.target
    }
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.headers.get(name)
    }
    pub fn headers(&self) -> &HeaderList {
        &self.head.headers
    }
    /// The subprotocols the client asked for, in its order (gorilla's Subprotocols).
    pub fn subprotocols(&self) -> Vec<&str> {
        handshake::requested_subprotocols(&self.head)
    }
}

/// A server's answer to the opening handshake, with the start of the body
/// when it was not a 101 (as much as had arrived, at most 4 KiB).
#[derive(Debug, Clone)]
pub struct Response {
    pub head: handshake::Response,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.headers.get(name)
    }
    pub fn headers(&self) -> &HeaderList {
        &self.head.headers
    }
}

/// An HTTP error response the server is about to send; an Upgrader's error
/// responder may change any part of it (gorilla's Upgrader.Error).
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The answer to a plain HTTP request (one that is not an upgrade), filled
/// in by an Upgrader's HTTP handler. It starts as `200` with no header and
/// an empty body; libws adds `Content-Length` and `Connection: close`.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Largest body of a plain HTTP request or response (64 MiB): both are
/// held in memory whole. Crate-private so cbindgen keeps it out of ws.h.
pub(crate) const MAX_HTTP_BODY: usize = 64 << 20;

impl Default for HttpResponse {
    fn default() -> Self {
        HttpResponse { status: 200, headers: Vec::new(), body: Vec::new() }
    }
}

impl HttpResponse {
    /// Sets the status; only final statuses (200-599) answer a request.
    pub fn set_status(&mut self, status: u16) -> Result<()> {
        if !(200..=599).contains(&status) {
            return Err(Error::invalid(format!("HTTP status {status} is not 200-599")));
        }
        self.status = status;
        Ok(())
    }

    /// Adds a header. `Content-Length`, `Transfer-Encoding` and
    /// `Connection` are libws's own and refused, as are names that are not
    /// tokens and values with CR, LF or NUL.
    pub fn add_header(&mut self, name: &str, value: &str) -> Result<()> {
        validate_header(name, value).map_err(Error::invalid)?;
        if is_reserved_response_header(name) {
            return Err(Error::invalid(format!("header {name} is set by libws")));
        }
        self.headers.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Replaces the body (at most 64 MiB).
    pub fn set_body(&mut self, body: &[u8]) -> Result<()> {
        if body.len() > MAX_HTTP_BODY {
            return Err(Error::invalid(format!(
                "an HTTP response body of {} bytes is over the limit of {MAX_HTTP_BODY}",
                body.len()
            )));
        }
        self.body.clear();
        self.body.extend_from_slice(body);
        Ok(())
    }
}
