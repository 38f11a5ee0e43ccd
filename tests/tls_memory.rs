//! Heap held by an idle server-side TLS session (the part TLS adds to an
//! idle wss:// connection), measured with a counting allocator: N sessions
//! complete a handshake and exchange a message with N clients, the clients
//! are dropped, and what stays allocated is divided by N. Prints the number
//! (README, Memory) and keeps it from growing past a bound.
//!
//! The TLS buffers (records received, records to send) go back to a small
//! process-wide pool when they empty; what that pool caches is shared by
//! every connection, so it is reported apart and not charged to a session.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ws::transport::tls::buffers::pool;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig, TlsSession};

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

fn pump(a: &mut TlsSession, b: &mut TlsSession) {
    for _ in 0..8 {
        let mut out = Vec::new();
        a.take_ciphertext(&mut out);
        assert_eq!(b.feed(&out).unwrap(), out.len());
        let mut back = Vec::new();
        b.take_ciphertext(&mut back);
        assert_eq!(a.feed(&back).unwrap(), back.len());
    }
}

/// A client and a server session after the handshake, a request and a
/// response: idle.
fn idle_pair(client_cfg: &TlsClientConfig, server_cfg: &TlsServerConfig) -> (TlsSession, TlsSession) {
    let mut c = TlsSession::client(client_cfg, "localhost").unwrap();
    let mut s = TlsSession::server(server_cfg).unwrap();
    pump(&mut c, &mut s);
    c.write_plaintext(b"GET / HTTP/1.1\r\n\r\n");
    pump(&mut c, &mut s);
    let mut buf = [0u8; 64];
    assert!(s.read_plaintext(&mut buf).unwrap() > 0);
    s.write_plaintext(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    pump(&mut s, &mut c);
    (c, s)
}

/// Bytes one idle server session holds (its own struct included), and the
/// bytes the shared buffer pool caches after the run.
fn per_idle_server_session(leaf: &str) -> (isize, usize) {
    let pki = support::pki::Pki::get();
    let l = pki.leaf(leaf);
    let server_cfg = TlsServerConfig::from_files(&l.cert, &l.key).unwrap();
    let mut client_cfg = TlsClientConfig::default();
    client_cfg.add_ca_file(&pki.ca()).unwrap();
    // Build (and cache) both configs before counting.
    server_cfg.rustls().unwrap();
    client_cfg.rustls().unwrap();
    const N: usize = 200;
    let mut clients = Vec::with_capacity(N);
    let mut servers = Vec::with_capacity(N);
    let before = LIVE.load(Ordering::Relaxed);
    let pool_before = pool::held_bytes() as isize;
    for _ in 0..N {
        let (c, s) = idle_pair(&client_cfg, &server_cfg);
        // Nothing is in flight: the session holds no TLS buffer.
        assert_eq!(s.buffered_capacity(), 0, "an idle session keeps no TLS buffer");
        clients.push(c);
        servers.push(s);
    }
    // Both vectors were allocated before counting started: dropping the
    // clients' frees its storage too, which is added back (the servers'
    // is counted as one session struct each).
    let clients_vec = (clients.capacity() * std::mem::size_of::<TlsSession>()) as isize;
    drop(clients);
    let pooled = pool::held_bytes();
    let held = LIVE.load(Ordering::Relaxed) - before + clients_vec - (pooled as isize - pool_before);
    let per = held / N as isize + std::mem::size_of::<TlsSession>() as isize;
    drop(servers);
    (per, pooled)
}

#[test]
fn idle_server_tls_session_memory() {
    let (ec, _) = per_idle_server_session("server-ec");
    let (rsa, pooled) = per_idle_server_session("server-rsa");
    eprintln!(
        "idle server TLS session: {ec} bytes (ECDSA certificate), {rsa} bytes (RSA certificate); \
         the shared TLS buffer pool caches {pooled} bytes for the whole process"
    );
    // rustls's buffered API kept a 4 KiB receive buffer per session for
    // good (6.5 KB per idle session); with caller-owned buffers released
    // when empty the session is its struct, keys and state only (3.7 KB).
    assert!(ec < 4096 && rsa < 4096, "ECDSA {ec} B, RSA {rsa} B per idle session");
    assert!(pooled <= pool::KEEP_BYTES + 1024, "pool {pooled} B");
}
