//! Format frames and compact frames (EN 13757-3 §5.6 and Annex G; CI 69h–6Bh, 79h, 7Bh, 73h).
//!
//! A meter that sends compact frames leaves out every DIB and VIB; the receiver restores them
//! from a full frame or format frame seen earlier with the same *format signature*: the
//! CRC-16/EN-13757 over the concatenated DIB and VIB bytes of the records (idle fillers
//! excluded). A compact frame carries `signature(2, LE) ‖ full-frame CRC(2, LE) ‖ data`; the
//! full-frame CRC is taken over the complete records. A format frame carries
//! `length ‖ signature(2, LE) ‖ DIB/VIB bytes`.

use super::dib::DibRepr;
use super::record::{Item, Record, Records};
use crate::crc::EN_13757;
use crate::error::{Error, ErrorKind, Layer, Result};

/// Writes the format (concatenated DIB and VIB bytes) of a full frame's records into `out`;
/// returns its length. Manufacturer data ends the format.
///
/// # Errors
/// A record error, or [`ErrorKind::BufferTooSmall`].
pub fn format_of(apl: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    let available = out.len();
    for item in Records::new(apl, 0) {
        let Item::Record(r) = item? else { break };
        let header_end = r.header_len();
        let start = r.offset;
        let src = apl.get(start..start + header_end).unwrap_or(&[]);
        let dst = out.get_mut(n..n + src.len()).ok_or(Error::new(
            Layer::Application,
            start,
            ErrorKind::BufferTooSmall {
                needed: n + src.len(),
                available,
            },
        ))?;
        dst.copy_from_slice(src);
        n += src.len();
    }
    Ok(n)
}

/// The format signature of a format.
pub fn signature(format: &[u8]) -> u16 {
    EN_13757.checksum(format)
}

/// The full-frame CRC of a full frame's records (fillers and manufacturer data excluded).
///
/// # Errors
/// A record error.
pub fn full_frame_crc(apl: &[u8]) -> Result<u16> {
    let mut digest = EN_13757.digest();
    for item in Records::new(apl, 0) {
        let Item::Record(r) = item? else { break };
        let end = r.data.as_ptr() as usize - apl.as_ptr() as usize + r.data.len();
        digest.update(apl.get(r.offset..end).unwrap_or(&[]));
    }
    Ok(digest.finalize())
}

/// A compact frame's application layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactFrame<'a> {
    /// Format signature.
    pub signature: u16,
    /// CRC of the full frame the data belongs to.
    pub full_frame_crc: u16,
    /// The record data without DIBs and VIBs.
    pub data: &'a [u8],
}

impl<'a> CompactFrame<'a> {
    /// Parses the application layer of CI 79h, 7Bh or 73h.
    ///
    /// # Errors
    /// Truncation.
    pub fn parse(apl: &'a [u8], base: usize) -> Result<Self> {
        match apl {
            [s0, s1, c0, c1, data @ ..] => Ok(Self {
                signature: u16::from_le_bytes([*s0, *s1]),
                full_frame_crc: u16::from_le_bytes([*c0, *c1]),
                data,
            }),
            _ => Err(Error::truncated(Layer::Application, base, 4, apl.len())),
        }
    }
}

/// A format frame's application layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatFrame<'a> {
    /// Format signature.
    pub signature: u16,
    /// The DIB/VIB bytes.
    pub format: &'a [u8],
}

impl<'a> FormatFrame<'a> {
    /// Parses the application layer of CI 69h–6Bh.
    ///
    /// # Errors
    /// Truncation, or a length byte that disagrees.
    pub fn parse(apl: &'a [u8], base: usize) -> Result<Self> {
        match apl {
            [len, s0, s1, rest @ ..] => {
                let format = rest.get(..usize::from(*len)).ok_or(Error::truncated(
                    Layer::Application,
                    base + 3,
                    usize::from(*len),
                    rest.len(),
                ))?;
                Ok(Self {
                    signature: u16::from_le_bytes([*s0, *s1]),
                    format,
                })
            }
            _ => Err(Error::truncated(Layer::Application, base, 3, apl.len())),
        }
    }
}

/// The records of a compact frame: headers from `format`, data from `data`.
#[derive(Debug, Clone)]
pub struct CompactRecords<'a> {
    format: &'a [u8],
    data: &'a [u8],
    data_base: usize,
    data_total: usize,
    done: bool,
}

impl<'a> CompactRecords<'a> {
    /// Pairs a format with a compact frame's data (whose first byte is at `data_base`).
    pub const fn new(format: &'a [u8], data: &'a [u8], data_base: usize) -> Self {
        Self {
            format,
            data,
            data_base,
            data_total: data.len(),
            done: false,
        }
    }
}

impl<'a> Iterator for CompactRecords<'a> {
    type Item = Result<Record<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.format.is_empty() {
            return None;
        }
        let offset = self.data_base + self.data_total - self.data.len();
        let (rest, dib_raw, vib) = match Records::header(self.format) {
            Ok(h) => h,
            Err((_, kind)) => {
                self.done = true;
                return Some(Err(Error::new(Layer::Application, offset, kind)));
            }
        };
        self.format = rest;
        let dib = DibRepr::from_bytes(dib_raw);
        let (lvar, len) = match dib.data_field.len() {
            Some(n) => (None, n),
            None => {
                let Some((&l, rest)) = self.data.split_first() else {
                    self.done = true;
                    return Some(Err(Error::truncated(Layer::Application, offset, 1, 0)));
                };
                let Some(lvar) = super::value::Lvar::from_byte(l) else {
                    self.done = true;
                    return Some(Err(Error::new(
                        Layer::Application,
                        offset,
                        ErrorKind::InvalidField("LVAR length byte (reserved value)"),
                    )));
                };
                self.data = rest;
                (Some(lvar), lvar.len())
            }
        };
        let Some(data) = self.data.get(..len) else {
            self.done = true;
            return Some(Err(Error::truncated(
                Layer::Application,
                offset,
                len,
                self.data.len(),
            )));
        };
        self.data = self.data.get(len..).unwrap_or(&[]);
        Some(Ok(Record::new(offset, dib_raw, vib, data, lvar)))
    }
}
