//! The agent runtime end to end: the REAL control-server (in-process, real
//! HTTP/HTTPS), the REAL `botmox-agent` binary (`pair`, `run`, `status`,
//! `diagnostics`) and pve-sim. Deadlines are generous and polled; nothing
//! relies on a fixed sleep as an assertion.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use control_server::config::{Config, Settings};
use control_server::server::{self, RunningServer};
use pve_sim::{PveSim, SimConfig, VmStatus};
use serde_json::{json, Value};

use crate::common::{free_port, run_tool};

const BIN: &str = env!("CARGO_BIN_EXE_botmox-agent");

// ------------------------------------------------------------------ server

pub(crate) struct Server {
    pub(crate) running: Option<RunningServer>,
    /// Process mode ([`Server::start_process`]): the server runs in a child
    /// process (this test binary re-executed as [`server_process`]), so a
    /// test can SIGKILL it.
    child: Option<Child>,
    process: bool,
    /// The throwaway PostgreSQL database of a process-mode server.
    pg_database: Option<String>,
    pub(crate) settings: Settings,
    _data: tempfile::TempDir,
    pub(crate) data_dir: PathBuf,
    pub(crate) url: String,
    http: reqwest::Client,
    pub(crate) admin_password: String,
    pub(crate) admin_token: Option<String>,
}

impl Server {
    /// `tls`: "self-signed" (the bundle then carries the pin) or "off".
    pub(crate) async fn start(tls: &str, lease_s: u64) -> Server {
        Server::start_with(tls, lease_s, |_| {}).await
    }

    /// Like [`Server::start`], with `tune` adjusting the settings first.
    pub(crate) async fn start_with(
        tls: &str,
        lease_s: u64,
        tune: impl FnOnce(&mut Settings),
    ) -> Server {
        Server::start_with_mode(tls, lease_s, false, tune).await
    }

