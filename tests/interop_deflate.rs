//! permessage-deflate interoperability with Python `websockets` and node's
//! `ws`, for every libws memory mode (pooled default, dedicated full
//! window, shared, and pooled with 9-bit windows and memLevel 1) against
//! three settings of each peer, both ways: (a) libws client, peer server;
//! (b) peer client, libws server on a blocking `Listener` and on the event
//! loop.
//!
//! `websockets` inflates with exactly the window it agreed to, so a libws
//! compressor that referred back further than agreed (or a pooled one primed
//! with the wrong history) fails these echoes; `ws` runs node's zlib with
//! its own defaults (15-bit windows, a 1 KiB threshold). The peers are
//! tests/interop/deflate_peer.py and deflate_peer_node.js (one protocol:
//! "PORT n", "EXT ...", "ok N"). Same venv and process guards as
//! tests/interop_python.rs (tests/support/python.rs); `ws` is installed from
//! npm into target/node-ws (node and npm from apt when missing and root).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopRemote};
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::proto::deflate::{DeflateMemory, DeflateOptions};

#[path = "support/python.rs"]
mod python;

use python::{collector, line_reader, repo_dir, run_setup, target_dir, text_of, ChildGuard};

const WEBSOCKETS_REQUIREMENT: &str = "websockets>=13,<16";
const PY_CONFIGS: [&str; 3] = ["default", "full", "nct"];
const NODE_CONFIGS: [&str; 3] = ["default", "small", "nct"];
/// The `ws` release line the node peer runs.
const NODE_WS: &str = "ws@8";

/// A peer implementation: how to start its script.
#[derive(Clone, Copy)]
enum Peer {
    Python,
    Node,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Python => "websockets",
            Peer::Node => "node ws",
        }
    }
    fn configs(self) -> [&'static str; 3] {
        match self {
            Peer::Python => PY_CONFIGS,
            Peer::Node => NODE_CONFIGS,
        }
    }
    /// The command running the peer script with `args`.
    fn command(self, args: &[&str]) -> Command {
        let mut c = match self {
            Peer::Python => {
                let mut c = Command::new(venv_python());
                c.arg("-u").arg(script());
                c
            }
            Peer::Node => {
                let mut c = Command::new("node");
                c.arg(repo_dir().join("tests/interop/deflate_peer_node.js")).env("NODE_PATH", node_modules());
                c
            }
        };
        c.args(args);
        c
    }
}

