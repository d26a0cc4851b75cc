//! Licensing (issue #13, inventory §2.9): tenant licenses and entitlements
//! (admin, audited), the lease check chain with every code, heartbeats that
//! extend a lease up to its maximum lifetime, immediate revocation, signed
//! and hashed lease tokens, the service other domains ask, role gates and
//! tenant isolation on every route.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{base_settings, Backend, Resp, TestServer};
use crate::vms::{register, team, Team};
use control_server::config::{Config, Settings};

backend_tests!(
    licenses_and_entitlements_are_admin_only_and_audited,
    lease_check_chain_reaches_every_code,
    heartbeat_extends_up_to_the_maximum_and_revoke_is_immediate,
    lease_tokens_are_signed_hashed_and_verified,
    roles_and_tenants_on_every_route,
    other_domains_ask_for_an_active_license
);

const VM: &str = "vm-lease-0001";
const MODULE: &str = "farm-bot";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn lease_body(vm: &str, module: &str) -> Value {
    json!({"vm_uuid": vm, "agent_id": "agent-1", "runner_id": "runner-1",
           "module": module, "version": "1.2.3"})
}

async fn create_license(s: &TestServer, admin: &str, body: Value) -> String {
    let r = s.post("/api/v1/tenant-licenses", Some(admin), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

async fn entitle(s: &TestServer, admin: &str, user: &str, modules: Value) {
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/entitlements/{user}"),
            Some(admin),
            Some(json!({ "modules": modules })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// A tenant whose operator owns VM, holds a perpetual license and every module.
async fn licensed(s: &TestServer, tenant: &str) -> (Team, String) {
    let t = team(s, tenant).await;
    assert_eq!(
        register(s, &t.operator, json!({"vm_uuid": VM}))
            .await
            .status,
        201
    );
    let lic = create_license(s, &t.admin, json!({"type": "perpetual"})).await;
    entitle(s, &t.admin, &t.operator_id, json!(["*"])).await;
    (t, lic)
}

async fn lease(s: &TestServer, token: &str) -> Resp {
    s.post("/api/v1/license/lease", Some(token), lease_body(VM, MODULE))
        .await
}

async fn hb(s: &TestServer, tok: &str, id: String) -> Resp {
    s.post(
        "/api/v1/license/heartbeat",
        Some(tok),
        json!({ "lease_id": id }),
    )
    .await
}

async fn set_lease(s: &TestServer, id: &str, column: &str, ms: i64) {
    sqlx::query(&format!(
        "UPDATE execution_leases SET {column} = $1 WHERE id = $2"
    ))
    .bind(ms)
    .bind(id)
    .execute(s.db.raw_pool())
    .await
    .unwrap();
}

async fn licenses_and_entitlements_are_admin_only_and_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "lic-admin").await;
    // Create: defaults subscription/active; the view says whether it grants now.
    let r = s
        .post("/api/v1/tenant-licenses", Some(&t.admin), json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["type"], "subscription");
    assert_eq!(d["status"], "active");
    assert_eq!(
        d["active"], false,
        "a subscription without expiry grants nothing"
    );
    assert!(d["user_id"].is_null());
    let sub = d["id"].as_str().unwrap().to_string();
    let future = now_ms() + 86_400_000;
    let r = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&t.admin),
            json!({"type": "subscription", "expires_at_ms": future, "user_id": t.operator_id,
                   "metadata": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["active"], true);
    assert_eq!(d["expires_at_ms"], future);
    assert!(d["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d["user_id"], t.operator_id.as_str());
    assert_eq!(d["metadata"], json!({"plan": "pro"}));
    let per_user = d["id"].as_str().unwrap().to_string();
    // Validation and unknown users.
    for body in [
        json!({"type": "forever"}),
        json!({"status": "paused"}),
        json!({"expires_at_ms": 0}),
        json!({"expires_at_ms": 1.5}),
        json!({"expires_at_ms": "tomorrow"}),
        json!({"metadata": "x"}),
        json!({"colour": "red"}),
    ] {
        s.post("/api/v1/tenant-licenses", Some(&t.admin), body)
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    s.post(
        "/api/v1/tenant-licenses",
        Some(&t.admin),
        json!({"user_id": "nobody"}),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    // Read, list (list kit), patch, delete.
    let r = s
        .get(&format!("/api/v1/tenant-licenses/{sub}"), Some(&t.admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.get("/api/v1/tenant-licenses/nope", Some(&t.admin))
        .await
        .assert_error(404, "LICENSE_NOT_FOUND");
    let r = s.get("/api/v1/tenant-licenses", Some(&t.admin)).await;
    assert_eq!(r.body["meta"]["total"], 2, "{}", r.body);
    assert_eq!(r.body["data"][0]["id"], per_user.as_str(), "newest first");
    let r = s
        .get(
            &format!("/api/v1/tenant-licenses?user_id={}", t.operator_id),
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.body["meta"]["total"], 1);
    let r = s
        .get(
            "/api/v1/tenant-licenses?type=subscription&sort=expires_at&order=asc",
            Some(&t.admin),
        )
        .await;
    assert_eq!(
        r.body["data"][0]["id"],
        per_user.as_str(),
        "empty expiry last"
    );
    s.get("/api/v1/tenant-licenses?type=forever", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/tenant-licenses/{per_user}"),
            Some(&t.admin),
            Some(json!({"type": "alltime", "expires_at_ms": null, "user_id": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["type"], "alltime");
    assert!(d["expires_at_ms"].is_null() && d["user_id"].is_null());
    assert_eq!(d["metadata"], json!({"plan": "pro"}), "left out: kept");
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/tenant-licenses/{per_user}"),
            Some(&t.admin),
            Some(json!({"status": "revoked"})),
        )
        .await;
    assert_eq!(r.body["data"]["active"], false);
    assert_eq!(r.body["data"]["type"], "alltime");
    s.call(
        "PATCH",
        "/api/v1/tenant-licenses/nope",
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await
    .assert_error(404, "LICENSE_NOT_FOUND");
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/tenant-licenses/{sub}"),
            Some(&t.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.call(
        "DELETE",
        &format!("/api/v1/tenant-licenses/{sub}"),
        Some(&t.admin),
        None,
    )
    .await
    .assert_error(404, "LICENSE_NOT_FOUND");

    // Entitlements: none, a list, a map with `*`; validation; unknown users.
    let path = format!("/api/v1/entitlements/{}", t.operator_id);
    let r = s.get(&path, Some(&t.admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["data"]["modules"].is_null());
    entitle(&s, &t.admin, &t.operator_id, json!(["a", "b"])).await;
    assert_eq!(
        s.get(&path, Some(&t.admin)).await.body["data"]["modules"],
        json!(["a", "b"])
    );
    entitle(&s, &t.admin, &t.operator_id, json!({"*": true, "b": false})).await;
    let r = s.get(&path, Some(&t.admin)).await;
    assert_eq!(r.body["data"]["modules"], json!({"*": true, "b": false}));
    assert_eq!(r.body["data"]["updated_by"], t.admin_id.as_str());
    for bad in [
        json!("a"),
        json!(["a b"]),
        json!([1]),
        json!({"a": 1}),
        json!({"bad key": true}),
        json!(null),
    ] {
        s.call(
            "PUT",
            &path,
            Some(&t.admin),
            Some(json!({ "modules": bad })),
        )
        .await
        .assert_error(400, "VALIDATION_ERROR");
    }
    s.call("PUT", &path, Some(&t.admin), Some(json!({})))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get("/api/v1/entitlements/nobody", Some(&t.admin))
        .await
        .assert_error(404, "USER_NOT_FOUND");
    s.call(
        "PUT",
        "/api/v1/entitlements/nobody",
        Some(&t.admin),
        Some(json!({"modules": []})),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");

    // Operators and viewers: 403 everywhere here.
    for tok in [&t.operator, &t.viewer] {
        s.get("/api/v1/tenant-licenses", Some(tok))
            .await
            .assert_error(403, "FORBIDDEN");
        s.post("/api/v1/tenant-licenses", Some(tok), json!({}))
            .await
            .assert_error(403, "FORBIDDEN");
        s.get(&path, Some(tok)).await.assert_error(403, "FORBIDDEN");
        s.call("PUT", &path, Some(tok), Some(json!({"modules": ["*"]})))
            .await
            .assert_error(403, "FORBIDDEN");
        s.get("/api/v1/license-audit", Some(tok))
            .await
            .assert_error(403, "FORBIDDEN");
    }

    // The audit trail: every change, newest first, with before/after.
    let r = s
        .get(
            "/api/v1/license-audit?sort=created_at&order=asc&limit=200",
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let actions: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "license.created",
            "license.created",
            "license.updated",
            "license.updated",
            "license.deleted",
            "entitlement.updated",
            "entitlement.updated"
        ]
    );
    let entries = r.body["data"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["actor_id"] == t.admin_id.as_str()));
    assert_eq!(entries[2]["data"]["before"]["type"], "subscription");
    assert_eq!(entries[2]["data"]["after"]["type"], "alltime");
    assert_eq!(entries[4]["data"]["before"]["id"], sub.as_str());
    assert!(entries[5]["data"]["before"].is_null());
    assert_eq!(entries[6]["data"]["before"], json!(["a", "b"]));
    let r = s
        .get(
            &format!("/api/v1/license-audit?action=license.updated&target_id={per_user}"),
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.body["meta"]["total"], 2, "{}", r.body);
    s.get("/api/v1/license-audit?action=nope", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

async fn lease_check_chain_reaches_every_code(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "lic-chain").await;
    // 1. The VM must be registered …
    lease(&s, &t.operator)
        .await
        .assert_error(404, "VM_NOT_REGISTERED");
    // … to the lease's user …
    assert_eq!(
        register(&s, &t.operator2, json!({"vm_uuid": VM}))
            .await
            .status,
        201
    );
    lease(&s, &t.operator)
        .await
        .assert_error(403, "VM_OWNER_MISMATCH");
    let r = register(
        &s,
        &t.admin,
        json!({"vm_uuid": VM, "user_id": t.operator_id}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // … and active.
    for st in ["paused", "revoked"] {
        s.call(
            "PATCH",
            &format!("/api/v1/vms/{VM}"),
            Some(&t.admin),
            Some(json!({ "status": st })),
        )
        .await;
        lease(&s, &t.operator)
            .await
            .assert_error(403, "VM_INACTIVE");
    }
    s.call(
        "PATCH",
        &format!("/api/v1/vms/{VM}"),
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await;
    // 2. An active license: none; expired subscription; another user's;
    //    revoked; a subscription without expiry.
    let r = lease(&s, &t.operator).await;
    r.assert_error(403, "LICENSE_INACTIVE");
    assert_eq!(
        r.body["error"]["message"],
        "Active subscription or perpetual license is required"
    );
    create_license(
        &s,
        &t.admin,
        json!({"type": "subscription", "expires_at_ms": now_ms() - 1000}),
    )
    .await;
    create_license(&s, &t.admin, json!({"type": "subscription"})).await;
    create_license(
        &s,
        &t.admin,
        json!({"type": "perpetual", "user_id": t.operator2_id(&s).await}),
    )
    .await;
    create_license(
        &s,
        &t.admin,
        json!({"type": "perpetual", "status": "revoked"}),
    )
    .await;
    create_license(
        &s,
        &t.admin,
        json!({"type": "alltime", "status": "expired"}),
    )
    .await;
    lease(&s, &t.operator)
        .await
        .assert_error(403, "LICENSE_INACTIVE");
    let own = create_license(
        &s,
        &t.admin,
        json!({"type": "subscription", "expires_at_ms": now_ms() + 3_600_000, "user_id": t.operator_id}),
    )
    .await;
    // 3. Entitlements: none, then ones without the module.
    lease(&s, &t.operator)
        .await
        .assert_error(403, "ENTITLEMENT_REQUIRED");
    for modules in [
        json!([]),
        json!(["other"]),
        json!({"farm-bot": false}),
        json!({"*": false, "other": true}),
    ] {
        entitle(&s, &t.admin, &t.operator_id, modules.clone()).await;
        let r = lease(&s, &t.operator).await;
        r.assert_error(403, "MODULE_NOT_ALLOWED");
    }
    for modules in [
        json!(["farm-bot"]),
        json!({"farm-bot": true}),
        json!({"*": true}),
    ] {
        entitle(&s, &t.admin, &t.operator_id, modules).await;
        let r = lease(&s, &t.operator).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let d = &r.body["data"];
        assert_eq!(d["license_id"], own.as_str(), "the user's own license wins");
        assert_eq!(d["user_id"], t.operator_id.as_str());
        assert_eq!(d["vm_uuid"], VM);
        assert_eq!(d["module"], MODULE);
        assert_eq!(d["version"], "1.2.3");
        assert_eq!(d["status"], "active");
        assert_eq!(d["tenant_id"], "lic-chain");
    }
    // The user_id override: operators no, admins for users of the tenant.
    let mut body = lease_body(VM, MODULE);
    body["user_id"] = json!(t.admin_id);
    s.post("/api/v1/license/lease", Some(&t.operator), body.clone())
        .await
        .assert_error(403, "FORBIDDEN");
    body["user_id"] = json!("nobody");
    s.post("/api/v1/license/lease", Some(&t.admin), body.clone())
        .await
        .assert_error(404, "USER_NOT_FOUND");
    body["user_id"] = json!(t.operator_id);
    let r = s.post("/api/v1/license/lease", Some(&t.admin), body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Without user_id an admin leases for itself: not the VM's owner.
    lease(&s, &t.admin)
        .await
        .assert_error(403, "VM_OWNER_MISMATCH");
    lease(&s, &t.viewer).await.assert_error(403, "FORBIDDEN");
    // Validation.
    for (k, v) in [
        ("vm_uuid", json!("short")),
        ("module", json!("has space")),
        ("module", json!("*")),
        ("module", json!("")),
        ("agent_id", json!("")),
        ("runner_id", json!("x".repeat(201))),
        ("runner_id", json!("a\nb")),
        ("version", json!("v".repeat(101))),
    ] {
        let mut b = lease_body(VM, MODULE);
        b[k] = v;
        let r = s.post("/api/v1/license/lease", Some(&t.operator), b).await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["details"]["fields"].get(k).is_some(),
            "{k}: {}",
            r.body
        );
    }
    s.stop().await;
}

impl Team {
    async fn operator2_id(&self, s: &TestServer) -> String {
        s.get("/api/v1/auth/whoami", Some(&self.operator2))
            .await
            .body["data"]["uid"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

async fn heartbeat_extends_up_to_the_maximum_and_revoke_is_immediate(backend: Backend) {
    let settings = Settings {
        license_lease_ttl_seconds: Some(60),
        license_lease_max_lifetime_seconds: Some(600),
        ..base_settings()
    };
    let s = TestServer::start_with(backend, settings, axum::Router::new()).await;
    let (t, lic) = licensed(&s, "lic-hb").await;
    let before = now_ms();
    let r = lease(&s, &t.operator).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["lease_id"].as_str().unwrap().to_string();
    let first = r.body["data"]["expires_at"].as_i64().unwrap();
    let max = r.body["data"]["max_expires_at"].as_i64().unwrap();
    assert!(
        (before + 60_000..=now_ms() + 60_000).contains(&first),
        "TTL 60 s"
    );
    assert!(
        (before + 600_000..=now_ms() + 600_000).contains(&max),
        "max 600 s"
    );

    // A heartbeat extends the lease by its TTL from now.
    set_lease(&s, &id, "expires_at", now_ms() + 1_000).await;
    let t0 = now_ms();
    let r = hb(&s, &t.operator, id.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["status"], "active");
    assert_eq!(d["lease_id"], id.as_str());
    let extended = d["expires_at"].as_i64().unwrap();
    assert!(
        extended >= t0 + 60_000 && extended <= now_ms() + 60_000,
        "{d}"
    );
    assert!(d["last_heartbeat_at"].as_i64().unwrap() >= t0);
    assert_eq!(d["max_expires_at"], max);
    // … but never past the maximum lifetime.
    let cap = now_ms() + 5_000;
    set_lease(&s, &id, "max_expires_at", cap).await;
    for _ in 0..2 {
        let r = hb(&s, &t.operator, id.clone()).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["expires_at"], cap, "{}", r.body);
    }
    // Past its expiry the lease is dead: LEASE_EXPIRED, stored as expired.
    set_lease(&s, &id, "expires_at", now_ms() - 1).await;
    hb(&s, &t.operator, id.clone())
        .await
        .assert_error(409, "LEASE_EXPIRED");
    let (status,): (String,) = sqlx::query_as("SELECT status FROM execution_leases WHERE id = $1")
        .bind(&id)
        .fetch_one(s.db.raw_pool())
        .await
        .unwrap();
    assert_eq!(status, "expired");
    hb(&s, &t.operator, id.clone())
        .await
        .assert_error(409, "LEASE_EXPIRED");

    // A heartbeat re-runs the chain: a paused VM or a withdrawn license ends it.
    let r = lease(&s, &t.operator).await;
    let id2 = r.body["data"]["lease_id"].as_str().unwrap().to_string();
    let token2 = r.body["data"]["token"].as_str().unwrap().to_string();
    s.call(
        "PATCH",
        &format!("/api/v1/vms/{VM}"),
        Some(&t.admin),
        Some(json!({"status": "paused"})),
    )
    .await;
    hb(&s, &t.operator, id2.clone())
        .await
        .assert_error(403, "VM_INACTIVE");
    s.call(
        "PATCH",
        &format!("/api/v1/vms/{VM}"),
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await;
    s.call(
        "PATCH",
        &format!("/api/v1/tenant-licenses/{lic}"),
        Some(&t.admin),
        Some(json!({"status": "revoked"})),
    )
    .await;
    hb(&s, &t.operator, id2.clone())
        .await
        .assert_error(403, "LICENSE_INACTIVE");
    s.call(
        "PATCH",
        &format!("/api/v1/tenant-licenses/{lic}"),
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await;
    entitle(&s, &t.admin, &t.operator_id, json!(["something-else"])).await;
    hb(&s, &t.operator, id2.clone())
        .await
        .assert_error(403, "MODULE_NOT_ALLOWED");
    entitle(&s, &t.admin, &t.operator_id, json!(["*"])).await;
    assert_eq!(hb(&s, &t.operator, id2.clone()).await.status, 200);

    // Revoke: admin only, immediate, once.
    let revoke = |reason: &str| json!({"lease_id": id2, "reason": reason});
    s.post("/api/v1/license/revoke", Some(&t.operator), revoke("mine"))
        .await
        .assert_error(403, "FORBIDDEN");
    s.post(
        "/api/v1/license/revoke",
        Some(&t.admin),
        json!({"lease_id": id2, "reason": "a\u{0}b"}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    let r = s
        .post(
            "/api/v1/license/revoke",
            Some(&t.admin),
            revoke("stolen runner"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "revoked");
    assert!(r.body["data"]["revoked_at"].as_i64().unwrap() <= now_ms());
    hb(&s, &t.operator, id2.clone())
        .await
        .assert_error(409, "LEASE_INACTIVE");
    s.post(
        "/api/v1/license/verify",
        Some(&t.operator),
        json!({ "lease_token": token2 }),
    )
    .await
    .assert_error(409, "LEASE_INACTIVE");
    s.post("/api/v1/license/revoke", Some(&t.admin), revoke("again"))
        .await
        .assert_error(409, "LEASE_INACTIVE");
    s.post(
        "/api/v1/license/revoke",
        Some(&t.admin),
        json!({"lease_id": "nope"}),
    )
    .await
    .assert_error(404, "LEASE_NOT_FOUND");
    hb(&s, &t.operator, "nope".into())
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    // An expired lease can still be revoked (then it reads as revoked).
    s.post(
        "/api/v1/license/revoke",
        Some(&t.admin),
        json!({"lease_id": id}),
    )
    .await;
    // The audit trail has the lease's life.
    let r = s
        .get(
            "/api/v1/license-audit?target_type=lease&sort=created_at&order=asc",
            Some(&t.admin),
        )
        .await;
    let actions: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "lease.issued",
            "lease.issued",
            "lease.revoked",
            "lease.revoked"
        ],
        "{}",
        r.body
    );
    assert_eq!(r.body["data"][2]["data"]["reason"], "stolen runner");
    s.stop().await;
}

fn b64json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn sign(header: &Value, claims: &Value, key: &[u8]) -> String {
    let h: jsonwebtoken::Header = serde_json::from_value(header.clone()).unwrap();
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
}

async fn lease_tokens_are_signed_hashed_and_verified(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (t, lic) = licensed(&s, "lic-tok").await;
    let b = team(&s, "lic-tok-b").await;
    let r = lease(&s, &t.operator).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = r.body["data"].clone();
    let id = d["lease_id"].as_str().unwrap().to_string();
    let token = d["token"].as_str().unwrap().to_string();

    // The server's key: created on first start in the data dir, 0600.
    let key_path = s.data.path().join("lease-signing-key");
    let key_text = std::fs::read_to_string(&key_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (kid, key_b64) = key_text.lines().next().unwrap().split_once(' ').unwrap();
    let key = URL_SAFE_NO_PAD.decode(key_b64.trim()).unwrap();

    // HS256 with kid; claims as the original's, jti = lease id.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = b64json(parts[0]);
    let claims = b64json(parts[1]);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], kid);
    assert_eq!(claims["jti"], id.as_str());
    assert_eq!(claims["iss"], "bot-mox-license");
    assert_eq!(claims["sub"], "runner-1");
    assert_eq!(claims["tenant_id"], "lic-tok");
    assert_eq!(claims["user_id"], t.operator_id.as_str());
    assert_eq!(claims["vm_uuid"], VM);
    assert_eq!(claims["agent_id"], "agent-1");
    assert_eq!(claims["module"], MODULE);
    assert_eq!(claims["version"], "1.2.3");
    assert_eq!(claims["license_id"], lic.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        d["max_expires_at"].as_i64().unwrap() / 1000
    );
    // The right key verifies it (independently of the server).
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_issuer(&["bot-mox-license"]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_secret(&key), &v)
        .expect("signed with the key file's first key");

    // Stored hashed only.
    let (hash,): (String,) =
        sqlx::query_as("SELECT token_hash FROM execution_leases WHERE id = $1")
            .bind(&id)
            .fetch_one(s.db.raw_pool())
            .await
            .unwrap();
    assert_eq!(hash, hex::encode(Sha256::digest(token.as_bytes())));
    assert_ne!(hash, token);

    let verify = |tok: String, who: String| {
        let s = &s;
        async move {
            s.post(
                "/api/v1/license/verify",
                Some(&who),
                json!({ "lease_token": tok }),
            )
            .await
        }
    };
    let r = verify(token.clone(), t.operator.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["lease_id"], id.as_str());
    assert_eq!(r.body["data"]["status"], "active");
    assert!(r.body["data"].get("token").is_none());
    assert_eq!(verify(token.clone(), t.admin.clone()).await.status, 200);

    // Tampered payload (signature kept), foreign key, alg none, unknown kid,
    // garbage: 401.
    let mut forged = claims.clone();
    forged["module"] = json!("other-module");
    let tampered = format!("{}.{}.{}", parts[0], b64(&forged), parts[2]);
    let foreign = sign(&header, &claims, b"another-server-key-of-32-bytes-long!!");
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    let unknown_kid = sign(&json!({"alg": "HS256", "kid": "lk-unknown"}), &claims, &key);
    let hs512 = sign(&json!({"alg": "HS512", "kid": kid}), &claims, &key);
    for bad in [
        tampered,
        foreign,
        none,
        unknown_kid,
        hs512,
        "not.a.jwt".into(),
        String::new(),
    ] {
        verify(bad.clone(), t.operator.clone())
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    // Signed with the right key but not the stored token (hash mismatch): 401.
    let mut other = claims.clone();
    other["sub"] = json!("runner-2");
    verify(sign(&header, &other, &key), t.operator.clone())
        .await
        .assert_error(401, "UNAUTHORIZED");
    // … naming no lease: 404; another tenant: 404; expired: 409.
    let mut ghost = claims.clone();
    ghost["jti"] = json!("0190aaaa-0000-7000-8000-000000000000");
    verify(sign(&header, &ghost, &key), t.operator.clone())
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    let mut elsewhere = claims.clone();
    elsewhere["tenant_id"] = json!("lic-tok-b");
    verify(sign(&header, &elsewhere, &key), b.admin.clone())
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    let mut old = claims.clone();
    old["exp"] = json!(1_000_000);
    verify(sign(&header, &old, &key), t.operator.clone())
        .await
        .assert_error(409, "LEASE_EXPIRED");
    // The real token: another tenant 404, another operator 403.
    verify(token.clone(), b.admin.clone())
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    verify(token.clone(), t.operator2.clone())
        .await
        .assert_error(403, "LEASE_OWNER_MISMATCH");
    verify("x".repeat(8193), t.operator.clone())
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // A row past its expiry: 409 even though the JWT's exp is later.
    set_lease(&s, &id, "expires_at", now_ms() - 1).await;
    verify(token.clone(), t.operator.clone())
        .await
        .assert_error(409, "LEASE_EXPIRED");
    s.stop().await;

    // A configured secret signs instead (no key file is created).
    let secret = "a-configured-lease-secret-of-40-characters";
    let settings = Settings {
        license_lease_secret: Some(secret.into()),
        ..base_settings()
    };
    let s = TestServer::start_with(backend, settings, axum::Router::new()).await;
    let (t, _) = licensed(&s, "lic-cfg").await;
    let r = lease(&s, &t.operator).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["data"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        b64json(token.split('.').next().unwrap())["kid"],
        "configured"
    );
    jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
    .expect("signed with the configured secret");
    assert!(!s.data.path().join("lease-signing-key").exists());
    assert_eq!(verify_on(&s, &token, &t.operator).await.status, 200);
    s.stop().await;
}

async fn verify_on(s: &TestServer, token: &str, who: &str) -> Resp {
    s.post(
        "/api/v1/license/verify",
        Some(who),
        json!({ "lease_token": token }),
    )
    .await
}

async fn roles_and_tenants_on_every_route(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a, lic) = licensed(&s, "lic-ra").await;
    let b = team(&s, "lic-rb").await;
    let infra = s.admin_token().await;
    let r = lease(&s, &a.operator).await;
    let lease_id = r.body["data"]["lease_id"].as_str().unwrap().to_string();
    let token = r.body["data"]["token"].as_str().unwrap().to_string();
    let ent = format!("/api/v1/entitlements/{}", a.operator_id);
    let one = format!("/api/v1/tenant-licenses/{lic}");
    // Destructive calls last, so the owner's positive control can run in order.
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/tenant-licenses".into(), None),
        ("POST", "/api/v1/tenant-licenses".into(), Some(json!({}))),
        ("GET", one.clone(), None),
        ("GET", ent.clone(), None),
        ("PUT", ent.clone(), Some(json!({"modules": ["*"]}))),
        ("GET", "/api/v1/license-audit".into(), None),
        (
            "POST",
            "/api/v1/license/lease".into(),
            Some(lease_body(VM, MODULE)),
        ),
        (
            "POST",
            "/api/v1/license/heartbeat".into(),
            Some(json!({"lease_id": lease_id})),
        ),
        (
            "POST",
            "/api/v1/license/verify".into(),
            Some(json!({"lease_token": token})),
        ),
        (
            "POST",
            "/api/v1/license/revoke".into(),
            Some(json!({"lease_id": lease_id})),
        ),
        ("PATCH", one.clone(), Some(json!({"status": "revoked"}))),
        ("DELETE", one.clone(), None),
    ];
    for (method, path, body) in &routes {
        s.call(method, path, None, body.clone())
            .await
            .assert_error(401, "UNAUTHORIZED");
    }
    let expect = |who: &str, route: usize| -> (u16, &'static str) {
        match (who, route) {
            ("viewer", 8) => (403, "LEASE_OWNER_MISMATCH"),
            ("viewer", _) => (403, "FORBIDDEN"),
            ("operator2", 6) => (403, "VM_OWNER_MISMATCH"),
            ("operator2", 7 | 8) => (403, "LEASE_OWNER_MISMATCH"),
            ("operator2", _) => (403, "FORBIDDEN"),
            // B's admin, infra (tenant `default`): A's objects do not exist.
            (_, 0 | 1 | 5) => (0, ""),
            (_, 2 | 10 | 11) => (404, "LICENSE_NOT_FOUND"),
            (_, 3 | 4) => (404, "USER_NOT_FOUND"),
            (_, 6) => (404, "VM_NOT_REGISTERED"),
            (_, _) => (404, "LEASE_NOT_FOUND"),
        }
    };
    for (who, tok) in [
        ("viewer", &a.viewer),
        ("operator2", &a.operator2),
        ("b-admin", &b.admin),
        ("infra", &infra),
    ] {
        for (i, (method, path, body)) in routes.iter().enumerate() {
            let r = s.call(method, path, Some(tok), body.clone()).await;
            let (status, code) = expect(who, i);
            if status == 0 {
                // Their own tenant's collection: allowed, nothing of A in it.
                assert!(
                    (200..300).contains(&r.status),
                    "{who} {method} {path}: {}",
                    r.body
                );
                let text = r.body.to_string();
                assert!(
                    !text.contains(&lic) && !text.contains(&a.operator_id),
                    "{who}: {text}"
                );
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (status, code),
                    "{who} {method} {path}: {}",
                    r.body
                );
            }
        }
    }
    // Nothing of A changed: the license, the entitlement, the lease.
    let r = s.get(&one, Some(&a.admin)).await;
    assert_eq!(r.body["data"]["status"], "active");
    assert_eq!(
        s.get(&ent, Some(&a.admin)).await.body["data"]["modules"],
        json!(["*"])
    );
    let r = s
        .post(
            "/api/v1/license/heartbeat",
            Some(&a.operator),
            json!({"lease_id": lease_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The owner's positive control: the same calls succeed for A.
    for (method, path, body) in &routes {
        let tok = if path.starts_with("/api/v1/license/") && !path.ends_with("/revoke") {
            &a.operator
        } else {
            &a.admin
        };
        let r = s.call(method, path, Some(tok), body.clone()).await;
        assert!(
            (200..300).contains(&r.status),
            "owner {method} {path}: {}",
            r.body
        );
    }
    s.stop().await;
}

async fn other_domains_ask_for_an_active_license(backend: Backend) {
    use control_server::auth::{Identity, IdentitySource, Role};
    use control_server::db::ids::{TenantId, UserId};
    let s = TestServer::start(backend).await;
    let t = team(&s, "lic-svc").await;
    let cfg = Config::from_settings(Settings {
        data_dir: Some(s.data.path().to_path_buf()),
        ..base_settings()
    })
    .unwrap();
    let services = control_server::state::Services::new(&s.db, &cfg).unwrap();
    let scope = Identity {
        source: IdentitySource::Session,
        user_id: UserId::from(t.admin_id.as_str()),
        email: "admin@lic-svc.test".into(),
        tenant_id: TenantId::from("lic-svc"),
        role: Role::Admin,
        infra: false,
        token_id: None,
    }
    .scope();
    let op = UserId::from(t.operator_id.as_str());
    let viewer = UserId::from(t.viewer_id.as_str());
    let lic = &services.licensing;
    assert!(!lic.has_active_license(&scope, Some(&op)).await.unwrap());
    assert!(!lic.has_active_license(&scope, None).await.unwrap());
    // A subscription of the operator's: the operator, and "anyone", only.
    let sub = create_license(
        &s,
        &t.admin,
        json!({"type": "subscription", "expires_at_ms": now_ms() + 60_000, "user_id": t.operator_id}),
    )
    .await;
    assert!(lic.has_active_license(&scope, Some(&op)).await.unwrap());
    assert!(!lic.has_active_license(&scope, Some(&viewer)).await.unwrap());
    assert!(lic.has_active_license(&scope, None).await.unwrap());
    let v = lic
        .active_license(&scope, Some(&op))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.id, sub);
    // Expired: no more.
    s.call(
        "PATCH",
        &format!("/api/v1/tenant-licenses/{sub}"),
        Some(&t.admin),
        Some(json!({"expires_at_ms": now_ms() - 1})),
    )
    .await;
    assert!(!lic.has_active_license(&scope, Some(&op)).await.unwrap());
    // A tenant-wide perpetual license covers everyone; revoked, nobody.
    let all = create_license(&s, &t.admin, json!({"type": "perpetual"})).await;
    assert!(lic.has_active_license(&scope, Some(&viewer)).await.unwrap());
    s.call(
        "PATCH",
        &format!("/api/v1/tenant-licenses/{all}"),
        Some(&t.admin),
        Some(json!({"status": "revoked"})),
    )
    .await;
    assert!(!lic.has_active_license(&scope, Some(&viewer)).await.unwrap());
    // Another tenant's licenses never count.
    let other = Identity {
        source: IdentitySource::Session,
        user_id: op.clone(),
        email: "x@x.test".into(),
        tenant_id: TenantId::from("default"),
        role: Role::Admin,
        infra: false,
        token_id: None,
    }
    .scope();
    create_license(&s, &t.admin, json!({"type": "alltime"})).await;
    assert!(!lic.has_active_license(&other, None).await.unwrap());
    s.stop().await;
}
