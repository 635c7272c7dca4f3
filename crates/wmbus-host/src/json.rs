//! The JSON line of a report, written directly: the hot path of `wmbus decode --format json`.
//!
//! The contract is the `Serialize` derive on [`Report`] (`docs/json.md`); this writer produces
//! the same bytes without the serializer's per-byte work and is checked against it over every
//! telegram in `testdata/` (`tests/json_writer.rs`). Numbers are formatted as `serde_json`
//! formats them.

use serde_json::ser::{CompactFormatter, Formatter};

/// `,"key":` as one literal.
macro_rules! k {
    ($key:literal) => {
        concat!(",\"", $key, "\":")
    };
}

use crate::report::{
    AddressReport, ConfigReport, JsonValue, RecordReport, Report, SecurityReport, TplReport,
};

/// Appends the report as one JSON object (no newline).
pub fn write_report(out: &mut Vec<u8>, r: &Report) {
    let mut o = Obj::new(out);
    if let Some(s) = &r.source {
        let mut src = o.object(k!("source"));
        src.opt_str(k!("file"), s.file.as_deref());
        src.uint(k!("line"), s.line as u64);
        src.end();
    }
    let rx = &r.reception;
    if !rx.is_empty() {
        if let Some(v) = rx.rssi {
            o.float(k!("rssi"), v);
        }
        o.opt_str(k!("rssi_unit"), rx.rssi_unit);
        o.opt_str(k!("link_mode"), rx.link_mode.as_deref());
        o.opt_str(k!("time"), rx.time.as_deref());
    }
    o.str_or_null(k!("manufacturer"), r.manufacturer.as_deref());
    o.str_or_null(k!("id"), r.id.as_deref());
    o.uint_or_null(k!("version"), r.version.map(u64::from));
    o.uint_or_null(k!("device_type"), r.device_type.map(u64::from));
    o.str_or_null(k!("device_type_name"), r.device_type_name);
    o.str(k!("status"), r.status);
    o.opt_str(k!("error"), r.error.as_deref());
    if let Some(l) = &r.link {
        let mut x = o.object(k!("link"));
        x.str(k!("c_field"), &l.c_field);
        x.opt_str(k!("c_field_name"), l.c_field_name);
        x.opt_str(k!("manufacturer"), l.manufacturer.as_deref());
        x.opt_str(k!("id"), l.id.as_deref());
        x.opt_uint(k!("version"), l.version.map(u64::from));
        x.opt_uint(k!("device_type"), l.device_type.map(u64::from));
        x.opt_uint(k!("primary_address"), l.primary_address.map(u64::from));
        x.str(k!("frame_format"), l.frame_format);
        x.end();
    }
    if let Some(e) = &r.ell {
        let mut x = o.object(k!("ell"));
        x.str(k!("ci"), &e.ci);
        x.str(k!("communication_control"), &e.communication_control);
        x.strs(
            k!("communication_control_bits"),
            &e.communication_control_bits,
        );
        x.uint(k!("access_number"), u64::from(e.access_number));
        if let Some(a) = &e.address {
            address(&mut x, k!("address"), a);
        }
        if let Some(s) = &e.session_number {
            let mut y = x.object(k!("session_number"));
            y.uint(k!("encryption"), u64::from(s.encryption));
            y.uint(k!("time"), u64::from(s.time));
            y.uint(k!("session"), u64::from(s.session));
            y.end();
        }
        x.end();
    }
    if let Some(a) = &r.afl {
        let mut x = o.object(k!("afl"));
        x.str(k!("fragment_control"), &a.fragment_control);
        x.uint(k!("fragment_id"), u64::from(a.fragment_id));
        x.bool(k!("more_fragments"), a.more_fragments);
        x.opt_str(k!("message_control"), a.message_control.as_deref());
        x.opt_uint(
            k!("authentication_type"),
            a.authentication_type.map(u64::from),
        );
        x.opt_str(k!("authentication"), a.authentication);
        x.opt_str(k!("key_information"), a.key_information.as_deref());
        x.opt_uint(k!("message_counter"), a.message_counter.map(u64::from));
        x.opt_uint(k!("message_length"), a.message_length.map(u64::from));
        x.opt_str(k!("mac"), a.mac.as_deref());
        x.end();
    }
    if let Some(t) = &r.tpl {
        tpl(&mut o, t);
    }
    o.uint(k!("security_mode"), u64::from(r.security_mode));
    security(&mut o, &r.security);
    o.hex(k!("payload_hex"), &r.payload_hex);
    o.key(k!("records"));
    o.out.push(b'[');
    for (i, rec) in r.records.iter().enumerate() {
        if i > 0 {
            o.out.push(b',');
        }
        record(o.out, rec);
    }
    o.out.push(b']');
    o.opt_str(k!("manufacturer_data"), r.manufacturer_data.as_deref());
    if r.more_records_follow {
        o.bool(k!("more_records_follow"), true);
    }
    if let Some(c) = &r.compact {
        let mut x = o.object(k!("compact"));
        x.str(k!("format_signature"), &c.format_signature);
        x.str(k!("full_frame_crc"), &c.full_frame_crc);
        x.bool(k!("format_known"), c.format_known);
        if let Some(ok) = c.full_frame_crc_ok {
            x.bool(k!("full_frame_crc_ok"), ok);
        }
        x.end();
    }
    if let Some(a) = &r.application {
        o.serde(k!("application"), a);
    }
    if !r.warnings.is_empty() {
        o.key(k!("warnings"));
        strings(o.out, r.warnings.iter().map(String::as_str));
    }
    o.hex(k!("frame_hex"), &r.frame_hex);
    o.end();
}

