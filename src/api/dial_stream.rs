//! The one place where a blocking dial gets its byte stream: the proxy
//! choice (explicit, none, or the environment's), then
//! `transport::proxy::open` (TCP, proxy tunnel, TLS). A proxy's HTTP
//! refusal becomes the dial's response, so callers see its status and body.

use std::time::Instant;

use super::dialer::{DialError, DialRequest, Dialer};
use super::http::Response;
use crate::proto::handshake;
use crate::transport::proxy::open::Via;
use crate::transport::proxy::{self, ProxyChoice, Target};
use crate::transport::Stream;

pub(crate) fn open_stream(d: &Dialer, req: &DialRequest, deadline: Option<Instant>) -> Result<Stream, DialError> {
    let from_env;
    let chosen = match &d.proxy {
        ProxyChoice::Direct => None,
        ProxyChoice::Fixed(p) => Some(p),
        ProxyChoice::Environment => {
            from_env = proxy::from_environment(&req.host, req.port, req.secure)?;
            from_env.as_ref()
        }
    };
    let target = Target { host: &req.host, port: req.port, tls: req.secure.then_some(&d.tls) };
    let via = chosen.map(|p| Via { proxy: p, tls: &d.tls, headers: &d.proxy_headers });
    proxy::open(&target, via.as_ref(), deadline).map_err(|e| {
        let response = e.refusal.and_then(|r| match handshake::Response::parse(&r.head) {
            Ok(Some((head, _))) => Some(Response { head, body: r.body }),
            _ => None,
        });
        DialError { error: e.error, response }
    })
}
