//! Close codes and close frame payloads (RFC 6455 sections 5.5.1, 7.4).

use super::ProtoError;

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const UNSUPPORTED_DATA: u16 = 1003;
pub const NO_STATUS: u16 = 1005;
pub const ABNORMAL: u16 = 1006;
pub const INVALID_PAYLOAD: u16 = 1007;
pub const POLICY_VIOLATION: u16 = 1008;
pub const MESSAGE_TOO_BIG: u16 = 1009;
pub const MANDATORY_EXTENSION: u16 = 1010;
pub const INTERNAL_ERROR: u16 = 1011;
pub const SERVICE_RESTART: u16 = 1012;
pub const TRY_AGAIN_LATER: u16 = 1013;
pub const TLS_HANDSHAKE: u16 = 1015;

/// The most reason bytes that fit a close frame (125 - 2 code bytes).
pub const MAX_REASON_LEN: usize = 123;

/// Whether `code` may appear in a close frame on the wire. 1005, 1006 and
/// 1015 are reserved for local use; 1004 and the rest of 1000-2999 are not
/// defined; 3000-4999 belong to libraries and applications.
pub fn is_valid_wire_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses a received close payload into its code and reason. An empty
/// payload means "no status" (1005).
pub fn parse_payload(payload: &[u8]) -> Result<(u16, &str), ProtoError> {
    match payload.len() {
        0 => Ok((NO_STATUS, "")),
        1 => Err(ProtoError::protocol("close frame payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_wire_code(code) {
                return Err(ProtoError::protocol("invalid close code"));
            }
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| ProtoError::utf8("close reason is not valid UTF-8"))?;
            Ok((code, reason))
        }
    }
}

/// Formats a close payload (gorilla's FormatCloseMessage) into `out`.
/// `NO_STATUS` gives an empty payload. The code must be one that may be
/// sent and the reason valid UTF-8 of at most 123 bytes.
pub fn format_payload(code: u16, reason: &[u8], out: &mut Vec<u8>) -> Result<(), &'static str> {
    out.clear();
    if code == NO_STATUS {
        if !reason.is_empty() {
            return Err("a close reason needs a close code (1005 sends an empty close frame)");
        }
        return Ok(());
    }
    if !is_valid_wire_code(code) {
        return Err("close code may not be sent (valid: 1000-1003, 1007-1014, 3000-4999)");
    }
    if reason.len() > MAX_REASON_LEN {
        return Err("close reason is longer than 123 bytes");
    }
    if std::str::from_utf8(reason).is_err() {
        return Err("close reason is not valid UTF-8");
    }
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ProtoErrorKind;

    #[test]
    fn wire_codes() {
        for c in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999] {
            assert!(is_valid_wire_code(c), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            assert!(!is_valid_wire_code(c), "{c}");
        }
    }

    #[test]
    fn parse_rules() {
        assert_eq!(parse_payload(&[]).unwrap(), (1005, ""));
        assert_eq!(parse_payload(&[0x03]).unwrap_err().kind, ProtoErrorKind::Protocol);
        assert_eq!(parse_payload(&[0x03, 0xE8, b'o', b'k']).unwrap(), (1000, "ok"));
        assert_eq!(parse_payload(&[0x03, 0xED]).unwrap_err().kind, ProtoErrorKind::Protocol);
        assert_eq!(parse_payload(&[0x03, 0xE8, 0xFF]).unwrap_err().kind, ProtoErrorKind::InvalidUtf8);
    }

    #[test]
    fn format_rules() {
        let mut out = Vec::new();
        format_payload(1000, b"bye", &mut out).unwrap();
        assert_eq!(out, [0x03, 0xE8, b'b', b'y', b'e']);
        format_payload(NO_STATUS, b"", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(format_payload(1006, b"", &mut out).is_err());
        assert!(format_payload(1000, &[b'x'; 124], &mut out).is_err());
        assert!(format_payload(1000, &[0xC3], &mut out).is_err());
    }
}
