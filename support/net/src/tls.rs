//! rustls configuration: servers present a certificate chain; clients trust only the
//! platform CA they were given (pinning), never the system roots.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::NetError;

/// Installs the process-wide crypto provider (aws-lc-rs). Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Reads a PEM file.
pub fn read_pem(path: &Path) -> Result<Vec<u8>, NetError> {
    std::fs::read(path).map_err(|e| NetError::io(format!("reading {}", path.display()), e))
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, NetError> {
    install_provider();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Tls(format!("certificate PEM: {e}")))?;
    if certs.is_empty() {
        return Err(NetError::Tls("no certificate in PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| NetError::Tls(format!("key PEM: {e}")))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| NetError::Tls(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the CA certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<ClientConfig>, NetError> {
    install_provider();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| NetError::Tls(format!("CA PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| NetError::Tls(format!("CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(NetError::Tls("no CA certificate in PEM".into()));
    }
    Ok(Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
