//! The `proxmox.<action>` executors (inventory §4.6), with the fixes of §8:
//! `wait-task` checks `exitstatus`, `update-config` sends only PVE 9.1 config
//! keys (typed), the provisioning ISO is built in-process and uploaded by the
//! API. Every PVE call goes through the generated `proxmox-api` sub-clients
//! over [`PveApi`]; only the ticket login and the multipart upload are our own
//! requests (see docs/agent.md).

use std::fmt::{Debug, Display};
use std::future::Future;
use std::time::Duration;

use proxmox_api::cluster::resources;
use proxmox_api::nodes::node::qemu::vmid::DeleteParams;
use proxmox_api::nodes::node::qemu::vmid::{clone as vm_clone, resize, sendkey, VmidClient};
use proxmox_api::nodes::node::NodeClient;
use proxmox_api::types::bounded_integer::BoundedInteger;
use proxmox_api::types::VmId;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::{pve_json, tasks, vm_config, PveApi, PveError};
use crate::executor::{ExecContext, ExecError, Target};
use crate::retry::RetryPolicy;

/// Parameters shared by the actions.
pub(crate) struct Call<'a> {
    pub action: &'a str,
    pub payload: &'a Value,
    pub target: &'a Target,
    /// The target's API, cancelled with the command.
    pub api: PveApi,
    pub known_hosts: &'a crate::ssh::KnownHosts,
}

impl Call<'_> {
    pub fn node(&self) -> Result<String, ExecError> {
        let node = self
            .payload
            .get("node")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.target.config.node)
            .to_string();
        if node.is_empty()
            || !node
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ExecError::bad_request(format!("invalid node {node:?}")));
        }
        Ok(node)
    }

    pub fn opt_u64(&self, keys: &[&str]) -> Result<Option<u64>, ExecError> {
        for k in keys {
            match self.payload.get(*k) {
                None | Some(Value::Null) => continue,
                Some(Value::Number(n)) if n.as_u64().is_some() => return Ok(n.as_u64()),
                Some(Value::String(s)) if s.trim().parse::<u64>().is_ok() => {
                    return Ok(s.trim().parse().ok())
                }
                Some(other) => {
                    return Err(ExecError::bad_request(format!(
                        "{k} must be a non-negative integer, got {other}"
                    )))
                }
            }
        }
        Ok(None)
    }

    pub fn vmid_from(&self, keys: &[&str]) -> Result<u64, ExecError> {
        match self.opt_u64(keys)? {
            Some(v) if (100..=999_999_999).contains(&v) => Ok(v),
            Some(v) => Err(ExecError::bad_request(format!(
                "vmid {v} is out of range (100..999999999)"
            ))),
            None => Err(ExecError::bad_request(format!(
                "{} required for proxmox.{}",
                keys[0], self.action
            ))),
        }
    }

    pub fn vmid(&self) -> Result<u64, ExecError> {
        self.vmid_from(&["vmid"])
    }

    pub fn opt_str(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| {
            self.payload
                .get(*k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        })
    }

    pub fn req_str(&self, keys: &[&str]) -> Result<String, ExecError> {
        self.opt_str(keys).ok_or_else(|| {
            ExecError::bad_request(format!("{} required for proxmox.{}", keys[0], self.action))
        })
    }

    pub fn flag(&self, key: &str) -> bool {
        match self.payload.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
            Some(Value::String(s)) => matches!(s.as_str(), "1" | "true" | "yes" | "on"),
            _ => false,
        }
    }

    /// A duration in ms from `keys`, defaulted and clamped.
    pub fn millis(
        &self,
        keys: &[&str],
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<Duration, ExecError> {
        let v = self.opt_u64(keys)?.unwrap_or(default).clamp(min, max);
        Ok(Duration::from_millis(v))
    }

    pub fn cancel(&self) -> &CancellationToken {
        self.api.cancel()
    }

    /// `/nodes/{node}` of this call.
    pub fn node_api(&self) -> Result<NodeClient<PveApi>, ExecError> {
        Ok(self.api.node(&self.node()?))
    }

    /// `/nodes/{node}/qemu/{vmid}` of this call.
    pub fn vm(&self, vmid: u64) -> Result<VmidClient<PveApi>, ExecError> {
        vm_client(&self.api, &self.node()?, vmid)
    }
}

