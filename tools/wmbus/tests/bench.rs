#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `wmbus bench` against `wmbus simulate` on a real pseudo-terminal, with simulated meters
//! whose intervals, drops and faults are known: the statistics and the verdicts must find
//! them; the reports parse and the plots are SVG documents.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const METERS: &str = r#"
[[meters]]
interval = 0.5
rssi = -60.0
[meters.description]
key = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
meter = { manufacturer = "ZRI", id = "10000001", device_type = 7 }
tpl = { access_number = 1, security_mode = 5 }
records = [{ quantity = "volume", value = 12.5, unit = "m3" }]

[[meters]]
interval = 0.4
drop = 0.3
rssi = -65.0
[meters.description]
key = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
meter = { manufacturer = "ZRI", id = "10000002", device_type = 7 }
tpl = { access_number = 1, security_mode = 5 }
records = [{ quantity = "volume", value = 2.5, unit = "m3" }]

[[meters]]
interval = 0.6
rssi = -70.0
wrong_key = "00000000000000000000000000000000"
[meters.description]
key = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
meter = { manufacturer = "ZRI", id = "10000003", device_type = 7 }
tpl = { access_number = 1, security_mode = 5 }
records = [{ quantity = "volume", value = 3.5, unit = "m3" }]

[[meters]]
interval = 0.6
jitter = 0.15
rssi = -75.0
[meters.description]
key = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
meter = { manufacturer = "ZRI", id = "10000005", device_type = 7 }
tpl = { access_number = 1, security_mode = 5 }
records = [{ quantity = "volume", value = 5.5, unit = "m3" }]

[[meters]]
interval = 0.5
rssi = -101.0
[meters.description]
key = "0F1E2D3C4B5A69788796A5B4C3D2E1F0"
meter = { manufacturer = "ZRI", id = "10000004", device_type = 7 }
tpl = { access_number = 1, security_mode = 5, status = 0x0C }
records = [{ quantity = "volume", value = 4.5, unit = "m3" }]
"#;

const KEYS: &str = "\
ZRI.10000001 0F1E2D3C4B5A69788796A5B4C3D2E1F0
ZRI.10000002 0F1E2D3C4B5A69788796A5B4C3D2E1F0
ZRI.10000003 0F1E2D3C4B5A69788796A5B4C3D2E1F0
ZRI.10000004 0F1E2D3C4B5A69788796A5B4C3D2E1F0
ZRI.10000005 0F1E2D3C4B5A69788796A5B4C3D2E1F0
";

const EXPECT: &str = r#"
[[meters]]
id = "ZRI.10000001"
interval = 0.5
tolerance = 0.1
min_rssi = -70
mode = 5
max_missed_share = 0.05

[[meters]]
id = "10000002"
interval = 0.4
max_missed_share = 0.05

[[meters]]
id = "10000003"
interval = 0.6

[[meters]]
id = "10000004"
interval = 0.5
min_rssi = -90

[[meters]]
id = "10000009"
interval = 1.0
"#;

