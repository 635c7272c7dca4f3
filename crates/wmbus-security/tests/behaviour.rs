#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    clippy::std_instead_of_core
)]
//! Receiver behaviour beyond the vectors: telegrams a receiver already decrypted, plaintext
//! refused when a key is configured, national-mode handlers, fragment errors.

use wmbus_frame::codepoints::Ident;
use wmbus_frame::dll::MAX_RAW_FRAME_LEN;
use wmbus_frame::frame::{Frame, normalize};
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::national::{NationalMode, NationalRequest, NationalResult, RegisterError};
use wmbus_security::reassembly::FragmentError;
use wmbus_security::receiver::{Receiver, ReceiverOptions, SecurityResult, Status};
use wmbus_security::time::Instant;
use wmbus_testkit::{hex, vector};

fn open_hex(rx: &mut Receiver<MemoryKeyStore>, t: &[u8], now: u64) -> (SecurityResult, Vec<u8>) {
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let n = normalize(t, None, &mut buf).unwrap();
    let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
    let mut plain = Vec::new();
    let o = rx.open(Instant::from_secs(now), &frame, &mut plain);
    (o.result, plain[o.application].to_vec())
}

fn keys(id: u32, key: &str) -> MemoryKeyStore {
    let mut k = MemoryKeyStore::new();
    k.insert(None, Ident(id), None, Key::from_hex(key).unwrap());
    k
}

/// N.2.1 with its payload replaced by the plaintext, as a receiver that decrypted it passes it on.
fn n21_in_clear() -> Vec<u8> {
    let v = vector("oms-annexN-N2.1-profileA-mode5");
    let mut t = hex(v["telegram_without_crc"].as_str().unwrap());
    let plain = hex(v["expected_plaintext"].as_str().unwrap());
    t[15..15 + plain.len()].copy_from_slice(&plain);
    t
}

#[test]
fn decrypted_by_receiver_without_key() {
    let mut rx = Receiver::new(MemoryKeyStore::new(), ReceiverOptions::default());
    let (r, app) = open_hex(&mut rx, &n21_in_clear(), 0);
    assert_eq!(r, SecurityResult::DecryptedByReceiver);
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(&app[..4], &[0x2F, 0x2F, 0x0C, 0x14]);
    // Refused when the option is off.
    let mut strict = Receiver::new(
        MemoryKeyStore::new(),
        ReceiverOptions {
            accept_decrypted_by_receiver: false,
            ..ReceiverOptions::default()
        },
    );
    assert_eq!(
        open_hex(&mut strict, &n21_in_clear(), 0).0,
        SecurityResult::NoKey
    );
}

#[test]
fn plaintext_refused_with_a_key() {
    let mut rx = Receiver::new(
        keys(0x1234_5678, "0102030405060708090A0B0C0D0E0F11"),
        ReceiverOptions::default(),
    );
    let (r, app) = open_hex(&mut rx, &n21_in_clear(), 0);
    assert_eq!(r, SecurityResult::PlaintextWithKey);
    assert_eq!(r.status(), Status::AuthenticationFailed);
    assert!(app.is_empty());
}

#[test]
fn wrong_key_names_the_check_bytes() {
    let v = vector("oms-annexN-N2.1-profileA-mode5");
    let t = hex(v["telegram_hex"].as_str().unwrap());
    let mut rx = Receiver::new(
        keys(0x1234_5678, "0102030405060708090A0B0C0D0E0F12"),
        ReceiverOptions::default(),
    );
    assert_eq!(
        open_hex(&mut rx, &t, 0).0,
        SecurityResult::CheckBytesMismatch
    );
    let mut none = Receiver::new(MemoryKeyStore::new(), ReceiverOptions::default());
    assert_eq!(open_hex(&mut none, &t, 0).0, SecurityResult::NoKey);
}

