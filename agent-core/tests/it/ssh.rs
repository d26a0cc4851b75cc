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
    // Stand-ins for the PVE tools, first on the session's PATH: they print
    // the argv they received, so a test sees exactly what ran.
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["qm", "pvesh"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nprintf '{tool}'\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done\necho\n"),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // sshd refuses to start without its privilege separation directory
    std::fs::create_dir_all("/run/sshd").expect("create /run/sshd (tests run as root)");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin yes\nPubkeyAuthentication yes\n\
         PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
         MaxAuthTries 6\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n\
         SetEnv PATH={d}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
        d = d.display()
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-f"])
        .arg(d.join("sshd_config"))
        .arg("-E")
        .arg(d.join("sshd.log"))
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
            allow_ssh_override: false,
            allow_host_level_config: false,
            iso_storage: None,
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

    let mut key_t = ssh_target(&sshd, "key", true, &conf_dir);
    key_t.config.allow_host_level_config = true; // ssh-write-config
    let mut pw_t = ssh_target(&sshd, "pw", false, &conf_dir);
    pw_t.secrets.ssh_private_key = None; // password auth with a wrong password
    pw_t.config.allow_ssh_override = true; // the test user comes with the command
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

/// The sshd's log (LogLevel VERBOSE) from byte `from` on.
fn sshd_log(sshd: &Sshd, from: usize) -> String {
    let log = std::fs::read_to_string(sshd.dir.path().join("sshd.log")).unwrap_or_default();
    log.get(from..).unwrap_or("").to_string()
}

/// Issue #11, finding 1: the `ssh-exec` allowlist was a set of regexes
/// (`^pvesh\s+get\s+/nodes/[^\s]+/qemu/?$`) whose match was then run by the
/// remote shell, so `$(…)`, backticks, `;`, `|`, `&&`, `>` and whitespace
/// other than spaces got through. Every bypass below must be refused with
/// `SSH_COMMAND_FORBIDDEN` before anything is sent, and nothing may run on
/// the host (the marker file `/tmp/p` of the original report stays absent);
/// the legitimate commands still run against the real sshd, with exactly
/// the argv the allowlist parsed (the stand-in `qm`/`pvesh` print it).
#[tokio::test]
async fn finding_1_ssh_exec_allowlist_bypass_is_refused() {
    let sshd = start_sshd();
    let conf_dir = sshd.dir.path().join("qemu-server");
    std::fs::create_dir_all(&conf_dir).unwrap();
    // allow_unsafe is off: `allowUnsafe` in the payload changes nothing
    let ctx = ssh_ctx(
        vec![ssh_target(&sshd, "key", false, &conf_dir)],
        KnownHosts::in_memory(),
    );
    let marker = Path::new("/tmp/p");
    let _ = std::fs::remove_file(marker);
    let long_node = "a".repeat(5000);
    let bypasses: Vec<String> = vec![
        // the reproduced one, verbatim
        "pvesh get /nodes/$(touch${IFS}/tmp/p)/qemu".into(),
        "pvesh get /nodes/`touch${IFS}/tmp/p`/qemu".into(),
        "pvesh get /nodes/pve;touch${IFS}/tmp/p;/qemu".into(),
        "pvesh get /nodes/pve|touch${IFS}/tmp/p|/qemu".into(),
        "pvesh get /nodes/pve&&touch${IFS}/tmp/p&&/qemu".into(),
        "pvesh get /nodes/pve>/tmp/p||/qemu".into(),
        "pvesh get /nodes/$IFS/qemu".into(),
        "pvesh get /nodes/${IFS}touch${IFS}/tmp/p/qemu".into(),
        "pvesh\tget\t/nodes/pve/qemu".into(),
        "qm\tstatus\t101".into(),
        "pvesh get\n/nodes/pve/qemu".into(),
        "qm status 101\ntouch /tmp/p".into(),
        "qm status 101\n".into(),
        "qm status 101\r".into(),
        "qm status 101\r\ntouch /tmp/p".into(),
        "qm status 101\0touch /tmp/p".into(),
        "qm\u{00A0}status 101".into(),
        "qm status\u{2003}101".into(),
        "qm status\u{3000}101".into(),
        "pvesh get /nodes/pve\u{2028}/qemu".into(),
        "qm status 101 ; touch /tmp/p".into(),
        "qm status `touch /tmp/p`".into(),
        "cat /etc/pve/qemu-server/101.conf && touch /tmp/p".into(),
        "cat /etc/pve/qemu-server/101.conf>/tmp/p".into(),
        "qm sendkey 101 ctrl$(touch${IFS}/tmp/p)".into(),
        "qm sendkey 101 --skiplock".into(),
        "pvesh get /nodes/../../qemu".into(),
        format!("pvesh get /nodes/{long_node}/qemu"),
        format!("qm status 101{}", " ".repeat(300)),
    ];
    for b in &bypasses {
        for unsafe_asked in [false, true] {
            let e = exec_err(
                &ctx,
                "proxmox.ssh-exec",
                json!({"target": "key", "command": b, "allowUnsafe": unsafe_asked}),
            )
            .await;
            assert_eq!(e.code, "SSH_COMMAND_FORBIDDEN", "{b:?}: {e}");
        }
    }
    assert!(!marker.exists(), "a bypass ran on the host");

    for (command, stdout) in [
        ("qm status 101", "qm[status][101]"),
        ("QM start 9000", "qm[start][9000]"),
        ("qm  shutdown   7", "qm[shutdown][7]"),
        (
            "qm sendkey 101 ctrl-alt-delete",
            "qm[sendkey][101][ctrl-alt-delete]",
        ),
        ("pvesh get /nodes/pve/qemu", "pvesh[get][/nodes/pve/qemu]"),
        (
            "pvesh get /nodes/pve-2/qemu/",
            "pvesh[get][/nodes/pve-2/qemu]",
        ),
        (
            "pvesh get /cluster/resources/",
            "pvesh[get][/cluster/resources]",
        ),
    ] {
        let r = exec(
            &ctx,
            "ssh.exec",
            json!({"target": "key", "command": command}),
        )
        .await;
        assert_eq!(r["allowlisted"], true, "{command}: {r}");
        assert_eq!(r["exitCode"], 0, "{command}: {r}");
        assert_eq!(r["stdout"], stdout, "{command}: {r}");
    }
    // cat runs the real cat on the fixed path (absent here: exit 1)
    let r = exec(
        &ctx,
        "ssh.exec",
        json!({"target": "key", "command": "cat /etc/pve/qemu-server/101.conf"}),
    )
    .await;
    assert_eq!(r["allowlisted"], true, "{r}");
    assert!(
        r["stderr"]
            .as_str()
            .unwrap_or("")
            .contains("/etc/pve/qemu-server/101.conf"),
        "{r}"
    );
    assert!(!marker.exists());
}

/// Issue #11, finding 2: a payload that points SSH at another host/port
/// (`sshHost`/`sshPort`/`port`/`sshUsername`) used to get the target's
/// stored SSH password, SSH key or even the Proxmox password, and the new
/// host's key was trusted on first use. A second sshd on loopback plays the
/// "evil" host: it must see no authentication attempt at all while the
/// target does not allow overrides (`TARGET_POLICY_FORBIDDEN`), nor when it
/// does but the payload brings no credentials of its own (`SSH_REQUIRED`);
/// the SFTP fallback of the provisioning ISO follows the same rule. Only a
/// payload's own password reaches it (the positive control that proves the
/// log check sees attempts).
#[tokio::test]
async fn finding_2_stored_secrets_never_go_to_a_payload_chosen_host() {
    let sim = sim().await;
    let good = start_sshd();
    let evil = start_sshd();
    let conf_dir = good.dir.path().join("qemu-server");
    std::fs::create_dir_all(&conf_dir).unwrap();

    // only a Proxmox password stored (the report's case)
    let mut victim = ssh_target(&good, "victim", false, &conf_dir);
    victim.secrets = TargetSecrets {
        password: Some("stored-proxmox-password".into()),
        ..TargetSecrets::default()
    };
    // a stored SSH password
    let mut sshpw = ssh_target(&good, "sshpw", false, &conf_dir);
    sshpw.secrets = TargetSecrets {
        ssh_password: Some("stored-ssh-password".into()),
        ..TargetSecrets::default()
    };
    // a stored key (ssh_target's default), overrides allowed but no
    // credentials in the payload
    let keyed = ssh_target(&good, "keyed", false, &conf_dir);
    let mut open = ssh_target(&good, "open", false, &conf_dir);
    open.config.allow_ssh_override = true;
    // a Proxmox target with SSH for the SFTP fallback
    let mut iso = token_target(&sim, "iso");
    iso.config.ssh = Some(ssh_config("127.0.0.1", good.port));
    iso.secrets.ssh_password = Some("stored-ssh-password".into());
    let ctx = ssh_ctx(
        vec![victim, sshpw, keyed, open, iso],
        KnownHosts::in_memory(),
    );

    std::thread::sleep(Duration::from_millis(300)); // the start probe's log lines
    let baseline = sshd_log(&evil, 0).len();
    let ep = evil.port;
    for (target, payload, code) in [
        (
            "victim",
            json!({"sshHost": "127.0.0.1", "sshPort": ep}),
            "TARGET_POLICY_FORBIDDEN",
        ),
        (
            "victim",
            json!({"sshHost": "localhost", "port": ep}),
            "TARGET_POLICY_FORBIDDEN",
        ),
        ("sshpw", json!({"sshPort": ep}), "TARGET_POLICY_FORBIDDEN"),
        (
            "sshpw",
            json!({"sshPort": ep, "sshUsername": "admin"}),
            "TARGET_POLICY_FORBIDDEN",
        ),
        ("keyed", json!({"sshPort": ep}), "TARGET_POLICY_FORBIDDEN"),
        (
            "keyed",
            json!({"sshUsername": "postgres"}),
            "TARGET_POLICY_FORBIDDEN",
        ),
        ("open", json!({"sshPort": ep}), "SSH_REQUIRED"),
        (
            "open",
            json!({"sshPort": ep, "sshPassphrase": "x"}),
            "SSH_REQUIRED",
        ),
    ] {
        let mut p = payload.clone();
        p["target"] = json!(target);
        for probe in ["ssh.test", "proxmox.ssh-status", "ssh.bootstrap"] {
            let r = exec(&ctx, probe, p.clone()).await;
            assert_eq!(r["code"], code, "{probe} {p}: {r}");
            assert_eq!(r["connected"], false, "{probe} {p}: {r}");
        }
        let mut e = p.clone();
        e["command"] = json!("qm status 1");
        let err = exec_err(&ctx, "proxmox.ssh-exec", e).await;
        assert_eq!(err.code, code, "{p}: {err}");
        let mut r = p.clone();
        r["vmid"] = json!(101);
        let err = exec_err(&ctx, "proxmox.ssh-read-config", r).await;
        assert_eq!(err.code, code, "{p}: {err}");
    }
    // the SFTP fallback of create-provision-iso
    sim.faults().fail_next(1, 403, Some("/upload"));
    let e = exec_err(
        &ctx,
        "proxmox.create-provision-iso",
        json!({"target": "iso", "vmid": 9000, "sshPort": ep,
               "files": {"Autounattend.xml": "PHVuYXR0ZW5kLz4="}}),
    )
    .await;
    assert_eq!(e.code, "ISO_UPLOAD_FAILED", "{e}");
    assert!(
        e.message.contains("TARGET_POLICY_FORBIDDEN"),
        "{}",
        e.message
    );

    let log = sshd_log(&evil, baseline);
    for needle in [
        "Failed",
        "Accepted",
        "Invalid user",
        "Postponed",
        "authenticat",
        "Connection from",
    ] {
        assert!(
            !log.contains(needle),
            "the evil sshd saw {needle:?}:\n{log}"
        );
    }

    // positive control: overrides allowed + the payload's own password →
    // that password (and only it) is tried on the evil host
    let r = exec(
        &ctx,
        "ssh.test",
        json!({"target": "open", "sshPort": ep, "sshPassword": "payload-password"}),
    )
    .await;
    assert_eq!(r["code"], "SSH_AUTH_FAILED", "{r}");
    assert_eq!(r["mode"], "password", "{r}");
    let log = sshd_log(&evil, baseline);
    assert!(log.contains("Failed password for root"), "{log}");
    assert_eq!(log.matches("Failed password").count(), 1, "{log}");
    assert!(!log.contains("publickey"), "{log}");

    // the configured host still gets the stored secrets
    let r = exec(&ctx, "ssh.test", json!({"target": "keyed"})).await;
    assert_eq!(r["code"], "OK", "{r}");
    let r = exec(
        &ctx,
        "ssh.test",
        json!({"target": "keyed", "sshHost": "127.0.0.1", "sshPort": good.port, "sshUsername": "root"}),
    )
    .await;
    assert_eq!(
        r["code"], "OK",
        "the configured endpoint is no override: {r}"
    );
    sim.assert_no_violations();
}
