#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]

//! Known-answer telegrams from OMS Vol2 Annex N, CEN/TR 17167 and the peers' public test
//! suites (testdata/kat/, sources in each record): headers read byte for byte, and emitted
//! back to the same bytes.

use serde_json::Value;
use wmbus_frame::dll::{FrameFormat, MAX_RAW_FRAME_LEN};
use wmbus_frame::frame::{Frame, normalize};
use wmbus_testkit::{hex, hex_field, kat_vectors, oms_vectors, to_hex};

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} in {v}"))
}

/// Parses `input` with format detection and checks the round trip in both directions.
fn round_trip(id: &str, input: &[u8], expected_format: FrameFormat, without_crc: Option<&[u8]>) {
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let n = normalize(input, None, &mut buf).unwrap_or_else(|e| panic!("{id}: {e}"));
    let (format, len) = (n.format, n.len);
    let input = &input[..input.len() - n.trailing];
    assert_eq!(format, expected_format, "{id}");
    let normalised = &buf[..len];
    if let Some(w) = without_crc {
        assert_eq!(to_hex(normalised), to_hex(w), "{id}: CRCs stripped");
    }
    let frame = Frame::parse(normalised, format).unwrap_or_else(|e| panic!("{id}: {e}"));
    let mut out = [0xA5u8; MAX_RAW_FRAME_LEN];
    let n = frame.repr.emit_on_air(format, &mut out).unwrap();
    assert_eq!(to_hex(&out[..n]), to_hex(input), "{id}: emit on air");
    let n = frame.repr.emit(&mut out).unwrap();
    assert_eq!(
        to_hex(&out[..n]),
        to_hex(normalised),
        "{id}: emit normalised"
    );
    // Without CRCs, the same frame is recognised as such.
    if format == FrameFormat::A {
        let n2 = normalize(normalised, None, &mut out).unwrap();
        assert_eq!(n2.format, FrameFormat::NoCrc, "{id}");
    }
}

fn parse_normalised<'a>(input: &[u8], buf: &'a mut [u8]) -> (FrameFormat, Frame<'a>) {
    let n = normalize(input, None, buf).unwrap();
    let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
    (n.format, frame)
}

#[test]
fn oms_annex_n_datagrams() {
    let mut count = 0;
    for v in oms_vectors() {
        let id = s(&v, "id");
        if v.get("kind").and_then(Value::as_str) != Some("datagram") {
            continue;
        }
        count += 1;
        let (input, format) = match s(&v, "frame_format") {
            "A" => (hex_field(&v, "frame_with_crc").unwrap(), FrameFormat::A),
            _ => (
                hex_field(&v, "frame_without_crc").unwrap(),
                FrameFormat::Wired,
            ),
        };
        let without =
            (format == FrameFormat::A).then(|| hex_field(&v, "frame_without_crc").unwrap());
        round_trip(id, &input, format, without.as_deref());

        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let (_, frame) = parse_normalised(&input, &mut buf);
        check_headers(id, &v, &frame);
    }
    assert_eq!(count, 42, "every Annex N datagram");
}

