//! The record grammar (EN 13757-3 §6): `DIF [DIFE…] VIF [VIFE…] [plain-text unit] data`, read
//! by hand (the hot path of every decode) and written back byte for byte.

use super::dib::{DibRepr, MAX_DIFE, SpecialFunction};
use super::value::{self, Lvar, Value};
use super::vib::{self, Description, MAX_VIFE, Vib};
use crate::error::{Error, ErrorKind, Layer, Result};

/// One data record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    /// Offset of the DIF in the application layer.
    pub offset: usize,
    /// DIF and DIFEs exactly as received.
    pub dib_raw: &'a [u8],
    /// What the DIB says.
    pub dib: DibRepr,
    /// VIF, VIFEs and plain-text unit.
    pub vib: Vib<'a>,
    /// The data, after the LVAR byte for variable-length records.
    pub data: &'a [u8],
    /// The LVAR byte, for variable-length records.
    pub lvar: Option<Lvar>,
    /// What the VIB means (computed once, when the record is read).
    pub description: Description,
}

/// What the record grammar yields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// A data record.
    Record(Record<'a>),
    /// Manufacturer-specific data (DIF 0Fh or 1Fh) to the end of the application layer.
    ManufacturerData {
        /// Offset of the DIF.
        offset: usize,
        /// DIF 1Fh: more records follow in the next telegram.
        more_follow: bool,
        /// The bytes after the DIF.
        data: &'a [u8],
    },
    /// A global readout request (DIF 7Fh).
    GlobalReadout {
        /// Offset of the DIF.
        offset: usize,
    },
}

impl<'a> Record<'a> {
    /// A record from its parts (the description is computed here).
    pub fn new(
        offset: usize,
        dib_raw: &'a [u8],
        vib: Vib<'a>,
        data: &'a [u8],
        lvar: Option<Lvar>,
    ) -> Self {
        Self {
            offset,
            dib_raw,
            dib: DibRepr::from_bytes(dib_raw),
            vib,
            data,
            lvar,
            description: vib.describe(),
        }
    }

    /// What the VIB means, exponent adjusted by multiplicative VIFEs.
    pub const fn describe(&self) -> Description {
        self.description
    }

    /// The value, decoded as DIF and VIF say.
    pub fn value(&self) -> Value<'a> {
        let coding = self.description.coding;
        match self.lvar {
            Some(l) => value::decode_lvar(l, coding, self.data),
            None => value::decode(self.dib.data_field, coding, self.data),
        }
    }

    /// DIB and VIB bytes: what the format signature of a compact frame covers.
    pub fn header_len(&self) -> usize {
        self.dib_raw.len() + self.vib.raw.len() + self.vib.plain_text.map_or(0, |t| t.len() + 1)
    }
}

/// The length of a byte followed by up to `max` extension bytes, each announced by bit 7 of
/// the one before: the DIB (DIF and DIFEs) and the VIB (VIF and VIFEs) alike. A chain cut
/// short by the end of the input ends there (the next read reports the truncation); `None`
/// when it is longer than `1 + max`.
fn chain_len(input: &[u8], max: usize) -> Option<usize> {
    let mut n = 0;
    for b in input {
        n += 1;
        if b & 0x80 == 0 {
            break;
        }
        if n > max {
            return None;
        }
    }
    Some(n.max(1))
}

/// A record's header: the rest of the input, the DIB and the VIB.
pub(crate) type Header<'a> = (&'a [u8], &'a [u8], Vib<'a>);

/// An error inside a record: its offset from the record's start, and what.
type At = (usize, ErrorKind);

const fn truncated(needed: usize, available: usize) -> ErrorKind {
    ErrorKind::Truncated { needed, available }
}

/// The records of an application layer, in order; idle fillers are skipped. After an error
/// the iterator ends (the rest cannot be framed).
#[derive(Debug, Clone)]
pub struct Records<'a> {
    input: &'a [u8],
    base: usize,
    total: usize,
    done: bool,
}

impl<'a> Records<'a> {
    /// Records of `apl`, whose first byte is at `base` for error offsets.
    pub const fn new(apl: &'a [u8], base: usize) -> Self {
        Self {
            input: apl,
            base,
            total: apl.len(),
            done: false,
        }
    }

    fn offset(&self) -> usize {
        self.base + self.total - self.input.len()
    }

