//! The `botmox-agent` binary: targets add/list/test/remove, pair, status,
//! diagnostics — with the 0600 file store and with the kernel keyring inside
//! `keyctl session -` (package keyutils). Afterwards every file the agent
//! wrote (config, logs, diagnostics) is searched for the secret values.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use botmox_protocol::{PairingBundle, ProxmoxHint};
use serde_json::Value;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_botmox-agent");

fn agent(dir: &Path, store: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .arg("--config-dir")
        .arg(dir)
        .args(["--secret-store", store])
        .args(args)
        .env_remove("BOTMOX_AGENT_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run botmox-agent");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every file under `dir` except the file secret store itself.
fn assert_no_secret_in(dir: &Path, secrets: &[&str]) {
    for entry in walk(dir) {
        if entry.ends_with("secrets/secrets.json") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for s in secrets {
            assert!(
                !text.contains(s),
                "secret {s:?} found in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn bundle(fp: &str) -> String {
    PairingBundle {
        v: 1,
        pairing_code: "bmxp_cli0123456789abcdef".into(),
        // nothing listens there: `pair` must fail with a clear message
        server_url: "https://127.0.0.1:1".into(),
        server_cert_sha256: Some(fp.into()),
        proxmox: Some(ProxmoxHint {
            url: Some("https://pve:8006".into()),
            username: Some("root@pam".into()),
            node: Some("pve".into()),
        }),
    }
    .encode()
}

#[tokio::test]
async fn cli_with_file_store_keeps_secrets_out_of_config_logs_and_diagnostics() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fp = sim.fingerprint();
    let url = sim.url();
    let token_id = sim.token_id().to_string();
    let secret = sim.token_secret().to_string();
    let password = sim.password().to_string();
    let username = sim.username().to_string();
    let node = sim.node().to_string();

    let (d2, fp2, url2, s2) = (d.to_path_buf(), fp.clone(), url.clone(), secret.clone());
    let tid = token_id.clone();
    let node2 = node.clone();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        agent(
            &d2,
            "file",
            &[
                "targets",
                "add",
                "--id",
                "pve1",
                "--url",
                &url2,
                "--node",
                &node2,
                "--token-id",
                &tid,
                "--token-secret-stdin",
                "--fingerprint",
                &fp2,
            ],
            Some(&format!("{s2}\n")),
        )
    })
    .await
    .unwrap();
    assert!(ok, "add: {out} {err}");
    assert!(
        err.contains("plain file"),
        "the file store must warn: {err}"
    );

    let (d2, url2, pw2, user2, node2) = (
        d.to_path_buf(),
        url.clone(),
        password.clone(),
        username.clone(),
        node.clone(),
    );
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        agent(
            &d2,
            "file",
            &[
                "targets",
                "add",
                "--id",
                "pw",
                "--url",
                &url2,
                "--node",
                &node2,
                "--username",
                &user2,
                "--password-stdin",
                "--insecure",
            ],
            Some(&pw2),
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("TLS verification is disabled"), "{err}");

    let d2 = d.to_path_buf();
    let results = tokio::task::spawn_blocking(move || {
        let test1 = agent(&d2, "file", &["targets", "test", "pve1"], None);
        let test2 = agent(&d2, "file", &["targets", "test", "pw"], None);
        let list = agent(&d2, "file", &["targets", "list", "--json"], None);
        let pair = agent(&d2, "file", &["pair", &bundle(&"ab".repeat(32))], None);
        let bad_pair = agent(&d2, "file", &["pair", "BMX-ABCD1234"], None);
        let status = agent(&d2, "file", &["status", "--json"], None);
        let diag = agent(
            &d2,
            "file",
            &["diagnostics", "-o", d2.join("diag.json").to_str().unwrap()],
            None,
        );
        (test1, test2, list, pair, bad_pair, status, diag)
    })
    .await
    .unwrap();
    let (test1, test2, list, pair, bad_pair, status, diag) = results;
    assert!(test1.0, "test pve1: {} {}", test1.1, test1.2);
    let t: Value = serde_json::from_str(&test1.1).unwrap();
    assert_eq!(t["version"], "9.1.2");
    assert_eq!(t["tls"], "pinned");
    assert!(test2.0, "test pw: {} {}", test2.1, test2.2);
    let t: Value = serde_json::from_str(&test2.1).unwrap();
    assert_eq!(t["insecure"], true);
    let l: Value = serde_json::from_str(&list.1).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 2);
    assert!(!pair.0, "pair to a closed port must fail: {}", pair.1);
    assert!(pair.2.contains("SERVER_UNREACHABLE"), "{}", pair.2);
    assert!(pair.2.contains("127.0.0.1:1"), "{}", pair.2);
    assert!(!bad_pair.0);
    assert!(bad_pair.2.contains("--server-url"), "{}", bad_pair.2);
    let s: Value = serde_json::from_str(&status.1).unwrap();
    assert_eq!(s["secret_store"], "file");
    assert_eq!(s["insecure_targets"], serde_json::json!(["pw"]));
    assert!(
        s["server"].is_null(),
        "a failed pairing stores nothing: {s}"
    );
    assert_eq!(s["runtime"]["connection"], "never_started", "{s}");
    assert!(diag.0, "{}", diag.2);
    let dg: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("diag.json")).unwrap()).unwrap();
    assert_eq!(dg["targets"][0]["has_api_token_secret"], true);
    assert_eq!(dg["has_pairing_code"], false);
    assert_eq!(dg["has_agent_token"], false);
    assert!(
        !dg["logs"].as_array().unwrap().is_empty(),
        "diagnostics carry log lines"
    );
    assert!(d.join("logs").read_dir().unwrap().count() > 0);

    assert_no_secret_in(d, &[&secret, &password, "bmxp_cli0123456789abcdef"]);
    let cfg = std::fs::read_to_string(d.join("config.toml")).unwrap();
    assert!(cfg.contains("pve1") && cfg.contains("insecure = true"));

    let d2 = d.to_path_buf();
    let rm =
        tokio::task::spawn_blocking(move || agent(&d2, "file", &["targets", "remove", "pw"], None))
            .await
            .unwrap();
    assert!(rm.0, "{}", rm.2);
    let store = std::fs::read_to_string(d.join("secrets/secrets.json")).unwrap();
    assert!(
        !store.contains(&password),
        "removed target's secrets are deleted"
    );
    assert!(store.contains(&secret));
    sim.assert_no_violations();
}

