//! Software update over the air: image transfer messages.
//!
//! - [`oms`]: the generic procedure of EN 13757-3:2018 Annex I as OMS profiles it (addendum
//!   §6a; CI C0h command, C1h/C2h response). The message set, function codes and states are
//!   public; **the byte widths of the fields are not**. The encoding here is our reading,
//!   kept in this one module and marked provisional in `docs/software-update.md`.
//! - [`esmr5`]: the Dutch ESMR 5 gas-meter profile (addendum §6b), fully documented: the
//!   VIF-based messages (`DIF 0D VIF FD VIFE F7 sub-code`), the status report, the block
//!   bitmap and the SMR5 image header.

use crate::error::{Error, ErrorKind, Layer, Result};
use crate::reader::{Reader, Writer};

fn invalid(offset: usize, what: &'static str) -> Error {
    Error::new(Layer::Application, offset, ErrorKind::InvalidField(what))
}

/// The generic image transfer of EN 13757-3 Annex I, OMS profile (provisional widths).
///
/// Every message is `function ‖ fields`, multi-byte fields little-endian:
///
/// | function | command fields | response (function \| 80h) fields |
/// |---|---|---|
/// | 00 Prepare | image id (4), image size (4), block size (2), MAC algorithm (1), MAC key id (1), MAC (16) | state (1), image id (4) |
/// | 02 Transfer | image id (4), block number (2), data (Annex I's optional "remaining" left out) | state (1), image id (4), block number (2) |
/// | 03 Completion | image id (4) | state (1), image id (4), lost total (2), lost block numbers (2 each, as many as fit) |
/// | 04 State | – | state (1), image id (4) |
/// | 05 Validate | image id (4) | state (1), image id (4) |
/// | 06 Activate | image id (4), date/time (4, type F) | state (1), image id (4) |
/// | 07 Terminate | flags (1: bit 0 T_TR clear buffer, bit 1 T_IT reset process) | state (1), image id (4) |
///
/// Blocks are numbered from 0; the block size is at least 190 bytes (`MIN_BLOCK_SIZE`).
pub mod oms {
    use super::{Error, ErrorKind, Layer, Reader, Result, Writer, invalid};

    /// CI of an image-transfer command.
    pub const CI_COMMAND: u8 = 0xC0;
    /// CI of a response with a short header.
    pub const CI_RESPONSE: u8 = 0xC1;
    /// CI of a response with a long header.
    pub const CI_RESPONSE_LONG: u8 = 0xC2;
    /// The smallest block size a meter must take (OMS).
    pub const MIN_BLOCK_SIZE: usize = 190;
    /// MAC algorithm 04h of the Prepare MAC field (OMS; AES-CMAC-128 in our reading).
    pub const MAC_ALGORITHM_CMAC: u8 = 0x04;
    /// Key ID of the image MAC key (OMS Annex M UC-05).
    pub const IMAGE_MAC_KEY_ID: u8 = 0x18;
    /// Key ID of the key that authenticates Prepare, Activate and Terminate in SITP.
    pub const ITP_KEY_ID: u8 = 0x23;
    /// SITP protocol identifier (PID) of image-transfer commands.
    pub const SITP_PROTOCOL: u8 = 0x06;
    /// Terminate flag T_TR: clear the transfer buffer.
    pub const TERMINATE_CLEAR_BUFFER: u8 = 0x01;
    /// Terminate flag T_IT: reset the process.
    pub const TERMINATE_RESET: u8 = 0x02;

    /// Function code (a response is the command's code | 80h).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Function(pub u8);

    impl Function {
        /// Prepare.
        pub const PREPARE: Self = Self(0x00);
        /// Transfer a block.
        pub const TRANSFER: Self = Self(0x02);
        /// Completion: which blocks are missing.
        pub const COMPLETION: Self = Self(0x03);
        /// Ask the state.
        pub const STATE: Self = Self(0x04);
        /// Validate the image against the Prepare MAC.
        pub const VALIDATE: Self = Self(0x05);
        /// Activate.
        pub const ACTIVATE: Self = Self(0x06);
        /// Terminate.
        pub const TERMINATE: Self = Self(0x07);

