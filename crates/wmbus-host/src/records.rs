//! Data records to report records: values scaled to their units, dates as ISO 8601, text
//! restored to reading order, compact profiles expanded into their points.

use wmbus_frame::apl::dib::DataField;
use wmbus_frame::apl::profile::{self, PointTime};
use wmbus_frame::apl::value::Value;
use wmbus_frame::apl::vib::{Coding, Modifier, VifTable};
use wmbus_frame::apl::{Item, Record, Records};

use crate::report::{JsonValue, RecordReport};

/// Upper-case hex.
pub fn hex(b: &[u8]) -> String {
    hex::encode_upper(b)
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
        Value::Date(d) => (JsonValue::Text(d.to_string()), false),
        Value::DateTime(d) => (JsonValue::Text(d.to_string()), false),
        Value::Time(t) => (JsonValue::Text(t.to_string()), false),
        Value::Text(t) if t.iter().all(|c| (0x20..0x7F).contains(c)) => {
            (JsonValue::Text(text(t)), false)
        }
        Value::Text(t) => (JsonValue::Text(hex(t)), false),
        Value::Bytes(b) => (JsonValue::Text(hex(b)), false),
        Value::Digits(b, df) => {
            let s = digits(b, df);
            let bad = df.is_bcd() && s.chars().any(|c| !c.is_ascii_digit());
            (
                if bad {
                    JsonValue::Null
                } else {
                    JsonValue::Text(s)
                },
                bad,
            )
        }
        Value::Manufacturer(m) => (JsonValue::Text(m.to_string()), false),
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
    let mut vif = hex(r.vib.raw);
    if let Some(t) = r.vib.plain_text {
        vif.push_str(&format!("{:02X}", t.len()));
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
        dif: hex(r.dib_raw),
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
}

/// Decodes every record of `apl` (offsets relative to `base`).
pub fn decode_records(apl: &[u8], base: usize) -> Decoded {
    let mut out = Decoded::default();
    let mut parsed: Vec<Record<'_>> = Vec::new();
    for item in Records::new(apl, base) {
        match item {
            Ok(Item::Record(r)) => parsed.push(r),
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
                        dif: hex(r.dib_raw),
                        vif: hex(r.vib.raw),
                        annotations: annotations.clone(),
                        unit_text: None,
                        record_error: None,
                        invalid: p.value.is_none(),
                        raw: None,
                        time: p.time.map(|t| match t {
                            PointTime::Date(d) => d.to_string(),
                            PointTime::DateTime(d) => d.to_string(),
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
