//! The JSON line of a common telegram written straight from its decoded layers, without
//! building a [`crate::Report`]: the hot path of `wmbus decode --format json`
//! (docs/PERFORMANCE.md).
//!
//! Common means: a wireless frame read exactly (no trailing bytes), with or without an ELL
//! (its encryption included) and an unfragmented AFL; a transport layer in modes 0 to 7 (no
//! mode 9, 10 or 13 fields); opened with status "ok" and nothing to remark; a record list
//! whose records carry numbers, dates, times, digits or manufacturer codes (no plain-text
//! units, variable lengths or compact profiles), manufacturer data after them allowed.
//! Anything else returns `None` and the caller goes through the report. For every telegram
//! of the test data the line equals [`crate::json::write_report`] of its report byte for byte
//! (`tests/direct_json.rs`).

use core::ops::Range;
use wmbus_frame::apl::value::{Date, Time, Value, le_unsigned};

use wmbus_frame::apl::dib::DataField;
use wmbus_frame::apl::vib::{Coding, Description, Modifier, VifTable};
use wmbus_frame::apl::{Item, Record, Records};
use wmbus_frame::codepoints::{ApplicationContent, Ident, ManufacturerCode, TplHeaderKind};
use wmbus_frame::dll::Normalized;
use wmbus_frame::ell::EllRepr;
use wmbus_frame::frame::{Frame, Link};
use wmbus_frame::tpl::ModeFields;
use wmbus_security::reassembly::AflAuth;
use wmbus_security::receiver::Opened;

use crate::report::{Reception, Source};

/// One decoded telegram and what its line carries besides.
#[derive(Debug)]
pub struct Line<'a> {
    /// Where the input came from.
    pub source: Option<&'a Source>,
    /// What the receiver said.
    pub reception: &'a Reception,
    /// How the frame was normalised.
    pub normalized: Normalized,
    /// The parsed frame.
    pub frame: &'a Frame<'a>,
    /// The security outcome.
    pub opened: &'a Opened,
    /// The plaintext buffer `opened` refers to.
    pub plain: &'a [u8],
    /// Whether a key is configured for the meter.
    pub key_configured: bool,
}

/// `,"key":` as one literal.
macro_rules! k {
    ($key:literal) => {
        concat!(",\"", $key, "\":").as_bytes()
    };
}

/// `"key":` as one literal, for an object's first member.
macro_rules! first {
    ($key:literal) => {
        concat!("\"", $key, "\":").as_bytes()
    };
}

/// The line being written into a fixed buffer: one bounds check per piece and no growth
/// checks; a line that does not fit is not common (`None`).
struct Cursor<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Cursor<'_> {
    #[inline(always)]
    fn put(&mut self, s: &[u8]) -> Option<()> {
        let end = self.len.checked_add(s.len())?;
        self.buf.get_mut(self.len..end)?.copy_from_slice(s);
        self.len = end;
        Some(())
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) -> Option<()> {
        *self.buf.get_mut(self.len)? = b;
        self.len += 1;
        Some(())
    }

    /// An unsigned integer; one and two digits without the general formatter.
    #[inline(always)]
    fn uint(&mut self, v: u64) -> Option<()> {
        if v < 10 {
            self.byte(b'0' + v as u8)
        } else if v < 100 {
            self.put(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
        } else {
            self.put(itoa::Buffer::new().format(v).as_bytes())
        }
    }

    fn int(&mut self, v: i64) -> Option<()> {
        self.put(itoa::Buffer::new().format(v).as_bytes())
    }

    fn bool(&mut self, v: bool) -> Option<()> {
        self.put(if v { b"true" } else { b"false" })
    }

    /// As `serde_json` writes an `f64` (`null` when not finite).
    fn float(&mut self, v: f64) -> Option<()> {
        crate::json::float(self, v).ok()
    }

    /// Upper-case hex.
    fn hex(&mut self, b: &[u8]) -> Option<()> {
        let end = self.len.checked_add(b.len().checked_mul(2)?)?;
        crate::records::hex_into(self.buf.get_mut(self.len..end)?, b);
        self.len = end;
        Some(())
    }

    /// A quoted string, escaped as `serde_json` escapes it.
    fn string(&mut self, s: &str) -> Option<()> {
        if crate::json::needs_escape(s.as_bytes()) {
            let mut scratch = Vec::with_capacity(s.len() + 8);
            crate::json::string(&mut scratch, s);
            self.put(&scratch)
        } else {
            self.byte(b'"')?;
            self.put(s.as_bytes())?;
            self.byte(b'"')
        }
    }

    /// A quoted name from this stack's tables (snake case: nothing to escape, see the test).
    #[inline(always)]
    fn name(&mut self, s: &str) -> Option<()> {
        self.byte(b'"')?;
        self.put(s.as_bytes())?;
        self.byte(b'"')
    }

    fn manufacturer(&mut self, m: ManufacturerCode) -> Option<()> {
        let [a, b, c] = m.letters();
        // '@' + 5 bits: ASCII from 40h to 5Fh, of which only '\' needs escaping.
        if [a, b, c].contains(&b'\\') {
            return self.string(core::str::from_utf8(&[a, b, c]).ok()?);
        }
        self.put(&[b'"', a, b, c, b'"'])
    }

    /// The identification number as printed on the meter: its 8 BCD digits (hex, lower
    /// case).
    fn ident(&mut self, i: Ident) -> Option<()> {
        const LOWER: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'"'; 10];
        for (n, slot) in text.iter_mut().skip(1).take(8).enumerate() {
            let nibble = (i.0 >> (28 - 4 * n)) & 0xF;
            *slot = *LOWER.get(nibble as usize)?;
        }
        self.put(&text)
    }

    fn address(&mut self, m: &wmbus_frame::codepoints::MeterAddress) -> Option<()> {
        self.put(first!("manufacturer"))?;
        self.manufacturer(m.manufacturer)?;
        self.put(k!("id"))?;
        self.ident(m.address.ident)?;
        self.put(k!("version"))?;
        self.uint(u64::from(m.address.version))?;
        self.put(k!("device_type"))?;
        self.uint(u64::from(m.address.device_type.0))
    }

    fn uint_or_null(&mut self, v: Option<impl Into<u64>>) -> Option<()> {
        match v {
            Some(v) => self.uint(v.into()),
            None => self.put(b"null"),
        }
    }

    fn opt_uint(&mut self, key: &[u8], v: Option<impl Into<u64>>) -> Option<()> {
        match v {
            Some(v) => {
                self.put(key)?;
                self.uint(v.into())
            }
            None => Some(()),
        }
    }
}

