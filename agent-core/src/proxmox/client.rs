//! A small typed Proxmox VE API client over our reqwest client (see
//! docs/agent.md for why not the `proxmox-api` crate): API-token or ticket
//! auth (CSRF token, one re-login on 401), TLS by CA / pinned fingerprint /
//! explicit insecure flag, lock-aware retries, multipart upload and task
//! waiting with `WARNINGS: n` counted as success.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::http::transport_error;
use crate::http::HttpError;
use crate::retry::{self, Attempt, Backoff, RetryPolicy};
use crate::tls::{self, TlsTrust};

/// How to authenticate against one PVE.
#[derive(Clone)]
pub enum PveAuth {
    /// `token_id` = `user@realm!name`.
    Token { token_id: String, secret: String },
    /// Ticket login; `username` gets `@pam` when it has no realm.
    Password { username: String, password: String },
}

impl std::fmt::Debug for PveAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PveAuth::Token { token_id, .. } => write!(f, "Token({token_id})"),
            PveAuth::Password { username, .. } => write!(f, "Password({username})"),
        }
    }
}

/// Everything needed to talk to one PVE.
#[derive(Debug, Clone)]
pub struct PveConnection {
    /// `https://host:8006` (a trailing `/api2/json` is tolerated).
    pub url: String,
    pub auth: PveAuth,
    pub trust: TlsTrust,
    /// Per-request timeout (30 s like the original agent).
    pub timeout: Duration,
    /// Budget for transient failures (5xx, lock timeouts, dropped connections).
    pub retry: RetryPolicy,
}

impl PveConnection {
    pub fn new(url: &str, auth: PveAuth, trust: TlsTrust) -> Self {
        PveConnection {
            url: url.to_string(),
            auth,
            trust,
            timeout: Duration::from_secs(30),
            retry: RetryPolicy::exponential(
                4,
                Duration::from_secs(1),
                Duration::from_secs(8),
                Duration::from_secs(60),
            ),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PveError {
    #[error("Proxmox is unreachable: {0}")]
    Unreachable(String),
    #[error("Proxmox TLS verification failed: {0}")]
    Tls(String),
    #[error("Proxmox request timed out: {0}")]
    Timeout(String),
    #[error("Proxmox authentication failed (HTTP {status}). Possible wrong username/password or API token.")]
    Auth { status: u16 },
    #[error("Proxmox API {method} {path} failed (HTTP {status}): {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("Proxmox task {upid} failed: {exitstatus}\n{log_tail}")]
    TaskFailed {
        upid: String,
        exitstatus: String,
        log_tail: String,
    },
    #[error("{0}")]
    TimedOut(String),
    #[error("unexpected Proxmox response: {0}")]
    BadResponse(String),
    #[error("cancelled")]
    Cancelled,
    #[error("invalid Proxmox configuration: {0}")]
    Config(String),
}

impl PveError {
    pub fn code(&self) -> &'static str {
        match self {
            PveError::Unreachable(_) => "PROXMOX_UNREACHABLE",
            PveError::Tls(_) => "PROXMOX_TLS_ERROR",
            PveError::Timeout(_) | PveError::TimedOut(_) => "PROXMOX_TIMEOUT",
            PveError::Auth { .. } => "PROXMOX_AUTH_FAILED",
            PveError::Api { .. } => "PROXMOX_API_ERROR",
            PveError::TaskFailed { .. } => "PROXMOX_TASK_FAILED",
            PveError::BadResponse(_) => "PROXMOX_BAD_RESPONSE",
            PveError::Cancelled => "CANCELLED",
            PveError::Config(_) => "PROXMOX_CONFIG_ERROR",
        }
    }

    /// The API error message, if this is an API error.
    pub fn api_message(&self) -> Option<&str> {
        match self {
            PveError::Api { message, .. } => Some(message),
            _ => None,
        }
    }

    /// "already exists" answers (clone/create onto an existing VMID).
    pub fn is_already_exists(&self) -> bool {
        self.api_message()
            .is_some_and(|m| m.contains("already exists"))
    }
}

fn from_http(e: HttpError) -> PveError {
    match e {
        HttpError::Tls(m) => PveError::Tls(m),
        HttpError::Timeout(m) => PveError::Timeout(m),
        other => PveError::Unreachable(other.to_string()),
    }
}

/// A PVE lock or worker hiccup that a retry may fix.
pub fn is_lock_timeout(message: &str) -> bool {
    message.contains("got timeout")
        || message.contains("can't lock file")
        || message.contains("got no worker upid")
}

/// A request parameter value. Booleans become `1`/`0` like PVE expects.
pub fn param_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Percent-encodes one path segment (UPIDs, volume ids).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[derive(Clone)]
struct Ticket {
    ticket: String,
    csrf: String,
    at: Instant,
}

/// Tickets live 2 h in PVE; renew well before.
const TICKET_MAX_AGE: Duration = Duration::from_secs(90 * 60);

/// A multipart file for [`PveClient::upload`].
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub filename: String,
    pub bytes: Vec<u8>,
    /// `iso`, `vztmpl` or `import`.
    pub content: String,
    /// sha256 hex of `bytes`.
    pub sha256: String,
}

/// Client for one PVE.
pub struct PveClient {
    http: reqwest::Client,
    /// `https://host:8006/api2/json`
    api: String,
    conn: PveConnection,
    session: Mutex<Option<Ticket>>,
}

impl std::fmt::Debug for PveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PveClient")
            .field("api", &self.api)
            .field("auth", &self.conn.auth)
            .field("tls", &self.conn.trust.mode())
            .finish_non_exhaustive()
    }
}

