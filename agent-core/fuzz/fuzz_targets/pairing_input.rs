//! Every pairing input form (bundle, JSON, http(s) link, botmox:// link,
//! raw code): accepted inputs are well formed, the rest a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    agent_core::fuzzing::pairing_input(data);
});
