//! Recovery of the REAL `botmox-agent run` against the REAL control-server
//! (in-process, same data dir and database across restarts, same port) and
//! pve-sim: a server outage of more than a minute, and a kill after a
//! command finished but before its report reached the server. "Delivered
//! exactly once" is checked from the server's side: the command's stored
//! events (`GET /api/v1/vm-ops/events`) hold exactly one final event.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::runtime::{paired_agent, sim, wait_until, Agent, Server};

/// Asserts the history of a command that was claimed once and ended once
/// with `final_event`.
async fn assert_delivered_once(server: &Server, id: &str, final_event: &str) -> Value {
    let events = server.command_events(id).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("command.queued"), 1, "{kinds:?}");
    assert_eq!(count("command.dispatched"), 1, "claimed once: {kinds:?}");
    assert_eq!(count("command.requeued"), 0, "{kinds:?}");
    let finals = server.final_events(id).await;
    assert_eq!(finals.len(), 1, "exactly one final report: {kinds:?}");
    assert_eq!(finals[0].0, final_event, "{kinds:?}");
    assert_eq!(kinds.last(), Some(&final_event), "{kinds:?}");
    finals[0].1["data"]["command"].clone()
}

/// Holds a VM clone's task in pve-sim and dispatches `wait-task` on it;
/// returns the command id once the agent runs it.
async fn running_wait_task(
    server: &Server,
    sim: &pve_sim::PveSim,
    agent_id: &str,
    newid: u32,
) -> String {
    sim.hold_tasks(true);
    let cl = server
        .run_ok(agent_id, "clone", json!({"vmid": 9000, "newid": newid}))
        .await;
    let id = server
        .dispatch(
            agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(20))
        .await;
    id
}

/// The final report of `id` is durable in the outbox and the in-progress
/// record is gone (the command finished; only the delivery is pending).
async fn wait_finished_in_outbox(agent: &Agent, id: &str) {
    wait_until(
        "the final report in the outbox",
        Duration::from_secs(20),
        || {
            agent.outbox_files().iter().any(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(id) && t.contains("succeeded"))
            })
        },
    )
    .await;
    wait_until("no in-progress record", Duration::from_secs(10), || {
        !agent.inflight_records().iter().any(|t| t.contains(id))
    })
    .await;
}

/// Accepts and at once closes every connection on `addr` (where the server
/// listened), recording when each came: the agent's connection attempts
/// while the server is away.
struct AttemptCounter {
    at: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AttemptCounter {
    async fn bind(addr: &str) -> AttemptCounter {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot bind {addr}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let at = Arc::new(Mutex::new(Vec::new()));
        let rec = at.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                rec.lock().unwrap().push(Instant::now());
                drop(stream);
            }
        });
        AttemptCounter { at, task }
    }

    /// Stops accepting and frees the port.
    async fn close(self) -> Vec<Instant> {
        self.task.abort();
        let _ = self.task.await;
        let v = self.at.lock().unwrap().clone();
        v
    }
}

