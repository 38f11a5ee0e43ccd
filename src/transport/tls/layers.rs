//! TLS sessions stacked over a non-blocking socket, for `transport::Stream`.
//!
//! Usually one session; two for a `wss://` target behind an HTTPS proxy
//! (TLS to the proxy, and inside its tunnel TLS to the target). Reads pull
//! ciphertext from the socket up through the layers, writes push plaintext
//! down through them. All sessions sit behind one mutex that is only held
//! for non-blocking work, so a reader thread and writer threads can use the
//! stream at once (waiting happens outside, on the descriptor).
//!
//! Write semantics: `write` returns the plaintext it took; its ciphertext
//! may still be queued when the socket is full. Callers finish a message
//! with [`TlsLayers::flush`] (the blocking `Conn` does, waiting for
//! writability). A later `write` first sends what the socket takes, then
//! encrypts more while the ciphertext queue is under its limit (64 KiB),
//! even if the socket is still full: `WouldBlock` only when nothing fits
//! (with stacked layers, whenever the socket has not taken everything).

use std::io::{self, IoSlice, Read, Write};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::error::TlsFailure;
use super::session::TlsSession;

struct Layer {
    session: TlsSession,
    /// Ciphertext for this layer that it could not take yet (its plaintext
    /// buffer was full). Empty, without capacity, on an idle connection.
    unfed: Vec<u8>,
}

struct State {
    /// Outermost (next to the socket) first.
    layers: Vec<Layer>,
    /// A TLS failure is final: every later call reports it.
    failed: Option<TlsFailure>,
}

pub struct TlsLayers {
    state: Mutex<State>,
    /// [`TlsLayers::pending_bytes`] as of the last unlock: the event loop
    /// publishes a connection's buffered amount after every message it
    /// queues, and a lock per message for it cost about 3 % of a small
    /// message's echo over TLS (callgrind, 16 B x 16 pipelined).
    pending: AtomicUsize,
    /// [`TlsLayers::short_read_means_drained`], as of the last unlock.
    drained: AtomicBool,
}

/// The locked state; unlocking publishes its pending bytes.
struct Locked<'a> {
    state: MutexGuard<'a, State>,
    pending: &'a AtomicUsize,
    drained: &'a AtomicBool,
}

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.state
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.state
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.pending.store(self.state.pending_bytes(), Ordering::Release);
        let drained = matches!(&self.state.layers[..], [one] if one.session.socket_drained());
        self.drained.store(drained, Ordering::Release);
    }
}

impl std::fmt::Debug for TlsLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsLayers")
    }
}

fn poisoned() -> io::Error {
    io::Error::other("TLS state poisoned by a panic")
}

impl TlsLayers {
    /// A stack of one session; `already` is ciphertext read from the socket
    /// before (e.g. the start of a ClientHello a caller peeked at).
    pub fn new(session: TlsSession, already: &[u8]) -> TlsLayers {
        TlsLayers {
            state: Mutex::new(State { layers: vec![Layer { session, unfed: already.to_vec() }], failed: None }),
            pending: AtomicUsize::new(0),
            drained: AtomicBool::new(false),
        }
    }

    /// Runs `inner` inside the current top session (its ciphertext becomes
    /// the top's plaintext).
    pub fn push(&self, inner: TlsSession, already: &[u8]) -> io::Result<()> {
        let mut st = self.lock()?;
        if let Some(top) = st.layers.last_mut() {
            top.session.set_unlimited_output();
        }
        st.layers.push(Layer { session: inner, unfed: already.to_vec() });
        Ok(())
    }

