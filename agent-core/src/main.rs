//! `botmox-agent`: the headless Bot-Mox agent.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use agent_core::config::{
    self, secret_names, AuthKind, ConfigStore, SshConfig, TargetConfig, TargetTls,
};
use agent_core::executor::{Target, TargetSecrets, Targets};
use agent_core::pairing;
use agent_core::runtime::{self, register};
use agent_core::secrets::{self, SecretBackend, SecretStore};
use agent_core::ssh::KnownHosts;
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(name = "botmox-agent", version, about = "Bot-Mox agent (headless)")]
struct Cli {
    /// Configuration directory (default: the OS config dir + botmox-agent).
    #[arg(long, global = true, env = config::ENV_CONFIG_DIR)]
    config_dir: Option<PathBuf>,
    /// Where secrets are kept. `file` is a 0600 file in the config dir, for
    /// hosts without a keyring; it is warned about on every use.
    #[arg(long, global = true, value_enum, env = "BOTMOX_AGENT_SECRET_STORE")]
    secret_store: Option<SecretBackend>,
    /// Log filter for the log file (EnvFilter syntax).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Register with the server using a pairing bundle, pairing URL or code.
    Pair {
        /// Bundle, `https://…/agent/pair?bundle=…`, `botmox://pair?…`, JSON or code.
        bundle_or_url: String,
        /// Server URL when the input does not carry one (a raw code).
        #[arg(long)]
        server_url: Option<String>,
    },
    /// Run the agent: heartbeat, long-poll commands, run them, report
    /// (until SIGTERM/SIGINT, or exit code 3 when revoked, 4 when the token
    /// is refused).
    Run {
        /// Seconds a running command may continue after SIGTERM before it
        /// is cancelled (reported failed with AGENT_SHUTDOWN).
        #[arg(long, default_value_t = 20)]
        shutdown_grace_secs: u64,
    },
    /// Show the configuration, targets, TLS modes and the runtime state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Manage Proxmox targets.
    #[command(subcommand)]
    Targets(TargetsCmd),
    /// Write a diagnostics bundle (redacted config, versions, last log lines).
    Diagnostics {
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum TargetsCmd {
    /// Add or replace a target.
    Add(Box<AddArgs>),
    /// List targets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Log in and query the version and VM list of a target.
    Test { id: String },
    /// Remove a target and its secrets.
    Remove { id: String },
    /// Make a target the active one.
    Use { id: String },
}

#[derive(Args, Debug)]
struct AddArgs {
    #[arg(long)]
    id: String,
    /// `https://host:8006`
    #[arg(long)]
    url: String,
    #[arg(long)]
    node: String,
    #[arg(long)]
    label: Option<String>,
    /// API token id `user@realm!name`.
    #[arg(long, conflicts_with = "username", requires = "token_secret_stdin")]
    token_id: Option<String>,
    /// Read the API token secret from stdin.
    #[arg(long)]
    token_secret_stdin: bool,
    /// Username for ticket login (`root@pam`).
    #[arg(long, requires = "password_stdin")]
    username: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// SHA-256 fingerprint of the PVE certificate (`AB:CD:…` or hex).
    #[arg(long, conflicts_with_all = ["insecure", "ca_file"])]
    fingerprint: Option<String>,
    /// Trust this CA (PEM file) for the PVE certificate.
    #[arg(long, conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Do not verify the PVE certificate (reported in status).
    #[arg(long)]
    insecure: bool,
    #[arg(long)]
    ssh_host: Option<String>,
    #[arg(long)]
    ssh_port: Option<u16>,
    #[arg(long)]
    ssh_user: Option<String>,
    /// Private key file; its content is stored in the secret store.
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// Allow `ssh-exec` with `allowUnsafe` on this target.
    #[arg(long)]
    ssh_allow_unsafe: bool,
    /// Directory of VM configs on the host (default /etc/pve/qemu-server).
    #[arg(long)]
    ssh_qemu_config_dir: Option<String>,
    /// ISO directory on the host for the SFTP upload fallback.
    #[arg(long)]
    ssh_iso_dir: Option<String>,
    /// Make this target the active one.
    #[arg(long)]
    activate: bool,
}

struct Env {
    dir: PathBuf,
    store: ConfigStore,
    log_dir: PathBuf,
    backend: SecretBackend,
}

impl Env {
    fn secrets(&self) -> Result<Arc<dyn SecretStore>, String> {
        secrets::open_store(self.backend, &self.dir).map_err(|e| e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit = cli.config_dir.is_some();
    let dir = match cli
        .config_dir
        .clone()
        .map(Ok)
        .unwrap_or_else(config::default_config_dir)
    {
        Ok(d) => d,
        Err(e) => return fail(&e.to_string()),
    };
    let log_dir = config::log_dir(&dir, explicit);
    let _guard = match agent_core::logging::init(&log_dir, &cli.log_level) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("warning: file logging disabled: {e}");
            None
        }
    };
    let store = ConfigStore::new(&dir);
    let saved_backend = store.load().ok().and_then(|c| c.secret_store);
    let backend = cli
        .secret_store
        .or(saved_backend)
        .unwrap_or(SecretBackend::Keyring);
    let env = Env {
        dir,
        store,
        log_dir,
        backend,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    if let Command::Run {
        shutdown_grace_secs,
    } = cli.command
    {
        return rt.block_on(run_agent(&env, shutdown_grace_secs));
    }
    let result = rt.block_on(run(cli.command, &env));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "command failed");
            fail(&e)
        }
    }
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {}", agent_core::redact::redact_text(msg));
    ExitCode::FAILURE
}

