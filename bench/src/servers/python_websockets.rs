//! Python `websockets` echo server with its default permessage-deflate
//! (12-bit windows, memLevel 5, zlib level 6, context takeover): the
//! compressing peer of `--compress`. It is tests/interop/deflate_peer.py
//! (`server default`) in a child process, on 127.0.0.1 with an ephemeral
//! port; it ends when its standard input closes (`stop`), and is killed if
//! it has not exited 5 s later.
//!
//! The interpreter: `$LIBWS_BENCH_PYTHON`, else the test suite's venv
//! (`target/interop-venv`, made by `cargo test --test interop_deflate`),
//! else a venv `target/bench-venv` made here with `websockets` from PyPI.

use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::EchoServer;

const REQUIREMENT: &str = "websockets>=13,<16";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn imports_websockets(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import websockets.asyncio.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python that imports `websockets` (see the module comment).
pub fn python() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("LIBWS_BENCH_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let target = repo().join("target");
    for venv in ["interop-venv", "bench-venv"] {
        let p = target.join(venv).join("bin").join("python");
        if imports_websockets(&p) {
            return Ok(p);
        }
    }
    let venv = target.join("bench-venv");
    eprintln!("making {} with {REQUIREMENT} (pip)", venv.display());
    let ok = Command::new("python3").arg("-m").arg("venv").arg(&venv).status()?.success()
        && Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", REQUIREMENT])
            .status()?
            .success();
    let p = venv.join("bin").join("python");
    if ok && imports_websockets(&p) {
        Ok(p)
    } else {
        Err(io::Error::other("could not make a Python venv with websockets (needs python3-venv and PyPI)"))
    }
}

pub struct PythonWebsockets {
    child: Child,
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

pub fn start() -> io::Result<Box<dyn EchoServer>> {
    let script = repo().join("tests").join("interop").join("deflate_peer.py");
    let mut child = Command::new(python()?)
        .arg("-u")
        .arg(script)
        .args(["server", "default"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take();
    let mut lines = BufReader::new(child.stdout.take().ok_or_else(|| io::Error::other("no stdout"))?).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    let Some(port) = first.strip_prefix("PORT ").and_then(|p| p.trim().parse::<u16>().ok()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(io::Error::other(format!("deflate_peer.py: expected PORT, got {first:?}")));
    };
    // The server prints a line per connection: keep its pipe drained.
    thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    Ok(Box::new(PythonWebsockets { child, stdin, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)) }))
}

impl EchoServer for PythonWebsockets {
    fn name(&self) -> &str {
        "python-websockets"
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn stop(mut self: Box<Self>) {
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < until {
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
