//! The one place where a dial chooses its proxy (explicit, none, or the
//! environment's), and where a blocking dial gets its byte stream:
//! `transport::proxy::open` (TCP, proxy tunnel, TLS). A proxy's HTTP
//! refusal becomes the dial's response, so callers see its status and body.
//! The event loop's dial uses the same choice and refusal response.

use std::time::Instant;

use super::dialer::{DialError, DialRequest, Dialer};
use super::http::Response;
use crate::error::Result;
use crate::proto::handshake;
use crate::transport::proxy::open::Via;
use crate::transport::proxy::{self, HttpRefusal, ProxyChoice, ProxyUrl, Target};
use crate::transport::Stream;

/// The proxy `d` uses for `req`: its explicit one, none, or the
/// environment's (read now, matched against `NO_PROXY`).
pub(crate) fn choose_proxy(d: &Dialer, req: &DialRequest) -> Result<Option<ProxyUrl>> {
    match &d.proxy {
        ProxyChoice::Direct => Ok(None),
        ProxyChoice::Fixed(p) => Ok(Some(p.clone())),
        ProxyChoice::Environment => proxy::from_environment(&req.host, req.port, req.secure),
    }
}

/// An HTTP proxy's refusal as the dial's response (status, headers, body).
pub(crate) fn refusal_response(r: HttpRefusal) -> Option<Response> {
    match handshake::Response::parse(&r.head) {
        Ok(Some((head, _))) => Some(Response { head, body: r.body }),
        _ => None,
    }
}

pub(crate) fn open_stream(
    d: &Dialer,
    req: &DialRequest,
    deadline: Option<Instant>,
) -> std::result::Result<Stream, DialError> {
    let chosen = choose_proxy(d, req)?;
    let target = Target { host: &req.host, port: req.port, tls: req.secure.then_some(&d.tls) };
    let via = chosen.as_ref().map(|p| Via { proxy: p, tls: &d.tls, headers: &d.proxy_headers });
    proxy::open(&target, via.as_ref(), deadline)
        .map_err(|e| DialError { error: e.error, response: e.refusal.and_then(refusal_response) })
}
