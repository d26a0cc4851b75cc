//! Provisioning ISO (inventory §5.6, fixing §8 item 14): the ISO is built in
//! memory with `isotools` (ISO 9660 + Joliet + Rock Ridge, label `PROVISION`)
//! and uploaded through the PVE API (multipart, with a sha256 checksum) —
//! no SSH and no ISO tool on the Proxmox host. Plus `attach-cdrom` and
//! `detach-cdrom` (with ISO deletion through the storage API).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::is_storage_id;
use crate::executor::ExecError;
use crate::proxmox::actions::{result, Call};
use crate::proxmox::{enc, tasks, vm_config, PveError, UploadFile};
use crate::ssh::{SshError, SshSettings};

/// Largest accepted ISO (the payload travels base64 through the server).
const MAX_ISO_BYTES: usize = 64 << 20;

fn iso_error(m: impl Into<String>) -> ExecError {
    ExecError::new("ISO_CREATE_FAILED", m)
}

/// The storage an ISO goes to: the command's `isoStorage`, else the
/// target's `iso_storage`, else the node's enabled storage that holds ISO
/// images (`local` when it is one of them, else the first by name) — what
/// the original hard-coded as `local`.
async fn iso_storage(c: &Call<'_>) -> Result<String, ExecError> {
    let chosen = c
        .opt_str(&["isoStorage", "storage"])
        .or_else(|| c.target.config.iso_storage.clone());
    if let Some(s) = chosen {
        if !is_storage_id(&s) {
            return Err(ExecError::bad_request(format!("invalid storage id {s:?}")));
        }
        return Ok(s);
    }
    let node = c.node()?;
    let listed = c
        .node_api()?
        .storage()
        .get(proxmox_api::nodes::node::storage::GetParams {
            content: Some("iso".into()),
            enabled: Some(true),
            ..Default::default()
        })
        .await?;
    let mut ids: Vec<String> = listed.into_iter().map(|s| s.storage).collect();
    ids.sort();
    pick_iso_storage(&ids).ok_or_else(|| {
        ExecError::new(
            "ISO_STORAGE_NONE",
            format!(
                "no enabled storage on node {node} holds ISO images: enable the 'ISO image' content \
                 on one, or name one (the job's iso_storage, the target's ISO storage)"
            ),
        )
    })
}

/// `local` when the node offers it for ISOs, else the first offered.
fn pick_iso_storage(ids: &[String]) -> Option<String> {
    ids.iter()
        .find(|s| *s == "local")
        .or_else(|| ids.iter().find(|s| is_storage_id(s)))
        .cloned()
}

fn iso_name(c: &Call<'_>, vmid: u64) -> Result<String, ExecError> {
    check_iso_name(
        c.opt_str(&["isoName"])
            .unwrap_or_else(|| format!("vm-{vmid}-provision.iso")),
    )
}

