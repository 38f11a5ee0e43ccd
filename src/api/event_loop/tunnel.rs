//! The proxy tunnel stage of a loop dial: the sans-IO tunnel machine
//! (`proxy::http_connect` or `socks5`) driven over the non-blocking stream
//! to the proxy (under TLS for an HTTPS proxy, whose handshake runs inside
//! these writes and reads). Errors are worded and classified as the
//! blocking dial's (`transport::proxy::open`).

use std::io::ErrorKind as IoKind;
use std::time::Instant;

use crate::api::dial_stream::refusal_response;
use crate::api::http::Response;
use crate::error::{Error, ErrorKind};
use crate::transport::proxy::open::{io_kind, proxy_error, tunnel_error, OpenError, REFUSAL_BODY_WAIT};
use crate::transport::proxy::{Progress, ProxyKind, ProxyUrl, Tunnel, TunnelError};
use crate::transport::tls::TlsFailure;
use crate::transport::Stream;

pub(super) struct LoopTunnel {
    pub proxy: ProxyUrl,
    machine: Box<dyn Tunnel + Send>,
    /// Bytes of the machine's current output not written yet.
    out: Vec<u8>,
    written: usize,
    /// Set when a refusal's head is in while its body is still coming:
    /// the refusal is reported by then at the latest.
    pub refusal_by: Option<Instant>,
}

pub(super) enum TunnelStep {
    /// Wait for the socket (a readiness edge will come).
    Wait,
    /// The tunnel is open and nothing arrived after the proxy's answer.
    Open,
    Failed(Error, Option<Response>),
}

fn failed(e: OpenError) -> TunnelStep {
    TunnelStep::Failed(e.error, e.refusal.and_then(refusal_response))
}

impl LoopTunnel {
    pub fn new(proxy: ProxyUrl, machine: Box<dyn Tunnel + Send>) -> LoopTunnel {
        LoopTunnel { proxy, machine, out: Vec::new(), written: 0, refusal_by: None }
    }

    /// Whether the proxy connection starts with TLS to the proxy.
    pub fn proxy_tls(&self) -> bool {
        self.proxy.kind == ProxyKind::Https
    }

    /// An I/O failure on the proxy connection: a TLS failure there (the
    /// HTTPS proxy's certificate) names its reason, as the blocking dial's.
    fn io_failure(&self, what: &str, e: std::io::Error) -> TunnelStep {
        let err = match TlsFailure::from_io(&e) {
            Some(f) => proxy_error(&self.proxy, ErrorKind::Proxy, &f.message),
            None => proxy_error(&self.proxy, io_kind(&e), &format!("{what}: {e}")),
        };
        failed(err)
    }

    fn refused(&self, e: TunnelError) -> TunnelStep {
        failed(tunnel_error(&self.proxy, e))
    }

    /// The TCP connect to the proxy failed (`e` from the connect stage).
    pub fn connect_failed(&self, e: &Error) -> Error {
        let kind = if e.kind() == ErrorKind::Timeout { ErrorKind::Timeout } else { ErrorKind::Proxy };
        proxy_error(&self.proxy, kind, &format!("cannot connect: {}", e.message())).error
    }

    /// Writes the machine's output and feeds it the proxy's answer, as far
    /// as the socket allows without waiting.
    pub fn advance(&mut self, stream: &Stream, now: Instant) -> TunnelStep {
        loop {
            if self.written == self.out.len() {
                self.out = self.machine.output();
                self.written = 0;
            }
            while self.written < self.out.len() {
                match stream.write(&self.out[self.written..]) {
                    Ok(n) => self.written += n,
                    Err(e) if e.kind() == IoKind::WouldBlock => return TunnelStep::Wait,
                    Err(e) if e.kind() == IoKind::Interrupted => {}
                    Err(e) => return self.io_failure("sending the tunnel request", e),
                }
            }
            match stream.flush() {
                Ok(true) => {}
                Ok(false) => return TunnelStep::Wait,
                Err(e) => return self.io_failure("sending the tunnel request", e),
            }
            let mut chunk = [0u8; 4096];
            let n = match stream.read(&mut chunk) {
                Ok(0) => {
                    return match self.machine.pending_refusal() {
                        Some(r) => self.refused(r),
                        None => failed(proxy_error(
                            &self.proxy,
                            ErrorKind::Proxy,
                            "closed the connection during the tunnel handshake",
                        )),
                    }
                }
                Ok(n) => n,
                Err(e) if e.kind() == IoKind::WouldBlock => {
                    if self.machine.pending_refusal().is_some() && self.refusal_by.is_none() {
                        self.refusal_by = Some(now + REFUSAL_BODY_WAIT);
                    }
                    return TunnelStep::Wait;
                }
                Err(e) if e.kind() == IoKind::Interrupted => continue,
                Err(e) => {
                    return match self.machine.pending_refusal() {
                        Some(r) => self.refused(r),
                        None => self.io_failure("waiting for its answer", e),
                    }
                }
            };
            match self.machine.feed(&chunk[..n]) {
                Ok(Progress::NeedMore) => {}
                Ok(Progress::Done { leftover }) if leftover.is_empty() => return TunnelStep::Open,
                Ok(Progress::Done { leftover }) => {
                    return failed(proxy_error(
                        &self.proxy,
                        ErrorKind::Proxy,
                        &format!("sent {} bytes after opening the tunnel, before the client spoke", leftover.len()),
                    ))
                }
                Err(e) => return self.refused(e),
            }
        }
    }

    /// The dial's deadline (or the refusal's body wait) passed in this
    /// stage: a refusal already in is reported as such, else a timeout
    /// (for an HTTPS proxy whose TLS handshake is not through, the TLS
    /// handshake timeout, as a proxy error like the blocking dial's).
    pub fn expired(&self, stream: &Stream) -> (Error, Option<Response>) {
        if let Some(r) = self.machine.pending_refusal() {
            let e = tunnel_error(&self.proxy, r);
            return (e.error, e.refusal.and_then(refusal_response));
        }
        if self.proxy_tls() && stream.tls_handshaking() {
            let f = crate::transport::tls::error::handshake_timeout(&self.proxy.host);
            return (proxy_error(&self.proxy, ErrorKind::Proxy, &f.message).error, None);
        }
        (proxy_error(&self.proxy, ErrorKind::Timeout, "waiting for its answer: handshake timeout").error, None)
    }
}
