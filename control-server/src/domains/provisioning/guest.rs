//! What the guest reads: `provision.json`, `START.ps1` (Windows) and the
//! pure helpers both sides must agree on. The PowerShell functions
//! `ConvertTo-PrefixLength` and `Test-SmbiosUuid` in `assets/START.ps1` are
//! twins of [`prefix_len`] and [`smbios_uuid_matches`]; the tests here pin
//! both to the same tables.

use std::net::Ipv4Addr;

use serde::Serialize;

/// `START.ps1`, shipped as is: it contains no per-VM value (everything it
/// needs it reads from `provision.json` at run time), so no user input is
/// ever spliced into code.
pub const START_PS1: &str = include_str!("assets/START.ps1");

/// The Windows guest's log file (START.ps1 writes it; docs point to it).
pub const WINDOWS_LOG: &str = r"C:\WindowsSetup\bootstrap.log";

/// Version of the provision.json format.
pub const PROVISION_JSON_VERSION: u32 = 1;

/// Prefix length of a netmask; `None` when the mask's ones are not
/// contiguous (e.g. `255.0.255.0`).
pub fn prefix_len(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    // Contiguous: after the leading ones only zeros.
    if ones < 32 && (m << ones) != 0 {
        return None;
    }
    Some(ones as u8)
}

/// The netmask of a prefix length (0..=32).
pub fn netmask(prefix: u8) -> Option<Ipv4Addr> {
    match prefix {
        0 => Some(Ipv4Addr::new(0, 0, 0, 0)),
        1..=32 => Some(Ipv4Addr::from(u32::MAX << (32 - u32::from(prefix)))),
        _ => None,
    }
}

/// A UUID as 32 lowercase hex digits (braces, hyphens and case ignored);
/// `None` if it is not a UUID.
fn uuid_hex(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// Swap the byte order of the first three UUID fields (4, 2 and 2 bytes):
/// SMBIOS stores them little-endian, and firmware/OS pairs that read them
/// as big-endian show `uuid` of Proxmox's `smbios1` with these groups
/// byte-reversed. Input and output are canonical lowercase `8-4-4-4-12`.
pub fn swap_mixed_endian(uuid: &str) -> Option<String> {
    let h = uuid_hex(uuid)?;
    let rev = |s: &str| -> String {
        let mut pairs: Vec<&str> = (0..s.len()).step_by(2).map(|i| &s[i..i + 2]).collect();
        pairs.reverse();
        pairs.concat()
    };
    Some(format!(
        "{}-{}-{}-{}-{}",
        rev(&h[0..8]),
        rev(&h[8..12]),
        rev(&h[12..16]),
        &h[16..20],
        &h[20..32]
    ))
}

/// Canonical lowercase `8-4-4-4-12`, or `None`.
pub fn canonical_uuid(uuid: &str) -> Option<String> {
    let h = uuid_hex(uuid)?;
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Does the UUID the guest reads from SMBIOS (`Win32_ComputerSystemProduct.UUID`
/// or `/sys/class/dmi/id/product_uuid`) belong to the VM whose `smbios1 uuid`
/// is `vm_uuid`? Equal as is, or equal after [`swap_mixed_endian`].
pub fn smbios_uuid_matches(reported: &str, vm_uuid: &str) -> bool {
    match (canonical_uuid(reported), canonical_uuid(vm_uuid)) {
        (Some(r), Some(v)) => r == v || swap_mixed_endian(&r).as_deref() == Some(v.as_str()),
        _ => false,
    }
}

/// The IP plan as provision.json carries it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum IpJson {
    Dhcp,
    Static {
        address: Ipv4Addr,
        prefix_length: u8,
        netmask: Ipv4Addr,
        #[serde(skip_serializing_if = "Option::is_none")]
        gateway: Option<Ipv4Addr>,
        dns: Vec<Ipv4Addr>,
    },
}

/// Optional downloads the guest fetches after validation.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Downloads {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_url: Option<String>,
}

/// `provision.json` (inventory §5.3, extended): everything per VM the
/// guest-side scripts need.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionJson {
    pub version: u32,
    pub vm_uuid: String,
    pub os: String,
    pub ip: IpJson,
    pub token: String,
    /// The server's base URL (config `public_url`, else the URL the
    /// operator used).
    pub api_endpoint: String,
    /// SHA-256 (lowercase hex) of the server's certificate when it is
    /// self-signed: the guest pins exactly that certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cert_sha256: Option<String>,
    pub validate_token_url: String,
    pub report_progress_url: String,
    /// `GET` with the token as bearer (only when a playbook is attached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook_url: Option<String>,
    /// The playbook's file name on the ISO (only when a playbook is attached).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook_file: Option<String>,
    pub downloads: Downloads,
    pub expires_at: String,
}