impl PveClient {
    pub fn new(conn: PveConnection) -> Result<Self, PveError> {
        let url = url::Url::parse(conn.url.trim())
            .map_err(|e| PveError::Config(format!("bad Proxmox URL {:?}: {e}", conn.url)))?;
        if url.scheme() != "https" {
            return Err(PveError::Config(format!(
                "Proxmox URL {:?} must use https://",
                conn.url
            )));
        }
        let base = url.as_str().trim_end_matches('/');
        let base = base.strip_suffix("/api2/json").unwrap_or(base);
        let http = tls::build_client(&conn.trust, conn.timeout, crate::http::USER_AGENT)
            .map_err(|e| PveError::Config(e.to_string()))?;
        Ok(PveClient {
            http,
            api: format!("{base}/api2/json"),
            conn,
            session: Mutex::new(None),
        })
    }

    pub fn connection(&self) -> &PveConnection {
        &self.conn
    }

    /// Ticket login (no-op with API tokens unless `force`).
    pub async fn login(&self, force: bool, cancel: &CancellationToken) -> Result<(), PveError> {
        if let PveAuth::Password { .. } = self.conn.auth {
            let mut s = self.session.lock().await;
            let fresh = s.as_ref().is_some_and(|t| t.at.elapsed() < TICKET_MAX_AGE);
            if force || !fresh {
                *s = Some(self.fetch_ticket(cancel).await?);
            }
        }
        Ok(())
    }

    async fn fetch_ticket(&self, cancel: &CancellationToken) -> Result<Ticket, PveError> {
        let PveAuth::Password { username, password } = &self.conn.auth else {
            return Err(PveError::Config("no password configured".into()));
        };
        let user = if username.contains('@') {
            username.clone()
        } else {
            format!("{username}@pam")
        };
        let url = format!("{}/access/ticket", self.api);
        let form = [("username", user.as_str()), ("password", password.as_str())];
        let policy = self.conn.retry;
        let body = retry::run(
            &policy,
            cancel,
            || PveError::Cancelled,
            |_| {
                let url = url.clone();
                async move {
                    match self.http.post(&url).form(&form).send().await {
                        Err(e) => retry_transport(e),
                        Ok(r) => {
                            let status = r.status();
                            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN
                            {
                                return Attempt::Fail(PveError::Auth {
                                    status: status.as_u16(),
                                });
                            }
                            match read_body(r, "POST", "/access/ticket").await {
                                Ok(v) => Attempt::Done(v),
                                Err(e) => classify(e),
                            }
                        }
                    }
                }
            },
        )
        .await?;
        let ticket = body["ticket"].as_str();
        let csrf = body["CSRFPreventionToken"].as_str();
        match (ticket, csrf) {
            (Some(t), Some(c)) => Ok(Ticket {
                ticket: t.to_string(),
                csrf: c.to_string(),
                at: Instant::now(),
            }),
            _ => Err(PveError::BadResponse("login answer without ticket".into())),
        }
    }

