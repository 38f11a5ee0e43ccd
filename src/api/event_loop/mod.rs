//! The event loop: many connections on one thread over a mio `Poll`.
//!
//! `EventLoop` is driven by one thread at a time (`poll` once per frame
//! for a game engine, or `run`); `LoopRemote` is its any-thread face
//! (listen, dial, timers, stop, shutdown, broadcast), and `ConnHandle` a
//! connection's (send, close). Work from other threads goes through the
//! shared command queue and flush list and wakes the loop once per batch.
//!
//! One iteration: apply commands, wait for readiness (or the next timer),
//! read every ready socket into the loop's one read buffer and dispatch
//! callbacks, run due timers, sweep timeouts, then write every connection
//! with queued output — once, so frames queued in one iteration leave in
//! one syscall.

mod dial;
mod handle;
mod handler;
mod heap_release;
mod live;
mod reconnect;
mod shared;
mod timers;
mod tunnel;

pub use handle::ConnHandle;
pub use handler::Handler;
pub use reconnect::{Backoff, Reconnector};
pub use shared::LoopConfig;
pub use timers::TimerFn;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use self::dial::{DialStep, Dialing};
use self::handle::ConnShared;
use self::heap_release::HeapRelease;
use self::live::{LiveConn, Outcome};
use self::shared::{Command, Driving, LoopShared};
use self::timers::Timers;
use self::tunnel::LoopTunnel;
use super::conn::MessageType;
use super::dial_stream::choose_proxy;
use super::dialer::{resolve, Dialer};
use super::http::Request;
use super::prepared::PreparedMessage;
use super::server_handshake::{PendingHandshake, Step};
use super::upgrader::Upgrader;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::engine::{close_state, Phase, TcpAfterClose, TimeoutAction, TimeoutConfig};
use crate::proto::{close, Role};
use crate::transport::accept::{classify, AcceptFailure};
use crate::transport::proxy::open::tunnel_machine;
use crate::transport::tcp::bind_listener;
use crate::transport::Stream;

const WAKER: Token = Token(usize::MAX);
/// The loop's one read buffer: a 64 KiB message and its header fit with
/// room to spare, so most messages are handed out without a copy.
const READ_BUFFER: usize = 256 * 1024;
/// The shortest time between two timeout checks (handshake, keepalive,
/// idle, close). A sweep is due only at the earliest deadline it found, or
/// this soon after something that may set an earlier one (a new
/// connection, a flush, a settings change): idle connections do not wake
/// the loop 20 times a second.
const SWEEP_EVERY: Duration = Duration::from_millis(50);
/// Idle pooled buffers kept through quiet periods (a burst's surplus is
/// freed over a few sweeps in which nobody took one).
const POOL_KEEP_IDLE: usize = 4;
/// Out of descriptors, a listener is tried again after this long (or
/// sooner, when a connection closes): its edge-triggered readiness fired
/// once for the clients now queued and will not fire again for them.
const ACCEPT_RETRY: Duration = crate::api::listener::ACCEPT_BACKOFF;
/// While connections wait for memory, the loop asks the budget again at
/// least this often (memory may be freed on another thread, which does
/// not wake this loop).
const STARVED_RETRY: Duration = Duration::from_millis(10);

/// One readiness event, copied out of mio's list.
#[derive(Clone, Copy)]
struct Ready {
    token: usize,
    read: bool,
    write: bool,
    to_end: bool,
}

struct ListenerEntry {
    tcp: mio::net::TcpListener,
    upgrader: Arc<Upgrader>,
    handler: Arc<dyn Handler>,
}

struct Accepting {
    hs: PendingHandshake,
    upgrader: Arc<Upgrader>,
    handler: Arc<dyn Handler>,
}

enum Entry {
    Listener(ListenerEntry),
    Accepting(Box<Accepting>),
    Dialing(Box<Dialing>),
    Open(Box<LiveConn>),
}

pub struct EventLoop {
    poll: Poll,
    events: Events,
    shared: Arc<LoopShared>,
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    timers: Timers,
    rbuf: Vec<u8>,
    flushing: Vec<(usize, u64)>,
    again: Vec<usize>,
    /// Reused every iteration so that polling allocates nothing.
    ready: Vec<Ready>,
    again_spare: Vec<usize>,
    /// When the next sweep is due (None: no deadline anywhere).
    next_sweep: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// When the last wait returned: the time stamp of this iteration's reads.
    now: Instant,
    /// Slots in use, and how many of them are listeners.
    occupied: usize,
    listeners: usize,
    /// Listeners whose accept ran out of descriptors, and when to retry them.
    accept_paused: Vec<usize>,
    accept_retry: Option<Instant>,
    /// When freed heap pages go back to the kernel.
    heap: HeapRelease,
    /// Connections the memory budget refused (slot, connection id): not
    /// read until it grants them memory again.
    starved: Vec<(usize, u64)>,
}

