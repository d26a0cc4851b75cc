//! Every error code the API answers with, defined once.
//!
//! Codes shared with agents come from `botmox_protocol::codes`. [`TABLE`]
//! lists each code with its HTTP status and meaning; the OpenAPI document
//! carries it (`info.description` and the `x-error-codes` extension) and a
//! test checks that every code used in the source is in it.

pub use botmox_protocol::codes::{
    AGENT_NOT_FOUND, AGENT_OFFLINE, AGENT_REVOKED, COMMAND_NOT_FOUND, INVALID_TRANSITION,
    LEASE_LOST, PAIRING_EXPIRED, PAIRING_NOT_FOUND, RATE_LIMITED, UNAUTHORIZED,
};

pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
/// Over `api_max_in_flight` (or `agent_max_in_flight` for agents): shed at
/// the door (429 + jittered `Retry-After`).
pub const SERVER_BUSY: &str = "SERVER_BUSY";
pub const MALFORMED_JSON: &str = "MALFORMED_JSON";
pub const BAD_REQUEST: &str = "BAD_REQUEST";
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
pub const FORBIDDEN: &str = "FORBIDDEN";
pub const NOT_FOUND: &str = "NOT_FOUND";
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
pub const CONFLICT: &str = "CONFLICT";
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
pub const DATABASE_ERROR: &str = "DATABASE_ERROR";
pub const NOT_READY: &str = "NOT_READY";
pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
pub const NOT_REVOCABLE: &str = "NOT_REVOCABLE";
pub const ALREADY_REVOKED: &str = "ALREADY_REVOKED";
pub const SELF_LOCKOUT: &str = "SELF_LOCKOUT";
pub const USER_NOT_FOUND: &str = "USER_NOT_FOUND";
pub const TOKEN_NOT_FOUND: &str = "TOKEN_NOT_FOUND";
pub const AGENT_NOT_PENDING: &str = "AGENT_NOT_PENDING";
pub const AGENT_OWNER_UNASSIGNED: &str = "AGENT_OWNER_UNASSIGNED";
pub const AGENT_OWNER_MISMATCH: &str = "AGENT_OWNER_MISMATCH";
pub const IDEMPOTENCY_KEY_REUSED: &str = "IDEMPOTENCY_KEY_REUSED";
pub const OUTPUT_LIMIT_EXCEEDED: &str = "OUTPUT_LIMIT_EXCEEDED";
pub const TOKEN_ALREADY_ROTATED: &str = "TOKEN_ALREADY_ROTATED";
pub const COMMAND_FINISHED: &str = "COMMAND_FINISHED";
pub const TOO_MANY_STREAMS: &str = "TOO_MANY_STREAMS";
/// A write authenticated by the console cookie without the CSRF header.
pub const CSRF_TOKEN_INVALID: &str = "CSRF_TOKEN_INVALID";
// settings (the newer generation's codes for its three typed paths)
pub const SETTINGS_INVALID_API_KEYS_BODY: &str = "SETTINGS_INVALID_API_KEYS_BODY";
pub const SETTINGS_INVALID_PROXY_BODY: &str = "SETTINGS_INVALID_PROXY_BODY";
pub const SETTINGS_INVALID_NOTIFICATION_EVENTS_BODY: &str =
    "SETTINGS_INVALID_NOTIFICATION_EVENTS_BODY";

pub const BOT_NOT_FOUND: &str = "BOT_NOT_FOUND";
pub const BOTS_INVALID_LIST_QUERY: &str = "BOTS_INVALID_LIST_QUERY";
pub const BOTS_INVALID_MUTATION_BODY: &str = "BOTS_INVALID_MUTATION_BODY";
pub const BOTS_TRANSITION_VALIDATION_FAILED: &str = "BOTS_TRANSITION_VALIDATION_FAILED";
pub const BOTS_INVALID_BAN_BODY: &str = "BOTS_INVALID_BAN_BODY";
pub const BOTS_UNBAN_VALIDATION_FAILED: &str = "BOTS_UNBAN_VALIDATION_FAILED";
pub const FINANCE_OPERATION_NOT_FOUND: &str = "FINANCE_OPERATION_NOT_FOUND";
pub const FINANCE_INVALID_LIST_QUERY: &str = "FINANCE_INVALID_LIST_QUERY";
pub const FINANCE_INVALID_CREATE_BODY: &str = "FINANCE_INVALID_CREATE_BODY";
pub const FINANCE_INVALID_PATCH_BODY: &str = "FINANCE_INVALID_PATCH_BODY";
pub const FINANCE_INVALID_STATS_QUERY: &str = "FINANCE_INVALID_STATS_QUERY";

