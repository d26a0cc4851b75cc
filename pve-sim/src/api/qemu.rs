//! `/nodes/{node}/qemu/...`: list, config, clone, status, destroy, resize, sendkey.

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use serde_json::{json, Map, Value};

use super::cluster::vm_entry;
use super::error::{data, ApiError, ApiResult};
use super::AppState;
use crate::auth::AuthUser;
use crate::params::Params;
use crate::schema::{parse_bool_value, MethodSchema, ObjectSchema};
use crate::state::vmconfig::{self, VmConfig};
use crate::state::{CloneRequest, TaskAction, VmStatus};

/// Control parameters of config updates (not config options).
const CONFIG_CONTROL: &[&str] = &[
    "node",
    "vmid",
    "delete",
    "digest",
    "revert",
    "skiplock",
    "force",
    "background_delay",
];

fn node_and_vmid(p: &Params) -> Result<(String, u32), ApiError> {
    let node = p.get("node").unwrap_or_default().to_string();
    let vmid = p
        .u32("vmid")
        .ok_or_else(|| ApiError::param("vmid", "type check ('integer') failed"))?;
    Ok((node, vmid))
}

pub async fn list(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let st = app.state.lock();
    st.check_node(p.get("node").unwrap_or_default())?;
    let list: Vec<Value> = st.vms.values().map(|vm| vm_entry(&st.node, vm)).collect();
    Ok(data(list))
}

/// Converts config values to JSON types per the method's `returns` schema
/// (integers and booleans as numbers, like PVE).
fn typed_config(config: &VmConfig, returns: &Value) -> Map<String, Value> {
    let schema = ObjectSchema::from_json(returns).unwrap_or_default();
    config
        .iter()
        .map(|(k, v)| {
            let ty = schema.lookup(k).and_then(|p| p.ty.as_deref());
            let typed = match ty {
                Some("integer") => v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(v)),
                Some("number") => v
                    .parse::<f64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| json!(v)),
                Some("boolean") => parse_bool_value(v)
                    .map(|b| json!(u8::from(b)))
                    .unwrap_or_else(|| json!(v)),
                _ => json!(v),
            };
            (k.clone(), typed)
        })
        .collect()
}

pub async fn get_config(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(schema): Extension<Arc<MethodSchema>>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let st = app.state.lock();
    st.check_node(&node)?;
    if let Some(snap) = p.get("snapshot") {
        return Err(ApiError::failed(format!(
            "snapshot '{snap}' does not exist"
        )));
    }
    let vm = st.vm(vmid)?;
    let mut out = typed_config(&vm.config, &schema.returns);
    out.insert("digest".into(), json!(vmconfig::digest(&vm.config)));
    Ok(data(out))
}

/// The options to set (booleans normalised to 1/0 as PVE writes them) and
/// the options to delete, checked like PVE's `update_vm_api`.
fn config_changes(p: &Params, schema: &MethodSchema) -> Result<(VmConfig, Vec<String>), ApiError> {
    let mut set = p.without(CONFIG_CONTROL);
    for (k, v) in set.iter_mut() {
        let is_bool = schema
            .parameters
            .lookup(k)
            .is_some_and(|prop| prop.ty.as_deref() == Some("boolean"));
        if is_bool {
            if let Some(b) = parse_bool_value(v) {
                *v = u8::from(b).to_string();
            }
        }
    }
    let delete: Vec<String> = p
        .get("delete")
        .map(|d| {
            d.split([',', ';', ' ', '\0'])
                .filter(|s| !s.is_empty())
                .map(|o| if o == "cdrom" { "ide2" } else { o }.to_string())
                .collect()
        })
        .unwrap_or_default();
    for opt in &delete {
        if set.contains_key(opt) {
            return Err(ApiError::param(
                "delete",
                format!("you can't use '-{opt}' and -delete {opt}' at the same time"),
            ));
        }
        let known =
            !CONFIG_CONTROL.contains(&opt.as_str()) && schema.parameters.lookup(opt).is_some();
        if !known {
            return Err(ApiError::param("delete", format!("unknown option '{opt}'")));
        }
    }
    Ok((set, delete))
}

/// `PUT .../config`: synchronous update, returns null.
pub async fn update_config_sync(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(schema): Extension<Arc<MethodSchema>>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let (set, delete) = config_changes(&p, &schema)?;
    app.state.wait_config_lock(vmid, false).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.check_config_lock(vmid, false)?;
    st.check_digest(vmid, p.get("digest"))?;
    st.check_config_change(vmid, &set, p.bool("skiplock").unwrap_or(false))?;
    st.apply_config(vmid, &set, &delete, p.bool("force").unwrap_or(false))?;
    Ok(data(Value::Null))
}

