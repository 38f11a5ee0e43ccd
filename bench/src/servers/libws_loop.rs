//! libws event-loop echo server, entirely through the C API (`ws.h`):
//! `ws_loop_new`, `ws_loop_listen(NULL upgrader, "127.0.0.1", 0)` and one
//! thread in `ws_loop_run`; every connection lives on that thread. The
//! echo happens in `on_message` with `ws_conn_write_message` (zero-copy
//! from the loop's read buffer into the connection's send queue; the loop
//! writes each connection's queue once per iteration).
//!
//! Flow control as in `examples-c/echo_server_loop.c`: the queue limit is
//! off (`ws_loop_set_max_buffered(loop, 0)`), a connection whose queue
//! passes [`PAUSE_AT`] stops being read (`ws_conn_pause_reading`) and is
//! resumed in `on_drain`, so a client that does not read its echoes
//! bounds the server's memory and no message is dropped.
//!
//! `stop()` is a graceful shutdown: `ws_loop_shutdown` (close 1001 to every
//! connection still open, 1 s to finish), `ws_loop_run` returns once all
//! are closed, the thread is joined, then `ws_loop_free`.

use std::ffi::{c_char, c_void, CStr};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ptr;
use std::thread::{self, JoinHandle};

use ws::ffi::conn::{ws_conn, ws_conn_close, ws_conn_write_message, ws_msg_type};
use ws::ffi::event_loop::{
    ws_conn_buffered_amount, ws_conn_pause_reading, ws_loop, ws_loop_callbacks, ws_loop_connection_count, ws_loop_free,
    ws_loop_listen, ws_loop_new, ws_loop_run, ws_loop_set_max_buffered, ws_loop_shutdown,
};
use ws::ffi::status::{ws_status, WS_ERR_CLOSE_SENT, WS_ERR_LOCALLY_CLOSED, WS_OK};

use ws::ffi::server::{ws_upgrader, ws_upgrader_free, ws_upgrader_new, ws_upgrader_set_compression};

use super::EchoServer;
use crate::deflate_modes::DeflateMode;
use crate::libws_ffi::{check, status_name};

/// Queued bytes past which a connection stops being read until it drains.
pub const PAUSE_AT: usize = 4 << 20;

/// How long `stop()` lets close handshakes take.
const SHUTDOWN_MS: i64 = 1000;

/// A `ws_loop*` that may cross threads.
#[derive(Clone, Copy)]
struct LoopPtr(*mut ws_loop);
// SAFETY: ws.h: every ws_loop_* call but ws_loop_free is safe from any
// thread; ws_loop_run drives it on one thread; ws_loop_free runs only
// after that thread is joined.
unsafe impl Send for LoopPtr {}

pub struct LibwsLoop {
    name: &'static str,
    addr: SocketAddr,
    lp: LoopPtr,
    runner: JoinHandle<ws_status>,
}

unsafe extern "C" fn on_message(
    conn: *mut ws_conn,
    kind: ws_msg_type,
    data: *const u8,
    len: usize,
    _user_data: *mut c_void,
) {
    // `data` is valid during this call; ws_conn_write_message copies it
    // into the send queue (or writes it straight to the socket).
    let st = ws_conn_write_message(conn, kind, data, len);
    if st != WS_OK {
        if st != WS_ERR_CLOSE_SENT && st != WS_ERR_LOCALLY_CLOSED {
            eprintln!("libws-loop: send: {}", status_name(st));
            let _ = ws_conn_close(conn);
        }
        return;
    }
    if ws_conn_buffered_amount(conn) > PAUSE_AT {
        let _ = ws_conn_pause_reading(conn, true);
    }
}

unsafe extern "C" fn on_drain(conn: *mut ws_conn, _user_data: *mut c_void) {
    let _ = ws_conn_pause_reading(conn, false);
}

unsafe extern "C" fn on_error(_conn: *mut ws_conn, status: ws_status, message: *const c_char, _user_data: *mut c_void) {
    // A client that drops TCP without a close frame is not worth a line.
    if status == ws::ffi::status::WS_ERR_CLOSED {
        return;
    }
    // SAFETY: libws passes a NUL-terminated message valid during the call.
    let msg = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    eprintln!("libws-loop: connection failed: {}: {msg}", status_name(status));
}

impl LibwsLoop {
    /// Binds 127.0.0.1:`port` (0 = any free port) and starts the loop thread.
    pub fn start_on(port: u16) -> io::Result<LibwsLoop> {
        Self::start_with(port, None)
    }

