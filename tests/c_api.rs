//! The C side, run by `cargo test`: builds the release library
//! (`cargo build --release --lib`), the C examples (`make -C examples-c`)
//! and every `tests/c/*.c` program (plus `tests/c/header_cpp.cpp` with g++),
//! runs each with a timeout and requires exit status 0. Then drives the
//! example binaries with the Rust API: echo_server and chat_server with Rust
//! clients, echo_client against a Rust server.
//!
//! Every child process is killed when its test ends, pass or fail
//! (`ChildGuard`). The C programs run one at a time (`RUN_LOCK`): several of
//! them measure timeouts, and the machine may be small.
//!
//! `.ci/sanitizers` runs this same harness with three environment knobs:
//! `LIBWS_C_CFLAGS` (extra compiler flags for the C programs and examples,
//! e.g. ASan + UBSan; the examples are then built under the target
//! directory, not in examples-c/build), `LIBWS_C_LIBDIR` (a libws.so built
//! elsewhere, e.g. with `-Zsanitizer=address`; no nested cargo build) and
//! `LIBWS_C_WRAPPER` (a command the C programs run under, e.g. valgrind).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::ErrorKind;

const C_TEST_TIMEOUT: Duration = Duration::from_secs(120);

static RUN_LOCK: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    RUN_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the nested `cargo build --release` puts the library: the target
/// directory the outer cargo uses (CARGO_TARGET_DIR is inherited).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                manifest_dir().join(d)
            }
        }
        None => manifest_dir().join("target"),
    }
}

fn lib_dir() -> PathBuf {
    match std::env::var_os("LIBWS_C_LIBDIR") {
        Some(d) => PathBuf::from(d),
        None => target_dir().join("release"),
    }
}

