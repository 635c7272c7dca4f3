//! Building telegrams from a description (`wmbus encode`): meter, link layer, ELL, AFL,
//! transport header, security mode and key, and records given by quantity, value and unit.
//! The description is TOML or JSON; `docs/encode.md` documents every field.
//!
//! Records are encoded the way the decoder reads them back: the VIF is found by searching the
//! EN 13757-3 tables for the quantity and unit, with the largest decimal exponent that
//! represents the value exactly; the data field is the smallest integer (or BCD, or real) that
//! holds it. Decoding an encoded description gives the description back (property-tested).

use std::fmt;

use serde::{Deserialize, Serialize};
use wmbus_frame::afl::{AflRepr, KeyInformation, MessageControl};
use wmbus_frame::apl::dib::{DataField, DibRepr, Function};
use wmbus_frame::apl::value::{Date, DateTime, Time};
use wmbus_frame::apl::vib::{self, Coding, Modifier};
use wmbus_frame::codepoints::{
    Address, CiField, ControlField, DeviceType, Ident, ManufacturerCode, MeterAddress,
};
use wmbus_frame::dll::{self, DllRepr, FrameFormat, MAX_RAW_FRAME_LEN};
use wmbus_frame::ell::{CommunicationControl, EllRepr, SessionNumber};
use wmbus_frame::frame::Link;
use wmbus_frame::tpl::{ConfigExtension, ConfigField, ModeFields, Status, TplHeader, TplRepr};
use wmbus_frame::wired::{WiredKind, WiredRepr};
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::mode9::Mode9Profile;
use wmbus_security::seal::{self, SealSpec};

/// Why a description could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

fn err<T>(s: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError(s.into()))
}

/// A manufacturer and address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressDesc {
    /// Three letters, e.g. "KAM".
    pub manufacturer: String,
    /// Identification number, up to 8 (hex) digits.
    pub id: String,
    /// Version.
    #[serde(default)]
    pub version: u8,
    /// Device type (medium).
    #[serde(default)]
    pub device_type: u8,
}

impl AddressDesc {
    /// The description of an address.
    pub fn from_address(a: &MeterAddress) -> Self {
        Self {
            manufacturer: a.manufacturer.to_string(),
            id: a.address.ident.to_string(),
            version: a.address.version,
            device_type: a.address.device_type.0,
        }
    }

    /// The address this describes.
    ///
    /// # Errors
    /// A manufacturer that is not three letters, an id that is not hex.
    pub fn to_address(&self) -> Result<MeterAddress, EncodeError> {
        let Some(manufacturer) = ManufacturerCode::parse(&self.manufacturer) else {
            return err(format!(
                "manufacturer {:?} is not three letters",
                self.manufacturer
            ));
        };
        let Some(ident) = Ident::parse(&self.id) else {
            return err(format!("id {:?} is not up to 8 hex digits", self.id));
        };
        Ok(MeterAddress {
            manufacturer,
            address: Address {
                ident,
                version: self.version,
                device_type: DeviceType(self.device_type),
            },
        })
    }
}

/// Frame format of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FormatDesc {
    /// Format A with CRCs.
    #[default]
    A,
    /// Format B with CRCs.
    B,
    /// No CRCs.
    None,
    /// Wired M-Bus long frame.
    Wired,
}

/// The link layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LinkDesc {
    /// C-field: a name ("SND_NR") or a number; SND_NR by default (RSP_UD when wired).
    #[serde(default)]
    pub c_field: Option<CField>,
    /// The sender when it is not the meter (a radio adapter, a gateway).
    #[serde(default)]
    pub address: Option<AddressDesc>,
    /// Output frame format.
    #[serde(default)]
    pub format: FormatDesc,
    /// Wired primary address (FDh by default).
    #[serde(default)]
    pub primary_address: Option<u8>,
}

/// A C-field given by name or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CField {
    /// A number.
    Number(u8),
    /// A name: SND_NR, SND_IR, ACC_NR, ACC_DMD, RSP_UD, SND_UD, SND_UD2, REQ_UD2, SND_NKE, ACK, CNF_IR.
    Name(String),
}

