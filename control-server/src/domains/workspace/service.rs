//! The rules of the workspace: viewers read, operators write; bodies are
//! validated per kind; patches merge shallowly in one transaction.

use serde_json::Value;

use super::store::{self, WorkspaceKind};
use super::WorkspaceError;
use crate::auth::{Identity, Role};
use crate::db::ids::WorkspaceItemId;
use crate::db::list::{ListParams, Page};
use crate::db::{new_id, now_ms, Db};
use crate::records;

pub struct WorkspaceService {
    db: Db,
}

impl WorkspaceService {
    pub fn new(db: Db) -> WorkspaceService {
        WorkspaceService { db }
    }

    /// One page of a kind (viewer+).
    pub async fn list(
        &self,
        caller: &Identity,
        kind: WorkspaceKind,
        params: &ListParams,
    ) -> Result<Page<Value>, WorkspaceError> {
        let scope = caller.require(Role::Viewer)?;
        let spec = kind.spec();
        Ok(
            store::list(self.db.reader(), self.db.backend(), kind, &scope, params)
                .await?
                .map(|r| records::render(spec, &r)),
        )
    }

    /// One item (viewer+).
    pub async fn get(
        &self,
        caller: &Identity,
        kind: WorkspaceKind,
        id: &WorkspaceItemId,
    ) -> Result<Value, WorkspaceError> {
        let scope = caller.require(Role::Viewer)?;
        if !records::valid_id(id.as_str()) {
            return Err(WorkspaceError::NotFound);
        }
        let row = store::get(
            self.db.reader(),
            self.db.backend(),
            kind,
            &scope,
            id.as_str(),
        )
        .await?
        .ok_or(WorkspaceError::NotFound)?;
        Ok(records::render(kind.spec(), &row))
    }

    /// Create an item (operator+); the id is the client's or a new UUIDv7.
    pub async fn create(
        &self,
        caller: &Identity,
        kind: WorkspaceKind,
        body: Value,
    ) -> Result<Value, WorkspaceError> {
        let scope = caller.require(Role::Operator)?;
        let spec = kind.spec();
        let p = records::parse(spec, &body, true).map_err(WorkspaceError::Validation)?;
        let id = p.id.clone().unwrap_or_else(new_id);
        let mut tx = self.db.begin().await?;
        store::insert(&mut tx, kind, &scope, &id, &p, now_ms()).await?;
        let row = store::get(&mut tx, self.db.backend(), kind, &scope, &id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Shallow merge (operator+): given typed fields replace theirs (null
    /// clears), given extras replace or add theirs, the rest stays.
    pub async fn update(
        &self,
        caller: &Identity,
        kind: WorkspaceKind,
        id: &WorkspaceItemId,
        body: Value,
    ) -> Result<Value, WorkspaceError> {
        let scope = caller.require(Role::Operator)?;
        let spec = kind.spec();
        let id = id.as_str();
        if !records::valid_id(id) {
            return Err(WorkspaceError::NotFound);
        }
        let p = records::parse(spec, &body, false).map_err(WorkspaceError::Validation)?;
        let backend = self.db.backend();
        let mut tx = self.db.begin().await?;
        if !store::lock(&mut tx, kind, &scope, id).await? {
            return Err(WorkspaceError::NotFound);
        }
        let current = store::get(&mut tx, backend, kind, &scope, id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        let mut extras = current
            .text("extras")
            .and_then(|t| serde_json::from_str::<serde_json::Map<String, Value>>(t).ok())
            .unwrap_or_default();
        extras.extend(p.extras.clone());
        store::update(&mut tx, kind, &scope, id, &p, &extras, now_ms()).await?;
        let row = store::get(&mut tx, backend, kind, &scope, id)
            .await?
            .ok_or(WorkspaceError::NotFound)?;
        tx.commit().await?;
        Ok(records::render(spec, &row))
    }

    /// Delete an item (operator+).
    pub async fn delete(
        &self,
        caller: &Identity,
        kind: WorkspaceKind,
        id: &WorkspaceItemId,
    ) -> Result<(), WorkspaceError> {
        let scope = caller.require(Role::Operator)?;
        if !records::valid_id(id.as_str())
            || !store::delete(self.db.writer(), kind, &scope, id.as_str()).await?
        {
            return Err(WorkspaceError::NotFound);
        }
        Ok(())
    }
}
