//! Server configuration: one set of keys readable from flags, `BOTMOX_*`
//! environment variables and a TOML file, in that order of precedence.
//!
//! The naming rule is mechanical: the TOML key `foo_bar` is the flag
//! `--foo-bar` and the environment variable `BOTMOX_FOO_BAR`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// Flags shared by every subcommand that touches the database.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// Directory for the SQLite database, TLS certificate and initial password.
    #[arg(long, global = true, env = "BOTMOX_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default: SQLite in the data dir.
    #[arg(long, global = true, env = "BOTMOX_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (keys as in `docs/configuration.md`).
    #[arg(long, global = true, env = "BOTMOX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Every tunable of `serve`. Also the schema of the TOML file (written
/// back by `Serialize`, which leaves unset options out).
#[derive(Debug, Clone, Default, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,
    #[arg(skip)]
    pub database_url: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8443].
    #[arg(long, env = "BOTMOX_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// `self-signed` (default), `off`, or `CERT.pem:KEY.pem`.
    #[arg(long, env = "BOTMOX_TLS", value_name = "MODE")]
    pub tls: Option<String>,
    /// Extra subject alternative names for the self-signed certificate.
    #[arg(
        long,
        env = "BOTMOX_TLS_SAN",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub tls_san: Option<Vec<String>>,
    /// Public base URL agents and browsers use (e.g. https://botmox.example.com).
    #[arg(long, env = "BOTMOX_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// `text` (default) or `json`.
    #[arg(long, env = "BOTMOX_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Prometheus `/metrics`: `off` (default), `admin` (admin/infra bearer) or `public`.
    #[arg(long, env = "BOTMOX_METRICS", value_name = "MODE")]
    pub metrics: Option<String>,
    /// Browser origins allowed by CORS (none by default).
    #[arg(
        long,
        env = "BOTMOX_CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub cors_allowed_origins: Option<Vec<String>>,
    /// Maximum request body in bytes [default: 1048576].
    #[arg(long, env = "BOTMOX_BODY_LIMIT_BYTES", value_name = "BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// Lifetime of a login session token in hours [default: 12].
    #[arg(long, env = "BOTMOX_SESSION_TTL_HOURS", value_name = "HOURS")]
    pub session_ttl_hours: Option<u64>,
    /// Requests per minute per caller on the authenticated API [default: 600].
    #[arg(long, env = "BOTMOX_API_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub api_rate_limit_per_minute: Option<u32>,
    /// Requests per minute per IP on public endpoints such as login [default: 20].
    #[arg(long, env = "BOTMOX_PUBLIC_RATE_LIMIT_PER_MINUTE", value_name = "N")]
    pub public_rate_limit_per_minute: Option<u32>,
    /// Requests of people and API tokens worked on at once; beyond it 429
    /// `SERVER_BUSY` [default: 512].
    #[arg(long, env = "BOTMOX_API_MAX_IN_FLIGHT", value_name = "N")]
    pub api_max_in_flight: Option<usize>,
    /// Requests of agents worked on at once, a budget of their own; beyond
    /// it 429 `SERVER_BUSY` (a parked long poll does not count) [default: 512].
    #[arg(long, env = "BOTMOX_AGENT_MAX_IN_FLIGHT", value_name = "N")]
    pub agent_max_in_flight: Option<usize>,
    /// How long a request over its in-flight limit waits for a place
    /// before it is shed with 429 [default: 1000].
    #[arg(long, env = "BOTMOX_BUSY_QUEUE_MS", value_name = "MS")]
    pub busy_queue_ms: Option<u64>,
    /// `Retry-After` of a shed request: 1 s plus a random 0..=N s, so a
    /// crowd comes back spread out [default: 10].
    #[arg(long, env = "BOTMOX_BUSY_RETRY_SPREAD_SECONDS", value_name = "SECONDS")]
    pub busy_retry_spread_seconds: Option<u64>,
    /// Take the client address from `X-Forwarded-For` (only behind a reverse
    /// proxy): the entry `trusted_proxy_hops` from the right.
    #[arg(long, env = "BOTMOX_TRUST_FORWARDED_FOR", value_name = "BOOL")]
    pub trust_forwarded_for: Option<bool>,
    /// How many reverse proxies in front of the server append to
    /// `X-Forwarded-For` [default: 1]. The client address is that many
    /// entries from the right; entries further left are client-supplied and
    /// ignored.
    #[arg(long, env = "BOTMOX_TRUSTED_PROXY_HOPS", value_name = "N")]
    pub trusted_proxy_hops: Option<u32>,
    /// External JWT: HS256 shared secret (Supabase `JWT_SECRET`).
    #[arg(
        long,
        env = "BOTMOX_JWT_HS256_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_hs256_secret: Option<String>,
    /// External JWT: JWKS URL for asymmetric keys.
    #[arg(long, env = "BOTMOX_JWT_JWKS_URL", value_name = "URL")]
    pub jwt_jwks_url: Option<String>,
    /// External JWT: required `iss` [default: supabase].
    #[arg(long, env = "BOTMOX_JWT_ISSUER", value_name = "ISS")]
    pub jwt_issuer: Option<String>,
    /// External JWT: accepted `aud` values [default: authenticated].
    #[arg(
        long,
        env = "BOTMOX_JWT_AUDIENCE",
        value_delimiter = ',',
        value_name = "AUD"
    )]
    pub jwt_audience: Option<Vec<String>>,
    /// External JWT: tenant role when `app_metadata.roles` names none [default: viewer].
    #[arg(long, env = "BOTMOX_JWT_DEFAULT_ROLE", value_name = "ROLE")]
    pub jwt_default_role: Option<String>,
    /// Agents heartbeat this often, in seconds [default: 30].
    #[arg(
        long,
        env = "BOTMOX_HEARTBEAT_INTERVAL_SECONDS",
        value_name = "SECONDS"
    )]
    pub heartbeat_interval_seconds: Option<u64>,
    /// Long-poll timeout agents use for `commands/next`, in seconds [default: 50].
    #[arg(long, env = "BOTMOX_POLL_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub poll_timeout_seconds: Option<u64>,
    /// Lease on a claimed command, in seconds [default: 120].
    #[arg(long, env = "BOTMOX_LEASE_SECONDS", value_name = "SECONDS")]
    pub lease_seconds: Option<u64>,
    /// Claims per command before it is dead-lettered [default: 3].
    #[arg(long, env = "BOTMOX_COMMAND_MAX_ATTEMPTS", value_name = "N")]
    pub command_max_attempts: Option<u32>,
    /// Agent token lifetime in days [default: 30].
    #[arg(long, env = "BOTMOX_AGENT_TOKEN_TTL_DAYS", value_name = "DAYS")]
    pub agent_token_ttl_days: Option<u32>,
    /// An agent without heartbeat for this long is `offline` [default: 600].
    #[arg(
        long,
        env = "BOTMOX_AGENT_OFFLINE_AFTER_SECONDS",
        value_name = "SECONDS"
    )]
    pub agent_offline_after_seconds: Option<u64>,
    /// How often the sweeper requeues lost leases and expires commands [default: 5].
    #[arg(long, env = "BOTMOX_SWEEP_INTERVAL_SECONDS", value_name = "SECONDS")]
    pub sweep_interval_seconds: Option<u64>,
    /// How often the heartbeat write-behind flushes agents' last-seen times
    /// to the database, in milliseconds (10..60000) [default: 5000].
    #[arg(long, env = "BOTMOX_HEARTBEAT_FLUSH_INTERVAL_MS", value_name = "MS")]
    pub heartbeat_flush_interval_ms: Option<u64>,
    /// How long a verified agent token is trusted without asking the
    /// database, in seconds (0..300; 0: no cache) [default: 10].
    #[arg(long, env = "BOTMOX_AGENT_AUTH_CACHE_SECONDS", value_name = "SECONDS")]
    pub agent_auth_cache_seconds: Option<u64>,
    /// Seconds to let in-flight requests finish on shutdown [default: 30].
    #[arg(long, env = "BOTMOX_SHUTDOWN_GRACE_SECONDS", value_name = "SECONDS")]
    pub shutdown_grace_seconds: Option<u64>,
    /// Lifetime of a VM's provisioning token in days (1..3650) [default: 30].
    #[arg(long, env = "BOTMOX_PROVISIONING_TOKEN_TTL_DAYS", value_name = "DAYS")]
    pub provisioning_token_ttl_days: Option<u32>,
    /// Also detach (and delete) the provisioning ISO when a VM reports
    /// `completed` with status `failed` [default: false: kept for diagnosis].
    #[arg(
        long,
        env = "BOTMOX_PROVISIONING_DETACH_ON_FAILURE",
        value_name = "BOOL"
    )]
    pub provisioning_detach_on_failure: Option<bool>,
    /// Refuse provisioning (issuing tokens, guests' validate-token and
    /// report-progress) for a tenant without an active tenant license for
    /// the token's issuer [default: true].
    #[arg(long, env = "BOTMOX_PROVISIONING_REQUIRE_LICENSE", value_name = "BOOL")]
    pub provisioning_require_license: Option<bool>,
    /// VM creation jobs: how long an item waits for its offline agent
    /// (`waiting_for_agent`) before it fails (10..86400) [default: 1800].
    #[arg(
        long,
        env = "BOTMOX_VM_JOBS_AGENT_WAIT_SECONDS",
        value_name = "SECONDS"
    )]
    pub vm_jobs_agent_wait_seconds: Option<u64>,
    /// VM creation jobs: deadline of a VM's clone (dispatch and the clone
    /// task) (10..86400) [default: 1800].
    #[arg(
        long,
        env = "BOTMOX_VM_JOBS_CLONE_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub vm_jobs_clone_timeout_seconds: Option<u64>,
    /// VM creation jobs: deadline of every other agent step (configure,
    /// ISO, attach, start, detach) (10..86400) [default: 600].
    #[arg(
        long,
        env = "BOTMOX_VM_JOBS_STEP_TIMEOUT_SECONDS",
        value_name = "SECONDS"
    )]
    pub vm_jobs_step_timeout_seconds: Option<u64>,
    /// VM creation jobs: default deadline of the guest's installation
    /// (a job's `install_timeout_minutes` overrides it) (1..1440) [default: 120].
    #[arg(
        long,
        env = "BOTMOX_VM_JOBS_INSTALL_TIMEOUT_MINUTES",
        value_name = "MINUTES"
    )]
    pub vm_jobs_install_timeout_minutes: Option<u64>,
    /// Execution lease TTL in seconds; each heartbeat extends the lease by
    /// this much (60..3600) [default: 300].
    #[arg(long, env = "BOTMOX_LICENSE_LEASE_TTL_SECONDS", value_name = "SECONDS")]
    pub license_lease_ttl_seconds: Option<u64>,
    /// Longest an execution lease lives however often it heartbeats, in
    /// seconds (at least the TTL, at most 2592000) [default: 86400].
    #[arg(
        long,
        env = "BOTMOX_LICENSE_LEASE_MAX_LIFETIME_SECONDS",
        value_name = "SECONDS"
    )]
    pub license_lease_max_lifetime_seconds: Option<u64>,
    /// HS256 key (at least 32 characters) that signs lease tokens instead
    /// of `<data_dir>/lease-signing-key`.
    #[arg(
        long,
        env = "BOTMOX_LICENSE_LEASE_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub license_lease_secret: Option<String>,
    /// Where objects (artifacts, theme assets) live: `local` (default:
    /// `<data_dir>/objects`), `file:///ABS/DIR`, or
    /// `s3://BUCKET?endpoint=URL&region=REGION` (S3 or any S3-compatible
    /// server, path-style requests).
    #[arg(long, env = "BOTMOX_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,
    /// S3 access key id (default: the standard AWS environment / instance
    /// credentials).
    #[arg(
        long,
        env = "BOTMOX_OBJECT_STORE_ACCESS_KEY_ID",
        value_name = "ID",
        hide_env_values = true
    )]
    pub object_store_access_key_id: Option<String>,
    /// S3 secret access key (with `object_store_access_key_id`).
    #[arg(
        long,
        env = "BOTMOX_OBJECT_STORE_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub object_store_secret_access_key: Option<String>,
    /// Lifetime of signed download/upload URLs in seconds, clamped to
    /// 60..300 [default: 300].
    #[arg(long, env = "BOTMOX_OBJECT_URL_TTL_SECONDS", value_name = "SECONDS")]
    pub object_url_ttl_seconds: Option<u64>,
    /// Largest artifact uploaded through the server, in bytes
    /// [default: 2147483648].
    #[arg(long, env = "BOTMOX_ARTIFACT_MAX_BYTES", value_name = "BYTES")]
    pub artifact_max_bytes: Option<u64>,
}

