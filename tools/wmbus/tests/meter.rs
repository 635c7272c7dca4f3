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

use std::path::Path;

use wmbus_testkit::talk::{Sim, private_copy};

fn root() -> std::path::PathBuf {
    wmbus_testkit::testdata().join("..")
}

fn meter(sim: &Sim, keys: &Path, args: &[&str]) -> (i32, String) {
    wmbus_testkit::talk::meter(env!("CARGO_BIN_EXE_wmbus"), sim, keys, args)
}

fn sent_frames(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("sent "))
        .map(str::to_string)
        .collect()
}

#[test]
fn talking_to_simulated_meters() {
    let dir = std::env::temp_dir().join(format!("wmbus-meter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.txt");
    private_copy(&root().join("testdata/sim/talk-keys.txt"), &keys);
    let sim = Sim::start(env!("CARGO_BIN_EXE_wmbus"), &dir, "talk.toml");
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

    // Secured data with a 16-byte CMAC, and the provisional GCM, GMAC and CCM variants.
    for dsi in ["33", "34", "35", "36", "37"] {
        let (rc, out) = meter(
            &sim,
            &keys,
            &[
                &["command", "--apdu", "01FD1F01", "--dsi", dsi][..],
                &breaker[..],
            ]
            .concat(),
        );
        assert_eq!(rc, 0, "DSI {dsi}: {out}");
        assert!(out.contains("executed"), "DSI {dsi}: {out}");
    }
    assert_eq!(sim.log_count("breaker connected"), 6);
    // Keys without counters (BCF 08h).
    let (rc, out) = meter(
        &sim,
        &keys,
        &[&["keys", "--without-counters"][..], &breaker[..]].concat(),
    );
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("keys: 00h v1; 20h v0;"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other dongles that can send carry the same exchanges: a fragmented read and a SITP
/// command through an iU891A, an Amber and a CUL.
#[test]
fn other_dongles_talk_too() {
    for dongle in ["iu891a", "amb8465", "cul"] {
        let dir = std::env::temp_dir().join(format!("wmbus-meter-{dongle}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("keys.txt");
        private_copy(&root().join("testdata/sim/talk-keys.txt"), &keys);
        let sim = Sim::start_with(env!("CARGO_BIN_EXE_wmbus"), &dir, "talk.toml", dongle);
        let breaker = ["--meter", "XYZ.12345678"];
        let (rc, out) = meter(&sim, &keys, &[&["read"][..], &breaker[..]].concat());
        assert_eq!(rc, 0, "{dongle}: {out}");
        assert!(out.contains("(2 fragment(s))"), "{dongle}: {out}");
        let (rc, out) = meter(
            &sim,
            &keys,
            &[&["command", "--apdu", "01FD1F00"][..], &breaker[..]].concat(),
        );
        assert_eq!(rc, 0, "{dongle}: {out}");
        sim.expect_log("breaker disconnected");
        drop(sim);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
