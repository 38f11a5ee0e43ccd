//! The blocking way to a byte stream to the target: TCP (to the target or
//! the proxy), TLS to an HTTPS proxy, the tunnel handshake, then TLS to a
//! `wss://` target. One deadline covers all of it. The tunnel machine and
//! the error wording are shared with the event loop's non-blocking dial.

use std::time::{Duration, Instant};

use super::http_connect::HttpConnect;
use super::socks5::{Destination, Socks5};
use super::url::{ProxyKind, ProxyUrl};
use super::{HttpRefusal, Progress, Tunnel, TunnelError};
use crate::error::{Error, ErrorKind};
use crate::transport::connect::{connect_tcp, resolve};
use crate::transport::tls::TlsClientConfig;
use crate::transport::Stream;

/// How long to keep reading the body of a proxy's refusal once its head is in.
pub const REFUSAL_BODY_WAIT: Duration = Duration::from_millis(500);

/// Where a dial goes.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    /// `Some` for `wss://`: TLS to the target (inside the tunnel, if any).
    pub tls: Option<&'a TlsClientConfig>,
}

/// A proxy and how to talk to it.
pub struct Via<'a> {
    pub proxy: &'a ProxyUrl,
    /// Verifies an HTTPS proxy's certificate.
    pub tls: &'a TlsClientConfig,
    /// Extra headers for the CONNECT request.
    pub headers: &'a [(String, String)],
}

#[derive(Debug)]
pub struct OpenError {
    pub error: Error,
    /// An HTTP proxy's refusal, for the caller's response object.
    pub refusal: Option<HttpRefusal>,
}

impl From<Error> for OpenError {
    fn from(error: Error) -> Self {
        OpenError { error, refusal: None }
    }
}

/// Connects to `target`, through `via` when given, by `deadline`.
pub fn open(target: &Target<'_>, via: Option<&Via<'_>>, deadline: Option<Instant>) -> Result<Stream, OpenError> {
    let stream = match via {
        None => connect_tcp(target.host, target.port, deadline)?,
        Some(v) => tunnel(target, v, deadline)?,
    };
    match target.tls {
        Some(cfg) => Ok(stream.start_tls_client(cfg, target.host, deadline)?),
        None => Ok(stream),
    }
}

/// An error that names the proxy (the password is never shown).
pub fn proxy_error(p: &ProxyUrl, kind: ErrorKind, what: &str) -> OpenError {
    OpenError { error: Error::new(kind, format!("proxy {p}: {what}")), refusal: None }
}

/// The tunnel handshake to `host:port` through `p` (CONNECT with `headers`,
/// or SOCKS5). For `socks5://` the target's name is resolved here, with
/// the system resolver (blocking); `socks5h://` sends the name.
pub fn tunnel_machine(
    host: &str,
    port: u16,
    p: &ProxyUrl,
    headers: &[(String, String)],
) -> Result<Box<dyn Tunnel + Send>, OpenError> {
    let creds = p.credentials();
    Ok(match p.kind {
        ProxyKind::Http | ProxyKind::Https => Box::new(HttpConnect::new(host, port, creds, headers)),
        ProxyKind::Socks5 => {
            let addr = resolve(host, port)?[0];
            Box::new(Socks5::new(Destination::Addr(addr), creds).map_err(|e| tunnel_error(p, e))?)
        }
        ProxyKind::Socks5h => {
            Box::new(Socks5::new(Destination::Name(host.to_string(), port), creds).map_err(|e| tunnel_error(p, e))?)
        }
    })
}

fn tunnel(target: &Target<'_>, via: &Via<'_>, deadline: Option<Instant>) -> Result<Stream, OpenError> {
    let p = via.proxy;
    let stream = connect_tcp(&p.host, p.port, deadline).map_err(|e| {
        let kind = if e.kind() == ErrorKind::Timeout { ErrorKind::Timeout } else { ErrorKind::Proxy };
        proxy_error(p, kind, &format!("cannot connect: {}", e.message()))
    })?;
    let stream = if p.kind == ProxyKind::Https {
        stream
            .start_tls_client(via.tls, &p.host, deadline)
            .map_err(|e| proxy_error(p, ErrorKind::Proxy, e.message()))?
    } else {
        stream
    };
    let mut machine = tunnel_machine(target.host, target.port, p, via.headers)?;
    let mut chunk = [0u8; 4096];
    loop {
        let out = machine.output();
        if !out.is_empty() {
            stream
                .write_all_until(&out, deadline)
                .map_err(|e| proxy_error(p, io_kind(&e), &format!("sending the tunnel request: {e}")))?;
        }
        let pending = machine.pending_refusal();
        let until = match &pending {
            Some(_) => {
                Some(deadline.map_or(Instant::now() + REFUSAL_BODY_WAIT, |d| d.min(Instant::now() + REFUSAL_BODY_WAIT)))
            }
            None => deadline,
        };
        let n = match stream.read_until(&mut chunk, until) {
            Ok(0) => match pending {
                Some(refusal) => return Err(tunnel_error(p, refusal)),
                None => {
                    return Err(proxy_error(p, ErrorKind::Proxy, "closed the connection during the tunnel handshake"))
                }
            },
            Ok(n) => n,
            Err(e) => match pending {
                Some(refusal) => return Err(tunnel_error(p, refusal)),
                None => return Err(proxy_error(p, io_kind(&e), &format!("waiting for its answer: {e}"))),
            },
        };
        match machine.feed(&chunk[..n]) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done { leftover }) if leftover.is_empty() => return Ok(stream),
            Ok(Progress::Done { leftover }) => {
                return Err(proxy_error(
                    p,
                    ErrorKind::Proxy,
                    &format!("sent {} bytes after opening the tunnel, before the client spoke", leftover.len()),
                ))
            }
            Err(e) => return Err(tunnel_error(p, e)),
        }
    }
}

/// A wait that ran out is a timeout; any other I/O failure is the proxy's.
pub fn io_kind(e: &std::io::Error) -> ErrorKind {
    if e.kind() == std::io::ErrorKind::TimedOut {
        ErrorKind::Timeout
    } else {
        ErrorKind::Proxy
    }
}

/// A failed tunnel handshake: `ProxyRefused` when the proxy said no.
pub fn tunnel_error(p: &ProxyUrl, e: TunnelError) -> OpenError {
    let kind = if e.refused { ErrorKind::ProxyRefused } else { ErrorKind::Proxy };
    OpenError { error: Error::new(kind, format!("proxy {p}: {}", e.message)), refusal: e.http }
}
