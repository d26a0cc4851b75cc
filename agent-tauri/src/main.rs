// Keep a console window from opening next to the tray app on Windows.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    agent_tauri::main_entry()
}