fn check_headers(id: &str, v: &Value, frame: &Frame<'_>) {
    let r = &frame.repr;
    let dll = &v["dll"];
    assert_eq!(
        format!("{:02X}", r.link.control().0),
        s(v, "c_field"),
        "{id} C"
    );
    if let Some(m) = dll.get("m_field").and_then(Value::as_str) {
        let a = r.link.address().unwrap();
        assert_eq!(to_hex(&a.manufacturer.to_bytes()), m, "{id} M");
        assert_eq!(a.manufacturer.to_string(), s(dll, "manufacturer"), "{id}");
        assert_eq!(a.address.ident.to_string(), s(dll, "ident"), "{id}");
        assert_eq!(to_hex(&a.address.to_bytes()), s(dll, "a_field"), "{id}");
    } else if let Some(a) = dll.get("a_field").and_then(Value::as_str) {
        let wmbus_frame::frame::Link::Wired(w) = r.link else {
            panic!("{id}")
        };
        assert_eq!(format!("{:02X}", w.primary_address), a, "{id}");
    }
    match (&v["ell"], &r.ell) {
        (Value::Null, None) => {}
        (ell, Some(e)) => {
            assert_eq!(format!("{:02X}", e.ci().0), s(ell, "ci"), "{id}");
            assert_eq!(
                format!("{:02X}", e.communication_control.0),
                s(ell, "cc"),
                "{id}"
            );
            assert_eq!(format!("{:02X}", e.access_number), s(ell, "acc"), "{id}");
            if let Some(m) = ell.get("m_field").and_then(Value::as_str) {
                let a = e.address.unwrap();
                assert_eq!(to_hex(&a.manufacturer.to_bytes()), m, "{id}");
                assert_eq!(a.manufacturer.to_string(), s(ell, "manufacturer"), "{id}");
                assert_eq!(a.address.ident.to_string(), s(ell, "ident"), "{id}");
            }
        }
        (a, b) => panic!("{id}: ELL {a} vs {b:?}"),
    }
    match (&v["afl"], &r.transport.afl) {
        (Value::Null, None) => {}
        (afl, Some(a)) => {
            assert_eq!(a.afl_length() as u64, afl["afll"].as_u64().unwrap(), "{id}");
            assert_eq!(
                format!("{:04X}", a.fragment_control()),
                s(afl, "fcl"),
                "{id}"
            );
            assert_eq!(
                u64::from(a.fragment_id),
                afl["fid"].as_u64().unwrap(),
                "{id}"
            );
            assert_eq!(a.more_fragments, afl["mf"].as_bool().unwrap(), "{id}");
            assert_eq!(
                a.message_control.map(|m| format!("{:02X}", m.0)).as_deref(),
                afl.get("mcl").and_then(Value::as_str),
                "{id}"
            );
            assert_eq!(
                a.message_counter
                    .map(|c| to_hex(&c.to_le_bytes()))
                    .as_deref(),
                afl.get("mcr").and_then(Value::as_str),
                "{id}"
            );
            assert_eq!(
                a.message_length.map(u64::from),
                afl.get("ml").and_then(Value::as_u64),
                "{id}"
            );
            assert_eq!(
                a.mac.map(to_hex).as_deref(),
                afl.get("mac").and_then(Value::as_str),
                "{id}"
            );
            assert_eq!(
                a.key_information.is_some(),
                afl["kip"].as_bool().unwrap(),
                "{id}"
            );
            assert_eq!(
                to_hex(
                    &[
                        &[0x90, a.afl_length() as u8][..],
                        &a.fragment_control().to_le_bytes()
                    ]
                    .concat()
                )[..8],
                s(afl, "hex")[..8],
                "{id}"
            );
        }
        (a, b) => panic!("{id}: AFL {a} vs {b:?}"),
    }
    match (&v["tpl"], &r.transport.tpl) {
        (Value::Null, None) => {}
        (tpl, Some(t)) => {
            assert_eq!(format!("{:02X}", t.ci.0), s(tpl, "ci"), "{id}");
            let h = t.header.unwrap();
            assert_eq!(format!("{:02X}", h.access_number), s(tpl, "acc"), "{id}");
            assert_eq!(format!("{:02X}", h.status.0), s(tpl, "status"), "{id}");
            assert_eq!(
                to_hex(&h.config.0.to_le_bytes()),
                s(tpl, "config_field"),
                "{id}"
            );
            assert_eq!(
                u64::from(h.security_mode().0),
                tpl["security_mode"].as_u64().unwrap(),
                "{id}"
            );
            if let Some(ident) = tpl.get("ident").and_then(Value::as_str) {
                let m = h.meter.unwrap();
                assert_eq!(m.address.ident.to_string(), ident, "{id}");
                assert_eq!(m.manufacturer.to_string(), s(tpl, "manufacturer"), "{id}");
                assert_eq!(
                    format!("{:02X}", m.address.version),
                    s(tpl, "version"),
                    "{id}"
                );
                assert_eq!(
                    format!("{:02X}", m.address.device_type.0),
                    s(tpl, "device_type"),
                    "{id}"
                );
            }
            if let Some(n) = tpl.get("encrypted_blocks").and_then(Value::as_u64) {
                assert_eq!(u64::from(h.config.encrypted_blocks()), n, "{id}");
            }
            if let Some(p) = tpl.get("padding_flag").and_then(Value::as_bool) {
                assert_eq!(h.config.padding(), p, "{id}");
            }
            if let Some(cfe) = tpl.get("cfe").and_then(Value::as_str) {
                use wmbus_frame::tpl::ModeFields;
                let got = match h.mode_fields {
                    ModeFields::Mode7 { extension, .. } => format!("{:02X}", extension.0),
                    ModeFields::Mode10 { extension, .. } => to_hex(&extension.0.to_le_bytes()),
                    other => panic!("{id}: {other:?}"),
                };
                assert_eq!(got, cfe, "{id}");
            }
            let header = hex(s(tpl, "header"));
            let start = t_offset(frame);
            assert_eq!(
                to_hex(&frame.bytes[start..start + header.len()]),
                to_hex(&header),
                "{id} TPL header bytes"
            );
            assert_eq!(t.buffer_len(), header.len(), "{id} TPL length");
        }
        (a, b) => panic!("{id}: TPL {a} vs {b:?}"),
    }
}

fn t_offset(frame: &Frame<'_>) -> usize {
    frame.repr.transport.tpl_offset.unwrap()
}

