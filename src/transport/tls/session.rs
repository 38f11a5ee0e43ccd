//! The sans-IO TLS layer: no sockets, only bytes.
//!
//! Ciphertext from the wire goes in with [`TlsSession::feed`] (or straight
//! from a socket with [`TlsSession::read_tls`]), plaintext comes out of
//! [`TlsSession::read_plaintext`]; plaintext to send goes in with
//! [`TlsSession::write_plaintext`] and ciphertext for the wire comes out of
//! [`TlsSession::write_ciphertext`] / [`TlsSession::take_ciphertext`] /
//! [`TlsSession::ciphertext`] whenever [`TlsSession::wants_write`] says so
//! (also during the handshake and after an error, when an alert is
//! queued). The blocking stream, the event loop and a sans-IO WebSocket
//! session drive the same type.
//!
//! It runs rustls's unbuffered API: the received records, the records to
//! send and the rest of a record the caller had no room for live in
//! buffers of ours that hold memory only while they hold bytes (see
//! `buffers.rs`), so an idle session keeps none. rustls's buffered
//! `Connection` keeps a 4 KiB receive buffer for good once it was used.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use pki_types::ServerName;
use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::CommonState;

use super::buffers::Buf;
use super::config::{TlsClientConfig, TlsServerConfig};
use super::error::{describe, TlsFailure};
use super::records::{step, Goal, Side, Step};
use crate::error::{Error, ErrorKind, Result};

/// The ciphertext queue's limit, as rustls's buffered API had it: a write
/// takes plaintext while less than this is waiting for the socket.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// Received ciphertext taken while decrypted bytes wait to be read.
const INPUT_LIMIT: usize = 64 * 1024;

/// The least room a socket read gets (a read fills what the buffer has).
const READ_ROOM: usize = 4 * 1024;

enum Conn {
    Client(UnbufferedClientConnection),
    Server(UnbufferedServerConnection),
}

impl Conn {
    fn common(&self) -> &CommonState {
        match self {
            Conn::Client(c) => c,
            Conn::Server(s) => s,
        }
    }
}

pub struct TlsSession {
    conn: Conn,
    /// Received records not processed yet.
    incoming: Buf,
    side: Side,
    /// A decrypted record waits inside rustls (reached while feeding).
    record_waiting: bool,
    /// rustls holds no part of a handshake message in `incoming`, so it may
    /// be shown an empty buffer: true right after an application data
    /// record (rustls refuses one inside a handshake message). Writing then
    /// leaves the records behind it unprocessed instead of decrypting them
    /// all first.
    aligned: bool,
    /// The transport ended.
    eof: bool,
    /// The last socket read in `read_tls` got less than it asked for (or
    /// nothing): the kernel had no more then.
    socket_drained: bool,
    failure: Option<TlsFailure>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, Conn::Server(_)))
            .field("handshaking", &self.is_handshaking())
            .finish()
    }
}

