//! Request bodies of generate-iso-payload (serde + OpenAPI), shared by
//! the handler and the service.

use serde::Deserialize;
use utoipa::ToSchema;

use super::store::GuestOs;
use crate::db::ids::{AgentId, PlaybookId};
use crate::http::extract::lenient_int;

/// A static IP plan; absent means DHCP.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpInput {
    /// IPv4 address of the VM.
    pub address: String,
    /// Dotted netmask (contiguous), e.g. `255.255.255.0`. Give this or
    /// `prefix_length`; default `255.255.255.0`.
    pub netmask: Option<String>,
    /// 0..32, instead of `netmask`.
    #[serde(default, deserialize_with = "lenient_int")]
    #[schema(minimum = 0, maximum = 32)]
    pub prefix_length: Option<u8>,
    /// IPv4 default gateway, inside the address's subnet.
    pub gateway: Option<String>,
    /// Up to 4 IPv4 DNS servers.
    #[schema(max_items = 4)]
    pub dns: Option<Vec<String>>,
}

/// Linux (cloud-init) choices.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinuxInput {
    /// Host name (RFC 1123 label); default: `vm_name` if it is one, else `vm-<first 8 of the uuid>`.
    pub hostname: Option<String>,
    /// The login user (`[a-z_][a-z0-9_-]{0,31}`), default `botmox`; passwordless sudo, password login locked.
    pub user: Option<String>,
    /// OpenSSH public keys (one line each), at most 50.
    pub ssh_authorized_keys: Option<Vec<String>>,
    /// Distribution packages to install, at most 200.
    pub packages: Option<Vec<String>>,
}

/// Optional downloads the guest fetches after validating its token.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadsInput {
    /// `http(s)://` URL of a downloader the Windows bootstrap runs with `--config <provision.json>`.
    pub bootstrap_url: Option<String>,
    /// `http(s)://` URL of the playbook runner (run with `--headless --config … --playbook …`).
    pub app_url: Option<String>,
}

/// `POST /provisioning/generate-iso-payload`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateInput {
    /// The VM's SMBIOS UUID (Proxmox `smbios1: uuid=…`).
    pub vm_uuid: String,
    /// `windows` (default) or `linux`.
    pub os: Option<GuestOs>,
    /// Unattend profile (required for Windows).
    pub profile_id: Option<String>,
    /// A playbook, put on the ISO as `playbook.yml` (Linux: `/etc/botmox/playbook.yml`).
    pub playbook_id: Option<PlaybookId>,
    /// Static IP plan; absent: DHCP.
    pub ip: Option<IpInput>,
    /// Display name of the VM (≤ 200).
    pub vm_name: Option<String>,
    /// The VM's index in its batch (for `sequential` names), default 0.
    #[serde(default, deserialize_with = "lenient_int")]
    #[schema(minimum = 0, maximum = 100000)]
    pub batch_index: Option<u32>,
    /// The agent that will attach the ISO: with `vmid`, the server detaches
    /// (and deletes) the ISO through this agent when the VM reports `completed`.
    pub agent_id: Option<AgentId>,
    /// Proxmox VM id (100..999999999); required with `agent_id`.
    #[serde(default, deserialize_with = "lenient_int")]
    #[schema(minimum = 100, maximum = 999999999)]
    pub vmid: Option<u32>,
    /// Proxmox node (default: the agent target's node).
    pub node: Option<String>,
    /// ISO file name (`[A-Za-z0-9._-]`, ends in `.iso`); default `provision-<vmid>.iso`.
    pub iso_name: Option<String>,
    /// Proxmox storage for the ISO (default `local`).
    pub iso_storage: Option<String>,
    pub downloads: Option<DownloadsInput>,
    /// Linux options (only with `os: linux`).
    pub linux: Option<LinuxInput>,
}
