//! A whole frame: link layer, then in this order an optional ELL, an optional AFL, and the
//! transport layer with its application data (digest §2: DLL → ELL? → AFL? → TPL → APL).
//!
//! [`Frame::parse`] reads every plaintext header (the first phase of a two-phase decode, as in
//! quinn's `PartialDecode`); where the ELL encrypts what follows, parsing stops there and
//! `wmbus-security` continues with [`Transport::parse`] on the decrypted bytes.

use crate::afl::AflRepr;
use crate::codepoints::{CiField, CiKind, MeterAddress};
use crate::crc::crc16;
use crate::dll::{self, DllRepr, FrameFormat, MAX_FRAME_LEN, MAX_RAW_FRAME_LEN, Normalized};
use crate::ell::EllRepr;
use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};
use crate::tpl::TplRepr;
use crate::wired::{self, WiredKind, WiredRepr};

/// The link layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Wireless M-Bus (EN 13757-4).
    Wireless(DllRepr),
    /// Wired M-Bus (EN 13757-2).
    Wired(WiredRepr),
}

impl Link {
    /// The wireless sender address, if wireless.
    pub const fn address(&self) -> Option<MeterAddress> {
        match self {
            Self::Wireless(d) => Some(d.address),
            Self::Wired(_) => None,
        }
    }

    /// The C-field.
    pub const fn control(&self) -> crate::codepoints::ControlField {
        match self {
            Self::Wireless(d) => d.control,
            Self::Wired(w) => w.control,
        }
    }
}

/// The layers after the link layer and ELL: AFL, transport layer, application data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Transport<'a> {
    /// AFL, when present.
    pub afl: Option<AflRepr<'a>>,
    /// Transport layer; absent in fragments after the first and in link-only frames.
    pub tpl: Option<TplRepr>,
    /// Application data (possibly encrypted), or a fragment's raw bytes.
    pub payload: &'a [u8],
    /// Offset of the AFL CI.
    pub afl_offset: Option<usize>,
    /// Offset of the TPL CI.
    pub tpl_offset: Option<usize>,
    /// Offset of the payload.
    pub payload_offset: usize,
}

impl<'a> Transport<'a> {
    /// Parses `[AFL] [TPL] payload` from `bytes`, whose first byte is at absolute `offset`.
    ///
    /// # Errors
    /// Any AFL or transport-layer error; an ELL CI here is an error.
    pub fn parse(bytes: &'a [u8], offset: usize) -> Result<Self> {
        let mut r = Reader::new(bytes, offset, Layer::Transport);
        let mut out = Self {
            payload_offset: offset,
            ..Self::default()
        };
        let Some(mut ci) = r.peek() else {
            return Ok(out);
        };
        let mut complete = true;
        if ci == CiField::AFL.0 {
            out.afl_offset = Some(r.offset());
            let afl = AflRepr::parse(&mut r)?;
            out.afl = Some(afl);
            if afl.is_fragment() {
                complete = false;
                if !afl.is_first() {
                    out.payload_offset = r.offset();
                    out.payload = r.rest();
                    return Ok(out);
                }
            }
            match r.peek() {
                Some(next) => ci = next,
                None => {
                    out.payload_offset = r.offset();
                    return Ok(out);
                }
            }
        }
        if CiField(ci).kind() == CiKind::Afl
            || matches!(
                CiField(ci).kind(),
                CiKind::EllI | CiKind::EllII | CiKind::EllIII | CiKind::EllIV
            )
        {
            return Err(Error::new(
                Layer::Transport,
                r.offset(),
                ErrorKind::InvalidField("CI: an ELL or AFL cannot follow here"),
            ));
        }
        let before = r.clone();
        match TplRepr::parse(&mut r, complete) {
            Ok(tpl) => {
                out.tpl_offset = Some(before.offset());
                out.tpl = Some(tpl);
            }
            // A first fragment may end inside the transport header; the header is read
            // again from the reassembled message.
            Err(e) if !complete && matches!(e.kind, ErrorKind::Truncated { .. }) => r = before,
            Err(e) => return Err(e),
        }
        out.payload_offset = r.offset();
        out.payload = r.rest();
        Ok(out)
    }

