//! Integration tests: the simulator driven over real HTTPS.

mod auth;
mod binary;
mod common;
mod conformance;
mod faults;
mod locks;
mod schema;
mod storage;
mod validation;
mod vms;
