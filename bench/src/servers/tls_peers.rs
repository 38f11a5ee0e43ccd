//! The TLS peers of `--tls`, on tokio with tokio-rustls (ring, as libws):
//! "rustls-echo", a bare TLS echo (bytes back as they come: the limit,
//! since TLS itself bounds throughput; driven by the length-prefixed client,
//! whose frames come back unchanged), and "tokio-tungstenite-tls",
//! tokio-tungstenite's echo over the same TLS acceptor.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

use super::{EchoServer, Protocol};

pub struct TlsPeer {
    name: &'static str,
    addr: SocketAddr,
    rt: Runtime,
    protocol: Protocol,
}

fn acceptor() -> io::Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = crate::tls_bench::server_pair()?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(io::Error::other)?
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

fn start_with(name: &'static str, protocol: Protocol) -> io::Result<Box<dyn EchoServer>> {
    let rt = super::server_runtime(name)?;
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let acc = acceptor()?;
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acc = acc.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acc.accept(tcp).await else { return };
                let r = match protocol {
                    Protocol::LengthPrefixed => bare_echo(tls).await.map_err(|e| e.to_string()),
                    Protocol::WebSocket => ws_echo(tls).await.map_err(|e| e.to_string()),
                };
                if let Err(e) = r {
                    eprintln!("{name}: connection error: {e}");
                }
            });
        }
    });
    Ok(Box::new(TlsPeer { name, addr, rt, protocol }))
}

async fn bare_echo(mut s: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
        s.flush().await?;
    }
}

async fn ws_echo(
    s: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(s).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            msg @ (Message::Binary(_) | Message::Text(_)) => ws.send(msg).await?,
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

pub fn start_bare() -> io::Result<Box<dyn EchoServer>> {
    start_with("rustls-echo", Protocol::LengthPrefixed)
}

pub fn start_tungstenite() -> io::Result<Box<dyn EchoServer>> {
    start_with("tokio-tungstenite-tls", Protocol::WebSocket)
}

impl EchoServer for TlsPeer {
    fn name(&self) -> &str {
        self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn protocol(&self) -> Protocol {
        self.protocol
    }
    fn stop(self: Box<Self>) {
        self.rt.shutdown_timeout(Duration::from_secs(1));
    }
}
