//! `isotools ls` on arbitrary bytes: must return Ok or Err, never panic or
//! allocate without bound (the reader caps every size it trusts).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(listing) = isotools::reader::list_bytes(data) {
        let _ = isotools::reader::render(&listing);
    }
});
