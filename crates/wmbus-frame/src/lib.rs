//! # wmbus-frame
//!
//! Wireless M-Bus (EN 13757-4) and wired M-Bus (EN 13757-2) frames with the layers above them
//! (EN 13757-7 transport and security headers, EN 13757-3 data records), read zero-copy and
//! written byte-exact.
//!
//! Layers, in the order they nest on air (digest §2):
//!
//! | module | layer | CI |
//! |--------|-------|----|
//! | [`dll`], [`wired`] | link layer, frame formats A/B, FT1.2 | – |
//! | [`ell`] | extended link layer | 8Ch–8Fh |
//! | [`afl`] | authentication and fragmentation | 90h |
//! | [`tpl`] | transport layer | 5Ah, 72h, 7Ah, … |
//! | [`apl`] | data records | – |
//! | [`sitp`] | security information transfer (key distribution, secured data) | C3h–C6h |
//! | [`image`] | software update: OMS image transfer (provisional widths), ESMR 5 | C0h–C2h |
//!
//! Receiving is two steps: [`frame::normalize`] checks and strips CRCs, then
//! [`frame::Frame::parse`] reads every layer. Building is [`frame::FrameRepr::emit_on_air`].
//!
//! ```
//! use wmbus_frame::{dll::FrameFormat, frame::{normalize, Frame}};
//!
//! // OMS Annex N N.2.1, format A with CRCs.
//! let raw = [
//!     0x2E, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, 0x33, 0x63, 0x7A, 0x2A, 0x00,
//!     0x20, 0x25, 0x59, 0x23, 0xC9, 0x5A, 0xAA, 0x26, 0xD1, 0xB2, 0xE7, 0x49, 0x3B, 0xC2, 0xAD,
//!     0x01, 0x3E, 0xC4, 0xA6, 0xF6, 0xD3, 0x52, 0x9B, 0x52, 0x0E, 0xDF, 0xF0, 0xEA, 0x6D, 0xEF,
//!     0xC9, 0x55, 0xB2, 0x9D, 0x6D, 0x69, 0xEB, 0xF3, 0xEC, 0x8A,
//! ];
//! let mut buf = [0u8; 290];
//! let n = normalize(&raw, None, &mut buf).unwrap();
//! assert_eq!(n.format, FrameFormat::A);
//! let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
//! assert_eq!(frame.meter().unwrap().to_string(), "ELS 12345678");
//! assert_eq!(frame.repr.transport.tpl.unwrap().security_mode().0, 5);
//!
//! // And back, byte for byte.
//! let mut out = [0u8; 290];
//! let n = frame.repr.emit_on_air(FrameFormat::A, &mut out).unwrap();
//! assert_eq!(&out[..n], &raw[..]);
//! ```
//!
//! ## Panics
//! None: every input is bounds-checked and every error is an [`error::Error`] naming the layer
//! and the byte offset. Emitting into a buffer that is too small is an error, not a panic.
//!
//! ## Features
//! - `std` (default): nothing in the crate needs it; it is there so that dependents can ask.
//!
//! The crate is `#![no_std]` and needs no allocator for frames.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod afl;
pub mod apl;
pub mod codepoints;
pub mod crc;
pub mod dll;
pub mod ell;
pub mod error;
pub mod frame;
#[cfg(feature = "std")]
#[doc(hidden)]
pub mod fuzzing;
pub mod image;
mod reader;
pub mod sitp;
pub mod tpl;
pub mod wired;

pub use error::{Error, ErrorKind, Layer, Result};
