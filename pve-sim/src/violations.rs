//! Record of requests that did not conform to the PVE API schema.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::schema::ParamErrors;

/// What was wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ViolationKind {
    /// No schema path matches the request path.
    UnknownPath,
    /// The path exists but not with this method.
    UnknownMethod { allowed: Vec<String> },
    /// Parameters failed validation (unknown, wrong type, enum, missing ...).
    InvalidParameters { errors: ParamErrors },
    /// The body could not be read (bad JSON, bad multipart, wrong content type).
    MalformedBody { message: String },
    /// A valid request to an endpoint the simulator does not implement.
    NotSimulated,
}

/// One recorded violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub method: String,
    /// Request path below `/api2/json`, as received.
    pub path: String,
    /// Matched schema template, when the path resolved.
    pub template: Option<String>,
    #[serde(flatten)]
    pub kind: ViolationKind,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.method, self.path)?;
        match &self.kind {
            ViolationKind::UnknownPath => write!(f, "no such path in the PVE API"),
            ViolationKind::UnknownMethod { allowed } => {
                write!(f, "method not defined (allowed: {})", allowed.join(", "))
            }
            ViolationKind::InvalidParameters { errors } => {
                let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                write!(f, "invalid parameters: {}", list.join("; "))
            }
            ViolationKind::MalformedBody { message } => write!(f, "malformed body: {message}"),
            ViolationKind::NotSimulated => write!(f, "valid but not simulated"),
        }
    }
}

/// Shared, append-only list of violations.
#[derive(Debug, Clone, Default)]
pub struct ViolationLog {
    inner: Arc<Mutex<Vec<Violation>>>,
}

impl ViolationLog {
    pub fn record(&self, violation: Violation) {
        tracing::warn!(%violation, "PVE schema violation");
        self.lock().push(violation);
    }

    pub fn snapshot(&self) -> Vec<Violation> {
        self.lock().clone()
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Violation>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
