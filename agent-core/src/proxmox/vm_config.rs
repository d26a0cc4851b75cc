//! Free-form VM config keys from a payload (`update-config`, the cdrom slot
//! of `attach-cdrom`/`detach-cdrom`) as the crate's typed parameters of
//! `PUT /nodes/{node}/qemu/{vmid}/config`: every key must be a typed field or
//! an indexed key (`ide2`, `net0`, …) of the PVE 9.1.2 schema, and every value
//! must parse as that field's type; anything else is a `BAD_REQUEST` naming
//! the key, before anything is sent.

use proxmox_api::nodes::node::qemu::vmid::config::PutParams;
use serde_json::{Map, Value};

use crate::executor::ExecError;

/// `keys` (config key → value) as typed PUT parameters. Values are taken
/// the way PVE reads form parameters: booleans as `1`/`0`, numbers and
/// strings as text, `null` skipped; `delete` may also be a list.
pub(crate) fn put_params(keys: &Map<String, Value>) -> Result<PutParams, ExecError> {
    let mut form = Map::new();
    for (key, value) in keys {
        let text = match value {
            Value::Null => continue,
            Value::Array(items) if key == "delete" => {
                let mut names = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::Null => {}
                        Value::String(s) => names.push(s.clone()),
                        other => {
                            return Err(ExecError::bad_request(format!(
                                "config key delete must list option names, got {other}"
                            )))
                        }
                    }
                }
                names.join(",")
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(ExecError::bad_request(format!(
                    "config key {key} must be a string, number or boolean"
                )))
            }
            Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
        };
        form.insert(key.clone(), Value::String(text));
    }
    let form = Value::Object(form);
    // From `&Value`: the crate's indexed-key decoders need borrowed keys.
    let mut params: PutParams = serde_path_to_error::deserialize(&form).map_err(|e| {
        let key = e.path().to_string();
        match form.get(&key) {
            Some(value) => ExecError::bad_request(format!(
                "config key {key} = {value} is invalid: {}",
                e.inner()
            )),
            None => ExecError::bad_request(format!("invalid VM config: {}", e.inner())),
        }
    })?;
    // Keys outside the schema end up in `additional_properties`; anything the
    // typed parameters would not send is refused as well.
    params.additional_properties.clear();
    let sent = serde_json::to_value(&params)
        .map_err(|e| ExecError::bad_request(format!("invalid VM config: {e}")))?;
    let unknown: Vec<&str> = form
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter(|k| sent.get(k.as_str()).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(ExecError::bad_request(format!(
            "unknown VM config key(s) {} (not in the PVE 9.1 schema of \
             PUT /nodes/{{node}}/qemu/{{vmid}}/config)",
            unknown.join(", ")
        )));
    }
    Ok(params)
}

