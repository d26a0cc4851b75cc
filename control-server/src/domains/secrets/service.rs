//! The vault's rules: who may store, read (metadata only), rotate and bind
//! a secret; how plaintext given to the server is sealed; and delivery of
//! a secret to the one agent it is bound to, always as an envelope sealed
//! to that agent's public key.
//!
//! Visibility: a secret and a binding belong to the user who created them;
//! admins see the tenant's. Operators store, rotate and bind; viewers read.
//! Binding a secret to an agent needs the agent to be the caller's (admins:
//! any agent of the tenant), like dispatching a command to it, because the
//! agent will receive the secret. No response to a user ever carries the
//! ciphertext, nonce, associated data or plaintext.

use std::sync::Arc;

use botmox_protocol::envelope::{self, Binding, Parts, PublicKey, Zeroizing};
use botmox_protocol::AgentSecret;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::store::{
    self, BindingRow, Material, NewBinding, ScopeType, SecretKind, SecretMetaRow, SecretRow,
};
use super::SecretError;
use crate::auth::{Identity, Role};
use crate::crypto::{Aad, DataKeys, SealedParts};
use crate::db::ids::{AgentId, SecretBindingId, SecretId};
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, TenantScope};
use crate::domains::agents::store::AgentRow;
use crate::domains::agents::{AgentError, AgentIdentity, AgentStatus, AgentsService};
use crate::validate::FieldErrors;

/// `alg` of client material when the client does not name one (the original's).
pub const DEFAULT_ALG: &str = "AES-256-GCM";
/// The data key's associated-data purpose for server-sealed values.
pub const PURPOSE: &str = "secrets.value";
/// Largest plaintext `value` (bytes) and agent envelope payload.
pub const MAX_VALUE_BYTES: usize = envelope::MAX_PLAINTEXT;
/// Largest client ciphertext (base64 characters).
pub const MAX_CIPHERTEXT_CHARS: usize = 262_144;
/// Largest `aad_meta` (serialized JSON bytes).
pub const MAX_AAD_META_BYTES: usize = 16 * 1024;
/// `created_by` of a secret the admin CLI put for an agent without an owner.
pub const CLI_CREATOR: &str = "admin-cli";
/// A secret id (client-chosen or generated).
pub const SECRET_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,100}$";

/// `^[A-Za-z0-9_-]{1,100}$`
pub fn valid_secret_id(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Base64 (standard or URL alphabet, padding optional), non-empty.
fn base64_text(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'))
}

/// A secret as users see it: metadata, never the material.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretMeta {
    pub id: SecretId,
    pub tenant_id: String,
    pub label: String,
    /// `client` (encrypted by the client; the server cannot open it),
    /// `server` (sealed with the server's data key) or `agent` (sealed to
    /// one agent's public key; only that agent can open it).
    #[schema(schema_with = super::routes::kind_schema)]
    pub kind: SecretKind,
    pub alg: String,
    /// The client's key id, the server data key id, or the agent key id.
    pub key_id: String,
    #[schema(value_type = Object)]
    pub aad_meta: Value,
    /// `kind = agent`: the agent the material is sealed to.
    pub agent_id: Option<String>,
    /// 1, plus one per rotation.
    pub material_version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub rotated_at: Option<String>,
}

impl From<SecretRow> for SecretMeta {
    fn from(r: SecretRow) -> Self {
        SecretMetaRow::from(r).into()
    }
}

impl From<SecretMetaRow> for SecretMeta {
    fn from(r: SecretMetaRow) -> Self {
        SecretMeta {
            aad_meta: serde_json::from_str(&r.aad_meta)
                .ok()
                .filter(Value::is_object)
                .unwrap_or_else(|| Value::Object(Default::default())),
            id: r.id,
            tenant_id: r.tenant_id.into_string(),
            label: r.label,
            kind: r.kind,
            alg: r.alg,
            key_id: r.key_id,
            agent_id: r.agent_id.map(AgentId::into_string),
            material_version: r.material_version,
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
            rotated_at: r.rotated_at.map(ms_to_rfc3339),
        }
    }
}

