//! The simulated cluster: one node with VMs, storages and tasks.

pub mod storage;
pub mod tasks;
pub mod vmconfig;
mod vmops;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use storage::{DiskVolume, Storage, StorageKind, VolumeInfo};
pub use tasks::{Task, TaskAction, TaskState};
pub use vmconfig::VmConfig;
pub use vmops::CloneRequest;

use crate::faults::Faults;

/// Seconds since the UNIX epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Failure of a state operation, mapped to PVE's HTTP answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A parameter-specific problem (HTTP 400 with `errors`).
    #[error("{param}: {message}")]
    Param { param: String, message: String },
    /// Any other failure (HTTP 500, like a `die` in PVE).
    #[error("{0}")]
    Failed(String),
}

impl StateError {
    pub fn param(param: &str, message: impl Into<String>) -> Self {
        StateError::Param {
            param: param.to_string(),
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        StateError::Failed(message.into())
    }
}

/// Run state of a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    Running,
    Stopped,
    Paused,
}

impl VmStatus {
    /// `status` as PVE reports it (paused VMs are `running`).
    pub fn status_str(self) -> &'static str {
        match self {
            VmStatus::Stopped => "stopped",
            _ => "running",
        }
    }

    /// `qmpstatus` as PVE reports it.
    pub fn qmp_str(self) -> &'static str {
        match self {
            VmStatus::Running => "running",
            VmStatus::Stopped => "stopped",
            VmStatus::Paused => "paused",
        }
    }
}

/// One QEMU VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vm {
    pub vmid: u32,
    pub config: VmConfig,
    pub status: VmStatus,
    /// When the VM was started (epoch seconds) while running.
    pub started_at: Option<u64>,
    /// The (simulated) QEMU process id while running.
    pub pid: Option<u32>,
}

impl Vm {
    pub fn name(&self) -> String {
        self.config
            .get("name")
            .cloned()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }

    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|t| t == "1")
    }

    pub fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    /// Memory in bytes (the `memory` option is MiB, default 512).
    pub fn maxmem(&self) -> u64 {
        let mib = self
            .config
            .get("memory")
            .map(|m| vmconfig::prop_value(m, "current").unwrap_or(m.split(',').next().unwrap_or(m)))
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(512);
        mib << 20
    }

    pub fn cpus(&self) -> u64 {
        let get = |k: &str| {
            self.config
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
        };
        get("cores") * get("sockets")
    }

    /// Sum of the sizes of the VM's disks (`size=` of non-CD-ROM drives).
    pub fn maxdisk(&self) -> u64 {
        self.config
            .iter()
            .filter(|(k, v)| vmconfig::is_drive_key(k) && !vmconfig::is_cdrom(v))
            .filter_map(|(_, v)| vmconfig::prop_value(v, "size").and_then(vmconfig::parse_size))
            .sum()
    }

    pub fn uptime(&self) -> u64 {
        self.started_at
            .map(|s| now().saturating_sub(s))
            .unwrap_or(0)
    }
}

/// The whole simulated state. Accessed under one mutex.
#[derive(Debug)]
pub struct SimState {
    pub node: String,
    pub vms: BTreeMap<u32, Vm>,
    pub storages: BTreeMap<String, Storage>,
    pub tasks: BTreeMap<String, Task>,
    pub data_dir: PathBuf,
    pub task_duration: Duration,
    /// Per task type (`qmclone`, `imgcopy`, …), overriding `task_duration`.
    pub task_durations: BTreeMap<String, Duration>,
    /// Config file locks held by running tasks: VMID → (UPID, exclusive).
    pub file_locks: BTreeMap<u32, Vec<(String, bool)>>,
    /// How long a request waits for a config file lock before PVE's
    /// `can't lock file … got timeout` (PVE: 10 s).
    pub lock_timeout: Duration,
    pub boot_time: u64,
    next_pid: u32,
}

