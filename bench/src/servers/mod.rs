//! In-process echo servers under test.
//!
//! Every server lives in its own module, binds `127.0.0.1:0` and runs on its
//! own threads (tokio servers own a 2-worker runtime). To add a server,
//! write a module with a constructor returning `io::Result<Box<dyn
//! EchoServer>>` and add one line to [`REGISTRY`].

use std::io;
use std::net::SocketAddr;

pub mod fastwebsockets;
pub mod libws_blocking;
pub mod libws_loop;
pub mod libws_session;
pub mod plain_tcp;
pub mod python_websockets;
pub mod tls_peers;
pub mod tokio_tungstenite;

/// Wire protocol a server speaks; selects which client drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RFC 6455 WebSocket; echoes every text/binary message unchanged.
    /// Driven by the selected [`crate::client::BenchClient`].
    WebSocket,
    /// Plain TCP: each message is a 4-byte big-endian length followed by the
    /// payload, echoed back unchanged (length prefix included). Reference for
    /// "what the machine can do"; driven by [`crate::client::PlainTcpClient`].
    LengthPrefixed,
}

/// A running echo server.
pub trait EchoServer: Send {
    /// Short, stable name used in `--servers` and in the table.
    fn name(&self) -> &str;
    /// Address it listens on (127.0.0.1, ephemeral port).
    fn addr(&self) -> SocketAddr;
    /// Protocol it speaks. WebSocket unless overridden.
    fn protocol(&self) -> Protocol {
        Protocol::WebSocket
    }
    /// Stop accepting, shut down its threads/runtime.
    fn stop(self: Box<Self>);
}

/// Constructor of a server: binds, starts its threads and returns.
pub type StartFn = fn() -> io::Result<Box<dyn EchoServer>>;

/// All known servers, in table order. Names here must match `name()`.
/// A server whose name starts with "libws" (the blocking "libws", the
/// event loop's "libws-loop" and the sans-IO "libws-session") is a subject of the "libws / best peer" ratio;
/// the peers are the other WebSocket servers only (never plain TCP, never
/// the other libws server).
pub const REGISTRY: &[(&str, StartFn)] = &[
    ("tokio-tungstenite", tokio_tungstenite::start),
    ("fastwebsockets", fastwebsockets::start),
    ("plain-tcp", plain_tcp::start),
    ("libws", libws_blocking::start),
    ("libws-loop", libws_loop::start),
    ("libws-session", libws_session::start),
];

/// The servers of `--tls` (certificate from `tls_bench`): the libws
/// servers over TLS, tokio-tungstenite over tokio-rustls, and a bare
/// rustls echo (the reference, in the plain-TCP column).
pub const TLS_REGISTRY: &[(&str, StartFn)] = &[
    ("tokio-tungstenite-tls", tls_peers::start_tungstenite),
    ("rustls-echo", tls_peers::start_bare),
    ("libws-tls", libws_blocking::start_tls),
    ("libws-loop-tls", libws_loop::start_tls),
];

/// Builds the 2-worker multi-thread runtime every tokio-based server uses.
pub(crate) fn server_runtime(name: &str) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("srv-{name}"))
        .enable_io()
        .enable_time()
        .build()
}
