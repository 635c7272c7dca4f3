//! Errors of the frame layers: every one names its layer and the byte offset where it was found.

use core::fmt;

/// The protocol layer an [`Error`] was found in.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Wireless data link layer (EN 13757-4): L, C, M, A and the block CRCs.
    Link,
    /// Wired M-Bus FT1.2 framing (EN 13757-2).
    Wired,
    /// Extended link layer (EN 13757-4 §13.2), CI 8Ch–8Fh, 86h.
    Ell,
    /// Authentication and fragmentation sublayer (EN 13757-7 §6), CI 90h.
    Afl,
    /// Transport layer (EN 13757-7 §7): CI, header, configuration field.
    Transport,
    /// Application layer (EN 13757-3): data records.
    Application,
    /// Security information transfer (EN 13757-7 Annex A).
    Sitp,
}

impl Layer {
    /// Short name as used in messages ("link layer", "ELL", …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Link => "link layer",
            Self::Wired => "wired link layer",
            Self::Ell => "ELL",
            Self::Afl => "AFL",
            Self::Transport => "transport layer",
            Self::Application => "application layer",
            Self::Sitp => "SITP",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The AFL length field disagrees with the fields its FCL announces.
    AflLengthMismatch {
        /// AFLL as transmitted.
        declared: u8,
        /// Bytes the present fields need (before the MAC).
        fields: usize,
    },
    /// The AFL MAC length disagrees with the authentication type in MCL.
    AflMacLength {
        /// Authentication type (MCL bits 3..0).
        authentication_type: u8,
        /// MAC length the authentication type requires.
        expected: usize,
        /// MAC length the AFL carries.
        actual: usize,
    },
    /// A field that must be absent here is present (e.g. MCL outside the first fragment).
    AflFieldMisplaced(&'static str),
    /// The output buffer is too small for the frame being emitted.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A chain of DIFE or VIFE bytes is longer than the standard's bound of 10.
    ChainTooLong,
    /// The wired FT1.2 checksum does not match.
    ChecksumMismatch {
        /// Checksum as transmitted.
        received: u8,
        /// Checksum computed over C..data.
        computed: u8,
    },
    /// A CRC block does not verify.
    CrcMismatch {
        /// Block number, counting from 1.
        block: usize,
        /// CRC as transmitted.
        received: u16,
        /// CRC computed over the block.
        computed: u16,
    },
    /// The configuration field announces more encrypted bytes than the frame holds.
    EncryptedLengthExceedsFrame {
        /// Bytes the configuration field announces.
        declared: usize,
        /// Bytes left in the frame.
        available: usize,
    },
    /// A field holds a value the standard reserves or forbids.
    InvalidField(&'static str),
    /// The L-field disagrees with the number of bytes.
    LengthMismatch {
        /// Length the frame declares.
        declared: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The input length fits none of the frame formats for its L-field.
    NoFrameFormat {
        /// The L-field.
        l_field: u8,
        /// Bytes present.
        length: usize,
    },
    /// The ELL PayloadCRC does not match the payload.
    PayloadCrcMismatch {
        /// CRC as transmitted (decrypted when encrypted).
        received: u16,
        /// CRC computed over the payload.
        computed: u16,
    },
    /// Wired frame start or stop byte is wrong.
    StartStop,
    /// The frame ends before a field it needs.
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Bytes are left over where the layer must end.
    TrailingBytes(usize),
    /// A CI-field value this stack does not know.
    UnknownCi(u8),
    /// A CI-field whose layout is not public (e.g. ELL V, CI 86h).
    UnsupportedCi(u8),
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::AflLengthMismatch { declared, fields } => write!(
                f,
                "AFLL is {declared} but the fields FCL announces need at least {fields} bytes"
            ),
            Self::AflMacLength {
                authentication_type,
                expected,
                actual,
            } => write!(
                f,
                "authentication type {authentication_type} needs a {expected}-byte MAC, the AFL carries {actual}"
            ),
            Self::AflFieldMisplaced(what) => write!(f, "{what}"),
            Self::BufferTooSmall { needed, available } => {
                write!(f, "output buffer holds {available} bytes, {needed} needed")
            }
            Self::ChainTooLong => f.write_str("more than 10 extension bytes in a chain"),
            Self::ChecksumMismatch { received, computed } => write!(
                f,
                "checksum mismatch: received {received:02X}, computed {computed:02X}"
            ),
            Self::CrcMismatch {
                block,
                received,
                computed,
            } => write!(
                f,
                "CRC of block {block} does not verify: received {received:04X}, computed {computed:04X}"
            ),
            Self::EncryptedLengthExceedsFrame {
                declared,
                available,
            } => write!(
                f,
                "configuration field announces {declared} encrypted bytes, only {available} remain"
            ),
            Self::InvalidField(what) => write!(f, "invalid {what}"),
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "length field says {declared} bytes, {actual} are present"
            ),
            Self::NoFrameFormat { l_field, length } => write!(
                f,
                "{length} bytes fit no frame format (with or without CRCs) for L-field {l_field:#04x}"
            ),
            Self::PayloadCrcMismatch { received, computed } => write!(
                f,
                "PayloadCRC mismatch: received {received:04X}, computed {computed:04X}"
            ),
            Self::StartStop => f.write_str("start or stop byte is wrong"),
            Self::Truncated { needed, available } => {
                write!(f, "truncated: {needed} bytes needed, {available} left")
            }
            Self::TrailingBytes(n) => write!(f, "{n} unexpected trailing bytes"),
            Self::UnknownCi(ci) => write!(f, "unknown CI-field {ci:02X}h"),
            Self::UnsupportedCi(ci) => {
                write!(f, "CI-field {ci:02X}h has no public layout; not supported")
            }
        }
    }
}

/// An error in one frame layer, with the byte offset where it was found.
///
/// Offsets count from the first byte (the L-field) of the frame *without* link-layer CRCs,
/// except for [`ErrorKind::CrcMismatch`], whose offset is the block's start in the input as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error {
    /// The layer.
    pub layer: Layer,
    /// Byte offset of the offending field.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl Error {
    /// A new error.
    pub const fn new(layer: Layer, offset: usize, kind: ErrorKind) -> Self {
        Self {
            layer,
            offset,
            kind,
        }
    }

    /// A truncation error: `needed` bytes at `offset`, `available` left.
    pub const fn truncated(layer: Layer, offset: usize, needed: usize, available: usize) -> Self {
        Self::new(layer, offset, ErrorKind::Truncated { needed, available })
    }

    /// True for a failed check sum: a block CRC, a wired checksum or an ELL PayloadCRC.
    pub const fn is_integrity(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::CrcMismatch { .. }
                | ErrorKind::ChecksumMismatch { .. }
                | ErrorKind::PayloadCrcMismatch { .. }
        )
    }

    /// True when the input may be fine but uses a layer this stack does not implement.
    pub const fn is_unsupported(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::UnknownCi(_) | ErrorKind::UnsupportedCi(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}: {}", self.layer, self.offset, self.kind)
    }
}

impl core::error::Error for Error {}

/// Result with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
