//! The ssh-exec allowlist parser: an accepted command is safe argv whose
//! quoted form is exactly what runs remotely.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    agent_core::fuzzing::ssh_allowlist(data);
});
