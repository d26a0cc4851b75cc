//! Proxmox targets through the facade: list (secrets as flags only), save
//! (add or edit; an empty secret keeps the stored one), remove, make
//! active, and test (Proxmox login + VM list, then an SSH probe) with
//! messages meant for people.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{Control, ControlError, ErrorCode};
use crate::config::{secret_names, AgentConfig, AuthKind, SshConfig, TargetConfig, TargetTls};
use crate::executor::{known_hosts_path, ExecContext, ExecError, Target, TargetSecrets, Targets};
use crate::retry::RetryPolicy;
use crate::secrets::SecretStore;
use crate::ssh::KnownHosts;

/// How a target's certificate is trusted (the form's `select#target-tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsChoice {
    /// CA roots: the system's, or the CA file already configured (kept on edit).
    #[default]
    Ca,
    /// System roots only (drops a configured CA file).
    System,
    /// A pinned SHA-256 fingerprint.
    #[serde(alias = "pinned")]
    Fingerprint,
    /// No verification (reported everywhere as insecure).
    Insecure,
}

/// A target as typed in a form or on the command line. No secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetInput {
    pub id: String,
    pub label: Option<String>,
    /// `https://host:8006` (`host:8006` gets `https://`).
    pub url: String,
    pub node: String,
    /// `token` or `password`; `None` is `token` when a token id is given.
    pub auth: Option<AuthKind>,
    pub token_id: Option<String>,
    pub username: Option<String>,
    pub tls: TlsChoice,
    pub fingerprint: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<String>,
    /// CLI-only settings; `None` keeps the stored value on edit.
    pub ssh_allow_unsafe: Option<bool>,
    pub ssh_qemu_config_dir: Option<String>,
    pub ssh_iso_dir: Option<String>,
    /// Commands may choose the SSH host/port/user (with their own
    /// credentials). `None` keeps the stored value (off for a new target).
    pub allow_ssh_override: Option<bool>,
    /// Host-level VM config keys and `ssh-write-config`. `None` keeps the
    /// stored value (off for a new target).
    pub allow_host_level_config: Option<bool>,
    /// Storage for provisioning ISOs when a command names none. `None`
    /// keeps the stored value, `""` clears it (the agent then picks the
    /// node's ISO storage).
    pub iso_storage: Option<String>,
    /// Make it the active target.
    pub activate: bool,
}

/// Secrets typed with a target. Sent once, never returned; empty or absent
/// keeps the stored value.
#[derive(Clone, Default, Deserialize)]
#[serde(default)]
pub struct TargetSecretsInput {
    pub token_secret: Option<String>,
    pub password: Option<String>,
    pub ssh_private_key: Option<String>,
    pub ssh_passphrase: Option<String>,
    pub ssh_password: Option<String>,
}

impl std::fmt::Debug for TargetSecretsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |v: &Option<String>| given(v).is_some();
        f.debug_struct("TargetSecretsInput")
            .field("token_secret", &s(&self.token_secret))
            .field("password", &s(&self.password))
            .field("ssh_private_key", &s(&self.ssh_private_key))
            .finish_non_exhaustive()
    }
}

/// Whether a secret is stored (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretFlag {
    Saved,
    NotSet,
    /// The secret store could not be read.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSecretFlags {
    pub token_secret: SecretFlag,
    pub password: SecretFlag,
    pub ssh_private_key: SecretFlag,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshView {
    pub host: Option<String>,
    pub port: u16,
    pub user: Option<String>,
    pub allow_unsafe: bool,
}

