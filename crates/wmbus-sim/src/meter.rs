//! A simulated bidirectional meter (`[meters.talk]` in a meters file): it keeps its master
//! key, application keys with versions and KeyCounters, its own message counter C_M and the
//! last partner counter C_GW it accepted; it listens after each of its telegrams and answers
//! as OMS Annex N shows (N.3 fragments, N.7 installation, N.8 ACK, N.9 application error,
//! N.12 SITP). It never reads a clock: the caller passes the time and carries the frames.
//!
//! Choices where the public record is silent (docs/bidirectional.md):
//! - A partner message that fails authentication (AFL MAC, mode 5 check bytes, SITP data
//!   MAC), repeats an old counter (C_GW or KeyCounter) or carries plaintext where a key is
//!   needed is refused without detail: an unencrypted application error (CI 6Eh, STS 02h
//!   "any application error", code 00h) echoing the access numbers. Which check failed is
//!   only logged, never told to the sender.
//! - A repetition of the last request, byte for byte, gets the same answer again and is not
//!   executed a second time (a lost answer retried).
//! - Key changes apply after the answer is sent; the answer is sealed with the old key.

use std::collections::{BTreeMap, VecDeque};

use wmbus_frame::codepoints::{ControlField, MeterAddress};
use wmbus_frame::dll::FrameFormat;
use wmbus_frame::frame::Frame;
use wmbus_frame::sitp::{
    Block, BlockControl, DataInfo, SecuredData, TARGET_TIME_IMMEDIATE, TARGET_TIME_INVALID,
};
use wmbus_host::encode::{
    AddressDesc, AflDesc, CField, Description, EllDesc, EncodeError, FormatDesc, RecordDesc,
    encode_with,
};
use wmbus_host::partner::{AnswerBlock, emit_blocks, sitp_blocks};
use wmbus_security::exchange::same_meter;
use wmbus_security::key::{Key, MemoryKeyStore};
use wmbus_security::receiver::{Receiver, ReceiverOptions, SecurityResult};
use wmbus_security::replay::CounterKey;
use wmbus_security::sitp::{ActivateDeactivate, KeyTransfer, provisional, unwrap};
use wmbus_security::time::Instant;

use crate::firmware::Outcome;
use wmbus_frame::image::oms::{CI_COMMAND, CI_RESPONSE, Command, State};

/// SITP status codes this meter answers with (addendum §5).
pub mod status {
    /// Success.
    pub const SUCCESS: u8 = 0x00;
    /// Not executed because another block failed.
    pub const NOT_EXECUTED: u8 = 0x09;
    /// Unknown BCF.
    pub const UNKNOWN_BCF: u8 = 0x11;
    /// Unknown or invalid KeyID/KeyVersion (Annex N N.12.4).
    pub const UNKNOWN_KEY: u8 = 0x19;
    /// TargetTime not supported.
    pub const TARGET_TIME: u8 = 0x23;
}

/// `[meters.talk]`: a meter that listens after it sends.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TalkDesc {
    /// Seconds it listens after each telegram (2 by default).
    #[serde(default)]
    pub window: Option<f64>,
    /// Sends installation requests (SND-IR) until a CNF-IR confirms one.
    #[serde(default)]
    pub installation: bool,
    /// Version of the master key (the description's key).
    #[serde(default)]
    pub master_key_version: u8,
    /// Application keys (SITP): KeyID ≥ 10h.
    #[serde(default)]
    pub keys: Vec<KeyDesc>,
    /// What REQ-UD2 reads (the description's records by default).
    #[serde(default)]
    pub readout: Vec<RecordDesc>,
    /// Split answers longer than this many message bytes into AFL fragments.
    #[serde(default)]
    pub fragment: Option<usize>,
    /// Faults: this many answers are lost on air (not sent).
    #[serde(default)]
    pub lose_answers: u32,
    /// Takes software updates ([`crate::firmware`]); keys 18h (image MAC) and 23h (SITP
    /// for Prepare, Activate, Terminate) go in `keys`.
    #[serde(default)]
    pub firmware: Option<crate::firmware::FirmwareDesc>,
}

/// An application key of [`TalkDesc`].
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDesc {
    /// KeyID.
    pub id: u8,
    /// Version.
    #[serde(default)]
    pub version: u8,
    /// 32 hex digits.
    pub key: String,
    /// Last KeyCounter accepted.
    #[serde(default)]
    pub counter: u32,
}

#[derive(Debug, Clone)]
struct AppKey {
    version: u8,
    key: Key,
    counter: u32,
}

