//! Resources (licenses, proxies, subscriptions) through real HTTP on both
//! backends: CRUD per kind, one case per validation rule, shallow-merge
//! semantics, extras round-trip, unknown kinds, the proxy password (never
//! in a response, sealed at rest, admin-only read), computed subscription
//! statuses, role gates and tenancy, and the list kit against a reference.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use serde_json::{json, Value};

use crate::common::{Backend, Resp, TestServer};
use crate::records_checks::{created, extras_round_trip, q_finds, q_searches_exactly};

backend_tests!(
    crud_per_kind,
    every_validation_rule,
    merge_semantics_and_extras,
    unknown_kind_and_missing_records,
    proxy_password_never_leaks_and_is_sealed,
    role_gates_and_tenancy,
    subscription_status_is_computed,
    a_double_after_a_null_in_the_same_statement,
    q_searches_the_listed_columns,
    extras_round_trip_every_kind,
    list_columns_are_indexed,
);

/// The same INSERT (a proxy with a password) first with `latitude` NULL,
/// then with a value: on PostgreSQL the statement prepared by the first
/// must accept the second (schemathesis found a 503 here: sqlx's `Any`
/// driver typed the NULL as FLOAT4; see `db::NULL_DOUBLE`). Also an update
/// that sets a double back to NULL and then to a value again.
async fn a_double_after_a_null_in_the_same_statement(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let url = format!("{BASE}/proxies");
    for body in [
        json!({"password": "p1"}),
        json!({"password": "p2", "latitude": -90.0, "longitude": 180.0}),
        json!({"password": "p3", "latitude": 12.25}),
    ] {
        let r = s.post(&url, Some(&op), body.clone()).await;
        let row = created(&r);
        assert_eq!(
            row["latitude"],
            body.get("latitude").cloned().unwrap_or(Value::Null),
            "{body}"
        );
    }
    let id = created(&s.post(&url, Some(&op), json!({"latitude": 1.5})).await)["id"]
        .as_str()
        .unwrap()
        .to_string();
    for lat in [Value::Null, json!(-45.5), Value::Null, json!(89.0)] {
        let r = s
            .call(
                "PATCH",
                &format!("{url}/{id}"),
                Some(&op),
                Some(json!({"latitude": lat})),
            )
            .await;
        assert_eq!(r.status, 200, "{lat}: {}", r.body);
        assert_eq!(r.body["data"]["latitude"], lat);
    }
    s.stop().await;
}

const BASE: &str = "/api/v1/resources";

fn ms(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a timestamp"))
        .expect("RFC 3339")
        .timestamp_millis()
}

async fn setup(b: Backend) -> (TestServer, String, String, String) {
    let s = TestServer::start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@res.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@res.test", "viewer").await;
    (s, admin, operator, viewer)
}

