//! The protocol's JSON types and the pairing bundle decoder: accepted
//! documents round-trip without loss.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    agent_core::fuzzing::protocol_json(data);
});
