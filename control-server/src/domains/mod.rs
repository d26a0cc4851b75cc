//! The server's capabilities, one folder each.
//!
//! Every domain has `mod.rs` (its `routes()`, its error type and that
//! error's one mapping to `ApiError`), `routes.rs` (DTOs and thin handlers),
//! `service.rs` (the rules; the only caller of its store) and `store.rs`
//! (SQL). A domain calls another domain's service, never its store. Adding a
//! domain touches its folder, one line here, and its migrations.

pub mod accounts;
pub mod agents;
pub mod commands;
pub mod events;
pub mod health;

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
}
