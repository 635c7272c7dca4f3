//! Conformance runner over an outside corpus: the wmbusmeters test suite as shared in
//! `../shared/corpus/wmbusmeters_vectors.jsonl` (GPL-3 data, read at run time, never copied).
//!
//! For every case: the telegram is decoded (prior telegrams first, for compact frames) with
//! the case's key; it must not panic; every keyed case that really is encrypted must decrypt;
//! and each numeric reading of that tool's expected JSON (`total_m3`, `flow_temperature_c`, …)
//! is looked for among our records, converted by its unit suffix. Misses are sorted by cause.
#![forbid(unsafe_code)]
// serde_json::Value indexing returns Null for missing keys; it never panics.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;
use wmbus_host::decoder::{DecodeOptions, Decoder, FormatCache};
use wmbus_host::input::{Line, parse_line};
use wmbus_host::keyfile;
use wmbus_host::report::{JsonValue, Report};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

/// Our record values converted to the unit a field suffix names.
fn candidates(report: &Report, suffix: &str) -> Vec<f64> {
    let mut out = Vec::new();
    for r in &report.records {
        let v = match &r.value {
            JsonValue::Integer(i) => *i as f64,
            JsonValue::Number(f) => *f,
            _ => continue,
        };
        let unit = r.unit.unwrap_or("");
        let converted = match (suffix, unit) {
            ("m3", "m3") => Some(v),
            ("l", "m3") => Some(v * 1000.0),
            ("kwh", "Wh") => Some(v / 1000.0),
            ("kwh", "J") => Some(v / 3.6e6),
            ("mwh", "Wh") => Some(v / 1e6),
            ("gj", "J") => Some(v / 1e9),
            ("gj", "Wh") => Some(v * 3600.0 / 1e9),
            ("mj", "J") => Some(v / 1e6),
            ("kw", "W") => Some(v / 1000.0),
            ("w", "W") => Some(v),
            ("m3h", "m3/h") => Some(v),
            ("m3h", "m3/min") => Some(v * 60.0),
            ("m3h", "m3/s") => Some(v * 3600.0),
            ("lh", "m3/h") => Some(v * 1000.0),
            ("c", "°C") | ("k", "K") | ("c", "K") => Some(v),
            ("f", "°F") => Some(v),
            ("bar", "bar") | ("v", "V") | ("a", "A") | ("hca", "HCA") | ("dbm", "dBm") => Some(v),
            ("h", "h") | ("s", "s") | ("d", "d") => Some(v),
            ("h", "d") => Some(v * 24.0),
            ("h", "s") => Some(v / 3600.0),
            ("h", "min") => Some(v / 60.0),
            ("y", "year") => Some(v),
            ("y", "d") => Some(v / 365.2425),
            ("kg", "kg") => Some(v),
            ("kvarh", "varh") | ("kvah", "VAh") | ("kvar", "var") | ("kva", "VA") => {
                Some(v / 1000.0)
            }
            ("hz", "Hz") => Some(v),
            ("rh" | "pct", "%") => Some(v),
            (_, "") => Some(v),
            _ => None,
        };
        if let Some(c) = converted {
            out.push(c);
        }
        // Peers disagree on the year: 365 days (aquastream) or 365.2425 (topaseskr).
        if suffix == "y" && unit == "d" {
            out.push(v / 365.0);
        }
        // Unitless fields (counters, factors) may match any record's raw number.
        if matches!(
            suffix,
            "counter" | "nr" | "factor" | "hca" | "y" | "rh" | "pct" | "ppm" | "hz"
        ) {
            out.push(v);
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    let tolerance = 1e-6_f64.max(b.abs() * 1e-6);
    (a - b).abs() <= tolerance
        || (a - b).abs() < 0.0051 && (b * 100.0).fract().abs() < 1e-9 && (a - b).abs() < 1e-3
}

#[derive(Default)]
struct Tally {
    cases: usize,
    decoded: usize,
    statuses: BTreeMap<String, usize>,
    encrypted_keyed: usize,
    decrypted: usize,
    decryption_failures: Vec<String>,
    fields: usize,
    matched: usize,
    misses: BTreeMap<&'static str, Vec<String>>,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("wmbus-conformance: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn decoder(key: &str, ids: &[String], formats: &FormatCache) -> Result<Decoder> {
    let mut keys = MemoryKeyStore::new();
    if key != "NOKEY" && !key.is_empty() {
        for id in ids {
            if let Ok(e) = keyfile::parse_entry(id, key, "corpus") {
                keyfile::load_into(&mut keys, vec![e]);
            }
        }
    }
    let mut d = Decoder::new(
        keys,
        DecodeOptions {
            replay_check: false,
            allow_des: true,
            ..DecodeOptions::default()
        },
    );
    *d.formats_mut() = formats.clone();
    Ok(d)
}

fn decode_case(case: &Value, formats: &FormatCache) -> Result<(Report, FormatCache)> {
    let telegram = case["telegram"].as_str().context("telegram")?;
    let key = case["key"].as_str().unwrap_or("NOKEY");
    let priors: Vec<&str> = case["prior_telegrams"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let bytes = |t: &str| match parse_line(t) {
        Line::Telegram { bytes, .. } => bytes,
        _ => Vec::new(),
    };
    // First pass without keys: which meter and link identities the telegrams carry.
    let mut probe = decoder("NOKEY", &[], formats)?;
    let mut ids = Vec::new();
    for t in priors.iter().chain(std::iter::once(&telegram)) {
        let r = probe.decode(Instant::default(), &bytes(t));
        ids.extend(r.id.clone());
        ids.extend(r.link.as_ref().and_then(|l| l.id.clone()));
    }
    let mut d = decoder(key, &ids, formats)?;
    for (i, t) in priors.iter().enumerate() {
        d.decode(Instant::from_secs(i as u64), &bytes(t));
    }
    let report = d.decode(Instant::from_secs(1000), &bytes(telegram));
    Ok((report, d.formats().clone()))
}

fn run() -> Result<bool> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "../shared/corpus/wmbusmeters_vectors.jsonl".into());
    let mut json_out = None;
    let mut min_share = 0.0;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json_out = args.next(),
            "--min-share" => min_share = args.next().context("--min-share value")?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let cases: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    // First pass: the compact-frame formats every full frame of the corpus teaches, as a
    // user's --format-cache file would hold them.
    let mut formats = FormatCache::default();
    for case in &cases {
        formats = decode_case(case, &formats)?.1;
    }
    println!("formats learned     {}", formats.len());
    let mut t = Tally::default();
    let mut details = Vec::new();
    for case in &cases {
        t.cases += 1;
        let (report, _) = decode_case(case, &formats)?;
        *t.statuses.entry(report.status.to_string()).or_default() += 1;
        if report.status == "ok" {
            t.decoded += 1;
        }
        let check = case["classification"]["crypto_check"]
            .as_str()
            .unwrap_or("");
        let label = format!(
            "{} {}",
            case["source"].as_str().unwrap_or("?"),
            case["driver"].as_str().unwrap_or("?")
        );
        if matches!(check, "decrypt_ok" | "ell_decrypt_ok") {
            t.encrypted_keyed += 1;
            if matches!(report.security.result, "decrypted" | "authenticated")
                || report.security.ell == Some("decrypted")
            {
                t.decrypted += 1;
            } else {
                t.decryption_failures.push(format!(
                    "{label}: {} {}",
                    report.status,
                    report.error.clone().unwrap_or_default()
                ));
            }
        }
        details.push(serde_json::json!({
            "source": case["source"], "driver": case["driver"], "status": report.status,
            "result": report.security.result, "error": report.error,
        }));
        let Some(expected) = case["expected_json"].as_object() else {
            continue;
        };
        let mfct = report.manufacturer_data.is_some()
            || report
                .records
                .iter()
                .any(|r| r.quantity == "manufacturer_specific")
            || check == "mfct_specific";
        for (field, v) in expected {
            let Some(want) = v.as_f64().filter(|_| !v.is_boolean()) else {
                continue;
            };
            if matches!(
                field.as_str(),
                "id" | "timestamp" | "media" | "meter" | "name"
            ) {
                continue;
            }
            let suffix = field.rsplit('_').next().unwrap_or("");
            t.fields += 1;
            if candidates(&report, suffix).iter().any(|&c| close(c, want)) {
                t.matched += 1;
                continue;
            }
            let cause = if report.status != "ok" {
                "telegram not decoded"
            } else if mfct {
                "manufacturer-specific data"
            } else if field.contains("consumption")
                || field.contains("_at_")
                || field.contains("target")
                || field.contains("set_date")
                || field.contains("month")
                || field.contains("prev")
                || field.contains("last")
            {
                "derived or historic value (driver logic)"
            } else if report.records.is_empty() {
                "no data records"
            } else {
                "not among our records"
            };
            t.misses
                .entry(cause)
                .or_default()
                .push(format!("{label}: {field} = {want}"));
        }
    }
    let share = if t.fields == 0 {
        1.0
    } else {
        t.matched as f64 / t.fields as f64
    };
    println!("cases               {}", t.cases);
    println!("decoded (ok)        {}", t.decoded);
    println!("statuses            {:?}", t.statuses);
    println!(
        "encrypted with key  {} decrypted {}",
        t.encrypted_keyed, t.decrypted
    );
    for f in &t.decryption_failures {
        println!("  decryption failed: {f}");
    }
    println!(
        "numeric readings    {} matched {} share {:.1}%",
        t.fields,
        t.matched,
        100.0 * share
    );
    for (cause, list) in &t.misses {
        println!("  missed, {cause}: {}", list.len());
    }
    if let Some(p) = json_out {
        let misses: BTreeMap<_, _> = t.misses.iter().map(|(k, v)| (*k, v.clone())).collect();
        std::fs::write(
            &p,
            serde_json::to_string_pretty(&serde_json::json!({
                "cases": t.cases, "decoded": t.decoded, "statuses": t.statuses,
                "encrypted_keyed": t.encrypted_keyed, "decrypted": t.decrypted,
                "decryption_failures": t.decryption_failures,
                "fields": t.fields, "matched": t.matched, "share": share,
                "misses": misses, "cases_detail": details,
            }))?,
        )?;
    }
    let ok = t.decryption_failures.is_empty() && share >= min_share;
    if !ok {
        println!("FAILED: decryption failures or share below {min_share}");
    }
    Ok(ok)
}
