#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! seal → open round trips for every supported mode, authentication type and fragmentation;
//! one flipped bit in the authenticated part, a wrong key, a replayed counter or a truncated
//! frame is never released.

use proptest::prelude::*;
use wmbus_frame::afl::{AflRepr, MessageControl};
use wmbus_frame::codepoints::{
    Address, CiField, ControlField, DeviceType, Ident, ManufacturerCode, MeterAddress,
};
use wmbus_frame::dll::{DllRepr, FrameFormat};
use wmbus_frame::ell::{CommunicationControl, EllRepr, SessionNumber};
use wmbus_frame::frame::{Frame, Link};
use wmbus_frame::tpl::{ConfigExtension, ConfigField, ModeFields, Status, TplHeader, TplRepr};
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::receiver::{Mode9Profile, Receiver, ReceiverOptions, SecurityResult};
use wmbus_security::seal::{self, SealSpec};
use wmbus_security::time::Instant;

#[derive(Debug, Clone)]
struct Case {
    meter: MeterAddress,
    mode: u8,
    at: u8,
    kdf: u8,
    counter: u32,
    acc: u8,
    to_meter: bool,
    long_header: bool,
    ell_encrypted: bool,
    ml: bool,
    fragments: Option<usize>,
    padding: bool,
    tag_code: u16,
    application: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (any::<u16>(), any::<u32>(), any::<u8>(), any::<u8>()),
        prop_oneof![Just(0u8), Just(5), Just(7), Just(9), Just(10)],
        3u8..=7,
        0u8..2,
        1u32..u32::MAX,
        any::<u8>(),
        any::<[bool; 5]>(),
        proptest::option::of(10usize..40),
        0u16..4,
        proptest::collection::vec(any::<u8>(), 0..70),
    )
        .prop_map(
            |((m, id, v, t), mode, at, kdf, counter, acc, flags, fragments, tag_code, mut app)| {
                let [to_meter, long_header, ell_encrypted, ml, padding] = flags;
                if matches!(mode, 5 | 7) {
                    app.splice(0..0, [0x2F, 0x2F]);
                }
                Case {
                    meter: MeterAddress {
                        manufacturer: ManufacturerCode(m & 0x7FFF),
                        address: Address {
                            ident: Ident(id),
                            version: v,
                            device_type: DeviceType(t),
                        },
                    },
                    mode,
                    at,
                    kdf,
                    counter,
                    acc,
                    to_meter,
                    long_header: long_header || to_meter,
                    ell_encrypted: ell_encrypted && !to_meter,
                    ml,
                    fragments,
                    padding: padding && mode == 7,
                    tag_code,
                    application: app,
                }
            },
        )
}

const GATEWAY: MeterAddress = MeterAddress {
    manufacturer: ManufacturerCode(0x633A),
    address: Address {
        ident: Ident(0x8765_4321),
        version: 8,
        device_type: DeviceType::COMMUNICATION_CONTROLLER,
    },
};

struct Built {
    frames: Vec<Vec<u8>>,
    key: Key,
    /// Byte range of each frame that its MAC, tag or CRC covers.
    authenticated: Vec<std::ops::Range<usize>>,
}

