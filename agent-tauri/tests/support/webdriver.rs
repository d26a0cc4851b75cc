//! WebKitWebDriver for the tray app, over the shared W3C WebDriver client
//! (`botmox_webdriver`, the workspace's dev-only crate in `webdriver/`).
//!
//! Why WebKitWebDriver directly and not tauri-driver: on Linux tauri-driver
//! is only a proxy that starts WebKitWebDriver and rewrites
//! `tauri:options.application` into `webkitgtk:browserOptions.binary`
//! (and sets TAURI_WEBVIEW_AUTOMATION=true). Doing that here removes a
//! `cargo install` (minutes on 2 cores) and one process from the chain; the
//! protocol the test speaks is the same. The app is the "browser": the
//! driver launches it with our args and connects through WebKit's
//! automation (WEBKIT_INSPECTOR_SERVER) once wry allows automation, which it
//! does when TAURI_WEBVIEW_AUTOMATION=true is in the environment.

use std::path::Path;

use serde_json::json;

pub use botmox_webdriver::{Driver, Session};

/// Starts WebKitWebDriver on a free loopback port with `env` (inherited by
/// the app it launches); waits until /status answers.
pub async fn start_driver(env: &[(String, String)], log: &Path) -> Driver {
    Driver::start("WebKitWebDriver", &["--host=127.0.0.1".into()], env, log).await
}

/// New session whose "browser" is `binary args...`.
pub async fn app_session(driver: &Driver, binary: &Path, args: &[&str]) -> Session {
    Session::new(
        &driver.url,
        json!({
            "webkitgtk:browserOptions": {
                "binary": binary.to_string_lossy(),
                "args": args,
            }
        }),
    )
    .await
}
