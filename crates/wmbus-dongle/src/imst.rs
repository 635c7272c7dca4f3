//! IMST iM871A / iM170A, WMBus HCI v1 (dongles.md §1), 57600 8N1.
//!
//! Frame: `A5 | CTRL<<4 | EP | MsgID | Len | Payload | [Timestamp u32 LE] | [RSSI] | [FCS u16 LE]`;
//! CTRL bits 8h FCS, 4h RSSI, 2h timestamp, 1h reserved. FCS is CRC-16/X-25 over CTRL..RSSI.
//! A received telegram is RADIOLINK `WMBUSMSG_IND` (EP 2, message 03h) from the C-field on:
//! no L-field, no CRCs. RSSI: dBm = raw · 8/15 − 126.7 (ioBroker's linear curve; wmbusmeters
//! uses a piecewise one that differs by at most 3 dB: provisional, docs/gateway.md).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::{
    Buffer, Device, Event, Host, Indication, LinkMode, Received, Reply, Step, Unsupported, crc_x25,
    with_l_field,
};

/// Start byte.
pub const START: u8 = 0xA5;
/// Endpoint: device management.
pub const DEVMGMT: u8 = 0x01;
/// Endpoint: radio link.
pub const RADIOLINK: u8 = 0x02;
/// DEVMGMT messages.
pub const PING_REQ: u8 = 0x01;
/// Ping response.
pub const PING_RSP: u8 = 0x02;
/// Set configuration.
pub const SET_CONFIG_REQ: u8 = 0x03;
/// Its response.
pub const SET_CONFIG_RSP: u8 = 0x04;
/// Device information.
pub const GET_DEVICE_INFO_REQ: u8 = 0x0F;
/// Its response.
pub const GET_DEVICE_INFO_RSP: u8 = 0x10;
/// RADIOLINK: send a telegram from its C-field.
pub const WMBUSMSG_REQ: u8 = 0x01;
/// Its response.
pub const WMBUSMSG_RSP: u8 = 0x02;
/// RADIOLINK: a received telegram.
pub const WMBUSMSG_IND: u8 = 0x03;

const CTRL_FCS: u8 = 0x8;
const CTRL_RSSI: u8 = 0x4;
const CTRL_TIMESTAMP: u8 = 0x2;
const CTRL_RESERVED: u8 = 0x1;

/// The reply code of a message: endpoint and message id.
pub const fn code(endpoint: u8, message: u8) -> u16 {
    (endpoint as u16) << 8 | message as u16
}

/// The HCI link-mode code for a mode the stick listens or sends in.
pub const fn link_mode_code(mode: LinkMode) -> u8 {
    match mode {
        LinkMode::S1 => 0x00,
        LinkMode::S2 => 0x02,
        LinkMode::T1 => 0x03,
        LinkMode::T2 => 0x04,
        LinkMode::C1 => 0x06,
        LinkMode::C2 => 0x08,
        LinkMode::C1T1 => 0x0A,
    }
}

/// The mode of an HCI link-mode code.
pub const fn link_mode_of(code: u8) -> Option<LinkMode> {
    Some(match code {
        0x00 | 0x01 => LinkMode::S1,
        0x02 => LinkMode::S2,
        0x03 => LinkMode::T1,
        0x04 => LinkMode::T2,
        0x06 | 0x07 => LinkMode::C1,
        0x08 | 0x09 => LinkMode::C2,
        0x0A => LinkMode::C1T1,
        _ => return None,
    })
}

/// RSSI byte to dBm.
pub fn rssi_dbm(raw: u8) -> f32 {
    f32::from(raw) * 8.0 / 15.0 - 126.7
}

/// dBm to the RSSI byte (the inverse of [`rssi_dbm`], clamped).
pub fn rssi_raw(dbm: f32) -> u8 {
    let raw = (dbm + 126.7) * 15.0 / 8.0 + 0.5;
    if raw <= 0.0 {
        0
    } else if raw >= 255.0 {
        255
    } else {
        raw as u8
    }
}

/// One HCI frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Endpoint.
    pub endpoint: u8,
    /// Message id.
    pub message: u8,
    /// Payload.
    pub payload: Vec<u8>,
    /// Timestamp attachment.
    pub timestamp: Option<u32>,
    /// RSSI attachment.
    pub rssi: Option<u8>,
}

