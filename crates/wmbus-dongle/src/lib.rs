//! # wmbus-dongle
//!
//! The serial protocols of Wireless M-Bus receivers, as sans-IO engines: bytes in, events
//! out, bytes to write; no port, no clock, no thread (the caller passes the time where a
//! protocol needs one). Facts from `shared/reference/dongles.md` (public drivers and captured
//! transcripts); every module cites its section.
//!
//! Two sides per device:
//! - [`Host`]: what a gateway runs. It frames the device's output, resynchronises after
//!   garbage (reporting the discarded bytes as [`Event::Discarded`], never ending the stream),
//!   normalises every received telegram to one [`Received`] type (L-field first, no CRCs,
//!   format-A length semantics), and gives the init dialogue and the send commands as
//!   [`Step`]s to write and answers to expect.
//! - [`Device`]: what the simulator runs. It answers the host's commands as the device would
//!   and prints received telegrams in the device's own framing.
//!
//! With the `tokio` feature, [`codec::HostCodec`] wraps a [`Host`] as a tokio-util codec.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

pub mod amber;
pub mod cul;
pub mod dialogue;
#[doc(hidden)]
pub mod fuzzing;
pub mod hex;
pub mod imst;
pub mod iu891a;
pub mod rc1180;
pub mod rtl;

#[cfg(feature = "tokio")]
pub mod codec;

pub use wmbus_frame::dll::FrameFormat;

/// A radio link mode (EN 13757-4 §4): what a receiver listens to or a transmitter sends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkMode {
    /// S1 (stationary, meter sends only).
    S1,
    /// S2 (stationary, bidirectional).
    S2,
    /// T1 (frequent transmit, meter sends only).
    T1,
    /// T2 (frequent transmit, bidirectional).
    T2,
    /// C1 (compact, meter sends only).
    C1,
    /// C2 (compact, bidirectional).
    C2,
    /// C1 and T1 at once, where the receiver can.
    C1T1,
}

impl LinkMode {
    /// "S1", "T1", "C1", "C1T1", …
    pub const fn name(self) -> &'static str {
        match self {
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::T1 => "T1",
            Self::T2 => "T2",
            Self::C1 => "C1",
            Self::C2 => "C2",
            Self::C1T1 => "C1T1",
        }
    }
}

impl fmt::Display for LinkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LinkMode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Ok(
            match s.to_ascii_uppercase().replace(['+', '-', '_'], "").as_str() {
                "S1" | "S" => Self::S1,
                "S2" => Self::S2,
                "T1" | "T" => Self::T1,
                "T2" => Self::T2,
                "C1" | "C" => Self::C1,
                "C2" => Self::C2,
                "C1T1" | "T1C1" | "CT" => Self::C1T1,
                _ => return Err(UnknownName),
            },
        )
    }
}

/// A name that is not one of the known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownName;

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown name")
    }
}

/// A telegram as a receiver handed it over, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The telegram from the L-field on, without link-layer CRCs; L counts the bytes after
    /// it (format-A semantics), whatever the frame format on air was.
    pub telegram: Vec<u8>,
    /// Link mode, when the receiver says.
    pub link_mode: Option<LinkMode>,
    /// Frame format on air, when the receiver says.
    pub frame_format: Option<FrameFormat>,
    /// Signal strength in dBm, converted with the device's own curve (module docs).
    pub rssi_dbm: Option<f32>,
    /// The receiver's own timestamp (ticks or text, as it gives it).
    pub device_time: Option<String>,
    /// The bytes of the device's message, for snapshots and troubleshooting.
    pub raw: Vec<u8>,
}

/// What a host engine yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A received telegram.
    Telegram(Received),
    /// An answer to a command.
    Reply(Reply),
    /// Bytes that fit no frame, dropped while resynchronising (never silently).
    Discarded {
        /// The bytes.
        bytes: Vec<u8>,
        /// Why.
        reason: &'static str,
    },
}

/// An answer from the device: the protocol's message code and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Message code (per protocol: endpoint and message id, command, or a text line's kind).
    pub code: u16,
    /// Payload, or the text line's bytes.
    pub payload: Vec<u8>,
}

/// One step of a dialogue: bytes to write, and the answer to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the step does, for logs.
    pub name: &'static str,
    /// Bytes to write.
    pub write: Vec<u8>,
    /// The reply that completes the step; `None`: no answer comes.
    pub expect: Option<u16>,
}

