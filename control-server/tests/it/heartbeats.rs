//! Heartbeat write-behind and the agent token cache (issue #15), over real
//! HTTP on SQLite and PostgreSQL: what reaches the database and when (in
//! flushes, not seconds), revocation despite the cache, two servers on one
//! database, and what a crash loses. Also admission control: requests over
//! `api_max_in_flight` are shed with 429 `SERVER_BUSY` and a jittered
//! `Retry-After`; parked long polls and health checks do not count.

use std::time::Duration;

use crate::bus::{dispatch, pair_agent};
use crate::common::{base_settings, Backend, TestServer};
use control_server::config::Settings;
use control_server::db::time::parse_timestamp_ms;
use serde_json::{json, Value};

backend_tests!(
    heartbeats_are_buffered_and_stored_at_shutdown,
    last_seen_reaches_the_database_within_one_flush_interval,
    revocation_ends_the_next_call_at_once_despite_the_cache,
    a_crash_loses_only_the_buffered_last_seen,
    over_the_in_flight_limit_requests_are_shed_with_a_jittered_retry_after,
);

/// A flush interval the test never reaches: flushes happen only when the
/// test asks (or at shutdown).
const NEVER_MS: u64 = 60_000;

fn settings(flush_ms: u64, cache_s: u64) -> Settings {
    Settings {
        heartbeat_interval_seconds: Some(5),
        agent_offline_after_seconds: Some(30),
        heartbeat_flush_interval_ms: Some(flush_ms),
        agent_auth_cache_seconds: Some(cache_s),
        ..base_settings()
    }
}

/// Heartbeat; returns the server time of the answer (epoch ms). Sleeps a
/// few ms first so that consecutive heartbeats have different times.
async fn heartbeat(s: &TestServer, token: &str, body: Value) -> i64 {
    tokio::time::sleep(Duration::from_millis(3)).await;
    let r = s.post("/api/v1/agents/heartbeat", Some(token), body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    parse_timestamp_ms(r.body["data"]["server_time"].as_str().unwrap()).unwrap()
}

async fn stored_last_seen(s: &TestServer, agent_id: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT last_seen_at FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_one(s.db.raw_pool())
        .await
        .unwrap()
}

async fn stored_metadata(s: &TestServer, agent_id: &str) -> Option<String> {
    sqlx::query_scalar::<_, Option<String>>("SELECT metadata FROM agents WHERE id = $1")
        .bind(agent_id)
        .fetch_one(s.db.raw_pool())
        .await
        .unwrap()
}

/// `(connection, last_seen_at)` of every agent, as a server lists them.
async fn states(s: &TestServer, admin: &str) -> Vec<(String, String, Value)> {
    let r = s.get("/api/v1/agents?limit=100", Some(admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut v: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["connection"].as_str().unwrap().to_string(),
                a["last_seen_at"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Wait until the server's flusher completed two more flushes: the second
/// one began after everything buffered before this call.
async fn two_flushes(mut flushes: tokio::sync::watch::Receiver<u64>) {
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(60), flushes.changed())
            .await
            .expect("the flusher runs")
            .expect("the flusher is alive");
    }
}

async fn heartbeats_are_buffered_and_stored_at_shutdown(b: Backend) {
    let s = TestServer::start_with(b, settings(NEVER_MS, 10), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    // The first heartbeat this process sees is written at once.
    let t1 = heartbeat(&s, &agent, json!({})).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, t1);
    // The next ones only change memory: the stored time stays, the agent
    // stays online and dispatch works.
    let t2 = heartbeat(&s, &agent, json!({})).await;
    assert!(t2 > t1);
    assert_eq!(stored_last_seen(&s, &agent_id).await, t1);
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "online", "{}", a.body);
    assert_eq!(
        dispatch(&s, &admin, &agent_id, "status", json!({}))
            .await
            .status,
        202
    );
    // Changed metadata is written at once (with the time); the same
    // metadata again is buffered.
    let t3 = heartbeat(&s, &agent, json!({"metadata": {"targets": 2}})).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, t3);
    assert_eq!(
        stored_metadata(&s, &agent_id).await.as_deref(),
        Some(r#"{"targets":2}"#)
    );
    let t4 = heartbeat(&s, &agent, json!({"metadata": {"targets": 2}})).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, t3);
    // A graceful stop stores what is buffered.
    let s = s.restart().await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, t4);
    s.stop().await;
}

