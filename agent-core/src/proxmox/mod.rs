//! Proxmox VE: the transport ([`PveClient`]), the `proxmox-api` client
//! implementation ([`PveApi`]) and every `proxmox.*` action (inventory §4.6).

pub mod actions;
mod api_client;
mod client;
pub mod tasks;
pub(crate) mod vm_config;

pub(crate) use api_client::pve_json;
pub use api_client::PveApi;
pub use client::{enc, PveAuth, PveClient, PveConnection, PveError, UploadFile};
