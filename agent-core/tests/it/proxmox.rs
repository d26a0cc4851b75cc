//! The `proxmox.*` executors over real HTTPS against pve-sim, which checks
//! every request against the PVE 9.1.2 schema.

use std::time::{Duration, Instant};

use base64::Engine;
use pve_sim::TaskOutcome;
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn every_action_with_api_token_and_pinned_certificate() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);

    let st = exec(&ctx, "proxmox.status", json!({})).await;
    assert_eq!(st["connected"], true);
    assert_eq!(st["version"], "9.1.2");
    assert_eq!(st["tls"], "pinned");
    assert_eq!(st["insecure"], false);
    assert_eq!(
        exec(&ctx, "proxmox.login", json!({"force": true})).await["ok"],
        true
    );

    let list = exec(&ctx, "proxmox.list-vms", json!({})).await;
    assert!(list.as_array().unwrap().iter().any(|v| v["vmid"] == 9000));
    let cfg = exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await;
    assert_eq!(cfg["template"], 1);
    assert_eq!(
        exec(&ctx, "proxmox.vm-status", json!({"vmid": 9000})).await["status"],
        "stopped"
    );

    // clone (linked) + wait-task + wait-vm-presence
    let cl = exec(
        &ctx,
        "proxmox.clone",
        json!({"templateVmId": 9000, "newid": 101, "name": "bot-101", "full": false}),
    )
    .await;
    let upid = cl["upid"].as_str().unwrap().to_string();
    assert!(upid.contains(":qmclone:9000:"), "{upid}");
    let t = exec(&ctx, "proxmox.task-status", json!({"upid": upid})).await;
    assert!(t["status"] == "running" || t["status"] == "stopped");
    let done = exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": upid, "intervalMs": 250}),
    )
    .await;
    assert_eq!(done["exitstatus"], "OK");
    assert_eq!(done["warnings"], 0);
    assert_eq!(
        exec(
            &ctx,
            "proxmox.wait-vm-presence",
            json!({"vmid": 101, "intervalMs": 250})
        )
        .await,
        json!({"vmid": 101, "exists": true})
    );
    // clone without newid takes /cluster/nextid
    let cl2 = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "name": "auto"})).await;
    assert_eq!(cl2["newid"], 100);
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl2["upid"], "intervalMs": 250}),
    )
    .await;

    // update-config: config{} and top-level keys; our own keys are not forwarded
    let up = exec(
        &ctx,
        "proxmox.update-config",
        json!({"vmid": 101, "config": {"memory": 2048, "cores": 1}, "cores": 2, "onboot": true, "timeoutMs": 5000, "target": "pve1"}),
    )
    .await;
    assert_eq!(up["updated"], true);
    let cfg = exec(&ctx, "proxmox.config.get", json!({"vmid": 101})).await;
    assert_eq!(cfg["memory"], "2048");
    assert_eq!(cfg["cores"], 2);
    assert_eq!(cfg["onboot"], 1);

    let rs = exec(
        &ctx,
        "proxmox.resize-disk",
        json!({"vmid": 101, "disk": "scsi0", "size": "+1G"}),
    )
    .await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": rs["upid"], "intervalMs": 250}),
    )
    .await;

    for action in ["start", "suspend", "resume"] {
        let r = exec(&ctx, &format!("proxmox.{action}"), json!({"vmid": 101})).await;
        exec(
            &ctx,
            "proxmox.wait-task",
            json!({"upid": r["upid"], "intervalMs": 250}),
        )
        .await;
    }
    let running = exec(
        &ctx,
        "proxmox.wait-vm-status",
        json!({"vmid": 101, "desiredStatus": "running", "intervalMs": 250}),
    )
    .await;
    assert_eq!(running["status"], "running");
    exec(&ctx, "proxmox.sendkey", json!({"vmid": 101, "key": "ret"})).await;
    for action in ["reset", "shutdown", "stop"] {
        let r = exec(&ctx, &format!("proxmox.{action}"), json!({"vmid": 101})).await;
        exec(
            &ctx,
            "proxmox.wait-task",
            json!({"upid": r["upid"], "intervalMs": 250}),
        )
        .await;
    }
    let res = exec(&ctx, "proxmox.cluster-resources", json!({"type": "vm"})).await;
    assert!(res.as_array().unwrap().iter().any(|r| r["vmid"] == 101));

    let del = exec(
        &ctx,
        "proxmox.delete",
        json!({"vmid": 101, "purge": true, "destroyUnreferencedDisks": true}),
    )
    .await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": del["upid"], "intervalMs": 250}),
    )
    .await;
    assert_eq!(
        exec(
            &ctx,
            "proxmox.wait-vm-presence",
            json!({"vmid": 101, "exists": false, "intervalMs": 250})
        )
        .await["exists"],
        false
    );

    let targets = exec(&ctx, "proxmox.list-targets", json!({})).await;
    assert_eq!(targets[0]["id"], "pve1");
    assert_eq!(targets[0]["isActive"], true);
    assert_eq!(targets[0]["tls"], "pinned");
    sim.assert_no_violations();
}

