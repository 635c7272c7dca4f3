//! Radiocrafts RC1180-MBUS (dongles.md §5), 19200 8N1.
//!
//! Transparent UART: received telegrams come as `L | C M A … | RSSI` with the RSSI mode on
//! (L then counts the RSSI byte too: it is stripped and L corrected); RSSI dBm ≈ −raw/2.
//! Config mode: `00h` → prompt `>`; `M addr value … FFh` writes memory (prompt again); `X`
//! leaves. Registers: 03h wM-Bus mode (S 0, T 2, C 4), 05h RSSI mode. No C1+T1.
//!
//! Provisional: a lone `>` is taken as the prompt (the module prints nothing else in config
//! mode), and a partial telegram is dropped after 2 s without bytes.

use alloc::vec;
use alloc::vec::Vec;

use crate::{
    Buffer, Device, Event, Host, Indication, LinkMode, Received, Reply, Step, Unsupported,
    plausible_c_field,
};

/// The config-mode prompt.
pub const PROMPT: u8 = b'>';
/// Reply code of the prompt.
pub const PROMPT_REPLY: u16 = 0x3E;
/// Inter-chunk timeout after which a partial telegram is dropped.
pub const CHUNK_TIMEOUT_MS: u64 = 2000;
/// Register: wM-Bus mode.
pub const REG_MODE: u8 = 0x03;
/// Register: RSSI mode.
pub const REG_RSSI: u8 = 0x05;

/// Mode register value.
pub const fn mode_code(mode: LinkMode) -> Option<u8> {
    match mode {
        LinkMode::S1 | LinkMode::S2 => Some(0),
        LinkMode::T1 | LinkMode::T2 => Some(2),
        LinkMode::C1 | LinkMode::C2 => Some(4),
        LinkMode::C1T1 => None,
    }
}

/// dBm of an RSSI byte.
pub fn rssi_dbm(raw: u8) -> f32 {
    -f32::from(raw) / 2.0
}

/// RSSI byte of a level in dBm.
pub fn rssi_raw(dbm: f32) -> u8 {
    (-dbm * 2.0).clamp(0.0, 255.0) as u8
}

/// The host side.
#[derive(Debug, Clone, Default)]
pub struct Rc1180Host {
    buf: Buffer,
}

impl Host for Rc1180Host {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn poll(&mut self, now_ms: u64) -> Option<Event> {
        if let Some(bytes) = self.buf.expire(now_ms, CHUNK_TIMEOUT_MS) {
            return Some(Event::Discarded {
                bytes,
                reason: "partial telegram timed out",
            });
        }
        let data = self.buf.as_slice();
        let first = *data.first()?;
        // The prompt: a `>` that does not start a telegram (no plausible C-field after it).
        if first == PROMPT && data.get(1).is_none_or(|&c| !plausible_c_field(c)) {
            self.buf.take(1);
            return Some(Event::Reply(Reply {
                code: PROMPT_REPLY,
                payload: vec![PROMPT],
            }));
        }
        // L counts C … and the RSSI byte: at least 9 header bytes and the RSSI.
        let l = usize::from(first);
        if l < 10 || data.get(1).is_some_and(|&c| !plausible_c_field(c)) {
            let skip = data
                .iter()
                .enumerate()
                .skip(1)
                .find(|(i, b)| **b >= 10 && data.get(i + 1).is_none_or(|&c| plausible_c_field(c)))
                .map_or(data.len(), |(i, _)| i);
            return Some(Event::Discarded {
                bytes: self.buf.take(skip),
                reason: "no plausible L- and C-field",
            });
        }
        let total = 1 + l;
        if data.len() < total {
            return None;
        }
        let raw = self.buf.take(total);
        let (rssi, body) = raw.split_last()?;
        let mut telegram = body.to_vec();
        if let Some(l) = telegram.first_mut() {
            *l = l.saturating_sub(1);
        }
        Some(Event::Telegram(Received {
            telegram,
            link_mode: None,
            frame_format: None,
            rssi_dbm: Some(rssi_dbm(*rssi)),
            device_time: None,
            raw,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        let code = mode_code(mode).ok_or(Unsupported("the RC1180 listens to one of S, T or C"))?;
        Ok(vec![
            Step {
                name: "enter config mode",
                write: vec![0x00],
                expect: Some(PROMPT_REPLY),
            },
            Step {
                name: "set link mode, RSSI on",
                write: vec![b'M', REG_MODE, code, REG_RSSI, 0x01, 0xFF],
                expect: Some(PROMPT_REPLY),
            },
            Step {
                name: "leave config mode",
                write: vec![b'X'],
                expect: None,
            },
        ])
    }

    fn transmit(
        &self,
        _telegram: &[u8],
        _mode: LinkMode,
        _listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        Err(Unsupported(
            "the RC1180 prepends its own configured header: sending as another device is not supported",
        ))
    }
}

/// The device side (simulator).
#[derive(Debug, Clone, Default)]
pub struct Rc1180Device {
    buf: Buffer,
    config: bool,
    mode: Option<LinkMode>,
    rssi: bool,
}

impl Device for Rc1180Device {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.push(bytes);
    }

    fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            let data = self.buf.as_slice();
            let first = *data.first()?;
            if !self.config {
                // Transparent: 00h enters config mode; other bytes would be sent (ignored).
                self.buf.take(1);
                if first == 0x00 {
                    self.config = true;
                    return Some(vec![PROMPT]);
                }
                continue;
            }
            match first {
                b'X' => {
                    self.buf.take(1);
                    self.config = false;
                }
                b'M' => {
                    let end = data.iter().position(|&b| b == 0xFF)?;
                    let pairs = self.buf.take(end + 1);
                    for pair in pairs.get(1..end).unwrap_or(&[]).chunks_exact(2) {
                        match *pair {
                            [REG_MODE, v] => {
                                self.mode = match v {
                                    0 => Some(LinkMode::S1),
                                    2 => Some(LinkMode::T1),
                                    4 => Some(LinkMode::C1),
                                    _ => None,
                                }
                            }
                            [REG_RSSI, v] => self.rssi = v != 0,
                            _ => {}
                        }
                    }
                    return Some(vec![PROMPT]);
                }
                _ => {
                    self.buf.take(1);
                    return Some(vec![PROMPT]);
                }
            }
        }
    }

    fn link_mode(&self) -> Option<LinkMode> {
        // Receiving starts when the host leaves config mode.
        if self.config { None } else { self.mode }
    }

    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        if self.config {
            return None;
        }
        let mut out = t.telegram.to_vec();
        if self.rssi {
            let l = out.first_mut()?;
            *l = l.checked_add(1)?;
            out.push(rssi_raw(t.rssi_dbm));
        }
        Some(out)
    }

    fn take_transmitted(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}
