//! End-to-end API tests over real HTTP, each run on SQLite and PostgreSQL
//! (`sqlite::…` and `postgres::…` in the test names).

use crate::common::{base_settings, Backend, TestServer, PASSWORD};
use serde_json::json;

backend_tests!(
    health_reports_backend_and_readiness,
    admin_login_whoami_logout,
    login_failures_are_clear_and_equal,
    malformed_and_invalid_bodies,
    role_gates_allow_and_deny,
    tenants_never_see_each_other,
    expired_revoked_and_malformed_tokens,
    disabling_a_user_revokes_access,
    api_tokens_record_last_use,
    request_id_is_echoed_or_generated,
    admin_cannot_lock_themselves_out,
);

async fn health_reports_backend_and_readiness(b: Backend) {
    let s = TestServer::start(b).await;
    let h = s.get("/api/v1/health", None).await;
    assert_eq!(h.status, 200);
    let expected = match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(h.body["data"]["database"], expected);
    assert_eq!(h.body["data"]["version"], env!("CARGO_PKG_VERSION"));
    let live = s.get("/api/v1/health/live", None).await;
    assert_eq!(live.body["data"]["status"], "live");
    let ready = s.get("/api/v1/health/ready", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["data"]["checks"]["database"]["ready"], true);
    // Close the pool: readiness must now fail with the failing check named.
    s.db.close().await;
    let not_ready = s.get("/api/v1/health/ready", None).await;
    not_ready.assert_error(503, "NOT_READY");
    assert_eq!(
        not_ready.body["error"]["details"]["checks"]["database"]["ready"],
        false
    );
    assert!(not_ready.header("retry-after").is_some());
    s.stop().await;
}

async fn admin_login_whoami_logout(b: Backend) {
    let s = TestServer::start(b).await;
    let login = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "Admin@Localhost", "password": s.admin_password}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.body["data"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("bmxs_"));
    assert_eq!(login.body["data"]["token_type"], "Bearer");
    let who = s.get("/api/v1/auth/whoami", Some(&token)).await;
    assert_eq!(who.status, 200);
    let d = &who.body["data"];
    assert_eq!(d["email"], "admin@localhost");
    assert_eq!(d["tenant_id"], "default");
    assert_eq!(d["roles"], json!(["admin", "infra"]));
    assert!(d["uid"].as_str().is_some_and(|u| !u.is_empty()));
    let v = s.get("/api/v1/auth/verify", Some(&token)).await;
    assert_eq!(v.body["data"]["valid"], true);
    let out = s.post("/api/v1/auth/logout", Some(&token), json!({})).await;
    assert_eq!(out.status, 200);
    assert_eq!(out.body["data"]["revoked"], true);
    // The token stops working at once.
    s.get("/api/v1/auth/whoami", Some(&token))
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.get("/api/v1/auth/verify", Some(&token))
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.stop().await;
}

async fn login_failures_are_clear_and_equal(b: Backend) {
    let s = TestServer::start(b).await;
    let wrong = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "admin@localhost", "password": "not-the-password"}),
        )
        .await;
    wrong.assert_error(401, "INVALID_CREDENTIALS");
    let unknown = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "nobody@localhost", "password": "not-the-password"}),
        )
        .await;
    unknown.assert_error(401, "INVALID_CREDENTIALS");
    // Unknown account and wrong password are indistinguishable.
    assert_eq!(wrong.body, unknown.body);
    s.stop().await;
}

