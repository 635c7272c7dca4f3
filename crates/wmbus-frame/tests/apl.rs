#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Application-layer values against OMS Annex N (the values its examples state), and the VIF
//! tables worked by hand from EN 13757-3.

use proptest::prelude::*;
use wmbus_frame::apl::dib::{DataField, DibRepr, Function};
use wmbus_frame::apl::profile;
use wmbus_frame::apl::value::Value;
use wmbus_frame::apl::vib::{self, Coding, Vib};
use wmbus_frame::apl::{Item, Record, RecordRepr, Records};
use wmbus_testkit::{hex, vector};

fn records(apl: &[u8]) -> Vec<Record<'_>> {
    Records::new(apl, 0)
        .filter_map(|i| match i.unwrap() {
            Item::Record(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// value × 10^exponent, as f64.
fn scaled(r: &Record<'_>) -> f64 {
    let e = r.describe().exponent;
    let raw = match r.value() {
        Value::Signed(v) => v as f64,
        Value::Unsigned(v) => v as f64,
        Value::Real(v) => f64::from(v),
        other => panic!("{other:?}"),
    };
    raw * 10f64.powi(i32::from(e))
}

fn plaintext(id: &str) -> Vec<u8> {
    hex(vector(id)["expected_plaintext_apl"].as_str().unwrap())
}

#[test]
fn n21_volume_and_time() {
    let apl = plaintext("oms-annexN-N2.1-SND-NR");
    let r = records(&apl);
    assert!((scaled(&r[0]) - 28504.27).abs() < 1e-9);
    assert_eq!(r[0].describe().unit, Some("m3"));
    let Value::DateTime(t) = r[1].value() else {
        panic!()
    };
    assert_eq!(t.to_string(), "2008-05-31T23:50");
    assert_eq!(r[2].describe().quantity, "error_flags");
}

/// N.3–N.5: the twelve monthly volumes, from the storage 8 base value and the compact profile.
#[test]
fn n3_monthly_profile() {
    for id in [
        "oms-annexN-N3.2-unfragmented",
        "oms-annexN-N4.2-unfragmented",
        "oms-annexN-N5.2-unfragmented",
    ] {
        let apl = plaintext(id);
        let r = records(&apl);
        let p = r.iter().find(|x| x.vib.profile().is_some()).unwrap();
        let points: Vec<_> = profile::expand(p, &r).unwrap().collect();
        let values: Vec<i64> = points.iter().map(|p| p.value.unwrap()).collect();
        assert_eq!(
            values,
            [
                347950, 351889, 355023, 358491, 362701, 365879, 371289, 373119, 375105, 377569,
                381672
            ],
            "{id}"
        );
        let months: Vec<String> = points
            .iter()
            .map(|p| format!("{:?}", p.time.unwrap()))
            .collect();
        assert!(
            months[0].contains("month: 2") && months[0].contains("year: 2012"),
            "{months:?}"
        );
        assert!(months[10].contains("month: 12"), "{months:?}");
        assert_eq!(points[0].storage, 9);
        // With the base value itself: twelve monthly values.
        let base = r
            .iter()
            .find(|x| {
                x.dib.storage == 8 && x.describe().quantity == "volume" && x.vib.profile().is_none()
            })
            .unwrap();
        assert!((scaled(base) - 345.290).abs() < 1e-9);
    }
}

/// N.13: two inverse compact profiles, 46 values each, as the annex's value table gives them.
#[test]
fn n13_inverse_profiles() {
    let v = vector("oms-annexN-N13-SND-NR");
    let apl = plaintext("oms-annexN-N13-SND-NR");
    let r = records(&apl);
    let import = &v["profile_decode"]["import_series_Wh"];
    let export = &v["profile_decode"]["export_series_Wh"];
    let profiles: Vec<_> = r.iter().filter(|x| x.vib.profile().is_some()).collect();
    assert_eq!(profiles.len(), 2);
    for (p, want) in profiles.iter().zip([import, export]) {
        let got: Vec<i64> = profile::expand(p, &r)
            .unwrap()
            .map(|p| p.value.unwrap())
            .collect();
        let want: Vec<i64> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        assert_eq!(got, want);
    }
    // DR1: 1996.0 Wh (the annex's input list misprints 1966,0).
    assert!((scaled(&r[0]) - 1996.0).abs() < 1e-9);
    assert!(
        r[1].vib
            .modifiers()
            .any(|m| m == vib::Modifier::Annotation("accumulation_absolute_negative_only"))
    );
}

#[test]
fn n6_n7_identifiers_and_text() {
    let apl = plaintext("oms-annexN-N6.3-SND-NR");
    let r = records(&apl);
    assert_eq!(r[0].describe().unit, Some("HCA"));
    assert_eq!(r[0].value(), Value::Signed(1234));
    assert_eq!(r[1].dib.storage, 1);
    let Value::Date(d) = r[1].value() else {
        panic!()
    };
    assert_eq!(d.to_string(), "2007-04-30");
    assert_eq!(r[3].describe().quantity, "customer_location");
    assert!(
        matches!(r[3].value(), Value::Digits(b, DataField::Bcd8) if b == [0x78, 0x56, 0x34, 0x12])
    );

    let apl = plaintext("oms-annexN-N7-SND-IR");
    let r = records(&apl);
    assert_eq!(r[0].describe().quantity, "model_version");
    let Value::Text(t) = r[0].value() else {
        panic!()
    };
    let text: String = t.iter().rev().map(|&c| char::from(c)).collect();
    assert_eq!(text, "BKG4");
    assert_eq!(r[1].value(), Value::Signed(105));
    let Value::Text(t) = r[4].value() else {
        panic!()
    };
    let text: String = t.iter().rev().map(|&c| char::from(c)).collect();
    assert_eq!(text, "DE1234564907400000000000012345678");
}

#[test]
fn n12_remote_control() {
    let apl = plaintext("oms-annexN-N12.1-SND-NR");
    let r = records(&apl);
    assert_eq!(r[0].describe().quantity, "remote_control");
    assert_eq!(r[0].value(), Value::Unsigned(1));
}

/// The primary VIF table, family by family, worked by hand from EN 13757-3 Table 10.
#[test]
fn primary_vif_families() {
    let cases: &[(u8, &str, Option<&str>, i8)] = &[
        (0x03, "energy", Some("Wh"), 0),
        (0x06, "energy", Some("Wh"), 3),
        (0x0E, "energy", Some("J"), 6),
        (0x13, "volume", Some("m3"), -3),
        (0x16, "volume", Some("m3"), 0),
        (0x1B, "mass", Some("kg"), 0),
        (0x22, "on_time", Some("h"), 0),
        (0x27, "operating_time", Some("d"), 0),
        (0x2B, "power", Some("W"), 0),
        (0x33, "power", Some("J/h"), 3),
        (0x3B, "volume_flow", Some("m3/h"), -3),
        (0x43, "volume_flow", Some("m3/min"), -4),
        (0x4B, "volume_flow", Some("m3/s"), -6),
        (0x53, "mass_flow", Some("kg/h"), 0),
        (0x59, "flow_temperature", Some("°C"), -2),
        (0x5D, "return_temperature", Some("°C"), -2),
        (0x61, "temperature_difference", Some("K"), -2),
        (0x65, "external_temperature", Some("°C"), -2),
        (0x6A, "pressure", Some("bar"), -1),
        (0x6C, "date", None, 0),
        (0x6D, "datetime", None, 0),
        (0x6E, "hca_units", Some("HCA"), 0),
        (0x71, "averaging_duration", Some("min"), 0),
        (0x76, "actuality_duration", Some("h"), 0),
        (0x78, "fabrication_number", None, 0),
        (0x79, "enhanced_identification", None, 0),
        (0x7A, "bus_address", None, 0),
    ];
    for &(code, q, u, e) in cases {
        let d = vib::primary(code);
        assert_eq!(
            (d.quantity, d.unit, d.exponent),
            (q, u, e),
            "VIF {code:02X}"
        );
    }
}

#[test]
fn extension_tables() {
    let fd = |c| vib::table_fd(c);
    assert_eq!(
        (fd(0x08).quantity, fd(0x08).coding),
        ("access_number", Coding::Unsigned)
    );
    assert_eq!(fd(0x17).coding, Coding::Bits);
    let v = fd(0x48);
    assert_eq!((v.quantity, v.unit, v.exponent), ("voltage", Some("V"), -1));
    let a = fd(0x5C);
    assert_eq!((a.quantity, a.unit, a.exponent), ("current", Some("A"), 0));
    assert_eq!(fd(0x74).unit, Some("d"));
    assert_eq!(fd(0x6E).unit, Some("month"));
    let fb = |c| vib::table_fb(c);
    assert_eq!((fb(0x01).unit, fb(0x01).exponent), (Some("Wh"), 6)); // 1 MWh
    assert_eq!((fb(0x09).unit, fb(0x09).exponent), (Some("J"), 9)); // 1 GJ
    assert_eq!((fb(0x11).unit, fb(0x11).exponent), (Some("m3"), 3));
    assert_eq!((fb(0x19).unit, fb(0x19).exponent), (Some("kg"), 6)); // 10 t
    assert_eq!(
        (fb(0x03).quantity, fb(0x03).unit, fb(0x03).exponent),
        ("reactive_energy", Some("varh"), 4)
    ); // 10 kvarh
    assert_eq!((fb(0x2E).quantity, fb(0x2E).exponent), ("frequency", -1));
    assert_eq!(fb(0x5A).quantity, "unknown"); // °F until 2004, reserved in 2018
}

/// Combinable VIFEs: per-time units, multiplicative correction, annotations, error codes.
#[test]
fn combinable_vifes() {
    let vib_of = |raw: &'static [u8]| Vib {
        raw,
        plain_text: None,
    };
    // Volume 10^-3 m3, per hour → m3/h.
    assert_eq!(vib_of(&[0x93, 0x22]).describe().unit, Some("m3/h"));
    // Energy 10^0 Wh with a correction factor 10^(5-6) → exponent -1.
    assert_eq!(vib_of(&[0x83, 0x75]).describe().exponent, -1);
    // ×1000 (7Dh).
    assert_eq!(vib_of(&[0x83, 0x7D]).describe().exponent, 3);
    // Backward flow, start date, lower limit.
    let m: Vec<_> = vib_of(&[0x83, 0xBC, 0xB9, 0x40]).modifiers().collect();
    assert_eq!(
        m,
        [
            vib::Modifier::Annotation("accumulation_absolute_negative_only"),
            vib::Modifier::Annotation("start_date_of"),
            vib::Modifier::Annotation("lower_limit")
        ]
    );
    // Error code 15h: no data available.
    assert_eq!(
        vib_of(&[0x93, 0x15]).modifiers().next(),
        Some(vib::Modifier::Error("no_data_available"))
    );
    // Second combinable table after 7Ch: phase L1.
    assert_eq!(
        vib_of(&[0xFD, 0xC9, 0xFC, 0x01]).modifiers().next(),
        Some(vib::Modifier::Annotation("phase_l1"))
    );
    // Manufacturer-specific VIFEs end the meaning.
    assert_eq!(
        vib_of(&[0x93, 0xFF, 0x12]).modifiers().collect::<Vec<_>>(),
        [vib::Modifier::ManufacturerSpecific]
    );
}

#[test]
fn plain_text_and_manufacturer_vif() {
    // DIF 04, VIF FC (plain text, ext) VIFE 00? No: VIF 7C, length 3, "h/l" reversed, 32-bit data.
    let apl = hex("047C036C2F680A000000");
    let r = records(&apl);
    assert_eq!(r[0].vib.table(), vib::VifTable::PlainText);
    assert_eq!(r[0].vib.plain_text, Some(&b"l/h"[..]));
    assert_eq!(r[0].value(), Value::Signed(10));
    let apl = hex("027F3412");
    let r = records(&apl);
    assert_eq!(r[0].vib.table(), vib::VifTable::Manufacturer);
    assert_eq!(r[0].value(), Value::Signed(0x1234));
}

fn dib() -> impl Strategy<Value = DibRepr> {
    (
        0u8..15,
        0u8..4,
        0u64..(1 << 41),
        0u32..(1 << 20),
        0u16..(1 << 10),
    )
        .prop_map(|(df, f, storage, tariff, subunit)| DibRepr {
            data_field: DataField::from_nibble(df),
            function: Function::from_bits(f),
            storage,
            tariff,
            subunit,
        })
}

proptest! {
    #[test]
    fn record_round_trip(d in dib(), vif in 0u8..0x7B, vifes in proptest::collection::vec(0u8..0x7F, 0..5), data in proptest::collection::vec(any::<u8>(), 0..40), text in proptest::collection::vec(0x20u8..0x7F, 0..10)) {
        let mut vib_bytes = [0u8; 11];
        let n = vib::encode(vif, &vifes, &mut vib_bytes).unwrap();
        let (lvar, data) = match d.data_field.len() {
            Some(len) => (None, &data[..len.min(data.len())]),
            None => (Some(text.len() as u8), &text[..]),
        };
        prop_assume!(d.data_field.len().is_none_or(|l| l == data.len()));
        let repr = RecordRepr { dib: d, vib: &vib_bytes[..n], plain_text: None, data, lvar };
        let mut out = [0xA5u8; 80];
        let len = repr.emit(&mut out).unwrap();
        prop_assert_eq!(len, repr.buffer_len());
        let mut it = Records::new(&out[..len], 0);
        let Some(Ok(Item::Record(r))) = it.next() else { panic!("no record") };
        prop_assert_eq!(r.dib, d);
        prop_assert_eq!(r.vib.raw, &vib_bytes[..n]);
        prop_assert_eq!(r.data, data);
        prop_assert!(it.next().is_none());
    }

    #[test]
    fn arbitrary_applications_never_panic(apl in proptest::collection::vec(any::<u8>(), 0..200)) {
        let recs: Vec<_> = Records::new(&apl, 0).filter_map(|i| match i { Ok(Item::Record(r)) => Some(r), _ => None }).collect();
        for r in &recs {
            let _ = r.value();
            let _ = r.describe();
            if r.vib.profile().is_some() && let Ok(points) = profile::expand(r, &recs) {
                let _ = points.count();
            }
        }
    }
}
