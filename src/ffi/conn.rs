//! `ws_conn`: a WebSocket connection (gorilla's Conn) in C.
//!
//! Threading contract (repeated on each function): writes — messages,
//! control frames, the streaming writer, close — are safe from any thread
//! and serialized inside; one thread reads at a time (another gets
//! `WS_ERR_BUSY`); handlers run on the reading thread; `ws_conn_close`
//! from any thread wakes blocked readers and writers; `ws_conn_free` must
//! be the last call on the handle, with no other call in progress.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use super::convert::{bytes, bytes_mut, copy_c_string, copy_out, need, put, status};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use super::timeout::deadline;
use crate::api::conn::{CloseHandler, ControlHandler, MessageType};
use crate::api::event_loop::ConnHandle;
use crate::api::Conn;
use crate::error::{Error, ErrorKind};

/// Message types, numbered as RFC 6455 opcodes (and gorilla's constants).
pub type ws_msg_type = i32;
/// A UTF-8 text message.
pub const WS_TEXT: ws_msg_type = 1;
/// A binary message.
pub const WS_BINARY: ws_msg_type = 2;
/// A close control frame.
pub const WS_CLOSE: ws_msg_type = 8;
/// A ping control frame.
pub const WS_PING: ws_msg_type = 9;
/// A pong control frame.
pub const WS_PONG: ws_msg_type = 10;

/// Called on the reading thread with a received ping's or pong's payload
/// (valid only during the call). Return `WS_OK`, or a status that the
/// interrupted read call then returns.
pub type ws_control_handler =
    Option<unsafe extern "C" fn(conn: *mut ws_conn, data: *const u8, len: usize, user_data: *mut c_void) -> ws_status>;

/// Called on the reading thread with a received close frame's code (1005
/// when it had none) and reason (valid only during the call). The read
/// call that received it returns `WS_ERR_CLOSED` afterwards.
pub type ws_close_handler = Option<
    unsafe extern "C" fn(
        conn: *mut ws_conn,
        code: u16,
        reason: *const u8,
        len: usize,
        user_data: *mut c_void,
    ) -> ws_status,
>;

/// The caller's user data pointer, carried to handlers on the reading thread.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: libws never dereferences the pointer; it hands it back to the
// caller's handler, which the caller registered knowing the handler runs on
// whatever thread reads the connection.
unsafe impl Send for UserData {}
// SAFETY: as above; the pointer is only copied, never dereferenced.
unsafe impl Sync for UserData {}

#[derive(Clone, Copy)]
struct HandlePtr(*mut ws_conn);
// SAFETY: the handle outlives its handlers (they are dropped with it) and
// `ws_conn` is Sync; the pointer is only passed back to C.
unsafe impl Send for HandlePtr {}
// SAFETY: as above.
unsafe impl Sync for HandlePtr {}

#[derive(Default)]
struct CHandlers {
    ping: Option<(unsafe extern "C" fn(*mut ws_conn, *const u8, usize, *mut c_void) -> ws_status, UserData)>,
    pong: Option<(unsafe extern "C" fn(*mut ws_conn, *const u8, usize, *mut c_void) -> ws_status, UserData)>,
    close: Option<(unsafe extern "C" fn(*mut ws_conn, u16, *const u8, usize, *mut c_void) -> ws_status, UserData)>,
}

/// An open WebSocket connection. Opaque. Either a blocking connection
/// (from `ws_dial`, `ws_listener_accept`, `ws_upgrader_upgrade_fd`) or a
/// connection of an event loop (handed to the loop's callbacks).
pub struct ws_conn {
    pub(crate) kind: ConnKind,
    subprotocol: CString,
    c_handlers: std::sync::Mutex<CHandlers>,
}

pub(crate) enum ConnKind {
    /// Boxed: a blocking Conn holds its buffers' bookkeeping and mask keys
    /// inline (~5 KiB), which loop connections must not pay for.
    Blocking(Box<Conn>),
    Loop(LoopConn),
}

/// A loop connection's C handle: reference-counted so that the loop (one
/// reference until the close callback returns) and the application
/// (`ws_conn_retain`/`ws_conn_free`) can each let go in any order.
pub(crate) struct LoopConn {
    pub(crate) handle: ConnHandle,
    pub(crate) user_data: AtomicPtr<c_void>,
    refs: AtomicUsize,
    user_refs: AtomicUsize,
}

