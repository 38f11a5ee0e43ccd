//! The C ABI. Thin: converts arguments, calls the Rust API, converts
//! results. Every function body runs under a panic guard; every handle is
//! an opaque pointer with a `_new`/`_free` (or `_close`) pair.
#![allow(non_camel_case_types)]
// The entry points take raw pointers from C. Marking them `unsafe fn`
// would mean nothing to their C callers; instead each one checks for NULL
// and documents its pointer contract in the header, and every dereference
// sits in an `unsafe` block with a SAFETY comment.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub(crate) mod convert;
pub(crate) mod guard;
pub(crate) mod timeout;

pub mod budget;
pub mod compression;
pub mod conn;
pub mod constants;
pub mod dialer;
pub mod event_loop;
pub mod http;
pub mod http_response;
pub mod pool;
pub mod reconnect;
pub mod server;
pub mod session;
pub mod status;
pub mod tls;
pub mod util;

pub use convert::ws_header;