// provisioning
pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
pub const TOKEN_REVOKED: &str = "TOKEN_REVOKED";
pub const TOKEN_USED: &str = "TOKEN_USED";
pub const VM_MISMATCH: &str = "VM_MISMATCH";
pub const TOKEN_NOT_ACTIVE: &str = "TOKEN_NOT_ACTIVE";
pub const PLAYBOOK_NOT_FOUND: &str = "PLAYBOOK_NOT_FOUND";
pub const PROVISIONING_NOT_FOUND: &str = "PROVISIONING_NOT_FOUND";
// VM creation jobs (issue #17)
pub const VM_JOB_NOT_FOUND: &str = "VM_JOB_NOT_FOUND";
pub const VM_JOB_ITEM_NOT_FOUND: &str = "VM_JOB_ITEM_NOT_FOUND";
pub const VM_JOB_FINISHED: &str = "VM_JOB_FINISHED";
pub const VM_JOB_ITEM_NOT_FAILED: &str = "VM_JOB_ITEM_NOT_FAILED";
pub const VM_JOB_CANCELLED: &str = "VM_JOB_CANCELLED";
// resources and workspace (issue #16)
pub const RESOURCES_INVALID_KIND: &str = "RESOURCES_INVALID_KIND";
pub const RESOURCE_NOT_FOUND: &str = "RESOURCE_NOT_FOUND";
pub const RESOURCES_INVALID_BODY: &str = "RESOURCES_INVALID_BODY";
pub const RESOURCES_INVALID_LIST_QUERY: &str = "RESOURCES_INVALID_LIST_QUERY";
pub const WORKSPACE_INVALID_KIND: &str = "WORKSPACE_INVALID_KIND";
pub const WORKSPACE_ENTITY_NOT_FOUND: &str = "WORKSPACE_ENTITY_NOT_FOUND";
pub const WORKSPACE_INVALID_BODY: &str = "WORKSPACE_INVALID_BODY";
pub const WORKSPACE_INVALID_LIST_QUERY: &str = "WORKSPACE_INVALID_LIST_QUERY";
// unattend profiles
pub const UNATTEND_PROFILE_NOT_FOUND: &str = "UNATTEND_PROFILE_NOT_FOUND";
pub const UNATTEND_PROFILE_NAME_TAKEN: &str = "UNATTEND_PROFILE_NAME_TAKEN";

