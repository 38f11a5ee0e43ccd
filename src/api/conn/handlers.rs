//! Ping, pong and close handlers (gorilla's SetPingHandler & co.).
//!
//! Handlers are reference-counted closures: the reader clones the one it
//! needs under a short lock and calls it without holding any lock, so a
//! handler may write to the connection or replace handlers.

use std::sync::Arc;

use super::Conn;
use crate::error::Result;

/// Called with the payload of a received ping or pong.
pub type ControlHandler = Arc<dyn Fn(&Conn, &[u8]) -> Result<()> + Send + Sync>;
/// Called with the code and reason of a received close frame (1005 when the
/// frame had no code).
pub type CloseHandler = Arc<dyn Fn(&Conn, u16, &[u8]) -> Result<()> + Send + Sync>;

#[derive(Clone, Default)]
pub struct Handlers {
    /// `None` = the default: answer with a pong carrying the same payload.
    pub ping: Option<ControlHandler>,
    /// `None` = the default: do nothing.
    pub pong: Option<ControlHandler>,
    /// `None` = the default: echo the close code back.
    pub close: Option<CloseHandler>,
}
