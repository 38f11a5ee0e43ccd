//! Proxies from the environment with the default Dialer: http_proxy for
//! ws://, https_proxy for wss://, all_proxy as the fallback, no_proxy
//! exceptions, and an explicit "direct" that ignores them all. One test in
//! its own binary, because it changes the process environment.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/proxies.rs"]
    pub mod proxies;
    #[path = "../support/python.rs"]
    pub mod python;
}

use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::proxies;
use ws::api::{Dialer, Listener, MessageType, Upgrader};
use ws::transport::proxy::ProxyChoice;
use ws::transport::tls::{TlsClientConfig, TlsServerConfig};
use ws::ErrorKind;

const VARS: [&str; 8] =
    ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

fn set_env(pairs: &[(&str, String)]) {
    for v in VARS {
        std::env::remove_var(v);
    }
    for (k, v) in pairs {
        std::env::set_var(k, v);
    }
}

/// Dials `url` with the default proxy choice (the environment); the server
/// behind `url` echoes. Ok, or the error kind and message.
fn dial(url: &str, proxy: ProxyChoice) -> Result<(), (ErrorKind, String)> {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    let d = Dialer { tls, proxy, handshake_timeout: Some(Duration::from_secs(10)), ..Dialer::default() };
    match d.dial(url, &[]) {
        Ok((c, _)) => {
            c.write_message(MessageType::Text, b"env").unwrap();
            assert_eq!(c.read_message().unwrap().data(), b"env");
            c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
            Ok(())
        }
        Err(e) => Err((e.error.kind(), e.error.message().to_string())),
    }
}

fn server(tls: bool) -> (u16, thread::JoinHandle<()>) {
    let mut up = Upgrader::default();
    if tls {
        let l = Pki::get().leaf("server-ec");
        up.tls = Some(TlsServerConfig::from_files(&l.cert, &l.key).unwrap());
    }
    let l = Listener::bind("127.0.0.1:0", &up).unwrap();
    let port = l.local_addr().port();
    let h = thread::spawn(move || {
        while let Ok(c) = l.accept(Some(Instant::now() + Duration::from_secs(20))) {
            thread::spawn(move || {
                while let Ok(m) = c.read_message() {
                    let (k, d) = (m.kind(), m.data().to_vec());
                    drop(m);
                    if c.write_message(k, &d).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, h)
}

#[test]
fn proxies_from_the_environment() {
    let Some(locked) = proxies::tinyproxy(Some(("u", "pw")), &[]) else { return };
    let Some(socks) = proxies::microsocks(None) else { return };
    let (ws_port, _a) = server(false);
    let (wss_port, _b) = server(true);
    let ws_url = format!("ws://127.0.0.1:{ws_port}/");
    let wss_url = format!("wss://localhost:{wss_port}/");
    let refusing = format!("http://127.0.0.1:{}", locked.port);
    let good = format!("http://u:pw@127.0.0.1:{}", locked.port);
    let env = ProxyChoice::Environment;

    // Nothing set: direct.
    set_env(&[]);
    dial(&ws_url, env.clone()).unwrap();

    // http_proxy is used for ws:// (the refusal proves it), not for wss://.
    set_env(&[("http_proxy", refusing.clone())]);
    let (kind, msg) = dial(&ws_url, env.clone()).unwrap_err();
    assert_eq!(kind, ErrorKind::ProxyRefused, "{msg}");
    dial(&wss_url, env.clone()).unwrap();
    // The upper-case name too.
    set_env(&[("HTTP_PROXY", refusing.clone())]);
    assert_eq!(dial(&ws_url, env.clone()).unwrap_err().0, ErrorKind::ProxyRefused);

    // https_proxy for wss://, with credentials: through the proxy.
    set_env(&[("https_proxy", good.clone()), ("http_proxy", refusing.clone())]);
    dial(&wss_url, env.clone()).unwrap();
    set_env(&[("HTTPS_PROXY", refusing.clone())]);
    assert_eq!(dial(&wss_url, env.clone()).unwrap_err().0, ErrorKind::ProxyRefused);

    // all_proxy is the fallback for both (a SOCKS5h proxy here).
    set_env(&[("ALL_PROXY", format!("socks5h://127.0.0.1:{}", socks.port))]);
    dial(&ws_url, env.clone()).unwrap();
    dial(&wss_url, env.clone()).unwrap();
    set_env(&[("all_proxy", refusing.clone())]);
    assert_eq!(dial(&ws_url, env.clone()).unwrap_err().0, ErrorKind::ProxyRefused);

    // no_proxy: an IP, a CIDR range, a name with a port, `*`; a list that
    // does not match leaves the proxy in place.
    // Entries match the URL's host as written (no resolving).
    let ip_forms =
        ["127.0.0.1".to_string(), "127.0.0.0/8".into(), format!("example.com, 127.0.0.1:{ws_port}"), "*".into()];
    for exempt in ip_forms {
        set_env(&[("http_proxy", refusing.clone()), ("no_proxy", exempt.clone())]);
        dial(&ws_url, env.clone()).unwrap_or_else(|e| panic!("no_proxy={exempt}: {e:?}"));
    }
    let name_forms = ["localhost".to_string(), ".localhost".into(), format!("localhost:{wss_port}"), "*".into()];
    for exempt in name_forms {
        set_env(&[("https_proxy", refusing.clone()), ("NO_PROXY", exempt.clone())]);
        dial(&wss_url, env.clone()).unwrap_or_else(|e| panic!("NO_PROXY={exempt}: {e:?}"));
    }
    set_env(&[("https_proxy", refusing.clone()), ("no_proxy", "127.0.0.1".into())]);
    assert_eq!(
        dial(&wss_url, env.clone()).unwrap_err().0,
        ErrorKind::ProxyRefused,
        "localhost is not 127.0.0.1 by name"
    );
    set_env(&[("http_proxy", refusing.clone()), ("NO_PROXY", "10.0.0.0/8,example.com,127.0.0.1:1".into())]);
    assert_eq!(dial(&ws_url, env.clone()).unwrap_err().0, ErrorKind::ProxyRefused);

    // An explicit choice ignores the environment.
    dial(&ws_url, ProxyChoice::Direct).unwrap();
    // A bad proxy URL in the environment fails the dial, naming the URL problem.
    set_env(&[("http_proxy", "gopher://x".into())]);
    assert_eq!(dial(&ws_url, env).unwrap_err().0, ErrorKind::BadUrl);
    set_env(&[]);
}