async fn last_seen_reaches_the_database_within_one_flush_interval(b: Backend) {
    let s = TestServer::start_with(b, settings(50, 10), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    let (other_id, other) = pair_agent(&s, &admin).await;
    heartbeat(&s, &agent, json!({})).await;
    heartbeat(&s, &other, json!({})).await;
    let flushes = s.agents().subscribe_flushes();
    let t_agent = heartbeat(&s, &agent, json!({})).await;
    let t_other = heartbeat(&s, &other, json!({})).await;
    // The flush that started after both heartbeats has stored both (in one
    // statement).
    two_flushes(flushes).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, t_agent);
    assert_eq!(stored_last_seen(&s, &other_id).await, t_other);
    s.stop().await;
}

async fn revocation_ends_the_next_call_at_once_despite_the_cache(b: Backend) {
    // Tokens stay cached for 5 minutes unless something removes them.
    let s = TestServer::start_with(b, settings(NEVER_MS, 300), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    heartbeat(&s, &agent, json!({})).await;
    // The cache answers: the token row changed by hand is not seen (this is
    // what the TTL bounds).
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(agent.as_bytes()));
    let saved: i64 =
        sqlx::query_scalar("SELECT expires_at FROM agent_tokens WHERE token_hash = $1")
            .bind(&hash)
            .fetch_one(s.db.raw_pool())
            .await
            .unwrap();
    sqlx::query("UPDATE agent_tokens SET expires_at = 1 WHERE token_hash = $1")
        .bind(&hash)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    heartbeat(&s, &agent, json!({})).await;
    sqlx::query("UPDATE agent_tokens SET expires_at = $1 WHERE token_hash = $2")
        .bind(saved)
        .bind(&hash)
        .execute(s.db.raw_pool())
        .await
        .unwrap();
    // A revoke removes the cached token: the very next call is refused.
    let r = s
        .post(
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    s.post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await
        .assert_error(403, "AGENT_REVOKED");
    s.get("/api/v1/vm-ops/commands/next?timeout_ms=1000", Some(&agent))
        .await
        .assert_error(403, "AGENT_REVOKED");
    // Nothing buffered of it resurrects it.
    s.agents().flush_heartbeats().await.unwrap();
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "revoked");
    s.stop().await;
}

