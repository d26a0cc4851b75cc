//! Registration (`botmox-agent pair`): redeem the pairing code with
//! `POST /api/v1/agents/register`, pinning the server certificate when the
//! bundle carries `server_cert_sha256`; then store the agent token in the
//! secret store and the agent id, server URL and pin in the config.

use std::time::Duration;

use botmox_protocol::{codes, RegisterRequest, RegisterResponse};
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use crate::config::{self, secret_names, ConfigStore, ServerConfig};
use crate::http::{HttpError, ServerClient};
use crate::pairing::PairingInput;
use crate::retry::RetryPolicy;
use crate::secrets::SecretStore;
use crate::tls;

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("PAIRING_NOT_FOUND: the pairing code is unknown or was already used; create a new pairing in Bot-Mox and use its bundle")]
    NotFound,
    #[error("PAIRING_EXPIRED: the pairing code has expired; create a new pairing in Bot-Mox and use its bundle")]
    Expired,
    #[error("SERVER_UNREACHABLE: cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("TLS_PIN_MISMATCH: the server at {url} presented a certificate that does not match the fingerprint in the pairing bundle; the bundle belongs to another server or the connection is intercepted ({detail})")]
    PinMismatch { url: String, detail: String },
    #[error("TLS_ERROR: the TLS connection to {url} failed: {detail}")]
    Tls { url: String, detail: String },
    #[error("registration refused: {0}")]
    Refused(HttpError),
    #[error("the pairing has no server URL: pass --server-url URL")]
    NoServer,
    #[error("the server's answer is not a registration: {0}")]
    BadAnswer(String),
    #[error("cannot store the agent token: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error("cannot save the config: {0}")]
    Config(#[from] config::ConfigError),
}

/// Per-call budget of `pair`: a person is waiting, so give up in ~20 s.
pub fn budget() -> RetryPolicy {
    RetryPolicy::exponential(
        4,
        Duration::from_secs(1),
        Duration::from_secs(4),
        Duration::from_secs(20),
    )
}

fn classify(url: &str, e: HttpError) -> PairError {
    match e {
        HttpError::Api { code, .. } if code == codes::PAIRING_NOT_FOUND => PairError::NotFound,
        HttpError::Api { code, .. } if code == codes::PAIRING_EXPIRED => PairError::Expired,
        HttpError::Tls(d) if d.contains(tls::PIN_MISMATCH) => PairError::PinMismatch {
            url: url.into(),
            detail: d,
        },
        HttpError::Tls(d) => PairError::Tls {
            url: url.into(),
            detail: d,
        },
        HttpError::Network(d) | HttpError::Timeout(d) => PairError::Unreachable {
            url: url.into(),
            detail: d,
        },
        HttpError::Api { status, .. } if status >= 500 || status == 429 => PairError::Unreachable {
            url: url.into(),
            detail: e.to_string(),
        },
        other => PairError::Refused(other),
    }
}

/// `x86_64-linux` style platform string.
pub fn platform() -> String {
    format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS)
}

pub fn machine_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
}

/// What the agent can run (sent at registration).
pub const CAPABILITIES: &[&str] = &["proxmox", "ssh", "provision-iso"];

/// Redeems the code. Nothing is stored.
pub async fn register(
    input: &PairingInput,
    policy: &RetryPolicy,
) -> Result<RegisterResponse, PairError> {
    let url = input.server_url.clone().ok_or(PairError::NoServer)?;
    let client = ServerClient::new(
        &url,
        input.server_cert_sha256.as_deref(),
        Duration::from_secs(30),
    )
    .map_err(|e| classify(&url, e))?;
    let req = RegisterRequest {
        pairing_code: input.pairing_code.clone(),
        machine_name: machine_name(),
        version: Some(crate::VERSION.to_string()),
        platform: Some(platform()),
        capabilities: CAPABILITIES.iter().map(|s| s.to_string()).collect(),
    };
    let r = client
        .call(
            Method::POST,
            "/api/v1/agents/register",
            Some(&req),
            policy,
            &CancellationToken::new(),
        )
        .await
        .map_err(|e| classify(&url, e))?;
    let resp: RegisterResponse =
        serde_json::from_value(r.data).map_err(|e| PairError::BadAnswer(e.to_string()))?;
    crate::redact::register_secret(&resp.agent_token);
    Ok(resp)
}

/// Stores the token (secret store) first, then the config (no secrets).
pub fn store(
    input: &PairingInput,
    resp: &RegisterResponse,
    secrets: &dyn SecretStore,
    cfg_store: &ConfigStore,
    backend: crate::secrets::SecretBackend,
) -> Result<(), PairError> {
    secrets.set(secret_names::AGENT_TOKEN, &resp.agent_token)?;
    secrets.delete(secret_names::PAIRING_CODE)?;
    let mut cfg = cfg_store.load()?;
    cfg.secret_store = Some(backend);
    cfg.server = Some(ServerConfig {
        url: input.server_url.clone().unwrap_or_default(),
        cert_sha256: input.server_cert_sha256.clone(),
        agent_id: Some(resp.agent.id.clone()),
        agent_name: Some(resp.agent.name.clone()),
        paired_at: Some(chrono::Utc::now().to_rfc3339()),
        pairing_pending: false,
        proxmox_hint: input.proxmox.clone(),
        allow_insecure_http: input.allow_insecure_http,
    });
    cfg_store.save(&cfg)?;
    Ok(())
}