async fn malformed_and_invalid_bodies(b: Backend) {
    let s = TestServer::start(b).await;
    let missing = s
        .post("/api/v1/auth/login", None, json!({"email": "a@b.c"}))
        .await;
    missing.assert_error(400, "VALIDATION_ERROR");
    assert!(missing.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("password"));
    let wrong_type = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": 5, "password": "x"}),
        )
        .await;
    wrong_type.assert_error(400, "VALIDATION_ERROR");
    assert!(wrong_type.body["error"]["details"]["fields"]["email"].is_string());
    let broken = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let body: serde_json::Value = broken.json().await.unwrap();
    assert_eq!(body["error"]["code"], "MALFORMED_JSON");
    let not_json = s
        .http
        .post(s.url("/api/v1/auth/login"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 415);
    // Domain validation names each field.
    let admin = s.admin_token().await;
    let bad_user = s
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"email": "not-an-email", "role": "boss", "password": "short"}),
        )
        .await;
    bad_user.assert_error(400, "VALIDATION_ERROR");
    let fields = &bad_user.body["error"]["details"]["fields"];
    for f in ["email", "role", "password"] {
        assert!(fields[f].is_string(), "{f} missing in {fields}");
    }
    // Unknown fields are refused rather than ignored.
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "a@b.c", "password": "x", "tenant": "x"}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // Unknown route and wrong method use the envelope too.
    s.get("/api/v1/nope", None)
        .await
        .assert_error(404, "NOT_FOUND");
    s.call("DELETE", "/api/v1/auth/whoami", None, None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
    s.stop().await;
}

