//! TLS for HTTPS listeners (rustls): certificates from PEM files, chosen by SNI.

use std::sync::Arc;

use rustls::{
    ServerConfig,
    crypto::ring::{default_provider, sign::any_supported_type},
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::host::HostPattern;

/// One certificate of a listener port, with the listener hostname it belongs to.
#[derive(Debug)]
pub struct SniCertificate {
    /// The listener hostname (`None`: a listener without hostname).
    pub hostname: Option<HostPattern>,
    /// The chain and key.
    pub key: Arc<CertifiedKey>,
}

/// Picks the certificate for a client's SNI: the first entry whose hostname matches it (entries
/// come most specific first), else the first entry without hostname, else the first entry.
#[derive(Debug)]
pub struct SniResolver {
    certificates: Vec<SniCertificate>,
}

impl SniResolver {
    /// A resolver over `certificates`, ordered most specific first.
    pub fn new(certificates: Vec<SniCertificate>) -> Self {
        Self { certificates }
    }

    /// The certificate for `sni`.
    pub fn choose(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = sni.and_then(|sni| {
            let sni = sni.to_ascii_lowercase();
            self.certificates.iter().find(|c| {
                c.hostname
                    .as_ref()
                    .is_some_and(|pattern| pattern.matches(&sni))
            })
        });
        by_name
            .or_else(|| self.certificates.iter().find(|c| c.hostname.is_none()))
            .or_else(|| self.certificates.first())
            .map(|c| c.key.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

/// Parses a PEM certificate chain and private key.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    if chain.is_empty() {
        return Err("certificate: no PEM certificate found".to_owned());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("private key: {e}"))?;
    let signing = any_supported_type(&key).map_err(|e| format!("private key: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// A server config offering HTTP/2 and HTTP/1.1 by ALPN, with certificates chosen by SNI.
pub fn server_config(resolver: SniResolver) -> Result<Arc<ServerConfig>, String> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
