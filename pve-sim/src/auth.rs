//! PVE authentication: ticket login with CSRF tokens, and API tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, Method};
use base64::Engine;
use rand::RngCore;

/// Ticket lifetime in PVE.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Credentials the simulator accepts.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub token_id: String,
    pub token_secret: String,
}

impl Credentials {
    pub fn generate() -> Self {
        let mut pw = [0u8; 18];
        rand::rng().fill_bytes(&mut pw);
        Credentials {
            username: "root@pam".into(),
            password: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pw),
            token_id: "root@pam!botmox".into(),
            token_secret: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    /// `root@pam`.
    pub userid: String,
    /// `root@pam!botmox` for API-token requests.
    pub tokenid: Option<String>,
}

impl AuthUser {
    /// The user as written into UPIDs (`root@pam!botmox` for tokens).
    pub fn task_user(&self) -> String {
        self.tokenid.clone().unwrap_or_else(|| self.userid.clone())
    }
}

/// Why a request was not authenticated (all answered with 401).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("No ticket")]
    NoCredentials,
    #[error("authentication failure")]
    BadTicket,
    #[error("invalid token value!")]
    BadToken,
    #[error("Permission check failed (invalid csrf token)")]
    Csrf,
    #[error("API tokens are not allowed for this call")]
    TokenNotAllowed,
}

#[derive(Debug, Clone)]
struct TicketInfo {
    userid: String,
    csrf: String,
    issued: SystemTime,
}

/// Issued tickets (PVE signs them; the simulator remembers them instead).
#[derive(Debug, Clone)]
pub struct Authenticator {
    creds: Credentials,
    tickets: Arc<Mutex<HashMap<String, TicketInfo>>>,
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct Login {
    pub ticket: String,
    pub csrf: String,
    pub username: String,
}

fn random_b64(len: usize) -> String {
    let mut buf = vec![0u8; len];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(buf)
}

impl Authenticator {
    pub fn new(creds: Credentials) -> Self {
        Authenticator {
            creds,
            tickets: Arc::default(),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TicketInfo>> {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn issue(&self, userid: &str) -> Login {
        let now = SystemTime::now();
        let stamp = format!(
            "{:08X}",
            now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
        );
        let ticket = format!("PVE:{userid}:{stamp}::{}", random_b64(256));
        let csrf = format!("{stamp}:{}", random_b64(32));
        self.lock().insert(
            ticket.clone(),
            TicketInfo {
                userid: userid.to_string(),
                csrf: csrf.clone(),
                issued: now,
            },
        );
        Login {
            ticket,
            csrf,
            username: userid.to_string(),
        }
    }

    /// `POST /access/ticket`: `username` (+ optional `realm`) and `password`,
    /// where the password may also be a valid ticket (renewal).
    pub fn login(&self, username: &str, realm: Option<&str>, password: &str) -> Option<Login> {
        let userid = match (username.contains('@'), realm) {
            (true, _) => username.to_string(),
            (false, Some(r)) => format!("{username}@{r}"),
            (false, None) => format!("{username}@pam"),
        };
        if userid != self.creds.username {
            return None;
        }
        let renew = self
            .valid_ticket(password)
            .is_some_and(|info| info.userid == userid);
        (password == self.creds.password || renew).then(|| self.issue(&userid))
    }

    fn valid_ticket(&self, ticket: &str) -> Option<TicketInfo> {
        let info = self.lock().get(ticket).cloned()?;
        let age = SystemTime::now()
            .duration_since(info.issued)
            .unwrap_or_default();
        (age < TICKET_LIFETIME).then_some(info)
    }

    /// Makes every ticket issued so far expired (test hook for re-login).
    pub fn expire_tickets(&self) {
        let past = SystemTime::now() - TICKET_LIFETIME - Duration::from_secs(1);
        for info in self.lock().values_mut() {
            info.issued = past;
        }
    }

    /// Authenticates a request like pveproxy: API token header first, then
    /// the `PVEAuthCookie` cookie with a CSRF token for write methods.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        method: &Method,
        allow_token: bool,
    ) -> Result<AuthUser, AuthError> {
        if let Some(auth) = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            if let Some(rest) = auth.trim().strip_prefix("PVEAPIToken=") {
                let (tokenid, secret) = rest.split_once('=').ok_or(AuthError::BadToken)?;
                if tokenid != self.creds.token_id || secret != self.creds.token_secret {
                    return Err(AuthError::BadToken);
                }
                if !allow_token {
                    return Err(AuthError::TokenNotAllowed);
                }
                let userid = tokenid.split('!').next().unwrap_or(tokenid).to_string();
                return Ok(AuthUser {
                    userid,
                    tokenid: Some(tokenid.to_string()),
                });
            }
        }
        let ticket = cookie_ticket(headers).ok_or(AuthError::NoCredentials)?;
        let info = self.valid_ticket(&ticket).ok_or(AuthError::BadTicket)?;
        if method != Method::GET && method != Method::HEAD {
            let csrf = headers
                .get("CSRFPreventionToken")
                .and_then(|v| v.to_str().ok());
            if csrf != Some(info.csrf.as_str()) {
                return Err(AuthError::Csrf);
            }
        }
        Ok(AuthUser {
            userid: info.userid,
            tokenid: None,
        })
    }
}

fn cookie_ticket(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "PVEAuthCookie")
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_renew_and_expiry() {
        let auth = Authenticator::new(Credentials::generate());
        let pw = auth.credentials().password.clone();
        assert!(auth.login("root", Some("pam"), "wrong").is_none());
        assert!(auth.login("admin@pve", None, &pw).is_none());
        let login = auth.login("root@pam", None, &pw).expect("login");
        assert!(login.ticket.starts_with("PVE:root@pam:"));
        let renewed = auth.login("root@pam", None, &login.ticket).expect("renew");
        assert_ne!(renewed.ticket, login.ticket);
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("PVEAuthCookie={}", login.ticket).parse().unwrap(),
        );
        assert!(auth.authenticate(&headers, &Method::GET, true).is_ok());
        assert_eq!(
            auth.authenticate(&headers, &Method::POST, true),
            Err(AuthError::Csrf)
        );
        auth.expire_tickets();
        assert_eq!(
            auth.authenticate(&headers, &Method::GET, true),
            Err(AuthError::BadTicket)
        );
    }
}
