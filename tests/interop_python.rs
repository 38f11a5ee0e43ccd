//! Interoperability with an independent implementation: the Python
//! `websockets` package, both ways.
//!
//! (a) a `websockets` echo server (tests/interop/ws_echo_server.py) and a
//!     libws client; (b) a libws echo server and a `websockets` client
//!     (tests/interop/ws_client.py).
//!
//! Setup: a virtual environment in `target/interop-venv` with `websockets`
//! installed from PyPI (reused when it already imports). It needs `python3`
//! with the `venv` module (Debian: `apt-get install python3-venv`); without
//! it the tests fail and say so. `LIBWS_INTEROP_PYTHON` names another
//! Python 3 to build the environment from.
//!
//! Every child process is killed when its guard drops (also on a panic) and
//! every wait has a deadline (tests/support/python.rs, shared with
//! tests/python_binding.rs).

use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Conn, Dialer, Listener, MessageType, Upgrader};

/// What `pip install` gets. Pinned to a major version whose asyncio API
/// (`websockets.serve`/`connect`, `ConnectionClosed.rcvd`) the scripts use.
const WEBSOCKETS_REQUIREMENT: &str = "websockets>=13,<16";
const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 16 << 20];
const IO_TIMEOUT: Duration = Duration::from_secs(60);

#[path = "support/python.rs"]
mod python;

use python::{collector, line_reader, repo_dir, text_of, ChildGuard};

fn script(name: &str) -> PathBuf {
    repo_dir().join("tests").join("interop").join(name)
}

fn create_venv() -> Result<PathBuf, String> {
    python::create_venv("interop-venv", &[WEBSOCKETS_REQUIREMENT], "import websockets, websockets.exceptions")
}

/// The venv's python, set up once per test process.
fn venv_python() -> PathBuf {
    static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut v = VENV.lock().unwrap_or_else(|p| p.into_inner());
    if v.is_none() {
        match create_venv() {
            Ok(p) => *v = Some(p),
            Err(e) => panic!("Python interop setup failed:\n{e}"),
        }
    }
    v.clone().expect("set above")
}

// ---------------------------------------------------------------------------
// payloads
// ---------------------------------------------------------------------------

/// The same payloads as ws_client.py makes.
fn payload(n: usize, text: bool) -> Vec<u8> {
    let pattern: Vec<u8> =
        if text { b"libws interop 0123456789 abcdefghijklmnopqrstuvwxyz\n".to_vec() } else { (0..251u8).collect() };
    pattern.iter().copied().cycle().take(n).collect()
}

fn read_with_timeout(c: &Conn) -> (MessageType, Vec<u8>) {
    c.set_read_deadline(Some(Instant::now() + IO_TIMEOUT));
    let m = c.read_message().unwrap_or_else(|e| panic!("libws read failed: {e:?}"));
    (m.kind(), m.data().to_vec())
}

// ---------------------------------------------------------------------------
// (a) websockets server, libws client
// ---------------------------------------------------------------------------

struct PyServer {
    guard: ChildGuard,
    /// Held so the server runs until we drop it (it exits on EOF).
    _stdin: ChildStdin,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    port: u16,
}

