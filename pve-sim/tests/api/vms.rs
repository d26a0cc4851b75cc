use reqwest::{Method, StatusCode};

use crate::common::{assert_upid, start_sim, Api};
use pve_sim::VmStatus;

#[tokio::test]
async fn clone_locks_until_task_ends_then_config_is_complete() {
    let sim = start_sim().await;
    let api = Api::login(&sim).await;

    let next = api.ok(Method::GET, "/cluster/nextid", &[]).await;
    assert_eq!(next, "100");
    let data = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[
                ("newid", "100"),
                ("name", "bot-1"),
                ("full", "1"),
                ("storage", "local-lvm"),
            ],
        )
        .await;
    let upid = assert_upid(&data, "qmclone", "9000");
    assert!(upid.ends_with(":root@pam:"));

    // While the task runs: locked, task running.
    let config = api.ok(Method::GET, "/nodes/pve/qemu/100/config", &[]).await;
    assert_eq!(config["lock"], "clone");
    let (_, st) = api
        .get(&format!(
            "/nodes/pve/tasks/{}/status",
            crate::common::encode(&upid)
        ))
        .await;
    assert_eq!(st["data"]["status"], "running");
    assert!(st["data"].get("exitstatus").is_none());
    // Starting a locked VM is refused.
    let (status, body) = api.post("/nodes/pve/qemu/100/status/start", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "VM is locked (clone)\n");

    let done = api.wait_task(&upid).await;
    assert_eq!(done["exitstatus"], "OK");
    assert_eq!(done["type"], "qmclone");

    let config = api.ok(Method::GET, "/nodes/pve/qemu/100/config", &[]).await;
    assert!(config.get("lock").is_none(), "{config}");
    assert_eq!(config["name"], "bot-1");
    assert!(config.get("template").is_none());
    assert!(config["scsi0"]
        .as_str()
        .unwrap()
        .starts_with("local-lvm:vm-100-disk-0,"));
    let template = sim.vm(9000).unwrap();
    assert_ne!(config["net0"], template.config["net0"]);
    assert!(config["net0"].as_str().unwrap().contains("bridge=vmbr0"));

    let disks = api
        .ok(
            Method::GET,
            "/nodes/pve/storage/local-lvm/content",
            &[("vmid", "100")],
        )
        .await;
    assert_eq!(disks[0]["volid"], "local-lvm:vm-100-disk-0");
    assert_eq!(disks[0]["size"], 64u64 << 30);
    let resources = api
        .ok(Method::GET, "/cluster/resources", &[("type", "vm")])
        .await;
    assert!(resources
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == "qemu/100"));

    // Linked clone of the template.
    let data = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "101"), ("full", "0")],
        )
        .await;
    let upid = assert_upid(&data, "qmclone", "9000");
    api.wait_task(&upid).await;
    let vm = sim.vm(101).unwrap();
    assert!(vm.config["scsi0"].starts_with("local-lvm:base-9000-disk-0/vm-101-disk-0,"));
    assert_eq!(vm.config["name"], "Copy-of-VM-win11-template");

    // Cloning onto an existing VMID fails with PVE's wording.
    let (status, body) = api
        .post("/nodes/pve/qemu/9000/clone", &[("newid", "100")])
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body["message"],
        "unable to create VM 100: config file already exists\n"
    );
    let (status, body) = api.get("/cluster/nextid?vmid=100").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["vmid"], "VM 100 already exists");
    sim.clear_violations();
}