/// The device cannot do what was asked (send in this link mode, send at all, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A host-side engine: frames the device's output and says what to write.
pub trait Host: fmt::Debug + Send {
    /// Bytes read from the device.
    fn push(&mut self, bytes: &[u8]);
    /// The next event from what was pushed, if any. `now_ms` (any monotonic origin) drives
    /// the inter-chunk timeout of protocols without framing.
    fn poll(&mut self, now_ms: u64) -> Option<Event>;
    /// The init dialogue: identify the device, then listen in `mode`.
    ///
    /// # Errors
    /// [`Unsupported`] when the device cannot listen in `mode`.
    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported>;
    /// The steps that transmit `telegram` (L-field first, no CRCs) in `mode`, and return to
    /// listening in `listen`.
    ///
    /// # Errors
    /// [`Unsupported`] when the device cannot send, or not in `mode`.
    fn transmit(
        &self,
        telegram: &[u8],
        mode: LinkMode,
        listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported>;
}

/// A telegram for a simulated device to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Indication<'a> {
    /// L-field first, no CRCs.
    pub telegram: &'a [u8],
    /// RSSI in dBm.
    pub rssi_dbm: f32,
    /// Milliseconds since the device started.
    pub time_ms: u64,
    /// Link mode it came in.
    pub link_mode: LinkMode,
}

/// A device-side engine (for the simulator): answers the host, prints telegrams.
pub trait Device: fmt::Debug + Send {
    /// Bytes written by the host.
    fn push(&mut self, bytes: &[u8]);
    /// Bytes to write back for the next complete host command, if any.
    fn poll(&mut self) -> Option<Vec<u8>>;
    /// The mode the host configured, if it did.
    fn link_mode(&self) -> Option<LinkMode>;
    /// A received telegram as this device prints it; `None` when the device would not hear
    /// it (not listening in its mode) or cannot carry it (too long).
    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>>;
    /// Telegrams the host asked the device to transmit, L-field first, without CRCs.
    fn take_transmitted(&mut self) -> Vec<Vec<u8>>;
}

/// The supported receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// IMST iM871A / iM170A (HCI v1).
    Im871a,
    /// IMST iU891A / iM891A / iM881A (HCI v2, SLIP).
    Iu891a,
    /// Amber / Würth AMB8465, AMB8665, AMB3665 in command mode.
    Amber,
    /// Amber in transparent mode (no frame wrapper).
    AmberTransparent,
    /// CUL, nanoCUL (culfw).
    Cul,
    /// Radiocrafts RC1180-MBUS.
    Rc1180,
    /// rtl_wmbus text lines.
    RtlWmbus,
    /// rtl_433 JSON lines.
    Rtl433,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Self; 8] = [
        Self::Im871a,
        Self::Iu891a,
        Self::Amber,
        Self::AmberTransparent,
        Self::Cul,
        Self::Rc1180,
        Self::RtlWmbus,
        Self::Rtl433,
    ];

    /// The name on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Im871a => "im871a",
            Self::Iu891a => "iu891a",
            Self::Amber => "amb8465",
            Self::AmberTransparent => "amb8465-transparent",
            Self::Cul => "cul",
            Self::Rc1180 => "rc1180",
            Self::RtlWmbus => "rtlwmbus",
            Self::Rtl433 => "rtl433",
        }
    }

    /// The serial speed the device uses by default (none for the SDR text streams).
    pub const fn baud_rate(self) -> Option<u32> {
        match self {
            Self::Im871a => Some(57_600),
            Self::Iu891a => Some(115_200),
            Self::Amber | Self::AmberTransparent => Some(9_600),
            Self::Cul => Some(38_400),
            Self::Rc1180 => Some(19_200),
            Self::RtlWmbus | Self::Rtl433 => None,
        }
    }

    /// A host engine for this kind.
    pub fn host(self) -> Box<dyn Host> {
        match self {
            Self::Im871a => Box::new(imst::ImstHost::default()),
            Self::Iu891a => Box::new(iu891a::Iu891aHost::default()),
            Self::Amber => Box::new(amber::AmberHost::default()),
            Self::AmberTransparent => Box::new(amber::TransparentHost::default()),
            Self::Cul => Box::new(cul::CulHost::default()),
            Self::Rc1180 => Box::new(rc1180::Rc1180Host::default()),
            Self::RtlWmbus => Box::new(rtl::SdrHost::rtl_wmbus()),
            Self::Rtl433 => Box::new(rtl::SdrHost::rtl_433()),
        }
    }

    /// A device engine for this kind (the simulator's side).
    pub fn device(self) -> Box<dyn Device> {
        match self {
            Self::Im871a => Box::new(imst::ImstDevice::default()),
            Self::Iu891a => Box::new(iu891a::Iu891aDevice::default()),
            Self::Amber => Box::new(amber::AmberDevice::default()),
            Self::AmberTransparent => Box::new(amber::AmberDevice::transparent()),
            Self::Cul => Box::new(cul::CulDevice::default()),
            Self::Rc1180 => Box::new(rc1180::Rc1180Device::default()),
            Self::RtlWmbus => Box::new(rtl::SdrDevice::rtl_wmbus()),
            Self::Rtl433 => Box::new(rtl::SdrDevice::rtl_433()),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "im871a" | "im170a" | "imst" => Self::Im871a,
            "iu891a" | "im891a" | "im881a" => Self::Iu891a,
            "amb8465" | "amb8665" | "amb3665" | "amber" => Self::Amber,
            "amb8465-transparent" | "amber-transparent" => Self::AmberTransparent,
            "cul" | "nanocul" => Self::Cul,
            "rc1180" | "radiocrafts" => Self::Rc1180,
            "rtlwmbus" | "rtl_wmbus" => Self::RtlWmbus,
            "rtl433" | "rtl_433" => Self::Rtl433,
            _ => return Err(UnknownName),
        })
    }
}

