//! Running the agent as an operating-system service.
//!
//! - Linux: systemd runs `botmox-agent run` (unit in `installer/systemd/`);
//!   nothing here is needed.
//! - Windows: the Service Control Manager (SCM) starts
//!   `botmox-agent.exe --config-dir DIR --secret-store S service run`, which
//!   hands the process to the SCM dispatcher ([`windows`] module, compiled
//!   only for Windows). `service install` registers the service (automatic
//!   start, LocalSystem, restart on crash), `service uninstall` stops and
//!   removes it.
//!
//! The argument list the SCM launches with is built here, on every platform,
//! so it is unit-tested on Linux; the SCM calls themselves are Windows-only
//! and have only been type-checked (`cargo check --target
//! x86_64-pc-windows-gnu`), never run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::secrets::SecretBackend;

/// The service's key name in the SCM.
pub const SERVICE_NAME: &str = "BotMoxAgent";
/// The name shown in `services.msc`.
pub const SERVICE_DISPLAY_NAME: &str = "Bot-Mox Agent";
pub const SERVICE_DESCRIPTION: &str =
    "Runs Bot-Mox commands against this network's Proxmox VE hosts for the Bot-Mox control server.";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("Windows service mode is only available on Windows; on Linux install the systemd unit installer/systemd/botmox-agent.service and run `botmox-agent run`")]
    Unsupported,
    #[error("the service must be started by the Windows Service Control Manager, not from a console (use `botmox-agent service install`, then `sc start {SERVICE_NAME}`)")]
    NotStartedBySCM,
    #[error("Windows service call failed: {0}")]
    Windows(String),
    #[error("the agent could not be started as a service: {0}")]
    Start(String),
}

/// The arguments the SCM passes to `botmox-agent.exe` when it starts the
/// service. The config dir and secret store are fixed at install time so
/// the service never depends on the (LocalSystem) account's profile paths.
pub fn launch_arguments(
    config_dir: &Path,
    backend: SecretBackend,
    shutdown_grace_secs: u64,
) -> Vec<OsString> {
    use clap::ValueEnum;
    let backend = backend
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_else(|| "keyring".to_string());
    vec![
        "--config-dir".into(),
        config_dir.as_os_str().to_owned(),
        "--secret-store".into(),
        backend.into(),
        "service".into(),
        "run".into(),
        "--shutdown-grace-secs".into(),
        shutdown_grace_secs.to_string().into(),
    ]
}

/// Where the Windows service keeps its config when `service install` gets
/// no `--config-dir`: `%ProgramData%\BotMox\Agent` (`C:\ProgramData` when the
/// variable is unset). Pass `std::env::var_os("ProgramData")`.
pub fn default_service_config_dir(program_data: Option<OsString>) -> PathBuf {
    PathBuf::from(program_data.unwrap_or_else(|| r"C:\ProgramData".into()))
        .join("BotMox")
        .join("Agent")
}

#[cfg(windows)]
pub mod windows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_arguments_pin_config_dir_and_store() {
        let args = launch_arguments(
            Path::new(r"C:\ProgramData\BotMox\Agent"),
            SecretBackend::File,
            20,
        );
        let args: Vec<String> = args
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect();
        assert_eq!(
            args,
            [
                "--config-dir",
                r"C:\ProgramData\BotMox\Agent",
                "--secret-store",
                "file",
                "service",
                "run",
                "--shutdown-grace-secs",
                "20"
            ]
        );
    }

    #[test]
    fn service_config_dir_lives_under_program_data() {
        let dir = default_service_config_dir(Some("/pd".into()));
        assert_eq!(dir, Path::new("/pd").join("BotMox").join("Agent"));
        let fallback = default_service_config_dir(None);
        assert!(fallback.starts_with(r"C:\ProgramData"), "{fallback:?}");
        assert!(fallback.ends_with(Path::new("BotMox").join("Agent")));
    }

    #[test]
    fn launch_arguments_keep_paths_with_spaces_as_one_argument() {
        let args = launch_arguments(
            Path::new(r"C:\Program Data\Bot Mox"),
            SecretBackend::Keyring,
            5,
        );
        assert_eq!(args[1], OsString::from(r"C:\Program Data\Bot Mox"));
        assert_eq!(args[3], OsString::from("keyring"));
    }
}
