//! The job spec: the request body of `POST /api/v1/vm-jobs`, its
//! validation (every error names its field) and the normalised form that
//! is stored with the job and drives the orchestrator.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::db::ids::{AgentId, PlaybookId};
use crate::domains::provisioning::dto::{DownloadsInput, LinuxInput};
use crate::domains::provisioning::GuestOs;
use crate::validate::FieldErrors;

/// Most VMs in one job.
pub const MAX_ITEMS: u32 = 500;
/// The tag a job writes into each VM's description: a VM found at the
/// item's VMID is this item's only when its description carries it.
pub fn owner_tag(job_id: &str, idx: i64) -> String {
    format!("botmox-job:{job_id}:{idx}")
}

/// One VM of `names[]`: a name, or `{name, os}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum NameEntry {
    /// The VM's name (a DNS label); its OS is the job's `os`.
    Name(String),
    /// A VM with its own OS (`windows` needs the job's `profile_id`).
    Named { name: String, os: Option<GuestOs> },
}

/// `{first, last}`: the VMIDs the job's VMs get, in order.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmidRange {
    #[schema(minimum = 100, maximum = 999999999)]
    pub first: u32,
    #[schema(minimum = 100, maximum = 999999999)]
    pub last: u32,
}

/// A disk to grow after the clone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiskResize {
    /// The disk (`scsi0`, `virtio1`, `sata0`, `ide0`); default `scsi0`.
    pub disk: Option<String>,
    /// `+10G` (grow by) or `80G` (grow to); units K, M, G, T.
    pub size: String,
}

/// How the VM's first NIC gets its MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MacPolicy {
    /// Proxmox generates one.
    Auto,
    /// Derived from the VM's UUID (locally administered, stable across
    /// retries: usable for DHCP reservations).
    Derived,
}

/// `net0` override: bridge, VLAN tag, NIC model, MAC policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Net0 {
    /// `vmbr0`, `vmbr1`, … (default `vmbr0`).
    pub bridge: Option<String>,
    /// 802.1Q tag 1..4094.
    #[schema(minimum = 1, maximum = 4094)]
    pub vlan: Option<u16>,
    /// `virtio` (default), `e1000`, `rtl8139` or `vmxnet3`.
    pub model: Option<String>,
    /// `auto` (default) or `derived`.
    pub mac: Option<MacPolicy>,
}

/// Addresses for the VMs: DHCP, or a pool the server allocates from
/// without collisions across the tenant's jobs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum IpPlan {
    Dhcp,
    Pool {
        /// The network, e.g. `10.0.0.0/24`.
        cidr: String,
        /// Inside the network.
        gateway: String,
        /// Up to 4 DNS servers.
        #[serde(default)]
        dns: Vec<String>,
        /// First and last address handed out (inclusive, inside the network).
        first: String,
        last: String,
    },
}

/// What to do with the other VMs when one fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// The other VMs go on; the job ends `failed`.
    Continue,
    /// No new VM starts; the job ends `failed` once the running ones end.
    Stop,
}

