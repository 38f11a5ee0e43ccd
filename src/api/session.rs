//! A sans-IO connection: the engine's third driver, for programs that own
//! their sockets or their whole I/O (the C API's `ws_session`). Both
//! roles, the opening handshake included. The caller feeds received bytes
//! (`recv`), takes the bytes to transmit (`pending` + `sent`), and calls
//! `on_timeout` when `next_timeout` comes; events go to a
//! [`SessionHandler`] during `recv`/`on_timeout`, whose message data is
//! borrowed (zero-copy) for the call.
//!
//! No protocol decision is made here: the handshake is the Upgrader's and
//! Dialer's (through the client handshake state machine), everything
//! after it the engine's halves, close state and deadlines.
//!
//! TLS: with a TLS server configuration on the Upgrader, or a `wss://`
//! URL for a client (the Dialer's TLS settings), the session runs TLS
//! itself (`session_tls.rs`): the bytes fed and the bytes pending are then
//! ciphertext, and the handshake deadline covers the TLS handshake too.
//!
//! Single-threaded: one thread at a time. A handler may send (queue) from
//! inside a callback; calling `recv` from inside one is refused (`Busy`).

use std::cell::{Cell, RefCell};
use std::time::Instant;

use super::dialer::{bad_response_msg, DialRequest, Dialer};
use super::http::{Request, Response};
use super::prepared::PreparedMessage;
use super::session_tls::{tls_error, SessionTls};
use super::upgrader::{Upgrader, Verdict};
use crate::error::{Error, ErrorKind, Result};
use crate::proto::close;
use crate::proto::engine::close_state::after_close_sent;
use crate::proto::engine::send::split_close;
use crate::proto::engine::{
    CloseCell, ControlPayload, Deadlines, Phase, Plan, RecvEvent, RecvHalf, RecvSink, Refusal, SendHalf, TcpAfterClose,
    TimeoutAction, TimeoutConfig,
};
use crate::proto::frame::MAX_HEADER_LEN;
use crate::proto::handshake;
use crate::proto::handshake::client::{ClientHandshake, ResponseHead};
use crate::proto::kind::MessageType;
use crate::proto::Role;

/// Output above this counts as backed up: a ping's pong is then kept (the
/// latest only) until the caller took the output.
const BACKED_UP: usize = 64 * 1024;

/// What happened, for the handler.
pub enum SessionEvent<'a> {
    /// The opening handshake completed: the client's request (server
    /// role) or the server's response (client role).
    Open {
        request: Option<&'a Request>,
        response: Option<&'a Response>,
    },
    Message {
        kind: MessageType,
        data: &'a [u8],
    },
    /// A ping (its pong is queued).
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer's close frame (the echo is queued).
    Close {
        code: u16,
        reason: &'a [u8],
    },
    /// The session failed (a protocol violation with its close code
    /// queued, a refused handshake with its HTTP answer queued, a
    /// timeout); it is finished.
    Error(&'a Error),
}

