//! Helpers for VM configurations (the `qemu-server/<vmid>.conf` key/values).

use std::collections::BTreeMap;

use rand::RngCore;
use sha1::{Digest, Sha1};

/// A VM configuration: option name → value, as in the config file.
pub type VmConfig = BTreeMap<String, String>;

/// SHA-1 of the config file text, like PVE's `digest`.
pub fn digest(config: &VmConfig) -> String {
    let mut text = String::new();
    if let Some(desc) = config.get("description") {
        for line in desc.lines() {
            text.push_str(&format!("#{line}\n"));
        }
    }
    for (k, v) in config.iter().filter(|(k, _)| k.as_str() != "description") {
        text.push_str(&format!("{k}: {v}\n"));
    }
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// Whether a config key names a drive (`ide0`, `scsi1`, `efidisk0`, ...).
pub fn is_drive_key(key: &str) -> bool {
    ["ide", "sata", "scsi", "virtio", "efidisk", "tpmstate"]
        .iter()
        .any(|p| {
            key.strip_prefix(p)
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The backing volume (`file` / default key) of a drive value.
pub fn drive_file(value: &str) -> &str {
    let first = value.split(',').next().unwrap_or_default();
    first.strip_prefix("file=").unwrap_or(first)
}

/// The value of `key=` inside a property string.
pub fn prop_value<'a>(value: &'a str, key: &str) -> Option<&'a str> {
    value
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Whether a drive value is a CD-ROM.
pub fn is_cdrom(value: &str) -> bool {
    prop_value(value, "media") == Some("cdrom") || drive_file(value) == "cdrom"
}

/// Replaces the backing file of a drive value, keeping its options.
pub fn with_drive_file(value: &str, file: &str) -> String {
    let mut parts: Vec<String> = value.split(',').map(str::to_string).collect();
    if let Some(first) = parts.first_mut() {
        *first = file.to_string();
    }
    parts.join(",")
}

/// Sets `key=value` in a property string (replacing an existing one).
pub fn with_prop(value: &str, key: &str, new: &str) -> String {
    let mut found = false;
    let mut parts: Vec<String> = value
        .split(',')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == key => {
                found = true;
                format!("{key}={new}")
            }
            _ => kv.to_string(),
        })
        .collect();
    if !found {
        parts.push(format!("{key}={new}"));
    }
    parts.join(",")
}

/// A random MAC in Proxmox's OUI (BC:24:11).
pub fn random_mac() -> String {
    let mut b = [0u8; 3];
    rand::rng().fill_bytes(&mut b);
    format!("BC:24:11:{:02X}:{:02X}:{:02X}", b[0], b[1], b[2])
}

/// Gives every `netN` a new MAC address (done on clone).
pub fn regenerate_macs(config: &mut VmConfig) {
    for (k, v) in config.iter_mut() {
        let is_net = k
            .strip_prefix("net")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
        if !is_net {
            continue;
        }
        let first = v.split(',').next().unwrap_or_default().to_string();
        if let Some((model, _mac)) = first.split_once('=') {
            if model != "model" && model != "bridge" {
                *v = with_drive_file(v, &format!("{model}={}", random_mac()));
                continue;
            }
        }
        if prop_value(v, "macaddr").is_some() {
            *v = with_prop(v, "macaddr", &random_mac());
        }
    }
}

/// Parses `32G`, `512M`, `+1G` style sizes into bytes.
pub fn parse_size(size: &str) -> Option<u64> {
    let s = size.trim_start_matches('+');
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1u64 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

/// Formats bytes the way PVE writes `size=` (largest whole unit).
pub fn format_size(bytes: u64) -> String {
    for (unit, mult) in [
        ("T", 1u64 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{unit}", bytes / mult);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drive_helpers() {
        assert!(is_drive_key("scsi0"));
        assert!(!is_drive_key("scsihw"));
        let v = "local-lvm:vm-101-disk-0,cache=writeback,size=32G";
        assert_eq!(drive_file(v), "local-lvm:vm-101-disk-0");
        assert_eq!(prop_value(v, "size"), Some("32G"));
        assert_eq!(
            with_prop(v, "size", "40G"),
            "local-lvm:vm-101-disk-0,cache=writeback,size=40G"
        );
        assert!(is_cdrom("none,media=cdrom"));
        assert_eq!(parse_size("+2G"), Some(2 << 30));
        assert_eq!(format_size(34 << 30), "34G");
        let mut c = VmConfig::new();
        c.insert(
            "net0".into(),
            "virtio=BC:24:11:00:00:01,bridge=vmbr0".into(),
        );
        regenerate_macs(&mut c);
        assert!(c["net0"].starts_with("virtio=BC:24:11:"));
        assert_ne!(c["net0"], "virtio=BC:24:11:00:00:01,bridge=vmbr0");
    }
}
