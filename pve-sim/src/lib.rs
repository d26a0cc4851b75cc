//! pve-sim: a stateful Proxmox VE API simulator that speaks real HTTPS and
//! validates every request against the official PVE 9.1.2 API schema.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pve_sim::SimError> {
//! let sim = pve_sim::PveSim::start().await?;
//! println!("{} {} {}", sim.url(), sim.fingerprint(), sim.token_header());
//! // ... drive it over HTTPS ...
//! sim.assert_no_violations();
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod conn;
pub mod error;
pub mod faults;
pub mod params;
pub mod schema;
mod server;
pub mod state;
pub mod tls;
pub mod violations;

pub use error::SimError;
pub use faults::{FaultAction, FaultRule, Faults, TaskOutcome, TaskOutcomeRule};
pub use server::{PveSim, SimConfig, StartLine};
pub use state::{Task, TaskState, Vm, VmStatus, VolumeInfo};
pub use violations::{Violation, ViolationKind};
