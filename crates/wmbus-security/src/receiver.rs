//! The sans-IO receiver: takes parsed frames, returns opened messages.
//!
//! Decoding is two-phase (quinn's `PartialDecode`): [`wmbus_frame::frame::Frame::parse`] reads
//! the plaintext headers, then [`Receiver::open`] looks up the key, verifies the MAC, tag,
//! PayloadCRC or check bytes, decrypts, and checks the message counter. Plaintext is written
//! to the caller's buffer; [`Opened::application`] is only meaningful when
//! [`Opened::result`] says it is.

use alloc::vec::Vec;
use core::ops::Range;

use wmbus_frame::afl::AflRepr;
use wmbus_frame::codepoints::{CiField, ControlField, MeterAddress, SecurityMode};
use wmbus_frame::crc::crc16;
use wmbus_frame::ell::{self, EllRepr};
use wmbus_frame::frame::{Frame, Link, Transport};
use wmbus_frame::tpl::{self, ModeFields, TplHeader, TplRepr};

use crate::kdf::{self, Direction};
use crate::key::{Key, KeyRequest, KeyStore};
pub use crate::mode9::Mode9Profile;
use crate::national::{self, NationalRequest, NationalResult, Registry};
use crate::primitives;
use crate::reassembly::{AflAuth, FragmentError, FragmentOutcome, Reassembler, ReassemblyLimits};
use crate::replay::{CounterKey, ReplayGuard};
use crate::time::Instant;

/// The outcome of opening a message, from best to worst.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityResult {
    /// No security: mode 0 without an AFL MAC.
    None,
    /// Decrypted; integrity from check bytes (2F2F) or the ELL PayloadCRC only (modes 2, 5,
    /// ELL, mode 7 without an AFL MAC).
    Decrypted,
    /// A MAC or tag verified (AFL CMAC, CCM, GCM); decrypted where encrypted.
    Authenticated,
    /// No key, and the payload was already in clear: a receiver decrypted it.
    DecryptedByReceiver,
    /// No key for this meter.
    NoKey,
    /// The AFL MAC does not verify.
    MacMismatch,
    /// The CCM or GCM tag does not verify.
    TagMismatch,
    /// Decrypted, but the plaintext does not start with 2F2F.
    CheckBytesMismatch,
    /// The ELL PayloadCRC does not verify after decryption.
    PayloadCrcMismatch,
    /// The mode 7 padding (CF P bit) is not valid.
    PaddingInvalid,
    /// A key is configured but the payload is in clear: refused (it could be a replay of
    /// logged plaintext).
    PlaintextWithKey,
    /// Authenticated, but the message counter is not greater than the last accepted one.
    Replayed {
        /// Counter received.
        counter: u32,
        /// Highest counter accepted before.
        last: u32,
    },
    /// A security mode, KDF or layout this stack does not implement.
    Unsupported(SecurityMode),
    /// A header inside the secured part is malformed (see [`Opened::error`]).
    Malformed,
    /// A fragment was stored; the message is not complete yet.
    FragmentBuffered {
        /// FID stored.
        fragment_id: u8,
        /// Bytes gathered.
        received: usize,
    },
    /// A fragment was refused.
    FragmentRejected(FragmentError),
}

/// The report status a [`SecurityResult`] maps to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Decoded.
    Ok,
    /// No key.
    NoKey,
    /// MAC, tag, check bytes, PayloadCRC or padding failed, or plaintext refused.
    AuthenticationFailed,
    /// A counter was replayed.
    Replayed,
    /// Not implemented here.
    Unsupported,
    /// Malformed.
    Malformed,
    /// A fragment of a message not yet complete.
    Incomplete,
}

impl Status {
    /// The report name ("ok", "no_key", …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NoKey => "no_key",
            Self::AuthenticationFailed => "authentication_failed",
            Self::Replayed => "replayed",
            Self::Unsupported => "unsupported",
            Self::Malformed => "malformed",
            Self::Incomplete => "incomplete",
        }
    }
}

impl SecurityResult {
    /// The report status.
    pub const fn status(self) -> Status {
        match self {
            Self::None | Self::Decrypted | Self::Authenticated | Self::DecryptedByReceiver => {
                Status::Ok
            }
            Self::NoKey => Status::NoKey,
            Self::MacMismatch
            | Self::TagMismatch
            | Self::CheckBytesMismatch
            | Self::PayloadCrcMismatch
            | Self::PaddingInvalid
            | Self::PlaintextWithKey => Status::AuthenticationFailed,
            Self::Replayed { .. } => Status::Replayed,
            Self::Unsupported(_) => Status::Unsupported,
            Self::Malformed => Status::Malformed,
            Self::FragmentBuffered { .. } => Status::Incomplete,
            Self::FragmentRejected(_) => Status::Malformed,
        }
    }

    /// True when the application data may be used.
    pub const fn is_released(self) -> bool {
        matches!(self.status(), Status::Ok)
    }

    /// The report name ("authenticated", "mac_mismatch", …).
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Decrypted => "decrypted",
            Self::Authenticated => "authenticated",
            Self::DecryptedByReceiver => "decrypted_by_receiver",
            Self::NoKey => "no_key",
            Self::MacMismatch => "mac_mismatch",
            Self::TagMismatch => "tag_mismatch",
            Self::CheckBytesMismatch => "check_bytes_mismatch",
            Self::PayloadCrcMismatch => "payload_crc_mismatch",
            Self::PaddingInvalid => "padding_invalid",
            Self::PlaintextWithKey => "plaintext_with_key",
            Self::Replayed { .. } => "replayed",
            Self::Unsupported(_) => "unsupported",
            Self::Malformed => "malformed",
            Self::FragmentBuffered { .. } => "fragment_buffered",
            Self::FragmentRejected(_) => "fragment_rejected",
        }
    }
}

