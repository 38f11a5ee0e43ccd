//! Client side: write the opening handshake request and parse and validate
//! the server's response (RFC 6455 sections 4.1 and 4.2.2).

use super::accept::accept_key;
use super::headers::{
    is_reserved_client_header, is_subprotocol_header, is_token, split_tokens, trim_ows, validate_header,
    write_extra_headers, HeaderList,
};
use super::{MAX_HEADERS, MAX_HEAD_LEN};

const BAD: &str = "websocket: bad handshake: ";

/// Rejects empty values and values with control characters, spaces or
/// non-ASCII bytes (used for the request line and `Host`).
fn check_visible(what: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("websocket: invalid {what} {v:?}"));
    }
    Ok(())
}

/// Appends the client's opening handshake request:
///
/// ```text
/// GET <target> HTTP/1.1
/// Host: <host_header>
/// Upgrade: websocket
/// Connection: Upgrade
/// Sec-WebSocket-Key: <key>
/// Sec-WebSocket-Version: 13
/// [Sec-WebSocket-Protocol: a, b]      (when subprotocols is non-empty)
/// <extra headers>
/// ```
///
/// followed by a blank line. Errors (nothing is appended to `out` then):
/// a subprotocol that is not an RFC 7230 token; an extra header failing
/// [`validate_header`]; an extra header that the library writes itself
/// ([`is_reserved_client_header`]: `Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-Key`, `Sec-WebSocket-Version`, `Sec-WebSocket-Extensions`);
/// an extra `Sec-WebSocket-Protocol` while `subprotocols` is non-empty;
/// a `host_header`, `target` or `key` that is empty or contains whitespace
/// or control characters.
///
/// An extra `Sec-WebSocket-Protocol` is allowed when `subprotocols` is empty
/// (as in gorilla); see [`offered_subprotocols`] for what to pass to
/// [`validate_response`] then.
pub fn write_request(
    out: &mut Vec<u8>,
    host_header: &str,
    target: &str,
    key: &str,
    subprotocols: &[String],
    extra: &[(String, String)],
) -> Result<(), String> {
    write_request_with_extensions(out, host_header, target, key, subprotocols, None, extra)
}

