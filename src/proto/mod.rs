//! Sans-IO WebSocket protocol engine (RFC 6455).
//!
//! Nothing here touches a socket, a clock or a thread: bytes go in, events
//! and bytes come out. The blocking connection (`api::conn`) and the event
//! loop drive the same code, which is also what the fuzzers and unit tests
//! exercise.

pub mod close;
pub mod deflate;
pub mod engine;
pub mod frame;
pub mod handshake;
pub mod kind;
pub mod mask;
pub mod receiver;
pub mod utf8;

/// Which end of the connection this engine plays. It decides masking: a
/// client masks what it sends and rejects masked frames; a server the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// A violation of the protocol by the peer, with the close code to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoError {
    pub kind: ProtoErrorKind,
    pub message: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoErrorKind {
    /// Framing or state violation: close 1002.
    Protocol,
    /// Text that is not UTF-8: close 1007.
    InvalidUtf8,
    /// Message larger than the read limit: close 1009.
    TooBig,
    /// A compressed payload that does not inflate: close 1007.
    InvalidData,
    /// A policy of the receiver (not of RFC 6455) was broken, e.g. input
    /// held past the memory budget for too long: close 1008.
    Policy,
}

impl ProtoError {
    pub const fn protocol(message: &'static str) -> Self {
        ProtoError { kind: ProtoErrorKind::Protocol, message }
    }
    pub const fn utf8(message: &'static str) -> Self {
        ProtoError { kind: ProtoErrorKind::InvalidUtf8, message }
    }
    pub const fn too_big(message: &'static str) -> Self {
        ProtoError { kind: ProtoErrorKind::TooBig, message }
    }
    pub const fn invalid_data(message: &'static str) -> Self {
        ProtoError { kind: ProtoErrorKind::InvalidData, message }
    }
    pub const fn policy(message: &'static str) -> Self {
        ProtoError { kind: ProtoErrorKind::Policy, message }
    }
    /// The message as a close reason (cut to the 123 bytes a close frame
    /// can carry).
    pub fn close_reason(&self) -> &[u8] {
        let r = self.message.as_bytes();
        &r[..r.len().min(close::MAX_REASON_LEN)]
    }

    /// The close code RFC 6455 prescribes for this failure.
    pub fn close_code(&self) -> u16 {
        match self.kind {
            ProtoErrorKind::Protocol => close::PROTOCOL_ERROR,
            ProtoErrorKind::InvalidUtf8 => close::INVALID_PAYLOAD,
            ProtoErrorKind::TooBig => close::MESSAGE_TOO_BIG,
            ProtoErrorKind::InvalidData => close::INVALID_PAYLOAD,
            ProtoErrorKind::Policy => close::POLICY_VIOLATION,
        }
    }
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message)
    }
}
