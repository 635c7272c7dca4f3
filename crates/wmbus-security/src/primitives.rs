//! The block-cipher modes as wM-Bus wires them, over RustCrypto: AES-128-CBC without padding
//! (modes 5 and 7), AES-128-CTR (ELL), AES-128-CCM (mode 10), AES-128-GCM and GMAC (mode 9,
//! ESMR 5), AES-CMAC (AFL, KDF), and DES-CBC (modes 2/3, feature `des`).

use aead::{AeadInOut, KeyInit};
use aes::Aes128;
#[cfg(feature = "des")]
use cipher::KeyIvInit;
use cipher::array::Array;
use cipher::consts::{U4, U8, U12, U13, U16};
use cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, StreamCipher};
use subtle::ConstantTimeEq;

use crate::key::Key;

/// A buffer length that is not a whole number of cipher blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBlockAligned;

/// A MAC or tag that does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagMismatch;

/// AES-128-CBC decryption in place, no padding (EN 13757-7 §9.4.4 and §9.4.6).
///
/// # Errors
/// [`NotBlockAligned`] when `buf` is not a multiple of 16 bytes.
pub fn cbc_decrypt(key: &Key, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), NotBlockAligned> {
    let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(NotBlockAligned);
    }
    cbc::Decryptor::inner_iv_init(key.cipher(), iv.into()).decrypt_blocks(blocks);
    Ok(())
}

/// AES-128-CBC encryption in place, no padding.
///
/// # Errors
/// [`NotBlockAligned`] when `buf` is not a multiple of 16 bytes.
pub fn cbc_encrypt(key: &Key, iv: &[u8; 16], buf: &mut [u8]) -> Result<(), NotBlockAligned> {
    let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(NotBlockAligned);
    }
    cbc::Encryptor::inner_iv_init(key.cipher(), iv.into()).encrypt_blocks(blocks);
    Ok(())
}

/// AES-128-CTR keystream applied in place; the counter block increments as a 128-bit
/// big-endian integer (EN 13757-4 §13.2.7: only the last byte changes in practice).
pub fn ctr_apply(key: &Key, counter_block: &[u8; 16], buf: &mut [u8]) {
    ctr::Ctr128BE::<&Aes128>::from_core(ctr::CtrCore::inner_iv_init(
        key.cipher(),
        counter_block.into(),
    ))
    .apply_keystream(buf);
}

/// Truncated MAC comparison in constant time: `received` against the leftmost bytes of
/// `computed` (NIST SP 800-38B §5.5 truncation).
pub fn verify_truncated(computed: &[u8; 16], received: &[u8]) -> Result<(), TagMismatch> {
    match computed.get(..received.len()) {
        Some(c) if !received.is_empty() && bool::from(c.ct_eq(received)) => Ok(()),
        _ => Err(TagMismatch),
    }
}

macro_rules! with_tag_len {
    ($len:expr, $t:ident => $body:expr, else $fallback:expr) => {
        match $len {
            4 => {
                type $t = U4;
                $body
            }
            8 => {
                type $t = U8;
                $body
            }
            12 => {
                type $t = U12;
                $body
            }
            16 => {
                type $t = U16;
                $body
            }
            _ => $fallback,
        }
    };
}

/// AES-128-CCM decryption and verification in place (13-byte nonce; tag 4, 8, 12 or 16
/// bytes). Nothing of `buf` is meaningful unless this returns `Ok`; on failure it is zeroed.
///
/// # Errors
/// [`TagMismatch`] when the tag does not verify or has an unsupported length.
pub fn ccm_open(
    key: &Key,
    nonce: &[u8; 13],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), TagMismatch> {
    let nonce: &Array<u8, U13> = nonce.into();
    let result = with_tag_len!(tag.len(), T => {
        let c = ccm::Ccm::<Aes128, T, U13>::new(key.as_bytes().into());
        match Array::<u8, T>::try_from(tag) {
            Ok(t) => c.decrypt_inout_detached(nonce, aad, buf.into(), &t).map_err(|_| TagMismatch),
            Err(_) => Err(TagMismatch),
        }
    }, else Err(TagMismatch));
    if result.is_err() {
        buf.fill(0);
    }
    result
}

