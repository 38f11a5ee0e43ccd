//! The part of a loop every thread may touch: the flush list, the command
//! queue, the waker and the settings. The loop's thread owns the rest.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::handle::ConnHandle;
use super::handler::Handler;
use super::timers::TimerFn;
use crate::api::dialer::{DialRequest, Dialer};
use crate::api::pool::BufferPool;
use crate::api::upgrader::Upgrader;
use crate::error::{Error, Result};

/// Settings of a loop's connections, changeable from any thread; they
/// apply from the loop's next sweep (keepalive, idle) or to connections
/// opened afterwards (the send limit).
#[derive(Clone, Copy, Debug)]
pub struct LoopConfig {
    /// Send a ping after this long without receiving anything (None = off).
    pub ping_interval: Option<Duration>,
    /// Close (1006, locally) when nothing arrives this long after a ping.
    pub pong_timeout: Duration,
    /// Close with 1001 after this long without a message either way.
    pub idle_timeout: Option<Duration>,
    /// How long a close handshake may take before TCP is closed anyway.
    pub close_timeout: Duration,
    /// Sends fail with `QueueFull` past this many queued bytes (0 = no limit).
    pub max_buffered: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig {
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            close_timeout: Duration::from_secs(5),
            max_buffered: 16 * 1024 * 1024,
        }
    }
}

/// Outboxes and message assemblies take buffers of this size from the
/// loop's pool (a buffer that grew past twice this is dropped, not kept):
/// a 64 KiB message and its frame header fit without growing.
const POOL_BUFFER: usize = 64 * 1024 + crate::proto::frame::MAX_HEADER_LEN;
/// Idle buffers the pool keeps: after a burst over thousands of
/// connections, at most 64 x 128 KiB stay allocated.
const POOL_MAX: usize = 64;
/// The largest buffer the loop keeps for its next large message (one at a
/// time, dropped after a sweep period unused): without it, every message
/// over the pool's size costs a fresh allocation and its page faults.
const LARGE_KEEP: usize = 16 * 1024 * 1024;

pub(super) enum Command {
    Listen {
        tcp: mio::net::TcpListener,
        upgrader: Arc<Upgrader>,
        handler: Arc<dyn Handler>,
    },
    Dial {
        request: DialRequest,
        /// The target's addresses, or the proxy's when `tunnel` is set.
        addrs: Vec<std::net::SocketAddr>,
        tunnel: Option<Box<super::tunnel::LoopTunnel>>,
        dialer: Arc<Dialer>,
        handler: Arc<dyn Handler>,
        user: usize,
    },
    AddTimer {
        id: u64,
        after: Duration,
        interval: Option<Duration>,
        callback: TimerFn,
    },
    CancelTimer(u64),
    Shutdown(Duration),
    /// The settings changed: deadlines must be checked again soon.
    Reconfigured,
}

pub(crate) struct LoopShared {
    waker: mio::Waker,
    /// Connections with output to write: (slot, connection id).
    flush: Mutex<Vec<(usize, u64)>>,
    /// The flush list is not empty (set and cleared under its lock), so
    /// the loop's checks of an empty list take no lock.
    flush_queued: AtomicBool,
    commands: Mutex<Vec<Command>>,
    /// Set with every command, cleared when the loop takes them.
    commands_queued: AtomicBool,
    pub(super) stop: AtomicBool,
    next_id: AtomicU64,
    pub(super) config: Mutex<LoopConfig>,
    /// Open connections by id (for broadcasts and counts).
    pub(super) open: Mutex<HashMap<u64, ConnHandle>>,
    pub(super) pool: BufferPool,
    /// Data sends write to the socket at once (see `LoopRemote::set_write_through`).
    pub(super) write_through: AtomicBool,
    /// A write-through send kept an outbox buffer: sweep soon to return it.
    pub(super) buffers_held: AtomicBool,
    /// The one kept large buffer, and whether it was taken since the last sweep.
    large: Mutex<Option<Vec<u8>>>,
    large_used: AtomicBool,
}

thread_local! {
    /// The loop this thread is driving now (its `LoopShared` address), so
    /// a send from a callback does not wake the loop it runs in.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as driving `shared` until dropped.
pub(super) struct Driving(usize);

impl Driving {
    pub fn enter(shared: &Arc<LoopShared>) -> Driving {
        let prev = DRIVING.with(|d| d.replace(Arc::as_ptr(shared) as usize));
        Driving(prev)
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.0));
    }
}

