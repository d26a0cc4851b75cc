//! What VM creation jobs need of the simulator (issue #17): task durations
//! per type, linked and full clones, per-VM config file locks held by
//! running tasks (with PVE's lock timeout), `/cluster/nextid`, storage
//! content listing and deletion, and lock timeouts on a fraction of
//! requests.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::common::{start_sim, Api};

#[tokio::test]
async fn task_durations_are_per_type() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(900));
    sim.set_task_duration(Some("qmstart"), Duration::from_millis(50));
    let t = Instant::now();
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "120"), ("full", "1")],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let upid = api
        .ok(Method::POST, "/nodes/pve/qemu/120/status/start", &[])
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    sim.assert_no_violations();
}

#[tokio::test]
async fn linked_and_full_clones_and_nextid() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let (_, next) = api.get("/cluster/nextid").await;
    assert_eq!(next["data"], "100");
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "100"), ("full", "0"), ("name", "linked")],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[
                ("newid", "101"),
                ("full", "1"),
                ("storage", "local-lvm"),
                ("name", "full"),
            ],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    let linked = sim.vm(100).unwrap().config["scsi0"].clone();
    let full = sim.vm(101).unwrap().config["scsi0"].clone();
    assert!(
        linked.starts_with("local-lvm:base-9000-disk-0/vm-100-disk-"),
        "{linked}"
    );
    assert!(full.starts_with("local-lvm:vm-101-disk-"), "{full}");
    // nextid skips the VMs in use; asking for a used id is refused
    let (_, next) = api.get("/cluster/nextid").await;
    assert_eq!(next["data"], "102");
    let (st, body) = api.get("/cluster/nextid?vmid=101").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    sim.assert_no_violations();
}

#[tokio::test]
async fn a_running_task_holds_its_vms_config_lock() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "130"), ("full", "1")],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    sim.set_lock_timeout(Duration::from_millis(300));
    sim.set_task_duration(Some("qmstart"), Duration::from_millis(1_500));
    let start = api
        .ok(Method::POST, "/nodes/pve/qemu/130/status/start", &[])
        .await;
    // while qmstart runs, a config change waits for the lock, then times out
    let t = Instant::now();
    let (st, body) = api
        .put("/nodes/pve/qemu/130/config", &[("cores", "4")])
        .await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(
        body["message"],
        "can't lock file '/var/lock/qemu-server/lock-130.conf' - got timeout\n"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // other VMs are not affected; clones of the template share its lock
    sim.set_task_duration(Some("qmclone"), Duration::from_millis(1_500));
    let c1 = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "131"), ("full", "1")],
        )
        .await;
    let c2 = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "132"), ("full", "1")],
        )
        .await;
    // but the template's config waits for both clones
    let (st, _) = api
        .put("/nodes/pve/qemu/9000/config", &[("cores", "4")])
        .await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
    for u in [&start, &c1, &c2] {
        api.wait_task(u.as_str().unwrap()).await;
    }
    // with a lock timeout longer than the task, the change waits and succeeds
    sim.set_lock_timeout(Duration::from_secs(5));
    sim.set_task_duration(Some("qmstop"), Duration::from_millis(800));
    let stop = api
        .ok(Method::POST, "/nodes/pve/qemu/130/status/stop", &[])
        .await;
    let t = Instant::now();
    api.ok(Method::PUT, "/nodes/pve/qemu/130/config", &[("cores", "4")])
        .await;
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "waited for qmstop: {:?}",
        t.elapsed()
    );
    api.wait_task(stop.as_str().unwrap()).await;
    assert_eq!(sim.vm(130).unwrap().config["cores"], "4");
    sim.assert_no_violations();
}

#[tokio::test]
async fn a_fraction_of_requests_hits_lock_timeouts() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    sim.faults().lock_timeout_every(5, 2, Some("/clone"));
    let mut refused = Vec::new();
    for i in 0..12u32 {
        let newid = (200 + i).to_string();
        let (st, body) = api
            .post(
                "/nodes/pve/qemu/9000/clone",
                &[("newid", newid.as_str()), ("full", "1")],
            )
            .await;
        if st != StatusCode::OK {
            assert!(
                body["message"].as_str().unwrap().contains("got timeout"),
                "{body}"
            );
            refused.push(i);
        }
    }
    assert_eq!(refused, [4, 9], "every 5th clone request, twice");
    sim.assert_no_violations();
}

#[tokio::test]
async fn storage_content_is_listed_and_deleted() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    std::fs::write(sim.data_dir().join("local/iso/provision-1.iso"), b"iso").unwrap();
    let (_, list) = api
        .get("/nodes/pve/storage/local/content?content=iso")
        .await;
    let vols: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volid"].as_str().unwrap())
        .collect();
    assert_eq!(vols, ["local:iso/provision-1.iso"]);
    let upid = api
        .ok(
            Method::DELETE,
            "/nodes/pve/storage/local/content/local%3Aiso%2Fprovision-1.iso",
            &[],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    assert!(sim.volumes("local").is_empty());
    sim.assert_no_violations();
}
