//! Negotiating permessage-deflate (RFC 7692 section 7.1).
//!
//! Window sizes: a decompressor accepts every window a peer may use, but a
//! pooled one keeps only the peer's agreed window of bytes between
//! messages, so the server asks the client for the window it is set to
//! (`client_max_window_bits` in the response whenever the client offered
//! the parameter). zlib cannot compress raw deflate with an 8-bit window;
//! when 8 is agreed for our direction we accept it and send every message
//! uncompressed (allowed: RSV1 is per message).

use crate::proto::handshake::headers::split_tokens;

pub const EXTENSION: &str = "permessage-deflate";

/// zlib's default memLevel.
pub const DEFAULT_MEM_LEVEL: u8 = 8;
/// The default windows, both directions: Python `websockets`'s choice, and
/// ours from measurement (README, "Compression"): with context takeover a
/// 12-bit window keeps 88-100 % of the 15-bit ratio on JSON-like messages
/// of 16 KiB and less, at 4 KiB per direction per idle connection.
pub const DEFAULT_WINDOW_BITS: u8 = 12;

/// Where compression state lives, and so what an idle compressing
/// connection costs (table in README, "Compression").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeflateMemory {
    /// zlib states come from a per-thread pool for the duration of a
    /// message. With context takeover a connection keeps only the last
    /// 2^window_bits bytes of each direction and primes the pooled state
    /// with them before the next message (a preset dictionary). A server
    /// also asks for `client_no_context_takeover` when the client cannot be
    /// held to `client_max_window_bits` (it did not offer the parameter).
    #[default]
    Pooled,
    /// Each connection keeps its own zlib states once used (fastest with
    /// context takeover; ~180-410 KiB per connection, see README).
    Dedicated,
    /// No context takeover in either direction (asked of the peer), every
    /// state pooled: no compression memory per connection at all. A
    /// server's compressor is effectively one per thread.
    Shared,
}

/// What a Dialer offers or an Upgrader accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Server: always reset its compressor between messages. Client: ask
    /// the server to.
    pub server_no_context_takeover: bool,
    /// Server: ask the client to reset between messages. Client: reset ours.
    pub client_no_context_takeover: bool,
    /// Largest window (8-15) the server may compress with.
    pub server_max_window_bits: u8,
    /// Largest window (8-15) the client may compress with.
    pub client_max_window_bits: u8,
    /// Our compressor's memLevel, 1-9 (zlib's; sizes its symbol buffer).
    pub mem_level: u8,
    /// Where our compression state lives.
    pub memory: DeflateMemory,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: DEFAULT_WINDOW_BITS,
            client_max_window_bits: DEFAULT_WINDOW_BITS,
            mem_level: DEFAULT_MEM_LEVEL,
            memory: DeflateMemory::Pooled,
        }
    }
}

impl DeflateOptions {
    /// 15-bit windows and context takeover with dedicated state: the
    /// best ratio and speed, at the most memory per connection.
    pub fn full_window() -> Self {
        DeflateOptions {
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            memory: DeflateMemory::Dedicated,
            ..DeflateOptions::default()
        }
    }

    /// The shared-compressor mode (see [`DeflateMemory::Shared`]).
    pub fn shared() -> Self {
        DeflateOptions {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            memory: DeflateMemory::Shared,
            ..DeflateOptions::default()
        }
    }

    pub fn validate(&self) -> Result<(), &'static str> {
        if !(8..=15).contains(&self.server_max_window_bits) || !(8..=15).contains(&self.client_max_window_bits) {
            return Err("window bits must be 8 to 15");
        }
        if !(1..=9).contains(&self.mem_level) {
            return Err("memory level must be 1 to 9");
        }
        Ok(())
    }

    /// The options as negotiated: shared memory means no context takeover
    /// either way.
    fn effective(&self) -> DeflateOptions {
        let mut o = *self;
        if o.memory == DeflateMemory::Shared {
            o.server_no_context_takeover = true;
            o.client_no_context_takeover = true;
        }
        o
    }
}

/// The agreed parameters, seen from one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The window our compressor may use; `None` = we never compress (8 bits agreed).
    pub our_window_bits: Option<u8>,
    /// Reset our compressor after each message.
    pub our_no_context_takeover: bool,
    /// The peer resets its compressor after each message, so our inflater
    /// keeps nothing between messages.
    pub peer_no_context_takeover: bool,
    /// The window the peer compresses with (15 when not limited).
    pub peer_window_bits: u8,
    /// Our settings for the codec (not negotiated): memLevel and memory mode.
    pub mem_level: u8,
    pub memory: DeflateMemory,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (client offers only).
    client_max_window_bits: Option<Option<u8>>,
}

