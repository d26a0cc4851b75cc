//! `pve-sim --listen 127.0.0.1:PORT [--data-dir DIR]`: prints one JSON line
//! with URL, fingerprint and credentials, then serves until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pve_sim::{PveSim, SimConfig};

#[derive(Debug, Parser)]
#[command(
    name = "pve-sim",
    version,
    about = "Proxmox VE API simulator (schema-checked, HTTPS)"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8006")]
    listen: SocketAddr,
    /// Directory for storage files (`DIR/<storage>/iso/<name>`); a temp dir if omitted.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Node name.
    #[arg(long, default_value = "pve")]
    node: String,
    /// How long each task runs, in milliseconds.
    #[arg(long, default_value_t = 300)]
    task_duration_ms: u64,
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PVE_SIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    if let Some(dir) = &args.data_dir {
        std::fs::create_dir_all(dir)?;
    }
    let sim = PveSim::start_with(SimConfig {
        listen: args.listen,
        data_dir: args.data_dir,
        node: args.node,
        task_duration: Duration::from_millis(args.task_duration_ms),
    })
    .await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&sim.start_line())?)?;
    out.flush()?;
    drop(out);
    wait_for_signal().await?;
    sim.shutdown().await;
    Ok(())
}