impl Settings {
    /// Fill every unset key from `other` (lower precedence).
    fn or(mut self, other: Settings) -> Settings {
        macro_rules! fill {
            ($($f:ident),* $(,)?) => { $( if self.$f.is_none() { self.$f = other.$f; } )* };
        }
        fill!(
            data_dir,
            database_url,
            listen,
            tls,
            tls_san,
            public_url,
            log_format,
            metrics,
            cors_allowed_origins,
            body_limit_bytes,
            session_ttl_hours,
            api_rate_limit_per_minute,
            public_rate_limit_per_minute,
            api_max_in_flight,
            agent_max_in_flight,
            busy_queue_ms,
            busy_retry_spread_seconds,
            trust_forwarded_for,
            trusted_proxy_hops,
            jwt_hs256_secret,
            jwt_jwks_url,
            jwt_issuer,
            jwt_audience,
            jwt_default_role,
            shutdown_grace_seconds,
            provisioning_token_ttl_days,
            provisioning_detach_on_failure,
            provisioning_require_license,
            vm_jobs_agent_wait_seconds,
            vm_jobs_clone_timeout_seconds,
            vm_jobs_step_timeout_seconds,
            vm_jobs_install_timeout_minutes,
            license_lease_ttl_seconds,
            license_lease_max_lifetime_seconds,
            license_lease_secret,
            object_store,
            object_store_access_key_id,
            object_store_secret_access_key,
            object_url_ttl_seconds,
            artifact_max_bytes,
            heartbeat_interval_seconds,
            poll_timeout_seconds,
            lease_seconds,
            command_max_attempts,
            agent_token_ttl_days,
            agent_offline_after_seconds,
            sweep_interval_seconds,
            heartbeat_flush_interval_ms,
            agent_auth_cache_seconds,
        );
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    SelfSigned,
    Off,
    Files { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    Off,
    Admin,
    Public,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub hs256_secret: Option<String>,
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: Vec<String>,
    pub default_role: Role,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub tls: TlsMode,
    pub tls_san: Vec<String>,
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    pub metrics: MetricsMode,
    pub cors_allowed_origins: Vec<String>,
    pub body_limit_bytes: usize,
    pub session_ttl_hours: u64,
    pub api_rate_limit_per_minute: u32,
    pub public_rate_limit_per_minute: u32,
    pub api_max_in_flight: usize,
    pub agent_max_in_flight: usize,
    pub busy_queue_ms: u64,
    pub busy_retry_spread_seconds: u64,
    pub trust_forwarded_for: bool,
    /// Reverse proxies that append to `X-Forwarded-For` (1..=10).
    pub trusted_proxy_hops: u32,
    pub jwt: Option<JwtConfig>,
    pub shutdown_grace_seconds: u64,
    pub bus: BusConfig,
    pub provisioning: ProvisioningConfig,
    pub vm_jobs: VmJobsConfig,
    pub licensing: LicensingConfig,
    pub objects: ObjectsConfig,
}

/// The object store (`crate::objects`) and what is kept in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectsConfig {
    pub store: ObjectStoreKind,
    /// Signed URL lifetime, 60..=300 s.
    pub url_ttl_s: u64,
    /// Largest artifact `PUT …/content` accepts.
    pub artifact_max_bytes: u64,
}

/// Shortest and longest signed URL lifetime (the original's clamp).
pub const OBJECT_URL_TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectStoreKind {
    /// Files under this directory; the server signs and serves the URLs.
    Local { dir: PathBuf },
    /// An S3 bucket; URLs are presigned (SigV4) by the server.
    S3(S3Config),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// `None`: AWS (`https://s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl ObjectStoreKind {
    /// `local:<dir>` or `s3://bucket` (no secrets), for logs and readiness.
    pub fn describe(&self) -> String {
        match self {
            ObjectStoreKind::Local { dir } => format!("local:{}", dir.display()),
            ObjectStoreKind::S3(s) => match &s.endpoint {
                Some(e) => format!("s3://{}?endpoint={e}&region={}", s.bucket, s.region),
                None => format!("s3://{}?region={}", s.bucket, s.region),
            },
        }
    }
}

/// Parse `object_store`: `local`, `file:///ABS/DIR` or
/// `s3://BUCKET?endpoint=URL&region=REGION`.
fn parse_object_store(
    raw: Option<&str>,
    data_dir: &Path,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
) -> Result<ObjectStoreKind, ConfigError> {
    const KEY: &str = "object_store";
    let raw = raw.unwrap_or("local");
    if access_key_id.is_some() != secret_access_key.is_some() {
        return Err(invalid(
            "object_store_access_key_id/object_store_secret_access_key",
            "set both or neither",
        ));
    }
    let s3_keys = access_key_id.is_some();
    if raw == "local" || raw.starts_with("file:") {
        if s3_keys {
            return Err(invalid(
                "object_store_access_key_id",
                "S3 credentials are set but object_store is not s3://…",
            ));
        }
        if raw == "local" {
            return Ok(ObjectStoreKind::Local {
                dir: data_dir.join("objects"),
            });
        }
        let dir = raw
            .strip_prefix("file://")
            .filter(|d| d.starts_with('/') && d.len() > 1)
            .ok_or_else(|| invalid(KEY, "use file:///ABSOLUTE/DIR"))?;
        return Ok(ObjectStoreKind::Local {
            dir: PathBuf::from(dir),
        });
    }
    let url = reqwest::Url::parse(raw).map_err(|e| {
        invalid(
            KEY,
            format!("`{raw}` is not local, file:///DIR or s3://BUCKET?endpoint=…&region=…: {e}"),
        )
    })?;
    if url.scheme() != "s3" {
        return Err(invalid(
            KEY,
            format!(
                "unknown scheme `{}`: use local, file:///DIR or s3://BUCKET",
                url.scheme()
            ),
        ));
    }
    let bucket = url.host_str().unwrap_or_default().to_string();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(invalid(
            KEY,
            "the bucket name must be 3-63 characters of a-z 0-9 . -",
        ));
    }
    if !(url.path().is_empty() || url.path() == "/") || url.username() != "" || url.port().is_some()
    {
        return Err(invalid(
            KEY,
            "use s3://BUCKET?endpoint=URL&region=REGION (no path, port or user; the endpoint carries the port)",
        ));
    }
    let (mut endpoint, mut region) = (None, None);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "endpoint" if endpoint.is_none() => {
                if !(v.starts_with("http://") || v.starts_with("https://")) {
                    return Err(invalid(KEY, "endpoint must be an http(s) URL"));
                }
                endpoint = Some(v.trim_end_matches('/').to_string());
            }
            "region" if region.is_none() => {
                if v.is_empty()
                    || v.len() > 64
                    || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(invalid(KEY, "region must be 1-64 characters of a-z 0-9 -"));
                }
                region = Some(v.to_string());
            }
            other => {
                return Err(invalid(
                    KEY,
                    format!("unknown or repeated parameter `{other}` (endpoint, region)"),
                ))
            }
        }
    }
    Ok(ObjectStoreKind::S3(S3Config {
        bucket,
        endpoint,
        region: region.unwrap_or_else(|| "us-east-1".into()),
        access_key_id,
        secret_access_key,
    }))
}

