//! Prepared messages (gorilla's PreparedMessage): a message built once and
//! sent to many connections from any thread. The compressed payload is
//! computed once per distinct (level, window) setting and reused, so a
//! broadcast to 10,000 compressed connections costs one compression.

use std::sync::{Arc, Mutex};

use super::conn::MessageType;
use crate::error::{Error, Result};
use crate::proto::deflate::codec::backend_level;
use crate::proto::deflate::Deflater;
use crate::proto::frame::MAX_CONTROL_PAYLOAD;

/// A compressed rendering of the payload for one compression setting.
struct Compressed {
    level: i32,
    window_bits: u8,
    payload: Arc<Vec<u8>>,
}

pub struct PreparedMessage {
    kind: MessageType,
    data: Vec<u8>,
    compressed: Mutex<Vec<Compressed>>,
}

impl PreparedMessage {
    pub fn new(kind: MessageType, data: &[u8]) -> Result<PreparedMessage> {
        if kind.is_control() && data.len() > MAX_CONTROL_PAYLOAD {
            return Err(Error::invalid("control frame payload longer than 125 bytes"));
        }
        Ok(PreparedMessage { kind, data: data.to_vec(), compressed: Mutex::new(Vec::new()) })
    }

    pub fn kind(&self) -> MessageType {
        self.kind
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The payload compressed with `level` and a `window_bits` window, on
    /// its own (no earlier data referenced): computed on first use.
    pub(crate) fn compressed(&self, level: i32, window_bits: u8) -> Arc<Vec<u8>> {
        let mut cache = self.compressed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.iter().find(|c| c.level == level && c.window_bits == window_bits) {
            return c.payload.clone();
        }
        let mut out = Vec::with_capacity(self.data.len() / 2 + 64);
        Deflater::new(backend_level(level).unwrap_or_default(), window_bits, true)
            .compress_message(&self.data, &mut out);
        let payload = Arc::new(out);
        cache.push(Compressed { level, window_bits, payload: payload.clone() });
        payload
    }

    /// How many compressed renderings exist (for tests and diagnostics).
    pub fn compressed_variants(&self) -> usize {
        self.compressed.lock().map(|c| c.len()).unwrap_or(0)
    }
}