fn build(c: &Case, key: &Key) -> Result<Built, seal::SealError> {
    let ci = match (c.to_meter, c.long_header) {
        (true, _) => CiField::SITP_COMMAND,
        (false, true) => CiField::RESPONSE_LONG,
        (false, false) => CiField::RESPONSE_SHORT,
    };
    let blocks = c.application.len().div_ceil(16).max(1);
    let blocks = if c.padding && c.application.len().is_multiple_of(16) {
        blocks + 1
    } else {
        blocks
    };
    let (config, mode_fields) = match c.mode {
        0 => (ConfigField(0), ModeFields::None),
        5 => (
            ConfigField(0x0500 | ((blocks as u16) << 4)),
            ModeFields::None,
        ),
        7 => (
            ConfigField(0x0700 | ((blocks as u16) << 4) | if c.padding { 0x08 } else { 0 }),
            ModeFields::Mode7 {
                extension: ConfigExtension(u16::from(c.kdf) << 4),
                key_version: None,
                message_counter: None,
            },
        ),
        9 => (
            ConfigField(0x2900 | 0x01),
            ModeFields::Mode9 {
                encrypted_len: c.application.len() as u16,
                unencrypted_len: 0,
                counter: c.counter,
            },
        ),
        _ => (
            ConfigField(0x2A00 | 0xFF),
            ModeFields::Mode10 {
                extension: ConfigExtension((u16::from(c.kdf) << 4) | (c.tag_code << 8)),
                key_version: None,
                message_counter: Some(c.counter),
            },
        ),
    };
    let tpl = TplRepr {
        ci,
        header: Some(TplHeader {
            meter: c.long_header.then_some(c.meter),
            access_number: c.acc,
            status: Status(0),
            config,
            mode_fields,
        }),
    };
    let afl = (c.mode == 7 || c.fragments.is_some()).then(|| AflRepr {
        message_control: Some(MessageControl(
            if c.mode == 7 { c.at | 0x20 } else { 0 }
                | if c.ml && c.fragments.is_some() {
                    0x40
                } else {
                    0
                },
        )),
        message_counter: (c.mode == 7).then_some(c.counter),
        message_length: (c.ml && c.fragments.is_some()).then_some(0),
        ..AflRepr::default()
    });
    let sender = if c.to_meter { GATEWAY } else { c.meter };
    let link = Link::Wireless(DllRepr {
        control: if c.to_meter {
            ControlField::SND_UD2
        } else {
            ControlField::SND_NR
        },
        address: sender,
    });
    let ell = c.ell_encrypted.then_some(EllRepr {
        communication_control: CommunicationControl(0x20),
        access_number: c.acc,
        address: None,
        session_number: Some(SessionNumber(0x2000_0000 | (c.counter & 0xFFFF))),
    });
    let mut keys = MemoryKeyStore::new();
    keys.insert(None, c.meter.address.ident, None, key.clone());
    let spec = SealSpec {
        link,
        ell,
        afl,
        tpl,
        application: &c.application,
    };
    let frames = match c.fragments {
        None => vec![seal::seal(&spec, &keys, &Mode9Profile::default())?],
        Some(size) => {
            let spec = SealSpec {
                afl: afl.map(|mut a| {
                    a.fragment_id = 1;
                    a.more_fragments = true;
                    a
                }),
                ..spec
            };
            let ells: Vec<EllRepr> = ell.into_iter().collect();
            seal::seal_fragmented(&spec, &[size], &ells, &keys, &Mode9Profile::default())?
        }
    };
    // What each frame's protection covers: ELL from SN on; mode 7 from MCL on; modes 9 and
    // 10 from the CF on (AAD, counter, ciphertext and tag).
    let authenticated = frames
        .iter()
        .map(|f| {
            let frame = Frame::parse(f, FrameFormat::NoCrc).unwrap();
            if c.ell_encrypted {
                return frame.ell_offset.unwrap() + 3..f.len();
            }
            let t = &frame.repr.transport;
            match c.mode {
                7 => t.afl_offset.map_or(f.len(), |a| a + 4)..f.len(),
                9 | 10 => {
                    t.tpl_offset
                        .map_or(f.len(), |s| s + 1 + if c.long_header { 8 } else { 0 } + 2)
                        ..f.len()
                }
                _ => f.len()..f.len(),
            }
        })
        .collect();
    Ok(Built {
        frames,
        key: key.clone(),
        authenticated,
    })
}

