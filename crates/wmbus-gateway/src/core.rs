//! The gateway's sans-IO core: received telegrams in, JSON lines out. Duplicate suppression
//! across dongles and repeaters, decoding through the security layer with the replay guard,
//! statistics, and the replay state as text for the state directory.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use wmbus_dongle::Received;
use wmbus_host::decoder::{DecodeOptions, Decoder};
use wmbus_host::report::{Reception, Report, Source};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::replay::ReplayGuard;
use wmbus_security::time::Instant;

/// Counters, logged at shutdown and on request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Telegrams received from dongles.
    pub received: u64,
    /// Reports written (status ok or not).
    pub reported: u64,
    /// Reports whose status was "ok" (or "incomplete": a fragment awaiting the rest).
    pub decoded: u64,
    /// Telegrams dropped as duplicates of one seen within the window.
    pub duplicates: u64,
    /// Bytes the dongle codecs discarded while resynchronising.
    pub discarded_bytes: u64,
}

/// What became of a telegram.
#[derive(Debug)]
pub enum Outcome {
    /// The same telegram came within the window (another dongle, a repeater): dropped.
    Duplicate,
    /// Decoded (or not: the report says why).
    Report(Box<Report>),
}

/// The core.
#[derive(Debug)]
pub struct Core {
    decoder: Decoder,
    window_ms: u64,
    seen: HashMap<Vec<u8>, u64>,
    sequence: usize,
    /// Counters.
    pub stats: Stats,
    /// The replay guard's generation when it was last saved.
    saved_generation: u64,
}

impl Core {
    /// A core with these keys; duplicates within `window_ms` are dropped.
    pub fn new(keys: MemoryKeyStore, options: DecodeOptions, window_ms: u64) -> Self {
        Self {
            decoder: Decoder::new(keys, options),
            window_ms,
            seen: HashMap::new(),
            sequence: 0,
            stats: Stats::default(),
            saved_generation: 0,
        }
    }

    /// Handles one telegram from `dongle` at `now_ms` (a monotonic clock).
    pub fn handle(&mut self, now_ms: u64, dongle: &str, r: &Received) -> Outcome {
        self.stats.received += 1;
        // Duplicates: the same telegram after the C-field (address, transport, payload) from
        // any dongle within the window. A repeater's copy differs only in the link layer.
        let key = r.telegram.get(2..).unwrap_or(&[]).to_vec();
        let window = self.window_ms;
        self.seen.retain(|_, t| now_ms.saturating_sub(*t) < window);
        if self.window_ms > 0 && self.seen.contains_key(&key) {
            self.stats.duplicates += 1;
            return Outcome::Duplicate;
        }
        self.seen.insert(key, now_ms);
        let mut report = self
            .decoder
            .decode(Instant::from_millis(now_ms), &r.telegram);
        self.sequence += 1;
        report.source = Some(Source {
            file: Some(dongle.to_string()),
            line: self.sequence,
        });
        report.reception = Reception {
            rssi: r.rssi_dbm.map(|x| (f64::from(x) * 10.0).round() / 10.0),
            rssi_unit: r.rssi_dbm.map(|_| "dBm"),
            link_mode: r.link_mode.map(|m| m.name().to_string()),
            time: Some(utc_now()),
        };
        self.stats.reported += 1;
        if report.is_decoded() {
            self.stats.decoded += 1;
        }
        Outcome::Report(Box::new(report))
    }

    /// The replay state as text (for `replay.txt` in the state directory).
    pub fn replay_text(&self) -> String {
        self.decoder.receiver().replay().to_text()
    }

    /// Whether the replay state changed since the last [`Self::mark_saved`].
    pub fn replay_dirty(&self) -> bool {
        self.decoder.receiver().replay().generation() != self.saved_generation
    }

    /// The replay state was written.
    pub fn mark_saved(&mut self) {
        self.saved_generation = self.decoder.receiver().replay().generation();
    }

    /// Restores a saved replay state; returns the lines skipped as invalid.
    pub fn load_replay_text(&mut self, text: &str) -> usize {
        let (guard, bad) = ReplayGuard::from_text(text);
        *self.decoder.receiver_mut().replay_mut() = guard;
        self.mark_saved();
        bad
    }
}

/// The time now as ISO 8601 UTC with milliseconds.
pub fn utc_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(hex: &str) -> Received {
        let telegram = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        Received {
            telegram,
            link_mode: None,
            frame_format: None,
            rssi_dbm: Some(-80.04),
            device_time: None,
            raw: Vec::new(),
        }
    }

    /// The window: a copy inside it is dropped and counted, one after it is decoded again.
    #[test]
    fn duplicate_window() {
        let mut core = Core::new(MemoryKeyStore::new(), DecodeOptions::default(), 1000);
        let t = received("1844AE4C4455223368077A55000000041389E20100023B0000");
        assert!(matches!(core.handle(0, "a", &t), Outcome::Report(_)));
        assert!(matches!(core.handle(500, "b", &t), Outcome::Duplicate));
        // A repeater's copy: another C-field, same rest.
        let mut repeated = t.clone();
        if let Some(c) = repeated.telegram.get_mut(1) {
            *c = 0x46;
        }
        assert!(matches!(
            core.handle(600, "b", &repeated),
            Outcome::Duplicate
        ));
        let Outcome::Report(r) = core.handle(1600, "a", &t) else {
            panic!("not decoded after the window")
        };
        assert_eq!(r.reception.rssi, Some(-80.0));
        assert_eq!(r.source.as_ref().map(|s| s.line), Some(2));
        assert_eq!(core.stats.duplicates, 2);
        assert_eq!(core.stats.received, 4);
    }

    #[test]
    fn time_format() {
        let t = utc_now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
