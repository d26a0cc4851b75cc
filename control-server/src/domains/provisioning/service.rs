//! The rules of provisioning: generating a VM's ISO payload and its token,
//! the guests' public calls (validate, report progress, fetch the
//! playbook), progress reads, revocation, the sweeper's expiry, the
//! auto-detach, and playbooks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::dto::{GenerateInput, IpInput, LinuxInput};
use super::guest::{self, Downloads, IpJson, ProvisionJson};
use super::linux::{self, LinuxOptions};
use super::playbook::{self, PlaybookCheck};
use super::store::{
    self, GuestOs, NewPlaybook, NewToken, PlaybookRow, ProgressRow, Step, StepStatus, TokenRow,
    TokenStatus,
};
use super::windows::{self, VmFacts, Windows};
use super::{ProvisioningError, TOKEN_PREFIX};
use crate::auth::secret;
use crate::auth::{Identity, Role};
use crate::config::ProvisioningConfig;
use crate::db::ids::{AgentId, CommandId, PlaybookId, ProvisioningTokenId, UserId};
use crate::db::list::{ListParams, Page};
use crate::db::{ms_to_rfc3339, now_ms, Db, StoreResult, TenantScope, Write};
use crate::domains::agents::{AgentError, AgentsService};
use crate::domains::commands::CommandsService;
use crate::domains::events::store::NewEvent;
use crate::domains::events::EventsService;
use crate::domains::licensing::LicensingService;
use crate::validate::FieldErrors;

/// Largest `details` object of a progress report (JSON bytes).
pub const MAX_DETAILS_BYTES: usize = 8 * 1024;
const MS_PER_DAY: i64 = 86_400_000;

/// Where the guest reaches this server.
pub struct ServerInfo {
    pub api_endpoint: String,
    pub server_cert_sha256: Option<String>,
}

// ---------------------------------------------------------------- outputs

/// The ISO payload of one VM.
#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedPayload {
    /// File name → base64 (standard, padded): exactly the `files` of
    /// `proxmox.create-provision-iso`. Windows: `Autounattend.xml`,
    /// `provision.json`, `START.ps1`, the answer file's extra files and
    /// `playbook.yml`; Linux: `user-data`, `meta-data`, `network-config`.
    pub files: BTreeMap<String, String>,
    /// Linux: the NoCloud seed (ISO labelled `cidata`, base64), for
    /// `proxmox.upload-iso {isoName, data}` (cloud-init finds the seed by
    /// that label, which `create-provision-iso` does not write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_iso: Option<String>,
    /// The command that puts this payload on Proxmox.
    pub command_type: String,
    /// The ISO name to use (and that the auto-detach deletes).
    pub iso_name: String,
    pub token_id: ProvisioningTokenId,
    /// The provisioning token (also inside provision.json); shown once.
    pub token: String,
    pub token_expires_at: String,
    /// The token this one replaced (now `revoked`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_token_id: Option<ProvisioningTokenId>,
    pub vm_uuid: String,
    pub os: GuestOs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub computer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub playbook_id: Option<PlaybookId>,
}

/// A provisioning token as users see it (never the secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: ProvisioningTokenId,
    pub vm_uuid: String,
    pub status: TokenStatus,
    pub os: GuestOs,
    /// `bmxv_` and a few characters, to recognise it.
    pub token_hint: String,
    pub issued_by: UserId,
    pub issued_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub expired_at: Option<String>,
    pub revoked_at: Option<String>,
    pub revoke_reason: Option<String>,
    pub profile_id: Option<String>,
    pub playbook_id: Option<PlaybookId>,
    pub agent_id: Option<AgentId>,
    pub vmid: Option<i64>,
    pub iso_name: Option<String>,
}

/// One reported step.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    pub step: Step,
    pub status: StepStatus,
    pub details: Option<Value>,
    pub first_reported_at: String,
    pub reported_at: String,
    /// How often the guest sent it (repeats are accepted and counted).
    pub report_count: i64,
}

/// The auto-detach of the provisioning CD-ROM.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetachView {
    pub requested_at: String,
    /// The `proxmox.detach-cdrom` command, when it could be dispatched.
    pub command_id: Option<String>,
    /// Its current status (`queued` … `succeeded`/`failed`).
    pub command_status: Option<String>,
    pub command_error_code: Option<String>,
    pub command_error_message: Option<String>,
    /// Why it could not be dispatched (e.g. `AGENT_OFFLINE`).
    pub dispatch_error: Option<String>,
}

/// A VM's provisioning progress (its newest token).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressView {
    pub vm_uuid: String,
    /// `pending` (nothing reported), `running`, `completed` or `failed`.
    pub state: String,
    /// The furthest step reported, in the usual order.
    pub current_step: Option<Step>,
    /// In the usual step order (not arrival order).
    pub steps: Vec<StepView>,
    pub token: TokenView,
    pub detach: Option<DetachView>,
    pub updated_at: String,
}

/// The answer to a guest's `validate-token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenValidation {
    pub valid: bool,
    pub vm_uuid: String,
    pub os: GuestOs,
    pub expires_at: String,
    /// `GET /api/v1/provisioning/playbook` has a playbook for this VM.
    pub has_playbook: bool,
}

/// The answer to a guest's `report-progress`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportAck {
    pub vm_uuid: String,
    pub step: Step,
    /// The stored status (a final status is not moved back by a late report).
    pub status: StepStatus,
    /// The VM's overall state after this report.
    pub state: String,
    /// This step had been reported before.
    pub repeated: bool,
}