/// The any-thread face of an event loop.
#[derive(Clone)]
pub struct LoopRemote(Arc<LoopShared>);

impl EventLoop {
    pub fn new() -> Result<EventLoop> {
        let poll = Poll::new().map_err(|e| Error::io("creating the event loop's poll", e))?;
        let waker = mio::Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating the loop's waker", e))?;
        Ok(EventLoop {
            poll,
            events: Events::with_capacity(1024),
            shared: Arc::new(LoopShared::new(waker)),
            slots: Vec::new(),
            free: Vec::new(),
            timers: Timers::default(),
            rbuf: vec![0; READ_BUFFER],
            // Swapped with the shared flush list on every flush: both lists
            // start with room, so a send never allocates the first time the
            // empty one is the shared one.
            flushing: Vec::with_capacity(64),
            again: Vec::new(),
            ready: Vec::new(),
            again_spare: Vec::new(),
            next_sweep: None,
            shutdown_deadline: None,
            occupied: 0,
            listeners: 0,
            accept_paused: Vec::new(),
            starved: Vec::new(),
            accept_retry: None,
            heap: HeapRelease::default(),
            now: Instant::now(),
        })
    }

    pub fn remote(&self) -> LoopRemote {
        LoopRemote(self.shared.clone())
    }

    /// The descriptor to watch for readability from another event loop
    /// (epoll, libuv, a game engine's): when it is readable, or when
    /// [`EventLoop::next_timeout`] passes, call `poll` with a zero timeout.
    pub fn raw_fd(&self) -> RawFd {
        self.poll.as_raw_fd()
    }

    /// How long until the loop has work of its own (a timer, a timeout
    /// check, leftover input): `Some(0)` = poll now, `None` = only when
    /// its descriptor becomes readable.
    pub fn next_timeout(&mut self) -> Option<Duration> {
        if self.shared.buffers_held.swap(false, Ordering::Relaxed) {
            self.sweep_soon();
        }
        if !self.again.is_empty() || self.shared.has_commands() || self.shared.has_flush() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut until = self.timers.next_deadline();
        if let Some(r) = self.accept_retry {
            until = Some(until.map_or(r, |u| u.min(r)));
        }
        if let Some(s) = self.next_sweep {
            until = Some(until.map_or(s, |u| u.min(s)));
        }
        if !self.starved.is_empty() {
            let r = now + STARVED_RETRY;
            until = Some(until.map_or(r, |u| u.min(r)));
        }
        until.map(|u| u.saturating_duration_since(now))
    }

    /// Something may have set a deadline earlier than the next sweep:
    /// sweep within SWEEP_EVERY.
    fn sweep_soon(&mut self) {
        // Listeners have no deadlines: a loop without connections has
        // nothing to sweep and keeps no timeout of its own.
        if self.occupied == self.listeners {
            return;
        }
        let soon = Instant::now() + SWEEP_EVERY;
        self.next_sweep = Some(self.next_sweep.map_or(soon, |s| s.min(soon)));
    }

    /// Connections in any state (handshaking, open, closing). O(1): the
    /// loop asks on every iteration.
    pub fn connection_count(&self) -> usize {
        self.occupied - self.listeners
    }

    /// Runs until `LoopRemote::stop` (or a finished shutdown). A stop
    /// requested before `run` starts makes it return at once; each stop
    /// ends one `run`.
    pub fn run(&mut self) -> Result<()> {
        while !self.shared.stop.swap(false, Ordering::SeqCst) {
            self.poll(None)?;
        }
        Ok(())
    }

