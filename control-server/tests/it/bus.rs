//! Agents and the command bus over real HTTP, on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use crate::common::{base_settings, Backend, TestServer};
use botmox_protocol::PairingBundle;
use control_server::config::Settings;
use serde_json::{json, Value};

backend_tests!(
    full_lifecycle_pair_to_success,
    long_poll_wakes_immediately_on_dispatch,
    registration_is_single_use_and_expires,
    offline_agents_get_nothing_queued,
    revoke_stops_heartbeat_and_poll_at_once,
    lease_expiry_requeues_then_dead_letters,
    illegal_transitions_are_refused,
    idempotency_key_and_read_only_dedupe,
    cancellation_in_each_state,
    events_resume_after_restart,
    tenants_are_isolated_on_every_endpoint,
    roles_and_ownership_gate_dispatch,
    token_rotation_keeps_old_token_for_grace,
);

/// Settings with fast bus timing for tests.
fn fast() -> Settings {
    Settings {
        heartbeat_interval_seconds: Some(5),
        agent_offline_after_seconds: Some(30),
        ..base_settings()
    }
}

async fn start(b: Backend) -> TestServer {
    TestServer::start_with(b, fast(), axum::Router::new()).await
}

/// Pair + register an agent for the token's user; returns (agent id, agent token).
pub(crate) async fn pair_agent(s: &TestServer, user_token: &str) -> (String, String) {
    let p = s
        .post(
            "/api/v1/agents/pairings",
            Some(user_token),
            json!({"name": "lab"}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let code = p.body["data"]["pairing_code"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"pairing_code": code, "machine_name": "pve-runner", "version": "0.1.0", "platform": "linux", "capabilities": ["proxmox"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["data"]["agent"]["id"].as_str().unwrap().to_string(),
        r.body["data"]["agent_token"].as_str().unwrap().to_string(),
    )
}

pub(crate) async fn dispatch(
    s: &TestServer,
    token: &str,
    agent: &str,
    action: &str,
    params: Value,
) -> crate::common::Resp {
    s.post(
        &format!("/api/v1/vm-ops/proxmox/{action}"),
        Some(token),
        json!({"agent_id": agent, "params": params}),
    )
    .await
}

async fn next(s: &TestServer, agent_token: &str, timeout_ms: u64) -> crate::common::Resp {
    s.get(
        &format!("/api/v1/vm-ops/commands/next?timeout_ms={timeout_ms}"),
        Some(agent_token),
    )
    .await
}

/// A long poll running in the background: (status, when it returned, body).
fn spawn_poll(
    s: &TestServer,
    agent_token: &str,
    timeout_ms: u64,
) -> tokio::task::JoinHandle<(u16, Instant, Value)> {
    let http = s.http.clone();
    let url = s.url(&format!(
        "/api/v1/vm-ops/commands/next?timeout_ms={timeout_ms}"
    ));
    let tok = agent_token.to_string();
    tokio::spawn(async move {
        let r = http.get(url).bearer_auth(tok).send().await.unwrap();
        let status = r.status().as_u16();
        let at = Instant::now();
        (status, at, r.json::<Value>().await.unwrap_or(Value::Null))
    })
}

async fn report(s: &TestServer, agent_token: &str, id: &str, body: Value) -> crate::common::Resp {
    s.call(
        "PATCH",
        &format!("/api/v1/vm-ops/commands/{id}"),
        Some(agent_token),
        Some(body),
    )
    .await
}

async fn command(s: &TestServer, token: &str, id: &str) -> Value {
    let r = s
        .get(&format!("/api/v1/vm-ops/commands/{id}"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["data"].clone()
}

async fn wait_status(s: &TestServer, token: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = command(s, token, id).await;
        if c["status"] == want {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "command never became {want}: {c}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn full_lifecycle_pair_to_success(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let p = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"expires_in_minutes": 30, "proxmox": {"url": "https://pve.lan:8006", "username": "root@pam", "node": "pve"}}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let d = &p.body["data"];
    assert_eq!(d["agent"]["status"], "pending");
    assert_eq!(d["agent"]["connection"], "pending");
    let code = d["pairing_code"].as_str().unwrap();
    assert!(
        code.starts_with("bmxp_") && code.len() >= 5 + 43,
        "≥256 bits: {code}"
    );
    let bundle = PairingBundle::decode(d["pairing_bundle"].as_str().unwrap()).unwrap();
    assert_eq!(bundle.pairing_code, code);
    assert_eq!(bundle.server_url, s.url);
    assert_eq!(bundle.proxmox.unwrap().node.as_deref(), Some("pve"));
    assert!(
        bundle.server_cert_sha256.is_none(),
        "TLS is off in this test"
    );
    assert!(d["pairing_uri"]
        .as_str()
        .unwrap()
        .starts_with("botmox://pair?bundle="));
    let page_url = d["pairing_url"].as_str().unwrap();
    assert!(page_url.starts_with(&format!("{}/agent/pair?bundle=", s.url)));
    let page = s.http.get(page_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("botmox-agent pair"));

    let r = s
        .post("/api/v1/agents/register", None, json!({"pairing_code": code, "machine_name": "runner-1", "capabilities": ["proxmox", "ssh"]}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let agent_id = r.body["data"]["agent"]["id"].as_str().unwrap().to_string();
    let agent = r.body["data"]["agent_token"].as_str().unwrap().to_string();
    assert!(agent.starts_with("bmxa_"));
    assert_eq!(r.body["data"]["agent"]["name"], "runner-1");
    assert_eq!(r.body["data"]["intervals"]["heartbeat_interval_s"], 5);

    let hb = s
        .post(
            "/api/v1/agents/heartbeat",
            Some(&agent),
            json!({"version": "0.1.1", "metadata": {"targets": 1}}),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    assert_eq!(hb.body["data"]["agent_id"], agent_id.as_str());
    assert_eq!(hb.body["data"]["rotate_token"], false);
    for k in ["heartbeat_interval_s", "poll_timeout_s", "lease_s"] {
        assert!(hb.body["data"]["intervals"][k].as_u64().unwrap() > 0);
    }
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "online");
    assert_eq!(a.body["data"]["version"], "0.1.1");

    let c = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 101})).await;
    assert_eq!(c.status, 202, "{}", c.body);
    assert_eq!(c.body["data"]["status"], "queued");
    assert_eq!(c.body["data"]["command_type"], "proxmox.start");
    let id = c.body["data"]["id"].as_str().unwrap().to_string();

    let n = next(&s, &agent, 5000).await;
    assert_eq!(n.status, 200, "{}", n.body);
    assert_eq!(n.body["data"]["id"], id.as_str());
    assert_eq!(n.body["data"]["status"], "dispatched");
    assert_eq!(n.body["data"]["attempt"], 1);
    assert_eq!(n.body["data"]["payload"]["vmid"], 101);
    assert!(n.body["data"]["lease_expires_at"].is_string());

    let run = report(
        &s,
        &agent,
        &id,
        json!({"status": "running", "attempt": 1, "progress": {"pct": 10}}),
    )
    .await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.body["data"]["status"], "running");
    assert_eq!(run.body["data"]["cancel_requested"], false);

    let out = s
        .post(
            &format!("/api/v1/vm-ops/commands/{id}/output"),
            Some(&agent),
            json!({"chunks": [{"seq": 0, "stream": "stdout", "data": "starting\n"}, {"seq": 1, "stream": "stderr", "data": "warn\n"}]}),
        )
        .await;
    assert_eq!(out.body["data"], json!({"accepted": 2, "duplicates": 0}));
    let again = s
        .post(
            &format!("/api/v1/vm-ops/commands/{id}/output"),
            Some(&agent),
            json!({"chunks": [{"seq": 1, "stream": "stderr", "data": "warn\n"}, {"seq": 2, "stream": "log", "data": "done\n"}]}),
        )
        .await;
    assert_eq!(again.body["data"], json!({"accepted": 1, "duplicates": 1}));
    let read = s
        .get(
            &format!("/api/v1/vm-ops/commands/{id}/output"),
            Some(&admin),
        )
        .await;
    let texts: Vec<&str> = read.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["data"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["starting\n", "warn\n", "done\n"]);

    let done = report(
        &s,
        &agent,
        &id,
        json!({"status": "succeeded", "attempt": 1, "result": {"upid": "UPID:pve:1"}}),
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["data"]["status"], "succeeded");
    assert_eq!(done.body["data"]["result"]["upid"], "UPID:pve:1");
    assert!(done.body["data"]["finished_at"].is_string());
    // The same final report again is a harmless no-op (redelivery).
    let dup = report(
        &s,
        &agent,
        &id,
        json!({"status": "succeeded", "attempt": 1, "result": {"upid": "UPID:pve:1"}}),
    )
    .await;
    assert_eq!(dup.status, 200);
    // A different final report is refused.
    report(&s, &agent, &id, json!({"status": "failed", "attempt": 1}))
        .await
        .assert_error(409, "INVALID_TRANSITION");
    // Agents cannot use user endpoints and vice versa.
    s.get("/api/v1/agents", Some(&agent))
        .await
        .assert_error(403, "FORBIDDEN");
    next(&s, &admin, 1000).await.assert_error(403, "FORBIDDEN");
    // The timeline has every step.
    let list = s
        .get(
            &format!("/api/v1/vm-ops/commands?agent_id={agent_id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    s.stop().await;
}

async fn long_poll_wakes_immediately_on_dispatch(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    // Nothing queued: 204 at the timeout.
    let t0 = Instant::now();
    let empty = next(&s, &agent, 1000).await;
    assert_eq!(empty.status, 204);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    let poll = spawn_poll(&s, &agent, 30_000);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    let c = dispatch(&s, &admin, &agent_id, "vm-status", json!({"vmid": 100})).await;
    assert_eq!(c.status, 202);
    let (status, got, body) = poll.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["data"]["id"], c.body["data"]["id"]);
    let latency = got.duration_since(sent);
    assert!(
        latency < Duration::from_millis(1000),
        "woke after {latency:?}"
    );
    s.stop().await;
}

async fn registration_is_single_use_and_expires(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let mk = |minutes: u32| {
        let s = &s;
        let admin = admin.clone();
        async move {
            let p = s
                .post(
                    "/api/v1/agents/pairings",
                    Some(&admin),
                    json!({"expires_in_minutes": minutes}),
                )
                .await;
            assert_eq!(p.status, 201, "{}", p.body);
            (
                p.body["data"]["agent"]["id"].as_str().unwrap().to_string(),
                p.body["data"]["pairing_code"].as_str().unwrap().to_string(),
            )
        }
    };
    // Concurrent redemption: exactly one wins.
    let (_, code) = mk(15).await;
    let mut tasks = vec![];
    for _ in 0..6 {
        let http = s.http.clone();
        let url = s.url("/api/v1/agents/register");
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .json(&json!({"pairing_code": code}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(statuses, [201, 404, 404, 404, 404, 404]);
    // Replay after success.
    s.post(
        "/api/v1/agents/register",
        None,
        json!({"pairing_code": code}),
    )
    .await
    .assert_error(404, "PAIRING_NOT_FOUND");
    // Unknown code.
    s.post(
        "/api/v1/agents/register",
        None,
        json!({"pairing_code": "bmxp_nope"}),
    )
    .await
    .assert_error(404, "PAIRING_NOT_FOUND");
    // Expired.
    let (agent_id, code) = mk(5).await;
    sqlx::query("UPDATE agents SET pairing_expires_at = $1 WHERE id = $2")
        .bind(1_i64)
        .bind(&agent_id)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    s.post(
        "/api/v1/agents/register",
        None,
        json!({"pairing_code": code}),
    )
    .await
    .assert_error(410, "PAIRING_EXPIRED");
    // Bad input.
    s.post(
        "/api/v1/agents/pairings",
        Some(&admin),
        json!({"expires_in_minutes": 2}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    s.post("/api/v1/agents/register", None, json!({"pairing_code": ""}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    // A pending pairing can be withdrawn; an active agent cannot be deleted.
    let (pending_id, _) = mk(15).await;
    let del = s
        .call(
            "DELETE",
            &format!("/api/v1/agents/{pending_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, 200, "{}", del.body);
    let (active_id, _) = pair_agent(&s, &admin).await;
    s.call(
        "DELETE",
        &format!("/api/v1/agents/{active_id}"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(409, "AGENT_NOT_PENDING");
    s.stop().await;
}

async fn offline_agents_get_nothing_queued(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    // A pending pairing is not online.
    let p = s
        .post("/api/v1/agents/pairings", Some(&admin), json!({}))
        .await;
    let pending = p.body["data"]["agent"]["id"].as_str().unwrap().to_string();
    dispatch(&s, &admin, &pending, "start", json!({"vmid": 1}))
        .await
        .assert_error(409, "AGENT_OFFLINE");
    // An agent whose last heartbeat is old is not online either.
    let (agent_id, _) = pair_agent(&s, &admin).await;
    sqlx::query("UPDATE agents SET last_seen_at = $1 WHERE id = $2")
        .bind(1_i64)
        .bind(&agent_id)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "offline");
    dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 1}))
        .await
        .assert_error(409, "AGENT_OFFLINE");
    dispatch(&s, &admin, "no-such-agent", "start", json!({}))
        .await
        .assert_error(404, "AGENT_NOT_FOUND");
    let list = s.get("/api/v1/vm-ops/commands", Some(&admin)).await;
    assert_eq!(list.body["data"], json!([]), "nothing may be queued");
    // Unknown action is a validation error naming the known ones.
    let bad = dispatch(&s, &admin, &agent_id, "explode", json!({})).await;
    bad.assert_error(400, "VALIDATION_ERROR");
    assert!(bad.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("clone"));
    s.stop().await;
}

async fn revoke_stops_heartbeat_and_poll_at_once(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let claimed = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 5})).await;
    let claimed_id = claimed.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(next(&s, &agent, 1000).await.status, 200);
    // A poll that is waiting when the revoke happens ends at once.
    let waiting = spawn_poll(&s, &agent, 30_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Make the poll return a command first, then queue one that stays queued.
    let first = dispatch(&s, &admin, &agent_id, "stop", json!({"vmid": 5})).await;
    let (st, _, body) = waiting.await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(body["data"]["id"], first.body["data"]["id"]);
    let waiting = spawn_poll(&s, &agent, 30_000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked_at = Instant::now();
    let r = s
        .post(
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(&admin),
            json!({"reason": "laptop stolen"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "revoked");
    assert_eq!(r.body["data"]["connection"], "revoked");
    assert_eq!(r.body["data"]["revoke_reason"], "laptop stolen");
    let (st, when, body) = waiting.await.unwrap();
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"]["code"], "AGENT_REVOKED");
    assert!(when.duration_since(revoked_at) < Duration::from_secs(2));
    // Every agent call now answers AGENT_REVOKED (not a generic 401/403).
    s.post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await
        .assert_error(403, "AGENT_REVOKED");
    next(&s, &agent, 1000)
        .await
        .assert_error(403, "AGENT_REVOKED");
    report(
        &s,
        &agent,
        &claimed_id,
        json!({"status": "succeeded", "attempt": 1}),
    )
    .await
    .assert_error(403, "AGENT_REVOKED");
    // Nothing more can be queued for it.
    dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 6}))
        .await
        .assert_error(409, "AGENT_REVOKED");
    s.post(
        &format!("/api/v1/agents/{agent_id}/revoke"),
        Some(&admin),
        json!({}),
    )
    .await
    .assert_error(409, "ALREADY_REVOKED");
    // Commands still queued at revoke time are cancelled, not left to rot.
    let (agent2_id, _) = pair_agent(&s, &admin).await;
    let q = dispatch(&s, &admin, &agent2_id, "start", json!({"vmid": 9})).await;
    let qid = q.body["data"]["id"].as_str().unwrap().to_string();
    s.post(
        &format!("/api/v1/agents/{agent2_id}/revoke"),
        Some(&admin),
        json!({}),
    )
    .await;
    let c = command(&s, &admin, &qid).await;
    assert_eq!(c["status"], "cancelled");
    assert_eq!(c["error_code"], "AGENT_REVOKED");
    // Revoking is admin-only.
    let (_, op) = s.user(&admin, "op@default.test", "operator").await;
    let (other_id, _) = pair_agent(&s, &op).await;
    s.post(
        &format!("/api/v1/agents/{other_id}/revoke"),
        Some(&op),
        json!({}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.stop().await;
}

async fn lease_expiry_requeues_then_dead_letters(b: Backend) {
    let settings = Settings {
        lease_seconds: Some(1),
        sweep_interval_seconds: Some(1),
        command_max_attempts: Some(2),
        ..fast()
    };
    let s = TestServer::start_with(b, settings, axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let c = dispatch(
        &s,
        &admin,
        &agent_id,
        "clone",
        json!({"vmid": 9000, "newid": 101}),
    )
    .await;
    let id = c.body["data"]["id"].as_str().unwrap().to_string();
    let first = next(&s, &agent, 2000).await;
    assert_eq!(first.body["data"]["attempt"], 1);
    // The agent goes silent: the lease runs out and the command is requeued.
    let requeued = wait_status(&s, &admin, &id, "queued").await;
    assert_eq!(requeued["attempt"], 1);
    assert_eq!(requeued["error_code"], "LEASE_EXPIRED");
    // The stale holder's late report is refused: the command never completes twice.
    report(
        &s,
        &agent,
        &id,
        json!({"status": "succeeded", "attempt": 1}),
    )
    .await
    .assert_error(409, "LEASE_LOST");
    let second = next(&s, &agent, 3000).await;
    assert_eq!(second.body["data"]["attempt"], 2);
    report(&s, &agent, &id, json!({"status": "running", "attempt": 1}))
        .await
        .assert_error(409, "LEASE_LOST");
    // Silent again on the last attempt: dead-lettered, history kept.
    let dead = wait_status(&s, &admin, &id, "failed").await;
    assert_eq!(dead["error_code"], "DEAD_LETTERED");
    assert_eq!(dead["attempt"], 2);
    // Renewing keeps a lease alive past its original end. (Heartbeat first:
    // this test outlived two heartbeat intervals, so the agent is unreachable.)
    assert_eq!(
        s.post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
            .await
            .status,
        200
    );
    let c2 = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 7})).await;
    let id2 = c2.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(next(&s, &agent, 3000).await.status, 200);
    for _ in 0..6 {
        let r = report(&s, &agent, &id2, json!({"status": "running", "attempt": 1})).await;
        assert_eq!(r.status, 200, "{}", r.body);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let ok = report(
        &s,
        &agent,
        &id2,
        json!({"status": "succeeded", "attempt": 1}),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    s.stop().await;
}

async fn illegal_transitions_are_refused(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let c = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 1})).await;
    let id = c.body["data"]["id"].as_str().unwrap().to_string();
    // Not claimed yet: nobody holds a lease.
    report(&s, &agent, &id, json!({"status": "running", "attempt": 0}))
        .await
        .assert_error(409, "LEASE_LOST");
    assert_eq!(next(&s, &agent, 2000).await.status, 200);
    // Wrong attempt number.
    report(&s, &agent, &id, json!({"status": "running", "attempt": 7}))
        .await
        .assert_error(409, "LEASE_LOST");
    // Bad status value and unknown fields are validation errors.
    report(&s, &agent, &id, json!({"status": "queued", "attempt": 1}))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    report(
        &s,
        &agent,
        &id,
        json!({"status": "running", "attempt": 1, "bogus": 1}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    let f = report(&s, &agent, &id, json!({"status": "failed", "attempt": 1, "error_code": "PVE_ERROR", "error_message": "boom"})).await;
    assert_eq!(f.status, 200);
    assert_eq!(f.body["data"]["error_code"], "PVE_ERROR");
    for status in ["running", "succeeded", "cancelled"] {
        report(&s, &agent, &id, json!({"status": status, "attempt": 1}))
            .await
            .assert_error(409, "INVALID_TRANSITION");
    }
    // Another agent of the tenant cannot touch it.
    let (_, other) = pair_agent(&s, &admin).await;
    report(&s, &other, &id, json!({"status": "failed", "attempt": 1}))
        .await
        .assert_error(404, "COMMAND_NOT_FOUND");
    s.stop().await;
}

async fn idempotency_key_and_read_only_dedupe(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, _) = pair_agent(&s, &admin).await;
    let (other_agent, _) = pair_agent(&s, &admin).await;
    let body = json!({"agent_id": agent_id, "params": {"vmid": 101, "newid": 102}, "idempotency_key": "clone-102"});
    let a = s
        .post("/api/v1/vm-ops/proxmox/clone", Some(&admin), body.clone())
        .await;
    assert_eq!(a.status, 202);
    assert!(a.body.get("meta").is_none());
    let b2 = s
        .post("/api/v1/vm-ops/proxmox/clone", Some(&admin), body)
        .await;
    assert_eq!(b2.status, 202);
    assert_eq!(b2.body["data"]["id"], a.body["data"]["id"]);
    assert_eq!(b2.body["meta"]["reused"], true);
    s.post(
        "/api/v1/vm-ops/proxmox/clone",
        Some(&admin),
        json!({"agent_id": other_agent, "params": {}, "idempotency_key": "clone-102"}),
    )
    .await
    .assert_error(409, "IDEMPOTENCY_KEY_REUSED");
    // Read-only actions within 10 s reuse the pending command…
    let r1 = dispatch(&s, &admin, &agent_id, "vm-status", json!({"vmid": 5})).await;
    let r2 = dispatch(&s, &admin, &agent_id, "vm-status", json!({"vmid": 5})).await;
    assert_eq!(r1.body["data"]["id"], r2.body["data"]["id"]);
    // …but not with other parameters, and never for mutating actions.
    let r3 = dispatch(&s, &admin, &agent_id, "vm-status", json!({"vmid": 6})).await;
    assert_ne!(r1.body["data"]["id"], r3.body["data"]["id"]);
    let m1 = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 5})).await;
    let m2 = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 5})).await;
    assert_ne!(m1.body["data"]["id"], m2.body["data"]["id"]);
    s.stop().await;
}

async fn cancellation_in_each_state(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let cancel = |id: String| {
        let s = &s;
        let admin = admin.clone();
        async move {
            s.post(
                &format!("/api/v1/vm-ops/commands/{id}/cancel"),
                Some(&admin),
                json!({}),
            )
            .await
        }
    };
    // queued → cancelled at once, and never handed out.
    let q = dispatch(&s, &admin, &agent_id, "start", json!({"vmid": 1})).await;
    let qid = q.body["data"]["id"].as_str().unwrap().to_string();
    let r = cancel(qid.clone()).await;
    assert_eq!(r.body["data"]["status"], "cancelled");
    assert_eq!(next(&s, &agent, 1000).await.status, 204);
    // dispatched → cancel requested; the agent learns it from its renewal.
    let d = dispatch(&s, &admin, &agent_id, "stop", json!({"vmid": 1})).await;
    let did = d.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(next(&s, &agent, 2000).await.status, 200);
    let r = cancel(did.clone()).await;
    assert_eq!(r.body["data"]["status"], "dispatched");
    assert_eq!(r.body["data"]["cancel_requested"], true);
    let renew = report(&s, &agent, &did, json!({"status": "running", "attempt": 1})).await;
    assert_eq!(renew.body["data"]["cancel_requested"], true);
    let done = report(
        &s,
        &agent,
        &did,
        json!({"status": "cancelled", "attempt": 1}),
    )
    .await;
    assert_eq!(done.body["data"]["status"], "cancelled");
    // running → cancel requested.
    let rcmd = dispatch(&s, &admin, &agent_id, "reset", json!({"vmid": 1})).await;
    let rid = rcmd.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(next(&s, &agent, 2000).await.status, 200);
    report(&s, &agent, &rid, json!({"status": "running", "attempt": 1})).await;
    let r = cancel(rid.clone()).await;
    assert_eq!(r.body["data"]["status"], "running");
    assert_eq!(r.body["data"]["cancel_requested"], true);
    // Finished → nothing to cancel.
    cancel(qid).await.assert_error(409, "INVALID_TRANSITION");
    // A viewer cannot cancel.
    let (_, viewer) = s.user(&admin, "v@default.test", "viewer").await;
    s.post(
        &format!("/api/v1/vm-ops/commands/{rid}/cancel"),
        Some(&viewer),
        json!({}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    s.stop().await;
}

/// Read SSE frames until `n` events arrived; returns (id, event type, data).
async fn sse_events(
    s: &TestServer,
    token: &str,
    query: &str,
    last_id: Option<i64>,
    n: usize,
) -> Vec<(i64, String, Value)> {
    let mut req = s
        .http
        .get(s.url(&format!("/api/v1/vm-ops/events{query}")))
        .bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id.to_string());
    }
    let mut resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buf = String::new();
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let chunk = tokio::time::timeout_at(deadline.into(), resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events: {out:?}", out.len()))
            .unwrap()
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut ev, mut data) = (None, String::new(), Value::Null);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    ev = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
                }
            }
            if let Some(id) = id {
                out.push((id, ev, data));
            }
        }
    }
    out
}

