//! Headless Chromium through `chromedriver` (Debian `chromium` and
//! `chromium-driver`), as the console's browser tests use it: find the
//! tools (or say why a test is skipped, and fail instead under `CI=true`),
//! start a session with a viewport of exactly width×height.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::{on_path, Driver, Session};

/// Where `scripts/setup-test-env.sh` puts axe-core (npm `axe-core`, pinned there).
pub const AXE_DEFAULT: &str = "/var/tmp/botmox-tools/axe-core/node_modules/axe-core/axe.min.js";

/// The browser and, for accessibility checks, axe-core's source.
pub struct Tools {
    pub chromium: String,
    /// `axe.min.js` (empty when the caller did not ask for it).
    pub axe: String,
}

/// `CI=true`: a missing tool is a failure, not a skip.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The browser tools, or None (after saying why) when `test` must skip.
/// `axe`: axe-core is needed too (`$BOTMOX_AXE_JS`, else [`AXE_DEFAULT`]).
/// Under `CI=true` a missing tool panics instead.
pub fn preflight(test: &str, axe: bool) -> Option<Tools> {
    let chromium = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .map(str::to_string)
        .or_else(|| on_path("chromium").then(|| "chromium".to_string()));
    let mut missing = Vec::new();
    if chromium.is_none() {
        missing.push("chromium".to_string());
    }
    if !on_path("chromedriver") {
        missing.push("chromedriver".to_string());
    }
    let axe_src = if axe {
        let path = std::env::var("BOTMOX_AXE_JS").unwrap_or_else(|_| AXE_DEFAULT.to_string());
        let src = std::fs::read_to_string(&path).ok();
        if src.is_none() {
            missing.push(format!("axe-core ({path})"));
        }
        src
    } else {
        Some(String::new())
    };
    if missing.is_empty() {
        return Some(Tools {
            chromium: chromium.unwrap(),
            axe: axe_src.unwrap(),
        });
    }
    let msg = format!(
        "{test}: missing {} — run `sudo bash scripts/setup-test-env.sh`",
        missing.join(", ")
    );
    if ci() {
        panic!("{msg} (CI=true: the browser test must not be skipped)");
    }
    eprintln!("SKIPPED {msg} (set CI=true to make this a failure)");
    None
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `$BOTMOX_CONSOLE_ARTIFACTS/<sub>`, else `<cargo target dir>/console-artifacts/<sub>`
/// (the test binary is `<target>/<profile>/deps/<name>-<hash>`), created.
pub fn artifacts_dir(sub: &str) -> PathBuf {
    let base = match std::env::var_os("BOTMOX_CONSOLE_ARTIFACTS") {
        Some(d) => PathBuf::from(d),
        None => std::env::current_exe()
            .ok()
            .and_then(|p| Some(p.parent()?.parent()?.join("console-artifacts")))
            .unwrap_or_else(|| std::env::temp_dir().join("botmox-console-artifacts")),
    };
    let dir = base.join(sub);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running headless Chromium: the session, its chromedriver and profile
/// directory (both removed on drop).
pub struct Chromium {
    pub session: Session,
    pub driver: Driver,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts chromedriver (its log in `log_dir`) and a session whose
    /// viewport is exactly width×height, with the browser's console log on.
    pub async fn start(tools: &Tools, width: u32, height: u32, log_dir: &Path) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let driver =
            Driver::start("chromedriver", &[], &[], &log_dir.join("chromedriver.log")).await;
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--disable-extensions".into(),
            "--force-device-scale-factor=1".into(),
            "--lang=en-US".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if is_root() {
            // Chromium refuses to run its sandbox as root
            args.push("--no-sandbox".into());
        }
        let session = Session::new(
            &driver.url,
            json!({
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": tools.chromium, "args": args },
                "goog:loggingPrefs": { "browser": "ALL" },
                // servers under test use self-signed certificates
                "acceptInsecureCerts": true,
                "timeouts": { "script": 60_000, "pageLoad": 30_000, "implicit": 0 },
            }),
        )
        .await;
        let c = Chromium {
            session,
            driver,
            _profile: profile,
        };
        c.set_viewport(width, height).await;
        c
    }

    /// Sizes the window so that the viewport is exactly width×height.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let s = &self.session;
        s.set_window_size(width, height).await;
        let v = s
            .exec("return [window.innerWidth, window.innerHeight];", json!([]))
            .await;
        let (iw, ih) = (v[0].as_i64().unwrap(), v[1].as_i64().unwrap());
        let (w, h) = (width as i64, height as i64);
        if (iw, ih) != (w, h) {
            s.set_window_size((2 * w - iw) as u32, (2 * h - ih) as u32)
                .await;
        }
        let v = s
            .exec("return [window.innerWidth, window.innerHeight];", json!([]))
            .await;
        assert_eq!(v, json!([w, h]), "viewport");
    }
}
