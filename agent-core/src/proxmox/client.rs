//! The PVE transport over our reqwest client: API-token or ticket auth (CSRF
//! token, one re-login on 401), TLS by CA / pinned fingerprint / explicit
//! insecure flag, lock-aware retries, and the multipart ISO upload. Typed
//! calls go through `proxmox-api`'s generated sub-clients driven by
//! [`super::PveApi`], which hands them to [`PveClient::call`].

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, COOKIE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::http::transport_error;
use crate::http::HttpError;
use crate::retry::{self, Attempt, RetryPolicy};
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
    /// Request parameters that cannot be sent as PVE form parameters.
    #[error("invalid Proxmox request parameters: {0}")]
    InvalidParams(String),
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
            PveError::InvalidParams(_) => "BAD_REQUEST",
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

    /// A failure a retry may heal: dropped connections, timeouts, 502/503/504,
    /// a 5xx without a specific PVE message, and PVE lock contention. Final
    /// PVE answers (`VM is locked`, parameter errors, …) and TLS errors are not.
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::Unreachable(_) | PveError::Timeout(_) => true,
            PveError::Api {
                status, message, ..
            } if *status >= 500 => {
                let generic = message.is_empty()
                    || message.starts_with("Internal Server Error")
                    || message.starts_with("Service Unavailable")
                    || message.starts_with("HTTP ");
                matches!(status, 502..=504) || generic || is_lock_timeout(message)
            }
            _ => false,
        }
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
fn is_lock_timeout(message: &str) -> bool {
    message.contains("got timeout")
        || message.contains("can't lock file")
        || message.contains("got no worker upid")
}

/// Percent-encodes one path segment (UPIDs, volume ids). The generated
/// sub-clients put segments into the path verbatim, so every caller passes
/// segments through this.
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

/// `data` of `POST /access/ticket`.
#[derive(Deserialize)]
struct TicketData {
    ticket: String,
    #[serde(rename = "CSRFPreventionToken")]
    csrf: String,
}

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

