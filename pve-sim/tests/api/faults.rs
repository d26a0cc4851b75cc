use std::time::{Duration, Instant};

use pve_sim::TaskOutcome;
use reqwest::{Method, StatusCode};

use crate::common::{start_sim, Api};

#[tokio::test]
async fn latency_and_error_statuses() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.faults().set_latency(Duration::from_millis(250));
    let t = Instant::now();
    assert_eq!(api.get("/version").await.0, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(250));
    sim.faults().set_latency(Duration::ZERO);

    sim.faults().fail_next(2, 503, Some("/version"));
    assert_eq!(api.get("/nodes").await.0, StatusCode::OK);
    assert_eq!(api.get("/version").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.get("/version").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.get("/version").await.0, StatusCode::OK);

    sim.faults().fail_next(1, 500, None);
    let (status, body) = api.get("/nodes").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["data"], serde_json::Value::Null);
    sim.assert_no_violations();
}

#[tokio::test]
async fn lock_timeout_like_pve() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.faults().lock_timeout_next(1, Some("/qemu/9000/config"));
    let (status, body) = api
        .put("/nodes/pve/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body["message"],
        "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout\n"
    );
    assert_eq!(sim.vm(9000).unwrap().config["cores"], "2");
    // The retry goes through.
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("cores", "4")],
    )
    .await;
    assert_eq!(sim.vm(9000).unwrap().config["cores"], "4");
}

#[tokio::test]
async fn dropped_connection_gets_no_response() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.faults().drop_next(1, Some("/nodes/pve/qemu"));
    let err = api
        .request(Method::GET, "/nodes/pve/qemu")
        .send()
        .await
        .expect_err("connection must be dropped");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert!(err.status().is_none());
    // A new connection works again.
    let fresh = Api::token(&sim);
    let list = fresh.ok(Method::GET, "/nodes/pve/qemu", &[]).await;
    assert_eq!(list[0]["vmid"], 9000);
}

#[tokio::test]
async fn forced_task_outcomes() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.faults()
        .force_task_outcome(1, Some("qmclone"), TaskOutcome::Warnings(2));
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "140")],
        )
        .await;
    let task = api.wait_task(upid.as_str().unwrap()).await;
    assert_eq!(task["exitstatus"], "WARNINGS: 2");
    assert!(sim.vm(140).unwrap().lock().is_none());
    let t = sim.task(upid.as_str().unwrap()).unwrap();
    assert_eq!(t.log.iter().filter(|l| l.starts_with("WARN:")).count(), 2);

    sim.faults().force_task_outcome(
        1,
        None,
        TaskOutcome::Error("clone failed: storage exploded".into()),
    );
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "141")],
        )
        .await;
    assert!(sim.vm(141).is_some());
    let task = api.wait_task(upid.as_str().unwrap()).await;
    assert_eq!(task["exitstatus"], "clone failed: storage exploded");
    // A failed clone is rolled back.
    assert!(sim.vm(141).is_none());
    assert!(sim.volumes("local-lvm").iter().all(|v| v.vmid != Some(141)));
    sim.assert_no_violations();
}
