//! Tenants, users and API tokens: validation and the rules around them.
//! Called by the HTTP handlers and by `control-server admin`.

use crate::auth::secret;
use crate::auth::service::{issue_token, TokenKind};
use crate::auth::{AuthError, Role};
use crate::db::Db;
use crate::error::FieldErrors;
use crate::store::tenants::{self, TenantRow};
use crate::store::tokens::{self, TokenRow};
use crate::store::users::{self, NewUser, UserRow};
use crate::store::{now_ms, StoreError, TenantScope};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl From<AccountError> for crate::error::ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Invalid(f) => crate::error::ApiError::validation(f),
            AccountError::Store(s) => s.into(),
            AccountError::Auth(a) => a.into(),
        }
    }
}

fn invalid(field: &str, message: &str) -> AccountError {
    let mut f = FieldErrors::default();
    f.add(field, message);
    AccountError::Invalid(f)
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
    let valid = e.len() <= 254
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

pub async fn create_tenant(db: &Db, id: &str, name: &str) -> Result<TenantRow, AccountError> {
    let mut f = FieldErrors::default();
    if let Err(m) = validate_tenant_id(id) {
        f.add("id", m);
    }
    let name = name.trim();
    f.check(
        !name.is_empty() && name.len() <= 200,
        "name",
        "must be 1-200 characters",
    );
    if !f.0.is_empty() {
        return Err(AccountError::Invalid(f));
    }
    Ok(tenants::create(db.writer(), id, name).await?)
}

/// Create a tenant and, optionally, its first admin. The admin's input is
/// checked before anything is written, so a bad password creates nothing.
pub async fn create_tenant_with_admin(
    db: &Db,
    id: &str,
    name: &str,
    admin: Option<(&str, &str)>,
) -> Result<(TenantRow, Option<UserRow>), AccountError> {
    if let Some((email, password)) = admin {
        let mut f = FieldErrors::default();
        if let Err(m) = normalize_email(email) {
            f.add("admin.email", m);
        }
        if let Err(m) = secret::check_password_policy(password) {
            f.add("admin.password", m);
        }
        if !f.0.is_empty() {
            return Err(AccountError::Invalid(f));
        }
    }
    let tenant = create_tenant(db, id, name).await?;
    let user = match admin {
        Some((email, password)) => Some(
            create_user(
                db,
                CreateUser {
                    tenant_id: &tenant.id,
                    email,
                    role: "admin",
                    infra: false,
                    password,
                },
            )
            .await?,
        ),
        None => None,
    };
    Ok((tenant, user))
}

pub struct CreateUser<'a> {
    pub tenant_id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub infra: bool,
    pub password: &'a str,
}

pub async fn create_user(db: &Db, req: CreateUser<'_>) -> Result<UserRow, AccountError> {
    let mut f = FieldErrors::default();
    let email = match normalize_email(req.email) {
        Ok(e) => Some(e),
        Err(m) => {
            f.add("email", m);
            None
        }
    };
    if Role::parse_tenant_role(req.role).is_none() {
        f.add("role", "must be viewer, operator or admin");
    }
    if let Err(m) = secret::check_password_policy(req.password) {
        f.add("password", m);
    }
    let (Some(email), true) = (email, f.0.is_empty()) else {
        return Err(AccountError::Invalid(f));
    };
    if tenants::get(db.pool(), req.tenant_id).await?.is_none() {
        return Err(invalid("tenant", "no such tenant"));
    }
    let password = req.password.to_string();
    let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
        .map_err(AuthError::Internal)?;
    Ok(users::insert(
        db.writer(),
        NewUser {
            tenant_id: req.tenant_id,
            email: &email,
            role: req.role,
            platform_role: req.infra.then_some("infra"),
            password_hash: Some(&hash),
        },
    )
    .await?)
}

pub async fn set_role(
    db: &Db,
    scope: &TenantScope,
    user_id: &str,
    role: &str,
    infra: bool,
) -> Result<UserRow, AccountError> {
    if Role::parse_tenant_role(role).is_none() {
        return Err(invalid("role", "must be viewer, operator or admin"));
    }
    Ok(users::update_roles(db.writer(), scope, user_id, role, infra.then_some("infra")).await?)
}

/// Disable or enable a user; disabling revokes all their tokens at once.
pub async fn set_disabled(
    db: &Db,
    scope: &TenantScope,
    user_id: &str,
    disabled: bool,
) -> Result<UserRow, AccountError> {
    let user = users::set_disabled(db.writer(), scope, user_id, disabled).await?;
    if disabled {
        tokens::revoke_all_for_user(db.writer(), &user.id).await?;
    }
    Ok(user)
}

/// Replace a password; every existing token of the user is revoked.
pub async fn set_password(db: &Db, user: &UserRow, password: &str) -> Result<(), AccountError> {
    if let Err(m) = secret::check_password_policy(password) {
        return Err(invalid("password", m));
    }
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || secret::hash_password(&password))
        .await
        .map_err(|e| AuthError::Internal(e.to_string()))?
        .map_err(AuthError::Internal)?;
    users::set_password_hash(db.writer(), &user.id, &hash).await?;
    tokens::revoke_all_for_user(db.writer(), &user.id).await?;
    Ok(())
}

/// Largest API-token lifetime, in days.
pub const MAX_API_TOKEN_TTL_DAYS: u32 = 3650;
pub const DEFAULT_API_TOKEN_TTL_DAYS: u32 = 90;

/// Create a named API token; returns the plaintext once.
pub async fn create_api_token(
    db: &Db,
    user: &UserRow,
    name: &str,
    ttl_days: Option<u32>,
) -> Result<(String, TokenRow), AccountError> {
    let name = name.trim();
    let mut f = FieldErrors::default();
    f.check(
        !name.is_empty() && name.len() <= 100,
        "name",
        "must be 1-100 characters",
    );
    let ttl = ttl_days.unwrap_or(DEFAULT_API_TOKEN_TTL_DAYS);
    f.check(
        (1..=MAX_API_TOKEN_TTL_DAYS).contains(&ttl),
        "ttl_days",
        "must be between 1 and 3650",
    );
    if !f.0.is_empty() {
        return Err(AccountError::Invalid(f));
    }
    let expires_at = now_ms() + i64::from(ttl) * 86_400_000;
    Ok(issue_token(db, user, TokenKind::Api, Some(name), Some(expires_at), None).await?)
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
