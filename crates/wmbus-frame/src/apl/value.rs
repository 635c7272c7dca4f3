//! The data types of EN 13757-3 Annex A, decoded without allocation.
//!
//! | type | coding |
//! |------|--------|
//! | A | BCD, least significant byte first; a most significant nibble Fh is a minus sign |
//! | B | signed binary integer (two's complement) |
//! | C | unsigned binary integer |
//! | D | bit field |
//! | F | date and time, 32 bits (minute, hour, day, month, year; IV and SU bits) |
//! | G | date, 16 bits |
//! | H | IEEE 754 single precision |
//! | I | date and time with seconds, 48 bits |
//! | J | time, 24 bits |
//! | K, L, M | daylight saving, listening window, date/time or duration: kept raw |
//!
//! BCD nibbles A–F (outside the sign) and dates with the IV bit or fields out of range are
//! reported as invalid, not as numbers.

use core::fmt;

use super::dib::DataField;
use super::vib::Coding;

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date {
    /// Year (2000–2080, 1981–1999 for the two-digit years 81–99).
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

/// A time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Time {
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59, when the type carries seconds.
    pub second: Option<u8>,
}

/// A date with a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    /// The date.
    pub date: Date,
    /// The time.
    pub time: Time,
    /// SU: summer time.
    pub summer_time: bool,
}

const fn year_from(two_digit: u8) -> Option<u16> {
    match two_digit {
        0..=80 => Some(2000 + two_digit as u16),
        81..=99 => Some(1900 + two_digit as u16),
        _ => None,
    }
}

const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 => {
            if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) {
                29
            } else {
                28
            }
        }
        _ => 0,
    }
}

impl Date {
    /// A valid date, or `None`.
    pub const fn new(year: u16, month: u8, day: u8) -> Option<Self> {
        if month == 0 || month > 12 || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Self { year, month, day })
    }

    /// Type G (2 bytes): day bits 0–4, month bits 8–11, year bits 5–7 and 12–15.
    pub const fn type_g(b: [u8; 2]) -> Option<Self> {
        let day = b[0] & 0x1F;
        let month = b[1] & 0x0F;
        let year = ((b[0] & 0xE0) >> 5) | ((b[1] & 0xF0) >> 1);
        match year_from(year) {
            Some(y) => Self::new(y, month, day),
            None => None,
        }
    }

    /// Encodes type G (years 2000–2099 as two digits; 1981–1999 too).
    pub const fn to_type_g(self) -> [u8; 2] {
        let y = (self.year % 100) as u8;
        [self.day | (y & 0x07) << 5, self.month | (y & 0x78) << 1]
    }

    /// The date `months` later (day clamped to the month's length).
    pub const fn add_months(self, months: i32) -> Option<Self> {
        let total = self.year as i32 * 12 + (self.month as i32 - 1) + months;
        if total < 0 {
            return None;
        }
        let year = (total / 12) as u16;
        let month = (total % 12 + 1) as u8;
        let dim = days_in_month(year, month);
        let day = if self.day > dim { dim } else { self.day };
        Self::new(year, month, day)
    }

    /// Days since 1970-01-01 (civil calendar).
    pub const fn to_days(self) -> i64 {
        let y = self.year as i64 - if self.month <= 2 { 1 } else { 0 };
        let era = if y >= 0 { y } else { y - 399 } / 400;
        let yoe = y - era * 400;
        let m = self.month as i64;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date of a day count since 1970-01-01.
    pub const fn from_days(days: i64) -> Option<Self> {
        let z = days + 719_468;
        let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        if y < 0 || y > u16::MAX as i64 {
            return None;
        }
        Self::new(y as u16, m as u8, d as u8)
    }
}

