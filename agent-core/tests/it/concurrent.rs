//! Concurrent commands (`run --max-concurrent-commands N`) end to end: the
//! REAL control-server in-process, the REAL `botmox-agent` binary and
//! pve-sim. Long commands are `wait-task` on tasks pve-sim holds
//! (`hold_tasks`), so "running at the same time" is a state both commands
//! are seen in, and the order of the server's recorded timestamps proves the
//! overlap — no timing threshold is asserted.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pve_sim::PveSim;
use serde_json::{json, Value};

use crate::runtime::{paired_agent, sim, wait_until, Agent, Server};

fn ts(c: &Value, field: &str) -> DateTime<Utc> {
    c[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing: {c}"))
        .parse()
        .unwrap_or_else(|e| panic!("{field} of {c}: {e}"))
}

/// Clones `n` VMs from the template while pve-sim holds tasks: each clone
/// command returns its task's UPID at once, the tasks stay `running`.
async fn held_clone_upids(server: &Server, agent_id: &str, first_vmid: u64, n: u64) -> Vec<Value> {
    let mut upids = Vec::new();
    for vmid in first_vmid..first_vmid + n {
        let cl = server
            .run_ok(agent_id, "clone", json!({"vmid": 9000, "newid": vmid}))
            .await;
        upids.push(cl["upid"].clone());
    }
    upids
}

/// A `wait-task` that runs as long as pve-sim holds its task.
async fn dispatch_wait(server: &Server, agent_id: &str, upid: &Value) -> String {
    server
        .dispatch(
            agent_id,
            "wait-task",
            json!({"upid": upid, "intervalMs": 200, "timeoutMs": 600_000}),
        )
        .await
}

/// The ids in the runtime's `running_commands` (`status --json`).
async fn running_ids(agent: &Agent) -> Vec<String> {
    let st = agent.status().await;
    st["runtime"]["running_commands"]
        .as_array()
        .unwrap_or_else(|| panic!("running_commands missing: {st}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

async fn start(sim: &PveSim, lease_s: u64) -> (Server, Agent, String) {
    let mut server = Server::start("off", lease_s).await;
    server.login().await;
    let (agent, agent_id, _) = paired_agent(&server, sim).await;
    (server, agent, agent_id)
}

/// Two long commands run at the same time: both are `running` on the
/// server and in the agent's status (and heartbeat metadata) together,
/// and each started before the other finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_long_commands_run_at_the_same_time() {
    let sim = sim().await;
    let (mut server, mut agent, agent_id) = start(&sim, 30).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let upids = held_clone_upids(&server, &agent_id, 150, 2).await;
    let a = dispatch_wait(&server, &agent_id, &upids[0]).await;
    let b = dispatch_wait(&server, &agent_id, &upids[1]).await;
    // Both running while their tasks are held: one agent, two commands.
    server
        .wait_status(&a, &["running"], Duration::from_secs(20))
        .await;
    server
        .wait_status(&b, &["running"], Duration::from_secs(20))
        .await;
    assert_eq!(server.command(&a).await["status"], "running");

    // The agent shows both (oldest first), `current_command` is the oldest.
    let mut ids = running_ids(&agent).await;
    for _ in 0..50 {
        if ids.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ids = running_ids(&agent).await;
    }
    assert_eq!(ids, vec![a.clone(), b.clone()]);
    let st = agent.status().await;
    assert_eq!(st["runtime"]["current_command"]["id"], a.as_str(), "{st}");
    assert_eq!(
        st["runtime"]["in_flight"].as_array().unwrap().len(),
        2,
        "{st}"
    );
    // ... and so does its heartbeat metadata (every 2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (s, body) = server
            .call("GET", &format!("/api/v1/agents/{agent_id}"), None)
            .await;
        assert_eq!(s, 200, "{body}");
        let meta = &body["data"]["metadata"];
        if meta["running_commands"] == json!([a, b]) {
            assert_eq!(meta["running_command"], a.as_str(), "{meta}");
            assert_eq!(meta["max_concurrent_commands"], 4, "{meta}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "heartbeat metadata without both commands: {meta}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    sim.hold_tasks(false);
    let ca = server
        .wait_status(&a, &["succeeded", "failed"], Duration::from_secs(30))
        .await;
    let cb = server
        .wait_status(&b, &["succeeded", "failed"], Duration::from_secs(30))
        .await;
    assert_eq!(ca["status"], "succeeded", "{ca}");
    assert_eq!(cb["status"], "succeeded", "{cb}");
    assert_eq!(ca["attempt"], 1, "{ca}");
    assert_eq!(cb["attempt"], 1, "{cb}");
    // overlap: each started before the other finished
    assert!(ts(&ca, "started_at") < ts(&cb, "finished_at"), "{ca} {cb}");
    assert!(ts(&cb, "started_at") < ts(&ca, "finished_at"), "{ca} {cb}");
    wait_until("no running command", Duration::from_secs(10), || {
        agent.inflight_records().is_empty()
    })
    .await;
    assert!(running_ids(&agent).await.is_empty());
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    sim.assert_no_violations();
    server.stop().await;
}

/// `--max-concurrent-commands 2` and three long commands: the third is
/// not claimed while two run; it is claimed only after one of them ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_is_respected() {
    let sim = sim().await;
    let (mut server, mut agent, agent_id) = start(&sim, 30).await;
    agent.spawn_run_with(&[
        "--shutdown-grace-secs",
        "2",
        "--max-concurrent-commands",
        "2",
    ]);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let upids = held_clone_upids(&server, &agent_id, 160, 3).await;
    let a = dispatch_wait(&server, &agent_id, &upids[0]).await;
    let b = dispatch_wait(&server, &agent_id, &upids[1]).await;
    server
        .wait_status(&a, &["running"], Duration::from_secs(20))
        .await;
    server
        .wait_status(&b, &["running"], Duration::from_secs(20))
        .await;
    let c = dispatch_wait(&server, &agent_id, &upids[2]).await;
    // An agent without the limit claims `c` within milliseconds of the
    // dispatch (a waiting poll is woken at once); give it ample chances.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cc = server.command(&c).await;
        assert_eq!(cc["status"], "queued", "a third command was claimed: {cc}");
        assert!(cc["dispatched_at"].is_null(), "{cc}");
        let ids = running_ids(&agent).await;
        assert!(ids.len() <= 2, "more than 2 running: {ids:?}");
    }
    assert_eq!(agent.inflight_records().len(), 2);

    sim.hold_tasks(false);
    let done: Vec<Value> = {
        let mut v = Vec::new();
        for id in [&a, &b, &c] {
            v.push(
                server
                    .wait_status(id, &["succeeded", "failed"], Duration::from_secs(30))
                    .await,
            );
        }
        v
    };
    for d in &done {
        assert_eq!(d["status"], "succeeded", "{d}");
        assert_eq!(d["attempt"], 1, "{d}");
    }
    // `c` was claimed only after `a` or `b` had ended (its slot)
    let first_end = ts(&done[0], "finished_at").min(ts(&done[1], "finished_at"));
    assert!(
        ts(&done[2], "dispatched_at") >= first_end,
        "c claimed before a slot was free: {done:?}"
    );
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    sim.assert_no_violations();
    server.stop().await;
}

/// SIGKILL with two commands in flight: both in-progress records are on
/// disk, and after the restart BOTH are reported `failed`/`AGENT_RESTARTED`
/// at attempt 1, neither is run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_two_in_flight_reports_both_once() {
    let sim = sim().await;
    let (mut server, mut agent, agent_id) = start(&sim, 30).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let upids = held_clone_upids(&server, &agent_id, 170, 2).await;
    let ids = [
        dispatch_wait(&server, &agent_id, &upids[0]).await,
        dispatch_wait(&server, &agent_id, &upids[1]).await,
    ];
    for id in &ids {
        server
            .wait_status(id, &["running"], Duration::from_secs(20))
            .await;
    }
    wait_until("two in-progress records", Duration::from_secs(10), || {
        let files = agent.inflight_records();
        ids.iter()
            .all(|id| files.iter().any(|f| f.contains(id.as_str())))
    })
    .await;
    agent.kill9();
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");
    let recorded: Vec<&str> = st["runtime"]["in_flight"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["command_id"].as_str().unwrap())
        .collect();
    assert_eq!(recorded.len(), 2, "{st}");
    for id in &ids {
        assert!(recorded.contains(&id.as_str()), "{st}");
    }

    agent.spawn_run();
    for id in &ids {
        let c = server
            .wait_status(
                id,
                &["succeeded", "failed", "cancelled"],
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(c["status"], "failed", "{c}");
        assert_eq!(c["error_code"], "AGENT_RESTARTED", "{c}");
        assert_eq!(c["attempt"], 1, "claimed once: {c}");
    }
    assert!(agent.inflight_records().is_empty());

    // Released tasks do not bring either back; a new command runs.
    sim.hold_tasks(false);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    server.run_ok(&agent_id, "status", json!({})).await;
    wait_until("an empty outbox", Duration::from_secs(10), || {
        agent.outbox_files().is_empty()
    })
    .await;
    for id in &ids {
        let events = server.command_events(id).await;
        let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
        let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count("command.dispatched"), 1, "{id}: {kinds:?}");
        assert_eq!(count("command.requeued"), 0, "{id}: {kinds:?}");
        let finals = server.final_events(id).await;
        assert_eq!(finals.len(), 1, "{id}: one final report: {kinds:?}");
        assert_eq!(finals[0].0, "command.failed", "{kinds:?}");
        let (s, out) = server
            .call("GET", &format!("/api/v1/vm-ops/commands/{id}/output"), None)
            .await;
        assert_eq!(s, 200, "{out}");
        let started = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| {
                c["data"]
                    .as_str()
                    .unwrap_or("")
                    .contains("started (attempt")
            })
            .count();
        assert_eq!(started, 1, "{id}: the executor ran once: {out}");
    }
    let st = agent.status().await;
    let recent: Vec<(&str, &str)> = st["runtime"]["recent_commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap(),
                c["error_code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for id in &ids {
        assert!(
            recent.contains(&(id.as_str(), "AGENT_RESTARTED")),
            "{recent:?}"
        );
    }
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    sim.assert_no_violations();
    server.stop().await;
}

/// SIGTERM with two commands running: the agent claims nothing more and
/// waits for both; released within the grace period they both succeed and
/// only then does it exit 0. Then, with a grace period that runs out, both
/// are cancelled and reported `failed`/`AGENT_SHUTDOWN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_waits_for_every_running_command() {
    let sim = sim().await;
    let (mut server, mut agent, agent_id) = start(&sim, 30).await;
    agent.spawn_run_with(&["--shutdown-grace-secs", "120"]);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let upids = held_clone_upids(&server, &agent_id, 180, 2).await;
    let a = dispatch_wait(&server, &agent_id, &upids[0]).await;
    let b = dispatch_wait(&server, &agent_id, &upids[1]).await;
    for id in [&a, &b] {
        server
            .wait_status(id, &["running"], Duration::from_secs(20))
            .await;
    }
    agent.sigterm();
    wait_until(
        "the agent waits for its commands",
        Duration::from_secs(15),
        || {
            !agent
                .log_events("", "stopping: waiting for the running commands")
                .is_empty()
        },
    )
    .await;
    // Stopping: nothing new is claimed, the two keep running, the process
    // stays (the tasks are held; the grace is 120 s).
    let c = server.dispatch(&agent_id, "status", json!({})).await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "the agent exited with commands running: {}",
            agent.stderr()
        );
        assert_eq!(server.command(&a).await["status"], "running");
        assert_eq!(server.command(&b).await["status"], "running");
        assert_eq!(server.command(&c).await["status"], "queued");
    }
    sim.hold_tasks(false);
    assert_eq!(agent.wait_exit(Duration::from_secs(60)).await, 0);
    for id in [&a, &b] {
        let cmd = server.command(id).await;
        assert_eq!(cmd["status"], "succeeded", "{cmd}");
    }
    assert_eq!(server.command(&c).await["status"], "queued");
    assert!(agent.inflight_records().is_empty());
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 0, "{st}");
    assert!(st["runtime"]["running_commands"]
        .as_array()
        .unwrap()
        .is_empty());

    // Grace of 1 s: both held commands are cancelled, AGENT_SHUTDOWN.
    let (s, body) = server
        .call("POST", &format!("/api/v1/vm-ops/commands/{c}/cancel"), None)
        .await;
    assert_eq!(s, 200, "{body}");
    agent.spawn_run_with(&["--shutdown-grace-secs", "1"]);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    sim.hold_tasks(true);
    let upids = held_clone_upids(&server, &agent_id, 190, 2).await;
    let d = dispatch_wait(&server, &agent_id, &upids[0]).await;
    let e = dispatch_wait(&server, &agent_id, &upids[1]).await;
    for id in [&d, &e] {
        server
            .wait_status(id, &["running"], Duration::from_secs(20))
            .await;
    }
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).await, 0);
    for id in [&d, &e] {
        let cmd = server
            .wait_status(id, &["failed", "succeeded"], Duration::from_secs(10))
            .await;
        assert_eq!(cmd["status"], "failed", "{cmd}");
        assert_eq!(cmd["error_code"], "AGENT_SHUTDOWN", "{cmd}");
    }
    sim.hold_tasks(false);
    assert!(agent.inflight_records().is_empty());
    sim.assert_no_violations();
    server.stop().await;
}
