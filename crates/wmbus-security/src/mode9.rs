//! Security mode 9, AES-128-GCM, as the Dutch ESMR 5.0 gas-meter profile uses it (addendum §2;
//! provisional). Everything this stack assumes about mode 9 is here.
//!
//! - CF 2901h: bit 13 tag present, bits 7/6 widths of LenU/LenE, bits 5..4 KDF (0: static
//!   key), bits 3..0 key ID.
//! - Transport layer: `CF ‖ LenE ‖ LenU ‖ CTR(4, big-endian) ‖ E-data(LenE) ‖ tag(12)`.
//! - IV: ESMR 5 Table 22 and its note disagree; OSGP's verified key-transfer code builds
//!   `ID ‖ M ‖ Ver ‖ Type ‖ CTR(BE)`, the EN/CEN-TR reading is `M ‖ ID ‖ …`. Both are settings.
//! - AAD: ESMR §6.5.3 names CF, LenU, LenE and the unencrypted data; the order on the wire is
//!   LenE before LenU. A setting; LenU > 0 is refused (no public layout).
//! - The receiver accepts a counter only when it is greater than the last (the ESMR window of
//!   +100 is not applied).

use wmbus_frame::codepoints::MeterAddress;
use wmbus_frame::tpl::{ModeFields, TplHeader};

/// How AES-GCM mode 9 is wired (addendum §2: sources differ; provisional).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode9Profile {
    /// IV field order: `ID ‖ M ‖ Ver ‖ Type ‖ CTR` (ESMR 5 as OSGP builds it) when true,
    /// `M ‖ ID ‖ Ver ‖ Type ‖ CTR` (EN / CEN/TR reading) when false.
    pub ident_first: bool,
    /// Authenticated data: `CF ‖ LenU ‖ LenE` (ESMR §6.5.3 text order) when true, none
    /// when false.
    pub aad_config_and_lengths: bool,
}

impl Default for Mode9Profile {
    /// The ESMR 5 profile as this crate reads it.
    fn default() -> Self {
        Self {
            ident_first: true,
            aad_config_and_lengths: true,
        }
    }
}

impl Mode9Profile {
    /// The 12-byte IV.
    pub fn iv(&self, meter: &MeterAddress, counter: u32) -> [u8; 12] {
        let a = if self.ident_first {
            meter.to_long_header_bytes()
        } else {
            meter.to_link_bytes()
        };
        let c = counter.to_be_bytes();
        [
            a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], c[0], c[1], c[2], c[3],
        ]
    }

    /// The associated data.
    pub fn aad(&self, header: &TplHeader) -> ([u8; 6], usize) {
        let mut out = [0u8; 6];
        if !self.aad_config_and_lengths {
            return (out, 0);
        }
        let ModeFields::Mode9 {
            encrypted_len,
            unencrypted_len,
            ..
        } = header.mode_fields
        else {
            return (out, 0);
        };
        let mut n = 0;
        let mut put = |b: u8| {
            if let Some(slot) = out.get_mut(n) {
                *slot = b;
                n += 1;
            }
        };
        let [c0, c1] = header.config.0.to_le_bytes();
        put(c0);
        put(c1);
        for (wide, v) in [
            (header.config.wide_unencrypted_length(), unencrypted_len),
            (header.config.wide_encrypted_length(), encrypted_len),
        ] {
            let [lo, hi] = v.to_le_bytes();
            put(lo);
            if wide {
                put(hi);
            }
        }
        (out, n)
    }
}
