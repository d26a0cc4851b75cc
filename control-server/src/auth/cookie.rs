//! The web console's session cookie and its CSRF token.
//!
//! The cookie holds the very session token (`bmxs_…`) that
//! `POST /api/v1/auth/login` issues: same expiry, same revocation (sign-out,
//! user or tenant disabled), checked against the database on every request.
//! Browsers send it on their own, so a state-changing request authenticated
//! by the cookie must also carry [`CSRF_HEADER`] with the session's CSRF
//! token: a value derived from the session token, which a page of another
//! origin can neither read (the cookie is HttpOnly) nor compute. Console pages
//! carry it in `<meta name="csrf-token">` and `console.js` sends it.

use axum::http::{header, HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::secret::SESSION_PREFIX;
use super::AuthError;

/// The cookie's name.
pub const SESSION_COOKIE: &str = "bmx_session";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The console session token from the `Cookie` header(s), if any. Only
/// session tokens count: an API token put in the cookie is ignored.
pub fn session_from_headers(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.starts_with(SESSION_PREFIX))
}

/// The CSRF token of a session (64 hex characters).
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"botmox-console-csrf\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Methods that change nothing need no CSRF token.
pub fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuse a cookie-authenticated write without the session's CSRF token.
pub fn check_csrf(
    method: &Method,
    headers: &HeaderMap,
    session_token: &str,
) -> Result<(), AuthError> {
    if is_safe_method(method) {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(AuthError::CsrfToken)?;
    let expected = csrf_token(session_token);
    // Constant time in the token's content.
    let same = sent.len() == expected.len()
        && sent
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(AuthError::CsrfToken)
    }
}

/// `Set-Cookie` value for a new console session. `Secure` when the server
/// speaks TLS; `Path=/` so the API under `/api/v1` gets it too.
pub fn set_cookie(token: &str, max_age_s: i64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age_s.max(0),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` value that removes the cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn finds_the_session_cookie_among_others() {
        let h = headers(&[("cookie", "a=1; bmx_session=bmxs_abc; b=2")]);
        assert_eq!(session_from_headers(&h), Some("bmxs_abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "bmx_session=bmxs_x")]);
        assert_eq!(session_from_headers(&h), Some("bmxs_x"));
        // not a session token, or another cookie's name
        let h = headers(&[("cookie", "bmx_session=bmxk_api; xbmx_session=bmxs_y")]);
        assert_eq!(session_from_headers(&h), None);
    }

    #[test]
    fn csrf_is_required_on_writes_only() {
        let tok = "bmxs_secret";
        let good = csrf_token(tok);
        assert_eq!(good.len(), 64);
        assert_ne!(good, csrf_token("bmxs_other"));
        let none = HeaderMap::new();
        assert_eq!(check_csrf(&Method::GET, &none, tok), Ok(()));
        assert_eq!(
            check_csrf(&Method::POST, &none, tok),
            Err(AuthError::CsrfToken)
        );
        let bad = headers(&[(CSRF_HEADER, &csrf_token("bmxs_other"))]);
        assert_eq!(
            check_csrf(&Method::DELETE, &bad, tok),
            Err(AuthError::CsrfToken)
        );
        let ok = headers(&[(CSRF_HEADER, &good)]);
        assert_eq!(check_csrf(&Method::PATCH, &ok, tok), Ok(()));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("bmxs_t", 3600, true);
        assert_eq!(
            c,
            "bmx_session=bmxs_t; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict; Secure"
        );
        assert!(!clear_cookie(false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
