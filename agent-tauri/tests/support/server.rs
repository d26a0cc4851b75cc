//! The server side of the GUI tests: the REAL control-server in process
//! (real HTTPS with a self-signed certificate, so the pairing bundle carries
//! a certificate pin) and the Proxmox simulator. Adapted from
//! agent-core/tests/it/runtime.rs.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use control_server::config::{Config, Settings};
use control_server::server::{self, RunningServer};
use pve_sim::{PveSim, SimConfig};
use serde_json::{json, Value};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn sim() -> PveSim {
    PveSim::start_with(SimConfig {
        task_duration: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .expect("pve-sim starts")
}

pub struct Server {
    running: Option<RunningServer>,
    settings: Settings,
    _data: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub url: String,
    http: reqwest::Client,
    admin_token: Option<String>,
}

impl Server {
    /// `tls`: "self-signed" (the bundle then carries the pin) or "off".
    pub async fn start(tls: &str) -> Server {
        let data = tempfile::tempdir().unwrap();
        let settings = Settings {
            listen: Some(format!("127.0.0.1:{}", free_port())),
            tls: Some(tls.into()),
            data_dir: Some(data.path().to_path_buf()),
            heartbeat_interval_seconds: Some(2),
            poll_timeout_seconds: Some(5),
            lease_seconds: Some(30),
            sweep_interval_seconds: Some(1),
            agent_offline_after_seconds: Some(30),
            api_rate_limit_per_minute: Some(100_000),
            public_rate_limit_per_minute: Some(1_000),
            ..Default::default()
        };
        let mut s = Server {
            url: String::new(),
            running: None,
            settings,
            data_dir: data.path().to_path_buf(),
            _data: data,
            http: reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_token: None,
        };
        s.boot().await;
        s.login().await;
        s
    }

    /// Starts (again) with the same settings: same port, data dir, database.
    pub async fn boot(&mut self) {
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

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(2)).await.unwrap();
        }
    }

    /// Makes a pending pairing's code expired (direct SQL).
    pub async fn expire_pairing(&self, agent_id: &str) {
        use control_server::db::Read;
        let db = &self.running.as_ref().expect("server running").db;
        // through the writer pool (the one connection writes use on SQLite)
        let mut writer = db.writer();
        sqlx::query("UPDATE agents SET pairing_expires_at = $1 WHERE id = $2")
            .bind(1_i64)
            .bind(agent_id)
            .execute(writer.exec())
            .await
            .expect("expire the pairing");
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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

    async fn login(&mut self) {
        let password = std::fs::read_to_string(self.data_dir.join("initial-admin-password"))
            .unwrap()
            .trim()
            .to_string();
        let (st, body) = self
            .call(
                "POST",
                "/api/v1/auth/login",
                Some(json!({"email": "admin@localhost", "password": password})),
            )
            .await;
        assert_eq!(st, 200, "login: {body}");
        self.admin_token = Some(body["data"]["token"].as_str().unwrap().to_string());
    }

    /// Creates a pairing; returns (agent id, bundle, pairing code).
    pub async fn pairing(&self, name: &str) -> (String, String, String) {
        let (st, body) = self
            .call(
                "POST",
                "/api/v1/agents/pairings",
                Some(json!({"name": name})),
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

    pub async fn agent_connection(&self, id: &str) -> String {
        let (st, body) = self
            .call("GET", &format!("/api/v1/agents/{id}"), None)
            .await;
        assert_eq!(st, 200, "{body}");
        body["data"]["connection"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub async fn wait_online(&self, id: &str, within: Duration) {
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

    pub async fn revoke(&self, id: &str) {
        let (st, body) = self
            .call(
                "POST",
                &format!("/api/v1/agents/{id}/revoke"),
                Some(json!({"reason": "gui test"})),
            )
            .await;
        assert!((200..300).contains(&st), "revoke: {st} {body}");
    }

    /// Dispatches `proxmox.<action>`; returns the command id.
    pub async fn dispatch(&self, agent_id: &str, action: &str, params: Value) -> String {
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

    pub async fn command(&self, id: &str) -> Value {
        let (st, body) = self
            .call("GET", &format!("/api/v1/vm-ops/commands/{id}"), None)
            .await;
        assert_eq!(st, 200, "{body}");
        body["data"].clone()
    }

    /// Waits until the command reaches a terminal state; returns it.
    pub async fn wait_terminal(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let c = self.command(id).await;
            let s = c["status"].as_str().unwrap_or("");
            if ["succeeded", "failed", "cancelled", "expired"].contains(&s) {
                return c;
            }
            assert!(
                Instant::now() < deadline,
                "command {id} not finished in time: {c}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}
