//! The permessage-deflate memory modes the benchmarks compare, as C API
//! `ws_compression_options` (README, "Compression").

use ws::ffi::compression::{
    ws_compression_options, ws_compression_options_default, WS_COMPRESSION_DEDICATED, WS_COMPRESSION_POOLED,
    WS_COMPRESSION_SHARED,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeflateMode {
    /// The default: 12-bit windows, context takeover, pooled zlib states.
    #[default]
    Pooled,
    /// 15-bit windows, context takeover, each connection's own zlib states.
    Dedicated,
    /// No context takeover either way, every state pooled.
    Shared,
}

impl DeflateMode {
    pub const ALL: [DeflateMode; 3] = [DeflateMode::Pooled, DeflateMode::Dedicated, DeflateMode::Shared];

    pub fn name(self) -> &'static str {
        match self {
            DeflateMode::Pooled => "pooled",
            DeflateMode::Dedicated => "dedicated",
            DeflateMode::Shared => "shared",
        }
    }

    pub fn parse(s: &str) -> Option<DeflateMode> {
        DeflateMode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// What a server in this mode accepts.
    pub fn server_options(self) -> ws_compression_options {
        let mut o = ws_compression_options_default();
        match self {
            DeflateMode::Pooled => {}
            DeflateMode::Dedicated => {
                o.server_max_window_bits = 15;
                o.client_max_window_bits = 15;
                o.memory = WS_COMPRESSION_DEDICATED;
            }
            DeflateMode::Shared => o.memory = WS_COMPRESSION_SHARED,
        }
        o
    }

    /// What the benchmark's client offers such a server: the same windows,
    /// pooled state (the client's memory is not what is measured).
    pub fn client_options(self) -> ws_compression_options {
        let mut o = self.server_options();
        o.memory = WS_COMPRESSION_POOLED;
        o
    }
}