async fn crud_per_kind(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let cases = [
        (
            "licenses",
            json!({"key": "AAAA-BBBB", "type": "perpetual", "bot_ids": ["b1"], "expires_at": 1_900_000_000_000i64}),
            json!({"status": "revoked"}),
        ),
        (
            "proxies",
            json!({"ip": "10.0.0.1", "port": 8080, "type": "socks5", "vpn": false, "latitude": 50.5, "last_checked": "2026-01-02T03:04:05Z"}),
            json!({"port": 3128, "fraud_score": 12}),
        ),
        (
            "subscriptions",
            json!({"type": "wow", "account_email": "a@b.test", "auto_renew": true, "project_id": "wow_tbc", "notes": "line 1\nline 2"}),
            json!({"status": "cancelled"}),
        ),
    ];
    for (kind, body, patch) in cases {
        let c = created(
            &s.post(&format!("{BASE}/{kind}"), Some(&op), body.clone())
                .await,
        );
        let id = c["id"].as_str().unwrap().to_string();
        assert_eq!(
            uuid::Uuid::parse_str(&id).unwrap().get_version_num(),
            7,
            "{kind}: ids are UUIDv7"
        );
        for (k, v) in body.as_object().unwrap() {
            match k.as_str() {
                "expires_at" => assert_eq!(ms(&c[k]), v.as_i64().unwrap(), "{kind}.{k}"),
                "last_checked" => assert_eq!(c[k], json!("2026-01-02T03:04:05.000Z")),
                _ => assert_eq!(&c[k], v, "{kind}.{k}: {c}"),
            }
        }
        assert_eq!(c["status"], json!("active"), "{kind}: default status");
        assert!(ms(&c["created_at"]) > 0 && c["created_at"] == c["updated_at"]);
        let got = s.get(&format!("{BASE}/{kind}/{id}"), Some(&op)).await;
        assert_eq!(got.status, 200, "{}", got.body);
        assert_eq!(got.body["data"], c);
        let p = s
            .call(
                "PATCH",
                &format!("{BASE}/{kind}/{id}"),
                Some(&op),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(p.status, 200, "{}", p.body);
        for (k, v) in patch.as_object().unwrap() {
            assert_eq!(&p.body["data"][k], v, "{kind}: patched {k}");
        }
        // PUT is PATCH's alias.
        let put = s
            .call(
                "PUT",
                &format!("{BASE}/{kind}/{id}"),
                Some(&op),
                Some(json!({"label": "put"})),
            )
            .await;
        assert_eq!(put.status, 200, "{}", put.body);
        assert_eq!(put.body["data"]["label"], json!("put"));
        let list = s.get(&format!("{BASE}/{kind}"), Some(&op)).await;
        assert_eq!(list.status, 200, "{}", list.body);
        assert_eq!(list.body["meta"]["total"], json!(1));
        assert_eq!(list.body["data"][0]["id"], json!(id));
        // A client-chosen id is kept; taken again it conflicts.
        let mine = created(
            &s.post(
                &format!("{BASE}/{kind}"),
                Some(&op),
                json!({"id": format!("{kind}-lx2k3-ab12cd")}),
            )
            .await,
        );
        assert_eq!(mine["id"], json!(format!("{kind}-lx2k3-ab12cd")));
        s.post(
            &format!("{BASE}/{kind}"),
            Some(&op),
            json!({"id": format!("{kind}-lx2k3-ab12cd")}),
        )
        .await
        .assert_error(409, "CONFLICT");
        let d = s
            .call("DELETE", &format!("{BASE}/{kind}/{id}"), Some(&op), None)
            .await;
        assert_eq!(d.status, 200, "{}", d.body);
        assert_eq!(d.body["data"], json!({"id": id, "deleted": true}));
        s.get(&format!("{BASE}/{kind}/{id}"), Some(&op))
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
        s.call("DELETE", &format!("{BASE}/{kind}/{id}"), Some(&op), None)
            .await
            .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    s.stop().await;
}

async fn every_validation_rule(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let long = |n: usize| "x".repeat(n);
    // (kind, body, the field named in details.fields)
    let cases: Vec<(&str, Value, &str)> = vec![
        ("licenses", json!([1, 2]), "body"),
        ("licenses", json!({}), "body"),
        ("licenses", json!({"id": "-starts-with-dash"}), "id"),
        ("licenses", json!({"id": long(129)}), "id"),
        ("licenses", json!({"key": long(501)}), "key"),
        ("licenses", json!({"key": 5}), "key"),
        ("licenses", json!({"type": "a\u{202E}b"}), "type"),
        ("licenses", json!({"status": "lost"}), "status"),
        ("licenses", json!({"status": null}), "status"),
        ("licenses", json!({"bot_ids": "b1"}), "bot_ids"),
        ("licenses", json!({"bot_ids": [1]}), "bot_ids[0]"),
        (
            "licenses",
            json!({"bot_names": [long(201)]}),
            "bot_names[0]",
        ),
        ("licenses", json!({"bot_ids": vec!["b"; 501]}), "bot_ids"),
        ("licenses", json!({"expires_at": "tomorrow"}), "expires_at"),
        (
            "licenses",
            json!({"expires_at": 300_000_000_000_000i64}),
            "expires_at",
        ),
        ("licenses", json!({"expires_at": true}), "expires_at"),
        ("proxies", json!({"ip": "10.0.0.1\n"}), "ip"),
        ("proxies", json!({"port": 0}), "port"),
        ("proxies", json!({"port": 65536}), "port"),
        ("proxies", json!({"port": "8080"}), "port"),
        ("proxies", json!({"port": 80.5}), "port"),
        ("proxies", json!({"type": "https"}), "type"),
        ("proxies", json!({"status": "dead"}), "status"),
        ("proxies", json!({"fraud_score": 101}), "fraud_score"),
        ("proxies", json!({"vpn": "yes"}), "vpn"),
        ("proxies", json!({"latitude": 90.5}), "latitude"),
        ("proxies", json!({"longitude": "east"}), "longitude"),
        ("proxies", json!({"password": long(1001)}), "password"),
        ("proxies", json!({"password": 1234}), "password"),
        ("proxies", json!({"country_code": long(11)}), "country_code"),
        ("subscriptions", json!({"type": "netflix"}), "type"),
        ("subscriptions", json!({"status": "paused"}), "status"),
        (
            "subscriptions",
            json!({"project_id": "wow_classic"}),
            "project_id",
        ),
        ("subscriptions", json!({"notes": long(1001)}), "notes"),
        ("subscriptions", json!({"notes": "bell\u{7}"}), "notes"),
        ("subscriptions", json!({"auto_renew": 1}), "auto_renew"),
        (
            "subscriptions",
            json!({"expires_at": "next month"}),
            "expires_at",
        ),
        ("subscriptions", json!({"expires_at": [1]}), "expires_at"),
        ("subscriptions", json!({"bot_id": 5}), "bot_id"),
        ("subscriptions", json!({"bot_id": long(129)}), "bot_id"),
        (
            "subscriptions",
            json!({"account_email": long(321)}),
            "account_email",
        ),
        ("proxies", json!({"expires_at": "someday"}), "expires_at"),
        ("proxies", json!({"last_checked": true}), "last_checked"),
        (
            "proxies",
            json!({"last_checked": "2026-13-01T00:00:00Z"}),
            "last_checked",
        ),
        ("proxies", json!({"proxy": "no"}), "proxy"),
        ("proxies", json!({"tor": 1}), "tor"),
        ("proxies", json!({"login": long(256)}), "login"),
        ("proxies", json!({"provider": long(201)}), "provider"),
        ("proxies", json!({"city": long(201)}), "city"),
        ("proxies", json!({"isp": long(201)}), "isp"),
        // The extractor's refusals answer the same code.
        ("proxies", json!({"login": "a\u{0}b"}), "login"),
    ];
    for (kind, body, field) in cases {
        let r = s
            .post(&format!("{BASE}/{kind}"), Some(&op), body.clone())
            .await;
        r.assert_error(400, "RESOURCES_INVALID_BODY");
        assert!(
            r.body["error"]["details"]["fields"].get(field).is_some(),
            "{kind} {body}: expected field {field}, got {}",
            r.body
        );
    }
    // The same rules on PATCH, and nothing is written on failure.
    let c = created(
        &s.post(&format!("{BASE}/proxies"), Some(&op), json!({"port": 80}))
            .await,
    );
    let path = format!("{BASE}/proxies/{}", c["id"].as_str().unwrap());
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&op),
            Some(json!({"port": 70000, "ip": "1.1.1.1"})),
        )
        .await;
    r.assert_error(400, "RESOURCES_INVALID_BODY");
    assert!(r.body["error"]["details"]["fields"]["port"].is_string());
    s.call("PATCH", &path, Some(&op), Some(json!({})))
        .await
        .assert_error(400, "RESOURCES_INVALID_BODY");
    assert_eq!(s.get(&path, Some(&op)).await.body["data"], c);
    // Non-JSON bodies.
    let raw = s
        .http
        .post(s.url(&format!("{BASE}/proxies")))
        .bearer_auth(&op)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    // List queries are checked against the kind's columns.
    for (q, field) in [
        ("sort=port", "sort"),
        ("order=up", "order"),
        ("limit=201", "limit"),
        ("status=lost", "status"),
        ("bogus=1", "bogus"),
        ("key_gt=a", "key_gt"),
        ("q=a%00b", "q"),
    ] {
        let r = s.get(&format!("{BASE}/licenses?{q}"), Some(&op)).await;
        // NUL in any query parameter is refused before routing, for every
        // route alike (`http::refuse_nul`): the platform's code.
        let code = if q.contains("%00") {
            "VALIDATION_ERROR"
        } else {
            "RESOURCES_INVALID_LIST_QUERY"
        };
        r.assert_error(400, code);
        assert!(
            r.body["error"]["details"]["fields"].get(field).is_some(),
            "{q}: {}",
            r.body
        );
    }
    s.stop().await;
}