impl SimState {
    /// A node with storages `local` and `local-lvm` and template VM 9000.
    pub fn seeded(node: &str, data_dir: PathBuf, task_duration: Duration) -> std::io::Result<Self> {
        let local_path = data_dir.join("local");
        for ct in ["iso", "vztmpl", "backup"] {
            std::fs::create_dir_all(local_path.join(ct))?;
        }
        let mut storages = BTreeMap::new();
        storages.insert(
            "local".to_string(),
            Storage {
                id: "local".into(),
                kind: StorageKind::Dir,
                content: vec!["iso".into(), "vztmpl".into(), "backup".into()],
                total: 100 << 30,
                path: local_path,
                disks: BTreeMap::new(),
            },
        );
        let boot_time = now().saturating_sub(3600);
        let mut lvm = Storage {
            id: "local-lvm".into(),
            kind: StorageKind::LvmThin,
            content: vec!["images".into(), "rootdir".into()],
            total: 500 << 30,
            path: data_dir.join("local-lvm"),
            disks: BTreeMap::new(),
        };
        lvm.disks.insert(
            "base-9000-disk-0".into(),
            DiskVolume {
                vmid: 9000,
                size: 64 << 30,
                ctime: boot_time,
            },
        );
        storages.insert("local-lvm".to_string(), lvm);
        let mut vms = BTreeMap::new();
        vms.insert(9000, template_vm());
        Ok(SimState {
            node: node.to_string(),
            vms,
            storages,
            tasks: BTreeMap::new(),
            data_dir,
            task_duration,
            task_durations: BTreeMap::new(),
            file_locks: BTreeMap::new(),
            lock_timeout: Duration::from_secs(10),
            boot_time,
            next_pid: 4000 + (now() % 1000) as u32,
        })
    }

    fn alloc_pid(&mut self) -> u32 {
        self.next_pid += 1;
        self.next_pid
    }

    /// Temporary directory for uploads (like `/var/tmp`).
    pub fn upload_tmp_dir(&self) -> PathBuf {
        self.data_dir.join(".upload-tmp")
    }

    pub fn check_node(&self, node: &str) -> Result<(), StateError> {
        if node == self.node {
            Ok(())
        } else {
            Err(StateError::failed(format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )))
        }
    }

    pub fn vm(&self, vmid: u32) -> Result<&Vm, StateError> {
        self.vms.get(&vmid).ok_or_else(|| no_vm(&self.node, vmid))
    }

    pub fn vm_mut(&mut self, vmid: u32) -> Result<&mut Vm, StateError> {
        let node = self.node.clone();
        self.vms.get_mut(&vmid).ok_or_else(|| no_vm(&node, vmid))
    }

    pub fn storage(&self, id: &str) -> Result<&Storage, StateError> {
        self.storages
            .get(id)
            .ok_or_else(|| StateError::failed(format!("storage '{id}' does not exist")))
    }

    /// How long a task of `task_type` runs.
    pub fn duration_of(&self, task_type: &str) -> Duration {
        self.task_durations
            .get(task_type)
            .copied()
            .unwrap_or(self.task_duration)
    }

    /// Whether VM `vmid`'s config file lock can be taken now (`shared`:
    /// alongside other shared holders, as a clone takes its source's).
    pub fn config_lock_free(&self, vmid: u32, shared: bool) -> bool {
        match self.file_locks.get(&vmid) {
            None => true,
            Some(held) => held.is_empty() || (shared && held.iter().all(|(_, ex)| !ex)),
        }
    }

    /// Fails like PVE when the config file lock is held by a running task.
    pub fn check_config_lock(&self, vmid: u32, shared: bool) -> Result<(), StateError> {
        if self.config_lock_free(vmid, shared) {
            Ok(())
        } else {
            Err(StateError::failed(format!(
                "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
            )))
        }
    }

    /// Lowest free VMID ≥ 100.
    pub fn next_free_vmid(&self) -> u32 {
        (100..).find(|id| !self.vms.contains_key(id)).unwrap_or(100)
    }
}

