#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! The partner's messages built from their inputs (addresses, access numbers, counter, key,
//! RSSI) and compared byte for byte with OMS Annex N (CRCs left out), and the meters' answers
//! matched by the exchange engine.

use wmbus_frame::codepoints::MeterAddress;
use wmbus_frame::dll::FrameFormat;
use wmbus_frame::frame::{Frame, normalize};
use wmbus_host::partner::{Partner, Security, Session, sitp_blocks};
use wmbus_security::exchange::{Exchange, Expect, Handled, Policy, Window};
use wmbus_security::key::Key;
use wmbus_security::time::Instant;
use wmbus_testkit::{hex, to_hex, vector};

fn without_crc(id: &str) -> String {
    vector(id)["frame_without_crc"]
        .as_str()
        .unwrap()
        .to_string()
}

fn link_address(id: &str) -> MeterAddress {
    let b = hex(&without_crc(id));
    MeterAddress::from_link_bytes(b[2..10].try_into().unwrap())
}

fn meter_of(id: &str) -> MeterAddress {
    let b = hex(&without_crc(id));
    let mut buf = [0u8; 300];
    let n = normalize(&b, None, &mut buf).unwrap();
    Frame::parse(&buf[..n.len], n.format)
        .unwrap()
        .meter()
        .unwrap()
}

/// A partner whose next request uses these access numbers and counter.
fn partner(id: &str, meter: &MeterAddress, ell: u8, tpl: u8, counter: u32, fcb: bool) -> Partner {
    let mut p = Partner::new(link_address(id));
    p.set_session(
        meter,
        Session {
            ell_access_number: ell.wrapping_sub(1),
            tpl_access_number: tpl.wrapping_sub(1),
            counter: counter.wrapping_sub(1),
            frame_count_bit: fcb,
        },
    );
    p
}

#[test]
fn sitp_breaker_command_n122() {
    let id = "oms-annexN-N12.2-SND-UD2";
    let meter = meter_of(id);
    let mut p = partner(id, &meter, 0x23, 0x51, 2800, false);
    let mk = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
    let blocks = hex("1C000020003220000F00000000000000300101FD1F00FA41E2812D449B4D");
    let r = p.sitp(&meter, &mk, &blocks, Some(-66.0)).unwrap();
    assert_eq!(to_hex(&r.bytes), without_crc(id));
    assert_eq!(
        r.expect,
        Expect::Answer {
            access_number: Some(0x51),
            ell_access_number: Some(0x23)
        }
    );
    // The session moved on: the next command uses new access numbers and counter 2801.
    assert_eq!(p.session(&meter).counter, 2800);
    let next = p.sitp(&meter, &mk, &blocks, Some(-66.0)).unwrap();
    assert_ne!(next.bytes, r.bytes);
    assert_eq!(p.session(&meter).counter, 2801);
}

#[test]
fn clock_command_mode5_n82() {
    let id = "oms-annexN-N8.2-SND-UD";
    let meter = meter_of(id);
    let mut p = partner(id, &meter, 0x51, 0x7D, 1, false);
    let key = Key::from_hex("82B0551191F51D66EFCDAB8967452301").unwrap();
    let r = p
        .command(
            &meter,
            0x6C,
            &hex("01320100000000000000"),
            Security::Mode5,
            Some(&key),
            None,
        )
        .unwrap();
    assert_eq!(to_hex(&r.bytes), without_crc(id));
}

#[test]
fn link_reset_n11() {
    let id = "oms-annexN-N11-SND-NKE";
    let meter = meter_of(id);
    let mut p = partner(id, &meter, 0x32, 0x03, 1, false);
    let r = p.reset_link(&meter, Some(-66.0)).unwrap();
    assert_eq!(to_hex(&r.bytes), without_crc(id));
}

#[test]
fn installation_confirmed_n7() {
    let ir = hex(&without_crc("oms-annexN-N7-SND-IR"));
    let mut buf = [0u8; 300];
    let n = normalize(&ir, None, &mut buf).unwrap();
    let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
    let p = Partner::new(link_address("oms-annexN-N7-CNF-IR"));
    let r = p.confirm_installation(&frame, Some(-80.0)).unwrap();
    assert_eq!(to_hex(&r.bytes), without_crc("oms-annexN-N7-CNF-IR"));
    assert_eq!(r.expect, Expect::Nothing);
}

#[test]
fn access_demand_acknowledged_n10() {
    let demand = hex(&without_crc("oms-annexN-N10-ACC-DMD"));
    let frame = Frame::parse(&demand, FrameFormat::NoCrc).unwrap();
    assert!(wmbus_security::exchange::opens_window(&frame));
    let p = Partner::new(link_address("oms-annexN-N10-ACK"));
    let r = p.acknowledge(&frame, Some(-84.0)).unwrap();
    assert_eq!(to_hex(&r.bytes), without_crc("oms-annexN-N10-ACK"));
}