/// Up to 16 bytes: an IV, nonce or MAC.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Bytes16 {
    bytes: [u8; 16],
    len: u8,
}

impl Bytes16 {
    /// From a slice (at most 16 bytes are kept).
    pub fn new(s: &[u8]) -> Self {
        let mut out = Self::default();
        let n = s.len().min(16);
        if let (Some(d), Some(s)) = (out.bytes.get_mut(..n), s.get(..n)) {
            d.copy_from_slice(s);
        }
        out.len = n as u8;
        out
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl core::fmt::Debug for Bytes16 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.as_slice() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// Ephemeral keys derived for one message (only kept with [`ReceiverOptions::diagnostics`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedKeys {
    /// Kenc or Lenc.
    pub encryption: Key,
    /// Kmac or Lmac.
    pub mac: Key,
}

/// What a user needs to see why a message failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// Key ID used (CFE, KI or CF).
    pub key_id: Option<u8>,
    /// Key version named by the message.
    pub key_version: Option<u8>,
    /// KDF selection (0 persistent key, 1 KDF-A).
    pub kdf_selection: Option<u8>,
    /// Message counter (AFL MCR, TPL MC or mode 9 CTR).
    pub counter: Option<u32>,
    /// CBC IV, CCM nonce or GCM IV.
    pub iv: Option<Bytes16>,
    /// ELL AES-CTR initial counter block.
    pub ell_counter_block: Option<Bytes16>,
    /// AFL MAC or AEAD tag as received.
    pub mac_received: Option<Bytes16>,
    /// Full 16-byte CMAC computed (AFL).
    pub mac_computed: Option<Bytes16>,
    /// Bytes encrypted in the transport layer.
    pub encrypted_len: usize,
    /// The ELL payload was decrypted.
    pub ell_decrypted: bool,
    /// Fragments the message came in.
    pub fragments: Option<u8>,
    /// Derived keys (diagnostics only; boxed: each key carries its expanded schedule).
    pub derived: Option<alloc::boxed::Box<DerivedKeys>>,
    /// A remark on the result, e.g. why plaintext was refused.
    pub note: Option<&'static str>,
}

/// An opened message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The outcome.
    pub result: SecurityResult,
    /// Direction of the message.
    pub direction: Direction,
    /// The meter the message is from or for.
    pub meter: Option<MeterAddress>,
    /// ELL of the frame.
    pub ell: Option<EllRepr>,
    /// AFL fields (merged over fragments).
    pub afl: Option<AflAuth>,
    /// Transport layer (from inside the ELL encryption or the reassembled message when
    /// applicable).
    pub tpl: Option<TplRepr>,
    /// The transport-layer bytes from CI up to the payload, in the plaintext buffer.
    pub tpl_bytes: Range<usize>,
    /// The application data in the plaintext buffer (check bytes, fillers and tags removed
    /// only where the mode says so: 2F2F and 2F fillers stay, as they are records-layer idle
    /// fillers).
    pub application: Range<usize>,
    /// Why it failed, for malformed content inside the secured part.
    pub error: Option<wmbus_frame::Error>,
    /// Diagnostics.
    pub details: Details,
}

/// Receiver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverOptions {
    /// Open the deprecated DES modes (needs the `des` feature too).
    pub allow_des: bool,
    /// Reject message counters that are not greater than the last accepted.
    pub replay_check: bool,
    /// Without a key, accept payloads a receiver already decrypted (flagged as such).
    pub accept_decrypted_by_receiver: bool,
    /// Keep IVs, MACs and derived keys in [`Details`].
    pub diagnostics: bool,
    /// Mode 9 wiring.
    pub mode9: Mode9Profile,
    /// Fragment reassembly bounds.
    pub reassembly: ReassemblyLimits,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self {
            allow_des: false,
            replay_check: true,
            accept_decrypted_by_receiver: true,
            diagnostics: false,
            mode9: Mode9Profile::default(),
            reassembly: ReassemblyLimits::default(),
        }
    }
}

/// Key of a message under reassembly: the sender's link address and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FragmentKey {
    link: [u8; 8],
    direction: Direction,
}

/// The receiver: keys, replay state, fragments in flight, national-mode handlers.
#[derive(Debug)]
pub struct Receiver<K> {
    keys: K,
    options: ReceiverOptions,
    replay: ReplayGuard,
    fragments: Reassembler<FragmentKey>,
    national: Registry,
}

/// The direction of a message: from the transport CI (commands to a device) or, without
/// one, from the C-field.
pub fn direction(ci: Option<CiField>, control: ControlField) -> Direction {
    if let Some(ci) = ci {
        return match ci.0 {
            0x50..=0x5C
            | 0x60
            | 0x61
            | 0x64
            | 0x65
            | 0x6C
            | 0x6D
            | 0x80
            | 0x84
            | 0x85
            | 0xB8..=0xBF
            | 0xC0
            | 0xC3
            | 0xC6
            | 0xC7 => Direction::PartnerToMeter,
            _ => Direction::MeterToPartner,
        };
    }
    match control.0 {
        0x40 | 0x43 | 0x53 | 0x73 | 0x45 | 0x55 | 0x5A | 0x7A | 0x5B | 0x7B | 0x06 => {
            Direction::PartnerToMeter
        }
        _ => Direction::MeterToPartner,
    }
}

