//! Artifacts (issue #13, inventory §2.10 and the smoke scenario of §7) on
//! both backends and both object stores (the local store and S3 on moto):
//! releases registered (size and SHA-256 verified) or uploaded through the
//! server (streamed, verified, refused on mismatch), status changes,
//! assignments replaced in one transaction, resolve-download with every
//! code of its chain and an audit row for every outcome, the download
//! through the URL over real HTTP, signed local URLs, readiness, roles and
//! tenants.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{base_settings, Backend, Resp, TestServer};
use crate::moto::{Kind, TestStore};
use crate::vms::{team, Team};

backend_tests!(
    smoke_end_to_end_on_local,
    smoke_end_to_end_on_s3,
    resolve_reaches_every_code_and_audits_each_on_local,
    resolve_reaches_every_code_and_audits_each_on_s3,
    releases_register_upload_and_status_on_local,
    releases_register_upload_and_status_on_s3,
    assignments_replace_in_one_transaction_and_resolve_by_user,
    roles_and_tenants_on_every_route,
    local_object_urls_are_signed_scoped_and_expire
);

const VM: &str = "4C4C4544-0042-3510-8052-B4C04F4A3132";
const VM_LC: &str = "4c4c4544-0042-3510-8052-b4c04f4a3132";
const MODULE: &str = "farm-bot";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Bytes that are not all alike (a mix-up of parts would show).
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A server on `backend` with `store`; `None` when S3 is wanted and moto
/// is not installed (outside CI).
async fn server(backend: Backend, kind: Kind) -> Option<(TestServer, TestStore)> {
    let store = TestStore::new(kind).await?;
    let mut settings = base_settings();
    store.apply(&mut settings);
    let s = TestServer::start_with(backend, settings, axum::Router::new()).await;
    Some((s, store))
}

