//! Wireless data link layer (EN 13757-4 §11–12): the first block `L C M A` and the block
//! CRCs of frame formats A and B.
//!
//! Received bytes are *normalised* first: CRCs verified and removed, L rewritten to count the
//! bytes after it (format A semantics). Every later layer works on the normalised bytes, as
//! every dongle delivers them. [`emit_with_crcs`] does the reverse.

use crate::codepoints::{Address, ControlField, ManufacturerCode, MeterAddress};
use crate::crc::crc16;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};

/// Largest normalised wireless frame: L = 255 plus the L byte.
pub const MAX_FRAME_LEN: usize = 256;
/// Largest frame as received: a format A frame with L = 255 and 16 block CRCs, or a wired
/// long frame of 261 bytes.
pub const MAX_RAW_FRAME_LEN: usize = 256 + 2 * 17;
/// Length of the first block without its CRC: L, C, M(2), A(6).
pub const FIRST_BLOCK_LEN: usize = 10;

/// How the frame was received or is to be sent.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameFormat {
    /// Format A (EN 13757-4 §12.3.1): a CRC after the first 10 bytes and after every 16 bytes.
    A,
    /// Format B (EN 13757-4 §12.3.2, mode C only): L counts the CRCs; one or two CRCs.
    B,
    /// No CRCs, as most dongles deliver frames.
    NoCrc,
    /// Wired M-Bus FT1.2 (EN 13757-2).
    Wired,
}

impl FrameFormat {
    /// The name used in reports: "A", "B", "none", "wired".
    pub const fn name(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::NoCrc => "none",
            Self::Wired => "wired",
        }
    }
}

/// Format A on-air length for an L-field: `L + 1 + 2·(1 + ⌈(L − 9) / 16⌉)`.
pub const fn format_a_len(l_field: u8) -> Option<usize> {
    let l = l_field as usize;
    if l < FIRST_BLOCK_LEN - 1 {
        return None;
    }
    let data_after_first = l - (FIRST_BLOCK_LEN - 1);
    let blocks = 1 + data_after_first.div_ceil(16);
    Some(l + 1 + 2 * blocks)
}

/// Most bytes after a frame's end that [`strip_crcs`] ignores (an appended RSSI or LQI byte,
/// or both); more is an error.
pub const MAX_TRAILING: usize = 2;

/// The result of normalising a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    /// The frame format recognised (or given).
    pub format: FrameFormat,
    /// Length of the normalised frame written to the output buffer.
    pub len: usize,
    /// Bytes after the frame's end that were ignored (some receivers append RSSI or status
    /// bytes); 0 for an exact frame.
    pub trailing: usize,
}

