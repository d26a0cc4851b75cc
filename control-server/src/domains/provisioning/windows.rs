//! The Windows answer file, from the unattend domain: the profile through
//! its service (never its store) and the one builder
//! (`unattend::build_answer_file`), so the preview and the ISO are the same
//! bytes, with the seed derived from the VM's UUID by the same function
//! ([`seed_for`] = `unattend::vm_seed`). The one place this domain depends
//! on the unattend domain's types.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::ProvisioningError;
use crate::auth::Identity;
use crate::db::ids::UnattendProfileId;
use crate::domains::unattend::{
    build_answer_file, IpPlan, UnattendError, UnattendService, VmContext,
};

/// The answer file's name on the ISO (Windows Setup matches it
/// case-insensitively; this is the documented spelling).
pub const ANSWER_FILE: &str = "Autounattend.xml";

/// Per-VM values the answer file depends on.
pub struct VmFacts {
    pub vm_uuid: String,
    pub vmid: Option<u32>,
    pub batch_index: u32,
    pub ip: Option<(Ipv4Addr, u8, Option<Ipv4Addr>, Vec<Ipv4Addr>)>,
    pub seed: u64,
}

/// What goes on the ISO for the answer file.
pub struct Answer {
    /// `Autounattend.xml` and the builder's extra files (e.g. `setup.ps1`).
    pub files: Vec<(String, Vec<u8>)>,
    pub computer_name: Option<String>,
    pub user_name: Option<String>,
}

/// The per-VM seed: the unattend builder's
/// [`crate::domains::unattend::vm_seed`] (one function for the ISO and the
/// preview, so a preview naming the VM is its answer file).
pub use crate::domains::unattend::vm_seed as seed_for;

pub struct Windows {
    unattend: Arc<UnattendService>,
}

impl Windows {
    pub fn new(unattend: Arc<UnattendService>) -> Windows {
        Windows { unattend }
    }

    pub async fn answer(
        &self,
        caller: &Identity,
        profile_id: &str,
        facts: VmFacts,
    ) -> Result<Answer, ProvisioningError> {
        let config = self
            .unattend
            .config_for(caller, &UnattendProfileId::from(profile_id))
            .await?;
        let ctx = VmContext {
            vm_uuid: facts.vm_uuid,
            vmid: facts.vmid,
            batch_index: facts.batch_index,
            ip: facts.ip.map(|(address, prefix_len, gateway, dns)| IpPlan {
                address,
                prefix_len,
                gateway,
                dns,
            }),
            seed: facts.seed,
        };
        let built = build_answer_file(&config, &ctx).map_err(UnattendError::from)?;
        let mut files = vec![(ANSWER_FILE.to_string(), built.xml)];
        files.extend(built.extra_files);
        Ok(Answer {
            files,
            computer_name: Some(built.computer_name),
            user_name: Some(built.user_name),
        })
    }
}

#[cfg(test)]
mod tests {
    /// Found by the VM-jobs e2e: half of all VMs had a seed above
    /// `i64::MAX`, which the preview refuses.
    #[test]
    fn seeds_fit_the_preview_range() {
        for i in 0..2_000 {
            let uuid = format!("00000000-0000-4000-8000-{i:012}");
            assert!(i64::try_from(super::seed_for(&uuid)).is_ok(), "{uuid}");
        }
    }

    /// The derivation never changes (a VM's ISO must stay the same across
    /// releases): pinned value, any spelling of the UUID.
    #[test]
    fn seed_derivation_is_pinned() {
        let want = 755_616_180_712_349_168;
        for spelling in [
            "6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f",
            "6F9C1E2A-3B4D-4C5E-8F70-1A2B3C4D5E6F",
            "{6f9c1e2a-3b4d-4c5e-8f70-1a2b3c4d5e6f}",
            "6f9c1e2a3b4d4c5e8f701a2b3c4d5e6f",
        ] {
            assert_eq!(super::seed_for(spelling), want, "{spelling}");
        }
    }
}
