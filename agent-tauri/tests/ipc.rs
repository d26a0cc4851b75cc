//! The tray app's IPC commands, headless: `tauri::test` (MockRuntime, no
//! display) with the app's real handlers, state and supervisor; a REAL
//! control-server in-process for pairing/status/revoke and pve-sim for
//! target tests. Every IPC output is recorded and checked for secrets.

use std::cell::RefCell;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_core::control::supervisor::{Supervisor, SupervisorOptions};
use agent_core::control::Control;
use agent_core::retry::Backoff;
use agent_core::secrets::SecretBackend;
use agent_tauri::app::{configure, start};
use agent_tauri::commands::AppState;
use base64::Engine;
use control_server::config::{Config, Settings};
use control_server::server::{self, RunningServer};
use pve_sim::PveSim;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewWindow, WebviewWindowBuilder};

const WAIT: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ app

struct Harness {
    _app: App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
    state: Arc<AppState>,
    dir: PathBuf,
    diag_dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// Every IPC answer (ok or error), to check for secrets.
    outputs: RefCell<Vec<String>>,
}

fn fast() -> SupervisorOptions {
    let b = Backoff::new(Duration::from_millis(200), Duration::from_millis(500), 0.0);
    SupervisorOptions {
        shutdown_grace: Duration::from_secs(2),
        mirror_poll: Duration::from_millis(200),
        retry: b,
        runtime_backoff: Some(b),
    }
}

impl Harness {
    fn new() -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("config");
        let diag_dir = tmp.path().join("downloads");
        let control = Control::with_paths(dir.clone(), dir.join("logs"), Some(SecretBackend::File));
        let (supervisor, task) = Supervisor::new(control.clone(), fast());
        let state = AppState::new(control, supervisor, diag_dir.clone());
        let app = configure(mock_builder(), state.clone())
            .build(tauri::generate_context!())
            .expect("the app builds with the mock runtime");
        start(app.handle(), &state, Box::pin(task));
        let webview = match app.get_webview_window("main") {
            Some(w) => w,
            None => WebviewWindowBuilder::new(&app, "main", Default::default())
                .build()
                .unwrap(),
        };
        Harness {
            _app: app,
            webview,
            state,
            dir,
            diag_dir,
            _tmp: tmp,
            outputs: RefCell::new(Vec::new()),
        }
    }

    /// Invokes `cmd` like the page does (`tauri://localhost` origin).
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        let out = get_ipc_response(
            &self.webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.into(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap());
        self.outputs
            .borrow_mut()
            .push(format!("{cmd}: {}", serde_json::to_string(&out).unwrap()));
        out
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        match self.call(cmd, args.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{cmd} {args}: {e}"),
        }
    }

    /// The `{code, message}` of a failing command.
    fn err(&self, cmd: &str, args: Value) -> Value {
        match self.call(cmd, args.clone()) {
            Ok(v) => panic!("{cmd} {args} should fail, got {v}"),
            Err(e) => {
                assert!(e["code"].is_string() && e["message"].is_string(), "{e}");
                e
            }
        }
    }

    /// Polls `get_view` until `f` holds.
    fn wait_view(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.ok("get_view", json!({}));
            if f(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn assert_no_secret(&self, secrets: &[&str]) {
        for out in self.outputs.borrow().iter() {
            for s in secrets {
                assert!(
                    !out.contains(s),
                    "a secret leaked into an IPC output: {out}"
                );
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // stop the in-process runtime before the config dir goes away
        let sup = self.state.supervisor.clone();
        tauri::async_runtime::block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), sup.shutdown()).await;
        });
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// --------------------------------------------------------------- server

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    running: Option<RunningServer>,
    _data: tempfile::TempDir,
    url: String,
    http: reqwest::Client,
    token: String,
}

