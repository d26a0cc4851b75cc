//! Test harness: a real server on 127.0.0.1:0 (in-process, real HTTP) on
//! SQLite or on a fresh PostgreSQL database, plus helpers to call it.
#![allow(dead_code)]

use std::time::Duration;

use control_server::config::{Config, Settings};
use control_server::db::Db;
use control_server::server::{self, RunningServer};
use control_server::state::AppState;
use serde_json::{json, Value};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the PostgreSQL test server is (override with BOTMOX_TEST_POSTGRES_URL).
pub fn postgres_base_url() -> String {
    std::env::var("BOTMOX_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// Create a fresh database for one test and return its URL.
/// Fails loudly when PostgreSQL is unreachable: CI must provide it.
pub async fn create_pg_database() -> (String, String) {
    let base = postgres_base_url();
    let name = format!("botmox_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = match sqlx::postgres::PgConnection::connect(&format!("{base}/postgres")).await {
        Ok(c) => c,
        Err(e) => panic!(
            "PostgreSQL is required for the postgres:: tests but {base} is unreachable: {e}. \
             Start it (pg_ctlcluster … main start) or run .ci/run, which does."
        ),
    };
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    (format!("{base}/{name}"), name)
}

pub async fn drop_pg_database(name: &str) {
    let base = postgres_base_url();
    if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

pub struct TestServer {
    pub backend: Backend,
    pub url: String,
    pub http: reqwest::Client,
    pub admin_password: String,
    pub data: tempfile::TempDir,
    pub db: Db,
    running: Option<RunningServer>,
    pg_name: Option<String>,
    settings: Settings,
    /// A second server sharing this one's database does not own it.
    owns_database: bool,
}

pub fn base_settings() -> Settings {
    Settings {
        listen: Some("127.0.0.1:0".into()),
        tls: Some("off".into()),
        ..Default::default()
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, base_settings(), axum::Router::new()).await
    }

    pub async fn start_with(
        backend: Backend,
        mut settings: Settings,
        extra: axum::Router<AppState>,
    ) -> TestServer {
        server::install_crypto_provider();
        let data = tempfile::tempdir().unwrap();
        settings.data_dir = Some(data.path().to_path_buf());
        let mut pg_name = None;
        if backend == Backend::Postgres {
            let (url, name) = create_pg_database().await;
            settings.database_url = Some(url);
            pg_name = Some(name);
        }
        Self::boot(backend, settings, extra, data, pg_name, true).await
    }

    async fn boot(
        backend: Backend,
        settings: Settings,
        extra: axum::Router<AppState>,
        data: tempfile::TempDir,
        pg_name: Option<String>,
        owns_database: bool,
    ) -> TestServer {
        let cfg = Config::from_settings(settings.clone()).expect("valid test config");
        let running = server::start_with(cfg, extra).await.expect("server starts");
        let admin_password = std::fs::read_to_string(
            settings
                .data_dir
                .clone()
                .unwrap()
                .join("initial-admin-password"),
        )
        .unwrap_or_default()
        .trim()
        .to_string();
        TestServer {
            settings,
            owns_database,
            backend,
            url: running.base_url(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            admin_password,
            db: running.db.clone(),
            data,
            running: Some(running),
            pg_name,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// The database URL the server uses (to point the real binary's admin
    /// CLI at the same database).
    pub fn database_url(&self) -> String {
        Config::from_settings(self.settings.clone())
            .expect("valid test config")
            .database_url
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await.unwrap();
        }
        if self.owns_database {
            if let Some(name) = self.pg_name.take() {
                drop_pg_database(&name).await;
            }
        }
    }

    /// Stop and start again on the same data dir and database.
    pub async fn restart(mut self) -> TestServer {
        if let Some(r) = self.running.take() {
            r.shutdown(Duration::from_secs(5)).await.unwrap();
        }
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        let pg = self.pg_name.take();
        let password = self.admin_password.clone();
        let mut s = Self::boot(
            self.backend,
            self.settings.clone(),
            axum::Router::new(),
            data,
            pg,
            self.owns_database,
        )
        .await;
        s.admin_password = password;
        s
    }

    /// The running server's agents service (its heartbeat write-behind).
    pub fn agents(&self) -> std::sync::Arc<control_server::domains::agents::AgentsService> {
        self.running
            .as_ref()
            .expect("server running")
            .agents
            .clone()
    }

    /// Stop as a crash would (buffered heartbeats are not stored), then
    /// start again on the same data dir and database.
    pub async fn crash_and_restart(mut self) -> TestServer {
        if let Some(r) = self.running.take() {
            r.crash().await;
        }
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        let pg = self.pg_name.take();
        let password = self.admin_password.clone();
        let mut s = Self::boot(
            self.backend,
            self.settings.clone(),
            axum::Router::new(),
            data,
            pg,
            self.owns_database,
        )
        .await;
        s.admin_password = password;
        s
    }

    /// A second, independent server process on the same database.
    pub async fn second_on_same_database(&self) -> TestServer {
        let mut settings = self.settings.clone();
        let data = tempfile::tempdir().unwrap();
        settings.data_dir = Some(data.path().to_path_buf());
        let mut s = Self::boot(
            self.backend,
            settings,
            axum::Router::new(),
            data,
            self.pg_name.clone(),
            false,
        )
        .await;
        s.admin_password = self.admin_password.clone();
        s
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call("GET", path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call("POST", path, token, Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status, 200, "login {email}: {}", r.body);
        r.body["data"]["token"].as_str().unwrap().to_string()
    }

    pub async fn admin_token(&self) -> String {
        self.login("admin@localhost", &self.admin_password).await
    }

    /// Create tenant `id` with an admin `admin@<id>.test` and return the admin's token.
    pub async fn tenant_with_admin(&self, infra_token: &str, id: &str) -> String {
        let email = format!("admin@{id}.test");
        let r = self
            .post(
                "/api/v1/tenants",
                Some(infra_token),
                json!({"id": id, "name": id, "admin": {"email": email, "password": PASSWORD}}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        self.login(&email, PASSWORD).await
    }

    /// Create a user in the admin's tenant and return (user id, token).
    pub async fn user(&self, admin_token: &str, email: &str, role: &str) -> (String, String) {
        let r = self
            .post(
                "/api/v1/users",
                Some(admin_token),
                json!({"email": email, "role": role, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["data"]["id"].as_str().unwrap().to_string();
        (id, self.login(email, PASSWORD).await)
    }
}

pub const PASSWORD: &str = "a-long-test-password";

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert an error envelope with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["success"], json!(false), "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

/// Generate `sqlite::NAME` and `postgres::NAME` tests for each scenario
/// `async fn NAME(backend: Backend)`; the test name shows the backend.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}
