//! permessage-deflate settings and prepared messages in C.

use std::sync::Arc;

use super::conn::{conn_ref, tri, ws_conn, ws_msg_type, ConnKind};
use super::convert::{bytes, need, put, status};
use super::guard::{self, ffi_status, ffi_value, invalid};
use super::status::*;
use crate::api::config::ConnConfig;
use crate::api::conn::MessageType;
use crate::api::PreparedMessage;
use crate::proto::deflate::codec::backend_level;
use crate::proto::deflate::{DeflateMemory, DeflateOptions};

/// Where compression state lives (`ws_compression_options.memory`); the
/// cost of each per idle connection is tabled in README, "Compression".
pub type ws_compression_memory = i32;
/// The default: zlib states from a per-thread pool for each message; with
/// context takeover a connection keeps only its windows' last bytes
/// (2^window_bits per direction: 8 KiB with the default 12-bit windows).
pub const WS_COMPRESSION_POOLED: ws_compression_memory = 0;
/// Each connection keeps its own zlib states once used: fastest with
/// context takeover, ~180-410 KiB per connection.
pub const WS_COMPRESSION_DEDICATED: ws_compression_memory = 1;
/// Shared compressor: no context takeover either way (asked of the peer),
/// every state pooled per thread, no compression memory per connection.
pub const WS_COMPRESSION_SHARED: ws_compression_memory = 2;

/// permessage-deflate settings for a Dialer (what it offers) or an
/// Upgrader (what it accepts). Start from `ws_compression_options_default`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ws_compression_options {
    /// Server: reset its compressor after every message. Client: ask the
    /// server to. (Less memory, worse compression.)
    pub server_no_context_takeover: bool,
    /// Server: ask the client to reset after every message. Client: do so.
    pub client_no_context_takeover: bool,
    /// Largest window, 8 to 15 bits, the server may compress with. Default
    /// 12 (8 is accepted in negotiation, but then that side sends
    /// uncompressed). A server asks the client for its
    /// `client_max_window_bits`.
    pub server_max_window_bits: u8,
    /// Largest window, 8 to 15 bits, the client may compress with. Default 12.
    pub client_max_window_bits: u8,
    /// Initial compression level of connections: -2 (Huffman only; the
    /// backend uses 1), -1 (default, 6), 0 (none) to 9 (smallest). Default
    /// 1 (zlib-rs's level 2: its level 1 has fixed codes only).
    pub level: i32,
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default 0 (compress everything).
    pub threshold: usize,
    /// The compressor's memLevel, 1 to 9 (zlib's; sizes its symbol buffer:
    /// 7 * 2^(mem_level+6) bytes). Default 8.
    pub mem_level: u8,
    /// `WS_COMPRESSION_POOLED` (default), `WS_COMPRESSION_DEDICATED` or
    /// `WS_COMPRESSION_SHARED`.
    pub memory: ws_compression_memory,
}

/// The defaults: context takeover both ways, 12-bit windows, level 1,
/// threshold 0, memLevel 8, pooled state (~8 KiB per idle connection).
/// For full 15-bit windows with dedicated state set both window bits to
/// 15 and `memory` to `WS_COMPRESSION_DEDICATED`.
#[no_mangle]
pub extern "C" fn ws_compression_options_default() -> ws_compression_options {
    let d = DeflateOptions::default();
    ws_compression_options {
        server_no_context_takeover: d.server_no_context_takeover,
        client_no_context_takeover: d.client_no_context_takeover,
        server_max_window_bits: d.server_max_window_bits,
        client_max_window_bits: d.client_max_window_bits,
        level: crate::api::config::DEFAULT_COMPRESSION_LEVEL,
        threshold: 0,
        mem_level: d.mem_level,
        memory: WS_COMPRESSION_POOLED,
    }
}

/// Applies `opts` (NULL = compression off) to a connection config.
pub(crate) fn apply(conn: &mut ConnConfig, opts: *const ws_compression_options) -> Result<(), ws_status> {
    if opts.is_null() {
        conn.compression = None;
        return Ok(());
    }
    // SAFETY: a non-NULL pointer to a ws_compression_options the caller filled.
    let o = unsafe { *opts };
    let d = DeflateOptions {
        server_no_context_takeover: o.server_no_context_takeover,
        client_no_context_takeover: o.client_no_context_takeover,
        server_max_window_bits: o.server_max_window_bits,
        client_max_window_bits: o.client_max_window_bits,
        mem_level: o.mem_level,
        memory: match o.memory {
            WS_COMPRESSION_POOLED => DeflateMemory::Pooled,
            WS_COMPRESSION_DEDICATED => DeflateMemory::Dedicated,
            WS_COMPRESSION_SHARED => DeflateMemory::Shared,
            _ => return Err(invalid("compression memory must be WS_COMPRESSION_POOLED, _DEDICATED or _SHARED")),
        },
    };
    d.validate().map_err(invalid)?;
    if backend_level(o.level).is_none() {
        return Err(invalid("compression level must be -2 to 9"));
    }
    conn.compression = Some(d);
    conn.compression_level = o.level;
    conn.compression_threshold = o.threshold;
    Ok(())
}