fn vm_client(api: &PveApi, node: &str, vmid: u64) -> Result<VmidClient<PveApi>, ExecError> {
    let id = typed("vmid", vmid, VmId::try_from(i128::from(vmid)))?;
    Ok(api.node(node).qemu().vmid(id))
}

/// A payload value converted to one of the crate's typed parameter values;
/// a value the type refuses is a `BAD_REQUEST` naming the key.
fn typed<T, E: Display>(
    key: &str,
    value: impl Debug,
    converted: Result<T, E>,
) -> Result<T, ExecError> {
    converted.map_err(|e| ExecError::bad_request(format!("{key} {value:?} is invalid: {e}")))
}

/// A typed PVE output as the action's JSON result.
pub(crate) fn result<T: Serialize>(output: &T) -> Result<Value, ExecError> {
    Ok(pve_json(output)?)
}

/// `{upid}` of a dispatched task.
async fn upid(
    dispatch: impl Future<Output = Result<String, PveError>>,
) -> Result<Value, ExecError> {
    Ok(json!({ "upid": dispatch.await? }))
}

/// Keys of an `update-config` payload that are ours, never PVE config keys.
const NON_CONFIG_KEYS: &[&str] = &[
    "vmid",
    "node",
    "config",
    "target",
    "targetId",
    "timeoutMs",
    "timeout_ms",
    "timeout",
    "intervalMs",
    "interval_ms",
    "wait",
];

pub async fn execute(action: &str, payload: &Value, ctx: &ExecContext) -> Result<Value, ExecError> {
    let target = ctx.targets.resolve(payload)?;
    let c = Call {
        action,
        payload,
        target,
        api: PveApi::new(ctx.targets.client(target)?, ctx.cancel.clone()),
        known_hosts: ctx.targets.known_hosts(),
    };
    match action {
        "start" => upid(c.vm(c.vmid()?)?.status().start().post(Default::default())).await,
        "stop" => upid(c.vm(c.vmid()?)?.status().stop().post(Default::default())).await,
        "shutdown" => {
            upid(
                c.vm(c.vmid()?)?
                    .status()
                    .shutdown()
                    .post(Default::default()),
            )
            .await
        }
        "reset" => upid(c.vm(c.vmid()?)?.status().reset().post(Default::default())).await,
        "suspend" => upid(c.vm(c.vmid()?)?.status().suspend().post(Default::default())).await,
        "resume" => upid(c.vm(c.vmid()?)?.status().resume().post(Default::default())).await,
        "reboot" => upid(c.vm(c.vmid()?)?.status().reboot().post(Default::default())).await,
        "clone" => clone(&c).await,
        "delete" => {
            let vm = c.vm(c.vmid()?)?;
            let params = DeleteParams {
                purge: c.flag("purge").then_some(true),
                destroy_unreferenced_disks: (c.flag("destroyUnreferencedDisks")
                    || c.flag("destroy-unreferenced-disks"))
                .then_some(true),
                ..Default::default()
            };
            upid(vm.delete(params)).await
        }
        "list" | "list-vms" => result(&c.node_api()?.qemu().get(Default::default()).await?),
        "vm-status" => result(&c.vm(c.vmid()?)?.status().current().get().await?),
        "get-config" | "config.get" => {
            result(&c.vm(c.vmid()?)?.config().get(Default::default()).await?)
        }
        "update-config" | "config.update" => update_config(&c).await,
        "resize-disk" => {
            let vm = c.vm(c.vmid()?)?;
            let disk = c.req_str(&["disk"])?;
            let size = c.req_str(&["size"])?;
            let params = resize::PutParams::new(
                typed("disk", &disk, resize::Disk::try_from(disk.as_str()))?,
                typed("size", &size, resize::SizeStr::try_from(size.clone()))?,
            );
            upid(vm.resize().put(params)).await
        }
        "sendkey" => {
            let vm = c.vm(c.vmid()?)?;
            let params = sendkey::PutParams::new(c.req_str(&["key"])?);
            vm.sendkey().put(params).await?;
            Ok(Value::Null)
        }
        "cluster-resources" => {
            let ty = c
                .opt_str(&["type", "resourceType"])
                .map(|t| typed("type", &t, resources::Type::try_from(t.as_str())))
                .transpose()?;
            let params = resources::GetParams {
                ty,
                ..Default::default()
            };
            result(&c.api.cluster().resources().get(params).await?)
        }
        "status" => {
            let mut v = result(&c.api.version().get().await?)?;
            if let Value::Object(m) = &mut v {
                m.insert("connected".into(), Value::Bool(true));
                m.insert("tls".into(), Value::from(c.target.config.tls_mode()));
                m.insert("insecure".into(), Value::Bool(c.target.config.tls.insecure));
                m.insert("target".into(), Value::from(c.target.config.id.clone()));
            }
            Ok(v)
        }
        "login" => {
            c.api.transport().login(c.flag("force"), c.cancel()).await?;
            c.api.version().get().await?;
            Ok(json!({ "ok": true }))
        }
        "task-status" => {
            let upid = c.req_str(&["upid", "task", "taskId"])?;
            let wait = c.millis(&["waitMs", "wait_ms"], 0, 0, 60_000)?;
            let interval = c.millis(&["intervalMs", "interval_ms"], 250, 100, 15_000)?;
            result(&tasks::task_status_within(&c.api, &upid, wait, interval).await?)
        }
        "wait-task" => {
            let upid = c.req_str(&["upid", "task", "taskId"])?;
            let timeout = c.millis(&["timeoutMs", "timeout_ms"], 300_000, 1_000, 1_800_000)?;
            let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
            Ok(tasks::wait_task(&c.api, &upid, timeout, interval).await?)
        }
        "wait-vm-status" => wait_vm_status(&c).await,
        "wait-vm-presence" => wait_vm_presence(&c).await,
        "create-provision-iso" => crate::provision::create_provision_iso(&c).await,
        "upload-iso" => crate::provision::upload_iso(&c).await,
        "attach-cdrom" => crate::provision::attach_cdrom(&c).await,
        "detach-cdrom" => crate::provision::detach_cdrom(&c).await,
        other => Err(ExecError::new(
            "UNKNOWN_COMMAND",
            format!("Unknown proxmox action: {other}"),
        )),
    }
}