/// A key change to apply once the answer is out.
#[derive(Debug, Clone)]
struct Activation {
    key_id: u8,
    version: u8,
    key: Key,
    reset_counters: bool,
}

/// The simulated meter.
#[derive(Debug)]
pub struct Meter {
    desc: Description,
    address: MeterAddress,
    master: AppKey,
    keys: BTreeMap<u8, AppKey>,
    /// Transferred keys not active yet: (id, version).
    pending: BTreeMap<(u8, u8), Key>,
    installed: bool,
    access_number: u8,
    /// Last C_M used.
    counter: u32,
    receiver: Receiver<MemoryKeyStore>,
    last: Option<(Vec<u8>, Vec<Vec<u8>>)>,
    fragments: VecDeque<Vec<u8>>,
    lose_answers: u32,
    readout: Vec<RecordDesc>,
    fragment: Option<usize>,
    activation: Option<Activation>,
    /// Seconds it listens after a telegram.
    pub window: f64,
    /// Last remote-control value executed (01FD1Fxx: 00 disconnect, 01 connect).
    pub breaker: Option<u8>,
    log: Vec<String>,
    firmware: Option<crate::firmware::Target>,
    /// No power until then (ms).
    silent_until: u64,
    /// The image state last logged.
    logged_state: u8,
    /// Time of the frame being handled (ms).
    last_now: u64,
}

fn err<T>(what: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError(what.into()))
}

fn key_from(text: &str) -> Result<Key, EncodeError> {
    Key::from_hex(text).ok_or_else(|| EncodeError("key must be 32 hex digits".into()))
}

/// Where a partner frame is addressed: the long TPL header's meter, else an ELL III address.
fn addressee(frame: &Frame<'_>) -> Option<MeterAddress> {
    frame
        .repr
        .transport
        .tpl
        .and_then(|t| t.header)
        .and_then(|h| h.meter)
        .or_else(|| frame.repr.ell.and_then(|e| e.address))
}

impl Meter {
    /// A meter from its description (the telegram it sends, with its master key) and its
    /// `talk` settings. Its own counter continues from the description's AFL counter.
    ///
    /// # Errors
    /// A description that cannot talk (no key, not mode 7) or a bad key.
    pub fn new(description: &Description, talk: &TalkDesc) -> Result<Self, EncodeError> {
        let mut desc = description.clone();
        let Some(key_text) = desc.key.take() else {
            return err("a talking meter needs a key");
        };
        if desc.tpl.security_mode != 7 {
            return err("a talking meter uses security mode 7 (profile B)");
        }
        let master = AppKey {
            version: talk.master_key_version,
            key: key_from(&key_text)?,
            counter: 0,
        };
        let mut keys = BTreeMap::new();
        for k in &talk.keys {
            keys.insert(
                k.id,
                AppKey {
                    version: k.version,
                    key: key_from(&k.key)?,
                    counter: k.counter,
                },
            );
        }
        let address = desc.meter.to_address()?;
        let counter = desc
            .afl
            .as_ref()
            .and_then(|a| a.message_counter)
            .unwrap_or(1)
            .saturating_sub(1);
        let mut store = MemoryKeyStore::new();
        store.insert(
            Some(address.manufacturer),
            address.address.ident,
            None,
            master.key.clone(),
        );
        let receiver = Receiver::new(
            store,
            ReceiverOptions {
                accept_decrypted_by_receiver: false,
                ..ReceiverOptions::default()
            },
        );
        Ok(Self {
            readout: if talk.readout.is_empty() {
                desc.records.clone()
            } else {
                talk.readout.clone()
            },
            access_number: desc.tpl.access_number,
            desc,
            address,
            master,
            pending: BTreeMap::new(),
            installed: !talk.installation,
            counter,
            receiver,
            last: None,
            fragments: VecDeque::new(),
            lose_answers: talk.lose_answers,
            fragment: talk.fragment,
            activation: None,
            window: talk.window.unwrap_or(2.0),
            breaker: None,
            log: Vec::new(),
            firmware: talk.firmware.clone().map(|f| {
                crate::firmware::Target::new(
                    f,
                    keys.get(&wmbus_frame::image::oms::IMAGE_MAC_KEY_ID)
                        .map(|k| k.key.clone()),
                    u64::from(address.address.ident.0),
                )
            }),
            silent_until: 0,
            logged_state: State::IDLE.0,
            last_now: 0,
            keys,
        })
    }

    /// Without power (a fault) at `now_ms`: it neither sends nor hears.
    pub const fn silent(&self, now_ms: u64) -> bool {
        now_ms < self.silent_until
    }

