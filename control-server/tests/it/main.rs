//! control-server's integration tests: one binary, one module per area.
//! Server tests run on SQLite and PostgreSQL (`sqlite::…`/`postgres::…`).

#[macro_use]
mod common;

/// The HTTP API: auth, roles, tenancy, validation, limits, headers.
mod api;
/// The real binary: first start, TLS, admin CLI, signals, two processes.
mod binary;
/// Agents and the command bus end to end.
mod bus;
/// External (Supabase-compatible) JWTs.
mod external_jwt;
/// `docs/openapi.json` is generated from the code.
mod openapi_doc;
/// The data platform: transactions roll back, enums round-trip, the
/// list-query kit matches a reference, both schemas are the same.
mod platform;
