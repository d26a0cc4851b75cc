//! The web console in a real browser (issue #14, the browser ring): headless
//! Chromium driven over W3C WebDriver (`chromedriver`, through the shared
//! dev crate `botmox-webdriver`) against a real server (in process, real
//! HTTP, SQLite; one test on PostgreSQL). The flow with the real agent and
//! pve-sim is agent-core's `console_flow` test.
//!
//! * `pages_at_1280x800` (SQLite), `pages_at_1024x700_on_postgres`: sign in
//!   through the form, then every console page: a non-blank screenshot, axe-core with no
//!   serious or critical violation, a visible keyboard focus on the first
//!   Tab stops, no error in the browser's console (CSP violations land
//!   there), no sideways scrolling.
//! * `pair_an_agent_and_see_it_online`: the pairing dialog (Escape closes
//!   it), the bundle in the read-only textarea is a valid bundle for this
//!   server whose code registers the agent the page links to, the copy
//!   button copies it (or selects it), the new agent turns online in the
//!   list live (event stream + htmx, no reload).
//! * `ban_and_unban_a_bot`: the ban form shows the server's field error,
//!   then bans; unban restores the status; the API agrees.
//! * `finance_operation_changes_the_chart`: an operation added through the
//!   form adds today's bar to the server-drawn SVG chart.
//! * `command_progresses_live`: a command's page follows the agent's
//!   reports (running, output, succeeded) through the event stream, header
//!   included, without a reload; its scrolling output box passes axe.
//!
//! Each check is shown able to fail once per run
//! (`checks_catch_planted_faults`): a planted unlabelled field is a critical
//! axe finding and a planted inline script a CSP error in the console.
//!
//! Screenshots go to `$BOTMOX_CONSOLE_ARTIFACTS`, else
//! `<cargo target dir>/console-artifacts/<width>x<height>/`; with
//! `BOTMOX_UPDATE_DOC_IMAGES=1` the 1280×800 ones are also written to
//! `docs/img/console/` (for docs/user-guide.md). On failure the page's
//! screenshot and HTML are kept there as `failure-<test>.png/.html`.
//!
//! Needs `chromium`, `chromedriver` (Debian `chromium`, `chromium-driver`)
//! and axe-core's `axe.min.js` (`$BOTMOX_AXE_JS`, else where
//! `scripts/setup-test-env.sh` installs it). Without them the tests are
//! skipped with a message, except under `CI=true`, where that is a failure.
//! They run one at a time (nextest test group `browser`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use botmox_protocol::PairingBundle;
use botmox_webdriver::chromium::{self, Chromium, Tools};
use botmox_webdriver::{keys, shot, Session};
use futures_util::FutureExt;
use serde_json::json;

use crate::bus::{dispatch, pair_agent};
use crate::common::{Backend, TestServer};

/// Where `scripts/setup-test-env.sh` puts axe-core (npm `axe-core`, pinned there).
const T_PAGE: Duration = Duration::from_secs(15);
const T_LIVE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- set-up

fn artifacts_dir(width: u32, height: u32) -> PathBuf {
    chromium::artifacts_dir(&format!("{width}x{height}"))
}

/// docs/user-guide.md, which shows some of the screenshots.
fn user_guide() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/user-guide.md"))
        .unwrap()
}

/// Does the user guide show `<name>.png`? (Only those go to docs/.)
fn in_user_guide(name: &str) -> bool {
    user_guide().contains(&format!("(img/console/{name}.png)"))
}

/// Every picture the user guide shows is in docs/img/console/, and every
/// picture there is shown (screenshots nobody reads are not kept in git).
#[test]
fn the_guides_pictures_exist_and_are_all_shown() {
    let guide = user_guide();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/console");
    let shown: std::collections::BTreeSet<String> = guide
        .match_indices("(img/console/")
        .map(|(i, m)| {
            let rest = &guide[i + m.len()..];
            rest[..rest.find(')').unwrap()].to_string()
        })
        .collect();
    assert!(shown.len() > 20, "{shown:?}");
    let present: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let missing: Vec<_> = shown.difference(&present).collect();
    let unused: Vec<_> = present.difference(&shown).collect();
    assert!(
        missing.is_empty(),
        "shown but not in {}: {missing:?}",
        dir.display()
    );
    assert!(
        unused.is_empty(),
        "in {} but not shown: {unused:?}",
        dir.display()
    );
}

fn doc_images() -> Option<PathBuf> {
    std::env::var("BOTMOX_UPDATE_DOC_IMAGES")
        .is_ok_and(|v| v == "1")
        .then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/console"))
}

/// Headless Chromium through chromedriver, at a viewport of width×height.
struct Browser {
    s: Session,
    server: TestServer,
    axe: String,
    art: PathBuf,
    /// Screenshots are also written to docs/img/console/ (1280×800 only).
    docs: Option<PathBuf>,
    width: u32,
    height: u32,
    _chromium: Chromium,
}

