//! SQL of the secrets vault: `secrets` (ciphertext and its metadata) and
//! `secret_bindings` (where a secret is used), both keyed by
//! `(tenant_id, id)`.

use sqlx::FromRow;

use crate::db::ids::{AgentId, SecretBindingId, SecretId, TenantId};
use crate::db::list::{self, Fixed, ListParams, ListSpec, Page};
use crate::db::text_enum::text_enum;
use crate::db::{Backend, Read, Reader, StoreResult, TenantScope, Write};

text_enum!(
    /// Who can open a secret's ciphertext.
    SecretKind, "secret kind" {
        /// Encrypted by the client with a key the server never sees.
        Client => "client",
        /// Sealed by the server with its data key (the server can open it).
        Server => "server",
        /// Sealed to one agent's public key (only that agent can open it).
        Agent => "agent",
    }
);

text_enum!(
    /// What a binding attaches a secret to.
    ScopeType, "secret scope type" {
        Bot => "bot",
        Vm => "vm",
        /// The console's VM generator settings (`scope_id` e.g. `vmgenerator`).
        VmSettings => "vm_settings",
        /// An agent (`scope_id` is the agent id): the secret is delivered to it.
        Agent => "agent",
        Tenant => "tenant",
    }
);

pub const SECRET_COLUMNS: &str = "tenant_id, id, label, kind, alg, key_id, nonce, ciphertext, \
    aad, aad_meta, agent_id, material_version, created_by, created_at, updated_at, rotated_at";

#[derive(Clone, FromRow)]
pub struct SecretRow {
    pub tenant_id: TenantId,
    pub id: SecretId,
    pub label: String,
    #[sqlx(try_from = "String")]
    pub kind: SecretKind,
    pub alg: String,
    pub key_id: String,
    pub nonce: String,
    pub ciphertext: String,
    /// base64url of the associated data.
    pub aad: String,
    /// A JSON object (text).
    pub aad_meta: String,
    /// `kind = agent`: the agent the ciphertext is sealed to.
    pub agent_id: Option<AgentId>,
    pub material_version: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub rotated_at: Option<i64>,
}

/// Never prints the material (rows end up in error messages and logs).
impl std::fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRow")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .field("key_id", &self.key_id)
            .field("agent_id", &self.agent_id)
            .field("material_version", &self.material_version)
            .finish_non_exhaustive()
    }
}

/// A secret's material as stored.
pub struct Material<'a> {
    pub kind: SecretKind,
    pub alg: &'a str,
    pub key_id: &'a str,
    pub nonce: &'a str,
    pub ciphertext: &'a str,
    pub aad: &'a str,
    /// `None` keeps the stored `aad_meta` (rotation).
    pub aad_meta: Option<&'a str>,
    pub agent_id: Option<&'a AgentId>,
}