        /// The response code.
        pub const fn response(self) -> Self {
            Self(self.0 | 0x80)
        }

        /// The name.
        pub const fn name(self) -> &'static str {
            match self.0 & 0x7F {
                0x00 => "prepare",
                0x02 => "transfer",
                0x03 => "completion",
                0x04 => "state",
                0x05 => "validate",
                0x06 => "activate",
                0x07 => "terminate",
                _ => "unknown",
            }
        }
    }

    /// The meter's transfer state (OMS Annex M Fig. M.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct State(pub u8);

    impl State {
        /// Transfer initiated (after Prepare).
        pub const TRANSFER_INITIATED: Self = Self(2);
        /// Transfer active.
        pub const TRANSFER_ACTIVE: Self = Self(3);
        /// Transfer terminated.
        pub const TRANSFER_TERMINATED: Self = Self(4);
        /// Transfer successful (every block received).
        pub const TRANSFER_SUCCESSFUL: Self = Self(5);
        /// Transfer failed.
        pub const TRANSFER_FAILED: Self = Self(6);
        /// Validation initiated.
        pub const VALIDATION_INITIATED: Self = Self(7);
        /// Validation active.
        pub const VALIDATION_ACTIVE: Self = Self(8);
        /// Validation successful.
        pub const VALIDATION_SUCCESSFUL: Self = Self(9);
        /// Validation failed.
        pub const VALIDATION_FAILED: Self = Self(10);
        /// Activation initiated.
        pub const ACTIVATION_INITIATED: Self = Self(11);
        /// Activation successful.
        pub const ACTIVATION_SUCCESSFUL: Self = Self(12);
        /// Activation failed.
        pub const ACTIVATION_FAILED: Self = Self(13);
        /// Image transfer terminated.
        pub const TERMINATED: Self = Self(14);
        /// Idle (initial state).
        pub const IDLE: Self = Self(15);

        /// The name.
        pub const fn name(self) -> &'static str {
            match self.0 {
                2 => "transfer_initiated",
                3 => "transfer_active",
                4 => "transfer_terminated",
                5 => "transfer_successful",
                6 => "transfer_failed",
                7 => "validation_initiated",
                8 => "validation_active",
                9 => "validation_successful",
                10 => "validation_failed",
                11 => "activation_initiated",
                12 => "activation_successful",
                13 => "activation_failed",
                14 => "image_transfer_terminated",
                15 => "idle",
                _ => "unknown",
            }
        }
    }

    /// A command.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Command<'a> {
        /// 00: announce an image.
        Prepare {
            /// Image identifier.
            image_id: u32,
            /// Image size in bytes.
            image_size: u32,
            /// Block size in bytes.
            block_size: u16,
            /// MAC algorithm ([`MAC_ALGORITHM_CMAC`]).
            mac_algorithm: u8,
            /// Key ID of the MAC key ([`IMAGE_MAC_KEY_ID`]).
            mac_key_id: u8,
            /// The image MAC, 16 bytes.
            mac: &'a [u8],
        },
        /// 02: one block.
        Transfer {
            /// Image identifier.
            image_id: u32,
            /// Block number, from 0.
            block: u16,
            /// The block's bytes.
            data: &'a [u8],
        },
        /// 03: ask which blocks are missing.
        Completion {
            /// Image identifier.
            image_id: u32,
        },
        /// 04: ask the state.
        State,
        /// 05: validate.
        Validate {
            /// Image identifier.
            image_id: u32,
        },
        /// 06: activate at a time (type F date/time; 0: now).
        Activate {
            /// Image identifier.
            image_id: u32,
            /// Date/time, type F (4 bytes).
            time: u32,
        },
        /// 07: terminate.
        Terminate {
            /// [`TERMINATE_CLEAR_BUFFER`], [`TERMINATE_RESET`].
            flags: u8,
        },
    }

    impl<'a> Command<'a> {
        /// The function code.
        pub const fn function(&self) -> Function {
            match self {
                Self::Prepare { .. } => Function::PREPARE,
                Self::Transfer { .. } => Function::TRANSFER,
                Self::Completion { .. } => Function::COMPLETION,
                Self::State => Function::STATE,
                Self::Validate { .. } => Function::VALIDATE,
                Self::Activate { .. } => Function::ACTIVATE,
                Self::Terminate { .. } => Function::TERMINATE,
            }
        }

        /// Bytes [`Self::emit`] writes.
        pub const fn buffer_len(&self) -> usize {
            1 + match self {
                Self::Prepare { mac, .. } => 12 + mac.len(),
                Self::Transfer { data, .. } => 6 + data.len(),
                Self::Completion { .. } | Self::Validate { .. } => 4,
                Self::State => 0,
                Self::Activate { .. } => 8,
                Self::Terminate { .. } => 1,
            }
        }

        /// Parses a command; `base` is the offset of its first byte for errors.
        ///
        /// # Errors
        /// Truncation, an unknown function, a MAC that is not 16 bytes, trailing bytes.
        pub fn parse(bytes: &'a [u8], base: usize) -> Result<Self> {
            let mut r = Reader::new(bytes, base, Layer::Application);
            let function = Function(r.u8()?);
            let c = match function {
                Function::PREPARE => {
                    let image_id = r.u32_le()?;
                    let image_size = r.u32_le()?;
                    let block_size = r.u16_le()?;
                    let mac_algorithm = r.u8()?;
                    let mac_key_id = r.u8()?;
                    let mac = r.take(16)?;
                    Self::Prepare {
                        image_id,
                        image_size,
                        block_size,
                        mac_algorithm,
                        mac_key_id,
                        mac,
                    }
                }
                Function::TRANSFER => Self::Transfer {
                    image_id: r.u32_le()?,
                    block: r.u16_le()?,
                    data: r.rest(),
                },
                Function::COMPLETION => Self::Completion {
                    image_id: r.u32_le()?,
                },
                Function::STATE => Self::State,
                Function::VALIDATE => Self::Validate {
                    image_id: r.u32_le()?,
                },
                Function::ACTIVATE => Self::Activate {
                    image_id: r.u32_le()?,
                    time: r.u32_le()?,
                },
                Function::TERMINATE => Self::Terminate { flags: r.u8()? },
                _ => return Err(invalid(base, "image transfer function")),
            };
            if r.remaining() > 0 {
                return Err(Error::new(
                    Layer::Application,
                    r.offset(),
                    ErrorKind::InvalidField("bytes after an image transfer command"),
                ));
            }
            Ok(c)
        }

        /// Writes the command; returns its length.
        ///
        /// # Errors
        /// [`ErrorKind::BufferTooSmall`]; a Prepare MAC that is not 16 bytes.
        pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
            let mut w = Writer::new(out, Layer::Application);
            w.u8(self.function().0)?;
            match *self {
                Self::Prepare {
                    image_id,
                    image_size,
                    block_size,
                    mac_algorithm,
                    mac_key_id,
                    mac,
                } => {
                    if mac.len() != 16 {
                        return Err(invalid(0, "image MAC length"));
                    }
                    w.u32_le(image_id)?;
                    w.u32_le(image_size)?;
                    w.u16_le(block_size)?;
                    w.put(&[mac_algorithm, mac_key_id])?;
                    w.put(mac)?;
                }
                Self::Transfer {
                    image_id,
                    block,
                    data,
                } => {
                    w.u32_le(image_id)?;
                    w.u16_le(block)?;
                    w.put(data)?;
                }
                Self::Completion { image_id } | Self::Validate { image_id } => {
                    w.u32_le(image_id)?;
                }
                Self::State => {}
                Self::Activate { image_id, time } => {
                    w.u32_le(image_id)?;
                    w.u32_le(time)?;
                }
                Self::Terminate { flags } => w.u8(flags)?,
            }
            Ok(w.position())
        }
    }

    /// A response.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Response<'a> {
        /// The command's function | 80h.
        pub function: Function,
        /// The meter's state.
        pub state: State,
        /// Image identifier (0 when none).
        pub image_id: u32,
        /// Transfer: the block acknowledged.
        pub block: Option<u16>,
        /// Completion: how many blocks are missing in all.
        pub lost_total: Option<u16>,
        /// Completion: missing block numbers, 2 bytes LE each (possibly fewer than
        /// `lost_total` when they do not fit one message).
        pub lost: &'a [u8],
    }

    impl<'a> Response<'a> {
        /// The missing block numbers listed.
        pub fn lost_blocks(&self) -> impl Iterator<Item = u16> + 'a {
            self.lost.chunks_exact(2).map(|c| {
                u16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
        }

        /// Bytes [`Self::emit`] writes.
        pub const fn buffer_len(&self) -> usize {
            6 + if self.block.is_some() { 2 } else { 0 }
                + if self.lost_total.is_some() {
                    2 + self.lost.len()
                } else {
                    0
                }
        }

        /// Parses a response.
        ///
        /// # Errors
        /// Truncation, a code that is not a response, an odd lost-block list.
        pub fn parse(bytes: &'a [u8], base: usize) -> Result<Self> {
            let mut r = Reader::new(bytes, base, Layer::Application);
            let function = Function(r.u8()?);
            if function.0 & 0x80 == 0 || Function(function.0 & 0x7F).name() == "unknown" {
                return Err(invalid(base, "image transfer response code"));
            }
            let state = State(r.u8()?);
            let image_id = r.u32_le()?;
            let mut out = Self {
                function,
                state,
                image_id,
                block: None,
                lost_total: None,
                lost: &[],
            };
            match Function(function.0 & 0x7F) {
                Function::TRANSFER => out.block = Some(r.u16_le()?),
                Function::COMPLETION => {
                    out.lost_total = Some(r.u16_le()?);
                    let at = r.offset();
                    let lost = r.rest();
                    if !lost.len().is_multiple_of(2) {
                        return Err(invalid(at, "lost block list length"));
                    }
                    out.lost = lost;
                }
                _ => {}
            }
            if r.remaining() > 0 {
                return Err(invalid(
                    r.offset(),
                    "bytes after an image transfer response",
                ));
            }
            Ok(out)
        }

        /// Writes the response; returns its length.
        ///
        /// # Errors
        /// [`ErrorKind::BufferTooSmall`].
        pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
            let mut w = Writer::new(out, Layer::Application);
            w.u8(self.function.0)?;
            w.u8(self.state.0)?;
            w.u32_le(self.image_id)?;
            if let Some(b) = self.block {
                w.u16_le(b)?;
            }
            if let Some(t) = self.lost_total {
                w.u16_le(t)?;
                w.put(self.lost)?;
            }
            Ok(w.position())
        }
    }
}

