//! Fuzz target `dongle_hosts`: arbitrary bytes through every dongle engine
//! (`wmbus_dongle::fuzzing::hosts`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wmbus_dongle::fuzzing::hosts(data);
});