/// A target as shown to people: settings and secret flags, no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    pub id: String,
    pub label: String,
    pub url: String,
    pub node: String,
    pub auth: AuthKind,
    pub token_id: Option<String>,
    pub username: Option<String>,
    /// `system`, `ca`, `pinned` or `insecure`.
    pub tls: &'static str,
    /// The form's choice for it (`ca`, `fingerprint`, `insecure`).
    pub tls_choice: TlsChoice,
    /// Lower-case hex SHA-256, when pinned.
    pub fingerprint: Option<String>,
    pub ca_file: Option<String>,
    pub insecure: bool,
    pub active: bool,
    pub ssh: Option<SshView>,
    /// Local policy: commands may choose the SSH host/port/user.
    pub allow_ssh_override: bool,
    /// Local policy: host-level VM config and `ssh-write-config`.
    pub allow_host_level_config: bool,
    /// Storage for provisioning ISOs (`None`: the node's ISO storage).
    pub iso_storage: Option<String>,
    pub secrets: TargetSecretFlags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SaveTargetOutcome {
    pub target: TargetView,
    pub created: bool,
    /// E.g. "TLS verification is disabled".
    pub warnings: Vec<String>,
}

/// One probe of `test_target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestProbe {
    pub ok: bool,
    /// `OK` or the error code (`PROXMOX_AUTH_FAILED`, …).
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_count: Option<usize>,
}

/// The SSH probe: `status` is `ok`, `failed` or `skipped` (no SSH settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshProbe {
    pub status: &'static str,
    pub ok: bool,
    pub code: String,
    pub message: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
}

/// `test_target`'s answer. `ok`: Proxmox works and SSH works or is skipped.
/// The top-level `version`/`tls`/`insecure`/`vm_count` are what
/// `botmox-agent targets test` always printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetTestResult {
    pub target: String,
    pub ok: bool,
    pub version: Option<String>,
    pub tls: &'static str,
    pub insecure: bool,
    pub vm_count: Option<usize>,
    pub proxmox: TestProbe,
    pub ssh: SshProbe,
}

/// `Some(trimmed)` for a non-empty value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn invalid(m: impl AsRef<str>) -> ControlError {
    ControlError::new(ErrorCode::TargetInvalid, m)
}

fn flag(store: Option<&dyn SecretStore>, name: &str) -> SecretFlag {
    match store.map(|s| s.get(name)) {
        Some(Ok(Some(_))) => SecretFlag::Saved,
        Some(Ok(None)) => SecretFlag::NotSet,
        _ => SecretFlag::Unknown,
    }
}

fn view(cfg: &AgentConfig, t: &TargetConfig, store: Option<&dyn SecretStore>) -> TargetView {
    TargetView {
        id: t.id.clone(),
        label: t.display_label(),
        url: t.url.clone(),
        node: t.node.clone(),
        auth: t.auth,
        token_id: t.token_id.clone(),
        username: t.username.clone(),
        tls: t.tls_mode(),
        tls_choice: if t.tls.insecure {
            TlsChoice::Insecure
        } else if t.tls.fingerprint.is_some() {
            TlsChoice::Fingerprint
        } else {
            TlsChoice::Ca
        },
        fingerprint: t.tls.fingerprint.clone(),
        ca_file: t.tls.ca_file.as_ref().map(|p| p.display().to_string()),
        insecure: t.tls.insecure,
        active: cfg.active_target.as_deref() == Some(t.id.as_str()),
        ssh: t.ssh.as_ref().map(|s| SshView {
            host: s.host.clone(),
            port: s.port,
            user: s.user.clone(),
            allow_unsafe: s.allow_unsafe,
        }),
        allow_ssh_override: t.allow_ssh_override,
        allow_host_level_config: t.allow_host_level_config,
        iso_storage: t.iso_storage.clone(),
        secrets: TargetSecretFlags {
            token_secret: flag(store, &secret_names::proxmox_token_secret(&t.id)),
            password: flag(store, &secret_names::proxmox_password(&t.id)),
            ssh_private_key: flag(store, &secret_names::ssh_private_key(&t.id)),
        },
    }
}

/// Every target, in config order.
pub fn views(cfg: &AgentConfig, store: Option<&dyn SecretStore>) -> Vec<TargetView> {
    cfg.targets.iter().map(|t| view(cfg, t, store)).collect()
}

