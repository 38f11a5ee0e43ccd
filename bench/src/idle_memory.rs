//! `--idle-memory N`: memory per idle connection of the event-loop server.
//!
//! The server (`servers/libws_loop.rs`, the same echo server the table
//! measures) runs in a child process — this binary started again with
//! [`CHILD_FLAG`] — because one process cannot hold both ends of 10,000
//! connections under this machine's descriptor limit. Both processes raise
//! `RLIMIT_NOFILE` to its hard limit. The child prints `port P`, then
//! answers `count` with `count N` (`ws_loop_connection_count`) and ends on
//! `quit` (graceful shutdown) or end of input.
//!
//! The parent:
//! 1. reads the child's `VmRSS` (`/proc/<pid>/status`) before any
//!    connection;
//! 2. opens N WebSocket connections one after the other (each handshake
//!    complete and its 101 checked), echoes one 16-byte message on a sample
//!    of 100 of them, and waits until the server counts N open;
//! 3. after a second of idleness reads `VmRSS` again: growth / N is the
//!    memory per idle connection;
//! 4. sends one `--idle-size` message (default 16 KiB) on every connection
//!    (batches of [`BATCH`]: send on all of a batch, then read and check
//!    every echo in full), waits a second, and reads `VmRSS` a third time:
//!    what the connections keep after having used buffers.
//!
//! `--idle-compress pooled|dedicated|shared`: the server accepts
//! permessage-deflate in that memory mode (`deflate_modes.rs`), and the
//! clients are libws C API connections that offer it (same windows) and
//! send JSON-like text (`json.rs`): step 2 measures N compressing
//! connections that sent nothing yet, step 4 after one compressed
//! `--idle-size` message each way per connection (echo length checked).
//!
//! `--idle-tls`: the server is the loop over TLS (`wss`, ECDSA P-256
//! certificate, TLS 1.3); the child also prints `ca PATH` (the CA of the
//! certificates it made), and the clients (libws's TLS layer) trust it.
//! Steps 1-3 only: what an idle `wss` connection costs after its TLS and
//! WebSocket handshakes.
//!
//! RSS counts the server's user-space memory (heap, stacks, touched pages
//! of the loop's shared read buffer); socket buffers live in the kernel
//! and are not in it.
//!
//! `IDLE_SERVER_WRAPPER` (environment): a command the child runs under,
//! to see what the memory is, e.g.
//! `IDLE_SERVER_WRAPPER="valgrind --tool=massif --massif-out-file=/tmp/m.out"`
//! (the RSS figures are then the profiler's; read its snapshots instead).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource};

use crate::client::WsHandshaken;
use crate::client::{BenchConnection, Payload};
use crate::client_libws::{LibwsClient, LibwsConn};
use crate::deflate_modes::DeflateMode;
use crate::servers::libws_loop::LibwsLoop;

/// Hidden flag that makes the binary the loop-server child.
pub const CHILD_FLAG: &str = "--loop-server-child";

/// Connections that have a message in flight at once in step 4.
const BATCH: usize = 256;
/// Connections that echo one small message in step 2.
const SAMPLES: usize = 100;

