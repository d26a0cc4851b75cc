//! `botmox-agent`: the headless Bot-Mox agent.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use agent_core::config::{self, AuthKind};
use agent_core::control::{Control, TargetInput, TargetSecretsInput, TlsChoice};
use agent_core::runtime;
use agent_core::secrets::SecretBackend;
use agent_core::service;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;
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
        /// Accept a plain http:// server on a non-loopback host: the agent
        /// token then travels unencrypted (recorded and shown by status).
        #[arg(long)]
        allow_insecure_http: bool,
    },
    /// Run the agent: heartbeat, long-poll commands, run them, report
    /// (until SIGTERM/SIGINT, or exit code 3 when revoked, 4 when the token
    /// is refused). Only one runtime per config dir: exits 1 with
    /// AGENT_ALREADY_RUNNING when another one (a service or the tray app)
    /// holds `<config-dir>/runtime/agent.lock`.
    Run {
        /// Seconds a running command may continue after SIGTERM before it
        /// is cancelled (reported failed with AGENT_SHUTDOWN).
        #[arg(long, default_value_t = 20)]
        shutdown_grace_secs: u64,
        /// How many commands run at once (1..=64; default:
        /// `max_concurrent_commands` in config.toml, else 4).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
        max_concurrent_commands: Option<u32>,
    },
    /// Show the configuration, targets, TLS modes and the runtime state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Manage Proxmox targets.
    #[command(subcommand)]
    Targets(TargetsCmd),
    /// Secrets the server delivers to this agent.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Write a diagnostics bundle (redacted config, versions, last log lines).
    Diagnostics {
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Windows service mode (on Linux use the systemd unit in
    /// installer/systemd). Defaults on Windows: config dir
    /// %ProgramData%\BotMox\Agent, secret store `file`.
    #[command(subcommand)]
    Service(ServiceCmd),
}

#[derive(Subcommand, Debug)]
enum SecretCmd {
    /// Fetch a secret bound to this agent and decrypt it with the agent key
    /// (from the secret store): to standard output as is, or to a new 0600
    /// file with --output.
    Get {
        /// The secret's id.
        id: String,
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum ServiceCmd {
    /// Register the BotMoxAgent service (automatic start, LocalSystem,
    /// restarted after a crash) for this config dir, which must be paired.
    Install {
        /// Seconds a running command may continue after a stop request.
        #[arg(long, default_value_t = 20)]
        shutdown_grace_secs: u64,
    },
    /// Stop the service (up to 30 s) and remove it.
    Uninstall,
    /// What the Service Control Manager runs; not for consoles.
    Run {
        #[arg(long, default_value_t = 20)]
        shutdown_grace_secs: u64,
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
    /// Let commands choose the SSH host/port/user (sshHost, sshPort,
    /// sshUsername) — they must then bring their own SSH credentials;
    /// stored secrets never go to a host the command chose.
    #[arg(long)]
    allow_ssh_override: bool,
    /// Allow host-level VM config: update-config keys args, hookscript,
    /// hostpci*, usb*, serial*, parallel*, virtiofs*, disks on host paths,
    /// and ssh-write-config (each gives root on the Proxmox host).
    #[arg(long)]
    allow_host_level_config: bool,
    /// Storage for provisioning ISOs when a command names none (default:
    /// the node's storage that holds ISO images, `local` when it does).
    #[arg(long, value_name = "STORAGE")]
    iso_storage: Option<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let explicit = cli.config_dir.is_some();
    let is_service = matches!(cli.command, Command::Service(_));
    let dir = match cli.config_dir.clone().map(Ok).unwrap_or_else(|| {
        if is_service && cfg!(windows) {
            Ok(service::default_service_config_dir(std::env::var_os(
                "ProgramData",
            )))
        } else {
            config::default_config_dir()
        }
    }) {
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
    // Config dir, log dir and secret backend resolved once, the same way
    // the tray app does (agent_core::control).
    // A Windows service runs as LocalSystem, which cannot read the
    // installing user's Credential Manager: the file store is its default.
    let secret_store = match cli.secret_store {
        None if is_service => Some(SecretBackend::File),
        other => other,
    };
    let control = Control::with_paths(dir, log_dir, secret_store);
    if let Command::Service(cmd) = cli.command {
        // Synchronous: the SCM dispatcher builds the runtime on its thread.
        return match service_command(&control, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    if let Command::Run {
        shutdown_grace_secs,
        max_concurrent_commands,
    } = cli.command
    {
        return rt.block_on(run_agent(
            &control,
            shutdown_grace_secs,
            max_concurrent_commands,
        ));
    }
    let result = rt.block_on(run(cli.command, &control));
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

async fn run_agent(control: &Control, grace: u64, max_concurrent: Option<u32>) -> ExitCode {
    let shutdown = CancellationToken::new();
    let s2 = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(event_name = "agent.signal", "shutdown requested");
        s2.cancel();
    });
    let mut opts = control.run_options();
    opts.shutdown_grace = std::time::Duration::from_secs(grace);
    opts.max_concurrent_commands = max_concurrent.map(|n| n as usize);
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

async fn run(cmd: Command, control: &Control) -> Result<(), String> {
    match cmd {
        Command::Pair {
            bundle_or_url,
            server_url,
            allow_insecure_http,
        } => {
            pair(
                control,
                &bundle_or_url,
                server_url.as_deref(),
                allow_insecure_http,
            )
            .await
        }
        Command::Run { .. } => Err("run is handled by run_agent".into()),
        Command::Status { json } => status(control, json),
        Command::Targets(t) => targets(control, t).await,
        Command::Diagnostics { output } => diagnostics(control, &output),
        Command::Secret(SecretCmd::Get { id, output }) => secret_get(control, &id, output).await,
        Command::Service(_) => Err("service is handled by service_command".into()),
    }
}

#[cfg(not(windows))]
fn service_command(_control: &Control, _cmd: ServiceCmd) -> Result<(), String> {
    Err(service::ServiceError::Unsupported.to_string())
}

#[cfg(windows)]
fn service_command(control: &Control, cmd: ServiceCmd) -> Result<(), String> {
    use agent_core::service::windows;
    match cmd {
        ServiceCmd::Install {
            shutdown_grace_secs,
        } => {
            let cfg = config::ConfigStore::new(control.config_dir())
                .load()
                .map_err(|e| e.to_string())?;
            if cfg.server.and_then(|s| s.agent_id).is_none() {
                return Err(format!(
                    "{} is not paired; pair first with the same --config-dir and --secret-store, then install the service",
                    control.config_dir().display()
                ));
            }
            let args = service::launch_arguments(
                control.config_dir(),
                control.backend(),
                shutdown_grace_secs,
            );
            windows::install(control.config_dir(), args).map_err(|e| e.to_string())?;
            println!(
                "Installed the {} service for {}. Start it with: sc start {}",
                service::SERVICE_DISPLAY_NAME,
                control.config_dir().display(),
                service::SERVICE_NAME
            );
            Ok(())
        }
        ServiceCmd::Uninstall => {
            windows::uninstall().map_err(|e| e.to_string())?;
            println!("Removed the {} service", service::SERVICE_DISPLAY_NAME);
            Ok(())
        }
        ServiceCmd::Run {
            shutdown_grace_secs,
        } => {
            let mut opts = control.run_options();
            opts.shutdown_grace = std::time::Duration::from_secs(shutdown_grace_secs);
            windows::run(opts).map_err(|e| e.to_string())
        }
    }
}

async fn secret_get(control: &Control, id: &str, output: Option<PathBuf>) -> Result<(), String> {
    let value = control.fetch_secret(id).await.map_err(|e| e.to_string())?;
    match output {
        Some(path) => {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            // A new file only (never through an existing file or link), 0600.
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            opts.open(&path)
                .and_then(|mut f| f.write_all(&value).and_then(|_| f.sync_all()))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("wrote secret {id} to {} (mode 0600)", path.display());
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(&value)
                .and_then(|_| out.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
        }
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

async fn pair(
    control: &Control,
    input: &str,
    server_url: Option<&str>,
    allow_insecure_http: bool,
) -> Result<(), String> {
    let out = control
        .pair(input, server_url, allow_insecure_http)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "Registered as agent {} ({}) with {} ({}). Start it with: botmox-agent run",
        out.agent_id,
        out.agent_name,
        out.server_url,
        if out.trust == "pinned" {
            "certificate pinned"
        } else {
            "system CA trust"
        }
    );
    Ok(())
}

fn status(control: &Control, as_json: bool) -> Result<(), String> {
    let report = control.status().map_err(|e| e.to_string())?;
    let v = serde_json::to_value(&report).map_err(|e| e.to_string())?;
    if as_json {
        println!("{}", to_json(&v)?);
        return Ok(());
    }
    println!("botmox-agent {}", agent_core::VERSION);
    println!("config:       {}", v["config_file"].as_str().unwrap_or(""));
    println!("secret store: {}", v["secret_store"].as_str().unwrap_or(""));
    println!(
        "agent key:    {}",
        v["agent_key_id"]
            .as_str()
            .unwrap_or("none (made at pairing)")
    );
    match v["server"].as_object() {
        Some(s) => println!(
            "server:       {} (tls {}, {}){}",
            s["url"].as_str().unwrap_or(""),
            if s["cleartext_http"] == true {
                "none: plain http"
            } else {
                s["tls"].as_str().unwrap_or("")
            },
            if s["paired"] == true {
                "paired"
            } else {
                "pairing pending"
            },
            if s["allow_insecure_http"] == true {
                "  (WARNING: --allow-insecure-http, the agent token travels unencrypted)"
            } else {
                ""
            }
        ),
        None => println!("server:       not paired"),
    }
    let rt = &v["runtime"];
    println!(
        "runtime:      {} (last heartbeat {}, outbox {}, running commands {})",
        rt["connection"].as_str().unwrap_or("unknown"),
        rt["last_heartbeat_at"].as_str().unwrap_or("never"),
        rt["outbox_size"],
        running_ids(rt),
    );
    if let Some(e) = rt["last_error"].as_object() {
        println!(
            "last error:   {}: {}",
            e["code"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        );
    }
    let recent = rt["recent_commands"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !recent.is_empty() {
        println!("recent commands (newest first):");
        for c in recent {
            println!(
                "  {} {:<10} {:<28} {}{}",
                c["finished_at"].as_str().unwrap_or(""),
                c["state"].as_str().unwrap_or(""),
                c["command_type"].as_str().unwrap_or(""),
                c["id"].as_str().unwrap_or(""),
                c["error_code"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            );
        }
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
            "{} {:<16} {:<32} node={} auth={} tls={} ssh_override={} host_level_config={}{}",
            if t["active"] == true { "*" } else { " " },
            t["id"].as_str().unwrap_or(""),
            t["url"].as_str().unwrap_or(""),
            t["node"].as_str().unwrap_or(""),
            t["auth"].as_str().unwrap_or(""),
            tls,
            t["allow_ssh_override"] == true,
            t["allow_host_level_config"] == true,
            if tls == "insecure" {
                "  (WARNING: certificate not verified)"
            } else {
                ""
            }
        );
    }
}

async fn targets(control: &Control, cmd: TargetsCmd) -> Result<(), String> {
    match cmd {
        TargetsCmd::Add(a) => add_target(control, *a),
        TargetsCmd::List { json } => {
            let list = control.list_targets().map_err(|e| e.to_string())?;
            let v = serde_json::to_value(&list).map_err(|e| e.to_string())?;
            if json {
                println!("{}", to_json(&v)?);
            } else {
                print_targets(&v);
            }
            Ok(())
        }
        TargetsCmd::Remove { id } => {
            control.remove_target(&id).map_err(|e| e.to_string())?;
            println!("removed {id}");
            Ok(())
        }
        TargetsCmd::Use { id } => {
            control.use_target(&id).map_err(|e| e.to_string())?;
            println!("active target: {id}");
            Ok(())
        }
        TargetsCmd::Test { id } => {
            let r = control.test_target(&id).await.map_err(|e| e.to_string())?;
            println!("{}", to_json(&r)?);
            if !r.proxmox.ok {
                return Err(format!("{}: {}", r.proxmox.code, r.proxmox.message));
            }
            if !r.ok {
                return Err(format!("{}: {}", r.ssh.code, r.ssh.message));
            }
            Ok(())
        }
    }
}

fn add_target(control: &Control, a: AddArgs) -> Result<(), String> {
    let mut secrets = TargetSecretsInput::default();
    let auth =
        match (&a.token_id, &a.username) {
            (Some(_), None) => {
                if !a.token_secret_stdin {
                    return Err("--token-id needs --token-secret-stdin".into());
                }
                secrets.token_secret = Some(read_stdin_secret("API token secret")?);
                AuthKind::Token
            }
            (None, Some(_)) => {
                if !a.password_stdin {
                    return Err("--username needs --password-stdin".into());
                }
                secrets.password = Some(read_stdin_secret("password")?);
                AuthKind::Password
            }
            _ => return Err(
                "give either --token-id ID --token-secret-stdin or --username U --password-stdin"
                    .into(),
            ),
        };
    if let Some(p) = &a.ssh_key {
        secrets.ssh_private_key = Some(
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?,
        );
    }
    let tls = if a.insecure {
        TlsChoice::Insecure
    } else if a.fingerprint.is_some() {
        TlsChoice::Fingerprint
    } else if a.ca_file.is_some() {
        TlsChoice::Ca
    } else {
        TlsChoice::System
    };
    let input = TargetInput {
        id: a.id.clone(),
        label: a.label.clone(),
        url: a.url.clone(),
        node: a.node.clone(),
        auth: Some(auth),
        token_id: a.token_id.clone(),
        username: a.username.clone(),
        tls,
        fingerprint: a.fingerprint.clone(),
        ca_file: a.ca_file.clone(),
        ssh_host: a.ssh_host.clone(),
        ssh_port: a.ssh_port,
        ssh_user: a.ssh_user.clone(),
        ssh_allow_unsafe: Some(a.ssh_allow_unsafe),
        allow_ssh_override: Some(a.allow_ssh_override),
        allow_host_level_config: Some(a.allow_host_level_config),
        iso_storage: a.iso_storage.clone(),
        ssh_qemu_config_dir: a.ssh_qemu_config_dir.clone(),
        ssh_iso_dir: a.ssh_iso_dir.clone(),
        activate: a.activate,
    };
    let out = control
        .save_target(input, secrets)
        .map_err(|e| e.to_string())?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    println!("added target {}", out.target.id);
    Ok(())
}

fn diagnostics(control: &Control, output: &Path) -> Result<(), String> {
    let out = control
        .create_diagnostics(output)
        .map_err(|e| e.to_string())?;
    println!("wrote {}", out.path);
    Ok(())
}

/// The ids of the running commands for `status` (`none` when idle); a
/// status file from before concurrent commands has only `current_command`.
fn running_ids(rt: &serde_json::Value) -> String {
    let ids: Vec<&str> = match rt["running_commands"].as_array() {
        Some(a) if !a.is_empty() => a.iter().filter_map(|c| c["id"].as_str()).collect(),
        _ => rt["current_command"]["id"].as_str().into_iter().collect(),
    };
    if ids.is_empty() {
        "none".into()
    } else {
        ids.join(", ")
    }
}
