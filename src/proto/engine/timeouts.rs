//! Deadlines as data (quiche's `timeout` / `on_timeout`): the engine says
//! when a connection next needs attention and what to do then; the
//! driver owns the clock and passes `now` in. One set of rules for
//! keepalive pings, the pong timeout, the close-handshake timeout, the
//! idle timeout and the opening handshake's timeout.

use std::time::{Duration, Instant};

/// The settings (a driver's configuration, copied in).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutConfig {
    /// Ping after this long without receiving anything (None: no keepalive).
    pub ping_interval: Option<Duration>,
    /// After a keepalive ping, fail when nothing arrives within this.
    pub pong_timeout: Duration,
    /// How long the close handshake may take once our close is out.
    pub close_timeout: Duration,
    /// Close (1001) after this long without a data message (None: never).
    pub idle_timeout: Option<Duration>,
}

/// What to do when a deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Send a keepalive ping (then call [`Deadlines::ping_sent`]).
    SendPing,
    /// Start the close handshake: 1001 "idle timeout".
    CloseIdle,
    /// Fail the connection (close TCP, report the message as a timeout).
    Fail(&'static str),
    /// The close handshake ran out of time after the peer's close came:
    /// close TCP, no error.
    EndQuietly,
}

#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    last_read: Instant,
    last_message: Instant,
    ping_sent: Option<Instant>,
    close_deadline: Option<Instant>,
    handshake_deadline: Option<Instant>,
}

impl Deadlines {
    pub fn new(now: Instant) -> Deadlines {
        Deadlines { last_read: now, last_message: now, ping_sent: None, close_deadline: None, handshake_deadline: None }
    }

    /// The opening handshake must finish by `deadline` (None: no bound).
    pub fn set_handshake_deadline(&mut self, deadline: Option<Instant>) {
        self.handshake_deadline = deadline;
    }

    pub fn handshake_done(&mut self, now: Instant) {
        *self = Deadlines::new(now);
    }

    /// Bytes arrived: the peer is alive.
    pub fn on_read(&mut self, now: Instant) {
        self.last_read = now;
        self.ping_sent = None;
    }

    /// A pong arrived.
    pub fn on_pong(&mut self) {
        self.ping_sent = None;
    }

    /// A data message arrived (the idle clock restarts).
    pub fn on_message(&mut self, now: Instant) {
        self.last_message = now;
    }

    pub fn ping_sent(&mut self, now: Instant) {
        self.ping_sent = Some(now);
    }

    /// Our close is out (or the handshake began): it must end by
    /// `now + close_timeout`; an earlier deadline is kept.
    pub fn close_started(&mut self, now: Instant, cfg: &TimeoutConfig) {
        self.limit_close(now.checked_add(cfg.close_timeout).unwrap_or(now));
    }

    /// Brings the close deadline forward to `deadline` (a shutdown).
    pub fn limit_close(&mut self, deadline: Instant) {
        self.close_deadline = Some(self.close_deadline.map_or(deadline, |d| d.min(deadline)));
    }

    pub fn close_deadline(&self) -> Option<Instant> {
        self.close_deadline
    }

    /// When the connection next needs `on_timeout` (None: never, until
    /// something happens). `open`: data may still be sent (keepalive and
    /// idle apply only then).
    pub fn next_timeout(&self, cfg: &TimeoutConfig, open: bool) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        take(self.handshake_deadline);
        take(self.close_deadline);
        if open {
            if let Some(iv) = cfg.ping_interval {
                take(match self.ping_sent {
                    Some(at) => at.checked_add(cfg.pong_timeout),
                    None => self.last_read.checked_add(iv),
                });
            }
            take(cfg.idle_timeout.and_then(|d| self.last_message.checked_add(d)));
        }
        next
    }

    /// What is due at `now` (the most urgent first), if anything.
    /// `peer_closed`: the peer's close frame arrived.
    pub fn on_timeout(
        &mut self,
        now: Instant,
        cfg: &TimeoutConfig,
        open: bool,
        peer_closed: bool,
    ) -> Option<TimeoutAction> {
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            self.handshake_deadline = None;
            return Some(TimeoutAction::Fail("the opening handshake did not finish in time"));
        }
        if self.close_deadline.is_some_and(|d| now >= d) {
            self.close_deadline = None;
            return Some(if peer_closed {
                TimeoutAction::EndQuietly
            } else {
                TimeoutAction::Fail("the close handshake did not finish in time")
            });
        }
        if !open {
            return None;
        }
        if let Some(iv) = cfg.ping_interval {
            match self.ping_sent {
                Some(at) if now.saturating_duration_since(at) >= cfg.pong_timeout => {
                    return Some(TimeoutAction::Fail("keepalive: nothing received within the pong timeout of a ping"));
                }
                Some(_) => {}
                None if now.saturating_duration_since(self.last_read) >= iv => return Some(TimeoutAction::SendPing),
                None => {}
            }
        }
        if let Some(idle) = cfg.idle_timeout {
            if now.saturating_duration_since(self.last_message) >= idle {
                // Once: the close that follows ends the open phase.
                self.last_message = now;
                return Some(TimeoutAction::CloseIdle);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn keepalive_then_pong_timeout() {
        let cfg =
            TimeoutConfig { ping_interval: Some(10 * S), pong_timeout: 5 * S, close_timeout: S, idle_timeout: None };
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0);
        assert_eq!(d.next_timeout(&cfg, true), Some(t0 + 10 * S));
        assert_eq!(d.on_timeout(t0 + 9 * S, &cfg, true, false), None);
        assert_eq!(d.on_timeout(t0 + 10 * S, &cfg, true, false), Some(TimeoutAction::SendPing));
        d.ping_sent(t0 + 10 * S);
        assert_eq!(d.next_timeout(&cfg, true), Some(t0 + 15 * S));
        assert!(matches!(d.on_timeout(t0 + 15 * S, &cfg, true, false), Some(TimeoutAction::Fail(_))));
        d.on_read(t0 + 12 * S);
        assert_eq!(d.on_timeout(t0 + 15 * S, &cfg, true, false), None);
        assert_eq!(d.next_timeout(&cfg, false), None);
    }

    #[test]
    fn close_idle_and_handshake() {
        let cfg =
            TimeoutConfig { ping_interval: None, pong_timeout: S, close_timeout: 2 * S, idle_timeout: Some(30 * S) };
        let t0 = Instant::now();
        let mut d = Deadlines::new(t0);
        d.set_handshake_deadline(Some(t0 + S));
        assert!(matches!(d.on_timeout(t0 + S, &cfg, false, false), Some(TimeoutAction::Fail(_))));
        d.handshake_done(t0 + S);
        assert_eq!(d.on_timeout(t0 + 31 * S, &cfg, true, false), Some(TimeoutAction::CloseIdle));
        d.close_started(t0 + 31 * S, &cfg);
        d.limit_close(t0 + 32 * S);
        assert_eq!(d.next_timeout(&cfg, false), Some(t0 + 32 * S));
        assert_eq!(d.on_timeout(t0 + 32 * S, &cfg, false, true), Some(TimeoutAction::EndQuietly));
    }
}
