//! Pure presentation logic (no Tauri): the window's views, tray texts and
//! icons per state, deep links, the About text. Unit-tested on its own.

use agent_core::control::supervisor::{AgentView, UiState};
use serde::{Deserialize, Serialize};

/// The three views of the main window (`section#view-<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    Pair,
    Targets,
    Status,
}

impl View {
    pub fn parse(s: &str) -> Option<View> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pair" | "pairing" => Some(View::Pair),
            "targets" | "target" => Some(View::Targets),
            "status" => Some(View::Status),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            View::Pair => "pair",
            View::Targets => "targets",
            View::Status => "status",
        }
    }
}

/// The app's version.
pub const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The botmox-protocol crate's version (read from its manifest at build time).
pub const PROTOCOL_VERSION: &str = env!("BOTMOX_PROTOCOL_VERSION");

/// What a `botmox://` link means for the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeepLink {
    /// `botmox://pair?bundle=…` or `?code=…`: the text to put in the
    /// pairing box (the whole link; `agent_core::pairing` parses it).
    Pair(String),
    /// `botmox://targets`, `botmox://status`.
    Show(View),
}

/// Interprets a `botmox://` link (`None`: not one of ours).
pub fn deep_link(url: &str) -> Option<DeepLink> {
    let u = url::Url::parse(url.trim()).ok()?;
    if u.scheme() != "botmox" {
        return None;
    }
    // botmox://pair?… has host "pair"; botmox:pair?… has path "pair"
    let what = u
        .host_str()
        .map(str::to_string)
        .unwrap_or_else(|| u.path().trim_matches('/').to_string());
    match what.as_str() {
        "pair" => Some(DeepLink::Pair(url.trim().to_string())),
        other => View::parse(other).map(DeepLink::Show),
    }
}

/// The window's view for an initial launch.
pub fn initial_view(show: Option<View>, paired: bool, deep_link: Option<&DeepLink>) -> View {
    match (show, deep_link) {
        (Some(v), _) => v,
        (None, Some(DeepLink::Pair(_))) => View::Pair,
        (None, Some(DeepLink::Show(v))) => *v,
        (None, None) if paired => View::Status,
        (None, None) => View::Pair,
    }
}

/// Whether the window starts visible (hidden in the tray when paired).
pub fn start_visible(show: Option<View>, paired: bool, deep_link: Option<&DeepLink>) -> bool {
    show.is_some() || deep_link.is_some() || !paired
}

/// The tray icon (PNG bytes) of a state; each one differs in colour and shape.
pub fn tray_icon(state: UiState) -> &'static [u8] {
    match state {
        UiState::NotPaired => include_bytes!("../icons/tray/not_paired.png"),
        UiState::Connecting => include_bytes!("../icons/tray/connecting.png"),
        UiState::Online => include_bytes!("../icons/tray/online.png"),
        UiState::Unreachable => include_bytes!("../icons/tray/unreachable.png"),
        UiState::Revoked => include_bytes!("../icons/tray/revoked.png"),
        UiState::Paused => include_bytes!("../icons/tray/paused.png"),
        UiState::Error => include_bytes!("../icons/tray/error.png"),
    }
}

/// `Bot-Mox Agent — Online — bm.example.com`.
pub fn tooltip(v: &AgentView) -> String {
    let mut t = format!("Bot-Mox Agent — {}", v.state.label());
    if v.managed_by_service {
        t.push_str(" (agent service)");
    }
    if let Some(h) = &v.server_host {
        t.push_str(" — ");
        t.push_str(h);
    }
    t
}

/// The disabled status line of the tray menu.
pub fn status_line(v: &AgentView) -> String {
    match &v.last_error {
        Some(e)
            if matches!(
                v.state,
                UiState::Error | UiState::Revoked | UiState::Unreachable
            ) =>
        {
            format!("Status: {} ({})", v.state_label, e.code)
        }
        _ => format!("Status: {}", v.state_label),
    }
}

/// The disabled agent line of the tray menu.
pub fn agent_line(v: &AgentView) -> String {
    match (&v.agent_name, &v.server_host) {
        (Some(n), Some(h)) => format!("Agent: {n} @ {h}"),
        (None, Some(h)) => format!("Agent: {} @ {h}", v.agent_id.as_deref().unwrap_or("?")),
        _ => "Agent: not paired".into(),
    }
}

/// Label and enabled flag of the Pause/Resume item.
pub fn pause_item(v: &AgentView) -> (&'static str, bool) {
    if v.state == UiState::Paused || v.paused {
        ("Resume", v.can_resume)
    } else {
        ("Pause", v.can_pause)
    }
}

/// Versions for About.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct About {
    pub app: &'static str,
    pub agent_core: &'static str,
    pub protocol: &'static str,
}

pub fn about() -> About {
    About {
        app: APP_VERSION,
        agent_core: agent_core::VERSION,
        protocol: PROTOCOL_VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::control::supervisor::Mode;

    fn view(state: UiState) -> AgentView {
        AgentView {
            state,
            state_label: state.label().into(),
            mode: Mode::InProcess,
            managed_by_service: false,
            paused: state == UiState::Paused,
            can_pause: state == UiState::Online,
            can_resume: state == UiState::Paused,
            server_url: Some("https://bm.example:8443".into()),
            server_host: Some("bm.example".into()),
            agent_id: Some("a1".into()),
            agent_name: Some("desk-1".into()),
            last_heartbeat_at: None,
            current_command: None,
            running_commands: vec![],
            recent_commands: vec![],
            last_error: None,
            next_retry_at: None,
            notice: None,
        }
    }

    #[test]
    fn deep_links_and_initial_view() {
        assert_eq!(
            deep_link("botmox://pair?bundle=eyJ2IjoxfQ"),
            Some(DeepLink::Pair("botmox://pair?bundle=eyJ2IjoxfQ".into()))
        );
        assert_eq!(
            deep_link("botmox://targets"),
            Some(DeepLink::Show(View::Targets))
        );
        assert_eq!(deep_link("https://x/pair"), None);
        assert_eq!(deep_link("botmox://nope"), None);
        let dl = deep_link("botmox://pair?code=abcd").unwrap();
        assert_eq!(initial_view(None, true, Some(&dl)), View::Pair);
        assert_eq!(initial_view(None, true, None), View::Status);
        assert_eq!(initial_view(None, false, None), View::Pair);
        assert_eq!(
            initial_view(Some(View::Targets), false, None),
            View::Targets
        );
        assert!(!start_visible(None, true, None));
        assert!(start_visible(None, false, None));
        assert!(start_visible(Some(View::Status), true, None));
    }

    #[test]
    fn tray_texts_and_icons() {
        let v = view(UiState::Online);
        assert_eq!(tooltip(&v), "Bot-Mox Agent — Online — bm.example");
        assert_eq!(agent_line(&v), "Agent: desk-1 @ bm.example");
        assert_eq!(pause_item(&v), ("Pause", true));
        assert_eq!(pause_item(&view(UiState::Paused)), ("Resume", true));
        let mut icons: Vec<&[u8]> = UiState::ALL.iter().map(|s| tray_icon(*s)).collect();
        icons.sort();
        icons.dedup();
        assert_eq!(icons.len(), 7, "one distinct icon per state");
        assert!(icons.iter().all(|i| i.starts_with(b"\x89PNG")));
        assert!(!about().protocol.is_empty());
    }
}
