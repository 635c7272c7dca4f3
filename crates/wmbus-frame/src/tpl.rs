//! Transport layer (EN 13757-7 §7; digest §4, addendum §3): CI, header, configuration field
//! and the mode-specific fields between the configuration field and the application data.
//!
//! | header | after the CI |
//! |--------|--------------|
//! | none   | – |
//! | short  | `ACC ‖ STS ‖ CF(2) ‖ …` |
//! | long   | `ID(4) ‖ M(2) ‖ Version ‖ Type ‖ ACC ‖ STS ‖ CF(2) ‖ …` (ID before M) |
//!
//! What follows CF depends on the security mode:
//! - mode 7: `CFE ‖ [key version] ‖ [MC(4)]`;
//! - mode 9 (ESMR 5 profile, provisional): `LenE ‖ LenU ‖ CTR(4, big-endian)`;
//! - mode 10: `CFE(2) ‖ [key version] ‖ [MC(4)]`;
//! - mode 13 (provisional): `CFE`;
//! - every other mode: nothing.

use core::fmt;

use crate::codepoints::{CiField, MeterAddress, SecurityMode, TplHeaderKind};
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};

/// STS: status byte of a meter message (EN 13757-7 §7.5.7; digest §4.3). In partner
/// messages the same byte carries the meter's RSSI (addendum §7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Status(pub u8);

