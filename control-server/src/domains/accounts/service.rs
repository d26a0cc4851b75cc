//! The rules of accounts: tenants, users, sessions and API tokens. Called by
//! the HTTP handlers (with the caller's [`Identity`]) and by
//! `control-server admin` and the first-start bootstrap (trusted callers).

use std::time::Duration;

use super::store::{self, NewToken, NewUser};
pub use super::store::{TenantRow, TokenKind, TokenRow, UserRow, USER_LIST};
use super::AccountError;
use crate::auth::jwt::JwtVerifier;
use crate::auth::secret::{self, API_TOKEN_PREFIX, SESSION_PREFIX};
use crate::auth::throttle::LoginThrottle;
use crate::auth::{AuthError, Identity, IdentitySource, Role};
use crate::config::Config;
use crate::db::ids::{TenantId, TokenId, UserId};
use crate::db::list::{ListParams, Page};
use crate::db::{now_ms, Db, StoreError, TenantScope, Write};
use crate::validate::FieldErrors;

/// Largest API-token lifetime, in days.
pub const MAX_API_TOKEN_TTL_DAYS: u32 = 3650;
pub const DEFAULT_API_TOKEN_TTL_DAYS: u32 = 90;

pub struct LoginOutcome {
    pub token: String,
    pub expires_at: i64,
    pub identity: Identity,
}

pub struct AccountsService {
    db: Db,
    jwt: Option<JwtVerifier>,
    throttle: LoginThrottle,
    session_ttl: Duration,
    /// Verified against when the e-mail is unknown, so timing does not tell
    /// whether an account exists.
    dummy_hash: String,
}

/// A new user's input.
pub struct CreateUser<'a> {
    pub tenant_id: &'a TenantId,
    pub email: &'a str,
    pub role: &'a str,
    pub infra: bool,
    pub password: &'a str,
}

/// A tenant's optional first admin.
pub struct FirstAdmin<'a> {
    pub email: &'a str,
    pub password: &'a str,
}

/// What an admin may change on a user.
#[derive(Debug, Default)]
pub struct UserChange {
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

fn invalid(field: &str, message: &str) -> AccountError {
    AccountError::Invalid(FieldErrors::one(field, message))
}

/// Tenant ids are slugs: lowercase letters, digits and `-`, 1..63 chars.
pub fn validate_tenant_id(id: &str) -> Result<(), &'static str> {
    let ok = !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err("must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'")
    }
}

/// Normalise an e-mail (trim, lowercase) and check its basic shape.
pub fn normalize_email(email: &str) -> Result<String, &'static str> {
    let e = email.trim().to_ascii_lowercase();
    let valid = e.chars().count() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.starts_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.matches('@').count() == 1;
    if valid {
        Ok(e)
    } else {
        Err("must be an e-mail address like name@example.com")
    }
}

async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| AccountError::Internal(e.to_string()))?
        .map_err(AccountError::Internal)
}

fn identity_from(user: &UserRow, token: &TokenRow) -> Identity {
    Identity {
        source: match token.kind {
            TokenKind::Session => IdentitySource::Session,
            TokenKind::Api => IdentitySource::ApiToken,
        },
        user_id: user.id.clone(),
        email: user.email.clone(),
        tenant_id: user.tenant_id.clone(),
        role: user.role,
        infra: user.is_infra(),
        token_id: Some(token.id.clone()),
    }
}

fn require_local_user(identity: &Identity) -> Result<(), AccountError> {
    if identity.source == IdentitySource::ExternalJwt {
        return Err(AccountError::LocalUsersOnly);
    }
    Ok(())
}

