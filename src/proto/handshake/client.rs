//! The client side of the opening handshake as a state machine, shared by
//! the blocking `Dialer` and the event loop's dial (the server side's is
//! `api::server_handshake::PendingHandshake`).
//!
//! A client connection passes these stages in order:
//!
//! ```text
//! Transport (TCP connect) -> Tunnel (proxy CONNECT) -> Tls -> Request -> Response -> Open
//! ```
//!
//! The tunnel and TLS are byte layers owned by `transport/` (a proxy
//! client, rustls); this machine only keeps their place, so every driver
//! runs them in the same order: a stage that is not configured is skipped,
//! and the driver calls [`ClientHandshake::layer_ready`] when a configured
//! layer is through. The WebSocket request and response are handled here:
//! bytes to write, bytes read, the response head parsed (bounded by
//! [`MAX_HEAD_LEN`]) with the bytes after it kept for the connection.

use super::response::Response;
use super::MAX_HEAD_LEN;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for the TCP connect to complete.
    Transport,
    /// A proxy tunnel is being set up (by the driver's proxy layer).
    Tunnel,
    /// TLS is being negotiated (by the driver's TLS layer).
    Tls,
    /// The WebSocket request is being written.
    Request,
    /// Waiting for the response head.
    Response,
    /// The response head arrived (see [`ClientHandshake::received`]).
    Done,
}

#[derive(Debug)]
pub struct ClientHandshake {
    stage: Stage,
    tunnel: bool,
    tls: bool,
    request: Vec<u8>,
    written: usize,
    buf: Vec<u8>,
}

/// The response head and the bytes that followed it (the first frames,
/// or the start of an error body).
#[derive(Debug)]
pub struct ResponseHead {
    pub head: Response,
    pub after: Vec<u8>,
}

impl ClientHandshake {
    /// `request`: the request bytes (`write_request_with_extensions`);
    /// `tunnel`/`tls`: whether those layers come first.
    pub fn new(request: Vec<u8>, tunnel: bool, tls: bool) -> ClientHandshake {
        ClientHandshake { stage: Stage::Transport, tunnel, tls, request, written: 0, buf: Vec::new() }
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    fn after(&self, stage: Stage) -> Stage {
        match stage {
            Stage::Transport if self.tunnel => Stage::Tunnel,
            Stage::Transport | Stage::Tunnel if self.tls => Stage::Tls,
            Stage::Transport | Stage::Tunnel | Stage::Tls => Stage::Request,
            Stage::Request => Stage::Response,
            Stage::Response | Stage::Done => Stage::Done,
        }
    }

    /// The TCP connect completed (`Transport`), or the driver's tunnel or
    /// TLS layer is through: on to the next configured stage.
    pub fn layer_ready(&mut self) {
        if matches!(self.stage, Stage::Transport | Stage::Tunnel | Stage::Tls) {
            self.stage = self.after(self.stage);
        }
    }

    /// The request bytes still to write (empty outside `Request`).
    pub fn to_send(&self) -> &[u8] {
        if self.stage == Stage::Request {
            &self.request[self.written..]
        } else {
            &[]
        }
    }

    /// `n` bytes of [`ClientHandshake::to_send`] went out.
    pub fn sent(&mut self, n: usize) {
        if self.stage != Stage::Request {
            return;
        }
        self.written = (self.written + n).min(self.request.len());
        if self.written == self.request.len() {
            self.stage = Stage::Response;
        }
    }

    /// Bytes read while in `Response`. `Ok(Some)` once the head is
    /// complete (the stage is then `Done`); `Err` for a malformed or
    /// oversized head.
    pub fn received(&mut self, bytes: &[u8]) -> Result<Option<ResponseHead>, String> {
        if self.stage != Stage::Response {
            return Err("websocket: bad handshake: bytes before the request was sent".into());
        }
        self.buf.extend_from_slice(bytes);
        match Response::parse(&self.buf)? {
            Some((head, len)) => {
                self.stage = Stage::Done;
                let after = self.buf.split_off(len);
                self.buf = Vec::new();
                Ok(Some(ResponseHead { head, after }))
            }
            None if self.buf.len() > MAX_HEAD_LEN => {
                Err(format!("websocket: bad handshake: response head larger than {MAX_HEAD_LEN} bytes"))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESP: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";

    #[test]
    fn stages_in_order_with_and_without_layers() {
        let mut h = ClientHandshake::new(b"GET".to_vec(), true, true);
        assert_eq!(h.to_send(), b"");
        for want in [Stage::Tunnel, Stage::Tls, Stage::Request] {
            h.layer_ready();
            assert_eq!(h.stage(), want);
        }
        let mut h = ClientHandshake::new(b"GET".to_vec(), false, true);
        h.layer_ready();
        assert_eq!(h.stage(), Stage::Tls);
        let mut h = ClientHandshake::new(b"GET / x".to_vec(), false, false);
        h.layer_ready();
        assert_eq!(h.to_send(), b"GET / x");
        h.sent(3);
        assert_eq!(h.to_send(), b" / x");
        h.sent(4);
        assert_eq!(h.stage(), Stage::Response);
    }

    #[test]
    fn the_response_at_every_split_keeps_the_bytes_after_it() {
        for split in 0..RESP.len() {
            let mut h = ClientHandshake::new(b"GET".to_vec(), false, false);
            h.layer_ready();
            h.sent(3);
            let head_len = RESP.len() - 2;
            let (got, expect_after) = match h.received(&RESP[..split]).unwrap() {
                Some(r) => (r, &RESP[head_len..split]),
                None => (h.received(&RESP[split..]).unwrap().expect("complete"), &RESP[head_len..]),
            };
            assert_eq!(got.head.status, 101);
            assert_eq!(got.after, expect_after, "split {split}");
            assert_eq!(h.stage(), Stage::Done);
        }
    }

    #[test]
    fn oversized_and_malformed_heads_fail() {
        let mut h = ClientHandshake::new(Vec::new(), false, false);
        assert!(h.received(b"HTTP/1.1 101").is_err()); // request not sent yet
        let mut h = ClientHandshake::new(b"G".to_vec(), false, false);
        h.layer_ready();
        h.sent(1);
        assert!(h.received(b"NOT HTTP\r\n\r\n").is_err());
        let mut h = ClientHandshake::new(b"G".to_vec(), false, false);
        h.layer_ready();
        h.sent(1);
        let mut e = Ok(None);
        for _ in 0..(MAX_HEAD_LEN / 1000 + 2) {
            e = h.received(&[b'a'; 1000]);
            if e.is_err() {
                break;
            }
        }
        assert!(e.is_err());
    }
}
