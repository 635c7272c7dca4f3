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
        run(target, &std::fs::read(&f).unwrap());
    }
}