impl ws_conn {
    pub(crate) fn into_raw(conn: Conn) -> *mut ws_conn {
        let subprotocol = CString::new(conn.subprotocol()).unwrap_or_default();
        guard::register(Box::new(ws_conn {
            kind: ConnKind::Blocking(Box::new(conn)),
            subprotocol,
            c_handlers: Default::default(),
        }))
    }

    /// A handle for a loop connection that just opened; the loop holds its
    /// one reference.
    pub(crate) fn new_loop(handle: ConnHandle, user_data: *mut c_void) -> *mut ws_conn {
        let subprotocol = CString::new(handle.subprotocol()).unwrap_or_default();
        let lc = LoopConn {
            handle,
            user_data: AtomicPtr::new(user_data),
            refs: AtomicUsize::new(1),
            user_refs: AtomicUsize::new(0),
        };
        guard::register(Box::new(ws_conn { kind: ConnKind::Loop(lc), subprotocol, c_handlers: Default::default() }))
    }

    /// The blocking connection, or `WS_ERR_UNSUPPORTED` for a loop
    /// connection (its messages arrive in callbacks; it never blocks).
    pub(crate) fn blocking(&self) -> Result<&Conn, ws_status> {
        match &self.kind {
            ConnKind::Blocking(c) => Ok(c),
            ConnKind::Loop(_) => {
                guard::set_last_error(
                    "not available on an event-loop connection (its messages arrive in the loop's callbacks, \
                     and it never blocks)",
                );
                Err(WS_ERR_UNSUPPORTED)
            }
        }
    }

    pub(crate) fn loop_conn(&self) -> Option<&LoopConn> {
        match &self.kind {
            ConnKind::Loop(l) => Some(l),
            ConnKind::Blocking(_) => None,
        }
    }
}

impl LoopConn {
    /// One more reference, owned by the application (`ws_conn_retain`).
    pub(crate) fn retain(&self) {
        self.refs.fetch_add(1, Ordering::AcqRel);
        self.user_refs.fetch_add(1, Ordering::AcqRel);
    }
}

/// Operations both kinds of connection have.
impl ws_conn {
    pub(crate) fn write_any(&self, t: MessageType, data: &[u8]) -> Result<(), Error> {
        match &self.kind {
            ConnKind::Blocking(c) => c.write_message(t, data),
            ConnKind::Loop(l) => l.handle.send(t, data),
        }
    }
    fn close_now(&self) {
        match &self.kind {
            ConnKind::Blocking(c) => c.close(),
            ConnKind::Loop(l) => l.handle.abort(),
        }
    }
    fn close_code_any(&self) -> Option<u16> {
        match &self.kind {
            ConnKind::Blocking(c) => c.close_code(),
            ConnKind::Loop(l) => l.handle.close_status().map(|(code, _)| code),
        }
    }
    fn close_reason_any(&self) -> Vec<u8> {
        match &self.kind {
            ConnKind::Blocking(c) => c.close_reason(),
            ConnKind::Loop(l) => l.handle.close_status().map(|(_, r)| r.to_vec()).unwrap_or_default(),
        }
    }
    fn addrs(&self) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
        match &self.kind {
            ConnKind::Blocking(c) => (c.local_addr(), c.peer_addr()),
            ConnKind::Loop(l) => (l.handle.local_addr(), l.handle.peer_addr()),
        }
    }
    fn raw_fd_any(&self) -> i32 {
        match &self.kind {
            ConnKind::Blocking(c) => c.raw_fd(),
            ConnKind::Loop(l) => l.handle.raw_fd(),
        }
    }
    fn last_error_any(&self) -> String {
        match &self.kind {
            ConnKind::Blocking(c) => c.last_error(),
            ConnKind::Loop(l) => l.handle.last_error(),
        }
    }
}

