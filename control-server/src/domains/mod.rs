//! The server's capabilities, one folder each.
//!
//! Every domain has `mod.rs` (its `routes()`, its error type and that
//! error's one mapping to `ApiError`), `routes.rs` (DTOs and thin handlers),
//! `service.rs` (the rules; the only caller of its store) and `store.rs`
//! (SQL). A domain calls another domain's service, never its store. Adding a
//! domain touches its folder, one line here, and its migrations.

pub mod accounts;
pub mod agents;
pub mod bots;
pub mod commands;
pub mod events;
pub mod finance;
pub mod health;
pub mod licensing;
pub mod provisioning;
pub mod resources;
pub mod settings;
pub mod unattend;
pub mod vms;
pub mod workspace;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every domain's routes, merged.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(health::routes())
        .merge(accounts::routes())
        .merge(agents::routes())
        .merge(commands::routes())
        .merge(events::routes())
        .merge(unattend::routes())
        .merge(provisioning::routes())
        .merge(bots::routes())
        .merge(finance::routes())
        .merge(settings::routes())
        .merge(resources::routes())
        .merge(workspace::routes())
        .merge(vms::routes())
        .merge(licensing::routes())
}
