//! The sans-IO TLS layer: no sockets, only bytes.
//!
//! Ciphertext from the wire goes in with [`TlsSession::feed`], plaintext
//! comes out of [`TlsSession::read_plaintext`]; plaintext to send goes in
//! with [`TlsSession::write_plaintext`] and ciphertext for the wire comes
//! out of [`TlsSession::write_ciphertext`] / [`TlsSession::take_ciphertext`]
//! whenever [`TlsSession::wants_write`] says so (also during the handshake
//! and after an error, when an alert is queued). The blocking stream, the
//! event loop and a sans-IO WebSocket session drive the same type.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use pki_types::ServerName;

use super::config::{TlsClientConfig, TlsServerConfig};
use super::error::{describe, TlsFailure, TlsFailureKind};
use crate::error::{Error, ErrorKind, Result};

pub struct TlsSession {
    conn: rustls::Connection,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("server", &matches!(self.conn, rustls::Connection::Server(_)))
            .field("handshaking", &self.conn.is_handshaking())
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
        let conn = rustls::ClientConnection::new(config.rustls()?, name)
            .map_err(|e| Error::new(ErrorKind::TlsConfig, format!("TLS client: {e}")))?;
        Ok(TlsSession { conn: conn.into() })
    }

    pub fn server(config: &TlsServerConfig) -> Result<TlsSession> {
        Self::server_with(config.rustls()?)
    }

    pub fn server_with(config: Arc<rustls::ServerConfig>) -> Result<TlsSession> {
        let conn = rustls::ServerConnection::new(config)
            .map_err(|e| Error::new(ErrorKind::TlsConfig, format!("TLS server: {e}")))?;
        Ok(TlsSession { conn: conn.into() })
    }

    /// Takes ciphertext. Returns how much was consumed: less than all of it
    /// only when decrypted plaintext is waiting to be read (read it, then
    /// feed the rest). A protocol failure is returned once the alert for
    /// the peer is queued (flush it, then drop the connection).
    pub fn feed(&mut self, mut data: &[u8]) -> std::result::Result<usize, TlsFailure> {
        let total = data.len();
        while !data.is_empty() {
            match self.conn.read_tls(&mut data) {
                Ok(_) => {}
                // The plaintext buffer is full: the caller reads first.
                Err(_) if self.has_plaintext() => break,
                Err(e) => {
                    return Err(TlsFailure { kind: TlsFailureKind::Handshake, message: format!("TLS: {e}") });
                }
            }
            self.process()?;
        }
        Ok(total - data.len())
    }

    fn process(&mut self) -> std::result::Result<(), TlsFailure> {
        self.conn.process_new_packets().map(|_| ()).map_err(|e| describe(&e))
    }

    fn has_plaintext(&mut self) -> bool {
        self.conn.process_new_packets().is_ok_and(|s| s.plaintext_bytes_to_read() > 0)
    }

    /// The peer closed the transport (TCP end of stream).
    pub fn feed_eof(&mut self) {
        let _ = self.conn.read_tls(&mut io::empty());
        let _ = self.conn.process_new_packets();
    }

    /// Decrypted bytes: `WouldBlock` when none are there yet, `Ok(0)` after
    /// the peer's close_notify, `UnexpectedEof` after a transport end
    /// without one.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.reader().read(buf)
    }

    /// Queues plaintext for sending (buffered until the handshake is done);
    /// returns how much was taken (less when the ciphertext queue is at its
    /// limit: flush, then write the rest).
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        self.conn.writer().write(data).unwrap_or(0)
    }

    pub fn write_plaintext_vectored(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        self.conn.writer().write_vectored(bufs).unwrap_or(0)
    }

    /// Lifts the ciphertext queue's limit (for a session whose output is
    /// another session's input: that side limits instead).
    pub fn set_unlimited_output(&mut self) {
        self.conn.set_buffer_limit(None);
    }

    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Writes queued ciphertext into `w` (one or more records; partial
    /// writes keep the rest queued).
    pub fn write_ciphertext(&mut self, w: &mut dyn Write) -> io::Result<usize> {
        self.conn.write_tls(w)
    }

    /// Appends all queued ciphertext to `out`.
    pub fn take_ciphertext(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Queues a close_notify alert.
    pub fn send_close_notify(&mut self) {
        self.conn.send_close_notify();
    }

    /// The peer's certificate chain (leaf first, DER), once the handshake
    /// got that far; `None` when it presented none.
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.conn.peer_certificates().map(|c| c.iter().map(|d| d.as_ref().to_vec()).collect())
    }

    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// "TLSv1_3" or "TLSv1_2" once negotiated.
    pub fn protocol_version(&self) -> Option<String> {
        self.conn.protocol_version().map(|v| format!("{v:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
