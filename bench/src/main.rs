//! libws-bench: echo round-trip throughput of in-process WebSocket servers.
//!
//! Run from the workspace root:
//!
//! ```text
//! cargo run -p libws-bench --release -- --seconds 2
//! cargo run -p libws-bench --release -- --seconds 1 --sizes 16,65536 --modes 16 \
//!     --servers tokio-tungstenite,fastwebsockets --json
//! ```
//!
//! Every server runs in this process on 127.0.0.1:0 (tokio servers on their
//! own 2-worker runtime). For each case (message size x messages in flight)
//! and each server, one fresh TCP connection is opened and handshaken, a
//! short warm-up is run, then the load is measured for `--seconds`. All
//! WebSocket servers are driven by the same [`client::BenchClient`]; the
//! plain TCP reference uses the same pump with a 4-byte length prefix.
//!
//! Other flags: `--warmup S` (default 0.5), `--repeat N` (median of N runs,
//! interleaved across servers), `--pin same|split|none` (default `same`:
//! client and servers share one CPU; see `affinity.rs` for why), `--json`,
//! `--markdown` (the table as README markdown), `--client libws|raw` (the
//! WebSocket client: libws's C API client, or the built-in raw mio client;
//! libws is the default with one connection).
//!
//! `--conns N` (default 1): N connections per server and case, opened
//! together and driven at once, each with its own window of `--modes`
//! messages; msgs/s is the total over all N. N > 1 always uses the
//! built-in multi-connection clients (raw WebSocket and plain TCP: one
//! thread, one mio `Poll`, N connections; see `client.rs`), so
//! `--client libws` is refused with it.
//!
//! `--tls` runs the same echo over TLS (see `tls_bench.rs`): libws's
//! blocking and loop servers with a TLS upgrader, tokio-tungstenite over
//! tokio-rustls and a bare rustls echo (the reference in the plain-TCP
//! column), all on ring; the clients are the raw ones over libws's TLS
//! layer. `--tls-handshakes` measures full handshakes per second with an
//! ECDSA and an RSA certificate.
//!
//! `--alloc-check` runs only the libws server and client (both through the C
//! API) in-process and prints heap allocations per round trip (see
//! `alloc_count.rs`).
//!
//! `--idle-memory N [--idle-size B] [--idle-compress MODE] [--idle-tls]`
//! measures the event-loop server's memory per idle connection, with the
//! server in a child process (see `idle_memory.rs`); with `--idle-compress`
//! the connections compress in that memory mode, with `--idle-tls` they
//! are `wss` connections.
//!
//! The libws servers are the "libws" row (blocking, `servers/libws_blocking.rs`)
//! and the "libws-loop" row (event loop, `servers/libws_loop.rs`); each
//! gets a ratio over the best non-libws WebSocket server of the same case,
//! and every WebSocket server a ratio over plain TCP.
//!
//! Compression (permessage-deflate) has two modes of its own:
//!
//! ```text
//! cargo run -p libws-bench --release -- --compress --seconds 2 --repeat 3
//! cargo run -p libws-bench --release -- --broadcast --repeat 3
//! ```
//!
//! `--compress` (see `compress.rs`): echo throughput of JSON-like text
//! (`json.rs`; default `--sizes 65536`, `--modes 1,16`) of the compressing
//! peer (Python `websockets`) and libws's servers in each compression
//! memory mode, all driven by compressing libws clients (`--conns N` at
//! once), with bytes on the wire per message and a gorilla stand-in's
//! ratio. Its servers and clients are fixed (`--servers`, `--client` do
//! not apply).
//!
//! `--broadcast` (see `broadcast.rs`): one libws server, `--clients N`
//! (default 1000) raw clients that inflate and check every message; the
//! time to send one message to all of them with a prepared message versus
//! `ws_conn_write_message` on each, compressed and not. `--broadcasts N`
//! timed broadcasts per series (default 20), default `--sizes 16384,65536`,
//! default `--pin split`.

