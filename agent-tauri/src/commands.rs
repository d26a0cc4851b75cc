//! The IPC commands the web view calls (`window.__TAURI__.core.invoke`).
//! Each one is a thin call into `agent_core::control` (or the supervisor);
//! none returns a stored secret: targets carry `"saved"` flags only.
//!
//! Errors reach the page as `{code, message}` ([`ControlError`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agent_core::control::supervisor::{AgentView, Supervisor};
use agent_core::control::{
    Control, ControlError, DiagnosticsOutcome, ErrorCode, PairOutcome, PairingPreview,
    SaveTargetOutcome, StatusReport, TargetInput, TargetSecretsInput, TargetTestResult, TargetView,
};
use serde::Serialize;
use tauri::State;

use crate::view::{self, About, View};

/// Shared by every command; `manage`d by the app.
pub struct AppState {
    pub control: Control,
    pub supervisor: Supervisor,
    /// Where diagnostic bundles go (Downloads, else home).
    pub diagnostics_dir: PathBuf,
    ui: Mutex<UiMemo>,
}

/// What the page asks for when it (re)loads.
#[derive(Debug, Default)]
struct UiMemo {
    view: Option<View>,
    /// A pairing input from a deep link, until the page takes it.
    pending_pair_input: Option<String>,
    /// The last "where was it saved" message.
    notice: Option<String>,
}

impl AppState {
    pub fn new(control: Control, supervisor: Supervisor, diagnostics_dir: PathBuf) -> Arc<Self> {
        Arc::new(AppState {
            control,
            supervisor,
            diagnostics_dir,
            ui: Mutex::new(UiMemo::default()),
        })
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, UiMemo> {
        self.ui.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_view(&self, v: View) {
        self.memo().view = Some(v);
    }

    pub fn view(&self) -> View {
        self.memo().view.unwrap_or(View::Status)
    }

    pub fn set_pending_pair_input(&self, input: String) {
        self.memo().pending_pair_input = Some(input);
    }

    pub fn set_notice(&self, notice: Option<String>) {
        self.memo().notice = notice;
    }

    /// Writes a diagnostics bundle into [`AppState::diagnostics_dir`].
    pub fn create_diagnostics(&self) -> Result<DiagnosticsOutcome, ControlError> {
        let path = self.diagnostics_dir.join(Control::diagnostics_file_name());
        let out = self.control.create_diagnostics(&path)?;
        self.set_notice(Some(format!("Diagnostic bundle saved to {}", out.path)));
        Ok(out)
    }

    /// Opens the log folder in the file manager.
    pub fn open_logs(&self) -> Result<String, ControlError> {
        let dir = self.control.log_dir().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| {
            ControlError::new(
                ErrorCode::IoError,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        tauri_plugin_opener::open_path(&dir, None::<&str>).map_err(|e| {
            ControlError::new(
                ErrorCode::IoError,
                format!("cannot open {}: {e}", dir.display()),
            )
        })?;
        Ok(dir.display().to_string())
    }
}

pub type AppStateRef<'a> = State<'a, Arc<AppState>>;

/// Versions, paths and what the page should show first.
#[derive(Debug, Clone, Serialize)]
pub struct AppInfo {
    pub about: About,
    pub config_dir: String,
    pub log_dir: String,
    pub secret_store: &'static str,
    pub diagnostics_dir: String,
    /// The view to show (`pair`, `targets`, `status`).
    pub view: View,
    /// A pairing input from a deep link (handed out once).
    pub pending_pair_input: Option<String>,
    pub notice: Option<String>,
    pub agent: AgentView,
}

#[tauri::command]
pub fn app_info(state: AppStateRef<'_>) -> AppInfo {
    let (view, pending, notice) = {
        let mut m = state.memo();
        (
            m.view.unwrap_or(View::Status),
            m.pending_pair_input.take(),
            m.notice.clone(),
        )
    };
    AppInfo {
        about: view::about(),
        config_dir: state.control.config_dir().display().to_string(),
        log_dir: state.control.log_dir().display().to_string(),
        secret_store: state.control.backend().as_str(),
        diagnostics_dir: state.diagnostics_dir.display().to_string(),
        view,
        pending_pair_input: pending,
        notice,
        agent: state.supervisor.view(),
    }
}

/// The page switched views (kept so a reload or a tray click agrees).
#[tauri::command]
pub fn set_view(state: AppStateRef<'_>, view: View) {
    state.set_view(view);
}

#[tauri::command]
pub fn get_view(state: AppStateRef<'_>) -> AgentView {
    state.supervisor.view()
}

/// The status view's data: the live agent view plus config and targets.
#[derive(Debug, Clone, Serialize)]
pub struct StatusPayload {
    pub agent: AgentView,
    pub report: StatusReport,
}

#[tauri::command]
pub fn status(state: AppStateRef<'_>) -> Result<StatusPayload, ControlError> {
    Ok(StatusPayload {
        agent: state.supervisor.view(),
        report: state.control.status()?,
    })
}

#[tauri::command]
pub fn preview_pairing(
    state: AppStateRef<'_>,
    input: String,
    server_url: Option<String>,
    allow_insecure_http: Option<bool>,
) -> Result<PairingPreview, ControlError> {
    state.control.preview_pairing(
        &input,
        server_url.as_deref(),
        allow_insecure_http.unwrap_or(false),
    )
}

/// Pairs, then (re)starts the agent with the new identity.
#[tauri::command]
pub async fn pair(
    state: AppStateRef<'_>,
    input: String,
    server_url: Option<String>,
    allow_insecure_http: Option<bool>,
) -> Result<PairOutcome, ControlError> {
    let out = state
        .control
        .pair(
            &input,
            server_url.as_deref(),
            allow_insecure_http.unwrap_or(false),
        )
        .await?;
    state.supervisor.paired();
    state.set_view(View::Status);
    Ok(out)
}

#[tauri::command]
pub fn list_targets(state: AppStateRef<'_>) -> Result<Vec<TargetView>, ControlError> {
    state.control.list_targets()
}

/// Adds or edits a target; secrets are written to the secret store and
/// never sent back. The agent picks the change up (restart when idle).
#[tauri::command]
pub fn save_target(
    state: AppStateRef<'_>,
    target: TargetInput,
    secrets: Option<TargetSecretsInput>,
) -> Result<SaveTargetOutcome, ControlError> {
    let out = state
        .control
        .save_target(target, secrets.unwrap_or_default())?;
    state.supervisor.reload();
    Ok(out)
}

#[tauri::command]
pub fn remove_target(state: AppStateRef<'_>, id: String) -> Result<(), ControlError> {
    state.control.remove_target(&id)?;
    state.supervisor.reload();
    Ok(())
}

#[tauri::command]
pub async fn test_target(
    state: AppStateRef<'_>,
    id: String,
) -> Result<TargetTestResult, ControlError> {
    state.control.test_target(&id).await
}

#[tauri::command]
pub async fn pause(state: AppStateRef<'_>) -> Result<AgentView, ControlError> {
    state.supervisor.pause().await
}

#[tauri::command]
pub async fn resume(state: AppStateRef<'_>) -> Result<AgentView, ControlError> {
    state.supervisor.resume().await
}

#[tauri::command]
pub fn create_diagnostics(state: AppStateRef<'_>) -> Result<DiagnosticsOutcome, ControlError> {
    state.create_diagnostics()
}

#[tauri::command]
pub fn open_logs(state: AppStateRef<'_>) -> Result<String, ControlError> {
    state.open_logs()
}
