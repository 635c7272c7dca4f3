//! The partner's side of bidirectional exchanges (gateway, head-end, `wmbus meter`): the
//! messages it sends to a meter, the access numbers and counters it keeps per meter, and
//! what the meter's answers say. Timing and retries are [`wmbus_security::exchange`]'s.
//!
//! Layouts follow OMS Vol2 Annex N, byte for byte (tests in `tests/partner.rs`):
//! - CNF-IR (N.7): ELL CC 84h and TPL CI 80h, both access numbers echoing the SND-IR;
//! - REQ-UD2 (N.3.3): CI 80h; a request for the next fragment takes a new ELL access number
//!   and keeps the TPL one (N.3.4, N.3.5);
//! - SND-NKE (N.11);
//! - SND-UD (N.8.2): long TPL header with the meter's address, mode 5 with the IV from the
//!   meter's address and the partner's access number, or mode 7;
//! - SITP command (N.12.2): SND-UD2, CI C3h, mode 7 with the partner's counter C_GW in
//!   AFL.MCR and keys Lenc/Lmac (derivation constants 10h/11h).
//!
//! The partner's status byte carries the meter's RSSI as received, `(dBm + 130) / 2`, 00h
//! when unknown (N.3.3 17h = −84 dBm, N.12.2 20h = −66 dBm).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use wmbus_frame::codepoints::{ControlField, Ident, ManufacturerCode, MeterAddress};
use wmbus_frame::dll::{DllRepr, FrameFormat};
use wmbus_frame::ell::{CommunicationControl, EllRepr};
use wmbus_frame::frame::{Frame, FrameRepr, Link, Transport};
use wmbus_frame::sitp::{Block, BlockControl, Blocks, DataInfo};
use wmbus_security::exchange::Expect;
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::receiver::{Receiver, SecurityResult};
use wmbus_security::time::Instant;

use crate::encode::{
    AddressDesc, AflDesc, CField, Description, EllDesc, EncodeError, FormatDesc, HeaderDesc,
    LinkDesc, TplDesc, encode_with,
};

/// Communication control of partner messages: bidirectional and accessible (84h in every
/// partner frame of Annex N).
pub const PARTNER_COMMUNICATION_CONTROL: u8 = 0x84;

/// Transport security of partner messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// None (SND-NKE, REQ-UD2, CNF-IR never carry any).
    None,
    /// Mode 5 (OMS security profile A).
    Mode5,
    /// Mode 7 with AFL MAC (profile B).
    Mode7,
}

/// What the partner keeps per meter, persisted between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Session {
    /// Last ELL access number used.
    pub ell_access_number: u8,
    /// Last TPL access number used.
    pub tpl_access_number: u8,
    /// Last partner message counter C_GW used (mode 7, AFL.MCR).
    pub counter: u32,
    /// FCB of the last REQ-UD2 (alternates: 7Bh, 5Bh, 7Bh in N.3).
    pub frame_count_bit: bool,
}

/// A message to send and what answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// L-field first, no CRCs.
    pub bytes: Vec<u8>,
    /// What to wait for.
    pub expect: Expect,
    /// For messages: "REQ-UD2", "SITP command", …
    pub name: &'static str,
}

/// The partner: its own link address and its sessions.
#[derive(Debug, Clone)]
pub struct Partner {
    /// The partner's link address.
    pub address: MeterAddress,
    sessions: BTreeMap<(u16, u32), Session>,
    /// Last KeyCounter used per meter and application key (SITP secured data).
    key_counters: BTreeMap<(u16, u32, u8), u32>,
}

/// Parses `MFR.ID` (or `MFR_ID`) into an address with version and device type 0.
pub fn parse_address(text: &str) -> Option<MeterAddress> {
    let (m, id) = text.split_once(['.', '_'])?;
    Some(MeterAddress {
        manufacturer: ManufacturerCode::parse(m)?,
        address: wmbus_frame::codepoints::Address {
            ident: Ident::parse(id)?,
            version: 0,
            device_type: wmbus_frame::codepoints::DeviceType(0),
        },
    })
}

/// A partner's own link address from `MFR.ID`: version 01h, device type 31h (an OMS
/// gateway, as in Annex N).
pub fn gateway_address(text: &str) -> Option<MeterAddress> {
    let mut a = parse_address(text)?;
    a.address.version = 0x01;
    a.address.device_type = wmbus_frame::codepoints::DeviceType(0x31);
    Some(a)
}

