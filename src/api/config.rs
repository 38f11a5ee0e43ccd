//! Per-connection settings shared by the Dialer and the Upgrader.

use std::time::Duration;

use super::budget::{MemoryBudget, DEFAULT_BUDGET_WAIT};
use super::pool::BufferPool;
use crate::proto::deflate::DeflateOptions;

pub const DEFAULT_READ_BUFFER: usize = 16 * 1024;
pub const DEFAULT_WRITE_BUFFER: usize = 16 * 1024;
/// The default read limit: 64 MiB (a safe default; 0 means no limit).
pub const DEFAULT_READ_LIMIT: u64 = 64 * 1024 * 1024;
/// Below this a read buffer could not hold a control frame (2+4+125 bytes)
/// and a header together.
pub const MIN_BUFFER: usize = 256;
/// The largest read or write buffer (and pool buffer) accepted: a buffer
/// is allocated whole, so an absurd size would abort the process.
pub const MAX_BUFFER: usize = 64 * 1024 * 1024;
/// gorilla's defaultCompressionLevel: fast, most of the gain for text.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 1;

#[derive(Clone, Debug)]
pub struct ConnConfig {
    pub read_buffer_size: usize,
    pub write_buffer_size: usize,
    pub write_buffer_pool: Option<BufferPool>,
    pub read_limit: u64,
    /// permessage-deflate to offer (Dialer) or accept (Upgrader); `None` = off.
    pub compression: Option<DeflateOptions>,
    /// Initial compression level of new connections (gorilla's default 1).
    pub compression_level: i32,
    /// Messages shorter than this are sent uncompressed.
    pub compression_threshold: usize,
    /// The memory budget the connections' unread input counts against;
    /// `None` = the process-wide one ([`MemoryBudget::process`]).
    pub budget: Option<MemoryBudget>,
    /// How long a connection may wait for memory from the budget before
    /// it is closed (1009 or 1008).
    pub budget_wait: Duration,
    /// The longest a read waits for the socket (an idle timeout), applied
    /// per wait as `min(read deadline, now + read_timeout)`; `None` = only
    /// the deadline. A read that times out keeps its partial state.
    pub read_timeout: Option<Duration>,
    /// The longest a write waits for the socket to take more (a stall
    /// timeout), applied per wait like `read_timeout`.
    pub write_timeout: Option<Duration>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            read_buffer_size: DEFAULT_READ_BUFFER,
            write_buffer_size: DEFAULT_WRITE_BUFFER,
            write_buffer_pool: None,
            read_limit: DEFAULT_READ_LIMIT,
            compression: None,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            compression_threshold: 0,
            budget: None,
            budget_wait: DEFAULT_BUDGET_WAIT,
            read_timeout: None,
            write_timeout: None,
        }
    }
}

/// A server connection's default read (idle) timeout: a peer silent this
/// long is not waited for longer (the read returns `Timeout`).
pub const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// A server connection's default write timeout: a peer that takes no
/// bytes for this long is not waited for longer.
pub const SERVER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

impl ConnConfig {
    /// The defaults of an `Upgrader`'s connections: as `Default`, with the
    /// server read and write timeouts.
    pub fn server() -> ConnConfig {
        ConnConfig {
            read_timeout: Some(SERVER_READ_TIMEOUT),
            write_timeout: Some(SERVER_WRITE_TIMEOUT),
            ..ConnConfig::default()
        }
    }

    /// The budget new connections charge.
    pub fn memory_budget(&self) -> MemoryBudget {
        self.budget.clone().unwrap_or_else(|| MemoryBudget::process().clone())
    }

    /// Sets buffer sizes; 0 keeps the default (as gorilla does). Sizes
    /// above [`MAX_BUFFER`] are refused.
    pub fn set_buffer_sizes(&mut self, read: usize, write: usize) -> crate::Result<()> {
        if read > MAX_BUFFER || write > MAX_BUFFER {
            return Err(crate::Error::invalid("buffer sizes above 64 MiB are refused"));
        }
        self.read_buffer_size = if read == 0 { DEFAULT_READ_BUFFER } else { read.max(MIN_BUFFER) };
        self.write_buffer_size = if write == 0 { DEFAULT_WRITE_BUFFER } else { write.max(MIN_BUFFER) };
        Ok(())
    }
}