/// Mint a token for a user and store its hash. The plaintext is returned
/// once and never stored or logged.
async fn issue_token(
    w: impl Write,
    user: &UserRow,
    kind: TokenKind,
    name: Option<&str>,
    expires_at: Option<i64>,
    created_ip: Option<&str>,
) -> Result<(String, TokenRow), AccountError> {
    let prefix = match kind {
        TokenKind::Session => SESSION_PREFIX,
        TokenKind::Api => API_TOKEN_PREFIX,
    };
    let token = secret::generate_token(prefix);
    let row = store::insert_token(
        w,
        NewToken {
            tenant_id: &user.tenant_id,
            user_id: &user.id,
            kind,
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

impl AccountsService {
    pub fn new(db: Db, cfg: &Config) -> Result<Self, AccountError> {
        Ok(Self {
            db,
            jwt: cfg.jwt.clone().map(JwtVerifier::new),
            throttle: LoginThrottle::default(),
            session_ttl: Duration::from_secs(cfg.session_ttl_hours * 3600),
            dummy_hash: secret::hash_password(&secret::generate_password())
                .map_err(AccountError::Internal)?,
        })
    }

    // ---- sessions ----

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: &str,
    ) -> Result<LoginOutcome, AccountError> {
        let email = email.trim().to_ascii_lowercase();
        if email.chars().count() > 254 || email.chars().any(char::is_control) {
            // Not an address any account can have; no lookup needed.
            tracing::info!(email = %email.escape_debug(), ip = %client_ip, "sign-in failed");
            return Err(AccountError::InvalidCredentials);
        }
        if let Err(retry_after_s) = self.throttle.check(&email, client_ip) {
            return Err(AccountError::Throttled { retry_after_s });
        }
        let reader = self.db.reader();
        let user = store::find_user_by_email(reader, &email).await?;
        let hash = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        let password = password.to_string();
        let password_ok =
            tokio::task::spawn_blocking(move || secret::verify_password(&password, &hash))
                .await
                .map_err(|e| AccountError::Internal(e.to_string()))?;
        let user = match user {
            Some(u) if password_ok && u.password_hash.is_some() && u.disabled_at.is_none() => u,
            _ => {
                self.throttle.record_failure(&email, client_ip);
                tracing::info!(email = %email.escape_debug(), ip = %client_ip, "sign-in failed");
                return Err(AccountError::InvalidCredentials);
            }
        };
        if let Some(t) = store::get_tenant(reader, &user.tenant_id).await? {
            if t.disabled_at.is_some() {
                return Err(AccountError::InvalidCredentials);
            }
        }
        self.throttle.record_success(&email);
        let expires_at = now_ms() + self.session_ttl.as_millis() as i64;
        let mut tx = self.db.begin().await?;
        let (token, row) = issue_token(
            &mut tx,
            &user,
            TokenKind::Session,
            None,
            Some(expires_at),
            Some(client_ip),
        )
        .await?;
        store::touch_login(&mut tx, &user.id).await?;
        tx.commit().await?;
        tracing::info!(user_id = %user.id, tenant = %user.tenant_id, "signed in");
        Ok(LoginOutcome {
            token,
            expires_at,
            identity: identity_from(&user, &row),
        })
    }

    /// Verify any user bearer token this server accepts.
    pub async fn verify_bearer(&self, token: &str) -> Result<Identity, AccountError> {
        if token.starts_with(botmox_protocol::AGENT_TOKEN_PREFIX) {
            return Err(AuthError::AgentToken.into());
        }
        if token.starts_with(SESSION_PREFIX) || token.starts_with(API_TOKEN_PREFIX) {
            let now = now_ms();
            let (row, user) =
                store::find_active_token(self.db.reader(), &secret::hash_token(token), now)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
            if let Err(e) = store::touch_token(self.db.writer(), &row.id, now).await {
                tracing::warn!(error = %e, "could not record token use");
            }
            return Ok(identity_from(&user, &row));
        }
        if let Some(jwt) = &self.jwt {
            if JwtVerifier::looks_like_jwt(token) {
                let claims = jwt.verify(token).await.map_err(|e| {
                    tracing::info!(reason = %e.to_string().escape_debug(), "external JWT refused");
                    AuthError::InvalidToken
                })?;
                let tenant_id = TenantId::from(claims.tenant_id);
                match store::get_tenant(self.db.reader(), &tenant_id).await? {
                    Some(t) if t.disabled_at.is_none() => {}
                    _ => {
                        tracing::info!(tenant = %tenant_id.as_str().escape_debug(), "external JWT names an unknown or disabled tenant");
                        return Err(AuthError::InvalidToken.into());
                    }
                }
                return Ok(Identity {
                    source: IdentitySource::ExternalJwt,
                    user_id: UserId::from(claims.subject),
                    email: claims.email,
                    tenant_id,
                    role: claims.role,
                    infra: claims.infra,
                    token_id: None,
                });
            }
        }
        Err(AuthError::InvalidToken.into())
    }

    /// Revoke the token behind this identity (effective immediately).
    /// `Ok(false)` when it was already revoked.
    pub async fn logout(&self, identity: &Identity) -> Result<bool, AccountError> {
        if identity.source == IdentitySource::ExternalJwt {
            return Err(AccountError::NotRevocable);
        }
        match &identity.token_id {
            Some(id) => Ok(store::revoke_token(self.db.writer(), &identity.scope(), id)
                .await?
                .is_some()),
            None => Ok(false),
        }
    }

    // ---- tenants ----

    pub async fn list_tenants(&self, caller: &Identity) -> Result<Vec<TenantRow>, AccountError> {
        caller.require(Role::Infra)?;
        Ok(store::list_tenants(self.db.reader()).await?)
    }

    fn check_tenant(id: &str, name: &str, f: &mut FieldErrors) {
        if let Err(m) = validate_tenant_id(id) {
            f.add("id", m);
        }
        let name = name.trim();
        if name.is_empty() {
            f.add("name", "must be 1-200 characters");
        } else {
            f.display_text("name", name, 200);
        }
    }

    /// Create a tenant (admin CLI).
    pub async fn create_tenant(&self, id: &str, name: &str) -> Result<TenantRow, AccountError> {
        let (tenant, _) = self.create_tenant_with_admin(id, name, None).await?;
        Ok(tenant)
    }

    /// Create a tenant and, optionally, its first admin, in one transaction:
    /// if the admin cannot be created (bad input, e-mail taken), the tenant
    /// is not created either.
    pub async fn create_tenant_with_admin(
        &self,
        id: &str,
        name: &str,
        admin: Option<FirstAdmin<'_>>,
    ) -> Result<(TenantRow, Option<UserRow>), AccountError> {
        let mut f = FieldErrors::default();
        Self::check_tenant(id, name, &mut f);
        let mut admin_input = None;
        if let Some(a) = &admin {
            match normalize_email(a.email) {
                Ok(e) => admin_input = Some(e),
                Err(m) => f.add("admin.email", m),
            }
            if let Err(m) = secret::check_password_policy(a.password) {
                f.add("admin.password", m);
            }
        }
        f.into_fields().map_err(AccountError::Invalid)?;
        let hash = match &admin {
            Some(a) => Some(hash_password(a.password).await?),
            None => None,
        };
        let tenant_id = TenantId::from(id);
        let mut tx = self.db.begin().await?;
        let tenant = store::insert_tenant(&mut tx, &tenant_id, name.trim()).await?;
        let user = match (admin_input, hash) {
            (Some(email), Some(hash)) => Some(
                store::insert_user(
                    &mut tx,
                    NewUser {
                        tenant_id: &tenant.id,
                        email: &email,
                        role: Role::Admin,
                        infra: false,
                        password_hash: Some(&hash),
                    },
                )
                .await?,
            ),
            _ => None,
        };
        tx.commit().await?;
        Ok((tenant, user))
    }

    /// First start: tenant `tenant_id` (if missing) and an infra admin, in
    /// one transaction. `Ok(None)` when another process created the admin.
    pub async fn create_initial_admin(
        &self,
        tenant_id: &TenantId,
        tenant_name: &str,
        email: &str,
        password: &str,
    ) -> Result<Option<UserRow>, AccountError> {
        let hash = hash_password(password).await?;
        let mut tx = self.db.begin().await?;
        if store::get_tenant(&mut tx, tenant_id).await?.is_none() {
            store::insert_tenant(&mut tx, tenant_id, tenant_name).await?;
        }
        let user = store::insert_user(
            &mut tx,
            NewUser {
                tenant_id,
                email,
                role: Role::Admin,
                infra: true,
                password_hash: Some(&hash),
            },
        )
        .await;
        match user {
            Ok(u) => {
                tx.commit().await?;
                Ok(Some(u))
            }
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_count(&self) -> Result<i64, AccountError> {
        Ok(store::count_users(self.db.reader()).await?)
    }

    // ---- users ----

    pub async fn create_user(&self, req: CreateUser<'_>) -> Result<UserRow, AccountError> {
        let mut f = FieldErrors::default();
        let email = match normalize_email(req.email) {
            Ok(e) => Some(e),
            Err(m) => {
                f.add("email", m);
                None
            }
        };
        let role = Role::parse_tenant_role(req.role);
        if role.is_none() {
            f.add("role", "must be viewer, operator or admin");
        }
        if let Err(m) = secret::check_password_policy(req.password) {
            f.add("password", m);
        }
        let (Some(email), Some(role), true) = (email, role, f.is_empty()) else {
            return Err(AccountError::Invalid(f));
        };
        if store::get_tenant(self.db.reader(), req.tenant_id)
            .await?
            .is_none()
        {
            return Err(invalid("tenant", "no such tenant"));
        }
        let hash = hash_password(req.password).await?;
        Ok(store::insert_user(
            self.db.writer(),
            NewUser {
                tenant_id: req.tenant_id,
                email: &email,
                role,
                infra: req.infra,
                password_hash: Some(&hash),
            },
        )
        .await?)
    }

    /// An admin adds a user to their tenant.
    pub async fn add_user(
        &self,
        caller: &Identity,
        email: &str,
        role: &str,
        password: &str,
    ) -> Result<UserRow, AccountError> {
        let scope = caller.require(Role::Admin)?;
        self.create_user(CreateUser {
            tenant_id: scope.tenant_id(),
            email,
            role,
            infra: false,
            password,
        })
        .await
    }

    pub async fn list_users(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<UserRow>, AccountError> {
        let scope = caller.require(Role::Admin)?;
        Ok(store::list_users(self.db.reader(), self.db.backend(), &scope, params).await?)
    }

    /// Whether a user exists in a tenant (for other domains' rules).
    pub async fn user_exists(&self, scope: &TenantScope, id: &UserId) -> Result<bool, StoreError> {
        Ok(store::get_user(self.db.reader(), scope, id)
            .await?
            .is_some())
    }

    /// The identity of a user for work the server does on their behalf
    /// (VM creation jobs): their current role, so a demotion or a disabled
    /// account takes effect on the next step. `None` when the user is gone
    /// or disabled.
    pub async fn acting_as(
        &self,
        scope: &TenantScope,
        id: &UserId,
    ) -> Result<Option<Identity>, StoreError> {
        let Some(u) = store::get_user(self.db.reader(), scope, id).await? else {
            return Ok(None);
        };
        if u.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Identity {
            source: IdentitySource::ApiToken,
            infra: u.is_infra(),
            user_id: u.id,
            email: u.email,
            tenant_id: u.tenant_id,
            role: u.role,
            token_id: None,
        }))
    }

    pub async fn get_user(&self, caller: &Identity, id: &UserId) -> Result<UserRow, AccountError> {
        let scope = caller.require(Role::Admin)?;
        store::get_user(self.db.reader(), &scope, id)
            .await?
            .ok_or(AccountError::UserNotFound)
    }

    /// Change a user's role and/or disable them. An admin cannot lock
    /// themselves out; disabling revokes the user's tokens in the same
    /// transaction.
    pub async fn update_user(
        &self,
        caller: &Identity,
        id: &UserId,
        change: UserChange,
    ) -> Result<UserRow, AccountError> {
        let scope = caller.require(Role::Admin)?;
        let role = match &change.role {
            Some(r) => Some(
                Role::parse_tenant_role(r)
                    .ok_or_else(|| invalid("role", "must be viewer, operator or admin"))?,
            ),
            None => None,
        };
        let current = store::get_user(self.db.reader(), &scope, id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        if *id == caller.user_id
            && (change.disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
        {
            return Err(AccountError::SelfLockout);
        }
        // Platform operators are managed by platform operators only.
        if current.is_infra() && !caller.infra {
            return Err(AuthError::Forbidden(Role::Infra.as_str()).into());
        }
        let mut tx = self.db.begin().await?;
        let mut row = current;
        if let Some(role) = role {
            row = store::update_roles(&mut tx, &scope, id, role, row.is_infra()).await?;
        }
        if let Some(disabled) = change.disabled {
            row = store::set_user_disabled(&mut tx, &scope, id, disabled).await?;
            if disabled {
                store::revoke_all_tokens_of(&mut tx, id).await?;
            }
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Set a user's role and platform flag (admin CLI).
    pub async fn set_role(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        role: &str,
        infra: bool,
    ) -> Result<UserRow, AccountError> {
        let role = Role::parse_tenant_role(role)
            .ok_or_else(|| invalid("role", "must be viewer, operator or admin"))?;
        Ok(store::update_roles(self.db.writer(), scope, user_id, role, infra).await?)
    }

    /// Disable or enable a user (admin CLI); disabling revokes all their
    /// tokens in the same transaction.
    pub async fn set_disabled(
        &self,
        scope: &TenantScope,
        user_id: &UserId,
        disabled: bool,
    ) -> Result<UserRow, AccountError> {
        let mut tx = self.db.begin().await?;
        let user = store::set_user_disabled(&mut tx, scope, user_id, disabled).await?;
        if disabled {
            store::revoke_all_tokens_of(&mut tx, &user.id).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// Replace a password; every existing token of the user is revoked in
    /// the same transaction.
    pub async fn set_password(&self, user: &UserRow, password: &str) -> Result<(), AccountError> {
        if let Err(m) = secret::check_password_policy(password) {
            return Err(invalid("password", m));
        }
        let hash = hash_password(password).await?;
        let mut tx = self.db.begin().await?;
        store::set_password_hash(&mut tx, &user.id, &hash).await?;
        store::revoke_all_tokens_of(&mut tx, &user.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Server-wide lookup by e-mail (admin CLI).
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<UserRow>, AccountError> {
        let email = normalize_email(email).map_err(|m| invalid("email", m))?;
        Ok(store::find_user_by_email(self.db.reader(), &email).await?)
    }

    /// Every user, optionally of one tenant (admin CLI).
    pub async fn list_all_users(
        &self,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<UserRow>, AccountError> {
        Ok(store::list_all_users(self.db.reader(), tenant).await?)
    }

    /// Every tenant (admin CLI).
    pub async fn all_tenants(&self) -> Result<Vec<TenantRow>, AccountError> {
        Ok(store::list_tenants(self.db.reader()).await?)
    }

    // ---- API tokens ----

    /// Create a named API token for a user; returns the plaintext once.
    pub async fn issue_api_token(
        &self,
        user: &UserRow,
        name: &str,
        ttl_days: Option<u32>,
    ) -> Result<(String, TokenRow), AccountError> {
        let name = name.trim();
        let mut f = FieldErrors::default();
        if name.is_empty() {
            f.add("name", "must be 1-100 characters");
        } else {
            f.display_text("name", name, 100);
        }
        let ttl = ttl_days.unwrap_or(DEFAULT_API_TOKEN_TTL_DAYS);
        f.check(
            (1..=MAX_API_TOKEN_TTL_DAYS).contains(&ttl),
            "ttl_days",
            "must be between 1 and 3650",
        );
        f.into_fields().map_err(AccountError::Invalid)?;
        let expires_at = now_ms() + i64::from(ttl) * 86_400_000;
        issue_token(
            self.db.writer(),
            user,
            TokenKind::Api,
            Some(name),
            Some(expires_at),
            None,
        )
        .await
    }

    /// The caller creates an API token for themselves (operator or higher).
    pub async fn create_api_token(
        &self,
        caller: &Identity,
        name: &str,
        ttl_days: Option<u32>,
    ) -> Result<(String, TokenRow), AccountError> {
        let scope = caller.require(Role::Operator)?;
        require_local_user(caller)?;
        let user = store::get_user(self.db.reader(), &scope, &caller.user_id)
            .await?
            .ok_or(AccountError::UserNotFound)?;
        self.issue_api_token(&user, name, ttl_days).await
    }

    /// The caller's API tokens, newest first.
    pub async fn list_api_tokens(&self, caller: &Identity) -> Result<Vec<TokenRow>, AccountError> {
        require_local_user(caller)?;
        Ok(store::list_tokens_of(
            self.db.reader(),
            &caller.scope(),
            &caller.user_id,
            TokenKind::Api,
        )
        .await?)
    }

    /// A user's API tokens (admin CLI).
    pub async fn api_tokens_of(&self, user: &UserRow) -> Result<Vec<TokenRow>, AccountError> {
        let scope = TenantScope::new(user.tenant_id.clone());
        Ok(store::list_tokens_of(self.db.reader(), &scope, &user.id, TokenKind::Api).await?)
    }

    /// Revoke one of the caller's API tokens (admins: any API token of the
    /// tenant). Others' tokens and sessions are "not found".
    pub async fn revoke_api_token(
        &self,
        caller: &Identity,
        id: &TokenId,
    ) -> Result<TokenRow, AccountError> {
        let scope = caller.scope();
        let row = store::get_token(self.db.reader(), &scope, id)
            .await?
            .ok_or(AccountError::TokenNotFound)?;
        if row.kind != TokenKind::Api || (row.user_id != caller.user_id && !caller.has(Role::Admin))
        {
            return Err(AccountError::TokenNotFound);
        }
        store::revoke_token(self.db.writer(), &scope, id)
            .await?
            .ok_or(AccountError::AlreadyRevoked)
    }

    /// Revoke an API token by id, whatever its tenant (admin CLI).
    /// `Ok(false)` when it was already revoked.
    pub async fn revoke_api_token_anywhere(&self, id: &TokenId) -> Result<bool, AccountError> {
        let tenant = store::tenant_of_api_token(self.db.reader(), id)
            .await?
            .ok_or(AccountError::TokenNotFound)?;
        Ok(
            store::revoke_token(self.db.writer(), &TenantScope::new(tenant), id)
                .await?
                .is_some(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids() {
        assert!(validate_tenant_id("default").is_ok());
        assert!(validate_tenant_id("acme-2").is_ok());
        for bad in ["", "-a", "a-", "Acme", "a_b", "a b", &"x".repeat(64)] {
            assert!(validate_tenant_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(normalize_email(" A@Example.COM ").unwrap(), "a@example.com");
        assert_eq!(
            normalize_email("admin@localhost").unwrap(),
            "admin@localhost"
        );
        for bad in ["", "a", "@x", "a@", "a@@b", "a b@c", "a@.c"] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
