//! Plain TCP echo server, thread per connection, std::net, blocking IO.
//! Frames: 4-byte big-endian length + payload, echoed back unchanged.
//! Buffered on both sides; the write buffer is flushed whenever no further
//! input is already buffered, so pipelined messages leave in batches. This is
//! the "limit of the machine" reference, not a WebSocket server.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::{EchoServer, Protocol};

/// Largest message the server accepts.
const MAX_MESSAGE: usize = 64 << 20;

pub struct PlainTcp {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let flag = stopping.clone();
    let acceptor = thread::Builder::new().name("srv-plain-accept".into()).spawn(move || {
        for stream in listener.incoming() {
            if flag.load(Ordering::Acquire) {
                break;
            }
            match stream {
                Ok(s) => {
                    let _ = thread::Builder::new().name("srv-plain-conn".into()).spawn(move || {
                        if let Err(e) = serve(s) {
                            if e.kind() != io::ErrorKind::UnexpectedEof {
                                eprintln!("plain-tcp: connection error: {e}");
                            }
                        }
                    });
                }
                Err(e) => eprintln!("plain-tcp: accept error: {e}"),
            }
        }
    })?;
    Ok(Box::new(PlainTcp { addr, stopping, acceptor }))
}

fn serve(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(256 * 1024, stream);
    let mut payload = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len) {
            Ok(()) => {}
            // Client closed between messages: normal end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_MESSAGE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "message too large"));
        }
        payload.resize(n, 0);
        reader.read_exact(&mut payload)?;
        writer.write_all(&len)?;
        writer.write_all(&payload)?;
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
}

impl EchoServer for PlainTcp {
    fn name(&self) -> &str {
        "plain-tcp"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn protocol(&self) -> Protocol {
        Protocol::LengthPrefixed
    }
    fn stop(self: Box<Self>) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocking accept so it sees the flag. Connection threads end
        // when their client disconnects (the bench closes every connection).
        let _ = TcpStream::connect(self.addr);
        let _ = self.acceptor.join();
    }
}
