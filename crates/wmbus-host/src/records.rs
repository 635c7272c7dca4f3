//! Data records to report records: values scaled to their units, dates as ISO 8601, text
//! restored to reading order, compact profiles expanded into their points.

use wmbus_frame::apl::dib::DataField;
use wmbus_frame::apl::profile::{self, PointTime};
use wmbus_frame::apl::value::Value;
use wmbus_frame::apl::vib::{Coding, Modifier, VifTable};
use wmbus_frame::apl::{Item, Record, Records};

use crate::report::{CompactString, JsonValue, RecordReport};

/// Hex digit pairs of every byte value, upper case.
const HEX_UPPER: [[u8; 2]; 256] = {
    let digits = b"0123456789ABCDEF";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        // invariant: i < 256 and each nibble < 16.
        #[allow(clippy::indexing_slicing)]
        {
            t[i] = [digits[i >> 4], digits[i & 0x0F]];
        }
        i += 1;
    }
    t
};

/// Upper-case hex of `b` into `out` (two characters per byte, as far as `out` reaches).
pub(crate) fn hex_into(out: &mut [u8], b: &[u8]) {
    for (pair, &x) in out.chunks_exact_mut(2).zip(b) {
        pair.copy_from_slice(HEX_UPPER.get(usize::from(x)).unwrap_or(b"00"));
    }
}

/// Upper-case hex.
pub fn hex(b: &[u8]) -> String {
    let mut out = vec![0u8; 2 * b.len()];
    hex_into(&mut out, b);
    String::from_utf8(out).unwrap_or_default()
}

/// Upper-case hex, held inline when short (DIBs, VIBs).
pub fn hex_compact(b: &[u8]) -> CompactString {
    let mut buf = [0u8; 48];
    match buf.get_mut(..2 * b.len()) {
        Some(out) => {
            hex_into(out, b);
            CompactString::from(core::str::from_utf8(out).unwrap_or(""))
        }
        None => CompactString::from(hex(b)),
    }
}

/// Upper-case hex of one byte.
pub fn hex_byte(x: u8) -> String {
    hex(&[x])
}

/// Lower-case hex (identification numbers print as their BCD digits).
pub fn hex_lower(b: &[u8]) -> String {
    let mut out = Vec::with_capacity(2 * b.len());
    for &x in b {
        out.extend_from_slice(&hex_pair(x, b"0123456789abcdef"));
    }
    String::from_utf8(out).unwrap_or_default()
}

fn hex_pair(x: u8, digits: &[u8; 16]) -> [u8; 2] {
    let d = |n: u8| digits.get(usize::from(n & 0x0F)).copied().unwrap_or(b'0');
    [d(x >> 4), d(x)]
}

/// A manufacturer code as its three letters.
pub fn manufacturer(m: wmbus_frame::codepoints::ManufacturerCode) -> String {
    String::from_utf8_lossy(&m.letters()).into_owned()
}

/// An identification number as printed on the meter (8 digits).
pub fn ident(i: wmbus_frame::codepoints::Ident) -> String {
    hex_lower(&i.0.to_be_bytes())
}

/// `v` with at least `width` digits (at most 10), right-aligned: the buffer and where the
/// digits start.
pub(crate) fn padded_digits(v: u32, width: usize) -> ([u8; 10], usize) {
    let mut buf = [b'0'; 10];
    let mut v = v;
    let mut i = buf.len();
    while i > 0 && (v > 0 || buf.len() - i < width) {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (v % 10) as u8;
        }
        v /= 10;
    }
    (buf, i)
}

fn push_digits(out: &mut CompactString, v: u32, width: usize) {
    let (buf, i) = padded_digits(v, width);
    for &b in buf.get(i..).unwrap_or(&[]) {
        out.push(char::from(b));
    }
}

fn push_date(out: &mut CompactString, d: &wmbus_frame::apl::value::Date) {
    push_digits(out, u32::from(d.year), 4);
    out.push('-');
    push_digits(out, u32::from(d.month), 2);
    out.push('-');
    push_digits(out, u32::from(d.day), 2);
}

fn push_time(out: &mut CompactString, t: &wmbus_frame::apl::value::Time) {
    push_digits(out, u32::from(t.hour), 2);
    out.push(':');
    push_digits(out, u32::from(t.minute), 2);
    if let Some(s) = t.second {
        out.push(':');
        push_digits(out, u32::from(s), 2);
    }
}

