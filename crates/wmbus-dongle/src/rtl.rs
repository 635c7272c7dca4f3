//! Software-defined-radio receivers, read as text (dongles.md §7, §8): rtl_wmbus lines and
//! rtl_433 JSON lines, from a child process, a pipe or stdin. Receive only; their RSSI is not
//! in dBm, so `rssi_dbm` stays empty (the raw line keeps it).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cul::Lines;
use crate::{Device, Event, Host, Indication, LinkMode, Received, Step, Unsupported, hex};

fn mode_of(text: &str) -> Option<LinkMode> {
    text.trim().parse().ok()
}

fn rtl_wmbus_line(line: &[u8]) -> Result<Received, &'static str> {
    let text = core::str::from_utf8(line).map_err(|_| "not text")?;
    let fields: Vec<&str> = text.split(';').collect();
    let [mode, crc_ok, code_ok, time, ..] = fields.as_slice() else {
        return Err("not an rtl_wmbus line");
    };
    if *crc_ok != "1" || *code_ok != "1" {
        return Err("rtl_wmbus flagged a CRC or 3-of-6 error");
    }
    let data = fields
        .iter()
        .rev()
        .find_map(|f| f.trim().strip_prefix("0x"))
        .ok_or("no 0x telegram field")?;
    let telegram = hex::decode(data.as_bytes()).ok_or("telegram is not hex")?;
    Ok(Received {
        telegram,
        link_mode: mode_of(mode),
        frame_format: None,
        rssi_dbm: None,
        device_time: Some(String::from(*time)),
        raw: line.to_vec(),
    })
}

fn rtl_433_line(line: &[u8]) -> Result<Received, &'static str> {
    let v: serde_json::Value = serde_json::from_slice(line).map_err(|_| "not JSON")?;
    let data = v
        .get("data")
        .and_then(serde_json::Value::as_str)
        .ok_or("no data field")?;
    let mut telegram = hex::decode(data.as_bytes()).ok_or("data is not hex")?;
    if let Some(&l) = telegram.first()
        && telegram.len() == usize::from(l) + 3
    {
        telegram.truncate(usize::from(l) + 1);
    }
    Ok(Received {
        telegram,
        link_mode: v
            .get("mode")
            .and_then(serde_json::Value::as_str)
            .and_then(mode_of),
        frame_format: None,
        rssi_dbm: None,
        device_time: v
            .get("time")
            .and_then(serde_json::Value::as_str)
            .map(String::from),
        raw: line.to_vec(),
    })
}

/// A text stream of one telegram per line: rtl_wmbus lines
/// (`MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_ID;0x…`) or
/// rtl_433 `-F json` lines (the `data` field, whose last block CRC, when kept, is dropped).
#[derive(Debug, Clone)]
pub struct SdrHost {
    lines: Lines,
    parse: fn(&[u8]) -> Result<Received, &'static str>,
}

impl SdrHost {
    /// rtl_wmbus lines.
    pub fn rtl_wmbus() -> Self {
        Self {
            lines: Lines::default(),
            parse: rtl_wmbus_line,
        }
    }

    /// rtl_433 JSON lines.
    pub fn rtl_433() -> Self {
        Self {
            lines: Lines::default(),
            parse: rtl_433_line,
        }
    }
}

impl Host for SdrHost {
    fn push(&mut self, bytes: &[u8]) {
        self.lines.buf.push(bytes);
    }

    fn poll(&mut self, _now_ms: u64) -> Option<Event> {
        let line = match self.lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(e),
        };
        Some(match (self.parse)(&line) {
            Ok(r) => Event::Telegram(r),
            Err(reason) => Event::Discarded {
                bytes: line,
                reason,
            },
        })
    }

    fn init(&self, _mode: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Ok(Vec::new())
    }

    fn transmit(&self, _: &[u8], _: LinkMode, _: LinkMode) -> Result<Vec<Step>, Unsupported> {
        Err(Unsupported("an SDR receiver cannot send"))
    }
}

fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "2026-01-01 {:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// rtl_wmbus as the simulator prints it.
fn rtl_wmbus_print(t: &Indication<'_>) -> Option<Vec<u8>> {
    let mode = match t.link_mode {
        LinkMode::C1 | LinkMode::C2 => "C1",
        LinkMode::S1 | LinkMode::S2 => "S1",
        _ => "T1",
    };
    let rssi = (t.rssi_dbm + 160.0).clamp(0.0, 255.0) as u8;
    let id: String = t
        .telegram
        .get(4..8)
        .map(|id| id.iter().rev().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default();
    Some(
        format!(
            "{mode};1;1;{};{rssi};{rssi};{id};0x{}\n",
            clock(t.time_ms),
            hex::encode(t.telegram).to_ascii_lowercase()
        )
        .into_bytes(),
    )
}

/// rtl_433 JSON as the simulator prints it.
fn rtl_433_print(t: &Indication<'_>) -> Option<Vec<u8>> {
    let mode = match t.link_mode {
        LinkMode::C1 | LinkMode::C2 => "C",
        LinkMode::S1 | LinkMode::S2 => "S",
        _ => "T",
    };
    Some(
        format!(
            "{{\"time\" : \"{}\", \"model\" : \"Wireless-MBus\", \"mode\" : \"{mode}\", \"data_length\" : {}, \"data\" : \"{}\", \"rssi\" : {:.1}, \"mic\" : \"CRC\"}}\n",
            clock(t.time_ms),
            t.telegram.len(),
            hex::encode(t.telegram),
            t.rssi_dbm + 60.0
        )
        .into_bytes(),
    )
}

/// An SDR receiver as the simulator plays it: no dialogue, one line per telegram.
#[derive(Debug, Clone, Copy)]
pub struct SdrDevice {
    print: fn(&Indication<'_>) -> Option<Vec<u8>>,
}

impl SdrDevice {
    /// rtl_wmbus lines.
    pub fn rtl_wmbus() -> Self {
        Self {
            print: rtl_wmbus_print,
        }
    }

    /// rtl_433 JSON lines.
    pub fn rtl_433() -> Self {
        Self {
            print: rtl_433_print,
        }
    }
}

impl Device for SdrDevice {
    fn push(&mut self, _bytes: &[u8]) {}
    fn poll(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn link_mode(&self) -> Option<LinkMode> {
        None
    }
    fn indicate(&self, t: &Indication<'_>) -> Option<Vec<u8>> {
        (self.print)(t)
    }
    fn take_transmitted(&mut self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}
