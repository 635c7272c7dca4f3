//! Image MACs for software updates (`wmbus_frame::image`).
//!
//! - OMS (EN 13757-3 Annex I): Prepare carries the image MAC with MAC algorithm 04h under key
//!   18h. Which algorithm 04h is, is not public; we read it as AES-CMAC-128 over the whole
//!   image (**provisional**, `docs/software-update.md`).
//! - ESMR 5: `GMAC(FUAK, IV = M ‖ ID ‖ Ver ‖ Type ‖ FWversion(BE), header' ‖ image)`
//!   (addendum §6b, OSGP test vector).

use alloc::vec::Vec;

use wmbus_frame::image::esmr5::Header;

use crate::kdf::cmac;
use crate::key::Key;
use crate::primitives::{self, TagMismatch, verify_truncated};

/// The OMS image MAC (provisional: AES-CMAC-128 for MAC algorithm 04h).
pub fn oms_image_mac(key: &Key, image: &[u8]) -> [u8; 16] {
    cmac(key, &[image])
}

/// Checks an OMS image MAC in constant time.
///
/// # Errors
/// [`TagMismatch`].
pub fn verify_oms_image_mac(key: &Key, image: &[u8], mac: &[u8]) -> Result<(), TagMismatch> {
    verify_truncated(&oms_image_mac(key, image), mac)
}

/// The ESMR 5 image GMAC over `header' ‖ image`, `header_prime` already rewritten for the
/// meter ([`Header::for_meter`]).
pub fn esmr5_image_mac(key: &Key, header_prime: &Header, image: &[u8]) -> [u8; 16] {
    let mut data = Vec::with_capacity(35 + image.len());
    data.extend_from_slice(&header_prime.to_bytes());
    data.extend_from_slice(image);
    primitives::gmac(key, &header_prime.iv(), &data)
}
