//! The vector set of `wmbus vectors --seed N`: every security mode × frame format × header
//! kind × AFL authentication type × fragmentation this stack can build, with meters, keys,
//! counters and readings drawn from a seeded generator. Same seed, same bytes, on every machine.
//! Each vector is a description, its frames, and what decoding them gives.

use serde_json::json;

use crate::decoder::{DecodeOptions, Decoder};
use crate::encode::{
    AddressDesc, AflDesc, Description, EllDesc, FormatDesc, HeaderDesc, LinkDesc, RecordDesc,
    TplDesc, encode,
};
use crate::keyfile;
use crate::report::Report;
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::time::Instant;

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// One of `items` (`default` when empty).
    pub fn pick<T: Copy>(&mut self, items: &[T], default: T) -> T {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or(default)
    }
    /// Random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.next_u64() as u8;
        }
        out
    }
}

/// One vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// A name saying what it covers, e.g. `m7-A-short-at5-fragmented`.
    pub name: String,
    /// The description.
    pub description: Description,
    /// The frames on air.
    pub frames: Vec<Vec<u8>>,
    /// What decoding the frames gives, one report per frame.
    pub expected: Vec<Report>,
}

fn records(rng: &mut Rng) -> Vec<RecordDesc> {
    let mut out = vec![RecordDesc {
        quantity: Some("volume".into()),
        value: Some(json!(rng.below(100_000_000) as f64 / 1000.0)),
        unit: Some("m3".into()),
        coding: Some(if rng.below(2) == 0 { "bcd8" } else { "int32" }.into()),
        ..RecordDesc::default()
    }];
    let (y, m, d) = (2020 + rng.below(10), 1 + rng.below(12), 1 + rng.below(28));
    out.push(RecordDesc {
        quantity: Some("datetime".into()),
        value: Some(json!(format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}",
            rng.below(24),
            rng.below(60)
        ))),
        ..RecordDesc::default()
    });
    out.push(RecordDesc {
        quantity: Some("volume".into()),
        value: Some(json!(rng.below(100_000_000) as f64 / 1000.0)),
        unit: Some("m3".into()),
        storage: 1,
        coding: Some("bcd8".into()),
        ..RecordDesc::default()
    });
    out.push(RecordDesc {
        quantity: Some("date".into()),
        value: Some(json!(format!("{y:04}-{m:02}-01"))),
        storage: 1,
        ..RecordDesc::default()
    });
    if rng.below(2) == 0 {
        out.push(RecordDesc {
            quantity: Some("flow_temperature".into()),
            value: Some(json!(rng.below(900) as f64 / 10.0)),
            unit: Some("°C".into()),
            ..RecordDesc::default()
        });
    }
    out.push(RecordDesc {
        quantity: Some("error_flags".into()),
        value: Some(json!(0)),
        coding: Some("int16".into()),
        ..RecordDesc::default()
    });
    out
}

fn meter(rng: &mut Rng) -> AddressDesc {
    let letters: String = (0..3)
        .map(|_| char::from(b'A' + rng.below(26) as u8))
        .collect();
    AddressDesc {
        manufacturer: letters,
        id: format!("{:08}", rng.below(100_000_000)),
        version: rng.below(256) as u8,
        device_type: rng.pick(&[0x03, 0x04, 0x07, 0x08, 0x16], 0x07),
    }
}

/// The files of a vector set: `(name, contents)` — per vector `NAME.toml` (description),
/// `NAME.hex` (frames, one per line) and `NAME.json` (expected decodes), and `keys.txt`.
///
/// # Errors
/// Serialisation errors.
pub fn files(vectors: &[Vector]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut keys = String::from("# Keys of this vector set (generated, test only).\n");
    for v in vectors {
        let toml = toml::to_string(&v.description).map_err(|e| format!("{}: {e}", v.name))?;
        out.push((format!("{}.toml", v.name), toml));
        let hex: String = v
            .frames
            .iter()
            .map(|f| format!("{}\n", hex::encode_upper(f)))
            .collect();
        out.push((format!("{}.hex", v.name), hex));
        let json =
            serde_json::to_string_pretty(&v.expected).map_err(|e| format!("{}: {e}", v.name))?;
        out.push((format!("{}.json", v.name), json + "\n"));
        if let Some(k) = &v.description.key {
            keys.push_str(&format!(
                "{}.{} {k}\n",
                v.description.meter.manufacturer, v.description.meter.id
            ));
        }
    }
    out.push(("keys.txt".into(), keys));
    Ok(out)
}

