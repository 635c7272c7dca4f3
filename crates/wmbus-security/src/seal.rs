//! Building secured messages: the reverse of [`crate::receiver`]. Given every header and the
//! application data in clear, encrypt, compute tags and MACs, and emit the frame, whole or in
//! AFL fragments.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use wmbus_frame::afl::AflRepr;
use wmbus_frame::codepoints::SecurityMode;
use wmbus_frame::crc::crc16;
use wmbus_frame::dll::MAX_FRAME_LEN;
use wmbus_frame::ell::{self, EllRepr};
use wmbus_frame::frame::{FrameRepr, Link, Transport};
use wmbus_frame::tpl::{self, ModeFields, TplRepr};

use crate::kdf::{self, Direction};
use crate::key::{Key, KeyRequest, KeyStore};
use crate::primitives;
use crate::reassembly::{self, AflAuth};
use crate::receiver::{self, Mode9Profile};

/// Why a message could not be sealed.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealError {
    /// No key for the meter.
    NoKey,
    /// The mode or KDF is not implemented for sealing.
    Unsupported(SecurityMode),
    /// The description is inconsistent.
    Invalid(&'static str),
    /// A frame layer refused (e.g. too long).
    Frame(wmbus_frame::Error),
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKey => f.write_str("no key for this meter"),
            Self::Unsupported(m) => write!(f, "security mode {} cannot be sealed", m.0),
            Self::Invalid(what) => f.write_str(what),
            Self::Frame(e) => write!(f, "{e}"),
        }
    }
}

impl From<wmbus_frame::Error> for SealError {
    fn from(e: wmbus_frame::Error) -> Self {
        Self::Frame(e)
    }
}

/// A message to seal.
#[derive(Debug, Clone, Copy)]
pub struct SealSpec<'a> {
    /// Link layer.
    pub link: Link,
    /// ELL; an SN with ENC = 1 encrypts everything after it with AES-CTR.
    pub ell: Option<EllRepr>,
    /// AFL; its MAC field is filled in (sized by MCL's authentication type).
    pub afl: Option<AflRepr<'a>>,
    /// Transport layer, with CF (and for modes 9/10 the length fields) as they should go out.
    pub tpl: TplRepr,
    /// The application data in clear. Modes 5, 7 and 2 expect it to start with 2F2F; it is
    /// padded to the CF's block count with 2F fillers (mode 7 with the P bit: count bytes).
    pub application: &'a [u8],
}

/// A sealed message: the transport bytes and their authentication fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedMessage {
    /// TPL CI to the end: header, encrypted payload, tag.
    pub tpdu: Vec<u8>,
    /// The AFL fields with the MAC filled in.
    pub auth: Option<AflAuth>,
}

fn key<'k, K: KeyStore>(
    keys: &'k K,
    spec: &SealSpec<'_>,
    key_id: u8,
    version: Option<u8>,
) -> Result<&'k Key, SealError> {
    let direction = receiver::direction(Some(spec.tpl.ci), spec.link.control());
    let meter = meter(spec, direction).ok_or(SealError::Invalid("no meter address"))?;
    keys.key(&KeyRequest {
        meter,
        key_id,
        key_version: version,
    })
    .ok_or(SealError::NoKey)
}

fn meter(
    spec: &SealSpec<'_>,
    direction: Direction,
) -> Option<wmbus_frame::codepoints::MeterAddress> {
    spec.tpl
        .header
        .and_then(|h| h.meter)
        .or_else(|| {
            (direction == Direction::PartnerToMeter)
                .then(|| spec.ell.and_then(|e| e.address))
                .flatten()
        })
        .or_else(|| spec.link.address())
}