/// `ws` from npm in target/node-ws (once per test process); node and npm
/// are installed with apt when missing and we are root.
fn node_modules() -> PathBuf {
    static DIR: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut d = DIR.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = d.as_ref() {
        return p.clone();
    }
    let have = |p: &str| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    if !(have("node") && have("npm")) {
        let _ = run_setup(
            "apt-get install nodejs npm",
            Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", "nodejs", "npm"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
            Duration::from_secs(600),
        );
    }
    assert!(have("node") && have("npm"), "the node ws interop needs node and npm (apt-get install nodejs npm)");
    let prefix = target_dir().join("node-ws");
    let modules = prefix.join("node_modules");
    if !modules.join("ws").join("package.json").is_file() {
        run_setup(
            "npm install ws",
            Command::new("npm")
                .args(["install", "--no-save", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(NODE_WS),
            Duration::from_secs(300),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    *d = Some(modules.clone());
    modules
}

fn libws_modes() -> Vec<(&'static str, DeflateOptions)> {
    vec![
        ("pooled", DeflateOptions::default()),
        ("dedicated", DeflateOptions::full_window()),
        ("shared", DeflateOptions::shared()),
        (
            "pooled-9bit-mem1",
            DeflateOptions {
                server_max_window_bits: 9,
                client_max_window_bits: 9,
                mem_level: 1,
                memory: DeflateMemory::Pooled,
                ..DeflateOptions::default()
            },
        ),
    ]
}

fn venv_python() -> PathBuf {
    static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut v = VENV.lock().unwrap_or_else(|p| p.into_inner());
    if v.is_none() {
        match python::create_venv("interop-venv", &[WEBSOCKETS_REQUIREMENT], "import websockets, websockets.exceptions")
        {
            Ok(p) => *v = Some(p),
            Err(e) => panic!("Python interop setup failed:\n{e}"),
        }
    }
    v.clone().expect("set above")
}

fn script() -> PathBuf {
    repo_dir().join("tests").join("interop").join("deflate_peer.py")
}

fn json_like(seed: usize, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut n = seed;
    while v.len() < len {
        v.extend_from_slice(
            format!("{{\"id\":{n},\"user\":\"player{}\",\"pos\":[{},{}],\"ok\":true}},", n % 13, n % 97, n % 89)
                .as_bytes(),
        );
        n = (n * 31 + 7) % 100_000;
    }
    v.truncate(len);
    v
}

struct PeerServer {
    _guard: ChildGuard,
    _stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    port: u16,
}

impl PeerServer {
    fn start(peer: Peer, config: &str) -> PeerServer {
        let mut guard = ChildGuard::spawn(
            "deflate peer server",
            peer.command(&["server", config]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()),
        );
        let stdin = guard.child.stdin.take().expect("piped");
        let lines = line_reader(guard.child.stdout.take().expect("piped"));
        let stderr = collector(guard.child.stderr.take().expect("piped"));
        let mut s = PeerServer { _guard: guard, _stdin: stdin, lines, stderr, port: 0 };
        let first = s.line();
        s.port = first.strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{first:?}"));
        s
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("deflate peer server: {e}; stderr:\n{}", text_of(&self.stderr)))
    }
}

#[test]
fn libws_client_against_websockets_server_in_every_mode() {
    libws_client_against(Peer::Python);
}

#[test]
fn libws_client_against_node_ws_server_in_every_mode() {
    libws_client_against(Peer::Node);
}

fn libws_client_against(peer: Peer) {
    for config in peer.configs() {
        let mut server = PeerServer::start(peer, config);
        for (mode, opts) in libws_modes() {
            let mut d = Dialer::default();
            d.conn.compression = Some(opts);
            let url = format!("ws://127.0.0.1:{}/", server.port);
            let (c, resp) = d.dial(&url, &[]).map_err(|e| e.error).unwrap_or_else(|e| panic!("{mode}/{config}: {e:?}"));
            let what = format!("libws {mode} client, {} {config} server", peer.name());
            assert!(c.compression_negotiated(), "{what}");
            let ext = String::from_utf8_lossy(resp.header("Sec-WebSocket-Extensions").unwrap_or_default()).to_string();
            assert_eq!(server.line(), format!("EXT {ext}"), "{what}");
            c.set_read_deadline(Some(Instant::now() + Duration::from_secs(60)));
            for i in 0..120 {
                let msg = json_like(i, [10, 700, 1024, 3000, 16384, 40000][i % 6]);
                c.write_message(MessageType::Text, &msg).unwrap();
                let m = c.read_message().unwrap_or_else(|e| panic!("{what} ({ext}), message {i}: {e:?}"));
                assert!(m.data() == &msg[..], "{what} ({ext}), message {i}");
            }
            c.close_graceful(1000, b"", Duration::from_secs(10)).unwrap();
        }
    }
}

fn run_peer_client(peer: Peer, url: &str, config: &str, what: &str) -> String {
    let mut client = ChildGuard::spawn(
        "deflate peer client",
        peer.command(&["client", url, config]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()),
    );
    let out = collector(client.child.stdout.take().expect("piped"));
    let err = collector(client.child.stderr.take().expect("piped"));
    let status = client.wait_timeout(Duration::from_secs(120));
    thread::sleep(Duration::from_millis(50));
    let out = text_of(&out);
    assert!(status.success(), "{what}: the peer client failed ({status})\n{out}\n{}", text_of(&err));
    assert!(out.contains("\nok 140"), "{what}\n{out}");
    out
}

fn echo_blocking(listener: Listener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let c = listener.accept(Some(Instant::now() + Duration::from_secs(60))).unwrap();
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(120)));
        while let Ok(m) = c.read_message() {
            let (kind, data) = (m.kind(), m.data().to_vec());
            if c.write_message(kind, &data).is_err() {
                break;
            }
        }
    })
}

struct Echo;

impl Handler for Echo {
    fn on_message(&self, conn: &ConnHandle, kind: MessageType, data: &[u8]) {
        conn.send(kind, data).expect("echo send");
    }
}

fn loop_server(opts: DeflateOptions) -> (SocketAddr, LoopRemote, thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = thread::spawn(move || {
        let mut el = EventLoop::new().unwrap();
        let remote = el.remote();
        let mut up = Upgrader::default();
        up.conn.compression = Some(opts);
        tx.send((remote.listen("127.0.0.1:0", &up, Arc::new(Echo)).unwrap(), remote)).unwrap();
        el.run().unwrap();
    });
    let (addr, remote) = rx.recv().unwrap();
    (addr, remote, t)
}

#[test]
fn websockets_client_against_libws_servers_in_every_mode() {
    peer_client_against_libws_servers(Peer::Python);
}

#[test]
fn node_ws_client_against_libws_servers_in_every_mode() {
    peer_client_against_libws_servers(Peer::Node);
}

fn peer_client_against_libws_servers(peer: Peer) {
    for (mode, opts) in libws_modes() {
        let (addr, remote, lt) = loop_server(opts);
        for config in peer.configs() {
            let mut up = Upgrader::default();
            up.conn.compression = Some(opts);
            let listener = Listener::bind("127.0.0.1:0", &up).unwrap();
            let url = format!("ws://{}/", listener.local_addr());
            let server = echo_blocking(listener);
            let what = format!("{} {config} client, libws {mode} blocking server", peer.name());
            let out = run_peer_client(peer, &url, config, &what);
            assert!(out.starts_with("EXT permessage-deflate"), "{what}\n{out}");
            server.join().unwrap();
            let what = format!("{} {config} client, libws {mode} loop server", peer.name());
            let out = run_peer_client(peer, &format!("ws://{addr}/"), config, &what);
            assert!(out.starts_with("EXT permessage-deflate"), "{what}\n{out}");
            if mode == "shared" {
                assert!(
                    out.contains("server_no_context_takeover") && out.contains("client_no_context_takeover"),
                    "{out}"
                );
            }
        }
        remote.stop();
        lt.join().unwrap();
    }
}
