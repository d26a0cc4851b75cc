//! The local-control facade: everything a person does to this agent from
//! its own machine — pair, look at the status, manage Proxmox targets, test
//! them, write a diagnostics bundle, pause/resume. Used by BOTH the
//! `botmox-agent` CLI and the tray app (`agent-tauri`), so neither holds
//! logic of its own.
//!
//! Rules kept here, so every front end gets them:
//! - outputs never carry a secret value: stored secrets show up as flags
//!   (`"saved"` / `"not_set"`), error messages are redacted;
//! - errors are [`ControlError`]: a stable [`ErrorCode`] plus a message meant
//!   for people (displayed `CODE: message`);
//! - secrets go to the secret store from Rust only; an empty secret on edit
//!   keeps the stored one.
//!
//! [`supervisor`] runs the runtime in-process for the tray (pause/resume,
//! revoked, unauthorized backoff, mirror mode when a service owns the dir).

pub mod supervisor;
pub mod targets;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use botmox_protocol::ProxmoxHint;
use serde::Serialize;
use serde_json::Value;

use crate::config::{self, AgentConfig, ConfigError, ConfigStore};
use crate::pairing::{self, PairingError, PairingForm, PairingInput};
use crate::runtime::{self, register};
use crate::secrets::{self, SecretBackend, SecretError, SecretStore};

pub use targets::{
    SaveTargetOutcome, SecretFlag, SshProbe, TargetInput, TargetSecretFlags, TargetSecretsInput,
    TargetTestResult, TargetView, TestProbe, TlsChoice,
};

/// Env var naming the secret backend (`keyring`, `secret-service`, `file`).
pub const ENV_SECRET_STORE: &str = "BOTMOX_AGENT_SECRET_STORE";

/// Stable error codes of the facade (serialized `SCREAMING_SNAKE_CASE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The pairing input is not a bundle, pairing URL or code.
    PairingInvalid,
    /// A raw pairing code without a server URL.
    ServerUrlRequired,
    /// HTTP 404: the code is unknown or was already used.
    PairingNotFound,
    /// HTTP 410: the code has expired.
    PairingExpired,
    ServerUnreachable,
    /// The server's certificate does not match the bundle's pin.
    TlsPinMismatch,
    TlsError,
    /// Any other refusal of the registration.
    PairingRefused,
    /// A cleartext `http://` server URL on a non-loopback host without
    /// the explicit `allow_insecure_http`.
    InsecureServerUrl,
    BadServerAnswer,
    TargetInvalid,
    TargetNotFound,
    /// A new target (or a changed auth kind) needs its secret.
    SecretRequired,
    SecretStoreError,
    ConfigError,
    IoError,
    /// Pause/Resume while a service owns the runtime (mirror mode).
    ManagedByService,
    /// The runtime task is gone (the app is shutting down).
    Unavailable,
    /// The config dir has no registered agent (pair first).
    NotPaired,
    /// Not a secret id.
    SecretInvalid,
    /// The server refused the secret (the message starts with its code:
    /// SECRET_NOT_FOUND, SECRET_NOT_DELIVERABLE, AGENT_PUBLIC_KEY_MISSING, …).
    SecretRefused,
    /// The envelope does not open with this agent's key.
    SecretUnreadable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::PairingInvalid => "PAIRING_INVALID",
            ErrorCode::ServerUrlRequired => "SERVER_URL_REQUIRED",
            ErrorCode::PairingNotFound => "PAIRING_NOT_FOUND",
            ErrorCode::PairingExpired => "PAIRING_EXPIRED",
            ErrorCode::ServerUnreachable => "SERVER_UNREACHABLE",
            ErrorCode::TlsPinMismatch => "TLS_PIN_MISMATCH",
            ErrorCode::TlsError => "TLS_ERROR",
            ErrorCode::PairingRefused => "PAIRING_REFUSED",
            ErrorCode::InsecureServerUrl => "INSECURE_SERVER_URL",
            ErrorCode::BadServerAnswer => "BAD_SERVER_ANSWER",
            ErrorCode::TargetInvalid => "TARGET_INVALID",
            ErrorCode::TargetNotFound => "TARGET_NOT_FOUND",
            ErrorCode::SecretRequired => "SECRET_REQUIRED",
            ErrorCode::SecretStoreError => "SECRET_STORE_ERROR",
            ErrorCode::ConfigError => "CONFIG_ERROR",
            ErrorCode::IoError => "IO_ERROR",
            ErrorCode::ManagedByService => "MANAGED_BY_SERVICE",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::NotPaired => "NOT_PAIRED",
            ErrorCode::SecretInvalid => "SECRET_INVALID",
            ErrorCode::SecretRefused => "SECRET_REFUSED",
            ErrorCode::SecretUnreadable => "SECRET_UNREADABLE",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A facade error: a stable code and a redacted message for people.
