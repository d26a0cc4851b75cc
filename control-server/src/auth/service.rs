//! Sign-in, token verification and sign-out: the auth domain logic the HTTP
//! handlers and the admin CLI call.

use std::time::Duration;

use super::jwt::JwtVerifier;
use super::secret::{self, API_TOKEN_PREFIX, SESSION_PREFIX};
use super::throttle::LoginThrottle;
use super::{AuthError, Identity, IdentitySource, Role};
use crate::config::Config;
use crate::db::Db;
use crate::store::tokens::{self, NewToken, TokenRow};
use crate::store::users::{self, UserRow};
use crate::store::{now_ms, tenants, TenantScope};

pub struct LoginOutcome {
    pub token: String,
    pub expires_at: i64,
    pub identity: Identity,
}

pub struct AuthService {
    db: Db,
    jwt: Option<JwtVerifier>,
    throttle: LoginThrottle,
    session_ttl: Duration,
    /// Verified against when the e-mail is unknown, so timing does not tell
    /// whether an account exists.
    dummy_hash: String,
}

impl AuthService {
    pub fn new(db: Db, cfg: &Config) -> Result<Self, AuthError> {
        Ok(Self {
            db,
            jwt: cfg.jwt.clone().map(JwtVerifier::new),
            throttle: LoginThrottle::default(),
            session_ttl: Duration::from_secs(cfg.session_ttl_hours * 3600),
            dummy_hash: secret::hash_password(&secret::generate_password())
                .map_err(AuthError::Internal)?,
        })
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<LoginOutcome, AuthError> {
        let email = email.trim().to_ascii_lowercase();
        if let Err(retry_after_s) = self.throttle.check(&email, client_ip) {
            return Err(AuthError::Throttled { retry_after_s });
        }
        let pool = self.db.pool();
        let user = users::find_by_email(pool, &email).await?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_string();
        let password_ok =
            tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))?;
        let user = match user {
            Some(u) if password_ok && u.password_hash.is_some() && u.disabled_at.is_none() => u,
            _ => {
                self.throttle.record_failure(&email, client_ip);
                tracing::info!(email = %email, ip = %client_ip, "sign-in failed");
                return Err(AuthError::InvalidCredentials);
            }
        };
        if let Some(t) = tenants::get(pool, &user.tenant_id).await? {
            if t.disabled_at.is_some() {
                return Err(AuthError::InvalidCredentials);
            }
        }
        self.throttle.record_success(&email);
        let expires_at = now_ms() + self.session_ttl.as_millis() as i64;
        let (token, row) = issue_token(
            &self.db,
            &user,
            TokenKind::Session,
            None,
            Some(expires_at),
            Some(client_ip),
        )
        .await?;
        users::touch_login(self.db.writer(), &user.id).await?;
        tracing::info!(user_id = %user.id, tenant = %user.tenant_id, "signed in");
        Ok(LoginOutcome {
            token,
            expires_at,
            identity: identity_from(&user, &row),
        })
    }

    /// Verify any bearer token this server accepts.
    pub async fn verify_bearer(&self, token: &str) -> Result<Identity, AuthError> {
        if token.starts_with(botmox_protocol::AGENT_TOKEN_PREFIX) {
            return Err(AuthError::AgentToken);
        }
        if token.starts_with(SESSION_PREFIX) || token.starts_with(API_TOKEN_PREFIX) {
            let now = now_ms();
            let pool = self.db.pool();
            let (row, user) = tokens::find_active(pool, &secret::hash_token(token), now)
                .await?
                .ok_or(AuthError::InvalidToken)?;
            if let Err(e) = tokens::touch(self.db.writer(), &row.id, now).await {
                tracing::warn!(error = %e, "could not record token use");
            }
            return Ok(identity_from(&user, &row));
        }
        if let Some(jwt) = &self.jwt {
            if JwtVerifier::looks_like_jwt(token) {
                let claims = jwt.verify(token).await.map_err(|e| {
                    tracing::info!(reason = %e, "external JWT refused");
                    AuthError::InvalidToken
                })?;
                match tenants::get(self.db.pool(), &claims.tenant_id).await? {
                    Some(t) if t.disabled_at.is_none() => {}
                    _ => {
                        tracing::info!(tenant = %claims.tenant_id, "external JWT names an unknown or disabled tenant");
                        return Err(AuthError::InvalidToken);
                    }
                }
                return Ok(Identity {
                    source: IdentitySource::ExternalJwt,
                    user_id: claims.subject,
                    email: claims.email,
                    tenant_id: claims.tenant_id,
                    role: claims.role,
                    infra: claims.infra,
                    token_id: None,
                });
            }
        }
        Err(AuthError::InvalidToken)
    }

    /// Revoke the token behind this identity (effective immediately).
    pub async fn logout(&self, identity: &Identity) -> Result<bool, AuthError> {
        match &identity.token_id {
            Some(id) => Ok(tokens::revoke(self.db.writer(), &identity.scope(), id).await?),
            None => Ok(false),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Api,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Session => "session",
            TokenKind::Api => "api",
        }
    }
}

/// Mint a token for a user and store its hash. The plaintext is returned
/// once and never stored or logged.
pub async fn issue_token(
    db: &Db,
    user: &UserRow,
    kind: TokenKind,
    name: Option<&str>,
    expires_at: Option<i64>,
    created_ip: Option<&str>,
) -> Result<(String, TokenRow), AuthError> {
    let prefix = match kind {
        TokenKind::Session => SESSION_PREFIX,
        TokenKind::Api => API_TOKEN_PREFIX,
    };
    let token = secret::generate_token(prefix);
    let row = tokens::insert(
        db.writer(),
        NewToken {
            tenant_id: &user.tenant_id,
            user_id: &user.id,
            kind: kind.as_str(),
            name,
            token_hash: &secret::hash_token(&token),
            token_hint: &secret::token_hint(&token),
            expires_at,
            created_ip,
        },
    )
    .await?;
    Ok((token, row))
}

fn identity_from(user: &UserRow, token: &TokenRow) -> Identity {
    Identity {
        source: if token.kind == TokenKind::Session.as_str() {
            IdentitySource::Session
        } else {
            IdentitySource::ApiToken
        },
        user_id: user.id.clone(),
        email: user.email.clone(),
        tenant_id: user.tenant_id.clone(),
        role: Role::parse_tenant_role(&user.role).unwrap_or(Role::Viewer),
        infra: user.platform_role.as_deref() == Some("infra"),
        token_id: Some(token.id.clone()),
    }
}

/// Scope for CLI operations on a user found by e-mail.
pub fn scope_of(user: &UserRow) -> TenantScope {
    TenantScope::new(user.tenant_id.clone())
}
