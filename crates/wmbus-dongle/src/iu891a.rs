//! IMST iU891A-XL / iM891A-XL / iM881A-XL, WMBus gateway HCI v2 (dongles.md §2), 115200 8N1.
//!
//! SLIP (`C0 … C0`, `C0 → DB DC`, `DB → DB DD`) around `SAP | MsgID | Payload | CRC16 LE`, the
//! CRC being X-25 over SAP..payload. Responses carry a status byte first. A received telegram
//! is `RX_MESSAGE_IND` (SAP 09h, 20h): `timestamp u32 LE | decryption status | security mode |
//! link/frame indicator | RSSI i8 dBm | telegram from the L-field, CRCs removed`.
//!
//! Provisional (not in the public sources): the link/frame indicator's values (we read the
//! low nibble as the active-config link-mode code) and `SEND_PACKET`'s payload (we send the
//! telegram from its L-field).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::{
    Buffer, Device, Event, Host, Indication, LinkMode, Received, Reply, Step, Unsupported, crc_x25,
};

/// SLIP frame end.
pub const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// Device management SAP.
pub const DEVMGMT: u8 = 0x01;
/// wM-Bus gateway SAP.
pub const WMBUSGW: u8 = 0x09;
/// DEVMGMT ping.
pub const PING_REQ: u8 = 0x01;
/// Ping response.
pub const PING_RSP: u8 = 0x02;
/// DEVMGMT device info.
pub const DEVICE_INFO_REQ: u8 = 0x03;
/// Device info response.
pub const DEVICE_INFO_RSP: u8 = 0x04;
/// WMBUSGW set active configuration.
pub const SET_ACTIVE_CONFIG_REQ: u8 = 0x03;
/// Its response.
pub const SET_ACTIVE_CONFIG_RSP: u8 = 0x04;
/// A received telegram.
pub const RX_MESSAGE_IND: u8 = 0x20;
/// Send a packet (iU891A).
pub const SEND_PACKET_REQ: u8 = 0x39;
/// Its response.
pub const SEND_PACKET_RSP: u8 = 0x3A;

/// The reply code: SAP and message id.
pub const fn code(sap: u8, message: u8) -> u16 {
    (sap as u16) << 8 | message as u16
}

/// Active-configuration link-mode code.
pub const fn link_mode_code(mode: LinkMode) -> u8 {
    match mode {
        LinkMode::S1 | LinkMode::S2 => 1,
        LinkMode::T1 | LinkMode::T2 => 2,
        LinkMode::C1T1 => 3,
        LinkMode::C1 | LinkMode::C2 => 5,
    }
}

/// The mode of a link-mode code.
pub const fn link_mode_of(code: u8) -> Option<LinkMode> {
    Some(match code {
        1 => LinkMode::S1,
        2 | 6 => LinkMode::T1,
        3 => LinkMode::C1T1,
        5 => LinkMode::C1,
        _ => return None,
    })
}

/// SLIP-encodes `SAP | MsgID | payload | CRC`.
pub fn emit(sap: u8, message: u8, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![sap, message];
    body.extend_from_slice(payload);
    let crc = crc_x25(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(END);
    for b in body {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            other => out.push(other),
        }
    }
    out.push(END);
    out
}