/// A byte buffer for framers: bytes in at the back, frames out at the front.
#[derive(Debug, Clone, Default)]
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    /// When bytes last arrived, as of the first poll after they did.
    last_ms: Option<u64>,
    /// How many bytes the buffer held at that time.
    held: usize,
    fresh: bool,
}

impl Buffer {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.fresh = true;
    }

    /// For protocols without framing: the bytes of a partial frame that waited `timeout_ms`
    /// or more before anything else came (they are removed from the front). The arrival time
    /// of bytes is taken at the first poll after their push.
    pub(crate) fn expire(&mut self, now_ms: u64, timeout_ms: u64) -> Option<Vec<u8>> {
        let old = self
            .last_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= timeout_ms);
        let expired = if old && self.held > 0 {
            let n = self.held.min(self.bytes.len());
            Some(self.bytes.drain(..n).collect())
        } else {
            None
        };
        if self.fresh || expired.is_some() {
            self.fresh = false;
            self.last_ms = Some(now_ms);
        }
        self.held = self.bytes.len();
        expired.filter(|b: &Vec<u8>| !b.is_empty())
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Removes and returns the first `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.bytes.len());
        self.held = self.held.saturating_sub(n);
        self.bytes.drain(..n).collect()
    }
}

/// CRC-16/X-25 (IBM-SDLC: reflected 1021h, init and final XOR FFFFh), the IMST frame check
/// (dongles.md §1, §2).
pub fn crc_x25(data: &[u8]) -> u16 {
    const X25: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
    X25.checksum(data)
}

/// The telegram with an L-field put back in front (devices that strip it): L = byte count.
pub(crate) fn with_l_field(body: &[u8]) -> Option<Vec<u8>> {
    let l = u8::try_from(body.len()).ok()?;
    let mut t = Vec::with_capacity(body.len() + 1);
    t.push(l);
    t.extend_from_slice(body);
    Some(t)
}

/// Whether a C-field is one a telegram can start with (EN 13757-4 Table 9; used to find
/// frames in unframed streams).
pub(crate) const fn plausible_c_field(c: u8) -> bool {
    matches!(
        c,
        0x06 | 0x08
            | 0x18
            | 0x28
            | 0x38
            | 0x44
            | 0x46
            | 0x47
            | 0x48
            | 0x40
            | 0x43
            | 0x53
            | 0x73
            | 0x5A
            | 0x7A
            | 0x5B
            | 0x7B
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catalogue check value of CRC-16/IBM-SDLC.
    #[test]
    fn x25_check_value() {
        assert_eq!(crc_x25(b"123456789"), 0x906E);
    }

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.name().parse::<Kind>(), Ok(k));
        }
        for m in [
            LinkMode::S1,
            LinkMode::S2,
            LinkMode::T1,
            LinkMode::T2,
            LinkMode::C1,
            LinkMode::C2,
            LinkMode::C1T1,
        ] {
            assert_eq!(m.name().parse::<LinkMode>(), Ok(m));
        }
        assert_eq!("c1+t1".parse::<LinkMode>(), Ok(LinkMode::C1T1));
    }
}
