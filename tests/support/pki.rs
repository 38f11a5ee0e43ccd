//! Throwaway certificates for the TLS tests, made with the openssl command
//! line once per test process: a CA, leaves for localhost/127.0.0.1 with
//! ECDSA and RSA keys, an expired leaf, a leaf for another name, a leaf
//! from a CA nobody trusts, and a client certificate.

#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Pki {
    pub dir: PathBuf,
}

/// A leaf certificate and its key, as files and PEM text.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Leaf {
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).unwrap()
    }
    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).unwrap()
    }
    /// The leaf's DER bytes (what a peer-certificate query returns).
    pub fn der(&self) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&self.cert)
            .output()
            .expect("openssl runs");
        assert!(out.status.success());
        out.stdout
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for the TLS tests (apt-get install openssl): {e}"));
    assert!(out.status.success(), "openssl {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// The openssl command line, installed with apt when missing and running
/// as root (a fresh minimal Debian has no `openssl` binary).
fn ensure_openssl() {
    let present = || Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if present() {
        return;
    }
    let root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    if root {
        for args in
            [&["install", "-y", "--no-install-recommends", "openssl"][..], &["update"], &["install", "-y", "openssl"]]
        {
            let _ = Command::new("timeout")
                .arg("600")
                .arg("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .status();
            if present() {
                return;
            }
        }
    }
    panic!("the TLS tests need the openssl command line (apt-get install openssl); root: {root}");
}

const CA_CONF: &str = "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial\n\
default_md = sha256\npolicy = p\ncopy_extensions = none\nunique_subject = no\n[p]\ncommonName = supplied\n";

impl Pki {
    pub fn get() -> &'static Pki {
        static P: OnceLock<Pki> = OnceLock::new();
        P.get_or_init(Pki::make)
    }

    fn make() -> Pki {
        ensure_openssl();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        // Directories of test processes that are gone are removed.
        if let Ok(entries) = std::fs::read_dir(&target) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(pid) = name.strip_prefix("tls-pki-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let dir = target.join(format!("tls-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki { dir: dir.clone() };
        pki.make_ca("ca", "libws test CA");
        pki.make_ca("rogue-ca", "untrusted CA");
        let local = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
        pki.make_leaf("ca", "server-ec", "ec", "localhost", local, None);
        pki.make_leaf("ca", "server-ec2", "ec", "localhost", local, None);
        pki.make_leaf("ca", "server-rsa", "rsa", "localhost", local, None);
        pki.make_leaf("ca", "expired", "ec", "localhost", local, Some(("20200101000000Z", "20200201000000Z")));
        pki.make_leaf("ca", "wrong-name", "ec", "other.example", "subjectAltName=DNS:other.example\n", None);
        pki.make_leaf("rogue-ca", "untrusted", "ec", "localhost", local, None);
        pki.make_leaf("ca", "client", "ec", "test client", "extendedKeyUsage=clientAuth\n", None);
        pki
    }

    fn make_ca(&self, name: &str, cn: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "30",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }

    fn make_leaf(&self, ca: &str, name: &str, alg: &str, cn: &str, ext: &str, dates: Option<(&str, &str)>) {
        let keyopt: &[&str] = if alg == "rsa" { &["rsa:2048"] } else { &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"] };
        let mut req = vec!["req", "-newkey"];
        req.extend_from_slice(keyopt);
        let subj = format!("/CN={cn}");
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        req.extend_from_slice(&["-nodes", "-subj", &subj, "-keyout", &key, "-out", &csr]);
        openssl(&self.dir, &req);
        std::fs::write(self.dir.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{ext}")).unwrap();
        let db = format!("{ca}-db");
        let dbdir = self.dir.join(&db);
        std::fs::create_dir_all(&dbdir).unwrap();
        if !dbdir.join("index.txt").exists() {
            std::fs::write(dbdir.join("index.txt"), "").unwrap();
            std::fs::write(dbdir.join("serial"), "1000\n").unwrap();
            std::fs::write(dbdir.join("ca.cnf"), CA_CONF).unwrap();
        }
        let (cacert, cakey, out, extf) =
            (format!("../{ca}.pem"), format!("../{ca}.key"), format!("../{name}.pem"), format!("../{name}.ext"));
        let csr_path = format!("../{csr}");
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", "ca.cnf", "-cert", &cacert, "-keyfile", &cakey, "-in", &csr_path,
            "-out", &out, "-extfile", &extf,
        ];
        match dates {
            Some((start, end)) => args.extend_from_slice(&["-startdate", start, "-enddate", end]),
            None => args.extend_from_slice(&["-days", "30"]),
        }
        openssl(&dbdir, &args);
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn rogue_ca(&self) -> PathBuf {
        self.dir.join("rogue-ca.pem")
    }

    pub fn leaf(&self, name: &str) -> Leaf {
        Leaf { cert: self.dir.join(format!("{name}.pem")), key: self.dir.join(format!("{name}.key")) }
    }
}