impl Browser {
    async fn start(tools: Tools, server: TestServer, width: u32, height: u32) -> Browser {
        let art = artifacts_dir(width, height);
        let chromium = Chromium::start(&tools, width, height, &art).await;
        let b = Browser {
            s: chromium.session.clone(),
            server,
            axe: tools.axe,
            art,
            docs: (width, height).eq(&(1280, 800)).then(doc_images).flatten(),
            width,
            height,
            _chromium: chromium,
        };
        // the clipboard for the copy button; a permission is the current
        // origin's, so grant it on the server's page (refusals are fine:
        // the button selects the text instead, and the test checks that)
        b.s.goto(&b.url("/console/login")).await;
        for name in ["clipboard-read", "clipboard-write"] {
            let _ =
                b.s.req(
                    "POST",
                    "/permissions",
                    Some(json!({"descriptor": {"name": name}, "state": "granted"})),
                )
                .await;
        }
        b
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Opens `path` and waits for its `<h1>`.
    async fn open(&self, path: &str) {
        self.s.goto(&self.url(path)).await;
        self.s.wait_for("h1", T_PAGE).await;
    }

    /// Signs in through the console's form (redirected there from `/console`).
    async fn sign_in(&self, email: &str, password: &str) {
        self.sign_in_as(email, password, "admin").await;
    }

    async fn sign_in_as(&self, email: &str, password: &str, role: &str) {
        self.s.goto(&self.url("/console")).await;
        self.s.wait_visible("#email", T_PAGE).await;
        assert!(
            self.s.current_url().await.contains("/console/login"),
            "not sent to the sign-in page"
        );
        self.s.type_into("#email", email).await;
        self.s.type_into("#password", password).await;
        self.s.click_css("form button[type=submit]").await;
        self.wait_text("h1", T_PAGE, |t| t == "Dashboard").await;
        let shown = self.s.text_of("[data-testid=role]").await;
        assert_eq!(shown, role);
    }

    async fn wait_text(&self, css: &str, within: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let t = self.s.text_of(css).await;
            if ok(&t) {
                return t;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{css} never showed the expected text (last: {t:?}); page:\n{}",
                    self.s.body_text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// A non-blank screenshot saved as `<name>.png` (and in docs/img/console/).
    async fn shot(&self, name: &str) {
        // let the last DOM update paint
        tokio::time::sleep(Duration::from_millis(250)).await;
        let png = self.s.screenshot().await;
        let p = self.art.join(format!("{name}.png"));
        std::fs::write(&p, &png).unwrap();
        shot::assert_not_blank(&p);
        if let Some(docs) = self.docs.as_ref().filter(|_| in_user_guide(name)) {
            std::fs::create_dir_all(docs).unwrap();
            std::fs::write(docs.join(format!("{name}.png")), &png).unwrap();
        }
    }

    /// axe-core's violations on the current page (id, impact, help, nodes).
    async fn axe_violations(&self, what: &str) -> Vec<serde_json::Value> {
        let loaded = self
            .s
            .exec(
                &format!(
                    "{}\n;return typeof window.axe === 'object' ? window.axe.version : null;",
                    self.axe
                ),
                json!([]),
            )
            .await;
        assert!(
            loaded.is_string(),
            "{what}: axe-core did not load: {loaded}"
        );
        let v = self
            .s
            .exec_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations.map(v => ({
                      id: v.id, impact: v.impact, help: v.help,
                      nodes: v.nodes.slice(0, 5).map(n => n.target.join(' ') + ' — '
                        + (n.failureSummary || '').replace(/\\s+/g, ' '))}))))
                   .catch(e => done({error: String(e)}));",
                json!([]),
            )
            .await;
        assert!(v.is_array(), "{what}: axe failed: {v}");
        v.as_array().unwrap().clone()
    }

    /// axe-core on the current page: fails on serious/critical violations,
    /// prints the others.
    async fn axe(&self, what: &str) {
        let mut bad = Vec::new();
        for x in &self.axe_violations(what).await {
            let line = format!(
                "{what}: axe {} [{}] {}: {}",
                x["id"].as_str().unwrap_or(""),
                x["impact"].as_str().unwrap_or(""),
                x["help"].as_str().unwrap_or(""),
                x["nodes"]
            );
            eprintln!("{line}");
            if matches!(x["impact"].as_str(), Some("serious" | "critical")) {
                bad.push(line);
            }
        }
        assert!(
            bad.is_empty(),
            "serious/critical accessibility violations:\n{}",
            bad.join("\n")
        );
    }

    /// The first `tabs` Tab stops (fewer on a page with fewer controls)
    /// each show a visible focus indicator (an outline of 2px or more, or a box shadow)
    /// on an element inside the viewport.
    async fn focus_is_visible(&self, what: &str, tabs: usize) {
        self.s
            .exec(
                "if (document.activeElement) document.activeElement.blur();
                 window.scrollTo(0, 0); return true;",
                json!([]),
            )
            .await;
        for i in 0..tabs {
            self.s.press(keys::TAB).await;
            let v = self
                .s
                .exec(
                    "const el = document.activeElement;
                     if (!el || el === document.body) return {ok: false, why: 'nothing focused'};
                     const st = getComputedStyle(el);
                     const r = el.getBoundingClientRect();
                     const outline = st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) >= 2;
                     const shadow = st.boxShadow && st.boxShadow !== 'none';
                     const inView = r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0
                       && r.top < window.innerHeight && r.left < window.innerWidth;
                     return {ok: (outline || shadow) && inView, inView: inView,
                       el: el.tagName + (el.id ? '#' + el.id : '') + ' '
                         + (el.innerText || el.value || '').trim().slice(0, 40),
                       outline: st.outlineStyle + ' ' + st.outlineWidth + ' ' + st.outlineColor,
                       shadow: st.boxShadow, focusVisible: el.matches(':focus-visible')};",
                    json!([]),
                )
                .await;
            if i > 0 && v["why"] == "nothing focused" {
                break; // past the page's last control
            }
            assert_eq!(
                v["ok"],
                json!(true),
                "{what}: Tab stop {} has no visible focus: {v}",
                i + 1
            );
        }
    }

    /// No error in the browser's console since the last call (script
    /// errors, CSP violations, failed loads).
    async fn no_console_errors(&self, what: &str) {
        let log = self
            .s
            .browser_log()
            .await
            .unwrap_or_else(|e| panic!("{what}: the browser log is not readable: {e}"));
        let errors: Vec<String> = log
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect();
        for e in &log {
            if e["level"] != "SEVERE" {
                eprintln!("{what}: console {}: {}", e["level"], e["message"]);
            }
        }
        assert!(
            errors.is_empty(),
            "{what}: errors in the browser console:\n{}",
            errors.join("\n")
        );
    }

    /// Neither the page nor the main content scrolls sideways.
    async fn no_sideways_scroll(&self, what: &str) {
        let v = self
            .s
            .exec(
                "const d = document.documentElement;
                 const m = document.querySelector('main');
                 return [d.scrollWidth, d.clientWidth,
                         m ? m.scrollWidth : 0, m ? m.clientWidth : 0];",
                json!([]),
            )
            .await;
        let n = |i: usize| v[i].as_i64().unwrap_or(0);
        assert!(
            n(0) <= n(1),
            "{what}: the page is {}px wide in a {}px viewport (it scrolls sideways)",
            n(0),
            n(1)
        );
        assert!(
            n(2) <= n(3),
            "{what}: the main content is {}px wide in {}px (it scrolls sideways)",
            n(2),
            n(3)
        );
    }

    /// Every check of a page: screenshot, axe, focus, console, width.
    async fn check_page(&self, name: &str) {
        let what = format!("{name} at {}x{}", self.width, self.height);
        self.no_sideways_scroll(&what).await;
        self.shot(name).await;
        self.axe(&what).await;
        self.focus_is_visible(&what, 4).await;
        self.no_console_errors(&what).await;
    }

    /// Runs `flow`; on failure keeps the page's screenshot and HTML, then
    /// ends the browser and the server either way.
    async fn run<F>(self, test: &str, flow: F)
    where
        F: for<'a> FnOnce(&'a Browser) -> futures_util::future::BoxFuture<'a, ()>,
    {
        let outcome = AssertUnwindSafe(flow(&self)).catch_unwind().await;
        if outcome.is_err() {
            if let Ok(png) = AssertUnwindSafe(self.s.screenshot()).catch_unwind().await {
                let _ = std::fs::write(self.art.join(format!("failure-{test}.png")), png);
            }
            if let Ok(src) = AssertUnwindSafe(self.s.source()).catch_unwind().await {
                let _ = std::fs::write(self.art.join(format!("failure-{test}.html")), src);
            }
            eprintln!("artifacts in {}", self.art.display());
        }
        self.s.close().await;
        self.server.stop().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e);
        }
    }
}

