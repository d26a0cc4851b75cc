//! `/nodes/{node}/storage/...`: list, status, content, delete, upload.

use axum::extract::State;
use axum::Extension;
use serde_json::{json, Value};

use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::auth::AuthUser;
use crate::params::{Params, UploadedFile};
use crate::state::storage::{normalize_filename, split_volid};
use crate::state::{Storage, TaskAction};

fn storage_json(s: &Storage) -> Value {
    let used = s.used();
    json!({
        "storage": s.id,
        "type": s.kind.plugin_type(),
        "content": s.content.join(","),
        "active": 1,
        "enabled": 1,
        "shared": 0,
        "total": s.total,
        "used": used,
        "avail": s.total.saturating_sub(used),
        "used_fraction": used as f64 / s.total as f64,
    })
}

pub async fn list(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let wanted: Vec<&str> = p
        .get("content")
        .map(|c| c.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let out: Vec<Value> = st
        .storages
        .values()
        .filter(|s| p.get("storage").is_none_or(|id| id == s.id))
        .filter(|s| wanted.iter().all(|c| s.supports(c)))
        .map(storage_json)
        .collect();
    Ok(data(out))
}

pub async fn status(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let s = st.storage(p.get("storage").unwrap_or_default())?;
    Ok(data(storage_json(s)))
}

pub async fn content(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let s = st.storage(p.get("storage").unwrap_or_default())?;
    if let Some(ct) = p.get("content") {
        if !s.supports(ct) {
            return Ok(data(Vec::<Value>::new()));
        }
    }
    let list = s
        .list(p.get("content"), p.u32("vmid"))
        .map_err(|e| ApiError::failed(format!("unable to list storage '{}': {e}", s.id)))?;
    Ok(data(list))
}

pub async fn delete_volume(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult {
    let volume = p.get("volume").unwrap_or_default();
    let (storage_id, rel) = match split_volid(volume) {
        Some((s, rel)) => (s.to_string(), rel.to_string()),
        None => (
            p.get("storage").unwrap_or_default().to_string(),
            volume.to_string(),
        ),
    };
    let mut st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let s = st.storage(&storage_id)?;
    if !s.has_volume(&rel) {
        return Err(ApiError::failed(format!(
            "volume '{storage_id}:{rel}' does not exist"
        )));
    }
    let in_use = st.vms.values().find(|vm| {
        vm.config
            .values()
            .any(|v| crate::state::vmconfig::drive_file(v) == format!("{storage_id}:{rel}"))
    });
    if let Some(vm) = in_use {
        if s.kind == crate::state::StorageKind::LvmThin {
            return Err(ApiError::failed(format!(
                "volume '{storage_id}:{rel}' is in use by VM {}",
                vm.vmid
            )));
        }
    }
    let action = TaskAction::DeleteVolume {
        storage: storage_id.clone(),
        volume: rel.clone(),
    };
    let upid = app.state.spawn_task(
        &mut st,
        "imgdel",
        &format!("{storage_id}:{rel}"),
        &user.task_user(),
        action,
    );
    Ok(data(upid))
}

fn extension_ok(content: &str, name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    match content {
        "iso" => lower.ends_with(".iso") || lower.ends_with(".img"),
        "vztmpl" => [".tar.gz", ".tar.xz", ".tar.zst", ".tar.bz2"]
            .iter()
            .any(|e| lower.ends_with(e)),
        "import" => [".ova", ".qcow2", ".raw", ".vmdk"]
            .iter()
            .any(|e| lower.ends_with(e)),
        _ => false,
    }
}

/// `POST .../upload` (multipart): stores the file part, then an `imgcopy`
/// task verifies the checksum and moves it to `<data-dir>/<storage>/<content>/`.
pub async fn upload(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
    file: Option<Extension<UploadedFile>>,
) -> ApiResult {
    let Some(Extension(file)) = file else {
        return Err(ApiError::param(
            "filename",
            "no file part in multipart upload",
        ));
    };
    let discard = |e: ApiError| {
        let _ = std::fs::remove_file(&file.tmp_path);
        e
    };
    let content = p.get("content").unwrap_or_default().to_string();
    let name = normalize_filename(p.get("filename").unwrap_or(&file.original_name));
    if !extension_ok(&content, &name) {
        return Err(discard(ApiError::param("filename", "wrong file extension")));
    }
    let checksum = match (p.get("checksum"), p.get("checksum-algorithm")) {
        (Some(sum), Some(algo)) => Some((algo.to_string(), sum.to_string())),
        (None, None) => None,
        (Some(_), None) => {
            return Err(discard(ApiError::param(
                "checksum-algorithm",
                "'checksum-algorithm' is required when 'checksum' is set",
            )))
        }
        (None, Some(_)) => {
            return Err(discard(ApiError::param(
                "checksum",
                "'checksum' is required when 'checksum-algorithm' is set",
            )))
        }
    };
    let mut st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())
        .map_err(|e| discard(e.into()))?;
    let storage = st
        .storage(p.get("storage").unwrap_or_default())
        .map_err(|e| discard(e.into()))?;
    if !storage.supports(&content) {
        return Err(discard(ApiError::failed(format!(
            "storage '{}' does not support '{content}' content",
            storage.id
        ))));
    }
    let target = storage.content_dir(&content).join(&name);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| {
            discard(ApiError::failed(format!(
                "cannot create {}: {e}",
                dir.display()
            )))
        })?;
    }
    let action = TaskAction::Upload {
        tmp: file.tmp_path.clone(),
        target,
        checksum,
    };
    let upid = app
        .state
        .spawn_task(&mut st, "imgcopy", "", &user.task_user(), action);
    Ok(data(upid))
}
