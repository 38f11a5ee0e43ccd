//! libws's sans-IO session API as an echo server, entirely through the C
//! API (`ws_session_*` in `ws.h`): this module owns the sockets and the
//! readiness loop (one mio `Poll` on one thread, as a C program with
//! epoll or io_uring would); libws turns bytes into events and events
//! into bytes. The echo is `ws_session_send` in `on_message` (the payload
//! is zero-copy for the call). A connection with more than [`PAUSE_AT`]
//! pending is not read until it drains (TCP pushes back on its peer).

use std::collections::HashMap;
use std::ffi::c_void;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use ws::ffi::conn::ws_msg_type;
use ws::ffi::session::{
    ws_session, ws_session_callbacks, ws_session_free, ws_session_is_finished, ws_session_pending, ws_session_recv_eof,
    ws_session_recv_in_place, ws_session_send, ws_session_sent, ws_session_server_new,
};
use ws::ffi::status::WS_OK;

use super::EchoServer;

/// Pending bytes past which a connection is not read until they drain.
pub const PAUSE_AT: usize = 4 << 20;

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);

unsafe extern "C" fn on_message(
    s: *mut ws_session,
    kind: ws_msg_type,
    data: *const u8,
    len: usize,
    _user_data: *mut c_void,
) {
    // `data` is valid during this call; the send encodes it into the
    // session's output.
    let _ = ws_session_send(s, kind, data, len);
}

struct Conn {
    tcp: TcpStream,
    s: *mut ws_session,
    /// Bytes pending after the last event.
    left: usize,
}

fn pending(s: *mut ws_session) -> (*const u8, usize) {
    let mut p: *const u8 = ptr::null();
    let mut n = 0usize;
    let _ = ws_session_pending(s, &mut p, &mut n);
    (p, n)
}

/// Writes what the session has pending. Returns the bytes still pending
/// (the socket is full), or `None` when the socket failed.
fn flush(c: &mut Conn) -> Option<usize> {
    loop {
        let (p, n) = pending(c.s);
        if n == 0 {
            return Some(0);
        }
        // SAFETY: ws_session_pending's bytes stay valid until the next
        // call on the session; nothing else touches it meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts(p, n) };
        match c.tcp.write(bytes) {
            Ok(k) => {
                let _ = ws_session_sent(c.s, k);
                if k < n {
                    return Some(n - k);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// What a read turn ended with.
enum Turn {
    /// The socket is drained (a short read on plain TCP: as the loop does,
    /// no extra `recv` just to see EAGAIN).
    Drained,
    /// Not read further: more than [`PAUSE_AT`] is pending.
    Paused,
    Ended,
}

/// Reads what the socket has into the session.
fn read(c: &mut Conn, buf: &mut [u8], pending_now: usize) -> Turn {
    if pending_now > PAUSE_AT {
        return Turn::Paused;
    }
    loop {
        match c.tcp.read(buf) {
            Ok(0) => {
                let _ = ws_session_recv_eof(c.s);
                return Turn::Ended;
            }
            Ok(n) => {
                // Our buffer: the session unmasks in it and hands whole
                // messages out of it (no copy).
                let _ = ws_session_recv_in_place(c.s, buf.as_mut_ptr(), n);
                if n < buf.len() {
                    return Turn::Drained;
                }
                if pending(c.s).1 > PAUSE_AT {
                    return Turn::Paused;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = ws_session_recv_eof(c.s);
                return Turn::Ended;
            }
        }
    }
}

/// One readiness event: read, flush, and read again if reading was paused
/// on output that has drained now (edge-triggered: no new edge would
/// come). Returns the bytes still pending; `None` when the connection is
/// over.
fn on_ready(c: &mut Conn, buf: &mut [u8], readable: bool, mut left: usize) -> Option<usize> {
    let mut turn = if readable { read(c, buf, left) } else { Turn::Drained };
    loop {
        if matches!(turn, Turn::Ended) {
            return None;
        }
        left = flush(c)?;
        if !(matches!(turn, Turn::Paused) && left == 0) {
            break;
        }
        turn = read(c, buf, 0);
    }
    (left != 0 || !ws_session_is_finished(c.s)).then_some(left)
}

fn serve(mut poll: Poll, listener: TcpListener, stop: Arc<AtomicBool>) -> io::Result<()> {
    let cb = ws_session_callbacks {
        on_open: None,
        on_message: Some(on_message),
        on_ping: None,
        on_pong: None,
        on_close: None,
        on_error: None,
    };
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next = 2usize;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::SeqCst) {
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    let (mut tcp, _) = match listener.accept() {
                        Ok(x) => x,
                        Err(_) => break,
                    };
                    let _ = tcp.set_nodelay(true);
                    let mut s: *mut ws_session = ptr::null_mut();
                    if ws_session_server_new(ptr::null(), &cb, ptr::null_mut(), &mut s) != WS_OK {
                        continue;
                    }
                    let t = next;
                    next += 1;
                    poll.registry().register(&mut tcp, Token(t), Interest::READABLE | Interest::WRITABLE)?;
                    conns.insert(t, Conn { tcp, s, left: 0 });
                },
                WAKE => {}
                Token(t) => {
                    let Some(c) = conns.get_mut(&t) else { continue };
                    // A writable-only event reads too when reading was
                    // paused on the output (its readable edge is spent).
                    let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error() || c.left > PAUSE_AT;
                    if let Some(left) = on_ready(c, &mut buf, readable, c.left) {
                        c.left = left;
                    } else {
                        let c = conns.remove(&t).expect("present");
                        ws_session_free(c.s);
                    }
                }
            }
        }
    }
    for (_, c) in conns.drain() {
        ws_session_free(c.s);
    }
    Ok(())
}

pub struct LibwsSession {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    runner: JoinHandle<io::Result<()>>,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    let mut listener = TcpListener::bind("127.0.0.1:0".parse().expect("address"))?;
    let addr = listener.local_addr()?;
    let poll = Poll::new()?;
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let runner = thread::Builder::new().name("srv-libws-session".into()).spawn(move || serve(poll, listener, st))?;
    Ok(Box::new(LibwsSession { addr, stop, waker, runner }))
}

impl EchoServer for LibwsSession {
    fn name(&self) -> &str {
        "libws-session"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        match self.runner.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("libws-session: {e}"),
            Err(_) => eprintln!("libws-session: the server thread panicked"),
        }
    }
}