#[tokio::test]
async fn wait_task_ok_warnings_and_error_with_log_tail() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    sim.faults()
        .force_task_outcome(1, Some("qmclone"), TaskOutcome::Warnings(2));
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 110})).await;
    let done = exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "intervalMs": 250}),
    )
    .await;
    assert_eq!(done["exitstatus"], "WARNINGS: 2");
    assert_eq!(done["warnings"], 2);

    sim.faults().force_task_outcome(
        1,
        Some("qmclone"),
        TaskOutcome::Error("storage full".into()),
    );
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 111})).await;
    let e = exec_err(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "intervalMs": 250}),
    )
    .await;
    assert_eq!(e.code, "PROXMOX_TASK_FAILED");
    assert!(e.message.contains("storage full"), "{}", e.message);
    assert!(
        e.message.contains("TASK ERROR"),
        "log tail missing: {}",
        e.message
    );

    // a timeout is reported as such
    sim.hold_tasks(true);
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 112})).await;
    let e = exec_err(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "timeoutMs": 1000, "intervalMs": 250}),
    )
    .await;
    assert_eq!(e.code, "PROXMOX_TIMEOUT");
    assert!(e.message.contains("timed out after 1s"), "{}", e.message);

    // cancellation stops a wait at once
    let c2 = ctx.clone();
    let upid = cl["upid"].clone();
    let h = tokio::spawn(async move {
        agent_core::execute(
            "proxmox.wait-task",
            json!({"upid": upid, "intervalMs": 250}),
            &c2,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    ctx.cancel.cancel();
    let r = h.await.unwrap();
    assert_eq!(r.unwrap_err().code, "CANCELLED");
    assert!(t0.elapsed() < Duration::from_secs(1));
    sim.hold_tasks(false);
    sim.assert_no_violations();
}

#[tokio::test]
async fn transient_failures_are_retried_within_budget() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    // lock timeouts, 5xx and a dropped connection heal by retrying
    sim.faults().lock_timeout_next(2, Some("/qemu/9000/config"));
    assert_eq!(
        exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await["template"],
        1
    );
    sim.faults().fail_next(2, 503, Some("/version"));
    assert_eq!(
        exec(&ctx, "proxmox.status", json!({})).await["connected"],
        true
    );
    sim.faults().fail_next(1, 500, Some("/nodes/pve/qemu"));
    sim.faults().drop_next(1, Some("/nodes/pve/qemu"));
    exec(&ctx, "proxmox.list-vms", json!({})).await;
    // a lock timeout on clone dispatch is retried and the clone happens once
    sim.faults().lock_timeout_next(1, Some("/qemu/9000/clone"));
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 120})).await;
    assert!(cl["upid"].is_string());
    // the budget ends: 4 attempts, then the error
    sim.faults().fail_next(10, 503, Some("/version"));
    let e = exec_err(&ctx, "proxmox.status", json!({})).await;
    assert_eq!(e.code, "PROXMOX_API_ERROR");
    assert!(e.message.contains("503"), "{}", e.message);
    sim.faults().clear();
    // final PVE answers are not retried
    let e = exec_err(&ctx, "proxmox.start", json!({"vmid": 9000})).await;
    assert!(e.message.contains("template"), "{}", e.message);
    sim.assert_no_violations();
}

