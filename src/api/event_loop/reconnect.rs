//! Loop clients that reconnect by themselves (IXWebSocket's and Python
//! `websockets`' habit, for games and apps that live through network
//! changes), and a dial that can be cancelled: a [`Reconnector`] dials,
//! forwards every callback to the application's handler, and after a
//! failed dial or a closed connection waits an exponentially growing,
//! jittered delay before dialing again, telling the application
//! ([`Handler::on_reconnect`]). [`Reconnector::stop`] ends it: no dial
//! starts after it, a dial in flight that still opens is closed at once
//! (its callbacks are not delivered), the open connection is closed with
//! 1000.
//!
//! Built on the loop's public surface (dial, timers, handles), so it adds
//! no state to the loop itself. Each re-dial resolves the host name again
//! (the network may have changed) on a short-lived thread: the resolver
//! blocks and must not stall the loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::handle::ConnHandle;
use super::handler::Handler;
use super::LoopRemote;
use crate::api::conn::MessageType;
use crate::api::dialer::Dialer;
use crate::api::http::{Request, Response};
use crate::error::{Error, Result};
use crate::proto::close;

/// When and how often to dial again.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The delay before the first re-dial.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// Each failed attempt multiplies the delay by this (at least 1).
    pub multiplier: f64,
    /// 0 to 1: each delay is drawn from `[d * (1 - jitter), d]`, so many
    /// clients cut off at once do not come back at once.
    pub jitter: f64,
    /// Re-dials after the first dial (`None`: forever; `Some(0)`: never,
    /// which makes a plain dial that [`Reconnector::stop`] can cancel).
    pub max_retries: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
            max_retries: None,
        }
    }
}

impl Backoff {
    pub fn check(&self) -> Result<()> {
        if self.initial.is_zero() || self.max < self.initial {
            return Err(Error::invalid("reconnect delays: 0 < initial <= max"));
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Err(Error::invalid("the reconnect multiplier must be a finite number >= 1"));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid("the reconnect jitter must be between 0 and 1"));
        }
        super::check_duration(self.max, "maximum reconnect delay")
    }

    /// The delay before re-dial number `attempt` (1-based), before jitter.
    fn base_delay(&self, attempt: u32) -> Duration {
        let grown = self.initial.as_secs_f64() * self.multiplier.powi(attempt.saturating_sub(1).min(64) as i32);
        Duration::from_secs_f64(grown.min(self.max.as_secs_f64()))
    }

    /// `base_delay` with jitter from `unit`, a random number in [0, 1).
    fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let d = self.base_delay(attempt).as_secs_f64();
        Duration::from_secs_f64(d * (1.0 - self.jitter * unit)).max(Duration::from_millis(1))
    }
}