fn normalize_url(raw: &str) -> String {
    let u = raw.trim().trim_end_matches('/');
    if u.contains("://") {
        u.to_string()
    } else {
        format!("https://{u}")
    }
}

/// Builds the target config from the input (and the stored one, on edit).
fn build(input: &TargetInput, old: Option<&TargetConfig>) -> Result<TargetConfig, ControlError> {
    let id = input.id.trim().to_string();
    if id.is_empty() {
        return Err(invalid(
            "the target needs an id (letters, digits, '.', '_' or '-'), e.g. pve1",
        ));
    }
    if input.url.trim().is_empty() {
        return Err(invalid(
            "the Proxmox URL is required, e.g. https://192.168.1.10:8006",
        ));
    }
    let node = input.node.trim().to_string();
    if node.is_empty() {
        return Err(invalid(
            "the Proxmox node name is required (Datacenter → the node's name, e.g. pve)",
        ));
    }
    let token_id = given(&input.token_id).map(str::to_string);
    let username = given(&input.username).map(str::to_string);
    let auth = input.auth.unwrap_or(if token_id.is_some() {
        AuthKind::Token
    } else {
        AuthKind::Password
    });
    match auth {
        AuthKind::Token if token_id.as_deref().is_none_or(|t| !t.contains('!')) => {
            return Err(invalid(
                "API token auth needs the token id in the form user@realm!tokenname, e.g. root@pam!botmox",
            ))
        }
        AuthKind::Password if username.is_none() => {
            return Err(invalid("password auth needs a username, e.g. root@pam"))
        }
        _ => {}
    }
    let old_tls = old.map(|o| o.tls.clone()).unwrap_or_default();
    let tls = match input.tls {
        TlsChoice::Fingerprint => {
            let raw = given(&input.fingerprint).ok_or_else(|| {
                invalid("enter the certificate's SHA-256 fingerprint (Proxmox: node → System → Certificates)")
            })?;
            let fp = crate::pairing::normalize_fingerprint(raw).map_err(|_| {
                invalid("the fingerprint must be the 64 hex digits of a SHA-256 fingerprint (AB:CD:… or abcd…)")
            })?;
            TargetTls {
                fingerprint: Some(fp),
                ..TargetTls::default()
            }
        }
        TlsChoice::Insecure => TargetTls {
            insecure: true,
            ..TargetTls::default()
        },
        TlsChoice::System => TargetTls::default(),
        TlsChoice::Ca => TargetTls {
            ca_file: input.ca_file.clone().or(old_tls.ca_file),
            ..TargetTls::default()
        },
    };
    let old_ssh = old.and_then(|o| o.ssh.clone());
    let ssh_host = given(&input.ssh_host).map(str::to_string);
    let ssh_user = given(&input.ssh_user).map(str::to_string);
    let wants_ssh = ssh_host.is_some()
        || ssh_user.is_some()
        || input.ssh_port.is_some()
        || input.ssh_allow_unsafe == Some(true)
        || input.ssh_qemu_config_dir.is_some()
        || input.ssh_iso_dir.is_some();
    let ssh = wants_ssh.then(|| SshConfig {
        host: ssh_host,
        port: input.ssh_port.unwrap_or(22),
        user: ssh_user,
        allow_unsafe: input
            .ssh_allow_unsafe
            .unwrap_or_else(|| old_ssh.as_ref().is_some_and(|s| s.allow_unsafe)),
        qemu_config_dir: input
            .ssh_qemu_config_dir
            .clone()
            .or_else(|| old_ssh.as_ref().and_then(|s| s.qemu_config_dir.clone())),
        iso_dir: input
            .ssh_iso_dir
            .clone()
            .or_else(|| old_ssh.as_ref().and_then(|s| s.iso_dir.clone())),
    });
    let t = TargetConfig {
        id,
        label: given(&input.label).map(str::to_string),
        url: normalize_url(&input.url),
        node,
        auth,
        token_id: (auth == AuthKind::Token).then_some(token_id).flatten(),
        username: (auth == AuthKind::Password).then_some(username).flatten(),
        tls,
        ssh,
        allow_ssh_override: input
            .allow_ssh_override
            .unwrap_or_else(|| old.is_some_and(|o| o.allow_ssh_override)),
        allow_host_level_config: input
            .allow_host_level_config
            .unwrap_or_else(|| old.is_some_and(|o| o.allow_host_level_config)),
        iso_storage: match input.iso_storage.as_deref().map(str::trim) {
            Some("") => None,
            Some(s) => Some(s.to_string()),
            None => old.and_then(|o| o.iso_storage.clone()),
        },
    };
    t.validate().map_err(ControlError::from)?;
    Ok(t)
}