async fn role_gates_allow_and_deny(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let acme_admin = s.tenant_with_admin(&infra, "acme").await;
    let (_, viewer) = s.user(&acme_admin, "viewer@acme.test", "viewer").await;
    let (_, operator) = s.user(&acme_admin, "operator@acme.test", "operator").await;

    let create_token = json!({"name": "ci"});
    // viewer: may read its identity, nothing gated.
    assert_eq!(
        s.get("/api/v1/auth/whoami", Some(&viewer)).await.status,
        200
    );
    assert_eq!(
        s.get("/api/v1/auth/api-tokens", Some(&viewer)).await.status,
        200
    );
    let denied = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&viewer),
            create_token.clone(),
        )
        .await;
    denied.assert_error(403, "FORBIDDEN");
    assert!(denied.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("operator"));
    // operator: API tokens yes, user admin no.
    let t = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&operator),
            create_token.clone(),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.body);
    let denied = s.get("/api/v1/users", Some(&operator)).await;
    denied.assert_error(403, "FORBIDDEN");
    assert!(denied.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("admin"));
    // admin: users yes, tenants no.
    assert_eq!(s.get("/api/v1/users", Some(&acme_admin)).await.status, 200);
    let denied = s.get("/api/v1/tenants", Some(&acme_admin)).await;
    denied.assert_error(403, "FORBIDDEN");
    assert!(denied.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("infra"));
    s.post(
        "/api/v1/tenants",
        Some(&acme_admin),
        json!({"id": "evil", "name": "x"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    // infra: tenants yes.
    let list = s.get("/api/v1/tenants", Some(&infra)).await;
    assert_eq!(list.status, 200);
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme", "default"]);
    // Without a token everything gated is 401.
    for path in ["/api/v1/users", "/api/v1/tenants", "/api/v1/auth/whoami"] {
        let r = s.get(path, None).await;
        r.assert_error(401, "UNAUTHORIZED");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Bearer"));
    }
    s.stop().await;
}

async fn tenants_never_see_each_other(b: Backend) {
    let s = TestServer::start(b).await;
    let infra = s.admin_token().await;
    let a = s.tenant_with_admin(&infra, "tenant-a").await;
    let bb = s.tenant_with_admin(&infra, "tenant-b").await;
    let (b_user, b_op) = s.user(&bb, "op@b.test", "operator").await;
    let b_tok = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&b_op),
            json!({"name": "b-ci"}),
        )
        .await;
    let b_tok_id = b_tok.body["data"]["info"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A's user list holds only A's users.
    let list = s.get("/api/v1/users", Some(&a)).await;
    let emails: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["admin@tenant-a.test"]);
    assert_eq!(list.body["meta"]["total"], 1);
    // B's rows do not exist for A: read, update and revoke all answer 404.
    s.get(&format!("/api/v1/users/{b_user}"), Some(&a))
        .await
        .assert_error(404, "USER_NOT_FOUND");
    s.call(
        "PATCH",
        &format!("/api/v1/users/{b_user}"),
        Some(&a),
        Some(json!({"disabled": true})),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    s.call(
        "DELETE",
        &format!("/api/v1/auth/api-tokens/{b_tok_id}"),
        Some(&a),
        None,
    )
    .await
    .assert_error(404, "TOKEN_NOT_FOUND");
    // …and B's user and token still work.
    assert_eq!(s.get("/api/v1/auth/whoami", Some(&b_op)).await.status, 200);
    let b_list = s.get("/api/v1/users", Some(&bb)).await;
    assert_eq!(b_list.body["meta"]["total"], 2);
    // Users created by A's admin land in A, whatever the body says.
    let (_, a_view) = s.user(&a, "viewer@a.test", "viewer").await;
    let who = s.get("/api/v1/auth/whoami", Some(&a_view)).await;
    assert_eq!(who.body["data"]["tenant_id"], "tenant-a");
    s.stop().await;
}

async fn expired_revoked_and_malformed_tokens(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let created = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&admin),
            json!({"name": "auto", "ttl_days": 7}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let api = created.body["data"]["token"].as_str().unwrap().to_string();
    let id = created.body["data"]["info"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(api.starts_with("bmxk_"));
    assert!(!created.body["data"]["info"]["hint"]
        .as_str()
        .unwrap()
        .contains(&api[10..]));
    let who = s.get("/api/v1/auth/whoami", Some(&api)).await;
    assert_eq!(who.body["data"]["source"], "api_token");

    // Malformed: wrong scheme, garbage, unknown token of the right shape.
    for header in [
        format!("Basic {api}"),
        "Bearer".to_string(),
        "Bearer not-a-token".to_string(),
        format!("Bearer {}x", api),
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig".to_string(),
    ] {
        let r = s
            .http
            .get(s.url("/api/v1/auth/whoami"))
            .header("authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{header}");
    }
    // The stored row never holds the token itself.
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT token_hash, token_hint FROM auth_tokens")
            .fetch_all(s.db.raw_pool())
            .await
            .unwrap();
    assert!(stored
        .iter()
        .all(|(h, hint)| !h.contains(&api) && !api.ends_with(hint.trim_end_matches('…'))));

    // Expired.
    sqlx::query("UPDATE auth_tokens SET expires_at = $1 WHERE id = $2")
        .bind(chrono_ms() - 1000)
        .bind(&id)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    s.get("/api/v1/auth/whoami", Some(&api))
        .await
        .assert_error(401, "UNAUTHORIZED");

    // Revoked (and revoking twice is a conflict).
    let second = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&admin),
            json!({"name": "auto2"}),
        )
        .await;
    let api2 = second.body["data"]["token"].as_str().unwrap().to_string();
    let id2 = second.body["data"]["info"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.get("/api/v1/auth/whoami", Some(&api2)).await.status, 200);
    let rev = s
        .call(
            "DELETE",
            &format!("/api/v1/auth/api-tokens/{id2}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(rev.status, 200, "{}", rev.body);
    assert!(rev.body["data"]["revoked_at"].is_string());
    s.get("/api/v1/auth/whoami", Some(&api2))
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.call(
        "DELETE",
        &format!("/api/v1/auth/api-tokens/{id2}"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(409, "ALREADY_REVOKED");
    // Out-of-range lifetime is refused.
    s.post(
        "/api/v1/auth/api-tokens",
        Some(&admin),
        json!({"name": "x", "ttl_days": 0}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

async fn disabling_a_user_revokes_access(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (uid, op) = s.user(&admin, "op@default.test", "operator").await;
    let api = s
        .post("/api/v1/auth/api-tokens", Some(&op), json!({"name": "x"}))
        .await
        .body["data"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/users/{uid}"),
            Some(&admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["disabled"], true);
    for t in [&op, &api] {
        s.get("/api/v1/auth/whoami", Some(t))
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    s.post(
        "/api/v1/auth/login",
        None,
        json!({"email": "op@default.test", "password": PASSWORD}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    // Re-enabled users sign in again; role changes apply to new requests.
    s.call(
        "PATCH",
        &format!("/api/v1/users/{uid}"),
        Some(&admin),
        Some(json!({"disabled": false, "role": "viewer"})),
    )
    .await;
    let t = s.login("op@default.test", PASSWORD).await;
    let who = s.get("/api/v1/auth/whoami", Some(&t)).await;
    assert_eq!(who.body["data"]["roles"], json!(["viewer"]));
    s.stop().await;
}

async fn api_tokens_record_last_use(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let created = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&admin),
            json!({"name": "metrics"}),
        )
        .await;
    let api = created.body["data"]["token"].as_str().unwrap().to_string();
    assert!(created.body["data"]["info"]["last_used_at"].is_null());
    s.get("/api/v1/auth/whoami", Some(&api)).await;
    let list = s.get("/api/v1/auth/api-tokens", Some(&admin)).await;
    let item = &list.body["data"][0];
    assert_eq!(item["name"], "metrics");
    assert!(item["last_used_at"].is_string(), "{item}");
    assert!(item.get("token").is_none() && item.get("token_hash").is_none());
    s.stop().await;
}

async fn request_id_is_echoed_or_generated(b: Backend) {
    let s = TestServer::start(b).await;
    let r = s.get("/api/v1/health", None).await;
    let generated = r.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
    for path in ["/api/v1/health", "/api/v1/nope", "/api/v1/users"] {
        let r = s
            .http
            .get(s.url(path))
            .header("x-request-id", "trace-abc_123")
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "trace-abc_123", "{path}");
    }
    // An unusable incoming id is replaced, not echoed.
    let r = s
        .http
        .get(s.url("/api/v1/health"))
        .header("x-request-id", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"].len(), 300);
    // Security headers are present.
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["cache-control"], "no-store");
    s.stop().await;
}

async fn admin_cannot_lock_themselves_out(b: Backend) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let me = s.get("/api/v1/auth/whoami", Some(&admin)).await.body["data"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    for body in [json!({"disabled": true}), json!({"role": "viewer"})] {
        s.call(
            "PATCH",
            &format!("/api/v1/users/{me}"),
            Some(&admin),
            Some(body),
        )
        .await
        .assert_error(409, "SELF_LOCKOUT");
    }
    s.stop().await;
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---- Scenarios that need special configuration (SQLite; the behaviour is
// backend-independent and the backend suite above covers storage). ----

#[tokio::test]
async fn public_endpoints_are_rate_limited_with_retry_after() {
    let settings = control_server::config::Settings {
        public_rate_limit_per_minute: Some(3),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    let body = json!({"email": "nobody@x.test", "password": "whatever-123"});
    for _ in 0..3 {
        let r = s.post("/api/v1/auth/login", None, body.clone()).await;
        assert_eq!(r.status, 401);
    }
    let r = s.post("/api/v1/auth/login", None, body).await;
    r.assert_error(429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    s.stop().await;
}

#[tokio::test]
async fn api_is_rate_limited_per_token() {
    let settings = control_server::config::Settings {
        api_rate_limit_per_minute: Some(5),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    let t = s.admin_token().await; // login is the public budget, not this one
    let mut statuses = vec![];
    for _ in 0..6 {
        statuses.push(s.get("/api/v1/auth/whoami", Some(&t)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    // Health probes are exempt.
    assert_eq!(s.get("/api/v1/health/ready", None).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_per_account() {
    let s = TestServer::start(Backend::Sqlite).await;
    let bad = json!({"email": "admin@localhost", "password": "wrong-password-1"});
    for _ in 0..5 {
        s.post("/api/v1/auth/login", None, bad.clone())
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    // Even the right password must now wait.
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "admin@localhost", "password": s.admin_password}),
        )
        .await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(s.admin_token().await.len(), 48);
    s.stop().await;
}

#[tokio::test]
async fn body_size_is_limited() {
    let settings = control_server::config::Settings {
        body_limit_bytes: Some(2048),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    let r = s
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@b.c", "password": "x".repeat(4096)}),
        )
        .await;
    r.assert_error(413, "PAYLOAD_TOO_LARGE");
    s.stop().await;
}

#[tokio::test]
async fn panics_become_internal_error_without_internals() {
    let extra = axum::Router::new().route(
        "/api/v1/test-panic",
        axum::routing::get(|| async {
            let secret_detail = "db password hunter2";
            panic!("boom: {secret_detail}");
            #[allow(unreachable_code)]
            ""
        }),
    );
    let s = TestServer::start_with(Backend::Sqlite, base_settings(), extra).await;
    let r = s.get("/api/v1/test-panic", None).await;
    r.assert_error(500, "INTERNAL_ERROR");
    assert!(!r.body.to_string().contains("hunter2"));
    assert!(r.header("x-request-id").is_some());
    // The server keeps serving.
    assert_eq!(s.get("/api/v1/health", None).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let settings = control_server::config::Settings {
        cors_allowed_origins: Some(vec!["https://app.example.com".into()]),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    let pre = |origin: &'static str| {
        s.http
            .request(reqwest::Method::OPTIONS, s.url("/api/v1/auth/whoami"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = pre("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = pre("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    s.stop().await;

    // Default: no CORS at all.
    let s = TestServer::start(Backend::Sqlite).await;
    let r = s
        .http
        .get(s.url("/api/v1/health"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test]
async fn metrics_are_off_by_default_and_admin_only_when_on() {
    let s = TestServer::start(Backend::Sqlite).await;
    s.get("/metrics", None).await.assert_error(404, "NOT_FOUND");
    s.stop().await;

    let settings = control_server::config::Settings {
        metrics: Some("admin".into()),
        ..base_settings()
    };
    let s = TestServer::start_with(Backend::Sqlite, settings, axum::Router::new()).await;
    s.get("/metrics", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    let admin = s.admin_token().await;
    let (_, viewer) = s.user(&admin, "v@default.test", "viewer").await;
    s.get("/metrics", Some(&viewer))
        .await
        .assert_error(403, "FORBIDDEN");
    s.get("/api/v1/health", None).await;
    let r = s
        .http
        .get(s.url("/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("db_pool_connections"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let s = TestServer::start(Backend::Sqlite).await;
    let doc = s.get("/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    let expected = [
        ("get", "/api/v1/health"),
        ("get", "/api/v1/health/live"),
        ("get", "/api/v1/health/ready"),
        ("post", "/api/v1/auth/login"),
        ("post", "/api/v1/auth/logout"),
        ("get", "/api/v1/auth/verify"),
        ("get", "/api/v1/auth/whoami"),
        ("get", "/api/v1/auth/api-tokens"),
        ("post", "/api/v1/auth/api-tokens"),
        ("delete", "/api/v1/auth/api-tokens/{id}"),
        ("get", "/api/v1/tenants"),
        ("post", "/api/v1/tenants"),
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("get", "/api/v1/users/{id}"),
        ("patch", "/api/v1/users/{id}"),
        ("post", "/api/v1/agents/pairings"),
        ("post", "/api/v1/agents/register"),
        ("post", "/api/v1/agents/heartbeat"),
        ("post", "/api/v1/agents/token/rotate"),
        ("get", "/api/v1/agents"),
        ("get", "/api/v1/agents/{id}"),
        ("delete", "/api/v1/agents/{id}"),
        ("post", "/api/v1/agents/{id}/revoke"),
        ("post", "/api/v1/vm-ops/proxmox/{action}"),
        ("post", "/api/v1/vm-ops/ssh/{action}"),
        ("post", "/api/v1/vm-ops/commands"),
        ("get", "/api/v1/vm-ops/commands"),
        ("get", "/api/v1/vm-ops/commands/next"),
        ("get", "/api/v1/vm-ops/commands/{id}"),
        ("patch", "/api/v1/vm-ops/commands/{id}"),
        ("post", "/api/v1/vm-ops/commands/{id}/output"),
        ("get", "/api/v1/vm-ops/commands/{id}/output"),
        ("post", "/api/v1/vm-ops/commands/{id}/cancel"),
        ("get", "/api/v1/vm-ops/events"),
        ("get", "/api/v1/unattend-profiles"),
        ("post", "/api/v1/unattend-profiles"),
        ("get", "/api/v1/unattend-profiles/{id}"),
        ("put", "/api/v1/unattend-profiles/{id}"),
        ("patch", "/api/v1/unattend-profiles/{id}"),
        ("delete", "/api/v1/unattend-profiles/{id}"),
        ("post", "/api/v1/unattend-profiles/{id}/preview"),
        ("post", "/api/v1/unattend-profiles/preview"),
        ("post", "/api/v1/provisioning/generate-iso-payload"),
        ("post", "/api/v1/provisioning/validate-token"),
        ("post", "/api/v1/provisioning/report-progress"),
        ("get", "/api/v1/provisioning/playbook"),
        ("get", "/api/v1/provisioning/progress/{vm_uuid}"),
        ("post", "/api/v1/provisioning/tokens/{vm_uuid}/revoke"),
        ("get", "/api/v1/playbooks"),
        ("post", "/api/v1/playbooks"),
        ("post", "/api/v1/playbooks/validate"),
        ("get", "/api/v1/playbooks/{id}"),
        ("put", "/api/v1/playbooks/{id}"),
        ("patch", "/api/v1/playbooks/{id}"),
        ("delete", "/api/v1/playbooks/{id}"),
        ("get", "/api/v1/settings"),
        ("get", "/api/v1/settings/alerts"),
        ("put", "/api/v1/settings/alerts"),
        ("patch", "/api/v1/settings/alerts"),
        ("get", "/api/v1/settings/api_keys"),
        ("put", "/api/v1/settings/api_keys"),
        ("patch", "/api/v1/settings/api_keys"),
        ("get", "/api/v1/settings/proxy"),
        ("put", "/api/v1/settings/proxy"),
        ("patch", "/api/v1/settings/proxy"),
        ("get", "/api/v1/settings/notifications/events"),
        ("put", "/api/v1/settings/notifications/events"),
        ("patch", "/api/v1/settings/notifications/events"),
        ("get", "/api/v1/settings/storage_policy"),
        ("put", "/api/v1/settings/storage_policy"),
        ("patch", "/api/v1/settings/storage_policy"),
        ("get", "/api/v1/settings/projects"),
        ("put", "/api/v1/settings/projects"),
        ("patch", "/api/v1/settings/projects"),
        ("get", "/api/v1/settings/projects/{id}"),
        ("put", "/api/v1/settings/projects/{id}"),
        ("patch", "/api/v1/settings/projects/{id}"),
        ("get", "/api/v1/settings/projects/{id}/gold_price_usd"),
        ("put", "/api/v1/settings/projects/{id}/gold_price_usd"),
        ("patch", "/api/v1/settings/projects/{id}/gold_price_usd"),
        ("get", "/api/v1/settings/theme"),
        ("put", "/api/v1/settings/theme"),
        ("patch", "/api/v1/settings/theme"),
        ("get", "/api/v1/settings/finance/chart_config"),
        ("put", "/api/v1/settings/finance/chart_config"),
        ("patch", "/api/v1/settings/finance/chart_config"),
        ("get", "/api/v1/settings/ui/resource_tree"),
        ("put", "/api/v1/settings/ui/resource_tree"),
        ("patch", "/api/v1/settings/ui/resource_tree"),
        ("get", "/api/v1/settings/schedule/last_params"),
        ("put", "/api/v1/settings/schedule/last_params"),
        ("patch", "/api/v1/settings/schedule/last_params"),
        ("get", "/api/v1/settings/schedule/templates"),
        ("put", "/api/v1/settings/schedule/templates"),
        ("patch", "/api/v1/settings/schedule/templates"),
        ("get", "/api/v1/settings/schedule/templates/{id}"),
        ("put", "/api/v1/settings/schedule/templates/{id}"),
        ("patch", "/api/v1/settings/schedule/templates/{id}"),
        ("get", "/api/v1/settings/vmgenerator"),
        ("put", "/api/v1/settings/vmgenerator"),
        ("patch", "/api/v1/settings/vmgenerator"),
        ("get", "/api/v1/settings/vmgenerator/profiles"),
        ("put", "/api/v1/settings/vmgenerator/profiles"),
        ("patch", "/api/v1/settings/vmgenerator/profiles"),
        ("get", "/api/v1/settings/vmgenerator/profiles/{id}"),
        ("put", "/api/v1/settings/vmgenerator/profiles/{id}"),
        ("patch", "/api/v1/settings/vmgenerator/profiles/{id}"),
        ("get", "/api/v1/settings/generators/account/lastSettings"),
        ("put", "/api/v1/settings/generators/account/lastSettings"),
        ("patch", "/api/v1/settings/generators/account/lastSettings"),
        (
            "get",
            "/api/v1/settings/generators/account/defaultTemplateId",
        ),
        (
            "put",
            "/api/v1/settings/generators/account/defaultTemplateId",
        ),
        (
            "patch",
            "/api/v1/settings/generators/account/defaultTemplateId",
        ),
        ("get", "/api/v1/settings/generators/account/templates"),
        ("put", "/api/v1/settings/generators/account/templates"),
        ("patch", "/api/v1/settings/generators/account/templates"),
        ("get", "/api/v1/settings/generators/account/templates/{id}"),
        ("put", "/api/v1/settings/generators/account/templates/{id}"),
        (
            "patch",
            "/api/v1/settings/generators/account/templates/{id}",
        ),
        // resources and workspace (issue #16)
        ("get", "/api/v1/resources/licenses"),
        ("post", "/api/v1/resources/licenses"),
        ("get", "/api/v1/resources/licenses/{id}"),
        ("patch", "/api/v1/resources/licenses/{id}"),
        ("put", "/api/v1/resources/licenses/{id}"),
        ("delete", "/api/v1/resources/licenses/{id}"),
        ("get", "/api/v1/resources/proxies"),
        ("post", "/api/v1/resources/proxies"),
        ("get", "/api/v1/resources/proxies/{id}"),
        ("patch", "/api/v1/resources/proxies/{id}"),
        ("put", "/api/v1/resources/proxies/{id}"),
        ("delete", "/api/v1/resources/proxies/{id}"),
        ("get", "/api/v1/resources/proxies/{id}/password"),
        ("get", "/api/v1/resources/subscriptions"),
        ("post", "/api/v1/resources/subscriptions"),
        ("get", "/api/v1/resources/subscriptions/{id}"),
        ("patch", "/api/v1/resources/subscriptions/{id}"),
        ("put", "/api/v1/resources/subscriptions/{id}"),
        ("delete", "/api/v1/resources/subscriptions/{id}"),
        ("get", "/api/v1/workspace/notes"),
        ("post", "/api/v1/workspace/notes"),
        ("get", "/api/v1/workspace/notes/{id}"),
        ("patch", "/api/v1/workspace/notes/{id}"),
        ("delete", "/api/v1/workspace/notes/{id}"),
        ("get", "/api/v1/workspace/calendar"),
        ("post", "/api/v1/workspace/calendar"),
        ("get", "/api/v1/workspace/calendar/{id}"),
        ("patch", "/api/v1/workspace/calendar/{id}"),
        ("delete", "/api/v1/workspace/calendar/{id}"),
        ("get", "/api/v1/workspace/kanban"),
        ("post", "/api/v1/workspace/kanban"),
        ("get", "/api/v1/workspace/kanban/{id}"),
        ("patch", "/api/v1/workspace/kanban/{id}"),
        ("delete", "/api/v1/workspace/kanban/{id}"),
        // VM registry and licensing (issue #13)
        ("post", "/api/v1/vm/register"),
        ("get", "/api/v1/vm/{uuid}/resolve"),
        ("get", "/api/v1/vms"),
        ("patch", "/api/v1/vms/{uuid}"),
        ("get", "/api/v1/vm-jobs"),
        ("post", "/api/v1/vm-jobs"),
        ("get", "/api/v1/vm-jobs/{id}"),
        ("get", "/api/v1/vm-jobs/{id}/events"),
        ("post", "/api/v1/vm-jobs/{id}/cancel"),
        ("post", "/api/v1/vm-jobs/{id}/items/{n}/retry"),
        ("get", "/api/v1/tenant-licenses"),
        ("post", "/api/v1/tenant-licenses"),
        ("get", "/api/v1/tenant-licenses/{id}"),
        ("patch", "/api/v1/tenant-licenses/{id}"),
        ("delete", "/api/v1/tenant-licenses/{id}"),
        ("get", "/api/v1/entitlements/{user_id}"),
        ("put", "/api/v1/entitlements/{user_id}"),
        ("get", "/api/v1/license-audit"),
        ("post", "/api/v1/license/lease"),
        ("post", "/api/v1/license/heartbeat"),
        ("post", "/api/v1/license/revoke"),
        ("post", "/api/v1/license/verify"),
        // object storage, artifacts and theme assets (issue #13)
        ("get", "/api/v1/objects/{token}"),
        ("put", "/api/v1/objects/{token}"),
        ("get", "/api/v1/artifacts/releases"),
        ("post", "/api/v1/artifacts/releases"),
        ("get", "/api/v1/artifacts/releases/{id}"),
        ("patch", "/api/v1/artifacts/releases/{id}"),
        ("put", "/api/v1/artifacts/releases/{id}/content"),
        ("post", "/api/v1/artifacts/assign"),
        ("get", "/api/v1/artifacts/assign/{user_id}/{module}"),
        ("post", "/api/v1/artifacts/resolve-download"),
        ("get", "/api/v1/artifacts/audit"),
        ("get", "/api/v1/theme-assets"),
        ("post", "/api/v1/theme-assets/presign-upload"),
        ("post", "/api/v1/theme-assets/complete"),
        ("delete", "/api/v1/theme-assets/{id}"),
        // secrets vault and delivery to agents (issue #13)
        ("post", "/api/v1/secrets"),
        ("get", "/api/v1/secrets"),
        ("get", "/api/v1/secrets/{id}/meta"),
        ("post", "/api/v1/secrets/{id}/rotate"),
        ("post", "/api/v1/secrets/bindings"),
        ("get", "/api/v1/secrets/bindings"),
        ("put", "/api/v1/agents/me/public-key"),
        ("get", "/api/v1/agents/me/secrets/{id}"),
        ("get", "/api/v1/bots"),
        ("post", "/api/v1/bots"),
        ("get", "/api/v1/bots/archive"),
        ("get", "/api/v1/bots/{id}"),
        ("patch", "/api/v1/bots/{id}"),
        ("delete", "/api/v1/bots/{id}"),
        ("get", "/api/v1/bots/{id}/lifecycle"),
        ("get", "/api/v1/bots/{id}/lifecycle/transitions"),
        ("get", "/api/v1/bots/{id}/lifecycle/is-banned"),
        ("get", "/api/v1/bots/{id}/lifecycle/log"),
        ("post", "/api/v1/bots/{id}/lifecycle/transition"),
        ("post", "/api/v1/bots/{id}/lifecycle/ban"),
        ("post", "/api/v1/bots/{id}/lifecycle/unban"),
        ("get", "/api/v1/finance/operations"),
        ("post", "/api/v1/finance/operations"),
        ("get", "/api/v1/finance/operations/{id}"),
        ("patch", "/api/v1/finance/operations/{id}"),
        ("delete", "/api/v1/finance/operations/{id}"),
        ("get", "/api/v1/finance/daily-stats"),
        ("get", "/api/v1/finance/gold-price-history"),
    ];
    for (method, path) in expected {
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from OpenAPI"))[method];
        assert!(op.is_object(), "{method} {path} missing from OpenAPI");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
    }
    // Every documented operation exists on the server (no phantom routes),
    // and the documented set is exactly the expected one.
    let mut documented = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            documented += 1;
            assert!(
                expected.contains(&(method, path.as_str())),
                "{method} {path} is documented but not in this test's list: add it"
            );
            let concrete = path
                .replace("{id}", "00000000-0000-0000-0000-000000000000")
                .replace("{action}", "start");
            let r = s.call(&method.to_uppercase(), &concrete, None, None).await;
            assert!(
                r.status != 404 || r.code() != "NOT_FOUND",
                "{method} {path} documented but not routed"
            );
            assert_ne!(r.status, 405, "{method} {path} documented but not routed");
        }
    }
    assert_eq!(documented, expected.len());
    // Schemas are generated for the envelopes.
    assert!(doc.body["components"]["schemas"]["ErrorEnvelope"].is_object());
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    // The docs UI is served from the binary (works offline).
    let ui = s.http.get(s.url("/api/v1/docs/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    s.stop().await;
}
