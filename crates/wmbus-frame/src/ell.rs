//! Extended link layer (EN 13757-4 §13.2; digest §3): CI 8Ch–8Fh.
//!
//! | CI | fields after CI |
//! |----|-----------------|
//! | 8C | `CC ACC` |
//! | 8D | `CC ACC SN(4) PayloadCRC(2)` |
//! | 8E | `CC ACC M2(2) A2(6)` |
//! | 8F | `CC ACC M2 A2 SN PayloadCRC` |
//!
//! PayloadCRC (least significant byte first) covers every byte after it. When the session
//! number's ENC field is not 0 the payload is AES-128-CTR encrypted starting *at* PayloadCRC;
//! decrypting and checking it belongs to `wmbus-security`. CI 86h (ELL V) selects its fields
//! in a way no public source describes; it is reported as unsupported.

use core::fmt;

use crate::codepoints::{CiField, MeterAddress};
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};

/// CC: communication control field (EN 13757-4 §13.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CommunicationControl(pub u8);

impl CommunicationControl {
    /// B, bit 7: bidirectional communication.
    pub const fn bidirectional(self) -> bool {
        self.0 & 0x80 != 0
    }
    /// D, bit 6: response delay (1 = fast response).
    pub const fn response_delay(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// S, bit 5: synchronised frame.
    pub const fn synchronized(self) -> bool {
        self.0 & 0x20 != 0
    }
    /// H, bit 4: hop count (relayed by a repeater).
    pub const fn hop_count(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// P, bit 3: priority.
    pub const fn priority(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// A, bit 2: accessibility.
    pub const fn accessibility(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// R, bit 1: repeated access.
    pub const fn repeated_access(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// X, bit 0: extended (with D = 0: extended response delay, EN 13757-4:2019).
    pub const fn extended(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// CC with the H and R bits cleared, as it enters the AES-CTR counter block (repeaters may
    /// change those two bits).
    pub const fn for_counter_block(self) -> u8 {
        self.0 & !0x12
    }
}

impl fmt::Debug for CommunicationControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunicationControl({:02X}h)", self.0)
    }
}

/// SN: session number (EN 13757-4 §13.2.6), read as a little-endian u32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SessionNumber(pub u32);

impl SessionNumber {
    /// ENC, bits 31..29: 0 none, 1 AES-128-CTR, 2–7 reserved.
    pub const fn encryption(self) -> u8 {
        (self.0 >> 29) as u8
    }
    /// Time, bits 28..4: minutes counter.
    pub const fn time(self) -> u32 {
        (self.0 >> 4) & 0x01FF_FFFF
    }
    /// Session, bits 3..0.
    pub const fn session(self) -> u8 {
        (self.0 & 0x0F) as u8
    }
}

impl fmt::Debug for SessionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SessionNumber(enc {}, time {}, session {})",
            self.encryption(),
            self.time(),
            self.session()
        )
    }
}

/// The extended link layer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EllRepr {
    /// CC.
    pub communication_control: CommunicationControl,
    /// ACC: the sender's ELL access number.
    pub access_number: u8,
    /// M2 and A2 (ELL III and IV): the other party's address (the receiver in CEN/TR 17167
    /// F.3, the meter in partner-to-meter frames).
    pub address: Option<MeterAddress>,
    /// SN (ELL II and IV); when present, a PayloadCRC follows.
    pub session_number: Option<SessionNumber>,
}

impl EllRepr {
    /// The CI these fields require.
    pub const fn ci(&self) -> CiField {
        match (self.address.is_some(), self.session_number.is_some()) {
            (false, false) => CiField::ELL_I,
            (false, true) => CiField::ELL_II,
            (true, false) => CiField::ELL_III,
            (true, true) => CiField::ELL_IV,
        }
    }

    /// True when the payload after the header is encrypted (SN present, ENC ≠ 0).
    pub const fn is_encrypted(&self) -> bool {
        match self.session_number {
            Some(sn) => sn.encryption() != 0,
            None => false,
        }
    }

    /// Header length including CI, excluding PayloadCRC.
    pub const fn header_len(&self) -> usize {
        3 + if self.address.is_some() { 8 } else { 0 }
            + if self.session_number.is_some() { 4 } else { 0 }
    }

    /// Header length including CI and, when SN is present, the PayloadCRC.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + if self.session_number.is_some() { 2 } else { 0 }
    }

    /// Parses the header at the reader (CI included); PayloadCRC is left unread.
    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self> {
        r.set_layer(Layer::Ell);
        let ci_offset = r.offset();
        let ci = CiField(r.u8()?);
        let (address, session) = match ci {
            CiField::ELL_I => (false, false),
            CiField::ELL_II => (false, true),
            CiField::ELL_III => (true, false),
            CiField::ELL_IV => (true, true),
            CiField::ELL_V => {
                return Err(Error::new(
                    Layer::Ell,
                    ci_offset,
                    ErrorKind::UnsupportedCi(ci.0),
                ));
            }
            _ => {
                return Err(Error::new(
                    Layer::Ell,
                    ci_offset,
                    ErrorKind::UnknownCi(ci.0),
                ));
            }
        };
        let communication_control = CommunicationControl(r.u8()?);
        let access_number = r.u8()?;
        let address = if address {
            Some(MeterAddress::from_link_bytes(r.array()?))
        } else {
            None
        };
        let session_number = if session {
            let sn = SessionNumber(r.u32_le()?);
            if sn.encryption() > 1 {
                return Err(Error::new(
                    Layer::Ell,
                    r.offset() - 1,
                    ErrorKind::InvalidField("SN: reserved ENC value"),
                ));
            }
            Some(sn)
        } else {
            None
        };
        Ok(Self {
            communication_control,
            access_number,
            address,
            session_number,
        })
    }

    /// Writes CI through SN (not the PayloadCRC).
    pub(crate) fn emit_header(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.ci().0)?;
        w.u8(self.communication_control.0)?;
        w.u8(self.access_number)?;
        if let Some(a) = self.address {
            w.put(&a.to_link_bytes())?;
        }
        if let Some(sn) = self.session_number {
            w.u32_le(sn.0)?;
        }
        Ok(())
    }
}

/// The AES-CTR initial counter block of ELL encryption (EN 13757-4 §13.2.7; digest §3.4):
/// `M ‖ A ‖ CC' ‖ SN(4) ‖ FN(2) = 0 ‖ BC = 0`, with M and A from the link layer and CC' the
/// CC without the H and R bits.
pub fn counter_block(link: &MeterAddress, ell: &EllRepr) -> [u8; 16] {
    let mut icb = [0u8; 16];
    let (head, tail) = icb.split_at_mut(8);
    head.copy_from_slice(&link.to_link_bytes());
    let sn = ell.session_number.unwrap_or_default().0.to_le_bytes();
    let fields = [
        ell.communication_control.for_counter_block(),
        sn[0],
        sn[1],
        sn[2],
        sn[3],
        0,
        0,
        0,
    ];
    tail.copy_from_slice(&fields);
    icb
}
