//! Proxies for clients: HTTP CONNECT, HTTPS (TLS to the proxy), SOCKS5.
//!
//! - [`url`]: a proxy URL (`http://`, `https://`, `socks5://`, `socks5h://`,
//!   with `user:password@`).
//! - [`env`]: proxies from the environment (curl's variables, `NO_PROXY`).
//! - [`http_connect`], [`socks5`]: the tunnel handshakes as sans-IO state
//!   machines (bytes out, bytes in), for the blocking dialer and the loop.
//! - [`open`]: the blocking driver: TCP, TLS to an HTTPS proxy, the tunnel,
//!   then TLS to the target.

pub mod env;
pub mod http_connect;
pub mod open;
pub mod socks5;
pub mod url;

pub use env::from_environment;
pub use open::{open, OpenError, Target};
pub use url::{ProxyKind, ProxyUrl};

/// Which proxy a dialer uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`/`NO_PROXY`, read at each dial
    /// (the default, as curl and gorilla).
    #[default]
    Environment,
    /// Connect directly.
    Direct,
    /// Always this proxy.
    Fixed(ProxyUrl),
}

/// What a tunnel handshake step asks of its driver.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Send `output()` (if any) and feed more of the proxy's answer.
    NeedMore,
    /// The tunnel is open; `leftover` arrived after the proxy's answer.
    Done { leftover: Vec<u8> },
}

/// A failed tunnel handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelError {
    /// True when the proxy answered and said no (HTTP status, SOCKS reply
    /// code, failed authentication); false for broken answers.
    pub refused: bool,
    pub message: String,
    /// An HTTP proxy's refusal: its response head and the start of its body.
    pub http: Option<HttpRefusal>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRefusal {
    pub status: u16,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
}

impl TunnelError {
    fn broken(message: impl Into<String>) -> TunnelError {
        TunnelError { refused: false, message: message.into(), http: None }
    }
    fn refused(message: impl Into<String>) -> TunnelError {
        TunnelError { refused: true, message: message.into(), http: None }
    }
}

/// A tunnel handshake: the driver sends `output()`, feeds whatever the
/// proxy answers, and repeats until `Done` or an error.
pub trait Tunnel {
    /// Bytes to send now (empty when waiting for the proxy).
    fn output(&mut self) -> Vec<u8>;
    fn feed(&mut self, data: &[u8]) -> Result<Progress, TunnelError>;
    /// A refusal whose answer is complete enough to report, while the rest
    /// (an HTTP body) may still be coming: the driver waits only briefly.
    fn pending_refusal(&self) -> Option<TunnelError> {
        None
    }
}