/// [`write_request`] plus a `Sec-WebSocket-Extensions` offer written by
/// the library (e.g. permessage-deflate).
pub fn write_request_with_extensions(
    out: &mut Vec<u8>,
    host_header: &str,
    target: &str,
    key: &str,
    subprotocols: &[String],
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Result<(), String> {
    check_visible("Host", host_header)?;
    check_visible("request target", target)?;
    check_visible("Sec-WebSocket-Key", key)?;
    for p in subprotocols {
        if !is_token(p) {
            return Err(format!("websocket: invalid subprotocol name {p:?}: must be an HTTP token"));
        }
    }
    for (name, value) in extra {
        validate_header(name, value)?;
        if is_reserved_client_header(name) || (is_subprotocol_header(name) && !subprotocols.is_empty()) {
            return Err(format!("websocket: duplicate header not allowed: {name}"));
        }
    }

    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host_header.as_bytes());
    out.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
    if !subprotocols.is_empty() {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(subprotocols.join(", ").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(ext) = extensions {
        validate_header("Sec-WebSocket-Extensions", ext)?;
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(ext.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    write_extra_headers(out, extra);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The subprotocols a request written by [`write_request`] with these
/// arguments offers: `subprotocols` when non-empty, otherwise the
/// comma-split values of any `Sec-WebSocket-Protocol` in `extra`. Pass the
/// result to [`validate_response`].
pub fn offered_subprotocols(subprotocols: &[String], extra: &[(String, String)]) -> Vec<String> {
    if !subprotocols.is_empty() {
        return subprotocols.to_vec();
    }
    extra
        .iter()
        .filter(|(n, _)| is_subprotocol_header(n))
        .flat_map(|(_, v)| split_tokens(v.as_bytes()))
        .map(str::to_owned)
        .collect()
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, e.g. 101.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: String,
    /// Header fields, in order.
    pub headers: HeaderList,
}

impl Response {
    /// Parses a response head from the start of `buf`.
    ///
    /// * `Ok(None)`: incomplete head; read more and call again.
    /// * `Ok(Some((resp, head_len)))`: `head_len` counts the bytes up to and
    ///   including the blank line; bytes after it are WebSocket frames the
    ///   caller must keep.
    /// * `Err`: malformed, longer than [`MAX_HEAD_LEN`], or more than
    ///   [`MAX_HEADERS`] header fields.
    pub fn parse(buf: &[u8]) -> Result<Option<(Response, usize)>, String> {
        let window = &buf[..buf.len().min(MAX_HEAD_LEN)];
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        match resp.parse(window) {
            Ok(httparse::Status::Complete(head_len)) => {
                let response = Response {
                    status: resp.code.unwrap_or_default(),
                    reason: resp.reason.unwrap_or_default().to_owned(),
                    headers: HeaderList::from_httparse(resp.headers),
                };
                Ok(Some((response, head_len)))
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() >= MAX_HEAD_LEN {
                    Err(format!("{BAD}response head larger than {MAX_HEAD_LEN} bytes"))
                } else {
                    Ok(None)
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                Err(format!("{BAD}response has more than {MAX_HEADERS} header fields"))
            }
            Err(e) => Err(format!("{BAD}malformed HTTP response: {e}")),
        }
    }
}

/// Checks the server's handshake response against the request that was sent
/// with `key` and `offered_subprotocols`, and returns the negotiated
/// subprotocol. Checks, in order:
///
/// 1. status is 101;
/// 2. `Upgrade` contains the token `websocket`;
/// 3. `Connection` contains the token `upgrade`;
/// 4. `Sec-WebSocket-Accept` equals [`accept_key`]`(key)`;
/// 5. `Sec-WebSocket-Protocol`, if present, is one field holding a single
///    value that was offered (exact match); an empty value is an error;
/// 6. no `Sec-WebSocket-Extensions` (no extension is offered yet).
///
/// Errors read `websocket: bad handshake: ...`.
pub fn validate_response(
    resp: &Response,
    key: &str,
    offered_subprotocols: &[String],
) -> Result<Option<String>, String> {
    let subprotocol = validate_response_except_extensions(resp, key, offered_subprotocols)?;
    // Extension seam: this request offered no extension, so any
    // Sec-WebSocket-Extensions in the answer is a protocol error (RFC 6455
    // 4.1, item 5 of the client's checks). When permessage-deflate lands, the
    // client calls validate_response_except_extensions and then negotiates
    // the extensions it offered instead of calling this function.
    if let Some(v) = resp.headers.get("Sec-WebSocket-Extensions") {
        return Err(format!(
            "{BAD}server sent 'Sec-WebSocket-Extensions: {}' but no extension was offered",
            String::from_utf8_lossy(v)
        ));
    }
    Ok(subprotocol)
}

/// Checks 1 to 5 of [`validate_response`], leaving
/// `Sec-WebSocket-Extensions` to the caller (the seam for extension
/// negotiation such as permessage-deflate).
pub fn validate_response_except_extensions(
    resp: &Response,
    key: &str,
    offered_subprotocols: &[String],
) -> Result<Option<String>, String> {
    if resp.status != 101 {
        return Err(format!("{BAD}unexpected HTTP status {} {}", resp.status, resp.reason));
    }
    if !resp.headers.has_token("Upgrade", "websocket") {
        return Err(format!("{BAD}'websocket' token not found in 'Upgrade' header"));
    }
    if !resp.headers.has_token("Connection", "upgrade") {
        return Err(format!("{BAD}'upgrade' token not found in 'Connection' header"));
    }
    match resp.headers.get("Sec-WebSocket-Accept") {
        None => return Err(format!("{BAD}missing 'Sec-WebSocket-Accept' header")),
        Some(v) if trim_ows(v) != accept_key(key.as_bytes()).as_bytes() => {
            return Err(format!("{BAD}mismatched 'Sec-WebSocket-Accept' header"))
        }
        Some(_) => {}
    }
    let mut protos = resp.headers.get_all("Sec-WebSocket-Protocol");
    match (protos.next(), protos.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(format!("{BAD}more than one 'Sec-WebSocket-Protocol' header")),
        (Some(v), None) => {
            let v = trim_ows(v);
            let Ok(v) = std::str::from_utf8(v) else {
                return Err(format!("{BAD}'Sec-WebSocket-Protocol' is not valid UTF-8"));
            };
            if v.is_empty() {
                return Err(format!("{BAD}empty 'Sec-WebSocket-Protocol' header"));
            }
            if v.contains(',') {
                return Err(format!("{BAD}server selected more than one subprotocol: '{v}'"));
            }
            if !offered_subprotocols.iter().any(|p| p == v) {
                return Err(format!("{BAD}server selected subprotocol '{v}' that was not offered"));
            }
            Ok(Some(v.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const GOOD: &str = "HTTP/1.1 101 Switching Protocols\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
        \r\n";

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn parse_ok(s: &str) -> Response {
        let (r, n) = Response::parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(n, s.len());
        r
    }

    fn good_with(name: &str, value: Option<&str>) -> Response {
        let mut r = parse_ok(GOOD);
        r.headers.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            r.headers.push(name, v);
        }
        r
    }

    #[test]
    fn request_bytes() {
        let mut out = b"x".to_vec();
        write_request(&mut out, "example.com:8080", "/chat?a=1", KEY, &[], &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "xGET /chat?a=1 HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut out = Vec::new();
        write_request(
            &mut out,
            "h",
            "/",
            KEY,
            &strs(&["chat", "v2.json"]),
            &[("Origin".into(), "http://h".into()), ("Cookie".into(), "a=b".into())],
        )
        .unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.ends_with(
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, v2.json\r\nOrigin: http://h\r\nCookie: a=b\r\n\r\n"
        ));
        // The request is parseable by the server side.
        let (req, n) = super::super::request::Request::parse(s.as_bytes()).unwrap().unwrap();
        assert_eq!(n, s.len());
        assert_eq!(super::super::request::validate_request(&req).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(super::super::request::requested_subprotocols(&req), ["chat", "v2.json"]);
    }

    #[test]
    fn request_rejects_bad_input() {
        let mut out = Vec::new();
        let w = |out: &mut Vec<u8>, p: &[String], e: &[(String, String)]| write_request(out, "h", "/", KEY, p, e);
        for name in
            ["Host", "upgrade", "Connection", "Sec-WebSocket-Key", "sec-websocket-version", "Sec-WebSocket-Extensions"]
        {
            let e = w(&mut out, &[], &[(name.into(), "x".into())]).unwrap_err();
            assert!(e.contains("duplicate header not allowed"), "{e}");
        }
        // Sec-WebSocket-Protocol clashes only when subprotocols are set.
        let sp = [("Sec-WebSocket-Protocol".to_owned(), "chat".to_owned())];
        assert!(w(&mut out, &strs(&["chat"]), &sp).is_err());
        assert!(out.is_empty(), "nothing written on error");
        w(&mut out, &[], &sp).unwrap();
        assert!(String::from_utf8_lossy(&out).contains("\r\nSec-WebSocket-Protocol: chat\r\n"));
        out.clear();
        // Bad extra headers.
        assert!(w(&mut out, &[], &[("Bad Name".into(), "x".into())]).is_err());
        assert!(w(&mut out, &[], &[("X".into(), "a\r\nEvil: 1".into())]).is_err());
        // Bad subprotocol names.
        for p in ["", "two words", "a,b", "caf\u{e9}", "x\r\n"] {
            assert!(w(&mut out, &strs(&[p]), &[]).is_err(), "{p:?}");
        }
        // Bad request line / Host / key.
        assert!(write_request(&mut out, "", "/", KEY, &[], &[]).is_err());
        assert!(write_request(&mut out, "h\r\nX: y", "/", KEY, &[], &[]).is_err());
        assert!(write_request(&mut out, "h", "/a b", KEY, &[], &[]).is_err());
        assert!(write_request(&mut out, "h", "", KEY, &[], &[]).is_err());
        assert!(write_request(&mut out, "h", "/", "", &[], &[]).is_err());
        assert!(out.is_empty());
    }

    #[test]
    fn offered_list() {
        assert_eq!(offered_subprotocols(&strs(&["a"]), &[]), ["a"]);
        let extra = [("X".to_owned(), "1".to_owned()), ("sec-websocket-protocol".to_owned(), " b , c".to_owned())];
        assert_eq!(offered_subprotocols(&[], &extra), ["b", "c"]);
        assert!(offered_subprotocols(&[], &[]).is_empty());
    }

    #[test]
    fn parse_response() {
        let r = parse_ok(GOOD);
        assert_eq!(r.status, 101);
        assert_eq!(r.reason, "Switching Protocols");
        assert_eq!(r.headers.len(), 3);
        for cut in [0, 5, GOOD.len() - 1] {
            assert_eq!(Response::parse(&GOOD.as_bytes()[..cut]).unwrap(), None);
        }
        // trailing frame bytes are not consumed
        let mut buf = GOOD.as_bytes().to_vec();
        buf.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        let (_, n) = Response::parse(&buf).unwrap().unwrap();
        assert_eq!(n, GOOD.len());
        assert_eq!(&buf[n..], &[0x81, 0x02, b'h', b'i']);
        // malformed
        assert!(Response::parse(b"HTTP/1.1 abc OK\r\n\r\n").is_err());
        assert!(Response::parse(b"garbage garbage\r\n\r\n").is_err());
    }

    #[test]
    fn parse_response_limits() {
        let mut big = b"HTTP/1.1 101 Switching Protocols\r\nX-Big: ".to_vec();
        big.resize(MAX_HEAD_LEN - 1, b'a');
        assert_eq!(Response::parse(&big).unwrap(), None);
        big.push(b'a');
        assert!(Response::parse(&big).unwrap_err().contains("larger than"));

        let mut s = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for i in 0..=MAX_HEADERS {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert!(Response::parse(s.as_bytes()).unwrap_err().contains("more than"));
    }

    #[test]
    fn good_response_validates() {
        assert_eq!(validate_response(&parse_ok(GOOD), KEY, &[]).unwrap(), None);
        let s = "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
                 sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(validate_response(&parse_ok(s), KEY, &[]).unwrap(), None);
    }

    #[test]
    fn wrong_status() {
        let r = parse_ok(&GOOD.replacen("101 Switching Protocols", "200 OK", 1));
        let e = validate_response(&r, KEY, &[]).unwrap_err();
        assert_eq!(e, "websocket: bad handshake: unexpected HTTP status 200 OK");
        let r = parse_ok("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        assert!(validate_response(&r, KEY, &[]).unwrap_err().contains("403"));
    }

    #[test]
    fn missing_upgrade_or_connection() {
        let e = validate_response(&good_with("Upgrade", None), KEY, &[]).unwrap_err();
        assert!(e.starts_with(BAD) && e.contains("'Upgrade'"), "{e}");
        let e = validate_response(&good_with("Upgrade", Some("h2c")), KEY, &[]).unwrap_err();
        assert!(e.contains("'Upgrade'"), "{e}");
        let e = validate_response(&good_with("Connection", None), KEY, &[]).unwrap_err();
        assert!(e.contains("'Connection'"), "{e}");
        let e = validate_response(&good_with("Connection", Some("close")), KEY, &[]).unwrap_err();
        assert!(e.contains("'Connection'"), "{e}");
    }

    #[test]
    fn wrong_accept() {
        let e = validate_response(&parse_ok(GOOD), "AAAAAAAAAAAAAAAAAAAAAA==", &[]).unwrap_err();
        assert!(e.contains("mismatched 'Sec-WebSocket-Accept'"), "{e}");
        let r = good_with("Sec-WebSocket-Accept", Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo"));
        assert!(validate_response(&r, KEY, &[]).is_err());
        let r = good_with("Sec-WebSocket-Accept", None);
        assert!(validate_response(&r, KEY, &[]).unwrap_err().contains("missing"));
    }

    #[test]
    fn subprotocol_negotiation() {
        let offered = strs(&["chat", "superchat"]);
        let r = good_with("Sec-WebSocket-Protocol", Some("superchat"));
        assert_eq!(validate_response(&r, KEY, &offered).unwrap(), Some("superchat".into()));
        // none selected
        assert_eq!(validate_response(&parse_ok(GOOD), KEY, &offered).unwrap(), None);
        // not offered / case differs / nothing offered
        for (v, off) in [("other", &offered[..]), ("CHAT", &offered[..]), ("chat", &[][..])] {
            let r = good_with("Sec-WebSocket-Protocol", Some(v));
            let e = validate_response(&r, KEY, off).unwrap_err();
            assert!(e.contains("not offered"), "{e}");
        }
        // several values
        let r = good_with("Sec-WebSocket-Protocol", Some("chat, superchat"));
        assert!(validate_response(&r, KEY, &offered).unwrap_err().contains("more than one"));
        let mut r = good_with("Sec-WebSocket-Protocol", Some("chat"));
        r.headers.push("Sec-WebSocket-Protocol", "chat");
        assert!(validate_response(&r, KEY, &offered).is_err());
        // empty value
        let r = good_with("Sec-WebSocket-Protocol", Some(""));
        assert!(validate_response(&r, KEY, &offered).unwrap_err().contains("empty"));
    }

    #[test]
    fn extensions_rejected() {
        let r = good_with("Sec-WebSocket-Extensions", Some("permessage-deflate"));
        let e = validate_response(&r, KEY, &[]).unwrap_err();
        assert!(e.starts_with(BAD) && e.contains("permessage-deflate"), "{e}");
        // the seam lets an extension-aware caller do its own check
        assert_eq!(validate_response_except_extensions(&r, KEY, &[]).unwrap(), None);
    }
}