impl Control {
    /// Every target with secret flags (`"saved"`), never a secret value.
    pub fn list_targets(&self) -> Result<Vec<TargetView>, ControlError> {
        let cfg = self.load_config()?;
        let store = self.secrets().ok();
        Ok(views(&cfg, store.as_deref()))
    }

    /// Adds or edits a target. Secrets go to the secret store; an empty or
    /// absent secret keeps the stored one. A new target (or a changed auth
    /// kind) needs its Proxmox secret. Removing every SSH setting removes
    /// the stored SSH key too.
    pub fn save_target(
        &self,
        input: TargetInput,
        secrets: TargetSecretsInput,
    ) -> Result<SaveTargetOutcome, ControlError> {
        let store = self.secrets()?;
        let (view, created, warnings) = self.update_config(|cfg| {
            let old = cfg.target(input.id.trim()).cloned();
            let t = build(&input, old.as_ref())?;
            let id = t.id.clone();
            let token_name = secret_names::proxmox_token_secret(&id);
            let password_name = secret_names::proxmox_password(&id);
            let (needed, given_secret, other) = match t.auth {
                AuthKind::Token => (&token_name, given(&secrets.token_secret), &password_name),
                AuthKind::Password => (&password_name, given(&secrets.password), &token_name),
            };
            if given_secret.is_none() && store.get(needed)?.is_none() {
                return Err(ControlError::new(
                    ErrorCode::SecretRequired,
                    match t.auth {
                        AuthKind::Token => "enter the API token secret (the UUID Proxmox showed once when the token was created)",
                        AuthKind::Password => "enter the Proxmox password for this user",
                    },
                ));
            }
            if let Some(k) = given(&secrets.ssh_private_key) {
                if !k.contains("PRIVATE KEY") {
                    return Err(invalid(
                        "the SSH key must be a private key in PEM/OpenSSH format (-----BEGIN … PRIVATE KEY-----)",
                    ));
                }
                if t.ssh.is_none() {
                    return Err(invalid(
                        "an SSH key needs the SSH user (and host, if it is not the Proxmox host)",
                    ));
                }
            }
            // Config first in memory (validated), then secrets, then the file.
            let created = old.is_none();
            let mut warnings = Vec::new();
            if t.tls.insecure {
                warnings.push(format!(
                    "TLS verification is disabled for target {id}: the connection to Proxmox can be intercepted"
                ));
            }
            if t.allow_host_level_config {
                warnings.push(format!(
                    "host-level VM config is allowed for target {id}: commands may set args, hookscript, \
                     passthrough devices and raw config files (root on the Proxmox host)"
                ));
            }
            if t.allow_ssh_override {
                warnings.push(format!(
                    "commands may choose the SSH host, port and user for target {id} (with their own credentials)"
                ));
            }
            let has_ssh = t.ssh.is_some();
            let saved = t.clone();
            cfg.upsert_target(t)?;
            if input.activate {
                cfg.active_target = Some(id.clone());
            }
            if let Some(s) = given_secret {
                store.set(needed, s)?;
            }
            // the other auth kind's secret is stale now
            store.delete(other)?;
            let ssh_names = [
                (secret_names::ssh_private_key(&id), &secrets.ssh_private_key),
                (secret_names::ssh_passphrase(&id), &secrets.ssh_passphrase),
                (secret_names::ssh_password(&id), &secrets.ssh_password),
            ];
            for (name, value) in ssh_names {
                if !has_ssh {
                    store.delete(&name)?;
                } else if let Some(v) = given(value) {
                    // keys keep their exact text (a trailing newline matters)
                    let v = if name.ends_with("private-key") {
                        value.as_deref().unwrap_or(v)
                    } else {
                        v
                    };
                    store.set(&name, v)?;
                }
            }
            Ok((view(cfg, &saved, Some(store.as_ref())), created, warnings))
        })?;
        for w in &warnings {
            tracing::warn!(event_name = "agent.target.insecure", target = %view.id, "{w}");
        }
        tracing::info!(
            event_name = if created { "agent.target.added" } else { "agent.target.updated" },
            target = %view.id,
            url = %view.url,
            "target saved"
        );
        Ok(SaveTargetOutcome {
            target: view,
            created,
            warnings,
        })
    }