#[tokio::test]
async fn ticket_login_relogs_once_after_401() {
    let sim = sim().await;
    let ctx = ctx(vec![password_target(&sim, "pw", sim.password())]);
    exec(&ctx, "proxmox.list-vms", json!({})).await;
    sim.expire_tickets();
    // GET and a CSRF-protected PUT both work after the re-login
    exec(&ctx, "proxmox.list-vms", json!({})).await;
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 130})).await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "intervalMs": 250}),
    )
    .await;
    sim.expire_tickets();
    exec(
        &ctx,
        "proxmox.update-config",
        json!({"vmid": 130, "memory": 1024}),
    )
    .await;

    let bad = ctx_with_password(&sim, "wrong-password");
    let e = exec_err(&bad, "proxmox.list-vms", json!({})).await;
    assert_eq!(e.code, "PROXMOX_AUTH_FAILED");
    sim.assert_no_violations();
}

fn ctx_with_password(sim: &pve_sim::PveSim, pw: &str) -> agent_core::ExecContext {
    ctx(vec![password_target(sim, "bad", pw)])
}

#[tokio::test]
async fn tls_pin_mismatch_system_trust_and_explicit_insecure() {
    let sim = sim().await;
    let mut wrong = token_target(&sim, "wrong");
    wrong.config.tls.fingerprint = Some("00".repeat(32));
    let mut system = token_target(&sim, "system");
    system.config.tls.fingerprint = None;
    let mut insecure = token_target(&sim, "insecure");
    insecure.config.tls.fingerprint = None;
    insecure.config.tls.insecure = true;
    let mut ca = token_target(&sim, "ca");
    ca.config.tls.fingerprint = None;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), sim.certificate_pem()).unwrap();
    ca.config.tls.ca_file = Some(ca_file.path().to_path_buf());
    let ctx = ctx(vec![wrong, system, insecure, ca]);

    let t0 = Instant::now();
    let e = exec_err(&ctx, "proxmox.status", json!({"target": "wrong"})).await;
    assert_eq!(e.code, "PROXMOX_TLS_ERROR", "{e}");
    assert!(e.message.contains("fingerprint mismatch"), "{}", e.message);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "TLS errors must not be retried"
    );
    let e = exec_err(&ctx, "proxmox.status", json!({"target": "system"})).await;
    assert_eq!(e.code, "PROXMOX_TLS_ERROR", "{e}");

    let st = exec(&ctx, "proxmox.status", json!({"target": "insecure"})).await;
    assert_eq!(st["insecure"], true);
    assert_eq!(st["tls"], "insecure");
    let st = exec(&ctx, "proxmox.status", json!({"target": "ca"})).await;
    assert_eq!(st["tls"], "ca");
    let list = exec(&ctx, "proxmox.list-targets", json!({})).await;
    let ins = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "insecure")
        .unwrap();
    assert_eq!(ins["insecure"], true);

    let e = exec_err(&ctx, "proxmox.status", json!({"target": "nope"})).await;
    assert_eq!(e.code, "PROXMOX_TARGET_UNKNOWN");
    assert_eq!(e.message, "Unknown Proxmox target: nope");
    let e = exec_err(&ctx, "proxmox.frobnicate", json!({})).await;
    assert_eq!(e.code, "UNKNOWN_COMMAND");
    let e = exec_err(&ctx, "syncthing.sync", json!({})).await;
    assert_eq!(e.message, "Unknown command type: syncthing.sync");
    let e = exec_err(&ctx, "proxmox.start", json!({"target": "insecure"})).await;
    assert_eq!(e.message, "vmid required for proxmox.start");
    let empty = crate::common::ctx(vec![]);
    let e = exec_err(&empty, "proxmox.status", json!({})).await;
    assert_eq!(e.code, "PROXMOX_NOT_CONFIGURED");
    sim.assert_no_violations();
}

