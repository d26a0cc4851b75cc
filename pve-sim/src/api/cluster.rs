//! `/version`, `/cluster/*` and `/nodes`, `/nodes/{node}/status`.

use axum::extract::State;
use axum::Extension;
use serde_json::{json, Value};

use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::params::Params;
use crate::state::{SimState, Vm};

pub async fn version() -> ApiResult {
    Ok(data(json!({
        "version": crate::schema::SCHEMA_VERSION,
        "release": "9.1",
        "repoid": "5ca8c8ec6b5a5b8c",
        "console": "xtermjs",
    })))
}

pub async fn nextid(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    if let Some(vmid) = p.u32("vmid") {
        if st.vms.contains_key(&vmid) {
            return Err(ApiError::param("vmid", format!("VM {vmid} already exists")));
        }
        return Ok(data(vmid.to_string()));
    }
    Ok(data(st.next_free_vmid().to_string()))
}

/// One VM entry as in `/cluster/resources` and `/nodes/{node}/qemu`.
pub fn vm_entry(node: &str, vm: &Vm) -> Value {
    let running = vm.status.status_str() == "running";
    let mut v = json!({
        "vmid": vm.vmid,
        "name": vm.name(),
        "status": vm.status.status_str(),
        "cpus": vm.cpus(),
        "maxmem": vm.maxmem(),
        "mem": if running { vm.maxmem() / 3 } else { 0 },
        "maxdisk": vm.maxdisk(),
        "disk": 0,
        "uptime": vm.uptime(),
        "cpu": if running { 0.03 } else { 0.0 },
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
        "node": node,
    });
    if let Some(pid) = vm.pid {
        v["pid"] = json!(pid);
    }
    if vm.is_template() {
        v["template"] = json!(1);
    }
    if let Some(lock) = vm.lock() {
        v["lock"] = json!(lock);
    }
    if let Some(tags) = vm.config.get("tags") {
        v["tags"] = json!(tags);
    }
    v
}

fn node_entry(st: &SimState, fingerprint: &str) -> Value {
    json!({
        "id": format!("node/{}", st.node),
        "type": "node",
        "node": st.node,
        "status": "online",
        "cpu": 0.02,
        "maxcpu": 8,
        "mem": 6u64 << 30,
        "maxmem": 32u64 << 30,
        "disk": 10u64 << 30,
        "maxdisk": 100u64 << 30,
        "uptime": crate::state::now().saturating_sub(st.boot_time),
        "level": "",
        "ssl_fingerprint": fingerprint,
    })
}

pub async fn resources(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    let ty = p.get("type");
    let mut out = Vec::new();
    if ty.is_none_or(|t| t == "vm") {
        for vm in st.vms.values() {
            let mut v = vm_entry(&st.node, vm);
            v["id"] = json!(format!("qemu/{}", vm.vmid));
            v["type"] = json!("qemu");
            v["maxcpu"] = json!(vm.cpus());
            v["template"] = json!(u8::from(vm.is_template()));
            out.push(v);
        }
    }
    if ty.is_none_or(|t| t == "node") {
        out.push(node_entry(&st, &app.fingerprint));
    }
    if ty.is_none_or(|t| t == "storage") {
        for s in st.storages.values() {
            out.push(json!({
                "id": format!("storage/{}/{}", st.node, s.id),
                "type": "storage",
                "storage": s.id,
                "node": st.node,
                "status": "available",
                "content": s.content.join(","),
                "plugintype": s.kind.plugin_type(),
                "shared": 0,
                "disk": s.used(),
                "maxdisk": s.total,
            }));
        }
    }
    Ok(data(out))
}

pub async fn nodes(State(app): State<AppState>) -> ApiResult {
    let st = app.state.lock();
    Ok(data(vec![node_entry(&st, &app.fingerprint)]))
}

pub async fn node_status(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
) -> ApiResult {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    Ok(data(json!({
        "uptime": crate::state::now().saturating_sub(st.boot_time),
        "cpu": 0.02,
        "wait": 0.0,
        "loadavg": ["0.12", "0.10", "0.08"],
        "kversion": "Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 x86_64",
        "pveversion": format!("pve-manager/{}/5ca8c8ec6b5a5b8c", crate::schema::SCHEMA_VERSION),
        "cpuinfo": {"model": "pve-sim virtual CPU", "cpus": 8, "cores": 4, "sockets": 1, "mhz": "2400.000", "hvm": "1", "flags": "", "user_hz": 100},
        "memory": {"total": 32u64 << 30, "used": 6u64 << 30, "free": 26u64 << 30, "available": 26u64 << 30},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 100u64 << 30, "used": 10u64 << 30, "free": 90u64 << 30, "avail": 90u64 << 30},
        "ksm": {"shared": 0},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "current-kernel": {"sysname": "Linux", "release": "6.17.2-1-pve", "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1", "machine": "x86_64"},
    })))
}