/// Drops one reference of a loop connection's handle; the last frees it.
pub(crate) fn release_loop_conn(p: *mut ws_conn) {
    // SAFETY: `p` is a live loop handle: whoever calls this owns one of
    // its references, so the memory is still there.
    let c = unsafe { &*p };
    let Some(l) = c.loop_conn() else { return };
    if l.refs.fetch_sub(1, Ordering::AcqRel) == 1 && guard::unregister(p) {
        // SAFETY: that was the last reference and the handle left the live
        // set: nobody else can reach it.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Borrows the handle behind `c`, or reports NULL.
pub(crate) fn conn_ref<'a>(c: *const ws_conn) -> Result<&'a ws_conn, ws_status> {
    if c.is_null() {
        return Err(invalid("conn is NULL"));
    }
    // SAFETY: a non-NULL `ws_conn*` is a live handle from this library (the
    // C contract: ws_conn_free is the last call on it).
    Ok(unsafe { &*c })
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(s) => return s,
        }
    };
}
pub(crate) use tri;

fn msg_type(t: ws_msg_type) -> Result<MessageType, ws_status> {
    MessageType::from_i32(t)
        .ok_or_else(|| invalid("unknown message type (use WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING or WS_PONG)"))
}

/// Records the error on the connection (its last error) and the thread.
fn conn_status(r: Result<(), Error>) -> ws_status {
    status(r)
}

/// Frees the connection, closing its socket first if it is still open.
/// NULL is a no-op, and so is freeing the same handle twice. Must be the
/// last call on the handle: no other thread may be using it.
/// On an event-loop connection it gives back one `ws_conn_retain`
/// reference (and is a no-op without one): the loop owns the handle until
/// the close callback returns.
#[no_mangle]
pub extern "C" fn ws_conn_free(conn: *mut ws_conn) {
    ffi_value!((), {
        if !guard::is_live(conn) {
            return;
        }
        // SAFETY: a live handle (checked above); the C contract says no
        // other call is using it.
        let loop_conn = unsafe { &*conn }.loop_conn().is_some();
        if loop_conn {
            // SAFETY: as above.
            let l = unsafe { &*conn }.loop_conn().expect("checked");
            // Only a reference taken with ws_conn_retain can be given back.
            if l.user_refs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
                release_loop_conn(conn);
            }
        } else if guard::unregister(conn) {
            // SAFETY: `conn` was registered by into_raw (Box::into_raw) and
            // just left the live set, so this is its only release.
            drop(unsafe { Box::from_raw(conn) });
        }
    })
}

/// Closes the socket at once, without a close handshake (gorilla's Close).
/// Any thread. Blocked reads and writes on other threads return
/// `WS_ERR_LOCALLY_CLOSED`. The handle stays valid until `ws_conn_free`.
/// On an event-loop connection the loop closes it on its next iteration
/// and calls the close callback (1006).
#[no_mangle]
pub extern "C" fn ws_conn_close(conn: *mut ws_conn) -> ws_status {
    ffi_status!({
        tri!(conn_ref(conn)).close_now();
        WS_OK
    })
}

/// The close handshake: sends a close frame with `code` and `reason`
/// (`reason_len` bytes of UTF-8, at most 123; code 1005 sends an empty
/// close), waits up to `timeout_ms` (negative = no limit) for the peer's
/// close, then closes the socket. If no other thread is reading, this call
/// reads (and discards) incoming data messages meanwhile — which ends the
/// validity of a zero-copy payload from `ws_conn_read_message` — otherwise
/// it waits for that reader to see the close. Returns `WS_ERR_TIMEOUT` when the peer did not answer in
/// time (the socket is closed anyway). Any thread.
/// On an event-loop connection it queues the close frame and returns at
/// once (`timeout_ms` is not used: the loop's close timeout applies); the
/// close callback reports the end.
#[no_mangle]
pub extern "C" fn ws_conn_close_graceful(
    conn: *mut ws_conn,
    code: u16,
    reason: *const u8,
    reason_len: usize,
    timeout_ms: i64,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let reason = tri!(bytes(reason, reason_len, "reason"));
        match &c.kind {
            ConnKind::Blocking(b) => conn_status(b.close_graceful_until(code, reason, deadline(timeout_ms))),
            // Never blocks: the loop finishes the handshake (within its
            // close timeout) and reports it in the close callback.
            ConnKind::Loop(l) => conn_status(l.handle.close(code, reason)),
        }
    })
}