/// Encrypts the transport layer and computes the AFL MAC (stages 3 and 2 of the receiver,
/// reversed).
///
/// # Errors
/// [`SealError`].
pub fn seal_message<K: KeyStore>(
    spec: &SealSpec<'_>,
    keys: &K,
    profile: &Mode9Profile,
) -> Result<SealedMessage, SealError> {
    let direction = receiver::direction(Some(spec.tpl.ci), spec.link.control());
    let meter = meter(spec, direction);
    let mut auth = spec.afl.as_ref().map(AflAuth::from_repr);
    let mut header_bytes = [0u8; 64];
    let header_len = Transport {
        tpl: Some(spec.tpl),
        ..Transport::default()
    }
    .emit_into(&mut header_bytes)?;
    let header_bytes = header_bytes.get(..header_len).unwrap_or(&[]);
    let mut payload = spec.application.to_vec();
    let mut mac_key = None;
    if let Some(h) = spec.tpl.header {
        let mode = h.config.mode();
        let counter = h
            .mode_fields
            .message_counter()
            .or(auth.and_then(|a| a.message_counter));
        match mode.0 {
            0 => {}
            5 | 7 => {
                let enc_len = 16 * usize::from(h.config.encrypted_blocks());
                if payload.len() > enc_len && mode.0 == 7 && h.config.padding() {
                    return Err(SealError::Invalid(
                        "mode 7 padding needs the whole payload in the encrypted blocks",
                    ));
                }
                if payload.len() < enc_len {
                    let missing = enc_len - payload.len();
                    let fill = if mode.0 == 7 && h.config.padding() {
                        u8::try_from(missing)
                            .map_err(|_| SealError::Invalid("padding longer than a block"))?
                    } else {
                        0x2F
                    };
                    if mode.0 == 7 && h.config.padding() && missing > 16 {
                        return Err(SealError::Invalid("padding longer than a block"));
                    }
                    payload.resize(enc_len, fill);
                }
                let region = payload
                    .get_mut(..enc_len)
                    .ok_or(SealError::Invalid("encrypted length"))?;
                if mode.0 == 5 {
                    let m = meter.ok_or(SealError::Invalid("no meter address"))?;
                    let k = key(keys, spec, 0, None)?;
                    let iv = receiver::mode5_iv(&m, h.access_number);
                    primitives::cbc_encrypt(k, &iv, region)
                        .map_err(|_| SealError::Invalid("block alignment"))?;
                } else {
                    let ModeFields::Mode7 {
                        extension,
                        key_version,
                        ..
                    } = h.mode_fields
                    else {
                        return Err(SealError::Invalid("mode 7 without its CFE"));
                    };
                    let master = key(keys, spec, extension.key_id(), key_version)?;
                    let (enc, mac) =
                        derive(master, extension.kdf_selection(), direction, counter, meter)?;
                    primitives::cbc_encrypt(&enc, &[0; 16], region)
                        .map_err(|_| SealError::Invalid("block alignment"))?;
                    mac_key = Some(mac);
                }
            }
            9 => {
                let ModeFields::Mode9 {
                    encrypted_len,
                    unencrypted_len,
                    counter,
                } = h.mode_fields
                else {
                    return Err(SealError::Invalid("mode 9 without its length fields"));
                };
                if usize::from(encrypted_len) != payload.len()
                    || unencrypted_len != 0
                    || !h.config.bit13()
                {
                    return Err(SealError::Invalid(
                        "mode 9: LenE must cover the whole application data, LenU 0, tag present",
                    ));
                }
                let m = meter.ok_or(SealError::Invalid("no meter address"))?;
                let k = key(keys, spec, h.config.key_id(), None)?;
                let iv = profile.iv(&m, counter);
                let (aad, n) = profile.aad(&h);
                let mut tag = [0u8; 12];
                primitives::gcm_seal(k, &iv, aad.get(..n).unwrap_or(&[]), &mut payload, &mut tag)
                    .map_err(|_| SealError::Invalid("GCM"))?;
                payload.extend_from_slice(&tag);
            }
            10 => {
                let ModeFields::Mode10 {
                    extension,
                    key_version,
                    ..
                } = h.mode_fields
                else {
                    return Err(SealError::Invalid("mode 10 without its CFE"));
                };
                let n = tpl::encrypted_len(&h, payload.len() + extension.tag_len());
                if n != payload.len() {
                    return Err(SealError::Invalid(
                        "mode 10: CF must announce every application byte (or FFh)",
                    ));
                }
                let counter =
                    counter.ok_or(SealError::Invalid("mode 10 needs a message counter"))?;
                let m = meter.ok_or(SealError::Invalid("no meter address"))?;
                let master = key(keys, spec, extension.key_id(), key_version)?;
                let (enc, _) = derive(
                    master,
                    extension.kdf_selection(),
                    direction,
                    Some(counter),
                    meter,
                )?;
                let nonce = receiver::mode10_nonce(&m, counter);
                let aad_len = 1 + if h.meter.is_some() { 8 } else { 0 } + 4 + 2;
                let aad = header_bytes.get(..aad_len).unwrap_or(&[]);
                let mut tag = vec![0u8; extension.tag_len()];
                primitives::ccm_seal(&enc, &nonce, aad, &mut payload, &mut tag)
                    .map_err(|_| SealError::Invalid("CCM tag length"))?;
                payload.extend_from_slice(&tag);
            }
            _ => return Err(SealError::Unsupported(mode)),
        }
    }
    let mut tpdu = header_bytes.to_vec();
    tpdu.extend_from_slice(&payload);
    if let Some(a) = auth.as_mut() {
        let at = a.message_control.map(|m| m.authentication_type());
        let mac_len = at.and_then(|t| t.mac_len()).unwrap_or(0);
        if mac_len > 0 {
            let mac_key = match mac_key {
                Some(k) => k,
                None => {
                    // An AFL MAC over a transport layer that derives no key itself.
                    let master = key(
                        keys,
                        spec,
                        a.key_information.map_or(0, |k| k.key_id()),
                        None,
                    )?;
                    let kdf = a.key_information.map_or(1, |k| k.kdf_selection());
                    derive(master, kdf, direction, a.message_counter, meter)?.1
                }
            };
            let full = receiver::afl_mac(&mac_key, a, &tpdu);
            let n = mac_len.min(16);
            a.mac = [0; 16];
            if let (Some(d), Some(s)) = (a.mac.get_mut(..n), full.get(..n)) {
                d.copy_from_slice(s);
            }
            a.mac_len = n;
        }
    }
    Ok(SealedMessage { tpdu, auth })
}

