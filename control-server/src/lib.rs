//! Bot-Mox control server: the multi-tenant REST API, its storage and auth.
//!
//! Module map (each has one reason to change):
//! * [`domains`] — one folder per capability (routes, rules, SQL):
//!   accounts, agents, commands, events, health
//! * [`http`] — router assembly, middleware, extractors, envelopes, the
//!   error type and the error-code table
//! * [`db`] — pools by type (reader/writer/transactions), tenant scope, typed
//!   ids, text enums, the list-query kit, storage errors
//! * [`auth`] — identities, roles, token/password primitives, external JWT,
//!   sign-in throttling
//! * [`console`] — the web console: server-rendered pages under `/console`
//!   (askama templates, embedded assets, the session cookie's sign-in)
//! * [`objects`] — the object store (local files or S3) and its signed URLs
//! * [`notify`] — wake-ups for long polls and event streams (in-process and
//!   PostgreSQL `LISTEN/NOTIFY`); [`sweeper`] — the reliability sweeper
//! * [`config`], [`validate`], [`state`], [`tls`], [`bootstrap`],
//!   [`telemetry`], [`server`], [`admin`], [`cli`], [`fsutil`]

pub mod admin;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod console;
pub mod crypto;
pub mod db;
pub mod domains;
pub mod fsutil;
pub mod http;
pub mod notify;
pub mod objects;
#[cfg(test)]
pub(crate) mod ps_lint;
pub mod records;
pub mod server;
pub mod state;
pub mod sweeper;
pub mod telemetry;
pub mod tls;
pub mod validate;
