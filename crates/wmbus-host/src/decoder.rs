//! The decode pipeline: input bytes to a [`Report`]. Normalise (CRCs), parse every plaintext
//! header, open (keys, MAC, decryption, replay), decode the application layer; every failure
//! becomes a status with a sentence naming its layer and offset, and the batch goes on.

use std::collections::HashMap;

use wmbus_frame::apl::compact::{self, CompactFrame, CompactRecords, FormatFrame};
use wmbus_frame::codepoints::{ApplicationContent, MeterAddress, SecurityMode, TplHeaderKind};
use wmbus_frame::dll::{DllRepr, FrameFormat, MAX_RAW_FRAME_LEN, Normalized};
use wmbus_frame::ell::EllRepr;
use wmbus_frame::frame::{Frame, Link, normalize};
use wmbus_frame::tpl::{ModeFields, TplRepr};
use wmbus_security::key::{KeyRequest, KeyStore, MemoryKeyStore};
use wmbus_security::reassembly::AflAuth;
use wmbus_security::receiver::{Opened, Receiver, ReceiverOptions, SecurityResult};
use wmbus_security::time::Instant;

use crate::records::{self, hex, hex_byte};
use crate::report::{
    AddressReport, AflReport, CompactReport, ConfigReport, EllReport, Layout, LinkReport,
    Reception, Report, SecurityReport, SessionReport, Source, StatusFlags, TplReport,
};

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Reject message counters that are not greater than the last accepted one.
    pub replay_check: bool,
    /// Keep IVs, nonces and computed MACs in the report (the analyze view).
    pub diagnostics: bool,
    /// With `diagnostics`: also the derived keys. Never on by default.
    pub show_keys: bool,
    /// Open the deprecated DES modes.
    pub allow_des: bool,
    /// Without a key, accept payloads a receiver already decrypted (flagged).
    pub accept_decrypted_by_receiver: bool,
    /// The frame format, when known; recognised from the length otherwise.
    pub frame_format: Option<FrameFormat>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            replay_check: true,
            diagnostics: false,
            show_keys: false,
            allow_des: false,
            accept_decrypted_by_receiver: true,
            frame_format: None,
        }
    }
}

/// Formats learned from full frames and format frames, by signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormatCache {
    formats: HashMap<u16, Vec<u8>>,
}

impl FormatCache {
    /// The format with this signature.
    pub fn get(&self, signature: u16) -> Option<&[u8]> {
        self.formats.get(&signature).map(Vec::as_slice)
    }

    /// Stores a format under its own signature; returns the signature.
    pub fn learn(&mut self, format: &[u8]) -> u16 {
        let s = compact::signature(format);
        self.formats.entry(s).or_insert_with(|| format.to_vec());
        s
    }

    /// Number of formats.
    pub fn len(&self) -> usize {
        self.formats.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.formats.is_empty()
    }

    /// The cache as text: one `SIGNATURE FORMAT` line per format, hex.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<String> = self
            .formats
            .iter()
            .map(|(s, f)| format!("{s:04X} {}\n", hex(f)))
            .collect();
        lines.sort();
        lines.concat()
    }

    /// Reads [`Self::to_text`] output; returns how many lines were skipped as invalid (a
    /// line whose format does not hash to its signature is invalid).
    pub fn load_text(&mut self, text: &str) -> usize {
        let mut bad = 0;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let ok = line.split_once(' ').and_then(|(s, f)| {
                let s = u16::from_str_radix(s, 16).ok()?;
                let f = hex::decode(f.trim()).ok()?;
                (compact::signature(&f) == s).then_some(f)
            });
            match ok {
                Some(f) => {
                    self.learn(&f);
                }
                None => bad += 1,
            }
        }
        bad
    }
}

/// The decoder: keys, replay state, fragments and compact formats across a run.
#[derive(Debug)]
pub struct Decoder {
    receiver: Receiver<MemoryKeyStore>,
    formats: FormatCache,
    options: DecodeOptions,
    plain: Vec<u8>,
    /// Working space of the direct JSON writer.
    scratch: Vec<u8>,
    /// Record-list layouts the direct JSON writer learned.
    layouts: crate::direct::Layouts,
}

