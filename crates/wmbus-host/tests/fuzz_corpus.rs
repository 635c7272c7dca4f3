#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Replays the fuzz corpora (fuzz/corpus/<target>/) and the regression files
//! (testdata/regressions/<target>-*.bin) through the fuzz targets' entry points, so every
//! input the fuzzers kept is checked by an ordinary `cargo test`.

use std::path::Path;

fn run(target: &str, data: &[u8]) {
    match target {
        "frame_parse" => wmbus_frame::fuzzing::frame(data),
        "records" => wmbus_frame::fuzzing::records(data),
        "security_open" => wmbus_security::fuzzing::open(data),
        "sitp_blocks" => wmbus_frame::fuzzing::sitp(data),
        "dongle_hosts" => wmbus_dongle::fuzzing::hosts(data),
        "image_messages" => wmbus_frame::fuzzing::image(data),
        "decode_json" => wmbus_host::fuzzing::decode_json(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn corpora() {
    let root = wmbus_testkit::testdata().join("../fuzz/corpus");
    let mut n = 0;
    for target in [
        "frame_parse",
        "records",
        "security_open",
        "sitp_blocks",
        "dongle_hosts",
        "image_messages",
        "decode_json",
    ] {
        let dir = root.join(target);
        let list = files(&dir);
        assert!(!list.is_empty(), "no corpus in {}", dir.display());
        for f in list {
            run(target, &std::fs::read(&f).unwrap());
            n += 1;
        }
    }
    assert!(n > 100, "{n} corpus inputs");
}

#[test]
fn regressions() {
    for f in files(&wmbus_testkit::testdata().join("regressions")) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".bin") {
            continue;
        }
        let target = name.split('-').next().unwrap();
        let data = std::fs::read(&f).unwrap();
        run(target, &data);
        // Same input format: the direct JSON line is checked on them too.
        if target == "security_open" {
            run("decode_json", &data);
        }
    }
}

/// The `security_open` corpus (length-prefixed frames against the fuzzing key store) through
/// the `decode_json` target as well: the direct line equals the report's on every input.
#[test]
fn security_corpus_through_decode_json() {
    let list = files(&wmbus_testkit::testdata().join("../fuzz/corpus/security_open"));
    assert!(list.len() > 100, "{}", list.len());
    for f in list {
        run("decode_json", &std::fs::read(&f).unwrap());
    }
}
