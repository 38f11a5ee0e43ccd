//! The connection engine: everything above frames that every driver (the
//! blocking `Conn`, the event loop, the sans-IO C session) shares.
//!
//! ```text
//!            bytes in                                   bytes out
//!               |                                          ^
//!   RecvHalf: Receiver -> assembly -> inflate -> close   SendHalf: frames, masking,
//!             parse    (events to a RecvSink)             deflate, prepared rule,
//!               |                                         control/close checks
//!               +------ Owed (pong, close echo) ------------->|
//!   CloseCell: the phase both halves check        Deadlines: next_timeout / on_timeout
//! ```
//!
//! The halves are separate values so a blocking connection can read on
//! one thread (holding the receive half) while others write (holding the
//! send half); the phase they share is a [`close_state::CloseCell`].
//! Nothing here does I/O or reads a clock.

pub mod close_state;
pub mod inflate;
pub mod recv;
pub mod send;
pub mod timeouts;

pub use close_state::{CloseCell, Phase, Refusal, TcpAfterClose};
pub use recv::{ControlPayload, Owed, Piece, RecvEvent, RecvHalf, RecvSink};
pub use send::{FrameHead, Invalid, Plan, SendHalf};
pub use timeouts::{Deadlines, TimeoutAction, TimeoutConfig};