/// Reads the next whole text or binary message (gorilla's ReadMessage).
/// On success `*type_out` is `WS_TEXT` or `WS_BINARY` and `*data_out`,
/// `*len_out` point at the payload, owned by the connection and valid until
/// the next call that reads it (`ws_conn_read_message`,
/// `ws_conn_read_message_copy`, `ws_conn_next_reader`,
/// `ws_conn_reader_read`, `ws_conn_close_graceful`) or `ws_conn_free`
/// (zero-copy). Text is validated UTF-8. Control
/// frames that arrive meanwhile go to their handlers. Waits up to the read
/// deadline (`WS_ERR_TIMEOUT` leaves the connection usable; a partial
/// message is kept for the next read). Errors other than timeout are
/// permanent: every later read returns the same. One reader at a time
/// (`WS_ERR_BUSY` otherwise).
#[no_mangle]
pub extern "C" fn ws_conn_read_message(
    conn: *mut ws_conn,
    type_out: *mut ws_msg_type,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        tri!(need(type_out, "type_out"));
        tri!(need(data_out, "data_out"));
        tri!(need(len_out, "len_out"));
        match tri!(c.blocking()).read_message() {
            Ok(m) => {
                put(type_out, m.kind() as i32);
                put(data_out, m.data().as_ptr());
                put(len_out, m.data().len());
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Like `ws_conn_read_message`, but the payload is copied into memory from
/// malloc() that the caller owns and releases with `ws_bytes_free` (or
/// free()). An empty message gives a non-NULL pointer to 1 byte.
#[no_mangle]
pub extern "C" fn ws_conn_read_message_copy(
    conn: *mut ws_conn,
    type_out: *mut ws_msg_type,
    data_out: *mut *mut u8,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        tri!(need(type_out, "type_out"));
        tri!(need(data_out, "data_out"));
        tri!(need(len_out, "len_out"));
        match tri!(c.blocking()).read_message() {
            Ok(m) => {
                let data = m.data();
                // SAFETY: malloc of at least one byte; checked for NULL below.
                let p = unsafe { libc::malloc(data.len().max(1)) } as *mut u8;
                if p.is_null() {
                    guard::set_last_error("out of memory");
                    return WS_ERR_INTERNAL;
                }
                // SAFETY: `p` has room for data.len() bytes and does not overlap `data`.
                unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
                put(type_out, m.kind() as i32);
                put(data_out, p);
                put(len_out, data.len());
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Frees memory returned by `ws_conn_read_message_copy`. NULL is a no-op.
#[no_mangle]
pub extern "C" fn ws_bytes_free(data: *mut u8) {
    // SAFETY: `data` came from libc::malloc in ws_conn_read_message_copy (or is NULL).
    unsafe { libc::free(data as *mut c_void) }
}

/// Sends a whole message (gorilla's WriteMessage). `type` is `WS_TEXT` or
/// `WS_BINARY` (control types are sent as by `ws_conn_write_control` with
/// the write deadline). libws does not check that text is UTF-8. Any
/// thread; writes are serialized, and a data message waits for another
/// thread's open streaming writer. Waits up to the write deadline:
/// `WS_ERR_TIMEOUT` means nothing was sent; `WS_ERR_WRITE_INCOMPLETE` that
/// the message is committed and its rest queued. `WS_ERR_CLOSE_SENT` after
/// a close frame went out.
/// On an event-loop connection the message is queued and the call never
/// blocks (the loop writes it); `WS_ERR_QUEUE_FULL` past the loop's
/// `ws_loop_set_max_buffered`.
#[no_mangle]
pub extern "C" fn ws_conn_write_message(
    conn: *mut ws_conn,
    r#type: ws_msg_type,
    data: *const u8,
    len: usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let t = tri!(msg_type(r#type));
        let data = tri!(bytes(data, len, "data"));
        conn_status(c.write_any(t, data))
    })
}

/// Sends a control frame — `WS_PING`, `WS_PONG` or `WS_CLOSE` — with at
/// most 125 bytes of payload, waiting at most `timeout_ms` (negative = no
/// limit, 0 = only if it can go out at once). A close payload must be a
/// valid code plus UTF-8 reason (see `ws_format_close_message`) or empty.
/// Any thread, including while another thread has a streaming writer open
/// (the frame goes between two fragments). On an event-loop connection
/// the frame is queued at once (`timeout_ms` is not used).
#[no_mangle]
pub extern "C" fn ws_conn_write_control(
    conn: *mut ws_conn,
    r#type: ws_msg_type,
    data: *const u8,
    len: usize,
    timeout_ms: i64,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let t = tri!(msg_type(r#type));
        let data = tri!(bytes(data, len, "data"));
        match &c.kind {
            ConnKind::Blocking(b) => conn_status(b.write_control(t, data, deadline(timeout_ms))),
            ConnKind::Loop(_) if !t.is_control() => invalid("write_control sends WS_CLOSE, WS_PING or WS_PONG"),
            // Queued at once: the timeout does not apply.
            ConnKind::Loop(l) => conn_status(l.handle.send(t, data)),
        }
    })
}

/// Sends the bytes a `WS_ERR_WRITE_INCOMPLETE` left queued, within the
/// write deadline. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_flush(conn: *mut ws_conn) -> ws_status {
    ffi_status!({
        match &tri!(conn_ref(conn)).kind {
            ConnKind::Blocking(b) => conn_status(b.flush()),
            // The loop writes queued frames on every iteration.
            ConnKind::Loop(_) => WS_OK,
        }
    })
}

/// Starts reading the next message in pieces (gorilla's NextReader): on
/// success `*type_out` is `WS_TEXT` or `WS_BINARY`; read the payload with
/// `ws_conn_reader_read`. An unfinished previous message is discarded.
/// Same rules as `ws_conn_read_message` (deadline, handlers, one reader).
#[no_mangle]
pub extern "C" fn ws_conn_next_reader(conn: *mut ws_conn, type_out: *mut ws_msg_type) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        tri!(need(type_out, "type_out"));
        match tri!(c.blocking()).next_reader() {
            Ok(t) => {
                put(type_out, t as i32);
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Reads up to `cap` (at least 1) bytes of the current message into `buf`;
/// `*n_out` is the count, and 0 means the message has ended. Text arrives
/// validated (an invalid sequence fails the read as soon as it arrives).
/// The reading thread only.
#[no_mangle]
pub extern "C" fn ws_conn_reader_read(conn: *mut ws_conn, buf: *mut u8, cap: usize, n_out: *mut usize) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        tri!(need(n_out, "n_out"));
        let out = tri!(bytes_mut(buf, cap, "buf"));
        match tri!(c.blocking()).reader_read(out) {
            Ok(n) => {
                put(n_out, n);
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Opens a streaming writer for a `WS_TEXT` or `WS_BINARY` message
/// (gorilla's NextWriter). Append with `ws_conn_writer_write`, finish with
/// `ws_conn_writer_close`. If this thread already has a writer open it is
/// finished first; if another thread has one, this waits for it (up to the
/// write deadline). Control frames from any thread still go out meanwhile.
#[no_mangle]
pub extern "C" fn ws_conn_next_writer(conn: *mut ws_conn, r#type: ws_msg_type) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let t = tri!(msg_type(r#type));
        conn_status(tri!(c.blocking()).next_writer(t))
    })
}

/// Appends `len` bytes to the open writer's message; each full write buffer
/// goes out as one frame. `WS_ERR_TIMEOUT`: none of `data` was taken (retry
/// is safe). Any thread, but one message is written by one thread at a time.
#[no_mangle]
pub extern "C" fn ws_conn_writer_write(conn: *mut ws_conn, data: *const u8, len: usize) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let data = tri!(bytes(data, len, "data"));
        conn_status(tri!(c.blocking()).writer_write(data))
    })
}

/// Sends the rest of the open writer's message as its final frame.
/// `WS_ERR_TIMEOUT` keeps the writer open so the call can be repeated.
#[no_mangle]
pub extern "C" fn ws_conn_writer_close(conn: *mut ws_conn) -> ws_status {
    ffi_status!({ conn_status(tri!(tri!(conn_ref(conn)).blocking()).writer_close()) })
}

/// Sets the read deadline `timeout_ms` from now for all later reads
/// (negative = none, the default; 0 = reads only take what has arrived).
/// Like gorilla's SetReadDeadline, the deadline is a fixed point in time.
/// A read that times out returns `WS_ERR_TIMEOUT` and the connection stays
/// usable. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_read_deadline(conn: *mut ws_conn, timeout_ms: i64) -> ws_status {
    ffi_status!({
        tri!(tri!(conn_ref(conn)).blocking()).set_read_deadline(deadline(timeout_ms));
        WS_OK
    })
}

/// Sets the read (idle) timeout: no single wait for the socket inside a
/// read lasts longer than `timeout_ms` (negative = no limit; 0 = reads
/// only take what has arrived). It acts with the read deadline, whichever
/// comes first, and restarts at every wait, so it bounds silence, not the
/// read. Server connections start with 60000, client ones with none.
/// `WS_ERR_TIMEOUT` keeps the connection usable. Blocking connections
/// only (`WS_ERR_UNSUPPORTED` on loop connections). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_read_timeout(conn: *mut ws_conn, timeout_ms: i64) -> ws_status {
    ffi_status!({
        tri!(tri!(conn_ref(conn)).blocking()).set_read_timeout(super::timeout::timeout(timeout_ms));
        WS_OK
    })
}

/// Sets the write timeout: no single wait for the socket to take more
/// bytes lasts longer than `timeout_ms` (negative = no limit). Acts with
/// the write deadline like the read timeout. Server connections start
/// with 10000, client ones with none. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_write_timeout(conn: *mut ws_conn, timeout_ms: i64) -> ws_status {
    ffi_status!({
        tri!(tri!(conn_ref(conn)).blocking()).set_write_timeout(super::timeout::timeout(timeout_ms));
        WS_OK
    })
}

/// Sets the write deadline `timeout_ms` from now for all later writes
/// (negative = none, the default). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_write_deadline(conn: *mut ws_conn, timeout_ms: i64) -> ws_status {
    ffi_status!({
        tri!(tri!(conn_ref(conn)).blocking()).set_write_deadline(deadline(timeout_ms));
        WS_OK
    })
}