pub trait SessionHandler {
    fn on_event(&mut self, session: &Session, event: SessionEvent<'_>);
}

enum Handshake {
    Server { upgrader: Box<Upgrader>, buf: Vec<u8> },
    Client { hs: ClientHandshake, request: DialRequest, dialer: Box<Dialer> },
    Open(Box<RecvHalf>),
    Over,
}

struct Tx {
    send: SendHalf,
    out: Vec<u8>,
    sent: usize,
}

pub struct Session {
    role: Role,
    rx: RefCell<Handshake>,
    tx: RefCell<Tx>,
    close: CloseCell,
    deadlines: Cell<Deadlines>,
    timeouts: Cell<TimeoutConfig>,
    read_limit: u64,
    level: i32,
    threshold: usize,
    /// The caller should close the socket once the output is taken.
    finished: Cell<bool>,
    peer_closed: Cell<bool>,
    /// Received bytes are copied here to be unmasked in place (reused).
    inbuf: RefCell<Vec<u8>>,
    /// One message buffer kept between messages that needed assembling.
    spare: RefCell<Vec<u8>>,
    /// TLS below the WebSocket bytes, when configured.
    tls: RefCell<Option<Box<SessionTls>>>,
    /// What the opening handshake agreed on ("" / false until then), for
    /// hosts that report it (the Python binding's asyncio connections).
    subprotocol: RefCell<std::ffi::CString>,
    deflate: Cell<bool>,
    /// A client's refused answer (a status other than 101, or a 101 that
    /// failed the checks), kept for the host's error report.
    refused: RefCell<Option<Box<Response>>>,
}

/// A message buffer larger than this is not kept between messages.
const SPARE_MAX: usize = 1024 * 1024;

impl Session {
    fn new(
        role: Role,
        hs: Handshake,
        handshake_deadline: Option<Instant>,
        cfg: &super::ConnConfig,
        tls: Option<SessionTls>,
        now: Instant,
    ) -> Session {
        let mut d = Deadlines::new(now);
        d.set_handshake_deadline(handshake_deadline);
        Session {
            role,
            rx: RefCell::new(hs),
            tx: RefCell::new(Tx { send: SendHalf::new(role), out: Vec::new(), sent: 0 }),
            close: CloseCell::default(),
            deadlines: Cell::new(d),
            timeouts: Cell::new(TimeoutConfig {
                ping_interval: None,
                pong_timeout: std::time::Duration::from_secs(10),
                close_timeout: std::time::Duration::from_secs(5),
                idle_timeout: None,
            }),
            read_limit: cfg.read_limit,
            level: cfg.compression_level,
            threshold: cfg.compression_threshold,
            finished: Cell::new(false),
            peer_closed: Cell::new(false),
            inbuf: RefCell::new(Vec::new()),
            spare: RefCell::new(Vec::new()),
            tls: RefCell::new(tls.map(Box::new)),
            subprotocol: RefCell::new(std::ffi::CString::default()),
            deflate: Cell::new(false),
            refused: RefCell::new(None),
        }
    }

    /// A server session: the first bytes fed are the client's request
    /// (under TLS when the Upgrader has a TLS configuration: its current
    /// certificate; `TlsConfig` when that cannot be used).
    pub fn server(upgrader: &Upgrader, now: Instant) -> Result<Session> {
        let deadline = upgrader.handshake_timeout.and_then(|t| now.checked_add(t));
        let tls = upgrader.tls.as_ref().map(SessionTls::server).transpose()?;
        let hs = Handshake::Server { upgrader: Box::new(upgrader.clone()), buf: Vec::new() };
        Ok(Session::new(Role::Server, hs, deadline, &upgrader.conn, tls, now))
    }

    /// A client session for `url` (the caller connects TCP to its host
    /// and port; the Dialer's proxy is not used): the request is pending
    /// output at once. For `wss://` TLS runs inside the session with the
    /// Dialer's TLS settings (SNI and verification for the URL's host), and
    /// the ClientHello is what is pending first.
    pub fn client(dialer: &Dialer, url: &str, now: Instant) -> Result<Session> {
        let mut request = dialer.prepare_request(url, &[])?;
        let tls = request.secure.then(|| SessionTls::client(&dialer.tls, &request.host)).transpose()?;
        let mut hs = ClientHandshake::new(std::mem::take(&mut request.bytes), false, false);
        hs.layer_ready(); // the caller's transport is connected
        let request_bytes = hs.to_send().to_vec();
        hs.sent(request_bytes.len());
        let deadline = dialer.handshake_timeout.and_then(|t| now.checked_add(t));
        let s = Session::new(
            Role::Client,
            Handshake::Client { hs, request, dialer: Box::new(dialer.clone()) },
            deadline,
            &dialer.conn,
            tls,
            now,
        );
        s.tx.borrow_mut().out = request_bytes;
        Ok(s)
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The subprotocol the handshake agreed on ("" when none or not open yet).
    pub fn subprotocol(&self) -> std::cell::Ref<'_, std::ffi::CStr> {
        std::cell::Ref::map(self.subprotocol.borrow(), |c| c.as_c_str())
    }