/// The tools and a fresh server, or None when the test is skipped. Tests
/// seed the server before starting the browser, so that a failed seed
/// leaves no browser behind (the browser is closed by `Browser::run`).
async fn server_for(test: &str) -> Option<(Tools, TestServer)> {
    server_on(test, Backend::Sqlite).await
}

async fn server_on(test: &str, backend: Backend) -> Option<(Tools, TestServer)> {
    let tools = chromium::preflight(test, true)?;
    Some((tools, TestServer::start(backend).await))
}

// ---------------------------------------------------------------- seeds

struct Seed {
    agent: String,
    command: String,
    job: String,
    profile: String,
    playbook: String,
    tenant_license: String,
    release: String,
}

/// An online agent with a queued command, a running 2-VM job, two bots (one
/// banned), finance operations over a few days, a record of every resource
/// and workspace kind, a playbook, a tenant license about to expire, a
/// release, a bound secret, a registered VM, an operator, an API token.
async fn seed(s: &TestServer) -> Seed {
    let admin = s.admin_token().await;
    let (agent, agent_token) = pair_agent(s, &admin).await;
    let hb = s
        .post("/api/v1/agents/heartbeat", Some(&agent_token), json!({}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    let c = dispatch(s, &admin, &agent, "start", json!({"vmid": 101})).await;
    assert_eq!(c.status, 202, "{}", c.body);
    let command = c.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"name": "office-box"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let lic = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(lic.status, 201, "{}", lic.body);
    let profile = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&admin),
            json!({"name": "browser-profile", "config": {
                "user": {"nameMode": "custom", "customName": "labuser", "password": "S3cret-pw"},
                "computerName": {"mode": "random"}
            }}),
        )
        .await;
    assert_eq!(profile.status, 201, "{}", profile.body);
    let job = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            json!({"agent_id": agent, "node": "pve-lab", "template_vmid": 9000, "count": 2,
                   "profile_id": profile.body["data"]["id"]}),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);
    let job = job.body["data"]["id"].as_str().unwrap().to_string();

    seed_bots(s, &admin).await;
    seed_records(s, &admin).await;
    for (ago, kind, category, amount) in [
        (1, "income", "sales", 120.0),
        (1, "expense", "proxies", 30.0),
        (3, "expense", "hosting", 50.0),
        (6, "income", "gold-sale", 80.0),
    ] {
        add_operation(s, &admin, ago, kind, category, amount).await;
    }
    let post = |path: &'static str, body: serde_json::Value| {
        let admin = admin.clone();
        async move {
            let r = s.post(path, Some(&admin), body).await;
            assert!(r.status == 201 || r.status == 200, "{path}: {}", r.body);
            r.body["data"]["id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
    };
    let playbook = post(
        "/api/v1/playbooks",
        json!({"name": "Farm setup", "content": "name: farm\nroles:\n  - role: base-system\n"}),
    )
    .await;
    let licence_soon = chrono::Utc::now().timestamp_millis() + 5 * 86_400_000;
    let tenant_license = post(
        "/api/v1/tenant-licenses",
        json!({"type": "subscription", "expires_at_ms": licence_soon}),
    )
    .await;
    let release = post(
        "/api/v1/artifacts/releases",
        json!({"module": "wow.farm", "platform": "Windows", "version": "1.2.3",
               "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
               "size_bytes": 1536}),
    )
    .await;
    post(
        "/api/v1/secrets",
        json!({"id": "db-pass", "label": "Farm database", "value": "browser-secret-value"}),
    )
    .await;
    post(
        "/api/v1/secrets/bindings",
        json!({"scope_type": "bot", "scope_id": "bot-a", "secret_ref": "db-pass",
               "field_name": "db_password"}),
    )
    .await;
    post(
        "/api/v1/vm/register",
        json!({"vm_uuid": "vm-0001-aaaa", "vm_name": "farm-01", "project_id": "wow_tbc",
               "metadata": {"node": "pve1"}}),
    )
    .await;
    post(
        "/api/v1/users",
        json!({"email": "op@browser.test", "password": "operator-pass-1", "role": "operator"}),
    )
    .await;
    post(
        "/api/v1/auth/api-tokens",
        json!({"name": "ci", "ttl_days": 30}),
    )
    .await;
    Seed {
        agent,
        command,
        job,
        profile: profile.body["data"]["id"].as_str().unwrap().to_string(),
        playbook,
        tenant_license,
        release,
    }
}