/// One `name[=value]` extension parameter.
type Param = (String, Option<String>);
/// An extension: its name and parameters.
type Extension = (String, Vec<Param>);

/// Splits an extension header value into extensions, each a name and its
/// `name[=value]` parameters. Values may be quoted (RFC 7692 allows the
/// quoted-string form of the token).
fn extensions(value: &[u8]) -> Vec<Extension> {
    let mut out = Vec::new();
    for ext in split_tokens(value) {
        let mut parts = ext.split(';').map(str::trim);
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
                None => (p.to_ascii_lowercase(), None),
            })
            .collect();
        out.push((name, params));
    }
    out
}

fn window_bits(v: &str) -> Result<u8, String> {
    // RFC 7692: 1*DIGIT without leading zeros, 8 to 15.
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid window bits {v:?}"));
    }
    match v.parse::<u8>() {
        Ok(n) if (8..=15).contains(&n) => Ok(n),
        _ => Err(format!("window bits {v} out of range 8-15")),
    }
}

/// Parses one permessage-deflate parameter list; unknown or duplicated
/// parameters and bad values make the whole offer (or response) invalid.
fn parse_params(list: &[Param], is_offer: bool) -> Result<Params, String> {
    let mut p = Params::default();
    let mut seen = Vec::new();
    for (k, v) in list {
        if seen.contains(&k.as_str()) {
            return Err(format!("duplicate parameter {k}"));
        }
        seen.push(k.as_str());
        match (k.as_str(), v) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = Some(window_bits(v)?),
            ("client_max_window_bits", Some(v)) => p.client_max_window_bits = Some(Some(window_bits(v)?)),
            ("client_max_window_bits", None) if is_offer => p.client_max_window_bits = Some(None),
            _ => {
                return Err(format!("invalid parameter {k}{}", v.as_ref().map(|v| format!("={v}")).unwrap_or_default()))
            }
        }
    }
    Ok(p)
}

/// Server side: picks the first acceptable permessage-deflate offer among
/// the client's `Sec-WebSocket-Extensions` values. Returns the agreement and
/// the response header value, or `None` when no offer is acceptable (the
/// connection then goes on without compression).
pub fn server_accept<'a>(
    offers: impl IntoIterator<Item = &'a [u8]>,
    opts: &DeflateOptions,
) -> Option<(Agreement, String)> {
    let opts = &opts.effective();
    for value in offers {
        for (name, list) in extensions(value) {
            if name != EXTENSION {
                continue;
            }
            let Ok(offer) = parse_params(&list, true) else { continue };
            let mut resp = String::from(EXTENSION);
            let snct = offer.server_no_context_takeover || opts.server_no_context_takeover;
            if snct {
                resp.push_str("; server_no_context_takeover");
            }
            // A pooled decompressor keeps the client's window between
            // messages; a client that cannot be held to ours (it did not
            // offer client_max_window_bits) is asked to reset instead.
            let unbounded_client = offer.client_max_window_bits.is_none()
                && opts.client_max_window_bits < 15
                && opts.memory == DeflateMemory::Pooled;
            let cnct = offer.client_no_context_takeover || opts.client_no_context_takeover || unbounded_client;
            if cnct {
                resp.push_str("; client_no_context_takeover");
            }
            // Our (the server's) window: the smaller of the client's limit
            // and ours; stated in the response whenever it is below 15.
            let bits = offer.server_max_window_bits.unwrap_or(15).min(opts.server_max_window_bits);
            if bits < 15 {
                resp.push_str(&format!("; server_max_window_bits={bits}"));
            }
            // The client's window: only if the client said it supports the
            // parameter (RFC 7692 7.1.2.2), at most what it offered; always
            // stated then, so both sides know the window we keep.
            let peer_bits = match offer.client_max_window_bits {
                Some(offered) => {
                    let bits = offered.unwrap_or(15).min(opts.client_max_window_bits);
                    resp.push_str(&format!("; client_max_window_bits={bits}"));
                    bits
                }
                None => 15,
            };
            let agreement = Agreement {
                our_window_bits: (bits > 8).then_some(bits),
                our_no_context_takeover: snct,
                peer_no_context_takeover: cnct,
                peer_window_bits: peer_bits,
                mem_level: opts.mem_level,
                memory: opts.memory,
            };
            return Some((agreement, resp));
        }
    }
    None
}

/// Client side: the `Sec-WebSocket-Extensions` value to offer.
pub fn client_offer(opts: &DeflateOptions) -> String {
    let opts = &opts.effective();
    let mut s = String::from(EXTENSION);
    if opts.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if opts.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if opts.server_max_window_bits < 15 {
        s.push_str(&format!("; server_max_window_bits={}", opts.server_max_window_bits));
    }
    if opts.client_max_window_bits < 15 {
        s.push_str(&format!("; client_max_window_bits={}", opts.client_max_window_bits));
    } else {
        s.push_str("; client_max_window_bits");
    }
    s
}

