//! The web console (issue #14), fast ring (no browser): every page renders
//! for each role against a seeded database with its key elements, viewers
//! get no mutating control, the session cookie authenticates pages, the API
//! and the event stream, cookie writes without the CSRF header are refused,
//! sign-out revokes the session, the assets are immutable with a plain-text
//! 404, and every console response has the strict CSP.

use std::time::Duration;

use reqwest::header;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::bus::{dispatch, pair_agent};
use crate::common::{Backend, TestServer, PASSWORD};

backend_tests!(
    pages_render_for_each_role,
    cookie_session_csrf_and_sign_out,
    event_stream_works_with_the_cookie,
    assets_are_immutable_and_pages_have_a_strict_csp,
    bots_and_finance_pages_for_each_role,
    each_console_session_has_its_own_rate_limit_budget,
);

/// A browser-like client: no redirects followed, cookies passed by hand.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: header::HeaderMap,
    pub(crate) html: String,
}

impl Page {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[track_caller]
    pub(crate) fn has(&self, needle: &str) -> &Self {
        assert!(
            self.html.contains(needle),
            "page lacks {needle:?}:\n{}",
            self.html
        );
        self
    }

    #[track_caller]
    pub(crate) fn lacks(&self, needle: &str) -> &Self {
        assert!(
            !self.html.contains(needle),
            "page has {needle:?}:\n{}",
            self.html
        );
        self
    }

    /// The `content` of `<meta name="csrf-token">`.
    pub(crate) fn csrf(&self) -> String {
        let start = self.html.find(r#"name="csrf-token" content=""#).unwrap() + 27;
        self.html[start..start + 64].to_string()
    }

    /// `data-api` form targets other than sign-out: the page's mutating controls.
    pub(crate) fn mutating_forms(&self) -> Vec<String> {
        self.html
            .match_indices("data-api=\"")
            .map(|(i, m)| {
                let rest = &self.html[i + m.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .filter(|target| target != "/console/logout")
            .collect()
    }
}

/// Sign in through the console's form; returns the session cookie's value.
pub(crate) async fn sign_in(s: &TestServer, email: &str, password: &str) -> String {
    let r = post_form(
        s,
        "/console/login",
        &[
            ("email", email),
            ("password", password),
            ("next", "/console/agents"),
        ],
    )
    .await;
    assert_eq!(r.status().as_u16(), 303, "sign-in of {email}");
    assert_eq!(r.headers()[header::LOCATION], "/console/agents");
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let value = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("bmx_session=")
        .unwrap()
        .to_string();
    assert!(value.starts_with("bmxs_"), "{set}");
    value
}

pub(crate) async fn post_form(
    s: &TestServer,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    browser()
        .post(s.url(path))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn page(s: &TestServer, path: &str, cookie: Option<&str>) -> Page {
    let mut req = browser().get(s.url(path));
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("theme=dark; bmx_session={c}"));
    }
    let r = req.send().await.unwrap();
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        html: r.text().await.unwrap(),
    }
}

/// A console page that must render: 200, HTML, the strict CSP, no inline
/// script or style.
#[track_caller]
pub(crate) fn assert_page(p: &Page, path: &str) {
    assert_eq!(p.status, 200, "{path}: {}", p.html);
    assert!(
        p.header("content-type").starts_with("text/html"),
        "{path}: {}",
        p.header("content-type")
    );
    assert_csp(p, path);
    assert_no_inline_code(&p.html, path);
}

#[track_caller]
pub(crate) fn assert_csp(p: &Page, path: &str) {
    let csp = p.header("content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    assert!(csp.contains("style-src 'self'"), "{path}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{path}: {csp}");
}

/// Nothing the CSP would block: every `<script>` has a `src`, no `style`
/// attribute or element, no `on…=` handler, no `javascript:` URL.
#[track_caller]
pub(crate) fn assert_no_inline_code(html: &str, path: &str) {
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains(" src=\""), "{path}: inline script {tag}");
    }
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains(" style=\""), "{path}: style attribute");
    assert!(!lower.contains("<style"), "{path}: style element");
    assert!(!lower.contains("javascript:"), "{path}: javascript: URL");
    let handler = lower.match_indices(" on").any(|(i, _)| {
        let rest = &lower[i + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].starts_with('=')
    });
    assert!(!handler, "{path}: inline event handler");
}

