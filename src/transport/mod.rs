//! Byte streams under a WebSocket connection.
//!
//! Sockets are mio sources, always in non-blocking mode, so the same
//! connection can be driven by the blocking API (which waits with
//! [`wait::wait_ready`]) and by an event loop. [`tls`] layers run inside
//! a [`Stream`]; [`proxy`] tunnels are set up on one before them. Built
//! without the `tls` feature, [`tls`] is `tls/disabled.rs`: the same
//! names, refusing with `ErrorKind::Unsupported`.

pub mod accept;
pub mod connect;
pub mod heap;
pub mod memory;
pub mod proxy;
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
/// Without the `tls` feature: the same names, refusing (see its header).
#[cfg(not(feature = "tls"))]
#[path = "tls/disabled.rs"]
pub mod tls;
pub mod wait;

pub use tcp::Stream;