fn address(m: &MeterAddress) -> AddressReport {
    AddressReport {
        manufacturer: records::manufacturer(m.manufacturer),
        id: records::ident(m.address.ident),
        version: m.address.version,
        device_type: m.address.device_type.0,
    }
}

fn link_report(link: &Link, format: FrameFormat) -> LinkReport {
    match link {
        Link::Wireless(d) => LinkReport {
            c_field: hex_byte(d.control.0),
            c_field_name: d.control.name(),
            manufacturer: Some(records::manufacturer(d.address.manufacturer)),
            id: Some(records::ident(d.address.address.ident)),
            version: Some(d.address.address.version),
            device_type: Some(d.address.address.device_type.0),
            primary_address: None,
            frame_format: format.name(),
        },
        Link::Wired(w) => LinkReport {
            c_field: hex_byte(w.control.0),
            c_field_name: w.control.name(),
            manufacturer: None,
            id: None,
            version: None,
            device_type: None,
            primary_address: Some(w.primary_address),
            frame_format: format.name(),
        },
    }
}

/// The names of the CC bits set (EN 13757-4 §13.2.2), in bit order from the highest.
pub(crate) fn communication_control_bits(
    cc: wmbus_frame::ell::CommunicationControl,
) -> impl Iterator<Item = &'static str> {
    [
        (cc.bidirectional(), "bidirectional"),
        (cc.response_delay(), "response_delay"),
        (cc.synchronized(), "synchronized"),
        (cc.hop_count(), "hop_count"),
        (cc.priority(), "priority"),
        (cc.accessibility(), "accessibility"),
        (cc.repeated_access(), "repeated_access"),
        (cc.extended(), "extended"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
}

fn ell_report(e: &EllRepr) -> EllReport {
    let cc = e.communication_control;
    EllReport {
        ci: format!("{:02X}", e.ci().0),
        communication_control: hex_byte(cc.0),
        communication_control_bits: communication_control_bits(cc).collect(),
        access_number: e.access_number,
        address: e.address.as_ref().map(address),
        session_number: e.session_number.map(|s| SessionReport {
            encryption: s.encryption(),
            time: s.time(),
            session: s.session(),
        }),
    }
}

fn afl_report(a: &AflAuth, fcl: Option<u16>) -> AflReport {
    AflReport {
        fragment_control: fcl.map_or_else(String::new, |f| format!("{f:04X}")),
        fragment_id: a.fragment_id,
        more_fragments: a.more_fragments,
        message_control: a.message_control.map(|m| hex_byte(m.0)),
        authentication_type: a.message_control.map(|m| m.authentication_type().0),
        authentication: a.message_control.map(|m| m.authentication_type().name()),
        key_information: a.key_information.map(|k| format!("{:04X}", k.0)),
        message_counter: a.message_counter,
        message_length: a.message_length,
        mac: a.mac().map(hex),
    }
}

fn config_json(t: &TplRepr) -> Option<ConfigReport> {
    let h = t.header?;
    let cf = h.config;
    Some(match h.mode_fields {
        ModeFields::Mode7 {
            extension,
            key_version,
            message_counter,
        } => ConfigReport::Mode7 {
            content: cf.content_high(),
            content_index: cf.content_index(),
            counter_in_tpl: cf.bit13(),
            encrypted_blocks: cf.encrypted_blocks(),
            kdf_selection: extension.kdf_selection(),
            key_id: extension.key_id(),
            key_version,
            message_counter,
            padding: cf.padding(),
        },
        ModeFields::Mode9 {
            encrypted_len,
            unencrypted_len,
            counter,
        } => ConfigReport::Mode9 {
            counter,
            encrypted_length: encrypted_len,
            kdf_selection: cf.kdf_selection(),
            key_id: cf.key_id(),
            tag_present: cf.bit13(),
            unencrypted_length: unencrypted_len,
        },
        ModeFields::Mode10 {
            extension,
            key_version,
            message_counter,
        } => ConfigReport::Mode10 {
            content: cf.content_high(),
            content_index: extension.content_index(),
            counter_in_tpl: cf.bit13(),
            encrypted_bytes: cf.encrypted_bytes(),
            kdf_selection: extension.kdf_selection(),
            key_id: extension.key_id(),
            key_version,
            message_counter,
            tag_length: extension.tag_len(),
        },
        ModeFields::Mode13 { extension } => ConfigReport::Mode13 {
            content: cf.content_high(),
            encrypted_bytes: cf.encrypted_bytes(),
            protocol_type: extension & 0x0F,
        },
        _ => ConfigReport::Basic {
            accessibility: cf.accessibility(),
            bidirectional: cf.bidirectional(),
            content: cf.content_low(),
            encrypted_blocks: cf.encrypted_blocks(),
            hop_count: cf.hop_count(),
            repeated_access: cf.repeated_access(),
            synchronous: cf.synchronous(),
        },
    })
}

fn tpl_report(t: &TplRepr) -> TplReport {
    let header = t.ci.tpl_header().unwrap_or(TplHeaderKind::None);
    let h = t.header;
    let (cfe, key_version, counter, blocks, bytes) = match h.map(|h| (h.config, h.mode_fields)) {
        Some((
            cf,
            ModeFields::Mode7 {
                extension,
                key_version,
                message_counter,
            },
        )) => (
            Some(format!("{:02X}", extension.0)),
            key_version,
            message_counter,
            Some(cf.encrypted_blocks()),
            None,
        ),
        Some((
            cf,
            ModeFields::Mode10 {
                extension,
                key_version,
                message_counter,
            },
        )) => (
            Some(hex(&extension.0.to_le_bytes())),
            key_version,
            message_counter,
            None,
            Some(usize::from(cf.encrypted_bytes())),
        ),
        Some((
            _,
            ModeFields::Mode9 {
                encrypted_len,
                counter,
                ..
            },
        )) => (
            None,
            None,
            Some(counter),
            None,
            Some(usize::from(encrypted_len)),
        ),
        Some((cf, ModeFields::Mode13 { extension })) => (
            Some(hex_byte(extension)),
            None,
            None,
            None,
            Some(usize::from(cf.encrypted_bytes())),
        ),
        Some((cf, _)) if matches!(cf.mode().0, 2 | 3 | 5) => {
            (None, None, None, Some(cf.encrypted_blocks()), None)
        }
        _ => (None, None, None, None, None),
    };
    TplReport {
        ci: hex_byte(t.ci.0),
        ci_name: t.ci.description(),
        header: match header {
            TplHeaderKind::None => "none",
            TplHeaderKind::Short => "short",
            _ => "long",
        },
        access_number: h.map(|h| h.access_number),
        status: h.map(|h| h.status.0),
        status_flags: h.map(|h| StatusFlags {
            application: h.status.application_name(),
            power_low: h.status.power_low(),
            permanent_error: h.status.permanent_error(),
            temporary_error: h.status.temporary_error(),
            manufacturer: h.status.manufacturer_bits(),
        }),
        security_mode: t.security_mode().0,
        configuration: h.map(|h| hex(&h.config.0.to_le_bytes())),
        config: config_json(t),
        configuration_extension: cfe,
        encrypted_blocks: blocks,
        encrypted_bytes: bytes,
        key_version,
        message_counter: counter,
        meter: h.and_then(|h| h.meter).as_ref().map(address),
    }
}

fn mode_description(mode: SecurityMode) -> &'static str {
    match mode.0 {
        8 => "security mode 8 (AES-128-CTR with two MACs) has no public layout: not supported",
        13 => "security mode 13 (TLS) is not supported",
        2 | 3 => "DES modes 2 and 3 are deprecated and need --allow-des",
        _ => "security mode not supported",
    }
}