/// Verifies and removes the CRCs of a wireless frame, writing the normalised frame to `out`.
///
/// With `format` `None` the format is recognised from the length: `L + 1 + 2·blocks` bytes is
/// format A; `L + 1` bytes is format B when its CRCs verify, and otherwise a frame without
/// CRCs. A format B frame whose CRC is corrupt is therefore read as a frame without CRCs;
/// pass the format when it is known. Input longer than any format allows is read as the
/// frame its L-field announces (format A when that prefix's CRCs verify, else without CRCs)
/// with the excess (at most [`MAX_TRAILING`] bytes) reported in [`Normalized::trailing`].
///
/// # Errors
/// [`ErrorKind::CrcMismatch`] naming the block, [`ErrorKind::NoFrameFormat`] when the input
/// is shorter than its L-field announces, [`ErrorKind::Truncated`],
/// [`ErrorKind::BufferTooSmall`].
pub fn strip_crcs(input: &[u8], format: Option<FrameFormat>, out: &mut [u8]) -> Result<Normalized> {
    let Some(&l_field) = input.first() else {
        return Err(Error::truncated(Layer::Link, 0, 1, 0));
    };
    let n = input.len();
    let plain_len = usize::from(l_field) + 1;
    let a_len = format_a_len(l_field);
    let (format, used) = match format {
        Some(f @ FrameFormat::A) => (f, n),
        Some(f) => (f, n),
        None => {
            if Some(n) == a_len {
                (FrameFormat::A, n)
            } else if n == plain_len {
                if n >= FIRST_BLOCK_LEN + 2 && check_format_b(input).is_ok() {
                    (FrameFormat::B, n)
                } else {
                    (FrameFormat::NoCrc, n)
                }
            } else if n > plain_len && plain_len >= FIRST_BLOCK_LEN {
                match a_len {
                    Some(a)
                        if n > a
                            && n - a <= MAX_TRAILING
                            && input.get(..a).is_some_and(|p| check_format_a(p).is_ok()) =>
                    {
                        (FrameFormat::A, a)
                    }
                    _ if n - plain_len <= MAX_TRAILING => (FrameFormat::NoCrc, plain_len),
                    _ => {
                        return Err(Error::new(
                            Layer::Link,
                            0,
                            ErrorKind::NoFrameFormat { l_field, length: n },
                        ));
                    }
                }
            } else {
                return Err(Error::new(
                    Layer::Link,
                    0,
                    ErrorKind::NoFrameFormat { l_field, length: n },
                ));
            }
        }
    };
    let frame = input.get(..used).unwrap_or(input);
    let len = match format {
        FrameFormat::A => strip_format_a(frame, out)?,
        FrameFormat::B => strip_format_b(frame, out)?,
        FrameFormat::NoCrc | FrameFormat::Wired => {
            check_l_field(frame)?;
            copy_into(frame, out)?;
            frame.len()
        }
    };
    let format = if format == FrameFormat::Wired {
        FrameFormat::NoCrc
    } else {
        format
    };
    Ok(Normalized {
        format,
        len,
        trailing: n - used,
    })
}

fn check_format_a(input: &[u8]) -> Result<()> {
    let mut scratch = [0u8; MAX_FRAME_LEN];
    strip_format_a(input, &mut scratch).map(|_| ())
}

fn check_l_field(frame: &[u8]) -> Result<()> {
    let declared = usize::from(frame.first().copied().unwrap_or(0)) + 1;
    if declared != frame.len() {
        return Err(Error::new(
            Layer::Link,
            0,
            ErrorKind::LengthMismatch {
                declared,
                actual: frame.len(),
            },
        ));
    }
    if frame.len() < FIRST_BLOCK_LEN {
        return Err(Error::truncated(
            Layer::Link,
            0,
            FIRST_BLOCK_LEN,
            frame.len(),
        ));
    }
    Ok(())
}

fn copy_into(src: &[u8], out: &mut [u8]) -> Result<()> {
    let available = out.len();
    let dst = out.get_mut(..src.len()).ok_or(Error::new(
        Layer::Link,
        0,
        ErrorKind::BufferTooSmall {
            needed: src.len(),
            available,
        },
    ))?;
    dst.copy_from_slice(src);
    Ok(())
}

/// Checks one block: `data ‖ CRC(2, big-endian)` starting at `offset` of the input.
fn check_block(block: &[u8], number: usize, offset: usize) -> Result<&[u8]> {
    let split = block.len().saturating_sub(2);
    let (data, crc) = block.split_at(split);
    let received = match crc {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => return Err(Error::truncated(Layer::Link, offset, 2, crc.len())),
    };
    let computed = crc16(data);
    if received != computed {
        return Err(Error::new(
            Layer::Link,
            offset,
            ErrorKind::CrcMismatch {
                block: number,
                received,
                computed,
            },
        ));
    }
    Ok(data)
}

