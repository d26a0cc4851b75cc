//! The HTTP API: the request pipeline (faults → schema path → auth →
//! parameter validation) and the PVE endpoint handlers.

mod access;
mod admin;
mod cluster;
pub mod error;
mod qemu;
mod storage;
mod tasks;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::auth::{AuthUser, Authenticator};
use crate::conn::ConnectionKill;
use crate::faults::{lock_timeout_message, FaultAction, Faults};
use crate::params::{read_multipart, Params, UploadedFile};
use crate::schema::{validate_params, ApiSchema, MethodSchema};
use crate::state::SharedState;
use crate::violations::{Violation, ViolationKind, ViolationLog};
use error::ApiError;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub schema: Arc<ApiSchema>,
    pub auth: Authenticator,
    pub state: SharedState,
    pub faults: Faults,
    pub violations: ViolationLog,
    pub fingerprint: String,
}

/// Marker on responses of the fallback: valid per schema, not simulated.
#[derive(Clone, Copy, Debug)]
struct NotSimulated;

/// Largest accepted non-multipart body.
const BODY_LIMIT: usize = 16 << 20;

/// Builds the complete service: API routes, admin routes and the pipeline.
pub fn router(app: AppState) -> Router {
    let api = Router::new()
        .route(
            "/access/ticket",
            post(access::create_ticket).get(access::ticket_form),
        )
        .route("/version", get(cluster::version))
        .route("/cluster/nextid", get(cluster::nextid))
        .route("/cluster/resources", get(cluster::resources))
        .route("/nodes", get(cluster::nodes))
        .route("/nodes/{node}/status", get(cluster::node_status))
        .route("/nodes/{node}/qemu", get(qemu::list))
        .route(
            "/nodes/{node}/qemu/{vmid}",
            axum::routing::delete(qemu::destroy),
        )
        .route(
            "/nodes/{node}/qemu/{vmid}/config",
            get(qemu::get_config)
                .post(qemu::update_config_async)
                .put(qemu::update_config_sync),
        )
        .route("/nodes/{node}/qemu/{vmid}/clone", post(qemu::clone_vm))
        .route(
            "/nodes/{node}/qemu/{vmid}/status/current",
            get(qemu::status_current),
        )
        .route(
            "/nodes/{node}/qemu/{vmid}/status/{action}",
            post(qemu::status_action),
        )
        .route("/nodes/{node}/qemu/{vmid}/resize", put(qemu::resize))
        .route("/nodes/{node}/qemu/{vmid}/sendkey", put(qemu::sendkey))
        .route("/nodes/{node}/storage", get(storage::list))
        .route(
            "/nodes/{node}/storage/{storage}/status",
            get(storage::status),
        )
        .route(
            "/nodes/{node}/storage/{storage}/content",
            get(storage::content),
        )
        .route(
            "/nodes/{node}/storage/{storage}/content/{volume}",
            axum::routing::delete(storage::delete_volume),
        )
        .route(
            "/nodes/{node}/storage/{storage}/upload",
            post(storage::upload),
        )
        .route("/nodes/{node}/tasks/{upid}/status", get(tasks::status))
        .route("/nodes/{node}/tasks/{upid}/log", get(tasks::log))
        .fallback(not_simulated)
        .method_not_allowed_fallback(not_simulated);
    Router::new()
        .nest("/api2/json", api)
        .merge(admin::router(app.clone()))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(app.clone(), pipeline))
        .with_state(app)
}

async fn not_simulated(method: Method, req: Request) -> Response {
    let mut resp = ApiError::NotImplemented(format!(
        "Method '{method} {}' is valid but not simulated by pve-sim",
        req.uri().path().trim_start_matches("/api2/json")
    ))
    .into_response();
    resp.extensions_mut().insert(NotSimulated);
    resp
}

async fn not_found() -> Response {
    (axum::http::StatusCode::NOT_FOUND, "not found").into_response()
}

impl AppState {
    fn record(&self, method: &Method, path: &str, template: Option<&str>, kind: ViolationKind) {
        self.violations.record(Violation {
            method: method.to_string(),
            path: path.to_string(),
            template: template.map(str::to_string),
            kind,
        });
    }
}

/// Runs before routing for every request.
async fn pipeline(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(api_path) = path.strip_prefix("/api2/json").map(str::to_string) else {
        return next.run(req).await;
    };
    match prepare(&app, req, &api_path).await {
        Ok(req) => {
            let method = req.method().clone();
            let template = req
                .extensions()
                .get::<Arc<MethodSchema>>()
                .map(|m| m.path.clone());
            let resp = next.run(req).await;
            if resp.extensions().get::<NotSimulated>().is_some() {
                app.record(
                    &method,
                    &api_path,
                    template.as_deref(),
                    ViolationKind::NotSimulated,
                );
            }
            resp
        }
        Err(resp) => resp,
    }
}

