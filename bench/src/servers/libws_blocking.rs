//! libws blocking echo server, entirely through the C API (`ws.h`):
//! `ws_listen(NULL upgrader, "127.0.0.1", 0)`, one thread looping on
//! `ws_listener_accept`, one thread per connection looping
//! `ws_conn_read_message` -> `ws_conn_write_message` (same type, same bytes,
//! zero-copy from libws's read buffer) until an error, then `ws_conn_free`.
//! [`start_deflate`] is the same server with permessage-deflate accepted
//! (`ws_upgrader_set_compression` with the default options: context
//! takeover, 12-bit windows, pooled state, level 1), named "libws+deflate".
//!
//! Handle ownership: every accepted connection sits in `live` until its
//! thread ends. Whoever removes it from `live` frees it: the connection
//! thread when its client left, or `stop()`, which closes every connection
//! still there (waking its thread), joins the threads, then frees them.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use ws::ffi::compression::ws_compression_options_default;
use ws::ffi::conn::{ws_conn_close, ws_conn_free, ws_conn_read_message, ws_conn_write_message, ws_msg_type};
use ws::ffi::server::{
    ws_listen, ws_listener, ws_listener_accept, ws_listener_free, ws_listener_port, ws_listener_shutdown,
    ws_upgrader_free, ws_upgrader_new, ws_upgrader_set_compression,
};
use ws::ffi::status::{WS_ERR_CLOSED, WS_ERR_LOCALLY_CLOSED, WS_OK};

use super::EchoServer;
use crate::libws_ffi::{check, status_name, ConnPtr};

/// A `ws_listener*` that may cross threads.
#[derive(Clone, Copy)]
struct ListenerPtr(*mut ws_listener);
// SAFETY: ws.h: accept may run on any thread (several take turns) and
// ws_listener_shutdown from any thread; ws_listener_free runs only after the
// accepting thread is joined.
unsafe impl Send for ListenerPtr {}

/// Connections not yet released, by id: handle and its thread.
type Live = Arc<Mutex<HashMap<u64, (ConnPtr, Option<JoinHandle<()>>)>>>;

pub struct LibwsBlocking {
    name: &'static str,
    addr: SocketAddr,
    listener: ListenerPtr,
    acceptor: JoinHandle<()>,
    live: Live,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    start_with("libws", false)
}

/// The same server, accepting permessage-deflate.
pub fn start_deflate() -> io::Result<Box<dyn EchoServer>> {
    start_with("libws+deflate", true)
}

/// The same server over TLS (`--tls`; certificate from `tls_bench`), set up
/// through the C API: `ws_tls_server_config_new_files` + `ws_upgrader_set_tls`.
pub fn start_tls() -> io::Result<Box<dyn EchoServer>> {
    let up = crate::libws_ffi::tls_upgrader()?;
    let mut l: *mut ws_listener = ptr::null_mut();
    let r = check("ws_listen", ws_listen(up, c"127.0.0.1".as_ptr(), 0, &mut l));
    ws_upgrader_free(up);
    r?;
    finish("libws-tls", l)
}

fn start_with(name: &'static str, compress: bool) -> io::Result<Box<dyn EchoServer>> {
    let mut l: *mut ws_listener = ptr::null_mut();
    if compress {
        let up = ws_upgrader_new();
        if up.is_null() {
            return Err(io::Error::other("ws_upgrader_new failed"));
        }
        let opts = ws_compression_options_default();
        // ws_listen takes a snapshot of the upgrader's settings.
        let r = check("ws_upgrader_set_compression", ws_upgrader_set_compression(up, &opts))
            .and_then(|()| check("ws_listen", ws_listen(up, c"127.0.0.1".as_ptr(), 0, &mut l)));
        ws_upgrader_free(up);
        r?;
    } else {
        check("ws_listen", ws_listen(ptr::null(), c"127.0.0.1".as_ptr(), 0, &mut l))?;
    }
    finish(name, l)
}

fn finish(name: &'static str, l: *mut ws_listener) -> io::Result<Box<dyn EchoServer>> {
    let listener = ListenerPtr(l);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, ws_listener_port(l)));
    let live: Live = Arc::default();
    let acceptor = {
        let live = live.clone();
        thread::Builder::new().name("srv-libws-accept".into()).spawn(move || accept_loop(listener, live))
    };
    match acceptor {
        Ok(acceptor) => Ok(Box::new(LibwsBlocking { name, addr, listener, acceptor, live })),
        Err(e) => {
            ws_listener_free(l);
            Err(e)
        }
    }
}

fn accept_loop(listener: ListenerPtr, live: Live) {
    let mut next_id = 0u64;
    loop {
        let mut c = ptr::null_mut();
        match ws_listener_accept(listener.0, -1, &mut c) {
            WS_OK => {}
            WS_ERR_LOCALLY_CLOSED => return,
            st => {
                eprintln!("libws: accept: {}", check("", st).unwrap_err());
                continue;
            }
        }
        let conn = ConnPtr(c);
        let id = next_id;
        next_id += 1;
        // Held across the spawn so the thread cannot look itself up first.
        let mut map = live.lock().unwrap_or_else(PoisonError::into_inner);
        let spawned = thread::Builder::new().name("srv-libws-conn".into()).spawn({
            let live = live.clone();
            move || {
                echo(conn);
                let mine = live.lock().unwrap_or_else(PoisonError::into_inner).remove(&id).is_some();
                if mine {
                    ws_conn_free(conn.0);
                } // else stop() took it and frees it after joining us.
            }
        });
        match spawned {
            Ok(h) => {
                map.insert(id, (conn, Some(h)));
            }
            Err(e) => {
                eprintln!("libws: spawning a connection thread: {e}");
                ws_conn_free(conn.0);
            }
        }
    }
}

/// Echoes every message until the connection ends.
fn echo(conn: ConnPtr) {
    let c = conn.0;
    loop {
        let mut kind: ws_msg_type = 0;
        let mut data: *const u8 = ptr::null();
        let mut len = 0usize;
        let st = ws_conn_read_message(c, &mut kind, &mut data, &mut len);
        if st != WS_OK {
            if st != WS_ERR_CLOSED && st != WS_ERR_LOCALLY_CLOSED {
                eprintln!("libws: read: {}", check("", st).unwrap_err());
            }
            return;
        }
        // `data`/`len` point into the connection's buffer, valid until the
        // next read on it; this thread is the only reader, so they stay valid
        // through the write.
        let st = ws_conn_write_message(c, kind, data, len);
        if st != WS_OK {
            if st != WS_ERR_LOCALLY_CLOSED {
                eprintln!("libws: write: {}", status_name(st));
            }
            return;
        }
    }
}

impl EchoServer for LibwsBlocking {
    fn name(&self) -> &str {
        self.name
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(self: Box<Self>) {
        let _ = ws_listener_shutdown(self.listener.0);
        let _ = self.acceptor.join();
        ws_listener_free(self.listener.0);
        // No more inserts: the acceptor is gone.
        let left: Vec<_> = self.live.lock().unwrap_or_else(PoisonError::into_inner).drain().map(|(_, v)| v).collect();
        for (conn, _) in &left {
            let _ = ws_conn_close(conn.0);
        }
        for (conn, thread) in left {
            if let Some(t) = thread {
                let _ = t.join();
            }
            ws_conn_free(conn.0);
        }
    }
}