/// Where a secret is used.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretBinding {
    pub id: SecretBindingId,
    pub tenant_id: String,
    #[schema(schema_with = super::routes::scope_type_schema)]
    pub scope_type: ScopeType,
    pub scope_id: String,
    pub secret_ref: SecretId,
    pub field_name: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<BindingRow> for SecretBinding {
    fn from(r: BindingRow) -> Self {
        SecretBinding {
            id: r.id,
            tenant_id: r.tenant_id.into_string(),
            scope_type: r.scope_type,
            scope_id: r.scope_id,
            secret_ref: r.secret_ref,
            field_name: r.field_name,
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        }
    }
}

/// `Some(v)` for a present value; `null` is refused like any wrong type.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// The body of create and rotate (rotate refuses `id` and `label`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    label: Option<String>,
    #[serde(default, deserialize_with = "present")]
    ciphertext: Option<String>,
    #[serde(default, deserialize_with = "present")]
    alg: Option<String>,
    #[serde(default, deserialize_with = "present")]
    key_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    nonce: Option<String>,
    #[serde(default, deserialize_with = "present")]
    aad_meta: Option<serde_json::Map<String, Value>>,
    #[serde(default, deserialize_with = "present")]
    agent_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    value: Option<String>,
}

/// A bind request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindBody {
    scope_type: ScopeType,
    scope_id: String,
    secret_ref: String,
    #[serde(default, deserialize_with = "present")]
    field_name: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Value) -> Result<T, FieldErrors> {
    serde_path_to_error::deserialize::<_, T>(body).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        FieldErrors::one(if path == "." { "body" } else { &path }, msg)
    })
}

/// A short one-line string: 1..=max characters, no control characters.
fn short_text(f: &mut FieldErrors, field: &str, v: &str, max: usize) {
    if v.is_empty() {
        f.add(field, "must not be empty");
    } else {
        f.display_text(field, v, max);
    }
}

/// New material, validated.
enum Input {
    Client {
        ciphertext: String,
        alg: String,
        key_id: String,
        nonce: String,
    },
    Agent {
        envelope: String,
        agent_id: AgentId,
        key_id: String,
        nonce: String,
    },
    Server {
        value: Zeroizing<String>,
    },
}

