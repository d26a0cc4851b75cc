use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pve_sim::StartLine;

use crate::common::fingerprint_client;

#[tokio::test]
async fn binary_prints_start_line_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pve-sim"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pve-sim");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(20), line)
        .await
        .expect("start line in time")
        .unwrap()
        .unwrap();
    let start: StartLine = serde_json::from_str(line.trim()).expect("JSON start line");
    assert!(start.url.starts_with("https://127.0.0.1:"));
    assert_eq!(start.token_id, "root@pam!botmox");
    assert_eq!(start.username, "root@pam");
    assert_eq!(start.node, "pve");
    assert!(!start.password.is_empty() && !start.token_secret.is_empty());

    let client = fingerprint_client(&start.fingerprint);
    let auth = format!("PVEAPIToken={}={}", start.token_id, start.token_secret);
    let resp = client
        .get(format!("{}/api2/json/nodes/pve/qemu", start.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let vm = &body["data"][0];
    assert_eq!(vm["vmid"], 9000);
    assert_eq!(vm["template"], 1);
    assert!(dir.path().join("local/iso").is_dir());

    // The admin route reports violations of the binary.
    client
        .get(format!("{}/api2/json/nodes/pve/qemu?bad=1", start.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = client
        .get(format!("{}/_sim/violations", start.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["kind"], "invalid_parameters");
    assert!(v["data"][0]["errors"]["bad"].as_str().is_some());
    let unauth = client
        .get(format!("{}/_sim/violations", start.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);

    // Faults over the admin route.
    let resp = client
        .post(format!("{}/_sim/faults", start.url))
        .header("Authorization", &auth)
        .json(
            &serde_json::json!({"action": "status", "status": 503, "message": "busy", "count": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{}/api2/json/version", start.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);

    // Forced task outcome and state over the admin routes.
    let resp = client
        .post(format!("{}/_sim/task-outcome", start.url))
        .header("Authorization", &auth)
        .json(&serde_json::json!({"outcome": "warnings", "value": 3, "count": 1, "task_type": "qmclone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = client
        .post(format!("{}/api2/json/nodes/pve/qemu/9000/clone", start.url))
        .header("Authorization", &auth)
        .form(&[("newid", "105")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upid = body["data"].as_str().expect("UPID").to_string();
    let mut exit = serde_json::Value::Null;
    for _ in 0..100 {
        let st: serde_json::Value = client
            .get(format!(
                "{}/api2/json/nodes/pve/tasks/{}/status",
                start.url,
                crate::common::encode(&upid)
            ))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["data"]["status"] == "stopped" {
            exit = st["data"]["exitstatus"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(exit, "WARNINGS: 3");
    let state: serde_json::Value = client
        .get(format!("{}/_sim/state", start.url))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let vmids: Vec<u64> = state["data"]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vmid"].as_u64().unwrap())
        .collect();
    assert_eq!(vmids, vec![105, 9000]);
    assert_eq!(
        state["data"]["volumes"]["local-lvm"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
