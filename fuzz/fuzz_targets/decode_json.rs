//! Fuzz target `decode_json`: arbitrary bytes through `wmbus_host::fuzzing::decode_json` (the
//! direct JSON line against the report's, decoders in lockstep).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_host::fuzzing::decode_json(data);
});