/// Check the material fields of `b`: `value` (the server seals it), or
/// `ciphertext` with `alg` (default `AES-256-GCM`), `key_id` and `nonce`
/// (client material), or an envelope with `alg` = [`envelope::ALG`],
/// `agent_id` and `key_id` (`nonce`, if given, must be the envelope's).
/// `None` only after adding a field error.
fn material(b: &mut Body, f: &mut FieldErrors) -> Option<Input> {
    if let Some(value) = b.value.take().map(Zeroizing::new) {
        if b.ciphertext.is_some() {
            f.add(
                "value",
                "give either value (sealed by the server) or ciphertext, not both",
            );
        }
        for (field, given) in [
            ("alg", b.alg.is_some()),
            ("key_id", b.key_id.is_some()),
            ("nonce", b.nonce.is_some()),
            ("agent_id", b.agent_id.is_some()),
        ] {
            f.check(
                !given,
                field,
                "is set by the server when it seals a value; leave it out",
            );
        }
        if value.is_empty() {
            f.add("value", "must not be empty");
        } else if value.len() > MAX_VALUE_BYTES {
            f.add("value", format!("must be at most {MAX_VALUE_BYTES} bytes"));
        }
        return Some(Input::Server { value });
    }
    let Some(ciphertext) = b.ciphertext.take() else {
        f.add(
            "ciphertext",
            "is required (or value, to have the server seal the plaintext)",
        );
        return None;
    };
    let alg = b.alg.take().unwrap_or_else(|| DEFAULT_ALG.to_string());
    short_text(f, "alg", &alg, 50);
    let key_id = match b.key_id.take() {
        Some(k) => {
            short_text(f, "key_id", &k, 200);
            k
        }
        None => {
            f.add("key_id", "is required with ciphertext");
            String::new()
        }
    };
    if let Some(n) = &b.nonce {
        short_text(f, "nonce", n, 200);
    }
    if alg == envelope::ALG {
        let Some(agent_id) = b.agent_id.take() else {
            f.add(
                "agent_id",
                format!(
                    "is required with alg {}: the agent the envelope is sealed to",
                    envelope::ALG
                ),
            );
            return None;
        };
        short_text(f, "agent_id", &agent_id, 100);
        let parts = match Parts::parse(&ciphertext) {
            Ok(p) => p,
            Err(e) => {
                f.add("ciphertext", format!("is not a secret envelope: {e}"));
                return None;
            }
        };
        let nonce = parts.nonce_base64();
        if b.nonce.as_ref().is_some_and(|n| *n != nonce) {
            f.add(
                "nonce",
                "does not match the envelope's nonce (leave it out)",
            );
        }
        return Some(Input::Agent {
            envelope: ciphertext,
            agent_id: AgentId::from(agent_id),
            key_id,
            nonce,
        });
    }
    if b.agent_id.is_some() {
        f.add(
            "agent_id",
            format!("is only used with alg {}", envelope::ALG),
        );
    }
    if ciphertext.len() > MAX_CIPHERTEXT_CHARS {
        f.add(
            "ciphertext",
            format!("must be at most {MAX_CIPHERTEXT_CHARS} characters"),
        );
    } else if !base64_text(&ciphertext) {
        f.add("ciphertext", "must be base64 (standard or URL alphabet)");
    }
    let nonce = b.nonce.take();
    if nonce.is_none() {
        f.add("nonce", "is required with client-encrypted ciphertext");
    }
    Some(Input::Client {
        ciphertext,
        alg,
        key_id,
        nonce: nonce.unwrap_or_default(),
    })
}

/// `aad_meta` as stored: a JSON object of at most 16 KiB.
fn aad_meta(f: &mut FieldErrors, m: Option<serde_json::Map<String, Value>>) -> Option<String> {
    let text = Value::Object(m?).to_string();
    f.check(
        text.len() <= MAX_AAD_META_BYTES,
        "aad_meta",
        "must be at most 16 KiB of JSON",
    );
    Some(text)
}

/// Material ready for the store (owns its strings).
struct Sealed {
    kind: SecretKind,
    alg: String,
    key_id: String,
    nonce: String,
    ciphertext: String,
    aad: String,
    agent_id: Option<AgentId>,
}

