//! # wmbus-security
//!
//! Wireless M-Bus security as EN 13757-7 and OMS Vol2 define it, corrected by the public
//! OMS Annex N examples:
//!
//! | mode | algorithm | status |
//! |------|-----------|--------|
//! | 5 | AES-128-CBC, IV from address and access number | verified (Annex N) |
//! | 7 | AES-128-CBC, IV 0, KDF-A keys, AFL AES-CMAC | verified (Annex N) |
//! | 9 | AES-128-GCM, ESMR 5 profile | provisional ([`mode9`]) |
//! | 10 | AES-128-CCM, KDF-A key | verified (Annex N) |
//! | ELL | AES-128-CTR with PayloadCRC | verified |
//! | 2 | DES-CBC (feature `des`, opt-in) | open only |
//! | 8, 13 | – | reported unsupported |
//!
//! The crate is sans-IO: [`receiver::Receiver`] gets time as [`time::Instant`] arguments,
//! never reads a clock, and keeps replay counters and fragments in memory for the caller to
//! persist. Keys are [`key::Key`]: zeroized on drop, redacted in `Debug`.
//!
//! ```
//! use wmbus_frame::frame::{normalize, Frame};
//! use wmbus_security::key::{Key, MemoryKeyStore};
//! use wmbus_security::receiver::{Receiver, ReceiverOptions, SecurityResult};
//! use wmbus_security::time::Instant;
//! use wmbus_frame::codepoints::Ident;
//!
//! // OMS Annex N N.2.1, mode 5, without CRCs.
//! let telegram = [
//!     0x2E, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, 0x7A, 0x2A, 0x00, 0x20, 0x25,
//!     0x59, 0x23, 0xC9, 0x5A, 0xAA, 0x26, 0xD1, 0xB2, 0xE7, 0x49, 0x3B, 0x01, 0x3E, 0xC4, 0xA6,
//!     0xF6, 0xD3, 0x52, 0x9B, 0x52, 0x0E, 0xDF, 0xF0, 0xEA, 0x6D, 0xEF, 0xC9, 0x9D, 0x6D, 0x69,
//!     0xEB, 0xF3,
//! ];
//! let mut keys = MemoryKeyStore::new();
//! keys.insert(None, Ident(0x12345678), None, Key::from_hex("0102030405060708090A0B0C0D0E0F11").unwrap());
//! let mut receiver = Receiver::new(keys, ReceiverOptions::default());
//! let mut buf = [0u8; 290];
//! let n = normalize(&telegram, None, &mut buf).unwrap();
//! let frame = Frame::parse(&buf[..n.len], n.format).unwrap();
//! let mut plain = Vec::new();
//! let opened = receiver.open(Instant::default(), &frame, &mut plain);
//! assert_eq!(opened.result, SecurityResult::Decrypted);
//! assert_eq!(&plain[opened.application.clone()][..4], &[0x2F, 0x2F, 0x0C, 0x14]);
//! ```
//!
//! ## Panics
//! None on any input.
//!
//! ## Features
//! - `std` (default): passes through to `wmbus-frame`.
//! - `des`: the deprecated DES modes 2 (open only); also needs
//!   [`receiver::ReceiverOptions::allow_des`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

#[cfg(feature = "std")]
#[doc(hidden)]
pub mod exchange;
pub mod fuzzing;
pub mod image;
pub mod kdf;
pub mod key;
pub mod mode9;
pub mod national;
pub mod primitives;
pub mod reassembly;
pub mod receiver;
pub mod replay;
pub mod seal;
pub mod sitp;
pub mod time;
