//! Amber / Würth AMB8465(-M), AMB8665, AMB3665 (dongles.md §3), 9600 8N1.
//!
//! Command mode: `FF | Cmd | Len | Payload | CS`, CS the XOR of every byte before it (FFh
//! included); responses are `Cmd | 80h`. A received telegram is `DATA_IND` (03h): the
//! telegram from the C-field (no L-field, no CRCs), then the RSSI byte when the RSSI_Enable
//! parameter (45h) is on — the init turns it on. RSSI dBm = (raw ≥ 128 ? raw − 256 : raw)/2 − 74.
//!
//! Transparent mode has no wrapper: `L | C … | RSSI`; frames are found by a plausible L and
//! C-field, and a partial frame is dropped after 2 s without bytes.

use alloc::vec;
use alloc::vec::Vec;

use crate::{
    Buffer, Device, Event, Host, Indication, LinkMode, Received, Reply, Step, Unsupported,
    plausible_c_field, with_l_field,
};

/// Start byte.
pub const START: u8 = 0xFF;
/// Send a telegram.
pub const DATA_REQ: u8 = 0x00;
/// A received telegram.
pub const DATA_IND: u8 = 0x03;
/// Set the link mode (volatile).
pub const SET_MODE_REQ: u8 = 0x04;
/// Reset.
pub const RESET_REQ: u8 = 0x05;
/// Write non-volatile parameters.
pub const SET_REQ: u8 = 0x09;
/// Read non-volatile parameters.
pub const GET_REQ: u8 = 0x0A;
/// Firmware version.
pub const FWV_REQ: u8 = 0x0C;
/// Parameter: RSSI appended to received telegrams.
pub const PARAM_RSSI_ENABLE: u8 = 0x45;
/// Inter-chunk timeout after which a partial frame is dropped.
pub const CHUNK_TIMEOUT_MS: u64 = 2000;

/// The code of a reply to `cmd`.
pub const fn reply_code(cmd: u8) -> u16 {
    (cmd | 0x80) as u16
}

/// Receive-mode code (as a collector: "other").
pub const fn listen_code(mode: LinkMode) -> u8 {
    match mode {
        LinkMode::S1 | LinkMode::S2 => 0x03,
        LinkMode::T1 | LinkMode::T2 => 0x08,
        LinkMode::C1 | LinkMode::C2 => 0x0E,
        LinkMode::C1T1 => 0x09,
    }
}

/// Transmit-mode code towards a meter.
pub const fn transmit_code(mode: LinkMode) -> u8 {
    match mode {
        LinkMode::S1 | LinkMode::S2 => 0x03,
        LinkMode::T1 => 0x06,
        LinkMode::T2 | LinkMode::C1T1 => 0x08,
        LinkMode::C1 | LinkMode::C2 => 0x0E,
    }
}

/// The mode a code listens in.
pub const fn mode_of(code: u8) -> Option<LinkMode> {
    Some(match code {
        0x01..=0x03 => LinkMode::S1,
        0x05..=0x08 => LinkMode::T1,
        0x09 => LinkMode::C1T1,
        0x0C..=0x0E => LinkMode::C1,
        _ => return None,
    })
}

/// RSSI byte to dBm.
pub fn rssi_dbm(raw: u8) -> f32 {
    f32::from(raw as i8) / 2.0 - 74.0
}

/// dBm to the RSSI byte.
pub fn rssi_raw(dbm: f32) -> u8 {
    (((dbm + 74.0) * 2.0).clamp(-128.0, 127.0) as i8) as u8
}

/// A command frame: `FF | cmd | len | payload | XOR`.
pub fn emit(cmd: u8, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).unwrap_or(u8::MAX);
    let mut out = vec![START, cmd, len];
    out.extend_from_slice(payload.get(..usize::from(len)).unwrap_or(&[]));
    let cs = out.iter().fold(0u8, |a, b| a ^ b);
    out.push(cs);
    out
}

/// A command frame: command, payload, the frame's bytes.
type Command = (u8, Vec<u8>, Vec<u8>);

/// Command frames from a stream, resynchronising on FFh; partial frames time out.
#[derive(Debug, Clone, Default)]
struct Framer {
    buf: Buffer,
}

impl Framer {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn next(&mut self, now_ms: Option<u64>) -> Option<Result<Command, Event>> {
        if let Some(bytes) = now_ms.and_then(|n| self.buf.expire(n, CHUNK_TIMEOUT_MS)) {
            return Some(Err(Event::Discarded {
                bytes,
                reason: "partial frame timed out",
            }));
        }
        let data = self.buf.as_slice();
        let first = *data.first()?;
        if first != START {
            let skip = data.iter().position(|&b| b == START).unwrap_or(data.len());
            return Some(Err(Event::Discarded {
                bytes: self.buf.take(skip),
                reason: "bytes before the FFh start byte",
            }));
        }
        let (&cmd, &len) = (data.get(1)?, data.get(2)?);
        let total = 3 + usize::from(len) + 1;
        let frame = data.get(..total)?;
        let cs = frame.iter().take(total - 1).fold(0u8, |a, b| a ^ b);
        if frame.last() != Some(&cs) {
            return Some(Err(Event::Discarded {
                bytes: self.buf.take(1),
                reason: "checksum does not verify",
            }));
        }
        let payload = frame.get(3..total - 1).unwrap_or(&[]).to_vec();
        let raw = self.buf.take(total);
        Some(Ok((cmd, payload, raw)))
    }
}

