#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! The hand-written JSON writer (`wmbus_host::json`) against the reference, the `Serialize`
//! derive through `serde_json`: byte for byte, over every report the test data gives (the
//! telegram files, the vector set, the sample captures, the fuzz corpora as telegrams, in
//! the analyze view's diagnostics too), plus reports with every optional member set.

use std::path::Path;

use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_host::report::{Reception, Report, Source};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

fn check(r: &Report) {
    let mut fast = Vec::new();
    wmbus_host::json::write_report(&mut fast, r);
    let reference = serde_json::to_vec(r).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&reference),
        "writer and serde differ"
    );
}

fn keys_from(text: &str, keys: &mut MemoryKeyStore) {
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("# key: ") {
            keyfile::load_into(keys, vec![keyfile::parse_argument(k).unwrap()]);
        }
    }
}

/// Decodes every line of every file in `dir` (with `ext`), checking each report.
fn over_dir(dir: &Path, ext: &str, keys: MemoryKeyStore) -> usize {
    let mut n = 0;
    for diagnostics in [false, true] {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut k = keys.clone();
            keys_from(&text, &mut k);
            let options = DecodeOptions {
                allow_des: true,
                diagnostics,
                show_keys: diagnostics,
                ..DecodeOptions::default()
            };
            let mut d = Decoder::new(k, options);
            for (i, line) in text.lines().enumerate() {
                if let Line::Telegram {
                    bytes, reception, ..
                } = parse_line(line)
                {
                    let mut r = d.decode(Instant::from_secs(i as u64), &bytes);
                    r.reception = reception;
                    r.source = Some(Source {
                        file: Some(path.display().to_string()),
                        line: i + 1,
                    });
                    check(&r);
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn telegram_files_and_samples() {
    let t = wmbus_testkit::testdata();
    let n = over_dir(&t.join("telegrams"), "txt", MemoryKeyStore::new());
    assert!(n > 100, "{n}");
    let mut keys = MemoryKeyStore::new();
    let text = std::fs::read_to_string(t.join("samples/keys.txt")).unwrap();
    keyfile::load_into(&mut keys, keyfile::parse_file(&text, "keys.txt").unwrap());
    assert!(over_dir(&t.join("samples"), "txt", keys) > 10);
}

#[test]
fn vector_set() {
    let dir = wmbus_testkit::testdata().join("vectors");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "hex") {
            continue;
        }
        let description = wmbus_host::encode::Description::parse(
            &std::fs::read_to_string(path.with_extension("toml")).unwrap(),
        )
        .unwrap();
        let frames: Vec<Vec<u8>> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| hex::decode(l).unwrap())
            .collect();
        for r in wmbus_host::vectors::decode(&description, &frames) {
            check(&r);
            n += 1;
        }
    }
    assert!(n > 100, "{n}");
}

#[test]
fn fuzz_corpora_as_telegrams() {
    let root = wmbus_testkit::testdata().join("../fuzz/corpus");
    let mut d = Decoder::new(MemoryKeyStore::new(), DecodeOptions::default());
    let mut n = 0;
    for target in ["frame_parse", "records", "security_open"] {
        for e in std::fs::read_dir(root.join(target)).unwrap().flatten() {
            let data = std::fs::read(e.path()).unwrap();
            check(&d.decode(Instant::default(), &data));
            n += 1;
        }
    }
    assert!(n > 50, "{n}");
}

/// Strings that need escaping, every optional member, non-finite numbers.
#[test]
fn escapes_and_optional_members() {
    let mut d = Decoder::new(MemoryKeyStore::new(), DecodeOptions::default());
    let mut r = d.decode(Instant::default(), &[]);
    r.reception = Reception {
        rssi: Some(-71.5),
        rssi_unit: Some("dBm"),
        link_mode: Some("T1\"quoted\"".into()),
        time: Some("line\nbreak\\tab\t\u{1}".into()),
    };
    r.source = Some(Source {
        file: Some("dir/with \"quotes\".txt".into()),
        line: 7,
    });
    r.error = Some("µ°C ✓ \u{7f}".into());
    r.warnings = vec!["one".into(), "two \"2\"".into()];
    r.manufacturer_data = Some("00FF".into());
    r.more_records_follow = true;
    r.application = Some(serde_json::json!({"kind": "x", "n": [1, 2.5, null]}));
    check(&r);
    let mut rec = wmbus_host::records::record_report(&first_record());
    rec.value = wmbus_host::report::JsonValue::Number(f64::INFINITY);
    rec.annotations = vec!["per_hour".into()];
    rec.unit_text = Some("k\"Wh".into());
    rec.record_error = Some("e");
    rec.invalid = true;
    rec.raw = Some("AB".into());
    rec.time = Some("2026-01-01".into());
    rec.profile_index = Some(3);
    r.records = vec![rec.clone()];
    check(&r);
    rec.value = wmbus_host::report::JsonValue::Number(-0.0);
    r.records = vec![rec.clone()];
    check(&r);
    rec.value = wmbus_host::report::JsonValue::Number(1e300);
    r.records = vec![rec.clone()];
    check(&r);
    rec.value = wmbus_host::report::JsonValue::Integer(i64::MIN);
    r.records = vec![rec];
    check(&r);
}

fn first_record() -> wmbus_frame::apl::Record<'static> {
    let bytes: &'static [u8] =
        Box::leak(vec![0x0C, 0x13, 0x27, 0x04, 0x85, 0x02].into_boxed_slice());
    match wmbus_frame::apl::Records::new(bytes, 0).next() {
        Some(Ok(wmbus_frame::apl::Item::Record(r))) => r,
        other => panic!("{other:?}"),
    }
}
