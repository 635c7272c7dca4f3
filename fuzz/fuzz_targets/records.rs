//! Fuzz target `records`: arbitrary bytes through `wmbus_frame::fuzzing::records`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_frame::fuzzing::records(data);
});
