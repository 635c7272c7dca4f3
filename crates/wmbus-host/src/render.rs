//! The views of a report: JSON lines, a human "pretty" view, the layer-by-layer "analyze"
//! view, and CSV rows (one per record).

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::report::{JsonValue, RecordReport, Report};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// The human view.
    Pretty,
    /// Every layer with its fields, IV, MAC.
    Analyze,
    /// One row per record.
    Csv,
}

/// The CSV header.
pub const CSV_HEADER: &str = "time,meter,quantity,value,unit,storage,tariff,function\n";

/// Writes one report.
///
/// # Errors
/// I/O errors of `out`.
pub fn write(out: &mut impl Write, report: &Report, format: Format) -> io::Result<()> {
    match format {
        Format::Json => {
            let mut line = Vec::with_capacity(4096);
            write_line(&mut line, report, Format::Json);
            out.write_all(&line)
        }
        Format::Pretty => out.write_all(pretty(report).as_bytes()),
        Format::Analyze => out.write_all(analyze(report).as_bytes()),
        Format::Csv => out.write_all(csv(report).as_bytes()),
    }
}

/// Appends one report in `format` to a buffer (JSON: one line with its newline).
pub fn write_line(out: &mut Vec<u8>, report: &Report, format: Format) {
    match format {
        Format::Json => {
            crate::json::write_report(out, report);
            out.push(b'\n');
        }
        Format::Pretty => out.extend_from_slice(pretty(report).as_bytes()),
        Format::Analyze => out.extend_from_slice(analyze(report).as_bytes()),
        Format::Csv => out.extend_from_slice(csv(report).as_bytes()),
    }
}

fn value_text(v: &JsonValue) -> String {
    match v {
        JsonValue::Integer(i) => i.to_string(),
        JsonValue::Number(f) => serde_json::to_string(f).unwrap_or_default(),
        JsonValue::Text(s) => s.to_string(),
        JsonValue::Null => "-".into(),
    }
}

fn meter(r: &Report) -> String {
    match (&r.manufacturer, &r.id) {
        (Some(m), Some(id)) => format!("{m} {id}"),
        (None, Some(id)) => id.clone(),
        _ => r
            .link
            .as_ref()
            .and_then(|l| l.primary_address)
            .map_or_else(|| "unknown meter".into(), |a| format!("wired address {a}")),
    }
}

fn record_line(s: &mut String, rec: &RecordReport) {
    let mut name = rec.quantity.to_string();
    if rec.function != "instantaneous" {
        let _ = write!(name, " ({})", rec.function);
    }
    let mut tags = Vec::new();
    if rec.storage != 0 {
        tags.push(format!("storage {}", rec.storage));
    }
    if rec.tariff != 0 {
        tags.push(format!("tariff {}", rec.tariff));
    }
    if rec.subunit != 0 {
        tags.push(format!("subunit {}", rec.subunit));
    }
    if let Some(t) = &rec.time {
        tags.push(t.clone());
    }
    tags.extend(
        rec.annotations
            .iter()
            .filter(|a| *a != "profile_point")
            .cloned(),
    );
    if let Some(e) = rec.record_error {
        tags.push(format!("error: {e}"));
    }
    if rec.invalid {
        tags.push(format!(
            "invalid{}",
            rec.raw
                .as_ref()
                .map(|r| format!(" {r}"))
                .unwrap_or_default()
        ));
    }
    let unit = rec.unit.or(rec.unit_text.as_deref()).unwrap_or("");
    let value = value_text(&rec.value);
    let _ = write!(s, "    {name:<30} {value} {unit}");
    if !tags.is_empty() {
        let _ = write!(s, "  [{}]", tags.join(", "));
    }
    s.push('\n');
}

