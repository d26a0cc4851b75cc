//! First start on an empty database: tenant `default` and an admin.

use std::path::{Path, PathBuf};

use crate::accounts::{self, CreateUser};
use crate::auth::secret;
use crate::db::Db;
use crate::fsutil::{create_private_dir, write_secret_file};
use crate::store::{tenants, users, StoreError};

pub const INITIAL_ADMIN_EMAIL: &str = "admin@localhost";
pub const DEFAULT_TENANT: &str = "default";
pub const PASSWORD_FILE: &str = "initial-admin-password";

/// Create tenant `default` and `admin@localhost` (tenant admin + infra) when
/// the server has no users yet. The random password goes to
/// `<data_dir>/initial-admin-password` (mode 0600); its path is returned.
pub async fn ensure_initial_admin(db: &Db, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    if users::count(db.pool()).await? > 0 {
        return Ok(None);
    }
    match tenants::create(db.writer(), DEFAULT_TENANT, "Default tenant").await {
        Ok(_) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    create_private_dir(data_dir)?;
    let path = data_dir.join(PASSWORD_FILE);
    let password = secret::generate_password();
    write_secret_file(&path, format!("{password}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let created = accounts::create_user(
        db,
        CreateUser {
            tenant_id: DEFAULT_TENANT,
            email: INITIAL_ADMIN_EMAIL,
            role: "admin",
            infra: true,
            password: &password,
        },
    )
    .await;
    match created {
        Ok(_) => Ok(Some(path)),
        // Another process sharing the database won the race: keep its admin.
        Err(accounts::AccountError::Store(StoreError::Conflict(_))) => {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(anyhow::anyhow!("cannot create the initial admin: {e:?}"))
        }
    }
}
