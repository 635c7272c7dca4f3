//! CRC-16/EN-13757 (EN 13757-4 §6.2.3): polynomial 3D65h, init 0, not reflected, final XOR FFFFh.
//!
//! Link-layer block CRCs are sent most significant byte first; the ELL PayloadCRC least
//! significant byte first. The accessors in [`crate::dll`] and [`crate::ell`] take care of that.

/// The CRC engine (slice-by-16 tables: 8 KiB, several times faster than byte-wise).
pub const EN_13757: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_EN_13757);

/// Longest input [`crc16`] pads (a link-layer block is at most 126 bytes; an ELL payload at
/// most a frame).
const PADDED_MAX: usize = 256;

/// CRC-16/EN-13757 of `data`.
///
/// The register starts at 0 and the CRC is not reflected, so zero bytes in front of the data
/// leave it unchanged: the data is copied behind enough zeros to make whole 16-byte steps of
/// the sliced table, which spares the byte-at-a-time tail (a chain of dependent lookups,
/// about a third of the time for a 109-byte block).
pub fn crc16(data: &[u8]) -> u16 {
    let pad = (16 - data.len() % 16) % 16;
    let mut buf = [0u8; PADDED_MAX];
    match buf.get_mut(pad..pad + data.len()) {
        Some(slot) if pad > 0 => {
            slot.copy_from_slice(data);
            EN_13757.checksum(buf.get(..pad + data.len()).unwrap_or(data))
        }
        _ => EN_13757.checksum(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Catalogue check value of CRC-16/EN-13757 (reveng catalogue).
    #[test]
    fn check_value() {
        assert_eq!(crc16(b"123456789"), 0xC2B7);
    }

    /// The zero-padded way equals the engine on every length, padded or not.
    #[test]
    fn padding_changes_nothing() {
        let data: std::vec::Vec<u8> = (0..400u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(
                crc16(&data[..len]),
                EN_13757.checksum(&data[..len]),
                "{len}"
            );
        }
    }
}
