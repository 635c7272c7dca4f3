use core::fmt;

/// M-field: the manufacturer's three-letter FLAG code (EN 13757-4 §11.5, EN 13757-7 §7.5.2).
///
/// Encoded as `(c1-64)·32² + (c2-64)·32 + (c3-64)` and sent least significant byte first, so
/// "KAM" is 2C2Dh on the wire as `2D 2C`. Bit 15 is not part of the letters; it round-trips.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ManufacturerCode(pub u16);

impl ManufacturerCode {
    /// From the three upper-case letters; `None` unless each is `A`..=`Z`.
    pub const fn from_letters(letters: [u8; 3]) -> Option<Self> {
        let [a, b, c] = letters;
        if !(a.is_ascii_uppercase() && b.is_ascii_uppercase() && c.is_ascii_uppercase()) {
            return None;
        }
        let v = ((a - 64) as u16) << 10 | ((b - 64) as u16) << 5 | (c - 64) as u16;
        Some(Self(v))
    }

    /// Parses "KAM" (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let [a, b, c] = bytes else { return None };
        Self::from_letters([
            a.to_ascii_uppercase(),
            b.to_ascii_uppercase(),
            c.to_ascii_uppercase(),
        ])
    }

    /// The three characters, each `'@' + 5 bits` as peers print them; outside `A`..`Z` for
    /// codes that are not valid FLAG codes.
    pub const fn letters(self) -> [u8; 3] {
        let v = self.0;
        [
            64 + ((v >> 10) & 0x1F) as u8,
            64 + ((v >> 5) & 0x1F) as u8,
            64 + (v & 0x1F) as u8,
        ]
    }

    /// True when every letter is `A`..=`Z` and bit 15 is clear.
    pub const fn is_valid(self) -> bool {
        let [a, b, c] = self.letters();
        self.0 & 0x8000 == 0
            && a.is_ascii_uppercase()
            && b.is_ascii_uppercase()
            && c.is_ascii_uppercase()
    }

    /// The wire bytes (little-endian).
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_le_bytes()
    }

    /// From the wire bytes (little-endian).
    pub const fn from_bytes(bytes: [u8; 2]) -> Self {
        Self(u16::from_le_bytes(bytes))
    }
}

impl fmt::Display for ManufacturerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.letters() {
            fmt::Write::write_char(f, char::from(c))?;
        }
        Ok(())
    }
}

impl fmt::Debug for ManufacturerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManufacturerCode({self}, {:#06x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        // Digest §1.1: 9315 → ELS, 2D2C → KAM, 372C → KAW (wire order).
        assert_eq!(
            ManufacturerCode::from_bytes([0x93, 0x15]).letters(),
            *b"ELS"
        );
        assert_eq!(
            ManufacturerCode::from_bytes([0x2D, 0x2C]).letters(),
            *b"KAM"
        );
        assert_eq!(
            ManufacturerCode::from_bytes([0x37, 0x2C]).letters(),
            *b"KAW"
        );
        assert_eq!(
            ManufacturerCode::parse("kam"),
            Some(ManufacturerCode(0x2C2D))
        );
        assert_eq!(ManufacturerCode::parse("K1M"), None);
        assert!(ManufacturerCode(0x2C2D).is_valid());
        assert!(!ManufacturerCode(0).is_valid());
    }
}
