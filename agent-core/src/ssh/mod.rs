//! SSH to the Proxmox host (inventory §4.7) with russh: password or key
//! auth, trust-on-first-use host keys per target (a changed key is an
//! error), timeouts, the command allowlist, and the exact error codes
//! `SSH_REQUIRED`, `SSH_AUTH_FAILED`, `SSH_UNREACHABLE`,
//! `SSH_COMMAND_FORBIDDEN`, `SSH_EXEC_ERROR` (plus `SSH_HOST_KEY_MISMATCH`,
//! `SSH_READ_FAILED`, `SSH_WRITE_FAILED`).

pub mod allowlist;
mod known_hosts;

use std::sync::Arc;
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub use allowlist::{sh_quote, AllowedCommand, AllowlistError};
pub use known_hosts::{HostKeyCheck, KnownHosts};

use crate::config::AuthKind;
use crate::executor::{ExecContext, ExecError, Target};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    #[error("SSH is not configured for this computer. Add valid SSH credentials (or Proxmox password) and retry.")]
    Required,
    #[error("Possible wrong SSH username/password or key. {0}")]
    AuthFailed(String),
    #[error("SSH connection failed. Check host, port, and network reachability. {0}")]
    Unreachable(String),
    #[error("SSH connection timed out. Check host, port, and network reachability.")]
    ConnectTimeout,
    #[error("SSH host key of {host} changed: trusted {expected}, offered {got}. If the host was reinstalled, remove it from known_hosts.json")]
    HostKeyMismatch {
        host: String,
        expected: String,
        got: String,
    },
    #[error("SSH command is not allowlisted ({0}). Use a dedicated API action instead.")]
    Forbidden(AllowlistError),
    /// The target's local policy refuses what the payload asks for
    /// (`TARGET_POLICY_FORBIDDEN`).
    #[error("{0}")]
    PolicyForbidden(String),
    /// The payload chose the SSH host, port or user but brought no
    /// credentials: stored secrets only go to the configured host.
    #[error("the command chose the SSH host, port or user ({0}) but carries no SSH credentials (sshPassword or sshPrivateKey); stored secrets are only sent to the target's configured SSH host")]
    OverrideWithoutCredentials(String),
    #[error("{0}")]
    Exec(String),
    #[error("cancelled")]
    Cancelled,
}

impl SshError {
    pub fn code(&self) -> &'static str {
        match self {
            SshError::Required | SshError::OverrideWithoutCredentials(_) => "SSH_REQUIRED",
            SshError::PolicyForbidden(_) => "TARGET_POLICY_FORBIDDEN",
            SshError::AuthFailed(_) => "SSH_AUTH_FAILED",
            SshError::Unreachable(_) | SshError::ConnectTimeout => "SSH_UNREACHABLE",
            SshError::HostKeyMismatch { .. } => "SSH_HOST_KEY_MISMATCH",
            SshError::Forbidden(_) => "SSH_COMMAND_FORBIDDEN",
            SshError::Exec(_) => "SSH_EXEC_ERROR",
            SshError::Cancelled => "CANCELLED",
        }
    }
}

impl From<SshError> for ExecError {
    fn from(e: SshError) -> Self {
        ExecError::new(e.code(), e.to_string())
    }
}

/// How to log in.
#[derive(Clone)]
pub enum SshAuth {
    Password(String),
    Key {
        pem: String,
        passphrase: Option<String>,
    },
}

impl std::fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SshAuth::Password(_) => "Password",
            SshAuth::Key { .. } => "Key",
        })
    }
}

/// Resolved SSH settings of a target (plus payload overrides, §4.7).
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// Known-hosts entries are kept per target id.
    pub target_id: String,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub auth: SshAuth,
    pub allow_unsafe: bool,
    pub qemu_config_dir: String,
    /// Overrides the ISO directory of the SFTP upload fallback.
    pub iso_dir: Option<String>,
}

fn payload_str(p: &Value, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| {
        p.get(*k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    })
}

