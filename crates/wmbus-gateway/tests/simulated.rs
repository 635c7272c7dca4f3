#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `wmbusd` against the simulated dongle on real pseudo-terminals: every dongle kind decodes
//! N of N telegrams; garbage between frames and a device unplugged and plugged in again
//! mid-stream lose nothing delivered in full; after a restart a replayed mode-7 telegram is
//! still refused.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use wmbus_dongle::Kind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("wmbusd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Public telegrams with their keys (OMS Annex N, jmbus, Kamstrup), one per line, CRCs as
/// published; the last one is mode 7 (AFL counter).
const TELEGRAMS: &str = "\
2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A
3644496A0228004401377232597049496A01073500202518AC74B56F3119F53981507265B808AF7D423C429550112536BDD6F25BBB63D9
2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24
434493157856341233037AC98C2075900F002C25B30A000021924D4FBA372FB66E017A75002007109058475F4BC9D1281DF878B80A1B0F98B629024AAC7279429398BFC549233C0140829B93BAA1
";

const KEYS: &str = "\
ELS.12345678 0102030405060708090A0B0C0D0E0F11
ZRI.49705932 A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1A1
KAM.76348799 28F64A24988064A079AA2C807D6102AE
";

/// The mode-7 telegram's own key (N.2.3) differs from N.2.1's for the same meter id.
const KEYS_MODE7: &str = "ELS.12345678 000102030405060708090A0B0C0D0E0F\n";

struct Sim {
    path: PathBuf,
    handle: thread::JoinHandle<u64>,
}

fn simulate(options: wmbus_sim::Options) -> Sim {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        wmbus_sim::run(&options, &mut |p| {
            let _ = tx.send(p.to_path_buf());
        })
        .unwrap()
    });
    let path = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    Sim { path, handle }
}

fn options(kind: Kind, telegrams: &Path) -> wmbus_sim::Options {
    wmbus_sim::Options {
        dongle: kind.name().to_string(),
        telegrams: Some(telegrams.to_path_buf()),
        meters: None,
        interval: 30,
        repeat: 1,
        count: 0,
        linger: 700,
        link: None,
        garbage_every: 0,
        disconnect_after: 0,
        reconnect_delay: 800,
        rssi: -71.0,
        seed: 1,
        duration: 0,
        silence_every: 0,
        silence: 0,
    }
}

fn wmbusd(device: &Path, kind: Kind, keys: &Path, state: Option<&Path>) -> Child {
    wmbusd_with(device, kind, keys, state, &[])
}

fn wmbusd_with(
    device: &Path,
    kind: Kind,
    keys: &Path,
    state: Option<&Path>,
    extra: &[&str],
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wmbusd"));
    cmd.args(extra);
    cmd.arg("--device")
        .arg(device)
        .arg("--dongle")
        .arg(kind.name())
        .arg("--keys")
        .arg(keys)
        .arg("--dedup-window-ms")
        .arg("0")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = state {
        cmd.arg("--state-dir").arg(s);
    }
    cmd.spawn().unwrap()
}

