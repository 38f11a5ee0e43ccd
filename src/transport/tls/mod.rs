//! TLS (rustls, ring provider) as a byte layer under a WebSocket connection.
//!
//! - [`config`]: client and server settings, turned into rustls configs
//!   (trust store, client certificates, minimum version, ALPN `http/1.1`,
//!   a server certificate that can be replaced while running).
//! - [`session`]: the sans-IO layer — ciphertext in / plaintext out and
//!   plaintext in / ciphertext out — that any driver can run, over
//!   rustls's unbuffered API (`records` handles its states).
//! - [`lazy_aead`], [`key_cache`]: TLS 1.3 record protection that keeps
//!   only raw keys per connection; the expanded keys of busy connections
//!   live in a per-thread cache (an idle connection holds 1.1 KB less).
//! - [`buffers`]: the session's byte queues, which hold memory only while
//!   they hold bytes (a shared pool keeps a few warm buffers).
//! - [`layers`]: one or two sessions stacked over a socket (two for a TLS
//!   target behind an HTTPS proxy), with `&self` read/write for the
//!   blocking API's reader and writer threads.
//!
//! Built without the `tls` feature this module is `disabled.rs` instead
//! (transport/mod.rs): the same names, refusing. [`ENABLED`] and
//! [`require`] are what callers ask; they mean "go ahead" here.

pub mod buffers;
pub mod config;
pub mod error;
pub mod key_cache;
pub mod layers;
mod lazy_aead;
pub mod options;
mod records;
pub mod session;

pub use config::{read_file, TlsClientConfig, TlsServerConfig};
pub use error::{TlsFailure, TlsFailureKind};
pub use layers::TlsLayers;
pub use options::{ClientAuth, MinVersion};
pub use session::TlsSession;

/// Whether this build has TLS.
pub const ENABLED: bool = true;

/// The calling thread drives an event loop: it keeps a few TLS buffers of
/// its own (see `buffers::pool`) until [`loop_thread_flush`].
#[inline]
pub fn loop_thread_enable() {
    buffers::pool::local_enable();
}

/// Hands the calling loop thread's own TLS buffers back to the shared pool.
#[inline]
pub fn loop_thread_flush() {
    buffers::pool::local_flush();
}

/// `what` (a `wss://` URL, an `https://` proxy, a TLS setting) needs TLS:
/// this build has it. (The build without refuses here.)
#[inline]
pub fn require(_what: &str) -> crate::Result<()> {
    Ok(())
}
