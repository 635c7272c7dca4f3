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

/// The 10-byte header of secured data: `KeyCounter(4 LE) ‖ TargetTime(5 LE) ‖ PID`.
fn secured_header(key_counter: u32, target_time: u64, protocol: u8) -> [u8; 10] {
    let mut h = [0u8; 10];
    let t = target_time.to_le_bytes();
    for (o, b) in h.iter_mut().zip(
        key_counter
            .to_le_bytes()
            .iter()
            .chain(t.get(..5).unwrap_or(&[])),
    ) {
        *o = *b;
    }
    h[9] = protocol; // invariant: 10 bytes
    h
}

/// Secured data with a CMAC (DSI 32h: `mac_len` 8, 33h: 16): `KeyCounter ‖ TargetTime ‖ PID
/// ‖ APDU ‖ MAC`, the MAC as [`mac`] computes it (N.12.2).
pub fn secured_data(
    app_key: &Key,
    (key_counter, target_time, protocol): (u32, u64, u8),
    apdu: &[u8],
    mac_len: usize,
) -> alloc::vec::Vec<u8> {
    let full = mac(
        app_key,
        &SecuredData {
            key_counter,
            target_time,
            protocol,
            apdu,
            mac: &[],
        },
    );
    let mut ds = alloc::vec::Vec::with_capacity(10 + apdu.len() + mac_len);
    ds.extend_from_slice(&secured_header(key_counter, target_time, protocol));
    ds.extend_from_slice(apdu);
    ds.extend_from_slice(full.get(..mac_len.min(16)).unwrap_or(&[]));
    ds
}

/// Checks the block's MAC in constant time, before anything in it is acted upon.
///
/// # Errors
/// [`TagMismatch`] when it does not verify.
pub fn verify(app_key: &Key, data: &SecuredData<'_>) -> Result<(), TagMismatch> {
    verify_truncated(&mac(app_key, data), data.mac)
}

/// Key transport content (DSI 01h; addendum §5, OMS Annex F F.E.1):
/// `Key(16) ‖ TargetTime(5 LE) ‖ KeyID ‖ KeyVersion`, 23 bytes before KWP framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTransfer {
    /// The new key.
    pub key: Key,
    /// When it becomes active ([`wmbus_frame::sitp::TARGET_TIME_INVALID`]: transfer only).
    pub target_time: u64,
    /// Its KeyID.
    pub key_id: u8,
    /// Its version (FFh: the meter picks the next).
    pub key_version: u8,
}

/// Combined activate/deactivate content (DSI 03h): `TargetTime(5) ‖ ActKeyID ‖ ActKeyVer ‖
/// DeactKeyID ‖ DeactKeyVer ‖ Option`, 10 bytes before KWP framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivateDeactivate {
    /// When.
    pub target_time: u64,
    /// Key to activate: id, version.
    pub activate: (u8, u8),
    /// Key to deactivate: id, version.
    pub deactivate: (u8, u8),
    /// 01: reset the message counter (MK) or key counter (KeyID ≥ 10h); addendum §5 notes
    /// an annex example reading it the other way.
    pub option: u8,
}

/// Why a wrapped block does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapError {
    /// KWP integrity check (AIV, MLI or padding) failed: wrong wrapper key or tampering.
    Integrity,
    /// The content has the wrong length for its DSI.
    Length,
}

impl core::fmt::Display for UnwrapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Integrity => "KWP integrity check failed",
            Self::Length => "wrapped content has the wrong length",
        })
    }
}

/// SP 800-38F alternative IV of KWP.
const KWP_AIV: [u8; 4] = [0xA6, 0x59, 0x59, 0xA6];

fn padded_len(len: usize) -> usize {
    len.div_ceil(8) * 8
}

