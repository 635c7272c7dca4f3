#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! The simulated meter answers OMS Annex N's partner messages with Annex N's answers, byte
//! for byte (CRCs left out), and refuses what it must.

use wmbus_host::encode::Description;
use wmbus_security::time::Instant;
use wmbus_sim::meter::{KeyDesc, Meter, TalkDesc};
use wmbus_testkit::{hex, to_hex, vector};

fn without_crc(id: &str) -> Vec<u8> {
    hex(vector(id)["frame_without_crc"].as_str().unwrap())
}

/// The breaker of N.12: XYZ 12345678 v55 type 20, master key 00…0F, application key 20h
/// version 0 = 08154711 × 4 (last KeyCounter 14), last C_M 2800.
fn breaker(with_app_key: bool) -> Meter {
    let desc = Description::parse(
        r#"
key = "000102030405060708090A0B0C0D0E0F"
meter = { manufacturer = "XYZ", id = "12345678", version = 0x55, device_type = 0x20 }
tpl = { security_mode = 7 }
afl = { message_counter = 2739 }
records = [{ raw = "01FD1F01" }]
"#,
    )
    .unwrap();
    let talk = TalkDesc {
        keys: if with_app_key {
            vec![KeyDesc {
                id: 0x20,
                version: 0,
                key: "08154711081547110815471108154711".into(),
                counter: 14,
            }]
        } else {
            Vec::new()
        },
        ..TalkDesc::default()
    };
    let mut m = Meter::new(&desc, &talk).unwrap();
    m.set_counter(2800);
    m
}

#[test]
fn breaker_command_answered_as_n123() {
    let mut m = breaker(true);
    let answers = m.receive(Instant(0), &without_crc("oms-annexN-N12.2-SND-UD2"));
    assert_eq!(answers.len(), 1, "{:?}", m.take_log());
    assert_eq!(
        to_hex(&answers[0]),
        to_hex(&without_crc("oms-annexN-N12.3-RSP-UD"))
    );
    assert_eq!(m.breaker, Some(0x00));
    assert!(
        m.take_log()
            .iter()
            .any(|l| l.contains("breaker disconnected"))
    );
}

#[test]
fn unknown_key_answered_as_n124() {
    let mut m = breaker(false);
    let answers = m.receive(Instant(0), &without_crc("oms-annexN-N12.2-SND-UD2"));
    assert_eq!(
        to_hex(&answers[0]),
        to_hex(&without_crc("oms-annexN-N12.4-RSP-UD"))
    );
    assert_eq!(m.breaker, None);
}

#[test]
fn a_repeated_request_is_answered_again_not_executed() {
    let mut m = breaker(true);
    let request = without_crc("oms-annexN-N12.2-SND-UD2");
    let first = m.receive(Instant(0), &request);
    m.breaker = Some(0x01);
    let again = m.receive(Instant(10), &request);
    assert_eq!(first, again);
    // Not executed a second time: the breaker stays where it was put meanwhile.
    assert_eq!(m.breaker, Some(0x01));
}

#[test]
fn replayed_and_tampered_commands_are_refused_without_detail() {
    let mut m = breaker(true);
    m.set_partner_counter(2800);
    let answers = m.receive(Instant(0), &without_crc("oms-annexN-N12.2-SND-UD2"));
    // Application error, unencrypted, access numbers echoed (N.9's shape).
    assert_eq!(answers.len(), 1);
    let a = &answers[0];
    assert_eq!(a[1], 0x08);
    assert_eq!(&a[10..13], &[0x8C, 0x80, 0x23]);
    assert_eq!(&a[13..], &[0x6E, 0x51, 0x02, 0x00, 0x00, 0x00]);
    assert!(m.take_log().iter().any(|l| l.contains("replay")));
    assert_eq!(m.breaker, None);

    let mut m = breaker(true);
    let mut tampered = without_crc("oms-annexN-N12.2-SND-UD2");
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let answers = m.receive(Instant(0), &tampered);
    assert_eq!(&answers[0][13..], &[0x6E, 0x51, 0x02, 0x00, 0x00, 0x00]);
    assert!(m.take_log().iter().any(|l| l.contains("MAC")));
    assert_eq!(m.breaker, None);
}

#[test]
fn frames_for_other_meters_are_ignored() {
    let mut m = breaker(true);
    assert!(
        m.receive(Instant(0), &without_crc("oms-annexN-N11-SND-NKE"))
            .is_empty()
    );
}