async fn events_resume_after_restart(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let c = dispatch(
        &s,
        &admin,
        &agent_id,
        "start",
        json!({"vmid": 1, "password": "do-not-leak"}),
    )
    .await;
    let id = c.body["data"]["id"].as_str().unwrap().to_string();
    let first = sse_events(&s, &admin, &format!("?command_id={id}"), None, 1).await;
    assert_eq!(first[0].1, "command.queued");
    assert_eq!(first[0].2["data"]["command"]["id"], id.as_str());
    assert!(
        !first[0].2.to_string().contains("do-not-leak"),
        "payload must not be in events"
    );
    let resume_from = first[0].0;
    let s = s.restart().await;
    let admin = s.login("admin@localhost", &s.admin_password.clone()).await;
    assert_eq!(next(&s, &agent, 2000).await.status, 200);
    report(
        &s,
        &agent,
        &id,
        json!({"status": "succeeded", "attempt": 1}),
    )
    .await;
    let later = sse_events(
        &s,
        &admin,
        &format!("?command_id={id}"),
        Some(resume_from),
        2,
    )
    .await;
    let types: Vec<&str> = later.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(types, ["command.dispatched", "command.succeeded"]);
    assert!(later.iter().all(|e| e.0 > resume_from));
    // The agent sees its own timeline too; bad Last-Event-ID is refused.
    let own = sse_events(&s, &agent, "", None, 1).await;
    assert!(own[0].2["agent_id"] == agent_id.as_str());
    let bad = s
        .http
        .get(s.url("/api/v1/vm-ops/events"))
        .bearer_auth(&admin)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    s.stop().await;
}

