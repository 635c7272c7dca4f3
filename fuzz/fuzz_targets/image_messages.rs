//! Fuzz target `image_messages`: arbitrary bytes through `wmbus_frame::fuzzing::image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_frame::fuzzing::image(data);
});
