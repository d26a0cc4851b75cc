//! The SSH executor against a real OpenSSH sshd on 127.0.0.1 with its own
//! temporary config and host key (needs `openssh-server`; runs as root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_core::executor::{ExecContext, Target, TargetSecrets, Targets};
use agent_core::ssh::KnownHosts;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::*;

const TEST_USER: &str = "botmox-ssh-test";
const TEST_USER_PASSWORD_FILE: &str = "/var/lib/botmox-test/ssh-password";

struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `/usr/sbin/sshd -D -f CONFIG -e` with key auth for root through an
/// AuthorizedKeysFile in the temp dir, and password auth enabled (used only
/// for the wrong-password case).
fn start_sshd() -> Sshd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    // sshd refuses to start without its privilege separation directory
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (tests run as root)");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
         PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         MaxAuthTries 6\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
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
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Sshd { child, port, dir }
}

fn ssh_target(sshd: &Sshd, id: &str, allow_unsafe: bool, conf_dir: &Path) -> Target {
    let mut cfg = ssh_config("127.0.0.1", sshd.port);
    cfg.allow_unsafe = allow_unsafe;
    cfg.qemu_config_dir = Some(conf_dir.display().to_string());
    Target {
        config: agent_core::config::TargetConfig {
            id: id.into(),
            label: None,
            url: "https://127.0.0.1:8006".into(),
            node: "pve".into(),
            auth: agent_core::config::AuthKind::Password,
            token_id: None,
            username: Some("root@pam".into()),
            tls: Default::default(),
            ssh: Some(cfg),
        },
        secrets: TargetSecrets {
            password: Some("not-the-root-password".into()),
            ssh_private_key: Some(
                std::fs::read_to_string(sshd.dir.path().join("client_key")).unwrap(),
            ),
            ..TargetSecrets::default()
        },
    }
}

fn ssh_ctx(targets: Vec<Target>, known: KnownHosts) -> ExecContext {
    let active = targets.first().map(|t| t.config.id.clone());
    ExecContext::new(
        Arc::new(Targets::new(targets, active, known)),
        CancellationToken::new(),
    )
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

#[tokio::test]
async fn ssh_against_real_openssh() {
    let sshd = start_sshd();
    let conf_dir: PathBuf = sshd.dir.path().join("qemu-server");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let known_file = sshd.dir.path().join("known_hosts.json");
    let known = KnownHosts::new(known_file.clone());

    let key_t = ssh_target(&sshd, "key", true, &conf_dir);
    let mut pw_t = ssh_target(&sshd, "pw", false, &conf_dir);
    pw_t.secrets.ssh_private_key = None; // password auth with a wrong password
    let mut none_t = ssh_target(&sshd, "none", false, &conf_dir);
    none_t.secrets = TargetSecrets::default();
    let mut down_t = ssh_target(&sshd, "down", false, &conf_dir);
    down_t.config.ssh.as_mut().unwrap().port = free_port();
    let mut strict_t = ssh_target(&sshd, "strict", false, &conf_dir);
    strict_t.config.id = "strict".into();
    let ctx = ssh_ctx(vec![key_t, pw_t, none_t, down_t, strict_t], known.clone());

    // key auth OK; the host key is trusted on first use and recorded
    let st = exec(&ctx, "proxmox.ssh-status", json!({"target": "key"})).await;
    assert_eq!(st["code"], "OK", "{st}");
    assert_eq!(st["connected"], true);
    assert_eq!(st["mode"], "key");
    let fp = host_fingerprint(sshd.dir.path());
    assert_eq!(
        known.get("key", "127.0.0.1", sshd.port).as_deref(),
        Some(fp.as_str())
    );
    assert!(std::fs::read_to_string(&known_file).unwrap().contains(&fp));
    // and re-used on the next connection
    assert_eq!(
        exec(&ctx, "ssh.test", json!({"target": "key"})).await["code"],
        "OK"
    );

    // exec: allowlisted runs; others are forbidden unless allowed twice
    let r = exec(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "key", "command": "qm status 101"}),
    )
    .await;
    assert_eq!(r["allowlisted"], true);
    let r = exec(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "key", "command": "echo out; echo err >&2; exit 3", "allowUnsafe": true}),
    )
    .await;
    assert_eq!(r["stdout"], "out");
    assert_eq!(r["stderr"], "err");
    assert_eq!(r["exitCode"], 3);
    assert_eq!(r["allowlisted"], false);
    let e = exec_err(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "key", "command": "id"}),
    )
    .await;
    assert_eq!(e.code, "SSH_COMMAND_FORBIDDEN");
    let e = exec_err(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "strict", "command": "id", "allowUnsafe": true}),
    )
    .await;
    assert_eq!(e.code, "SSH_COMMAND_FORBIDDEN");

    // write-config / read-config round trip, with heredoc-looking content
    let content = "boot: order=scsi0\nargs: -smbios 'type=11,value=x'\nEOF\nBOTMOX_VM_CONFIG_X\n";
    let w = exec(
        &ctx,
        "proxmox.ssh-write-config",
        json!({"target": "key", "vmid": 101, "content": content}),
    )
    .await;
    assert_eq!(w["written"], true);
    assert_eq!(
        std::fs::read_to_string(conf_dir.join("101.conf")).unwrap(),
        content
    );
    let r = exec(
        &ctx,
        "proxmox.ssh-read-config",
        json!({"target": "key", "vmid": 101}),
    )
    .await;
    assert_eq!(r["config"], content.trim_end());
    let e = exec_err(
        &ctx,
        "proxmox.ssh-read-config",
        json!({"target": "key", "vmid": 999}),
    )
    .await;
    assert_eq!(e.code, "SSH_READ_FAILED");

    // password auth with the user made by tests/setup-ssh-test-user.sh
    let pw = std::fs::read_to_string(TEST_USER_PASSWORD_FILE).unwrap_or_else(|e| {
        panic!(
            "{TEST_USER_PASSWORD_FILE}: {e}; run agent-core/tests/setup-ssh-test-user.sh as root \
             (scripts/setup-test-env.sh does) to create the SSH test user"
        )
    });
    let st = exec(
        &ctx,
        "proxmox.ssh-test",
        json!({"target": "pw", "sshUsername": TEST_USER, "sshPassword": pw.trim()}),
    )
    .await;
    assert_eq!(st["code"], "OK", "{st}");
    assert_eq!(st["mode"], "password");
    assert_eq!(st["username"], TEST_USER);
    let r = exec(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "pw", "sshUsername": TEST_USER, "sshPassword": pw.trim(), "command": "QM status 7"}),
    )
    .await;
    assert_eq!(r["allowlisted"], true);

    // wrong password
    let st = exec(&ctx, "proxmox.ssh-test", json!({"target": "pw"})).await;
    assert_eq!(st["code"], "SSH_AUTH_FAILED", "{st}");
    assert_eq!(st["mode"], "password");
    let e = exec_err(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "pw", "command": "qm status 1"}),
    )
    .await;
    assert_eq!(e.code, "SSH_AUTH_FAILED");
    // nothing configured
    let st = exec(&ctx, "proxmox.ssh-status", json!({"target": "none"})).await;
    assert_eq!(st["code"], "SSH_REQUIRED");
    assert_eq!(st["configured"], false);
    let e = exec_err(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "none", "command": "qm status 1"}),
    )
    .await;
    assert_eq!(e.code, "SSH_REQUIRED");
    // nothing listening
    let st = exec(&ctx, "proxmox.ssh-status", json!({"target": "down"})).await;
    assert_eq!(st["code"], "SSH_UNREACHABLE", "{st}");
    let e = exec_err(
        &ctx,
        "proxmox.ssh-exec",
        json!({"target": "down", "command": "qm status 1"}),
    )
    .await;
    assert_eq!(e.code, "SSH_UNREACHABLE");

    // a changed host key is refused
    let tampered = KnownHosts::new(sshd.dir.path().join("known_tampered.json"));
    let ctx2 = ssh_ctx(
        vec![ssh_target(&sshd, "key", true, &conf_dir)],
        tampered.clone(),
    );
    // first use trusts the real key; then pretend the recorded key differs
    assert_eq!(
        exec(&ctx2, "proxmox.ssh-status", json!({})).await["code"],
        "OK"
    );
    tampered.forget("key", "127.0.0.1", sshd.port);
    std::fs::write(
        sshd.dir.path().join("known_tampered.json"),
        format!(
            "{{\"key|127.0.0.1:{}\": \"SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}}",
            sshd.port
        ),
    )
    .unwrap();
    let ctx3 = ssh_ctx(
        vec![ssh_target(&sshd, "key", true, &conf_dir)],
        KnownHosts::new(sshd.dir.path().join("known_tampered.json")),
    );
    let st = exec(&ctx3, "proxmox.ssh-status", json!({})).await;
    assert_eq!(st["code"], "SSH_HOST_KEY_MISMATCH", "{st}");
    let e = exec_err(&ctx3, "proxmox.ssh-exec", json!({"command": "qm status 1"})).await;
    assert_eq!(e.code, "SSH_HOST_KEY_MISMATCH");
    assert!(e.message.contains(&fp), "{}", e.message);
}

