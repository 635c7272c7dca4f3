//! SVG plots of a meter's run: the interval before each telegram and its RSSI, over time.
//! Plain SVG (no fonts or native libraries needed), one file per meter.

use std::fmt::Write as _;

use super::stats::Seen;

const W: f64 = 720.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 40.0;
const GAP: f64 = 56.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel: points (t, y) as a polyline with dots, axes and min/max labels.
fn panel(svg: &mut String, top: f64, title: &str, unit: &str, t_max: f64, points: &[(f64, f64)]) {
    let width = W - LEFT - RIGHT;
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" font-family="sans-serif" font-size="13">{}</text>"##,
        top - 8.0,
        escape(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{width:.1}" height="{PANEL}" fill="none" stroke="#888"/>"##
    );
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="12" fill="#888">no data</text>"##,
            LEFT + 8.0,
            top + 20.0
        );
        return;
    }
    let (mut lo, mut hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), p| (l.min(p.1), h.max(p.1)));
    if (hi - lo).abs() < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let x = |t: f64| LEFT + width * (t / t_max.max(1e-9));
    let y = |v: f64| top + PANEL - PANEL * (v - lo) / (hi - lo);
    let path: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
        .collect();
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/>"##,
        path.join(" ")
    );
    for p in points {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#1f77b4"/>"##,
            x(p.0),
            y(p.1)
        );
    }
    for (v, anchor_y) in [(hi, top + 4.0), (lo, top + PANEL)] {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{anchor_y:.1}" font-family="sans-serif" font-size="11" text-anchor="end">{v:.1} {}</text>"##,
            LEFT - 6.0,
            escape(unit)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-family="sans-serif" font-size="11" text-anchor="end">{t_max:.0} s</text>"##,
        W - RIGHT,
        top + PANEL + 14.0
    );
}

/// The SVG document of one meter.
pub(super) fn meter(name: &str, points: &[&Seen]) -> String {
    let t_max = points.iter().map(|s| s.t).fold(0.0, f64::max);
    let intervals: Vec<(f64, f64)> = points
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some((b.t, b.t - a.t)),
            _ => None,
        })
        .collect();
    let rssi: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|s| s.rssi.map(|r| (s.t, r)))
        .collect();
    let height = TOP + 2.0 * PANEL + GAP + 30.0;
    let mut svg = format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="18" font-family="sans-serif" font-size="15" font-weight="bold">{} · {} telegrams</text>
"##,
        escape(name),
        points.len()
    );
    panel(
        &mut svg,
        TOP + 10.0,
        "interval before each telegram",
        "s",
        t_max,
        &intervals,
    );
    panel(
        &mut svg,
        TOP + 10.0 + PANEL + GAP,
        "RSSI",
        "dBm",
        t_max,
        &rssi,
    );
    svg.push_str("</svg>\n");
    svg
}
