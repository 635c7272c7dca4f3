//! DIB: data information block, `DIF ‖ DIFE*` (EN 13757-3 §6.3).
//!
//! DIF: bit 7 extension, bit 6 storage number LSB, bits 5..4 function, bits 3..0 data field.
//! DIFE: bit 7 extension, bit 6 subunit, bits 5..4 tariff, bits 3..0 storage number; each DIFE
//! adds the next higher bits of the three. At most 10 DIFEs.

use core::fmt;

/// Data field: how long the data is and how it is coded (EN 13757-3 Table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataField {
    /// 0h: no data.
    NoData,
    /// 1h: 8-bit integer.
    Int8,
    /// 2h: 16-bit integer.
    Int16,
    /// 3h: 24-bit integer.
    Int24,
    /// 4h: 32-bit integer.
    Int32,
    /// 5h: 32-bit real (type H).
    Real32,
    /// 6h: 48-bit integer.
    Int48,
    /// 7h: 64-bit integer.
    Int64,
    /// 8h: selection for readout (no data).
    Selection,
    /// 9h: 2-digit BCD.
    Bcd2,
    /// Ah: 4-digit BCD.
    Bcd4,
    /// Bh: 6-digit BCD.
    Bcd6,
    /// Ch: 8-digit BCD.
    Bcd8,
    /// Dh: variable length (LVAR byte first).
    Variable,
    /// Eh: 12-digit BCD.
    Bcd12,
    /// Fh: special functions (the whole DIF says which).
    Special,
}

impl DataField {
    /// From the DIF's low nibble.
    pub const fn from_nibble(n: u8) -> Self {
        match n & 0x0F {
            0x0 => Self::NoData,
            0x1 => Self::Int8,
            0x2 => Self::Int16,
            0x3 => Self::Int24,
            0x4 => Self::Int32,
            0x5 => Self::Real32,
            0x6 => Self::Int48,
            0x7 => Self::Int64,
            0x8 => Self::Selection,
            0x9 => Self::Bcd2,
            0xA => Self::Bcd4,
            0xB => Self::Bcd6,
            0xC => Self::Bcd8,
            0xD => Self::Variable,
            0xE => Self::Bcd12,
            _ => Self::Special,
        }
    }

    /// The low nibble.
    pub const fn nibble(self) -> u8 {
        match self {
            Self::NoData => 0x0,
            Self::Int8 => 0x1,
            Self::Int16 => 0x2,
            Self::Int24 => 0x3,
            Self::Int32 => 0x4,
            Self::Real32 => 0x5,
            Self::Int48 => 0x6,
            Self::Int64 => 0x7,
            Self::Selection => 0x8,
            Self::Bcd2 => 0x9,
            Self::Bcd4 => 0xA,
            Self::Bcd6 => 0xB,
            Self::Bcd8 => 0xC,
            Self::Variable => 0xD,
            Self::Bcd12 => 0xE,
            Self::Special => 0xF,
        }
    }

    /// Data length in bytes; `None` for variable length and special functions.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(self) -> Option<usize> {
        Some(match self {
            Self::NoData | Self::Selection => 0,
            Self::Int8 | Self::Bcd2 => 1,
            Self::Int16 | Self::Bcd4 => 2,
            Self::Int24 | Self::Bcd6 => 3,
            Self::Int32 | Self::Real32 | Self::Bcd8 => 4,
            Self::Int48 | Self::Bcd12 => 6,
            Self::Int64 => 8,
            Self::Variable | Self::Special => return None,
        })
    }

    /// True for the BCD codings.
    pub const fn is_bcd(self) -> bool {
        matches!(
            self,
            Self::Bcd2 | Self::Bcd4 | Self::Bcd6 | Self::Bcd8 | Self::Bcd12
        )
    }

    /// True for the integer codings.
    pub const fn is_integer(self) -> bool {
        matches!(
            self,
            Self::Int8 | Self::Int16 | Self::Int24 | Self::Int32 | Self::Int48 | Self::Int64
        )
    }
}

/// Function field, DIF bits 5..4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// 00: instantaneous value.
    Instantaneous,
    /// 01: maximum value.
    Maximum,
    /// 10: minimum value.
    Minimum,
    /// 11: value during error state.
    Error,
}

impl Function {
    /// From DIF bits 5..4.
    pub const fn from_bits(b: u8) -> Self {
        match b & 0x3 {
            0 => Self::Instantaneous,
            1 => Self::Maximum,
            2 => Self::Minimum,
            _ => Self::Error,
        }
    }
    /// The two bits.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Instantaneous => 0,
            Self::Maximum => 1,
            Self::Minimum => 2,
            Self::Error => 3,
        }
    }
    /// "instantaneous", "maximum", "minimum", "error".
    pub const fn name(self) -> &'static str {
        match self {
            Self::Instantaneous => "instantaneous",
            Self::Maximum => "maximum",
            Self::Minimum => "minimum",
            Self::Error => "error",
        }
    }
}