/// Wraps `content` as a SITP key block's data (NIST SP 800-38F KWP, RFC 5649): with a
/// wrapper key (DSH1 names it) the KWP output; without one (DSH1 = FFh) the KWP-formatted
/// plaintext `A65959A6 ‖ MLI(4 BE) ‖ content ‖ zero padding`, which the transport layer's
/// encryption then protects (the layout F.E.1 prints).
pub fn wrap(wrapper: Option<&Key>, content: &[u8]) -> alloc::vec::Vec<u8> {
    use aes_kw::KwpAes128;
    use cipher::KeyInit;
    let mut out = alloc::vec![0u8; 8 + padded_len(content.len())];
    match wrapper {
        Some(k) => {
            let kwp = KwpAes128::new(k.as_bytes().into());
            let n = kwp.wrap_key(content, &mut out).map_or(0, <[u8]>::len);
            out.truncate(n);
        }
        None => {
            let mli = u32::try_from(content.len()).unwrap_or(u32::MAX);
            for (o, b) in out
                .iter_mut()
                .zip(KWP_AIV.iter().chain(&mli.to_be_bytes()).chain(content))
            {
                *o = *b;
            }
        }
    }
    out
}

/// Opens a block's data made by [`wrap`], checking AIV, MLI and padding (in constant time
/// for the KWP case, by the `aes-kw` crate); the content is zeroized when dropped.
///
/// # Errors
/// [`UnwrapError`].
pub fn unwrap(
    wrapper: Option<&Key>,
    data: &[u8],
) -> Result<zeroize::Zeroizing<alloc::vec::Vec<u8>>, UnwrapError> {
    use aes_kw::KwpAes128;
    use cipher::KeyInit;
    if data.len() < 16 || !data.len().is_multiple_of(8) {
        return Err(UnwrapError::Length);
    }
    let mut out = zeroize::Zeroizing::new(alloc::vec![0u8; data.len()]);
    match wrapper {
        Some(k) => {
            let kwp = KwpAes128::new(k.as_bytes().into());
            let n = kwp
                .unwrap_key(data, out.as_mut_slice())
                .map_err(|_| UnwrapError::Integrity)?
                .len();
            out.truncate(n);
        }
        None => {
            let [a0, a1, a2, a3, m0, m1, m2, m3, rest @ ..] = data else {
                return Err(UnwrapError::Length);
            };
            let mli = u32::from_be_bytes([*m0, *m1, *m2, *m3]);
            let mli = usize::try_from(mli).map_err(|_| UnwrapError::Integrity)?;
            let padding_ok = rest
                .get(mli..)
                .is_some_and(|p| p.len() < 8 && p.iter().all(|b| *b == 0));
            if [*a0, *a1, *a2, *a3] != KWP_AIV || mli == 0 || !padding_ok {
                return Err(UnwrapError::Integrity);
            }
            out.truncate(0);
            out.extend_from_slice(rest.get(..mli).unwrap_or(&[]));
        }
    }
    Ok(out)
}

fn target_time_bytes(t: u64) -> [u8; 5] {
    let b = t.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4]]
}

fn target_time_from(b: &[u8]) -> u64 {
    let mut t = [0u8; 8];
    for (o, i) in t.iter_mut().zip(b.iter().take(5)) {
        *o = *i;
    }
    u64::from_le_bytes(t)
}

impl KeyTransfer {
    /// The 23 content bytes.
    pub fn content(&self) -> zeroize::Zeroizing<[u8; 23]> {
        let mut c = zeroize::Zeroizing::new([0u8; 23]);
        let tail = target_time_bytes(self.target_time);
        let tail = tail.iter().chain([&self.key_id, &self.key_version]);
        for (o, b) in c.iter_mut().zip(self.key.as_bytes().iter().chain(tail)) {
            *o = *b;
        }
        c
    }

    /// From unwrapped content.
    ///
    /// # Errors
    /// [`UnwrapError::Length`] unless exactly 23 bytes.
    pub fn parse(content: &[u8]) -> Result<Self, UnwrapError> {
        let [k @ .., t0, t1, t2, t3, t4, id, version] = content else {
            return Err(UnwrapError::Length);
        };
        let key: [u8; 16] = k.try_into().map_err(|_| UnwrapError::Length)?;
        Ok(Self {
            key: Key::new(key),
            target_time: target_time_from(&[*t0, *t1, *t2, *t3, *t4]),
            key_id: *id,
            key_version: *version,
        })
    }
}