/// The human view.
pub fn pretty(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", meter(r));
    if let Some(name) = r.device_type_name {
        let _ = write!(s, " · {name}");
    }
    if let Some(l) = &r.link {
        let _ = write!(
            s,
            " · {} · frame {}",
            l.c_field_name.unwrap_or(&l.c_field),
            l.frame_format
        );
    }
    let _ = write!(s, " · mode {} · {}", r.security_mode, r.status);
    if r.security.result != "none" {
        let _ = write!(s, " ({})", r.security.result);
    }
    if let Some(src) = &r.source {
        let _ = write!(
            s,
            " · {}:{}",
            src.file.as_deref().unwrap_or("arg"),
            src.line
        );
    }
    s.push('\n');
    if let Some(e) = &r.error {
        let _ = writeln!(s, "    error: {e}");
    }
    for w in &r.warnings {
        let _ = writeln!(s, "    warning: {w}");
    }
    for rec in &r.records {
        record_line(&mut s, rec);
    }
    if let Some(m) = &r.manufacturer_data {
        let _ = writeln!(s, "    manufacturer data: {m}");
    }
    if let Some(a) = &r.application {
        let _ = writeln!(s, "    {a}");
    }
    s
}

/// The bytes of `frame_hex` from `start` to `end`, or "".
fn span(r: &Report, start: Option<usize>, end: Option<usize>) -> String {
    match (start, end) {
        (Some(a), Some(b)) if a <= b => r.frame_hex.get(2 * a..2 * b).unwrap_or("").to_string(),
        _ => String::new(),
    }
}

/// `@offset bytes` of a layer, up to the next layer that starts.
fn at(r: &Report, start: Option<usize>, next: &[Option<usize>]) -> String {
    let end = next.iter().flatten().copied().find(|&n| Some(n) > start);
    match start {
        Some(a) => format!("@{a:<3} {}\n           ", span(r, Some(a), end)),
        None => String::new(),
    }
}

