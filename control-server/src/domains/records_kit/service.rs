//! The rules of typed records, for every domain of the kit: viewers read,
//! operators write, admins read a secret; bodies are validated per kind;
//! patches merge shallowly in one transaction; secrets are sealed with the
//! server data key, bound to the kind's purpose, the tenant and the row.

use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{RecordError, RecordsDomain};
use crate::auth::{Identity, Role};
use crate::crypto::{Aad, DataKeys};
use crate::db::list::{ListParams, Page};
use crate::db::{new_id, now_ms, Db, TenantScope};
use crate::records::{self, KindSpec, Parsed};
use crate::validate::FieldErrors;

/// The service of one domain's records (`RecordsService<Resources>`).
pub struct RecordsService<D> {
    db: Db,
    /// Seals and opens secrets; `None` for a domain without secret fields.
    keys: Option<Arc<DataKeys>>,
    domain: PhantomData<fn() -> D>,
}

fn aad<'a>(spec: &'static KindSpec, scope: &'a TenantScope, id: &'a str) -> Aad<'a> {
    Aad {
        purpose: spec.secret_purpose,
        tenant: scope.tenant(),
        id,
    }
}

/// A lookup id a client could have chosen (any other is simply absent).
fn lookup(id: &impl AsRef<str>) -> Result<&str, RecordError> {
    let id = id.as_ref();
    if records::valid_id(id) {
        Ok(id)
    } else {
        Err(RecordError::NotFound)
    }
}

impl<D: RecordsDomain> RecordsService<D> {
    pub fn with_keys(db: Db, keys: Option<Arc<DataKeys>>) -> RecordsService<D> {
        RecordsService {
            db,
            keys,
            domain: PhantomData,
        }
    }

    fn keys(&self, spec: &'static KindSpec) -> Result<&DataKeys, RecordError> {
        self.keys
            .as_deref()
            .ok_or_else(|| RecordError::SecretUnreadable {
                kind: spec.kind,
                cause: "this domain has no data key".into(),
            })
    }

    /// The secret of a body, sealed: `Some(Some(_))` set, `Some(None)`
    /// clear, `None` not given.
    fn seal(
        &self,
        spec: &'static KindSpec,
        scope: &TenantScope,
        id: &str,
        p: &Parsed,
    ) -> Result<Option<Option<String>>, RecordError> {
        Ok(match &p.secret {
            None => None,
            Some(None) => Some(None),
            Some(Some(clear)) => Some(Some(
                self.keys(spec)?
                    .seal(aad(spec, scope, id), clear.as_bytes()),
            )),
        })
    }

    /// One page of a kind (viewer+).
    pub async fn list(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        params: &ListParams,
    ) -> Result<Page<Value>, RecordError> {
        let scope = caller.require(Role::Viewer)?;
        let backend = self.db.backend();
        Ok(
            records::list(self.db.reader(), backend, spec, &scope, params)
                .await?
                .map(|r| records::render(spec, &r)),
        )
    }

    /// One record (viewer+).
    pub async fn get(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        id: &D::Id,
    ) -> Result<Value, RecordError> {
        let scope = caller.require(Role::Viewer)?;
        let id = lookup(id)?;
        let row = records::get(self.db.reader(), self.db.backend(), spec, &scope, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        Ok(records::render(spec, &row))
    }

    /// Create a record (operator+); the id is the client's or a new UUIDv7.
    pub async fn create(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        body: Value,
    ) -> Result<Value, RecordError> {
        let scope = caller.require(Role::Operator)?;
        let p = records::parse(spec, &body, true).map_err(RecordError::Validation)?;
        let id = p.id.clone().unwrap_or_else(new_id);
        let sealed = self.seal(spec, &scope, &id, &p)?.flatten();
        let mut tx = self.db.begin().await?;
        records::insert(&mut tx, spec, &scope, &id, &p, sealed, now_ms()).await?;
        let row = records::get(&mut tx, self.db.backend(), spec, &scope, &id)
            .await?
            .ok_or(RecordError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Shallow merge (operator+): given typed fields replace theirs (null
    /// clears), given extras replace or add theirs, the rest stays.
    pub async fn update(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        id: &D::Id,
        body: Value,
    ) -> Result<Value, RecordError> {
        let scope = caller.require(Role::Operator)?;
        let id = lookup(id)?;
        let p = records::parse(spec, &body, false).map_err(RecordError::Validation)?;
        let backend = self.db.backend();
        let mut tx = self.db.begin().await?;
        if !records::lock(&mut tx, spec, &scope, id).await? {
            return Err(RecordError::NotFound);
        }
        let current = records::get(&mut tx, backend, spec, &scope, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        let mut extras = current
            .text("extras")
            .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
            .unwrap_or_default();
        extras.extend(p.extras.clone());
        let mut f = FieldErrors::default();
        records::check_extras(&mut f, &extras);
        f.into_fields().map_err(RecordError::Validation)?;
        let sealed = self.seal(spec, &scope, id, &p)?;
        records::update(&mut tx, spec, &scope, id, &p, &extras, sealed, now_ms()).await?;
        let row = records::get(&mut tx, backend, spec, &scope, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Delete a record (operator+).
    pub async fn delete(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        id: &D::Id,
    ) -> Result<(), RecordError> {
        let scope = caller.require(Role::Operator)?;
        let id = lookup(id)?;
        if !records::delete(self.db.writer(), spec, &scope, id).await? {
            return Err(RecordError::NotFound);
        }
        Ok(())
    }

    /// A record's secret in clear (admin only); `None` when it has none.
    pub async fn secret(
        &self,
        caller: &Identity,
        spec: &'static KindSpec,
        id: &D::Id,
    ) -> Result<Option<String>, RecordError> {
        let scope = caller.require(Role::Admin)?;
        let id = lookup(id)?;
        let sealed = records::sealed_secret(self.db.reader(), spec, &scope, id)
            .await?
            .ok_or(RecordError::NotFound)?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let unreadable = |cause: String| RecordError::SecretUnreadable {
            kind: spec.kind,
            cause,
        };
        let clear = self
            .keys(spec)?
            .open(aad(spec, &scope, id), &sealed)
            .map_err(|e| unreadable(e.to_string()))?;
        String::from_utf8(clear)
            .map(Some)
            .map_err(|e| unreadable(e.to_string()))
    }
}