/// The active configuration payload (11 bytes): link mode, RX indication on, no UI options,
/// no LED, no recalibration.
pub fn active_config(mode: LinkMode) -> Vec<u8> {
    let mut p = vec![link_mode_code(mode)];
    p.extend_from_slice(&0x0002u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SAP.
    pub sap: u8,
    /// Message id.
    pub message: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// SLIP frames from a stream: bytes before the first END are dropped; an END closes a frame
/// and opens the next.
#[derive(Debug, Clone, Default)]
struct Framer {
    buf: Buffer,
    synchronised: bool,
}

impl Framer {
    fn next(&mut self) -> Option<Result<(Message, Vec<u8>), Event>> {
        loop {
            let data = self.buf.as_slice();
            if !self.synchronised {
                let at = data.iter().position(|&b| b == END)?;
                self.synchronised = true;
                if at > 0 {
                    return Some(Err(Event::Discarded {
                        bytes: self.buf.take(at),
                        reason: "bytes before a SLIP frame start",
                    }));
                }
            }
            let data = self.buf.as_slice();
            // data[0] is END (the opener); find the closer.
            let close = data.iter().skip(1).position(|&b| b == END)? + 1;
            if close == 1 {
                // Two ENDs in a row: an empty frame; the second opens the next.
                self.buf.take(1);
                continue;
            }
            let raw: Vec<u8> = data.get(..=close).unwrap_or(&[]).to_vec();
            // Keep the closing END as the next opener; a bad frame's bytes are those between
            // the ENDs.
            self.buf.take(close);
            let inner = raw.get(1..close).unwrap_or(&[]).to_vec();
            let mut body = Vec::with_capacity(raw.len());
            let mut escaped = false;
            let mut bad_escape = false;
            for &b in raw.get(1..raw.len().saturating_sub(1)).unwrap_or(&[]) {
                if escaped {
                    match b {
                        ESC_END => body.push(END),
                        ESC_ESC => body.push(ESC),
                        _ => bad_escape = true,
                    }
                    escaped = false;
                } else if b == ESC {
                    escaped = true;
                } else {
                    body.push(b);
                }
            }
            if bad_escape || escaped {
                return Some(Err(Event::Discarded {
                    bytes: inner,
                    reason: "invalid SLIP escape",
                }));
            }
            let n = body.len();
            if n < 4 {
                return Some(Err(Event::Discarded {
                    bytes: inner,
                    reason: "SLIP frame too short",
                }));
            }
            let (content, crc) = body.split_at(n - 2);
            let received = u16::from_le_bytes([
                crc.first().copied().unwrap_or(0),
                crc.get(1).copied().unwrap_or(0),
            ]);
            if crc_x25(content) != received {
                return Some(Err(Event::Discarded {
                    bytes: inner,
                    reason: "CRC does not verify",
                }));
            }
            let [sap, message, payload @ ..] = content else {
                continue;
            };
            return Some(Ok((
                Message {
                    sap: *sap,
                    message: *message,
                    payload: payload.to_vec(),
                },
                raw,
            )));
        }
    }
}

/// The host side.
#[derive(Debug, Clone, Default)]
pub struct Iu891aHost {
    framer: Framer,
}

impl Host for Iu891aHost {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.buf.push(bytes);
    }

    fn poll(&mut self, _now_ms: u64) -> Option<Event> {
        let (m, raw) = match self.framer.next()? {
            Ok(x) => x,
            Err(e) => return Some(e),
        };
        if m.sap == WMBUSGW && m.message == RX_MESSAGE_IND {
            let [
                t0,
                t1,
                t2,
                t3,
                _decryption,
                _security,
                indicator,
                rssi,
                telegram @ ..,
            ] = m.payload.as_slice()
            else {
                return Some(Event::Discarded {
                    bytes: raw,
                    reason: "RX_MESSAGE_IND too short",
                });
            };
            return Some(Event::Telegram(Received {
                telegram: telegram.to_vec(),
                link_mode: link_mode_of(indicator & 0x0F),
                frame_format: None,
                rssi_dbm: Some(f32::from(*rssi as i8)),
                device_time: Some(format!("{}", u32::from_le_bytes([*t0, *t1, *t2, *t3]))),
                raw,
            }));
        }
        Some(Event::Reply(Reply {
            code: code(m.sap, m.message),
            payload: m.payload,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Ok(vec![
            Step {
                name: "ping",
                write: emit(DEVMGMT, PING_REQ, &[]),
                expect: Some(code(DEVMGMT, PING_RSP)),
            },
            Step {
                name: "device info",
                write: emit(DEVMGMT, DEVICE_INFO_REQ, &[]),
                expect: Some(code(DEVMGMT, DEVICE_INFO_RSP)),
            },
            Step {
                name: "set link mode",
                write: emit(WMBUSGW, SET_ACTIVE_CONFIG_REQ, &active_config(mode)),
                expect: Some(code(WMBUSGW, SET_ACTIVE_CONFIG_RSP)),
            },
        ])
    }

    fn transmit(
        &self,
        telegram: &[u8],
        _mode: LinkMode,
        _listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        Ok(vec![Step {
            name: "send packet",
            write: emit(WMBUSGW, SEND_PACKET_REQ, telegram),
            expect: Some(code(WMBUSGW, SEND_PACKET_RSP)),
        }])
    }
}

/// The device side (simulator).
#[derive(Debug, Clone, Default)]
pub struct Iu891aDevice {
    framer: Framer,
    mode: Option<LinkMode>,
    transmitted: Vec<Vec<u8>>,
}

impl Device for Iu891aDevice {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.buf.push(bytes);
    }

    fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            let Ok((m, _)) = self.framer.next()? else {
                continue;
            };
            let reply = |payload: &[u8]| {
                let mut p = vec![0x00];
                p.extend_from_slice(payload);
                emit(m.sap, m.message.wrapping_add(1), &p)
            };
            return Some(match (m.sap, m.message) {
                (DEVMGMT, PING_REQ) => reply(&[]),
                // Module type, firmware 1.2.3, serial.
                (DEVMGMT, DEVICE_INFO_REQ) => {
                    reply(&[0xA8, 0x01, 0x02, 0x03, 0x78, 0x56, 0x34, 0x12])
                }
                (WMBUSGW, SET_ACTIVE_CONFIG_REQ) => {
                    self.mode = m.payload.first().copied().and_then(link_mode_of);
                    reply(&[])
                }
                (WMBUSGW, SEND_PACKET_REQ) => {
                    self.transmitted.push(m.payload.clone());
                    reply(&[])
                }
                (sap, msg) => emit(sap, msg.wrapping_add(1), &[0x01]),
            });
        }
    }

    fn link_mode(&self) -> Option<LinkMode> {
        self.mode
    }

    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        let mut p = Vec::with_capacity(t.telegram.len() + 8);
        p.extend_from_slice(&(t.time_ms as u32).to_le_bytes());
        p.extend_from_slice(&[0x00, 0x00, link_mode_code(t.link_mode)]);
        p.push(t.rssi_dbm.clamp(-128.0, 0.0) as i8 as u8);
        p.extend_from_slice(t.telegram);
        Some(emit(WMBUSGW, RX_MESSAGE_IND, &p))
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

    /// dongles.md: the example delivery `C0 09 20 9F436D38 00 00 02 E7 1844AE4C…3B0000 AF59 C0`.
    #[test]
    fn example_delivery() {
        let bytes =
            unhex("C009209F436D38000002E71844AE4C4455223368077A55000000041389E20100023B0000AF59C0");
        let mut h = Iu891aHost::default();
        h.push(&bytes);
        let Some(Event::Telegram(r)) = h.poll(0) else {
            panic!("no telegram")
        };
        assert_eq!(
            r.telegram,
            unhex("1844AE4C4455223368077A55000000041389E20100023B0000")
        );
        assert_eq!(r.rssi_dbm, Some(-25.0));
        assert_eq!(r.link_mode, Some(LinkMode::T1));
        assert_eq!(h.poll(0), None);
    }

    #[test]
    fn escapes_round_trip() {
        let payload = [0xC0, 0xDB, 0x00, 0xDC, 0xDD, 0xC0];
        let bytes = emit(DEVMGMT, PING_RSP, &payload);
        let mut h = Iu891aHost::default();
        h.push(&bytes);
        assert_eq!(
            h.poll(0),
            Some(Event::Reply(Reply {
                code: code(DEVMGMT, PING_RSP),
                payload: payload.to_vec()
            }))
        );
    }
}