impl DateTime {
    /// Type F (4 bytes): minute, IV (bit 7), hour, hundred-year (bits 13..14), SU (bit 15),
    /// day, month, year. With a hundred-year field the year is `1900 + 100·HY + YY`;
    /// without one, years 0–80 are 2000–2080.
    pub const fn type_f(b: [u8; 4]) -> Option<Self> {
        if b[0] & 0x80 != 0 {
            return None;
        }
        let minute = b[0] & 0x3F;
        let hour = b[1] & 0x1F;
        let hundred = ((b[1] >> 5) & 0x3) as u16;
        let year = ((b[2] & 0xE0) >> 5) | ((b[3] & 0xF0) >> 1);
        let y = if hundred == 0 {
            match year_from(year) {
                Some(y) => y,
                None => return None,
            }
        } else if year <= 99 {
            1900 + 100 * hundred + year as u16
        } else {
            return None;
        };
        let Some(date) = Date::new(y, b[3] & 0x0F, b[2] & 0x1F) else {
            return None;
        };
        if minute > 59 || hour > 23 {
            return None;
        }
        Some(Self {
            date,
            time: Time {
                hour,
                minute,
                second: None,
            },
            summer_time: b[1] & 0x80 != 0,
        })
    }

    /// Encodes type F, with the hundred-year field (2008 is HY 1, YY 8).
    pub const fn to_type_f(self) -> [u8; 4] {
        let g = self.date.to_type_g();
        let hundred = (self.date.year.saturating_sub(1900) / 100) as u8 & 0x3;
        [
            self.time.minute,
            self.time.hour | hundred << 5 | if self.summer_time { 0x80 } else { 0 },
            g[0],
            g[1],
        ]
    }

    /// Type I (6 bytes): second, minute (IV bit 7), hour (SU bit 7), then the date as in F.
    pub const fn type_i(b: [u8; 6]) -> Option<Self> {
        let Some(f) = Self::type_f([b[1], b[2], b[3], b[4]]) else {
            return None;
        };
        let second = b[0] & 0x3F;
        if second > 59 {
            return None;
        }
        Some(Self {
            time: Time {
                second: Some(second),
                ..f.time
            },
            ..f
        })
    }

    /// Encodes type I (byte 6, week and daylight-saving information, 0).
    pub const fn to_type_i(self) -> [u8; 6] {
        let f = self.to_type_f();
        let s = match self.time.second {
            Some(s) => s,
            None => 0,
        };
        [s, f[0], f[1], f[2], f[3], 0]
    }
}

impl Time {
    /// Type J (3 bytes): second, minute, hour.
    pub const fn type_j(b: [u8; 3]) -> Option<Self> {
        let (s, m, h) = (b[0] & 0x3F, b[1] & 0x3F, b[2] & 0x1F);
        if s > 59 || m > 59 || h > 23 {
            return None;
        }
        Some(Self {
            hour: h,
            minute: m,
            second: Some(s),
        })
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)?;
        if let Some(s) = self.second {
            write!(f, ":{s:02}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}", self.date, self.time)
    }
}

