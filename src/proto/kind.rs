//! The one vocabulary for what a message or control frame is, shared by
//! the receiver, the engine and every driver (numbered as the opcodes and
//! as gorilla's constants).

use super::frame::OpCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl MessageType {
    pub fn from_i32(v: i32) -> Option<MessageType> {
        Some(match v {
            1 => MessageType::Text,
            2 => MessageType::Binary,
            8 => MessageType::Close,
            9 => MessageType::Ping,
            10 => MessageType::Pong,
            _ => return None,
        })
    }

    pub fn is_control(self) -> bool {
        matches!(self, MessageType::Close | MessageType::Ping | MessageType::Pong)
    }

    /// The frame opcode of this type.
    pub fn opcode(self) -> OpCode {
        match self {
            MessageType::Text => OpCode::Text,
            MessageType::Binary => OpCode::Binary,
            MessageType::Close => OpCode::Close,
            MessageType::Ping => OpCode::Ping,
            MessageType::Pong => OpCode::Pong,
        }
    }

    /// The type a (non-continuation) opcode starts.
    pub fn from_opcode(op: OpCode) -> Option<MessageType> {
        Some(match op {
            OpCode::Continuation => return None,
            OpCode::Text => MessageType::Text,
            OpCode::Binary => MessageType::Binary,
            OpCode::Close => MessageType::Close,
            OpCode::Ping => MessageType::Ping,
            OpCode::Pong => MessageType::Pong,
        })
    }
}