    /// The same server accepting permessage-deflate in `mode`.
    pub fn start_with(port: u16, mode: Option<DeflateMode>) -> io::Result<LibwsLoop> {
        let name = match mode {
            None => "libws-loop",
            Some(DeflateMode::Pooled) => "libws-loop+pooled",
            Some(DeflateMode::Dedicated) => "libws-loop+dedicated",
            Some(DeflateMode::Shared) => "libws-loop+shared",
        };
        let up = match mode {
            None => ptr::null_mut(),
            Some(m) => {
                let up = ws_upgrader_new();
                if up.is_null() {
                    return Err(io::Error::other("ws_upgrader_new failed"));
                }
                if let Err(e) =
                    check("ws_upgrader_set_compression", ws_upgrader_set_compression(up, &m.server_options()))
                {
                    ws_upgrader_free(up);
                    return Err(e);
                }
                up
            }
        };
        let r = Self::start_inner(name, port, up);
        // ws_loop_listen took a snapshot of the upgrader's settings.
        ws_upgrader_free(up);
        r
    }

    fn start_inner(name: &'static str, port: u16, up: *mut ws_upgrader) -> io::Result<LibwsLoop> {
        let mut lp: *mut ws_loop = ptr::null_mut();
        check("ws_loop_new", ws_loop_new(&mut lp))?;
        let cleanup = |e: io::Error| {
            ws_loop_free(lp);
            e
        };
        check("ws_loop_set_max_buffered", ws_loop_set_max_buffered(lp, 0)).map_err(cleanup)?;
        let cb = ws_loop_callbacks {
            on_handshake: None,
            on_open: None,
            on_message: Some(on_message),
            on_ping: None,
            on_pong: None,
            on_drain: Some(on_drain),
            on_error: Some(on_error),
            on_close: None,
            on_dial_error: None,
        };
        let mut bound = 0u16;
        let st = ws_loop_listen(lp, up, c"127.0.0.1".as_ptr(), port, &cb, ptr::null_mut(), &mut bound);
        check("ws_loop_listen", st).map_err(cleanup)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, bound));
        let p = LoopPtr(lp);
        let runner = thread::Builder::new().name("srv-libws-loop".into()).spawn(move || {
            let p = p;
            ws_loop_run(p.0)
        });
        match runner {
            Ok(runner) => Ok(LibwsLoop { name, addr, lp: p, runner }),
            Err(e) => Err(cleanup(e)),
        }
    }

    /// Open connections (`ws_loop_connection_count`).
    pub fn connection_count(&self) -> usize {
        ws_loop_connection_count(self.lp.0)
    }

    /// Graceful shutdown, then frees the loop.
    pub fn shutdown(self) -> io::Result<()> {
        let st = ws_loop_shutdown(self.lp.0, SHUTDOWN_MS);
        let r = check("ws_loop_shutdown", st);
        if r.is_err() {
            // Still make ws_loop_run return.
            let _ = ws::ffi::event_loop::ws_loop_stop(self.lp.0);
        }
        let ran = self.runner.join().map_err(|_| io::Error::other("libws-loop: the loop thread panicked"))?;
        // No driver left: freeing is allowed now (closes anything left).
        ws_loop_free(self.lp.0);
        r?;
        if ran != WS_OK {
            return Err(io::Error::other(format!("ws_loop_run: {}", status_name(ran))));
        }
        Ok(())
    }
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    Ok(Box::new(LibwsLoop::start_on(0)?))
}

pub fn start_pooled() -> io::Result<Box<dyn EchoServer>> {
    Ok(Box::new(LibwsLoop::start_with(0, Some(DeflateMode::Pooled))?))
}

pub fn start_dedicated() -> io::Result<Box<dyn EchoServer>> {
    Ok(Box::new(LibwsLoop::start_with(0, Some(DeflateMode::Dedicated))?))
}

pub fn start_shared() -> io::Result<Box<dyn EchoServer>> {
    Ok(Box::new(LibwsLoop::start_with(0, Some(DeflateMode::Shared))?))
}

/// The loop server over TLS (`--tls`), set up through the C API.
pub fn start_tls() -> io::Result<Box<dyn EchoServer>> {
    Ok(Box::new(start_tls_loop()?))
}

/// The same, as the loop itself (`--idle-memory --idle-tls` counts its
/// connections).
pub fn start_tls_loop() -> io::Result<LibwsLoop> {
    let up = crate::libws_ffi::tls_upgrader()?;
    let r = LibwsLoop::start_inner("libws-loop-tls", 0, up);
    ws::ffi::server::ws_upgrader_free(up);
    r
}

impl EchoServer for LibwsLoop {
    fn name(&self) -> &str {
        self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        if let Err(e) = (*self).shutdown() {
            eprintln!("libws-loop: stop: {e}");
        }
    }
}
