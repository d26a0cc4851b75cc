//! `isotools`: an in-process ISO 9660 image writer with Joliet and Rock Ridge.
//!
//! The image is laid out completely before the first byte is written, so the
//! exact size is known up front and output is strictly sequential: any
//! [`std::io::Write`] works (a file, a pipe, an HTTP request body). File
//! contents are streamed from memory, readers or disk files.
//!
//! ```
//! use isotools::{IsoBuilder, IsoOptions};
//! let mut b = IsoBuilder::new(IsoOptions {
//!     volume_id: "cidata".into(),
//!     timestamp: Some(1_700_000_000),
//!     ..IsoOptions::default()
//! });
//! b.add_bytes("user-data", b"#cloud-config\n".to_vec())?;
//! b.add_bytes("meta-data", b"instance-id: vm1\n".to_vec())?;
//! let image = b.build()?;
//! let size = image.size();
//! let mut out = Vec::new();
//! image.write_to(&mut out)?;
//! assert_eq!(out.len() as u64, size);
//! # Ok::<(), isotools::IsoError>(())
//! ```

mod builder;
mod encode;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod helpers;
mod layout;
mod names;
pub mod reader;
mod susp;
mod time;
mod tree;

pub use builder::{IsoBuilder, IsoImage, IsoOptions, ProgressFn};
pub use encode::SECTOR;
pub use error::{IsoError, Result};
pub use helpers::{nocloud_seed, windows_config_iso, NOCLOUD_LABEL, WINDOWS_LABEL};
pub use layout::{MAX_DIR_LEVELS, MAX_SYMLINK_TARGET};
pub use names::{MAX_JOLIET_UNITS, MAX_NAME_BYTES};