impl Frame {
    /// A frame without attachments.
    pub fn new(endpoint: u8, message: u8, payload: &[u8]) -> Self {
        Self {
            endpoint,
            message,
            payload: payload.to_vec(),
            timestamp: None,
            rssi: None,
        }
    }

    /// The frame's bytes, with an FCS.
    pub fn emit(&self) -> Vec<u8> {
        let mut ctrl = CTRL_FCS;
        if self.timestamp.is_some() {
            ctrl |= CTRL_TIMESTAMP;
        }
        if self.rssi.is_some() {
            ctrl |= CTRL_RSSI;
        }
        let len = u8::try_from(self.payload.len()).unwrap_or(u8::MAX);
        let mut out = vec![START, ctrl << 4 | (self.endpoint & 0x0F), self.message, len];
        out.extend_from_slice(self.payload.get(..usize::from(len)).unwrap_or(&[]));
        if let Some(t) = self.timestamp {
            out.extend_from_slice(&t.to_le_bytes());
        }
        if let Some(r) = self.rssi {
            out.push(r);
        }
        let fcs = crc_x25(out.get(1..).unwrap_or(&[]));
        out.extend_from_slice(&fcs.to_le_bytes());
        out
    }
}

/// What the front of a buffer holds.
enum Parsed {
    /// Not enough bytes yet.
    Incomplete,
    /// A frame of this many bytes.
    Frame(Frame, usize),
    /// Bytes to drop, and why.
    Garbage(usize, &'static str),
}

fn parse(buf: &[u8]) -> Parsed {
    let Some(&first) = buf.first() else {
        return Parsed::Incomplete;
    };
    if first != START {
        let skip = buf.iter().position(|&b| b == START).unwrap_or(buf.len());
        return Parsed::Garbage(skip, "bytes before the A5h start byte");
    }
    let [_, ctrl_ep, message, len, ..] = *buf else {
        return Parsed::Incomplete;
    };
    let ctrl = ctrl_ep >> 4;
    if ctrl & CTRL_RESERVED != 0 {
        return Parsed::Garbage(1, "reserved control bit set");
    }
    let len = usize::from(len);
    let ts = if ctrl & CTRL_TIMESTAMP != 0 { 4 } else { 0 };
    let rssi = usize::from(ctrl & CTRL_RSSI != 0);
    let fcs = if ctrl & CTRL_FCS != 0 { 2 } else { 0 };
    let total = 4 + len + ts + rssi + fcs;
    let Some(frame) = buf.get(..total) else {
        return Parsed::Incomplete;
    };
    if fcs == 2 {
        let body = frame.get(1..total - 2).unwrap_or(&[]);
        let received = frame.get(total - 2..).map_or(0, |f| {
            u16::from_le_bytes([
                f.first().copied().unwrap_or(0),
                f.get(1).copied().unwrap_or(0),
            ])
        });
        if crc_x25(body) != received {
            return Parsed::Garbage(1, "FCS does not verify");
        }
    }
    let payload = frame.get(4..4 + len).unwrap_or(&[]).to_vec();
    let timestamp = (ts == 4)
        .then(|| frame.get(4 + len..8 + len))
        .flatten()
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    let rssi = (rssi == 1)
        .then(|| frame.get(4 + len + ts).copied())
        .flatten();
    Parsed::Frame(
        Frame {
            endpoint: ctrl_ep & 0x0F,
            message,
            payload,
            timestamp,
            rssi,
        },
        total,
    )
}

/// Frames from a byte stream, resynchronising on A5h.
#[derive(Debug, Clone, Default)]
struct Framer {
    buf: Buffer,
}

impl Framer {
    fn next(&mut self) -> Option<Result<(Frame, Vec<u8>), Event>> {
        match parse(self.buf.as_slice()) {
            Parsed::Incomplete => None,
            Parsed::Frame(f, n) => Some(Ok((f, self.buf.take(n)))),
            Parsed::Garbage(n, reason) => Some(Err(Event::Discarded {
                bytes: self.buf.take(n.max(1)),
                reason,
            })),
        }
    }
}

/// SET_CONFIG payload: temporary, device mode "other" (collector), the link mode, RSSI and
/// timestamp attachments on.
pub fn set_config(mode: LinkMode, meter: bool) -> Vec<u8> {
    vec![
        0x00,
        0x03,
        u8::from(meter),
        link_mode_code(mode),
        0x30,
        0x01,
        0x01,
    ]
}

/// The host side.
#[derive(Debug, Clone, Default)]
pub struct ImstHost {
    framer: Framer,
}

impl Host for ImstHost {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.buf.push(bytes);
    }

