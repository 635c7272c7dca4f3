#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! The `wmbus` binary as users run it: every input format with realistic receiver lines, where
//! each report came from, the views, exit statuses, stdin, threads, and the synthetic capture.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const KEYS: [&str; 3] = [
    "12345678=0102030405060708090A0B0C0D0E0F11",
    "49705932=A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1",
    "76348799=28F64A24988064A079AA2C807D6102AE",
];

fn wmbus(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wmbus"));
    cmd.args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn with_keys(mut args: Vec<&str>) -> Vec<&str> {
    for k in KEYS {
        args.extend(["--key", k]);
    }
    args
}

/// rtl_wmbus, rtl_433 JSON, simulation and plain-hex lines in one file, recognised per line;
/// each report names its file and line and carries what the receiver said.
#[test]
fn receiver_formats_in_one_file() {
    let out = wmbus(
        &with_keys(vec![
            "decode",
            "--format",
            "json",
            "--input",
            "testdata/samples/receivers.txt",
        ]),
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = lines(&out);
    assert_eq!(r.len(), 4, "the CRC-failed rtl_wmbus line is skipped");
    for x in &r {
        assert_eq!(x["status"], "ok", "{x}");
        assert_eq!(x["source"]["file"], "testdata/samples/receivers.txt");
    }
    // rtl_wmbus: mode, time, RSSI in the receiver's unit.
    assert_eq!(r[0]["source"]["line"], 8);
    assert_eq!(r[0]["link_mode"], "T1");
    assert_eq!(r[0]["time"], "2026-11-28 10:00:00.000");
    assert_eq!(r[0]["rssi"], 117.0);
    assert_eq!(r[0]["rssi_unit"], "rtl_wmbus");
    assert_eq!(r[0]["id"], "12345678");
    assert_eq!(r[0]["records"][0]["value"], 28504.27);
    // rtl_433: its data field, mode, time and RSSI in dB.
    assert_eq!(r[1]["source"]["line"], 12);
    assert_eq!(r[1]["link_mode"], "C1");
    assert_eq!(r[1]["time"], "2026-11-28 10:00:02");
    assert_eq!(r[1]["rssi"], -63.219);
    assert_eq!(r[1]["rssi_unit"], "dB");
    assert_eq!(r[1]["id"], "76348799");
    assert_eq!(r[1]["security"]["ell"], "decrypted");
    // Simulation line: no reception data.
    assert_eq!(r[2]["source"]["line"], 14);
    assert_eq!(r[2]["id"], "49705932");
    assert!(r[2].get("rssi").is_none() && r[2].get("link_mode").is_none());
    // Plain hex with separators.
    assert_eq!(r[3]["source"]["line"], 16);
    assert_eq!(r[3]["frame_hex"], r[0]["frame_hex"]);
}

/// Several `--input` files and `-` for stdin, in the order given; arguments are numbered by
/// position and have no file.
#[test]
fn several_inputs_and_stdin() {
    let stdin = b"# from stdin\n2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A\n";
    let out = wmbus(
        &with_keys(vec![
            "decode",
            "-f",
            "json",
            "--no-replay-check",
            "--input",
            "testdata/samples/receivers.txt",
            "--input",
            "-",
            "--input",
            "testdata/samples/captures.txt",
        ]),
        Some(stdin),
    );
    let r = lines(&out);
    assert!(r.len() > 10);
    assert_eq!(r[4]["source"]["file"], "-");
    assert_eq!(r[4]["source"]["line"], 2);
    assert_eq!(r[5]["source"]["file"], "testdata/samples/captures.txt");
    let out = wmbus(
        &with_keys(vec![
            "decode",
            "-f",
            "json",
            "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A",
        ]),
        None,
    );
    let r = lines(&out);
    assert_eq!(r[0]["source"], serde_json::json!({"line": 1}));
}

/// Exit status: 0 when every telegram decoded, 1 when some did not (all still printed, the
/// batch goes on after a bad line, non-UTF-8 included), 2 for usage errors.
#[test]
fn exit_statuses() {
    let good = "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A";
    let out = wmbus(&with_keys(vec!["decode", "-f", "json", good]), None);
    assert_eq!(out.status.code(), Some(0));
    let mut input = b"zz not hex\n\xFF\xFE binary\n".to_vec();
    input.extend_from_slice(good.as_bytes());
    input.extend_from_slice(b"\n2E4493\n");
    let out = wmbus(&with_keys(vec!["decode", "-f", "json"]), Some(&input));
    assert_eq!(out.status.code(), Some(1));
    let r = lines(&out);
    let status: Vec<&str> = r.iter().map(|x| x["status"].as_str().unwrap()).collect();
    assert_eq!(status, ["malformed", "malformed", "ok", "malformed"]);
    assert!(
        r[1]["error"].as_str().unwrap().contains("UTF-8"),
        "{}",
        r[1]
    );
    assert!(
        r[3]["error"].as_str().unwrap().contains("offset")
            || r[3]["error"].as_str().unwrap().contains("byte"),
        "{}",
        r[3]
    );
    // Without the key the telegram does not decode.
    let out = wmbus(&["decode", "-f", "json", good], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(lines(&out)[0]["status"], "no_key");
    // Usage errors.
    assert_eq!(
        wmbus(&["decode", "--format", "yaml", good], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        wmbus(&["decode", "--input", "/nonexistent/file"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        wmbus(&["decode", "--key", "12345678=00", good], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(wmbus(&["frobnicate"], None).status.code(), Some(2));
}

/// CSV: the header, then one row per record.
#[test]
fn csv_rows() {
    let out = wmbus(
        &with_keys(vec![
            "decode",
            "-f",
            "csv",
            "--input",
            "testdata/samples/receivers.txt",
        ]),
        None,
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[0],
        "time,meter,quantity,value,unit,storage,tariff,function"
    );
    assert_eq!(rows.len(), 1 + 3 + 5 + 5 + 3);
    assert!(
        rows.iter()
            .any(|r| r.contains("volume,28504.27,m3,0,0,instantaneous")),
        "{text}"
    );
    assert!(
        rows[1].starts_with("2026-11-28 10:00:00.000,"),
        "{}",
        rows[1]
    );
}

/// The pretty and analyze views run over every sample.
#[test]
fn human_views() {
    for view in ["pretty", "analyze"] {
        let out = wmbus(
            &[
                "decode",
                "-f",
                view,
                "--keys",
                "testdata/samples/keys.txt",
                "--input",
                "testdata/samples/captures.txt",
            ],
            None,
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("12345678"), "{view}: {text}");
    }
}

/// `--threads N`: the same bytes as one thread, in the input order.
#[test]
fn threads_keep_the_order_and_the_result() {
    let dir = std::env::temp_dir().join(format!("wmbus-cli-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("capture.txt");
    let keys = dir.join("keys.txt");
    let out = wmbus(
        &[
            "synth",
            "--count",
            "3000",
            "--meters",
            "37",
            "--out",
            capture.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    // Mix in the samples (fragments, compact frames, replays) after the synthetic lines.
    let mut text = std::fs::read_to_string(&capture).unwrap();
    text.push_str(&std::fs::read_to_string(root().join("testdata/samples/captures.txt")).unwrap());
    std::fs::write(&capture, text).unwrap();
    let run = |threads: &str| {
        wmbus(
            &[
                "decode",
                "-f",
                "json",
                "--keys",
                keys.to_str().unwrap(),
                "--keys",
                "testdata/samples/keys.txt",
                "--input",
                capture.to_str().unwrap(),
                "--threads",
                threads,
            ],
            None,
        )
    };
    let one = run("1");
    let lines_one = lines(&one);
    assert_eq!(lines_one.len(), 3000 + 13);
    assert!(lines_one[..3000].iter().all(|x| x["status"] == "ok"));
    for n in ["2", "3", "0"] {
        let many = run(n);
        assert_eq!(many.status.code(), one.status.code());
        assert!(
            many.stdout == one.stdout,
            "--threads {n} differs from one thread"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `wmbus synth` is deterministic.
#[test]
fn synth_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("wmbus-cli-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let make = |name: &str| {
        let out = dir.join(name);
        let keys = dir.join(format!("{name}.keys"));
        wmbus(
            &[
                "synth",
                "--count",
                "50",
                "--meters",
                "5",
                "--seed",
                "7",
                "--mode",
                "7",
                "--out",
                out.to_str().unwrap(),
                "--keys",
                keys.to_str().unwrap(),
            ],
            None,
        );
        (std::fs::read(out).unwrap(), std::fs::read(keys).unwrap())
    };
    assert_eq!(make("a"), make("b"));
    std::fs::remove_dir_all(&dir).ok();
}

/// A live receiver piped into `wmbus decode`: each line's report comes out while stdin stays
/// open (output is not held back for a full buffer), with one thread and with two.
#[test]
fn live_stdin_is_answered_line_by_line() {
    use std::io::{BufRead, BufReader};
    let telegram = b"2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3\n";
    for threads in ["1", "2"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wmbus"))
            .args([
                "decode",
                "-f",
                "json",
                "--threads",
                threads,
                "--key",
                KEYS[0],
            ])
            .current_dir(root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        for n in 1..=3 {
            stdin.write_all(telegram).unwrap();
            stdin.flush().unwrap();
            let line = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("--threads {threads}: no report for line {n} yet"));
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["source"]["line"], n);
            assert_eq!(v["status"], "ok");
        }
        drop(stdin);
        assert!(child.wait().unwrap().success());
        reader.join().unwrap();
    }
}

/// `wmbus encode` as users run it: the benchmark description built with and without CRCs,
/// decoded back with its key to the description's values; `wmbus vectors --seed 1` writes
/// exactly the committed vector set.
#[test]
fn encode_and_vectors_commands() {
    let desc = "testdata/bench/water-mode5.toml";
    let key = "ZRI.20251128=0F1E2D3C4B5A69788796A5B4C3D2E1F0";
    for format in ["none", "a", "b"] {
        let out = wmbus(&["encode", desc, "--format", format], None);
        assert_eq!(out.status.code(), Some(0), "{format}");
        let hex = String::from_utf8(out.stdout).unwrap();
        let hex = hex.trim();
        let decoded = wmbus(&["decode", "-f", "json", "--key", key, hex], None);
        assert_eq!(decoded.status.code(), Some(0), "{format}");
        let v = &lines(&decoded)[0];
        assert_eq!(v["status"], "ok");
        assert_eq!(
            v["link"]["frame_format"],
            format.to_uppercase().replace("NONE", "none")
        );
        assert_eq!(v["records"][0]["value"], 1234.567);
        assert_eq!(v["records"][1]["value"], "2026-11-28T10:15");
    }
    let dir = std::env::temp_dir().join(format!("wmbus-cli-vectors-{}", std::process::id()));
    let out = wmbus(
        &["vectors", "--seed", "1", "--out", dir.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let committed = root().join("testdata/vectors");
    let mut n = 0;
    for e in std::fs::read_dir(&committed).unwrap().flatten() {
        let name = e.file_name();
        assert_eq!(
            std::fs::read(dir.join(&name)).unwrap(),
            std::fs::read(e.path()).unwrap(),
            "{name:?}"
        );
        n += 1;
    }
    assert!(n > 300, "{n}");
    std::fs::remove_dir_all(&dir).ok();
}