/// AES-128-CCM encryption in place; writes the tag (`tag.len()` of 4, 8, 12 or 16).
///
/// # Errors
/// [`TagMismatch`] for an unsupported tag length.
pub fn ccm_seal(
    key: &Key,
    nonce: &[u8; 13],
    aad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8],
) -> Result<(), TagMismatch> {
    let nonce: &Array<u8, U13> = nonce.into();
    with_tag_len!(tag.len(), T => {
        let c = ccm::Ccm::<Aes128, T, U13>::new(key.as_bytes().into());
        let t = c.encrypt_inout_detached(nonce, aad, buf.into()).map_err(|_| TagMismatch)?;
        tag.copy_from_slice(&t);
        Ok(())
    }, else Err(TagMismatch))
}

/// AES-128-GCM decryption and verification in place (12-byte IV; tag 8, 12 or 16 bytes).
/// On failure `buf` is zeroed.
///
/// # Errors
/// [`TagMismatch`].
pub fn gcm_open(
    key: &Key,
    iv: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8],
) -> Result<(), TagMismatch> {
    let iv: &Array<u8, U12> = iv.into();
    let result = with_tag_len!(tag.len(), T => {
        let c = aes_gcm::AesGcm::<Aes128, U12, T>::new(key.as_bytes().into());
        match Array::<u8, T>::try_from(tag) {
            Ok(t) => c.decrypt_inout_detached(iv, aad, buf.into(), &t).map_err(|_| TagMismatch),
            Err(_) => Err(TagMismatch),
        }
    }, else Err(TagMismatch));
    if result.is_err() {
        buf.fill(0);
    }
    result
}

/// AES-128-GCM encryption in place; writes the tag (8, 12 or 16 bytes).
///
/// # Errors
/// [`TagMismatch`] for an unsupported tag length.
pub fn gcm_seal(
    key: &Key,
    iv: &[u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8],
) -> Result<(), TagMismatch> {
    let iv: &Array<u8, U12> = iv.into();
    with_tag_len!(tag.len(), T => {
        let c = aes_gcm::AesGcm::<Aes128, U12, T>::new(key.as_bytes().into());
        let t = c.encrypt_inout_detached(iv, aad, buf.into()).map_err(|_| TagMismatch)?;
        tag.copy_from_slice(&t);
        Ok(())
    }, else Err(TagMismatch))
}

/// AES-128-GMAC: the GCM tag over `data` as associated data with an empty plaintext.
pub fn gmac(key: &Key, iv: &[u8; 12], data: &[u8]) -> [u8; 16] {
    let c = aes_gcm::AesGcm::<Aes128, U12, U16>::new(key.as_bytes().into());
    let iv: &Array<u8, U12> = iv.into();
    let mut empty = [0u8; 0];
    match c.encrypt_inout_detached(iv, data, (&mut empty[..]).into()) {
        Ok(t) => t.into(),
        // invariant: an empty plaintext is within every GCM length limit.
        Err(_) => [0; 16],
    }
}

/// DES-CBC decryption in place with an 8-byte IV (modes 2 and 3; deprecated).
///
/// # Errors
/// [`NotBlockAligned`] when `buf` is not a multiple of 8 bytes.
#[cfg(feature = "des")]
pub fn des_cbc_decrypt(
    key: &crate::key::DesKey,
    iv: &[u8; 8],
    buf: &mut [u8],
) -> Result<(), NotBlockAligned> {
    let (blocks, rest) = Array::<u8, U8>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(NotBlockAligned);
    }
    cbc::Decryptor::<des::Des>::new(key.as_bytes().into(), iv.into()).decrypt_blocks(blocks);
    Ok(())
}

/// DES-CBC encryption in place (for tests that build mode 2 telegrams; never sent).
///
/// # Errors
/// [`NotBlockAligned`].
#[cfg(feature = "des")]
pub fn des_cbc_encrypt(
    key: &crate::key::DesKey,
    iv: &[u8; 8],
    buf: &mut [u8],
) -> Result<(), NotBlockAligned> {
    let (blocks, rest) = Array::<u8, U8>::slice_as_chunks_mut(buf);
    if !rest.is_empty() {
        return Err(NotBlockAligned);
    }
    cbc::Encryptor::<des::Des>::new(key.as_bytes().into(), iv.into()).encrypt_blocks(blocks);
    Ok(())
}