/// A decoded value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// No data (data field 0h or 8h).
    Empty,
    /// A signed integer (type B) or a BCD number (type A).
    Signed(i64),
    /// An unsigned integer (type C).
    Unsigned(u64),
    /// A 32-bit real (type H).
    Real(f32),
    /// A bit field (type D): the bits, least significant first, and the byte count.
    Bits(u64),
    /// Type G.
    Date(Date),
    /// Type F or I.
    DateTime(DateTime),
    /// Type J.
    Time(Time),
    /// Text (LVAR 00h–BFh), as transmitted: last character first.
    Text(&'a [u8]),
    /// Bytes with no numeric reading (LVAR binary, raw codings, long integers).
    Bytes(&'a [u8]),
    /// An identifier as decimal digits (BCD identifiers keep leading zeros).
    Digits(&'a [u8], DataField),
    /// A manufacturer code (FD 0Ah).
    Manufacturer(crate::codepoints::ManufacturerCode),
    /// A value the standard's coding marks as invalid: BCD with nibbles A–F, a date with its
    /// IV bit or an impossible field. The raw bytes are kept.
    Invalid(&'a [u8]),
}

/// Reads `n` little-endian bytes as an unsigned integer (n ≤ 8).
#[inline]
pub fn le_unsigned(b: &[u8]) -> u64 {
    // The data field lengths, each one load.
    match *b {
        [] => 0,
        [x] => u64::from(x),
        [x, y] => u64::from(u16::from_le_bytes([x, y])),
        [x, y, z] => u64::from(u32::from_le_bytes([x, y, z, 0])),
        [x, y, z, w] => u64::from(u32::from_le_bytes([x, y, z, w])),
        _ => b
            .iter()
            .take(8)
            .enumerate()
            .fold(0, |acc, (i, &x)| acc | u64::from(x) << (8 * i)),
    }
}

/// Reads little-endian bytes as a two's complement signed integer (n ≤ 8).
#[inline]
pub fn le_signed(b: &[u8]) -> i64 {
    let n = b.len().min(8);
    let u = le_unsigned(b.get(..n).unwrap_or(&[]));
    if n == 0 || n == 8 {
        return u as i64;
    }
    let shift = 64 - 8 * n as u32;
    ((u << shift) as i64) >> shift
}

/// Type A: BCD, least significant byte first; a most significant nibble Fh is a minus sign.
/// `None` when any other nibble is A–F.
#[inline]
pub fn bcd(b: &[u8]) -> Option<i64> {
    let n = b.len();
    if n == 0 || n > 7 {
        return bcd_by_digit(b);
    }
    // All nibbles at once (SWAR): n ≤ 7 bytes fit in a u64 with room for the carries.
    let mut digits = le_unsigned(b);
    let top = 8 * n as u32 - 4;
    let negative = (digits >> top) & 0xF == 0xF;
    if negative {
        digits &= !(0xF << top);
    }
    let mask = (1u64 << (8 * n as u32)) - 1;
    let sixes = 0x0666_6666_6666_6666 & mask;
    // A nibble above 9 carries into the next one when 6 is added to every nibble; the
    // carries into nibble boundaries are the bits where the sum differs from the XOR.
    if ((digits + sixes) ^ digits ^ sixes) & 0x1111_1111_1111_1110 != 0 {
        return None;
    }
    let v = (digits & 0x0F0F_0F0F_0F0F_0F0F) + ((digits >> 4) & 0x0F0F_0F0F_0F0F_0F0F) * 10;
    let v = (v & 0x00FF_00FF_00FF_00FF) + ((v >> 8) & 0x00FF_00FF_00FF_00FF) * 100;
    let v = (v & 0x0000_FFFF_0000_FFFF) + ((v >> 16) & 0x0000_FFFF_0000_FFFF) * 10_000;
    let v = (v & 0xFFFF_FFFF) + (v >> 32) * 100_000_000;
    let v = i64::try_from(v).ok()?;
    Some(if negative { -v } else { v })
}

/// [`bcd`] one digit at a time, for lengths the word-wide path does not cover.
fn bcd_by_digit(b: &[u8]) -> Option<i64> {
    let mut value: i64 = 0;
    let mut negative = false;
    let digits = b.len() * 2;
    for (i, byte) in b.iter().rev().enumerate() {
        for (j, nibble) in [byte >> 4, byte & 0x0F].into_iter().enumerate() {
            let position = i * 2 + j;
            if position == 0 && nibble == 0xF && digits > 1 {
                negative = true;
                continue;
            }
            if nibble > 9 {
                return None;
            }
            value = value.checked_mul(10)?.checked_add(i64::from(nibble))?;
        }
    }
    Some(if negative { -value } else { value })
}

/// Decodes `data` as `data_field` says and `coding` refines.
pub fn decode<'a>(data_field: DataField, coding: Coding, data: &'a [u8]) -> Value<'a> {
    use DataField as F;
    match data_field {
        F::NoData | F::Selection => return Value::Empty,
        F::Special => return Value::Bytes(data),
        F::Variable => return Value::Bytes(data),
        _ => {}
    }
    match coding {
        Coding::Time => return time(data_field, data),
        Coding::Raw => return Value::Bytes(data),
        Coding::Identifier => return Value::Digits(data, data_field),
        Coding::Manufacturer => {
            return match data {
                [a, b] if data_field.is_integer() => {
                    Value::Manufacturer(crate::codepoints::ManufacturerCode::from_bytes([*a, *b]))
                }
                _ => Value::Bytes(data),
            };
        }
        _ => {}
    }
    if data_field.is_bcd() {
        return match bcd(data) {
            Some(v) => Value::Signed(v),
            None => Value::Invalid(data),
        };
    }
    if data_field == F::Real32 {
        return match data {
            [a, b, c, d] => Value::Real(f32::from_le_bytes([*a, *b, *c, *d])),
            _ => Value::Bytes(data),
        };
    }
    match coding {
        Coding::Bits => Value::Bits(le_unsigned(data)),
        Coding::Unsigned => Value::Unsigned(le_unsigned(data)),
        _ => Value::Signed(le_signed(data)),
    }
}

fn time(data_field: DataField, data: &[u8]) -> Value<'_> {
    let v = match data {
        [a, b] => Date::type_g([*a, *b]).map(Value::Date),
        [a, b, c] => Time::type_j([*a, *b, *c]).map(Value::Time),
        [a, b, c, d] => DateTime::type_f([*a, *b, *c, *d]).map(Value::DateTime),
        [a, b, c, d, e, f] => DateTime::type_i([*a, *b, *c, *d, *e, *f]).map(Value::DateTime),
        _ => Some(Value::Bytes(data)),
    };
    let _ = data_field;
    v.unwrap_or(Value::Invalid(data))
}

