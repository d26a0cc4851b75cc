//! Self-signed server certificate and its PVE-style SHA-256 fingerprint.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::SimError;

/// The simulator's certificate and key.
#[derive(Clone)]
pub struct SimCertificate {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for SimCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCertificate")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl SimCertificate {
    /// Generates a certificate for `127.0.0.1`, `localhost` and the node name.
    pub fn generate(node: &str) -> Result<Self, SimError> {
        let names = vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
            node.to_string(),
        ];
        let certified =
            rcgen::generate_simple_self_signed(names).map_err(|e| SimError::Tls(e.to_string()))?;
        Ok(SimCertificate {
            cert_der: certified.cert.der().to_vec(),
            cert_pem: certified.cert.pem(),
            key_der: certified.signing_key.serialize_der(),
        })
    }

    pub fn der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the DER certificate as `AB:CD:...` (how PVE shows it).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.cert_der)
    }

    /// A rustls server configuration (aws-lc-rs provider, h2 + http/1.1).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, SimError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.key_der.clone().into());
        let cert = rustls::pki_types::CertificateDer::from(self.cert_der.clone());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SimError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| SimError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Colon-separated upper-case hex SHA-256 of `der`.
pub fn fingerprint_of(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