impl Status {
    /// Bits 1..0: 0 no error, 1 application busy, 2 any application error, 3 abnormal
    /// condition or alarm.
    pub const fn application(self) -> u8 {
        self.0 & 0x03
    }
    /// Bit 2: power low.
    pub const fn power_low(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bit 3: permanent error.
    pub const fn permanent_error(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Bit 4: temporary error.
    pub const fn temporary_error(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Bits 7..5: manufacturer specific.
    pub const fn manufacturer_bits(self) -> u8 {
        self.0 >> 5
    }
    /// The partner status byte read as RSSI: `2·n − 130` dBm, 0 = not available
    /// (OMS Annex N, addendum §7).
    pub const fn partner_rssi_dbm(self) -> Option<i16> {
        if self.0 == 0 {
            None
        } else {
            Some(2 * self.0 as i16 - 130)
        }
    }
    /// The application status as a word: "ok", "busy", "error", "alarm".
    pub const fn application_name(self) -> &'static str {
        match self.application() {
            0 => "ok",
            1 => "busy",
            2 => "error",
            _ => "alarm",
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Status({:02X}h)", self.0)
    }
}

/// CF: configuration field (EN 13757-7 §7.5.8). Bits 12..8 hold the security mode; the others
/// depend on the mode, hence the per-mode accessors.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfigField(pub u16);

impl ConfigField {
    /// Bits 12..8.
    pub const fn mode(self) -> SecurityMode {
        SecurityMode(((self.0 >> 8) & 0x1F) as u8)
    }
    /// Modes 0–6: B, bit 15, bidirectional.
    pub const fn bidirectional(self) -> bool {
        self.0 & 0x8000 != 0
    }
    /// Modes 0–6: A, bit 14, accessibility.
    pub const fn accessibility(self) -> bool {
        self.0 & 0x4000 != 0
    }
    /// Modes 0–6: S, bit 13, synchronous.
    pub const fn synchronous(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// Modes 7, 10 and 13: CC, bits 15..14, content of the message.
    pub const fn content_high(self) -> u8 {
        ((self.0 >> 14) & 0x3) as u8
    }
    /// Modes 7 and 10: Z, bit 13, a message counter follows in the transport layer.
    /// Mode 9: O, bit 13, an authentication tag is present.
    pub const fn bit13(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// Modes 0–7: N, bits 7..4, number of encrypted 16-byte blocks.
    pub const fn encrypted_blocks(self) -> u8 {
        ((self.0 >> 4) & 0x0F) as u8
    }
    /// Modes 0–6: CC, bits 3..2, content (00 standard, 10 static).
    pub const fn content_low(self) -> u8 {
        ((self.0 >> 2) & 0x3) as u8
    }
    /// Modes 0–6: R, bit 1, repeated access.
    pub const fn repeated_access(self) -> bool {
        self.0 & 0x2 != 0
    }
    /// Modes 0–6: H, bit 0, hop count.
    pub const fn hop_count(self) -> bool {
        self.0 & 0x1 != 0
    }
    /// Mode 7: P, bit 3, the last block is padded with PKCS#7-style count bytes.
    pub const fn padding(self) -> bool {
        self.0 & 0x8 != 0
    }
    /// Mode 7: III, bits 2..0, content index.
    pub const fn content_index(self) -> u8 {
        (self.0 & 0x7) as u8
    }
    /// Modes 10 and 13: bits 7..0, number of encrypted bytes (mode 10: FFh = all).
    pub const fn encrypted_bytes(self) -> u8 {
        (self.0 & 0xFF) as u8
    }
    /// Mode 9: U, bit 7, LenU is 2 bytes wide.
    pub const fn wide_unencrypted_length(self) -> bool {
        self.0 & 0x80 != 0
    }
    /// Mode 9: E, bit 6, LenE is 2 bytes wide.
    pub const fn wide_encrypted_length(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// Mode 9: KDF selection, bits 5..4.
    pub const fn kdf_selection(self) -> u8 {
        ((self.0 >> 4) & 0x3) as u8
    }
    /// Mode 9: key ID, bits 3..0.
    pub const fn key_id(self) -> u8 {
        (self.0 & 0xF) as u8
    }
}

impl fmt::Debug for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigField({:04X}h, mode {})", self.0, self.mode().0)
    }
}

/// CFE of mode 7 (one byte, `0VDDKKKK`) or the first byte of mode 10's CFE.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConfigExtension(pub u16);

impl ConfigExtension {
    /// V, bit 6: a key-version byte follows.
    pub const fn key_version_present(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// DD, bits 5..4: KDF selection (00 persistent key, 01 KDF-A).
    pub const fn kdf_selection(self) -> u8 {
        ((self.0 >> 4) & 0x3) as u8
    }
    /// KKKK, bits 3..0: key ID.
    pub const fn key_id(self) -> u8 {
        (self.0 & 0xF) as u8
    }
    /// Mode 10: content index, bits 13..10.
    pub const fn content_index(self) -> u8 {
        ((self.0 >> 10) & 0xF) as u8
    }
    /// Mode 10: tag length, `4 + 4·code` from bits 9..8.
    pub const fn tag_len(self) -> usize {
        4 + 4 * ((self.0 >> 8) & 0x3) as usize
    }
}

impl fmt::Debug for ConfigExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigExtension({:X}h)", self.0)
    }
}

/// The fields between CF and the application data, per security mode.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModeFields {
    /// Nothing (modes 0–6, 8, 11, 12, 14–31).
    None,
    /// Mode 7.
    Mode7 {
        /// CFE (one byte).
        extension: ConfigExtension,
        /// Key version (CFE.V).
        key_version: Option<u8>,
        /// Transport-layer message counter (CF.Z), little-endian on the wire.
        message_counter: Option<u32>,
    },
    /// Mode 9, ESMR 5 profile (provisional for other profiles).
    Mode9 {
        /// LenE: encrypted bytes.
        encrypted_len: u16,
        /// LenU: unencrypted bytes.
        unencrypted_len: u16,
        /// Invocation counter, **big-endian** on the wire.
        counter: u32,
    },
    /// Mode 10.
    Mode10 {
        /// CFE (two bytes, little-endian).
        extension: ConfigExtension,
        /// Key version (CFE.V).
        key_version: Option<u8>,
        /// Message counter (CF.Z), little-endian on the wire.
        message_counter: Option<u32>,
    },
    /// Mode 13 (provisional).
    Mode13 {
        /// CFE: protocol type in bits 3..0.
        extension: u8,
    },
}

impl ModeFields {
    /// Bytes these fields occupy.
    pub const fn buffer_len(&self, config: ConfigField) -> usize {
        match *self {
            Self::None => 0,
            Self::Mode7 {
                key_version,
                message_counter,
                ..
            } => 1 + key_version.is_some() as usize + 4 * message_counter.is_some() as usize,
            Self::Mode9 { .. } => {
                2 + config.wide_encrypted_length() as usize
                    + config.wide_unencrypted_length() as usize
                    + 4
            }
            Self::Mode10 {
                key_version,
                message_counter,
                ..
            } => 2 + key_version.is_some() as usize + 4 * message_counter.is_some() as usize,
            Self::Mode13 { .. } => 1,
        }
    }

    /// The key ID the mode's fields select, where they select one.
    pub const fn key_id(&self, config: ConfigField) -> Option<u8> {
        match *self {
            Self::Mode7 { extension, .. } | Self::Mode10 { extension, .. } => {
                Some(extension.key_id())
            }
            Self::Mode9 { .. } => Some(config.key_id()),
            _ => None,
        }
    }

    /// The transport-layer message counter, where the mode carries one.
    pub const fn message_counter(&self) -> Option<u32> {
        match *self {
            Self::Mode7 {
                message_counter, ..
            }
            | Self::Mode10 {
                message_counter, ..
            } => message_counter,
            Self::Mode9 { counter, .. } => Some(counter),
            _ => None,
        }
    }
}

/// The header of a transport layer with a short or long header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TplHeader {
    /// The meter's address (long header only).
    pub meter: Option<MeterAddress>,
    /// ACC: access number.
    pub access_number: u8,
    /// STS.
    pub status: Status,
    /// CF.
    pub config: ConfigField,
    /// Fields between CF and the application data.
    pub mode_fields: ModeFields,
}

impl TplHeader {
    /// The security mode.
    pub const fn security_mode(&self) -> SecurityMode {
        self.config.mode()
    }
}

/// The transport layer: CI and, for CIs with a header, the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TplRepr {
    /// CI.
    pub ci: CiField,
    /// Header; `None` exactly when the CI has no header.
    pub header: Option<TplHeader>,
}

