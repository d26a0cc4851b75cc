//! The `proxmox.<action>` executors (inventory §4.6), with the fixes of §8:
//! `wait-task` checks `exitstatus`, `update-config` forwards only config
//! keys, the provisioning ISO is built in-process and uploaded by the API.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::{enc, param_value, PveClient, PveError};
use crate::executor::{ExecContext, ExecError, Target};
use crate::retry::RetryPolicy;

/// Parameters shared by the actions.
pub(crate) struct Call<'a> {
    pub action: &'a str,
    pub payload: &'a Value,
    pub target: &'a Target,
    pub client: std::sync::Arc<PveClient>,
    pub cancel: &'a CancellationToken,
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

    pub fn vm_path(&self, vmid: u64, rest: &str) -> Result<String, ExecError> {
        Ok(format!("/nodes/{}/qemu/{vmid}{rest}", enc(&self.node()?)))
    }

    pub async fn get(&self, path: &str, params: &[(String, String)]) -> Result<Value, ExecError> {
        Ok(self
            .client
            .request(Method::GET, path, params, self.cancel)
            .await?)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, ExecError> {
        Ok(self
            .client
            .request(method, path, params, self.cancel)
            .await?)
    }
}

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
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
    let client = ctx.targets.client(target)?;
    let c = Call {
        action,
        payload,
        target,
        client,
        cancel: &ctx.cancel,
        known_hosts: ctx.targets.known_hosts(),
    };
    match action {
        "start" | "stop" | "shutdown" | "reset" | "suspend" | "resume" | "reboot" => {
            let vmid = c.vmid()?;
            let upid = c
                .send(
                    Method::POST,
                    &c.vm_path(vmid, &format!("/status/{action}"))?,
                    &[],
                )
                .await?;
            Ok(json!({ "upid": upid }))
        }
        "clone" => clone(&c).await,
        "delete" => {
            let vmid = c.vmid()?;
            let mut params = Vec::new();
            if c.flag("purge") {
                params.push(p("purge", 1));
            }
            if c.flag("destroyUnreferencedDisks") || c.flag("destroy-unreferenced-disks") {
                params.push(p("destroy-unreferenced-disks", 1));
            }
            let upid = c
                .send(Method::DELETE, &c.vm_path(vmid, "")?, &params)
                .await?;
            Ok(json!({ "upid": upid }))
        }
        "list" | "list-vms" => {
            c.get(&format!("/nodes/{}/qemu", enc(&c.node()?)), &[])
                .await
        }
        "vm-status" => c.get(&c.vm_path(c.vmid()?, "/status/current")?, &[]).await,
        "get-config" | "config.get" => c.get(&c.vm_path(c.vmid()?, "/config")?, &[]).await,
        "update-config" | "config.update" => update_config(&c).await,
        "resize-disk" => {
            let vmid = c.vmid()?;
            let params = vec![
                p("disk", c.req_str(&["disk"])?),
                p("size", c.req_str(&["size"])?),
            ];
            let upid = c
                .send(Method::PUT, &c.vm_path(vmid, "/resize")?, &params)
                .await?;
            Ok(json!({ "upid": upid }))
        }
        "sendkey" => {
            let vmid = c.vmid()?;
            let params = vec![p("key", c.req_str(&["key"])?)];
            c.send(Method::PUT, &c.vm_path(vmid, "/sendkey")?, &params)
                .await
        }
        "cluster-resources" => {
            let mut params = Vec::new();
            if let Some(t) = c.opt_str(&["type", "resourceType"]) {
                params.push(p("type", t));
            }
            c.get("/cluster/resources", &params).await
        }
        "status" => {
            let mut v = c.get("/version", &[]).await?;
            if let Value::Object(m) = &mut v {
                m.insert("connected".into(), Value::Bool(true));
                m.insert("tls".into(), Value::from(c.target.config.tls_mode()));
                m.insert("insecure".into(), Value::Bool(c.target.config.tls.insecure));
                m.insert("target".into(), Value::from(c.target.config.id.clone()));
            }
            Ok(v)
        }
        "login" => {
            c.client.login(c.flag("force"), c.cancel).await?;
            c.get("/version", &[]).await?;
            Ok(json!({ "ok": true }))
        }
        "task-status" => {
            let upid = c.req_str(&["upid", "task", "taskId"])?;
            Ok(c.client.task_status(&upid, c.cancel).await?)
        }
        "wait-task" => {
            let upid = c.req_str(&["upid", "task", "taskId"])?;
            let timeout = c.millis(&["timeoutMs", "timeout_ms"], 300_000, 1_000, 1_800_000)?;
            let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
            Ok(c.client
                .wait_task(&upid, timeout, interval, c.cancel)
                .await?)
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
            let v = c.get("/cluster/nextid", &[]).await?;
            param_value(&v)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    ExecError::new("PROXMOX_BAD_RESPONSE", format!("nextid answered {v}"))
                })?
        }
    };
    let mut params = vec![p("newid", newid)];
    for (key, names) in [
        ("name", &["name"][..]),
        ("storage", &["storage"][..]),
        ("format", &["format"][..]),
        ("description", &["description"][..]),
        ("pool", &["pool"][..]),
        ("snapname", &["snapname"][..]),
    ] {
        if let Some(v) = c.opt_str(names) {
            params.push(p(key, v));
        }
    }
    if c.payload.get("full").is_some() {
        params.push(p("full", if c.flag("full") { 1 } else { 0 }));
    }
    let path = c.vm_path(template, "/clone")?;
    let conn_retry = c.client.connection().retry;
    // Dispatch is retried for transient failures only (never after a wait).
    let single = RetryPolicy::none();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match c
            .client
            .request_with(Method::POST, &path, &params, &single, c.cancel)
            .await
        {
            Ok(upid) => return Ok(json!({ "upid": upid, "newid": newid })),
            Err(e) if e.is_already_exists() && attempt > 1 => {
                return Ok(json!({ "upid": Value::Null, "newid": newid, "alreadyExists": true }))
            }
            Err(e) if attempt < conn_retry.max_attempts && is_transient(&e) => {
                let delay = conn_retry.backoff.delay(attempt);
                tokio::select! {
                    _ = c.cancel.cancelled() => return Err(ExecError::cancelled()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_transient(e: &PveError) -> bool {
    match e {
        PveError::Unreachable(_) | PveError::Timeout(_) => true,
        PveError::Api {
            status, message, ..
        } => {
            matches!(status, 502..=504)
                || (*status >= 500
                    && (super::is_lock_timeout(message)
                        || message.starts_with("Internal Server Error")
                        || message.starts_with("HTTP ")))
        }
        _ => false,
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
    let mut params = Vec::new();
    for (k, v) in &merged {
        match v {
            Value::Array(items) if k == "delete" => {
                let list: Vec<String> = items.iter().filter_map(param_value).collect();
                params.push(p(k, list.join(",")));
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(ExecError::bad_request(format!(
                    "config key {k} must be a string, number or boolean"
                )))
            }
            other => {
                if let Some(s) = param_value(other) {
                    params.push(p(k, s));
                }
            }
        }
    }
    let data = c
        .send(Method::PUT, &c.vm_path(vmid, "/config")?, &params)
        .await?;
    Ok(json!({ "updated": true, "upid": data }))
}

async fn wait_vm_status(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let desired = c
        .opt_str(&["desiredStatus", "status"])
        .unwrap_or_else(|| "running".into());
    let timeout = c.millis(&["timeoutMs", "timeout_ms"], 120_000, 1_000, 1_800_000)?;
    let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
    let path = c.vm_path(vmid, "/status/current")?;
    let start = std::time::Instant::now();
    loop {
        let st = c.get(&path, &[]).await?;
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
            _ = c.cancel.cancelled() => return Err(ExecError::cancelled()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

async fn wait_vm_presence(c: &Call<'_>) -> Result<Value, ExecError> {
    let vmid = c.vmid()?;
    let exists = match c.payload.get("exists") {
        None | Some(Value::Null) => true,
        _ => c.flag("exists"),
    };
    let timeout = c.millis(&["timeoutMs", "timeout_ms"], 45_000, 1_000, 600_000)?;
    let interval = c.millis(&["intervalMs", "interval_ms"], 1_000, 250, 15_000)?;
    let path = format!("/nodes/{}/qemu", enc(&c.node()?));
    let start = std::time::Instant::now();
    loop {
        let list = c.get(&path, &[]).await?;
        let present = list
            .as_array()
            .is_some_and(|a| a.iter().any(|vm| vm["vmid"].as_u64() == Some(vmid)));
        if present == exists {
            return Ok(json!({ "vmid": vmid, "exists": exists }));
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
            _ = c.cancel.cancelled() => return Err(ExecError::cancelled()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
