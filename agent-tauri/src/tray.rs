//! The tray icon and its menu. The icon, tooltip and the status/agent/
//! pause items follow the supervisor's view; texts come from [`crate::view`].

use std::sync::Arc;

use agent_core::control::supervisor::AgentView;
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt as _;

use crate::app;
use crate::commands::AppState;
use crate::view::{self, View};

pub const TRAY_ID: &str = "botmox-agent";

/// The items that change with the view.
pub struct Tray<R: Runtime> {
    pub icon: TrayIcon<R>,
    status: MenuItem<R>,
    agent: MenuItem<R>,
    pause: MenuItem<R>,
}

impl<R: Runtime> Tray<R> {
    /// Applies a view: icon, tooltip, status/agent lines, Pause/Resume.
    pub fn update(&self, v: &AgentView) {
        if let Ok(img) = Image::from_bytes(view::tray_icon(v.state)) {
            let _ = self.icon.set_icon(Some(img));
        }
        let _ = self.icon.set_tooltip(Some(view::tooltip(v)));
        let _ = self.status.set_text(view::status_line(v));
        let _ = self.agent.set_text(view::agent_line(v));
        let (label, enabled) = view::pause_item(v);
        let _ = self.pause.set_text(label);
        let _ = self.pause.set_enabled(enabled);
    }
}

/// Builds the tray for the current view.
pub fn build<R: Runtime>(app: &AppHandle<R>, v: &AgentView) -> tauri::Result<Tray<R>> {
    let status = MenuItem::with_id(
        app,
        "status-line",
        view::status_line(v),
        false,
        None::<&str>,
    )?;
    let agent = MenuItem::with_id(app, "agent-line", view::agent_line(v), false, None::<&str>)?;
    let (pause_label, pause_enabled) = view::pause_item(v);
    let pair = MenuItem::with_id(app, "pair", "Pair…", true, None::<&str>)?;
    let pause = MenuItem::with_id(app, "pause", pause_label, pause_enabled, None::<&str>)?;
    let targets = MenuItem::with_id(app, "targets", "Proxmox targets…", true, None::<&str>)?;
    let status_view = MenuItem::with_id(app, "status", "Status…", true, None::<&str>)?;
    let logs = MenuItem::with_id(app, "logs", "Open logs", true, None::<&str>)?;
    let diag = MenuItem::with_id(
        app,
        "diagnostics",
        "Create diagnostic bundle",
        true,
        None::<&str>,
    )?;
    let autostart_on = app.autolaunch().is_enabled().unwrap_or(false);
    let autostart = CheckMenuItem::with_id(
        app,
        "autostart",
        "Start at login",
        true,
        autostart_on,
        None::<&str>,
    )?;
    let about = MenuItem::with_id(app, "about", "About Bot-Mox Agent", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &status,
            &agent,
            &PredefinedMenuItem::separator(app)?,
            &pair,
            &pause,
            &targets,
            &status_view,
            &PredefinedMenuItem::separator(app)?,
            &logs,
            &diag,
            &autostart,
            &about,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let autostart_item = autostart.clone();
    let icon = TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(view::tray_icon(v.state))?)
        .tooltip(view::tooltip(v))
        .menu(&menu)
        // Windows/macOS: left click opens the window, right click the menu
        // (Linux app indicators always show the menu).
        .show_menu_on_left_click(false)
        .on_menu_event(move |app, event| on_menu(app, &event, &autostart_item))
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                let app = tray.app_handle();
                let v = app
                    .try_state::<Arc<AppState>>()
                    .map(|s| s.view())
                    .unwrap_or(View::Status);
                app::show_view(app, v);
            }
        })
        .build(app)?;
    Ok(Tray {
        icon,
        status,
        agent,
        pause,
    })
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, event: &MenuEvent, autostart: &CheckMenuItem<R>) {
    let Some(state) = app.try_state::<Arc<AppState>>().map(|s| s.inner().clone()) else {
        return;
    };
    match event.id().as_ref() {
        "pair" => app::show_view(app, View::Pair),
        "targets" => app::show_view(app, View::Targets),
        "status" => app::show_view(app, View::Status),
        "pause" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let v = state.supervisor.view();
                let r = if v.paused || v.can_resume {
                    state.supervisor.resume().await
                } else {
                    state.supervisor.pause().await
                };
                if let Err(e) = r {
                    app::notify(&app, &state, format!("{}: {}", e.code, e.message));
                }
            });
        }
        "logs" => {
            if let Err(e) = state.open_logs() {
                app::notify(app, &state, e.message);
                app::show_view(app, View::Status);
            }
        }
        "diagnostics" => {
            let msg = match state.create_diagnostics() {
                Ok(out) => format!("Diagnostic bundle saved to {}", out.path),
                Err(e) => format!("Could not create the diagnostic bundle: {}", e.message),
            };
            app::notify(app, &state, msg);
            app::show_view(app, View::Status);
        }
        "autostart" => {
            let want = autostart.is_checked().unwrap_or(false);
            let r = if want {
                app.autolaunch().enable()
            } else {
                app.autolaunch().disable()
            };
            if let Err(e) = r {
                let _ = autostart.set_checked(!want);
                app::notify(app, &state, format!("Could not change Start at login: {e}"));
                app::show_view(app, View::Status);
            }
        }
        "about" => {
            app::show_view(app, View::Status);
            app::emit(app, "about", view::about());
        }
        "quit" => app::quit(app, &state),
        _ => {}
    }
}
