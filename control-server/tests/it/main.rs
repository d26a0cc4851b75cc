//! control-server's integration tests: one binary, one module per area.
//! Server tests run on SQLite and PostgreSQL (`sqlite::…`/`postgres::…`).

#[macro_use]
mod common;

/// The HTTP API: auth, roles, tenancy, validation, limits, headers.
mod api;
/// Artifacts: releases registered or uploaded (verified), assignments,
/// resolve-download with every code and its audit, the §7 smoke scenario,
/// on the local store and on S3 (moto) (issue #13).
mod artifacts;
/// The real binary: first start, TLS, admin CLI, signals, two processes.
mod binary;
/// Bots: CRUD, the lifecycle of inventory §2.6 with its log and archive,
/// roles, tenants and the list kit against a reference (issue #16).
mod bots;
/// The web console in headless Chromium (WebDriver): every page at two
/// sizes with axe-core, focus, console and screenshot checks; pairing,
/// ban/unban and finance through the UI (issue #14, the browser ring).
mod browser;
/// Agents and the command bus end to end.
mod bus;
/// The web console: pages per role, cookie session, CSRF, event stream with
/// the cookie, assets and CSP (issue #14, the fast ring without a browser).
mod console;
/// Console pages of users, API tokens, tenants and settings (fast ring).
mod console_admin;
/// Console pages of licenses, artifacts, secrets, VMs (fast ring).
mod console_delivery;
/// Console pages of unattend profiles and playbooks (fast ring).
mod console_profiles;
/// Console pages of resources and workspace kinds (fast ring).
mod console_records;
/// External (Supabase-compatible) JWTs.
mod external_jwt;
/// Finance operations and the daily statistics computed in SQL, against
/// a reference (issue #16).
mod finance;
/// Heartbeat write-behind and the agent token cache: buffered heartbeats,
/// flushes, crash and shutdown, revocation, two servers (issue #15).
mod heartbeats;
/// Licensing: tenant licenses, entitlements, the lease check chain, heartbeats
/// up to the maximum lifetime, revocation, signed and hashed lease tokens (issue #13).
mod licensing;
/// Tenant × role matrix over every OpenAPI operation: no leak, no mutation.
mod matrix;
/// The object stores tests run on: local, or S3 on a `moto_server` each
/// test starts on a free port.
mod moto;
/// `docs/openapi.json` is generated from the code.
mod openapi_doc;
/// The data platform: transactions roll back, enums round-trip, the
/// list-query kit matches a reference, both schemas are the same.
mod platform;
/// Provisioning: tokens through all four statuses, the guests' progress
/// reports, ISO payloads (Windows and Linux), auto-detach, playbooks (issue #12).
mod provisioning;
/// Resources (licenses, proxies, subscriptions): CRUD, validation, merge,
/// sealed proxy passwords, computed statuses, roles, list kit (issue #16).
mod records_checks;
mod resources;
/// schemathesis walks the API from its OpenAPI document (contract tests).
mod schemathesis;
/// The secrets vault: client, server-sealed and agent-sealed secrets,
/// bindings, delivery to the bound agent only, the admin CLI, no value in
/// any response or log (issue #13).
mod secrets;
/// Findings of the security review, one test each (issue #11, items 5–11).
mod security;
/// The settings tree: per-path schemas, merge, path rules, masking,
/// transactions, roles and tenants.
mod settings;
/// Theme assets: presign, upload through the URL, complete with its
/// checks, list, soft delete, on the local store and on S3 (issue #13).
mod theme;
/// Unattend profiles: CRUD, every validation rule, default switching,
/// tenant/owner isolation, previews equal to the builder's bytes (issue #12).
mod unattend;
/// VM creation jobs: validation per field, roles and tenants, the
/// idempotency key, the list kit, the orchestrator through every step with
/// a scripted agent (restart, retries, cancel) (issue #17).
mod vm_jobs;
/// The VM registry: register/resolve, upsert keeping created_at, owners,
/// status changes, list kit, tenants (issue #13).
mod vms;
/// Workspace (notes, calendar, kanban): CRUD, validation, merge, roles,
/// list kit (issue #16).
mod workspace;
