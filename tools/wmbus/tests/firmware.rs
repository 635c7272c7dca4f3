#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `wmbus meter firmware` against the simulated meters of `testdata/sim/firmware.toml`
//! through `wmbus simulate`'s iM871A on a real pseudo-terminal: a 64 KiB image with 5 % of
//! its blocks lost on air, recovered, validated and activated; an image corrupted in the
//! meter's store refused at validation; a transfer interrupted (the tool killed, and the
//! meter losing power) and resumed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use wmbus_testkit::talk::{Sim, private_copy};

const EXE: &str = env!("CARGO_BIN_EXE_wmbus");

/// A deterministic image of `len` bytes.
fn image(dir: &Path, name: &str, len: usize, seed: u32) -> std::path::PathBuf {
    let mut x = seed;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn firmware(sim: &Sim, keys: &Path, image: &Path, meter: &str) -> (i32, String) {
    wmbus_testkit::talk::meter(
        EXE,
        sim,
        keys,
        &["firmware", image.to_str().unwrap(), "--meter", meter],
    )
}

#[test]
fn software_updates() {
    let dir = std::env::temp_dir().join(format!("wmbus-firmware-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.txt");
    private_copy(
        &wmbus_testkit::testdata().join("sim/firmware-keys.txt"),
        &keys,
    );
    let sim = Sim::start(EXE, &dir, "firmware.toml");

    // 64 KiB, 5 % of the blocks lost on air: Completion finds them, they go again.
    let big = image(&dir, "big.bin", 64 * 1024, 1);
    let (rc, out) = firmware(&sim, &keys, &big, "KAM.44556677");
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("345 blocks of 190"), "{out}");
    assert!(out.contains("block(s) lost: sending them again"), "{out}");
    assert!(out.contains("state validation_successful"), "{out}");
    assert!(out.contains("state activation_successful"), "{out}");
    assert!(out.contains("active on KAM.44556677"), "{out}");
    sim.expect_log("meter KAM.44556677: image valid (MAC matches)");
    sim.expect_log("meter KAM.44556677: image activated, firmware version 2");
    assert!(sim.log_count("meter KAM.44556677: block lost on air") >= 5);
    assert!(!big.with_extension("bin.transfer").exists());

    // A block corrupted in the meter's store: refused at validation, then terminated.
    let small = image(&dir, "small.bin", 4 * 1024, 2);
    let (rc, out) = firmware(&sim, &keys, &small, "KAM.44556678");
    assert_eq!(rc, 1, "{out}");
    assert!(out.contains("state validation_failed"), "{out}");
    assert!(
        out.contains("failed: validation failed: the image does not match its MAC"),
        "{out}"
    );
    sim.expect_log("meter KAM.44556678: image refused at validation: MAC mismatch");
    sim.expect_log("meter KAM.44556678: image transfer terminated");

    // Interrupted: the tool is killed a third of the way in, started again, and resumes
    // from what the meter has (which lost power meanwhile, keeping its store).
    let mid = image(&dir, "mid.bin", 24 * 1024, 3);
    let mut child = Command::new(EXE)
        .args(["meter", "firmware", mid.to_str().unwrap()])
        .args([
            "--meter",
            "KAM.44556679",
            "--dongle",
            "im871a",
            "--wait",
            "15s",
        ])
        .arg("--device")
        .arg(&sim.tty)
        .arg("--keys")
        .arg(&keys)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        first.push_str(&line);
        first.push('\n');
        if let Some(rest) = line.trim().strip_prefix("blocks ") {
            let done: usize = rest.split('/').next().unwrap().parse().unwrap();
            if done >= 43 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mid.with_extension("bin.transfer").exists(), "{first}");
    let (rc, out) = firmware(&sim, &keys, &mid, "KAM.44556679");
    assert_eq!(rc, 0, "first run:\n{first}\nsecond run:\n{out}");
    assert!(out.contains("resuming the transfer"), "{out}");
    let sent: usize = out
        .lines()
        .find_map(|l| {
            l.split("; ")
                .nth(1)?
                .strip_suffix(" blocks sent for 130")
                .map(|n| n.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(sent < 130, "the second run sent {sent} of 130 blocks");
    sim.expect_log("meter KAM.44556679: power lost (fault)");
    sim.expect_log("meter KAM.44556679: image activated, firmware version 2");
    let _ = std::fs::remove_dir_all(&dir);
}