fn address(o: &mut Obj<'_>, key: &'static str, a: &AddressReport) {
    let mut x = o.object(key);
    x.str(k!("manufacturer"), &a.manufacturer);
    x.str(k!("id"), &a.id);
    x.uint(k!("version"), u64::from(a.version));
    x.uint(k!("device_type"), u64::from(a.device_type));
    x.end();
}

fn tpl(o: &mut Obj<'_>, t: &TplReport) {
    let mut x = o.object(k!("tpl"));
    x.str(k!("ci"), &t.ci);
    x.str(k!("ci_name"), t.ci_name);
    x.str(k!("header"), t.header);
    x.opt_uint(k!("access_number"), t.access_number.map(u64::from));
    x.opt_uint(k!("status"), t.status.map(u64::from));
    if let Some(f) = &t.status_flags {
        let mut y = x.object(k!("status_flags"));
        y.str(k!("application"), f.application);
        y.bool(k!("power_low"), f.power_low);
        y.bool(k!("permanent_error"), f.permanent_error);
        y.bool(k!("temporary_error"), f.temporary_error);
        y.uint(k!("manufacturer"), u64::from(f.manufacturer));
        y.end();
    }
    x.uint(k!("security_mode"), u64::from(t.security_mode));
    x.opt_str(k!("configuration"), t.configuration.as_deref());
    match &t.config {
        Some(ConfigReport::Basic {
            accessibility,
            bidirectional,
            content,
            encrypted_blocks,
            hop_count,
            repeated_access,
            synchronous,
        }) => {
            let mut y = x.object(k!("config"));
            y.bool(k!("accessibility"), *accessibility);
            y.bool(k!("bidirectional"), *bidirectional);
            y.uint(k!("content"), u64::from(*content));
            y.uint(k!("encrypted_blocks"), u64::from(*encrypted_blocks));
            y.bool(k!("hop_count"), *hop_count);
            y.bool(k!("repeated_access"), *repeated_access);
            y.bool(k!("synchronous"), *synchronous);
            y.end();
        }
        Some(other) => x.serde(k!("config"), other),
        None => {}
    }
    x.opt_str(
        k!("configuration_extension"),
        t.configuration_extension.as_deref(),
    );
    x.opt_uint(k!("encrypted_blocks"), t.encrypted_blocks.map(u64::from));
    x.opt_uint(k!("encrypted_bytes"), t.encrypted_bytes.map(|n| n as u64));
    x.opt_uint(k!("key_version"), t.key_version.map(u64::from));
    x.opt_uint(k!("message_counter"), t.message_counter.map(u64::from));
    if let Some(m) = &t.meter {
        address(&mut x, k!("meter"), m);
    }
    x.end();
}

fn security(o: &mut Obj<'_>, s: &SecurityReport) {
    let mut x = o.object(k!("security"));
    x.uint(k!("mode"), u64::from(s.mode));
    x.str(k!("result"), s.result);
    x.str(k!("direction"), s.direction);
    x.opt_str(k!("ell"), s.ell);
    x.opt_uint(k!("key_id"), s.key_id.map(u64::from));
    x.opt_uint(k!("key_version"), s.key_version.map(u64::from));
    x.opt_uint(k!("kdf"), s.kdf.map(u64::from));
    x.opt_uint(k!("counter"), s.counter.map(u64::from));
    x.opt_uint(k!("last_counter"), s.last_counter.map(u64::from));
    x.bool(k!("key_configured"), s.key_configured);
    x.opt_uint(k!("fragments"), s.fragments.map(u64::from));
    x.opt_str(k!("note"), s.note);
    x.opt_str(k!("iv"), s.iv.as_deref());
    x.opt_str(k!("ell_counter_block"), s.ell_counter_block.as_deref());
    x.opt_str(k!("mac_received"), s.mac_received.as_deref());
    x.opt_str(k!("mac_computed"), s.mac_computed.as_deref());
    x.opt_str(
        k!("derived_encryption_key"),
        s.derived_encryption_key.as_deref(),
    );
    x.opt_str(k!("derived_mac_key"), s.derived_mac_key.as_deref());
    x.end();
}

