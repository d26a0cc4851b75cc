//! Agent lifecycle: pairing → registration → heartbeats / token rotation →
//! revocation. Agents authenticate with opaque `bmxa_` tokens checked against
//! the database, cached for a few seconds by token hash ([`AuthCache`]); a
//! revoke drops the cached tokens at once (here, and through NOTIFY in other
//! processes). Heartbeats are write-behind ([`Presence`]).

use std::sync::Arc;
use std::time::Duration;

use botmox_protocol::envelope::{self, PublicKey};
use botmox_protocol::{
    Agent, AgentPublicKey, AgentPublicKeyRequest, HeartbeatRequest, HeartbeatResponse,
    PairingBundle, ProxmoxHint, RegisterRequest, RegisterResponse, RotateTokenResponse,
    AGENT_TOKEN_PREFIX, PAIRING_CODE_PREFIX,
};
use serde_json::json;

use super::auth_cache::AuthCache;
use super::presence::{fingerprint, HeartbeatPlan, Presence, StoredPresence};
use super::store::{
    self, AgentRow, AgentStatus, ConnectionState, HeartbeatWrite, NewPairing, Registration,
};
use super::{AgentError, AgentIdentity};
use crate::auth::secret;
use crate::auth::{Identity, Role};
use crate::config::BusConfig;
use crate::db::ids::{AgentId, UserId};
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreResult, TenantScope, Write};
use crate::domains::accounts::AccountsService;
use crate::domains::commands::service as commands;
use crate::domains::events::store::NewEvent;
use crate::domains::events::EventsService;
use crate::notify::{Notifier, Revoked};
use crate::validate::FieldErrors;

/// How long a rotated-out token keeps working.
pub const ROTATION_GRACE_MS: i64 = 10 * 60 * 1000;

pub struct PairingInput {
    pub name: Option<String>,
    pub expires_in_minutes: Option<u32>,
    pub owner_user_id: Option<UserId>,
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
        f.display_text(field, v, max);
    }
}

