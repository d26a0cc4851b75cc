//! Health: liveness, readiness and service identity (`/api/v1/health*`).
//!
//! No `service.rs` or `store.rs`: the only rule is "ping the database",
//! which is `Db::ping`, and nothing is stored.

pub mod routes;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(routes::health))
        .routes(routes!(routes::live))
        .routes(routes!(routes::ready))
}
