//! The head-end side of a software update (EN 13757-3 Annex I, OMS profile;
//! `docs/software-update.md`), sans-IO: what to send next, what the meter's responses
//! mean, and a state that can be saved and resumed. The caller carries each step through
//! [`wmbus_security::exchange`] (Prepare, Activate and Terminate in SITP secured data with
//! key 23h and PID 06h; the rest as SND-UD with CI C0h) and gives the responses back.
//!
//! The procedure: Prepare (image id, size, block size, image MAC) → every block once, not
//! waiting on a lost acknowledgement → Completion, and the lost blocks again until none is
//! missing → Validate, then State until "validation successful" (at most 300 s) → Activate,
//! then State until "activation successful" (at most 600 s). A refused step, a failed
//! validation or activation, or a timeout ends in Terminate.

use std::collections::VecDeque;
use std::fmt::Write as _;

use wmbus_frame::image::oms::{
    Command, Function, IMAGE_MAC_KEY_ID, MAC_ALGORITHM_CMAC, Response, State,
    TERMINATE_CLEAR_BUFFER, TERMINATE_RESET,
};

/// How long the meter may take to validate (OMS).
pub const VALIDATION_TIMEOUT_MS: u64 = 300_000;
/// How long the meter may take to activate (OMS).
pub const ACTIVATION_TIMEOUT_MS: u64 = 600_000;
/// Pause between State polls.
pub const POLL_INTERVAL_MS: u64 = 500;
/// Completion rounds before giving up on lost blocks.
pub const MAX_ROUNDS: u32 = 20;

/// What to send next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A command in SITP secured data (key 23h, PID 06h): Prepare, Activate, Terminate.
    Secured(Vec<u8>),
    /// A command as SND-UD, CI C0h.
    Plain(Vec<u8>),
    /// Nothing before this time (ms); then ask again.
    WaitUntil(u64),
    /// The image is active.
    Done,
    /// The update failed (after Terminate, where one was due).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Prepare,
    Blocks,
    Completion,
    Validate,
    AwaitValidation { deadline: u64, next_poll: u64 },
    Activate,
    AwaitActivation { deadline: u64, next_poll: u64 },
    Terminate(String),
    Done,
    Failed(String),
}

/// One image going to one meter.
#[derive(Debug, Clone)]
pub struct Transfer {
    image: Vec<u8>,
    image_id: u32,
    block_size: usize,
    mac: [u8; 16],
    phase: Phase,
    /// Blocks the meter acknowledged (or Completion did not list as lost).
    confirmed: Vec<bool>,
    /// Blocks to send in this round, in order.
    queue: VecDeque<u16>,
    /// The block of the Transfer in flight.
    in_flight: Option<u16>,
    rounds: u32,
    /// Activation date/time, type F (0: at once).
    activation_time: u32,
    /// Blocks sent, repetitions included.
    pub blocks_sent: u64,
}

/// Why a saved state does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeError(pub &'static str);

impl Transfer {
    /// A new transfer of `image` with its MAC (computed by the caller with key 18h).
    ///
    /// # Panics
    /// Never; a block size of 0 is taken as 1.
    pub fn new(image: Vec<u8>, image_id: u32, block_size: usize, mac: [u8; 16]) -> Self {
        let block_size = block_size.max(1);
        let blocks = image.len().div_ceil(block_size).max(1);
        Self {
            image,
            image_id,
            block_size,
            mac,
            phase: Phase::Prepare,
            confirmed: vec![false; blocks],
            queue: (0..blocks).filter_map(|b| u16::try_from(b).ok()).collect(),
            in_flight: None,
            rounds: 0,
            activation_time: 0,
            blocks_sent: 0,
        }
    }

    /// Activates at this date/time (type F, 4 bytes LE as a number; 0: at once). The
    /// activation timeout (600 s) counts from the Activate command's answer.
    #[must_use]
    pub const fn with_activation_time(mut self, time: u32) -> Self {
        self.activation_time = time;
        self
    }

    /// Whether the activation is scheduled for later (and so not awaited).
    pub const fn activation_scheduled(&self) -> bool {
        self.activation_time != 0
    }

