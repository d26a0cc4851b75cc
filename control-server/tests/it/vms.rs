//! The VM registry (issue #13, inventory §2.8): register/resolve, the
//! upsert that keeps `created_at`, owners and the admin override, status
//! changes, the list kit, role gates and tenant isolation.

use serde_json::{json, Value};

use crate::common::{Backend, TestServer};

backend_tests!(
    register_resolve_and_upsert_keep_created_at,
    owners_roles_and_validation,
    status_changes_and_list_kit,
    tenants_are_isolated
);

const VM: &str = "4C4C4544-0042-3510-8052-B4C04F4A3132";
const VM_LC: &str = "4c4c4544-0042-3510-8052-b4c04f4a3132";

/// A tenant with an admin, two operators and a viewer.
pub(crate) struct Team {
    pub admin: String,
    pub admin_id: String,
    pub operator: String,
    pub operator_id: String,
    pub operator2: String,
    pub viewer: String,
    pub viewer_id: String,
}

pub(crate) async fn team(s: &TestServer, tenant: &str) -> Team {
    let infra = s.admin_token().await;
    let admin = s.tenant_with_admin(&infra, tenant).await;
    let admin_id = s.get("/api/v1/auth/whoami", Some(&admin)).await.body["data"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let (operator_id, operator) = s
        .user(&admin, &format!("op@{tenant}.test"), "operator")
        .await;
    let (_, operator2) = s
        .user(&admin, &format!("op2@{tenant}.test"), "operator")
        .await;
    let (viewer_id, viewer) = s
        .user(&admin, &format!("viewer@{tenant}.test"), "viewer")
        .await;
    Team {
        admin,
        admin_id,
        operator,
        operator_id,
        operator2,
        viewer,
        viewer_id,
    }
}

pub(crate) async fn register(s: &TestServer, token: &str, body: Value) -> crate::common::Resp {
    s.post("/api/v1/vm/register", Some(token), body).await
}

async fn register_resolve_and_upsert_keep_created_at(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "vms-a").await;
    let r = register(
        &s,
        &t.operator,
        json!({"vm_uuid": VM, "vm_name": "bot-01", "project_id": "wow_tbc", "metadata": {"node": "pve1"}}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["vm_uuid"], VM_LC);
    assert_eq!(d["tenant_id"], "vms-a");
    assert_eq!(
        d["user_id"],
        t.operator_id.as_str(),
        "the caller owns it, no default user"
    );
    assert_eq!(d["status"], "active");
    assert_eq!(d["metadata"], json!({"node": "pve1"}));
    let created_ms = d["created_at_ms"].as_i64().unwrap();
    assert_eq!(d["updated_at_ms"].as_i64().unwrap(), created_ms);
    assert!(d["created_at"].as_str().unwrap().ends_with('Z'));

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Upsert (any case): created_at kept, fields left out kept.
    let r = register(
        &s,
        &t.operator,
        json!({"vm_uuid": VM_LC, "vm_name": "bot-01b"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["created_at_ms"].as_i64().unwrap(), created_ms);
    assert!(d["updated_at_ms"].as_i64().unwrap() > created_ms);
    assert_eq!(d["vm_name"], "bot-01b");
    assert_eq!(d["project_id"], "wow_tbc");
    assert_eq!(d["metadata"], json!({"node": "pve1"}));
    assert_eq!(d["user_id"], t.operator_id.as_str());

    // Resolve, in any case.
    for u in [VM, VM_LC] {
        let r = s
            .get(&format!("/api/v1/vm/{u}/resolve"), Some(&t.operator))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["vm_name"], "bot-01b");
        assert_eq!(
            r.body["data"]["created_at_ms"].as_i64().unwrap(),
            created_ms
        );
    }
    // The admin sees every VM of the tenant.
    let r = s
        .get(&format!("/api/v1/vm/{VM}/resolve"), Some(&t.admin))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.get("/api/v1/vm/00000000-dead-beef/resolve", Some(&t.operator))
        .await
        .assert_error(404, "VM_UUID_NOT_FOUND");
    s.get("/api/v1/vm/short/resolve", Some(&t.operator))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get("/api/v1/vm/bad%20uuid%2B%2B/resolve", Some(&t.operator))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get(&format!("/api/v1/vm/{VM}/resolve"), None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.stop().await;
}

async fn owners_roles_and_validation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "vms-o").await;
    assert_eq!(
        register(&s, &t.operator, json!({"vm_uuid": VM}))
            .await
            .status,
        201
    );
    // Another operator can neither see nor take over the VM.
    s.get(&format!("/api/v1/vm/{VM}/resolve"), Some(&t.operator2))
        .await
        .assert_error(404, "VM_UUID_NOT_FOUND");
    register(&s, &t.operator2, json!({"vm_uuid": VM, "vm_name": "mine"}))
        .await
        .assert_error(403, "VM_OWNER_MISMATCH");
    // Viewers cannot register; operators cannot register for others or set a status.
    register(&s, &t.viewer, json!({"vm_uuid": "viewer-vm-0001"}))
        .await
        .assert_error(403, "FORBIDDEN");
    let r = register(
        &s,
        &t.operator,
        json!({"vm_uuid": "other-vm-0001", "user_id": t.viewer_id}),
    )
    .await;
    r.assert_error(403, "FORBIDDEN");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("user_id override"));
    register(&s, &t.operator, json!({"vm_uuid": VM, "status": "paused"}))
        .await
        .assert_error(403, "FORBIDDEN");
    // Naming oneself, or the current status, is fine.
    let r = register(
        &s,
        &t.operator,
        json!({"vm_uuid": VM, "user_id": t.operator_id, "status": "active"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Admins register for another user of the tenant, or take a VM over.
    let r = register(
        &s,
        &t.admin,
        json!({"vm_uuid": "viewer-vm-0001", "user_id": t.viewer_id}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["user_id"], t.viewer_id.as_str());
    assert_eq!(r.body["data"]["created_by"], t.admin_id.as_str());
    register(
        &s,
        &t.admin,
        json!({"vm_uuid": "ghost-vm-0001", "user_id": "no-such-user"}),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    // An admin re-registering without user_id keeps the owner.
    let r = register(&s, &t.admin, json!({"vm_uuid": VM, "vm_name": "renamed"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["user_id"], t.operator_id.as_str());
    // Validation names the field.
    for (body, field) in [
        (json!({"vm_uuid": "short"}), "vm_uuid"),
        (json!({"vm_uuid": "has space 0001"}), "vm_uuid"),
        (json!({"vm_uuid": "x".repeat(129)}), "vm_uuid"),
        (json!({"vm_uuid": VM, "vm_name": "a\u{202E}b"}), "vm_name"),
        (
            json!({"vm_uuid": VM, "vm_name": "x".repeat(201)}),
            "vm_name",
        ),
        (
            json!({"vm_uuid": VM, "project_id": "x".repeat(101)}),
            "project_id",
        ),
        (json!({"vm_uuid": VM, "metadata": [1]}), "metadata"),
        (json!({"vm_uuid": VM, "status": "gone"}), "status"),
        (json!({"vm_uuid": VM, "extra": 1}), "body"),
        (json!({}), "body"),
    ] {
        let r = register(&s, &t.operator, body.clone()).await;
        // the original's code, for serde's errors and the service's alike
        r.assert_error(400, "VM_REGISTER_INVALID_BODY");
        let fields = r.body["error"]["details"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().any(|k| k.contains(field)) || field == "body",
            "{body}: {fields:?}"
        );
    }
    s.stop().await;
}

async fn status_changes_and_list_kit(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = team(&s, "vms-l").await;
    for i in 0..5 {
        let r = register(
            &s,
            &t.operator,
            json!({"vm_uuid": format!("op-vm-{i:04}"), "vm_name": format!("Bot {i}")}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for i in 0..2 {
        let r = register(
            &s,
            &t.operator2,
            json!({"vm_uuid": format!("op2-vm-{i:04}")}),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Status: admin only; every value; unknown VM; bad value.
    let path = "/api/v1/vms/OP-VM-0001";
    for tok in [&t.operator, &t.viewer] {
        s.call("PATCH", path, Some(tok), Some(json!({"status": "paused"})))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    for st in ["paused", "revoked", "active", "paused"] {
        let r = s
            .call("PATCH", path, Some(&t.admin), Some(json!({"status": st})))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["status"], st);
        assert_eq!(r.body["data"]["vm_uuid"], "op-vm-0001");
    }
    s.call(
        "PATCH",
        path,
        Some(&t.admin),
        Some(json!({"status": "deleted"})),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    s.call("PATCH", path, Some(&t.admin), Some(json!({"vm_name": "x"})))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.call(
        "PATCH",
        "/api/v1/vms/no-such-vm-01",
        Some(&t.admin),
        Some(json!({"status": "active"})),
    )
    .await
    .assert_error(404, "VM_UUID_NOT_FOUND");
    // The owner sees the new status; re-registering cannot undo it.
    let r = s
        .get("/api/v1/vm/op-vm-0001/resolve", Some(&t.operator))
        .await;
    assert_eq!(r.body["data"]["status"], "paused");
    register(
        &s,
        &t.operator,
        json!({"vm_uuid": "op-vm-0001", "status": "active"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let r = register(
        &s,
        &t.operator,
        json!({"vm_uuid": "op-vm-0001", "vm_name": "x"}),
    )
    .await;
    assert_eq!(r.body["data"]["status"], "paused", "{}", r.body);

    // Lists: own VMs; admins the tenant; the list kit.
    let uuids = |r: &crate::common::Resp| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["vm_uuid"].as_str().unwrap().to_string())
            .collect()
    };
    let r = s.get("/api/v1/vms", Some(&t.operator)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["total"], 5);
    assert!(uuids(&r).iter().all(|u| u.starts_with("op-vm-")));
    let r = s.get("/api/v1/vms", Some(&t.viewer)).await;
    assert_eq!(r.body["meta"]["total"], 0);
    let r = s.get("/api/v1/vms", Some(&t.admin)).await;
    assert_eq!(r.body["meta"]["total"], 7);
    let r = s
        .get("/api/v1/vms?sort=vm_uuid&order=asc&limit=3", Some(&t.admin))
        .await;
    assert_eq!(
        uuids(&r),
        ["op-vm-0000", "op-vm-0001", "op-vm-0002"],
        "{}",
        r.body
    );
    assert_eq!(r.body["meta"]["limit"], 3);
    assert_eq!(r.body["meta"]["count"], 3);
    let r = s
        .get(
            "/api/v1/vms?sort=vm_uuid&order=asc&limit=3&page=3",
            Some(&t.admin),
        )
        .await;
    assert_eq!(uuids(&r), ["op2-vm-0001"]);
    let r = s.get("/api/v1/vms?status=paused", Some(&t.admin)).await;
    assert_eq!(uuids(&r), ["op-vm-0001"]);
    let r = s
        .get(
            &format!("/api/v1/vms?user_id={}", t.operator_id),
            Some(&t.admin),
        )
        .await;
    assert_eq!(r.body["meta"]["total"], 5);
    let r = s.get("/api/v1/vms?q=BOT%203", Some(&t.operator)).await;
    assert_eq!(uuids(&r), ["op-vm-0003"]);
    // The operator's filter cannot widen its view.
    let r = s.get("/api/v1/vms?q=op2-vm", Some(&t.operator)).await;
    assert_eq!(r.body["meta"]["total"], 0);
    // Keyset paging walks everything once.
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/api/v1/vms?sort=vm_uuid&limit=2&cursor={c}"),
            None => "/api/v1/vms?sort=vm_uuid&limit=2".to_string(),
        };
        let r = s.get(&q, Some(&t.admin)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(uuids(&r));
        match r.body["meta"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    s.get("/api/v1/vms?sort=nope", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get("/api/v1/vms?colour=red", Some(&t.admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get("/api/v1/vms", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    s.stop().await;
}

async fn tenants_are_isolated(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = team(&s, "vms-ta").await;
    let b = team(&s, "vms-tb").await;
    assert_eq!(
        register(&s, &a.operator, json!({"vm_uuid": VM}))
            .await
            .status,
        201
    );
    // B's admin: A's VM does not exist.
    s.get(&format!("/api/v1/vm/{VM}/resolve"), Some(&b.admin))
        .await
        .assert_error(404, "VM_UUID_NOT_FOUND");
    s.call(
        "PATCH",
        &format!("/api/v1/vms/{VM}"),
        Some(&b.admin),
        Some(json!({"status": "revoked"})),
    )
    .await
    .assert_error(404, "VM_UUID_NOT_FOUND");
    assert_eq!(
        s.get("/api/v1/vms", Some(&b.admin)).await.body["meta"]["total"],
        0
    );
    // A's user id means nothing in B.
    register(
        &s,
        &b.admin,
        json!({"vm_uuid": "b-vm-00001", "user_id": a.operator_id}),
    )
    .await
    .assert_error(404, "USER_NOT_FOUND");
    // The same UUID in B is B's own VM; A's is untouched.
    let r = register(&s, &b.operator, json!({"vm_uuid": VM, "vm_name": "b"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["tenant_id"], "vms-tb");
    let r = s
        .get(&format!("/api/v1/vm/{VM}/resolve"), Some(&a.admin))
        .await;
    assert_eq!(r.body["data"]["user_id"], a.operator_id.as_str());
    assert!(r.body["data"]["vm_name"].is_null());
    assert_eq!(r.body["data"]["status"], "active");
    let _ = (&a.viewer, &b.viewer, &b.viewer_id, &b.admin_id);
    s.stop().await;
}