/// Sets the largest message the peer may send, in bytes (0 = no limit;
/// default 64 MiB). A larger message fails the read with
/// `WS_ERR_READ_LIMIT` after sending close 1009. Waits for a read in
/// progress on another thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_read_limit(conn: *mut ws_conn, limit: u64) -> ws_status {
    ffi_status!({ conn_status(tri!(tri!(conn_ref(conn)).blocking()).set_read_limit(limit)) })
}

fn handler_error(what: &str, st: ws_status) -> Error {
    Error::new(ErrorKind::Handler, format!("the {what} handler returned status {st}"))
}

fn control_closure(
    me: HandlePtr,
    f: unsafe extern "C" fn(*mut ws_conn, *const u8, usize, *mut c_void) -> ws_status,
    user: UserData,
    what: &'static str,
) -> ControlHandler {
    Arc::new(move |_c: &Conn, payload: &[u8]| {
        let me = me;
        let user = user;
        // SAFETY: calling the caller's handler as registered, with a payload
        // valid for the duration of the call.
        let st = unsafe { f(me.0, payload.as_ptr(), payload.len(), user.0) };
        if st == WS_OK {
            Ok(())
        } else {
            Err(handler_error(what, st))
        }
    })
}

/// Sets the handler for received pings (gorilla's SetPingHandler); NULL
/// restores the default, which answers with a pong carrying the same
/// payload. Runs on the reading thread. Any thread may set it.
#[no_mangle]
pub extern "C" fn ws_conn_set_ping_handler(
    conn: *mut ws_conn,
    handler: ws_control_handler,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let user = UserData(user_data);
        let rust = handler.map(|f| control_closure(HandlePtr(conn), f, user, "ping"));
        if let Ok(mut h) = c.c_handlers.lock() {
            h.ping = handler.map(|f| (f, user));
        }
        conn_status(tri!(c.blocking()).set_ping_handler(rust))
    })
}

