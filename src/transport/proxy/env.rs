//! Proxies from the environment, as curl reads them.
//!
//! `ws://` uses `http_proxy`/`HTTP_PROXY`, `wss://` `https_proxy`/
//! `HTTPS_PROXY`, either falls back to `all_proxy`/`ALL_PROXY`; the
//! lower-case name wins when both are set. `no_proxy`/`NO_PROXY` lists
//! exceptions, comma- or space-separated: `*` (everything), a host name
//! (itself and its subdomains; a leading dot is allowed), an IP address, a
//! CIDR range (`10.0.0.0/8`, `fd00::/8`), each optionally with `:port`.

use std::net::IpAddr;

use super::url::ProxyUrl;
use crate::error::Result;

fn var(names: &[&str], get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    names.iter().find_map(|n| get(n).filter(|v| !v.trim().is_empty()))
}

/// The proxy for a connection to `host:port` (`secure` for `wss://`) from
/// the process environment; `None` = connect directly.
pub fn from_environment(host: &str, port: u16, secure: bool) -> Result<Option<ProxyUrl>> {
    from_vars(host, port, secure, &|n| std::env::var(n).ok())
}

/// As [`from_environment`], with the variables from `get` (for tests).
pub fn from_vars(
    host: &str,
    port: u16,
    secure: bool,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ProxyUrl>> {
    let scheme_vars: &[&str] = if secure { &["https_proxy", "HTTPS_PROXY"] } else { &["http_proxy", "HTTP_PROXY"] };
    let Some(url) = var(scheme_vars, get).or_else(|| var(&["all_proxy", "ALL_PROXY"], get)) else {
        return Ok(None);
    };
    if let Some(list) = var(&["no_proxy", "NO_PROXY"], get) {
        if no_proxy_matches(&list, host, port) {
            return Ok(None);
        }
    }
    ProxyUrl::parse(&url).map(Some)
}

/// Whether `NO_PROXY`-style `list` exempts `host:port`.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let (pattern, entry_port) = split_port(entry);
        if entry_port.is_some_and(|p| p != port) {
            return false;
        }
        let pattern = pattern.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if let Some((net, bits)) = pattern.split_once('/') {
            return match (net.parse::<IpAddr>(), bits.parse::<u8>(), host_ip) {
                (Ok(net), Ok(bits), Some(ip)) => in_cidr(ip, net, bits),
                _ => false,
            };
        }
        if let Ok(ip) = pattern.parse::<IpAddr>() {
            return host_ip == Some(ip);
        }
        let suffix = pattern.trim_start_matches("*.").trim_start_matches('.').trim_end_matches('.');
        !suffix.is_empty() && (host == suffix || host.ends_with(&format!(".{suffix}")))
    })
}

/// "host:port" → ("host", Some(port)); a bare IPv6 address has no port
/// unless it is in brackets.
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((addr, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (addr, port);
        }
    }
    match entry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
    }

    #[test]
    fn scheme_variables_and_fallback() {
        let e = env(&[("HTTP_PROXY", "http://h:1"), ("https_proxy", "http://s:2"), ("ALL_PROXY", "socks5h://a:3")]);
        assert_eq!(from_vars("x", 80, false, &e).unwrap().unwrap().host, "h");
        assert_eq!(from_vars("x", 443, true, &e).unwrap().unwrap().host, "s");
        let e = env(&[("ALL_PROXY", "socks5h://a:3")]);
        assert_eq!(from_vars("x", 443, true, &e).unwrap().unwrap().host, "a");
        let e = env(&[("http_proxy", "http://lower:1"), ("HTTP_PROXY", "http://upper:1")]);
        assert_eq!(from_vars("x", 80, false, &e).unwrap().unwrap().host, "lower");
        assert_eq!(from_vars("x", 80, false, &env(&[])).unwrap(), None);
        assert!(from_vars("x", 80, false, &env(&[("http_proxy", "gopher://p")])).is_err());
    }

    #[test]
    fn no_proxy_forms() {
        let l = "localhost, .internal.example,corp.example:8443, 10.0.0.0/8,192.168.1.5, [::1], fd00::/8";
        assert!(no_proxy_matches(l, "localhost", 80));
        assert!(no_proxy_matches(l, "a.b.internal.example", 80));
        assert!(no_proxy_matches(l, "internal.example", 80));
        assert!(!no_proxy_matches(l, "notinternal.example", 80));
        assert!(no_proxy_matches(l, "corp.example", 8443));
        assert!(no_proxy_matches(l, "www.corp.example", 8443));
        assert!(!no_proxy_matches(l, "corp.example", 443));
        assert!(no_proxy_matches(l, "10.200.3.4", 80));
        assert!(!no_proxy_matches(l, "11.0.0.1", 80));
        assert!(no_proxy_matches(l, "192.168.1.5", 80));
        assert!(!no_proxy_matches(l, "192.168.1.6", 80));
        assert!(no_proxy_matches(l, "[::1]", 80));
        assert!(no_proxy_matches(l, "fd12::1", 80));
        assert!(no_proxy_matches("*", "anything", 1));
        assert!(no_proxy_matches("EXAMPLE.com", "www.Example.COM.", 1));
        let e = env(&[("http_proxy", "http://p:1"), ("no_proxy", "example.com")]);
        assert_eq!(from_vars("ws.example.com", 80, false, &e).unwrap(), None);
        assert!(from_vars("example.org", 80, false, &e).unwrap().is_some());
    }
}
