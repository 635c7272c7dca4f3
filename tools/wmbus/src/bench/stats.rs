//! Per-meter statistics of a bench run, and the verdicts against expectations. Pure: the
//! time of each telegram is passed in.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wmbus_host::report::{JsonValue, Report};

/// What is expected of one meter (`--meters FILE`, `[[meters]]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expectation {
    /// `MFR.id` or `id`.
    pub id: String,
    /// Seconds between telegrams.
    #[serde(default)]
    pub interval: Option<f64>,
    /// Allowed deviation of the mean interval, seconds (default: 10 % of the interval).
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// Weakest acceptable mean RSSI, dBm.
    #[serde(default)]
    pub min_rssi: Option<f64>,
    /// Security mode the meter must use.
    #[serde(default)]
    pub mode: Option<u8>,
    /// Largest acceptable share of telegrams missed (0–1; default 0.1).
    #[serde(default)]
    pub max_missed_share: Option<f64>,
}

/// The expectations file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expectations {
    /// Meters.
    #[serde(default)]
    pub meters: Vec<Expectation>,
}

/// One telegram as the bench saw it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Seen {
    /// Seconds since the start of the run.
    pub t: f64,
    /// The meter, `MFR.id`.
    pub meter: String,
    /// Report status.
    pub status: String,
    /// Security mode.
    pub mode: u8,
    /// RSSI, dBm.
    pub rssi: Option<f64>,
    /// TPL (or ELL) access number.
    pub access_number: Option<u8>,
    /// Message counter (AFL, TPL).
    pub counter: Option<u32>,
    /// Status flags raised.
    pub flags: Vec<&'static str>,
    /// The main reading: first instantaneous numeric record of storage 0.
    pub reading: Option<String>,
}

impl Seen {
    /// From a decoded report at time `t`.
    pub(crate) fn from_report(t: f64, r: &Report) -> Self {
        let meter = match (&r.manufacturer, &r.id) {
            (Some(m), Some(id)) => format!("{m}.{id}"),
            (None, Some(id)) => id.clone(),
            _ => "unknown".into(),
        };
        let access_number = r
            .tpl
            .as_ref()
            .and_then(|t| t.access_number)
            .or_else(|| r.ell.as_ref().map(|e| e.access_number));
        let counter = r
            .security
            .counter
            .or_else(|| r.afl.as_ref().and_then(|a| a.message_counter));
        let mut flags = Vec::new();
        if let Some(f) = r.tpl.as_ref().and_then(|t| t.status_flags.as_ref()) {
            if f.power_low {
                flags.push("battery_low");
            }
            if f.permanent_error {
                flags.push("permanent_error");
            }
            if f.temporary_error {
                flags.push("temporary_error");
            }
            if f.application != "ok" {
                flags.push(f.application);
            }
        }
        let reading = r
            .records
            .iter()
            .find(|x| {
                x.storage == 0
                    && x.function == "instantaneous"
                    && matches!(x.value, JsonValue::Integer(_) | JsonValue::Number(_))
            })
            .map(|x| {
                let v = match &x.value {
                    JsonValue::Integer(i) => i.to_string(),
                    JsonValue::Number(f) => f.to_string(),
                    _ => String::new(),
                };
                format!("{} {v} {}", x.quantity, x.unit.unwrap_or(""))
                    .trim()
                    .to_string()
            });
        Self {
            t,
            meter,
            status: r.status.to_string(),
            mode: r.security_mode,
            rssi: r.reception.rssi,
            access_number,
            counter,
            flags,
            reading,
        }
    }
}

/// Running statistics of one meter.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct MeterStats {
    /// `MFR.id`.
    pub meter: String,
    /// Telegrams.
    pub telegrams: u64,
    /// Decoded and authenticated ("ok").
    pub ok: u64,
    /// Seconds since the start: first and last telegram.
    pub first_seen: f64,
    /// Last telegram.
    pub last_seen: f64,
    /// Mean interval, seconds.
    pub interval_mean: Option<f64>,
    /// Standard deviation of the intervals (jitter), seconds.
    pub interval_jitter: Option<f64>,
    /// Telegrams missed, from access-number or counter gaps.
    pub missed: u64,
    /// RSSI min, mean, max.
    pub rssi_min: Option<f64>,
    /// Mean.
    pub rssi_mean: Option<f64>,
    /// Max.
    pub rssi_max: Option<f64>,
    /// Decryption and MAC failures (status authentication_failed).
    pub auth_failures: u64,
    /// No key configured.
    pub no_key: u64,
    /// Replayed counters.
    pub replays: u64,
    /// Other failures (malformed, CRC, unsupported).
    pub other_failures: u64,
    /// Security modes seen.
    pub modes: Vec<u8>,
    /// Status flags seen, with counts.
    pub flags: BTreeMap<String, u64>,
    /// The latest main reading.
    pub reading: Option<String>,
    #[serde(skip)]
    intervals: Vec<f64>,
    #[serde(skip)]
    rssis: Vec<f64>,
    #[serde(skip)]
    last_access: Option<u8>,
    #[serde(skip)]
    last_counter: Option<u32>,
}