async fn tenants_are_isolated_on_every_endpoint(b: Backend) {
    let s = start(b).await;
    let infra = s.admin_token().await;
    let a_admin = s.tenant_with_admin(&infra, "tenant-a").await;
    let b_admin = s.tenant_with_admin(&infra, "tenant-b").await;
    let (a_agent_id, a_agent) = pair_agent(&s, &a_admin).await;
    let (b_agent_id, b_agent) = pair_agent(&s, &b_admin).await;
    let c = dispatch(&s, &a_admin, &a_agent_id, "start", json!({"vmid": 1})).await;
    let a_cmd = c.body["data"]["id"].as_str().unwrap().to_string();
    // B's user sees nothing of A.
    let list = s.get("/api/v1/agents", Some(&b_admin)).await;
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b_agent_id.as_str()]);
    s.get(&format!("/api/v1/agents/{a_agent_id}"), Some(&b_admin))
        .await
        .assert_error(404, "AGENT_NOT_FOUND");
    s.post(
        &format!("/api/v1/agents/{a_agent_id}/revoke"),
        Some(&b_admin),
        json!({}),
    )
    .await
    .assert_error(404, "AGENT_NOT_FOUND");
    s.call(
        "DELETE",
        &format!("/api/v1/agents/{a_agent_id}"),
        Some(&b_admin),
        None,
    )
    .await
    .assert_error(404, "AGENT_NOT_FOUND");
    dispatch(&s, &b_admin, &a_agent_id, "start", json!({}))
        .await
        .assert_error(404, "AGENT_NOT_FOUND");
    s.get(&format!("/api/v1/vm-ops/commands/{a_cmd}"), Some(&b_admin))
        .await
        .assert_error(404, "COMMAND_NOT_FOUND");
    s.get(
        &format!("/api/v1/vm-ops/commands/{a_cmd}/output"),
        Some(&b_admin),
    )
    .await
    .assert_error(404, "COMMAND_NOT_FOUND");
    s.post(
        &format!("/api/v1/vm-ops/commands/{a_cmd}/cancel"),
        Some(&b_admin),
        json!({}),
    )
    .await
    .assert_error(404, "COMMAND_NOT_FOUND");
    assert_eq!(
        s.get("/api/v1/vm-ops/commands", Some(&b_admin)).await.body["data"],
        json!([])
    );
    // B's agent can neither claim, see, report on nor write output to A's command.
    assert_eq!(next(&s, &b_agent, 1000).await.status, 204);
    s.get(&format!("/api/v1/vm-ops/commands/{a_cmd}"), Some(&b_agent))
        .await
        .assert_error(404, "COMMAND_NOT_FOUND");
    report(
        &s,
        &b_agent,
        &a_cmd,
        json!({"status": "failed", "attempt": 1}),
    )
    .await
    .assert_error(404, "COMMAND_NOT_FOUND");
    s.post(
        &format!("/api/v1/vm-ops/commands/{a_cmd}/output"),
        Some(&b_agent),
        json!({"chunks": []}),
    )
    .await
    .assert_error(404, "COMMAND_NOT_FOUND");
    // B's event stream holds only B's agent events, never A's command.
    let b_events = sse_events(&s, &b_admin, "", None, 2).await;
    assert!(
        b_events.iter().all(|e| e.2["tenant_id"] == "tenant-b"),
        "{b_events:?}"
    );
    // A's agent still gets its command.
    assert_eq!(
        next(&s, &a_agent, 2000).await.body["data"]["id"],
        a_cmd.as_str()
    );
    s.stop().await;
}