    /// Removes a target and its secrets.
    pub fn remove_target(&self, id: &str) -> Result<(), ControlError> {
        let store = self.secrets()?;
        self.update_config(|cfg| {
            if !cfg.remove_target(id) {
                return Err(not_found(id));
            }
            for name in secret_names::for_target(id) {
                store.delete(&name)?;
            }
            Ok(())
        })?;
        tracing::info!(event_name = "agent.target.removed", target = %id, "target removed");
        Ok(())
    }

    /// Makes a target the active one.
    pub fn use_target(&self, id: &str) -> Result<(), ControlError> {
        self.update_config(|cfg| {
            if cfg.target(id).is_none() {
                return Err(not_found(id));
            }
            cfg.active_target = Some(id.to_string());
            Ok(())
        })
    }

    /// Logs in to the target, reads its version and VM list, then probes
    /// SSH when the target has SSH settings. Failures are part of the
    /// answer (`ok: false`, code, message); only an unknown target or an
    /// unreadable config/secret store is an `Err`.
    pub async fn test_target(&self, id: &str) -> Result<TargetTestResult, ControlError> {
        let cfg = self.load_config()?;
        let config = cfg.target(id).cloned().ok_or_else(|| not_found(id))?;
        let store = self.secrets()?;
        let target = Target {
            secrets: TargetSecrets::load(store.as_ref(), id)?,
            config: config.clone(),
        };
        // A person is waiting: fewer, shorter retries than commands get.
        let quick = RetryPolicy::exponential(
            2,
            Duration::from_millis(300),
            Duration::from_secs(2),
            Duration::from_secs(15),
        );
        let targets = Arc::new(
            Targets::new(
                vec![target],
                Some(id.to_string()),
                KnownHosts::new(known_hosts_path(self.config_dir())),
            )
            .with_retry_policy(quick),
        );
        let ctx = ExecContext::new(targets, CancellationToken::new());
        let payload = json!({ "target": id });
        let proxmox = match crate::execute("proxmox.status", payload.clone(), &ctx).await {
            Err(e) => failed_probe(&config, &e),
            Ok(v) => {
                let version = v["version"].as_str().map(str::to_string);
                match crate::execute("proxmox.list-vms", payload, &ctx).await {
                    Ok(vms) => {
                        let n = vms.as_array().map(Vec::len);
                        TestProbe {
                            ok: true,
                            code: "OK".into(),
                            message: format!(
                                "Proxmox OK: logged in to Proxmox VE {} on node {} ({} VMs)",
                                version.as_deref().unwrap_or("?"),
                                config.node,
                                n.unwrap_or(0)
                            ),
                            version,
                            vm_count: n,
                        }
                    }
                    Err(e) => TestProbe {
                        version,
                        ..failed_probe(&config, &e)
                    },
                }
            }
        };
        let ssh = if config.ssh.is_none() {
            SshProbe {
                status: "skipped",
                ok: false,
                code: "SKIPPED".into(),
                message: "SSH is not set up for this target (it is only needed to upload provisioning ISOs and edit VM config files)".into(),
                host: None,
                port: None,
                username: None,
            }
        } else {
            let v = crate::execute(
                "ssh.test",
                json!({ "target": id, "timeoutMs": 10_000 }),
                &ctx,
            )
            .await
            .unwrap_or_else(|e| json!({ "code": e.code, "message": e.message }));
            ssh_probe(&v)
        };
        let ok = proxmox.ok && (ssh.ok || ssh.status == "skipped");
        tracing::info!(
            event_name = "agent.target.tested",
            target = %id,
            proxmox = %proxmox.code,
            ssh = %ssh.code,
            "target tested"
        );
        Ok(TargetTestResult {
            target: id.to_string(),
            ok,
            version: proxmox.version.clone(),
            tls: config.tls_mode(),
            insecure: config.tls.insecure,
            vm_count: proxmox.vm_count,
            proxmox,
            ssh,
        })
    }
}

