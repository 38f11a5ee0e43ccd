//! Heap held by an idle server `Session` (the sans-IO C layer's
//! `ws_session`), plain and with TLS inside it, measured with a counting
//! allocator: N server sessions complete the handshake with N client
//! sessions and echo one message, the clients are dropped, and what stays
//! allocated is divided by N. Prints both numbers and bounds them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use ws::api::{Dialer, MessageType, Session, SessionEvent, SessionHandler, Upgrader};
use ws::transport::tls::buffers::pool;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
}

struct Echo(bool);

impl SessionHandler for Echo {
    fn on_event(&mut self, s: &Session, ev: SessionEvent<'_>) {
        if let SessionEvent::Message { kind, data } = ev {
            if self.0 {
                s.send(kind, data).unwrap();
            }
        }
    }
}

fn take(s: &Session) -> Vec<u8> {
    let out = s.with_pending(|b| b.to_vec());
    s.sent(out.len()).unwrap();
    out
}

fn pump(c: &Session, s: &Session) {
    let now = Instant::now();
    for _ in 0..10 {
        let a = take(c);
        let b = take(s);
        if a.is_empty() && b.is_empty() {
            return;
        }
        s.recv(&a, now, &mut Echo(true)).unwrap();
        c.recv(&b, now, &mut Echo(false)).unwrap();
    }
}

/// Bytes one idle server session holds (its own struct included).
fn per_idle_server_session(tls: bool) -> isize {
    let pki = support::pki::Pki::get();
    let mut up = Upgrader::default();
    let mut d = Dialer::default();
    if tls {
        let l = pki.leaf("server-ec");
        let cfg = TlsServerConfig::from_files(&l.cert, &l.key).unwrap();
        cfg.rustls().unwrap(); // built (and cached) before counting
        up.tls = Some(cfg);
        let mut c = TlsClientConfig::default();
        c.add_ca_file(&pki.ca()).unwrap();
        c.rustls().unwrap();
        d.tls = c;
    }
    let url = if tls { "wss://localhost/" } else { "ws://localhost/" };
    const N: usize = 200;
    let mut clients = Vec::with_capacity(N);
    let mut servers = Vec::with_capacity(N);
    let before = LIVE.load(Ordering::Relaxed);
    // The TLS buffer pool is the process's, shared by all connections:
    // what it caches is not charged to the sessions.
    let pool_before = pool::held_bytes() as isize;
    for _ in 0..N {
        let now = Instant::now();
        let c = Session::client(&d, url, now).unwrap();
        let s = Session::server(&up, now).unwrap();
        pump(&c, &s);
        assert!(c.is_open() && s.is_open());
        c.send(MessageType::Text, b"hello").unwrap();
        pump(&c, &s);
        clients.push(c);
        servers.push(s);
    }
    // Both vectors were allocated before counting started; dropping the
    // clients' frees its buffer too, which is added back.
    let clients_vec = (clients.capacity() * std::mem::size_of::<Session>()) as isize;
    drop(clients);
    let pooled = pool::held_bytes() as isize - pool_before;
    let held = LIVE.load(Ordering::Relaxed) - before + clients_vec - pooled;
    drop(servers);
    held / N as isize + std::mem::size_of::<Session>() as isize
}

#[test]
fn idle_session_memory_plain_and_tls() {
    let plain = per_idle_server_session(false);
    let tls = per_idle_server_session(true);
    eprintln!("idle server session: {plain} bytes (ws), {tls} bytes (wss, TLS inside the session)");
    // Regression bounds, not goals.
    assert!(plain < 4 * 1024, "plain session {plain} B");
    // TLS adds its session (struct, keys, state: 3.7 KB); rustls's buffered
    // API added a 4 KiB receive buffer it never freed (7.8 KB in all).
    assert!(tls < plain + 5 * 1024, "TLS session {tls} B");
}