    async fn start_with_mode(
        tls: &str,
        lease_s: u64,
        process: bool,
        tune: impl FnOnce(&mut Settings),
    ) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings {
            listen: Some(format!("127.0.0.1:{}", free_port())),
            tls: Some(tls.into()),
            data_dir: Some(data.path().to_path_buf()),
            heartbeat_interval_seconds: Some(2),
            poll_timeout_seconds: Some(5),
            lease_seconds: Some(lease_s),
            sweep_interval_seconds: Some(1),
            agent_offline_after_seconds: Some(30),
            api_rate_limit_per_minute: Some(100_000),
            public_rate_limit_per_minute: Some(1_000),
            ..Default::default()
        };
        tune(&mut settings);
        let mut s = Server {
            running: None,
            child: None,
            process,
            pg_database: None,
            data_dir: data.path().to_path_buf(),
            _data: data,
            settings,
            url: String::new(),
            http: reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_password: String::new(),
            admin_token: None,
        };
        s.boot().await;
        s.admin_password = std::fs::read_to_string(s.data_dir.join("initial-admin-password"))
            .unwrap()
            .trim()
            .to_string();
        s
    }

    /// Like [`Server::start_with`], but the server is its own OS process
    /// (see [`server_process`]), on SQLite or, with `postgres`, on a fresh
    /// PostgreSQL database; [`Server::kill9`] crashes it.
    pub(crate) async fn start_process(
        tls: &str,
        lease_s: u64,
        postgres: bool,
        tune: impl FnOnce(&mut Settings),
    ) -> Server {
        let pg = if postgres {
            Some(create_pg_database().await)
        } else {
            None
        };
        let mut s = Server::start_with_mode(tls, lease_s, true, |st| {
            st.database_url = pg.as_ref().map(|(url, _)| url.clone());
            tune(st);
        })
        .await;
        s.pg_database = pg.map(|(_, name)| name);
        s
    }

    /// Starts (again) with the same settings: same port, data dir, database.
    pub(crate) async fn boot(&mut self) {
        if self.process {
            return self.boot_process().await;
        }
        let cfg = Config::from_settings(self.settings.clone()).expect("valid server config");
        let deadline = Instant::now() + Duration::from_secs(20);
        let running = loop {
            match server::start(cfg.clone()).await {
                Ok(r) => break r,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("server start retry: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => panic!("server does not start: {e}"),
            }
        };
        self.url = running.base_url();
        self.running = Some(running);
    }

    /// The child process: this test binary running [`server_process`] with
    /// the settings written to `server.toml`; waits until it answers.
    async fn boot_process(&mut self) {
        let file = self.data_dir.join("server.toml");
        std::fs::write(&file, toml::to_string(&self.settings).unwrap()).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_dir.join("server.log"))
            .unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "runtime::server_process",
                "--ignored",
                "--nocapture",
            ])
            .env(SERVER_SETTINGS_ENV, &file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn the server process");
        self.child = Some(child);
        let scheme = if self.settings.tls.as_deref() == Some("off") {
            "http"
        } else {
            "https"
        };
        self.url = format!("{scheme}://{}", self.settings.listen.as_deref().unwrap());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = self
                .http
                .get(format!("{}/api/v1/health/live", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "server process exited ({st}): {}",
                    std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "server process not up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL of the server process (process mode only): no shutdown
    /// code runs, in-flight requests and transactions die with it.
    pub(crate) fn kill9(&mut self) {
        assert!(self.process, "kill9 needs Server::start_process");
        let mut c = self.child.take().expect("server process running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    pub(crate) async fn stop(&mut self) {
        if self.process {
            return self.kill9();
        }
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(2)).await.unwrap();
        }
    }

    /// Process mode: kills the server and drops its PostgreSQL database.
    pub(crate) async fn finish(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(name) = self.pg_database.take() {
            drop_pg_database(&name).await;
        }
    }

    /// Direct SQL on the server's database (to age a token).
    pub(crate) async fn sql(&self, q: &str) {
        use control_server::db::Read;
        assert!(!self.process, "sql() needs the in-process server");
        let db = &self.running.as_ref().expect("server running").db;
        let mut writer = db.writer();
        sqlx::query(q)
            .execute(writer.exec())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(t) = &self.admin_token {
            req = req.bearer_auth(t);
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

    pub(crate) async fn login(&mut self) {
        let (st, body) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                Some(json!({"email": "admin@localhost", "password": self.admin_password})),
            )
            .await;
        assert_eq!(st, 200, "login: {body}");
        self.admin_token = Some(body["data"]["token"].as_str().unwrap().to_string());
    }

    /// Creates a pairing; returns (agent id, bundle, pairing code).
    pub(crate) async fn pairing(&self) -> (String, String, String) {
        let (st, body) = self
            .call(
                "POST",
                "/api/v1/agents/pairings",
                Some(json!({"name": "e2e-agent"})),
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

    pub(crate) async fn agent_connection(&self, id: &str) -> String {
        let (st, body) = self
            .call("GET", &format!("/api/v1/agents/{id}"), None)
            .await;
        assert_eq!(st, 200, "{body}");
        body["data"]["connection"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub(crate) async fn wait_online(&self, id: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let c = self.agent_connection(id).await;
            if c == "online" {
                return;
            }
            assert!(Instant::now() < deadline, "agent {id} not online: {c}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Dispatches `proxmox.<action>`; returns the command id.
    pub(crate) async fn dispatch(&self, agent_id: &str, action: &str, params: Value) -> String {
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

    pub(crate) async fn command(&self, id: &str) -> Value {
        let (st, body) = self
            .call("GET", &format!("/api/v1/vm-ops/commands/{id}"), None)
            .await;
        assert_eq!(st, 200, "{body}");
        body["data"].clone()
    }

    pub(crate) async fn wait_status(&self, id: &str, want: &[&str], within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let c = self.command(id).await;
            if want.contains(&c["status"].as_str().unwrap_or("")) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "command {id} not {want:?} in time: {c}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Dispatches and waits for a terminal status.
    pub(crate) async fn run(&self, agent_id: &str, action: &str, params: Value) -> Value {
        let id = self.dispatch(agent_id, action, params).await;
        self.wait_status(
            &id,
            &["succeeded", "failed", "cancelled", "expired"],
            Duration::from_secs(60),
        )
        .await
    }

    pub(crate) async fn run_ok(&self, agent_id: &str, action: &str, params: Value) -> Value {
        let c = self.run(agent_id, action, params.clone()).await;
        assert_eq!(c["status"], "succeeded", "{action} {params}: {c}");
        c["result"].clone()
    }

    /// The stored events of one command, oldest first, read through the
    /// SSE endpoint `GET /api/v1/vm-ops/events?command_id=` (from event 0;
    /// the stream is read until it has been quiet for a moment).
    pub(crate) async fn command_events(&self, command_id: &str) -> Vec<(String, Value)> {
        let mut req = self.http.get(format!(
            "{}/api/v1/vm-ops/events?command_id={command_id}&last_event_id=0",
            self.url
        ));
        if let Some(t) = &self.admin_token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.expect("GET events");
        assert_eq!(resp.status().as_u16(), 200, "events stream");
        let mut text = String::new();
        // The stored events come at once; then the stream idles.
        while let Ok(chunk) = tokio::time::timeout(Duration::from_millis(1500), resp.chunk()).await
        {
            match chunk.expect("events stream chunk") {
                Some(b) => text.push_str(&String::from_utf8_lossy(&b)),
                None => break,
            }
        }
        let mut out = Vec::new();
        for block in text.split("\n\n") {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).expect("event data"));
                }
            }
            if let (Some(e), Some(d)) = (event, data) {
                assert_eq!(d["command_id"], command_id, "{d}");
                out.push((e, d));
            }
        }
        out
    }

    /// The terminal events (`command.succeeded|failed|cancelled|expired`) of
    /// a command: exactly one when its outcome was delivered once.
    pub(crate) async fn final_events(&self, command_id: &str) -> Vec<(String, Value)> {
        self.command_events(command_id)
            .await
            .into_iter()
            .filter(|(e, _)| {
                [
                    "command.succeeded",
                    "command.failed",
                    "command.cancelled",
                    "command.expired",
                ]
                .contains(&e.as_str())
            })
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where [`Server::start_process`] tells its child the settings file.
const SERVER_SETTINGS_ENV: &str = "BOTMOX_TEST_SERVER_SETTINGS";

/// Not a test: the entry point of a process-mode [`Server`]. The test
/// binary re-executes itself with `--exact runtime::server_process
/// --ignored` and the settings file in `BOTMOX_TEST_SERVER_SETTINGS`; this
/// runs the real control-server from those settings until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of the server process that crash tests SIGKILL; not a test"]
async fn server_process() {
    let Some(file) = std::env::var_os(SERVER_SETTINGS_ENV) else {
        eprintln!("{SERVER_SETTINGS_ENV} unset: nothing to run");
        return;
    };
    let text = std::fs::read_to_string(&file).unwrap();
    let settings: Settings = toml::from_str(&text).expect("server settings");
    let cfg = Config::from_settings(settings).expect("valid server config");
    let deadline = Instant::now() + Duration::from_secs(20);
    let running = loop {
        match server::start(cfg.clone()).await {
            Ok(r) => break r,
            // the killed predecessor's port may linger a moment
            Err(e) if Instant::now() < deadline => {
                eprintln!("server start retry: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("server does not start: {e}"),
        }
    };
    running.wait().await.unwrap();
}

/// A fresh PostgreSQL database: (URL, name). Fails loudly without one.
async fn create_pg_database() -> (String, String) {
    use sqlx::Connection;
    let base = postgres_base_url();
    let name = format!("botmox_a_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required ({base} unreachable: {e}); run .ci/run, which starts it")
        });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    (format!("{base}/{name}"), name)
}

async fn drop_pg_database(name: &str) {
    use sqlx::Connection;
    let base = postgres_base_url();
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

fn postgres_base_url() -> String {
    std::env::var("BOTMOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

// ------------------------------------------------------------------ agent

pub(crate) struct Agent {
    pub(crate) dir: PathBuf,
    /// stdout/stderr of `run` (outside the config dir).
    pub(crate) out_dir: PathBuf,
    _tmp: tempfile::TempDir,
    pub(crate) child: Option<Child>,
    runs: u32,
}

impl Agent {
    pub(crate) fn new() -> Agent {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("config");
        let out_dir = tmp.path().join("out");
        std::fs::create_dir_all(&out_dir).unwrap();
        Agent {
            dir,
            out_dir,
            _tmp: tmp,
            child: None,
            runs: 0,
        }
    }

    /// Runs one CLI command to completion: (exit code, stdout, stderr).
    pub(crate) fn cli(&self, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
        let mut child = Command::new(BIN)
            .arg("--config-dir")
            .arg(&self.dir)
            .args(["--secret-store", "file"])
            .args(args)
            .env_remove("BOTMOX_AGENT_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run botmox-agent");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    pub(crate) async fn cli_async(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (i32, String, String) {
        let dir = self.dir.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let a = Agent {
                dir,
                out_dir: PathBuf::new(),
                _tmp: tempfile::tempdir().unwrap(),
                child: None,
                runs: 0,
            };
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            a.cli(&refs, stdin.as_deref())
        })
        .await
        .unwrap()
    }

    pub(crate) async fn add_sim_target(&self, sim: &PveSim) {
        let (code, out, err) = self
            .cli_async(
                &[
                    "targets",
                    "add",
                    "--id",
                    "sim",
                    "--url",
                    &sim.url(),
                    "--node",
                    sim.node(),
                    "--token-id",
                    sim.token_id(),
                    "--token-secret-stdin",
                    "--fingerprint",
                    &sim.fingerprint(),
                ],
                Some(sim.token_secret()),
            )
            .await;
        assert_eq!(code, 0, "targets add: {out} {err}");
    }

    /// Starts `botmox-agent run` in the background.
    pub(crate) fn spawn_run(&mut self) {
        self.spawn_run_with(&["--shutdown-grace-secs", "2"]);
    }

    /// Starts `botmox-agent run ARGS…` in the background.
    pub(crate) fn spawn_run_with(&mut self, run_args: &[&str]) {
        self.runs += 1;
        let out =
            std::fs::File::create(self.out_dir.join(format!("run{}.out", self.runs))).unwrap();
        let err =
            std::fs::File::create(self.out_dir.join(format!("run{}.err", self.runs))).unwrap();
        let child = Command::new(BIN)
            .arg("--config-dir")
            .arg(&self.dir)
            .args(["--secret-store", "file", "run"])
            .args(run_args)
            .env_remove("BOTMOX_AGENT_LOG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn botmox-agent run");
        self.child = Some(child);
    }

    /// Every JSON log line of every run (`<config-dir>/logs/agent.*.log`).
    pub(crate) fn log_lines(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for f in walk(&self.dir.join("logs")) {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
        }
        out
    }

    /// Log lines whose `event_name` is `event` and that mention `needle`.
    pub(crate) fn log_events(&self, event: &str, needle: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.to_string().contains(event) && l.to_string().contains(needle))
            .collect()
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.out_dir.join(format!("run{}.err", self.runs)))
            .unwrap_or_default()
    }

    /// Waits for the `run` process to exit; returns its exit code.
    pub(crate) async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("agent running");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit in time; stderr:\n{}",
                std::fs::read_to_string(self.out_dir.join(format!("run{}.err", self.runs)))
                    .unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn kill9(&mut self) {
        let mut c = self.child.take().expect("agent running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    pub(crate) fn sigterm(&self) {
        let pid = self.child.as_ref().expect("agent running").id();
        let st = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub(crate) async fn status(&self) -> Value {
        let (code, out, err) = self.cli_async(&["status", "--json"], None).await;
        assert_eq!(code, 0, "status: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status json {e}: {out}"))
    }

    pub(crate) fn runtime_dir(&self) -> PathBuf {
        self.dir.join("runtime")
    }

    /// The contents of the in-progress records (`runtime/inflight/*.json`).
    pub(crate) fn inflight_records(&self) -> Vec<String> {
        inflight_records(&self.runtime_dir())
    }

    pub(crate) fn outbox_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.runtime_dir().join("outbox"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn agent_token(&self) -> String {
        let s: Value = serde_json::from_str(
            &std::fs::read_to_string(self.dir.join("secrets/secrets.json")).unwrap(),
        )
        .unwrap();
        s["agent-token"]
            .as_str()
            .expect("agent token stored")
            .to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) async fn sim() -> PveSim {
    PveSim::start_with(SimConfig {
        task_duration: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .expect("pve-sim starts")
}

pub(crate) async fn paired_agent(server: &Server, sim: &PveSim) -> (Agent, String, String) {
    let (agent_id, bundle, code) = server.pairing().await;
    let agent = Agent::new();
    let (c, out, err) = agent.cli_async(&["pair", &bundle], None).await;
    assert_eq!(c, 0, "pair: {out} {err}");
    assert!(out.contains(&agent_id), "{out}");
    agent.add_sim_target(sim).await;
    (agent, agent_id, code)
}

/// The contents of the in-progress records in `runtime_dir/inflight/`.
pub(crate) fn inflight_records(runtime_dir: &Path) -> Vec<String> {
    std::fs::read_dir(runtime_dir.join("inflight"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

pub(crate) async fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------ tests

/// Pair from a bundle with the server's certificate pin → run → online →
/// status, clone + wait-task, a failing action, the provisioning chain with
/// the ISO checked by isoinfo, lease renewal past `lease_s`, cancel, output
/// chunks, `status --json`, no secret anywhere, then revoke → exit code 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_run_dispatch_provision_cancel_and_revoke() {
    let sim = sim().await;
    let mut server = Server::start("self-signed", 6).await;
    assert!(server.url.starts_with("https://"));
    server.login().await;
    let (mut agent, agent_id, pairing_code) = paired_agent(&server, &sim).await;

    // the pin and the registration are in the config; the token is not
    let cfg = std::fs::read_to_string(agent.dir.join("config.toml")).unwrap();
    assert!(cfg.contains(&format!("agent_id = \"{agent_id}\"")), "{cfg}");
    assert!(cfg.contains("cert_sha256 = \""), "{cfg}");
    assert!(cfg.contains("pairing_pending = false"), "{cfg}");
    let token = agent.agent_token();
    assert!(token.starts_with("bmxa_"));
    assert!(!cfg.contains(&token));

    // the code is single use
    let (_, bundle2, _) = server.pairing().await;
    let reuse = Agent::new();
    let (c, _, err) = reuse
        .cli_async(&["pair", &bundle_with_code(&bundle2, &pairing_code)], None)
        .await;
    assert_ne!(c, 0);
    assert!(err.contains("PAIRING_NOT_FOUND"), "{err}");
    // a bundle whose pin does not match the server's certificate
    let (c, _, err) = reuse
        .cli_async(&["pair", &bundle_with_pin(&bundle2, &"0".repeat(64))], None)
        .await;
    assert_ne!(c, 0);
    assert!(err.contains("TLS_PIN_MISMATCH"), "{err}");

    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2", "{st}");
    assert_eq!(st["tls"], "pinned");

    let cl = server
        .run_ok(
            &agent_id,
            "clone",
            json!({"vmid": 9000, "newid": 120, "full": true}),
        )
        .await;
    assert_eq!(cl["newid"], 120);
    let wt = server
        .run_ok(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    assert_eq!(wt["exitstatus"], "OK");
    assert!(sim.vm(120).is_some());

    // a failing action reports its error code
    let bad = server
        .run(
            &agent_id,
            "vm-status",
            json!({"vmid": 120, "target": "nope"}),
        )
        .await;
    assert_eq!(bad["status"], "failed", "{bad}");
    assert_eq!(bad["error_code"], "PROXMOX_TARGET_UNKNOWN", "{bad}");
    assert!(bad["error_message"].as_str().unwrap().contains("nope"));
    // output: the log chunks the runner sends
    let (s, out) = server
        .call(
            "GET",
            &format!(
                "/api/v1/vm-ops/commands/{}/output",
                bad["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(s, 200, "{out}");
    let text = out["data"].to_string();
    assert!(text.contains("started (attempt 1)"), "{text}");
    assert!(text.contains("PROXMOX_TARGET_UNKNOWN"), "{text}");

    // the provisioning chain on the cloned VM
    let up = server
        .run_ok(
            &agent_id,
            "update-config",
            json!({"vmid": 120, "memory": 4096, "cores": 2}),
        )
        .await;
    assert_eq!(up["updated"], true);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let iso = server
        .run_ok(
            &agent_id,
            "create-provision-iso",
            json!({"vmid": 120, "isoName": "provision-120.iso", "files": {
                "Autounattend.xml": b64("<?xml version=\"1.0\"?><unattend xmlns=\"urn:schemas-microsoft-com:unattend\"/>"),
                "provision.json": b64("{\"vm\":120}"),
            }}),
        )
        .await;
    assert_eq!(iso["isoPath"], "local:iso/provision-120.iso");
    let path = sim.data_dir().join("local/iso/provision-120.iso");
    let out = run_tool("isoinfo", &["-l", "-J", "-i", path.to_str().unwrap()]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "isoinfo failed");
    assert!(listing.contains("Autounattend.xml"), "{listing}");
    let at = server
        .run_ok(
            &agent_id,
            "attach-cdrom",
            json!({"vmid": 120, "isoPath": iso["isoPath"]}),
        )
        .await;
    assert_eq!(at["attached"], true);
    let start = server
        .run_ok(&agent_id, "start", json!({"vmid": 120}))
        .await;
    server
        .run_ok(
            &agent_id,
            "wait-task",
            json!({"upid": start["upid"], "intervalMs": 250}),
        )
        .await;
    let vm = sim.vm(120).unwrap();
    assert_eq!(vm.status, VmStatus::Running);
    assert_eq!(vm.config.get("memory").map(String::as_str), Some("4096"));
    assert_eq!(
        vm.config.get("ide2").map(String::as_str),
        Some("local:iso/provision-120.iso,media=cdrom")
    );

    // lease renewal: a command running longer than lease_s (6 s) keeps its
    // first claim (the sweeper would requeue it with attempt 2 otherwise)
    sim.hold_tasks(true);
    let cl = server
        .run_ok(&agent_id, "clone", json!({"vmid": 9000, "newid": 121}))
        .await;
    let id = server
        .dispatch(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(20))
        .await;
    let held = Instant::now();
    while held.elapsed() < Duration::from_secs(9) {
        let c = server.command(&id).await;
        assert_eq!(c["status"], "running", "{c}");
        assert_eq!(c["attempt"], 1, "{c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let st = agent.status().await;
    assert_eq!(st["runtime"]["current_command"]["id"], id.as_str(), "{st}");
    sim.hold_tasks(false);
    let done = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(30))
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempt"], 1);

    // cancel aborts the running executor and is reported as cancelled
    sim.hold_tasks(true);
    let cl = server
        .run_ok(&agent_id, "clone", json!({"vmid": 9000, "newid": 122}))
        .await;
    let id = server
        .dispatch(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(20))
        .await;
    let (s, b) = server
        .call(
            "POST",
            &format!("/api/v1/vm-ops/commands/{id}/cancel"),
            Some(json!({})),
        )
        .await;
    assert!(s == 200 || s == 202, "{b}");
    let c = server
        .wait_status(
            &id,
            &["cancelled", "succeeded", "failed"],
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(c["status"], "cancelled", "{c}");
    sim.hold_tasks(false);

    // token rotation: age the token past 75 % of its lifetime; the next
    // heartbeat says rotate_token, the agent stores the new token and uses
    // it (the old one is then deleted: an agent still using it would get
    // 401 and exit 4)
    server
        .sql(&format!(
            "UPDATE agent_tokens SET created_at = created_at - 10 * (expires_at - created_at) \
             WHERE agent_id = '{agent_id}'"
        ))
        .await;
    wait_until(
        "the rotated token in the secret store",
        Duration::from_secs(20),
        || agent.agent_token() != token,
    )
    .await;
    let new_token = agent.agent_token();
    assert!(new_token.starts_with("bmxa_"));
    server
        .sql(&format!(
            "DELETE FROM agent_tokens WHERE agent_id = '{agent_id}' AND created_at < \
             (SELECT MAX(created_at) FROM agent_tokens WHERE agent_id = '{agent_id}')"
        ))
        .await;
    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2");
    server.wait_online(&agent_id, Duration::from_secs(10)).await;
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the agent keeps running with the rotated token: {}",
        agent.stderr()
    );

    // status --json
    let st = agent.status().await;
    let rt = &st["runtime"];
    assert_eq!(rt["connection"], "online", "{st}");
    assert!(rt["last_heartbeat_at"].is_string(), "{st}");
    assert_eq!(rt["outbox_size"], 0, "{st}");
    assert!(rt["current_command"].is_null(), "{st}");
    assert_eq!(st["server"]["tls"], "pinned");
    assert!(agent.outbox_files().is_empty());
    let (c, _, err) = agent
        .cli_async(
            &[
                "diagnostics",
                "-o",
                agent.out_dir.join("diag.json").to_str().unwrap(),
            ],
            None,
        )
        .await;
    assert_eq!(c, 0, "{err}");

    // revoke: the agent stops with its own exit code and says so
    let (s, b) = server
        .call(
            "POST",
            &format!("/api/v1/agents/{agent_id}/revoke"),
            Some(json!({"reason": "e2e"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let code = agent.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, 3, "revoked exit code; stderr:\n{}", agent.stderr());
    let err = agent.stderr();
    assert!(
        err.contains("AGENT_REVOKED") && err.contains("pair"),
        "{err}"
    );
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "revoked", "{st}");
    assert_eq!(st["runtime"]["last_error"]["code"], "AGENT_REVOKED", "{st}");

    // no secret in config, runtime files, logs, diagnostics, output, status
    let status_text = st.to_string();
    let secrets = [
        token.as_str(),
        new_token.as_str(),
        sim.token_secret(),
        server.admin_password.as_str(),
        pairing_code.as_str(),
    ];
    let mut files = walk(&agent.dir);
    files.retain(|p| !p.ends_with("secrets/secrets.json"));
    files.extend(walk(&agent.out_dir));
    assert!(files.iter().any(|p| p.to_string_lossy().contains("logs")));
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).to_string();
        for s in secrets {
            assert!(!text.contains(s), "a secret leaked into {}", f.display());
        }
    }
    for s in secrets {
        assert!(
            !status_text.contains(s),
            "a secret leaked into status --json"
        );
    }
    sim.assert_no_violations();
    server.stop().await;
}

fn decode_bundle(bundle: &str) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(bundle)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn encode_bundle(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

fn bundle_with_code(bundle: &str, code: &str) -> String {
    let mut v = decode_bundle(bundle);
    v["pairing_code"] = json!(code);
    encode_bundle(&v)
}

fn bundle_with_pin(bundle: &str, pin: &str) -> String {
    let mut v = decode_bundle(bundle);
    v["server_cert_sha256"] = json!(pin);
    encode_bundle(&v)
}

/// SIGKILL while a command runs, restart: the in-progress record turns
/// into one `failed`/`AGENT_RESTARTED` report, the command is not run a
/// second time, the outbox ends empty; then SIGTERM stops the agent cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_command_reports_once_after_restart() {
    let sim = sim().await;
    let mut server = Server::start("off", 30).await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    let cfg = std::fs::read_to_string(agent.dir.join("config.toml")).unwrap();
    assert!(!cfg.contains("cert_sha256"), "no pin without TLS: {cfg}");
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let cl = server
        .run_ok(&agent_id, "clone", json!({"vmid": 9000, "newid": 140}))
        .await;
    let id = server
        .dispatch(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(20))
        .await;
    wait_until("the in-progress record", Duration::from_secs(10), || {
        agent.inflight_records().iter().any(|t| t.contains(&id))
    })
    .await;
    agent.kill9();
    let st = agent.status().await;
    assert_eq!(
        st["runtime"]["connection"], "stopped",
        "a killed agent is not running: {st}"
    );
    assert_eq!(
        st["runtime"]["in_progress"]["command_id"],
        id.as_str(),
        "{st}"
    );

    agent.spawn_run();
    let c = server
        .wait_status(
            &id,
            &["succeeded", "failed", "cancelled"],
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(c["status"], "failed", "{c}");
    assert_eq!(c["error_code"], "AGENT_RESTARTED", "{c}");
    assert_eq!(c["attempt"], 1, "claimed once: {c}");
    assert!(c["result"].is_null(), "{c}");
    assert!(agent.inflight_records().is_empty());
    assert!(!agent.runtime_dir().join("inflight.json").exists());

    // Release the task: nothing runs the old command again. A new command
    // goes through, and the old one is still the single failed attempt.
    sim.hold_tasks(false);
    server.wait_online(&agent_id, Duration::from_secs(20)).await;
    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2");
    let again = server.command(&id).await;
    assert_eq!(again["status"], "failed");
    assert_eq!(again["attempt"], 1);
    assert_eq!(again["finished_at"], c["finished_at"]);
    wait_until("an empty outbox", Duration::from_secs(10), || {
        agent.outbox_files().is_empty()
    })
    .await;

    // The server's history of the command: claimed once, never requeued,
    // exactly one final report (failed, AGENT_RESTARTED), and the executor
    // started once (one "started" output line): nothing lost, nothing twice.
    let events = server.command_events(&id).await;
    let kinds: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    let count = |k: &str| kinds.iter().filter(|x| **x == k).count();
    assert_eq!(count("command.queued"), 1, "{kinds:?}");
    assert_eq!(count("command.dispatched"), 1, "{kinds:?}");
    assert_eq!(count("command.requeued"), 0, "{kinds:?}");
    let finals = server.final_events(&id).await;
    assert_eq!(finals.len(), 1, "one final report: {kinds:?}");
    assert_eq!(finals[0].0, "command.failed", "{kinds:?}");
    let fin = &finals[0].1["data"]["command"];
    assert_eq!(fin["error_code"], "AGENT_RESTARTED", "{fin}");
    assert_eq!(fin["attempt"], 1, "{fin}");
    assert_eq!(kinds.last(), Some(&"command.failed"), "{kinds:?}");
    let (s, out) = server
        .call("GET", &format!("/api/v1/vm-ops/commands/{id}/output"), None)
        .await;
    assert_eq!(s, 200, "{out}");
    let started = out["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["data"]
                .as_str()
                .unwrap_or("")
                .contains("started (attempt")
        })
        .count();
    assert_eq!(started, 1, "the executor ran once: {out}");

    // graceful stop
    agent.sigterm();
    let code = agent.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(code, 0, "{}", agent.stderr());
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "stopped", "{st}");
    assert_eq!(st["runtime"]["outbox_size"], 0, "{st}");
    sim.assert_no_violations();
    server.stop().await;
}

/// The server goes away for ~10 s (same data dir and database, same port)
/// while a command runs: the final report waits in the durable outbox, the
/// agent backs off and logs it, and when the server is back the report is
/// delivered, the agent is online again and runs a new command. Finally a
/// deleted token (401) stops the agent with exit code 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_then_back_loses_nothing() {
    let sim = sim().await;
    let mut server = Server::start("self-signed", 30).await;
    server.login().await;
    let (mut agent, agent_id, _) = paired_agent(&server, &sim).await;
    agent.spawn_run();
    server.wait_online(&agent_id, Duration::from_secs(20)).await;

    sim.hold_tasks(true);
    let cl = server
        .run_ok(&agent_id, "clone", json!({"vmid": 9000, "newid": 150}))
        .await;
    let id = server
        .dispatch(
            &agent_id,
            "wait-task",
            json!({"upid": cl["upid"], "intervalMs": 250}),
        )
        .await;
    server
        .wait_status(&id, &["running"], Duration::from_secs(20))
        .await;

    server.stop().await;
    let down = Instant::now();
    sim.hold_tasks(false);
    // the result is durable on disk while the server is unreachable
    wait_until(
        "the final report in the outbox",
        Duration::from_secs(20),
        || {
            agent.outbox_files().iter().any(|p| {
                std::fs::read_to_string(p).is_ok_and(|t| t.contains(&id) && t.contains("succeeded"))
            })
        },
    )
    .await;
    wait_until(
        "backoff in the agent's log",
        Duration::from_secs(20),
        || agent.stderr().contains("backing off"),
    )
    .await;
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "unreachable", "{st}");
    assert!(st["runtime"]["outbox_size"].as_u64().unwrap() >= 1, "{st}");
    if let Some(rest) = Duration::from_secs(10).checked_sub(down.elapsed()) {
        tokio::time::sleep(rest).await; // the downtime itself, not an assertion
    }

    server.boot().await;
    let c = server
        .wait_status(&id, &["succeeded", "failed"], Duration::from_secs(60))
        .await;
    assert_eq!(c["status"], "succeeded", "{c}");
    assert_eq!(c["attempt"], 1, "{c}");
    assert_eq!(c["result"]["exitstatus"], "OK");
    server.wait_online(&agent_id, Duration::from_secs(30)).await;
    let st = server.run_ok(&agent_id, "status", json!({})).await;
    assert_eq!(st["version"], "9.1.2");
    wait_until("an empty outbox", Duration::from_secs(10), || {
        agent.outbox_files().is_empty()
    })
    .await;
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "online", "{st}");

    // a token the server no longer knows (401): the agent stops with exit 4
    server
        .sql(&format!(
            "DELETE FROM agent_tokens WHERE agent_id = '{agent_id}'"
        ))
        .await;
    let code = agent.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(
        code,
        4,
        "unauthorized exit code; stderr:\n{}",
        agent.stderr()
    );
    assert!(
        agent.stderr().contains("UNAUTHORIZED"),
        "{}",
        agent.stderr()
    );
    let st = agent.status().await;
    assert_eq!(st["runtime"]["connection"], "unauthorized", "{st}");
    sim.assert_no_violations();
    server.stop().await;
}