/// RSSI to the partner status byte.
pub fn rssi_status(rssi_dbm: Option<f32>) -> u8 {
    match rssi_dbm {
        None => 0,
        Some(d) => {
            let n = ((d + 130.0) / 2.0).round();
            if n.is_nan() {
                0
            } else {
                n.clamp(1.0, 255.0) as u8
            }
        }
    }
}

fn session_key(meter: &MeterAddress) -> (u16, u32) {
    (meter.manufacturer.0, meter.address.ident.0)
}

impl Partner {
    /// A partner with no sessions yet.
    pub fn new(address: MeterAddress) -> Self {
        Self {
            address,
            sessions: BTreeMap::new(),
            key_counters: BTreeMap::new(),
        }
    }

    /// The next KeyCounter for an application key of `meter` (one above the last used),
    /// recorded as used.
    pub fn next_key_counter(&mut self, meter: &MeterAddress, key_id: u8) -> u32 {
        let (m, id) = session_key(meter);
        let c = self.key_counters.entry((m, id, key_id)).or_insert(0);
        *c = c.wrapping_add(1);
        let c = *c;
        self.sessions.entry((m, id)).or_default();
        c
    }

    /// Sets the last KeyCounter used (e.g. from the meter's key list).
    pub fn set_key_counter(&mut self, meter: &MeterAddress, key_id: u8, counter: u32) {
        let (m, id) = session_key(meter);
        self.key_counters.insert((m, id, key_id), counter);
        self.sessions.entry((m, id)).or_default();
    }

    /// Takes application keys' counters from a key list (DSI 23h): the partner continues
    /// above them.
    pub fn learn_key_counters(&mut self, meter: &MeterAddress, blocks: &[AnswerBlock]) {
        for b in blocks
            .iter()
            .filter(|b| b.data_info == DataInfo::KEY_COUNTERS)
        {
            for (id, _, counter) in key_counters(&b.data) {
                if id >= 0x10 && counter > self.key_counter(meter, id) {
                    self.set_key_counter(meter, id, counter);
                }
            }
        }
    }

    /// The last KeyCounter used.
    pub fn key_counter(&self, meter: &MeterAddress, key_id: u8) -> u32 {
        let (m, id) = session_key(meter);
        self.key_counters
            .get(&(m, id, key_id))
            .copied()
            .unwrap_or(0)
    }

    /// The session with `meter` (a fresh one if none).
    pub fn session(&self, meter: &MeterAddress) -> Session {
        self.sessions
            .get(&session_key(meter))
            .copied()
            .unwrap_or_default()
    }

    /// Replaces the session with `meter`.
    pub fn set_session(&mut self, meter: &MeterAddress, session: Session) {
        self.sessions.insert(session_key(meter), session);
    }

    /// After the meter's key (and counters) were reset (combined activate/deactivate with
    /// option 1; addendum §7): the partner's counter starts again.
    pub fn reset_counter(&mut self, meter: &MeterAddress) {
        let mut s = self.session(meter);
        s.counter = 0;
        self.set_session(meter, s);
    }

    fn description(
        &self,
        meter: &MeterAddress,
        control: ControlField,
        ci: u8,
        session: &Session,
        status: u8,
        security: Security,
    ) -> Description {
        let (ell_access_number, tpl_access_number, counter) = (
            session.ell_access_number,
            session.tpl_access_number,
            session.counter,
        );
        let mode7 = security == Security::Mode7;
        Description {
            meter: AddressDesc::from_address(meter),
            key: None,
            link: LinkDesc {
                c_field: Some(CField::Number(control.0)),
                address: Some(AddressDesc::from_address(&self.address)),
                format: FormatDesc::None,
                primary_address: None,
            },
            ell: Some(EllDesc {
                communication_control: PARTNER_COMMUNICATION_CONTROL,
                access_number: Some(ell_access_number),
                ..EllDesc::default()
            }),
            afl: mode7.then(|| AflDesc {
                authentication_type: Some(5),
                message_counter: Some(counter),
                ..AflDesc::default()
            }),
            tpl: TplDesc {
                ci: Some(ci),
                header: HeaderDesc::Long,
                access_number: tpl_access_number,
                status,
                security_mode: match security {
                    Security::None => 0,
                    Security::Mode5 => 5,
                    Security::Mode7 => 7,
                },
                ..TplDesc::default()
            },
            records: Vec::new(),
        }
    }