impl SshSettings {
    /// The configured endpoint: `host = ssh.host || host(url)`, `port =
    /// ssh.port || 22`, `username = ssh.user || proxmox user without realm`.
    /// Payload overrides (`sshHost`, `sshPort`/`port`, `sshUsername`) that
    /// differ from it need the target's local `allow_ssh_override` flag and
    /// credentials in the payload (`sshPassword` or `sshPrivateKey` +
    /// `sshPassphrase`): stored secrets (SSH key, SSH password, Proxmox
    /// password) are only ever sent to the configured host, port and user.
    /// Without an override: key (payload or stored) else password (payload,
    /// stored SSH password, or the Proxmox password).
    pub fn resolve(t: &Target, payload: &Value) -> Result<Self, SshError> {
        let c = &t.config;
        let ssh = c.ssh.clone();
        let cfg_host = ssh.as_ref().and_then(|s| s.host.clone()).or_else(|| {
            url::Url::parse(&c.url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        });
        let cfg_port = ssh.as_ref().map(|s| s.port).unwrap_or(22);
        let proxmox_user = match c.auth {
            AuthKind::Password => c.username.clone(),
            AuthKind::Token => c.token_id.clone(),
        }
        .map(|u| u.split(['@', '!']).next().unwrap_or("").to_string())
        .filter(|u| !u.is_empty());
        let cfg_user = ssh.as_ref().and_then(|s| s.user.clone()).or(proxmox_user);

        let p_host = payload_str(payload, &["sshHost"]);
        let p_port = ["sshPort", "port"]
            .iter()
            .find_map(|k| payload.get(*k).and_then(Value::as_u64))
            .filter(|p| (1..=65535).contains(p))
            .map(|p| p as u16);
        let p_user = payload_str(payload, &["sshUsername"]);
        let mut overridden = Vec::new();
        if p_host.is_some() && p_host != cfg_host {
            overridden.push("host");
        }
        if p_port.is_some_and(|p| p != cfg_port) {
            overridden.push("port");
        }
        if p_user.is_some() && p_user != cfg_user {
            overridden.push("user");
        }
        let host = p_host.or(cfg_host).ok_or(SshError::Required)?;
        let port = p_port.unwrap_or(cfg_port);
        let username = p_user.or(cfg_user).ok_or(SshError::Required)?;

        let p_key = payload_str(payload, &["sshPrivateKey"]);
        let p_password = payload_str(payload, &["sshPassword"]);
        let auth = if !overridden.is_empty() {
            let what = overridden.join(", ");
            if !c.allow_ssh_override {
                return Err(SshError::PolicyForbidden(format!(
                    "target {:?} does not let commands choose the SSH {what} \
                     (allow_ssh_override is off; the customer can turn it on locally \
                     with `botmox-agent targets add … --allow-ssh-override` or in the tray)",
                    c.id
                )));
            }
            if let Some(pem) = p_key {
                SshAuth::Key {
                    pem,
                    passphrase: payload_str(payload, &["sshPassphrase"]),
                }
            } else if let Some(pw) = p_password {
                SshAuth::Password(pw)
            } else {
                return Err(SshError::OverrideWithoutCredentials(what));
            }
        } else if let Some(pem) = p_key {
            SshAuth::Key {
                pem,
                passphrase: payload_str(payload, &["sshPassphrase"]),
            }
        } else if let Some(pem) = t.secrets.ssh_private_key.clone() {
            SshAuth::Key {
                pem,
                passphrase: t.secrets.ssh_passphrase.clone(),
            }
        } else if let Some(pw) = p_password
            .or_else(|| t.secrets.ssh_password.clone())
            .or_else(|| t.secrets.password.clone())
        {
            SshAuth::Password(pw)
        } else {
            return Err(SshError::Required);
        };
        Ok(SshSettings {
            target_id: c.id.clone(),
            host,
            port,
            username,
            auth,
            allow_unsafe: ssh.as_ref().is_some_and(|s| s.allow_unsafe),
            iso_dir: ssh.as_ref().and_then(|s| s.iso_dir.clone()),
            qemu_config_dir: ssh
                .and_then(|s| s.qemu_config_dir)
                .unwrap_or_else(|| "/etc/pve/qemu-server".into()),
        })
    }

    pub fn mode(&self) -> &'static str {
        match self.auth {
            SshAuth::Password(_) => "password",
            SshAuth::Key { .. } => "key",
        }
    }
}

/// Output of a remote command (right-trimmed like the original agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: u32,
}

struct Client {
    check: HostKeyCheck,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let fp = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.fingerprint(HashAlg::Sha256),
            PublicKeyOrCertificate::Certificate(cert) => {
                cert.public_key().fingerprint(HashAlg::Sha256)
            }
        };
        Ok(self.check.verify(&fp.to_string()))
    }
}