    /// The image's length.
    pub fn image_len(&self) -> usize {
        self.image.len()
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.confirmed.len()
    }

    /// Blocks confirmed so far.
    pub fn confirmed(&self) -> usize {
        self.confirmed.iter().filter(|c| **c).count()
    }

    /// The phase, for progress messages.
    pub fn phase_name(&self) -> &'static str {
        Self::name_of(&self.phase)
    }

    /// Whether the step in flight is a block (whose lost acknowledgement is not retried).
    pub const fn sending_block(&self) -> bool {
        self.in_flight.is_some()
    }

    fn emit(c: &Command<'_>) -> Vec<u8> {
        let mut out = vec![0u8; c.buffer_len()];
        let n = c.emit(&mut out).unwrap_or(0);
        out.truncate(n);
        out
    }

    /// The next step at `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> Step {
        match self.phase.clone() {
            Phase::Prepare => Step::Secured(Self::emit(&Command::Prepare {
                image_id: self.image_id,
                image_size: u32::try_from(self.image.len()).unwrap_or(u32::MAX),
                block_size: u16::try_from(self.block_size).unwrap_or(u16::MAX),
                mac_algorithm: MAC_ALGORITHM_CMAC,
                mac_key_id: IMAGE_MAC_KEY_ID,
                mac: &self.mac,
            })),
            Phase::Blocks => {
                while let Some(b) = self.queue.pop_front() {
                    if self.confirmed.get(usize::from(b)).copied().unwrap_or(true) {
                        continue;
                    }
                    let start = usize::from(b) * self.block_size;
                    let data = self
                        .image
                        .get(start..(start + self.block_size).min(self.image.len()))
                        .unwrap_or(&[]);
                    self.in_flight = Some(b);
                    self.blocks_sent += 1;
                    return Step::Plain(Self::emit(&Command::Transfer {
                        image_id: self.image_id,
                        block: b,
                        data,
                    }));
                }
                self.phase = Phase::Completion;
                self.next(now_ms)
            }
            Phase::Completion => Step::Plain(Self::emit(&Command::Completion {
                image_id: self.image_id,
            })),
            Phase::Validate => Step::Plain(Self::emit(&Command::Validate {
                image_id: self.image_id,
            })),
            Phase::AwaitValidation { next_poll, .. } | Phase::AwaitActivation { next_poll, .. } => {
                if now_ms < next_poll {
                    Step::WaitUntil(next_poll)
                } else {
                    Step::Plain(Self::emit(&Command::State))
                }
            }
            Phase::Activate => Step::Secured(Self::emit(&Command::Activate {
                image_id: self.image_id,
                time: self.activation_time,
            })),
            Phase::Terminate(_) => Step::Secured(Self::emit(&Command::Terminate {
                flags: TERMINATE_CLEAR_BUFFER | TERMINATE_RESET,
            })),
            Phase::Done => Step::Done,
            Phase::Failed(why) => Step::Failed(why),
        }
    }

    fn terminate(&mut self, why: String) {
        self.in_flight = None;
        self.phase = Phase::Terminate(why);
    }

    /// The meter's response to the last step.
    pub fn on_response(&mut self, now_ms: u64, r: &Response<'_>) {
        if r.image_id != self.image_id && r.function != Function::TERMINATE.response() {
            return self.terminate(format!(
                "the meter answered for image {:08X}, not {:08X}",
                r.image_id, self.image_id
            ));
        }
        match (self.phase.clone(), Function(r.function.0 & 0x7F)) {
            (Phase::Prepare, Function::PREPARE) => {
                if r.state == State::TRANSFER_INITIATED || r.state == State::TRANSFER_ACTIVE {
                    self.phase = Phase::Blocks;
                } else {
                    self.terminate(format!("prepare answered in state {}", r.state.name()));
                }
            }
            (Phase::Blocks, Function::TRANSFER) => {
                if let Some(b) = r.block
                    && let Some(c) = self.confirmed.get_mut(usize::from(b))
                {
                    *c = true;
                }
                self.in_flight = None;
            }
            (Phase::Completion, Function::COMPLETION) => {
                let lost: Vec<u16> = r.lost_blocks().collect();
                let total = r.lost_total.unwrap_or(0);
                if total == 0 {
                    self.confirmed.iter_mut().for_each(|c| *c = true);
                    self.phase = Phase::Validate;
                    return;
                }
                self.rounds += 1;
                if self.rounds > MAX_ROUNDS {
                    return self.terminate(format!(
                        "{total} blocks still lost after {MAX_ROUNDS} rounds"
                    ));
                }
                // Listed blocks are lost whatever was acknowledged; the list may be cut
                // short, so the next Completion asks again.
                for b in &lost {
                    if let Some(c) = self.confirmed.get_mut(usize::from(*b)) {
                        *c = false;
                    }
                }
                self.queue = lost.into_iter().collect();
                self.phase = Phase::Blocks;
            }
            (Phase::Validate, Function::VALIDATE)
            | (Phase::AwaitValidation { .. }, Function::STATE) => {
                let deadline = match self.phase {
                    Phase::AwaitValidation { deadline, .. } => deadline,
                    _ => now_ms + VALIDATION_TIMEOUT_MS,
                };
                match r.state {
                    State::VALIDATION_SUCCESSFUL => self.phase = Phase::Activate,
                    State::VALIDATION_FAILED => {
                        self.terminate(
                            "validation failed: the image does not match its MAC".into(),
                        );
                    }
                    _ if now_ms >= deadline => {
                        self.terminate("validation took longer than 300 s".into());
                    }
                    _ => {
                        self.phase = Phase::AwaitValidation {
                            deadline,
                            next_poll: now_ms + POLL_INTERVAL_MS,
                        };
                    }
                }
            }
            (Phase::Activate, Function::ACTIVATE)
            | (Phase::AwaitActivation { .. }, Function::STATE) => {
                let deadline = match self.phase {
                    Phase::AwaitActivation { deadline, .. } => deadline,
                    _ => now_ms + ACTIVATION_TIMEOUT_MS,
                };
                if self.activation_time != 0
                    && matches!(self.phase, Phase::Activate)
                    && r.state == State::ACTIVATION_INITIATED
                {
                    // Activation at a later time: the meter has it; nothing to wait for now.
                    self.phase = Phase::Done;
                    return;
                }
                match r.state {
                    State::ACTIVATION_SUCCESSFUL | State::IDLE
                        if matches!(self.phase, Phase::AwaitActivation { .. })
                            || r.state == State::ACTIVATION_SUCCESSFUL =>
                    {
                        self.phase = Phase::Done;
                    }
                    State::ACTIVATION_FAILED => self.terminate("activation failed".into()),
                    _ if now_ms >= deadline => {
                        self.terminate("activation took longer than 600 s".into());
                    }
                    _ => {
                        self.phase = Phase::AwaitActivation {
                            deadline,
                            next_poll: now_ms + POLL_INTERVAL_MS,
                        };
                    }
                }
            }
            (Phase::Terminate(why), Function::TERMINATE) => self.phase = Phase::Failed(why),
            (_, f) => self.terminate(format!("unexpected {} response", f.name())),
        }
    }

    /// No answer to the last step (after the exchange's tries). A block stays unconfirmed
    /// and the next one goes; Completion will list it. Anything else fails the update
    /// (Terminate is tried once, and may go unanswered too).
    pub fn on_no_answer(&mut self) {
        if self.in_flight.take().is_some() {
            return;
        }
        match self.phase.clone() {
            Phase::Terminate(why) => {
                self.phase = Phase::Failed(format!("{why} (terminate unanswered)"))
            }
            p => self.terminate(format!("no answer in phase {}", Self::name_of(&p))),
        }
    }

    /// The meter refused the last step (application error; 10h: invalid in its state).
    pub fn on_refused(&mut self, code: u8) {
        self.in_flight = None;
        match self.phase.clone() {
            Phase::Terminate(why) => self.phase = Phase::Failed(why),
            p => self.terminate(format!(
                "the meter refused the {} step (application error {code:02X}h)",
                Self::name_of(&p)
            )),
        }
    }

    fn name_of(p: &Phase) -> &'static str {
        match p {
            Phase::Prepare => "prepare",
            Phase::Blocks => "blocks",
            Phase::Completion => "completion",
            Phase::Validate | Phase::AwaitValidation { .. } => "validation",
            Phase::Activate | Phase::AwaitActivation { .. } => "activation",
            Phase::Terminate(_) => "terminate",
            Phase::Done => "done",
            Phase::Failed(_) => "failed",
        }
    }

    /// The state to resume from: `image_id`, size, block size, MAC and phase, one per line.
    /// Which blocks arrived is asked again of the meter (Completion) on resuming.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# wmbus software update in progress\n");
        let _ = writeln!(s, "image_id={:08X}", self.image_id);
        let _ = writeln!(s, "image_size={}", self.image.len());
        let _ = writeln!(s, "block_size={}", self.block_size);
        let mac: String = self.mac.iter().map(|b| format!("{b:02X}")).collect();
        let _ = writeln!(s, "mac={mac}");
        let _ = writeln!(s, "phase={}", self.phase_name());
        let _ = writeln!(s, "confirmed={}", self.confirmed());
        s
    }

    /// A transfer of the same image resumed from [`Self::to_text`]: after Prepare it goes on
    /// with Completion (the meter says what it lacks); in validation or activation it polls.
    ///
    /// # Errors
    /// The saved state is for another image (id, size, block size or MAC differ).
    pub fn resume(&mut self, text: &str, now_ms: u64) -> Result<(), ResumeError> {
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
                .map(str::trim)
        };
        let mac: String = self.mac.iter().map(|b| format!("{b:02X}")).collect();
        let same = get("image_id") == Some(format!("{:08X}", self.image_id).as_str())
            && get("image_size") == Some(self.image.len().to_string().as_str())
            && get("block_size") == Some(self.block_size.to_string().as_str())
            && get("mac") == Some(mac.as_str());
        if !same {
            return Err(ResumeError("the saved transfer is of another image"));
        }
        self.phase = match get("phase") {
            Some("prepare") | None => Phase::Prepare,
            Some("blocks" | "completion") => Phase::Completion,
            Some("validation") => Phase::AwaitValidation {
                deadline: now_ms + VALIDATION_TIMEOUT_MS,
                next_poll: now_ms,
            },
            Some("activation") => Phase::AwaitActivation {
                deadline: now_ms + ACTIVATION_TIMEOUT_MS,
                next_poll: now_ms,
            },
            Some("done") => Phase::Done,
            Some(_) => Phase::Prepare,
        };
        self.queue.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond<'a>(
        t: &mut Transfer,
        now: u64,
        function: Function,
        state: State,
        extra: impl FnOnce(&mut Response<'a>),
    ) {
        let mut r = Response {
            function: function.response(),
            state,
            image_id: 7,
            block: None,
            lost_total: None,
            lost: &[],
        };
        extra(&mut r);
        t.on_response(now, &r);
    }

    #[test]
    fn a_whole_transfer_with_a_lost_block() {
        let image: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut t = Transfer::new(image, 7, 200, [9; 16]);
        assert_eq!(t.blocks(), 5);
        assert!(matches!(t.next(0), Step::Secured(_)));
        respond(
            &mut t,
            0,
            Function::PREPARE,
            State::TRANSFER_INITIATED,
            |_| {},
        );
        for b in 0..5u16 {
            let Step::Plain(bytes) = t.next(0) else {
                panic!()
            };
            let Command::Transfer { block, data, .. } = Command::parse(&bytes, 0).unwrap() else {
                panic!()
            };
            assert_eq!(block, b);
            assert_eq!(data.len(), 200);
            if b == 3 {
                t.on_no_answer();
            } else {
                respond(&mut t, 0, Function::TRANSFER, State::TRANSFER_ACTIVE, |r| {
                    r.block = Some(b)
                });
            }
        }
        assert_eq!(t.confirmed(), 4);
        let Step::Plain(c) = t.next(0) else { panic!() };
        assert_eq!(
            Command::parse(&c, 0).unwrap(),
            Command::Completion { image_id: 7 }
        );
        let lost = 3u16.to_le_bytes();
        respond(
            &mut t,
            0,
            Function::COMPLETION,
            State::TRANSFER_ACTIVE,
            |r| {
                r.lost_total = Some(1);
                r.lost = &lost;
            },
        );
        let Step::Plain(again) = t.next(0) else {
            panic!()
        };
        assert!(matches!(
            Command::parse(&again, 0).unwrap(),
            Command::Transfer { block: 3, .. }
        ));
        respond(&mut t, 0, Function::TRANSFER, State::TRANSFER_ACTIVE, |r| {
            r.block = Some(3)
        });
        t.next(0);
        respond(
            &mut t,
            0,
            Function::COMPLETION,
            State::TRANSFER_SUCCESSFUL,
            |r| r.lost_total = Some(0),
        );
        assert!(matches!(t.next(0), Step::Plain(_)));
        respond(
            &mut t,
            10,
            Function::VALIDATE,
            State::VALIDATION_ACTIVE,
            |_| {},
        );
        assert_eq!(t.next(100), Step::WaitUntil(510));
        t.next(510);
        respond(
            &mut t,
            510,
            Function::STATE,
            State::VALIDATION_SUCCESSFUL,
            |_| {},
        );
        assert!(matches!(t.next(510), Step::Secured(_)));
        respond(
            &mut t,
            520,
            Function::ACTIVATE,
            State::ACTIVATION_INITIATED,
            |_| {},
        );
        t.next(1100);
        respond(
            &mut t,
            1100,
            Function::STATE,
            State::ACTIVATION_SUCCESSFUL,
            |_| {},
        );
        assert_eq!(t.next(1100), Step::Done);
        assert_eq!(t.blocks_sent, 6);
    }

    #[test]
    fn a_failed_validation_terminates() {
        let mut t = Transfer::new(vec![1; 10], 7, 200, [0; 16]);
        t.phase = Phase::Validate;
        respond(
            &mut t,
            0,
            Function::VALIDATE,
            State::VALIDATION_FAILED,
            |_| {},
        );
        let Step::Secured(c) = t.next(0) else {
            panic!()
        };
        assert!(matches!(
            Command::parse(&c, 0).unwrap(),
            Command::Terminate { .. }
        ));
        respond(&mut t, 0, Function::TERMINATE, State::TERMINATED, |_| {});
        assert!(matches!(t.next(0), Step::Failed(w) if w.contains("validation failed")));
    }

    #[test]
    fn a_scheduled_activation_is_not_awaited() {
        let mut t = Transfer::new(vec![1; 10], 7, 200, [0; 16]).with_activation_time(0x1234_5678);
        t.phase = Phase::Activate;
        let Step::Secured(c) = t.next(0) else {
            panic!()
        };
        assert_eq!(
            Command::parse(&c, 0).unwrap(),
            Command::Activate {
                image_id: 7,
                time: 0x1234_5678
            }
        );
        respond(
            &mut t,
            0,
            Function::ACTIVATE,
            State::ACTIVATION_INITIATED,
            |_| {},
        );
        assert_eq!(t.next(0), Step::Done);
        assert!(t.activation_scheduled());
    }

    #[test]
    fn resuming_needs_the_same_image_and_asks_completion() {
        let mut t = Transfer::new(vec![1; 1000], 7, 200, [3; 16]);
        t.phase = Phase::Blocks;
        let saved = t.to_text();
        let mut again = Transfer::new(vec![1; 1000], 7, 200, [3; 16]);
        again.resume(&saved, 0).unwrap();
        let Step::Plain(c) = again.next(0) else {
            panic!()
        };
        assert_eq!(
            Command::parse(&c, 0).unwrap(),
            Command::Completion { image_id: 7 }
        );
        let mut other = Transfer::new(vec![1; 1000], 7, 200, [4; 16]);
        assert!(other.resume(&saved, 0).is_err());
    }
}
