//! One step of rustls's unbuffered state machine, for [`super::session`].
//!
//! `process_tls_records` looks at the received records and says what the
//! connection needs next (a record to encode, records to transmit, data to
//! read, room to write, more input). [`step`] handles one such state
//! according to what the caller is after ([`Goal`]) and tells the session
//! how to go on ([`Step`]). Everything lands in buffers the session owns
//! (see `buffers.rs`), which hold memory only while they hold bytes.

use std::io::IoSlice;

use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic};

use super::buffers::Buf;

/// The most plaintext one TLS record carries.
pub const MAX_FRAGMENT: usize = 16 * 1024;

/// Bytes a record adds at most with the suites rustls offers (header 5,
/// TLS 1.2 explicit nonce 8 + tag 16, or TLS 1.3 content type 1 + tag 16),
/// rounded up; only a first guess at the room: rustls says if it needs more.
const RECORD_OVERHEAD: usize = 40;

/// What the session wants from this step.
pub enum Goal<'a> {
    /// Move the handshake on; stop at decrypted data (it stays inside
    /// rustls until read).
    Progress,
    /// Decrypted bytes into this buffer (the rest of a larger record into
    /// the session's `rest`).
    Read(&'a mut [u8]),
    /// Decrypted bytes appended to this vector.
    Append(&'a mut Vec<u8>),
    /// Encrypt up to `take` bytes of these slices (queue them while the
    /// handshake runs). Data waiting to be read moves to `rest` first: rustls
    /// offers writing only once nothing waits.
    Write { bufs: &'a [IoSlice<'a>], take: usize },
}

/// How the session goes on after a step.
pub enum Step {
    /// Call `process_tls_records` again.
    Again,
    /// A decrypted record waits inside rustls (`Goal::Progress`).
    RecordWaiting,
    /// `n` decrypted bytes were read (`Goal::Read`, `Goal::Append`).
    Read(usize),
    /// `n` plaintext bytes were taken (`Goal::Write`).
    Wrote(usize),
    /// Nothing more to do without more input (or room in the output).
    Blocked,
    Failed(rustls::Error),
}

/// The session's state that steps change (all but the connection and its
/// received records, which `process_tls_records` borrows).
#[derive(Default)]
pub struct Side {
    /// Ciphertext for the peer.
    pub out: Buf,
    /// The rest of a decrypted record the caller had no room for (read first).
    pub rest: Buf,
    /// Plaintext written before rustls allowed application data.
    pub queued: Vec<u8>,
    /// Limit on `out` (and `queued`) for `Goal::Write`; `None` = unlimited.
    pub limit: Option<usize>,
    /// close_notify is asked for (it goes out once the handshake allows).
    pub close_wanted: bool,
    pub close_sent: bool,
    /// The peer's close_notify arrived.
    pub peer_closed: bool,
    /// A failure: nothing is encrypted any more, only queued alerts leave.
    pub failed: bool,
}

impl Side {
    /// How much of `total` plaintext bytes may be taken with `held` bytes
    /// already waiting: nothing at the limit; below it all of a write
    /// that ends within one record past the limit (a 64 KiB message and
    /// its frame header go in one piece into an empty queue), else whole
    /// records, at least one. Taking whatever happens to fit each time the
    /// socket drained a little would cut the stream into small records
    /// (more records to seal, open and send).
    fn allowance(&self, total: usize, held: usize) -> usize {
        let Some(limit) = self.limit else { return total };
        let room = limit.saturating_sub(held);
        if room == 0 {
            0
        } else if total <= room + MAX_FRAGMENT {
            total
        } else {
            (room / MAX_FRAGMENT).max(1) * MAX_FRAGMENT
        }
    }
}

