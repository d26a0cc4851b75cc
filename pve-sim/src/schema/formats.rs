//! Checks for PVE's named string formats (`pve-vmid`, `pve-node`, ...).
//! Formats the simulator does not know are accepted (documented limitation).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::regex_compat::anchored;

const CONFIGID: &str = r"[a-z][a-z0-9_]+";
const STORAGE_ID: &str = r"[a-z][a-z0-9\-_.]*[a-z0-9]";
const NODE: &str = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?";
const DNS_NAME: &str = r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])";
const MAC: &str = r"[a-fA-F0-9]{2}(?::[a-fA-F0-9]{2}){5}";
const VOLUME_ID: &str = r"[a-z][a-z0-9\-_.]*[a-z0-9]:.+";
const USERID: &str = r"[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+";
const CONTENT: &str = r"images|rootdir|vztmpl|iso|backup|snippets|import";

fn matches(pattern: &str, value: &str) -> bool {
    anchored(pattern).is_none_or(|re| re.is_match(value))
}

fn is_cidr(value: &str, v4: bool, v6: bool) -> bool {
    let Some((ip, mask)) = value.split_once('/') else {
        return false;
    };
    let Ok(mask) = mask.parse::<u8>() else {
        return false;
    };
    (v4 && ip.parse::<Ipv4Addr>().is_ok() && mask <= 32)
        || (v6 && ip.parse::<Ipv6Addr>().is_ok() && mask <= 128)
}

/// Checks one value against a named format; `Err` holds PVE's message.
pub fn check_format(format: &str, value: &str) -> Result<(), String> {
    if let Some(base) = format.strip_suffix("-list") {
        if is_known(base) {
            for item in value
                .split(|c: char| c == ',' || c == ';' || c == '\0' || c.is_whitespace())
                .filter(|s| !s.is_empty())
            {
                check_format(base, item)?;
            }
            return Ok(());
        }
    }
    let ok = match format {
        "pve-vmid" => value
            .parse::<u64>()
            .is_ok_and(|n| (100..=999_999_999).contains(&n)),
        "pve-node" => matches(NODE, value),
        "pve-storage-id" => matches(STORAGE_ID, value),
        "pve-configid" => matches(CONFIGID, value),
        "dns-name" => matches(DNS_NAME, value),
        "mac-addr" => matches(MAC, value),
        "pve-volume-id" => matches(VOLUME_ID, value),
        "pve-volume-id-or-qm-path" => {
            value == "none"
                || value == "cdrom"
                || value.starts_with('/')
                || matches(VOLUME_ID, value)
                || matches(r"[a-z][a-z0-9\-_.]*[a-z0-9]:\d+(\.\d+)?", value)
        }
        "pve-userid" => matches(USERID, value),
        "pve-poolid" => matches(r"[A-Za-z0-9_\-]+(?:/[A-Za-z0-9_\-]+){0,2}", value),
        "pve-bridge-id" => matches(r"[-_.\w\d]+", value),
        "pve-storage-content" => matches(CONTENT, value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "ip" => value.parse::<IpAddr>().is_ok(),
        "CIDR" => is_cidr(value, true, true),
        "CIDRv4" => is_cidr(value, true, false),
        "CIDRv6" => is_cidr(value, false, true),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "value does not look like a valid {}",
            describe(format)
        ))
    }
}

fn is_known(format: &str) -> bool {
    matches!(
        format,
        "pve-vmid"
            | "pve-node"
            | "pve-storage-id"
            | "pve-configid"
            | "dns-name"
            | "mac-addr"
            | "pve-volume-id"
            | "pve-userid"
            | "pve-poolid"
            | "pve-bridge-id"
            | "pve-storage-content"
            | "ipv4"
            | "ipv6"
            | "ip"
            | "CIDR"
    )
}

fn describe(format: &str) -> &str {
    match format {
        "pve-vmid" => "VM ID",
        "pve-node" => "node name",
        "pve-storage-id" => "storage ID",
        "pve-configid" => "configuration key",
        "dns-name" => "DNS name",
        "mac-addr" => "MAC address",
        "pve-volume-id" | "pve-volume-id-or-qm-path" => "volume ID",
        "pve-userid" => "user ID",
        "pve-storage-content" => "storage content type",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::check_format;

    #[test]
    fn common_formats() {
        assert!(check_format("pve-vmid", "101").is_ok());
        assert!(check_format("pve-vmid", "99").is_err());
        assert!(check_format("pve-configid-list", "ide2,net1").is_ok());
        assert!(check_format("pve-configid-list", "ide2,Bad!").is_err());
        assert!(check_format("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check_format("mac-addr", "BC:24:11").is_err());
        assert!(check_format("pve-volume-id", "local:iso/a.iso").is_ok());
        assert!(check_format("pve-storage-content-list", "iso,vztmpl").is_ok());
        assert!(check_format("pve-storage-content", "isos").is_err());
        assert!(check_format("some-unknown-format", "anything").is_ok());
    }
}