    fn build(
        desc: &Description,
        key: Option<&Key>,
        application: &[u8],
    ) -> Result<Vec<u8>, EncodeError> {
        // Mode 7 pads with count bytes (CF.P) when the data does not fill its blocks, so
        // the meter gets the data's exact length (N.12.2 fills its two blocks exactly).
        let mut desc = desc.clone();
        desc.tpl.padding =
            desc.tpl.security_mode == 7 && !(2 + application.len()).is_multiple_of(16);
        encode_with(&desc, key, Some(application))?
            .frames
            .into_iter()
            .next()
            .ok_or_else(|| EncodeError("nothing encoded".into()))
    }

    /// A request whose answer echoes the session's access numbers (the ELL one only when
    /// the request has an ELL).
    fn answered(
        desc: &Description,
        key: Option<&Key>,
        data: &[u8],
        s: &Session,
        with_ell: bool,
        name: &'static str,
    ) -> Result<Request, EncodeError> {
        Ok(Request {
            bytes: Self::build(desc, key, data)?,
            expect: Expect::Answer {
                access_number: Some(s.tpl_access_number),
                ell_access_number: with_ell.then_some(s.ell_access_number),
            },
            name,
        })
    }

    /// Next access numbers (and counter) for a new request.
    fn next(&mut self, meter: &MeterAddress, new_tpl: bool) -> Session {
        let mut s = self.session(meter);
        s.ell_access_number = s.ell_access_number.wrapping_add(1);
        if new_tpl {
            s.tpl_access_number = s.tpl_access_number.wrapping_add(1);
            s.counter = s.counter.wrapping_add(1);
        }
        self.set_session(meter, s);
        s
    }

    /// CNF-IR confirming an installation request: echoes the request's ELL and TPL access
    /// numbers (N.7). Nothing answers it; the meter's next frame shows whether it took.
    ///
    /// # Errors
    /// [`EncodeError`] when `installation_request` has no transport header.
    pub fn confirm_installation(
        &self,
        installation_request: &Frame<'_>,
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        self.echo(
            installation_request,
            ControlField::CNF_IR,
            PARTNER_COMMUNICATION_CONTROL,
            rssi_dbm,
            "CNF-IR",
        )
    }

    /// ACK to an access demand (ACC-DMD) or another frame that asks for one: echoes its ELL
    /// and TPL access numbers, ELL CC 80h (N.10).
    ///
    /// # Errors
    /// [`EncodeError`] when `frame` has no transport header.
    pub fn acknowledge(
        &self,
        frame: &Frame<'_>,
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        self.echo(frame, ControlField::ACK, 0x80, rssi_dbm, "ACK")
    }

    fn echo(
        &self,
        frame: &Frame<'_>,
        control: ControlField,
        communication_control: u8,
        rssi_dbm: Option<f32>,
        name: &'static str,
    ) -> Result<Request, EncodeError> {
        let meter = frame
            .meter()
            .ok_or_else(|| EncodeError("no meter address".into()))?;
        let tpl_access_number = frame
            .repr
            .transport
            .tpl
            .and_then(|t| t.header)
            .map(|h| h.access_number)
            .ok_or_else(|| EncodeError("the meter's frame has no TPL header".into()))?;
        let ell_access_number = frame
            .repr
            .ell
            .map_or(tpl_access_number, |e| e.access_number);
        let mut desc = self.description(
            &meter,
            control,
            0x80,
            &Session {
                ell_access_number,
                tpl_access_number,
                ..Session::default()
            },
            rssi_status(rssi_dbm),
            Security::None,
        );
        if let Some(e) = desc.ell.as_mut() {
            e.communication_control = communication_control;
        }
        Ok(Request {
            bytes: Self::build(&desc, None, &[])?,
            expect: Expect::Nothing,
            name,
        })
    }