    fn error(&mut self, at: usize, kind: ErrorKind) -> Option<Result<Item<'a>>> {
        self.done = true;
        Some(Err(Error::new(Layer::Application, at, kind)))
    }

    /// Reads one record's header (DIB and VIB, plain-text unit included) at the input.
    #[inline(always)]
    pub(crate) fn header(input: &'a [u8]) -> core::result::Result<Header<'a>, At> {
        let dib_len = chain_len(input, MAX_DIFE).ok_or((0, ErrorKind::ChainTooLong))?;
        let (dib_raw, rest) = input
            .split_at_checked(dib_len)
            .ok_or((0, truncated(1, 0)))?;
        if rest.is_empty() {
            return Err((input.len(), truncated(1, 0)));
        }
        let vib_len = chain_len(rest, MAX_VIFE).ok_or((dib_len, ErrorKind::ChainTooLong))?;
        let (vib_raw, rest) = rest
            .split_at_checked(vib_len)
            .ok_or((dib_len, truncated(1, 0)))?;
        let mut vib = Vib {
            raw: vib_raw,
            plain_text: None,
        };
        if vib.table() != vib::VifTable::PlainText {
            return Ok((rest, dib_raw, vib));
        }
        // The length byte, then the text.
        let Some((&len, text)) = rest.split_first() else {
            return Err((input.len(), truncated(1, 0)));
        };
        let Some((text, rest)) = text.split_at_checked(usize::from(len)) else {
            return Err((input.len() - text.len(), truncated(1, text.len())));
        };
        vib.plain_text = Some(text);
        Ok((rest, dib_raw, vib))
    }

    /// Reads one record at the input: its header, then its data as the DIB says.
    #[inline(always)]
    fn record(input: &'a [u8], offset: usize) -> core::result::Result<(&'a [u8], Record<'a>), At> {
        // The usual records: a DIF with at most one DIFE (a storage number or tariff), one
        // primary VIF without extension, fixed-length data.
        let usual = match *input {
            [dif, ..] if dif & 0x80 == 0 => Some((1, DibRepr::from_dif(dif))),
            [dif, dife, ..] if dife & 0x80 == 0 => Some((2, DibRepr::from_dif_dife(dif, dife))),
            _ => None,
        };
        if let Some((dib_len, dib)) = usual
            && let Some((dib_raw, after)) = input.split_at_checked(dib_len)
            && let [vif, after @ ..] = after
            && *vif < 0x7B
            && let Some(len) = dib.data_field.len()
            && let Some((data, rest)) = after.split_at_checked(len)
            && let Some(vib_raw) = input.get(dib_len..=dib_len)
        {
            return Ok((
                rest,
                Record {
                    offset,
                    dib_raw,
                    dib,
                    vib: Vib {
                        raw: vib_raw,
                        plain_text: None,
                    },
                    data,
                    lvar: None,
                    description: vib::primary(*vif),
                },
            ));
        }
        let (rest, dib_raw, vib) = Self::header(input)?;
        let dib = DibRepr::from_bytes(dib_raw);
        let at = |r: &[u8]| input.len() - r.len();
        let (lvar, len, rest) = match dib.data_field.len() {
            Some(n) => (None, n, rest),
            None => {
                let Some((&l, after)) = rest.split_first() else {
                    return Err((at(rest), truncated(1, 0)));
                };
                let lvar = Lvar::from_byte(l).ok_or((
                    at(rest),
                    ErrorKind::InvalidField("LVAR length byte (reserved value)"),
                ))?;
                (Some(lvar), lvar.len(), after)
            }
        };
        let (data, rest) = rest
            .split_at_checked(len)
            .ok_or((at(rest), truncated(1, rest.len())))?;
        Ok((
            rest,
            Record {
                offset,
                dib_raw,
                dib,
                vib,
                data,
                lvar,
                description: vib.describe(),
            },
        ))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Item<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        // Idle fillers (EN 13757-3 Table 6) are skipped.
        let skip = self.input.iter().take_while(|&&b| b == 0x2F).count();
        self.input = self.input.get(skip..).unwrap_or(&[]);
        let &dif = self.input.first()?;
        let start = self.offset();
        if dif & 0x0F == 0x0F {
            let rest = self.input.get(1..).unwrap_or(&[]);
            return match SpecialFunction::from_dif(dif) {
                SpecialFunction::IdleFiller => None,
                SpecialFunction::GlobalReadout => {
                    self.input = rest;
                    Some(Ok(Item::GlobalReadout { offset: start }))
                }
                SpecialFunction::ManufacturerData | SpecialFunction::ManufacturerDataMoreFollow => {
                    self.done = true;
                    Some(Ok(Item::ManufacturerData {
                        offset: start,
                        more_follow: dif == 0x1F,
                        data: rest,
                    }))
                }
                SpecialFunction::Reserved(_) => self.error(
                    start,
                    ErrorKind::InvalidField("DIF: reserved special function"),
                ),
            };
        }
        match Self::record(self.input, start) {
            Ok((rest, record)) => {
                self.input = rest;
                Some(Ok(Item::Record(record)))
            }
            Err((at, kind)) => self.error(start + at, kind),
        }
    }
}

