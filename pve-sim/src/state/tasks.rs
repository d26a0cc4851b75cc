//! Worker tasks with real UPIDs, which end after a delay with `OK`,
//! `WARNINGS: n` or an error.

use std::path::PathBuf;

use serde::Serialize;
use sha2::Digest;

use super::vmconfig::VmConfig;
use super::{now, SimState, VmStatus};
use crate::faults::TaskOutcome;

/// What a task does when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskAction {
    /// Unlocks the new VM (or removes it when the task fails).
    Clone {
        source: u32,
        newid: u32,
    },
    Start {
        vmid: u32,
    },
    Stop {
        vmid: u32,
    },
    Shutdown {
        vmid: u32,
    },
    Reset {
        vmid: u32,
    },
    Reboot {
        vmid: u32,
    },
    Suspend {
        vmid: u32,
    },
    Resume {
        vmid: u32,
    },
    Destroy {
        vmid: u32,
    },
    /// Asynchronous config update (`POST .../config`).
    Config {
        vmid: u32,
        set: VmConfig,
        delete: Vec<String>,
        force: bool,
    },
    Resize {
        vmid: u32,
        disk: String,
        size: u64,
    },
    /// Moves an uploaded temp file into the storage after checking it.
    Upload {
        tmp: PathBuf,
        target: PathBuf,
        checksum: Option<(String, String)>,
    },
    DeleteVolume {
        storage: String,
        volume: String,
    },
}

impl TaskAction {
    /// The config file locks the task holds while it runs: (VMID,
    /// exclusive). A clone holds its source shared (clones of one template
    /// run side by side); changes of a VM hold it exclusively.
    pub fn config_locks(&self) -> Vec<(u32, bool)> {
        match self {
            TaskAction::Clone { source, .. } => vec![(*source, false)],
            TaskAction::Start { vmid }
            | TaskAction::Stop { vmid }
            | TaskAction::Shutdown { vmid }
            | TaskAction::Reset { vmid }
            | TaskAction::Reboot { vmid }
            | TaskAction::Suspend { vmid }
            | TaskAction::Resume { vmid }
            | TaskAction::Destroy { vmid }
            | TaskAction::Config { vmid, .. }
            | TaskAction::Resize { vmid, .. } => vec![(*vmid, true)],
            TaskAction::Upload { .. } | TaskAction::DeleteVolume { .. } => Vec::new(),
        }
    }
}

/// Running or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    Stopped,
}

/// One task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Task {
    pub upid: String,
    pub node: String,
    pub pid: u32,
    pub pstart: u64,
    pub starttime: u64,
    pub task_type: String,
    pub id: String,
    pub user: String,
    pub status: TaskState,
    pub exitstatus: Option<String>,
    pub endtime: Option<u64>,
    pub log: Vec<String>,
    pub action: TaskAction,
    #[serde(skip)]
    forced: Option<TaskOutcome>,
}

/// The parts a UPID is made of.
#[derive(Debug, Clone)]
pub struct UpidParts<'a> {
    pub node: &'a str,
    pub pid: u32,
    pub pstart: u64,
    pub task_type: &'a str,
    pub id: &'a str,
    pub user: &'a str,
}

impl Task {
    pub fn new(parts: UpidParts<'_>, action: TaskAction, forced: Option<TaskOutcome>) -> Self {
        let UpidParts {
            node,
            pid,
            pstart,
            task_type,
            id,
            user,
        } = parts;
        let starttime = now();
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{id}:{user}:");
        Task {
            upid,
            node: node.to_string(),
            pid,
            pstart,
            starttime,
            task_type: task_type.to_string(),
            id: id.to_string(),
            user: user.to_string(),
            status: TaskState::Running,
            exitstatus: None,
            endtime: None,
            log: Vec::new(),
            action,
            forced,
        }
    }
}