/// The init dialogue of both modes: firmware version, RSSI on (then a reset for the
/// parameter to take effect), the receive mode.
fn init_steps(mode: LinkMode) -> Vec<Step> {
    vec![
        Step {
            name: "firmware version",
            write: emit(FWV_REQ, &[]),
            expect: Some(reply_code(FWV_REQ)),
        },
        Step {
            name: "RSSI on",
            write: emit(SET_REQ, &[PARAM_RSSI_ENABLE, 0x01, 0x01]),
            expect: Some(reply_code(SET_REQ)),
        },
        Step {
            name: "reset",
            write: emit(RESET_REQ, &[]),
            expect: Some(reply_code(RESET_REQ)),
        },
        Step {
            name: "set link mode",
            write: emit(SET_MODE_REQ, &[listen_code(mode)]),
            expect: Some(reply_code(SET_MODE_REQ)),
        },
    ]
}

fn transmit_steps(
    telegram: &[u8],
    mode: LinkMode,
    listen: LinkMode,
) -> Result<Vec<Step>, Unsupported> {
    let body = telegram.get(1..).unwrap_or(&[]);
    if body.len() > 255 {
        return Err(Unsupported("telegram too long for DATA_REQ"));
    }
    Ok(vec![
        Step {
            name: "set transmit mode",
            write: emit(SET_MODE_REQ, &[transmit_code(mode)]),
            expect: Some(reply_code(SET_MODE_REQ)),
        },
        Step {
            name: "send",
            write: emit(DATA_REQ, body),
            expect: Some(reply_code(DATA_REQ)),
        },
        Step {
            name: "back to listening",
            write: emit(SET_MODE_REQ, &[listen_code(listen)]),
            expect: Some(reply_code(SET_MODE_REQ)),
        },
    ])
}

/// The host side in command mode.
#[derive(Debug, Clone)]
pub struct AmberHost {
    framer: Framer,
    /// Whether received telegrams end with an RSSI byte (the init turns it on).
    pub rssi: bool,
}

impl Default for AmberHost {
    fn default() -> Self {
        Self {
            framer: Framer::default(),
            rssi: true,
        }
    }
}

