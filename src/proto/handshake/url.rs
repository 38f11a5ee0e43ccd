//! `ws://` / `wss://` URL parsing for the client (RFC 6455 section 3).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// A WebSocket URL split into what the client needs to connect and to write
/// its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss` (TLS) rather than `ws`.
    pub secure: bool,
    /// Host to connect to: a lowercase (punycode) domain, an IPv4 address,
    /// or an IPv6 address without brackets.
    pub host: String,
    /// Port to connect to (80 / 443 by default).
    pub port: u16,
    /// Value for the `Host` header: host, IPv6 in brackets, plus `:port`
    /// unless the port is the scheme's default.
    pub host_header: String,
    /// Request-target: path (at least `/`) plus `?query` if the URL has one.
    pub target: String,
    /// `Basic base64(user:password)` when the URL has a non-empty user name
    /// (as gorilla does, user and password are percent-decoded first); send
    /// it as the `Authorization` header.
    pub basic_auth: Option<String>,
}

/// Parses a WebSocket URL.
///
/// * Schemes `ws` and `wss` only (case-insensitive); `http`/`https` and
///   anything else are rejected, as in gorilla.
/// * Default ports 80 (`ws`) and 443 (`wss`); an explicit default port is
///   dropped from `host_header`.
/// * A fragment (even an empty `#`) is an error: RFC 6455 forbids it.
/// * Userinfo becomes [`WsUrl::basic_auth`] when the user name is
///   non-empty; a password with an empty user name is ignored (gorilla).
/// * A missing or empty host is an error.
pub fn parse_ws_url(s: &str) -> Result<WsUrl, String> {
    let u = ::url::Url::parse(s).map_err(|e| format!("websocket: malformed URL {s:?}: {e}"))?;
    let secure = match u.scheme() {
        "ws" => false,
        "wss" => true,
        other => {
            return Err(format!("websocket: malformed ws or wss URL: unsupported scheme '{other}' (use ws or wss)"))
        }
    };
    if u.fragment().is_some() {
        return Err(format!("websocket: malformed ws or wss URL: fragment not allowed in {s:?}"));
    }
    let host = match u.host() {
        Some(::url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(::url::Host::Ipv4(a)) => a.to_string(),
        Some(::url::Host::Ipv6(a)) => a.to_string(),
        _ => return Err(format!("websocket: malformed ws or wss URL: missing host in {s:?}")),
    };
    let default_port = if secure { 443 } else { 80 };
    let port = u.port().unwrap_or(default_port);
    let bracketed = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let host_header = if port == default_port { bracketed } else { format!("{bracketed}:{port}") };
    let mut target = u.path().to_owned();
    if target.is_empty() {
        target.push('/');
    }
    if let Some(q) = u.query() {
        target.push('?');
        target.push_str(q);
    }
    let basic_auth = if u.username().is_empty() {
        None
    } else {
        let mut creds = percent_decode(u.username());
        creds.push(b':');
        creds.extend(percent_decode(u.password().unwrap_or("")));
        Some(format!("Basic {}", STANDARD.encode(creds)))
    };
    Ok(WsUrl { secure, host, port, host_header, target, basic_auth })
}

/// Decodes `%XX` escapes; malformed escapes are kept as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> WsUrl {
        parse_ws_url(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn default_ports() {
        let u = ok("ws://example.com");
        assert!(!u.secure);
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str(), u.target.as_str()),
            ("example.com", 80, "example.com", "/")
        );
        assert_eq!(u.basic_auth, None);
        let u = ok("wss://example.com/");
        assert!(u.secure);
        assert_eq!((u.port, u.host_header.as_str()), (443, "example.com"));
        // explicit default port is dropped from Host
        assert_eq!(ok("ws://example.com:80/").host_header, "example.com");
        assert_eq!(ok("wss://example.com:443").host_header, "example.com");
        // non-default ports are kept
        let u = ok("ws://example.com:443/");
        assert_eq!((u.port, u.host_header.as_str()), (443, "example.com:443"));
        let u = ok("wss://example.com:8443/");
        assert_eq!((u.port, u.host_header.as_str()), (8443, "example.com:8443"));
    }

    /// Internationalized host names are mapped to their ASCII (punycode)
    /// form as browsers do (UTS 46 through `url`'s IDNA backend): this
    /// needs a Unicode backend, so pinning `idna_adapter` to its ASCII-only
    /// 1.0 stub to save 130 KB (README, "Size of the installed library")
    /// fails here.
    #[test]
    fn internationalized_host() {
        let u = ok("wss://bücher.example/ü");
        assert_eq!((u.host.as_str(), u.host_header.as_str()), ("xn--bcher-kva.example", "xn--bcher-kva.example"));
        assert_eq!(u.target, "/%C3%BC");
        assert_eq!(ok("ws://xn--bcher-kva.example/").host, "xn--bcher-kva.example");
        assert!(parse_ws_url("ws://xn--a.example/").is_err(), "invalid punycode is refused");
    }

    #[test]
    fn scheme_and_host_case() {
        let u = ok("WSS://EXAMPLE.com:9000/Path");
        assert!(u.secure);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.host_header, "example.com:9000");
        assert_eq!(u.target, "/Path");
    }

    #[test]
    fn ip_hosts() {
        let u = ok("ws://[::1]:9001/x");
        assert_eq!((u.host.as_str(), u.port, u.host_header.as_str()), ("::1", 9001, "[::1]:9001"));
        let u = ok("wss://[2001:DB8::1]");
        assert_eq!((u.host.as_str(), u.port, u.host_header.as_str()), ("2001:db8::1", 443, "[2001:db8::1]"));
        let u = ok("ws://127.0.0.1:8080");
        assert_eq!((u.host.as_str(), u.port, u.host_header.as_str()), ("127.0.0.1", 8080, "127.0.0.1:8080"));
    }

    #[test]
    fn path_and_query() {
        assert_eq!(ok("ws://h/a/b?x=1&y=2").target, "/a/b?x=1&y=2");
        assert_eq!(ok("ws://h?x=1").target, "/?x=1");
        assert_eq!(ok("ws://h/a%20b").target, "/a%20b");
        assert_eq!(ok("ws://h/a b").target, "/a%20b");
    }

    #[test]
    fn userinfo_becomes_basic_auth() {
        let u = ok("ws://user:pass@example.com/");
        assert_eq!(u.basic_auth.as_deref(), Some("Basic dXNlcjpwYXNz"));
        assert_eq!(u.host_header, "example.com");
        // user only
        assert_eq!(ok("ws://user@h").basic_auth.as_deref(), Some("Basic dXNlcjo="));
        // percent-decoded: "us er:p@ss"
        assert_eq!(
            ok("ws://us%20er:p%40ss@h").basic_auth.as_deref(),
            Some(format!("Basic {}", STANDARD.encode("us er:p@ss")).as_str())
        );
        // empty user name: ignored
        assert_eq!(ok("ws://:pass@h").basic_auth, None);
    }

    #[test]
    fn rejections() {
        for s in ["http://example.com", "https://example.com", "ftp://example.com", "example.com", "/path", ""] {
            assert!(parse_ws_url(s).is_err(), "{s}");
        }
        assert!(parse_ws_url("http://h").unwrap_err().contains("scheme"));
        for s in ["ws://h/#frag", "ws://h/p?q#", "wss://h#x"] {
            assert!(parse_ws_url(s).unwrap_err().contains("fragment"), "{s}");
        }
        for s in ["ws://", "ws:///", "wss://:443/", "ws://user@/"] {
            assert!(parse_ws_url(s).is_err(), "{s}");
        }
        assert!(parse_ws_url("ws://h:99999/").is_err());
        assert!(parse_ws_url("ws://[::1/").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%41%4a%4Ab"), b"aAJJb");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
        assert_eq!(percent_decode("%41"), b"A");
    }
}
