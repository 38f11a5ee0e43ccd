//! libws: a WebSocket library (RFC 6455) with a Rust core and a C ABI.
//!
//! Layers, top to bottom (each depends only on those below):
//! `ffi` (the C ABI), `api` (Dialer, Upgrader, Conn), `transport` (sockets),
//! `proto` (the sans-IO protocol engine). See ARCHITECTURE.md.

pub mod api;
pub mod error;
pub mod ffi;
pub mod proto;
pub mod transport;

pub use error::{Error, ErrorKind, Result};