/// Writes past the end of the buffer fail (the line is then not common).
impl std::io::Write for Cursor<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.put(buf)
            .map(|()| buf.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::WriteZero))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends the JSON line (with its newline) when the telegram is common, returning the
/// format signature of its record list (EN 13757-3 Annex G) for the compact-frame cache;
/// `None`, with nothing appended, when it is not. `scratch` is working space (any length;
/// 16 KiB holds every common line).
pub fn write(
    out: &mut Vec<u8>,
    scratch: &mut [u8],
    layouts: &mut Layouts,
    l: &Line<'_>,
) -> Option<Option<u16>> {
    let mut c = Cursor {
        buf: scratch,
        len: 0,
    };
    let signature = line(&mut c, layouts, l)?;
    out.extend_from_slice(c.buf.get(..c.len)?);
    Some(signature)
}

fn line(c: &mut Cursor<'_>, layouts: &mut Layouts, l: &Line<'_>) -> Option<Option<u16>> {
    let frame = l.frame;
    let o = l.opened;
    let Link::Wireless(dll) = &frame.repr.link else {
        return None;
    };
    let d = &o.details;
    if l.normalized.trailing != 0
        || !o.result.is_released()
        || d.note.is_some()
        || d.fragments.is_some()
    {
        return None;
    }
    let t = o.tpl.or(frame.repr.transport.tpl)?;
    if t.ci.content() != Some(ApplicationContent::Records)
        || t.header
            .is_some_and(|h| !matches!(h.mode_fields, ModeFields::None | ModeFields::Mode7 { .. }))
    {
        return None;
    }
    let application = l.plain.get(o.application.clone())?;
    c.byte(b'{')?;
    // The first member has no comma.
    let mut comma = false;
    let mut key = |c: &mut Cursor<'_>, k: &[u8]| {
        if comma {
            c.put(k)
        } else {
            comma = true;
            c.put(k.get(1..)?)
        }
    };
    if let Some(s) = l.source {
        key(c, k!("source"))?;
        c.byte(b'{')?;
        match &s.file {
            Some(f) => {
                c.put(first!("file"))?;
                c.string(f)?;
                c.put(k!("line"))?;
            }
            None => c.put(first!("line"))?,
        }
        c.uint(s.line as u64)?;
        c.byte(b'}')?;
    }
    let rx = l.reception;
    if !rx.is_empty() {
        if let Some(v) = rx.rssi {
            key(c, k!("rssi"))?;
            c.float(v)?;
        }
        if let Some(u) = rx.rssi_unit {
            key(c, k!("rssi_unit"))?;
            c.string(u)?;
        }
        if let Some(m) = &rx.link_mode {
            key(c, k!("link_mode"))?;
            c.string(m)?;
        }
        if let Some(t) = &rx.time {
            key(c, k!("time"))?;
            c.string(t)?;
        }
    }
    match o.meter.or_else(|| frame.meter()) {
        Some(m) => {
            key(c, k!("manufacturer"))?;
            c.manufacturer(m.manufacturer)?;
            c.put(k!("id"))?;
            c.ident(m.address.ident)?;
            c.put(k!("version"))?;
            c.uint(u64::from(m.address.version))?;
            c.put(k!("device_type"))?;
            c.uint(u64::from(m.address.device_type.0))?;
            c.put(k!("device_type_name"))?;
            c.name(m.address.device_type.name())?;
        }
        None => key(
            c,
            concat!(
                ",\"manufacturer\":null,\"id\":null,\"version\":null,",
                "\"device_type\":null,\"device_type_name\":null"
            )
            .as_bytes(),
        )?,
    }
    key(c, k!("status"))?;
    c.put(b"\"ok\"")?;
    // The link layer.
    c.put(k!("link"))?;
    c.put(b"{\"c_field\":")?;
    c.byte(b'"')?;
    c.hex(&[dll.control.0])?;
    c.byte(b'"')?;
    if let Some(n) = dll.control.name() {
        c.put(k!("c_field_name"))?;
        c.name(n)?;
    }
    c.put(k!("manufacturer"))?;
    c.manufacturer(dll.address.manufacturer)?;
    c.put(k!("id"))?;
    c.ident(dll.address.address.ident)?;
    c.put(k!("version"))?;
    c.uint(u64::from(dll.address.address.version))?;
    c.put(k!("device_type"))?;
    c.uint(u64::from(dll.address.address.device_type.0))?;
    c.put(k!("frame_format"))?;
    c.name(l.normalized.format.name())?;
    c.byte(b'}')?;
    if let Some(e) = &frame.repr.ell {
        ell(c, e)?;
    }
    let fragment_control = frame.repr.transport.afl.map(|a| a.fragment_control());
    if let Some(a) = o
        .afl
        .or_else(|| frame.repr.transport.afl.map(|a| AflAuth::from_repr(&a)))
    {
        afl(c, &a, fragment_control)?;
    }
    // The transport layer.
    let security_mode = t.security_mode().0;
    c.put(k!("tpl"))?;
    c.put(b"{\"ci\":\"")?;
    c.hex(&[t.ci.0])?;
    c.byte(b'"')?;
    c.put(k!("ci_name"))?;
    c.name(t.ci.description())?;
    c.put(k!("header"))?;
    c.put(match t.ci.tpl_header().unwrap_or(TplHeaderKind::None) {
        TplHeaderKind::None => b"\"none\"",
        TplHeaderKind::Short => b"\"short\"",
        _ => b"\"long\"",
    })?;
    if let Some(h) = t.header {
        c.put(k!("access_number"))?;
        c.uint(u64::from(h.access_number))?;
        c.put(k!("status"))?;
        c.uint(u64::from(h.status.0))?;
        c.put(k!("status_flags"))?;
        c.byte(b'{')?;
        c.put(first!("application"))?;
        c.name(h.status.application_name())?;
        c.put(k!("power_low"))?;
        c.bool(h.status.power_low())?;
        c.put(k!("permanent_error"))?;
        c.bool(h.status.permanent_error())?;
        c.put(k!("temporary_error"))?;
        c.bool(h.status.temporary_error())?;
        c.put(k!("manufacturer"))?;
        c.uint(u64::from(h.status.manufacturer_bits()))?;
        c.byte(b'}')?;
    }
    c.put(k!("security_mode"))?;
    c.uint(u64::from(security_mode))?;
    if let Some(h) = t.header {
        let cf = h.config;
        c.put(k!("configuration"))?;
        c.byte(b'"')?;
        c.hex(&cf.0.to_le_bytes())?;
        c.byte(b'"')?;
        c.put(k!("config"))?;
        match h.mode_fields {
            ModeFields::Mode7 {
                extension,
                key_version,
                message_counter,
            } => {
                // The report's ConfigReport::Mode7, keys in alphabetical order.
                c.put(b"{\"content\":")?;
                c.uint(u64::from(cf.content_high()))?;
                c.put(k!("content_index"))?;
                c.uint(u64::from(cf.content_index()))?;
                c.put(k!("counter_in_tpl"))?;
                c.bool(cf.bit13())?;
                c.put(k!("encrypted_blocks"))?;
                c.uint(u64::from(cf.encrypted_blocks()))?;
                c.put(k!("kdf_selection"))?;
                c.uint(u64::from(extension.kdf_selection()))?;
                c.put(k!("key_id"))?;
                c.uint(u64::from(extension.key_id()))?;
                c.put(k!("key_version"))?;
                c.uint_or_null(key_version)?;
                c.put(k!("message_counter"))?;
                c.uint_or_null(message_counter)?;
                c.put(k!("padding"))?;
                c.bool(cf.padding())?;
                c.byte(b'}')?;
                c.put(k!("configuration_extension"))?;
                c.byte(b'"')?;
                // One byte in mode 7 (`{:02X}` in the report).
                c.hex(&[u8::try_from(extension.0).ok()?])?;
                c.byte(b'"')?;
                c.put(k!("encrypted_blocks"))?;
                c.uint(u64::from(cf.encrypted_blocks()))?;
                c.opt_uint(k!("key_version"), key_version)?;
                c.opt_uint(k!("message_counter"), message_counter)?;
            }
            _ => {
                c.put(b"{\"accessibility\":")?;
                c.bool(cf.accessibility())?;
                c.put(k!("bidirectional"))?;
                c.bool(cf.bidirectional())?;
                c.put(k!("content"))?;
                c.uint(u64::from(cf.content_low()))?;
                c.put(k!("encrypted_blocks"))?;
                c.uint(u64::from(cf.encrypted_blocks()))?;
                c.put(k!("hop_count"))?;
                c.bool(cf.hop_count())?;
                c.put(k!("repeated_access"))?;
                c.bool(cf.repeated_access())?;
                c.put(k!("synchronous"))?;
                c.bool(cf.synchronous())?;
                c.byte(b'}')?;
                if matches!(cf.mode().0, 2 | 3 | 5) {
                    c.put(k!("encrypted_blocks"))?;
                    c.uint(u64::from(cf.encrypted_blocks()))?;
                }
            }
        }
        if let Some(m) = h.meter {
            c.put(k!("meter"))?;
            c.byte(b'{')?;
            c.address(&m)?;
            c.byte(b'}')?;
        }
    }
    c.byte(b'}')?;
    c.put(k!("security_mode"))?;
    c.uint(u64::from(security_mode))?;
    // The security outcome (the members a released, unremarkable telegram has).
    c.put(k!("security"))?;
    c.put(b"{\"mode\":")?;
    c.uint(u64::from(security_mode))?;
    c.put(k!("result"))?;
    c.name(o.result.name())?;
    c.put(k!("direction"))?;
    c.name(o.direction.name())?;
    if let Some(e) = &frame.repr.ell
        && e.is_encrypted()
    {
        c.put(k!("ell"))?;
        c.name(if d.ell_decrypted {
            "decrypted"
        } else {
            o.result.name()
        })?;
    }
    c.opt_uint(k!("key_id"), d.key_id)?;
    c.opt_uint(k!("key_version"), d.key_version)?;
    c.opt_uint(k!("kdf"), d.kdf_selection)?;
    c.opt_uint(k!("counter"), d.counter)?;
    c.put(k!("key_configured"))?;
    c.bool(l.key_configured)?;
    if let Some(mac) = d.mac_received {
        c.put(k!("mac_received"))?;
        c.byte(b'"')?;
        c.hex(mac.as_slice())?;
        c.byte(b'"')?;
    }
    c.byte(b'}')?;
    c.put(k!("payload_hex"))?;
    c.byte(b'"')?;
    c.hex(application)?;
    c.byte(b'"')?;
    c.put(k!("records"))?;
    let signature = records(c, application, layouts)?;
    c.put(k!("frame_hex"))?;
    c.byte(b'"')?;
    c.hex(frame.bytes)?;
    c.put(b"\"}\n")?;
    Some(signature)
}

