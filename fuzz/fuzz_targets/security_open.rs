//! Fuzz target `security_open`: arbitrary bytes through `wmbus_security::fuzzing::open`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_security::fuzzing::open(data);
});