async fn pages_render_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (op_id, operator) = s.user(&admin, "op@console.test", "operator").await;
    let (viewer_id, _) = s.user(&admin, "viewer@console.test", "viewer").await;

    // Seed: the admin's active agent with a command; an agent an admin
    // paired for the viewer; a pending pairing of the operator.
    let (agent, agent_token) = pair_agent(&s, &admin).await;
    let hb = s
        .post("/api/v1/agents/heartbeat", Some(&agent_token), json!({}))
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    let c = dispatch(&s, &admin, &agent, "start", json!({"vmid": 101})).await;
    assert_eq!(c.status, 202, "{}", c.body);
    let command = c.body["data"]["id"].as_str().unwrap().to_string();
    let viewers = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"name": "viewer-box", "owner_user_id": viewer_id}),
        )
        .await;
    assert_eq!(viewers.status, 201, "{}", viewers.body);
    let viewers_agent = viewers.body["data"]["agent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ops = s
        .post(
            "/api/v1/agents/pairings",
            Some(&operator),
            json!({"name": "op-box"}),
        )
        .await;
    assert_eq!(ops.status, 201, "{}", ops.body);
    let ops_agent = ops.body["data"]["agent"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ops.body["data"]["agent"]["owner_user_id"], op_id.as_str());

    // a running VM job of two VMs on the admin's agent
    let lic = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(lic.status, 201, "{}", lic.body);
    // a subscription about to run out: an alert on the admin's dashboard
    let in_3_days = chrono::Utc::now().timestamp_millis() + 3 * 86_400_000 - 60_000;
    let soon = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&admin),
            json!({"type": "subscription", "expires_at_ms": in_3_days}),
        )
        .await;
    assert_eq!(soon.status, 201, "{}", soon.body);
    let soon = soon.body["data"]["id"].as_str().unwrap().to_string();
    let profile = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&admin),
            json!({"name": "console-profile", "config": {
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
            json!({"agent_id": agent, "node": "pve-console", "template_vmid": 9000, "count": 2,
                   "profile_id": profile.body["data"]["id"]}),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.body);
    let job = job.body["data"]["id"].as_str().unwrap().to_string();

    // ---- admin ----
    let cookie = sign_in(&s, "admin@localhost", &s.admin_password).await;
    let p = page(&s, "/console", Some(&cookie)).await;
    assert_page(&p, "/console");
    p.has("<h1>Dashboard</h1>")
        .has(r#"data-testid="agent-counts""#)
        .has("Online")
        .has(r#"<span class="n">2</span><span class="badge pending">Pending pairing</span>"#)
        .has(r#"<span class="n">0</span><span class="badge revoked">Revoked</span>"#)
        .has("Running VM jobs")
        .has("Recent failed commands")
        .has(r#"data-testid="license-alerts""#)
        .has(&format!(r#"href="/console/licenses/{soon}""#))
        .has("expires in 3 days")
        .has(r#"<strong data-testid="role">admin</strong>"#)
        .has(r#"aria-current="page">Dashboard"#)
        .has("Sign out");
    assert!(p.mutating_forms().is_empty(), "{:?}", p.mutating_forms());

    let p = page(&s, "/console/agents", Some(&cookie)).await;
    assert_page(&p, "/console/agents");
    p.has("<h1>Agents</h1>")
        .has("Pair an agent")
        .has(r#"data-api="/api/v1/agents/pairings""#)
        .has(r#"id="pairing-bundle" class="bundle" readonly"#)
        .has(r##"data-copy="#pairing-bundle""##)
        .has("viewer-box")
        .has("op-box")
        .has(&format!(r#"href="/console/agents/{agent}""#))
        .has(r#"<label for="f-status">Status</label>"#);
    // filters are the list kit's query parameters
    let p = page(&s, "/console/agents?status=pending&q=op-", Some(&cookie)).await;
    assert_page(&p, "/console/agents?status=pending");
    p.has("op-box")
        .lacks("viewer-box")
        .has(r#"<option value="pending" selected>"#);
    let p = page(&s, "/console/agents?status=revoked", Some(&cookie)).await;
    p.has("No agent matches these filters.");
    // a query the list kit refuses is a page with the API's message
    let p = page(&s, "/console/agents?sort=bogus", Some(&cookie)).await;
    assert_eq!(p.status, 400);
    p.has("VALIDATION_ERROR").has("sort");

    let p = page(&s, &format!("/console/agents/{agent}"), Some(&cookie)).await;
    assert_page(&p, "agent");
    p.has("pve-runner")
        .has(r#"<span class="badge "#)
        .has("proxmox")
        .has("Recent commands")
        .has(&format!(r#"href="/console/commands/{command}""#))
        .has(&format!(r#"data-api="/api/v1/agents/{agent}/revoke""#))
        .has("Revoke the agent");

    let p = page(&s, "/console/commands", Some(&cookie)).await;
    assert_page(&p, "/console/commands");
    p.has("<h1>Commands</h1>")
        .has("proxmox.start")
        .has(r#"<span class="badge queued">queued</span>"#)
        // the dispatch form: the admin's active agent, the server's actions
        .has(r#"data-api="/api/v1/vm-ops/commands""#)
        .has(&format!(r#"<option value="{agent}">"#))
        .has(r#"<option value="proxmox.status" selected>"#)
        .has(r#"<option value="ssh.exec">"#)
        .has(r#"name="payload" data-type="json""#);
    // what the API refuses lands on a field of the form
    let bad = s
        .post(
            "/api/v1/vm-ops/commands",
            Some(&admin),
            json!({"agent_id": agent, "command_type": "proxmox.start", "payload": "x",
                   "expires_in_seconds": 1}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_fields_on_page(&bad.body, &p.html);

    // the VM-job wizard: every step's fields, the admin's agent and profile
    let p = page(&s, "/console/vm-jobs/new", Some(&cookie)).await;
    assert_page(&p, "/console/vm-jobs/new");
    p.has("<h1>New VM job</h1>")
        .has(r#"data-api="/api/v1/vm-jobs""#)
        .has(&format!(r#"<option value="{agent}">"#))
        .has("console-profile")
        .has(r#"name="idempotency_key""#)
        .has(r#"name="ip_plan.mode""#)
        .has(r#"name="names" data-type="lines""#);
    for legend in [
        "1. Agent and node",
        "2. Template",
        "3. VMs",
        "4. Profile and playbook",
        "5. Addresses",
        "6. Hardware",
        "7. Run",
    ] {
        p.has(&format!("<legend>{legend}"));
    }
    // each render has its own idempotency key (one job per submitted form)
    let again = page(&s, "/console/vm-jobs/new", Some(&cookie)).await;
    assert_ne!(idempotency_key(&p.html), idempotency_key(&again.html));
    // the API's field paths of a bad spec are controls of the wizard
    let bad = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            json!({"agent_id": agent, "node": "", "template_vmid": 5, "count": 0,
                   "name_prefix": "-x", "vmid_range": {"first": 300, "last": 200},
                   "ip_plan": {"mode": "pool", "cidr": "10.0.0.0/33", "gateway": "x",
                               "dns": ["nope"], "first": "1", "last": "2"},
                   "cores": 0, "memory": 1, "parallelism": 99,
                   "net0": {"vlan": 5000}, "disk_resize": {"size": "lots"},
                   "install_timeout_minutes": 0}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_fields_on_page(&bad.body, &p.html);
    let p = page(&s, &format!("/console/commands/{command}"), Some(&cookie)).await;
    assert_page(&p, "command");
    p.has("proxmox.start")
        .has("Timeline")
        .has("vmid")
        .has(": 101")
        .has(&format!(
            r#"data-api="/api/v1/vm-ops/commands/{command}/cancel""#
        ))
        .has("No output yet");
    let p = page(&s, "/console/vm-jobs", Some(&cookie)).await;
    assert_page(&p, "/console/vm-jobs");
    p.has("<h1>VM jobs</h1>")
        .has(r#"href="/console/vm-jobs/new""#)
        .has(&format!(r#"href="/console/vm-jobs/{job}""#))
        .has("pve-console");
    let p = page(&s, "/console/vm-jobs?status=completed", Some(&cookie)).await;
    p.has("No VM job matches these filters.");
    let p = page(&s, &format!("/console/vm-jobs/{job}"), Some(&cookie)).await;
    assert_page(&p, "VM job");
    p.has("pve-console")
        .has(r#"<progress max="2" value="0""#)
        .has("<th scope=\"col\">Step</th>")
        .has("<td>0</td>")
        .has("<td>1</td>")
        .has(&format!(r#"data-api="/api/v1/vm-jobs/{job}/cancel""#));
    let p = page(&s, "/console", Some(&cookie)).await;
    p.has(&format!(r#"href="/console/vm-jobs/{job}""#));
    let p = page(&s, "/console/commands/nonexistent", Some(&cookie)).await;
    assert_eq!(p.status, 404);
    p.has("COMMAND_NOT_FOUND");
    let p = page(&s, "/console/no-such-page", Some(&cookie)).await;
    assert_eq!(p.status, 404);
    p.has("Page not found");

    // ---- operator: may pair and cancel, may not revoke ----
    let cookie = sign_in(&s, "op@console.test", PASSWORD).await;
    let p = page(&s, "/console/agents", Some(&cookie)).await;
    assert_page(&p, "/console/agents");
    p.has("Pair an agent")
        .has("op-box")
        .lacks("viewer-box")
        .lacks("pve-runner")
        .has(r#"<strong data-testid="role">operator</strong>"#);
    let p = page(&s, &format!("/console/agents/{ops_agent}"), Some(&cookie)).await;
    assert_page(&p, "operator's agent");
    p.has("Withdraw pairing")
        .has(&format!(r#"data-api="/api/v1/agents/{ops_agent}""#))
        .lacks("/revoke");
    // the admin's agent is not theirs to see
    let p = page(&s, &format!("/console/agents/{agent}"), Some(&cookie)).await;
    assert_eq!(p.status, 404);
    p.has("AGENT_NOT_FOUND");
    let p = page(&s, "/console/commands", Some(&cookie)).await;
    p.has("No commands yet.")
        .has("Dispatch a command")
        .has("No active agent of yours.");
    let p = page(&s, &format!("/console/vm-jobs/{job}"), Some(&cookie)).await;
    assert_eq!(p.status, 404);
    // their only agent is still pending: nothing to run a job through
    let p = page(&s, "/console/vm-jobs/new", Some(&cookie)).await;
    assert_page(&p, "operator's wizard");
    p.has("No active agent of yours.")
        .lacks(&format!(r#"<option value="{agent}">"#))
        .lacks(r#"data-api="/api/v1/vm-jobs""#);

    // ---- viewer: sees, changes nothing ----
    let cookie = sign_in(&s, "viewer@console.test", PASSWORD).await;
    for path in [
        "/console".to_string(),
        "/console/agents".to_string(),
        format!("/console/agents/{viewers_agent}"),
        "/console/commands".to_string(),
        "/console/vm-jobs".to_string(),
    ] {
        let p = page(&s, &path, Some(&cookie)).await;
        assert_page(&p, &path);
        p.has(r#"<strong data-testid="role">viewer</strong>"#)
            .lacks("Pair an agent")
            .lacks(">Revoke</button>")
            .lacks("Revoke the agent")
            .lacks("Withdraw")
            .lacks("<dialog");
        assert!(
            p.mutating_forms().is_empty(),
            "{path}: {:?}",
            p.mutating_forms()
        );
    }
    let p = page(&s, "/console/agents", Some(&cookie)).await;
    p.has("viewer-box").lacks("op-box").lacks("pve-runner");
    page(&s, "/console/vm-jobs", Some(&cookie))
        .await
        .lacks("/console/vm-jobs/new");
    let p = page(&s, "/console/vm-jobs/new", Some(&cookie)).await;
    assert_eq!(p.status, 403);
    p.has("FORBIDDEN");
    // designed empty states
    page(&s, "/console/commands", Some(&cookie))
        .await
        .has("No commands yet.");
    page(&s, "/console", Some(&cookie))
        .await
        .has("No VM job is running.")
        .has("No failed commands.")
        .lacks("License alerts")
        .lacks("/console/licenses");
    s.stop().await;
}

/// Every field path of a validation error envelope is the `name` of a
/// control in the page (console.js puts the message next to it; a list
/// item's path `names[1]` lands on the list's control `names`).
#[track_caller]
pub(crate) fn assert_fields_on_page(envelope: &Value, html: &str) {
    assert_eq!(envelope["error"]["code"], "VALIDATION_ERROR", "{envelope}");
    let fields = envelope["error"]["details"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no field paths: {envelope}"));
    assert!(!fields.is_empty(), "{envelope}");
    for path in fields.keys() {
        let control = path.split('[').next().unwrap();
        assert!(
            html.contains(&format!(r#"name="{control}""#)),
            "the page has no control for {path:?} ({envelope})"
        );
    }
}

fn idempotency_key(html: &str) -> String {
    let at = html.find(r#"name="idempotency_key" value=""#).unwrap() + 30;
    html[at..at + 36].to_string()
}

async fn cookie_session_csrf_and_sign_out(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;

    // not signed in: pages send to the sign-in form and back
    let p = page(&s, "/console/agents?status=active", None).await;
    assert_eq!(p.status, 303);
    assert_eq!(
        p.header("location"),
        "/console/login?next=%2Fconsole%2Fagents%3Fstatus%3Dactive"
    );
    // the form, with the first-run hint naming the password file
    let p = page(&s, "/console/login", None).await;
    assert_page(&p, "/console/login");
    p.has(r#"<label for="email">E-mail</label>"#)
        .has(r#"<label for="password">Password</label>"#)
        .has(r#"id="first-run""#)
        .has("initial-admin-password");

    // a wrong password: the form again, with the server's message
    let r = post_form(
        &s,
        "/console/login",
        &[("email", "admin@localhost"), ("password", "wrong")],
    )
    .await;
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    let html = r.text().await.unwrap();
    assert!(html.contains("Email or password is incorrect"), "{html}");
    assert!(html.contains(r#"aria-invalid="true""#), "{html}");
    // a sign-in posted from another site is refused
    let r = browser()
        .post(s.url("/console/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .body(format!(
            "email=admin%40localhost&password={}",
            form_urlencoded::byte_serialize(s.admin_password.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    // `next` cannot leave the console
    let r = post_form(
        &s,
        "/console/login",
        &[
            ("email", "admin@localhost"),
            ("password", &s.admin_password),
            ("next", "https://evil.example/"),
        ],
    )
    .await;
    assert_eq!(r.headers()[header::LOCATION], "/console");

    // the cookie: HttpOnly, SameSite=Strict, the session's lifetime, not
    // Secure without TLS
    let r = post_form(
        &s,
        "/console/login",
        &[
            ("email", "admin@localhost"),
            ("password", &s.admin_password),
        ],
    )
    .await;
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set.contains("; HttpOnly"), "{set}");
    assert!(set.contains("; SameSite=Strict"), "{set}");
    assert!(set.contains("; Path=/"), "{set}");
    assert!(!set.contains("Secure"), "{set}");
    let max_age: i64 = set
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((12 * 3600 - 60..=12 * 3600).contains(&max_age), "{set}");
    let cookie = sign_in(&s, "admin@localhost", &s.admin_password).await;
    // signed in: the form sends on
    let p = page(&s, "/console/login?next=/console/commands", Some(&cookie)).await;
    assert_eq!(p.status, 303);
    assert_eq!(p.header("location"), "/console/commands");

    // the API accepts the cookie: reads need nothing more
    let api = |method: reqwest::Method, path: &str| {
        browser()
            .request(method, s.url(path))
            .header(header::COOKIE, format!("bmx_session={cookie}"))
    };
    let r = api(reqwest::Method::GET, "/api/v1/auth/whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let who: Value = r.json().await.unwrap();
    assert_eq!(who["data"]["email"], "admin@localhost");
    assert_eq!(who["data"]["source"], "session");

    // writes need the page's CSRF token
    let csrf = page(&s, "/console", Some(&cookie)).await.csrf();
    let pair =
        || api(reqwest::Method::POST, "/api/v1/agents/pairings").json(&json!({"name": "csrf-box"}));
    let refused = |r: reqwest::Response| async move {
        assert_eq!(r.status().as_u16(), 403);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "CSRF_TOKEN_INVALID", "{body}");
    };
    refused(pair().send().await.unwrap()).await;
    refused(
        pair()
            .header("x-csrf-token", "0".repeat(64))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // another session's token does not fit this one
    let other = sign_in(&s, "admin@localhost", &s.admin_password).await;
    let others_csrf = page(&s, "/console", Some(&other)).await.csrf();
    assert_ne!(others_csrf, csrf);
    refused(
        pair()
            .header("x-csrf-token", &others_csrf)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = pair().header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    assert!(created["data"]["pairing_bundle"].is_string());
    // nothing was created by the refused attempts
    let list = s.get("/api/v1/agents?name=csrf-box", Some(&admin)).await;
    assert_eq!(list.body["meta"]["total"], 1, "{}", list.body);
    // a bearer token needs no CSRF header (browsers do not send it on their own)
    let r = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"name": "bearer-box"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // an invalid cookie is a 401, as an invalid bearer token
    let r = browser()
        .get(s.url("/api/v1/auth/whoami"))
        .header(header::COOKIE, "bmx_session=bmxs_not-a-session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // sign-out needs the CSRF token too, then revokes the session
    refused(
        api(reqwest::Method::POST, "/console/logout")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = api(reqwest::Method::POST, "/console/logout")
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let clear = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        clear.starts_with("bmx_session=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["revoked"], true);
    let r = api(reqwest::Method::GET, "/api/v1/auth/whoami")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(page(&s, "/console", Some(&cookie)).await.status, 303);
    // the other session is untouched
    assert_page(&page(&s, "/console", Some(&other)).await, "/console");
    s.stop().await;
}

/// Read an event stream until `needle` shows up (20 s at most).
async fn read_until(r: &mut reqwest::Response, seen: &mut String, needle: &str) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(needle) {
            match r.chunk().await.expect("stream read") {
                Some(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                None => return false,
            }
        }
        true
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "no {needle:?} in the stream: {seen}"
    );
}

async fn event_stream_works_with_the_cookie(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let cookie = sign_in(&s, "admin@localhost", &s.admin_password).await;
    // what EventSource sends: the cookie, no Authorization header; and
    // what browsers send: Accept-Encoding (the stream is never compressed:
    // the encoder would hold events back)
    let r = reqwest::Client::new()
        .get(s.url("/api/v1/vm-ops/events"))
        .header(header::COOKIE, format!("bmx_session={cookie}"))
        .header(header::ACCEPT, "text/event-stream")
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers().get(header::CONTENT_ENCODING).is_none(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut r = r;
    let mut seen = String::new();
    read_until(&mut r, &mut seen, ": connected").await;
    // The stream re-verifies its credential every few seconds: still open
    // after that, it delivers an event.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"name": "sse-box"}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    read_until(&mut r, &mut seen, "event: agent.pairing_created").await;
    // signing out ends the stream (its session is re-verified)
    let csrf = page(&s, "/console", Some(&cookie)).await.csrf();
    let out = browser()
        .post(s.url("/console/logout"))
        .header(header::COOKIE, format!("bmx_session={cookie}"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while r.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session: {seen}");
    s.stop().await;
}

async fn assets_are_immutable_and_pages_have_a_strict_csp(b: Backend) {
    let s = TestServer::start(b).await;
    let p = page(&s, "/console/login", None).await;
    assert_page(&p, "/console/login");
    assert_eq!(p.header("cache-control"), "no-store");
    assert_eq!(p.header("x-frame-options"), "DENY");
    let start = p.html.find("/console/assets/").unwrap();
    let base = &p.html[start..start + "/console/assets/".len() + 16];
    assert!(base[16..].bytes().all(|b| b.is_ascii_hexdigit()), "{base}");

    let srv = &s;
    let get = |path: String| async move { browser().get(srv.url(&path)).send().await.unwrap() };
    for (file, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
        ("htmx.min.js", "text/javascript"),
    ] {
        let r = get(format!("{base}/{file}")).await;
        assert_eq!(r.status().as_u16(), 200, "{file}");
        assert_eq!(
            r.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable",
            "{file}"
        );
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
        let bytes = r.bytes().await.unwrap();
        assert!(bytes.len() > 1000, "{file} is {} bytes", bytes.len());
        if file == "htmx.min.js" {
            // the pinned release recorded in docs/dependencies.md
            assert_eq!(
                hex::encode(Sha256::digest(&bytes)),
                "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
            );
        }
    }
    // gzip when asked for, the same bytes once decompressed; not when not asked
    let js = format!("{base}/console.js");
    let plain = get(js.clone()).await;
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain = plain.bytes().await.unwrap();
    let gz = browser()
        .get(s.url(&js))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
    let packed = gz.bytes().await.unwrap();
    assert!(
        packed.len() < plain.len() / 2,
        "{} of {}",
        packed.len(),
        plain.len()
    );
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&packed[..]),
        &mut unpacked,
    )
    .unwrap();
    assert_eq!(unpacked, plain);
    // unknown file, another build's hash: plain-text 404
    for path in [
        format!("{base}/nope.js"),
        format!("{base}/sub/console.js"),
        "/console/assets/0000000000000000/console.js".to_string(),
    ] {
        let r = get(path.clone()).await;
        assert_eq!(r.status().as_u16(), 404, "{path}");
        assert!(
            r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{path}"
        );
        assert_ne!(
            r.headers()
                .get(header::CACHE_CONTROL)
                .map(|v| v.to_str().unwrap()),
            Some("public, max-age=31536000, immutable"),
            "{path}"
        );
        assert_eq!(r.text().await.unwrap(), "Not found\n");
    }
    // the API keeps its own policy
    let r = get("/api/v1/health/live".into()).await;
    assert_eq!(
        r.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    s.stop().await;
}

/// `YYYY-MM-DD` and epoch milliseconds of noon UTC `days_ago` days ago.
fn day(days_ago: i64) -> (String, i64) {
    let d = chrono::Utc::now().date_naive() - chrono::Days::new(days_ago as u64);
    let noon = d
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_millis();
    (d.format("%Y-%m-%d").to_string(), noon)
}

async fn bots_and_finance_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    s.user(&admin, "op@bf.test", "operator").await;
    s.user(&admin, "viewer@bf.test", "viewer").await;

    // Bots: Alpha farming; Bravo leveling → profession, then banned.
    for body in [
        json!({"id": "bot-a", "name": "Alpha", "project_id": "wow_tbc", "status": "farming",
               "character": {"name": "Thrall", "level": 60, "class": "shaman", "server": "Firemaw"}}),
        json!({"id": "bot-b", "name": "Bravo", "project_id": "wow_midnight", "status": "leveling"}),
    ] {
        let r = s.post("/api/v1/bots", Some(&admin), body).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = s
        .post(
            "/api/v1/bots/bot-b/lifecycle/transition",
            Some(&admin),
            json!({"status": "profession"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/v1/bots/bot-b/lifecycle/ban",
            Some(&admin),
            json!({"ban_date": "15.03.2026", "ban_reason": "caught farming", "ban_mechanism": "hardware_ban"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Finance: operations on three days of the chart's window (today: a
    // gain, two days ago: a loss, five days ago: a gain) and one older.
    let ops = [
        (0, "income", "sales", 100.0, "USD"),
        (0, "expense", "proxies", 30.0, "USD"),
        (2, "expense", "hosting", 50.0, "USD"),
        (5, "income", "sale", 20.0, "gold"),
        (40, "income", "ancient", 7.0, "USD"),
    ];
    for (ago, kind, category, amount, currency) in ops {
        let mut body = json!({"type": kind, "category": category, "amount": amount,
                              "currency": currency, "date": day(ago).1, "bot_id": "bot-a"});
        if currency == "gold" {
            // sold at a recorded price: the gold price chart's one day
            body["gold_price_at_time"] = json!(0.0125);
        }
        let r = s
            .post("/api/v1/finance/operations", Some(&admin), body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    for (email, password, role) in [
        ("admin@localhost", s.admin_password.as_str(), "admin"),
        ("op@bf.test", PASSWORD, "operator"),
        ("viewer@bf.test", PASSWORD, "viewer"),
    ] {
        let acts = role != "viewer";
        let cookie = sign_in(&s, email, password).await;

        // ---- bots list, with the list kit's filters in the URL
        let p = page(&s, "/console/bots", Some(&cookie)).await;
        assert_page(&p, "/console/bots");
        p.has("<h1>Bots</h1>")
            .has(r#"aria-current="page">Bots"#)
            .has(r#"href="/console/bots/bot-a">Alpha"#)
            .has(r#"href="/console/bots/bot-b">Bravo"#)
            .has("Thrall · shaman · Firemaw")
            .has(r#"<span class="badge banned">banned</span>"#);
        assert!(
            p.mutating_forms().is_empty(),
            "{role}: {:?}",
            p.mutating_forms()
        );
        let p = page(&s, "/console/bots?status=banned&sort=name", Some(&cookie)).await;
        assert_page(&p, "/console/bots?status=banned");
        p.has("Bravo")
            .lacks("Alpha")
            .has(r#"<option value="banned" selected>"#);
        let p = page(&s, "/console/bots?q=nobody", Some(&cookie)).await;
        p.has("No bot matches these filters.");

        // ---- a bot: details, actions for operators, lifecycle log
        let p = page(&s, "/console/bots/bot-a", Some(&cookie)).await;
        assert_page(&p, "bot-a");
        p.has("<h1>Alpha</h1>")
            .has("<dd>Thrall</dd>")
            .has("<dd>60</dd>")
            .has("Lifecycle log")
            .has("Nothing logged yet.");
        let forms = p.mutating_forms();
        if acts {
            assert_eq!(
                forms,
                [
                    "/api/v1/bots/bot-a/lifecycle/transition",
                    "/api/v1/bots/bot-a/lifecycle/ban"
                ],
                "{role}"
            );
            // the current status and `banned` are not transition targets
            p.has(r#"<option value="leveling">leveling</option>"#)
                .lacks(r#"<option value="farming">"#)
                .lacks(r#"<option value="banned">"#)
                .has(r#"<option value="hardware_ban">hardware ban</option>"#)
                .has(r#"name="ban_date""#);
        } else {
            assert!(forms.is_empty(), "viewer: {forms:?}");
            p.lacks("Change status").lacks("Ban the bot");
        }
        let p = page(&s, "/console/bots/bot-b", Some(&cookie)).await;
        assert_page(&p, "bot-b");
        p.has(r#"<span class="badge banned" data-testid="bot-status">banned</span>"#)
            .has("<dd>hardware ban</dd>")
            .has("<dd>caught farming</dd>")
            .has("<dd>profession</dd>")
            .has(r#"id="bot-log""#)
            .has("<td>status change</td>")
            .has("<td>ban</td>");
        if acts {
            assert_eq!(
                p.mutating_forms(),
                ["/api/v1/bots/bot-b/lifecycle/unban"],
                "{role}"
            );
        } else {
            assert!(p.mutating_forms().is_empty());
            p.lacks("Unban");
        }
        let p = page(&s, "/console/bots/no-such-bot", Some(&cookie)).await;
        assert_eq!(p.status, 404, "{}", p.html);
        p.has("BOT_NOT_FOUND");

        // ---- the archive: the banned bot's snapshot and ban
        let p = page(&s, "/console/bots/archive", Some(&cookie)).await;
        assert_page(&p, "/console/bots/archive");
        p.has("<h1>Bot archive</h1>")
            .has(r#"<a href="/console/bots/bot-b">Bravo</a>"#)
            .has("<td>15.03.2026</td>")
            .has("<td>hardware ban</td>")
            .has("<td>caught farming</td>")
            .lacks("Alpha");
        assert!(p.mutating_forms().is_empty(), "{role}");
        page(&s, "/console/bots", Some(&cookie))
            .await
            .has(r#"href="/console/bots/archive""#);
        page(&s, "/console/bots/archive?q=nobody", Some(&cookie))
            .await
            .has("No archived bot matches these filters.");

        // ---- finance: the chart has one bar per day with operations
        let p = page(&s, "/console/finance", Some(&cookie)).await;
        assert_page(&p, "/console/finance");
        p.has("<h1>Finance</h1>")
            .has(r#"aria-current="page">Finance"#)
            .has(r#"<svg class="chart" id="daily-chart""#)
            .has(&format!("to {} (UTC)", day(0).0))
            .has("ancient")
            .has("100.00 USD")
            .has("20.00 gold");
        assert_eq!(p.html.matches("<rect class=\"bar ").count(), 4, "{role}");
        // the gold price chart: the day of the gold sold at a price
        p.has(r#"<svg class="chart" id="gold-chart""#)
            .has(&format!(r#"class="bar gold" data-day="{}""#, day(5).0))
            .has(&format!("{}: 0.0125 USD per gold", day(5).0));
        assert_eq!(p.html.matches("<rect class=\"bar gold\"").count(), 1);
        assert_eq!(p.html.matches("<rect class=\"bar gain\"").count(), 2);
        assert_eq!(p.html.matches("<rect class=\"bar loss\"").count(), 1);
        p.has(&format!(r#"class="bar gain" data-day="{}""#, day(0).0))
            .has(&format!(r#"class="bar loss" data-day="{}""#, day(2).0))
            .has(&format!(r#"class="bar gain" data-day="{}""#, day(5).0))
            .has(&format!(
                "{}: net 70.00 (revenue 100.00, expenses 30.00, 1 active bots)",
                day(0).0
            ))
            .lacks(&format!(r#"data-day="{}""#, day(40).0));
        if acts {
            assert_eq!(p.mutating_forms(), ["/api/v1/finance/operations"], "{role}");
            p.has("Add an operation")
                .has(r#"name="amount" type="number" step="any" min="0" data-type="number""#)
                .has(&format!(r#"data-type="date" value="{}""#, day(0).0));
        } else {
            assert!(p.mutating_forms().is_empty(), "viewer");
            p.lacks("Add an operation");
        }
        let p = page(
            &s,
            "/console/finance?type=expense&sort=date&order=asc",
            Some(&cookie),
        )
        .await;
        assert_page(&p, "/console/finance?type=expense");
        p.has("hosting")
            .has("proxies")
            .lacks("ancient")
            .has(r#"<option value="expense" selected>"#);
        assert!(p.html.find("hosting").unwrap() < p.html.find("proxies").unwrap());
        let p = page(&s, "/console/finance?type=bogus", Some(&cookie)).await;
        assert_eq!(p.status, 400);
        p.has("VALIDATION_ERROR");
    }

    // An operation added through the API (what the form posts) adds a bar.
    let r = s
        .post(
            "/api/v1/finance/operations",
            Some(&admin),
            json!({"type": "income", "category": "late", "amount": 5, "currency": "USD",
                   "date": format!("{}T00:00:00Z", day(9).0)}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cookie = sign_in(&s, "viewer@bf.test", PASSWORD).await;
    let p = page(&s, "/console/finance", Some(&cookie)).await;
    // four net-profit bars now, and still the one gold price bar
    assert_eq!(p.html.matches("<rect class=\"bar ").count(), 5);
    assert_eq!(p.html.matches("<rect class=\"bar gold\"").count(), 1);
    p.has(&format!(r#"data-day="{}""#, day(9).0));
    s.stop().await;
}

/// Cookie requests are budgeted per session, as bearer tokens are, not per
/// IP: one session spending its budget does not lock out another user's
/// session from the same address (an office behind one NAT).
async fn each_console_session_has_its_own_rate_limit_budget(b: Backend) {
    let s = TestServer::start_with(
        b,
        control_server::config::Settings {
            api_rate_limit_per_minute: Some(5),
            public_rate_limit_per_minute: Some(100),
            ..crate::common::base_settings()
        },
        axum::Router::new(),
    )
    .await;
    let admin = s.admin_token().await;
    s.user(&admin, "op@budget.test", "operator").await;
    let first = sign_in(&s, "op@budget.test", PASSWORD).await;
    let second = sign_in(&s, "op@budget.test", PASSWORD).await;
    let get = |cookie: String| {
        let req = browser()
            .get(s.url("/api/v1/agents"))
            .header(header::COOKIE, format!("bmx_session={cookie}"));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(get(first.clone()).await);
    }
    assert!(
        statuses.contains(&429),
        "the first session ran out: {statuses:?}"
    );
    assert_eq!(
        get(second.clone()).await,
        200,
        "the second session has its own budget"
    );
    s.stop().await;
}
