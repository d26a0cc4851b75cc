//! Console sign-in and sign-out, and [`ConsoleUser`], the caller of a page.
//!
//! Sign-in is `accounts::login` (the same throttling, the same session
//! token as `POST /api/v1/auth/login`); the token goes into the HttpOnly
//! cookie of [`crate::auth::cookie`] with the session's lifetime. Sign-out
//! revokes that session (`accounts::logout`) and clears the cookie.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::views::{Layout, LoginPage};
use super::{render, ConsoleError};
use crate::auth::{cookie, Identity, Role};
use crate::bootstrap::PASSWORD_FILE;
use crate::db::now_ms;
use crate::domains::accounts::AccountError;
use crate::http::envelope::ok;
use crate::http::error::ApiError;
use crate::http::extract::ClientIp;
use crate::state::AppState;

/// The signed-in user of a console page (from the session cookie), with the
/// session's CSRF token for the page's forms.
#[derive(Debug, Clone)]
pub struct ConsoleUser {
    pub identity: Identity,
    pub csrf: String,
}

impl ConsoleUser {
    /// The layout every page shares (navigation, who is signed in).
    pub fn layout(&self, nav: &'static str, title: impl Into<String>) -> Layout {
        Layout {
            title: title.into(),
            nav,
            email: self.identity.email.clone(),
            role: self.identity.role.as_str(),
            infra: self.identity.infra,
            tenant: self.identity.tenant_id.to_string(),
            csrf: self.csrf.clone(),
            assets: super::assets::base_url(),
            can_operate: self.identity.has(Role::Operator),
            is_admin: self.identity.has(Role::Admin),
        }
    }
}

/// Not signed in (no cookie, or its session expired or was revoked): go to
/// the sign-in page, then come back.
pub struct SignInFirst(String);

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let next: String = form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/console/login?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let back = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| super::BASE.to_string());
        let Some(token) = cookie::session_from_headers(&parts.headers) else {
            return Err(SignInFirst(back).into_response());
        };
        match state.accounts.verify_bearer(token).await {
            Ok(identity) => Ok(ConsoleUser {
                csrf: cookie::csrf_token(token),
                identity,
            }),
            Err(AccountError::Store(e)) => {
                Err(ConsoleError::from(ApiError::from(e)).into_response())
            }
            Err(_) => Err(SignInFirst(back).into_response()),
        }
    }
}

/// Where to go after signing in: a console path, nothing else (no open
/// redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == super::BASE || n.starts_with("/console/") || n.starts_with("/console?"))
                && !n.starts_with("/console/login")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => super::BASE.to_string(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_view(state: &AppState, email: String, next: String, error: Option<String>) -> LoginPage {
    let password_file = state.cfg.data_dir.join(PASSWORD_FILE);
    LoginPage {
        assets: super::assets::base_url(),
        email,
        next,
        error,
        first_run_file: password_file
            .exists()
            .then(|| password_file.display().to_string()),
    }
}

/// `GET /console/login`: the sign-in form (signed-in users go on).
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, ConsoleError> {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = cookie::session_from_headers(&headers) {
        if state.accounts.verify_bearer(token).await.is_ok() {
            return Ok(Redirect::to(&next).into_response());
        }
    }
    Ok(render(&login_view(&state, String::new(), next, None))?.into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// A sign-in form posted from another site is refused (login CSRF): the
/// browser's `Sec-Fetch-Site`, else `Origin` against `Host`.
fn same_origin(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (value("origin"), value("host")) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// `POST /console/login` (form): sign in and set the session cookie.
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let next = safe_next(form.next.as_deref());
    if !same_origin(&headers) {
        return Err(ApiError::forbidden("Sign in from the console's own page").into());
    }
    let again = |status: StatusCode, message: &str| -> Result<Response, ConsoleError> {
        let page = login_view(
            &state,
            form.email.clone(),
            next.clone(),
            Some(message.into()),
        );
        Ok((status, render(&page)?).into_response())
    };
    if let Err(retry_after) = state.limits.check_public(&ip) {
        let e = ApiError::rate_limited(retry_after);
        return again(e.status, &e.message);
    }
    let out = match state.accounts.login(&form.email, &form.password, &ip).await {
        Ok(out) => out,
        Err(e @ (AccountError::InvalidCredentials | AccountError::Throttled { .. })) => {
            let e = ApiError::from(e);
            return again(e.status, &e.message);
        }
        Err(e) => return Err(e.into()),
    };
    let max_age_s = (out.expires_at - now_ms()) / 1000;
    let set = cookie::set_cookie(&out.token, max_age_s, state.tls_sha256.is_some());
    Ok(([(header::SET_COOKIE, set)], Redirect::to(&next)).into_response())
}

#[derive(serde::Serialize)]
pub struct SignedOut {
    revoked: bool,
}

/// `POST /console/logout` (from `console.js`, with the CSRF header): revoke
/// the session and clear the cookie.
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    identity: Identity,
) -> Result<Response, ApiError> {
    let revoked = state.accounts.logout(&identity).await?;
    let clear = cookie::clear_cookie(state.tls_sha256.is_some());
    Ok(([(header::SET_COOKIE, clear)], ok(SignedOut { revoked })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/console/agents?q=a")),
            "/console/agents?q=a"
        );
        assert_eq!(safe_next(Some("/console")), "/console");
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/api/v1/agents",
            "/consolex",
            "/console/login?next=/x",
            "/console/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(safe_next(None), "/console");
    }

    #[test]
    fn cross_site_sign_in_is_refused() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert("host", "127.0.0.1:8443".parse().unwrap());
        h.insert("origin", "https://127.0.0.1:8443".parse().unwrap());
        assert!(same_origin(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(same_origin(&h));
    }
}
