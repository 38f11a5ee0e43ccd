//! permessage-deflate (RFC 7692): negotiation and the per-message codec.

pub mod codec;
pub mod params;

pub use codec::{Deflater, Inflater};
pub use params::{Agreement, DeflateOptions};
