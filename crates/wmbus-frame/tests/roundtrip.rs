#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]

//! Property tests: `parse(emit(r)) == r` for every layer's `Repr`, through every frame format,
//! and no panic on arbitrary bytes.

use proptest::prelude::*;
use wmbus_frame::afl::{AflRepr, KeyInformation, MessageControl};
use wmbus_frame::codepoints::{
    Address, CiField, ControlField, DeviceType, Ident, ManufacturerCode, MeterAddress,
    TplHeaderKind,
};
use wmbus_frame::dll::{self, DllRepr, FrameFormat, MAX_RAW_FRAME_LEN};
use wmbus_frame::ell::{CommunicationControl, EllRepr, SessionNumber};
use wmbus_frame::frame::{Frame, FrameRepr, Link, Transport, normalize};
use wmbus_frame::tpl::{ConfigExtension, ConfigField, ModeFields, Status, TplHeader, TplRepr};
use wmbus_frame::wired::{WiredKind, WiredRepr};

fn meter_address() -> impl Strategy<Value = MeterAddress> {
    (any::<u16>(), any::<u32>(), any::<u8>(), any::<u8>()).prop_map(|(m, id, v, t)| MeterAddress {
        manufacturer: ManufacturerCode(m),
        address: Address {
            ident: Ident(id),
            version: v,
            device_type: DeviceType(t),
        },
    })
}

fn ell() -> impl Strategy<Value = EllRepr> {
    (
        any::<u8>(),
        any::<u8>(),
        proptest::option::of(meter_address()),
        proptest::option::of(0u32..0x2000_0000),
    )
        .prop_map(|(cc, acc, address, sn)| EllRepr {
            communication_control: CommunicationControl(cc),
            access_number: acc,
            address,
            session_number: sn.map(SessionNumber),
        })
}

const MAC: [u8; 16] = [0xAB; 16];

fn afl() -> impl Strategy<Value = AflRepr<'static>> {
    let at = prop_oneof![Just(0u8), 3u8..=9];
    (
        0u8..4,
        2u8..=255,
        proptest::option::of(at),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u16>()),
        any::<[bool; 3]>(),
        prop_oneof![Just(0u16), Just(0x8000), Just(0x0100)],
    )
        .prop_map(|(kind, fid, at, ki, mcr, ml, flags, reserved)| {
            let mut a = AflRepr {
                reserved_bits: reserved,
                ..AflRepr::default()
            };
            match kind {
                // Unfragmented or first fragment: may carry MCL, KI, MCR, ML.
                0 | 1 => {
                    a.fragment_id = kind;
                    a.more_fragments = kind == 1;
                    a.key_information = ki.map(KeyInformation);
                    a.message_counter = mcr;
                    a.message_length = ml;
                    if let Some(at) = at {
                        let mut mcl = at;
                        if flags[0] && ml.is_some() {
                            mcl |= 0x40;
                        }
                        if flags[1] && mcr.is_some() {
                            mcl |= 0x20;
                        }
                        if flags[2] && ki.is_some() {
                            mcl |= 0x10;
                        }
                        a.message_control = Some(MessageControl(mcl));
                        let len = wmbus_frame::afl::AuthenticationType(at).mac_len().unwrap();
                        if kind == 0 && len > 0 {
                            a.mac = Some(&MAC[..len]);
                        }
                    }
                }
                // Middle fragment.
                2 => {
                    a.fragment_id = fid;
                    a.more_fragments = true;
                }
                // Last fragment: the MAC.
                _ => {
                    a.fragment_id = fid;
                    a.mac = Some(&MAC[..8]);
                }
            }
            a
        })
}

fn tpl_ci() -> impl Strategy<Value = CiField> {
    (0u8..=255)
        .prop_filter("transport CI", |ci| CiField(*ci).tpl_header().is_some())
        .prop_map(CiField)
}