impl Sealed {
    fn material<'a>(&'a self, aad_meta: Option<&'a str>) -> Material<'a> {
        Material {
            kind: self.kind,
            alg: &self.alg,
            key_id: &self.key_id,
            nonce: &self.nonce,
            ciphertext: &self.ciphertext,
            aad: &self.aad,
            aad_meta,
            agent_id: self.agent_id.as_ref(),
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The agent's current public key, or why there is none.
fn agent_key(agent: &AgentRow) -> Result<(PublicKey, String), SecretError> {
    match (&agent.public_key, &agent.public_key_id) {
        (Some(k), Some(id)) => Ok((
            PublicKey::from_base64(k).map_err(SecretError::Envelope)?,
            id.clone(),
        )),
        _ => Err(SecretError::PublicKeyMissing),
    }
}

pub struct SecretsService {
    db: Db,
    data_keys: Arc<DataKeys>,
    agents: Arc<AgentsService>,
}

impl SecretsService {
    pub fn new(db: Db, data_keys: Arc<DataKeys>, agents: Arc<AgentsService>) -> SecretsService {
        SecretsService {
            db,
            data_keys,
            agents,
        }
    }

    fn aad<'a>(scope: &'a TenantScope, id: &'a SecretId) -> Aad<'a> {
        Aad {
            purpose: PURPOSE,
            tenant: scope.tenant(),
            id: id.as_str(),
        }
    }

    /// An agent of the tenant the caller may hand secrets to: their own
    /// (admins: any). Revoked agents receive nothing.
    async fn usable_agent(
        &self,
        who: &Identity,
        scope: &TenantScope,
        id: &AgentId,
    ) -> Result<AgentRow, SecretError> {
        let agent = self
            .agents
            .get(scope, id)
            .await?
            .ok_or(SecretError::Agent(AgentError::AgentNotFound))?;
        if !who.has(Role::Admin) {
            match agent.owner_user_id.as_ref() {
                None => return Err(SecretError::AgentOwnerUnassigned),
                Some(o) if *o != who.user_id => return Err(SecretError::AgentOwnerMismatch),
                Some(_) => {}
            }
        }
        if agent.status == AgentStatus::Revoked {
            return Err(SecretError::Agent(AgentError::AgentRevoked));
        }
        Ok(agent)
    }

    /// Seal or check `input` for the secret `id`.
    async fn seal(
        &self,
        who: &Identity,
        scope: &TenantScope,
        id: &SecretId,
        input: Input,
        aad_meta: Option<&str>,
    ) -> Result<Sealed, SecretError> {
        Ok(match input {
            Input::Client {
                ciphertext,
                alg,
                key_id,
                nonce,
            } => Sealed {
                kind: SecretKind::Client,
                alg,
                key_id,
                nonce,
                ciphertext,
                aad: b64(aad_meta.unwrap_or("{}").as_bytes()),
                agent_id: None,
            },
            Input::Agent {
                envelope: env,
                agent_id,
                key_id,
                nonce,
            } => {
                let agent = self.usable_agent(who, scope, &agent_id).await?;
                let (_, current) = agent_key(&agent)?;
                if key_id != current {
                    return Err(SecretError::PublicKeyMismatch);
                }
                Sealed {
                    kind: SecretKind::Agent,
                    alg: envelope::ALG.to_string(),
                    key_id,
                    nonce,
                    ciphertext: env,
                    aad: b64(&Binding {
                        secret_id: id.as_str(),
                        agent_id: agent.id.as_str(),
                    }
                    .aad()),
                    agent_id: Some(agent.id),
                }
            }
            Input::Server { value } => {
                let aad = Self::aad(scope, id);
                let parts = SealedParts::split(&self.data_keys.seal(aad, value.as_bytes()))?;
                Sealed {
                    kind: SecretKind::Server,
                    alg: DEFAULT_ALG.to_string(),
                    key_id: parts.key_id,
                    nonce: parts.nonce,
                    ciphertext: parts.ciphertext,
                    aad: b64(&aad.bytes()),
                    agent_id: None,
                }
            }
        })
    }

    /// Store a secret (operator+): client ciphertext, an agent envelope, or
    /// a plaintext `value` the server seals with its data key.
    pub async fn create(&self, who: &Identity, body: &Value) -> Result<SecretMeta, SecretError> {
        let scope = who.require(Role::Operator)?;
        let mut b: Body = parse(body).map_err(SecretError::InvalidCreate)?;
        let mut f = FieldErrors::default();
        let id_given = b.id.is_some();
        let id = match b.id.take() {
            Some(id) if valid_secret_id(&id) => SecretId::from(id),
            Some(_) => {
                f.add("id", "must be 1-100 characters of A-Z a-z 0-9 _ -");
                SecretId::generate()
            }
            None => SecretId::generate(),
        };
        let label = b.label.take().unwrap_or_default();
        short_text(&mut f, "label", &label, 200);
        let meta = aad_meta(&mut f, b.aad_meta.take());
        let input = material(&mut b, &mut f);
        if matches!(input, Some(Input::Agent { .. })) && !id_given {
            f.add(
                "id",
                "is required with an agent envelope: the envelope is bound to the secret id",
            );
        }
        f.into_fields().map_err(SecretError::InvalidCreate)?;
        // `material` adds a field error whenever it returns `None`.
        let input = input.ok_or_else(|| {
            SecretError::InvalidCreate(FieldErrors::one("ciphertext", "is required"))
        })?;
        let sealed = self.seal(who, &scope, &id, input, meta.as_deref()).await?;
        let row = store::insert(
            self.db.writer(),
            &scope,
            &id,
            &label,
            &sealed.material(meta.as_deref()),
            who.user_id.as_str(),
            now_ms(),
        )
        .await?
        .ok_or(SecretError::IdTaken)?;
        tracing::info!(secret_id = %row.id, kind = %row.kind, by = %who.user_id, "secret stored");
        Ok(row.into())
    }

    /// A secret the caller may see (own; admins: the tenant).
    async fn visible(&self, who: &Identity, id: &SecretId) -> Result<SecretRow, SecretError> {
        if !valid_secret_id(id.as_str()) {
            return Err(SecretError::InvalidId);
        }
        match store::get(self.db.reader(), &who.scope(), id).await? {
            Some(r) if r.created_by == who.user_id.as_str() || who.has(Role::Admin) => Ok(r),
            _ => Err(SecretError::NotFound),
        }
    }

    /// A secret's metadata (viewer+; own, admins: the tenant's).
    pub async fn meta(&self, who: &Identity, id: &SecretId) -> Result<SecretMeta, SecretError> {
        who.require(Role::Viewer)?;
        Ok(self.visible(who, id).await?.into())
    }

    /// Replace a secret's material (operator+; own, admins: any).
    pub async fn rotate(
        &self,
        who: &Identity,
        id: &SecretId,
        body: &Value,
    ) -> Result<SecretMeta, SecretError> {
        let scope = who.require(Role::Operator)?;
        let mut b: Body = parse(body).map_err(SecretError::InvalidRotate)?;
        let current = self.visible(who, id).await?;
        let mut f = FieldErrors::default();
        for (field, given) in [("id", b.id.is_some()), ("label", b.label.is_some())] {
            f.check(!given, field, "cannot be changed by a rotation");
        }
        let meta = aad_meta(&mut f, b.aad_meta.take());
        let input = material(&mut b, &mut f);
        f.into_fields().map_err(SecretError::InvalidRotate)?;
        let input = input.ok_or_else(|| {
            SecretError::InvalidRotate(FieldErrors::one("ciphertext", "is required"))
        })?;
        let sealed = self
            .seal(
                who,
                &scope,
                id,
                input,
                meta.as_deref().or(Some(current.aad_meta.as_str())),
            )
            .await?;
        let row = store::rotate(
            self.db.writer(),
            &scope,
            id,
            &sealed.material(meta.as_deref()),
            now_ms(),
        )
        .await?
        .ok_or(SecretError::NotFound)?;
        tracing::info!(secret_id = %row.id, kind = %row.kind, version = row.material_version,
            by = %who.user_id, "secret rotated");
        Ok(row.into())
    }

    /// Bind a secret to a scope's field (operator+), replacing that field's
    /// previous binding (its creator's, or any for admins).
    pub async fn bind(&self, who: &Identity, body: &Value) -> Result<SecretBinding, SecretError> {
        let scope = who.require(Role::Operator)?;
        let b: BindBody = parse(body).map_err(SecretError::InvalidBinding)?;
        let mut f = FieldErrors::default();
        short_text(&mut f, "scope_id", &b.scope_id, 200);
        let field_name = b.field_name.unwrap_or_default();
        if !field_name.is_empty() {
            f.display_text("field_name", &field_name, 200);
        }
        f.check(
            valid_secret_id(&b.secret_ref),
            "secret_ref",
            "must be a secret id (1-100 characters of A-Z a-z 0-9 _ -)",
        );
        f.into_fields().map_err(SecretError::InvalidBinding)?;
        let secret_ref = SecretId::from(b.secret_ref);
        let secret = self.visible(who, &secret_ref).await?;
        if b.scope_type == ScopeType::Agent {
            let agent = self
                .usable_agent(who, &scope, &AgentId::from(b.scope_id.as_str()))
                .await?;
            let deliverable = match secret.kind {
                SecretKind::Server => true,
                SecretKind::Agent => secret.agent_id.as_ref() == Some(&agent.id),
                SecretKind::Client => false,
            };
            if !deliverable {
                return Err(SecretError::NotDeliverable);
            }
        }
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        if let Some(existing) =
            store::binding_at(&mut tx, &scope, b.scope_type, &b.scope_id, &field_name).await?
        {
            if existing.created_by != who.user_id.as_str() && !who.has(Role::Admin) {
                return Err(SecretError::BindingTaken);
            }
        }
        let row = store::upsert_binding(
            &mut tx,
            &scope,
            NewBinding {
                id: &SecretBindingId::generate(),
                scope_type: b.scope_type,
                scope_id: &b.scope_id,
                secret_ref: &secret_ref,
                field_name: &field_name,
                by: who.user_id.as_str(),
                now,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(binding_id = %row.id, secret_id = %row.secret_ref, scope_type = %row.scope_type,
            by = %who.user_id, "secret bound");
        Ok(row.into())
    }

    /// Secrets' metadata the caller may see (own; admins: the tenant's),
    /// newest first; never the material (`GET /api/v1/secrets`, the console).
    pub async fn list(
        &self,
        who: &Identity,
        params: &ListParams,
    ) -> Result<Page<SecretMeta>, SecretError> {
        let scope = who.require(Role::Viewer)?;
        let creator = (!who.has(Role::Admin)).then_some(who.user_id.as_str());
        Ok(
            store::list(self.db.reader(), self.db.backend(), &scope, creator, params)
                .await?
                .map(SecretMeta::from),
        )
    }

    /// Bindings the caller may see (own; admins: the tenant's), newest first.
    pub async fn list_bindings(
        &self,
        who: &Identity,
        params: &ListParams,
    ) -> Result<Page<SecretBinding>, SecretError> {
        let scope = who.require(Role::Viewer)?;
        let creator = (!who.has(Role::Admin)).then_some(who.user_id.as_str());
        Ok(
            store::list_bindings(self.db.reader(), self.db.backend(), &scope, creator, params)
                .await?
                .map(SecretBinding::from),
        )
    }

    /// A secret bound to the calling agent, sealed to its current key: the
    /// stored envelope for agent secrets, a fresh one for server-sealed
    /// secrets. Secrets not bound to this agent are "not found".
    pub async fn deliver(
        &self,
        agent: &AgentIdentity,
        id: &SecretId,
    ) -> Result<AgentSecret, SecretError> {
        if !valid_secret_id(id.as_str()) {
            return Err(SecretError::InvalidId);
        }
        let scope = agent.scope();
        if !store::bound_to_agent(self.db.reader(), &scope, &agent.agent_id, id).await? {
            return Err(SecretError::NotFound);
        }
        let secret = store::get(self.db.reader(), &scope, id)
            .await?
            .ok_or(SecretError::NotFound)?;
        let me = self
            .agents
            .get(&scope, &agent.agent_id)
            .await?
            .ok_or(SecretError::Agent(AgentError::AgentNotFound))?;
        let (env, key_id) = match secret.kind {
            SecretKind::Agent => {
                let sealed_to_me = secret.agent_id.as_ref() == Some(&me.id)
                    && me.public_key_id.as_deref() == Some(secret.key_id.as_str());
                if !sealed_to_me {
                    return Err(SecretError::NotDeliverable);
                }
                (secret.ciphertext.clone(), secret.key_id.clone())
            }
            SecretKind::Server => {
                let (key, key_id) = agent_key(&me)?;
                let sealed = SealedParts {
                    key_id: secret.key_id.clone(),
                    nonce: secret.nonce.clone(),
                    ciphertext: secret.ciphertext.clone(),
                };
                let plain =
                    Zeroizing::new(self.data_keys.open(Self::aad(&scope, id), &sealed.join())?);
                let env = envelope::seal(
                    &key,
                    Binding {
                        secret_id: id.as_str(),
                        agent_id: me.id.as_str(),
                    },
                    &plain,
                )
                .map_err(SecretError::Envelope)?;
                (env, key_id)
            }
            SecretKind::Client => return Err(SecretError::NotDeliverable),
        };
        tracing::info!(secret_id = %secret.id, agent_id = %me.id, kind = %secret.kind, key_id = %key_id,
            "secret delivered to agent");
        Ok(AgentSecret {
            secret_id: secret.id.to_string(),
            agent_id: me.id.to_string(),
            label: secret.label,
            alg: envelope::ALG.to_string(),
            key_id,
            envelope: env,
            material_version: secret.material_version,
            updated_at: ms_to_rfc3339(secret.updated_at),
            rotated_at: secret.rotated_at.map(ms_to_rfc3339),
        })
    }

    /// `control-server admin secret put --agent ID`: seal `plaintext` to the
    /// agent's public key (read from the database), store it and bind it to
    /// the agent's `field` (default: the label), in one transaction. The
    /// secret is recorded as created by the agent's owner. Only whoever runs
    /// the CLI (and so holds the database) calls this.
    pub async fn put_for_agent(
        &self,
        agent_id: &AgentId,
        label: &str,
        field: Option<&str>,
        plaintext: &[u8],
    ) -> Result<(SecretMeta, SecretBinding), SecretError> {
        let agent = self
            .agents
            .find_anywhere(agent_id)
            .await?
            .ok_or(SecretError::Agent(AgentError::AgentNotFound))?;
        let mut f = FieldErrors::default();
        short_text(&mut f, "label", label, 200);
        let field = field.unwrap_or(label);
        f.display_text("field", field, 200);
        if plaintext.is_empty() {
            f.add("value", "must not be empty");
        } else if plaintext.len() > MAX_VALUE_BYTES {
            f.add("value", format!("must be at most {MAX_VALUE_BYTES} bytes"));
        }
        f.into_fields().map_err(SecretError::InvalidCreate)?;
        if agent.status == AgentStatus::Revoked {
            return Err(SecretError::Agent(AgentError::AgentRevoked));
        }
        let (key, key_id) = agent_key(&agent)?;
        let scope = TenantScope::new(agent.tenant_id.clone());
        let id = SecretId::generate();
        let binding = Binding {
            secret_id: id.as_str(),
            agent_id: agent.id.as_str(),
        };
        let env = envelope::seal(&key, binding, plaintext).map_err(SecretError::Envelope)?;
        let nonce = Parts::parse(&env)
            .map_err(SecretError::Envelope)?
            .nonce_base64();
        let sealed = Sealed {
            kind: SecretKind::Agent,
            alg: envelope::ALG.to_string(),
            key_id,
            nonce,
            ciphertext: env,
            aad: b64(&binding.aad()),
            agent_id: Some(agent.id.clone()),
        };
        let by = agent
            .owner_user_id
            .as_ref()
            .map_or(CLI_CREATOR, |u| u.as_str());
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let row = store::insert(&mut tx, &scope, &id, label, &sealed.material(None), by, now)
            .await?
            .ok_or(SecretError::IdTaken)?;
        let bound = store::upsert_binding(
            &mut tx,
            &scope,
            NewBinding {
                id: &SecretBindingId::generate(),
                scope_type: ScopeType::Agent,
                scope_id: agent.id.as_str(),
                secret_ref: &id,
                field_name: field,
                by,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(secret_id = %row.id, agent_id = %agent.id, "secret put for agent by the admin CLI");
        Ok((row.into(), bound.into()))
    }
}
