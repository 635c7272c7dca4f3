#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! The vector set in testdata/vectors/ (`wmbus vectors --seed 1`): the generator still gives
//! it byte for byte, each telegram decodes to its expected JSON, and each decode is an insta
//! snapshot.

use wmbus_host::encode::Description;
use wmbus_host::vectors;

fn dir() -> std::path::PathBuf {
    wmbus_testkit::testdata().join("vectors")
}

#[test]
fn generator_is_stable() {
    let files = vectors::files(&vectors::generate(1)).unwrap();
    assert!(files.len() > 300);
    for (name, contents) in files {
        let on_disk = std::fs::read_to_string(dir().join(&name)).unwrap_or_else(|_| {
            panic!("{name} missing: run `wmbus vectors --seed 1 --out testdata/vectors`")
        });
        assert_eq!(on_disk, contents, "{name} differs from the generator");
    }
}

#[test]
fn every_vector_decodes_as_expected() {
    insta::glob!("../../../testdata", "vectors/*.hex", |path| {
        let stem = path.with_extension("");
        let description =
            Description::parse(&std::fs::read_to_string(stem.with_extension("toml")).unwrap())
                .unwrap();
        let frames: Vec<Vec<u8>> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| hex::decode(l).unwrap())
            .collect();
        let reports = vectors::decode(&description, &frames);
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(stem.with_extension("json")).unwrap())
                .unwrap();
        assert_eq!(
            serde_json::to_value(&reports).unwrap(),
            expected,
            "{}",
            path.display()
        );
        let last = reports.last().unwrap();
        assert_eq!(last.status, "ok", "{}: {:?}", path.display(), last.error);
        insta::assert_json_snapshot!(reports);
    });
}