impl ActivateDeactivate {
    /// The 10 content bytes.
    pub fn content(&self) -> [u8; 10] {
        let t = target_time_bytes(self.target_time);
        [
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            self.activate.0,
            self.activate.1,
            self.deactivate.0,
            self.deactivate.1,
            self.option,
        ]
    }

    /// From unwrapped content.
    ///
    /// # Errors
    /// [`UnwrapError::Length`] unless exactly 10 bytes.
    pub fn parse(content: &[u8]) -> Result<Self, UnwrapError> {
        let [t0, t1, t2, t3, t4, ai, av, di, dv, option] = content else {
            return Err(UnwrapError::Length);
        };
        Ok(Self {
            target_time: target_time_from(&[*t0, *t1, *t2, *t3, *t4]),
            activate: (*ai, *av),
            deactivate: (*di, *dv),
            option: *option,
        })
    }
}

/// Secured data with GCM, GMAC or CCM (DSI 34h–37h). **Provisional**: EN 13757-7 Annex A
/// names these variants but their layouts are not public (addendum §5). Our reading keeps
/// DSI 32h's frame and takes the IV/nonce the way modes 9 and 10 do:
///
/// - data: `KeyCounter(4 LE) ‖ TargetTime(5 LE) ‖ PID ‖ payload ‖ tag`;
/// - associated data: `KeyCounter ‖ TargetTime ‖ PID` (34h, 36h, 37h), or everything before
///   the tag (35h, GMAC);
/// - IV (GCM, GMAC, 12 bytes): the addressed meter's `M ‖ ID ‖ Ver ‖ Type` ‖ KeyCounter (LE);
/// - nonce (CCM, 13 bytes): the same 12 bytes ‖ 00h;
/// - payload: the APDU encrypted (34h, 36h, 37h) or in clear (35h); tag 16 bytes, except
///   36h (8 bytes).
pub mod provisional {
    use alloc::vec::Vec;

    use wmbus_frame::codepoints::MeterAddress;
    use wmbus_frame::sitp::DataInfo;
    use zeroize::Zeroizing;

    use crate::key::Key;
    use crate::primitives::{self, TagMismatch, verify_truncated};

    /// GCM, 16-byte tag.
    pub const GCM: DataInfo = DataInfo(0x34);
    /// GMAC, 16-byte tag.
    pub const GMAC: DataInfo = DataInfo(0x35);
    /// CCM, 8-byte tag.
    pub const CCM8: DataInfo = DataInfo(0x36);
    /// CCM, 16-byte tag.
    pub const CCM16: DataInfo = DataInfo(0x37);

    /// The tag length of a DSI this module handles.
    pub const fn tag_len(dsi: DataInfo) -> Option<usize> {
        match dsi.0 {
            0x34 | 0x35 | 0x37 => Some(16),
            0x36 => Some(8),
            _ => None,
        }
    }

    fn iv(meter: &MeterAddress, key_counter: u32) -> [u8; 12] {
        let mut iv = [0u8; 12];
        for (o, b) in iv.iter_mut().zip(
            meter
                .to_link_bytes()
                .iter()
                .chain(&key_counter.to_le_bytes()),
        ) {
            *o = *b;
        }
        iv
    }

    fn nonce(meter: &MeterAddress, key_counter: u32) -> [u8; 13] {
        let mut n = [0u8; 13];
        for (o, b) in n.iter_mut().zip(iv(meter, key_counter).iter()) {
            *o = *b;
        }
        n
    }

