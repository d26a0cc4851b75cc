//! Console pages of users, API tokens, tenants and settings (fast ring):
//! each page for each role, the API's refusals rendered, a new API token's
//! value never in any page, api_keys masked for non-admins, and the field
//! paths the settings validator reports named by the settings forms.

use serde_json::{json, Value};

use crate::common::{Backend, TestServer, PASSWORD};
use crate::console::{assert_csp, assert_no_inline_code, assert_page, page, sign_in, Page};

backend_tests!(
    users_page_for_each_role,
    api_tokens_page_never_shows_a_token,
    tenants_page_is_for_infra_only,
    settings_page_for_each_role,
    settings_errors_name_the_page_fields,
);

const ADMIN: &str = "admin@localhost";

/// A page the API refuses with 403: HTML, strict CSP, no inline code.
#[track_caller]
fn assert_refused(p: &Page, path: &str) {
    assert_eq!(p.status, 403, "{path}: {}", p.html);
    assert!(p.header("content-type").starts_with("text/html"), "{path}");
    assert_csp(p, path);
    assert_no_inline_code(&p.html, path);
}

/// The HTML of one settings panel (`<section id="panel-<id>">`).
fn panel<'a>(p: &'a Page, id: &str) -> &'a str {
    let start = p
        .html
        .find(&format!(r#"id="panel-{id}""#))
        .unwrap_or_else(|| panic!("no panel {id}:\n{}", p.html));
    let rest = &p.html[start..];
    &rest[..rest.find("</section>").unwrap()]
}

async fn patch(s: &TestServer, path: &str, token: &str, body: Value) -> crate::common::Resp {
    s.call("PATCH", path, Some(token), Some(body)).await
}

async fn users_page_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (op_id, _) = s.user(&admin, "op@adm.test", "operator").await;
    let (viewer_id, _) = s.user(&admin, "viewer@adm.test", "viewer").await;
    // created through the API after the others: it shows up, disabled
    let (late_id, _) = s.user(&admin, "late@adm.test", "viewer").await;
    let r = patch(
        &s,
        &format!("/api/v1/users/{late_id}"),
        &admin,
        json!({"disabled": true}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let cookie = sign_in(&s, ADMIN, &s.admin_password).await;
    let p = page(&s, "/console/users", Some(&cookie)).await;
    assert_page(&p, "/console/users");
    p.has("<h1>Users</h1>")
        .has(r#"aria-current="page">Users"#)
        .has("op@adm.test")
        .has("viewer@adm.test")
        .has("late@adm.test")
        .has(r#"<span class="badge revoked">disabled</span>"#)
        .has(r#"<span class="badge operator">operator</span>"#)
        .has(r#"<span class="badge infra">infra</span>"#)
        .has(r#"<caption class="skip">"#)
        .has(r#"name="email""#)
        .has(r#"name="password""#)
        .has(r#"<select id="nu-role" name="role">"#);
    let forms = p.mutating_forms();
    assert!(forms.contains(&"/api/v1/users".to_string()), "{forms:?}");
    for id in [&op_id, &viewer_id, &late_id] {
        assert!(
            forms.contains(&format!("/api/v1/users/{id}")),
            "{id}: {forms:?}"
        );
    }
    // the admin cannot edit themselves: create + three edits, no more
    assert_eq!(forms.len(), 4, "{forms:?}");
    p.has("you cannot demote or disable yourself");

    // the list kit in the URL
    let p = page(&s, "/console/users?role=operator&sort=email", Some(&cookie)).await;
    assert_page(&p, "/console/users?role=operator");
    p.has("op@adm.test")
        .lacks("viewer@adm.test")
        .has(r#"<option value="operator" selected>"#);
    let p = page(&s, "/console/users?q=nobody", Some(&cookie)).await;
    assert_page(&p, "/console/users?q=nobody");
    p.has("No user matches these filters.");

    // operators and viewers: the API's refusal, inside the console
    for email in ["op@adm.test", "viewer@adm.test"] {
        let cookie = sign_in(&s, email, PASSWORD).await;
        let p = page(&s, "/console/users", Some(&cookie)).await;
        assert_refused(&p, "/console/users");
        p.has("<h1>Users</h1>")
            .has("Admins only")
            // the navigation offers admins' pages to admins only
            .lacks(r#"href="/console/users""#)
            .lacks("<table")
            .lacks("late@adm.test");
        assert!(
            p.mutating_forms().is_empty(),
            "{email}: {:?}",
            p.mutating_forms()
        );
    }
}

async fn api_tokens_page_never_shows_a_token(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@tok.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@tok.test", "viewer").await;

    // viewers may not create tokens (API): the page offers nothing
    let r = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&viewer),
            json!({"name": "nope"}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    let mut secrets = Vec::new();
    let mut ids = Vec::new();
    for (token, name) in [
        (&admin, "admin-ci"),
        (&operator, "op-ci"),
        (&operator, "op-old"),
    ] {
        let r = s
            .post(
                "/api/v1/auth/api-tokens",
                Some(token),
                json!({"name": name, "ttl_days": 30}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let secret = r.body["data"]["token"].as_str().unwrap().to_string();
        assert!(secret.starts_with("bmxk_"));
        ids.push(r.body["data"]["info"]["id"].as_str().unwrap().to_string());
        secrets.push(secret);
    }
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/auth/api-tokens/{}", ids[2]),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let op_cookie = sign_in(&s, "op@tok.test", PASSWORD).await;
    let p = page(&s, "/console/api-tokens", Some(&op_cookie)).await;
    assert_page(&p, "/console/api-tokens");
    p.has("<h1>API tokens</h1>")
        .has(r#"aria-current="page">API tokens"#)
        .has("op-ci")
        .has("op-old")
        .lacks("admin-ci")
        .has(r#"<span class="badge active">active</span>"#)
        .has(r#"<span class="badge revoked">revoked</span>"#)
        .has(r#"data-on-success="reveal:#new-token""#)
        .has(r#"<textarea id="new-token" class="bundle" data-reveal="token" readonly"#)
        .has(r##"data-copy="#new-token""##)
        .has(r#"id="new-token-panel" class="panel" aria-labelledby="h-new-token" data-reveal-panel hidden"#)
        .has("shown only this once")
        .has(r#"name="ttl_days""#);
    // the hint (first characters) helps recognise a token; never the token
    let hint = &secrets[1][..9];
    p.has(hint);
    assert_eq!(
        p.mutating_forms(),
        [
            format!("/api/v1/auth/api-tokens/{}", ids[1]),
            "/api/v1/auth/api-tokens".to_string()
        ],
        "revoke only the active one, then create"
    );

    let viewer_cookie = sign_in(&s, "viewer@tok.test", PASSWORD).await;
    let p = page(&s, "/console/api-tokens", Some(&viewer_cookie)).await;
    assert_page(&p, "/console/api-tokens");
    p.has("No API tokens yet.")
        .has("Operators and admins can create them.")
        .lacks("Create a token")
        .lacks("reveal:")
        .lacks("new-token-panel");
    assert!(p.mutating_forms().is_empty(), "{:?}", p.mutating_forms());

    // no token value in any console page, for anyone
    let admin_cookie = sign_in(&s, ADMIN, &s.admin_password).await;
    for cookie in [&admin_cookie, &op_cookie, &viewer_cookie] {
        for path in [
            "/console",
            "/console/users",
            "/console/api-tokens",
            "/console/settings",
            "/console/tenants",
        ] {
            let p = page(&s, path, Some(cookie)).await;
            assert!(p.status == 200 || p.status == 403, "{path}: {}", p.status);
            for secret in &secrets {
                p.lacks(secret);
            }
        }
    }
    let p = page(&s, "/console/api-tokens", Some(&admin_cookie)).await;
    p.has("admin-ci").lacks("op-ci");
}

async fn tenants_page_is_for_infra_only(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    s.tenant_with_admin(&infra, "acme").await;
    s.user(&infra, "op@ten.test", "operator").await;
    s.user(&infra, "viewer@ten.test", "viewer").await;

    let cookie = sign_in(&s, ADMIN, &s.admin_password).await;
    let p = page(&s, "/console/tenants", Some(&cookie)).await;
    assert_page(&p, "/console/tenants");
    p.has("<h1>Tenants</h1>")
        .has(r#"aria-current="page">Tenants"#)
        .has(r#"<td class="mono">acme</td>"#)
        .has(r#"<td class="mono">default <span class="badge">yours</span></td>"#)
        .has(r#"<caption class="skip">Tenants</caption>"#)
        .has(r#"name="admin.email""#)
        .has(r#"name="admin.password""#);
    assert_eq!(p.mutating_forms(), ["/api/v1/tenants"]);

    // the tenant's own admin (not infra), operators and viewers: 403, as the API
    for (email, password) in [
        ("admin@acme.test", PASSWORD),
        ("op@ten.test", PASSWORD),
        ("viewer@ten.test", PASSWORD),
    ] {
        let cookie = sign_in(&s, email, password).await;
        let p = page(&s, "/console/tenants", Some(&cookie)).await;
        assert_refused(&p, "/console/tenants");
        p.has("This page cannot be shown")
            .has("HTTP 403")
            .lacks("acme</td>");
        // and the navigation does not offer the page
        let p = page(&s, "/console/settings", Some(&cookie)).await;
        assert_page(&p, "/console/settings");
        p.lacks(r#"href="/console/tenants""#);
    }
    let p = page(&s, "/console/settings", Some(&cookie)).await;
    p.has(r#"href="/console/tenants""#);
}

const IPQS_SECRET: &str = "ipqs-secret-7f3a9";
const TG_SECRET: &str = "tg-secret-22b81";

async fn settings_page_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    s.user(&admin, "op@set.test", "operator").await;
    s.user(&admin, "viewer@set.test", "viewer").await;

    for (path, body) in [
        (
            "projects/wow_tbc",
            json!({"name": "Classic Farm", "max_level": 70, "gold_price_usd": 0.25,
                   "professions": ["mining", "herbalism"]}),
        ),
        ("alerts", json!({"warning_days": 14})),
        (
            "notifications/events",
            json!({"bot_banned": true, "daily_report": false}),
        ),
        (
            "storage_policy",
            json!({"secrets": "local-only", "operational": "cloud"}),
        ),
        (
            "theme",
            json!({"visual": {"enabled": true, "blurPx": 6}, "presets": {"p1": {"name": "Dusk"}}}),
        ),
        (
            "api_keys",
            json!({"ipqs": {"api_key": IPQS_SECRET, "enabled": true},
                   "telegram": {"bot_token": TG_SECRET, "chat_id": "chat-42"}}),
        ),
    ] {
        let r = patch(&s, &format!("/api/v1/settings/{path}"), &admin, body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    let r = s
        .call(
            "PUT",
            "/api/v1/settings/finance/chart_config",
            Some(&admin),
            Some(
                json!([{"key": "net", "name": "Net profit", "color": "#0a0", "type": "bar",
                         "yAxisId": "usd", "visible": true, "unit": "USD"}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let editable = [
        "/api/v1/settings/alerts",
        "/api/v1/settings/proxy",
        "/api/v1/settings/storage_policy",
        "/api/v1/settings/notifications/events",
        "/api/v1/settings/theme",
        "/api/v1/settings/finance",
        "/api/v1/settings/projects/wow_tbc",
        "/api/v1/settings/projects/wow_midnight",
    ];
    for (email, password, role) in [
        (ADMIN, s.admin_password.as_str(), "admin"),
        ("op@set.test", PASSWORD, "operator"),
        ("viewer@set.test", PASSWORD, "viewer"),
    ] {
        let cookie = sign_in(&s, email, password).await;
        let p = page(&s, "/console/settings", Some(&cookie)).await;
        assert_page(&p, "/console/settings");
        p.has("<h1>Settings</h1>")
            .has(r#"aria-current="page">Settings"#)
            .has("Project wow_tbc")
            .has("Project wow_midnight")
            .has("Net profit")
            .has("chat-42")
            .lacks(IPQS_SECRET)
            .lacks(TG_SECRET);
        let forms = p.mutating_forms();
        match role {
            "viewer" => {
                assert!(forms.is_empty(), "viewer: {forms:?}");
                p.lacks(r#"data-method="PATCH""#)
                    .has("<dd>Classic Farm</dd>")
                    .has("<dd>14</dd>")
                    .has("<dd>70</dd>")
                    .has("<dd>cloud</dd>")
                    .has("<dd>********</dd>")
                    .has("Operators and admins can change them.");
            }
            _ => {
                p.has(r#"name="name" type="text" value="Classic Farm""#)
                    .has(r#"name="warning_days" type="number" step="1" data-type="int" value="14""#)
                    .has(r#"name="max_level" type="number" step="1" data-type="int" value="70""#)
                    .has(r#"<option value="cloud" selected>cloud</option>"#)
                    .has(r#"name="visual.blurPx" type="number" step="any" data-type="number" value="6""#);
                let alerts = panel(&p, "alerts");
                assert!(alerts.contains(r#"data-method="PATCH""#), "{alerts}");
                let events = panel(&p, "events");
                assert!(
                    events.contains(r#"<option value="true" selected>yes</option>"#),
                    "{events}"
                );
                let mut want: Vec<String> = editable.iter().map(|s| s.to_string()).collect();
                if role == "admin" {
                    want.push("/api/v1/settings/api_keys/ipqs".into());
                    want.push("/api/v1/settings/api_keys/telegram".into());
                    p.has("A value is stored (hidden). Leave empty to keep it.");
                } else {
                    p.has("<dd>********</dd>");
                }
                assert_eq!(forms, want, "{role}");
            }
        }
    }
}

async fn settings_errors_name_the_page_fields(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let cookie = sign_in(&s, ADMIN, &s.admin_password).await;
    let p = page(&s, "/console/settings", Some(&cookie)).await;
    assert_page(&p, "/console/settings");

    // (API path, bad body, the page's panel that writes that path)
    let cases = [
        ("alerts", json!({"warning_days": 999}), "alerts"),
        ("proxy", json!({"fraud_score_threshold": 101}), "proxy"),
        (
            "storage_policy",
            json!({"operational": "mars", "sync": {"enabled": "x"}}),
            "storage",
        ),
        (
            "notifications/events",
            json!({"bot_banned": "yes"}),
            "events",
        ),
        (
            "theme",
            json!({"visual": {"overlayOpacity": 5}, "shape": {"radiusSm": 99},
                   "typography": {"fontMono": ""}}),
            "theme",
        ),
        (
            "finance",
            json!({"chart_config": {"not": "an array"}}),
            "chart",
        ),
        (
            "projects/wow_tbc",
            json!({"name": "", "max_level": 999, "gold_price_usd": -1, "professions": "x"}),
            "project0",
        ),
        (
            "api_keys/telegram",
            json!({"enabled": "x", "chat_id": 5}),
            "telegram",
        ),
    ];
    for (path, body, id) in cases {
        let r = patch(&s, &format!("/api/v1/settings/{path}"), &admin, body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let fields = r.body["error"]["details"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: {}", r.body));
        assert!(!fields.is_empty(), "{path}");
        let html = panel(&p, id);
        assert!(
            html.contains(&format!(r#"data-api="/api/v1/settings/{path}""#)),
            "{path}: {html}"
        );
        for field in fields.keys() {
            assert!(
                html.contains(&format!(r#"name="{field}""#)),
                "{path}: the server reports `{field}`, the form has no such field:\n{html}"
            );
        }
    }
}