fn derive(
    master: &Key,
    kdf_selection: u8,
    direction: Direction,
    counter: Option<u32>,
    meter: Option<wmbus_frame::codepoints::MeterAddress>,
) -> Result<(Key, Key), SealError> {
    match kdf_selection {
        0 => Ok((master.clone(), master.clone())),
        1 => {
            let counter = counter.ok_or(SealError::Invalid("KDF-A needs a message counter"))?;
            let ident = meter
                .ok_or(SealError::Invalid("no meter address"))?
                .address
                .ident
                .to_bytes();
            Ok((
                kdf::derive(master, direction.encryption(), counter, ident),
                kdf::derive(master, direction.mac(), counter, ident),
            ))
        }
        _ => Err(SealError::Unsupported(SecurityMode::AES_CBC_EPHEMERAL)),
    }
}

/// Wraps the AFL (with the MAC from `auth` when `with_mac`) and the bytes after it in the
/// link layer and ELL, encrypting the ELL when its SN says so; returns the normalised frame.
fn frame<K: KeyStore>(
    link: Link,
    ell: Option<EllRepr>,
    afl: Option<AflRepr<'_>>,
    body: &[u8],
    keys: &K,
) -> Result<Vec<u8>, SealError> {
    let mut inner = [0u8; MAX_FRAME_LEN];
    let n = Transport {
        afl,
        tpl: None,
        payload: body,
        ..Transport::default()
    }
    .emit_into(&mut inner)?;
    let inner = inner.get(..n).unwrap_or(&[]);
    let mut ell_payload = Vec::new();
    let payload: &[u8] = match ell {
        Some(e) if e.is_encrypted() => {
            let address = link.address().ok_or(SealError::Invalid(
                "ELL encryption needs a wireless link address",
            ))?;
            let k = keys
                .key(&KeyRequest {
                    meter: address,
                    key_id: 0,
                    key_version: None,
                })
                .ok_or(SealError::NoKey)?;
            ell_payload.extend_from_slice(&crc16(inner).to_le_bytes());
            ell_payload.extend_from_slice(inner);
            primitives::ctr_apply(k, &ell::counter_block(&address, &e), &mut ell_payload);
            &ell_payload
        }
        _ => inner,
    };
    let repr = FrameRepr {
        link,
        ell,
        transport: Transport {
            payload,
            ..Transport::default()
        },
    };
    let mut out = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut out)?;
    out.truncate(n);
    Ok(out)
}

