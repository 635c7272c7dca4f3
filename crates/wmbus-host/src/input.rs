//! Input lines, recognised one by one: plain hex (with or without CRCs, spaces, colons or a
//! `0x` prefix), rtl_wmbus lines (`T1;1;1;time;rssi;…;0x…`), rtl_433 JSON lines (the `data`
//! field, with `rssi`, `mode` and `time`), and the `telegram=|HEX|` lines of simulation files.

use crate::report::Reception;

/// One input line, recognised.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Nothing to decode (blank, comment, an rtl_wmbus line whose CRC check failed, …).
    Skip,
    /// A telegram.
    Telegram {
        /// The bytes.
        bytes: Vec<u8>,
        /// What the receiver said.
        reception: Reception,
        /// The line's format.
        kind: LineKind,
    },
    /// A line that looks like none of the formats.
    Invalid(String),
}

/// Which format a line was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Hex.
    Hex,
    /// rtl_wmbus.
    RtlWmbus,
    /// rtl_433 JSON.
    Rtl433,
    /// `telegram=|HEX|`.
    Simulation,
}

const SEPARATOR: u8 = 0xFE;
const BAD: u8 = 0xFF;

/// Each byte's hex value, or [`SEPARATOR`] for the separators hex may carry, or [`BAD`].
const HEX_DIGIT: [u8; 256] = {
    let mut t = [BAD; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let v = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            b' ' | b'\t' | b':' | b'-' | b'|' | b'_' => SEPARATOR,
            _ => BAD,
        };
        // invariant: c < 256.
        #[allow(clippy::indexing_slicing)]
        {
            t[c] = v;
        }
        c += 1;
    }
    t
};

/// Parses hex: ignores spaces, `:` and `-` separators, `|` markers and a `0x` prefix.
///
/// # Errors
/// A character that is neither a hex digit nor a separator (naming its position), an odd
/// number of digits, or no digits.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if let Some(bytes) = hex_bytes_only(t.as_bytes()) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(t.len() / 2);
    let mut high = None;
    let mut digits = 0usize;
    for (i, c) in t.bytes().enumerate() {
        let nibble = match HEX_DIGIT.get(usize::from(c)).copied().unwrap_or(BAD) {
            SEPARATOR => continue,
            BAD => {
                return Err(format!(
                    "input: '{}' at character {} is not hexadecimal",
                    char::from(c),
                    i + 1
                ));
            }
            n => n,
        };
        digits += 1;
        match high.take() {
            None => high = Some(nibble),
            Some(h) => out.push(h << 4 | nibble),
        }
    }
    if !digits.is_multiple_of(2) {
        return Err(format!("input: odd number of hex digits ({digits})"));
    }
    if digits == 0 {
        return Err("input: no hex digits".into());
    }
    Ok(out)
}

/// The usual text: hex digits only, an even number of them (SIMD, `faster-hex`).
fn hex_bytes_only(t: &[u8]) -> Option<Vec<u8>> {
    if t.is_empty() || !t.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0u8; t.len() / 2];
    faster_hex::hex_decode(t, &mut out).ok()?;
    Some(out)
}

/// Recognises one line as read from a file: [`parse_line`] of its text, with the usual
/// line (hex digits only, ASCII) taken without the UTF-8 check first.
pub fn parse_line_bytes(line: &[u8]) -> Line {
    if let Some(bytes) = hex_bytes_only(line.trim_ascii()) {
        return Line::Telegram {
            bytes,
            reception: Reception::default(),
            kind: LineKind::Hex,
        };
    }
    match core::str::from_utf8(line) {
        Ok(t) => parse_line(t),
        Err(e) => Line::Invalid(format!(
            "input: not UTF-8 text (byte {} of the line)",
            e.valid_up_to() + 1
        )),
    }
}

fn rtl_wmbus(line: &str) -> Line {
    // MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_ID;0x<telegram>
    let fields: Vec<&str> = line.split(';').collect();
    let [mode, crc_ok, code_ok, time, rssi, ..] = fields.as_slice() else {
        return Line::Invalid("rtl_wmbus: too few fields".into());
    };
    if *crc_ok != "1" || *code_ok != "1" {
        return Line::Skip;
    }
    let Some(data) = fields
        .iter()
        .rev()
        .find(|f| f.trim_start().starts_with("0x"))
    else {
        return Line::Invalid("rtl_wmbus: no 0x telegram field".into());
    };
    match parse_hex(data) {
        Ok(bytes) => Line::Telegram {
            bytes,
            reception: Reception {
                rssi: rssi.trim().parse().ok(),
                rssi_unit: Some("rtl_wmbus"),
                link_mode: Some((*mode).to_string()),
                time: Some((*time).to_string()),
            },
            kind: LineKind::RtlWmbus,
        },
        Err(e) => Line::Invalid(e),
    }
}

