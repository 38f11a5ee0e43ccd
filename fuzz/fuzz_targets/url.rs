//! The client's URL parser: any string either fails or gives a URL whose
//! parts are consistent (non-empty host, a target starting with '/', a
//! Host header naming host and port) and that parses again to itself from
//! its own parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::proto::handshake::parse_ws_url;

fuzz_target!(|input: &[u8]| {
    let Ok(s) = std::str::from_utf8(input) else { return };
    let Ok(u) = parse_ws_url(s) else { return };
    assert!(!u.host.is_empty(), "{s:?}: empty host");
    assert!(u.target.starts_with('/'), "{s:?}: target {:?}", u.target);
    assert!(!u.target.contains('#'), "{s:?}: fragment in the target");
    assert!(!u.host_header.bytes().any(|b| b.is_ascii_control() || b == b' '), "{s:?}: Host {:?}", u.host_header);
    assert!(!u.target.bytes().any(|b| b.is_ascii_control() || b == b' '), "{s:?}: target {:?}", u.target);
    let default_port = if u.secure { 443 } else { 80 };
    // The port is in the Host header exactly when it is not the default.
    let names_port = u.host_header.ends_with(&format!(":{}", u.port));
    assert_eq!(names_port, u.port != default_port, "{s:?}: Host {:?} vs port {}", u.host_header, u.port);
    let again = format!("{}://{}{}", if u.secure { "wss" } else { "ws" }, u.host_header, u.target);
    let v = parse_ws_url(&again).unwrap_or_else(|e| panic!("{s:?} -> {again:?} does not parse: {e}"));
    assert_eq!(
        (&v.host, v.port, &v.host_header, &v.target, v.secure),
        (&u.host, u.port, &u.host_header, &u.target, u.secure),
        "{s:?} -> {again:?}"
    );
});
