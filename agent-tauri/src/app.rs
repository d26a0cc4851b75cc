//! Wiring: plugins, IPC handlers, the supervisor task, the window and the
//! tray. [`configure`] and [`start`] are shared by the real app and the
//! headless tests (`tauri::test::mock_builder`); [`run`] adds the
//! desktop-only parts.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use agent_core::control::supervisor::{Supervisor, SupervisorOptions};
use agent_core::control::Control;
use serde::Serialize;
use tauri::{AppHandle, Builder, Emitter, Manager, RunEvent, Runtime, WindowEvent};

use crate::args::Args;
use crate::commands::{self, AppState};
use crate::tray::{self, Tray};
use crate::view::{self, DeepLink, View};

pub const MAIN_WINDOW: &str = "main";

/// The supervisor's task, spawned once the app runs.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Emits an event to the page (errors only logged: the page may not be
/// loaded yet; it asks `app_info` when it loads).
pub fn emit<R: Runtime, S: Serialize + Clone>(app: &AppHandle<R>, event: &str, payload: S) {
    if let Err(e) = app.emit(event, payload) {
        tracing::debug!(event, error = %e, "cannot emit to the window");
    }
}

#[derive(Clone, Serialize)]
struct Navigate {
    view: View,
}

#[derive(Clone, Serialize)]
struct Notice {
    message: String,
}

#[derive(Clone, Serialize)]
struct PairInput {
    input: String,
}

/// Shows the window on `view` and brings it to the front.
pub fn show_view<R: Runtime>(app: &AppHandle<R>, v: View) {
    if let Some(state) = app.try_state::<Arc<AppState>>() {
        state.set_view(v);
    }
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
    emit(app, "navigate", Navigate { view: v });
}

/// A message for the status view (`#status-notice`).
pub fn notify<R: Runtime>(app: &AppHandle<R>, state: &AppState, message: String) {
    state.set_notice(Some(message.clone()));
    emit(app, "notice", Notice { message });
}

/// Handles a `botmox://` link: pairing links open the pairing view with
/// the input filled in. Never touches the running agent.
pub fn handle_deep_link<R: Runtime>(app: &AppHandle<R>, url: &str) {
    match view::deep_link(url) {
        Some(DeepLink::Pair(input)) => {
            if let Some(state) = app.try_state::<Arc<AppState>>() {
                state.set_pending_pair_input(input.clone());
            }
            show_view(app, View::Pair);
            emit(app, "pair-input", PairInput { input });
        }
        Some(DeepLink::Show(v)) => show_view(app, v),
        None => {
            tracing::warn!(url = %agent_core::redact::redact_text(url), "ignoring an unknown link")
        }
    }
}

/// Stops the agent gracefully, then exits.
pub fn quit<R: Runtime>(app: &AppHandle<R>, state: &Arc<AppState>) {
    let app = app.clone();
    let state = state.clone();
    if let Some(t) = app.tray_by_id(tray::TRAY_ID) {
        let _ = t.set_tooltip(Some("Bot-Mox Agent — stopping…"));
    }
    tauri::async_runtime::spawn(async move {
        state.supervisor.shutdown().await;
        tracing::info!(event_name = "agent.tray.quit", "quit from the tray");
        app.exit(0);
    });
}

/// The parts shared with the tests: managed state and the IPC handlers.
pub fn configure<R: Runtime>(builder: Builder<R>, state: Arc<AppState>) -> Builder<R> {
    builder
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::set_view,
            commands::get_view,
            commands::status,
            commands::preview_pairing,
            commands::pair,
            commands::list_targets,
            commands::save_target,
            commands::remove_target,
            commands::test_target,
            commands::pause,
            commands::resume,
            commands::create_diagnostics,
            commands::open_logs,
        ])
}

/// Starts the supervisor task and forwards every view change to the page
/// (`agent-view`) and the tray. The real app calls it from its setup hook;
/// the headless tests call it right after building the app (the mock
/// runtime never runs the setup hook, which needs the event loop).
pub fn start<R: Runtime>(app: &AppHandle<R>, state: &AppState, task: Task) {
    tauri::async_runtime::spawn(task);
    let handle = app.clone();
    let mut rx = state.supervisor.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let v = rx.borrow_and_update().clone();
            if let Some(t) = handle.try_state::<Tray<R>>() {
                t.update(&v);
            }
            emit(&handle, "agent-view", v);
            if rx.changed().await.is_err() {
                break;
            }
        }
    });
}

