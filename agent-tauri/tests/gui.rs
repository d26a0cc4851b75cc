//! The tray app as a real GUI, end to end.
//!
//! Starts the REAL control-server (in process, HTTPS with a self-signed
//! certificate) and pve-sim, a private Xvfb display and D-Bus session bus,
//! and WebKitWebDriver with the real `botmox-agent-tray` binary as its
//! "browser" (see tests/support/webdriver.rs for why not tauri-driver).
//! Then, through the UI only:
//!
//! 1. an expired pairing code and a bundle whose certificate pin is wrong
//!    are rejected with their error codes in `#pair-error`;
//! 2. the real bundle is pasted into `#pair-input`, the preview shows the
//!    server and fingerprint, it is submitted, and the status view turns
//!    `online` (and the server agrees);
//! 3. the tray icon is exported on the session bus (StatusNotifierItem) and
//!    its menu (dbusmenu) says "Status: Online";
//! 4. the pve-sim target is added (token auth, fingerprint TLS) and its
//!    "Test" button reports "Proxmox OK";
//! 5. `proxmox.status` dispatched from the API succeeds and shows up in the
//!    status view's recent commands with that id and `succeeded`;
//! 6. Pause → `paused` (view and tray menu), Resume → `online` again;
//! 7. no stored secret (Proxmox token secret, agent token) is in the page
//!    source, the visible text, any form field or config.toml;
//! 8. server stopped → `unreachable`; server back → `online`; agent revoked
//!    from the API → `revoked`, and the tray icon and menu follow;
//! 9. "Create diagnostic bundle" writes a bundle into the (private) Downloads
//!    folder, without those secrets.
//!
//! Screenshots of each view are checked to be non-blank (decoded PNG,
//! distinct colours and luminance spread) and kept in the artifacts dir:
//! `$BOTMOX_GUI_ARTIFACTS`, else `<cargo target dir>/gui-artifacts/`. With
//! `BOTMOX_UPDATE_DOC_IMAGES=1` the good ones are also copied to
//! docs/images/ (for docs/user-guide.md).
//!
//! Without Xvfb/WebKitWebDriver the test is skipped with a message, except
//! under `CI=true`, where that is a failure. `scripts/gui-test-env.sh`
//! installs everything.

mod support;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::FutureExt;
use serde_json::{json, Value};

use support::display::{self, Display};
use support::server::{self, Server};
use support::shot;
use support::webdriver::{self as wd, Session};

const APP: &str = env!("CARGO_BIN_EXE_botmox-agent-tray");

/// Screenshots copied to docs/images/ with BOTMOX_UPDATE_DOC_IMAGES=1.
const DOC_IMAGES: &[&str] = &[
    "pairing.png",
    "pair-error-tls.png",
    "pair-error-expired.png",
    "target-form.png",
    "targets.png",
    "status.png",
    "status-paused.png",
    "diagnostics.png",
    "status-unreachable.png",
    "status-revoked.png",
];

fn artifacts_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BOTMOX_GUI_ARTIFACTS") {
        return PathBuf::from(d);
    }
    // APP is <target>/<profile>/botmox-agent-tray
    Path::new(APP)
        .parent()
        .and_then(Path::parent)
        .expect("binary inside the cargo target dir")
        .join("gui-artifacts")
}

struct Ctx {
    art: PathBuf,
    config_dir: PathBuf,
    downloads: PathBuf,
    sim: pve_sim::PveSim,
    server: Server,
    disp: Display,
    s: Session,
    agent_id: String,
    bundle: String,
    bad_pin_bundle: String,
    expired_bundle: String,
}