/// The sentence for a non-ok security result.
fn security_error(o: &Opened) -> Option<String> {
    let meter = o
        .meter
        .map_or_else(|| "the meter".to_string(), |m| m.to_string());
    let d = &o.details;
    let with_note = |s: String| match d.note {
        Some(n) => format!("{s}: {n}"),
        None => s,
    };
    Some(match o.result {
        SecurityResult::None
        | SecurityResult::Decrypted
        | SecurityResult::Authenticated
        | SecurityResult::DecryptedByReceiver => return None,
        SecurityResult::NoKey => format!("security: no key for {meter}"),
        SecurityResult::MacMismatch => format!(
            "security: AFL MAC does not verify (received {}, computed {}): wrong key or altered message",
            d.mac_received.map(|m| format!("{m:?}")).unwrap_or_default(),
            d.mac_computed.map(|m| format!("{m:?}")).unwrap_or_default()
        ),
        SecurityResult::TagMismatch => {
            "security: authentication tag does not verify: wrong key or altered message".to_string()
        }
        SecurityResult::CheckBytesMismatch => match d.note {
            Some(n) => format!("security: {n}"),
            None => "security: decrypted data does not start with 2F2F".to_string(),
        },
        SecurityResult::PayloadCrcMismatch => match d.note {
            Some(n) => format!("security: {n}"),
            None => "security: ELL PayloadCRC fails".to_string(),
        },
        SecurityResult::PaddingInvalid => {
            "security: mode 7 padding (CF P bit) is not valid".to_string()
        }
        SecurityResult::PlaintextWithKey => match d.note {
            Some(n) => format!("security: {n}"),
            None => "security: plaintext refused: a key is configured".to_string(),
        },
        SecurityResult::Replayed { counter, last } => format!(
            "security: message counter {counter} is not greater than the last accepted {last}: replayed"
        ),
        SecurityResult::Unsupported(mode) => with_note(mode_description(mode).to_string()),
        SecurityResult::Malformed => match o.error {
            Some(e) => e.to_string(),
            None => with_note("security: malformed secured part".to_string()),
        },
        SecurityResult::FragmentBuffered {
            fragment_id,
            received,
        } => format!(
            "AFL: fragment {fragment_id} stored ({received} bytes so far); waiting for the rest"
        ),
        SecurityResult::FragmentRejected(e) => format!("AFL: {e}"),
        _ => format!("security: {}", o.result.name()),
    })
}

