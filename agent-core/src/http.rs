//! HTTPS client for the control server: certificate pinning from the pairing
//! bundle, request ids, per-call retry budgets with jittered exponential
//! backoff, `Retry-After` on 429, and final answers (409/410/422/other 4xx)
//! never retried.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::retry::{self, Attempt, RetryPolicy};
use crate::tls::{self, TlsError, TlsTrust};

pub const USER_AGENT: &str = concat!("botmox-agent/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("NETWORK_ERROR: {0}")]
    Network(String),
    #[error("TLS_ERROR: {0}")]
    Tls(String),
    #[error("TIMEOUT: {0}")]
    Timeout(String),
    /// The server answered with an error status.
    #[error("{code}: {message} (HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    #[error("PARSE_ERROR: {0}")]
    Parse(String),
    #[error("CANCELLED: the call was cancelled")]
    Cancelled,
    #[error("CONFIG_ERROR: {0}")]
    Config(String),
}

impl HttpError {
    /// The stable code (`NETWORK_ERROR`, `AGENT_REVOKED`, …).
    pub fn code(&self) -> &str {
        match self {
            HttpError::Network(_) => "NETWORK_ERROR",
            HttpError::Tls(_) => "TLS_ERROR",
            HttpError::Timeout(_) => "TIMEOUT",
            HttpError::Api { code, .. } => code,
            HttpError::Parse(_) => "PARSE_ERROR",
            HttpError::Cancelled => "CANCELLED",
            HttpError::Config(_) => "CONFIG_ERROR",
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<TlsError> for HttpError {
    fn from(e: TlsError) -> Self {
        HttpError::Config(e.to_string())
    }
}

/// Statuses worth another attempt. Everything else (400, 401, 403, 404,
/// 409, 410, 422, …) is a final answer.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::LOCKED
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.signed_duration_since(chrono::Utc::now());
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Classifies a reqwest transport error.
pub fn transport_error(e: &reqwest::Error) -> HttpError {
    let chain = tls::error_chain(e);
    let lower = chain.to_ascii_lowercase();
    if e.is_timeout() {
        HttpError::Timeout(chain)
    } else if lower.contains("certificate")
        || lower.contains("fingerprint")
        || lower.contains("unknownissuer")
        || lower.contains("bad signature")
    {
        HttpError::Tls(chain)
    } else {
        HttpError::Network(chain)
    }
}

/// Retry budgets per kind of call (after Buildkite's agent); the table is in
/// docs/protocol.md §8.
pub mod budgets {
    use super::*;
    /// register: a pairing code is single-use and the server is idempotent on it.
    pub fn register() -> RetryPolicy {
        RetryPolicy::exponential(
            10,
            Duration::from_secs(2),
            Duration::from_secs(30),
            Duration::from_secs(300),
        )
    }
    pub fn heartbeat() -> RetryPolicy {
        RetryPolicy::exponential(
            5,
            Duration::from_secs(1),
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
    }
    /// Final reports (idempotent on the server). Short on purpose: a report
    /// is in the durable outbox before it is sent, and the runtime loop
    /// keeps flushing it with its own backoff, which a heartbeat that works
    /// again interrupts at once. A long in-call retry here would sleep
    /// through the server's return (up to a minute), holding the report and
    /// every new command back and risking the lease.
    pub fn report() -> RetryPolicy {
        RetryPolicy::exponential(
            4,
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(15),
        )
    }
    /// Lease renewals: must finish well within `lease_s / 3`.
    pub fn renew(window: Duration) -> RetryPolicy {
        RetryPolicy::exponential(
            4,
            Duration::from_millis(500),
            Duration::from_secs(5),
            window.max(Duration::from_secs(1)),
        )
    }
    /// The long poll: 3 attempts (network errors, 5xx, 429 with its
    /// `Retry-After`), then the loop's own backoff takes over.
    pub fn poll() -> RetryPolicy {
        RetryPolicy::exponential(
            3,
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(90),
        )
    }
    /// Output chunks: best effort, never blocks a command for long.
    pub fn output() -> RetryPolicy {
        RetryPolicy::exponential(
            3,
            Duration::from_millis(500),
            Duration::from_secs(2),
            Duration::from_secs(10),
        )
    }
    /// The last outbox flush on shutdown.
    pub fn final_flush() -> RetryPolicy {
        RetryPolicy::exponential(
            2,
            Duration::from_millis(500),
            Duration::from_secs(1),
            Duration::from_secs(3),
        )
    }
}

/// A JSON answer and its request id.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub request_id: String,
    /// `data` of a `{success:true,data}` envelope, else the whole body
    /// (`Null` for an empty body).
    pub data: Value,
}

/// Client for the control server's JSON API.
#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    base: url::Url,
    trust: TlsTrust,
    token: Option<String>,
}

impl ServerClient {
    /// `server_url` like `https://host:8443`; `pin` = the bundle's
    /// `server_cert_sha256` when present.
    pub fn new(server_url: &str, pin: Option<&str>, timeout: Duration) -> Result<Self, HttpError> {
        let trust = match pin {
            Some(fp) => TlsTrust::Pinned(fp.to_string()),
            None => TlsTrust::System,
        };
        Self::with_trust(server_url, trust, timeout)
    }

    pub fn with_trust(
        server_url: &str,
        trust: TlsTrust,
        timeout: Duration,
    ) -> Result<Self, HttpError> {
        let base = url::Url::parse(server_url.trim_end_matches('/'))
            .map_err(|e| HttpError::Config(format!("bad server URL {server_url:?}: {e}")))?;
        let http = tls::build_client(&trust, timeout, USER_AGENT)?;
        Ok(ServerClient {
            http,
            base,
            trust,
            token: None,
        })
    }

    /// Sets the bearer token (the agent token after registration).
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    pub fn trust(&self) -> &TlsTrust {
        &self.trust
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// One logical call with retries; the same request id is sent on every
    /// attempt (`x-request-id`, `x-correlation-id`), plus `x-attempt`.
    pub async fn call<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<ApiResponse, HttpError> {
        self.call_with_timeout(method, path, body, policy, cancel, None)
            .await
    }

    /// [`ServerClient::call`] with a per-request timeout replacing the
    /// client's default (the long poll needs one a little above its
    /// `timeout_ms`).
    pub async fn call_with_timeout<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        timeout: Option<Duration>,
    ) -> Result<ApiResponse, HttpError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = match body {
            Some(b) => Some(
                serde_json::to_vec(b)
                    .map_err(|e| HttpError::Parse(format!("request body: {e}")))?,
            ),
            None => None,
        };
        let url = self.url(path);
        retry::run(
            policy,
            cancel,
            || HttpError::Cancelled,
            |attempt| {
                let method = method.clone();
                let body = body.clone();
                let request_id = request_id.clone();
                let url = url.clone();
                async move {
                    self.attempt(method, &url, body, &request_id, attempt, timeout)
                        .await
                }
            },
        )
        .await
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        body: Option<Vec<u8>>,
        request_id: &str,
        attempt: u32,
        timeout: Option<Duration>,
    ) -> Attempt<ApiResponse, HttpError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-request-id", v.clone());
            headers.insert("x-correlation-id", v);
        }
        headers.insert("x-attempt", HeaderValue::from(attempt));
        if let Some(t) = &self.token {
            match HeaderValue::from_str(&format!("Bearer {t}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    headers.insert(AUTHORIZATION, v);
                }
                Err(_) => {
                    return Attempt::Fail(HttpError::Config("token is not a valid header".into()))
                }
            }
        }
        let mut rb = self.http.request(method.clone(), url).headers(headers);
        if let Some(t) = timeout {
            rb = rb.timeout(t);
        }
        if let Some(b) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(b);
        }
        tracing::debug!(%method, url, request_id, attempt, "server request");
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = transport_error(&e);
                return match err {
                    // A wrong pin or bad certificate does not heal by retrying.
                    HttpError::Tls(_) => Attempt::Fail(err),
                    _ => Attempt::Retry { err, after: None },
                };
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Retry {
                    err: transport_error(&e),
                    after: None,
                }
            }
        };
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) if status.is_success() => {
                    return Attempt::Fail(HttpError::Parse(format!("response body: {e}")))
                }
                Err(_) => Value::String(text.chars().take(500).collect()),
            }
        };
        if status.is_success() {
            let data = match &json {
                Value::Object(o) if o.get("success") == Some(&Value::Bool(true)) => {
                    o.get("data").cloned().unwrap_or(Value::Null)
                }
                _ => json,
            };
            return Attempt::Done(ApiResponse {
                status: status.as_u16(),
                request_id: request_id.to_string(),
                data,
            });
        }
        let (code, message) = match &json {
            Value::Object(o) => {
                let e = o.get("error").unwrap_or(&json);
                (
                    e.get("code")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| default_code(status)),
                    e.get("message")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| status.to_string()),
                )
            }
            Value::String(s) => (default_code(status), s.clone()),
            _ => (default_code(status), status.to_string()),
        };
        let err = HttpError::Api {
            status: status.as_u16(),
            code,
            message,
            request_id: request_id.to_string(),
        };
        if is_retryable_status(status) {
            Attempt::Retry {
                err,
                after: if status == StatusCode::TOO_MANY_REQUESTS {
                    retry_after.or(Some(Duration::from_secs(45)))
                } else {
                    retry_after
                },
            }
        } else {
            Attempt::Fail(err)
        }
    }
}

