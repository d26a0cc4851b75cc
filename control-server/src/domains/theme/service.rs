//! Theme asset rules: what may be uploaded (JPEG, PNG or WebP up to
//! 20 MiB), where it goes (`theme-assets/<tenant>/<id>-<sanitised name>`),
//! the checks of `complete` (the object exists, has the declared size and
//! starts like the declared image type), soft deletes, and download URLs
//! for ready assets.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use super::store::{self, AssetRow, AssetStatus, NewAsset};
use super::ThemeError;
use crate::auth::{Identity, Role};
use crate::db::ids::ThemeAssetId;
use crate::db::{ms_to_rfc3339, now_ms, Db};
use crate::objects::{BaseUrl, ObjectError, ObjectKey, Objects};
use crate::validate::FieldErrors;

/// The image types accepted.
pub const MIME_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp"];
/// Largest image (20 MiB).
pub const MAX_BYTES: i64 = 20 * 1024 * 1024;
/// Longest file name accepted (characters).
pub const MAX_FILENAME: usize = 255;
/// Largest width/height.
pub const MAX_DIMENSION: i64 = 8192;
/// Longest sanitised name kept in the object key.
const MAX_KEY_NAME: usize = 100;

/// The file name as it goes into the object key: lower-cased, every run
/// of characters outside `a-z 0-9 . _ -` becomes one `-`, runs of `-` and
/// of `.` collapse to one, `-` is trimmed at both ends, at most 100
/// characters; empty → `background`.
pub fn sanitize_filename(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            c
        } else {
            '-'
        };
        if (c == '-' || c == '.') && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    let trimmed: String = out.trim_matches('-').chars().take(MAX_KEY_NAME).collect();
    let trimmed = trimmed.trim_end_matches('-').to_string();
    if trimmed.is_empty() {
        "background".into()
    } else {
        trimmed
    }
}

/// The image type the bytes start like (magic numbers), if any.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A theme asset as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetView {
    pub id: String,
    pub object_key: String,
    /// As uploaded (the object key carries the sanitised form).
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    #[schema(schema_with = super::routes::asset_status_schema)]
    pub status: AssetStatus,
    /// A short-lived download URL (ready assets only).
    pub image_url: Option<String>,
    /// Epoch ms.
    pub image_url_expires_at_ms: Option<i64>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
}

/// The tenant's assets (not deleted), newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetList {
    /// Epoch ms.
    pub generated_at_ms: i64,
    pub items: Vec<AssetView>,
}

/// Where and how to upload a new asset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PresignAnswer {
    pub asset_id: String,
    pub object_key: String,
    /// `PUT` the image here with `Content-Type: <mime_type>` (no bearer token).
    pub upload_url: String,
    /// Always `PUT`.
    pub upload_method: &'static str,
    /// Headers the upload must send (`content-type`).
    #[schema(value_type = Object)]
    pub upload_headers: serde_json::Value,
    /// Epoch ms.
    pub expires_at_ms: i64,
    pub expires_in_seconds: u64,
}

/// A soft-deleted asset.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeletedAsset {
    pub id: String,
    #[schema(schema_with = super::routes::asset_status_schema)]
    pub status: AssetStatus,
}

pub struct PresignInput {
    pub filename: String,
    pub mime_type: String,
    pub size_bytes: i64,
}

pub struct CompleteInput {
    pub asset_id: ThemeAssetId,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

pub struct ThemeService {
    db: Db,
    objects: Arc<Objects>,
}

fn store_failed(e: ObjectError) -> ThemeError {
    ThemeError::ObjectStore(e.to_string())
}

impl ThemeService {
    pub fn new(db: Db, objects: Arc<Objects>) -> ThemeService {
        ThemeService { db, objects }
    }