fn application_error_name(code: u8) -> &'static str {
    match code {
        0x00 => "unspecified error",
        0x01 => "CI-field not implemented",
        0x02 => "buffer too long, truncated",
        0x03 => "too many records",
        0x04 => "premature end of record",
        0x05 => "more than 10 DIFEs",
        0x06 => "more than 10 VIFEs",
        0x08 => "application too busy for handling readout request",
        0x09 => "too many readouts",
        0x10..=0x1F => "manufacturer specific",
        _ => "reserved",
    }
}

/// Time synchronisation (CI 6Ch/6Dh; OMS Annex N N.8): TC, then a type I date-time for
/// TC 0 (set) or a type J time difference for TC 1 (add) and 2 (subtract). Provisional.
fn time_sync(apl: &[u8]) -> serde_json::Value {
    use serde_json::json;
    use wmbus_frame::apl::value::{DateTime, Time};
    let Some((&tc, rest)) = apl.split_first() else {
        return json!({ "kind": "time_sync", "error": "empty" });
    };
    let (operation, time) = match tc {
        0x00 => (
            "set_time",
            rest.get(..6)
                .and_then(|b| <[u8; 6]>::try_from(b).ok())
                .and_then(DateTime::type_i)
                .map(|t| t.to_string()),
        ),
        0x01 | 0x02 => (
            if tc == 1 {
                "add_time_difference"
            } else {
                "subtract_time_difference"
            },
            rest.get(..3)
                .and_then(|b| <[u8; 3]>::try_from(b).ok())
                .and_then(Time::type_j)
                .map(|t| t.to_string()),
        ),
        _ => ("reserved", None),
    };
    json!({ "kind": "time_sync", "tc": tc, "operation": operation, "time": time })
}

fn key_configured(keys: &MemoryKeyStore, meter: Option<MeterAddress>) -> bool {
    meter.is_some_and(|m| {
        keys.has_meter(&m)
            || keys
                .key(&KeyRequest {
                    meter: m,
                    key_id: 0,
                    key_version: None,
                })
                .is_some()
    })
}

