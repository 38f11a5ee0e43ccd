//! Real proxies for the proxy tests, from Debian packages: tinyproxy (HTTP
//! CONNECT), stunnel4 in front of it (an HTTPS proxy), microsocks (SOCKS5).
//! A missing program is installed with apt-get when running as root; when
//! that is impossible the test says so loudly and is skipped.

#![allow(dead_code)] // each test binary uses a part

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::python::ChildGuard;

/// The path of `program`, installing `package` with apt when it is
/// missing and we are root. `None` (after a loud message) when impossible.
pub fn find_or_install(program: &str, package: &str) -> Option<PathBuf> {
    static APT: Mutex<()> = Mutex::new(());
    let find = || {
        ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(program))
            .find(|p| p.exists())
    };
    if let Some(p) = find() {
        return Some(p);
    }
    let _g = APT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find() {
        return Some(p);
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    if root {
        let install = |args: &[&str]| {
            Command::new("timeout")
                .arg("600")
                .arg("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !install(&["install", "-y", "--no-install-recommends", package]) {
            install(&["update"]);
            install(&["install", "-y", "--no-install-recommends", package]);
        }
    }
    let found = find();
    if found.is_none() {
        eprintln!(
            "\n*** SKIPPED: {program} (Debian package {package}) is not installed and could not be installed \
             (root: {root}); install it to run this test ***\n"
        );
    }
    found
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_port(port: u16, what: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "{what} does not listen on {port}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn scratch() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let d = target.join(format!("proxies-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running proxy; stopped when dropped.
pub struct Proxy {
    pub port: u16,
    _child: ChildGuard,
    _inner: Option<Box<Proxy>>,
    dir: Option<PathBuf>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// tinyproxy on 127.0.0.1: `auth` = Basic user and password, `connect_ports`
/// = the only ports CONNECT may reach (empty: any).
pub fn tinyproxy(auth: Option<(&str, &str)>, connect_ports: &[u16]) -> Option<Proxy> {
    let bin = find_or_install("tinyproxy", "tinyproxy")?;
    let port = free_port();
    let mut conf =
        format!("Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 100\nAllow 127.0.0.1\nLogLevel Error\n");
    if let Some((u, p)) = auth {
        conf.push_str(&format!("BasicAuth {u} {p}\n"));
    }
    for p in connect_ports {
        conf.push_str(&format!("ConnectPort {p}\n"));
    }
    let dir = scratch();
    let path = dir.join("tinyproxy.conf");
    std::fs::write(&path, conf).unwrap();
    let child = ChildGuard::spawn(
        "tinyproxy",
        Command::new(bin).arg("-d").arg("-c").arg(&path).stdout(Stdio::null()).stderr(Stdio::null()),
    );
    wait_port(port, "tinyproxy");
    Some(Proxy { port, _child: child, _inner: None, dir: Some(dir) })
}

/// stunnel4 terminating TLS (with `cert`/`key`) in front of `inner`: an
/// HTTPS proxy.
pub fn stunnel_in_front(inner: Proxy, cert: &Path, key: &Path) -> Option<Proxy> {
    let bin = find_or_install("stunnel4", "stunnel4").or_else(|| find_or_install("stunnel", "stunnel4"))?;
    let port = free_port();
    let dir = scratch();
    let conf = format!(
        "foreground = yes\npid =\ndebug = 3\n[https-proxy]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{}\ncert = {}\nkey = {}\n",
        inner.port,
        cert.display(),
        key.display()
    );
    let path = dir.join("stunnel.conf");
    std::fs::write(&path, conf).unwrap();
    let child = ChildGuard::spawn("stunnel", Command::new(bin).arg(&path).stdout(Stdio::null()).stderr(Stdio::null()));
    wait_port(port, "stunnel");
    Some(Proxy { port, _child: child, _inner: Some(Box::new(inner)), dir: Some(dir) })
}

/// microsocks on 127.0.0.1, with username/password when given.
pub fn microsocks(auth: Option<(&str, &str)>) -> Option<Proxy> {
    let bin = find_or_install("microsocks", "microsocks")?;
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
    if let Some((u, p)) = auth {
        cmd.args(["-u", u, "-P", p]);
    }
    let child = ChildGuard::spawn("microsocks", cmd.stdout(Stdio::null()).stderr(Stdio::null()));
    wait_port(port, "microsocks");
    Some(Proxy { port, _child: child, _inner: None, dir: None })
}

/// One-time check, shared by a test binary: are the proxies there?
pub fn available() -> bool {
    static A: OnceLock<bool> = OnceLock::new();
    *A.get_or_init(|| {
        find_or_install("tinyproxy", "tinyproxy").is_some()
            && (find_or_install("stunnel4", "stunnel4").is_some())
            && find_or_install("microsocks", "microsocks").is_some()
    })
}
