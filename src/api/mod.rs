//! The Rust API: gorilla/websocket's Dialer, Upgrader and Conn over the
//! sans-IO engine in `proto` and the sockets in `transport`.

pub mod budget;
pub mod config;
pub mod conn;
pub(crate) mod dial_stream;
pub mod dialer;
pub mod event_loop;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod listener;
pub mod pool;
pub mod prepared;
pub(crate) mod server_handshake;
pub mod session;
mod session_tls;
pub mod upgrader;

pub use config::ConnConfig;
pub use conn::{Conn, Message, MessageType};
pub use dialer::Dialer;
pub use http::{HttpResponse, Request, Response};
pub use listener::Listener;
pub use pool::BufferPool;
pub use prepared::PreparedMessage;
pub use session::{Session, SessionEvent, SessionHandler};
pub use upgrader::Upgrader;