fn mode_fields(mode: u8, cf: u16) -> BoxedStrategy<(u16, ModeFields)> {
    match mode {
        7 => (any::<u8>(), any::<u8>(), any::<u32>(), any::<bool>())
            .prop_map(move |(cfe, kv, mc, z)| {
                let cf = (cf & !0x2000) | if z { 0x2000 } else { 0 };
                let extension = ConfigExtension(u16::from(cfe & 0x7F));
                (
                    cf,
                    ModeFields::Mode7 {
                        extension,
                        key_version: extension.key_version_present().then_some(kv),
                        message_counter: z.then_some(mc),
                    },
                )
            })
            .boxed(),
        9 => (any::<u16>(), any::<u16>(), any::<u32>())
            .prop_map(move |(e, u, c)| {
                let cf = cf & !0x2000;
                let e = if cf & 0x40 != 0 { e } else { e & 0xFF } % 32;
                let u = if cf & 0x80 != 0 { u } else { u & 0xFF } % 32;
                (
                    cf,
                    ModeFields::Mode9 {
                        encrypted_len: e,
                        unencrypted_len: u,
                        counter: c,
                    },
                )
            })
            .boxed(),
        10 => (any::<u16>(), any::<u8>(), any::<u32>(), any::<bool>())
            .prop_map(move |(cfe, kv, mc, z)| {
                let cf = (cf & 0xE0FF & !0x2000) | 0x0A00 | if z { 0x2000 } else { 0 };
                let cf = (cf & 0xFF00) | (cf & 0x3F);
                let extension = ConfigExtension(cfe);
                (
                    cf,
                    ModeFields::Mode10 {
                        extension,
                        key_version: extension.key_version_present().then_some(kv),
                        message_counter: z.then_some(mc),
                    },
                )
            })
            .boxed(),
        13 => any::<u8>()
            .prop_map(move |e| {
                (
                    (cf & 0xFF00) | (cf & 0x3F),
                    ModeFields::Mode13 { extension: e },
                )
            })
            .boxed(),
        _ => Just((cf, ModeFields::None)).boxed(),
    }
}

fn tpl() -> impl Strategy<Value = TplRepr> {
    (
        tpl_ci(),
        meter_address(),
        any::<u8>(),
        any::<u8>(),
        0u8..32,
        any::<u16>(),
    )
        .prop_flat_map(|(ci, meter, acc, sts, mode, cf)| {
            let cf = (cf & 0xE0FF) | (u16::from(mode) << 8);
            // Keep the encrypted length small so a short payload covers it.
            let cf = (cf & 0xFF0F) | (cf & 0x0030);
            mode_fields(mode, cf).prop_map(move |(cf, mode_fields)| TplRepr {
                ci,
                header: match ci.tpl_header().unwrap() {
                    TplHeaderKind::None => None,
                    kind => Some(TplHeader {
                        meter: (kind == TplHeaderKind::Long).then_some(meter),
                        access_number: acc,
                        status: Status(sts),
                        config: ConfigField(cf),
                        mode_fields,
                    }),
                },
            })
        })
}

fn dll() -> impl Strategy<Value = DllRepr> {
    (any::<u8>(), meter_address()).prop_map(|(c, address)| DllRepr {
        control: ControlField(c),
        address,
    })
}

#[derive(Debug, Clone)]
struct Owned {
    link: Link,
    ell: Option<EllRepr>,
    afl: Option<AflRepr<'static>>,
    tpl: Option<TplRepr>,
    payload: Vec<u8>,
}