/// Clone with "already exists" on a retried dispatch counted as success
/// (our own earlier attempt created it). A missing `newid` is taken from
/// `/cluster/nextid`.
async fn clone(c: &Call<'_>) -> Result<Value, ExecError> {
    let template = c.vmid_from(&["vmid", "templateVmId", "templateVmid"])?;
    let newid = match c.opt_u64(&["newid", "newId"])? {
        Some(n) => n,
        None => {
            let next = c.api.cluster().nextid().get(Default::default()).await?;
            u64::try_from(next).map_err(|_| {
                ExecError::new("PROXMOX_BAD_RESPONSE", format!("nextid answered {next}"))
            })?
        }
    };
    let mut params = vm_clone::PostParams::new(typed(
        "newid",
        newid,
        vm_clone::NewidInt::try_from(i128::from(newid)),
    )?);
    params.name = c.opt_str(&["name"]);
    params.storage = c.opt_str(&["storage"]);
    params.format = c
        .opt_str(&["format"])
        .map(|f| typed("format", &f, vm_clone::Format::try_from(f.as_str())))
        .transpose()?;
    params.description = c.opt_str(&["description"]);
    params.pool = c.opt_str(&["pool"]);
    params.snapname = c
        .opt_str(&["snapname"])
        .map(|s| typed("snapname", &s, vm_clone::SnapnameStr::try_from(s.clone())))
        .transpose()?;
    if c.payload.get("full").is_some() {
        params.full = Some(c.flag("full"));
    }
    let budget = *c.api.retry();
    // With `ownerTag`, a VM already at `newid` is ours when its description
    // carries the tag (a re-dispatch after the agent or server died
    // mid-clone): counted as done, never cloned twice. Another VM there is
    // `VMID_TAKEN`.
    let owner_tag = c.opt_str(&["ownerTag"]);
    // Dispatch is retried here, for transient failures only (never after a
    // wait), so a retried dispatch can tell "already exists" apart.
    let single = c.api.with_retry(RetryPolicy::none());
    // `VmidClient::clone()` is the `/clone` sub-client, not `Clone::clone`.
    let dispatch = vm_client(&single, &c.node()?, template)?.clone();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match dispatch.post(params.clone()).await {
            Ok(upid) => return Ok(json!({ "upid": upid, "newid": newid })),
            Err(e) if e.is_already_exists() && owner_tag.is_some() => {
                let tag = owner_tag.unwrap_or_default();
                let cfg = result(&c.vm(newid)?.config().get(Default::default()).await?)?;
                let description = cfg["description"].as_str().unwrap_or_default();
                if description.contains(&tag) {
                    return Ok(json!({
                        "upid": Value::Null, "newid": newid, "alreadyExists": true,
                        "lock": cfg.get("lock").cloned().unwrap_or(Value::Null),
                    }));
                }
                return Err(ExecError::new(
                    "VMID_TAKEN",
                    format!("VM {newid} already exists and is not this job's (no tag {tag:?} in its description)"),
                ));
            }
            Err(e) if e.is_already_exists() && attempt > 1 => {
                return Ok(json!({ "upid": Value::Null, "newid": newid, "alreadyExists": true }))
            }
            Err(e) if attempt < budget.max_attempts && e.is_transient() => {
                let delay = budget.backoff.delay(attempt);
                tokio::select! {
                    _ = c.cancel().cancelled() => return Err(ExecError::cancelled()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn update_config(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let mut merged: Map<String, Value> = match c.payload.get("config") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(ExecError::bad_request("config must be an object")),
    };
    if let Value::Object(top) = c.payload {
        for (k, v) in top {
            if !NON_CONFIG_KEYS.contains(&k.as_str()) {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    if merged.is_empty() {
        return Err(ExecError::bad_request(
            "config required for proxmox.update-config (an object of PVE config keys)",
        ));
    }
    let host_level = vm_config::host_level_keys(&merged);
    if !host_level.is_empty() {
        c.target.require_host_level_config(&format!(
            "VM config key(s) {} reach the Proxmox host",
            host_level.join(", ")
        ))?;
    }
    let params = vm_config::put_params(&merged)?;
    c.vm(vmid)?.config().put(params).await?;
    // PUT …/config is synchronous (PVE answers null): no task to wait for.
    Ok(json!({ "updated": true, "upid": Value::Null }))
}

async fn wait_vm_status(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let desired = c
        .opt_str(&["desiredStatus", "status"])
        .unwrap_or_else(|| "running".into());
    let timeout = c.millis(&["timeoutMs", "timeout_ms"], 120_000, 1_000, 1_800_000)?;
    let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
    let current = c.vm(vmid)?.status().current();
    let start = std::time::Instant::now();
    loop {
        let st = result(&current.get().await?)?;
        if st["status"].as_str() == Some(desired.as_str()) {
            return Ok(st);
        }
        if start.elapsed() + interval > timeout {
            return Err(ExecError::new(
                "PROXMOX_TIMEOUT",
                format!(
                    "VM {vmid} did not reach status \"{desired}\" within {}s",
                    timeout.as_secs()
                ),
            ));
        }
        tokio::select! {
            _ = c.cancel().cancelled() => return Err(ExecError::cancelled()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// `wait-vm-presence {vmid, exists=true, unlocked?}`: until the VM is
/// (or is not) in the node's list; with `unlocked`, also until its config
/// lock (`clone`, …) is gone — the wait of a clone whose task id was lost.
async fn wait_vm_presence(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let exists = match c.payload.get("exists") {
        None | Some(Value::Null) => true,
        _ => c.flag("exists"),
    };
    let unlocked = exists && c.flag("unlocked");
    let timeout = c.millis(&["timeoutMs", "timeout_ms"], 45_000, 1_000, 600_000)?;
    let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
    let qemu = c.node_api()?.qemu();
    let start = std::time::Instant::now();
    loop {
        let list = qemu.get(Default::default()).await?;
        let present = list.iter().any(|vm| vm.vmid.get() == i128::from(vmid));
        if present == exists && !unlocked {
            return Ok(json!({ "vmid": vmid, "exists": exists }));
        }
        if present && unlocked {
            let st = result(&c.vm(vmid)?.status().current().get().await?)?;
            if st.get("lock").is_none_or(Value::is_null) {
                return Ok(json!({ "vmid": vmid, "exists": true, "unlocked": true }));
            }
        }
        if start.elapsed() + interval > timeout {
            return Err(ExecError::new(
                "PROXMOX_TIMEOUT",
                format!(
                    "VM {vmid} did not become {} within {}s",
                    if exists { "present" } else { "absent" },
                    timeout.as_secs()
                ),
            ));
        }
        tokio::select! {
            _ = c.cancel().cancelled() => return Err(ExecError::cancelled()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