impl MeterStats {
    fn add(&mut self, s: &Seen) {
        if self.telegrams == 0 {
            self.first_seen = s.t;
        } else {
            self.intervals.push(s.t - self.last_seen);
        }
        self.telegrams += 1;
        self.last_seen = s.t;
        match s.status.as_str() {
            "ok" | "incomplete" => self.ok += 1,
            "authentication_failed" => self.auth_failures += 1,
            "no_key" => self.no_key += 1,
            "replayed" => self.replays += 1,
            _ => self.other_failures += 1,
        }
        if !self.modes.contains(&s.mode) {
            self.modes.push(s.mode);
        }
        // Gaps: the counter when there is one, else the access number (mod 256).
        let gap = match (
            s.counter,
            self.last_counter,
            s.access_number,
            self.last_access,
        ) {
            (Some(c), Some(l), _, _) if c > l => u64::from(c - l - 1),
            (None, _, Some(a), Some(l)) => u64::from(a.wrapping_sub(l).wrapping_sub(1)),
            _ => 0,
        };
        // A gap of more than half the access-number range is a restart, not losses.
        if gap < 128 || s.counter.is_some() {
            self.missed += gap;
        }
        if s.counter.is_some() {
            self.last_counter = s.counter;
        }
        if s.access_number.is_some() {
            self.last_access = s.access_number;
        }
        if let Some(r) = s.rssi {
            self.rssis.push(r);
        }
        for f in &s.flags {
            *self.flags.entry((*f).to_string()).or_default() += 1;
        }
        if s.reading.is_some() {
            self.reading.clone_from(&s.reading);
        }
        self.refresh();
    }

    fn refresh(&mut self) {
        let n = self.intervals.len() as f64;
        if n > 0.0 {
            let mean = self.intervals.iter().sum::<f64>() / n;
            let var = self
                .intervals
                .iter()
                .map(|x| (x - mean).powi(2))
                .sum::<f64>()
                / n;
            self.interval_mean = Some(mean);
            self.interval_jitter = Some(var.sqrt());
        }
        if !self.rssis.is_empty() {
            self.rssi_min = self.rssis.iter().copied().reduce(f64::min);
            self.rssi_max = self.rssis.iter().copied().reduce(f64::max);
            self.rssi_mean = Some(self.rssis.iter().sum::<f64>() / self.rssis.len() as f64);
        }
    }

    /// Share of telegrams missed.
    pub(crate) fn missed_share(&self) -> f64 {
        let sent = self.telegrams + self.missed;
        if sent == 0 {
            0.0
        } else {
            self.missed as f64 / sent as f64
        }
    }
}

/// All meters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bench {
    /// By meter.
    pub meters: BTreeMap<String, MeterStats>,
}

impl Bench {
    /// Adds a telegram.
    pub(crate) fn add(&mut self, s: &Seen) {
        let m = self.meters.entry(s.meter.clone()).or_default();
        m.meter.clone_from(&s.meter);
        m.add(s);
    }
}

/// A meter's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Verdict {
    /// `MFR.id` (or the expectation's id when never seen).
    pub meter: String,
    /// Pass or fail.
    pub pass: bool,
    /// Why it failed (empty when it passed).
    pub reasons: Vec<String>,
}

fn matches(expected: &str, meter: &str) -> bool {
    meter.eq_ignore_ascii_case(expected)
        || meter
            .split_once('.')
            .is_some_and(|(_, id)| id.eq_ignore_ascii_case(expected))
}

