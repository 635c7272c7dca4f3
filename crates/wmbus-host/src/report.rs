//! The report of one decoded telegram: what `wmbus decode --format json` prints, one object
//! per input line. The field names are a contract (`docs/json.md`): code points are
//! two-digit uppercase hex strings, numbers are JSON numbers.

pub use compact_str::CompactString;
use serde::Serialize;

/// Where an input came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Source {
    /// File name ("-" for stdin, absent for arguments).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line number from 1, or argument position.
    pub line: usize,
}

/// What a receiver said about a telegram (rtl_wmbus, rtl_433, dongles).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reception {
    /// RSSI in dBm (or the receiver's own unit where it has no dBm; see `rssi_unit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rssi: Option<f64>,
    /// "dBm", or the receiver's unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rssi_unit: Option<&'static str>,
    /// Link mode, e.g. "T1".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_mode: Option<String>,
    /// Reception time as the receiver gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

impl Reception {
    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.rssi.is_none() && self.link_mode.is_none() && self.time.is_none()
    }
}

/// The link layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkReport {
    /// C-field.
    pub c_field: String,
    /// Its name, e.g. "SND_NR".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c_field_name: Option<&'static str>,
    /// Manufacturer (wireless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Identification number (wireless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u8>,
    /// Device type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<u8>,
    /// Primary address (wired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_address: Option<u8>,
    /// "A", "B", "none" or "wired".
    pub frame_format: &'static str,
}

/// The ELL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EllReport {
    /// CI.
    pub ci: String,
    /// CC.
    pub communication_control: String,
    /// CC bits set, by name.
    pub communication_control_bits: Vec<&'static str>,
    /// ACC.
    pub access_number: u8,
    /// M2/A2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<AddressReport>,
    /// SN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_number: Option<SessionReport>,
}

/// A manufacturer and address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressReport {
    /// Manufacturer.
    pub manufacturer: String,
    /// Identification number.
    pub id: String,
    /// Version.
    pub version: u8,
    /// Device type.
    pub device_type: u8,
}

/// An ELL session number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionReport {
    /// ENC.
    pub encryption: u8,
    /// Time (minutes).
    pub time: u32,
    /// Session.
    pub session: u8,
}

/// The AFL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AflReport {
    /// FCL.
    pub fragment_control: String,
    /// FID.
    pub fragment_id: u8,
    /// MF.
    pub more_fragments: bool,
    /// MCL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_control: Option<String>,
    /// AT and its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication_type: Option<u8>,
    /// Name of the authentication type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<&'static str>,
    /// KI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_information: Option<String>,
    /// MCR.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_counter: Option<u32>,
    /// ML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_length: Option<u16>,
    /// MAC as received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The transport layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TplReport {
    /// CI.
    pub ci: String,
    /// What the CI means.
    pub ci_name: &'static str,
    /// "none", "short" or "long".
    pub header: &'static str,
    /// ACC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_number: Option<u8>,
    /// STS byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u8>,
    /// STS decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_flags: Option<StatusFlags>,
    /// Security mode (bits 12..8 of CF).
    pub security_mode: u8,
    /// CF as transmitted (two bytes, wire order).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration: Option<String>,
    /// CF decoded per mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigReport>,
    /// CFE as transmitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_extension: Option<String>,
    /// Encrypted 16-byte blocks (modes 2, 3, 5, 7).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_blocks: Option<u8>,
    /// Encrypted bytes (modes 9, 10, 13).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_bytes: Option<usize>,
    /// Key version byte.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u8>,
    /// Message counter in the transport layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_counter: Option<u32>,
    /// Long header: the meter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meter: Option<AddressReport>,
}