/// Most record-list layouts kept (most recently learned first).
const LAYOUTS: usize = 16;

/// Record-list layouts learned from telegrams written the direct way. A telegram whose
/// application layer equals a learned one in every byte but the records' data (the same
/// headers at the same offsets, the same fillers) has the same records: only the values
/// change, so its line is the learned JSON around freshly decoded values, without reading
/// the record headers again. Meters send the same layout telegram after telegram.
#[derive(Debug, Clone, Default)]
pub struct Layouts {
    list: Vec<Layout>,
}

impl Layouts {
    /// Layouts kept.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn find(&self, application: &[u8]) -> Option<&Layout> {
        self.list.iter().find(|l| l.matches(application))
    }

    fn learn(&mut self, layout: Layout) {
        self.list.truncate(LAYOUTS - 1);
        self.list.insert(0, layout);
    }
}

/// One record-list layout.
#[derive(Debug, Clone)]
struct Layout {
    /// The application layer with every data byte zero.
    pattern: Vec<u8>,
    /// 0xFF where a byte must equal the pattern, 0 over the records' data.
    mask: Vec<u8>,
    /// The records.
    slots: Vec<Slot>,
    /// The JSON around the values.
    text: Vec<u8>,
    /// The text after the last value.
    tail: Range<usize>,
    /// Where manufacturer data starts (after DIF 0Fh or 1Fh), and whether more records follow
    /// (1Fh).
    manufacturer_data: Option<(usize, bool)>,
    /// The format signature of the headers.
    signature: Option<u16>,
}

