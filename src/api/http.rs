//! The HTTP side of a handshake as the application sees it: the client's
//! request (given to origin checks and error responders) and the server's
//! response (returned by the Dialer).

use std::net::SocketAddr;

use crate::proto::handshake::{self, HeaderList};

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
