//! Any bytes as a capture file: wschat-dump must report, never panic, and stay bounded.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wschat::dump::analyze_for_fuzzing(data);
});