impl Host for AmberHost {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    fn poll(&mut self, now_ms: u64) -> Option<Event> {
        let (cmd, payload, raw) = match self.framer.next(Some(now_ms))? {
            Ok(x) => x,
            Err(e) => return Some(e),
        };
        if cmd == DATA_IND {
            let (body, rssi) = match (self.rssi, payload.split_last()) {
                (true, Some((r, body))) => (body, Some(rssi_dbm(*r))),
                _ => (payload.as_slice(), None),
            };
            let Some(telegram) = with_l_field(body) else {
                return Some(Event::Discarded {
                    bytes: raw,
                    reason: "telegram too long",
                });
            };
            return Some(Event::Telegram(Received {
                telegram,
                link_mode: None,
                frame_format: None,
                rssi_dbm: rssi,
                device_time: None,
                raw,
            }));
        }
        Some(Event::Reply(Reply {
            code: u16::from(cmd),
            payload,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Ok(init_steps(mode))
    }

    fn transmit(
        &self,
        telegram: &[u8],
        mode: LinkMode,
        listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        transmit_steps(telegram, mode, listen)
    }
}

/// The host side in transparent mode: command replies still come framed; telegrams come
/// bare (`L | C … | RSSI`).
#[derive(Debug, Clone, Default)]
pub struct TransparentHost {
    framer: Framer,
}

impl Host for TransparentHost {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    fn poll(&mut self, now_ms: u64) -> Option<Event> {
        let data = self.framer.buf.as_slice();
        let first = *data.first()?;
        if first == START {
            return match self.framer.next(Some(now_ms))? {
                Ok((cmd, payload, _)) => Some(Event::Reply(Reply {
                    code: u16::from(cmd),
                    payload,
                })),
                Err(e) => Some(e),
            };
        }
        if let Some(bytes) = self.framer.buf.expire(now_ms, CHUNK_TIMEOUT_MS) {
            return Some(Event::Discarded {
                bytes,
                reason: "partial telegram timed out",
            });
        }
        let data = self.framer.buf.as_slice();
        // A bare telegram: L (≥ 9: C, M, A, CI at least), a plausible C-field, then RSSI.
        let l = usize::from(first);
        if l < 9 || data.get(1).is_some_and(|&c| !plausible_c_field(c)) {
            let skip = data
                .iter()
                .enumerate()
                .skip(1)
                .find(|(i, b)| {
                    **b == START
                        || (**b >= 9 && data.get(i + 1).is_none_or(|&c| plausible_c_field(c)))
                })
                .map_or(data.len(), |(i, _)| i);
            return Some(Event::Discarded {
                bytes: self.framer.buf.take(skip),
                reason: "no plausible L- and C-field",
            });
        }
        let total = 1 + l + 1;
        if data.len() < total {
            return None;
        }
        let raw = self.framer.buf.take(total);
        let (rssi, telegram) = raw.split_last().map_or((None, raw.clone()), |(r, t)| {
            (Some(rssi_dbm(*r)), t.to_vec())
        });
        Some(Event::Telegram(Received {
            telegram,
            link_mode: None,
            frame_format: None,
            rssi_dbm: rssi,
            device_time: None,
            raw,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Ok(init_steps(mode))
    }

    fn transmit(
        &self,
        telegram: &[u8],
        mode: LinkMode,
        listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        transmit_steps(telegram, mode, listen)
    }
}

/// The device side (simulator), command or transparent mode.
#[derive(Debug, Clone, Default)]
pub struct AmberDevice {
    framer: Framer,
    mode: Option<LinkMode>,
    rssi: bool,
    transparent: bool,
    transmitted: Vec<Vec<u8>>,
}

impl AmberDevice {
    /// A module with UART_CMD_Out_Enable off: telegrams come bare.
    pub fn transparent() -> Self {
        Self {
            transparent: true,
            ..Self::default()
        }
    }
}

impl Device for AmberDevice {
    fn push(&mut self, bytes: &[u8]) {
        self.framer.push(bytes);
    }

    fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            let Ok((cmd, payload, _)) = self.framer.next(None)? else {
                continue;
            };
            let answer = match cmd {
                FWV_REQ => emit(FWV_REQ | 0x80, &[0x01, 0x03, 0x00]),
                SET_REQ => {
                    if let [addr, count, values @ ..] = payload.as_slice()
                        && *addr <= PARAM_RSSI_ENABLE
                        && usize::from(*addr) + usize::from(*count) > usize::from(PARAM_RSSI_ENABLE)
                    {
                        let i = usize::from(PARAM_RSSI_ENABLE - addr);
                        self.rssi = values.get(i).is_some_and(|&v| v != 0);
                    }
                    emit(SET_REQ | 0x80, &[0x00])
                }
                RESET_REQ => emit(RESET_REQ | 0x80, &[0x00]),
                SET_MODE_REQ => {
                    if let Some(m) = payload.first().copied().and_then(mode_of) {
                        self.mode = Some(m);
                    }
                    emit(SET_MODE_REQ | 0x80, &[0x00])
                }
                DATA_REQ => {
                    if let Some(t) = with_l_field(&payload) {
                        self.transmitted.push(t);
                    }
                    emit(DATA_REQ | 0x80, &[0x00])
                }
                other => emit(other | 0x80, &[0x01]),
            };
            return Some(answer);
        }
    }

    fn link_mode(&self) -> Option<LinkMode> {
        self.mode
    }

    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        if self.transparent {
            let mut out = t.telegram.to_vec();
            out.push(rssi_raw(t.rssi_dbm));
            return Some(out);
        }
        let mut body = t.telegram.get(1..)?.to_vec();
        if self.rssi {
            body.push(rssi_raw(t.rssi_dbm));
        }
        if body.len() > 255 {
            return None;
        }
        Some(emit(DATA_IND, &body))
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

    /// dongles.md §3: `ff040108f2` → `ff8401007a`.
    #[test]
    fn captured_checksums() {
        assert_eq!(emit(SET_MODE_REQ, &[0x08]), unhex("FF040108F2"));
        assert_eq!(emit(SET_MODE_REQ | 0x80, &[0x00]), unhex("FF8401007A"));
    }

    /// dongles.md: `FF 03 19 | 44AE4C…3B0000 | 12 | 55`.
    #[test]
    fn example_delivery() {
        let body = unhex("44AE4C4455223368077A55000000041389E20100023B0000");
        let mut frame = vec![0xFF, 0x03, 0x19];
        frame.extend_from_slice(&body);
        frame.push(0x12);
        let cs = frame.iter().fold(0u8, |a, b| a ^ b);
        assert_eq!(cs, 0x55);
        frame.push(cs);
        let mut h = AmberHost::default();
        h.push(&frame);
        let Some(Event::Telegram(r)) = h.poll(0) else {
            panic!("no telegram")
        };
        assert_eq!(
            r.telegram,
            unhex("1844AE4C4455223368077A55000000041389E20100023B0000")
        );
        assert_eq!(r.rssi_dbm, Some(9.0 - 74.0));
    }
}
