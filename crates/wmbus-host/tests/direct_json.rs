#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `Decoder::decode_json` (common telegrams written straight from their layers) against the
//! reference, the report's JSON line: byte for byte, with two decoders fed the same
//! telegrams in the same order (replay state, fragments and the compact-format cache move
//! alike), over every telegram the test data gives; and the direct path taken where it
//! should be.

use std::path::Path;

mod common;

use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::encode::{Description, encode};
use wmbus_host::keyfile;
use wmbus_host::render::{Format, write_line};
use wmbus_host::report::{Reception, Source};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

/// Two decoders in lockstep; counts the lines written directly.
struct Pair {
    reference: Decoder,
    direct: Decoder,
    lines: usize,
    direct_lines: usize,
}

impl Pair {
    fn new(keys: MemoryKeyStore, options: DecodeOptions) -> Self {
        Self {
            reference: Decoder::new(keys.clone(), options),
            direct: Decoder::new(keys, options),
            lines: 0,
            direct_lines: 0,
        }
    }

    fn check(&mut self, now: Instant, bytes: &[u8], source: Option<Source>, rx: Reception) {
        let mut report = self.reference.decode(now, bytes);
        report.source = source.clone();
        report.reception = rx.clone();
        let mut expected = Vec::new();
        write_line(&mut expected, &report, Format::Json);
        let mut got = b"previous line\n".to_vec();
        let written = self
            .direct
            .decode_json(now, bytes, source.as_ref(), &rx, &mut got);
        assert_eq!(
            String::from_utf8_lossy(&got[14..]),
            String::from_utf8_lossy(&expected),
            "direct and report lines differ"
        );
        assert_eq!(written.decoded, report.is_decoded());
        self.lines += 1;
        self.direct_lines += usize::from(written.direct);
    }
}

/// Every telegram of every capture (twice: accepting and refusing receiver-decrypted
/// payloads); returns (lines, direct lines).
fn over_captures(dir: &Path, ext: &str, keys: &MemoryKeyStore) -> (usize, usize) {
    let (mut lines, mut direct) = (0, 0);
    for strict in [false, true] {
        for capture in common::captures(dir, ext, keys) {
            let options = DecodeOptions {
                allow_des: true,
                accept_decrypted_by_receiver: !strict,
                ..DecodeOptions::default()
            };
            let mut pair = Pair::new(capture.keys, options);
            for t in capture.telegrams {
                let now = Instant::from_secs(t.index as u64);
                pair.check(now, &t.bytes, Some(t.source), t.reception);
            }
            lines += pair.lines;
            direct += pair.direct_lines;
        }
    }
    (lines, direct)
}

#[test]
fn telegram_files_and_samples() {
    let t = wmbus_testkit::testdata();
    let (n, direct) = over_captures(&t.join("telegrams"), "txt", &MemoryKeyStore::new());
    assert!(n > 100 && direct > 50, "{n} lines, {direct} direct");
    // The samples show modes 7, 9 and 10, ELL and AFL: the report's way, mostly.
    let (n, _) = over_captures(&t.join("samples"), "txt", &common::sample_keys());
    assert!(n > 10, "{n} lines");
}

#[test]
fn vector_set() {
    let mut n = 0;
    for (description, frames) in common::vector_set() {
        let mut pair = Pair::new(common::vector_keys(&description), DecodeOptions::default());
        for (i, bytes) in frames.iter().enumerate() {
            pair.check(
                Instant::from_secs(i as u64),
                bytes,
                None,
                Reception::default(),
            );
            n += 1;
        }
    }
    assert!(n > 100, "{n}");
}

#[test]
fn fuzz_corpora() {
    let mut pair = Pair::new(MemoryKeyStore::new(), DecodeOptions::default());
    for data in common::fuzz_inputs() {
        pair.check(Instant::default(), &data, None, Reception::default());
    }
    assert!(pair.lines > 50, "{}", pair.lines);
}

/// The benchmark telegram, with its receiver context, goes the direct way and still equals
/// the reference; so do copies with every byte of the plaintext records changed.
#[test]
fn benchmark_telegram_is_direct() {
    let path = wmbus_testkit::testdata().join("bench/water-mode5.toml");
    let desc = Description::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let frame = encode(&desc).unwrap().frames.remove(0);
    let pair_keys = |desc: &Description| {
        let mut keys = MemoryKeyStore::new();
        keyfile::load_into(
            &mut keys,
            vec![
                keyfile::parse_entry(&desc.meter.id, desc.key.as_deref().unwrap(), "bench")
                    .unwrap(),
            ],
        );
        keys
    };
    let mut pair = Pair::new(
        pair_keys(&desc),
        DecodeOptions {
            replay_check: false,
            ..DecodeOptions::default()
        },
    );
    let rx = Reception {
        rssi: Some(-81.5),
        rssi_unit: Some("dBm"),
        link_mode: Some("T1".into()),
        time: Some("2026-11-28 \"10:15\"".into()),
    };
    let source = Source {
        file: Some("a \\ b.txt".into()),
        line: 12,
    };
    pair.check(Instant::default(), &frame, Some(source), rx);
    pair.check(Instant::default(), &frame, None, Reception::default());
    assert_eq!(pair.direct_lines, 2);
    // Mode 7 (AFL with CMAC and counter, KDF): direct too, replays refused alike.
    let mut m7 = desc.clone();
    m7.tpl.security_mode = 7;
    m7.afl = Some(wmbus_host::encode::AflDesc {
        message_counter: Some(1000),
        ..Default::default()
    });
    let frame7 = encode(&m7).unwrap().frames.remove(0);
    let mut pair7 = Pair::new(pair_keys(&desc), DecodeOptions::default());
    pair7.check(Instant::default(), &frame7, None, Reception::default());
    pair7.check(Instant::default(), &frame7, None, Reception::default());
    assert_eq!(pair7.direct_lines, 1, "the replay goes the report's way");
    // Plaintext variants: without a key the meter's records are read as they are.
    let mut plain_desc = desc.clone();
    plain_desc.tpl.security_mode = 0;
    plain_desc.key = None;
    if let Ok(t) = encode(&plain_desc) {
        let plain = t.frames[0].clone();
        let mut pair = Pair::new(MemoryKeyStore::new(), DecodeOptions::default());
        for i in 0..plain.len() {
            for x in [0x00u8, 0x0F, 0x2F, 0x80, 0x99, 0xFF] {
                let mut v = plain.clone();
                v[i] = x;
                pair.check(Instant::default(), &v, None, Reception::default());
            }
        }
        assert!(pair.direct_lines > 100, "{}", pair.direct_lines);
    }
}
