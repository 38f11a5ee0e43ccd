//! Frame header encoding and decoding (RFC 6455 section 5.2).

use super::{ProtoError, Role};

/// Largest possible frame header: 2 bytes + 8 length bytes + 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most this many payload bytes (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// Parses a frame header from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, otherwise the header and
/// its encoded length. `allow_rsv1` is true when an extension that defines
/// RSV1 (permessage-deflate) was negotiated. Checks that do not depend on
/// the message state (reserved bits and opcodes, masking direction, control
/// frame rules, length encoding) happen here.
#[inline]
pub fn parse_header(buf: &[u8], role: Role, allow_rsv1: bool) -> Result<Option<(FrameHeader, usize)>, ProtoError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 {
        return Err(ProtoError::protocol("reserved bits RSV2/RSV3 set without a negotiated extension"));
    }
    if rsv1 && !allow_rsv1 {
        return Err(ProtoError::protocol("reserved bit RSV1 set without a negotiated extension"));
    }
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(ProtoError::protocol("reserved opcode"))?;
    let masked = b1 & 0x80 != 0;
    match (role, masked) {
        (Role::Server, false) => return Err(ProtoError::protocol("client frame is not masked")),
        (Role::Client, true) => return Err(ProtoError::protocol("server frame is masked")),
        _ => {}
    }
    let len7 = b1 & 0x7F;
    let mut pos = 2;
    let payload_len = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let n = u16::from_be_bytes([buf[2], buf[3]]) as u64;
            if n < 126 {
                return Err(ProtoError::protocol("payload length not minimally encoded"));
            }
            pos = 4;
            n
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let n = u64::from_be_bytes(b);
            if n >> 63 != 0 {
                return Err(ProtoError::protocol("payload length has the most significant bit set"));
            }
            if n <= 0xFFFF {
                return Err(ProtoError::protocol("payload length not minimally encoded"));
            }
            pos = 10;
            n
        }
        n => n as u64,
    };
    if opcode.is_control() {
        if !fin {
            return Err(ProtoError::protocol("fragmented control frame"));
        }
        if payload_len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(ProtoError::protocol("control frame payload longer than 125 bytes"));
        }
        if rsv1 {
            return Err(ProtoError::protocol("RSV1 set on a control frame"));
        }
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let m = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some((FrameHeader { fin, rsv1, opcode, mask, payload_len }, pos)))
}

/// Encodes a frame header into `out`, returning the number of bytes used.
///
/// The header is built in one integer and stored with one copy: written
/// byte by byte, the wider loads that copy it on (into the frame's place
/// in the outbox) stalled on store forwarding, half of the sending side's
/// frame cost under perf for small messages.
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    let first = u128::from((fin as u8) << 7 | (rsv1 as u8) << 6 | opcode as u8);
    let mask_bit: u128 = if mask.is_some() { 0x80 } else { 0 };
    // Little-endian: byte i of the header is bits 8i..8i+8.
    let (mut h, mut pos) = if payload_len < 126 {
        (first | (mask_bit | u128::from(payload_len)) << 8, 2)
    } else if payload_len <= 0xFFFF {
        let be = u128::from((payload_len as u16).swap_bytes());
        (first | (mask_bit | 126) << 8 | be << 16, 4)
    } else {
        let be = u128::from(payload_len.swap_bytes());
        (first | (mask_bit | 127) << 8 | be << 16, 10)
    };
    if let Some(m) = mask {
        h |= u128::from(u32::from_le_bytes(m)) << (8 * pos);
        pos += 4;
    }
    out.copy_from_slice(&h.to_le_bytes()[..MAX_HEADER_LEN]);
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(len: u64, mask: Option<[u8; 4]>) {
        let mut h = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut h, true, false, OpCode::Binary, len, mask);
        let role = if mask.is_some() { Role::Server } else { Role::Client };
        let (hdr, used) = parse_header(&h[..n], role, false).unwrap().unwrap();
        assert_eq!(used, n);
        assert_eq!(hdr.payload_len, len);
        assert_eq!(hdr.mask, mask);
        assert!(hdr.fin);
        assert_eq!(hdr.opcode, OpCode::Binary);
        // Every strict prefix is incomplete, never an error.
        for i in 0..n {
            assert_eq!(parse_header(&h[..i], role, false).unwrap(), None);
        }
    }

    #[test]
    fn every_length_form_roundtrips() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            roundtrip(len, None);
            roundtrip(len, Some([1, 2, 3, 4]));
        }
    }

    #[test]
    fn headers_have_the_rfc_6455_bytes() {
        let enc = |fin, rsv1, op, len, mask| {
            let mut h = [0xAAu8; MAX_HEADER_LEN];
            let n = encode_header(&mut h, fin, rsv1, op, len, mask);
            h[..n].to_vec()
        };
        assert_eq!(enc(false, true, OpCode::Text, 5, None), [0x41, 0x05]);
        assert_eq!(enc(true, false, OpCode::Binary, 126, Some([1, 2, 3, 4])), [0x82, 0xFE, 0x00, 0x7E, 1, 2, 3, 4]);
        assert_eq!(enc(true, false, OpCode::Close, 0xABCD, None), [0x88, 0x7E, 0xAB, 0xCD]);
        assert_eq!(
            enc(true, false, OpCode::Binary, 0x0102_0304_0506, Some([9, 8, 7, 6])),
            [0x82, 0xFF, 0, 0, 1, 2, 3, 4, 5, 6, 9, 8, 7, 6]
        );
    }

    #[test]
    fn rejects_bad_headers() {
        let srv = Role::Server;
        // RSV2 set.
        assert!(parse_header(&[0xA2, 0x80, 0, 0, 0, 0], srv, false).is_err());
        // RSV1 without extension, allowed with one.
        assert!(parse_header(&[0xC2, 0x80, 0, 0, 0, 0], srv, false).is_err());
        assert!(parse_header(&[0xC2, 0x80, 0, 0, 0, 0], srv, true).unwrap().is_some());
        // Reserved opcodes.
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert!(parse_header(&[0x80 | op, 0x80, 0, 0, 0, 0], srv, false).is_err());
        }
        // Unmasked frame to a server, masked frame to a client.
        assert!(parse_header(&[0x82, 0x00], srv, false).is_err());
        assert!(parse_header(&[0x82, 0x80, 0, 0, 0, 0], Role::Client, false).is_err());
        // Fragmented ping, long ping, RSV1 on ping.
        assert!(parse_header(&[0x09, 0x80, 0, 0, 0, 0], srv, false).is_err());
        assert!(parse_header(&[0x89, 0xFE, 0, 126, 0, 0, 0, 0], srv, false).is_err());
        assert!(parse_header(&[0xC9, 0x80, 0, 0, 0, 0], srv, true).is_err());
        // Non-minimal length encodings and the 64th bit.
        assert!(parse_header(&[0x82, 0xFE, 0, 5, 0, 0, 0, 0], srv, false).is_err());
        assert!(parse_header(&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0], srv, false).is_err());
        assert!(parse_header(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], srv, false).is_err());
    }
}