const T_START: Duration = Duration::from_secs(60);
const T_STEP: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gui_pair_target_command_and_states() {
    if !display::preflight("gui_pair_target_command_and_states") {
        return;
    }
    let t0 = Instant::now();
    let art = artifacts_dir();
    let logs = art.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    for f in std::fs::read_dir(&art).unwrap().flatten() {
        let p = f.path();
        if p.extension().is_some_and(|x| x == "png" || x == "html") {
            let _ = std::fs::remove_file(p);
        }
    }

    let tmp = tempfile::tempdir().unwrap();
    let config_dir = tmp.path().join("agent-config");
    let xdg = tmp.path().join("xdg");
    for d in ["config", "data", "cache", "runtime"] {
        std::fs::create_dir_all(xdg.join(d)).unwrap();
    }
    // HOME and the XDG Downloads dir (where diagnostic bundles go) are private
    let home = tmp.path().join("home");
    let downloads = home.join("Downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    std::fs::write(
        xdg.join("config/user-dirs.dirs"),
        format!("XDG_DOWNLOAD_DIR=\"{}\"\n", downloads.display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(xdg.join("runtime"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
    }

    let sim = server::sim().await;
    let server = Server::start("self-signed").await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let (agent_id, bundle, _code) = server.pairing("gui-e2e").await;
    let (_, other_bundle, _) = server.pairing("gui-bad-pin").await;
    let bad_pin_bundle = bundle_with(&other_bundle, "server_cert_sha256", &"0".repeat(64));
    let (expired_id, expired_bundle, _) = server.pairing("gui-expired").await;
    server.expire_pairing(&expired_id).await;

    let disp = Display::start(&logs);
    let mut env = disp.env();
    let p = |p: &Path| p.to_string_lossy().to_string();
    env.extend([
        ("TAURI_WEBVIEW_AUTOMATION".into(), "true".into()),
        ("BOTMOX_AGENT_CONFIG_DIR".into(), p(&config_dir)),
        ("BOTMOX_AGENT_SECRET_STORE".into(), "file".into()),
        ("HOME".into(), p(&home)),
        ("XDG_CONFIG_HOME".into(), p(&xdg.join("config"))),
        ("XDG_DATA_HOME".into(), p(&xdg.join("data"))),
        ("XDG_CACHE_HOME".into(), p(&xdg.join("cache"))),
        ("XDG_RUNTIME_DIR".into(), p(&xdg.join("runtime"))),
    ]);
    let driver = wd::start_driver(&env, &logs.join("webdriver-and-app.log")).await;
    eprintln!(
        "[{:>5.1}s] Xvfb {} + bus + WebKitWebDriver up",
        t0.elapsed().as_secs_f64(),
        disp.display
    );
    let s = wd::app_session(&driver, Path::new(APP), &["--show", "pair"]).await;
    eprintln!("[{:>5.1}s] app session started", t0.elapsed().as_secs_f64());

    let mut ctx = Ctx {
        art: art.clone(),
        config_dir: config_dir.clone(),
        downloads,
        sim,
        server,
        disp,
        s,
        agent_id,
        bundle,
        bad_pin_bundle,
        expired_bundle,
    };
    let outcome = AssertUnwindSafe(flow(&mut ctx, t0)).catch_unwind().await;
    if outcome.is_err() {
        // keep what the window showed when it failed
        if let Ok(png) = AssertUnwindSafe(ctx.s.screenshot()).catch_unwind().await {
            let _ = std::fs::write(art.join("failure.png"), png);
        }
        if let Ok(src) = AssertUnwindSafe(ctx.s.source()).catch_unwind().await {
            let _ = std::fs::write(art.join("failure.html"), src);
        }
        eprintln!(
            "artifacts (failure.png, failure.html, logs/) in {}",
            art.display()
        );
    }
    ctx.s.close().await;
    drop(driver);
    // the app is WebKitWebDriver's child; end any that survived, by pid
    for pid in display::pids_with_env("BOTMOX_AGENT_CONFIG_DIR", &p(&config_dir)) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    ctx.server.stop().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }

    if std::env::var("BOTMOX_UPDATE_DOC_IMAGES").is_ok_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::create_dir_all(&docs).unwrap();
        for name in DOC_IMAGES {
            std::fs::copy(art.join(name), docs.join(name)).unwrap();
        }
        eprintln!(
            "copied {} screenshots to {}",
            DOC_IMAGES.len(),
            docs.display()
        );
    }
    eprintln!(
        "[{:>5.1}s] done; screenshots in {}",
        t0.elapsed().as_secs_f64(),
        art.display()
    );
}

async fn flow(c: &mut Ctx, t0: Instant) {
    let step = |what: &str| eprintln!("[{:>5.1}s] {what}", t0.elapsed().as_secs_f64());
    let s = c.s.clone();

    // ---------------------------------------------------------------- pair
    s.wait_visible("#view-pair", T_START).await;
    assert_no_sideways_scroll(&s, "pair view").await;
    step("pair view shown");

    // an expired pairing code: the UI says so
    s.type_into("#pair-input", &c.expired_bundle).await;
    s.click_css("#pair-submit").await;
    let err = wait_text(&s, "#pair-error", T_STEP, |t| !t.trim().is_empty()).await;
    assert!(err.contains("PAIRING_EXPIRED"), "expired code: {err:?}");
    step(&format!("expired code rejected: {err:?}"));
    scroll_into_view(&s, "#pair-error").await;
    shot_checked(&s, &c.art, "pair-error-expired.png").await;

    // a bundle whose certificate pin does not match: the UI says so
    s.type_into("#pair-input", &c.bad_pin_bundle).await;
    s.click_css("#pair-submit").await;
    let err = wait_text(&s, "#pair-error", T_STEP, |t| {
        t.contains("TLS_PIN_MISMATCH")
    })
    .await;
    step(&format!("wrong pin rejected: {err:?}"));
    assert_ne!(
        s.attr("#status-connection", "data-state").await.as_deref(),
        Some("online"),
        "a bundle with a wrong pin must not pair"
    );
    scroll_into_view(&s, "#pair-error").await;
    shot_checked(&s, &c.art, "pair-error-tls.png").await;

    // the real bundle: preview first
    s.type_into("#pair-input", &c.bundle).await;
    s.click_css("#pair-preview").await;
    let host = c
        .server
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let shown = wait_text(&s, "#pair-preview-server", T_STEP, |t| t.contains(&host)).await;
    let fp = s.text_of("#pair-preview-fingerprint").await;
    assert!(!fp.trim().is_empty(), "the preview shows no fingerprint");
    step(&format!("preview: server {shown:?}, fingerprint {fp:?}"));
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "pairing.png").await;

    s.click_css("#pair-submit").await;
    s.wait_visible("#view-status", T_STEP).await;
    wait_attr(&s, "#status-connection", "data-state", "online", T_STEP).await;
    c.server.wait_online(&c.agent_id, T_STEP).await;
    let name = s.text_of("#status-agent-name").await;
    let srv = s.text_of("#status-server").await;
    assert!(srv.contains(&host), "#status-server {srv:?} lacks {host}");
    step(&format!("paired and online (agent {name:?})"));

    // ---------------------------------------------------------------- tray
    let deadline = Instant::now() + Duration::from_secs(10);
    let tray = loop {
        if let Some(t) = c.disp.find_tray() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no StatusNotifierItem on the session bus; names: {}",
            c.disp.bus_names()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let icon_online = c.disp.tray_property(&tray, "IconName");
    step(&format!(
        "tray exported on D-Bus: {} {} (IconName {icon_online:?})",
        tray.0, tray.1
    ));
    wait_tray_menu(&c.disp, &tray, "Status: Online").await;
    step("tray menu says \"Status: Online\"");

    // ------------------------------------------------------------- targets
    s.click_css("#nav-targets").await;
    s.wait_visible("#view-targets", T_STEP).await;
    s.wait_visible("form#target-form", T_STEP).await;
    assert_no_sideways_scroll(&s, "targets view").await;
    s.type_into("#target-id", "sim").await;
    s.type_into("#target-url", &c.sim.url()).await;
    s.type_into("#target-node", c.sim.node()).await;
    s.set_value("#target-auth", "token").await;
    s.type_into("#target-token-id", c.sim.token_id()).await;
    s.type_into("#target-token-secret", c.sim.token_secret())
        .await;
    s.set_value("#target-tls", "fingerprint").await;
    s.type_into("#target-fingerprint", &c.sim.fingerprint())
        .await;
    s.exec(
        "document.getElementById('target-form').scrollIntoView({block: 'start'}); return true;",
        json!([]),
    )
    .await;
    shot_checked(&s, &c.art, "target-form.png").await;
    s.click_css("#target-save").await;
    let li = "#targets-list > li[data-target-id=\"sim\"]";
    let deadline = Instant::now() + T_STEP;
    while s.find(li).await.is_none() {
        let e = s.text_of("#target-error").await;
        assert!(e.trim().is_empty(), "saving the target failed: {e}");
        assert!(Instant::now() < deadline, "target not listed after save");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    step("target saved");
    s.click_css(&format!("{li} button.target-test")).await;
    let r = wait_text(&s, "#target-test-result", T_STEP, |t| {
        t.contains("Proxmox OK") || t.to_lowercase().contains("fail") || t.contains("error")
    })
    .await;
    assert!(r.contains("Proxmox OK"), "target test: {r:?}");
    step(&format!("target test: {r:?}"));
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "targets.png").await;

    // ------------------------------------------------ command from the API
    let id = c.server.dispatch(&c.agent_id, "status", json!({})).await;
    let cmd = c.server.wait_terminal(&id, T_STEP).await;
    assert_eq!(cmd["status"], "succeeded", "{cmd}");
    assert_eq!(cmd["result"]["version"], "9.1.2", "{cmd}");
    step(&format!("API: command {id} succeeded"));
    s.click_css("#nav-status").await;
    s.wait_visible("#view-status", T_STEP).await;
    let row = format!("#status-recent-commands > li[data-command-id=\"{id}\"]");
    wait_attr(&s, &row, "data-state", "succeeded", T_STEP).await;
    let ty = s.attr(&row, "data-command-type").await.unwrap_or_default();
    assert!(ty.contains("status"), "data-command-type {ty:?}");
    step(&format!("status view lists {id} ({ty}) as succeeded"));
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "status.png").await;
    root_screenshot(&c.disp, &c.art.join("status-screen.png"));

    // ------------------------------------------------------- pause / resume
    s.click_css("#status-pause").await;
    wait_attr(&s, "#status-connection", "data-state", "paused", T_STEP).await;
    wait_tray_menu(&c.disp, &tray, "Status: Paused").await;
    step("Pause → paused (status view and tray menu)");
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "status-paused.png").await;
    wait_text(&s, "#status-pause", T_STEP, |t| t.trim() == "Resume").await;
    s.click_css("#status-pause").await;
    wait_attr(&s, "#status-connection", "data-state", "online", T_STEP).await;
    c.server.wait_online(&c.agent_id, T_STEP).await;
    step("Resume → online");

    // ------------------------------------------------------------- secrets
    let agent_token = find_agent_token(&c.config_dir);
    let source = s.source().await;
    let text = s.body_text().await;
    let values = s
        .exec(
            "return Array.from(document.querySelectorAll('input,textarea'))
               .map(e => e.id + '=' + e.value).join('\\n')",
            json!([]),
        )
        .await;
    let values = values.as_str().unwrap_or("").to_string();
    // (the pairing code is not a stored secret: it is single use and already
    // redeemed here)
    let mut secrets = vec![("Proxmox token secret", c.sim.token_secret().to_string())];
    match &agent_token {
        Some(t) => secrets.push(("agent token", t.clone())),
        None => panic!(
            "no agent token (bmxa_…) found in the file secret store under {}",
            c.config_dir.display()
        ),
    }
    for (what, secret) in &secrets {
        assert!(
            !source.contains(secret.as_str()),
            "{what} in the page source"
        );
        assert!(
            !text.contains(secret.as_str()),
            "{what} in the visible text"
        );
        assert!(
            !values.contains(secret.as_str()),
            "{what} is still in a form field after saving"
        );
    }
    let cfg_text = std::fs::read_to_string(c.config_dir.join("config.toml")).unwrap_or_default();
    assert!(
        !cfg_text.contains(c.sim.token_secret()),
        "the Proxmox token secret is in config.toml"
    );
    step("no secret in page source / text / form fields / config.toml");

    // ---------------------------------------------------- state: unreachable
    c.server.stop().await;
    wait_attr(
        &s,
        "#status-connection",
        "data-state",
        "unreachable",
        T_STEP,
    )
    .await;
    step("server stopped → unreachable");
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "status-unreachable.png").await;
    c.server.boot().await;
    wait_attr(
        &s,
        "#status-connection",
        "data-state",
        "online",
        Duration::from_secs(45),
    )
    .await;
    step("server back → online");

    // -------------------------------------------------------- state: revoked
    c.server.revoke(&c.agent_id).await;
    wait_attr(&s, "#status-connection", "data-state", "revoked", T_STEP).await;
    let last_error = s.text_of("#status-last-error").await;
    step(&format!("revoked; last error {last_error:?}"));
    scroll_top(&s).await;
    shot_checked(&s, &c.art, "status-revoked.png").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let icon = c.disp.tray_property(&tray, "IconName");
        if icon != icon_online {
            step(&format!("tray icon changed: {icon:?}"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tray icon did not change from online to revoked ({icon:?})"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_tray_menu(&c.disp, &tray, "Status: Revoked").await;
    step("tray menu says \"Status: Revoked\"");

    // --------------------------------------------------------- diagnostics
    s.click_css("#view-status details.details > summary").await;
    s.click_css("#status-diagnostics").await;
    let notice = wait_text(&s, "#status-notice", T_STEP, |t| {
        t.contains("Diagnostic bundle saved to")
    })
    .await;
    let bundle_path = notice
        .split("saved to ")
        .nth(1)
        .map(|p| p.trim().trim_end_matches('.').to_string())
        .unwrap_or_default();
    let bundle_path = PathBuf::from(bundle_path);
    assert!(
        bundle_path.starts_with(&c.downloads),
        "diagnostic bundle {} not in the Downloads dir {}",
        bundle_path.display(),
        c.downloads.display()
    );
    let diag = std::fs::read(&bundle_path)
        .unwrap_or_else(|e| panic!("diagnostic bundle {}: {e}", bundle_path.display()));
    assert!(!diag.is_empty(), "empty diagnostic bundle");
    let diag_text = String::from_utf8_lossy(&diag);
    for (what, secret) in &secrets {
        assert!(
            !diag_text.contains(secret.as_str()),
            "{what} in the diagnostic bundle"
        );
    }
    step(&format!(
        "diagnostics: {} ({} bytes)",
        bundle_path.display(),
        diag.len()
    ));
    s.exec(
        "document.getElementById('status-diagnostics').scrollIntoView({block: 'nearest'}); return true;",
        json!([]),
    )
    .await;
    shot_checked(&s, &c.art, "diagnostics.png").await;
}

// ------------------------------------------------------------------ helpers

fn bundle_with(bundle: &str, key: &str, value: &str) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut v: Value = serde_json::from_slice(&b64.decode(bundle).unwrap()).unwrap();
    v[key] = json!(value);
    b64.encode(v.to_string())
}

async fn wait_text(s: &Session, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let t = s.text_of(css).await;
        if ok(&t) {
            return t;
        }
        if Instant::now() >= deadline {
            panic!(
                "{css} text {t:?} not as expected within {within:?}; visible text:\n{}",
                s.body_text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_attr(s: &Session, css: &str, attr: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = s.attr(css, attr).await;
        if v.as_deref() == Some(want) {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{css}[{attr}] is {v:?}, not {want:?}, after {within:?}; visible text:\n{}",
                s.body_text().await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_tray_menu(disp: &Display, tray: &(String, String), want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let menu = disp.tray_menu(tray);
        if menu.contains(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tray menu does not say {want:?}: {menu}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The page fits the window's width. When something overflowed it (once:
/// check boxes with the text inputs' `width: 100%`), the page scrolled
/// sideways and the horizontal scrollbar covered the Pair button, so a real
/// click on it did nothing and the test only timed out later.
async fn assert_no_sideways_scroll(s: &Session, what: &str) {
    let v = s
        .exec(
            "const d = document.documentElement;
             return [d.scrollWidth, d.clientWidth];",
            json!([]),
        )
        .await;
    let (scroll, client) = (v[0].as_i64().unwrap_or(0), v[1].as_i64().unwrap_or(0));
    assert!(
        scroll <= client,
        "{what}: the page is {scroll}px wide in a {client}px window (it scrolls sideways)"
    );
}

/// Scrolls so that the bottom of `css` is in view.
async fn scroll_into_view(s: &Session, css: &str) {
    s.exec(
        "const el = document.querySelector(arguments[0]);
         if (el) el.scrollIntoView({block: 'end'});
         return true;",
        json!([css]),
    )
    .await;
}

/// Scrolls the window (and every scrolled view) back to the top.
async fn scroll_top(s: &Session) {
    s.exec(
        "window.scrollTo(0, 0);
         for (const el of document.querySelectorAll('*')) { if (el.scrollTop) el.scrollTop = 0; }
         return true;",
        json!([]),
    )
    .await;
}

async fn shot_checked(s: &Session, art: &Path, name: &str) {
    // let the last DOM update paint
    tokio::time::sleep(Duration::from_millis(300)).await;
    let p = s.save_screenshot(art, name).await;
    shot::assert_not_blank(&p);
}

/// Screenshot of the whole X screen (proves the window is mapped on the
/// display, not only rendered off screen).
fn root_screenshot(disp: &Display, path: &Path) {
    let out = std::process::Command::new("import")
        .args(["-display", &disp.display, "-window", "root"])
        .arg(path)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            shot::assert_not_blank(path);
        }
        Ok(o) => panic!(
            "import -window root failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("ImageMagick `import` is missing ({e}); run scripts/gui-test-env.sh");
            }
            eprintln!("no X root screenshot: ImageMagick `import` missing ({e})");
        }
    }
}

/// The agent token (`bmxa_…`) from the file secret store in the config dir.
fn find_agent_token(dir: &Path) -> Option<String> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        if let Some(i) = text.find("bmxa_") {
            let tok: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if tok.len() > 10 {
                return Some(tok);
            }
        }
    }
    None
}

// ------------------------------------------- the blank check itself (no GUI)

#[test]
fn blank_screenshots_are_rejected() {
    let white = shot::encode_rgb(800, 600, |_, _| [255, 255, 255]);
    assert!(shot::check_not_blank(&white).is_err());
    let black = shot::encode_rgb(800, 600, |_, _| [0, 0, 0]);
    assert!(shot::check_not_blank(&black).is_err());
    // two flat colours (e.g. a header bar over an empty page) is still blank
    let two = shot::encode_rgb(
        800,
        600,
        |_, y| if y < 60 { [30, 60, 90] } else { [250; 3] },
    );
    assert!(shot::check_not_blank(&two).is_err());
    assert!(shot::check_not_blank(b"not a png").is_err());
    // a tiny image is not a screenshot
    let tiny = shot::encode_rgb(50, 50, |x, y| [(x * 5) as u8, (y * 5) as u8, 0]);
    assert!(shot::check_not_blank(&tiny).is_err());
    // something with structure passes
    let busy = shot::encode_rgb(800, 600, |x, y| {
        [(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8]
    });
    shot::check_not_blank(&busy).expect("a varied image passes");
}