/// The ESMR 5 firmware update (addendum §6b; fully public): messages in data records
/// `DIF VIF=FDh VIFE=F7h sub-code LVAR data`, and the SMR5 image file.
pub mod esmr5 {
    use super::{Reader, Result, Writer, invalid};
    use crate::error::Layer;

    /// DIF of a message with data (variable length).
    pub const DIF_DATA: u8 = 0x0D;
    /// DIF of a readout request (selection for readout).
    pub const DIF_READOUT: u8 = 0x08;
    /// VIF: extension table FDh.
    pub const VIF: u8 = 0xFD;
    /// VIFE: the firmware-update family.
    pub const VIFE: u8 = 0xF7;

    /// Sub-code (the VIFE after F7h).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SubCode(pub u8);

    impl SubCode {
        /// Start: image length, requested block size.
        pub const START: Self = Self(0x30);
        /// Status report (response to everything but block status).
        pub const STATUS: Self = Self(0x31);
        /// Send data: block number, data.
        pub const DATA: Self = Self(0x32);
        /// Validate.
        pub const VALIDATE: Self = Self(0x33);
        /// Activate.
        pub const ACTIVATE: Self = Self(0x34);
        /// Cancel.
        pub const CANCEL: Self = Self(0x35);
        /// Block status: a bitmap, one bit per block.
        pub const BLOCK_STATUS: Self = Self(0x36);
    }