fn read_stdin_secret(what: &str) -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
    let s = s.trim_end_matches(['\r', '\n']).to_string();
    if s.is_empty() {
        return Err(format!("the {what} on stdin is empty"));
    }
    Ok(s)
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_agent(env: &Env, grace: u64) -> ExitCode {
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(event_name = "agent.signal", "shutdown requested");
        s2.cancel();
    });
    let mut opts = runtime::RunOptions::new(env.dir.clone(), env.backend);
    opts.shutdown_grace = std::time::Duration::from_secs(grace);
    match runtime::run(opts, shutdown).await {
        Ok(()) => {
            eprintln!("botmox-agent stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            eprintln!("error: {}", agent_core::redact::redact_text(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cmd: Command, env: &Env) -> Result<(), String> {
    match cmd {
        Command::Pair {
            bundle_or_url,
            server_url,
        } => pair(env, &bundle_or_url, server_url.as_deref()).await,
        Command::Run { .. } => Err("run is handled by run_agent".into()),
        Command::Status { json } => status(env, json),
        Command::Targets(t) => targets(env, t).await,
        Command::Diagnostics { output } => diagnostics(env, &output),
    }
}

fn load(env: &Env) -> Result<config::AgentConfig, String> {
    env.store.load().map_err(|e| e.to_string())
}

fn save(env: &Env, mut cfg: config::AgentConfig) -> Result<(), String> {
    cfg.secret_store = Some(env.backend);
    env.store.save(&cfg).map_err(|e| e.to_string())
}

async fn pair(env: &Env, input: &str, server_url: Option<&str>) -> Result<(), String> {
    let p = pairing::parse(input)
        .and_then(|p| p.require_server(server_url))
        .map_err(|e| format!("PAIRING_INVALID: {e}"))?;
    let secrets = env.secrets()?;
    let url = p.server_url.clone().unwrap_or_default();
    let resp = register::register(&p, &register::budget())
        .await
        .map_err(|e| e.to_string())?;
    register::store(&p, &resp, secrets.as_ref(), &env.store, env.backend)
        .map_err(|e| e.to_string())?;
    // A new registration starts with a clean runtime state.
    let rdir = runtime::runtime_dir(&env.dir);
    let _ = std::fs::remove_file(rdir.join(runtime::state::STATUS_FILE));
    tracing::info!(
        event_name = "agent.registered",
        form = ?p.form,
        server_url = %url,
        agent_id = %resp.agent.id,
        pinned = p.server_cert_sha256.is_some(),
        "agent registered"
    );
    println!(
        "Registered as agent {} ({}) with {url} ({}). Start it with: botmox-agent run",
        resp.agent.id,
        resp.agent.name,
        if p.server_cert_sha256.is_some() {
            "certificate pinned"
        } else {
            "system CA trust"
        }
    );
    Ok(())
}

fn status_value(env: &Env) -> Result<Value, String> {
    let cfg = load(env)?;
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
                "active": cfg.active_target.as_deref() == Some(t.id.as_str()),
                "ssh": t.ssh.as_ref().map(|s| json!({"host": s.host, "port": s.port, "user": s.user})),
            })
        })
        .collect();
    let insecure: Vec<&str> = cfg
        .targets
        .iter()
        .filter(|t| t.tls.insecure)
        .map(|t| t.id.as_str())
        .collect();
    Ok(json!({
        "version": agent_core::VERSION,
        "config_dir": env.dir.display().to_string(),
        "config_file": env.store.path().display().to_string(),
        "log_dir": env.log_dir.display().to_string(),
        "secret_store": env.backend.as_str(),
        "server": cfg.server.as_ref().map(|s| json!({
            "url": s.url,
            "tls": if s.cert_sha256.is_some() { "pinned" } else { "system" },
            "paired": s.agent_id.is_some(),
            "pairing_pending": s.pairing_pending,
            "agent_id": s.agent_id,
        })),
        "active_target": cfg.active_target,
        "targets": targets,
        "insecure_targets": insecure,
        "runtime": runtime::state::snapshot(&runtime::runtime_dir(&env.dir)),
    }))
}

