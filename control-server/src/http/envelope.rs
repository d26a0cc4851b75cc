//! The success envelope `{success:true, data, meta?}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
}

/// A handler's successful answer: status + enveloped data.
pub struct Reply<T>(pub StatusCode, pub Envelope<T>);

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        (self.0, axum::Json(self.1)).into_response()
    }
}

/// The answer to a delete that has nothing else to say.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub deleted: bool,
}

pub fn ok<T>(data: T) -> Reply<T> {
    Reply(
        StatusCode::OK,
        Envelope {
            success: true,
            data,
            meta: None,
        },
    )
}

pub fn created<T>(data: T) -> Reply<T> {
    Reply(
        StatusCode::CREATED,
        Envelope {
            success: true,
            data,
            meta: None,
        },
    )
}

pub fn list<T>(items: Vec<T>) -> Reply<Vec<T>> {
    let total = items.len();
    Reply(
        StatusCode::OK,
        Envelope {
            success: true,
            data: items,
            meta: Some(serde_json::json!({ "total": total })),
        },
    )
}

/// One page of a list, with `meta{total, page, limit, count, next_cursor}`.
pub fn paged<T>(page: crate::db::list::Page<T>) -> Reply<Vec<T>> {
    let meta = page.meta();
    Reply(
        StatusCode::OK,
        Envelope {
            success: true,
            data: page.items,
            meta: Some(meta),
        },
    )
}

/// `202 Accepted` with optional meta.
pub fn accepted<T>(data: T, meta: Option<serde_json::Value>) -> Reply<T> {
    Reply(
        StatusCode::ACCEPTED,
        Envelope {
            success: true,
            data,
            meta,
        },
    )
}

/// One event of a `text/event-stream` response as a client parses it: the
/// `id:`, `event:` and `data:` lines of one block (comment lines such as
/// `: heartbeat` are not events). Use it as the body of an SSE response:
/// `content_type = "text/event-stream", body = SseEvent`.
#[derive(Debug, ToSchema)]
pub struct SseEvent {
    /// The event id; resume after it with `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
    /// The event type, e.g. `command.succeeded`.
    pub event: String,
    /// The event as JSON text.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}
