//! Every action end to end: dispatched through the REAL control-server's
//! HTTP API, claimed and run by the REAL `botmox-agent run`, against pve-sim
//! (which checks every request against the PVE schema) and a real OpenSSH
//! sshd on loopback; the outcome is read back through the API. One server,
//! one agent and one simulator are shared by a table of cases (start-up is
//! the expensive part).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use control_server::domains::commands::service::{PROXMOX_ACTIONS, SSH_ACTIONS};
use pve_sim::{PveSim, TaskOutcome, VmStatus};
use serde_json::{json, Value};

use crate::common::{free_port, keygen, run_tool};
use crate::runtime::{sim, Agent, Server};

const TEST_USER: &str = "botmox-ssh-test";
const TEST_USER_PASSWORD_FILE: &str = "/var/lib/botmox-test/ssh-password";

// ------------------------------------------------------------------ sshd

/// `/usr/sbin/sshd` on 127.0.0.1 with two ports: `port` is a normal login
/// (key auth for root through an AuthorizedKeysFile in the temp dir,
/// password auth on), `exit_port` forces every command to `exit 7`.
struct Sshd {
    child: Child,
    port: u16,
    exit_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    std::fs::create_dir_all(d.join("qemu-server")).unwrap();
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (tests run as root)");
    let (port, exit_port) = (free_port(), free_port());
    let config = format!(
        "Port {port}\nPort {exit_port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
         PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\n\
         PubkeyAuthentication yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\n\
         UsePAM no\nStrictModes no\nMaxAuthTries 6\nLogLevel ERROR\n\
         Subsystem sftp internal-sftp\nMatch LocalPort {exit_port}\n\tForceCommand exit 7\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("/usr/sbin/sshd is required (apt-get install openssh-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in [port, exit_port] {
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not start on port {p}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Sshd {
        child,
        port,
        exit_port,
        dir,
    }
}

fn host_fingerprint(dir: &Path) -> String {
    let out = run_tool(
        "ssh-keygen",
        &[
            "-l",
            "-E",
            "sha256",
            "-f",
            dir.join("host_key.pub").to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

// ------------------------------------------------------------------ cases

/// Dispatches through the API and waits for the final state through the API.
struct Bus<'a> {
    server: &'a Server,
    agent_id: &'a str,
    /// Command types that succeeded at least once.
    succeeded: BTreeSet<String>,
    /// Error codes seen, by command type.
    failed: BTreeSet<(String, String)>,
}

impl Bus<'_> {
    /// `proxmox.<a>` and `ssh.<a>` the server knows go through their scoped
    /// endpoints, any other type through the generic one (admin). Returns
    /// the final command.
    async fn run(&mut self, command_type: &str, params: Value) -> Value {
        let scoped = |prefix: &str, known: &[&str]| {
            command_type
                .strip_prefix(prefix)
                .filter(|a| known.contains(a))
                .map(str::to_string)
        };
        let (path, body) = if let Some(a) = scoped("proxmox.", PROXMOX_ACTIONS) {
            (
                format!("/api/v1/vm-ops/proxmox/{a}"),
                json!({"agent_id": self.agent_id, "params": params}),
            )
        } else if let Some(a) = scoped("ssh.", SSH_ACTIONS) {
            (
                format!("/api/v1/vm-ops/ssh/{a}"),
                json!({"agent_id": self.agent_id, "params": params}),
            )
        } else {
            (
                "/api/v1/vm-ops/commands".to_string(),
                json!({"agent_id": self.agent_id, "command_type": command_type, "payload": params}),
            )
        };
        let (st, b) = self.server.call("POST", &path, Some(body)).await;
        assert_eq!(st, 202, "dispatch {command_type} {params}: {b}");
        assert_eq!(b["data"]["command_type"], command_type, "{b}");
        let id = b["data"]["id"].as_str().unwrap().to_string();
        let c = self
            .server
            .wait_status(
                &id,
                &["succeeded", "failed", "cancelled", "expired"],
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(c["command_type"], command_type, "{c}");
        assert_eq!(c["attempt"], 1, "{c}");
        c
    }

    async fn ok(&mut self, command_type: &str, params: Value) -> Value {
        let c = self.run(command_type, params.clone()).await;
        assert_eq!(c["status"], "succeeded", "{command_type} {params}: {c}");
        assert!(c["error_code"].is_null(), "{c}");
        self.succeeded.insert(command_type.to_string());
        c["result"].clone()
    }

    /// Asserts `failed` with `code`; returns the error message.
    async fn fail(&mut self, command_type: &str, params: Value, code: &str) -> String {
        let c = self.run(command_type, params.clone()).await;
        assert_eq!(c["status"], "failed", "{command_type} {params}: {c}");
        assert_eq!(c["error_code"], code, "{command_type} {params}: {c}");
        assert!(c["result"].is_null(), "{c}");
        self.failed
            .insert((command_type.to_string(), code.to_string()));
        c["error_message"].as_str().unwrap_or("").to_string()
    }

    /// Runs `proxmox.wait-task` on `upid` and checks it ended OK.
    async fn wait_task(&mut self, upid: &Value) -> Value {
        let r = self
            .ok(
                "proxmox.wait-task",
                json!({"upid": upid, "intervalMs": 250}),
            )
            .await;
        assert_eq!(r["exitstatus"], "OK", "{r}");
        assert_eq!(r["upid"], *upid, "{r}");
        r
    }
}

/// `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:` as PVE makes them.
fn assert_upid(upid: &Value, task_type: &str, id: &str) {
    let s = upid.as_str().unwrap_or_else(|| panic!("no upid: {upid}"));
    let re = regex::Regex::new(&format!(
        "^UPID:pve:[0-9A-F]{{8}}:[0-9A-F]{{8}}:[0-9A-F]{{8}}:{task_type}:{id}:[^:]+:$"
    ))
    .unwrap();
    assert!(re.is_match(s), "{s} is not a {task_type} UPID for {id}");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `targets add` through the CLI; `stdin` is the token secret or password.
async fn add_target(agent: &Agent, args: &[&str], stdin: &str) {
    let (code, out, err) = agent
        .cli_async(&[&["targets", "add"], args].concat(), Some(stdin))
        .await;
    assert_eq!(code, 0, "targets add {args:?}: {out} {err}");
}

/// Pairs an agent and gives it these targets:
/// - `sim` (active): token + pinned cert; SSH key login as root on the
///   sshd, `allow_unsafe`, VM configs and the SFTP ISO dir in temp dirs;
/// - `simpw`: password login to PVE; SSH as root with that password (refused);
/// - `nossh`: token, nothing for SSH (no key, no password);
/// - `sshdown`: SSH to a closed port;
/// - `sshexit`: SSH where every command exits 7; no `allow_unsafe`;
/// - `tampered`: SSH whose recorded host key is a different one;
/// - `badtoken`: a wrong API token secret.
async fn agent_with_targets(server: &Server, sim: &PveSim, sshd: &Sshd) -> (Agent, String) {
    let (agent_id, bundle, _) = server.pairing().await;
    let agent = Agent::new();
    let (c, out, err) = agent.cli_async(&["pair", &bundle], None).await;
    assert_eq!(c, 0, "pair: {out} {err}");
    let d = sshd.dir.path();
    let key = d.join("client_key");
    let key = key.to_str().unwrap();
    let url = sim.url();
    let fp = sim.fingerprint();
    let port = sshd.port.to_string();
    let exit_port = sshd.exit_port.to_string();
    let down_port = free_port().to_string();
    let qemu_dir = d.join("qemu-server");
    let iso_dir = sim.data_dir().join("local/iso");
    let token = [
        "--url",
        &url,
        "--node",
        sim.node(),
        "--fingerprint",
        &fp,
        "--token-id",
        sim.token_id(),
        "--token-secret-stdin",
    ];
    let ssh = |p: &'static str| -> Vec<String> {
        let port = match p {
            "port" => port.clone(),
            "exit" => exit_port.clone(),
            _ => down_port.clone(),
        };
        [
            "--ssh-host",
            "127.0.0.1",
            "--ssh-port",
            &port,
            "--ssh-user",
            "root",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let secret = sim.token_secret();

    let sim_ssh = ssh("port");
    let mut args = vec!["--id", "sim", "--activate"];
    args.extend(token);
    args.extend(strs(&sim_ssh));
    args.extend([
        "--ssh-key",
        key,
        "--ssh-allow-unsafe",
        "--allow-host-level-config",
        "--ssh-qemu-config-dir",
        qemu_dir.to_str().unwrap(),
        "--ssh-iso-dir",
        iso_dir.to_str().unwrap(),
    ]);
    add_target(&agent, &args, secret).await;

    let mut args = vec![
        "--id",
        "simpw",
        "--url",
        &url,
        "--node",
        sim.node(),
        "--fingerprint",
        &fp,
        "--username",
        sim.username(),
        "--password-stdin",
        // the SSH test user is chosen by the command (with its own password)
        "--allow-ssh-override",
    ];
    args.extend(strs(&sim_ssh));
    add_target(&agent, &args, sim.password()).await;

    let mut args = vec!["--id", "nossh"];
    args.extend(token);
    add_target(&agent, &args, secret).await;

    let down = ssh("down");
    let mut args = vec!["--id", "sshdown"];
    args.extend(token);
    args.extend(strs(&down));
    args.extend(["--ssh-key", key]);
    add_target(&agent, &args, secret).await;

    let exit = ssh("exit");
    let mut args = vec!["--id", "sshexit"];
    args.extend(token);
    args.extend(strs(&exit));
    args.extend([
        "--ssh-key",
        key,
        "--allow-host-level-config",
        "--ssh-qemu-config-dir",
        qemu_dir.to_str().unwrap(),
    ]);
    add_target(&agent, &args, secret).await;

    let mut args = vec!["--id", "tampered"];
    args.extend(token);
    args.extend(strs(&sim_ssh));
    args.extend(["--ssh-key", key]);
    add_target(&agent, &args, secret).await;

    let mut args = vec!["--id", "badtoken"];
    args.extend(token);
    add_target(&agent, &args, "not-the-token-secret").await;

    // a recorded host key for `tampered` that is not the sshd's
    let fake = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    std::fs::write(
        agent.dir.join("known_hosts.json"),
        json!({ format!("tampered|127.0.0.1:{}", sshd.port): fake }).to_string(),
    )
    .unwrap();
    (agent, agent_id)
}

// ------------------------------------------------------------------ test

/// Each `proxmox.*` action (every name the server accepts, incl. the
/// `config.get`/`config.update` aliases) and each SSH action in both
/// spellings (`proxmox.ssh-*` and `ssh.*`) succeeds at least once with a
/// checked result (UPIDs, state in pve-sim, files on the SSH host, a config
/// written then read back), and the important failures arrive with their
/// codes: SSH_REQUIRED, SSH_AUTH_FAILED, SSH_UNREACHABLE,
/// SSH_COMMAND_FORBIDDEN, SSH_EXEC_ERROR, SSH_HOST_KEY_MISMATCH,
/// SSH_READ_FAILED, SSH_WRITE_FAILED, UNKNOWN_COMMAND, PROXMOX_API_ERROR,
/// PROXMOX_TASK_FAILED, PROXMOX_TIMEOUT, PROXMOX_AUTH_FAILED,
/// PROXMOX_TARGET_UNKNOWN, BAD_REQUEST; unknown actions and non-object
/// payloads are refused by the server. No PVE schema violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_through_server_agent_sim_and_sshd() {
    let started = Instant::now();
    let sim = sim().await;
    let sshd = start_sshd();
    let mut server = Server::start("self-signed", 60).await;
    server.login().await;
    let (mut agent, agent_id) = agent_with_targets(&server, &sim, &sshd).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let mut bus = Bus {
        server: &server,
        agent_id: &agent_id,
        succeeded: BTreeSet::new(),
        failed: BTreeSet::new(),
    };

    // ---------------------------------------------------------- proxmox reads
    let st = bus.ok("proxmox.status", json!({})).await;
    assert_eq!(st["version"], "9.1.2", "{st}");
    assert_eq!(st["connected"], true);
    assert_eq!(st["target"], "sim");
    assert_eq!(st["tls"], "pinned");
    assert_eq!(
        bus.ok("proxmox.login", json!({"force": true})).await["ok"],
        true
    );
    // ticket login with a password (the token target has nothing to log in)
    assert_eq!(
        bus.ok("proxmox.login", json!({"target": "simpw", "force": true}))
            .await["ok"],
        true
    );
    let st = bus.ok("proxmox.status", json!({"target": "simpw"})).await;
    assert_eq!(st["target"], "simpw");

    let targets = bus.ok("proxmox.list-targets", json!({})).await;
    let ids: Vec<&str> = targets
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 7, "{targets}");
    assert_eq!(ids[0], "sim", "active first: {targets}");
    assert_eq!(targets[0]["isActive"], true);
    assert_eq!(targets[0]["sshConfigured"], true);
    let by_id = |id: &str| {
        targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id("nossh")["sshConfigured"], false);
    assert_eq!(by_id("simpw")["auth"], "password");

    for action in ["proxmox.list", "proxmox.list-vms"] {
        let list = bus.ok(action, json!({})).await;
        assert!(
            list.as_array().unwrap().iter().any(|v| v["vmid"] == 9000),
            "{action}: {list}"
        );
    }
    let res = bus
        .ok("proxmox.cluster-resources", json!({"type": "vm"}))
        .await;
    assert!(
        res.as_array().unwrap().iter().any(|r| r["vmid"] == 9000),
        "{res}"
    );
    assert_eq!(
        bus.ok("proxmox.vm-status", json!({"vmid": 9000})).await["status"],
        "stopped"
    );
    assert_eq!(
        bus.ok("proxmox.get-config", json!({"vmid": 9000})).await["template"],
        1
    );

    // ---------------------------------------------------------- clone → delete
    let cl = bus
        .ok(
            "proxmox.clone",
            json!({"vmid": 9000, "newid": 201, "name": "e2e-201"}),
        )
        .await;
    assert_eq!(cl["newid"], 201);
    assert_upid(&cl["upid"], "qmclone", "9000");
    let ts = bus
        .ok("proxmox.task-status", json!({"upid": cl["upid"]}))
        .await;
    assert_eq!(ts["upid"], cl["upid"], "{ts}");
    assert!(
        ts["status"] == "running" || ts["status"] == "stopped",
        "{ts}"
    );
    bus.wait_task(&cl["upid"]).await;
    assert_eq!(
        bus.ok(
            "proxmox.wait-vm-presence",
            json!({"vmid": 201, "intervalMs": 250})
        )
        .await,
        json!({"vmid": 201, "exists": true})
    );
    assert_eq!(sim.vm(201).expect("VM 201 in pve-sim").name(), "e2e-201");

    let up = bus
        .ok(
            "proxmox.update-config",
            json!({"vmid": 201, "memory": 3072, "cores": 2}),
        )
        .await;
    assert_eq!(up["updated"], true);
    let up = bus
        .ok(
            "proxmox.config.update",
            json!({"vmid": 201, "config": {"description": "from e2e"}}),
        )
        .await;
    assert_eq!(up["updated"], true);
    let vm = sim.vm(201).unwrap();
    assert_eq!(vm.config.get("memory").map(String::as_str), Some("3072"));
    assert_eq!(vm.config.get("cores").map(String::as_str), Some("2"));
    assert_eq!(
        vm.config.get("description").map(String::as_str),
        Some("from e2e")
    );
    let cfg = bus.ok("proxmox.config.get", json!({"vmid": 201})).await;
    assert_eq!(cfg["description"], "from e2e", "{cfg}");
    assert_eq!(cfg["cores"], 2, "{cfg}");

    let disk_before = vm.config.get("scsi0").cloned().unwrap_or_default();
    let rs = bus
        .ok(
            "proxmox.resize-disk",
            json!({"vmid": 201, "disk": "scsi0", "size": "+1G"}),
        )
        .await;
    assert_upid(&rs["upid"], "resize", "201");
    bus.wait_task(&rs["upid"]).await;
    let disk_after = sim.vm(201).unwrap().config.get("scsi0").cloned().unwrap();
    assert_ne!(disk_before, disk_after, "the disk grew");
    assert!(disk_after.contains("size=65G"), "{disk_after}");

    // power actions; each UPID names its task type and VM, and the VM's
    // state in pve-sim follows
    let power = [
        ("start", "qmstart", VmStatus::Running),
        ("suspend", "qmsuspend", VmStatus::Paused),
        ("resume", "qmresume", VmStatus::Running),
        ("reset", "qmreset", VmStatus::Running),
        ("reboot", "qmreboot", VmStatus::Running),
        ("shutdown", "qmshutdown", VmStatus::Stopped),
        ("start", "qmstart", VmStatus::Running),
    ];
    for (action, task, want) in power {
        let r = bus
            .ok(&format!("proxmox.{action}"), json!({"vmid": 201}))
            .await;
        assert_upid(&r["upid"], task, "201");
        bus.wait_task(&r["upid"]).await;
        assert_eq!(sim.vm(201).unwrap().status, want, "after {action}");
        if action == "start" && want == VmStatus::Running {
            let s = bus
                .ok(
                    "proxmox.wait-vm-status",
                    json!({"vmid": 201, "desiredStatus": "running", "intervalMs": 250}),
                )
                .await;
            assert_eq!(s["status"], "running", "{s}");
        }
    }
    bus.ok("proxmox.sendkey", json!({"vmid": 201, "key": "ret"}))
        .await;
    let r = bus.ok("proxmox.stop", json!({"vmid": 201})).await;
    assert_upid(&r["upid"], "qmstop", "201");
    bus.wait_task(&r["upid"]).await;
    let s = bus
        .ok(
            "proxmox.wait-vm-status",
            json!({"vmid": 201, "status": "stopped", "intervalMs": 250}),
        )
        .await;
    assert_eq!(s["status"], "stopped", "{s}");
    assert_eq!(sim.vm(201).unwrap().status, VmStatus::Stopped);
    // a PVE API error: the message carries PVE's own
    let m = bus
        .fail(
            "proxmox.sendkey",
            json!({"vmid": 201, "key": "ret"}),
            "PROXMOX_API_ERROR",
        )
        .await;
    assert!(m.contains("not running"), "{m}");

    // provisioning ISO (API upload), a raw ISO upload, attach, detach
    let files = json!({
        "Autounattend.xml": b64(b"<?xml version=\"1.0\"?><unattend xmlns=\"urn:schemas-microsoft-com:unattend\"/>"),
        "provision.json": b64(b"{\"vm\":201}"),
    });
    let iso = bus
        .ok(
            "proxmox.create-provision-iso",
            json!({"vmid": 201, "isoName": "e2e-201.iso", "files": files}),
        )
        .await;
    assert_eq!(iso["isoPath"], "local:iso/e2e-201.iso", "{iso}");
    assert_eq!(iso["method"], "api", "{iso}");
    assert_upid(&iso["upid"], "imgcopy", "");
    let iso_file = sim.data_dir().join("local/iso/e2e-201.iso");
    let bytes = std::fs::read(&iso_file).expect("the ISO in pve-sim's storage");
    assert_eq!(iso["size"], bytes.len());
    let out = run_tool("isoinfo", &["-l", "-J", "-i", iso_file.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("Autounattend.xml"), "{listing}");
    assert!(listing.contains("provision.json"), "{listing}");

    let raw = bus
        .ok(
            "proxmox.upload-iso",
            json!({"isoName": "e2e-raw.iso", "data": b64(&bytes)}),
        )
        .await;
    assert_eq!(raw["isoPath"], "local:iso/e2e-raw.iso", "{raw}");
    assert_eq!(
        std::fs::read(sim.data_dir().join("local/iso/e2e-raw.iso")).unwrap(),
        bytes
    );
    assert_eq!(raw["sha256"], iso["sha256"]);

    let at = bus
        .ok(
            "proxmox.attach-cdrom",
            json!({"vmid": 201, "isoPath": "local:iso/e2e-201.iso"}),
        )
        .await;
    assert_eq!(at["attached"], true);
    assert_eq!(
        sim.vm(201).unwrap().config.get("ide2").map(String::as_str),
        Some("local:iso/e2e-201.iso,media=cdrom")
    );
    let dt = bus
        .ok(
            "proxmox.detach-cdrom",
            json!({"vmid": 201, "deleteIso": true}),
        )
        .await;
    assert_eq!(dt["detached"], true, "{dt}");
    assert_eq!(dt["deletedIso"], "local:iso/e2e-201.iso", "{dt}");
    assert_eq!(
        sim.vm(201).unwrap().config.get("ide2").map(String::as_str),
        Some("none,media=cdrom")
    );
    assert!(
        !sim.volumes("local")
            .iter()
            .any(|v| v.volid == "local:iso/e2e-201.iso"),
        "the ISO volume is deleted"
    );

    // the SFTP fallback when the API refuses the upload (403)
    sim.faults().fail_next(1, 403, Some("/upload"));
    let sf = bus
        .ok(
            "proxmox.create-provision-iso",
            json!({"vmid": 201, "isoName": "e2e-sftp.iso", "files": files}),
        )
        .await;
    assert_eq!(sf["method"], "sftp", "{sf}");
    assert!(sf["upid"].is_null(), "{sf}");
    assert!(
        sf["apiError"].as_str().unwrap_or("").contains("403"),
        "{sf}"
    );
    let out = run_tool(
        "isoinfo",
        &[
            "-l",
            "-J",
            "-i",
            sim.data_dir()
                .join("local/iso/e2e-sftp.iso")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Autounattend.xml"));

    let del = bus
        .ok("proxmox.delete", json!({"vmid": 201, "purge": true}))
        .await;
    assert_upid(&del["upid"], "qmdestroy", "201");
    bus.wait_task(&del["upid"]).await;
    assert_eq!(
        bus.ok(
            "proxmox.wait-vm-presence",
            json!({"vmid": 201, "exists": false, "intervalMs": 250})
        )
        .await,
        json!({"vmid": 201, "exists": false})
    );
    assert!(sim.vm(201).is_none());

    // ---------------------------------------------------------- proxmox errors
    let m = bus
        .fail(
            "proxmox.vm-status",
            json!({"vmid": 777}),
            "PROXMOX_API_ERROR",
        )
        .await;
    assert!(
        m.contains("does not exist") && m.contains("HTTP 500"),
        "{m}"
    );
    sim.faults().force_task_outcome(
        1,
        Some("qmclone"),
        TaskOutcome::Error("storage full".into()),
    );
    let cl = bus
        .ok("proxmox.clone", json!({"vmid": 9000, "newid": 202}))
        .await;
    let m = bus
        .fail(
            "proxmox.wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
            "PROXMOX_TASK_FAILED",
        )
        .await;
    assert!(m.contains("storage full"), "{m}");
    sim.hold_tasks(true);
    let cl = bus
        .ok("proxmox.clone", json!({"vmid": 9000, "newid": 203}))
        .await;
    let m = bus
        .fail(
            "proxmox.wait-task",
            json!({"upid": cl["upid"], "timeoutMs": 1000, "intervalMs": 250}),
            "PROXMOX_TIMEOUT",
        )
        .await;
    assert!(m.contains("timed out"), "{m}");
    sim.hold_tasks(false);
    bus.fail(
        "proxmox.status",
        json!({"target": "badtoken"}),
        "PROXMOX_AUTH_FAILED",
    )
    .await;
    let m = bus
        .fail(
            "proxmox.list-vms",
            json!({"target": "nope"}),
            "PROXMOX_TARGET_UNKNOWN",
        )
        .await;
    assert!(m.contains("nope"), "{m}");
    // bad payloads (the agent checks them; nothing reaches PVE)
    let m = bus
        .fail("proxmox.clone", json!({"newid": 204}), "BAD_REQUEST")
        .await;
    assert!(m.contains("vmid required"), "{m}");
    let m = bus
        .fail("proxmox.start", json!({"vmid": 5}), "BAD_REQUEST")
        .await;
    assert!(m.contains("out of range"), "{m}");
    let m = bus
        .fail(
            "proxmox.update-config",
            json!({"vmid": 9000, "config": "memory=1"}),
            "BAD_REQUEST",
        )
        .await;
    assert!(m.contains("config must be an object"), "{m}");
    bus.fail(
        "proxmox.attach-cdrom",
        json!({"vmid": 9000, "isoPath": "local:iso/x.iso,media=disk"}),
        "BAD_REQUEST",
    )
    .await;
    bus.fail(
        "proxmox.upload-iso",
        json!({"isoName": "x.iso", "data": "%%% not base64"}),
        "BAD_REQUEST",
    )
    .await;
    // command types the agent does not know (dispatched as admin)
    for (ty, needle) in [
        ("proxmox.frobnicate", "Unknown proxmox action"),
        ("proxmox.ssh-frobnicate", "Unknown ssh action"),
        ("ssh.frobnicate", "Unknown ssh action"),
        ("docker.ps", "Unknown command type"),
    ] {
        let m = bus.fail(ty, json!({}), "UNKNOWN_COMMAND").await;
        assert!(m.contains(needle), "{ty}: {m}");
    }
    // the server refuses unknown scoped actions and non-object payloads
    for (path, body) in [
        (
            "/api/v1/vm-ops/proxmox/frobnicate",
            json!({"agent_id": agent_id, "params": {}}),
        ),
        (
            "/api/v1/vm-ops/ssh/frobnicate",
            json!({"agent_id": agent_id, "params": {}}),
        ),
        (
            "/api/v1/vm-ops/proxmox/status",
            json!({"agent_id": agent_id, "params": [1, 2]}),
        ),
        (
            "/api/v1/vm-ops/commands",
            json!({"agent_id": agent_id, "command_type": "proxmox.status", "payload": "x"}),
        ),
    ] {
        let (st, b) = server.call("POST", path, Some(body)).await;
        assert_eq!(st, 400, "{path}: {b}");
    }

    // ---------------------------------------------------------- SSH, both spellings
    let pw = std::fs::read_to_string(TEST_USER_PASSWORD_FILE).unwrap_or_else(|e| {
        panic!(
            "{TEST_USER_PASSWORD_FILE}: {e}; run agent-core/tests/setup-ssh-test-user.sh as root \
             (scripts/setup-test-env.sh does)"
        )
    });
    let pw = pw.trim();
    let host_fp = host_fingerprint(sshd.dir.path());
    let conf_dir = sshd.dir.path().join("qemu-server");
    for (n, p) in [(0u64, "proxmox.ssh-"), (1, "ssh.")] {
        let t = |a: &str| format!("{p}{a}");
        // status / test / bootstrap: key login, host key trusted on first use
        let st = bus.ok(&t("status"), json!({"target": "sim"})).await;
        assert_eq!(st["code"], "OK", "{st}");
        assert_eq!(st["connected"], true);
        assert_eq!(st["mode"], "key");
        assert_eq!(st["port"], sshd.port);
        assert_eq!(st["stdout"], "BOTMOX_SSH_OK");
        let known: Value = serde_json::from_str(
            &std::fs::read_to_string(agent.dir.join("known_hosts.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            known[format!("sim|127.0.0.1:{}", sshd.port)],
            host_fp.as_str(),
            "{known}"
        );
        let st = bus
            .ok(&t("test"), json!({"target": "sim", "timeoutMs": 5000}))
            .await;
        assert_eq!(st["code"], "OK", "{st}");
        let st = bus.ok(&t("bootstrap"), json!({"target": "sim"})).await;
        assert_eq!(st["bootstrap"], "validated", "{st}");
        // password login as the test user, over the password target
        let st = bus
            .ok(
                &t("test"),
                json!({"target": "simpw", "sshUsername": TEST_USER, "sshPassword": pw}),
            )
            .await;
        assert_eq!(st["code"], "OK", "{st}");
        assert_eq!(st["mode"], "password");
        assert_eq!(st["username"], TEST_USER);

        // write-config, then read it back with the OTHER spelling
        let vmid = 301 + n;
        let content = format!(
            "boot: order=scsi0\nargs: -smbios 'type=11,value=$(id)'\nEOF\nname: e2e-{vmid}\n"
        );
        let w = bus
            .ok(
                &t("write-config"),
                json!({"target": "sim", "vmid": vmid, "content": content}),
            )
            .await;
        assert_eq!(w["written"], true);
        let path = conf_dir.join(format!("{vmid}.conf"));
        assert_eq!(w["path"], path.to_str().unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
        let other = if n == 0 { "ssh." } else { "proxmox.ssh-" };
        let r = bus
            .ok(
                &format!("{other}read-config"),
                json!({"target": "sim", "vmid": vmid}),
            )
            .await;
        assert_eq!(r["config"], content.trim_end(), "{r}");

        // exec: allowlisted; unsafe allowed twice; a non-zero exit is a result
        let r = bus
            .ok(
                &t("exec"),
                json!({"target": "sim", "command": format!("qm status {vmid}")}),
            )
            .await;
        assert_eq!(r["allowlisted"], true, "{r}");
        let r = bus
            .ok(
                &t("exec"),
                json!({"target": "sim", "allowUnsafe": true,
                       "command": format!("cat {}; echo err >&2; exit 3", path.display())}),
            )
            .await;
        assert_eq!(r["stdout"], content.trim_end(), "{r}");
        assert_eq!(r["stderr"], "err", "{r}");
        assert_eq!(r["exitCode"], 3, "{r}");
        assert_eq!(r["allowlisted"], false, "{r}");
        let r = bus
            .ok(
                &t("exec"),
                json!({"target": "sshexit", "command": "qm status 1"}),
            )
            .await;
        assert_eq!(r["exitCode"], 7, "{r}");

        // failures, each with its code
        let bad = [
            (
                "exec",
                json!({"target": "sim", "command": "id"}),
                "SSH_COMMAND_FORBIDDEN",
            ),
            (
                "exec",
                json!({"target": "sshexit", "command": "id", "allowUnsafe": true}),
                "SSH_COMMAND_FORBIDDEN",
            ),
            (
                "exec",
                json!({"target": "nossh", "command": "qm status 1"}),
                "SSH_REQUIRED",
            ),
            (
                "exec",
                json!({"target": "simpw", "command": "qm status 1"}),
                "SSH_AUTH_FAILED",
            ),
            (
                "exec",
                json!({"target": "sshdown", "command": "qm status 1"}),
                "SSH_UNREACHABLE",
            ),
            (
                "exec",
                json!({"target": "tampered", "command": "qm status 1"}),
                "SSH_HOST_KEY_MISMATCH",
            ),
            (
                "exec",
                json!({"target": "sim", "command": "sleep 20", "allowUnsafe": true, "timeoutMs": 1000}),
                "SSH_EXEC_ERROR",
            ),
            (
                "read-config",
                json!({"target": "sim", "vmid": 999}),
                "SSH_READ_FAILED",
            ),
            (
                "read-config",
                json!({"target": "sshexit", "vmid": vmid}),
                "SSH_READ_FAILED",
            ),
            (
                "read-config",
                json!({"target": "nossh", "vmid": vmid}),
                "SSH_REQUIRED",
            ),
            (
                "write-config",
                json!({"target": "sshexit", "vmid": vmid, "content": "x"}),
                "SSH_WRITE_FAILED",
            ),
            (
                "write-config",
                json!({"target": "sim", "vmid": vmid}),
                "BAD_REQUEST",
            ),
            // a raw config file needs the target's allow_host_level_config
            (
                "write-config",
                json!({"target": "tampered", "vmid": vmid, "content": "args: -x"}),
                "TARGET_POLICY_FORBIDDEN",
            ),
            ("read-config", json!({"target": "sim"}), "BAD_REQUEST"),
            ("exec", json!({"target": "sim"}), "BAD_REQUEST"),
        ];
        for (a, params, code) in bad {
            let m = bus.fail(&t(a), params, code).await;
            if code == "SSH_EXEC_ERROR" {
                assert!(m.contains("did not finish within 1s"), "{m}");
            }
            if code == "SSH_HOST_KEY_MISMATCH" {
                assert!(m.contains(&host_fp), "names the offered key: {m}");
            }
        }
        // status/test never fail: the code is in the result
        let probes = [
            ("status", "nossh", "SSH_REQUIRED", false),
            ("test", "simpw", "SSH_AUTH_FAILED", false),
            ("status", "sshdown", "SSH_UNREACHABLE", false),
            ("test", "tampered", "SSH_HOST_KEY_MISMATCH", false),
            // the probe ran but exited 7
            ("status", "sshexit", "SSH_EXEC_ERROR", true),
        ];
        for (a, target, code, connected) in probes {
            let r = bus.ok(&t(a), json!({"target": target})).await;
            assert_eq!(r["code"], code, "{a} {target}: {r}");
            assert_eq!(r["connected"], connected, "{a} {target}: {r}");
            if code == "SSH_EXEC_ERROR" {
                assert!(
                    r["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("exited with 7"),
                    "{r}"
                );
            }
        }
    }
    // the tampered record was not silently replaced
    let known: Value =
        serde_json::from_str(&std::fs::read_to_string(agent.dir.join("known_hosts.json")).unwrap())
            .unwrap();
    assert_eq!(
        known[format!("tampered|127.0.0.1:{}", sshd.port)],
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );

    // ---------------------------------------------------------- coverage
    let missing: Vec<String> = PROXMOX_ACTIONS
        .iter()
        .map(|a| format!("proxmox.{a}"))
        .chain(SSH_ACTIONS.iter().map(|a| format!("ssh.{a}")))
        .filter(|t| !bus.succeeded.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "actions never run successfully: {missing:?}"
    );
    for code in [
        "SSH_REQUIRED",
        "SSH_AUTH_FAILED",
        "SSH_UNREACHABLE",
        "SSH_COMMAND_FORBIDDEN",
        "SSH_EXEC_ERROR",
        "UNKNOWN_COMMAND",
        "PROXMOX_API_ERROR",
        "BAD_REQUEST",
    ] {
        for family in ["proxmox.", "ssh."] {
            if family == "ssh." && code.starts_with("PROXMOX") {
                continue;
            }
            assert!(
                bus.failed
                    .iter()
                    .any(|(t, c)| c == code && t.starts_with(family)),
                "{code} never seen for {family}*"
            );
        }
    }

    // the agent is healthy after all that, and nothing is left over
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "online", "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 0, "{st}");
    assert!(agent.outbox_files().is_empty());
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "{}",
        agent.stderr()
    );
    sim.assert_no_violations();
    eprintln!(
        "every_action_through_server_agent_sim_and_sshd: {} command types succeeded, {} (type, code) failures, {:.1} s",
        bus.succeeded.len(),
        bus.failed.len(),
        started.elapsed().as_secs_f64()
    );
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(15)).await, 0);
    server.stop().await;
}
