//! Wired M-Bus FT1.2 frames (EN 13757-2 §5): the application layer is the same as on radio.
//!
//! - single character `E5` (acknowledge);
//! - short frame `10 C A CS 16`;
//! - long frame `68 L L 68 C A CI … CS 16`, with L counting C through the last data byte and
//!   CS the arithmetic sum of those bytes.

use crate::codepoints::ControlField;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::Writer;

/// Start byte of a long frame.
pub const LONG_START: u8 = 0x68;
/// Start byte of a short frame.
pub const SHORT_START: u8 = 0x10;
/// The single-character acknowledge.
pub const SINGLE_ACK: u8 = 0xE5;
/// Stop byte.
pub const STOP: u8 = 0x16;

/// Which FT1.2 frame.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WiredKind {
    /// `E5`.
    SingleCharacter,
    /// `10 C A CS 16`.
    Short,
    /// `68 L L 68 C A … CS 16`.
    Long,
}

/// The wired link header: C-field and primary address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WiredRepr {
    /// Frame kind.
    pub kind: WiredKind,
    /// C-field (`E5` frames carry none; ACK is reported).
    pub control: ControlField,
    /// Primary address (FDh: the selected device, FEh broadcast with reply, FFh broadcast).
    pub primary_address: u8,
}

/// True when `input` looks like an FT1.2 frame rather than a wireless one.
pub fn looks_wired(input: &[u8]) -> bool {
    match input {
        [SINGLE_ACK] => true,
        [SHORT_START, _, _, _, STOP] => true,
        [LONG_START, l1, l2, LONG_START, ..] => l1 == l2 && input.len() == usize::from(*l1) + 6,
        _ => false,
    }
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
}

/// Parses an FT1.2 frame; returns the header and the range of the user data after C and A
/// (CI onwards; empty for short frames).
///
/// # Errors
/// Wrong start/stop bytes, L-fields that disagree, a checksum mismatch, truncation.
pub fn parse(input: &[u8]) -> Result<(WiredRepr, core::ops::Range<usize>)> {
    match input {
        [SINGLE_ACK] => Ok((
            WiredRepr {
                kind: WiredKind::SingleCharacter,
                control: ControlField::ACK,
                primary_address: 0,
            },
            1..1,
        )),
        [SHORT_START, c, a, cs, STOP] => {
            verify(&[*c, *a], *cs, 3)?;
            Ok((
                WiredRepr {
                    kind: WiredKind::Short,
                    control: ControlField(*c),
                    primary_address: *a,
                },
                3..3,
            ))
        }
        [LONG_START, l1, l2, LONG_START, rest @ ..] => {
            if l1 != l2 {
                return Err(Error::new(
                    Layer::Wired,
                    2,
                    ErrorKind::InvalidField("second L-field differs from the first"),
                ));
            }
            let l = usize::from(*l1);
            if input.len() != l + 6 {
                return Err(Error::new(
                    Layer::Wired,
                    1,
                    ErrorKind::LengthMismatch {
                        declared: l + 6,
                        actual: input.len(),
                    },
                ));
            }
            if l < 3 {
                return Err(Error::truncated(Layer::Wired, 4, 3, l));
            }
            let (user, tail) = rest.split_at(l);
            let [cs, stop] = tail else {
                return Err(Error::truncated(Layer::Wired, 4 + l, 2, tail.len()));
            };
            if *stop != STOP {
                return Err(Error::new(Layer::Wired, 5 + l, ErrorKind::StartStop));
            }
            verify(user, *cs, 4 + l)?;
            let (c, a) = match user {
                [c, a, ..] => (*c, *a),
                _ => return Err(Error::truncated(Layer::Wired, 4, 2, user.len())),
            };
            Ok((
                WiredRepr {
                    kind: WiredKind::Long,
                    control: ControlField(c),
                    primary_address: a,
                },
                6..4 + l,
            ))
        }
        [] => Err(Error::truncated(Layer::Wired, 0, 1, 0)),
        _ => Err(Error::new(Layer::Wired, 0, ErrorKind::StartStop)),
    }
}

fn verify(bytes: &[u8], received: u8, offset: usize) -> Result<()> {
    let computed = checksum(bytes);
    if computed == received {
        Ok(())
    } else {
        Err(Error::new(
            Layer::Wired,
            offset,
            ErrorKind::ChecksumMismatch { received, computed },
        ))
    }
}

impl WiredRepr {
    /// Frame length for `user_data_len` bytes after C and A.
    pub const fn buffer_len(&self, user_data_len: usize) -> usize {
        match self.kind {
            WiredKind::SingleCharacter => 1,
            WiredKind::Short => 5,
            WiredKind::Long => user_data_len + 8,
        }
    }

    /// Writes the frame around `user_data` (CI onwards).
    pub(crate) fn emit(&self, user_data: &[u8], w: &mut Writer<'_>) -> Result<()> {
        match self.kind {
            WiredKind::SingleCharacter => w.u8(SINGLE_ACK),
            WiredKind::Short => {
                let c = self.control.0;
                let a = self.primary_address;
                w.put(&[SHORT_START, c, a, c.wrapping_add(a), STOP])
            }
            WiredKind::Long => {
                let l = u8::try_from(user_data.len() + 2).map_err(|_| {
                    Error::new(
                        Layer::Wired,
                        1,
                        ErrorKind::InvalidField("L-field: user data longer than 253 bytes"),
                    )
                })?;
                w.put(&[
                    LONG_START,
                    l,
                    l,
                    LONG_START,
                    self.control.0,
                    self.primary_address,
                ])?;
                w.put(user_data)?;
                let cs = checksum(user_data)
                    .wrapping_add(self.control.0)
                    .wrapping_add(self.primary_address);
                w.put(&[cs, STOP])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oms_n22_long_frame() {
        let f = hex::decode(
            "6820206808FD7278563412931533032A0000000C1427048502046D32371F1502FD1700008916",
        )
        .unwrap();
        assert!(looks_wired(&f));
        let (repr, range) = parse(&f).unwrap();
        assert_eq!(repr.kind, WiredKind::Long);
        assert_eq!(repr.control, ControlField::RSP_UD);
        assert_eq!(repr.primary_address, 0xFD);
        assert_eq!(f[range.start], 0x72);
        let mut buf = [0xA5u8; 64];
        let mut w = Writer::new(&mut buf, Layer::Wired);
        repr.emit(&f[range], &mut w).unwrap();
        let n = w.position();
        assert_eq!(&buf[..n], &f[..]);
    }

    #[test]
    fn short_frame_and_errors() {
        let f = [0x10, 0x7B, 0xFD, 0x78, 0x16];
        let (repr, _) = parse(&f).unwrap();
        assert_eq!(repr.control.name(), Some("REQ_UD2"));
        let bad = [0x10, 0x7B, 0xFD, 0x79, 0x16];
        assert!(matches!(
            parse(&bad).unwrap_err().kind,
            ErrorKind::ChecksumMismatch { .. }
        ));
        assert!(parse(&[0x68, 3, 4, 0x68, 0, 0, 0, 0, 0x16]).is_err());
        assert!(parse(&[0x68]).is_err());
    }
}
