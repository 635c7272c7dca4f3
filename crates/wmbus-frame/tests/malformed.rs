#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]

//! Bad input gets a typed error naming its layer and offset, never a panic.

use wmbus_frame::dll::{FrameFormat, MAX_RAW_FRAME_LEN};
use wmbus_frame::frame::{Frame, normalize};
use wmbus_frame::{ErrorKind, Layer};
use wmbus_testkit::hex;

fn decode(input: &[u8]) -> wmbus_frame::Result<()> {
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let n = normalize(input, None, &mut buf)?;
    Frame::parse(&buf[..n.len], n.format).map(|_| ())
}

/// N.2.1 without CRCs.
const N21: &str = "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3";
/// N.2.3 (mode 7 with AFL) without CRCs.
fn n23() -> Vec<u8> {
    let v = wmbus_testkit::vector("oms-annexN-N2.3-SND-NR");
    hex(v["frame_without_crc"].as_str().unwrap())
}

#[test]
fn truncated() {
    let full = hex(N21);
    for cut in 0..full.len() {
        let err = decode(&full[..cut]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("byte"), "{text}");
    }
    // Cut inside the transport header but with a consistent L.
    let mut short = full[..14].to_vec();
    short[0] = 13;
    let err = decode(&short).unwrap_err();
    assert_eq!(err.layer, Layer::Transport);
    assert!(matches!(err.kind, ErrorKind::Truncated { .. }), "{err}");
    assert_eq!(err.offset, 13);
}

#[test]
fn wrong_l_field() {
    let mut f = hex(N21);
    for l in [0x20, 0x2F, 0x40, 0xFF] {
        f[0] = l;
        let err = decode(&f).unwrap_err();
        assert_eq!(err.layer, Layer::Link);
        assert!(matches!(err.kind, ErrorKind::NoFrameFormat { .. }), "{err}");
    }
    f[0] = 0x20;
    // Given the format explicitly, an L that disagrees is a length mismatch.
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let err = normalize(&f, Some(FrameFormat::NoCrc), &mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::LengthMismatch {
                declared: 33,
                actual: 47
            }
        ),
        "{err}"
    );
}

#[test]
fn bad_crc_names_block() {
    let v = wmbus_testkit::vector("oms-annexN-N2.3-SND-NR");
    let mut f = hex(v["frame_with_crc"].as_str().unwrap());
    let last = f.len() - 1;
    f[last] ^= 0x80;
    let err = decode(&f).unwrap_err();
    assert!(err.is_integrity());
    let ErrorKind::CrcMismatch { block, .. } = err.kind else {
        panic!("{err}")
    };
    assert!(block > 1);
    assert!(err.to_string().contains(&format!("block {block}")), "{err}");
}

#[test]
fn unknown_ci() {
    let mut f = hex(N21);
    f[10] = 0x91; // reserved
    let err = decode(&f).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnknownCi(0x91));
    assert_eq!(err.offset, 10);
    assert!(err.is_unsupported());
    assert_eq!(
        err.to_string(),
        "transport layer at byte 10: unknown CI-field 91h"
    );
    f[10] = 0x86; // ELL V: no public layout
    let err = decode(&f).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnsupportedCi(0x86));
}

#[test]
fn afll_at_odds_with_fcl() {
    let f = n23();
    // AFL after the short ELL (8C CC ACC): 90 0F 00 2C 25 …
    let a = 13;
    assert_eq!(f[a], 0x90);
    for afll in [0x00, 0x01, 0x05, 0x0E, 0x10] {
        let mut g = f.clone();
        g[a + 1] = afll;
        let err = decode(&g).unwrap_err();
        assert_eq!(err.layer, Layer::Afl, "AFLL {afll:#x}: {err}");
    }
    // FCL claims KI too: AFLL no longer fits.
    let mut g = f.clone();
    g[a + 3] |= 0x02;
    let err = decode(&g).unwrap_err();
    assert_eq!(err.layer, Layer::Afl, "{err}");
    // MCL with a 4-byte authentication type while 8 MAC bytes follow.
    let mut g = f.clone();
    g[a + 4] = 0x24;
    let err = decode(&g).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::AflMacLength {
                authentication_type: 4,
                expected: 4,
                actual: 8
            }
        ),
        "{err}"
    );
}

#[test]
fn encrypted_length_beyond_frame() {
    let mut f = hex(N21);
    f[13] = 0xF0; // CF low byte: 15 encrypted blocks
    let err = decode(&f).unwrap_err();
    assert!(
        matches!(
            err.kind,
            ErrorKind::EncryptedLengthExceedsFrame { declared: 240, .. }
        ),
        "{err}"
    );
}

#[test]
fn wired_checksum() {
    let mut f = hex("6820206808FD7278563412931533032A0000000C1427048502046D32371F1502FD1700008916");
    f[20] ^= 1;
    let err = decode(&f).unwrap_err();
    assert_eq!(err.layer, Layer::Wired);
    assert!(err.is_integrity());
}

#[test]
fn ell_payload_crc() {
    // ELL II with ENC = 0: the PayloadCRC covers the rest in clear.
    let mut f = vec![
        0u8, 0x44, 0x2D, 0x2C, 0x11, 0x31, 0x34, 0x27, 0x33, 0x02, 0x8D, 0x20, 0xE9, 0x00, 0x3A,
        0x10, 0x00,
    ];
    let inner = [0x78u8, 0x04, 0x05, 0x00, 0x00, 0x00, 0x00];
    let crc = wmbus_frame::crc::crc16(&inner);
    f.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(&inner);
    f[0] = (f.len() - 1) as u8;
    decode(&f).unwrap();
    let last = f.len() - 1;
    f[last] ^= 1;
    let err = decode(&f).unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::PayloadCrcMismatch { .. }),
        "{err}"
    );
    assert_eq!(err.offset, 17);
}

#[test]
fn random_bytes() {
    // A fixed pseudo-random walk over lengths and contents: errors, never panics.
    let mut x: u32 = 0x1234_5678;
    for len in 0..400 {
        let input: Vec<u8> = (0..len % 300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = decode(&input);
    }
}
