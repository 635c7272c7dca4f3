//! Compact profiles (EN 13757-3:2018 Annex F): a variable-length record holding a series of
//! values evenly spaced in time, relative to a base value and a base time in records of the
//! same storage number.
//!
//! Data: `spacing control ‖ spacing value ‖ elements…`. Spacing control: bits 7..6 increment
//! mode (00 absolute, 01 increments, 10 decrements, 11 signed difference), bits 5..4 spacing
//! unit (s, min, h, d), bits 3..0 element size as a DIF data field. Spacing value: 1–250 units;
//! with unit days, FDh is half a month and FEh a month; FEh with minutes is 6 months and with
//! hours 3 months; 00h an array without time. Elements hold the "illegal" coding (the most
//! negative signed, the largest unsigned value) where no value exists.
//!
//! A regular profile (VIFE 1Fh) runs forward from the base: element *i* has storage
//! `base + i + 1` and time `base time + (i + 1)·spacing`; an inverse profile (VIFE 13h) runs
//! backward. Increments add to the previous value (inverse: subtract).

use super::dib::DataField;
use super::record::Record;
use super::value::{self, Date, DateTime, Value};
use super::vib::{Coding, MAX_VIFE, ProfileKind};
use crate::error::{Error, ErrorKind, Layer, Result};

/// How elements relate to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncrementMode {
    /// 00: each element is a value.
    Absolute,
    /// 01: non-negative increments.
    Increments,
    /// 10: non-negative decrements.
    Decrements,
    /// 11: signed differences.
    SignedDifference,
}

/// Time between elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spacing {
    /// Seconds.
    Seconds(u8),
    /// Minutes.
    Minutes(u8),
    /// Hours.
    Hours(u8),
    /// Days.
    Days(u8),
    /// Months.
    Months(u8),
    /// Half months.
    HalfMonth,
    /// No time: an array.
    Array,
    /// A reserved spacing value.
    Reserved(u8),
}

/// A profile's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileHeader {
    /// Increment mode.
    pub mode: IncrementMode,
    /// Spacing.
    pub spacing: Spacing,
    /// Element coding.
    pub element: DataField,
}

impl ProfileHeader {
    /// Parses the two header bytes; returns the header and the element bytes.
    ///
    /// # Errors
    /// Truncation, or a variable-length or special element size.
    pub fn parse(data: &[u8], offset: usize) -> Result<(Self, &[u8])> {
        let [control, spacing, elements @ ..] = data else {
            return Err(Error::truncated(Layer::Application, offset, 2, data.len()));
        };
        let mode = match control >> 6 {
            0 => IncrementMode::Absolute,
            1 => IncrementMode::Increments,
            2 => IncrementMode::Decrements,
            _ => IncrementMode::SignedDifference,
        };
        let element = DataField::from_nibble(*control);
        if element.len().is_none_or(|n| n == 0) {
            return Err(Error::new(
                Layer::Application,
                offset,
                ErrorKind::InvalidField("compact profile element size"),
            ));
        }
        let unit = (control >> 4) & 0x3;
        let spacing = match (unit, *spacing) {
            (_, 0) => Spacing::Array,
            (0, v @ 1..=250) => Spacing::Seconds(v),
            (1, v @ 1..=250) => Spacing::Minutes(v),
            (2, v @ 1..=250) => Spacing::Hours(v),
            (3, v @ 1..=250) => Spacing::Days(v),
            (3, 0xFD) => Spacing::HalfMonth,
            (3, 0xFE) => Spacing::Months(1),
            (1, 0xFE) => Spacing::Months(6),
            (2, 0xFE) => Spacing::Months(3),
            (_, v) => Spacing::Reserved(v),
        };
        Ok((
            Self {
                mode,
                spacing,
                element,
            },
            elements,
        ))
    }

    /// One element's value; `None` for the illegal coding or invalid BCD.
    pub fn element(&self, bytes: &[u8]) -> Option<i64> {
        let n = bytes.len();
        if self.element.is_bcd() {
            return value::bcd(bytes);
        }
        let unsigned = matches!(
            self.mode,
            IncrementMode::Increments | IncrementMode::Decrements
        );
        if unsigned {
            let v = value::le_unsigned(bytes);
            let illegal = if n >= 8 {
                u64::MAX
            } else {
                (1u64 << (8 * n)) - 1
            };
            (v != illegal).then(|| i64::try_from(v).ok()).flatten()
        } else {
            let v = value::le_signed(bytes);
            let illegal = if n >= 8 {
                i64::MIN
            } else {
                -(1i64 << (8 * n - 1))
            };
            (v != illegal).then_some(v)
        }
    }
}

/// A point of an expanded profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfilePoint {
    /// Index in the profile, from 0.
    pub index: usize,
    /// Storage number.
    pub storage: u64,
    /// The value in the base record's unit (raw, before its exponent); `None` where the
    /// element is illegal or a value it depends on is.
    pub value: Option<i64>,
    /// The point in time, when the base time and spacing give one.
    pub time: Option<PointTime>,
}

