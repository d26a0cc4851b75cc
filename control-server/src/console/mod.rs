//! The web console: server-rendered HTML pages under `/console` for admins
//! and operators (issue #14).
//!
//! * [`assets`]: `htmx.min.js` (vendored, pinned), `console.js` and
//!   `console.css`, embedded in the binary and served under
//!   `/console/assets/<build-hash>/…` with an immutable cache lifetime.
//! * [`session`]: sign-in (a form that sets the console session cookie: the
//!   accounts domain's own session token, so expiry and revocation are the
//!   bearer session's) and sign-out; [`ConsoleUser`], the pages' caller.
//! * [`pages`]: one thin handler per page; each calls domain services (never
//!   a store) and renders a template of [`views`].
//!
//! Pages only read. Every change is a form that `console.js` posts as JSON
//! to the documented `/api/v1` endpoint, with the session's CSRF token; the
//! API's error envelope is shown next to the fields. Templates live in
//! `control-server/templates/console/` (askama, checked at compile time).

pub mod admin;
pub mod assets;
pub mod delivery;
pub mod pages;
pub mod profiles;
pub mod records;
pub mod session;
pub mod views;

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::auth::AuthError;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::validate::FieldErrors;

pub use session::ConsoleUser;

/// Where the console lives.
pub const BASE: &str = "/console";

/// The console's routes (merged into the application by `http::router_with`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::dashboard))
        .route(
            "/console/login",
            get(session::login_page).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/agents", get(pages::agents))
        .route("/console/agents/{id}", get(pages::agent))
        .route("/console/commands", get(pages::commands))
        .route("/console/commands/{id}", get(pages::command))
        .route("/console/vm-jobs", get(pages::vm_jobs))
        .route("/console/vm-jobs/new", get(pages::vm_job_new))
        .route("/console/vm-jobs/{id}", get(pages::vm_job))
        .route("/console/bots", get(pages::bots))
        .route("/console/bots/archive", get(pages::bots_archive))
        .route("/console/bots/{id}", get(pages::bot))
        .route("/console/finance", get(pages::finance))
        .merge(profiles::routes())
        .merge(records::routes())
        .merge(admin::routes())
        .merge(delivery::routes())
        .route("/console/assets/{hash}/{*file}", get(assets::serve))
        .route("/console/{*rest}", get(pages::not_found))
}

/// A page that could not be shown: the API's error (status, code, message),
/// rendered as an HTML page. A 5xx keeps its internal cause for the log.
#[derive(Debug)]
pub struct ConsoleError(pub ApiError);

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError(e)
    }
}

/// Domain errors reach the page through their one mapping to `ApiError`.
macro_rules! console_error_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for ConsoleError {
            fn from(e: $t) -> Self {
                ConsoleError(ApiError::from(e))
            }
        })*
    };
}

console_error_from!(
    AuthError,
    FieldErrors,
    crate::domains::accounts::AccountError,
    crate::domains::agents::AgentError,
    crate::domains::commands::CommandError,
    crate::domains::vm_jobs::VmJobError,
    crate::domains::bots::BotError,
    crate::domains::finance::FinanceError,
    crate::domains::unattend::UnattendError,
    crate::domains::provisioning::ProvisioningError,
    crate::domains::settings::SettingsError,
    crate::domains::licensing::LicensingError,
    crate::domains::artifacts::ArtifactsError,
    crate::domains::secrets::SecretError,
    crate::domains::vms::VmError,
);

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.status == StatusCode::UNAUTHORIZED {
            return Redirect::to("/console/login").into_response();
        }
        let page = views::ErrorPage {
            status: e.status.as_u16(),
            code: e.code,
            message: e.message.clone(),
        };
        let html = page.render();
        // The JSON response carries the 5xx cause for the `observe` log;
        // keep its status, headers and extensions, swap the body for HTML.
        let (mut parts, _) = e.into_response().into_parts();
        match html {
            Ok(html) => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                Response::from_parts(parts, axum::body::Body::from(html))
            }
            Err(err) => {
                tracing::error!(error = %err, "console error page failed to render");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
            }
        }
    }
}

/// Render a page template.
pub fn render<T: Template>(page: &T) -> Result<Html<String>, ConsoleError> {
    page.render()
        .map(Html)
        .map_err(|e| ConsoleError(ApiError::internal().with_cause(format!("template: {e}"))))
}