impl Layout {
    fn matches(&self, application: &[u8]) -> bool {
        if application.len() != self.pattern.len() {
            return false;
        }
        let (a, a_tail) = application.as_chunks::<8>();
        let (p, p_tail) = self.pattern.as_chunks::<8>();
        let (m, m_tail) = self.mask.as_chunks::<8>();
        let mut differ = 0u64;
        for ((a, p), m) in a.iter().zip(p).zip(m) {
            differ |= (u64::from_le_bytes(*a) & u64::from_le_bytes(*m)) ^ u64::from_le_bytes(*p);
        }
        for ((a, p), m) in a_tail.iter().zip(p_tail).zip(m_tail) {
            differ |= u64::from((a & m) ^ p);
        }
        differ == 0
    }
}

/// A record of a layout: where its data is, how to read it, and the JSON between the
/// previous value and its own (a range of [`Layout::text`]).
#[derive(Debug, Clone)]
struct Slot {
    data: Range<usize>,
    data_field: DataField,
    coding: Coding,
    exponent: i8,
    /// The text since the previous value (or the list's start).
    before: Range<usize>,
}

/// The AFL (EN 13757-7 §6), as the report's `AflReport` gives it.
fn afl(c: &mut Cursor<'_>, a: &AflAuth, fragment_control: Option<u16>) -> Option<()> {
    c.put(k!("afl"))?;
    c.put(b"{\"fragment_control\":\"")?;
    if let Some(f) = fragment_control {
        c.hex(&f.to_be_bytes())?;
    }
    c.byte(b'"')?;
    c.put(k!("fragment_id"))?;
    c.uint(u64::from(a.fragment_id))?;
    c.put(k!("more_fragments"))?;
    c.bool(a.more_fragments)?;
    if let Some(m) = a.message_control {
        c.put(k!("message_control"))?;
        c.byte(b'"')?;
        c.hex(&[m.0])?;
        c.byte(b'"')?;
        c.put(k!("authentication_type"))?;
        c.uint(u64::from(m.authentication_type().0))?;
        c.put(k!("authentication"))?;
        c.string(m.authentication_type().name())?;
    }
    if let Some(k) = a.key_information {
        c.put(k!("key_information"))?;
        c.byte(b'"')?;
        c.hex(&k.0.to_be_bytes())?;
        c.byte(b'"')?;
    }
    c.opt_uint(k!("message_counter"), a.message_counter)?;
    c.opt_uint(k!("message_length"), a.message_length)?;
    if let Some(mac) = a.mac() {
        c.put(k!("mac"))?;
        c.byte(b'"')?;
        c.hex(mac)?;
        c.byte(b'"')?;
    }
    c.byte(b'}')
}