fn afl_with<'m>(base: &AflRepr<'_>, auth: &'m AflAuth) -> AflRepr<'m> {
    AflRepr {
        fragment_id: base.fragment_id,
        more_fragments: base.more_fragments,
        reserved_bits: base.reserved_bits,
        message_control: auth.message_control,
        key_information: auth.key_information,
        message_counter: auth.message_counter,
        mac: auth.mac(),
        message_length: auth.message_length,
    }
}

/// Seals a whole (unfragmented) message and returns the normalised frame (no link CRCs;
/// wired frames complete).
///
/// # Errors
/// [`SealError`].
pub fn seal<K: KeyStore>(
    spec: &SealSpec<'_>,
    keys: &K,
    profile: &Mode9Profile,
) -> Result<Vec<u8>, SealError> {
    let sealed = seal_message(spec, keys, profile)?;
    let afl = match (&spec.afl, &sealed.auth) {
        (Some(base), Some(auth)) => Some(afl_with(base, auth)),
        _ => None,
    };
    frame(spec.link, spec.ell, afl, &sealed.tpdu, keys)
}

/// Seals a message and splits it into AFL fragments of at most `sizes[i]` message bytes each
/// (the last size repeats). MCL, KI, MCR and ML go in the first fragment, the MAC in the last
/// (OMS Annex N N.3). `ells[i]` is fragment i's ELL (the last repeats; empty for none).
/// Returns the normalised frames.
///
/// # Errors
/// [`SealError`]; `Invalid` when `spec.afl` is absent.
pub fn seal_fragmented<K: KeyStore>(
    spec: &SealSpec<'_>,
    sizes: &[usize],
    ells: &[EllRepr],
    keys: &K,
    profile: &Mode9Profile,
) -> Result<Vec<Vec<u8>>, SealError> {
    let base = spec
        .afl
        .ok_or(SealError::Invalid("fragmentation needs an AFL"))?;
    let mut with_ml = base;
    with_ml.message_length = None;
    let mut spec2 = *spec;
    spec2.afl = Some(with_ml);
    let sealed = seal_message(&spec2, keys, profile)?;
    let mut auth = sealed
        .auth
        .ok_or(SealError::Invalid("fragmentation needs an AFL"))?;
    let total =
        u16::try_from(sealed.tpdu.len()).map_err(|_| SealError::Invalid("message too long"))?;
    if base.message_length.is_some() || auth.message_control.is_some_and(|m| m.length_in_mac()) {
        // The MAC covers ML: compute it again with ML present.
        let mut spec3 = *spec;
        let mut afl3 = base;
        afl3.message_length = Some(total);
        spec3.afl = Some(afl3);
        auth = seal_message(&spec3, keys, profile)?
            .auth
            .ok_or(SealError::Invalid("fragmentation needs an AFL"))?;
    }
    let pieces =
        reassembly::split(sealed.tpdu.len(), sizes).ok_or(SealError::Invalid("fragment sizes"))?;
    let count = pieces.len();
    let mut frames = Vec::with_capacity(count);
    for (i, piece) in pieces.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == count;
        let mut part = AflAuth::default();
        if first {
            part.message_control = auth.message_control;
            part.key_information = auth.key_information;
            part.message_counter = auth.message_counter;
            part.message_length = auth.message_length;
        }
        if last {
            part.mac = auth.mac;
            part.mac_len = auth.mac_len;
        }
        let afl = AflRepr {
            fragment_id: piece.fragment_id,
            more_fragments: piece.more_fragments,
            reserved_bits: 0,
            message_control: part.message_control,
            key_information: part.key_information,
            message_counter: part.message_counter,
            mac: part.mac(),
            message_length: part.message_length,
        };
        let ell = ells.get(i).or(ells.last()).copied();
        let body = sealed.tpdu.get(piece.range.clone()).unwrap_or(&[]);
        frames.push(frame(spec.link, ell, Some(afl), body, keys)?);
    }
    Ok(frames)
}