    /// Keeps its receiver on: a software update is under way (after Prepare, until it is
    /// activated or terminated).
    pub fn keeps_listening(&mut self, now_ms: u64) -> bool {
        self.firmware
            .as_mut()
            .is_some_and(|f| (2..=11).contains(&f.state(now_ms).0))
    }

    /// The running firmware's version (software updates).
    pub fn firmware_version(&self) -> Option<u32> {
        self.firmware.as_ref().map(|f| f.version)
    }

    /// The meter's address.
    pub const fn address(&self) -> &MeterAddress {
        &self.address
    }

    /// Whether an installation request was confirmed (always, without `installation`).
    pub const fn installed(&self) -> bool {
        self.installed
    }

    /// Its own message counter, last used.
    pub const fn counter(&self) -> u32 {
        self.counter
    }

    /// The master key's version.
    pub const fn master_key_version(&self) -> u8 {
        self.master.version
    }

    /// What happened since the last call, one line each.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn note(&mut self, line: String) {
        self.log.push(line);
    }

    /// Sets the last partner counter accepted (a meter that has talked before).
    pub fn set_partner_counter(&mut self, counter: u32) {
        let k = self.partner_counter_key();
        self.receiver.replay_mut().accept(k, counter);
    }

    /// Sets the last KeyCounter accepted for an application key.
    pub fn set_key_counter(&mut self, key_id: u8, counter: u32) {
        if let Some(k) = self.keys.get_mut(&key_id) {
            k.counter = counter;
        }
    }

    /// Sets the last C_M used.
    pub fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    fn partner_counter_key(&self) -> CounterKey {
        CounterKey {
            manufacturer: self.address.manufacturer,
            ident: self.address.address.ident,
            key_id: 0,
            direction: wmbus_security::kdf::Direction::PartnerToMeter,
        }
    }

    /// The telegram it sends on its own: SND-IR until installed, then SND-NR. Its ELL says
    /// it is bidirectional and accessible (CC A4h as in N.12.1).
    ///
    /// # Errors
    /// The description does not encode.
    pub fn spontaneous(&mut self) -> Result<Vec<u8>, EncodeError> {
        self.access_number = self.access_number.wrapping_add(1);
        self.counter = self.counter.wrapping_add(1);
        let mut d = self.desc.clone();
        d.link.c_field = Some(CField::Number(if self.installed {
            ControlField::SND_NR.0
        } else {
            ControlField::SND_IR.0
        }));
        d.link.format = FormatDesc::None;
        d.ell = Some(EllDesc {
            communication_control: 0xA4,
            access_number: Some(self.access_number),
            ..EllDesc::default()
        });
        d.tpl.access_number = self.access_number;
        d.tpl.key_version = None;
        d.afl = Some(AflDesc {
            authentication_type: Some(5),
            message_counter: Some(self.counter),
            ..d.afl.unwrap_or_default()
        });
        Self::first(encode_with(&d, Some(&self.master.key), None)?.frames)
    }

    fn first(frames: Vec<Vec<u8>>) -> Result<Vec<u8>, EncodeError> {
        frames
            .into_iter()
            .next()
            .ok_or_else(|| EncodeError("nothing encoded".into()))
    }

    /// A frame heard from the radio (L-field first, no CRCs); returns the answers to send.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) -> Vec<Vec<u8>> {
        if self.silent(now.millis()) {
            return Vec::new();
        }
        self.last_now = now.millis();
        let Ok(frame) = Frame::parse(bytes, FrameFormat::NoCrc) else {
            return Vec::new();
        };
        if !addressee(&frame).is_some_and(|a| same_meter(&a, &self.address)) {
            return Vec::new();
        }
        let control = frame.repr.link.control();
        if let Some((last, answers)) = &self.last
            && last.as_slice() == bytes
        {
            let answers = answers.clone();
            self.note(format!(
                "{}: the last request again (C-field {:02X}h): same answer, not executed twice",
                self.name(),
                control.0
            ));
            return self.send(answers);
        }
        let answers = match control {
            ControlField::CNF_IR => {
                if !self.installed {
                    self.installed = true;
                    self.note(format!("{}: installation confirmed", self.name()));
                }
                Vec::new()
            }
            ControlField::SND_NKE => {
                self.fragments.clear();
                self.note(format!("{}: link reset", self.name()));
                self.ack(&frame, 0x00)
            }
            ControlField::REQ_UD2 | ControlField::REQ_UD2_FCB => self.readout(&frame),
            ControlField::SND_UD | ControlField::SND_UD_FCB => self.command(now, &frame),
            ControlField::SND_UD2 => self.sitp(now, &frame),
            _ => Vec::new(),
        };
        self.last = Some((bytes.to_vec(), answers.clone()));
        let out = self.send(answers);
        if let Some(a) = self.activation.take() {
            self.activate(a);
        }
        self.log_image_state(now.millis());
        if let Some(f) = self.firmware.as_mut()
            && f.power_loss_due()
        {
            self.silent_until = now.millis() + f.power_loss_ms();
            self.note(format!(
                "{}: power lost (fault) for {} ms; the block store is kept",
                self.name(),
                self.silent_until - now.millis()
            ));
            return Vec::new();
        }
        out
    }

    fn log_image_state(&mut self, now_ms: u64) {
        let Some(f) = self.firmware.as_mut() else {
            return;
        };
        let state = f.state(now_ms);
        if state.0 == self.logged_state {
            return;
        }
        self.logged_state = state.0;
        let version = f.version;
        let missing = f.missing().len();
        let line = match state {
            State::TRANSFER_INITIATED => format!("image prepared, {missing} blocks to come"),
            State::TRANSFER_SUCCESSFUL => "image complete".to_string(),
            State::VALIDATION_SUCCESSFUL => "image valid (MAC matches)".to_string(),
            State::VALIDATION_FAILED => "image refused at validation: MAC mismatch".to_string(),
            State::ACTIVATION_SUCCESSFUL => format!("image activated, firmware version {version}"),
            State::TERMINATED => "image transfer terminated".to_string(),
            s => format!("image state {}", s.name()),
        };
        self.note(format!("{}: {line}", self.name()));
    }

    fn name(&self) -> String {
        format!(
            "meter {}.{}",
            self.address.manufacturer, self.address.address.ident
        )
    }

    /// Drops answers "lost on air" while the fault lasts.
    fn send(&mut self, answers: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if !answers.is_empty() && self.lose_answers > 0 {
            self.lose_answers -= 1;
            self.note(format!("{}: answer lost on air (fault)", self.name()));
            return Vec::new();
        }
        answers
    }

    fn access_numbers(frame: &Frame<'_>) -> (u8, u8) {
        let tpl = frame
            .repr
            .transport
            .tpl
            .and_then(|t| t.header)
            .map(|h| h.access_number);
        let ell = frame.repr.ell.map(|e| e.access_number);
        (ell.or(tpl).unwrap_or(0), tpl.or(ell).unwrap_or(0))
    }

    /// An answer description: RSP-UD or ACK from the meter, ELL I echoing the partner's ELL
    /// access number, short TPL header echoing its TPL access number.
    fn answer(
        &self,
        frame: &Frame<'_>,
        control: ControlField,
        ci: u8,
        communication_control: u8,
        status: u8,
    ) -> Description {
        let (ell, tpl) = Self::access_numbers(frame);
        let mut d = self.desc.clone();
        d.link.c_field = Some(CField::Number(control.0));
        d.link.format = FormatDesc::None;
        d.link.address = None;
        d.ell = Some(EllDesc {
            communication_control,
            access_number: Some(ell),
            ..EllDesc::default()
        });
        d.tpl.ci = Some(ci);
        d.tpl.header = wmbus_host::encode::HeaderDesc::Short;
        d.tpl.access_number = tpl;
        d.tpl.status = status;
        d.tpl.counter = None;
        d.tpl.key_version = None;
        d.afl = None;
        d.records = Vec::new();
        d
    }

    fn sealed(&mut self, mut d: Description, application: &[u8]) -> Vec<Vec<u8>> {
        self.counter = self.counter.wrapping_add(1);
        d.tpl.security_mode = 7;
        d.tpl.padding = !(application.len() + 2).is_multiple_of(16);
        d.afl = Some(AflDesc {
            authentication_type: Some(5),
            message_counter: Some(self.counter),
            ..AflDesc::default()
        });
        match encode_with(&d, Some(&self.master.key), Some(application)) {
            Ok(e) => e.frames,
            Err(e) => {
                self.note(format!("{}: cannot build the answer: {e}", self.name()));
                Vec::new()
            }
        }
    }

    fn plain(&mut self, mut d: Description, application: &[u8]) -> Vec<Vec<u8>> {
        d.tpl.security_mode = 0;
        match encode_with(&d, None, Some(application)) {
            Ok(e) => e.frames,
            Err(e) => {
                self.note(format!("{}: cannot build the answer: {e}", self.name()));
                Vec::new()
            }
        }
    }

    fn ack(&mut self, frame: &Frame<'_>, status: u8) -> Vec<Vec<u8>> {
        let d = self.answer(frame, ControlField::ACK, 0x8A, 0x80, status);
        self.plain(d, &[])
    }

    /// The refusal without detail (module docs).
    fn refuse(&mut self, frame: &Frame<'_>, why: &str) -> Vec<Vec<u8>> {
        self.note(format!("{}: refused: {why}", self.name()));
        let d = self.answer(frame, ControlField::RSP_UD, 0x6E, 0x80, 0x02);
        self.plain(d, &[0x00])
    }

    fn readout(&mut self, frame: &Frame<'_>) -> Vec<Vec<u8>> {
        let (ell, _) = Self::access_numbers(frame);
        if frame.repr.transport.tpl.is_none() {
            // The next fragment of the answer being read (N.3.4).
            let Some(mut f) = self.fragments.pop_front() else {
                return self.refuse(frame, "no fragment left to read");
            };
            // ELL ACC at L, C, M(2), A(6), CI, CC: outside the AFL MAC (N.3).
            if let Some(b) = f.get_mut(12) {
                *b = ell;
            }
            self.note(format!("{}: fragment read", self.name()));
            return vec![f];
        }
        let mut d = self.answer(frame, ControlField::RSP_UD, 0x7A, 0x80, 0x00);
        d.records = self.readout.clone();
        let mut application = Vec::new();
        for r in &self.readout {
            match wmbus_host::encode::encode_record(r) {
                Ok(b) => application.extend(b),
                Err(e) => {
                    self.note(format!("{}: readout record: {e}", self.name()));
                    return Vec::new();
                }
            }
        }
        let Some(size) = self.fragment.filter(|s| application.len() + 2 > *s) else {
            self.note(format!("{}: data read", self.name()));
            return self.sealed(d, &application);
        };
        // Fragments (N.3): ELL III with the partner's address.
        d.ell = Some(EllDesc {
            communication_control: 0x80,
            access_number: Some(ell),
            address: Some(AddressDesc::from_address(
                &frame.repr.link.address().unwrap_or(self.address),
            )),
            ..EllDesc::default()
        });
        self.counter = self.counter.wrapping_add(1);
        d.tpl.security_mode = 7;
        d.afl = Some(AflDesc {
            authentication_type: Some(5),
            message_counter: Some(self.counter),
            message_length: true,
            fragments: vec![size],
            ..AflDesc::default()
        });
        let frames = match encode_with(&d, Some(&self.master.key), Some(&application)) {
            Ok(e) => e.frames,
            Err(e) => {
                self.note(format!("{}: cannot build the answer: {e}", self.name()));
                return Vec::new();
            }
        };
        let mut frames: VecDeque<Vec<u8>> = frames.into();
        let first = frames.pop_front();
        self.note(format!(
            "{}: data read, {} more fragment(s) waiting",
            self.name(),
            frames.len()
        ));
        self.fragments = frames;
        first.into_iter().collect()
    }

    /// Opens a secured partner message; `None` (after refusing) when it does not pass.
    fn open(&mut self, now: Instant, frame: &Frame<'_>) -> Result<Vec<u8>, String> {
        let mut plain = Vec::new();
        let o = self.receiver.open(now, frame, &mut plain);
        match o.result {
            SecurityResult::Authenticated | SecurityResult::Decrypted => {}
            SecurityResult::Replayed { counter, last } => {
                return Err(format!(
                    "partner counter {counter} not above the last accepted {last} (replay)"
                ));
            }
            SecurityResult::MacMismatch => return Err("AFL MAC does not verify".into()),
            SecurityResult::CheckBytesMismatch => {
                return Err("does not decrypt (check bytes)".into());
            }
            other => return Err(format!("not accepted: {other:?}")),
        }
        Ok(plain.get(o.application).unwrap_or(&[]).to_vec())
    }

    /// SND-UD with a command: executes remote control `01FD1Fxx` records, answers ACK.
    fn command(&mut self, now: Instant, frame: &Frame<'_>) -> Vec<Vec<u8>> {
        let application = match self.open(now, frame) {
            Ok(a) => a,
            Err(why) => return self.refuse(frame, &why),
        };
        let body = application
            .strip_prefix(&[0x2F, 0x2F])
            .unwrap_or(&application);
        if frame
            .repr
            .transport
            .tpl
            .is_some_and(|t| t.ci.0 == CI_COMMAND)
        {
            return self.image_command(now, frame, body);
        }
        self.execute(body);
        self.ack(frame, 0x00)
    }

    /// An image-transfer command in SND-UD (CI C0h): answered by an ACK carrying the
    /// response (CI C1h, mode 7).
    fn image_command(&mut self, now: Instant, frame: &Frame<'_>, body: &[u8]) -> Vec<Vec<u8>> {
        let outcome = match (Command::parse(body, 0), self.firmware.as_mut()) {
            (Ok(c), Some(f)) => f.handle(now.millis(), &c, false),
            (Err(e), Some(_)) => return self.refuse(frame, &format!("image command: {e}")),
            (_, None) => return self.refuse(frame, "no software update here"),
        };
        match outcome {
            Outcome::Respond(r) => {
                let d = self.answer(frame, ControlField::ACK, CI_RESPONSE, 0x80, 0x00);
                self.sealed(d, &r)
            }
            Outcome::Lost => {
                self.note(format!("{}: block lost on air (fault)", self.name()));
                Vec::new()
            }
            Outcome::Refuse(code) => self.application_error(frame, code),
        }
    }

    /// An unencrypted application error with this code (10h: invalid in the state).
    fn application_error(&mut self, frame: &Frame<'_>, code: u8) -> Vec<Vec<u8>> {
        self.note(format!("{}: application error {code:02X}h", self.name()));
        let d = self.answer(frame, ControlField::RSP_UD, 0x6E, 0x80, 0x02);
        self.plain(d, &[code])
    }

    fn execute(&mut self, apdu: &[u8]) {
        if let [0x01, 0xFD, 0x1F, value, ..] = apdu {
            self.breaker = Some(*value);
            let what = if *value == 0 {
                "disconnected"
            } else {
                "connected"
            };
            self.note(format!("{}: breaker {what}", self.name()));
        } else {
            let hex: String = apdu.iter().map(|b| format!("{b:02X}")).collect();
            self.note(format!("{}: command {hex} executed", self.name()));
        }
    }

    /// SND-UD2 with SITP blocks (CI C3h): mode 7 with AFL MAC required.
    fn sitp(&mut self, now: Instant, frame: &Frame<'_>) -> Vec<Vec<u8>> {
        let secured = frame
            .repr
            .transport
            .tpl
            .and_then(|t| t.header)
            .is_some_and(|h| h.config.mode().0 == 7)
            && frame.repr.transport.afl.is_some_and(|a| a.mac.is_some());
        if !secured {
            return self.refuse(frame, "SITP command without mode 7 and AFL MAC");
        }
        let application = match self.open(now, frame) {
            Ok(a) => a,
            Err(why) => return self.refuse(frame, &why),
        };
        let blocks = match sitp_blocks(&application) {
            Ok(b) => b,
            Err(e) => return self.refuse(frame, &format!("malformed SITP: {e}")),
        };
        let mut answers: Vec<AnswerBlock> = Vec::new();
        let mut failed = false;
        for b in &blocks {
            let (data_info, data) = if failed {
                (DataInfo::STATUS, vec![status::NOT_EXECUTED])
            } else {
                match self.block(b) {
                    Ok(Some(answer)) => answer,
                    Ok(None) => (DataInfo::STATUS, vec![status::SUCCESS]),
                    Err(Refusal::Status(code)) => {
                        failed = true;
                        (DataInfo::STATUS, vec![code])
                    }
                    Err(Refusal::Silent(why)) => return self.refuse(frame, &why),
                }
            };
            answers.push(AnswerBlock {
                block_id: b.block_id,
                control: b.control.response(),
                data_info,
                headers: b.headers,
                data,
            });
        }
        if failed {
            self.activation = None;
        }
        let list: Vec<Block<'_>> = answers
            .iter()
            .map(|a| Block {
                offset: 0,
                block_id: a.block_id,
                control: a.control,
                recipient: 0,
                data_info: a.data_info,
                header1: a.headers.0,
                header2: a.headers.1,
                data: &a.data,
            })
            .collect();
        let Ok(apl) = emit_blocks(&list) else {
            return self.refuse(frame, "answer too long");
        };
        let d = self.answer(
            frame,
            ControlField::RSP_UD,
            0xC4,
            0x84,
            if failed { 0x02 } else { 0x00 },
        );
        self.sealed(d, &apl)
    }

    fn block(&mut self, b: &AnswerBlock) -> Result<Option<(DataInfo, Vec<u8>)>, Refusal> {
        let wrapper = |me: &Self| -> Result<Option<Key>, Refusal> {
            match b.headers.0 {
                0xFF => Ok(None),
                id => me
                    .keys
                    .get(&id)
                    .map(|k| Some(k.key.clone()))
                    .ok_or(Refusal::Status(status::UNKNOWN_KEY)),
            }
        };
        match b.control {
            BlockControl::SECURED_DATA => {
                let aead = provisional::tag_len(b.data_info).is_some();
                if b.data_info.cmac_len().is_none() && !aead {
                    return Err(Refusal::Status(status::UNKNOWN_BCF));
                }
                let (id, version) = b.headers;
                let Some(app) = self
                    .keys
                    .get(&id)
                    .filter(|k| version == 0xFF || k.version == version)
                    .cloned()
                else {
                    return Err(Refusal::Status(status::UNKNOWN_KEY));
                };
                let block = Block {
                    offset: 0,
                    block_id: b.block_id,
                    control: b.control,
                    recipient: 0,
                    data_info: b.data_info,
                    header1: id,
                    header2: version,
                    data: &b.data,
                };
                // Checked before anything in it is used: CMAC (32h/33h) or the provisional
                // GCM/GMAC/CCM variants (34h–37h).
                let (key_counter, target_time, protocol, apdu) = if aead {
                    let o = provisional::open(b.data_info, &app.key, &self.address, &b.data)
                        .map_err(|_| Refusal::Silent("secured data tag does not verify".into()))?;
                    (o.key_counter, o.target_time, o.protocol, o.apdu.to_vec())
                } else {
                    let data = SecuredData::parse(&block)
                        .map_err(|e| Refusal::Silent(format!("secured data: {e}")))?;
                    if Some(data.mac.len()) != b.data_info.cmac_len() {
                        return Err(Refusal::Silent("secured data MAC length".into()));
                    }
                    wmbus_security::sitp::verify(&app.key, &data)
                        .map_err(|_| Refusal::Silent("secured data MAC does not verify".into()))?;
                    (
                        data.key_counter,
                        data.target_time,
                        data.protocol,
                        data.apdu.to_vec(),
                    )
                };
                if key_counter <= app.counter {
                    return Err(Refusal::Silent(format!(
                        "KeyCounter {key_counter} not above the last accepted {} (replay)",
                        app.counter
                    )));
                }
                let image = protocol == wmbus_frame::image::oms::SITP_PROTOCOL;
                if image && aead {
                    return Err(Refusal::Status(status::UNKNOWN_BCF));
                }
                if target_time != TARGET_TIME_IMMEDIATE
                    && !(image && target_time == TARGET_TIME_INVALID)
                {
                    return Err(Refusal::Status(status::TARGET_TIME));
                }
                if let Some(k) = self.keys.get_mut(&id) {
                    k.counter = key_counter;
                }
                if image {
                    let data = SecuredData::parse(&block)
                        .map_err(|e| Refusal::Silent(format!("secured data: {e}")))?;
                    return self.secured_image_command(b, &app.key, &data);
                }
                self.execute(&apdu);
                // The answer echoes the secured data (N.12.3).
                Ok(Some((b.data_info, b.data.clone())))
            }
            BlockControl::TRANSFER if b.data_info == DataInfo::KEY_KWP => {
                let wk = wrapper(self)?;
                let content = unwrap(wk.as_ref(), &b.data)
                    .map_err(|e| Refusal::Silent(format!("key transfer: {e}")))?;
                let t = KeyTransfer::parse(&content)
                    .map_err(|e| Refusal::Silent(format!("key transfer: {e}")))?;
                let current = if t.key_id == 0 {
                    Some(self.master.version)
                } else {
                    self.keys.get(&t.key_id).map(|k| k.version)
                };
                let version = if t.key_version == 0xFF {
                    current.map_or(0, |v| v.wrapping_add(1))
                } else {
                    t.key_version
                };
                if current == Some(version) {
                    return Err(Refusal::Status(status::UNKNOWN_KEY));
                }
                self.note(format!(
                    "{}: key {:02X}h version {version} received",
                    self.name(),
                    t.key_id
                ));
                self.pending.insert((t.key_id, version), t.key.clone());
                if t.target_time == TARGET_TIME_IMMEDIATE {
                    self.activation = Some(Activation {
                        key_id: t.key_id,
                        version,
                        key: t.key,
                        reset_counters: false,
                    });
                } else if t.target_time != TARGET_TIME_INVALID {
                    return Err(Refusal::Status(status::TARGET_TIME));
                }
                Ok(None)
            }
            BlockControl::ACTIVATE_DEACTIVATE
                if b.data_info == DataInfo::ACTIVATE_DEACTIVATE_KWP =>
            {
                let wk = wrapper(self)?;
                let content = unwrap(wk.as_ref(), &b.data)
                    .map_err(|e| Refusal::Silent(format!("activation: {e}")))?;
                let a = ActivateDeactivate::parse(&content)
                    .map_err(|e| Refusal::Silent(format!("activation: {e}")))?;
                if a.target_time != TARGET_TIME_IMMEDIATE {
                    return Err(Refusal::Status(status::TARGET_TIME));
                }
                let Some(key) = self.pending.get(&a.activate).cloned() else {
                    return Err(Refusal::Status(status::UNKNOWN_KEY));
                };
                let current = if a.deactivate.0 == 0 {
                    Some(self.master.version)
                } else {
                    self.keys.get(&a.deactivate.0).map(|k| k.version)
                };
                if a.deactivate.0 != a.activate.0
                    || (a.deactivate.1 != 0xFF && current != Some(a.deactivate.1))
                {
                    return Err(Refusal::Status(status::UNKNOWN_KEY));
                }
                self.activation = Some(Activation {
                    key_id: a.activate.0,
                    version: a.activate.1,
                    key,
                    reset_counters: a.option == 1,
                });
                Ok(None)
            }
            BlockControl::LIST_ACTIVE_KEY_COUNTERS => {
                let mut data = vec![0x00, self.master.version];
                data.extend(self.counter.to_le_bytes());
                for (id, k) in &self.keys {
                    data.extend([*id, k.version]);
                    data.extend(k.counter.to_le_bytes());
                }
                Ok(Some((DataInfo::KEY_COUNTERS, data)))
            }
            BlockControl::LIST_ACTIVE_KEYS => {
                let mut data = vec![0x00, self.master.version];
                for (id, k) in &self.keys {
                    data.extend([*id, k.version]);
                }
                Ok(Some((DataInfo::ACTIVE_KEYS, data)))
            }
            // Get security information on one key (DSH = KeyID/KeyVer): its status.
            BlockControl::GET_INFORMATION if b.data_info == DataInfo::EMPTY => {
                let (id, version) = b.headers;
                let known = if id == 0 {
                    version == 0xFF || version == self.master.version
                } else {
                    self.keys
                        .get(&id)
                        .is_some_and(|k| version == 0xFF || k.version == version)
                };
                if known {
                    Ok(None)
                } else {
                    Err(Refusal::Status(status::UNKNOWN_KEY))
                }
            }
            _ => Err(Refusal::Status(status::UNKNOWN_BCF)),
        }
    }

    /// Prepare, Activate or Terminate in SITP secured data (PID 06h): the answer block
    /// carries the response the same way, `KeyCounter ‖ TargetTime ‖ PID ‖ response ‖
    /// CMAC-8` under the same key (provisional: Annex N shows only PID 01h, echoed).
    fn secured_image_command(
        &mut self,
        b: &AnswerBlock,
        key: &Key,
        data: &SecuredData<'_>,
    ) -> Result<Option<(DataInfo, Vec<u8>)>, Refusal> {
        let now = self.last_now;
        let command = Command::parse(data.apdu, 0)
            .map_err(|e| Refusal::Silent(format!("image command: {e}")))?;
        let outcome = match self.firmware.as_mut() {
            Some(f) => f.handle(now, &command, true),
            None => return Err(Refusal::Status(status::UNKNOWN_BCF)),
        };
        let response = match outcome {
            Outcome::Respond(r) => r,
            Outcome::Lost | Outcome::Refuse(_) => {
                return Err(Refusal::Silent(format!(
                    "image {} not allowed now",
                    command.function().name()
                )));
            }
        };
        let ds = wmbus_security::sitp::secured_data(
            key,
            (data.key_counter, data.target_time, data.protocol),
            &response,
            8,
        );
        Ok(Some((b.data_info, ds)))
    }

    fn activate(&mut self, a: Activation) {
        self.pending.remove(&(a.key_id, a.version));
        if a.key_id == 0 {
            self.master = AppKey {
                version: a.version,
                key: a.key.clone(),
                counter: 0,
            };
            let mut store = MemoryKeyStore::new();
            store.insert(
                Some(self.address.manufacturer),
                self.address.address.ident,
                None,
                a.key,
            );
            *self.receiver.keys_mut() = store;
            if a.reset_counters {
                self.counter = 0;
                let k = self.partner_counter_key();
                self.receiver.replay_mut().reset(&k);
            }
        } else {
            let counter = match self.keys.get(&a.key_id) {
                Some(k) if !a.reset_counters => k.counter,
                _ => 0,
            };
            self.keys.insert(
                a.key_id,
                AppKey {
                    version: a.version,
                    key: a.key,
                    counter,
                },
            );
        }
        self.last = None;
        self.note(format!(
            "{}: key {:02X}h version {} active{}",
            self.name(),
            a.key_id,
            a.version,
            if a.reset_counters {
                ", counters reset"
            } else {
                ""
            }
        ));
    }
}

/// Why a block is not executed.
enum Refusal {
    /// Answer with this status block.
    Status(u8),
    /// Refuse the whole message without detail.
    Silent(String),
}
