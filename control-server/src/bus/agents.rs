//! Agent lifecycle: pairing → registration → heartbeats / token rotation →
//! revocation. Agents authenticate with opaque `bmxa_` tokens checked against
//! the database on every request, so a revoke takes effect at once.

use botmox_protocol::{
    Agent, HeartbeatRequest, HeartbeatResponse, PairingBundle, ProxmoxHint, RegisterRequest,
    RegisterResponse, RotateTokenResponse, AGENT_TOKEN_PREFIX, PAIRING_CODE_PREFIX,
};

use super::{invalid, views, Bus, BusError};
use crate::auth::secret;
use crate::auth::{Identity, Role};
use crate::error::FieldErrors;
use crate::store::agents::{self, AgentRow, NewPairing, Registration};
use crate::store::{ms_to_rfc3339, new_id, now_ms, users, TenantScope};

/// How long a rotated-out token keeps working.
pub const ROTATION_GRACE_MS: i64 = 10 * 60 * 1000;

/// A verified agent (from its bearer token).
#[derive(Debug, Clone)]
pub struct AgentIdentity {
    pub agent_id: String,
    pub tenant_id: String,
    pub owner_user_id: Option<String>,
    pub token_id: String,
    pub token_created_at: i64,
    pub token_expires_at: i64,
    /// Connection state when this request was authenticated.
    pub connection_state: String,
}

impl AgentIdentity {
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

pub struct PairingInput {
    pub name: Option<String>,
    pub expires_in_minutes: Option<u32>,
    pub owner_user_id: Option<String>,
    pub proxmox: Option<ProxmoxHint>,
}

/// A new pairing as the API returns it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Pairing {
    pub agent: Agent,
    /// One-time code (`bmxp_…`), shown once.
    pub pairing_code: String,
    pub pairing_expires_at: String,
    pub server_url: String,
    /// base64url (no padding) JSON the agent accepts as is.
    pub pairing_bundle: String,
    /// `botmox://pair?bundle=…` (opens the tray app).
    pub pairing_uri: String,
    /// `<server_url>/agent/pair?bundle=…` (a page with instructions).
    pub pairing_url: String,
}

/// Percent-encode for a URL query value (base64url needs none, but the
/// bundle is treated as opaque).
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn check_len(f: &mut FieldErrors, field: &str, v: Option<&str>, max: usize) {
    if let Some(v) = v {
        if v.chars().count() > max {
            f.add(field, format!("must be at most {max} characters"));
        }
    }
}

impl Bus {
    /// Create a pending agent and its one-time pairing code.
    pub async fn create_pairing(
        &self,
        caller: &Identity,
        input: PairingInput,
        server_url: String,
        server_cert_sha256: Option<String>,
    ) -> Result<Pairing, BusError> {
        let scope = caller
            .require(Role::Operator)
            .map_err(|_| BusError::RoleRequired("operator"))?;
        let mut f = FieldErrors::default();
        let name = input.name.unwrap_or_default().trim().to_string();
        check_len(&mut f, "name", Some(&name), 200);
        let minutes = input.expires_in_minutes.unwrap_or(15);
        f.check(
            (5..=1440).contains(&minutes),
            "expires_in_minutes",
            "must be between 5 and 1440",
        );
        if let Some(p) = &input.proxmox {
            if let Some(url) = &p.url {
                f.check(
                    url.starts_with("https://") || url.starts_with("http://"),
                    "proxmox.url",
                    "must start with https:// or http://",
                );
            }
            check_len(&mut f, "proxmox.url", p.url.as_deref(), 500);
            check_len(&mut f, "proxmox.username", p.username.as_deref(), 200);
            check_len(&mut f, "proxmox.node", p.node.as_deref(), 100);
        }
        if !f.0.is_empty() {
            return Err(BusError::Validation(f));
        }
        let owner = match input.owner_user_id {
            Some(owner) if owner != caller.user_id => {
                if !caller.has(Role::Admin) {
                    return Err(BusError::OwnerOverrideForbidden);
                }
                if users::get(self.db.pool(), &scope, &owner).await?.is_none() {
                    return Err(invalid("owner_user_id", "no such user in your tenant"));
                }
                owner
            }
            _ => caller.user_id.clone(),
        };
        let code = secret::generate_token(PAIRING_CODE_PREFIX);
        let now = now_ms();
        let expires_at = now + i64::from(minutes) * 60_000;
        let hint = input
            .proxmox
            .as_ref()
            .filter(|p| p.url.is_some() || p.username.is_some() || p.node.is_some());
        let hint_json = hint.map(|p| serde_json::to_string(p).unwrap_or_default());
        let row = agents::insert_pairing(
            self.db.writer(),
            NewPairing {
                id: &new_id(),
                tenant_id: scope.tenant_id(),
                owner_user_id: Some(&owner),
                name: &name,
                pairing_code_hash: &secret::hash_token(&code),
                pairing_expires_at: expires_at,
                proxmox_hint: hint_json.as_deref(),
                created_by: &caller.user_id,
                now,
            },
        )
        .await?;
        self.agent_event("pairing_created", &row).await?;
        let bundle = PairingBundle {
            v: 1,
            pairing_code: code.clone(),
            server_url: server_url.clone(),
            server_cert_sha256,
            proxmox: hint.cloned(),
        }
        .encode();
        Ok(Pairing {
            agent: views::agent(&row, now, &self.cfg),
            pairing_code: code,
            pairing_expires_at: ms_to_rfc3339(expires_at),
            pairing_uri: format!("botmox://pair?bundle={}", query_escape(&bundle)),
            pairing_url: format!("{server_url}/agent/pair?bundle={}", query_escape(&bundle)),
            server_url,
            pairing_bundle: bundle,
        })
    }

