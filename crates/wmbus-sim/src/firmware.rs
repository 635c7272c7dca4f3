//! The meter side of a software update (`[meters.talk.firmware]`): the state machine of OMS
//! Annex M Fig. M.2 (states 2–15), a block store with its bitmap, the image MAC check at
//! validation (key 18h), activation, and faults on request: blocks lost on air, a block
//! corrupted in the store, a power loss mid-transfer. Time comes from the caller.

use wmbus_frame::image::oms::{Command, Function, Response, State, TERMINATE_CLEAR_BUFFER};
use wmbus_security::key::Key;

/// Application error for a command that is invalid in the current state (OMS).
pub const INVALID_IN_STATE: u8 = 0x10;

/// `[meters.talk.firmware]`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareDesc {
    /// Share of Transfer messages lost on air (0–1).
    #[serde(default)]
    pub drop_blocks: f64,
    /// Flip a byte of this block in the store: validation fails.
    #[serde(default)]
    pub corrupt_block: Option<u16>,
    /// Lose power after this many blocks: silent for `power_loss_ms`, the store kept.
    #[serde(default)]
    pub power_loss_after_blocks: Option<u32>,
    /// How long the power is off.
    #[serde(default = "default_power_loss")]
    pub power_loss_ms: u64,
    /// How long validation takes.
    #[serde(default = "default_step")]
    pub validation_ms: u64,
    /// How long activation takes.
    #[serde(default = "default_step")]
    pub activation_ms: u64,
    /// The running firmware's version.
    #[serde(default)]
    pub version: u32,
}

fn default_power_loss() -> u64 {
    3000
}

fn default_step() -> u64 {
    800
}

/// The image target.
#[derive(Debug)]
pub struct Target {
    config: FirmwareDesc,
    image_key: Option<Key>,
    state: State,
    image_id: u32,
    size: usize,
    block_size: usize,
    mac: [u8; 16],
    blocks: Vec<Option<Vec<u8>>>,
    received: u32,
    /// When the validation or activation in progress ends.
    busy_until: Option<u64>,
    power_lost: bool,
    rng: u64,
    /// The running firmware's version (one up per activation).
    pub version: u32,
}

/// What a command did.
#[derive(Debug)]
pub enum Outcome {
    /// Answer with this response.
    Respond(Vec<u8>),
    /// Lost on air: no answer.
    Lost,
    /// Application error.
    Refuse(u8),
}

impl Target {
    /// A target with the image MAC key (18h), `seed` for its faults.
    pub fn new(config: FirmwareDesc, image_key: Option<Key>, seed: u64) -> Self {
        Self {
            version: config.version,
            config,
            image_key,
            state: State::IDLE,
            image_id: 0,
            size: 0,
            block_size: 0,
            mac: [0; 16],
            blocks: Vec::new(),
            received: 0,
            busy_until: None,
            power_lost: false,
            rng: seed | 1,
        }
    }