/// Downloads, else home, else the config dir.
fn diagnostics_dir(control: &Control) -> std::path::PathBuf {
    dirs::download_dir()
        .or_else(dirs::home_dir)
        .unwrap_or_else(|| control.config_dir().to_path_buf())
}

/// Runs the desktop app until Quit.
pub fn run(args: Args) -> ExitCode {
    let control = match Control::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _log = match agent_core::logging::init(control.log_dir(), "info") {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("warning: file logging disabled: {e}");
            None
        }
    };
    for a in &args.ignored {
        tracing::warn!(arg = %a, "ignoring an unknown argument");
    }
    if let Some(b) = &args.bad_show {
        tracing::warn!(value = %b, "--show expects pair, targets or status");
    }
    let paired = control
        .load_config()
        .ok()
        .and_then(|c| c.server)
        .is_some_and(|s| s.agent_id.is_some());
    let (supervisor, task) = Supervisor::new(control.clone(), SupervisorOptions::default());
    let state = AppState::new(control.clone(), supervisor, diagnostics_dir(&control));
    let link = args.deep_link.as_deref().and_then(view::deep_link);
    state.set_view(view::initial_view(args.show, paired, link.as_ref()));
    if let Some(DeepLink::Pair(input)) = &link {
        state.set_pending_pair_input(input.clone());
    }
    let visible = view::start_visible(args.show, paired, link.as_ref());

    let builder = Builder::default()
        // first: a second launch hands over its arguments and exits; it
        // only shows the window (and forwards a deep link), never touching
        // the running agent
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            let a = crate::args::parse(argv.into_iter().skip(1));
            if a.deep_link.is_some() {
                // handled by the deep-link plugin's on_open_url
                return;
            }
            let v = a.show.unwrap_or_else(|| {
                app.try_state::<Arc<AppState>>()
                    .map(|s| s.view())
                    .unwrap_or(View::Status)
            });
            show_view(app, v);
        }))
        .plugin(tauri_plugin_deep_link::init())
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec!["--autostart"]),
        ))
        .plugin(tauri_plugin_opener::init())
        .on_window_event(|window, event| {
            // closing the window hides it; the app lives in the tray (without
            // a tray icon, closing it quits, gracefully)
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.label() == MAIN_WINDOW {
                    api.prevent_close();
                    let app = window.app_handle();
                    if app.try_state::<Tray<tauri::Wry>>().is_some() {
                        let _ = window.hide();
                    } else if let Some(state) = app.try_state::<Arc<AppState>>() {
                        quit(app, &state);
                    }
                }
            }
        });
    let desktop_state = state.clone();
    let task: Task = Box::pin(task);
    let builder = configure(builder, state).setup(move |app| {
        start(app.handle(), &desktop_state, task);
        desktop_setup(app.handle(), &desktop_state, visible);
        Ok(())
    });
    let app = match builder.build(tauri::generate_context!()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the app");
            eprintln!("error: cannot start the Bot-Mox Agent app: {e}");
            return ExitCode::FAILURE;
        }
    };
    app.run(|_app, event| {
        // the window only hides; keep running in the tray unless Quit
        if let RunEvent::ExitRequested { api, code, .. } = event {
            if code.is_none() {
                api.prevent_exit();
            }
        }
    });
    ExitCode::SUCCESS
}

/// Tray, deep links, first window state.
fn desktop_setup(app: &AppHandle, state: &Arc<AppState>, visible: bool) {
    use tauri_plugin_deep_link::DeepLinkExt;
    // dev runs (no installed .desktop file): register botmox:// for this binary
    #[cfg(all(target_os = "linux", debug_assertions))]
    if let Err(e) = app.deep_link().register_all() {
        tracing::warn!(error = %e, "cannot register the botmox:// link handler");
    }
    let handle = app.clone();
    app.deep_link().on_open_url(move |event| {
        for url in event.urls() {
            handle_deep_link(&handle, url.as_str());
        }
    });
    match tray::build(app, &state.supervisor.view()) {
        Ok(t) => {
            app.manage(t);
        }
        Err(e) => {
            // no tray (e.g. no StatusNotifier host): keep the window reachable
            tracing::error!(error = %e, "cannot create the tray icon");
            show_view(app, state.view());
        }
    }
    if visible {
        show_view(app, state.view());
    }
}
