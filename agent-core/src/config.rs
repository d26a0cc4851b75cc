//! Agent configuration: `config.toml` in the OS config directory (or
//! `--config-dir` / `BOTMOX_AGENT_CONFIG_DIR`). It never holds secrets; those
//! live in the [`crate::secrets`] store, keyed by [`secret_names`].

use std::io::Write;
use std::path::{Path, PathBuf};

use botmox_protocol::ProxmoxHint;
use serde::{Deserialize, Serialize};

use crate::secrets::SecretBackend;

pub const CONFIG_FILE: &str = "config.toml";
pub const ENV_CONFIG_DIR: &str = "BOTMOX_AGENT_CONFIG_DIR";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid agent config: {message}")]
    Parse { path: String, message: String },
    #[error("cannot serialize the config: {0}")]
    Serialize(String),
    #[error("no OS configuration directory found; pass --config-dir")]
    NoConfigDir,
    #[error("{0}")]
    Invalid(String),
}

/// The OS config directory for the agent (`~/.config/botmox-agent`,
/// `%APPDATA%\botmox-agent`, …).
pub fn default_config_dir() -> Result<PathBuf, ConfigError> {
    dirs::config_dir()
        .map(|d| d.join("botmox-agent"))
        .ok_or(ConfigError::NoConfigDir)
}

/// Where logs go: `<config-dir>/logs` for an explicit config dir, else the
/// OS state/data directory.
pub fn log_dir(config_dir: &Path, explicit: bool) -> PathBuf {
    if explicit {
        return config_dir.join("logs");
    }
    dirs::state_dir()
        .or_else(dirs::data_local_dir)
        .map(|d| d.join("botmox-agent").join("logs"))
        .unwrap_or_else(|| config_dir.join("logs"))
}

/// Names of the secrets in the secret store.
pub mod secret_names {
    pub const AGENT_TOKEN: &str = "agent-token";
    /// The agent's X25519 private key (base64url); its public half is
    /// registered with the server (see `crate::vault`).
    pub const AGENT_KEY: &str = "agent-key";
    pub const PAIRING_CODE: &str = "pairing-code";
    pub fn proxmox_password(target: &str) -> String {
        format!("proxmox/{target}/password")
    }
    pub fn proxmox_token_secret(target: &str) -> String {
        format!("proxmox/{target}/token-secret")
    }
    pub fn ssh_private_key(target: &str) -> String {
        format!("ssh/{target}/private-key")
    }
    pub fn ssh_passphrase(target: &str) -> String {
        format!("ssh/{target}/passphrase")
    }
    pub fn ssh_password(target: &str) -> String {
        format!("ssh/{target}/password")
    }
    /// Every secret name that belongs to a target.
    pub fn for_target(target: &str) -> Vec<String> {
        vec![
            proxmox_password(target),
            proxmox_token_secret(target),
            ssh_private_key(target),
            ssh_passphrase(target),
            ssh_password(target),
        ]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Config format version (1).
    #[serde(default = "one")]
    pub version: u32,
    /// The secret backend these secrets were stored in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_store: Option<SecretBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_target: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
    /// Set by Pause in the tray app, which then starts paused until Resume.
    /// The headless `botmox-agent run` does not read it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// How many commands `run` executes at once (default 4, 1..=64;
    /// `run --max-concurrent-commands N` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_commands: Option<u32>,
}

fn one() -> u32 {
    1
}

/// The control server this agent pairs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfig {
    pub url: String,
    /// Lower-case hex SHA-256 of the server certificate to pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paired_at: Option<String>,
    /// A pairing code is stored (in the secret store) and not yet redeemed.
    #[serde(default)]
    pub pairing_pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxmox_hint: Option<ProxmoxHint>,
    /// The customer explicitly accepted an `http://` server URL on a
    /// non-loopback host (`pair --allow-insecure-http`, the tray's checkbox):
    /// the agent token then travels in clear. Shown by `status`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_insecure_http: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// `PVEAPIToken=<token_id>=<secret>`
    Token,
    /// Ticket login with `username` and a password.
    Password,
}