/// Resources and workspace records of every kind (today's calendar event).
async fn seed_records(s: &TestServer, admin: &str) {
    for (path, body) in [
        (
            "/api/v1/resources/licenses",
            json!({"id": "lic-1", "key": "KEY-ALPHA", "type": "yearly",
            "status": "active", "expires_at": "2027-01-31T00:00:00Z", "bot_ids": ["bot-a"]}),
        ),
        (
            "/api/v1/resources/proxies",
            json!({"id": "px-1", "ip": "10.1.2.3", "port": 8080,
            "login": "user1", "password": "proxy-secret", "type": "socks5", "status": "active",
            "country": "Germany"}),
        ),
        (
            "/api/v1/resources/subscriptions",
            json!({"id": "sub-1", "type": "vpn",
            "account_email": "alpha@sub.test", "expires_at": "2099-01-01T00:00:00Z",
            "auto_renew": true, "project_id": "wow_tbc"}),
        ),
        (
            "/api/v1/workspace/notes",
            json!({"id": "note-1", "title": "Farm plan",
            "content": "Route through Nagrand", "tags": ["farm"], "is_pinned": true}),
        ),
        (
            "/api/v1/workspace/calendar",
            json!({"id": "ev-1", "title": "Raid night",
            "date": day(0), "description": "Bring flasks"}),
        ),
        (
            "/api/v1/workspace/kanban",
            json!({"id": "k-1", "title": "Write docs", "status": "todo",
            "order": 1}),
        ),
        (
            "/api/v1/workspace/kanban",
            json!({"id": "k-2", "title": "Fix the bug",
            "status": "in_progress", "order": 1}),
        ),
    ] {
        let r = s.post(path, Some(admin), body).await;
        assert_eq!(r.status, 201, "{path}: {}", r.body);
    }
}