async fn put_bytes(s: &TestServer, path: &str, token: &str, bytes: Vec<u8>) -> Resp {
    let r = s
        .http
        .put(s.url(path))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

/// A draft release whose content is uploaded through the server, then
/// activated: its id.
async fn uploaded_release(
    s: &TestServer,
    admin: &str,
    module: &str,
    version: &str,
    bytes: &[u8],
) -> String {
    let r = s
        .post(
            "/api/v1/artifacts/releases",
            Some(admin),
            json!({"module": module, "platform": "windows", "version": version,
                   "sha256": sha(bytes), "size_bytes": bytes.len()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = put_bytes(
        s,
        &format!("/api/v1/artifacts/releases/{id}/content"),
        admin,
        bytes.to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/artifacts/releases/{id}"),
            Some(admin),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    id
}

async fn assign(s: &TestServer, admin: &str, body: Value) -> Resp {
    s.post("/api/v1/artifacts/assign", Some(admin), body).await
}

/// The operator of `t` owns VM, holds a perpetual license and every module.
async fn license_operator(s: &TestServer, t: &Team) {
    let r = s
        .post(
            "/api/v1/vm/register",
            Some(&t.operator),
            json!({"vm_uuid": VM, "vm_name": "runner-vm"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&t.admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/entitlements/{}", t.operator_id),
            Some(&t.admin),
            Some(json!({"modules": ["*"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Lease `module` on VM for the operator: (lease id, token).
async fn lease(s: &TestServer, t: &Team, module: &str) -> (String, String) {
    let r = s
        .post(
            "/api/v1/license/lease",
            Some(&t.operator),
            json!({"vm_uuid": VM, "agent_id": "agent-1", "runner_id": "runner-1", "module": module}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["data"]["lease_id"].as_str().unwrap().to_string(),
        r.body["data"]["token"].as_str().unwrap().to_string(),
    )
}

fn resolve_body(token: &str, vm: &str, module: &str) -> Value {
    json!({"lease_token": token, "vm_uuid": vm, "module": module, "platform": "windows"})
}

async fn resolve(s: &TestServer, caller: &str, body: Value) -> Resp {
    s.post("/api/v1/artifacts/resolve-download", Some(caller), body)
        .await
}

/// GET a URL over real HTTP without a bearer token: (status, bytes,
/// content type).
async fn download(url: &str) -> (u16, Vec<u8>, String) {
    let r = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("download");
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, r.bytes().await.unwrap().to_vec(), ctype)
}

async fn audit(s: &TestServer, admin: &str, query: &str) -> Vec<Value> {
    let r = s
        .get(&format!("/api/v1/artifacts/audit{query}"), Some(admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].as_array().unwrap().clone()
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

fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["module"] = json!("another-module");
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

// ------------------------------------------------------------ the smoke

async fn smoke_end_to_end_on_local(b: Backend) {
    smoke_end_to_end(b, Kind::Local).await
}
async fn smoke_end_to_end_on_s3(b: Backend) {
    smoke_end_to_end(b, Kind::S3).await
}

/// §7's `artifacts-e2e-smoke`: upload → release → assign → register VM →
/// license → lease → resolve → download and check the SHA-256 → every
/// denial path → the audit rows.
async fn smoke_end_to_end(backend: Backend, kind: Kind) {
    let Some((s, store)) = server(backend, kind).await else {
        return;
    };
    let t = team(&s, "art-smoke").await;
    // More than one 5 MiB part: the streamed multipart path.
    let bytes = payload(6 * 1024 * 1024 + 12_345, 7);
    // 1. Upload → release (draft, pending) → content → active.
    let r = s
        .post(
            "/api/v1/artifacts/releases",
            Some(&t.admin),
            json!({"module": MODULE, "platform": "Windows", "version": "1.4.0",
                   "sha256": sha(&bytes).to_uppercase(), "size_bytes": bytes.len()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["status"], "draft");
    assert_eq!(d["content"], "pending");
    assert_eq!(d["platform"], "windows", "lower-cased");
    assert_eq!(d["channel"], "stable", "default channel");
    assert_eq!(d["sha256"], sha(&bytes).as_str(), "lower-cased");
    let release = d["id"].as_str().unwrap().to_string();
    let key = d["object_key"].as_str().unwrap().to_string();
    assert_eq!(key, format!("artifacts/art-smoke/releases/{release}"));
    let content = format!("/api/v1/artifacts/releases/{release}/content");
    // Wrong bytes of the right length, too many bytes: refused, nothing stored.
    let mut wrong = bytes.clone();
    wrong[3_000_000] ^= 1;
    put_bytes(&s, &content, &t.admin, wrong)
        .await
        .assert_error(409, "ARTIFACT_CONTENT_MISMATCH");
    let mut long = bytes.clone();
    long.push(0);
    put_bytes(&s, &content, &t.admin, long)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");
    put_bytes(&s, &content, &t.admin, bytes[..100].to_vec())
        .await
        .assert_error(409, "ARTIFACT_CONTENT_MISMATCH");
    assert_eq!(
        store.get(&s, &key).await,
        None,
        "refused uploads left nothing"
    );
    assert_eq!(store.count(&s, "artifacts/art-smoke").await, 0);
    // Not active before its content is there.
    s.call(
        "PATCH",
        &format!("/api/v1/artifacts/releases/{release}"),
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await
    .assert_error(409, "ARTIFACT_CONTENT_MISSING");
    let r = put_bytes(&s, &content, &t.admin, bytes.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["content"], "ready");
    assert_eq!(r.body["data"]["status"], "draft");
    assert_eq!(store.get(&s, &key).await.as_deref(), Some(&bytes[..]));
    assert_eq!(store.count(&s, "artifacts/art-smoke").await, 1);
    put_bytes(&s, &content, &t.admin, bytes.clone())
        .await
        .assert_error(409, "ARTIFACT_CONTENT_EXISTS");
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/artifacts/releases/{release}"),
            Some(&t.admin),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "active");

    // 2. Assign (the tenant default).
    let r = assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": release}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["is_default"], true);
    assert!(r.body["data"]["user_id"].is_null());

    // 3. Register the VM, license, entitlement, lease.
    license_operator(&s, &t).await;
    let (lease_id, token) = lease(&s, &t, MODULE).await;

    // 4. Resolve (any case of the VM UUID) and download over real HTTP.
    let before = chrono::Utc::now().timestamp_millis();
    let r = resolve(&s, &t.operator, resolve_body(&token, VM, MODULE)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = r.body["data"].clone();
    assert_eq!(d["release_id"], release.as_str());
    assert_eq!(d["version"], "1.4.0");
    assert_eq!(d["sha256"], sha(&bytes).as_str());
    assert_eq!(d["size_bytes"], bytes.len());
    let expires = d["url_expires_at"].as_i64().unwrap();
    assert!(
        expires > before + 290_000 && expires <= before + 301_000,
        "300 s by default: {expires} vs {before}"
    );
    let url = d["download_url"].as_str().unwrap();
    match kind {
        Kind::Local => assert!(url.starts_with(&s.url("/api/v1/objects/")), "{url}"),
        Kind::S3 => {
            let m = store.moto.as_ref().unwrap();
            assert!(
                url.starts_with(&format!("{}/botmox-objects/{key}?", m.endpoint())),
                "path-style presigned URL: {url}"
            );
            assert!(url.contains("X-Amz-Signature="), "{url}");
            assert!(url.contains("X-Amz-Expires=300"), "{url}");
        }
    }
    let (status, got, _) = download(url).await;
    assert_eq!(status, 200);
    assert_eq!(got.len(), bytes.len());
    assert_eq!(sha(&got), sha(&bytes), "the downloaded bytes match");
    let r = resolve(&s, &t.operator, resolve_body(&token, VM_LC, MODULE)).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // 5. Every denial path of the smoke script.
    resolve(
        &s,
        &t.operator,
        resolve_body(&token, "vm-other-0001", MODULE),
    )
    .await
    .assert_error(403, "VM_UUID_MISMATCH");
    resolve(&s, &t.operator, resolve_body(&token, VM, "other-module"))
        .await
        .assert_error(403, "MODULE_MISMATCH");
    resolve(&s, &t.operator, resolve_body(&tamper(&token), VM, MODULE))
        .await
        .assert_error(401, "UNAUTHORIZED");
    let r = s
        .post(
            "/api/v1/license/revoke",
            Some(&t.admin),
            json!({"lease_id": lease_id, "reason": "smoke"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    resolve(&s, &t.operator, resolve_body(&token, VM, MODULE))
        .await
        .assert_error(409, "LEASE_INACTIVE");
    let (expired_id, expired) = lease(&s, &t, MODULE).await;
    set_lease(&s, &expired_id, "expires_at", 1).await;
    resolve(&s, &t.operator, resolve_body(&expired, VM, MODULE))
        .await
        .assert_error(409, "LEASE_EXPIRED");

    // 6. The audit: one row per attempt, newest first.
    let rows = audit(&s, &t.admin, "").await;
    let results: Vec<(&str, &str)> = rows
        .iter()
        .rev()
        .map(|r| {
            (
                r["result"].as_str().unwrap(),
                r["error_code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("allowed", ""),
            ("allowed", ""),
            ("denied", "VM_UUID_MISMATCH"),
            ("denied", "MODULE_MISMATCH"),
            ("denied", "UNAUTHORIZED"),
            ("denied", "LEASE_INACTIVE"),
            ("denied", "LEASE_EXPIRED"),
        ]
    );
    let ok = rows.last().unwrap();
    assert_eq!(ok["event_type"], "resolve_success");
    assert_eq!(ok["lease_id"], lease_id.as_str());
    assert_eq!(ok["lease_jti"], lease_id.as_str());
    assert_eq!(ok["user_id"], t.operator_id.as_str());
    assert_eq!(ok["actor_id"], t.operator_id.as_str());
    assert_eq!(ok["vm_uuid"], VM_LC);
    assert_eq!(ok["module"], MODULE);
    assert_eq!(ok["platform"], "windows");
    assert_eq!(ok["channel"], "stable");
    assert_eq!(ok["release_id"], release.as_str());
    assert_eq!(ok["request_ip"], "127.0.0.1");
    assert_eq!(ok["url_expires_at"], expires);
    assert_eq!(ok["metadata"]["source"], "tenant-default");
    assert!(ok["reason"].is_null());
    let denied = &rows[0];
    assert_eq!(denied["event_type"], "resolve_denied");
    assert_eq!(denied["reason"], "lease_expired");
    assert_eq!(denied["metadata"]["error_code"], "LEASE_EXPIRED");
    assert_eq!(denied["metadata"]["status"], 409);
    assert_eq!(denied["lease_id"], expired_id.as_str());
    assert!(denied["url_expires_at"].is_null());
    let forged = &rows[2];
    assert!(
        forged["lease_id"].is_null() && forged["user_id"].is_null(),
        "an unverified token names no lease: {forged}"
    );
    // List kit filters: result, module, vm, time.
    assert_eq!(audit(&s, &t.admin, "?result=allowed").await.len(), 2);
    assert_eq!(audit(&s, &t.admin, "?result=denied").await.len(), 5);
    assert_eq!(audit(&s, &t.admin, "?module=other-module").await.len(), 1);
    assert_eq!(audit(&s, &t.admin, "?vm_uuid=vm-other-0001").await.len(), 1);
    assert_eq!(
        audit(&s, &t.admin, &format!("?created_at_gte={}", before - 1))
            .await
            .len(),
        7
    );
    assert_eq!(
        audit(&s, &t.admin, &format!("?created_at_lt={before}"))
            .await
            .len(),
        0
    );
    assert_eq!(
        audit(
            &s,
            &t.admin,
            "?result_in=denied,error&sort=created_at&order=asc&limit=2"
        )
        .await[0]["error_code"],
        "VM_UUID_MISMATCH"
    );
    s.get("/api/v1/artifacts/audit?result=maybe", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

// ------------------------------------------------------------ every code

async fn resolve_reaches_every_code_and_audits_each_on_local(b: Backend) {
    resolve_reaches_every_code_and_audits_each(b, Kind::Local).await
}
async fn resolve_reaches_every_code_and_audits_each_on_s3(b: Backend) {
    resolve_reaches_every_code_and_audits_each(b, Kind::S3).await
}

async fn resolve_reaches_every_code_and_audits_each(backend: Backend, kind: Kind) {
    let Some((s, mut store)) = server(backend, kind).await else {
        return;
    };
    let t = team(&s, "art-codes").await;
    let other = team(&s, "art-codes-b").await;
    license_operator(&s, &t).await;
    let bytes = payload(4096, 1);
    let release = uploaded_release(&s, &t.admin, MODULE, "2.0.0", &bytes).await;
    let (lease_id, token) = lease(&s, &t, MODULE).await;
    let body = || resolve_body(&token, VM, MODULE);
    let attempts = std::cell::Cell::new(0usize);
    let allowed = |r: Resp| {
        assert_eq!(r.status, 200, "{}", r.body);
        attempts.set(attempts.get() + 1);
    };
    let expect = |r: Resp, status: u16, code: &str| {
        r.assert_error(status, code);
        attempts.set(attempts.get() + 1);
    };

    // Role and request checks inside the service are audited too.
    expect(resolve(&s, &t.viewer, body()).await, 403, "FORBIDDEN");
    let mut bad = body();
    bad["platform"] = json!("win dows");
    expect(resolve(&s, &t.operator, bad).await, 400, "VALIDATION_ERROR");
    // The lease: forged, another user's, another tenant's.
    expect(
        resolve(&s, &t.operator, resolve_body("not-a-jwt", VM, MODULE)).await,
        401,
        "UNAUTHORIZED",
    );
    expect(
        resolve(&s, &t.operator2, body()).await,
        403,
        "LEASE_OWNER_MISMATCH",
    );
    // No assignment yet (for the lease's user nor as default).
    expect(
        resolve(&s, &t.operator, body()).await,
        404,
        "ARTIFACT_ASSIGNMENT_NOT_FOUND",
    );
    let r = assign(
        &s,
        &t.admin,
        json!({"user_id": t.operator_id, "module": MODULE, "platform": "windows", "release_id": release}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The release must be active.
    let patch = |status: &'static str| {
        let s = &s;
        let admin = t.admin.clone();
        let release = release.clone();
        async move {
            let r = s
                .call(
                    "PATCH",
                    &format!("/api/v1/artifacts/releases/{release}"),
                    Some(&admin),
                    Some(json!({ "status": status })),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    for status in ["disabled", "archived", "draft"] {
        patch(status).await;
        expect(
            resolve(&s, &t.operator, body()).await,
            409,
            "ARTIFACT_RELEASE_NOT_ACTIVE",
        );
    }
    patch("active").await;
    allowed(resolve(&s, &t.operator, body()).await);
    // An admin may resolve another user's lease (its source: the user's assignment).
    allowed(resolve(&s, &t.admin, body()).await);
    // The object changed or vanished behind the server's back.
    let key = format!("artifacts/art-codes/releases/{release}");
    store.put(&s, &key, b"short").await;
    expect(
        resolve(&s, &t.operator, body()).await,
        409,
        "ARTIFACT_CONTENT_MISMATCH",
    );
    store.delete(&s, &key).await;
    expect(
        resolve(&s, &t.operator, body()).await,
        404,
        "ARTIFACT_OBJECT_NOT_FOUND",
    );
    store.put(&s, &key, &bytes).await;
    // The lease expired (the row), then another tenant presents the token.
    allowed(resolve(&s, &t.operator, body()).await);
    set_lease(&s, &lease_id, "expires_at", 1).await;
    expect(resolve(&s, &t.operator, body()).await, 409, "LEASE_EXPIRED");
    resolve(&s, &other.operator, body())
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    let in_b = audit(&s, &other.admin, "").await;
    assert_eq!(
        in_b.len(),
        1,
        "the attempt is audited in the caller's tenant"
    );
    assert_eq!(in_b[0]["error_code"], "LEASE_NOT_FOUND");
    assert!(in_b[0]["lease_id"].is_null() && in_b[0]["release_id"].is_null());

    let rows = audit(&s, &t.admin, "?limit=200").await;
    let attempts = attempts.get();
    assert_eq!(rows.len(), attempts, "one audit row per attempt");
    let forbidden = rows.last().unwrap();
    assert_eq!(forbidden["result"], "denied");
    assert_eq!(forbidden["reason"], "forbidden");
    assert_eq!(forbidden["actor_id"], t.viewer_id.as_str());
    assert!(forbidden["lease_id"].is_null());
    let by_user: Vec<&Value> = rows.iter().filter(|r| r["result"] == "allowed").collect();
    assert_eq!(by_user.len(), 3);
    assert!(by_user.iter().all(|r| r["metadata"]["source"] == "user"));
    assert!(by_user
        .iter()
        .any(|r| r["actor_id"] == t.admin_id.as_str() && r["user_id"] == t.operator_id.as_str()));

    // A new lease, then: the audit cannot be written → no URL (502).
    let (_, fresh) = lease(&s, &t, MODULE).await;
    sqlx::query("ALTER TABLE artifact_download_audit RENAME TO artifact_download_audit_off")
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    let r = resolve(&s, &t.operator, resolve_body(&fresh, VM, MODULE)).await;
    r.assert_error(502, "ARTIFACT_AUDIT_WRITE_FAILED");
    assert!(r.body["data"].is_null() && !r.body.to_string().contains("/api/v1/objects/"));
    sqlx::query("ALTER TABLE artifact_download_audit_off RENAME TO artifact_download_audit")
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    assert_eq!(audit(&s, &t.admin, "?limit=200").await.len(), attempts);

    // S3 down: the object cannot be asked for (502, audited as an error),
    // and readiness names the object store.
    if kind == Kind::S3 {
        store.moto.as_mut().unwrap().kill().await;
        let r = resolve(&s, &t.operator, resolve_body(&fresh, VM, MODULE)).await;
        r.assert_error(502, "S3_HEAD_OBJECT_FAILED");
        let rows = audit(&s, &t.admin, "?result=error").await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["error_code"], "S3_HEAD_OBJECT_FAILED");
        assert_eq!(rows[0]["reason"], "s3_head_object_failed");
        assert_eq!(rows[0]["release_id"], release.as_str());
        let ready = s.get("/api/v1/health/ready", None).await;
        ready.assert_error(503, "NOT_READY");
        assert_eq!(
            ready.body["error"]["details"]["checks"],
            json!({"database": {"ready": true}, "object_store": {"ready": false}})
        );
        assert!(
            !ready.body.to_string().contains("127.0.0.1"),
            "{}",
            ready.body
        );
    } else {
        let ready = s.get("/api/v1/health/ready", None).await;
        assert_eq!(ready.status, 200, "{}", ready.body);
        assert_eq!(ready.body["data"]["checks"]["object_store"]["ready"], true);
    }
    s.stop().await;
}

// ------------------------------------------------------------ releases

async fn releases_register_upload_and_status_on_local(b: Backend) {
    releases_register_upload_and_status(b, Kind::Local).await
}
async fn releases_register_upload_and_status_on_s3(b: Backend) {
    releases_register_upload_and_status(b, Kind::S3).await
}

async fn releases_register_upload_and_status(backend: Backend, kind: Kind) {
    let Some((s, store)) = server(backend, kind).await else {
        return;
    };
    let t = team(&s, "art-rel").await;
    let bytes = payload(70_000, 3);
    let key = "artifacts/art-rel/ci/farm-bot-1.0.0.zip";
    store.put(&s, key, &bytes).await;
    let base = json!({"module": MODULE, "platform": "windows", "channel": "Beta",
                      "version": "1.0.0", "object_key": key, "sha256": sha(&bytes),
                      "size_bytes": bytes.len()});
    let with = |changes: Value| {
        let mut b = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let create = |body: Value| {
        let s = &s;
        let admin = t.admin.clone();
        async move {
            s.post("/api/v1/artifacts/releases", Some(&admin), body)
                .await
        }
    };
    // Verification of a registered object: missing, wrong size, wrong hash.
    create(with(json!({"object_key": "artifacts/art-rel/missing.zip"})))
        .await
        .assert_error(404, "ARTIFACT_OBJECT_NOT_FOUND");
    create(with(json!({"size_bytes": bytes.len() + 1})))
        .await
        .assert_error(409, "ARTIFACT_CONTENT_MISMATCH");
    create(with(json!({"sha256": "0".repeat(64)})))
        .await
        .assert_error(409, "ARTIFACT_CONTENT_MISMATCH");
    // Keys: outside the tenant's prefix, or malformed.
    for bad in [
        "artifacts/other-tenant/x.zip",
        "theme-assets/art-rel/x.png",
        "/artifacts/art-rel/x",
        "artifacts/art-rel/../x",
        "artifacts/art-rel//x",
        "artifacts/art-rel/x y",
    ] {
        let r = create(with(json!({ "object_key": bad }))).await;
        r.assert_error(400, "VALIDATION_ERROR");
        assert!(
            r.body["error"]["details"]["fields"]["object_key"].is_string(),
            "{bad}: {}",
            r.body
        );
    }
    for (field, value) in [
        ("module", json!("a b")),
        ("platform", json!("")),
        ("channel", json!("x".repeat(51))),
        ("version", json!("1 0")),
        ("sha256", json!("xyz")),
        ("size_bytes", json!(0)),
        ("status", json!("live")),
        ("extra", json!(1)),
    ] {
        create(with(json!({ field: value })))
            .await
            .assert_error(400, "VALIDATION_ERROR");
    }
    // Registered: active by default, content ready, channel lower-cased.
    let r = create(base.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["status"], "active");
    assert_eq!(d["content"], "ready");
    assert_eq!(d["channel"], "beta");
    assert_eq!(d["object_key"], key);
    assert_eq!(d["created_by"], t.admin_id.as_str());
    let registered = d["id"].as_str().unwrap().to_string();
    // Unique per (module, platform, channel, version) and per object key.
    create(base.clone()).await.assert_error(409, "CONFLICT");
    create(with(json!({"version": "1.0.1"})))
        .await
        .assert_error(409, "CONFLICT");

    // The upload flow: a draft; other statuses and oversize refused.
    let up = json!({"module": MODULE, "platform": "linux", "version": "1.1.0",
                    "sha256": sha(b"tiny"), "size_bytes": 4});
    let mut active = up.clone();
    active["status"] = json!("active");
    create(active).await.assert_error(400, "VALIDATION_ERROR");
    let r = create(up.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let pending = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["content"], "pending");
    put_bytes(
        &s,
        "/api/v1/artifacts/releases/nope/content",
        &t.admin,
        b"tiny".to_vec(),
    )
    .await
    .assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
    put_bytes(
        &s,
        &format!("/api/v1/artifacts/releases/{registered}/content"),
        &t.admin,
        bytes.clone(),
    )
    .await
    .assert_error(409, "ARTIFACT_CONTENT_EXISTS");

    // Read, list kit, status changes.
    let r = s
        .get(
            &format!("/api/v1/artifacts/releases/{registered}"),
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["sha256"], sha(&bytes).as_str());
    s.get("/api/v1/artifacts/releases/nope", Some(&t.admin))
        .await
        .assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
    let list = |q: &'static str| {
        let s = &s;
        let admin = t.admin.clone();
        async move {
            let r = s
                .get(&format!("/api/v1/artifacts/releases{q}"), Some(&admin))
                .await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            r.body
        }
    };
    let all = list("").await;
    assert_eq!(all["meta"]["total"], 2);
    assert_eq!(all["data"][0]["id"], pending.as_str(), "newest first");
    assert_eq!(list("?content=pending").await["meta"]["total"], 1);
    assert_eq!(
        list("?platform=linux").await["data"][0]["id"],
        pending.as_str()
    );
    assert_eq!(list("?q=1.0.0").await["meta"]["total"], 1);
    assert_eq!(list("?status_in=draft,disabled").await["meta"]["total"], 1);
    assert_eq!(list("?size_bytes_gt=10").await["meta"]["total"], 1);
    assert_eq!(
        list("?sort=version&order=asc").await["data"][0]["id"],
        registered.as_str()
    );
    s.get("/api/v1/artifacts/releases?status=live", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    for (id, status, want) in [
        (&pending, "active", Some("ARTIFACT_CONTENT_MISSING")),
        (&pending, "disabled", Some("ARTIFACT_CONTENT_MISSING")),
        (&pending, "draft", None),
        (&registered, "disabled", None),
        (&registered, "archived", None),
        (&registered, "draft", None),
        (&registered, "active", None),
    ] {
        let r = s
            .call(
                "PATCH",
                &format!("/api/v1/artifacts/releases/{id}"),
                Some(&t.admin),
                Some(json!({ "status": status })),
            )
            .await;
        match want {
            Some(code) => r.assert_error(409, code),
            None => {
                assert_eq!(r.status, 200, "{status}: {}", r.body);
                assert_eq!(r.body["data"]["status"], status);
                assert_eq!(r.body["data"]["updated_by"], t.admin_id.as_str());
            }
        }
    }
    s.call(
        "PATCH",
        "/api/v1/artifacts/releases/nope",
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await
    .assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
    s.call(
        "PATCH",
        &format!("/api/v1/artifacts/releases/{registered}"),
        Some(&t.admin),
        Some(json!({"status": "live"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

// ------------------------------------------------------------ assignments

async fn assignments_replace_in_one_transaction_and_resolve_by_user(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "art-assign").await;
    license_operator(&s, &t).await;
    let v1 = uploaded_release(&s, &t.admin, MODULE, "1.0.0", &payload(100, 1)).await;
    let v2 = uploaded_release(&s, &t.admin, MODULE, "2.0.0", &payload(200, 2)).await;
    let other = uploaded_release(&s, &t.admin, "other-module", "1.0.0", &payload(300, 3)).await;
    let lookup = |q: &'static str| {
        let s = &s;
        let admin = t.admin.clone();
        let user = t.operator_id.clone();
        async move {
            s.get(
                &format!("/api/v1/artifacts/assign/{user}/{MODULE}{q}"),
                Some(&admin),
            )
            .await
        }
    };
    let r = lookup("").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["data"],
        json!({"user_assignment": null, "default_assignment": null, "effective_assignment": null})
    );
    // Refusals: another module's release, unknown release, unknown user, bad scope.
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": other}),
    )
    .await
    .assert_error(409, "ARTIFACT_SCOPE_MISMATCH");
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "channel": "beta", "release_id": v1}),
    )
    .await
    .assert_error(409, "ARTIFACT_SCOPE_MISMATCH");
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": "nope"}),
    )
    .await
    .assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
    assign(
        &s,
        &t.admin,
        json!({"user_id": "nobody", "module": MODULE, "platform": "windows", "release_id": v1}),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "win dows", "release_id": v1}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // Default v1, then the operator's own v2.
    let r = assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": v1}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let default_id = r.body["data"]["id"].as_str().unwrap().to_string();
    let default_created = r.body["data"]["created_at"].clone();
    let (_, token) = lease(&s, &t, MODULE).await;
    let r = resolve(&s, &t.operator, resolve_body(&token, VM, MODULE)).await;
    assert_eq!(r.body["data"]["release_id"], v1.as_str(), "{}", r.body);
    let r = assign(
        &s,
        &t.admin,
        json!({"user_id": t.operator_id, "module": MODULE, "platform": "WINDOWS", "release_id": v2}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["is_default"], false);
    assert_eq!(r.body["data"]["user_id"], t.operator_id.as_str());
    let r = lookup("?platform=windows&channel=stable").await;
    let d = &r.body["data"];
    assert_eq!(d["user_assignment"]["release_id"], v2.as_str());
    assert_eq!(d["default_assignment"]["release_id"], v1.as_str());
    assert_eq!(d["effective_assignment"]["release_id"], v2.as_str());
    let r = resolve(&s, &t.operator, resolve_body(&token, VM, MODULE)).await;
    assert_eq!(r.body["data"]["release_id"], v2.as_str(), "{}", r.body);
    // Re-assigning the default replaces its row (created_at kept): still
    // one default, one user row.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": v2}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_ne!(r.body["data"]["id"], default_id.as_str());
    assert_eq!(r.body["data"]["created_at"], default_created);
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM artifact_assignments WHERE tenant_id = $1")
            .bind("art-assign")
            .fetch_one(s.db.raw_pool())
            .await
            .unwrap();
    assert_eq!(n, 2);
    // The lookup of another platform, of a user without an own row.
    let r = lookup("?platform=linux").await;
    assert!(r.body["data"]["effective_assignment"].is_null());
    let r = s
        .get(
            &format!("/api/v1/artifacts/assign/{}/{MODULE}", t.viewer_id),
            Some(&t.admin),
        )
        .await;
    assert!(r.body["data"]["user_assignment"].is_null());
    assert_eq!(
        r.body["data"]["effective_assignment"]["release_id"],
        v2.as_str()
    );
    s.get(
        &format!("/api/v1/artifacts/assign/nobody/{MODULE}"),
        Some(&t.admin),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    lookup("?platform=a%20b")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    lookup("?colour=red")
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // A failed replacement (scope mismatch) leaves the previous row.
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": other}),
    )
    .await
    .assert_error(409, "ARTIFACT_SCOPE_MISMATCH");
    let r = lookup("").await;
    assert_eq!(
        r.body["data"]["default_assignment"]["release_id"],
        v2.as_str()
    );
    s.stop().await;
}

// ------------------------------------------------------------ roles and tenants

async fn roles_and_tenants_on_every_route(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = team(&s, "art-ra").await;
    let b = team(&s, "art-rb").await;
    let infra = s.admin_token().await;
    license_operator(&s, &a).await;
    let bytes = payload(1000, 9);
    let release = uploaded_release(&s, &a.admin, MODULE, "1.0.0", &bytes).await;
    let r = assign(
        &s,
        &a.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": release}),
    )
    .await;
    assert_eq!(r.status, 201);
    let (_, token) = lease(&s, &a, MODULE).await;
    let draft = s
        .post(
            "/api/v1/artifacts/releases",
            Some(&a.admin),
            json!({"module": MODULE, "platform": "windows", "version": "9.9.9",
                   "sha256": sha(b"x"), "size_bytes": 1}),
        )
        .await;
    let draft = draft.body["data"]["id"].as_str().unwrap().to_string();
    let admin_routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/v1/artifacts/releases".into(), None),
        (
            "POST",
            "/api/v1/artifacts/releases".into(),
            Some(
                json!({"module": MODULE, "platform": "windows", "version": "3.0.0",
                        "sha256": sha(b"y"), "size_bytes": 1}),
            ),
        ),
        ("GET", format!("/api/v1/artifacts/releases/{release}"), None),
        (
            "PATCH",
            format!("/api/v1/artifacts/releases/{release}"),
            Some(json!({"status": "active"})),
        ),
        (
            "POST",
            "/api/v1/artifacts/assign".into(),
            Some(json!({"module": MODULE, "platform": "windows", "release_id": release})),
        ),
        (
            "GET",
            format!("/api/v1/artifacts/assign/{}/{MODULE}", a.operator_id),
            None,
        ),
        ("GET", "/api/v1/artifacts/audit".into(), None),
    ];
    for (method, path, body) in &admin_routes {
        for who in [&a.viewer, &a.operator] {
            let r = s.call(method, path, Some(who), body.clone()).await;
            r.assert_error(403, "FORBIDDEN");
        }
        let r = s.call(method, path, None, body.clone()).await;
        r.assert_error(401, "UNAUTHORIZED");
        // Tenant B's admin: A's objects do not exist; own collections are B's.
        let r = s.call(method, path, Some(&b.admin), body.clone()).await;
        if path.contains(&release) {
            r.assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
        } else if path.contains(&a.operator_id) {
            r.assert_error(404, "USER_NOT_FOUND");
        } else if path.ends_with("/assign") {
            r.assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
        } else {
            assert!(r.status < 300, "{method} {path} as B's admin: {}", r.body);
            assert!(!r.body.to_string().contains(&release), "{}", r.body);
        }
        // A's admin and infra may.
        for who in [&a.admin] {
            let r = s.call(method, path, Some(who), body.clone()).await;
            assert!(r.status < 300, "{method} {path} as A's admin: {}", r.body);
        }
    }
    // Infra passes the role gate in its own tenant.
    let r = s.get("/api/v1/artifacts/releases", Some(&infra)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["total"], 0, "infra's tenant is `default`");
    // Uploads: role and tenant.
    let content = format!("/api/v1/artifacts/releases/{draft}/content");
    put_bytes(&s, &content, &a.operator, b"x".to_vec())
        .await
        .assert_error(403, "FORBIDDEN");
    put_bytes(&s, &content, &b.admin, b"x".to_vec())
        .await
        .assert_error(404, "ARTIFACT_RELEASE_NOT_FOUND");
    let r = put_bytes(&s, &content, &a.admin, b"x".to_vec()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Resolve: viewer refused; B's users cannot use A's token; B's lists
    // never show A's rows.
    resolve(&s, &a.viewer, resolve_body(&token, VM, MODULE))
        .await
        .assert_error(403, "FORBIDDEN");
    resolve(&s, &b.admin, resolve_body(&token, VM, MODULE))
        .await
        .assert_error(404, "LEASE_NOT_FOUND");
    let r = resolve(&s, &a.operator, resolve_body(&token, VM, MODULE)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b_audit = audit(&s, &b.admin, "").await;
    assert_eq!(b_audit.len(), 1);
    assert!(!serde_json::to_string(&b_audit).unwrap().contains(&release));
    let b_releases = s.get("/api/v1/artifacts/releases", Some(&b.admin)).await;
    assert_eq!(b_releases.body["meta"]["total"], 1, "only B's own");
    s.stop().await;
}

// ------------------------------------------------------------ local URLs

/// The local store's URLs: signed for one object and one method, expiring,
/// tamper-evident; answered 404 when the object went away.
async fn local_object_urls_are_signed_scoped_and_expire(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "art-url").await;
    license_operator(&s, &t).await;
    let bytes = payload(5000, 4);
    let release = uploaded_release(&s, &t.admin, MODULE, "1.0.0", &bytes).await;
    assign(
        &s,
        &t.admin,
        json!({"module": MODULE, "platform": "windows", "release_id": release}),
    )
    .await;
    let (_, token) = lease(&s, &t, MODULE).await;
    let r = resolve(&s, &t.operator, resolve_body(&token, VM, MODULE)).await;
    let url = r.body["data"]["download_url"].as_str().unwrap().to_string();
    let (status, got, ctype) = download(&url).await;
    assert_eq!((status, ctype.as_str()), (200, "application/octet-stream"));
    assert_eq!(got, bytes);
    // Tampered: another object key under the same signature.
    let signed = url.rsplit('/').next().unwrap();
    let (payload_b64, tag) = signed.split_once('.').unwrap();
    let mut grant: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).unwrap()).unwrap();
    assert_eq!(grant["m"], "GET");
    grant["k"] = json!("artifacts/other-tenant/releases/x");
    let forged = format!(
        "/api/v1/objects/{}.{tag}",
        URL_SAFE_NO_PAD.encode(grant.to_string())
    );
    s.get(&forged, None)
        .await
        .assert_error(403, "OBJECT_URL_INVALID");
    for junk in ["garbage", "a.b", "e30.AAAA"] {
        s.get(&format!("/api/v1/objects/{junk}"), None)
            .await
            .assert_error(403, "OBJECT_URL_INVALID");
    }
    // A GET URL does not upload.
    let path = url.trim_start_matches(&s.url).to_string();
    let r = s
        .http
        .put(s.url(&path))
        .header("content-type", "application/octet-stream")
        .body(b"overwrite".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Expired: signed by the server's own key an hour ago.
    let signer = control_server::objects::UrlSigner::load(s.data.path()).unwrap();
    let grant = control_server::objects::Grant::get(
        &format!("artifacts/art-url/releases/{release}"),
        chrono::Utc::now().timestamp() - 1,
        None,
    );
    let old = signer.sign(&grant);
    s.get(&format!("/api/v1/objects/{old}"), None)
        .await
        .assert_error(403, "OBJECT_URL_EXPIRED");
    // The same key file, still valid: the object; gone: 404.
    let fresh = control_server::objects::Grant::get(
        &format!("artifacts/art-url/releases/{release}"),
        chrono::Utc::now().timestamp() + 60,
        None,
    );
    let (status, got, _) =
        download(&s.url(&format!("/api/v1/objects/{}", signer.sign(&fresh)))).await;
    assert_eq!((status, got.len()), (200, bytes.len()));
    std::fs::remove_file(
        s.data
            .path()
            .join(format!("objects/artifacts/art-url/releases/{release}")),
    )
    .unwrap();
    s.get(&path, None)
        .await
        .assert_error(404, "OBJECT_NOT_FOUND");
    // The key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data.path().join("object-url-key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A TTL outside 60..300 is clamped.
    let mut settings = base_settings();
    settings.object_url_ttl_seconds = Some(5);
    let cfg = control_server::config::Config::from_settings(settings.clone()).unwrap();
    assert_eq!(cfg.objects.url_ttl_s, 60);
    settings.object_url_ttl_seconds = Some(3600);
    let cfg = control_server::config::Config::from_settings(settings).unwrap();
    assert_eq!(cfg.objects.url_ttl_s, 300);
    s.stop().await;
}
