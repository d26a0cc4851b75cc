//! The server's capabilities, one folder each.
//!
//! Every domain has `mod.rs` (its `routes()`, its error type and that
//! error's one mapping to `ApiError`), `routes.rs` (DTOs and thin handlers),
//! `service.rs` (the rules; the only caller of its store) and `store.rs`
//! (SQL). A domain calls another domain's service, never its store. Adding a
//! domain touches its folder, one line here, and its migrations.
//!
//! `records_kit` is not a domain but the service and handlers shared by the
//! domains of typed records with passthrough extras (resources, workspace):
//! such a domain declares its kinds in `store.rs` and implements
//! `records_kit::RecordsDomain` in its `mod.rs`.

pub mod accounts;
pub mod agents;
pub mod artifacts;
pub mod bots;
pub mod commands;
pub mod events;
pub mod finance;
pub mod health;
pub mod licensing;
pub mod provisioning;
pub mod records_kit;
pub mod resources;
pub mod secrets;
pub mod settings;
pub mod theme;
pub mod unattend;
pub mod vm_jobs;
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
        .merge(vm_jobs::routes())
        .merge(licensing::routes())
        .merge(artifacts::routes())
        .merge(theme::routes())
        .merge(secrets::routes())
        .merge(crate::objects::routes::routes())
}
