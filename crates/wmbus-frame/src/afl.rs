//! Authentication and fragmentation sublayer (EN 13757-7 §6; digest §7, addendum §4): CI 90h.
//!
//! `90 ‖ AFLL ‖ FCL(2) ‖ [MCL] ‖ [KI(2)] ‖ [MCR(4)] ‖ [MAC(n)] ‖ [ML(2)]`, multi-byte fields
//! little-endian except the MAC. AFLL counts the bytes after itself. MCL, KI, MCR and ML
//! travel only in the first fragment of a fragmented message, the MAC only in the last.

use core::fmt;

use nom::IResult;
use nom::Parser;
use nom::combinator::cond;
use nom::number::complete::{le_u8, le_u16, le_u32};

use crate::codepoints::CiField;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};

/// FCL bits (EN 13757-7 §6.3.2).
mod fcl {
    pub(super) const MORE_FRAGMENTS: u16 = 1 << 14;
    pub(super) const MCL_PRESENT: u16 = 1 << 13;
    pub(super) const ML_PRESENT: u16 = 1 << 12;
    pub(super) const MCR_PRESENT: u16 = 1 << 11;
    pub(super) const MAC_PRESENT: u16 = 1 << 10;
    pub(super) const KI_PRESENT: u16 = 1 << 9;
    pub(super) const RESERVED: u16 = 1 << 15 | 1 << 8;
}

/// MCL: message control (EN 13757-7 §6.3.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MessageControl(pub u8);

impl MessageControl {
    /// MLMP, bit 6: ML enters the MAC.
    pub const fn length_in_mac(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// MCMP, bit 5: MCR enters the MAC.
    pub const fn counter_in_mac(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// KIMP, bit 4: KI enters the MAC.
    pub const fn key_information_in_mac(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// AT, bits 3..0: authentication type.
    pub const fn authentication_type(self) -> AuthenticationType {
        AuthenticationType(self.0 & 0x0F)
    }
}

impl fmt::Debug for MessageControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageControl({:02X}h, AT {})", self.0, self.0 & 0x0F)
    }
}

/// AT: authentication type (EN 13757-7 Table 8; digest §7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct AuthenticationType(pub u8);

impl AuthenticationType {
    /// No authentication.
    pub const NONE: Self = Self(0);
    /// AES-CMAC-128 truncated to 8 bytes, the OMS default.
    pub const CMAC_8: Self = Self(5);

    /// MAC length in bytes; `None` for reserved values.
    pub const fn mac_len(self) -> Option<usize> {
        match self.0 {
            0 => Some(0),
            3 => Some(2),
            4 => Some(4),
            5 => Some(8),
            6 => Some(12),
            7 => Some(16),
            8 => Some(12),
            9 => Some(16),
            _ => None,
        }
    }

    /// True for the AES-CMAC types 3–7.
    pub const fn is_cmac(self) -> bool {
        matches!(self.0, 3..=7)
    }

    /// True for the AES-GMAC types 8 and 9 (9 is single-source, provisional).
    pub const fn is_gmac(self) -> bool {
        matches!(self.0, 8 | 9)
    }

    /// Name, e.g. "AES-CMAC-128/8".
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "none",
            3 => "AES-CMAC-128/2",
            4 => "AES-CMAC-128/4",
            5 => "AES-CMAC-128/8",
            6 => "AES-CMAC-128/12",
            7 => "AES-CMAC-128/16",
            8 => "AES-GMAC-128/12",
            9 => "AES-GMAC-128/16",
            _ => "reserved",
        }
    }
}

/// KI: key information (EN 13757-7 §6.3.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyInformation(pub u16);

impl KeyInformation {
    /// Key version, bits 15..8.
    pub const fn key_version(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// KDF selection, bits 5..4.
    pub const fn kdf_selection(self) -> u8 {
        ((self.0 >> 4) & 0x3) as u8
    }
    /// Key ID, bits 3..0.
    pub const fn key_id(self) -> u8 {
        (self.0 & 0xF) as u8
    }
}

impl fmt::Debug for KeyInformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyInformation(version {}, kdf {}, key {})",
            self.key_version(),
            self.kdf_selection(),
            self.key_id()
        )
    }
}

