//! TLS settings for clients and servers, and the rustls configs made from
//! them.
//!
//! Certificates and keys are parsed when they are set, so a bad file fails
//! the setter (with the reason), not a later dial. The rustls config is
//! built once per settings value and shared by every connection made with
//! it; any setter invalidates it.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock, RwLock};

use super::options::{ClientAuth, MinVersion};

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, ErrorKind, Result};

/// The only application protocol a WebSocket connection offers or accepts:
/// a server that sees `h2` takes the request as HTTP/2 and the upgrade fails.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The crypto provider of every config (see ARCHITECTURE.md: why ring).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(super::lazy_aead::provider())).clone()
}

impl MinVersion {
    fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static BOTH: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            MinVersion::Tls12 => BOTH,
            MinVersion::Tls13 => ONLY13,
        }
    }
}

fn config_error(what: &str, e: impl fmt::Display) -> Error {
    Error::new(ErrorKind::TlsConfig, format!("{what}: {e}"))
}

/// Parses every certificate in PEM `pem` (`what` names it in errors).
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
    let certs = certs.map_err(|e| config_error(&format!("{what}: bad PEM"), e))?;
    if certs.is_empty() {
        return Err(Error::new(ErrorKind::TlsConfig, format!("{what}: no CERTIFICATE block in the PEM data")));
    }
    Ok(certs)
}

/// Parses the first private key (PKCS#8, RSA/PKCS#1 or SEC1 EC) in PEM `pem`.
pub fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| config_error(&format!("{what}: no usable private key"), e))
}

/// Reads a file for a setter, naming it in the error.
pub fn read_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| config_error(&format!("cannot read {what} {}", path.display()), e))
}

/// The system's trust store, loaded once per process (reading and parsing
/// it takes milliseconds).
fn system_roots() -> Result<Arc<RootCertStore>> {
    static ROOTS: OnceLock<std::result::Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
                return Err(format!(
                    "the system trust store has no usable certificate{why}; set a CA file or PEM for this dialer"
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
        .map_err(|m| Error::new(ErrorKind::TlsConfig, m))
}

/// A client certificate chain and its key (mutual TLS).
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// Client-side TLS settings. Cheap to clone; the rustls config built from
/// them is shared by clones until one of them changes a setting.
#[derive(Clone, Default)]
pub struct TlsClientConfig {
    /// `None`: the system store when no CA was set, else only the set CAs.
    system_roots: Option<bool>,
    cas: Vec<CertificateDer<'static>>,
    identity: Option<Arc<Identity>>,
    min_version: MinVersion,
    skip_hostname: bool,
    built: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
}

impl fmt::Debug for TlsClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientConfig")
            .field("system_roots", &self.system_roots)
            .field("cas", &self.cas.len())
            .field("client_certificate", &self.identity.is_some())
            .field("min_version", &self.min_version)
            .field("insecure_skip_hostname_verification", &self.skip_hostname)
            .finish()
    }
}

impl TlsClientConfig {
    fn changed(&mut self) {
        self.built = Arc::new(OnceLock::new());
    }

    /// Trusts the CA certificates in PEM `pem` (added to any set before).
    /// Setting a CA replaces the system store unless
    /// [`use_system_roots`](Self::use_system_roots)`(true)` says otherwise.
    pub fn add_ca_pem(&mut self, pem: &[u8]) -> Result<()> {
        let certs = parse_certs(pem, "CA certificate")?;
        self.cas.extend(certs);
        self.changed();
        Ok(())
    }

    pub fn add_ca_file(&mut self, path: &Path) -> Result<()> {
        let pem = read_file(path, "CA file")?;
        self.add_ca_pem(&pem)
    }

    /// Whether the system trust store is used (besides any CA set).
    pub fn use_system_roots(&mut self, on: bool) {
        self.system_roots = Some(on);
        self.changed();
    }