    fn poll(&mut self, _now_ms: u64) -> Option<Event> {
        let (frame, raw) = match self.framer.next()? {
            Ok(x) => x,
            Err(e) => return Some(e),
        };
        if frame.endpoint == RADIOLINK && frame.message == WMBUSMSG_IND {
            let Some(telegram) = with_l_field(&frame.payload) else {
                return Some(Event::Discarded {
                    bytes: raw,
                    reason: "telegram longer than 255 bytes",
                });
            };
            return Some(Event::Telegram(Received {
                telegram,
                link_mode: None,
                frame_format: None,
                rssi_dbm: frame.rssi.map(rssi_dbm),
                device_time: frame.timestamp.map(|t| format!("{t}")),
                raw,
            }));
        }
        Some(Event::Reply(Reply {
            code: code(frame.endpoint, frame.message),
            payload: frame.payload,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Ok(vec![
            Step {
                name: "ping",
                write: Frame::new(DEVMGMT, PING_REQ, &[]).emit(),
                expect: Some(code(DEVMGMT, PING_RSP)),
            },
            Step {
                name: "device info",
                write: Frame::new(DEVMGMT, GET_DEVICE_INFO_REQ, &[]).emit(),
                expect: Some(code(DEVMGMT, GET_DEVICE_INFO_RSP)),
            },
            Step {
                name: "set link mode",
                write: Frame::new(DEVMGMT, SET_CONFIG_REQ, &set_config(mode, false)).emit(),
                expect: Some(code(DEVMGMT, SET_CONFIG_RSP)),
            },
        ])
    }

    fn transmit(
        &self,
        telegram: &[u8],
        mode: LinkMode,
        listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        if mode == LinkMode::C1T1 {
            return Err(Unsupported("the iM871A sends in one link mode at a time"));
        }
        // From the C-field on; the stick adds L and the CRCs.
        let body = telegram.get(1..).unwrap_or(&[]);
        if body.len() > 250 {
            return Err(Unsupported("the iM871A sends at most 250 bytes"));
        }
        Ok(vec![
            Step {
                name: "set transmit mode",
                write: Frame::new(DEVMGMT, SET_CONFIG_REQ, &set_config(mode, false)).emit(),
                expect: Some(code(DEVMGMT, SET_CONFIG_RSP)),
            },
            Step {
                name: "send",
                write: Frame::new(RADIOLINK, WMBUSMSG_REQ, body).emit(),
                expect: Some(code(RADIOLINK, WMBUSMSG_RSP)),
            },
            Step {
                name: "back to listening",
                write: Frame::new(DEVMGMT, SET_CONFIG_REQ, &set_config(listen, false)).emit(),
                expect: Some(code(DEVMGMT, SET_CONFIG_RSP)),
            },
        ])
    }
}

/// The device side (simulator).
#[derive(Debug, Clone, Default)]
pub struct ImstDevice {
    framer: Framer,
    mode: Option<LinkMode>,
    rssi_attached: bool,
    timestamp_attached: bool,
    transmitted: Vec<Vec<u8>>,
}

impl ImstDevice {
    fn configure(&mut self, payload: &[u8]) {
        // NVM flag, IIFlag1 and its fields, IIFlag2 and its fields (dongles.md §1).
        let mut it = payload.iter().copied().skip(1);
        let flags1 = it.next().unwrap_or(0);
        let widths1 = [1usize, 1, 1, 2, 4, 1, 1, 1];
        for (bit, width) in widths1.iter().enumerate() {
            if flags1 & (1 << bit) == 0 {
                continue;
            }
            let field: Vec<u8> = it.by_ref().take(*width).collect();
            if bit == 1 {
                self.mode = field.first().copied().and_then(link_mode_of);
            }
        }
        let flags2 = it.next().unwrap_or(0);
        let widths2 = [1usize, 1, 1, 1, 1, 1, 1, 1];
        for (bit, width) in widths2.iter().enumerate() {
            if flags2 & (1 << bit) == 0 {
                continue;
            }
            let on = it.by_ref().take(*width).last().unwrap_or(0) != 0;
            match bit {
                4 => self.rssi_attached = on,
                5 => self.timestamp_attached = on,
                _ => {}
            }
        }
    }
}

impl Device for ImstDevice {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.buf.push(bytes);
    }

    fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            let Ok((frame, _)) = self.framer.next()? else {
                continue;
            };
            let answer = match (frame.endpoint, frame.message) {
                (DEVMGMT, PING_REQ) => Frame::new(DEVMGMT, PING_RSP, &[]),
                (DEVMGMT, GET_DEVICE_INFO_REQ) => {
                    // Module type 33h (iM871A), device mode, firmware 1.7, hardware 1.0, ID.
                    Frame::new(
                        DEVMGMT,
                        GET_DEVICE_INFO_RSP,
                        &[0x33, 0x00, 0x17, 0x10, 0x78, 0x56, 0x34, 0x12],
                    )
                }
                (DEVMGMT, SET_CONFIG_REQ) => {
                    self.configure(&frame.payload);
                    Frame::new(DEVMGMT, SET_CONFIG_RSP, &[0x00])
                }
                (RADIOLINK, WMBUSMSG_REQ) => {
                    if let Some(t) = with_l_field(&frame.payload) {
                        self.transmitted.push(t);
                    }
                    Frame::new(RADIOLINK, WMBUSMSG_RSP, &[0x00])
                }
                (ep, msg) => Frame::new(ep, msg.wrapping_add(1), &[0x01]),
            };
            return Some(answer.emit());
        }
    }