/// `wmbusd --config FILE`, output and log captured.
fn wmbusd_config(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_wmbusd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first `n` lines of [`TELEGRAMS`].
fn first_lines(n: usize) -> String {
    TELEGRAMS
        .lines()
        .take(n)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Stops the daemon with SIGTERM; its JSON lines and its log.
fn stop(child: Child) -> (Vec<Value>, String) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wmbusd exit {:?}", out.status);
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn files(dir: &Dir, telegrams: &str, keys: &str) -> (PathBuf, PathBuf) {
    let t = dir.0.join("telegrams.txt");
    let k = dir.0.join("keys.txt");
    std::fs::write(&t, telegrams).unwrap();
    std::fs::write(&k, keys).unwrap();
    (t, k)
}

fn statuses(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect()
}

fn run_kind(
    test: &str,
    kind: Kind,
    tweak: impl FnOnce(&mut wmbus_sim::Options),
) -> (Vec<Value>, String, u64) {
    let dir = Dir::new(&format!("{test}-{}", kind.name()));
    // Without the mode-7 line: its meter id repeats with another key.
    let three = first_lines(3);
    let (t, k) = files(&dir, &three, KEYS);
    let mut o = options(kind, &t);
    o.link = Some(dir.0.join("dongle"));
    tweak(&mut o);
    let link = o.link.clone().unwrap();
    let sim = simulate(o);
    let daemon = wmbusd(&link, kind, &k, None);
    let delivered = sim.handle.join().unwrap();
    let _ = sim.path;
    let (lines, log) = stop(daemon);
    (lines, log, delivered)
}

#[test]
fn every_kind_decodes_n_of_n() {
    for kind in Kind::ALL {
        let (lines, log, delivered) = run_kind("n-of-n", kind, |_| {});
        assert_eq!(delivered, 3, "{kind}");
        assert_eq!(statuses(&lines), ["ok", "ok", "ok"], "{kind}: {log}");
        assert_eq!(lines[0]["id"], "12345678");
        assert_eq!(lines[2]["security"]["ell"], "decrypted");
        if !matches!(kind, Kind::RtlWmbus | Kind::Rtl433) {
            let rssi = lines[0]["rssi"].as_f64().unwrap();
            assert!((rssi + 71.0).abs() <= 1.0, "{kind}: rssi {rssi}");
            assert_eq!(lines[0]["rssi_unit"], "dBm");
        }
        assert!(
            lines[0]["source"]["file"]
                .as_str()
                .unwrap()
                .ends_with("dongle")
        );
    }
}

#[test]
fn garbage_between_frames_is_survived() {
    for kind in [
        Kind::Im871a,
        Kind::Iu891a,
        Kind::Amber,
        Kind::Cul,
        Kind::Rc1180,
    ] {
        let (lines, log, _) = run_kind("garbage", kind, |o| {
            o.repeat = 3;
            o.garbage_every = 2;
        });
        assert_eq!(lines.len(), 9, "{kind}: {log}");
        assert!(statuses(&lines).iter().all(|s| s == "ok"), "{kind}: {log}");
    }
}

#[test]
fn unplugged_mid_stream_loses_nothing_delivered() {
    for kind in [Kind::Im871a, Kind::Cul] {
        let (lines, log, delivered) = run_kind("unplug", kind, |o| {
            o.repeat = 3;
            o.disconnect_after = 4;
        });
        assert_eq!(delivered, 9, "{kind}");
        assert_eq!(lines.len(), 9, "{kind}: {log}");
        assert!(statuses(&lines).iter().all(|s| s == "ok"), "{kind}: {log}");
        assert!(log.contains("reopening"), "{kind}: {log}");
    }
}

#[test]
fn replayed_mode7_refused_after_restart() {
    let dir = Dir::new("replay");
    let mode7 = format!("{}\n", TELEGRAMS.lines().nth(3).unwrap());
    let (t, k) = files(&dir, &mode7, KEYS_MODE7);
    let state = dir.0.join("state");
    let mut outcomes = Vec::new();
    for round in 0..2 {
        let mut o = options(Kind::Im871a, &t);
        o.link = Some(dir.0.join(format!("dongle{round}")));
        let link = o.link.clone().unwrap();
        let sim = simulate(o);
        let daemon = wmbusd(&link, Kind::Im871a, &k, Some(&state));
        sim.handle.join().unwrap();
        let (lines, log) = stop(daemon);
        assert_eq!(lines.len(), 1, "{log}");
        outcomes.push(lines[0]["status"].as_str().unwrap().to_string());
    }
    assert_eq!(outcomes, ["ok", "replayed"]);
    let mut saved = String::new();
    std::fs::File::open(state.join("replay.txt"))
        .unwrap()
        .read_to_string(&mut saved)
        .unwrap();
    assert!(!saved.trim().is_empty());
}

/// Two dongles hear the same meters: each telegram is reported once, the copies counted.
#[test]
fn duplicates_across_dongles_are_dropped_and_counted() {
    let dir = Dir::new("dedup");
    let three = first_lines(3);
    let (t, k) = files(&dir, &three, KEYS);
    let mut sims = Vec::new();
    let mut config = format!(
        "keys = {:?}\ndedup_window_ms = 60000\n",
        k.display().to_string()
    );
    for (i, kind) in [Kind::Im871a, Kind::Cul].into_iter().enumerate() {
        let mut o = options(kind, &t);
        o.link = Some(dir.0.join(format!("dongle{i}")));
        config.push_str(&format!(
            "[[dongles]]\nname = \"{}\"\ndevice = {:?}\nkind = \"{}\"\n",
            kind.name(),
            o.link.clone().unwrap().display().to_string(),
            kind.name()
        ));
        sims.push(simulate(o));
    }
    let config_path = dir.0.join("wmbusd.toml");
    std::fs::write(&config_path, config).unwrap();
    let daemon = wmbusd_config(&config_path);
    for s in sims {
        assert_eq!(s.handle.join().unwrap(), 3);
    }
    let (lines, log) = stop(daemon);
    assert_eq!(statuses(&lines), ["ok", "ok", "ok"], "{log}");
    assert!(log.contains("duplicates=3"), "{log}");
}

/// A dongle that goes quiet: initialised again after the watchdog period, reopened after a
/// second one; the telegram that comes afterwards is decoded.
#[test]
fn watchdog_reinitialises_then_reopens() {
    let dir = Dir::new("watchdog");
    let two = first_lines(2);
    let (t, k) = files(&dir, &two, KEYS);
    let mut o = options(Kind::Im871a, &t);
    o.silence_every = 1;
    o.silence = 3500;
    o.link = Some(dir.0.join("dongle"));
    let link = o.link.clone().unwrap();
    let sim = simulate(o);
    let daemon = wmbusd_with(&link, Kind::Im871a, &k, None, &["--watchdog", "1"]);
    assert_eq!(sim.handle.join().unwrap(), 2);
    let (lines, log) = stop(daemon);
    assert_eq!(statuses(&lines), ["ok", "ok"], "{log}");
    assert!(log.contains("initialising again"), "{log}");
    assert!(log.contains("silent after re-initialising"), "{log}");
}

/// rtl_wmbus from a child process (`command`), as `rtl_sdr … | rtl_wmbus` would run; the
/// command is started again when it ends, and the repeated lines are duplicates.
#[test]
fn sdr_from_a_command() {
    let dir = Dir::new("command");
    let (_, k) = files(&dir, "", KEYS);
    let lines = [
        "T1;1;1;2026-11-28 10:00:00.000;117;102;12345678;0x2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3",
        "T1;0;1;2026-11-28 10:00:01.000;80;79;12345678;0x2E44",
    ];
    let capture = dir.0.join("rtl.txt");
    std::fs::write(&capture, lines.join("\n") + "\n").unwrap();
    let config = dir.0.join("wmbusd.toml");
    std::fs::write(
        &config,
        format!(
            "keys = {:?}\n[[dongles]]\nname = \"sdr\"\nkind = \"rtlwmbus\"\ncommand = \"exec cat {}\"\n",
            k.display().to_string(),
            capture.display()
        ),
    )
    .unwrap();
    let daemon = wmbusd_config(&config);
    thread::sleep(Duration::from_millis(1500));
    let (lines, log) = stop(daemon);
    assert_eq!(statuses(&lines), ["ok"], "{log}");
    assert_eq!(lines[0]["source"]["file"], "sdr");
    assert_eq!(lines[0]["link_mode"], "T1");
}

#[test]
fn usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_wmbusd")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_wmbusd"))
        .args(["--device", "/dev/null", "--dongle", "nonsense"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

/// Requests from the configuration to the talking meters of `testdata/sim/talk.toml`: a
/// SITP command (its KeyCounter learnt from the meter first) and a fragmented read, run in
/// the breaker's windows through the dongle; the read's answer is decoded and reported
/// like any telegram.
#[test]
fn configured_requests_reach_a_talking_meter() {
    let dir = Dir::new("talk");
    let keys = dir.0.join("keys.txt");
    std::fs::copy(root().join("testdata/sim/talk-keys.txt"), &keys).unwrap();
    let mut o = options(Kind::Im871a, Path::new("-"));
    o.telegrams = None;
    o.meters = Some(root().join("testdata/sim/talk.toml"));
    o.duration = 9000;
    o.link = Some(dir.0.join("dongle"));
    let config = format!(
        "keys = {:?}\nstate_dir = {:?}\nrequests = [\n  {{ meter = \"XYZ.12345678\", action = \"command\", apdu = \"01FD1F00\" }},\n  {{ meter = \"XYZ.12345678\", action = \"read\" }},\n]\n[[dongles]]\ndevice = {:?}\nkind = \"im871a\"\nlink_mode = \"T2\"\n",
        keys.display().to_string(),
        dir.0.join("state").display().to_string(),
        o.link.clone().unwrap().display().to_string(),
    );
    let config_path = dir.0.join("wmbusd.toml");
    std::fs::write(&config_path, config).unwrap();
    let sim = simulate(o);
    let daemon = wmbusd_config(&config_path);
    sim.handle.join().unwrap();
    let (lines, log) = stop(daemon);
    let finished: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("exchange finished"))
        .collect();
    assert_eq!(finished.len(), 2, "{log}");
    assert!(
        finished[0].contains(r#""request":"command""#)
            && finished[0].contains(r#""outcome":"answered""#)
            && finished[0].contains("application_data_cmac8"),
        "{log}"
    );
    assert!(
        finished[1].contains(r#""request":"read""#)
            && finished[1].contains(r#""outcome":"answered""#),
        "{log}"
    );
    let readout = lines
        .iter()
        .find(|l| {
            l["id"] == "12345678"
                && l["link"]["c_field_name"] == "RSP_UD"
                && l["records"].as_array().is_some_and(|r| r.len() == 8)
        })
        .unwrap_or_else(|| panic!("no readout in {lines:#?}"));
    assert_eq!(readout["status"], "ok");
    let state = std::fs::read_to_string(dir.0.join("state/partner.txt")).unwrap();
    assert!(
        state.contains("XYZ.12345678") && state.contains("kc20=15"),
        "{state}"
    );
}