    /// Presents this certificate chain (leaf first) and key to servers that
    /// ask for one (mutual TLS).
    pub fn set_client_certificate_pem(&mut self, chain_pem: &[u8], key_pem: &[u8]) -> Result<()> {
        let chain = parse_certs(chain_pem, "client certificate")?;
        let key = parse_key(key_pem, "client key")?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider())
            .map_err(|e| config_error("client certificate and key", e))?;
        self.identity = Some(Arc::new(Identity { chain, key }));
        self.changed();
        Ok(())
    }

    pub fn set_client_certificate_files(&mut self, chain: &Path, key: &Path) -> Result<()> {
        let c = read_file(chain, "client certificate file")?;
        let k = read_file(key, "client key file")?;
        self.set_client_certificate_pem(&c, &k)
    }

    pub fn set_min_version(&mut self, v: MinVersion) {
        self.min_version = v;
        self.changed();
    }

    /// TEST SETUPS ONLY: accepts a trusted certificate issued for another
    /// host name. The chain is still verified; anyone holding any
    /// certificate from a trusted CA can then impersonate the server.
    pub fn insecure_skip_hostname_verification(&mut self, skip: bool) {
        self.skip_hostname = skip;
        self.changed();
    }

    /// The rustls config for these settings (built on first use).
    pub fn rustls(&self) -> Result<Arc<rustls::ClientConfig>> {
        if let Some(c) = self.built.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.build()?);
        Ok(self.built.get_or_init(|| c).clone())
    }

    fn build(&self) -> Result<rustls::ClientConfig> {
        let mut roots = RootCertStore::empty();
        if self.system_roots.unwrap_or(self.cas.is_empty()) {
            roots.roots.extend(system_roots()?.roots.iter().cloned());
        }
        for ca in &self.cas {
            roots.add(ca.clone()).map_err(|e| config_error("CA certificate", e))?;
        }
        if roots.is_empty() {
            return Err(Error::new(ErrorKind::TlsConfig, "no trusted CA: the system store is off and no CA was set"));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| config_error("TLS versions", e))?;
        let roots = Arc::new(roots);
        let builder = if self.skip_hostname {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| config_error("certificate verifier", e))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostName(inner)))
        } else {
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| config_error("client certificate", e))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(config)
    }
}

/// Verifies the chain like webpki but accepts any host name (the loudly
/// named opt-out above).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The server's current certificate. Replacing it affects new handshakes
/// only: open connections keep the keys they agreed on.
#[derive(Debug)]
struct CertSlot(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertSlot {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| k.clone())
    }
}

/// The server's session cache (TLS resumption), emptied when the
/// certificate is replaced: a resumed session skips the certificate, so
/// without this a client could go on resuming into the old identity.
#[derive(Debug)]
struct SessionSlot(RwLock<Arc<ServerSessionMemoryCache>>);

/// Sessions kept for resumption per server config.
const SESSION_CACHE_SIZE: usize = 256;

impl SessionSlot {
    fn new() -> SessionSlot {
        SessionSlot(RwLock::new(ServerSessionMemoryCache::new(SESSION_CACHE_SIZE)))
    }
    fn current(&self) -> Option<Arc<ServerSessionMemoryCache>> {
        self.0.read().ok().map(|c| c.clone())
    }
    fn clear(&self) {
        if let Ok(mut c) = self.0.write() {
            *c = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        }
    }
}

impl StoresServerSessions for SessionSlot {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.current().is_some_and(|c| c.put(key, value))
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current()?.get(key)
    }
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.current()?.take(key)
    }
    fn can_cache(&self) -> bool {
        true
    }
}

/// Server-side TLS settings. Clones share the certificate slot, so
/// [`replace_certificate_pem`](Self::replace_certificate_pem) on any clone
/// reaches listeners that took a snapshot earlier.
#[derive(Clone)]
pub struct TlsServerConfig {
    cert: Arc<CertSlot>,
    sessions: Arc<SessionSlot>,
    client_auth: ClientAuth,
    client_cas: Vec<CertificateDer<'static>>,
    min_version: MinVersion,
    built: Arc<OnceLock<Arc<rustls::ServerConfig>>>,
}

