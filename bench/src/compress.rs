//! `--compress`: echo throughput of JSON-like text with and without
//! permessage-deflate.
//!
//! Rows, each a server and the client that drives it over one connection:
//!
//! * `libws+deflate`: libws's blocking echo server accepting
//!   permessage-deflate (`servers::libws_blocking::start_deflate`), driven
//!   by the libws C API client offering it; both sides compress with
//!   context takeover, 15-bit windows, level 1 (the defaults of
//!   `ws_compression_options_default`). The client fails unless it was
//!   negotiated.
//! * `libws`: the same server and client without compression.
//! * `tokio-tungstenite`, `fastwebsockets`: neither supports
//!   permessage-deflate (tungstenite 0.29 has no extension support,
//!   fastwebsockets 0.10 says "not supported yet"), so they appear
//!   uncompressed, driven by the same uncompressed libws client, for scale.
//!
//! Messages are JSON-like text ([`crate::json`]): eight different documents
//! of the chosen size in turn, each with its sequence number stamped in.
//! MiB/s counts uncompressed payload one way. The wire columns are bytes per
//! message at the client's TCP socket (TCP_INFO: `tcpi_bytes_received` for
//! server -> client, `tcpi_bytes_acked` for client -> server), over the
//! whole measured run, frame headers included; "payload / wire" is the size
//! divided by the server -> client bytes per message. The ratio column is
//! the median over repetitions of libws+deflate's rate divided by libws's
//! rate in the same repetition.

use std::process::ExitCode;
use std::time::Duration;

use crate::client::{BenchClient, LoadResult, LoadSpec};
use crate::client_libws::LibwsClient;
use crate::servers::{self, EchoServer, StartFn};
use crate::{median, mode_name, rate, run_case, size_name, Args, MIB};

/// (server, its client) in table order.
fn lineup() -> Vec<(StartFn, LibwsClient)> {
    let plain = LibwsClient { compress: false, json: true };
    vec![
        (servers::libws_blocking::start_deflate as StartFn, LibwsClient { compress: true, json: true }),
        (servers::libws_blocking::start as StartFn, plain),
        (servers::tokio_tungstenite::start as StartFn, plain),
        (servers::fastwebsockets::start as StartFn, plain),
    ]
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
    println!("# libws+deflate: libws server + libws client (C API), permessage-deflate, context takeover, level 1");
    println!("# other rows: no compression (tokio-tungstenite and fastwebsockets do not implement permessage-deflate)");
    println!("# {}", crate::PIPELINE_NOTE);
    println!("# MiB/s = uncompressed payload echoed per second, one direction; wire = bytes/msg at the client socket");
    println!();

    if let Err(e) = pin.enter_server_placement(&cpus) {
        eprintln!("error: setting server CPU affinity: {e}");
        return ExitCode::FAILURE;
    }
    let mut running: Vec<(Box<dyn EchoServer>, LibwsClient)> = Vec::new();
    for (start, client) in lineup() {
        match start() {
            Ok(s) => running.push((s, client)),
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
        "{:<7} {:<13} {:<18} {:>9} {:>9} {:>11} {:>11} {:>14}  deflate / plain (in-run)",
        "size", "mode", "server", "msgs/s", "MiB/s", "wire s->c", "wire c->s", "payload / wire"
    );
    let mut failed = false;
    for &size in sizes {
        for &depth in &args.modes {
            let spec = LoadSpec { size, depth, duration };
            let mut outs: Vec<Vec<Result<LoadResult, String>>> = running.iter().map(|_| Vec::new()).collect();
            for rep in 0..args.repeat {
                for ((srv, client), outs) in running.iter().zip(&mut outs) {
                    eprint!("running {:>6} {:<12} {:<18} #{}", size_name(size), mode_name(depth), srv.name(), rep + 1);
                    let o =
                        run_case(srv.as_ref(), client as &dyn BenchClient, &spec, warmup).map_err(|e| e.to_string());
                    match &o {
                        Ok(r) => eprintln!(" {:>10.0} msgs/s", rate(r)),
                        Err(e) => eprintln!(" error: {e}"),
                    }
                    outs.push(o);
                }
            }
            // In-run ratio: row 0 (deflate) over row 1 (plain libws), per repetition.
            let ratios: Vec<f64> = outs[0]
                .iter()
                .zip(&outs[1])
                .filter_map(|(a, b)| Some(rate(a.as_ref().ok()?) / rate(b.as_ref().ok()?)))
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
                let ratio = if i == 0 && ratios.len() == args.repeat {
                    let mut r = ratios.clone();
                    r.sort_by(f64::total_cmp);
                    format!("  {:.2}x", r[r.len() / 2])
                } else {
                    String::new()
                };
                println!("{:<7} {:<13} {:<18} {cells}{ratio}", size_name(size), mode_name(depth), srv.name());
            }
            println!();
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
