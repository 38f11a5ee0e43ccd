//! Plain HTTP requests on the WebSocket port (requests that are not
//! upgrades): telling them apart from upgrade attempts, the length of
//! their body, and the bytes of the answer. One request per connection:
//! every answer carries `Connection: close`.

use super::headers::{trim_ows, write_extra_headers};
use super::request::{reason_phrase, Rejection, Request};

/// Response headers libws writes itself (the body's framing and the end of
/// the connection); an application may not set them.
pub fn is_reserved_response_header(name: &str) -> bool {
    ["Content-Length", "Transfer-Encoding", "Connection"].iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// True when the request tries to open a WebSocket, even badly: an
/// `Upgrade` naming `websocket`, or any `Sec-WebSocket-Key` or
/// `Sec-WebSocket-Version`. Such requests go through the handshake checks
/// and get their usual error statuses (400, 405, 426); everything else is
/// a plain HTTP request. A `Connection: upgrade` alone is not enough: an
/// `Upgrade: h2c` request is plain HTTP to a server that ignores it.
pub fn is_websocket_attempt(req: &Request) -> bool {
    req.headers.has_token("Upgrade", "websocket")
        || req.headers.contains("Sec-WebSocket-Key")
        || req.headers.contains("Sec-WebSocket-Version")
}

/// The length of the request's body from `Content-Length` (0 without
/// one), at most `max` bytes (RFC 9112 6.3):
///
/// * `Transfer-Encoding` (chunked bodies are not read): 411 Length Required;
/// * a `Content-Length` that is not digits, or several that differ: 400;
/// * a body longer than `max`: 413.
pub fn body_length(req: &Request, max: usize) -> Result<usize, Rejection> {
    if req.headers.contains("Transfer-Encoding") {
        return Err(Rejection::new(411, "http: Transfer-Encoding is not supported; send Content-Length"));
    }
    let mut length: Option<u64> = None;
    for value in req.headers.get_all("Content-Length") {
        // "Content-Length: 5, 5" (a proxy's merge of two fields) is one length.
        for part in value.split(|&b| b == b',').map(trim_ows) {
            let n =
                match std::str::from_utf8(part).ok().filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                {
                    Some(p) => p.parse::<u64>().map_err(|_| Rejection::new(400, "http: Content-Length too large"))?,
                    None => {
                        let shown = String::from_utf8_lossy(part);
                        return Err(Rejection::new(400, format!("http: invalid Content-Length {shown:?}")));
                    }
                };
            if length.is_some_and(|l| l != n) {
                return Err(Rejection::new(400, "http: conflicting Content-Length fields"));
            }
            length = Some(n);
        }
    }
    let n = length.unwrap_or(0);
    if n > max as u64 {
        return Err(Rejection::new(413, format!("http: request body of {n} bytes is over the limit of {max}")));
    }
    Ok(n as usize)
}

/// Appends an HTTP/1.1 response: status line, `Content-Length`,
/// `Connection: close`, `extra` (checked by the caller with
/// `validate_header` and [`is_reserved_response_header`]; sanitised
/// again as in `write_accept_response`), a blank line and the body —
/// left out for a HEAD request (`head_only`), whose `Content-Length` is
/// still the body's.
pub fn write_http_response(out: &mut Vec<u8>, status: u16, extra: &[(String, String)], body: &[u8], head_only: bool) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            reason_phrase(status),
            body.len()
        )
        .as_bytes(),
    );
    let kept: Vec<(String, String)> = extra.iter().filter(|(n, _)| !is_reserved_response_header(n)).cloned().collect();
    write_extra_headers(out, &kept);
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        Request::parse(s.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn upgrade_attempts_are_told_apart() {
        assert!(!is_websocket_attempt(&req("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n")));
        assert!(!is_websocket_attempt(&req("GET / HTTP/1.0\r\n\r\n")));
        assert!(!is_websocket_attempt(&req(
            "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n"
        )));
        assert!(is_websocket_attempt(&req("GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n")));
        assert!(is_websocket_attempt(&req("POST / HTTP/1.1\r\nSec-WebSocket-Key: x\r\n\r\n")));
        assert!(is_websocket_attempt(&req("GET / HTTP/1.1\r\nSec-WebSocket-Version: 8\r\n\r\n")));
    }

    #[test]
    fn body_lengths() {
        assert_eq!(body_length(&req("GET / HTTP/1.1\r\n\r\n"), 10), Ok(0));
        assert_eq!(body_length(&req("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n"), 10), Ok(10));
        assert_eq!(body_length(&req("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n"), 10), Ok(7));
        assert_eq!(body_length(&req("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n"), 10), Ok(7));
        let status = |s: &str| body_length(&req(s), 10).unwrap_err().status;
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), 413);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
        assert_eq!(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        let headers = vec![
            ("Content-Type".to_string(), "text/html".to_string()),
            ("content-length".to_string(), "999".to_string()),
        ];
        write_http_response(&mut out, 200, &headers, b"<p>hi</p>", false);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<p>hi</p>"
        );
        let mut out = Vec::new();
        write_http_response(&mut out, 404, &[], b"gone", true);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
        );
        assert!(is_reserved_response_header("connection") && !is_reserved_response_header("Content-Type"));
    }
}