/// The ELL (EN 13757-4 §13.2), as the report's `EllReport` gives it.
fn ell(c: &mut Cursor<'_>, e: &EllRepr) -> Option<()> {
    let cc = e.communication_control;
    c.put(k!("ell"))?;
    c.put(b"{\"ci\":\"")?;
    c.hex(&[e.ci().0])?;
    c.put(b"\",\"communication_control\":\"")?;
    c.hex(&[cc.0])?;
    c.put(b"\",\"communication_control_bits\":[")?;
    let mut any = false;
    for name in crate::decoder::communication_control_bits(cc) {
        if any {
            c.byte(b',')?;
        }
        any = true;
        c.name(name)?;
    }
    c.byte(b']')?;
    c.put(k!("access_number"))?;
    c.uint(u64::from(e.access_number))?;
    if let Some(a) = &e.address {
        c.put(k!("address"))?;
        c.byte(b'{')?;
        c.address(a)?;
        c.byte(b'}')?;
    }
    if let Some(sn) = e.session_number {
        c.put(k!("session_number"))?;
        c.put(b"{\"encryption\":")?;
        c.uint(u64::from(sn.encryption()))?;
        c.put(k!("time"))?;
        c.uint(u64::from(sn.time()))?;
        c.put(k!("session"))?;
        c.uint(u64::from(sn.session()))?;
        c.byte(b'}')?;
    }
    c.byte(b'}')
}

/// The record list; `None` when some record is not common. Returns the format signature.
fn records(c: &mut Cursor<'_>, application: &[u8], layouts: &mut Layouts) -> Option<Option<u16>> {
    if let Some(layout) = layouts.find(application) {
        for s in &layout.slots {
            c.put(layout.text.get(s.before.clone())?)?;
            let data = application.get(s.data.clone())?;
            value(
                c,
                wmbus_frame::apl::value::decode(s.data_field, s.coding, data),
                s.exponent,
                data.is_empty(),
            )?;
        }
        c.put(layout.text.get(layout.tail.clone())?)?;
        if let Some((start, more_follow)) = layout.manufacturer_data {
            manufacturer_data(c, application.get(start..)?, more_follow)?;
        }
        return Some(layout.signature);
    }
    let mut layout = Layout {
        pattern: application.to_vec(),
        mask: vec![0xFF; application.len()],
        slots: Vec::with_capacity(16),
        text: Vec::with_capacity(2048),
        tail: 0..0,
        manufacturer_data: None,
        signature: None,
    };
    let mut digest = wmbus_frame::crc::EN_13757.digest();
    let mut any = false;
    // The text since the last value: what goes before the next one.
    let mut since = c.len;
    c.byte(b'[')?;
    for item in Records::new(application, 0) {
        let r = match item {
            Ok(Item::Record(r)) => r,
            // DIF 0Fh/1Fh: the rest is the manufacturer's, data like the records'.
            Ok(Item::ManufacturerData {
                offset,
                more_follow,
                ..
            }) => {
                let data = offset + 1..application.len();
                layout.pattern.get_mut(data.clone())?.fill(0);
                layout.mask.get_mut(data)?.fill(0);
                layout.manufacturer_data = Some((offset + 1, more_follow));
                break;
            }
            _ => return None,
        };
        let data_start = r.offset + r.header_len();
        digest.update(application.get(r.offset..data_start)?);
        if any {
            c.byte(b',')?;
        }
        any = true;
        let desc = record_head(c, &r)?;
        let before = layout.text.len()..layout.text.len() + (c.len - since);
        layout.text.extend_from_slice(c.buf.get(since..c.len)?);
        value(c, r.value(), desc.exponent, r.data.is_empty())?;
        since = c.len;
        record_tail(c, &r, &desc)?;
        let data = data_start..data_start + r.data.len();
        layout.pattern.get_mut(data.clone())?.fill(0);
        layout.mask.get_mut(data.clone())?.fill(0);
        layout.slots.push(Slot {
            data,
            data_field: r.dib.data_field,
            coding: desc.coding,
            exponent: desc.exponent,
            before,
        });
    }
    c.byte(b']')?;
    layout.tail = layout.text.len()..layout.text.len() + (c.len - since);
    layout.text.extend_from_slice(c.buf.get(since..c.len)?);
    layout.signature = any.then(|| digest.finalize());
    if let Some((start, more_follow)) = layout.manufacturer_data {
        manufacturer_data(c, application.get(start..)?, more_follow)?;
    }
    let signature = layout.signature;
    layouts.learn(layout);
    Some(signature)
}