fn status(env: &Env, as_json: bool) -> Result<(), String> {
    let v = status_value(env)?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!("botmox-agent {}", agent_core::VERSION);
    println!("config:       {}", v["config_file"].as_str().unwrap_or(""));
    println!("secret store: {}", v["secret_store"].as_str().unwrap_or(""));
    match v["server"].as_object() {
        Some(s) => println!(
            "server:       {} (tls {}, {})",
            s["url"].as_str().unwrap_or(""),
            s["tls"].as_str().unwrap_or(""),
            if s["paired"] == true {
                "paired"
            } else {
                "pairing pending"
            }
        ),
        None => println!("server:       not paired"),
    }
    let rt = &v["runtime"];
    println!(
        "runtime:      {} (last heartbeat {}, outbox {}, current command {})",
        rt["connection"].as_str().unwrap_or("unknown"),
        rt["last_heartbeat_at"].as_str().unwrap_or("never"),
        rt["outbox_size"],
        rt["current_command"]["id"].as_str().unwrap_or("none"),
    );
    if let Some(e) = rt["last_error"].as_object() {
        println!(
            "last error:   {}: {}",
            e["code"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    print_targets(&v["targets"]);
    Ok(())
}

fn print_targets(targets: &Value) {
    let list = targets.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("targets:      none");
    }
    for t in list {
        let tls = t["tls"].as_str().unwrap_or("");
        println!(
            "{} {:<16} {:<32} node={} auth={} tls={}{}",
            if t["active"] == true { "*" } else { " " },
            t["id"].as_str().unwrap_or(""),
            t["url"].as_str().unwrap_or(""),
            t["node"].as_str().unwrap_or(""),
            t["auth"].as_str().unwrap_or(""),
            tls,
            if tls == "insecure" {
                "  (WARNING: certificate not verified)"
            } else {
                ""
            }
        );
    }
}

async fn targets(env: &Env, cmd: TargetsCmd) -> Result<(), String> {
    match cmd {
        TargetsCmd::Add(a) => add_target(env, *a),
        TargetsCmd::List { json } => {
            let v = status_value(env)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v["targets"]).map_err(|e| e.to_string())?
                );
            } else {
                print_targets(&v["targets"]);
            }
            Ok(())
        }
        TargetsCmd::Remove { id } => {
            let mut cfg = load(env)?;
            if !cfg.remove_target(&id) {
                return Err(format!("no target {id:?}"));
            }
            let secrets = env.secrets()?;
            for name in secret_names::for_target(&id) {
                secrets.delete(&name).map_err(|e| e.to_string())?;
            }
            save(env, cfg)?;
            tracing::info!(event_name = "agent.target.removed", target = %id, "target removed");
            println!("removed {id}");
            Ok(())
        }
        TargetsCmd::Use { id } => {
            let mut cfg = load(env)?;
            if cfg.target(&id).is_none() {
                return Err(format!("no target {id:?}"));
            }
            cfg.active_target = Some(id.clone());
            save(env, cfg)?;
            println!("active target: {id}");
            Ok(())
        }
        TargetsCmd::Test { id } => test_target(env, &id).await,
    }
}

