//! Echo server on tokio-tungstenite, idiomatic fast path:
//! `while let Some(msg) = ws.next().await { ws.send(msg).await }`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;

use super::EchoServer;

pub struct TokioTungstenite {
    addr: SocketAddr,
    rt: Runtime,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    let rt = super::server_runtime("tungstenite")?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    rt.spawn(accept_loop(listener));
    Ok(Box::new(TokioTungstenite { addr, rt }))
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = serve(stream).await {
                        eprintln!("tokio-tungstenite: connection error: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("tokio-tungstenite: accept error: {e}");
                return;
            }
        }
    }
}

async fn serve(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    stream.set_nodelay(true)?;
    // Default config: 128 KiB read/write buffers, 64 MiB max message.
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            msg @ (Message::Binary(_) | Message::Text(_)) => ws.send(msg).await?,
            Message::Close(_) => break,
            // Pings are answered automatically by tungstenite.
            _ => {}
        }
    }
    Ok(())
}

impl EchoServer for TokioTungstenite {
    fn name(&self) -> &str {
        "tokio-tungstenite"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}