/// Serializes as `{"code": "…", "message": "…"}` (what the tray shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ControlError {
    pub code: ErrorCode,
    pub message: String,
}

impl ControlError {
    pub fn new(code: ErrorCode, message: impl AsRef<str>) -> Self {
        ControlError {
            code,
            message: crate::redact::redact_text(message.as_ref()),
        }
    }
}

impl From<ConfigError> for ControlError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid(m) => ControlError::new(ErrorCode::TargetInvalid, m),
            other => ControlError::new(ErrorCode::ConfigError, other.to_string()),
        }
    }
}

impl From<SecretError> for ControlError {
    fn from(e: SecretError) -> Self {
        ControlError::new(ErrorCode::SecretStoreError, e.to_string())
    }
}

impl From<PairingError> for ControlError {
    fn from(e: PairingError) -> Self {
        match e {
            e @ PairingError::InsecureHttp(_) => {
                ControlError::new(ErrorCode::InsecureServerUrl, e.to_string())
            }
            PairingError::ServerUrlRequired => ControlError::new(
                ErrorCode::ServerUrlRequired,
                "a pairing code alone does not say which server to use: enter the server URL \
                 (botmox-agent pair: --server-url URL), or paste the whole pairing bundle",
            ),
            other => ControlError::new(
                ErrorCode::PairingInvalid,
                format!("this is not a valid pairing bundle, link or code: {other}"),
            ),
        }
    }
}

/// A vault failure as the facade reports it.
fn vault_error(e: crate::vault::VaultError) -> ControlError {
    use crate::runtime::api::CallError;
    use crate::vault::VaultError as V;
    match e {
        V::Store(s) => s.into(),
        V::BadKey(_) | V::Generate(_) => {
            ControlError::new(ErrorCode::SecretStoreError, e.to_string())
        }
        V::BadId(_) => ControlError::new(ErrorCode::SecretInvalid, e.to_string()),
        V::Call(CallError::Transient(h)) => {
            ControlError::new(ErrorCode::ServerUnreachable, h.to_string())
        }
        V::Call(c) => ControlError::new(ErrorCode::SecretRefused, c.to_string()),
        V::WrongAnswer { .. } => ControlError::new(ErrorCode::BadServerAnswer, e.to_string()),
        V::Open(_) => ControlError::new(ErrorCode::SecretUnreadable, e.to_string()),
    }
}

impl From<register::PairError> for ControlError {
    fn from(e: register::PairError) -> Self {
        use register::PairError as P;
        match e {
            P::NotFound => ControlError::new(
                ErrorCode::PairingNotFound,
                "the pairing code is unknown or was already used; create a new pairing in \
                 Bot-Mox and paste its bundle",
            ),
            P::Expired => ControlError::new(
                ErrorCode::PairingExpired,
                "the pairing code has expired (HTTP 410); create a new pairing in Bot-Mox and \
                 paste its bundle",
            ),
            P::Unreachable { url, detail } => ControlError::new(
                ErrorCode::ServerUnreachable,
                format!(
                    "cannot reach the Bot-Mox server at {url}; check the address and the \
                     network, then try again ({detail})"
                ),
            ),
            P::PinMismatch { url, .. } => ControlError::new(
                ErrorCode::TlsPinMismatch,
                format!(
                    "the server at {url} presented a certificate that does not match the \
                     fingerprint in the pairing bundle; the bundle belongs to another server, \
                     or the connection is being intercepted. Nothing was sent."
                ),
            ),
            P::Tls { url, detail } => ControlError::new(
                ErrorCode::TlsError,
                format!("the secure connection to {url} failed: {detail}"),
            ),
            P::Refused(h) => ControlError::new(
                ErrorCode::PairingRefused,
                format!("the server refused the registration: {h}"),
            ),
            P::NoServer => ControlError::from(PairingError::ServerUrlRequired),
            P::BadAnswer(m) => ControlError::new(
                ErrorCode::BadServerAnswer,
                format!(
                    "the server's answer is not a registration (is this a Bot-Mox server?): {m}"
                ),
            ),
            P::Secret(s) => s.into(),
            P::Config(c) => ControlError::new(ErrorCode::ConfigError, c.to_string()),
        }
    }
}