/// The whole vector set for a seed.
pub fn generate(seed: u64) -> Vec<Vector> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let formats = [
        (FormatDesc::A, "A"),
        (FormatDesc::B, "B"),
        (FormatDesc::None, "none"),
    ];
    let headers = [
        (HeaderDesc::None, "none"),
        (HeaderDesc::Short, "short"),
        (HeaderDesc::Long, "long"),
    ];
    for mode in [0u8, 5, 7, 9, 10] {
        for ell_ctr in [false, true] {
            if ell_ctr && mode != 0 {
                continue;
            }
            for &(header, header_name) in &headers {
                if header == HeaderDesc::None && mode != 0 {
                    continue;
                }
                let ats: &[u8] = if mode == 7 { &[3, 4, 5, 6, 7] } else { &[0] };
                for &at in ats {
                    for fragmented in [false, true] {
                        for &(format, format_name) in &formats {
                            let key = rng.bytes::<16>();
                            let counter = 1 + rng.below(1_000_000) as u32;
                            let meter = meter(&mut rng);
                            let name = format!(
                                "m{mode}{}-{format_name}-{header_name}{}-{}",
                                if ell_ctr { "-ellctr" } else { "" },
                                if mode == 7 {
                                    format!("-at{at}")
                                } else {
                                    String::new()
                                },
                                if fragmented { "fragmented" } else { "whole" }
                            );
                            let description = Description {
                                meter,
                                key: Some(hex::encode_upper(key)),
                                link: LinkDesc {
                                    format,
                                    ..LinkDesc::default()
                                },
                                ell: (ell_ctr || rng.below(2) == 0).then(|| EllDesc {
                                    communication_control: 0x20,
                                    encrypt: ell_ctr,
                                    session_time: rng.below(1 << 20) as u32,
                                    ..EllDesc::default()
                                }),
                                afl: (mode == 7 || fragmented).then(|| AflDesc {
                                    authentication_type: (mode == 7).then_some(at),
                                    message_counter: (mode == 7).then_some(counter),
                                    message_length: fragmented,
                                    fragments: if fragmented {
                                        vec![20 + rng.below(20) as usize]
                                    } else {
                                        vec![]
                                    },
                                    ..AflDesc::default()
                                }),
                                tpl: TplDesc {
                                    header,
                                    access_number: rng.below(256) as u8,
                                    security_mode: mode,
                                    counter: matches!(mode, 9 | 10).then_some(counter),
                                    tag_length: (mode == 10)
                                        .then(|| rng.pick(&[4u8, 8, 12, 16], 8)),
                                    ..TplDesc::default()
                                },
                                records: records(&mut rng),
                            };
                            let Ok(encoded) = encode(&description) else {
                                continue;
                            };
                            let expected = decode(&description, &encoded.frames);
                            out.push(Vector {
                                name: format!("{:03}-{name}", out.len() + 1),
                                description,
                                frames: encoded.frames,
                                expected,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Decodes a vector's frames with its key (a fresh decoder: replay state starts empty).
pub fn decode(description: &Description, frames: &[Vec<u8>]) -> Vec<Report> {
    let mut keys = MemoryKeyStore::new();
    if let Some(k) = description.key.as_deref()
        && let Ok(e) = keyfile::parse_entry(&description.meter.id, k, "vector")
    {
        keyfile::load_into(&mut keys, vec![e]);
    }
    let mut d = Decoder::new(keys, DecodeOptions::default());
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| d.decode(Instant::from_secs(i as u64), f))
        .collect()
}
