#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! `wmbus encode`: descriptions of the Annex N examples give the annex's bytes; any
//! description, encoded and decoded, gives the description back.

use proptest::prelude::*;
use serde_json::json;
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::encode::{
    AddressDesc, AflDesc, Description, EllDesc, FormatDesc, HeaderDesc, LinkDesc, RecordDesc,
    TplDesc, encode,
};
use wmbus_host::keyfile;
use wmbus_host::report::JsonValue;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;
use wmbus_testkit::{testdata, vector};

#[test]
fn annex_n_examples_byte_for_byte() {
    for (file, id) in [
        ("oms-n21-mode5.toml", "oms-annexN-N2.1-SND-NR"),
        ("oms-n23-mode7.toml", "oms-annexN-N2.3-SND-NR"),
        ("oms-n26-mode10.json", "oms-annexN-N2.6-SND-NR"),
    ] {
        let desc = Description::parse(
            &std::fs::read_to_string(testdata().join("encode").join(file)).unwrap(),
        )
        .unwrap();
        let encoded = encode(&desc).unwrap();
        assert_eq!(encoded.frames.len(), 1);
        assert_eq!(
            hex::encode_upper(&encoded.frames[0]),
            vector(id)["frame_with_crc"].as_str().unwrap(),
            "{file}"
        );
    }
}

#[test]
fn errors_are_named() {
    let base = || Description {
        meter: AddressDesc {
            manufacturer: "ABC".into(),
            id: "00000001".into(),
            version: 1,
            device_type: 7,
        },
        key: None,
        link: LinkDesc::default(),
        ell: None,
        afl: None,
        tpl: TplDesc::default(),
        records: vec![],
    };
    let mut d = base();
    d.tpl.security_mode = 5;
    assert!(encode(&d).unwrap_err().0.contains("needs a key"));
    let mut d = base();
    d.records.push(RecordDesc {
        quantity: Some("volume".into()),
        value: Some(json!(1.23456789)),
        unit: Some("m3".into()),
        ..Default::default()
    });
    assert!(encode(&d).unwrap_err().0.contains("more decimals"));
    let mut d = base();
    d.records.push(RecordDesc {
        quantity: Some("volume".into()),
        value: Some(json!(1)),
        unit: Some("kWh".into()),
        ..Default::default()
    });
    assert!(encode(&d).unwrap_err().0.contains("no VIF"));
    let mut d = base();
    d.meter.manufacturer = "ab1".into();
    assert!(encode(&d).unwrap_err().0.contains("manufacturer"));
    assert!(Description::parse("[meter]\nmanufacturer = 1").is_err());
}

fn record() -> impl Strategy<Value = RecordDesc> {
    let storage = prop_oneof![4 => Just(0u64), 1 => 1u64..40];
    let tariff = prop_oneof![4 => Just(0u32), 1 => 1u32..4];
    let function = prop_oneof![
        Just("instantaneous"),
        Just("maximum"),
        Just("minimum"),
        Just("error")
    ];
    let coding = prop_oneof![Just("int"), Just("bcd")];
    let value = prop_oneof![
        (0i64..100_000_000, 0u32..4, Just("volume"), Just("m3")).prop_map(|(m, d, q, u)| (
            q,
            u,
            json!(m as f64 / 10f64.powi(d as i32))
        )),
        (
            -1_000_000i64..100_000_000,
            0u32..3,
            Just("energy"),
            Just("Wh")
        )
            .prop_map(|(m, d, q, u)| (q, u, json!(m as f64 / 10f64.powi(d as i32)))),
        (-500i64..1500, Just("flow_temperature"), Just("°C")).prop_map(|(m, q, u)| (
            q,
            u,
            json!(m as f64 / 10.0)
        )),
        (0i64..100_000, Just("power"), Just("W")).prop_map(|(m, q, u)| (q, u, json!(m))),
        (0i64..65_000, Just("hca_units"), Just("HCA")).prop_map(|(m, q, u)| (q, u, json!(m))),
    ];
    (value, storage, tariff, function, coding).prop_map(
        |((q, u, v), storage, tariff, f, coding)| RecordDesc {
            quantity: Some(q.into()),
            value: Some(v),
            unit: Some(u.into()),
            function: Some(f.into()),
            storage,
            tariff,
            subunit: 0,
            coding: Some(coding.into()),
            annotations: vec![],
            raw: None,
        },
    )
}

fn date_record() -> impl Strategy<Value = RecordDesc> {
    (
        2000u16..2080,
        1u8..=12,
        1u8..=28,
        0u8..24,
        0u8..60,
        any::<bool>(),
    )
        .prop_map(|(y, m, d, h, min, datetime)| RecordDesc {
            quantity: Some(if datetime { "datetime" } else { "date" }.into()),
            value: Some(json!(if datetime {
                format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}")
            } else {
                format!("{y:04}-{m:02}-{d:02}")
            })),
            ..Default::default()
        })
}