/// The special functions of a DIF with data field Fh (EN 13757-3 Table 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialFunction {
    /// 0Fh: manufacturer specific data follows, to the end of the APL.
    ManufacturerData,
    /// 1Fh: as 0Fh, and more records follow in the next telegram.
    ManufacturerDataMoreFollow,
    /// 2Fh: idle filler.
    IdleFiller,
    /// 7Fh: global readout request.
    GlobalReadout,
    /// 3Fh–6Fh: reserved.
    Reserved(u8),
}

impl SpecialFunction {
    /// From a DIF whose low nibble is Fh.
    pub const fn from_dif(dif: u8) -> Self {
        match dif {
            0x0F => Self::ManufacturerData,
            0x1F => Self::ManufacturerDataMoreFollow,
            0x2F => Self::IdleFiller,
            0x7F => Self::GlobalReadout,
            other => Self::Reserved(other),
        }
    }
}

/// Largest number of DIFEs (EN 13757-3 §6.3.1).
pub const MAX_DIFE: usize = 10;

/// A DIB's meaning: everything the DIF and DIFEs say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DibRepr {
    /// Data field.
    pub data_field: DataField,
    /// Function.
    pub function: Function,
    /// Storage number (0 = current value).
    pub storage: u64,
    /// Tariff.
    pub tariff: u32,
    /// Subunit (device unit).
    pub subunit: u16,
}

impl DibRepr {
    /// A DIB of one DIF, without DIFEs.
    #[inline(always)]
    pub const fn from_dif(dif: u8) -> Self {
        Self {
            data_field: DataField::from_nibble(dif),
            function: Function::from_bits(dif >> 4),
            storage: ((dif >> 6) & 1) as u64,
            tariff: 0,
            subunit: 0,
        }
    }

    /// A DIB of a DIF and one DIFE (EN 13757-3 §6.3.4: storage bits 1–4, tariff bits 0–1,
    /// subunit bit 0).
    #[inline(always)]
    pub const fn from_dif_dife(dif: u8, dife: u8) -> Self {
        Self {
            data_field: DataField::from_nibble(dif),
            function: Function::from_bits(dif >> 4),
            storage: (((dif >> 6) & 1) | (dife & 0x0F) << 1) as u64,
            tariff: ((dife >> 4) & 0x3) as u32,
            subunit: ((dife >> 6) & 0x1) as u16,
        }
    }

    /// Reads DIF and DIFE bytes (`raw` must be exactly the DIB).
    pub fn from_bytes(raw: &[u8]) -> Self {
        let dif = raw.first().copied().unwrap_or(0);
        if raw.len() <= 1 {
            return Self::from_dif(dif);
        }
        let mut storage = u64::from((dif >> 6) & 1);
        let mut tariff = 0u32;
        let mut subunit = 0u16;
        for (i, dife) in raw.iter().skip(1).enumerate() {
            storage |= u64::from(dife & 0x0F) << (1 + 4 * i);
            tariff |= u32::from((dife >> 4) & 0x3) << (2 * i);
            subunit |= u16::from((dife >> 6) & 0x1) << i;
        }
        Self {
            data_field: DataField::from_nibble(dif),
            function: Function::from_bits(dif >> 4),
            storage,
            tariff,
            subunit,
        }
    }

    /// The shortest DIF ‖ DIFE encoding; returns the bytes and their count, or `None` when
    /// the numbers need more than 10 DIFEs.
    pub fn encode(&self) -> Option<([u8; 1 + MAX_DIFE], usize)> {
        let mut out = [0u8; 1 + MAX_DIFE];
        let mut dif = self.data_field.nibble() | self.function.bits() << 4;
        if self.storage & 1 != 0 {
            dif |= 0x40;
        }
        let mut storage = self.storage >> 1;
        let mut tariff = self.tariff;
        let mut subunit = self.subunit;
        let mut n = 1;
        while storage != 0 || tariff != 0 || subunit != 0 {
            if n > MAX_DIFE {
                return None;
            }
            let dife =
                (storage & 0x0F) as u8 | ((tariff & 0x3) as u8) << 4 | ((subunit & 1) as u8) << 6;
            *out.get_mut(n)? = dife;
            storage >>= 4;
            tariff >>= 2;
            subunit >>= 1;
            n += 1;
        }
        if n > 1 {
            *out.first_mut()? = dif | 0x80;
            for i in 1..n - 1 {
                *out.get_mut(i)? |= 0x80;
            }
        } else {
            *out.first_mut()? = dif;
        }
        Some((out, n))
    }
}

impl fmt::Display for DibRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} storage {} tariff {} subunit {}",
            self.function.name(),
            self.storage,
            self.tariff,
            self.subunit
        )
    }
}