/// A playbook.
#[derive(Debug, Serialize, ToSchema)]
pub struct Playbook {
    pub id: PlaybookId,
    pub tenant_id: String,
    pub owner_user_id: UserId,
    pub name: String,
    pub is_default: bool,
    pub content: String,
    /// Warnings of the validation (unknown roles).
    pub warnings: Vec<playbook::PlaybookIssue>,
    pub created_at: String,
    pub updated_at: String,
}

/// The playbook a guest fetches.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestPlaybook {
    pub playbook_id: PlaybookId,
    pub name: String,
    /// The YAML text.
    pub content: String,
}

pub struct PlaybookInput {
    pub name: Option<String>,
    pub is_default: Option<bool>,
    pub content: Option<String>,
}

// ---------------------------------------------------------------- views

fn token_view(r: &TokenRow) -> TokenView {
    TokenView {
        id: r.id.clone(),
        vm_uuid: r.vm_uuid.clone(),
        status: r.status,
        os: r.os,
        token_hint: r.token_hint.clone(),
        issued_by: r.issued_by.clone(),
        issued_at: ms_to_rfc3339(r.issued_at),
        expires_at: ms_to_rfc3339(r.expires_at),
        used_at: r.used_at.map(ms_to_rfc3339),
        expired_at: r.expired_at.map(ms_to_rfc3339),
        revoked_at: r.revoked_at.map(ms_to_rfc3339),
        revoke_reason: r.revoke_reason.clone(),
        profile_id: r.profile_id.clone(),
        playbook_id: r.playbook_id.clone(),
        agent_id: r.agent_id.clone(),
        vmid: r.vmid,
        iso_name: r.iso_name.clone(),
    }
}

fn playbook_view(r: PlaybookRow) -> Playbook {
    let warnings = playbook::check(&r.content).warnings;
    Playbook {
        id: r.id,
        tenant_id: r.tenant_id.into_string(),
        owner_user_id: r.owner_user_id,
        name: r.name,
        is_default: r.is_default != 0,
        content: r.content,
        warnings,
        created_at: ms_to_rfc3339(r.created_at),
        updated_at: ms_to_rfc3339(r.updated_at),
    }
}

/// Position of a step in the usual order.
fn order(step: Step) -> usize {
    Step::ALL
        .iter()
        .position(|s| *s == step)
        .unwrap_or(usize::MAX)
}

/// The overall state from the stored steps.
fn overall(steps: &[ProgressRow]) -> (&'static str, Option<Step>) {
    let current = steps.iter().map(|s| s.step).max_by_key(|s| order(*s));
    let state = if let Some(done) = steps.iter().find(|s| s.step == Step::Completed) {
        match done.status {
            StepStatus::Failed => "failed",
            StepStatus::Completed => "completed",
            _ => "running",
        }
    } else if steps.iter().any(|s| s.status == StepStatus::Failed) {
        "failed"
    } else if steps.is_empty() {
        "pending"
    } else {
        "running"
    };
    (state, current)
}

fn is_final(s: StepStatus) -> bool {
    matches!(s, StepStatus::Completed | StepStatus::Failed)
}

// ---------------------------------------------------------------- validation

fn parse_ipv4(f: &mut FieldErrors, field: &str, v: &str) -> Option<Ipv4Addr> {
    match v.trim().parse::<Ipv4Addr>() {
        Ok(a) => Some(a),
        Err(_) => {
            f.add(field, "must be an IPv4 address (a.b.c.d)");
            None
        }
    }
}

fn check_ip(f: &mut FieldErrors, ip: &IpInput) -> Option<IpJson> {
    let address = parse_ipv4(f, "ip.address", &ip.address);
    let prefix = match (&ip.netmask, ip.prefix_length) {
        (Some(_), Some(_)) => {
            f.add(
                "ip.prefix_length",
                "give netmask or prefix_length, not both",
            );
            None
        }
        (_, Some(p)) if p > 32 => {
            f.add("ip.prefix_length", "must be between 0 and 32");
            None
        }
        (_, Some(p)) => Some(p),
        (Some(m), None) => match parse_ipv4(f, "ip.netmask", m) {
            Some(mask) => match guest::prefix_len(mask) {
                Some(p) => Some(p),
                None => {
                    f.add(
                        "ip.netmask",
                        "must be a contiguous netmask (e.g. 255.255.255.0)",
                    );
                    None
                }
            },
            None => None,
        },
        (None, None) => Some(24),
    };
    let gateway = ip
        .gateway
        .as_deref()
        .and_then(|g| parse_ipv4(f, "ip.gateway", g));
    let dns_in = ip.dns.clone().unwrap_or_default();
    if dns_in.len() > 4 {
        f.add("ip.dns", "at most 4 servers");
    }
    let dns: Vec<Ipv4Addr> = dns_in
        .iter()
        .enumerate()
        .filter_map(|(i, d)| parse_ipv4(f, &format!("ip.dns[{i}]"), d))
        .collect();
    let (address, prefix) = (address?, prefix?);
    let mask = guest::netmask(prefix)?;
    if let Some(gw) = gateway {
        let m = u32::from(mask);
        if u32::from(gw) & m != u32::from(address) & m || gw == address {
            f.add(
                "ip.gateway",
                "must be another address inside the VM's subnet",
            );
        }
    }
    Some(IpJson::Static {
        address,
        prefix_length: prefix,
        netmask: mask,
        gateway,
        dns,
    })
}

