//! TLS inside the sans-IO session: the caller's bytes in and out are
//! ciphertext, the WebSocket side of the session sees plaintext.
//!
//! `TlsSession` (sans-IO itself) does the work: the ciphertext the caller
//! has not transmitted yet is its output queue (which holds no memory once
//! drained), and decrypted bytes are appended to the session's input
//! buffer. Plaintext the session queued is sealed lazily, when the caller
//! looks at its output, so a burst of sends becomes one pass through rustls.

use crate::error::{Error, ErrorKind, Result};
use crate::transport::tls::{TlsClientConfig, TlsFailure, TlsServerConfig, TlsSession};

pub(super) struct SessionTls {
    tls: TlsSession,
    /// close_notify is queued (or must not be: after a TLS failure).
    notified: bool,
    /// Who the peer is, for a handshake timeout's message.
    peer: String,
}

/// What feeding ciphertext gave.
pub(super) struct Opened {
    /// The decrypted bytes (possibly none: handshake records only).
    pub plaintext: Vec<u8>,
    /// The peer sent close_notify: no more input will come.
    pub closed: bool,
}

impl SessionTls {
    /// A TLS client for `host` (SNI and the name the certificate must carry).
    pub fn client(config: &TlsClientConfig, host: &str) -> Result<SessionTls> {
        Ok(SessionTls::over(TlsSession::client(config, host)?, host))
    }

    /// A TLS server with the configuration's current certificate.
    pub fn server(config: &TlsServerConfig) -> Result<SessionTls> {
        Ok(SessionTls::over(TlsSession::server(config)?, "the client"))
    }

    fn over(mut tls: TlsSession, peer: &str) -> SessionTls {
        // The session's own output queue is the limit (the caller drains
        // it), so rustls takes every plaintext byte it is given.
        tls.set_unlimited_output();
        SessionTls { tls, notified: false, peer: peer.to_string() }
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// The error for a handshake deadline that passed while TLS was still
    /// negotiating (the blocking dial's wording).
    pub fn handshake_timeout(&self) -> Error {
        let f = crate::transport::tls::error::handshake_timeout(&self.peer);
        Error::new(ErrorKind::Tls, f.message)
    }

    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.tls.peer_certificates()
    }

    /// Encrypts `plaintext` (all of it) into the output queue; once
    /// `finished`, a close_notify goes after it.
    pub fn seal(&mut self, plaintext: &[u8], finished: bool) {
        if !plaintext.is_empty() {
            let taken = self.tls.write_plaintext(plaintext);
            debug_assert_eq!(taken, plaintext.len(), "the output is unlimited");
        }
        if finished && !self.notified {
            self.notified = true;
            self.tls.send_close_notify();
        }
    }

    /// The ciphertext not transmitted yet (call `seal` first).
    pub fn pending(&self) -> &[u8] {
        self.tls.ciphertext()
    }

    /// `n` bytes of `pending` went out; true when all of it has.
    pub fn sent(&mut self, n: usize) -> Result<bool> {
        if n > self.tls.pending_ciphertext() {
            return Err(Error::invalid("sent more bytes than were pending"));
        }
        // An emptied queue gives its memory back (to the TLS buffer pool).
        self.tls.consume_ciphertext(n);
        Ok(!self.tls.wants_write())
    }

    /// Ciphertext bytes waiting for the caller.
    pub fn backlog(&self) -> usize {
        self.tls.pending_ciphertext()
    }

    /// Feeds received ciphertext and collects what it decrypts to (into
    /// `into`, cleared first, so a caller can reuse its buffer). A TLS
    /// failure leaves its alert queued for `seal` and ends TLS here.
    pub fn open(&mut self, mut data: &[u8], mut into: Vec<u8>) -> std::result::Result<Opened, TlsFailure> {
        into.clear();
        let mut closed = false;
        loop {
            let taken = match self.tls.feed(data) {
                Ok(t) => t,
                Err(f) => return Err(self.failed(f)),
            };
            data = &data[taken..];
            closed |= self.drain_plaintext(&mut into)?;
            // `feed` stops early only when decrypted bytes wait (read
            // above), so each round makes progress.
            if data.is_empty() || closed {
                return Ok(Opened { plaintext: into, closed });
            }
        }
    }

    fn failed(&mut self, f: TlsFailure) -> TlsFailure {
        self.notified = true; // an alert, not close_notify
        f
    }

    /// The transport ended: what remains decrypted, and whether the peer
    /// had said close_notify (false: a truncation, or a record that failed).
    pub fn end(&mut self, into: &mut Vec<u8>) -> bool {
        self.tls.feed_eof();
        self.drain_plaintext(into).unwrap_or(false)
    }

    /// Appends every decrypted byte to `into`; true at the peer's
    /// close_notify. A record that fails to decrypt is a failure (its
    /// alert queued), as in `feed`.
    fn drain_plaintext(&mut self, into: &mut Vec<u8>) -> std::result::Result<bool, TlsFailure> {
        loop {
            match self.tls.read_plaintext_append(into) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) => {
                    return match TlsFailure::from_io(&e) {
                        Some(f) => Err(self.failed(f.clone())),
                        // WouldBlock: nothing more yet; UnexpectedEof: the
                        // transport ended without close_notify.
                        None => Ok(false),
                    };
                }
            }
        }
    }
}

/// The session error for a TLS failure: its status and its reason.
pub(super) fn tls_error(f: &TlsFailure) -> Error {
    Error::new(ErrorKind::from(f.kind), f.message.clone())
}
