//! Key files and `--key` arguments.
//!
//! One meter per line: `<id> <32 hex digits>` or `<MFR>.<id> <32 hex digits>`; 16 hex digits
//! give a DES key (modes 2 and 3). Optional fields after the key name a key ID and version,
//! `id=20 version=3` (ID in hex, version in decimal): without `id` the key serves every key
//! ID of the meter (its master key); `id=20` serves only key 20h (an application key of
//! SITP, `wmbus meter`). `#` starts a comment; blank lines are skipped. A key file readable
//! by group or others draws a warning.

use std::fmt;
use std::path::Path;

use wmbus_frame::codepoints::{Ident, ManufacturerCode};
use wmbus_security::key::{DesKey, Key, MemoryKeyStore};

/// A key line or argument that does not parse; never contains the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// Where: "FILE:LINE" or "--key".
    pub location: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}

impl std::error::Error for KeyError {}

/// One parsed key entry.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Manufacturer, when the entry names one.
    pub manufacturer: Option<ManufacturerCode>,
    /// Identification number.
    pub ident: Ident,
    /// The key.
    pub key: KeyMaterial,
    /// Key ID (`id=`), when the entry names one.
    pub key_id: Option<u8>,
    /// Key version (`version=`).
    pub key_version: Option<u8>,
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("manufacturer", &self.manufacturer)
            .field("ident", &self.ident)
            .field("key_id", &self.key_id)
            .field("key_version", &self.key_version)
            .finish_non_exhaustive()
    }
}

/// AES or DES key material.
#[derive(Clone, PartialEq, Eq, Debug)]
// A key carries its expanded schedule (368 bytes); entries are made once per key-file line.
#[allow(clippy::large_enum_variant)]
pub enum KeyMaterial {
    /// AES-128.
    Aes(Key),
    /// DES.
    Des(DesKey),
}

/// Parses `<id>` or `<MFR>.<id>`.
pub fn parse_meter(text: &str) -> Option<(Option<ManufacturerCode>, Ident)> {
    match text.split_once('.') {
        Some((m, id)) => Some((Some(ManufacturerCode::parse(m)?), Ident::parse(id)?)),
        None => Some((None, Ident::parse(text)?)),
    }
}

fn parse_key(text: &str) -> Option<KeyMaterial> {
    match text.len() {
        32 => Key::from_hex(text).map(KeyMaterial::Aes),
        16 => {
            let b = hex::decode(text).ok()?;
            Some(KeyMaterial::Des(DesKey::new(b.try_into().ok()?)))
        }
        _ => None,
    }
}

/// Parses one entry, `meter key` (file) or `meter=key` (argument).
///
/// # Errors
/// [`KeyError`] naming what is wrong, never echoing the key.
pub fn parse_entry(meter: &str, key: &str, location: &str) -> Result<KeyEntry, KeyError> {
    let err = |reason| KeyError {
        location: location.to_string(),
        reason,
    };
    let (manufacturer, ident) = parse_meter(meter)
        .ok_or_else(|| err("meter must be <id> (up to 8 digits) or <MFR>.<id>"))?;
    let key =
        parse_key(key).ok_or_else(|| err("key must be 32 hex digits (AES-128) or 16 (DES)"))?;
    Ok(KeyEntry {
        manufacturer,
        ident,
        key,
        key_id: None,
        key_version: None,
    })
}

fn parse_options(entry: &mut KeyEntry, fields: &[&str]) -> Result<(), &'static str> {
    for f in fields {
        match f.split_once('=') {
            Some(("id", v)) => {
                entry.key_id =
                    Some(u8::from_str_radix(v, 16).map_err(|_| "id= takes a hex key ID (00-FF)")?);
            }
            Some(("version", v)) => {
                entry.key_version = Some(v.parse().map_err(|_| "version= takes 0-255")?);
            }
            _ => return Err("after the key only id=HH and version=N may follow"),
        }
    }
    Ok(())
}

/// Parses a key file's text.
///
/// # Errors
/// The first line that does not parse.
pub fn parse_file(text: &str, name: &str) -> Result<Vec<KeyEntry>, KeyError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let location = format!("{name}:{}", i + 1);
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        let [meter, key, options @ ..] = parts.as_slice() else {
            return Err(KeyError {
                location,
                reason: "expected two fields: <meter> <key>",
            });
        };
        let mut entry = parse_entry(meter, key, &location)?;
        parse_options(&mut entry, options).map_err(|reason| KeyError {
            location: location.clone(),
            reason,
        })?;
        out.push(entry);
    }
    Ok(out)
}

/// Parses a `--key <meter>=<key>` argument.
///
/// # Errors
/// [`KeyError`].
pub fn parse_argument(arg: &str) -> Result<KeyEntry, KeyError> {
    let Some((meter, key)) = arg.split_once('=') else {
        return Err(KeyError {
            location: "--key".into(),
            reason: "expected <meter>=<key>",
        });
    };
    parse_entry(meter.trim(), key.trim(), "--key")
}

