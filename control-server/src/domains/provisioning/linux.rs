//! Linux guests: a cloud-init NoCloud seed (`user-data`, `meta-data`,
//! optional `network-config` v2) on an ISO labelled `cidata`, built here
//! with isotools. Every value goes through a YAML serializer (never string
//! concatenation); the progress reports come from a constant Python script
//! (`assets/botmox-report.py`) that cloud-init's `runcmd` starts.

use serde::Serialize;
use serde_json::Value;

use super::guest::IpJson;

/// The reporter written to the guest (no per-VM content).
pub const REPORTER: &str = include_str!("assets/botmox-report.py");
/// The cloud-config schema subset user-data is checked against.
pub const SCHEMA: &str = include_str!("assets/cloud-config.subset.schema.json");

pub const REPORTER_PATH: &str = "/usr/local/lib/botmox/botmox-report";
pub const PROVISION_JSON_PATH: &str = "/etc/botmox/provision.json";
pub const PLAYBOOK_PATH: &str = "/etc/botmox/playbook.yml";

/// What the operator chose for a Linux VM.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    pub hostname: String,
    pub user: String,
    pub ssh_authorized_keys: Vec<String>,
    pub packages: Vec<String>,
}

/// The three files of a NoCloud seed.
#[derive(Debug, Clone)]
pub struct NoCloudSeed {
    pub user_data: Vec<u8>,
    pub meta_data: Vec<u8>,
    pub network_config: Option<Vec<u8>>,
}

#[derive(Serialize)]
struct CloudUser<'a> {
    name: &'a str,
    groups: Vec<&'static str>,
    shell: &'static str,
    sudo: &'static str,
    lock_passwd: bool,
    ssh_authorized_keys: &'a [String],
}

#[derive(Serialize)]
struct WriteFile<'a> {
    path: &'static str,
    content: &'a str,
    owner: &'static str,
    permissions: &'static str,
}

#[derive(Serialize)]
struct CloudConfig<'a> {
    hostname: &'a str,
    manage_etc_hosts: bool,
    ssh_pwauth: bool,
    package_update: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    packages: &'a [String],
    users: Vec<CloudUser<'a>>,
    write_files: Vec<WriteFile<'a>>,
    runcmd: Vec<Vec<&'static str>>,
    final_message: &'static str,
}

#[derive(Serialize)]
struct MetaData<'a> {
    #[serde(rename = "instance-id")]
    instance_id: &'a str,
    #[serde(rename = "local-hostname")]
    local_hostname: &'a str,
}

fn yaml<T: Serialize>(v: &T) -> Vec<u8> {
    serde_norway::to_string(v).unwrap_or_default().into_bytes()
}

/// Build the seed. `provision_json` is written to the guest as
/// `/etc/botmox/provision.json` (mode 0600), the playbook (if any) as
/// `/etc/botmox/playbook.yml`.
pub fn build_seed(
    opts: &LinuxOptions,
    vm_uuid: &str,
    ip: &IpJson,
    provision_json: &str,
    playbook: Option<&str>,
) -> NoCloudSeed {
    let mut write_files = vec![
        WriteFile {
            path: PROVISION_JSON_PATH,
            content: provision_json,
            owner: "root:root",
            permissions: "0600",
        },
        WriteFile {
            path: REPORTER_PATH,
            content: REPORTER,
            owner: "root:root",
            permissions: "0755",
        },
    ];
    if let Some(p) = playbook {
        write_files.push(WriteFile {
            path: PLAYBOOK_PATH,
            content: p,
            owner: "root:root",
            permissions: "0600",
        });
    }
    let cc = CloudConfig {
        hostname: &opts.hostname,
        manage_etc_hosts: true,
        ssh_pwauth: false,
        package_update: !opts.packages.is_empty(),
        packages: &opts.packages,
        users: vec![CloudUser {
            name: &opts.user,
            groups: vec!["sudo"],
            shell: "/bin/bash",
            sudo: "ALL=(ALL) NOPASSWD:ALL",
            lock_passwd: true,
            ssh_authorized_keys: &opts.ssh_authorized_keys,
        }],
        write_files,
        // Exec form (a list): no shell parses anything here.
        runcmd: vec![vec!["python3", REPORTER_PATH, "finish"]],
        final_message: "Bot-Mox: cloud-init finished after $UPTIME seconds",
    };
    let mut user_data = b"#cloud-config\n".to_vec();
    user_data.extend(yaml(&cc));
    let meta_data = yaml(&MetaData {
        instance_id: vm_uuid,
        local_hostname: &opts.hostname,
    });
    let network_config = match ip {
        IpJson::Dhcp => None,
        IpJson::Static {
            address,
            prefix_length,
            gateway,
            dns,
            ..
        } => {
            let mut eth = serde_json::json!({
                "match": {"name": "e*"},
                "dhcp4": false,
                "addresses": [format!("{address}/{prefix_length}")],
            });
            if let Some(gw) = gateway {
                eth["routes"] = serde_json::json!([{"to": "default", "via": gw.to_string()}]);
            }
            if !dns.is_empty() {
                let list: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
                eth["nameservers"] = serde_json::json!({ "addresses": list });
            }
            Some(yaml(&serde_json::json!({
                "version": 2,
                "ethernets": {"primary": eth},
            })))
        }
    };
    NoCloudSeed {
        user_data,
        meta_data,
        network_config,
    }
}