#[tokio::test]
async fn provision_iso_is_built_uploaded_attached_and_deleted() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    let cl = exec(
        &ctx,
        "proxmox.clone",
        json!({"vmid": 9000, "newid": 101, "full": true}),
    )
    .await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "intervalMs": 250}),
    )
    .await;

    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let xml = "<?xml version=\"1.0\"?><unattend xmlns=\"urn:schemas-microsoft-com:unattend\"/>";
    let r = exec(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 101, "isoName": "provision-101.iso", "files": {
            "Autounattend.xml": b64(xml),
            "provision.json": b64("{\"vm_uuid\":\"x\"}"),
            "START.ps1": b64("Write-Host hi"),
        }}),
    )
    .await;
    assert_eq!(r["isoPath"], "local:iso/provision-101.iso");
    assert_eq!(r["created"], true);
    let iso = sim.data_dir().join("local/iso/provision-101.iso");
    assert!(iso.is_file(), "{} missing", iso.display());
    let path = iso.to_str().unwrap();

    // independent oracles: isoinfo lists the Joliet names, xorriso the tree
    let out = run_tool("isoinfo", &["-l", "-J", "-i", path]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "isoinfo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["Autounattend.xml", "provision.json", "START.ps1"] {
        assert!(
            listing.contains(name),
            "Joliet name {name} missing:\n{listing}"
        );
    }
    let out = run_tool("xorriso", &["-indev", path, "-find", "/", "-exec", "lsdl"]);
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("Autounattend.xml"), "{tree}");
    let pvd = run_tool("isoinfo", &["-d", "-i", path]);
    assert!(String::from_utf8_lossy(&pvd.stdout).contains("Volume id: PROVISION"));

    let at = exec(
        &ctx,
        "proxmox.attach-cdrom",
        json!({"vmid": 101, "isoPath": r["isoPath"]}),
    )
    .await;
    assert_eq!(at["attached"], true);
    let cfg = exec(&ctx, "proxmox.get-config", json!({"vmid": 101})).await;
    assert_eq!(cfg["ide2"], "local:iso/provision-101.iso,media=cdrom");
    let st = exec(&ctx, "proxmox.start", json!({"vmid": 101})).await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": st["upid"], "intervalMs": 250}),
    )
    .await;

    let de = exec(
        &ctx,
        "proxmox.detach-cdrom",
        json!({"vmid": 101, "deleteIso": true}),
    )
    .await;
    assert_eq!(de["detached"], true);
    assert_eq!(de["deletedIso"], "local:iso/provision-101.iso");
    let cfg = exec(&ctx, "proxmox.get-config", json!({"vmid": 101})).await;
    assert_eq!(cfg["ide2"], "none,media=cdrom");
    assert!(!iso.exists(), "the ISO must be deleted");

    // bad inputs
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 101, "files": {}}),
    )
    .await;
    assert_eq!(e.code, "BAD_REQUEST");
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 101, "files": {"a/b": "eA=="}}),
    )
    .await;
    assert_eq!(e.code, "BAD_REQUEST");
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 101, "files": {"x": "!!"}}),
    )
    .await;
    assert_eq!(e.code, "BAD_REQUEST");
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 101, "isoName": "../x.iso", "files": {"x": "eA=="}}),
    )
    .await;
    assert_eq!(e.code, "BAD_REQUEST");
    sim.assert_no_violations();
}