/// The configuration field decoded per security mode (EN 13757-7 §7.7, Tables 19–22). Keys
/// are in alphabetical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ConfigReport {
    /// Modes 0–5 and the national modes: the general layout.
    Basic {
        /// A bit.
        accessibility: bool,
        /// B bit.
        bidirectional: bool,
        /// Content of message (bits 3..2).
        content: u8,
        /// Encrypted blocks.
        encrypted_blocks: u8,
        /// H bit.
        hop_count: bool,
        /// R bit.
        repeated_access: bool,
        /// S bit.
        synchronous: bool,
    },
    /// Mode 7.
    Mode7 {
        /// Content of message.
        content: u8,
        /// Content index.
        content_index: u8,
        /// C bit: counter in the TPL.
        counter_in_tpl: bool,
        /// Encrypted blocks.
        encrypted_blocks: u8,
        /// KDF selection (CFE).
        kdf_selection: u8,
        /// Key ID (CFE).
        key_id: u8,
        /// Key version.
        key_version: Option<u8>,
        /// Message counter.
        message_counter: Option<u32>,
        /// P bit.
        padding: bool,
    },
    /// Mode 9.
    Mode9 {
        /// Counter.
        counter: u32,
        /// LenE.
        encrypted_length: u16,
        /// KDF selection.
        kdf_selection: u8,
        /// Key ID.
        key_id: u8,
        /// Tag present.
        tag_present: bool,
        /// LenU.
        unencrypted_length: u16,
    },
    /// Mode 10.
    Mode10 {
        /// Content of message.
        content: u8,
        /// Content index (CFE).
        content_index: u8,
        /// C bit: counter in the TPL.
        counter_in_tpl: bool,
        /// Encrypted bytes.
        encrypted_bytes: u8,
        /// KDF selection (CFE).
        kdf_selection: u8,
        /// Key ID (CFE).
        key_id: u8,
        /// Key version.
        key_version: Option<u8>,
        /// Message counter.
        message_counter: Option<u32>,
        /// Tag length (CFE).
        tag_length: usize,
    },
    /// Mode 13.
    Mode13 {
        /// Content of message.
        content: u8,
        /// Encrypted bytes.
        encrypted_bytes: u8,
        /// Protocol type (CFE bits 3..0).
        protocol_type: u8,
    },
}

/// STS bits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusFlags {
    /// "ok", "busy", "error", "alarm".
    pub application: &'static str,
    /// Power low.
    pub power_low: bool,
    /// Permanent error.
    pub permanent_error: bool,
    /// Temporary error.
    pub temporary_error: bool,
    /// Bits 7..5.
    pub manufacturer: u8,
}

/// The security outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecurityReport {
    /// Security mode.
    pub mode: u8,
    /// Result ("none", "decrypted", "authenticated", "decrypted_by_receiver", "no_key",
    /// "mac_mismatch", …).
    pub result: &'static str,
    /// Direction.
    pub direction: &'static str,
    /// ELL encryption result, when the ELL encrypts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ell: Option<&'static str>,
    /// Key ID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<u8>,
    /// Key version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u8>,
    /// KDF selection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kdf: Option<u8>,
    /// Message counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<u32>,
    /// Last accepted counter (replays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_counter: Option<u32>,
    /// Whether a key was configured for the meter.
    pub key_configured: bool,
    /// Fragments the message came in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fragments: Option<u8>,
    /// A remark, e.g. why plaintext was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// IV, nonce (analyze view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iv: Option<String>,
    /// ELL counter block (analyze view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ell_counter_block: Option<String>,
    /// MAC or tag received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_received: Option<String>,
    /// Full CMAC computed (analyze view).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_computed: Option<String>,
    /// Derived encryption key (analyze view with --show-keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_encryption_key: Option<String>,
    /// Derived MAC key (analyze view with --show-keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived_mac_key: Option<String>,
}

/// A record value in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum JsonValue {
    /// An exact integer.
    Integer(i64),
    /// A scaled number.
    Number(f64),
    /// Text, identifiers, dates.
    Text(CompactString),
    /// No value (empty or invalid).
    Null,
}