// VM registry and licensing (issue #13)
pub const VM_UUID_NOT_FOUND: &str = "VM_UUID_NOT_FOUND";
pub const VM_NOT_REGISTERED: &str = "VM_NOT_REGISTERED";
pub const VM_INACTIVE: &str = "VM_INACTIVE";
pub const VM_OWNER_MISMATCH: &str = "VM_OWNER_MISMATCH";
pub const LICENSE_NOT_FOUND: &str = "LICENSE_NOT_FOUND";
pub const LICENSE_INACTIVE: &str = "LICENSE_INACTIVE";
pub const ENTITLEMENT_REQUIRED: &str = "ENTITLEMENT_REQUIRED";
pub const MODULE_NOT_ALLOWED: &str = "MODULE_NOT_ALLOWED";
pub const LEASE_NOT_FOUND: &str = "LEASE_NOT_FOUND";
pub const LEASE_OWNER_MISMATCH: &str = "LEASE_OWNER_MISMATCH";
pub const LEASE_INACTIVE: &str = "LEASE_INACTIVE";
pub const LEASE_EXPIRED: &str = "LEASE_EXPIRED";
// object storage, artifacts and theme assets (issue #13)
pub const OBJECT_URL_INVALID: &str = "OBJECT_URL_INVALID";
pub const OBJECT_URL_EXPIRED: &str = "OBJECT_URL_EXPIRED";
pub const OBJECT_NOT_FOUND: &str = "OBJECT_NOT_FOUND";
pub const OBJECT_STORE_UNAVAILABLE: &str = "OBJECT_STORE_UNAVAILABLE";
pub const ARTIFACT_RELEASE_NOT_FOUND: &str = "ARTIFACT_RELEASE_NOT_FOUND";
pub const ARTIFACT_SCOPE_MISMATCH: &str = "ARTIFACT_SCOPE_MISMATCH";
pub const ARTIFACT_ASSIGNMENT_NOT_FOUND: &str = "ARTIFACT_ASSIGNMENT_NOT_FOUND";
pub const ARTIFACT_RELEASE_NOT_ACTIVE: &str = "ARTIFACT_RELEASE_NOT_ACTIVE";
pub const ARTIFACT_OBJECT_NOT_FOUND: &str = "ARTIFACT_OBJECT_NOT_FOUND";
pub const ARTIFACT_CONTENT_MISMATCH: &str = "ARTIFACT_CONTENT_MISMATCH";
pub const ARTIFACT_CONTENT_MISSING: &str = "ARTIFACT_CONTENT_MISSING";
pub const ARTIFACT_CONTENT_EXISTS: &str = "ARTIFACT_CONTENT_EXISTS";
pub const ARTIFACT_AUDIT_WRITE_FAILED: &str = "ARTIFACT_AUDIT_WRITE_FAILED";
pub const S3_HEAD_OBJECT_FAILED: &str = "S3_HEAD_OBJECT_FAILED";
pub const VM_UUID_MISMATCH: &str = "VM_UUID_MISMATCH";
pub const VM_REGISTER_INVALID_BODY: &str = "VM_REGISTER_INVALID_BODY";
pub const MODULE_MISMATCH: &str = "MODULE_MISMATCH";
pub const THEME_ASSET_INVALID_PRESIGN_BODY: &str = "THEME_ASSET_INVALID_PRESIGN_BODY";
pub const THEME_ASSET_NOT_FOUND: &str = "THEME_ASSET_NOT_FOUND";
pub const ASSET_DELETED: &str = "ASSET_DELETED";
pub const THEME_ASSET_UPLOAD_MISSING: &str = "THEME_ASSET_UPLOAD_MISSING";
pub const THEME_ASSET_UPLOAD_INVALID: &str = "THEME_ASSET_UPLOAD_INVALID";
// secrets vault (issue #13)
pub const SECRET_NOT_FOUND: &str = "SECRET_NOT_FOUND";
pub const SECRETS_INVALID_ID: &str = "SECRETS_INVALID_ID";
pub const SECRETS_INVALID_CREATE_BODY: &str = "SECRETS_INVALID_CREATE_BODY";
pub const SECRETS_INVALID_ROTATE_BODY: &str = "SECRETS_INVALID_ROTATE_BODY";
pub const SECRETS_INVALID_BINDING_CREATE_BODY: &str = "SECRETS_INVALID_BINDING_CREATE_BODY";
pub const SECRETS_INVALID_BINDINGS_LIST_QUERY: &str = "SECRETS_INVALID_BINDINGS_LIST_QUERY";
pub const SECRETS_INVALID_LIST_QUERY: &str = "SECRETS_INVALID_LIST_QUERY";
pub const SECRET_NOT_DELIVERABLE: &str = "SECRET_NOT_DELIVERABLE";
pub const AGENT_PUBLIC_KEY_MISSING: &str = "AGENT_PUBLIC_KEY_MISSING";
pub const AGENT_PUBLIC_KEY_MISMATCH: &str = "AGENT_PUBLIC_KEY_MISMATCH";