fn not_found(id: &str) -> ControlError {
    ControlError::new(
        ErrorCode::TargetNotFound,
        format!("there is no Proxmox target {id:?}"),
    )
}

/// A failed Proxmox probe with a message for people (and the detail).
fn failed_probe(t: &TargetConfig, e: &ExecError) -> TestProbe {
    let detail = crate::redact::redact_text(&e.message);
    let friendly = match e.code.as_str() {
        "PROXMOX_UNREACHABLE" => format!(
            "cannot reach Proxmox at {}: check the address and port (usually 8006) and that this computer can reach it",
            t.url
        ),
        "PROXMOX_TLS_ERROR" if detail.contains(crate::tls::PIN_MISMATCH) => {
            "the Proxmox certificate does not match the saved fingerprint: if the certificate was renewed, paste the new fingerprint (node → System → Certificates)".to_string()
        }
        "PROXMOX_TLS_ERROR" => "the Proxmox certificate is not trusted: choose \"Fingerprint\" and paste the certificate's SHA-256 fingerprint (node → System → Certificates)".to_string(),
        "PROXMOX_TIMEOUT" => "Proxmox did not answer in time".to_string(),
        "PROXMOX_AUTH_FAILED" => match t.auth {
            AuthKind::Token => "Proxmox refused the API token: check the token id (user@realm!name) and secret, and the token's permissions".to_string(),
            AuthKind::Password => "Proxmox refused the login: check the username (with realm, e.g. root@pam) and password".to_string(),
        },
        "PROXMOX_NOT_CONFIGURED" => "no secret is stored for this target: edit it and enter the token secret or password".to_string(),
        "PROXMOX_API_ERROR" => format!(
            "Proxmox answered with an error (is the node name {:?} right?)",
            t.node
        ),
        _ => "the Proxmox test failed".to_string(),
    };
    TestProbe {
        ok: false,
        code: e.code.clone(),
        message: format!("{friendly} ({}: {detail})", e.code),
        version: None,
        vm_count: None,
    }
}

