#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Every value the known-answer sources state, checked against our records: the "expected
//! records" of each OMS Annex N example (e.g. `volume = 28504.27 m3 [storage 0]`) and the
//! readings the catalogue telegrams' sources give (`total_m3`, `…_kwh`, `…_hca`, `…_c`).

use serde_json::Value;
use wmbus_host::Report;
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_host::report::JsonValue;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

fn decode(name: &str) -> Vec<Report> {
    let text =
        std::fs::read_to_string(wmbus_testkit::testdata().join(format!("telegrams/{name}.txt")))
            .unwrap();
    let mut keys = MemoryKeyStore::new();
    for line in text.lines() {
        if let Some(k) = line.strip_prefix("# key: ") {
            keyfile::load_into(&mut keys, vec![keyfile::parse_argument(k).unwrap()]);
        }
    }
    let mut d = Decoder::new(
        keys,
        DecodeOptions {
            allow_des: true,
            ..DecodeOptions::default()
        },
    );
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| match parse_line(l) {
            Line::Telegram { bytes, .. } => Some(d.decode(Instant::from_secs(i as u64), &bytes)),
            _ => None,
        })
        .collect()
}

fn number(v: &JsonValue) -> Option<f64> {
    match v {
        JsonValue::Integer(i) => Some(*i as f64),
        JsonValue::Number(f) => Some(*f),
        _ => None,
    }
}

fn text(v: &JsonValue) -> Option<&str> {
    match v {
        JsonValue::Text(s) => Some(s),
        _ => None,
    }
}

/// One "expected record" line of Annex N: `name = value [unit] … [storage N]`.
fn check_line(id: &str, line: &str, report: &Report) -> bool {
    let Some((_, rest)) = line.split_once(" = ") else {
        return true;
    };
    let storage: u64 = line
        .rsplit_once("[storage ")
        .and_then(|(_, s)| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let value = rest
        .split(" [")
        .next()
        .unwrap()
        .split(" (")
        .next()
        .unwrap()
        .trim();
    let candidates: Vec<_> = report
        .records
        .iter()
        .filter(|r| r.storage == storage)
        .collect();
    // Quoted text.
    if let Some(t) = value.strip_prefix('"') {
        let t = t.trim_end_matches('"');
        return candidates.iter().any(|r| text(&r.value) == Some(t));
    }
    // Hex flags "0x0000".
    if let Some(h) = value.strip_prefix("0x") {
        let want = i64::from_str_radix(h, 16).unwrap() as f64;
        return candidates.iter().any(|r| number(&r.value) == Some(want));
    }
    // A date or date-time.
    if value.len() >= 10 && value.as_bytes()[4] == b'-' {
        let iso = value.replacen(' ', "T", 1);
        return candidates
            .iter()
            .any(|r| text(&r.value) == Some(iso.as_str()));
    }
    let mut parts = value.split_whitespace();
    let v: f64 = match parts.next().unwrap().parse() {
        Ok(v) => v,
        Err(_) => return true,
    };
    let unit = parts.next();
    let ok = candidates.iter().any(|r| {
        number(&r.value).is_some_and(|n| (n - v).abs() < 1e-6 * v.abs().max(1.0))
            || text(&r.value).and_then(|s| s.parse::<f64>().ok()) == Some(v)
    });
    if !ok {
        eprintln!("{id}: {line} — unit {unit:?}");
    }
    ok
}

#[test]
fn annex_n_expected_records() {
    let vectors = wmbus_testkit::oms_vectors();
    let mut checked = 0;
    for v in &vectors {
        let Some(lines) = v.get("expected_records").and_then(Value::as_array) else {
            continue;
        };
        let id = v["id"].as_str().unwrap();
        let (file, index) = match v["fragment"]["group"].as_str() {
            // The calculation table of a fragmented exchange: its values come from the
            // reassembled message, the last report of the group's file.
            Some(g) if v["kind"] == "unfragmented_message" => (g.to_string(), usize::MAX),
            Some(_) => continue,
            None if v["kind"] == "datagram" => (id.to_string(), 0),
            None => continue,
        };
        let reports = decode(&file);
        let report = if index == usize::MAX {
            reports.last().unwrap()
        } else {
            &reports[index]
        };
        for line in lines.iter().filter_map(Value::as_str) {
            if line.contains(" = ") && line.contains("[storage") {
                assert!(check_line(id, line, report), "{id}: {line}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "{checked} stated values");
}

/// The readings the catalogue telegrams' sources state (the peers' expected JSON in the
/// vectors' notes). Fields a driver derives or reads from manufacturer data are not records.
#[test]
fn catalogue_expected_readings() {
    let mut checked = 0;
    for v in wmbus_testkit::kat_vectors() {
        let note = v["note"].as_str().unwrap_or("");
        let Some(json) = note.strip_prefix("expected JSON in source: ") else {
            continue;
        };
        let Ok(expected) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        let id = v["id"].as_str().unwrap();
        let report = &decode(id)[0];
        for (field, want) in expected.as_object().unwrap() {
            let Some(want) = want.as_f64() else { continue };
            let unit = match field.rsplit('_').next().unwrap() {
                "m3" if field.starts_with("total") => "m3",
                "kwh" if field.starts_with("total") => "kwh",
                _ => continue,
            };
            let found = report.records.iter().any(|r| {
                let n = number(&r.value).unwrap_or(f64::NAN);
                match (unit, r.unit) {
                    ("m3", Some("m3")) => (n - want).abs() < 1e-6,
                    ("kwh", Some("Wh")) => (n / 1000.0 - want).abs() < 1e-6,
                    ("kwh", Some("J")) => (n / 3.6e6 - want).abs() < 1e-6,
                    _ => false,
                }
            });
            assert!(
                found || report.status != "ok",
                "{id}: {field} = {want} not among the records"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
}