/// Insert a secret. `None` when the id is taken in the tenant.
pub async fn insert(
    mut w: impl Write,
    scope: &TenantScope,
    id: &SecretId,
    label: &str,
    m: &Material<'_>,
    by: &str,
    now: i64,
) -> StoreResult<Option<SecretRow>> {
    Ok(sqlx::query_as::<_, SecretRow>(&format!(
        "INSERT INTO secrets (tenant_id, id, label, kind, alg, key_id, nonce, ciphertext, aad,
            aad_meta, agent_id, material_version, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, COALESCE($10, '{{}}'), $11, 1, $12, $13, $13)
         ON CONFLICT (tenant_id, id) DO NOTHING
         RETURNING {SECRET_COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .bind(label)
    .bind(m.kind.as_str())
    .bind(m.alg)
    .bind(m.key_id)
    .bind(m.nonce)
    .bind(m.ciphertext)
    .bind(m.aad)
    .bind(m.aad_meta)
    .bind(m.agent_id.map(AgentId::as_str))
    .bind(by)
    .bind(now)
    .fetch_optional(w.exec())
    .await?)
}

pub async fn get(
    mut r: impl Read,
    scope: &TenantScope,
    id: &SecretId,
) -> StoreResult<Option<SecretRow>> {
    Ok(sqlx::query_as::<_, SecretRow>(&format!(
        "SELECT {SECRET_COLUMNS} FROM secrets WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(r.exec())
    .await?)
}

/// Replace a secret's material: `material_version` + 1, `rotated_at` now.
pub async fn rotate(
    mut w: impl Write,
    scope: &TenantScope,
    id: &SecretId,
    m: &Material<'_>,
    now: i64,
) -> StoreResult<Option<SecretRow>> {
    Ok(sqlx::query_as::<_, SecretRow>(&format!(
        "UPDATE secrets SET kind = $1, alg = $2, key_id = $3, nonce = $4, ciphertext = $5,
            aad = $6, aad_meta = COALESCE($7, aad_meta), agent_id = $8,
            material_version = material_version + 1, rotated_at = $9, updated_at = $9
         WHERE tenant_id = $10 AND id = $11
         RETURNING {SECRET_COLUMNS}"
    ))
    .bind(m.kind.as_str())
    .bind(m.alg)
    .bind(m.key_id)
    .bind(m.nonce)
    .bind(m.ciphertext)
    .bind(m.aad)
    .bind(m.aad_meta)
    .bind(m.agent_id.map(AgentId::as_str))
    .bind(now)
    .bind(scope.tenant())
    .bind(id.as_str())
    .fetch_optional(w.exec())
    .await?)
}

// ---- bindings ----

pub const BINDING_COLUMNS: &str =
    "tenant_id, id, scope_type, scope_id, secret_ref, field_name, created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct BindingRow {
    pub tenant_id: TenantId,
    pub id: SecretBindingId,
    #[sqlx(try_from = "String")]
    pub scope_type: ScopeType,
    pub scope_id: String,
    pub secret_ref: SecretId,
    pub field_name: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The binding of one (scope, field), if any.
pub async fn binding_at(
    mut r: impl Read,
    scope: &TenantScope,
    scope_type: ScopeType,
    scope_id: &str,
    field_name: &str,
) -> StoreResult<Option<BindingRow>> {
    Ok(sqlx::query_as::<_, BindingRow>(&format!(
        "SELECT {BINDING_COLUMNS} FROM secret_bindings
         WHERE tenant_id = $1 AND scope_type = $2 AND scope_id = $3 AND field_name = $4"
    ))
    .bind(scope.tenant())
    .bind(scope_type.as_str())
    .bind(scope_id)
    .bind(field_name)
    .fetch_optional(r.exec())
    .await?)
}

pub struct NewBinding<'a> {
    pub id: &'a SecretBindingId,
    pub scope_type: ScopeType,
    pub scope_id: &'a str,
    pub secret_ref: &'a SecretId,
    pub field_name: &'a str,
    pub by: &'a str,
    pub now: i64,
}

/// Insert, or point the existing binding of the same (scope, field) at
/// `secret_ref` (its id, creator and `created_at` are kept).
pub async fn upsert_binding(
    mut w: impl Write,
    scope: &TenantScope,
    b: NewBinding<'_>,
) -> StoreResult<BindingRow> {
    Ok(sqlx::query_as::<_, BindingRow>(&format!(
        "INSERT INTO secret_bindings (tenant_id, id, scope_type, scope_id, secret_ref, field_name,
            created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         ON CONFLICT (tenant_id, scope_type, scope_id, field_name) DO UPDATE SET
            secret_ref = $5, updated_at = $8
         RETURNING {BINDING_COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(b.id.as_str())
    .bind(b.scope_type.as_str())
    .bind(b.scope_id)
    .bind(b.secret_ref.as_str())
    .bind(b.field_name)
    .bind(b.by)
    .bind(b.now)
    .fetch_one(w.exec())
    .await?)
}

/// Whether `secret` is bound to `agent` (any field).
pub async fn bound_to_agent(
    mut r: impl Read,
    scope: &TenantScope,
    agent: &AgentId,
    secret: &SecretId,
) -> StoreResult<bool> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM secret_bindings
         WHERE tenant_id = $1 AND scope_type = 'agent' AND scope_id = $2 AND secret_ref = $3
         LIMIT 1",
    )
    .bind(scope.tenant())
    .bind(agent.as_str())
    .bind(secret.as_str())
    .fetch_optional(r.exec())
    .await?;
    Ok(row.is_some())
}

/// The bindings of a tenant as the list kit pages them (newest first).
pub static BINDING_LIST: ListSpec = ListSpec {
    table: "secret_bindings",
    select: BINDING_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new(
            "scope_type",
            "scope_type",
            list::Kind::Enum(&["bot", "vm", "vm_settings", "agent", "tenant"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("scope_id", "scope_id", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("secret_ref", "secret_ref", list::Kind::Text).filterable(),
        list::Column::new("field_name", "field_name", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

/// One page of bindings; `creator` limits to one user's bindings.
pub async fn list_bindings(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    creator: Option<&str>,
    params: &ListParams,
) -> StoreResult<Page<BindingRow>> {
    let fixed: Vec<Fixed> = creator
        .map(|c| Fixed::eq("created_by", c))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &BINDING_LIST, scope, &fixed, params).await
}

// ---- metadata list (no material) ----

/// A secret's metadata columns: never the nonce, ciphertext or aad.
pub const SECRET_META_COLUMNS: &str = "tenant_id, id, label, kind, alg, key_id, aad_meta, \
    agent_id, material_version, created_by, created_at, updated_at, rotated_at";

/// A secret without its material (lists).
#[derive(Debug, Clone, FromRow)]
pub struct SecretMetaRow {
    pub tenant_id: TenantId,
    pub id: SecretId,
    pub label: String,
    #[sqlx(try_from = "String")]
    pub kind: SecretKind,
    pub alg: String,
    pub key_id: String,
    /// A JSON object (text).
    pub aad_meta: String,
    pub agent_id: Option<AgentId>,
    pub material_version: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub rotated_at: Option<i64>,
}

/// A full row without its material.
impl From<SecretRow> for SecretMetaRow {
    fn from(r: SecretRow) -> Self {
        SecretMetaRow {
            tenant_id: r.tenant_id,
            id: r.id,
            label: r.label,
            kind: r.kind,
            alg: r.alg,
            key_id: r.key_id,
            aad_meta: r.aad_meta,
            agent_id: r.agent_id,
            material_version: r.material_version,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            rotated_at: r.rotated_at,
        }
    }
}

/// The secrets of a tenant (metadata only) as the list kit pages them.
pub static SECRET_LIST: ListSpec = ListSpec {
    table: "secrets",
    select: SECRET_META_COLUMNS,
    columns: &[
        list::Column::new("created_at", "created_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("updated_at", "updated_at", list::Kind::Timestamp)
            .sortable()
            .filterable(),
        list::Column::new("rotated_at", "rotated_at", list::Kind::Timestamp)
            .nullable()
            .sortable()
            .filterable(),
        list::Column::new("id", "id", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new("label", "label", list::Kind::Text)
            .sortable()
            .filterable()
            .searchable(),
        list::Column::new(
            "kind",
            "kind",
            list::Kind::Enum(&["client", "server", "agent"]),
        )
        .sortable()
        .filterable(),
        list::Column::new("agent_id", "agent_id", list::Kind::Text)
            .nullable()
            .filterable(),
        list::Column::new("material_version", "material_version", list::Kind::Integer)
            .sortable()
            .filterable(),
    ],
    default_sort: "created_at",
    default_order: list::Order::Desc,
    id_column: "id",
};

/// One page of secrets' metadata; `creator` limits to one user's secrets.
pub async fn list(
    reader: &Reader,
    backend: Backend,
    scope: &TenantScope,
    creator: Option<&str>,
    params: &ListParams,
) -> StoreResult<Page<SecretMetaRow>> {
    let fixed: Vec<Fixed> = creator
        .map(|c| Fixed::eq("created_by", c))
        .into_iter()
        .collect();
    list::fetch(reader, backend, &SECRET_LIST, scope, &fixed, params).await
}
