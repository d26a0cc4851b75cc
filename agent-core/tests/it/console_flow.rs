//! The web console end to end with real parts only (issue #14): headless
//! Chromium (WebDriver) against the REAL control-server (HTTPS, self-signed,
//! HTTP/2), the REAL `botmox-agent` binary and pve-sim.
//!
//! Sign in through the form → pair an agent in the page → the bundle copied
//! from the page's read-only field is what `botmox-agent pair` is given →
//! `botmox-agent run` → the agent turns online in the list live → an
//! unattend profile is created in the editor: the server's validation error
//! shows on its field (in its tab), is fixed, the profile saved → a 3-VM job
//! is created through the wizard → the job page follows the steps live (no
//! reload) to completion while the test plays the guests.
//!
//! Skipped with a message without Chromium/chromedriver, except under
//! `CI=true` (a failure then). Runs in the nextest `browser` group.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use botmox_webdriver::chromium::{self, Chromium};
use botmox_webdriver::{keys, shot, Session};
use serde_json::{json, Value};

use crate::runtime::{sim, Agent, Server};
use crate::vm_jobs::{drive_guests, events, steps_of, ORDER};

const T_PAGE: Duration = Duration::from_secs(15);
const T_LIVE: Duration = Duration::from_secs(30);

/// Waits until `js` (a function body returning a value) returns something
/// `ok` accepts; returns it.
async fn wait_js(
    s: &Session,
    what: &str,
    js: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = s.exec(js, json!([])).await;
        if ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last {v}; page:\n{}",
            s.body_text().await
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A non-blank screenshot `<name>.png` in the artifacts; with
/// `BOTMOX_UPDATE_DOC_IMAGES=1` also in docs/img/console/ when the user
/// guide shows it.
async fn shot(s: &Session, dir: &std::path::Path, name: &str) {
    tokio::time::sleep(Duration::from_millis(250)).await;
    let p = s.save_screenshot(dir, &format!("{name}.png")).await;
    shot::assert_not_blank(&p);
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let shown = std::fs::read_to_string(docs.join("user-guide.md"))
        .unwrap()
        .contains(&format!("(img/console/{name}.png)"));
    if shown && std::env::var("BOTMOX_UPDATE_DOC_IMAGES").is_ok_and(|v| v == "1") {
        let docs = docs.join("img/console");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&p, docs.join(format!("{name}.png"))).unwrap();
    }
}

/// Sets a `<select>` or `<input>` by id and says so to the page's listeners.
async fn set_field(s: &Session, id: &str, value: &str) {
    let found = s
        .exec(
            "const el = document.getElementById(arguments[0]);
             if (!el) return false;
             el.value = arguments[1];
             el.dispatchEvent(new Event('input', {bubbles: true}));
             el.dispatchEvent(new Event('change', {bubbles: true}));
             return el.value === arguments[1];",
            json!([id, value]),
        )
        .await;
    assert_eq!(found, json!(true), "#{id} = {value:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_profile_and_a_3_vm_job_through_the_console() {
    let test = "pair_profile_and_a_3_vm_job_through_the_console";
    let Some(tools) = chromium::preflight(test, false) else {
        return;
    };
    let sim = sim().await;
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(600));
    let mut server = Server::start("self-signed", 120).await;
    server.login().await;
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/tenant-licenses",
            Some(json!({"type": "perpetual"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");

    let art = chromium::artifacts_dir("console-flow");
    let chrome = Chromium::start(&tools, 1280, 800, &art).await;
    let s = chrome.session.clone();
    let outcome = {
        let (s, server, sim, art) = (&s, &server, &sim, &art);
        futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async move {
            flow(s, server, sim, art).await;
        }))
        .await
    };
    if outcome.is_err() {
        if let Ok(png) =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(s.screenshot()))
                .await
        {
            let _ = std::fs::write(art.join(format!("failure-{test}.png")), png);
        }
        if let Ok(src) =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(s.source())).await
        {
            let _ = std::fs::write(art.join(format!("failure-{test}.html")), src);
        }
        eprintln!("artifacts in {}", art.display());
    }
    s.close().await;
    drop(chrome);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e);
    }
    sim.assert_no_violations();
}

