//! Proxy URLs: `http://[user:pass@]host[:port]`, `https://`, `socks5://`,
//! `socks5h://`. A bare `host:port` means `http://` (as curl).

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP CONNECT over plain TCP.
    Http,
    /// HTTP CONNECT over TLS to the proxy.
    Https,
    /// SOCKS5, names resolved by the client.
    Socks5,
    /// SOCKS5, names resolved by the proxy.
    Socks5h,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    /// From the URL's userinfo, percent-decoded.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for ProxyUrl {
    // The password never goes into logs or error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Https => "https",
            ProxyKind::Socks5 => "socks5",
            ProxyKind::Socks5h => "socks5h",
        };
        let user = match &self.user {
            Some(u) => format!("{u}:***@"),
            None => String::new(),
        };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "{scheme}://{user}{host}:{}", self.port)
    }
}

impl ProxyUrl {
    pub fn parse(s: &str) -> Result<ProxyUrl> {
        let bad = |why: &str| Error::new(ErrorKind::BadUrl, format!("bad proxy URL: {why}"));
        let s = s.trim();
        let with_scheme = if s.contains("://") { s.to_string() } else { format!("http://{s}") };
        let u = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let (kind, default_port) = match u.scheme() {
            "http" => (ProxyKind::Http, 80),
            "https" => {
                // TLS to the proxy: a build without TLS refuses the URL when it is set or read.
                crate::transport::tls::require("https:// proxies")?;
                (ProxyKind::Https, 443)
            }
            "socks5" => (ProxyKind::Socks5, 1080),
            "socks5h" => (ProxyKind::Socks5h, 1080),
            other => return Err(bad(&format!("scheme {other:?} (http, https, socks5, socks5h)"))),
        };
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("no host")),
        };
        if !(u.path().is_empty() || u.path() == "/") || u.query().is_some() {
            return Err(bad("a proxy URL has no path or query"));
        }
        let decode = |p: &str| percent_decode(p).ok_or_else(|| bad("bad percent-encoding in the user info"));
        let user = if u.username().is_empty() { None } else { Some(decode(u.username())?) };
        let password = match u.password() {
            Some(p) => Some(decode(p)?),
            None => None,
        };
        Ok(ProxyUrl { kind, host, port: u.port().unwrap_or(default_port), user, password })
    }

    /// `user:password` for Basic or SOCKS5 authentication.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.user.as_deref().map(|u| (u, self.password.as_deref().unwrap_or("")))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_with_defaults_and_credentials() {
        let p = ProxyUrl::parse("http://u%40x:p%3Aw@proxy.example:3128").unwrap();
        assert_eq!((p.kind, p.host.as_str(), p.port), (ProxyKind::Http, "proxy.example", 3128));
        assert_eq!(p.credentials(), Some(("u@x", "p:w")));
        assert_eq!(format!("{p}"), "http://u@x:***@proxy.example:3128");
        assert_eq!(ProxyUrl::parse("socks5h://[::1]:9050").unwrap().host, "::1");
        assert_eq!(ProxyUrl::parse("socks5://p").unwrap().port, 1080);
        assert_eq!(ProxyUrl::parse("10.1.2.3:8080").unwrap().kind, ProxyKind::Http);
        assert!(ProxyUrl::parse("ftp://p").is_err());
        assert!(ProxyUrl::parse("http://p/path").is_err());
    }

    /// With TLS an `https://` proxy is one more kind; without, its URL is
    /// refused with the reason, so neither a setter nor the environment
    /// can choose it.
    #[test]
    fn https_proxies_exactly_when_tls_is_built() {
        let parsed = ProxyUrl::parse("https://p");
        if crate::transport::tls::ENABLED {
            let p = parsed.unwrap();
            assert_eq!((p.kind, p.port), (ProxyKind::Https, 443));
        } else {
            let e = parsed.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unsupported);
            assert!(e.message().contains("built without TLS"), "{}", e.message());
        }
    }
}