fn default_code(status: StatusCode) -> String {
    match status.as_u16() {
        429 => "RATE_LIMITED".into(),
        401 => "UNAUTHORIZED".into(),
        _ => "API_ERROR".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scripted plain-HTTP/1.1 server: answers the i-th connection with
    /// `responses[i]` (status line + headers + body), records request heads.
    async fn scripted(responses: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        tokio::spawn(async move {
            for r in responses {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                seen2
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).to_string());
                if r == "DROP" {
                    drop(s);
                    continue;
                }
                let (head, body) = r.split_once("\n\n").unwrap_or((r, ""));
                let msg = format!(
                    "HTTP/1.1 {head}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(msg.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn fast(attempts: u32) -> RetryPolicy {
        RetryPolicy::exponential(
            attempts,
            Duration::from_millis(100),
            Duration::from_millis(200),
            Duration::from_secs(10),
        )
    }

    #[tokio::test]
    async fn retries_5xx_and_drops_then_succeeds_with_one_request_id() {
        let (url, seen) = scripted(vec![
            "503 Service Unavailable\n\n{}",
            "DROP",
            "200 OK\n\n{\"success\":true,\"data\":{\"ok\":1}}",
        ])
        .await;
        let mut c =
            ServerClient::with_trust(&url, TlsTrust::System, Duration::from_secs(5)).unwrap();
        c.set_token(Some("bmxa_secret".into()));
        let r = c
            .call(
                Method::POST,
                "/api/v1/x",
                Some(&serde_json::json!({"a":1})),
                &fast(5),
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.data, serde_json::json!({"ok":1}));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let id = |s: &str| {
            s.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("x-request-id:"))
                .map(|l| l[13..].trim().to_string())
                .unwrap()
        };
        assert_eq!(id(&seen[0]), id(&seen[2]));
        assert_eq!(id(&seen[0]), r.request_id);
        assert!(seen[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer bmxa_secret"));
        assert!(seen[2].contains("x-attempt: 3"));
    }

    #[tokio::test]
    async fn final_answers_are_not_retried() {
        for status in [
            "409 Conflict",
            "410 Gone",
            "422 Unprocessable Entity",
            "403 Forbidden",
        ] {
            let resp: &'static str = Box::leak(
                format!("{status}\n\n{{\"success\":false,\"error\":{{\"code\":\"AGENT_REVOKED\",\"message\":\"revoked\"}}}}")
                    .into_boxed_str(),
            );
            let (url, seen) = scripted(vec![resp, "200 OK\n\n{}"]).await;
            let c =
                ServerClient::with_trust(&url, TlsTrust::System, Duration::from_secs(5)).unwrap();
            let err = c
                .call::<Value>(Method::GET, "/x", None, &fast(5), &CancellationToken::new())
                .await
                .unwrap_err();
            assert_eq!(err.code(), "AGENT_REVOKED");
            assert_eq!(
                seen.lock().unwrap().len(),
                1,
                "{status} must not be retried"
            );
        }
    }

    #[tokio::test]
    async fn obeys_retry_after_and_gives_up_after_budget() {
        let (url, seen) = scripted(vec![
            "429 Too Many Requests\nRetry-After: 1\n\n{}",
            "200 OK\n\n{\"v\":2}",
        ])
        .await;
        let c = ServerClient::with_trust(&url, TlsTrust::System, Duration::from_secs(5)).unwrap();
        let t = std::time::Instant::now();
        let r = c
            .call::<Value>(Method::GET, "/x", None, &fast(3), &CancellationToken::new())
            .await
            .unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "waited {:?}",
            t.elapsed()
        );
        assert_eq!(r.data["v"], 2);
        assert_eq!(seen.lock().unwrap().len(), 2);

        let (url, seen) = scripted(vec!["500 Internal Server Error\n\n{}"; 3]).await;
        let c = ServerClient::with_trust(&url, TlsTrust::System, Duration::from_secs(5)).unwrap();
        let err = c
            .call::<Value>(Method::GET, "/x", None, &fast(2), &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert!(!is_retryable_status(StatusCode::CONFLICT));
        assert!(!is_retryable_status(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!is_retryable_status(StatusCode::GONE));
        assert!(is_retryable_status(StatusCode::BAD_GATEWAY));
    }
}
