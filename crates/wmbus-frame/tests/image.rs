#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Image-transfer messages: every message type of both profiles emitted and parsed back
//! (proptest), and arbitrary bytes never panic the parsers.

use proptest::prelude::*;
use wmbus_frame::image::esmr5::{Header, ImageFile, Message, StatusReport};
use wmbus_frame::image::oms::{Command, Function, Response, State};

fn command() -> impl Strategy<Value = (u8, u32, u32, u16, u16, Vec<u8>)> {
    (
        0u8..7,
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..200),
    )
}

fn build(
    (kind, a, b, c, d, data): &(u8, u32, u32, u16, u16, Vec<u8>),
    mac: &[u8; 16],
) -> Command<'static> {
    let data: &'static [u8] = Box::leak(data.clone().into_boxed_slice());
    let mac: &'static [u8] = Box::leak(Box::new(*mac));
    match kind {
        0 => Command::Prepare {
            image_id: *a,
            image_size: *b,
            block_size: *c,
            mac_algorithm: 4,
            mac_key_id: 0x18,
            mac,
        },
        1 => Command::Transfer {
            image_id: *a,
            block: *c.max(d),
            data,
        },
        2 => Command::Completion { image_id: *a },
        3 => Command::State,
        4 => Command::Validate { image_id: *a },
        5 => Command::Activate {
            image_id: *a,
            time: *b,
        },
        _ => Command::Terminate { flags: *c as u8 },
    }
}

proptest! {
    #[test]
    fn oms_commands_round_trip(c in command(), mac in any::<[u8; 16]>()) {
        let cmd = build(&c, &mac);
        let mut buf = vec![0u8; cmd.buffer_len()];
        let n = cmd.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(Command::parse(&buf, 0).unwrap(), cmd);
    }

    #[test]
    fn oms_responses_round_trip(
        function in prop::sample::select(vec![0u8, 2, 3, 4, 5, 6, 7]),
        state in 2u8..=15,
        image_id in any::<u32>(),
        block in any::<u16>(),
        lost in prop::collection::vec(any::<u16>(), 0..40),
    ) {
        let bytes: Vec<u8> = lost.iter().flat_map(|b| b.to_le_bytes()).collect();
        let r = Response {
            function: Function(function).response(),
            state: State(state),
            image_id,
            block: (function == 2).then_some(block),
            lost_total: (function == 3).then_some(u16::try_from(lost.len()).unwrap()),
            lost: if function == 3 { &bytes } else { &[] },
        };
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf).unwrap();
        prop_assert_eq!(n, buf.len());
        let back = Response::parse(&buf, 0).unwrap();
        prop_assert_eq!(back, r);
        prop_assert_eq!(back.lost_blocks().collect::<Vec<_>>(), if function == 3 { lost } else { vec![] });
    }

    #[test]
    fn esmr5_messages_round_trip(
        kind in 0u8..9,
        n in any::<u32>(),
        b in any::<u16>(),
        small in any::<u8>(),
        data in prop::collection::vec(any::<u8>(), 0..150),
    ) {
        let m = match kind {
            0 => Message::Start { image_length: n, block_size: small },
            1 => Message::Data { block: b, data: &data },
            2 => Message::Validate,
            3 => Message::Activate,
            4 => Message::Cancel,
            5 => Message::StatusRequest,
            6 => Message::BlockStatusRequest,
            7 => Message::Status(StatusReport { state: small % 8, error: small % 11, block_size: 177, validation: &data[..data.len().min(16)] }),
            _ => Message::BlockStatus { bitmap: &data },
        };
        let mut buf = vec![0u8; m.buffer_len()];
        let len = m.emit(&mut buf).unwrap();
        prop_assert_eq!(len, buf.len());
        prop_assert_eq!(Message::parse(&buf, 0).unwrap(), m);
    }

    #[test]
    fn smr5_headers_round_trip(
        version in any::<u32>(),
        len in 0u32..2000,
        address in any::<[u8; 8]>(),
        activation in any::<[u8; 6]>(),
        kind in 0u8..6,
    ) {
        let h = Header {
            header_version: 0,
            firmware_version: version,
            image_length: len,
            security_length: 16,
            security_type: kind,
            address_type: 1,
            address,
            activation_type: 1,
            activation_time: activation,
        };
        prop_assert_eq!(Header::parse(&h.to_bytes()).unwrap(), h);
        let mut file = h.to_bytes().to_vec();
        file.extend(std::iter::repeat_n(0xA5, len as usize + 16));
        let f = ImageFile::parse(&file).unwrap();
        prop_assert_eq!(f.image.len(), len as usize);
        prop_assert_eq!(f.security.len(), 16);
        prop_assert!(ImageFile::parse(&file[..file.len() - 1]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Command::parse(&bytes, 0);
        let _ = Response::parse(&bytes, 0);
        let _ = Message::parse(&bytes, 0);
        let _ = Header::parse(&bytes);
        let _ = ImageFile::parse(&bytes);
    }
}

#[test]
fn errors_name_their_offset() {
    // A Prepare cut inside its MAC.
    let e = Command::parse(&[0x00, 1, 0, 0, 0, 0, 4, 0, 0, 200, 0, 4, 0x18, 1, 2], 40).unwrap_err();
    assert!(e.offset >= 40, "{e}");
    // An unknown function.
    assert!(Command::parse(&[0x01], 0).is_err());
    // A response code without the response bit.
    assert!(Response::parse(&[0x04, 3, 0, 0, 0, 0], 0).is_err());
    // An odd lost-block list.
    assert!(Response::parse(&[0x83, 3, 0, 0, 0, 0, 1, 0, 5], 0).is_err());
    // ESMR 5: a wrong VIFE, an LVAR above BFh.
    assert!(Message::parse(&[0x0D, 0xFD, 0xF6, 0x33, 0], 0).is_err());
    assert!(Message::parse(&[0x0D, 0xFD, 0xF7, 0x32, 0xC2, 0, 0], 0).is_err());
    assert!(Header::parse(b"SMR4").is_err());
}