    fn link_mode(&self) -> Option<LinkMode> {
        self.mode
    }

    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        let body = t.telegram.get(1..)?;
        if body.len() > 255 {
            return None;
        }
        let mut f = Frame::new(RADIOLINK, WMBUSMSG_IND, body);
        f.rssi = self.rssi_attached.then(|| rssi_raw(t.rssi_dbm));
        f.timestamp = self.timestamp_attached.then_some(t.time_ms as u32);
        Some(f.emit())
    }

    fn take_transmitted(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.transmitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        crate::hex::decode(s.as_bytes()).unwrap_or_default()
    }

    /// dongles.md §1: ioBroker's captured init and a real frame from wmbusmeters#656.
    #[test]
    fn captured_fcs() {
        assert_eq!(crc_x25(&unhex("810306000300030800")), 0xD6B8);
        let mut f = unhex("A5810306000300030800");
        f.extend_from_slice(&0xD6B8u16.to_le_bytes());
        assert!(matches!(parse(&f), Parsed::Frame(_, 12)));
        let resp = unhex("A58104009CF7");
        match parse(&resp) {
            Parsed::Frame(fr, 6) => {
                assert_eq!((fr.endpoint, fr.message), (DEVMGMT, SET_CONFIG_RSP))
            }
            _ => panic!("response does not parse"),
        }
        let real = unhex("A5C20309472D2C57277971340C4C6807");
        let mut h = ImstHost::default();
        h.push(&real);
        match h.poll(0) {
            Some(Event::Telegram(r)) => {
                assert_eq!(r.telegram, unhex("09472D2C57277971340C"));
                assert!(r.rssi_dbm.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    /// dongles.md, the example delivery of one T1 telegram.
    #[test]
    fn example_delivery() {
        let telegram = unhex("1844AE4C4455223368077A55000000041389E20100023B0000");
        let mut d = ImstDevice::default();
        d.configure(&set_config(LinkMode::T1, false));
        let bytes = d
            .indicate(&Indication {
                telegram: &telegram,
                rssi_dbm: -80.0,
                time_ms: 1000,
                link_mode: LinkMode::T1,
            })
            .unwrap_or_default();
        let mut h = ImstHost::default();
        h.push(&bytes);
        let Some(Event::Telegram(r)) = h.poll(0) else {
            panic!("no telegram")
        };
        assert_eq!(r.telegram, telegram);
        assert!((r.rssi_dbm.unwrap_or(0.0) + 80.0).abs() < 0.6);
        assert_eq!(r.device_time.as_deref(), Some("1000"));
    }
}