    /// Update states of the status report.
    pub mod state {
        /// Idle.
        pub const IDLE: u8 = 0;
        /// Receiving data.
        pub const DATA_RECEIVE: u8 = 1;
        /// Validating.
        pub const VALIDATING: u8 = 2;
        /// Validated.
        pub const VALIDATED: u8 = 3;
        /// Validation failed.
        pub const VALIDATION_FAILED: u8 = 4;
        /// Activating.
        pub const ACTIVATING: u8 = 5;
        /// Activated.
        pub const ACTIVATED: u8 = 6;
        /// Activation failed.
        pub const ACTIVATION_FAILED: u8 = 7;
    }

    /// Error codes of the status report.
    pub const fn error_name(code: u8) -> &'static str {
        match code {
            0 => "ok",
            1 => "block size not supported",
            2 => "image too big",
            3 => "invalid block number",
            4 => "data receive error",
            5 => "image incomplete",
            6 => "invalid security",
            7 => "wrong device",
            8 => "signature error",
            9 => "MAC error",
            10 => "corrupt header",
            _ => "unknown",
        }
    }

    /// The status report (sub-code 31h): update state, error code, agreed block size,
    /// validation field (its length first). The addendum gives the fields, not their widths:
    /// one byte each here, the validation field as long as its length byte says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct StatusReport<'a> {
        /// [`state`].
        pub state: u8,
        /// [`error_name`].
        pub error: u8,
        /// Agreed block size (at most 177 on P2).
        pub block_size: u8,
        /// Validation field.
        pub validation: &'a [u8],
    }

    /// A message.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Message<'a> {
        /// 30: image length (4), requested block size (1).
        Start {
            /// Image length.
            image_length: u32,
            /// Requested block size.
            block_size: u8,
        },
        /// 32: block number (2, first 0000), data.
        Data {
            /// Block number.
            block: u16,
            /// The block.
            data: &'a [u8],
        },
        /// 33.
        Validate,
        /// 34.
        Activate,
        /// 35.
        Cancel,
        /// `08 FD F7 31`: readout request for the status.
        StatusRequest,
        /// `08 FD F7 36`: readout request for the block status.
        BlockStatusRequest,
        /// 31: the status report.
        Status(StatusReport<'a>),
        /// 36: the bitmap, bit n (LSB first) set when block n was received.
        BlockStatus {
            /// Bitmap bytes.
            bitmap: &'a [u8],
        },
    }

    impl<'a> Message<'a> {
        fn payload_len(&self) -> Option<usize> {
            match self {
                Self::Start { .. } => Some(5),
                Self::Data { data, .. } => Some(2 + data.len()),
                Self::Validate | Self::Activate | Self::Cancel => Some(0),
                Self::StatusRequest | Self::BlockStatusRequest => None,
                Self::Status(s) => Some(4 + s.validation.len()),
                Self::BlockStatus { bitmap } => Some(bitmap.len()),
            }
        }

        /// Bytes [`Self::emit`] writes.
        pub fn buffer_len(&self) -> usize {
            4 + self.payload_len().map_or(0, |n| 1 + n)
        }

        /// Parses one record.
        ///
        /// # Errors
        /// Not this record family, an unknown sub-code, an LVAR above BFh (not a byte
        /// string), truncation, a status report whose validation length disagrees.
        pub fn parse(bytes: &'a [u8], base: usize) -> Result<Self> {
            let mut r = Reader::new(bytes, base, Layer::Application);
            let dif = r.u8()?;
            if r.u8()? != VIF || r.u8()? != VIFE {
                return Err(invalid(base, "ESMR 5 firmware record (VIF FDh, VIFE F7h)"));
            }
            let sub = SubCode(r.u8()?);
            if dif == DIF_READOUT {
                let m = match sub {
                    SubCode::STATUS => Self::StatusRequest,
                    SubCode::BLOCK_STATUS => Self::BlockStatusRequest,
                    _ => return Err(invalid(base + 3, "ESMR 5 readout sub-code")),
                };
                if r.remaining() > 0 {
                    return Err(invalid(r.offset(), "bytes after a readout request"));
                }
                return Ok(m);
            }
            if dif != DIF_DATA {
                return Err(invalid(base, "ESMR 5 firmware record DIF"));
            }
            let lvar_at = r.offset();
            let lvar = r.u8()?;
            if lvar > 0xBF {
                return Err(invalid(lvar_at, "ESMR 5 LVAR"));
            }
            let body = r.take(usize::from(lvar))?;
            if r.remaining() > 0 {
                return Err(invalid(r.offset(), "bytes after an ESMR 5 record"));
            }
            let mut b = Reader::new(body, lvar_at + 1, Layer::Application);
            let m = match sub {
                SubCode::START => Self::Start {
                    image_length: b.u32_le()?,
                    block_size: b.u8()?,
                },
                SubCode::DATA => Self::Data {
                    block: b.u16_le()?,
                    data: b.rest(),
                },
                SubCode::VALIDATE => Self::Validate,
                SubCode::ACTIVATE => Self::Activate,
                SubCode::CANCEL => Self::Cancel,
                SubCode::STATUS => {
                    let state = b.u8()?;
                    let error = b.u8()?;
                    let block_size = b.u8()?;
                    let n = b.u8()?;
                    Self::Status(StatusReport {
                        state,
                        error,
                        block_size,
                        validation: b.take(usize::from(n))?,
                    })
                }
                SubCode::BLOCK_STATUS => Self::BlockStatus { bitmap: b.rest() },
                _ => return Err(invalid(base + 3, "ESMR 5 sub-code")),
            };
            if b.remaining() > 0 {
                return Err(invalid(b.offset(), "bytes after an ESMR 5 message"));
            }
            Ok(m)
        }

        /// Writes the record; returns its length.
        ///
        /// # Errors
        /// Buffer too small; a body longer than BFh bytes.
        pub fn emit(&self, out: &mut [u8]) -> Result<usize> {
            let mut w = Writer::new(out, Layer::Application);
            let (dif, sub) = match self {
                Self::Start { .. } => (DIF_DATA, SubCode::START),
                Self::Data { .. } => (DIF_DATA, SubCode::DATA),
                Self::Validate => (DIF_DATA, SubCode::VALIDATE),
                Self::Activate => (DIF_DATA, SubCode::ACTIVATE),
                Self::Cancel => (DIF_DATA, SubCode::CANCEL),
                Self::StatusRequest => (DIF_READOUT, SubCode::STATUS),
                Self::BlockStatusRequest => (DIF_READOUT, SubCode::BLOCK_STATUS),
                Self::Status(_) => (DIF_DATA, SubCode::STATUS),
                Self::BlockStatus { .. } => (DIF_DATA, SubCode::BLOCK_STATUS),
            };
            w.put(&[dif, VIF, VIFE, sub.0])?;
            let Some(n) = self.payload_len() else {
                return Ok(w.position());
            };
            let lvar = u8::try_from(n)
                .ok()
                .filter(|n| *n <= 0xBF)
                .ok_or_else(|| invalid(4, "ESMR 5 body longer than BFh bytes"))?;
            w.u8(lvar)?;
            match *self {
                Self::Start {
                    image_length,
                    block_size,
                } => {
                    w.u32_le(image_length)?;
                    w.u8(block_size)?;
                }
                Self::Data { block, data } => {
                    w.u16_le(block)?;
                    w.put(data)?;
                }
                Self::Status(s) => {
                    let v = u8::try_from(s.validation.len())
                        .map_err(|_| invalid(8, "validation field length"))?;
                    w.put(&[s.state, s.error, s.block_size, v])?;
                    w.put(s.validation)?;
                }
                Self::BlockStatus { bitmap } => w.put(bitmap)?,
                _ => {}
            }
            Ok(w.position())
        }
    }

    /// Length of the SMR5 image header.
    pub const HEADER_LEN: usize = 35;

    /// The SMR5 image header (35 bytes).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Header {
        /// Header version (00).
        pub header_version: u8,
        /// Firmware version: seconds since 2000 (stored LE).
        pub firmware_version: u32,
        /// Image length.
        pub image_length: u32,
        /// Length of the security section (16).
        pub security_length: u16,
        /// 0 none, 1 SHA-256, 2 GMAC, 3 CMAC, 4 HMAC, 5 ECDSA.
        pub security_type: u8,
        /// Address type (1: M-Bus).
        pub address_type: u8,
        /// `M(2) ‖ ID(4) ‖ Version ‖ Type`, wildcards allowed.
        pub address: [u8; 8],
        /// 1 immediate, 2 timed, 3 master-initiated.
        pub activation_type: u8,
        /// Activation time (type I, 6 bytes).
        pub activation_time: [u8; 6],
    }

    impl Header {
        /// Parses the first 35 bytes of an image file.
        ///
        /// # Errors
        /// Not "SMR5", a header length other than 35, an address length other than 8.
        pub fn parse(bytes: &[u8]) -> Result<Self> {
            let mut r = Reader::new(bytes, 0, Layer::Application);
            if r.take(4)? != b"SMR5" {
                return Err(invalid(0, "SMR5 magic"));
            }
            let header_version = r.u8()?;
            if usize::from(r.u16_le()?) != HEADER_LEN {
                return Err(invalid(5, "SMR5 header length"));
            }
            let firmware_version = r.u32_le()?;
            let image_length = r.u32_le()?;
            let security_length = r.u16_le()?;
            let security_type = r.u8()?;
            if r.u8()? != 8 {
                return Err(invalid(18, "SMR5 address length"));
            }
            let address_type = r.u8()?;
            let address = r.array::<8>()?;
            let activation_type = r.u8()?;
            let activation_time = r.array::<6>()?;
            Ok(Self {
                header_version,
                firmware_version,
                image_length,
                security_length,
                security_type,
                address_type,
                address,
                activation_type,
                activation_time,
            })
        }

        /// The 35 header bytes.
        pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
            let mut out = [0u8; HEADER_LEN];
            let mut w = Writer::new(&mut out, Layer::Application);
            // invariant: 35 bytes are written into 35.
            let _ = w
                .put(b"SMR5")
                .and_then(|()| w.u8(self.header_version))
                .and_then(|()| w.u16_le(35))
                .and_then(|()| w.u32_le(self.firmware_version))
                .and_then(|()| w.u32_le(self.image_length))
                .and_then(|()| w.u16_le(self.security_length))
                .and_then(|()| w.put(&[self.security_type, 8, self.address_type]))
                .and_then(|()| w.put(&self.address))
                .and_then(|()| w.u8(self.activation_type))
                .and_then(|()| w.put(&self.activation_time));
            out
        }

        /// header': the header with the real meter's address (`M(2) ‖ ID(4) ‖ Ver ‖ Type`),
        /// as the central system rewrites it before computing the GMAC.
        pub const fn for_meter(&self, address: [u8; 8]) -> Self {
            Self { address, ..*self }
        }

        /// The GMAC IV: `M ‖ ID ‖ Ver ‖ Type ‖ FWversion (big-endian)`.
        pub fn iv(&self) -> [u8; 12] {
            let mut iv = [0u8; 12];
            let v = self.firmware_version.to_be_bytes();
            for (o, b) in iv.iter_mut().zip(self.address.iter().chain(v.iter())) {
                *o = *b;
            }
            iv
        }
    }

    /// An image file: header, image, security section.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ImageFile<'a> {
        /// The header.
        pub header: Header,
        /// The image (as long as the header says).
        pub image: &'a [u8],
        /// The security section (as long as the header says).
        pub security: &'a [u8],
    }

    impl<'a> ImageFile<'a> {
        /// Parses a whole file.
        ///
        /// # Errors
        /// A bad header, or a file shorter than header + image + security.
        pub fn parse(bytes: &'a [u8]) -> Result<Self> {
            let header = Header::parse(bytes)?;
            let mut r = Reader::new(bytes, 0, Layer::Application);
            r.take(HEADER_LEN)?;
            let image = r.take(usize::try_from(header.image_length).unwrap_or(usize::MAX))?;
            let security = r.take(usize::from(header.security_length))?;
            Ok(Self {
                header,
                image,
                security,
            })
        }
    }
}