/// Sets the handler for received pongs (gorilla's SetPongHandler); NULL
/// restores the default, which does nothing.
#[no_mangle]
pub extern "C" fn ws_conn_set_pong_handler(
    conn: *mut ws_conn,
    handler: ws_control_handler,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let user = UserData(user_data);
        let rust = handler.map(|f| control_closure(HandlePtr(conn), f, user, "pong"));
        if let Ok(mut h) = c.c_handlers.lock() {
            h.pong = handler.map(|f| (f, user));
        }
        conn_status(tri!(c.blocking()).set_pong_handler(rust))
    })
}

/// Sets the handler for a received close frame (gorilla's
/// SetCloseHandler); NULL restores the default, which sends a close frame
/// with the same code back. A custom handler that wants to answer calls
/// `ws_conn_write_control` or `ws_conn_default_close_handler` itself.
#[no_mangle]
pub extern "C" fn ws_conn_set_close_handler(
    conn: *mut ws_conn,
    handler: ws_close_handler,
    user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let user = UserData(user_data);
        let me = HandlePtr(conn);
        let rust: Option<CloseHandler> = handler.map(|f| {
            Arc::new(move |_c: &Conn, code: u16, reason: &[u8]| {
                let me = me;
                let user = user;
                // SAFETY: calling the caller's handler as registered, with a
                // reason valid for the duration of the call.
                let st = unsafe { f(me.0, code, reason.as_ptr(), reason.len(), user.0) };
                if st == WS_OK {
                    Ok(())
                } else {
                    Err(handler_error("close", st))
                }
            }) as CloseHandler
        });
        if let Ok(mut h) = c.c_handlers.lock() {
            h.close = handler.map(|f| (f, user));
        }
        conn_status(tri!(c.blocking()).set_close_handler(rust))
    })
}

