//! The server's side of the opening handshake: request parsing and the
//! Upgrader's decision, for any bytes. Checks on top of "no panic":
//! an incomplete head never exceeds the head limit; every answer is a
//! well-formed HTTP response; a 101 carries the right accept key and
//! passes the client's own response check (the subprotocol and the
//! permessage-deflate agreement seen from both ends match).
//!
//! Input: byte 0 = Upgrader settings (bit 0: compression, bit 1: server
//! subprotocols "chat", "superchat", bit 2: no context takeover, bits 3-5:
//! client window bits 8 + n); the rest = the request head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::api::fuzzing::{server_decision, ServerDecision};
use ws::api::Upgrader;
use ws::proto::deflate::{params, DeflateOptions};
use ws::proto::handshake::{self, MAX_HEAD_LEN};

fuzz_target!(|input: &[u8]| {
    let Some((&cfg, head)) = input.split_first() else { return };
    let mut up = Upgrader::default();
    let opts = DeflateOptions {
        server_no_context_takeover: cfg & 4 != 0,
        client_max_window_bits: 8 + ((cfg >> 3) & 7),
        ..DeflateOptions::default()
    };
    if cfg & 1 != 0 {
        up.conn.compression = Some(opts);
    }
    if cfg & 2 != 0 {
        up.subprotocols = vec!["chat".into(), "superchat".into()];
    }
    match server_decision(&up, head) {
        ServerDecision::Incomplete => {
            assert!(head.len() <= MAX_HEAD_LEN, "a head of {} bytes is still being read", head.len());
        }
        ServerDecision::Reject { response, status } => {
            assert!((400..600).contains(&status), "rejected with status {status}");
            let (resp, _) = handshake::Response::parse(&response)
                .expect("the error response parses")
                .expect("the error response is complete");
            assert_eq!(resp.status, status);
        }
        ServerDecision::Accept { response, subprotocol, deflate } => {
            let (req, _) = handshake::Request::parse(head).unwrap().unwrap();
            let key = req.header("Sec-WebSocket-Key").expect("accepted without a key");
            let offered: Vec<String> =
                handshake::requested_subprotocols(&req).into_iter().map(str::to_string).collect();
            let (resp, _) =
                handshake::Response::parse(&response).expect("the 101 parses").expect("the 101 is complete");
            let key = std::str::from_utf8(key).expect("an accepted key is ASCII").trim();
            // The client's checks, with what this request offered.
            let sub = handshake::validate_response_except_extensions(&resp, key, &offered)
                .unwrap_or_else(|e| panic!("the client rejects our 101: {e}"));
            assert_eq!(sub.unwrap_or_default(), subprotocol);
            if let Some(agreed) = deflate {
                // The extension value the server chose, checked by a client
                // whose options allow anything the server may answer.
                let value = resp.headers.get("Sec-WebSocket-Extensions").expect("an agreement is announced");
                let client_opts = DeflateOptions {
                    client_max_window_bits: 15,
                    server_max_window_bits: 15,
                    server_no_context_takeover: agreed.our_no_context_takeover,
                    client_no_context_takeover: false,
                    ..DeflateOptions::full_window()
                };
                if let Ok(Some(theirs)) = params::client_accept([value], &client_opts) {
                    assert_eq!(theirs.peer_no_context_takeover, agreed.our_no_context_takeover);
                    assert_eq!(theirs.our_no_context_takeover, agreed.peer_no_context_takeover);
                }
            } else {
                assert!(resp.headers.get("Sec-WebSocket-Extensions").is_none());
            }
        }
    }
});
