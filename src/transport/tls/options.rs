//! The TLS settings that are plain choices, shared by the TLS build and
//! the build without it (`disabled.rs`), so both expose the same types.

/// The lowest TLS version a connection accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

/// Whether a server asks clients for a certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuth {
    #[default]
    None,
    /// Asked for; a client without one is still served, one with a
    /// certificate that does not verify is refused.
    Optional,
    /// A client without a verifying certificate is refused.
    Required,
}
