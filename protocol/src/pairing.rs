//! The pairing bundle: what an operator hands to an agent to pair it.
//!
//! `pairing_bundle` = base64url (no padding) of the JSON
//! `{"v":1,"pairing_code","server_url","server_cert_sha256"?,"proxmox"?:{url,username,node}}`.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PairingBundle {
    /// Format version (1).
    pub v: u32,
    pub pairing_code: String,
    pub server_url: String,
    /// SHA-256 of the server's TLS certificate (lowercase hex) to pin, when
    /// the server uses its self-signed certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox: Option<ProxmoxHint>,
}

/// Non-secret Proxmox defaults to pre-fill the agent's first target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProxmoxHint {
    /// `https://…` or `http://…`, at most 500 characters, no control
    /// characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^(?:https://[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,492}|http://[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,493})$"
        )
    )]
    pub url: Option<String>,
    /// At most 200 characters, no control characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,200}$")
    )]
    pub username: Option<String>,
    /// At most 100 characters, no control characters or bidi overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[^\x00-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]{0,100}$")
    )]
    pub node: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PairingBundleError {
    #[error("the bundle is not base64url text (it may have been cut off when copying)")]
    NotBase64,
    #[error("the bundle does not contain valid JSON: {0}")]
    NotJson(String),
    #[error(
        "bundle format version {0} is not supported by this agent (expected 1); update the agent"
    )]
    UnsupportedVersion(u32),
    #[error("the bundle has an empty pairing code")]
    EmptyCode,
    #[error("the bundle's server_url must start with https:// or http://")]
    BadServerUrl,
    #[error("the bundle's server_cert_sha256 must be 64 hex characters")]
    BadFingerprint,
}

impl PairingBundle {
    /// base64url without padding of the compact JSON.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decode and validate (padding and surrounding whitespace tolerated).
    pub fn decode(text: &str) -> Result<PairingBundle, PairingBundleError> {
        let t = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(t.trim_end_matches('='))
            .or_else(|_| URL_SAFE.decode(t))
            .map_err(|_| PairingBundleError::NotBase64)?;
        Self::from_json(&bytes)
    }

    /// Parse and validate the JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<PairingBundle, PairingBundleError> {
        let b: PairingBundle = serde_json::from_slice(bytes)
            .map_err(|e| PairingBundleError::NotJson(e.to_string()))?;
        b.validate()?;
        Ok(b)
    }

    pub fn validate(&self) -> Result<(), PairingBundleError> {
        if self.v != 1 {
            return Err(PairingBundleError::UnsupportedVersion(self.v));
        }
        if self.pairing_code.trim().is_empty() {
            return Err(PairingBundleError::EmptyCode);
        }
        if !(self.server_url.starts_with("https://") || self.server_url.starts_with("http://")) {
            return Err(PairingBundleError::BadServerUrl);
        }
        if let Some(fp) = &self.server_cert_sha256 {
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PairingBundleError::BadFingerprint);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PairingBundle {
        PairingBundle {
            v: 1,
            pairing_code: "bmxp_abc".into(),
            server_url: "https://botmox.lan:8443".into(),
            server_cert_sha256: Some("ab".repeat(32)),
            proxmox: Some(ProxmoxHint {
                url: Some("https://pve:8006".into()),
                username: Some("root@pam".into()),
                node: Some("pve".into()),
            }),
        }
    }

    #[test]
    fn round_trip_without_padding() {
        let b = sample();
        let s = b.encode();
        assert!(!s.contains('=') && !s.contains('+') && !s.contains('/'));
        assert_eq!(PairingBundle::decode(&s).unwrap(), b);
        assert_eq!(PairingBundle::decode(&format!("  {s}\n")).unwrap(), b);
    }

    #[test]
    fn clear_errors() {
        assert_eq!(
            PairingBundle::decode("not base64!").unwrap_err(),
            PairingBundleError::NotBase64
        );
        assert!(matches!(
            PairingBundle::decode(&URL_SAFE_NO_PAD.encode("{")).unwrap_err(),
            PairingBundleError::NotJson(_)
        ));
        let mut b = sample();
        b.v = 2;
        assert_eq!(
            PairingBundle::decode(&b.encode()).unwrap_err(),
            PairingBundleError::UnsupportedVersion(2)
        );
        let mut b = sample();
        b.server_url = "ftp://x".into();
        assert_eq!(b.validate().unwrap_err(), PairingBundleError::BadServerUrl);
        let mut b = sample();
        b.server_cert_sha256 = Some("zz".into());
        assert_eq!(
            b.validate().unwrap_err(),
            PairingBundleError::BadFingerprint
        );
        let mut b = sample();
        b.pairing_code = " ".into();
        assert_eq!(b.validate().unwrap_err(), PairingBundleError::EmptyCode);
    }
}