async fn roles_and_ownership_gate_dispatch(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (_, viewer) = s.user(&admin, "viewer@default.test", "viewer").await;
    let (op1_id, op1) = s.user(&admin, "op1@default.test", "operator").await;
    let (_, op2) = s.user(&admin, "op2@default.test", "operator").await;
    // Viewers cannot pair or dispatch.
    s.post("/api/v1/agents/pairings", Some(&viewer), json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    let (agent_id, _) = pair_agent(&s, &op1).await;
    dispatch(&s, &viewer, &agent_id, "start", json!({}))
        .await
        .assert_error(403, "FORBIDDEN");
    // Operators dispatch only to their own agents.
    assert_eq!(
        dispatch(&s, &op1, &agent_id, "start", json!({"vmid": 1}))
            .await
            .status,
        202
    );
    dispatch(&s, &op2, &agent_id, "start", json!({"vmid": 1}))
        .await
        .assert_error(403, "AGENT_OWNER_MISMATCH");
    // …and see only their agents and commands; admins see all.
    assert_eq!(
        s.get("/api/v1/agents", Some(&op2)).await.body["data"],
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/vm-ops/commands", Some(&op2)).await.body["data"],
        json!([])
    );
    assert_eq!(
        s.get("/api/v1/vm-ops/commands", Some(&admin)).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        dispatch(&s, &admin, &agent_id, "stop", json!({"vmid": 1}))
            .await
            .status,
        202
    );
    // Only admins choose another owner, and the generic endpoint is admin-only.
    s.post(
        "/api/v1/agents/pairings",
        Some(&op2),
        json!({"owner_user_id": op1_id}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let p = s
        .post(
            "/api/v1/agents/pairings",
            Some(&admin),
            json!({"owner_user_id": op1_id}),
        )
        .await;
    assert_eq!(p.body["data"]["agent"]["owner_user_id"], op1_id.as_str());
    s.post(
        "/api/v1/vm-ops/commands",
        Some(&op1),
        json!({"agent_id": agent_id, "command_type": "custom.thing"}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let g = s
        .post("/api/v1/vm-ops/commands", Some(&admin), json!({"agent_id": agent_id, "command_type": "custom.thing", "payload": {"a": 1}, "expires_in_seconds": 60}))
        .await;
    assert_eq!(g.status, 202, "{}", g.body);
    s.post(
        "/api/v1/vm-ops/commands",
        Some(&admin),
        json!({"agent_id": agent_id, "command_type": "Bad Type", "expires_in_seconds": 5}),
    )
    .await
    .assert_error(400, "VALIDATION_ERROR");
    // Pagination walks every command exactly once.
    let page1 = s.get("/api/v1/vm-ops/commands?limit=2", Some(&admin)).await;
    assert_eq!(page1.body["data"].as_array().unwrap().len(), 2);
    let cursor = page1.body["meta"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let page2 = s
        .get(
            &format!("/api/v1/vm-ops/commands?limit=2&cursor={cursor}"),
            Some(&admin),
        )
        .await;
    assert_eq!(page2.body["data"].as_array().unwrap().len(), 1);
    s.get("/api/v1/vm-ops/commands?limit=0", Some(&admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.get("/api/v1/vm-ops/commands?status=weird", Some(&admin))
        .await
        .assert_error(400, "VALIDATION_ERROR");
    s.stop().await;
}

async fn token_rotation_keeps_old_token_for_grace(b: Backend) {
    let s = start(b).await;
    let admin = s.admin_token().await;
    let (_, agent) = pair_agent(&s, &admin).await;
    let r = s
        .post("/api/v1/agents/token/rotate", Some(&agent), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.body["data"]["agent_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, agent);
    assert!(r.body["data"]["previous_token_valid_until"].is_string());
    for t in [&agent, &fresh] {
        assert_eq!(
            s.post("/api/v1/agents/heartbeat", Some(t), json!({}))
                .await
                .status,
            200
        );
    }
    // Once the grace period is over the old token is refused; the new one works.
    let old_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(agent.as_bytes()));
    let n = sqlx::query("UPDATE agent_tokens SET expires_at = $1 WHERE token_hash = $2")
        .bind(1_i64)
        .bind(&old_hash)
        .execute(s.db.raw_pool())
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);
    s.post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await
        .assert_error(401, "UNAUTHORIZED");
    assert_eq!(
        s.post("/api/v1/agents/heartbeat", Some(&fresh), json!({}))
            .await
            .status,
        200
    );
    s.stop().await;
}