/// `(code, HTTP status, meaning)` for every code above.
pub const TABLE: &[(&str, u16, &str)] = &[
    // object storage, artifacts and theme assets (issue #13)
    (
        OBJECT_URL_INVALID,
        403,
        "The signed object URL is malformed, tampered with or used with the wrong method",
    ),
    (OBJECT_URL_EXPIRED, 403, "The signed object URL has expired; ask for a new one"),
    (OBJECT_NOT_FOUND, 404, "The signed URL names an object that is not in the store"),
    (
        OBJECT_STORE_UNAVAILABLE,
        503,
        "The object store failed; retry (see `Retry-After`)",
    ),
    (
        ARTIFACT_RELEASE_NOT_FOUND,
        404,
        "No such artifact release in the caller's tenant",
    ),
    (
        ARTIFACT_SCOPE_MISMATCH,
        409,
        "The release's module, platform or channel differs from the assignment's",
    ),
    (
        ARTIFACT_ASSIGNMENT_NOT_FOUND,
        404,
        "No release is assigned to the lease's user (nor a tenant default) for this module, platform and channel",
    ),
    (
        ARTIFACT_RELEASE_NOT_ACTIVE,
        409,
        "The assigned release is draft, disabled or archived",
    ),
    (
        ARTIFACT_OBJECT_NOT_FOUND,
        404,
        "The release's object is not in the object store",
    ),
    (
        ARTIFACT_CONTENT_MISMATCH,
        409,
        "The object's size or SHA-256 differs from the release's",
    ),
    (
        ARTIFACT_CONTENT_MISSING,
        409,
        "The release's content was never uploaded; upload it before activating",
    ),
    (
        ARTIFACT_CONTENT_EXISTS,
        409,
        "The release's content is already stored; create a new release",
    ),
    (
        ARTIFACT_AUDIT_WRITE_FAILED,
        502,
        "The download audit row could not be written; no URL was issued",
    ),
    (
        S3_HEAD_OBJECT_FAILED,
        502,
        "The object store could not be asked for the release's object",
    ),
    (
        VM_UUID_MISMATCH,
        403,
        "The lease was issued for another VM",
    ),
    (
        MODULE_MISMATCH,
        403,
        "The lease was issued for another module",
    ),
    (
        THEME_ASSET_INVALID_PRESIGN_BODY,
        400,
        "A theme asset upload request is invalid; `details.fields` names each field",
    ),
    (
        THEME_ASSET_NOT_FOUND,
        404,
        "No such theme asset in the caller's tenant",
    ),
    (ASSET_DELETED, 409, "The theme asset was deleted"),
    (
        THEME_ASSET_UPLOAD_MISSING,
        409,
        "Nothing was uploaded to the theme asset's URL yet",
    ),
    (
        THEME_ASSET_UPLOAD_INVALID,
        409,
        "The uploaded theme asset is not the declared image type or size (status `failed`)",
    ),
    // VM registry and licensing (issue #13)
    (
        VM_UUID_NOT_FOUND,
        404,
        "No such VM UUID visible to the caller",
    ),
    (
        VM_NOT_REGISTERED,
        404,
        "Lease: the VM UUID is not registered in the caller's tenant",
    ),
    (
        VM_INACTIVE,
        403,
        "Lease: the VM is paused or revoked",
    ),
    (
        VM_OWNER_MISMATCH,
        403,
        "The VM belongs to another user",
    ),
    (
        LICENSE_NOT_FOUND,
        404,
        "No such tenant license in the caller's tenant",
    ),
    (
        LICENSE_INACTIVE,
        403,
        "No active subscription or perpetual license covers the user",
    ),
    (
        ENTITLEMENT_REQUIRED,
        403,
        "The user has no module entitlements",
    ),
    (
        MODULE_NOT_ALLOWED,
        403,
        "The user's entitlements do not include the module",
    ),
    (
        LEASE_NOT_FOUND,
        404,
        "No such execution lease in the caller's tenant",
    ),
    (
        LEASE_OWNER_MISMATCH,
        403,
        "The execution lease belongs to another user",
    ),
    (
        LEASE_INACTIVE,
        409,
        "The execution lease was revoked",
    ),
    (
        LEASE_EXPIRED,
        409,
        "The execution lease has expired; lease again",
    ),
    // provisioning
    (
        TOKEN_INVALID,
        404,
        "The provisioning token is unknown (guests: do not retry)",
    ),
    (TOKEN_EXPIRED, 410, "The provisioning token has expired"),
    (
        TOKEN_REVOKED,
        410,
        "The provisioning token was revoked or replaced",
    ),
    (
        VM_MISMATCH,
        403,
        "The provisioning token belongs to another VM",
    ),
    (
        TOKEN_USED,
        409,
        "Provisioning with this token has completed",
    ),
    (
        TOKEN_NOT_ACTIVE,
        409,
        "The VM's provisioning token is no longer active",
    ),
    (PLAYBOOK_NOT_FOUND, 404, "No such playbook visible to the caller"),
    (
        PROVISIONING_NOT_FOUND,
        404,
        "No provisioning token for this VM is visible to the caller",
    ),
    // VM creation jobs (issue #17)
    (
        VM_JOB_NOT_FOUND,
        404,
        "No such VM creation job visible to the caller",
    ),
    (
        VM_JOB_ITEM_NOT_FOUND,
        404,
        "The job has no item with this index",
    ),
    (
        VM_JOB_FINISHED,
        409,
        "The job already ended (completed, failed or cancelled); nothing to cancel",
    ),
    (
        VM_JOB_ITEM_NOT_FAILED,
        409,
        "Only a failed item can be retried",
    ),
    (
        VM_JOB_CANCELLED,
        409,
        "The job was cancelled; its items cannot be retried",
    ),
    (
        VALIDATION_ERROR,
        400,
        "A field or query parameter is invalid; `details.fields` maps each path to its message",
    ),
    (MALFORMED_JSON, 400, "The body is not valid JSON"),
    (BAD_REQUEST, 400, "The request cannot be read"),
    (
        NOT_REVOCABLE,
        400,
        "External JWTs cannot be signed out here",
    ),
    (
        UNAUTHORIZED,
        401,
        "No bearer token, or it is invalid, expired or revoked",
    ),
    (INVALID_CREDENTIALS, 401, "E-mail or password is incorrect"),
    (
        FORBIDDEN,
        403,
        "The caller's role or token kind may not do this",
    ),
    (
        CSRF_TOKEN_INVALID,
        403,
        "A write authenticated by the console session cookie lacks the `X-CSRF-Token` header or carries a wrong one",
    ),
    (
        AGENT_REVOKED,
        403,
        "The agent was revoked (to the agent); 409 to a dispatcher",
    ),
    (
        AGENT_OWNER_UNASSIGNED,
        403,
        "The agent has no owner; an admin must dispatch to it",
    ),
    (
        AGENT_OWNER_MISMATCH,
        403,
        "The agent belongs to another user",
    ),
    (
        RESOURCES_INVALID_KIND,
        400,
        "`/resources/{kind}`: the kind is not licenses, proxies or subscriptions",
    ),
    (
        WORKSPACE_INVALID_KIND,
        400,
        "`/workspace/{kind}`: the kind is not notes, calendar or kanban",
    ),
    (
        RESOURCES_INVALID_BODY,
        400,
        "A resource create/update body is invalid; `details.fields` names each field",
    ),
    (
        RESOURCES_INVALID_LIST_QUERY,
        400,
        "A resources list query parameter is invalid; `details.fields` names it",
    ),
    (
        WORKSPACE_INVALID_BODY,
        400,
        "A workspace create/update body is invalid; `details.fields` names each field",
    ),
    (
        WORKSPACE_INVALID_LIST_QUERY,
        400,
        "A workspace list query parameter is invalid; `details.fields` names it",
    ),
    (
        RESOURCE_NOT_FOUND,
        404,
        "No such license, proxy or subscription in the caller's tenant",
    ),
    (
        WORKSPACE_ENTITY_NOT_FOUND,
        404,
        "No such note, calendar event or kanban task in the caller's tenant",
    ),
    (NOT_FOUND, 404, "Unknown endpoint or object"),
    (USER_NOT_FOUND, 404, "No such user in the caller's tenant"),
    (
        TOKEN_NOT_FOUND,
        404,
        "No such API token visible to the caller",
    ),
    (AGENT_NOT_FOUND, 404, "No such agent visible to the caller"),
    (
        COMMAND_NOT_FOUND,
        404,
        "No such command visible to the caller",
    ),
    (
        PAIRING_NOT_FOUND,
        404,
        "Pairing code unknown or already used",
    ),
    (
        BOTS_INVALID_LIST_QUERY,
        400,
        "A bots list query parameter is invalid; `details.fields` names it",
    ),
    (
        BOTS_INVALID_MUTATION_BODY,
        400,
        "A bot create/update body is invalid; `details.fields` names each field",
    ),
    (
        BOTS_TRANSITION_VALIDATION_FAILED,
        400,
        "The lifecycle transition is not allowed (`banned` goes through /lifecycle/ban)",
    ),
    (
        BOTS_INVALID_BAN_BODY,
        400,
        "A ban body is invalid; `details.fields` names each field",
    ),
    (
        BOTS_UNBAN_VALIDATION_FAILED,
        409,
        "The bot is not banned (nothing to unban)",
    ),
    (BOT_NOT_FOUND, 404, "No such bot in the caller's tenant"),
    (
        FINANCE_INVALID_LIST_QUERY,
        400,
        "A finance operations list query parameter is invalid",
    ),
    (
        FINANCE_INVALID_CREATE_BODY,
        400,
        "A finance operation body is invalid; `details.fields` names each field",
    ),
    (
        FINANCE_INVALID_PATCH_BODY,
        400,
        "A finance operation patch is empty or invalid",
    ),
    (
        FINANCE_INVALID_STATS_QUERY,
        400,
        "A finance statistics query parameter is invalid",
    ),
    (
        FINANCE_OPERATION_NOT_FOUND,
        404,
        "No such finance operation in the caller's tenant",
    ),
    (
        METHOD_NOT_ALLOWED,
        405,
        "The method is not supported on this path",
    ),
    (CONFLICT, 409, "A unique value is already taken"),
    (
        ALREADY_REVOKED,
        409,
        "The token or agent was already revoked",
    ),
    (
        SELF_LOCKOUT,
        409,
        "An admin cannot disable or demote themselves",
    ),
    (
        AGENT_NOT_PENDING,
        409,
        "Only a never-used pairing can be deleted",
    ),
    (
        AGENT_OFFLINE,
        409,
        "The agent is not online; nothing was queued",
    ),
    (
        IDEMPOTENCY_KEY_REUSED,
        409,
        "The idempotency key belongs to a different command",
    ),
    (
        INVALID_TRANSITION,
        409,
        "The command's state does not allow this change",
    ),
    (
        LEASE_LOST,
        409,
        "The lease on the command was lost; drop the result",
    ),
    (
        TOKEN_ALREADY_ROTATED,
        409,
        "The agent token was already rotated; use the new one",
    ),
    (
        COMMAND_FINISHED,
        409,
        "The command already ended; no more output is accepted",
    ),
    (PAIRING_EXPIRED, 410, "The pairing code expired"),
    (
        PAYLOAD_TOO_LARGE,
        413,
        "The body is larger than the server accepts",
    ),
    (
        OUTPUT_LIMIT_EXCEEDED,
        413,
        "The command's output would exceed its limit",
    ),
    (
        UNSUPPORTED_MEDIA_TYPE,
        415,
        "The body must be JSON (`Content-Type: application/json`)",
    ),
    (RATE_LIMITED, 429, "Too many requests; see `Retry-After`"),
    (
        SERVER_BUSY,
        429,
        "The server is at its in-flight limit (`api_max_in_flight`, for agents `agent_max_in_flight`); retry after the (jittered) `Retry-After`",
    ),
    (
        TOO_MANY_STREAMS,
        429,
        "Too many open event streams for this caller",
    ),
    (
        INTERNAL_ERROR,
        500,
        "A bug; the request id finds the cause in the log",
    ),
    (
        DATABASE_ERROR,
        503,
        "The database is unavailable; retry (see `Retry-After`)",
    ),
    (NOT_READY, 503, "A readiness check failed"),
    (
        SETTINGS_INVALID_API_KEYS_BODY,
        400,
        "A write under `settings/api_keys` is invalid; `details.fields` names each field",
    ),
    (
        SETTINGS_INVALID_PROXY_BODY,
        400,
        "A write under `settings/proxy` is invalid; `details.fields` names each field",
    ),
    (
        SETTINGS_INVALID_NOTIFICATION_EVENTS_BODY,
        400,
        "A write under `settings/notifications/events` is invalid; `details.fields` names each field",
    ),
    (
        UNATTEND_PROFILE_NOT_FOUND,
        404,
        "No such unattend profile visible to the caller",
    ),
    (
        UNATTEND_PROFILE_NAME_TAKEN,
        409,
        "The owner already has an unattend profile with this name",
    ),    // secrets vault (issue #13)
    (
        VM_REGISTER_INVALID_BODY,
        400,
        "The VM registration body is invalid (the original's code for it); `details.fields` names each problem",
    ),
    (
        SECRET_NOT_FOUND,
        404,
        "No such secret (or, for an agent, none bound to it) visible to the caller",
    ),
    (
        SECRETS_INVALID_ID,
        400,
        "The secret id in the path is not 1-100 of A-Z a-z 0-9 _ -",
    ),
    (
        SECRETS_INVALID_CREATE_BODY,
        400,
        "The new secret is invalid; `details.fields` names each problem",
    ),
    (
        SECRETS_INVALID_ROTATE_BODY,
        400,
        "The rotated material is invalid; `details.fields` names each problem",
    ),
    (
        SECRETS_INVALID_BINDING_CREATE_BODY,
        400,
        "The binding is invalid; `details.fields` names each problem",
    ),
    (
        SECRETS_INVALID_BINDINGS_LIST_QUERY,
        400,
        "The bindings list query is invalid; `details.fields` names each problem",
    ),
    (
        SECRETS_INVALID_LIST_QUERY,
        400,
        "The secrets list query is invalid; `details.fields` names each problem",
    ),
    (
        SECRET_NOT_DELIVERABLE,
        409,
        "The secret is not sealed for this agent (client-encrypted, or sealed to another agent or to a replaced key): put it again for the agent",
    ),
    (
        AGENT_PUBLIC_KEY_MISSING,
        409,
        "The agent has not registered a public key yet (start the agent once; old agents cannot receive secrets)",
    ),
    (
        AGENT_PUBLIC_KEY_MISMATCH,
        409,
        "The envelope is sealed to another key than the agent's current one: seal it again to the key of GET /agents/{id}",
    ),
];