mod affinity;
mod alloc_count;
mod broadcast;
mod client;
mod client_libws;
mod compress;
mod deflate_backends;
mod deflate_modes;
mod handshake;
mod idle_memory;
mod json;
mod libws_ffi;
mod server_cpu;
mod servers;
mod tls_bench;

#[global_allocator]
static GLOBAL: alloc_count::Counting = alloc_count::Counting;

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use client::{BenchClient, LoadResult, LoadSpec, MultiPlainTcpClient, MultiRawWsClient, PlainTcpClient, RawWsClient};
use servers::{EchoServer, Protocol, REGISTRY, TLS_REGISTRY};

const MIB: f64 = 1024.0 * 1024.0;

/// The client that drives every WebSocket server (`--client`, `--conns`).
fn ws_client(kind: ClientKind, conns: usize) -> Box<dyn BenchClient> {
    match kind {
        ClientKind::Libws => Box::new(client_libws::LibwsClient::default()),
        ClientKind::Raw if conns > 1 => Box::new(MultiRawWsClient { conns }),
        ClientKind::Raw => Box::new(RawWsClient),
    }
}

/// The client that drives the plain TCP reference.
fn plain_client(conns: usize) -> Box<dyn BenchClient> {
    if conns > 1 {
        Box::new(MultiPlainTcpClient { conns })
    } else {
        Box::new(PlainTcpClient)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientKind {
    Libws,
    Raw,
}

impl std::str::FromStr for ClientKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "libws" => Ok(ClientKind::Libws),
            "raw" => Ok(ClientKind::Raw),
            _ => Err(format!("--client: expected libws or raw, got {s:?}")),
        }
    }
}

const PIPELINE_NOTE: &str = "\"N pipelined\" = sliding window: send N, then one new message per echo received; \
     echoes after the window are drained, not counted";

struct Args {
    seconds: f64,
    warmup: f64,
    sizes: Vec<usize>,
    modes: Vec<usize>,
    servers: Vec<String>,
    json: bool,
    /// `--sizes` was given (the compression modes have other defaults).
    sizes_given: bool,
    repeat: usize,
    /// `--pin`, if given (default `same`; `split` for `--broadcast`).
    pin: Option<affinity::Pin>,
    client: ClientKind,
    conns: usize,
    markdown: bool,
    alloc_check: bool,
    compress: bool,
    broadcast: bool,
    clients: usize,
    broadcasts: usize,
    idle_memory: Option<usize>,
    idle_size: usize,
    idle_compress: Option<deflate_modes::DeflateMode>,
    idle_tls: bool,
    loop_server_child: bool,
    /// `--tls`: the TLS servers and clients.
    tls: bool,
    /// `--tls-handshakes`: handshakes per second instead of echo.
    tls_handshakes: bool,
    /// `--deflate-backends`: zlib-rs vs libdeflate on whole messages.
    deflate_backends: bool,
}

const USAGE: &str = "usage: libws-bench [--seconds N] [--warmup N] [--sizes 16,1024,65536] \
[--modes 1,16] [--servers a,b,c] [--repeat N] [--pin same|split|none] [--client libws|raw] [--conns N] \
[--json|--markdown]\n\
       libws-bench --alloc-check [--sizes 16,1024,65536]\n\
       libws-bench --idle-memory N [--idle-size BYTES] [--idle-compress pooled|dedicated|shared] [--idle-tls]\n\
       libws-bench --tls [--conns N] [--seconds N] [--sizes ...] [--modes ...] [--repeat N]\n\
       libws-bench --tls-handshakes [--seconds N]\n\
       libws-bench --compress [--seconds N] [--warmup N] [--sizes 65536] [--modes 1,16] [--repeat N] [--pin ...]\n\
       libws-bench --broadcast [--clients 1000] [--broadcasts 20] [--sizes 16384,65536] [--repeat N] [--pin ...]\n\
       libws-bench --deflate-backends [--sizes 1024,16384] [--repeat N]";

