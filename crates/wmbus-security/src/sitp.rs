//! SITP application-level security (EN 13757-7:2018 Annex A; addendum §5): the CMAC of
//! end-to-end secured application data (BCF 20h, DSI 32h/33h), computed with the
//! application key the block's DSH names, over `KeyCounter ‖ TargetTime ‖ PID ‖ APDU`
//! (OMS Annex N N.12.2, where it is printed with its numbers).

use wmbus_frame::sitp::SecuredData;

use crate::kdf::cmac;
use crate::key::Key;
use crate::primitives::{TagMismatch, verify_truncated};

/// The MAC a secured-data block carries, full length (truncate to 8 for DSI 32h).
pub fn mac(app_key: &Key, data: &SecuredData<'_>) -> [u8; 16] {
    cmac(
        app_key,
        &[
            &data.key_counter.to_le_bytes(),
            data.target_time.to_le_bytes().get(..5).unwrap_or(&[]),
            &[data.protocol],
            data.apdu,
        ],
    )
}

/// Checks the block's MAC in constant time, before anything in it is acted upon.
///
/// # Errors
/// [`TagMismatch`] when it does not verify.
pub fn verify(app_key: &Key, data: &SecuredData<'_>) -> Result<(), TagMismatch> {
    verify_truncated(&mac(app_key, data), data.mac)
}
