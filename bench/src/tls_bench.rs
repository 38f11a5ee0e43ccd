//! `--tls` support: throwaway certificates (made with the openssl command
//! line: a CA and a localhost leaf with an ECDSA P-256 or an RSA 2048 key),
//! the client TLS settings that trust them, and `--tls-handshakes`
//! (full TLS + WebSocket handshakes per second, one at a time, per server
//! and key type).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ws::transport::tls::TlsClientConfig;

use crate::servers::{EchoServer, TLS_REGISTRY};

/// The key type of the server certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Ecdsa,
    Rsa,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Ecdsa => "ECDSA P-256",
            KeyType::Rsa => "RSA 2048",
        }
    }
}

pub struct Certs {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl").args(args).current_dir(dir).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(())
}

/// Makes (once per process) a CA and one localhost leaf per key type.
pub fn certs() -> io::Result<&'static Certs> {
    static C: OnceLock<Result<Certs, String>> = OnceLock::new();
    C.get_or_init(|| make().map_err(|e| e.to_string())).as_ref().map_err(|e| io::Error::other(e.clone()))
}

fn make() -> io::Result<Certs> {
    let dir = std::env::temp_dir().join(format!("libws-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bench CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    )?;
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")?;
    for (name, key) in [("ecdsa", &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..]), ("rsa", &["rsa:2048"][..])] {
        let mut args = vec!["req", "-newkey"];
        args.extend_from_slice(key);
        let (k, csr) = (format!("{name}.key"), format!("{name}.csr"));
        args.extend_from_slice(&["-nodes", "-subj", "/CN=localhost", "-keyout", &k, "-out", &csr]);
        openssl(&dir, &args)?;
        let pem = format!("{name}.pem");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                &pem,
            ],
        )?;
    }
    Ok(Certs { dir })
}

impl Certs {
    pub fn pair(&self, k: KeyType) -> (PathBuf, PathBuf) {
        let n = if k == KeyType::Ecdsa { "ecdsa" } else { "rsa" };
        (self.dir.join(format!("{n}.pem")), self.dir.join(format!("{n}.key")))
    }

    pub fn client(&self) -> io::Result<TlsClientConfig> {
        let mut c = TlsClientConfig::default();
        c.add_ca_file(&self.dir.join("ca.pem")).map_err(|e| io::Error::other(e.to_string()))?;
        Ok(c)
    }
}

static CURRENT: Mutex<KeyType> = Mutex::new(KeyType::Ecdsa);

/// The certificate and key servers started from now on use.
pub fn use_key(k: KeyType) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = k;
}

/// For servers: the current certificate and key files.
pub fn server_pair() -> io::Result<(PathBuf, PathBuf)> {
    let k = *CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    Ok(certs()?.pair(k))
}

/// One full handshake: TCP, TLS, WebSocket upgrade, then a close.
fn handshake_once(addr: SocketAddr, tls: &TlsClientConfig) -> io::Result<()> {
    let lane_conn = crate::client::TlsWsClient { conns: 1, tls: tls.clone() };
    let c = crate::client::BenchClient::connect(&lane_conn, addr)?;
    c.close()
}

/// `--tls-handshakes`: handshakes per second for each TLS server with each
/// key type, `seconds` per measurement, one handshake at a time.
pub fn run_handshakes(servers: &[String], seconds: f64) -> io::Result<()> {
    let certs = certs()?;
    let tls = certs.client()?;
    println!(
        "# full handshakes (TCP + TLS 1.3 + WebSocket upgrade + close) per second, one at a time, {seconds} s each"
    );
    println!("{:<24} {:<12} {:>12}", "server", "key", "handshakes/s");
    for k in [KeyType::Ecdsa, KeyType::Rsa] {
        use_key(k);
        for name in servers {
            let (_, start) = TLS_REGISTRY.iter().find(|(n, _)| n == name).expect("checked");
            let srv: Box<dyn EchoServer> = start()?;
            if srv.protocol() != crate::servers::Protocol::WebSocket {
                srv.stop();
                continue;
            }
            let addr = srv.addr();
            for _ in 0..20 {
                handshake_once(addr, &tls)?;
            }
            let t0 = Instant::now();
            let until = t0 + Duration::from_secs_f64(seconds);
            let mut n = 0u64;
            while Instant::now() < until {
                handshake_once(addr, &tls)?;
                n += 1;
            }
            let rate = n as f64 / t0.elapsed().as_secs_f64();
            println!("{:<24} {:<12} {:>12.0}", name, k.name(), rate);
            srv.stop();
        }
    }
    Ok(())
}