/// Whether `key` (a PVE VM config key) reaches the host rather than the
/// guest: raw QEMU `args`, a `hookscript` run on the host, PCI/USB
/// passthrough (`hostpci*`, `usb*`), host devices and sockets (`serial*`,
/// `parallel*`), host directories (`virtiofs*`).
pub fn is_host_level_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    if k == "args" || k == "hookscript" {
        return true;
    }
    ["hostpci", "usb", "serial", "parallel", "virtiofs"]
        .iter()
        .any(|p| {
            k.strip_prefix(p)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Disk and cdrom keys whose volume is an absolute host path (`/dev/sda`,
/// `/root/x.img`) attach host files or block devices to the VM.
fn is_host_path_disk(key: &str, value: &Value) -> bool {
    let k = key.to_ascii_lowercase();
    let disk = [
        "ide", "sata", "scsi", "virtio", "efidisk", "tpmstate", "unused",
    ]
    .iter()
    .any(|p| {
        k.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    let Some(text) = value.as_str() else {
        return false;
    };
    let volume = text.split(',').next().unwrap_or("");
    let volume = volume.strip_prefix("file=").unwrap_or(volume).trim();
    disk && volume.starts_with('/')
}

/// The keys of an `update-config` payload that need the target's
/// `allow_host_level_config` (sorted as given).
pub fn host_level_keys(keys: &Map<String, Value>) -> Vec<String> {
    keys.iter()
        .filter(|(k, v)| !v.is_null() && (is_host_level_key(k) || is_host_path_disk(k, v)))
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::proxmox::api_client::form_params;

    fn params(v: Value) -> Result<PutParams, ExecError> {
        put_params(v.as_object().unwrap())
    }

    #[test]
    fn typed_fields_and_indexed_keys() {
        let p = params(json!({
            "memory": 2048, "cores": "2", "onboot": true, "template": false,
            "ide2": "local:iso/x.iso,media=cdrom", "net0": "virtio,bridge=vmbr0",
            "delete": ["sata0", "serial0"], "description": null,
        }))
        .unwrap();
        assert_eq!(p.memory.as_deref(), Some("2048"));
        assert_eq!(p.cores.map(|c| c.get()), Some(2));
        assert_eq!(p.onboot, Some(true));
        assert_eq!(p.template, Some(false));
        assert_eq!(p.ides[&2], "local:iso/x.iso,media=cdrom");
        assert_eq!(p.nets[&0], "virtio,bridge=vmbr0");
        assert_eq!(p.delete.as_deref(), Some("sata0,serial0"));
        assert!(p.description.is_none());
        let sent = form_params(&p).unwrap();
        assert!(sent.contains(&("onboot".into(), "1".into())));
        assert!(sent.contains(&("template".into(), "0".into())));
        assert!(sent.contains(&("ide2".into(), "local:iso/x.iso,media=cdrom".into())));
        assert_eq!(sent.len(), 7, "{sent:?}");
    }

    #[test]
    fn host_level_keys_are_recognised() {
        let keys = json!({
            "args": "-x", "hookscript": "local:snippets/h.pl", "hostpci0": "0000:01:00",
            "USB1": "host=1-2", "serial0": "socket", "parallel2": "/dev/parport0",
            "virtiofs0": "dirid=x", "scsi1": "/dev/sda", "ide3": "file=/root/a.iso,media=cdrom",
            "smbios1": "uuid=x", "memory": 1024, "scsi0": "local-lvm:vm-1-disk-0",
            "usbx": "1", "serial": "x", "description": "/etc/passwd", "sata0": null,
        });
        let mut got = host_level_keys(keys.as_object().unwrap());
        got.sort();
        assert_eq!(
            got,
            [
                "USB1",
                "args",
                "hookscript",
                "hostpci0",
                "ide3",
                "parallel2",
                "scsi1",
                "serial0",
                "virtiofs0"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_a_bad_request_naming_them() {
        let e = params(json!({"memory": 1024, "frobnicate": 1, "ide": "x"})).unwrap_err();
        assert_eq!(e.code, "BAD_REQUEST");
        assert!(
            e.message
                .starts_with("unknown VM config key(s) frobnicate, ide "),
            "{}",
            e.message
        );
    }

    #[test]
    fn invalid_values_are_a_bad_request_naming_the_key() {
        let e = params(json!({"cores": "many"})).unwrap_err();
        assert_eq!(e.code, "BAD_REQUEST");
        assert!(
            e.message
                .starts_with("config key cores = \"many\" is invalid"),
            "{}",
            e.message
        );
        let e = params(json!({"onboot": "maybe"})).unwrap_err();
        assert!(
            e.message.starts_with("config key onboot = \"maybe\""),
            "{}",
            e.message
        );
        let e = params(json!({"ostype": "beos"})).unwrap_err();
        assert!(e.message.starts_with("config key ostype"), "{}", e.message);
        let e = params(json!({"net0": {"model": "virtio"}})).unwrap_err();
        assert_eq!(
            e.message,
            "config key net0 must be a string, number or boolean"
        );
        let e = params(json!({"delete": [1]})).unwrap_err();
        assert_eq!(e.code, "BAD_REQUEST");
    }
}