/// The mode 5 IV (EN 13757-7 §9.4.4): `M ‖ ID ‖ Version ‖ Type ‖ ACC×8`.
pub fn mode5_iv(meter: &MeterAddress, access_number: u8) -> [u8; 16] {
    let mut iv = [access_number; 16];
    if let Some(head) = iv.get_mut(..8) {
        head.copy_from_slice(&meter.to_link_bytes());
    }
    iv
}

/// The mode 10 CCM nonce (OMS Annex N N.2.6): `M ‖ ID ‖ Version ‖ Type ‖ 00 ‖ MC (big-endian)`.
pub fn mode10_nonce(meter: &MeterAddress, counter: u32) -> [u8; 13] {
    let a = meter.to_link_bytes();
    let c = counter.to_be_bytes();
    [
        a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], 0, c[0], c[1], c[2], c[3],
    ]
}

/// AFL MAC input as EN 13757-7 §6.3 gives it: `MCL ‖ [KI] ‖ [MCR] ‖ [ML] ‖ TPDU`, each field
/// included when present in the message. OMS Annex N verifies the cases without KI; whether KI
/// enters is not public (`docs/security-modes.md`).
pub fn afl_mac(key: &Key, auth: &AflAuth, tpdu: &[u8]) -> [u8; 16] {
    let mcl = [auth.message_control.map_or(0, |m| m.0)];
    let ki = auth.key_information.map(|k| k.0.to_le_bytes());
    let mcr = auth.message_counter.map(u32::to_le_bytes);
    let ml = auth.message_length.map(u16::to_le_bytes);
    kdf::cmac(
        key,
        &[
            &mcl,
            ki.as_ref().map_or(&[][..], |k| &k[..]),
            mcr.as_ref().map_or(&[][..], |k| &k[..]),
            ml.as_ref().map_or(&[][..], |k| &k[..]),
            tpdu,
        ],
    )
}

fn starts_2f2f(b: &[u8]) -> bool {
    matches!(b, [0x2F, 0x2F, ..])
}

struct Context {
    direction: Direction,
    meter: Option<MeterAddress>,
}

impl<K: KeyStore> Receiver<K> {
    /// A receiver over a key store.
    pub fn new(keys: K, options: ReceiverOptions) -> Self {
        Self {
            keys,
            options,
            replay: ReplayGuard::new(),
            fragments: Reassembler::new(options.reassembly),
            national: Registry::default(),
        }
    }

    /// The key store.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The key store, to change keys.
    pub fn keys_mut(&mut self) -> &mut K {
        &mut self.keys
    }

    /// The options.
    pub fn options(&self) -> &ReceiverOptions {
        &self.options
    }

    /// The replay state (to save it).
    pub fn replay(&self) -> &ReplayGuard {
        &self.replay
    }

    /// The replay state (to load it).
    pub fn replay_mut(&mut self) -> &mut ReplayGuard {
        &mut self.replay
    }

    /// National-mode handlers.
    pub fn national_mut(&mut self) -> &mut Registry {
        &mut self.national
    }