fn classify(message: &str) -> SshError {
    let m = message.to_ascii_lowercase();
    let unreachable = [
        "timed out",
        "etimedout",
        "connection refused",
        "econnrefused",
        "ehostunreach",
        "enetunreach",
        "enotfound",
        "no route to host",
        "handshake",
        "failed to lookup",
        "name or service not known",
        "network is unreachable",
        "connection reset",
    ];
    let auth = [
        "all configured authentication methods failed",
        "permission denied",
        "authentication failure",
        "unable to authenticate",
        "could not decode",
        "invalid key",
        "decrypt",
    ];
    if auth.iter().any(|a| m.contains(a)) {
        SshError::AuthFailed(message.to_string())
    } else if unreachable.iter().any(|a| m.contains(a)) {
        SshError::Unreachable(message.to_string())
    } else {
        SshError::Exec(message.to_string())
    }
}

/// Connects, authenticates, runs `command` (feeding `stdin` if given) and
/// returns its output. `timeout` bounds the whole exchange; the connect and
/// handshake get at most 30 s of it.
pub async fn run(
    s: &SshSettings,
    known_hosts: &KnownHosts,
    command: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<ExecOutput, SshError> {
    let fut = run_inner(s, known_hosts, command, stdin, timeout);
    tokio::select! {
        _ = cancel.cancelled() => Err(SshError::Cancelled),
        r = fut => r,
    }
}

/// Connects and authenticates (TOFU host-key check); at most
/// `min(timeout, 30 s)`.
async fn connect(
    s: &SshSettings,
    known_hosts: &KnownHosts,
    timeout: Duration,
) -> Result<client::Handle<Client>, SshError> {
    let ready = timeout.min(Duration::from_secs(30));
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(timeout),
        ..client::Config::default()
    });
    let check = known_hosts.check_for(&s.target_id, &s.host, s.port);
    let mismatch = check.mismatch_slot();
    let handler = Client { check };
    let addr = (s.host.clone(), s.port);
    let connect = async {
        let mut session = client::connect(config, addr, handler).await.map_err(|e| {
            if let Some((expected, got)) =
                mismatch.lock().unwrap_or_else(|p| p.into_inner()).clone()
            {
                SshError::HostKeyMismatch {
                    host: format!("{}:{}", s.host, s.port),
                    expected,
                    got,
                }
            } else {
                classify(&e.to_string())
            }
        })?;
        let res = match &s.auth {
            SshAuth::Password(pw) => session
                .authenticate_password(s.username.clone(), pw.clone())
                .await
                .map_err(|e| classify(&e.to_string()))?,
            SshAuth::Key { pem, passphrase } => {
                let key =
                    russh::keys::decode_secret_key(pem, passphrase.as_deref()).map_err(|e| {
                        SshError::AuthFailed(format!("cannot load the private key: {e}"))
                    })?;
                let hash = session
                    .best_supported_rsa_hash()
                    .await
                    .map_err(|e| classify(&e.to_string()))?
                    .flatten();
                session
                    .authenticate_publickey(
                        s.username.clone(),
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
                    .map_err(|e| classify(&e.to_string()))?
            }
        };
        if !res.success() {
            return Err(SshError::AuthFailed(format!(
                "the server rejected {} authentication for {}",
                s.mode(),
                s.username
            )));
        }
        Ok(session)
    };
    match tokio::time::timeout(ready, connect).await {
        Ok(r) => r,
        Err(_) => Err(SshError::ConnectTimeout),
    }
}

/// Uploads `bytes` to `remote_path` over SFTP: written to a temporary name
/// in the same directory, then renamed into place.
pub async fn sftp_put(
    s: &SshSettings,
    known_hosts: &KnownHosts,
    remote_path: &str,
    bytes: &[u8],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), SshError> {
    let fut = async {
        let session = connect(s, known_hosts, timeout).await?;
        let put = async {
            let channel = session
                .channel_open_session()
                .await
                .map_err(|e| SshError::Exec(e.to_string()))?;
            channel
                .request_subsystem(true, "sftp")
                .await
                .map_err(|e| SshError::Exec(format!("sftp subsystem: {e}")))?;
            let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
                .await
                .map_err(|e| SshError::Exec(format!("sftp: {e}")))?;
            let (dir, name) = remote_path.rsplit_once('/').unwrap_or((".", remote_path));
            let tmp = format!("{dir}/.{name}.botmox-tmp");
            let mut f = sftp
                .create(tmp.clone())
                .await
                .map_err(|e| SshError::Exec(format!("sftp create {tmp}: {e}")))?;
            use tokio::io::AsyncWriteExt;
            f.write_all(bytes)
                .await
                .map_err(|e| SshError::Exec(format!("sftp write {tmp}: {e}")))?;
            f.shutdown()
                .await
                .map_err(|e| SshError::Exec(format!("sftp close {tmp}: {e}")))?;
            let _ = sftp.remove_file(remote_path.to_string()).await;
            sftp.rename(tmp.clone(), remote_path.to_string())
                .await
                .map_err(|e| SshError::Exec(format!("sftp rename {tmp}: {e}")))?;
            let _ = sftp.close().await;
            Ok::<_, SshError>(())
        };
        let r = match tokio::time::timeout(timeout, put).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Exec(format!(
                "the SFTP upload did not finish within {}s",
                timeout.as_secs()
            ))),
        };
        let _ = session
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        r
    };
    tokio::select! {
        _ = cancel.cancelled() => Err(SshError::Cancelled),
        r = fut => r,
    }
}

