//! `Sec-WebSocket-Key` generation/validation and `Sec-WebSocket-Accept`
//! computation (RFC 6455 section 4.2.2 / 4.1).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID appended to the client key before hashing (RFC 6455 section 1.3).
pub const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `base64(SHA-1(client_key ++ GUID))`, the `Sec-WebSocket-Accept` value for
/// the given `Sec-WebSocket-Key` value (as sent, already trimmed).
pub fn accept_key(client_key: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(client_key);
    hasher.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(hasher.finalize())
}

/// Like [`generate_client_key`] but reports an OS randomness failure instead
/// of panicking.
pub fn try_generate_client_key() -> Result<String, String> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| format!("websocket: cannot generate Sec-WebSocket-Key: {e}"))?;
    Ok(STANDARD.encode(nonce))
}

/// A fresh `Sec-WebSocket-Key`: base64 of 16 random bytes from the OS.
///
/// # Panics
/// If the OS random source fails (practically never); use
/// [`try_generate_client_key`] to handle that case.
pub fn generate_client_key() -> String {
    match try_generate_client_key() {
        Ok(k) => k,
        Err(e) => panic!("{e}"),
    }
}

/// Standard alphabet, padding required, but (like Go's `base64.StdEncoding`
/// used by gorilla) non-zero unused trailing bits are tolerated.
const LENIENT_STANDARD: GeneralPurpose =
    GeneralPurpose::new(&alphabet::STANDARD, GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true));

/// True when `key` is standard-alphabet, padded base64 that decodes to
/// exactly 16 bytes (so it is always 24 characters long). No whitespace is
/// allowed: trim the header value first.
pub fn is_valid_client_key(key: &[u8]) -> bool {
    if key.len() != 24 {
        return false;
    }
    let mut buf = [0u8; 18];
    matches!(LENIENT_STANDARD.decode_slice(key, &mut buf), Ok(16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let a = generate_client_key();
        let b = generate_client_key();
        assert_eq!(a.len(), 24);
        assert!(is_valid_client_key(a.as_bytes()));
        assert!(is_valid_client_key(b.as_bytes()));
        assert_ne!(a, b);
        assert!(try_generate_client_key().is_ok());
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_client_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(is_valid_client_key(b"AAAAAAAAAAAAAAAAAAAAAA=="));
        // non-canonical trailing bits are tolerated, as in Go
        assert!(is_valid_client_key(b"AAAAAAAAAAAAAAAAAAAAAB=="));
        // 15 bytes
        assert!(!is_valid_client_key(b"AAAAAAAAAAAAAAAAAAAA"));
        // 17 bytes
        assert!(!is_valid_client_key(b"AAAAAAAAAAAAAAAAAAAAAAA="));
        // unpadded 16 bytes
        assert!(!is_valid_client_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        // URL-safe alphabet
        assert!(!is_valid_client_key(b"-_-_AAAAAAAAAAAAAAAAAA=="));
        // surrounding whitespace
        assert!(!is_valid_client_key(b" dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!is_valid_client_key(b""));
        assert!(!is_valid_client_key(b"not base64 at all!!!!!!!"));
    }
}