/// `data` of a GET straight from pve-sim, without the agent.
async fn raw_get(sim: &pve_sim::PveSim, path: &str) -> serde_json::Value {
    let http = agent_core::tls::build_client(
        &agent_core::tls::TlsTrust::Pinned(hex_fp(sim)),
        Duration::from_secs(10),
        "raw-test",
    )
    .unwrap();
    let body: serde_json::Value = http
        .get(format!("{}{path}", sim.api_url()))
        .header("Authorization", sim.token_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"].clone()
}

/// Equal JSON, numbers compared by value (pve-sim writes `0.0` where PVE
/// writes `0`; the agent writes integral numbers like PVE).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The typed outputs of the generated sub-clients go back to the server as
/// exactly the JSON PVE answered: no key dropped, added or retyped.
#[tokio::test]
async fn results_are_the_pve_answers_unchanged() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 101})).await;
    let upid = cl["upid"].as_str().unwrap().to_string();
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": upid, "intervalMs": 250}),
    )
    .await;
    let task_path = format!(
        "/nodes/pve/tasks/{}/status",
        agent_core::proxmox::enc(&upid)
    );
    let cases = [
        ("proxmox.list-vms", json!({}), "/nodes/pve/qemu".to_string()),
        (
            "proxmox.vm-status",
            json!({"vmid": 9000}),
            "/nodes/pve/qemu/9000/status/current".into(),
        ),
        (
            "proxmox.get-config",
            json!({"vmid": 9000}),
            "/nodes/pve/qemu/9000/config".into(),
        ),
        (
            "proxmox.get-config",
            json!({"vmid": 101}),
            "/nodes/pve/qemu/101/config".into(),
        ),
        (
            "proxmox.cluster-resources",
            json!({}),
            "/cluster/resources".into(),
        ),
        (
            "proxmox.cluster-resources",
            json!({"type": "storage"}),
            "/cluster/resources?type=storage".into(),
        ),
        ("proxmox.task-status", json!({"upid": upid}), task_path),
    ];
    for (action, payload, path) in cases {
        // node uptimes tick: compare against a stable pair of raw answers
        let mut compared = false;
        for _ in 0..3 {
            let before = raw_get(&sim, &path).await;
            let got = exec(&ctx, action, payload.clone()).await;
            if before == raw_get(&sim, &path).await {
                assert!(
                    same_json(&got, &before),
                    "{action} {payload}:\n agent {got}\n   pve {before}"
                );
                compared = true;
                break;
            }
        }
        assert!(compared, "{path} never answered the same twice");
    }
    let mut st = exec(&ctx, "proxmox.status", json!({})).await;
    for added in ["connected", "tls", "insecure", "target"] {
        st.as_object_mut().unwrap().remove(added);
    }
    assert!(same_json(&st, &raw_get(&sim, "/version").await), "{st}");
    sim.assert_no_violations();
}

/// Payload values the PVE 9.1 schema refuses never reach PVE.
#[tokio::test]
async fn invalid_parameters_are_refused_before_sending() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    let before = exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await;
    for (action, payload, wanted) in [
        (
            "proxmox.update-config",
            json!({"vmid": 9000, "memory": 4096, "frobnicate": 1}),
            "unknown VM config key(s) frobnicate",
        ),
        (
            "proxmox.update-config",
            json!({"vmid": 9000, "config": {"cores": "many"}}),
            "config key cores = \"many\" is invalid",
        ),
        (
            "proxmox.update-config",
            json!({"vmid": 9000, "net0": {"bridge": "vmbr0"}}),
            "config key net0 must be a string, number or boolean",
        ),
        (
            "proxmox.resize-disk",
            json!({"vmid": 9000, "disk": "floppy0", "size": "+1G"}),
            "disk \"floppy0\" is invalid",
        ),
        (
            "proxmox.resize-disk",
            json!({"vmid": 9000, "disk": "scsi0", "size": "big"}),
            "size \"big\" is invalid",
        ),
        (
            "proxmox.cluster-resources",
            json!({"type": "lxc"}),
            "type \"lxc\" is invalid",
        ),
        (
            "proxmox.clone",
            json!({"vmid": 9000, "newid": 101, "format": "vhd"}),
            "format \"vhd\" is invalid",
        ),
    ] {
        let e = exec_err(&ctx, action, payload.clone()).await;
        assert_eq!(e.code, "BAD_REQUEST", "{action} {payload}: {e}");
        assert!(e.message.starts_with(wanted), "{action}: {}", e.message);
    }
    // nothing was changed or created
    assert_eq!(
        exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await,
        before
    );
    assert!(sim.vm(101).is_none());
    sim.assert_no_violations();
}