/// The seed as an ISO image (label `cidata`, Joliet + Rock Ridge).
pub fn seed_iso(seed: &NoCloudSeed) -> Result<Vec<u8>, String> {
    let builder = isotools::nocloud_seed(
        seed.user_data.clone(),
        seed.meta_data.clone(),
        seed.network_config.clone(),
    )
    .map_err(|e| e.to_string())?;
    let image = builder.build().map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(image.size() as usize);
    image.write_to(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Check user-data against [`SCHEMA`]: `#cloud-config` header, YAML, and
/// the subset's types, required keys and no unknown keys. Errors name the
/// path.
pub fn validate_cloud_config(user_data: &[u8]) -> Result<(), Vec<String>> {
    let text = std::str::from_utf8(user_data).map_err(|e| vec![format!("not UTF-8: {e}")])?;
    if !text.starts_with("#cloud-config\n") {
        return Err(vec!["user-data must start with `#cloud-config`".into()]);
    }
    let doc: Value = serde_norway::from_str(text).map_err(|e| vec![format!("not YAML: {e}")])?;
    let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| vec![format!("schema: {e}")])?;
    let mut errors = Vec::new();
    check(&schema, &doc, "$", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => false,
    }
}

/// The JSON-Schema keywords the subset uses: type, enum, minLength,
/// properties, required, additionalProperties (false), items, minItems, oneOf.
fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = alts
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                check(s, v, path, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!(
                "{path}: matches {matching} of the oneOf alternatives, not 1"
            ));
        }
        return;
    }
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        if !type_ok(t, v) {
            errors.push(format!("{path}: expected {t}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(format!("{path}: not one of {allowed:?}"));
        }
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), v.as_str()) {
        if (s.chars().count() as u64) < min {
            errors.push(format!("{path}: shorter than {min}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for req in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !obj.contains_key(req) {
                errors.push(format!("{path}: `{req}` is required"));
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(s, val, &format!("{path}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{path}: unknown key `{k}`"))
                }
                None => {}
            }
        }
    }
    if let Some(arr) = v.as_array() {
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if (arr.len() as u64) < min {
                errors.push(format!("{path}: fewer than {min} items"));
            }
        }
        if let Some(items) = schema.get("items") {
            for (i, item) in arr.iter().enumerate() {
                check(items, item, &format!("{path}[{i}]"), errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LinuxOptions {
        LinuxOptions {
            hostname: "web-01".into(),
            user: "ops".into(),
            ssh_authorized_keys: vec!["ssh-ed25519 AAAAC3Nz ops@lab".into()],
            packages: vec!["curl".into(), "qemu-guest-agent".into()],
        }
    }

    #[test]
    fn seed_validates_and_escapes() {
        let ip = IpJson::Static {
            address: "10.1.2.3".parse().unwrap(),
            prefix_length: 24,
            netmask: "255.255.255.0".parse().unwrap(),
            gateway: Some("10.1.2.1".parse().unwrap()),
            dns: vec!["9.9.9.9".parse().unwrap()],
        };
        // Hostile content in the embedded files stays data.
        let pj = "{\"token\": \"a'b\\\"c\\n#cloud-config: x\"}";
        let pb = "name: x\nroles:\n  - role: \"'; rm -rf / #\"\n";
        let seed = build_seed(
            &opts(),
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f",
            &ip,
            pj,
            Some(pb),
        );
        validate_cloud_config(&seed.user_data).unwrap();
        let doc: Value = serde_norway::from_slice(&seed.user_data).unwrap();
        assert_eq!(doc["hostname"], "web-01");
        assert_eq!(doc["write_files"][0]["content"], pj);
        assert_eq!(doc["write_files"][2]["content"], pb);
        assert_eq!(doc["write_files"][1]["content"], REPORTER);
        assert_eq!(doc["runcmd"][0][2], "finish");
        let md: Value = serde_norway::from_slice(&seed.meta_data).unwrap();
        assert_eq!(md["instance-id"], "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f");
        let nc: Value = serde_norway::from_slice(seed.network_config.as_ref().unwrap()).unwrap();
        assert_eq!(nc["version"], 2);
        assert_eq!(nc["ethernets"]["primary"]["addresses"][0], "10.1.2.3/24");
        assert_eq!(nc["ethernets"]["primary"]["routes"][0]["via"], "10.1.2.1");
        let iso = seed_iso(&seed).unwrap();
        assert_eq!(&iso[0x8001..0x8006], b"CD001");
        // volume id of the primary descriptor
        assert!(
            iso[0x8028..0x8048].starts_with(b"CIDATA")
                || iso[0x8028..0x8048].starts_with(b"cidata")
        );
        let dhcp = build_seed(
            &opts(),
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f",
            &IpJson::Dhcp,
            "{}",
            None,
        );
        assert!(dhcp.network_config.is_none());
        validate_cloud_config(&dhcp.user_data).unwrap();
    }

    #[test]
    fn validator_catches_mistakes() {
        for (bad, want) in [
            ("hostname: x\n", "#cloud-config"),
            ("#cloud-config\nhostnme: x\n", "unknown key `hostnme`"),
            (
                "#cloud-config\npackages: curl\n",
                "$.packages: expected array",
            ),
            ("#cloud-config\nusers:\n  - gecos: x\n", "oneOf"),
            ("#cloud-config\nruncmd:\n  - {a: 1}\n", "oneOf"),
            (
                "#cloud-config\nwrite_files:\n  - content: x\n",
                "`path` is required",
            ),
            ("#cloud-config\nssh_pwauth: \"no\"\n", "expected boolean"),
        ] {
            let errs = validate_cloud_config(bad.as_bytes()).unwrap_err();
            assert!(errs.iter().any(|e| e.contains(want)), "{bad:?}: {errs:?}");
        }
    }
}
