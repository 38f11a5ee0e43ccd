//! Byte streams under a WebSocket connection.
//!
//! Sockets are mio sources, always in non-blocking mode, so the same
//! connection can be driven by the blocking API (which waits with
//! [`wait::wait_ready`]) and by an event loop. TLS and caller-supplied
//! read/write callbacks are further variants of [`Stream`].

pub mod accept;
pub mod tcp;
pub mod wait;

pub use tcp::Stream;
