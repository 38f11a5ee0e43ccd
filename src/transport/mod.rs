//! Byte streams under a WebSocket connection.
//!
//! Sockets are mio sources, always in non-blocking mode, so the same
//! connection can be driven by the blocking API (which waits with
//! [`wait::wait_ready`]) and by an event loop. [`tls`] layers run inside
//! a [`Stream`]; [`proxy`] tunnels are set up on one before them.

pub mod accept;
pub mod connect;
pub mod heap;
pub mod memory;
pub mod proxy;
pub mod tcp;
pub mod tls;
pub mod wait;

pub use tcp::Stream;
