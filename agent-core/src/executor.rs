//! Command dispatch: `execute(command_type, payload, ctx)` routes `proxmox.*`
//! and `ssh.*` commands to their executors, with cancellation and multiple
//! Proxmox targets (`target` in the payload, else the active one).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::config::{secret_names, AgentConfig, AuthKind, TargetConfig};
use crate::proxmox::{PveAuth, PveClient, PveConnection, PveError};
use crate::retry::RetryPolicy;
use crate::secrets::{SecretError, SecretStore};
use crate::ssh::KnownHosts;
use crate::tls::TlsTrust;

/// A failed command: `code` is stable (`PROXMOX_TASK_FAILED`, `SSH_AUTH_FAILED`,
/// …), `message` is for people. Displayed as `CODE: message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ExecError {
    pub code: String,
    pub message: String,
}

impl ExecError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ExecError {
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("BAD_REQUEST", message)
    }

    pub fn cancelled() -> Self {
        Self::new("CANCELLED", "the command was cancelled")
    }
}

impl From<PveError> for ExecError {
    fn from(e: PveError) -> Self {
        ExecError::new(e.code(), e.to_string())
    }
}

impl From<SecretError> for ExecError {
    fn from(e: SecretError) -> Self {
        ExecError::new("SECRET_STORE_ERROR", e.to_string())
    }
}

/// Secrets of one target, loaded from the secret store.
#[derive(Clone, Default)]
pub struct TargetSecrets {
    pub password: Option<String>,
    pub token_secret: Option<String>,
    pub ssh_private_key: Option<String>,
    pub ssh_passphrase: Option<String>,
    pub ssh_password: Option<String>,
}

impl std::fmt::Debug for TargetSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSecrets")
            .field("password", &self.password.is_some())
            .field("token_secret", &self.token_secret.is_some())
            .field("ssh_private_key", &self.ssh_private_key.is_some())
            .finish_non_exhaustive()
    }
}

impl TargetSecrets {
    pub fn load(store: &dyn SecretStore, id: &str) -> Result<Self, SecretError> {
        Ok(TargetSecrets {
            password: store.get(&secret_names::proxmox_password(id))?,
            token_secret: store.get(&secret_names::proxmox_token_secret(id))?,
            ssh_private_key: store.get(&secret_names::ssh_private_key(id))?,
            ssh_passphrase: store.get(&secret_names::ssh_passphrase(id))?,
            ssh_password: store.get(&secret_names::ssh_password(id))?,
        })
    }
}

/// A target with its secrets.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: TargetConfig,
    pub secrets: TargetSecrets,
}

/// The error of a request the target's local policy refuses.
pub const TARGET_POLICY_FORBIDDEN: &str = "TARGET_POLICY_FORBIDDEN";

impl Target {
    /// `TARGET_POLICY_FORBIDDEN` naming `what` unless the customer set
    /// `allow_host_level_config` on this target.
    pub fn require_host_level_config(&self, what: &str) -> Result<(), ExecError> {
        if self.config.allow_host_level_config {
            return Ok(());
        }
        Err(ExecError::new(
            TARGET_POLICY_FORBIDDEN,
            format!(
                "target {:?} does not allow host-level VM config: {what} \
                 (allow_host_level_config is off; the customer can turn it on locally with \
                 `botmox-agent targets add … --allow-host-level-config` or in the tray)",
                self.config.id
            ),
        ))
    }

    /// The PVE connection settings of this target.
    pub fn connection(&self) -> Result<PveConnection, ExecError> {
        let c = &self.config;
        let missing = |what: &str| {
            ExecError::new(
                "PROXMOX_NOT_CONFIGURED",
                format!("target {:?} has no {what} stored", c.id),
            )
        };
        let auth = match c.auth {
            AuthKind::Token => PveAuth::Token {
                token_id: c.token_id.clone().ok_or_else(|| missing("token id"))?,
                secret: self
                    .secrets
                    .token_secret
                    .clone()
                    .ok_or_else(|| missing("API token secret"))?,
            },
            AuthKind::Password => PveAuth::Password {
                username: c.username.clone().ok_or_else(|| missing("username"))?,
                password: self
                    .secrets
                    .password
                    .clone()
                    .ok_or_else(|| missing("password"))?,
            },
        };
        let trust = if c.tls.insecure {
            TlsTrust::Insecure
        } else if let Some(fp) = &c.tls.fingerprint {
            TlsTrust::Pinned(fp.clone())
        } else if let Some(ca) = &c.tls.ca_file {
            let pem = std::fs::read_to_string(ca).map_err(|e| {
                ExecError::new(
                    "PROXMOX_CONFIG_ERROR",
                    format!("cannot read CA file {}: {e}", ca.display()),
                )
            })?;
            TlsTrust::Ca(pem)
        } else {
            TlsTrust::System
        };
        Ok(PveConnection::new(&c.url, auth, trust))
    }
}

/// All configured targets, the active one, cached PVE clients (so ticket
/// sessions are reused) and the SSH known-hosts store.
#[derive(Debug)]
pub struct Targets {
    targets: Vec<Target>,
    active: Option<String>,
    clients: Mutex<HashMap<String, Arc<PveClient>>>,
    known_hosts: KnownHosts,
    retry: Option<RetryPolicy>,
}

impl Targets {
    pub fn new(targets: Vec<Target>, active: Option<String>, known_hosts: KnownHosts) -> Self {
        Targets {
            targets,
            active,
            clients: Mutex::new(HashMap::new()),
            known_hosts,
            retry: None,
        }
    }

