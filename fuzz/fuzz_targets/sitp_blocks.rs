//! Fuzz target `sitp_blocks`: arbitrary bytes through `wmbus_frame::fuzzing::sitp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_frame::fuzzing::sitp(data);
});
