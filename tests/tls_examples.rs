//! The C examples over TLS and through proxies, and interop over TLS with
//! Python `websockets` both ways:
//! - `echo_server --tls-cert --tls-key`: a Rust and a Python client echo
//!   through it; SIGHUP swaps the certificate for new handshakes;
//! - `echo_client [--ca] [--proxy] wss://...`: exit 0 after a clean close,
//!   non-zero on a refused certificate or proxy; proxies from the
//!   environment when `--proxy` is absent;
//! - a libws client against a `websockets` wss:// server;
//! - `echo_server_loop --tls-cert --tls-key` with a Rust and a Python client;
//! - `echo_server_session --tls-cert --tls-key` (TLS inside the sans-IO
//!   session) with `echo_client_session --ca wss://...`, a Rust and a
//!   Python client; `echo_client_session` refusing an untrusted server.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/proxies.rs"]
    pub mod proxies;
    #[path = "../support/python.rs"]
    pub mod python;
}

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::proxies;
use support::python::{self, collector, line_reader, repo_dir, run_collect, target_dir, text_of, ChildGuard};
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::transport::proxy::ProxyChoice;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};

const PROXY_VARS: [&str; 8] =
    ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

/// Builds the release library and the C examples once per test process.
fn examples() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let lib = target_dir().join("release");
        python::run_setup(
            "cargo build --release --lib",
            Command::new(env!("CARGO")).current_dir(repo_dir()).args(["build", "--release", "--lib"]),
            Duration::from_secs(1200),
        )?;
        python::run_setup(
            "make -C examples-c",
            Command::new("make").arg("-C").arg(repo_dir().join("examples-c")).arg(format!("LIBDIR={}", lib.display())),
            Duration::from_secs(300),
        )?;
        Ok(repo_dir().join("examples-c").join("build"))
    });
    r.clone().unwrap_or_else(|e| panic!("{e}"))
}

fn example(name: &str) -> Command {
    let mut c = Command::new(examples().join(name));
    c.env("LD_LIBRARY_PATH", target_dir().join("release"));
    for v in PROXY_VARS {
        c.env_remove(v);
    }
    c
}

fn venv_python() -> PathBuf {
    static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut v = VENV.lock().unwrap_or_else(|p| p.into_inner());
    if v.is_none() {
        let p =
            python::create_venv("interop-venv", &["websockets>=13,<16"], "import websockets, websockets.exceptions")
                .unwrap_or_else(|e| panic!("Python setup failed:\n{e}"));
        *v = Some(p);
    }
    v.clone().expect("set above")
}

fn peer_script() -> PathBuf {
    repo_dir().join("tests").join("interop").join("wss_peer.py")
}

fn client_tls() -> TlsClientConfig {
    let mut c = TlsClientConfig::default();
    c.add_ca_file(&Pki::get().ca()).unwrap();
    c
}

fn rust_dialer() -> Dialer {
    Dialer {
        tls: client_tls(),
        proxy: ProxyChoice::Direct,
        handshake_timeout: Some(Duration::from_secs(10)),
        ..Dialer::default()
    }
}

fn copy_leaf(name: &str, cert: &Path, key: &Path) {
    let l = Pki::get().leaf(name);
    std::fs::copy(&l.cert, cert).unwrap();
    std::fs::copy(&l.key, key).unwrap();
}