/// One Proxmox target (inventory §4.3, without secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetConfig {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `https://host:8006`
    pub url: String,
    pub node: String,
    pub auth: AuthKind,
    /// `user@realm!name` for token auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// `user@realm` for password auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default)]
    pub tls: TargetTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshConfig>,
    /// Commands may choose the SSH host, port or user (`sshHost`, `sshPort`,
    /// `sshUsername`) — with their own credentials only. Off by default; set
    /// locally (CLI `--allow-ssh-override`, tray), never by the server.
    #[serde(default)]
    pub allow_ssh_override: bool,
    /// Host-level VM config is allowed: `update-config` keys that reach the
    /// host (`args`, `hookscript`, `hostpci*`, `usb*`, `serial*`,
    /// `parallel*`, `virtiofs*`, disks on absolute host paths) and
    /// `ssh-write-config`. Off by default; set locally, never by the server.
    #[serde(default)]
    pub allow_host_level_config: bool,
    /// Storage for provisioning ISOs when a command names none. Unset: the
    /// node's storage that holds ISO images (`local` when it does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_storage: Option<String>,
}

/// A Proxmox storage id: a letter, then letters, digits, `-`, `_`, `.`.
pub fn is_storage_id(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// TLS trust of a target: a pinned fingerprint, a CA file, or the explicit
/// insecure flag (reported by `status`); system roots when none is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshConfig {
    /// Defaults to the host of the Proxmox URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// Defaults to the Proxmox username without the realm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `ssh-exec` may run commands outside the allowlist when the payload
    /// says `allowUnsafe` and this is set.
    #[serde(default)]
    pub allow_unsafe: bool,
    /// Directory of the VM configs (`/etc/pve/qemu-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_config_dir: Option<String>,
    /// Directory ISOs of the storage live in, for the SFTP upload fallback
    /// (default: `/var/lib/vz/template/iso` for `local`, else
    /// `/mnt/pve/<storage>/template/iso`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iso_dir: Option<String>,
}

fn default_ssh_port() -> u16 {
    22
}

impl TargetConfig {
    /// `<host> · <node> · <user>`
    pub fn display_label(&self) -> String {
        if let Some(l) = &self.label {
            return l.clone();
        }
        let host = url::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| self.url.clone());
        let user = self
            .username
            .clone()
            .or_else(|| self.token_id.clone())
            .unwrap_or_else(|| "user".into());
        format!("{host} · {} · {user}", self.node)
    }

    /// `system`, `ca`, `pinned` or `insecure`.
    pub fn tls_mode(&self) -> &'static str {
        if self.tls.insecure {
            "insecure"
        } else if self.tls.fingerprint.is_some() {
            "pinned"
        } else if self.tls.ca_file.is_some() {
            "ca"
        } else {
            "system"
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("target {:?}: {m}", self.id)));
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return bad("the id must be letters, digits, '.', '_' or '-'".into());
        }
        match url::Url::parse(&self.url) {
            Ok(u) if u.scheme() == "https" && u.host_str().is_some() => {}
            _ => {
                return bad(format!(
                    "the URL {:?} must be https://host[:port]",
                    self.url
                ))
            }
        }
        if self.node.is_empty() {
            return bad("the node must not be empty".into());
        }
        match self.auth {
            AuthKind::Token if self.token_id.as_deref().is_none_or(|t| !t.contains('!')) => {
                return bad("token auth needs a token id like user@pam!name".into())
            }
            AuthKind::Password if self.username.as_deref().is_none_or(str::is_empty) => {
                return bad("password auth needs a username".into())
            }
            _ => {}
        }
        let modes = [
            self.tls.insecure,
            self.tls.fingerprint.is_some(),
            self.tls.ca_file.is_some(),
        ];
        if modes.iter().filter(|m| **m).count() > 1 {
            return bad("choose one of fingerprint, CA file or insecure".into());
        }
        if let Some(s) = self.iso_storage.as_deref().filter(|s| !is_storage_id(s)) {
            return bad(format!(
                "the ISO storage {s:?} must be a storage id (a letter, then letters, digits, '-', '_', '.')"
            ));
        }
        Ok(())
    }
}

