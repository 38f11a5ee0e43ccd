//! Hand-rolled RFC 6455 opening handshake pieces (client request, response
//! check, server answer), shared by the raw client and the fastwebsockets
//! server.

use std::io;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `Sec-WebSocket-Accept` for a given `Sec-WebSocket-Key`.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID.as_bytes());
    B64.encode(h.finalize())
}

/// A fresh `Sec-WebSocket-Key` (16 random bytes, base64).
pub fn new_client_key(rng: &mut crate::client::Rng) -> String {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&rng.next_u64().to_ne_bytes());
    k[8..].copy_from_slice(&rng.next_u64().to_ne_bytes());
    B64.encode(k)
}

/// The client's GET upgrade request.
pub fn client_request(host: &str, path: &str, key: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value)
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses the server's response in `buf`. `Ok(None)` if incomplete,
/// `Ok(Some(n))` with the header length once a valid 101 is complete.
pub fn check_server_response(buf: &[u8], key: &str) -> io::Result<Option<usize>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf).map_err(|e| invalid(e.to_string()))? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(n) => n,
    };
    if resp.code != Some(101) {
        return Err(invalid(format!("handshake: status {:?}", resp.code)));
    }
    let accept =
        header(resp.headers, "sec-websocket-accept").ok_or_else(|| invalid("handshake: no Sec-WebSocket-Accept"))?;
    if accept != accept_key(key.as_bytes()).as_bytes() {
        return Err(invalid("handshake: bad Sec-WebSocket-Accept"));
    }
    Ok(Some(n))
}

/// Parses a client's upgrade request in `buf`. `Ok(None)` if incomplete,
/// `Ok(Some(response))` with the 101 answer once a valid request is complete.
pub fn server_response(buf: &[u8]) -> io::Result<Option<String>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf).map_err(|e| invalid(e.to_string()))? {
        httparse::Status::Partial => return Ok(None),
        httparse::Status::Complete(_) => {}
    }
    if req.method != Some("GET") {
        return Err(invalid("upgrade: not a GET"));
    }
    let upgrade = header(req.headers, "upgrade").unwrap_or_default();
    let connection = header(req.headers, "connection").unwrap_or_default();
    if !has_token(upgrade, "websocket") || !has_token(connection, "upgrade") {
        return Err(invalid("upgrade: missing Upgrade/Connection"));
    }
    if header(req.headers, "sec-websocket-version") != Some(b"13") {
        return Err(invalid("upgrade: unsupported version"));
    }
    let key = header(req.headers, "sec-websocket-key").ok_or_else(|| invalid("upgrade: no Sec-WebSocket-Key"))?;
    Ok(Some(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.trim_ascii())
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc_example_accept() {
        assert_eq!(super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }
}