    /// Overrides the retry budget of every Proxmox client (default: 4
    /// attempts, 1 s → 8 s, within 60 s).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Loads every target of `cfg` with its secrets; SSH host keys are kept
    /// in `<config_dir>/known_hosts.json`.
    pub fn load(
        cfg: &AgentConfig,
        store: &dyn SecretStore,
        config_dir: &Path,
    ) -> Result<Self, SecretError> {
        let mut list = Vec::new();
        for t in &cfg.targets {
            list.push(Target {
                config: t.clone(),
                secrets: TargetSecrets::load(store, &t.id)?,
            });
        }
        Ok(Targets::new(
            list,
            cfg.active_target.clone(),
            KnownHosts::new(known_hosts_path(config_dir)),
        ))
    }

    pub fn list(&self) -> &[Target] {
        &self.targets
    }

    pub fn known_hosts(&self) -> &KnownHosts {
        &self.known_hosts
    }

    /// `payload.target` (or `targetId`), else the active target, else the first.
    pub fn resolve(&self, payload: &Value) -> Result<&Target, ExecError> {
        let wanted = payload
            .get("target")
            .or_else(|| payload.get("targetId"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        if let Some(id) = wanted {
            return self
                .targets
                .iter()
                .find(|t| t.config.id == id)
                .ok_or_else(|| {
                    ExecError::new(
                        "PROXMOX_TARGET_UNKNOWN",
                        format!("Unknown Proxmox target: {id}"),
                    )
                });
        }
        self.active
            .as_deref()
            .and_then(|a| self.targets.iter().find(|t| t.config.id == a))
            .or_else(|| self.targets.first())
            .ok_or_else(|| {
                ExecError::new("PROXMOX_NOT_CONFIGURED", "No Proxmox configuration found")
            })
    }

    /// The (cached) API client of a target.
    pub fn client(&self, t: &Target) -> Result<Arc<PveClient>, ExecError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&t.config.id) {
            return Ok(c.clone());
        }
        let mut conn = t.connection()?;
        if let Some(p) = self.retry {
            conn.retry = p;
        }
        let c = Arc::new(PveClient::new(conn)?);
        clients.insert(t.config.id.clone(), c.clone());
        Ok(c)
    }

    /// `[{id,label,url,username,node,isActive,sshConfigured,tls,insecure}]`,
    /// active first, then by label.
    pub fn describe(&self) -> Value {
        let active = self
            .active
            .clone()
            .or_else(|| self.targets.first().map(|t| t.config.id.clone()));
        let mut rows: Vec<(bool, String, Value)> = self
            .targets
            .iter()
            .map(|t| {
                let c = &t.config;
                let is_active = active.as_deref() == Some(c.id.as_str());
                let label = c.display_label();
                (
                    is_active,
                    label.clone(),
                    json!({
                        "id": c.id,
                        "label": label,
                        "url": c.url,
                        "username": c.username.clone().or_else(|| c.token_id.clone()),
                        "node": c.node,
                        "auth": c.auth,
                        "isActive": is_active,
                        "sshConfigured": crate::ssh::SshSettings::resolve(t, &Value::Null).is_ok(),
                        "tls": c.tls_mode(),
                        "insecure": c.tls.insecure,
                        "allowSshOverride": c.allow_ssh_override,
                        "allowHostLevelConfig": c.allow_host_level_config,
                    }),
                )
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        Value::Array(rows.into_iter().map(|r| r.2).collect())
    }
}

pub fn known_hosts_path(config_dir: &Path) -> PathBuf {
    config_dir.join("known_hosts.json")
}

/// What an executor needs besides the payload.
#[derive(Debug, Clone)]
pub struct ExecContext {
    pub targets: Arc<Targets>,
    /// Cancelled when the server asks to cancel the command (or on shutdown).
    pub cancel: CancellationToken,
}

impl ExecContext {
    pub fn new(targets: Arc<Targets>, cancel: CancellationToken) -> Self {
        ExecContext { targets, cancel }
    }
}

/// Runs one command. Never panics on bad input; every failure is an
/// [`ExecError`] with a stable code.
pub async fn execute(
    command_type: &str,
    payload: Value,
    ctx: &ExecContext,
) -> Result<Value, ExecError> {
    if ctx.cancel.is_cancelled() {
        return Err(ExecError::cancelled());
    }
    let payload = match payload {
        Value::Null => Value::Object(Default::default()),
        Value::Object(_) => payload,
        _ => return Err(ExecError::bad_request("the payload must be a JSON object")),
    };
    let fut = async {
        if let Some(action) = command_type.strip_prefix("proxmox.") {
            if action == "list-targets" {
                return Ok(ctx.targets.describe());
            }
            if let Some(ssh_action) = action.strip_prefix("ssh-") {
                return crate::ssh::execute(ssh_action, &payload, ctx).await;
            }
            return crate::proxmox::actions::execute(action, &payload, ctx).await;
        }
        if let Some(action) = command_type.strip_prefix("ssh.") {
            return crate::ssh::execute(action, &payload, ctx).await;
        }
        Err(ExecError::new(
            "UNKNOWN_COMMAND",
            format!("Unknown command type: {command_type}"),
        ))
    };
    tokio::select! {
        _ = ctx.cancel.cancelled() => Err(ExecError::cancelled()),
        r = fut => r,
    }
}