fn rtl_433(line: &str) -> Line {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return Line::Invalid("rtl_433: not valid JSON".into());
    };
    let Some(data) = v.get("data").and_then(serde_json::Value::as_str) else {
        return Line::Skip;
    };
    let mut bytes = match parse_hex(data) {
        Ok(b) => b,
        Err(e) => return Line::Invalid(e),
    };
    // rtl_433 keeps the last block's CRC after the telegram (L says where it ends).
    if let Some(&l) = bytes.first() {
        let want = usize::from(l) + 1;
        if bytes.len() == want + 2 {
            bytes.truncate(want);
        }
    }
    let mode = v.get("mode").and_then(serde_json::Value::as_str);
    Line::Telegram {
        bytes,
        reception: Reception {
            rssi: v.get("rssi").and_then(serde_json::Value::as_f64),
            rssi_unit: v.get("rssi").map(|_| "dB"),
            link_mode: mode.map(|m| m.to_string()),
            time: v
                .get("time")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
        },
        kind: LineKind::Rtl433,
    }
}

/// Recognises one line.
pub fn parse_line(line: &str) -> Line {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
        return Line::Skip;
    }
    if t.starts_with('{') {
        return rtl_433(t);
    }
    if let Some(rest) = t.strip_prefix("telegram=") {
        let inner = rest.trim().trim_matches('|');
        let inner = inner.split('|').next().unwrap_or(inner);
        return match parse_hex(&inner.replace('_', "")) {
            Ok(bytes) => Line::Telegram {
                bytes,
                reception: Reception::default(),
                kind: LineKind::Simulation,
            },
            Err(e) => Line::Invalid(e),
        };
    }
    // A plain hex line (the usual capture) is recognised without the separator scan.
    if let Some(bytes) = hex_bytes_only(t.as_bytes()) {
        return Line::Telegram {
            bytes,
            reception: Reception::default(),
            kind: LineKind::Hex,
        };
    }
    if t.contains(';') {
        return rtl_wmbus(t);
    }
    match parse_hex(t) {
        Ok(bytes) => Line::Telegram {
            bytes,
            reception: Reception::default(),
            kind: LineKind::Hex,
        },
        Err(e) => Line::Invalid(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as read give what their text gives, the usual hex line taken early included.
    #[test]
    fn bytes_read_as_their_text() {
        for line in [
            "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3",
            "  2e44931578563412\t",
            "\u{a0}2E44931578563412\u{a0}",
            "0x2E44 9315:78",
            "2E4493157",
            "",
            "   ",
            "# 2E44931578563412",
            "// comment",
            "T1;1;1;2026-11-28 00:00:00.000;97;148;33225544;0x1844ae4c4455223368077a55000000041389e20100023b0000",
            "{\"data\":\"2E44931578563412\"}",
            "telegram=|2E44931578563412|",
            "zz",
        ] {
            assert_eq!(
                parse_line_bytes(line.as_bytes()),
                parse_line(line),
                "{line:?}"
            );
        }
        assert!(matches!(
            parse_line_bytes(b"2E44\xFF93"),
            Line::Invalid(e) if e.contains("byte 5")
        ));
    }

    #[test]
    fn formats() {
        assert_eq!(parse_line("  # comment"), Line::Skip);
        let Line::Telegram { bytes, kind, .. } = parse_line("0x2E44 9315:78") else {
            panic!()
        };
        assert_eq!(
            (bytes, kind),
            (vec![0x2E, 0x44, 0x93, 0x15, 0x78], LineKind::Hex)
        );
        let Line::Telegram {
            bytes,
            reception,
            kind,
        } = parse_line(
            "T1;1;1;2026-11-28 00:00:00.000;97;148;33225544;0x1844ae4c4455223368077a55000000041389e20100023b0000",
        )
        else {
            panic!()
        };
        assert_eq!(kind, LineKind::RtlWmbus);
        assert_eq!(bytes.len(), 25);
        assert_eq!(reception.link_mode.as_deref(), Some("T1"));
        assert_eq!(reception.rssi, Some(97.0));
        assert_eq!(parse_line("T1;1;0;2026-11-28;97;148;1;0x1844"), Line::Skip);
        let Line::Telegram {
            bytes, reception, ..
        } = parse_line(
            r#"{"time":"2026-11-28 10:00:00","model":"Wireless-MBus","mode":"T","id":33225544,"data":"1844ae4c4455223368077a55000000041389e20100023b0000ABCD","rssi":-12.5}"#,
        )
        else {
            panic!()
        };
        assert_eq!(bytes.len(), 25, "trailing CRC dropped");
        assert_eq!(reception.rssi, Some(-12.5));
        let Line::Telegram { bytes, kind, .. } =
            parse_line("telegram=|1844AE4C4455223368077A55000000_041389E20100023B0000|")
        else {
            panic!()
        };
        assert_eq!((bytes.len(), kind), (25, LineKind::Simulation));
        assert!(matches!(parse_line("hello"), Line::Invalid(_)));
        assert!(matches!(parse_line("abc"), Line::Invalid(_)));
    }
}