/// `YYYY-MM-DD`, as the type's `Display` writes it, without the formatting machinery.
pub fn date_text(d: &wmbus_frame::apl::value::Date) -> CompactString {
    let mut s = CompactString::with_capacity(10);
    push_date(&mut s, d);
    s
}

/// `YYYY-MM-DDTHH:MM[:SS]`.
pub fn datetime_text(d: &wmbus_frame::apl::value::DateTime) -> CompactString {
    let mut s = CompactString::with_capacity(19);
    push_date(&mut s, &d.date);
    s.push('T');
    push_time(&mut s, &d.time);
    s
}

/// `HH:MM[:SS]`.
pub fn time_text(t: &wmbus_frame::apl::value::Time) -> CompactString {
    let mut s = CompactString::with_capacity(8);
    push_time(&mut s, t);
    s
}

/// `raw × 10^exponent`: exact integers stay integers; other values are the nearest double to
/// the exact decimal (division by an exact power of ten is correctly rounded).
pub fn scale(raw: i128, exponent: i8) -> JsonValue {
    if exponent >= 0 {
        let factor = 10i128.checked_pow(u32::from(exponent.unsigned_abs()));
        if let Some(v) = factor.and_then(|f| raw.checked_mul(f))
            && let Ok(i) = i64::try_from(v)
        {
            return JsonValue::Integer(i);
        }
        return JsonValue::Number(raw as f64 * 10f64.powi(i32::from(exponent)));
    }
    let k = i32::from(exponent.unsigned_abs());
    if k <= 22 {
        JsonValue::Number(raw as f64 / 10f64.powi(k))
    } else {
        JsonValue::Number(raw as f64 * 10f64.powi(-k))
    }
}