    /// Secured data of `dsi` for `apdu`.
    ///
    /// # Errors
    /// [`TagMismatch`] for a DSI this module does not handle.
    pub fn seal(
        dsi: DataInfo,
        key: &Key,
        meter: &MeterAddress,
        (key_counter, target_time, protocol): (u32, u64, u8),
        apdu: &[u8],
    ) -> Result<Vec<u8>, TagMismatch> {
        let tag_len = tag_len(dsi).ok_or(TagMismatch)?;
        let mut out = Vec::with_capacity(10 + apdu.len() + tag_len);
        out.extend_from_slice(&super::secured_header(key_counter, target_time, protocol));
        let header = out.len();
        out.extend_from_slice(apdu);
        let mut tag = [0u8; 16];
        let tag = tag.get_mut(..tag_len).ok_or(TagMismatch)?;
        let (aad, body) = out.split_at_mut(header);
        match dsi.0 {
            0x34 => primitives::gcm_seal(key, &iv(meter, key_counter), aad, body, tag)?,
            0x35 => {
                let t = primitives::gmac(key, &iv(meter, key_counter), &out);
                tag.copy_from_slice(t.get(..16).unwrap_or(&[0; 16]));
            }
            _ => primitives::ccm_seal(key, &nonce(meter, key_counter), aad, body, tag)?,
        }
        out.extend_from_slice(tag);
        Ok(out)
    }

