//! Tauri's build step, plus the botmox-protocol version for About (the
//! protocol crate has no version constant of its own).

fn protocol_version() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let proto = read("../protocol/Cargo.toml");
    let workspace = read("../Cargo.toml");
    let version_in = |text: &str, section: &str| -> Option<String> {
        let mut in_section = false;
        for line in text.lines() {
            let l = line.trim();
            if l.starts_with('[') {
                in_section = l == section;
                continue;
            }
            if in_section {
                if let Some(v) = l.strip_prefix("version") {
                    let v = v.trim_start();
                    if let Some(v) = v.strip_prefix('=') {
                        return Some(v.trim().trim_matches('"').to_string());
                    }
                }
            }
        }
        None
    };
    match version_in(&proto, "[package]") {
        Some(v) if !v.contains("workspace") && !v.starts_with('{') && !v.is_empty() => v,
        _ => version_in(&workspace, "[workspace.package]").unwrap_or_else(|| "unknown".into()),
    }
}

fn main() {
    println!("cargo:rerun-if-changed=../protocol/Cargo.toml");
    println!("cargo:rerun-if-changed=../Cargo.toml");
    println!(
        "cargo:rustc-env=BOTMOX_PROTOCOL_VERSION={}",
        protocol_version()
    );
    tauri_build::build();
}
