//! `--compress`: echo throughput of JSON-like text with and without
//! permessage-deflate.
//!
//! Rows, each a server and the client that drives it (`--conns N`
//! connections, default 1; more than one: one client thread each):
//!
//! * `python-websockets`: the compressing peer, Python `websockets` with
//!   its default permessage-deflate (12-bit windows, memLevel 5, zlib level
//!   6, context takeover; `servers/python_websockets.rs`).
//! * `libws-loop+pooled|dedicated|shared`: libws's event-loop echo server
//!   in each memory mode (`deflate_modes.rs`; pooled is the default).
//! * `libws+deflate`: libws's blocking echo server with the default options.
//! * `libws`: the blocking server and client without compression, for scale.
//!
//! Every compressing row is driven by the libws C API client offering what
//! that server mode accepts (the same windows), compressing its messages at
//! level 1; it fails unless permessage-deflate was negotiated.
//!
//! Messages are JSON-like text ([`crate::json`]): eight different documents
//! of the chosen size in turn, each with its sequence number stamped in.
//! MiB/s counts uncompressed payload one way. The wire columns are bytes per
//! message at the client's TCP socket (TCP_INFO: `tcpi_bytes_received` for
//! server -> client, `tcpi_bytes_acked` for client -> server), over the
//! whole measured run, frame headers included; "payload / wire" is the size
//! divided by the server -> client bytes per message. The ratio column is
//! the median over repetitions of the row's rate divided by
//! python-websockets's rate in the same repetition.
//!
//! After the table, for each size: the payload bytes per message of a
//! gorilla stand-in on the same messages (Python's zlib at level 1, raw
//! deflate with a 15-bit window, sync flush, tail stripped, a fresh
//! compressor per message as gorilla has no context takeover). Go's
//! compress/flate BestSpeed is a different encoder (it cannot run here),
//! so this is an estimate of gorilla's ratio, not a measurement.

use std::process::ExitCode;
use std::time::Duration;

use crate::client::{BenchClient, LoadResult, LoadSpec};
use crate::client_libws::{LibwsClient, MultiLibwsClient};
use crate::deflate_modes::DeflateMode;
use crate::servers::{self, EchoServer, StartFn};
use crate::{median, mode_name, rate, run_case, size_name, Args, MIB};

/// (server, its client) in table order; row 0 is the peer the ratio
/// column divides by.
fn lineup() -> Vec<(StartFn, LibwsClient)> {
    let plain = LibwsClient { compress: false, json: true, mode: DeflateMode::Pooled };
    let deflate = |mode| LibwsClient { compress: true, json: true, mode };
    vec![
        (servers::python_websockets::start as StartFn, deflate(DeflateMode::Pooled)),
        (servers::libws_loop::start_pooled as StartFn, deflate(DeflateMode::Pooled)),
        (servers::libws_loop::start_dedicated as StartFn, deflate(DeflateMode::Dedicated)),
        (servers::libws_loop::start_shared as StartFn, deflate(DeflateMode::Shared)),
        (servers::libws_blocking::start_deflate as StartFn, deflate(DeflateMode::Pooled)),
        (servers::libws_blocking::start as StartFn, plain),
    ]
}

