//! Close codes and protocol limits for C, under the `WS_` prefix (the
//! Rust names in `proto` are unprefixed and stay out of the header). The
//! values are written out because cbindgen cannot follow a path to another
//! constant; the test below keeps them equal to `proto`'s.

/// 1000: the purpose of the connection was fulfilled.
pub const WS_CLOSE_NORMAL: u16 = 1000;
/// 1001: the endpoint is going away (server shutdown, page closed).
pub const WS_CLOSE_GOING_AWAY: u16 = 1001;
/// 1002: the peer violated the protocol.
pub const WS_CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// 1003: a data type the endpoint cannot accept.
pub const WS_CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// 1005: the close frame carried no code (never sent in a frame).
pub const WS_CLOSE_NO_STATUS: u16 = 1005;
/// 1006: the connection ended without a close frame (never sent).
pub const WS_CLOSE_ABNORMAL: u16 = 1006;
/// 1007: a message's data did not match its type (e.g. text not UTF-8).
pub const WS_CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// 1008: a message violated the endpoint's policy.
pub const WS_CLOSE_POLICY_VIOLATION: u16 = 1008;
/// 1009: a message was too big to process.
pub const WS_CLOSE_MESSAGE_TOO_BIG: u16 = 1009;
/// 1010: the client needed an extension the server did not negotiate.
pub const WS_CLOSE_MANDATORY_EXTENSION: u16 = 1010;
/// 1011: the server hit an unexpected condition.
pub const WS_CLOSE_INTERNAL_ERROR: u16 = 1011;
/// 1012: the server is restarting.
pub const WS_CLOSE_SERVICE_RESTART: u16 = 1012;
/// 1013: try again later (server overloaded).
pub const WS_CLOSE_TRY_AGAIN_LATER: u16 = 1013;
/// 1015: the TLS handshake failed (never sent).
pub const WS_CLOSE_TLS_HANDSHAKE: u16 = 1015;

/// The most reason bytes that fit a close frame (125 - 2 code bytes).
pub const WS_MAX_REASON_LEN: usize = 123;
/// Control frames (ping, pong, close) carry at most this many payload bytes.
pub const WS_MAX_CONTROL_PAYLOAD: usize = 125;
/// The longest frame header (`ws_session_send_head` writes at most this).
pub const WS_MAX_FRAME_HEADER: usize = 14;
const _: () = assert!(WS_MAX_FRAME_HEADER == crate::proto::frame::MAX_HEADER_LEN);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{close, frame};

    #[test]
    fn c_names_have_the_protocol_values() {
        let pairs = [
            (WS_CLOSE_NORMAL, close::NORMAL),
            (WS_CLOSE_GOING_AWAY, close::GOING_AWAY),
            (WS_CLOSE_PROTOCOL_ERROR, close::PROTOCOL_ERROR),
            (WS_CLOSE_UNSUPPORTED_DATA, close::UNSUPPORTED_DATA),
            (WS_CLOSE_NO_STATUS, close::NO_STATUS),
            (WS_CLOSE_ABNORMAL, close::ABNORMAL),
            (WS_CLOSE_INVALID_PAYLOAD, close::INVALID_PAYLOAD),
            (WS_CLOSE_POLICY_VIOLATION, close::POLICY_VIOLATION),
            (WS_CLOSE_MESSAGE_TOO_BIG, close::MESSAGE_TOO_BIG),
            (WS_CLOSE_MANDATORY_EXTENSION, close::MANDATORY_EXTENSION),
            (WS_CLOSE_INTERNAL_ERROR, close::INTERNAL_ERROR),
            (WS_CLOSE_SERVICE_RESTART, close::SERVICE_RESTART),
            (WS_CLOSE_TRY_AGAIN_LATER, close::TRY_AGAIN_LATER),
            (WS_CLOSE_TLS_HANDSHAKE, close::TLS_HANDSHAKE),
        ];
        for (c, rust) in pairs {
            assert_eq!(c, rust);
        }
        assert_eq!(WS_MAX_REASON_LEN, close::MAX_REASON_LEN);
        assert_eq!(WS_MAX_CONTROL_PAYLOAD, frame::MAX_CONTROL_PAYLOAD);
    }
}