impl LoopShared {
    pub fn new(waker: mio::Waker) -> LoopShared {
        LoopShared {
            waker,
            flush: Mutex::new(Vec::new()),
            flush_queued: AtomicBool::new(false),
            commands: Mutex::new(Vec::new()),
            commands_queued: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            config: Mutex::new(LoopConfig::default()),
            open: Mutex::new(HashMap::new()),
            pool: BufferPool::with_limit(POOL_BUFFER, POOL_MAX),
            write_through: AtomicBool::new(false),
            buffers_held: AtomicBool::new(false),
            large: Mutex::new(None),
            large_used: AtomicBool::new(false),
        }
    }

    fn on_loop_thread(&self) -> bool {
        DRIVING.with(|d| d.get() == self as *const LoopShared as usize)
    }

    /// Wakes the loop's thread unless it is this one.
    pub fn wake(&self) {
        if !self.on_loop_thread() {
            let _ = self.waker.wake();
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn schedule(&self, slot: usize, id: u64) {
        let was_empty = match self.flush.lock() {
            Ok(mut f) => {
                f.push((slot, id));
                self.flush_queued.store(true, Ordering::Release);
                f.len() == 1
            }
            Err(_) => return,
        };
        // One wake per batch: the loop takes the whole list at once.
        if was_empty {
            self.wake();
        }
    }

    /// Swaps the flush list into `into` (left as it is when the list is
    /// empty). A push that races with the flag's check wakes the loop.
    #[inline]
    pub fn take_flush(&self, into: &mut Vec<(usize, u64)>) {
        if self.flush_queued.load(Ordering::Acquire) {
            self.swap_flush(into);
        }
    }

    fn swap_flush(&self, into: &mut Vec<(usize, u64)>) {
        if let Ok(mut f) = self.flush.lock() {
            std::mem::swap(&mut *f, into);
            self.flush_queued.store(false, Ordering::Release);
        }
    }

    pub fn command(&self, c: Command) -> Result<()> {
        self.commands.lock().map_err(|_| Error::poisoned())?.push(c);
        self.commands_queued.store(true, Ordering::Release);
        self.wake();
        Ok(())
    }

    /// The queued commands; the loop asks several times per iteration, so
    /// an empty queue is answered from a flag without taking the lock.
    pub fn take_commands(&self) -> Vec<Command> {
        if !self.commands_queued.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.commands.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default()
    }

    /// A buffer for `need` bytes: the kept large one when `need` is over
    /// the pool's size and it fits, else one from the pool.
    pub fn buffer_for(&self, need: usize) -> Vec<u8> {
        if need > self.pool.buffer_size() {
            if let Ok(mut l) = self.large.lock() {
                if l.as_ref().is_some_and(|b| b.capacity() >= need) {
                    self.large_used.store(true, Ordering::Relaxed);
                    return l.take().unwrap_or_default();
                }
            }
        }
        self.pool.get()
    }

    /// Gives a buffer back: to the pool, or, when it grew past the pool's
    /// size (up to LARGE_KEEP), as the kept large buffer.
    pub fn recycle(&self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 2 * self.pool.buffer_size() && cap <= LARGE_KEEP {
            if let Ok(mut l) = self.large.lock() {
                if !l.as_ref().is_some_and(|b| b.capacity() >= cap) {
                    buf.clear();
                    *l = Some(buf);
                    self.large_used.store(true, Ordering::Relaxed);
                    // A sweep must come to drop it if it stays unused.
                    self.buffers_held.store(true, Ordering::Relaxed);
                }
            }
            return;
        }
        self.pool.put(buf);
    }

    /// The sweep: drops the kept large buffer when nobody took or returned
    /// it since the previous sweep. True while one is kept.
    pub fn age_large(&self) -> bool {
        let Ok(mut l) = self.large.lock() else { return false };
        if !self.large_used.swap(false, Ordering::Relaxed) {
            *l = None;
        }
        l.is_some()
    }

    #[inline]
    pub fn has_commands(&self) -> bool {
        self.commands_queued.load(Ordering::Acquire)
    }

    #[inline]
    pub fn has_flush(&self) -> bool {
        self.flush_queued.load(Ordering::Acquire)
    }

    pub fn config(&self) -> LoopConfig {
        self.config.lock().map(|c| *c).unwrap_or_default()
    }
}
