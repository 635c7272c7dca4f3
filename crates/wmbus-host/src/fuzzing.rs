//! Entry points shared by the fuzz targets and the corpus replay in `cargo test`.

use wmbus_security::time::Instant;

use crate::decoder::{DecodeOptions, Decoder};
use crate::render::{Format, write_line};

/// Decodes arbitrary bytes, split into frames by a leading length byte (as the
/// `security_open` target), with two decoders in lockstep over the fuzzing key store: the
/// direct JSON line ([`Decoder::decode_json`]) must equal the report's line byte for byte.
///
/// # Panics
/// When the two lines differ (that is the finding).
pub fn decode_json(data: &[u8]) {
    let options = DecodeOptions::default();
    let mut reference = Decoder::new(wmbus_security::fuzzing::keys(), options);
    let mut direct = Decoder::new(wmbus_security::fuzzing::keys(), options);
    let reception = crate::report::Reception::default();
    let mut rest = data;
    let mut now = 0;
    let (mut expected, mut got) = (Vec::new(), Vec::new());
    while let Some((&len, tail)) = rest.split_first() {
        let take = usize::from(len).min(tail.len());
        let (frame, next) = tail.split_at(take);
        rest = next;
        now += 1000;
        let at = Instant::from_millis(now);
        expected.clear();
        got.clear();
        write_line(&mut expected, &reference.decode(at, frame), Format::Json);
        direct.decode_json(at, frame, None, &reception, &mut got);
        assert!(
            expected == got,
            "direct line differs:\n{}\n{}",
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(&got)
        );
    }
}