impl CField {
    fn value(&self) -> Result<ControlField, EncodeError> {
        Ok(match self {
            Self::Number(n) => ControlField(*n),
            Self::Name(n) => match n.to_ascii_uppercase().replace('-', "_").as_str() {
                "SND_NR" => ControlField::SND_NR,
                "SND_IR" => ControlField::SND_IR,
                "ACC_NR" => ControlField::ACC_NR,
                "ACC_DMD" => ControlField::ACC_DMD,
                "RSP_UD" => ControlField::RSP_UD,
                "SND_UD" => ControlField::SND_UD,
                "SND_UD2" => ControlField::SND_UD2,
                "REQ_UD2" => ControlField::REQ_UD2,
                "REQ_UD1" => ControlField::REQ_UD1,
                "SND_NKE" => ControlField::SND_NKE,
                "ACK" => ControlField::ACK,
                "NACK" => ControlField::NACK,
                "CNF_IR" => ControlField::CNF_IR,
                other => return err(format!("unknown C-field name {other}")),
            },
        })
    }
}

/// The extended link layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EllDesc {
    /// CC.
    #[serde(default)]
    pub communication_control: u8,
    /// ACC (defaults to the transport layer's).
    #[serde(default)]
    pub access_number: Option<u8>,
    /// M2/A2 (ELL III/IV).
    #[serde(default)]
    pub address: Option<AddressDesc>,
    /// Encrypt the rest with AES-CTR (ELL II/IV, ENC = 1).
    #[serde(default)]
    pub encrypt: bool,
    /// Carry a session number without encrypting (ELL II/IV, ENC = 0).
    #[serde(default)]
    pub session_number: bool,
    /// SN time field (minutes).
    #[serde(default)]
    pub session_time: u32,
    /// SN session field.
    #[serde(default)]
    pub session: u8,
}

/// The AFL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AflDesc {
    /// Authentication type: 0 none, 3–7 AES-CMAC with 2, 4, 8, 12, 16 bytes (5 by default
    /// in mode 7).
    #[serde(default)]
    pub authentication_type: Option<u8>,
    /// MCR (the transport layer's counter by default).
    #[serde(default)]
    pub message_counter: Option<u32>,
    /// KI.
    #[serde(default)]
    pub key_information: Option<u16>,
    /// Carry ML (and put it in the MAC).
    #[serde(default)]
    pub message_length: bool,
    /// Split into fragments of these many message bytes (the last size repeats).
    #[serde(default)]
    pub fragments: Vec<usize>,
}

/// Transport header kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeaderDesc {
    /// No header (CI 78h).
    None,
    /// Short header (CI 7Ah).
    #[default]
    Short,
    /// Long header (CI 72h).
    Long,
}

/// The transport layer and its security.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TplDesc {
    /// CI; from the header kind by default (78h, 7Ah, 72h).
    #[serde(default)]
    pub ci: Option<u8>,
    /// Header kind.
    #[serde(default)]
    pub header: HeaderDesc,
    /// ACC.
    #[serde(default)]
    pub access_number: u8,
    /// STS.
    #[serde(default)]
    pub status: u8,
    /// Security mode: 0, 5, 7, 9 or 10.
    #[serde(default)]
    pub security_mode: u8,
    /// Key ID (modes 7, 9, 10).
    #[serde(default)]
    pub key_id: u8,
    /// KDF selection (modes 7, 10: 1 by default; mode 9: 0).
    #[serde(default)]
    pub kdf: Option<u8>,
    /// Key version byte (modes 7, 10).
    #[serde(default)]
    pub key_version: Option<u8>,
    /// Message counter: mode 9's CTR, mode 10's MC, mode 7's in the TPL (Z bit).
    #[serde(default)]
    pub counter: Option<u32>,
    /// Mode 10 tag length: 4, 8 (default), 12 or 16.
    #[serde(default)]
    pub tag_length: Option<u8>,
    /// Mode 7 padding (P bit).
    #[serde(default)]
    pub padding: bool,
    /// CF bits besides mode and lengths (B, A, S, content …), as a number.
    #[serde(default)]
    pub config_bits: u16,
}