impl PyServer {
    fn start() -> PyServer {
        let python = venv_python();
        let mut guard = ChildGuard::spawn(
            "ws_echo_server.py",
            Command::new(python)
                .arg("-u")
                .arg(script("ws_echo_server.py"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let stdin = guard.child.stdin.take().expect("piped stdin");
        let lines = line_reader(guard.child.stdout.take().expect("piped stdout"));
        let stderr = collector(guard.child.stderr.take().expect("piped stderr"));
        let mut s = PyServer { guard, _stdin: stdin, lines, stderr, port: 0 };
        let first = s.next_line(Duration::from_secs(30));
        s.port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from ws_echo_server.py: {first:?}"));
        s
    }

    fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => l,
            Err(e) => {
                let status = self.guard.child.try_wait().ok().flatten();
                panic!(
                    "no line from ws_echo_server.py within {timeout:?} ({e}); exit status {status:?}; stderr:\n{}",
                    text_of(&self.stderr)
                )
            }
        }
    }
}

#[test]
fn libws_client_against_python_websockets_server() {
    let mut server = PyServer::start();
    let url = format!("ws://127.0.0.1:{}/echo", server.port);

    let dialer = Dialer {
        subprotocols: vec!["unknown.proto".to_string(), "chat.v1".to_string()],
        handshake_timeout: Some(Duration::from_secs(10)),
        ..Dialer::default()
    };
    let (c, resp) = dialer.dial(&url, &[]).unwrap_or_else(|e| panic!("dial {url}: {e:?}"));
    assert_eq!(resp.status(), 101);
    c.set_write_deadline(Some(Instant::now() + Duration::from_secs(120)));

    // Subprotocol: negotiated by the client, and seen so by the server.
    assert_eq!(c.subprotocol(), "chat.v1");
    c.write_message(MessageType::Text, b"?subprotocol").unwrap();
    assert_eq!(read_with_timeout(&c), (MessageType::Text, b"subprotocol=chat.v1".to_vec()));

    // Text and binary round trips of every length form.
    for (kind, text) in [(MessageType::Text, true), (MessageType::Binary, false)] {
        for n in SIZES {
            let data = payload(n, text);
            c.write_message(kind, &data).unwrap_or_else(|e| panic!("writing {kind:?} of {n} bytes: {e:?}"));
            let (k, got) = read_with_timeout(&c);
            assert_eq!(k, kind, "echo of {kind:?} of {n} bytes came back as {k:?}");
            assert_eq!(got.len(), n, "echo of {kind:?} of {n} bytes has {} bytes", got.len());
            assert!(got == data, "echo of {kind:?} of {n} bytes differs");
        }
    }

    // Our ping, their pong: the pong reaches the pong handler before the
    // echo of a message sent after the ping.
    let pongs = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
    let p = pongs.clone();
    c.set_pong_handler(Some(Arc::new(move |_c: &Conn, data: &[u8]| {
        p.lock().unwrap().push(data.to_vec());
        Ok(())
    })))
    .unwrap();
    c.write_control(MessageType::Ping, b"libws-ping", Some(Instant::now() + Duration::from_secs(5))).unwrap();
    c.write_message(MessageType::Text, b"after ping").unwrap();
    assert_eq!(read_with_timeout(&c), (MessageType::Text, b"after ping".to_vec()));
    assert_eq!(*pongs.lock().unwrap(), vec![b"libws-ping".to_vec()]);

    // Their ping, our (default handler's) pong.
    c.write_message(MessageType::Text, b"?ping py-ping").unwrap();
    assert_eq!(read_with_timeout(&c), (MessageType::Text, b"pong-received".to_vec()));

    // Clean close: code and reason as the Python side received them.
    c.close_graceful(1000, b"libws client done", Duration::from_secs(10)).unwrap();
    assert_eq!(c.close_code(), Some(1000), "the server should answer the close with 1000");
    let line = server.next_line(Duration::from_secs(10));
    assert_eq!(line, r#"CLOSED code=1000 reason="libws client done""#);
}

// ---------------------------------------------------------------------------
// (b) libws server, websockets client
// ---------------------------------------------------------------------------

#[test]
fn python_websockets_client_against_libws_server() {
    let python = venv_python();
    let upgrader = Upgrader { subprotocols: vec!["chat.v1".to_string()], ..Upgrader::default() };
    let listener = Listener::bind("127.0.0.1:0", &upgrader).unwrap();
    let url = format!("ws://{}/echo", listener.local_addr());

    // Echo until the connection ends; report the close the peer sent.
    let (tx, rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let c = match listener.accept(Some(Instant::now() + Duration::from_secs(60))) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(format!("accept: {e:?}")));
                return;
            }
        };
        let mut messages = 0usize;
        let end = loop {
            c.set_read_deadline(Some(Instant::now() + IO_TIMEOUT));
            c.set_write_deadline(Some(Instant::now() + IO_TIMEOUT));
            let (kind, data) = match c.read_message() {
                Ok(m) => (m.kind(), m.data().to_vec()),
                Err(e) => break e,
            };
            messages += 1;
            if let Err(e) = c.write_message(kind, &data) {
                break e;
            }
        };
        let _ =
            tx.send(Ok((c.subprotocol().to_string(), messages, c.close_code(), c.close_reason(), format!("{end:?}"))));
    });

    let mut client = ChildGuard::spawn(
        "ws_client.py",
        Command::new(&python)
            .arg("-u")
            .arg(script("ws_client.py"))
            .arg(&url)
            .arg("chat.v1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let out = collector(client.child.stdout.take().expect("piped stdout"));
    let err = collector(client.child.stderr.take().expect("piped stderr"));
    let status = client.wait_timeout(Duration::from_secs(300));
    thread::sleep(Duration::from_millis(50));
    let report = format!("--- ws_client.py stdout\n{}--- stderr\n{}", text_of(&out), text_of(&err));
    let seen =
        rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|e| panic!("libws server thread: {e}\n{report}"));
    server.join().expect("libws server thread panicked");
    let (subprotocol, messages, code, reason, end) = seen.unwrap_or_else(|e| panic!("libws server: {e}\n{report}"));

    assert!(status.success(), "ws_client.py failed ({status})\n{report}");
    assert_eq!(subprotocol, "chat.v1");
    assert_eq!(messages, 2 * SIZES.len(), "messages echoed by libws\n{report}");
    assert_eq!(code, Some(1000), "close code seen by libws (read ended with {end})\n{report}");
    assert_eq!(reason, b"python client done".to_vec(), "close reason seen by libws");
}