    /// SND-NKE (N.11): resets the meter's link; answered by an ACK.
    ///
    /// # Errors
    /// [`EncodeError`].
    pub fn reset_link(
        &mut self,
        meter: &MeterAddress,
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        let s = self.next(meter, true);
        let desc = self.description(
            meter,
            ControlField::SND_NKE,
            0x80,
            &s,
            rssi_status(rssi_dbm),
            Security::None,
        );
        Self::answered(&desc, None, &[], &s, true, "SND-NKE")
    }

    /// REQ-UD2 (N.3.3): asks for the meter's data, ELL I and TPL CI 80h. With
    /// `next_fragment` it asks for the next fragment of the answer being read (N.3.4): a new
    /// ELL access number in an ELL III addressed to the meter, no transport layer. FCB
    /// alternates from one REQ-UD2 to the next.
    ///
    /// # Errors
    /// [`EncodeError`].
    pub fn request_data(
        &mut self,
        meter: &MeterAddress,
        rssi_dbm: Option<f32>,
        next_fragment: bool,
    ) -> Result<Request, EncodeError> {
        let mut s = self.next(meter, !next_fragment);
        s.frame_count_bit = !s.frame_count_bit;
        self.set_session(meter, s);
        let control = if s.frame_count_bit {
            ControlField::REQ_UD2_FCB
        } else {
            ControlField::REQ_UD2
        };
        if next_fragment {
            let repr = FrameRepr {
                link: Link::Wireless(DllRepr {
                    control,
                    address: self.address,
                }),
                ell: Some(EllRepr {
                    communication_control: CommunicationControl(PARTNER_COMMUNICATION_CONTROL),
                    access_number: s.ell_access_number,
                    address: Some(*meter),
                    session_number: None,
                }),
                transport: Transport::default(),
            };
            let mut out = vec![0u8; repr.buffer_len()];
            let n = repr
                .emit(&mut out)
                .map_err(|e| EncodeError(e.to_string()))?;
            out.truncate(n);
            return Ok(Request {
                bytes: out,
                expect: Expect::Answer {
                    access_number: None,
                    ell_access_number: Some(s.ell_access_number),
                },
                name: "REQ-UD2 (next fragment)",
            });
        }
        let desc = self.description(
            meter,
            control,
            0x80,
            &s,
            rssi_status(rssi_dbm),
            Security::None,
        );
        Self::answered(&desc, None, &[], &s, true, "REQ-UD2")
    }

    /// SND-UD with a command (CI 5Bh, long header; N.8.2 uses 6Ch for a clock command):
    /// `data` is the command's records; answered by an ACK.
    ///
    /// # Errors
    /// [`EncodeError`], e.g. no key for a secured command.
    pub fn command(
        &mut self,
        meter: &MeterAddress,
        ci: u8,
        data: &[u8],
        security: Security,
        key: Option<&Key>,
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        self.snd_ud(meter, ci, data, (security, key), rssi_dbm, true)
    }

    /// [`Self::command`] without the ELL (3 bytes less): for image blocks, whose frames
    /// must fit the dongle (`docs/software-update.md`). The answer is matched by its TPL
    /// access number alone.
    ///
    /// # Errors
    /// [`EncodeError`].
    pub fn command_without_ell(
        &mut self,
        meter: &MeterAddress,
        ci: u8,
        data: &[u8],
        security: Security,
        key: Option<&Key>,
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        self.snd_ud(meter, ci, data, (security, key), rssi_dbm, false)
    }

    fn snd_ud(
        &mut self,
        meter: &MeterAddress,
        ci: u8,
        data: &[u8],
        (security, key): (Security, Option<&Key>),
        rssi_dbm: Option<f32>,
        with_ell: bool,
    ) -> Result<Request, EncodeError> {
        let s = self.next(meter, true);
        let mut desc = self.description(
            meter,
            ControlField::SND_UD,
            ci,
            &s,
            rssi_status(rssi_dbm),
            security,
        );
        if !with_ell {
            desc.ell = None;
        }
        Self::answered(&desc, key, data, &s, with_ell, "SND-UD")
    }

    /// A SITP command (N.12.2): SND-UD2, CI C3h, mode 7 under the meter's master key with
    /// the partner's counter; `blocks` are the SITP blocks in clear. Answered by RSP-UD
    /// CI C4h.
    ///
    /// # Errors
    /// [`EncodeError`].
    pub fn sitp(
        &mut self,
        meter: &MeterAddress,
        master_key: &Key,
        blocks: &[u8],
        rssi_dbm: Option<f32>,
    ) -> Result<Request, EncodeError> {
        let s = self.next(meter, true);
        let desc = self.description(
            meter,
            ControlField::SND_UD2,
            0xC3,
            &s,
            rssi_status(rssi_dbm),
            Security::Mode7,
        );
        Self::answered(&desc, Some(master_key), blocks, &s, true, "SITP command")
    }