impl fmt::Debug for TlsServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServerConfig")
            .field("client_auth", &self.client_auth)
            .field("client_cas", &self.client_cas.len())
            .field("min_version", &self.min_version)
            .finish()
    }
}

fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>> {
    let chain = parse_certs(chain_pem, "certificate chain")?;
    let key = parse_key(key_pem, "private key")?;
    let ck = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| config_error("certificate and key", e))?;
    Ok(Arc::new(ck))
}

impl TlsServerConfig {
    /// A server config from a PEM certificate chain (leaf first) and its
    /// private key (PKCS#8, RSA or EC, PEM).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsServerConfig> {
        Ok(TlsServerConfig {
            cert: Arc::new(CertSlot(RwLock::new(certified_key(chain_pem, key_pem)?))),
            sessions: Arc::new(SessionSlot::new()),
            client_auth: ClientAuth::None,
            client_cas: Vec::new(),
            min_version: MinVersion::Tls12,
            built: Arc::new(OnceLock::new()),
        })
    }

    pub fn from_files(chain: &Path, key: &Path) -> Result<TlsServerConfig> {
        let c = read_file(chain, "certificate file")?;
        let k = read_file(key, "key file")?;
        TlsServerConfig::from_pem(&c, &k)
    }

    /// Replaces the certificate for new handshakes (open connections are
    /// not affected) and forgets the sessions clients could resume, so
    /// every new connection sees the new certificate. On error the old
    /// certificate stays.
    pub fn replace_certificate_pem(&self, chain_pem: &[u8], key_pem: &[u8]) -> Result<()> {
        let ck = certified_key(chain_pem, key_pem)?;
        *self.cert.0.write().map_err(|_| Error::poisoned())? = ck;
        self.sessions.clear();
        Ok(())
    }

    pub fn replace_certificate_files(&self, chain: &Path, key: &Path) -> Result<()> {
        let c = read_file(chain, "certificate file")?;
        let k = read_file(key, "key file")?;
        self.replace_certificate_pem(&c, &k)
    }

    /// Asks clients for certificates issued by the CAs in `ca_pem`.
    pub fn set_client_auth(&mut self, mode: ClientAuth, ca_pem: Option<&[u8]>) -> Result<()> {
        let cas = match ca_pem {
            Some(p) => parse_certs(p, "client CA certificate")?,
            None => Vec::new(),
        };
        if mode != ClientAuth::None && cas.is_empty() {
            return Err(Error::new(ErrorKind::TlsConfig, "client certificates need a CA to verify them against"));
        }
        self.client_auth = mode;
        self.client_cas = cas;
        self.built = Arc::new(OnceLock::new());
        Ok(())
    }

    pub fn set_min_version(&mut self, v: MinVersion) {
        self.min_version = v;
        self.built = Arc::new(OnceLock::new());
    }

    pub fn rustls(&self) -> Result<Arc<rustls::ServerConfig>> {
        if let Some(c) = self.built.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.build()?);
        Ok(self.built.get_or_init(|| c).clone())
    }

    fn build(&self) -> Result<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(self.min_version.versions())
            .map_err(|e| config_error("TLS versions", e))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            mode => {
                let mut roots = RootCertStore::empty();
                for ca in &self.client_cas {
                    roots.add(ca.clone()).map_err(|e| config_error("client CA certificate", e))?;
                }
                let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let v = if mode == ClientAuth::Optional { v.allow_unauthenticated() } else { v };
                builder.with_client_cert_verifier(v.build().map_err(|e| config_error("client verifier", e))?)
            }
        };
        let mut config = builder.with_cert_resolver(self.cert.clone());
        config.session_storage = self.sessions.clone();
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        Ok(config)
    }
}