impl Server {
    async fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: Some(format!("127.0.0.1:{}", free_port())),
            tls: Some("self-signed".into()),
            data_dir: Some(data.path().to_path_buf()),
            heartbeat_interval_seconds: Some(1),
            poll_timeout_seconds: Some(2),
            lease_seconds: Some(30),
            sweep_interval_seconds: Some(1),
            agent_offline_after_seconds: Some(30),
            api_rate_limit_per_minute: Some(100_000),
            public_rate_limit_per_minute: Some(1_000),
            ..Default::default()
        };
        let cfg = Config::from_settings(settings).expect("server config");
        let running = server::start(cfg).await.expect("control-server starts");
        let url = running.base_url();
        let http = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let password = std::fs::read_to_string(data.path().join("initial-admin-password"))
            .unwrap()
            .trim()
            .to_string();
        let mut s = Server {
            running: Some(running),
            _data: data,
            url,
            http,
            token: String::new(),
        };
        let (st, body) = s
            .call(
                "POST",
                "/api/v1/auth/login",
                Some(json!({"email": "admin@localhost", "password": password})),
            )
            .await;
        assert_eq!(st, 200, "login: {body}");
        s.token = body["data"]["token"].as_str().unwrap().to_string();
        s
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request to the control server");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// (agent id, bundle, code)
    async fn pairing(&self) -> (String, String, String) {
        let (st, body) = self
            .call(
                "POST",
                "/api/v1/agents/pairings",
                Some(json!({"name": "tray-agent"})),
            )
            .await;
        assert_eq!(st, 201, "pairing: {body}");
        let d = &body["data"];
        (
            d["agent"]["id"].as_str().unwrap().to_string(),
            d["pairing_bundle"].as_str().unwrap().to_string(),
            d["pairing_code"].as_str().unwrap().to_string(),
        )
    }

    async fn dispatch(&self, agent_id: &str, action: &str, params: Value) -> String {
        let (st, body) = self
            .call(
                "POST",
                &format!("/api/v1/vm-ops/proxmox/{action}"),
                Some(json!({"agent_id": agent_id, "params": params})),
            )
            .await;
        assert_eq!(st, 202, "dispatch {action}: {body}");
        body["data"]["id"].as_str().unwrap().to_string()
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(2)).await.unwrap();
        }
    }
}