/// A profile point's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointTime {
    /// A date (base time of type G).
    Date(Date),
    /// A date and time.
    DateTime(DateTime),
}

fn shift(time: PointTime, spacing: Spacing, steps: i64) -> Option<PointTime> {
    let date_time = match time {
        PointTime::Date(d) => DateTime {
            date: d,
            time: value::Time {
                hour: 0,
                minute: 0,
                second: None,
            },
            summer_time: false,
        },
        PointTime::DateTime(dt) => dt,
    };
    let seconds = |unit: i64, n: u8| -> Option<DateTime> {
        let t = &date_time.time;
        let total = date_time.date.to_days() * 86_400
            + i64::from(t.hour) * 3600
            + i64::from(t.minute) * 60
            + i64::from(t.second.unwrap_or(0))
            + steps * unit * i64::from(n);
        let date = Date::from_days(total.div_euclid(86_400))?;
        let s = total.rem_euclid(86_400);
        Some(DateTime {
            date,
            time: value::Time {
                hour: u8::try_from(s / 3600).ok()?,
                minute: u8::try_from(s % 3600 / 60).ok()?,
                second: date_time.time.second.map(|_| (s % 60) as u8),
            },
            summer_time: date_time.summer_time,
        })
    };
    let shifted = match spacing {
        Spacing::Seconds(n) => seconds(1, n)?,
        Spacing::Minutes(n) => seconds(60, n)?,
        Spacing::Hours(n) => seconds(3600, n)?,
        Spacing::Days(n) => seconds(86_400, n)?,
        Spacing::Months(n) => DateTime {
            date: date_time
                .date
                .add_months(i32::try_from(steps * i64::from(n)).ok()?)?,
            ..date_time
        },
        Spacing::HalfMonth | Spacing::Array | Spacing::Reserved(_) => return None,
    };
    Some(match time {
        PointTime::Date(_) => PointTime::Date(shifted.date),
        PointTime::DateTime(_) => PointTime::DateTime(shifted),
    })
}

/// Expands a compact-profile record against the other records of its telegram.
///
/// # Errors
/// A malformed profile header or element list.
pub fn expand<'a>(
    profile: &Record<'a>,
    records: &[Record<'_>],
) -> Result<impl Iterator<Item = ProfilePoint> + 'a> {
    let kind = profile.vib.profile().unwrap_or(ProfileKind::Regular);
    let (header, elements) = ProfileHeader::parse(profile.data, profile.offset)?;
    let size = header.element.len().unwrap_or(1).max(1);
    if elements.len() % size != 0 {
        return Err(Error::new(
            Layer::Application,
            profile.offset,
            ErrorKind::InvalidField("compact profile length is not a whole number of elements"),
        ));
    }
    let storage = profile.dib.storage;
    let base_time = records.iter().find_map(|r| {
        if r.dib.storage != storage || r.describe().coding != Coding::Time {
            return None;
        }
        match r.value() {
            Value::Date(d) => Some(PointTime::Date(d)),
            Value::DateTime(dt) => Some(PointTime::DateTime(dt)),
            _ => None,
        }
    });
    let mut needle = [0u8; 1 + MAX_VIFE];
    let n = profile.vib.without_profile(&mut needle);
    let needle_vib = needle.get(..n).unwrap_or(&[]);
    let base_value = records.iter().find_map(|r| {
        let same = r.dib.storage == storage
            && r.dib.tariff == profile.dib.tariff
            && r.dib.subunit == profile.dib.subunit
            && r.vib.raw == needle_vib
            && r.vib.profile().is_none();
        if !same {
            return None;
        }
        match r.value() {
            Value::Signed(v) => Some(v),
            Value::Unsigned(v) => i64::try_from(v).ok(),
            _ => None,
        }
    });
    let inverse = kind == ProfileKind::Inverse;
    let mut running = base_value;
    let points = elements.chunks(size).enumerate().map(move |(i, bytes)| {
        let element = header.element(bytes);
        let value = match header.mode {
            IncrementMode::Absolute => element,
            mode => {
                let delta = match mode {
                    IncrementMode::Decrements => element.map(|e| -e),
                    _ => element,
                };
                let next = match (running, delta) {
                    (Some(r), Some(d)) => {
                        if inverse {
                            r.checked_sub(d)
                        } else {
                            r.checked_add(d)
                        }
                    }
                    _ => None,
                };
                running = next;
                next
            }
        };
        let steps = (i as i64 + 1) * if inverse { -1 } else { 1 };
        ProfilePoint {
            index: i,
            storage: storage + i as u64 + 1,
            value,
            time: base_time.and_then(|t| shift(t, header.spacing, steps)),
        }
    });
    Ok(points)
}