/// What [`Decoder::decode_json`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The telegram decoded (status "ok" or "incomplete").
    pub decoded: bool,
    /// The line was written straight from the decoded layers (no [`Report`]).
    pub direct: bool,
}

fn empty_report() -> Report {
    Report {
        source: None,
        reception: Reception::default(),
        manufacturer: None,
        id: None,
        version: None,
        device_type: None,
        device_type_name: None,
        status: "ok",
        error: None,
        link: None,
        ell: None,
        afl: None,
        tpl: None,
        security_mode: 0,
        security: SecurityReport {
            result: "none",
            direction: "meter_to_partner",
            ..SecurityReport::default()
        },
        payload_hex: String::new(),
        records: Vec::new(),
        manufacturer_data: None,
        more_records_follow: false,
        compact: None,
        application: None,
        warnings: Vec::new(),
        frame_hex: String::new(),
        layout: Layout::default(),
    }
}

fn trailing_warning(report: &mut Report, normalized: Normalized) {
    if normalized.trailing > 0 {
        report.warnings.push(format!(
            "{} byte(s) after the frame's end ignored (an appended RSSI or status byte?)",
            normalized.trailing
        ));
    }
}

fn identify(report: &mut Report, meter: Option<MeterAddress>) {
    if let Some(m) = meter {
        report.manufacturer = Some(records::manufacturer(m.manufacturer));
        report.id = Some(records::ident(m.address.ident));
        report.version = Some(m.address.version);
        report.device_type = Some(m.address.device_type.0);
        report.device_type_name = Some(m.address.device_type.name());
    }
}

impl Decoder {
    /// A decoder over a key store.
    pub fn new(keys: MemoryKeyStore, options: DecodeOptions) -> Self {
        let receiver_options = ReceiverOptions {
            allow_des: options.allow_des,
            replay_check: options.replay_check,
            accept_decrypted_by_receiver: options.accept_decrypted_by_receiver,
            diagnostics: options.diagnostics,
            ..ReceiverOptions::default()
        };
        Self {
            receiver: Receiver::new(keys, receiver_options),
            formats: FormatCache::default(),
            options,
            plain: Vec::with_capacity(256),
            scratch: vec![0; 16 * 1024],
            layouts: crate::direct::Layouts::default(),
        }
    }

    /// The compact-frame formats learned so far.
    pub fn formats(&self) -> &FormatCache {
        &self.formats
    }

    /// The formats, to load a cache file.
    pub fn formats_mut(&mut self) -> &mut FormatCache {
        &mut self.formats
    }

    /// The receiver (replay state, keys).
    pub fn receiver(&self) -> &Receiver<MemoryKeyStore> {
        &self.receiver
    }

    /// The receiver, mutable.
    pub fn receiver_mut(&mut self) -> &mut Receiver<MemoryKeyStore> {
        &mut self.receiver
    }

    /// Decodes one telegram as received (with or without link CRCs, wired or wireless).
    pub fn decode(&mut self, now: Instant, input: &[u8]) -> Report {
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let (normalized, frame) = match self.prepare(input, &mut buf) {
            Ok(parsed) => parsed,
            Err(report) => return *report,
        };
        let mut plain = std::mem::take(&mut self.plain);
        let opened = self.receiver.open(now, &frame, &mut plain);
        let report = self.report(normalized, &frame, &opened, &plain);
        self.plain = plain;
        report
    }