impl TlsSession {
    /// A client session for `host` (the SNI name and the name the
    /// certificate must carry; an IP address is checked as an IP SAN and
    /// sends no SNI). The ClientHello is ready in `take_ciphertext` at once.
    pub fn client(config: &TlsClientConfig, host: &str) -> Result<TlsSession> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| Error::new(ErrorKind::BadUrl, format!("{host:?} is not a valid TLS server name")))?;
        let conn = UnbufferedClientConnection::new(config.rustls()?, name)
            .map_err(|e| Error::new(ErrorKind::TlsConfig, format!("TLS client: {e}")))?;
        let mut s = TlsSession::over(Conn::Client(conn));
        s.progress().map_err(|f| Error::new(ErrorKind::TlsConfig, f.message))?;
        Ok(s)
    }

    pub fn server(config: &TlsServerConfig) -> Result<TlsSession> {
        Self::server_with(config.rustls()?)
    }

    pub fn server_with(config: Arc<rustls::ServerConfig>) -> Result<TlsSession> {
        let conn = UnbufferedServerConnection::new(config)
            .map_err(|e| Error::new(ErrorKind::TlsConfig, format!("TLS server: {e}")))?;
        Ok(TlsSession::over(Conn::Server(conn)))
    }

    fn over(conn: Conn) -> TlsSession {
        TlsSession {
            conn,
            incoming: Buf::new(),
            side: Side { limit: Some(OUTPUT_LIMIT), ..Side::default() },
            record_waiting: false,
            aligned: false,
            eof: false,
            socket_drained: false,
            failure: None,
        }
    }

    /// One `process_tls_records` call and its state handled. `empty` shows
    /// rustls no received records (only when `aligned`).
    fn run(&mut self, goal: &mut Goal<'_>, empty: bool) -> Step {
        let TlsSession { conn, incoming, side, .. } = self;
        let mut none: [u8; 0] = [];
        let records: &mut [u8] = if empty { &mut none } else { incoming.data_mut() };
        let (discard, step) = match conn {
            Conn::Client(c) => step(c.process_tls_records(records), side, goal),
            Conn::Server(s) => step(s.process_tls_records(records), side, goal),
        };
        if !empty {
            self.incoming.consume(discard);
        }
        step
    }

    /// Records a failure: rustls queued the alert for the peer (if any),
    /// which moves to the output; the rest of the input is dropped.
    fn fail(&mut self, e: rustls::Error) -> TlsFailure {
        let f = describe(&e);
        self.failure = Some(f.clone());
        self.side.failed = true;
        self.record_waiting = false;
        self.incoming.release();
        // rustls hands out what it queued (EncodeTlsData) before it looks
        // at any record, so the records need not be shown: looking at them
        // again could meet the same bad record twice.
        while self.conn.common().wants_write() {
            match self.run(&mut Goal::Progress, true) {
                Step::Again => {}
                _ => break,
            }
        }
        f
    }

    /// Processes the received records until decrypted data waits or more
    /// input is needed.
    fn progress(&mut self) -> std::result::Result<(), TlsFailure> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        while !self.record_waiting {
            match self.run(&mut Goal::Progress, false) {
                Step::Again => {}
                Step::RecordWaiting => {
                    self.record_waiting = true;
                    self.aligned = true;
                    let owed = !self.side.queued.is_empty() || self.side.close_wanted && !self.side.close_sent;
                    if owed && !self.is_handshaking() {
                        // What was written during the handshake goes now (as
                        // rustls's buffered API sends it the moment the
                        // handshake allows), but rustls offers writing only
                        // once no decrypted record waits: a write of nothing
                        // moves the record aside and flushes.
                        self.write_plaintext_vectored(&[]);
                        if let Some(f) = &self.failure {
                            return Err(f.clone());
                        }
                    }
                }
                Step::Failed(e) => return Err(self.fail(e)),
                _ => {
                    self.aligned = self.incoming.is_empty();
                    break;
                }
            }
        }
        if self.side.peer_closed {
            // "Any data received after a closure alert has been received
            // MUST be ignored" (RFC 8446, 6.1).
            self.incoming.release();
        }
        Ok(())
    }

    /// No received bytes, no decrypted record, nothing rustls owes the
    /// peer, the handshake over and the stream still open: a read can only
    /// be `WouldBlock`.
    fn nothing_to_read(&self) -> bool {
        self.incoming.is_empty()
            && !self.record_waiting
            && !self.eof
            && !self.side.peer_closed
            && !self.conn.common().wants_write()
            && !self.is_handshaking()
    }

    fn plaintext_waiting(&self) -> bool {
        self.record_waiting || !self.side.rest.is_empty()
    }

    /// Takes ciphertext. Returns how much was consumed: less than all of it
    /// only when decrypted plaintext is waiting to be read (read it, then
    /// feed the rest). A protocol failure is returned once the alert for
    /// the peer is queued (flush it, then drop the connection).
    pub fn feed(&mut self, data: &[u8]) -> std::result::Result<usize, TlsFailure> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        let take = if self.plaintext_waiting() {
            data.len().min(INPUT_LIMIT.saturating_sub(self.incoming.len()))
        } else {
            data.len()
        };
        self.incoming.extend(&data[..take]);
        self.progress()?;
        Ok(take)
    }

    /// Reads ciphertext from `r` (once) straight into the receive buffer:
    /// for a socket, no copy through a buffer of the caller's. Call it when
    /// `read_plaintext` says `WouldBlock`. `Ok(0)`: end of stream (call
    /// `feed_eof`). During the handshake the records are processed at once
    /// (a TLS failure then comes back as an `InvalidData` error carrying
    /// the [`TlsFailure`], once its alert is queued); after it, the next
    /// `read_plaintext` processes them: it decrypts a record and hands its
    /// plaintext over in one `process_tls_records` call, where processing
    /// here first would take two (about 350 instructions each, a quarter
    /// of a 16-byte message's echo over TLS when a record carries one).
    pub fn read_tls(&mut self, r: &mut dyn Read) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(f.clone().into_io());
        }
        let room = self.incoming.room(READ_ROOM);
        let asked = room.len();
        let res = r.read(room);
        self.socket_drained = match &res {
            Ok(n) => *n < asked,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        };
        match res {
            Ok(n) if n > 0 => {
                self.incoming.commit(n);
                if self.is_handshaking() {
                    self.progress().map_err(TlsFailure::into_io)?;
                }
            }
            // An idle connection's read ends here: keep no buffer.
            _ if self.incoming.is_empty() => self.incoming.release(),
            _ => {}
        }
        res
    }

    /// Whether a reader may wait for the next readable edge: the last
    /// socket read of [`TlsSession::read_tls`] found the socket drained (it
    /// got less than it asked for), and nothing received waits for a read:
    /// no decrypted bytes, and no end (close_notify, TCP end) or failure
    /// that only the next read reports. A burst of records ending in a
    /// close_notify or a corrupted record, with nothing sent after it,
    /// would otherwise leave its end unseen until the peer sent more.
    pub fn socket_drained(&self) -> bool {
        self.socket_drained
            && !self.plaintext_waiting()
            && !self.side.peer_closed
            && !self.eof
            && self.failure.is_none()
    }

    /// The peer closed the transport (TCP end of stream).
    pub fn feed_eof(&mut self) {
        self.eof = true;
    }

    /// Decrypted bytes: `WouldBlock` when none are there yet, `Ok(0)` after
    /// the peer's close_notify, `UnexpectedEof` after a transport end
    /// without one, `InvalidData` carrying the [`TlsFailure`] when a record
    /// fails (its alert is then queued).
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.side.rest.is_empty() {
            return Ok(self.side.rest.read_into(buf));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        self.read_with(&mut Goal::Read(buf))
    }

    /// Like [`TlsSession::read_plaintext`], appending every decrypted byte
    /// to `out` (no zeroed buffer of the caller's in between).
    pub fn read_plaintext_append(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut n = 0;
        if !self.side.rest.is_empty() {
            n = self.side.rest.len();
            out.extend_from_slice(self.side.rest.data());
            self.side.rest.release();
        }
        loop {
            match self.read_with(&mut Goal::Append(out)) {
                Ok(0) if n > 0 => return Ok(n),
                Ok(k) if k > 0 => n += k,
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
                other => return other,
            }
        }
    }

    fn read_with(&mut self, goal: &mut Goal<'_>) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(f.clone().into_io());
        }
        if self.nothing_to_read() {
            // What `run` would find: each `process_tls_records` call costs
            // about 350 instructions even with no record, and a reader asks
            // once more after every record (3 % of a 16-byte echo).
            return Err(io::ErrorKind::WouldBlock.into());
        }
        loop {
            match self.run(goal, false) {
                Step::Again => {}
                Step::Read(n) => {
                    self.record_waiting = false;
                    self.aligned = true;
                    if n > 0 {
                        return Ok(n);
                    }
                }
                Step::Failed(e) => return Err(self.fail(e).into_io()),
                _ => {
                    self.aligned = self.incoming.is_empty();
                    if self.side.peer_closed {
                        self.incoming.release();
                        return Ok(0);
                    }
                    if self.eof {
                        // A partial record can never complete now.
                        self.incoming.release();
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "peer closed connection without sending TLS close_notify",
                        ));
                    }
                    return Err(io::ErrorKind::WouldBlock.into());
                }
            }
        }
    }

    /// Queues plaintext for sending (buffered until the handshake is done);
    /// returns how much was taken (less when the ciphertext queue is at its
    /// limit: flush, then write the rest). After a failure the bytes are
    /// dropped (and counted as taken): nothing but the alert goes out.
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        self.write_plaintext_vectored(&[IoSlice::new(data)])
    }

    pub fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let take: usize = bufs.iter().map(|b| b.len()).sum();
        let owed = !self.side.queued.is_empty() || self.side.close_wanted && !self.side.close_sent;
        if take == 0 && !owed {
            return 0;
        }
        if self.failure.is_some() {
            return take;
        }
        let mut goal = Goal::Write { bufs, take };
        loop {
            let empty = self.aligned || self.incoming.is_empty();
            match self.run(&mut goal, empty) {
                Step::Wrote(n) => return n,
                Step::Failed(e) => {
                    self.fail(e);
                    return take;
                }
                Step::Again => {
                    // Decrypted data moved to `rest` (rustls offers writing
                    // only when none waits).
                    self.record_waiting = false;
                }
                _ => return 0,
            }
        }
    }

    /// Lifts the ciphertext queue's limit (for a session whose output is
    /// another session's input: that side limits instead).
    pub fn set_unlimited_output(&mut self) {
        self.side.limit = None;
    }

    pub fn wants_write(&self) -> bool {
        !self.side.out.is_empty()
    }

    /// Ciphertext bytes waiting for the transport.
    pub fn pending_ciphertext(&self) -> usize {
        self.side.out.len()
    }

    /// Plaintext taken during the handshake and not encrypted yet.
    pub fn pending_plaintext(&self) -> usize {
        self.side.queued.len()
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.common().is_handshaking()
    }

    /// The failure that ended this session, if one did.
    pub fn failure(&self) -> Option<&TlsFailure> {
        self.failure.as_ref()
    }

    /// Writes queued ciphertext into `w` (one write; a partial write keeps
    /// the rest queued).
    pub fn write_ciphertext(&mut self, w: &mut dyn Write) -> io::Result<usize> {
        if self.side.out.is_empty() {
            return Ok(0);
        }
        let n = w.write(self.side.out.data())?;
        self.side.out.consume(n);
        Ok(n)
    }

    /// The queued ciphertext (take it with [`TlsSession::consume_ciphertext`]).
    pub fn ciphertext(&self) -> &[u8] {
        self.side.out.data()
    }

    /// `n` bytes of [`TlsSession::ciphertext`] went out.
    pub fn consume_ciphertext(&mut self, n: usize) {
        self.side.out.consume(n.min(self.side.out.len()));
    }

    /// Appends all queued ciphertext to `out`.
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.side.out.data());
        self.side.out.release();
    }

    /// Queues a close_notify alert (during the handshake: once it is done,
    /// as rustls allows application records only then).
    pub fn send_close_notify(&mut self) {
        if self.failure.is_some() || self.side.close_wanted {
            return;
        }
        self.side.close_wanted = true;
        // A write of nothing: it reaches the writable state (moving data
        // waiting to be read aside first), where the alert is queued.
        self.write_plaintext_vectored(&[]);
    }

    /// The peer's certificate chain (leaf first, DER), once the handshake
    /// got that far; `None` when it presented none.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.conn.common().peer_certificates().map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
    }

    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.common().alpn_protocol()
    }

    /// "TLSv1_3" or "TLSv1_2" once negotiated.
    pub fn protocol_version(&self) -> Option<String> {
        self.conn.common().protocol_version().map(|v| format!("{v:?}"))
    }

    /// Heap bytes this session's buffers hold now (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.incoming.capacity() + self.side.out.capacity() + self.side.rest.capacity() + self.side.queued.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tls::TlsFailureKind;

    /// A client and a server session with nothing between them but byte
    /// copies: the handshake completes, data flows both ways, ALPN is
    /// http/1.1. The certificates are made by openssl for this run.
    fn pump(a: &mut TlsSession, b: &mut TlsSession) {
        for _ in 0..10 {
            let mut out = Vec::new();
            a.take_ciphertext(&mut out);
            let n = b.feed(&out).unwrap();
            assert_eq!(n, out.len());
            let mut back = Vec::new();
            b.take_ciphertext(&mut back);
            let n = a.feed(&back).unwrap();
            assert_eq!(n, back.len());
            if !a.is_handshaking() && !b.is_handshaking() && !a.wants_write() && !b.wants_write() {
                return;
            }
        }
    }

    #[test]
    fn sans_io_round_trip() {
        let (ca, cert, key) = test_certs::make();
        let server_cfg = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut client_cfg = TlsClientConfig::default();
        client_cfg.add_ca_pem(ca.as_bytes()).unwrap();
        let mut c = TlsSession::client(&client_cfg, "localhost").unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        pump(&mut c, &mut s);
        assert!(!c.is_handshaking());
        assert_eq!(c.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_eq!(c.write_plaintext(b"hello"), 5);
        pump(&mut c, &mut s);
        let mut buf = [0u8; 16];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(s.read_plaintext(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn garbage_is_a_handshake_failure_with_a_reason() {
        let (_ca, cert, key) = test_certs::make();
        let server_cfg = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        let err = s.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err();
        assert_eq!(err.kind, TlsFailureKind::Handshake);
        assert!(err.message.contains("not TLS"), "{}", err.message);
        // The alert for the peer is queued.
        assert!(s.wants_write());
    }

    fn client_cfg(ca: &str) -> TlsClientConfig {
        let mut c = TlsClientConfig::default();
        c.add_ca_pem(ca.as_bytes()).unwrap();
        c
    }

    /// A client and a server session, handshake done.
    fn pair() -> (TlsSession, TlsSession) {
        let (ca, cert, key) = test_certs::make();
        let server_cfg = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut c = TlsSession::client(&client_cfg(&ca), "localhost").unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        pump(&mut c, &mut s);
        assert!(!c.is_handshaking() && !s.is_handshaking());
        (c, s)
    }

    /// Moves `from`'s ciphertext into `to` (all of it: `to` reads between
    /// feeds) and returns what `to` decrypted.
    fn deliver(from: &mut TlsSession, to: &mut TlsSession) -> Vec<u8> {
        let mut wire = Vec::new();
        from.take_ciphertext(&mut wire);
        let mut got = Vec::new();
        let mut off = 0;
        loop {
            off += to.feed(&wire[off..]).unwrap();
            match to.read_plaintext_append(&mut got) {
                Ok(_) => {}
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            if off == wire.len() && !to.plaintext_waiting() {
                return got;
            }
        }
    }

    /// `socket_drained` follows the last socket read: short (or
    /// `WouldBlock`) is drained, a read that filled what it asked for is
    /// not. And with nothing received, a read is `WouldBlock` without
    /// asking rustls, while a partial record waits for its rest.
    #[test]
    fn a_short_socket_read_is_drained_and_a_full_one_is_not() {
        let (mut c, mut s) = pair();
        c.write_plaintext(b"hello");
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        // The first half of the record: a short read, no plaintext yet.
        let half = wire.len() / 2;
        let mut r: &[u8] = &wire[..half];
        assert_eq!(s.read_tls(&mut r).unwrap(), half);
        assert!(s.socket_drained());
        assert_eq!(s.read_plaintext(&mut [0; 16]).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut r: &[u8] = &wire[half..];
        s.read_tls(&mut r).unwrap();
        let mut buf = [0; 16];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(s.read_plaintext(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        // A reader that fills every byte asked for: not drained.
        struct Endless;
        impl Read for Endless {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                b.fill(0x17);
                Ok(b.len())
            }
        }
        let _ = s.read_tls(&mut Endless);
        assert!(!s.socket_drained());
        struct Empty;
        impl Read for Empty {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
        let (_c, mut s) = pair();
        assert!(s.read_tls(&mut Empty).is_err());
        assert!(s.socket_drained());
    }

    /// A short socket read whose records end in a close_notify or a
    /// corrupted record is not "drained": the end or the failure is for
    /// the next read to report, and no new edge may ever come.
    #[test]
    fn an_end_or_failure_behind_the_data_keeps_the_reader_reading() {
        let (mut c, mut s) = pair();
        c.write_plaintext(b"hello");
        c.send_close_notify();
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        let mut r: &[u8] = &wire;
        s.read_tls(&mut r).unwrap();
        let mut buf = [0; 16];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 5);
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 0);
        assert!(!s.socket_drained(), "the close_notify must not wait for a new edge");

        let (mut c, mut s) = pair();
        c.write_plaintext(b"hello");
        c.write_plaintext(b"world");
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let mut r: &[u8] = &wire;
        let _ = s.read_tls(&mut r);
        let mut got = 0;
        while let Ok(n) = s.read_plaintext(&mut buf) {
            assert!(n > 0);
            got += n;
        }
        assert!(got <= 5);
        assert!(s.failure().is_some());
        assert!(!s.socket_drained(), "the failure must not wait for a new edge");
    }

    #[test]
    fn tls12_both_ways_and_close_notify_both_ways() {
        let (ca, cert, key) = test_certs::make();
        let chain = crate::transport::tls::config::parse_certs(cert.as_bytes(), "cert").unwrap();
        let key = crate::transport::tls::config::parse_key(key.as_bytes(), "key").unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(crate::transport::tls::config::provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut s = TlsSession::server_with(Arc::new(cfg)).unwrap();
        let mut c = TlsSession::client(&client_cfg(&ca), "localhost").unwrap();
        pump(&mut c, &mut s);
        assert_eq!(c.protocol_version().as_deref(), Some("TLSv1_2"));
        assert_eq!(s.alpn_protocol(), Some(&b"http/1.1"[..]));
        c.write_plaintext(b"ping");
        assert_eq!(deliver(&mut c, &mut s), b"ping");
        s.write_plaintext(b"pong");
        assert_eq!(deliver(&mut s, &mut c), b"pong");
        c.send_close_notify();
        assert_eq!(deliver(&mut c, &mut s), b"");
        assert_eq!(s.read_plaintext(&mut [0u8; 8]).unwrap(), 0, "close_notify reads as the end");
        s.send_close_notify();
        deliver(&mut s, &mut c);
        assert_eq!(c.read_plaintext(&mut [0u8; 8]).unwrap(), 0);
        assert_eq!(c.buffered_capacity() + s.buffered_capacity(), 0, "idle sessions hold no buffer");
    }

    #[test]
    fn a_record_larger_than_the_read_buffer_is_read_in_pieces() {
        let (mut c, mut s) = pair();
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(c.write_plaintext(&data), data.len());
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        assert_eq!(s.feed(&wire).unwrap(), wire.len());
        let mut got = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            match s.read_plaintext(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    break;
                }
            }
        }
        assert!(got == data, "{} bytes back of {}", got.len(), data.len());
        assert_eq!(s.buffered_capacity(), 0, "the rest of each record was released once read");
    }

    #[test]
    fn plaintext_written_during_the_handshake_follows_it() {
        let (ca, cert, key) = test_certs::make();
        let server_cfg = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut c = TlsSession::client(&client_cfg(&ca), "localhost").unwrap();
        let mut s = TlsSession::server(&server_cfg).unwrap();
        assert_eq!(c.write_plaintext(b"GET / HTTP/1.1\r\n\r\n"), 18);
        assert_eq!(c.pending_plaintext(), 18, "held until the handshake allows it");
        assert_eq!(s.write_plaintext(b"early"), 5);
        pump(&mut c, &mut s);
        assert_eq!(c.pending_plaintext() + s.pending_plaintext(), 0);
        let mut buf = [0u8; 64];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 18);
        assert_eq!(c.read_plaintext(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"early");
    }

    /// A writer that takes at most 7 bytes a call.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let n = b.len().min(7);
            self.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_output_limit_and_partial_socket_writes() {
        let (mut c, mut s) = pair();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let mut taken = c.write_plaintext(&big);
        assert!((60_000..=OUTPUT_LIMIT).contains(&taken), "{taken}");
        assert_eq!(c.write_plaintext(&big[taken..]), 0, "full until flushed");
        let mut w = Trickle(Vec::new());
        loop {
            while c.wants_write() {
                c.write_ciphertext(&mut w).unwrap();
            }
            if taken == big.len() {
                break;
            }
            taken += c.write_plaintext(&big[taken..]);
        }
        assert_eq!(c.buffered_capacity(), 0);
        let mut got = Vec::new();
        let mut off = 0;
        while off < w.0.len() {
            off += s.feed(&w.0[off..]).unwrap();
            let _ = s.read_plaintext_append(&mut got);
        }
        let _ = s.read_plaintext_append(&mut got);
        assert!(got == big, "{} bytes back of {}", got.len(), big.len());
    }

    /// A 64 KiB message and its frame header fit an empty queue in one
    /// piece; a write into a queue the socket drained only partly takes
    /// whole records (at least one), never the odd bytes that happen to
    /// fit, which would become small records.
    #[test]
    fn a_write_takes_whole_records_of_what_fits() {
        let (mut c, mut s) = pair();
        let frame: Vec<u8> = (0..64 * 1024 + 10u32).map(|i| (i % 249) as u8).collect();
        let mut sent = frame.clone();
        assert_eq!(c.write_plaintext(&frame), frame.len());
        assert_eq!(c.write_plaintext(&frame), 0, "at the limit");
        let mut wire = Vec::new();
        // The socket leaves 60,000 bytes queued (room for a third of a
        // record), then 30,000 (two records and more).
        for (left, records) in [(60_000, 1), (30_000, 2)] {
            let n = c.pending_ciphertext() - left;
            wire.extend_from_slice(&c.ciphertext()[..n]);
            c.consume_ciphertext(n);
            let taken = c.write_plaintext(&frame);
            assert_eq!(taken, records * 16 * 1024, "{left} bytes queued");
            sent.extend_from_slice(&frame[..taken]);
        }
        c.take_ciphertext(&mut wire);
        let mut got = Vec::new();
        let mut off = 0;
        while off < wire.len() {
            off += s.feed(&wire[off..]).unwrap();
            let _ = s.read_plaintext_append(&mut got);
        }
        assert!(got == sent, "{} bytes back of {}", got.len(), sent.len());
    }

    #[test]
    fn a_vectored_write_makes_the_records_a_contiguous_one_does() {
        let (mut c1, mut s1) = pair();
        let (mut c2, _s2) = pair();
        let header = [0x82u8, 126, 0x4e, 0x20];
        let payload = vec![5u8; 20_000];
        let n = c1.write_plaintext_vectored(&[IoSlice::new(&header), IoSlice::new(&[]), IoSlice::new(&payload)]);
        assert_eq!(n, 20_004);
        assert_eq!(c2.write_plaintext(&[&header[..], &payload].concat()), 20_004);
        assert_eq!(c1.pending_ciphertext(), c2.pending_ciphertext(), "the same records");
        assert_eq!(deliver(&mut c1, &mut s1), [&header[..], &payload].concat());
    }

    #[test]
    fn a_write_while_records_wait_keeps_their_order() {
        let (mut c, mut s) = pair();
        for m in [&b"one"[..], b"two", b"three"] {
            c.write_plaintext(m);
        }
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        assert_eq!(s.feed(&wire).unwrap(), wire.len());
        let mut buf = [0u8; 3];
        assert_eq!(s.read_plaintext(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"one");
        // Two records are not processed yet; the write goes first.
        assert_eq!(s.write_plaintext(b"reply"), 5);
        assert_eq!(deliver(&mut s, &mut c), b"reply");
        let mut rest = Vec::new();
        s.read_plaintext_append(&mut rest).unwrap();
        assert_eq!(rest, b"twothree");
        // A record already decrypted inside rustls when the write comes.
        c.write_plaintext(b"four");
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        s.feed(&wire).unwrap();
        assert!(s.plaintext_waiting());
        assert_eq!(s.write_plaintext(b"x"), 1);
        let mut rest = Vec::new();
        s.read_plaintext_append(&mut rest).unwrap();
        assert_eq!(rest, b"four");
        assert_eq!(deliver(&mut s, &mut c), b"x");
    }

    /// Our client against rustls's buffered server, which asks for a key
    /// update: the client answers with its own before its next record.
    #[test]
    fn a_key_update_the_peer_asks_for_is_answered() {
        let (ca, cert, key) = test_certs::make();
        let server_cfg = TlsServerConfig::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
        let mut srv = rustls::ServerConnection::new(server_cfg.rustls().unwrap()).unwrap();
        let mut c = TlsSession::client(&client_cfg(&ca), "localhost").unwrap();
        let swap = |c: &mut TlsSession, srv: &mut rustls::ServerConnection| {
            let mut out = Vec::new();
            c.take_ciphertext(&mut out);
            let mut rd = &out[..];
            while !rd.is_empty() {
                srv.read_tls(&mut rd).unwrap();
            }
            srv.process_new_packets().unwrap();
            let mut back = Vec::new();
            while srv.wants_write() {
                srv.write_tls(&mut back).unwrap();
            }
            assert_eq!(c.feed(&back).unwrap(), back.len());
        };
        for _ in 0..4 {
            swap(&mut c, &mut srv);
        }
        assert!(!c.is_handshaking() && !srv.is_handshaking());
        srv.refresh_traffic_keys().unwrap();
        srv.writer().write_all(b"after the update").unwrap();
        swap(&mut c, &mut srv);
        let mut got = Vec::new();
        c.read_plaintext_append(&mut got).unwrap();
        assert_eq!(got, b"after the update");
        assert_eq!(c.write_plaintext(b"answer"), 6);
        // One record of 6 bytes is 28 bytes in TLS 1.3: the KeyUpdate goes first.
        assert!(c.pending_ciphertext() > 28, "{} bytes", c.pending_ciphertext());
        swap(&mut c, &mut srv);
        let mut buf = [0u8; 16];
        assert_eq!(srv.reader().read(&mut buf).unwrap(), 6);
        assert_eq!(&buf[..6], b"answer");
    }

    #[test]
    fn a_corrupted_record_fails_with_an_alert_queued() {
        let (mut c, mut s) = pair();
        c.write_plaintext(b"data");
        let mut wire = Vec::new();
        c.take_ciphertext(&mut wire);
        let last = wire.len() - 1;
        wire[last] ^= 1;
        let err = match s.feed(&wire) {
            Err(f) => f,
            Ok(_) => {
                let e = s.read_plaintext(&mut [0u8; 16]).unwrap_err();
                TlsFailure::from_io(&e).cloned().expect("a TLS failure")
            }
        };
        assert_eq!(err.kind, TlsFailureKind::Handshake);
        assert!(err.message.contains("does not decrypt"), "{}", err.message);
        assert!(s.wants_write(), "the alert for the peer is queued");
        assert!(s.read_plaintext(&mut [0u8; 4]).is_err(), "the failure is final");
        assert_eq!(s.feed(b"more").unwrap_err().message, err.message);
    }

    /// Certificates made with the openssl command line at test time.
    pub(crate) mod test_certs {
        use std::process::Command;

        pub fn make() -> (String, String, String) {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("libws-unit-tls-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let run = |args: &[&str]| {
                let st = Command::new("openssl").args(args).current_dir(&dir).output().expect("openssl runs");
                assert!(st.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&st.stderr));
            };
            run(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=unit CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ]);
            run(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
            ]);
            std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "leaf.pem",
            ]);
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
            let out = (read("ca.pem"), read("leaf.pem"), read("leaf.key"));
            let _ = std::fs::remove_dir_all(&dir);
            out
        }
    }
}