    /// Processes what is ready, waiting at most `timeout` (`None` = until
    /// something happens, zero = never block). Returns the number of
    /// readiness events handled.
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize> {
        let _driving = Driving::enter(&self.shared);
        crate::transport::tls::loop_thread_enable();
        self.apply_commands();
        let own = self.next_timeout();
        let wait = match (timeout, own) {
            (Some(t), Some(o)) => Some(t.min(o)),
            (t, o) => t.or(o),
        };
        if own.is_none() {
            // Nothing of the loop's own is due (no sweep: no connection
            // busy): the TLS buffers this thread kept go back to the
            // shared pool, also when the caller polls with a timeout of
            // its own (a binding's slices, an asyncio bridge's zero).
            crate::transport::tls::loop_thread_flush();
        }
        match self.poll.poll(&mut self.events, wait) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(Error::io("poll", e)),
        }
        self.now = Instant::now();
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        ready.extend(self.events.iter().map(|e| Ready {
            token: e.token().0,
            read: e.is_readable() || e.is_read_closed() || e.is_error(),
            write: e.is_writable() || e.is_error(),
            // The peer's FIN (or an error) came with this event: read
            // to the end even after a short read, or the end is missed.
            to_end: e.is_read_closed() || e.is_error(),
        }));
        for r in &ready {
            if r.token != WAKER.0 {
                self.on_event(r);
            }
        }
        let handled = ready.len();
        self.ready = ready;
        let again = std::mem::take(&mut self.again_spare);
        let mut again = std::mem::replace(&mut self.again, again);
        for &t in &again {
            self.on_event(&Ready { token: t, read: true, write: false, to_end: true });
        }
        again.clear();
        self.again_spare = again;
        self.apply_commands();
        let now = Instant::now();
        self.timers.run_due(now);
        if self.next_sweep.is_some_and(|s| now >= s) {
            let earliest = self.sweep(now);
            self.next_sweep = earliest.map(|d| d.max(now + SWEEP_EVERY));
        }
        if self.accept_retry.is_some_and(|r| now >= r) {
            self.retry_accepts();
        }
        if !self.starved.is_empty() {
            self.retry_starved(now);
        }
        self.apply_commands();
        self.flush_all();
        self.check_shutdown();
        Ok(handled)
    }

    fn alloc_slot(&mut self, e: Entry) -> usize {
        self.occupied += 1;
        if matches!(e, Entry::Listener(_)) {
            self.listeners += 1;
        }
        self.sweep_soon();
        match self.free.pop() {
            Some(t) => {
                self.slots[t] = Some(e);
                t
            }
            None => {
                self.slots.push(Some(e));
                self.slots.len() - 1
            }
        }
    }

    fn release_slot(&mut self, t: usize) -> Option<Entry> {
        let e = self.slots.get_mut(t)?.take();
        if let Some(entry) = &e {
            self.free.push(t);
            self.occupied -= 1;
            if matches!(entry, Entry::Listener(_)) {
                self.listeners -= 1;
            } else if self.accept_retry.is_some() {
                // A socket is about to close: a paused listener may get
                // its descriptor, so retry this iteration.
                self.accept_retry = Some(self.now);
            }
        }
        e
    }

    fn register(&self, fd: RawFd, t: usize) -> Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(t), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| Error::io("registering a socket with the loop", e))
    }

    fn deregister(&self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Applies queued commands; the loop asks several times per
    /// iteration, so the empty case is one flag load, inlined.
    #[inline(always)]
    fn apply_commands(&mut self) {
        if self.shared.has_commands() {
            self.apply_queued_commands();
        }
    }

    fn apply_queued_commands(&mut self) {
        loop {
            let cmds = self.shared.take_commands();
            if cmds.is_empty() {
                return;
            }
            for c in cmds {
                self.apply(c);
            }
        }
    }

    fn apply(&mut self, c: Command) {
        match c {
            Command::Listen { tcp, upgrader, handler } => {
                let fd = tcp.as_raw_fd();
                let t = self.alloc_slot(Entry::Listener(ListenerEntry { tcp, upgrader, handler }));
                if self.register(fd, t).is_err() {
                    self.release_slot(t);
                }
            }
            Command::Dial { request, addrs, tunnel, dialer, handler, user } => {
                match Dialing::start(addrs, request, tunnel, dialer, handler, user) {
                    Ok(d) => {
                        let fd = d.stream.as_raw_fd();
                        let t = self.alloc_slot(Entry::Dialing(Box::new(d)));
                        if let Err(e) = self.register(fd, t) {
                            if let Some(Entry::Dialing(d)) = self.release_slot(t) {
                                d.handler.on_dial_error(d.user, &e, None);
                            }
                        }
                    }
                    Err((e, handler, user)) => handler.on_dial_error(user, &e, None),
                }
            }
            Command::AddTimer { id, after, interval, callback } => {
                self.timers.add(id, Instant::now() + after, interval, callback)
            }
            Command::CancelTimer(id) => {
                self.timers.cancel(id);
            }
            Command::Shutdown(timeout) => {
                self.begin_shutdown(timeout);
                self.sweep_soon();
            }
            Command::Reconfigured => self.sweep_soon(),
        }
    }

    fn on_event(&mut self, r: &Ready) {
        let t = r.token;
        match self.slots.get(t) {
            Some(Some(Entry::Listener(_))) => self.accept_all(t),
            Some(Some(Entry::Accepting(_))) => self.advance_accepting(t),
            Some(Some(Entry::Dialing(_))) => self.advance_dialing(t),
            Some(Some(Entry::Open(c))) => {
                // Edge-triggered epoll reports writability with every
                // readable edge: flushing an empty outbox there cost ~100
                // instructions per message (its lock, `write_out`, the
                // close check) for nothing.
                if r.write && c.handle.0.wants_write() {
                    self.flush_conn(t);
                }
                if r.read {
                    self.read_conn(t, r.to_end);
                }
            }
            _ => {}
        }
    }

    fn accept_all(&mut self, t: usize) {
        loop {
            let Some(Some(Entry::Listener(l))) = self.slots.get(t) else { return };
            let (tcp, remote) = match l.tcp.accept() {
                Ok(x) => x,
                Err(e) => match classify(&e) {
                    AcceptFailure::Skip => continue,
                    // Empty: the next client raises a new edge. Fatal: the
                    // listener is broken; its connections carry on.
                    AcceptFailure::Empty | AcceptFailure::Fatal => return,
                    AcceptFailure::OutOfResources => {
                        self.pause_accepting(t);
                        return;
                    }
                },
            };
            let (upgrader, handler) = (l.upgrader.clone(), l.handler.clone());
            // TLS (when the upgrader has it) runs inside the handshake's reads.
            let Ok(stream) = upgrader.wrap_accepted(Stream::from_mio(tcp), &[]) else { continue };
            let hs = PendingHandshake::new(stream, Some(remote), &upgrader);
            let fd = hs.stream.as_raw_fd();
            let nt = self.alloc_slot(Entry::Accepting(Box::new(Accepting { hs, upgrader, handler })));
            if self.register(fd, nt).is_err() {
                self.release_slot(nt);
            }
        }
    }

    /// Remembers that listener `t` has clients queued that it could not
    /// accept; `retry_accepts` tries again.
    fn pause_accepting(&mut self, t: usize) {
        if !self.accept_paused.contains(&t) {
            self.accept_paused.push(t);
        }
        let at = self.now.max(Instant::now()) + ACCEPT_RETRY;
        self.accept_retry = Some(self.accept_retry.map_or(at, |r| r.min(at)));
    }

    fn retry_accepts(&mut self) {
        self.accept_retry = None;
        for t in std::mem::take(&mut self.accept_paused) {
            // A slot released meanwhile is skipped by `accept_all`.
            self.accept_all(t);
        }
    }

    fn advance_accepting(&mut self, t: usize) {
        let Some(Some(Entry::Accepting(a))) = self.slots.get_mut(t) else { return };
        let handler = a.handler.clone();
        let mut user = 0;
        let step = {
            let mut hook = |req: &Request| handler.on_handshake(req).map(|u| user = u);
            a.hs.advance(&a.upgrader, Some(&mut hook))
        };
        match step {
            Step::Wait => {}
            Step::Drop => {
                if let Some(Entry::Accepting(a)) = self.release_slot(t) {
                    self.deregister(a.hs.stream.as_raw_fd());
                    a.hs.stream.shutdown();
                }
            }
            Step::Open(acc) => {
                let Some(Entry::Accepting(a)) = self.slots[t].take() else { return };
                let (stream, leftover) = a.hs.into_parts();
                let cfg = &a.upgrader.conn;
                let shared = self.new_conn(t, Role::Server, stream);
                shared.open(acc.subprotocol, acc.deflate.as_ref(), cfg.compression_level, cfg.compression_threshold);
                let handle = ConnHandle(shared);
                handle.set_user(user);
                self.open_conn(t, handle, a.handler.clone(), cfg, acc.deflate, leftover);
            }
        }
    }

    fn new_conn(&self, t: usize, role: Role, stream: Stream) -> Arc<ConnShared> {
        let max = self.shared.config().max_buffered;
        Arc::new(ConnShared::new(self.shared.next_id(), t, role, stream, max, self.shared.clone()))
    }

    /// Installs an opened connection in slot `t`, tells the application,
    /// and processes what already arrived.
    fn open_conn(
        &mut self,
        t: usize,
        handle: ConnHandle,
        handler: Arc<dyn Handler>,
        cfg: &crate::api::config::ConnConfig,
        inflate: Option<crate::proto::deflate::Agreement>,
        leftover: Vec<u8>,
    ) {
        if let Ok(mut open) = self.shared.open.lock() {
            open.insert(handle.id(), handle.clone());
        }
        let live = LiveConn::new(handle.clone(), handler.clone(), cfg, inflate);
        self.slots[t] = Some(Entry::Open(Box::new(live)));
        // Its keepalive/idle deadlines may come before the next sweep.
        self.sweep_soon();
        handler.on_open(&handle);
        let outcome = match self.slots.get_mut(t) {
            Some(Some(Entry::Open(c))) => c.feed(&mut self.rbuf, &leftover),
            _ => return,
        };
        if self.handle_outcome(t, outcome) {
            // Bytes may have arrived after the handshake's last read, with
            // no new readiness edge to announce them.
            self.read_conn(t, true);
        }
    }

    fn advance_dialing(&mut self, t: usize) {
        let Some(Some(Entry::Dialing(d))) = self.slots.get_mut(t) else { return };
        let old_fd = d.stream.as_raw_fd();
        match d.advance() {
            DialStep::Wait => {
                // A proxy's refusal whose body is awaited ends sooner than
                // the dial's deadline: make sure a sweep comes by then.
                if d.due() != d.deadline {
                    self.sweep_soon();
                }
            }
            DialStep::Reconnected => {
                let fd = d.stream.as_raw_fd();
                self.deregister(old_fd);
                if let Err(e) = self.register(fd, t) {
                    if let Some(Entry::Dialing(d)) = self.release_slot(t) {
                        d.handler.on_dial_error(d.user, &e, None);
                    }
                }
            }
            DialStep::Failed(e, resp) => {
                if let Some(Entry::Dialing(d)) = self.release_slot(t) {
                    self.deregister(old_fd);
                    d.stream.shutdown();
                    d.handler.on_dial_error(d.user, &e, resp.as_ref());
                }
            }
            DialStep::Open { subprotocol, deflate, leftover } => {
                let Some(Entry::Dialing(d)) = self.slots[t].take() else { return };
                let d = *d;
                let cfg = &d.dialer.conn;
                let shared = self.new_conn(t, Role::Client, d.stream);
                shared.open(subprotocol, deflate.as_ref(), cfg.compression_level, cfg.compression_threshold);
                let handle = ConnHandle(shared);
                handle.set_user(d.user);
                self.open_conn(t, handle, d.handler, cfg, deflate, leftover);
            }
        }
    }

    fn read_conn(&mut self, t: usize, to_end: bool) {
        let outcome = match self.slots.get_mut(t) {
            Some(Some(Entry::Open(c))) => c.on_readable(&mut self.rbuf, to_end, self.now),
            _ => return,
        };
        self.handle_outcome(t, outcome);
    }

    /// Acts on a read's outcome; true when the connection is still there.
    #[inline]
    fn handle_outcome(&mut self, t: usize, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Idle => true,
            Outcome::MoreToRead => {
                self.again.push(t);
                true
            }
            Outcome::Starved => {
                if let Some(Some(Entry::Open(c))) = self.slots.get_mut(t) {
                    if !c.starve_listed {
                        c.starve_listed = true;
                        self.starved.push((t, c.handle.id()));
                    }
                }
                true
            }
            Outcome::End { code, reason, error } => {
                self.finish(t, code, reason, error);
                false
            }
        }
    }

    /// Ends the connection in slot `t`: closes TCP, then the error and
    /// close callbacks.
    fn finish(&mut self, t: usize, code: u16, reason: Vec<u8>, error: Option<Error>) {
        let Some(Entry::Open(c)) = self.release_slot(t) else { return };
        let sh = &c.handle.0;
        self.deregister(sh.stream.as_raw_fd());
        sh.stream.shutdown();
        sh.close.end();
        let (code, reason) = sh.ended.get_or_init(|| (code, reason)).clone();
        if let Ok(mut open) = self.shared.open.lock() {
            open.remove(&sh.id);
        }
        if let Ok(mut ob) = sh.out.lock() {
            self.shared.recycle(std::mem::take(&mut ob.buf));
            ob.sent = 0;
            sh.set_buffered(&ob);
        }
        if let Some(e) = error {
            sh.record_error(&e);
            c.handler.on_error(&c.handle, &e);
        }
        c.handler.on_close(&c.handle, code, &reason);
    }

    /// Writes every connection with queued output (repeating while
    /// callbacks queue more).
    fn flush_all(&mut self) {
        for _ in 0..4 {
            let mut list = std::mem::take(&mut self.flushing);
            self.shared.take_flush(&mut list);
            if list.is_empty() {
                self.flushing = list;
                return;
            }
            for &(t, id) in &list {
                if matches!(self.slots.get(t), Some(Some(Entry::Open(c))) if c.handle.id() == id) {
                    self.flush_conn(t);
                    self.resume_if_due(t);
                }
            }
            list.clear();
            self.flushing = list;
        }
    }

    /// Asks the budget again for every starved connection: those it grants
    /// memory are read again (to the end: their readiness edge is spent),
    /// those starved longer than their budget wait are closed (1009 or
    /// 1008); the others stay starved. The rest of the loop never waits.
    fn retry_starved(&mut self, now: Instant) {
        let list = std::mem::take(&mut self.starved);
        for (t, id) in list {
            let Some(Some(Entry::Open(c))) = self.slots.get_mut(t) else { continue };
            if c.handle.id() != id {
                continue;
            }
            // Granted or not, the wait runs from the first refusal until
            // the connection holds nothing again.
            let admitted = c.admit(now);
            if c.starved_too_long(now) {
                c.starve_listed = false;
                let outcome = c.close_starved();
                self.handle_outcome(t, outcome);
            } else if admitted {
                c.starve_listed = false;
                self.read_conn(t, true);
            } else {
                self.starved.push((t, id));
            }
        }
    }

    /// Reads a connection whose reading was resumed after readiness was
    /// skipped while paused.
    fn resume_if_due(&mut self, t: usize) {
        if let Some(Some(Entry::Open(c))) = self.slots.get_mut(t) {
            if c.read_missed && !c.handle.is_reading_paused() {
                c.read_missed = false;
                self.read_conn(t, true);
            }
        }
    }

    fn flush_conn(&mut self, t: usize) {
        let Some(Some(Entry::Open(c))) = self.slots.get_mut(t) else { return };
        let sh = &c.handle.0;
        // Decided while the connection is borrowed; ending it needs the
        // whole loop, so that comes after.
        let ended = match sh.lock_out() {
            Err(_) => Some((close::ABNORMAL, Some(Error::poisoned()))),
            Ok(ob) if ob.abort => Some((close::ABNORMAL, None)),
            Ok(mut ob) => match sh.write_out(&mut ob) {
                Ok(true) => {
                    ob.scheduled = false;
                    let drained = std::mem::take(&mut ob.blocked);
                    drop(ob);
                    if drained {
                        c.handler.on_drain(&c.handle);
                    }
                    None
                }
                Ok(false) => {
                    ob.blocked = true;
                    return;
                }
                Err(e) => {
                    drop(ob);
                    if c.peer_closed() {
                        Some((close::NO_STATUS, None))
                    } else {
                        Some((close::ABNORMAL, Some(Error::io("write", e))))
                    }
                }
            },
        };
        if let Some((code, err)) = ended {
            self.finish(t, code, Vec::new(), err);
            return;
        }
        // Our close frame is out once the outbox empties in CLOSING.
        if c.handle.0.close.phase() == Phase::Closing {
            match close_state::after_close_sent(c.role(), c.peer_closed()) {
                TcpAfterClose::ShutdownNow => self.finish(t, close::NO_STATUS, Vec::new(), None),
                TcpAfterClose::AwaitPeer if c.deadlines.close_deadline().is_none() => {
                    c.deadlines.close_started(Instant::now(), &timeout_config(&self.shared.config()));
                    // The close timeout is a new deadline. (A buffer the
                    // flush left held asked for its sweep when taken:
                    // `buffers_held`.)
                    self.sweep_soon();
                }
                TcpAfterClose::AwaitPeer => {}
            }
        }
    }

    /// Checks every deadline: handshakes, close handshakes, keepalive,
    /// idle. Returns the earliest deadline still ahead (None: none).
    fn sweep(&mut self, now: Instant) -> Option<Instant> {
        let tcfg = timeout_config(&self.shared.config());
        let mut earliest: Option<Instant> = None;
        let mut ahead = |d: Instant| earliest = Some(earliest.map_or(d, |e| e.min(d)));
        if self.shared.age_large() {
            ahead(now + SWEEP_EVERY);
        }
        // Idle pooled buffers a burst left go back over quiet sweeps, and
        // once the loop is quiet the allocator's free pages with them.
        let trimmed = self.shared.pool.trim(POOL_KEEP_IDLE);
        // And the TLS buffers this thread kept since the last sweep.
        crate::transport::tls::loop_thread_flush();
        if trimmed.more {
            ahead(now + SWEEP_EVERY);
        }
        // Busy while buffers are taken or still being trimmed away.
        if let Some(due) = self.heap.on_sweep(now, trimmed.used || trimmed.more) {
            ahead(due);
        }
        for t in 0..self.slots.len() {
            match &mut self.slots[t] {
                Some(Entry::Accepting(a)) if a.hs.deadline.is_some_and(|d| now >= d) => {
                    a.hs.expire(&a.upgrader);
                    if let Some(Entry::Accepting(a)) = self.release_slot(t) {
                        self.deregister(a.hs.stream.as_raw_fd());
                        a.hs.stream.shutdown();
                    }
                }
                Some(Entry::Dialing(d)) if d.due().is_some_and(|x| now >= x) => {
                    let (e, resp) = d.expired();
                    if let Some(Entry::Dialing(d)) = self.release_slot(t) {
                        self.deregister(d.stream.as_raw_fd());
                        d.stream.shutdown();
                        d.handler.on_dial_error(d.user, &e, resp.as_ref());
                    }
                }
                Some(Entry::Accepting(a)) => a.hs.deadline.into_iter().for_each(&mut ahead),
                Some(Entry::Dialing(d)) => d.due().into_iter().for_each(&mut ahead),
                Some(Entry::Open(c)) => {
                    if c.handle.0.release_idle_buffer() {
                        ahead(now + SWEEP_EVERY);
                    }
                    let open = c.handle.0.close.phase() == Phase::Open;
                    match c.deadlines.on_timeout(now, &tcfg, open, c.peer_closed()) {
                        None => {}
                        Some(TimeoutAction::SendPing) => c.send_keepalive_ping(now),
                        Some(TimeoutAction::CloseIdle) => {
                            let _ = c.handle.close(close::GOING_AWAY, b"idle timeout");
                        }
                        Some(TimeoutAction::EndQuietly) => {
                            self.finish(t, close::ABNORMAL, Vec::new(), None);
                            continue;
                        }
                        Some(TimeoutAction::Fail(why)) => {
                            let err = Error::new(ErrorKind::Timeout, why);
                            self.finish(t, close::ABNORMAL, Vec::new(), Some(err));
                            continue;
                        }
                    }
                    // The engine says when this connection next needs a
                    // call (the slot may have ended in a callback above).
                    if let Some(Some(Entry::Open(c))) = self.slots.get(t) {
                        let open = c.handle.0.close.phase() == Phase::Open;
                        c.deadlines.next_timeout(&tcfg, open).into_iter().for_each(&mut ahead);
                    }
                }
                _ => {}
            }
        }
        earliest
    }

    fn begin_shutdown(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.shutdown_deadline = Some(deadline);
        for t in 0..self.slots.len() {
            match &self.slots[t] {
                Some(Entry::Listener(l)) => {
                    self.deregister(l.tcp.as_raw_fd());
                    self.release_slot(t);
                }
                Some(Entry::Accepting(_)) => {
                    if let Some(Entry::Accepting(a)) = self.release_slot(t) {
                        self.deregister(a.hs.stream.as_raw_fd());
                        a.hs.stream.shutdown();
                    }
                }
                Some(Entry::Dialing(_)) => {
                    if let Some(Entry::Dialing(d)) = self.release_slot(t) {
                        self.deregister(d.stream.as_raw_fd());
                        d.stream.shutdown();
                        let e = Error::new(ErrorKind::LocallyClosed, "the loop is shutting down");
                        d.handler.on_dial_error(d.user, &e, None);
                    }
                }
                Some(Entry::Open(c)) if c.handle.0.close.phase() == Phase::Open => {
                    let _ = c.handle.close(close::GOING_AWAY, b"server shutting down");
                }
                Some(Entry::Open(_)) | None => {}
            }
        }
        for s in self.slots.iter_mut().flatten() {
            if let Entry::Open(c) = s {
                c.deadlines.limit_close(deadline);
            }
        }
    }

    fn check_shutdown(&mut self) {
        if self.shutdown_deadline.is_some() && self.occupied == 0 {
            self.shutdown_deadline = None;
            self.shared.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Ends every connection at once (close callbacks with 1006).
    pub fn close_all(&mut self) {
        let _driving = Driving::enter(&self.shared);
        for t in 0..self.slots.len() {
            match &self.slots[t] {
                Some(Entry::Open(_)) => self.finish(t, close::ABNORMAL, Vec::new(), None),
                Some(_) => {
                    self.begin_shutdown(Duration::ZERO);
                }
                None => {}
            }
        }
        for t in 0..self.slots.len() {
            if matches!(self.slots[t], Some(Entry::Open(_))) {
                self.finish(t, close::ABNORMAL, Vec::new(), None);
            }
        }
        self.shutdown_deadline = None;
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// The engine's timeout settings from the loop's.
fn timeout_config(cfg: &LoopConfig) -> TimeoutConfig {
    TimeoutConfig {
        ping_interval: cfg.ping_interval,
        pong_timeout: cfg.pong_timeout,
        close_timeout: cfg.close_timeout,
        idle_timeout: cfg.idle_timeout,
    }
}

/// The longest delay or timeout the loop takes: deadlines are `now + d`,
/// and an absurd `d` would overflow the clock (a panic on the loop thread).
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn check_duration(d: Duration, what: &str) -> Result<()> {
    if d > MAX_DURATION {
        return Err(Error::invalid(format!("{what} above 10 years is refused")));
    }
    Ok(())
}

impl LoopRemote {
    /// Listens on `addr` ("host:port", port 0 = any free one) with a
    /// snapshot of `upgrader`; connections go to `handler`.
    pub fn listen(&self, addr: &str, upgrader: &Upgrader, handler: Arc<dyn Handler>) -> Result<SocketAddr> {
        if let Some(tls) = &upgrader.tls {
            tls.rustls()?; // a TLS setting that cannot work fails here, not per client
        }
        let tcp = bind_listener(addr)?;
        let local = tcp.local_addr().map_err(|e| Error::io("local_addr", e))?;
        let upgrader = Arc::new(upgrader.clone());
        self.0.command(Command::Listen { tcp, upgrader, handler })?;
        Ok(local)
    }

    /// Starts a dial with a snapshot of `dialer`. The URL is checked, the
    /// proxy chosen as the blocking dial does (the dialer's, none, or the
    /// environment's), and the host resolved (the proxy's, and for
    /// `socks5://` the target's too; system resolver, blocking) here; the
    /// connect, the proxy tunnel, TLS and the handshake happen on the loop
    /// within the dialer's handshake timeout, ending in the handler's
    /// `on_open` (with `user` as the connection's user word) or
    /// `on_dial_error` (with a refusing HTTP proxy's response).
    pub fn dial(
        &self,
        url: &str,
        dialer: &Dialer,
        extra: &[(String, String)],
        handler: Arc<dyn Handler>,
        user: usize,
    ) -> Result<()> {
        let request = dialer.prepare_request(url, extra)?;
        let (addrs, tunnel) = match choose_proxy(dialer, &request)? {
            None => (resolve(&request.host, request.port)?, None),
            Some(p) => {
                let machine =
                    tunnel_machine(&request.host, request.port, &p, &dialer.proxy_headers).map_err(|e| e.error)?;
                let t = LoopTunnel::new(p, machine);
                let addrs = resolve(&t.proxy.host, t.proxy.port).map_err(|e| t.connect_failed(&e))?;
                (addrs, Some(Box::new(t)))
            }
        };
        let dialer = Arc::new(dialer.clone());
        self.0.command(Command::Dial { request, addrs, tunnel, dialer, handler, user })
    }

    /// Runs `callback` on the loop's thread after `after`, then every
    /// `interval` if given. Returns the timer's id.
    pub fn add_timer(&self, after: Duration, interval: Option<Duration>, callback: TimerFn) -> Result<u64> {
        if interval.is_some_and(|i| i.is_zero()) {
            return Err(Error::invalid("a repeating timer needs an interval above 0"));
        }
        check_duration(after, "timer delay")?;
        if let Some(iv) = interval {
            check_duration(iv, "timer interval")?;
        }
        let id = self.0.next_id();
        self.0.command(Command::AddTimer { id, after, interval, callback })?;
        Ok(id)
    }

    pub fn cancel_timer(&self, id: u64) -> Result<()> {
        self.0.command(Command::CancelTimer(id))
    }

    /// Makes `run` return after the current iteration; wakes a blocked poll.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake();
    }

    /// Wakes a blocked poll (it returns after processing what is ready).
    pub fn wake(&self) {
        self.0.wake();
    }

    /// Graceful shutdown: stop listening, drop handshakes in progress,
    /// send close 1001 to every connection and wait for their close
    /// handshakes up to `timeout`, then close what is left. `run` returns
    /// once everything is closed.
    pub fn shutdown(&self, timeout: Duration) -> Result<()> {
        check_duration(timeout, "shutdown timeout")?;
        self.0.command(Command::Shutdown(timeout))
    }

    pub fn config(&self) -> LoopConfig {
        self.0.config()
    }

    /// With `on`, a data message sent while nothing is queued is written
    /// to the socket by the sending thread at once, instead of waking the
    /// loop to flush it: for a caller that drives the loop from the thread
    /// it sends on (an asyncio bridge), one wake-up and one iteration less
    /// per send, at the cost of one write(2) per message (a burst is not
    /// batched into one write). Compressed messages and control frames
    /// still go through the loop.
    pub fn set_write_through(&self, on: bool) {
        self.0.write_through.store(on, Ordering::Relaxed);
    }

    pub fn set_config(&self, cfg: LoopConfig) -> Result<()> {
        for (d, what) in [
            (cfg.ping_interval, "ping interval"),
            (Some(cfg.pong_timeout), "pong timeout"),
            (cfg.idle_timeout, "idle timeout"),
            (Some(cfg.close_timeout), "close timeout"),
        ] {
            if let Some(d) = d {
                check_duration(d, what)?;
            }
        }
        *self.0.config.lock().map_err(|_| Error::poisoned())? = cfg;
        // The loop re-checks deadlines under the new settings soon.
        self.0.command(Command::Reconfigured)
    }

    /// Queues `pm` on every open connection; returns how many took it
    /// (a full or closing connection is skipped).
    pub fn broadcast(&self, pm: &PreparedMessage) -> Result<usize> {
        let conns: Vec<ConnHandle> = self.0.open.lock().map_err(|_| Error::poisoned())?.values().cloned().collect();
        Ok(conns.iter().filter(|c| c.send_prepared(pm).is_ok()).count())
    }

    /// Open connections (after their handshake, before their close callback).
    pub fn open_connections(&self) -> usize {
        self.0.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Bytes in the idle buffers the loop keeps for reuse (outboxes and
    /// message assemblies take them per message and the sweep gives them
    /// back): a fixed cost of the loop, bounded by 64 buffers of 64-128 KiB,
    /// not of its connections. For memory accounting and tests.
    pub fn pooled_buffer_bytes(&self) -> usize {
        self.0.pool.idle_bytes()
    }

    /// Sends `kind`/`data` on every open connection (see `broadcast`).
    pub fn send_all(&self, kind: MessageType, data: &[u8]) -> Result<usize> {
        let pm = PreparedMessage::new(kind, data)?;
        self.broadcast(&pm)
    }
}

#[cfg(test)]
mod tests {
    /// What an idle server connection costs in the loop (the memory
    /// target is under 2 KiB per idle connection, buffers excluded).
    #[test]
    fn idle_connection_structures_stay_small() {
        let live = std::mem::size_of::<super::live::LiveConn>();
        let shared = std::mem::size_of::<super::handle::ConnShared>();
        println!("LiveConn {live} B + ConnShared {shared} B");
        assert!(live + shared < 1024, "LiveConn {live} B + ConnShared {shared} B");
    }
}