impl TplRepr {
    /// Bytes from CI to the application data.
    pub const fn buffer_len(&self) -> usize {
        1 + match &self.header {
            None => 0,
            Some(h) => {
                (if h.meter.is_some() { 8 } else { 0 }) + 4 + h.mode_fields.buffer_len(h.config)
            }
        }
    }

    /// The security mode (0 without a header).
    pub const fn security_mode(&self) -> SecurityMode {
        match &self.header {
            Some(h) => h.config.mode(),
            None => SecurityMode::NONE,
        }
    }

    /// Parses CI and header at the reader and checks the announced encrypted length against
    /// the `rest` of the message when `complete` (false for the first fragment of a
    /// fragmented message, whose data continues in later fragments).
    pub(crate) fn parse(r: &mut Reader<'_>, complete: bool) -> Result<Self> {
        r.set_layer(Layer::Transport);
        let ci_offset = r.offset();
        let ci = CiField(r.u8()?);
        let Some(kind) = ci.tpl_header() else {
            // Network layer and network management (81h–83h, 87h–89h) and ELL V have
            // layouts this stack does not implement; everything else is reserved.
            let kind = if matches!(ci.0, 0x81..=0x83 | 0x86..=0x89) {
                ErrorKind::UnsupportedCi(ci.0)
            } else {
                ErrorKind::UnknownCi(ci.0)
            };
            return Err(Error::new(Layer::Transport, ci_offset, kind));
        };
        let meter = match kind {
            TplHeaderKind::None => return Ok(Self { ci, header: None }),
            TplHeaderKind::Long => Some(MeterAddress::from_long_header_bytes(r.array()?)),
            TplHeaderKind::Short => None,
        };
        let access_number = r.u8()?;
        let status = Status(r.u8()?);
        let config = ConfigField(r.u16_le()?);
        let mode_fields = match config.mode().0 {
            7 => {
                let extension = ConfigExtension(u16::from(r.u8()?));
                let (key_version, message_counter) = version_and_counter(r, extension, config)?;
                ModeFields::Mode7 {
                    extension,
                    key_version,
                    message_counter,
                }
            }
            9 => {
                let encrypted_len = if config.wide_encrypted_length() {
                    r.u16_le()?
                } else {
                    u16::from(r.u8()?)
                };
                let unencrypted_len = if config.wide_unencrypted_length() {
                    r.u16_le()?
                } else {
                    u16::from(r.u8()?)
                };
                ModeFields::Mode9 {
                    encrypted_len,
                    unencrypted_len,
                    counter: r.u32_be()?,
                }
            }
            10 => {
                let extension = ConfigExtension(r.u16_le()?);
                let (key_version, message_counter) = version_and_counter(r, extension, config)?;
                ModeFields::Mode10 {
                    extension,
                    key_version,
                    message_counter,
                }
            }
            13 => ModeFields::Mode13 { extension: r.u8()? },
            _ => ModeFields::None,
        };
        let header = TplHeader {
            meter,
            access_number,
            status,
            config,
            mode_fields,
        };
        if complete {
            check_encrypted_len(&header, r.remaining(), r.offset())?;
        }
        Ok(Self {
            ci,
            header: Some(header),
        })
    }