fn open_all(
    frames: &[Vec<u8>],
    key: &Key,
    meter: Ident,
    rx: Option<&mut Receiver<MemoryKeyStore>>,
) -> (SecurityResult, Vec<u8>) {
    let mut keys = MemoryKeyStore::new();
    keys.insert(None, meter, None, key.clone());
    let mut own = Receiver::new(keys, ReceiverOptions::default());
    let rx = match rx {
        Some(r) => r,
        None => &mut own,
    };
    let mut plain = Vec::new();
    let mut last = (SecurityResult::None, Vec::new());
    for (i, f) in frames.iter().enumerate() {
        let Ok(frame) = Frame::parse(f, FrameFormat::NoCrc) else {
            return (SecurityResult::Malformed, Vec::new());
        };
        let o = rx.open(Instant::from_secs(i as u64), &frame, &mut plain);
        last = (o.result, plain[o.application.clone()].to_vec());
    }
    last
}

fn expected_application(c: &Case) -> Vec<u8> {
    let mut app = c.application.clone();
    if c.mode == 5 || (c.mode == 7 && !c.padding) {
        let n = app.len().div_ceil(16).max(1) * 16;
        app.resize(n, 0x2F);
    }
    app
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn seal_then_open(c in case(), k in any::<[u8; 16]>()) {
        let key = Key::new(k);
        let built = match build(&c, &key) {
            Ok(b) => b,
            Err(seal::SealError::Frame(_)) => return Ok(()), // longer than a frame
            Err(e) => panic!("{e}"),
        };
        let (result, app) = open_all(&built.frames, &built.key, c.meter.address.ident, None);
        prop_assert!(result.is_released(), "{result:?}");
        let expect_auth = c.mode == 7 || c.mode == 9 || c.mode == 10;
        if expect_auth {
            prop_assert_eq!(result, SecurityResult::Authenticated);
        }
        prop_assert_eq!(app, expected_application(&c));
    }

    #[test]
    fn flipped_bits_are_rejected(c in case(), k in any::<[u8; 16]>(), pick in any::<prop::sample::Index>(), bit in 0u8..8) {
        prop_assume!(c.ell_encrypted || matches!(c.mode, 7 | 9 | 10));
        let key = Key::new(k);
        let Ok(mut built) = build(&c, &key) else { return Ok(()) };
        // Tamper with one frame's authenticated part.
        let which = pick.index(built.frames.len());
        let range = built.authenticated[which].clone();
        prop_assume!(!range.is_empty());
        let at = range.start + pick.index(range.len());
        built.frames[which][at] ^= 1 << bit;
        let (result, _) = open_all(&built.frames, &built.key, c.meter.address.ident, None);
        prop_assert!(!result.is_released(), "flip at {at} bit {bit}: {result:?}");
    }

    #[test]
    fn wrong_key_is_rejected(c in case(), k in any::<[u8; 16]>(), other in any::<[u8; 16]>()) {
        prop_assume!(k != other && c.mode != 0);
        let Ok(built) = build(&c, &Key::new(k)) else { return Ok(()) };
        let (result, _) = open_all(&built.frames, &Key::new(other), c.meter.address.ident, None);
        prop_assert!(!result.is_released(), "{result:?}");
    }

    #[test]
    fn replayed_counter_is_rejected(c in case(), k in any::<[u8; 16]>()) {
        prop_assume!(matches!(c.mode, 7 | 9 | 10));
        let key = Key::new(k);
        let Ok(built) = build(&c, &key) else { return Ok(()) };
        let mut keys = MemoryKeyStore::new();
        keys.insert(None, c.meter.address.ident, None, key.clone());
        let mut rx = Receiver::new(keys, ReceiverOptions::default());
        let (first, _) = open_all(&built.frames, &key, c.meter.address.ident, Some(&mut rx));
        prop_assert!(first.is_released());
        let (second, app) = open_all(&built.frames, &key, c.meter.address.ident, Some(&mut rx));
        prop_assert!(matches!(second, SecurityResult::Replayed { counter, last } if counter == c.counter && last == c.counter), "{second:?}");
        prop_assert!(app.is_empty());
    }

    #[test]
    fn truncated_frames_are_never_released(c in case(), k in any::<[u8; 16]>(), cut in any::<prop::sample::Index>()) {
        prop_assume!(c.mode != 0 && c.fragments.is_none());
        let key = Key::new(k);
        let Ok(built) = build(&c, &key) else { return Ok(()) };
        let mut f = built.frames[0].clone();
        // Keep at least the first CI: a bare link header is a complete (if empty) frame.
        let n = 11 + cut.index(f.len() - 11);
        f.truncate(n);
        f[0] = (n - 1) as u8;
        let (result, _) = open_all(&[f], &key, c.meter.address.ident, None);
        prop_assert!(!result.is_released(), "{result:?}");
    }
}