/// `POST /api/v1/vm-jobs`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVmJob {
    /// The agent that drives the Proxmox host (operators: their own agents).
    pub agent_id: AgentId,
    /// The agent's target id (default: the agent's default target).
    pub target: Option<String>,
    /// The Proxmox node.
    pub node: String,
    /// The template VM to clone (checked through the agent when the job
    /// runs: a VM that is not a template fails the job with a clear error).
    #[schema(minimum = 100, maximum = 999999999)]
    pub template_vmid: u32,
    /// How many VMs (1..500); or give `names`.
    #[schema(minimum = 1, maximum = 500)]
    pub count: Option<u32>,
    /// Explicit VM names (DNS labels, unique), one VM each.
    pub names: Option<Vec<NameEntry>>,
    /// With `count`: names are `<prefix>-01`, `<prefix>-02`, … (default `vm`).
    pub name_prefix: Option<String>,
    /// VMIDs to use in order (else free VMIDs the agent reads from the
    /// cluster when the job starts, like `/cluster/nextid`).
    pub vmid_range: Option<VmidRange>,
    /// Full clone (default true); `false`: linked clone of the template.
    pub full_clone: Option<bool>,
    /// Target storage of a full clone's disks.
    pub storage: Option<String>,
    /// Storage for the provisioning ISOs. Default: the agent target's
    /// ISO storage (its `iso_storage` setting, else the node's storage that
    /// holds ISO images, `local` when it does).
    pub iso_storage: Option<String>,
    /// The VMs' OS when `names` does not say (default `windows`).
    pub os: Option<GuestOs>,
    /// Unattend profile for the Windows VMs (required when there are any).
    pub profile_id: Option<String>,
    /// The cloud-init choices for the Linux VMs (the host name is each VM's name).
    pub linux: Option<LinuxInput>,
    /// A playbook put on every VM's ISO.
    pub playbook_id: Option<PlaybookId>,
    /// Downloads the guests fetch (see provisioning).
    pub downloads: Option<DownloadsInput>,
    /// CPU cores (1..512).
    #[schema(minimum = 1, maximum = 512)]
    pub cores: Option<u32>,
    /// Memory in MiB (16..4194304).
    #[schema(minimum = 16, maximum = 4194304)]
    pub memory: Option<u32>,
    pub disk_resize: Option<DiskResize>,
    pub net0: Option<Net0>,
    /// Default `{"mode":"dhcp"}`.
    pub ip_plan: Option<IpPlan>,
    /// Start the VMs and wait for their installation (default true).
    pub start: Option<bool>,
    /// Clone/configure operations at once on the node (1..50, default 2).
    #[schema(minimum = 1, maximum = 50)]
    pub parallelism: Option<u32>,
    /// `continue` (default) or `stop`.
    pub on_failure: Option<OnFailure>,
    /// Deadline of each VM's installation in minutes (1..1440; default
    /// the server's `vm_jobs_install_timeout_minutes`).
    #[schema(minimum = 1, maximum = 1440)]
    pub install_timeout_minutes: Option<u32>,
    /// Detach and delete a failed or cancelled VM's ISO (default true).
    pub cleanup_iso_on_failure: Option<bool>,
    /// The same key (within the tenant) returns the same job.
    #[schema(max_length = 200)]
    pub idempotency_key: Option<String>,
}

/// The stored, normalised spec (every default filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobSpec {
    pub agent_id: AgentId,
    pub target: Option<String>,
    pub node: String,
    pub template_vmid: u32,
    pub vms: Vec<PlannedVm>,
    pub vmid_range: Option<(u32, u32)>,
    pub full_clone: bool,
    pub storage: Option<String>,
    /// `None`: the target's default ISO storage, chosen by the agent.
    pub iso_storage: Option<String>,
    pub profile_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub linux: Option<serde_json::Value>,
    pub playbook_id: Option<PlaybookId>,
    #[schema(value_type = Option<Object>)]
    pub downloads: Option<serde_json::Value>,
    pub cores: Option<u32>,
    pub memory: Option<u32>,
    pub disk_resize: Option<(String, String)>,
    pub net0: Option<Net0Plan>,
    pub ip_pool: Option<PoolPlan>,
    pub start: bool,
    pub parallelism: u32,
    pub on_failure: OnFailure,
    pub install_timeout_minutes: u32,
    pub cleanup_iso_on_failure: bool,
}

