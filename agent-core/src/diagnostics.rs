//! The diagnostics bundle: versions, redacted config and the last log lines.

use std::path::Path;

use serde_json::{json, Value};

use crate::config::{secret_names, AgentConfig};
use crate::redact::{redact_json, redact_line};
use crate::secrets::SecretStore;

/// Builds the bundle. Secrets never enter it: the config holds none, the
/// secret store is only asked whether a secret exists, and every string is
/// redacted again on the way out.
pub fn bundle(
    cfg: &AgentConfig,
    store: &dyn SecretStore,
    config_dir: &Path,
    log_dir: &Path,
    lines: usize,
) -> Value {
    let has = |name: &str| store.get(name).ok().flatten().is_some();
    let targets: Vec<Value> = cfg
        .targets
        .iter()
        .map(|t| {
            json!({
                "id": t.id,
                "label": t.display_label(),
                "url": t.url,
                "node": t.node,
                "auth": t.auth,
                "tls": t.tls_mode(),
                "insecure": t.tls.insecure,
                "has_password": has(&secret_names::proxmox_password(&t.id)),
                "has_api_token_secret": has(&secret_names::proxmox_token_secret(&t.id)),
                "has_ssh_key": has(&secret_names::ssh_private_key(&t.id)),
                "ssh": t.ssh,
            })
        })
        .collect();
    let mut config = serde_json::to_value(cfg).unwrap_or(Value::Null);
    redact_json(&mut config);
    let logs: Vec<Value> = crate::logging::log_files(log_dir)
        .into_iter()
        .rev()
        .take(6)
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail: Vec<String> = all[all.len().saturating_sub(lines)..]
                .iter()
                .map(|l| redact_line(l))
                .collect();
            let meta = std::fs::metadata(&p).ok();
            json!({
                "file": p.file_name().map(|n| n.to_string_lossy().to_string()),
                "size": meta.as_ref().map(|m| m.len()),
                "last_lines": tail,
            })
        })
        .collect();
    let mut out = json!({
        "app": {
            "name": "botmox-agent",
            "app_version": crate::VERSION,
            "generated_at": chrono::Utc::now().to_rfc3339(),
            "process_pid": std::process::id(),
        },
        "runtime": {
            "os": std::env::consts::OS,
            "family": std::env::consts::FAMILY,
            "arch": std::env::consts::ARCH,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        },
        "paths": {
            "config_dir": config_dir.display().to_string(),
            "log_dir": log_dir.display().to_string(),
        },
        "secret_store": store.backend().as_str(),
        "has_agent_token": has(secret_names::AGENT_TOKEN),
        "has_pairing_code": has(secret_names::PAIRING_CODE),
        "config": config,
        "targets": targets,
        "logs": logs,
    });
    redact_json(&mut out);
    out
}