    /// When a fragment set next times out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.fragments.poll_timeout()
    }

    /// Drops fragment sets that timed out; returns how many.
    pub fn handle_timeout(&mut self, now: Instant) -> usize {
        self.fragments.handle_timeout(now)
    }

    /// Opens one parsed frame, writing plaintext into `plain`.
    pub fn open(&mut self, now: Instant, frame: &Frame<'_>, plain: &mut Vec<u8>) -> Opened {
        plain.clear();
        let link = frame.repr.link;
        let ell = frame.repr.ell;
        let transport = &frame.repr.transport;
        let mut details = Details::default();
        let out = |result, ctx: &Context, details: Details| Opened {
            result,
            direction: ctx.direction,
            meter: ctx.meter,
            ell,
            afl: None,
            tpl: None,
            tpl_bytes: 0..0,
            application: 0..0,
            error: None,
            details,
        };
        let mut ctx = Context {
            direction: direction(transport.tpl.map(|t| t.ci), link.control()),
            meter: frame.meter(),
        };

        // Stage 1: the ELL, decrypting what it encrypts.
        let inner_offset;
        let mut ell_result = None;
        if let (Some(e), Some(link_address)) = (ell, link.address())
            && e.is_encrypted()
        {
            let ciphertext = transport.payload;
            plain.extend_from_slice(ciphertext);
            let clear_crc_ok = payload_crc_ok(ciphertext);
            let request = KeyRequest {
                meter: link_address,
                key_id: 0,
                key_version: None,
            };
            match self.keys.key(&request) {
                Some(key) => {
                    let icb = ell::counter_block(&link_address, &e);
                    details.ell_counter_block = Some(Bytes16::new(&icb));
                    primitives::ctr_apply(key, &icb, plain);
                    if !payload_crc_ok(plain) {
                        let (result, note) = if clear_crc_ok {
                            (
                                SecurityResult::PlaintextWithKey,
                                "the ELL payload is already in clear (decrypted by the receiver?) but a key is configured",
                            )
                        } else {
                            (
                                SecurityResult::PayloadCrcMismatch,
                                "ELL PayloadCRC fails after decryption: wrong key or corrupted frame",
                            )
                        };
                        details.note = Some(note);
                        plain.clear();
                        return out(result, &ctx, details);
                    }
                    details.ell_decrypted = true;
                    ell_result = Some(SecurityResult::Decrypted);
                }
                None => {
                    if clear_crc_ok && self.options.accept_decrypted_by_receiver {
                        ell_result = Some(SecurityResult::DecryptedByReceiver);
                    } else {
                        plain.clear();
                        return out(SecurityResult::NoKey, &ctx, details);
                    }
                }
            }
            plain.drain(..2.min(plain.len()));
            inner_offset = transport.payload_offset + 2;
        } else {
            let start = transport
                .afl_offset
                .or(transport.tpl_offset)
                .unwrap_or(transport.payload_offset);
            let end = transport.payload_offset + transport.payload.len();
            plain.extend_from_slice(frame.bytes.get(start..end).unwrap_or(&[]));
            inner_offset = start;
        }

        // Stage 2: AFL and transport header of the (now plaintext-header) message: parsed
        // already unless the ELL encrypted them.
        let reparsed = if details.ell_decrypted || ell_result.is_some() {
            Transport::parse(plain, inner_offset)
        } else {
            Ok(*transport)
        };
        let parsed = match reparsed {
            Ok(t) => Parsed::from(&t, inner_offset),
            Err(e) => {
                let result = if e.is_unsupported() {
                    SecurityResult::Unsupported(SecurityMode::NONE)
                } else {
                    SecurityResult::Malformed
                };
                let mut o = out(result, &ctx, details);
                o.error = Some(e);
                return o;
            }
        };
        if let Some(t) = parsed.tpl {
            ctx.direction = direction(Some(t.ci), link.control());
            ctx.meter = meter_of(&link, ell.as_ref(), Some(&t), ctx.direction);
        }

        let (auth, tpdu_start) = match parsed.afl {
            Some(afl) if afl.is_fragment() => {
                let key = FragmentKey {
                    link: match link {
                        Link::Wireless(d) => d.address.to_link_bytes(),
                        Link::Wired(w) => [w.primary_address, 0, 0, 0, 0, 0, 0, 0],
                    },
                    direction: ctx.direction,
                };
                let afl_repr = parsed.afl_repr(plain);
                let fragment = plain.get(parsed.afl_end..).unwrap_or(&[]);
                match self.fragments.push(now, key, &afl_repr, fragment) {
                    Ok(FragmentOutcome::Buffered {
                        fragment_id,
                        received,
                        ..
                    }) => {
                        let mut o = out(
                            SecurityResult::FragmentBuffered {
                                fragment_id,
                                received,
                            },
                            &ctx,
                            details,
                        );
                        o.afl = Some(AflAuth::from_repr(&afl_repr));
                        o.tpl = parsed.tpl;
                        return o;
                    }
                    Ok(FragmentOutcome::Complete(r)) => {
                        plain.clear();
                        plain.extend_from_slice(&r.message);
                        details.fragments = Some(r.auth.fragments);
                        (Some(r.auth), 0)
                    }
                    Err(e) => {
                        let mut o = out(SecurityResult::FragmentRejected(e), &ctx, details);
                        o.afl = Some(AflAuth::from_repr(&afl_repr));
                        return o;
                    }
                }
            }
            Some(_) => (Some(parsed.auth), parsed.afl_end),
            None => (None, parsed.afl_end),
        };

        // Re-read the transport layer of a reassembled message.
        let (tpl, payload_start) = if details.fragments.is_some() {
            match Transport::parse(plain, 0) {
                Ok(t) => {
                    if let Some(tpl) = t.tpl {
                        ctx.direction = direction(Some(tpl.ci), link.control());
                        ctx.meter = meter_of(&link, ell.as_ref(), Some(&tpl), ctx.direction);
                    }
                    (t.tpl, t.payload_offset)
                }
                Err(e) => {
                    let mut o = out(SecurityResult::Malformed, &ctx, details);
                    o.error = Some(e);
                    o.afl = auth;
                    return o;
                }
            }
        } else {
            (parsed.tpl, parsed.payload_start)
        };

        let mut opened =
            self.open_transport(&ctx, auth, tpl, tpdu_start..payload_start, plain, details);
        opened.ell = ell;
        // The ELL's own verdict stands when the transport adds no protection of its own.
        if let Some(er) = ell_result
            && matches!(opened.result, SecurityResult::None)
        {
            opened.result = er;
        }
        opened
    }

    /// Stage 3: the transport layer's security. `tpdu` is CI..payload in `plain`; the payload
    /// runs to the end of `plain`.
    fn open_transport(
        &mut self,
        ctx: &Context,
        auth: Option<AflAuth>,
        tpl: Option<TplRepr>,
        tpdu: Range<usize>,
        plain: &mut Vec<u8>,
        mut details: Details,
    ) -> Opened {
        let payload = tpdu.end..plain.len();
        let mut o = Opened {
            result: SecurityResult::None,
            direction: ctx.direction,
            meter: ctx.meter,
            ell: None,
            afl: auth,
            tpl,
            tpl_bytes: tpdu.clone(),
            application: payload.clone(),
            error: None,
            details: Details::default(),
        };
        if let Some(a) = &auth {
            details.mac_received = a.mac().map(Bytes16::new);
            details.counter = a.message_counter;
        }
        let Some(header) = tpl.and_then(|t| t.header) else {
            // No transport header: only an AFL MAC can protect it.
            if auth.is_some_and(|a| a.mac_len > 0) {
                o.result = self.verify_afl_only(ctx, auth, tpdu.start, plain, 0, &mut details);
            }
            o.details = details;
            return o;
        };
        let mode = header.config.mode();
        let result = match mode.0 {
            0 => {
                if auth.is_some_and(|a| a.mac_len > 0) {
                    self.verify_afl_only(ctx, auth, tpdu.start, plain, 0, &mut details)
                } else {
                    SecurityResult::None
                }
            }
            5 => self.open_mode5(ctx, &header, payload.clone(), plain, &mut details),
            7 => self.open_mode7(
                ctx,
                &header,
                auth,
                tpdu.start,
                payload.clone(),
                plain,
                &mut details,
                &mut o.application,
            ),
            9 => self.open_mode9(
                ctx,
                &header,
                payload.clone(),
                plain,
                &mut details,
                &mut o.application,
            ),
            10 => self.open_mode10(
                ctx,
                &header,
                auth,
                tpdu.clone(),
                plain,
                &mut details,
                &mut o.application,
            ),
            2 | 3 => self.open_des(ctx, &header, payload.clone(), plain, &mut details),
            n => match self.national.get(n) {
                Some(handler) => {
                    let Some(meter) = ctx.meter else {
                        o.details = details;
                        o.result = SecurityResult::Malformed;
                        return o;
                    };
                    let (head, tail) = plain.split_at_mut(payload.start);
                    let keys = national::lookup(&self.keys);
                    let request = NationalRequest {
                        meter,
                        header: &header,
                        tpl_bytes: head.get(tpdu.clone()).unwrap_or(&[]),
                        payload: tail,
                        keys: &keys,
                    };
                    match handler.open(request) {
                        NationalResult::Opened {
                            range,
                            authenticated,
                        } => {
                            o.application = payload.start + range.start..payload.start + range.end;
                            if authenticated {
                                SecurityResult::Authenticated
                            } else {
                                SecurityResult::Decrypted
                            }
                        }
                        NationalResult::NoKey => SecurityResult::NoKey,
                        NationalResult::AuthenticationFailed => SecurityResult::CheckBytesMismatch,
                    }
                }
                None => SecurityResult::Unsupported(mode),
            },
        };
        if !result.is_released() {
            o.application = payload.start..payload.start;
        }
        o.result = result;
        o.details = details;
        o
    }

    fn key_for(&self, ctx: &Context, key_id: u8, key_version: Option<u8>) -> Option<&Key> {
        let meter = ctx.meter?;
        self.keys.key(&KeyRequest {
            meter,
            key_id,
            key_version,
        })
    }

    fn counter_key(&self, ctx: &Context, key_id: u8) -> Option<CounterKey> {
        ctx.meter.map(|m| CounterKey {
            manufacturer: m.manufacturer,
            ident: m.address.ident,
            key_id,
            direction: ctx.direction,
        })
    }

    /// Checks and records a counter after authentication.
    fn check_replay(&mut self, ctx: &Context, key_id: u8, counter: u32) -> Option<SecurityResult> {
        if !self.options.replay_check {
            return None;
        }
        let key = self.counter_key(ctx, key_id)?;
        if let Err(r) = self.replay.check(&key, counter) {
            return Some(SecurityResult::Replayed {
                counter: r.counter,
                last: r.last,
            });
        }
        self.replay.accept(key, counter);
        None
    }

    fn derive_pair(
        &self,
        master: &Key,
        kdf_selection: u8,
        ctx: &Context,
        counter: Option<u32>,
    ) -> Result<(Key, Key), SecurityResult> {
        match kdf_selection {
            0 => Ok((master.clone(), master.clone())),
            1 => {
                let (Some(counter), Some(meter)) = (counter, ctx.meter) else {
                    return Err(SecurityResult::Malformed);
                };
                let ident = meter.address.ident.to_bytes();
                Ok((
                    kdf::derive(master, ctx.direction.encryption(), counter, ident),
                    kdf::derive(master, ctx.direction.mac(), counter, ident),
                ))
            }
            _ => Err(SecurityResult::Unsupported(SecurityMode::AES_CBC_EPHEMERAL)),
        }
    }

    fn verify_afl_only(
        &mut self,
        ctx: &Context,
        auth: Option<AflAuth>,
        tpdu_start: usize,
        plain: &[u8],
        key_id: u8,
        details: &mut Details,
    ) -> SecurityResult {
        let Some(auth) = auth else {
            return SecurityResult::None;
        };
        let kdf_selection = auth.key_information.map_or(1, |k| k.kdf_selection());
        let Some(master) = self.key_for(ctx, key_id, None).cloned() else {
            return SecurityResult::NoKey;
        };
        let (enc, mac_key) =
            match self.derive_pair(&master, kdf_selection, ctx, auth.message_counter) {
                Ok(k) => k,
                Err(r) => return r,
            };
        let computed = afl_mac(&mac_key, &auth, plain.get(tpdu_start..).unwrap_or(&[]));
        details.mac_computed = Some(Bytes16::new(&computed));
        if self.options.diagnostics {
            details.derived = Some(alloc::boxed::Box::new(DerivedKeys {
                encryption: enc,
                mac: mac_key,
            }));
        }
        if primitives::verify_truncated(&computed, auth.mac().unwrap_or(&[])).is_err() {
            return SecurityResult::MacMismatch;
        }
        if let Some(c) = auth.message_counter
            && let Some(r) = self.check_replay(ctx, key_id, c)
        {
            return r;
        }
        SecurityResult::Authenticated
    }

    fn open_mode5(
        &mut self,
        ctx: &Context,
        header: &TplHeader,
        payload: Range<usize>,
        plain: &mut [u8],
        details: &mut Details,
    ) -> SecurityResult {
        let enc_len = 16 * usize::from(header.config.encrypted_blocks());
        details.encrypted_len = enc_len;
        details.key_id = Some(0);
        if enc_len == 0 {
            return SecurityResult::None;
        }
        let Some(region) = plain.get_mut(payload.start..payload.start + enc_len) else {
            return SecurityResult::Malformed;
        };
        let Some(meter) = ctx.meter else {
            return SecurityResult::Malformed;
        };
        let iv = mode5_iv(&meter, header.access_number);
        details.iv = Some(Bytes16::new(&iv));
        let was_clear = starts_2f2f(region);
        let Some(key) = self.key_for(ctx, 0, None) else {
            return if was_clear && self.options.accept_decrypted_by_receiver {
                SecurityResult::DecryptedByReceiver
            } else {
                SecurityResult::NoKey
            };
        };
        if primitives::cbc_decrypt(key, &iv, region).is_err() {
            return SecurityResult::Malformed;
        }
        if starts_2f2f(region) {
            SecurityResult::Decrypted
        } else if was_clear {
            details.note = Some(
                "the payload already starts with 2F2F (decrypted by the receiver?) but a key is configured: refused",
            );
            SecurityResult::PlaintextWithKey
        } else {
            details.note = Some(
                "decrypted data does not start with 2F2F: wrong key, or a meter that sends no check bytes",
            );
            SecurityResult::CheckBytesMismatch
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open_mode7(
        &mut self,
        ctx: &Context,
        header: &TplHeader,
        auth: Option<AflAuth>,
        tpdu_start: usize,
        payload: Range<usize>,
        plain: &mut Vec<u8>,
        details: &mut Details,
        application: &mut Range<usize>,
    ) -> SecurityResult {
        let ModeFields::Mode7 {
            extension,
            key_version,
            message_counter,
        } = header.mode_fields
        else {
            return SecurityResult::Malformed;
        };
        let key_id = extension.key_id();
        let kdf_selection = extension.kdf_selection();
        details.key_id = Some(key_id);
        details.key_version = key_version;
        details.kdf_selection = Some(kdf_selection);
        let counter = message_counter.or(auth.and_then(|a| a.message_counter));
        details.counter = counter;
        let enc_len = 16 * usize::from(header.config.encrypted_blocks());
        details.encrypted_len = enc_len;
        details.iv = Some(Bytes16::new(&[0u8; 16]));
        if payload.len() < enc_len {
            return SecurityResult::Malformed;
        }
        let mac = auth.and_then(|a| a.mac().map(Bytes16::new));
        let Some(master) = self.key_for(ctx, key_id, key_version).cloned() else {
            let clear = plain.get(payload.clone()).is_some_and(starts_2f2f);
            // Receivers that decrypt mode 7 pass the AFL on unchanged; its MAC cannot be
            // checked without the key either way, so the result says what happened.
            return if clear && self.options.accept_decrypted_by_receiver {
                SecurityResult::DecryptedByReceiver
            } else {
                SecurityResult::NoKey
            };
        };
        if kdf_selection == 1 && counter.is_none() {
            details.note = Some("mode 7 with KDF-A needs a message counter (TPL Z bit or AFL MCR)");
            return SecurityResult::Malformed;
        }
        let (enc, mac_key) = match self.derive_pair(&master, kdf_selection, ctx, counter) {
            Ok(k) => k,
            Err(r) => return r,
        };
        let authenticated = if let (Some(a), Some(_)) = (auth.as_ref(), mac) {
            let computed = afl_mac(&mac_key, a, plain.get(tpdu_start..).unwrap_or(&[]));
            details.mac_computed = Some(Bytes16::new(&computed));
            if primitives::verify_truncated(&computed, a.mac().unwrap_or(&[])).is_err() {
                if self.options.diagnostics {
                    details.derived = Some(alloc::boxed::Box::new(DerivedKeys {
                        encryption: enc,
                        mac: mac_key,
                    }));
                }
                return SecurityResult::MacMismatch;
            }
            true
        } else {
            details.note = Some("no AFL MAC: integrity from the 2F2F check bytes only");
            false
        };
        let was_clear = plain.get(payload.clone()).is_some_and(starts_2f2f);
        let Some(region) = plain.get_mut(payload.start..payload.start + enc_len) else {
            return SecurityResult::Malformed;
        };
        if primitives::cbc_decrypt(&enc, &[0u8; 16], region).is_err() {
            return SecurityResult::Malformed;
        }
        if self.options.diagnostics {
            details.derived = Some(alloc::boxed::Box::new(DerivedKeys {
                encryption: enc,
                mac: mac_key,
            }));
        }
        if enc_len > 0 && !starts_2f2f(region) {
            if was_clear && !authenticated {
                details.note = Some(
                    "the payload already starts with 2F2F (decrypted by the receiver?) but a key is configured: refused",
                );
                return SecurityResult::PlaintextWithKey;
            }
            return SecurityResult::CheckBytesMismatch;
        }
        // P bit: the last encrypted block ends in k bytes of value k (OMS Annex N N.12.4).
        if header.config.padding() && enc_len > 0 {
            let pad = region.last().copied().unwrap_or(0);
            let n = usize::from(pad);
            let ok = (1..=16).contains(&n)
                && region
                    .get(enc_len - n..)
                    .is_some_and(|p| p.iter().all(|&b| b == pad));
            if !ok {
                return SecurityResult::PaddingInvalid;
            }
            let cut = payload.start + enc_len - n..payload.start + enc_len;
            plain.drain(cut);
            *application = payload.start..plain.len();
        }
        if let Some(c) = counter
            && let Some(r) = self.check_replay(ctx, key_id, c)
        {
            return r;
        }
        if authenticated {
            SecurityResult::Authenticated
        } else {
            SecurityResult::Decrypted
        }
    }

    fn open_mode9(
        &mut self,
        ctx: &Context,
        header: &TplHeader,
        payload: Range<usize>,
        plain: &mut [u8],
        details: &mut Details,
        application: &mut Range<usize>,
    ) -> SecurityResult {
        let ModeFields::Mode9 {
            encrypted_len,
            unencrypted_len,
            counter,
        } = header.mode_fields
        else {
            return SecurityResult::Malformed;
        };
        let key_id = header.config.key_id();
        details.key_id = Some(key_id);
        details.kdf_selection = Some(header.config.kdf_selection());
        details.counter = Some(counter);
        let enc_len = usize::from(encrypted_len);
        details.encrypted_len = enc_len;
        if unencrypted_len != 0 || header.config.kdf_selection() != 0 || !header.config.bit13() {
            details.note =
                Some("mode 9 with unencrypted data, a KDF or no tag has no public layout");
            return SecurityResult::Unsupported(SecurityMode::AES_GCM);
        }
        let tag_range = payload.start + enc_len..payload.start + enc_len + 12;
        if tag_range.end != payload.end {
            return SecurityResult::Malformed;
        }
        let Some(meter) = ctx.meter else {
            return SecurityResult::Malformed;
        };
        let Some(key) = self.key_for(ctx, key_id, None).cloned() else {
            return SecurityResult::NoKey;
        };
        let profile = self.options.mode9;
        let iv = profile.iv(&meter, counter);
        details.iv = Some(Bytes16::new(&iv));
        let (aad, aad_len) = profile.aad(header);
        let mut tag = [0u8; 12];
        if let Some(t) = plain.get(tag_range.clone()) {
            tag.copy_from_slice(t);
        }
        details.mac_received = Some(Bytes16::new(&tag));
        let Some(region) = plain.get_mut(payload.start..tag_range.start) else {
            return SecurityResult::Malformed;
        };
        if primitives::gcm_open(&key, &iv, aad.get(..aad_len).unwrap_or(&[]), region, &tag).is_err()
        {
            return SecurityResult::TagMismatch;
        }
        *application = payload.start..tag_range.start;
        if let Some(r) = self.check_replay(ctx, key_id, counter) {
            return r;
        }
        SecurityResult::Authenticated
    }

    #[allow(clippy::too_many_arguments)]
    fn open_mode10(
        &mut self,
        ctx: &Context,
        header: &TplHeader,
        auth: Option<AflAuth>,
        tpdu: Range<usize>,
        plain: &mut [u8],
        details: &mut Details,
        application: &mut Range<usize>,
    ) -> SecurityResult {
        let ModeFields::Mode10 {
            extension,
            key_version,
            message_counter,
        } = header.mode_fields
        else {
            return SecurityResult::Malformed;
        };
        let payload = tpdu.end..plain.len();
        let key_id = extension.key_id();
        let kdf_selection = extension.kdf_selection();
        details.key_id = Some(key_id);
        details.key_version = key_version;
        details.kdf_selection = Some(kdf_selection);
        let counter = message_counter.or(auth.and_then(|a| a.message_counter));
        details.counter = counter;
        let tag_len = extension.tag_len();
        let Some(data_len) = payload.len().checked_sub(tag_len) else {
            return SecurityResult::Malformed;
        };
        let enc_len = tpl::encrypted_len(header, payload.len());
        details.encrypted_len = enc_len;
        if enc_len != data_len {
            details.note =
                Some("mode 10 with a clear part after the encrypted bytes has no public layout");
            return SecurityResult::Unsupported(SecurityMode::AES_CCM);
        }
        let (Some(counter), Some(meter)) = (counter, ctx.meter) else {
            details.note = Some("mode 10 needs a message counter for its nonce");
            return SecurityResult::Malformed;
        };
        let Some(master) = self.key_for(ctx, key_id, key_version).cloned() else {
            return SecurityResult::NoKey;
        };
        let (enc, mac_key) = match self.derive_pair(&master, kdf_selection, ctx, Some(counter)) {
            Ok(k) => k,
            Err(SecurityResult::Unsupported(_)) => {
                return SecurityResult::Unsupported(SecurityMode::AES_CCM);
            }
            Err(r) => return r,
        };
        let nonce = mode10_nonce(&meter, counter);
        details.iv = Some(Bytes16::new(&nonce));
        // AAD: the transport layer from CI through CFE (OMS Annex N N.2.6); MC and any key
        // version byte are not included.
        let long = if header.meter.is_some() { 8 } else { 0 };
        let aad_end = tpdu.start + 1 + long + 4 + 2;
        let mut aad = [0u8; 16];
        let aad_len = aad_end - tpdu.start;
        if let (Some(d), Some(s)) = (aad.get_mut(..aad_len), plain.get(tpdu.start..aad_end)) {
            d.copy_from_slice(s);
        }
        let mut tag = [0u8; 16];
        let tag_range = payload.start + data_len..payload.end;
        if let (Some(d), Some(s)) = (tag.get_mut(..tag_len), plain.get(tag_range.clone())) {
            d.copy_from_slice(s);
        }
        details.mac_received = Some(Bytes16::new(tag.get(..tag_len).unwrap_or(&[])));
        if self.options.diagnostics {
            details.derived = Some(alloc::boxed::Box::new(DerivedKeys {
                encryption: enc.clone(),
                mac: mac_key,
            }));
        }
        let Some(region) = plain.get_mut(payload.start..tag_range.start) else {
            return SecurityResult::Malformed;
        };
        if primitives::ccm_open(
            &enc,
            &nonce,
            aad.get(..aad_len).unwrap_or(&[]),
            region,
            tag.get(..tag_len).unwrap_or(&[]),
        )
        .is_err()
        {
            return SecurityResult::TagMismatch;
        }
        *application = payload.start..tag_range.start;
        if let Some(r) = self.check_replay(ctx, key_id, counter) {
            return r;
        }
        SecurityResult::Authenticated
    }

    #[allow(unused_variables)]
    fn open_des(
        &mut self,
        ctx: &Context,
        header: &TplHeader,
        payload: Range<usize>,
        plain: &mut [u8],
        details: &mut Details,
    ) -> SecurityResult {
        let mode = header.config.mode();
        if !self.options.allow_des || !cfg!(feature = "des") {
            details.note = Some(
                "DES modes 2 and 3 are deprecated: they need the des feature and an explicit opt-in",
            );
            return SecurityResult::Unsupported(mode);
        }
        if mode == SecurityMode::DES_CBC {
            details.note = Some("mode 3's IV includes a date whose source is not public");
            return SecurityResult::Unsupported(mode);
        }
        #[cfg(feature = "des")]
        {
            let enc_len = 16 * usize::from(header.config.encrypted_blocks());
            details.encrypted_len = enc_len;
            let Some(meter) = ctx.meter else {
                return SecurityResult::Malformed;
            };
            let Some(region) = plain.get_mut(payload.start..payload.start + enc_len) else {
                return SecurityResult::Malformed;
            };
            let was_clear = starts_2f2f(region);
            let Some(key) = self.keys.des_key(&meter) else {
                return if was_clear && self.options.accept_decrypted_by_receiver {
                    SecurityResult::DecryptedByReceiver
                } else {
                    SecurityResult::NoKey
                };
            };
            if primitives::des_cbc_decrypt(key, &[0u8; 8], region).is_err() {
                return SecurityResult::Malformed;
            }
            if starts_2f2f(region) {
                SecurityResult::Decrypted
            } else {
                SecurityResult::CheckBytesMismatch
            }
        }
        #[cfg(not(feature = "des"))]
        SecurityResult::Unsupported(mode)
    }
}

/// The meter a message concerns: the long transport header's address; for a partner message
/// without one, the ELL's M2/A2; else the link layer's.
fn meter_of(
    link: &Link,
    ell: Option<&EllRepr>,
    tpl: Option<&TplRepr>,
    direction: Direction,
) -> Option<MeterAddress> {
    tpl.and_then(|t| t.header)
        .and_then(|h| h.meter)
        .or_else(|| {
            (direction == Direction::PartnerToMeter)
                .then(|| ell.and_then(|e| e.address))
                .flatten()
        })
        .or_else(|| link.address())
}

fn payload_crc_ok(bytes: &[u8]) -> bool {
    match bytes {
        [lo, hi, rest @ ..] => u16::from_le_bytes([*lo, *hi]) == crc16(rest),
        _ => false,
    }
}

/// The parts of a [`Transport`] that outlive its borrow of the plaintext buffer.
struct Parsed {
    afl: Option<AflLite>,
    auth: AflAuth,
    tpl: Option<TplRepr>,
    afl_end: usize,
    payload_start: usize,
}

#[derive(Clone, Copy)]
struct AflLite {
    repr_start: usize,
    fragment: bool,
    first: bool,
}

impl AflLite {
    const fn is_fragment(&self) -> bool {
        self.fragment
    }
}

impl Parsed {
    fn from(t: &Transport<'_>, base: usize) -> Self {
        let rel = |o: usize| o - base;
        let afl_end = t.tpl_offset.map_or(rel(t.payload_offset), rel);
        Self {
            afl: t.afl.map(|a| AflLite {
                repr_start: t.afl_offset.map_or(0, rel),
                fragment: a.is_fragment(),
                first: a.is_first(),
            }),
            auth: t.afl.as_ref().map(AflAuth::from_repr).unwrap_or_default(),
            tpl: t.tpl,
            afl_end: if t.afl.is_some_and(|a| a.is_fragment() && !a.is_first()) {
                rel(t.payload_offset)
            } else {
                afl_end
            },
            payload_start: rel(t.payload_offset),
        }
    }

    /// Re-reads the AFL (it borrows the buffer).
    fn afl_repr<'p>(&self, plain: &'p [u8]) -> AflRepr<'p> {
        let start = self.afl.map_or(0, |a| a.repr_start);
        let _ = self.afl.map(|a| a.first);
        plain
            .get(start..)
            .and_then(|b| Transport::parse(b, 0).ok())
            .and_then(|t| t.afl)
            .unwrap_or_default()
    }
}
