//! permessage-deflate interoperability with Python `websockets`, for every
//! libws memory mode (pooled default, dedicated full window, shared, and
//! pooled with 9-bit windows and memLevel 1) against three `websockets`
//! settings (its defaults, full windows, no context takeover), both ways:
//! (a) libws client, `websockets` server; (b) `websockets` client, libws
//! server on a blocking `Listener` and on the event loop.
//!
//! `websockets` inflates with exactly the window it agreed to, so a libws
//! compressor that referred back further than agreed (or a pooled one primed
//! with the wrong history) fails these echoes. Same venv and process
//! guards as tests/interop_python.rs (tests/support/python.rs).

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

use python::{collector, line_reader, repo_dir, text_of, ChildGuard};

const WEBSOCKETS_REQUIREMENT: &str = "websockets>=13,<16";
const PY_CONFIGS: [&str; 3] = ["default", "full", "nct"];

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

struct PyServer {
    _guard: ChildGuard,
    _stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    port: u16,
}

impl PyServer {
    fn start(config: &str) -> PyServer {
        let mut guard = ChildGuard::spawn(
            "deflate_peer.py server",
            Command::new(venv_python())
                .arg("-u")
                .arg(script())
                .arg("server")
                .arg(config)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stdin = guard.child.stdin.take().expect("piped");
        let lines = line_reader(guard.child.stdout.take().expect("piped"));
        let stderr = collector(guard.child.stderr.take().expect("piped"));
        let mut s = PyServer { _guard: guard, _stdin: stdin, lines, stderr, port: 0 };
        let first = s.line();
        s.port = first.strip_prefix("PORT ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{first:?}"));
        s
    }

    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("deflate_peer.py server: {e}; stderr:\n{}", text_of(&self.stderr)))
    }
}

#[test]
fn libws_client_against_websockets_server_in_every_mode() {
    for config in PY_CONFIGS {
        let mut server = PyServer::start(config);
        for (mode, opts) in libws_modes() {
            let mut d = Dialer::default();
            d.conn.compression = Some(opts);
            let url = format!("ws://127.0.0.1:{}/", server.port);
            let (c, resp) = d.dial(&url, &[]).map_err(|e| e.error).unwrap_or_else(|e| panic!("{mode}/{config}: {e:?}"));
            let what = format!("libws {mode} client, websockets {config} server");
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

fn run_python_client(url: &str, config: &str, what: &str) -> String {
    let mut client = ChildGuard::spawn(
        "deflate_peer.py client",
        Command::new(venv_python())
            .arg("-u")
            .arg(script())
            .arg("client")
            .arg(url)
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = collector(client.child.stdout.take().expect("piped"));
    let err = collector(client.child.stderr.take().expect("piped"));
    let status = client.wait_timeout(Duration::from_secs(120));
    thread::sleep(Duration::from_millis(50));
    let out = text_of(&out);
    assert!(status.success(), "{what}: deflate_peer.py client failed ({status})\n{out}\n{}", text_of(&err));
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
    for (mode, opts) in libws_modes() {
        let (addr, remote, lt) = loop_server(opts);
        for config in PY_CONFIGS {
            let mut up = Upgrader::default();
            up.conn.compression = Some(opts);
            let listener = Listener::bind("127.0.0.1:0", &up).unwrap();
            let url = format!("ws://{}/", listener.local_addr());
            let server = echo_blocking(listener);
            let what = format!("websockets {config} client, libws {mode} blocking server");
            let out = run_python_client(&url, config, &what);
            assert!(out.starts_with("EXT permessage-deflate"), "{what}\n{out}");
            server.join().unwrap();
            let what = format!("websockets {config} client, libws {mode} loop server");
            let out = run_python_client(&format!("ws://{addr}/"), config, &what);
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