/// The AFL header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AflRepr<'a> {
    /// FID: fragment ID, FCL bits 7..0 (0 for an unfragmented message).
    pub fragment_id: u8,
    /// MF: more fragments follow, FCL bit 14.
    pub more_fragments: bool,
    /// FCL bits 15 and 8 (reserved), kept so that any FCL round-trips.
    pub reserved_bits: u16,
    /// MCL.
    pub message_control: Option<MessageControl>,
    /// KI.
    pub key_information: Option<KeyInformation>,
    /// MCR: message counter.
    pub message_counter: Option<u32>,
    /// MAC, as transmitted (truncated CMAC or GMAC).
    pub mac: Option<&'a [u8]>,
    /// ML: length of the unfragmented message after the AFL.
    pub message_length: Option<u16>,
}

impl<'a> AflRepr<'a> {
    /// FCL as it goes on the wire.
    pub const fn fragment_control(&self) -> u16 {
        let mut v = self.fragment_id as u16 | (self.reserved_bits & fcl::RESERVED);
        if self.more_fragments {
            v |= fcl::MORE_FRAGMENTS;
        }
        if self.message_control.is_some() {
            v |= fcl::MCL_PRESENT;
        }
        if self.message_length.is_some() {
            v |= fcl::ML_PRESENT;
        }
        if self.message_counter.is_some() {
            v |= fcl::MCR_PRESENT;
        }
        if self.mac.is_some() {
            v |= fcl::MAC_PRESENT;
        }
        if self.key_information.is_some() {
            v |= fcl::KI_PRESENT;
        }
        v
    }

    /// True when this is one fragment of a fragmented message.
    pub const fn is_fragment(&self) -> bool {
        self.more_fragments || self.fragment_id != 0
    }

    /// True for an unfragmented message or the first fragment (the one whose payload starts
    /// with the transport layer's CI).
    pub const fn is_first(&self) -> bool {
        self.fragment_id <= 1
    }

    /// AFLL: bytes after AFLL.
    pub fn afl_length(&self) -> usize {
        2 + usize::from(self.message_control.is_some())
            + if self.key_information.is_some() { 2 } else { 0 }
            + if self.message_counter.is_some() { 4 } else { 0 }
            + self.mac.map_or(0, <[u8]>::len)
            + if self.message_length.is_some() { 2 } else { 0 }
    }

    /// Bytes of the whole AFL including CI and AFLL.
    pub fn buffer_len(&self) -> usize {
        2 + self.afl_length()
    }

    /// Parses the AFL at the reader (CI included) and cross-checks every length.
    pub(crate) fn parse(r: &mut Reader<'a>) -> Result<Self> {
        r.set_layer(Layer::Afl);
        let start = r.offset();
        let ci = r.u8()?;
        if ci != CiField::AFL.0 {
            return Err(Error::new(Layer::Afl, start, ErrorKind::UnknownCi(ci)));
        }
        let afll = r.u8()?;
        let body_offset = r.offset();
        let body = r.take(usize::from(afll))?;
        let (rest, (fcl, mcl, ki, mcr)) = fields(body).map_err(|_| {
            Error::new(
                Layer::Afl,
                start + 1,
                ErrorKind::AflLengthMismatch {
                    declared: afll,
                    fields: minimum_len(body),
                },
            )
        })?;
        let ml_len = if fcl & fcl::ML_PRESENT != 0 { 2 } else { 0 };
        let mac_len = if fcl & fcl::MAC_PRESENT != 0 {
            rest.len().saturating_sub(ml_len)
        } else {
            0
        };
        if rest.len() != mac_len + ml_len || (fcl & fcl::MAC_PRESENT != 0 && mac_len == 0) {
            return Err(Error::new(
                Layer::Afl,
                start + 1,
                ErrorKind::AflLengthMismatch {
                    declared: afll,
                    fields: minimum_len(body),
                },
            ));
        }
        let (mac, ml) = rest.split_at(mac_len);
        let message_length = match ml {
            [a, b] => Some(u16::from_le_bytes([*a, *b])),
            _ => None,
        };
        let repr = Self {
            fragment_id: (fcl & 0xFF) as u8,
            more_fragments: fcl & fcl::MORE_FRAGMENTS != 0,
            reserved_bits: fcl & fcl::RESERVED,
            message_control: mcl.map(MessageControl),
            key_information: ki.map(KeyInformation),
            message_counter: mcr,
            mac: (fcl & fcl::MAC_PRESENT != 0).then_some(mac),
            message_length,
        };
        repr.check(body_offset)?;
        Ok(repr)
    }