fn parse_list<T: std::str::FromStr>(flag: &str, v: &str) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse().map_err(|_| format!("{flag}: bad value {s:?}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 2.0,
        warmup: 0.5,
        sizes: vec![16, 1024, 65536],
        modes: vec![1, 16],
        servers: REGISTRY.iter().map(|(n, _)| n.to_string()).collect(),
        json: false,
        sizes_given: false,
        repeat: 1,
        pin: None,
        client: ClientKind::Libws,
        conns: 1,
        markdown: false,
        alloc_check: false,
        compress: false,
        broadcast: false,
        clients: 1000,
        broadcasts: 20,
        idle_memory: None,
        idle_size: 16 * 1024,
        idle_compress: None,
        idle_tls: false,
        loop_server_child: false,
        tls: false,
        tls_handshakes: false,
        deflate_backends: false,
    };
    let mut servers_given = false;
    let mut client = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "--seconds: bad number")?,
            "--warmup" => a.warmup = val()?.parse().map_err(|_| "--warmup: bad number")?,
            "--sizes" => {
                a.sizes = parse_list("--sizes", &val()?)?;
                a.sizes_given = true;
            }
            "--modes" => a.modes = parse_list("--modes", &val()?)?,
            "--servers" => {
                a.servers = parse_list("--servers", &val()?)?;
                servers_given = true;
            }
            "--tls" => a.tls = true,
            "--tls-handshakes" => {
                a.tls = true;
                a.tls_handshakes = true;
            }
            "--repeat" => a.repeat = val()?.parse().map_err(|_| "--repeat: bad number")?,
            "--pin" => a.pin = Some(val()?.parse()?),
            "--json" => a.json = true,
            "--client" => client = Some(val()?.parse::<ClientKind>()?),
            "--conns" => a.conns = val()?.parse().map_err(|_| "--conns: bad number")?,
            "--markdown" => a.markdown = true,
            "--alloc-check" => a.alloc_check = true,
            "--compress" => a.compress = true,
            "--broadcast" => a.broadcast = true,
            "--deflate-backends" => a.deflate_backends = true,
            "--clients" => a.clients = val()?.parse().map_err(|_| "--clients: bad number")?,
            "--broadcasts" => a.broadcasts = val()?.parse().map_err(|_| "--broadcasts: bad number")?,
            "--idle-memory" => a.idle_memory = Some(val()?.parse().map_err(|_| "--idle-memory: bad number")?),
            "--idle-size" => a.idle_size = val()?.parse().map_err(|_| "--idle-size: bad number")?,
            "--idle-compress" => {
                let v = val()?;
                a.idle_compress = Some(
                    deflate_modes::DeflateMode::parse(&v)
                        .ok_or_else(|| format!("--idle-compress: expected pooled, dedicated or shared, got {v:?}"))?,
                );
            }
            idle_memory::CHILD_FLAG => a.loop_server_child = true,
            "--idle-tls" => a.idle_tls = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.seconds.is_nan() || a.seconds <= 0.0 || a.warmup.is_nan() || a.warmup < 0.0 {
        return Err("--seconds must be > 0 and --warmup >= 0".into());
    }
    if a.sizes.is_empty() || a.modes.is_empty() || a.servers.is_empty() {
        return Err("empty --sizes, --modes or --servers".into());
    }
    if a.repeat == 0 {
        return Err("--repeat must be >= 1".into());
    }
    if [a.alloc_check, a.compress, a.broadcast].iter().filter(|&&m| m).count() > 1 {
        return Err("--alloc-check, --compress and --broadcast are separate modes".into());
    }
    if (a.compress || a.broadcast) && a.json {
        return Err("--json is not supported with --compress or --broadcast".into());
    }
    if a.clients == 0 || a.broadcasts == 0 {
        return Err("--clients and --broadcasts must be >= 1".into());
    }
    if a.conns == 0 || a.idle_memory == Some(0) {
        return Err("--conns and --idle-memory must be >= 1".into());
    }
    a.client = match (client, a.conns) {
        (Some(ClientKind::Libws), n) if n > 1 => {
            return Err("--client libws drives one connection; --conns N > 1 uses the raw multi-connection client \
                        (omit --client or pass --client raw)"
                .into())
        }
        (Some(c), _) => c,
        (None, 1) => ClientKind::Libws,
        (None, _) => ClientKind::Raw,
    };
    if a.json && a.markdown {
        return Err("--json and --markdown exclude each other".into());
    }
    if a.modes.contains(&0) || a.sizes.iter().any(|&s| s > u32::MAX as usize) {
        return Err("modes must be >= 1, sizes < 4 GiB".into());
    }
    if a.tls {
        if !servers_given {
            a.servers = TLS_REGISTRY.iter().map(|(n, _)| n.to_string()).collect();
        }
        if client == Some(ClientKind::Libws) {
            return Err("--tls uses the raw clients over TLS (omit --client)".into());
        }
        if a.alloc_check || a.compress || a.broadcast || a.idle_memory.is_some() {
            return Err("--tls is a mode of its own".into());
        }
    }
    let registry = if a.tls { TLS_REGISTRY } else { REGISTRY };
    for s in &a.servers {
        if !registry.iter().any(|(n, _)| n == s) {
            let known: Vec<_> = registry.iter().map(|(n, _)| *n).collect();
            return Err(format!("unknown server {s:?}; known: {}", known.join(",")));
        }
    }
    Ok(a)
}