fn bundle(v: Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode(bundle: &str) -> Value {
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(bundle)
            .unwrap(),
    )
    .unwrap()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------- tests

/// Preview parses without sending; bad input, a bare code without server
/// and an unreachable server give typed errors; app_info has the versions.
#[test]
fn pairing_preview_and_errors() {
    let h = Harness::new();
    let info = h.ok("app_info", json!({}));
    assert_eq!(info["about"]["app"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["about"]["agent_core"], agent_core::VERSION);
    assert!(info["about"]["protocol"].is_string());
    assert_eq!(info["secret_store"], "file");
    h.wait_view("not paired", |v| v["state"] == "not_paired");

    let fp = "ab".repeat(32);
    let b = bundle(json!({
        "v": 1,
        "pairing_code": "bmxp_0123456789abcdef0123",
        "server_url": "https://bm.example.test:8443/",
        "server_cert_sha256": fp,
        "proxmox": {"url": "https://pve.lan:8006", "node": "pve"}
    }));
    let p = h.ok("preview_pairing", json!({ "input": b }));
    assert_eq!(p["server_url"], "https://bm.example.test:8443");
    assert_eq!(p["server_host"], "bm.example.test");
    assert_eq!(p["cert_sha256"], fp);
    assert!(p["cert_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("AB:AB:"));
    assert_eq!(p["trust"], "pinned");
    assert_eq!(p["proxmox"]["node"], "pve");
    assert_eq!(p["replaces"], Value::Null);
    // the deep link form works the same
    let p = h.ok(
        "preview_pairing",
        json!({ "input": format!("botmox://pair?bundle={b}") }),
    );
    assert_eq!(p["form"], "botmox_uri");

    let e = h.err("preview_pairing", json!({ "input": "eyJub3QganNvbg" }));
    assert_eq!(e["code"], "PAIRING_INVALID", "{e}");
    let e = h.err("preview_pairing", json!({ "input": "" }));
    assert_eq!(e["code"], "PAIRING_INVALID", "{e}");
    let e = h.err("pair", json!({ "input": "BMX-ABCD1234" }));
    assert_eq!(e["code"], "SERVER_URL_REQUIRED", "{e}");
    let p = h.ok(
        "preview_pairing",
        json!({ "input": "BMX-ABCD1234", "serverUrl": "https://bm.lan" }),
    );
    assert_eq!(p["form"], "raw_code");
    assert_eq!(p["trust"], "system");

    // nothing listens on port 1
    let closed = bundle(json!({
        "v": 1, "pairing_code": "bmxp_closedport0123456789", "server_url": "http://127.0.0.1:1"
    }));
    let t0 = Instant::now();
    let e = h.err("pair", json!({ "input": closed }));
    assert_eq!(e["code"], "SERVER_UNREACHABLE", "{e}");
    assert!(
        e["message"].as_str().unwrap().contains("127.0.0.1:1"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(40));
    // a failed pairing stores nothing
    let st = h.ok("status", json!({}));
    assert_eq!(st["report"]["server"], Value::Null);
    assert_eq!(st["agent"]["state"], "not_paired");
    // pause/resume while not paired: accepted, nothing runs
    assert_eq!(h.ok("get_view", json!({}))["can_pause"], false);
}

/// Pair against a real control-server: online, a command shows up in the
/// recent commands, the code is single use, pause/resume, revoke.
#[test]
fn pair_run_pause_resume_and_revoke() {
    let rt = rt();
    let mut server = rt.block_on(Server::start());
    let (agent_id, bundle, code) = rt.block_on(server.pairing());
    let pin = decode(&bundle)["server_cert_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let h = Harness::new();

    let p = h.ok("preview_pairing", json!({ "input": bundle }));
    assert_eq!(p["server_url"], server.url.as_str());
    assert_eq!(p["cert_sha256"], pin.as_str());
    // a wrong pin: refused before anything is sent
    let mut bad = decode(&bundle);
    bad["server_cert_sha256"] = json!("0".repeat(64));
    let e = h.err(
        "pair",
        json!({ "input": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bad.to_string()) }),
    );
    assert_eq!(e["code"], "TLS_PIN_MISMATCH", "{e}");

    let out = h.ok("pair", json!({ "input": bundle }));
    assert_eq!(out["agent_id"], agent_id.as_str());
    assert_eq!(out["server_url"], server.url.as_str());
    assert_eq!(out["trust"], "pinned");
    let v = h.wait_view("online", |v| v["state"] == "online");
    assert_eq!(v["agent_id"], agent_id.as_str());
    assert_eq!(v["mode"], "in_process");
    assert_eq!(v["can_pause"], true);
    assert!(v["last_heartbeat_at"].is_string(), "{v}");
    assert_eq!(h.ok("app_info", json!({}))["view"], "status");

    // the code is single use (404: unknown or used)
    let h2 = Harness::new();
    let e = h2.err("pair", json!({ "input": bundle }));
    assert_eq!(e["code"], "PAIRING_NOT_FOUND", "{e}");
    drop(h2);
    let _ = code;

    // a command (no Proxmox target configured → fails) is listed
    let cmd_id = rt.block_on(server.dispatch(&agent_id, "status", json!({})));
    let v = h.wait_view("the command in recent_commands", |v| {
        v["recent_commands"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["id"] == cmd_id.as_str()))
    });
    let c = &v["recent_commands"][0];
    assert_eq!(c["id"], cmd_id.as_str());
    assert_eq!(c["command_type"], "proxmox.status");
    assert_eq!(c["state"], "failed");
    assert_eq!(c["error_code"], "PROXMOX_NOT_CONFIGURED");
    // status (the CLI's status --json data) shows it too
    let st = h.ok("status", json!({}));
    assert_eq!(
        st["report"]["runtime"]["recent_commands"][0]["id"],
        cmd_id.as_str()
    );
    assert_eq!(st["report"]["server"]["agent_id"], agent_id.as_str());

    // pause: stopped, persisted; resume: online again
    let v = h.ok("pause", json!({}));
    assert_eq!(v["state"], "paused");
    assert_eq!(v["can_resume"], true);
    let cfg = std::fs::read_to_string(h.dir.join("config.toml")).unwrap();
    assert!(cfg.contains("paused = true"), "{cfg}");
    h.ok("resume", json!({}));
    h.wait_view("online after resume", |v| v["state"] == "online");
    let cfg = std::fs::read_to_string(h.dir.join("config.toml")).unwrap();
    assert!(!cfg.contains("paused = true"), "{cfg}");

    // revoke: state revoked, not restarted
    let (s, b) = rt.block_on(server.call(
        "POST",
        &format!("/api/v1/agents/{agent_id}/revoke"),
        Some(json!({"reason": "tray test"})),
    ));
    assert_eq!(s, 200, "{b}");
    let v = h.wait_view("revoked", |v| v["state"] == "revoked");
    assert_eq!(v["last_error"]["code"], "AGENT_REVOKED", "{v}");
    assert_eq!(v["can_pause"], false);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(h.ok("get_view", json!({}))["state"], "revoked");

    // pairing again (a new pairing) brings it back
    let (agent2, bundle2, _) = rt.block_on(server.pairing());
    let p = h.ok("preview_pairing", json!({ "input": bundle2 }));
    assert_eq!(p["replaces"]["agent_id"], agent_id.as_str());
    h.ok("pair", json!({ "input": bundle2 }));
    let v = h.wait_view("online as the new agent", |v| {
        v["state"] == "online" && v["agent_id"] == agent2.as_str()
    });
    assert!(
        v["recent_commands"].as_array().unwrap().is_empty(),
        "a new identity starts with a clean list: {v}"
    );

    // 401 (a token the server does not know) is NOT revoked: error + retry
    let store = agent_core::secrets::open_store(SecretBackend::File, &h.dir).unwrap();
    let good = store.get("agent-token").unwrap().unwrap();
    store
        .set("agent-token", "bmxa_not-a-valid-token-0000000000")
        .unwrap();
    h.state.supervisor.paired(); // restart now with the stored token
    let v = h.wait_view("error after 401", |v| v["state"] == "error");
    assert_eq!(v["last_error"]["code"], "UNAUTHORIZED", "{v}");
    assert!(v["next_retry_at"].is_string(), "{v}");
    assert_eq!(v["can_pause"], true, "{v}");
    // the retry picks up a working token again
    store.set("agent-token", &good).unwrap();
    h.wait_view("online again after the retry", |v| v["state"] == "online");

    let token = {
        let store = agent_core::secrets::open_store(SecretBackend::File, &h.dir).unwrap();
        store.get("agent-token").unwrap().unwrap()
    };
    h.assert_no_secret(&[&token, &code]);
    drop(h);
    rt.block_on(server.stop());
}

/// Targets: save (token + password + SSH key), list, edit keeping
/// secrets, test against pve-sim, remove, diagnostics, status. No IPC
/// output (nor the diagnostics file) contains a secret.
#[test]
fn targets_with_secrets_never_come_back() {
    let rt = rt();
    let sim = rt.block_on(PveSim::start()).unwrap();
    let h = Harness::new();
    let ssh_key = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
                   b3BlbnNzaC1rZXktdjEAAAAAtraysecretkeymaterial0123456789\n\
                   -----END OPENSSH PRIVATE KEY-----\n";
    let bad_secret = "wrong-token-secret-4242-abcdef";
    let sim_password = sim.password().to_string();

    // validation: a token secret is required for a new target
    let e = h.err(
        "save_target",
        json!({ "target": {
            "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
            "token_id": sim.token_id(), "tls": "fingerprint", "fingerprint": sim.fingerprint()
        }}),
    );
    assert_eq!(e["code"], "SECRET_REQUIRED", "{e}");
    let e = h.err(
        "save_target",
        json!({ "target": {
            "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
            "token_id": "no-bang", "tls": "ca"
        }, "secrets": { "token_secret": "x-secret-x" }}),
    );
    assert_eq!(e["code"], "TARGET_INVALID", "{e}");
    let e = h.err(
        "save_target",
        json!({ "target": {
            "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
            "token_id": sim.token_id(), "tls": "fingerprint", "fingerprint": "12:34"
        }, "secrets": { "token_secret": sim.token_secret() }}),
    );
    assert_eq!(e["code"], "TARGET_INVALID", "{e}");

    // token target with SSH settings and a key
    let out = h.ok(
        "save_target",
        json!({
            "target": {
                "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
                "token_id": sim.token_id(), "tls": "fingerprint", "fingerprint": sim.fingerprint(),
                "ssh_host": "127.0.0.1", "ssh_port": 1, "ssh_user": "root"
            },
            "secrets": { "token_secret": sim.token_secret(), "ssh_private_key": ssh_key }
        }),
    );
    assert_eq!(out["created"], true);
    assert_eq!(out["target"]["secrets"]["token_secret"], "saved");
    assert_eq!(out["target"]["secrets"]["ssh_private_key"], "saved");
    assert_eq!(out["target"]["tls"], "pinned");
    assert_eq!(out["target"]["tls_choice"], "fingerprint");

    // password target, insecure TLS (warned)
    let out = h.ok(
        "save_target",
        json!({
            "target": {
                "id": "pw", "url": sim.url(), "node": sim.node(), "auth": "password",
                "username": sim.username(), "tls": "insecure"
            },
            "secrets": { "password": sim_password }
        }),
    );
    assert!(
        out["warnings"][0]
            .as_str()
            .unwrap()
            .contains("TLS verification is disabled"),
        "{out}"
    );
    let list = h.ok("list_targets", json!({}));
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["id"], "pve1");
    assert_eq!(list[0]["active"], true);
    assert_eq!(list[1]["secrets"]["password"], "saved");
    assert_eq!(list[1]["secrets"]["token_secret"], "not_set");

    // test: Proxmox OK; SSH configured but nothing listens → failed
    let r = h.ok("test_target", json!({ "id": "pve1" }));
    assert_eq!(r["proxmox"]["ok"], true, "{r}");
    assert!(
        r["proxmox"]["message"]
            .as_str()
            .unwrap()
            .contains("Proxmox OK"),
        "{r}"
    );
    assert_eq!(r["version"], "9.1.2");
    assert_eq!(r["ssh"]["status"], "failed", "{r}");
    assert_eq!(r["ssh"]["code"], "SSH_UNREACHABLE", "{r}");
    assert_eq!(r["ok"], false);
    let r = h.ok("test_target", json!({ "id": "pw" }));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["ssh"]["status"], "skipped");
    assert_eq!(r["insecure"], true);

    // edit: empty secrets keep the stored ones; SSH removed (and its key)
    let out = h.ok(
        "save_target",
        json!({
            "target": {
                "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
                "token_id": sim.token_id(), "tls": "fingerprint", "fingerprint": sim.fingerprint(),
                "ssh_host": null, "ssh_user": null
            },
            "secrets": { "token_secret": "", "ssh_private_key": null }
        }),
    );
    assert_eq!(out["created"], false);
    assert_eq!(out["target"]["secrets"]["token_secret"], "saved");
    assert_eq!(out["target"]["secrets"]["ssh_private_key"], "not_set");
    assert_eq!(out["target"]["ssh"], Value::Null);
    let r = h.ok("test_target", json!({ "id": "pve1" }));
    assert_eq!(r["ok"], true, "the kept secret still works: {r}");

    // a wrong secret: a friendly auth error, not an IPC error
    h.ok(
        "save_target",
        json!({
            "target": {
                "id": "pve1", "url": sim.url(), "node": sim.node(), "auth": "token",
                "token_id": sim.token_id(), "tls": "fingerprint", "fingerprint": sim.fingerprint()
            },
            "secrets": { "token_secret": bad_secret }
        }),
    );
    let r = h.ok("test_target", json!({ "id": "pve1" }));
    assert_eq!(r["proxmox"]["ok"], false);
    assert_eq!(r["proxmox"]["code"], "PROXMOX_AUTH_FAILED", "{r}");
    assert!(
        r["proxmox"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the API token"),
        "{r}"
    );
    let e = h.err("test_target", json!({ "id": "nope" }));
    assert_eq!(e["code"], "TARGET_NOT_FOUND");

    // status and diagnostics
    let st = h.ok("status", json!({}));
    assert_eq!(st["report"]["insecure_targets"], json!(["pw"]));
    let d = h.ok("create_diagnostics", json!({}));
    let path = PathBuf::from(d["path"].as_str().unwrap());
    assert!(path.starts_with(&h.diag_dir), "{d}");
    let diag = std::fs::read_to_string(&path).unwrap();
    assert!(diag.contains("\"has_api_token_secret\": true"), "{diag}");
    let info = h.ok("app_info", json!({}));
    assert!(info["notice"]
        .as_str()
        .unwrap()
        .contains("Diagnostic bundle saved"));

    // remove (with its secrets)
    h.ok("remove_target", json!({ "id": "pw" }));
    assert_eq!(
        h.err("remove_target", json!({ "id": "pw" }))["code"],
        "TARGET_NOT_FOUND"
    );
    let list = h.ok("list_targets", json!({}));
    assert_eq!(list.as_array().unwrap().len(), 1);

    let secrets = [
        sim.token_secret(),
        sim_password.as_str(),
        "traysecretkeymaterial0123456789",
        "b3BlbnNzaC1rZXktdjEAAAAAtraysecretkeymaterial",
        bad_secret,
    ];
    h.assert_no_secret(&secrets);
    for s in secrets {
        assert!(!diag.contains(s), "a secret leaked into the diagnostics");
    }
    // the secrets are in the store, the config has none
    let cfg = std::fs::read_to_string(h.dir.join("config.toml")).unwrap();
    for s in secrets {
        assert!(!cfg.contains(s));
    }
    for f in files_under(&h.dir.join("logs")) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        for s in secrets {
            assert!(!text.contains(s), "a secret leaked into {}", f.display());
        }
    }
    sim.assert_no_violations();
}

/// A service (another runtime) owns the config dir: the app mirrors its
/// status.json and refuses Pause/Resume; targets can still be edited.
#[test]
fn mirror_mode_when_a_service_holds_the_lock() {
    let h = Harness::new();
    h.wait_view("not paired", |v| v["state"] == "not_paired");
    drop(h);

    // a paired config whose runtime lock is held elsewhere
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    let cfg = agent_core::config::AgentConfig {
        version: 1,
        secret_store: Some(SecretBackend::File),
        server: Some(agent_core::config::ServerConfig {
            url: "http://127.0.0.1:1".into(),
            agent_id: Some("svc-agent".into()),
            agent_name: Some("service".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    agent_core::config::ConfigStore::new(&dir)
        .save(&cfg)
        .unwrap();
    let rdir = agent_core::runtime::runtime_dir(&dir);
    let _lock = agent_core::runtime::lock::acquire(&rdir).unwrap();
    let svc = agent_core::runtime::state::StateHandle::new(&rdir, Some("svc-agent".into()));
    svc.heartbeat_ok();

    let control = Control::with_paths(dir.clone(), dir.join("logs"), Some(SecretBackend::File));
    let (supervisor, task) = Supervisor::new(control, fast());
    let state = AppState::new(
        supervisor.control().clone(),
        supervisor,
        tmp.path().to_path_buf(),
    );
    let app = configure(mock_builder(), state.clone())
        .build(tauri::generate_context!())
        .unwrap();
    start(app.handle(), &state, Box::pin(task));
    let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let h = Harness {
        _app: app,
        webview,
        state,
        dir: dir.clone(),
        diag_dir: tmp.path().to_path_buf(),
        _tmp: tempfile::tempdir().unwrap(),
        outputs: RefCell::new(Vec::new()),
    };
    let v = h.wait_view("mirror online", |v| {
        v["mode"] == "mirror" && v["state"] == "online"
    });
    assert_eq!(v["managed_by_service"], true);
    assert!(v["state_label"]
        .as_str()
        .unwrap()
        .contains("managed by the agent service"));
    assert_eq!(v["can_pause"], false);
    let e = h.err("pause", json!({}));
    assert_eq!(e["code"], "MANAGED_BY_SERVICE");
    let e = h.err("resume", json!({}));
    assert_eq!(e["code"], "MANAGED_BY_SERVICE");
    // the service's state changes show up
    svc.set_connection(agent_core::runtime::state::Connection::Unreachable);
    h.wait_view("mirror unreachable", |v| v["state"] == "unreachable");
    // editing targets still works; the user is told about the restart
    h.ok(
        "save_target",
        json!({
            "target": { "id": "t1", "url": "https://pve.lan:8006", "node": "pve",
                        "auth": "password", "username": "root@pam", "tls": "ca" },
            "secrets": { "password": "mirror-secret-pw-1" }
        }),
    );
    let v = h.wait_view("the restart notice", |v| v["notice"].is_string());
    assert!(v["notice"].as_str().unwrap().contains("restarts"), "{v}");
    h.assert_no_secret(&["mirror-secret-pw-1"]);
}