    /// Decodes one telegram and appends its JSON line (what [`Self::decode`] and
    /// [`crate::render::write_line`] give, byte for byte): common telegrams are written
    /// straight from the decoded layers ([`crate::direct`]), the rest through their
    /// [`Report`]. `source` and `reception` are set on the line as on a report.
    pub fn decode_json(
        &mut self,
        now: Instant,
        input: &[u8],
        source: Option<&Source>,
        reception: &Reception,
        out: &mut Vec<u8>,
    ) -> Written {
        let with_context = |mut report: Report, out: &mut Vec<u8>| {
            report.source = source.cloned();
            report.reception = reception.clone();
            crate::json::write_report(out, &report);
            out.push(b'\n');
            Written {
                decoded: report.is_decoded(),
                direct: false,
            }
        };
        let mut buf = [0u8; MAX_RAW_FRAME_LEN];
        let (normalized, frame) = match self.prepare(input, &mut buf) {
            Ok(parsed) => parsed,
            Err(report) => return with_context(*report, out),
        };
        let mut plain = std::mem::take(&mut self.plain);
        let opened = self.receiver.open(now, &frame, &mut plain);
        let line = crate::direct::Line {
            source,
            reception,
            normalized,
            frame: &frame,
            opened: &opened,
            plain: &plain,
            key_configured: key_configured(
                self.receiver.keys(),
                opened.meter.or_else(|| frame.meter()),
            ),
        };
        let written = if !self.options.diagnostics
            && let Some(learn) =
                crate::direct::write(out, &mut self.scratch, &mut self.layouts, &line)
        {
            if let Some(signature) = learn {
                self.learn_format(signature, plain.get(opened.application.clone()));
            }
            Written {
                decoded: true,
                direct: true,
            }
        } else {
            let report = self.report(normalized, &frame, &opened, &plain);
            with_context(report, out)
        };
        self.plain = plain;
        written
    }