fn ssh_probe(v: &Value) -> SshProbe {
    let code = v["code"].as_str().unwrap_or("SSH_EXEC_ERROR").to_string();
    let host = v["host"].as_str().map(str::to_string);
    let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let username = v["username"].as_str().map(str::to_string);
    let ok = code == "OK";
    let detail = crate::redact::redact_text(v["message"].as_str().unwrap_or(""));
    let message = if ok {
        format!(
            "SSH OK: logged in as {} on {}:{}",
            username.as_deref().unwrap_or("?"),
            host.as_deref().unwrap_or("?"),
            port.unwrap_or(22)
        )
    } else {
        let friendly = match code.as_str() {
            "SSH_UNREACHABLE" => "cannot reach the SSH server: check the host, the port and the network",
            "SSH_AUTH_FAILED" => "the SSH login was refused: check the SSH user and key (or password)",
            "SSH_HOST_KEY_MISMATCH" => "the SSH host key changed since it was first trusted; if the host was reinstalled, remove its entry from known_hosts.json in the config folder",
            "SSH_REQUIRED" => "SSH credentials are missing: add an SSH key (or a Proxmox password)",
            _ => "the SSH test failed",
        };
        if detail.is_empty() {
            format!("{friendly} ({code})")
        } else {
            format!("{friendly} ({code}: {detail})")
        }
    };
    SshProbe {
        status: if ok { "ok" } else { "failed" },
        ok,
        code,
        message,
        host,
        port,
        username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretBackend;

    fn control(dir: &std::path::Path) -> Control {
        Control::with_paths(
            dir.to_path_buf(),
            dir.join("logs"),
            Some(SecretBackend::File),
        )
    }

    fn input(id: &str) -> TargetInput {
        TargetInput {
            id: id.into(),
            url: "pve.lan:8006/".into(),
            node: "pve".into(),
            auth: Some(AuthKind::Token),
            token_id: Some("root@pam!botmox".into()),
            ..TargetInput::default()
        }
    }

    #[test]
    fn save_edit_keeps_secrets_and_never_returns_them() {
        let dir = tempfile::tempdir().unwrap();
        let c = control(dir.path());
        let e = c
            .save_target(input("pve1"), TargetSecretsInput::default())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SecretRequired);
        let secret = "0b1c2d3e-aaaa-bbbb-cccc-123456789abc";
        let out = c
            .save_target(
                input("pve1"),
                TargetSecretsInput {
                    token_secret: Some(secret.into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(out.created);
        assert_eq!(out.target.url, "https://pve.lan:8006");
        assert_eq!(out.target.secrets.token_secret, SecretFlag::Saved);
        assert!(out.target.active);
        // edit with an empty secret keeps it; switch to fingerprint TLS
        let mut edit = input("pve1");
        edit.tls = TlsChoice::Fingerprint;
        edit.fingerprint = Some("AB:".repeat(31) + "AB");
        let out = c
            .save_target(
                edit,
                TargetSecretsInput {
                    token_secret: Some("  ".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(!out.created);
        assert_eq!(out.target.tls, "pinned");
        assert_eq!(out.target.fingerprint.as_deref(), Some(&*"ab".repeat(32)));
        let stored = c
            .secrets()
            .unwrap()
            .get(&secret_names::proxmox_token_secret("pve1"))
            .unwrap();
        assert_eq!(stored.as_deref(), Some(secret));
        // switching to password auth needs the password, then drops the token secret
        let mut pw = input("pve1");
        pw.auth = Some(AuthKind::Password);
        pw.username = Some("root@pam".into());
        let e = c
            .save_target(pw.clone(), TargetSecretsInput::default())
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::SecretRequired);
        let out = c
            .save_target(
                pw,
                TargetSecretsInput {
                    password: Some("hunter2-very-secret".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(out.target.secrets.token_secret, SecretFlag::NotSet);
        assert_eq!(out.target.secrets.password, SecretFlag::Saved);
        let list = serde_json::to_string(&c.list_targets().unwrap()).unwrap();
        assert!(
            !list.contains(secret) && !list.contains("hunter2"),
            "{list}"
        );
        assert!(list.contains("\"saved\""));
        // bad input
        let mut bad = input("x y");
        bad.url = "https://pve".into();
        let e = c
            .save_target(
                bad,
                TargetSecretsInput {
                    token_secret: Some(secret.into()),
                    ..Default::default()
                },
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TargetInvalid);
        c.remove_target("pve1").unwrap();
        assert_eq!(
            c.remove_target("pve1").unwrap_err().code,
            ErrorCode::TargetNotFound
        );
        let store = c.secrets().unwrap();
        for n in secret_names::for_target("pve1") {
            assert!(store.get(&n).unwrap().is_none());
        }
    }
}
