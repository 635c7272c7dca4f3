//! CRC-16/EN-13757 (EN 13757-4 §6.2.3): polynomial 3D65h, init 0, not reflected, final XOR FFFFh.
//!
//! Link-layer block CRCs are sent most significant byte first; the ELL PayloadCRC least
//! significant byte first. The accessors in [`crate::dll`] and [`crate::ell`] take care of that.

/// The CRC engine (slice-by-16 tables: 8 KiB, several times faster than byte-wise).
pub const EN_13757: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_EN_13757);

/// CRC-16/EN-13757 of `data`.
pub fn crc16(data: &[u8]) -> u16 {
    EN_13757.checksum(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catalogue check value of CRC-16/EN-13757 (reveng catalogue).
    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0xC2B7);
    }
}