/// N.3: REQ-UD2 for fragment 1 (ELL I + TPL 80h), then for fragments 2 and 3 (ELL III
/// with the meter's address, new ELL access numbers, no TPL), FCB alternating; each answer
/// is matched by the exchange engine, the next fragment's request is not confused with it.
#[test]
fn fragmented_read_requests_n3() {
    let first = "oms-annexN-N3.3-REQ-UD2-fragment1";
    let meter = meter_of(first);
    let mut p = partner(first, &meter, 0x11, 0x05, 1, false);
    let policy = Policy {
        window: Window::Always,
        ..Policy::default()
    };
    let mut x = Exchange::new(meter, policy);
    for (n, (req, rsp)) in [
        (
            "oms-annexN-N3.3-REQ-UD2-fragment1",
            "oms-annexN-N3.3-RSP-UD-fragment1",
        ),
        (
            "oms-annexN-N3.4-REQ-UD2-fragment2",
            "oms-annexN-N3.4-RSP-UD-fragment2",
        ),
        (
            "oms-annexN-N3.5-REQ-UD2-fragment3",
            "oms-annexN-N3.5-RSP-UD-fragment3",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let r = p.request_data(&meter, Some(-84.0), n > 0).unwrap();
        assert_eq!(to_hex(&r.bytes), without_crc(req), "{req}");
        x.request(Instant(0), r.bytes.clone(), r.expect);
        assert_eq!(
            x.poll(Instant(0)),
            wmbus_security::exchange::Action::Transmit(r.bytes)
        );
        let answer = hex(&without_crc(rsp));
        let frame = Frame::parse(&answer, FrameFormat::NoCrc).unwrap();
        assert!(
            matches!(x.handle(Instant(1), &frame), Handled::Answer(_)),
            "{rsp}"
        );
        // The previous fragment's answer would not have matched this request.
        if n > 0 {
            let r2 = p.request_data(&meter, Some(-84.0), true).unwrap();
            x.request(Instant(2), r2.bytes, r2.expect);
            x.poll(Instant(2));
            assert_eq!(x.handle(Instant(3), &frame), Handled::Window);
            // Undo the extra request for the next round.
            let mut s = p.session(&meter);
            s.ell_access_number -= 1;
            s.frame_count_bit = !s.frame_count_bit;
            p.set_session(&meter, s);
        }
    }
}

#[test]
fn answers_parse_as_sitp_blocks() {
    // N.12.3 and N.12.4 plaintext APLs: the echoed secured data, and status 19h.
    let ok = sitp_blocks(&hex(
        "2F2F1C0000A0003220000F00000000000000300101FD1F00FA41E2812D449B4D",
    ))
    .unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].control.0, 0xA0);
    assert_eq!(ok[0].data_info.0, 0x32);
    // The receiver strips mode 7's P padding (05 × 5 here) before the blocks are read.
    let err = sitp_blocks(&hex("2F2F070000A00022200019")).unwrap();
    assert_eq!(err[0].data_info.0, 0x22);
    assert_eq!(err[0].data, vec![0x19]);
}

/// N.12.2's secured-data block from its inputs: key 20h version 0, KeyCounter 15,
/// TargetTime immediate, PID 01, APDU 01FD1F00 (disconnect), CMAC-8 FA41E2812D449B4D.
#[test]
fn secured_data_block_n122() {
    let key = Key::from_hex("08154711081547110815471108154711").unwrap();
    let block =
        wmbus_host::partner::secured_data_block(0, 0x20, 0x00, &key, 15, &hex("01FD1F00")).unwrap();
    assert_eq!(
        to_hex(&block),
        "1C000020003220000F00000000000000300101FD1F00FA41E2812D449B4D"
    );
}

#[test]
fn key_rotation_blocks_parse_back() {
    let new = Key::new([0x5A; 16]);
    let blocks = wmbus_host::partner::key_rotation_blocks(0, 0, 1, &new, None).unwrap();
    let list = sitp_blocks(&blocks).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].control.0, list[0].data_info.0), (0x00, 0x01));
    assert_eq!((list[1].control.0, list[1].data_info.0), (0x04, 0x03));
    // BL 26h for the key transfer, as F.E.1 gives it.
    assert_eq!(&blocks[..2], &[0x26, 0x00]);
    let t = wmbus_security::sitp::KeyTransfer::parse(
        &wmbus_security::sitp::unwrap(None, &list[0].data).unwrap(),
    )
    .unwrap();
    assert_eq!((t.key_id, t.key_version), (0, 1));
    assert_eq!(t.key, new);
}