/// Transport for one PVE: one per target, shared (ticket sessions are reused).
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

    /// `POST /access/ticket`. Part of the transport (it must run without
    /// credentials and outside the re-login loop), so it does not go through
    /// the generated `access` sub-client.
    async fn fetch_ticket(&self, cancel: &CancellationToken) -> Result<Ticket, PveError> {
        let PveAuth::Password { username, password } = &self.conn.auth else {
            return Err(PveError::Config("no password configured".into()));
        };
        let user = if username.contains('@') {
            username.clone()
        } else {
            format!("{username}@pam")
        };
        const PATH: &str = "/access/ticket";
        let url = format!("{}{PATH}", self.api);
        let form = [("username", user.as_str()), ("password", password.as_str())];
        let body = retry::run(
            &self.conn.retry,
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
                            classify(read_body(r, "POST", PATH).await)
                        }
                    }
                }
            },
        )
        .await?;
        let data: TicketData = decode_data("POST", PATH, &body)?;
        Ok(Ticket {
            ticket: data.ticket,
            csrf: data.csrf,
            at: Instant::now(),
        })
    }

    async fn authorize(
        &self,
        rb: RequestBuilder,
        method: &Method,
        cancel: &CancellationToken,
    ) -> Result<RequestBuilder, PveError> {
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

    /// One API call below `/api2/json` (`path` already percent-encoded):
    /// `query` goes into the URL, `form` (POST/PUT) into an
    /// `application/x-www-form-urlencoded` body; `data` of the answer is
    /// decoded as `R`.
    pub async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        form: Option<&[(String, String)]>,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<R, PveError> {
        let body = self
            .send(&method, path, policy, cancel, |rb| {
                let rb = if query.is_empty() {
                    rb
                } else {
                    rb.query(query)
                };
                Ok(match form {
                    Some(form) => rb.form(form),
                    None => rb,
                })
            })
            .await?;
        decode_data(method.as_str(), path, &body)
    }

    /// Multipart `POST /nodes/{node}/storage/{storage}/upload` with a
    /// checksum; returns the `imgcopy` UPID. Our own code: the generated
    /// `upload` sub-client sends `filename` as a plain parameter and no file
    /// body.
    pub async fn upload(
        &self,
        node: &str,
        storage: &str,
        file: &UploadFile,
        cancel: &CancellationToken,
    ) -> Result<String, PveError> {
        let path = format!("/nodes/{}/storage/{}/upload", enc(node), enc(storage));
        let body = self
            .send(&Method::POST, &path, &self.conn.retry, cancel, |rb| {
                let part = reqwest::multipart::Part::bytes(file.bytes.clone())
                    .file_name(file.filename.clone())
                    .mime_str("application/octet-stream")
                    .map_err(|e| PveError::Config(e.to_string()))?;
                let form = reqwest::multipart::Form::new()
                    .text("content", file.content.clone())
                    .text("checksum-algorithm", "sha256")
                    .text("checksum", file.sha256.clone())
                    .part("filename", part);
                Ok(rb.multipart(form))
            })
            .await?;
        decode_data("POST", &path, &body)
    }

    /// Sends `method path` (the request body built by `build` for every
    /// attempt) with auth, the retry budget and one re-login after a 401 for
    /// ticket auth; returns the body of a successful answer.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
        build: impl Fn(RequestBuilder) -> Result<RequestBuilder, PveError>,
    ) -> Result<String, PveError> {
        let url = format!("{}{}", self.api, path);
        let mut relogged = false;
        loop {
            let res = retry::run(
                policy,
                cancel,
                || PveError::Cancelled,
                |attempt| {
                    let (url, build) = (&url, &build);
                    async move {
                        let rb = match build(self.http.request(method.clone(), url)) {
                            Ok(rb) => rb,
                            Err(e) => return Attempt::Fail(e),
                        };
                        let rb = match self.authorize(rb, method, cancel).await {
                            Ok(rb) => rb,
                            Err(e) => return Attempt::Fail(e),
                        };
                        tracing::debug!(%method, path, attempt, "proxmox request");
                        match rb.send().await {
                            Err(e) => retry_transport(e),
                            Ok(r) => classify(read_body(r, method.as_str(), path).await),
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

/// Retries [`PveError::is_transient`] failures.
fn classify<T>(res: Result<T, PveError>) -> Attempt<T, PveError> {
    match res {
        Ok(v) => Attempt::Done(v),
        Err(e) if e.is_transient() => Attempt::Retry {
            err: e,
            after: None,
        },
        Err(e) => Attempt::Fail(e),
    }
}

async fn read_body(resp: reqwest::Response, method: &str, path: &str) -> Result<String, PveError> {
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|e| from_http(transport_error(&e)))?;
    check_status(status, text, method, path)
}

/// The body of a 2xx answer, or the typed error: 401 → [`PveError::Auth`],
/// anything else → [`PveError::Api`] with PVE's `message` and per-parameter
/// `errors`.
fn check_status(
    status: StatusCode,
    text: String,
    method: &str,
    path: &str,
) -> Result<String, PveError> {
    if status.is_success() {
        return Ok(text);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(PveError::Auth { status: 401 });
    }
    let json: Option<Value> = serde_json::from_str(&text).ok();
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
            let reason = status.canonical_reason().unwrap_or("");
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

/// Decodes `data` of a PVE answer as `R`, straight from the body text: the
/// crate's decoders for indexed keys (`net[n]`) and for `additional_properties`
/// next to them ask for keys borrowed from the input, so decoding such a type
/// from an owned `serde_json::Value` fails.
pub(super) fn decode_data<R: DeserializeOwned>(
    method: &str,
    path: &str,
    body: &str,
) -> Result<R, PveError> {
    #[derive(Deserialize)]
    struct Envelope<R> {
        data: R,
    }
    serde_json::from_str::<Envelope<R>>(body)
        .map(|e| e.data)
        .map_err(|e| PveError::BadResponse(format!("{method} {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proxmox_api::nodes::node::qemu::vmid::config;

    fn api_error(status: u16, body: &str) -> PveError {
        let status = StatusCode::from_u16(status).unwrap();
        check_status(
            status,
            body.to_string(),
            "PUT",
            "/nodes/pve/qemu/101/config",
        )
        .unwrap_err()
    }

    #[test]
    fn data_is_unwrapped_into_the_typed_output() {
        let upid: String = decode_data(
            "POST",
            "/x",
            r#"{"data":"UPID:pve:1:2:3:qmstart:101:root@pam:"}"#,
        )
        .unwrap();
        assert_eq!(upid, "UPID:pve:1:2:3:qmstart:101:root@pam:");
        decode_data::<()>("PUT", "/x", r#"{"data":null}"#).unwrap();
        assert!(decode_data::<()>("PUT", "/x", r#"{"data":"UPID:x"}"#).is_err());
        let maybe: Option<String> = decode_data("DELETE", "/x", r#"{"data":null}"#).unwrap();
        assert_eq!(maybe, None);
        // indexed keys land in their typed maps, unknown keys in
        // additional_properties (both need borrowed keys, see decode_data)
        let cfg: config::GetOutput = decode_data(
            "GET",
            "/x",
            r#"{"data":{"digest":"ab","cores":2,"onboot":1,"ide2":"none,media=cdrom","net0":"virtio=AA:BB:CC:DD:EE:FF,bridge=vmbr0","x-future":"kept"}}"#,
        )
        .unwrap();
        assert_eq!(cfg.cores.map(|c| c.get()), Some(2));
        assert_eq!(cfg.onboot, Some(true));
        assert_eq!(
            cfg.ides.get(&2).map(String::as_str),
            Some("none,media=cdrom")
        );
        assert!(cfg.nets.contains_key(&0));
        assert_eq!(cfg.additional_properties["x-future"], "kept");
    }

    #[test]
    fn undecodable_data_is_a_bad_response() {
        let e =
            decode_data::<String>("GET", "/version", r#"{"data":{"version":"9"}}"#).unwrap_err();
        assert_eq!(e.code(), "PROXMOX_BAD_RESPONSE");
        assert!(e.to_string().contains("GET /version"), "{e}");
        let e = decode_data::<String>("GET", "/version", "<html>").unwrap_err();
        assert_eq!(e.code(), "PROXMOX_BAD_RESPONSE");
    }

    #[test]
    fn error_answers_map_to_typed_errors() {
        assert!(matches!(api_error(401, ""), PveError::Auth { status: 401 }));
        let e = api_error(
            400,
            r#"{"data":null,"errors":{"cores":"value must be >= 1\n"},"message":"Parameter verification failed.\n"}"#,
        );
        assert_eq!(e.code(), "PROXMOX_API_ERROR");
        assert_eq!(
            e.to_string(),
            "Proxmox API PUT /nodes/pve/qemu/101/config failed (HTTP 400): \
             Parameter verification failed. cores: value must be >= 1"
        );
        assert!(!e.is_transient());
        let e = api_error(500, "");
        assert_eq!(e.api_message(), Some("HTTP 500 Internal Server Error"));
        assert!(e.is_transient());
        let e = api_error(502, "<html>bad gateway</html>");
        assert_eq!(e.api_message(), Some("<html>bad gateway</html>"));
        assert!(e.is_transient());
    }

    #[test]
    fn lock_contention_is_retried_final_answers_are_not() {
        for (message, transient) in [
            (
                "can't lock file '/var/lock/qemu-server/lock-101.conf' - got timeout",
                true,
            ),
            ("got no worker upid - start worker failed", true),
            ("VM is locked (clone)", false),
            ("unable to create VM 101: config file already exists", false),
        ] {
            let e = api_error(500, &format!(r#"{{"data":null,"message":"{message}\n"}}"#));
            assert_eq!(e.is_transient(), transient, "{message}");
            assert_eq!(
                matches!(classify::<()>(Err(e)), Attempt::Retry { .. }),
                transient
            );
        }
        let exists = api_error(
            500,
            r#"{"data":null,"message":"unable to create VM 101: config file already exists"}"#,
        );
        assert!(exists.is_already_exists());
        assert!(PveError::Unreachable("reset".into()).is_transient());
        assert!(!PveError::Tls("fingerprint mismatch".into()).is_transient());
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(enc("local:iso/x.iso"), "local%3Aiso%2Fx.iso");
        assert_eq!(
            enc("UPID:pve:1:root@pam!botmox:"),
            "UPID%3Apve%3A1%3Aroot%40pam%21botmox%3A"
        );
    }
}
