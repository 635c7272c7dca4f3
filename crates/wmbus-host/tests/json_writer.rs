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

mod common;

use wmbus_host::decoder::{DecodeOptions, Decoder};
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

/// Decodes every telegram of every capture, checking each report.
fn over_captures(dir: &Path, ext: &str, keys: &MemoryKeyStore) -> usize {
    let mut n = 0;
    for diagnostics in [false, true] {
        for capture in common::captures(dir, ext, keys) {
            let options = DecodeOptions {
                allow_des: true,
                diagnostics,
                show_keys: diagnostics,
                ..DecodeOptions::default()
            };
            let mut d = Decoder::new(capture.keys, options);
            for t in capture.telegrams {
                let mut r = d.decode(Instant::from_secs(t.index as u64), &t.bytes);
                r.reception = t.reception;
                r.source = Some(t.source);
                check(&r);
                n += 1;
            }
        }
    }
    n
}

#[test]
fn telegram_files_and_samples() {
    let t = wmbus_testkit::testdata();
    let n = over_captures(&t.join("telegrams"), "txt", &MemoryKeyStore::new());
    assert!(n > 100, "{n}");
    assert!(over_captures(&t.join("samples"), "txt", &common::sample_keys()) > 10);
}

#[test]
fn vector_set() {
    let mut n = 0;
    for (description, frames) in common::vector_set() {
        for r in wmbus_host::vectors::decode(&description, &frames) {
            check(&r);
            n += 1;
        }
    }
    assert!(n > 100, "{n}");
}

#[test]
fn fuzz_corpora_as_telegrams() {
    let mut d = Decoder::new(MemoryKeyStore::new(), DecodeOptions::default());
    let inputs = common::fuzz_inputs();
    for data in &inputs {
        check(&d.decode(Instant::default(), data));
    }
    assert!(inputs.len() > 50, "{}", inputs.len());
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
