//! Bot-Mox control server: the multi-tenant REST API, its storage and auth.
//!
//! Module map (each has one reason to change):
//! * [`config`] — flags/env/TOML → validated [`config::Config`]
//! * [`db`] — one `sqlx::Any` pool for SQLite or PostgreSQL, migrations
//! * [`store`] — SQL per table family; tenant data takes a [`store::TenantScope`]
//! * [`auth`] — identities, roles, tokens, passwords, external JWT, throttling
//! * [`accounts`] — tenant/user/API-token rules shared by HTTP and CLI
//! * [`bus`] — agents and the command bus (pairing, leases, reports, sweeper, events)
//! * [`http`] — router, middleware, handlers, OpenAPI
//! * [`tls`], [`bootstrap`], [`telemetry`], [`server`], [`admin`], [`cli`]

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod bootstrap;
pub mod bus;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod fsutil;
pub mod http;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tls;