/// `POST .../config`: asynchronous update, returns a `qmconfig` UPID.
pub async fn update_config_async(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
    Extension(schema): Extension<Arc<MethodSchema>>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let (set, delete) = config_changes(&p, &schema)?;
    app.state.wait_config_lock(vmid, false).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.check_config_lock(vmid, false)?;
    st.check_digest(vmid, p.get("digest"))?;
    st.check_config_change(vmid, &set, p.bool("skiplock").unwrap_or(false))?;
    let action = TaskAction::Config {
        vmid,
        set,
        delete,
        force: p.bool("force").unwrap_or(false),
    };
    let upid = app.state.spawn_task(
        &mut st,
        "qmconfig",
        &vmid.to_string(),
        &user.task_user(),
        action,
    );
    Ok(data(upid))
}

pub async fn clone_vm(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let req = CloneRequest {
        source: vmid,
        newid: p.u32("newid").unwrap_or_default(),
        name: p.get("name").map(str::to_string),
        description: p.get("description").map(str::to_string),
        full: p.bool("full"),
        target: p.get("target").map(str::to_string),
        storage: p.get("storage").map(str::to_string),
    };
    app.state.wait_config_lock(vmid, true).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.check_config_lock(vmid, true)?;
    st.start_clone(&req)?;
    let action = TaskAction::Clone {
        source: vmid,
        newid: req.newid,
    };
    let upid = app.state.spawn_task(
        &mut st,
        "qmclone",
        &vmid.to_string(),
        &user.task_user(),
        action,
    );
    Ok(data(upid))
}

pub async fn status_current(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let st = app.state.lock();
    st.check_node(&node)?;
    let vm = st.vm(vmid)?;
    let mut v = vm_entry(&st.node, vm);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("node");
        obj.insert("qmpstatus".into(), json!(vm.status.qmp_str()));
        obj.insert("ha".into(), json!({"managed": 0}));
        obj.insert(
            "agent".into(),
            json!(u8::from(
                vm.config.get("agent").is_some_and(|a| a.starts_with('1'))
            )),
        );
        if vm.status != VmStatus::Stopped {
            obj.insert("running-machine".into(), json!("pc-q35-10.0+pve1"));
            obj.insert("running-qemu".into(), json!("10.0.2"));
        }
    }
    Ok(data(v))
}

pub async fn status_action(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
    Extension(schema): Extension<Arc<MethodSchema>>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let name = schema
        .path
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let action = match name.as_str() {
        "start" => TaskAction::Start { vmid },
        "stop" => TaskAction::Stop { vmid },
        "shutdown" => TaskAction::Shutdown { vmid },
        "reset" => TaskAction::Reset { vmid },
        "reboot" => TaskAction::Reboot { vmid },
        "suspend" => TaskAction::Suspend { vmid },
        "resume" => TaskAction::Resume { vmid },
        other => {
            return Err(ApiError::NotImplemented(format!(
                "status/{other} is valid but not simulated by pve-sim"
            )))
        }
    };
    app.state.wait_config_lock(vmid, false).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.vm(vmid)?;
    st.check_config_lock(vmid, false)?;
    if name == "start" {
        st.check_start(vmid, p.bool("skiplock").unwrap_or(false))?;
    }
    let upid = app.state.spawn_task(
        &mut st,
        &format!("qm{name}"),
        &vmid.to_string(),
        &user.task_user(),
        action,
    );
    Ok(data(upid))
}

pub async fn destroy(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    app.state.wait_config_lock(vmid, false).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.check_config_lock(vmid, false)?;
    st.check_destroy(vmid, p.bool("skiplock").unwrap_or(false))?;
    let upid = app.state.spawn_task(
        &mut st,
        "qmdestroy",
        &vmid.to_string(),
        &user.task_user(),
        TaskAction::Destroy { vmid },
    );
    Ok(data(upid))
}

pub async fn resize(
    State(app): State<AppState>,
    Extension(p): Extension<Params>,
    Extension(user): Extension<AuthUser>,
) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let disk = p.get("disk").unwrap_or_default().to_string();
    app.state.wait_config_lock(vmid, false).await?;
    let mut st = app.state.lock();
    st.check_node(&node)?;
    st.check_config_lock(vmid, false)?;
    st.check_digest(vmid, p.get("digest"))?;
    let size = st.check_resize(
        vmid,
        &disk,
        p.get("size").unwrap_or_default(),
        p.bool("skiplock").unwrap_or(false),
    )?;
    let upid = app.state.spawn_task(
        &mut st,
        "resize",
        &vmid.to_string(),
        &user.task_user(),
        TaskAction::Resize { vmid, disk, size },
    );
    Ok(data(upid))
}

pub async fn sendkey(State(app): State<AppState>, Extension(p): Extension<Params>) -> ApiResult {
    let (node, vmid) = node_and_vmid(&p)?;
    let st = app.state.lock();
    st.check_node(&node)?;
    let vm = st.vm(vmid)?;
    if vm.status == VmStatus::Stopped {
        return Err(ApiError::failed(format!("VM {vmid} not running")));
    }
    Ok(data(Value::Null))
}