/// The table as Markdown, for the OpenAPI description.
pub fn markdown() -> String {
    let mut s = String::from("| code | status | meaning |\n|---|---|---|\n");
    for (code, status, meaning) in TABLE {
        s.push_str(&format!("| `{code}` | {status} | {meaning} |\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::TABLE;

    #[test]
    fn codes_are_unique_and_upper_snake() {
        let mut seen = std::collections::HashSet::new();
        for (code, status, _) in TABLE {
            assert!(seen.insert(*code), "{code} listed twice");
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{code}"
            );
            assert!((400..600).contains(status), "{code}");
        }
    }
}

#[cfg(test)]
mod table_tests {
    /// Every code constant defined or re-exported here is in [`super::TABLE`].
    #[test]
    fn every_code_is_in_the_table() {
        let src = include_str!("codes.rs");
        let reexports = &src[src.find("pub use").unwrap()..src.find("};").unwrap()];
        let consts = src
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split(':').next())
            .filter(|n| *n != "TABLE");
        let names = reexports
            .split(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .filter(|w| w.len() > 3)
            .chain(consts);
        let mut checked = 0;
        for name in names {
            assert!(
                super::TABLE.iter().any(|(code, _, _)| *code == name),
                "{name} is defined but missing from TABLE"
            );
            checked += 1;
        }
        assert!(checked >= 30, "parsed only {checked} codes");
    }
}