    /// The sessions as text: one line per meter, `MFR.ID ell=N tpl=N counter=N`.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# wmbus partner sessions: access numbers and counter C_GW\n");
        for ((m, id), s) in &self.sessions {
            let _ = writeln!(
                out,
                "{}.{} ell={} tpl={} counter={} fcb={}",
                ManufacturerCode(*m),
                Ident(*id),
                s.ell_access_number,
                s.tpl_access_number,
                s.counter,
                u8::from(s.frame_count_bit)
            );
            if out.ends_with('\n') {
                out.pop();
            }
            for ((_, _, key_id), c) in self.key_counters.range((*m, *id, 0)..=(*m, *id, 0xFF)) {
                let _ = write!(out, " kc{key_id:02X}={c}");
            }
            out.push('\n');
        }
        out
    }

    /// Reads [`Self::to_text`]'s lines; returns how many lines did not parse (skipped).
    pub fn load_text(&mut self, text: &str) -> usize {
        let mut bad = 0;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_session_line(line) {
                Some((key, s, counters)) => {
                    self.sessions.insert(key, s);
                    for (key_id, c) in counters {
                        self.key_counters.insert((key.0, key.1, key_id), c);
                    }
                }
                None => bad += 1,
            }
        }
        bad
    }
}

type SessionLine = ((u16, u32), Session, Vec<(u8, u32)>);

fn parse_session_line(line: &str) -> Option<SessionLine> {
    let mut words = line.split_whitespace();
    let (m, id) = words.next()?.split_once('.')?;
    let key = (ManufacturerCode::parse(m)?.0, Ident::parse(id)?.0);
    let mut s = Session::default();
    let mut counters = Vec::new();
    for w in words {
        let (k, v) = w.split_once('=')?;
        if let Some(id) = k.strip_prefix("kc") {
            counters.push((u8::from_str_radix(id, 16).ok()?, v.parse().ok()?));
            continue;
        }
        match k {
            "ell" => s.ell_access_number = v.parse().ok()?,
            "tpl" => s.tpl_access_number = v.parse().ok()?,
            "counter" => s.counter = v.parse().ok()?,
            "fcb" => s.frame_count_bit = v == "1",
            _ => return None,
        }
    }
    Some((key, s, counters))
}

/// A SITP block of end-to-end secured application data (BCF 20h, DSI 32h, PID 01h M-Bus
/// APDU, TargetTime immediate; N.12.2): `KeyCounter ‖ TargetTime ‖ PID ‖ APDU ‖ CMAC-8`
/// under the application key `key_id`/`key_version`.
///
/// # Errors
/// An APDU too long for a block.
pub fn secured_data_block(
    block_id: u8,
    key_id: u8,
    key_version: u8,
    key: &Key,
    key_counter: u32,
    apdu: &[u8],
) -> Result<Vec<u8>, wmbus_frame::Error> {
    secured_block(
        (block_id, DataInfo::CMAC8),
        (key_id, key_version, key),
        key_counter,
        wmbus_frame::sitp::TARGET_TIME_IMMEDIATE,
        0x01,
        apdu,
    )
}

/// A secured-data block (BCF 20h, DSI 32h CMAC-8 or 33h CMAC-16) with any TargetTime and
/// protocol (PID 06h: image transfer).
///
/// # Errors
/// An APDU too long for a block.
pub fn secured_block(
    (block_id, data_info): (u8, DataInfo),
    (key_id, key_version, key): (u8, u8, &Key),
    key_counter: u32,
    target_time: u64,
    protocol: u8,
    apdu: &[u8],
) -> Result<Vec<u8>, wmbus_frame::Error> {
    let ds = wmbus_security::sitp::secured_data(
        key,
        (key_counter, target_time, protocol),
        apdu,
        data_info.cmac_len().unwrap_or(8),
    );
    emit_blocks(&[Block {
        offset: 0,
        block_id,
        control: BlockControl::SECURED_DATA,
        recipient: 0,
        data_info,
        header1: key_id,
        header2: key_version,
        data: &ds,
    }])
}