fn plain_name(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn is_hostname(s: &str) -> bool {
    (1..=63).contains(&s.len()) && plain_name(s, b"-") && !s.starts_with('-') && !s.ends_with('-')
}

fn check_url(f: &mut FieldErrors, field: &str, u: &Option<String>) {
    if let Some(u) = u {
        f.check(
            (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() <= 2000
                && !u.chars().any(|c| c.is_control() || c.is_whitespace()),
            field,
            "must be an http(s):// URL of at most 2000 characters without spaces",
        );
    }
}

fn linux_options(
    f: &mut FieldErrors,
    l: &LinuxInput,
    vm_name: Option<&str>,
    vm_uuid: &str,
) -> LinuxOptions {
    let hostname = match &l.hostname {
        Some(h) => {
            f.check(
                is_hostname(h),
                "linux.hostname",
                "must be 1-63 letters, digits and '-', not starting or ending with '-'",
            );
            h.clone()
        }
        None => match vm_name {
            Some(n) if is_hostname(n) => n.to_string(),
            _ => format!("vm-{}", &vm_uuid[..8]),
        },
    };
    let user = l.user.clone().unwrap_or_else(|| "botmox".into());
    f.check(
        !user.is_empty()
            && user.len() <= 32
            && user
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && user
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && user != "root",
        "linux.user",
        "must match [a-z_][a-z0-9_-]{0,31} and not be root",
    );
    let keys = l.ssh_authorized_keys.clone().unwrap_or_default();
    f.check(
        keys.len() <= 50,
        "linux.ssh_authorized_keys",
        "at most 50 keys",
    );
    for (i, k) in keys.iter().enumerate() {
        let kind = k.split_whitespace().next().unwrap_or("");
        f.check(
            k.len() <= 16_384
                && !k.chars().any(|c| c.is_control())
                && (kind.starts_with("ssh-")
                    || kind.starts_with("ecdsa-")
                    || kind.starts_with("sk-"))
                && k.split_whitespace().count() >= 2,
            &format!("linux.ssh_authorized_keys[{i}]"),
            "must be one OpenSSH public key line (ssh-ed25519 AAAA… comment)",
        );
    }
    let packages = l.packages.clone().unwrap_or_default();
    f.check(
        packages.len() <= 200,
        "linux.packages",
        "at most 200 packages",
    );
    for (i, p) in packages.iter().enumerate() {
        f.check(
            (1..=100).contains(&p.len())
                && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-_".contains(&b)),
            &format!("linux.packages[{i}]"),
            "must be a package name (a-z, 0-9, '+', '.', '-', '_')",
        );
    }
    LinuxOptions {
        hostname,
        user,
        ssh_authorized_keys: keys,
        packages,
    }
}

/// A normalised details object (≤ 8 KiB), or a field error.
fn check_details(f: &mut FieldErrors, d: &Option<Value>) -> Option<String> {
    match d {
        None | Some(Value::Null) => None,
        Some(v @ Value::Object(_)) => {
            let text = v.to_string();
            if text.len() > MAX_DETAILS_BYTES {
                f.add(
                    "details",
                    format!("must be at most {MAX_DETAILS_BYTES} bytes of JSON"),
                );
                None
            } else {
                Some(text)
            }
        }
        Some(_) => {
            f.add("details", "must be a JSON object");
            None
        }
    }
}

// ---------------------------------------------------------------- service

pub struct ProvisioningService {
    db: Db,
    cfg: ProvisioningConfig,
    agents: Arc<AgentsService>,
    commands: Arc<CommandsService>,
    events: EventsService,
    windows: Windows,
    licensing: Arc<LicensingService>,
}

/// A guest's report (public endpoint).
pub struct ReportInput {
    pub token: String,
    pub vm_uuid: String,
    pub step: Step,
    pub status: StepStatus,
    pub details: Option<Value>,
}

impl ProvisioningService {
    pub fn new(
        db: Db,
        cfg: ProvisioningConfig,
        agents: Arc<AgentsService>,
        commands: Arc<CommandsService>,
        events: EventsService,
        windows: Windows,
        licensing: Arc<LicensingService>,
    ) -> ProvisioningService {
        ProvisioningService {
            db,
            cfg,
            agents,
            commands,
            events,
            windows,
            licensing,
        }
    }

    /// The original's "active subscription" check (inventory §8 item 10),
    /// against the tenant licenses: `user` (the token's issuer) must be
    /// covered by an active license of the tenant (a tenant-wide one or
    /// their own). Off with `provisioning_require_license = false`.
    async fn require_license(
        &self,
        scope: &TenantScope,
        user: &UserId,
    ) -> Result<(), ProvisioningError> {
        if self.cfg.require_license && !self.licensing.has_active_license(scope, Some(user)).await?
        {
            return Err(ProvisioningError::LicenseInactive);
        }
        Ok(())
    }

    /// `provisioning.<what>` with `data`, visible to the token's issuer
    /// (and admins) on the event stream.
    async fn record(
        &self,
        w: impl Write,
        token: &TokenRow,
        what: &str,
        data: Value,
    ) -> StoreResult<()> {
        let data = json!({ "provisioning": data }).to_string();
        self.events
            .record(
                w,
                NewEvent {
                    tenant_id: token.tenant_id.as_str(),
                    agent_id: None,
                    command_id: None,
                    agent_owner_id: Some(token.issued_by.as_str()),
                    command_created_by: None,
                    event_type: &format!("provisioning.{what}"),
                    data: &data,
                    now: now_ms(),
                },
            )
            .await?;
        Ok(())
    }

    // ------------------------------------------------------------ generate

    pub async fn generate(
        &self,
        caller: &Identity,
        input: GenerateInput,
        server: ServerInfo,
    ) -> Result<GeneratedPayload, ProvisioningError> {
        let scope = caller.require(Role::Operator)?;
        let admin = caller.has(Role::Admin);
        self.require_license(&scope, &caller.user_id).await?;
        let mut f = FieldErrors::default();
        let vm_uuid = guest::canonical_uuid(&input.vm_uuid);
        f.check(
            vm_uuid.is_some(),
            "vm_uuid",
            "must be a UUID (the VM's smbios1 uuid)",
        );
        let os = input.os.unwrap_or(GuestOs::Windows);
        let ip = match &input.ip {
            Some(ip) => check_ip(&mut f, ip),
            None => Some(IpJson::Dhcp),
        };
        if let Some(n) = &input.vm_name {
            f.display_text("vm_name", n, 200);
        }
        let batch_index = input.batch_index.unwrap_or(0);
        f.check(
            batch_index <= 100_000,
            "batch_index",
            "must be between 0 and 100000",
        );
        if let Some(v) = input.vmid {
            f.check(
                (100..=999_999_999).contains(&v),
                "vmid",
                "must be between 100 and 999999999",
            );
        }
        f.check(
            input.agent_id.is_none() || input.vmid.is_some(),
            "vmid",
            "is required with agent_id (the auto-detach needs it)",
        );
        if let Some(n) = &input.node {
            f.check(
                (1..=63).contains(&n.len()) && plain_name(n, b"-."),
                "node",
                "must be 1-63 letters, digits, '-' and '.'",
            );
        }
        if let Some(n) = &input.iso_name {
            f.check(
                n.len() <= 200
                    && n.to_ascii_lowercase().ends_with(".iso")
                    && !n.starts_with('.')
                    && plain_name(n, b"-_."),
                "iso_name",
                "must end in .iso and use only letters, digits, '-', '_' and '.' (at most 200)",
            );
        }
        if let Some(s) = &input.iso_storage {
            f.check(
                (1..=100).contains(&s.len())
                    && s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && plain_name(s, b"-_."),
                "iso_storage",
                "must be a Proxmox storage id",
            );
        }
        let downloads = input.downloads.clone().unwrap_or_default();
        check_url(&mut f, "downloads.bootstrap_url", &downloads.bootstrap_url);
        check_url(&mut f, "downloads.app_url", &downloads.app_url);
        if let Some(p) = &input.profile_id {
            f.check(
                !p.is_empty() && p.len() <= 200,
                "profile_id",
                "must be 1-200 characters",
            );
        }
        let linux_opts = match os {
            GuestOs::Linux => Some(linux_options(
                &mut f,
                &input.linux.clone().unwrap_or_default(),
                input.vm_name.as_deref(),
                vm_uuid.as_deref().unwrap_or("00000000"),
            )),
            GuestOs::Windows => {
                f.check(input.linux.is_none(), "linux", "only with os: linux");
                f.check(
                    input.profile_id.is_some(),
                    "profile_id",
                    "is required for Windows guests (the unattend profile)",
                );
                None
            }
        };
        f.into_fields()?;
        let (Some(vm_uuid), Some(ip)) = (vm_uuid, ip) else {
            return Err(FieldErrors::one("ip", "invalid").into());
        };

        // The agent that will attach the ISO: the caller must be allowed to
        // dispatch to it (admins: any agent of the tenant).
        if let Some(agent_id) = &input.agent_id {
            let agent = self
                .agents
                .get(&scope, agent_id)
                .await?
                .ok_or(AgentError::AgentNotFound)?;
            if !admin && agent.owner_user_id.as_ref() != Some(&caller.user_id) {
                return Err(ProvisioningError::AgentOwnerMismatch);
            }
        }
        let playbook = match &input.playbook_id {
            Some(id) => Some(self.visible_playbook(caller, id).await?),
            None => None,
        };

        let now = now_ms();
        let expires_at = now + i64::from(self.cfg.token_ttl_days) * MS_PER_DAY;
        let token = secret::generate_token(TOKEN_PREFIX);
        let token_id = ProvisioningTokenId::generate();
        let base = server.api_endpoint.trim_end_matches('/').to_string();
        let provision = ProvisionJson {
            version: guest::PROVISION_JSON_VERSION,
            vm_uuid: vm_uuid.clone(),
            os: os.to_string(),
            ip: ip.clone(),
            token: token.clone(),
            api_endpoint: base.clone(),
            server_cert_sha256: server.server_cert_sha256.clone(),
            validate_token_url: format!("{base}/api/v1/provisioning/validate-token"),
            report_progress_url: format!("{base}/api/v1/provisioning/report-progress"),
            playbook_url: playbook
                .as_ref()
                .map(|_| format!("{base}/api/v1/provisioning/playbook?vm_uuid={vm_uuid}")),
            playbook_file: playbook
                .as_ref()
                .filter(|_| os == GuestOs::Windows)
                .map(|_| "playbook.yml".to_string()),
            downloads: Downloads {
                bootstrap_url: downloads.bootstrap_url.clone(),
                app_url: downloads.app_url.clone(),
            },
            expires_at: ms_to_rfc3339(expires_at),
        };
        let provision_bytes = provision.to_bytes();
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut seed_iso = None;
        let computer_name;
        let user_name;
        match os {
            GuestOs::Windows => {
                let ip_facts = match &ip {
                    IpJson::Static {
                        address,
                        prefix_length,
                        gateway,
                        dns,
                        ..
                    } => Some((*address, *prefix_length, *gateway, dns.clone())),
                    IpJson::Dhcp => None,
                };
                let answer = self
                    .windows
                    .answer(
                        caller,
                        input.profile_id.as_deref().unwrap_or_default(),
                        VmFacts {
                            vm_uuid: vm_uuid.clone(),
                            vmid: input.vmid,
                            batch_index,
                            ip: ip_facts,
                            seed: windows::seed_for(&vm_uuid),
                        },
                    )
                    .await?;
                for (name, bytes) in answer.files {
                    files.insert(name, bytes);
                }
                computer_name = answer.computer_name;
                user_name = answer.user_name;
                files.insert("provision.json".into(), provision_bytes);
                files.insert("START.ps1".into(), guest::START_PS1.as_bytes().to_vec());
                if let Some(p) = &playbook {
                    files.insert("playbook.yml".into(), p.content.clone().into_bytes());
                }
            }
            GuestOs::Linux => {
                let opts = linux_opts.unwrap_or_else(|| LinuxOptions {
                    hostname: format!("vm-{}", &vm_uuid[..8]),
                    user: "botmox".into(),
                    ssh_authorized_keys: vec![],
                    packages: vec![],
                });
                let text = String::from_utf8_lossy(&provision_bytes).into_owned();
                let seed = linux::build_seed(
                    &opts,
                    &vm_uuid,
                    &ip,
                    &text,
                    playbook.as_ref().map(|p| p.content.as_str()),
                );
                linux::validate_cloud_config(&seed.user_data)
                    .map_err(|e| ProvisioningError::Build(e.join("; ")))?;
                let iso = tokio::task::spawn_blocking({
                    let seed = seed.clone();
                    move || linux::seed_iso(&seed)
                })
                .await
                .map_err(|e| ProvisioningError::Build(e.to_string()))?
                .map_err(ProvisioningError::Build)?;
                seed_iso = Some(STANDARD.encode(iso));
                computer_name = Some(opts.hostname.clone());
                user_name = Some(opts.user.clone());
                files.insert("user-data".into(), seed.user_data);
                files.insert("meta-data".into(), seed.meta_data);
                if let Some(nc) = seed.network_config {
                    files.insert("network-config".into(), nc);
                }
            }
        }
        let iso_name = input.iso_name.clone().unwrap_or_else(|| match input.vmid {
            Some(v) => format!("provision-{v}.iso"),
            None => format!("provision-{}.iso", &vm_uuid[..8]),
        });

        // Re-issue: the VM's active token is revoked explicitly (and says
        // so in the event log), then the new one is stored; one transaction.
        let mut tx = self.db.begin().await?;
        let mut replaced = None;
        if let Some(old) = store::active_for_vm(&mut tx, &scope, &vm_uuid).await? {
            if !admin && old.issued_by != caller.user_id {
                return Err(ProvisioningError::ReissueForbidden);
            }
            if let Some(r) =
                store::revoke_token(&mut tx, &old.id, &caller.user_id, "reissued", now).await?
            {
                self.record(
                    &mut tx,
                    &r,
                    "token_revoked",
                    json!({"token": token_view(&r), "reason": "reissued", "replaced_by": token_id}),
                )
                .await?;
                replaced = Some(r.id);
            }
        }
        let row = store::insert_token(
            &mut tx,
            &scope,
            NewToken {
                id: &token_id,
                vm_uuid: &vm_uuid,
                issued_by: &caller.user_id,
                token_hash: &secret::hash_token(&token),
                token_hint: &secret::token_hint(&token),
                os,
                profile_id: input.profile_id.as_deref(),
                playbook_id: playbook.as_ref().map(|p| &p.id),
                agent_id: input.agent_id.as_ref(),
                vmid: input.vmid.map(i64::from),
                node: input.node.as_deref(),
                iso_name: Some(&iso_name),
                iso_storage: input.iso_storage.as_deref(),
                expires_at,
                now,
            },
        )
        .await?;
        self.record(
            &mut tx,
            &row,
            "token_issued",
            json!({"token": token_view(&row), "replaced": replaced}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;

        Ok(GeneratedPayload {
            files: files
                .into_iter()
                .map(|(k, v)| (k, STANDARD.encode(v)))
                .collect(),
            seed_iso,
            command_type: match os {
                GuestOs::Windows => "proxmox.create-provision-iso".into(),
                GuestOs::Linux => "proxmox.upload-iso".into(),
            },
            iso_name,
            token_id: row.id,
            token,
            token_expires_at: ms_to_rfc3339(expires_at),
            replaced_token_id: replaced,
            vm_uuid,
            os,
            computer_name,
            user_name,
            playbook_id: playbook.map(|p| p.id),
        })
    }

    // ------------------------------------------------------------ guests

    /// The token row for a guest's call: known, for this VM, active.
    /// `allow_used` lets a used token through (resent final reports).
    async fn guest_token(
        &self,
        token: &str,
        vm_uuid: &str,
        allow_used: bool,
    ) -> Result<TokenRow, ProvisioningError> {
        if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
            return Err(ProvisioningError::TokenInvalid);
        }
        let row = store::by_hash(self.db.reader(), &secret::hash_token(token))
            .await?
            .ok_or(ProvisioningError::TokenInvalid)?;
        if guest::canonical_uuid(vm_uuid).as_deref() != Some(row.vm_uuid.as_str()) {
            return Err(ProvisioningError::VmMismatch);
        }
        match row.status {
            TokenStatus::Revoked => return Err(ProvisioningError::TokenRevoked),
            TokenStatus::Expired => return Err(ProvisioningError::TokenExpired),
            TokenStatus::Used if !allow_used => return Err(ProvisioningError::TokenUsed),
            _ if row.status == TokenStatus::Active && row.expires_at <= now_ms() => {
                return Err(ProvisioningError::TokenExpired)
            }
            _ => {}
        }
        self.require_license(&TenantScope::new(row.tenant_id.clone()), &row.issued_by)
            .await?;
        Ok(row)
    }

    /// `POST /provisioning/validate-token` (public).
    pub async fn validate_token(
        &self,
        token: &str,
        vm_uuid: &str,
    ) -> Result<TokenValidation, ProvisioningError> {
        let row = self.guest_token(token, vm_uuid, false).await?;
        Ok(TokenValidation {
            valid: true,
            vm_uuid: row.vm_uuid,
            os: row.os,
            expires_at: ms_to_rfc3339(row.expires_at),
            has_playbook: row.playbook_id.is_some(),
        })
    }

    /// `POST /provisioning/report-progress` (public): store the step
    /// idempotently, record an event, mark the token used on `completed`,
    /// then (after the commit) dispatch the auto-detach.
    pub async fn report_progress(&self, r: ReportInput) -> Result<ReportAck, ProvisioningError> {
        let mut f = FieldErrors::default();
        let (step, status) = (r.step, r.status);
        let details = check_details(&mut f, &r.details);
        f.into_fields()?;
        let token = self.guest_token(&r.token, &r.vm_uuid, true).await?;
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let existing = store::get_step(&mut tx, &token.id, step).await?;
        if token.status == TokenStatus::Used {
            // Only a resend of a step already stored is still accepted.
            if existing.as_ref().map(|e| e.status) != Some(status) {
                return Err(ProvisioningError::TokenUsed);
            }
        }
        let repeated = existing.is_some();
        let stored = match existing {
            None => {
                store::insert_step(&mut tx, &token, step, status, details.as_deref(), now).await?
            }
            // A final status stays; a late `running` does not move it back.
            Some(e) if is_final(e.status) => {
                store::update_step(&mut tx, &token.id, step, None, None, now).await?
            }
            Some(_) => {
                store::update_step(
                    &mut tx,
                    &token.id,
                    step,
                    Some(status),
                    details.as_deref(),
                    now,
                )
                .await?
            }
        };
        let all = store::steps(&mut tx, &token.id).await?;
        let (state, _) = overall(&all);
        self.record(
            &mut tx,
            &token,
            "progress",
            json!({
                "vm_uuid": token.vm_uuid, "token_id": token.id, "step": step,
                "status": stored.status, "reported_status": status,
                "details": details.as_deref().and_then(|d| serde_json::from_str::<Value>(d).ok()),
                "repeated": repeated, "state": state,
            }),
        )
        .await?;
        let finished = step == Step::Completed && is_final(stored.status);
        if finished && stored.status == StepStatus::Completed {
            if let Some(used) = store::mark_used(&mut tx, &token.id, now).await? {
                self.record(
                    &mut tx,
                    &used,
                    "token_used",
                    json!({"token": token_view(&used)}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        self.events.notify().await;
        if finished && (stored.status == StepStatus::Completed || self.cfg.detach_on_failure) {
            self.auto_detach(&token).await?;
        }
        Ok(ReportAck {
            vm_uuid: token.vm_uuid,
            step,
            status: stored.status,
            state: state.to_string(),
            repeated,
        })
    }

    /// Once per token: `proxmox.detach-cdrom {vmid, deleteIso: true}` to
    /// the agent that attached the ISO; the outcome goes on the token
    /// (and so on the progress) and into the event log.
    async fn auto_detach(&self, token: &TokenRow) -> Result<(), ProvisioningError> {
        let (Some(agent_id), Some(vmid)) = (&token.agent_id, token.vmid) else {
            return Ok(());
        };
        if !store::claim_detach(self.db.writer(), &token.id, now_ms()).await? {
            return Ok(());
        }
        let mut payload = json!({"vmid": vmid, "deleteIso": true, "cdromSlot": "ide2"});
        if let Some(n) = &token.node {
            payload["node"] = Value::from(n.clone());
        }
        let scope = TenantScope::new(token.tenant_id.clone());
        let outcome = self
            .commands
            .dispatch_system(
                &scope,
                &token.issued_by,
                agent_id,
                "proxmox.detach-cdrom",
                payload,
                &format!("provisioning-detach:{}", token.id),
            )
            .await;
        let (command_id, error, what) = match &outcome {
            Ok(c) => (Some(c.id.clone()), None, "detach_dispatched"),
            Err(e) => (None, Some(detach_error_code(e)), "detach_failed"),
        };
        let mut tx = self.db.begin().await?;
        store::set_detach_outcome(&mut tx, &token.id, command_id.as_deref(), error.as_deref())
            .await?;
        self.record(
            &mut tx,
            token,
            what,
            json!({"vm_uuid": token.vm_uuid, "token_id": token.id, "agent_id": agent_id,
                   "vmid": vmid, "command_id": command_id, "error": error}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        Ok(())
    }

    /// `GET /provisioning/playbook` (a guest with a valid token).
    pub async fn guest_playbook(
        &self,
        token: &str,
        vm_uuid: &str,
    ) -> Result<GuestPlaybook, ProvisioningError> {
        let row = self.guest_token(token, vm_uuid, false).await?;
        let id = row
            .playbook_id
            .clone()
            .ok_or(ProvisioningError::PlaybookNotFound)?;
        let scope = TenantScope::new(row.tenant_id.clone());
        let p = store::get_playbook(self.db.reader(), &scope, &id)
            .await?
            .ok_or(ProvisioningError::PlaybookNotFound)?;
        Ok(GuestPlaybook {
            playbook_id: p.id,
            name: p.name,
            content: p.content,
        })
    }

    // ------------------------------------------------------------ users

    /// The newest token of a VM the caller may see (issuer; admins: tenant).
    async fn visible_latest(
        &self,
        caller: &Identity,
        vm_uuid: &str,
    ) -> Result<TokenRow, ProvisioningError> {
        let vm = guest::canonical_uuid(vm_uuid).ok_or(ProvisioningError::NotFound)?;
        let mine = (!caller.has(Role::Admin)).then_some(&caller.user_id);
        store::latest_for_vm(self.db.reader(), &caller.scope(), &vm, mine)
            .await?
            .ok_or(ProvisioningError::NotFound)
    }

    /// `GET /provisioning/progress/{vm_uuid}` (viewer+; own tokens, admins all).
    pub async fn progress(
        &self,
        caller: &Identity,
        vm_uuid: &str,
    ) -> Result<ProgressView, ProvisioningError> {
        caller.require(Role::Viewer)?;
        let token = self.visible_latest(caller, vm_uuid).await?;
        let mut rows = store::steps(self.db.reader(), &token.id).await?;
        rows.sort_by_key(|r| (order(r.step), r.first_reported_at));
        let (state, current) = overall(&rows);
        let updated = rows
            .iter()
            .map(|r| r.reported_at)
            .max()
            .unwrap_or(token.issued_at);
        let detach = match token.detach_requested_at {
            None => None,
            Some(at) => {
                let cmd = match &token.detach_command_id {
                    Some(id) => self
                        .commands
                        .get_in_scope(&caller.scope(), &CommandId::from(id.as_str()))
                        .await
                        .ok()
                        .flatten(),
                    None => None,
                };
                Some(DetachView {
                    requested_at: ms_to_rfc3339(at),
                    command_id: token.detach_command_id.clone(),
                    command_status: cmd.as_ref().map(|c| c.status.to_string()),
                    command_error_code: cmd.as_ref().and_then(|c| c.error_code.clone()),
                    command_error_message: cmd.as_ref().and_then(|c| c.error_message.clone()),
                    dispatch_error: token.detach_error.clone(),
                })
            }
        };
        Ok(ProgressView {
            vm_uuid: token.vm_uuid.clone(),
            state: state.to_string(),
            current_step: current,
            steps: rows
                .into_iter()
                .map(|r| StepView {
                    step: r.step,
                    status: r.status,
                    details: r.details.and_then(|d| serde_json::from_str(&d).ok()),
                    first_reported_at: ms_to_rfc3339(r.first_reported_at),
                    reported_at: ms_to_rfc3339(r.reported_at),
                    report_count: r.report_count,
                })
                .collect(),
            token: token_view(&token),
            detach,
            updated_at: ms_to_rfc3339(updated),
        })
    }

    /// `POST /provisioning/tokens/{vm_uuid}/revoke` (operator: own; admin).
    pub async fn revoke(
        &self,
        caller: &Identity,
        vm_uuid: &str,
        reason: Option<String>,
    ) -> Result<TokenView, ProvisioningError> {
        caller.require(Role::Operator)?;
        let reason = reason.unwrap_or_else(|| "revoked".into());
        let mut f = FieldErrors::default();
        f.display_text("reason", &reason, 200);
        f.into_fields()?;
        let latest = self.visible_latest(caller, vm_uuid).await?;
        let mut tx = self.db.begin().await?;
        let Some(row) =
            store::revoke_token(&mut tx, &latest.id, &caller.user_id, &reason, now_ms()).await?
        else {
            return Err(ProvisioningError::TokenNotActive);
        };
        self.record(
            &mut tx,
            &row,
            "token_revoked",
            json!({"token": token_view(&row), "reason": reason}),
        )
        .await?;
        tx.commit().await?;
        self.events.notify().await;
        Ok(token_view(&row))
    }

    /// The sweeper: active tokens past their expiry become `expired`.
    pub async fn sweep(&self, now: i64) -> StoreResult<usize> {
        let mut tx = self.db.begin().await?;
        let expired = store::expire_due(&mut tx, now).await?;
        for row in &expired {
            self.record(
                &mut tx,
                row,
                "token_expired",
                json!({"token": token_view(row)}),
            )
            .await?;
        }
        tx.commit().await?;
        if !expired.is_empty() {
            self.events.notify().await;
        }
        Ok(expired.len())
    }

    // ------------------------------------------------------------ playbooks

    async fn visible_playbook(
        &self,
        caller: &Identity,
        id: &PlaybookId,
    ) -> Result<PlaybookRow, ProvisioningError> {
        let row = store::get_playbook(self.db.reader(), &caller.scope(), id)
            .await?
            .ok_or(ProvisioningError::PlaybookNotFound)?;
        if !caller.has(Role::Admin) && row.owner_user_id != caller.user_id {
            return Err(ProvisioningError::PlaybookNotFound);
        }
        Ok(row)
    }

    pub async fn list_playbooks(
        &self,
        caller: &Identity,
        params: &ListParams,
    ) -> Result<Page<Playbook>, ProvisioningError> {
        let scope = caller.require(Role::Viewer)?;
        let owner = (!caller.has(Role::Admin)).then_some(&caller.user_id);
        Ok(
            store::list_playbooks(self.db.reader(), self.db.backend(), &scope, owner, params)
                .await?
                .map(playbook_view),
        )
    }

    pub async fn get_playbook(
        &self,
        caller: &Identity,
        id: &PlaybookId,
    ) -> Result<Playbook, ProvisioningError> {
        caller.require(Role::Viewer)?;
        Ok(playbook_view(self.visible_playbook(caller, id).await?))
    }

    fn check_playbook_fields(f: &mut FieldErrors, name: Option<&str>, content: Option<&str>) {
        if let Some(n) = name {
            if n.trim().is_empty() {
                f.add("name", "must not be empty");
            } else {
                f.display_text("name", n, 200);
            }
        }
        if let Some(c) = content {
            let check = playbook::check(c);
            for e in check.errors {
                let field = match e.path {
                    Some(p) => format!("content.{p}"),
                    None => "content".to_string(),
                };
                f.add(&field, e.message);
            }
        }
    }

    pub async fn create_playbook(
        &self,
        caller: &Identity,
        input: PlaybookInput,
    ) -> Result<Playbook, ProvisioningError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        f.check(input.name.is_some(), "name", "is required");
        f.check(input.content.is_some(), "content", "is required");
        Self::check_playbook_fields(&mut f, input.name.as_deref(), input.content.as_deref());
        f.into_fields()?;
        let name = input.name.unwrap_or_default().trim().to_string();
        let content = input.content.unwrap_or_default();
        let is_default = input.is_default.unwrap_or(false);
        let id = PlaybookId::generate();
        let mut tx = self.db.begin().await?;
        let row = store::insert_playbook(
            &mut tx,
            &scope,
            NewPlaybook {
                id: &id,
                owner: &caller.user_id,
                name: &name,
                is_default,
                content: &content,
                now: now_ms(),
            },
        )
        .await?;
        if is_default {
            store::clear_default(&mut tx, &scope, &caller.user_id, &id).await?;
        }
        tx.commit().await?;
        Ok(playbook_view(row))
    }

    /// PUT (name and content required) and PATCH (any subset).
    pub async fn update_playbook(
        &self,
        caller: &Identity,
        id: &PlaybookId,
        input: PlaybookInput,
        replace: bool,
    ) -> Result<Playbook, ProvisioningError> {
        let scope = caller.require(Role::Operator)?;
        let mut f = FieldErrors::default();
        if replace {
            f.check(input.name.is_some(), "name", "is required");
            f.check(input.content.is_some(), "content", "is required");
        }
        Self::check_playbook_fields(&mut f, input.name.as_deref(), input.content.as_deref());
        f.into_fields()?;
        let current = self.visible_playbook(caller, id).await?;
        let name = input
            .name
            .map(|n| n.trim().to_string())
            .unwrap_or(current.name);
        let content = input.content.unwrap_or(current.content);
        let is_default = input.is_default.unwrap_or(current.is_default != 0);
        let mut tx = self.db.begin().await?;
        let row =
            store::update_playbook(&mut tx, &scope, id, &name, is_default, &content, now_ms())
                .await?
                .ok_or(ProvisioningError::PlaybookNotFound)?;
        if is_default {
            store::clear_default(&mut tx, &scope, &row.owner_user_id, id).await?;
        }
        tx.commit().await?;
        Ok(playbook_view(row))
    }

    pub async fn delete_playbook(
        &self,
        caller: &Identity,
        id: &PlaybookId,
    ) -> Result<(), ProvisioningError> {
        let scope = caller.require(Role::Operator)?;
        self.visible_playbook(caller, id).await?;
        if !store::delete_playbook(self.db.writer(), &scope, id).await? {
            return Err(ProvisioningError::PlaybookNotFound);
        }
        Ok(())
    }

    /// `POST /playbooks/validate`: the check without storing.
    pub fn validate_playbook(
        &self,
        caller: &Identity,
        content: &str,
    ) -> Result<PlaybookCheck, ProvisioningError> {
        caller.require(Role::Viewer)?;
        Ok(playbook::check(content))
    }
}

/// The stable code of a failed auto-detach dispatch.
fn detach_error_code(e: &crate::domains::commands::CommandError) -> String {
    use crate::domains::commands::CommandError as C;
    match e {
        C::AgentOffline => "AGENT_OFFLINE".into(),
        C::TargetRevoked => "AGENT_REVOKED".into(),
        C::Agent(AgentError::AgentNotFound) => "AGENT_NOT_FOUND".into(),
        other => format!("DISPATCH_FAILED: {other}"),
    }
}
