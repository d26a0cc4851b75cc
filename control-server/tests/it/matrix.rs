//! Tenant × role matrix, generated from the OpenAPI document (issue #11,
//! item 13).
//!
//! Every operation of `control_server::http::openapi()` has exactly one row
//! in [`TABLE`]: the role it needs and whether the call names tenant A's
//! objects. The test builds tenant A through the real API (users of each
//! role, an agent paired, registered and online, a pending pairing, a queued
//! command, an API token), then calls every operation, with tenant A's ids
//! in the path and a minimal valid body, as each caller in [`CALLERS`]:
//! anonymous, tenant B's agent, tenant B's viewer/operator/admin, and tenant
//! A's viewer/operator (who own none of A's objects). The expected outcome
//! of each call is derived from the row ([`expect`]); then:
//!
//! * a refused call answers exactly as expected (401 anonymous, 403 role or
//!   wrong kind of token, 404 across tenants, 403/404 for a non-owner inside
//!   A) with the JSON error envelope, never 5xx;
//! * no response (nor any event on the SSE stream) carries an id or secret
//!   of tenant A the caller may not see and did not send itself;
//! * nothing of tenant A changed (snapshots through A's admin before and
//!   after, A's agent and API token still work, A's timeline holds only the
//!   events of the set-up);
//! * the same requests made by the owner (A's admin, A's agent, infra)
//!   succeed, so every refusal above was an authorization decision.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{base_settings, Backend, Resp, TestServer, PASSWORD};
use control_server::config::Settings;

backend_tests!(tenant_role_matrix);

/// The table alone, without a server: fails when an OpenAPI operation has
/// no row or a row names an operation that no longer exists.
#[test]
fn table_covers_every_openapi_operation() {
    let problems = table_problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------- the table

/// What an operation requires of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// No token (a token, if sent, is ignored); every caller gets this status.
    Public(u16),
    /// Any signed-in user (viewer and up); agent tokens are refused.
    User,
    /// Operator or admin.
    Operator,
    /// Tenant admin.
    Admin,
    /// The platform role `infra` (server operators).
    Infra,
    /// Agent tokens only.
    Agent,
    /// An agent or any signed-in user.
    AgentOrUser,
}

/// Whether the call names objects of tenant A (which belong to A's admin
/// or A's agent) in its path or body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// Acts on the caller itself or its own tenant (collections, self).
    Own,
    /// Names tenant A's objects.
    A,
    /// Names tenant A's objects that every member of A may act on by role
    /// (resources, workspace): other tenants get 404; A's viewer and
    /// operator are allowed by role (their allowed writes are left to the
    /// owner's positive control, so A's objects stay as they are).
    Shared,
}

/// A path parameter's value.
#[derive(Clone, Copy, Debug)]
enum Obj {
    /// A's active agent (owned by A's admin).
    AgentA,
    /// A's pairing that was never redeemed (owned by A's admin).
    PendingA,
    /// A's queued command (created by A's admin, for A's agent).
    CommandA,
    /// A user of A (a viewer nobody calls as).
    UserA,
    /// A's admin's API token.
    TokenA,
    /// A fixed value (e.g. the action of a dispatch).
    Lit(&'static str),
    /// A's record of this collection (`resources/proxies`, `workspace/notes`).
    Rec(&'static str),
    /// A's playbook (owned by A's admin).
    PlaybookA,
    /// The VM A's admin issued a provisioning token for.
    VmA,
    /// A's unattend profile (owned by A's admin).
    ProfileA,
    /// A's VM in the registry (owned by A's admin).
    RegVmA,
    /// A's tenant license.
    LicenseA,
    /// A's VM creation job (created by A's admin; its item failed).
    JobA,
    /// A's active artifact release (uploaded, assigned as default).
    ReleaseA,
    /// A's draft release waiting for its content.
    PendingReleaseA,
    /// A's theme asset (ready).
    ThemeAssetA,
    /// A's server-sealed secret (A's admin's), bound to A's agent.
    SecretA,
}

type Body = fn(&Fx, Who) -> Option<Value>;

struct Row {
    /// `METHOD /path` exactly as in the OpenAPI document.
    op: &'static str,
    need: Need,
    target: Target,
    params: &'static [(&'static str, Obj)],
    query: &'static str,
    body: Body,
}

const fn row(
    op: &'static str,
    need: Need,
    target: Target,
    params: &'static [(&'static str, Obj)],
    query: &'static str,
    body: Body,
) -> Row {
    Row {
        op,
        need,
        target,
        params,
        query,
        body,
    }
}

fn no_body(_: &Fx, _: Who) -> Option<Value> {
    None
}

use Need as N;
use Obj as O;
use Target as T;

