//! First start on an empty database: tenant `default` and an admin.

use std::path::{Path, PathBuf};

use crate::auth::secret;
use crate::db::ids::TenantId;
use crate::domains::accounts::AccountsService;
use crate::fsutil::{create_private_dir, write_secret_file};

pub const INITIAL_ADMIN_EMAIL: &str = "admin@localhost";
pub const DEFAULT_TENANT: &str = "default";
pub const PASSWORD_FILE: &str = "initial-admin-password";

/// Create tenant `default` and `admin@localhost` (tenant admin + infra) when
/// the server has no users yet. The random password goes to
/// `<data_dir>/initial-admin-password` (mode 0600); its path is returned.
pub async fn ensure_initial_admin(
    accounts: &AccountsService,
    data_dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    if accounts.user_count().await? > 0 {
        return Ok(None);
    }
    create_private_dir(data_dir)?;
    let path = data_dir.join(PASSWORD_FILE);
    let password = secret::generate_password();
    write_secret_file(&path, format!("{password}\n").as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    let created = accounts
        .create_initial_admin(
            &TenantId::from(DEFAULT_TENANT),
            "Default tenant",
            INITIAL_ADMIN_EMAIL,
            &password,
        )
        .await;
    match created {
        Ok(Some(_)) => Ok(Some(path)),
        // Another process sharing the database won the race: keep its admin.
        Ok(None) => {
            let _ = std::fs::remove_file(&path);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(anyhow::anyhow!("cannot create the initial admin: {e}"))
        }
    }
}