/// A record to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRepr<'a> {
    /// DIB fields (encoded in the shortest form).
    pub dib: DibRepr,
    /// VIF and VIFEs, extension bits included (see [`vib::encode`]).
    pub vib: &'a [u8],
    /// Plain-text unit, last character first (VIF 7Ch/FCh only).
    pub plain_text: Option<&'a [u8]>,
    /// Data bytes (for variable length: after the LVAR byte).
    pub data: &'a [u8],
    /// The LVAR byte for variable-length records.
    pub lvar: Option<u8>,
}

impl RecordRepr<'_> {
    /// Bytes [`Self::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.dib.encode().map_or(0, |(_, n)| n)
            + self.vib.len()
            + self.plain_text.map_or(0, |t| 1 + t.len())
            + usize::from(self.lvar.is_some())
            + self.data.len()
    }

    /// Writes the record; returns the length.
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`], or [`ErrorKind::ChainTooLong`] when the DIB needs more
    /// than 10 DIFEs, or [`ErrorKind::InvalidField`] when the data length disagrees with the DIF.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let (dib, n) =
            self.dib
                .encode()
                .ok_or(Error::new(Layer::Application, 0, ErrorKind::ChainTooLong))?;
        if let Some(len) = self.dib.data_field.len()
            && len != self.data.len()
        {
            return Err(Error::new(
                Layer::Application,
                0,
                ErrorKind::InvalidField("data length differs from the DIF's"),
            ));
        }
        let mut w = crate::reader::Writer::new(out, Layer::Application);
        w.put(dib.get(..n).unwrap_or(&[]))?;
        w.put(self.vib)?;
        if let Some(t) = self.plain_text {
            w.u8(u8::try_from(t.len()).map_err(|_| {
                Error::new(
                    Layer::Application,
                    0,
                    ErrorKind::InvalidField("plain-text unit too long"),
                )
            })?)?;
            w.put(t)?;
        }
        if let Some(l) = self.lvar {
            w.u8(l)?;
        }
        w.put(self.data)?;
        Ok(w.position())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apl::dib::DataField;
    use crate::apl::value::{Date, DateTime};

    fn records(hex: &str) -> std::vec::Vec<Item<'static>> {
        let bytes: &'static [u8] =
            std::boxed::Box::leak(hex::decode(hex).unwrap().into_boxed_slice());
        Records::new(bytes, 0).map(|r| r.unwrap()).collect()
    }

    fn rec<'a>(i: &Item<'a>) -> Record<'a> {
        match i {
            Item::Record(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    /// OMS Annex N N.2.1 plaintext.
    #[test]
    fn n21_records() {
        let items = records("2F2F0C1427048502046D32371F1502FD1700002F2F2F2F2F2F2F2F2F2F2F2F2F");
        assert_eq!(items.len(), 3);
        let v = rec(&items[0]);
        let d = v.describe();
        assert_eq!((d.quantity, d.unit, d.exponent), ("volume", Some("m3"), -2));
        assert_eq!(v.value(), Value::Signed(2_850_427));
        let t = rec(&items[1]);
        assert_eq!(t.describe().quantity, "datetime");
        assert_eq!(
            t.value(),
            Value::DateTime(DateTime::type_f([0x32, 0x37, 0x1F, 0x15]).unwrap())
        );
        let e = rec(&items[2]);
        assert_eq!(e.describe().quantity, "error_flags");
        assert_eq!(e.value(), Value::Bits(0));
    }

    #[test]
    fn storage_tariff_subunit() {
        // DIF 8C: BCD8 with extension; DIFE 04: storage bits 1..4 = 4 → storage 8.
        let r = rec(&records("8C041390523400")[0]);
        assert_eq!((r.dib.storage, r.dib.tariff, r.dib.subunit), (8, 0, 0));
        // DIF C4 (storage LSB, ext), DIFE 5F (subunit 1, tariff 1, storage 15·2), DIFE 01.
        let r = rec(&records("C4DF0113D2040000")[0]);
        assert_eq!(r.dib.storage, 1 | 15 << 1 | 1 << 5);
        assert_eq!(r.dib.tariff, 1);
        assert_eq!(r.dib.subunit, 1);
        let date = rec(&records("82046C8111")[0]);
        assert_eq!(date.value(), Value::Date(Date::new(2012, 1, 1).unwrap()));
    }

    #[test]
    fn text_and_manufacturer_data() {
        // ABB firmware version: LVAR text "0.82.1B" (last character first) = "B1.28.0".
        let items = records("0DFD8E0007302E38322E31420F0102");
        let r = rec(&items[0]);
        assert_eq!(r.describe().quantity, "firmware_version");
        assert_eq!(r.value(), Value::Text(b"0.82.1B"));
        assert!(matches!(
            items[1],
            Item::ManufacturerData {
                more_follow: false,
                data: [1, 2],
                ..
            }
        ));
    }

    /// The short ways for the usual headers (one DIF, or a DIF and one DIFE, then one
    /// primary VIF) read what the general reader reads: every DIF, a spread of DIFEs, every
    /// VIF, with the data complete and cut short.
    #[test]
    fn usual_headers_read_as_the_general_reader_does() {
        let data = [0x12u8, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0];
        let mut checked = 0;
        for dif in 0..=0xFFu8 {
            if dif & 0x0F == 0x0F {
                continue; // special functions
            }
            let difes: &[u8] = if dif & 0x80 == 0 {
                &[]
            } else {
                &[0x00, 0x01, 0x0F, 0x10, 0x35, 0x40, 0x7F]
            };
            for dife in difes
                .iter()
                .map(Some)
                .chain(difes.is_empty().then_some(None))
            {
                for vif in 0..0x80u8 {
                    for cut in [0usize, 3, 8] {
                        let mut input = std::vec![dif];
                        input.extend(dife);
                        input.push(vif);
                        let header_len = input.len();
                        input.extend_from_slice(&data[..cut]);
                        let got = Records::new(&input, 5).next();
                        // The general reader, by parts.
                        let dib_raw = &input[..header_len - 1];
                        let vib = Vib {
                            raw: &input[header_len - 1..header_len],
                            plain_text: None,
                        };
                        if vib.table() != vib::VifTable::Primary {
                            continue;
                        }
                        match (got, DataField::from_nibble(dif).len()) {
                            (Some(Ok(Item::Record(r))), Some(len)) => {
                                assert!(len <= cut);
                                let expected = Record::new(
                                    5,
                                    dib_raw,
                                    vib,
                                    &input[header_len..header_len + len],
                                    None,
                                );
                                assert_eq!(r, expected, "{input:02X?}");
                                checked += 1;
                            }
                            (Some(Err(e)), Some(len)) => assert!(len > cut, "{input:02X?}: {e:?}"),
                            _ => {}
                        }
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked}");
    }

    #[test]
    fn errors_name_the_offset() {
        let bytes = hex::decode("0C1427048502046D3237").unwrap();
        let err = Records::new(&bytes, 20).find_map(|r| r.err()).unwrap();
        assert_eq!(err.layer, Layer::Application);
        assert!(matches!(err.kind, ErrorKind::Truncated { .. }));
        assert_eq!(err.offset, 26 + 2);
        let chain = hex::decode("8480808080808080808080800013").unwrap();
        let err = Records::new(&chain, 0).find_map(|r| r.err()).unwrap();
        assert_eq!(err.kind, ErrorKind::ChainTooLong);
        let lvar = hex::decode("0D13F7").unwrap();
        assert!(Records::new(&lvar, 0).any(|r| r.is_err()));
    }
}