/// One row per OpenAPI operation. Rows naming A's objects come before the
/// ones that would destroy them (the owner's positive control runs in this
/// order, A's agent is revoked last).
const TABLE: &[Row] = &[
    // health
    row(
        "GET /api/v1/health",
        N::Public(200),
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/health/live",
        N::Public(200),
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/health/ready",
        N::Public(200),
        T::Own,
        &[],
        "",
        no_body,
    ),
    // auth: login as tenant B's probe user; logout uses a fresh session
    row(
        "POST /api/v1/auth/login",
        N::Public(200),
        T::Own,
        &[],
        "",
        |f, _| Some(json!({"email": f.probe_email, "password": PASSWORD})),
    ),
    row(
        "POST /api/v1/auth/logout",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row("GET /api/v1/auth/verify", N::User, T::Own, &[], "", no_body),
    row("GET /api/v1/auth/whoami", N::User, T::Own, &[], "", no_body),
    row(
        "GET /api/v1/auth/api-tokens",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/auth/api-tokens",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"name": "matrix"})),
    ),
    row(
        "DELETE /api/v1/auth/api-tokens/{id}",
        N::User,
        T::A,
        &[("id", O::TokenA)],
        "",
        no_body,
    ),
    // tenants
    row("GET /api/v1/tenants", N::Infra, T::Own, &[], "", no_body),
    row("POST /api/v1/tenants", N::Infra, T::Own, &[], "", |_, _| {
        Some(json!({"id": "matrix-probe", "name": "probe"}))
    }),
    // users
    row("GET /api/v1/users", N::Admin, T::Own, &[], "", no_body),
    row("POST /api/v1/users", N::Admin, T::Own, &[], "", |_, who| {
        Some(
            json!({"email": format!("new-{}@matrix.test", who.slug()), "role": "viewer", "password": PASSWORD}),
        )
    }),
    row(
        "GET /api/v1/users/{id}",
        N::Admin,
        T::A,
        &[("id", O::UserA)],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/users/{id}",
        N::Admin,
        T::A,
        &[("id", O::UserA)],
        "",
        |_, _| Some(json!({"role": "admin", "disabled": true})),
    ),
    // vm-ops
    row(
        "POST /api/v1/vm-ops/proxmox/{action}",
        N::Operator,
        T::A,
        &[("action", O::Lit("start"))],
        "",
        |f, _| Some(json!({"agent_id": f.agent, "params": {"vmid": 100}})),
    ),
    row(
        "POST /api/v1/vm-ops/ssh/{action}",
        N::Operator,
        T::A,
        &[("action", O::Lit("test"))],
        "",
        |f, _| Some(json!({"agent_id": f.agent, "params": {}})),
    ),
    row(
        "POST /api/v1/vm-ops/commands",
        N::Admin,
        T::A,
        &[],
        "",
        |f, _| Some(json!({"agent_id": f.agent, "command_type": "custom.probe", "payload": {}})),
    ),
    row(
        "GET /api/v1/vm-ops/commands",
        N::AgentOrUser,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/vm-ops/commands/next",
        N::Agent,
        T::Own,
        &[],
        "?timeout_ms=1000",
        no_body,
    ),
    row(
        "GET /api/v1/vm-ops/commands/{id}",
        N::AgentOrUser,
        T::A,
        &[("id", O::CommandA)],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/vm-ops/commands/{id}",
        N::Agent,
        T::A,
        &[("id", O::CommandA)],
        "",
        |_, _| Some(json!({"status": "running", "attempt": 1})),
    ),
    row(
        "POST /api/v1/vm-ops/commands/{id}/cancel",
        N::Operator,
        T::A,
        &[("id", O::CommandA)],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/vm-ops/commands/{id}/output",
        N::AgentOrUser,
        T::A,
        &[("id", O::CommandA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/vm-ops/commands/{id}/output",
        N::Agent,
        T::A,
        &[("id", O::CommandA)],
        "",
        |_, _| Some(json!({"chunks": [{"seq": 0, "stream": "stdout", "data": "matrix"}]})),
    ),
    row(
        "GET /api/v1/vm-ops/events",
        N::AgentOrUser,
        T::Own,
        &[],
        "",
        no_body,
    ),
    // provisioning: guests' public calls with a made-up token; A's VM
    // token and playbook belong to A's admin
    row(
        "POST /api/v1/provisioning/generate-iso-payload",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, who| Some(json!({"vm_uuid": matrix_vm(who), "os": "linux"})),
    ),
    row(
        "POST /api/v1/provisioning/validate-token",
        N::Public(404),
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"token": "bmxv_matrix-probe", "vm_uuid": MATRIX_VM_A})),
    ),
    row(
        "POST /api/v1/provisioning/report-progress",
        N::Public(404),
        T::Own,
        &[],
        "",
        |_, _| {
            Some(json!({"token": "bmxv_matrix-probe", "vm_uuid": MATRIX_VM_A,
                        "step": "completed", "status": "completed"}))
        },
    ),
    row(
        "GET /api/v1/provisioning/playbook",
        N::Public(404),
        T::Own,
        &[],
        "?vm_uuid=0badc0de-0000-4000-8000-00000000a000",
        no_body,
    ),
    row(
        "GET /api/v1/provisioning/progress/{vm_uuid}",
        N::User,
        T::A,
        &[("vm_uuid", O::VmA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/provisioning/tokens/{vm_uuid}/revoke",
        N::Operator,
        T::A,
        &[("vm_uuid", O::VmA)],
        "",
        |_, _| Some(json!({"reason": "matrix"})),
    ),
    row("GET /api/v1/playbooks", N::User, T::Own, &[], "", no_body),
    row(
        "POST /api/v1/playbooks",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, who| {
            Some(json!({"name": format!("matrix-{}", who.slug()), "content": MATRIX_PLAYBOOK}))
        },
    ),
    row(
        "POST /api/v1/playbooks/validate",
        N::User,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"content": MATRIX_PLAYBOOK})),
    ),
    row(
        "GET /api/v1/playbooks/{id}",
        N::User,
        T::A,
        &[("id", O::PlaybookA)],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/playbooks/{id}",
        N::Operator,
        T::A,
        &[("id", O::PlaybookA)],
        "",
        |_, _| Some(json!({"name": "matrix-renamed", "content": MATRIX_PLAYBOOK})),
    ),
    row(
        "PATCH /api/v1/playbooks/{id}",
        N::Operator,
        T::A,
        &[("id", O::PlaybookA)],
        "",
        |_, _| Some(json!({"is_default": true})),
    ),
    row(
        "DELETE /api/v1/playbooks/{id}",
        N::Operator,
        T::A,
        &[("id", O::PlaybookA)],
        "",
        no_body,
    ),
    // unattend profiles: A's belongs to A's admin
    row(
        "GET /api/v1/unattend-profiles",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/unattend-profiles",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, who| {
            Some(json!({"name": format!("matrix-{}", who.slug()), "config": matrix_unattend()}))
        },
    ),
    row(
        "POST /api/v1/unattend-profiles/preview",
        N::User,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"config": matrix_unattend()})),
    ),
    row(
        "GET /api/v1/unattend-profiles/{id}",
        N::User,
        T::A,
        &[("id", O::ProfileA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/unattend-profiles/{id}/preview",
        N::User,
        T::A,
        &[("id", O::ProfileA)],
        "",
        |_, _| Some(json!({"seed": 1})),
    ),
    row(
        "PUT /api/v1/unattend-profiles/{id}",
        N::Operator,
        T::A,
        &[("id", O::ProfileA)],
        "",
        |_, _| Some(json!({"name": "matrix-put", "config": matrix_unattend()})),
    ),
    row(
        "PATCH /api/v1/unattend-profiles/{id}",
        N::Operator,
        T::A,
        &[("id", O::ProfileA)],
        "",
        |_, _| Some(json!({"is_default": true})),
    ),
    row(
        "DELETE /api/v1/unattend-profiles/{id}",
        N::Operator,
        T::A,
        &[("id", O::ProfileA)],
        "",
        no_body,
    ),
    // VM registry and licensing (issue #13): A's registered VM, license,
    // entitlement (of A's victim user) and lease belong to A's admin
    row(
        "POST /api/v1/vm/register",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, who| Some(json!({"vm_uuid": matrix_reg_vm(who), "vm_name": "matrix"})),
    ),
    row(
        "GET /api/v1/vm/{uuid}/resolve",
        N::User,
        T::A,
        &[("uuid", O::RegVmA)],
        "",
        no_body,
    ),
    row("GET /api/v1/vms", N::User, T::Own, &[], "", no_body),
    // VM creation jobs: A's job belongs to A's admin, on A's agent
    row("GET /api/v1/vm-jobs", N::User, T::Own, &[], "", no_body),
    row(
        "POST /api/v1/vm-jobs",
        N::Operator,
        T::A,
        &[],
        "",
        |f, _| {
            Some(
                json!({"agent_id": f.agent, "node": "pve", "template_vmid": 9000,
                        "count": 1, "os": "linux"}),
            )
        },
    ),
    row(
        "GET /api/v1/vm-jobs/{id}",
        N::User,
        T::A,
        &[("id", O::JobA)],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/vm-jobs/{id}/events",
        N::User,
        T::A,
        &[("id", O::JobA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/vm-jobs/{id}/items/{n}/retry",
        N::Operator,
        T::A,
        &[("id", O::JobA), ("n", O::Lit("0"))],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/vm-jobs/{id}/cancel",
        N::Operator,
        T::A,
        &[("id", O::JobA)],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/vms/{uuid}",
        N::Admin,
        T::A,
        &[("uuid", O::RegVmA)],
        "",
        |_, _| Some(json!({"status": "active"})),
    ),
    row(
        "GET /api/v1/tenant-licenses",
        N::Admin,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/tenant-licenses",
        N::Admin,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"type": "perpetual"})),
    ),
    row(
        "GET /api/v1/tenant-licenses/{id}",
        N::Admin,
        T::A,
        &[("id", O::LicenseA)],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/tenant-licenses/{id}",
        N::Admin,
        T::A,
        &[("id", O::LicenseA)],
        "",
        |_, _| Some(json!({"status": "active"})),
    ),
    row(
        "GET /api/v1/entitlements/{user_id}",
        N::Admin,
        T::A,
        &[("user_id", O::UserA)],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/entitlements/{user_id}",
        N::Admin,
        T::A,
        &[("user_id", O::UserA)],
        "",
        |_, _| Some(json!({"modules": ["matrix"]})),
    ),
    row(
        "GET /api/v1/license-audit",
        N::Admin,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/license/lease",
        N::Operator,
        T::A,
        &[],
        "",
        |_, _| {
            Some(
                json!({"vm_uuid": MATRIX_REG_VM_A, "agent_id": "matrix", "runner_id": "matrix",
                        "module": "matrix"}),
            )
        },
    ),
    row(
        "POST /api/v1/license/heartbeat",
        N::Operator,
        T::A,
        &[],
        "",
        |f, _| Some(json!({"lease_id": f.lease})),
    ),
    row(
        "POST /api/v1/license/verify",
        N::User,
        T::A,
        &[],
        "",
        |f, _| Some(json!({"lease_token": f.lease_token})),
    ),
    // object storage, artifacts and theme assets (issue #13): A's releases,
    // default assignment and theme asset belong to A's admin; resolve uses
    // A's admin's lease (before it is revoked below)
    row(
        "GET /api/v1/objects/{token}",
        N::Public(403),
        T::Own,
        &[("token", O::Lit("bm9uZQ.bm9uZQ"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/objects/{token}",
        N::Public(403),
        T::Own,
        &[("token", O::Lit("bm9uZQ.bm9uZQ"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/artifacts/releases",
        N::Admin,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/artifacts/releases",
        N::Admin,
        T::Own,
        &[],
        "",
        |_, _| {
            Some(
                json!({"module": "matrix", "platform": "windows", "version": "9.0.0",
                        "sha256": "0".repeat(64), "size_bytes": 1}),
            )
        },
    ),
    row(
        "GET /api/v1/artifacts/releases/{id}",
        N::Admin,
        T::A,
        &[("id", O::ReleaseA)],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/artifacts/releases/{id}",
        N::Admin,
        T::A,
        &[("id", O::ReleaseA)],
        "",
        |_, _| Some(json!({"status": "active"})),
    ),
    row(
        "PUT /api/v1/artifacts/releases/{id}/content",
        N::Admin,
        T::A,
        &[("id", O::PendingReleaseA)],
        "",
        |_, _| Some(json!(MATRIX_CONTENT)),
    ),
    row(
        "POST /api/v1/artifacts/assign",
        N::Admin,
        T::A,
        &[],
        "",
        |f, _| Some(json!({"module": "matrix", "platform": "windows", "release_id": f.release})),
    ),
    row(
        "GET /api/v1/artifacts/assign/{user_id}/{module}",
        N::Admin,
        T::A,
        &[("user_id", O::UserA), ("module", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/artifacts/resolve-download",
        N::Operator,
        T::A,
        &[],
        "",
        |f, _| {
            Some(
                json!({"lease_token": f.lease_token, "vm_uuid": MATRIX_REG_VM_A,
                        "module": "matrix", "platform": "windows"}),
            )
        },
    ),
    row(
        "GET /api/v1/artifacts/audit",
        N::Admin,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/theme-assets",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/theme-assets/presign-upload",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"filename": "matrix.png", "mime_type": "image/png", "size_bytes": 10})),
    ),
    row(
        "POST /api/v1/theme-assets/complete",
        N::Operator,
        T::Shared,
        &[],
        "",
        |f, _| Some(json!({"asset_id": f.theme_asset})),
    ),
    row(
        "DELETE /api/v1/theme-assets/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::ThemeAssetA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/license/revoke",
        N::Admin,
        T::A,
        &[],
        "",
        |f, _| Some(json!({"lease_id": f.lease, "reason": "matrix"})),
    ),
    row(
        "DELETE /api/v1/tenant-licenses/{id}",
        N::Admin,
        T::A,
        &[("id", O::LicenseA)],
        "",
        no_body,
    ),
    // secrets vault (issue #13): A's secret belongs to A's admin and is
    // bound to A's agent, which registered its public key (before the
    // agents' rows: A's agent is revoked last)
    row(
        "POST /api/v1/secrets",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"label": "matrix", "value": "matrix-own-value"})),
    ),
    row("GET /api/v1/secrets", N::User, T::Own, &[], "", no_body),
    row(
        "GET /api/v1/secrets/{id}/meta",
        N::User,
        T::A,
        &[("id", O::SecretA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/secrets/{id}/rotate",
        N::Operator,
        T::A,
        &[("id", O::SecretA)],
        "",
        |_, _| Some(json!({"value": "matrix-rotated-value"})),
    ),
    row(
        "GET /api/v1/secrets/bindings",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/secrets/bindings",
        N::Operator,
        T::A,
        &[],
        "",
        |f, _| {
            Some(
                json!({"scope_type": "bot", "scope_id": "matrix", "secret_ref": f.secret, "field_name": "matrix"}),
            )
        },
    ),
    row(
        "PUT /api/v1/agents/me/public-key",
        N::Agent,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"alg": "X25519", "public_key": MATRIX_OTHER_AGENT_KEY})),
    ),
    row(
        "GET /api/v1/agents/me/secrets/{id}",
        N::Agent,
        T::A,
        &[("id", O::SecretA)],
        "",
        no_body,
    ),
    // agents: register replays A's already used pairing code
    row(
        "POST /api/v1/agents/pairings",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"name": "matrix"})),
    ),
    row(
        "POST /api/v1/agents/register",
        N::Public(404),
        T::Own,
        &[],
        "",
        |f, _| Some(json!({"pairing_code": f.used_code, "machine_name": "matrix"})),
    ),
    row(
        "POST /api/v1/agents/heartbeat",
        N::Agent,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"version": "0.1.0"})),
    ),
    row(
        "POST /api/v1/agents/token/rotate",
        N::Agent,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row("GET /api/v1/agents", N::User, T::Own, &[], "", no_body),
    row(
        "GET /api/v1/agents/{id}",
        N::User,
        T::A,
        &[("id", O::AgentA)],
        "",
        no_body,
    ),
    row(
        "DELETE /api/v1/agents/{id}",
        N::Operator,
        T::A,
        &[("id", O::PendingA)],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/agents/{id}/revoke",
        N::Admin,
        T::A,
        &[("id", O::AgentA)],
        "",
        |_, _| Some(json!({"reason": "matrix"})),
    ), // settings: the tenant's own tree (api_keys writes: admin)
    row("GET /api/v1/settings", N::User, T::Own, &[], "", no_body),
    row(
        "GET /api/v1/settings/alerts",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/alerts",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"warning_days": 7})),
    ),
    row(
        "PATCH /api/v1/settings/alerts",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"warning_days": 7})),
    ),
    row(
        "GET /api/v1/settings/api_keys",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/api_keys",
        N::Admin,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"ipqs": {"enabled": true}})),
    ),
    row(
        "PATCH /api/v1/settings/api_keys",
        N::Admin,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"ipqs": {"enabled": true}})),
    ),
    row(
        "GET /api/v1/settings/proxy",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/proxy",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"fraud_score_threshold": 50})),
    ),
    row(
        "PATCH /api/v1/settings/proxy",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"fraud_score_threshold": 50})),
    ),
    row(
        "GET /api/v1/settings/notifications/events",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/notifications/events",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"bot_banned": true})),
    ),
    row(
        "PATCH /api/v1/settings/notifications/events",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"bot_banned": true})),
    ),
    row(
        "GET /api/v1/settings/storage_policy",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/storage_policy",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"operational": "local"})),
    ),
    row(
        "PATCH /api/v1/settings/storage_policy",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"operational": "local"})),
    ),
    row(
        "GET /api/v1/settings/projects",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/projects",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "PATCH /api/v1/settings/projects",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "GET /api/v1/settings/projects/{id}",
        N::User,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/projects/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "PATCH /api/v1/settings/projects/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "GET /api/v1/settings/projects/{id}/gold_price_usd",
        N::User,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/projects/{id}/gold_price_usd",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!(1.5)),
    ),
    row(
        "PATCH /api/v1/settings/projects/{id}/gold_price_usd",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!(1.5)),
    ),
    row(
        "GET /api/v1/settings/theme",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/theme",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"active_preset_id": "m"})),
    ),
    row(
        "PATCH /api/v1/settings/theme",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"active_preset_id": "m"})),
    ),
    row(
        "GET /api/v1/settings/finance/chart_config",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/finance/chart_config",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!([])),
    ),
    row(
        "PATCH /api/v1/settings/finance/chart_config",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!([])),
    ),
    row(
        "GET /api/v1/settings/ui/resource_tree",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/ui/resource_tree",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"showFilters": true})),
    ),
    row(
        "PATCH /api/v1/settings/ui/resource_tree",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"showFilters": true})),
    ),
    row(
        "GET /api/v1/settings/schedule/last_params",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/schedule/last_params",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"startTime": "08:00"})),
    ),
    row(
        "PATCH /api/v1/settings/schedule/last_params",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"startTime": "08:00"})),
    ),
    row(
        "GET /api/v1/settings/schedule/templates",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/schedule/templates",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "PATCH /api/v1/settings/schedule/templates",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "GET /api/v1/settings/schedule/templates/{id}",
        N::User,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/schedule/templates/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "PATCH /api/v1/settings/schedule/templates/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "GET /api/v1/settings/vmgenerator",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/vmgenerator",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"hardware": {"cores": 2}})),
    ),
    row(
        "PATCH /api/v1/settings/vmgenerator",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"hardware": {"cores": 2}})),
    ),
    row(
        "GET /api/v1/settings/vmgenerator/profiles",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/vmgenerator/profiles",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "PATCH /api/v1/settings/vmgenerator/profiles",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "GET /api/v1/settings/vmgenerator/profiles/{id}",
        N::User,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/vmgenerator/profiles/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "PATCH /api/v1/settings/vmgenerator/profiles/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "GET /api/v1/settings/generators/account/lastSettings",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/generators/account/lastSettings",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"useCustomDomain": false})),
    ),
    row(
        "PATCH /api/v1/settings/generators/account/lastSettings",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"useCustomDomain": false})),
    ),
    row(
        "GET /api/v1/settings/generators/account/defaultTemplateId",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/generators/account/defaultTemplateId",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!("matrix")),
    ),
    row(
        "PATCH /api/v1/settings/generators/account/defaultTemplateId",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!("matrix")),
    ),
    row(
        "GET /api/v1/settings/generators/account/templates",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/generators/account/templates",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "PATCH /api/v1/settings/generators/account/templates",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| Some(json!({"matrix": {"name": "m"}})),
    ),
    row(
        "GET /api/v1/settings/generators/account/templates/{id}",
        N::User,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        no_body,
    ),
    row(
        "PUT /api/v1/settings/generators/account/templates/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    row(
        "PATCH /api/v1/settings/generators/account/templates/{id}",
        N::Operator,
        T::Own,
        &[("id", O::Lit("matrix"))],
        "",
        |_, _| Some(json!({"name": "m"})),
    ),
    // resources and workspace (issue #16): tenant-shared records
    row(
        "GET /api/v1/resources/licenses",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/resources/licenses",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/resources/licenses/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("resources/licenses"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/resources/licenses/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/licenses"))],
        "",
        matrix_record,
    ),
    row(
        "PUT /api/v1/resources/licenses/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/licenses"))],
        "",
        matrix_record,
    ),
    row(
        "DELETE /api/v1/resources/licenses/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/licenses"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/resources/proxies",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/resources/proxies",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/resources/proxies/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("resources/proxies"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/resources/proxies/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/proxies"))],
        "",
        matrix_record,
    ),
    row(
        "PUT /api/v1/resources/proxies/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/proxies"))],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/resources/proxies/{id}/password",
        N::Admin,
        T::Shared,
        &[("id", O::Rec("resources/proxies"))],
        "",
        no_body,
    ),
    row(
        "DELETE /api/v1/resources/proxies/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/proxies"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/resources/subscriptions",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/resources/subscriptions",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/resources/subscriptions/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("resources/subscriptions"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/resources/subscriptions/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/subscriptions"))],
        "",
        matrix_record,
    ),
    row(
        "PUT /api/v1/resources/subscriptions/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/subscriptions"))],
        "",
        matrix_record,
    ),
    row(
        "DELETE /api/v1/resources/subscriptions/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("resources/subscriptions"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/workspace/notes",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/workspace/notes",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/workspace/notes/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("workspace/notes"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/workspace/notes/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/notes"))],
        "",
        matrix_record,
    ),
    row(
        "DELETE /api/v1/workspace/notes/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/notes"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/workspace/calendar",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/workspace/calendar",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/workspace/calendar/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("workspace/calendar"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/workspace/calendar/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/calendar"))],
        "",
        matrix_record,
    ),
    row(
        "DELETE /api/v1/workspace/calendar/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/calendar"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/workspace/kanban",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/workspace/kanban",
        N::Operator,
        T::Own,
        &[],
        "",
        matrix_record,
    ),
    row(
        "GET /api/v1/workspace/kanban/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("workspace/kanban"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/workspace/kanban/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/kanban"))],
        "",
        matrix_record,
    ),
    row(
        "DELETE /api/v1/workspace/kanban/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("workspace/kanban"))],
        "",
        no_body,
    ),
    // bots and finance (issue #16): tenant-shared records
    row("GET /api/v1/bots", N::User, T::Own, &[], "", no_body),
    row("POST /api/v1/bots", N::Operator, T::Own, &[], "", |_, _| {
        Some(json!({"name": "matrix-new", "project_id": "wow_tbc", "status": "offline"}))
    }),
    row(
        "GET /api/v1/bots/archive",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/bots/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/bots/{id}/lifecycle",
        N::User,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/bots/{id}/lifecycle/transitions",
        N::User,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/bots/{id}/lifecycle/is-banned",
        N::User,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/bots/{id}/lifecycle/log",
        N::User,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/bots/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        |_, _| Some(json!({"name": "matrix-renamed"})),
    ),
    row(
        "POST /api/v1/bots/{id}/lifecycle/transition",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        |_, _| Some(json!({"status": "leveling"})),
    ),
    row(
        "POST /api/v1/bots/{id}/lifecycle/ban",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        |_, _| {
            Some(
                json!({"ban_date": "01.02.2026", "ban_reason": "matrix", "ban_mechanism": "other"}),
            )
        },
    ),
    row(
        "POST /api/v1/bots/{id}/lifecycle/unban",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "DELETE /api/v1/bots/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("bots"))],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/finance/operations",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "POST /api/v1/finance/operations",
        N::Operator,
        T::Own,
        &[],
        "",
        |_, _| {
            Some(
                json!({"type": "expense", "category": "matrix", "amount": 1, "currency": "USD", "date": 0}),
            )
        },
    ),
    row(
        "GET /api/v1/finance/daily-stats",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/finance/gold-price-history",
        N::User,
        T::Own,
        &[],
        "",
        no_body,
    ),
    row(
        "GET /api/v1/finance/operations/{id}",
        N::User,
        T::Shared,
        &[("id", O::Rec("finance/operations"))],
        "",
        no_body,
    ),
    row(
        "PATCH /api/v1/finance/operations/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("finance/operations"))],
        "",
        |_, _| Some(json!({"amount": 2})),
    ),
    row(
        "DELETE /api/v1/finance/operations/{id}",
        N::Operator,
        T::Shared,
        &[("id", O::Rec("finance/operations"))],
        "",
        no_body,
    ),
];