/// The two blocks of a key rotation: transfer the new key (BCF 00h, DSI 01h, TargetTime
/// "do not activate"), then activate it and deactivate the old one at once (BCF 04h, DSI 03h,
/// option 01h: reset the counters), both KWP-wrapped with `wrapper` (DSH1 = its id and
/// version) or, without one, KWP-framed (DSH1 = FFh) inside the transport encryption.
///
/// # Errors
/// Blocks too long (not with these sizes).
pub fn key_rotation_blocks(
    key_id: u8,
    old_version: u8,
    new_version: u8,
    new_key: &Key,
    wrapper: Option<(u8, u8, &Key)>,
) -> Result<zeroize::Zeroizing<Vec<u8>>, wmbus_frame::Error> {
    use wmbus_frame::sitp::{TARGET_TIME_IMMEDIATE, TARGET_TIME_INVALID};
    use wmbus_security::sitp::{ActivateDeactivate, KeyTransfer, wrap};
    let transfer = KeyTransfer {
        key: new_key.clone(),
        target_time: TARGET_TIME_INVALID,
        key_id,
        key_version: new_version,
    };
    let activation = ActivateDeactivate {
        target_time: TARGET_TIME_IMMEDIATE,
        activate: (key_id, new_version),
        deactivate: (key_id, old_version),
        option: 0x01,
    };
    let (h1, h2, wk) = match wrapper {
        Some((id, version, k)) => (id, version, Some(k)),
        None => (0xFF, 0xFF, None),
    };
    let first = zeroize::Zeroizing::new(wrap(wk, &*transfer.content()));
    let second = wrap(wk, &activation.content());
    Ok(zeroize::Zeroizing::new(emit_blocks(&[
        Block {
            offset: 0,
            block_id: 1,
            control: BlockControl::TRANSFER,
            recipient: 0,
            data_info: DataInfo::KEY_KWP,
            header1: h1,
            header2: h2,
            data: &first,
        },
        Block {
            offset: 0,
            block_id: 2,
            control: BlockControl::ACTIVATE_DEACTIVATE,
            recipient: 0,
            data_info: DataInfo::ACTIVATE_DEACTIVATE_KWP,
            header1: h1,
            header2: h2,
            data: &second,
        },
    ])?))
}

/// The meter's key list (DSI 23h, addendum §5): `KeyID ‖ KeyVer ‖ KeyCounter(4 LE)` each.
pub fn key_counters(data: &[u8]) -> Vec<(u8, u8, u32)> {
    data.chunks_exact(6)
        .map(|c| match c {
            [id, version, a, b, d, e] => (*id, *version, u32::from_le_bytes([*a, *b, *d, *e])),
            _ => (0, 0, 0),
        })
        .collect()
}

/// The SITP request for the meter's active keys and counters (BCF 09h, DSI 00h, DSH FFh).
pub fn list_keys_block() -> Vec<u8> {
    // invariant: an empty block always fits.
    emit_blocks(&[Block {
        offset: 0,
        block_id: 0,
        control: BlockControl::LIST_ACTIVE_KEY_COUNTERS,
        recipient: 0,
        data_info: DataInfo::EMPTY,
        header1: 0xFF,
        header2: 0xFF,
        data: &[],
    }])
    .unwrap_or_default()
}

/// An answer opened: its C-field, CI, status and application data in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedAnswer {
    /// C-field.
    pub control: ControlField,
    /// TPL CI (0 without one).
    pub ci: u8,
    /// TPL status.
    pub status: u8,
    /// The security outcome.
    pub result: SecurityResult,
    /// Application data in clear (empty unless released).
    pub application: Vec<u8>,
    /// An AFL fragment with more to come.
    pub more_fragments: bool,
}

impl OpenedAnswer {
    /// The meter refused the message (application error, CI 6Eh).
    pub const fn refused(&self) -> bool {
        self.ci == 0x6E
    }
}

