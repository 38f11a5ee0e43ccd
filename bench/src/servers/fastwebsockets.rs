//! Echo server on fastwebsockets, idiomatic fast path from the crate's own
//! `echo_server` example: `FragmentCollector` + `read_frame`/`write_frame`,
//! auto close/pong on, task wrapped in `tokio::task::unconstrained` as the
//! example does. The HTTP upgrade is done by hand (httparse) on the plain
//! tokio `TcpStream` to avoid pulling in hyper; fastwebsockets then takes the
//! stream via `WebSocket::after_handshake`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use fastwebsockets::{FragmentCollector, OpCode, Role, WebSocket, WebSocketError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use super::EchoServer;
use crate::handshake;

pub struct FastWebSockets {
    addr: SocketAddr,
    rt: Runtime,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    let rt = super::server_runtime("fastws")?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(accept_loop(listener));
    Ok(Box::new(FastWebSockets { addr, rt }))
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(tokio::task::unconstrained(async move {
                    if let Err(e) = serve(stream).await {
                        eprintln!("fastwebsockets: connection error: {e}");
                    }
                }));
            }
            Err(e) => {
                eprintln!("fastwebsockets: accept error: {e}");
                return;
            }
        }
    }
}

/// Reads the HTTP upgrade request (the client sends nothing else before the
/// 101), answers it, and returns the stream ready for WebSocket frames.
async fn upgrade(mut stream: TcpStream) -> io::Result<TcpStream> {
    let mut buf = Vec::with_capacity(1024);
    let response = loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(resp) = handshake::server_response(&buf)? {
            break resp;
        }
        if buf.len() > 16 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request too large"));
        }
    };
    stream.write_all(response.as_bytes()).await?;
    Ok(stream)
}

async fn serve(stream: TcpStream) -> Result<(), WebSocketError> {
    stream.set_nodelay(true)?;
    let stream = upgrade(stream).await?;
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => break,
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
    Ok(())
}

impl EchoServer for FastWebSockets {
    fn name(&self) -> &str {
        "fastwebsockets"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}