fn add_target(env: &Env, a: AddArgs) -> Result<(), String> {
    let (auth, secret_name, secret) =
        match (&a.token_id, &a.username) {
            (Some(_), None) => {
                if !a.token_secret_stdin {
                    return Err("--token-id needs --token-secret-stdin".into());
                }
                (
                    AuthKind::Token,
                    secret_names::proxmox_token_secret(&a.id),
                    read_stdin_secret("API token secret")?,
                )
            }
            (None, Some(_)) => {
                if !a.password_stdin {
                    return Err("--username needs --password-stdin".into());
                }
                (
                    AuthKind::Password,
                    secret_names::proxmox_password(&a.id),
                    read_stdin_secret("password")?,
                )
            }
            _ => return Err(
                "give either --token-id ID --token-secret-stdin or --username U --password-stdin"
                    .into(),
            ),
        };
    let fingerprint = a
        .fingerprint
        .as_deref()
        .map(pairing::normalize_fingerprint)
        .transpose()
        .map_err(|e| e.to_string())?;
    let ssh_key = match &a.ssh_key {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let ssh = if a.ssh_host.is_some()
        || a.ssh_user.is_some()
        || a.ssh_key.is_some()
        || a.ssh_port.is_some()
        || a.ssh_allow_unsafe
        || a.ssh_qemu_config_dir.is_some()
        || a.ssh_iso_dir.is_some()
    {
        Some(SshConfig {
            host: a.ssh_host.clone(),
            port: a.ssh_port.unwrap_or(22),
            user: a.ssh_user.clone(),
            allow_unsafe: a.ssh_allow_unsafe,
            qemu_config_dir: a.ssh_qemu_config_dir.clone(),
            iso_dir: a.ssh_iso_dir.clone(),
        })
    } else {
        None
    };
    let t = TargetConfig {
        id: a.id.clone(),
        label: a.label.clone(),
        url: a.url.trim_end_matches('/').to_string(),
        node: a.node.clone(),
        auth,
        token_id: a.token_id.clone(),
        username: a.username.clone(),
        tls: TargetTls {
            fingerprint,
            ca_file: a.ca_file.clone(),
            insecure: a.insecure,
        },
        ssh,
    };
    let mut cfg = load(env)?;
    cfg.upsert_target(t).map_err(|e| e.to_string())?;
    if a.activate {
        cfg.active_target = Some(a.id.clone());
    }
    let secrets = env.secrets()?;
    secrets
        .set(&secret_name, &secret)
        .map_err(|e| e.to_string())?;
    if let Some(k) = ssh_key {
        secrets
            .set(&secret_names::ssh_private_key(&a.id), &k)
            .map_err(|e| e.to_string())?;
    }
    save(env, cfg)?;
    if a.insecure {
        tracing::warn!(event_name = "agent.target.insecure", target = %a.id, "target added with TLS verification disabled");
        eprintln!("warning: TLS verification is disabled for target {}", a.id);
    }
    tracing::info!(event_name = "agent.target.added", target = %a.id, url = %a.url, "target added");
    println!("added target {}", a.id);
    Ok(())
}

async fn test_target(env: &Env, id: &str) -> Result<(), String> {
    let cfg = load(env)?;
    let t = cfg
        .target(id)
        .ok_or_else(|| format!("no target {id:?}"))?
        .clone();
    let secrets = env.secrets()?;
    let target = Target {
        secrets: TargetSecrets::load(secrets.as_ref(), id).map_err(|e| e.to_string())?,
        config: t,
    };
    let targets = Arc::new(Targets::new(
        vec![target],
        Some(id.to_string()),
        KnownHosts::new(agent_core::executor::known_hosts_path(&env.dir)),
    ));
    let ctx = agent_core::ExecContext::new(targets, CancellationToken::new());
    let version = agent_core::execute("proxmox.status", json!({ "target": id }), &ctx)
        .await
        .map_err(|e| e.to_string())?;
    let vms = agent_core::execute("proxmox.list-vms", json!({ "target": id }), &ctx)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(event_name = "agent.target.tested", target = %id, "target test passed");
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "target": id,
            "ok": true,
            "version": version["version"],
            "tls": version["tls"],
            "insecure": version["insecure"],
            "vm_count": vms.as_array().map(Vec::len),
        }))
        .map_err(|e| e.to_string())?
    );
    Ok(())
}

fn diagnostics(env: &Env, output: &Path) -> Result<(), String> {
    let cfg = load(env)?;
    let secrets = env.secrets()?;
    let v = agent_core::diagnostics::bundle(&cfg, secrets.as_ref(), &env.dir, &env.log_dir, 200);
    let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
    std::fs::write(output, text).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    tracing::info!(event_name = "agent.diagnostics.bundle.created", path = %output.display(), "diagnostics bundle written");
    println!("wrote {}", output.display());
    Ok(())
}
