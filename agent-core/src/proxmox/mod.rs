//! Proxmox VE: the API client and every `proxmox.*` action (inventory §4.6).

pub mod actions;
mod client;

pub use client::{
    enc, is_lock_timeout, param_value, upid_node, PveAuth, PveClient, PveConnection, PveError,
    UploadFile,
};
