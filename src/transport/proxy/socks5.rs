//! SOCKS5 CONNECT (RFC 1928) with username/password (RFC 1929), as a
//! sans-IO state machine.

use std::net::SocketAddr;

use super::{Progress, Tunnel, TunnelError};

/// Where the proxy connects to.
#[derive(Clone, Debug)]
pub enum Destination {
    /// `socks5://`: the client resolved the name.
    Addr(SocketAddr),
    /// `socks5h://`: the proxy resolves it.
    Name(String, u16),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the method choice (2 bytes).
    Method,
    /// Waiting for the authentication status (2 bytes).
    Auth,
    /// Waiting for the CONNECT reply.
    Reply,
}

pub struct Socks5 {
    dest: Destination,
    credentials: Option<(String, String)>,
    state: State,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl Socks5 {
    pub fn new(dest: Destination, credentials: Option<(&str, &str)>) -> Result<Socks5, TunnelError> {
        if let Destination::Name(n, _) = &dest {
            if n.is_empty() || n.len() > 255 {
                return Err(TunnelError::broken("SOCKS5: a host name must be 1 to 255 bytes"));
            }
        }
        let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        if let Some((u, p)) = &credentials {
            if u.is_empty() || u.len() > 255 || p.len() > 255 {
                return Err(TunnelError::broken("SOCKS5: user name must be 1 to 255 bytes, password at most 255"));
            }
        }
        let out = if credentials.is_some() { vec![5, 2, 0x00, 0x02] } else { vec![5, 1, 0x00] };
        Ok(Socks5 { dest, credentials, state: State::Method, out, buf: Vec::new() })
    }

    fn connect_request(&self) -> Vec<u8> {
        let mut r = vec![5, 1, 0];
        let port = match &self.dest {
            Destination::Addr(SocketAddr::V4(a)) => {
                r.push(1);
                r.extend_from_slice(&a.ip().octets());
                a.port()
            }
            Destination::Addr(SocketAddr::V6(a)) => {
                r.push(4);
                r.extend_from_slice(&a.ip().octets());
                a.port()
            }
            Destination::Name(n, port) => {
                r.push(3);
                r.push(n.len() as u8);
                r.extend_from_slice(n.as_bytes());
                *port
            }
        };
        r.extend_from_slice(&port.to_be_bytes());
        r
    }
}

fn reply_reason(code: u8) -> &'static str {
    match code {
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply code",
    }
}

impl Tunnel for Socks5 {
    fn output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    fn feed(&mut self, data: &[u8]) -> Result<Progress, TunnelError> {
        self.buf.extend_from_slice(data);
        // Each answer needs a request of ours first: one step per feed.
        match self.state {
            State::Method => {
                if self.buf.len() < 2 {
                    return Ok(Progress::NeedMore);
                }
                if self.buf[0] != 5 {
                    return Err(TunnelError::broken(format!(
                        "SOCKS5: the proxy answered with version {} (not a SOCKS5 proxy?)",
                        self.buf[0]
                    )));
                }
                let method = self.buf[1];
                self.buf.drain(..2);
                match (method, &self.credentials) {
                    (0x00, _) => {
                        self.out = self.connect_request();
                        self.state = State::Reply;
                    }
                    (0x02, Some((u, p))) => {
                        let mut a = vec![1, u.len() as u8];
                        a.extend_from_slice(u.as_bytes());
                        a.push(p.len() as u8);
                        a.extend_from_slice(p.as_bytes());
                        self.out = a;
                        self.state = State::Auth;
                    }
                    (0xFF, None) => {
                        return Err(TunnelError::refused(
                            "SOCKS5 proxy refused: it requires authentication (no acceptable method; put user:password in the proxy URL)",
                        ))
                    }
                    (0xFF, Some(_)) => {
                        return Err(TunnelError::refused("SOCKS5 proxy refused: no acceptable authentication method"))
                    }
                    (m, _) => {
                        return Err(TunnelError::broken(format!("SOCKS5: the proxy chose method {m}, which was not offered")))
                    }
                }
                Ok(Progress::NeedMore)
            }
            State::Auth => {
                if self.buf.len() < 2 {
                    return Ok(Progress::NeedMore);
                }
                let status = self.buf[1];
                self.buf.drain(..2);
                if status != 0 {
                    return Err(TunnelError::refused(format!(
                        "SOCKS5 proxy refused: username/password authentication failed (status {status})"
                    )));
                }
                self.out = self.connect_request();
                self.state = State::Reply;
                Ok(Progress::NeedMore)
            }
            State::Reply => {
                if self.buf.len() < 5 {
                    return Ok(Progress::NeedMore);
                }
                if self.buf[0] != 5 {
                    return Err(TunnelError::broken("SOCKS5: bad reply version"));
                }
                let code = self.buf[1];
                if code != 0 {
                    return Err(TunnelError::refused(format!(
                        "SOCKS5 proxy refused the connection: reply {code} ({})",
                        reply_reason(code)
                    )));
                }
                let len = match self.buf[3] {
                    1 => 4 + 4 + 2,
                    4 => 4 + 16 + 2,
                    3 => 4 + 1 + self.buf[4] as usize + 2,
                    t => return Err(TunnelError::broken(format!("SOCKS5: bad address type {t} in the reply"))),
                };
                if self.buf.len() < len {
                    return Ok(Progress::NeedMore);
                }
                Ok(Progress::Done { leftover: self.buf[len..].to_vec() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks5h_with_auth_sends_the_name() {
        let mut t = Socks5::new(Destination::Name("ex.org".into(), 443), Some(("u", "pw"))).unwrap();
        assert_eq!(t.output(), vec![5, 2, 0, 2]);
        assert_eq!(t.feed(&[5, 2]).unwrap(), Progress::NeedMore);
        assert_eq!(t.output(), vec![1, 1, b'u', 2, b'p', b'w']);
        assert_eq!(t.feed(&[1, 0]).unwrap(), Progress::NeedMore);
        let req = t.output();
        assert_eq!(&req[..5], &[5, 1, 0, 3, 6]);
        assert_eq!(&req[5..11], b"ex.org");
        assert_eq!(&req[11..], &443u16.to_be_bytes());
        assert_eq!(t.feed(&[5, 0, 0, 1, 127, 0]).unwrap(), Progress::NeedMore);
        assert_eq!(t.feed(&[0, 1, 0, 80, b'z']).unwrap(), Progress::Done { leftover: b"z".to_vec() });
    }

    #[test]
    fn refusals_name_the_code() {
        let mut t = Socks5::new(Destination::Addr("10.0.0.1:80".parse().unwrap()), None).unwrap();
        t.output();
        t.feed(&[5, 0]).unwrap();
        assert_eq!(t.output()[3], 1);
        let e = t.feed(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert!(e.refused && e.message.contains("connection refused"), "{}", e.message);
        let mut t = Socks5::new(Destination::Name("h".into(), 1), None).unwrap();
        t.output();
        assert!(t.feed(&[5, 0xFF]).unwrap_err().message.contains("requires authentication"));
        let mut t = Socks5::new(Destination::Name("h".into(), 1), Some(("u", "p"))).unwrap();
        t.output();
        t.feed(&[5, 2]).unwrap();
        assert!(t.feed(&[1, 1]).unwrap_err().message.contains("authentication failed"));
    }
}
