//! Entry points shared by the fuzz targets and the corpus replay in `cargo test`.

use alloc::vec::Vec;

use wmbus_frame::codepoints::Ident;
use wmbus_frame::dll::MAX_RAW_FRAME_LEN;
use wmbus_frame::frame::{Frame, normalize};

use crate::key::{Key, MemoryKeyStore};
use crate::receiver::{Receiver, ReceiverOptions};
use crate::time::Instant;

/// A receiver with keys for the identification numbers the test vectors use.
pub fn receiver() -> Receiver<MemoryKeyStore> {
    Receiver::new(
        keys(),
        ReceiverOptions {
            diagnostics: true,
            allow_des: true,
            ..ReceiverOptions::default()
        },
    )
}

/// Keys for the identification numbers the test vectors and the benchmark telegram use.
pub fn keys() -> MemoryKeyStore {
    let mut keys = MemoryKeyStore::new();
    for (id, key) in [
        (
            0x1234_5678,
            [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
                0x0E, 0x0F,
            ],
        ),
        (
            0x2734_3111,
            [
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
                0x0F, 0x10,
            ],
        ),
        (
            0x5382_0306,
            [
                0xBF, 0x90, 0x2D, 0xD6, 0xDF, 0xAD, 0xAF, 0xE8, 0x3E, 0x4A, 0xE6, 0x83, 0x2B, 0x5F,
                0xA1, 0x4C,
            ],
        ),
        (
            0x2025_1128,
            [
                0x0F, 0x1E, 0x2D, 0x3C, 0x4B, 0x5A, 0x69, 0x78, 0x87, 0x96, 0xA5, 0xB4, 0xC3, 0xD2,
                0xE1, 0xF0,
            ],
        ),
    ] {
        keys.insert(None, Ident(id), None, Key::new(key));
    }
    keys
}

/// Opens arbitrary bytes, split into frames by a leading length byte, against a fixed key
/// store (so fragments and replays across frames are exercised too).
pub fn open(data: &[u8]) {
    let mut rx = receiver();
    let mut plain = Vec::new();
    let mut rest = data;
    let mut now = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(take);
        rest = next;
        now += 1000;
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let Ok(n) = normalize(frame, None, &mut buf) else {
            continue;
        };
        let Some(bytes) = buf.get(..n.len) else {
            continue;
        };
        let Ok(f) = Frame::parse(bytes, n.format) else {
            continue;
        };
        let o = rx.open(Instant::from_millis(now), &f, &mut plain);
        // Released data is inside the buffer; nothing unauthenticated is released.
        assert!(o.application.end <= plain.len() || !o.result.is_released());
        rx.handle_timeout(Instant::from_millis(now));
    }
}