/// A random number in [0, 1) from the system's random source (jitter only
/// needs to differ between processes; 0.5 if the source fails).
fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    match getrandom::fill(&mut b) {
        Ok(()) => (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

struct State {
    remote: LoopRemote,
    url: String,
    dialer: Dialer,
    extra: Vec<(String, String)>,
    handler: Arc<dyn Handler>,
    user: usize,
    backoff: Backoff,
    stopped: AtomicBool,
    inner: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    /// Re-dials since the last connection opened.
    attempt: u32,
    /// The open connection (to close on stop).
    conn: Option<ConnHandle>,
    /// The id of the connection whose `on_open` the application got,
    /// until its `on_close`.
    told: Option<u64>,
    /// The timer of the next re-dial.
    timer: Option<u64>,
}

impl LoopRemote {
    /// Dials `url` like [`LoopRemote::dial`], and again after each failed
    /// dial or lost connection, with `backoff`'s delays
    /// (`Handler::on_reconnect` tells of each), until the returned
    /// [`Reconnector`] is stopped or the retries run out. A handshake
    /// refused with a 4xx status is not retried. The first dial's URL and
    /// name errors are returned here; later ones reach `on_dial_error`.
    pub fn dial_reconnecting(
        &self,
        url: &str,
        dialer: &Dialer,
        extra: &[(String, String)],
        handler: Arc<dyn Handler>,
        user: usize,
        backoff: Backoff,
    ) -> Result<Reconnector> {
        Reconnector::start(self.clone(), url, dialer, extra, handler, user, backoff)
    }
}

/// A reconnecting (or cancellable) loop dial; dropping it does not stop it.
#[derive(Clone)]
pub struct Reconnector(Arc<State>);

impl Reconnector {
    fn start(
        remote: LoopRemote,
        url: &str,
        dialer: &Dialer,
        extra: &[(String, String)],
        handler: Arc<dyn Handler>,
        user: usize,
        backoff: Backoff,
    ) -> Result<Reconnector> {
        backoff.check()?;
        let state = Arc::new(State {
            remote,
            url: url.to_string(),
            dialer: dialer.clone(),
            extra: extra.to_vec(),
            handler,
            user,
            backoff,
            stopped: AtomicBool::new(false),
            inner: Mutex::new(Progress::default()),
        });
        // The first dial reports a bad URL or an unknown host to the caller.
        state.remote.dial(url, dialer, extra, Arc::new(Attempt(state.clone())), user)?;
        Ok(Reconnector(state))
    }

    /// Ends it (any thread, also from a callback; idempotent): no dial
    /// starts after this, a pending re-dial is cancelled, a dial in flight
    /// that still opens is closed at once without callbacks, and the open
    /// connection is closed with 1000 (its `on_close` follows).
    pub fn stop(&self) {
        if self.0.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let (conn, timer) = match self.0.inner.lock() {
            Ok(mut p) => (p.conn.take(), p.timer.take()),
            Err(_) => (None, None),
        };
        if let Some(t) = timer {
            let _ = self.0.remote.cancel_timer(t);
        }
        if let Some(c) = conn {
            let _ = c.close(close::NORMAL, b"");
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }

    /// Re-dials since the last connection opened.
    pub fn attempt(&self) -> u32 {
        self.0.inner.lock().map(|p| p.attempt).unwrap_or(0)
    }
}

impl State {
    /// After a failed dial or a closed connection: the next attempt, or
    /// the end when retries ran out or a stop came.
    fn schedule(self: &Arc<State>, last: Option<&Error>) {
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let attempt = {
            let Ok(mut p) = self.inner.lock() else { return };
            p.conn = None;
            if self.backoff.max_retries.is_some_and(|m| p.attempt >= m) {
                drop(p);
                self.stopped.store(true, Ordering::SeqCst);
                return;
            }
            p.attempt += 1;
            p.attempt
        };
        let delay = self.backoff.delay(attempt, unit_random());
        self.handler.on_reconnect(self.user, attempt, delay, last);
        let me = self.clone();
        let timer = self.remote.add_timer(
            delay,
            None,
            Box::new(move || {
                let me = me.clone();
                // Resolving blocks: not on the loop's thread.
                let spawned = std::thread::Builder::new().name("libws-reconnect".into()).spawn({
                    let me = me.clone();
                    move || me.redial()
                });
                if spawned.is_err() {
                    me.redial();
                }
            }),
        );
        match timer {
            Ok(id) => {
                if let Ok(mut p) = self.inner.lock() {
                    p.timer = Some(id);
                }
                // A stop between the check above and here cancels it too.
                if self.stopped.load(Ordering::SeqCst) {
                    let _ = self.remote.cancel_timer(id);
                }
            }
            // The loop is gone or shutting down: nothing more to do.
            Err(_) => self.stopped.store(true, Ordering::SeqCst),
        }
    }

    fn redial(self: &Arc<State>) {
        if let Ok(mut p) = self.inner.lock() {
            p.timer = None;
        }
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let attempt = Arc::new(Attempt(self.clone()));
        if let Err(e) = self.remote.dial(&self.url, &self.dialer, &self.extra, attempt, self.user) {
            // Resolution failed (no network yet): that is a failed attempt.
            self.handler.on_dial_error(self.user, &e, None);
            self.schedule(Some(&e));
        }
    }
}

/// The handler of one dial attempt: forwards to the application's, and
/// reports the attempt's end to the reconnector.
struct Attempt(Arc<State>);

impl Attempt {
    fn stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }
}

impl Handler for Attempt {
    fn on_handshake(&self, req: &Request) -> std::result::Result<usize, u16> {
        self.0.handler.on_handshake(req)
    }
    fn on_open(&self, conn: &ConnHandle) {
        if self.stopped() {
            // Stopped while dialing: this connection is not wanted.
            let _ = conn.close(close::NORMAL, b"");
            return;
        }
        if let Ok(mut p) = self.0.inner.lock() {
            p.attempt = 0;
            p.conn = Some(conn.clone());
            p.told = Some(conn.0.id);
        }
        self.0.handler.on_open(conn);
    }
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        if self.is_current(conn) {
            self.0.handler.on_message(conn, kind, data);
        }
    }
    fn on_ping(&self, conn: &ConnHandle, data: &[u8]) {
        if self.is_current(conn) {
            self.0.handler.on_ping(conn, data);
        }
    }
    fn on_pong(&self, conn: &ConnHandle, data: &[u8]) {
        if self.is_current(conn) {
            self.0.handler.on_pong(conn, data);
        }
    }
    fn on_drain(&self, conn: &ConnHandle) {
        if self.is_current(conn) {
            self.0.handler.on_drain(conn);
        }
    }
    fn on_error(&self, conn: &ConnHandle, err: &Error) {
        if self.opened(conn) {
            self.0.handler.on_error(conn, err);
        }
    }
    fn on_close(&self, conn: &ConnHandle, code: u16, reason: &[u8]) {
        // Delivered for every connection the application saw open (also
        // the one `stop` closed); not for one refused after a stop.
        let told = match self.0.inner.lock() {
            Ok(mut p) if p.told == Some(conn.0.id) => p.told.take().is_some(),
            _ => false,
        };
        if told {
            self.0.handler.on_close(conn, code, reason);
        }
        self.0.schedule(None);
    }
    fn on_dial_error(&self, user: usize, err: &Error, response: Option<&Response>) {
        if self.stopped() {
            return;
        }
        self.0.handler.on_dial_error(user, err, response);
        // A server that refuses with a client error (401, 403, 404...)
        // will refuse again: do not hammer it.
        if response.is_some_and(|r| (400..500).contains(&r.status())) {
            self.0.stopped.store(true, Ordering::SeqCst);
            return;
        }
        self.0.schedule(Some(err));
    }
}

impl Attempt {
    /// The application was told this connection opened (and not yet
    /// that it closed).
    fn opened(&self, conn: &ConnHandle) -> bool {
        self.0.inner.lock().is_ok_and(|p| p.told == Some(conn.0.id))
    }
    fn is_current(&self, conn: &ConnHandle) -> bool {
        self.opened(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_bounded_jitter() {
        let b = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1), ..Backoff::default() };
        assert_eq!(b.base_delay(1), Duration::from_millis(100));
        assert_eq!(b.base_delay(2), Duration::from_millis(200));
        assert_eq!(b.base_delay(4), Duration::from_millis(800));
        assert_eq!(b.base_delay(5), Duration::from_secs(1));
        assert_eq!(b.base_delay(1000), Duration::from_secs(1));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay(3, 0.999_999), Duration::from_secs_f64(0.4 * (1.0 - 0.5 * 0.999_999)));
        for _ in 0..100 {
            let u = unit_random();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = Backoff::default();
        assert!(ok.check().is_ok());
        assert!(Backoff { initial: Duration::ZERO, ..ok }.check().is_err());
        assert!(Backoff { max: Duration::from_millis(10), ..ok }.check().is_err());
        assert!(Backoff { multiplier: 0.5, ..ok }.check().is_err());
        assert!(Backoff { multiplier: f64::NAN, ..ok }.check().is_err());
        assert!(Backoff { jitter: 1.5, ..ok }.check().is_err());
    }
}