/// The server is stopped for over a minute (its port then answered by a
/// plain TCP listener that counts connection attempts), while a command's
/// result comes in: the agent backs off (few attempts, jittered delays
/// within the 1 s → cap bounds), `status --json` says `unreachable` the
/// whole time, the result waits in the durable outbox; after the restart
/// (same database, same port) the agent is online again, the result is
/// delivered exactly once (one final event, attempt 1), and a new command
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_for_a_minute_agent_backs_off_and_recovers() {
    const OUTAGE: Duration = Duration::from_secs(62);
    let sim = sim().await;
    // a lease longer than the outage (plus the delivery delay after it):
    // the result of the command must still be wanted when it arrives
    let mut server = Server::start_with("off", 600, |s| {
        s.heartbeat_interval_seconds = Some(10);
    })
    .await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let id = running_wait_task(&server, &sim, &agent_id, 160).await;

    let addr = server.settings.listen.clone().unwrap();
    server.stop().await;
    let down = Instant::now();
    let counter = AttemptCounter::bind(&addr).await;
    sim.hold_tasks(false); // the command finishes while the server is away
    wait_finished_in_outbox(&agent, &id).await;
    wait_until(
        "backoff in the agent's log",
        Duration::from_secs(40),
        || agent.stderr().contains("backing off"),
    )
    .await;
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "unreachable", "{st}");
    assert!(st["runtime"]["outbox_size"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["runtime"]["current_command"].is_null(), "{st}");
    assert!(st["runtime"]["last_error"]["code"].is_string(), "{st}");

    // the rest of the outage; the agent stays unreachable throughout
    while down.elapsed() < OUTAGE {
        tokio::time::sleep(Duration::from_secs(10).min(OUTAGE - down.elapsed())).await;
        let st = agent.status().await;
        assert_eq!(
            st["runtime"]["connection"],
            "unreachable",
            "at {:?}: {st}",
            down.elapsed()
        );
        assert!(
            agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the agent keeps running: {}",
            agent.stderr()
        );
    }
    let attempts = counter.close().await;
    let window = down.elapsed().as_secs_f64();

    // Backoff: bounded, not a tight loop. Per call the agent retries a few
    // times (heartbeat: 5 attempts within ~12 s; the final report: 1 s
    // doubling up to 60 s; output: 3), and the heartbeat loop waits between
    // rounds (1 s doubling, capped at the heartbeat interval, here 10 s), so
    // the rate stays well under one attempt per second (about 0.45/s here;
    // a missing backoff would make hundreds).
    let offsets: Vec<f64> = attempts
        .iter()
        .map(|t| t.duration_since(down).as_secs_f64())
        .collect();
    eprintln!(
        "{} connection attempts in {window:.0} s of outage at {:?}",
        attempts.len(),
        offsets
            .iter()
            .map(|o| (o * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    assert!(attempts.len() >= 3, "the agent kept trying: {offsets:?}");
    // The first seconds see the calls' own short budgets (the report and the
    // first failing heartbeat); after that only the loops' backoffs, one try
    // per step (measured: 27 attempts in 62 s, 9 of them after 20 s).
    assert!(
        (attempts.len() as f64) < 0.5 * window,
        "too many attempts ({}) in {window:.0} s: {offsets:?}",
        attempts.len()
    );
    let late = offsets.iter().filter(|o| **o >= 20.0).count() as f64;
    assert!(
        late <= 0.3 * (window - 20.0),
        "{late} attempts after the first 20 s: {offsets:?}"
    );
    let mut per_second = std::collections::BTreeMap::new();
    for o in &offsets {
        *per_second.entry(*o as u64).or_insert(0u32) += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= 5),
        "bursts: {per_second:?}"
    );
    // the loop's own delays (logged): within [1 s, cap] and jittered
    let delays: Vec<u64> = agent
        .log_lines()
        .iter()
        .filter(|l| l.to_string().contains("agent.heartbeat.retry"))
        .filter_map(|l| {
            l["fields"]["retry_in_ms"]
                .as_u64()
                .or_else(|| l["retry_in_ms"].as_u64())
        })
        .collect();
    eprintln!("heartbeat loop delays (ms): {delays:?}");
    assert!(delays.len() >= 3, "heartbeat retries logged: {delays:?}");
    assert!(
        delays.iter().all(|d| (1000..=10_000).contains(d)),
        "within [base, cap]: {delays:?}"
    );
    assert!(
        delays.iter().any(|d| *d >= 3200),
        "the delay grows: {delays:?}"
    );
    assert!(
        delays
            .iter()
            .any(|d| ![1000, 2000, 4000, 8000, 10_000].contains(d)),
        "no jitter in {delays:?}"
    );

    // back, on the same port with the same database
    server.boot().await;
    let back = Instant::now();
    server.wait_online(&agent_id, Duration::from_secs(30)).await;
    let online = back.elapsed();
    // The report is retried on its own schedule (up to 60 s apart), which
    // the agent's return does not shorten: allow for the longest gap.
    let c = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(100))
        .await;
    eprintln!(
        "after the restart: online in {:.1} s, the outbox report arrived in {:.1} s",
        online.as_secs_f64(),
        back.elapsed().as_secs_f64()
    );
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["attempt"], 1, "{c}");
    assert_eq!(c["result"]["exitstatus"], "OK", "{c}");
    let fin = assert_delivered_once(&server, &id, "command.succeeded").await;
    assert_eq!(fin["attempt"], 1, "{fin}");
    server.wait_online(&agent_id, Duration::from_secs(30)).await;
    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2");
    let vms = server.run_ok(&agent_id, "list-vms", json!({})).await;
    assert!(vms.as_array().unwrap().iter().any(|v| v["vmid"] == 160));
    wait_until("an empty outbox", Duration::from_secs(10), || {
        agent.outbox_files().is_empty()
    })
    .await;
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "online", "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 0, "{st}");
    // still exactly one final event after everything settled
    assert_delivered_once(&server, &id, "command.succeeded").await;

    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    sim.assert_no_violations();
    server.stop().await;
}