/// List operations called again with filters naming A's objects (after
/// their row): an allowed caller gets its own view or a refusal.
const A_FILTERS: &[(&str, &str)] = &[
    ("GET /api/v1/agents", "?owner_user_id={admin}"),
    ("GET /api/v1/agents", "?q=agent-a"),
    ("GET /api/v1/vm-ops/commands", "?agent_id={agent}"),
    ("GET /api/v1/vm-ops/commands", "?created_by={admin}"),
    ("GET /api/v1/users", "?q=matrix-a"),
    ("GET /api/v1/vms", "?user_id={admin}"),
    ("GET /api/v1/secrets", "?agent_id={agent}"),
    ("GET /api/v1/secrets", "?q=matrix"),
    ("GET /api/v1/secrets/bindings", "?scope_id={agent}"),
    ("GET /api/v1/secrets/bindings", "?scope_type=agent"),
    ("GET /api/v1/vms", "?q=0badc0de-0000-4000-8000-00000000b"),
];

/// Operations whose allowed call ends the caller's token: called with a
/// fresh session of the same user.
const USES_UP_TOKEN: &[&str] = &["POST /api/v1/auth/logout"];

// ---------------------------------------------------------------- callers

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Anonymous,
    AgentB,
    ViewerB,
    OperatorB,
    AdminB,
    ViewerA,
    OperatorA,
}