/// Manufacturer data after the record list, as the report gives it.
fn manufacturer_data(c: &mut Cursor<'_>, data: &[u8], more_follow: bool) -> Option<()> {
    c.put(k!("manufacturer_data"))?;
    c.byte(b'"')?;
    c.hex(data)?;
    c.byte(b'"')?;
    if more_follow {
        c.put(b",\"more_records_follow\":true")?;
    }
    Some(())
}

/// A record up to its value (as [`crate::records::record_report`] and the JSON writer give
/// it); `None` when it is not common.
fn record_head(c: &mut Cursor<'_>, r: &Record<'_>) -> Option<Description> {
    if r.vib.plain_text.is_some()
        || r.vib.table() == VifTable::PlainText
        || r.lvar.is_some()
        || r.vib
            .modifiers()
            .any(|m| matches!(m, Modifier::CompactProfile(_)))
    {
        return None;
    }
    let desc = r.describe();
    if desc.coding == Coding::Raw {
        return None;
    }
    c.put(b"{\"quantity\":")?;
    c.name(desc.quantity)?;
    c.put(k!("value"))?;
    Some(desc)
}

/// A record's value; `None` when it is not common (the report's way names it invalid, or
/// keeps the raw bytes).
fn value(c: &mut Cursor<'_>, v: Value<'_>, exponent: i8, no_data: bool) -> Option<()> {
    match v {
        Value::Signed(v) => number(c, i128::from(v), exponent),
        Value::Unsigned(v) => number(c, i128::from(v), exponent),
        Value::Bits(v) => c.int(i64::try_from(v).ok()?),
        Value::Real(v) => {
            let f = f64::from(v) * 10f64.powi(i32::from(exponent));
            if !f.is_finite() {
                return None;
            }
            c.float(f)
        }
        Value::Date(d) => {
            c.byte(b'"')?;
            date(c, &d)?;
            c.byte(b'"')
        }
        Value::DateTime(d) => {
            c.byte(b'"')?;
            date(c, &d.date)?;
            c.byte(b'T')?;
            time(c, &d.time)?;
            c.byte(b'"')
        }
        Value::Time(t) => {
            c.byte(b'"')?;
            time(c, &t)?;
            c.byte(b'"')
        }
        Value::Digits(b, df) if df.is_bcd() => {
            c.byte(b'"')?;
            for byte in b.iter().rev() {
                for n in [byte >> 4, byte & 0x0F] {
                    if n > 9 {
                        return None;
                    }
                    c.byte(b'0' + n)?;
                }
            }
            c.byte(b'"')
        }
        Value::Digits(b, _) => {
            c.byte(b'"')?;
            c.uint(le_unsigned(b))?;
            c.byte(b'"')
        }
        Value::Manufacturer(m) => c.manufacturer(m),
        Value::Empty if no_data => c.put(b"null"),
        _ => None,
    }
}

/// A record after its value.
fn record_tail(c: &mut Cursor<'_>, r: &Record<'_>, desc: &Description) -> Option<()> {
    match desc.unit {
        Some(u) => {
            c.put(k!("unit"))?;
            c.name(u)?;
        }
        None => c.put(b",\"unit\":null")?,
    }
    c.put(k!("function"))?;
    c.name(r.dib.function.name())?;
    c.put(k!("storage"))?;
    c.uint(r.dib.storage)?;
    c.put(k!("tariff"))?;
    c.uint(u64::from(r.dib.tariff))?;
    c.put(k!("subunit"))?;
    c.uint(u64::from(r.dib.subunit))?;
    c.put(k!("dif"))?;
    c.byte(b'"')?;
    c.hex(r.dib_raw)?;
    c.put(b"\",\"vif\":\"")?;
    c.hex(r.vib.raw)?;
    c.byte(b'"')?;
    if r.vib.raw.len() > 1 {
        modifiers(c, r)?;
    }
    c.put(k!("offset"))?;
    c.uint(r.offset as u64)?;
    c.byte(b'}')
}