#[test]
fn mode7_mac_mismatch_before_decryption() {
    let v = vector("oms-annexN-N2.3-SND-NR");
    let t = hex(v["frame_with_crc"].as_str().unwrap());
    let mut rx = Receiver::new(
        keys(0x1234_5678, "000102030405060708090A0B0C0D0E0E"),
        ReceiverOptions::default(),
    );
    let (r, app) = open_hex(&mut rx, &t, 0);
    assert_eq!(r, SecurityResult::MacMismatch);
    assert!(app.is_empty());
}

#[test]
fn ell_already_decrypted() {
    // The Kamstrup ELL II example with its payload in clear (PayloadCRC included).
    let v = vector("ell-ctr-exmbus-kam-omnipower");
    let mut t = hex(v["telegram_hex"].as_str().unwrap());
    let clear = hex(v["expected_ell_plaintext_incl_payload_crc"]
        .as_str()
        .unwrap());
    t[17..].copy_from_slice(&clear);
    let mut rx = Receiver::new(MemoryKeyStore::new(), ReceiverOptions::default());
    let (r, app) = open_hex(&mut rx, &t, 0);
    assert_eq!(r, SecurityResult::DecryptedByReceiver);
    assert_eq!(app, clear[3..]);
    let mut keyed = Receiver::new(
        keys(0x2734_3111, "0102030405060708090A0B0C0D0E0F10"),
        ReceiverOptions::default(),
    );
    assert_eq!(
        open_hex(&mut keyed, &t, 0).0,
        SecurityResult::PlaintextWithKey
    );
}

/// An example national handler: mode 16, "XOR with the key's first byte", with a one-byte sum.
struct Mode16;

impl NationalMode for Mode16 {
    fn mode(&self) -> u8 {
        16
    }
    fn name(&self) -> &'static str {
        "test mode 16"
    }
    fn open(&self, r: NationalRequest<'_>) -> NationalResult {
        let Some(key) = (r.keys)(&wmbus_security::key::KeyRequest {
            meter: r.meter,
            key_id: 0,
            key_version: None,
        }) else {
            return NationalResult::NoKey;
        };
        let Some((sum, data)) = r.payload.split_last_mut() else {
            return NationalResult::AuthenticationFailed;
        };
        if data.iter().fold(0u8, |a, b| a.wrapping_add(*b)) != *sum {
            return NationalResult::AuthenticationFailed;
        }
        for b in data.iter_mut() {
            *b ^= key.as_bytes()[0];
        }
        NationalResult::Opened {
            range: 0..r.payload.len() - 1,
            authenticated: true,
        }
    }
}

#[test]
fn national_mode_handler() {
    let mut rx = Receiver::new(
        keys(0x1234_5678, "55000000000000000000000000000000"),
        ReceiverOptions::default(),
    );
    assert_eq!(rx.national_mut().register(Box::new(Mode16)), Ok(()));
    assert_eq!(
        rx.national_mut().register(Box::new(Mode16)),
        Err(RegisterError::Taken(16))
    );
    let data = [0x04 ^ 0x55, 0x13 ^ 0x55, 0x01 ^ 0x55];
    let sum = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut t = hex("00449315785634123303 7A 01 00 0010"
        .replace(' ', "")
        .as_str());
    t.extend_from_slice(&data);
    t.push(sum);
    t[0] = (t.len() - 1) as u8;
    let (r, app) = open_hex(&mut rx, &t, 0);
    assert_eq!(r, SecurityResult::Authenticated);
    assert_eq!(app, [0x04, 0x13, 0x01]);
    let last = t.len() - 1;
    t[last] ^= 1;
    assert!(!open_hex(&mut rx, &t, 0).0.is_released());
    // Without a handler: unsupported, naming the mode.
    let mut plain = Receiver::new(MemoryKeyStore::new(), ReceiverOptions::default());
    assert_eq!(
        open_hex(&mut plain, &t, 0).0,
        SecurityResult::Unsupported(wmbus_frame::codepoints::SecurityMode(16))
    );
}