    async fn authorize(
        &self,
        rb: reqwest::RequestBuilder,
        method: &Method,
        cancel: &CancellationToken,
    ) -> Result<reqwest::RequestBuilder, PveError> {
        match &self.conn.auth {
            PveAuth::Token { token_id, secret } => {
                let mut v = HeaderValue::from_str(&format!("PVEAPIToken={token_id}={secret}"))
                    .map_err(|_| {
                        PveError::Config("API token contains invalid characters".into())
                    })?;
                v.set_sensitive(true);
                Ok(rb.header(AUTHORIZATION, v))
            }
            PveAuth::Password { .. } => {
                self.login(false, cancel).await?;
                let t = self
                    .session
                    .lock()
                    .await
                    .clone()
                    .ok_or_else(|| PveError::BadResponse("no ticket".into()))?;
                let mut cookie = HeaderValue::from_str(&format!("PVEAuthCookie={}", t.ticket))
                    .map_err(|_| PveError::BadResponse("ticket is not a header value".into()))?;
                cookie.set_sensitive(true);
                let mut rb = rb.header(COOKIE, cookie);
                if method != Method::GET {
                    rb = rb.header("CSRFPreventionToken", t.csrf);
                }
                Ok(rb)
            }
        }
    }

    /// A JSON API call; returns `data`. `path` is below `/api2/json`
    /// (already percent-encoded). GET/DELETE send `params` in the query,
    /// POST/PUT as a form body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        cancel: &CancellationToken,
    ) -> Result<Value, PveError> {
        self.request_with(method, path, params, &self.conn.retry, cancel)
            .await
    }

    /// [`PveClient::request`] with an explicit retry budget.
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<Value, PveError> {
        let url = format!("{}{}", self.api, path);
        let mut relogged = false;
        loop {
            let res = retry::run(
                policy,
                cancel,
                || PveError::Cancelled,
                |attempt| {
                    let method = method.clone();
                    let url = url.clone();
                    async move {
                        let rb = self.http.request(method.clone(), &url);
                        let rb = if method == Method::GET || method == Method::DELETE {
                            rb.query(params)
                        } else {
                            rb.form(params)
                        };
                        let rb = match self.authorize(rb, &method, cancel).await {
                            Ok(rb) => rb,
                            Err(e) => return Attempt::Fail(e),
                        };
                        tracing::debug!(%method, path, attempt, "proxmox request");
                        match rb.send().await {
                            Err(e) => retry_transport(e),
                            Ok(r) => match read_body(r, method.as_str(), path).await {
                                Ok(v) => Attempt::Done(v),
                                Err(e) => classify(e),
                            },
                        }
                    }
                },
            )
            .await;
            match res {
                Err(PveError::Auth { status: 401 })
                    if !relogged && matches!(self.conn.auth, PveAuth::Password { .. }) =>
                {
                    tracing::info!(path, "proxmox ticket rejected, logging in again");
                    relogged = true;
                    self.login(true, cancel).await?;
                }
                other => return other,
            }
        }
    }

    /// Multipart `POST /nodes/{node}/storage/{storage}/upload` with a checksum;
    /// returns the `imgcopy` UPID.
    pub async fn upload(
        &self,
        node: &str,
        storage: &str,
        file: &UploadFile,
        cancel: &CancellationToken,
    ) -> Result<String, PveError> {
        let path = format!("/nodes/{}/storage/{}/upload", enc(node), enc(storage));
        let url = format!("{}{}", self.api, path);
        let mut relogged = false;
        loop {
            let res = retry::run(
                &self.conn.retry,
                cancel,
                || PveError::Cancelled,
                |_| {
                    let url = url.clone();
                    let path = path.clone();
                    async move {
                        let part = match reqwest::multipart::Part::bytes(file.bytes.clone())
                            .file_name(file.filename.clone())
                            .mime_str("application/octet-stream")
                        {
                            Ok(p) => p,
                            Err(e) => return Attempt::Fail(PveError::Config(e.to_string())),
                        };
                        let form = reqwest::multipart::Form::new()
                            .text("content", file.content.clone())
                            .text("checksum-algorithm", "sha256")
                            .text("checksum", file.sha256.clone())
                            .part("filename", part);
                        let rb = self.http.post(&url).multipart(form);
                        let rb = match self.authorize(rb, &Method::POST, cancel).await {
                            Ok(rb) => rb,
                            Err(e) => return Attempt::Fail(e),
                        };
                        match rb.send().await {
                            Err(e) => retry_transport(e),
                            Ok(r) => match read_body(r, "POST", &path).await {
                                Ok(v) => Attempt::Done(v),
                                Err(e) => classify(e),
                            },
                        }
                    }
                },
            )
            .await;
            match res {
                Err(PveError::Auth { status: 401 })
                    if !relogged && matches!(self.conn.auth, PveAuth::Password { .. }) =>
                {
                    relogged = true;
                    self.login(true, cancel).await?;
                }
                Err(e) => return Err(e),
                Ok(v) => {
                    return v
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| PveError::BadResponse(format!("upload answered {v}")))
                }
            }
        }
    }

    /// `GET /nodes/{node}/tasks/{upid}/status`. The node comes from the UPID.
    pub async fn task_status(
        &self,
        upid: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, PveError> {
        let node = upid_node(upid)?;
        self.request(
            Method::GET,
            &format!("/nodes/{}/tasks/{}/status", enc(node), enc(upid)),
            &[],
            cancel,
        )
        .await
    }

    /// The last `lines` lines of a task log.
    pub async fn task_log_tail(
        &self,
        upid: &str,
        lines: usize,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, PveError> {
        let node = upid_node(upid)?;
        let path = format!("/nodes/{}/tasks/{}/log", enc(node), enc(upid));
        let first = self
            .request(
                Method::GET,
                &path,
                &[("limit".into(), "50000".into())],
                cancel,
            )
            .await?;
        let all: Vec<String> = first
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|l| l["t"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let skip = all.len().saturating_sub(lines);
        Ok(all.into_iter().skip(skip).collect())
    }

    /// Polls a task every `interval` until it stops. `OK` and `WARNINGS: n`
    /// succeed (the result gets `warnings` and, for warnings, the log lines
    /// that say so); anything else fails with the last 20 log lines. A 400/404
    /// right after creation is retried (the task may not be visible yet).
    pub async fn wait_task(
        &self,
        upid: &str,
        timeout: Duration,
        interval: Duration,
        cancel: &CancellationToken,
    ) -> Result<Value, PveError> {
        let start = Instant::now();
        let poll_policy = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::new(interval, interval, 0.0),
            max_elapsed: timeout,
            max_retry_after: interval,
        };
        let node = upid_node(upid)?.to_string();
        let path = format!("/nodes/{}/tasks/{}/status", enc(&node), enc(upid));
        loop {
            match self
                .request_with(Method::GET, &path, &[], &poll_policy, cancel)
                .await
            {
                Ok(st) => {
                    if st["status"] == "stopped" {
                        return self.finish_task(upid, st, cancel).await;
                    }
                }
                Err(PveError::Api { status, .. })
                    if (status == 400 || status == 404)
                        && start.elapsed() < Duration::from_secs(10) => {}
                Err(e) => return Err(e),
            }
            if start.elapsed() + interval > timeout {
                return Err(PveError::TimedOut(format!(
                    "Proxmox task {upid} timed out after {}s",
                    timeout.as_secs()
                )));
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(PveError::Cancelled),
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn finish_task(
        &self,
        upid: &str,
        mut st: Value,
        cancel: &CancellationToken,
    ) -> Result<Value, PveError> {
        let exit = st["exitstatus"].as_str().unwrap_or("").to_string();
        if exit == "OK" {
            st["warnings"] = Value::from(0);
            return Ok(st);
        }
        if let Some(n) = exit
            .strip_prefix("WARNINGS: ")
            .and_then(|n| n.trim().parse::<u64>().ok())
        {
            let lines = self
                .task_log_tail(upid, 200, cancel)
                .await
                .unwrap_or_default();
            let warn: Vec<Value> = lines
                .into_iter()
                .filter(|l| l.contains("WARN"))
                .map(Value::from)
                .collect();
            st["warnings"] = Value::from(n);
            st["warning_lines"] = Value::Array(warn);
            return Ok(st);
        }
        let tail = self
            .task_log_tail(upid, 20, cancel)
            .await
            .map(|l| l.join("\n"))
            .unwrap_or_else(|e| format!("(task log unavailable: {e})"));
        Err(PveError::TaskFailed {
            upid: upid.to_string(),
            exitstatus: if exit.is_empty() {
                "unknown".into()
            } else {
                exit
            },
            log_tail: tail,
        })
    }
}

/// Node name from `UPID:node:…`.
pub fn upid_node(upid: &str) -> Result<&str, PveError> {
    let mut it = upid.split(':');
    match (it.next(), it.next()) {
        (Some("UPID"), Some(node)) if !node.is_empty() => Ok(node),
        _ => Err(PveError::Config(format!("{upid:?} is not a Proxmox UPID"))),
    }
}

fn retry_transport<T>(e: reqwest::Error) -> Attempt<T, PveError> {
    match from_http(transport_error(&e)) {
        e @ PveError::Tls(_) => Attempt::Fail(e),
        e => Attempt::Retry {
            err: e,
            after: None,
        },
    }
}

/// Retry 502/503/504, 5xx without a specific PVE message, and lock timeouts.
fn classify<T>(e: PveError) -> Attempt<T, PveError> {
    match &e {
        PveError::Api {
            status, message, ..
        } if *status >= 500 => {
            let generic = message.is_empty()
                || message.starts_with("Internal Server Error")
                || message.starts_with("Service Unavailable")
                || message.starts_with("HTTP ");
            if matches!(status, 502..=504) || generic || is_lock_timeout(message) {
                Attempt::Retry {
                    err: e,
                    after: None,
                }
            } else {
                Attempt::Fail(e)
            }
        }
        PveError::Unreachable(_) | PveError::Timeout(_) => Attempt::Retry {
            err: e,
            after: None,
        },
        _ => Attempt::Fail(e),
    }
}

async fn read_body(resp: reqwest::Response, method: &str, path: &str) -> Result<Value, PveError> {
    let status = resp.status();
    let reason = status.canonical_reason().unwrap_or("").to_string();
    let text = resp
        .text()
        .await
        .map_err(|e| from_http(transport_error(&e)))?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(PveError::Auth { status: 401 });
    }
    let json: Option<Value> = serde_json::from_str(&text).ok();
    if status.is_success() {
        return json
            .map(|mut v| v["data"].take())
            .ok_or_else(|| PveError::BadResponse(format!("{method} {path}: body is not JSON")));
    }
    let mut message = json
        .as_ref()
        .and_then(|v| v["message"].as_str())
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    if let Some(errs) = json.as_ref().and_then(|v| v["errors"].as_object()) {
        let parts: Vec<String> = errs
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("").trim()))
            .collect();
        message = format!("{message} {}", parts.join("; ")).trim().to_string();
    }
    if message.is_empty() {
        message = if text.trim().is_empty() {
            format!("HTTP {} {reason}", status.as_u16())
        } else {
            text.chars().take(300).collect()
        };
    }
    Err(PveError::Api {
        method: method.to_string(),
        path: path.to_string(),
        status: status.as_u16(),
        message,
    })
}
