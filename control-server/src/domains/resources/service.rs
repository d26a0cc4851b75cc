//! The rules of resources: viewers read, operators write, admins read a
//! proxy's password; bodies are validated per kind; patches merge
//! shallowly in one transaction; proxy passwords are sealed with the
//! server data key, bound to tenant and row.

use std::sync::Arc;

use serde_json::Value;

use super::store::{self, ResourceKind, PROXIES};
use super::ResourceError;
use crate::auth::{Identity, Role};
use crate::crypto::{Aad, DataKeys};
use crate::db::ids::ResourceId;
use crate::db::list::{ListParams, Page};
use crate::db::{new_id, now_ms, Db, TenantScope};
use crate::records::{self, Parsed};

pub struct ResourcesService {
    db: Db,
    keys: Arc<DataKeys>,
}

/// What `GET …/proxies/{id}/password` answers.
#[derive(Debug, serde::Serialize)]
pub struct ProxyPassword {
    pub id: ResourceId,
    /// `null` when the proxy has no password.
    pub password: Option<String>,
}

fn aad<'a>(scope: &'a TenantScope, id: &'a str) -> Aad<'a> {
    Aad {
        purpose: PROXIES.secret_purpose,
        tenant: scope.tenant(),
        id,
    }
}

impl ResourcesService {
    pub fn new(db: Db, keys: Arc<DataKeys>) -> ResourcesService {
        ResourcesService { db, keys }
    }

    fn seal(&self, scope: &TenantScope, id: &str, p: &Parsed) -> Option<Option<String>> {
        p.secret.as_ref().map(|s| {
            s.as_ref()
                .map(|pw| self.keys.seal(aad(scope, id), pw.as_bytes()))
        })
    }

    /// One page of a kind (viewer+).
    pub async fn list(
        &self,
        caller: &Identity,
        kind: ResourceKind,
        params: &ListParams,
    ) -> Result<Page<Value>, ResourceError> {
        let scope = caller.require(Role::Viewer)?;
        let spec = kind.spec();
        Ok(
            store::list(self.db.reader(), self.db.backend(), kind, &scope, params)
                .await?
                .map(|r| records::render(spec, &r)),
        )
    }

    /// One record (viewer+).
    pub async fn get(
        &self,
        caller: &Identity,
        kind: ResourceKind,
        id: &ResourceId,
    ) -> Result<Value, ResourceError> {
        let scope = caller.require(Role::Viewer)?;
        if !records::valid_id(id.as_str()) {
            return Err(ResourceError::NotFound);
        }
        let row = store::get(
            self.db.reader(),
            self.db.backend(),
            kind,
            &scope,
            id.as_str(),
        )
        .await?
        .ok_or(ResourceError::NotFound)?;
        Ok(records::render(kind.spec(), &row))
    }

    /// Create a record (operator+); the id is the client's or a new UUIDv7.
    pub async fn create(
        &self,
        caller: &Identity,
        kind: ResourceKind,
        body: Value,
    ) -> Result<Value, ResourceError> {
        let scope = caller.require(Role::Operator)?;
        let spec = kind.spec();
        let p = records::parse(spec, &body, true).map_err(ResourceError::Validation)?;
        let id = p.id.clone().unwrap_or_else(new_id);
        let sealed = self.seal(&scope, &id, &p).flatten();
        let mut tx = self.db.begin().await?;
        store::insert(&mut tx, kind, &scope, &id, &p, sealed, now_ms()).await?;
        let row = store::get(&mut tx, self.db.backend(), kind, &scope, &id)
            .await?
            .ok_or(ResourceError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Shallow merge (operator+): given typed fields replace theirs (null
    /// clears), given extras replace or add theirs, the rest stays.
    pub async fn update(
        &self,
        caller: &Identity,
        kind: ResourceKind,
        id: &ResourceId,
        body: Value,
    ) -> Result<Value, ResourceError> {
        let scope = caller.require(Role::Operator)?;
        let spec = kind.spec();
        let id = id.as_str();
        if !records::valid_id(id) {
            return Err(ResourceError::NotFound);
        }
        let p = records::parse(spec, &body, false).map_err(ResourceError::Validation)?;
        let backend = self.db.backend();
        let mut tx = self.db.begin().await?;
        if !store::lock(&mut tx, kind, &scope, id).await? {
            return Err(ResourceError::NotFound);
        }
        let current = store::get(&mut tx, backend, kind, &scope, id)
            .await?
            .ok_or(ResourceError::NotFound)?;
        let mut extras = current
            .text("extras")
            .and_then(|t| serde_json::from_str::<serde_json::Map<String, Value>>(t).ok())
            .unwrap_or_default();
        extras.extend(p.extras.clone());
        let sealed = self.seal(&scope, id, &p);
        store::update(&mut tx, kind, &scope, id, &p, &extras, sealed, now_ms()).await?;
        let row = store::get(&mut tx, backend, kind, &scope, id)
            .await?
            .ok_or(ResourceError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Delete a record (operator+).
    pub async fn delete(
        &self,
        caller: &Identity,
        kind: ResourceKind,
        id: &ResourceId,
    ) -> Result<(), ResourceError> {
        let scope = caller.require(Role::Operator)?;
        if !records::valid_id(id.as_str())
            || !store::delete(self.db.writer(), kind, &scope, id.as_str()).await?
        {
            return Err(ResourceError::NotFound);
        }
        Ok(())
    }

    /// A proxy's password in clear (admin only).
    pub async fn proxy_password(
        &self,
        caller: &Identity,
        id: &ResourceId,
    ) -> Result<ProxyPassword, ResourceError> {
        let scope = caller.require(Role::Admin)?;
        if !records::valid_id(id.as_str()) {
            return Err(ResourceError::NotFound);
        }
        let sealed = store::sealed_password(self.db.reader(), &scope, id.as_str())
            .await?
            .ok_or(ResourceError::NotFound)?;
        let password = match sealed {
            None => None,
            Some(s) => {
                let clear = self
                    .keys
                    .open(aad(&scope, id.as_str()), &s)
                    .map_err(|e| ResourceError::SecretUnreadable(e.to_string()))?;
                Some(
                    String::from_utf8(clear)
                        .map_err(|e| ResourceError::SecretUnreadable(e.to_string()))?,
                )
            }
        };
        Ok(ProxyPassword {
            id: id.clone(),
            password,
        })
    }
}