async fn run_inner(
    s: &SshSettings,
    known_hosts: &KnownHosts,
    command: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<ExecOutput, SshError> {
    let session = connect(s, known_hosts, timeout).await?;
    let exec = async {
        let mut channel = session
            .channel_open_session()
            .await
            .map_err(|e| SshError::Exec(e.to_string()))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| SshError::Exec(e.to_string()))?;
        if let Some(input) = stdin {
            channel
                .data(&input[..])
                .await
                .map_err(|e| SshError::Exec(e.to_string()))?;
            channel
                .eof()
                .await
                .map_err(|e| SshError::Exec(e.to_string()))?;
        }
        let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                _ => {}
            }
        }
        Ok::<_, SshError>(ExecOutput {
            stdout: String::from_utf8_lossy(&out).trim_end().to_string(),
            stderr: String::from_utf8_lossy(&err).trim_end().to_string(),
            exit_code: code.unwrap_or(0),
        })
    };
    let result = match tokio::time::timeout(timeout, exec).await {
        Ok(r) => r,
        Err(_) => Err(SshError::Exec(format!(
            "the command did not finish within {}s",
            timeout.as_secs()
        ))),
    };
    let _ = session
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    result
}

fn timeout_ms(payload: &Value, keys: &[&str], default: u64) -> Duration {
    let v = keys
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_u64))
        .unwrap_or(default)
        .clamp(1_000, 180_000);
    Duration::from_millis(v)
}