/// Text as read: LVAR text is sent last character first.
pub fn text(b: &[u8]) -> String {
    b.iter()
        .rev()
        .map(|&c| {
            if (0x20..0x7F).contains(&c) {
                char::from(c)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

fn digits(b: &[u8], df: DataField) -> String {
    if df.is_bcd() {
        let mut s = String::with_capacity(b.len() * 2);
        for byte in b.iter().rev() {
            for n in [byte >> 4, byte & 0x0F] {
                s.push(
                    char::from_digit(u32::from(n), 16)
                        .unwrap_or('?')
                        .to_ascii_uppercase(),
                );
            }
        }
        s
    } else {
        wmbus_frame::apl::value::le_unsigned(b).to_string()
    }
}

/// The JSON value of a record, and whether it is invalid.
pub fn json_value(r: &Record<'_>, exponent: i8) -> (JsonValue, bool) {
    match r.value() {
        Value::Empty => (JsonValue::Null, false),
        Value::Signed(v) => (scale(i128::from(v), exponent), false),
        Value::Unsigned(v) => (scale(i128::from(v), exponent), false),
        Value::Real(v) => {
            let f = f64::from(v) * 10f64.powi(i32::from(exponent));
            if f.is_finite() {
                (JsonValue::Number(f), false)
            } else {
                (JsonValue::Null, true)
            }
        }
        Value::Bits(v) => (
            i64::try_from(v).map_or(JsonValue::Null, JsonValue::Integer),
            false,
        ),
        Value::Date(d) => (JsonValue::Text(date_text(&d)), false),
        Value::DateTime(d) => (JsonValue::Text(datetime_text(&d)), false),
        Value::Time(t) => (JsonValue::Text(time_text(&t)), false),
        Value::Text(t) if t.iter().all(|c| (0x20..0x7F).contains(c)) => {
            (JsonValue::Text(text(t).into()), false)
        }
        Value::Text(t) => (JsonValue::Text(hex_compact(t)), false),
        Value::Bytes(b) => (JsonValue::Text(hex_compact(b)), false),
        Value::Digits(b, df) => {
            let s = digits(b, df);
            let bad = df.is_bcd() && s.chars().any(|c| !c.is_ascii_digit());
            (
                if bad {
                    JsonValue::Null
                } else {
                    JsonValue::Text(s.into())
                },
                bad,
            )
        }
        Value::Manufacturer(m) => (JsonValue::Text(manufacturer(m).into()), false),
        Value::Invalid(_) => (JsonValue::Null, true),
    }
}

fn annotations(r: &Record<'_>) -> (Vec<String>, Option<&'static str>) {
    let mut out = Vec::new();
    let mut error = None;
    for m in r.vib.modifiers() {
        match m {
            Modifier::Annotation(a) => out.push(a.to_string()),
            Modifier::Scale(_) => {}
            Modifier::Error(e) => error = Some(e),
            Modifier::ManufacturerSpecific => out.push("manufacturer_specific_vife".into()),
            Modifier::CompactProfile(k) => out.push(
                match k {
                    wmbus_frame::apl::vib::ProfileKind::Regular => "compact_profile",
                    wmbus_frame::apl::vib::ProfileKind::WithRegisterNumbers => {
                        "compact_profile_with_register_numbers"
                    }
                    wmbus_frame::apl::vib::ProfileKind::Inverse => "inverse_compact_profile",
                }
                .into(),
            ),
            Modifier::Unknown(c) => out.push(format!("vife_{c:02X}")),
        }
    }
    (out, error)
}

/// One record to its report.
pub fn record_report(r: &Record<'_>) -> RecordReport {
    let desc = r.describe();
    let (value, invalid) = if r.vib.profile().is_some() {
        // The profile itself: its points follow as records of their own.
        (JsonValue::Null, false)
    } else {
        json_value(r, desc.exponent)
    };
    let (annotations, record_error) = annotations(r);
    let raw = match (&value, r.value()) {
        (JsonValue::Null, _) if !r.data.is_empty() => Some(hex(r.data)),
        (_, Value::Bytes(_)) => None,
        _ if desc.coding == Coding::Raw => Some(hex(r.data)),
        _ => None,
    };
    let mut vif = hex_compact(r.vib.raw);
    if let Some(t) = r.vib.plain_text {
        vif.push_str(&hex(&[u8::try_from(t.len()).unwrap_or(u8::MAX)]));
        vif.push_str(&hex(t));
    }
    RecordReport {
        quantity: desc.quantity,
        value,
        unit: desc.unit,
        function: r.dib.function.name(),
        storage: r.dib.storage,
        tariff: r.dib.tariff,
        subunit: r.dib.subunit,
        dif: hex_compact(r.dib_raw),
        vif,
        annotations,
        unit_text: (r.vib.table() == VifTable::PlainText)
            .then(|| r.vib.plain_text.map(text).unwrap_or_default()),
        record_error,
        invalid,
        raw,
        time: None,
        profile_index: None,
        offset: r.offset,
    }
}

/// What the record list of an application layer gave.
#[derive(Debug, Default)]
pub struct Decoded {
    /// The records, compact profiles followed by their points.
    pub records: Vec<RecordReport>,
    /// Manufacturer data after DIF 0Fh/1Fh, hex.
    pub manufacturer_data: Option<String>,
    /// DIF 1Fh seen.
    pub more_records_follow: bool,
    /// The first error, naming its offset.
    pub error: Option<wmbus_frame::Error>,
    /// One or two bytes after the last record that form no record, ignored.
    pub ignored_tail: Option<String>,
    /// DIF 7Fh: a global readout request.
    pub global_readout: bool,
    /// The format signature of the record headers (EN 13757-3 Annex G: CRC over every
    /// DIB and VIB), when every record could be read: what a compact frame would name.
    pub format_signature: Option<u16>,
}

/// Decodes every record of `apl` (offsets relative to `base`).
pub fn decode_records(apl: &[u8], base: usize) -> Decoded {
    let mut out = Decoded::default();
    let mut parsed: Vec<Record<'_>> = Vec::with_capacity(16);
    let mut signature = wmbus_frame::crc::EN_13757.digest();
    for item in Records::new(apl, base) {
        match item {
            Ok(Item::Record(r)) => {
                let start = r.offset.saturating_sub(base);
                signature.update(apl.get(start..start + r.header_len()).unwrap_or(&[]));
                parsed.push(r);
            }
            Ok(Item::ManufacturerData {
                more_follow, data, ..
            }) => {
                out.manufacturer_data = Some(hex(data));
                out.more_records_follow = more_follow;
            }
            Ok(Item::GlobalReadout { .. }) => out.global_readout = true,
            Err(e) => {
                // One or two bytes after the last record (and its fillers) that do not make a
                // record: some receivers keep the last block's CRC. Reported, not fatal.
                let last_end = parsed.last().map_or(0, |r| {
                    (r.data.as_ptr() as usize + r.data.len()).saturating_sub(apl.as_ptr() as usize)
                });
                let rest = apl.get(last_end..).unwrap_or(&[]);
                let tail = rest
                    .iter()
                    .position(|&b| b != 0x2F)
                    .map_or(&[][..], |i| rest.get(i..).unwrap_or(&[]));
                if matches!(e.kind, wmbus_frame::ErrorKind::Truncated { .. })
                    && (1..=2).contains(&tail.len())
                {
                    out.ignored_tail = Some(hex(tail));
                } else {
                    out.error = Some(e);
                }
            }
        }
    }
    if out.error.is_none() && !parsed.is_empty() {
        out.format_signature = Some(signature.finalize());
    }
    finish(&parsed, &mut out);
    out
}

/// Decodes records that came from elsewhere (a compact frame's).
pub fn from_records(parsed: &[Record<'_>]) -> Decoded {
    let mut out = Decoded::default();
    finish(parsed, &mut out);
    out
}

fn finish(parsed: &[Record<'_>], out: &mut Decoded) {
    out.records.reserve(parsed.len());
    for r in parsed {
        out.records.push(record_report(r));
        // Profiles with register numbers have no public element layout: kept raw.
        if !matches!(
            r.vib.profile(),
            Some(
                wmbus_frame::apl::vib::ProfileKind::Regular
                    | wmbus_frame::apl::vib::ProfileKind::Inverse
            )
        ) {
            continue;
        }
        match profile::expand(r, parsed) {
            Ok(points) => {
                let desc = r.describe();
                let (mut annotations, _) = annotations(r);
                annotations.retain(|a| !a.contains("compact_profile"));
                annotations.push("profile_point".into());
                for p in points {
                    out.records.push(RecordReport {
                        quantity: desc.quantity,
                        value: p
                            .value
                            .map_or(JsonValue::Null, |v| scale(i128::from(v), desc.exponent)),
                        unit: desc.unit,
                        function: r.dib.function.name(),
                        storage: p.storage,
                        tariff: r.dib.tariff,
                        subunit: r.dib.subunit,
                        dif: hex_compact(r.dib_raw),
                        vif: hex_compact(r.vib.raw),
                        annotations: annotations.clone(),
                        unit_text: None,
                        record_error: None,
                        invalid: p.value.is_none(),
                        raw: None,
                        time: p.time.map(|t| match t {
                            PointTime::Date(d) => date_text(&d).into_string(),
                            PointTime::DateTime(d) => datetime_text(&d).into_string(),
                        }),
                        profile_index: Some(p.index),
                        offset: r.offset,
                    });
                }
            }
            Err(e) => {
                if out.error.is_none() {
                    out.error = Some(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written texts equal the types' `Display` (the reference) on every input.
    #[test]
    fn texts_equal_display() {
        use wmbus_frame::apl::value::{Date, DateTime, Time};
        for year in [0u16, 7, 99, 1999, 2026, 9999, 65535] {
            for (month, day) in [(0u8, 0u8), (1, 9), (12, 31), (255, 255)] {
                let date = Date { year, month, day };
                assert_eq!(date_text(&date), date.to_string());
                for second in [None, Some(0), Some(59), Some(255)] {
                    let time = Time {
                        hour: 23,
                        minute: 5,
                        second,
                    };
                    assert_eq!(time_text(&time), time.to_string());
                    let dt = DateTime {
                        date,
                        time,
                        summer_time: false,
                    };
                    assert_eq!(datetime_text(&dt), dt.to_string());
                }
            }
        }
        for x in [0u32, 0x1234_5678, 0xFFFF_FFFF, 0x0000_00AB] {
            let i = wmbus_frame::codepoints::Ident(x);
            assert_eq!(ident(i), i.to_string());
        }
        for m in [0u16, 0x2C2D, 0x7FFF, 0xFFFF] {
            let m = wmbus_frame::codepoints::ManufacturerCode(m);
            assert_eq!(manufacturer(m), m.to_string());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex(&all), hex::encode_upper(&all));
        assert_eq!(hex_lower(&all), hex::encode(&all));
    }

    #[test]
    fn scaling_is_exact_where_it_can_be() {
        assert_eq!(scale(2_850_427, -2), JsonValue::Number(28504.27));
        assert_eq!(scale(19960, -1), JsonValue::Number(1996.0));
        assert_eq!(scale(1995, 0), JsonValue::Integer(1995));
        assert_eq!(scale(12, 3), JsonValue::Integer(12000));
        assert_eq!(
            serde_json::to_string(&scale(411_979, -3)).unwrap(),
            "411.979"
        );
    }
}