/// The gorilla stand-in's payload bytes per message on `size`-byte
/// messages (see the module comment), from `python3`'s zlib.
fn gorilla_standin(size: usize) -> Result<f64, String> {
    use std::io::Write as _;
    let mut payload = crate::client::Payload::json(size);
    let mut input = Vec::new();
    for seq in 0..64u64 {
        input.extend_from_slice(payload.for_seq(seq));
    }
    let script = format!(
        "import sys, zlib\nd = sys.stdin.buffer.read()\nn = {size}\ntotal = 0\n\
         for i in range(0, len(d), n):\n    c = zlib.compressobj(1, zlib.DEFLATED, -15)\n    \
         total += len(c.compress(d[i:i + n]) + c.flush(zlib.Z_SYNC_FLUSH)) - 4\n\
         print(total / (len(d) // n))\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    child.stdin.take().ok_or("no stdin")?.write_all(&input).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|e| format!("python3 zlib: {e}"))
}

pub fn run(args: &Args, sizes: &[usize], pin: crate::affinity::Pin) -> ExitCode {
    let cpus = match crate::affinity::allowed_cpus() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: sched_getaffinity: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(s) = sizes.iter().find(|&&s| s < crate::json::MIN_SIZE) {
        eprintln!("error: --compress needs sizes of at least {} bytes, got {s}", crate::json::MIN_SIZE);
        return ExitCode::from(2);
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let warmup = Duration::from_secs_f64(args.warmup);
    println!("# command: {}", std::env::args().collect::<Vec<_>>().join(" "));
    println!("# cores: {} (available_parallelism)", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("# placement: {}", pin.describe(&cpus));
    println!(
        "# per case: new connection, {:.1} s warm-up, {:.1} s measured, median of {} run(s); JSON-like text messages",
        args.warmup, args.seconds, args.repeat
    );
    println!(
        "# compressing rows: libws C API client ({} connection(s), level 1) offering the server mode's windows",
        args.conns
    );
    println!("# python-websockets: its default permessage-deflate (12-bit windows, memLevel 5, level 6)");
    println!("# libws-loop+MODE: event loop server; pooled = default (12-bit, context takeover), dedicated = 15-bit kept states, shared = no context takeover");
    println!("# libws: no compression, for scale; ratio column = row / python-websockets, same repetition");
    println!("# {}", crate::PIPELINE_NOTE);
    println!("# MiB/s = uncompressed payload echoed per second, one direction; wire = bytes/msg at the client socket");
    println!();

    if let Err(e) = pin.enter_server_placement(&cpus) {
        eprintln!("error: setting server CPU affinity: {e}");
        return ExitCode::FAILURE;
    }
    let mut running: Vec<(Box<dyn EchoServer>, MultiLibwsClient)> = Vec::new();
    for (start, client) in lineup() {
        match start() {
            Ok(s) => running.push((s, MultiLibwsClient { client, conns: args.conns })),
            Err(e) => {
                eprintln!("error: starting a server: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = pin.enter_client_placement(&cpus) {
        eprintln!("error: setting client CPU affinity: {e}");
        return ExitCode::FAILURE;
    }

    println!(
        "{:<7} {:<13} {:<22} {:>9} {:>9} {:>11} {:>11} {:>14}  row / python-websockets (in-run)",
        "size", "mode", "server", "msgs/s", "MiB/s", "wire s->c", "wire c->s", "payload / wire"
    );
    let mut failed = false;
    for &size in sizes {
        for &depth in &args.modes {
            let spec = LoadSpec { size, depth, duration };
            let mut outs: Vec<Vec<Result<LoadResult, String>>> = running.iter().map(|_| Vec::new()).collect();
            for rep in 0..args.repeat {
                for ((srv, client), outs) in running.iter().zip(&mut outs) {
                    eprint!("running {:>6} {:<12} {:<22} #{}", size_name(size), mode_name(depth), srv.name(), rep + 1);
                    let o = if client.conns == 1 {
                        run_case(srv.as_ref(), &client.client as &dyn BenchClient, &spec, warmup)
                    } else {
                        run_case(srv.as_ref(), client as &dyn BenchClient, &spec, warmup)
                    }
                    .map_err(|e| e.to_string());
                    match &o {
                        Ok(r) => eprintln!(" {:>10.0} msgs/s", rate(r)),
                        Err(e) => eprintln!(" error: {e}"),
                    }
                    outs.push(o);
                }
            }
            // In-run ratio: each row over row 0 (the peer), per repetition.
            let ratios: Vec<Vec<f64>> = outs
                .iter()
                .map(|row| {
                    row.iter()
                        .zip(&outs[0])
                        .filter_map(|(a, b)| Some(rate(a.as_ref().ok()?) / rate(b.as_ref().ok()?)))
                        .collect()
                })
                .collect();
            for (i, ((srv, _), o)) in running.iter().zip(outs).enumerate() {
                let cells = match median(o) {
                    Ok(r) => {
                        let m = rate(&r);
                        let per = |b: u64| b as f64 / r.total_messages.max(1) as f64;
                        format!(
                            "{:>9.0} {:>9.2} {:>11.0} {:>11.0} {:>13.2}x",
                            m,
                            m * size as f64 / MIB,
                            per(r.wire_received),
                            per(r.wire_sent),
                            size as f64 / per(r.wire_received)
                        )
                    }
                    Err(e) => {
                        failed = true;
                        format!("error: {e}")
                    }
                };
                let ratio = if i > 0 && ratios[i].len() == args.repeat {
                    let mut r = ratios[i].clone();
                    r.sort_by(f64::total_cmp);
                    format!("  {:.2}x", r[r.len() / 2])
                } else {
                    String::new()
                };
                println!("{:<7} {:<13} {:<22} {cells}{ratio}", size_name(size), mode_name(depth), srv.name());
            }
            println!();
        }
        match gorilla_standin(size) {
            Ok(b) => println!(
                "{:<7} gorilla stand-in (python3 zlib level 1, wbits -15, no context takeover): {b:.0} payload bytes/msg, \
                 payload ratio {:.2}x (wire adds a 2-4 byte frame header)\n",
                size_name(size),
                size as f64 / b
            ),
            Err(e) => println!("{:<7} gorilla stand-in: {e}\n", size_name(size)),
        }
    }
    for (s, _) in running {
        s.stop();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