/// One VM of the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlannedVm {
    pub name: String,
    pub os: GuestOs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Net0Plan {
    pub bridge: String,
    pub vlan: Option<u16>,
    pub model: String,
    pub mac: MacPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PoolPlan {
    pub network: String,
    pub prefix_length: u8,
    pub gateway: String,
    pub dns: Vec<String>,
    pub first: String,
    pub last: String,
}

impl PoolPlan {
    /// Addresses of the pool, in order.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = self.first.parse::<Ipv4Addr>().map(u32::from).unwrap_or(1);
        let last = self.last.parse::<Ipv4Addr>().map(u32::from).unwrap_or(0);
        (first..=last).map(Ipv4Addr::from)
    }

    pub fn size(&self) -> u64 {
        let first = self.first.parse::<Ipv4Addr>().map(u32::from).unwrap_or(1);
        let last = self.last.parse::<Ipv4Addr>().map(u32::from).unwrap_or(0);
        u64::from(last)
            .saturating_add(1)
            .saturating_sub(u64::from(first))
    }
}

impl JobSpec {
    /// SHA-256 of the canonical JSON (the idempotency check compares it).
    pub fn digest(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    }

    pub fn has_windows(&self) -> bool {
        self.vms.iter().any(|v| v.os == GuestOs::Windows)
    }
}

fn plain(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// A DNS label: what Proxmox accepts as a VM name and cloud-init as a host name.
pub fn is_dns_label(s: &str) -> bool {
    (1..=63).contains(&s.len()) && plain(s, b"-") && !s.starts_with('-') && !s.ends_with('-')
}

fn is_storage_id(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && plain(s, b"-_.")
}

fn parse_ip(f: &mut FieldErrors, field: &str, v: &str) -> Option<Ipv4Addr> {
    match v.trim().parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            f.add(field, "must be an IPv4 address (a.b.c.d)");
            None
        }
    }
}

fn check_pool(f: &mut FieldErrors, plan: &IpPlan, count: u64) -> Option<PoolPlan> {
    let IpPlan::Pool {
        cidr,
        gateway,
        dns,
        first,
        last,
    } = plan
    else {
        return None;
    };
    let net = match cidr.split_once('/') {
        Some((a, p)) => match (a.parse::<Ipv4Addr>(), p.parse::<u8>()) {
            (Ok(a), Ok(p)) if (8..=30).contains(&p) => {
                let mask = u32::MAX << (32 - u32::from(p));
                if u32::from(a) & !mask != 0 {
                    f.add("ip_plan.cidr", "must be a network address (host bits zero)");
                    None
                } else {
                    Some((u32::from(a), mask, p))
                }
            }
            _ => {
                f.add(
                    "ip_plan.cidr",
                    "must be an IPv4 network a.b.c.d/n with n between 8 and 30",
                );
                None
            }
        },
        None => {
            f.add("ip_plan.cidr", "must be an IPv4 network a.b.c.d/n");
            None
        }
    };
    let gw = parse_ip(f, "ip_plan.gateway", gateway);
    let lo = parse_ip(f, "ip_plan.first", first);
    let hi = parse_ip(f, "ip_plan.last", last);
    if dns.len() > 4 {
        f.add("ip_plan.dns", "at most 4 servers");
    }
    for (i, d) in dns.iter().enumerate() {
        parse_ip(f, &format!("ip_plan.dns[{i}]"), d);
    }
    let (net, mask, prefix) = net?;
    let inside = |a: Ipv4Addr| u32::from(a) & mask == net;
    let broadcast = net | !mask;
    let usable = |a: Ipv4Addr| inside(a) && u32::from(a) != net && u32::from(a) != broadcast;
    let (gw, lo, hi) = (gw?, lo?, hi?);
    f.check(
        usable(gw),
        "ip_plan.gateway",
        "must be a host address inside cidr",
    );
    f.check(
        usable(lo),
        "ip_plan.first",
        "must be a host address inside cidr",
    );
    f.check(
        usable(hi),
        "ip_plan.last",
        "must be a host address inside cidr",
    );
    if u32::from(lo) > u32::from(hi) {
        f.add("ip_plan.last", "must not come before first");
        return None;
    }
    let gw_in_range = (u32::from(lo)..=u32::from(hi)).contains(&u32::from(gw));
    let size = u64::from(u32::from(hi) - u32::from(lo)) + 1 - u64::from(gw_in_range);
    if size < count {
        f.add(
            "ip_plan",
            format!("the pool has {size} addresses; the job needs {count}"),
        );
    }
    Some(PoolPlan {
        network: Ipv4Addr::from(net).to_string(),
        prefix_length: prefix,
        gateway: gw.to_string(),
        dns: dns.iter().map(|d| d.trim().to_string()).collect(),
        first: lo.to_string(),
        last: hi.to_string(),
    })
}

