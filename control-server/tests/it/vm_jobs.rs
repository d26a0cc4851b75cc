//! VM creation jobs (issue #17) against the real server (SQLite and
//! PostgreSQL): validation errors per field, roles, tenants and ownership,
//! the idempotency key, the list kit, and the orchestrator driven by a
//! scripted agent (the agent API: long poll, reports) through every step —
//! restart mid-job without duplicate clones, lock contention retried and
//! counted, lost work re-dispatched, a failed item retried, cancel. The
//! real `botmox-agent` against pve-sim runs in `agent-core`'s
//! `vm_jobs` tests.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::bus::pair_agent;
use crate::common::{base_settings, Backend, TestServer};
use control_server::config::Settings;

backend_tests!(
    validation_errors_name_the_field,
    roles_tenants_and_ownership,
    idempotency_key_returns_the_same_job,
    list_kit_filters_sorts_and_pages,
    scripted_agent_runs_a_job_through_every_step_and_a_restart,
    cancel_stops_the_job_and_says_which_vms_are_left,
);

fn settings() -> Settings {
    Settings {
        heartbeat_interval_seconds: Some(1),
        agent_offline_after_seconds: Some(30),
        sweep_interval_seconds: Some(1),
        ..base_settings()
    }
}

async fn start(b: Backend) -> TestServer {
    TestServer::start_with(b, settings(), axum::Router::new()).await
}