/// The LVAR length byte (EN 13757-3 §6.3.3, Table 5): the data length it announces and what
/// the data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lvar {
    /// 00h–BFh: ASCII text of that many bytes.
    Text(usize),
    /// C0h–C9h: positive BCD of n bytes.
    PositiveBcd(usize),
    /// D0h–D9h: negative BCD of n bytes.
    NegativeBcd(usize),
    /// E0h–EFh, F0h–F6h: binary number of n bytes.
    Binary(usize),
}

impl Lvar {
    /// Reads the length byte; `None` for reserved values.
    pub const fn from_byte(l: u8) -> Option<Self> {
        Some(match l {
            0x00..=0xBF => Self::Text(l as usize),
            0xC0..=0xC9 => Self::PositiveBcd((l - 0xC0) as usize),
            0xD0..=0xD9 => Self::NegativeBcd((l - 0xD0) as usize),
            0xE0..=0xEF => Self::Binary((l - 0xE0) as usize),
            0xF0..=0xF4 => Self::Binary(4 * (l - 0xEC) as usize),
            0xF5 => Self::Binary(48),
            0xF6 => Self::Binary(64),
            _ => return None,
        })
    }

    /// Data bytes after the length byte.
    pub const fn len(self) -> usize {
        match self {
            Self::Text(n) | Self::PositiveBcd(n) | Self::NegativeBcd(n) | Self::Binary(n) => n,
        }
    }