fn frame() -> impl Strategy<Value = Owned> {
    let wired = (any::<u8>(), any::<u8>()).prop_map(|(c, a)| {
        Link::Wired(WiredRepr {
            kind: WiredKind::Long,
            control: ControlField(c),
            primary_address: a,
        })
    });
    let link = prop_oneof![3 => dll().prop_map(Link::Wireless), 1 => wired];
    (
        link,
        proptest::option::of(ell()),
        proptest::option::of(afl()),
        tpl(),
        proptest::collection::vec(any::<u8>(), 80..120),
    )
        .prop_map(|(link, mut ell, afl, tpl, payload)| {
            if matches!(link, Link::Wired(_)) {
                ell = None;
            }
            // An encrypted ELL hides everything after it; keep those cases to `payload`.
            let encrypted = ell.is_some_and(|e| e.is_encrypted());
            let later_fragment = afl.is_some_and(|a| a.is_fragment() && !a.is_first());
            Owned {
                link,
                ell,
                afl: if encrypted { None } else { afl },
                tpl: if encrypted || later_fragment {
                    None
                } else {
                    Some(tpl)
                },
                payload,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frame_parse_emit(f in frame(), format in prop_oneof![Just(FrameFormat::A), Just(FrameFormat::B), Just(FrameFormat::NoCrc)]) {
        let repr = FrameRepr {
            link: f.link,
            ell: f.ell,
            transport: Transport { afl: f.afl, tpl: f.tpl, payload: &f.payload, ..Transport::default() },
        };
        let mut raw = [0u8; MAX_RAW_FRAME_LEN];
        let Ok(n) = repr.emit_on_air(format, &mut raw) else {
            // Only frames longer than a frame can be refused.
            prop_assert!(repr.buffer_len() > 250);
            return Ok(());
        };
        let wired = matches!(f.link, Link::Wired(_));
        let given = if wired { Some(FrameFormat::Wired) } else { Some(format) };
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let norm = normalize(&raw[..n], given, &mut buf).unwrap();
        let parsed = Frame::parse(&buf[..norm.len], norm.format).unwrap();
        let got = parsed.repr;
        prop_assert_eq!(got.link, repr.link);
        prop_assert_eq!(got.ell, repr.ell);
        prop_assert_eq!(got.transport.afl, repr.transport.afl);
        prop_assert_eq!(got.transport.tpl, repr.transport.tpl);
        prop_assert_eq!(got.transport.payload, repr.transport.payload);
        // And the bytes come back unchanged.
        let mut again = [0u8; MAX_RAW_FRAME_LEN];
        let m = got.emit_on_air(format, &mut again).unwrap();
        prop_assert_eq!(&again[..m], &raw[..n]);
    }

    #[test]
    fn crc_blocks_round_trip(body in proptest::collection::vec(any::<u8>(), 9..=250), format in prop_oneof![Just(FrameFormat::A), Just(FrameFormat::B)]) {
        let mut frame = vec![(body.len()) as u8];
        frame.extend_from_slice(&body);
        let mut raw = [0u8; MAX_RAW_FRAME_LEN];
        let Ok(n) = dll::emit_with_crcs(&frame, format, &mut raw) else {
            prop_assert!(format == FrameFormat::B && frame.len() > 252);
            return Ok(());
        };
        let mut out = [0u8; MAX_RAW_FRAME_LEN];
        let norm = dll::strip_crcs(&raw[..n], None, &mut out).unwrap();
        prop_assert_eq!(norm.format, format);
        prop_assert_eq!(&out[..norm.len], &frame[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        if let Ok(n) = normalize(&input, None, &mut buf) {
            let _ = Frame::parse(&buf[..n.len], n.format);
        }
        // Also straight into the parser, as if CRCs were already gone.
        if let Some(&l) = input.first() && usize::from(l) + 1 == input.len() {
            let _ = Frame::parse(&input, FrameFormat::NoCrc);
        }
    }

    #[test]
    fn wireless_frames_with_arbitrary_tails(header in proptest::collection::vec(any::<u8>(), 9..=9), tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut frame = vec![(9 + tail.len()) as u8];
        frame.extend_from_slice(&header);
        frame.extend_from_slice(&tail);
        if frame.len() <= 256 {
            let _ = Frame::parse(&frame, FrameFormat::NoCrc);
        }
    }
}
