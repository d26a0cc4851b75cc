//! Secrets for this agent, end to end: the REAL control-server (in-process,
//! HTTPS with the pinned self-signed certificate), the REAL `botmox-agent`
//! binary (`pair`, `run`, `secret get`) and the admin CLI's code path
//! (`control-server admin secret put --agent`, with the plaintext on its
//! input): the agent makes its X25519 key at pairing, keeps the private half
//! in its secret store (the kernel keyring inside `keyctl session -`, or
//! the 0600 file store), registers the public half, and decrypts what the
//! CLI sealed to it — while the server only ever holds the envelope.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use botmox_protocol::envelope::AgentKeyPair;
use control_server::cli::SecretCommand;
use control_server::config::Config;
use control_server::domains::accounts::AccountsService;
use serde_json::{json, Value};

use crate::runtime::{wait_until, walk, Agent, Server};

const BIN: &str = env!("CARGO_BIN_EXE_botmox-agent");

/// `control-server admin secret put --agent ID --label L [--field F]` with
/// `plaintext` as its standard input, on the running server's database and
/// data dir; returns the new secret's id.
async fn cli_put(server: &Server, agent: &str, label: &str, plaintext: &str) -> String {
    let cfg = Config::from_settings(server.settings.clone()).expect("server config");
    let db = server.running.as_ref().expect("server running").db.clone();
    let accounts = Arc::new(AccountsService::new(db.clone(), &cfg).expect("accounts"));
    let secrets = control_server::admin::secrets_service(&db, &cfg, accounts).expect("secrets");
    let meta = control_server::admin::secret_cmd(
        &secrets,
        SecretCommand::Put {
            agent: agent.to_string(),
            label: label.to_string(),
            field: None,
        },
        &mut format!("{plaintext}\n").as_bytes(),
    )
    .await
    .expect("admin secret put");
    serde_json::to_value(&meta).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn agent_view(server: &Server, id: &str) -> Value {
    let (st, body) = server
        .call("GET", &format!("/api/v1/agents/{id}"), None)
        .await;
    assert_eq!(st, 200, "{body}");
    body["data"].clone()
}

/// A secret the server seals (`value`), bound to `agent` unless `bind` is
/// false; returns its id.
async fn api_put(server: &Server, agent: &str, value: &str, bind: bool) -> String {
    let (st, body) = server
        .call(
            "POST",
            "/api/v1/secrets",
            Some(json!({"label": "server-sealed", "value": value})),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_string();
    if bind {
        let (st, body) = server
            .call(
                "POST",
                "/api/v1/secrets/bindings",
                Some(json!({"scope_type": "agent", "scope_id": agent, "secret_ref": id, "field_name": value})),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    id
}

/// No file under `dir` (but `except`) contains any of `needles`.
fn assert_absent(dir: &Path, except: &[&Path], needles: &[&str]) {
    for f in walk(dir) {
        if except.iter().any(|e| f == *e) {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for n in needles {
            assert!(!text.contains(n), "{n:?} found in {}", f.display());
        }
    }
}

/// The kernel keyring (inside a fresh `keyctl session -`, package
/// keyutils): `pair` makes the key there and registers its public half;
/// the CLI seals a secret to it; `secret get` decrypts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_decrypts_a_cli_secret_with_its_key_in_the_kernel_keyring() {
    let mut server = Server::start("self-signed", 120).await;
    server.login().await;
    let (agent_id, bundle, _) = server.pairing().await;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let dir = d.join("config");
    let script = format!(
        "set -e\n\
         B='{BIN}'; D='{d}'\n\
         \"$B\" --config-dir \"$D/config\" --secret-store keyring pair '{bundle}' > \"$D/pair.out\"\n\
         touch \"$D/paired\"\n\
         i=0; while [ ! -s \"$D/go\" ]; do sleep 0.1; i=$((i+1)); [ $i -lt 600 ] || exit 9; done\n\
         \"$B\" --config-dir \"$D/config\" secret get \"$(cat \"$D/go\")\" -o \"$D/out.bin\"\n\
         \"$B\" --config-dir \"$D/config\" secret get \"$(cat \"$D/go2\")\" > \"$D/stdout.bin\"\n\
         if \"$B\" --config-dir \"$D/config\" secret get \"$(cat \"$D/unbound\")\" 2> \"$D/unbound.err\"; then exit 8; fi\n",
        d = d.display(),
    );
    let job = tokio::task::spawn_blocking(move || {
        Command::new("keyctl")
            .args(["session", "-", "sh", "-c", &script])
            .output()
            .expect("keyctl is required (apt-get install keyutils)")
    });
    wait_until(
        "pair inside the keyctl session",
        Duration::from_secs(60),
        || d.join("paired").exists() || job.is_finished(),
    )
    .await;
    assert!(
        d.join("paired").exists(),
        "pair failed: {:?}",
        job.await.unwrap()
    );
    // The public half is on the server; the private half is not on disk.
    let view = agent_view(&server, &agent_id).await;
    let key_id = view["public_key_id"]
        .as_str()
        .expect("key registered at pairing");
    assert!(
        !dir.join("secrets").exists(),
        "no file store with the keyring"
    );

    let plaintext = "keyring-decrypted-secret-93ad";
    let cli_secret = cli_put(&server, &agent_id, "db password", plaintext).await;
    let server_secret = api_put(&server, &agent_id, "server-sealed-for-keyring-51e0", true).await;
    let unbound = api_put(&server, &agent_id, "not-bound-to-anyone-77aa", false).await;
    std::fs::write(d.join("go2"), &server_secret).unwrap();
    std::fs::write(d.join("unbound"), &unbound).unwrap();
    std::fs::write(d.join("go"), &cli_secret).unwrap();
    let out = job.await.unwrap();
    assert!(
        out.status.success(),
        "keyring run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(d.join("out.bin")).unwrap(),
        plaintext.as_bytes()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("out.bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read(d.join("stdout.bin")).unwrap(),
        b"server-sealed-for-keyring-51e0"
    );
    let err = std::fs::read_to_string(d.join("unbound.err")).unwrap();
    assert!(
        err.contains("SECRET_REFUSED") && err.contains("SECRET_NOT_FOUND"),
        "{err}"
    );
    // The stored secret is the envelope sealed to the registered key.
    let (st, meta) = server
        .call("GET", &format!("/api/v1/secrets/{cli_secret}/meta"), None)
        .await;
    assert_eq!(st, 200, "{meta}");
    assert_eq!(meta["data"]["kind"], "agent");
    assert_eq!(meta["data"]["key_id"], key_id);
    // Nothing the agent wrote holds a value.
    assert_absent(
        &dir,
        &[],
        &[
            plaintext,
            "server-sealed-for-keyring-51e0",
            "not-bound-to-anyone-77aa",
        ],
    );
}

/// The 0600 file store and the real `run`: the runtime registers the key
/// at start (here a replacement, after the stored key was lost); the
/// server-sealed secret follows the new key, the one sealed to the lost key
/// is refused as not deliverable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_registers_its_key_and_a_lost_key_only_loses_envelopes() {
    let mut server = Server::start("self-signed", 120).await;
    server.login().await;
    let (agent_id, bundle, _) = server.pairing().await;
    let mut agent = Agent::new();
    let (code, out, err) = agent.cli_async(&["pair", &bundle], None).await;
    assert_eq!(code, 0, "pair: {out} {err}");

    // The private key is in the file store, its public half on the server.
    let store_path = agent.dir.join("secrets/secrets.json");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&store_path).unwrap()).unwrap();
    let private = stored["agent-key"]
        .as_str()
        .expect("agent key stored")
        .to_string();
    let key = AgentKeyPair::from_private_base64(&private).unwrap();
    let view = agent_view(&server, &agent_id).await;
    assert_eq!(view["public_key"], key.public().to_base64());
    assert_eq!(view["public_key_id"], key.public().key_id());
    // `status` shows the key id to compare with the server's.
    assert_eq!(agent.status().await["agent_key_id"], key.public().key_id());

    let sealed_value = "server-sealed-value-c4f1";
    let cli_value = "cli-sealed-value-0d9e";
    let server_secret = api_put(&server, &agent_id, sealed_value, true).await;
    let cli_secret = cli_put(&server, &agent_id, "token", cli_value).await;
    let (code, out, err) = agent
        .cli_async(&["secret", "get", &server_secret], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, sealed_value);
    let file = agent.out_dir.join("cli.bin");
    let f = file.to_str().unwrap();
    let (code, _, err) = agent
        .cli_async(&["secret", "get", &cli_secret, "-o", f], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), cli_value);
    let (code, _, err) = agent
        .cli_async(&["secret", "get", &cli_secret, "-o", f], None)
        .await;
    assert_ne!(code, 0);
    assert!(err.contains("exists"), "never overwrites: {err}");
    let (code, _, err) = agent.cli_async(&["secret", "get", "../etc"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("SECRET_INVALID"), "{err}");

    // The key is lost (e.g. the keyring was cleared): the runtime makes a
    // new one at start and registers it.
    let mut map: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(&store_path).unwrap()).unwrap();
    map.remove("agent-key");
    std::fs::write(&store_path, serde_json::to_vec(&map).unwrap()).unwrap();
    agent.spawn_run();
    let old_id = key.public().key_id();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = agent_view(&server, &agent_id).await;
        if v["public_key_id"].as_str().is_some_and(|k| k != old_id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the runtime did not register a new key: {v}\n{}",
            agent.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!agent.log_events("agent.key.registered", "").is_empty());
    agent.sigterm();
    assert_eq!(agent.wait_exit(Duration::from_secs(30)).await, 0);

    let (code, out, err) = agent
        .cli_async(&["secret", "get", &server_secret], None)
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out, sealed_value,
        "the server-sealed secret follows the new key"
    );
    let (code, _, err) = agent.cli_async(&["secret", "get", &cli_secret], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("SECRET_NOT_DELIVERABLE"), "{err}");

    // Only the secret store and the requested output hold values or keys.
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(&store_path).unwrap()).unwrap();
    let new_private = stored["agent-key"].as_str().unwrap().to_string();
    assert_ne!(new_private, private);
    assert_absent(
        &agent.dir,
        &[store_path.as_path()],
        &[sealed_value, cli_value, &private, &new_private],
    );
    for f in walk(&agent.out_dir) {
        if f == file {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for n in [
            sealed_value,
            cli_value,
            private.as_str(),
            new_private.as_str(),
        ] {
            assert!(!text.contains(n), "{n:?} in {}", f.display());
        }
    }
    server.stop().await;
}