/// SIGKILL after the command finished but before its report reached the
/// server (the server is stopped meanwhile): the result is in the outbox,
/// not in progress. After the restart of both, the stored result is
/// delivered exactly once — succeeded, attempt 1, not AGENT_RESTARTED, one
/// final event, one delivery in the agent's log — and a new command runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_finish_before_report_delivers_once_after_restart() {
    let sim = sim().await;
    let mut server = Server::start("off", 60).await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let id = running_wait_task(&server, &sim, &agent_id, 170).await;

    server.stop().await;
    sim.hold_tasks(false);
    wait_finished_in_outbox(&agent, &id).await;
    assert!(agent.log_events("agent.report.delivered", &id).is_empty());
    agent.kill9();
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 1, "{st}");
    assert!(st["runtime"]["in_progress"].is_null(), "finished: {st}");
    let c = server_command_after_boot(&mut server, &id).await;
    assert_eq!(c["status"], "running", "not reported yet: {c}");

    agent.spawn_run();
    let c = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(30))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["attempt"], 1, "{c}");
    assert!(c["error_code"].is_null(), "not AGENT_RESTARTED: {c}");
    assert_eq!(c["result"]["exitstatus"], "OK", "{c}");
    let fin = assert_delivered_once(&server, &id, "command.succeeded").await;
    assert_eq!(fin["attempt"], 1, "{fin}");
    wait_until("an empty outbox", Duration::from_secs(10), || {
        agent.outbox_files().is_empty()
    })
    .await;

    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2");
    let again = server.command(&id).await;
    assert_eq!(again["finished_at"], c["finished_at"]);
    assert_delivered_once(&server, &id, "command.succeeded").await;

    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    // the agent's side: delivered once, from the outbox, by the second run
    let delivered = agent.log_events("agent.report.delivered", &id);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    sim.assert_no_violations();
    server.stop().await;
}

/// A final report that is pending when the server comes back goes out soon
/// after the agent is online again (within 5 s), not at the next step of a
/// long in-call retry: `http::budgets::report()` is short and the loop's
/// outbox flush is woken by the heartbeat's `server_back` notification. (A
/// long in-call budget once held such a report for up to a minute, which a
/// 120 s lease cannot afford after a one-minute outage.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_report_goes_out_soon_after_the_server_is_back() {
    let sim = sim().await;
    let mut server = Server::start_with("off", 600, |s| {
        s.heartbeat_interval_seconds = Some(2);
    })
    .await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let id = running_wait_task(&server, &sim, &agent_id, 180).await;

    server.stop().await;
    sim.hold_tasks(false);
    wait_finished_in_outbox(&agent, &id).await;
    // long enough for every in-call retry to be spent and the loop's own
    // backoff to have grown
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_secs(38).saturating_sub(finished.elapsed())).await;
    server.boot().await;
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    eprintln!(
        "online again {:.1} s after the command finished",
        finished.elapsed().as_secs_f64()
    );
    let c = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(5))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    server.stop().await;
}

/// Boots the server again (same port, same database) and reads a command.
async fn server_command_after_boot(server: &mut Server, id: &str) -> Value {
    server.boot().await;
    server.command(id).await
}
