//! A failed TLS handshake or record, with a reason a person can act on.
//!
//! It travels inside `io::Error` (kind `InvalidData`) through the byte
//! layers, so drivers written against `read`/`write` need nothing new; the
//! dialer takes it out again to pick the status.
//!
//! Shared with the build without TLS (`disabled.rs`), where only the
//! rustls part (`describe`) is left out.

use std::fmt;
use std::io;

#[cfg(feature = "tls")]
use rustls::{AlertDescription, CertificateError, PeerIncompatible};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFailureKind {
    /// The peer's certificate was refused (untrusted, expired, wrong name...).
    Certificate,
    /// Anything else: no common version or cipher, an alert, not TLS at all.
    Handshake,
}

#[derive(Clone, Debug)]
pub struct TlsFailure {
    pub kind: TlsFailureKind,
    pub message: String,
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TlsFailure {}

impl TlsFailure {
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The failure carried by `e`, if it came from a TLS layer.
    pub fn from_io(e: &io::Error) -> Option<&TlsFailure> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<TlsFailure>())
    }
}

#[cfg(feature = "tls")]
fn cert_reason(e: &CertificateError) -> String {
    match e {
        CertificateError::UnknownIssuer => {
            "the certificate is not trusted (unknown issuer: no trusted CA signed it)".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("the certificate is not valid for this host name (name mismatch: {e})")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("the certificate has expired ({e})")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("the certificate is not valid yet ({e})")
        }
        CertificateError::Revoked => "the certificate was revoked".into(),
        CertificateError::BadSignature => "the certificate's signature does not verify".into(),
        CertificateError::BadEncoding => "the certificate is malformed".into(),
        other => format!("the certificate was refused ({other})"),
    }
}

/// Names the reason of a rustls error; `local` says whether we detected it
/// (true) or the peer told us with an alert.
#[cfg(feature = "tls")]
pub fn describe(e: &rustls::Error) -> TlsFailure {
    use rustls::Error as E;
    let (kind, message) = match e {
        E::InvalidCertificate(c) => (TlsFailureKind::Certificate, format!("TLS: {}", cert_reason(c))),
        E::NoCertificatesPresented => {
            (TlsFailureKind::Certificate, "TLS: the peer presented no certificate (one is required)".into())
        }
        E::AlertReceived(a) => {
            let why = match a {
                AlertDescription::ProtocolVersion => "no TLS version in common (protocol_version)",
                AlertDescription::HandshakeFailure => "no parameters in common (handshake_failure)",
                AlertDescription::BadCertificate => "it refused our certificate (bad_certificate)",
                AlertDescription::UnknownCA => "it does not trust our certificate's CA (unknown_ca)",
                AlertDescription::CertificateRequired => "it requires a client certificate (certificate_required)",
                AlertDescription::CertificateExpired => "it says our certificate expired (certificate_expired)",
                AlertDescription::NoApplicationProtocol => "no application protocol in common (ALPN)",
                _ => "",
            };
            let kind = match a {
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateRequired
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown => TlsFailureKind::Certificate,
                _ => TlsFailureKind::Handshake,
            };
            let msg = if why.is_empty() {
                format!("TLS: the peer sent the alert {a:?}")
            } else {
                format!("TLS: the peer refused the handshake: {why}")
            };
            (kind, msg)
        }
        E::PeerIncompatible(p) => {
            let why = match p {
                PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::Tls13RequiredForQuic
                | PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig => {
                    format!("no TLS version in common (protocol version mismatch: {p:?})")
                }
                other => format!("the peer is incompatible ({other:?})"),
            };
            (TlsFailureKind::Handshake, format!("TLS: {why}"))
        }
        E::InvalidMessage(m) => (
            TlsFailureKind::Handshake,
            format!("TLS: the peer sent data that is not TLS ({m:?}; plaintext or garbage)"),
        ),
        E::NoApplicationProtocol => (
            TlsFailureKind::Handshake,
            "TLS: no application protocol in common (ALPN: only http/1.1 is offered)".into(),
        ),
        E::EncryptError => (
            TlsFailureKind::Handshake,
            "TLS: the connection's keys are used up (as many records as they may protect): it must be closed".into(),
        ),
        E::DecryptError => (
            TlsFailureKind::Handshake,
            "TLS: a record from the peer does not decrypt (bad_record_mac: corrupted or forged)".into(),
        ),
        other => (TlsFailureKind::Handshake, format!("TLS: {other}")),
    };
    TlsFailure { kind, message }
}

/// The handshake did not finish within the handshake timeout.
pub fn handshake_timeout(peer: &str) -> TlsFailure {
    TlsFailure {
        kind: TlsFailureKind::Handshake,
        message: format!("TLS: handshake timeout: {peer} did not complete the TLS handshake in time"),
    }
}
