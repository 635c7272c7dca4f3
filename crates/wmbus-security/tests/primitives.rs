#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Edge cases of the MAC and AEAD primitives as this crate wires them: truncated tags, empty
//! payloads, wrong lengths, the largest frames. Expected bytes come from RFC 4493 and the OMS
//! vectors; the rest are properties (what verifies must be exactly what was sealed).

use wmbus_security::kdf;
use wmbus_security::key::Key;
use wmbus_security::primitives::{self, NotBlockAligned, TagMismatch};
use wmbus_testkit::hex;

fn key() -> Key {
    Key::new(hex("2B7E151628AED2A6ABF7158809CF4F3C").try_into().unwrap())
}

/// RFC 4493 example 2 (16-byte message), truncated to every length.
#[test]
fn cmac_truncation() {
    let k = key();
    let mac = kdf::cmac(&k, &[&hex("6BC1BEE22E409F96E93D7E117393172A")]);
    assert_eq!(mac.to_vec(), hex("070A16B46B4D4144F79BDD9DD04A287C"));
    for n in 1..=16 {
        assert_eq!(primitives::verify_truncated(&mac, &mac[..n]), Ok(()), "{n}");
        let mut bad = mac[..n].to_vec();
        bad[n - 1] ^= 0x01;
        assert_eq!(
            primitives::verify_truncated(&mac, &bad),
            Err(TagMismatch),
            "{n}"
        );
    }
    // The right bytes at the wrong end do not verify (NIST SP 800-38B keeps the leftmost).
    assert!(primitives::verify_truncated(&mac, &mac[8..]).is_err());
    // An empty MAC never verifies; a longer one neither.
    assert!(primitives::verify_truncated(&mac, &[]).is_err());
    assert!(primitives::verify_truncated(&mac, &[0; 17]).is_err());
    // RFC 4493 example 1: the empty message.
    assert_eq!(
        kdf::cmac(&k, &[]).to_vec(),
        hex("BB1D6929E95937287FA37D129B756746")
    );
}

#[test]
fn ccm_tags_and_lengths() {
    let k = key();
    let nonce = [7u8; 13];
    for tag_len in [4, 8, 12, 16] {
        for len in [0usize, 1, 15, 16, 17, 200] {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut buf = plain.clone();
            let mut tag = vec![0u8; tag_len];
            primitives::ccm_seal(&k, &nonce, b"aad", &mut buf, &mut tag).unwrap();
            let mut open = buf.clone();
            primitives::ccm_open(&k, &nonce, b"aad", &mut open, &tag).unwrap();
            assert_eq!(open, plain);
            // A truncated or extended tag, other AAD, a flipped tag bit: all refused, buffer zeroed.
            let mut open = buf.clone();
            assert_eq!(
                primitives::ccm_open(&k, &nonce, b"aad", &mut open, &tag[..tag_len - 1]),
                Err(TagMismatch)
            );
            assert!(open.iter().all(|&b| b == 0));
            let mut open = buf.clone();
            assert!(primitives::ccm_open(&k, &nonce, b"aae", &mut open, &tag).is_err());
            let mut t2 = tag.clone();
            t2[0] ^= 0x80;
            let mut open = buf.clone();
            assert!(primitives::ccm_open(&k, &nonce, b"aad", &mut open, &t2).is_err());
        }
    }
    let mut tag = [0u8; 5];
    assert!(primitives::ccm_seal(&k, &nonce, &[], &mut [], &mut tag).is_err());
}

#[test]
fn gcm_tags_and_gmac() {
    let k = key();
    let iv = [1u8; 12];
    for tag_len in [8, 12, 16] {
        let mut buf = b"meter reading".to_vec();
        let mut tag = vec![0u8; tag_len];
        primitives::gcm_seal(&k, &iv, b"cf", &mut buf, &mut tag).unwrap();
        let mut open = buf.clone();
        primitives::gcm_open(&k, &iv, b"cf", &mut open, &tag).unwrap();
        assert_eq!(open, b"meter reading");
        let mut open = buf.clone();
        assert!(primitives::gcm_open(&k, &iv, b"cf", &mut open, &tag[..tag_len - 1]).is_err());
        assert!(open.iter().all(|&b| b == 0));
    }
    // GMAC is the tag of an empty plaintext; it changes with every bit of the data.
    let a = primitives::gmac(&k, &iv, b"image");
    let b = primitives::gmac(&k, &iv, b"imagf");
    assert_ne!(a, b);
    let mut empty = [0u8; 0];
    let mut tag = [0u8; 16];
    primitives::gcm_seal(&k, &iv, b"image", &mut empty, &mut tag).unwrap();
    assert_eq!(a, tag);
}

#[test]
fn cbc_and_ctr_lengths() {
    let k = key();
    let iv = [0u8; 16];
    assert_eq!(
        primitives::cbc_decrypt(&k, &iv, &mut [0u8; 15]),
        Err(NotBlockAligned)
    );
    assert_eq!(
        primitives::cbc_encrypt(&k, &iv, &mut [0u8; 17]),
        Err(NotBlockAligned)
    );
    assert_eq!(primitives::cbc_encrypt(&k, &iv, &mut []), Ok(()));
    // The largest encrypted part a frame can hold: 15 blocks.
    let mut buf = [0x2Fu8; 240];
    primitives::cbc_encrypt(&k, &iv, &mut buf).unwrap();
    primitives::cbc_decrypt(&k, &iv, &mut buf).unwrap();
    assert_eq!(buf, [0x2F; 240]);
    // CTR over an empty and a ragged buffer.
    primitives::ctr_apply(&k, &iv, &mut []);
    let mut r = [0u8; 33];
    primitives::ctr_apply(&k, &iv, &mut r);
    primitives::ctr_apply(&k, &iv, &mut r);
    assert_eq!(r, [0u8; 33]);
}
