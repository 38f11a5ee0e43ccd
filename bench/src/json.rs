//! Deterministic JSON-like text for the compression benchmarks.
//!
//! A document is an object with a 16-hex-digit `"seq"` stamp first (see
//! [`STAMP_AT`]) and an array of records like an API or game-state feed
//! would send: integer ids, user names and e-mail addresses, booleans,
//! floats, ISO timestamps, short tag arrays, a nested object, nested
//! arrays of numbers and a sentence of words. Every value comes from a
//! seeded xorshift generator, so a (size, seed) pair always gives the same
//! bytes and different seeds give different documents with the same
//! vocabulary. Documents are valid JSON, ASCII only, and exactly `size`
//! bytes long (padded with spaces before the closing brace).

use crate::client::Rng;

/// Byte offset of the 16 hex digits of the sequence stamp.
pub const STAMP_AT: usize = 8;
/// Length of the stamp.
pub const STAMP_LEN: usize = 16;
/// Smallest document [`document`] can build.
pub const MIN_SIZE: usize = 64;

const HEAD: &str = "{\"seq\":\"0000000000000000\",\"source\":\"libws-bench\",\"records\":[";
const TAIL: &str = "]}";

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "victor", "walter", "yusuf",
];
const WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "server",
    "player",
    "match",
    "score",
    "update",
    "level",
    "region",
    "inventory",
    "quest",
    "guild",
    "session",
    "latency",
    "frame",
    "event",
    "vector",
    "status",
    "pending",
    "active",
    "archived",
    "shipping",
    "invoice",
    "order",
    "payment",
    "refund",
    "review",
];
const TAGS: &[&str] = &["red", "green", "blue", "gold", "beta", "vip", "new", "eu", "us", "asia", "mobile", "pc"];
const STATES: &[&str] = &["online", "away", "busy", "offline", "in_game"];

fn pick<'a>(rng: &mut Rng, list: &[&'a str]) -> &'a str {
    list[(rng.next_u64() % list.len() as u64) as usize]
}

fn below(rng: &mut Rng, n: u64) -> u64 {
    rng.next_u64() % n
}

fn record(rng: &mut Rng, out: &mut String) {
    use std::fmt::Write as _;
    let id = 100_000 + below(rng, 900_000);
    let name = pick(rng, FIRST);
    let n = below(rng, 1000);
    let _ = write!(
        out,
        "{{\"id\":{id},\"user\":\"{name}_{n}\",\"email\":\"{name}.{n}@example.com\",\"active\":{},\
         \"state\":\"{}\",\"score\":{}.{:02},\"created\":\"2024-{:02}-{:02}T{:02}:{:02}:{:02}Z\",\"tags\":[",
        below(rng, 2) == 1,
        pick(rng, STATES),
        below(rng, 10_000),
        below(rng, 100),
        1 + below(rng, 12),
        1 + below(rng, 28),
        below(rng, 24),
        below(rng, 60),
        below(rng, 60),
    );
    for i in 0..1 + below(rng, 4) {
        let _ = write!(out, "{}\"{}\"", if i > 0 { "," } else { "" }, pick(rng, TAGS));
    }
    let _ = write!(
        out,
        "],\"pos\":{{\"x\":{}.{:03},\"y\":{}.{:03},\"zone\":{}}},\"history\":[",
        below(rng, 2000),
        below(rng, 1000),
        below(rng, 2000),
        below(rng, 1000),
        below(rng, 64)
    );
    for i in 0..below(rng, 4) {
        out.push_str(if i > 0 { ",[" } else { "[" });
        for j in 0..1 + below(rng, 5) {
            let _ = write!(out, "{}{}", if j > 0 { "," } else { "" }, below(rng, 5000));
        }
        out.push(']');
    }
    out.push_str("],\"note\":\"");
    for i in 0..3 + below(rng, 8) {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(pick(rng, WORDS));
    }
    out.push_str("\"}");
}

/// A document of exactly `size` bytes (`size >= MIN_SIZE`) from `seed`.
pub fn document(size: usize, seed: u64) -> Vec<u8> {
    assert!(size >= MIN_SIZE, "JSON documents need at least {MIN_SIZE} bytes");
    let mut rng = Rng::seeded(seed);
    let mut out = String::with_capacity(size + 512);
    out.push_str(HEAD);
    let mut rec = String::with_capacity(512);
    let mut first = true;
    loop {
        rec.clear();
        if !first {
            rec.push(',');
        }
        record(&mut rng, &mut rec);
        if out.len() + rec.len() + TAIL.len() > size {
            break;
        }
        out.push_str(&rec);
        first = false;
    }
    out.push(']');
    while out.len() + 1 < size {
        out.push(' ');
    }
    out.push('}');
    debug_assert_eq!(out.len(), size);
    out.into_bytes()
}

/// The stamp of `seq` (16 lowercase hex digits), written at [`STAMP_AT`].
pub fn stamp_bytes(seq: u64) -> [u8; STAMP_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = [0u8; STAMP_LEN];
    for (i, b) in s.iter_mut().enumerate() {
        *b = HEX[((seq >> (60 - 4 * i)) & 0xf) as usize];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_deterministic_and_stamped() {
        for size in [MIN_SIZE, 300, 16 * 1024, 64 * 1024] {
            let a = document(size, 7);
            assert_eq!(a.len(), size);
            assert_eq!(a, document(size, 7));
            assert!(a.is_ascii());
            assert_eq!(&a[..STAMP_AT], b"{\"seq\":\"");
            assert_eq!(a[STAMP_AT + STAMP_LEN], b'"');
            assert_eq!(*a.last().unwrap(), b'}');
        }
        assert_ne!(document(4096, 1), document(4096, 2));
        assert_eq!(&stamp_bytes(0x0123_4567_89ab_cdef), b"0123456789abcdef");
    }

    #[test]
    fn is_structured_not_trivial() {
        let d = String::from_utf8(document(64 * 1024, 3)).unwrap();
        // Many records, nested arrays, and plenty of distinct bytes.
        assert!(d.matches("{\"id\":").count() > 100);
        assert!(d.contains("\"history\":[["));
        let mut seen = [false; 256];
        for b in d.bytes() {
            seen[b as usize] = true;
        }
        assert!(seen.iter().filter(|&&s| s).count() > 40);
        // Brackets balance (a cheap structural check; strings hold none).
        let depth = d.bytes().fold(0i64, |n, b| match b {
            b'{' | b'[' => n + 1,
            b'}' | b']' => n - 1,
            _ => n,
        });
        assert_eq!(depth, 0);
    }
}
