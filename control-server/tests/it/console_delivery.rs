//! The console's delivery pages (issue #14): licenses and entitlements,
//! artifacts, secrets metadata and the VM registry render for each role
//! with data seeded through the API; the API's role rules hold (licensing
//! and artifacts are admin-only: other roles get its refusal as the error
//! page); viewers get no mutating form; a secret's value never appears in
//! any page; `license_alerts` flags a license expiring in 3 days and not
//! one expiring in 60.

use axum::extract::State;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use control_server::auth::Identity;
use control_server::console::delivery::{license_alerts, LicenseAlert};
use control_server::console::ConsoleError;
use control_server::state::AppState;

use crate::common::{base_settings, Backend, TestServer, PASSWORD};
use crate::console::{assert_csp, assert_page, page, sign_in, Page};

backend_tests!(
    delivery_pages_for_each_role,
    license_alerts_flag_licenses_expiring_soon,
);

const DAY_MS: i64 = 86_400_000;
/// The plaintext of the seeded secret, then of its rotation: never in a page.
const SECRET_VALUE: &str = "pa55-console-delivery-3e1f9c";
const ROTATED_VALUE: &str = "rotated-console-delivery-77ab0d";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn created(s: &TestServer, path: &str, token: &str, body: Value) -> Value {
    let r = s.post(path, Some(token), body).await;
    assert_eq!(r.status, 201, "{path}: {}", r.body);
    r.body["data"].clone()
}

/// A page the role may not read: the API's 403 as the console's error page.
#[track_caller]
fn assert_refused(p: &Page, path: &str) {
    assert_eq!(p.status, 403, "{path}: {}", p.html);
    assert_csp(p, path);
    p.has("This page cannot be shown")
        .has("is required for this action")
        .lacks("data-api=\"/api/");
}

