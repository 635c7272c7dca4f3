//! Requests to bidirectional meters from the gateway (docs/bidirectional.md): a queue per
//! meter, run through [`wmbus_security::exchange`] when the meter opens a window on one of
//! the dongles. Synchronous and clock-free like the rest of the core: the async loop passes
//! frames, ticks and times, and writes what comes back to the dongle that heard the meter.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use serde_json::{Value, json};
use tracing::{info, warn};
use wmbus_dongle::Received;
use wmbus_frame::codepoints::{ControlField, MeterAddress};
use wmbus_frame::dll::FrameFormat;
use wmbus_frame::frame::Frame;
use wmbus_frame::sitp::{DataInfo, status_name};
use wmbus_host::keyfile::{self, KeyEntry};
use wmbus_host::partner::{
    AnswerBlock, Partner, Request, list_keys_block, open_answer, secured_data_block, sitp_blocks,
};
use wmbus_security::exchange::{Action, Exchange, Handled, Policy};
use wmbus_security::key::MemoryKeyStore;
use wmbus_security::receiver::{Receiver, ReceiverOptions, SecurityResult};
use wmbus_security::time::Instant;

/// What to ask a meter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// REQ-UD2, every fragment; the answer is decoded and reported like any telegram.
    Read,
    /// SND-NKE.
    Reset,
    /// SITP secured data with an application key.
    Command {
        /// The M-Bus APDU, hex.
        apdu: String,
        /// Application key ID, hex (20 by default).
        #[serde(default = "default_key_id")]
        key_id: String,
    },
}

fn default_key_id() -> String {
    "20".into()
}

impl Job {
    const fn name(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Reset => "reset",
            Self::Command { .. } => "command",
        }
    }
}

/// A request from the configuration: `{ meter = "XYZ.12345678", action = "read" }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ConfiguredRequest {
    /// MFR.ID.
    pub meter: String,
    /// What to do.
    #[serde(flatten)]
    pub job: Job,
}

/// Bytes to send through a dongle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The dongle that heard the meter.
    pub dongle: String,
    /// L-field first, no CRCs.
    pub bytes: Vec<u8>,
}

/// A finished request.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// `MFR_ID`, as in MQTT topics.
    pub object: String,
    /// The account, JSON.
    pub result: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    KeyList,
    Main,
    Fragment(u32),
}

#[derive(Debug)]
struct Active {
    job: Job,
    step: Step,
    exchange: Exchange,
    dongle: String,
    tries: u32,
}

#[derive(Debug, Default)]
struct MeterTalk {
    queue: VecDeque<Job>,
    active: Option<Active>,
}

/// The gateway's partner side.
#[derive(Debug)]
pub struct Talk {
    partner: Partner,
    keys: Vec<KeyEntry>,
    receiver: Receiver<MemoryKeyStore>,
    meters: BTreeMap<(u16, u32), MeterTalk>,
    policy: Policy,
    state: Option<PathBuf>,
}

fn object(m: &MeterAddress) -> String {
    format!("{}_{}", m.manufacturer, m.address.ident)
}

