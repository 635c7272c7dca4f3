//! Decoding benchmarks: `cargo bench -p wmbus-host --bench decode`. docs/PERFORMANCE.md has the
//! figures and the machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::std_instead_of_core,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wmbus_frame::apl::{Item, Records};
use wmbus_frame::dll::MAX_RAW_FRAME_LEN;
use wmbus_frame::frame::{Frame, normalize};
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::encode::{Description, encode};
use wmbus_host::keyfile;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::receiver::{Receiver, ReceiverOptions};
use wmbus_security::time::Instant;

fn telegram(file: &str, patch: impl FnOnce(&mut Description)) -> (Vec<u8>, MemoryKeyStore) {
    let path = format!("{}/../../testdata/bench/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut desc = Description::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    patch(&mut desc);
    let frame = encode(&desc).unwrap().frames.remove(0);
    let mut keys = MemoryKeyStore::new();
    keyfile::load_into(
        &mut keys,
        vec![keyfile::parse_entry(&desc.meter.id, desc.key.as_deref().unwrap(), "bench").unwrap()],
    );
    (frame, keys)
}

/// Parse, open and decode every record's value, as a library user would.
fn library(rx: &mut Receiver<MemoryKeyStore>, input: &[u8], plain: &mut Vec<u8>) -> usize {
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let n = normalize(input, None, &mut buf).unwrap();
    let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
    let o = rx.open(Instant::default(), &frame, plain);
    assert!(o.result.is_released());
    let mut count = 0;
    for item in Records::new(&plain[o.application.clone()], 0) {
        if let Ok(Item::Record(r)) = item {
            black_box(r.value());
            black_box(r.describe());
            count += 1;
        }
    }
    count
}

fn benches(c: &mut Criterion) {
    let no_replay = ReceiverOptions {
        replay_check: false,
        ..ReceiverOptions::default()
    };
    let (m5, keys5) = telegram("water-mode5.toml", |_| {});
    let (m7, keys7) = telegram("water-mode5.toml", |d| {
        d.tpl.security_mode = 7;
        d.afl = Some(wmbus_host::encode::AflDesc {
            message_counter: Some(1000),
            ..Default::default()
        });
    });
    let (m10, keys10) = telegram("water-mode5.toml", |d| {
        d.tpl.security_mode = 10;
        d.tpl.counter = Some(1000);
    });
    let (ell, keys_ell) = telegram("water-mode5.toml", |d| {
        d.tpl.security_mode = 0;
        d.ell = Some(wmbus_host::encode::EllDesc {
            communication_control: 0x20,
            encrypt: true,
            ..Default::default()
        });
    });
    eprintln!("mode 5 telegram: {} bytes", m5.len());

    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("normalize_and_parse", |b| {
        b.iter(|| {
            let mut buf = [0u8; MAX_RAW_FRAME_LEN];
            let n = normalize(black_box(&m5), None, &mut buf).unwrap();
            black_box(
                Frame::parse(&buf[..n.len], n.format)
                    .unwrap()
                    .repr
                    .transport
                    .payload
                    .len(),
            )
        });
    });
    let mut rx = Receiver::new(keys5.clone(), no_replay);
    let mut plain = Vec::new();
    library(&mut rx, &m5, &mut plain);
    let apl = plain.clone();
    g.bench_function("records", |b| {
        b.iter(|| {
            let mut n = 0;
            for item in Records::new(black_box(&apl[5..]), 0) {
                if let Ok(Item::Record(r)) = item {
                    black_box(r.value());
                    black_box(r.describe());
                    n += 1;
                }
            }
            n
        });
    });
    g.finish();

    let mut g = c.benchmark_group("library");
    g.throughput(Throughput::Elements(1));
    for (name, t, keys) in [
        ("mode5", &m5, &keys5),
        ("mode7", &m7, &keys7),
        ("mode10", &m10, &keys10),
        ("ell_ctr", &ell, &keys_ell),
    ] {
        let mut rx = Receiver::new(keys.clone(), no_replay);
        let mut plain = Vec::with_capacity(256);
        g.bench_function(format!("parse_open_records_{name}"), |b| {
            b.iter(|| library(&mut rx, black_box(t), &mut plain))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("host");
    g.throughput(Throughput::Elements(1));
    let mut d = Decoder::new(
        keys5.clone(),
        DecodeOptions {
            replay_check: false,
            ..DecodeOptions::default()
        },
    );
    g.bench_function("decode_report_mode5", |b| {
        b.iter(|| black_box(d.decode(Instant::default(), black_box(&m5))))
    });
    let report = d.decode(Instant::default(), &m5);
    let mut out = Vec::with_capacity(4096);
    g.bench_function("report_json", |b| {
        b.iter(|| {
            out.clear();
            wmbus_host::render::write_line(
                &mut out,
                black_box(&report),
                wmbus_host::render::Format::Json,
            );
            out.len()
        });
    });
    g.bench_function("report_json_serde", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&report)).unwrap();
            out.len()
        });
    });
    // What `wmbus decode --format json` does per line: the direct line, layout learned.
    let source = wmbus_host::report::Source {
        file: Some("capture.txt".into()),
        line: 1,
    };
    let reception = wmbus_host::report::Reception::default();
    g.bench_function("decode_json_mode5", |b| {
        b.iter(|| {
            out.clear();
            let w = d.decode_json(
                Instant::default(),
                black_box(&m5),
                Some(&source),
                &reception,
                &mut out,
            );
            assert!(w.direct);
            out.len()
        });
    });
    g.finish();
}

criterion_group! {
    name = decode;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = benches
}
criterion_main!(decode);