fn strip_format_a(input: &[u8], out: &mut [u8]) -> Result<usize> {
    let l_field = input.first().copied().unwrap_or(0);
    let expected = format_a_len(l_field).ok_or(Error::truncated(
        Layer::Link,
        0,
        FIRST_BLOCK_LEN,
        usize::from(l_field) + 1,
    ))?;
    if input.len() != expected {
        return Err(Error::new(
            Layer::Link,
            0,
            ErrorKind::LengthMismatch {
                declared: expected,
                actual: input.len(),
            },
        ));
    }
    let mut w = Writer::new(out, Layer::Link);
    let (first, mut rest) = input.split_at(FIRST_BLOCK_LEN + 2);
    w.put(check_block(first, 1, 0)?)?;
    let mut number = 2;
    while !rest.is_empty() {
        let take = rest.len().min(18);
        let (block, tail) = rest.split_at(take);
        w.put(check_block(block, number, input.len() - rest.len())?)?;
        rest = tail;
        number += 1;
    }
    Ok(w.position())
}

/// Format B blocks: one CRC at the end when `L + 1 ≤ 128`, else one at 126..128 and one at
/// the end (digest §1.3).
fn format_b_blocks(input: &[u8]) -> Result<(&[u8], Option<&[u8]>)> {
    let n = input.len();
    if n <= 128 {
        Ok((input, None))
    } else if n >= 131 {
        let (a, b) = input.split_at(128);
        Ok((a, Some(b)))
    } else {
        Err(Error::new(
            Layer::Link,
            0,
            ErrorKind::NoFrameFormat {
                l_field: input.first().copied().unwrap_or(0),
                length: n,
            },
        ))
    }
}

fn check_format_b(input: &[u8]) -> Result<()> {
    let (a, b) = format_b_blocks(input)?;
    check_block(a, 1, 0)?;
    if let Some(b) = b {
        check_block(b, 2, 128)?;
    }
    Ok(())
}

fn strip_format_b(input: &[u8], out: &mut [u8]) -> Result<usize> {
    let declared = usize::from(input.first().copied().unwrap_or(0)) + 1;
    if declared != input.len() {
        return Err(Error::new(
            Layer::Link,
            0,
            ErrorKind::LengthMismatch {
                declared,
                actual: input.len(),
            },
        ));
    }
    if input.len() < FIRST_BLOCK_LEN + 2 {
        return Err(Error::truncated(
            Layer::Link,
            0,
            FIRST_BLOCK_LEN + 2,
            input.len(),
        ));
    }
    let (a, b) = format_b_blocks(input)?;
    let mut w = Writer::new(out, Layer::Link);
    w.put(check_block(a, 1, 0)?)?;
    if let Some(b) = b {
        w.put(check_block(b, 2, 128)?)?;
    }
    let len = w.position();
    // L now counts the bytes after it, without CRCs.
    if let Some(l) = out.first_mut() {
        *l = u8::try_from(len - 1).unwrap_or(u8::MAX);
    }
    Ok(len)
}

/// On-air length of a normalised frame of `len` bytes in `format`.
pub const fn with_crcs_len(len: usize, format: FrameFormat) -> usize {
    match format {
        FrameFormat::A => {
            if len < FIRST_BLOCK_LEN {
                len
            } else {
                len + 2 * (1 + (len - FIRST_BLOCK_LEN).div_ceil(16))
            }
        }
        FrameFormat::B => {
            if len + 2 <= 128 {
                len + 2
            } else {
                len + 4
            }
        }
        FrameFormat::NoCrc | FrameFormat::Wired => len,
    }
}