    fn lock(&self) -> io::Result<Locked<'_>> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        Ok(Locked { state, pending: &self.pending, drained: &self.drained })
    }

    pub fn read<S>(&self, sock: &S, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        let mut st = self.lock()?;
        st.read(sock, buf)
    }

    pub fn write<S>(&self, sock: &S, buf: &[u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        self.write_vectored(sock, &[IoSlice::new(buf)])
    }

    pub fn write_vectored<S>(&self, sock: &S, bufs: &[IoSlice<'_>]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        let mut st = self.lock()?;
        st.check()?;
        // One layer takes plaintext while its ciphertext queue is under its
        // limit, also when the socket is full right now: encrypting from
        // the caller's memory at once spares the copy into a caller's queue
        // (the event loop's outbox) and the second pass over it later.
        // Stacked layers pass everything down to the outermost one, whose
        // queue is unlimited: there the socket must have taken it all first.
        if !st.flush(sock)? && st.layers.len() > 1 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let top = st.layers.len() - 1;
        let n = st.layers[top].session.write_plaintext_vectored(bufs);
        if let Some(f) = st.layers.iter().find_map(|l| l.session.failure().cloned()) {
            return Err(st.fail(sock, f));
        }
        st.flush(sock)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Sends queued ciphertext: `Ok(true)` when nothing is left,
    /// `Ok(false)` when the socket is full (wait for writable, call again).
    pub fn flush<S>(&self, sock: &S) -> io::Result<bool>
    where
        for<'a> &'a S: Read + Write,
    {
        // Nothing queued in any layer as of the last unlock: the flush
        // would only move nothing. Whoever queues more under the lock
        // flushes it (or publishes it for the next flush). Spares a lock
        // on every message the event loop writes (it flushes after each
        // write).
        if self.pending.load(Ordering::Acquire) == 0 {
            return Ok(true);
        }
        self.lock()?.flush(sock)
    }

    /// Whether ciphertext is queued for the socket.
    pub fn wants_write(&self) -> bool {
        self.state.lock().map(|st| st.layers.iter().any(|l| l.session.wants_write())).unwrap_or(false)
    }

    /// Moves the handshakes on as far as the socket allows without waiting:
    /// `Ok(None)` when every layer's handshake is done, else what to wait
    /// for (`true` = readable, `false` = writable).
    pub fn handshake_step<S>(&self, sock: &S) -> io::Result<Option<bool>>
    where
        for<'a> &'a S: Read + Write,
    {
        let mut st = self.lock()?;
        st.check()?;
        loop {
            if !st.flush(sock)? {
                return Ok(Some(false));
            }
            if !st.layers.iter().any(|l| l.session.is_handshaking()) {
                return Ok(None);
            }
            match st.pump(sock) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(true)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the read that just returned less than it was asked for
    /// means the socket is drained, as it always does for TCP: only when
    /// that read's last socket read was short too. A read returns what the
    /// records received so far decrypt to, so a short read alone proves
    /// nothing (one socket read takes at most one buffer, and a record's
    /// plaintext is shorter than its ciphertext); but when the socket gave
    /// less than asked, and the layer then returned less than asked (every
    /// whole record received was decrypted and handed over), what is left
    /// is at most a partial record, whose rest raises a new readable edge.
    /// Never with stacked layers (an HTTPS proxy's tunnel): readers read on
    /// to `WouldBlock` there. Saves a `recv` that would fail with `EAGAIN`
    /// on every readable event.
    pub fn short_read_means_drained(&self) -> bool {
        self.drained.load(Ordering::Acquire)
    }

    /// Ciphertext queued for the socket in every layer, and plaintext
    /// queued while a handshake runs: what a write took that the socket
    /// has not (for a connection's buffered amount).
    pub fn pending_bytes(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether any layer's handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.state.lock().map(|st| st.layers.iter().any(|l| l.session.is_handshaking())).unwrap_or(false)
    }

    /// The innermost session's peer certificate chain (leaf first, DER).
    pub fn peer_certificates(&self) -> Option<Vec<Vec<u8>>> {
        self.state.lock().ok().and_then(|st| st.layers.last().and_then(|l| l.session.peer_certificates()))
    }

    /// Negotiated version of the innermost session ("TLSv1_3"...).
    pub fn protocol_version(&self) -> Option<String> {
        self.state.lock().ok().and_then(|st| st.layers.last().and_then(|l| l.session.protocol_version()))
    }

    /// Queues close_notify in every layer and sends what the socket takes now.
    pub fn close_notify<S>(&self, sock: &S)
    where
        for<'a> &'a S: Read + Write,
    {
        if let Ok(mut st) = self.lock() {
            for l in st.layers.iter_mut().rev() {
                l.session.send_close_notify();
            }
            let _ = st.flush(sock);
        }
    }
}

impl State {
    fn pending_bytes(&self) -> usize {
        self.layers.iter().map(|l| l.session.pending_ciphertext() + l.session.pending_plaintext()).sum()
    }

    fn check(&self) -> io::Result<()> {
        match &self.failed {
            Some(f) => Err(f.clone().into_io()),
            None => Ok(()),
        }
    }

    fn fail<S>(&mut self, sock: &S, f: TlsFailure) -> io::Error
    where
        for<'a> &'a S: Read + Write,
    {
        // The alert rustls queued goes out if the socket takes it now.
        let _ = self.flush(sock);
        self.failed = Some(f.clone());
        f.into_io()
    }

    fn read<S>(&mut self, sock: &S, buf: &mut [u8]) -> io::Result<usize>
    where
        for<'a> &'a S: Read + Write,
    {
        self.check()?;
        loop {
            let top = self.layers.len() - 1;
            match self.layers[top].session.read_plaintext(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if TlsFailure::from_io(&e).is_some() => {
                    let f = TlsFailure::from_io(&e).cloned().expect("checked");
                    return Err(self.fail(sock, f));
                }
                r => {
                    let r = match r {
                        Ok(n) if n > 0 && n < buf.len() => Ok(n + self.read_received(&mut buf[n..])),
                        r => r,
                    };
                    if self.layers.iter().any(|l| l.session.wants_write()) {
                        let _ = self.flush(sock);
                    }
                    return r;
                }
            }
            match self.pump(sock) {
                Ok(_) => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        // Processing may have queued handshake messages or
                        // key updates: send them before waiting.
                        self.flush(sock)?;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// More plaintext from records already received (no socket read), so
    /// one call returns what a burst of small records carried instead of
    /// one record. An end or a failure met here is left for the next call.
    fn read_received(&mut self, buf: &mut [u8]) -> usize {
        let top = self.layers.len() - 1;
        let mut n = 0;
        while n < buf.len() {
            match self.layers[top].session.read_plaintext(&mut buf[n..]) {
                Ok(k) if k > 0 => n += k,
                _ => break,
            }
        }
        n
    }

    /// Moves received bytes up the layers, reading the socket once when
    /// nothing was waiting. `Ok(true)`: progress; `Ok(false)`: end of
    /// stream reached the sessions; `WouldBlock`: nothing to do now.
    fn pump<S>(&mut self, sock: &S) -> io::Result<bool>
    where
        for<'a> &'a S: Read + Write,
    {
        if self.advance(sock)? {
            return Ok(true);
        }
        let n = loop {
            match self.layers[0].session.read_tls(&mut SockIo(sock)) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => match TlsFailure::from_io(&e).cloned() {
                    Some(f) => return Err(self.fail(sock, f)),
                    None => return Err(e),
                },
            }
        };
        if n == 0 {
            self.layers[0].session.feed_eof();
            self.advance(sock)?;
            return Ok(false);
        }
        self.advance(sock)?;
        Ok(true)
    }

    /// Feeds each layer what is waiting for it, and each layer's plaintext
    /// to the layer above. True when anything moved.
    fn advance<S>(&mut self, sock: &S) -> io::Result<bool>
    where
        for<'a> &'a S: Read + Write,
    {
        let mut moved = false;
        for i in 0..self.layers.len() {
            if !self.layers[i].unfed.is_empty() {
                let l = &mut self.layers[i];
                let taken = match l.session.feed(&l.unfed) {
                    Ok(t) => t,
                    Err(f) => return Err(self.fail(sock, f)),
                };
                let l = &mut self.layers[i];
                l.unfed.drain(..taken);
                if l.unfed.is_empty() {
                    l.unfed = Vec::new();
                }
                moved |= taken > 0;
            }
            if i + 1 < self.layers.len() {
                let (lower, upper) = self.layers.split_at_mut(i + 1);
                let (lower, upper) = (&mut lower[i], &mut upper[0]);
                match lower.session.read_plaintext_append(&mut upper.unfed) {
                    Ok(0) => upper.session.feed_eof(),
                    Ok(_) => moved = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => upper.session.feed_eof(),
                    Err(e) => match TlsFailure::from_io(&e).cloned() {
                        Some(f) => return Err(self.fail(sock, f)),
                        None => return Err(e),
                    },
                }
                if !self.layers[i + 1].unfed.is_empty() {
                    let l = &mut self.layers[i + 1];
                    let taken = match l.session.feed(&l.unfed) {
                        Ok(t) => t,
                        Err(f) => return Err(self.fail(sock, f)),
                    };
                    let l = &mut self.layers[i + 1];
                    l.unfed.drain(..taken);
                    if l.unfed.is_empty() {
                        l.unfed = Vec::new();
                    }
                }
            }
        }
        Ok(moved)
    }

    /// Pushes each layer's ciphertext into the layer below, then the
    /// outermost layer's into the socket.
    fn flush<S>(&mut self, sock: &S) -> io::Result<bool>
    where
        for<'a> &'a S: Read + Write,
    {
        for i in (1..self.layers.len()).rev() {
            let (lower, upper) = self.layers.split_at_mut(i);
            let (lower, upper) = (&mut lower[i - 1].session, &mut upper[0].session);
            while upper.wants_write() {
                let taken = lower.write_plaintext(upper.ciphertext());
                debug_assert_eq!(taken, upper.ciphertext().len(), "inner layers' output is unlimited");
                if taken == 0 {
                    break;
                }
                upper.consume_ciphertext(taken);
            }
        }
        let mut w = SockIo(sock);
        while self.layers[0].session.wants_write() {
            match self.layers[0].session.write_ciphertext(&mut w) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// `io::Read` and `io::Write` over a shared socket reference (the sessions
/// take `&mut dyn Read` / `&mut dyn Write`).
struct SockIo<'a, S>(&'a S);

impl<S> Read for SockIo<'_, S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl<S> Write for SockIo<'_, S>
where
    for<'a> &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