/// Raises the soft descriptor limit to the hard one; returns it.
fn raise_nofile() -> io::Result<u64> {
    let mut lim = getrlimit(Resource::Nofile);
    if let Some(hard) = lim.maximum {
        lim.current = Some(hard);
        setrlimit(Resource::Nofile, lim).map_err(io::Error::from)?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// The child: the loop echo server, controlled over stdin/stdout.
pub fn child(mode: Option<DeflateMode>, tls: bool) -> io::Result<()> {
    raise_nofile()?;
    let srv = if tls { crate::servers::libws_loop::start_tls_loop()? } else { LibwsLoop::start_with(0, mode)? };
    let mut out = io::stdout().lock();
    writeln!(out, "port {}", crate::servers::EchoServer::addr(&srv).port())?;
    if tls {
        writeln!(out, "ca {}", crate::tls_bench::certs()?.dir.join("ca.pem").display())?;
    }
    out.flush()?;
    for line in io::stdin().lock().lines() {
        match line?.trim() {
            "count" => writeln!(out, "count {}", srv.connection_count())?,
            "quit" => break,
            other => writeln!(out, "error: unknown command {other:?}")?,
        }
        out.flush()?;
    }
    srv.shutdown()
}

/// The running child and its control pipes; killed if dropped early.
struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ServerChild {
    fn spawn(mode: Option<DeflateMode>, tls: bool) -> io::Result<ServerChild> {
        let exe = std::env::current_exe()?;
        let mut cmd = match std::env::var("IDLE_SERVER_WRAPPER") {
            // A heap profiler in front of the child (see the module
            // comment); the shell splits the wrapper's words.
            Ok(w) if !w.trim().is_empty() => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(format!("exec {w} \"$0\" \"$@\"")).arg(exe);
                c
            }
            _ => Command::new(exe),
        };
        cmd.arg(CHILD_FLAG);
        if tls {
            cmd.arg("--idle-tls");
        }
        if let Some(m) = mode {
            cmd.args(["--idle-compress", m.name()]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| io::Error::other("no child stdout"))?);
        Ok(ServerChild { child, stdin, stdout })
    }

    /// The text of the child's next line, which must read `key TEXT`.
    fn expect_text(&mut self, key: &str) -> io::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("the server child exited"));
        }
        line.trim()
            .strip_prefix(key)
            .map(|v| v.trim().to_string())
            .ok_or_else(|| io::Error::other(format!("server child: expected {key:?}, got {:?}", line.trim())))
    }

    /// The value of the child's next line, which must read `key VALUE`.
    fn expect(&mut self, key: &str) -> io::Result<usize> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("the server child exited"));
        }
        line.trim()
            .strip_prefix(key)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("server child: expected {key:?}, got {:?}", line.trim())))
    }

    fn count(&mut self) -> io::Result<usize> {
        let stdin = self.stdin.as_mut().ok_or_else(|| io::Error::other("child stdin closed"))?;
        stdin.write_all(b"count\n")?;
        stdin.flush()?;
        self.expect("count")
    }

    /// `VmRSS` and `VmHWM` of the child, in KiB.
    fn rss_kib(&self) -> io::Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc/{}/status", self.child.id())))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Asks for a graceful exit and waits up to 10 s.
    fn quit(mut self) -> io::Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
        }
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait()? {
                return if st.success() { Ok(()) } else { Err(io::Error::other(format!("server child: {st}"))) };
            }
            if Instant::now() >= until {
                return Err(io::Error::other("server child did not exit within 10 s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends message number `seq` (a `payload`-sized binary message) on `c`.
fn send(c: &mut WsHandshaken, payload: &mut Payload, seq: u64, wire: &mut Vec<u8>) -> io::Result<()> {
    wire.clear();
    c.encode(payload.for_seq(seq), wire);
    c.stream.write_all(wire)
}

/// Reads the echo of message `seq` and compares it in full.
fn receive(c: &mut WsHandshaken, payload: &Payload, seq: u64, inbuf: &mut Vec<u8>) -> io::Result<()> {
    c.stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    inbuf.clear();
    inbuf.append(&mut c.leftover);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut replies = Vec::new();
    loop {
        let mut pos = 0;
        loop {
            match c.decode(&inbuf[pos..], &mut replies)? {
                None => break,
                Some((used, Some(msg))) => {
                    payload.verify(seq, msg, true)?;
                    pos += used;
                    c.leftover.extend_from_slice(&inbuf[pos..]);
                    if !replies.is_empty() {
                        c.stream.write_all(&replies)?;
                    }
                    return Ok(());
                }
                Some((used, None)) => pos += used,
            }
        }
        inbuf.drain(..pos);
        if !replies.is_empty() {
            c.stream.write_all(&replies)?;
            replies.clear();
        }
        let n = c.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        inbuf.extend_from_slice(&chunk[..n]);
    }
}

fn kib_to_bytes_per_conn(kib: i64, n: usize) -> f64 {
    kib as f64 * 1024.0 / n as f64
}

/// The parent: see the module comment.
pub fn run(n: usize, size: usize, mode: Option<DeflateMode>, tls: bool) -> io::Result<()> {
    if tls {
        return run_tls(n);
    }
    if let Some(m) = mode {
        return run_compressed(n, size, m);
    }
    let limit = raise_nofile()?;
    if (n as u64).saturating_add(64) > limit {
        return Err(io::Error::other(format!(
            "{n} connections need more descriptors than RLIMIT_NOFILE allows ({limit})"
        )));
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut srv = ServerChild::spawn(None, false)?;
    let port = srv.expect("port")?;
    let port = u16::try_from(port).map_err(|_| io::Error::other("bad port from the child"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if srv.count()? != 0 {
        return Err(io::Error::other("the server has connections before any was opened"));
    }
    thread::sleep(Duration::from_millis(500));
    let (rss0, _) = srv.rss_kib()?;

    // Step 2: open, check a sample, wait for the server's count.
    let t = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let c = WsHandshaken::connect(addr).map_err(|e| io::Error::other(format!("connection #{i}: {e}")))?;
        if !c.leftover.is_empty() {
            return Err(io::Error::other(format!("connection #{i}: unexpected bytes after the 101")));
        }
        conns.push(c);
    }
    let opened_in = t.elapsed();
    let step = (n / SAMPLES).max(1);
    let mut small = Payload::new(16);
    let (mut wire, mut inbuf) = (Vec::new(), Vec::new());
    let mut sampled = 0;
    for (i, c) in conns.iter_mut().enumerate().step_by(step) {
        send(c, &mut small, i as u64, &mut wire)?;
        receive(c, &small, i as u64, &mut inbuf).map_err(|e| io::Error::other(format!("sample #{i}: {e}")))?;
        sampled += 1;
    }
    let until = Instant::now() + Duration::from_secs(30);
    let mut open = srv.count()?;
    while open != n {
        if Instant::now() >= until {
            return Err(io::Error::other(format!("the server counts {open} open connections, not {n}")));
        }
        thread::sleep(Duration::from_millis(50));
        open = srv.count()?;
    }
    thread::sleep(Duration::from_secs(1));
    let (rss1, _) = srv.rss_kib()?;

    // Step 4: one message each, then idle again.
    let t = Instant::now();
    let mut big = Payload::new(size);
    for (b, batch) in conns.chunks_mut(BATCH).enumerate() {
        for (k, c) in batch.iter_mut().enumerate() {
            send(c, &mut big, (b * BATCH + k) as u64, &mut wire)?;
        }
        for (k, c) in batch.iter_mut().enumerate() {
            let seq = (b * BATCH + k) as u64;
            receive(c, &big, seq, &mut inbuf).map_err(|e| io::Error::other(format!("echo #{seq}: {e}")))?;
        }
    }
    let echoed_in = t.elapsed();
    thread::sleep(Duration::from_secs(1));
    let (rss2, hwm) = srv.rss_kib()?;
    let still_open = srv.count()?;

    let idle = rss1 as i64 - rss0 as i64;
    let after = rss2 as i64 - rss0 as i64;
    println!("# command: {command}");
    println!("# server: libws-loop echo server (ws_loop, one loop thread, C API) in child process {}", srv.child.id());
    println!("# RSS: VmRSS of the child from /proc/<pid>/status (KiB); kernel socket buffers are not in it");
    println!(
        "connections: {n} opened in {:.2} s (handshakes checked), {sampled} sample echoes verified, \
         server counts {open} open",
        opened_in.as_secs_f64()
    );
    println!("RSS before any connection: {rss0} KiB");
    println!(
        "RSS with {n} idle connections: {rss1} KiB; growth {idle} KiB = {:.0} bytes per idle connection",
        kib_to_bytes_per_conn(idle, n)
    );
    println!(
        "RSS after one {size}-byte echo on every connection, idle again: {rss2} KiB; growth {after} KiB = {:.0} bytes \
         per connection (echoes verified in full in {:.2} s, {BATCH} connections in flight at a time)",
        kib_to_bytes_per_conn(after, n),
        echoed_in.as_secs_f64()
    );
    println!("peak RSS (VmHWM): {hwm} KiB; the server counts {still_open} open connections at the end");
    drop(conns);
    srv.quit()
}

/// Waits until the server counts `n` open connections (at most 30 s).
fn wait_count(srv: &mut ServerChild, n: usize) -> io::Result<usize> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let open = srv.count()?;
        if open == n {
            return Ok(open);
        }
        if Instant::now() >= until {
            return Err(io::Error::other(format!("the server counts {open} open connections, not {n}")));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `--idle-compress`: see the module comment.
fn run_compressed(n: usize, size: usize, mode: DeflateMode) -> io::Result<()> {
    let limit = raise_nofile()?;
    if (n as u64).saturating_add(64) > limit {
        return Err(io::Error::other(format!(
            "{n} connections need more descriptors than RLIMIT_NOFILE allows ({limit})"
        )));
    }
    if size < crate::json::MIN_SIZE {
        return Err(io::Error::other(format!(
            "--idle-size must be at least {} with --idle-compress",
            crate::json::MIN_SIZE
        )));
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut srv = ServerChild::spawn(Some(mode), false)?;
    let port = u16::try_from(srv.expect("port")?).map_err(|_| io::Error::other("bad port from the child"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    thread::sleep(Duration::from_millis(500));
    let (rss0, _) = srv.rss_kib()?;
    let client = LibwsClient { compress: true, json: true, mode };
    let t = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        // dial_with fails unless permessage-deflate was negotiated.
        conns.push(LibwsConn::dial_with(addr, client).map_err(|e| io::Error::other(format!("connection #{i}: {e}")))?);
    }
    let opened_in = t.elapsed();
    let open = wait_count(&mut srv, n)?;
    thread::sleep(Duration::from_secs(1));
    let (rss1, _) = srv.rss_kib()?;
    let t = Instant::now();
    let mut payload = Payload::json(size);
    for (i, c) in conns.iter_mut().enumerate() {
        c.round_trips(&mut payload, 1).map_err(|e| io::Error::other(format!("echo #{i}: {e}")))?;
    }
    let echoed_in = t.elapsed();
    thread::sleep(Duration::from_secs(1));
    let (rss2, hwm) = srv.rss_kib()?;
    let still_open = srv.count()?;
    let idle = rss1 as i64 - rss0 as i64;
    let after = rss2 as i64 - rss0 as i64;
    println!("# command: {command}");
    println!(
        "# server: libws-loop echo server accepting permessage-deflate, memory mode {} (deflate_modes.rs), child process {}",
        mode.name(),
        srv.child.id()
    );
    println!("# clients: libws C API connections offering the mode's windows, JSON-like text, compression level 1");
    println!("# RSS: VmRSS of the child from /proc/<pid>/status (KiB); kernel socket buffers are not in it");
    println!(
        "connections: {n} compressing connections opened in {:.2} s, server counts {open} open",
        opened_in.as_secs_f64()
    );
    println!("RSS before any connection: {rss0} KiB");
    println!(
        "RSS with {n} idle compressing connections (no message yet): {rss1} KiB; growth {idle} KiB = {:.0} bytes per connection",
        kib_to_bytes_per_conn(idle, n)
    );
    println!(
        "RSS after one compressed {size}-byte echo on every connection, idle again: {rss2} KiB; growth {after} KiB = \
         {:.0} bytes per connection (echoed in {:.2} s)",
        kib_to_bytes_per_conn(after, n),
        echoed_in.as_secs_f64()
    );
    println!("peak RSS (VmHWM): {hwm} KiB; the server counts {still_open} open connections at the end");
    for c in conns {
        Box::new(c).close()?;
    }
    srv.quit()
}

/// `--idle-tls`: steps 1-3 over `wss` (see the module comment).
fn run_tls(n: usize) -> io::Result<()> {
    let limit = raise_nofile()?;
    if (n as u64).saturating_add(64) > limit {
        return Err(io::Error::other(format!(
            "{n} connections need more descriptors than RLIMIT_NOFILE allows ({limit})"
        )));
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let mut srv = ServerChild::spawn(None, true)?;
    let port = srv.expect("port")?;
    let port = u16::try_from(port).map_err(|_| io::Error::other("bad port from the child"))?;
    let ca = srv.expect_text("ca")?;
    let mut tls = ws::transport::tls::TlsClientConfig::default();
    tls.add_ca_file(std::path::Path::new(&ca)).map_err(|e| io::Error::other(e.to_string()))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    thread::sleep(Duration::from_millis(500));
    let (rss0, _) = srv.rss_kib()?;
    let t = Instant::now();
    // The --tls clients: n connections on one poller, each handshake
    // (TLS, then the 101) completed one after the other.
    let clients = crate::client::TlsWsClient { conns: n, tls };
    let conns = crate::client::BenchClient::connect(&clients, addr)?;
    let opened_in = t.elapsed();
    let open = wait_count(&mut srv, n)?;
    thread::sleep(Duration::from_secs(1));
    let (rss1, hwm) = srv.rss_kib()?;
    let idle = rss1 as i64 - rss0 as i64;
    println!("# command: {command}");
    println!(
        "# server: libws-loop echo server over TLS (ws_loop, one loop thread, C API; ECDSA P-256, TLS 1.3) in child process {}",
        srv.child.id()
    );
    println!("# RSS: VmRSS of the child from /proc/<pid>/status (KiB); kernel socket buffers are not in it");
    println!(
        "connections: {n} wss connections opened in {:.2} s (TLS and WebSocket handshakes checked), server counts {open} open",
        opened_in.as_secs_f64()
    );
    println!("RSS before any connection: {rss0} KiB");
    println!(
        "RSS with {n} idle wss connections: {rss1} KiB; growth {idle} KiB = {:.0} bytes per idle wss connection",
        kib_to_bytes_per_conn(idle, n)
    );
    println!("peak RSS (VmHWM): {hwm} KiB");
    drop(conns);
    srv.quit()
}