/// Adds the CRCs of `format` to a normalised frame (whose L counts the bytes after it) and
/// writes the result to `out`, rewriting L for format B. Returns the length written.
///
/// # Errors
/// [`ErrorKind::LengthMismatch`] when L disagrees with the frame, [`ErrorKind::BufferTooSmall`].
pub fn emit_with_crcs(frame: &[u8], format: FrameFormat, out: &mut [u8]) -> Result<usize> {
    check_l_field(frame)?;
    let mut w = Writer::new(out, Layer::Link);
    match format {
        FrameFormat::A => {
            let (first, rest) = frame.split_at(FIRST_BLOCK_LEN);
            w.put(first)?;
            w.put(&crc16(first).to_be_bytes())?;
            for block in rest.chunks(16) {
                w.put(block)?;
                w.put(&crc16(block).to_be_bytes())?;
            }
        }
        FrameFormat::B => {
            let total = with_crcs_len(frame.len(), FrameFormat::B);
            let l_field = u8::try_from(total - 1).map_err(|_| {
                Error::new(
                    Layer::Link,
                    0,
                    ErrorKind::InvalidField("L-field: format B frame longer than 256 bytes"),
                )
            })?;
            let mut first = [0u8; 126];
            let split = frame.len().min(126);
            let (head, tail) = frame.split_at(split);
            let first = first.get_mut(..split).unwrap_or_default();
            first.copy_from_slice(head);
            if let Some(l) = first.first_mut() {
                *l = l_field;
            }
            w.put(first)?;
            w.put(&crc16(first).to_be_bytes())?;
            if !tail.is_empty() {
                w.put(tail)?;
                w.put(&crc16(tail).to_be_bytes())?;
            }
        }
        FrameFormat::NoCrc | FrameFormat::Wired => w.put(frame)?,
    }
    Ok(w.position())
}

/// The link-layer header of a wireless frame: `C ‖ M ‖ A` (L is derived from the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DllRepr {
    /// C-field.
    pub control: ControlField,
    /// M-field and A-field: the sender's address (a radio adapter's or a gateway's, when the
    /// meter's own address is in a long ELL or transport header).
    pub address: MeterAddress,
}

impl DllRepr {
    /// Bytes of the header after L.
    pub const BUFFER_LEN: usize = 9;