/// Client side: checks the server's `Sec-WebSocket-Extensions` answer to
/// `client_offer(opts)`. `Ok(None)`: the server declined compression.
pub fn client_accept<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    opts: &DeflateOptions,
) -> Result<Option<Agreement>, String> {
    let opts = &opts.effective();
    let mut exts = Vec::new();
    for v in values {
        exts.extend(extensions(v));
    }
    match exts.len() {
        0 => return Ok(None),
        1 => {}
        _ => return Err("the server answered with more than one extension".into()),
    }
    let (name, list) = &exts[0];
    if name != EXTENSION {
        return Err(format!("the server answered with extension {name:?}, which was not offered"));
    }
    let p = parse_params(list, false).map_err(|e| format!("bad permessage-deflate response: {e}"))?;
    if opts.server_no_context_takeover && !p.server_no_context_takeover {
        return Err("the server did not accept server_no_context_takeover".into());
    }
    if let Some(b) = p.server_max_window_bits {
        if b > opts.server_max_window_bits {
            return Err(format!("server_max_window_bits={b} is more than the {} offered", opts.server_max_window_bits));
        }
    } else if opts.server_max_window_bits < 15 {
        return Err("the server did not accept server_max_window_bits".into());
    }
    // client_max_window_bits bounds our own compressor. A server that
    // answers with more than we offered (RFC 7692 7.1.2.2 forbids it, but
    // Autobahn's 13.4/13.6 servers answer 15 to any offer) still decodes
    // the smaller window we compress with, so we keep ours rather than
    // fail the dial: nothing the server can then receive is out of range.
    let ours = match p.client_max_window_bits {
        Some(Some(b)) => b.min(opts.client_max_window_bits),
        _ => opts.client_max_window_bits,
    };
    Ok(Some(Agreement {
        our_window_bits: (ours > 8).then_some(ours),
        our_no_context_takeover: p.client_no_context_takeover || opts.client_no_context_takeover,
        peer_no_context_takeover: p.server_no_context_takeover,
        peer_window_bits: p.server_max_window_bits.unwrap_or(15),
        mem_level: opts.mem_level,
        memory: opts.memory,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(offer: &str, opts: &DeflateOptions) -> Option<(Agreement, String)> {
        server_accept([offer.as_bytes()], opts)
    }

    fn agreement(ours: Option<u8>, our_nct: bool, peer_nct: bool, peer_bits: u8, o: &DeflateOptions) -> Agreement {
        Agreement {
            our_window_bits: ours,
            our_no_context_takeover: our_nct,
            peer_no_context_takeover: peer_nct,
            peer_window_bits: peer_bits,
            mem_level: o.mem_level,
            memory: o.memory,
        }
    }

    #[test]
    fn server_picks_the_first_acceptable_offer() {
        let o = DeflateOptions::full_window();
        let (a, r) = accept("permessage-deflate; client_max_window_bits", &o).unwrap();
        assert_eq!(r, "permessage-deflate; client_max_window_bits=15");
        assert_eq!(a, agreement(Some(15), false, false, 15, &o));
        // First offer invalid (unknown param), second fine.
        let (_, r) = accept("permessage-deflate; foo, permessage-deflate; server_no_context_takeover", &o).unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover");
        // Other extensions are skipped.
        let (_, r) = accept("x-webkit-deflate-frame, permessage-deflate", &o).unwrap();
        assert_eq!(r, "permessage-deflate");
        // Several header lines.
        let got = server_accept([&b"foo"[..], &b"permessage-deflate; server_max_window_bits=10"[..]], &o).unwrap();
        assert_eq!(got.1, "permessage-deflate; server_max_window_bits=10");
        assert_eq!(got.0.our_window_bits, Some(10));
    }

    #[test]
    fn server_declines_invalid_offers() {
        let o = DeflateOptions::default();
        for bad in [
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; unknown",
            "deflate-frame",
        ] {
            assert!(accept(bad, &o).is_none(), "{bad}");
        }
    }

    #[test]
    fn server_default_asks_for_its_windows() {
        // The default: 12-bit windows both ways, pooled state.
        let o = DeflateOptions::default();
        let (a, r) = accept("permessage-deflate; client_max_window_bits", &o).unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
        assert_eq!(a, agreement(Some(12), false, false, 12, &o));
        // The client offered less than ours: its own value, stated.
        let (a, r) = accept("permessage-deflate; client_max_window_bits=10", &o).unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10");
        assert_eq!(a.peer_window_bits, 10);
        // A client that cannot be held to a window is asked to reset
        // instead (a pooled inflater would otherwise keep 32 KiB).
        let (a, r) = accept("permessage-deflate", &o).unwrap();
        assert_eq!(r, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
        assert!(a.peer_no_context_takeover);
        // ... but not with dedicated state (its inflater has 32 KiB anyway).
        let d = DeflateOptions { memory: DeflateMemory::Dedicated, ..o };
        assert_eq!(accept("permessage-deflate", &d).unwrap().1, "permessage-deflate; server_max_window_bits=12");
        // Shared: no context takeover either way, whatever was offered.
        let s = DeflateOptions::shared();
        let (a, r) = accept("permessage-deflate; client_max_window_bits", &s).unwrap();
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=12"
        );
        assert!(a.our_no_context_takeover && a.peer_no_context_takeover && a.memory == DeflateMemory::Shared);
        let mem_only = DeflateOptions { memory: DeflateMemory::Shared, ..DeflateOptions::full_window() };
        assert_eq!(
            accept("permessage-deflate", &mem_only).unwrap().1,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        // Memory levels are validated.
        assert!(DeflateOptions { mem_level: 0, ..o }.validate().is_err());
        assert!(DeflateOptions { mem_level: 10, ..o }.validate().is_err());
        assert!(DeflateOptions { mem_level: 1, ..o }.validate().is_ok());
    }

    #[test]
    fn server_options_and_window_bits() {
        let o = DeflateOptions {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateOptions::full_window()
        };
        let (a, r) = accept("permessage-deflate", &o).unwrap();
        assert_eq!(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        assert!(a.our_no_context_takeover && a.peer_no_context_takeover);
        // The client limits our window to 8: accepted, but we never compress.
        let full = DeflateOptions::full_window();
        let (a, r) = accept("permessage-deflate; server_max_window_bits=8", &full).unwrap();
        assert_eq!(r, "permessage-deflate; server_max_window_bits=8");
        assert_eq!(a.our_window_bits, None);
        // We ask for a client window only when the client allows it.
        let o = DeflateOptions { client_max_window_bits: 10, ..full };
        assert_eq!(
            accept("permessage-deflate; client_max_window_bits", &o).unwrap().1,
            "permessage-deflate; client_max_window_bits=10"
        );
        assert_eq!(
            accept("permessage-deflate; client_max_window_bits=9", &o).unwrap().1,
            "permessage-deflate; client_max_window_bits=9"
        );
        assert_eq!(accept("permessage-deflate", &o).unwrap().1, "permessage-deflate");
        // Quoted values are allowed.
        assert_eq!(
            accept("permessage-deflate; server_max_window_bits=\"12\"", &full).unwrap().0.our_window_bits,
            Some(12)
        );
    }

    #[test]
    fn client_offer_and_response_rules() {
        assert_eq!(
            client_offer(&DeflateOptions::default()),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        );
        assert_eq!(
            client_offer(&DeflateOptions::shared()),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=12"
        );
        let o = DeflateOptions::full_window();
        assert_eq!(client_offer(&o), "permessage-deflate; client_max_window_bits");
        let ok = |r: &str| client_accept([r.as_bytes()], &o);
        assert_eq!(ok("").unwrap(), None);
        let a = ok("permessage-deflate; server_no_context_takeover; client_max_window_bits=12").unwrap().unwrap();
        assert_eq!(a, agreement(Some(12), false, true, 15, &o));
        let a = ok("permessage-deflate; server_max_window_bits=11").unwrap().unwrap();
        assert_eq!(a, agreement(Some(15), false, false, 11, &o));
        assert_eq!(ok("permessage-deflate; client_max_window_bits=8").unwrap().unwrap().our_window_bits, None);
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate, permessage-deflate",
            "x-other",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        let strict = DeflateOptions {
            server_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..DeflateOptions::full_window()
        };
        assert_eq!(
            client_offer(&strict),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
        );
        let s = |r: &str| client_accept([r.as_bytes()], &strict);
        assert!(s("permessage-deflate; server_max_window_bits=10").is_err(), "snct not accepted");
        assert!(s("permessage-deflate; server_no_context_takeover").is_err(), "window not accepted");
        assert!(s("permessage-deflate; server_no_context_takeover; server_max_window_bits=11").is_err());
        // More than offered for our own window: we keep compressing with
        // the 9 bits we offered (Autobahn's 13.4/13.6 servers answer 15).
        let a =
            s("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10")
                .unwrap()
                .unwrap();
        assert_eq!(a.our_window_bits, Some(9));
        let a = s("permessage-deflate; server_no_context_takeover; server_max_window_bits=9").unwrap().unwrap();
        assert_eq!(a.our_window_bits, Some(9));
    }
}