fn vmid(payload: &Value, action: &str) -> Result<u64, ExecError> {
    ["vmid", "id"]
        .iter()
        .find_map(|k| {
            payload.get(*k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
        })
        .filter(|v| *v >= 1)
        .ok_or_else(|| ExecError::bad_request(format!("vmid required for proxmox.ssh-{action}")))
}

/// `ssh-status` / `ssh-test` / `ssh-bootstrap` / `ssh-read-config` /
/// `ssh-write-config` / `ssh-exec` (also reachable as `ssh.<action>`).
pub async fn execute(action: &str, payload: &Value, ctx: &ExecContext) -> Result<Value, ExecError> {
    let known = ctx.targets.known_hosts();
    match action {
        "status" | "test" | "bootstrap" => {
            // Never fails: the answer carries the code.
            let target = match ctx.targets.resolve(payload) {
                Ok(t) => t,
                Err(e) => {
                    return Ok(json!({
                        "configured": false, "connected": false, "mode": "none",
                        "code": e.code, "message": e.message,
                    }))
                }
            };
            let s = match SshSettings::resolve(target, payload) {
                Ok(s) => s,
                Err(e) => {
                    let message = match &e {
                        SshError::Required => {
                            "SSH credentials are not configured for this computer.".to_string()
                        }
                        other => other.to_string(),
                    };
                    return Ok(json!({
                        "configured": false, "connected": false, "mode": "none",
                        "host": Value::Null, "port": Value::Null, "username": Value::Null,
                        "code": e.code(),
                        "message": message,
                    }));
                }
            };
            let timeout = timeout_ms(payload, &["timeoutMs", "timeout_ms"], 10_000);
            let mut out = json!({
                "configured": true, "host": s.host, "port": s.port,
                "username": s.username, "mode": s.mode(),
            });
            match run(&s, known, "echo BOTMOX_SSH_OK", None, timeout, &ctx.cancel).await {
                Ok(o) if o.exit_code == 0 && o.stdout.contains("BOTMOX_SSH_OK") => {
                    out["connected"] = Value::Bool(true);
                    out["code"] = Value::from("OK");
                    out["stdout"] = Value::from(o.stdout);
                    if action == "bootstrap" {
                        out["bootstrap"] = Value::from("validated");
                    }
                }
                Ok(o) => {
                    out["connected"] = Value::Bool(true);
                    out["code"] = Value::from("SSH_EXEC_ERROR");
                    out["stdout"] = Value::from(o.stdout);
                    out["stderr"] = Value::from(o.stderr);
                    out["message"] = Value::from(format!("probe exited with {}", o.exit_code));
                }
                Err(e) => {
                    out["connected"] = Value::Bool(false);
                    out["code"] = Value::from(e.code());
                    out["message"] = Value::from(e.to_string());
                }
            }
            Ok(out)
        }
        "read-config" => {
            let target = ctx.targets.resolve(payload)?;
            let s = SshSettings::resolve(target, payload)?;
            let id = vmid(payload, action)?;
            let path = format!("{}/{id}.conf", s.qemu_config_dir.trim_end_matches('/'));
            let timeout = timeout_ms(payload, &["timeoutMs", "timeout_ms"], 15_000);
            let o = run(
                &s,
                known,
                &format!("cat {}", sh_quote(&path)),
                None,
                timeout,
                &ctx.cancel,
            )
            .await?;
            if o.exit_code != 0 {
                return Err(ExecError::new(
                    "SSH_READ_FAILED",
                    format!("cannot read {path} (exit {}): {}", o.exit_code, o.stderr),
                ));
            }
            Ok(json!({ "config": o.stdout }))
        }
        "write-config" => {
            let target = ctx.targets.resolve(payload)?;
            // A whole raw <vmid>.conf can hold any host-level key (args,
            // hookscript, hostpci, …): only with the target's local flag.
            target.require_host_level_config("proxmox.ssh-write-config (a raw VM config file)")?;
            let s = SshSettings::resolve(target, payload)?;
            let id = vmid(payload, action)?;
            let mut content = payload
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ExecError::bad_request("content required for proxmox.ssh-write-config")
                })?
                .to_string();
            if !content.ends_with('\n') {
                content.push('\n');
            }
            let dir = s.qemu_config_dir.trim_end_matches('/').to_string();
            let path = format!("{dir}/{id}.conf");
            let tmp = format!("{dir}/.{id}.conf.botmox-tmp");
            // The content travels on stdin: no heredoc, no quoting of it.
            let cmd = format!(
                "umask 077 && cat > {t} && mv -f {t} {p}",
                t = sh_quote(&tmp),
                p = sh_quote(&path)
            );
            let timeout = timeout_ms(payload, &["timeoutMs", "timeout_ms"], 20_000);
            let o = run(
                &s,
                known,
                &cmd,
                Some(content.into_bytes()),
                timeout,
                &ctx.cancel,
            )
            .await?;
            if o.exit_code != 0 {
                return Err(ExecError::new(
                    "SSH_WRITE_FAILED",
                    format!("cannot write {path} (exit {}): {}", o.exit_code, o.stderr),
                ));
            }
            Ok(json!({ "written": true, "path": path }))
        }
        "exec" => {
            // Not trimmed: a trailing newline or tab is refused like any other.
            let command = payload
                .get("command")
                .and_then(Value::as_str)
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| ExecError::bad_request("command required for proxmox.ssh-exec"))?;
            let target = ctx.targets.resolve(payload)?;
            let wants_unsafe = payload.get("allowUnsafe").and_then(Value::as_bool) == Some(true);
            let target_allows_unsafe = target.config.ssh.as_ref().is_some_and(|s| s.allow_unsafe);
            // Allowlisted: argv rebuilt with every word quoted. Otherwise only
            // when the payload asks for it AND the customer allowed it locally.
            let (remote, allowlisted) = match allowlist::parse(command) {
                Ok(parsed) => (parsed.to_remote_command(), true),
                Err(_) if wants_unsafe && target_allows_unsafe => (command.to_string(), false),
                Err(e) => return Err(SshError::Forbidden(e).into()),
            };
            let s = SshSettings::resolve(target, payload)?;
            let timeout = timeout_ms(payload, &["timeoutMs", "timeout", "timeout_ms"], 30_000);
            let o = run(&s, known, &remote, None, timeout, &ctx.cancel).await?;
            Ok(json!({
                "stdout": o.stdout, "stderr": o.stderr,
                "exitCode": o.exit_code, "allowlisted": allowlisted,
            }))
        }
        other => Err(ExecError::new(
            "UNKNOWN_COMMAND",
            format!("Unknown ssh action: {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_messages() {
        assert_eq!(
            classify("Connection refused (os error 111)").code(),
            "SSH_UNREACHABLE"
        );
        assert_eq!(classify("Permission denied").code(), "SSH_AUTH_FAILED");
        assert_eq!(classify("weird").code(), "SSH_EXEC_ERROR");
    }
}
