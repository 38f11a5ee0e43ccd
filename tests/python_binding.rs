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

#[path = "support/python.rs"]
mod python;

use python::{repo_dir, run_collect, run_setup, target_dir};

/// websockets: the versions whose sync and asyncio APIs the tests and the
/// benchmark use; setuptools: what pyproject.toml's build needs (so that
/// `pip install --no-build-isolation` works offline once the venv exists).
const REQUIREMENTS: [&str; 3] = ["pytest>=7", "websockets>=13,<16", "setuptools>=70.1"];
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

fn venv_python() -> PathBuf {
    python::create_venv("python-venv", &REQUIREMENTS, "import pytest, websockets.sync.server, setuptools")
        .unwrap_or_else(|e| panic!("Python test environment setup failed:\n{e}"))
}

#[test]
fn python_binding_pip_install_and_pytest() {
    let lib = library();
    let python = venv_python();
    let package = repo_dir().join("bindings").join("python");

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
            .env("LIBWS_TEST_INSTALLED", "1")
            .env_remove("LIBWS_LIBRARY")
            .env_remove("PYTHONPATH"),
        PYTEST_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let summary = f.stdout.lines().rev().find(|l| l.contains(" in ")).unwrap_or("").to_string();
    eprintln!("python_binding: pytest took {:.1} s: {summary}", t0.elapsed().as_secs_f64());
    assert!(f.status.success(), "pytest failed ({})\n--- stdout\n{}--- stderr\n{}", f.status, f.stdout, f.stderr);
    // Every test ran: none skipped (a missing websockets would skip interop).
    assert!(summary.contains(" passed") && !summary.contains("skipped"), "pytest summary: {summary}\n{}", f.stdout);
}