fn size_ok(s: &str) -> bool {
    let t = s.strip_prefix('+').unwrap_or(s);
    // The unit is the last character (split on a char boundary: the text is
    // the client's).
    let Some(unit) = t.chars().next_back() else {
        return false;
    };
    let num = &t[..t.len() - unit.len_utf8()];
    matches!(unit, 'K' | 'M' | 'G' | 'T')
        && !num.is_empty()
        && num.len() <= 12
        && num.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && num.parse::<f64>().is_ok_and(|n| n > 0.0)
}

fn disk_ok(d: &str) -> bool {
    [("scsi", 30), ("virtio", 15), ("sata", 5), ("ide", 3)]
        .iter()
        .any(|(p, max)| {
            d.strip_prefix(p).is_some_and(|n| {
                !n.is_empty()
                    && n.len() <= 2
                    && !(n.len() == 2 && n.starts_with('0'))
                    && n.parse::<u32>().is_ok_and(|v| v <= *max)
            })
        })
}

/// Validate the request and fill in the defaults. `install_default` is
/// the server's default installation deadline in minutes.
pub fn normalise(req: CreateVmJob, install_default: u32) -> Result<JobSpec, FieldErrors> {
    let mut f = FieldErrors::default();
    f.check(
        !req.agent_id.as_str().trim().is_empty() && req.agent_id.as_str().len() <= 200,
        "agent_id",
        "must be 1-200 characters",
    );
    if let Some(t) = &req.target {
        f.check(
            (1..=100).contains(&t.len()) && plain(t, b"-_."),
            "target",
            "must be a target id (1-100 letters, digits, '-', '_', '.')",
        );
    }
    f.check(
        (1..=63).contains(&req.node.len()) && plain(&req.node, b"-.") && !req.node.starts_with('-'),
        "node",
        "must be 1-63 letters, digits, '-' and '.'",
    );
    f.check(
        (100..=999_999_999).contains(&req.template_vmid),
        "template_vmid",
        "must be between 100 and 999999999",
    );
    let default_os = req.os.unwrap_or(GuestOs::Windows);
    let vms: Vec<PlannedVm> = match (&req.count, &req.names) {
        (Some(_), Some(_)) => {
            f.add("names", "give count or names, not both");
            Vec::new()
        }
        (None, None) => {
            f.add("count", "is required (or give names)");
            Vec::new()
        }
        (Some(n), None) => {
            if !(1..=MAX_ITEMS).contains(n) {
                f.add("count", "must be between 1 and 500");
                Vec::new()
            } else {
                let prefix = req.name_prefix.clone().unwrap_or_else(|| "vm".into());
                let width = n.to_string().len().max(2);
                let ok = is_dns_label(&format!("{prefix}-{}", "0".repeat(width)));
                f.check(
                    ok,
                    "name_prefix",
                    "must make DNS labels: letters, digits and '-', at most 59 characters",
                );
                (1..=*n)
                    .map(|i| PlannedVm {
                        name: format!("{prefix}-{i:0width$}"),
                        os: default_os,
                    })
                    .collect()
            }
        }
        (None, Some(names)) => {
            if req.name_prefix.is_some() {
                f.add("name_prefix", "only with count");
            }
            if names.is_empty() || names.len() > MAX_ITEMS as usize {
                f.add("names", "must list 1 to 500 names");
            }
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for (i, e) in names.iter().enumerate() {
                let (name, os) = match e {
                    NameEntry::Name(n) => (n.clone(), default_os),
                    NameEntry::Named { name, os } => (name.clone(), os.unwrap_or(default_os)),
                };
                if !is_dns_label(&name) {
                    f.add(
                        &format!("names[{i}]"),
                        "must be a DNS label: 1-63 letters, digits and '-', not starting or ending with '-'",
                    );
                } else if !seen.insert(name.to_ascii_lowercase()) {
                    f.add(&format!("names[{i}]"), "is given twice");
                }
                out.push(PlannedVm { name, os });
            }
            out
        }
    };
    let count = vms.len() as u64;
    let vmid_range = req.vmid_range.map(|r| (r.first, r.last));
    if let Some(r) = &req.vmid_range {
        let ok = (100..=999_999_999).contains(&r.first) && (100..=999_999_999).contains(&r.last);
        if !ok {
            f.add(
                "vmid_range",
                "first and last must be between 100 and 999999999",
            );
        } else if r.first > r.last {
            f.add("vmid_range.last", "must not come before first");
        } else if u64::from(r.last - r.first) + 1 < count {
            f.add(
                "vmid_range",
                format!(
                    "the range holds {} VMIDs; the job needs {count}",
                    r.last - r.first + 1
                ),
            );
        } else if (r.first..=r.last).contains(&req.template_vmid) {
            f.add("vmid_range", "must not contain template_vmid");
        }
    }
    let full_clone = req.full_clone.unwrap_or(true);
    if let Some(s) = &req.storage {
        if !full_clone {
            f.add("storage", "only with a full clone (full_clone: true)");
        } else {
            f.check(is_storage_id(s), "storage", "must be a Proxmox storage id");
        }
    }
    let iso_storage = req.iso_storage.clone();
    if let Some(s) = &iso_storage {
        f.check(
            is_storage_id(s),
            "iso_storage",
            "must be a Proxmox storage id",
        );
    }
    let has_windows = vms.iter().any(|v| v.os == GuestOs::Windows);
    let has_linux = vms.iter().any(|v| v.os == GuestOs::Linux);
    match &req.profile_id {
        Some(p) if !has_windows => {
            let _ = p;
            f.add("profile_id", "only for Windows VMs");
        }
        Some(p) => f.check(
            !p.is_empty() && p.len() <= 200,
            "profile_id",
            "must be 1-200 characters",
        ),
        None if has_windows => f.add(
            "profile_id",
            "is required for Windows VMs (the unattend profile)",
        ),
        None => {}
    }
    if let Some(l) = &req.linux {
        if !has_linux {
            f.add("linux", "only for Linux VMs");
        }
        if l.hostname.is_some() {
            f.add("linux.hostname", "each VM's host name is its name");
        }
    }
    if let Some(c) = req.cores {
        f.check((1..=512).contains(&c), "cores", "must be between 1 and 512");
    }
    if let Some(m) = req.memory {
        f.check(
            (16..=4_194_304).contains(&m),
            "memory",
            "must be between 16 and 4194304 (MiB)",
        );
    }
    let disk_resize = req.disk_resize.as_ref().map(|d| {
        let disk = d.disk.clone().unwrap_or_else(|| "scsi0".into());
        f.check(
            disk_ok(&disk),
            "disk_resize.disk",
            "must be a disk slot (scsi0..30, virtio0..15, sata0..5, ide0..3)",
        );
        f.check(
            size_ok(&d.size),
            "disk_resize.size",
            "must be a size like +10G or 80G (units K, M, G, T)",
        );
        (disk, d.size.clone())
    });
    let net0 = req.net0.as_ref().map(|n| {
        let bridge = n.bridge.clone().unwrap_or_else(|| "vmbr0".into());
        f.check(
            bridge.starts_with("vmbr") && (5..=14).contains(&bridge.len()) && plain(&bridge, b""),
            "net0.bridge",
            "must be a Linux bridge like vmbr0",
        );
        if let Some(v) = n.vlan {
            f.check(
                (1..=4094).contains(&v),
                "net0.vlan",
                "must be between 1 and 4094",
            );
        }
        let model = n.model.clone().unwrap_or_else(|| "virtio".into());
        f.check(
            ["virtio", "e1000", "rtl8139", "vmxnet3"].contains(&model.as_str()),
            "net0.model",
            "must be virtio, e1000, rtl8139 or vmxnet3",
        );
        Net0Plan {
            bridge,
            vlan: n.vlan,
            model,
            mac: n.mac.unwrap_or(MacPolicy::Auto),
        }
    });
    let ip_pool = match &req.ip_plan {
        None | Some(IpPlan::Dhcp) => None,
        Some(p) => check_pool(&mut f, p, count),
    };
    let parallelism = req.parallelism.unwrap_or(2);
    f.check(
        (1..=50).contains(&parallelism),
        "parallelism",
        "must be between 1 and 50",
    );
    let install_timeout_minutes = req.install_timeout_minutes.unwrap_or(install_default);
    f.check(
        (1..=1440).contains(&install_timeout_minutes),
        "install_timeout_minutes",
        "must be between 1 and 1440",
    );
    if let Some(k) = &req.idempotency_key {
        if k.is_empty() {
            f.add("idempotency_key", "must be 1-200 characters");
        } else {
            f.display_text("idempotency_key", k, 200);
        }
    }
    f.into_fields()?;
    Ok(JobSpec {
        agent_id: req.agent_id,
        target: req.target,
        node: req.node,
        template_vmid: req.template_vmid,
        vms,
        vmid_range,
        full_clone,
        storage: req.storage,
        iso_storage,
        profile_id: req.profile_id,
        linux: req
            .linux
            .as_ref()
            .map(|l| serde_json::json!({
                "user": l.user, "ssh_authorized_keys": l.ssh_authorized_keys, "packages": l.packages,
            })),
        playbook_id: req.playbook_id,
        downloads: req.downloads.as_ref().map(|d| {
            serde_json::json!({"bootstrap_url": d.bootstrap_url, "app_url": d.app_url})
        }),
        cores: req.cores,
        memory: req.memory,
        disk_resize,
        net0,
        ip_pool,
        start: req.start.unwrap_or(true),
        parallelism,
        on_failure: req.on_failure.unwrap_or(OnFailure::Continue),
        install_timeout_minutes,
        cleanup_iso_on_failure: req.cleanup_iso_on_failure.unwrap_or(true),
    })
}