/// Whether permessage-deflate was negotiated on this connection. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_compression_negotiated(conn: *const ws_conn) -> bool {
    ffi_value!(false, {
        conn_ref(conn)
            .map(|c| match &c.kind {
                ConnKind::Blocking(b) => b.compression_negotiated(),
                ConnKind::Loop(l) => l.handle.compression_negotiated(),
            })
            .unwrap_or(false)
    })
}

/// Turns compression of the next messages on or off (gorilla's
/// EnableWriteCompression; on by default when negotiated). No effect when
/// compression was not negotiated. Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_enable_write_compression(conn: *mut ws_conn, enable: bool) -> ws_status {
    ffi_status!({
        status(match &tri!(conn_ref(conn)).kind {
            ConnKind::Blocking(b) => b.enable_write_compression(enable),
            ConnKind::Loop(l) => l.handle.enable_write_compression(enable),
        })
    })
}

/// Sets the compression level of the next messages (gorilla's
/// SetCompressionLevel): -2 to 9, see `ws_compression_options.level`.
/// Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_compression_level(conn: *mut ws_conn, level: i32) -> ws_status {
    ffi_status!({
        status(match &tri!(conn_ref(conn)).kind {
            ConnKind::Blocking(b) => b.set_compression_level(level),
            ConnKind::Loop(l) => l.handle.set_compression_level(level),
        })
    })
}

/// Messages shorter than `bytes` go out uncompressed (streaming writers
/// always compress: their size is not known in advance). Any thread.
#[no_mangle]
pub extern "C" fn ws_conn_set_compression_threshold(conn: *mut ws_conn, bytes: usize) -> ws_status {
    ffi_status!({
        status(match &tri!(conn_ref(conn)).kind {
            ConnKind::Blocking(b) => b.set_compression_threshold(bytes),
            ConnKind::Loop(l) => l.handle.set_compression_threshold(bytes),
        })
    })
}

/// A message prepared once and sent to many connections (gorilla's
/// PreparedMessage). Immutable and thread-safe. Opaque.
pub struct ws_prepared_message {
    pub(crate) pm: Arc<PreparedMessage>,
}

/// Prepares a message of `type` (text, binary, or a control type with at
/// most 125 bytes) with a copy of `len` bytes of `data`. Free with
/// `ws_prepared_message_free`.
#[no_mangle]
pub extern "C" fn ws_prepared_message_new(
    r#type: ws_msg_type,
    data: *const u8,
    len: usize,
    out: *mut *mut ws_prepared_message,
) -> ws_status {
    ffi_status!({
        tri!(need(out, "out"));
        let t = match MessageType::from_i32(r#type) {
            Some(t) => t,
            None => return invalid("unknown message type"),
        };
        let data = tri!(bytes(data, len, "data"));
        match PreparedMessage::new(t, data) {
            Ok(pm) => {
                put(out, guard::register(Box::new(ws_prepared_message { pm: Arc::new(pm) })));
                WS_OK
            }
            Err(e) => guard::fail(&e),
        }
    })
}

/// Frees a prepared message. NULL and a second free are no-ops. No send of
/// it may be in progress.
#[no_mangle]
pub extern "C" fn ws_prepared_message_free(pm: *mut ws_prepared_message) {
    ffi_value!((), {
        if guard::unregister(pm) {
            // SAFETY: registered by ws_prepared_message_new; just left the live set.
            drop(unsafe { Box::from_raw(pm) });
        }
    })
}

/// Sends a prepared message (gorilla's WritePreparedMessage): compressed
/// with this connection's level and window when it compresses; that
/// compressed form is computed once and shared by all connections with the
/// same settings. Same rules as `ws_conn_write_message` (any thread, write
/// deadline, statuses).
#[no_mangle]
pub extern "C" fn ws_conn_write_prepared(conn: *mut ws_conn, pm: *const ws_prepared_message) -> ws_status {
    ffi_status!({
        let c = tri!(conn_ref(conn));
        if pm.is_null() {
            return invalid("prepared message is NULL");
        }
        // SAFETY: a non-NULL pointer is a live handle from ws_prepared_message_new.
        let pm = unsafe { &(*pm).pm };
        status(match &c.kind {
            ConnKind::Blocking(b) => b.write_prepared(pm),
            ConnKind::Loop(l) => l.handle.send_prepared(pm),
        })
    })
}