    /// A client's refused handshake answer (head only: the session reads
    /// no body), once `on_event` reported the failure.
    pub fn refused_response(&self) -> Option<std::cell::Ref<'_, Response>> {
        std::cell::Ref::filter_map(self.refused.borrow(), |r| r.as_deref()).ok()
    }

    /// Whether permessage-deflate was negotiated.
    pub fn compression_negotiated(&self) -> bool {
        self.deflate.get()
    }

    /// Keepalive (ping after `interval` without input, fail after
    /// `pong_timeout` more), the close-handshake timeout, the idle timeout.
    pub fn set_timeouts(&self, cfg: TimeoutConfig) {
        self.timeouts.set(cfg);
    }

    pub fn is_open(&self) -> bool {
        self.close.phase() == Phase::Open
    }

    /// The caller should close the socket once `wants_write` is false.
    pub fn is_finished(&self) -> bool {
        self.finished.get()
    }

    pub fn wants_read(&self) -> bool {
        !self.finished.get()
    }

    pub fn wants_write(&self) -> bool {
        if self.is_tls() {
            // Sealing now also queues the close_notify a finished session owes.
            return self.with_pending(|b| !b.is_empty());
        }
        let tx = self.tx.borrow();
        tx.sent < tx.out.len()
    }

    /// Whether the session runs TLS (bytes in and out are ciphertext).
    pub fn is_tls(&self) -> bool {
        self.tls.borrow().is_some()
    }