fn hash_file(algo: &str, path: &std::path::Path) -> std::io::Result<String> {
    let data = std::fs::read(path)?;
    Ok(match algo {
        "md5" => hex::encode(md5::Md5::digest(&data)),
        "sha1" => hex::encode(sha1::Sha1::digest(&data)),
        "sha224" => hex::encode(sha2::Sha224::digest(&data)),
        "sha384" => hex::encode(sha2::Sha384::digest(&data)),
        "sha512" => hex::encode(sha2::Sha512::digest(&data)),
        _ => hex::encode(sha2::Sha256::digest(&data)),
    })
}

impl SimState {
    /// Ends a task: applies its action (or the forced outcome) and records
    /// the exit status and log.
    pub fn finish_task(&mut self, upid: &str) {
        let Some(task) = self.tasks.get(upid).cloned() else {
            return;
        };
        if task.status == TaskState::Stopped {
            return;
        }
        let result = match &task.forced {
            Some(TaskOutcome::Error(msg)) => Err(msg.clone()),
            _ => self.apply_action(&task.action),
        };
        let (lines, exitstatus) = match result {
            Ok(mut lines) => match &task.forced {
                Some(TaskOutcome::Warnings(n)) => {
                    lines.extend((1..=*n).map(|i| format!("WARN: simulated warning {i}")));
                    lines.push(format!("TASK WARNINGS: {n}"));
                    (lines, format!("WARNINGS: {n}"))
                }
                _ => {
                    lines.push("TASK OK".into());
                    (lines, "OK".to_string())
                }
            },
            Err(msg) => {
                self.rollback_action(&task.action);
                (vec![format!("TASK ERROR: {msg}")], msg)
            }
        };
        for held in self.file_locks.values_mut() {
            held.retain(|(u, _)| u != upid);
        }
        self.file_locks.retain(|_, held| !held.is_empty());
        if let Some(t) = self.tasks.get_mut(upid) {
            t.log.extend(lines);
            t.status = TaskState::Stopped;
            t.exitstatus = Some(exitstatus);
            t.endtime = Some(now());
        }
    }

    fn running(&self, vmid: u32) -> Result<VmStatus, String> {
        self.vms
            .get(&vmid)
            .map(|v| v.status)
            .ok_or_else(|| format!("VM {vmid} does not exist"))
    }

    fn set_status(&mut self, vmid: u32, status: VmStatus) {
        let pid = (status != VmStatus::Stopped).then(|| self.alloc_pid());
        if let Some(vm) = self.vms.get_mut(&vmid) {
            match status {
                VmStatus::Stopped => {
                    vm.started_at = None;
                    vm.pid = None;
                }
                _ if vm.status == VmStatus::Stopped => {
                    vm.started_at = Some(now());
                    vm.pid = pid;
                }
                _ => {}
            }
            vm.status = status;
        }
    }