/// Extra compiler flags for every C program (`LIBWS_C_CFLAGS`).
fn extra_cflags() -> Vec<String> {
    std::env::var("LIBWS_C_CFLAGS").map(|f| f.split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

/// Where the examples are built: in-tree normally, under the target
/// directory when built with extra flags (so the two builds never mix).
fn examples_dir() -> PathBuf {
    if extra_cflags().is_empty() {
        manifest_dir().join("examples-c/build")
    } else {
        out_dir().join("examples")
    }
}

fn out_dir() -> PathBuf {
    target_dir().join("c-tests")
}

/// Kills (and reaps) the child when dropped, whatever happened.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: cannot run: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Builds the release library and the examples, once per test binary.
fn built() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        let t0 = Instant::now();
        // The outer cargo has released its build lock once tests run, so a
        // nested cargo in the same target directory does not block.
        if std::env::var_os("LIBWS_C_LIBDIR").is_none() {
            run_checked(
                Command::new(env!("CARGO")).current_dir(manifest_dir()).args(["build", "--release", "--lib"]),
                "cargo build --release --lib",
            )?;
        }
        let lib = lib_dir();
        if !lib.join("libws.so").exists() {
            return Err(format!("{} was not built", lib.join("libws.so").display()));
        }
        soname_link(&lib)?;
        let mut make = Command::new("make");
        make.arg("-C").arg(manifest_dir().join("examples-c")).arg(format!("LIBDIR={}", lib.display()));
        let extra = extra_cflags();
        if !extra.is_empty() {
            // -B: the same sources, other flags: always rebuild.
            // The flags ride on CC, so they reach compiling and linking
            // without replacing the Makefile's own CFLAGS and LDFLAGS.
            let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
            make.arg("-B")
                .arg(format!("BUILD={}", examples_dir().display()))
                .arg(format!("CC={cc} {}", extra.join(" ")));
        }
        run_checked(&mut make, "make -C examples-c")?;
        std::fs::create_dir_all(out_dir()).map_err(|e| format!("mkdir {}: {e}", out_dir().display()))?;
        eprintln!("c_api: library and examples built in {:.1} s", t0.elapsed().as_secs_f64());
        Ok(lib)
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Programs linked against libws.so need the file its SONAME names
/// (libws.so.0) at run time; cargo builds only libws.so, so the build
/// tree gets the link `make install` also makes.
fn soname_link(lib: &Path) -> Result<(), String> {
    let out =
        Command::new("readelf").arg("-d").arg(lib.join("libws.so")).output().map_err(|e| format!("readelf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let soname = text
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(|l| l.split('[').nth(1))
        .and_then(|s| s.split(']').next())
        .ok_or_else(|| format!("libws.so has no SONAME:\n{text}"))?
        .to_string();
    let link = lib.join(&soname);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("libws.so", &link).map_err(|e| format!("symlink {}: {e}", link.display()))
}

/// Compiles one C (or C++) test program against the release library.
fn compile(src: &str) -> PathBuf {
    let lib = built();
    let src_path = manifest_dir().join("tests/c").join(src);
    let stem = Path::new(src).file_stem().unwrap().to_str().unwrap().to_string();
    let exe = out_dir().join(&stem);
    let cpp = src.ends_with(".cpp");
    let mut cmd = if cpp {
        let mut c = Command::new(std::env::var("CXX").unwrap_or_else(|_| "g++".into()));
        c.args(["-std=c++11", "-Wall", "-Wextra", "-Werror"]);
        c
    } else {
        let mut c = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
        c.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-pthread"]);
        c
    };
    cmd.args(extra_cflags());
    cmd.arg(format!("-I{}", manifest_dir().join("include").display()))
        .arg("-o")
        .arg(&exe)
        .arg(&src_path)
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lws", "-lpthread", "-ldl", "-lm"]);
    if let Err(e) = run_checked(&mut cmd, &format!("compiling {src}")) {
        panic!("{e}");
    }
    exe
}

/// Runs `cmd` to completion or until `timeout` (then kills it); returns its
/// exit status (None on timeout) and its stdout+stderr.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> (Option<ExitStatus>, String, String) {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut guard = ChildGuard(child);
    let mut so = guard.0.stdout.take().unwrap();
    let mut se = guard.0.stderr.take().unwrap();
    let to = thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let te = thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match guard.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => break None,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("wait: {e}"),
        }
    };
    drop(guard); // kills on timeout; closes the pipes
    (status, to.join().unwrap(), te.join().unwrap())
}

fn run_c_test(src: &str) {
    let exe = compile(src);
    let _serial = serial();
    let t0 = Instant::now();
    let (status, out, err) = run_with_timeout(&mut release_command(&exe), C_TEST_TIMEOUT);
    println!("{out}");
    if !err.is_empty() {
        println!("--- stderr ---\n{err}");
    }
    println!("{src}: {:.2} s", t0.elapsed().as_secs_f64());
    let status = status.unwrap_or_else(|| panic!("{src} timed out after {C_TEST_TIMEOUT:?}"));
    let summary = out.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or("");
    assert!(status.success(), "{src} exited with {status}; summary: {summary}");
    assert!(
        summary.ends_with(", 0 failed") && !summary.starts_with("0 passed"),
        "{src}: no clean summary line (got {summary:?})"
    );
}

#[test]
fn c_test_echo() {
    run_c_test("test_echo.c");
}

#[test]
fn c_test_stream() {
    run_c_test("test_stream.c");
}

#[test]
fn c_test_threads() {
    run_c_test("test_threads.c");
}

#[test]
fn c_test_deadlines() {
    run_c_test("test_deadlines.c");
}

#[test]
fn c_test_budget() {
    run_c_test("test_budget.c");
}

#[test]
fn c_test_handshake() {
    run_c_test("test_handshake.c");
}

#[test]
fn c_test_compression() {
    run_c_test("test_compression.c");
}

#[test]
fn c_test_loop() {
    run_c_test("test_loop.c");
}

#[test]
fn c_test_session() {
    run_c_test("test_session.c");
}

#[test]
fn c_test_http() {
    run_c_test("test_http.c");
}

#[test]
fn c_test_client_extras() {
    run_c_test("test_client_extras.c");
}

#[test]
fn c_test_tls() {
    run_c_test("test_tls.c");
}

#[test]
fn c_test_reconnect() {
    run_c_test("test_reconnect.c");
}

#[test]
fn c_test_misuse() {
    run_c_test("test_misuse.c");
}

#[test]
fn c_header_compiles_as_cpp() {
    run_c_test("header_cpp.cpp");
}

// ---- The C++ wrapper (include/ws.hpp) ----------------------------------------

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// Compiles and runs one `tests/cpp/` program with `compiler` at
/// C++17 (and `-Wall -Wextra -Werror -pedantic`) plus `extra` flags and,
/// like every C program, `LIBWS_C_CFLAGS` (under `.ci/sanitizers` the
/// program must carry the sanitizer runtime: an instrumented libws.so
/// calls into it and does not link one itself).
fn run_cpp_test(src: &str, compiler: &str, extra: &[&str]) {
    let lib = built();
    let stem = Path::new(src).file_stem().unwrap().to_str().unwrap();
    let exe = out_dir().join(format!("{stem}-{compiler}"));
    let mut cmd = Command::new(compiler);
    cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-pthread"])
        .args(extra)
        .args(extra_cflags())
        .arg(format!("-I{}", manifest_dir().join("include").display()))
        .arg(format!("-I{}", manifest_dir().join("tests/cpp").display()))
        .arg("-o")
        .arg(&exe)
        .arg(manifest_dir().join("tests/cpp").join(src))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lws");
    if let Err(e) = run_checked(&mut cmd, &format!("{compiler} {src}")) {
        panic!("{e}");
    }
    let _serial = serial();
    let (status, out, err) = run_with_timeout(&mut release_command(&exe), C_TEST_TIMEOUT);
    println!("{out}");
    if !err.is_empty() {
        println!("--- stderr ---\n{err}");
    }
    let status = status.unwrap_or_else(|| panic!("{src} ({compiler}) timed out after {C_TEST_TIMEOUT:?}"));
    let summary = out.lines().rev().find(|l| l.ends_with(" failed")).unwrap_or("");
    assert!(status.success(), "{src} ({compiler}) exited with {status}; summary: {summary}");
    assert!(
        summary.ends_with(", 0 failed") && !summary.starts_with("0 passed"),
        "{src}: no clean summary ({summary:?})"
    );
}

#[test]
fn cpp_wrapper_gxx() {
    run_cpp_test("test_wrapper.cpp", "g++", &[]);
}

#[test]
fn cpp_session_gxx() {
    run_cpp_test("test_session.cpp", "g++", &[]);
}

#[test]
fn cpp_wrapper_gxx_without_exceptions() {
    run_cpp_test("test_no_exceptions.cpp", "g++", &["-fno-exceptions"]);
}

/// clang++ where present (Debian's `clang` package); skipped otherwise.
#[test]
fn cpp_wrapper_clangxx() {
    if !have("clang++") {
        eprintln!("clang++ not installed: the clang++ build of the C++ wrapper tests is skipped");
        return;
    }
    run_cpp_test("test_wrapper.cpp", "clang++", &[]);
    run_cpp_test("test_session.cpp", "clang++", &[]);
    run_cpp_test("test_no_exceptions.cpp", "clang++", &["-fno-exceptions"]);
}

// ---- The examples -----------------------------------------------------------

/// A command for a program linked against libws that loads the release
/// library: `cargo test` puts target/debug (with a debug libws.so that may
/// be older) on LD_LIBRARY_PATH, which outranks the programs' RUNPATH.
fn release_command(program: &Path) -> Command {
    let mut c = match std::env::var("LIBWS_C_WRAPPER") {
        Ok(w) if !w.trim().is_empty() => {
            let mut parts = w.split_whitespace();
            let mut c = Command::new(parts.next().unwrap());
            c.args(parts).arg(program);
            c
        }
        _ => Command::new(program),
    };
    c.env("LD_LIBRARY_PATH", lib_dir());
    c
}

fn example(name: &str) -> PathBuf {
    built();
    examples_dir().join(name)
}

/// Starts a server example with `--port 0` and returns it with the URL from
/// its "listening on ws://HOST:PORT/" line.
fn start_server_example(name: &str) -> (ChildGuard, String) {
    start_server_example_with(name, &[])
}

fn start_server_example_with(name: &str, extra: &[&str]) -> (ChildGuard, String) {
    let child = release_command(&example(name))
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    let mut guard = ChildGuard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line =
        rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{name} did not say where it listens"));
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"))
        .to_string();
    let local = url.starts_with("ws://127.0.0.1:") || url.starts_with("http://127.0.0.1:");
    assert!(local && url.ends_with('/'), "{name}: bad URL {url:?}");
    (guard, url)
}

/// Sends SIGTERM and requires a clean exit (status 0) within 5 s.
fn terminate(mut g: ChildGuard, name: &str) {
    let pid = g.0.id().to_string();
    let st = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        if let Some(st) = g.0.try_wait().unwrap() {
            assert!(st.success(), "{name} exited with {st} after SIGTERM");
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{name} did not exit after SIGTERM");
        thread::sleep(Duration::from_millis(20));
    }
}

fn payload(len: usize, kind: MessageType) -> Vec<u8> {
    match kind {
        MessageType::Text => (0..len).map(|i| b'a' + (i % 26) as u8).collect(),
        _ => (0..len).map(|i| (i * 7 + i / 251) as u8).collect(),
    }
}

const SIZES: [usize; 8] = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

#[test]
fn example_echo_server() {
    let _serial = serial();
    let (server, url) = start_server_example("echo_server");
    let (c, resp) = Dialer::default().dial(&url, &[]).expect("dial echo_server");
    assert_eq!(resp.status(), 101);
    for kind in [MessageType::Text, MessageType::Binary] {
        for len in SIZES {
            let data = payload(len, kind);
            c.write_message(kind, &data).unwrap();
            let m = c.read_message().unwrap();
            assert_eq!(m.kind(), kind);
            assert!(m.data() == &data[..], "echo of {len} bytes ({kind:?}) differs");
        }
    }
    // A second client at the same time.
    let (c2, _) = Dialer::default().dial(&url, &[]).expect("second dial");
    c2.write_message(MessageType::Text, "héllo".as_bytes()).unwrap();
    assert_eq!(c2.read_message().unwrap().data(), "héllo".as_bytes());
    c.close_graceful(1000, b"bye", Duration::from_secs(5)).unwrap();
    c2.close_graceful(1001, b"", Duration::from_secs(5)).unwrap();
    terminate(server, "echo_server");
}

#[test]
fn example_echo_server_compressed() {
    let _serial = serial();
    let (server, url) = start_server_example_with("echo_server", &["--compress"]);
    let mut d = Dialer::default();
    d.conn.compression = Some(ws::proto::deflate::DeflateOptions::default());
    let (c, resp) = d.dial(&url, &[]).expect("dial echo_server --compress");
    assert!(c.compression_negotiated(), "{:?}", resp.header("Sec-WebSocket-Extensions"));
    for kind in [MessageType::Text, MessageType::Binary] {
        for len in SIZES {
            let data = payload(len, kind);
            c.write_message(kind, &data).unwrap();
            assert!(c.read_message().unwrap().data() == &data[..], "compressed echo of {len} bytes ({kind:?})");
        }
    }
    c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    terminate(server, "echo_server");
}

#[test]
fn example_echo_client_compressed() {
    let _serial = serial();
    let mut up = Upgrader::default();
    up.conn.compression = Some(ws::proto::deflate::DeflateOptions::default());
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let url = format!("ws://{}/", l.local_addr());
    let mut child = ChildGuard(
        release_command(&example("echo_client"))
            .args(["--compress", &url])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn echo_client"),
    );
    let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).expect("echo_client connects");
    assert!(c.compression_negotiated());
    for len in [0usize, 100, 70_000, 1 << 20] {
        let data = payload(len, MessageType::Text);
        c.write_message(MessageType::Text, &data).unwrap();
        assert!(c.read_message().unwrap().data() == &data[..], "echo_client --compress echo of {len} bytes");
    }
    c.close_graceful(1000, b"done", Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "echo_client did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "echo_client exited with {st}");
}

#[test]
fn example_echo_client() {
    let _serial = serial();
    let l = Listener::bind("127.0.0.1:0", &Upgrader::default()).unwrap();
    let url = format!("ws://{}/", l.local_addr());
    let child = release_command(&example("echo_client"))
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo_client");
    let mut g = ChildGuard(child);
    let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).expect("echo_client connects");
    for (kind, len) in [
        (MessageType::Text, 0),
        (MessageType::Text, 5),
        (MessageType::Binary, 126),
        (MessageType::Binary, 65536),
        (MessageType::Text, 1 << 20),
        (MessageType::Binary, 16 << 20),
    ] {
        let data = payload(len, kind);
        c.write_message(kind, &data).unwrap();
        let m = c.read_message().unwrap();
        assert_eq!(m.kind(), kind);
        assert!(m.data() == &data[..], "echo_client's echo of {len} bytes differs");
    }
    c.close_graceful(1000, b"done", Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = g.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "echo_client did not exit after the close");
        thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    let _ = g.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(st.success(), "echo_client exited with {st}: {err}");

    // A close with another code makes it fail.
    let child = release_command(&example("echo_client")).arg(&url).stderr(Stdio::piped()).spawn().unwrap();
    let mut g = ChildGuard(child);
    let c = l.accept(Some(Instant::now() + Duration::from_secs(10))).expect("echo_client connects again");
    c.close_graceful(1011, b"oops", Duration::from_secs(5)).unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = g.0.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "echo_client did not exit after close 1011");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(!st.success(), "echo_client must fail after close 1011");
}