/// A data record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RecordDesc {
    /// Quantity, as reports name it ("volume", "energy", "datetime", …).
    #[serde(default)]
    pub quantity: Option<String>,
    /// Value: a number, or a string for dates, text and identifiers.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
    /// Unit, as reports name it ("m3", "Wh", …).
    #[serde(default)]
    pub unit: Option<String>,
    /// Function: instantaneous (default), maximum, minimum, error.
    #[serde(default)]
    pub function: Option<String>,
    /// Storage number.
    #[serde(default)]
    pub storage: u64,
    /// Tariff.
    #[serde(default)]
    pub tariff: u32,
    /// Subunit.
    #[serde(default)]
    pub subunit: u16,
    /// Data coding: "int" (default: the smallest integer), "bcd" (the smallest BCD),
    /// "real", or a fixed size: "int8" … "int64", "bcd2" … "bcd12".
    #[serde(default)]
    pub coding: Option<String>,
    /// Annotations to add as combinable VIFEs ("accumulation_absolute_negative_only", …).
    #[serde(default)]
    pub annotations: Vec<String>,
    /// The record as raw hex instead (DIF … data).
    #[serde(default)]
    pub raw: Option<String>,
}

/// A telegram to build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Description {
    /// The meter.
    pub meter: AddressDesc,
    /// The meter's AES key, 32 hex digits (modes 5, 7, 9, 10, ELL encryption).
    #[serde(default)]
    pub key: Option<String>,
    /// Link layer.
    #[serde(default)]
    pub link: LinkDesc,
    /// ELL.
    #[serde(default)]
    pub ell: Option<EllDesc>,
    /// AFL (mode 7 gets one by default).
    #[serde(default)]
    pub afl: Option<AflDesc>,
    /// Transport layer.
    #[serde(default)]
    pub tpl: TplDesc,
    /// Records.
    #[serde(default)]
    pub records: Vec<RecordDesc>,
}

impl Description {
    /// Parses TOML or JSON (JSON when the text starts with `{`).
    ///
    /// # Errors
    /// Parse errors, with their position.
    pub fn parse(text: &str) -> Result<Self, EncodeError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| EncodeError(format!("description (JSON): {e}")))
        } else {
            toml::from_str(text).map_err(|e| EncodeError(format!("description (TOML): {e}")))
        }
    }
}

/// Encoded frames, as they go on air in the description's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// One frame, or the fragments in order.
    pub frames: Vec<Vec<u8>>,
}

fn function(name: Option<&str>) -> Result<Function, EncodeError> {
    Ok(match name.unwrap_or("instantaneous") {
        "instantaneous" => Function::Instantaneous,
        "maximum" => Function::Maximum,
        "minimum" => Function::Minimum,
        "error" => Function::Error,
        other => return err(format!("unknown function {other}")),
    })
}

