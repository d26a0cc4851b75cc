//! Bot-Mox Agent tray app (Tauri v2): a thin desktop shell over
//! `agent_core`. The agent runtime runs in this process through
//! `agent_core::control::supervisor` (or, when the headless service owns
//! the config dir, its status is mirrored); every action goes through the
//! `agent_core::control` facade, the same one `botmox-agent` uses.
//!
//! - [`args`]: command line (`--version`, `--show VIEW`, `botmox://` links);
//! - [`view`]: presentation logic without Tauri (tray texts/icons, links);
//! - [`commands`]: the IPC commands of the page in `ui/`;
//! - [`app`]: plugins, window, supervisor task; [`tray`]: the tray menu.
//!
//! Design and IPC list: `docs/agent-tauri.md`.

pub mod app;
pub mod args;
pub mod commands;
pub mod tray;
pub mod view;

use std::process::ExitCode;

/// `main` of `botmox-agent-tray`. `--version`/`--help` need no display.
pub fn main_entry() -> ExitCode {
    let args = args::parse(std::env::args().skip(1));
    // a closed stdout (`| head`) is not an error worth a panic
    let print = |text: String| {
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), "{text}");
    };
    if args.version {
        print(format!("botmox-agent-tray {}", view::APP_VERSION));
        return ExitCode::SUCCESS;
    }
    if args.help {
        print(args::USAGE.to_string());
        return ExitCode::SUCCESS;
    }
    app::run(args)
}
