#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! insta snapshots: every telegram file in testdata/telegrams/ decoded to JSON, one snapshot per
//! file (a file holds one telegram, or the fragments of one message in order). Keys come from
//! the files' `# key:` lines (published test keys).

use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

fn decode_file(text: &str) -> Vec<wmbus_host::Report> {
    let mut keys = MemoryKeyStore::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("# key: ") {
            keyfile::load_into(&mut keys, vec![keyfile::parse_argument(k).unwrap()]);
        }
    }
    let options = DecodeOptions {
        allow_des: true,
        ..DecodeOptions::default()
    };
    let mut decoder = Decoder::new(keys, options);
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Line::Telegram { bytes, .. } => {
                out.push(decoder.decode(Instant::from_secs(i as u64), &bytes))
            }
            Line::Skip => {}
            Line::Invalid(e) => panic!("{e}"),
        }
    }
    out
}

#[test]
fn telegrams() {
    insta::glob!("../../../testdata", "telegrams/*.txt", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let reports = decode_file(&text);
        assert!(!reports.is_empty(), "{}", path.display());
        insta::assert_json_snapshot!(reports);
    });
}

/// What the sources state, checked as values (not only as snapshots).
#[test]
fn stated_values() {
    let dir = wmbus_testkit::testdata().join("telegrams");
    let read = |name: &str| {
        decode_file(&std::fs::read_to_string(dir.join(format!("{name}.txt"))).unwrap())
    };
    let r = read("oms-annexN-N2.1-SND-NR");
    assert_eq!(r[0].status, "ok");
    assert_eq!(
        serde_json::to_value(&r[0].records[0].value).unwrap(),
        serde_json::json!(28504.27)
    );
    assert_eq!(r[0].records[0].unit, Some("m3"));
    assert_eq!(
        serde_json::to_value(&r[0].records[1].value).unwrap(),
        serde_json::json!("2008-05-31T23:50")
    );
    // N.3: reassembled from three fragments, the 12 monthly values (base + 11 profile points).
    let r = read("oms-annexN-N3-RSP-UD-fragments");
    assert_eq!(
        r.iter().map(|x| x.status).collect::<Vec<_>>(),
        ["incomplete", "incomplete", "ok"]
    );
    let monthly: Vec<f64> = r[2]
        .records
        .iter()
        .filter(|x| x.quantity == "volume" && x.storage >= 8)
        .filter_map(|x| serde_json::to_value(&x.value).unwrap().as_f64())
        .collect();
    assert_eq!(monthly.len(), 12);
    assert_eq!(monthly[0], 345.29);
    assert_eq!(monthly[11], 381.672);
    // The radio adapter: DLL RAD, meter ELS.
    let r = read("oms-annexN-profileB-radio-adapter-mode7");
    assert_eq!(
        (r[0].manufacturer.as_deref(), r[0].id.as_deref()),
        (Some("ELS"), Some("12345678"))
    );
    assert_eq!(
        r[0].link.as_ref().unwrap().manufacturer.as_deref(),
        Some("RAD")
    );
    assert_eq!(r[0].security.result, "authenticated");
    // DES with the opt-in: 1 m3.
    let r = read("mode2-des-wmbusmeters-actislink");
    assert_eq!(r[0].status, "ok");
    assert_eq!(
        serde_json::to_value(&r[0].records[0].value)
            .unwrap()
            .as_f64(),
        Some(1.0)
    );
}