/// What a pairing input says, before anything is sent (`preview_pairing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairingPreview {
    /// `bundle`, `json`, `url_with_bundle`, `url_with_code`, `url_with_path`,
    /// `botmox_uri` or `raw_code`.
    pub form: &'static str,
    pub server_url: Option<String>,
    pub server_host: Option<String>,
    /// Lower-case hex SHA-256 of the certificate that will be pinned.
    pub cert_sha256: Option<String>,
    /// The same as `AB:CD:…` (how browsers and `openssl` show it).
    pub cert_fingerprint: Option<String>,
    /// `pinned` (the bundle carries a fingerprint) or `system` (CA roots).
    pub trust: &'static str,
    /// When the code stops working, if the input says (bundle v1 does not).
    pub code_expires_at: Option<String>,
    /// The first characters of the one-time code (`bmxp_ab12…`).
    pub code_preview: String,
    pub proxmox: Option<ProxmoxHint>,
    /// This agent is already paired; pairing again replaces that identity.
    pub replaces: Option<PairedAs>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairedAs {
    pub server_url: String,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
}

/// The result of a successful `pair`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairOutcome {
    pub agent_id: String,
    pub agent_name: String,
    pub server_url: String,
    /// `pinned` or `system`.
    pub trust: &'static str,
    pub paired_at: String,
    pub proxmox: Option<ProxmoxHint>,
}

/// The server section of [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerView {
    pub url: String,
    pub host: Option<String>,
    /// `pinned` or `system`.
    pub tls: &'static str,
    pub paired: bool,
    pub pairing_pending: bool,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub paired_at: Option<String>,
    /// The URL is plain `http://`: the agent token travels unencrypted.
    pub cleartext_http: bool,
    /// The customer explicitly allowed `http://` to a non-loopback host
    /// (`pair --allow-insecure-http`, the tray's checkbox).
    pub allow_insecure_http: bool,
}

/// `botmox-agent status --json` and the tray's status data. No secrets.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub version: &'static str,
    pub config_dir: String,
    pub config_file: String,
    pub log_dir: String,
    pub secret_store: &'static str,
    pub server: Option<ServerView>,
    /// The tray app starts paused.
    pub paused: bool,
    pub active_target: Option<String>,
    pub targets: Vec<TargetView>,
    pub insecure_targets: Vec<String>,
    /// The id (`x25519:` + 16 hex) of the agent key in the secret store, if
    /// any: secrets are sealed to the key the server lists as this agent's
    /// `public_key_id`, so the two must match.
    pub agent_key_id: Option<String>,
    /// The last status the runtime wrote ([`runtime::state::snapshot`]),
    /// with `recent_commands`.
    pub runtime: Value,
}

/// Where a diagnostics bundle was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiagnosticsOutcome {
    pub path: String,
    pub bytes: u64,
}

/// `host` of `https://host:port/…`.
pub fn url_host(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
}

/// `ab12…` → `AB:12:…`.
pub fn colon_fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn form_name(f: PairingForm) -> &'static str {
    match f {
        PairingForm::Bundle => "bundle",
        PairingForm::Json => "json",
        PairingForm::UrlWithBundle => "url_with_bundle",
        PairingForm::UrlWithCode => "url_with_code",
        PairingForm::UrlWithPath => "url_with_path",
        PairingForm::BotmoxUri => "botmox_uri",
        PairingForm::RawCode => "raw_code",
    }
}