    /// Redeem a pairing code: activate the agent and issue its token.
    pub async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse, BusError> {
        let mut f = FieldErrors::default();
        let code = req.pairing_code.trim();
        f.check(
            !code.is_empty() && code.len() <= 200,
            "pairing_code",
            "must be 1-200 characters",
        );
        check_len(&mut f, "machine_name", req.machine_name.as_deref(), 200);
        check_len(&mut f, "version", req.version.as_deref(), 100);
        check_len(&mut f, "platform", req.platform.as_deref(), 100);
        f.check(
            req.capabilities.len() <= 50
                && req
                    .capabilities
                    .iter()
                    .all(|c| !c.is_empty() && c.len() <= 100),
            "capabilities",
            "at most 50 entries of 1-100 characters",
        );
        if !f.0.is_empty() {
            return Err(BusError::Validation(f));
        }
        let hash = secret::hash_token(code);
        let now = now_ms();
        let capabilities = serde_json::to_string(&req.capabilities).unwrap_or_else(|_| "[]".into());
        let activated = agents::activate_pairing(
            self.db.writer(),
            Registration {
                code_hash: &hash,
                machine_name: req.machine_name.as_deref(),
                version: req.version.as_deref(),
                platform: req.platform.as_deref(),
                capabilities: &capabilities,
                now,
            },
        )
        .await?;
        let Some(row) = activated else {
            return Err(
                if agents::pairing_expired(self.db.pool(), &hash, now).await? {
                    BusError::PairingExpired
                } else {
                    BusError::PairingNotFound
                },
            );
        };
        let (token, expires_at) = self.issue_agent_token(&row, now).await?;
        self.agent_event("registered", &row).await?;
        tracing::info!(agent_id = %row.id, tenant = %row.tenant_id, "agent registered");
        Ok(RegisterResponse {
            agent: views::agent(&row, now, &self.cfg),
            agent_token: token,
            agent_token_expires_at: ms_to_rfc3339(expires_at),
            intervals: self.intervals(),
        })
    }

    async fn issue_agent_token(&self, row: &AgentRow, now: i64) -> Result<(String, i64), BusError> {
        let token = secret::generate_token(AGENT_TOKEN_PREFIX);
        let expires_at = now + i64::from(self.cfg.agent_token_ttl_days) * 86_400_000;
        agents::insert_token(
            self.db.writer(),
            row,
            &secret::hash_token(&token),
            &secret::token_hint(&token),
            expires_at,
            now,
        )
        .await?;
        Ok((token, expires_at))
    }

