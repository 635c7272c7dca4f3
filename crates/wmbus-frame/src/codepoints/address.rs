use core::fmt;

use super::{DeviceType, ManufacturerCode};

/// Identification number: 8 BCD digits sent least significant byte first
/// (`78 56 34 12` is 12345678). Kept as the raw little-endian value so that non-BCD
/// identifiers round-trip; printed as 8 hexadecimal digits (the digits on the meter).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ident(pub u32);

impl Ident {
    /// From the wire bytes.
    pub const fn from_bytes(bytes: [u8; 4]) -> Self {
        Self(u32::from_le_bytes(bytes))
    }

    /// The wire bytes.
    pub const fn to_bytes(self) -> [u8; 4] {
        self.0.to_le_bytes()
    }

    /// Parses the printed form ("12345678", or any 1–8 hexadecimal digits).
    pub fn parse(text: &str) -> Option<Self> {
        if text.is_empty() || text.len() > 8 {
            return None;
        }
        u32::from_str_radix(text, 16).ok().map(Self)
    }

    /// True when all eight digits are decimal.
    pub const fn is_bcd(self) -> bool {
        let mut v = self.0;
        let mut i = 0;
        while i < 8 {
            if v & 0xF > 9 {
                return false;
            }
            v >>= 4;
            i += 1;
        }
        true
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ident({self})")
    }
}

/// The A-field: identification number, version and device type (EN 13757-4 §11.6; 6 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Address {
    /// Identification number.
    pub ident: Ident,
    /// Version (generation) of the device.
    pub version: u8,
    /// Device type (medium).
    pub device_type: DeviceType,
}

impl Address {
    /// From the 6 wire bytes `ID(4) ‖ Version ‖ Type`.
    pub const fn from_bytes(b: [u8; 6]) -> Self {
        Self {
            ident: Ident::from_bytes([b[0], b[1], b[2], b[3]]),
            version: b[4],
            device_type: DeviceType(b[5]),
        }
    }

    /// The 6 wire bytes.
    pub const fn to_bytes(self) -> [u8; 6] {
        let id = self.ident.to_bytes();
        [id[0], id[1], id[2], id[3], self.version, self.device_type.0]
    }
}

/// Manufacturer and address together: the 8 bytes `M ‖ A` that identify a meter and enter
/// the IVs, nonces and counter blocks of the security modes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MeterAddress {
    /// M-field.
    pub manufacturer: ManufacturerCode,
    /// A-field.
    pub address: Address,
}

impl MeterAddress {
    /// The link-layer byte order: `M(2) ‖ ID(4) ‖ Version ‖ Type`.
    pub const fn to_link_bytes(self) -> [u8; 8] {
        let m = self.manufacturer.to_bytes();
        let a = self.address.to_bytes();
        [m[0], m[1], a[0], a[1], a[2], a[3], a[4], a[5]]
    }

    /// The long transport header's byte order: `ID(4) ‖ M(2) ‖ Version ‖ Type`.
    pub const fn to_long_header_bytes(self) -> [u8; 8] {
        let m = self.manufacturer.to_bytes();
        let a = self.address.to_bytes();
        [a[0], a[1], a[2], a[3], m[0], m[1], a[4], a[5]]
    }

    /// From the link-layer byte order.
    pub const fn from_link_bytes(b: [u8; 8]) -> Self {
        Self {
            manufacturer: ManufacturerCode::from_bytes([b[0], b[1]]),
            address: Address::from_bytes([b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    /// From the long transport header's byte order.
    pub const fn from_long_header_bytes(b: [u8; 8]) -> Self {
        Self {
            manufacturer: ManufacturerCode::from_bytes([b[4], b[5]]),
            address: Address::from_bytes([b[0], b[1], b[2], b[3], b[6], b[7]]),
        }
    }
}

impl fmt::Display for MeterAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.manufacturer, self.address.ident)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ident_prints_like_the_meter() {
        let id = Ident::from_bytes([0x78, 0x56, 0x34, 0x12]);
        assert_eq!(std::format!("{id}"), "12345678");
        assert!(id.is_bcd());
        assert_eq!(Ident::parse("12345678"), Some(id));
        assert!(!Ident(0x2124_589C).is_bcd());
    }

    #[test]
    fn address_orders() {
        let m = MeterAddress::from_link_bytes([0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03]);
        assert_eq!(std::format!("{m}"), "ELS 12345678");
        assert_eq!(
            m.to_long_header_bytes(),
            [0x78, 0x56, 0x34, 0x12, 0x93, 0x15, 0x33, 0x03]
        );
        assert_eq!(
            MeterAddress::from_long_header_bytes(m.to_long_header_bytes()),
            m
        );
    }
}
