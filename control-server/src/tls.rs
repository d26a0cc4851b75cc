//! TLS material: a self-signed certificate generated once and kept in the
//! data directory, or PEM files the admin provides.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a certificate: {0}")]
    Generate(String),
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone)]
pub struct TlsMaterial {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub sha256: String,
    /// True when the certificate was generated on this start.
    pub generated: bool,
}

/// `AB:CD:…` form, as browsers and `openssl x509 -fingerprint` show it.
pub fn colon_hex(sha256_hex: &str) -> String {
    sha256_hex
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

/// Load the self-signed certificate from `<data_dir>/tls/`, creating it on
/// first use with SANs: localhost, 127.0.0.1, ::1, the host name, `extra`.
pub fn self_signed(data_dir: &Path, extra_sans: &[String]) -> Result<TlsMaterial, TlsError> {
    let dir = data_dir.join("tls");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let sans_path = dir.join("sans.txt");
    let sans = wanted_sans(extra_sans);
    let generated = if cert_path.exists() && key_path.exists() {
        let previous = std::fs::read_to_string(&sans_path).unwrap_or_default();
        if previous.trim() != sans.join(",") {
            tracing::warn!(
                cert = %cert_path.display(),
                "the existing self-signed certificate was made for other names ({}); it is kept so \
                 pinned agents keep working. Delete the tls/ directory to regenerate it for: {}",
                previous.trim(),
                sans.join(",")
            );
        }
        false
    } else {
        crate::fsutil::create_private_dir(&dir).map_err(io("create", &dir))?;
        let mut params = rcgen::CertificateParams::new(sans.clone())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "Bot-Mox control server");
        dn.push(rcgen::DnType::OrganizationName, "Bot-Mox (self-signed)");
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.pem()).map_err(io("write", &cert_path))?;
        std::fs::write(&sans_path, sans.join(",")).map_err(io("write", &sans_path))?;
        true
    };
    let sha256 = fingerprint_file(&cert_path)?;
    Ok(TlsMaterial {
        cert_path,
        key_path,
        sha256,
        generated,
    })
}

/// Admin-provided PEM files (checked to exist and to hold a certificate).
pub fn from_files(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
    std::fs::metadata(key).map_err(io("read", key))?;
    Ok(TlsMaterial {
        cert_path: cert.to_path_buf(),
        key_path: key.to_path_buf(),
        sha256: fingerprint_file(cert)?,
        generated: false,
    })
}

/// SHA-256 of the first certificate in a PEM file.
pub fn fingerprint_file(path: &Path) -> Result<String, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(io("read", path))?;
    let der = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| TlsError::NoCertificate {
            path: path.to_path_buf(),
        })?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

fn wanted_sans(extra: &[String]) -> Vec<String> {
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = gethostname::gethostname().into_string() {
        if !host.is_empty() {
            sans.push(host);
        }
    }
    for s in extra {
        let s = s.trim();
        if !s.is_empty() && !sans.iter().any(|x| x == s) {
            sans.push(s.to_string());
        }
    }
    sans
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    crate::fsutil::write_secret_file(path, bytes).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = self_signed(dir.path(), &["botmox.lan".into()]).unwrap();
        assert!(a.generated);
        assert_eq!(a.sha256.len(), 64);
        let b = self_signed(dir.path(), &["botmox.lan".into()]).unwrap();
        assert!(!b.generated);
        assert_eq!(a.sha256, b.sha256);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&a.key_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(colon_hex("ab01"), "AB:01");
    }
}