impl AgentConfig {
    pub fn target(&self, id: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.id == id)
    }

    /// Adds or replaces a target; the first target becomes active.
    pub fn upsert_target(&mut self, t: TargetConfig) -> Result<(), ConfigError> {
        t.validate()?;
        let id = t.id.clone();
        match self.targets.iter_mut().find(|x| x.id == t.id) {
            Some(x) => *x = t,
            None => self.targets.push(t),
        }
        if self.active_target.is_none() {
            self.active_target = Some(id);
        }
        Ok(())
    }

    /// Removes a target; returns whether it existed.
    pub fn remove_target(&mut self, id: &str) -> bool {
        let before = self.targets.len();
        self.targets.retain(|t| t.id != id);
        if self.active_target.as_deref() == Some(id) {
            self.active_target = self.targets.first().map(|t| t.id.clone());
        }
        before != self.targets.len()
    }
}

/// Reads and writes `config.toml` atomically (0600 on Unix).
#[derive(Debug, Clone)]
pub struct ConfigStore {
    dir: PathBuf,
}

impl ConfigStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ConfigStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The config, or the default one when the file does not exist.
    pub fn load(&self) -> Result<AgentConfig, ConfigError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AgentConfig {
                    version: 1,
                    ..AgentConfig::default()
                })
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let cfg: AgentConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        for t in &cfg.targets {
            t.validate()?;
        }
        Ok(cfg)
    }

    pub fn save(&self, cfg: &AgentConfig) -> Result<(), ConfigError> {
        let text =
            toml::to_string_pretty(cfg).map_err(|e| ConfigError::Serialize(e.to_string()))?;
        write_private(&self.path(), text.as_bytes())
    }
}

/// Creates `dir` (0700 on Unix) if needed.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// Writes a file atomically (temp file + rename), mode 0600 on Unix.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let err = |source| ConfigError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| ConfigError::Invalid(format!("{} has no parent", path.display())))?;
    ensure_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str) -> TargetConfig {
        TargetConfig {
            id: id.into(),
            label: None,
            url: "https://pve.lan:8006".into(),
            node: "pve".into(),
            auth: AuthKind::Token,
            token_id: Some("root@pam!botmox".into()),
            username: None,
            tls: TargetTls {
                fingerprint: Some("ab".repeat(32)),
                ..TargetTls::default()
            },
            ssh: None,
            allow_ssh_override: false,
            allow_host_level_config: false,
            iso_storage: None,
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::new(dir.path());
        let mut cfg = store.load().unwrap();
        assert_eq!(cfg.version, 1);
        cfg.upsert_target(target("a")).unwrap();
        cfg.upsert_target(target("b")).unwrap();
        assert_eq!(cfg.active_target.as_deref(), Some("a"));
        store.save(&cfg).unwrap();
        let back = store.load().unwrap();
        assert_eq!(back, cfg);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(cfg.remove_target("a"));
        assert_eq!(cfg.active_target.as_deref(), Some("b"));
        let mut t = target("x y");
        assert!(t.validate().is_err());
        t.id = "x".into();
        t.tls.insecure = true;
        assert!(t.validate().unwrap_err().to_string().contains("choose one"));
        t.tls.fingerprint = None;
        assert_eq!(t.tls_mode(), "insecure");
        t.url = "http://pve".into();
        assert!(t.validate().is_err());
        assert_eq!(
            target("a").display_label(),
            "pve.lan · pve · root@pam!botmox"
        );
    }

    #[test]
    fn iso_storage_must_be_a_storage_id() {
        let mut t = target("a");
        for ok in ["local", "nfs-isos", "ceph_fs.1"] {
            t.iso_storage = Some(ok.into());
            assert!(t.validate().is_ok(), "{ok}");
        }
        for bad in ["", "1local", "local:iso", "../x", "a b"] {
            t.iso_storage = Some(bad.into());
            let e = t.validate().unwrap_err().to_string();
            assert!(e.contains("ISO storage"), "{bad}: {e}");
        }
    }
}