    fn apply_action(&mut self, action: &TaskAction) -> Result<Vec<String>, String> {
        match action {
            TaskAction::Clone { source, newid } => {
                let vm = self
                    .vms
                    .get_mut(newid)
                    .ok_or_else(|| format!("clone failed: VM {newid} vanished"))?;
                vm.config.remove("lock");
                Ok(vec![format!("clone VM {source} to VM {newid}: done")])
            }
            TaskAction::Start { vmid } => {
                let vm = self
                    .vms
                    .get(vmid)
                    .ok_or_else(|| format!("VM {vmid} does not exist"))?;
                if let Some(lock) = vm.lock() {
                    return Err(format!("VM is locked ({lock})"));
                }
                if vm.status != VmStatus::Stopped {
                    return Err(format!("VM {vmid} already running"));
                }
                self.set_status(*vmid, VmStatus::Running);
                Ok(vec![format!("start VM {vmid}: UPID ok")])
            }
            TaskAction::Stop { vmid } => {
                self.running(*vmid)?;
                self.set_status(*vmid, VmStatus::Stopped);
                Ok(vec![])
            }
            TaskAction::Shutdown { vmid } => {
                if self.running(*vmid)? == VmStatus::Stopped {
                    return Err(format!("VM {vmid} not running"));
                }
                self.set_status(*vmid, VmStatus::Stopped);
                Ok(vec![])
            }
            TaskAction::Reset { vmid } | TaskAction::Reboot { vmid } => {
                if self.running(*vmid)? == VmStatus::Stopped {
                    return Err(format!("VM {vmid} not running"));
                }
                self.set_status(*vmid, VmStatus::Running);
                Ok(vec![])
            }
            TaskAction::Suspend { vmid } => {
                if self.running(*vmid)? == VmStatus::Stopped {
                    return Err(format!("VM {vmid} not running"));
                }
                self.set_status(*vmid, VmStatus::Paused);
                Ok(vec![])
            }
            TaskAction::Resume { vmid } => {
                match self.running(*vmid)? {
                    VmStatus::Stopped => return Err(format!("VM {vmid} not running")),
                    VmStatus::Running => return Err(format!("VM {vmid} not paused")),
                    VmStatus::Paused => {}
                }
                self.set_status(*vmid, VmStatus::Running);
                Ok(vec![])
            }
            TaskAction::Destroy { vmid } => {
                self.vms.remove(vmid);
                let mut lines = Vec::new();
                for storage in self.storages.values_mut() {
                    let owned: Vec<String> = storage
                        .disks
                        .iter()
                        .filter(|(_, d)| d.vmid == *vmid)
                        .map(|(n, _)| n.clone())
                        .collect();
                    for name in owned {
                        storage.disks.remove(&name);
                        lines.push(format!("  Logical volume \"{name}\" successfully removed."));
                    }
                }
                Ok(lines)
            }
            TaskAction::Config {
                vmid,
                set,
                delete,
                force,
            } => {
                self.apply_config(*vmid, set, delete, *force)
                    .map_err(|e| e.to_string())?;
                Ok(vec![format!(
                    "update VM {vmid}: {}",
                    set.keys().cloned().collect::<Vec<_>>().join(", ")
                )])
            }
            TaskAction::Resize { vmid, disk, size } => {
                self.apply_resize(*vmid, disk, *size)
                    .map_err(|e| e.to_string())?;
                Ok(vec![format!("resized {disk} of VM {vmid}")])
            }
            TaskAction::Upload {
                tmp,
                target,
                checksum,
            } => {
                if let Some((algo, expected)) = checksum {
                    let got = hash_file(algo, tmp).map_err(|e| format!("checksum failed: {e}"))?;
                    if !got.eq_ignore_ascii_case(expected) {
                        return Err(format!(
                            "checksum mismatch: got '{got}' != expect '{expected}'"
                        ));
                    }
                }
                std::fs::rename(tmp, target)
                    .or_else(|_| std::fs::copy(tmp, target).map(|_| ()))
                    .map_err(|e| format!("unable to store '{}': {e}", target.display()))?;
                let _ = std::fs::remove_file(tmp);
                Ok(vec![
                    format!("starting file import from: {}", tmp.display()),
                    format!("target node: {}", self.node),
                    format!("target file: {}", target.display()),
                    "file size is: ok".to_string(),
                ])
            }
            TaskAction::DeleteVolume { storage, volume } => {
                let st = self
                    .storages
                    .get_mut(storage)
                    .ok_or_else(|| format!("storage '{storage}' does not exist"))?;
                if let Some(path) = st.file_path(volume) {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("unable to delete '{}': {e}", path.display()))?;
                } else {
                    st.disks.remove(super::storage::rel_disk_name(volume));
                }
                Ok(vec![format!("removed volume {storage}:{volume}")])
            }
        }
    }

    fn rollback_action(&mut self, action: &TaskAction) {
        match action {
            TaskAction::Clone { newid, .. } => {
                self.vms.remove(newid);
                for storage in self.storages.values_mut() {
                    storage.disks.retain(|_, d| d.vmid != *newid);
                }
            }
            TaskAction::Upload { tmp, .. } => {
                let _ = std::fs::remove_file(tmp);
            }
            _ => {}
        }
    }
}