async fn delivery_pages_for_each_role(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (op_id, operator) = s.user(&admin, "op@delivery.test", "operator").await;
    s.user(&admin, "viewer@delivery.test", "viewer").await;

    // Licensing: a subscription of the operator expiring in 3 days, a
    // tenant-wide perpetual one; the operator's entitlements.
    let lic = created(
        &s,
        "/api/v1/tenant-licenses",
        &admin,
        json!({"type": "subscription", "expires_at_ms": now_ms() + 3 * DAY_MS, "user_id": op_id,
               "metadata": {"order": "ORD-4711"}}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let perpetual = created(
        &s,
        "/api/v1/tenant-licenses",
        &admin,
        json!({"type": "perpetual"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/entitlements/{op_id}"),
            Some(&admin),
            Some(json!({"modules": ["wow.farm", "wow.level"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // Artifacts: a draft release awaiting its upload, the tenant default.
    let rel = created(
        &s,
        "/api/v1/artifacts/releases",
        &admin,
        json!({"module": "wow.farm", "platform": "Windows", "version": "1.2.3",
               "sha256": SHA, "size_bytes": 1536}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    created(
        &s,
        "/api/v1/artifacts/assign",
        &admin,
        json!({"module": "wow.farm", "platform": "windows", "release_id": rel}),
    )
    .await;

    // Secrets: the operator's server-sealed secret bound to a bot's field;
    // the admin's own.
    created(
        &s,
        "/api/v1/secrets",
        &operator,
        json!({"id": "db-pass", "label": "Farm database", "value": SECRET_VALUE}),
    )
    .await;
    created(
        &s,
        "/api/v1/secrets",
        &admin,
        json!({"id": "admin-key", "label": "Admin key", "value": "admin-only-9911"}),
    )
    .await;
    created(
        &s,
        "/api/v1/secrets/bindings",
        &operator,
        json!({"scope_type": "bot", "scope_id": "bot-farm-1", "secret_ref": "db-pass",
               "field_name": "db_password"}),
    )
    .await;

    // VMs: the operator's and the admin's.
    created(
        &s,
        "/api/v1/vm/register",
        &operator,
        json!({"vm_uuid": "0f9e6a2c-1b3d-4c5e-8f70-0000000000a1", "vm_name": "farm-01", "project_id": "wow_tbc",
               "metadata": {"node": "pve1"}}),
    )
    .await;
    created(
        &s,
        "/api/v1/vm/register",
        &admin,
        json!({"vm_uuid": "vm-0002-bbbb", "vm_name": "admin-vm"}),
    )
    .await;
    // the operator's VM is provisioned (Linux) and its guest reports a step
    let r = s
        .post(
            "/api/v1/provisioning/generate-iso-payload",
            Some(&operator),
            json!({"vm_uuid": "0f9e6a2c-1b3d-4c5e-8f70-0000000000a1", "os": "linux"}),
        )
        .await;
    assert_eq!(
        r.status,
        201,
        "{}",
        r.body.to_string().get(..300).unwrap_or("")
    );
    let guest_token = r.body["data"]["token"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/provisioning/report-progress",
            None,
            json!({"token": guest_token, "vm_uuid": "0f9e6a2c-1b3d-4c5e-8f70-0000000000a1", "step": "cloud_init_done",
                   "status": "completed", "details": {"took_s": 42}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let mut all_html = String::new();
    for (email, password, role) in [
        ("admin@localhost", s.admin_password.as_str(), "admin"),
        ("op@delivery.test", PASSWORD, "operator"),
        ("viewer@delivery.test", PASSWORD, "viewer"),
    ] {
        let admin_role = role == "admin";
        let acts = role != "viewer";
        let cookie = sign_in(&s, email, password).await;
        let get = |path: String| {
            let cookie = cookie.clone();
            let s = &s;
            async move { page(s, &path, Some(&cookie)).await }
        };

        // ---- licenses (admin-only in the API)
        let licensing_pages = [
            "/console/licenses".to_string(),
            format!("/console/licenses/{lic}"),
            format!("/console/licenses/entitlements/{op_id}"),
            "/console/licenses/audit".to_string(),
        ];
        for path in &licensing_pages {
            let p = get(path.clone()).await;
            all_html.push_str(&p.html);
            if !admin_role {
                assert_refused(&p, path);
                continue;
            }
            assert_page(&p, path);
        }
        if admin_role {
            let p = get("/console/licenses".into()).await;
            p.has("<h1>Licenses</h1>")
                .has(r#"aria-current="page">Licenses"#)
                .has(&format!(r#"href="/console/licenses/{lic}">{lic}</a>"#))
                .has(&format!(r#"href="/console/licenses/{perpetual}">"#))
                .has("in 3 days")
                .has("never")
                .has(&format!(
                    r#"href="/console/licenses/entitlements/{op_id}">"#
                ))
                .has(r#"<span class="badge active">active</span>"#)
                .has(r#"name="expires_at_ms" type="date" data-type="epoch-ms""#)
                .has(r#"action="/console/licenses/entitlements""#);
            assert_eq!(p.mutating_forms(), ["/api/v1/tenant-licenses"]);
            let p = get("/console/licenses?type=perpetual".into()).await;
            assert_page(&p, "filtered licenses");
            p.has(&format!(r#"href="/console/licenses/{perpetual}">"#))
                .lacks(&format!(r#"href="/console/licenses/{lic}">"#))
                .has(r#"<option value="perpetual" selected>"#);
            let p = get("/console/licenses?status=revoked".into()).await;
            p.has("No license matches these filters.");
            let p = get("/console/licenses?type=bogus".into()).await;
            assert_eq!(p.status, 400);
            p.has("VALIDATION_ERROR");

            let p = get(format!("/console/licenses/{lic}")).await;
            p.has(&format!("user {op_id}"))
                .has("ORD-4711")
                .has("Revoke the license")
                .has("Delete the license")
                .has(r#"<input type="hidden" name="status" value="revoked">"#);
            let target = format!("/api/v1/tenant-licenses/{lic}");
            assert_eq!(p.mutating_forms(), [target.clone(), target.clone(), target]);
            assert!(p.html.contains(r#"data-method="DELETE""#));
            let p = get("/console/licenses/no-such-license".into()).await;
            assert_eq!(p.status, 404, "{}", p.html);
            p.has("LICENSE_NOT_FOUND");

            let p = get(format!("/console/licenses/entitlements/{op_id}")).await;
            p.has("wow.farm")
                .has("wow.level")
                .has(&format!(r#"href="/console/licenses/{lic}">"#))
                .lacks(&format!(r#"href="/console/licenses/{perpetual}">"#));
            assert_eq!(
                p.mutating_forms(),
                [format!("/api/v1/entitlements/{op_id}")]
            );
            let p = get(format!("/console/licenses/entitlements?user_id={op_id}")).await;
            assert_eq!(p.status, 303);
            assert_eq!(
                p.header("location"),
                format!("/console/licenses/entitlements/{op_id}")
            );

            let p = get("/console/licenses/audit".into()).await;
            p.has("license.created")
                .has("entitlement.updated")
                .has(&format!(r#"href="/console/licenses/{lic}">{lic}</a>"#));
            assert!(p.mutating_forms().is_empty());
            let p = get("/console/licenses/audit?action=entitlement.updated".into()).await;
            assert_page(&p, "audit filtered");
            p.has("entitlement.updated")
                .lacks("<td>license.created</td>");
        }

        // ---- artifacts (admin-only in the API)
        let artifact_pages = [
            "/console/artifacts".to_string(),
            format!("/console/artifacts/releases/{rel}"),
            format!("/console/artifacts/assignments?user_id={op_id}&module=wow.farm"),
            "/console/artifacts/audit".to_string(),
        ];
        for path in &artifact_pages {
            let p = get(path.clone()).await;
            all_html.push_str(&p.html);
            if !admin_role {
                assert_refused(&p, path);
                continue;
            }
            assert_page(&p, path);
        }
        if admin_role {
            let p = get("/console/artifacts".into()).await;
            p.has("<h1>Artifacts</h1>")
                .has(r#"aria-current="page">Artifacts"#)
                .has(&format!(
                    r#"href="/console/artifacts/releases/{rel}">wow.farm</a>"#
                ))
                .has("<td>1.2.3</td>")
                .has("windows / stable")
                .has(r#"<span class="badge draft">draft</span>"#)
                .has(r#"<span class="badge pending">pending</span>"#)
                .has("1.5 KiB")
                .has(&SHA[..12])
                .has("curl -X PUT");
            assert_eq!(p.mutating_forms(), ["/api/v1/artifacts/releases"]);
            let p = get("/console/artifacts?status=active".into()).await;
            p.has("No release matches these filters.");

            let p = get(format!("/console/artifacts/releases/{rel}")).await;
            p.has("<h1>wow.farm 1.2.3</h1>")
                .has(SHA)
                .has(&format!("/api/v1/artifacts/releases/{rel}/content"))
                .has("--data-binary")
                // without content, draft is the only status: no status form
                .lacks(r##"data-dialog="#release-status""##);
            assert_eq!(p.mutating_forms(), ["/api/v1/artifacts/assign"]);

            let p = get(format!(
                "/console/artifacts/assignments?user_id={op_id}&module=wow.farm"
            ))
            .await;
            p.has(r#"id="assignment-lookup""#)
                .has("tenant default")
                .has(&format!(r#"href="/console/artifacts/releases/{rel}">"#))
                .has("in effect");
            assert_eq!(p.mutating_forms(), ["/api/v1/artifacts/assign"]);
            let p =
                get("/console/artifacts/assignments?user_id=nobody&module=wow.farm".into()).await;
            assert_page(&p, "lookup of an unknown user");
            p.has("USER_NOT_FOUND");

            let p = get("/console/artifacts/audit".into()).await;
            p.has("No downloads yet.");
        }

        // ---- secrets: metadata of the caller's own (admins: the tenant's)
        let p = get("/console/secrets".into()).await;
        assert_page(&p, "/console/secrets");
        all_html.push_str(&p.html);
        p.has("<h1>Secrets</h1>")
            .has(r#"aria-current="page">Secrets"#);
        assert!(p.mutating_forms().is_empty(), "{role}");
        match role {
            "admin" => {
                p.has(r#"href="/console/secrets/db-pass">db-pass</a>"#)
                    .has("Farm database")
                    .has(r#"href="/console/secrets/admin-key">"#)
                    .has(r#"<span class="badge server">server</span>"#);
            }
            "operator" => {
                p.has(r#"href="/console/secrets/db-pass">db-pass</a>"#)
                    .lacks("admin-key");
            }
            _ => {
                p.has("No secrets yet.").lacks("db-pass");
            }
        }
        let p = get("/console/secrets?kind=client".into()).await;
        assert_page(&p, "secrets filtered");
        if acts {
            p.has("No secret matches these filters.");
        }
        let p = get("/console/secrets/bindings".into()).await;
        assert_page(&p, "/console/secrets/bindings");
        all_html.push_str(&p.html);
        assert!(p.mutating_forms().is_empty());
        if role == "viewer" {
            p.has("No bindings yet.");
        } else {
            p.has("bot-farm-1").has("db_password");
        }
        let p = get("/console/secrets/db-pass".into()).await;
        all_html.push_str(&p.html);
        if acts {
            assert_page(&p, "/console/secrets/db-pass");
            p.has("Farm database")
                .has("<dd>1</dd>")
                .has(r#"id="secret-bindings""#)
                .has("bot-farm-1")
                .has(r#"name="value" type="password""#);
            assert_eq!(
                p.mutating_forms(),
                ["/api/v1/secrets/db-pass/rotate", "/api/v1/secrets/bindings"],
                "{role}"
            );
        } else {
            // not the viewer's secret: the API's "not found"
            assert_eq!(p.status, 404, "{}", p.html);
            p.has("SECRET_NOT_FOUND");
        }

        // ---- VMs: own (admins: the tenant's)
        let p = get("/console/vms".into()).await;
        assert_page(&p, "/console/vms");
        all_html.push_str(&p.html);
        p.has("<h1>VMs</h1>").has(r#"aria-current="page">VMs"#);
        assert!(p.mutating_forms().is_empty());
        match role {
            "admin" => {
                p.has(r#"href="/console/vms/0f9e6a2c-1b3d-4c5e-8f70-0000000000a1">farm-01</a>"#)
                    .has("admin-vm")
                    .has(&op_id)
                    .has("wow tbc");
            }
            "operator" => {
                p.has(r#"href="/console/vms/0f9e6a2c-1b3d-4c5e-8f70-0000000000a1">farm-01</a>"#)
                    .lacks("admin-vm")
                    .has("<td class=\"mono\">you</td>");
            }
            _ => {
                p.has("No VMs registered yet.");
            }
        }
        let p = get("/console/vms?status=paused".into()).await;
        assert_page(&p, "vms filtered");
        if acts {
            p.has("No VM matches these filters.");
        }
        let p = get("/console/vms/0f9e6a2c-1b3d-4c5e-8f70-0000000000a1".into()).await;
        if acts {
            assert_page(&p, "/console/vms/0f9e6a2c-1b3d-4c5e-8f70-0000000000a1");
            p.has("<h1>VM farm-01</h1>").has("pve1");
            // what its guest reported, never the token itself
            p.has(r#"<h2 id="h-progress">Provisioning</h2>"#)
                .has(r#"data-testid="progress-state">running</span>"#)
                .has("<td>cloud_init_done</td>")
                .has(r#"<span class="badge completed">completed</span>"#)
                .has("took_s")
                .lacks(&guest_token);
            if admin_role {
                get("/console/vms/vm-0002-bbbb".into())
                    .await
                    .has("No provisioning for this VM.");
            }
            if admin_role {
                assert_eq!(
                    p.mutating_forms(),
                    ["/api/v1/vms/0f9e6a2c-1b3d-4c5e-8f70-0000000000a1"]
                );
                p.has(r#"<option value="paused">paused</option>"#);
            } else {
                assert!(p.mutating_forms().is_empty(), "operator: admin-only PATCH");
                p.lacks("Change status");
            }
        } else {
            assert_eq!(p.status, 404, "{}", p.html);
        }
    }

    // A rotation through the API (what the rotate form posts): the version
    // goes up, neither value is ever in a page.
    let r = s
        .post(
            "/api/v1/secrets/db-pass/rotate",
            Some(&operator),
            json!({"value": ROTATED_VALUE}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = sign_in(&s, "op@delivery.test", PASSWORD).await;
    for path in [
        "/console/secrets",
        "/console/secrets/db-pass",
        "/console/secrets/bindings",
    ] {
        let p = page(&s, path, Some(&cookie)).await;
        assert_page(&p, path);
        all_html.push_str(&p.html);
    }
    let p = page(&s, "/console/secrets/db-pass", Some(&cookie)).await;
    p.has("<dd>2</dd>");
    assert!(
        !all_html.contains(SECRET_VALUE),
        "a secret's value in a page"
    );
    assert!(
        !all_html.contains(ROTATED_VALUE),
        "a rotated value in a page"
    );
    assert!(!all_html.contains("admin-only-9911"));
    s.stop().await;
}

/// The test server's probe of `license_alerts` for the bearer's identity.
async fn alerts_probe(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Json<Vec<LicenseAlert>>, ConsoleError> {
    Ok(Json(license_alerts(&state, &identity).await?))
}

async fn license_alerts_flag_licenses_expiring_soon(b: Backend) {
    let extra = axum::Router::new().route("/test/license-alerts", get(alerts_probe));
    let s = TestServer::start_with(b, base_settings(), extra).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@alerts.test", "operator").await;
    let alerts = |token: String| {
        let s = &s;
        async move {
            let r = s.get("/test/license-alerts", Some(&token)).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body.as_array().unwrap().clone()
        }
    };
    assert!(
        alerts(admin.clone()).await.is_empty(),
        "no licenses, no alerts"
    );

    let license = |body: Value| {
        let s = &s;
        let admin = admin.clone();
        async move {
            created(s, "/api/v1/tenant-licenses", &admin, body).await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let soon =
        license(json!({"type": "subscription", "expires_at_ms": now_ms() + 3 * DAY_MS})).await;
    let later =
        license(json!({"type": "subscription", "expires_at_ms": now_ms() + 60 * DAY_MS})).await;
    let perpetual = license(json!({"type": "perpetual"})).await;

    let got = alerts(admin.clone()).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let a = &got[0];
    assert_eq!(a["license_id"], soon.as_str());
    assert_eq!(a["level"], "warn");
    assert_eq!(a["href"], format!("/console/licenses/{soon}"));
    let text = a["text"].as_str().unwrap();
    assert!(text.contains("expires in 3 days"), "{text}");
    assert!(
        text.contains(&soon) && text.contains("every user"),
        "{text}"
    );
    for quiet in [&later, &perpetual] {
        assert!(!got.iter().any(|a| a["license_id"] == quiet.as_str()));
    }

    // Revoking the 60-day license makes it an alert (danger) too.
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/tenant-licenses/{later}"),
            Some(&admin),
            Some(json!({"status": "revoked"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = alerts(admin.clone()).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let revoked = got
        .iter()
        .find(|a| a["license_id"] == later.as_str())
        .unwrap();
    assert_eq!(revoked["level"], "danger");
    assert!(revoked["text"].as_str().unwrap().contains("is revoked"));

    // Licenses are admin-only: other roles get no alerts, not an error.
    assert!(alerts(operator).await.is_empty());
    s.stop().await;
}
