//! permessage-deflate (RFC 7692): negotiation and the per-message codec.

pub mod codec;
mod history;
pub mod params;
pub mod pool;
pub mod scratch;

pub use codec::{Deflater, Inflater};
pub use params::{Agreement, DeflateMemory, DeflateOptions};
