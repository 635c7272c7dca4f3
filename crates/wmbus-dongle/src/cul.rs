//! CUL, nanoCUL, a-culfw (dongles.md §4): ASCII lines ending in CR LF, 38400 8N1.
//!
//! Init: `V` (version line back), `X21` (report RSSI and LQI), then `brs`/`brt`/`brc` (S, T, C
//! mode; echoed as `SMODE`, `TMODE`, `CMODE`). Received: `b` + the raw frame in hex *with*
//! its CRCs (format A), or `bY` + a format-B frame, then LQI and RSSI bytes in hex. The host
//! checks and strips the CRCs. RSSI dBm = int8(RR)/2 − 74. Send: `bss`/`bst` + the frame in hex
//! with format-A CRCs (the firmware only line-codes); no C-mode transmit, no C1+T1.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use wmbus_frame::dll::{self, FrameFormat, MAX_RAW_FRAME_LEN};

use crate::{
    Buffer, Device, Event, Host, Indication, LinkMode, Received, Reply, Step, Unsupported, hex,
};

/// Reply code of the version line (`V …`).
pub const VERSION: u16 = 0x0100;
/// Reply code of a mode echo (`SMODE`, `TMODE`, `CMODE`).
pub const MODE_ECHO: u16 = 0x0101;
/// Longest line kept before it is dropped as garbage.
pub const MAX_LINE: usize = 2 * MAX_RAW_FRAME_LEN + 16;

/// RSSI byte to dBm.
pub fn rssi_dbm(raw: u8) -> f32 {
    f32::from(raw as i8) / 2.0 - 74.0
}

/// dBm to the RSSI byte.
pub fn rssi_raw(dbm: f32) -> u8 {
    (((dbm + 74.0) * 2.0).clamp(-128.0, 127.0) as i8) as u8
}

/// Lines from a byte stream (CR, LF or both end one); overlong lines are dropped.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lines {
    pub(crate) buf: Buffer,
}

impl Lines {
    /// The next complete line without its ending, or bytes dropped.
    pub(crate) fn next(&mut self) -> Option<Result<Vec<u8>, Event>> {
        loop {
            let data = self.buf.as_slice();
            let Some(end) = data.iter().position(|&b| b == b'\n' || b == b'\r') else {
                if data.len() > MAX_LINE {
                    let n = data.len();
                    return Some(Err(Event::Discarded {
                        bytes: self.buf.take(n),
                        reason: "line too long",
                    }));
                }
                return None;
            };
            let mut line = self.buf.take(end + 1);
            line.pop();
            if line.is_empty() {
                continue;
            }
            return Some(Ok(line));
        }
    }
}

/// A received-telegram line to a telegram.
fn telegram_line(line: &[u8]) -> Result<Received, &'static str> {
    let (format, rest) = match line {
        [b'b', b'Y', rest @ ..] => (FrameFormat::B, rest),
        [b'b', rest @ ..] => (FrameFormat::A, rest),
        _ => return Err("not a telegram line"),
    };
    let digits: Vec<u8> = rest.iter().copied().filter(|&c| c != b' ').collect();
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of hex digits (receive buffer overflow?)");
    }
    let bytes = hex::decode(&digits).ok_or("not hex")?;
    let (frame, trailer) = bytes.split_at(bytes.len().saturating_sub(2));
    let [_lqi, rssi] = *trailer else {
        return Err("too short");
    };
    let mut out = [0u8; MAX_RAW_FRAME_LEN];
    let n = dll::strip_crcs(frame, Some(format), &mut out)
        .map_err(|_| "link-layer CRC does not verify")?;
    Ok(Received {
        telegram: out.get(..n.len).unwrap_or(&[]).to_vec(),
        link_mode: None,
        frame_format: Some(format),
        rssi_dbm: Some(rssi_dbm(rssi)),
        device_time: None,
        raw: line.to_vec(),
    })
}

/// The host side.
#[derive(Debug, Clone, Default)]
pub struct CulHost {
    lines: Lines,
}

fn command(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    v
}

impl Host for CulHost {
    fn push(&mut self, bytes: &[u8]) {
        self.lines.buf.push(bytes);
    }