/// A warning when a key file can be read by group or others (Unix).
pub fn permission_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o077 != 0 {
            return Some(format!(
                "warning: key file {} is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// Adds entries to a key store.
pub fn load_into(store: &mut MemoryKeyStore, entries: Vec<KeyEntry>) {
    for e in entries {
        match e.key {
            KeyMaterial::Aes(k) => store.insert(e.manufacturer, e.ident, e.key_id, k),
            KeyMaterial::Des(k) => store.insert_des(e.manufacturer, e.ident, k),
        }
    }
}

/// The AES key of `meter` with this key ID, and its version (0 when the entry gives none):
/// `None` or `Some(0)` asks for the master key (an entry without `id=`, or `id=00`).
pub fn find_key(
    entries: &[KeyEntry],
    meter: &wmbus_frame::codepoints::MeterAddress,
    key_id: Option<u8>,
) -> Option<(Key, u8)> {
    entries
        .iter()
        .filter(|e| {
            e.ident == meter.address.ident && e.manufacturer.is_none_or(|m| m == meter.manufacturer)
        })
        .filter(|e| match key_id {
            None | Some(0) => e.key_id.is_none_or(|i| i == 0),
            Some(id) => e.key_id == Some(id),
        })
        .find_map(|e| match &e.key {
            KeyMaterial::Aes(k) => Some((k.clone(), e.key_version.unwrap_or(0))),
            KeyMaterial::Des(_) => None,
        })
}

/// The key file's text with the entry of `meter` and `key_id` (`None`: the master key line,
/// one without `id=`) replaced by `key` and `version`, or appended when there is none;
/// comments and other lines stay as they are.
pub fn replace_entry(
    text: &str,
    meter: &str,
    key_id: Option<u8>,
    key: &Key,
    version: u8,
) -> zeroize::Zeroizing<String> {
    let hex_key: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(key.as_bytes().iter().map(|b| format!("{b:02X}")).collect());
    let id = key_id.map(|i| format!(" id={i:02X}")).unwrap_or_default();
    let line_for = |_: &str| format!("{meter} {}{id} version={version}", hex_key.as_str());
    let target = parse_meter(meter);
    let mut out = zeroize::Zeroizing::new(String::new());
    let mut done = false;
    for line in text.lines() {
        let body = line.split('#').next().unwrap_or("").trim();
        let parts: Vec<&str> = body.split_ascii_whitespace().collect();
        let same = match parts.as_slice() {
            [m, _, options @ ..] => {
                let mut e = KeyEntry {
                    manufacturer: None,
                    ident: Ident(0),
                    key: KeyMaterial::Aes(Key::new([0; 16])),
                    key_id: None,
                    key_version: None,
                };
                parse_meter(m) == target
                    && parse_options(&mut e, options).is_ok()
                    && e.key_id == key_id
            }
            _ => false,
        };
        if same && !done {
            out.push_str(&line_for(line));
            done = true;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    if !done {
        out.push_str(&line_for(""));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_arguments() {
        let text = "# meters\n12345678 000102030405060708090A0B0C0D0E0F\nKAM.27343111 0102030405060708090a0b0c0d0e0f10 # trailing\n\n00000001 0102030405060708\n";
        let e = parse_file(text, "keys").unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].manufacturer, ManufacturerCode::parse("KAM"));
        assert!(matches!(e[2].key, KeyMaterial::Des(_)));
        let err = parse_file("12345678 00112233", "keys").unwrap_err();
        assert_eq!(
            err.to_string(),
            "keys:1: key must be 32 hex digits (AES-128) or 16 (DES)"
        );
        let err = parse_file("1234567890 000102030405060708090A0B0C0D0E0F", "k").unwrap_err();
        assert!(err.to_string().contains("meter must be"));
        assert!(!format!("{e:?}").contains("0102"));
        let e = parse_file(
            "XYZ.12345678 000102030405060708090A0B0C0D0E0F id=20 version=3\n",
            "k",
        )
        .unwrap();
        assert_eq!((e[0].key_id, e[0].key_version), (Some(0x20), Some(3)));
        assert!(parse_file("1 000102030405060708090A0B0C0D0E0F id=xy", "k").is_err());
        assert!(parse_file("1 000102030405060708090A0B0C0D0E0F extra", "k").is_err());
        let a = parse_argument("ELS.12345678=0102030405060708090A0B0C0D0E0F11").unwrap();
        assert_eq!(a.ident, Ident(0x1234_5678));
        assert!(parse_argument("12345678").is_err());
    }

    #[test]
    fn replacing_an_entry_keeps_the_rest() {
        let text = "# keys\nXYZ.12345678 000102030405060708090A0B0C0D0E0F # MK\nXYZ.12345678 08154711081547110815471108154711 id=20\n";
        let new = Key::new([0xAB; 16]);
        let out = replace_entry(text, "XYZ.12345678", None, &new, 1);
        assert_eq!(
            out.as_str(),
            "# keys\nXYZ.12345678 ABABABABABABABABABABABABABABABAB version=1\nXYZ.12345678 08154711081547110815471108154711 id=20\n"
        );
        let out = replace_entry(&out, "XYZ.12345678", Some(0x20), &new, 4);
        assert!(out.ends_with("XYZ.12345678 ABABABABABABABABABABABABABABABAB id=20 version=4\n"));
        let out = replace_entry("", "XYZ.1", Some(0x21), &new, 0);
        assert_eq!(
            out.as_str(),
            "XYZ.1 ABABABABABABABABABABABABABABABAB id=21 version=0\n"
        );
        assert_eq!(parse_file(&out, "k").unwrap()[0].key_id, Some(0x21));
    }
}