    /// Bytes `emit_into` writes.
    pub fn buffer_len(&self) -> usize {
        self.afl.as_ref().map_or(0, AflRepr::buffer_len)
            + self.tpl.as_ref().map_or(0, TplRepr::buffer_len)
            + self.payload.len()
    }

    /// Writes `[AFL] [TPL] payload` into `out` and returns the length.
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`].
    pub fn emit_into(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = Writer::new(out, Layer::Transport);
        self.emit(&mut w)?;
        Ok(w.position())
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<()> {
        if let Some(afl) = &self.afl {
            afl.emit(w)?;
        }
        if let Some(tpl) = &self.tpl {
            tpl.emit(w)?;
        }
        w.put(self.payload)
    }
}

/// Everything a frame carries, as parsed from its normalised bytes or as built for emitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRepr<'a> {
    /// Link layer.
    pub link: Link,
    /// ELL, when present.
    pub ell: Option<EllRepr>,
    /// Everything after the ELL. When the ELL encrypts, this holds only `payload`: the
    /// ciphertext, starting with the encrypted PayloadCRC.
    pub transport: Transport<'a>,
}

/// A parsed frame: its layers plus where each starts in the normalised bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// How the frame arrived.
    pub format: FrameFormat,
    /// The layers.
    pub repr: FrameRepr<'a>,
    /// The normalised frame (wireless: L to the end without CRCs; wired: the FT1.2 frame).
    pub bytes: &'a [u8],
    /// Offset of the ELL CI.
    pub ell_offset: Option<usize>,
}

impl<'a> Frame<'a> {
    /// Parses a normalised frame (see [`normalize`]).
    ///
    /// # Errors
    /// The first error of any layer, with its offset.
    pub fn parse(bytes: &'a [u8], format: FrameFormat) -> Result<Self> {
        if format == FrameFormat::Wired {
            let (wired, range) = wired::parse(bytes)?;
            let user = bytes.get(range.clone()).unwrap_or(&[]);
            let transport = Transport::parse(user, range.start)?;
            return Ok(Self {
                format,
                repr: FrameRepr {
                    link: Link::Wired(wired),
                    ell: None,
                    transport,
                },
                bytes,
                ell_offset: None,
            });
        }
        let dll = DllRepr::parse(bytes)?;
        let mut r = Reader::new(bytes, 0, Layer::Link);
        r.take(dll::FIRST_BLOCK_LEN)?;
        let mut ell = None;
        let mut ell_offset = None;
        if let Some(ci) = r.peek() {
            match CiField(ci).kind() {
                CiKind::EllI | CiKind::EllII | CiKind::EllIII | CiKind::EllIV | CiKind::EllV => {
                    ell_offset = Some(r.offset());
                    let e = EllRepr::parse(&mut r)?;
                    ell = Some(e);
                    if e.is_encrypted() {
                        let payload_offset = r.offset();
                        let payload = r.rest();
                        if payload.len() < 2 {
                            return Err(Error::truncated(
                                Layer::Ell,
                                payload_offset,
                                2,
                                payload.len(),
                            ));
                        }
                        return Ok(Self {
                            format,
                            repr: FrameRepr {
                                link: Link::Wireless(dll),
                                ell,
                                transport: Transport {
                                    payload,
                                    payload_offset,
                                    ..Transport::default()
                                },
                            },
                            bytes,
                            ell_offset,
                        });
                    }
                    if e.session_number.is_some() {
                        let crc_offset = r.offset();
                        let received = r.u16_le()?;
                        let rest_offset = r.offset();
                        let rest = r.rest();
                        let computed = crc16(rest);
                        if received != computed {
                            return Err(Error::new(
                                Layer::Ell,
                                crc_offset,
                                ErrorKind::PayloadCrcMismatch { received, computed },
                            ));
                        }
                        r = Reader::new(rest, rest_offset, Layer::Transport);
                    }
                }
                _ => {}
            }
        }
        let offset = r.offset();
        let transport = Transport::parse(r.rest(), offset)?;
        Ok(Self {
            format,
            repr: FrameRepr {
                link: Link::Wireless(dll),
                ell,
                transport,
            },
            bytes,
            ell_offset,
        })
    }

    /// The meter's address: the long transport header's when present, else the link
    /// layer's (wired frames without a long header have none).
    pub fn meter(&self) -> Option<MeterAddress> {
        self.repr
            .transport
            .tpl
            .and_then(|t| t.header)
            .and_then(|h| h.meter)
            .or_else(|| self.repr.link.address())
    }
}

impl FrameRepr<'_> {
    /// Length of the normalised frame [`Self::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let inner = self.ell.as_ref().map_or(0, |e| {
            if e.is_encrypted() {
                e.header_len()
            } else {
                e.buffer_len()
            }
        }) + self.transport.buffer_len();
        match self.link {
            Link::Wireless(_) => dll::FIRST_BLOCK_LEN + inner,
            Link::Wired(w) => w.buffer_len(inner),
        }
    }

    /// Writes the normalised frame (no link-layer CRCs; wired frames complete with checksum)
    /// and returns its length. An unencrypted ELL II/IV gets its PayloadCRC computed; an
    /// encrypted one takes its payload as given (ciphertext starting with the PayloadCRC).
    ///
    /// # Errors
    /// [`ErrorKind::BufferTooSmall`], or a length field that overflows.
    pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        match self.link {
            Link::Wireless(dll) => {
                let mut w = Writer::new(out, Layer::Link);
                dll.emit(len, &mut w)?;
                self.emit_after_link(&mut w)?;
                Ok(w.position())
            }
            Link::Wired(wired) => {
                let mut user = [0u8; MAX_FRAME_LEN];
                let mut uw = Writer::new(&mut user, Layer::Wired);
                if wired.kind == WiredKind::Long {
                    self.emit_after_link(&mut uw)?;
                }
                let n = uw.position();
                let mut w = Writer::new(out, Layer::Wired);
                wired.emit(user.get(..n).unwrap_or(&[]), &mut w)?;
                Ok(w.position())
            }
        }
    }

    fn emit_after_link(&self, w: &mut Writer<'_>) -> Result<()> {
        if let Some(ell) = &self.ell {
            ell.emit_header(w)?;
            if ell.session_number.is_some() && !ell.is_encrypted() {
                let mut inner = [0u8; MAX_FRAME_LEN];
                let mut iw = Writer::new(&mut inner, Layer::Transport);
                self.transport.emit(&mut iw)?;
                let n = iw.position();
                let inner = inner.get(..n).unwrap_or(&[]);
                w.u16_le(crc16(inner))?;
                return w.put(inner);
            }
        }
        self.transport.emit(w)
    }

    /// Emits the frame as it goes on air in `format` (with CRCs for A and B).
    ///
    /// # Errors
    /// As [`Self::emit`] and [`dll::emit_with_crcs`].
    pub fn emit_on_air(&self, format: FrameFormat, out: &mut [u8]) -> Result<usize> {
        if matches!(self.link, Link::Wired(_)) {
            return self.emit(out);
        }
        let mut normalised = [0u8; MAX_FRAME_LEN];
        let n = self.emit(&mut normalised)?;
        dll::emit_with_crcs(normalised.get(..n).unwrap_or(&[]), format, out)
    }
}

/// A receive buffer big enough for any normalised frame.
pub type FrameBuffer = [u8; MAX_RAW_FRAME_LEN];

/// Recognises wired or wireless input, verifies and removes link-layer CRCs, and writes the
/// normalised frame to `out` (see [`dll::strip_crcs`]; wired frames are copied as they are).
///
/// # Errors
/// As [`dll::strip_crcs`] and [`wired::parse`].
pub fn normalize(input: &[u8], format: Option<FrameFormat>, out: &mut [u8]) -> Result<Normalized> {
    if format == Some(FrameFormat::Wired) || (format.is_none() && wired::looks_wired(input)) {
        wired::parse(input)?;
        let available = out.len();
        let dst = out.get_mut(..input.len()).ok_or(Error::new(
            Layer::Wired,
            0,
            ErrorKind::BufferTooSmall {
                needed: input.len(),
                available,
            },
        ))?;
        dst.copy_from_slice(input);
        return Ok(Normalized {
            format: FrameFormat::Wired,
            len: input.len(),
            trailing: 0,
        });
    }
    dll::strip_crcs(input, format, out)
}