    /// Parses `L C M A` at the start of a normalised frame and checks L.
    ///
    /// # Errors
    /// Truncation or an L-field that disagrees with the frame length.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        check_l_field(frame)?;
        let mut r = Reader::new(frame, 0, Layer::Link);
        let _l = r.u8()?;
        let control = ControlField(r.u8()?);
        let manufacturer = ManufacturerCode::from_bytes(r.array()?);
        let address = Address::from_bytes(r.array()?);
        Ok(Self {
            control,
            address: MeterAddress {
                manufacturer,
                address,
            },
        })
    }

    /// Writes `L C M A`, with L for a normalised frame of `frame_len` bytes.
    pub(crate) fn emit(&self, frame_len: usize, w: &mut Writer<'_>) -> Result<()> {
        let l = u8::try_from(frame_len.saturating_sub(1)).map_err(|_| {
            Error::new(
                Layer::Link,
                0,
                ErrorKind::InvalidField("L-field: frame longer than 256 bytes"),
            )
        })?;
        w.u8(l)?;
        w.u8(self.control.0)?;
        w.put(&self.address.to_link_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> std::vec::Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn format_a_lengths() {
        assert_eq!(format_a_len(0x2E), Some(0x2E + 1 + 2 * 4));
        assert_eq!(format_a_len(9), Some(12));
        assert_eq!(format_a_len(8), None);
    }

    /// rmja/wmbus tests/stack.rs `can_read_modec_ffa` (kat_vectors.jsonl frame-a-rmja-kam).
    #[test]
    fn strips_format_a() {
        let raw = h(
            "4E442D2C98270467300491537AA61040256D3CA0F72FF1EF06806C50A10421CBD132E3B1D0116A0557696E0E37C2E9F08636FE31F68E6B4DEE5E385316C216A96E277D48B1459272386146F78C7766D519FC4449993ADA5AAD95A5",
        );
        let mut out = [0xA5u8; MAX_FRAME_LEN];
        let Normalized { format, len, .. } = strip_crcs(&raw, None, &mut out).unwrap();
        assert_eq!(format, FrameFormat::A);
        assert_eq!(
            &out[..len],
            &h(
                "4E442D2C9827046730047AA61040256D3CA0F72FF1EF06806C5021CBD132E3B1D0116A0557696E0E37C28636FE31F68E6B4DEE5E385316C216A97D48B1459272386146F78C7766D519FC993ADA5AAD"
            )[..]
        );
        let mut back = [0xA5u8; MAX_RAW_FRAME_LEN];
        let n = emit_with_crcs(&out[..len], FrameFormat::A, &mut back).unwrap();
        assert_eq!(&back[..n], &raw[..]);
    }

    /// rmja/wmbus `can_read_modec_ffb` and ioBroker's OMS format B example.
    #[test]
    fn strips_format_b() {
        for (raw, stripped) in [
            (
                "13442D2C785634120132A000010203040506C3C0",
                "11442D2C785634120132A000010203040506",
            ),
            (
                "1444AE0C7856341201078C2027780B134365877AC5",
                "1244AE0C7856341201078C2027780B13436587",
            ),
        ] {
            let raw = h(raw);
            let mut out = [0u8; MAX_FRAME_LEN];
            let Normalized { format, len, .. } = strip_crcs(&raw, None, &mut out).unwrap();
            assert_eq!(format, FrameFormat::B);
            assert_eq!(&out[..len], &h(stripped)[..]);
            let mut back = [0u8; MAX_RAW_FRAME_LEN];
            let n = emit_with_crcs(&out[..len], FrameFormat::B, &mut back).unwrap();
            assert_eq!(&back[..n], &raw[..]);
        }
    }

    #[test]
    fn long_format_b_round_trip() {
        let mut frame = [0u8; 200];
        frame[0] = 199;
        for (i, b) in frame.iter_mut().enumerate().skip(1) {
            *b = i as u8;
        }
        let mut raw = [0u8; MAX_RAW_FRAME_LEN];
        let n = emit_with_crcs(&frame, FrameFormat::B, &mut raw).unwrap();
        assert_eq!(n, 204);
        assert_eq!(raw[0], 203);
        let mut out = [0u8; MAX_FRAME_LEN];
        let Normalized { format, len, .. } = strip_crcs(&raw[..n], None, &mut out).unwrap();
        assert_eq!(format, FrameFormat::B);
        assert_eq!(&out[..len], &frame[..]);
    }

    #[test]
    fn names_the_failing_block() {
        let mut raw = h(
            "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A",
        );
        raw[20] ^= 1;
        let mut out = [0u8; MAX_FRAME_LEN];
        let err = strip_crcs(&raw, None, &mut out).unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::CrcMismatch { block: 2, .. }),
            "{err}"
        );
        assert_eq!(err.offset, 12);
    }

    #[test]
    fn rejects_lengths_that_fit_nothing() {
        let mut out = [0u8; MAX_FRAME_LEN];
        let err = strip_crcs(&h("2E4493157856341233037A"), None, &mut out).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::NoFrameFormat { .. }));
        assert!(strip_crcs(&[], None, &mut out).is_err());
        assert!(strip_crcs(&[3, 1, 2, 3], None, &mut out).is_err());
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let mut raw = h(
            "2E4493157856341233037A2A0020255923C95AAA26D1B2E7493B013EC4A6F6D3529B520EDFF0EA6DEFC99D6D69EBF3",
        );
        raw.push(0x71);
        let mut out = [0u8; MAX_FRAME_LEN];
        let n = strip_crcs(&raw, None, &mut out).unwrap();
        assert_eq!((n.format, n.len, n.trailing), (FrameFormat::NoCrc, 47, 1));
        let mut raw = h(
            "2E44931578563412330333637A2A0020255923C95AAA26D1B2E7493BC2AD013EC4A6F6D3529B520EDFF0EA6DEFC955B29D6D69EBF3EC8A",
        );
        raw.extend_from_slice(&[1, 2]);
        let n = strip_crcs(&raw, None, &mut out).unwrap();
        assert_eq!((n.format, n.len, n.trailing), (FrameFormat::A, 47, 2));
    }
}
