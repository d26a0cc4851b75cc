//! The provisioning round trip with real parts only: the REAL control-server
//! mints a VM's NoCloud seed (generate-iso-payload), the REAL `botmox-agent`
//! uploads it to pve-sim and attaches it, the "guest"
//! reports through the public endpoints (no credentials but its token), and
//! on `completed` the server dispatches `proxmox.detach-cdrom {deleteIso}`
//! to that agent, which removes the ISO from the simulator's storage. The
//! outcome is read back through the progress API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::run_tool;
use crate::runtime::{paired_agent, sim, wait_until, Server};

const VM_UUID: &str = "4c4c4544-0042-3510-8052-b4c04f4e3232";

/// The guest's side: public endpoints, no bearer token.
async fn guest_report(server: &Server, token: &str, step: &str, status: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = http
        .post(format!(
            "{}/api/v1/provisioning/report-progress",
            server.url
        ))
        .json(&json!({"token": token, "vm_uuid": VM_UUID, "step": step, "status": status}))
        .send()
        .await
        .expect("report-progress");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn progress(server: &Server) -> Value {
    let (st, b) = server
        .call(
            "GET",
            &format!("/api/v1/provisioning/progress/{VM_UUID}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{b}");
    b["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_guest_gets_its_iso_detached_and_deleted_from_pve_storage() {
    let sim = sim().await;
    let mut server = Server::start("self-signed", 120).await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    let cl = server
        .run_ok(&agent_id, "clone", json!({"vmid": 9000, "newid": 130}))
        .await;
    server
        .run_ok(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;

    // provisioning needs an active tenant license (inventory §8 item 10)
    let (st, b) = server
        .call(
            "POST",
            "/api/v1/tenant-licenses",
            Some(json!({"type": "perpetual"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");

    // the server mints the seed for this VM and this agent
    let (st, g) = server
        .call(
            "POST",
            "/api/v1/provisioning/generate-iso-payload",
            Some(
                json!({"vm_uuid": VM_UUID, "os": "linux", "vm_name": "farm-130",
                        "agent_id": agent_id, "vmid": 130, "node": sim.node(),
                        "iso_name": "seed-130.iso"}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{g}");
    let seed = &g["data"];
    let token = seed["token"].as_str().unwrap().to_string();
    assert_eq!(seed["iso_name"], "seed-130.iso", "{seed}");

    // a Linux guest's seed is a NoCloud ISO the server built (label
    // `cidata`); the agent uploads exactly those bytes and attaches them
    assert_eq!(seed["command_type"], "proxmox.upload-iso", "{seed}");
    let iso = server
        .run_ok(
            &agent_id,
            "upload-iso",
            json!({"isoName": seed["iso_name"], "data": seed["seed_iso"]}),
        )
        .await;
    let volid = iso["isoPath"].as_str().unwrap().to_string();
    assert_eq!(volid, "local:iso/seed-130.iso", "{iso}");
    let file = sim.data_dir().join("local/iso/seed-130.iso");
    let listing = run_tool("isoinfo", &["-f", "-R", "-i", file.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for name in ["/user-data", "/meta-data"] {
        assert!(listing.lines().any(|l| l == name), "{name} in {listing}");
    }
    let pvd = run_tool("isoinfo", &["-d", "-i", file.to_str().unwrap()]);
    let pvd = String::from_utf8_lossy(&pvd.stdout).to_string();
    assert!(pvd.contains("Volume id: cidata"), "NoCloud label: {pvd}");
    server
        .run_ok(
            &agent_id,
            "attach-cdrom",
            json!({"vmid": 130, "isoPath": volid}),
        )
        .await;
    assert!(sim.volumes("local").iter().any(|v| v.volid == volid));

    // the guest reports; nothing is detached before `completed`
    let (st, b) = guest_report(&server, &token, "cloud_init_done", "completed").await;
    assert_eq!(st, 200, "{b}");
    assert!(progress(&server).await["detach"].is_null());
    let (st, b) = guest_report(&server, &token, "completed", "completed").await;
    assert_eq!(st, 200, "{b}");

    // the server dispatches the detach to the agent that attached the ISO,
    // which runs it against pve-sim
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        last = progress(&server).await;
        if last["detach"]["command_status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(last["detach"]["command_status"], "succeeded", "{last}");
    assert!(last["detach"]["dispatch_error"].is_null(), "{last}");
    let cmd = server
        .command(last["detach"]["command_id"].as_str().unwrap())
        .await;
    assert_eq!(cmd["command_type"], "proxmox.detach-cdrom", "{cmd}");
    assert_eq!(cmd["agent_id"], agent_id.as_str(), "{cmd}");
    assert_eq!(cmd["result"]["deletedIso"], volid.as_str(), "{cmd}");
    wait_until("the ISO is gone", Duration::from_secs(5), || {
        !sim.volumes("local").iter().any(|v| v.volid == volid)
    })
    .await;
    assert!(!file.exists(), "the ISO file is deleted from the storage");
    assert_eq!(
        sim.vm(130).unwrap().config.get("ide2").map(String::as_str),
        Some("none,media=cdrom")
    );
    // the progress shows the finished state
    assert_eq!(last["state"], "completed", "{last}");
    sim.assert_no_violations();
}