#[test]
fn echo_server_over_tls_with_rust_and_python_clients_and_a_certificate_reload() {
    let dir = target_dir().join(format!("tls-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    venv_python(); // set up before the server starts
    copy_leaf("server-ec", &cert, &key);
    let mut server = ChildGuard::spawn(
        "echo_server",
        example("echo_server")
            .args(["--port", "0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let lines = line_reader(server.child.stdout.take().unwrap());
    let stderr = collector(server.child.stderr.take().unwrap());
    let first = lines.recv_timeout(Duration::from_secs(20)).expect("echo_server prints its address");
    let port: u16 = first
        .trim()
        .strip_prefix("listening on wss://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let url = format!("wss://localhost:{port}/");

    let (c, _) = rust_dialer().dial(&url, &[]).unwrap();
    assert_eq!(c.tls_peer_certificates().unwrap()[0], Pki::get().leaf("server-ec").der());
    let big: Vec<u8> = (0..1 << 20).map(|i| (i % 249) as u8).collect();
    c.write_message(MessageType::Binary, &big).unwrap();
    assert!(c.read_message().unwrap().data() == &big[..]);

    let py = run_collect(
        "wss_peer.py client",
        Command::new(venv_python()).arg(peer_script()).arg("client").arg(&url).arg(Pki::get().ca()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(py.status.success(), "python client over TLS:\n{}\n{}", py.stdout, py.stderr);
    assert_eq!(py.stdout.matches("ok  ").count(), 12, "{}", py.stdout);

    // A plaintext client on the TLS port fails; the server goes on.
    let plain = Dialer { proxy: ProxyChoice::Direct, ..Dialer::default() };
    assert!(plain.dial(&format!("ws://127.0.0.1:{port}/"), &[]).is_err());

    // SIGHUP reloads the files: new handshakes get the new certificate.
    copy_leaf("server-rsa", &cert, &key);
    Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    let want = Pki::get().leaf("server-rsa").der();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (c2, _) = rust_dialer().dial(&url, &[]).unwrap();
        if c2.tls_peer_certificates().unwrap()[0] == want {
            c2.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
            break;
        }
        assert!(Instant::now() < until, "the reloaded certificate was not served:\n{}", text_of(&stderr));
        thread::sleep(Duration::from_millis(50));
    }
    // The first connection still works.
    c.write_message(MessageType::Text, b"after reload").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"after reload");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();

    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let st = server.wait_timeout(Duration::from_secs(10));
    assert!(st.success(), "echo_server exit {st}:\n{}", text_of(&stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Rust wss server that sends three messages, checks their echoes and
/// closes with 1000 — what echo_client needs to exit 0.
fn closing_server(leaf: &str) -> (u16, thread::JoinHandle<Result<(), String>>) {
    let l = Pki::get().leaf(leaf);
    let up = Upgrader { tls: Some(TlsServerConfig::from_files(&l.cert, &l.key).unwrap()), ..Upgrader::default() };
    let listener = Listener::bind("127.0.0.1:0", &up).unwrap();
    let port = listener.local_addr().port();
    let h = thread::spawn(move || {
        let c = listener.accept(Some(Instant::now() + Duration::from_secs(20))).map_err(|e| e.to_string())?;
        for m in [&b"one"[..], &[7u8; 100_000][..], b"three"] {
            c.write_message(MessageType::Binary, m).map_err(|e| e.to_string())?;
            let got = c.read_message().map_err(|e| e.to_string())?;
            if got.data() != m {
                return Err("echo differs".into());
            }
        }
        c.close_graceful(1000, b"done", Duration::from_secs(5)).map_err(|e| e.to_string())
    });
    (port, h)
}

fn run_echo_client(args: &[&str], env: &[(&str, String)]) -> python::Finished {
    let mut cmd = example("echo_client");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_collect("echo_client", &mut cmd, Duration::from_secs(30)).unwrap()
}

#[test]
fn echo_client_over_tls_and_through_proxies() {
    examples(); // built before any server's accept deadline starts
    let ca = Pki::get().ca().display().to_string();

    let (port, h) = closing_server("server-ec");
    let out = run_echo_client(&["--ca", &ca, &format!("wss://localhost:{port}/")], &[]);
    let served = h.join().unwrap();
    assert!(out.status.success(), "echo_client over TLS: {}\n{}\nserver: {served:?}", out.status, out.stderr);
    served.unwrap();

    // A certificate it cannot trust: non-zero, with the reason.
    let (port, h) = closing_server("untrusted");
    let out = run_echo_client(&["--ca", &ca, &format!("wss://localhost:{port}/")], &[]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("WS_ERR_TLS_CERTIFICATE") && out.stderr.contains("not trusted"), "{}", out.stderr);
    drop(h);

    let Some(open) = proxies::tinyproxy(None, &[]) else { return };
    let Some(locked) = proxies::tinyproxy(Some(("u", "pw")), &[]) else { return };
    let refusing = format!("http://127.0.0.1:{}", locked.port);

    // --proxy.
    let (port, h) = closing_server("server-ec");
    let out = run_echo_client(
        &["--ca", &ca, "--proxy", &format!("http://127.0.0.1:{}", open.port), &format!("wss://localhost:{port}/")],
        &[],
    );
    assert!(out.status.success(), "echo_client --proxy: {}\n{}", out.status, out.stderr);
    h.join().unwrap().unwrap();

    // No --proxy: the environment's. A refusing one fails with its status...
    let (port, _h) = closing_server("server-ec");
    let out =
        run_echo_client(&["--ca", &ca, &format!("wss://localhost:{port}/")], &[("https_proxy", refusing.clone())]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("WS_ERR_PROXY_REFUSED") && out.stderr.contains("407"), "{}", out.stderr);
    // ...one that lets it through works...
    let (port, h) = closing_server("server-ec");
    let good = format!("http://u:pw@127.0.0.1:{}", locked.port);
    let out = run_echo_client(&["--ca", &ca, &format!("wss://localhost:{port}/")], &[("HTTPS_PROXY", good)]);
    assert!(out.status.success(), "echo_client with HTTPS_PROXY: {}\n{}", out.status, out.stderr);
    h.join().unwrap().unwrap();
    // ...and --proxy "" ignores the environment.
    let (port, h) = closing_server("server-ec");
    let out = run_echo_client(
        &["--ca", &ca, "--proxy", "", &format!("wss://localhost:{port}/")],
        &[("https_proxy", refusing)],
    );
    assert!(out.status.success(), "echo_client --proxy '': {}\n{}", out.status, out.stderr);
    h.join().unwrap().unwrap();
}

#[test]
fn libws_client_against_a_python_wss_server() {
    let leaf = Pki::get().leaf("server-ec");
    let mut py = ChildGuard::spawn(
        "wss_peer.py server",
        Command::new(venv_python())
            .arg("-u")
            .arg(peer_script())
            .arg("server")
            .arg(&leaf.cert)
            .arg(&leaf.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let _stdin = py.child.stdin.take();
    let lines = line_reader(py.child.stdout.take().unwrap());
    let stderr = collector(py.child.stderr.take().unwrap());
    let first = lines
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("wss_peer.py server did not start:\n{}", text_of(&stderr)));
    let port: u16 = first.trim().strip_prefix("PORT ").and_then(|p| p.parse().ok()).expect("PORT line");
    let (c, _) = rust_dialer().dial(&format!("wss://localhost:{port}/"), &[]).unwrap();
    for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        c.write_message(MessageType::Binary, &data).unwrap();
        assert!(c.read_message().unwrap().data() == &data[..], "echo of {len} bytes from websockets over TLS");
        let text = "é".repeat(len / 2);
        c.write_message(MessageType::Text, text.as_bytes()).unwrap();
        let m = c.read_message().unwrap();
        assert_eq!((m.kind(), m.data()), (MessageType::Text, text.as_bytes()));
    }
    c.close_graceful(1000, b"bye", Duration::from_secs(5)).unwrap();
}

#[test]
fn echo_server_loop_over_tls() {
    venv_python();
    let leaf = Pki::get().leaf("server-ec");
    let mut server = ChildGuard::spawn(
        "echo_server_loop",
        example("echo_server_loop")
            .args(["--port", "0", "--tls-cert"])
            .arg(&leaf.cert)
            .arg("--tls-key")
            .arg(&leaf.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let lines = line_reader(server.child.stdout.take().unwrap());
    let stderr = collector(server.child.stderr.take().unwrap());
    let first = lines.recv_timeout(Duration::from_secs(20)).expect("echo_server_loop prints its address");
    let port: u16 = first
        .trim()
        .strip_prefix("listening on wss://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let url = format!("wss://localhost:{port}/");
    let (c, _) = rust_dialer().dial(&url, &[]).unwrap();
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 247) as u8).collect();
    c.write_message(MessageType::Binary, &big).unwrap();
    assert!(c.read_message().unwrap().data() == &big[..]);
    let py = run_collect(
        "wss_peer.py client",
        Command::new(venv_python()).arg(peer_script()).arg("client").arg(&url).arg(Pki::get().ca()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(py.status.success(), "python client over TLS to the loop:\n{}\n{}", py.stdout, py.stderr);
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let st = server.wait_timeout(Duration::from_secs(10));
    assert!(st.success(), "echo_server_loop exit {st}:\n{}", text_of(&stderr));
}

#[test]
fn echo_server_session_and_echo_client_session_over_tls() {
    venv_python();
    let leaf = Pki::get().leaf("server-rsa");
    let mut server = ChildGuard::spawn(
        "echo_server_session",
        example("echo_server_session")
            .args(["--port", "0", "--tls-cert"])
            .arg(&leaf.cert)
            .arg("--tls-key")
            .arg(&leaf.key)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let lines = line_reader(server.child.stdout.take().unwrap());
    let stderr = collector(server.child.stderr.take().unwrap());
    let first = lines.recv_timeout(Duration::from_secs(20)).expect("echo_server_session prints its address");
    let port: u16 = first
        .trim()
        .strip_prefix("listening on wss://127.0.0.1:")
        .and_then(|r| r.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let url = format!("wss://localhost:{port}/");
    let ca = Pki::get().ca().display().to_string();

    // The session client: TLS inside its session too (old flags after the URL).
    let out = run_collect(
        "echo_client_session",
        example("echo_client_session").args([url.as_str(), "--count", "50", "--ca", &ca]),
        Duration::from_secs(30),
    )
    .unwrap();
    assert!(out.status.success(), "echo_client_session over TLS: {}\n{}\n{}", out.status, out.stdout, out.stderr);
    assert!(out.stdout.contains("echoed=50 close=1000"), "{}", out.stdout);

    // Without the CA (the system store): refused, non-zero, with the reason.
    let out =
        run_collect("echo_client_session", example("echo_client_session").arg(&url), Duration::from_secs(30)).unwrap();
    assert!(!out.status.success(), "an untrusted server must fail: {}", out.stdout);
    assert!(out.stderr.contains("WS_ERR_TLS_CERTIFICATE"), "{}", out.stderr);

    // A blocking Rust client (4 MiB both ways) and a Python `websockets` client.
    let (c, _) = rust_dialer().dial(&url, &[]).unwrap();
    let big: Vec<u8> = (0..4 << 20).map(|i| (i % 241) as u8).collect();
    c.write_message(MessageType::Binary, &big).unwrap();
    assert!(c.read_message().unwrap().data() == &big[..]);
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    let py = run_collect(
        "wss_peer.py client",
        Command::new(venv_python()).arg(peer_script()).arg("client").arg(&url).arg(Pki::get().ca()),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(py.status.success(), "python client over TLS to the session server:\n{}\n{}", py.stdout, py.stderr);

    // Plain ws:// on the TLS port: that connection is dropped, the server goes on.
    let plain = Dialer { proxy: ProxyChoice::Direct, ..Dialer::default() };
    assert!(plain.dial(&format!("ws://127.0.0.1:{port}/"), &[]).is_err());
    let (c, _) = rust_dialer().dial(&url, &[]).unwrap();
    c.write_message(MessageType::Text, b"still serving").unwrap();
    assert_eq!(c.read_message().unwrap().data(), b"still serving");
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();

    Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    let st = server.wait_timeout(Duration::from_secs(10));
    assert!(st.success(), "echo_server_session exit {st}:\n{}", text_of(&stderr));
}