async fn wait_online(s: &TestServer, token: &str, agent: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.get(&format!("/api/v1/agents/{agent}"), Some(token)).await;
        if r.body["data"]["connection"] == "online" {
            return;
        }
        assert!(Instant::now() < deadline, "agent not online: {}", r.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn heartbeat(s: &TestServer, agent_token: &str) {
    let r = s
        .post("/api/v1/agents/heartbeat", Some(agent_token), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn license(s: &TestServer, admin: &str) {
    let r = s
        .post(
            "/api/v1/tenant-licenses",
            Some(admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn profile(s: &TestServer, token: &str) -> String {
    let r = s
        .post(
            "/api/v1/unattend-profiles",
            Some(token),
            json!({"name": format!("p-{}", uuid::Uuid::new_v4().simple()), "config": {
                "user": {"nameMode": "custom", "customName": "labuser", "password": "S3cret-pw"},
                "computerName": {"mode": "random"}
            }}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

fn body(agent: &str, profile: &str, extra: Value) -> Value {
    let mut b = json!({"agent_id": agent, "node": "pve", "template_vmid": 9000,
                       "count": 2, "profile_id": profile});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            b.as_object_mut().unwrap().remove(k);
        } else {
            b[k] = v.clone();
        }
    }
    b
}

async fn job(s: &TestServer, token: &str, id: &str) -> Value {
    let r = s.get(&format!("/api/v1/vm-jobs/{id}"), Some(token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].clone()
}

async fn wait_job(
    s: &TestServer,
    token: &str,
    id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let j = job(s, token, id).await;
        if done(&j) {
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "job did not get there in time: {j:#}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn validation_errors_name_the_field(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent, agent_token) = pair_agent(&s, &admin).await;
    heartbeat(&s, &agent_token).await;
    let p = profile(&s, &admin).await;
    let cases = [
        (json!({"count": 0}), "count"),
        (json!({"count": 501}), "count"),
        (json!({"count": null}), "count"),
        (json!({"names": ["a", "b"]}), "names"),
        (
            json!({"count": null, "names": ["ok", "not_a_label"]}),
            "names[1]",
        ),
        (json!({"node": "no such node"}), "node"),
        (json!({"template_vmid": 7}), "template_vmid"),
        (
            json!({"vmid_range": {"first": 300, "last": 300}}),
            "vmid_range",
        ),
        (
            json!({"vmid_range": {"first": 301, "last": 300}}),
            "vmid_range.last",
        ),
        (
            json!({"full_clone": false, "storage": "local-lvm"}),
            "storage",
        ),
        (json!({"profile_id": null}), "profile_id"),
        (json!({"profile_id": "no-such-profile"}), "profile_id"),
        (json!({"cores": 0}), "cores"),
        (json!({"memory": 8}), "memory"),
        (json!({"parallelism": 51}), "parallelism"),
        (json!({"disk_resize": {"size": "lots"}}), "disk_resize.size"),
        (json!({"net0": {"bridge": "eth0"}}), "net0.bridge"),
        (json!({"net0": {"vlan": 5000}}), "net0.vlan"),
        (
            json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1",
                            "first": "10.0.0.10", "last": "10.0.0.10"}}),
            "ip_plan",
        ),
        (
            json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/33", "gateway": "10.0.0.1",
                            "first": "10.0.0.10", "last": "10.0.0.20"}}),
            "ip_plan.cidr",
        ),
        (
            json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/24", "gateway": "10.9.0.1",
                            "first": "10.0.0.10", "last": "10.0.0.20"}}),
            "ip_plan.gateway",
        ),
        (
            json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1",
                            "first": "10.0.0.10", "last": "10.0.1.20"}}),
            "ip_plan.last",
        ),
        (
            json!({"install_timeout_minutes": 0}),
            "install_timeout_minutes",
        ),
        (json!({"linux": {"user": "ops"}}), "linux"),
        (json!({"idempotency_key": ""}), "idempotency_key"),
    ];
    for (patch, field) in cases {
        let r = s
            .post(
                "/api/v1/vm-jobs",
                Some(&admin),
                body(&agent, &p, patch.clone()),
            )
            .await;
        r.assert_error(400, "VALIDATION_ERROR");
        let fields = r.body["error"]["details"]["fields"].clone();
        assert!(
            fields.get(field).is_some(),
            "{field} for {patch}: {}",
            r.body
        );
    }
    // unknown fields are refused by name
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(&agent, &p, json!({"colour": "red"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // a VMID range overlapping another unfinished job's, and a pool whose
    // addresses another job holds
    let pool = json!({"mode": "pool", "cidr": "10.1.0.0/24", "gateway": "10.1.0.1",
                      "dns": ["10.1.0.1"], "first": "10.1.0.10", "last": "10.1.0.12"});
    let first = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(
                &agent,
                &p,
                json!({"vmid_range": {"first": 500, "last": 509}, "ip_plan": pool}),
            ),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let items = first.body["data"]["items"].as_array().unwrap().clone();
    assert_eq!(items[0]["vmid"], 500);
    assert_eq!(items[1]["vmid"], 501);
    assert_eq!(items[0]["ip"], "10.1.0.10");
    assert_eq!(items[1]["ip"], "10.1.0.11");
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(
                &agent,
                &p,
                json!({"vmid_range": {"first": 501, "last": 520}}),
            ),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    let msg = r.body["error"]["details"]["fields"]["vmid_range"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("(501)"), "the clashing VMIDs are named: {msg}");
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(&agent, &p, json!({"ip_plan": pool})),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert!(
        r.body["error"]["details"]["fields"]["ip_plan"]
            .as_str()
            .unwrap()
            .contains("1 free"),
        "{}",
        r.body
    );
    // one address is left: a job of one VM gets exactly it
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(&agent, &p, json!({"count": 1, "ip_plan": pool})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["items"][0]["ip"], "10.1.0.12");
    s.stop().await;
}

async fn roles_tenants_and_ownership(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@vmjobs.test", "operator").await;
    let (_, operator2) = s.user(&admin, "op2@vmjobs.test", "operator").await;
    let (_, viewer) = s.user(&admin, "viewer@vmjobs.test", "viewer").await;
    let other = s.tenant_with_admin(&admin, "vmjobs-b").await;
    let (admins_agent, admins_token) = pair_agent(&s, &admin).await;
    let (ops_agent, ops_token) = pair_agent(&s, &operator).await;
    heartbeat(&s, &admins_token).await;
    heartbeat(&s, &ops_token).await;
    let p_admin = profile(&s, &admin).await;
    let p_op = profile(&s, &operator).await;

    // viewers cannot create; operators only for their own agents
    s.post(
        "/api/v1/vm-jobs",
        Some(&viewer),
        body(&ops_agent, &p_op, json!({})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.post(
        "/api/v1/vm-jobs",
        Some(&operator),
        body(&admins_agent, &p_op, json!({})),
    )
    .await
    .assert_error(403, "AGENT_OWNER_MISMATCH");
    // another operator's profile is not visible
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&operator),
            body(&ops_agent, &p_admin, json!({})),
        )
        .await;
    r.assert_error(400, "VALIDATION_ERROR");
    assert!(r.body["error"]["details"]["fields"]["profile_id"].is_string());
    // another tenant's agent does not exist there
    let p_other = profile(&s, &other).await;
    s.post(
        "/api/v1/vm-jobs",
        Some(&other),
        body(&ops_agent, &p_other, json!({})),
    )
    .await
    .assert_error(404, "AGENT_NOT_FOUND");

    let mine = s
        .post(
            "/api/v1/vm-jobs",
            Some(&operator),
            body(&ops_agent, &p_op, json!({})),
        )
        .await;
    assert_eq!(mine.status, 201, "{}", mine.body);
    let id = mine.body["data"]["id"].as_str().unwrap().to_string();
    // admins may use any agent of the tenant
    let by_admin = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(&ops_agent, &p_admin, json!({})),
        )
        .await;
    assert_eq!(by_admin.status, 201, "{}", by_admin.body);
    let admin_job = by_admin.body["data"]["id"].as_str().unwrap().to_string();

    for path in [
        format!("/api/v1/vm-jobs/{id}"),
        format!("/api/v1/vm-jobs/{id}/events"),
    ] {
        assert_eq!(s.get(&path, Some(&operator)).await.status, 200, "{path}");
        assert_eq!(s.get(&path, Some(&admin)).await.status, 200, "{path}");
        s.get(&path, Some(&operator2))
            .await
            .assert_error(404, "VM_JOB_NOT_FOUND");
        s.get(&path, Some(&viewer))
            .await
            .assert_error(404, "VM_JOB_NOT_FOUND");
        s.get(&path, Some(&other))
            .await
            .assert_error(404, "VM_JOB_NOT_FOUND");
        s.get(&path, None).await.assert_error(401, "UNAUTHORIZED");
    }
    // operators see their own jobs; admins the tenant's; tenant B none
    let list = |t: String| {
        let s = &s;
        async move {
            let r = s.get("/api/v1/vm-jobs", Some(&t)).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_string())
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(list(operator.clone()).await, BTreeSet::from([id.clone()]));
    assert_eq!(
        list(admin.clone()).await,
        BTreeSet::from([id.clone(), admin_job.clone()])
    );
    assert!(list(other.clone()).await.is_empty());
    assert!(list(viewer.clone()).await.is_empty());

    // cancel and retry: viewers never; other operators and tenants see nothing
    let cancel = format!("/api/v1/vm-jobs/{id}/cancel");
    let retry = format!("/api/v1/vm-jobs/{id}/items/0/retry");
    s.post(&cancel, Some(&viewer), json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    s.post(&cancel, Some(&operator2), json!({}))
        .await
        .assert_error(404, "VM_JOB_NOT_FOUND");
    s.post(&cancel, Some(&other), json!({}))
        .await
        .assert_error(404, "VM_JOB_NOT_FOUND");
    s.post(&retry, Some(&viewer), json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    s.post(&retry, Some(&other), json!({}))
        .await
        .assert_error(404, "VM_JOB_NOT_FOUND");
    // an item that did not fail cannot be retried; no such item
    s.post(&retry, Some(&operator), json!({}))
        .await
        .assert_error(409, "VM_JOB_ITEM_NOT_FAILED");
    s.post(
        &format!("/api/v1/vm-jobs/{id}/items/7/retry"),
        Some(&operator),
        json!({}),
    )
    .await
    .assert_error(404, "VM_JOB_ITEM_NOT_FOUND");
    // the owner cancels; a second cancel answers VM_JOB_FINISHED; retry in a
    // cancelled job is refused
    let r = s.post(&cancel, Some(&operator), json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["job"]["status"], "cancelled");
    s.post(&cancel, Some(&operator), json!({}))
        .await
        .assert_error(409, "VM_JOB_FINISHED");
    s.post(&retry, Some(&operator), json!({}))
        .await
        .assert_error(409, "VM_JOB_CANCELLED");
    // admins cancel others' jobs
    let r = s
        .post(
            &format!("/api/v1/vm-jobs/{admin_job}/cancel"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // the events stream carries the job's events to its creator, filtered by job_id
    let r = s
        .get(&format!("/api/v1/vm-jobs/{id}/events"), Some(&operator))
        .await;
    let types: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"vm_job.created"), "{types:?}");
    assert!(types.contains(&"vm_job.status"), "{types:?}");
    s.stop().await;
}

async fn idempotency_key_returns_the_same_job(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (_, operator) = s.user(&admin, "op@idem.test", "operator").await;
    let (agent, agent_token) = pair_agent(&s, &operator).await;
    heartbeat(&s, &agent_token).await;
    let p = profile(&s, &operator).await;
    let req = body(
        &agent,
        &p,
        json!({"idempotency_key": "batch-42", "count": 3}),
    );
    let first = s
        .post("/api/v1/vm-jobs", Some(&operator), req.clone())
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = s
        .post("/api/v1/vm-jobs", Some(&operator), req.clone())
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["meta"]["reused"], true);
    assert_eq!(again.body["data"]["id"], first.body["data"]["id"]);
    assert_eq!(again.body["data"]["items"].as_array().unwrap().len(), 3);
    // concurrent requests with one key make one job
    let mut handles = Vec::new();
    let key_req = body(&agent, &p, json!({"idempotency_key": "race", "count": 1}));
    for _ in 0..6 {
        let http = s.http.clone();
        let url = s.url("/api/v1/vm-jobs");
        let (t, b) = (operator.clone(), key_req.clone());
        handles.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(t).json(&b).send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<Value>().await.unwrap())
        }));
    }
    let mut ids = BTreeSet::new();
    for h in handles {
        let (st, b) = h.await.unwrap();
        assert!(st == 201 || st == 200, "{st} {b}");
        ids.insert(b["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    // the same key with another spec is a conflict
    let other = body(
        &agent,
        &p,
        json!({"idempotency_key": "batch-42", "count": 4}),
    );
    s.post("/api/v1/vm-jobs", Some(&operator), other)
        .await
        .assert_error(409, "IDEMPOTENCY_KEY_REUSED");
    // another user of the tenant with the same key and body: not theirs
    let (_, op2) = s.user(&admin, "op2@idem.test", "operator").await;
    s.post("/api/v1/vm-jobs", Some(&op2), req.clone())
        .await
        .assert_error(409, "IDEMPOTENCY_KEY_REUSED");
    // admins get the job back
    let r = s.post("/api/v1/vm-jobs", Some(&admin), req).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["id"], first.body["data"]["id"]);
    s.stop().await;
}

async fn list_kit_filters_sorts_and_pages(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent, agent_token) = pair_agent(&s, &admin).await;
    let (agent2, agent2_token) = pair_agent(&s, &admin).await;
    heartbeat(&s, &agent_token).await;
    heartbeat(&s, &agent2_token).await;
    let p = profile(&s, &admin).await;
    let mut ids = Vec::new();
    for (a, n) in [(&agent, 1), (&agent, 2), (&agent2, 3), (&agent, 4)] {
        let r = s
            .post(
                "/api/v1/vm-jobs",
                Some(&admin),
                body(a, &p, json!({"count": n})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.push(r.body["data"]["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cancelled = s
        .post(
            &format!("/api/v1/vm-jobs/{}/cancel", ids[1]),
            Some(&admin),
            json!({}),
        )
        .await;
    // The orchestrator is planning these jobs meanwhile: the cancel must win
    // its race with it, not answer 409.
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let get = |q: &str| {
        let s = &s;
        let t = admin.clone();
        let q = q.to_string();
        async move {
            let r = s.get(&format!("/api/v1/vm-jobs{q}"), Some(&t)).await;
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            r.body
        }
    };
    let ids_of = |b: &Value| -> Vec<String> {
        b["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_string())
            .collect()
    };
    // newest first by default
    let all = get("").await;
    assert_eq!(ids_of(&all), ids.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(all["meta"]["total"], 4);
    assert_eq!(
        ids_of(&get("?status=cancelled").await),
        vec![ids[1].clone()]
    );
    assert_eq!(
        ids_of(&get(&format!("?agent_id={agent2}")).await),
        vec![ids[2].clone()]
    );
    assert_eq!(
        ids_of(&get("?sort=item_count&order=asc").await),
        ids.clone()
    );
    assert_eq!(
        ids_of(&get("?item_count_gte=3&sort=item_count&order=desc").await),
        vec![ids[3].clone(), ids[2].clone()]
    );
    // cursor paging walks every job once
    let mut seen = Vec::new();
    let mut q = "?limit=3".to_string();
    loop {
        let page = get(&q).await;
        seen.extend(ids_of(&page));
        match page["meta"]["next_cursor"].as_str() {
            Some(c) => q = format!("?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>());
    // unknown parameters and bad values name the field
    let r = s.get("/api/v1/vm-jobs?colour=red", Some(&admin)).await;
    r.assert_error(400, "VALIDATION_ERROR");
    let r = s.get("/api/v1/vm-jobs?status=sleeping", Some(&admin)).await;
    r.assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

// ---------------------------------------------------------------- scripted agent

#[derive(Default)]
struct Script {
    /// Every command the agent got: (type, idempotency key, payload).
    seen: Vec<(String, Option<String>, Value)>,
    /// Provisioning tokens by VM uuid (from the ISO payloads).
    tokens: BTreeMap<String, String>,
    /// VMs "created" by clones (newid → times).
    cloned: BTreeMap<i64, u32>,
    /// ISO per VMID.
    isos: BTreeMap<i64, String>,
    /// Fail the first command of these types with (code, message), once each.
    fail_once: Vec<(String, String, String)>,
    paused: bool,
}

fn token_in(payload: &Value) -> Option<(String, String)> {
    let b64 = payload["files"]["provision.json"].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        v["vm_uuid"].as_str()?.to_string(),
        v["token"].as_str()?.to_string(),
    ))
}

/// Answers like the real agent would against a healthy Proxmox.
fn answer(script: &mut Script, c: &Value) -> Value {
    let t = c["command_type"].as_str().unwrap_or_default().to_string();
    let p = c["payload"].clone();
    script.seen.push((
        t.clone(),
        c["idempotency_key"].as_str().map(str::to_string),
        p.clone(),
    ));
    // A clone that the agent "lost" was still made on Proxmox.
    let clones = if t == "proxmox.clone" {
        let n = script
            .cloned
            .entry(p["newid"].as_i64().unwrap())
            .or_insert(0);
        *n += 1;
        *n
    } else {
        0
    };
    if let Some(i) = script.fail_once.iter().position(|(ty, _, _)| *ty == t) {
        let (_, code, msg) = script.fail_once.remove(i);
        return json!({"status": "failed", "attempt": c["attempt"], "error_code": code, "error_message": msg});
    }
    let vmid = p["vmid"].as_i64().unwrap_or(0);
    let result = match t.as_str() {
        "proxmox.cluster-resources" => json!([
            {"id": "qemu/9000", "type": "qemu", "vmid": 9000, "template": 1, "node": "pve"},
            {"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "pve"},
        ]),
        "proxmox.clone" => {
            let newid = p["newid"].as_i64().unwrap();
            if clones > 1 {
                json!({"upid": null, "newid": newid, "alreadyExists": true})
            } else {
                json!({"upid": format!("UPID:pve:0001:0002:0003:qmclone:9000:root@pam!botmox:{newid}"), "newid": newid})
            }
        }
        "proxmox.wait-task" => json!({"status": "stopped", "exitstatus": "OK", "warnings": 0}),
        "proxmox.task-status" => json!({"status": "stopped", "exitstatus": "OK"}),
        "proxmox.wait-vm-presence" => json!({"vmid": vmid, "exists": true, "unlocked": true}),
        "proxmox.update-config" => json!({"updated": true, "upid": null}),
        "proxmox.resize-disk" => json!({"upid": "UPID:pve:0001:0002:0003:resize:1:root@pam:"}),
        "proxmox.create-provision-iso" | "proxmox.upload-iso" => {
            if let Some((vm, tok)) = token_in(&p) {
                script.tokens.insert(vm, tok);
            }
            let name = p["isoName"].as_str().unwrap().to_string();
            let vol = format!("local:iso/{name}");
            script.isos.insert(vmid, vol.clone());
            json!({"isoPath": vol, "isoName": name, "sha256": "ab".repeat(32), "size": 4096, "storage": "local"})
        }
        "proxmox.attach-cdrom" => {
            json!({"attached": true, "slot": "ide2", "isoPath": p["isoPath"]})
        }
        "proxmox.start" => {
            json!({"upid": format!("UPID:pve:0001:0002:0003:qmstart:{vmid}:root@pam:")})
        }
        "proxmox.detach-cdrom" => {
            let vol = p["isoPath"]
                .as_str()
                .map(str::to_string)
                .or_else(|| script.isos.get(&vmid).cloned());
            json!({"detached": true, "slot": "ide2", "deletedIso": vol})
        }
        other => json!({"unexpected": other}),
    };
    json!({"status": "succeeded", "attempt": c["attempt"], "result": result})
}

/// The agent's loop: heartbeat, long poll, answer. Stops when `stop` is set.
fn spawn_agent(
    s: &TestServer,
    agent_token: &str,
    script: Arc<Mutex<Script>>,
    stop: Arc<Mutex<bool>>,
) -> tokio::task::JoinHandle<()> {
    let http = s.http.clone();
    let base = s.url("");
    let tok = agent_token.to_string();
    tokio::spawn(async move {
        let mut last_hb = Instant::now() - Duration::from_secs(5);
        while !*stop.lock().unwrap() {
            if last_hb.elapsed() > Duration::from_millis(500) {
                let _ = http
                    .post(format!("{base}/api/v1/agents/heartbeat"))
                    .bearer_auth(&tok)
                    .json(&json!({}))
                    .send()
                    .await;
                last_hb = Instant::now();
            }
            if script.lock().unwrap().paused {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let Ok(r) = http
                .get(format!(
                    "{base}/api/v1/vm-ops/commands/next?timeout_ms=1000"
                ))
                .bearer_auth(&tok)
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if r.status().as_u16() != 200 {
                continue;
            }
            let c: Value = r.json().await.unwrap();
            let c = c["data"].clone();
            let report = answer(&mut script.lock().unwrap(), &c);
            let id = c["id"].as_str().unwrap();
            let _ = http
                .patch(format!("{base}/api/v1/vm-ops/commands/{id}"))
                .bearer_auth(&tok)
                .json(&report)
                .send()
                .await;
        }
    })
}

async fn guest_reports(s: &TestServer, vm_uuid: &str, token: &str, step: &str, status: &str) {
    let r = s
        .post(
            "/api/v1/provisioning/report-progress",
            None,
            json!({"token": token, "vm_uuid": vm_uuid, "step": step, "status": status}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn scripted_agent_runs_a_job_through_every_step_and_a_restart(b: Backend) {
    let mut s = start(b).await;
    let admin = s.admin_token().await;
    license(&s, &admin).await;
    let (agent, agent_token) = pair_agent(&s, &admin).await;
    let p = profile(&s, &admin).await;
    let script = Arc::new(Mutex::new(Script::default()));
    // lost work, lock contention and a failure on its own merits, once each
    script.lock().unwrap().fail_once = vec![
        ("proxmox.clone".into(), "AGENT_RESTARTED".into(), "the agent restarted while the command was running".into()),
        ("proxmox.update-config".into(), "PROXMOX_API_ERROR".into(),
         "Proxmox API PUT /nodes/pve/qemu/101/config failed (HTTP 500): can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout".into()),
        ("proxmox.start".into(), "PROXMOX_API_ERROR".into(), "Proxmox API POST start failed (HTTP 500): boom".into()),
    ];
    let stop = Arc::new(Mutex::new(false));
    let mut agent_task = spawn_agent(&s, &agent_token, script.clone(), stop.clone());
    wait_online(&s, &admin, &agent).await;
    let r = s
        .post("/api/v1/vm-jobs", Some(&admin),
              body(&agent, &p, json!({"count": 3, "parallelism": 1, "cores": 4, "memory": 4096,
                                      "disk_resize": {"size": "+8G"},
                                      "net0": {"bridge": "vmbr1", "vlan": 20, "mac": "derived"},
                                      "ip_plan": {"mode": "pool", "cidr": "192.168.50.0/24", "gateway": "192.168.50.1",
                                                  "dns": ["192.168.50.1"], "first": "192.168.50.100", "last": "192.168.50.120"}})))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();

    // planning skipped VMID 100 (in use) and 9000 (the template)
    let j = wait_job(&s, &admin, &id, Duration::from_secs(30), |j| {
        j["status"] == "running"
    })
    .await;
    let vmids: Vec<i64> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["vmid"].as_i64().unwrap())
        .collect();
    assert_eq!(vmids, [101, 102, 103]);

    // parallelism 1: the second VM does not clone before the first is configured
    let j = wait_job(&s, &admin, &id, Duration::from_secs(30), |j| {
        j["items"][0]["step"] == "installing" || j["items"][0]["step"] == "failed"
    })
    .await;
    // the start failure is on its own merits: item 0 failed at `starting`
    let j = if j["items"][0]["step"] == "failed" {
        j
    } else {
        wait_job(&s, &admin, &id, Duration::from_secs(30), |j| {
            j["items"][0]["step"] == "failed"
        })
        .await
    };
    assert_eq!(j["items"][0]["failed_step"], "starting", "{j:#}");
    assert_eq!(j["items"][0]["error_code"], "PROXMOX_API_ERROR");
    // the lost clone was re-dispatched, the lock timeout retried: both counted
    assert_eq!(j["items"][0]["infra_retries"], 1, "{j:#}");
    assert_eq!(j["items"][0]["lock_retries"], 1, "{j:#}");
    assert_eq!(j["items"][0]["attempts"]["cloning"], 2, "{j:#}");

    // restart the server while the others run: nothing is cloned twice
    script.lock().unwrap().paused = true;
    *stop.lock().unwrap() = true;
    let _ = agent_task.await;
    s = s.restart().await;
    let admin = s.admin_token().await;
    *stop.lock().unwrap() = false;
    script.lock().unwrap().paused = false;
    agent_task = spawn_agent(&s, &agent_token, script.clone(), stop.clone());

    // retry the failed item from its failed step
    let r = s
        .post(
            &format!("/api/v1/vm-jobs/{id}/items/0/retry"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["items"][0]["step"], "starting");

    // every VM installs: the guest reports with the token from its ISO
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reported = BTreeSet::new();
    loop {
        let j = job(&s, &admin, &id).await;
        if j["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "job did not complete: {j:#}");
        for item in j["items"].as_array().unwrap() {
            let uuid = item["vm_uuid"].as_str().unwrap().to_string();
            if item["step"] == "installing" && !reported.contains(&uuid) {
                let tok = script
                    .lock()
                    .unwrap()
                    .tokens
                    .get(&uuid)
                    .cloned()
                    .expect("token from the ISO");
                guest_reports(&s, &uuid, &tok, "windows_installed", "completed").await;
                guest_reports(&s, &uuid, &tok, "completed", "completed").await;
                reported.insert(uuid);
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    *stop.lock().unwrap() = true;
    let _ = agent_task.await;

    let j = job(&s, &admin, &id).await;
    let sc = std::mem::take(&mut *script.lock().unwrap());
    // one clone per VM, plus the one re-dispatch after the lost command
    assert_eq!(
        sc.cloned,
        BTreeMap::from([(101, 2), (102, 1), (103, 1)]),
        "{:?}",
        sc.cloned
    );
    // idempotency keys never repeat
    let keys: Vec<&String> = sc.seen.iter().filter_map(|(_, k, _)| k.as_ref()).collect();
    let unique: BTreeSet<&&String> = keys.iter().collect();
    assert_eq!(
        keys.len(),
        unique.len(),
        "a key was dispatched twice: {keys:?}"
    );
    // configuration: cores, memory, smbios uuid = the item's uuid, net0 with the derived MAC and VLAN
    for item in j["items"].as_array().unwrap() {
        let vmid = item["vmid"].as_i64().unwrap();
        let cfg = sc
            .seen
            .iter()
            .rev()
            .find(|(t, _, p)| t == "proxmox.update-config" && p["vmid"] == vmid)
            .unwrap();
        let c = &cfg.2["config"];
        assert_eq!(
            c["smbios1"],
            format!("uuid={}", item["vm_uuid"].as_str().unwrap())
        );
        assert_eq!(c["cores"], 4);
        assert_eq!(c["memory"], 4096);
        let net0 = c["net0"].as_str().unwrap();
        assert!(
            net0.starts_with(&format!(
                "virtio={},bridge=vmbr1",
                item["mac"].as_str().unwrap()
            )),
            "{net0}"
        );
        assert!(net0.ends_with(",tag=20"), "{net0}");
        let iso = item["iso_volume"].as_str().unwrap();
        assert!(
            iso.starts_with(&format!("local:iso/provision-{vmid}-")) && iso.ends_with(".iso"),
            "{iso}"
        );
        assert_eq!(item["step"], "done");
        assert_eq!(item["progress"], "completed");
        assert!(item["ip"].as_str().unwrap().starts_with("192.168.50.1"));
        // registered in the VM registry
        let r = s
            .get(
                &format!("/api/v1/vm/{}/resolve", item["vm_uuid"].as_str().unwrap()),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["vm_name"], item["name"]);
    }
    // artifacts: one ISO per VM, recorded with checksum and size, deleted
    let arts = j["artifacts"].as_array().unwrap();
    assert_eq!(arts.len(), 3, "{arts:?}");
    assert!(
        arts.iter()
            .all(|a| a["sha256"].as_str().unwrap().len() == 64
                && a["size"] == 4096
                && a["deleted_at"].is_string()),
        "{arts:?}"
    );
    // the timeline: created → running → … → completed, item steps in the
    // state machine's order for every VM
    let r = s
        .get(
            &format!("/api/v1/vm-jobs/{id}/events?limit=1000"),
            Some(&admin),
        )
        .await;
    let events = r.body["data"].as_array().unwrap().clone();
    assert_eq!(events[0]["event_type"], "vm_job.created");
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["event_type"] == "vm_job.status")
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "completed"], "{statuses:?}");
    let order = [
        "pending",
        "cloning",
        "clone_wait",
        "configuring",
        "iso_building",
        "iso_attaching",
        "registering",
        "starting",
        "installing",
        "detaching",
        "done",
    ];
    for idx in 1..3 {
        let steps: Vec<&str> = events
            .iter()
            .filter(|e| e["event_type"] == "vm_job.item_step" && e["data"]["item"]["index"] == idx)
            .map(|e| e["data"]["item"]["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, order[1..], "item {idx}: {steps:?}");
    }
    assert!(events
        .iter()
        .any(|e| e["event_type"] == "vm_job.item_retry" && e["data"]["reason"] == "lock"));
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == "vm_job.item_retry"
                && e["data"]["reason"] == "infrastructure")
    );
    let ids: Vec<i64> = events
        .iter()
        .map(|e| e["event_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    s.stop().await;
}

async fn cancel_stops_the_job_and_says_which_vms_are_left(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    license(&s, &admin).await;
    let (agent, agent_token) = pair_agent(&s, &admin).await;
    let p = profile(&s, &admin).await;
    let script = Arc::new(Mutex::new(Script::default()));
    let stop = Arc::new(Mutex::new(false));
    let task = spawn_agent(&s, &agent_token, script.clone(), stop.clone());
    wait_online(&s, &admin, &agent).await;
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(&admin),
            body(&agent, &p, json!({"count": 3, "parallelism": 3})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    // let it get to the guest installation, then cancel
    wait_job(&s, &admin, &id, Duration::from_secs(30), |j| {
        j["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["step"] == "installing")
    })
    .await;
    let r = s
        .post(
            &format!("/api/v1/vm-jobs/{id}/cancel"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let d = &r.body["data"];
    assert_eq!(d["job"]["status"], "cancelled");
    let left: Vec<i64> = d["vms_left"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vmid"].as_i64().unwrap())
        .collect();
    assert_eq!(left.len(), 3, "{d}");
    assert!(d["vms_left"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["certain"] == true && v["step"] == "installing"));
    assert!(d["job"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["step"] == "cancelled" && i["failed_step"] == "installing"));
    // no new step runs: the cancelled items' ISOs are cleaned up (the job
    // cleans up after cancel by default) and nothing else is dispatched
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = job(&s, &admin, &id).await;
        if j["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["deleted_at"].is_string())
        {
            break;
        }
        assert!(Instant::now() < deadline, "ISOs not cleaned up: {j:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    *stop.lock().unwrap() = true;
    let _ = task.await;
    let sc = std::mem::take(&mut *script.lock().unwrap());
    let after_cancel: Vec<&str> = sc
        .seen
        .iter()
        .map(|(t, _, _)| t.as_str())
        .skip_while(|t| *t != "proxmox.detach-cdrom")
        .collect();
    assert!(
        after_cancel.iter().all(|t| *t == "proxmox.detach-cdrom"),
        "{after_cancel:?}"
    );
    assert_eq!(after_cancel.len(), 3);
    s.stop().await;
}