    /// The TLS peer's certificate chain (leaf first, DER), once the TLS
    /// handshake got that far; `None` without TLS or when it sent none.
    pub fn tls_peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.tls.borrow().as_ref().and_then(|t| t.peer_certificates())
    }

    /// Under TLS: encrypts the queued plaintext into the ciphertext the
    /// caller transmits (a close_notify after the last bytes once the
    /// session is finished).
    fn seal(&self) {
        let mut tls = self.tls.borrow_mut();
        let Some(t) = tls.as_mut() else { return };
        let mut tx = self.tx.borrow_mut();
        t.seal(&tx.out[tx.sent..], self.finished.get());
        tx.out.clear();
        tx.sent = 0;
    }

    /// The bytes to transmit (valid until the next call on the session).
    pub fn pending(&self) -> (*const u8, usize) {
        self.with_pending(|b| (b.as_ptr(), b.len()))
    }

    /// Calls `f` with the bytes to transmit.
    pub fn with_pending<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        self.seal();
        if let Some(t) = self.tls.borrow().as_ref() {
            return f(t.pending());
        }
        let tx = self.tx.borrow();
        f(&tx.out[tx.sent..])
    }

    /// `n` of the pending bytes went out.
    pub fn sent(&self, n: usize) -> Result<()> {
        if let Some(t) = self.tls.borrow_mut().as_mut() {
            if t.sent(n)? {
                // Everything went out: a pong kept while backed up now.
                let mut tx = self.tx.borrow_mut();
                let Tx { send, out, .. } = &mut *tx;
                if self.close.phase() == Phase::Open {
                    send.flush_owed(out);
                }
            }
            return Ok(());
        }
        let mut tx = self.tx.borrow_mut();
        if n > tx.out.len() - tx.sent {
            return Err(Error::invalid("sent more bytes than were pending"));
        }
        tx.sent += n;
        if tx.sent == tx.out.len() {
            tx.out.clear();
            tx.sent = 0;
            let Tx { send, out, .. } = &mut *tx;
            if self.close.phase() == Phase::Open {
                send.flush_owed(out);
            }
        }
        Ok(())
    }

    /// Whether the caller is behind on taking the output (plaintext not
    /// sealed yet and ciphertext not taken yet both count).
    fn backed_up(&self, tx: &Tx) -> bool {
        let wire = self.tls.borrow().as_ref().map_or(0, |t| t.backlog());
        tx.out.len() - tx.sent + wire > BACKED_UP
    }

    fn encode(
        &self,
        f: impl FnOnce(&mut SendHalf, &mut Vec<u8>) -> std::result::Result<(), crate::proto::engine::Invalid>,
    ) -> Result<()> {
        let mut tx = self.tx.borrow_mut();
        let Tx { send, out, .. } = &mut *tx;
        f(send, out).map_err(|e| Error::invalid(e.0))
    }

    /// Queues a whole message (text, binary, or a control type).
    pub fn send(&self, kind: MessageType, data: &[u8]) -> Result<()> {
        if kind == MessageType::Close {
            let (code, reason) = split_close(data).map_err(|e| Error::invalid(e.0))?;
            return self.close(code, reason);
        }
        self.close.phase().check_send().map_err(refusal)?;
        self.encode(|send, out| send.message(kind, data, out))
    }

    /// For a driver that transmits a large message from its own memory
    /// (one writev, no copy into the output): when the data message can
    /// go out as the caller's bytes behind a header (unmasked, so the
    /// server role; not compressed; no TLS; no output pending), returns
    /// that header; the session keeps nothing of the message (a data
    /// frame changes no state of a server session). The caller then
    /// transmits the header and the `len` payload bytes before any output
    /// the session makes later. `None`: it cannot go out so, and nothing
    /// was queued ([`Session::send`] encodes it).
    pub fn send_head(&self, kind: MessageType, len: usize) -> Result<Option<([u8; MAX_HEADER_LEN], usize)>> {
        if kind.is_control() {
            return Err(Error::invalid("send_head takes a text or binary message"));
        }
        self.close.phase().check_send().map_err(refusal)?;
        if self.tls.borrow().is_some() {
            return Ok(None);
        }
        let tx = self.tx.borrow();
        if tx.sent != tx.out.len() {
            return Ok(None);
        }
        Ok(match tx.send.plan(kind, len) {
            Plan::Direct { header, len } => Some((header, len)),
            Plan::Encode => None,
        })
    }

    /// Queues a prepared message (compressed once per setting, shared).
    pub fn send_prepared(&self, pm: &PreparedMessage) -> Result<()> {
        if pm.kind() == MessageType::Close {
            return self.send(pm.kind(), pm.data());
        }
        self.close.phase().check_send().map_err(refusal)?;
        let compressed = |level, bits| std::borrow::Cow::Owned(pm.compressed(level, bits).to_vec());
        self.encode(|send, out| send.prepared(pm.kind(), pm.data(), compressed, out))
    }

    /// Starts the close handshake (1005: an empty close frame).
    pub fn close(&self, code: u16, reason: &[u8]) -> Result<()> {
        SendHalf::check_close(code, reason).map_err(|e| Error::invalid(e.0))?;
        self.close.begin_close().map_err(refusal)?;
        self.encode(|send, out| send.close(code, reason, out))?;
        self.after_our_close();
        Ok(())
    }

    fn after_our_close(&self) {
        match after_close_sent(self.role, self.peer_closed.get()) {
            TcpAfterClose::ShutdownNow => self.finished.set(true),
            TcpAfterClose::AwaitPeer => {
                let mut d = self.deadlines.get();
                d.close_started(Instant::now(), &self.timeouts.get());
                self.deadlines.set(d);
            }
        }
    }

    /// When `on_timeout` is next due (None: not until something happens).
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.finished.get() {
            return None;
        }
        self.deadlines.get().next_timeout(&self.timeouts.get(), self.is_open())
    }

    /// Runs what is due at `now`: keepalive ping, pong timeout, idle close,
    /// close and handshake timeouts.
    pub fn on_timeout(&self, now: Instant, h: &mut dyn SessionHandler) {
        if self.finished.get() {
            return;
        }
        let mut d = self.deadlines.get();
        let action = d.on_timeout(now, &self.timeouts.get(), self.is_open(), self.peer_closed.get());
        if action == Some(TimeoutAction::SendPing) {
            d.ping_sent(now);
        }
        self.deadlines.set(d);
        match action {
            None => {}
            Some(TimeoutAction::SendPing) => {
                let _ = self.send(MessageType::Ping, b"");
            }
            Some(TimeoutAction::CloseIdle) => {
                let _ = self.close(close::GOING_AWAY, b"idle timeout");
            }
            Some(TimeoutAction::EndQuietly) => self.finished.set(true),
            Some(TimeoutAction::Fail(_)) if self.tls.borrow().as_ref().is_some_and(|t| t.is_handshaking()) => {
                // The TLS handshake is not through: no HTTP answer can go out.
                if let Ok(mut rx) = self.rx.try_borrow_mut() {
                    *rx = Handshake::Over;
                }
                let e = self.tls.borrow().as_ref().map(|t| t.handshake_timeout());
                self.fail(e.unwrap_or_else(|| Error::new(ErrorKind::Tls, "TLS: handshake timeout")), h)
            }
            Some(TimeoutAction::Fail(why)) => {
                // A server still reading the request answers 408, as the
                // Listener and the loop do.
                if let Ok(mut rx) = self.rx.try_borrow_mut() {
                    if let Handshake::Server { upgrader, .. } = &*rx {
                        let rej = handshake::Rejection::new(408, "websocket: handshake timeout");
                        if let Verdict::Reject { response, .. } = upgrader.reject(None, rej) {
                            self.tx.borrow_mut().out.extend_from_slice(&response);
                        }
                        *rx = Handshake::Over;
                    }
                }
                self.fail(Error::new(ErrorKind::Timeout, why), h)
            }
        }
    }

    fn fail(&self, e: Error, h: &mut dyn SessionHandler) {
        self.finished.set(true);
        self.close.end();
        h.on_event(self, SessionEvent::Error(&e));
    }

    /// The transport reached its end (TCP FIN or the caller's decision).
    pub fn recv_eof(&self, h: &mut dyn SessionHandler) {
        if self.finished.get() {
            return;
        }
        // Under TLS, records decrypted but not read yet come first.
        let rest = self.tls.borrow_mut().as_mut().map(|t| {
            let mut rest = Vec::new();
            t.end(&mut rest);
            rest
        });
        if let Some(rest) = rest.filter(|r| !r.is_empty()) {
            if let Ok(mut rx) = self.rx.try_borrow_mut() {
                let _ = self.recv_bytes(&mut rx, rest, Instant::now(), h);
            }
        }
        self.end_of_input(h);
    }

    /// No more input: finished; an error unless the close handshake passed.
    fn end_of_input(&self, h: &mut dyn SessionHandler) {
        if self.finished.replace(true) {
            return;
        }
        self.close.end();
        if !self.peer_closed.get() {
            let e = Error::new(ErrorKind::Closed, "the peer closed the connection without a close frame");
            h.on_event(self, SessionEvent::Error(&e));
        }
    }

    /// `recv` over a buffer the caller lets the session change: frames are
    /// unmasked in place and a message that arrived whole is delivered
    /// from `data` itself, without the copy `recv` makes. Only the open,
    /// plaintext phase runs in place; the handshake and TLS take the copy
    /// path (their bytes are parsed or decrypted into the session anyway).
    pub fn recv_in_place(&self, data: &mut [u8], now: Instant, h: &mut dyn SessionHandler) -> Result<()> {
        let mut rx =
            self.rx.try_borrow_mut().map_err(|_| Error::new(ErrorKind::Busy, "recv called from a callback"))?;
        let in_place = matches!(&*rx, Handshake::Open(_)) && self.tls.borrow().is_none();
        if !in_place {
            drop(rx);
            return self.recv(data, now, h);
        }
        if self.finished.get() || data.is_empty() {
            return Ok(());
        }
        self.note_read(now);
        match &mut *rx {
            Handshake::Open(recv) => self.process_open(recv, data, now, h),
            _ => Ok(()),
        }
    }

    /// Bytes arrived: the idle and keepalive deadlines count from `now`.
    fn note_read(&self, now: Instant) {
        let mut d = self.deadlines.get();
        d.on_read(now);
        self.deadlines.set(d);
    }

    /// Feeds received bytes; events go to `h` during the call.
    pub fn recv(&self, data: &[u8], now: Instant, h: &mut dyn SessionHandler) -> Result<()> {
        let mut rx =
            self.rx.try_borrow_mut().map_err(|_| Error::new(ErrorKind::Busy, "recv called from a callback"))?;
        if self.finished.get() || data.is_empty() {
            return Ok(());
        }
        self.note_read(now);
        let mut input = std::mem::take(&mut *self.inbuf.borrow_mut());
        // Under TLS the borrow ends before any callback, which may look
        // at the output (and so seal).
        let opened = self.tls.borrow_mut().as_mut().map(|t| t.open(data, std::mem::take(&mut input)));
        match opened {
            None => {
                input.clear();
                input.extend_from_slice(data);
                self.recv_bytes(&mut rx, input, now, h)
            }
            Some(Err(f)) => {
                // The alert is queued: pending shows it, then the session is done.
                *rx = Handshake::Over;
                self.fail(tls_error(&f), h);
                Ok(())
            }
            Some(Ok(o)) => {
                if !o.plaintext.is_empty() {
                    self.recv_bytes(&mut rx, o.plaintext, now, h)?;
                } else {
                    *self.inbuf.borrow_mut() = o.plaintext;
                }
                if o.closed {
                    // The peer's close_notify: its end of the stream.
                    drop(rx);
                    self.end_of_input(h);
                }
                Ok(())
            }
        }
    }

    /// Runs the receive half over input of the open connection, then
    /// queues the close echo it owes.
    fn process_open(
        &self,
        recv: &mut RecvHalf,
        input: &mut [u8],
        now: Instant,
        h: &mut dyn SessionHandler,
    ) -> Result<()> {
        let mut sink = Sink { session: self, handler: h, now };
        if let Err(pe) = recv.process(input, &mut sink) {
            return self.protocol_failure(pe, h);
        }
        while recv.backlogged() {
            let mut sink = Sink { session: self, handler: h, now };
            if let Err(pe) = recv.resume(&mut sink) {
                return self.protocol_failure(pe, h);
            }
        }
        // The pongs went out from the sink already (see `Ping`).
        if let Some(code) = recv.take_close_echo() {
            if self.is_open() {
                let _ = self.close(code, b"");
            } else {
                self.after_our_close();
            }
        }
        Ok(())
    }

    fn recv_bytes(
        &self,
        rx: &mut Handshake,
        mut input: Vec<u8>,
        now: Instant,
        h: &mut dyn SessionHandler,
    ) -> Result<()> {
        loop {
            match &mut *rx {
                Handshake::Over => return Ok(()),
                Handshake::Open(recv) => {
                    let r = self.process_open(recv, &mut input, now, h);
                    if input.capacity() <= SPARE_MAX {
                        input.clear();
                        *self.inbuf.borrow_mut() = input;
                    }
                    return r;
                }
                Handshake::Server { upgrader, buf } => {
                    buf.extend_from_slice(&input);
                    let parsed = handshake::Request::parse(buf);
                    let (verdict, req, len) = match parsed {
                        Ok(None) => return Ok(()),
                        Ok(Some((head, len))) => {
                            let req = Request { head, remote_addr: None };
                            (upgrader.decide(&req, &[]), Some(req), len)
                        }
                        Err(rej) => (upgrader.reject(None, rej), None, 0),
                    };
                    input = buf.split_off(len.min(buf.len()));
                    match verdict {
                        Verdict::Accept { response, deflate, subprotocol } => {
                            self.tx.borrow_mut().out.extend_from_slice(&response);
                            self.set_subprotocol(subprotocol);
                            *rx = self.open(deflate.as_ref(), now);
                            if let Some(req) = &req {
                                h.on_event(self, SessionEvent::Open { request: Some(req), response: None });
                            }
                        }
                        Verdict::Reject { response, error } => {
                            self.tx.borrow_mut().out.extend_from_slice(&response);
                            *rx = Handshake::Over;
                            self.fail(error, h);
                            return Ok(());
                        }
                    }
                }
                Handshake::Client { hs, request, dialer } => {
                    let ResponseHead { head, after } = match hs.received(&input) {
                        Ok(None) => return Ok(()),
                        Ok(Some(r)) => r,
                        Err(m) => {
                            *rx = Handshake::Over;
                            self.fail(bad_response_msg(&m), h);
                            return Ok(());
                        }
                    };
                    input = after;
                    let resp = Response { head, body: Vec::new() };
                    match dialer.check_response(request, &resp.head) {
                        Ok((subprotocol, deflate)) => {
                            self.set_subprotocol(subprotocol);
                            *rx = self.open(deflate.as_ref(), now);
                            h.on_event(self, SessionEvent::Open { request: None, response: Some(&resp) });
                        }
                        Err(e) => {
                            *rx = Handshake::Over;
                            *self.refused.borrow_mut() = Some(Box::new(resp));
                            self.fail(e, h);
                            return Ok(());
                        }
                    }
                }
            }
            if input.is_empty() {
                return Ok(());
            }
        }
    }

    fn set_subprotocol(&self, name: String) {
        // A token (RFC 6455 4.3) never holds NUL; keep "" if one somehow did.
        *self.subprotocol.borrow_mut() = std::ffi::CString::new(name).unwrap_or_default();
    }

    fn open(&self, deflate: Option<&crate::proto::deflate::Agreement>, now: Instant) -> Handshake {
        self.deflate.set(deflate.is_some());
        if let Some(a) = deflate {
            self.tx.borrow_mut().send.set_deflate(a, self.level, self.threshold);
        }
        let mut d = self.deadlines.get();
        d.handshake_done(now);
        self.deadlines.set(d);
        self.close.open();
        Handshake::Open(Box::new(RecvHalf::new(self.role, self.read_limit, deflate)))
    }

    fn protocol_failure(&self, pe: crate::proto::ProtoError, h: &mut dyn SessionHandler) -> Result<()> {
        if self.close.begin_close().is_ok() {
            let _ = self.encode(|send, out| send.close(pe.close_code(), pe.close_reason(), out));
        }
        let e =
            Error::new(ErrorKind::from(pe.kind), format!("websocket: {} (sent close {})", pe.message, pe.close_code()));
        self.fail(e, h);
        Ok(())
    }
}