/// Reads and discards the request body before an early answer, as
/// pveproxy does: answering while the client is still sending an upload
/// would close the connection under it, and the client would see a
/// transport error (and retry) instead of the status meant for it.
async fn drain_body(req: Request) {
    let _ = axum::body::to_bytes(req.into_body(), BODY_LIMIT).await;
}

/// Faults, schema resolution, authentication and parameter validation.
/// On success the request carries `Params`, `Arc<MethodSchema>`, the
/// `AuthUser` and, for uploads, the `UploadedFile`.
async fn prepare(app: &AppState, req: Request, api_path: &str) -> Result<Request, Response> {
    let method = req.method().clone();
    let latency = app.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = app.faults.take_request_fault(method.as_str(), api_path) {
        return Err(match fault {
            FaultAction::DropConnection => {
                if let Some(kill) = req.extensions().get::<ConnectionKill>() {
                    kill.kill();
                }
                ApiError::failed("connection dropped").into_response()
            }
            FaultAction::Status { status, message } => {
                drain_body(req).await;
                ApiError::Status { status, message }.into_response()
            }
            FaultAction::LockTimeout => {
                drain_body(req).await;
                ApiError::failed(lock_timeout_message(api_path)).into_response()
            }
        });
    }
    let not_impl =
        || ApiError::NotImplemented(format!("Method '{method} {api_path}' not implemented"));
    let Some(resolved) = app.schema.resolve(api_path) else {
        app.record(&method, api_path, None, ViolationKind::UnknownPath);
        return Err(not_impl().into_response());
    };
    let Some(schema) = resolved.method(method.as_str()) else {
        app.record(
            &method,
            api_path,
            Some(&resolved.template),
            ViolationKind::UnknownMethod {
                allowed: resolved.method_names(),
            },
        );
        return Err(not_impl().into_response());
    };
    let user = if schema.world {
        None
    } else {
        match app
            .auth
            .authenticate(req.headers(), &method, schema.allow_token)
        {
            Ok(u) => Some(u),
            Err(e) => {
                drain_body(req).await;
                return Err(ApiError::Unauthorized(e.to_string()).into_response());
            }
        }
    };
    let (mut parts, body) = req.into_parts();
    let mut params = Params::new();
    if let Some(q) = parts.uri.query() {
        params.extend_urlencoded(q.as_bytes());
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let malformed = |message: String| {
        app.record(
            &method,
            api_path,
            Some(&resolved.template),
            ViolationKind::MalformedBody {
                message: message.clone(),
            },
        );
        ApiError::Status {
            status: 400,
            message,
        }
        .into_response()
    };
    let mut upload: Option<UploadedFile> = None;
    if content_type.starts_with("multipart/form-data") {
        let boundary =
            multer::parse_boundary(&content_type).map_err(|e| malformed(e.to_string()))?;
        let tmp_dir = app.state.lock().upload_tmp_dir();
        upload = read_multipart(body, &boundary, &tmp_dir, &mut params)
            .await
            .map_err(|e| malformed(e.to_string()))?;
    } else {
        let bytes = axum::body::to_bytes(body, BODY_LIMIT)
            .await
            .map_err(|e| malformed(format!("cannot read body: {e}")))?;
        if content_type.starts_with("application/json") {
            params
                .extend_json(&bytes)
                .map_err(|e| malformed(e.to_string()))?;
        } else if content_type.is_empty()
            || content_type.starts_with("application/x-www-form-urlencoded")
        {
            params.extend_urlencoded(&bytes);
        } else if !bytes.is_empty() {
            return Err(malformed(format!(
                "unsupported content type '{content_type}'"
            )));
        }
    }
    let mut duplicates = crate::schema::ParamErrors::new();
    for (k, v) in &resolved.vars {
        if params.contains(k) {
            duplicates.insert(
                k.clone(),
                "duplicate parameter (already defined in URI)".into(),
            );
        } else {
            params.push(k.clone(), v.clone());
        }
    }
    let mut errors = validate_params(&schema.parameters, &params)
        .err()
        .unwrap_or_default();
    errors.extend(duplicates);
    if !errors.is_empty() {
        if let Some(u) = &upload {
            let _ = std::fs::remove_file(&u.tmp_path);
        }
        app.record(
            &method,
            api_path,
            Some(&resolved.template),
            ViolationKind::InvalidParameters {
                errors: errors.clone(),
            },
        );
        return Err(ApiError::Params(errors).into_response());
    }
    parts.extensions.insert(params);
    parts.extensions.insert(schema);
    if let Some(u) = user {
        parts.extensions.insert::<AuthUser>(u);
    }
    if let Some(u) = upload {
        parts.extensions.insert(u);
    }
    Ok(Request::from_parts(parts, Body::empty()))
}