/// A locally administered unicast MAC derived from the VM's UUID.
pub fn derived_mac(vm_uuid: &str) -> String {
    let h = Sha256::digest(vm_uuid.as_bytes());
    format!(
        "02:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({"agent_id": "a1", "node": "pve", "template_vmid": 9000,
                           "count": 3, "profile_id": "p1"})
    }

    fn parse(v: serde_json::Value) -> Result<JobSpec, Vec<String>> {
        let req: CreateVmJob = serde_json::from_value(v).expect("shape");
        normalise(req, 120).map_err(|f| f.0.into_iter().map(|(k, _)| k).collect())
    }

    #[test]
    fn defaults_are_filled_in() {
        let s = parse(base()).unwrap();
        assert_eq!(s.vms.len(), 3);
        assert_eq!(s.vms[0].name, "vm-01");
        assert!(s.full_clone && s.start);
        assert_eq!(s.parallelism, 2);
        assert_eq!(s.iso_storage, None);
        assert_eq!(s.on_failure, OnFailure::Continue);
        assert_eq!(s.install_timeout_minutes, 120);
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (serde_json::json!({"count": 0}), "count"),
            (serde_json::json!({"count": 501}), "count"),
            (serde_json::json!({"names": ["a"]}), "names"),
            (
                serde_json::json!({"count": null, "names": ["ok", "-bad"]}),
                "names[1]",
            ),
            (
                serde_json::json!({"count": null, "names": ["x", "X"]}),
                "names[1]",
            ),
            (
                serde_json::json!({"vmid_range": {"first": 200, "last": 201}}),
                "vmid_range",
            ),
            (
                serde_json::json!({"vmid_range": {"first": 300, "last": 200}}),
                "vmid_range.last",
            ),
            (
                serde_json::json!({"full_clone": false, "storage": "local-lvm"}),
                "storage",
            ),
            (serde_json::json!({"profile_id": null}), "profile_id"),
            (serde_json::json!({"node": "bad node"}), "node"),
            (serde_json::json!({"template_vmid": 5}), "template_vmid"),
            (serde_json::json!({"cores": 0}), "cores"),
            (serde_json::json!({"memory": 1}), "memory"),
            (serde_json::json!({"parallelism": 0}), "parallelism"),
            (
                serde_json::json!({"disk_resize": {"size": "10"}}),
                "disk_resize.size",
            ),
            (
                // not a char boundary before the last byte (was a panic)
                serde_json::json!({"disk_resize": {"size": "±"}}),
                "disk_resize.size",
            ),
            (
                serde_json::json!({"disk_resize": {"size": "+10Ĝ"}}),
                "disk_resize.size",
            ),
            (
                serde_json::json!({"disk_resize": {"size": ""}}),
                "disk_resize.size",
            ),
            (
                serde_json::json!({"disk_resize": {"disk": "scsi99", "size": "+1G"}}),
                "disk_resize.disk",
            ),
            (
                serde_json::json!({"net0": {"bridge": "eth0"}}),
                "net0.bridge",
            ),
            (serde_json::json!({"net0": {"model": "ne2k"}}), "net0.model"),
            (
                serde_json::json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/24", "gateway": "10.0.0.1",
                "first": "10.0.0.10", "last": "10.0.0.11"}}),
                "ip_plan",
            ),
            (
                serde_json::json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.1/24", "gateway": "10.0.0.1",
                "first": "10.0.0.10", "last": "10.0.0.99"}}),
                "ip_plan.cidr",
            ),
            (
                serde_json::json!({"ip_plan": {"mode": "pool", "cidr": "10.0.0.0/24", "gateway": "10.0.1.1",
                "first": "10.0.0.10", "last": "10.0.0.99"}}),
                "ip_plan.gateway",
            ),
            (serde_json::json!({"linux": {}}), "linux"),
            (
                serde_json::json!({"install_timeout_minutes": 0}),
                "install_timeout_minutes",
            ),
            (
                serde_json::json!({"idempotency_key": ""}),
                "idempotency_key",
            ),
        ];
        for (patch, field) in cases {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                if val.is_null() {
                    v.as_object_mut().unwrap().remove(k);
                } else {
                    v[k] = val.clone();
                }
            }
            let errs = parse(v.clone()).expect_err(&format!("{v}"));
            assert!(errs.iter().any(|e| e == field), "{field}: {errs:?} for {v}");
        }
    }

    #[test]
    fn mixed_names_and_pool() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("count");
        v["names"] = serde_json::json!(["w1", {"name": "l1", "os": "linux"}]);
        v["ip_plan"] = serde_json::json!({"mode": "pool", "cidr": "10.0.0.0/24",
            "gateway": "10.0.0.1", "dns": ["10.0.0.1"], "first": "10.0.0.1", "last": "10.0.0.2"});
        let err = parse(v.clone()).unwrap_err();
        assert_eq!(err, vec!["ip_plan"], "the gateway is not handed out");
        v["ip_plan"]["last"] = "10.0.0.3".into();
        let s = parse(v).unwrap();
        assert_eq!(s.vms[1].os, GuestOs::Linux);
        assert_eq!(s.ip_pool.unwrap().size(), 3);
    }

    #[test]
    fn derived_macs_are_local_unicast_and_stable() {
        let a = derived_mac("6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f");
        assert_eq!(a, derived_mac("6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f"));
        assert!(a.starts_with("02:"));
        assert_eq!(a.len(), 17);
    }
}