    /// Writes CI and header.
    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u8(self.ci.0)?;
        let Some(h) = &self.header else {
            return Ok(());
        };
        if let Some(m) = h.meter {
            w.put(&m.to_long_header_bytes())?;
        }
        w.u8(h.access_number)?;
        w.u8(h.status.0)?;
        w.u16_le(h.config.0)?;
        match h.mode_fields {
            ModeFields::None => {}
            ModeFields::Mode7 {
                extension,
                key_version,
                message_counter,
            } => {
                w.u8((extension.0 & 0xFF) as u8)?;
                if let Some(v) = key_version {
                    w.u8(v)?;
                }
                if let Some(c) = message_counter {
                    w.u32_le(c)?;
                }
            }
            ModeFields::Mode9 {
                encrypted_len,
                unencrypted_len,
                counter,
            } => {
                for (wide, v) in [
                    (h.config.wide_encrypted_length(), encrypted_len),
                    (h.config.wide_unencrypted_length(), unencrypted_len),
                ] {
                    if wide {
                        w.u16_le(v)?;
                    } else {
                        w.u8((v & 0xFF) as u8)?;
                    }
                }
                w.u32_be(counter)?;
            }
            ModeFields::Mode10 {
                extension,
                key_version,
                message_counter,
            } => {
                w.u16_le(extension.0)?;
                if let Some(v) = key_version {
                    w.u8(v)?;
                }
                if let Some(c) = message_counter {
                    w.u32_le(c)?;
                }
            }
            ModeFields::Mode13 { extension } => w.u8(extension)?,
        }
        Ok(())
    }
}

/// The optional key-version byte (CFE.V) and message counter (CF.Z) of modes 7 and 10.
fn version_and_counter(
    r: &mut Reader<'_>,
    extension: ConfigExtension,
    config: ConfigField,
) -> Result<(Option<u8>, Option<u32>)> {
    let key_version = if extension.key_version_present() {
        Some(r.u8()?)
    } else {
        None
    };
    let message_counter = if config.bit13() {
        Some(r.u32_le()?)
    } else {
        None
    };
    Ok((key_version, message_counter))
}

/// Encrypted bytes a header announces, given `available` bytes of application data; the tag
/// of modes 9 and 10 is not counted.
pub fn encrypted_len(header: &TplHeader, available: usize) -> usize {
    match header.mode_fields {
        ModeFields::Mode9 { encrypted_len, .. } => usize::from(encrypted_len),
        ModeFields::Mode10 { extension, .. } => {
            let all = available.saturating_sub(extension.tag_len());
            match header.config.encrypted_bytes() {
                0xFF => all,
                n => usize::from(n),
            }
        }
        ModeFields::Mode13 { .. } => usize::from(header.config.encrypted_bytes()),
        _ => match header.config.mode().0 {
            0 | 1 | 4 | 6 | 8 | 11.. => 0,
            _ => 16 * usize::from(header.config.encrypted_blocks()),
        },
    }
}

fn check_encrypted_len(header: &TplHeader, available: usize, offset: usize) -> Result<()> {
    let declared = match header.mode_fields {
        ModeFields::Mode9 {
            encrypted_len,
            unencrypted_len,
            ..
        } => {
            usize::from(encrypted_len)
                + usize::from(unencrypted_len)
                + if header.config.bit13() { 12 } else { 0 }
        }
        ModeFields::Mode10 { extension, .. } => {
            encrypted_len(header, available) + extension.tag_len()
        }
        _ => encrypted_len(header, available),
    };
    if declared > available {
        return Err(Error::new(
            Layer::Transport,
            offset,
            ErrorKind::EncryptedLengthExceedsFrame {
                declared,
                available,
            },
        ));
    }
    Ok(())
}