fn record(out: &mut Vec<u8>, r: &RecordReport) {
    let mut x = Obj::new(out);
    x.str(k!("quantity"), r.quantity);
    x.key(k!("value"));
    match &r.value {
        JsonValue::Integer(i) => integer(x.out, *i),
        JsonValue::Number(f) => {
            float(x.out, *f).ok(); // a Vec takes every write
        }
        JsonValue::Text(s) => string(x.out, s),
        JsonValue::Null => x.out.extend_from_slice(b"null"),
    }
    x.str_or_null(k!("unit"), r.unit);
    x.str(k!("function"), r.function);
    x.uint(k!("storage"), r.storage);
    x.uint(k!("tariff"), u64::from(r.tariff));
    x.uint(k!("subunit"), u64::from(r.subunit));
    x.hex(k!("dif"), &r.dif);
    x.hex(k!("vif"), &r.vif);
    if !r.annotations.is_empty() {
        x.key(k!("annotations"));
        strings(x.out, r.annotations.iter().map(String::as_str));
    }
    x.opt_str(k!("unit_text"), r.unit_text.as_deref());
    x.opt_str(k!("record_error"), r.record_error);
    if r.invalid {
        x.bool(k!("invalid"), true);
    }
    x.opt_str(k!("raw"), r.raw.as_deref());
    x.opt_str(k!("time"), r.time.as_deref());
    x.opt_uint(k!("profile_index"), r.profile_index.map(|n| n as u64));
    x.uint(k!("offset"), r.offset as u64);
    x.end();
}

/// A JSON object being written: commas between members.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn end(self) {
        self.out.push(b'}');
    }

    /// Writes `,"key":` from [`k!`]'s literal, without the comma for the first member.
    fn key(&mut self, key: &'static str) {
        let key = if self.first {
            self.first = false;
            key.get(1..).unwrap_or(key)
        } else {
            key
        };
        self.out.extend_from_slice(key.as_bytes());
    }

    fn object(&mut self, key: &'static str) -> Obj<'_> {
        self.key(key);
        Obj::new(self.out)
    }

    fn str(&mut self, key: &'static str, v: &str) {
        self.key(key);
        string(self.out, v);
    }

    /// A string our hex writers made (digits only): copied without the escape check. Anything
    /// else still goes through [`string`].
    fn hex(&mut self, key: &'static str, v: &str) {
        self.key(key);
        if v.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.out.push(b'"');
            self.out.extend_from_slice(v.as_bytes());
            self.out.push(b'"');
        } else {
            string(self.out, v);
        }
    }

    fn opt_str(&mut self, key: &'static str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(key, v);
        }
    }

    fn str_or_null(&mut self, key: &'static str, v: Option<&str>) {
        match v {
            Some(v) => self.str(key, v),
            None => {
                self.key(key);
                self.out.extend_from_slice(b"null");
            }
        }
    }

    fn strs(&mut self, key: &'static str, v: &[&str]) {
        self.key(key);
        strings(self.out, v.iter().copied());
    }

    fn uint(&mut self, key: &'static str, v: u64) {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    fn opt_uint(&mut self, key: &'static str, v: Option<u64>) {
        if let Some(v) = v {
            self.uint(key, v);
        }
    }

    fn uint_or_null(&mut self, key: &'static str, v: Option<u64>) {
        match v {
            Some(v) => self.uint(key, v),
            None => {
                self.key(key);
                self.out.extend_from_slice(b"null");
            }
        }
    }

    fn float(&mut self, key: &'static str, v: f64) {
        self.key(key);
        float(self.out, v).ok(); // a Vec takes every write
    }

    fn bool(&mut self, key: &'static str, v: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    /// A rarely present member, through `serde_json`.
    fn serde(&mut self, key: &'static str, v: &impl serde::Serialize) {
        self.key(key);
        if serde_json::to_writer(&mut *self.out, v).is_err() {
            self.out.extend_from_slice(b"null");
        }
    }
}

fn integer(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// As `serde_json` writes an `f64`: shortest round-trip form, `null` when not finite. Fails
/// only when `out` does (never for a `Vec`).
pub(crate) fn float(out: &mut impl std::io::Write, v: f64) -> std::io::Result<()> {
    if v.is_finite() {
        CompactFormatter.write_f64(out, v)
    } else {
        out.write_all(b"null")
    }
}

fn strings<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, s);
    }
    out.push(b']');
}

/// A JSON string: copied as is when nothing needs escaping (hex, names: the usual case), else
/// escaped as `serde_json` escapes.
pub(crate) fn string(out: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        if serde_json::to_writer(&mut *out, s).is_err() {
            out.extend_from_slice(b"null");
        }
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Whether any byte is a control character, `"` or `\`: eight bytes at a time.
pub(crate) fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let (chunks, rest) = s.as_chunks::<8>();
    for chunk in chunks {
        let x = u64::from_le_bytes(*chunk);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0;
        if below_space
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    rest.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-wide test agrees with the byte-wise one at every position and byte value.
    #[test]
    fn needs_escape_matches_bytewise() {
        for len in 0..20 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    let expected = v.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
                    assert_eq!(needs_escape(&v), expected, "{v:?}");
                }
            }
        }
    }
}
