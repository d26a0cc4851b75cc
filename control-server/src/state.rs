//! Explicit application state shared by every handler.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::AuthService;
use crate::bus::Bus;
use crate::config::Config;
use crate::db::Db;
use crate::http::ratelimit::RateLimits;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    pub db: Db,
    pub auth: Arc<AuthService>,
    pub bus: Arc<Bus>,
    pub limits: Arc<RateLimits>,
    pub metrics: Option<PrometheusHandle>,
    /// SHA-256 of the served certificate (lowercase hex), when TLS is on.
    pub tls_sha256: Option<Arc<str>>,
}
