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

/// `(code, HTTP status, meaning)` for every code above.
pub const TABLE: &[(&str, u16, &str)] = &[
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
                code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
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
