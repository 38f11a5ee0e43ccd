//! Header helpers shared by the client and the server side.

/// Optional whitespace (RFC 7230 OWS): space and horizontal tab.
fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strips leading and trailing OWS (space / tab).
pub(crate) fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = v {
        if is_ows(*first) {
            v = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = v {
        if is_ows(*last) {
            v = rest;
        } else {
            break;
        }
    }
    v
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// True when `s` is a non-empty RFC 7230 token (`1*tchar`).
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// True when the comma-separated header value contains `token`, compared
/// ASCII case-insensitively, ignoring optional whitespace around elements
/// (e.g. `Connection: keep-alive, Upgrade` contains `upgrade`).
pub fn header_has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|elem| trim_ows(elem).eq_ignore_ascii_case(token.as_bytes()))
}

/// The elements of a comma-separated header value, OWS-trimmed, in order.
/// Empty elements and elements that are not valid UTF-8 are skipped.
pub fn split_tokens(value: &[u8]) -> impl Iterator<Item = &str> + '_ {
    value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty()).filter_map(|e| std::str::from_utf8(e).ok())
}

/// Checks a caller-supplied extra header: the name must be an RFC 7230
/// token and the value must not contain CR, LF or NUL.
pub fn validate_header(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("websocket: invalid header name {name:?}"));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(format!("websocket: invalid value for header {name:?}: must not contain CR, LF or NUL"));
    }
    Ok(())
}

/// Headers the client side writes itself and that a caller may therefore
/// not pass as extra headers: `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
/// `Sec-WebSocket-Version`, `Sec-WebSocket-Extensions` and `Host`
/// (case-insensitive).
pub fn is_reserved_client_header(name: &str) -> bool {
    const RESERVED: [&str; 6] =
        ["Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions", "Host"];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// True for `Sec-WebSocket-Protocol` (case-insensitive).
pub fn is_subprotocol_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("Sec-WebSocket-Protocol")
}

/// Header fields in the order received. Names keep their original case;
/// look-ups are ASCII case-insensitive. Values are raw bytes (HTTP allows
/// obs-text), with surrounding whitespace already removed by the parser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, Vec<u8>)>);

impl HeaderList {
    /// An empty list.
    pub fn new() -> Self {
        HeaderList(Vec::new())
    }

    /// Appends a field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.0.push((name.into(), value.into()));
    }

    /// The value of the first field called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// [`get`](Self::get) as UTF-8; `None` when absent or not UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every field called `name` (case-insensitive), in order.
    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> GetAll<'a, 'n> {
        GetAll { inner: self.0.iter(), name }
    }

    /// True when at least one field called `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// True when any field called `name` contains `token` in its
    /// comma-separated value (see [`header_has_token`]).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name).any(|v| header_has_token(v, token))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every field as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// Builds a list from httparse's parsed headers (stops at the first
    /// empty slot).
    pub(crate) fn from_httparse(headers: &[httparse::Header<'_>]) -> Self {
        HeaderList(
            headers
                .iter()
                .take_while(|h| !h.name.is_empty())
                .map(|h| (h.name.to_owned(), trim_ows(h.value).to_vec()))
                .collect(),
        )
    }
}

/// Iterator returned by [`HeaderList::get_all`]: the values of every field
/// with a given name. The values borrow the list, not the name.
#[derive(Debug, Clone)]
pub struct GetAll<'a, 'n> {
    inner: std::slice::Iter<'a, (String, Vec<u8>)>,
    name: &'n str,
}

impl<'a> Iterator for GetAll<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let name = self.name;
        self.inner.find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }
}

