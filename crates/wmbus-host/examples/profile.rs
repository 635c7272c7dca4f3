//! Runs one stage many times for a profiler: `cargo run --release -p wmbus-host --example
//! profile -- <parse|open|walk|library|report|json> <iterations>` (docs/PERFORMANCE.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::std_instead_of_core,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use wmbus_frame::apl::{Item, Records};
use wmbus_frame::dll::MAX_RAW_FRAME_LEN;
use wmbus_frame::frame::{Frame, normalize};
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::encode::{Description, encode};
use wmbus_host::keyfile;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::receiver::{Receiver, ReceiverOptions};
use wmbus_security::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let stage = args.next().unwrap_or_else(|| "library".into());
    let n: usize = args.next().map_or(100_000, |s| s.parse().unwrap());
    let path = format!(
        "{}/../../testdata/bench/water-mode5.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let desc = Description::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t = encode(&desc).unwrap().frames.remove(0);
    let mut keys = MemoryKeyStore::new();
    keyfile::load_into(
        &mut keys,
        vec![keyfile::parse_entry(&desc.meter.id, desc.key.as_deref().unwrap(), "p").unwrap()],
    );
    if stage == "sizes" {
        eprintln!(
            "Record {} Item {} Option<Result<Item>> {} Error {} Description {} Value {}",
            size_of::<wmbus_frame::apl::Record<'_>>(),
            size_of::<Item<'_>>(),
            size_of::<Option<wmbus_frame::Result<Item<'_>>>>(),
            size_of::<wmbus_frame::Error>(),
            size_of::<wmbus_frame::apl::vib::Description>(),
            size_of::<wmbus_frame::apl::value::Value<'_>>()
        );
        return;
    }
    let start = std::time::Instant::now();
    match stage.as_str() {
        "parse" | "parse-nocrc" | "open" | "walk" | "library" => {
            let mut rx = Receiver::new(
                keys,
                ReceiverOptions {
                    replay_check: false,
                    ..ReceiverOptions::default()
                },
            );
            let mut plain = Vec::with_capacity(256);
            for _ in 0..n {
                let mut buf = [0u8; MAX_RAW_FRAME_LEN];
                let hint = if stage == "parse-nocrc" {
                    Some(wmbus_frame::dll::FrameFormat::NoCrc)
                } else {
                    None
                };
                let m = normalize(black_box(&t), hint, &mut buf).unwrap();
                let frame = Frame::parse(&buf[..m.len], m.format).unwrap();
                if stage.starts_with("parse") {
                    black_box(&frame);
                    continue;
                }
                let o = rx.open(Instant::default(), &frame, &mut plain);
                if stage == "open" {
                    black_box(&o);
                    continue;
                }
                for item in Records::new(&plain[o.application.clone()], 0) {
                    if let Ok(Item::Record(r)) = item {
                        if stage == "library" {
                            black_box(r.value());
                        }
                        black_box(r.describe());
                    }
                }
            }
        }
        "report" | "json" => {
            let mut d = Decoder::new(
                keys,
                DecodeOptions {
                    replay_check: false,
                    ..DecodeOptions::default()
                },
            );
            let mut out = Vec::with_capacity(4096);
            for _ in 0..n {
                let r = d.decode(Instant::default(), black_box(&t));
                if stage == "json" {
                    out.clear();
                    wmbus_host::render::write(&mut out, &r, wmbus_host::render::Format::Json)
                        .unwrap();
                }
                black_box(&out);
            }
        }
        other => panic!("unknown stage {other}"),
    }
    let e = start.elapsed();
    eprintln!(
        "{stage}: {n} in {e:?}: {:.0} ns each",
        e.as_nanos() as f64 / n as f64
    );
}
