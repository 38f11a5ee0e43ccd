//! permessage-deflate negotiation (RFC 7692 7.1). Two properties:
//!
//! 1. Any `Sec-WebSocket-Extensions` bytes, given to the server's choice
//!    and to the client's check, never panic; what the server answers to
//!    them is accepted by a client that made that offer when the offer was
//!    one of ours (checked in 2).
//! 2. For any client and server options, the client's offer, the server's
//!    answer and the client's check agree: both ends see the same windows
//!    and context-takeover rules, and each side's limits hold.
//!
//! Input: bytes 0-1 = client and server options (bit 0: server no context
//! takeover, bit 1: client no context takeover, bits 2-4 and 5-7: server
//! and client max window bits 8 + n); the rest = raw extension values for
//! property 1, separated by '\n'.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ws::proto::deflate::{params, DeflateOptions};

fn options(b: u8) -> DeflateOptions {
    DeflateOptions {
        server_no_context_takeover: b & 1 != 0,
        client_no_context_takeover: b & 2 != 0,
        server_max_window_bits: 8 + ((b >> 2) & 7),
        client_max_window_bits: 8 + ((b >> 5) & 7),
        ..DeflateOptions::full_window()
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let (client, server) = (options(input[0]), options(input[1]));

    // 1. Arbitrary header values.
    let values: Vec<&[u8]> = input[2..].split(|&b| b == b'\n').collect();
    if let Some((agreement, answer)) = params::server_accept(values.iter().copied(), &server) {
        assert!(answer.starts_with(params::EXTENSION));
        if let Some(bits) = agreement.our_window_bits {
            assert!((9..=server.server_max_window_bits).contains(&bits), "server window {bits}");
        }
        assert!(!server.server_no_context_takeover || agreement.our_no_context_takeover);
        assert!(!server.client_no_context_takeover || agreement.peer_no_context_takeover);
    }
    let _ = params::client_accept(values.iter().copied(), &client);

    // 2. Our own offer, end to end.
    let offer = params::client_offer(&client);
    let Some((s, answer)) = params::server_accept([offer.as_bytes()], &server) else {
        panic!("the server declined our own offer {offer:?}");
    };
    let c = params::client_accept([answer.as_bytes()], &client)
        .unwrap_or_else(|e| panic!("the client rejects the answer {answer:?} to {offer:?}: {e}"))
        .expect("the answer agrees to compression");
    assert_eq!(c.peer_no_context_takeover, s.our_no_context_takeover, "{offer:?} -> {answer:?}");
    assert_eq!(c.our_no_context_takeover, s.peer_no_context_takeover, "{offer:?} -> {answer:?}");
    let server_bits = s.our_window_bits.unwrap_or(8);
    assert!(server_bits <= client.server_max_window_bits && server_bits <= server.server_max_window_bits);
    let client_bits = c.our_window_bits.unwrap_or(8);
    assert!(
        client_bits <= client.client_max_window_bits && client_bits <= server.client_max_window_bits,
        "client window {client_bits}: {offer:?} -> {answer:?}"
    );
    assert!(!client.server_no_context_takeover || s.our_no_context_takeover);
    assert!(!client.client_no_context_takeover || c.our_no_context_takeover);
});
