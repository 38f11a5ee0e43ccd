//! Server side: parse and validate the client's opening handshake and write
//! the response (RFC 6455 section 4.2).
//!
//! Check order of [`validate_request`] (first failure wins):
//!
//! 1. method is `GET`, else 405 (with `Allow: GET`);
//! 2. HTTP version is 1.1 or later, else 400;
//! 3. `Connection` contains the token `upgrade`, else 400;
//! 4. `Upgrade` contains the token `websocket`, else 400;
//! 5. `Sec-WebSocket-Version` is exactly `13`, else 426 (with
//!    `Sec-WebSocket-Version: 13`);
//! 6. `Sec-WebSocket-Key` appears exactly once and is valid base64 of 16
//!    bytes, else 400.
//!
//! gorilla checks `Connection` and `Upgrade` before the method (so a `POST`
//! without upgrade headers gets 400 there, 405 here) and does not check the
//! HTTP version. The origin check (403 in gorilla, between steps 5 and 6) is
//! done by the caller, e.g. with [`same_origin`].

use std::fmt;

use super::accept::{accept_key, is_valid_client_key};
use super::headers::{split_tokens, trim_ows, write_extra_headers, HeaderList};
use super::{MAX_HEADERS, MAX_HEAD_LEN};

/// A parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method as sent (case-sensitive, e.g. `GET`).
    pub method: String,
    /// The request-target as sent (normally path + `?query`).
    pub target: String,
    /// 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub minor_version: u8,
    /// Header fields, in order.
    pub headers: HeaderList,
}