#[test]
fn example_chat_server() {
    let _serial = serial();
    let (server, url) = start_server_example("chat_server");
    let (a, _) = Dialer::default().dial(&url, &[]).expect("dial a");
    let (b, _) = Dialer::default().dial(&url, &[]).expect("dial b");
    for c in [&a, &b] {
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
    }
    // b's message is read by b's thread, which starts after b joined; a
    // joined before b's handshake. So both get it.
    b.write_message(MessageType::Text, b"hello from b").unwrap();
    for (name, c) in [("a", &a), ("b", &b)] {
        let m = c.read_message().unwrap_or_else(|e| panic!("{name} did not get b's message: {e:?}"));
        assert_eq!((m.kind(), m.data()), (MessageType::Text, &b"hello from b"[..]), "{name}");
    }
    let big = payload(100_000, MessageType::Binary);
    a.write_message(MessageType::Binary, &big).unwrap();
    for (name, c) in [("a", &a), ("b", &b)] {
        let m = c.read_message().unwrap_or_else(|e| panic!("{name} did not get a's message: {e:?}"));
        assert_eq!(m.kind(), MessageType::Binary, "{name}");
        assert!(m.data() == &big[..], "{name}: broadcast differs");
    }
    // After a leaves, b still gets its own messages.
    a.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    b.write_message(MessageType::Text, b"alone").unwrap();
    let m = b.read_message().unwrap();
    assert_eq!(m.data(), b"alone");
    drop(m);
    b.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    let e = b.read_message().err().expect("read after close fails");
    assert!(matches!(e.kind(), ErrorKind::Closed | ErrorKind::LocallyClosed), "{e:?}");
    terminate(server, "chat_server");
}