const CALLERS: [Who; 7] = [
    Who::Anonymous,
    Who::AgentB,
    Who::ViewerB,
    Who::OperatorB,
    Who::AdminB,
    Who::ViewerA,
    Who::OperatorA,
];

impl Who {
    fn slug(self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::AgentB => "agent-B",
            Who::ViewerB => "viewer-B",
            Who::OperatorB => "operator-B",
            Who::AdminB => "admin-B",
            Who::ViewerA => "viewer-A",
            Who::OperatorA => "operator-A",
        }
    }
    fn in_a(self) -> bool {
        matches!(self, Who::ViewerA | Who::OperatorA)
    }
    /// Tenant role rank of a user caller (viewer 1, operator 2, admin 3).
    fn rank(self) -> u8 {
        match self {
            Who::ViewerB | Who::ViewerA => 1,
            Who::OperatorB | Who::OperatorA => 2,
            Who::AdminB => 3,
            Who::Anonymous | Who::AgentB => 0,
        }
    }
    fn email(self) -> Option<&'static str> {
        Some(match self {
            Who::ViewerB => "viewer@matrix-b.test",
            Who::OperatorB => "operator@matrix-b.test",
            Who::AdminB => "admin@matrix-b.test",
            Who::ViewerA => "viewer@matrix-a.test",
            Who::OperatorA => "operator@matrix-a.test",
            Who::Anonymous | Who::AgentB => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Exactly this status.
    Status(u16),
    /// Refused with one of these statuses (a non-owner inside tenant A).
    OneOf(&'static [u16]),
    /// 2xx, carrying nothing of tenant A the caller may not see.
    Allowed,
    /// Allowed, or refused with 401/403/404 (list filters naming A's ids).
    AllowedOrRefused,
}

/// The expected outcome of `row` called by `who`: derived from the row only.
fn expect(row: &Row, who: Who) -> Expect {
    // Across tenants an object does not exist (404); inside tenant A a
    // caller who owns none of A's objects is refused (not found, or
    // AGENT_OWNER_MISMATCH for a dispatch).
    let not_yours = if who.in_a() {
        Expect::OneOf(&[403, 404])
    } else {
        Expect::Status(404)
    };
    let rank = match row.need {
        N::Public(status) => return Expect::Status(status),
        _ if who == Who::Anonymous => return Expect::Status(401),
        N::Agent if who != Who::AgentB => return Expect::Status(403),
        N::Agent | N::AgentOrUser => 0,
        _ if who == Who::AgentB => return Expect::Status(403),
        N::User => 1,
        N::Operator => 2,
        N::Admin => 3,
        N::Infra => 4,
    };
    if who.rank() < rank {
        Expect::Status(403)
    } else if row.target == T::A {
        not_yours
    } else if row.target == T::Shared && !who.in_a() {
        Expect::Status(404)
    } else {
        Expect::Allowed
    }
}

// ---------------------------------------------------------------- OpenAPI

/// `METHOD /path` → operation, from the code's OpenAPI document.
fn openapi_ops() -> BTreeMap<String, Value> {
    let doc = serde_json::to_value(control_server::http::openapi()).expect("OpenAPI as JSON");
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in [
            "get", "put", "post", "delete", "patch", "options", "head", "trace",
        ] {
            if let Some(op) = item.get(m).filter(|v| v.is_object()) {
                ops.insert(format!("{} {path}", m.to_uppercase()), op.clone());
            }
        }
    }
    ops
}

/// A 200 documented as `text/event-stream`.
fn is_stream(op: &Value) -> bool {
    op["responses"]["200"]["content"]
        .get("text/event-stream")
        .is_some()
}

fn placeholders(path: &str) -> BTreeSet<&str> {
    path.split('{')
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(p, _)| p))
        .collect()
}