/// What the VIFEs add, as [`crate::records::record_report`] lists them.
fn modifiers(c: &mut Cursor<'_>, r: &Record<'_>) -> Option<()> {
    let mut error = None;
    let mut any = false;
    for m in r.vib.modifiers() {
        let text = match m {
            Modifier::Scale(_) => continue,
            Modifier::Error(e) => {
                error = Some(e);
                continue;
            }
            Modifier::Annotation(a) => a,
            Modifier::ManufacturerSpecific => "manufacturer_specific_vife",
            Modifier::Unknown(code) => {
                c.put(if any { b"," } else { k!("annotations") })?;
                if !any {
                    c.byte(b'[')?;
                }
                any = true;
                c.put(b"\"vife_")?;
                c.hex(&[code])?;
                c.byte(b'"')?;
                continue;
            }
            Modifier::CompactProfile(_) => return None,
        };
        c.put(if any { b"," } else { k!("annotations") })?;
        if !any {
            c.byte(b'[')?;
        }
        any = true;
        c.string(text)?;
    }
    if any {
        c.byte(b']')?;
    }
    if let Some(e) = error {
        c.put(k!("record_error"))?;
        c.string(e)?;
    }
    Some(())
}

/// `raw × 10^exponent` as [`crate::records::scale`] gives it and the JSON writer writes it.
fn number(c: &mut Cursor<'_>, raw: i128, exponent: i8) -> Option<()> {
    if exponent < 0
        && let Ok(raw) = i64::try_from(raw)
        && let Some(written) = decimal(c, raw, exponent.unsigned_abs())
    {
        return written;
    }
    if exponent == 0
        && let Ok(raw) = i64::try_from(raw)
    {
        return c.int(raw);
    }
    match crate::records::scale(raw, exponent) {
        crate::report::JsonValue::Integer(i) => c.int(i),
        crate::report::JsonValue::Number(f) => c.float(f),
        _ => None,
    }
}

/// Powers of ten up to 10^15.
const POW10: [u64; 16] = {
    let mut t = [1u64; 16];
    let mut i = 1;
    while i < 16 {
        // invariant: i < 16.
        #[allow(clippy::indexing_slicing)]
        {
            t[i] = t[i - 1] * 10;
        }
        i += 1;
    }
    t
};

/// "00" to "99".
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut t = [[0u8; 2]; 100];
    let mut i = 0;
    while i < 100 {
        // invariant: i < 100.
        #[allow(clippy::indexing_slicing)]
        {
            t[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        }
        i += 1;
    }
    t
};

/// Writes `raw / 10^k` as its exact decimal, which is how `serde_json` writes the `f64`
/// nearest to it when that decimal has at most 15 significant digits (two such decimals are
/// never the same double, so the shortest round-trip form is the decimal itself) and
/// `serde_json` uses positional notation (a leading digit at 10^-5 or above). `None`, with
/// nothing written, outside that range; `Some` of the cursor's answer otherwise.
fn decimal(c: &mut Cursor<'_>, raw: i64, k: u8) -> Option<Option<()>> {
    const LIMIT: u64 = 1_000_000_000_000_000; // 10^15
    let magnitude = raw.unsigned_abs();
    if magnitude >= LIMIT || k == 0 || k > 15 {
        return None;
    }
    // The leading digit's power of ten must be -5 or above: magnitude ≥ 10^(k - 5).
    if magnitude != 0 && k > 5 && magnitude < 10u64.pow(u32::from(k) - 5) {
        return None;
    }
    // Right to left into a buffer: fraction without trailing zeros, point, integer, sign.
    // At most 1 + 15 + 1 + 15 characters.
    let scale = POW10.get(usize::from(k)).copied()?;
    let (mut int_part, mut frac) = (magnitude / scale, magnitude % scale);
    let mut frac_digits = usize::from(k);
    if frac == 0 {
        frac_digits = 1;
    } else {
        while frac % 10 == 0 {
            frac /= 10;
            frac_digits -= 1;
        }
    }
    let mut buf = [b'0'; 40];
    let mut at = buf.len();
    let end = at;
    while frac >= 10 {
        at -= 2;
        buf.get_mut(at..at + 2)?
            .copy_from_slice(DIGIT_PAIRS.get((frac % 100) as usize)?);
        frac /= 100;
    }
    if frac > 0 {
        at -= 1;
        *buf.get_mut(at)? = b'0' + frac as u8;
    }
    // Leading zeros of the fraction are the buffer's own.
    at = end - frac_digits - 1;
    *buf.get_mut(at)? = b'.';
    loop {
        if int_part >= 10 {
            at -= 2;
            buf.get_mut(at..at + 2)?
                .copy_from_slice(DIGIT_PAIRS.get((int_part % 100) as usize)?);
            int_part /= 100;
            if int_part == 0 {
                // The pair's leading zero belongs to no digit.
                if buf.get(at) == Some(&b'0') {
                    at += 1;
                }
                break;
            }
        } else {
            at -= 1;
            *buf.get_mut(at)? = b'0' + int_part as u8;
            break;
        }
    }
    if raw < 0 {
        at -= 1;
        *buf.get_mut(at)? = b'-';
    }
    Some(c.put(buf.get(at..)?))
}