/// `x.iso` with only `[A-Za-z0-9._-]` (what PVE keeps unchanged).
fn check_iso_name(name: String) -> Result<String, ExecError> {
    let ok = name.len() <= 200
        && name.to_ascii_lowercase().ends_with(".iso")
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        && !name.starts_with('.');
    if !ok {
        return Err(ExecError::bad_request(format!(
            "isoName {name:?} must end in .iso and use only letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(name)
}

fn decode_b64(name: &str, v: &Value) -> Result<Vec<u8>, ExecError> {
    let s = v
        .as_str()
        .ok_or_else(|| ExecError::bad_request(format!("files.{name} must be a base64 string")))?;
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD
        .decode(&s)
        .or_else(|_| URL_SAFE.decode(&s))
        .map_err(|e| ExecError::bad_request(format!("files.{name} is not valid base64: {e}")))
}

/// Builds the ISO in memory; returns the bytes.
pub fn build_iso(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, ExecError> {
    let builder = isotools::windows_config_iso(files.iter().map(|(k, v)| (k.as_str(), v.clone())))
        .map_err(|e| iso_error(e.to_string()))?;
    let image = builder.build().map_err(|e| iso_error(e.to_string()))?;
    let size = image.size() as usize;
    if size > MAX_ISO_BYTES {
        return Err(iso_error(format!(
            "the ISO would be {size} bytes; the limit is {MAX_ISO_BYTES}"
        )));
    }
    let mut out = Vec::with_capacity(size);
    image
        .write_to(&mut out)
        .map_err(|e| iso_error(e.to_string()))?;
    Ok(out)
}

async fn upload_and_wait(
    c: &Call<'_>,
    storage: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<Value, ExecError> {
    let node = c.node()?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let size = bytes.len();
    let file = UploadFile {
        filename: name.to_string(),
        bytes,
        content: "iso".into(),
        sha256: sha256.clone(),
    };
    let mut out = json!({
        "isoPath": format!("{storage}:iso/{name}"),
        "isoName": name,
        "storage": storage,
        "size": size,
        "sha256": sha256,
    });
    let timeout = c.millis(&["timeoutMs", "timeout_ms"], 120_000, 5_000, 1_800_000)?;
    match c
        .api
        .transport()
        .upload(&node, storage, &file, c.cancel())
        .await
    {
        Ok(upid) => {
            tasks::wait_task(&c.api, &upid, timeout, Duration::from_millis(500))
                .await
                .map_err(|e| ExecError::new("ISO_UPLOAD_FAILED", e.to_string()))?;
            out["upid"] = Value::from(upid);
            out["method"] = Value::from("api");
            Ok(out)
        }
        Err(e) if is_refusal(&e) => {
            let api_error = e.to_string();
            // Same rule as every SSH action: stored secrets only go to the
            // configured host; a payload-chosen host needs the target's flag
            // and its own credentials.
            let ssh = match SshSettings::resolve(c.target, c.payload) {
                Ok(ssh) => ssh,
                Err(SshError::Required) => {
                    return Err(ExecError::new(
                        "ISO_UPLOAD_FAILED",
                        format!("{api_error} (no SSH configured for the SFTP fallback)"),
                    ))
                }
                Err(se) => {
                    return Err(ExecError::new(
                        "ISO_UPLOAD_FAILED",
                        format!("{api_error}; SFTP fallback refused: {} {se}", se.code()),
                    ))
                }
            };
            let dir = ssh.iso_dir.clone().unwrap_or_else(|| {
                if storage == "local" {
                    "/var/lib/vz/template/iso".to_string()
                } else {
                    format!("/mnt/pve/{storage}/template/iso")
                }
            });
            let remote = format!("{}/{name}", dir.trim_end_matches('/'));
            tracing::warn!(
                event_name = "agent.iso.sftp_fallback",
                storage, remote = %remote, error = %api_error,
                "the API upload was refused; uploading over SFTP"
            );
            crate::ssh::sftp_put(
                &ssh,
                c.known_hosts,
                &remote,
                &file.bytes,
                timeout,
                c.cancel(),
            )
            .await
            .map_err(|se| {
                ExecError::new(
                    "ISO_UPLOAD_FAILED",
                    format!("{api_error}; SFTP fallback failed: {} {se}", se.code()),
                )
            })?;
            out["upid"] = Value::Null;
            out["method"] = Value::from("sftp");
            out["apiError"] = Value::from(api_error);
            Ok(out)
        }
        Err(e) => Err(ExecError::new("ISO_UPLOAD_FAILED", e.to_string())),
    }
}

/// The API said no (permissions, content type, not implemented) rather
/// than being unreachable: worth trying SFTP.
fn is_refusal(e: &PveError) -> bool {
    matches!(e, PveError::Api { status, .. } if (400..500).contains(status) || *status == 501)
}

/// `proxmox.create-provision-iso {vmid, files{name: base64}, isoName?, isoStorage?}`
pub(crate) async fn create_provision_iso(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let files = match c.payload.get("files") {
        Some(Value::Object(m)) if !m.is_empty() => m,
        _ => {
            return Err(ExecError::bad_request(
                "files required for proxmox.create-provision-iso (an object of name -> base64)",
            ))
        }
    };
    let mut decoded = BTreeMap::new();
    for (name, v) in files {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(ExecError::bad_request(format!(
                "file name {name:?} must be a plain name at the ISO root"
            )));
        }
        decoded.insert(name.clone(), decode_b64(name, v)?);
    }
    let storage = iso_storage(c).await?;
    let name = iso_name(c, vmid)?;
    let bytes = tokio::task::spawn_blocking(move || build_iso(&decoded))
        .await
        .map_err(|e| iso_error(format!("ISO builder crashed: {e}")))??;
    let mut out = upload_and_wait(c, &storage, &name, bytes).await?;
    out["created"] = Value::Bool(true);
    out["vmid"] = Value::from(vmid);
    Ok(out)
}

/// `proxmox.upload-iso {isoName, data (base64), isoStorage?}`: uploads a
/// ready ISO.
pub(crate) async fn upload_iso(c: &Call<'_>) -> Result<Value, ExecError> {
    let name = c
        .opt_str(&["isoName", "filename"])
        .ok_or_else(|| ExecError::bad_request("isoName required for proxmox.upload-iso"))?;
    let name = check_iso_name(name)?;
    let data = c
        .payload
        .get("data")
        .ok_or_else(|| ExecError::bad_request("data (base64) required for proxmox.upload-iso"))?;
    let bytes = decode_b64("data", data)?;
    if bytes.len() > MAX_ISO_BYTES {
        return Err(ExecError::bad_request(
            "the ISO is too large for an inline upload",
        ));
    }
    let storage = iso_storage(c).await?;
    upload_and_wait(c, &storage, &name, bytes).await
}

/// `proxmox.attach-cdrom {vmid, isoPath, cdromSlot=ide2}`
pub(crate) async fn attach_cdrom(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let iso_path = c.req_str(&["isoPath"])?;
    if iso_path.contains([',', '=']) {
        return Err(ExecError::bad_request(
            "isoPath must be a volume id like local:iso/x.iso",
        ));
    }
    let slot = cdrom_slot(c)?;
    if iso_path.trim_start().starts_with('/') {
        c.target.require_host_level_config(&format!(
            "isoPath {iso_path:?} is a path on the Proxmox host"
        ))?;
    }
    let drive = Map::from_iter([(slot.clone(), Value::from(format!("{iso_path},media=cdrom")))]);
    c.vm(vmid)?
        .config()
        .put(vm_config::put_params(&drive)?)
        .await?;
    // PUT …/config is synchronous (PVE answers null).
    Ok(json!({ "upid": Value::Null, "attached": true, "slot": slot, "isoPath": iso_path }))
}

fn cdrom_slot(c: &Call<'_>) -> Result<String, ExecError> {
    let slot = c.opt_str(&["cdromSlot"]).unwrap_or_else(|| "ide2".into());
    let re_ok = ["ide", "sata", "scsi"].iter().any(|p| {
        slot.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if !re_ok {
        return Err(ExecError::bad_request(format!(
            "invalid cdromSlot {slot:?}"
        )));
    }
    Ok(slot)
}

/// `proxmox.detach-cdrom {vmid, cdromSlot=ide2, deleteIso, isoPath?}`:
/// empties the drive; with `deleteIso` also deletes the ISO volume through
/// `DELETE /nodes/{node}/storage/{storage}/content/{volume}` and waits for
/// it. With `isoPath` (`local:iso/x.iso`) exactly that volume is deleted,
/// and the drive is emptied only if it still holds it (a repeated or late
/// cleanup): a volume that is already gone answers `isoAbsent: true`.
pub(crate) async fn detach_cdrom(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let slot = cdrom_slot(c)?;
    let delete_iso = c.flag("deleteIso");
    let named = c.opt_str(&["isoPath"]);
    if let Some(p) = &named {
        if !p.contains(":iso/") || p.contains([',', '=']) || p.trim_start().starts_with('/') {
            return Err(ExecError::bad_request(
                "isoPath must be an ISO volume id like local:iso/x.iso",
            ));
        }
    }
    let vm = c.vm(vmid)?;
    let mut volume: Option<String> = None;
    let mut detach = true;
    if delete_iso || named.is_some() {
        match (vm.config().get(Default::default()).await, &named) {
            (Ok(cfg), _) => {
                let cfg = result(&cfg)?;
                let current = cfg[&slot]
                    .as_str()
                    .map(|v| v.split(',').next().unwrap_or("").to_string());
                match &named {
                    Some(p) => {
                        detach = current.as_deref() == Some(p.as_str());
                        volume = Some(p.clone());
                    }
                    None => volume = current.filter(|p| p.contains(":iso/")),
                }
            }
            // The VM is gone: only the named volume is left to delete.
            (Err(e), Some(p))
                if e.api_message()
                    .is_some_and(|m| m.contains("does not exist")) =>
            {
                detach = false;
                volume = Some(p.clone());
            }
            (Err(e), _) => return Err(e.into()),
        }
    }
    if detach {
        let empty = Map::from_iter([(slot.clone(), Value::from("none,media=cdrom"))]);
        vm.config().put(vm_config::put_params(&empty)?).await?;
    }
    let mut out = json!({ "upid": Value::Null, "detached": detach, "slot": slot });
    if let Some(vol) = volume {
        let storage = vol.split(':').next().unwrap_or("local").to_string();
        let res = async {
            let upid = c
                .node_api()?
                .storage()
                .storage(&enc(&storage))
                .content()
                .volume(&enc(&vol))
                .delete(Default::default())
                .await?;
            if let Some(u) = upid {
                tasks::wait_task(
                    &c.api,
                    &u,
                    Duration::from_secs(60),
                    Duration::from_millis(500),
                )
                .await?;
            }
            Ok::<_, ExecError>(())
        }
        .await;
        match res {
            Ok(()) => out["deletedIso"] = Value::from(vol),
            Err(e) if e.message.contains("does not exist") => {
                out["deletedIso"] = Value::from(vol);
                out["isoAbsent"] = Value::Bool(true);
            }
            Err(e) => {
                // best effort: the drive is already detached
                tracing::warn!(volume = %vol, error = %e, "could not delete the ISO");
                out["deleteIsoError"] = Value::from(e.to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::pick_iso_storage;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn iso_storage_prefers_local_then_the_first_listed() {
        assert_eq!(
            pick_iso_storage(&ids(&["cephfs", "local", "nfs-isos"])),
            Some("local".into())
        );
        assert_eq!(
            pick_iso_storage(&ids(&["cephfs", "nfs-isos"])),
            Some("cephfs".into())
        );
        // a listed id that is not a storage id is never used
        assert_eq!(
            pick_iso_storage(&ids(&["../etc", "nfs-isos"])),
            Some("nfs-isos".into())
        );
        assert_eq!(pick_iso_storage(&[]), None);
    }
}