    async fn view(&self, r: AssetRow, base: &BaseUrl) -> Result<AssetView, ThemeError> {
        let url = match (r.status, ObjectKey::parse(&r.object_key)) {
            (AssetStatus::Ready, Some(key)) => Some(
                self.objects
                    .download_url(&key, base, Some(&r.mime_type))
                    .await
                    .map_err(store_failed)?,
            ),
            _ => None,
        };
        Ok(AssetView {
            id: r.id.into_string(),
            object_key: r.object_key,
            filename: r.filename,
            mime_type: r.mime_type,
            size_bytes: r.size_bytes,
            width: r.width,
            height: r.height,
            status: r.status,
            image_url: url.as_ref().map(|u| u.url.clone()),
            image_url_expires_at_ms: url.map(|u| u.expires_at_ms),
            created_at: ms_to_rfc3339(r.created_at),
            updated_at: ms_to_rfc3339(r.updated_at),
        })
    }

    /// Every asset of the tenant that is not deleted (viewer+).
    pub async fn list(&self, caller: &Identity, base: &BaseUrl) -> Result<AssetList, ThemeError> {
        let scope = caller.require(Role::Viewer)?;
        let rows = store::list_live(self.db.reader(), &scope).await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            items.push(self.view(r, base).await?);
        }
        Ok(AssetList {
            generated_at_ms: now_ms(),
            items,
        })
    }