struct Sink<'a> {
    session: &'a Session,
    handler: &'a mut dyn SessionHandler,
    now: Instant,
}

impl RecvSink for Sink<'_> {
    fn on_event(&mut self, ev: RecvEvent<'_>) -> bool {
        let s = self.session;
        let event = match ev {
            RecvEvent::Message { kind, data } => {
                let mut d = s.deadlines.get();
                d.on_message(self.now);
                s.deadlines.set(d);
                SessionEvent::Message { kind, data }
            }
            RecvEvent::Ping(p) => {
                // Every ping is answered (Autobahn 2.10, 5.6); the engine
                // keeps only the latest one while the output is backed up.
                if s.is_open() {
                    let mut tx = s.tx.borrow_mut();
                    let backed = s.backed_up(&tx);
                    let Tx { send, out, .. } = &mut *tx;
                    send.owe_pong(ControlPayload::new(p), backed, out);
                }
                SessionEvent::Ping(p)
            }
            RecvEvent::Pong(p) => {
                let mut d = s.deadlines.get();
                d.on_pong();
                s.deadlines.set(d);
                SessionEvent::Pong(p)
            }
            RecvEvent::Close { code, reason } => {
                s.peer_closed.set(true);
                SessionEvent::Close { code, reason: reason.as_bytes() }
            }
        };
        self.handler.on_event(s, event);
        !s.finished.get() || s.close.phase() != Phase::Closed
    }

    fn take_buffer(&mut self, _need: usize) -> Vec<u8> {
        std::mem::take(&mut *self.session.spare.borrow_mut())
    }

    fn give_buffer(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= SPARE_MAX {
            *self.session.spare.borrow_mut() = buf;
        }
    }
}

fn refusal(r: Refusal) -> Error {
    match r {
        Refusal::NotOpen => Error::invalid("the session is not open yet (wait for the open event)"),
        Refusal::CloseSent => Error::new(ErrorKind::CloseSent, r.message()),
        Refusal::Closed => Error::new(ErrorKind::LocallyClosed, r.message()),
    }
}
