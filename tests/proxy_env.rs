//! Proxies from the environment with the default Dialer: http_proxy for
//! ws://, https_proxy for wss://, all_proxy as the fallback, no_proxy
//! exceptions, and an explicit "direct" that ignores them all. Every case
//! runs a blocking dial and an event-loop dial, which must agree. One test
//! in its own binary, because it changes the process environment.

mod support {
    #[path = "../support/pki.rs"]
    pub mod pki;
    #[path = "../support/proxies.rs"]
    pub mod proxies;
    #[path = "../support/python.rs"]
    pub mod python;
}

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use support::pki::Pki;
use support::proxies;
use ws::api::event_loop::{ConnHandle, EventLoop, Handler, LoopRemote};
use ws::api::http::Response;
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

type Outcome = Result<(), (ErrorKind, String)>;

/// The event loop the loop dials run on (a thread for the whole binary).
fn event_loop() -> &'static LoopRemote {
    static REMOTE: OnceLock<LoopRemote> = OnceLock::new();
    REMOTE.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut el = EventLoop::new().unwrap();
            tx.send(el.remote()).unwrap();
            el.run().unwrap();
        });
        rx.recv().unwrap()
    })
}

/// Sends "env" on open and reports whether it came back.
struct LoopProbe(Mutex<mpsc::Sender<Outcome>>);

impl Handler for LoopProbe {
    fn on_open(&self, conn: &ConnHandle) {
        conn.send(MessageType::Text, b"env").unwrap();
    }
    fn on_message(&self, conn: &ConnHandle, _kind: MessageType, data: &[u8]) {
        assert_eq!(data, b"env");
        let _ = self.0.lock().unwrap().send(Ok(()));
        let _ = conn.close(1000, b"");
    }
    fn on_dial_error(&self, _user: usize, err: &ws::Error, _response: Option<&Response>) {
        let _ = self.0.lock().unwrap().send(Err((err.kind(), err.message().to_string())));
    }
}

fn loop_dial(d: &Dialer, url: &str) -> Outcome {
    let (tx, rx) = mpsc::channel();
    if let Err(e) = event_loop().dial(url, d, &[], Arc::new(LoopProbe(Mutex::new(tx))), 0) {
        return Err((e.kind(), e.message().to_string()));
    }
    rx.recv_timeout(Duration::from_secs(20)).expect("the loop dial ends")
}

/// Dials `url` with `proxy` (the environment by default), blocking and on
/// the event loop; the server behind `url` echoes. Both must end alike:
/// Ok, or the same error kind (the blocking dial's message is returned).
fn dial(url: &str, proxy: ProxyChoice) -> Outcome {
    let mut tls = TlsClientConfig::default();
    tls.add_ca_file(&Pki::get().ca()).unwrap();
    let d = Dialer { tls, proxy, handshake_timeout: Some(Duration::from_secs(10)), ..Dialer::default() };
    let blocking = match d.dial(url, &[]) {
        Ok((c, _)) => {
            c.write_message(MessageType::Text, b"env").unwrap();
            assert_eq!(c.read_message().unwrap().data(), b"env");
            c.close_graceful(1000, b"", Duration::from_secs(5)).unwrap();
            Ok(())
        }
        Err(e) => Err((e.error.kind(), e.error.message().to_string())),
    };
    let on_loop = loop_dial(&d, url);
    assert_eq!(
        blocking.as_ref().map_err(|e| e.0),
        on_loop.as_ref().map_err(|e| e.0),
        "blocking and loop dials of {url} differ: {blocking:?} / {on_loop:?}"
    );
    blocking
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