#[test]
fn bench_finds_the_known_faults() {
    let dir = std::env::temp_dir().join(format!("wmbus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("meters.toml", METERS),
        ("keys.txt", KEYS),
        ("expect.toml", EXPECT),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut sim = Command::new(env!("CARGO_BIN_EXE_wmbus"))
        .args([
            "simulate",
            "--dongle",
            "amb8465",
            "--duration",
            "9",
            "--seed",
            "5",
        ])
        .arg("--meters")
        .arg(dir.join("meters.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut path = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut path)
        .unwrap();
    let out_dir = dir.join("report");
    let bench = Command::new(env!("CARGO_BIN_EXE_wmbus"))
        .args(["bench", "--dongle", "amb8465", "--duration", "6s"])
        .arg("--device")
        .arg(path.trim())
        .arg("--keys")
        .arg(dir.join("keys.txt"))
        .arg("--meters")
        .arg(dir.join("expect.toml"))
        .arg("--out")
        .arg(&out_dir)
        .current_dir(root())
        .output()
        .unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    let text = String::from_utf8_lossy(&bench.stdout);
    assert_eq!(
        bench.status.code(),
        Some(1),
        "{text}\n{}",
        String::from_utf8_lossy(&bench.stderr)
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let meter = |id: &str| {
        summary["meters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meter"] == id)
            .unwrap_or_else(|| panic!("{id} missing: {text}"))
            .clone()
    };
    let verdict = |id: &str| {
        summary["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["meter"] == id)
            .unwrap()
            .clone()
    };

    // The good meter: every 0.5 s, no jitter, nothing missed, RSSI as sent; passes.
    let a = meter("ZRI.10000001");
    let n = a["telegrams"].as_u64().unwrap();
    assert!((9..=13).contains(&n), "{a}");
    assert!(
        (a["interval_mean"].as_f64().unwrap() - 0.5).abs() < 0.05,
        "{a}"
    );
    assert!(a["interval_jitter"].as_f64().unwrap() < 0.05, "{a}");
    assert_eq!(a["missed"], 0);
    assert!(
        (a["rssi_mean"].as_f64().unwrap() + 60.0).abs() <= 1.0,
        "{a}"
    );
    assert_eq!(verdict("ZRI.10000001")["pass"], true, "{text}");

    // 30 % dropped: the access-number gaps show it.
    let b = meter("ZRI.10000002");
    let share = b["missed"].as_f64().unwrap()
        / (b["missed"].as_f64().unwrap() + b["telegrams"].as_f64().unwrap());
    assert!((0.1..=0.55).contains(&share), "{b}");
    let vb = verdict("ZRI.10000002");
    assert_eq!(vb["pass"], false);
    assert!(vb["reasons"].to_string().contains("missed"), "{vb}");

    // Wrong key: every telegram fails authentication.
    let c = meter("ZRI.10000003");
    assert_eq!(c["auth_failures"], c["telegrams"]);
    assert!(
        verdict("ZRI.10000003")["reasons"]
            .to_string()
            .contains("authentication")
    );

    // Weak, and flagging low battery and a permanent error (STS 0Ch: bits 2 and 3).
    let d = meter("ZRI.10000004");
    assert!(
        (d["rssi_mean"].as_f64().unwrap() + 101.0).abs() <= 1.0,
        "{d}"
    );
    let vd = verdict("ZRI.10000004")["reasons"].to_string();
    assert!(
        vd.contains("RSSI") && vd.contains("battery_low") && vd.contains("permanent_error"),
        "{vd}"
    );

    // Uniform jitter of ±0.15 s: each interval deviates by the difference of two draws, a
    // standard deviation of 0.15·√(2/3) ≈ 0.12 s; the mean stays 0.6 s.
    let e = meter("ZRI.10000005");
    let jitter = e["interval_jitter"].as_f64().unwrap();
    assert!((0.04..=0.2).contains(&jitter), "{e}");
    assert!(
        (e["interval_mean"].as_f64().unwrap() - 0.6).abs() < 0.1,
        "{e}"
    );
    assert_eq!(e["missed"], 0);

    // Expected but never heard.
    assert_eq!(verdict("10000009")["reasons"][0], "never heard");

    // The reports parse; one CSV row and one JSON line per telegram; plots are SVG.
    let total: u64 = [
        "ZRI.10000001",
        "ZRI.10000002",
        "ZRI.10000003",
        "ZRI.10000004",
        "ZRI.10000005",
    ]
    .iter()
    .map(|m| meter(m)["telegrams"].as_u64().unwrap())
    .sum();
    let csv = std::fs::read_to_string(out_dir.join("telegrams.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, total + 1);
    assert!(
        csv.lines().skip(1).all(|l| l.split(',').count() == 9),
        "{csv}"
    );
    let jsonl = std::fs::read_to_string(out_dir.join("telegrams.jsonl")).unwrap();
    for l in jsonl.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    assert_eq!(jsonl.lines().count() as u64, total);
    let summary_csv = std::fs::read_to_string(out_dir.join("summary.csv")).unwrap();
    assert_eq!(summary_csv.lines().count(), 6);
    for m in [
        "ZRI_10000001",
        "ZRI_10000002",
        "ZRI_10000003",
        "ZRI_10000004",
        "ZRI_10000005",
    ] {
        let svg = std::fs::read_to_string(out_dir.join(format!("plot-{m}.svg"))).unwrap();
        assert!(
            svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"),
            "{m}"
        );
        assert_eq!(svg.matches("<polyline").count(), 2, "{m}");
    }
    assert!(
        text.contains("PASS ZRI.10000001") && text.contains("FAIL ZRI.10000003"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