/// One data record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordReport {
    /// Quantity, e.g. "volume".
    pub quantity: &'static str,
    /// The value, scaled to the unit.
    pub value: JsonValue,
    /// Unit, or null.
    pub unit: Option<&'static str>,
    /// Function.
    pub function: &'static str,
    /// Storage number.
    pub storage: u64,
    /// Tariff.
    pub tariff: u32,
    /// Subunit.
    pub subunit: u16,
    /// DIF and DIFEs, hex.
    pub dif: CompactString,
    /// VIF and VIFEs, hex.
    pub vif: CompactString,
    /// What the VIFEs add.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<String>,
    /// Plain-text unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_text: Option<String>,
    /// A record error code from the meter (VIFE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<&'static str>,
    /// The coding marks the value invalid (BCD A–F, date IV bit or impossible field).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invalid: bool,
    /// The raw data, hex, where the value is not a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// For points of a compact profile: the point's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// For points of a compact profile: the index in the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile_index: Option<usize>,
    /// Offset of the record in the application layer.
    pub offset: usize,
}

/// A compact frame.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompactReport {
    /// Format signature.
    pub format_signature: String,
    /// Full-frame CRC as transmitted.
    pub full_frame_crc: String,
    /// Whether the format was known.
    pub format_known: bool,
    /// Whether the full-frame CRC matched after restoring the records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_frame_crc_ok: Option<bool>,
}

/// Where each layer starts in `frame_hex` (bytes), for the analyze view; layers inside an ELL
/// encryption or a reassembled message have none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Layout {
    /// ELL CI.
    pub ell: Option<usize>,
    /// AFL CI.
    pub afl: Option<usize>,
    /// TPL CI.
    pub tpl: Option<usize>,
    /// Payload.
    pub payload: Option<usize>,
    /// End of the transport layer's bytes (wired frames end with CS and stop byte).
    pub end: Option<usize>,
}

/// One decoded telegram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Where the input came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Receiver information.
    #[serde(skip_serializing_if = "Reception::is_empty", flatten)]
    pub reception: Reception,
    /// The meter's manufacturer (long transport header, else link layer).
    pub manufacturer: Option<String>,
    /// The meter's identification number, as printed on it.
    pub id: Option<String>,
    /// The meter's version.
    pub version: Option<u8>,
    /// The meter's device type.
    pub device_type: Option<u8>,
    /// The device type's name.
    pub device_type_name: Option<&'static str>,
    /// "ok", "no_key", "authentication_failed", "crc_error", "malformed", "unsupported",
    /// "replayed" or "incomplete".
    pub status: &'static str,
    /// Why, naming the layer and byte offset, whenever status is not "ok".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Link layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkReport>,
    /// ELL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ell: Option<EllReport>,
    /// AFL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub afl: Option<AflReport>,
    /// Transport layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tpl: Option<TplReport>,
    /// Security mode (0 without a transport header).
    pub security_mode: u8,
    /// The security outcome.
    pub security: SecurityReport,
    /// Application-layer bytes (decrypted when released; as received otherwise).
    pub payload_hex: String,
    /// Data records.
    pub records: Vec<RecordReport>,
    /// Manufacturer-specific data after DIF 0Fh/1Fh.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manufacturer_data: Option<String>,
    /// DIF 1Fh: more records follow in the next telegram.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_records_follow: bool,
    /// Compact frame details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact: Option<CompactReport>,
    /// Other application content (time synchronisation, application error, alarm, SITP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<serde_json::Value>,
    /// Things worth knowing that did not fail the telegram.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The input, normalised (no link CRCs), hex.
    pub frame_hex: String,
    /// Layer offsets (analyze view only).
    #[serde(skip)]
    pub layout: Layout,
}

impl Report {
    /// True when status is "ok" or "incomplete" (a fragment awaiting the rest).
    pub fn is_decoded(&self) -> bool {
        matches!(self.status, "ok" | "incomplete")
    }
}
