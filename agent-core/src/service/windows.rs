//! The Windows Service Control Manager side of service mode (windows-service
//! crate by Mullvad). Type-checked for `x86_64-pc-windows-gnu` in CI; never
//! run on Windows (see docs/agent.md).
//!
//! `define_windows_service!` expands to the `extern "system"` entry point the
//! SCM calls; that expansion contains one `unsafe` block (argument parsing
//! inside the crate's macro), hence the narrow `allow` below.

use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceAccess, ServiceAction, ServiceActionType, ServiceControl, ServiceControlAccept,
    ServiceErrorControl, ServiceExitCode, ServiceFailureActions, ServiceFailureResetPeriod,
    ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

use super::{ServiceError, SERVICE_DESCRIPTION, SERVICE_DISPLAY_NAME, SERVICE_NAME};
use crate::runtime::{self, RunOptions};

/// What `service run` hands to the SCM thread.
static RUN_OPTIONS: OnceLock<RunOptions> = OnceLock::new();

fn win(e: windows_service::Error) -> ServiceError {
    ServiceError::Windows(e.to_string())
}

/// Registers the service: automatic start as LocalSystem, restarted by the
/// SCM 10 s after a crash (twice, then every 60 s). A clean stop with a
/// service-specific exit code (revoked = 3, unauthorized = 4) is not a
/// crash, so a revoked agent stays stopped until it is paired again.
pub fn install(config_dir: &Path, launch_arguments: Vec<OsString>) -> Result<(), ServiceError> {
    restrict_to_system_and_admins(config_dir)?;
    let exe = std::env::current_exe().map_err(|e| ServiceError::Windows(e.to_string()))?;
    let manager = ServiceManager::local_computer(
        None::<&str>,
        ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE,
    )
    .map_err(win)?;
    let info = ServiceInfo {
        name: SERVICE_NAME.into(),
        display_name: SERVICE_DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .map_err(win)?;
    service.set_description(SERVICE_DESCRIPTION).map_err(win)?;
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(10), restart(10), restart(60)]),
        })
        .map_err(win)?;
    Ok(())
}

/// A 0600 mode means nothing on NTFS: the config dir (secrets file included)
/// gets an explicit ACL for SYSTEM (S-1-5-18) and Administrators
/// (S-1-5-32-544) only, inheritance removed, applied to existing files (/T).
/// SIDs instead of names, so it works on localised Windows.
fn restrict_to_system_and_admins(dir: &Path) -> Result<(), ServiceError> {
    let out = std::process::Command::new("icacls")
        .arg(dir)
        .args([
            "/inheritance:r",
            "/grant:r",
            "*S-1-5-18:(OI)(CI)F",
            "*S-1-5-32-544:(OI)(CI)F",
            "/T",
            "/Q",
        ])
        .output()
        .map_err(|e| ServiceError::Windows(format!("cannot run icacls: {e}")))?;
    if !out.status.success() {
        return Err(ServiceError::Windows(format!(
            "icacls could not restrict {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Stops the service if it runs (waiting up to 30 s) and deletes it.
pub fn uninstall() -> Result<(), ServiceError> {
    let manager =
        ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT).map_err(win)?;
    let service = manager
        .open_service(
            SERVICE_NAME,
            ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
        )
        .map_err(win)?;
    if service.query_status().map_err(win)?.current_state != ServiceState::Stopped {
        service.stop().map_err(win)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while service.query_status().map_err(win)?.current_state != ServiceState::Stopped {
            if std::time::Instant::now() > deadline {
                return Err(ServiceError::Windows(
                    "the service did not stop within 30 s; it was not deleted".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    service.delete().map_err(win)
}

/// Hands this process to the SCM and blocks until the service stops.
pub fn run(opts: RunOptions) -> Result<(), ServiceError> {
    if RUN_OPTIONS.set(opts).is_err() {
        return Err(ServiceError::Start("service mode started twice".into()));
    }
    entry::start_dispatcher().map_err(|e| match e {
        // ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: run from a console.
        windows_service::Error::Winapi(ref io) if io.raw_os_error() == Some(1063) => {
            ServiceError::NotStartedBySCM
        }
        other => win(other),
    })
}

#[allow(unsafe_code)]
mod entry {
    windows_service::define_windows_service!(ffi_service_main, service_main);

    fn service_main(_arguments: Vec<std::ffi::OsString>) {
        super::service_main();
    }

    pub(super) fn start_dispatcher() -> windows_service::Result<()> {
        windows_service::service_dispatcher::start(super::SERVICE_NAME, ffi_service_main)
    }
}

fn status(state: ServiceState, exit: ServiceExitCode, wait_hint: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: exit,
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

fn service_main() {
    let Some(opts) = RUN_OPTIONS.get().cloned() else {
        tracing::error!("service started without options");
        return;
    };
    let shutdown = CancellationToken::new();
    let on_stop = shutdown.clone();
    let handler = move |event| match event {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            tracing::info!(
                event_name = "agent.service.stop",
                "stop requested by the SCM"
            );
            on_stop.cancel();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let handle = match service_control_handler::register(SERVICE_NAME, handler) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the service control handler");
            return;
        }
    };
    let grace = opts.shutdown_grace + Duration::from_secs(5);
    let _ = handle.set_service_status(status(
        ServiceState::Running,
        ServiceExitCode::Win32(0),
        Duration::ZERO,
    ));
    let exit = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => match rt.block_on(async {
            // Tell the SCM how long the graceful stop may take, as soon as
            // it is asked for (a running command may finish first).
            let stopping = shutdown.clone();
            tokio::spawn(async move {
                stopping.cancelled().await;
                let _ = handle.set_service_status(status(
                    ServiceState::StopPending,
                    ServiceExitCode::Win32(0),
                    grace,
                ));
            });
            runtime::run(opts, shutdown).await
        }) {
            Ok(()) => ServiceExitCode::Win32(0),
            Err(e) => {
                tracing::error!(error = %e, "agent stopped");
                ServiceExitCode::ServiceSpecific(u32::from(e.exit_code()))
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            ServiceExitCode::ServiceSpecific(1)
        }
    };
    let _ = handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO));
}