fn description() -> impl Strategy<Value = Description> {
    let letters =
        proptest::collection::vec(b'A'..=b'Z', 3).prop_map(|v| String::from_utf8(v).unwrap());
    (
        (letters, 0u32..100_000_000, any::<u8>(), any::<u8>()),
        prop_oneof![Just(0u8), Just(5), Just(7), Just(9), Just(10)],
        prop_oneof![
            Just(HeaderDesc::Short),
            Just(HeaderDesc::Long),
            Just(HeaderDesc::None)
        ],
        prop_oneof![
            Just(FormatDesc::A),
            Just(FormatDesc::B),
            Just(FormatDesc::None),
            Just(FormatDesc::Wired)
        ],
        (any::<u8>(), 1u32..1_000_000, any::<[u8; 16]>()),
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(20usize..60),
        ),
        proptest::collection::vec(record(), 0..5),
        proptest::collection::vec(date_record(), 0..2),
    )
        .prop_map(
            |(
                (m, id, version, device_type),
                mode,
                header,
                format,
                (acc, counter, key),
                (ell, encrypt, fragments),
                mut records,
                dates,
            )| {
                records.extend(dates);
                let header = if mode != 0 && header == HeaderDesc::None {
                    HeaderDesc::Short
                } else {
                    header
                };
                let wired = format == FormatDesc::Wired;
                let header = if wired && header != HeaderDesc::Long {
                    HeaderDesc::Long
                } else {
                    header
                };
                Description {
                    meter: AddressDesc {
                        manufacturer: m,
                        id: format!("{id:08}"),
                        version,
                        device_type,
                    },
                    key: Some(hex::encode_upper(key)),
                    link: LinkDesc {
                        format,
                        ..Default::default()
                    },
                    ell: (ell && !wired).then(|| EllDesc {
                        communication_control: 0x20,
                        encrypt,
                        ..Default::default()
                    }),
                    afl: (mode == 7 || fragments.is_some()).then(|| AflDesc {
                        authentication_type: (mode == 7).then_some(5),
                        message_counter: (mode == 7).then_some(counter),
                        message_length: fragments.is_some(),
                        fragments: fragments.into_iter().collect(),
                        ..Default::default()
                    }),
                    tpl: TplDesc {
                        header,
                        access_number: acc,
                        security_mode: mode,
                        counter: matches!(mode, 9 | 10).then_some(counter),
                        ..Default::default()
                    },
                    records,
                }
            },
        )
}

fn number(v: &JsonValue) -> f64 {
    match v {
        JsonValue::Integer(i) => *i as f64,
        JsonValue::Number(f) => *f,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn encode_then_decode(desc in description()) {
        let encoded = match encode(&desc) {
            Ok(e) => e,
            // Only a description longer than one frame may be refused.
            Err(e) => { prop_assert!(e.0.contains("longer") || e.0.contains("too long") || e.0.contains("blocks") || e.0.contains("L-field"), "{e}"); return Ok(()); }
        };
        let mut keys = MemoryKeyStore::new();
        keyfile::load_into(&mut keys, vec![keyfile::parse_entry(&desc.meter.id, desc.key.as_deref().unwrap(), "test").unwrap()]);
        let mut decoder = Decoder::new(keys, DecodeOptions::default());
        let mut reports: Vec<_> = encoded.frames.iter().enumerate().map(|(i, f)| decoder.decode(Instant::from_secs(i as u64), f)).collect();
        let r = reports.pop().unwrap();
        prop_assert!(reports.iter().all(|x| x.status == "incomplete"));
        prop_assert_eq!(r.status, "ok", "{:?} {:?}", r.error, r.security);
        prop_assert_eq!(r.manufacturer.as_deref(), Some(desc.meter.manufacturer.as_str()));
        prop_assert_eq!(r.id.as_deref(), Some(desc.meter.id.as_str()));
        prop_assert_eq!(r.version, Some(desc.meter.version));
        prop_assert_eq!(r.device_type, Some(desc.meter.device_type));
        prop_assert_eq!(r.security_mode, desc.tpl.security_mode);
        if desc.tpl.header != HeaderDesc::None {
            prop_assert_eq!(r.tpl.as_ref().unwrap().access_number, Some(desc.tpl.access_number));
        }
        if let Some(c) = desc.tpl.counter.or(desc.afl.as_ref().and_then(|a| a.message_counter)) {
            prop_assert_eq!(r.security.counter, Some(c));
        }
        prop_assert_eq!(r.records.len(), desc.records.len());
        for (got, want) in r.records.iter().zip(&desc.records) {
            prop_assert_eq!(got.quantity, want.quantity.as_deref().unwrap());
            prop_assert_eq!(got.unit, want.unit.as_deref());
            prop_assert_eq!(got.storage, want.storage);
            prop_assert_eq!(got.tariff, want.tariff);
            prop_assert_eq!(got.function, want.function.as_deref().unwrap_or("instantaneous"));
            match want.value.as_ref().unwrap() {
                serde_json::Value::String(s) => prop_assert_eq!(&got.value, &JsonValue::Text(s.as_str().into())),
                v => prop_assert_eq!(number(&got.value), v.as_f64().unwrap()),
            }
        }
    }
}
