//! Keys and key stores.
//!
//! [`Key`] is a 16-byte AES key: zeroized on drop, redacted in `Debug`, with no `Display`.
//! A [`KeyStore`] answers which key a meter uses; [`MemoryKeyStore`] keeps them in memory.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use aes::Aes128;
use cipher::KeyInit;
use wmbus_frame::codepoints::{Ident, ManufacturerCode, MeterAddress};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 16-byte AES-128 key, with its AES key schedule expanded once when the key is made: a
/// stored key decrypts every telegram of its meter without expanding it again. Both are
/// zeroized on drop (the schedule by `aes`'s `zeroize` feature).
#[derive(Clone)]
pub struct Key {
    bytes: [u8; 16],
    cipher: Aes128,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Key {}

impl Zeroize for Key {
    fn zeroize(&mut self) {
        self.bytes.zeroize();
        // The old schedule is zeroized as it drops.
        self.cipher = Aes128::new(&self.bytes.into());
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl ZeroizeOnDrop for Key {}

impl Key {
    /// From raw bytes (expands the key schedule).
    pub fn new(bytes: [u8; 16]) -> Self {
        Self {
            cipher: Aes128::new(&bytes.into()),
            bytes,
        }
    }

    /// The expanded AES-128 cipher of this key.
    pub const fn cipher(&self) -> &Aes128 {
        &self.cipher
    }

    /// Parses 32 hexadecimal digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let [hi, lo] = pair else { return None };
            *o = hex_val(*hi)? << 4 | hex_val(*lo)?;
        }
        let key = Self::new(out);
        out.zeroize();
        Some(key)
    }

    /// The key bytes. Handle with care: do not log them.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.bytes
    }
}

pub(crate) const fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// An 8-byte DES key for the deprecated modes 2 and 3.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DesKey([u8; 8]);

impl DesKey {
    /// From raw bytes.
    pub const fn new(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }
    /// The key bytes.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Debug for DesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DesKey(<redacted>)")
    }
}

/// Which key is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRequest {
    /// The meter whose key it is (for partner-to-meter messages: the addressed meter).
    pub meter: MeterAddress,
    /// Key ID from CFE, KI or CF (0 where the mode has none).
    pub key_id: u8,
    /// Key version, where the message names one.
    pub key_version: Option<u8>,
}

/// Where keys come from: keyed by meter (manufacturer and identification number).
pub trait KeyStore {
    /// The AES key for this request, if known.
    fn key(&self, request: &KeyRequest) -> Option<&Key>;

    /// The DES key for a meter, if known (modes 2 and 3).
    fn des_key(&self, _meter: &MeterAddress) -> Option<&DesKey> {
        None
    }
}

/// Which meters an entry of a [`MemoryKeyStore`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Selector {
    manufacturer: Option<ManufacturerCode>,
    key_id: Option<u8>,
}

/// A key store in memory. Lookups prefer an entry naming the manufacturer over one that gives
/// only the identification number, and an entry naming the key ID over one that does not.
#[derive(Default, Clone)]
pub struct MemoryKeyStore {
    aes: BTreeMap<Ident, Vec<(Selector, Key)>>,
    des: BTreeMap<Ident, Vec<(Option<ManufacturerCode>, DesKey)>>,
}

impl fmt::Debug for MemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryKeyStore")
            .field("aes_meters", &self.aes.len())
            .field("des_meters", &self.des.len())
            .finish()
    }
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the key of meter `ident` (any manufacturer when `None`), for every key ID when
    /// `key_id` is `None`. A later entry with the same selector replaces an earlier one.
    pub fn insert(
        &mut self,
        manufacturer: Option<ManufacturerCode>,
        ident: Ident,
        key_id: Option<u8>,
        key: Key,
    ) {
        let selector = Selector {
            manufacturer,
            key_id,
        };
        let list = self.aes.entry(ident).or_default();
        list.retain(|(s, _)| *s != selector);
        list.push((selector, key));
        // Most specific first: manufacturer named, then key ID named.
        list.sort_by_key(|(s, _)| (s.manufacturer.is_none(), s.key_id.is_none()));
    }

    /// Adds a DES key.
    pub fn insert_des(
        &mut self,
        manufacturer: Option<ManufacturerCode>,
        ident: Ident,
        key: DesKey,
    ) {
        let list = self.des.entry(ident).or_default();
        list.retain(|(m, _)| *m != manufacturer);
        list.push((manufacturer, key));
        list.sort_by_key(|(m, _)| m.is_none());
    }

    /// Number of meters with an AES key.
    pub fn len(&self) -> usize {
        self.aes.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.aes.is_empty() && self.des.is_empty()
    }

    /// True when some key is stored for this meter (any key ID).
    pub fn has_meter(&self, meter: &MeterAddress) -> bool {
        self.aes.get(&meter.address.ident).is_some_and(|l| {
            l.iter()
                .any(|(s, _)| s.manufacturer.is_none_or(|m| m == meter.manufacturer))
        })
    }
}

impl KeyStore for MemoryKeyStore {
    fn key(&self, request: &KeyRequest) -> Option<&Key> {
        let list = self.aes.get(&request.meter.address.ident)?;
        list.iter()
            .find(|(s, _)| {
                s.manufacturer
                    .is_none_or(|m| m == request.meter.manufacturer)
                    && s.key_id.is_none_or(|k| k == request.key_id)
            })
            .map(|(_, k)| k)
    }

    fn des_key(&self, meter: &MeterAddress) -> Option<&DesKey> {
        let list = self.des.get(&meter.address.ident)?;
        list.iter()
            .find(|(m, _)| m.is_none_or(|m| m == meter.manufacturer))
            .map(|(_, k)| k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wmbus_frame::codepoints::{Address, DeviceType};

    fn meter(m: &str, id: u32) -> MeterAddress {
        MeterAddress {
            manufacturer: ManufacturerCode::parse(m).unwrap(),
            address: Address {
                ident: Ident(id),
                version: 1,
                device_type: DeviceType::WATER,
            },
        }
    }

    #[test]
    fn debug_is_redacted() {
        let k = Key::from_hex("000102030405060708090A0B0C0D0E0F").unwrap();
        assert_eq!(std::format!("{k:?}"), "Key(<redacted>)");
        assert!(Key::from_hex("0001").is_none());
        assert!(Key::from_hex("zz0102030405060708090A0B0C0D0E0F").is_none());
    }

    #[test]
    fn lookup_prefers_the_specific_entry() {
        let mut s = MemoryKeyStore::new();
        let any = Key::new([1; 16]);
        let kam = Key::new([2; 16]);
        let kam_key3 = Key::new([3; 16]);
        s.insert(None, Ident(0x1234_5678), None, any.clone());
        s.insert(
            ManufacturerCode::parse("KAM"),
            Ident(0x1234_5678),
            None,
            kam.clone(),
        );
        s.insert(
            ManufacturerCode::parse("KAM"),
            Ident(0x1234_5678),
            Some(3),
            kam_key3.clone(),
        );
        let req = |m, key_id| KeyRequest {
            meter: meter(m, 0x1234_5678),
            key_id,
            key_version: None,
        };
        assert_eq!(s.key(&req("KAM", 0)), Some(&kam));
        assert_eq!(s.key(&req("KAM", 3)), Some(&kam_key3));
        assert_eq!(s.key(&req("ELS", 0)), Some(&any));
        assert_eq!(
            s.key(&KeyRequest {
                meter: meter("ELS", 1),
                key_id: 0,
                key_version: None
            }),
            None
        );
    }
}