/// The layer-by-layer view.
pub fn analyze(r: &Report) -> String {
    let mut s = String::new();
    let l = r.layout;
    let _ = writeln!(s, "== {} ==", meter(r));
    if let Some(src) = &r.source {
        let _ = writeln!(
            s,
            "source     {}:{}",
            src.file.as_deref().unwrap_or("argument"),
            src.line
        );
    }
    let _ = writeln!(
        s,
        "frame      {} ({} bytes without CRCs)",
        r.frame_hex,
        r.frame_hex.len() / 2
    );
    if let Some(link) = &r.link {
        let first = (link.frame_format != "wired").then_some(0);
        let _ = write!(
            s,
            "link       {}format {} · C {} {}",
            at(r, first, &[l.ell, l.afl, l.tpl, l.payload]),
            link.frame_format,
            link.c_field,
            link.c_field_name.unwrap_or("?")
        );
        if let (Some(m), Some(id)) = (&link.manufacturer, &link.id) {
            let _ = write!(
                s,
                " · M {m} · ID {id} · version {} · type {:02X}",
                link.version.unwrap_or(0),
                link.device_type.unwrap_or(0)
            );
        }
        if let Some(a) = link.primary_address {
            let _ = write!(s, " · primary address {a}");
        }
        s.push('\n');
    }
    if let Some(e) = &r.ell {
        let _ = write!(
            s,
            "ell        {}CI {} · CC {} [{}] · ACC {}",
            at(r, l.ell, &[l.afl, l.tpl, l.payload]),
            e.ci,
            e.communication_control,
            e.communication_control_bits.join(" "),
            e.access_number
        );
        if let Some(a) = &e.address {
            let _ = write!(s, " · M2/A2 {} {}", a.manufacturer, a.id);
        }
        if let Some(sn) = &e.session_number {
            let _ = write!(
                s,
                " · SN enc {} time {} session {}",
                sn.encryption, sn.time, sn.session
            );
        }
        s.push('\n');
    }
    if let Some(a) = &r.afl {
        let _ = write!(
            s,
            "afl        {}FCL {} · FID {} · MF {}",
            at(r, l.afl, &[l.tpl, l.payload]),
            a.fragment_control,
            a.fragment_id,
            a.more_fragments
        );
        if let Some(m) = &a.message_control {
            let _ = write!(s, " · MCL {m} ({})", a.authentication.unwrap_or("?"));
        }
        if let Some(k) = &a.key_information {
            let _ = write!(s, " · KI {k}");
        }
        if let Some(c) = a.message_counter {
            let _ = write!(s, " · MCR {c}");
        }
        if let Some(ml) = a.message_length {
            let _ = write!(s, " · ML {ml}");
        }
        if let Some(mac) = &a.mac {
            let _ = write!(s, " · MAC {mac}");
        }
        s.push('\n');
    }
    if let Some(t) = &r.tpl {
        let _ = write!(
            s,
            "tpl        {}CI {} ({}) · {} header",
            at(r, l.tpl, &[l.payload]),
            t.ci,
            t.ci_name,
            t.header
        );
        if let Some(m) = &t.meter {
            let _ = write!(
                s,
                " · meter {} {} v{} type {:02X}",
                m.manufacturer, m.id, m.version, m.device_type
            );
        }
        if let Some(acc) = t.access_number {
            let _ = write!(s, " · ACC {acc}");
        }
        if let Some(sts) = t.status {
            let _ = write!(s, " · STS {sts:02X}");
        }
        if let Some(cf) = &t.configuration {
            let _ = write!(s, " · CF {cf}");
        }
        if let Some(cfe) = &t.configuration_extension {
            let _ = write!(s, " · CFE {cfe}");
        }
        let _ = writeln!(s, " · mode {}", t.security_mode);
        if let Some(c) = &t.config {
            let _ = writeln!(
                s,
                "           {}",
                serde_json::to_string(c).unwrap_or_default()
            );
        }
    }
    let sec = &r.security;
    let _ = write!(
        s,
        "security   mode {} · {} · key {} · result {}",
        sec.mode,
        sec.direction,
        if sec.key_configured {
            "configured"
        } else {
            "not configured"
        },
        sec.result
    );
    if let Some(k) = sec.key_id {
        let _ = write!(s, " · key id {k}");
    }
    if let Some(c) = sec.counter {
        let _ = write!(s, " · counter {c}");
    }
    s.push('\n');
    for (label, v) in [
        ("ELL CTR block", &sec.ell_counter_block),
        ("IV / nonce", &sec.iv),
        ("MAC received", &sec.mac_received),
        ("MAC computed", &sec.mac_computed),
        ("Kenc/Lenc", &sec.derived_encryption_key),
        ("Kmac/Lmac", &sec.derived_mac_key),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "           {label}: {v}");
        }
    }
    if let Some(n) = sec.note {
        let _ = writeln!(s, "           note: {n}");
    }
    if let Some(p) = l.payload {
        let _ = writeln!(
            s,
            "payload    @{p:<3} {} (as received)",
            span(r, Some(p), l.end)
        );
    }
    let _ = writeln!(s, "apl        {}", r.payload_hex);
    let _ = writeln!(s, "status     {}", r.status);
    if let Some(e) = &r.error {
        let _ = writeln!(s, "error      {e}");
    }
    for w in &r.warnings {
        let _ = writeln!(s, "warning    {w}");
    }
    for rec in &r.records {
        let _ = write!(
            s,
            "record @{:<3} DIF {:<6} VIF {:<8}",
            rec.offset, rec.dif, rec.vif
        );
        record_line(&mut s, rec);
    }
    if let Some(a) = &r.application {
        let _ = writeln!(s, "app        {a}");
    }
    s.push('\n');
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV rows, one per record (no header).
pub fn csv(r: &Report) -> String {
    let mut s = String::new();
    let time = r.reception.time.clone().unwrap_or_default();
    let meter = meter(r);
    for rec in &r.records {
        let value = match &rec.value {
            JsonValue::Null => String::new(),
            v => value_text(v),
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            csv_field(&time),
            csv_field(&meter),
            rec.quantity,
            csv_field(&value),
            rec.unit.unwrap_or(""),
            rec.storage,
            rec.tariff,
            rec.function
        );
    }
    s
}
