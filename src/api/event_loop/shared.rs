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

pub(super) enum Command {
    Listen {
        tcp: mio::net::TcpListener,
        upgrader: Arc<Upgrader>,
        handler: Arc<dyn Handler>,
    },
    Dial {
        request: DialRequest,
        addrs: Vec<std::net::SocketAddr>,
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
}

pub(crate) struct LoopShared {
    waker: mio::Waker,
    /// Connections with output to write: (slot, connection id).
    flush: Mutex<Vec<(usize, u64)>>,
    commands: Mutex<Vec<Command>>,
    /// Set with every command, cleared when the loop takes them.
    commands_queued: AtomicBool,
    pub(super) stop: AtomicBool,
    next_id: AtomicU64,
    pub(super) config: Mutex<LoopConfig>,
    /// Open connections by id (for broadcasts and counts).
    pub(super) open: Mutex<HashMap<u64, ConnHandle>>,
    pub(super) pool: BufferPool,
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
            commands: Mutex::new(Vec::new()),
            commands_queued: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            config: Mutex::new(LoopConfig::default()),
            open: Mutex::new(HashMap::new()),
            pool: BufferPool::with_limit(POOL_BUFFER, POOL_MAX),
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
                f.len() == 1
            }
            Err(_) => return,
        };
        // One wake per batch: the loop takes the whole list at once.
        if was_empty {
            self.wake();
        }
    }

    pub fn take_flush(&self, into: &mut Vec<(usize, u64)>) {
        if let Ok(mut f) = self.flush.lock() {
            std::mem::swap(&mut *f, into);
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

    pub fn has_commands(&self) -> bool {
        self.commands_queued.load(Ordering::Acquire)
    }

    pub fn has_flush(&self) -> bool {
        self.flush.lock().map(|f| !f.is_empty()).unwrap_or(false)
    }

    pub fn config(&self) -> LoopConfig {
        self.config.lock().map(|c| *c).unwrap_or_default()
    }
}
