//! Reading compressed messages (permessage-deflate): the inflater, the
//! compressed input not yet consumed, and the limits.
//!
//! The read limit applies to the inflated size and is checked after every
//! chunk of at most 64 KiB of output, so inflation stops as soon as the
//! limit is passed (close 1009): a small "bomb" cannot expand into a large
//! allocation. Text is validated as it is inflated, so invalid UTF-8 fails
//! fast here too.

use std::time::Instant;

use super::read::ReadSide;
use super::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::proto::deflate::codec::TAIL;
use crate::proto::deflate::{Agreement, Inflater};
use crate::proto::engine::inflate::compressed_bound;
use crate::proto::kind::MessageType;
use crate::proto::receiver::Event;
use crate::proto::utf8::Utf8Validator;
use crate::proto::ProtoError;

/// Inflated output is produced in chunks of at most this size.
const CHUNK: usize = 64 * 1024;

pub(super) struct InflateState {
    inflater: Inflater,
    utf8: Utf8Validator,
    /// The message being inflated, if any.
    cur: Option<Current>,
}

struct Current {
    text: bool,
    /// Compressed bytes received but not inflated yet: `buf[start..end]`.
    pending: Option<(usize, usize)>,
    /// The last frame of the message has arrived.
    eom_seen: bool,
    /// How many bytes of the 4-byte tail were fed.
    tail_fed: usize,
    /// The last call filled its output: more may be waiting in the inflater.
    drain: bool,
    total_in: u64,
    total_out: u64,
}

enum Input {
    Buf(usize, usize),
    Tail,
    Nothing,
}

impl InflateState {
    pub(super) fn new(agreement: &Agreement) -> InflateState {
        InflateState { inflater: Inflater::for_agreement(agreement), utf8: Utf8Validator::default(), cur: None }
    }

    pub(super) fn in_message(&self) -> bool {
        self.cur.is_some()
    }
}

impl Conn {
    pub(super) fn begin_inflate(&self, rs: &mut ReadSide, kind: MessageType) {
        if let Some(st) = rs.inflate.as_mut() {
            st.utf8.reset();
            st.cur = Some(Current {
                text: kind == MessageType::Text,
                pending: None,
                eom_seen: false,
                tail_fed: 0,
                drain: false,
                total_in: 0,
                total_out: 0,
            });
        }
    }

    /// Inflates the current compressed message into `rs.msg`, adding at
    /// most `max_out` bytes. Returns true once the message is complete.
    /// With `stop_early`, returns as soon as some output was produced.
    pub(super) fn inflate_some(
        &self,
        rs: &mut ReadSide,
        deadline: Option<Instant>,
        max_out: usize,
        stop_early: bool,
    ) -> Result<bool> {
        let start_len = rs.msg.len();
        loop {
            let limit = rs.receiver.max_message();
            let Some(st) = rs.inflate.as_mut() else {
                return Err(Error::new(ErrorKind::Internal, "compressed message without negotiated compression"));
            };
            let Some(cur) = st.cur.as_mut() else { return Ok(true) };
            let input = match cur.pending {
                Some((s, e)) if s < e => Input::Buf(s, e),
                Some(_) => {
                    cur.pending = None;
                    continue;
                }
                None if cur.drain => Input::Nothing,
                None if cur.eom_seen && cur.tail_fed < TAIL.len() => Input::Tail,
                None if cur.eom_seen => {
                    st.cur = None;
                    st.inflater.end_message();
                    if st.utf8.finish().is_err() {
                        return Err(self.fail_protocol(rs, ProtoError::utf8("text message is not valid UTF-8")));
                    }
                    return Ok(true);
                }
                None => {
                    match self.next_data_event(rs, deadline)? {
                        Event::Data { start, end, end_of_message } => {
                            if let Some(cur) = rs.inflate.as_mut().and_then(|s| s.cur.as_mut()) {
                                cur.pending = Some((start, end));
                                cur.eom_seen = end_of_message;
                            }
                        }
                        _ => return Err(Error::new(ErrorKind::Internal, "message start inside a message")),
                    }
                    continue;
                }
            };
            let added = rs.msg.len() - start_len;
            if added >= max_out {
                return Ok(false);
            }
            let want = (max_out - added).min(CHUNK);
            let data: &[u8] = match input {
                Input::Buf(s, e) => &rs.buf[s..e],
                Input::Tail => &TAIL[cur.tail_fed..],
                Input::Nothing => &[],
            };
            let result = st.inflater.inflate(data, rs.msg.tail(want));
            let (used, produced) = match result {
                Ok(r) => r,
                Err(pe) => return Err(self.fail_protocol(rs, pe)),
            };
            match input {
                Input::Buf(s, e) => cur.pending = Some((s + used, e)),
                Input::Tail => cur.tail_fed += used,
                Input::Nothing => {}
            }
            cur.drain = produced == want;
            cur.total_in += used as u64;
            cur.total_out += produced as u64;
            let text = cur.text;
            let (total_in, total_out) = (cur.total_in, cur.total_out);
            let fresh = rs.msg.commit(produced);
            if text && st.utf8.feed(fresh).is_err() {
                return Err(self.fail_protocol(rs, ProtoError::utf8("text message is not valid UTF-8")));
            }
            if limit != 0 && total_out > limit {
                return Err(self.fail_protocol(rs, ProtoError::too_big("message exceeds the read limit once inflated")));
            }
            // Compressed input is bounded too (incompressible data grows by
            // a few bytes per 16 KiB block at most).
            if total_in > compressed_bound(limit) {
                return Err(self.fail_protocol(rs, ProtoError::too_big("compressed message exceeds the read limit")));
            }
            if used == 0 && produced == 0 && !matches!(input, Input::Nothing) {
                return Err(self.fail_protocol(rs, ProtoError::invalid_data("compressed data makes no progress")));
            }
            if stop_early && produced > 0 {
                return Ok(false);
            }
        }
    }
}