    /// Register a pending asset and hand out its upload URL (operator+).
    pub async fn presign_upload(
        &self,
        caller: &Identity,
        base: &BaseUrl,
        input: PresignInput,
    ) -> Result<PresignAnswer, ThemeError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        let name_len = input.filename.chars().count();
        f.check(
            (1..=MAX_FILENAME).contains(&name_len) && !input.filename.chars().any(char::is_control),
            "filename",
            "must be 1-255 characters without control characters",
        );
        f.check(
            MIME_TYPES.contains(&input.mime_type.as_str()),
            "mime_type",
            "must be image/jpeg, image/png or image/webp",
        );
        f.check(
            (1..=MAX_BYTES).contains(&input.size_bytes),
            "size_bytes",
            "must be between 1 and 20971520 (20 MiB)",
        );
        f.into_fields().map_err(ThemeError::InvalidPresign)?;
        let id = ThemeAssetId::generate();
        let raw_key = format!(
            "theme-assets/{}/{id}-{}",
            scope.tenant(),
            sanitize_filename(&input.filename)
        );
        let key = ObjectKey::parse(&raw_key).ok_or_else(|| {
            ThemeError::InvalidPresign(FieldErrors::one(
                "filename",
                "cannot be turned into an object key",
            ))
        })?;
        // Sign first: a URL that cannot be made leaves no pending row.
        let url = self
            .objects
            .upload_url(&key, base, input.size_bytes as u64, &input.mime_type)
            .await
            .map_err(store_failed)?;
        let row = store::insert(
            self.db.writer(),
            &scope,
            NewAsset {
                id: &id,
                by: &caller.user_id,
                object_key: key.as_str(),
                filename: &input.filename,
                mime_type: &input.mime_type,
                size_bytes: input.size_bytes,
                now: now_ms(),
            },
        )
        .await?;
        tracing::info!(asset_id = %row.id, size = row.size_bytes, by = %caller.user_id,
            "theme asset upload presigned");
        Ok(PresignAnswer {
            asset_id: row.id.into_string(),
            object_key: row.object_key,
            upload_url: url.url,
            upload_method: "PUT",
            upload_headers: serde_json::json!({ "content-type": row.mime_type }),
            expires_at_ms: url.expires_at_ms,
            expires_in_seconds: url.expires_in_seconds,
        })
    }

    /// Check the upload and make the asset `ready` (operator+): the object
    /// must exist (else `THEME_ASSET_UPLOAD_MISSING`, still pending), have
    /// the declared size and start like the declared image type (else the
    /// asset is `failed`). Completing a ready asset again only updates the
    /// dimensions given.
    pub async fn complete(
        &self,
        caller: &Identity,
        base: &BaseUrl,
        input: CompleteInput,
    ) -> Result<AssetView, ThemeError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        for (field, v) in [("width", input.width), ("height", input.height)] {
            if let Some(v) = v {
                f.check(
                    (1..=MAX_DIMENSION).contains(&v),
                    field,
                    "must be between 1 and 8192",
                );
            }
        }
        f.into_fields().map_err(ThemeError::Validation)?;
        let row = store::get(self.db.reader(), &scope, &input.asset_id)
            .await?
            .ok_or(ThemeError::NotFound)?;
        let dims = (input.width, input.height);
        let now = now_ms();
        let verdict = match row.status {
            AssetStatus::Deleted => return Err(ThemeError::Deleted),
            AssetStatus::Ready => Ok(()),
            AssetStatus::Pending | AssetStatus::Failed => self.check_upload(&row).await?,
        };
        match verdict {
            Ok(()) => {
                let row = store::set_status(
                    self.db.writer(),
                    &scope,
                    &input.asset_id,
                    AssetStatus::Ready,
                    dims,
                    now,
                )
                .await?
                .ok_or(ThemeError::Deleted)?;
                tracing::info!(asset_id = %row.id, by = %caller.user_id, "theme asset ready");
                self.view(row, base).await
            }
            Err(why) => {
                store::set_status(
                    self.db.writer(),
                    &scope,
                    &input.asset_id,
                    AssetStatus::Failed,
                    (None, None),
                    now,
                )
                .await?
                .ok_or(ThemeError::Deleted)?;
                tracing::info!(asset_id = %row.id, reason = %why, "theme asset upload refused");
                Err(ThemeError::UploadInvalid(why))
            }
        }
    }

    /// `Ok(Ok(()))`: the upload is what was declared; `Ok(Err(why))`: it is
    /// not.
    async fn check_upload(&self, row: &AssetRow) -> Result<Result<(), String>, ThemeError> {
        let key = ObjectKey::parse(&row.object_key).ok_or_else(|| {
            ThemeError::Store(crate::db::StoreError::Corrupt(format!(
                "theme asset {} has an invalid object key",
                row.id
            )))
        })?;
        let size = match self.objects.size(&key).await {
            Ok(s) => s,
            Err(ObjectError::NotFound) => return Err(ThemeError::UploadMissing),
            Err(e) => return Err(store_failed(e)),
        };
        if size != row.size_bytes as u64 {
            return Ok(Err(format!(
                "{size} bytes were uploaded, {} were declared",
                row.size_bytes
            )));
        }
        let head = self.objects.prefix(&key, 16).await.map_err(store_failed)?;
        match sniff(&head) {
            Some(t) if t == row.mime_type => Ok(Ok(())),
            Some(t) => Ok(Err(format!(
                "the upload is {t}, {} was declared",
                row.mime_type
            ))),
            None => Ok(Err(format!(
                "the upload is not an image ({} was declared)",
                row.mime_type
            ))),
        }
    }

    /// Soft delete (operator+): the asset leaves the list; its object is
    /// kept. Deleting again answers the same.
    pub async fn delete(
        &self,
        caller: &Identity,
        id: &ThemeAssetId,
    ) -> Result<DeletedAsset, ThemeError> {
        let scope = caller.require(Role::Operator)?;
        let row = store::soft_delete(self.db.writer(), &scope, id, now_ms())
            .await?
            .ok_or(ThemeError::NotFound)?;
        tracing::info!(asset_id = %row.id, by = %caller.user_id, "theme asset deleted");
        Ok(DeletedAsset {
            id: row.id.into_string(),
            status: row.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_sanitised_as_documented() {
        for (raw, want) in [
            ("My Background.PNG", "my-background.png"),
            ("  --Hello   World!!--.jpg", "hello-world-.jpg"),
            ("a..b...webp", "a.b.webp"),
            ("Ünïcödé.jpg", "n-c-d-.jpg"),
            ("***", "background"),
            ("", "background"),
            ("x/../../etc/passwd", "x-.-.-etc-passwd"),
        ] {
            let got = sanitize_filename(raw);
            assert_eq!(got, want, "{raw}");
            assert!(
                ObjectKey::parse(&format!("theme-assets/t/id-{got}")).is_some(),
                "{raw} → {got} is not a valid key part"
            );
        }
        assert_eq!(sanitize_filename(&"a".repeat(300)).len(), 100);
    }

    #[test]
    fn images_are_sniffed() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }
}