/// Issue #11, finding 3: `update-config` keys that reach the Proxmox host
/// (and cdrom paths on the host) are refused with `TARGET_POLICY_FORBIDDEN`
/// naming the key unless the customer set `allow_host_level_config` on the
/// target; nothing reaches PVE. Normal keys (`smbios1`, the provisioning
/// chain's) never need the flag.
#[tokio::test]
async fn finding_3_host_level_config_keys_need_allow_host_level_config() {
    let sim = sim().await;
    let ctx = ctx(vec![token_target(&sim, "pve1")]);
    let before = exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await;
    for (key, value) in [
        ("args", "-device pci-assign,host=01:00.0"),
        ("hookscript", "local:snippets/hook.pl"),
        ("hostpci0", "0000:01:00.0"),
        ("usb0", "host=1-2"),
        ("serial0", "/dev/ttyS0"),
        ("parallel0", "/dev/parport0"),
        ("virtiofs0", "shared"),
        ("scsi5", "/dev/sda"),
    ] {
        for payload in [
            json!({"vmid": 9000, key: value}),
            json!({"vmid": 9000, "config": {"memory": 2048, key: value}}),
        ] {
            let e = exec_err(&ctx, "proxmox.update-config", payload.clone()).await;
            assert_eq!(e.code, "TARGET_POLICY_FORBIDDEN", "{payload}: {e}");
            assert!(e.message.contains(key), "names {key}: {}", e.message);
            assert!(
                e.message.contains("allow_host_level_config"),
                "{}",
                e.message
            );
        }
    }
    let e = exec_err(
        &ctx,
        "proxmox.attach-cdrom",
        json!({"vmid": 9000, "isoPath": "/dev/sda"}),
    )
    .await;
    assert_eq!(e.code, "TARGET_POLICY_FORBIDDEN", "{e}");
    let e = exec_err(
        &ctx,
        "proxmox.ssh-write-config",
        json!({"vmid": 9000, "content": "args: -x\n"}),
    )
    .await;
    assert_eq!(e.code, "TARGET_POLICY_FORBIDDEN", "{e}");
    assert!(e.message.contains("ssh-write-config"), "{}", e.message);
    assert_eq!(
        exec(&ctx, "proxmox.get-config", json!({"vmid": 9000})).await,
        before,
        "nothing reached PVE"
    );
    // what provisioning needs is a normal key
    let up = exec(
        &ctx,
        "proxmox.update-config",
        json!({"vmid": 9000, "smbios1": "uuid=7a2e1f40-2d5b-4c1e-9d3e-2f1b0c9a8e71,manufacturer=Qm90LU1veA==,base64=1", "memory": 4096}),
    )
    .await;
    assert_eq!(up["updated"], true);

    // with the local flag the same keys go through (PVE's schema decides)
    let mut t = token_target(&sim, "pve1");
    t.config.allow_host_level_config = true;
    let allowed = crate::common::ctx(vec![t]);
    let up = exec(
        &allowed,
        "proxmox.update-config",
        json!({"vmid": 9000, "args": "-no-hpet", "serial0": "socket"}),
    )
    .await;
    assert_eq!(up["updated"], true);
    let cfg = exec(&allowed, "proxmox.get-config", json!({"vmid": 9000})).await;
    assert_eq!(cfg["args"], "-no-hpet", "{cfg}");
    sim.assert_no_violations();
}