/// The current ping handler and its user data (gorilla's PingHandler):
/// `ws_conn_default_ping_handler` with NULL user data when none is set.
#[no_mangle]
pub extern "C" fn ws_conn_ping_handler(
    conn: *mut ws_conn,
    handler_out: *mut ws_control_handler,
    user_data_out: *mut *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let h = c.c_handlers.lock().map(|h| h.ping).unwrap_or(None);
        put(handler_out, Some(h.map_or(ws_conn_default_ping_handler as _, |p| p.0)));
        put(user_data_out, h.map_or(std::ptr::null_mut(), |p| p.1 .0));
        WS_OK
    })
}

/// The current pong handler and its user data:
/// `ws_conn_default_pong_handler` with NULL user data when none is set.
#[no_mangle]
pub extern "C" fn ws_conn_pong_handler(
    conn: *mut ws_conn,
    handler_out: *mut ws_control_handler,
    user_data_out: *mut *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let h = c.c_handlers.lock().map(|h| h.pong).unwrap_or(None);
        put(handler_out, Some(h.map_or(ws_conn_default_pong_handler as _, |p| p.0)));
        put(user_data_out, h.map_or(std::ptr::null_mut(), |p| p.1 .0));
        WS_OK
    })
}

/// The current close handler and its user data:
/// `ws_conn_default_close_handler` with NULL user data when none is set.
#[no_mangle]
pub extern "C" fn ws_conn_close_handler(
    conn: *mut ws_conn,
    handler_out: *mut ws_close_handler,
    user_data_out: *mut *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let h = c.c_handlers.lock().map(|h| h.close).unwrap_or(None);
        put(handler_out, Some(h.map_or(ws_conn_default_close_handler as _, |p| p.0)));
        put(user_data_out, h.map_or(std::ptr::null_mut(), |p| p.1 .0));
        WS_OK
    })
}

/// The default ping handler: sends a pong with the same payload (waiting
/// at most a second for a full socket). Callable from a custom handler.
#[no_mangle]
pub extern "C" fn ws_conn_default_ping_handler(
    conn: *mut ws_conn,
    data: *const u8,
    len: usize,
    _user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let data = tri!(bytes(data, len, "data"));
        conn_status(tri!(c.blocking()).default_ping_handler(data))
    })
}

/// The default pong handler: does nothing.
#[no_mangle]
pub extern "C" fn ws_conn_default_pong_handler(
    conn: *mut ws_conn,
    _data: *const u8,
    _len: usize,
    _user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        tri!(conn_ref(conn));
        WS_OK
    })
}

/// The default close handler: sends a close frame with the same code (an
/// empty one for 1005) unless a close was already sent.
#[no_mangle]
pub extern "C" fn ws_conn_default_close_handler(
    conn: *mut ws_conn,
    code: u16,
    reason: *const u8,
    len: usize,
    _user_data: *mut c_void,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let reason = tri!(bytes(reason, len, "reason"));
        conn_status(tri!(c.blocking()).default_close_handler(code, reason))
    })
}

