//! Typed calls of the agent protocol (`docs/protocol.md`) over
//! [`ServerClient`], and the protocol's classification of failures:
//! `AGENT_REVOKED` (by code, never any 403) and 401 stop the agent,
//! `LEASE_LOST` / `INVALID_TRANSITION` are final answers about one command,
//! network errors and 5xx/429 are transient.

use std::sync::RwLock;
use std::time::Duration;

use botmox_protocol::{
    codes, AgentPublicKey, AgentPublicKeyRequest, AgentSecret, Command, CommandReport,
    HeartbeatRequest, HeartbeatResponse, OutputAppend, OutputChunk, RotateTokenResponse,
};
use reqwest::Method;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::http::{self, HttpError, ServerClient};
use crate::retry::RetryPolicy;

/// Why a protocol call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// 403 `AGENT_REVOKED`: stop the loop, never retry.
    #[error("AGENT_REVOKED: {0}")]
    Revoked(String),
    /// 401: the token is unknown or expired.
    #[error("UNAUTHORIZED: {0}")]
    Unauthorized(String),
    /// 409 `LEASE_LOST`: drop that command's result.
    #[error("LEASE_LOST: {0}")]
    LeaseLost(String),
    /// 409 `INVALID_TRANSITION`: the command already ended differently.
    #[error("INVALID_TRANSITION: {0}")]
    InvalidTransition(String),
    /// Any other final answer (400, 403 FORBIDDEN, 404, 413, …).
    #[error("{code}: {message} (HTTP {status})")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// Network, TLS, timeout, 5xx, 429 once the per-call budget is spent.
    #[error("{0}")]
    Transient(HttpError),
    #[error("CANCELLED: the call was cancelled")]
    Cancelled,
}

impl CallError {
    pub fn from_http(e: HttpError) -> Self {
        match e {
            HttpError::Cancelled => CallError::Cancelled,
            HttpError::Api {
                status,
                code,
                message,
                ..
            } => {
                if status == 403 && code == codes::AGENT_REVOKED {
                    CallError::Revoked(message)
                } else if status == 401 {
                    CallError::Unauthorized(message)
                } else if status == 409 && code == codes::LEASE_LOST {
                    CallError::LeaseLost(message)
                } else if status == 409 && code == codes::INVALID_TRANSITION {
                    CallError::InvalidTransition(message)
                } else if http::is_retryable_status(
                    reqwest::StatusCode::from_u16(status)
                        .unwrap_or(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
                ) {
                    CallError::Transient(HttpError::Api {
                        status,
                        code,
                        message,
                        request_id: String::new(),
                    })
                } else {
                    CallError::Rejected {
                        status,
                        code,
                        message,
                    }
                }
            }
            other => CallError::Transient(other),
        }
    }

    /// Revoked or unauthorized: the agent must stop.
    pub fn is_fatal(&self) -> bool {
        matches!(self, CallError::Revoked(_) | CallError::Unauthorized(_))
    }

    pub fn code(&self) -> String {
        match self {
            CallError::Revoked(_) => codes::AGENT_REVOKED.into(),
            CallError::Unauthorized(_) => codes::UNAUTHORIZED.into(),
            CallError::LeaseLost(_) => codes::LEASE_LOST.into(),
            CallError::InvalidTransition(_) => codes::INVALID_TRANSITION.into(),
            CallError::Rejected { code, .. } => code.clone(),
            CallError::Transient(e) => e.code().to_string(),
            CallError::Cancelled => "CANCELLED".into(),
        }
    }
}

/// The agent's side of the protocol. The token can be swapped (rotation)
/// while calls are in flight; each call uses the token current at its start.
#[derive(Debug)]
pub struct AgentApi {
    client: RwLock<ServerClient>,
}

impl AgentApi {
    pub fn new(client: ServerClient) -> Self {
        AgentApi {
            client: RwLock::new(client),
        }
    }