    /// What [`open`] returns: the header fields and the APDU in clear.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Opened {
        /// KeyCounter.
        pub key_counter: u32,
        /// TargetTime.
        pub target_time: u64,
        /// PID.
        pub protocol: u8,
        /// The APDU (zeroized when dropped).
        pub apdu: Zeroizing<Vec<u8>>,
    }

    /// Verifies and opens secured data of `dsi`; nothing is released unless the tag
    /// verifies.
    ///
    /// # Errors
    /// [`TagMismatch`]: wrong key, meter or counter, altered data, or too short.
    pub fn open(
        dsi: DataInfo,
        key: &Key,
        meter: &MeterAddress,
        data: &[u8],
    ) -> Result<Opened, TagMismatch> {
        let tag_len = tag_len(dsi).ok_or(TagMismatch)?;
        if data.len() < 10 + tag_len {
            return Err(TagMismatch);
        }
        let (body, tag) = data.split_at(data.len() - tag_len);
        let (header, payload) = body.split_at(10);
        let [c0, c1, c2, c3, t0, t1, t2, t3, t4, protocol] = header else {
            return Err(TagMismatch);
        };
        let key_counter = u32::from_le_bytes([*c0, *c1, *c2, *c3]);
        let target_time = u64::from_le_bytes([*t0, *t1, *t2, *t3, *t4, 0, 0, 0]);
        let mut apdu = Zeroizing::new(payload.to_vec());
        match dsi.0 {
            0x34 => primitives::gcm_open(key, &iv(meter, key_counter), header, &mut apdu, tag)?,
            0x35 => verify_truncated(&primitives::gmac(key, &iv(meter, key_counter), body), tag)?,
            _ => primitives::ccm_open(key, &nonce(meter, key_counter), header, &mut apdu, tag)?,
        }
        Ok(Opened {
            key_counter,
            target_time,
            protocol: *protocol,
            apdu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key {
        Key::new([b; 16])
    }

    /// The plaintext layout OMS Annex F F.E.1 prints for a key transfer: `A65959A6 ‖
    /// 00000017 ‖ Key ‖ TargetTime ‖ KeyID ‖ KeyVersion ‖ 00`, 32 bytes (BL 26h with the
    /// 6-byte block header).
    #[test]
    fn key_transfer_plaintext_layout() {
        let t = KeyTransfer {
            key: Key::new(*b"0123456789abcdef"),
            target_time: wmbus_frame::sitp::TARGET_TIME_IMMEDIATE,
            key_id: 0x20,
            key_version: 0x01,
        };
        let data = wrap(None, &*t.content());
        assert_eq!(data.len(), 32);
        assert_eq!(&data[..8], &[0xA6, 0x59, 0x59, 0xA6, 0, 0, 0, 0x17]);
        assert_eq!(&data[8..24], b"0123456789abcdef");
        assert_eq!(&data[24..], &[0, 0, 0, 0, 0x30, 0x20, 0x01, 0x00]);
        assert_eq!(6 + data.len(), 0x26);
        let back = unwrap(None, &data).unwrap();
        assert_eq!(KeyTransfer::parse(&back).unwrap(), t);
    }

    /// RFC 5649 §6 gives KWP vectors only for a 192-bit KEK; the 128-bit case is checked
    /// both ways here and by the `aes-kw` crate's own CAVP tests.
    #[test]
    fn kwp_wraps_and_refuses_the_wrong_key_or_a_flipped_bit() {
        let t = KeyTransfer {
            key: key(0x42),
            target_time: 0x30_8000_0000,
            key_id: 0,
            key_version: 0xFF,
        };
        let wrapped = wrap(Some(&key(1)), &*t.content());
        assert_eq!(wrapped.len(), 32);
        assert_ne!(&wrapped[..4], &KWP_AIV);
        assert_eq!(
            KeyTransfer::parse(&unwrap(Some(&key(1)), &wrapped).unwrap()).unwrap(),
            t
        );
        assert_eq!(
            unwrap(Some(&key(2)), &wrapped).unwrap_err(),
            UnwrapError::Integrity
        );
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x10;
            assert!(unwrap(Some(&key(1)), &bad).is_err(), "bit in byte {i}");
        }
    }

    /// The provisional GCM/GMAC/CCM variants: both directions, and every byte flipped,
    /// another key, another meter or another counter refused.
    #[test]
    fn provisional_aead_variants() {
        use super::provisional::{CCM8, CCM16, GCM, GMAC, open, seal};
        let meter = wmbus_frame::codepoints::MeterAddress::from_link_bytes([
            0x3A, 0x63, 0x78, 0x56, 0x34, 0x12, 0x55, 0x20,
        ]);
        let other = wmbus_frame::codepoints::MeterAddress::from_link_bytes([
            0x3A, 0x63, 0x79, 0x56, 0x34, 0x12, 0x55, 0x20,
        ]);
        let apdu = [0x01, 0xFD, 0x1F, 0x00];
        for dsi in [GCM, GMAC, CCM8, CCM16] {
            let data = seal(dsi, &key(7), &meter, (15, 0x30_0000_0000, 1), &apdu).unwrap();
            let o = open(dsi, &key(7), &meter, &data).unwrap();
            assert_eq!((o.key_counter, o.protocol), (15, 1));
            assert_eq!(o.target_time, 0x30_0000_0000);
            assert_eq!(&o.apdu[..], &apdu);
            assert_eq!(data[10..14] == apdu, dsi == GMAC, "encrypted unless GMAC");
            assert!(open(dsi, &key(8), &meter, &data).is_err());
            assert!(open(dsi, &key(7), &other, &data).is_err());
            for i in 0..data.len() {
                let mut bad = data.clone();
                bad[i] ^= 1;
                assert!(
                    open(dsi, &key(7), &meter, &bad).is_err(),
                    "{dsi:?} byte {i}"
                );
            }
            assert!(open(dsi, &key(7), &meter, &data[..9]).is_err());
        }
    }

    #[test]
    fn activate_deactivate_round_trip_and_framing() {
        let a = ActivateDeactivate {
            target_time: wmbus_frame::sitp::TARGET_TIME_IMMEDIATE,
            activate: (0, 1),
            deactivate: (0, 0),
            option: 1,
        };
        let data = wrap(None, &a.content());
        assert_eq!(&data[..8], &[0xA6, 0x59, 0x59, 0xA6, 0, 0, 0, 0x0A]);
        assert_eq!(data.len(), 24);
        assert_eq!(
            ActivateDeactivate::parse(&unwrap(None, &data).unwrap()).unwrap(),
            a
        );
        // Framing errors: AIV, MLI beyond the data, non-zero padding, short input.
        for (i, v) in [(0usize, 0xA7u8), (7, 0x20), (23, 1)] {
            let mut bad = data.clone();
            bad[i] = v;
            assert_eq!(unwrap(None, &bad).unwrap_err(), UnwrapError::Integrity);
        }
        assert_eq!(unwrap(None, &data[..8]).unwrap_err(), UnwrapError::Length);
    }
}
