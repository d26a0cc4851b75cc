//! Heartbeat write-behind and the agent token cache (issue #15), over real
//! HTTP on SQLite and PostgreSQL: what reaches the database and when (in
//! flushes, not seconds), revocation despite the cache, two servers on one
//! database, and what a crash loses. Also admission control: requests over
//! `api_max_in_flight` (people) or `agent_max_in_flight` (agents) are shed
//! with 429 `SERVER_BUSY` and a jittered `Retry-After`; parked long polls
//! and health checks do not count.

use std::time::Duration;

use crate::bus::{dispatch, pair_agent};
use crate::common::{base_settings, Backend, TestServer};
use control_server::config::Settings;
use control_server::db::time::parse_timestamp_ms;
use serde_json::{json, Value};

backend_tests!(
    heartbeats_are_buffered_and_stored_at_shutdown,
    the_server_spreads_heartbeats_with_a_jittered_next_heartbeat,
    last_seen_reaches_the_database_within_one_flush_interval,
    revocation_ends_the_next_call_at_once_despite_the_cache,
    a_crash_loses_only_the_buffered_last_seen,
    over_the_in_flight_limit_requests_are_shed_with_a_jittered_retry_after,
    shutdown_ends_parked_polls_and_streams_at_once,
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
    // Registration stored the agent online and seen; its heartbeats only
    // change memory: the stored time stays, the agent stays online and
    // dispatch works.
    let registered = stored_last_seen(&s, &agent_id).await;
    let t1 = heartbeat(&s, &agent, json!({})).await;
    let t2 = heartbeat(&s, &agent, json!({})).await;
    assert!(t2 > t1 && t1 > registered);
    assert_eq!(stored_last_seen(&s, &agent_id).await, registered);
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

/// `(next_heartbeat_in_ms, interval in ms)` of a heartbeat's answer.
async fn next(s: &TestServer, token: &str) -> (u64, u64) {
    let r = s
        .post("/api/v1/agents/heartbeat", Some(token), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let data = &r.body["data"];
    let interval = data["intervals"]["heartbeat_interval_s"].as_u64().unwrap() * 1000;
    (data["next_heartbeat_in_ms"].as_u64().unwrap(), interval)
}

/// The heartbeat answer says when to send the next one: within the
/// interval, anywhere in its last 90 % on an agent's first heartbeat to a
/// server process (a restart's reconnecting fleet spreads out), within its
/// last 10 % after that — random, so a fleet does not stay in step.
async fn the_server_spreads_heartbeats_with_a_jittered_next_heartbeat(b: Backend) {
    let s = TestServer::start_with(b, settings(NEVER_MS, 10), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let mut agents = vec![];
    for _ in 0..8 {
        agents.push(pair_agent(&s, &admin).await.1);
    }
    let agent = agents[0].clone();
    // known to this process since registration: the last 10 %
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let (n, interval) = next(&s, &agent).await;
        assert!(
            (interval * 9 / 10..=interval).contains(&n),
            "{n} of {interval}"
        );
        seen.insert(n);
    }
    assert!(seen.len() > 1, "random, not one value: {seen:?}");
    // after a restart, each agent's first heartbeat gets the wide range
    // (eight agents all in the last 10 % by chance: p = 0.125^8), once
    let s = s.restart().await;
    let mut firsts = vec![];
    for a in &agents {
        let (first, interval) = next(&s, a).await;
        assert!((1000..=interval).contains(&first), "{first} of {interval}");
        firsts.push((first, interval));
    }
    assert!(
        firsts.iter().any(|(f, i)| *f < i * 9 / 10),
        "spread over the interval: {firsts:?}"
    );
    for a in &agents {
        let (n, interval) = next(&s, a).await;
        assert!(n >= interval * 9 / 10, "{n} of {interval}");
    }
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
    // The agent simply carries on with the restarted server, which loaded
    // the stored presence at start: its heartbeat is buffered like any
    // other (a reconnecting fleet is not a burst of writes), it stays
    // online, and the next flush stores the time.
    let again = heartbeat(&s, &agent, json!({})).await;
    assert_eq!(stored_last_seen(&s, &agent_id).await, meta_at);
    let a = s
        .get(&format!("/api/v1/agents/{agent_id}"), Some(&admin))
        .await;
    assert_eq!(a.body["data"]["connection"], "online");
    s.agents().flush_heartbeats().await.unwrap();
    assert_eq!(stored_last_seen(&s, &agent_id).await, again);
    s.stop().await;
}

/// A shutdown ends parked long polls (204: the agent polls again and
/// reaches the restarted server) and event streams at once instead of
/// holding the drain for its whole grace (5 s here; 30 s by default, which
/// made every restart of a fleet's server take 30 s).
async fn shutdown_ends_parked_polls_and_streams_at_once(b: Backend) {
    let s = TestServer::start_with(b, settings(NEVER_MS, 10), axum::Router::new()).await;
    let admin = s.admin_token().await;
    let (_agent_id, agent) = pair_agent(&s, &admin).await;
    let http = reqwest::Client::new();
    let poll = tokio::spawn(
        http.get(s.url("/api/v1/vm-ops/commands/next?timeout_ms=60000"))
            .bearer_auth(&agent)
            .send(),
    );
    let mut stream = http
        .get(s.url("/api/v1/vm-ops/events"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = std::time::Instant::now();
    s.stop().await;
    let stopped = t.elapsed();
    let polled = poll
        .await
        .unwrap()
        .expect("an answer, not a cut connection");
    assert_eq!(polled.status().as_u16(), 204);
    // the stream ends (whatever it sent before)
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream ended");
    assert!(
        stopped < Duration::from_secs(4),
        "stopped in {stopped:?}, not after the 5 s grace"
    );
}

/// The SQLite flush unpacks its JSON batch once and finds each agent by
/// primary key — on a new database without table statistics too, where
/// the first version of this statement re-read the whole batch for every
/// agent (1 s a flush at 5,000 agents, issue #15's benchmarks). SQLite
/// only: PostgreSQL's `jsonb_to_recordset` is unpacked once by nature.
#[tokio::test]
async fn flush_plan_on_sqlite_finds_agents_by_primary_key() {
    use control_server::domains::agents::store::FLUSH_LAST_SEEN_SQLITE;
    // a new database: no statistics yet
    let s = TestServer::start(Backend::Sqlite).await;
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(&format!("EXPLAIN QUERY PLAN {FLUSH_LAST_SEEN_SQLITE}"))
            .bind(r#"[{"id":"a","seen":1}]"#)
            .fetch_all(s.db.raw_pool())
            .await
            .unwrap();
    let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert!(plan.contains(&"MATERIALIZE u"), "{plan:#?}");
    assert!(
        plan.iter()
            .any(|p| p.starts_with("SEARCH agents USING") && p.ends_with("(id=?)")),
        "agents found by primary key: {plan:#?}"
    );
    assert!(
        !plan.iter().any(|p| p.starts_with("SCAN agents")
            || p.starts_with("SEARCH agents USING INDEX agents_state_idx")),
        "agents are not walked: {plan:#?}"
    );
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

/// `api_max_in_flight = 2`, `agent_max_in_flight = 1`, `busy_queue_ms = 100`:
/// a parked long poll leaves every place free; requests held open by a test
/// route take them (two of the API's, then the agents' one); every other
/// request of a full budget (but health) waits 100 ms for a place, then is
/// shed with 429 `SERVER_BUSY` and a `Retry-After`
/// of 1 s plus a random share of the spread — a long poll is refused at its
/// claim attempt — while the other budget still serves: a crowd of agents
/// never locks the admin out, nor the reverse. Once the held requests end,
/// everything passes again.
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
                // each permit lets exactly one held request end
                g.acquire().await.unwrap().forget();
                "released"
            }
        }),
    );
    let s = TestServer::start_with(
        b,
        Settings {
            api_max_in_flight: Some(2),
            agent_max_in_flight: Some(1),
            busy_queue_ms: Some(100),
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
    // `as_agent`: the held request carries an agent token (the route does
    // not check it), so it takes the agents' place
    let hold = |s: &TestServer, as_agent: Option<&str>| {
        let mut req = reqwest::Client::new().get(s.url("/api/v1/test/hold"));
        if let Some(t) = as_agent {
            req = req.bearer_auth(t);
        }
        tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
    };
    let (h1, h2) = (hold(&s, None), hold(&s, None));
    let both = tokio::time::timeout(Duration::from_secs(10), entered.acquire_many(2)).await;
    assert!(
        both.is_ok(),
        "the two held requests got in beside the parked poll"
    );

    // the API's budget is full: shed after waiting busy_queue_ms for a
    // place, with a spread-out Retry-After
    let mut waits = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let t = std::time::Instant::now();
        let r = s.get("/api/v1/agents", Some(&admin)).await;
        r.assert_error(429, "SERVER_BUSY");
        assert!(
            t.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t.elapsed()
        );
        let ra: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=6).contains(&ra), "Retry-After {ra}");
        waits.insert(ra);
    }
    assert!(waits.len() >= 3, "jittered: {waits:?}");
    // … while agents are served from their own budget
    let r = s
        .post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // the agents' budget is full too: agents are shed, a poll at its claim
    let h3 = hold(&s, Some(&agent));
    let third = tokio::time::timeout(Duration::from_secs(10), entered.acquire()).await;
    assert!(third.is_ok(), "the agent's held request got in");
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

    // the API's places come back; the agents' stays taken
    gate.add_permits(2);
    assert_eq!(h1.await.unwrap(), 200);
    assert_eq!(h2.await.unwrap(), 200);
    let r = s.get("/api/v1/agents", Some(&admin)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post("/api/v1/agents/heartbeat", Some(&agent), json!({}))
        .await;
    r.assert_error(429, "SERVER_BUSY");

    gate.add_permits(1);
    assert_eq!(h3.await.unwrap(), 200);
    heartbeat(&s, &agent, json!({})).await;
    let polled = parked.await.unwrap().unwrap();
    assert_eq!(
        polled.status().as_u16(),
        204,
        "the parked poll timed out normally"
    );
    s.stop().await;
}