#[test]
fn modes_8_and_13_are_unsupported() {
    for (cf, mode) in [("0008", 8u8), ("000D", 13)] {
        let mut t = hex(&format!("00449315785634123303 7A 01 00 {cf} 00 11 22 33"));
        t[0] = (t.len() - 1) as u8;
        let mut rx = Receiver::new(MemoryKeyStore::new(), ReceiverOptions::default());
        let (r, _) = open_hex(&mut rx, &t, 0);
        assert_eq!(
            r,
            SecurityResult::Unsupported(wmbus_frame::codepoints::SecurityMode(mode))
        );
        assert_eq!(r.status(), Status::Unsupported);
    }
}

fn n3_fragments() -> Vec<Vec<u8>> {
    [
        "oms-annexN-N3.3-RSP-UD-fragment1",
        "oms-annexN-N3.4-RSP-UD-fragment2",
        "oms-annexN-N3.5-RSP-UD-fragment3",
    ]
    .iter()
    .map(|id| hex(vector(id)["frame_with_crc"].as_str().unwrap()))
    .collect()
}

#[test]
fn fragments_duplicate_missing_and_timeout() {
    let k = "000102030405060708090A0B0C0D0E0F";
    let f = n3_fragments();
    // In order: complete.
    let mut rx = Receiver::new(keys(0x1234_5678, k), ReceiverOptions::default());
    assert!(matches!(
        open_hex(&mut rx, &f[0], 0).0,
        SecurityResult::FragmentBuffered { fragment_id: 1, .. }
    ));
    assert!(matches!(
        open_hex(&mut rx, &f[1], 1).0,
        SecurityResult::FragmentBuffered { fragment_id: 2, .. }
    ));
    // A duplicate of fragment 2 is refused and the set survives.
    assert_eq!(
        open_hex(&mut rx, &f[1], 1).0,
        SecurityResult::FragmentRejected(FragmentError::Duplicate { fragment_id: 2 })
    );
    assert_eq!(open_hex(&mut rx, &f[2], 2).0, SecurityResult::Authenticated);
    // Missing fragment 2: the set is dropped.
    let mut rx = Receiver::new(keys(0x1234_5678, k), ReceiverOptions::default());
    open_hex(&mut rx, &f[0], 0);
    assert_eq!(
        open_hex(&mut rx, &f[2], 1).0,
        SecurityResult::FragmentRejected(FragmentError::Missing {
            expected: 2,
            received: 3
        })
    );
    // A later fragment alone.
    assert_eq!(
        open_hex(&mut rx, &f[1], 1).0,
        SecurityResult::FragmentRejected(FragmentError::FirstMissing { fragment_id: 2 })
    );
    // Timed out.
    let mut rx = Receiver::new(keys(0x1234_5678, k), ReceiverOptions::default());
    open_hex(&mut rx, &f[0], 0);
    assert_eq!(rx.poll_timeout(), Some(Instant::from_secs(60)));
    assert_eq!(
        open_hex(&mut rx, &f[1], 61).0,
        SecurityResult::FragmentRejected(FragmentError::TimedOut)
    );
    open_hex(&mut rx, &f[0], 100);
    assert_eq!(rx.handle_timeout(Instant::from_secs(200)), 1);
    // Replayed as a whole: the counter guards the reassembled message too.
    let mut rx = Receiver::new(keys(0x1234_5678, k), ReceiverOptions::default());
    for (i, frag) in f.iter().enumerate() {
        open_hex(&mut rx, frag, i as u64);
    }
    for (i, frag) in f.iter().enumerate() {
        let (r, _) = open_hex(&mut rx, frag, 10 + i as u64);
        if i == 2 {
            assert!(
                matches!(
                    r,
                    SecurityResult::Replayed {
                        counter: 2739,
                        last: 2739
                    }
                ),
                "{r:?}"
            );
        }
    }
}