/// The kernel keyutils store, inside a fresh session keyring (the default
/// session keyring answers EACCES in containers). Needs `keyctl` (keyutils).
#[tokio::test]
async fn cli_with_kernel_keyring_in_keyctl_session() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let secret_file = dir.path().join("token.txt");
    std::fs::write(&secret_file, sim.token_secret()).unwrap();
    let script = format!(
        "set -e\n\
         B='{bin}'; D='{d}'\n\
         \"$B\" --config-dir \"$D\" --secret-store keyring targets add --id k1 --url '{url}' --node '{node}' \
           --token-id '{tid}' --token-secret-stdin --fingerprint '{fp}' < '{sf}'\n\
         rm -f '{sf}'\n\
         \"$B\" --config-dir \"$D\" targets test k1\n\
         \"$B\" --config-dir \"$D\" diagnostics -o \"$D/diag.json\"\n\
         \"$B\" --config-dir \"$D\" status --json\n",
        bin = BIN,
        d = d.display(),
        url = sim.url(),
        node = sim.node(),
        tid = sim.token_id(),
        fp = sim.fingerprint(),
        sf = secret_file.display(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("keyctl")
            .args(["session", "-", "sh", "-c", &script])
            .output()
            .expect("keyctl is required (apt-get install keyutils)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "keyring run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("\"version\": \"9.1.2\""), "{stdout}");
    assert!(stdout.contains("\"secret_store\": \"keyring\""), "{stdout}");
    assert!(
        !dir.path().join("secrets").exists(),
        "no file store with the keyring"
    );
    assert_no_secret_in(dir.path(), &[sim.token_secret()]);
    sim.assert_no_violations();
}

/// The Secret Service store against a real gnome-keyring-daemon on a private
/// session bus (`dbus-run-session`; packages gnome-keyring and dbus).
#[tokio::test]
async fn cli_with_secret_service_under_dbus_run_session() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let secret_file = dir.path().join("token.txt");
    std::fs::write(&secret_file, sim.token_secret()).unwrap();
    let script = format!(
        "set -e\n\
         eval \"$(printf '%s' test-unlock | gnome-keyring-daemon --unlock --components=secrets | sed 's/^/export /')\"\n\
         B='{bin}'; D='{d}'\n\
         \"$B\" --config-dir \"$D\" --secret-store secret-service targets add --id s1 --url '{url}' --node '{node}' \
           --token-id '{tid}' --token-secret-stdin --fingerprint '{fp}' < '{sf}'\n\
         rm -f '{sf}'\n\
         \"$B\" --config-dir \"$D\" targets test s1\n\
         \"$B\" --config-dir \"$D\" status --json\n",
        bin = BIN,
        d = d.display(),
        url = sim.url(),
        node = sim.node(),
        tid = sim.token_id(),
        fp = sim.fingerprint(),
        sf = secret_file.display(),
    );
    let home2 = home.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("dbus-run-session")
            .args(["--", "sh", "-c", &script])
            .env("HOME", &home2)
            .env("XDG_DATA_HOME", home2.join(".local/share"))
            .env("XDG_RUNTIME_DIR", &home2)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .output()
            .expect("dbus-run-session is required (apt-get install dbus gnome-keyring)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "secret-service run failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("\"version\": \"9.1.2\""), "{stdout}");
    assert!(
        stdout.contains("\"secret_store\": \"secret-service\""),
        "{stdout}"
    );
    assert!(!dir.path().join("secrets").exists());
    let cfg = std::fs::read_to_string(dir.path().join("config.toml")).unwrap();
    assert!(cfg.contains("secret_store = \"secret-service\""), "{cfg}");
    assert!(!cfg.contains(sim.token_secret()));
    assert_no_secret_in(&dir.path().join("logs"), &[sim.token_secret()]);
    sim.assert_no_violations();
}

/// Windows service mode exists only on Windows; on Linux every `service`
/// subcommand fails and points to the systemd unit instead of pretending.
#[test]
fn service_commands_point_to_systemd_on_linux() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        &["service", "install"][..],
        &["service", "uninstall"],
        &["service", "run"],
    ] {
        let (ok, _out, err) = agent(dir.path(), "file", sub, None);
        assert!(!ok, "{sub:?} must fail on Linux");
        assert!(
            err.contains("only available on Windows") && err.contains("systemd"),
            "{sub:?}: {err}"
        );
    }
}
