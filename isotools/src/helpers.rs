//! Ready-made image layouts for the two provisioning uses.

use crate::builder::{IsoBuilder, IsoOptions};
use crate::error::Result;

/// Volume label of Windows provisioning images.
pub const WINDOWS_LABEL: &str = "PROVISION";
/// Volume label cloud-init's NoCloud datasource looks for.
pub const NOCLOUD_LABEL: &str = "cidata";

/// A Joliet + Rock Ridge image labelled `PROVISION` holding `files` at the given
/// paths (e.g. `Autounattend.xml`, `provision.json`, `START.ps1`). Joliet keeps the
/// exact case, which is what Windows Setup reads. Set a timestamp through
/// [`IsoBuilder::options_mut`] for reproducible bytes, then `build()` and `write_to()`.
pub fn windows_config_iso<I, P, D>(files: I) -> Result<IsoBuilder>
where
    I: IntoIterator<Item = (P, D)>,
    P: AsRef<str>,
    D: Into<Vec<u8>>,
{
    let mut b = IsoBuilder::new(IsoOptions {
        volume_id: WINDOWS_LABEL.into(),
        joliet: true,
        rock_ridge: true,
        ..IsoOptions::default()
    });
    for (path, data) in files {
        b.add_bytes(path.as_ref(), data)?;
    }
    Ok(b)
}

/// A cloud-init NoCloud seed: `user-data`, `meta-data` and optionally
/// `network-config` at the root of a Joliet + Rock Ridge image labelled `cidata`.
pub fn nocloud_seed(
    user_data: impl Into<Vec<u8>>,
    meta_data: impl Into<Vec<u8>>,
    network_config: Option<Vec<u8>>,
) -> Result<IsoBuilder> {
    let mut b = IsoBuilder::new(IsoOptions {
        volume_id: NOCLOUD_LABEL.into(),
        joliet: true,
        rock_ridge: true,
        ..IsoOptions::default()
    });
    b.add_bytes("user-data", user_data)?;
    b.add_bytes("meta-data", meta_data)?;
    if let Some(nc) = network_config {
        b.add_bytes("network-config", nc)?;
    }
    Ok(b)
}