async fn flow(s: &Session, server: &Server, sim: &pve_sim::PveSim, art: &std::path::Path) {
    let url = |path: &str| format!("{}{path}", server.url);

    // ---- sign in (HTTPS with the server's self-signed certificate)
    s.goto(&url("/console")).await;
    s.wait_visible("#email", T_PAGE).await;
    s.type_into("#email", "admin@localhost").await;
    s.type_into("#password", &server.admin_password).await;
    s.click_css("form button[type=submit]").await;
    wait_js(
        s,
        "dashboard",
        "return document.querySelector('h1') && document.querySelector('h1').textContent;",
        T_PAGE,
        |v| v == "Dashboard",
    )
    .await;

    // ---- pair an agent in the page; the bundle goes to `botmox-agent pair`
    s.goto(&url("/console/agents")).await;
    wait_js(
        s,
        "live indicator",
        "return document.getElementById('live').textContent;",
        T_LIVE,
        |v| v == "live",
    )
    .await;
    s.click_css("#pair-open").await;
    s.wait_visible("#pair-form", T_PAGE).await;
    s.type_into("#p-name", "console-flow-box").await;
    s.click_css("#pair-form button[type=submit]").await;
    s.wait_visible("#pairing-result", T_PAGE).await;
    let v = s
        .exec(
            "return [document.getElementById('pairing-bundle').value,
                     document.getElementById('pairing-agent').getAttribute('href')];",
            json!([]),
        )
        .await;
    let bundle = v[0].as_str().unwrap().to_string();
    let agent_id = v[1]
        .as_str()
        .unwrap()
        .strip_prefix("/console/agents/")
        .unwrap()
        .to_string();
    shot(s, art, "flow-pairing").await;
    let mut agent = Agent::new();
    let (code, out, err) = agent.cli_async(&["pair", &bundle], None).await;
    assert_eq!(
        code, 0,
        "botmox-agent pair <the page's bundle>: {out} {err}"
    );
    assert!(out.contains(&agent_id), "{out}");
    agent.add_sim_target(sim).await;
    agent.spawn_run();

    // ---- the agent turns online in the list, live (no reload)
    s.press(keys::ESCAPE).await;
    s.exec("window.__not_reloaded = true; return true;", json!([]))
        .await;
    let badge = format!(
        "const a = document.querySelector(\"#agents-list a[href='/console/agents/{agent_id}']\");
         const b = a && a.closest('tr').querySelector('.badge');
         return b ? b.textContent.trim() : null;"
    );
    wait_js(
        s,
        "the paired agent online in the list",
        &badge,
        T_LIVE,
        |v| v == "online",
    )
    .await;
    let same = s
        .exec("return window.__not_reloaded === true;", json!([]))
        .await;
    assert_eq!(
        same,
        json!(true),
        "the agents page reloaded instead of updating live"
    );
    shot(s, art, "flow-agent-online").await;

    // ---- an unattend profile, through the editor
    let profile = create_profile(s, server, art).await;

    // ---- a 3-VM job through the wizard
    s.goto(&url("/console/vm-jobs/new")).await;
    s.wait_visible("#job-form", T_PAGE).await;
    set_field(s, "j-agent", &agent_id).await;
    s.type_into("#j-node", sim.node()).await;
    s.type_into("#j-template", "9000").await;
    s.type_into("#j-count", "3").await;
    s.type_into("#j-prefix", "flow").await;
    set_field(s, "j-profile", &profile).await;
    s.type_into("#j-cores", "2").await;
    shot(s, art, "flow-wizard").await;
    s.click_css("#job-form button[type=submit]").await;
    let job_url = wait_js(
        s,
        "the job's page after creating it",
        "return location.pathname;",
        T_PAGE,
        |v| {
            v.as_str()
                .is_some_and(|p| p.starts_with("/console/vm-jobs/") && !p.ends_with("/new"))
        },
    )
    .await;
    let job_id = job_url
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    s.wait_for("#job table tbody tr", T_PAGE).await;

    // ---- the steps advance live while the test plays the guests
    s.exec("window.__not_reloaded = true; return true;", json!([]))
        .await;
    let watch = async {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let v = s
                .exec(
                    "const rows = [...document.querySelectorAll('#job tbody tr')];
                     return {status: document.querySelector('#job header .badge').textContent.trim(),
                             steps: rows.map(r => r.querySelector('.badge').textContent.trim())};",
                    json!([]),
                )
                .await;
            for step in v["steps"].as_array().unwrap() {
                seen.insert(step.as_str().unwrap().to_string());
            }
            if v["status"] == "completed" {
                assert_eq!(v["steps"], json!(["done", "done", "done"]), "{v}");
                return seen;
            }
            assert!(
                v["status"] != "failed" && v["status"] != "cancelled",
                "the job ended {v}"
            );
            assert!(
                Instant::now() < deadline,
                "the page never showed the job completed: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (j, seen) = tokio::join!(
        drive_guests(
            server,
            sim.data_dir(),
            &job_id,
            &profile,
            Duration::from_secs(240)
        ),
        watch
    );
    assert_eq!(j["status"], "completed", "{j:#}");
    let same = s
        .exec("return window.__not_reloaded === true;", json!([]))
        .await;
    assert_eq!(
        same,
        json!(true),
        "the job page reloaded instead of updating live"
    );
    // the page showed the VMs on their way, not just the end
    let between: Vec<&String> = seen
        .iter()
        .filter(|step| ORDER.contains(&step.as_str()) && *step != "done")
        .collect();
    assert!(between.len() >= 2, "the page showed only {seen:?}");
    let progress = s
        .exec(
            "const p = document.querySelector('#job progress'); return [p.value, p.max];",
            json!([]),
        )
        .await;
    assert_eq!(progress, json!([3, 3]));
    shot(s, art, "flow-job-completed").await;
    // each VM links to its page: the guest's steps as it reported them
    s.click_css("#job tbody tr:first-child td:nth-child(2) a")
        .await;
    wait_js(
        s,
        "the first VM's page",
        "return location.pathname;",
        T_PAGE,
        |v| v.as_str().is_some_and(|p| p.starts_with("/console/vms/")),
    )
    .await;
    let v = wait_js(
        s,
        "the guest's progress on the VM's page",
        "const st = document.querySelector('[data-testid=progress-state]');
         return st ? [st.textContent, [...document.querySelectorAll('#vm-progress tbody tr td:first-child')]
                       .map(td => td.textContent)] : null;",
        T_PAGE,
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(
        v,
        json!([
            "completed",
            ["network_configured", "windows_installed", "completed"]
        ]),
        "{v}"
    );
    // what the page showed is what the server recorded: every VM through
    // every step in order
    for (idx, steps) in steps_of(&events(server, &job_id).await) {
        assert_eq!(steps, ORDER, "item {idx}");
    }
    // the only error the browser may have logged: the refused profile (the
    // network log of the 400 the form showed at the field)
    let log = s.browser_log().await.unwrap();
    let errors: Vec<&Value> = log
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| {
            !(e["source"] == "network"
                && e["message"].as_str().is_some_and(|m| {
                    m.contains("/api/v1/unattend-profiles - ") && m.contains("status of 400")
                }))
        })
        .collect();
    assert!(
        errors.is_empty(),
        "errors in the browser's console: {errors:?}"
    );
    agent.sigterm();
    agent.wait_exit(Duration::from_secs(20)).await;
}