/// Everything wrong between the table and the OpenAPI document.
fn table_problems() -> Vec<String> {
    let ops = openapi_ops();
    let mut problems = vec![];
    let mut seen = BTreeSet::new();
    for r in TABLE {
        if !seen.insert(r.op) {
            problems.push(format!("{}: two rows", r.op));
        }
        let Some(op) = ops.get(r.op) else {
            problems.push(format!(
                "{}: row names an operation the OpenAPI document does not have (remove the row)",
                r.op
            ));
            continue;
        };
        let path = r.op.split_once(' ').map(|(_, p)| p).unwrap_or_default();
        let given: BTreeSet<&str> = r.params.iter().map(|(n, _)| *n).collect();
        if given != placeholders(path) {
            problems.push(format!(
                "{}: params {given:?} do not match the path's placeholders",
                r.op
            ));
        }
        if r.params.iter().any(|(_, o)| !matches!(o, O::Lit(_))) && r.target == T::Own {
            problems.push(format!("{}: names A's objects but target is Own", r.op));
        }
        // The document's `security` and the table agree on who is public.
        let documented_public = op.get("security").is_none_or(Value::is_null);
        if documented_public != matches!(r.need, N::Public(_)) {
            problems.push(format!(
                "{}: OpenAPI says {} but the table says {:?}",
                r.op,
                if documented_public {
                    "public (no security)"
                } else {
                    "bearer"
                },
                r.need
            ));
        }
    }
    for op in ops.keys() {
        if !seen.contains(op.as_str()) {
            problems.push(format!(
                "{op}: no row in the matrix table (tests/it/matrix.rs TABLE): add one with the role it needs"
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------- fixture

/// Tenant A's objects, its secrets, and the callers' tokens.
struct Fx {
    tenant_a: String,
    a_admin: String,
    a_admin_id: String,
    infra: String,
    agent: String,
    agent_token: String,
    used_code: String,
    pending: String,
    pending_code: String,
    command: String,
    user: String,
    a_viewer_id: String,
    a_operator_id: String,
    token_id: String,
    api_token: String,
    playbook: String,
    profile: String,
    vm_token: String,
    license: String,
    /// A's VM creation job (its only item failed, so the owner can retry it).
    job: String,
    lease: String,
    lease_token: String,
    /// A's admin's server-sealed secret, bound to A's agent, and the binding.
    secret: String,
    binding: String,
    release: String,
    pending_release: String,
    theme_asset: String,
    probe_email: String,
    /// Commands A's admin dispatched during the test (the SSE trigger).
    extra_commands: Vec<String>,
    tokens: BTreeMap<Who, String>,
    /// A's shared records: collection (`resources/proxies`) → id.
    records: BTreeMap<&'static str, String>,
}

impl Fx {
    fn obj(&self, o: Obj) -> String {
        match o {
            O::AgentA => self.agent.clone(),
            O::PendingA => self.pending.clone(),
            O::CommandA => self.command.clone(),
            O::UserA => self.user.clone(),
            O::TokenA => self.token_id.clone(),
            O::PlaybookA => self.playbook.clone(),
            O::ProfileA => self.profile.clone(),
            O::VmA => MATRIX_VM_A.to_string(),
            O::RegVmA => MATRIX_REG_VM_A.to_string(),
            O::LicenseA => self.license.clone(),
            O::JobA => self.job.clone(),
            O::SecretA => self.secret.clone(),
            O::ReleaseA => self.release.clone(),
            O::PendingReleaseA => self.pending_release.clone(),
            O::ThemeAssetA => self.theme_asset.clone(),
            O::Lit(s) => s.to_string(),
            O::Rec(c) => self.records[c].clone(),
        }
    }

    /// Ids and secrets of tenant A that `who` must never receive.
    fn forbidden(&self, who: Who) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("A's admin id", self.a_admin_id.clone()),
            ("A's admin e-mail", "admin@matrix-a.test".into()),
            ("A's admin session", self.a_admin.clone()),
            ("A's viewer id", self.a_viewer_id.clone()),
            ("A's operator id", self.a_operator_id.clone()),
            ("A's user (victim) id", self.user.clone()),
            ("A's user (victim) e-mail", "victim@matrix-a.test".into()),
            ("A's agent id", self.agent.clone()),
            ("A's agent token", self.agent_token.clone()),
            ("A's used pairing code", self.used_code.clone()),
            ("A's pending agent id", self.pending.clone()),
            ("A's pending pairing code", self.pending_code.clone()),
            ("A's command id", self.command.clone()),
            ("A's command payload secret", PAYLOAD_SECRET.into()),
            ("A's API token id", self.token_id.clone()),
            ("A's API token", self.api_token.clone()),
            ("A's playbook id", self.playbook.clone()),
            ("A's unattend profile id", self.profile.clone()),
            ("A's provisioning token", self.vm_token.clone()),
            ("A's tenant license id", self.license.clone()),
            ("A's lease id", self.lease.clone()),
            ("A's lease token", self.lease_token.clone()),
            ("A's registered VM", MATRIX_REG_VM_A.into()),
            ("A's secret id", self.secret.clone()),
            ("A's secret binding id", self.binding.clone()),
            ("A's secret value", MATRIX_SECRET_VALUE.into()),
            ("A's artifact release id", self.release.clone()),
            ("A's pending release id", self.pending_release.clone()),
        ];
        for c in &self.extra_commands {
            v.push(("A's trigger command id", c.clone()));
        }
        v.push(("A's proxy password", MATRIX_PROXY_PASSWORD.into()));
        if !who.in_a() {
            for id in self.records.values() {
                v.push(("A's resource/workspace record id", id.clone()));
            }
            // Theme assets are the tenant's: A's members list them.
            v.push(("A's theme asset id", self.theme_asset.clone()));
        }
        match who {
            Who::ViewerA => v.retain(|(l, _)| *l != "A's viewer id"),
            Who::OperatorA => v.retain(|(l, _)| *l != "A's operator id"),
            _ => {
                v.push(("A's tenant id", self.tenant_a.clone()));
                v.push(("A's viewer e-mail", "viewer@matrix-a.test".into()));
                v.push(("A's operator e-mail", "operator@matrix-a.test".into()));
            }
        }
        v
    }
}

/// A valid unattend profile configuration.
fn matrix_unattend() -> Value {
    json!({"user": {"nameMode": "fixed", "password": "matrix"}, "computerName": {"mode": "fixed"}})
}

const PAYLOAD_SECRET: &str = "matrix-payload-secret-of-a";
/// The VM A's admin provisions (the other callers use [`matrix_vm`]).
const MATRIX_VM_A: &str = "0badc0de-0000-4000-8000-00000000a000";
/// The VM A's admin registered (the other callers use [`matrix_reg_vm`]).
const MATRIX_REG_VM_A: &str = "0badc0de-0000-4000-8000-00000000b000";

/// A VM of the caller's own for the registry.
fn matrix_reg_vm(who: Who) -> String {
    format!("0badc0de-0000-4000-8000-{:012}", who as u32 + 101)
}

const MATRIX_PLAYBOOK: &str = "name: matrix\nroles:\n  - role: base-system\n";

/// A VM of the caller's own for generate-iso-payload.
fn matrix_vm(who: Who) -> String {
    format!("0badc0de-0000-4000-8000-{:012}", who as u32 + 1)
}

fn settings() -> Settings {
    Settings {
        // ~250 calls from one address in a few seconds.
        api_rate_limit_per_minute: Some(100_000),
        public_rate_limit_per_minute: Some(100_000),
        ..base_settings()
    }
}

async fn data(s: &TestServer, path: &str, token: &str) -> Value {
    let r = s.get(path, Some(token)).await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.body["data"].clone()
}

/// Pair and register an agent as `user`; (agent id, agent token, used code).
async fn paired_agent(s: &TestServer, user: &str, name: &str) -> (String, String, String) {
    let p = s
        .post("/api/v1/agents/pairings", Some(user), json!({"name": name}))
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let code = p.body["data"]["pairing_code"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/agents/register",
            None,
            json!({"pairing_code": code, "machine_name": name, "version": "0.1.0", "platform": "linux", "capabilities": ["proxmox", "ssh"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["data"]["agent"]["id"].as_str().unwrap().to_string(),
        r.body["data"]["agent_token"].as_str().unwrap().to_string(),
        code,
    )
}

async fn heartbeat(s: &TestServer, agent_token: &str) {
    let r = s
        .post(
            "/api/v1/agents/heartbeat",
            Some(agent_token),
            json!({"version": "0.1.0"}),
        )
        .await;
    assert_eq!(r.status, 200, "heartbeat: {}", r.body);
}

async fn fixture(s: &TestServer) -> Fx {
    let infra = s.admin_token().await;
    let a_admin = s.tenant_with_admin(&infra, "matrix-a").await;
    let b_admin = s.tenant_with_admin(&infra, "matrix-b").await;
    let a_admin_id = data(s, "/api/v1/auth/whoami", &a_admin).await["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let (a_viewer_id, a_viewer) = s.user(&a_admin, "viewer@matrix-a.test", "viewer").await;
    let (a_operator_id, a_operator) = s.user(&a_admin, "operator@matrix-a.test", "operator").await;
    let (user, _) = s.user(&a_admin, "victim@matrix-a.test", "viewer").await;
    let (_, b_viewer) = s.user(&b_admin, "viewer@matrix-b.test", "viewer").await;
    let (_, b_operator) = s.user(&b_admin, "operator@matrix-b.test", "operator").await;
    // B is a licensed tenant too: provisioning in its own tenant is allowed
    // (and must still never touch A's objects)
    let r = s
        .post(
            "/api/v1/tenant-licenses",
            Some(&b_admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, _) = s.user(&b_admin, "probe@matrix-b.test", "viewer").await;

    let (agent, agent_token, used_code) = paired_agent(s, &a_admin, "agent-a").await;
    heartbeat(s, &agent_token).await;
    let job = vm_job_fixture(s, &a_admin, &agent, &agent_token).await;
    let (_, b_agent_token, _) = paired_agent(s, &b_admin, "agent-b").await;
    let p = s
        .post(
            "/api/v1/agents/pairings",
            Some(&a_admin),
            json!({"name": "pending-a"}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let pending = p.body["data"]["agent"]["id"].as_str().unwrap().to_string();
    let pending_code = p.body["data"]["pairing_code"].as_str().unwrap().to_string();
    let c = s
        .post(
            "/api/v1/vm-ops/proxmox/start",
            Some(&a_admin),
            json!({"agent_id": agent, "params": {"vmid": 101, "password": PAYLOAD_SECRET}, "expires_in_seconds": 3600}),
        )
        .await;
    assert_eq!(c.status, 202, "{}", c.body);
    let command = c.body["data"]["id"].as_str().unwrap().to_string();
    let t = s
        .post(
            "/api/v1/auth/api-tokens",
            Some(&a_admin),
            json!({"name": "automation-a"}),
        )
        .await;
    assert_eq!(t.status, 201, "{}", t.body);
    let api_token = t.body["data"]["token"].as_str().unwrap().to_string();
    let token_id = t.body["data"]["info"]["id"].as_str().unwrap().to_string();
    let pb = s
        .post(
            "/api/v1/playbooks",
            Some(&a_admin),
            json!({"name": "playbook-a", "content": MATRIX_PLAYBOOK}),
        )
        .await;
    assert_eq!(pb.status, 201, "{}", pb.body);
    let playbook = pb.body["data"]["id"].as_str().unwrap().to_string();
    // before the token: provisioning needs an active tenant license
    let (license, lease, lease_token) = licensing_fixture(s, &a_admin, &a_admin_id).await;
    let (secret, binding) = secrets_fixture(s, &a_admin, &agent, &agent_token).await;
    let (release, pending_release, theme_asset) = artifacts_fixture(s, &a_admin).await;
    let g = s
        .post(
            "/api/v1/provisioning/generate-iso-payload",
            Some(&a_admin),
            json!({"vm_uuid": MATRIX_VM_A, "os": "linux", "playbook_id": playbook}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    let vm_token = g.body["data"]["token"].as_str().unwrap().to_string();
    let up = s
        .post(
            "/api/v1/unattend-profiles",
            Some(&a_admin),
            json!({"name": "profile-a", "config": matrix_unattend()}),
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let profile = up.body["data"]["id"].as_str().unwrap().to_string();

    let a_admin_for_records = a_admin.clone();
    let tokens = BTreeMap::from([
        (Who::AgentB, b_agent_token),
        (Who::ViewerB, b_viewer),
        (Who::OperatorB, b_operator),
        (Who::AdminB, b_admin),
        (Who::ViewerA, a_viewer),
        (Who::OperatorA, a_operator),
    ]);
    Fx {
        tenant_a: "matrix-a".into(),
        a_admin,
        a_admin_id,
        infra,
        agent,
        agent_token,
        used_code,
        pending,
        pending_code,
        command,
        user,
        a_viewer_id,
        a_operator_id,
        token_id,
        api_token,
        playbook,
        profile,
        vm_token,
        license,
        job,
        lease,
        lease_token,
        secret,
        binding,
        release,
        pending_release,
        theme_asset,
        probe_email: "probe@matrix-b.test".into(),
        extra_commands: vec![],
        tokens,
        records: shared_records(s, &a_admin_for_records).await,
    }
}

/// A's VM job: created by A's admin on A's agent; A's agent claims the
/// job's first command (reading the cluster) and reports it failed, so the
/// job ends `failed` during the set-up (nothing moves afterwards) and its
/// item can be retried by the owner.
async fn vm_job_fixture(s: &TestServer, a_admin: &str, agent: &str, agent_token: &str) -> String {
    let r = s
        .post(
            "/api/v1/vm-jobs",
            Some(a_admin),
            json!({"agent_id": agent, "node": "pve", "template_vmid": 9000, "count": 1, "os": "linux"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let job = r.body["data"]["id"].as_str().unwrap().to_string();
    let c = s
        .get(
            "/api/v1/vm-ops/commands/next?timeout_ms=10000",
            Some(agent_token),
        )
        .await;
    assert_eq!(c.status, 200, "the job's first command: {}", c.body);
    assert_eq!(c.body["data"]["command_type"], "proxmox.cluster-resources");
    let id = c.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/vm-ops/commands/{id}"),
            Some(agent_token),
            Some(
                json!({"status": "failed", "attempt": c.body["data"]["attempt"],
                        "error_code": "PROXMOX_TARGET_UNKNOWN", "error_message": "matrix"}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = data(s, &format!("/api/v1/vm-jobs/{job}"), a_admin).await;
        if j["status"] == "failed" {
            break;
        }
        assert!(Instant::now() < deadline, "A's job did not fail: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    job
}

/// A's registered VM, a perpetual license, every module for A's admin, and
/// a lease of A's admin: (license id, lease id, lease token).
async fn licensing_fixture(
    s: &TestServer,
    a_admin: &str,
    a_admin_id: &str,
) -> (String, String, String) {
    let r = s
        .post(
            "/api/v1/vm/register",
            Some(a_admin),
            json!({"vm_uuid": MATRIX_REG_VM_A, "vm_name": "vm-a"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = s
        .post(
            "/api/v1/tenant-licenses",
            Some(a_admin),
            json!({"type": "perpetual"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let license = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/entitlements/{a_admin_id}"),
            Some(a_admin),
            Some(json!({"modules": ["*"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/v1/license/lease",
            Some(a_admin),
            json!({"vm_uuid": MATRIX_REG_VM_A, "agent_id": "agent-a", "runner_id": "runner-a", "module": "matrix"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let d = &r.body["data"];
    (
        license,
        d["lease_id"].as_str().unwrap().to_string(),
        d["token"].as_str().unwrap().to_string(),
    )
}

/// The body the content upload row sends (JSON, as every matrix call):
/// its bytes are what A's pending release declares.
const MATRIX_CONTENT: &str = "matrix-content";

fn sha_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A's active release of module `matrix` (uploaded through the server,
/// the tenant default for windows/stable), a draft release awaiting
/// [`MATRIX_CONTENT`], and a ready theme asset: (release, pending, asset).
async fn artifacts_fixture(s: &TestServer, a_admin: &str) -> (String, String, String) {
    let bytes = b"matrix-artifact-bytes".to_vec();
    let r = s
        .post(
            "/api/v1/artifacts/releases",
            Some(a_admin),
            json!({"module": "matrix", "platform": "windows", "version": "1.0.0",
                   "sha256": sha_hex(&bytes), "size_bytes": bytes.len()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let release = r.body["data"]["id"].as_str().unwrap().to_string();
    let up = s
        .http
        .put(s.url(&format!("/api/v1/artifacts/releases/{release}/content")))
        .bearer_auth(a_admin)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/artifacts/releases/{release}"),
            Some(a_admin),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/v1/artifacts/assign",
            Some(a_admin),
            json!({"module": "matrix", "platform": "windows", "release_id": release}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let content = serde_json::to_vec(&json!(MATRIX_CONTENT)).unwrap();
    let r = s
        .post(
            "/api/v1/artifacts/releases",
            Some(a_admin),
            json!({"module": "matrix", "platform": "windows", "version": "2.0.0",
                   "sha256": sha_hex(&content), "size_bytes": content.len()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let pending = r.body["data"]["id"].as_str().unwrap().to_string();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.resize(32, 0);
    let r = s
        .post(
            "/api/v1/theme-assets/presign-upload",
            Some(a_admin),
            json!({"filename": "a.png", "mime_type": "image/png", "size_bytes": png.len()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let asset = r.body["data"]["asset_id"].as_str().unwrap().to_string();
    let url = r.body["data"]["upload_url"].as_str().unwrap().to_string();
    let up = s
        .http
        .put(url)
        .header("content-type", "image/png")
        .body(png)
        .send()
        .await
        .unwrap();
    assert_eq!(up.status(), 200);
    let r = s
        .post(
            "/api/v1/theme-assets/complete",
            Some(a_admin),
            json!({ "asset_id": asset }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (release, pending, asset)
}

/// A's artifacts and theme assets as A's admin reads them (download URLs
/// are fresh on every read: left out).
async fn artifacts_snapshot(s: &TestServer, fx: &Fx) -> Value {
    let t = &fx.a_admin;
    // (A's operator presigns `matrix.png` of its own: allowed)
    let theme: Vec<Value> = data(s, "/api/v1/theme-assets", t).await["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["filename"] != "matrix.png")
        .map(|i| strip(i.clone(), &["image_url", "image_url_expires_at_ms"]))
        .collect();
    json!({
        "release": data(s, &format!("/api/v1/artifacts/releases/{}", fx.release), t).await,
        "pending": data(s, &format!("/api/v1/artifacts/releases/{}", fx.pending_release), t).await,
        "releases": data(s, "/api/v1/artifacts/releases?limit=200", t).await,
        "assignment": data(s, &format!("/api/v1/artifacts/assign/{}/matrix", fx.a_admin_id), t).await,
        "theme": theme,
    })
}

/// A's licensing objects as A's admin reads them.
async fn licensing_snapshot(s: &TestServer, fx: &Fx) -> Value {
    let t = &fx.a_admin;
    let lease = s
        .post(
            "/api/v1/license/verify",
            Some(t),
            json!({"lease_token": fx.lease_token}),
        )
        .await;
    assert_eq!(lease.status, 200, "verify A's lease: {}", lease.body);
    json!({
        "vm": data(s, &format!("/api/v1/vm/{MATRIX_REG_VM_A}/resolve"), t).await,
        // (A's operator registers a VM of its own: allowed)
        "vms": data(s, "/api/v1/vms?limit=200", t).await.as_array().unwrap().iter()
            .filter(|v| v["user_id"] != fx.a_operator_id.as_str()).cloned().collect::<Vec<_>>(),
        "license": data(s, &format!("/api/v1/tenant-licenses/{}", fx.license), t).await,
        "licenses": data(s, "/api/v1/tenant-licenses?limit=200", t).await,
        "entitlement": data(s, &format!("/api/v1/entitlements/{}", fx.user), t).await,
        "lease": lease.body["data"],
        "audit": data(s, "/api/v1/license-audit?limit=200", t).await,
    })
}

const MATRIX_PROXY_PASSWORD: &str = "matrix-proxy-password-of-a";

/// The plaintext of A's server-sealed secret.
const MATRIX_SECRET_VALUE: &str = "matrix-secret-value-of-a";
/// X25519 public keys (of the private keys 0x41… and 0x42…): A's agent's,
/// and the one the other agents register.
const MATRIX_A_AGENT_KEY: &str = "ehpOcJvwhaxJSroEabmx7aCrH3ixaqu3n_7akGI-hSI";
const MATRIX_OTHER_AGENT_KEY: &str = "EyxEK-AQ-9V-cmAzKKp25x_MwVA6riGTJ9FNnJmT9HI";

/// A's agent registers its key; A's admin stores a secret for the server to
/// seal and binds it to A's agent: (secret id, binding id).
async fn secrets_fixture(
    s: &TestServer,
    a_admin: &str,
    agent: &str,
    agent_token: &str,
) -> (String, String) {
    let r = s
        .call(
            "PUT",
            "/api/v1/agents/me/public-key",
            Some(agent_token),
            Some(json!({"alg": "X25519", "public_key": MATRIX_A_AGENT_KEY})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s
        .post(
            "/api/v1/secrets",
            Some(a_admin),
            json!({"label": "secret-a", "value": MATRIX_SECRET_VALUE}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/api/v1/secrets/bindings",
            Some(a_admin),
            json!({"scope_type": "agent", "scope_id": agent, "secret_ref": secret, "field_name": "password"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let binding = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = s
        .get(
            &format!("/api/v1/agents/me/secrets/{secret}"),
            Some(agent_token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (secret, binding)
}

/// Collections of tenant-shared records (resources, workspace).
const SHARED_COLLECTIONS: &[&str] = &[
    "resources/licenses",
    "resources/proxies",
    "resources/subscriptions",
    "workspace/notes",
    "workspace/calendar",
    "workspace/kanban",
    "bots",
    "finance/operations",
];

/// One record of each shared collection, created by A's admin.
async fn shared_records(s: &TestServer, a_admin: &str) -> BTreeMap<&'static str, String> {
    let mut out = BTreeMap::new();
    for c in SHARED_COLLECTIONS {
        let body = if *c == "resources/proxies" {
            json!({"ip": "198.51.100.7", "port": 1080, "password": MATRIX_PROXY_PASSWORD})
        } else if *c == "bots" {
            json!({"name": "matrix", "project_id": "wow_tbc", "status": "farming"})
        } else if *c == "finance/operations" {
            json!({"type": "income", "category": "sale", "amount": 1, "currency": "USD", "date": 0})
        } else {
            json!({"title": "matrix", "note": "of A"})
        };
        let r = s.post(&format!("/api/v1/{c}"), Some(a_admin), body).await;
        assert_eq!(r.status, 201, "{c}: {}", r.body);
        out.insert(*c, r.body["data"]["id"].as_str().unwrap().to_string());
    }
    out
}

fn matrix_record(_: &Fx, _: Who) -> Option<Value> {
    Some(json!({"note": "matrix"}))
}

// ---------------------------------------------------------------- snapshots

fn strip(mut v: Value, keys: &[&str]) -> Value {
    if let Value::Object(m) = &mut v {
        for k in keys {
            m.remove(*k);
        }
    }
    v
}

fn sorted_by_id(v: &Value, keep: impl Fn(&Value) -> bool, keys: &[&str]) -> Vec<Value> {
    let mut out: Vec<Value> = v
        .as_array()
        .expect("a list")
        .iter()
        .filter(|x| keep(x))
        .map(|x| strip(x.clone(), keys))
        .collect();
    out.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    out
}

/// Tenant A as its admin (and infra) sees it, minus what legitimately moves
/// (last use/login/heartbeat times, objects A's operator created itself,
/// the SSE trigger command).
async fn snapshot(s: &TestServer, fx: &Fx) -> Value {
    let t = &fx.a_admin;
    const AGENT_MOVES: &[&str] = &["last_seen_at", "updated_at", "connection"];
    let agents = data(s, "/api/v1/agents?limit=200", t).await;
    let commands = data(s, "/api/v1/vm-ops/commands?limit=200", t).await;
    let users = data(s, "/api/v1/users?limit=200", t).await;
    let tokens = data(s, "/api/v1/auth/api-tokens", t).await;
    json!({
        "agent": strip(data(s, &format!("/api/v1/agents/{}", fx.agent), t).await, AGENT_MOVES),
        "pending": data(s, &format!("/api/v1/agents/{}", fx.pending), t).await,
        "command": data(s, &format!("/api/v1/vm-ops/commands/{}", fx.command), t).await,
        "output": data(s, &format!("/api/v1/vm-ops/commands/{}/output", fx.command), t).await,
        "user": strip(data(s, &format!("/api/v1/users/{}", fx.user), t).await, &["last_login_at"]),
        "agents": sorted_by_id(&agents, |a| a["owner_user_id"] != fx.a_operator_id.as_str(), AGENT_MOVES),
        "commands": sorted_by_id(&commands, |c| !fx.extra_commands.iter().any(|x| c["id"] == x.as_str()), &[]),
        "users": sorted_by_id(&users, |_| true, &["last_login_at"]),
        "api_tokens": sorted_by_id(&tokens, |_| true, &["last_used_at"]),
        "tenants": sorted_by_id(&data(s, "/api/v1/tenants", &fx.infra).await, |_| true, &[]),
        "playbook": data(s, &format!("/api/v1/playbooks/{}", fx.playbook), t).await,
        "unattend_profile": data(s, &format!("/api/v1/unattend-profiles/{}", fx.profile), t).await,
        "provisioning": data(s, &format!("/api/v1/provisioning/progress/{MATRIX_VM_A}"), t).await,
        "shared_records": records_snapshot(s, fx).await,
        "licensing": licensing_snapshot(s, fx).await,
        "secrets": json!({
            "meta": data(s, &format!("/api/v1/secrets/{}/meta", fx.secret), t).await,
            "bindings": data(s, "/api/v1/secrets/bindings?limit=200", t).await,
        }),
        "artifacts": artifacts_snapshot(s, fx).await,
    })
}

/// A's shared records as A's admin reads them.
async fn records_snapshot(s: &TestServer, fx: &Fx) -> Value {
    let mut out = serde_json::Map::new();
    for (c, id) in &fx.records {
        out.insert(
            (*c).to_string(),
            data(s, &format!("/api/v1/{c}/{id}"), &fx.a_admin).await,
        );
    }
    Value::Object(out)
}

// ---------------------------------------------------------------- checks

struct Req {
    method: String,
    path: String,
    body: Option<Value>,
}

fn request(r: &Row, fx: &Fx, who: Who) -> Req {
    let (method, template) = r.op.split_once(' ').unwrap();
    let mut path = template.to_string();
    for (name, o) in r.params {
        path = path.replace(&format!("{{{name}}}"), &fx.obj(*o));
    }
    path.push_str(r.query);
    Req {
        method: method.to_string(),
        path,
        body: (r.body)(fx, who),
    }
}

fn short(body: &str) -> String {
    let mut s: String = body.chars().take(300).collect();
    if body.chars().count() > 300 {
        s.push('…');
    }
    s
}

/// A's ids/secrets in `text` that `who` may not see and did not send.
fn leaks(fx: &Fx, who: Who, req: &Req, text: &str) -> Vec<&'static str> {
    let sent = format!(
        "{} {}",
        req.path,
        req.body.as_ref().map(Value::to_string).unwrap_or_default()
    );
    let echoed = |label: &str| {
        AUDIT_ECHOES
            .iter()
            .any(|(path, l)| req.path.starts_with(path) && *l == label)
    };
    fx.forbidden(who)
        .into_iter()
        .filter(|(l, v)| {
            !v.is_empty() && text.contains(v.as_str()) && !sent.contains(v.as_str()) && !echoed(l)
        })
        .map(|(l, _)| l)
        .collect()
}

/// Audits that record what a caller of the reader's own tenant asked for:
/// the download audit keeps the VM UUID a refused resolve-download named
/// (tenant B's operator sent A's VM with A's lease token; the token is never
/// stored). The value came from the reader's tenant, not from tenant A.
const AUDIT_ECHOES: &[(&str, &str)] = &[("/api/v1/artifacts/audit", "A's registered VM")];

/// One answer: status, parsed body, raw text; `stream` for an SSE body.
struct Answer {
    status: u16,
    body: Value,
    text: String,
    stream: bool,
}

impl Answer {
    fn of(r: &Resp) -> Answer {
        Answer {
            status: r.status,
            body: r.body.clone(),
            text: match &r.body {
                Value::String(t) => t.clone(),
                v => v.to_string(),
            },
            stream: false,
        }
    }
}

/// Compare one answer of `who` to `req` with `exp`; describe every mismatch.
fn judge(fx: &Fx, who: Who, req: &Req, what: &str, exp: Expect, a: &Answer) -> Vec<String> {
    let mut out = vec![];
    let (status, body, text) = (a.status, &a.body, a.text.as_str());
    if status >= 500 {
        out.push(format!("{what}: server error {status}: {}", short(text)));
    }
    let refused = [401, 403, 404].contains(&status);
    let status_ok = match exp {
        Expect::Status(s) => status == s,
        Expect::OneOf(set) => set.contains(&status),
        Expect::Allowed => (200..300).contains(&status),
        Expect::AllowedOrRefused => (200..300).contains(&status) || refused,
    };
    if !status_ok {
        out.push(format!(
            "{what}: expected {exp:?}, got {status}: {}",
            short(text)
        ));
    }
    if (200..300).contains(&status) {
        if !a.stream && status != 204 && !text.is_empty() && body["success"] != json!(true) {
            out.push(format!(
                "{what}: 2xx without the success envelope: {}",
                short(text)
            ));
        }
    } else if status < 500 {
        let envelope = body["success"] == json!(false)
            && body["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            && body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty());
        if !envelope {
            out.push(format!(
                "{what}: {status} without the JSON error envelope: {}",
                short(text)
            ));
        }
        if status == 401 && body["error"]["code"] != "UNAUTHORIZED" {
            out.push(format!("{what}: 401 with code {}", body["error"]["code"]));
        }
    }
    let leaked = leaks(fx, who, req, text);
    if !leaked.is_empty() {
        out.push(format!(
            "{what}: LEAK of {leaked:?} (status {status}): {}",
            short(text)
        ));
    }
    out
}

// ---------------------------------------------------------------- SSE

/// A stream read in the background until `stop`: the text so far, and
/// (status, content type) once it ends.
struct Stream {
    text: Arc<Mutex<String>>,
    done: tokio::task::JoinHandle<(u16, String)>,
}

impl Stream {
    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
    /// Wait for the end: (status, content type, text).
    async fn finish(self) -> (u16, String, String) {
        let (status, ctype) = self.done.await.unwrap();
        let text = self.text.lock().unwrap().clone();
        (status, ctype, text)
    }
}

fn open_stream(
    s: &TestServer,
    path: &str,
    token: Option<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Stream {
    let buf = Arc::new(Mutex::new(String::new()));
    let out = buf.clone();
    let mut req = s.http.get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let handle = tokio::spawn(async move {
        let mut resp = req.send().await.expect("stream request");
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            tokio::select! {
                chunk = resp.chunk() => match chunk {
                    Ok(Some(c)) => out.lock().unwrap().push_str(&String::from_utf8_lossy(&c)),
                    _ => break,
                },
                _ = stop.changed() => break,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        (status, ctype)
    });
    Stream {
        text: buf,
        done: handle,
    }
}

/// `(id, event type, data)` of each SSE frame.
fn sse_frames(text: &str) -> Vec<(i64, String, Value)> {
    let mut out = vec![];
    for frame in text.split("\n\n") {
        let (mut id, mut ev, mut data) = (None, String::new(), Value::Null);
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("event:") {
                ev = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data = serde_json::from_str(v.trim()).unwrap_or(Value::Null);
            }
        }
        if let Some(id) = id {
            out.push((id, ev, data));
        }
    }
    out
}

/// Event types tenant A's objects may have after the set-up; anything else
/// (revoked, token_rotated, cancelled, dispatched, running, …) is a mutation.
const A_EVENTS_ALLOWED: &[&str] = &[
    "agent.pairing_created",
    "agent.registered",
    "agent.online",
    "agent.unreachable",
    "agent.offline",
    "command.queued",
    // the set-up registers A's agent's public key
    "agent.public_key_registered",
];

/// Open the stream as every caller (plus A's admin as the control), make
/// tenant A produce an event, wait until the control has it, then close.
/// Returns the control's text and each caller's status.
async fn stream_phase(
    s: &TestServer,
    fx: &mut Fx,
    row: &Row,
    failures: &mut Vec<String>,
) -> (String, Vec<u16>) {
    let mut statuses = vec![];
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut streams: Vec<(Who, Req, Stream)> = vec![];
    for who in CALLERS {
        let req = request(row, fx, who);
        let stream = open_stream(s, &req.path, fx.tokens.get(&who).cloned(), rx.clone());
        streams.push((who, req, stream));
    }
    let control_req = request(row, fx, Who::AdminB);
    let control = open_stream(s, &control_req.path, Some(fx.a_admin.clone()), rx.clone());
    // Every allowed stream is connected before tenant A acts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && !streams
            .iter()
            .filter(|(w, ..)| expect(row, *w) == Expect::Allowed)
            .all(|(.., st)| st.text().contains(": connected"))
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    heartbeat(s, &fx.agent_token).await;
    let c = s
        .post(
            "/api/v1/vm-ops/proxmox/start",
            Some(&fx.a_admin),
            json!({"agent_id": fx.agent, "params": {"vmid": 4242, "password": PAYLOAD_SECRET}, "expires_in_seconds": 3600}),
        )
        .await;
    assert_eq!(c.status, 202, "trigger dispatch: {}", c.body);
    let trigger = c.body["data"]["id"].as_str().unwrap().to_string();
    fx.extra_commands.push(trigger.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !control.text().contains(&trigger) {
        assert!(
            Instant::now() < deadline,
            "A's admin never saw its own command on the stream: {}",
            short(&control.text())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The others were woken by the same notification; give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tx.send(true).unwrap();
    for (who, req, stream) in streams {
        let (status, ctype, text) = stream.finish().await;
        statuses.push(status);
        let answer = Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            stream: status == 200,
        };
        let what = format!("{} as {}", row.op, who.slug());
        failures.extend(judge(fx, who, &req, &what, expect(row, who), &answer));
        if status == 200 && !ctype.starts_with("text/event-stream") {
            failures.push(format!(
                "{} as {}: 200 with content type {ctype}",
                row.op,
                who.slug()
            ));
        }
    }
    let (status, _, text) = control.finish().await;
    assert_eq!(status, 200, "A's admin's stream");
    assert!(text.contains(&fx.agent), "control stream: {}", short(&text));
    (text, statuses)
}

// ---------------------------------------------------------------- the test

async fn tenant_role_matrix(backend: Backend) {
    let started = Instant::now();
    let problems = table_problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let ops = openapi_ops();
    let s = TestServer::start_with(backend, settings(), axum::Router::new()).await;
    let mut fx = fixture(&s).await;
    let before = snapshot(&s, &fx).await;
    let setup = started.elapsed();

    let mut failures: Vec<String> = vec![];
    let mut calls = 0usize;
    let mut observed: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
    // 1. Every operation as every caller.
    for row in TABLE {
        if is_stream(&ops[row.op]) {
            continue;
        }
        for who in CALLERS {
            // A member of A writing A's shared records is allowed; the
            // owner's positive control covers it (A's objects stay put).
            if row.target == T::Shared
                && who.in_a()
                && !row.op.starts_with("GET ")
                && expect(row, who) == Expect::Allowed
            {
                observed.entry(row.op).or_default().push(0);
                continue;
            }
            let req = request(row, &fx, who);
            let mut token = fx.tokens.get(&who).cloned();
            if USES_UP_TOKEN.contains(&row.op) {
                if let Some(email) = who.email() {
                    token = Some(s.login(email, PASSWORD).await);
                }
            }
            let r: Resp = s
                .call(&req.method, &req.path, token.as_deref(), req.body.clone())
                .await;
            calls += 1;
            observed.entry(row.op).or_default().push(r.status);
            let what = format!("{} as {}", row.op, who.slug());
            failures.extend(judge(
                &fx,
                who,
                &req,
                &what,
                expect(row, who),
                &Answer::of(&r),
            ));
            // A rotated agent token: carry on with the new one.
            if let Some(t) = r.body["data"]["agent_token"].as_str() {
                if who == Who::AgentB && (200..300).contains(&r.status) {
                    fx.tokens.insert(who, t.to_string());
                }
            }
        }
    }
    // 1b. Lists filtered by A's ids: the caller's own (empty) view or a
    //     refusal, never A's rows.
    for (op, query) in A_FILTERS {
        let row = TABLE
            .iter()
            .find(|r| r.op == *op)
            .expect("filter on a table row");
        let query = query
            .replace("{agent}", &fx.agent)
            .replace("{admin}", &fx.a_admin_id)
            .replace("{command}", &fx.command);
        for who in CALLERS {
            let mut req = request(row, &fx, who);
            req.path.push_str(&query);
            let r = s
                .call(
                    &req.method,
                    &req.path,
                    fx.tokens.get(&who).map(String::as_str),
                    None,
                )
                .await;
            calls += 1;
            let exp = match expect(row, who) {
                Expect::Allowed => Expect::AllowedOrRefused,
                other => other,
            };
            let what = format!("{}{query} as {}", row.op, who.slug());
            failures.extend(judge(&fx, who, &req, &what, exp, &Answer::of(&r)));
        }
    }
    // 2. The event stream, with tenant A acting while everyone listens.
    let mut control = String::new();
    for row in TABLE.iter().filter(|r| is_stream(&ops[r.op])) {
        let (text, statuses) = stream_phase(&s, &mut fx, row, &mut failures).await;
        control.push_str(&text);
        observed.insert(row.op, statuses);
        calls += CALLERS.len();
    }
    let matrix_time = started.elapsed() - setup;

    // 3. Nothing of tenant A changed.
    let after = snapshot(&s, &fx).await;
    for (k, v) in before.as_object().unwrap() {
        if after[k] != *v {
            failures.push(format!(
                "MUTATION of A's {k}:\n  before {v}\n  after  {}",
                after[k]
            ));
        }
    }
    let mine = [fx.agent.as_str(), fx.pending.as_str(), fx.command.as_str()];
    for (_, ev, d) in sse_frames(&control) {
        let about_a = mine
            .iter()
            .any(|id| d["agent_id"] == *id || d["command_id"] == *id);
        // A's VM job ran (and failed) during the set-up: its own events and
        // those of its one command are the set-up's.
        let job_key = format!("vmjob:{}:", fx.job);
        let set_up_job = d["job_id"] == fx.job.as_str()
            || d["data"]["command"]["idempotency_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(&job_key));
        if about_a && !set_up_job && !A_EVENTS_ALLOWED.contains(&ev.as_str()) {
            failures.push(format!("MUTATION: tenant A's timeline has {ev}: {d}"));
        }
    }
    for (what, token) in [
        ("A's API token", fx.api_token.clone()),
        ("A's viewer", fx.tokens[&Who::ViewerA].clone()),
        ("A's operator", fx.tokens[&Who::OperatorA].clone()),
    ] {
        let r = s.get("/api/v1/auth/whoami", Some(&token)).await;
        if r.status != 200 {
            failures.push(format!("{what} no longer works: {} {}", r.status, r.body));
        }
    }
    let hb = s
        .post("/api/v1/agents/heartbeat", Some(&fx.agent_token), json!({}))
        .await;
    if hb.status != 200 {
        failures.push(format!(
            "A's agent token no longer works: {} {}",
            hb.status, hb.body
        ));
    }

    // 4. The owner's positive control: the same requests succeed for A's
    //    admin / A's agent / infra, so the refusals were authorization.
    heartbeat(&s, &fx.agent_token).await;
    let claim = s
        .get(
            "/api/v1/vm-ops/commands/next?timeout_ms=1000",
            Some(&fx.agent_token),
        )
        .await;
    if claim.status != 200 || claim.body["data"]["id"] != fx.command.as_str() {
        failures.push(format!(
            "positive control skipped: A's agent could not claim A's command: {} {}",
            claim.status, claim.body
        ));
    } else {
        for row in TABLE {
            if !(row.target == T::A || row.target == T::Shared || row.need == N::Infra)
                || is_stream(&ops[row.op])
            {
                continue;
            }
            let token = match row.need {
                N::Agent => fx.agent_token.clone(),
                N::Infra => fx.infra.clone(),
                _ => fx.a_admin.clone(),
            };
            let req = request(row, &fx, Who::AdminB);
            let r = s
                .call(&req.method, &req.path, Some(&token), req.body.clone())
                .await;
            calls += 1;
            if !(200..300).contains(&r.status) {
                failures.push(format!(
                    "positive control {} as the owner: {} {}",
                    row.op, r.status, r.body
                ));
            }
        }
    }

    let summary = format!(
        "{backend:?}: {} operations × {} callers, {calls} calls; set-up {:.1?}, matrix {:.1?}, total {:.1?}",
        TABLE.len(),
        CALLERS.len(),
        setup,
        matrix_time,
        started.elapsed()
    );
    eprintln!("{summary}");
    eprintln!(
        "{:<44} {}",
        "observed status",
        CALLERS.map(Who::slug).join(" ")
    );
    for row in TABLE {
        let got = observed.get(row.op).cloned().unwrap_or_default();
        let cells: Vec<String> = got
            .iter()
            .zip(CALLERS)
            .map(|(st, w)| format!("{st:>w$}", w = w.slug().len()))
            .collect();
        eprintln!("{:<44} {}", row.op, cells.join(" "));
    }
    s.stop().await;
    assert!(
        failures.is_empty(),
        "{summary}\n{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