impl ProvisionJson {
    /// Pretty-printed (2 spaces) UTF-8 without BOM.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_length_of_all_33_masks() {
        // The table START.ps1's ConvertTo-PrefixLength is checked against.
        let table: [(&str, u8); 33] = [
            ("0.0.0.0", 0),
            ("128.0.0.0", 1),
            ("192.0.0.0", 2),
            ("224.0.0.0", 3),
            ("240.0.0.0", 4),
            ("248.0.0.0", 5),
            ("252.0.0.0", 6),
            ("254.0.0.0", 7),
            ("255.0.0.0", 8),
            ("255.128.0.0", 9),
            ("255.192.0.0", 10),
            ("255.224.0.0", 11),
            ("255.240.0.0", 12),
            ("255.248.0.0", 13),
            ("255.252.0.0", 14),
            ("255.254.0.0", 15),
            ("255.255.0.0", 16),
            ("255.255.128.0", 17),
            ("255.255.192.0", 18),
            ("255.255.224.0", 19),
            ("255.255.240.0", 20),
            ("255.255.248.0", 21),
            ("255.255.252.0", 22),
            ("255.255.254.0", 23),
            ("255.255.255.0", 24),
            ("255.255.255.128", 25),
            ("255.255.255.192", 26),
            ("255.255.255.224", 27),
            ("255.255.255.240", 28),
            ("255.255.255.248", 29),
            ("255.255.255.252", 30),
            ("255.255.255.254", 31),
            ("255.255.255.255", 32),
        ];
        for (mask, want) in table {
            let m: Ipv4Addr = mask.parse().unwrap();
            assert_eq!(prefix_len(m), Some(want), "{mask}");
            assert_eq!(netmask(want), Some(m), "/{want}");
        }
        for bad in [
            "255.0.255.0",
            "0.255.255.255",
            "255.255.255.1",
            "128.0.0.1",
            "254.255.255.0",
        ] {
            assert_eq!(prefix_len(bad.parse().unwrap()), None, "{bad}");
        }
        assert_eq!(netmask(33), None);
        // The PowerShell twin spells the same table out.
        for (mask, want) in table {
            assert!(
                START_PS1.contains(&format!("'{mask}' = {want}")),
                "START.ps1 self-test table lacks {mask} = {want}"
            );
        }
    }

    #[test]
    fn smbios_uuid_known_pairs() {
        // (Proxmox smbios1 uuid, what the guest may read from SMBIOS).
        let pairs = [
            // identical (SMBIOS >= 2.6 read correctly): Windows 10/11, Linux
            (
                "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f",
                "6F9C1E2A-3B4D-4C5E-8F70-1A2B3C4D5E6F",
            ),
            // first three fields byte-reversed (mixed endian)
            (
                "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f",
                "2A1E9C6F-4D3B-5E4C-8F70-1A2B3C4D5E6F",
            ),
            (
                "00112233-4455-6677-8899-aabbccddeeff",
                "33221100-5544-7766-8899-AABBCCDDEEFF",
            ),
            (
                "{D5F1D3B8-7A1C-4E0B-9C6E-0123456789AB}",
                "b8d3f1d5-1c7a-0b4e-9c6e-0123456789ab",
            ),
        ];
        for (vm, reported) in pairs {
            assert!(smbios_uuid_matches(reported, vm), "{vm} vs {reported}");
            assert!(smbios_uuid_matches(vm, vm));
        }
        assert_eq!(
            swap_mixed_endian("00112233-4455-6677-8899-aabbccddeeff").as_deref(),
            Some("33221100-5544-7766-8899-aabbccddeeff")
        );
        // Swapping twice is the identity.
        let u = "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f";
        assert_eq!(
            swap_mixed_endian(&swap_mixed_endian(u).unwrap()).as_deref(),
            Some(u)
        );
        // Not the same VM: the last two groups are never swapped.
        assert!(!smbios_uuid_matches(
            "6f9c1e2a-3b4d-4c5e-708f-1a2b3c4d5e6f",
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f"
        ));
        assert!(!smbios_uuid_matches(
            "11111111-3b4d-4c5e-8f70-1a2b3c4d5e6f",
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f"
        ));
        assert!(!smbios_uuid_matches("not-a-uuid", "not-a-uuid"));
        assert!(!smbios_uuid_matches(
            "",
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f"
        ));
        // START.ps1 carries the same pairs in its self-test.
        for (vm, reported) in &pairs[1..3] {
            assert!(
                START_PS1.contains(&format!("@('{vm}', '{reported}')")),
                "START.ps1 self-test lacks the pair {vm} / {reported}"
            );
        }
    }

    /// Parsed by a real PowerShell parser (tree-sitter-powershell): no
    /// syntax error anywhere in the script.
    #[test]
    fn start_ps1_parses_as_powershell() {
        crate::ps_lint::assert_parses("START.ps1", START_PS1);
    }

    #[test]
    fn start_ps1_is_constant_and_complete() {
        // No template markers: nothing is spliced into the script.
        for marker in ["{{", "}}", "%VM", "$$"] {
            assert!(!START_PS1.contains(marker), "{marker}");
        }
        for needle in [
            WINDOWS_LOG,
            "windows_installed",
            "network_configured",
            "downloader_ready",
            "app_downloaded",
            "playbook_running",
            "'completed'",
            "'failed'",
            "Invoke-WithRetry",
            "Test-SmbiosUuid",
            "ConvertTo-PrefixLength",
            "server_cert_sha256",
            "Win32_ComputerSystemProduct",
        ] {
            assert!(START_PS1.contains(needle), "START.ps1 lacks {needle}");
        }
        // Exactly two exits: `exit 1` in Stop-Bootstrap (which logs and
        // reports first) and `exit 0` after success; every error is caught
        // by the outer try and goes to Stop-Bootstrap.
        let exits: Vec<&str> = START_PS1
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("exit"))
            .collect();
        assert_eq!(exits, ["exit 1", "exit 0"]);
        assert!(START_PS1.contains("} catch {\n    Stop-Bootstrap $_.Exception.Message\n}"));
        assert!(
            START_PS1.is_ascii(),
            "keep START.ps1 ASCII (PowerShell 5.1 reads BOM-less files as ANSI)"
        );
    }

    #[test]
    fn provision_json_shape() {
        let p = ProvisionJson {
            version: PROVISION_JSON_VERSION,
            vm_uuid: "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f".into(),
            os: "windows".into(),
            ip: IpJson::Static {
                address: "10.0.0.5".parse().unwrap(),
                prefix_length: 24,
                netmask: "255.255.255.0".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                dns: vec!["1.1.1.1".parse().unwrap()],
            },
            token: "bmxv_x".into(),
            api_endpoint: "https://s".into(),
            server_cert_sha256: None,
            validate_token_url: "https://s/api/v1/provisioning/validate-token".into(),
            report_progress_url: "https://s/api/v1/provisioning/report-progress".into(),
            playbook_url: None,
            playbook_file: None,
            downloads: Downloads::default(),
            expires_at: "2030-01-01T00:00:00.000Z".into(),
        };
        let v: serde_json::Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        assert_eq!(v["ip"]["mode"], "static");
        assert_eq!(v["ip"]["prefix_length"], 24);
        assert!(v.get("server_cert_sha256").is_none());
        let dhcp = serde_json::to_value(IpJson::Dhcp).unwrap();
        assert_eq!(dhcp, serde_json::json!({"mode": "dhcp"}));
    }
}
