//! Unattend profiles: CRUD scoped by tenant and owner (operators their
//! own, admins the tenant's), one default per owner, and previews through
//! the one answer-file builder.

use serde::Serialize;
use utoipa::ToSchema;

use super::builder::{self, AnswerFile, VmContext};
use super::config::UnattendConfig;
use super::store::{self, Change, NewProfile, ProfileRow};
use super::UnattendError;
use crate::auth::{Identity, Role};
use crate::db::ids::UnattendProfileId;
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreError};
use crate::validate::FieldErrors;

/// A profile as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    pub id: UnattendProfileId,
    pub tenant_id: String,
    pub owner_user_id: String,
    pub name: String,
    pub is_default: bool,
    pub config: UnattendConfig,
    pub created_at: String,
    pub updated_at: String,
}

/// A built answer file as the preview shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    /// `Autounattend.xml`, exactly the bytes the VM's ISO would carry.
    pub xml: String,
    /// The computer name the answer file sets.
    pub computer_name: String,
    /// The local account's user name.
    pub user_name: String,
    /// The further files for the ISO root (`setup.ps1`).
    pub files: Vec<PreviewFile>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreviewFile {
    pub name: String,
    /// UTF-8 text (a leading byte-order mark is kept).
    pub content: String,
}

pub struct ProfileInput {
    pub name: String,
    pub is_default: Option<bool>,
    pub config: UnattendConfig,
}

pub struct ProfilePatch {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub config: Option<UnattendConfig>,
}

fn view(row: ProfileRow) -> Result<Profile, UnattendError> {
    let config = UnattendConfig::from_stored(&row.config).map_err(|e| {
        UnattendError::Store(StoreError::Corrupt(format!(
            "unattend profile {}: {e}",
            row.id
        )))
    })?;
    Ok(Profile {
        id: row.id,
        tenant_id: row.tenant_id.to_string(),
        owner_user_id: row.owner_user_id.to_string(),
        name: row.name,
        is_default: row.is_default != 0,
        config,
        created_at: ms_to_rfc3339(row.created_at),
        updated_at: ms_to_rfc3339(row.updated_at),
    })
}

fn check(name: &str, config: &mut UnattendConfig) -> Result<String, UnattendError> {
    let mut f = FieldErrors::default();
    let name = name.to_string();
    if name.trim().is_empty() {
        f.add("name", "must not be blank");
    } else {
        f.display_text("name", &name, 200);
    }
    if let Err(e) = config.validate_legacy("config.") {
        f.0.extend(e.0);
    }
    config.normalize();
    if let Err(e) = config.validate("config.") {
        f.0.extend(e.0);
    }
    f.into_fields().map_err(UnattendError::Validation)?;
    Ok(name)
}

/// The answer file as the preview returns it.
pub fn preview_of(a: AnswerFile) -> Preview {
    Preview {
        xml: String::from_utf8_lossy(&a.xml).into_owned(),
        computer_name: a.computer_name,
        user_name: a.user_name,
        files: a
            .extra_files
            .into_iter()
            .map(|(name, bytes)| PreviewFile {
                name,
                content: String::from_utf8_lossy(&bytes).into_owned(),
            })
            .collect(),
    }
}

pub struct UnattendService {
    db: Db,
}

impl UnattendService {
    pub fn new(db: Db) -> UnattendService {
        UnattendService { db }
    }

    /// The caller's profiles (admins: the tenant's).
    pub async fn list(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<Profile>, UnattendError> {
        let scope = caller.scope();
        let owner = (!caller.has(Role::Admin)).then_some(&caller.user_id);
        let page = store::list(self.db.reader(), self.db.backend(), &scope, owner, params).await?;
        let items = page
            .items
            .iter()
            .cloned()
            .map(view)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            total: page.total,
            page: page.page,
            limit: page.limit,
            next_cursor: page.next_cursor,
        })
    }

    async fn visible(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
    ) -> Result<ProfileRow, UnattendError> {
        let row = store::get(self.db.reader(), &caller.scope(), id)
            .await?
            .ok_or(UnattendError::NotFound)?;
        if !caller.has(Role::Admin) && row.owner_user_id != caller.user_id {
            return Err(UnattendError::NotFound);
        }
        Ok(row)
    }

    pub async fn get(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
    ) -> Result<Profile, UnattendError> {
        view(self.visible(caller, id).await?)
    }

    /// A stored profile's configuration, for other domains (provisioning)
    /// building an ISO: the same visibility as a read.
    pub async fn config_for(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
    ) -> Result<UnattendConfig, UnattendError> {
        Ok(self.get(caller, id).await?.config)
    }

    pub async fn create(
        &self,
        caller: &Identity,
        mut input: ProfileInput,
    ) -> Result<Profile, UnattendError> {
        let scope = caller.require(Role::Operator)?;
        let name = check(&input.name, &mut input.config)?;
        let config = serde_json::to_string(&input.config).unwrap_or_default();
        let is_default = input.is_default.unwrap_or(false);
        let id = UnattendProfileId::generate();
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        if is_default {
            store::clear_default(&mut tx, &scope, &caller.user_id, None, now).await?;
        }
        let row = store::insert(
            &mut tx,
            &scope,
            NewProfile {
                id: &id,
                owner: &caller.user_id,
                name: &name,
                is_default,
                config: &config,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        view(row)
    }

    /// PUT (every field given) and PATCH (only the given fields); a given
    /// `config` replaces the whole configuration.
    pub async fn update(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
        patch: ProfilePatch,
    ) -> Result<Profile, UnattendError> {
        let scope = caller.require(Role::Operator)?;
        let row = self.visible(caller, id).await?;
        let mut config = match patch.config {
            Some(c) => c,
            None => UnattendConfig::from_stored(&row.config).map_err(|e| {
                UnattendError::Store(StoreError::Corrupt(format!("unattend profile {id}: {e}")))
            })?,
        };
        let name = check(patch.name.as_deref().unwrap_or(&row.name), &mut config)?;
        let is_default = patch.is_default.unwrap_or(row.is_default != 0);
        let config = serde_json::to_string(&config).unwrap_or_default();
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        if is_default {
            store::clear_default(&mut tx, &scope, &row.owner_user_id, Some(id), now).await?;
        }
        let row = store::update(
            &mut tx,
            &scope,
            id,
            Change {
                name: &name,
                is_default,
                config: &config,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        view(row)
    }

    pub async fn delete(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
    ) -> Result<(), UnattendError> {
        let scope = caller.require(Role::Operator)?;
        self.visible(caller, id).await?;
        if !store::delete(self.db.writer(), &scope, id).await? {
            return Err(UnattendError::NotFound);
        }
        Ok(())
    }

    /// The answer file a VM would get from this stored profile.
    pub async fn preview(
        &self,
        caller: &Identity,
        id: &UnattendProfileId,
        ctx: &VmContext,
    ) -> Result<Preview, UnattendError> {
        let profile = self.get(caller, id).await?;
        Ok(preview_of(builder::build_answer_file(
            &profile.config,
            ctx,
        )?))
    }

    /// The answer file of an unsaved configuration.
    pub fn preview_config(
        &self,
        _caller: &Identity,
        mut config: UnattendConfig,
        ctx: &VmContext,
    ) -> Result<Preview, UnattendError> {
        config
            .validate_legacy("config.")
            .map_err(UnattendError::Validation)?;
        config.normalize();
        config
            .validate("config.")
            .map_err(UnattendError::Validation)?;
        Ok(preview_of(builder::build_answer_file(&config, ctx)?))
    }
}