/// An exact decimal: `mantissa × 10^exponent`.
fn decimal(v: &serde_json::Value) -> Result<(i128, i32), EncodeError> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => return err(format!("value {other} is not a number")),
    };
    let (digits, exp) = match text.split_once(['e', 'E']) {
        Some((d, e)) => (
            d.to_string(),
            e.parse::<i32>()
                .map_err(|_| EncodeError(format!("bad number {text}")))?,
        ),
        None => (text.clone(), 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let frac = frac.trim_end_matches('0');
    let mantissa: i128 = format!("{int}{frac}")
        .parse()
        .map_err(|_| EncodeError(format!("bad number {text}")))?;
    let exponent = exp - i32::try_from(frac.len()).unwrap_or(0);
    Ok((mantissa, exponent))
}

/// `mantissa × 10^exponent` as an integer at `target` exponent, if exact.
fn rescale(mantissa: i128, exponent: i32, target: i32) -> Option<i128> {
    if exponent >= target {
        mantissa.checked_mul(10i128.checked_pow(u32::try_from(exponent - target).ok()?)?)
    } else {
        let d = 10i128.checked_pow(u32::try_from(target - exponent).ok()?)?;
        (mantissa % d == 0).then_some(mantissa / d)
    }
}

/// Every VIF (with its table code) whose description matches quantity and unit.
fn vif_candidates(quantity: &str, unit: Option<&str>) -> Vec<(Vec<u8>, vib::Description)> {
    let mut out = Vec::new();
    for code in 0..0x7Bu8 {
        let d = vib::primary(code);
        if d.quantity == quantity && d.unit == unit {
            out.push((vec![code], d));
        }
    }
    for (marker, table) in [
        (0x7Du8, vib::table_fd as fn(u8) -> vib::Description),
        (0x7B, vib::table_fb),
    ] {
        for code in 0..0x80u8 {
            let d = table(code);
            if d.quantity == quantity && d.unit == unit {
                out.push((vec![marker, code], d));
            }
        }
    }
    out
}

/// The combinable VIFE codes for annotation names.
fn annotation_codes(names: &[String]) -> Result<Vec<u8>, EncodeError> {
    let find = |second: bool, name: &str| {
        (0..0x7Fu8)
            .find(|&c| matches!(vib::combinable(c, second), Modifier::Annotation(a) if a == name))
    };
    let mut out = Vec::new();
    for name in names {
        match (find(false, name), find(true, name)) {
            (Some(c), _) => out.push(c),
            (None, Some(c)) => out.extend([0x7C, c]),
            _ => return err(format!("unknown annotation {name}")),
        }
    }
    Ok(out)
}

fn smallest_int(raw: i128, unsigned: bool) -> Option<(DataField, usize)> {
    for (df, n) in [
        (DataField::Int8, 1usize),
        (DataField::Int16, 2),
        (DataField::Int24, 3),
        (DataField::Int32, 4),
        (DataField::Int48, 6),
        (DataField::Int64, 8),
    ] {
        let bits = 8 * n as u32;
        let fits = if unsigned {
            raw >= 0 && raw < (1i128 << bits)
        } else {
            raw >= -(1i128 << (bits - 1)) && raw < (1i128 << (bits - 1))
        };
        if fits {
            return Some((df, n));
        }
    }
    None
}

fn bcd_bytes(raw: i128) -> Option<(DataField, Vec<u8>)> {
    let negative = raw < 0;
    let digits: Vec<u8> = raw
        .unsigned_abs()
        .to_string()
        .bytes()
        .map(|b| b - b'0')
        .collect();
    let need = digits.len() + usize::from(negative);
    let (df, n) = [
        (DataField::Bcd2, 2usize),
        (DataField::Bcd4, 4),
        (DataField::Bcd6, 6),
        (DataField::Bcd8, 8),
        (DataField::Bcd12, 12),
    ]
    .into_iter()
    .find(|(_, n)| *n >= need)?;
    let mut nibbles = vec![0u8; n];
    for (slot, d) in nibbles.iter_mut().zip(digits.iter().rev()) {
        *slot = *d;
    }
    if negative && let Some(last) = nibbles.last_mut() {
        *last = 0xF;
    }
    Some((
        df,
        nibbles
            .chunks(2)
            .map(|p| match p {
                [lo, hi] => lo | hi << 4,
                [lo] => *lo,
                _ => 0,
            })
            .collect(),
    ))
}

/// A record's data field, data, LVAR byte and VIF bytes.
type Encoding = (DataField, Vec<u8>, Option<u8>, Vec<u8>);

/// Encodes one record.
///
/// # Errors
/// Unknown quantity or unit, a value the tables cannot represent exactly.
pub fn encode_record(r: &RecordDesc) -> Result<Vec<u8>, EncodeError> {
    if let Some(raw) = &r.raw {
        return crate::input::parse_hex(raw).map_err(EncodeError);
    }
    let Some(quantity) = r.quantity.as_deref() else {
        return err("a record needs a quantity (or raw)");
    };
    let function = function(r.function.as_deref())?;
    let extra = annotation_codes(&r.annotations)?;
    let unit = r.unit.as_deref();
    let value = r.value.clone().unwrap_or(serde_json::Value::Null);
    let candidates = vif_candidates(quantity, unit);
    if candidates.is_empty() {
        return err(format!("no VIF for quantity {quantity} with unit {unit:?}"));
    }
    let dib = |data_field| DibRepr {
        data_field,
        function,
        storage: r.storage,
        tariff: r.tariff,
        subunit: r.subunit,
    };
    let Some((vif, desc)) = candidates.first() else {
        return err(format!("no VIF for quantity {quantity} with unit {unit:?}"));
    };
    let (data_field, data, lvar, vif): (DataField, Vec<u8>, Option<u8>, Vec<u8>) = match desc.coding
    {
        Coding::Time => {
            let s = value
                .as_str()
                .ok_or_else(|| EncodeError(format!("{quantity} needs a date string")))?;
            if let Some(d) = parse_date(s) {
                (DataField::Int16, d.to_type_g().to_vec(), None, vec![0x6C])
            } else if let Some(dt) = parse_datetime(s) {
                if dt.time.second.is_some() {
                    (DataField::Int48, dt.to_type_i().to_vec(), None, vif.clone())
                } else {
                    (DataField::Int32, dt.to_type_f().to_vec(), None, vif.clone())
                }
            } else if let Some(t) = parse_time(s) {
                (
                    DataField::Int24,
                    vec![t.second.unwrap_or(0), t.minute, t.hour],
                    None,
                    vif.clone(),
                )
            } else {
                return err(format!("{s:?} is not an ISO 8601 date, date-time or time"));
            }
        }
        Coding::Identifier | Coding::Raw | Coding::Manufacturer if value.is_string() => {
            let s = value.as_str().unwrap_or("");
            if desc.coding == Coding::Identifier
                && !s.is_empty()
                && s.len() <= 12
                && s.bytes().all(|b| b.is_ascii_digit())
            {
                let (df, bytes) = bcd_bytes(s.parse::<i128>().unwrap_or(0))
                    .ok_or_else(|| EncodeError("identifier too long".into()))?;
                // Keep leading zeros: as many digits as given, rounded up to a BCD size.
                let (df, bytes) = match s.len() {
                    0..=2 => (df, bytes),
                    n => pad_bcd(bytes, n),
                };
                (df, bytes, None, vif.clone())
            } else if desc.coding == Coding::Manufacturer {
                let m = ManufacturerCode::parse(s)
                    .ok_or_else(|| EncodeError(format!("{s:?} is not a manufacturer code")))?;
                (DataField::Int16, m.to_bytes().to_vec(), None, vif.clone())
            } else if desc.coding == Coding::Raw {
                let b = crate::input::parse_hex(s).map_err(EncodeError)?;
                let l = u8::try_from(b.len())
                    .ok()
                    .filter(|&l| l <= 0x0F)
                    .map(|l| 0xE0 + l);
                match l {
                    Some(l) => (DataField::Variable, b, Some(l), vif.clone()),
                    None => return err("raw values longer than 15 bytes are not supported"),
                }
            } else {
                let text: Vec<u8> = s.bytes().rev().collect();
                let l = u8::try_from(text.len())
                    .ok()
                    .filter(|&l| l <= 0xBF)
                    .ok_or_else(|| EncodeError("text too long".into()))?;
                (DataField::Variable, text, Some(l), vif.clone())
            }
        }
        _ if value.is_string() => {
            let s = value.as_str().unwrap_or("");
            let text: Vec<u8> = s.bytes().rev().collect();
            let l = u8::try_from(text.len())
                .ok()
                .filter(|&l| l <= 0xBF)
                .ok_or_else(|| EncodeError("text too long".into()))?;
            (DataField::Variable, text, Some(l), vif.clone())
        }
        _ => {
            let (mantissa, exponent) = decimal(&value)?;
            let unsigned = matches!(desc.coding, Coding::Unsigned | Coding::Bits);
            // The largest exponent that represents the value exactly.
            let mut best: Option<(i128, &Vec<u8>, &vib::Description)> = None;
            for (v, d) in &candidates {
                let e = i32::from(d.exponent);
                if let Some(raw) = rescale(mantissa, exponent, e)
                    && best.is_none_or(|(_, _, bd)| d.exponent > bd.exponent)
                {
                    best = Some((raw, v, d));
                }
            }
            let Some((raw, v, _)) = best else {
                return err(format!(
                    "{quantity} {} {unit:?} needs more decimals than any VIF gives",
                    value
                ));
            };
            let fixed = |df: DataField| -> Result<Encoding, EncodeError> {
                let n = df.len().unwrap_or(0);
                if df.is_bcd() {
                    let (_, bytes) = bcd_bytes(raw).ok_or_else(|| {
                        EncodeError(format!("{raw} needs more than 12 BCD digits"))
                    })?;
                    if bytes.len() > n {
                        return err(format!("{raw} does not fit {n} BCD bytes"));
                    }
                    let negative = raw < 0;
                    let (_, mut padded) =
                        pad_bcd(bcd_bytes(raw.abs()).map(|b| b.1).unwrap_or_default(), 2 * n);
                    if negative && let Some(last) = padded.last_mut() {
                        *last |= 0xF0;
                    }
                    return Ok((df, padded, None, v.clone()));
                }
                let fits = smallest_int(raw, unsigned).is_some_and(|(_, m)| m <= n);
                if !fits {
                    return err(format!("{raw} does not fit {n} bytes"));
                }
                Ok((
                    df,
                    raw.to_le_bytes().get(..n).unwrap_or_default().to_vec(),
                    None,
                    v.clone(),
                ))
            };
            match r.coding.as_deref().unwrap_or("int") {
                "int8" => fixed(DataField::Int8)?,
                "int16" => fixed(DataField::Int16)?,
                "int24" => fixed(DataField::Int24)?,
                "int32" => fixed(DataField::Int32)?,
                "int48" => fixed(DataField::Int48)?,
                "int64" => fixed(DataField::Int64)?,
                "bcd2" => fixed(DataField::Bcd2)?,
                "bcd4" => fixed(DataField::Bcd4)?,
                "bcd6" => fixed(DataField::Bcd6)?,
                "bcd8" => fixed(DataField::Bcd8)?,
                "bcd12" => fixed(DataField::Bcd12)?,
                "bcd" => {
                    let (df, bytes) = bcd_bytes(raw).ok_or_else(|| {
                        EncodeError(format!("{raw} needs more than 12 BCD digits"))
                    })?;
                    (df, bytes, None, v.clone())
                }
                "real" => {
                    let f = raw as f32;
                    (DataField::Real32, f.to_le_bytes().to_vec(), None, v.clone())
                }
                "int" => {
                    let (df, n) = smallest_int(raw, unsigned)
                        .ok_or_else(|| EncodeError(format!("{raw} does not fit 64 bits")))?;
                    let bytes = raw.to_le_bytes();
                    (
                        df,
                        bytes.get(..n).unwrap_or_default().to_vec(),
                        None,
                        v.clone(),
                    )
                }
                other => return err(format!("unknown coding {other}")),
            }
        }
    };
    let mut codes: Vec<u8> = vif.iter().skip(1).copied().collect();
    codes.extend(&extra);
    let mut vib_bytes = [0u8; 1 + vib::MAX_VIFE];
    let n = vib::encode(
        vif.first().copied().unwrap_or_default(),
        &codes,
        &mut vib_bytes,
    )
    .ok_or_else(|| EncodeError("too many VIFEs".into()))?;
    let repr = wmbus_frame::apl::RecordRepr {
        dib: dib(data_field),
        vib: vib_bytes.get(..n).unwrap_or_default(),
        plain_text: None,
        data: &data,
        lvar,
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut out)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(out)
}

fn pad_bcd(bytes: Vec<u8>, digits: usize) -> (DataField, Vec<u8>) {
    let (df, n) = [
        (DataField::Bcd2, 1usize),
        (DataField::Bcd4, 2),
        (DataField::Bcd6, 3),
        (DataField::Bcd8, 4),
        (DataField::Bcd12, 6),
    ]
    .into_iter()
    .find(|(_, n)| 2 * n >= digits)
    .unwrap_or((DataField::Bcd12, 6));
    let mut b = bytes;
    b.resize(n, 0);
    (df, b)
}

fn parse_date(s: &str) -> Option<Date> {
    let (y, rest) = s.split_once('-')?;
    let (m, d) = rest.split_once('-')?;
    if d.len() != 2 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
}

fn parse_time(s: &str) -> Option<Time> {
    let mut it = s.split(':');
    let hour = it.next()?.parse().ok()?;
    let minute = it.next()?.parse().ok()?;
    let second = match it.next() {
        Some(x) => Some(x.parse().ok()?),
        None => None,
    };
    (hour < 24 && minute < 60 && second.is_none_or(|s: u8| s < 60)).then_some(Time {
        hour,
        minute,
        second,
    })
}

/// Parses `YYYY-MM-DDTHH:MM` (or with `:SS`) into a date/time.
pub fn parse_datetime(s: &str) -> Option<DateTime> {
    let (d, t) = s.split_once('T')?;
    Some(DateTime {
        date: parse_date(d)?,
        time: parse_time(t)?,
        summer_time: false,
    })
}

fn key(desc: &Description) -> Result<Option<Key>, EncodeError> {
    match &desc.key {
        None => Ok(None),
        Some(k) => Key::from_hex(k)
            .map(Some)
            .ok_or_else(|| EncodeError("key must be 32 hex digits".into())),
    }
}

/// Builds the frames a description describes.
///
/// # Errors
/// [`EncodeError`] naming what is wrong.
pub fn encode(desc: &Description) -> Result<Encoded, EncodeError> {
    encode_with(desc, key(desc)?.as_ref(), None)
}

/// [`encode`] with the key given as a [`Key`] (zeroized, never in a string) instead of the
/// description's, and optionally the application data as bytes instead of its records
/// (2F2F is still put in front for modes 5 and 7).
///
/// # Errors
/// [`EncodeError`] naming what is wrong.
pub fn encode_with(
    desc: &Description,
    key: Option<&Key>,
    application_data: Option<&[u8]>,
) -> Result<Encoded, EncodeError> {
    let meter = desc.meter.to_address()?;
    let sender = match &desc.link.address {
        Some(a) => a.to_address()?,
        None => meter,
    };
    let t = &desc.tpl;
    let mode = t.security_mode;
    let mut application = Vec::new();
    if matches!(mode, 5 | 7) {
        application.extend([0x2F, 0x2F]);
    }
    match application_data {
        Some(data) => application.extend_from_slice(data),
        None => {
            for r in &desc.records {
                application.extend(encode_record(r)?);
            }
        }
    }
    // Transport header.
    let ci = CiField(t.ci.unwrap_or(match t.header {
        HeaderDesc::None => 0x78,
        HeaderDesc::Short => 0x7A,
        HeaderDesc::Long => 0x72,
    }));
    let header_kind = ci
        .tpl_header()
        .ok_or_else(|| EncodeError(format!("CI {:02X}h is not a transport CI", ci.0)))?;
    let counter = t
        .counter
        .or(desc.afl.as_ref().and_then(|a| a.message_counter));
    let blocks = |len: usize, padding: bool| -> Result<u16, EncodeError> {
        let n = len.div_ceil(16).max(1) + usize::from(padding && len.is_multiple_of(16));
        u16::try_from(n)
            .ok()
            .filter(|&n| n <= 15)
            .ok_or_else(|| EncodeError("more than 15 encrypted blocks".into()))
    };
    let bits = t.config_bits & !0x1F00;
    let kdf = |default: u8| u16::from(t.kdf.unwrap_or(default) & 0x3);
    let (config, mode_fields) = match mode {
        0 => (bits, ModeFields::None),
        5 => (
            (bits & 0xE00F) | 0x0500 | blocks(application.len(), false)? << 4,
            ModeFields::None,
        ),
        7 => {
            let cf = (bits & 0xC000)
                | if t.counter.is_some() { 0x2000 } else { 0 }
                | 0x0700
                | blocks(application.len(), t.padding)? << 4
                | if t.padding { 0x08 } else { 0 };
            let cfe = (u16::from(t.key_version.is_some()) << 6)
                | kdf(1) << 4
                | u16::from(t.key_id & 0x0F);
            (
                cf,
                ModeFields::Mode7 {
                    extension: ConfigExtension(cfe),
                    key_version: t.key_version,
                    message_counter: t.counter,
                },
            )
        }
        9 => {
            let len =
                u16::try_from(application.len()).map_err(|_| EncodeError("too long".into()))?;
            (
                0x2900
                    | kdf(0) << 4
                    | u16::from(t.key_id & 0x0F)
                    | if len > 0xFF { 0x40 } else { 0 },
                ModeFields::Mode9 {
                    encrypted_len: len,
                    unencrypted_len: 0,
                    counter: counter
                        .ok_or_else(|| EncodeError("mode 9 needs tpl.counter".into()))?,
                },
            )
        }
        10 => {
            let tag = t.tag_length.unwrap_or(8);
            let code = match tag {
                4 => 0,
                8 => 1,
                12 => 2,
                16 => 3,
                _ => return err("mode 10 tag_length must be 4, 8, 12 or 16"),
            };
            let n = u16::try_from(application.len())
                .ok()
                .filter(|&n| n < 0xFF)
                .unwrap_or(0xFF);
            let cfe = (u16::from(t.key_version.is_some()) << 6)
                | kdf(1) << 4
                | u16::from(t.key_id & 0x0F)
                | code << 8;
            (
                (bits & 0xC000) | 0x2A00 | n,
                ModeFields::Mode10 {
                    extension: ConfigExtension(cfe),
                    key_version: t.key_version,
                    message_counter: Some(
                        counter.ok_or_else(|| EncodeError("mode 10 needs tpl.counter".into()))?,
                    ),
                },
            )
        }
        other => {
            return err(format!(
                "security mode {other} cannot be encoded (0, 5, 7, 9 and 10 can)"
            ));
        }
    };
    let tpl = TplRepr {
        ci,
        header: match header_kind {
            wmbus_frame::codepoints::TplHeaderKind::None => {
                if mode != 0 {
                    return err("a security mode needs a short or long transport header");
                }
                None
            }
            kind => Some(TplHeader {
                meter: (kind == wmbus_frame::codepoints::TplHeaderKind::Long).then_some(meter),
                access_number: t.access_number,
                status: Status(t.status),
                config: ConfigField(config),
                mode_fields,
            }),
        },
    };
    // AFL.
    let afl_desc = desc
        .afl
        .clone()
        .or_else(|| (mode == 7).then(AflDesc::default));
    let afl = match &afl_desc {
        None => None,
        Some(a) => {
            let at = a
                .authentication_type
                .unwrap_or(if mode == 7 { 5 } else { 0 });
            let mcr = a.message_counter.or(if mode == 7 && t.counter.is_none() {
                counter
            } else {
                None
            });
            if mode == 7 && t.counter.is_none() && mcr.is_none() {
                return err("mode 7 needs afl.message_counter (or tpl.counter)");
            }
            let mut mcl = at & 0x0F;
            if mcr.is_some() {
                mcl |= 0x20;
            }
            if a.message_length {
                mcl |= 0x40;
            }
            if a.key_information.is_some() {
                mcl |= 0x10;
            }
            Some(AflRepr {
                fragment_id: u8::from(!a.fragments.is_empty()),
                more_fragments: !a.fragments.is_empty(),
                reserved_bits: 0,
                message_control: Some(MessageControl(mcl)),
                key_information: a.key_information.map(KeyInformation),
                message_counter: mcr,
                mac: None,
                message_length: a.message_length.then_some(0),
            })
        }
    };
    // Link layer and ELL.
    let wired = desc.link.format == FormatDesc::Wired;
    let control = match &desc.link.c_field {
        Some(c) => c.value()?,
        None if wired => ControlField::RSP_UD,
        None => ControlField::SND_NR,
    };
    let link = if wired {
        Link::Wired(WiredRepr {
            kind: WiredKind::Long,
            control,
            primary_address: desc.link.primary_address.unwrap_or(0xFD),
        })
    } else {
        Link::Wireless(DllRepr {
            control,
            address: sender,
        })
    };
    let ell = match &desc.ell {
        None => None,
        Some(e) => {
            if wired {
                return err("wired frames carry no ELL");
            }
            let sn = (e.encrypt || e.session_number).then(|| {
                SessionNumber(
                    u32::from(e.encrypt) << 29
                        | (e.session_time & 0x01FF_FFFF) << 4
                        | u32::from(e.session & 0x0F),
                )
            });
            Some(EllRepr {
                communication_control: CommunicationControl(e.communication_control),
                access_number: e.access_number.unwrap_or(t.access_number),
                address: e
                    .address
                    .as_ref()
                    .map(AddressDesc::to_address)
                    .transpose()?,
                session_number: sn,
            })
        }
    };
    let mut keys = MemoryKeyStore::new();
    if let Some(k) = key {
        keys.insert(None, meter.address.ident, None, k.clone());
        keys.insert(None, sender.address.ident, None, k.clone());
    } else if mode != 0 || desc.ell.as_ref().is_some_and(|e| e.encrypt) {
        return err("this security needs a key");
    }
    let spec = SealSpec {
        link,
        ell,
        afl,
        tpl,
        application: &application,
    };
    let profile = Mode9Profile::default();
    let normalised = match afl_desc.as_ref().filter(|a| !a.fragments.is_empty()) {
        Some(a) => seal::seal_fragmented(
            &spec,
            &a.fragments,
            &ell.into_iter().collect::<Vec<_>>(),
            &keys,
            &profile,
        ),
        None => seal::seal(&spec, &keys, &profile).map(|f| vec![f]),
    }
    .map_err(|e| EncodeError(format!("sealing: {e}")))?;
    let format = match desc.link.format {
        FormatDesc::A => FrameFormat::A,
        FormatDesc::B => FrameFormat::B,
        FormatDesc::None | FormatDesc::Wired => FrameFormat::NoCrc,
    };
    let mut frames = Vec::new();
    for f in normalised {
        if wired {
            frames.push(f);
            continue;
        }
        let mut out = [0u8; MAX_RAW_FRAME_LEN];
        let n =
            dll::emit_with_crcs(&f, format, &mut out).map_err(|e| EncodeError(e.to_string()))?;
        frames.push(out.get(..n).unwrap_or_default().to_vec());
    }
    Ok(Encoded { frames })
}