/// The verdicts of a run that lasted `duration` seconds.
pub(crate) fn verdicts(bench: &Bench, expectations: &Expectations, duration: f64) -> Vec<Verdict> {
    let mut out = Vec::new();
    for e in &expectations.meters {
        let Some(m) = bench.meters.values().find(|m| matches(&e.id, &m.meter)) else {
            out.push(Verdict {
                meter: e.id.clone(),
                pass: false,
                reasons: vec!["never heard".into()],
            });
            continue;
        };
        let mut reasons = Vec::new();
        if m.ok < m.telegrams {
            let failed = m.telegrams - m.ok;
            reasons.push(format!(
                "{failed} of {} telegrams did not decode (authentication {}, no key {}, replays {}, other {})",
                m.telegrams, m.auth_failures, m.no_key, m.replays, m.other_failures
            ));
        }
        if let Some(interval) = e.interval {
            let tolerance = e.tolerance.unwrap_or(interval * 0.1);
            match m.interval_mean {
                Some(mean) if (mean - interval).abs() > tolerance => reasons.push(format!(
                    "mean interval {mean:.2} s, expected {interval:.2} ± {tolerance:.2} s"
                )),
                None if duration > 2.0 * interval => {
                    reasons.push("only one telegram: no interval".into())
                }
                _ => {}
            }
            // Silent at the end for more than two intervals.
            if duration - m.last_seen > 2.0 * interval + tolerance {
                reasons.push(format!(
                    "silent for the last {:.1} s",
                    duration - m.last_seen
                ));
            }
        }
        if let (Some(min), Some(mean)) = (e.min_rssi, m.rssi_mean)
            && mean < min
        {
            reasons.push(format!("mean RSSI {mean:.1} dBm, weaker than {min:.1} dBm"));
        }
        if let Some(mode) = e.mode
            && m.modes.iter().any(|&x| x != mode)
        {
            reasons.push(format!("security mode {:?}, expected {mode}", m.modes));
        }
        let max_missed = e.max_missed_share.unwrap_or(0.1);
        if m.missed_share() > max_missed {
            reasons.push(format!(
                "missed {} telegrams ({:.0} %), more than {:.0} %",
                m.missed,
                100.0 * m.missed_share(),
                100.0 * max_missed
            ));
        }
        for flag in ["battery_low", "permanent_error"] {
            if let Some(n) = m.flags.get(flag) {
                reasons.push(format!("{flag} flagged in {n} telegrams"));
            }
        }
        out.push(Verdict {
            meter: m.meter.clone(),
            pass: reasons.is_empty(),
            reasons,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(t: f64, acc: u8, status: &str, rssi: f64) -> Seen {
        Seen {
            t,
            meter: "ZRI.20251128".into(),
            status: status.into(),
            mode: 5,
            rssi: Some(rssi),
            access_number: Some(acc),
            counter: None,
            flags: Vec::new(),
            reading: Some("volume 1 m3".into()),
        }
    }

    #[test]
    fn intervals_gaps_rssi() {
        let mut b = Bench::default();
        // Every 10 s, access numbers 254, 255, 0, (1 and 2 missed), 3; jitter ±1 s.
        for (t, acc, rssi) in [
            (0.0, 254, -70.0),
            (9.0, 255, -72.0),
            (20.0, 0, -74.0),
            (50.0, 3, -76.0),
        ] {
            b.add(&seen(t, acc, "ok", rssi));
        }
        let m = &b.meters["ZRI.20251128"];
        assert_eq!(m.telegrams, 4);
        assert_eq!(m.missed, 2);
        assert_eq!(m.interval_mean, Some(50.0 / 3.0));
        assert_eq!(
            (m.rssi_min, m.rssi_max, m.rssi_mean),
            (Some(-76.0), Some(-70.0), Some(-73.0))
        );
        assert!((m.missed_share() - 2.0 / 6.0).abs() < 1e-9);
        let e = Expectations {
            meters: vec![Expectation {
                id: "20251128".into(),
                interval: Some(10.0),
                tolerance: Some(1.0),
                min_rssi: Some(-72.0),
                mode: Some(5),
                max_missed_share: Some(0.5),
            }],
        };
        let v = verdicts(&b, &e, 55.0);
        assert!(!v[0].pass);
        assert_eq!(v[0].reasons.len(), 2, "{:?}", v[0].reasons);
        assert!(v[0].reasons[0].contains("mean interval"));
        assert!(v[0].reasons[1].contains("RSSI"));
    }

    #[test]
    fn failures_and_unheard() {
        let mut b = Bench::default();
        b.add(&seen(0.0, 1, "authentication_failed", -60.0));
        b.add(&seen(1.0, 2, "ok", -60.0));
        let e = Expectations {
            meters: vec![
                Expectation {
                    id: "ZRI.20251128".into(),
                    interval: None,
                    tolerance: None,
                    min_rssi: None,
                    mode: None,
                    max_missed_share: None,
                },
                Expectation {
                    id: "99999999".into(),
                    interval: None,
                    tolerance: None,
                    min_rssi: None,
                    mode: None,
                    max_missed_share: None,
                },
            ],
        };
        let v = verdicts(&b, &e, 2.0);
        assert!(v[0].reasons[0].contains("authentication 1"), "{:?}", v[0]);
        assert_eq!(v[1].reasons, ["never heard"]);
    }
}
