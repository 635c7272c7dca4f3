//! Key derivation KDF-A (EN 13757-7 §9.6; digest §6, addendum §5):
//! `K = AES-CMAC(MK, DC ‖ C(4, LE) ‖ ID(4, LE) ‖ 07×7)`, one CMAC block.

use cmac::{Cmac, Mac};

use crate::key::Key;

/// DC: derivation constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DerivationConstant {
    /// Kenc, 00h: meter-to-partner encryption.
    MeterEncryption = 0x00,
    /// Kmac, 01h: meter-to-partner MAC.
    MeterMac = 0x01,
    /// Lenc, 10h: partner-to-meter encryption (OMS Annex N N.12.2).
    PartnerEncryption = 0x10,
    /// Lmac, 11h: partner-to-meter MAC.
    PartnerMac = 0x11,
}

/// Which way a message goes; selects Kenc/Kmac or Lenc/Lmac.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Meter to partner (gateway, head-end).
    MeterToPartner,
    /// Partner to meter.
    PartnerToMeter,
}

impl Direction {
    /// The encryption constant for this direction.
    pub const fn encryption(self) -> DerivationConstant {
        match self {
            Self::MeterToPartner => DerivationConstant::MeterEncryption,
            Self::PartnerToMeter => DerivationConstant::PartnerEncryption,
        }
    }
    /// The MAC constant for this direction.
    pub const fn mac(self) -> DerivationConstant {
        match self {
            Self::MeterToPartner => DerivationConstant::MeterMac,
            Self::PartnerToMeter => DerivationConstant::PartnerMac,
        }
    }
    /// "meter_to_partner" or "partner_to_meter".
    pub const fn name(self) -> &'static str {
        match self {
            Self::MeterToPartner => "meter_to_partner",
            Self::PartnerToMeter => "partner_to_meter",
        }
    }
}

/// The 16-byte KDF-A input.
pub fn input(constant: DerivationConstant, counter: u32, ident: [u8; 4]) -> [u8; 16] {
    let c = counter.to_le_bytes();
    [
        constant as u8,
        c[0],
        c[1],
        c[2],
        c[3],
        ident[0],
        ident[1],
        ident[2],
        ident[3],
        0x07,
        0x07,
        0x07,
        0x07,
        0x07,
        0x07,
        0x07,
    ]
}

/// AES-CMAC of `data` under `key` (NIST SP 800-38B), all 16 bytes.
pub fn cmac(key: &Key, parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Cmac<&aes::Aes128> as cipher::common::InnerInit>::inner_init(key.cipher());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Derives an ephemeral key from the master key `master`, the message counter and the meter's
/// identification number (as transmitted, little-endian).
pub fn derive(master: &Key, constant: DerivationConstant, counter: u32, ident: [u8; 4]) -> Key {
    Key::new(cmac(master, &[&input(constant, counter, ident)]))
}