#[test]
fn every_authentication_type_and_tag_length() {
    let base = Case {
        meter: MeterAddress {
            manufacturer: ManufacturerCode::parse("ZRI").unwrap(),
            address: Address {
                ident: Ident(0x1234_5678),
                version: 1,
                device_type: DeviceType::WATER,
            },
        },
        mode: 7,
        at: 5,
        kdf: 1,
        counter: 2739,
        acc: 5,
        to_meter: false,
        long_header: false,
        ell_encrypted: false,
        ml: false,
        fragments: None,
        padding: false,
        tag_code: 1,
        application: vec![0x2F, 0x2F, 0x0C, 0x13, 0x79, 0x19, 0x41, 0x00],
    };
    let key = Key::new([7; 16]);
    for at in 3..=7 {
        for fragments in [None, Some(12)] {
            let c = Case {
                at,
                fragments,
                ml: fragments.is_some(),
                ..base.clone()
            };
            let built = build(&c, &key).unwrap();
            let (r, _) = open_all(&built.frames, &key, c.meter.address.ident, None);
            assert_eq!(r, SecurityResult::Authenticated, "AT {at} {fragments:?}");
        }
    }
    for tag_code in 0..4 {
        let c = Case {
            mode: 10,
            tag_code,
            application: vec![0x04, 0x13, 1, 2, 3, 4],
            ..base.clone()
        };
        let built = build(&c, &key).unwrap();
        let (r, app) = open_all(&built.frames, &key, c.meter.address.ident, None);
        assert_eq!(r, SecurityResult::Authenticated, "tag code {tag_code}");
        assert_eq!(app, c.application);
    }
}

/// An empty application in mode 10 and mode 9, and a maximum-length mode 7 message.
#[test]
fn edge_lengths() {
    let key = Key::new([9; 16]);
    let meter = MeterAddress {
        manufacturer: ManufacturerCode::parse("ABC").unwrap(),
        address: Address {
            ident: Ident(0x0000_0001),
            version: 1,
            device_type: DeviceType::GAS,
        },
    };
    let base = Case {
        meter,
        mode: 10,
        at: 5,
        kdf: 1,
        counter: 1,
        acc: 1,
        to_meter: false,
        long_header: false,
        ell_encrypted: false,
        ml: false,
        fragments: None,
        padding: false,
        tag_code: 3,
        application: vec![],
    };
    for mode in [9, 10] {
        let c = Case {
            mode,
            ..base.clone()
        };
        let built = build(&c, &key).unwrap();
        let (r, app) = open_all(&built.frames, &key, meter.address.ident, None);
        assert_eq!(r, SecurityResult::Authenticated, "mode {mode}");
        assert!(app.is_empty());
    }
    // 15 blocks of mode 7 in one frame: the largest N the CF can say.
    let mut application = vec![0x2F, 0x2F];
    application.resize(240, 0x2F);
    let c = Case {
        mode: 7,
        application,
        ..base.clone()
    };
    let Err(seal::SealError::Frame(_)) = build(&c, &key) else {
        panic!("a 240-byte payload does not fit a frame with headers")
    };
    let mut application = vec![0x2F, 0x2F];
    application.resize(13 * 16, 0x2F);
    let c = Case {
        mode: 7,
        application,
        ..base
    };
    let built = build(&c, &key).unwrap();
    let (r, _) = open_all(&built.frames, &key, meter.address.ident, None);
    assert_eq!(r, SecurityResult::Authenticated);
}
