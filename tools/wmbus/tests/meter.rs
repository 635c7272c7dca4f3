#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `wmbus meter` against the simulated bidirectional meters of `testdata/sim/talk.toml`,
//! through `wmbus simulate`'s iM871A on a real pseudo-terminal: installation, a SITP
//! command and its answer, a fragmented read, a lost answer retried, a replayed and a
//! tampered command refused, and a key rotation after which only the new key decrypts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Sim {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    tty: PathBuf,
}

impl Sim {
    fn start(dir: &Path) -> Self {
        let tty = dir.join("tty");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wmbus"))
            .args(["simulate", "--dongle", "im871a", "--duration", "300"])
            .arg("--meters")
            .arg(root().join("testdata/sim/talk.toml"))
            .arg("--link")
            .arg(&tty)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log, tty }
    }

    /// Waits up to 5 s for a log line containing `text`.
    fn expect_log(&self, text: &str) {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no log line with {text:?}: {:#?}", self.log.lock().unwrap());
    }

    fn log_count(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `wmbus meter ARGS`; returns exit status and stdout.
fn meter(sim: &Sim, keys: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wmbus"))
        .arg("meter")
        .args(args)
        .arg("--device")
        .arg(&sim.tty)
        .args(["--dongle", "im871a", "--wait", "15s"])
        .arg("--keys")
        .arg(keys)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!(
        "wmbus meter {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn sent_frames(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sent "))
        .map(str::to_string)
        .collect()
}

fn private_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn talking_to_simulated_meters() {
    let dir = std::env::temp_dir().join(format!("wmbus-meter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.txt");
    private_copy(&root().join("testdata/sim/talk-keys.txt"), &keys);
    let sim = Sim::start(&dir);
    let breaker = ["--meter", "XYZ.12345678"];

    // Installation: SND-IR, CNF-IR, then the meter's SND-NR.
    let (rc, out) = meter(&sim, &keys, &["install", "--meter", "ELS.87654321"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("installed"), "{out}");
    sim.expect_log("meter ELS.87654321: installation confirmed");

    // A lost answer: the gas meter's first answer is lost; the read is tried again in its
    // next window with the same bytes, answered again and not executed twice.
    let (rc, out) = meter(&sim, &keys, &["read", "--meter", "ELS.87654321", "-v"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("(try 2)"), "{out}");
    let sent = sent_frames(&out);
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0], sent[1],
        "a retry repeats the request byte for byte"
    );
    assert!(out.contains("28504.27 m3"), "{out}");
    sim.expect_log("meter ELS.87654321: answer lost on air");
    sim.expect_log("same answer, not executed twice");

    // A SITP command and its answer (the KeyCounter is learnt from the meter first).
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["command", "--apdu", "01FD1F00", "-v"][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("executed"), "{out}");
    sim.expect_log("breaker disconnected");
    let disconnect = sent_frames(&out).last().unwrap().clone();
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["command", "--apdu", "01FD1F01", "-v"][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 0, "{out}");
    sim.expect_log("breaker connected");
    let connect = sent_frames(&out).last().unwrap().clone();

    // The earlier command replayed: refused, not executed.
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["send", &disconnect][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("refused"), "{out}");
    sim.expect_log("(replay)");
    assert_eq!(sim.log_count("breaker disconnected"), 1);

    // The last command with one ciphertext bit flipped: refused.
    let mut tampered = hex::decode(&connect).unwrap();
    let n = tampered.len();
    tampered[n - 3] ^= 0x01;
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["send", &hex::encode_upper(&tampered)][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("refused"), "{out}");
    sim.expect_log("AFL MAC does not verify");
    assert_eq!(sim.log_count("breaker connected"), 1);

    // A fragmented read.
    let (rc, out) = meter(&sim, &keys, &[&["read"][..], &breaker[..]].concat());
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("(2 fragment(s))"), "{out}");
    assert!(
        out.contains("411.979 m3") && out.contains("340.5 m3  [storage 7]"),
        "{out}"
    );

    // Key rotation: the key file changes only after the meter confirms; then the new key
    // decrypts the meter's answers and the old one no longer does.
    let old = dir.join("old-keys.txt");
    private_copy(&keys, &old);
    let (rc, out) = meter(&sim, &keys, &[&["rotate-key"][..], &breaker[..]].concat());
    assert_eq!(rc, 0, "{out}");
    sim.expect_log("meter XYZ.12345678: key 00h version 1 active, counters reset");
    let text = std::fs::read_to_string(&keys).unwrap();
    assert_ne!(text, std::fs::read_to_string(&old).unwrap());
    assert!(text.contains("version=1"), "{text}");
    let (rc, out) = meter(&sim, &keys, &[&["read"][..], &breaker[..]].concat());
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("ok (authenticated)"), "{out}");
    let (rc, out) = meter(
        &sim,
        &old,
        &[
            &["read", "--state"][..],
            &[dir.join("keys.txt.partner").to_str().unwrap()][..],
            &breaker[..],
        ]
        .concat(),
    );
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("authentication_failed"), "{out}");
    // And the breaker still takes commands under the new master key.
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["command", "--apdu", "01FD1F00"][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 0, "{out}");
    assert_eq!(sim.log_count("breaker disconnected"), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