struct Row {
    size: usize,
    depth: usize,
    server: String,
    protocol: Protocol,
    outcome: Result<LoadResult, String>,
    /// Median over the repeats of the server's CPU µs per echoed message.
    cpu_us: Option<f64>,
}

impl Row {
    fn msgs_per_s(&self) -> Option<f64> {
        self.outcome.as_ref().ok().map(rate)
    }
    fn mib_per_s(&self) -> Option<f64> {
        Some(self.msgs_per_s()? * self.size as f64 / MIB)
    }
    fn is_libws(&self) -> bool {
        self.server.starts_with("libws")
    }
}

/// A WebSocket server that is a libws server's peer: not libws (the
/// blocking, loop and session servers are all subjects, never each other's
/// peer) and not plain TCP.
fn is_peer(r: &Row) -> bool {
    r.protocol == Protocol::WebSocket && !r.is_libws()
}

/// The best `value` among the rows of `row`'s case that `include` takes,
/// `pick` saying which of two is better (`f64::max` for msgs/s, `f64::min`
/// for CPU per message).
fn best_in_case(
    rows: &[Row],
    row: &Row,
    include: impl Fn(&Row) -> bool,
    value: impl Fn(&Row) -> Option<f64>,
    pick: fn(f64, f64) -> f64,
) -> Option<f64> {
    rows.iter().filter(|r| r.size == row.size && r.depth == row.depth && include(r)).filter_map(value).reduce(pick)
}

/// A libws server's msgs/s over the best peer's of the same case.
fn ratio(rows: &[Row], i: usize) -> Option<f64> {
    let row = &rows[i];
    if !row.is_libws() {
        return None;
    }
    Some(row.msgs_per_s()? / best_in_case(rows, row, is_peer, Row::msgs_per_s, f64::max)?)
}

/// The lowest server CPU per message among a libws server's peers of the
/// same case (`include`), over the libws server's: above 1 means libws
/// needs less CPU per message, as a msgs/s ratio above 1 means it is faster.
fn cpu_ratio(rows: &[Row], i: usize, include: impl Fn(&Row) -> bool) -> Option<f64> {
    let row = &rows[i];
    if !row.is_libws() {
        return None;
    }
    Some(best_in_case(rows, row, include, |r| r.cpu_us, f64::min)? / row.cpu_us?)
}

fn cpu_over_peer(rows: &[Row], i: usize) -> Option<f64> {
    cpu_ratio(rows, i, is_peer)
}