    fn client(&self) -> ServerClient {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_token(&self, token: String) {
        self.client
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_token(Some(token));
    }

    async fn json<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<T, CallError> {
        let r = self
            .client()
            .call(method, path, body, policy, cancel)
            .await
            .map_err(CallError::from_http)?;
        serde_json::from_value(r.data).map_err(|e| {
            CallError::Transient(HttpError::Parse(format!("{path}: unexpected answer: {e}")))
        })
    }

    pub async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<HeartbeatResponse, CallError> {
        self.json(
            Method::POST,
            "/api/v1/agents/heartbeat",
            Some(req),
            policy,
            cancel,
        )
        .await
    }

    pub async fn rotate_token(
        &self,
        cancel: &CancellationToken,
    ) -> Result<RotateTokenResponse, CallError> {
        self.json::<_, ()>(
            Method::POST,
            "/api/v1/agents/token/rotate",
            None,
            &http::budgets::heartbeat(),
            cancel,
        )
        .await
    }

    /// Register this agent's public key (`PUT /agents/me/public-key`).
    pub async fn register_public_key(
        &self,
        req: &AgentPublicKeyRequest,
        cancel: &CancellationToken,
    ) -> Result<AgentPublicKey, CallError> {
        self.json(
            Method::PUT,
            "/api/v1/agents/me/public-key",
            Some(req),
            &http::budgets::heartbeat(),
            cancel,
        )
        .await
    }

    /// A secret bound to this agent, as an envelope (`GET
    /// /agents/me/secrets/{id}`); `id` must already be a valid secret id.
    pub async fn agent_secret(
        &self,
        id: &str,
        cancel: &CancellationToken,
    ) -> Result<AgentSecret, CallError> {
        self.json::<_, ()>(
            Method::GET,
            &format!("/api/v1/agents/me/secrets/{id}"),
            None,
            &http::budgets::heartbeat(),
            cancel,
        )
        .await
    }

    /// One long poll: `Some(command)` (claimed) or `None` at the timeout.
    /// A few retries per call (so `Retry-After` on 429 is obeyed); beyond
    /// that the loop backs off.
    pub async fn next_command(
        &self,
        poll_timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<Command>, CallError> {
        let ms = poll_timeout.as_millis().clamp(1000, 60_000) as u64;
        let path = format!("/api/v1/vm-ops/commands/next?timeout_ms={ms}");
        let r = self
            .client()
            .call_with_timeout::<()>(
                Method::GET,
                &path,
                None,
                &http::budgets::poll(),
                cancel,
                Some(Duration::from_millis(ms) + Duration::from_secs(15)),
            )
            .await
            .map_err(CallError::from_http)?;
        if r.status == 204 || r.data.is_null() {
            return Ok(None);
        }
        serde_json::from_value(r.data)
            .map(Some)
            .map_err(|e| CallError::Transient(HttpError::Parse(format!("commands/next: {e}"))))
    }

    pub async fn report(
        &self,
        command_id: &str,
        report: &CommandReport,
        policy: &RetryPolicy,
        cancel: &CancellationToken,
    ) -> Result<Command, CallError> {
        self.json(
            Method::PATCH,
            &format!("/api/v1/vm-ops/commands/{command_id}"),
            Some(report),
            policy,
            cancel,
        )
        .await
    }

    pub async fn append_output(
        &self,
        command_id: &str,
        chunks: Vec<OutputChunk>,
        cancel: &CancellationToken,
    ) -> Result<(), CallError> {
        self.json::<serde_json::Value, _>(
            Method::POST,
            &format!("/api/v1/vm-ops/commands/{command_id}/output"),
            Some(&OutputAppend { chunks }),
            &http::budgets::output(),
            cancel,
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CallError {
        CallError::from_http(HttpError::Api {
            status,
            code: code.into(),
            message: "m".into(),
            request_id: "r".into(),
        })
    }

    #[test]
    fn classification_follows_the_protocol() {
        assert!(matches!(api(403, "AGENT_REVOKED"), CallError::Revoked(_)));
        // another 403 is never "revoked"
        assert!(matches!(
            api(403, "FORBIDDEN"),
            CallError::Rejected { status: 403, .. }
        ));
        assert!(matches!(
            api(401, "UNAUTHORIZED"),
            CallError::Unauthorized(_)
        ));
        assert!(matches!(api(409, "LEASE_LOST"), CallError::LeaseLost(_)));
        assert!(matches!(
            api(409, "INVALID_TRANSITION"),
            CallError::InvalidTransition(_)
        ));
        assert!(matches!(api(503, "X"), CallError::Transient(_)));
        assert!(matches!(api(429, "RATE_LIMITED"), CallError::Transient(_)));
        assert!(matches!(
            CallError::from_http(HttpError::Network("refused".into())),
            CallError::Transient(_)
        ));
        assert!(api(403, "AGENT_REVOKED").is_fatal());
        assert!(!api(403, "FORBIDDEN").is_fatal());
        assert_eq!(api(409, "LEASE_LOST").code(), "LEASE_LOST");
    }
}