async fn a_crash_loses_only_the_buffered_last_seen(b: Backend) {
    let s = TestServer::start_with(b, settings(NEVER_MS, 10), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (agent_id, agent) = pair_agent(&s, &admin).await;
    heartbeat(&s, &agent, json!({})).await;
    // One interval: buffered, then flushed (as the flusher's tick does).
    let flushed = heartbeat(&s, &agent, json!({})).await;
    s.agents().flush_heartbeats().await.unwrap();
    assert_eq!(stored_last_seen(&s, &agent_id).await, flushed);
    // The next interval: a buffered heartbeat, and work that is not
    // write-behind (a command run to the end, changed metadata).
    let lost = heartbeat(&s, &agent, json!({})).await;
    assert!(lost > flushed);
    let d = dispatch(&s, &admin, &agent_id, "status", json!({})).await;
    let id = d.body["data"]["id"].as_str().unwrap().to_string();
    let c = s
        .get("/api/v1/vm-ops/commands/next?timeout_ms=5000", Some(&agent))
        .await;
    assert_eq!(c.body["data"]["id"], id.as_str(), "{}", c.body);
    for status in ["running", "succeeded"] {
        let r = s
            .call(
                "PATCH",
                &format!("/api/v1/vm-ops/commands/{id}"),
                Some(&agent),
                Some(json!({"status": status, "attempt": 1})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let meta_at = heartbeat(&s, &agent, json!({"metadata": {"crash": true}})).await;
    let last = heartbeat(&s, &agent, json!({"metadata": {"crash": true}})).await;
    assert!(last > meta_at);
    // Crash: nothing is flushed.
    let s = s.crash_and_restart().await;
    // Lost: only the last buffered time (after the written-through one).
    assert_eq!(stored_last_seen(&s, &agent_id).await, meta_at);
    assert_eq!(
        stored_metadata(&s, &agent_id).await.as_deref(),
        Some(r#"{"crash":true}"#)
    );
    let admin = s.admin_token().await;
    let c = s
        .get(&format!("/api/v1/vm-ops/commands/{id}"), Some(&admin))
        .await;
    assert_eq!(c.body["data"]["status"], "succeeded", "{}", c.body);
    // The agent simply carries on with the restarted server.
    let again = heartbeat(&s, &agent, json!({})).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, again);
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "online");
    s.stop().await;
}

/// Two server processes on one PostgreSQL database (each with its own
/// write-behind and token cache) show the same connection states, flush
/// their own agents, and a revoke through one ends the agent's calls on the
/// other through NOTIFY, long before the cache TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_servers_agree_on_connection_states() {
    let a = TestServer::start_with(
        Backend::Postgres,
        settings(NEVER_MS, 300),
        axum::Router::new(),
    )
    .await;
    let b = a.second_on_same_database().await;
    let admin = a.admin_token().await;
    let (x_id, x) = pair_agent(&a, &admin).await;
    let (y_id, y) = pair_agent(&b, &admin).await;
    let (z_id, _z) = pair_agent(&a, &admin).await;
    // Z has been silent for an hour.
    sqlx::query("UPDATE agents SET last_seen_at = last_seen_at - 3600000 WHERE id = $1")
        .bind(&z_id)
        .execute(a.db.raw_pool())
        .await
        .unwrap();
    // X talks to A, Y to B: the second heartbeat of each is buffered.
    heartbeat(&a, &x, json!({})).await;
    heartbeat(&b, &y, json!({})).await;
    let tx = heartbeat(&a, &x, json!({})).await;
    let ty = heartbeat(&b, &y, json!({})).await;
    let before = states(&a, &admin).await;
    assert_eq!(before, states(&b, &admin).await);
    let state_of =
        |v: &[(String, String, Value)], id: &str| v.iter().find(|e| e.0 == id).unwrap().1.clone();
    assert_eq!(state_of(&before, &x_id), "online");
    assert_eq!(state_of(&before, &y_id), "online");
    assert_eq!(state_of(&before, &z_id), "offline");
    // Each process stores its own agents' heartbeats.
    assert_eq!(a.agents().flush_heartbeats().await.unwrap(), 1);
    assert_eq!(stored_last_seen(&a, &x_id).await, tx);
    assert!(stored_last_seen(&a, &y_id).await < ty);
    assert_eq!(b.agents().flush_heartbeats().await.unwrap(), 1);
    assert_eq!(stored_last_seen(&a, &y_id).await, ty);
    let after = states(&a, &admin).await;
    assert_eq!(after, states(&b, &admin).await);
    // X moves to B while A still holds an older buffered heartbeat of it:
    // B writes its first heartbeat through; A's flush of the older time
    // cannot move it back.
    heartbeat(&a, &x, json!({})).await;
    let tx_b = heartbeat(&b, &x, json!({})).await;
    assert_eq!(stored_last_seen(&a, &x_id).await, tx_b);
    assert_eq!(a.agents().flush_heartbeats().await.unwrap(), 1);
    assert_eq!(stored_last_seen(&a, &x_id).await, tx_b);
    assert_eq!(states(&a, &admin).await, states(&b, &admin).await);
    // Y's token is cached in B (TTL 5 min). Revoked through A, its next
    // call on B is refused once A's NOTIFY reached B.
    heartbeat(&b, &y, json!({})).await;
    let r = a
        .post(
            &format!("/api/v1/agents/{y_id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = b
            .post("/api/v1/agents/heartbeat", Some(&y), json!({}))
            .await;
        if r.status == 403 {
            r.assert_error(403, "AGENT_REVOKED");
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never learned of the revoke"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (sa, sb) = (states(&a, &admin).await, states(&b, &admin).await);
    assert_eq!(sa, sb);
    assert_eq!(state_of(&sa, &y_id), "revoked");
    b.stop().await;
    a.stop().await;
}

/// `api_max_in_flight = 2`: a parked long poll leaves both places free; two
/// requests held open by a test route take them; then every other request
/// (but health) is shed with 429 `SERVER_BUSY` and a `Retry-After` of 1 s
/// plus a random share of the spread — and a long poll is refused at its
/// claim attempt. Once the held requests end, everything passes again.
async fn over_the_in_flight_limit_requests_are_shed_with_a_jittered_retry_after(b: Backend) {
    use std::sync::Arc;
    use tokio::sync::Semaphore;
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(Semaphore::new(0));
    let (g, e) = (gate.clone(), entered.clone());
    let extra = axum::Router::new().route(
        "/api/v1/test/hold",
        axum::routing::get(move || {
            let (g, e) = (g.clone(), e.clone());
            async move {
                e.add_permits(1);
                let _pass = g.acquire().await;
                "released"
            }
        }),
    );
    let s = TestServer::start_with(
        b,
        Settings {
            api_max_in_flight: Some(2),
            busy_retry_spread_seconds: Some(5),
            api_rate_limit_per_minute: Some(100_000),
            public_rate_limit_per_minute: Some(100_000),
            ..base_settings()
        },
        extra,
    )
    .await;
    let admin = s.admin_token().await;
    let (_agent_id, agent) = pair_agent(&s, &admin).await;

    // a long poll that parks holds no place
    let poll_url = s.url("/api/v1/vm-ops/commands/next?timeout_ms=8000");
    let http = reqwest::Client::new();
    let parked = tokio::spawn(http.get(&poll_url).bearer_auth(&agent).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hold = |s: &TestServer| {
        let req = reqwest::Client::new().get(s.url("/api/v1/test/hold"));
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    let (h1, h2) = (hold(&s), hold(&s));
    let both = tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(2)).await;
    assert!(
        both.is_ok(),
        "the two held requests got in beside the parked poll"
    );

    // full: shed, with a spread-out Retry-After
    let mut waits = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let r = s.get("/api/v1/agents", Some(&admin)).await;
        r.assert_error(429, "SERVER_BUSY");
        let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=6).contains(&ra), "Retry-After {ra}");
        waits.insert(ra);
    }
    assert!(waits.len() >= 3, "jittered: {waits:?}");
    let r = s
        .post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await;
    r.assert_error(429, "SERVER_BUSY");
    let r = s
        .get("/api/v1/vm-ops/commands/next?timeout_ms=1000", Some(&agent))
        .await;
    r.assert_error(429, "SERVER_BUSY");
    // monitoring still sees a live server
    assert_eq!(s.get("/api/v1/health/live", None).await.status, 200);

    gate.add_permits(2);
    assert_eq!(h1.await.unwrap(), 200);
    assert_eq!(h2.await.unwrap(), 200);
    let r = s.get("/api/v1/agents", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    heartbeat(&s, &agent, json!({})).await;
    let polled = parked.await.unwrap().unwrap();
    assert_eq!(
        polled.status().as_u16(),
        204,
        "the parked poll timed out normally"
    );
    s.stop().await;
}
