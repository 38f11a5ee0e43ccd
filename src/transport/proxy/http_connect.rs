//! HTTP CONNECT (RFC 9110 9.3.6) as a sans-IO state machine.

use base64::Engine;

use super::{HttpRefusal, Progress, Tunnel, TunnelError};

/// The proxy's response head may be at most this large.
const MAX_HEAD: usize = 16 * 1024;
/// How much of a refusal's body is kept.
const MAX_BODY: usize = 4096;

enum State {
    Request(Vec<u8>),
    Head,
    /// A refusal whose body is still arriving (`want` bytes in total).
    Body {
        status: u16,
        head_len: usize,
        want: usize,
    },
}

pub struct HttpConnect {
    state: State,
    buf: Vec<u8>,
}

impl HttpConnect {
    /// A CONNECT to `host:port`, with Basic credentials and extra headers
    /// (validated by the caller: no CR/LF).
    pub fn new(host: &str, port: u16, credentials: Option<(&str, &str)>, headers: &[(String, String)]) -> HttpConnect {
        let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((u, p)) = credentials {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        HttpConnect { state: State::Request(req.into_bytes()), buf: Vec::new() }
    }

    fn refusal(&self, status: u16, head_len: usize) -> TunnelError {
        let head = self.buf[..head_len].to_vec();
        let mut body = self.buf[head_len..].to_vec();
        body.truncate(MAX_BODY);
        let reason = match status {
            407 => " (proxy authentication required)",
            403 => " (forbidden)",
            _ => "",
        };
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]);
        let shown = shown.split_whitespace().collect::<Vec<_>>().join(" ");
        let message = if shown.is_empty() {
            format!("proxy refused the tunnel: HTTP {status}{reason}")
        } else {
            format!("proxy refused the tunnel: HTTP {status}{reason}: {shown}")
        };
        TunnelError { refused: true, message, http: Some(HttpRefusal { status, head, body }) }
    }
}

impl Tunnel for HttpConnect {
    fn output(&mut self) -> Vec<u8> {
        match std::mem::replace(&mut self.state, State::Head) {
            State::Request(r) => r,
            other => {
                self.state = other;
                Vec::new()
            }
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<Progress, TunnelError> {
        self.buf.extend_from_slice(data);
        if let State::Body { status, head_len, want } = self.state {
            return if self.buf.len() >= want { Err(self.refusal(status, head_len)) } else { Ok(Progress::NeedMore) };
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&self.buf) {
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > MAX_HEAD {
                    return Err(TunnelError::broken("proxy response head is larger than 16 KiB"));
                }
                Ok(Progress::NeedMore)
            }
            Ok(httparse::Status::Complete(head_len)) => {
                let status = resp.code.unwrap_or(0);
                if (200..300).contains(&status) {
                    return Ok(Progress::Done { leftover: self.buf[head_len..].to_vec() });
                }
                let length = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
                // Without a length the body ends with the connection (the
                // driver stops waiting for it soon).
                let want = head_len + length.unwrap_or(MAX_BODY).min(MAX_BODY);
                if self.buf.len() >= want {
                    return Err(self.refusal(status, head_len));
                }
                self.state = State::Body { status, head_len, want };
                Ok(Progress::NeedMore)
            }
            Err(e) => Err(TunnelError::broken(format!("proxy sent a bad HTTP response: {e}"))),
        }
    }

    fn pending_refusal(&self) -> Option<TunnelError> {
        match self.state {
            State::Body { status, head_len, .. } => Some(self.refusal(status, head_len)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_has_authority_auth_and_headers() {
        let mut t = HttpConnect::new("::1", 443, Some(("u", "p")), &[("X-A".into(), "1".into())]);
        let req = String::from_utf8(t.output()).unwrap();
        assert!(req.starts_with("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"), "{req}");
        assert!(req.contains("Proxy-Authorization: Basic dTpw\r\n"));
        assert!(req.ends_with("X-A: 1\r\n\r\n"));
        assert!(t.output().is_empty());
    }

    #[test]
    fn success_in_pieces_keeps_leftover() {
        let mut t = HttpConnect::new("h", 80, None, &[]);
        t.output();
        assert_eq!(t.feed(b"HTTP/1.1 200 Connection est").unwrap(), Progress::NeedMore);
        assert_eq!(t.feed(b"ablished\r\n\r\nxy").unwrap(), Progress::Done { leftover: b"xy".to_vec() });
    }

    #[test]
    fn refusal_waits_for_its_body() {
        let mut t = HttpConnect::new("h", 80, None, &[]);
        t.output();
        assert_eq!(t.feed(b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 6\r\n\r\nden").unwrap(), Progress::NeedMore);
        let e = t.feed(b"ied").unwrap_err();
        assert!(e.refused);
        let http = e.http.unwrap();
        assert_eq!((http.status, http.body.as_slice()), (407, &b"denied"[..]));
        assert!(e.message.contains("407") && e.message.contains("denied"), "{}", e.message);
    }

    #[test]
    fn garbage_is_not_a_refusal() {
        let mut t = HttpConnect::new("h", 80, None, &[]);
        t.output();
        let e = t.feed(b"SSH-2.0-OpenSSH\r\n\r\n").unwrap_err();
        assert!(!e.refused);
    }
}