    /// True for a zero-length field.
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// Decodes LVAR data (after its length byte).
pub fn decode_lvar<'a>(lvar: Lvar, coding: Coding, data: &'a [u8]) -> Value<'a> {
    match lvar {
        Lvar::Text(_) => match coding {
            Coding::Raw => Value::Bytes(data),
            _ => Value::Text(data),
        },
        Lvar::PositiveBcd(_) => bcd(data).map_or(Value::Invalid(data), Value::Signed),
        Lvar::NegativeBcd(_) => bcd(data).map_or(Value::Invalid(data), |v| Value::Signed(-v)),
        Lvar::Binary(n) if n <= 8 => match coding {
            Coding::Number => Value::Signed(le_signed(data)),
            Coding::Unsigned => Value::Unsigned(le_unsigned(data)),
            Coding::Bits => Value::Bits(le_unsigned(data)),
            _ => Value::Bytes(data),
        },
        Lvar::Binary(_) => Value::Bytes(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    proptest::proptest! {
        /// The word-wide BCD reader agrees with the digit-by-digit one on every input.
        #[test]
        fn bcd_word_wide_equals_by_digit(b in proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, 0x00u8..=0x99, proptest::strategy::Just(0xF9u8)], 1..=7)) {
            proptest::prop_assert_eq!(bcd(&b), bcd_by_digit(&b));
        }
    }

    /// Every one- and two-byte input, both ways.
    #[test]
    fn bcd_short_inputs_exhaustive() {
        for x in 0..=0xFFFFu16 {
            let b = x.to_le_bytes();
            assert_eq!(bcd(&b), bcd_by_digit(&b), "{b:02X?}");
            assert_eq!(bcd(&b[..1]), bcd_by_digit(&b[..1]), "{b:02X?}");
        }
    }

    /// Worked by hand from EN 13757-3 Annex A.
    #[test]
    fn type_a_bcd() {
        assert_eq!(bcd(&[0x27, 0x04, 0x85, 0x02]), Some(2_850_427));
        assert_eq!(bcd(&[0x34, 0x12]), Some(1234));
        assert_eq!(bcd(&[0x34, 0xF2]), Some(-234));
        assert_eq!(bcd(&[0x3A, 0x12]), None);
        assert_eq!(bcd(&[0xFF, 0xFF]), None);
        assert_eq!(
            decode(DataField::Bcd4, Coding::Number, &[0x1A, 0x00]),
            Value::Invalid(&[0x1A, 0x00])
        );
    }

    #[test]
    fn types_b_c_d_h() {
        assert_eq!(le_signed(&[0xFF, 0xFF]), -1);
        assert_eq!(le_signed(&[0x00, 0x80]), -32768);
        assert_eq!(le_signed(&[0x01, 0x00, 0x80]), -8_388_607);
        assert_eq!(le_unsigned(&[0xFF, 0xFF]), 65535);
        assert_eq!(
            decode(DataField::Int16, Coding::Number, &[0xFE, 0xFF]),
            Value::Signed(-2)
        );
        assert_eq!(
            decode(DataField::Int16, Coding::Unsigned, &[0xFE, 0xFF]),
            Value::Unsigned(65534)
        );
        assert_eq!(
            decode(DataField::Int16, Coding::Bits, &[0x01, 0x80]),
            Value::Bits(0x8001)
        );
        // 1.5 as IEEE 754: 3FC00000h.
        assert_eq!(
            decode(DataField::Real32, Coding::Number, &[0x00, 0x00, 0xC0, 0x3F]),
            Value::Real(1.5)
        );
    }

    /// OMS Annex N N.2.1: 046D 32371F15 is 2008-05-31 23:50; N.3: 026C B218 is 2013-08-18.
    #[test]
    fn types_f_g_i_j() {
        let f = DateTime::type_f([0x32, 0x37, 0x1F, 0x15]).unwrap();
        assert_eq!(f.to_string(), "2008-05-31T23:50");
        assert_eq!(f.to_type_f(), [0x32, 0x37, 0x1F, 0x15]);
        assert_eq!(
            Date::type_g([0xB2, 0x18]).unwrap().to_string(),
            "2013-08-18"
        );
        assert_eq!(
            Date::type_g([0x81, 0x11]).unwrap().to_string(),
            "2012-01-01"
        );
        // The IV bit, and impossible fields, make it invalid.
        assert!(DateTime::type_f([0xB2, 0x37, 0x1F, 0x15]).is_none());
        assert!(Date::type_g([0xBF, 0x12]).is_none()); // 31 February 2013
        assert!(Date::type_g([0xA1, 0x1D]).is_none()); // month 13
        let i = DateTime::type_i([0x2A, 0x32, 0x37, 0x1F, 0x15, 0x00]).unwrap();
        assert_eq!(i.to_string(), "2008-05-31T23:50:42");
        assert_eq!(
            Time::type_j([0x05, 0x04, 0x03]).unwrap().to_string(),
            "03:04:05"
        );
    }

    #[test]
    fn date_arithmetic() {
        let d = Date::new(2012, 1, 31).unwrap();
        assert_eq!(d.add_months(1).unwrap().to_string(), "2012-02-29");
        assert_eq!(d.add_months(-1).unwrap().to_string(), "2011-12-31");
        assert_eq!(
            Date::from_days(d.to_days() + 1).unwrap().to_string(),
            "2012-02-01"
        );
        assert_eq!(Date::new(1970, 1, 1).unwrap().to_days(), 0);
    }

    #[test]
    fn lvar_lengths() {
        assert_eq!(Lvar::from_byte(0x07), Some(Lvar::Text(7)));
        assert_eq!(Lvar::from_byte(0xC3), Some(Lvar::PositiveBcd(3)));
        assert_eq!(Lvar::from_byte(0xD2), Some(Lvar::NegativeBcd(2)));
        assert_eq!(Lvar::from_byte(0xE4), Some(Lvar::Binary(4)));
        assert_eq!(Lvar::from_byte(0xF0), Some(Lvar::Binary(16)));
        assert_eq!(Lvar::from_byte(0xF4), Some(Lvar::Binary(32)));
        assert_eq!(Lvar::from_byte(0xF6), Some(Lvar::Binary(64)));
        assert_eq!(Lvar::from_byte(0xF7), None);
        assert_eq!(
            decode_lvar(Lvar::NegativeBcd(2), Coding::Number, &[0x34, 0x12]),
            Value::Signed(-1234)
        );
    }
}