/// `create-provision-iso` falls back to SFTP when the PVE API refuses the
/// upload (here an injected 403), writing into the storage's ISO directory.
#[tokio::test]
async fn provision_iso_sftp_fallback_when_the_api_refuses() {
    let sim = sim().await;
    let sshd = start_sshd();
    let mut t = token_target(&sim, "pve1");
    let mut ssh = ssh_config("127.0.0.1", sshd.port);
    ssh.iso_dir = Some(sim.data_dir().join("local/iso").display().to_string());
    t.config.ssh = Some(ssh);
    t.secrets.ssh_private_key =
        Some(std::fs::read_to_string(sshd.dir.path().join("client_key")).unwrap());
    let no_ssh = token_target(&sim, "nossh");
    let ctx = ssh_ctx(vec![t, no_ssh], KnownHosts::in_memory());

    let files = json!({"Autounattend.xml": "PHVuYXR0ZW5kLz4="});
    sim.faults().fail_next(1, 403, Some("/upload"));
    let r = exec(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"vmid": 9000, "isoName": "p.iso", "files": files}),
    )
    .await;
    assert_eq!(r["method"], "sftp", "{r}");
    assert_eq!(r["isoPath"], "local:iso/p.iso");
    let iso = sim.data_dir().join("local/iso/p.iso");
    let out = run_tool("isoinfo", &["-l", "-J", "-i", iso.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Autounattend.xml"));
    // PVE sees the file: it can be attached
    let cl = exec(&ctx, "proxmox.clone", json!({"vmid": 9000, "newid": 150})).await;
    exec(
        &ctx,
        "proxmox.wait-task",
        json!({"upid": cl["upid"], "intervalMs": 250}),
    )
    .await;
    exec(
        &ctx,
        "proxmox.attach-cdrom",
        json!({"vmid": 150, "isoPath": "local:iso/p.iso"}),
    )
    .await;

    sim.faults().fail_next(1, 403, Some("/upload"));
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"target": "nossh", "vmid": 9000, "files": files}),
    )
    .await;
    assert_eq!(e.code, "ISO_UPLOAD_FAILED");
    assert!(e.message.contains("no SSH configured"), "{}", e.message);
    sim.assert_no_violations();
}
