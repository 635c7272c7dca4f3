#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Every device kind: a transcript of what the device prints (its answers to the host's init
//! dialogue, telegrams, garbage between them), fed to the host engine split at arbitrary
//! positions, gives the same telegrams and the same discarded bytes; the host's init
//! dialogue is answered step by step by the device engine.

use proptest::prelude::*;
use wmbus_dongle::{Event, Indication, Kind, LinkMode};

/// Public example telegrams (testdata/telegrams), L-field first, no CRCs.
fn telegrams() -> Vec<Vec<u8>> {
    [
        "1844AE4C4455223368077A55000000041389E20100023B0000",
        "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3",
        "3644496A0228004401377232597049496A01073500202518AC74B56F3119F53981507265B808AF7D423C429550112536BDD6F25BBB63D9",
        "2A442D2C998734761B168D2091D37CAC21E1D68CDAFFCD3DC452BD802913FF7B1706CA9E355D6C2701CC24",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

/// Garbage a device may emit between frames that no framer can take for a frame start, and
/// how many of its bytes the host reports discarded (line ends are not).
fn garbage(kind: Kind) -> (Vec<u8>, usize) {
    match kind {
        Kind::Cul | Kind::RtlWmbus | Kind::Rtl433 => (b"\x00garbage\xFF line\n".to_vec(), 14),
        Kind::AmberTransparent | Kind::Rc1180 => (vec![0x00, 0x01, 0x02, 0x05], 4),
        _ => (vec![0x00, 0x11, 0x22, 0x33, 0x44], 5),
    }
}

fn mode(kind: Kind) -> LinkMode {
    match kind {
        Kind::Cul | Kind::Rc1180 => LinkMode::T1,
        _ => LinkMode::C1T1,
    }
}

/// The device's output: answers to init, then telegrams with garbage before each.
fn transcript(kind: Kind) -> (Vec<u8>, usize, usize) {
    let mut device = kind.device();
    let host = kind.host();
    let mut out = Vec::new();
    let mut replies = 0;
    for step in host.init(mode(kind)).unwrap() {
        device.push(&step.write);
        while let Some(answer) = device.poll() {
            out.extend_from_slice(&answer);
            replies += 1;
        }
    }
    let mut garbage_bytes = 0;
    for (i, t) in telegrams().iter().enumerate() {
        let (g, counted) = garbage(kind);
        garbage_bytes += counted;
        out.extend_from_slice(&g);
        let bytes = device
            .indicate(&Indication {
                telegram: t,
                rssi_dbm: -70.0 - i as f32,
                time_ms: 1000 * i as u64,
                link_mode: LinkMode::T1,
            })
            .unwrap();
        out.extend_from_slice(&bytes);
    }
    (out, replies, garbage_bytes)
}

fn run(kind: Kind, bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, usize, usize) {
    let mut host = kind.host();
    let mut telegrams = Vec::new();
    let mut discarded = 0;
    let mut replies = 0;
    let mut drain = |host: &mut Box<dyn wmbus_dongle::Host>| {
        while let Some(e) = host.poll(0) {
            match e {
                Event::Telegram(r) => telegrams.push(r.telegram),
                Event::Discarded { bytes, .. } => discarded += bytes.len(),
                Event::Reply(_) => replies += 1,
            }
        }
    };
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for p in points {
        host.push(&bytes[start..p.max(start)]);
        start = p.max(start);
        drain(&mut host);
    }
    (telegrams, discarded, replies)
}

#[test]
fn every_kind_whole() {
    for kind in Kind::ALL {
        let (bytes, replies, garbage) = transcript(kind);
        let (got, discarded, got_replies) = run(kind, &bytes, &[]);
        assert_eq!(got, telegrams(), "{kind}");
        assert_eq!(discarded, garbage, "{kind}: discarded bytes");
        assert_eq!(got_replies, replies, "{kind}: replies");
    }
}

#[test]
fn every_kind_byte_by_byte() {
    for kind in Kind::ALL {
        let (bytes, replies, garbage) = transcript(kind);
        let cuts: Vec<usize> = (0..bytes.len()).collect();
        let (got, discarded, got_replies) = run(kind, &bytes, &cuts);
        assert_eq!(got, telegrams(), "{kind}");
        assert_eq!(discarded, garbage, "{kind}");
        assert_eq!(got_replies, replies, "{kind}");
    }
}

/// The init dialogue completes: every step that expects a reply gets it from the device.
#[test]
fn init_dialogues_complete() {
    for kind in Kind::ALL {
        let mut device = kind.device();
        let mut host = kind.host();
        for step in host.init(mode(kind)).unwrap() {
            device.push(&step.write);
            while let Some(answer) = device.poll() {
                host.push(&answer);
            }
            let mut codes = Vec::new();
            while let Some(e) = host.poll(0) {
                if let Event::Reply(r) = e {
                    codes.push(r.code);
                }
            }
            if let Some(code) = step.expect {
                assert!(
                    codes.contains(&code),
                    "{kind}: step {} got {codes:?}",
                    step.name
                );
            }
        }
        if !matches!(kind, Kind::RtlWmbus | Kind::Rtl433) {
            assert!(device.link_mode().is_some(), "{kind}: mode set");
        }
    }
}

/// Sending: the device receives exactly the telegram the host asked to send.
#[test]
fn transmit_reaches_the_device() {
    let t = telegrams()[0].clone();
    for kind in Kind::ALL {
        let host = kind.host();
        let Ok(steps) = host.transmit(&t, LinkMode::T1, LinkMode::T1) else {
            continue;
        };
        let mut device = kind.device();
        for s in steps {
            device.push(&s.write);
            while device.poll().is_some() {}
        }
        assert_eq!(device.take_transmitted(), vec![t.clone()], "{kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Split at random positions, with random garbage-free cut patterns.
    #[test]
    fn every_kind_split_anywhere(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
        for kind in Kind::ALL {
            let (bytes, _, garbage) = transcript(kind);
            let (got, discarded, _) = run(kind, &bytes, &cuts);
            prop_assert_eq!(&got, &telegrams(), "{}", kind);
            prop_assert_eq!(discarded, garbage, "{}", kind);
        }
    }

    /// Arbitrary bytes never panic a host engine and never stop it: a valid transcript after
    /// them still yields its telegrams.
    #[test]
    fn hostile_bytes_then_recovery(noise in proptest::collection::vec(any::<u8>(), 0..600)) {
        for kind in Kind::ALL {
            let mut host = kind.host();
            host.push(&noise);
            while host.poll(0).is_some() {}
            // A long silence lets unframed protocols drop a partial frame; lines end.
            host.push(b"\r\n");
            while host.poll(10_000).is_some() {}
            while host.poll(20_000).is_some() {}
            // Twice: an HCI v1 frame header in the noise may declare no FCS and swallow up to
            // 264 bytes of what follows (the format cannot tell); the second copy is past it.
            let (bytes, _, _) = transcript(kind);
            host.push(&bytes);
            host.push(&bytes);
            let mut last = None;
            while let Some(e) = host.poll(20_000) {
                if let Event::Telegram(r) = e {
                    last = Some(r.telegram);
                }
            }
            prop_assert_eq!(last, telegrams().last().cloned(), "{}", kind);
        }
    }
}
