//! Fuzz target `frame_parse`: arbitrary bytes through `wmbus_frame::fuzzing::frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_frame::fuzzing::frame(data);
});