impl Talk {
    /// A partner with link address `gateway`, its keys, and its state file.
    pub fn new(
        gateway: MeterAddress,
        keys: Vec<KeyEntry>,
        policy: Policy,
        state: Option<PathBuf>,
    ) -> Self {
        let mut partner = Partner::new(gateway);
        if let Some(text) = state.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
            let bad = partner.load_text(&text);
            if bad > 0 {
                warn!(skipped = bad, "partner state lines skipped");
            }
        }
        let mut store = MemoryKeyStore::new();
        keyfile::load_into(&mut store, keys.clone());
        let receiver = Receiver::new(
            store,
            ReceiverOptions {
                accept_decrypted_by_receiver: false,
                ..ReceiverOptions::default()
            },
        );
        Self {
            partner,
            keys,
            receiver,
            meters: BTreeMap::new(),
            policy,
            state,
        }
    }

    /// Queues a job for `meter` (`MFR.ID` or `MFR_ID`).
    ///
    /// # Errors
    /// A meter that does not parse.
    pub fn submit(&mut self, meter: &str, job: Job) -> Result<(), String> {
        let address = wmbus_host::partner::parse_address(meter)
            .ok_or_else(|| format!("meter {meter:?}: give MFR.ID"))?;
        info!(meter, job = job.name(), "request queued");
        self.meters
            .entry((address.manufacturer.0, address.address.ident.0))
            .or_default()
            .queue
            .push_back(job);
        Ok(())
    }

    fn save(&self) {
        if let Some(p) = &self.state
            && let Err(e) = std::fs::write(p, self.partner.to_text())
        {
            warn!("cannot save partner state to {}: {e}", p.display());
        }
    }

    /// A frame one of the dongles received.
    pub fn on_frame(
        &mut self,
        now: Instant,
        dongle: &str,
        received: &Received,
    ) -> (Vec<Transmit>, Vec<Finished>) {
        let mut out = (Vec::new(), Vec::new());
        // Nothing asked of any meter: not even a parse on the per-telegram path.
        if self.meters.is_empty() {
            return out;
        }
        let Ok(frame) = Frame::parse(&received.telegram, FrameFormat::NoCrc) else {
            return out;
        };
        let Some(meter) = frame.meter() else {
            return out;
        };
        let key = (meter.manufacturer.0, meter.address.ident.0);
        let Some(mut talk) = self.meters.remove(&key) else {
            return out;
        };
        if talk.active.is_none()
            && let Some(job) = talk.queue.pop_front()
        {
            match self.first_request(&meter, &job, received.rssi_dbm) {
                Ok((step, request)) => {
                    let mut exchange = Exchange::new(meter, self.policy);
                    exchange.request(now, request.bytes, request.expect);
                    talk.active = Some(Active {
                        job,
                        step,
                        exchange,
                        dongle: dongle.to_string(),
                        tries: 0,
                    });
                }
                Err(why) => out.1.push(Finished {
                    object: object(&meter),
                    result: json!({"request": job.name(), "outcome": "failed", "error": why}),
                }),
            }
        }
        if let Some(mut active) = talk.active.take() {
            active.dongle = dongle.to_string();
            match active.exchange.handle(now, &frame) {
                Handled::Answer(bytes) => {
                    match self.answered(now, &meter, active, &bytes, received.rssi_dbm) {
                        Ok(next) => talk.active = next,
                        Err(done) => out.1.push(done),
                    }
                }
                Handled::Window | Handled::Ignored => talk.active = Some(active),
            }
        }
        self.meters.insert(key, talk);
        let (t, f) = self.on_tick(now);
        out.0.extend(t);
        out.1.extend(f);
        out
    }

    /// Timeouts and transmissions due.
    pub fn on_tick(&mut self, now: Instant) -> (Vec<Transmit>, Vec<Finished>) {
        let mut transmits = Vec::new();
        let mut finished = Vec::new();
        for talk in self.meters.values_mut() {
            let Some(active) = talk.active.as_mut() else {
                continue;
            };
            match active.exchange.poll(now) {
                Action::Transmit(bytes) => {
                    active.tries += 1;
                    transmits.push(Transmit {
                        dongle: active.dongle.clone(),
                        bytes,
                    });
                }
                Action::Failed(f) => {
                    finished.push(Finished {
                        object: object(active.exchange.meter()),
                        result: json!({
                            "request": active.job.name(),
                            "outcome": "no_answer",
                            "error": f.to_string(),
                        }),
                    });
                    talk.active = None;
                }
                Action::Wait(_) | Action::Idle | Action::Sent => {}
            }
        }
        self.meters
            .retain(|_, t| t.active.is_some() || !t.queue.is_empty());
        (transmits, finished)
    }

    fn first_request(
        &mut self,
        meter: &MeterAddress,
        job: &Job,
        rssi: Option<f32>,
    ) -> Result<(Step, Request), String> {
        let r = match job {
            Job::Read => (Step::Main, self.partner.request_data(meter, rssi, false)),
            Job::Reset => (Step::Main, self.partner.reset_link(meter, rssi)),
            Job::Command { key_id, .. } => {
                let id = u8::from_str_radix(key_id, 16).map_err(|_| "key_id: hex 00-FF")?;
                if self.partner.key_counter(meter, id) == 0 {
                    let (mk, _) = keyfile::find_key(&self.keys, meter, None)
                        .ok_or("no master key for this meter")?;
                    (
                        Step::KeyList,
                        self.partner.sitp(meter, &mk, &list_keys_block(), rssi),
                    )
                } else {
                    return self.command(meter, job, rssi).map(|r| (Step::Main, r));
                }
            }
        };
        self.save();
        Ok((r.0, r.1.map_err(|e| e.to_string())?))
    }

    fn command(
        &mut self,
        meter: &MeterAddress,
        job: &Job,
        rssi: Option<f32>,
    ) -> Result<Request, String> {
        let Job::Command { apdu, key_id } = job else {
            return Err("not a command".into());
        };
        let id = u8::from_str_radix(key_id, 16).map_err(|_| "key_id: hex 00-FF")?;
        let apdu = hex::decode(apdu).map_err(|_| "apdu: not hex")?;
        let (mk, _) =
            keyfile::find_key(&self.keys, meter, None).ok_or("no master key for this meter")?;
        let (app, version) = keyfile::find_key(&self.keys, meter, Some(id))
            .ok_or_else(|| format!("no key id={id:02X} for this meter"))?;
        let counter = self.partner.next_key_counter(meter, id);
        let block =
            secured_data_block(0, id, version, &app, counter, &apdu).map_err(|e| e.to_string())?;
        let r = self
            .partner
            .sitp(meter, &mk, &block, rssi)
            .map_err(|e| e.to_string())?;
        self.save();
        Ok(r)
    }

    /// The answer to the active step: the next step, or the finished account.
    fn answered(
        &mut self,
        now: Instant,
        meter: &MeterAddress,
        mut active: Active,
        bytes: &[u8],
        rssi: Option<f32>,
    ) -> Result<Option<Active>, Finished> {
        let o = open_answer(&mut self.receiver, now, bytes);
        let done = |result: Value| Finished {
            object: object(meter),
            result,
        };
        let name = active.job.name();
        if o.refused() {
            return Err(done(json!({
                "request": name,
                "outcome": "refused",
                "status": o.status,
                "transmissions": active.tries,
            })));
        }
        let next = match (active.step, &active.job) {
            (Step::KeyList, _) => {
                if o.result != SecurityResult::Authenticated {
                    return Err(done(json!({"request": name, "outcome": "unauthenticated"})));
                }
                let blocks = sitp_blocks(&o.application).unwrap_or_default();
                self.partner.learn_key_counters(meter, &blocks);
                Some((Step::Main, self.command(meter, &active.job, rssi)))
            }
            (Step::Main | Step::Fragment(_), Job::Read) if o.more_fragments => {
                let n = match active.step {
                    Step::Fragment(n) => n + 1,
                    _ => 1,
                };
                let r = self.partner.request_data(meter, rssi, true);
                self.save();
                Some((Step::Fragment(n), r.map_err(|e| e.to_string())))
            }
            _ => None,
        };
        if let Some((step, request)) = next {
            let request = request
                .map_err(|e| done(json!({"request": name, "outcome": "failed", "error": e})))?;
            active.step = step;
            active.exchange.request(now, request.bytes, request.expect);
            // The meter listens right after its answer.
            if let Ok(f) = Frame::parse(bytes, FrameFormat::NoCrc) {
                active.exchange.handle(now, &f);
            }
            return Ok(Some(active));
        }
        let mut result = json!({
            "request": name,
            "outcome": "answered",
            "answer": if o.control == ControlField::ACK { "ACK" } else { "RSP-UD" },
            "status": o.status,
            "security": format!("{:?}", o.result),
            "transmissions": active.tries,
        });
        if matches!(o.ci, 0xC4 | 0xC5) {
            let blocks = sitp_blocks(&o.application).unwrap_or_default();
            if let Some(o) = result.as_object_mut() {
                o.insert("blocks".into(), blocks.iter().map(block_json).collect());
            }
        }
        Err(done(result))
    }
}

fn block_json(b: &AnswerBlock) -> Value {
    let mut v = json!({
        "block_id": b.block_id,
        "control": format!("{:02X}", b.control.0),
        "data_info": b.data_info.name(),
    });
    if b.data_info == DataInfo::STATUS {
        let code = b.data.first().copied().unwrap_or(0xFF);
        if let Some(o) = v.as_object_mut() {
            o.insert("status".into(), json!(code));
            o.insert("status_name".into(), json!(status_name(code)));
        }
    }
    v
}