/// The close code that ended the connection: the peer's (1005 when its
/// close frame had none), 1006 when TCP dropped without a close frame, or
/// 0 while the connection has not ended. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_close_code(conn: *const ws_conn) -> u16 {
    ffi_value!(0, {
        match conn_ref(conn) {
            Ok(c) => c.close_code_any().unwrap_or(0),
            Err(_) => 0,
        }
    })
}

/// Copies the peer's close reason (UTF-8) into `buf` with a NUL;
/// `*len_out` gets its length. `WS_ERR_BUFFER_TOO_SMALL` if it does not
/// fit (124 bytes always do). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_close_reason(
    conn: *const ws_conn,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        copy_out(&c.close_reason_any(), buf, cap, len_out)
    })
}

/// gorilla's IsCloseError: true when `status` is `WS_ERR_CLOSED` and the
/// connection's close code is one of the `n` `codes`.
#[no_mangle]
pub extern "C" fn ws_is_close_error(conn: *const ws_conn, status: ws_status, codes: *const u16, n: usize) -> bool {
    ffi_value!(false, {
        let (Ok(c), Ok(codes)) = (conn_ref(conn), u16_slice(codes, n)) else { return false };
        status == WS_ERR_CLOSED && c.close_code_any().is_some_and(|code| codes.contains(&code))
    })
}

/// gorilla's IsUnexpectedCloseError: true when `status` is `WS_ERR_CLOSED`
/// and the close code is not one of the `n` `expected` codes.
#[no_mangle]
pub extern "C" fn ws_is_unexpected_close_error(
    conn: *const ws_conn,
    status: ws_status,
    expected: *const u16,
    n: usize,
) -> bool {
    ffi_value!(false, {
        let (Ok(c), Ok(expected)) = (conn_ref(conn), u16_slice(expected, n)) else { return false };
        status == WS_ERR_CLOSED && c.close_code_any().is_some_and(|code| !expected.contains(&code))
    })
}

fn u16_slice<'a>(p: *const u16, n: usize) -> Result<&'a [u16], ws_status> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(invalid("codes is NULL but its count is not 0"));
    }
    // SAFETY: the caller passes an array of `n` codes.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// The negotiated subprotocol, "" when none. Owned by the connection,
/// valid until `ws_conn_free`. Any thread. NULL only for a NULL `conn`.
#[no_mangle]
pub extern "C" fn ws_conn_subprotocol(conn: *const ws_conn) -> *const c_char {
    ffi_value!(std::ptr::null(), {
        match conn_ref(conn) {
            Ok(c) => c.subprotocol.as_ptr(),
            Err(_) => std::ptr::null(),
        }
    })
}

/// Copies the local address ("ip:port", IPv6 as "[ip]:port") into `buf`.
#[no_mangle]
pub extern "C" fn ws_conn_local_addr(
    conn: *const ws_conn,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let s = c.addrs().0.map(|a| a.to_string()).unwrap_or_default();
        copy_out(s.as_bytes(), buf, cap, len_out)
    })
}

/// Copies the peer's address ("ip:port", IPv6 as "[ip]:port") into `buf`.
#[no_mangle]
pub extern "C" fn ws_conn_remote_addr(
    conn: *const ws_conn,
    buf: *mut c_char,
    cap: usize,
    len_out: *mut usize,
) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        let s = c.addrs().1.map(|a| a.to_string()).unwrap_or_default();
        copy_out(s.as_bytes(), buf, cap, len_out)
    })
}

/// The socket descriptor (gorilla's NetConn), e.g. to set socket options.
/// Reading or writing it directly corrupts the connection; libws closes it
/// in `ws_conn_free`. -1 for a NULL `conn`.
#[no_mangle]
pub extern "C" fn ws_conn_fd(conn: *const ws_conn) -> i32 {
    ffi_value!(-1, {
        match conn_ref(conn) {
            Ok(c) => c.raw_fd_any(),
            Err(_) => -1,
        }
    })
}

/// Copies the message of the last error any call on this connection
/// returned into `buf` (NUL-terminated, truncated to fit) and returns its
/// full length, like snprintf. `buf` may be NULL when `cap` is 0. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_last_error(conn: *const ws_conn, buf: *mut c_char, cap: usize) -> usize {
    ffi_value!(0, {
        match conn_ref(conn) {
            Ok(c) => copy_c_string(c.last_error_any().as_bytes(), buf, cap),
            Err(_) => 0,
        }
    })
}