/// Execution leases (`/api/v1/license/*`).
#[derive(Debug, Clone)]
pub struct LicensingConfig {
    pub lease_ttl_s: u64,
    pub lease_max_lifetime_s: u64,
    /// Configured signing secret; `None`: the key file in the data dir.
    pub lease_secret: Option<String>,
}

/// Provisioning tokens and the auto-detach.
#[derive(Debug, Clone, Copy)]
pub struct ProvisioningConfig {
    pub token_ttl_days: u32,
    pub detach_on_failure: bool,
    pub require_license: bool,
}

/// VM creation jobs' deadlines (`domains::vm_jobs`).
#[derive(Debug, Clone, Copy)]
pub struct VmJobsConfig {
    pub agent_wait_s: u64,
    pub clone_timeout_s: u64,
    pub step_timeout_s: u64,
    pub install_timeout_min: u64,
}

/// Command-bus timing. The server dictates these to agents.
#[derive(Debug, Clone, Copy)]
pub struct BusConfig {
    pub heartbeat_interval_s: u64,
    pub poll_timeout_s: u64,
    pub lease_s: u64,
    pub max_attempts: u32,
    pub agent_token_ttl_days: u32,
    pub offline_after_s: u64,
    pub sweep_interval_s: u64,
    /// Heartbeat write-behind: last-seen times reach the database at most
    /// this long after the heartbeat (see `domains::agents::presence`).
    pub heartbeat_flush_ms: u64,
    /// Agent token cache lifetime (0: every request asks the database).
    pub agent_auth_cache_s: u64,
}

