//! TLS 1.3 record protection that keeps only the raw traffic key per
//! connection and borrows the expanded key from [`super::key_cache`].
//!
//! The suites are ring's (same hash, HKDF, limits, key extraction); only
//! the AEAD's encrypter and decrypter differ from rustls's ring ones, and
//! they seal and open exactly as those do (RFC 8446 §5.2: nonce = IV xor
//! sequence number, additional data = the record header, the content type
//! appended to the plaintext). TLS 1.2 suites stay ring's own: they are
//! rarer, and their explicit-nonce handling is not worth a second copy.

use ring::aead::{self, Aad, Algorithm};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter, Nonce,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::crypto::CryptoProvider;
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};
use zeroize::Zeroizing;

use super::key_cache::{self, Hint};

/// One TLS 1.3 AEAD: ring's algorithm for sealing, ring's rustls AEAD for
/// everything else (key length, key extraction, FIPS).
struct LazyAead {
    alg: &'static Algorithm,
    ring: &'static dyn Tls13AeadAlgorithm,
}

/// A direction's key: the raw bytes (wiped on drop), the IV, and where its
/// expansion lives.
struct LazyKey {
    alg: &'static Algorithm,
    raw: Zeroizing<[u8; 32]>,
    len: usize,
    iv: Iv,
    id: u64,
    hint: Hint,
}

impl LazyKey {
    fn new(alg: &'static Algorithm, key: AeadKey, iv: Iv) -> LazyKey {
        let k = key.as_ref();
        let mut raw = Zeroizing::new([0u8; 32]);
        raw[..k.len()].copy_from_slice(k);
        LazyKey { alg, raw, len: k.len(), iv, id: key_cache::new_id(), hint: Hint::default() }
    }

    fn with<R>(&mut self, f: impl FnOnce(&aead::LessSafeKey) -> R) -> R {
        key_cache::with_key(self.id, &mut self.hint, self.alg, &self.raw[..self.len], f)
    }

    fn nonce(&self, seq: u64) -> aead::Nonce {
        aead::Nonce::assume_unique_for_key(Nonce::new(&self.iv, seq).0)
    }
}

impl Drop for LazyKey {
    fn drop(&mut self) {
        key_cache::forget(self.id, self.hint);
    }
}

impl Tls13AeadAlgorithm for LazyAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Sealer(LazyKey::new(self.alg, key, iv)))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Opener(LazyKey::new(self.alg, key, iv)))
    }

    fn key_len(&self) -> usize {
        self.ring.key_len()
    }

    fn extract_keys(&self, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        self.ring.extract_keys(key, iv)
    }

    fn fips(&self) -> bool {
        self.ring.fips()
    }
}

struct Sealer(LazyKey);
struct Opener(LazyKey);

impl MessageEncrypter for Sealer {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        let nonce = self.0.nonce(seq);
        let aad = Aad::from(make_tls13_aad(total_len));
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        self.0.with(|k| k.seal_in_place_append_tag(nonce, aad, &mut payload)).map_err(|_| Error::EncryptError)?;
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + self.0.alg.tag_len()
    }
}

impl MessageDecrypter for Opener {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        if payload.len() < self.0.alg.tag_len() {
            return Err(Error::DecryptError);
        }
        let nonce = self.0.nonce(seq);
        let aad = Aad::from(make_tls13_aad(payload.len()));
        let plain_len =
            self.0.with(|k| k.open_in_place(nonce, aad, payload).map(|p| p.len())).map_err(|_| Error::DecryptError)?;
        payload.truncate(plain_len);
        msg.into_tls13_unpadded_message()
    }
}

/// ring's algorithm behind a TLS 1.3 suite, or None for a suite this module
/// does not wrap.
fn ring_algorithm(suite: CipherSuite) -> Option<&'static Algorithm> {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => Some(&aead::AES_128_GCM),
        CipherSuite::TLS13_AES_256_GCM_SHA384 => Some(&aead::AES_256_GCM),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => Some(&aead::CHACHA20_POLY1305),
        _ => None,
    }
}

/// ring's default provider with its TLS 1.3 suites' record protection
/// replaced by the lazily expanded one (same order, same everything
/// else). The rebuilt suites are leaked (rustls wants `&'static`): call it
/// once per process, as `config::provider` does (it keeps the result).
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites = p
        .cipher_suites
        .iter()
        .map(|s| match s {
            SupportedCipherSuite::Tls13(t) => match ring_algorithm(t.common.suite) {
                Some(alg) => {
                    let aead: &'static LazyAead = Box::leak(Box::new(LazyAead { alg, ring: t.aead_alg }));
                    let suite: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
                        common: CipherSuiteCommon {
                            suite: t.common.suite,
                            hash_provider: t.common.hash_provider,
                            confidentiality_limit: t.common.confidentiality_limit,
                        },
                        hkdf_provider: t.hkdf_provider,
                        aead_alg: aead,
                        quic: t.quic,
                    }));
                    SupportedCipherSuite::Tls13(suite)
                }
                None => *s,
            },
            other => *other,
        })
        .collect();
    p
}