fn no_vm(node: &str, vmid: u32) -> StateError {
    StateError::failed(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

fn template_vm() -> Vm {
    let mut c = VmConfig::new();
    for (k, v) in [
        ("agent", "1"),
        ("boot", "order=scsi0;ide2;net0"),
        ("cores", "2"),
        ("cpu", "x86-64-v2-AES"),
        ("ide2", "none,media=cdrom"),
        ("memory", "4096"),
        ("meta", "creation-qemu=9.2.0,ctime=1732000000"),
        ("name", "win11-template"),
        ("net0", "virtio=BC:24:11:5E:7A:01,bridge=vmbr0,firewall=1"),
        ("numa", "0"),
        ("ostype", "win11"),
        (
            "scsi0",
            "local-lvm:base-9000-disk-0,cache=writeback,discard=on,size=64G",
        ),
        ("scsihw", "virtio-scsi-single"),
        ("smbios1", "uuid=6f1c1e0a-3f5e-4c7b-9a1d-2b8f0c9e7d11"),
        ("sockets", "1"),
        ("template", "1"),
        ("vmgenid", "0d6a7c3e-8b9f-4e21-a5c4-71f2e3d4b5a6"),
    ] {
        c.insert(k.to_string(), v.to_string());
    }
    Vm {
        vmid: 9000,
        config: c,
        status: VmStatus::Stopped,
        started_at: None,
        pid: None,
    }
}

/// The state shared by handlers, tasks and the library handle.
#[derive(Debug, Clone)]
pub struct SharedState {
    inner: Arc<Mutex<SimState>>,
    faults: Faults,
    /// While `true`, tasks stay `running` after their duration.
    hold: Arc<tokio::sync::watch::Sender<bool>>,
}

impl SharedState {
    pub fn new(state: SimState, faults: Faults) -> Self {
        SharedState {
            inner: Arc::new(Mutex::new(state)),
            faults,
            hold: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// How long tasks of `task_type` run (`None`: the default for all).
    pub fn set_task_duration(&self, task_type: Option<&str>, d: Duration) {
        let mut st = self.lock();
        match task_type {
            Some(t) => {
                st.task_durations.insert(t.to_string(), d);
            }
            None => st.task_duration = d,
        }
    }

    /// Keeps tasks running past their duration until `hold_tasks(false)`,
    /// so tests can observe the in-progress state deterministically.
    pub fn hold_tasks(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    pub fn lock(&self) -> MutexGuard<'_, SimState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (up to the state's `lock_timeout`) until VM `vmid`'s config
    /// file lock is free, like PVE's `lock_config` with its timeout; then
    /// the caller checks again under the state lock
    /// ([`SimState::check_config_lock`]) and does its work.
    pub async fn wait_config_lock(&self, vmid: u32, shared: bool) -> Result<(), StateError> {
        let timeout = self.lock().lock_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let st = self.lock();
                if st.config_lock_free(vmid, shared) || !st.vms.contains_key(&vmid) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    return st.check_config_lock(vmid, shared);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Creates a running task and schedules its completion after the
    /// configured duration. Returns the UPID.
    pub fn spawn_task(
        &self,
        st: &mut SimState,
        task_type: &str,
        id: &str,
        user: &str,
        action: TaskAction,
    ) -> String {
        let forced = self.faults.take_task_outcome(task_type);
        let pid = st.alloc_pid();
        // Process start in clock ticks since boot, like /proc/PID/stat.
        let pstart = now().saturating_sub(st.boot_time) * 100 + u64::from(pid % 100);
        let parts = tasks::UpidParts {
            node: &st.node,
            pid,
            pstart,
            task_type,
            id,
            user,
        };
        let held = action.config_locks();
        let task = Task::new(parts, action, forced);
        let upid = task.upid.clone();
        st.tasks.insert(upid.clone(), task);
        for (vmid, exclusive) in held {
            st.file_locks
                .entry(vmid)
                .or_default()
                .push((upid.clone(), exclusive));
        }
        let shared = self.clone();
        let delay = st.duration_of(task_type);
        let task_upid = upid.clone();
        let mut hold = self.hold.subscribe();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // The sender lives as long as the state; an error means shutdown.
            let _ = hold.wait_for(|held| !*held).await;
            shared.lock().finish_task(&task_upid);
        });
        upid
    }
}
