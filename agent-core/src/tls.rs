//! TLS trust for the agent's HTTPS clients: system roots, a private CA, a
//! pinned certificate fingerprint, or an explicit (reported) insecure mode.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// How a server certificate is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The operating system's roots (webpki / platform verifier).
    System,
    /// Only this CA (PEM), with normal hostname checks.
    Ca(String),
    /// Exactly the certificate with this SHA-256 (lower-case hex, 64 chars).
    /// The hostname is not checked; handshake signatures are.
    Pinned(String),
    /// No verification at all. Only when the operator said so explicitly;
    /// shown in `status` and logged as a warning on every client build.
    Insecure,
}

impl TlsTrust {
    /// Short name for status output.
    pub fn mode(&self) -> &'static str {
        match self {
            TlsTrust::System => "system",
            TlsTrust::Ca(_) => "ca",
            TlsTrust::Pinned(_) => "pinned",
            TlsTrust::Insecure => "insecure",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid CA certificate: {0}")]
    BadCa(String),
    #[error("cannot build the HTTPS client: {0}")]
    Build(String),
}

/// SHA-256 of a DER certificate, lower-case hex.
pub fn cert_sha256(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Accepts exactly one certificate by SHA-256 and still verifies the
/// handshake signatures with the certificate's key.
#[derive(Debug)]
pub struct FingerprintVerifier {
    sha256_hex: String,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl FingerprintVerifier {
    pub fn new(sha256_hex: &str) -> Self {
        FingerprintVerifier {
            sha256_hex: sha256_hex.to_ascii_lowercase().replace(':', ""),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }
}

/// Marker text of a pin mismatch, so callers can classify the error.
pub const PIN_MISMATCH: &str = "server certificate fingerprint mismatch";

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = cert_sha256(end_entity);
        if got == self.sha256_hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "{PIN_MISMATCH}: expected {}, got {got}",
                self.sha256_hex
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A reqwest client trusting servers as `trust` says.
pub fn build_client(
    trust: &TlsTrust,
    timeout: Duration,
    user_agent: &str,
) -> Result<reqwest::Client, TlsError> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(user_agent)
        .pool_idle_timeout(Duration::from_secs(30));
    let builder = match trust {
        TlsTrust::System => builder,
        TlsTrust::Ca(pem) => {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| TlsError::BadCa(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsError::BadCa("no certificate in the PEM".into()));
            }
            builder.tls_certs_only(certs)
        }
        TlsTrust::Pinned(fp) => {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Build(e.to_string()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(FingerprintVerifier::new(fp)))
                .with_no_client_auth();
            builder.tls_backend_preconfigured(config)
        }
        TlsTrust::Insecure => {
            tracing::warn!(
                event_name = "agent.tls.insecure",
                "TLS certificate verification is DISABLED for this connection (explicit insecure flag)"
            );
            builder.tls_danger_accept_invalid_certs(true)
        }
    };
    builder.build().map_err(|e| TlsError::Build(e.to_string()))
}

/// Walks an error's sources into one line (reqwest hides the TLS reason).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