/// At least `width` digits, as [`crate::records::date_text`] writes them.
fn digits(c: &mut Cursor<'_>, v: u32, width: usize) -> Option<()> {
    if width == 2 && v < 100 {
        return c.put(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
    }
    let (buf, i) = crate::records::padded_digits(v, width);
    c.put(buf.get(i..)?)
}

fn date(c: &mut Cursor<'_>, d: &Date) -> Option<()> {
    digits(c, u32::from(d.year), 4)?;
    c.byte(b'-')?;
    digits(c, u32::from(d.month), 2)?;
    c.byte(b'-')?;
    digits(c, u32::from(d.day), 2)
}

fn time(c: &mut Cursor<'_>, t: &Time) -> Option<()> {
    digits(c, u32::from(t.hour), 2)?;
    c.byte(b':')?;
    digits(c, u32::from(t.minute), 2)?;
    if let Some(s) = t.second {
        c.byte(b':')?;
        digits(c, u32::from(s), 2)?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::ser::{CompactFormatter, Formatter};
    use wmbus_frame::apl::dib::Function;
    use wmbus_frame::apl::vib::Vib;

    fn decimal_text(raw: i64, k: u8) -> Option<String> {
        let mut buf = [0u8; 64];
        let mut c = Cursor {
            buf: &mut buf,
            len: 0,
        };
        let answer = decimal(&mut c, raw, k);
        let len = c.len;
        match answer {
            Some(written) => {
                assert!(written.is_some(), "{raw} / 10^{k} did not fit");
                Some(String::from_utf8(buf[..len].to_vec()).unwrap())
            }
            None => {
                assert_eq!(len, 0);
                None
            }
        }
    }

    fn reference(raw: i64, k: u8) -> String {
        let mut out = Vec::new();
        let f = raw as f64 / 10f64.powi(i32::from(k));
        CompactFormatter.write_f64(&mut out, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimal_equals_serde_json_where_it_answers() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut answered = 0;
        for i in 0..400_000u64 {
            let digits = (next() % 17) as u32;
            let mut raw = (next() % 10u64.pow(digits).max(1)) as i64;
            if i % 3 == 0 {
                raw = -raw;
            }
            if i % 11 == 0 {
                raw = raw.saturating_mul(1000); // trailing zeros
            }
            let k = (next() % 18) as u8;
            if let Some(text) = decimal_text(raw, k) {
                answered += 1;
                assert_eq!(text, reference(raw, k), "{raw} / 10^{k}");
            }
        }
        assert!(answered > 200_000, "{answered}");
        for (raw, k) in [
            (0, 1),
            (0, 15),
            (1, 5),
            (1, 6),
            (-1, 5),
            (10, 6),
            (999_999_999_999_999, 1),
            (999_999_999_999_999, 15),
            (100_000_000_000_000, 15),
            (19960, 1),
            (1_234_571, 3),
        ] {
            if let Some(text) = decimal_text(raw, k) {
                assert_eq!(text, reference(raw, k));
            }
        }
    }

    /// Quantities, units and function names are written without the escape check.
    #[test]
    fn static_names_need_no_escaping() {
        let clean = |s: &str| {
            assert!(
                !s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\'),
                "{s:?}"
            );
        };
        for table in [None, Some(0xFBu8), Some(0xFD)] {
            for code in 0..=0xFFu8 {
                let raw = match table {
                    None => vec![code],
                    Some(t) => vec![t, code & 0x7F],
                };
                let d = Vib {
                    raw: &raw,
                    plain_text: None,
                }
                .describe();
                clean(d.quantity);
                if let Some(u) = d.unit {
                    clean(u);
                }
            }
        }
        for bits in 0..4 {
            clean(Function::from_bits(bits).name());
        }
        for b in 0..=0xFFu8 {
            clean(wmbus_frame::codepoints::DeviceType(b).name());
            clean(wmbus_frame::codepoints::CiField(b).description());
            clean(wmbus_frame::tpl::Status(b).application_name());
            if let Some(n) = wmbus_frame::codepoints::ControlField(b).name() {
                clean(n);
            }
        }
        for f in [
            wmbus_frame::dll::FrameFormat::A,
            wmbus_frame::dll::FrameFormat::B,
            wmbus_frame::dll::FrameFormat::NoCrc,
            wmbus_frame::dll::FrameFormat::Wired,
        ] {
            clean(f.name());
        }
        for result in [
            wmbus_security::receiver::SecurityResult::None,
            wmbus_security::receiver::SecurityResult::Decrypted,
            wmbus_security::receiver::SecurityResult::Authenticated,
            wmbus_security::receiver::SecurityResult::DecryptedByReceiver,
        ] {
            clean(result.name());
        }
        for d in [
            wmbus_security::kdf::Direction::MeterToPartner,
            wmbus_security::kdf::Direction::PartnerToMeter,
        ] {
            clean(d.name());
        }
    }
}