    /// Verify an agent bearer token; a revoked agent is refused by name.
    pub async fn authenticate_agent(&self, token: &str) -> Result<AgentIdentity, BusError> {
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Err(BusError::AgentTokenInvalid);
        }
        let t = agents::find_token(self.db.pool(), &secret::hash_token(token), now_ms())
            .await?
            .ok_or(BusError::AgentTokenInvalid)?;
        match t.status.as_str() {
            "active" => Ok(AgentIdentity {
                agent_id: t.agent_id,
                tenant_id: t.tenant_id,
                owner_user_id: t.owner_user_id,
                token_id: t.token_id,
                token_created_at: t.token_created_at,
                token_expires_at: t.token_expires_at,
                connection_state: t.connection_state,
            }),
            "revoked" => Err(BusError::AgentRevoked),
            _ => Err(BusError::AgentTokenInvalid),
        }
    }

    pub async fn heartbeat(
        &self,
        agent: &AgentIdentity,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, BusError> {
        let mut f = FieldErrors::default();
        check_len(&mut f, "version", req.version.as_deref(), 100);
        let metadata = match &req.metadata {
            None => None,
            Some(m) if m.is_object() => {
                let s = m.to_string();
                f.check(
                    s.len() <= 16 * 1024,
                    "metadata",
                    "must be at most 16 KiB of JSON",
                );
                Some(s)
            }
            Some(_) => {
                f.add("metadata", "must be a JSON object");
                None
            }
        };
        if !f.0.is_empty() {
            return Err(BusError::Validation(f));
        }
        let now = now_ms();
        let active = agents::heartbeat(
            self.db.writer(),
            &agent.agent_id,
            req.version.as_deref(),
            metadata.as_deref(),
            now,
        )
        .await?;
        if !active {
            return Err(BusError::AgentRevoked);
        }
        if agent.connection_state != "online" {
            if let Some(row) = agents::get(self.db.pool(), &agent.scope(), &agent.agent_id).await? {
                self.agent_event("online", &row).await?;
            }
        }
        let lifetime = agent.token_expires_at - agent.token_created_at;
        Ok(HeartbeatResponse {
            agent_id: agent.agent_id.clone(),
            intervals: self.intervals(),
            server_time: ms_to_rfc3339(now),
            agent_token_expires_at: ms_to_rfc3339(agent.token_expires_at),
            rotate_token: now >= agent.token_created_at + lifetime * 3 / 4,
        })
    }

    /// Issue a fresh token; the presented one keeps working for a grace period.
    pub async fn rotate_token(
        &self,
        agent: &AgentIdentity,
    ) -> Result<RotateTokenResponse, BusError> {
        let now = now_ms();
        let row = agents::get(self.db.pool(), &agent.scope(), &agent.agent_id)
            .await?
            .ok_or(BusError::AgentNotFound)?;
        let (token, expires_at) = self.issue_agent_token(&row, now).await?;
        let grace_until = (now + ROTATION_GRACE_MS).min(agent.token_expires_at);
        agents::retire_token(self.db.writer(), &agent.token_id, grace_until).await?;
        self.agent_event("token_rotated", &row).await?;
        Ok(RotateTokenResponse {
            agent_token: token,
            agent_token_expires_at: ms_to_rfc3339(expires_at),
            previous_token_valid_until: ms_to_rfc3339(grace_until),
        })
    }

    /// Agents the caller may see: their own, or the tenant's for admins.
    pub async fn list_agents(&self, caller: &Identity) -> Result<Vec<Agent>, BusError> {
        let scope = caller.scope();
        let owner = (!caller.has(Role::Admin)).then_some(caller.user_id.as_str());
        let now = now_ms();
        Ok(agents::list(self.db.pool(), &scope, owner)
            .await?
            .iter()
            .map(|r| views::agent(r, now, &self.cfg))
            .collect())
    }

    /// One agent the caller may see (others are "not found").
    pub async fn visible_agent(&self, caller: &Identity, id: &str) -> Result<AgentRow, BusError> {
        let row = agents::get(self.db.pool(), &caller.scope(), id)
            .await?
            .ok_or(BusError::AgentNotFound)?;
        if !caller.has(Role::Admin) && row.owner_user_id.as_deref() != Some(caller.user_id.as_str())
        {
            return Err(BusError::AgentNotFound);
        }
        Ok(row)
    }

    pub fn agent_view(&self, row: &AgentRow) -> Agent {
        views::agent(row, now_ms(), &self.cfg)
    }

    /// Revoke an agent (admin): its token stops working immediately, its
    /// long poll returns, its queued commands are cancelled.
    pub async fn revoke_agent(
        &self,
        caller: &Identity,
        id: &str,
        reason: Option<String>,
    ) -> Result<Agent, BusError> {
        let scope = caller
            .require(Role::Admin)
            .map_err(|_| BusError::RoleRequired("admin"))?;
        if let Some(r) = &reason {
            if r.chars().count() > 500 {
                return Err(invalid("reason", "must be at most 500 characters"));
            }
        }
        let now = now_ms();
        let row = match agents::revoke(
            self.db.writer(),
            &scope,
            id,
            &caller.user_id,
            reason.as_deref(),
            now,
        )
        .await?
        {
            Some(r) => r,
            None => {
                return Err(match agents::get(self.db.pool(), &scope, id).await? {
                    Some(_) => BusError::AlreadyRevoked,
                    None => BusError::AgentNotFound,
                })
            }
        };
        for cmd in
            crate::store::commands::cancel_queued_for_agent(self.db.writer(), &row.id, now).await?
        {
            self.command_event("cancelled", &cmd, row.owner_user_id.as_deref())
                .await?;
        }
        self.agent_event("revoked", &row).await?;
        self.notifier.wake_agent(&row.id).await;
        tracing::info!(agent_id = %row.id, by = %caller.user_id, "agent revoked");
        Ok(views::agent(&row, now, &self.cfg))
    }

    /// Withdraw a pairing that was never redeemed.
    pub async fn delete_pending(&self, caller: &Identity, id: &str) -> Result<(), BusError> {
        caller
            .require(Role::Operator)
            .map_err(|_| BusError::RoleRequired("operator"))?;
        let row = self.visible_agent(caller, id).await?;
        if row.status != "pending"
            || !agents::delete_pending(self.db.writer(), &caller.scope(), id).await?
        {
            return Err(BusError::AgentNotPending);
        }
        Ok(())
    }
}
