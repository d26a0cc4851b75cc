//! Name handling of the builder: arbitrary names and option bits either fail
//! with a typed error or produce an image whose Rock Ridge and Joliet names
//! read back unchanged with the lister.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    isotools::fuzzing::builder_names(data);
});
