//! pve-sim (work in progress)
