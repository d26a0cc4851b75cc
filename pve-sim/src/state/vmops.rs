//! VM operations that change configuration: clone, config update, resize.

use super::storage::{rel_disk_name, split_volid, DiskVolume, StorageKind};
use super::vmconfig::{self, VmConfig};
use super::{now, SimState, StateError, Vm, VmStatus};

/// Parameters of `POST .../qemu/{vmid}/clone`.
#[derive(Debug, Clone, Default)]
pub struct CloneRequest {
    pub source: u32,
    pub newid: u32,
    pub name: Option<String>,
    pub description: Option<String>,
    pub full: Option<bool>,
    pub target: Option<String>,
    pub storage: Option<String>,
}

fn locked(vm: &Vm, skiplock: bool) -> Result<(), StateError> {
    match vm.lock() {
        Some(lock) if !skiplock => Err(StateError::failed(format!("VM is locked ({lock})"))),
        _ => Ok(()),
    }
}

impl SimState {
    /// Creates the clone's config (locked with `lock: clone`) and disks.
    pub fn start_clone(&mut self, req: &CloneRequest) -> Result<(), StateError> {
        let source = self.vm(req.source)?.clone();
        if let Some(target) = &req.target {
            if target != &self.node {
                return Err(StateError::failed(format!(
                    "no such cluster node '{target}'"
                )));
            }
        }
        if self.vms.contains_key(&req.newid) {
            return Err(StateError::failed(format!(
                "unable to create VM {}: config file already exists",
                req.newid
            )));
        }
        let full = req.full.unwrap_or(!source.is_template());
        if !full && !source.is_template() {
            return Err(StateError::failed(
                "Linked clone feature is not supported for non-template VMs",
            ));
        }
        if !full && req.storage.is_some() {
            return Err(StateError::param(
                "storage",
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if let Some(storage) = &req.storage {
            let st = self.storage(storage)?;
            if !st.supports("images") {
                return Err(StateError::failed(format!(
                    "storage '{storage}' does not support content-type 'images'"
                )));
            }
        }
        let mut config: VmConfig = source
            .config
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("unused") && k.as_str() != "template" && k.as_str() != "lock"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let created = now();
        let drive_keys: Vec<String> = config
            .iter()
            .filter(|(k, v)| vmconfig::is_drive_key(k) && !vmconfig::is_cdrom(v))
            .map(|(k, _)| k.clone())
            .collect();
        for key in drive_keys {
            let value = config[&key].clone();
            let file = vmconfig::drive_file(&value).to_string();
            let Some((src_storage, rel)) = split_volid(&file) else {
                continue;
            };
            let target_storage = if full {
                req.storage
                    .clone()
                    .unwrap_or_else(|| src_storage.to_string())
            } else {
                src_storage.to_string()
            };
            let size = self
                .storages
                .get(src_storage)
                .and_then(|s| s.disks.get(rel_disk_name(rel)))
                .map(|d| d.size)
                .or_else(|| vmconfig::prop_value(&value, "size").and_then(vmconfig::parse_size))
                .unwrap_or(32 << 30);
            let st = self
                .storages
                .get_mut(&target_storage)
                .filter(|s| s.kind == StorageKind::LvmThin)
                .ok_or_else(|| {
                    StateError::failed(format!(
                        "storage '{target_storage}' does not support vm images"
                    ))
                })?;
            let name = st.next_disk_name(req.newid);
            st.disks.insert(
                name.clone(),
                DiskVolume {
                    vmid: req.newid,
                    size,
                    ctime: created,
                },
            );
            let new_file = if full {
                format!("{target_storage}:{name}")
            } else {
                format!("{target_storage}:{}/{name}", rel_disk_name(rel))
            };
            config.insert(key, vmconfig::with_drive_file(&value, &new_file));
        }
        vmconfig::regenerate_macs(&mut config);
        config.insert("vmgenid".into(), uuid::Uuid::new_v4().to_string());
        if let Some(smbios) = config.get("smbios1").cloned() {
            config.insert(
                "smbios1".into(),
                vmconfig::with_prop(&smbios, "uuid", &uuid::Uuid::new_v4().to_string()),
            );
        }
        let name = req
            .name
            .clone()
            .unwrap_or_else(|| format!("Copy-of-VM-{}", source.name()));
        config.insert("name".into(), name);
        if let Some(desc) = &req.description {
            config.insert("description".into(), desc.clone());
        }
        config.insert("lock".into(), "clone".into());
        self.vms.insert(
            req.newid,
            Vm {
                vmid: req.newid,
                config,
                status: VmStatus::Stopped,
                started_at: None,
                pid: None,
            },
        );
        Ok(())
    }

    /// Fails unless `digest` (if given) matches the current config.
    pub fn check_digest(&self, vmid: u32, digest: Option<&str>) -> Result<(), StateError> {
        let vm = self.vm(vmid)?;
        match digest {
            Some(d) if d != vmconfig::digest(&vm.config) => Err(StateError::failed(
                "detected modified configuration - file changed by other user? Try again.",
            )),
            _ => Ok(()),
        }
    }

    /// Preconditions of a config change, checked before it is accepted.
    pub fn check_config_change(
        &self,
        vmid: u32,
        set: &VmConfig,
        skiplock: bool,
    ) -> Result<(), StateError> {
        let vm = self.vm(vmid)?;
        locked(vm, skiplock)?;
        for (key, value) in set {
            if !vmconfig::is_drive_key(key) {
                continue;
            }
            let file = vmconfig::drive_file(value);
            if file == "none" || file == "cdrom" || file.starts_with('/') {
                continue;
            }
            let Some((storage, rel)) = split_volid(file) else {
                continue;
            };
            let exists = self.storages.get(storage).is_some_and(|s| {
                s.has_volume(rel) || rel.chars().all(|c| c.is_ascii_digit() || c == '.')
            });
            if !exists {
                return Err(StateError::param(
                    key,
                    format!("volume '{file}' does not exist"),
                ));
            }
        }
        Ok(())
    }

    /// Applies `set` and `delete` to a VM config. Deleting a disk turns its
    /// volume into an `unusedN` entry unless `force`, as in PVE.
    pub fn apply_config(
        &mut self,
        vmid: u32,
        set: &VmConfig,
        delete: &[String],
        force: bool,
    ) -> Result<(), StateError> {
        let vm = self.vm_mut(vmid)?;
        for key in delete {
            let Some(old) = vm.config.remove(key) else {
                continue;
            };
            if vmconfig::is_drive_key(key) && !vmconfig::is_cdrom(&old) && !force {
                let file = vmconfig::drive_file(&old).to_string();
                let slot = (0..)
                    .map(|n| format!("unused{n}"))
                    .find(|k| !vm.config.contains_key(k))
                    .unwrap_or_default();
                vm.config.insert(slot, file);
            }
        }
        for (k, v) in set {
            vm.config.insert(k.clone(), v.clone());
        }
        Ok(())
    }

    /// Checks a resize request and returns the new size in bytes.
    pub fn check_resize(
        &self,
        vmid: u32,
        disk: &str,
        size: &str,
        skiplock: bool,
    ) -> Result<u64, StateError> {
        let vm = self.vm(vmid)?;
        locked(vm, skiplock)?;
        let value = vm
            .config
            .get(disk)
            .ok_or_else(|| StateError::failed(format!("disk '{disk}' does not exist")))?;
        if vmconfig::is_cdrom(value) {
            return Err(StateError::failed("you can't resize a cdrom"));
        }
        let current = vmconfig::prop_value(value, "size")
            .and_then(vmconfig::parse_size)
            .unwrap_or_default();
        let amount =
            vmconfig::parse_size(size).ok_or_else(|| StateError::param("size", "invalid size"))?;
        let new = if size.starts_with('+') {
            current + amount
        } else {
            amount
        };
        if new < current {
            return Err(StateError::failed("shrinking disks is not supported"));
        }
        Ok(new)
    }

    pub fn apply_resize(&mut self, vmid: u32, disk: &str, size: u64) -> Result<(), StateError> {
        let vm = self.vm_mut(vmid)?;
        let value = vm
            .config
            .get(disk)
            .cloned()
            .ok_or_else(|| StateError::failed(format!("disk '{disk}' does not exist")))?;
        let file = vmconfig::drive_file(&value).to_string();
        vm.config.insert(
            disk.to_string(),
            vmconfig::with_prop(&value, "size", &vmconfig::format_size(size)),
        );
        if let Some((storage, rel)) = split_volid(&file) {
            if let Some(d) = self
                .storages
                .get_mut(storage)
                .and_then(|s| s.disks.get_mut(rel_disk_name(rel)))
            {
                d.size = size;
            }
        }
        Ok(())
    }

    /// Preconditions of `DELETE .../qemu/{vmid}`.
    pub fn check_destroy(&self, vmid: u32, skiplock: bool) -> Result<(), StateError> {
        let vm = self.vm(vmid)?;
        locked(vm, skiplock)?;
        if vm.status != VmStatus::Stopped {
            return Err(StateError::failed(format!(
                "VM {vmid} is running - destroy failed"
            )));
        }
        if vm.config.get("protection").is_some_and(|p| p == "1") {
            return Err(StateError::failed(
                "can't remove VM - protection mode enabled",
            ));
        }
        Ok(())
    }

    /// Preconditions checked before a start task is created.
    pub fn check_start(&self, vmid: u32, skiplock: bool) -> Result<(), StateError> {
        let vm = self.vm(vmid)?;
        locked(vm, skiplock)?;
        if vm.is_template() {
            return Err(StateError::failed(
                "you can't start a vm if it's a template",
            ));
        }
        Ok(())
    }
}
