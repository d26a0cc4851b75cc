use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use agent_core::config::{AuthKind, SshConfig, TargetConfig, TargetTls};
use agent_core::executor::{ExecContext, Target, TargetSecrets, Targets};
use agent_core::retry::RetryPolicy;
use agent_core::ssh::KnownHosts;
use pve_sim::{PveSim, SimConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub async fn sim() -> PveSim {
    PveSim::start_with(SimConfig {
        task_duration: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .expect("pve-sim starts")
}

pub fn hex_fp(sim: &PveSim) -> String {
    sim.fingerprint().replace(':', "").to_ascii_lowercase()
}

pub fn token_target(sim: &PveSim, id: &str) -> Target {
    Target {
        config: TargetConfig {
            id: id.into(),
            label: None,
            url: sim.url(),
            node: sim.node().into(),
            auth: AuthKind::Token,
            token_id: Some(sim.token_id().into()),
            username: None,
            tls: TargetTls {
                fingerprint: Some(hex_fp(sim)),
                ..TargetTls::default()
            },
            ssh: None,
            allow_ssh_override: false,
            allow_host_level_config: false,
            iso_storage: None,
        },
        secrets: TargetSecrets {
            token_secret: Some(sim.token_secret().into()),
            ..TargetSecrets::default()
        },
    }
}

pub fn password_target(sim: &PveSim, id: &str, password: &str) -> Target {
    Target {
        config: TargetConfig {
            id: id.into(),
            label: None,
            url: sim.url(),
            node: sim.node().into(),
            auth: AuthKind::Password,
            token_id: None,
            // without the realm: the client adds @pam
            username: Some(sim.username().trim_end_matches("@pam").into()),
            tls: TargetTls {
                fingerprint: Some(hex_fp(sim)),
                ..TargetTls::default()
            },
            ssh: None,
            allow_ssh_override: false,
            allow_host_level_config: false,
            iso_storage: None,
        },
        secrets: TargetSecrets {
            password: Some(password.into()),
            ..TargetSecrets::default()
        },
    }
}

/// Fast retries so fault tests stay quick.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy::exponential(
        4,
        Duration::from_millis(100),
        Duration::from_millis(300),
        Duration::from_secs(20),
    )
}

pub fn ctx(targets: Vec<Target>) -> ExecContext {
    let active = targets.first().map(|t| t.config.id.clone());
    ExecContext::new(
        Arc::new(
            Targets::new(targets, active, KnownHosts::in_memory()).with_retry_policy(fast_retry()),
        ),
        CancellationToken::new(),
    )
}

pub fn ssh_config(host: &str, port: u16) -> SshConfig {
    SshConfig {
        host: Some(host.into()),
        port,
        user: Some("root".into()),
        allow_unsafe: false,
        qemu_config_dir: None,
        iso_dir: None,
    }
}

pub async fn exec(ctx: &ExecContext, cmd: &str, payload: Value) -> Value {
    match agent_core::execute(cmd, payload.clone(), ctx).await {
        Ok(v) => v,
        Err(e) => panic!("{cmd} {payload}: {e}"),
    }
}

pub async fn exec_err(ctx: &ExecContext, cmd: &str, payload: Value) -> agent_core::ExecError {
    match agent_core::execute(cmd, payload.clone(), ctx).await {
        Ok(v) => panic!("{cmd} {payload} should fail, got {v}"),
        Err(e) => e,
    }
}

/// Runs a required external program; panics (fails the test) if missing.
pub fn run_tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "required program {program} could not be run ({e}); install it (see docs/agent.md)"
            )
        })
}

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A passphrase-less ed25519 key pair at `path` (+ `.pub`).
pub fn keygen(path: &std::path::Path) {
    let out = run_tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