/// Appends `name: value\r\n` for each extra header. Fields whose name is not
/// a token are skipped; CR, LF and NUL in values are replaced by spaces (as
/// Go's net/http does), so the output is always a well-formed head.
pub(crate) fn write_extra_headers(out: &mut Vec<u8>, extra: &[(String, String)]) {
    for (name, value) in extra {
        if !is_token(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend(value.bytes().map(|b| if matches!(b, b'\r' | b'\n' | 0) { b' ' } else { b }));
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_list() {
        assert!(header_has_token(b"Upgrade", "upgrade"));
        assert!(header_has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(header_has_token(b"keep-alive,Upgrade", "upgrade"));
        assert!(header_has_token(b"  UPGRADE \t", "upgrade"));
        assert!(header_has_token(b"\tkeep-alive ,\tuPgRaDe\t, close", "Upgrade"));
        assert!(header_has_token(b"websocket", "WebSocket"));
        assert!(!header_has_token(b"keep-alive", "upgrade"));
        assert!(!header_has_token(b"upgrades", "upgrade"));
        assert!(!header_has_token(b"up grade", "upgrade"));
        assert!(!header_has_token(b"", "upgrade"));
        assert!(!header_has_token(b"upgrade-websocket", "upgrade"));
        // non-UTF-8 elsewhere in the list does not hide the token
        assert!(header_has_token(b"\xff\xfe, upgrade", "upgrade"));
    }

    #[test]
    fn splitting() {
        let v: Vec<&str> = split_tokens(b" chat , superchat,,\t v2.json ,").collect();
        assert_eq!(v, ["chat", "superchat", "v2.json"]);
        let v: Vec<&str> = split_tokens(b"a,\xff\xfe,b").collect();
        assert_eq!(v, ["a", "b"]);
        assert_eq!(split_tokens(b"").count(), 0);
        assert_eq!(split_tokens(b" , ,").count(), 0);
        // case is preserved
        let v: Vec<&str> = split_tokens(b"Chat").collect();
        assert_eq!(v, ["Chat"]);
    }

    #[test]
    fn header_validation() {
        assert!(validate_header("X-Custom", "hello world").is_ok());
        assert!(validate_header("Authorization", "").is_ok());
        assert!(validate_header("x!#$%&'*+-.^_`|~9", "v").is_ok());
        assert!(validate_header("", "v").is_err());
        assert!(validate_header("Bad Name", "v").is_err());
        assert!(validate_header("Bad:Name", "v").is_err());
        assert!(validate_header("Bad\r\nName", "v").is_err());
        assert!(validate_header("Caf\u{e9}", "v").is_err());
        assert!(validate_header("X", "a\r\nInjected: yes").is_err());
        assert!(validate_header("X", "a\nb").is_err());
        assert!(validate_header("X", "a\rb").is_err());
        assert!(validate_header("X", "a\0b").is_err());
    }

    #[test]
    fn reserved_names() {
        for n in
            ["Upgrade", "connection", "SEC-WEBSOCKET-KEY", "Sec-Websocket-Version", "sec-websocket-extensions", "host"]
        {
            assert!(is_reserved_client_header(n), "{n}");
        }
        for n in ["Sec-WebSocket-Protocol", "Origin", "Cookie", "Hostname", ""] {
            assert!(!is_reserved_client_header(n), "{n}");
        }
        assert!(is_subprotocol_header("sec-websocket-protocol"));
        assert!(is_subprotocol_header("Sec-WebSocket-Protocol"));
        assert!(!is_subprotocol_header("Sec-WebSocket-Protocols"));
    }

    #[test]
    fn header_list() {
        let mut h = HeaderList::new();
        assert!(h.is_empty());
        h.push("Host", "example.com");
        h.push("Sec-WebSocket-Protocol", "a, b");
        h.push("sec-websocket-protocol", "c");
        h.push("Raw", vec![0xffu8]);
        assert_eq!(h.len(), 4);
        assert_eq!(h.get("HOST"), Some(&b"example.com"[..]));
        assert_eq!(h.get_str("host"), Some("example.com"));
        assert_eq!(h.get_str("raw"), None);
        assert_eq!(h.get("Missing"), None);
        let all: Vec<&[u8]> = h.get_all("SEC-WEBSOCKET-PROTOCOL").collect();
        assert_eq!(all, [&b"a, b"[..], &b"c"[..]]);
        assert!(h.has_token("sec-websocket-protocol", "C"));
        assert!(h.contains("raw"));
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "Sec-WebSocket-Protocol", "sec-websocket-protocol", "Raw"]);
    }

    #[test]
    fn extra_headers_are_sanitised() {
        let mut out = Vec::new();
        write_extra_headers(
            &mut out,
            &[("X-A".into(), "1".into()), ("Bad Name".into(), "2".into()), ("X-B".into(), "x\r\nEvil: 1".into())],
        );
        assert_eq!(out, b"X-A: 1\r\nX-B: x  Evil: 1\r\n");
    }
}