    /// Normalises and parses; a failure is the finished report.
    fn prepare<'b>(
        &self,
        input: &[u8],
        buf: &'b mut [u8; MAX_RAW_FRAME_LEN],
    ) -> Result<(Normalized, Frame<'b>), Box<Report>> {
        let fail = |e: wmbus_frame::Error| {
            let mut report = empty_report();
            report.status = if e.is_integrity() {
                "crc_error"
            } else if e.is_unsupported() {
                "unsupported"
            } else {
                "malformed"
            };
            report.error = Some(e.to_string());
            report
        };
        let normalized = match normalize(input, self.options.frame_format, buf) {
            Ok(n) => n,
            Err(e) => {
                let mut report = fail(e);
                // Still say who sent it, if the first block reads.
                if let Some(first) = input.get(..10) {
                    let mut head = [0u8; 10];
                    head.copy_from_slice(first);
                    head[0] = 9;
                    if let Ok(d) = DllRepr::parse(&head) {
                        identify(&mut report, Some(d.address));
                    }
                }
                report.frame_hex = hex(input);
                return Err(Box::new(report));
            }
        };
        let bytes: &'b [u8] = buf.get(..normalized.len).unwrap_or(&[]);
        match Frame::parse(bytes, normalized.format) {
            Ok(f) => Ok((normalized, f)),
            Err(e) => {
                let mut report = fail(e);
                trailing_warning(&mut report, normalized);
                report.frame_hex = hex(bytes);
                if normalized.format != FrameFormat::Wired
                    && let Ok(d) = DllRepr::parse(bytes)
                {
                    report.link = Some(link_report(&Link::Wireless(d), normalized.format));
                    identify(&mut report, Some(d.address));
                }
                Err(Box::new(report))
            }
        }
    }

    /// The report of a parsed and opened telegram.
    fn report(
        &mut self,
        normalized: Normalized,
        frame: &Frame<'_>,
        opened: &Opened,
        plain: &[u8],
    ) -> Report {
        let mut report = empty_report();
        trailing_warning(&mut report, normalized);
        report.frame_hex = hex(frame.bytes);
        report.link = Some(link_report(&frame.repr.link, normalized.format));
        report.ell = frame.repr.ell.as_ref().map(ell_report);
        let t = &frame.repr.transport;
        report.layout = Layout {
            ell: frame.ell_offset,
            afl: t.afl_offset,
            tpl: t.tpl_offset,
            payload: Some(t.payload_offset),
            end: Some(t.payload_offset + t.payload.len()),
        };
        self.fill(&mut report, frame, opened, plain);
        report
    }

    /// Learns the format of a record list (once per signature), for compact frames to come.
    fn learn_format(&mut self, signature: u16, application: Option<&[u8]>) {
        let Some(application) = application else {
            return;
        };
        if self.formats.get(signature).is_some() {
            return;
        }
        let mut format = vec![0u8; application.len()];
        if let Ok(n) = compact::format_of(application, &mut format) {
            format.truncate(n);
            if !format.is_empty() {
                self.formats.learn(&format);
            }
        }
    }

    fn fill(&mut self, report: &mut Report, frame: &Frame<'_>, o: &Opened, plain: &[u8]) {
        let meter = o.meter.or_else(|| frame.meter());
        identify(report, meter);
        let tpl = o.tpl.or(frame.repr.transport.tpl);
        let fcl = frame.repr.transport.afl.map(|a| a.fragment_control());
        report.afl = o.afl.as_ref().map(|a| afl_report(a, fcl)).or_else(|| {
            frame
                .repr
                .transport
                .afl
                .map(|a| afl_report(&AflAuth::from_repr(&a), fcl))
        });
        report.tpl = tpl.as_ref().map(tpl_report);
        report.security_mode = tpl.map_or(0, |t| t.security_mode().0);
        let d = &o.details;
        let diag = self.options.diagnostics;
        report.security = SecurityReport {
            mode: report.security_mode,
            result: o.result.name(),
            direction: o.direction.name(),
            ell: frame.repr.ell.filter(|e| e.is_encrypted()).map(|_| {
                if d.ell_decrypted {
                    "decrypted"
                } else {
                    o.result.name()
                }
            }),
            key_id: d.key_id,
            key_version: d.key_version,
            kdf: d.kdf_selection,
            counter: d.counter,
            last_counter: match o.result {
                SecurityResult::Replayed { last, .. } => Some(last),
                _ => None,
            },
            key_configured: key_configured(self.receiver.keys(), meter),
            fragments: d.fragments,
            note: d.note,
            iv: diag.then(|| d.iv.map(|v| format!("{v:?}"))).flatten(),
            ell_counter_block: diag
                .then(|| d.ell_counter_block.map(|v| format!("{v:?}")))
                .flatten(),
            mac_received: d.mac_received.map(|v| format!("{v:?}")),
            mac_computed: diag
                .then(|| d.mac_computed.map(|v| format!("{v:?}")))
                .flatten(),
            derived_encryption_key: (diag && self.options.show_keys)
                .then(|| d.derived.as_ref().map(|k| hex(k.encryption.as_bytes())))
                .flatten(),
            derived_mac_key: (diag && self.options.show_keys)
                .then(|| d.derived.as_ref().map(|k| hex(k.mac.as_bytes())))
                .flatten(),
        };
        report.status = o.result.status().name();
        report.error = security_error(o);
        if !o.result.is_released() {
            // What is still encrypted is shown as received.
            report.payload_hex = hex(frame.repr.transport.payload);
            return;
        }
        let application = plain.get(o.application.clone()).unwrap_or(&[]);
        report.payload_hex = hex(application);
        let Some(t) = tpl else { return };
        let base = 0;
        // Decrypted CBC payloads start with the 2F2F check bytes; for record lists they are
        // idle fillers, for every other content they are not part of it.
        let cbc = matches!(t.security_mode().0, 2 | 3 | 5 | 7);
        let (content, content_base) = match application {
            [0x2F, 0x2F, rest @ ..] if cbc => (rest, 2),
            _ => (application, 0),
        };
        match t.ci.content() {
            Some(ApplicationContent::Records) => {
                let decoded = records::decode_records(application, base);
                let signature = decoded.format_signature;
                self.take_records(report, decoded);
                if report.status == "ok"
                    && let Some(signature) = signature
                {
                    self.learn_format(signature, Some(application));
                }
            }
            Some(ApplicationContent::Format) => match FormatFrame::parse(content, content_base) {
                Ok(f) => {
                    let learned = self.formats.learn(f.format);
                    if learned != f.signature {
                        report.warnings.push(format!(
                            "format frame signature {:04X} does not match its format ({learned:04X})",
                            f.signature
                        ));
                    }
                    report.application = Some(serde_json::json!({
                        "kind": "format_frame",
                        "format_signature": format!("{:04X}", f.signature),
                        "format": hex(f.format),
                    }));
                }
                Err(e) => self.records_error(report, e),
            },
            Some(ApplicationContent::Compact) => self.compact(report, content, content_base),
            Some(ApplicationContent::ApplicationError) => {
                let code = content.first().copied();
                report.application = Some(serde_json::json!({
                    "kind": "application_error",
                    "code": code,
                    "name": code.map(application_error_name),
                }));
            }
            Some(ApplicationContent::Alarm) => {
                report.application = Some(serde_json::json!({
                    "kind": "alarm",
                    "alarm": hex(content),
                }));
            }
            Some(ApplicationContent::TimeSync) => {
                report.application = Some(time_sync(content));
            }
            Some(ApplicationContent::SecurityInformation) => {
                report.application =
                    Some(serde_json::json!({ "kind": "security_information_transfer" }));
            }
            Some(ApplicationContent::ImageTransfer) => {
                report.application = Some(serde_json::json!({ "kind": "image_transfer" }));
            }
            _ => {}
        }
    }

    fn take_records(&self, report: &mut Report, decoded: records::Decoded) {
        report.records = decoded.records;
        report.manufacturer_data = decoded.manufacturer_data;
        report.more_records_follow = decoded.more_records_follow;
        if decoded.global_readout {
            report.application = Some(serde_json::json!({ "kind": "global_readout_request" }));
        }
        if let Some(t) = decoded.ignored_tail {
            report.warnings.push(format!(
                "application layer: {t} after the last record ignored (a receiver's block CRC?)"
            ));
        }
        if let Some(e) = decoded.error {
            self.records_error(report, e);
        }
    }

    fn records_error(&self, report: &mut Report, e: wmbus_frame::Error) {
        report.status = "malformed";
        report.error = Some(e.to_string());
    }

    fn compact(&mut self, report: &mut Report, application: &[u8], base: usize) {
        let c = match CompactFrame::parse(application, base) {
            Ok(c) => c,
            Err(e) => return self.records_error(report, e),
        };
        let Some(format) = self.formats.get(c.signature).map(<[u8]>::to_vec) else {
            report.compact = Some(CompactReport {
                format_signature: format!("{:04X}", c.signature),
                full_frame_crc: format!("{:04X}", c.full_frame_crc),
                format_known: false,
                full_frame_crc_ok: None,
            });
            report.status = "unsupported";
            report.error = Some(format!(
                "application layer: compact frame with format signature {:04X}, which no full frame or format frame seen so far has; decode one first or load a format cache",
                c.signature
            ));
            return;
        };
        let mut parsed = Vec::new();
        let mut error = None;
        for r in CompactRecords::new(&format, c.data, base + 4) {
            match r {
                Ok(r) => parsed.push(r),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        // The full-frame CRC over the restored records.
        let mut digest = wmbus_frame::crc::EN_13757.digest();
        let mut header = &format[..];
        for r in &parsed {
            let n = r.header_len();
            digest.update(header.get(..n).unwrap_or(&[]));
            header = header.get(n..).unwrap_or(&[]);
            if let Some(l) = r.lvar {
                let byte = match l {
                    wmbus_frame::apl::value::Lvar::Text(n) => n as u8,
                    wmbus_frame::apl::value::Lvar::PositiveBcd(n) => 0xC0 + n as u8,
                    wmbus_frame::apl::value::Lvar::NegativeBcd(n) => 0xD0 + n as u8,
                    wmbus_frame::apl::value::Lvar::Binary(n) => match n {
                        0..=15 => 0xE0 + n as u8,
                        48 => 0xF5,
                        64 => 0xF6,
                        n => 0xEC + (n / 4) as u8,
                    },
                };
                digest.update(&[byte]);
            }
            digest.update(r.data);
        }
        let crc_ok = digest.finalize() == c.full_frame_crc;
        report.compact = Some(CompactReport {
            format_signature: format!("{:04X}", c.signature),
            full_frame_crc: format!("{:04X}", c.full_frame_crc),
            format_known: true,
            full_frame_crc_ok: Some(crc_ok),
        });
        if !crc_ok {
            report.warnings.push(
                "compact frame: the full-frame CRC does not match the restored records".into(),
            );
        }
        let mut decoded = records::from_records(&parsed);
        if decoded.error.is_none() {
            decoded.error = error;
        }
        self.take_records(report, decoded);
    }
}