async fn merge_semantics_and_extras(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let extras = json!({
        "note": "kept",
        "meta": {"nested": [1, 2.5, "три", {"deep": null}], "flag": true},
        "list": [],
        "emoji": "🚀",
        "big": 12345678901234i64,
    });
    let mut body = extras.clone();
    body["key"] = json!("K1");
    body["type"] = json!("monthly");
    body["created_at"] = json!(1); // server-managed: ignored
    body["tenant_id"] = json!("someone-else");
    let c = created(&s.post(&format!("{BASE}/licenses"), Some(&op), body).await);
    let id = c["id"].as_str().unwrap().to_string();
    let path = format!("{BASE}/licenses/{id}");
    for (k, v) in extras.as_object().unwrap() {
        assert_eq!(&c[k], v, "extra {k} round-trips");
    }
    assert!(c.get("tenant_id").is_none());
    assert!(ms(&c["created_at"]) > 1_000_000);
    let got = s.get(&path, Some(&op)).await.body["data"].clone();
    assert_eq!(got, c, "a read returns the extras unchanged");
    let listed = s.get(&format!("{BASE}/licenses"), Some(&op)).await.body["data"][0].clone();
    assert_eq!(listed, c, "the list returns them too");

    // Shallow merge: given keys replace theirs (objects are not merged
    // deeper), the rest stays; null clears a typed field, an extra keeps null.
    let p = s
        .call(
            "PATCH",
            &path,
            Some(&op),
            Some(json!({"meta": {"other": 1}, "status": "expired", "type": null, "note": null, "added": "new", "id": "ignored"})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    let d = &p.body["data"];
    assert_eq!(d["id"], json!(id));
    assert_eq!(d["key"], json!("K1"));
    assert_eq!(d["type"], Value::Null);
    assert_eq!(d["status"], json!("expired"));
    assert_eq!(d["meta"], json!({"other": 1}));
    assert_eq!(d["note"], Value::Null);
    assert_eq!(d["added"], json!("new"));
    assert_eq!(d["emoji"], json!("🚀"));
    assert_eq!(d["list"], json!([]));
    assert!(ms(&d["updated_at"]) >= ms(&c["updated_at"]));
    assert_eq!(d["created_at"], c["created_at"]);
    assert_eq!(s.get(&path, Some(&op)).await.body["data"], *d);
    s.stop().await;
}

async fn unknown_kind_and_missing_records(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    for (method, path, body) in [
        ("GET", format!("{BASE}/servers"), None),
        ("POST", format!("{BASE}/servers"), Some(json!({"a": 1}))),
        ("GET", format!("{BASE}/servers/x"), None),
        ("PATCH", format!("{BASE}/servers/x"), Some(json!({"a": 1}))),
        ("PUT", format!("{BASE}/servers/x"), Some(json!({"a": 1}))),
        ("DELETE", format!("{BASE}/servers/x"), None),
        ("GET", format!("{BASE}/Licenses"), None),
    ] {
        s.call(method, &path, Some(&op), body)
            .await
            .assert_error(400, "RESOURCES_INVALID_KIND");
    }
    for id in [
        "0190f0c2-aaaa-7bbb-8ccc-000000000000",
        "not%20valid",
        "a%2Fb",
    ] {
        for method in ["GET", "DELETE"] {
            s.call(method, &format!("{BASE}/proxies/{id}"), Some(&op), None)
                .await
                .assert_error(404, "RESOURCE_NOT_FOUND");
        }
        s.call(
            "PATCH",
            &format!("{BASE}/proxies/{id}"),
            Some(&op),
            Some(json!({"port": 1})),
        )
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    }
    // An encoded control character never reaches the domain.
    s.get(&format!("{BASE}/proxies/a%00b"), Some(&op))
        .await
        .assert_error(404, "NOT_FOUND");
    s.get(&format!("{BASE}/licenses"), None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.stop().await;
}

const SECRET: &str = "s3cr3t-Proxy-PW-9f2c";

async fn proxy_password_never_leaks_and_is_sealed(b: Backend) {
    let (s, admin, op, viewer) = setup(b).await;
    let mut responses: Vec<Resp> = vec![];
    let r = s
        .post(
            &format!("{BASE}/proxies"),
            Some(&op),
            json!({"ip": "203.0.113.9", "port": 1080, "login": "u", "password": SECRET}),
        )
        .await;
    let c = created(&r);
    assert_eq!(c["has_password"], json!(true));
    assert!(c.get("password").is_none(), "{c}");
    let id = c["id"].as_str().unwrap().to_string();
    let path = format!("{BASE}/proxies/{id}");
    responses.push(r);
    for token in [&op, &viewer, &admin] {
        responses.push(s.get(&path, Some(token)).await);
        responses.push(s.get(&format!("{BASE}/proxies"), Some(token)).await);
        responses.push(s.get(&format!("{BASE}/proxies?q=203.0"), Some(token)).await);
    }
    responses.push(
        s.call("PATCH", &path, Some(&op), Some(json!({"port": 1081})))
            .await,
    );
    responses.push(
        s.call("PUT", &path, Some(&op), Some(json!({"note": "x"})))
            .await,
    );
    // A failed validation does not echo it either.
    responses.push(
        s.call(
            "PATCH",
            &path,
            Some(&op),
            Some(json!({"password": SECRET, "port": 0})),
        )
        .await,
    );
    for r in &responses {
        let text = r.body.to_string();
        assert!(!text.contains(SECRET), "password leaked: {text}");
        assert!(!text.contains("v1.dk-"), "ciphertext leaked: {text}");
    }
    for r in &responses[..responses.len() - 1] {
        assert!((200..300).contains(&r.status), "{}", r.body);
    }
    assert_eq!(
        s.get(&path, Some(&viewer)).await.body["data"]["has_password"],
        json!(true)
    );

    // Only an admin reads it, through the explicit endpoint.
    let pw = format!("{path}/password");
    s.get(&pw, Some(&viewer))
        .await
        .assert_error(403, "FORBIDDEN");
    s.get(&pw, Some(&op)).await.assert_error(403, "FORBIDDEN");
    s.get(&pw, None).await.assert_error(401, "UNAUTHORIZED");
    let r = s.get(&pw, Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"], json!({"id": id, "password": SECRET}));
    s.get(&format!("{BASE}/proxies/nope/password"), Some(&admin))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");

    // At rest it is sealed (AES-256-GCM, bound to tenant and row).
    let sealed: String = sqlx::query_scalar(&format!(
        "SELECT secret_sealed FROM resources_proxies WHERE id = '{id}'"
    ))
    .fetch_one(s.db.raw_pool())
    .await
    .unwrap();
    assert!(sealed.starts_with("v1.dk-"), "{sealed}");
    assert!(!sealed.contains(SECRET));
    let key_file = s.data.path().join("data-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Copied onto another row it does not open (associated data).
    let other = created(
        &s.post(&format!("{BASE}/proxies"), Some(&op), json!({"ip": "x"}))
            .await,
    );
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(other["has_password"], json!(false));
    sqlx::query(&format!(
        "UPDATE resources_proxies SET secret_sealed = '{sealed}' WHERE id = '{other_id}'"
    ))
    .execute(s.db.raw_pool())
    .await
    .unwrap();
    s.get(&format!("{BASE}/proxies/{other_id}/password"), Some(&admin))
        .await
        .assert_error(500, "INTERNAL_ERROR");

    // Cleared with null.
    let r = s
        .call("PATCH", &path, Some(&op), Some(json!({"password": null})))
        .await;
    assert_eq!(r.body["data"]["has_password"], json!(false));
    assert_eq!(
        s.get(&pw, Some(&admin)).await.body["data"]["password"],
        Value::Null
    );
    // Another tenant's admin cannot read it.
    let b_admin = s.tenant_with_admin(&admin, "res-b").await;
    s.get(&pw, Some(&b_admin))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    s.stop().await;
}

async fn role_gates_and_tenancy(b: Backend) {
    let (s, admin, op, viewer) = setup(b).await;
    let c = created(
        &s.post(&format!("{BASE}/licenses"), Some(&op), json!({"key": "A"}))
            .await,
    );
    let path = format!("{BASE}/licenses/{}", c["id"].as_str().unwrap());
    // Viewer: reads only.
    assert_eq!(
        s.get(&format!("{BASE}/licenses"), Some(&viewer))
            .await
            .status,
        200
    );
    assert_eq!(s.get(&path, Some(&viewer)).await.status, 200);
    s.post(
        &format!("{BASE}/licenses"),
        Some(&viewer),
        json!({"key": "B"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    for m in ["PATCH", "PUT"] {
        s.call(m, &path, Some(&viewer), Some(json!({"key": "B"})))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    s.call("DELETE", &path, Some(&viewer), None)
        .await
        .assert_error(403, "FORBIDDEN");
    // Another tenant sees nothing and touches nothing.
    let b_admin = s.tenant_with_admin(&admin, "res-other").await;
    let list = s.get(&format!("{BASE}/licenses"), Some(&b_admin)).await;
    assert_eq!(list.body["meta"]["total"], json!(0));
    s.get(&path, Some(&b_admin))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    s.call("PATCH", &path, Some(&b_admin), Some(json!({"key": "B"})))
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    s.call("DELETE", &path, Some(&b_admin), None)
        .await
        .assert_error(404, "RESOURCE_NOT_FOUND");
    // The same client id in another tenant is a different record.
    let same = created(
        &s.post(
            &format!("{BASE}/licenses"),
            Some(&b_admin),
            json!({"id": c["id"], "key": "B"}),
        )
        .await,
    );
    assert_eq!(same["id"], c["id"]);
    assert_eq!(
        s.get(&path, Some(&op)).await.body["data"]["key"],
        json!("A")
    );
    // Admin writes too.
    assert_eq!(
        s.call("PATCH", &path, Some(&admin), Some(json!({"key": "C"})))
            .await
            .status,
        200
    );
    s.stop().await;
}

async fn subscription_status_is_computed(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let now = chrono::Utc::now().timestamp_millis();
    let h = 3_600_000i64;
    let d = 24 * h;
    // (expires_at, stored status, expected status)
    let cases: Vec<(Option<i64>, Option<&str>, &str)> = vec![
        (Some(now - h), None, "expired"),
        (Some(now - 30 * d), Some("active"), "expired"),
        (Some(now + 2 * d), None, "expiring_soon"),
        (Some(now + 6 * d), Some("expired"), "expiring_soon"),
        (Some(now + 30 * d), None, "active"),
        (Some(now - h), Some("cancelled"), "cancelled"),
        (None, Some("expired"), "expired"),
        (None, Some("expiring_soon"), "expiring_soon"),
        (None, None, "active"),
    ];
    let mut want: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (expires, status, expected) in &cases {
        let mut body = json!({"type": "wow"});
        if let Some(e) = expires {
            body["expires_at"] = json!(e);
        }
        if let Some(st) = status {
            body["status"] = json!(st);
        }
        let c = created(
            &s.post(&format!("{BASE}/subscriptions"), Some(&op), body.clone())
                .await,
        );
        assert_eq!(c["status"], json!(expected), "{body}");
        let got = s
            .get(
                &format!("{BASE}/subscriptions/{}", c["id"].as_str().unwrap()),
                Some(&op),
            )
            .await;
        assert_eq!(got.body["data"]["status"], json!(expected));
        want.entry(expected)
            .or_default()
            .push(c["id"].as_str().unwrap().to_string());
    }
    for (status, ids) in &want {
        let r = s
            .get(
                &format!("{BASE}/subscriptions?status={status}&limit=200"),
                Some(&op),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut got: Vec<String> = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect();
        got.sort();
        let mut ids = ids.clone();
        ids.sort();
        assert_eq!(got, ids, "status={status}");
    }
    // Patching the date moves the status.
    let first = &want["active"][0];
    let r = s
        .call(
            "PATCH",
            &format!("{BASE}/subscriptions/{first}"),
            Some(&op),
            Some(json!({"expires_at": chrono::DateTime::from_timestamp_millis(now - d).unwrap().to_rfc3339()})),
        )
        .await;
    assert_eq!(r.body["data"]["status"], json!("expired"), "{}", r.body);
    s.stop().await;
}

/// `q` searches exactly the columns the issue lists per kind — licenses:
/// key, type; proxies: ip, provider, country, country_code, city, isp;
/// subscriptions: account_email, notes — case-insensitively, and no other
/// column or extra.
async fn q_searches_the_listed_columns(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let cases: [(&str, &[&str], &[&str]); 3] = [
        ("licenses", &["key", "type"], &["label"]),
        (
            "proxies",
            &["ip", "provider", "country", "country_code", "city", "isp"],
            &[
                "login",
                "organization",
                "region",
                "bot_status",
                "bot_id",
                "label",
            ],
        ),
        (
            "subscriptions",
            &["account_email", "notes"],
            &["bot_id", "label"],
        ),
    ];
    for (kind, searched, unsearched) in cases {
        let url = format!("{BASE}/{kind}");
        q_searches_exactly(&s, &op, &url, json!({"zz": 0}), searched, unsearched).await;
    }
    // A bot name inside a license's list is not searched either.
    let url = format!("{BASE}/licenses");
    created(
        &s.post(&url, Some(&op), json!({"bot_names": ["NaMeXy"]}))
            .await,
    );
    q_finds(&s, &op, &url, "namexy", &[]).await;
    s.stop().await;
}

/// Passthrough extras round-trip for every kind: create, read, list,
/// a shallow-merging PATCH (and PUT), read again; more than 64 KiB of them
/// is refused on create and when a patch would grow them past it.
async fn extras_round_trip_every_kind(b: Backend) {
    let (s, _admin, op, _) = setup(b).await;
    let typed = [
        ("licenses", json!({"key": "K"})),
        ("proxies", json!({"ip": "192.0.2.1", "port": 3128})),
        ("subscriptions", json!({"type": "vpn"})),
    ];
    for (kind, typed) in typed {
        extras_round_trip(
            &s,
            &op,
            &format!("{BASE}/{kind}"),
            typed,
            "RESOURCES_INVALID_BODY",
        )
        .await;
    }
    // PUT merges the same way.
    let url = format!("{BASE}/proxies");
    let c = created(
        &s.post(&url, Some(&op), json!({"a": 1, "b": {"x": 1}}))
            .await,
    );
    let path = format!("{url}/{}", c["id"].as_str().unwrap());
    let r = s
        .call(
            "PUT",
            &path,
            Some(&op),
            Some(json!({"b": {"y": 2}, "c": [3]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["a"], json!(1));
    assert_eq!(r.body["data"]["b"], json!({"y": 2}));
    assert_eq!(r.body["data"]["c"], json!([3]));
    s.stop().await;
}

// ---------------------------------------------------------------- indexes

/// Every column `spec` sorts or filters on (but `skip`) leads an index of
/// `table` after `tenant_id`; on PostgreSQL a text or enum column that is
/// filtered has a default-collation index (equality filters use only that)
/// and one that is sorted a `COLLATE "C"` one (lists sort text byte-wise).
pub(crate) async fn assert_list_columns_indexed(
    s: &TestServer,
    b: Backend,
    table: &str,
    spec: &control_server::db::list::ListSpec,
    skip: &[&str],
) {
    use control_server::db::list::Kind;
    use sqlx::{Connection, Row as _};
    // (column after tenant_id, its collation) of every index of the table
    let mut leads: Vec<(String, String)> = Vec::new();
    let url = s.database_url();
    match b {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let names: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_index_list('{table}')"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            for n in names {
                let cols = sqlx::query(&format!(
                    "SELECT name, coll FROM pragma_index_xinfo('{n}') WHERE key = 1 ORDER BY seqno"
                ))
                .fetch_all(&mut c)
                .await
                .unwrap();
                let cols: Vec<(String, String)> = cols
                    .iter()
                    .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
                    .collect();
                if cols.len() >= 2 && cols[0].0 == "tenant_id" {
                    leads.push(cols[1].clone());
                }
            }
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let rows = sqlx::query(
                "SELECT ARRAY(SELECT a.attname::text FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord)
                              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                              ORDER BY k.ord),
                        ARRAY(SELECT COALESCE(cl.collname::text, '')
                              FROM unnest(x.indcollation::oid[]) WITH ORDINALITY k(coll, ord)
                              LEFT JOIN pg_collation cl ON cl.oid = k.coll ORDER BY k.ord)
                 FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
                 JOIN pg_namespace n ON n.oid = t.relnamespace
                 WHERE n.nspname = current_schema() AND t.relname = $1",
            )
            .bind(table)
            .fetch_all(&mut c)
            .await
            .unwrap();
            for r in rows {
                let cols: Vec<String> = r.get(0);
                let colls: Vec<String> = r.get(1);
                if cols.len() >= 2 && cols[0] == "tenant_id" {
                    leads.push((cols[1].clone(), colls[1].clone()));
                }
            }
        }
    }
    assert!(
        leads.iter().any(|(c, _)| c == "created_at"),
        "{b:?}: no index of {table} read: {leads:?}"
    );
    let mut missing = Vec::new();
    for col in spec.columns {
        if !(col.sort || col.filter) || skip.contains(&col.name) {
            continue;
        }
        let text = matches!(col.kind, Kind::Text | Kind::Enum(_));
        let has = |coll: Option<&str>| {
            leads
                .iter()
                .any(|(c, l)| c == col.sql && coll.is_none_or(|want| l == want))
        };
        match b {
            Backend::Postgres if text => {
                if col.filter && !has(Some("default")) {
                    missing.push(format!("{table}(tenant_id, {})", col.sql));
                }
                if col.sort && !has(Some("C")) {
                    missing.push(format!("{table}(tenant_id, {} COLLATE \"C\")", col.sql));
                }
            }
            _ => {
                if !has(None) {
                    missing.push(format!("{table}(tenant_id, {})", col.sql));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{b:?}: list columns without an index: {missing:?}"
    );
}

/// Lists filter and sort on indexed columns: every sortable or filterable
/// column of each kind (as the store declares it) has its index.
async fn list_columns_are_indexed(b: Backend) {
    use control_server::domains::resources::store;
    let (s, _admin, _op, _) = setup(b).await;
    assert_list_columns_indexed(&s, b, "resources_licenses", &store::LICENSE_LIST, &[]).await;
    assert_list_columns_indexed(&s, b, "resources_proxies", &store::PROXY_LIST, &[]).await;
    // A subscription's status is computed from `expires_at` when read: no
    // index can serve it.
    assert_list_columns_indexed(
        &s,
        b,
        "resources_subscriptions",
        &store::SUBSCRIPTION_LIST_SQLITE,
        &["status"],
    )
    .await;
    s.stop().await;
}

// ---------------------------------------------------------------- list kit

/// A proxy as created (the reference works on what the server returned).
#[derive(Debug, Clone)]
struct Row {
    id: String,
    created_at: i64,
    ip: String,
    port: i64,
    provider: Option<String>,
    status: String,
    kind: Option<String>,
    fraud_score: Option<i64>,
    bot_id: Option<String>,
    city: String,
}

const SORTS: &[&str] = &[
    "created_at",
    "ip",
    "port",
    "provider",
    "status",
    "fraud_score",
    "type",
];
const STATUSES: &[&str] = &["active", "expired", "banned"];
const NEEDLES: &[&str] = &["10.1", "ACME", "ber", "_", "%", "zz-none"];
const PROVIDERS: &[Option<&str>] = &[
    Some("Acme Net"),
    Some("acme-2"),
    Some("Other_1"),
    Some("100%"),
    None,
];
const CITIES: &[&str] = &["Berlin", "Paris", "Oslo"];

#[derive(Debug, Clone)]
struct Query {
    sort: Option<usize>,
    desc: Option<bool>,
    status_in: Option<Vec<usize>>,
    port_gte: Option<i64>,
    fraud_lt: Option<i64>,
    bot: Option<usize>,
    search: Option<usize>,
    limit: u32,
    page: u32,
}

fn query_strategy() -> impl Strategy<Value = Query> {
    (
        (
            proptest::option::of(0..SORTS.len()),
            proptest::option::of(any::<bool>()),
            proptest::option::of(proptest::collection::vec(0..STATUSES.len(), 1..3)),
            proptest::option::of(1000..1040i64),
        ),
        (
            proptest::option::of(0..100i64),
            proptest::option::of(0..3usize),
            proptest::option::of(0..NEEDLES.len()),
            1..20u32,
            1..5u32,
        ),
    )
        .prop_map(
            |((sort, desc, status_in, port_gte), (fraud_lt, bot, search, limit, page))| Query {
                sort,
                desc,
                status_in,
                port_gte,
                fraud_lt,
                bot,
                search,
                limit,
                page,
            },
        )
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Query {
    fn to_query_string(&self, with_page: bool) -> String {
        let mut q = vec![format!("limit={}", self.limit)];
        if with_page {
            q.push(format!("page={}", self.page));
        }
        if let Some(s) = self.sort {
            q.push(format!("sort={}", SORTS[s]));
        }
        if let Some(d) = self.desc {
            q.push(format!("order={}", if d { "desc" } else { "asc" }));
        }
        if let Some(st) = &self.status_in {
            let v: Vec<&str> = st.iter().map(|i| STATUSES[*i]).collect();
            q.push(format!("status_in={}", v.join(",")));
        }
        if let Some(p) = self.port_gte {
            q.push(format!("port_gte={p}"));
        }
        if let Some(f) = self.fraud_lt {
            q.push(format!("fraud_score_lt={f}"));
        }
        if let Some(b) = self.bot {
            q.push(format!("bot_id=bot-{b}"));
        }
        if let Some(s) = self.search {
            q.push(format!("q={}", enc(NEEDLES[s])));
        }
        q.join("&")
    }

    fn reference(&self, rows: &[Row]) -> Vec<String> {
        let mut hits: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                self.status_in
                    .as_ref()
                    .is_none_or(|st| st.iter().any(|i| STATUSES[*i] == r.status))
            })
            .filter(|r| self.port_gte.is_none_or(|p| r.port >= p))
            .filter(|r| {
                self.fraud_lt
                    .is_none_or(|f| r.fraud_score.is_some_and(|x| x < f))
            })
            .filter(|r| {
                self.bot
                    .is_none_or(|b| r.bot_id.as_deref() == Some(format!("bot-{b}").as_str()))
            })
            .filter(|r| {
                self.search.is_none_or(|s| {
                    let n = NEEDLES[s].to_ascii_lowercase();
                    // Searchable: ip, provider, country, country_code, city, isp.
                    [
                        Some(r.ip.as_str()),
                        r.provider.as_deref(),
                        Some(r.city.as_str()),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|v| v.to_ascii_lowercase().contains(&n))
                })
            })
            .collect();
        #[derive(PartialEq, Eq, PartialOrd, Ord)]
        enum Key {
            I(i64),
            S(String),
        }
        let sort = self.sort.map(|s| SORTS[s]).unwrap_or("created_at");
        let key = |r: &Row| -> Option<Key> {
            match sort {
                "created_at" => Some(Key::I(r.created_at)),
                "ip" => Some(Key::S(r.ip.clone())),
                "port" => Some(Key::I(r.port)),
                "provider" => r.provider.clone().map(Key::S),
                "status" => Some(Key::S(r.status.clone())),
                "fraud_score" => r.fraud_score.map(Key::I),
                "type" => r.kind.clone().map(Key::S),
                _ => unreachable!(),
            }
        };
        let desc = self.desc.unwrap_or(true);
        hits.sort_by(|a, b| {
            let (ka, kb) = (key(a), key(b));
            let nulls = ka.is_none().cmp(&kb.is_none());
            let by_key = ka.cmp(&kb).then_with(|| a.id.cmp(&b.id));
            nulls.then(if desc { by_key.reverse() } else { by_key })
        });
        hits.into_iter().map(|r| r.id.clone()).collect()
    }
}

fn list_matches_reference(b: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, op, rows) = rt.block_on(async {
        let (s, admin, op, _) = setup(b).await;
        // Noise in another tenant.
        let other = s.tenant_with_admin(&admin, "res-noise").await;
        for i in 0..10 {
            created(
                &s.post(
                    &format!("{BASE}/proxies"),
                    Some(&other),
                    json!({"ip": format!("10.1.0.{i}"), "port": 1020}),
                )
                .await,
            );
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut rows = vec![];
        for i in 0..90 {
            let mut body = json!({
                "ip": format!("10.{}.{}.{}", next(3), next(5), i),
                "port": 1000 + next(40) as i64,
                "status": STATUSES[next(3) as usize],
                "city": CITIES[next(3) as usize],
            });
            if let Some(p) = PROVIDERS[next(PROVIDERS.len() as u64) as usize] {
                body["provider"] = json!(p);
            }
            if next(4) > 0 {
                body["fraud_score"] = json!(next(101));
            }
            if next(3) > 0 {
                body["type"] = json!(["http", "socks5"][next(2) as usize]);
            }
            if next(2) > 0 {
                body["bot_id"] = json!(format!("bot-{}", next(3)));
            }
            let c = created(&s.post(&format!("{BASE}/proxies"), Some(&op), body).await);
            rows.push(Row {
                id: c["id"].as_str().unwrap().into(),
                created_at: ms(&c["created_at"]),
                ip: c["ip"].as_str().unwrap().into(),
                port: c["port"].as_i64().unwrap(),
                provider: c["provider"].as_str().map(str::to_string),
                status: c["status"].as_str().unwrap().into(),
                kind: c["type"].as_str().map(str::to_string),
                fraud_score: c["fraud_score"].as_i64(),
                bot_id: c["bot_id"].as_str().map(str::to_string),
                city: c["city"].as_str().unwrap().into(),
            });
        }
        (s, op, rows)
    });
    let ids = |r: &Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut runner = TestRunner::new(PropConfig {
        cases: 60,
        failure_persistence: None,
        ..PropConfig::default()
    });
    runner
        .run(&query_strategy(), |q| {
            let expected = q.reference(&rows);
            let qs = q.to_query_string(true);
            let r = rt.block_on(s.get(&format!("{BASE}/proxies?{qs}"), Some(&op)));
            prop_assert_eq!(r.status, 200, "{}: {}", qs, r.body);
            let start = ((q.page - 1) * q.limit) as usize;
            let want: Vec<String> = expected
                .iter()
                .skip(start)
                .take(q.limit as usize)
                .cloned()
                .collect();
            prop_assert_eq!(ids(&r), want, "page of {}", qs);
            prop_assert_eq!(
                r.body["meta"]["total"].as_i64(),
                Some(expected.len() as i64),
                "total of {}",
                qs
            );
            // Cursor walk on sorts without empty values.
            let sort = q.sort.map(|i| SORTS[i]).unwrap_or("created_at");
            if ["created_at", "status"].contains(&sort) {
                let base = q.to_query_string(false);
                let mut walked = vec![];
                let mut cursor: Option<String> = None;
                for _ in 0..100 {
                    let url = match &cursor {
                        Some(c) => format!("{BASE}/proxies?{base}&cursor={c}"),
                        None => format!("{BASE}/proxies?{base}"),
                    };
                    let r = rt.block_on(s.get(&url, Some(&op)));
                    prop_assert_eq!(r.status, 200, "{}: {}", url, r.body);
                    walked.extend(ids(&r));
                    match r.body["meta"]["next_cursor"].as_str() {
                        Some(c) => cursor = Some(c.to_string()),
                        None => break,
                    }
                }
                prop_assert_eq!(&walked, &expected, "cursor walk of {}", base);
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(s.stop());
}

mod list_kit {
    #[test]
    fn sqlite_proxies_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Sqlite);
    }
    #[test]
    fn postgres_proxies_list_matches_reference() {
        super::list_matches_reference(crate::common::Backend::Postgres);
    }
}