/// Creates a profile through the editor: the server refuses a computer
/// name that is too long, the message lands on its field in its tab (the
/// form was left on another tab), the name is fixed and the profile saved.
/// Returns its id.
async fn create_profile(s: &Session, server: &Server, art: &std::path::Path) -> String {
    s.goto(&format!("{}/console/unattend-profiles/new", server.url))
        .await;
    s.wait_visible("#profile-form", T_PAGE).await;
    s.type_into("#f-name", "farm").await;
    set_field(s, "f-config-user-nameMode", "custom").await;
    s.type_into("#f-config-user-customName", "farmer").await;
    s.type_into("#f-config-user-password", "S3cret-pw").await;
    s.click_css("#tab-computer").await;
    s.wait_visible("#f-config-computerName-mode", T_PAGE).await;
    set_field(s, "f-config-computerName-mode", "custom").await;
    s.type_into("#f-config-computerName-customName", "FARM-NAME-TOO-LONG")
        .await;
    // back on the first tab: the error must bring the computer tab back
    s.click_css("#tab-user").await;
    s.click_css("#profile-form button[type=submit]").await;
    let v = wait_js(
        s,
        "the computer name's error on its field, in its tab",
        "const el = document.getElementById('f-config-computerName-customName');
         const msg = el.getAttribute('aria-describedby') || '';
         const id = msg.split(' ').find(x => x.startsWith('err-'));
         return el.getAttribute('aria-invalid') === 'true'
           ? [document.getElementById('tab-computer').getAttribute('aria-selected'),
              document.activeElement === el,
              id ? document.getElementById(id).textContent : null,
              location.pathname]
           : null;",
        T_PAGE,
        |v| !v.is_null(),
    )
    .await;
    assert_eq!(v[0], "true", "the computer tab was not selected: {v}");
    assert_eq!(v[1], true, "the invalid field has no focus: {v}");
    assert!(v[2].as_str().is_some_and(|m| m.contains("15")), "{v}");
    assert_eq!(v[3], "/console/unattend-profiles/new", "{v}");
    shot(s, art, "flow-profile-error").await;
    // fixed in the form, saved: the editor of the new profile opens
    set_field(s, "f-config-computerName-customName", "FARM-PC").await;
    s.click_css("#profile-form button[type=submit]").await;
    let path = wait_js(
        s,
        "the new profile's editor",
        "return location.pathname;",
        T_PAGE,
        |v| {
            v.as_str().is_some_and(|p| {
                p.starts_with("/console/unattend-profiles/") && !p.ends_with("/new")
            })
        },
    )
    .await;
    let id = path
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let (st, b) = server
        .call("GET", &format!("/api/v1/unattend-profiles/{id}"), None)
        .await;
    assert_eq!(st, 200, "{b}");
    let c = &b["data"]["config"];
    assert_eq!(b["data"]["name"], "farm", "{b}");
    assert_eq!(c["computerName"]["customName"], "FARM-PC", "{b}");
    assert_eq!(c["user"]["customName"], "farmer", "{b}");
    id
}