#[tokio::test]
async fn config_update_with_delete_and_digest() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let config = api
        .ok(Method::GET, "/nodes/pve/qemu/9000/config", &[])
        .await;
    let digest = config["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 40);

    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[
                ("memory", "8192"),
                ("digest", "0000000000000000000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("detected modified configuration"));

    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[
            ("memory", "8192"),
            ("delete", "ide2,agent"),
            ("digest", &digest),
        ],
    )
    .await;
    let vm = sim.vm(9000).unwrap();
    assert_eq!(vm.config["memory"], "8192");
    assert!(!vm.config.contains_key("ide2"));
    assert!(!vm.config.contains_key("agent"));

    // Deleting a disk keeps the volume as unused0 (unless force).
    api.ok(
        Method::PUT,
        "/nodes/pve/qemu/9000/config",
        &[("delete", "scsi0")],
    )
    .await;
    assert_eq!(
        sim.vm(9000).unwrap().config["unused0"],
        "local-lvm:base-9000-disk-0"
    );

    // Attaching an ISO that does not exist is refused.
    let (status, body) = api
        .put(
            "/nodes/pve/qemu/9000/config",
            &[("ide2", "local:iso/missing.iso,media=cdrom")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"]["ide2"],
        "volume 'local:iso/missing.iso' does not exist"
    );

    // Asynchronous POST: applied when its task ends.
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/config",
            &[("cores", "6")],
        )
        .await;
    let upid = assert_upid(&upid, "qmconfig", "9000");
    api.wait_task(&upid).await;
    assert_eq!(sim.vm(9000).unwrap().config["cores"], "6");
    sim.assert_no_violations();
}

#[tokio::test]
async fn power_actions_change_status_when_tasks_end() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let clone = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "120"), ("full", "1")],
        )
        .await;
    api.wait_task(clone.as_str().unwrap()).await;

    // Templates cannot be started.
    let (status, body) = api.post("/nodes/pve/qemu/9000/status/start", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "you can't start a vm if it's a template\n");

    let upid = api
        .ok(Method::POST, "/nodes/pve/qemu/120/status/start", &[])
        .await;
    let upid = assert_upid(&upid, "qmstart", "120");
    assert!(upid.ends_with(":root@pam!botmox:"), "{upid}");
    assert_eq!(sim.vm(120).unwrap().status, VmStatus::Stopped);
    let task = api.wait_task(&upid).await;
    assert_eq!(task["exitstatus"], "OK");
    assert_eq!(task["tokenid"], "botmox");
    let cur = api
        .ok(Method::GET, "/nodes/pve/qemu/120/status/current", &[])
        .await;
    assert_eq!(cur["status"], "running");
    assert_eq!(cur["qmpstatus"], "running");
    assert!(cur["pid"].as_u64().is_some());

    let again = api
        .ok(Method::POST, "/nodes/pve/qemu/120/status/start", &[])
        .await;
    let t = api.wait_task(again.as_str().unwrap()).await;
    assert_eq!(t["exitstatus"], "VM 120 already running");

    for (action, qmp) in [
        ("suspend", "paused"),
        ("resume", "running"),
        ("reset", "running"),
        ("reboot", "running"),
    ] {
        let upid = api
            .ok(
                Method::POST,
                &format!("/nodes/pve/qemu/120/status/{action}"),
                &[],
            )
            .await;
        let t = api.wait_task(upid.as_str().unwrap()).await;
        assert_eq!(t["exitstatus"], "OK", "{action}");
        let cur = api
            .ok(Method::GET, "/nodes/pve/qemu/120/status/current", &[])
            .await;
        assert_eq!(cur["qmpstatus"], qmp, "{action}");
    }

    // A running VM cannot be destroyed.
    let (status, body) = api.delete("/nodes/pve/qemu/120", &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["message"], "VM 120 is running - destroy failed\n");

    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/120/status/shutdown",
            &[("timeout", "30")],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    let list = api.ok(Method::GET, "/nodes/pve/qemu", &[]).await;
    let vm = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vmid"] == 120)
        .unwrap();
    assert_eq!(vm["status"], "stopped");

    let stop = api
        .ok(Method::POST, "/nodes/pve/qemu/120/status/stop", &[])
        .await;
    assert_eq!(
        api.wait_task(stop.as_str().unwrap()).await["exitstatus"],
        "OK"
    );
    let shutdown = api
        .ok(Method::POST, "/nodes/pve/qemu/120/status/shutdown", &[])
        .await;
    assert_eq!(
        api.wait_task(shutdown.as_str().unwrap()).await["exitstatus"],
        "VM 120 not running"
    );

    // Resize, then destroy with purge.
    let upid = api
        .ok(
            Method::PUT,
            "/nodes/pve/qemu/120/resize",
            &[("disk", "scsi0"), ("size", "+2G")],
        )
        .await;
    api.wait_task(upid.as_str().unwrap()).await;
    assert!(sim.vm(120).unwrap().config["scsi0"].ends_with("size=66G"));

    let upid = api
        .ok(
            Method::DELETE,
            "/nodes/pve/qemu/120",
            &[("purge", "1"), ("destroy-unreferenced-disks", "1")],
        )
        .await;
    let upid = assert_upid(&upid, "qmdestroy", "120");
    api.wait_task(&upid).await;
    assert!(sim.vm(120).is_none());
    assert!(sim.volumes("local-lvm").iter().all(|v| v.vmid != Some(120)));
    let (status, body) = api.get("/nodes/pve/qemu/120/config").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["message"].as_str().unwrap().contains("does not exist"));
    sim.assert_no_violations();
}

#[tokio::test]
async fn task_log_and_node_endpoints() {
    let sim = start_sim().await;
    let api = Api::token(&sim);
    let upid = api
        .ok(
            Method::POST,
            "/nodes/pve/qemu/9000/clone",
            &[("newid", "130")],
        )
        .await;
    let upid = upid.as_str().unwrap().to_string();
    api.wait_task(&upid).await;
    let (status, body) = api
        .get(&format!(
            "/nodes/pve/tasks/{}/log",
            crate::common::encode(&upid)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let lines = body["data"].as_array().unwrap();
    assert_eq!(lines.last().unwrap()["t"], "TASK OK");
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(body["total"], lines.len());

    let status = api.ok(Method::GET, "/nodes/pve/status", &[]).await;
    assert!(status["memory"]["total"].as_u64().unwrap() > 0);
    let (code, _) = api.get("/nodes/other/status").await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    let resources = api.ok(Method::GET, "/cluster/resources", &[]).await;
    let types: Vec<&str> = resources
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"qemu") && types.contains(&"node") && types.contains(&"storage"));
    sim.assert_no_violations();
}