impl BusConfig {
    /// An agent is `online` while its stored last heartbeat is at most
    /// this old: two heartbeat intervals plus one flush interval (a
    /// heartbeat may sit in the write-behind buffer that long).
    pub fn online_window_ms(&self) -> i64 {
        (2 * self.heartbeat_interval_s * 1000 + self.heartbeat_flush_ms) as i64
    }

    /// Silence after which an agent is `offline` (never inside the online window).
    pub fn offline_after_ms(&self) -> i64 {
        (self.offline_after_s as i64 * 1000).max(self.online_window_ms())
    }
}

impl Config {
    /// Resolve flags (already merged with env by clap) over the config file over defaults.
    pub fn resolve(common: &CommonArgs, cli: Settings) -> Result<Config, ConfigError> {
        let cli = Settings {
            data_dir: common.data_dir.clone(),
            database_url: common.database_url.clone(),
            ..cli
        };
        let file = match &common.config {
            Some(path) => load_file(path)?,
            None => Settings::default(),
        };
        Self::from_settings(cli.or(file))
    }

    /// Validate merged settings and apply defaults.
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let data_dir = s.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
        let database_url = match s.database_url {
            Some(url) => {
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://"))
                {
                    return Err(invalid(
                        "database_url",
                        "expected sqlite://PATH, postgres://… or postgresql://…",
                    ));
                }
                url
            }
            None => default_sqlite_url(&data_dir),
        };
        let listen_raw = s.listen.unwrap_or_else(|| "127.0.0.1:8443".into());
        let listen: SocketAddr = listen_raw.parse().map_err(|_| {
            invalid(
                "listen",
                format!("`{listen_raw}` is not IP:PORT (e.g. 127.0.0.1:8443 or 0.0.0.0:443)"),
            )
        })?;
        let tls = parse_tls(s.tls.as_deref().unwrap_or("self-signed"))?;
        let log_format = match s.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format",
                    format!("`{other}`: use text or json"),
                ))
            }
        };
        let metrics = match s.metrics.as_deref().unwrap_or("off") {
            "off" => MetricsMode::Off,
            "admin" => MetricsMode::Admin,
            "public" => MetricsMode::Public,
            other => {
                return Err(invalid(
                    "metrics",
                    format!("`{other}`: use off, admin or public"),
                ))
            }
        };
        if let Some(url) = &s.public_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(invalid("public_url", "must start with https:// or http://"));
            }
        }
        let cors_allowed_origins = s.cors_allowed_origins.unwrap_or_default();
        for o in &cors_allowed_origins {
            if o == "*" {
                return Err(invalid(
                    "cors_allowed_origins",
                    "`*` is not allowed; list each origin (scheme://host[:port])",
                ));
            }
            if !(o.starts_with("https://") || o.starts_with("http://")) || o.ends_with('/') {
                return Err(invalid(
                    "cors_allowed_origins",
                    format!("`{o}` is not an origin like https://app.example.com"),
                ));
            }
        }
        let body_limit_bytes = s.body_limit_bytes.unwrap_or(1024 * 1024);
        if !(1024..=64 * 1024 * 1024).contains(&body_limit_bytes) {
            return Err(invalid(
                "body_limit_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        let session_ttl_hours = s.session_ttl_hours.unwrap_or(12);
        if !(1..=24 * 90).contains(&session_ttl_hours) {
            return Err(invalid("session_ttl_hours", "must be between 1 and 2160"));
        }
        let api_rate_limit_per_minute = s.api_rate_limit_per_minute.unwrap_or(600);
        let public_rate_limit_per_minute = s.public_rate_limit_per_minute.unwrap_or(20);
        if api_rate_limit_per_minute == 0 || public_rate_limit_per_minute == 0 {
            return Err(invalid(
                "api_rate_limit_per_minute/public_rate_limit_per_minute",
                "must be at least 1",
            ));
        }
        let in_flight = |name: &'static str, v: Option<usize>| {
            let v = v.unwrap_or(512);
            if (1..=1_000_000).contains(&v) {
                Ok(v)
            } else {
                Err(invalid(name, "must be between 1 and 1000000"))
            }
        };
        let api_max_in_flight = in_flight("api_max_in_flight", s.api_max_in_flight)?;
        let agent_max_in_flight = in_flight("agent_max_in_flight", s.agent_max_in_flight)?;
        let busy_queue_ms = s.busy_queue_ms.unwrap_or(1000);
        if busy_queue_ms > 30_000 {
            return Err(invalid("busy_queue_ms", "must be at most 30000"));
        }
        let busy_retry_spread_seconds = s.busy_retry_spread_seconds.unwrap_or(10);
        if busy_retry_spread_seconds > 600 {
            return Err(invalid("busy_retry_spread_seconds", "must be at most 600"));
        }
        let jwt = if s.jwt_hs256_secret.is_some() || s.jwt_jwks_url.is_some() {
            if let Some(secret) = &s.jwt_hs256_secret {
                if secret.len() < 32 {
                    return Err(invalid(
                        "jwt_hs256_secret",
                        "must be at least 32 characters",
                    ));
                }
            }
            if let Some(url) = &s.jwt_jwks_url {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(invalid("jwt_jwks_url", "must be an http(s) URL"));
                }
            }
            let default_role = s.jwt_default_role.as_deref().unwrap_or("viewer");
            let default_role = Role::parse_tenant_role(default_role)
                .ok_or_else(|| invalid("jwt_default_role", "use viewer, operator or admin"))?;
            Some(JwtConfig {
                hs256_secret: s.jwt_hs256_secret,
                jwks_url: s.jwt_jwks_url,
                issuer: s.jwt_issuer.unwrap_or_else(|| "supabase".into()),
                audience: s
                    .jwt_audience
                    .unwrap_or_else(|| vec!["authenticated".into()]),
                default_role,
            })
        } else {
            None
        };
        let bus = BusConfig {
            heartbeat_interval_s: s.heartbeat_interval_seconds.unwrap_or(30),
            poll_timeout_s: s.poll_timeout_seconds.unwrap_or(50),
            lease_s: s.lease_seconds.unwrap_or(120),
            max_attempts: s.command_max_attempts.unwrap_or(3),
            agent_token_ttl_days: s.agent_token_ttl_days.unwrap_or(30),
            offline_after_s: s.agent_offline_after_seconds.unwrap_or(600),
            sweep_interval_s: s.sweep_interval_seconds.unwrap_or(5),
            heartbeat_flush_ms: s.heartbeat_flush_interval_ms.unwrap_or(5000),
            agent_auth_cache_s: s.agent_auth_cache_seconds.unwrap_or(10),
        };
        if !(1..=3600).contains(&bus.heartbeat_interval_s) {
            return Err(invalid(
                "heartbeat_interval_seconds",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=60).contains(&bus.poll_timeout_s) {
            return Err(invalid("poll_timeout_seconds", "must be between 1 and 60"));
        }
        if !(1..=86_400).contains(&bus.lease_s) {
            return Err(invalid("lease_seconds", "must be between 1 and 86400"));
        }
        if !(1..=100).contains(&bus.max_attempts) {
            return Err(invalid("command_max_attempts", "must be between 1 and 100"));
        }
        if !(1..=365).contains(&bus.agent_token_ttl_days) {
            return Err(invalid("agent_token_ttl_days", "must be between 1 and 365"));
        }
        if bus.offline_after_s < 2 * bus.heartbeat_interval_s {
            return Err(invalid(
                "agent_offline_after_seconds",
                "must be at least twice heartbeat_interval_seconds",
            ));
        }
        if !(1..=3600).contains(&bus.sweep_interval_s) {
            return Err(invalid(
                "sweep_interval_seconds",
                "must be between 1 and 3600",
            ));
        }
        if !(10..=60_000).contains(&bus.heartbeat_flush_ms) {
            return Err(invalid(
                "heartbeat_flush_interval_ms",
                "must be between 10 and 60000",
            ));
        }
        if bus.agent_auth_cache_s > 300 {
            return Err(invalid(
                "agent_auth_cache_seconds",
                "must be between 0 and 300",
            ));
        }
        let trusted_proxy_hops = s.trusted_proxy_hops.unwrap_or(1);
        if !(1..=10).contains(&trusted_proxy_hops) {
            return Err(invalid("trusted_proxy_hops", "must be between 1 and 10"));
        }
        let provisioning = ProvisioningConfig {
            token_ttl_days: s.provisioning_token_ttl_days.unwrap_or(30),
            detach_on_failure: s.provisioning_detach_on_failure.unwrap_or(false),
            require_license: s.provisioning_require_license.unwrap_or(true),
        };
        if !(1..=3650).contains(&provisioning.token_ttl_days) {
            return Err(invalid(
                "provisioning_token_ttl_days",
                "must be between 1 and 3650",
            ));
        }
        let vm_jobs = VmJobsConfig {
            agent_wait_s: s.vm_jobs_agent_wait_seconds.unwrap_or(1800),
            clone_timeout_s: s.vm_jobs_clone_timeout_seconds.unwrap_or(1800),
            step_timeout_s: s.vm_jobs_step_timeout_seconds.unwrap_or(600),
            install_timeout_min: s.vm_jobs_install_timeout_minutes.unwrap_or(120),
        };
        for (key, v) in [
            ("vm_jobs_agent_wait_seconds", vm_jobs.agent_wait_s),
            ("vm_jobs_clone_timeout_seconds", vm_jobs.clone_timeout_s),
            ("vm_jobs_step_timeout_seconds", vm_jobs.step_timeout_s),
        ] {
            if !(10..=86_400).contains(&v) {
                return Err(invalid(key, "must be between 10 and 86400"));
            }
        }
        if !(1..=1440).contains(&vm_jobs.install_timeout_min) {
            return Err(invalid(
                "vm_jobs_install_timeout_minutes",
                "must be between 1 and 1440",
            ));
        }
        let licensing = LicensingConfig {
            lease_ttl_s: s.license_lease_ttl_seconds.unwrap_or(300),
            lease_max_lifetime_s: s.license_lease_max_lifetime_seconds.unwrap_or(86_400),
            lease_secret: s.license_lease_secret,
        };
        if !(60..=3600).contains(&licensing.lease_ttl_s) {
            return Err(invalid(
                "license_lease_ttl_seconds",
                "must be between 60 and 3600",
            ));
        }
        if !(licensing.lease_ttl_s..=2_592_000).contains(&licensing.lease_max_lifetime_s) {
            return Err(invalid(
                "license_lease_max_lifetime_seconds",
                "must be between license_lease_ttl_seconds and 2592000",
            ));
        }
        if licensing
            .lease_secret
            .as_ref()
            .is_some_and(|k| k.chars().count() < 32)
        {
            return Err(invalid(
                "license_lease_secret",
                "must be at least 32 characters",
            ));
        }
        let objects = ObjectsConfig {
            store: parse_object_store(
                s.object_store.as_deref(),
                &data_dir,
                s.object_store_access_key_id,
                s.object_store_secret_access_key,
            )?,
            // Clamped like the original's S3_PRESIGN_TTL_SECONDS.
            url_ttl_s: s
                .object_url_ttl_seconds
                .unwrap_or(300)
                .clamp(*OBJECT_URL_TTL_RANGE.start(), *OBJECT_URL_TTL_RANGE.end()),
            artifact_max_bytes: s.artifact_max_bytes.unwrap_or(2 * 1024 * 1024 * 1024),
        };
        if !(1..=1024 * 1024 * 1024 * 1024).contains(&objects.artifact_max_bytes) {
            return Err(invalid(
                "artifact_max_bytes",
                "must be between 1 and 1099511627776",
            ));
        }
        Ok(Config {
            bus,
            provisioning,
            vm_jobs,
            licensing,
            objects,
            trusted_proxy_hops,
            data_dir,
            database_url,
            listen,
            tls,
            tls_san: s.tls_san.unwrap_or_default(),
            public_url: s.public_url.map(|u| u.trim_end_matches('/').to_string()),
            log_format,
            metrics,
            cors_allowed_origins,
            body_limit_bytes,
            session_ttl_hours,
            api_rate_limit_per_minute,
            api_max_in_flight,
            agent_max_in_flight,
            busy_queue_ms,
            busy_retry_spread_seconds,
            public_rate_limit_per_minute,
            trust_forwarded_for: s.trust_forwarded_for.unwrap_or(false),
            jwt,
            shutdown_grace_seconds: s.shutdown_grace_seconds.unwrap_or(30),
        })
    }

    /// A printable view with secrets masked (for `check-config` and logs).
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "data_dir": self.data_dir,
            "database_url": redact_url(&self.database_url),
            "listen": self.listen.to_string(),
            "tls": match &self.tls {
                TlsMode::SelfSigned => "self-signed".to_string(),
                TlsMode::Off => "off".to_string(),
                TlsMode::Files { cert, key } => format!("{}:{}", cert.display(), key.display()),
            },
            "tls_san": self.tls_san,
            "public_url": self.public_url,
            "log_format": format!("{:?}", self.log_format).to_lowercase(),
            "metrics": format!("{:?}", self.metrics).to_lowercase(),
            "cors_allowed_origins": self.cors_allowed_origins,
            "body_limit_bytes": self.body_limit_bytes,
            "session_ttl_hours": self.session_ttl_hours,
            "api_rate_limit_per_minute": self.api_rate_limit_per_minute,
            "public_rate_limit_per_minute": self.public_rate_limit_per_minute,
            "trust_forwarded_for": self.trust_forwarded_for,
            "trusted_proxy_hops": self.trusted_proxy_hops,
            "jwt": self.jwt.as_ref().map(|j| serde_json::json!({
                "hs256_secret": j.hs256_secret.as_ref().map(|_| "[REDACTED]"),
                "jwks_url": j.jwks_url,
                "issuer": j.issuer,
                "audience": j.audience,
                "default_role": j.default_role.as_str(),
            })),
            "shutdown_grace_seconds": self.shutdown_grace_seconds,
            "heartbeat_interval_seconds": self.bus.heartbeat_interval_s,
            "poll_timeout_seconds": self.bus.poll_timeout_s,
            "lease_seconds": self.bus.lease_s,
            "command_max_attempts": self.bus.max_attempts,
            "agent_token_ttl_days": self.bus.agent_token_ttl_days,
            "agent_offline_after_seconds": self.bus.offline_after_s,
            "sweep_interval_seconds": self.bus.sweep_interval_s,
            "heartbeat_flush_interval_ms": self.bus.heartbeat_flush_ms,
            "agent_auth_cache_seconds": self.bus.agent_auth_cache_s,
            "provisioning_token_ttl_days": self.provisioning.token_ttl_days,
            "provisioning_detach_on_failure": self.provisioning.detach_on_failure,
            "provisioning_require_license": self.provisioning.require_license,
            "vm_jobs_agent_wait_seconds": self.vm_jobs.agent_wait_s,
            "vm_jobs_clone_timeout_seconds": self.vm_jobs.clone_timeout_s,
            "vm_jobs_step_timeout_seconds": self.vm_jobs.step_timeout_s,
            "vm_jobs_install_timeout_minutes": self.vm_jobs.install_timeout_min,
            "license_lease_ttl_seconds": self.licensing.lease_ttl_s,
            "license_lease_max_lifetime_seconds": self.licensing.lease_max_lifetime_s,
            "license_lease_secret": self.licensing.lease_secret.as_ref().map(|_| "[REDACTED]"),
            "object_store": self.objects.store.describe(),
            "object_store_access_key_id": match &self.objects.store {
                ObjectStoreKind::S3(s) => s.access_key_id.as_ref().map(|_| "[REDACTED]"),
                ObjectStoreKind::Local { .. } => None,
            },
            "object_store_secret_access_key": match &self.objects.store {
                ObjectStoreKind::S3(s) => s.secret_access_key.as_ref().map(|_| "[REDACTED]"),
                ObjectStoreKind::Local { .. } => None,
            },
            "object_url_ttl_seconds": self.objects.url_ttl_s,
            "artifact_max_bytes": self.objects.artifact_max_bytes,
        });
        // (outside the macro: json! hits the recursion limit at this size)
        v["api_max_in_flight"] = self.api_max_in_flight.into();
        v["agent_max_in_flight"] = self.agent_max_in_flight.into();
        v["busy_queue_ms"] = self.busy_queue_ms.into();
        v["busy_retry_spread_seconds"] = self.busy_retry_spread_seconds.into();
        v
    }
}

fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("botmox.db").display())
}

fn parse_tls(raw: &str) -> Result<TlsMode, ConfigError> {
    match raw {
        "self-signed" => Ok(TlsMode::SelfSigned),
        "off" => Ok(TlsMode::Off),
        other => match other.rsplit_once(':') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() => Ok(TlsMode::Files {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            _ => Err(invalid(
                "tls",
                format!("`{other}`: use self-signed, off, or CERT.pem:KEY.pem"),
            )),
        },
    }
}

/// Hide the password part of a database URL.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((creds, host)) = rest.split_once('@') {
            let user = creds.split(':').next().unwrap_or("");
            if creds.contains(':') {
                return format!("{scheme}://{user}:[REDACTED]@{host}");
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_sqlite_selfsigned_localhost() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.tls, TlsMode::SelfSigned);
        assert!(c.database_url.starts_with("sqlite://"));
        assert!(c.database_url.contains("botmox.db"));
        assert!(c.jwt.is_none());
        assert!(c.cors_allowed_origins.is_empty());
    }

    #[test]
    fn flags_win_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nlog_format = \"json\"\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let cli = Settings {
            listen: Some("127.0.0.1:7000".into()),
            ..Default::default()
        };
        let c = Config::resolve(&common, cli).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_file_key_is_refused_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lissen = \"0.0.0.0:9000\"\n").unwrap();
        let common = CommonArgs {
            config: Some(path),
            ..Default::default()
        };
        let err = Config::resolve(&common, Settings::default()).unwrap_err();
        assert!(err.to_string().contains("lissen"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        for (s, key) in [
            (
                Settings {
                    listen: Some("nope".into()),
                    ..Default::default()
                },
                "listen",
            ),
            (
                Settings {
                    tls: Some("weird".into()),
                    ..Default::default()
                },
                "tls",
            ),
            (
                Settings {
                    cors_allowed_origins: Some(vec!["*".into()]),
                    ..Default::default()
                },
                "cors_allowed_origins",
            ),
            (
                Settings {
                    jwt_hs256_secret: Some("short".into()),
                    ..Default::default()
                },
                "jwt_hs256_secret",
            ),
            (
                Settings {
                    database_url: Some("mysql://x".into()),
                    ..Default::default()
                },
                "database_url",
            ),
        ] {
            let err = Config::from_settings(s).unwrap_err().to_string();
            assert!(err.contains(key), "{err} should name {key}");
        }
    }

    #[test]
    fn tls_files_and_redaction() {
        assert_eq!(
            parse_tls("/etc/c.pem:/etc/k.pem").unwrap(),
            TlsMode::Files {
                cert: "/etc/c.pem".into(),
                key: "/etc/k.pem".into()
            }
        );
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:[REDACTED]@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn object_store_urls_are_parsed_and_checked() {
        let dir = Path::new("/srv/botmox");
        let parse = |raw: &str| parse_object_store(Some(raw), dir, None, None);
        assert_eq!(
            parse_object_store(None, dir, None, None).unwrap(),
            ObjectStoreKind::Local {
                dir: dir.join("objects")
            }
        );
        assert_eq!(
            parse("file:///var/objects").unwrap(),
            ObjectStoreKind::Local {
                dir: "/var/objects".into()
            }
        );
        let ObjectStoreKind::S3(s3) = parse_object_store(
            Some("s3://my-bucket?endpoint=http://127.0.0.1:9000/&region=eu-west-1"),
            dir,
            Some("id".into()),
            Some("s3cr3t-value".into()),
        )
        .unwrap() else {
            panic!("not s3")
        };
        assert_eq!(s3.bucket, "my-bucket");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "eu-west-1");
        assert!(!format!("{s3:?}").contains("s3cr3t-value"), "{s3:?}");
        let ObjectStoreKind::S3(aws) = parse("s3://bucket.one").unwrap() else {
            panic!("not s3")
        };
        assert_eq!((aws.endpoint, aws.region.as_str()), (None, "us-east-1"));
        for bad in [
            "file://relative",
            "ftp://x",
            "s3://UPPER",
            "s3://ab",
            "s3://bucket/path",
            "s3://bucket:9000",
            "s3://bucket?endpoint=ftp://x",
            "s3://bucket?region=a%20b",
            "s3://bucket?colour=red",
            "s3://bucket?region=a&region=b",
            "nonsense",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("object_store"), "{bad}: {err}");
        }
        assert!(parse_object_store(Some("s3://bucket"), dir, Some("id".into()), None).is_err());
        assert!(
            parse_object_store(None, dir, Some("id".into()), Some("s".into())).is_err(),
            "keys without S3"
        );
        let c = Config::from_settings(Settings {
            object_store: Some("s3://b-1?endpoint=https://s3.example".into()),
            object_store_access_key_id: Some("AKIA".into()),
            object_store_secret_access_key: Some("hidden".into()),
            ..Default::default()
        })
        .unwrap();
        let shown = c.redacted().to_string();
        assert!(
            !shown.contains("hidden") && !shown.contains("AKIA"),
            "{shown}"
        );
        assert!(
            shown.contains("s3://b-1?endpoint=https://s3.example"),
            "{shown}"
        );
    }
}