async fn seed_bots(s: &TestServer, admin: &str) {
    for body in [
        json!({"id": "bot-a", "name": "Alpha", "project_id": "wow_tbc", "status": "farming",
               "character": {"name": "Thrall", "level": 60, "class": "shaman", "server": "Firemaw"}}),
        json!({"id": "bot-b", "name": "Bravo", "project_id": "wow_midnight", "status": "leveling"}),
    ] {
        let r = s.post("/api/v1/bots", Some(admin), body).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = s
        .post(
            "/api/v1/bots/bot-b/lifecycle/ban",
            Some(admin),
            json!({"ban_date": "15.03.2026", "ban_reason": "caught farming", "ban_mechanism": "hardware_ban"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// `YYYY-MM-DD` of `days_ago` days ago (UTC).
fn day(days_ago: u64) -> String {
    (chrono::Utc::now().date_naive() - chrono::Days::new(days_ago))
        .format("%Y-%m-%d")
        .to_string()
}

async fn add_operation(
    s: &TestServer,
    admin: &str,
    ago: u64,
    kind: &str,
    category: &str,
    amount: f64,
) {
    let r = s
        .post(
            "/api/v1/finance/operations",
            Some(admin),
            json!({"type": kind, "category": category, "amount": amount, "currency": "USD",
                   "date": format!("{}T12:00:00Z", day(ago))}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

// ---------------------------------------------------------------- tests

/// Every page of the console at one viewport size.
async fn every_page(test: &str, backend: Backend, width: u32, height: u32) {
    let Some((tools, server)) = server_on(test, backend).await else {
        return;
    };
    let seed = seed(&server).await;
    let b = Browser::start(tools, server, width, height).await;
    b.run(test, move |b| {
        async move {
            // the sign-in page, before signing in
            b.s.goto(&b.url("/console/login")).await;
            b.s.wait_visible("#email", T_PAGE).await;
            b.check_page("login").await;
            let password = b.server.admin_password.clone();
            b.sign_in("admin@localhost", &password).await;
            b.s.wait_for("[data-testid=agent-counts]", T_PAGE).await;
            b.check_page("dashboard").await;
            b.checks_catch_planted_faults().await;

            let pages = [
                ("agents", "/console/agents".to_string()),
                ("agent", format!("/console/agents/{}", seed.agent)),
                ("commands", "/console/commands".to_string()),
                ("command", format!("/console/commands/{}", seed.command)),
                ("vm-jobs", "/console/vm-jobs".to_string()),
                ("vm-job", format!("/console/vm-jobs/{}", seed.job)),
                ("bots", "/console/bots".to_string()),
                ("bot", "/console/bots/bot-a".to_string()),
                ("bot-banned", "/console/bots/bot-b".to_string()),
                ("finance", "/console/finance".to_string()),
                ("vm-job-new", "/console/vm-jobs/new".to_string()),
                ("bots-archive", "/console/bots/archive".to_string()),
                ("profiles", "/console/unattend-profiles".to_string()),
                (
                    "profile",
                    format!("/console/unattend-profiles/{}", seed.profile),
                ),
                ("profile-new", "/console/unattend-profiles/new".to_string()),
                ("playbooks", "/console/playbooks".to_string()),
                ("playbook", format!("/console/playbooks/{}", seed.playbook)),
                (
                    "resources-licenses",
                    "/console/resources/licenses".to_string(),
                ),
                (
                    "resource-license",
                    "/console/resources/licenses/lic-1".to_string(),
                ),
                (
                    "resources-proxies",
                    "/console/resources/proxies".to_string(),
                ),
                (
                    "resource-proxy",
                    "/console/resources/proxies/px-1".to_string(),
                ),
                (
                    "resources-subscriptions",
                    "/console/resources/subscriptions".to_string(),
                ),
                ("workspace-notes", "/console/workspace/notes".to_string()),
                (
                    "workspace-note",
                    "/console/workspace/notes/note-1".to_string(),
                ),
                (
                    "workspace-calendar",
                    "/console/workspace/calendar".to_string(),
                ),
                ("workspace-kanban", "/console/workspace/kanban".to_string()),
                (
                    "workspace-task",
                    "/console/workspace/kanban/k-1".to_string(),
                ),
                ("licenses", "/console/licenses".to_string()),
                (
                    "license",
                    format!("/console/licenses/{}", seed.tenant_license),
                ),
                ("license-audit", "/console/licenses/audit".to_string()),
                ("artifacts", "/console/artifacts".to_string()),
                (
                    "release",
                    format!("/console/artifacts/releases/{}", seed.release),
                ),
                (
                    "artifact-assignments",
                    "/console/artifacts/assignments".to_string(),
                ),
                ("artifact-audit", "/console/artifacts/audit".to_string()),
                ("secrets", "/console/secrets".to_string()),
                ("secret", "/console/secrets/db-pass".to_string()),
                ("secret-bindings", "/console/secrets/bindings".to_string()),
                ("vms", "/console/vms".to_string()),
                ("vm", "/console/vms/vm-0001-aaaa".to_string()),
                ("users", "/console/users".to_string()),
                ("api-tokens", "/console/api-tokens".to_string()),
                ("tenants", "/console/tenants".to_string()),
                ("settings", "/console/settings".to_string()),
            ];
            for (name, path) in &pages {
                b.open(path).await;
                b.check_page(name).await;
            }

            // the pairing dialog, open, with its result
            b.open("/console/agents").await;
            b.s.click_css("#pair-open").await;
            b.s.wait_visible("#pair-form", T_PAGE).await;
            b.s.type_into("#p-name", "docs-box").await;
            b.s.click_css("#pair-form button[type=submit]").await;
            b.s.wait_visible("#pairing-result", T_PAGE).await;
            b.check_dialog("pair").await;

            // dialogs of the bot and finance pages
            b.open("/console/bots/bot-a").await;
            b.s.click_css("button[data-dialog='#ban']").await;
            b.s.wait_visible("#ban form", T_PAGE).await;
            b.check_dialog("bot-ban").await;
            b.open("/console/finance").await;
            b.s.click_css("button[data-dialog='#operation']").await;
            b.s.wait_visible("#operation form", T_PAGE).await;
            b.check_dialog("finance-add").await;

            // the dispatch form, the profile editor's other tabs, the
            // record forms, a new API token shown once
            b.open("/console/commands").await;
            b.s.click_css("#dispatch-open").await;
            b.s.wait_visible("#dispatch-form", T_PAGE).await;
            b.check_dialog("command-dispatch").await;
            b.open(&format!("/console/unattend-profiles/{}", seed.profile))
                .await;
            for tab in [
                "computer",
                "locale",
                "software",
                "capabilities",
                "settings",
                "visual",
                "icons",
                "script",
            ] {
                b.s.click_css(&format!("#tab-{tab}")).await;
                b.s.wait_visible(&format!("#panel-{tab}"), T_PAGE).await;
                b.check_page(&format!("profile-tab-{tab}")).await;
            }
            b.s.click_css("button[data-preview]").await;
            b.wait_text("#preview-xml", T_PAGE, |t| {
                t.contains("urn:schemas-microsoft-com:unattend")
            })
            .await;
            b.check_page("profile-preview").await;
            b.open("/console/api-tokens").await;
            b.s.click_css("button[data-dialog='#new-token-dialog']")
                .await;
            b.s.wait_visible("#new-token-dialog form", T_PAGE).await;
            b.check_dialog("api-token-create").await;
            b.s.click_css("button[data-dialog='#new-token-dialog']")
                .await;
            b.s.type_into("#new-token-dialog input[name=name]", "deploy")
                .await;
            b.s.click_css("#new-token-dialog button[type=submit]").await;
            b.s.wait_visible("#new-token-panel", T_PAGE).await;
            let token =
                b.s.exec(
                    "return document.getElementById('new-token').value;",
                    json!([]),
                )
                .await;
            let token = token.as_str().unwrap().to_string();
            assert!(token.len() > 20, "the new token is shown: {token:?}");
            // it works once copied, and is on no page after a reload
            let who = b.server.get("/api/v1/auth/whoami", Some(&token)).await;
            assert_eq!(who.status, 200, "{}", who.body);
            b.check_page("api-token-created").await;
            b.open("/console/api-tokens").await;
            assert!(
                !b.s.source().await.contains(&token),
                "the token is on the page again"
            );
        }
        .boxed()
    })
    .await;
}

impl Browser {
    /// The checks can fail: an unlabelled field planted in the page is a
    /// critical axe finding, and an inline script planted in it is refused
    /// by the CSP with an error in the browser's console.
    async fn checks_catch_planted_faults(&self) {
        self.s
            .exec(
                "const i = document.createElement('input'); i.type = 'text';
                 document.querySelector('main').appendChild(i);
                 const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                 document.body.appendChild(s);
                 return true;",
                json!([]),
            )
            .await;
        let found = self.axe_violations("planted").await;
        assert!(
            found
                .iter()
                .any(|v| v["id"] == "label" && v["impact"] == "critical"),
            "axe did not report the planted unlabelled field: {found:?}"
        );
        let ran = self.s.exec("return window.__ran === 1;", json!([])).await;
        assert_eq!(ran, json!(false), "the CSP let an inline script run");
        let log = self.s.browser_log().await.unwrap();
        assert!(
            log.iter().any(|e| e["level"] == "SEVERE"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("Content Security Policy"))),
            "the refused inline script left no error in the console log: {log:?}"
        );
    }

    /// A page with a modal dialog open: screenshot, axe, console, and
    /// Escape closes the dialog.
    async fn check_dialog(&self, name: &str) {
        let what = format!("{name} at {}x{}", self.width, self.height);
        self.shot(name).await;
        self.axe(&what).await;
        self.no_console_errors(&what).await;
        self.s.press(keys::ESCAPE).await;
        let open = self
            .s
            .exec(
                "return document.querySelectorAll('dialog[open]').length;",
                json!([]),
            )
            .await;
        assert_eq!(open, json!(0), "{what}: Escape did not close the dialog");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_at_1280x800() {
    every_page("pages_at_1280x800", Backend::Sqlite, 1280, 800).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_at_1024x700_on_postgres() {
    every_page(
        "pages_at_1024x700_on_postgres",
        Backend::Postgres,
        1024,
        700,
    )
    .await;
}

/// A viewer signed in through the form: every page renders (axe, focus,
/// console) with no control that would change something: no form posting
/// to the API but sign-out, no dialog opener, no enabled field outside the
/// list filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_every_page_without_mutating_controls() {
    let test = "a_viewer_sees_every_page_without_mutating_controls";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    seed(&server).await;
    let admin = server.admin_token().await;
    let r = server
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"email": "viewer@browser.test", "password": "viewer-pass-1", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, move |b| {
        async move {
            b.sign_in_as("viewer@browser.test", "viewer-pass-1", "viewer").await;
            let pages = [
                "/console".to_string(),
                "/console/agents".to_string(),
                "/console/commands".to_string(),
                "/console/vm-jobs".to_string(),
                "/console/unattend-profiles".to_string(),
                "/console/playbooks".to_string(),
                "/console/bots".to_string(),
                "/console/bots/bot-a".to_string(),
                "/console/finance".to_string(),
                "/console/resources/proxies".to_string(),
                "/console/resources/proxies/px-1".to_string(),
                "/console/workspace/kanban".to_string(),
                "/console/workspace/calendar".to_string(),
                "/console/secrets".to_string(),
                "/console/vms".to_string(),
                "/console/api-tokens".to_string(),
                "/console/settings".to_string(),
            ];
            for path in &pages {
                b.open(path).await;
                let found = b
                    .s
                    .exec(
                        "const forms = [...document.querySelectorAll('form[data-api]')]
                           .map(f => f.getAttribute('data-api'))
                           .filter(a => a !== '/console/logout');
                         const openers = [...document.querySelectorAll('[data-dialog]')].length;
                         const fields = [...document.querySelectorAll('main input, main select, main textarea')]
                           .filter(el => !el.disabled && !el.closest('form.filters')
                                      && !el.closest('form[method=get]') && el.type !== 'hidden')
                           .map(el => el.name || el.id);
                         return {forms, openers, fields};",
                        json!([]),
                    )
                    .await;
                assert_eq!(
                    found,
                    json!({"forms": [], "openers": 0, "fields": []}),
                    "{path}: a viewer has controls that change something"
                );
                let name = format!(
                    "viewer{}",
                    path.trim_start_matches("/console").replace('/', "-")
                );
                b.check_page(&name).await;
            }
            // what is not theirs stays out of reach: admins' pages are not
            // offered, and answer the API's refusal
            let nav = b.s.exec(
                "return [...document.querySelectorAll('nav a')].map(a => a.getAttribute('href'));",
                json!([]),
            )
            .await;
            for admin_only in ["/console/users", "/console/licenses", "/console/artifacts", "/console/tenants"] {
                assert!(!nav.as_array().unwrap().iter().any(|h| h == admin_only), "{admin_only} in {nav}");
            }
            b.open("/console/users").await;
            let body = b.s.body_text().await;
            assert!(body.contains("Admins only"), "{body}");
        }
        .boxed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_an_agent_and_see_it_online() {
    let test = "pair_an_agent_and_see_it_online";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, |b| {
        async move {
            let password = b.server.admin_password.clone();
            b.sign_in("admin@localhost", &password).await;
            b.open("/console/agents").await;
            b.wait_text("#live", T_LIVE, |t| t == "live").await;

            // the dialog opens from the button and Escape closes it
            b.s.click_css("#pair-open").await;
            b.s.wait_visible("#pair-form", T_PAGE).await;
            b.s.press(keys::ESCAPE).await;
            assert!(!b.s.visible("#pair-form").await, "Escape left the dialog open");
            b.s.click_css("#pair-open").await;
            b.s.type_into("#p-name", "browser-box").await;
            b.s.click_css("#pair-form button[type=submit]").await;
            b.s.wait_visible("#pairing-result", T_PAGE).await;

            // the bundle: read-only, for this server, with the link and expiry
            let v = b
                .s
                .exec(
                    "const t = document.getElementById('pairing-bundle');
                     return [t.value, t.readOnly, document.getElementById('pairing-uri').href,
                             document.getElementById('pairing-expires').textContent,
                             document.getElementById('pairing-agent').getAttribute('href'),
                             document.activeElement === t];",
                    json!([]),
                )
                .await;
            let text = v[0].as_str().unwrap().to_string();
            assert_eq!(v[1], json!(true), "the bundle field is not read-only");
            assert!(v[5].as_bool().unwrap(), "the bundle field has no focus");
            let bundle = PairingBundle::decode(&text).expect("the page shows a valid bundle");
            assert_eq!(bundle.server_url.trim_end_matches('/'), b.server.url);
            let uri = v[2].as_str().unwrap();
            assert!(uri.starts_with("botmox://"), "{uri}");
            assert!(uri.contains(text.trim_end_matches('=')), "{uri} lacks the bundle");
            assert!(!v[3].as_str().unwrap().is_empty(), "no expiry shown");
            let agent_href = v[4].as_str().unwrap().to_string();
            assert!(agent_href.starts_with("/console/agents/"), "{agent_href}");

            // the copy button: the clipboard holds the bundle, or (where
            // the clipboard is refused) the whole bundle is selected
            b.s.click_css("button[data-copy='#pairing-bundle']").await;
            let status = b.wait_text("#copy-status", T_PAGE, |t| !t.is_empty()).await;
            let sel = b
                .s
                .exec(
                    "const t = document.getElementById('pairing-bundle');
                     return [document.activeElement === t, t.selectionStart, t.selectionEnd, t.value.length];",
                    json!([]),
                )
                .await;
            assert_eq!(sel[0], json!(true), "{sel}");
            assert_eq!(sel[1], json!(0), "{sel}");
            assert_eq!(sel[2], sel[3], "not all of the bundle is selected: {sel}");
            if status == "Copied to the clipboard." {
                let clip = b
                    .s
                    .exec_async(
                        "const done = arguments[arguments.length - 1];
                         navigator.clipboard.readText().then(done, e => done('ERR ' + e));",
                        json!([]),
                    )
                    .await;
                assert_eq!(clip.as_str(), Some(text.as_str()), "clipboard");
            } else {
                assert_eq!(status, "Selected: press Ctrl+C to copy.");
                eprintln!("clipboard refused in this browser: the bundle was selected");
            }
            b.shot("pair-result").await;
            b.no_console_errors("pairing").await;

            // the code in the page's bundle registers the agent the page
            // links to (what `botmox-agent pair '<bundle>'` does first)
            let r = b
                .server
                .post(
                    "/api/v1/agents/register",
                    None,
                    json!({"pairing_code": bundle.pairing_code, "machine_name": "browser-host",
                           "version": "0.1.0", "platform": "linux", "capabilities": ["proxmox"]}),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            let agent_id = r.body["data"]["agent"]["id"].as_str().unwrap().to_string();
            assert_eq!(agent_href, format!("/console/agents/{agent_id}"));
            let token = r.body["data"]["agent_token"].as_str().unwrap().to_string();

            // back in the list (no reload from here on), the agent turns online live
            b.s.press(keys::ESCAPE).await;
            let row = format!("#agents-list a[href='/console/agents/{agent_id}']");
            b.s.wait_for(&row, T_LIVE).await;
            b.s.exec("window.__not_reloaded = true; return true;", json!([]))
                .await;
            let hb = b
                .server
                .post("/api/v1/agents/heartbeat", Some(&token), json!({}))
                .await;
            assert_eq!(hb.status, 200, "{}", hb.body);
            let badge = format!(
                "//a[@href='/console/agents/{agent_id}']/ancestor::tr//span[contains(@class,'badge')]"
            );
            let deadline = Instant::now() + T_LIVE;
            loop {
                let state = b
                    .s
                    .exec(
                        "const r = document.evaluate(arguments[0], document, null,
                           XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
                         return r ? r.textContent.trim() : null;",
                        json!([badge]),
                    )
                    .await;
                if state == json!("online") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the agent never turned online in the list (last: {state})"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let same = b.s.exec("return window.__not_reloaded === true;", json!([])).await;
            assert_eq!(same, json!(true), "the page reloaded instead of updating live");
            b.shot("agents-online").await;
            b.no_console_errors("agents live").await;
        }
        .boxed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ban_and_unban_a_bot() {
    let test = "ban_and_unban_a_bot";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    let admin = server.admin_token().await;
    seed_bots(&server, &admin).await;
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, |b| {
        async move {
            let password = b.server.admin_password.clone();
            b.sign_in("admin@localhost", &password).await;
            b.open("/console/bots/bot-a").await;
            assert_eq!(b.s.text_of("[data-testid=bot-status]").await, "farming");

            b.s.click_css("button[data-dialog='#ban']").await;
            b.s.wait_visible("#ban form", T_PAGE).await;
            // a date in the wrong format: the server's message at the field
            b.s.type_into("#b-date", "2026-03-15").await;
            b.s.set_value("#b-mech", "hardware_ban").await;
            b.s.type_into("#b-reason", "caught by the browser test")
                .await;
            b.s.click_css("#ban button[type=submit]").await;
            b.s.wait_for("#b-date[aria-invalid=true]", T_PAGE).await;
            let msg =
                b.s.exec(
                    "const el = document.getElementById('b-date');
                     const id = el.getAttribute('aria-describedby');
                     const m = id && document.getElementById(id);
                     return [m ? m.textContent : null, document.activeElement === el];",
                    json!([]),
                )
                .await;
            assert!(
                msg[0].as_str().is_some_and(|m| !m.is_empty()),
                "no message at the date field: {msg}"
            );
            assert_eq!(msg[1], json!(true), "the invalid field has no focus: {msg}");
            b.shot("bot-ban-error").await;
            b.axe("ban form with an error").await;
            // the server refused it (400): its failed fetch is the one
            // expected console entry
            let log = b.s.browser_log().await.unwrap();
            for e in log.iter().filter(|e| e["level"] == "SEVERE") {
                let m = e["message"].as_str().unwrap_or("");
                assert!(
                    m.contains("/lifecycle/ban") && m.contains("400"),
                    "unexpected console error: {m}"
                );
            }

            b.s.type_into("#b-date", "15.03.2026").await;
            b.s.click_css("#ban button[type=submit]").await;
            b.wait_text("[data-testid=bot-status]", T_PAGE, |t| t == "banned")
                .await;
            b.s.wait_for("#bot-log", T_PAGE).await;
            b.shot("bot-after-ban").await;
            b.no_console_errors("bot banned").await;
            let r = b.server.get("/api/v1/bots/bot-a", Some(&admin)).await;
            assert_eq!(r.body["data"]["status"], "banned", "{}", r.body);

            b.s.click_css("button[data-dialog='#unban']").await;
            b.s.wait_visible("#unban form", T_PAGE).await;
            b.s.click_css("#unban button[type=submit]").await;
            b.wait_text("[data-testid=bot-status]", T_PAGE, |t| t == "farming")
                .await;
            b.no_console_errors("bot unbanned").await;
            let r = b.server.get("/api/v1/bots/bot-a", Some(&admin)).await;
            assert_eq!(r.body["data"]["status"], "farming", "{}", r.body);
            let log = b.s.text_of("#bot-log").await.to_lowercase();
            assert!(log.contains("unban"), "lifecycle log: {log}");
        }
        .boxed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_operation_changes_the_chart() {
    let test = "finance_operation_changes_the_chart";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    let admin = server.admin_token().await;
    add_operation(&server, &admin, 3, "expense", "hosting", 50.0).await;
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, |b| {
        async move {
            let password = b.server.admin_password.clone();
            b.sign_in("admin@localhost", &password).await;
            b.open("/console/finance").await;
            let today = day(0);
            let bars = |b: &'_ Browser| {
                let s = b.s.clone();
                async move {
                    s.exec(
                        "return Array.from(document.querySelectorAll('#daily-chart rect.bar'))
                           .map(r => [r.getAttribute('data-day'), r.getAttribute('class'),
                                      Number(r.getAttribute('height'))]);",
                        json!([]),
                    )
                    .await
                }
            };
            let before = bars(b).await;
            assert_eq!(before.as_array().map(Vec::len), Some(1), "{before}");
            assert_eq!(before[0][0], json!(day(3)), "{before}");
            assert!(before[0][1].as_str().unwrap().contains("loss"), "{before}");

            b.s.click_css("button[data-dialog='#operation']").await;
            b.s.wait_visible("#operation form", T_PAGE).await;
            assert_eq!(
                b.s.attr("#o-date", "value").await.as_deref(),
                Some(today.as_str())
            );
            b.s.set_value("#o-type", "income").await;
            b.s.type_into("#o-cat", "browser-sale").await;
            b.s.type_into("#o-amount", "75.5").await;
            b.s.type_into("#o-desc", "sold through the console").await;
            b.s.click_css("#operation button[type=submit]").await;

            // the page reloads with today's gain in the chart and the list
            let deadline = Instant::now() + T_PAGE;
            let after = loop {
                let v = bars(b).await;
                if v.as_array().is_some_and(|a| a.len() == 2) {
                    break v;
                }
                assert!(Instant::now() < deadline, "the chart did not change: {v}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let new = after
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r[0] == json!(today))
                .unwrap_or_else(|| panic!("no bar for {today}: {after}"));
            assert!(new[1].as_str().unwrap().contains("gain"), "{after}");
            assert!(new[2].as_f64().unwrap() > 0.0, "{after}");
            let table = b.s.text_of("#operations-list").await;
            assert!(table.contains("browser-sale"), "{table}");
            assert!(table.contains("75.5"), "{table}");
            b.shot("finance-after-add").await;
            b.no_console_errors("finance").await;
            let r = b
                .server
                .get("/api/v1/finance/operations?q=browser-sale", Some(&admin))
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.body["meta"]["total"], 1, "{}", r.body);
        }
        .boxed()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_progresses_live() {
    let test = "command_progresses_live";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    let admin = server.admin_token().await;
    let (agent, agent_token) = pair_agent(&server, &admin).await;
    let hb = server
        .post("/api/v1/agents/heartbeat", Some(&agent_token), json!({}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    let c = dispatch(&server, &admin, &agent, "start", json!({"vmid": 101})).await;
    assert_eq!(c.status, 202, "{}", c.body);
    let id = c.body["data"]["id"].as_str().unwrap().to_string();
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, move |b| {
        async move {
            let password = b.server.admin_password.clone();
            b.sign_in("admin@localhost", &password).await;
            b.open(&format!("/console/commands/{id}")).await;
            b.wait_text("#live", T_LIVE, |t| t == "live").await;
            let status = "header.page .badge";
            assert_eq!(b.s.text_of(status).await, "queued");
            assert!(b.s.find("button[data-dialog='#cancel']").await.is_some());
            b.s.exec("window.__not_reloaded = true; return true;", json!([]))
                .await;

            // the agent takes it, runs it, writes output, finishes: the page
            // follows each step without a reload
            let s = &b.server;
            let n = s
                .get(
                    "/api/v1/vm-ops/commands/next?timeout_ms=5000",
                    Some(&agent_token),
                )
                .await;
            assert_eq!(n.status, 200, "{}", n.body);
            assert_eq!(n.body["data"]["id"], id.as_str());
            let patch = |body: serde_json::Value| {
                let path = format!("/api/v1/vm-ops/commands/{id}");
                let token = agent_token.clone();
                async move { s.call("PATCH", &path, Some(&token), Some(body)).await }
            };
            let r = patch(json!({"status": "running", "attempt": 1, "progress": {"pct": 10}})).await;
            assert_eq!(r.status, 200, "{}", r.body);
            b.wait_text(status, T_LIVE, |t| t == "running").await;
            // enough output that its box scrolls
            let chunks: Vec<_> = (0..60)
                .map(|i| json!({"seq": i, "stream": "stdout", "data": format!("step {i}: cloning disk\n")}))
                .collect();
            let r = s
                .post(
                    &format!("/api/v1/vm-ops/commands/{id}/output"),
                    Some(&agent_token),
                    json!({ "chunks": chunks }),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            b.wait_text("[data-testid=output]", T_LIVE, |t| t.contains("step 59"))
                .await;
            let r = patch(json!({"status": "succeeded", "attempt": 1, "result": {"upid": "UPID:pve:1"}})).await;
            assert_eq!(r.status, 200, "{}", r.body);
            b.wait_text(status, T_LIVE, |t| t == "succeeded").await;
            assert!(
                !b.s.visible("button[data-dialog='#cancel']").await,
                "a finished command still offers Cancel"
            );
            let same = b.s.exec("return window.__not_reloaded === true;", json!([])).await;
            assert_eq!(same, json!(true), "the page reloaded instead of updating live");
            assert!(b.s.text_of("#command").await.contains("UPID:pve:1"));
            b.check_page("command-succeeded").await;
        }
        .boxed()
    })
    .await;
}

/// A live page replaces its fragment while a test reads it (the command
/// page's refresh did, once, in CI): finding an element and reading its
/// text are two WebDriver calls, and an element swapped out between them
/// is found again instead of being read as "".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_of_reads_through_a_swapped_fragment() {
    let test = "text_of_reads_through_a_swapped_fragment";
    let Some((tools, server)) = server_for(test).await else {
        return;
    };
    let b = Browser::start(tools, server, 1280, 800).await;
    b.run(test, |b| {
        async move {
            let started =
                b.s.exec(
                    "const p = document.createElement('p');
                     p.id = 'swapped';
                     p.textContent = 'steady';
                     document.body.append(p);
                     window.__swaps = 0;
                     window.__swapper = setInterval(() => {
                         document.getElementById('swapped').replaceWith(p.cloneNode(true));
                         window.__swaps++;
                     }, 100);
                     return true;",
                    json!([]),
                )
                .await;
            assert_eq!(started, json!(true));
            for i in 0..100 {
                assert_eq!(b.s.text_of("#swapped").await, "steady", "read {i}");
            }
            let swaps =
                b.s.exec(
                    "clearInterval(window.__swapper); return window.__swaps;",
                    json!([]),
                )
                .await;
            // the element really was replaced under the reads, many times
            assert!(swaps.as_u64().unwrap() >= 5, "{swaps}");
        }
        .boxed()
    })
    .await;
}