/// The secret backend named by `BOTMOX_AGENT_SECRET_STORE`, if set.
pub fn secret_backend_from_env() -> Result<Option<SecretBackend>, ControlError> {
    use clap::ValueEnum;
    match std::env::var(ENV_SECRET_STORE) {
        Ok(v) if !v.trim().is_empty() => {
            SecretBackend::from_str(v.trim(), true)
                .map(Some)
                .map_err(|_| {
                    ControlError::new(
                        ErrorCode::ConfigError,
                        format!(
                            "{ENV_SECRET_STORE}={v:?} is not a secret store; use keyring, \
                         secret-service or file"
                        ),
                    )
                })
        }
        _ => Ok(None),
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    log_dir: PathBuf,
    backend: SecretBackend,
    store: ConfigStore,
    /// Serializes this process's read-modify-write of `config.toml`.
    config_lock: Mutex<()>,
}

/// The facade over one config dir. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

impl Control {
    /// Resolves the config dir and secret store the way `botmox-agent` does:
    /// `config_dir` (flag or `BOTMOX_AGENT_CONFIG_DIR`) else the OS default;
    /// `secret_store` (flag or `BOTMOX_AGENT_SECRET_STORE`) else the backend
    /// saved in the config, else the OS keyring. Logs go to
    /// `<config-dir>/logs` for an explicit dir, else the OS state dir.
    pub fn open(
        config_dir: Option<PathBuf>,
        secret_store: Option<SecretBackend>,
    ) -> Result<Control, ControlError> {
        let explicit = config_dir.is_some();
        let dir = match config_dir {
            Some(d) => d,
            None => config::default_config_dir()?,
        };
        let log_dir = config::log_dir(&dir, explicit);
        Ok(Self::with_paths(dir, log_dir, secret_store))
    }

    /// Like [`Control::open`], reading both settings from the environment
    /// (what the tray app does; it has no flags for them).
    pub fn from_env() -> Result<Control, ControlError> {
        let dir = std::env::var_os(config::ENV_CONFIG_DIR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Self::open(dir, secret_backend_from_env()?)
    }

    /// Explicit paths (tests, embedding).
    pub fn with_paths(
        dir: PathBuf,
        log_dir: PathBuf,
        secret_store: Option<SecretBackend>,
    ) -> Control {
        let store = ConfigStore::new(&dir);
        let saved = store.load().ok().and_then(|c| c.secret_store);
        let backend = secret_store.or(saved).unwrap_or(SecretBackend::Keyring);
        Control {
            inner: Arc::new(Inner {
                dir,
                log_dir,
                backend,
                store,
                config_lock: Mutex::new(()),
            }),
        }
    }

    pub fn config_dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn log_dir(&self) -> &Path {
        &self.inner.log_dir
    }

    pub fn runtime_dir(&self) -> PathBuf {
        runtime::runtime_dir(&self.inner.dir)
    }

    pub fn backend(&self) -> SecretBackend {
        self.inner.backend
    }

    pub fn config_store(&self) -> &ConfigStore {
        &self.inner.store
    }

    pub fn load_config(&self) -> Result<AgentConfig, ControlError> {
        Ok(self.inner.store.load()?)
    }

    /// Load, change, save (serialized within this process). The secret
    /// backend in use is recorded in the config.
    pub fn update_config<T>(
        &self,
        f: impl FnOnce(&mut AgentConfig) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let _g = self
            .inner
            .config_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut cfg = self.inner.store.load()?;
        let out = f(&mut cfg)?;
        cfg.secret_store = Some(self.inner.backend);
        self.inner.store.save(&cfg)?;
        Ok(out)
    }

    pub fn secrets(&self) -> Result<Arc<dyn SecretStore>, ControlError> {
        Ok(secrets::open_store(self.inner.backend, &self.inner.dir)?)
    }

    /// Options for [`runtime::run`] on this config dir.
    pub fn run_options(&self) -> runtime::RunOptions {
        runtime::RunOptions::new(self.inner.dir.clone(), self.inner.backend)
    }

    /// Parses a pairing input (bundle, link, JSON or code) without sending
    /// anything: which server, which certificate pin.
    /// `allow_insecure_http`: accept a cleartext `http://` server on a
    /// non-loopback host (otherwise `INSECURE_SERVER_URL`).
    pub fn preview_pairing(
        &self,
        input: &str,
        server_url: Option<&str>,
        allow_insecure_http: bool,
    ) -> Result<PairingPreview, ControlError> {
        let p = parse_pairing(input, server_url, allow_insecure_http)?;
        let cfg = self.load_config().ok();
        let replaces = cfg.and_then(|c| c.server).and_then(|s| {
            s.agent_id.is_some().then_some(PairedAs {
                server_url: s.url,
                agent_id: s.agent_id,
                agent_name: s.agent_name,
            })
        });
        let code_preview: String = p.pairing_code.chars().take(9).collect::<String>() + "…";
        Ok(PairingPreview {
            form: form_name(p.form),
            server_host: p.server_url.as_deref().and_then(url_host),
            server_url: p.server_url.clone(),
            cert_fingerprint: p.server_cert_sha256.as_deref().map(colon_fingerprint),
            trust: if p.server_cert_sha256.is_some() {
                "pinned"
            } else {
                "system"
            },
            cert_sha256: p.server_cert_sha256,
            code_expires_at: None,
            code_preview,
            proxmox: p.proxmox,
            replaces,
        })
    }

    /// Redeems the pairing code with the server and stores the agent token
    /// (secret store) and identity (config). A new registration starts with
    /// a clean runtime status and is not paused.
    pub async fn pair(
        &self,
        input: &str,
        server_url: Option<&str>,
        allow_insecure_http: bool,
    ) -> Result<PairOutcome, ControlError> {
        self.pair_with(input, server_url, allow_insecure_http, &register::budget())
            .await
    }

    /// [`Control::pair`] with an explicit retry budget.
    pub async fn pair_with(
        &self,
        input: &str,
        server_url: Option<&str>,
        allow_insecure_http: bool,
        budget: &crate::retry::RetryPolicy,
    ) -> Result<PairOutcome, ControlError> {
        let p = parse_pairing(input, server_url, allow_insecure_http)?;
        let secrets = self.secrets()?;
        let url = p.server_url.clone().unwrap_or_default();
        let resp = register::register(&p, budget).await?;
        {
            let _g = self
                .inner
                .config_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            register::store(
                &p,
                &resp,
                secrets.as_ref(),
                &self.inner.store,
                self.inner.backend,
            )?;
        }
        self.update_config(|c| {
            c.paused = false;
            Ok(())
        })?;
        let _ = std::fs::remove_file(self.runtime_dir().join(runtime::state::STATUS_FILE));
        // A new identity gets a new key pair; its public half goes to the
        // server now (the runtime registers it again at every start, so a
        // failure here only delays it).
        secrets.delete(crate::config::secret_names::AGENT_KEY)?;
        if let Err(e) = self
            .register_agent_key(&p, &resp.agent_token, secrets.as_ref(), budget)
            .await
        {
            tracing::warn!(
                event_name = "agent.key.deferred",
                error = %e,
                "the agent key is registered when the agent starts"
            );
        }
        tracing::info!(
            event_name = "agent.registered",
            form = ?p.form,
            server_url = %url,
            agent_id = %resp.agent.id,
            pinned = p.server_cert_sha256.is_some(),
            "agent registered"
        );
        let cfg = self.load_config()?;
        Ok(PairOutcome {
            agent_id: resp.agent.id.clone(),
            agent_name: resp.agent.name.clone(),
            server_url: url,
            trust: if p.server_cert_sha256.is_some() {
                "pinned"
            } else {
                "system"
            },
            paired_at: cfg
                .server
                .and_then(|s| s.paired_at)
                .unwrap_or_else(|| chrono::Utc::now().to_rfc3339()),
            proxmox: p.proxmox,
        })
    }

    /// Make (or load) the agent key and register its public half.
    async fn register_agent_key(
        &self,
        p: &PairingInput,
        token: &str,
        secrets: &dyn SecretStore,
        budget: &crate::retry::RetryPolicy,
    ) -> Result<(), String> {
        let (key, _) = crate::vault::load_or_create(secrets).map_err(|e| e.to_string())?;
        let mut client = crate::http::ServerClient::new(
            p.server_url.as_deref().unwrap_or_default(),
            p.server_cert_sha256.as_deref(),
            std::time::Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())?;
        client.set_token(Some(token.to_string()));
        let api = runtime::api::AgentApi::new(client);
        let cancel = tokio_util::sync::CancellationToken::new();
        let req = botmox_protocol::AgentPublicKeyRequest {
            alg: botmox_protocol::envelope::KEY_ALG.to_string(),
            public_key: key.public().to_base64(),
        };
        let r = tokio::time::timeout(budget.max_elapsed, api.register_public_key(&req, &cancel))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        tracing::info!(event_name = "agent.key.registered", key_id = %r.key_id,
            "agent public key registered with the server");
        Ok(())
    }

    /// A secret bound to this agent, fetched from the server and opened
    /// with the agent key (`botmox-agent secret get`). The value is not
    /// logged and is wiped from memory when dropped.
    pub async fn fetch_secret(
        &self,
        secret_id: &str,
    ) -> Result<botmox_protocol::envelope::Zeroizing<Vec<u8>>, ControlError> {
        let cfg = self.load_config()?;
        let server = cfg
            .server
            .filter(|s| s.agent_id.is_some())
            .ok_or_else(|| ControlError::new(ErrorCode::NotPaired, "this agent is not paired"))?;
        pairing::check_transport(&server.url, server.allow_insecure_http)
            .map_err(|e| ControlError::new(ErrorCode::InsecureServerUrl, e.to_string()))?;
        let agent_id = server.agent_id.clone().unwrap_or_default();
        let secrets = self.secrets()?;
        let token = secrets
            .get(crate::config::secret_names::AGENT_TOKEN)?
            .ok_or_else(|| {
                ControlError::new(ErrorCode::NotPaired, "no agent token in the secret store")
            })?;
        let mut client = crate::http::ServerClient::new(
            &server.url,
            server.cert_sha256.as_deref(),
            std::time::Duration::from_secs(30),
        )
        .map_err(|e| ControlError::new(ErrorCode::TlsError, e.to_string()))?;
        client.set_token(Some(token));
        let api = runtime::api::AgentApi::new(client);
        let cancel = tokio_util::sync::CancellationToken::new();
        let (key, created) = crate::vault::load_or_create(secrets.as_ref()).map_err(vault_error)?;
        if created {
            // A key the server has never seen: only server-sealed secrets
            // can reach it (others must be put again).
            crate::vault::register(&api, &key, &cancel)
                .await
                .map_err(|e| vault_error(e.into()))?;
        }
        crate::vault::fetch(&api, &key, &agent_id, secret_id, &cancel)
            .await
            .map_err(vault_error)
    }

    /// Configuration, targets and the runtime's last recorded status.
    pub fn status(&self) -> Result<StatusReport, ControlError> {
        let cfg = self.load_config()?;
        let secrets = self.secrets().ok();
        let targets = targets::views(&cfg, secrets.as_deref());
        let insecure_targets = cfg
            .targets
            .iter()
            .filter(|t| t.tls.insecure)
            .map(|t| t.id.clone())
            .collect();
        Ok(StatusReport {
            version: crate::VERSION,
            config_dir: self.inner.dir.display().to_string(),
            config_file: self.inner.store.path().display().to_string(),
            log_dir: self.inner.log_dir.display().to_string(),
            secret_store: self.inner.backend.as_str(),
            server: cfg.server.as_ref().map(|s| ServerView {
                url: s.url.clone(),
                host: url_host(&s.url),
                tls: if s.cert_sha256.is_some() {
                    "pinned"
                } else {
                    "system"
                },
                paired: s.agent_id.is_some(),
                pairing_pending: s.pairing_pending,
                agent_id: s.agent_id.clone(),
                agent_name: s.agent_name.clone(),
                paired_at: s.paired_at.clone(),
                cleartext_http: s.url.to_ascii_lowercase().starts_with("http://"),
                allow_insecure_http: s.allow_insecure_http,
            }),
            paused: cfg.paused,
            active_target: cfg.active_target.clone(),
            targets,
            insecure_targets,
            agent_key_id: secrets
                .as_deref()
                .and_then(|s| s.get(crate::config::secret_names::AGENT_KEY).ok().flatten())
                .and_then(|k| botmox_protocol::envelope::AgentKeyPair::from_private_base64(&k).ok())
                .map(|k| k.public().key_id()),
            runtime: runtime::state::snapshot(&self.runtime_dir()),
        })
    }

    /// Records pause/resume in the config (the tray starts paused).
    pub fn set_paused(&self, paused: bool) -> Result<(), ControlError> {
        self.update_config(|c| {
            c.paused = paused;
            Ok(())
        })
    }

    /// Writes the diagnostics bundle (redacted config, versions, last log
    /// lines; never a secret) to `path`.
    pub fn create_diagnostics(&self, path: &Path) -> Result<DiagnosticsOutcome, ControlError> {
        let cfg = self.load_config()?;
        let secrets = self.secrets()?;
        let mut v = crate::diagnostics::bundle(
            &cfg,
            secrets.as_ref(),
            &self.inner.dir,
            &self.inner.log_dir,
            200,
        );
        v["runtime_status"] = runtime::state::snapshot(&self.runtime_dir());
        crate::redact::redact_json(&mut v);
        let text = serde_json::to_string_pretty(&v)
            .map_err(|e| ControlError::new(ErrorCode::IoError, e.to_string()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                ControlError::new(
                    ErrorCode::IoError,
                    format!("cannot create {}: {e}", parent.display()),
                )
            })?;
        }
        std::fs::write(path, &text).map_err(|e| {
            ControlError::new(
                ErrorCode::IoError,
                format!("cannot write {}: {e}", path.display()),
            )
        })?;
        tracing::info!(event_name = "agent.diagnostics.bundle.created", path = %path.display(), "diagnostics bundle written");
        Ok(DiagnosticsOutcome {
            path: path.display().to_string(),
            bytes: text.len() as u64,
        })
    }

    /// `botmox-agent-diagnostics-<UTC timestamp>.json`.
    pub fn diagnostics_file_name() -> String {
        format!(
            "botmox-agent-diagnostics-{}.json",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )
    }
}

fn parse_pairing(
    input: &str,
    server_url: Option<&str>,
    allow_insecure_http: bool,
) -> Result<PairingInput, ControlError> {
    let fallback = server_url.map(str::trim).filter(|s| !s.is_empty());
    Ok(pairing::parse(input)?
        .require_server(fallback)?
        .require_secure_transport(allow_insecure_http)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(json: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn preview_parses_without_sending() {
        let dir = tempfile::tempdir().unwrap();
        let c = Control::with_paths(
            dir.path().to_path_buf(),
            dir.path().join("logs"),
            Some(SecretBackend::File),
        );
        let b = bundle(&format!(
            r#"{{"v":1,"pairing_code":"bmxp_0123456789abcdef","server_url":"https://bm.example:8443/","server_cert_sha256":"{}"}}"#,
            "ab".repeat(32)
        ));
        let p = c.preview_pairing(&b, None, false).unwrap();
        assert_eq!(p.form, "bundle");
        assert_eq!(p.server_url.as_deref(), Some("https://bm.example:8443"));
        assert_eq!(p.server_host.as_deref(), Some("bm.example"));
        assert_eq!(p.trust, "pinned");
        assert!(p.cert_fingerprint.as_deref().unwrap().starts_with("AB:AB:"));
        assert_eq!(p.code_preview, "bmxp_0123…");
        assert!(p.replaces.is_none());

        let e = c.preview_pairing("BMX-ABCD1234", None, false).unwrap_err();
        assert_eq!(e.code, ErrorCode::ServerUrlRequired);
        let p = c
            .preview_pairing("BMX-ABCD1234", Some("https://bm.lan"), false)
            .unwrap();
        assert_eq!(p.form, "raw_code");
        assert_eq!(p.trust, "system");
        let e = c
            .preview_pairing("eyJub3QganNvbg", None, false)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PairingInvalid);
        assert!(e.to_string().starts_with("PAIRING_INVALID: "), "{e}");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], "PAIRING_INVALID");
    }

    /// Issue #11, finding 4: a bundle, link or `--server-url` with plain
    /// `http://` to a non-loopback host was accepted silently and the agent
    /// token then travelled in clear. Now refused with `INSECURE_SERVER_URL`
    /// (preview, pair — before anything is sent — and `run` on a
    /// hand-edited config) unless the customer passes `allow_insecure_http`,
    /// which is recorded and shown by `status`. Loopback `http://` (what
    /// the tests' in-process server uses) stays allowed.
    #[tokio::test]
    async fn finding_4_cleartext_server_url_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Control::with_paths(
            dir.path().to_path_buf(),
            dir.path().join("logs"),
            Some(SecretBackend::File),
        );
        let code = "bmxp_0123456789abcdef";
        let fast = crate::retry::RetryPolicy::exponential(
            1,
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(2),
        );
        for (input, server_url) in [
            (
                bundle(&format!(
                    r#"{{"v":1,"pairing_code":"{code}","server_url":"http://botmox.example.com:8080"}}"#
                )),
                None,
            ),
            (
                format!(r#"{{"pairing_code":"{code}","server_url":"http://192.168.1.10"}}"#),
                None,
            ),
            (
                format!("http://botmox.example.com/agent/pair?code={code}"),
                None,
            ),
            (format!("HTTP://10.0.0.5:8080/pair/{code}"), None),
            (
                format!("https://bm.example/agent/pair?code={code}&server_url=http://10.0.0.5"),
                None,
            ),
            (
                format!("botmox://pair?code={code}&server_url=http://10.0.0.5:8080"),
                None,
            ),
            (code.to_string(), Some("http://bm.lan:8080")),
        ] {
            let e = c.preview_pairing(&input, server_url, false).unwrap_err();
            assert_eq!(e.code, ErrorCode::InsecureServerUrl, "{input}: {e}");
            assert!(e.message.contains("--allow-insecure-http"), "{e}");
            let e = c
                .pair_with(&input, server_url, false, &fast)
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::InsecureServerUrl, "{input}: {e}");
            // the explicit consent lets it through the parser
            let p = c.preview_pairing(&input, server_url, true).unwrap();
            assert!(p.server_url.unwrap().starts_with("http://"));
        }
        assert!(
            c.load_config().unwrap().server.is_none(),
            "nothing was stored"
        );
        for loopback in [
            "http://127.0.0.1:3002",
            "http://localhost:8080",
            "http://[::1]:8443",
            "http://127.1.2.3",
        ] {
            c.preview_pairing(code, Some(loopback), false)
                .unwrap_or_else(|e| panic!("{loopback}: {e}"));
        }
        c.preview_pairing(code, Some("https://bm.example"), false)
            .unwrap();

        // a hand-edited config gets the same rule at `run`, and status
        // shows the transport and the consent
        c.update_config(|cfg| {
            cfg.server = Some(crate::config::ServerConfig {
                url: "http://bm.example:8080".into(),
                agent_id: Some("a1".into()),
                ..Default::default()
            });
            Ok(())
        })
        .unwrap();
        let e = runtime::run(c.run_options(), tokio_util::sync::CancellationToken::new())
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("INSECURE_SERVER_URL: "), "{e}");
        let s = c.status().unwrap().server.unwrap();
        assert!(s.cleartext_http && !s.allow_insecure_http);
        c.update_config(|cfg| {
            cfg.server.as_mut().unwrap().allow_insecure_http = true;
            Ok(())
        })
        .unwrap();
        let s = c.status().unwrap().server.unwrap();
        assert!(s.cleartext_http && s.allow_insecure_http);
    }
}
