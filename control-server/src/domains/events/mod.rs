//! Events: the durable timeline of agents and commands, and its SSE stream
//! (`GET /api/v1/vm-ops/events`). Other domains record events through
//! [`EventsService::record`] inside their own transactions.

pub mod routes;
pub mod service;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db::StoreError;
use crate::http::error::ApiError;
use crate::state::AppState;

pub use service::EventsService;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(routes::events))
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("an agent may only follow its own events")]
    ForeignAgent,
    #[error("too many open event streams")]
    TooManyStreams,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::ForeignAgent => {
                ApiError::forbidden("An agent may only follow its own events")
            }
            EventError::TooManyStreams => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                crate::http::codes::TOO_MANY_STREAMS,
                format!(
                    "At most {} event streams may be open per caller; close one first",
                    service::MAX_STREAMS_PER_CALLER
                ),
            )
            .with_retry_after(5),
            EventError::Store(s) => s.into(),
        }
    }
}
