//! The client's check of the server's response, for any bytes. The input
//! is a response head in which `{A}` stands for the correct
//! `Sec-WebSocket-Accept` value (so the fuzzer gets past the key check and
//! into the subprotocol and extension rules). Checks on top of "no
//! panic": an accepted response has status 101 and the right accept key, a
//! subprotocol the client offered, compression only if it was offered.
//!
//! Input: byte 0 = Dialer settings (bit 0: offer compression, bit 1:
//! offer subprotocols "chat", "superchat", bit 2: ask for
//! server_no_context_takeover); the rest = the response head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::api::fuzzing::ClientRequest;
use ws::api::Dialer;
use ws::proto::deflate::DeflateOptions;
use ws::proto::handshake;

fuzz_target!(|input: &[u8]| {
    let Some((&cfg, head)) = input.split_first() else { return };
    let mut d = Dialer::default();
    if cfg & 1 != 0 {
        d.conn.compression =
            Some(DeflateOptions { server_no_context_takeover: cfg & 4 != 0, ..DeflateOptions::default() });
    }
    if cfg & 2 != 0 {
        d.subprotocols = vec!["chat".into(), "superchat".into()];
    }
    let req = ClientRequest::new(&d, "ws://example.com/chat").expect("a valid URL");
    let accept = req.expected_accept();
    let mut bytes = Vec::with_capacity(head.len() + 32);
    let mut rest = head;
    while let Some(i) = rest.windows(3).position(|w| w == b"{A}") {
        bytes.extend_from_slice(&rest[..i]);
        bytes.extend_from_slice(accept.as_bytes());
        rest = &rest[i + 3..];
    }
    bytes.extend_from_slice(rest);

    let Some(Ok((subprotocol, deflate))) = req.check(&d, &bytes) else { return };
    let (resp, _) = handshake::Response::parse(&bytes).unwrap().unwrap();
    assert_eq!(resp.status, 101, "accepted a non-101 response");
    let got = resp.headers.get_str("Sec-WebSocket-Accept").map(str::trim);
    assert_eq!(got, Some(accept.as_str()), "accepted a wrong accept key");
    assert!(subprotocol.is_empty() || d.subprotocols.contains(&subprotocol), "accepted subprotocol {subprotocol:?}");
    if let Some(a) = deflate {
        let opts = d.conn.compression.expect("compression agreed without an offer");
        if opts.server_no_context_takeover {
            assert!(a.peer_no_context_takeover, "server_no_context_takeover was asked for but not granted");
        }
    }
});
