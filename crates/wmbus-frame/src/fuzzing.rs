//! Entry points shared by the fuzz targets (`fuzz/`) and the corpus replay in `cargo test`.
//! Each takes arbitrary bytes and must not panic; where a round trip applies it asserts it.

use crate::apl::{Item, Records, profile};
use crate::dll::{FrameFormat, MAX_RAW_FRAME_LEN};
use crate::frame::{Frame, normalize};

/// The whole frame parser: normalisation, every layer, re-emission of what parsed.
pub fn frame(data: &[u8]) {
    let mut buf = [0u8; MAX_RAW_FRAME_LEN];
    let Ok(n) = normalize(data, None, &mut buf) else {
        return;
    };
    let Some(bytes) = buf.get(..n.len) else {
        return;
    };
    let Ok(f) = Frame::parse(bytes, n.format) else {
        return;
    };
    let _ = f.meter();
    // Whatever parsed emits back to the same normalised bytes.
    let mut out = [0u8; MAX_RAW_FRAME_LEN];
    if let Ok(m) = f.repr.emit(&mut out) {
        assert_eq!(out.get(..m), Some(bytes), "emit(parse(b)) == b");
    }
    if n.format != FrameFormat::Wired {
        let _ = f.repr.emit_on_air(FrameFormat::A, &mut out);
        let _ = f.repr.emit_on_air(FrameFormat::B, &mut out);
    }
}

/// The record decoder, values, descriptions and compact profiles.
pub fn records(data: &[u8]) {
    let records: std::vec::Vec<_> = Records::new(data, 0)
        .filter_map(|item| match item {
            Ok(Item::Record(r)) => Some(r),
            _ => None,
        })
        .collect();
    for r in &records {
        let _ = r.value();
        let _ = r.describe();
        if r.vib.profile().is_some()
            && let Ok(points) = profile::expand(r, &records)
        {
            for _ in points {}
        }
    }
}

/// The SITP block list: every block that parses emits back to its bytes; secured data of
/// DSI 32h/33h parses or fails with an error.
pub fn sitp(data: &[u8]) {
    for block in crate::sitp::Blocks::new(data, 0) {
        let Ok(b) = block else { break };
        let mut out = [0u8; 512];
        if let Ok(n) = b.emit(&mut out) {
            let start = b.offset;
            assert_eq!(
                out.get(..n),
                data.get(start..start + n),
                "emit(parse(b)) == b"
            );
        }
        if let Ok(s) = crate::sitp::SecuredData::parse(&b) {
            let mut input = [0u8; 512];
            let _ = s.mac_input(&mut input);
        }
    }
}

/// Image-transfer messages: the first byte picks the parser (OMS command, OMS response,
/// ESMR 5 record, SMR5 image file); whatever parses emits back to its bytes.
pub fn image(data: &[u8]) {
    use crate::image::{esmr5, oms};
    let [selector, rest @ ..] = data else { return };
    let mut out = [0u8; 1024];
    match selector % 4 {
        0 => {
            if let Ok(c) = oms::Command::parse(rest, 1)
                && let Ok(n) = c.emit(&mut out)
            {
                assert_eq!(out.get(..n), Some(rest), "emit(parse(command))");
            }
        }
        1 => {
            if let Ok(r) = oms::Response::parse(rest, 1)
                && let Ok(n) = r.emit(&mut out)
            {
                assert_eq!(out.get(..n), Some(rest), "emit(parse(response))");
                let _ = r.lost_blocks().count();
            }
        }
        2 => {
            if let Ok(m) = esmr5::Message::parse(rest, 1)
                && let Ok(n) = m.emit(&mut out)
            {
                assert_eq!(out.get(..n), Some(rest), "emit(parse(record))");
            }
        }
        _ => {
            if let Ok(f) = esmr5::ImageFile::parse(rest) {
                assert_eq!(
                    Some(&f.header.to_bytes()[..]),
                    rest.get(..esmr5::HEADER_LEN),
                    "header round trip"
                );
                let _ = f.header.iv();
            }
        }
    }
}