/// Why the server refuses a handshake: the HTTP status to answer with, a
/// gorilla-like human-readable reason, and response headers to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status code for the error response.
    pub status: u16,
    /// Human-readable reason, e.g. `websocket: the client is not using the
    /// websocket protocol: 'upgrade' token not found in 'Connection' header`.
    pub message: String,
    /// Extra response headers the error response must carry.
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    /// A rejection with no extra headers.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Rejection { status, message: message.into(), headers: Vec::new() }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Appends gorilla's default error response for this rejection: status
    /// line, the rejection's headers, and the reason phrase plus `\n` as the
    /// body (like Go's `http.Error(w, http.StatusText(status), status)`;
    /// the detailed [`message`](Self::message) is not sent to the peer).
    pub fn write_response(&self, out: &mut Vec<u8>) {
        let body = format!("{}\n", reason_phrase(self.status));
        write_error_response(out, self.status, body.as_bytes(), &self.headers);
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rejection {}

const NOT_WS: &str = "websocket: the client is not using the websocket protocol: ";

impl Request {
    /// Parses a request head from the start of `buf`.
    ///
    /// * `Ok(None)`: the head is incomplete; read more and call again.
    /// * `Ok(Some((req, head_len)))`: `head_len` counts the bytes up to and
    ///   including the blank line. Bytes after it already belong to the
    ///   WebSocket stream: the caller must keep them.
    /// * `Err` 400: malformed head.
    /// * `Err` 431: the head is longer than [`MAX_HEAD_LEN`] or has more
    ///   than [`MAX_HEADERS`] fields.
    pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, Rejection> {
        // Never look further than MAX_HEAD_LEN bytes: a complete head found
        // there is within the limit, an incomplete one there is too large.
        let window = &buf[..buf.len().min(MAX_HEAD_LEN)];
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(window) {
            Ok(httparse::Status::Complete(head_len)) => {
                let request = Request {
                    method: req.method.unwrap_or_default().to_owned(),
                    target: req.path.unwrap_or_default().to_owned(),
                    minor_version: req.version.unwrap_or(0),
                    headers: HeaderList::from_httparse(req.headers),
                };
                Ok(Some((request, head_len)))
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() >= MAX_HEAD_LEN {
                    Err(Rejection::new(431, format!("websocket: request head larger than {MAX_HEAD_LEN} bytes")))
                } else {
                    Ok(None)
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                Err(Rejection::new(431, format!("websocket: request has more than {MAX_HEADERS} header fields")))
            }
            Err(e) => Err(Rejection::new(400, format!("websocket: malformed HTTP request: {e}"))),
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}

/// Validates a WebSocket opening handshake request (see the module docs for
/// the check order and statuses) and returns the `Sec-WebSocket-Accept`
/// value to answer with.
pub fn validate_request(req: &Request) -> Result<String, Rejection> {
    if req.method != "GET" {
        return Err(Rejection::new(405, format!("{NOT_WS}request method is not GET")).with_header("Allow", "GET"));
    }
    if req.minor_version < 1 {
        return Err(Rejection::new(400, format!("{NOT_WS}HTTP/1.1 or later is required")));
    }
    if !req.headers.has_token("Connection", "upgrade") {
        return Err(Rejection::new(400, format!("{NOT_WS}'upgrade' token not found in 'Connection' header")));
    }
    if !req.headers.has_token("Upgrade", "websocket") {
        return Err(Rejection::new(400, format!("{NOT_WS}'websocket' token not found in 'Upgrade' header")));
    }
    if req.headers.get("Sec-WebSocket-Version").map(trim_ows) != Some(&b"13"[..]) {
        return Err(Rejection::new(
            426,
            "websocket: unsupported version: 13 not found in 'Sec-Websocket-Version' header",
        )
        .with_header("Sec-WebSocket-Version", "13"));
    }
    let mut keys = req.headers.get_all("Sec-WebSocket-Key");
    let key = match (keys.next(), keys.next()) {
        (Some(k), None) => trim_ows(k),
        (None, _) => {
            return Err(Rejection::new(
                400,
                "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header is missing",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(Rejection::new(
                400,
                "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must appear exactly once",
            ))
        }
    };
    if !is_valid_client_key(key) {
        return Err(Rejection::new(
            400,
            "websocket: not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value of 16-byte in length",
        ));
    }
    Ok(accept_key(key))
}

/// Every subprotocol the client asked for: all `Sec-WebSocket-Protocol`
/// fields, comma-split and trimmed, in order (empty and non-UTF-8 elements
/// skipped).
pub fn requested_subprotocols(req: &Request) -> Vec<&str> {
    req.headers.get_all("Sec-WebSocket-Protocol").flat_map(split_tokens).collect()
}

/// The first entry of `server_preference` that the client requested (exact,
/// case-sensitive match, as in gorilla), or `None`.
pub fn select_subprotocol(req: &Request, server_preference: &[String]) -> Option<String> {
    let requested = requested_subprotocols(req);
    server_preference.iter().find(|p| requested.contains(&p.as_str())).cloned()
}

/// gorilla's `IsWebSocketUpgrade`: `Connection` contains `upgrade` and
/// `Upgrade` contains `websocket`.
pub fn is_websocket_upgrade(req: &Request) -> bool {
    req.headers.has_token("Connection", "upgrade") && req.headers.has_token("Upgrade", "websocket")
}

/// gorilla's default `CheckOrigin`: true when there is no `Origin` header;
/// otherwise the (first) `Origin` must parse as an absolute URL with an
/// authority, and its `host[:port]`, as written in the Origin (userinfo
/// dropped, no normalisation of default ports), must equal the `Host`
/// header, ASCII case-insensitively. An unparsable Origin (including
/// `null`) or a missing `Host` gives false.
pub fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.headers.get("Origin") else {
        return true;
    };
    let Ok(origin) = std::str::from_utf8(trim_ows(origin)) else {
        return false;
    };
    let Some(host) = req.headers.get("Host") else {
        return false;
    };
    match origin_authority(origin) {
        Some(authority) => authority.as_bytes().eq_ignore_ascii_case(trim_ows(host)),
        None => false,
    }
}

/// The `host[:port]` of an Origin value as written, or `None` when it is not
/// an absolute `scheme://authority` URL.
fn origin_authority(origin: &str) -> Option<&str> {
    let parsed = ::url::Url::parse(origin).ok()?;
    parsed.host_str()?;
    let (_, rest) = origin.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = match authority.rfind('@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host_port.is_empty() {
        None
    } else {
        Some(host_port)
    }
}

/// The standard reason phrase for `status` (`"Unknown Status"` fallback).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Unknown Status",
        },
    }
}

/// Appends the `101 Switching Protocols` response. Does not clear `out`.
///
/// `extra` should have been checked with
/// [`validate_header`](super::headers::validate_header); as a safety net,
/// extras whose name is not a token are skipped and CR/LF/NUL in values are
/// replaced by spaces.
pub fn write_accept_response(out: &mut Vec<u8>, accept: &str, subprotocol: Option<&str>, extra: &[(String, String)]) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = subprotocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(p.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    write_extra_headers(out, extra);
    out.extend_from_slice(b"\r\n");
}

/// Appends an error response shaped like Go's `http.Error`:
/// status line, `Connection: close`, `Content-Type: text/plain;
/// charset=utf-8`, `Content-Length`, `X-Content-Type-Options: nosniff`,
/// the extra headers (sanitised as in [`write_accept_response`]), a blank
/// line and `body` as given (Go's `http.Error` adds a trailing `\n`; pass it
/// in `body` if wanted). Does not clear `out`.
pub fn write_error_response(out: &mut Vec<u8>, status: u16, body: &[u8], extra: &[(String, String)]) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nX-Content-Type-Options: nosniff\r\n",
            reason_phrase(status),
            body.len()
        )
        .as_bytes(),
    );
    write_extra_headers(out, extra);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    const GOOD: &str = "GET /chat?room=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://server.example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse_ok(s: &str) -> Request {
        let (req, n) = Request::parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(n, s.len());
        req
    }

    /// GOOD with the header `name` removed and, if `value` is given, a
    /// replacement `name: value` appended.
    fn good_with(name: &str, value: Option<&str>) -> Request {
        let mut req = parse_ok(GOOD);
        req.headers.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            req.headers.push(name, v);
        }
        req
    }

    fn status_of(req: &Request) -> u16 {
        validate_request(req).unwrap_err().status
    }

    #[test]
    fn parse_complete_request() {
        let req = parse_ok(GOOD);
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/chat?room=1");
        assert_eq!(req.minor_version, 1);
        assert_eq!(req.headers.len(), 7);
        assert_eq!(req.header("host"), Some(&b"server.example.com"[..]));
    }

    #[test]
    fn parse_incomplete() {
        for cut in [0, 1, 10, GOOD.len() / 2, GOOD.len() - 1] {
            assert_eq!(Request::parse(&GOOD.as_bytes()[..cut]).unwrap(), None, "{cut}");
        }
    }

    #[test]
    fn parse_keeps_trailing_frame_bytes() {
        let mut buf = GOOD.as_bytes().to_vec();
        let frame = [0x81u8, 0x85, 1, 2, 3, 4, b'h' ^ 1];
        buf.extend_from_slice(&frame);
        let (_, n) = Request::parse(&buf).unwrap().unwrap();
        assert_eq!(n, GOOD.len());
        assert_eq!(&buf[n..], &frame);
    }

    #[test]
    fn parse_malformed_is_400() {
        for bad in [
            "GET /chat HTTP/1.1\r\nBad Header\r\n\r\n",
            "GET /chat HTTP/2.0\r\n\r\n",
            "GET /chat FTP/1.1\r\n\r\n",
            "\x01\x02\x03 garbage\r\n\r\n",
            "GET /chat HTTP/1.1\r\nHo st: x\r\n\r\n",
        ] {
            let e = Request::parse(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{bad:?}");
            assert!(e.message.starts_with("websocket: malformed"), "{e}");
        }
    }

    #[test]
    fn parse_too_large_is_431() {
        // One huge header, never terminated.
        let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        big.resize(MAX_HEAD_LEN, b'a');
        assert_eq!(Request::parse(&big[..MAX_HEAD_LEN - 1]).unwrap(), None);
        assert_eq!(Request::parse(&big).unwrap_err().status, 431);
        // Complete, but the head is one byte too long.
        let mut head = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        head.resize(MAX_HEAD_LEN - 3, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), MAX_HEAD_LEN + 1);
        assert_eq!(Request::parse(&head).unwrap_err().status, 431);
        // Exactly MAX_HEAD_LEN is fine, even with stream bytes after it.
        head.remove(30);
        head.extend_from_slice(b"\x81\x00");
        let (_, n) = Request::parse(&head).unwrap().unwrap();
        assert_eq!(n, MAX_HEAD_LEN);
    }

    #[test]
    fn parse_too_many_headers_is_431() {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..MAX_HEADERS {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        let ok = format!("{s}\r\n");
        assert!(Request::parse(ok.as_bytes()).unwrap().is_some());
        s.push_str("X-Last: v\r\n\r\n");
        let e = Request::parse(s.as_bytes()).unwrap_err();
        assert_eq!(e.status, 431);
    }

    #[test]
    fn good_request_validates() {
        assert_eq!(validate_request(&parse_ok(GOOD)).unwrap(), ACCEPT);
        // mixed case and extra tokens
        let s = "GET / HTTP/1.1\r\nHost: h\r\nconnection: keep-alive, UPGRADE\r\n\
                 upgrade: WebSocket\r\nsec-websocket-version: 13\r\n\
                 sec-websocket-key:   dGhlIHNhbXBsZSBub25jZQ==  \r\n\r\n";
        assert_eq!(validate_request(&parse_ok(s)).unwrap(), ACCEPT);
        // Connection split over two fields
        let mut req = good_with("Connection", Some("keep-alive"));
        req.headers.push("Connection", "Upgrade");
        assert!(validate_request(&req).is_ok());
    }

    #[test]
    fn method_must_be_get() {
        let req = parse_ok(&GOOD.replacen("GET", "POST", 1));
        let e = validate_request(&req).unwrap_err();
        assert_eq!(e.status, 405);
        assert!(e.message.contains("request method is not GET"));
        assert_eq!(e.headers, [("Allow".to_owned(), "GET".to_owned())]);
        // method is case-sensitive
        assert_eq!(status_of(&parse_ok(&GOOD.replacen("GET", "get", 1))), 405);
    }

    #[test]
    fn http_1_0_is_400() {
        let req = parse_ok(&GOOD.replacen("HTTP/1.1", "HTTP/1.0", 1));
        let e = validate_request(&req).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("HTTP/1.1"));
    }

    #[test]
    fn connection_upgrade_required() {
        for v in [None, Some("keep-alive"), Some("upgrades"), Some("")] {
            let e = validate_request(&good_with("Connection", v)).unwrap_err();
            assert_eq!(e.status, 400, "{v:?}");
            assert_eq!(
                e.message,
                "websocket: the client is not using the websocket protocol: 'upgrade' token not found in 'Connection' header"
            );
        }
    }

    #[test]
    fn upgrade_websocket_required() {
        for v in [None, Some("h2c"), Some("web socket")] {
            let e = validate_request(&good_with("Upgrade", v)).unwrap_err();
            assert_eq!(e.status, 400, "{v:?}");
            assert!(e.message.contains("'websocket' token not found in 'Upgrade' header"));
        }
        assert!(validate_request(&good_with("Upgrade", Some("foo, WEBSOCKET"))).is_ok());
    }

    #[test]
    fn version_13_required() {
        for v in [None, Some("8"), Some("12, 13"), Some("130"), Some("")] {
            let e = validate_request(&good_with("Sec-WebSocket-Version", v)).unwrap_err();
            assert_eq!(e.status, 426, "{v:?}");
            assert_eq!(e.headers, [("Sec-WebSocket-Version".to_owned(), "13".to_owned())]);
            assert!(e.message.contains("unsupported version"));
        }
    }

    #[test]
    fn key_rules() {
        let e = validate_request(&good_with("Sec-WebSocket-Key", None)).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("missing"));
        for v in ["", "short", "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAAA="] {
            let e = validate_request(&good_with("Sec-WebSocket-Key", Some(v))).unwrap_err();
            assert_eq!(e.status, 400, "{v:?}");
            assert!(e.message.contains("16-byte"));
        }
        let mut req = parse_ok(GOOD);
        req.headers.push("Sec-WebSocket-Key", KEY);
        let e = validate_request(&req).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("exactly once"));
    }

    #[test]
    fn check_order() {
        // POST without any upgrade headers: method is checked first.
        let req = parse_ok("POST / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(status_of(&req), 405);
        // Wrong version and bad key: version (426) comes before key (400).
        let mut req = good_with("Sec-WebSocket-Version", Some("8"));
        req.headers.0.retain(|(n, _)| n != "Sec-WebSocket-Key");
        assert_eq!(status_of(&req), 426);
        // Missing Connection and Upgrade: Connection is reported.
        let mut req = good_with("Connection", None);
        req.headers.0.retain(|(n, _)| n != "Upgrade");
        assert!(validate_request(&req).unwrap_err().message.contains("'Connection'"));
    }

    #[test]
    fn subprotocols() {
        let mut req = parse_ok(GOOD);
        req.headers.push("Sec-WebSocket-Protocol", " v2.json ,, chat");
        assert_eq!(requested_subprotocols(&req), ["chat", "superchat", "v2.json", "chat"]);
        let pref = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // server preference order wins over client order
        assert_eq!(select_subprotocol(&req, &pref(&["superchat", "chat"])), Some("superchat".into()));
        assert_eq!(select_subprotocol(&req, &pref(&["x", "v2.json", "chat"])), Some("v2.json".into()));
        // case-sensitive
        assert_eq!(select_subprotocol(&req, &pref(&["CHAT"])), None);
        assert_eq!(select_subprotocol(&req, &[]), None);
        let none = good_with("Sec-WebSocket-Protocol", None);
        assert!(requested_subprotocols(&none).is_empty());
        assert_eq!(select_subprotocol(&none, &pref(&["chat"])), None);
    }

    #[test]
    fn upgrade_detection() {
        assert!(is_websocket_upgrade(&parse_ok(GOOD)));
        assert!(!is_websocket_upgrade(&good_with("Connection", None)));
        assert!(!is_websocket_upgrade(&good_with("Upgrade", Some("h2c"))));
        assert!(is_websocket_upgrade(&good_with("Upgrade", Some("WebSocket"))));
    }

    fn origin_req(host: Option<&str>, origin: Option<&str>) -> Request {
        let mut req = good_with("Origin", origin);
        req.headers.0.retain(|(n, _)| n != "Host");
        if let Some(h) = host {
            req.headers.push("Host", h);
        }
        req
    }

    #[test]
    fn origin_checks() {
        let ok = |h: &str, o: &str| same_origin(&origin_req(Some(h), Some(o)));
        // no Origin
        assert!(same_origin(&origin_req(Some("example.com"), None)));
        assert!(same_origin(&origin_req(None, None)));
        // same host
        assert!(ok("example.com", "http://example.com"));
        assert!(ok("example.com", "https://example.com/"));
        assert!(ok("example.com:8080", "http://example.com:8080"));
        assert!(ok("[::1]:9000", "http://[::1]:9000"));
        assert!(ok("example.com", "http://user:pw@example.com"));
        // case difference
        assert!(ok("Example.COM", "http://example.com"));
        assert!(ok("example.com", "HTTP://EXAMPLE.COM"));
        // different host
        assert!(!ok("example.com", "http://evil.com"));
        assert!(!ok("example.com", "http://example.com.evil.com"));
        // different port, or port written on one side only
        assert!(!ok("example.com:8080", "http://example.com:9090"));
        assert!(!ok("example.com", "http://example.com:8080"));
        assert!(!ok("example.com:8080", "http://example.com"));
        assert!(!ok("example.com", "http://example.com:80"));
        // garbage / opaque origins
        assert!(!ok("example.com", "null"));
        assert!(!ok("example.com", "not a url"));
        assert!(!ok("example.com", "http://"));
        assert!(!ok("example.com", "http:example.com"));
        assert!(!ok("example.com", ""));
        // Origin present but no Host
        assert!(!same_origin(&origin_req(None, Some("http://example.com"))));
    }

    #[test]
    fn accept_response_bytes() {
        let mut out = b"prefix".to_vec();
        write_accept_response(&mut out, ACCEPT, None, &[]);
        assert_eq!(
            out,
            b"prefixHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        let mut out = Vec::new();
        write_accept_response(&mut out, ACCEPT, Some("chat"), &[("Set-Cookie".into(), "a=b".into())]);
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with(
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\nSet-Cookie: a=b\r\n\r\n"
        ));
    }

    #[test]
    fn error_response_bytes() {
        let mut out = Vec::new();
        write_error_response(&mut out, 426, b"Upgrade Required\n", &[("Sec-WebSocket-Version".into(), "13".into())]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 426 Upgrade Required\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 17\r\nX-Content-Type-Options: nosniff\r\nSec-WebSocket-Version: 13\r\n\r\nUpgrade Required\n"
        );
        let mut out = Vec::new();
        write_error_response(&mut out, 599, b"", &[]);
        assert!(out.starts_with(b"HTTP/1.1 599 Server Error\r\n"));
        assert!(out.ends_with(b"Content-Length: 0\r\nX-Content-Type-Options: nosniff\r\n\r\n"));
    }

    #[test]
    fn rejection_response() {
        let e = validate_request(&parse_ok(&GOOD.replacen("GET", "PUT", 1))).unwrap_err();
        assert_eq!(e.to_string(), e.message);
        let mut out = Vec::new();
        e.write_response(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(s.contains("\r\nAllow: GET\r\n"));
        assert!(s.ends_with("\r\n\r\nMethod Not Allowed\n"));
    }

    #[test]
    fn reason_phrases() {
        for (code, phrase) in [
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (426, "Upgrade Required"),
            (429, "Too Many Requests"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (503, "Service Unavailable"),
            (499, "Client Error"),
            (999, "Unknown Status"),
        ] {
            assert_eq!(reason_phrase(code), phrase);
        }
    }
}