    /// The consistency rules of EN 13757-7 §6 and OMS Annex N N.3.
    fn check(&self, offset: usize) -> Result<()> {
        let err = |kind| Err(Error::new(Layer::Afl, offset, kind));
        if self.fragment_id > 1
            && (self.message_control.is_some()
                || self.message_counter.is_some()
                || self.message_length.is_some()
                || self.key_information.is_some())
        {
            return err(ErrorKind::AflFieldMisplaced(
                "MCL, KI, MCR or ML present in a fragment after the first",
            ));
        }
        if self.more_fragments && self.mac.is_some() {
            return err(ErrorKind::AflFieldMisplaced(
                "MAC present in a fragment that is not the last",
            ));
        }
        if let Some(mcl) = self.message_control {
            let at = mcl.authentication_type();
            let Some(expected) = at.mac_len() else {
                return err(ErrorKind::InvalidField("MCL: reserved authentication type"));
            };
            let actual = self.mac.map_or(0, <[u8]>::len);
            let mac_expected_here = !self.is_fragment() || !self.more_fragments;
            if (mac_expected_here || actual != 0) && actual != expected {
                return err(ErrorKind::AflMacLength {
                    authentication_type: at.0,
                    expected,
                    actual,
                });
            }
            if mcl.counter_in_mac() && self.message_counter.is_none() {
                return err(ErrorKind::AflFieldMisplaced(
                    "MCL says MCR enters the MAC but MCR is absent",
                ));
            }
            if mcl.length_in_mac() && self.message_length.is_none() {
                return err(ErrorKind::AflFieldMisplaced(
                    "MCL says ML enters the MAC but ML is absent",
                ));
            }
            if mcl.key_information_in_mac() && self.key_information.is_none() {
                return err(ErrorKind::AflFieldMisplaced(
                    "MCL says KI enters the MAC but KI is absent",
                ));
            }
        } else if let Some(mac) = self.mac
            && !matches!(mac.len(), 2 | 4 | 8 | 12 | 16)
        {
            return err(ErrorKind::InvalidField("MAC length"));
        }
        Ok(())
    }

    /// Writes the AFL.
    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        let afll = u8::try_from(self.afl_length())
            .map_err(|_| Error::new(Layer::Afl, w.position(), ErrorKind::InvalidField("AFLL")))?;
        w.u8(CiField::AFL.0)?;
        w.u8(afll)?;
        w.u16_le(self.fragment_control())?;
        if let Some(mcl) = self.message_control {
            w.u8(mcl.0)?;
        }
        if let Some(ki) = self.key_information {
            w.u16_le(ki.0)?;
        }
        if let Some(mcr) = self.message_counter {
            w.u32_le(mcr)?;
        }
        if let Some(mac) = self.mac {
            w.put(mac)?;
        }
        if let Some(ml) = self.message_length {
            w.u16_le(ml)?;
        }
        Ok(())
    }
}

type Fields = (u16, Option<u8>, Option<u16>, Option<u32>);

/// FCL and the optional fields before the MAC, in their fixed order.
fn fields(body: &[u8]) -> IResult<&[u8], Fields> {
    let (i, fcl) = le_u16(body)?;
    let (i, mcl) = cond(fcl & fcl::MCL_PRESENT != 0, le_u8).parse(i)?;
    let (i, ki) = cond(fcl & fcl::KI_PRESENT != 0, le_u16).parse(i)?;
    let (i, mcr) = cond(fcl & fcl::MCR_PRESENT != 0, le_u32).parse(i)?;
    Ok((i, (fcl, mcl, ki, mcr)))
}

/// Bytes that the FCL in `body` announces before any MAC and ML (for error messages).
fn minimum_len(body: &[u8]) -> usize {
    let fcl = match body {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => return 2,
    };
    2 + usize::from(fcl & fcl::MCL_PRESENT != 0)
        + if fcl & fcl::KI_PRESENT != 0 { 2 } else { 0 }
        + if fcl & fcl::MCR_PRESENT != 0 { 4 } else { 0 }
        + if fcl & fcl::ML_PRESENT != 0 { 2 } else { 0 }
}