    fn poll(&mut self, _now_ms: u64) -> Option<Event> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(e),
        };
        if line.first() == Some(&b'b') {
            return Some(match telegram_line(&line) {
                Ok(r) => Event::Telegram(r),
                Err(reason) => Event::Discarded {
                    bytes: line,
                    reason,
                },
            });
        }
        let code = match line.as_slice() {
            [b'V', b' ', ..] => VERSION,
            b"SMODE" | b"TMODE" | b"CMODE" => MODE_ECHO,
            _ => {
                return Some(Event::Discarded {
                    bytes: line,
                    reason: "unrecognised line",
                });
            }
        };
        Some(Event::Reply(Reply {
            code,
            payload: line,
        }))
    }

    fn init(&self, mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        let listen = match mode {
            LinkMode::S1 | LinkMode::S2 => "brs",
            LinkMode::T1 | LinkMode::T2 => "brt",
            LinkMode::C1 | LinkMode::C2 => "brc",
            LinkMode::C1T1 => return Err(Unsupported("a CUL listens to one of S, T or C")),
        };
        Ok(vec![
            Step {
                name: "version",
                write: command("V"),
                expect: Some(VERSION),
            },
            Step {
                name: "RSSI and LQI on",
                write: command("X21"),
                expect: None,
            },
            Step {
                name: "set link mode",
                write: command(listen),
                expect: Some(MODE_ECHO),
            },
        ])
    }

    fn transmit(
        &self,
        telegram: &[u8],
        mode: LinkMode,
        listen: LinkMode,
    ) -> Result<Vec<Step>, Unsupported> {
        let prefix = match mode {
            LinkMode::S1 | LinkMode::S2 => "bss",
            LinkMode::T1 | LinkMode::T2 => "bst",
            _ => return Err(Unsupported("a CUL sends in S or T mode only")),
        };
        let mut out = [0u8; MAX_RAW_FRAME_LEN];
        let n = dll::emit_with_crcs(telegram, FrameFormat::A, &mut out)
            .map_err(|_| Unsupported("telegram L-field does not match its length"))?;
        let mut text = String::from(prefix);
        text.push_str(&hex::encode(out.get(..n).unwrap_or(&[])));
        let mut steps = vec![Step {
            name: "send",
            write: command(&text),
            expect: None,
        }];
        // Sending interrupts receiving; the firmware resumes it, but the mode is set again.
        let mut init = self.init(listen)?;
        steps.push(init.remove(2));
        Ok(steps)
    }
}

/// The device side (simulator).
#[derive(Debug, Clone, Default)]
pub struct CulDevice {
    lines: Lines,
    mode: Option<LinkMode>,
    transmitted: Vec<Vec<u8>>,
}

impl Device for CulDevice {
    fn push(&mut self, bytes: &[u8]) {
        self.lines.buf.push(bytes);
    }

    fn poll(&mut self) -> Option<Vec<u8>> {
        loop {
            let Ok(line) = self.lines.next()? else {
                continue;
            };
            let echo = |s: &str| Some(command(s));
            match line.as_slice() {
                b"V" => return echo("V 1.67 nanoCUL868"),
                b"brs" => {
                    self.mode = Some(LinkMode::S1);
                    return echo("SMODE");
                }
                b"brt" => {
                    self.mode = Some(LinkMode::T1);
                    return echo("TMODE");
                }
                b"brc" => {
                    self.mode = Some(LinkMode::C1);
                    return echo("CMODE");
                }
                [b'b', b's', b's' | b't', digits @ ..] => {
                    let mut out = [0u8; MAX_RAW_FRAME_LEN];
                    if let Some(frame) = hex::decode(digits)
                        && let Ok(n) = dll::strip_crcs(&frame, Some(FrameFormat::A), &mut out)
                    {
                        self.transmitted
                            .push(out.get(..n.len).unwrap_or(&[]).to_vec());
                    }
                }
                _ => {}
            }
        }
    }

    fn link_mode(&self) -> Option<LinkMode> {
        self.mode
    }

    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        let format = if matches!(t.link_mode, LinkMode::C1 | LinkMode::C2) {
            FrameFormat::B
        } else {
            FrameFormat::A
        };
        let mut out = [0u8; MAX_RAW_FRAME_LEN];
        let n = dll::emit_with_crcs(t.telegram, format, &mut out).ok()?;
        // The TTY buffer of a nanoCUL holds at most 148 bytes of frame.
        if n > 148 {
            return None;
        }
        let mut line = String::from(if format == FrameFormat::B { "bY" } else { "b" });
        line.push_str(&hex::encode(out.get(..n).unwrap_or(&[])));
        line.push_str(&hex::encode(&[0x30, rssi_raw(t.rssi_dbm)]));
        line.push_str("\r\n");
        Some(line.into_bytes())
    }

    fn take_transmitted(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.transmitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.as_bytes()).unwrap_or_default()
    }

    /// dongles.md: the same T1 telegram from a CUL in format A and in format B.
    #[test]
    fn example_deliveries() {
        let telegram = unhex("1844AE4C4455223368077A55000000041389E20100023B0000");
        for line in [
            "b1844AE4C4455223368075F787A55000000041389E20100023B0000D0C6 30E0\r\n",
            "bY1A44AE4C4455223368077A55000000041389E20100023B0000C6B4 30E0\r\n",
        ] {
            let mut h = CulHost::default();
            h.push(line.as_bytes());
            let Some(Event::Telegram(r)) = h.poll(0) else {
                panic!("no telegram from {line}")
            };
            assert_eq!(r.telegram, telegram, "{line}");
            assert_eq!(r.rssi_dbm, Some(f32::from(0xE0u8 as i8) / 2.0 - 74.0));
        }
    }

    /// dongles.md §4, culfw's send example: CRCs 4447h and 255Dh.
    #[test]
    fn send_example() {
        let h = CulHost::default();
        let steps = h
            .transmit(
                &unhex("0F44AE0C785634120107780B12436587"),
                LinkMode::S1,
                LinkMode::S1,
            )
            .unwrap_or_default();
        let first = steps.first().map(|s| s.write.clone()).unwrap_or_default();
        let text = String::from_utf8(first).unwrap_or_default();
        assert_eq!(text, "bss0F44AE0C7856341201074447780B12436587255D\r\n");
    }
}
