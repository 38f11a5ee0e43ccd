//! The C ABI. Thin: converts arguments, calls the Rust API, converts
//! results. Every function body runs under a panic guard; every handle is
//! an opaque pointer with a `_new`/`_free` (or `_close`) pair.
#![allow(non_camel_case_types)]

pub(crate) mod convert;
pub(crate) mod guard;

pub mod conn;
pub mod dialer;
pub mod http;
pub mod pool;
pub mod server;
pub mod status;
pub mod util;

pub use convert::ws_header;