    fn random(&mut self) -> f64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1_000_000) as f64 / 1_000_000.0
    }

    /// The state at `now`: timed validation and activation finish here.
    pub fn state(&mut self, now: u64) -> State {
        if let Some(t) = self.busy_until
            && now >= t
        {
            self.busy_until = None;
            self.state = match self.state {
                State::VALIDATION_ACTIVE | State::VALIDATION_INITIATED => {
                    if self.image_valid() {
                        State::VALIDATION_SUCCESSFUL
                    } else {
                        State::VALIDATION_FAILED
                    }
                }
                State::ACTIVATION_INITIATED => {
                    self.version = self.version.wrapping_add(1);
                    State::ACTIVATION_SUCCESSFUL
                }
                s => s,
            };
        }
        self.state
    }

    fn image_valid(&self) -> bool {
        let Some(key) = &self.image_key else {
            return false;
        };
        let mut image = Vec::with_capacity(self.size);
        for b in &self.blocks {
            let Some(b) = b else { return false };
            image.extend_from_slice(b);
        }
        image.truncate(self.size);
        wmbus_security::image::verify_oms_image_mac(key, &image, &self.mac).is_ok()
    }

    /// Whether a power loss is due now (once), after the blocks received.
    pub fn power_loss_due(&mut self) -> bool {
        if !self.power_lost
            && self
                .config
                .power_loss_after_blocks
                .is_some_and(|n| self.received >= n)
        {
            self.power_lost = true;
            return true;
        }
        false
    }

    /// How long a power loss lasts.
    pub const fn power_loss_ms(&self) -> u64 {
        self.config.power_loss_ms
    }

    /// Blocks missing (all of them before Prepare).
    pub fn missing(&self) -> Vec<u16> {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_none())
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect()
    }

    fn response(&self, function: Function, state: State) -> Response<'static> {
        Response {
            function: function.response(),
            state,
            image_id: self.image_id,
            block: None,
            lost_total: None,
            lost: &[],
        }
    }

    fn emit(r: &Response<'_>) -> Vec<u8> {
        let mut out = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut out).unwrap_or(0);
        out.truncate(n);
        out
    }

    /// Handles a command at `now`; `secured` says whether it came in SITP secured data
    /// (Prepare, Activate and Terminate must).
    pub fn handle(&mut self, now: u64, command: &Command<'_>, secured: bool) -> Outcome {
        let state = self.state(now);
        let needs_sitp = matches!(
            command,
            Command::Prepare { .. } | Command::Activate { .. } | Command::Terminate { .. }
        );
        if needs_sitp != secured {
            return Outcome::Refuse(INVALID_IN_STATE);
        }
        match *command {
            Command::Prepare {
                image_id,
                image_size,
                block_size,
                mac,
                ..
            } => {
                let size = usize::try_from(image_size).unwrap_or(usize::MAX);
                let bs = usize::from(block_size);
                if bs < wmbus_frame::image::oms::MIN_BLOCK_SIZE || size == 0 || size > 1 << 20 {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                self.image_id = image_id;
                self.size = size;
                self.block_size = bs;
                self.mac.copy_from_slice(mac.get(..16).unwrap_or(&[0; 16]));
                self.blocks = vec![None; size.div_ceil(bs)];
                self.received = 0;
                self.state = State::TRANSFER_INITIATED;
                Outcome::Respond(Self::emit(&self.response(Function::PREPARE, self.state)))
            }
            Command::Transfer {
                image_id,
                block,
                data,
                ..
            } => {
                if image_id != self.image_id
                    || !matches!(
                        state,
                        State::TRANSFER_INITIATED
                            | State::TRANSFER_ACTIVE
                            | State::TRANSFER_SUCCESSFUL
                    )
                {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                if self.config.drop_blocks > 0.0 && self.random() < self.config.drop_blocks {
                    return Outcome::Lost;
                }
                let index = usize::from(block);
                let expected = self
                    .size
                    .saturating_sub(index * self.block_size)
                    .min(self.block_size);
                let Some(slot) = self.blocks.get_mut(index) else {
                    return Outcome::Refuse(INVALID_IN_STATE);
                };
                if data.len() != expected {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                let mut stored = data.to_vec();
                if self.config.corrupt_block == Some(block)
                    && let Some(b) = stored.first_mut()
                {
                    *b ^= 0xFF;
                }
                *slot = Some(stored);
                self.received += 1;
                self.state = State::TRANSFER_ACTIVE;
                let mut r = self.response(Function::TRANSFER, self.state);
                r.block = Some(block);
                Outcome::Respond(Self::emit(&r))
            }
            Command::Completion { image_id } => {
                if image_id != self.image_id || self.blocks.is_empty() {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                let missing = self.missing();
                if missing.is_empty() && state == State::TRANSFER_ACTIVE {
                    self.state = State::TRANSFER_SUCCESSFUL;
                }
                // As many as fit one answer.
                let listed: Vec<u8> = missing
                    .iter()
                    .take(90)
                    .flat_map(|b| b.to_le_bytes())
                    .collect();
                let mut r = self.response(Function::COMPLETION, self.state);
                r.lost_total = Some(u16::try_from(missing.len()).unwrap_or(u16::MAX));
                r.lost = &listed;
                Outcome::Respond(Self::emit(&r))
            }
            Command::State => Outcome::Respond(Self::emit(&self.response(Function::STATE, state))),
            Command::Validate { image_id } => {
                if image_id != self.image_id || state != State::TRANSFER_SUCCESSFUL {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                self.state = State::VALIDATION_ACTIVE;
                self.busy_until = Some(now + self.config.validation_ms);
                Outcome::Respond(Self::emit(&self.response(Function::VALIDATE, self.state)))
            }
            Command::Activate { image_id, .. } => {
                if image_id != self.image_id || state != State::VALIDATION_SUCCESSFUL {
                    return Outcome::Refuse(INVALID_IN_STATE);
                }
                self.state = State::ACTIVATION_INITIATED;
                self.busy_until = Some(now + self.config.activation_ms);
                Outcome::Respond(Self::emit(&self.response(Function::ACTIVATE, self.state)))
            }
            Command::Terminate { flags } => {
                if flags & TERMINATE_CLEAR_BUFFER != 0 {
                    self.blocks.clear();
                }
                self.busy_until = None;
                self.state = State::TERMINATED;
                Outcome::Respond(Self::emit(&self.response(Function::TERMINATE, self.state)))
            }
        }
    }
}