fn json_or_null(text: Option<&str>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// `online` within two heartbeat intervals plus one flush interval of the
/// stored last heartbeat (a heartbeat may wait that long in the write-behind
/// buffer), `unreachable` until `offline_after`, then `offline`;
/// `pending`/`revoked` from the lifecycle. Computed from the stored row
/// only, so every server process sharing the database agrees.
pub fn connection_state(row: &AgentRow, now: i64, cfg: &BusConfig) -> ConnectionState {
    match row.status {
        AgentStatus::Pending => ConnectionState::Pending,
        AgentStatus::Revoked => ConnectionState::Revoked,
        AgentStatus::Active => match row.last_seen_at {
            Some(t) if now - t <= cfg.online_window_ms() => ConnectionState::Online,
            Some(t) if now - t <= cfg.offline_after_ms() => ConnectionState::Unreachable,
            _ => ConnectionState::Offline,
        },
    }
}

/// The stored row as the API shows it.
pub fn agent_view(row: &AgentRow, now: i64, cfg: &BusConfig) -> Agent {
    Agent {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        owner_user_id: row.owner_user_id.as_ref().map(UserId::to_string),
        name: row.name.clone(),
        status: row.status.to_string(),
        connection: connection_state(row, now, cfg).to_string(),
        machine_name: row.machine_name.clone(),
        version: row.version.clone(),
        platform: row.platform.clone(),
        capabilities: serde_json::from_str(&row.capabilities).unwrap_or_default(),
        metadata: json_or_null(row.metadata.as_deref()),
        last_seen_at: row.last_seen_at.map(ms_to_rfc3339),
        paired_at: row.paired_at.map(ms_to_rfc3339),
        pairing_expires_at: row.pairing_expires_at.map(ms_to_rfc3339),
        revoked_at: row.revoked_at.map(ms_to_rfc3339),
        revoke_reason: row.revoke_reason.clone(),
        public_key: row.public_key.clone(),
        public_key_id: row.public_key_id.clone(),
        created_at: ms_to_rfc3339(row.created_at),
        updated_at: ms_to_rfc3339(row.updated_at),
    }
}

pub struct AgentsService {
    db: Db,
    cfg: BusConfig,
    accounts: Arc<AccountsService>,
    events: EventsService,
    notifier: Arc<Notifier>,
    presence: Presence,
    auth_cache: AuthCache,
}

impl AgentsService {
    pub fn new(
        db: Db,
        cfg: BusConfig,
        accounts: Arc<AccountsService>,
        events: EventsService,
        notifier: Arc<Notifier>,
    ) -> AgentsService {
        AgentsService {
            presence: Presence::new(cfg.heartbeat_interval_s as i64 * 1000),
            auth_cache: AuthCache::new(Duration::from_secs(cfg.agent_auth_cache_s)),
            db,
            cfg,
            accounts,
            events,
            notifier,
        }
    }

    pub fn config(&self) -> &BusConfig {
        &self.cfg
    }

    pub fn intervals(&self) -> botmox_protocol::Intervals {
        botmox_protocol::Intervals {
            heartbeat_interval_s: self.cfg.heartbeat_interval_s,
            poll_timeout_s: self.cfg.poll_timeout_s,
            lease_s: self.cfg.lease_s,
        }
    }

    /// `agent.<what>` with the agent view, written through `w`.
    async fn record_event(&self, w: impl Write, what: &str, row: &AgentRow) -> StoreResult<()> {
        let now = now_ms();
        let data = json!({ "agent": agent_view(row, now, &self.cfg) }).to_string();
        self.events
            .record(
                w,
                NewEvent {
                    tenant_id: row.tenant_id.as_str(),
                    agent_id: Some(row.id.as_str()),
                    command_id: None,
                    agent_owner_id: row.owner_user_id.as_ref().map(UserId::as_str),
                    command_created_by: None,
                    event_type: &format!("agent.{what}"),
                    data: &data,
                    now,
                },
            )
            .await?;
        Ok(())
    }

    /// Record `agent.<what>` on its own and wake event streams.
    async fn event(&self, what: &str, row: &AgentRow) -> StoreResult<()> {
        self.record_event(self.db.writer(), what, row).await?;
        self.events.notify().await;
        Ok(())
    }

    /// Create a pending agent and its one-time pairing code.
    pub async fn create_pairing(
        &self,
        caller: &Identity,
        input: PairingInput,
        server_url: String,
        server_cert_sha256: Option<String>,
    ) -> Result<Pairing, AgentError> {
        let scope = caller.require(Role::Operator)?;
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
        f.into_fields().map_err(AgentError::Validation)?;
        let owner = match input.owner_user_id {
            Some(owner) if owner != caller.user_id => {
                if !caller.has(Role::Admin) {
                    return Err(AgentError::OwnerOverrideForbidden);
                }
                if !self.accounts.user_exists(&scope, &owner).await? {
                    return Err(AgentError::Validation(FieldErrors::one(
                        "owner_user_id",
                        "no such user in your tenant",
                    )));
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
        let mut tx = self.db.begin().await?;
        let row = store::insert_pairing(
            &mut tx,
            NewPairing {
                id: &AgentId::generate(),
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
        self.record_event(&mut tx, "pairing_created", &row).await?;
        tx.commit().await?;
        self.events.notify().await;
        let bundle = PairingBundle {
            v: 1,
            pairing_code: code.clone(),
            server_url: server_url.clone(),
            server_cert_sha256,
            proxmox: hint.cloned(),
        }
        .encode();
        Ok(Pairing {
            agent: agent_view(&row, now, &self.cfg),
            pairing_code: code,
            pairing_expires_at: ms_to_rfc3339(expires_at),
            pairing_uri: format!("botmox://pair?bundle={}", query_escape(&bundle)),
            pairing_url: format!("{server_url}/agent/pair?bundle={}", query_escape(&bundle)),
            server_url,
            pairing_bundle: bundle,
        })
    }

    /// Redeem a pairing code: activate the agent and issue its token, in one
    /// transaction (a failure leaves the code usable).
    pub async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse, AgentError> {
        let mut f = FieldErrors::default();
        let code = req.pairing_code.trim();
        f.check(
            !code.is_empty() && code.chars().count() <= 200,
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
                    .all(|c| !c.is_empty() && c.chars().count() <= 100),
            "capabilities",
            "at most 50 entries of 1-100 characters",
        );
        for (i, c) in req.capabilities.iter().enumerate() {
            f.display_text(&format!("capabilities[{i}]"), c, 100);
        }
        f.into_fields().map_err(AgentError::Validation)?;
        let hash = secret::hash_token(code);
        let now = now_ms();
        let capabilities = serde_json::to_string(&req.capabilities).unwrap_or_else(|_| "[]".into());
        let mut tx = self.db.begin().await?;
        let activated = store::activate_pairing(
            &mut tx,
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
            drop(tx);
            return Err(
                if store::pairing_expired(self.db.reader(), &hash, now).await? {
                    AgentError::PairingExpired
                } else {
                    AgentError::PairingNotFound
                },
            );
        };
        let (token, expires_at) = self.issue_agent_token(&mut tx, &row, now).await?;
        self.record_event(&mut tx, "registered", &row).await?;
        tx.commit().await?;
        // Registration stored it online, seen now: its first heartbeat is
        // buffered like any other (a fleet registering at once is not a
        // second burst of writes).
        self.presence
            .written(&row.id, now, fingerprint(req.version.as_deref()), None);
        self.events.notify().await;
        tracing::info!(agent_id = %row.id, tenant = %row.tenant_id, "agent registered");
        Ok(RegisterResponse {
            agent: agent_view(&row, now, &self.cfg),
            agent_token: token,
            agent_token_expires_at: ms_to_rfc3339(expires_at),
            intervals: self.intervals(),
        })
    }

    async fn issue_agent_token(
        &self,
        w: impl Write,
        row: &AgentRow,
        now: i64,
    ) -> Result<(String, i64), AgentError> {
        let token = secret::generate_token(AGENT_TOKEN_PREFIX);
        let expires_at = now + i64::from(self.cfg.agent_token_ttl_days) * 86_400_000;
        store::insert_token(
            w,
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
    /// Live tokens of active agents are cached briefly ([`AuthCache`]).
    pub async fn authenticate(&self, token: &str) -> Result<AgentIdentity, AgentError> {
        if !token.starts_with(AGENT_TOKEN_PREFIX) {
            return Err(AgentError::AgentTokenInvalid);
        }
        let hash = secret::hash_token(token);
        let now = now_ms();
        if let Some(agent) = self.auth_cache.get(&hash, now) {
            return Ok(agent);
        }
        let generation = self.auth_cache.generation();
        let t = store::find_token(self.db.reader(), &hash, now)
            .await?
            .ok_or(AgentError::AgentTokenInvalid)?;
        match t.status {
            AgentStatus::Active => {
                let agent = AgentIdentity {
                    agent_id: t.agent_id,
                    tenant_id: t.tenant_id,
                    owner_user_id: t.owner_user_id,
                    token_id: t.token_id,
                    token_created_at: t.token_created_at,
                    token_expires_at: t.token_expires_at,
                    token_rotated: t.rotated_at.is_some(),
                };
                self.auth_cache.insert(hash, &agent, generation);
                Ok(agent)
            }
            AgentStatus::Revoked => Err(AgentError::AgentRevoked),
            AgentStatus::Pending => Err(AgentError::AgentTokenInvalid),
        }
    }

    pub async fn heartbeat(
        &self,
        agent: &AgentIdentity,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, AgentError> {
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
        f.into_fields().map_err(AgentError::Validation)?;
        let now = now_ms();
        let version_fp = fingerprint(req.version.as_deref());
        let metadata_fp = fingerprint(metadata.as_deref());
        let planned = self
            .presence
            .plan(&agent.agent_id, now, version_fp, metadata_fp);
        if planned.plan == HeartbeatPlan::WriteThrough {
            match store::heartbeat(
                self.db.writer(),
                &agent.agent_id,
                req.version.as_deref(),
                metadata.as_deref(),
                now,
            )
            .await?
            {
                HeartbeatWrite::NotActive => {
                    self.presence.forget(&agent.agent_id);
                    return Err(AgentError::AgentRevoked);
                }
                HeartbeatWrite::CameOnline(row) => {
                    self.presence
                        .written(&agent.agent_id, now, version_fp, metadata_fp);
                    self.event("online", &row).await?;
                }
                HeartbeatWrite::Seen => {
                    self.presence
                        .written(&agent.agent_id, now, version_fp, metadata_fp);
                }
            }
        }
        let lifetime = agent.token_expires_at - agent.token_created_at;
        Ok(HeartbeatResponse {
            agent_id: agent.agent_id.to_string(),
            intervals: self.intervals(),
            server_time: ms_to_rfc3339(now),
            agent_token_expires_at: ms_to_rfc3339(agent.token_expires_at),
            rotate_token: now >= agent.token_created_at + lifetime * 3 / 4,
            next_heartbeat_in_ms: Some(self.next_heartbeat_in_ms(planned.first)),
        })
    }

    /// When the agent should heartbeat next: a random share of the interval
    /// taken off it, so heartbeats do not arrive in step. An agent's first
    /// heartbeat to this process (after a restart, the whole fleet within
    /// seconds) gets anywhere in the interval's last 90 %, which spreads the
    /// crowd over the interval from its second heartbeat on; later ones
    /// keep within its last 10 %.
    fn next_heartbeat_in_ms(&self, first: bool) -> u64 {
        use rand::Rng;
        let interval = self.cfg.heartbeat_interval_s * 1000;
        let low = if first {
            interval / 10
        } else {
            interval * 9 / 10
        };
        rand::rng().random_range(low.max(1000).min(interval)..=interval)
    }

    /// Load the stored presence of every active agent into the write-behind
    /// records (at server start), so a reconnecting fleet's first heartbeats
    /// are buffered instead of each being written through.
    pub async fn load_presence(&self) -> StoreResult<usize> {
        let mut stored = vec![];
        store::each_active_presence(self.db.reader(), |id, seen, version, metadata| {
            stored.push(StoredPresence {
                agent: AgentId::from(id),
                last_seen: seen,
                version: fingerprint(version.as_deref()),
                metadata: fingerprint(metadata.as_deref()),
            })
        })
        .await?;
        Ok(self.presence.load(stored))
    }

    /// Issue a fresh token; the presented one keeps working for a grace
    /// period. New token and retirement of the old are one transaction.
    pub async fn rotate_token(
        &self,
        agent: &AgentIdentity,
    ) -> Result<RotateTokenResponse, AgentError> {
        if agent.token_rotated {
            return Err(AgentError::TokenAlreadyRotated);
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let row = store::get(&mut tx, &agent.scope(), &agent.agent_id)
            .await?
            .ok_or(AgentError::AgentNotFound)?;
        let grace_until = (now + ROTATION_GRACE_MS).min(agent.token_expires_at);
        if !store::retire_token(&mut tx, &agent.token_id, grace_until, now).await? {
            // Another rotation with the same token won the race.
            return Err(AgentError::TokenAlreadyRotated);
        }
        let (token, expires_at) = self.issue_agent_token(&mut tx, &row, now).await?;
        self.record_event(&mut tx, "token_rotated", &row).await?;
        tx.commit().await?;
        // The presented token is rotated out now: not served from the cache.
        self.auth_cache.invalidate_agent(&agent.agent_id);
        self.events.notify().await;
        Ok(RotateTokenResponse {
            agent_token: token,
            agent_token_expires_at: ms_to_rfc3339(expires_at),
            previous_token_valid_until: ms_to_rfc3339(grace_until),
        })
    }

    /// Record the agent's X25519 public key (`PUT /agents/me/public-key`).
    /// The same key again changes nothing; a new key replaces the old one
    /// and is recorded on the timeline (`agent.public_key_registered`) in
    /// the same transaction.
    pub async fn register_public_key(
        &self,
        agent: &AgentIdentity,
        req: AgentPublicKeyRequest,
    ) -> Result<AgentPublicKey, AgentError> {
        const BAD_KEY: &str = "must be 32 bytes of base64url (no padding), not a low-order point";
        let key = PublicKey::from_base64(&req.public_key);
        let mut f = FieldErrors::default();
        f.check(req.alg == envelope::KEY_ALG, "alg", "must be X25519");
        f.check(key.is_ok(), "public_key", BAD_KEY);
        f.into_fields().map_err(AgentError::Validation)?;
        let key =
            key.map_err(|_| AgentError::Validation(FieldErrors::one("public_key", BAD_KEY)))?;
        let (encoded, key_id) = (key.to_base64(), key.key_id());
        let scope = agent.scope();
        let mut tx = self.db.begin().await?;
        let current = store::get(&mut tx, &scope, &agent.agent_id)
            .await?
            .ok_or(AgentError::AgentNotFound)?;
        let changed = current.public_key.as_deref() != Some(encoded.as_str());
        let row = if changed {
            let row = store::set_public_key(
                &mut tx,
                &scope,
                &agent.agent_id,
                &encoded,
                &key_id,
                now_ms(),
            )
            .await?
            .ok_or(AgentError::AgentRevoked)?;
            self.record_event(&mut tx, "public_key_registered", &row)
                .await?;
            row
        } else {
            current
        };
        tx.commit().await?;
        if changed {
            self.events.notify().await;
            tracing::info!(agent_id = %row.id, key_id = %key_id, "agent registered a public key");
        }
        Ok(AgentPublicKey {
            agent_id: row.id.to_string(),
            alg: envelope::KEY_ALG.to_string(),
            public_key: encoded,
            key_id,
            registered_at: ms_to_rfc3339(row.public_key_at.unwrap_or(row.updated_at)),
            changed,
        })
    }

    /// An agent by id in any tenant, for the admin CLI (no caller: whoever
    /// runs the CLI has the database).
    pub async fn find_anywhere(&self, id: &AgentId) -> Result<Option<AgentRow>, AgentError> {
        Ok(store::find_anywhere(self.db.reader(), id).await?)
    }

    /// Agents the caller may see: their own, or the tenant's for admins.
    pub async fn list(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<Agent>, AgentError> {
        let scope = caller.scope();
        let owner = (!caller.has(Role::Admin)).then_some(&caller.user_id);
        let now = now_ms();
        Ok(
            store::list(self.db.reader(), self.db.backend(), &scope, owner, params)
                .await?
                .map(|r| agent_view(&r, now, &self.cfg)),
        )
    }

    /// One agent the caller may see (others are "not found").
    pub async fn visible(&self, caller: &Identity, id: &AgentId) -> Result<AgentRow, AgentError> {
        let row = store::get(self.db.reader(), &caller.scope(), id)
            .await?
            .ok_or(AgentError::AgentNotFound)?;
        if !caller.has(Role::Admin) && row.owner_user_id.as_ref() != Some(&caller.user_id) {
            return Err(AgentError::AgentNotFound);
        }
        Ok(row)
    }

    /// One agent the caller may see, as the API shows it.
    pub async fn get_view(&self, caller: &Identity, id: &AgentId) -> Result<Agent, AgentError> {
        let row = self.visible(caller, id).await?;
        Ok(agent_view(&row, now_ms(), &self.cfg))
    }

    /// An agent of a tenant, whoever asks (for other domains' rules).
    pub async fn get(
        &self,
        scope: &TenantScope,
        id: &AgentId,
    ) -> Result<Option<AgentRow>, AgentError> {
        Ok(store::get(self.db.reader(), scope, id).await?)
    }

    /// The owner of an agent (for event visibility).
    pub async fn owner_of(&self, scope: &TenantScope, id: &AgentId) -> Option<UserId> {
        store::get(self.db.reader(), scope, id)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.owner_user_id)
    }

    /// Revoke an agent (admin): its token stops working immediately, its
    /// long poll returns, its queued commands are cancelled — the revoke,
    /// the cancellations and their events are one transaction.
    pub async fn revoke(
        &self,
        caller: &Identity,
        id: &AgentId,
        reason: Option<String>,
    ) -> Result<Agent, AgentError> {
        let scope = caller.require(Role::Admin)?;
        if let Some(r) = &reason {
            let mut f = FieldErrors::default();
            f.display_text("reason", r, 500);
            f.into_fields().map_err(AgentError::Validation)?;
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let revoked =
            store::revoke(&mut tx, &scope, id, &caller.user_id, reason.as_deref(), now).await?;
        let Some(row) = revoked else {
            drop(tx);
            return Err(match store::get(self.db.reader(), &scope, id).await? {
                Some(_) => AgentError::AlreadyRevoked,
                None => AgentError::AgentNotFound,
            });
        };
        let owner = row.owner_user_id.as_ref();
        for cmd in commands::cancel_queued_for_agent(&mut tx, &row.id, now).await? {
            commands::record_event(&self.events, &mut tx, "cancelled", &cmd, owner).await?;
        }
        self.record_event(&mut tx, "revoked", &row).await?;
        tx.commit().await?;
        // Its next request anywhere is refused: no cached token here, none
        // in other processes once the NOTIFY arrives; nothing buffered of it
        // is flushed.
        self.auth_cache.invalidate_agent(&row.id);
        self.presence.forget(&row.id);
        self.notifier.agent_revoked(row.id.as_str()).await;
        self.events.notify().await;
        self.notifier.wake_agent(row.id.as_str()).await;
        tracing::info!(agent_id = %row.id, by = %caller.user_id.as_str().escape_debug(), "agent revoked");
        Ok(agent_view(&row, now, &self.cfg))
    }

    /// Withdraw a pairing that was never redeemed.
    pub async fn delete_pending(&self, caller: &Identity, id: &AgentId) -> Result<(), AgentError> {
        caller.require(Role::Operator)?;
        let row = self.visible(caller, id).await?;
        if row.status != AgentStatus::Pending
            || !store::delete_pending(self.db.writer(), &caller.scope(), id).await?
        {
            return Err(AgentError::AgentNotPending);
        }
        Ok(())
    }

    /// Move silent agents to unreachable/offline; records an event for each
    /// change. Returns how many changed.
    pub async fn sweep_connection_states(&self, now: i64) -> StoreResult<usize> {
        let changed = store::sweep_connection_states(
            self.db.writer(),
            now - self.cfg.online_window_ms(),
            now - self.cfg.offline_after_ms(),
            now,
        )
        .await?;
        for row in &changed {
            self.event(row.connection_state.as_str(), row).await?;
        }
        Ok(changed.len())
    }

    /// Store every buffered heartbeat in one statement. On failure they stay
    /// buffered for the next flush.
    pub async fn flush_heartbeats(&self) -> StoreResult<usize> {
        let batch = self.presence.pending();
        if !batch.is_empty() {
            store::flush_last_seen(self.db.writer(), self.db.backend(), &batch).await?;
            self.presence.stored(&batch);
        }
        self.presence.flush_done();
        Ok(batch.len())
    }

    /// Counts completed heartbeat flushes (tests wait for one).
    pub fn subscribe_flushes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.presence.subscribe_flushes()
    }

    /// The write-behind flusher: flushes buffered heartbeats every
    /// `heartbeat_flush_ms` and drops cached tokens of agents revoked by
    /// other processes, until aborted. The server flushes once more on
    /// graceful shutdown.
    pub fn spawn_write_behind(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        let mut revoked = self.notifier.subscribe_revocations();
        tokio::spawn(async move {
            let period = Duration::from_millis(self.cfg.heartbeat_flush_ms);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = self.flush_heartbeats().await {
                            tracing::warn!(error = %e, "heartbeat flush failed; retrying next interval");
                        }
                    }
                    r = revoked.recv() => match r {
                        Ok(Revoked::Agent(id)) => {
                            let id = AgentId::from(id);
                            self.auth_cache.invalidate_agent(&id);
                            self.presence.forget(&id);
                        }
                        Ok(Revoked::Unknown)
                        | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            self.auth_cache.clear();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            revoked = self.notifier.subscribe_revocations();
                        }
                    },
                }
            }
        })
    }
}