#[test]
fn kat_telegrams_and_frame_formats() {
    let mut count = 0;
    for v in kat_vectors() {
        let id = s(&v, "id");
        match s(&v, "category") {
            "frame_format_a" | "frame_format_b" => {
                let input = hex(s(&v, "telegram_hex"));
                let without = hex(s(&v, "expected_without_crc"));
                let f = if s(&v, "category") == "frame_format_a" {
                    FrameFormat::A
                } else {
                    FrameFormat::B
                };
                let mut buf = [0u8; MAX_RAW_FRAME_LEN];
                let n = normalize(&input, None, &mut buf).unwrap();
                let (format, len) = (n.format, n.len);
                assert_eq!(format, f, "{id}");
                // The source prints format B frames with the on-air L; normalised L counts
                // the bytes after it without CRCs.
                assert_eq!(to_hex(&buf[1..len]), to_hex(&without[1..]), "{id}");
                assert_eq!(usize::from(buf[0]), len - 1, "{id}");
                count += 1;
            }
            "telegram" => {
                let input = hex(s(&v, "telegram_hex"));
                let format = match s(&v, "frame_format") {
                    "A_with_crc" => FrameFormat::A,
                    _ => FrameFormat::NoCrc,
                };
                let without = hex_field(&v, "telegram_without_crc");
                round_trip(id, &input, format, without.as_deref());
                let mut buf = [0u8; MAX_RAW_FRAME_LEN];
                let (_, frame) = parse_normalised(&input, &mut buf);
                check_parsed(id, &v["parsed"], &frame);
                count += 1;
            }
            _ => {}
        }
    }
    assert_eq!(count, 3 + 38);
}

fn check_parsed(id: &str, p: &Value, frame: &Frame<'_>) {
    let r = &frame.repr;
    if let Some(c) = p.get("C").and_then(Value::as_u64) {
        assert_eq!(u64::from(r.link.control().0), c, "{id}");
    }
    if let Some(m) = p.get("man").and_then(Value::as_str) {
        let a = r.link.address().unwrap();
        assert_eq!(a.manufacturer.to_string(), m, "{id}");
        assert_eq!(
            a.address.ident.to_string(),
            s(p, "id").to_lowercase(),
            "{id}"
        );
        assert_eq!(
            u64::from(a.address.version),
            p["ver"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            u64::from(a.address.device_type.0),
            p["type"].as_u64().unwrap(),
            "{id}"
        );
    }
    if let Some(ell) = p.get("ell") {
        let e = r.ell.unwrap();
        assert_eq!(u64::from(e.ci().0), ell["ci"].as_u64().unwrap(), "{id}");
        assert_eq!(
            u64::from(e.communication_control.0),
            ell["cc"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            u64::from(e.access_number),
            ell["acc"].as_u64().unwrap(),
            "{id}"
        );
        if let Some(sn) = ell.get("sn").and_then(Value::as_str) {
            assert_eq!(
                to_hex(&e.session_number.unwrap().0.to_le_bytes()),
                sn,
                "{id}"
            );
        }
        if e.is_encrypted() {
            return;
        }
    }
    if let Some(afl) = p.get("afl") {
        let a = r.transport.afl.unwrap();
        assert_eq!(
            u64::from(a.fragment_control()),
            afl["fcl"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            u64::from(a.message_control.unwrap().0),
            afl["mcl"].as_u64().unwrap(),
            "{id}"
        );
        assert_eq!(
            to_hex(&a.message_counter.unwrap().to_le_bytes()),
            s(afl, "mcr"),
            "{id}"
        );
        assert_eq!(to_hex(a.mac.unwrap()), s(afl, "mac"), "{id}");
    }
    if let Some(ci) = p.get("tpl_ci").and_then(Value::as_u64) {
        let t = r.transport.tpl.unwrap();
        assert_eq!(u64::from(t.ci.0), ci, "{id}");
        if let Some(h) = t.header {
            assert_eq!(
                u64::from(h.access_number),
                p["acc"].as_u64().unwrap(),
                "{id}"
            );
            assert_eq!(u64::from(h.status.0), p["sts"].as_u64().unwrap(), "{id}");
            assert_eq!(format!("{:04X}", h.config.0), s(p, "cf"), "{id}");
            assert_eq!(
                u64::from(h.security_mode().0),
                p.get("mode")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::from(h.security_mode().0)),
                "{id}"
            );
            if let Some(n) = p.get("nblocks").and_then(Value::as_u64) {
                assert_eq!(u64::from(h.config.encrypted_blocks()), n, "{id}");
            }
        }
    }
}

/// CEN/TR 17167 F.3 radio adapter: the link layer names the adapter (RAD 11223344), the long
/// transport header the meter (ELS 12345678), and the meter is the one reported.
#[test]
fn radio_adapter_meter_address() {
    let v = wmbus_testkit::vector("oms-annexN-profileB-radio-adapter-mode7");
    let input = hex(s(&v, "telegram_hex"));
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let (_, frame) = parse_normalised(&input, &mut buf);
    assert_eq!(
        frame.repr.link.address().unwrap().to_string(),
        "RAD 11223344"
    );
    assert_eq!(frame.meter().unwrap().to_string(), "ELS 12345678");
    let ell = frame.repr.ell.unwrap();
    assert_eq!(ell.address.unwrap().to_string(), "XYZ 33445566");
}
