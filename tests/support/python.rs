//! Child processes and Python virtual environments for the tests that run
//! Python (tests/interop_python.rs, tests/python_binding.rs).
//!
//! Every child process is killed when its guard drops (also on a panic)
//! and every wait has a deadline. A venv is built in a scratch directory
//! and renamed into place, so concurrent test processes never see a
//! half-made environment; it is reused while its imports work.

#![allow(dead_code)] // each test binary uses a part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A child process that is killed and reaped when dropped.
pub struct ChildGuard {
    pub name: String,
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("could not start {name} ({cmd:?}): {e}"));
        ChildGuard { name: name.to_string(), child }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        match self.try_wait_timeout(timeout) {
            Some(st) => st,
            None => panic!("{} did not exit within {timeout:?}", self.name),
        }
    }

    /// Waits for the process to exit, at most `timeout`; None when it did not.
    pub fn try_wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() >= deadline => return None,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Lines of a child's output, read by a thread, so that waits can time out.
pub fn line_reader(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    });
    rx
}

/// Everything a child writes, collected by a thread (for error messages).
pub fn collector(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            b.push_str(&line);
            b.push('\n');
        }
    });
    buf
}

pub fn text_of(buf: &Arc<Mutex<String>>) -> String {
    buf.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The output and exit status of a command run to completion.
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion within `timeout` (killing it otherwise), with
/// its output collected. Err when it could not run or did not finish.
pub fn run_collect(what: &str, cmd: &mut Command, timeout: Duration) -> Result<Finished, String> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => ChildGuard { name: what.to_string(), child: c },
        Err(e) => return Err(format!("{what}: could not run {cmd:?}: {e}")),
    };
    let out = collector(child.child.stdout.take().expect("piped stdout"));
    let err = collector(child.child.stderr.take().expect("piped stderr"));
    let status = match child.try_wait_timeout(timeout) {
        Some(st) => st,
        None => {
            drop(child); // kills it
            thread::sleep(Duration::from_millis(100));
            return Err(format!(
                "{what}: {cmd:?} did not finish within {timeout:?} (killed)\n--- stdout\n{}--- stderr\n{}",
                text_of(&out),
                text_of(&err)
            ));
        }
    };
    // The reader threads finish at EOF, right after exit.
    thread::sleep(Duration::from_millis(50));
    Ok(Finished { status, stdout: text_of(&out), stderr: text_of(&err) })
}

/// Runs a setup command to completion within `timeout`; Err carries its output.
pub fn run_setup(what: &str, cmd: &mut Command, timeout: Duration) -> Result<(), String> {
    let f = run_collect(what, cmd, timeout)?;
    if f.status.success() {
        Ok(())
    } else {
        Err(format!("{what}: {cmd:?} failed ({})\n--- stdout\n{}--- stderr\n{}", f.status, f.stdout, f.stderr))
    }
}

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/ (CARGO_TARGET_TMPDIR is target/tmp, wherever target/ is).
pub fn target_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(Path::to_path_buf).unwrap_or(tmp)
}

pub fn venv_python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn imports(python: &Path, check: &str) -> bool {
    python.exists()
        && run_setup("checking the venv", Command::new(python).args(["-c", check]), Duration::from_secs(60)).is_ok()
}

/// Creates (or reuses) `target/<name>` with `requirements` installed from
/// PyPI; returns its python. It is reused when `check` (Python code, e.g.
/// "import websockets") runs in it. `LIBWS_INTEROP_PYTHON` names another
/// Python 3 to build it from.
pub fn create_venv(name: &str, requirements: &[&str], check: &str) -> Result<PathBuf, String> {
    // Tests of one binary run on parallel threads of one process, and the
    // scratch directory is named by process id: one creation at a time, and
    // a thread that waited finds the venv made (the check below).
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    let venv = target_dir().join(name);
    let python = venv_python_in(&venv);
    if imports(&python, check) {
        return Ok(python);
    }
    let base = std::env::var("LIBWS_INTEROP_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let scratch = target_dir().join(format!("{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(target_dir()).map_err(|e| format!("creating {}: {e}", target_dir().display()))?;
    run_setup(
        "creating the virtual environment",
        Command::new(&base).arg("-m").arg("venv").arg(&scratch),
        Duration::from_secs(120),
    )
    .map_err(|e| {
        let _ = std::fs::remove_dir_all(&scratch);
        format!(
            "{e}\n\nThe Python tests need Python 3 with the venv module and pip \
                 (ensurepip). On Debian/Ubuntu install them with: apt-get install python3 python3-venv \
                 (or set LIBWS_INTEROP_PYTHON to a Python 3 that has them)."
        )
    })?;
    let scratch_python = venv_python_in(&scratch);
    run_setup(
        "installing the test requirements",
        Command::new(&scratch_python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", "--timeout", "60"])
            .args(requirements),
        Duration::from_secs(600),
    )
    .map_err(|e| {
        let _ = std::fs::remove_dir_all(&scratch);
        format!("{e}\n\n`pip install {}` failed: PyPI must be reachable.", requirements.join(" "))
    })?;
    // A venv's scripts hold its absolute path, but `python -m` does not
    // depend on them, so moving it is fine for our use.
    let _ = std::fs::remove_dir_all(&venv);
    if let Err(e) = std::fs::rename(&scratch, &venv) {
        let _ = std::fs::remove_dir_all(&scratch);
        if !imports(&python, check) {
            return Err(format!("moving the new venv to {}: {e}", venv.display()));
        }
    }
    if imports(&python, check) {
        Ok(python)
    } else {
        Err(format!("{} was created but `{check}` fails in it", venv.display()))
    }
}