fn cpu_over_tcp(rows: &[Row], i: usize) -> Option<f64> {
    cpu_ratio(rows, i, |r| r.protocol == Protocol::LengthPrefixed)
}

/// Server CPU µs per echoed message (drained tail included), the median of
/// the repeats that measured it.
fn cpu_per_message(outs: &[Result<LoadResult, String>]) -> Option<f64> {
    let mut v: Vec<f64> = outs
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .filter(|r| r.total_messages > 0)
        .filter_map(|r| Some(r.server_cpu?.as_secs_f64() * 1e6 / r.total_messages as f64))
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// A WebSocket server's msgs/s over plain TCP's in the same case.
fn over_tcp(rows: &[Row], i: usize) -> Option<f64> {
    let row = &rows[i];
    if row.protocol != Protocol::WebSocket {
        return None;
    }
    let tcp = rows
        .iter()
        .find(|r| r.size == row.size && r.depth == row.depth && r.protocol == Protocol::LengthPrefixed)?
        .msgs_per_s()?;
    Some(row.msgs_per_s()? / tcp)
}

fn rate(r: &LoadResult) -> f64 {
    r.round_trips as f64 / r.elapsed.as_secs_f64()
}

/// The run with the median rate; the first error if any run failed.
fn median(mut outs: Vec<Result<LoadResult, String>>) -> Result<LoadResult, String> {
    if let Some(i) = outs.iter().position(Result::is_err) {
        return outs.swap_remove(i);
    }
    let mut ok: Vec<LoadResult> = outs.into_iter().map(Result::unwrap).collect();
    ok.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    Ok(ok[ok.len() / 2])
}

fn mode_name(depth: usize) -> String {
    if depth == 1 {
        "1 in flight".into()
    } else {
        format!("{depth} pipelined")
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 && size.trailing_zeros() >= 10 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn run_case(
    server: &dyn EchoServer,
    client: &dyn BenchClient,
    spec: &LoadSpec,
    warmup: Duration,
) -> std::io::Result<LoadResult> {
    let mut conn = client.connect(server.addr())?;
    if !warmup.is_zero() {
        conn.run(&LoadSpec { duration: warmup, ..*spec })?;
    }
    let cpu_before = server_cpu::server_threads();
    let mut res = conn.run(spec)?;
    res.server_cpu = cpu_before.zip(server_cpu::server_threads()).map(|(a, b)| b.saturating_sub(a));
    conn.close()?;
    Ok(res)
}

/// The tables as markdown: one line per case, msgs/s per server (in run
/// order), then each libws server over the best peer and over plain TCP;
/// then the same for the servers' CPU per message where it was measured.
fn markdown(rows: &[Row]) -> String {
    let mut o = markdown_table(rows, "msgs/s", msgs_cell, ratio, over_tcp);
    if rows.iter().any(|r| r.cpu_us.is_some()) {
        o.push('\n');
        o.push_str(&markdown_table(rows, "server CPU µs per message", cpu_cell, cpu_over_peer, cpu_over_tcp));
    }
    o
}

fn msgs_cell(r: &Row) -> String {
    match (&r.outcome, r.msgs_per_s()) {
        (Ok(_), Some(m)) => format!("{m:.0}"),
        (Err(e), _) => format!("error: {e}"),
        _ => String::new(),
    }
}

fn cpu_cell(r: &Row) -> String {
    r.cpu_us.map_or(String::new(), |c| format!("{c:.2}"))
}

type RatioFn = fn(&[Row], usize) -> Option<f64>;

fn markdown_table(rows: &[Row], what: &str, cell: fn(&Row) -> String, peer: RatioFn, tcp: RatioFn) -> String {
    let mut servers: Vec<&str> = Vec::new();
    for r in rows {
        if !servers.contains(&r.server.as_str()) {
            servers.push(&r.server);
        }
    }
    let subjects: Vec<&str> =
        rows.iter().filter(|r| r.is_libws()).map(|r| r.server.as_str()).fold(Vec::new(), |mut v, s| {
            if !v.contains(&s) {
                v.push(s);
            }
            v
        });
    let has_tcp = rows.iter().any(|r| r.protocol == Protocol::LengthPrefixed);
    let mut o = format!("{what}:\n\n| size | mode |");
    for s in &servers {
        let _ = write!(o, " {s} |");
    }
    for s in &subjects {
        let _ = write!(o, " {s} / best peer |");
    }
    if has_tcp {
        for s in &subjects {
            let _ = write!(o, " {s} / plain TCP |");
        }
    }
    o.push_str("\n|---|---|");
    let cols = servers.len() + subjects.len() * if has_tcp { 2 } else { 1 };
    o.push_str(&"---|".repeat(cols));
    o.push('\n');
    let mut i = 0;
    while i < rows.len() {
        let (size, depth) = (rows[i].size, rows[i].depth);
        let case: Vec<usize> =
            (i..rows.len()).take_while(|&j| rows[j].size == size && rows[j].depth == depth).collect();
        let _ = write!(o, "| {} | {} |", size_name(size), mode_name(depth));
        let find = |name: &str| case.iter().copied().find(|&j| rows[j].server == name);
        for s in &servers {
            let _ = write!(o, " {} |", find(s).map_or(String::new(), |j| cell(&rows[j])));
        }
        let ratio_cell = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.2}x"));
        for s in &subjects {
            let _ = write!(o, " {} |", ratio_cell(find(s).and_then(|j| peer(rows, j))));
        }
        if has_tcp {
            for s in &subjects {
                let _ = write!(o, " {} |", ratio_cell(find(s).and_then(|j| tcp(rows, j))));
            }
        }
        o.push('\n');
        i = case.last().map_or(i + 1, |&j| j + 1);
    }
    o
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or("null".into(), |v| format!("{v:.3}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return if e.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) };
        }
    };
    if args.loop_server_child {
        return match idle_memory::child(args.idle_compress, args.idle_tls) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: loop server child: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.deflate_backends {
        let sizes = if args.sizes_given { args.sizes.clone() } else { vec![1024, 16384] };
        deflate_backends::run(&sizes, args.repeat);
        return ExitCode::SUCCESS;
    }
    if let Some(n) = args.idle_memory {
        return match idle_memory::run(n, args.idle_size, args.idle_compress, args.idle_tls) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.alloc_check {
        return match alloc_count::run(&args.sizes) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("allocation check: messages that fit the buffers allocated in steady state");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.compress {
        let sizes = if args.sizes_given { args.sizes.clone() } else { vec![65536] };
        return compress::run(&args, &sizes, args.pin.unwrap_or(affinity::Pin::Same));
    }
    if args.broadcast {
        let sizes = if args.sizes_given { args.sizes.clone() } else { vec![16384, 65536] };
        if let Some(s) = sizes.iter().find(|&&s| s < json::MIN_SIZE) {
            eprintln!("error: --broadcast needs sizes of at least {} bytes, got {s}", json::MIN_SIZE);
            return ExitCode::from(2);
        }
        let cpus = match affinity::allowed_cpus() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: sched_getaffinity: {e}");
                return ExitCode::FAILURE;
            }
        };
        let cfg = broadcast::Config {
            clients: args.clients,
            broadcasts: args.broadcasts,
            sizes,
            repeat: args.repeat,
            pin: args.pin.unwrap_or(affinity::Pin::Split),
            cpus,
        };
        return match broadcast::run(&cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let pin = args.pin.unwrap_or(affinity::Pin::Same);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpus = match affinity::allowed_cpus() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: sched_getaffinity: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.tls_handshakes {
        return match tls_bench::run_handshakes(&args.servers, args.seconds) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (ws, plain): (Box<dyn BenchClient>, Box<dyn BenchClient>) = if args.tls {
        let tls = match tls_bench::certs().and_then(|c| c.client()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: TLS certificates (openssl is needed): {e}");
                return ExitCode::FAILURE;
            }
        };
        (
            Box::new(client::TlsWsClient { conns: args.conns, tls: tls.clone() }),
            Box::new(client::TlsPlainClient { conns: args.conns, tls }),
        )
    } else {
        (ws_client(args.client, args.conns), plain_client(args.conns))
    };
    let duration = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);

    let header = [
        format!("command: {command}"),
        format!("cores: {cores} (available_parallelism)"),
        format!("placement: {}", pin.describe(&cpus)),
        format!(
            "per case: {} new connection(s) driven at once, {:.1} s warm-up, {:.1} s measured, median of {} run(s); \
             binary messages",
            args.conns, args.warmup, args.seconds, args.repeat
        ),
        format!("websocket client: {}", ws.name()),
        format!("reference client: {}", plain.name()),
        "servers: in-process, 127.0.0.1:0, tokio servers on a 2-worker runtime each, libws-loop on one loop thread"
            .to_string(),
        if args.tls {
            "TLS: rustls with ring everywhere, ECDSA P-256 certificate, TLS 1.3 (AES-256-GCM); the plain-TCP \
             column is the bare rustls echo"
                .to_string()
        } else {
            "no TLS".to_string()
        },
        format!("{PIPELINE_NOTE} (per connection)"),
        "msgs/s = round trips per second (total over all connections); MiB/s = payload bytes echoed per second, \
         one direction"
            .into(),
    ];
    if args.markdown {
        for h in &header {
            println!("<!-- {h} -->");
        }
        println!();
    } else if !args.json {
        for h in &header {
            println!("# {h}");
        }
        println!();
    }

    if let Err(e) = pin.enter_server_placement(&cpus) {
        eprintln!("error: setting server CPU affinity: {e}");
        return ExitCode::FAILURE;
    }
    let mut running: Vec<Box<dyn EchoServer>> = Vec::new();
    for name in &args.servers {
        let registry = if args.tls { TLS_REGISTRY } else { REGISTRY };
        let (_, start) = registry.iter().find(|(n, _)| n == name).expect("checked");
        match start() {
            Ok(s) => running.push(s),
            Err(e) => {
                eprintln!("error: starting {name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    if let Err(e) = pin.enter_client_placement(&cpus) {
        eprintln!("error: setting client CPU affinity: {e}");
        return ExitCode::FAILURE;
    }

    let mut rows = Vec::new();
    for &size in &args.sizes {
        for &depth in &args.modes {
            let spec = LoadSpec { size, depth, duration };
            // Repeats are interleaved across servers so drift hits all alike.
            let mut outcomes: Vec<Vec<Result<LoadResult, String>>> = running.iter().map(|_| Vec::new()).collect();
            for rep in 0..args.repeat {
                for (srv, outs) in running.iter().zip(&mut outcomes) {
                    let client: &dyn BenchClient = match srv.protocol() {
                        Protocol::WebSocket => ws.as_ref(),
                        Protocol::LengthPrefixed => plain.as_ref(),
                    };
                    eprint!("running {:>6} {:<12} {:<18} #{}", size_name(size), mode_name(depth), srv.name(), rep + 1);
                    let outcome = run_case(srv.as_ref(), client, &spec, warmup).map_err(|e| e.to_string());
                    match &outcome {
                        Ok(r) => eprintln!(" {:>10.0} msgs/s", rate(r)),
                        Err(e) => eprintln!(" error: {e}"),
                    }
                    outs.push(outcome);
                }
            }
            for (srv, outs) in running.iter().zip(outcomes) {
                rows.push(Row {
                    size,
                    depth,
                    server: srv.name().to_string(),
                    protocol: srv.protocol(),
                    cpu_us: cpu_per_message(&outs),
                    outcome: median(outs),
                });
            }
        }
    }
    for s in running {
        s.stop();
    }

    if args.json {
        let mut o = String::from("{\n");
        let _ = writeln!(o, "  \"command\": {},", json_str(&command));
        let _ = writeln!(o, "  \"cores\": {cores},");
        let _ = writeln!(o, "  \"placement\": {},", json_str(&pin.describe(&cpus)));
        let _ = writeln!(o, "  \"seconds\": {},", args.seconds);
        let _ = writeln!(o, "  \"warmup_seconds\": {},", args.warmup);
        let _ = writeln!(o, "  \"repeat\": {},", args.repeat);
        let _ = writeln!(o, "  \"connections\": {},", args.conns);
        let _ = writeln!(o, "  \"websocket_client\": {},", json_str(ws.name()));
        let _ = writeln!(o, "  \"reference_client\": {},", json_str(plain.name()));
        let _ = writeln!(o, "  \"pipelining\": {},", json_str(PIPELINE_NOTE));
        o.push_str("  \"results\": [\n");
        for (i, r) in rows.iter().enumerate() {
            let (rt, el, err) = match &r.outcome {
                Ok(x) => (x.round_trips.to_string(), format!("{:.6}", x.elapsed.as_secs_f64()), "null".into()),
                Err(e) => ("null".into(), "null".into(), json_str(e)),
            };
            let _ = write!(
                o,
                "    {{\"size\": {}, \"in_flight\": {}, \"server\": {}, \"protocol\": {}, \
                 \"round_trips\": {rt}, \"elapsed_s\": {el}, \"msgs_per_s\": {}, \"mib_per_s\": {}, \
                 \"libws_over_best_peer\": {}, \"over_plain_tcp\": {}, \"server_cpu_us_per_msg\": {}, \
                 \"cpu_best_peer_over_libws\": {}, \"cpu_plain_tcp_over_libws\": {}, \"error\": {err}}}",
                r.size,
                r.depth,
                json_str(&r.server),
                json_str(match r.protocol {
                    Protocol::WebSocket => "websocket",
                    Protocol::LengthPrefixed => "tcp-length-prefixed",
                }),
                json_num(r.msgs_per_s()),
                json_num(r.mib_per_s()),
                json_num(ratio(&rows, i)),
                json_num(over_tcp(&rows, i)),
                json_num(r.cpu_us),
                json_num(cpu_over_peer(&rows, i)),
                json_num(cpu_over_tcp(&rows, i)),
            );
            o.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
        }
        o.push_str("  ]\n}");
        println!("{o}");
    } else if args.markdown {
        print!("{}", markdown(&rows));
    } else {
        println!(
            "{:<7} {:<13} {:<20} {:>12} {:>10}  {:>17}  {:>12}  {:>10}  {:>11}  {:>11}",
            "size",
            "mode",
            "server",
            "msgs/s",
            "MiB/s",
            "libws / best peer",
            "vs plain TCP",
            "srv µs/msg",
            "CPU vs peer",
            "CPU vs TCP"
        );
        let mut prev = None;
        for (i, r) in rows.iter().enumerate() {
            if prev.is_some() && prev != Some((r.size, r.depth)) {
                println!();
            }
            prev = Some((r.size, r.depth));
            let (m, b) = match (&r.outcome, r.msgs_per_s(), r.mib_per_s()) {
                (Ok(_), Some(m), Some(b)) => (format!("{m:.0}"), format!("{b:.2}")),
                (Err(e), _, _) => (format!("error: {e}"), String::new()),
                _ => (String::new(), String::new()),
            };
            let x = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.2}x"));
            println!(
                "{:<7} {:<13} {:<20} {:>12} {:>10}  {:>17}  {:>12}  {:>10}  {:>11}  {:>11}",
                size_name(r.size),
                mode_name(r.depth),
                r.server,
                m,
                b,
                x(ratio(&rows, i)),
                x(over_tcp(&rows, i)),
                cpu_cell(r),
                x(cpu_over_peer(&rows, i)),
                x(cpu_over_tcp(&rows, i)),
            );
        }
    }
    if rows.iter().any(|r| r.outcome.is_err()) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