// ---- The event-loop examples --------------------------------------------

/// chat_web: the page over plain HTTP and the chat WebSocket at /ws on the
/// same port (the browser drives it in `.ci/browser`).
#[test]
fn example_chat_web() {
    let _serial = serial();
    let (server, url) = start_server_example("chat_web");
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let get = |request: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/html") && page.contains("new WebSocket("), "{page}");
    assert!(get("GET /missing HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(get("POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    assert!(get("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").starts_with("HTTP/1.1 413 "));

    let ws = format!("ws://{addr}/ws");
    // Same origin as the page, as a browser sends it.
    let origin = [("Origin".to_string(), format!("http://{addr}"))];
    let (a, _) = Dialer::default().dial(&ws, &origin).expect("dial a");
    let (b, _) = Dialer::default().dial(&ws, &origin).expect("dial b");
    for c in [&a, &b] {
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
    }
    a.write_message(MessageType::Text, b"hello from a").unwrap();
    for (name, c) in [("a", &a), ("b", &b)] {
        let m = c.read_message().unwrap_or_else(|e| panic!("{name} did not get a's message: {e:?}"));
        assert_eq!((m.kind(), m.data()), (MessageType::Text, &b"hello from a"[..]), "{name}");
    }
    // Only /ws upgrades; binary messages are refused with 1003.
    let Err(refused) = Dialer::default().dial(&format!("ws://{addr}/other"), &origin) else {
        panic!("/other was upgraded");
    };
    assert_eq!(refused.response.map(|r| r.status()), Some(404));
    b.write_message(MessageType::Binary, b"bin").unwrap();
    let e = b.read_message().err().expect("binary closes the sender");
    assert_eq!(b.close_code(), Some(1003), "{e:?}");
    a.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    terminate(server, "chat_web");
}

#[test]
fn example_echo_server_loop() {
    one_thread_echo_server("echo_server_loop");
}

/// The sans-IO session server (its own poll(2) loop over its own sockets)
/// passes the same checks as the loop server.
#[test]
fn example_echo_server_session() {
    one_thread_echo_server("echo_server_session");
}

#[test]
fn example_echo_client_session() {
    let _serial = serial();
    for extra in [&[][..], &["--compress"][..]] {
        let (server, url) = start_server_example_with("echo_server_session", extra);
        let out = release_command(&example("echo_client_session"))
            .arg(&url)
            .args(["--count", "300"])
            .args(extra)
            .output()
            .expect("run echo_client_session");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "echo_client_session {extra:?}: {}\n{stdout}{stderr}", out.status);
        assert!(stdout.contains("echoed=300 close=1000"), "{stdout}");
        terminate(server, "echo_server_session");
    }
}

/// An echo server that serves every connection on one thread: echoes at
/// every size, many pipelining clients, flow control against a greedy one.
fn one_thread_echo_server(name: &str) {
    let _serial = serial();
    for extra in [&[][..], &["--compress"][..]] {
        let (server, url) = start_server_example_with(name, extra);
        let mut d = Dialer::default();
        if !extra.is_empty() {
            d.conn.compression = Some(ws::proto::deflate::DeflateOptions::default());
        }
        let (c, _) = d.dial(&url, &[]).unwrap_or_else(|e| panic!("dial {name}: {e:?}"));
        assert_eq!(c.compression_negotiated(), !extra.is_empty());
        for kind in [MessageType::Text, MessageType::Binary] {
            for len in SIZES {
                let data = payload(len, kind);
                c.write_message(kind, &data).unwrap();
                let m = c.read_message().unwrap();
                assert_eq!(m.kind(), kind);
                assert!(m.data() == &data[..], "{name}: echo of {len} bytes ({kind:?}, {extra:?}) differs");
            }
        }
        // Many clients at once, each pipelining.
        let clients: Vec<_> = (0..50).map(|_| Dialer::default().dial(&url, &[]).expect("dial").0).collect();
        for (i, c) in clients.iter().enumerate() {
            for j in 0..20 {
                c.write_message(MessageType::Text, format!("{i}/{j}").as_bytes()).unwrap();
            }
        }
        for (i, c) in clients.iter().enumerate() {
            for j in 0..20 {
                assert_eq!(c.read_message().unwrap().data(), format!("{i}/{j}").as_bytes());
            }
        }
        // A client that sends 64 MiB before it reads anything: the server
        // pauses reading it (flow control) rather than buffering without
        // bound, keeps serving others, and loses nothing.
        let greedy = std::sync::Arc::new(Dialer::default().dial(&url, &[]).expect("dial").0);
        let g = greedy.clone();
        let writer = thread::spawn(move || {
            let chunk = payload(1 << 20, MessageType::Binary);
            for _ in 0..64 {
                g.write_message(MessageType::Binary, &chunk).unwrap();
            }
        });
        thread::sleep(Duration::from_millis(300));
        c.write_message(MessageType::Text, b"still here").unwrap();
        assert_eq!(c.read_message().unwrap().data(), b"still here");
        greedy.set_read_deadline(Some(Instant::now() + Duration::from_secs(30)));
        for i in 0..64 {
            let m = greedy.read_message().unwrap_or_else(|e| panic!("echo {i} of 64 MiB: {e:?}"));
            assert_eq!(m.data().len(), 1 << 20);
        }
        writer.join().unwrap();
        c.close_graceful(1000, b"bye", Duration::from_secs(5)).unwrap();
        terminate(server, name);
    }
}

#[test]
fn example_chat_server_loop() {
    let _serial = serial();
    let (server, url) = start_server_example("chat_server_loop");
    let conns: Vec<_> = (0..3).map(|_| Dialer::default().dial(&url, &[]).expect("dial").0).collect();
    for c in &conns {
        c.set_read_deadline(Some(Instant::now() + Duration::from_secs(10)));
    }
    // Handshakes are done, but the server opens them on its own thread:
    // the first message proves every client is in the room.
    thread::sleep(Duration::from_millis(100));
    conns[1].write_message(MessageType::Text, b"hello room").unwrap();
    for (i, c) in conns.iter().enumerate() {
        let m = c.read_message().unwrap_or_else(|e| panic!("client {i}: {e:?}"));
        assert_eq!((m.kind(), m.data()), (MessageType::Text, &b"hello room"[..]), "client {i}");
    }
    let big = payload(200_000, MessageType::Binary);
    conns[0].write_message(MessageType::Binary, &big).unwrap();
    for c in &conns {
        assert!(c.read_message().unwrap().data() == &big[..]);
    }
    conns[2].close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
    conns[0].write_message(MessageType::Text, b"two left").unwrap();
    for c in &conns[..2] {
        assert_eq!(c.read_message().unwrap().data(), b"two left");
    }
    terminate(server, "chat_server_loop");
}

#[test]
fn example_game_loop_client() {
    let _serial = serial();
    let (server, url) = start_server_example("echo_server_loop");
    let out = release_command(&example("game_loop_client"))
        .args([url.as_str(), "--frames", "60"])
        .output()
        .expect("run game_loop_client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "game_loop_client: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sent=60 received=60 out_of_order=0 close=1000"), "{stdout}");
    // Refused handshakes are reported, not hung on.
    let bad = release_command(&example("game_loop_client")).arg("ws://127.0.0.1:1/").output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("dial failed"), "{}", String::from_utf8_lossy(&bad.stderr));
    terminate(server, "echo_server_loop");
}