/// Opens an answer with the partner's receiver (replay checks on, no plaintext where a key
/// is configured).
pub fn open_answer(
    receiver: &mut Receiver<MemoryKeyStore>,
    now: Instant,
    bytes: &[u8],
) -> OpenedAnswer {
    let Ok(frame) = Frame::parse(bytes, FrameFormat::NoCrc) else {
        return OpenedAnswer {
            control: ControlField(0),
            ci: 0,
            status: 0,
            result: SecurityResult::Malformed,
            application: Vec::new(),
            more_fragments: false,
        };
    };
    let mut plain = Vec::new();
    let o = receiver.open(now, &frame, &mut plain);
    let tpl = o.tpl.or(frame.repr.transport.tpl);
    OpenedAnswer {
        control: frame.repr.link.control(),
        ci: tpl.map_or(0, |t| t.ci.0),
        status: tpl.and_then(|t| t.header).map_or(0, |h| h.status.0),
        result: o.result,
        application: plain.get(o.application).unwrap_or(&[]).to_vec(),
        more_fragments: frame.repr.transport.afl.is_some_and(|a| a.more_fragments),
    }
}

/// One SITP block of an answer, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerBlock {
    /// BID.
    pub block_id: u8,
    /// BCF (a response: command | 80h).
    pub control: BlockControl,
    /// DSI.
    pub data_info: DataInfo,
    /// DSH1, DSH2.
    pub headers: (u8, u8),
    /// DS.
    pub data: Vec<u8>,
}

/// The SITP blocks of an application layer: after `2F2F`, up to BL = 0 or the end; trailing
/// 2Fh fillers are idle bytes (as in records).
///
/// # Errors
/// The first malformed block, with its offset.
pub fn sitp_blocks(application: &[u8]) -> Result<Vec<AnswerBlock>, wmbus_frame::Error> {
    let body = application
        .strip_prefix(&[0x2F, 0x2F])
        .unwrap_or(application);
    let base = application.len() - body.len();
    let end = body.iter().rposition(|b| *b != 0x2F).map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for b in Blocks::new(body.get(..end).unwrap_or(&[]), base) {
        let b = b?;
        out.push(AnswerBlock {
            block_id: b.block_id,
            control: b.control,
            data_info: b.data_info,
            headers: (b.header1, b.header2),
            data: b.data.to_vec(),
        });
    }
    Ok(out)
}

/// Emits blocks one after another.
///
/// # Errors
/// A block too long for BL.
pub fn emit_blocks(blocks: &[Block<'_>]) -> Result<Vec<u8>, wmbus_frame::Error> {
    let mut out = vec![0u8; blocks.iter().map(Block::buffer_len).sum()];
    let mut at = 0;
    for b in blocks {
        at += b.emit(out.get_mut(at..).unwrap_or(&mut []))?;
    }
    out.truncate(at);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rssi_codes_of_annex_n() {
        assert_eq!(rssi_status(Some(-84.0)), 0x17);
        assert_eq!(rssi_status(Some(-80.0)), 0x19);
        assert_eq!(rssi_status(Some(-66.0)), 0x20);
        assert_eq!(rssi_status(None), 0);
        assert_eq!(rssi_status(Some(-200.0)), 1);
        assert_eq!(rssi_status(Some(f32::NAN)), 0);
    }

    #[test]
    fn sessions_survive_text() {
        let me = MeterAddress::from_link_bytes([0x3A, 0x63, 0x21, 0x43, 0x65, 0x87, 0x08, 0x31]);
        let meter = MeterAddress::from_link_bytes([0x3A, 0x63, 0x78, 0x56, 0x34, 0x12, 0x55, 0x20]);
        let mut p = Partner::new(me);
        p.set_session(
            &meter,
            Session {
                ell_access_number: 0x23,
                tpl_access_number: 0x51,
                counter: 2800,
                frame_count_bit: true,
            },
        );
        let mut q = Partner::new(me);
        assert_eq!(q.load_text(&p.to_text()), 0);
        assert_eq!(q.session(&meter), p.session(&meter));
        assert_eq!(q.load_text("XYZ.1 ell=x\n"), 1);
        p.set_key_counter(&meter, 0x20, 14);
        assert_eq!(p.next_key_counter(&meter, 0x20), 15);
        let mut r = Partner::new(me);
        r.load_text(&p.to_text());
        assert_eq!(r.key_counter(&meter, 0x20), 15);
        assert!(
            p.to_text()
                .contains("XYZ.12345678 ell=35 tpl=81 counter=2800 fcb=1 kc20=15")
        );
    }
}