/// Handles the state `process_tls_records` returned; the caller then drops
/// `discard` bytes (returned with the step) from the front of its records.
pub fn step<Data>(status: UnbufferedStatus<'_, '_, Data>, side: &mut Side, goal: &mut Goal<'_>) -> (usize, Step) {
    let discard = status.discard;
    let state = match status.state {
        Ok(s) => s,
        Err(e) => return (discard, Step::Failed(e)),
    };
    let step = match state {
        ConnectionState::ReadTraffic(mut r) => match goal {
            Goal::Progress => Step::RecordWaiting,
            Goal::Read(buf) => match r.next_record() {
                Some(Ok(rec)) => {
                    // rustls 0.23 decrypts into a vector of its own: the
                    // record's ciphertext is done with (rec.discard is 0).
                    let n = buf.len().min(rec.payload.len());
                    buf[..n].copy_from_slice(&rec.payload[..n]);
                    side.rest.extend(&rec.payload[n..]);
                    Step::Read(n)
                }
                Some(Err(e)) => Step::Failed(e),
                None => Step::Again,
            },
            Goal::Append(v) => {
                let mut n = 0;
                while let Some(rec) = r.next_record() {
                    match rec {
                        Ok(rec) => {
                            v.extend_from_slice(rec.payload);
                            n += rec.payload.len();
                        }
                        Err(e) => return (discard, Step::Failed(e)),
                    }
                }
                Step::Read(n)
            }
            Goal::Write { .. } => {
                while let Some(rec) = r.next_record() {
                    match rec {
                        Ok(rec) => side.rest.extend(rec.payload),
                        Err(e) => return (discard, Step::Failed(e)),
                    }
                }
                Step::Again
            }
        },
        ConnectionState::EncodeTlsData(mut e) => loop {
            let room = side.out.room(64);
            match e.encode(room) {
                Ok(n) => {
                    side.out.commit(n);
                    break Step::Again;
                }
                Err(EncodeError::InsufficientSize(s)) => {
                    side.out.room(s.required_size);
                }
                Err(EncodeError::AlreadyEncoded) => break Step::Again,
            }
        },
        ConnectionState::TransmitTlsData(mut t) => {
            // Transmitting is the caller's business: the records wait in
            // `out` for it. Plaintext written during the handshake may go
            // with them as soon as rustls allows (TLS 1.3 0.5-RTT).
            if let Some(mut w) = t.may_encrypt_app_data() {
                if let Err(e) = flush_queued(&mut w, side) {
                    return (discard, e);
                }
            }
            t.done();
            Step::Again
        }
        ConnectionState::WriteTraffic(mut w) => {
            if let Err(e) = flush_queued(&mut w, side) {
                return (discard, e);
            }
            let mut step = Step::Blocked;
            if let Goal::Write { bufs, take } = goal {
                if side.failed {
                    step = Step::Wrote(*take);
                } else {
                    let n = side.allowance(*take, side.out.len());
                    if let Err(e) = encrypt(&mut w, bufs, n, &mut side.out) {
                        return (discard, e);
                    }
                    step = Step::Wrote(n);
                }
            }
            if side.close_wanted && !side.close_sent && !side.failed {
                side.close_sent = true;
                loop {
                    let room = side.out.room(64);
                    match w.queue_close_notify(room) {
                        Ok(n) => {
                            side.out.commit(n);
                            break;
                        }
                        Err(EncryptError::InsufficientSize(s)) => {
                            side.out.room(s.required_size);
                        }
                        Err(EncryptError::EncryptExhausted) => break,
                    }
                }
            }
            step
        }
        ConnectionState::BlockedHandshake => match goal {
            Goal::Write { bufs, take } => {
                if side.failed {
                    Step::Wrote(*take)
                } else {
                    // Sent once the handshake allows application data.
                    let n = side.allowance(*take, side.queued.len());
                    gather(bufs, n, &mut side.queued);
                    Step::Wrote(n)
                }
            }
            _ => Step::Blocked,
        },
        ConnectionState::PeerClosed => {
            side.peer_closed = true;
            Step::Again
        }
        ConnectionState::Closed => {
            side.peer_closed = true;
            match goal {
                // Both sides said close_notify: nothing can be sent.
                Goal::Write { take, .. } => Step::Wrote(*take),
                _ => Step::Blocked,
            }
        }
        // The server configs accept no early data (max_early_data_size is
        // 0), so rustls never gets here; should it, that is a failure, not
        // a stall.
        ConnectionState::ReadEarlyData(_) => Step::Failed(rustls::Error::General("unexpected early data".into())),
        // `ConnectionState` is non-exhaustive: a state a later rustls adds
        // is a failure here, never a silent stall.
        other => Step::Failed(rustls::Error::General(format!("unexpected TLS state {other:?}"))),
    };
    (discard, step)
}

/// Encrypts what was written during the handshake.
fn flush_queued<Data>(w: &mut WriteTraffic<'_, Data>, side: &mut Side) -> Result<(), Step> {
    if side.queued.is_empty() || side.failed {
        return Ok(());
    }
    let queued = std::mem::take(&mut side.queued);
    let n = queued.len();
    encrypt(w, &[IoSlice::new(&queued)], n, &mut side.out)
}

/// Encrypts the first `take` bytes of `bufs` into `out`, cut into records
/// exactly as one contiguous write would be: a record that spans slices
/// (a frame header and its payload) is gathered first, so a header never
/// becomes a record of its own.
fn encrypt<Data>(w: &mut WriteTraffic<'_, Data>, bufs: &[IoSlice<'_>], take: usize, out: &mut Buf) -> Result<(), Step> {
    let mut left = take;
    let (mut i, mut off) = (0, 0);
    let mut gathered = Vec::new();
    while left > 0 {
        while bufs[i].len() == off {
            i += 1;
            off = 0;
        }
        let s = &bufs[i][off..];
        let whole = if s.len() >= left { left } else { s.len() / MAX_FRAGMENT * MAX_FRAGMENT };
        if whole > 0 {
            encrypt_slice(w, &s[..whole], out)?;
            off += whole;
            left -= whole;
        } else {
            let n = left.min(MAX_FRAGMENT);
            gathered.clear();
            let mut need = n;
            while need > 0 {
                while bufs[i].len() == off {
                    i += 1;
                    off = 0;
                }
                let k = need.min(bufs[i].len() - off);
                gathered.extend_from_slice(&bufs[i][off..off + k]);
                off += k;
                need -= k;
            }
            encrypt_slice(w, &gathered, out)?;
            left -= n;
        }
    }
    Ok(())
}

fn encrypt_slice<Data>(w: &mut WriteTraffic<'_, Data>, data: &[u8], out: &mut Buf) -> Result<(), Step> {
    let mut guess = data.len() + (data.len() / MAX_FRAGMENT + 1) * RECORD_OVERHEAD;
    loop {
        match w.encrypt(data, out.room(guess)) {
            Ok(n) => {
                out.commit(n);
                return Ok(());
            }
            Err(EncryptError::InsufficientSize(s)) => guess = s.required_size,
            Err(EncryptError::EncryptExhausted) => {
                // TLS 1.2 keys used for as many records as they may be
                // (rustls queued a close_notify) or TLS 1.3 ones that could
                // not be refreshed: the connection cannot go on.
                return Err(Step::Failed(rustls::Error::EncryptError));
            }
        }
    }
}

/// Appends the first `n` bytes of `bufs` to `v`.
fn gather(bufs: &[IoSlice<'_>], mut n: usize, v: &mut Vec<u8>) {
    for b in bufs {
        if n == 0 {
            break;
        }
        let k = n.min(b.len());
        v.extend_from_slice(&b[..k]);
        n -= k;
    }
}
